"""spark-submit entry point for `udp labels import`:
`spark-submit jobs/import_labels.py FILE [--from-truth] [--sample F] [OPTIONS]`."""

import sys

from udp_spark.cli import main

if __name__ == "__main__":
    main(["labels", "import", *sys.argv[1:]])
