"""spark-submit entry point for `udp resolve`: `spark-submit jobs/resolve.py [OPTIONS]`."""

import sys

from udp_spark.cli import main

if __name__ == "__main__":
    main(["resolve", *sys.argv[1:]])
