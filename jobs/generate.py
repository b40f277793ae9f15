"""spark-submit entry point for `udp generate`: `spark-submit jobs/generate.py [OPTIONS]`."""

import sys

from udp_spark.cli import main

if __name__ == "__main__":
    main(["generate", *sys.argv[1:]])
