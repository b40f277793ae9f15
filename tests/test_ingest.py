"""Ingest on real files and real Delta tables: nothing lost, nothing landed twice."""

from __future__ import annotations

import json
import os
import time
from pathlib import Path

import pytest
from pyspark.sql import SparkSession

from udp_spark import io
from udp_spark.config import PipelineConfig, SourceConfig
from udp_spark.pipeline.context import StageContext
from udp_spark.pipeline.ingest import IngestError, run_ingest
from udp_spark.tables import AUDIT_RUNS

CSV = (
    "id,first,last,email\n"
    "1,Ann,Lee,ann@x.com\n"
    '2,"Bob",Ray,"bob@x.com"\n'
    '3,"broken quote,Ray\n'
    "4,Cy,Doe,cy@x.com,EXTRA_FIELD\n"
)


def _cfg(tmp: Path, sources: list[SourceConfig]) -> PipelineConfig:
    return PipelineConfig(data_root=str(tmp / "in"), lakehouse={"root": str(tmp / "lake")},
                          sources={s.name: s for s in sources}, config_hash="test")


def _csv_source(**kw: object) -> SourceConfig:
    return SourceConfig(name="people", format="csv", path="people/*.csv", trust_rank=1,
                        columns=("id", "first", "last", "email"),
                        party={"source_key": "id", "given_name": "first",
                               "family_name": "last", "email": "email"}, **kw)


def test_csv_rows_all_land_and_relanding_is_a_noop(spark: SparkSession, tmp_path: Path) -> None:
    (tmp_path / "in" / "people").mkdir(parents=True)
    (tmp_path / "in" / "people" / "a.csv").write_text(CSV)
    ctx = StageContext(spark, _cfg(tmp_path, [_csv_source()]))
    first = run_ingest(ctx)
    ref = ctx.lakehouse.bronze("people")
    bronze = io.read_table(spark, ref)
    assert first.sources[0].rows_written == 4 == bronze.count()  # 4 data lines, none lost
    corrupt = {r["id"]: r["_corrupt_record"] for r in bronze.collect()}
    assert corrupt["1"] is None and corrupt["2"] is None
    assert corrupt["3"] is not None and corrupt["4"] == "4,Cy,Doe,cy@x.com,EXTRA_FIELD"
    version = io.table_version(spark, ref)

    second = run_ingest(ctx)
    assert second.sources[0].batches_new == 0 and second.rows_written == 0
    assert io.read_table(spark, ref).count() == 4
    assert io.table_version(spark, ref) == version  # not even an empty commit

    # A new file is a new batch; the old one is still not landed again.
    (tmp_path / "in" / "people" / "b.csv").write_text("id,first,last,email\n5,Di,Fox,d@x.com\n")
    third = run_ingest(ctx)
    assert third.sources[0].batches_new == 1 and third.rows_written == 1
    assert io.read_table(spark, ref).count() == 5
    runs = io.read_table(spark, ctx.lakehouse.ref(AUDIT_RUNS))
    assert runs.filter("stage = 'ingest' and status = 'succeeded'").count() == 3


def test_changed_file_is_a_new_batch(spark: SparkSession, tmp_path: Path) -> None:
    f = tmp_path / "in" / "people" / "a.csv"
    f.parent.mkdir(parents=True)
    f.write_text("id,first,last,email\n1,Ann,Lee,a@x.com\n")
    ctx = StageContext(spark, _cfg(tmp_path, [_csv_source()]))
    run_ingest(ctx)
    f.write_text("id,first,last,email\n1,Ann,Lee-Ray,a@x.com\n")
    os.utime(f, (time.time() + 5, time.time() + 5))
    assert run_ingest(ctx).rows_written == 1
    rows = io.read_table(spark, ctx.lakehouse.bronze("people")).select("last").collect()
    assert sorted(r["last"] for r in rows) == ["Lee", "Lee-Ray"]


