"""The block stage's incremental path against a full run, where blocks cross their size cap.

A block that grows past its cap retires its pairs, one that shrinks back under it gives
them back; the members of such a block keep the pairs their other blocks make (the
incremental run reads only the index rows of the blocks it needs, so those blocks must be
read for them too).
"""

from __future__ import annotations

from datetime import date
from pathlib import Path

import pytest
from pyspark.sql import SparkSession
from pyspark.sql import functions as F

from tests._lakehouse import lakehouse_config
from udp_spark import io
from udp_spark.config import BlockingKey, BlockingRule
from udp_spark.faults import CRASH_AT, InjectedCrash
from udp_spark.pipeline.block import run_block
from udp_spark.pipeline.context import StageContext
from udp_spark.tables import SILVER_BLOCK_KEYS, SILVER_CANDIDATE_PAIRS, SILVER_PARTY_RECORDS

SCHEMA = ("record_id string, email_canonical string, family_name_norm string, "
          "given_name_norm string, _row_hash string")


def _ctx(spark: SparkSession, base: Path) -> StageContext:
    cfg = lakehouse_config(base, as_of=date(2026, 1, 1))
    blocking = cfg.matching.blocking.model_copy(update={
        "keys": (BlockingKey(name="email", columns=("email_canonical",)),),
        "replace_keys": True,
        "rules": (BlockingRule(name="family", columns=("family_name_norm",)),),
        "lsh": (), "email_names": False, "max_block_size": 3})
    return StageContext(spark, cfg.model_copy(update={"matching": cfg.matching.model_copy(
        update={"blocking": blocking, "identifiers": (), "mapped_identifiers": False})}))


def _write(ctx: StageContext, rows: list[tuple[str, str | None, str, str]]) -> None:
    df = ctx.spark.createDataFrame([(*r, f"h-{r[0]}-{r[1]}") for r in rows], SCHEMA)
    io.merge_upsert(df, ctx.lakehouse.ref(SILVER_PARTY_RECORDS), ["record_id"])


def _pairs(ctx: StageContext) -> set[tuple[str, str, tuple[str, ...]]]:
    return {(r[0], r[1], tuple(r[2])) for r in io.read_table(
        ctx.spark, ctx.lakehouse.ref(SILVER_CANDIDATE_PAIRS)).select(
        "record_id_l", "record_id_r", "methods").collect()}


def _index(ctx: StageContext) -> set[tuple[str, str, bool]]:
    return {(r[0], r[1], r[2]) for r in io.read_table(
        ctx.spark, ctx.lakehouse.ref(SILVER_BLOCK_KEYS)).select(
        "block", "record_id", "expanded").collect()}


def _same_as_full(spark: SparkSession, ctx: StageContext, base: Path) -> None:
    """A full run over the same records (in a lakehouse of its own) writes the same pairs
    and the same index."""
    full = _ctx(spark, base)
    records = io.read_table(spark, ctx.lakehouse.ref(SILVER_PARTY_RECORDS))
    io.overwrite(records, full.lakehouse.ref(SILVER_PARTY_RECORDS))
    run_block(full)
    assert _pairs(ctx) == _pairs(full)
    assert _index(ctx) == _index(full)


def _operation(ctx: StageContext, table: tuple[str, str]) -> str:
    last = io.last_commit_info(ctx.spark, ctx.lakehouse.ref(table))
    assert last is not None
    return last.operation


