"""spark-submit entry point for `udp block`: `spark-submit jobs/block.py [OPTIONS]`."""

import sys

from udp_spark.cli import main

if __name__ == "__main__":
    main(["block", *sys.argv[1:]])
