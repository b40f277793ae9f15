"""spark-submit entry point for `udp maintain` (OPTIMIZE and VACUUM every table):
`spark-submit jobs/maintain.py [OPTIONS]`."""

import sys

from udp_spark.cli import main

if __name__ == "__main__":
    main(["maintain", *sys.argv[1:]])
