"""spark-submit entry point for `udp publish`: `spark-submit jobs/publish.py [OPTIONS]`."""

import sys

from udp_spark.cli import main

if __name__ == "__main__":
    main(["publish", *sys.argv[1:]])
