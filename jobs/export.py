"""spark-submit entry point for `udp export`: `spark-submit jobs/export.py [OPTIONS]`."""

import sys

from udp_spark.cli import main

if __name__ == "__main__":
    main(["export", *sys.argv[1:]])