def test_blocks_crossing_their_cap_match_a_full_run(spark: SparkSession, tmp_path: Path,
                                                   monkeypatch: pytest.MonkeyPatch) -> None:
    ctx = _ctx(spark, tmp_path / "inc")
    fam, mail = ("rule:family",), ("key:email",)
    _write(ctx, [("f1", "a@x.com", "lee", "ann"), ("f2", "b@x.com", "lee", "bob"),
                 ("f3", None, "lee", "cy"), ("x1", "a@x.com", "kim", "al"),
                 ("x2", "b@x.com", "park", "bo")])
    assert run_block(ctx).full  # the first run
    three = {("f1", "f2", fam), ("f1", "f3", fam), ("f2", "f3", fam),
             ("f1", "x1", mail), ("f2", "x2", mail)}
    assert _pairs(ctx) == three

    # a fourth "lee": the family block (4 > 3) is no longer expanded; f1 and f2 keep the
    # pairs their e-mail blocks make, though no record of those blocks changed
    _write(ctx, [("f4", None, "lee", "di")])
    report = run_block(ctx)
    assert not report.full and report.records_changed == 1
    assert _pairs(ctx) == {("f1", "x1", mail), ("f2", "x2", mail)}
    assert report.pairs_retired == 3
    _same_as_full(spark, ctx, tmp_path / "full1")

    # f4 leaves (an erasure deletes the record and leaves the rest to block): its index
    # rows go and the block is expanded again
    f4_rows = {r for r in _index(ctx) if r[1] == "f4"}
    assert f4_rows
    io.delta_table(spark, ctx.lakehouse.ref(SILVER_PARTY_RECORDS)).delete(
        F.col("record_id") == "f4")
    report = run_block(ctx)
    assert not report.full and report.pairs_written == 3
    assert report.index_rows_retired == len(f4_rows)
    assert not {r for r in _index(ctx) if r[1] == "f4"}
    assert _pairs(ctx) == three
    _same_as_full(spark, ctx, tmp_path / "full2")

    # a record changes its e-mail (f1 leaves a@x for b@x; the b@x block grows to 3)
    _write(ctx, [("f1", "b@x.com", "lee", "ann")])
    run_block(ctx)
    assert _pairs(ctx) == {("f1", "f2", mail + fam), ("f1", "f3", fam), ("f2", "f3", fam),
                           ("f1", "x2", mail), ("f2", "x2", mail)}
    _same_as_full(spark, ctx, tmp_path / "full3")

    # a fourth "lee" again: of the unchanged members of the family block, f1 and f2 keep
    # their pair through the e-mail block they share (its methods lose the family rule);
    # f3's pairs go
    _write(ctx, [("f4", None, "lee", "di")])
    report = run_block(ctx)
    assert _pairs(ctx) == {("f1", "f2", mail), ("f1", "x2", mail), ("f2", "x2", mail)}
    assert report.pairs_retired == 2 and report.pairs_written == 1
    _same_as_full(spark, ctx, tmp_path / "full4")

    # f2 and x2 landed again in a file of another name: only their lineage (`_row_hash`
    # here, with `_batch_ids` in a real table) changes, so no key, pair or index row does
    pairs_ref = ctx.lakehouse.ref(SILVER_CANDIDATE_PAIRS)
    pairs_version, index_before = io.table_version(spark, pairs_ref), _index(ctx)
    relanded = io.read_table(spark, ctx.lakehouse.ref(SILVER_PARTY_RECORDS)).filter(
        F.col("record_id").isin("f2", "x2")).withColumn("_row_hash", F.lit("landed again"))
    io.merge_upsert(relanded, ctx.lakehouse.ref(SILVER_PARTY_RECORDS), ["record_id"])
    report = run_block(ctx)
    assert report.records_changed == 0 and report.pairs_written == 0
    assert io.table_version(spark, pairs_ref) == pairs_version
    assert _index(ctx) == index_before
    # the run moved its watermark past them: the next run blocks only what changes next
    _write(ctx, [("x2", "c@x.com", "park", "bo")])
    report = run_block(ctx)
    assert report.records_changed == 1 and report.pairs_retired == 2  # x2's with f1, f2
    _same_as_full(spark, ctx, tmp_path / "full5")

    # new records that join blocks without taking them over their cap (a stream's usual
    # batch): pairs and index rows are only appended, and a run killed after either append
    # finds its rows there when it runs again and writes nothing twice
    _write(ctx, [("n1", "c@x.com", "moon", "ed"), ("n2", None, "moon", "flo")])
    pairs_before = _pairs(ctx)
    for point in ("block:after_candidate_pairs", "block:after_block_keys"):
        monkeypatch.setenv(CRASH_AT, point)
        with pytest.raises(InjectedCrash):
            run_block(ctx)
        monkeypatch.delenv(CRASH_AT)
        assert _operation(ctx, SILVER_CANDIDATE_PAIRS) == "WRITE"  # an append
    assert _operation(ctx, SILVER_BLOCK_KEYS) == "WRITE"
    pairs_version = io.table_version(spark, pairs_ref)
    index_version = io.table_version(spark, ctx.lakehouse.ref(SILVER_BLOCK_KEYS))
    report = run_block(ctx)
    assert report.records_changed == 2 and report.pairs_written == 0
    assert io.table_version(spark, pairs_ref) == pairs_version
    assert io.table_version(spark, ctx.lakehouse.ref(SILVER_BLOCK_KEYS)) == index_version
    assert _pairs(ctx) - pairs_before == {("n1", "x2", mail), ("n1", "n2", fam)}
    assert len(_pairs(ctx)) == len(pairs_before) + 2  # once each
    _same_as_full(spark, ctx, tmp_path / "full6")
