"""spark-submit entry point for `udp standardize`: `spark-submit jobs/standardize.py [OPTIONS]`."""

import sys

from udp_spark.cli import main

if __name__ == "__main__":
    main(["standardize", *sys.argv[1:]])