def test_json_extra_keys_are_rescued(spark: SparkSession, tmp_path: Path) -> None:
    d = tmp_path / "in" / "shop"
    d.mkdir(parents=True)
    lines = [{"id": "w1", "name": {"first": "Ann"}, "total": 12.5},
             {"id": "w2", "name": {"first": "Bo"}, "total": 3, "referrer": "ad"}]
    (d / "c.jsonl").write_text("\n".join(json.dumps(x) for x in lines) + "\n{not json\n")
    src = SourceConfig(name="shop", format="json", path="shop/*.jsonl", trust_rank=2,
                       columns=("id", "name", "total"),
                       party={"source_key": "id", "given_name": "name.first"})
    ctx = StageContext(spark, _cfg(tmp_path, [src]))
    report = run_ingest(ctx)
    assert report.sources[0].rescued_columns == ["referrer"]
    rows = {r["id"]: r for r in io.read_table(spark, ctx.lakehouse.bronze("shop")).collect()}
    assert rows["w2"]["_rescued_data"] == '{"referrer":"ad"}'
    assert rows["w1"]["_rescued_data"] is None
    assert rows["w1"]["name"]["first"] == "Ann" and rows["w1"]["total"] == "12.5"
    assert rows[None]["_corrupt_record"] == "{not json"


def test_missing_source_path_is_a_clear_error(spark: SparkSession, tmp_path: Path) -> None:
    ctx = StageContext(spark, _cfg(tmp_path, [_csv_source()]))
    with pytest.raises(io.SourceReadError, match="source 'people': no files at"):
        run_ingest(ctx)


def _people(tmp: Path, folder: str, text: str | bytes, name: str = "a.csv") -> None:
    d = tmp / "in" / folder
    d.mkdir(parents=True, exist_ok=True)
    if isinstance(text, bytes):
        (d / name).write_bytes(text)
    else:
        (d / name).write_text(text)


def _named(name: str, **kw: object) -> SourceConfig:
    return _csv_source().model_copy(update={"name": name, "path": f"{name}/*.csv", **kw})


GOOD = "id,first,last,email\n1,Ann,Lee,ann@x.com\n"


def test_one_failing_source_does_not_stop_the_others(spark: SparkSession,
                                                      tmp_path: Path) -> None:
    _people(tmp_path, "a_first", GOOD)
    _people(tmp_path, "c_last", GOOD)  # b_gone has no folder at all
    ctx = StageContext(spark, _cfg(tmp_path, [_named("a_first"), _named("b_gone"),
                                              _named("c_last")]))
    with pytest.raises(IngestError) as err:
        run_ingest(ctx)
    report = err.value.report
    assert [s.source for s in report.failed] == ["b_gone"]
    assert "source 'b_gone': no files at" in report.failed[0].error
    assert "1 of 3 sources failed" in str(err.value) and "b_gone" in str(err.value)
    for landed in ("a_first", "c_last"):  # the sources after the bad one were landed too
        assert io.read_table(spark, ctx.lakehouse.bronze(landed)).count() == 1
    run = io.read_table(spark, ctx.lakehouse.ref(AUDIT_RUNS)).filter("stage = 'ingest'").first()
    assert run["status"] == "failed" and "b_gone" in run["error"]
    assert run["row_counts"] == {"bronze.a_first": 1, "bronze.b_gone": 0, "bronze.c_last": 1}


def test_header_of_garbage_bytes_fails_that_source_naming_the_file(spark: SparkSession,
                                                                   tmp_path: Path) -> None:
    # Random bytes as a "CSV": the header line holds backticks, quotes and control bytes.
    _people(tmp_path, "junk", b"\x89`P\xff\"N`G\x00\x1a,\x0b`\x7f\n\x01\x02,\xfe\xfd\n",
            name="random.csv")
    _people(tmp_path, "people", GOOD)
    ctx = StageContext(spark, _cfg(tmp_path, [_named("junk", columns=()), _csv_source()]))
    with pytest.raises(IngestError) as err:
        run_ingest(ctx)
    (failed,) = err.value.report.failed
    assert failed.source == "junk" and failed.file is not None
    assert failed.file.endswith("junk/random.csv")
    assert "party.source_key maps column 'id'" in failed.error
    assert not io.table_exists(spark, ctx.lakehouse.bronze("junk"))
    assert io.read_table(spark, ctx.lakehouse.bronze("people")).count() == 1


