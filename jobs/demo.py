"""spark-submit entry point: `spark-submit jobs/demo.py [OPTIONS]` = `udp demo [OPTIONS]`."""

import sys

from udp_spark.cli import main

if __name__ == "__main__":
    main(["demo", *sys.argv[1:]])
