"""spark-submit entry point for `udp demo`: `spark-submit jobs/demo.py [OPTIONS]`."""

import sys

from udp_spark.cli import main

if __name__ == "__main__":
    main(["demo", *sys.argv[1:]])