def test_mapped_column_missing_from_the_file_fails_before_any_write(spark: SparkSession,
                                                                    tmp_path: Path) -> None:
    _people(tmp_path, "people", "id,first,last\n1,Ann,Lee\n")  # no email column
    ctx = StageContext(spark, _cfg(tmp_path, [_csv_source()]))
    with pytest.raises(IngestError) as err:
        run_ingest(ctx)
    (failed,) = err.value.report.failed
    assert failed.source == "people" and failed.file and failed.file.endswith("people/a.csv")
    assert "party.email maps column 'email'" in failed.error
    assert "its columns are ['id', 'first', 'last']" in failed.error
    assert not io.table_exists(spark, ctx.lakehouse.bronze("people"))


def test_wrong_delimiter_fails_the_source_suggesting_sep(spark: SparkSession,
                                                         tmp_path: Path) -> None:
    _people(tmp_path, "people", "id;first;last;email\n1;Ann;Lee;ann@x.com\n")
    ctx = StageContext(spark, _cfg(tmp_path, [_csv_source()]))
    with pytest.raises(IngestError) as err:
        run_ingest(ctx)
    (failed,) = err.value.report.failed
    assert "reads as one column 'id;first;last;email' with separator ','" in failed.error
    assert "set options: {sep: ';'}" in failed.error
    assert not io.table_exists(spark, ctx.lakehouse.bronze("people"))


def test_empty_file_is_reported_by_name_and_the_others_land(spark: SparkSession,
                                                            tmp_path: Path) -> None:
    _people(tmp_path, "people", "", name="a_empty.csv")  # 0 bytes, first in the listing
    _people(tmp_path, "people", GOOD, name="b.csv")
    _people(tmp_path, "people", "id,first,last,email\n", name="c_header_only.csv")
    _people(tmp_path, "nothing", "", name="only.csv")
    ctx = StageContext(spark, _cfg(tmp_path, [_csv_source(), _named("nothing")]))
    report = run_ingest(ctx)  # no source failed
    people, nothing = sorted(report.sources, key=lambda s: s.source != "people")
    assert [Path(f).name for f in people.empty_files] == ["a_empty.csv"]
    assert people.batches_seen == 2 and people.rows_written == 1
    assert [Path(f).name for f in nothing.empty_files] == ["only.csv"]
    assert nothing.rows_written == 0 and nothing.error is None
    rows = io.read_table(spark, ctx.lakehouse.bronze("people")).select("id", "_file").collect()
    assert [(r["id"], Path(r["_file"]).name) for r in rows] == [("1", "b.csv")]


def test_latin1_text_is_flagged_per_file_and_lands_right_with_encoding(
        spark: SparkSession, tmp_path: Path) -> None:
    latin1 = "id,first,last,email\n1,José,Muñoz,j@x.com\n2,Ann,Lee,a@x.com\n".encode("latin-1")
    _people(tmp_path, "people", latin1)
    _people(tmp_path, "decoded", latin1)
    ctx = StageContext(spark, _cfg(tmp_path, [
        _csv_source(), _named("decoded", options={"encoding": "ISO-8859-1"})]))
    report = {s.source: s for s in run_ingest(ctx).sources}
    (file, n), = report["people"].undecodable_rows.items()
    assert file.endswith("people/a.csv") and n == 1
    assert report["decoded"].undecodable_rows == {}
    row = io.read_table(spark, ctx.lakehouse.bronze("decoded")).filter("id = '1'").first()
    assert (row["first"], row["last"]) == ("José", "Muñoz")
    run = io.read_table(spark, ctx.lakehouse.ref(AUDIT_RUNS)).first()
    assert run["row_counts"]["bronze.people.undecodable_rows"] == 1
