"""spark-submit entry point for `udp consent import`: `spark-submit jobs/consent.py [OPTIONS]`."""

import sys

from udp_spark.cli import main

if __name__ == "__main__":
    main(["consent", "import", *sys.argv[1:]])
