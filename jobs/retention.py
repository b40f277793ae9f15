"""spark-submit entry point for `udp retention`: `spark-submit jobs/retention.py [OPTIONS]`."""

import sys

from udp_spark.cli import main

if __name__ == "__main__":
    main(["retention", *sys.argv[1:]])
