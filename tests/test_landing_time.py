"""A row's landing time (``_ingested_at``) comes from its file, not from the clock of the run
that lands it: the same file landed by two runs (a re-run after a kill, the stream against a
batch rebuild) gets the same time, so profiles built from it are equal."""

from __future__ import annotations

import os
from datetime import UTC, datetime
from pathlib import Path

from chispa import assert_df_equality
from pyspark.sql import SparkSession

from udp_spark import io
from udp_spark.config import SourceConfig
from udp_spark.landing import to_bronze

MTIME = datetime(2026, 5, 28, 8, 26, 40, tzinfo=UTC)
FIRST_RUN = datetime(2026, 12, 5, 0, 46, tzinfo=UTC)
RERUN = datetime(2026, 12, 5, 1, 3, tzinfo=UTC)  # after a kill, 17 minutes later
PARTY = {"source_key": "id", "email": "email"}


def _landed(tmp_path: Path, name: str, text: str) -> str:
    path = tmp_path / name
    path.write_text(text, encoding="utf-8")
    os.utime(path, (MTIME.timestamp(), MTIME.timestamp()))
    return path.as_uri()


def test_two_runs_landing_the_same_file_give_its_rows_the_same_time(
        spark: SparkSession, tmp_path: Path) -> None:
    sources = {
        "json": (SourceConfig(name="shop", format="json", path=str(tmp_path), trust_rank=1,
                              columns=("id", "email"), party=PARTY),
                 _landed(tmp_path, "shop.jsonl", '{"id": "1", "email": "a@x.com"}\n')),
        "csv": (SourceConfig(name="crm", format="csv", path=str(tmp_path), trust_rank=1,
                             columns=("id", "email"), party=PARTY),
                _landed(tmp_path, "crm.csv", "id,email\n2,b@x.com\n")),
    }
    for fmt, (source, path) in sources.items():
        raw = io.read_source_files(spark, source, [(path, f"{fmt}-batch")])
        runs = [raw.transform(to_bronze(source, run_id=f"r{i}", ingested_at=clock))
                .select("id", "_ingested_at") for i, clock in enumerate((FIRST_RUN, RERUN))]
        # before: each run stamped its rows with its own clock (00:46, then 01:03)
        assert_df_equality(runs[0], runs[1], ignore_row_order=True)
        assert runs[0].first()["_ingested_at"] == MTIME.replace(tzinfo=None), fmt


def test_landing_time_is_capped_at_the_run_and_the_clock_is_the_fallback(
        spark: SparkSession) -> None:
    source = SourceConfig(name="crm", format="csv", path="x.csv", trust_rank=1,
                          columns=("id", "email"), party=PARTY)
    future = datetime(2027, 1, 1, tzinfo=UTC)  # a file stamped by a skewed clock
    raw = spark.createDataFrame(
        [("1", None, "b", "f", MTIME), ("2", None, "b", "g", future), ("3", None, "b", "h", None)],
        "id string, email string, _batch_id string, _file string, _landed_at timestamp")
    got = raw.transform(to_bronze(source, run_id="r", ingested_at=FIRST_RUN)).select(
        "id", "_ingested_at")
    naive = {k: v.replace(tzinfo=None) for k, v in
             {"1": MTIME, "2": FIRST_RUN, "3": FIRST_RUN}.items()}
    expected = spark.createDataFrame(sorted(naive.items()), "id string, _ingested_at timestamp")
    assert_df_equality(got, expected, ignore_row_order=True, ignore_nullable=True)
    assert "_landed_at" not in raw.transform(to_bronze(source, run_id="r",
                                                       ingested_at=FIRST_RUN)).columns
