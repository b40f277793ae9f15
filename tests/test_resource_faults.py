"""Resource faults (issue 18 item 5): a source file deleted between listing and reading, a
damaged Delta log entry, a full disk under a write. Each: a clear failure naming the file
or table, nothing committed half-way, and the next run recovers."""

from __future__ import annotations

import json
import re
import shutil
import subprocess
import sys
from datetime import date
from pathlib import Path

import pytest
from _lakehouse import lakehouse_config
from pyspark.sql import SparkSession
from pyspark.sql import functions as F

from udp_spark import io
from udp_spark.generate import generate
from udp_spark.pipeline.context import StageContext
from udp_spark.pipeline.ingest import IngestError, run_ingest

pytestmark = pytest.mark.slow  # each runs stages on a generated lakehouse

def _data(base: Path) -> Path:
    """20 generated people; the web shop's customers in two files."""
    data = base / "data"
    generate(data, people=20, seed=3)
    first = data / "webshop" / "customers.jsonl"
    lines = first.read_text(encoding="utf-8").splitlines(keepends=True)
    first.write_text("".join(lines[: len(lines) // 2]), encoding="utf-8")
    (data / "webshop" / "customers_b.jsonl").write_text(
        "".join(lines[len(lines) // 2:]), encoding="utf-8")
    return data


def _rows_per_file(spark: SparkSession, ctx: StageContext, source: str) -> dict[str, int]:
    df = io.read_table(spark, ctx.lakehouse.bronze(source))
    return {r["_file"].rsplit("/", 1)[-1]: int(r["n"]) for r in
            df.groupBy("_file").agg(F.count("*").alias("n")).collect()}


def test_source_file_deleted_between_listing_and_reading(
        spark: SparkSession, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    data = _data(tmp_path)
    gone = data / "webshop" / "customers_b.jsonl"
    kept_lines = len((data / "webshop" / "customers.jsonl").read_text().splitlines())
    ctx = StageContext(spark, lakehouse_config(tmp_path, as_of=date(2026, 6, 30)))
    listing = io.list_source_files

    def list_then_lose_one(*args: object, **kwargs: object) -> list[tuple[str, str]]:
        files = listing(*args, **kwargs)  # type: ignore[arg-type]
        if gone.exists() and any(p.endswith("customers_b.jsonl") for p, _ in files):
            gone.unlink()  # another process moved it away after the listing
        return files

    monkeypatch.setattr(io, "list_source_files", list_then_lose_one)
    with pytest.raises(IngestError) as failed:
        run_ingest(ctx)
    report = failed.value.report
    assert [s.source for s in report.failed] == ["webshop_customers"], str(failed.value)
    # the error names the file that vanished
    assert "customers_b.jsonl" in str(failed.value), str(failed.value)
    # nothing of that source was committed; every other source landed whole
    assert not io.table_exists(spark, ctx.lakehouse.bronze("webshop_customers"))
    landed = {s.source for s in report.sources if s.rows_written > 0}
    assert landed == set(ctx.cfg.sources) - {"webshop_customers"}

    monkeypatch.undo()
    again = run_ingest(ctx)  # the next run lands what is there now, once
    assert not again.failed
    assert _rows_per_file(spark, ctx, "webshop_customers") == {"customers.jsonl": kept_lines}
    assert all(s.rows_written == 0 for s in again.sources if s.source != "webshop_customers")


def _can_mount_tmpfs(where: Path) -> bool:
    """A size-limited folder without touching the machine: a tmpfs in a private mount
    namespace (``unshare -rm``; needs user namespaces)."""
    if shutil.which("unshare") is None:
        return False
    probe = subprocess.run(["unshare", "-rm", "sh", "-c",
                            f"mount -t tmpfs -o size=1m tmpfs '{where}'"],
                           capture_output=True, check=False)
    return probe.returncode == 0


# Ends with os._exit once the file is written and closed: delta-rs' native threads can abort
# the interpreter's shutdown ("terminate called without an active exception", SIGABRT), seen
# once in a full-suite run on a busy machine, after the rows were read.
DUMP = ("import json, os, sys; from udp_spark.chaos import table_rows; "
        "rows = table_rows(__import__('pathlib').Path(sys.argv[1])); "
        "f = open(sys.argv[2], 'w'); "
        "json.dump({t: sorted(c.elements()) for t, c in rows.items()}, f); f.close(); "
        "os._exit(0)")


def test_disk_full_during_a_write(spark: SparkSession, tmp_path: Path) -> None:
    """standardize with its lakehouse on a nearly full 64 MB tmpfs: it fails naming the
    table it was writing and that nothing of it was committed; every table is then either
    untouched or whole (as an uninterrupted run wrote it); with space freed the next run
    leaves the lakehouse as the uninterrupted run did."""
    from udp_spark.chaos import Harness
    from udp_spark.pipeline.standardize import run_standardize

    lake = tmp_path / "lake"
    lake.mkdir()
    if not _can_mount_tmpfs(lake):
        pytest.skip("no size-limited folder here (unshare -rm + tmpfs): the manual run is "
                    "in docs/reliability.md")
    data = _data(tmp_path)
    cfg = Harness(tmp_path, 20, 3).config()
    py = sys.executable
    udp = f"'{py}' -m udp_spark.cli {{}} --config '{cfg}' --data-root '{data}' --lakehouse '{lake}'"
    out = tmp_path / "out"
    out.mkdir()
    # The uninterrupted run, in this process, on the ordinary disk, same paths; the
    # lakehouse after ingest is what the tmpfs starts from.
    ctx = StageContext(spark, lakehouse_config(tmp_path, as_of=date(2026, 6, 30)))
    run_ingest(ctx)
    ingested = tmp_path / "ingested"
    shutil.copytree(lake, ingested)
    run_standardize(ctx)
    subprocess.run([py, "-c", DUMP, str(lake), str(out / "reference.json")], check=True)
    party = lake / "silver" / "party_records"
    room = sum(p.stat().st_size // 4096 * 4096 + 4096 for p in party.rglob("*") if p.is_file())
    shutil.rmtree(lake)
    lake.mkdir()
    # The same standardize, in a new process, on a tmpfs filled up to leave room for about
    # one table's files.
    script = f"""
set -u
mount -t tmpfs -o size=64m tmpfs '{lake}' || exit 90
cp -r '{ingested}/.' '{lake}/' || exit 91
'{py}' -c "import os, sys; s = os.statvfs(sys.argv[1]); free = s.f_bavail * s.f_frsize
open(sys.argv[1] + '/filler', 'wb').write(bytes(max(0, free - int(sys.argv[2]))))" '{lake}' {room}
{udp.format('standardize')} > '{out}/full.log' 2>&1; echo $? > '{out}/full.rc'
cp -r '{lake}' '{out}/after_failure_lake' || exit 92
rm '{lake}/filler'
{udp.format('standardize')} > '{out}/again.log' 2>&1; echo $? > '{out}/again.rc'
rm -rf '{lake}/filler'; cp -r '{lake}' '{out}/final_lake' || exit 93
"""
    ns = subprocess.run(["unshare", "-rm", "sh", "-c", script], cwd=tmp_path,
                        capture_output=True, text=True, check=False, timeout=1800)
    assert ns.returncode == 0, (ns.stdout, ns.stderr, *(
        p.read_text() for p in out.glob("*.log")))
    # The tables are read back outside the namespace, from copies made inside it (delta-rs
    # aborted, "terminate called without an active exception", when run in the namespace).
    for name in ("after_failure", "final"):
        subprocess.run([py, "-c", DUMP, str(out / f"{name}_lake"), str(out / f"{name}.json")],
                       check=True)
    full_log = (out / "full.log").read_text()
    assert (out / "full.rc").read_text().strip() != "0", full_log[-3000:]
    named = re.search(r"(silver|privacy)\.\w+ \([^)]*\): the storage is full "
                      r"\(No space left on device\)", full_log)
    assert named, full_log[-5000:]
    assert "nothing of this write was committed" in full_log
    reference = json.loads((out / "reference.json").read_text())
    after = json.loads((out / "after_failure.json").read_text())  # every version readable
    for table, rows in after.items():  # untouched (bronze) or whole, never half
        assert rows == reference[table], table
    assert (out / "again.rc").read_text().strip() == "0", (out / "again.log").read_text()
    assert json.loads((out / "final.json").read_text()) == reference


def _new_process(spark: SparkSession) -> None:
    """Forget what this process knows of the tables' logs, as the next run (a new process)
    would: Delta's cached snapshots and the log entries already checked."""
    spark._jvm.org.apache.spark.sql.delta.DeltaLog.clearCache()  # type: ignore[union-attr]
    io._sound_entries.clear()


def test_damaged_delta_log_entry(spark: SparkSession, tmp_path: Path) -> None:
    from udp_spark.chaos import delta_tables, table_rows
    from udp_spark.pipeline.standardize import run_standardize

    _data(tmp_path)
    ctx = StageContext(spark, lakehouse_config(tmp_path, as_of=date(2026, 6, 30)))
    run_ingest(ctx)
    run_standardize(ctx)
    lake = tmp_path / "lake"
    whole = table_rows(lake)
    entry = max((lake / "silver" / "party_records" / "_delta_log").glob("*.json"))
    text = entry.read_text()
    entry.write_text(text[: len(text) // 2])  # truncated after the fact
    logs = {t: sorted(p.name for p in (d / "_delta_log").glob("*.json"))
            for t, d in delta_tables(lake).items() if not t.startswith("audit.")}

    _new_process(spark)
    with pytest.raises(io.TableLogError) as damaged:
        run_standardize(ctx, full=True)
    message = str(damaged.value)
    assert "silver/party_records" in message and entry.name in message, message
    # a local file system keeps a checksum of each file: the damage shows there first
    assert ("is not JSON" in message or "do not match the checksum" in message), message
    assert "move it and its checksum files (.crc) aside" in message, message
    # nothing was committed by the failed run
    assert logs == {t: sorted(p.name for p in (d / "_delta_log").glob("*.json"))
                    for t, d in delta_tables(lake).items() if not t.startswith("audit.")}

    for damaged_file in (entry, entry.with_suffix(".crc"),  # the fix the message gives
                         entry.with_name(f".{entry.name}.crc")):
        if damaged_file.exists():
            damaged_file.rename(tmp_path / damaged_file.name)
    _new_process(spark)
    run_standardize(ctx, full=True)
    assert table_rows(lake) == whole
