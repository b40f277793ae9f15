"""The labels stage: import labelled pairs into ``silver.match_labels`` (MERGE on the pair
and the label source)."""

from __future__ import annotations

import hashlib
import logging
from dataclasses import dataclass, field

from pyspark.sql import DataFrame
from pyspark.sql import functions as F

from udp_spark import io
from udp_spark.matching.labels import (
    check_pair_labels,
    problem_kind,
    truth_pair_labels,
    usable_labels,
)
from udp_spark.pipeline.context import StageContext, audited_run
from udp_spark.pipeline.inputs import read_truth
from udp_spark.tables import SILVER_CANDIDATE_PAIRS, SILVER_MATCH_LABELS, SILVER_PARTY_RECORDS

log = logging.getLogger(__name__)

PAIR_COLUMNS = ("record_id_a", "record_id_b", "is_match")
LABEL_KEY = ("record_id_l", "record_id_r", "label_source")


class LabelImportError(ValueError):
    """A labels file cannot be imported; the message says what to change."""


@dataclass
class LabelImportReport:
    run_id: str
    source: str
    rows_read: int
    positives: int
    negatives: int
    inserted: int
    updated: int
    rejected: dict[str, int] = field(default_factory=dict)
    examples: list[tuple[str, str, str]] = field(default_factory=list)
    skipped_without_truth: int = 0


def _batch_id(path: str, from_truth: bool, sample: float) -> str:
    return hashlib.sha256(f"labels|{path}|{from_truth}|{sample}".encode()).hexdigest()[:20]


def _read_pairs_csv(ctx: StageContext, path: str) -> DataFrame:
    df = ctx.spark.read.option("header", "true").csv(path)
    missing = [c for c in PAIR_COLUMNS if c not in df.columns]
    if missing:
        raise LabelImportError(
            f"labels file {path}: missing column(s) {missing}; a pairs file needs a header "
            f"record_id_a,record_id_b,is_match (got {df.columns}); for an entity file "
            f"(record_id,entity_id or source,source_key,person_id) pass --from-truth")
    return df.select(*PAIR_COLUMNS)


def run_import_labels(ctx: StageContext, path: str, *, from_truth: bool = False,
                      sample: float = 1.0, label_source: str | None = None,
                      strict: bool = False) -> LabelImportReport:
    """Merge labelled pairs from ``path`` into ``silver.match_labels``.

    Args:
        path: a pairs CSV (``record_id_a,record_id_b,is_match``) or, with ``from_truth``, an
            entity CSV (``record_id,entity_id`` or ``source,source_key,person_id``) from which
            the candidate pairs in ``silver.candidate_pairs`` are labelled.
        sample: with ``from_truth``, the share of candidate pairs to label (seeded by pair).
        label_source: stored per label; default ``clerical`` (pairs) or ``truth``.
        strict: fail, writing nothing, if any row of a pairs file is unusable (otherwise
            unusable rows are reported and the rest imported).

    Raises:
        LabelImportError: the file has the wrong columns, a needed table is missing, or
            ``strict`` and some rows are unusable.
    """
    if not 0 < sample <= 1:
        raise LabelImportError(f"--sample must be in (0, 1], got {sample}")
    lake, spark = ctx.lakehouse, ctx.spark
    source = label_source or ("truth" if from_truth else "clerical")
    records_ref = lake.ref(SILVER_PARTY_RECORDS)
    if not io.table_exists(spark, records_ref):
        raise LabelImportError(f"{records_ref} does not exist: run `udp ingest` and "
                               f"`udp standardize` before importing labels")
    record_ids = io.read_table(spark, records_ref).select("record_id")
    with audited_run(ctx, "labels") as run, io.commit_metadata(
            spark, {"run_id": run.run_id, "stage": "labels"}):
        rejected: dict[str, int] = {}
        examples: list[tuple[str, str, str]] = []
        skipped = 0
        if from_truth:
            pairs_ref = lake.ref(SILVER_CANDIDATE_PAIRS)
            if not io.table_exists(spark, pairs_ref):
                raise LabelImportError(f"{pairs_ref} does not exist: run `udp block` first; "
                                       f"--from-truth labels the candidate pairs")
            try:
                truth = read_truth(ctx, path)
            except ValueError as exc:
                raise LabelImportError(str(exc)) from None
            pairs = io.read_table(spark, pairs_ref).select("record_id_l", "record_id_r")
            labels = truth_pair_labels(pairs, truth, sample, ctx.cfg.matching.model.seed
                                       ).transform(io.checkpoint)
            n_sampled = pairs.count() if sample == 1.0 else None
            rows_read = labels.count()
            skipped = (n_sampled - rows_read) if n_sampled is not None else 0
        else:
            checked = check_pair_labels(_read_pairs_csv(ctx, path), record_ids
                                        ).transform(io.checkpoint)
            rows_read = checked.count()
            bad = checked.filter(F.col("problem").isNotNull())
            rejected = {r["kind"]: int(r["n"]) for r in bad.groupBy(
                problem_kind(F.col("problem")).alias("kind")).agg(
                F.count("*").alias("n")).collect()}
            examples = [(r["record_id_a"], r["record_id_b"], r["problem"])
                        for r in bad.orderBy("record_id_a", "record_id_b").limit(5).collect()]
            if rejected and strict:
                shown = "; ".join(f"{a},{b}: {p}" for a, b, p in examples)
                raise LabelImportError(
                    f"labels file {path}: {sum(rejected.values())} unusable row(s) "
                    f"{rejected}, e.g. {shown}; fix them or import without --strict to load "
                    f"the usable rows and report the rest")
            labels = usable_labels(checked)
        stamped = (labels
                   .withColumn("label_source", F.lit(source))
                   .withColumn("labelled_at", F.current_timestamp())
                   .withColumn("_batch_id", F.lit(_batch_id(path, from_truth, sample)))
                   .withColumn("_row_hash", F.sha2(F.concat_ws(
                       "|", F.col("is_match").cast("string"), "label_source"), 256)))
        counts = io.one_row(labels.agg(F.sum(F.col("is_match").cast("long")).alias("p"),
                                       F.count("*").alias("n")))
        positives = int(counts["p"] or 0)
        negatives = int(counts["n"] or 0) - positives
        # Keyed by pair and source: a truth import never replaces a clerical decision (and
        # the other way round); which one counts is decided when labels are read
        # (effective_labels).
        res = io.merge_upsert(stamped, lake.ref(SILVER_MATCH_LABELS), LABEL_KEY)
        inserted, updated = res.metric("numTargetRowsInserted"), res.metric(
            "numTargetRowsUpdated")
        run.row_counts.update({"silver.match_labels_inserted": inserted,
                               "silver.match_labels_updated": updated,
                               **{f"labels_rejected_{k}": v for k, v in rejected.items()}})
        run.metrics.update({"label_positives": float(positives),
                            "label_negatives": float(negatives)})
        if res.version is not None:
            run.output_versions["silver.match_labels"] = res.version
        if rejected:
            log.warning("labels file %s: %d unusable rows not imported: %s", path,
                        sum(rejected.values()), rejected)
        return LabelImportReport(run.run_id, source, rows_read, positives, negatives,
                                 inserted, updated, rejected, examples, skipped)
