"""spark-submit entry point for `udp score`: `spark-submit jobs/score.py [OPTIONS]`."""

import sys

from udp_spark.cli import main

if __name__ == "__main__":
    main(["score", *sys.argv[1:]])
