"""spark-submit entry point: `spark-submit jobs/generate.py [OPTIONS]` = `udp generate [OPTIONS]`."""

import sys

from udp_spark.cli import main

if __name__ == "__main__":
    main(["generate", *sys.argv[1:]])
