"""spark-submit entry point for `udp erase`: `spark-submit jobs/erase.py [OPTIONS]`."""

import sys

from udp_spark.cli import main

if __name__ == "__main__":
    main(["erase", *sys.argv[1:]])
