"""spark-submit entry point for `udp stream`: `spark-submit jobs/stream.py [OPTIONS]`."""

import sys

from udp_spark.cli import main

if __name__ == "__main__":
    main(["stream", *sys.argv[1:]])
