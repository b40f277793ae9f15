"""spark-submit entry point for `udp run` (every stage that has work, in dependency order):
`spark-submit jobs/run.py [OPTIONS]`."""

import sys

from udp_spark.cli import main

if __name__ == "__main__":
    main(["run", *sys.argv[1:]])
