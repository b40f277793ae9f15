"""Review: the scored pairs a clerk should label next, as a CSV and a static HTML page.

``udp review --n 100 --out review/`` writes ``review/pairs.csv`` (the file ``udp labels
import`` reads back once the clerk has filled in ``is_match``) and ``review/pairs.html``
(the two records side by side, the comparison levels the model saw). The next ``udp train``
with ``matching.model.kind: supervised`` (or ``auto``) learns from the decisions.
"""

from __future__ import annotations

import csv
import logging
from dataclasses import dataclass
from pathlib import Path

from pyspark.sql import functions as F

from udp_spark import io
from udp_spark.matching.review import (
    expected_gain,
    pick_for_review,
    review_html,
    review_rows,
    uncertainty,
)
from udp_spark.pipeline.context import StageContext, mlflow_dfs_tmpdir
from udp_spark.tables import SILVER_MATCH_LABELS, SILVER_MATCH_SCORES, SILVER_PARTY_RECORDS

log = logging.getLogger(__name__)


class ReviewError(ValueError):
    """Nothing to review from: the message says which stage to run."""


@dataclass
class ReviewReport:
    csv_path: Path
    html_path: Path
    model_version: str
    pairs: int  # written for review
    candidates: int  # scored pairs in the uncertain band, not yet labelled
    patterns: int  # distinct comparison patterns among the written pairs
    expected_bits: float  # sum of the written pairs' binary entropies


def run_review(ctx: StageContext, n: int, out_dir: str | Path, *,
               min_uncertainty: float = 0.1) -> ReviewReport:
    """Pick the ``n`` scored pairs most worth a decision (current model version, none
    labelled by anyone yet) and write them to ``out_dir``.

    Raises:
        ReviewError: no scores yet (run ``udp train`` and ``udp score``).
    """
    from udp_spark.platform import mlflow_store

    spark, lake = ctx.spark, ctx.lakehouse
    scores_ref = lake.ref(SILVER_MATCH_SCORES)
    if not io.table_exists(spark, scores_ref):
        raise ReviewError(f"{scores_ref} does not exist: run `udp train` and `udp score` first")
    mcfg = ctx.cfg.matching.model
    model, version = mlflow_store.load_by_alias(ctx.cfg.mlflow, mcfg.registered_name,
                                                mcfg.alias, mlflow_dfs_tmpdir(ctx.cfg))
    label = f"{mcfg.registered_name}/{version}"
    scores = io.read_table(spark, scores_ref).filter(F.col("model_version") == label)
    labels_ref = lake.ref(SILVER_MATCH_LABELS)
    labelled = io.read_table(spark, labels_ref) if io.table_exists(spark, labels_ref) else None
    picked = pick_for_review(scores, model.comparisons, n, labelled=labelled,
                             min_uncertainty=min_uncertainty,
                             seed=mcfg.seed).transform(io.checkpoint)
    rows = [r.asDict() for r in review_rows(
        picked, io.read_table(spark, lake.ref(SILVER_PARTY_RECORDS))).collect()]
    if not rows:
        log.warning("review: no scored pair of %s has a match probability within the "
                    "uncertain band (uncertainty >= %s) and no label yet", label,
                    min_uncertainty)
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    csv_path, html_path = out / "pairs.csv", out / "pairs.html"
    columns = list(rows[0]) if rows else ["review_rank", "record_id_a", "record_id_b",
                                          "is_match", "match_probability", "pattern"]
    with csv_path.open("w", newline="", encoding="utf-8") as f:
        writer = csv.DictWriter(f, columns)
        writer.writeheader()
        writer.writerows(rows)
    html_path.write_text(review_html(rows, model.labels, title=f"Pairs to review ({label})"),
                         encoding="utf-8")
    uncertain = scores.filter(uncertainty(F.col("match_probability")) >= min_uncertainty)
    if labelled is not None:
        uncertain = uncertain.join(labelled.select("record_id_l", "record_id_r").distinct(),
                                   ["record_id_l", "record_id_r"], "left_anti")
    picked_rows = picked.select("uncertainty", "pattern").collect()
    return ReviewReport(csv_path, html_path, version, len(rows), uncertain.count(),
                        len({r["pattern"] for r in picked_rows}),
                        round(expected_gain([r["uncertainty"] for r in picked_rows]), 2))
