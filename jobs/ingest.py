"""spark-submit entry point for `udp ingest`: `spark-submit jobs/ingest.py [OPTIONS]`."""

import sys

from udp_spark.cli import main

if __name__ == "__main__":
    main(["ingest", *sys.argv[1:]])
