"""spark-submit entry point: `spark-submit jobs/ingest.py [OPTIONS]` = `udp ingest [OPTIONS]`."""

import sys

from udp_spark.cli import main

if __name__ == "__main__":
    main(["ingest", *sys.argv[1:]])
