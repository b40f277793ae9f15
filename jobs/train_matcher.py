"""spark-submit entry point for `udp train`: `spark-submit jobs/train_matcher.py [OPTIONS]`.

Trains the kind set in `matching.model.kind` (Fellegi-Sunter by default, supervised on
silver.match_labels) and registers it in MLflow under the configured alias.
"""

import sys

from udp_spark.cli import main

if __name__ == "__main__":
    main(["train", *sys.argv[1:]])
