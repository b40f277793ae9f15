"""spark-submit entry point for `udp evaluate`: `spark-submit jobs/evaluate.py [OPTIONS]`."""

import sys

from udp_spark.cli import main

if __name__ == "__main__":
    main(["evaluate", *sys.argv[1:]])
