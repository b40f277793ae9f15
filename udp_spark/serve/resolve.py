"""Real-time resolution for ``POST /v1/resolve``: which existing customers a person record
probably is, without Spark.

* The matcher is the Fellegi-Sunter model the score stage uses (``matching.model``'s
  registered name at its alias, read from MLflow's registry) with the term frequencies
  frozen for that version in ``silver.match_term_frequencies`` (read with delta-rs), so a
  pair scores what ``udp explain`` says (:class:`udp_spark.matching.pairwise.PairScorer`).
* Candidates come from an in-process index over ``silver.party_records`` keyed by the
  deterministic blocking keys and rules of ``matching.blocking`` (LSH bands are not
  computed: a record that only LSH would pair is not found). A key expression this module
  cannot evaluate without Spark (anything but a column, ``substring``, ``substring_index``
  or ``identifiers['...']``) is left out, with a warning at start.
* The incoming record is standardized by :mod:`udp_spark.standardize.pure`.

A poller reloads what moved (the records table, the term-frequency table, the alias) and
swaps in a new :class:`ResolverState` by one assignment, as the snapshot store does. A new
version of the records table is taken in from its change data feed (the rows a micro-batch
or publish inserted, updated or deleted: milliseconds) rather than by indexing every record
again (about 9 s of Python for 217k records, holding the interpreter lock that look-ups need);
the full load comes back when the feed cannot be read (vacuumed away) or would be larger
than a reload, and when a quarter of the loaded rows have been replaced since the last one.
"""

from __future__ import annotations

import functools
import hashlib
import json
import logging
import re
import tempfile
import threading
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from datetime import date
from pathlib import Path
from typing import Any

import pyarrow as pa
import pyarrow.compute as pc
from deltalake import DeltaTable

from udp_spark.config import BlockingSettings, IdentifierComparison, PipelineConfig
from udp_spark.matching.fellegi_sunter import FSModel
from udp_spark.matching.pairwise import (
    EMAIL_NAME_KEY,
    IDENTIFIER_PREFIX,
    PairScore,
    PairScorer,
)
from udp_spark.serve.snapshot import read_table, settle_heap
from udp_spark.standardize.pure import PartyFields, identifier_value, party_fields

log = logging.getLogger(__name__)

#: the party-record columns the comparisons read (comparisons.RECORD_COLUMNS, which
#: importing would import Spark; tests/test_resolve_parity.py checks they agree)
RECORD_COLUMNS = (
    "record_id", "source", "given_name_norm", "given_name_aliases", "middle_name_norm",
    "family_name_norm", "family_name_phonetic", "date_of_birth", "birth_year",
    "email_canonical", "phone_e164", "mobile_e164", "street_norm", "postcode", "city_norm",
    "loyalty_id", "gender",
)
MAX_CANDIDATE_RECORDS = 2000  # records scored per request at most (largest blocks last)
MODEL_POLL_SECONDS = 5.0
#: a change feed of more rows than this share of the index is taken in by a full reload
RELOAD_SHARE = 0.25

KeyFn = Callable[[Mapping[str, Any]], Any]

_COLUMN = re.compile(r"^`?([A-Za-z_][A-Za-z0-9_]*)`?$")
_SUBSTRING = re.compile(r"^substr(?:ing)?\(\s*`?([A-Za-z_]\w*)`?\s*,\s*(-?\d+)\s*"
                        r"(?:,\s*(\d+)\s*)?\)$", re.IGNORECASE)
_SUBSTRING_INDEX = re.compile(r"^substring_index\(\s*`?([A-Za-z_]\w*)`?\s*,\s*'([^']*)'\s*,"
                              r"\s*(-?\d+)\s*\)$", re.IGNORECASE)
_LETTERS = re.compile("[^a-z]")
_IDENTIFIER = re.compile(r"""^identifiers\s*\[\s*(?:'([^']+)'|"([^"]+)")\s*\]$""")


def _sql_string(value: Any) -> str | None:
    """``cast(value as string)`` for the types party records hold."""
    if value is None:
        return None
    if isinstance(value, date):
        return value.isoformat()
    if isinstance(value, bool):
        return "true" if value else "false"
    return str(value)


def _substring(text: str, pos: int, length: int | None) -> str:
    """Spark's ``substring(text, pos, length)`` (1-based; negative from the end)."""
    n = len(text)
    start = pos - 1 if pos > 0 else (n + pos if pos < 0 else 0)
    end = n if length is None else start + length
    start = max(start, 0)
    return "" if start >= end else text[start:end]


def _substring_index(text: str, delim: str, count: int) -> str:
    if not delim or count == 0:
        return ""
    parts = text.split(delim)
    return delim.join(parts[:count] if count > 0 else parts[count:])


def key_function(expression: str) -> tuple[KeyFn, str] | None:
    """A Python evaluator of a blocking or identifier expression over a record dict, and
    the column it reads; None for an expression only Spark can evaluate."""
    expr = expression.strip()
    if m := _IDENTIFIER.match(expr):
        key = m.group(1) or m.group(2)
        return (lambda r: (r.get("identifiers") or {}).get(key)), "identifiers"
    if m := _COLUMN.match(expr):
        col = m.group(1)
        return (lambda r: r.get(col)), col
    if m := _SUBSTRING.match(expr):
        col, pos, length = m.group(1), int(m.group(2)), m.group(3)
        n = int(length) if length is not None else None

        def sub(r: Mapping[str, Any]) -> str | None:
            text = _sql_string(r.get(col))
            return None if text is None else _substring(text, pos, n)

        return sub, col
    if m := _SUBSTRING_INDEX.match(expr):
        col, delim, count = m.group(1), m.group(2), int(m.group(3))

        def subi(r: Mapping[str, Any]) -> str | None:
            text = _sql_string(r.get(col))
            return None if text is None else _substring_index(text, delim, count)

        return subi, col
    return None


def _non_empty(value: Any) -> str | None:
    """``blocking._non_empty``: trim (spaces) of the value as a string, '' as None."""
    text = _sql_string(value)
    if text is None:
        return None
    text = text.strip(" ")
    return text or None


@dataclass(frozen=True)
class BlockKeys:
    """The deterministic blocking keys and rules of ``matching.blocking`` as Python
    functions, naming blocks as ``blocking.block_keys`` does (``key:<name>:<value>``,
    ``rule:<name>:<v1>|<v2>``)."""

    keys: tuple[tuple[str, tuple[KeyFn, ...]], ...]
    rules: tuple[tuple[str, tuple[KeyFn, ...]], ...]
    columns: frozenset[str]
    skipped: tuple[str, ...]
    email_names: bool = False

    @classmethod
    def from_settings(cls, settings: BlockingSettings) -> BlockKeys:
        keys: list[tuple[str, tuple[KeyFn, ...]]] = []
        rules: list[tuple[str, tuple[KeyFn, ...]]] = []
        columns: set[str] = set()
        skipped: list[str] = []
        for kind, items, out in (("keys", settings.keys, keys), ("rules", settings.rules, rules)):
            for item in items:
                fns = [key_function(c) for c in item.columns]
                if any(f is None for f in fns):
                    skipped.append(f"{kind}.{item.name}")
                    continue
                out.append((item.name, tuple(f[0] for f in fns if f is not None)))
                columns.update(f[1] for f in fns if f is not None)
        if skipped:
            log.warning("resolve: blocking %s use expressions only Spark evaluates: /resolve "
                        "finds no candidates through them", ", ".join(skipped))
        if settings.email_names:
            columns.update(("given_name_norm", "family_name_norm", "email_canonical"))
        return cls(tuple(keys), tuple(rules), frozenset(columns), tuple(skipped),
                   settings.email_names)

    def blocks(self, record: Mapping[str, Any]) -> list[str]:
        out: list[str] = []
        for name, fns in self.keys:
            values = dict.fromkeys(v for f in fns if (v := _non_empty(f(record))) is not None)
            out += [f"key:{name}:{v}" for v in values]
        if self.email_names:
            out += [f"key:{EMAIL_NAME_KEY}:{v}" for v in _email_name_values(record)]
        for name, fns in self.rules:
            parts = [_non_empty(f(record)) for f in fns]
            if all(p is not None for p in parts):
                out.append(f"rule:{name}:" + "|".join(p for p in parts if p is not None))
        return list(dict.fromkeys(out))


def _email_name_values(record: Mapping[str, Any]) -> list[str]:
    """``blocking.email_name_keys``'s values of one record."""
    given, family = record.get("given_name_norm"), record.get("family_name_norm")
    if given is None and family is None:
        mail = record.get("email_canonical")
        values = [] if mail is None else [_LETTERS.sub("", str(mail).split("@", 1)[0])]
    elif given is None or family is None:
        values = []
    else:
        g, f = _LETTERS.sub("", str(given)), _LETTERS.sub("", str(family))
        values = [g + f, f + g]
    return [v for v in dict.fromkeys(values) if v]


def identifier_columns(identifiers: tuple[IdentifierComparison, ...]
                       ) -> Callable[[dict[str, Any]], dict[str, Any]]:
    """record -> the record with ``idc_<name>`` for every identifier comparison, as
    ``comparisons.with_identifier_columns`` (None where the expression needs Spark)."""
    fns: list[tuple[str, KeyFn | None]] = []
    for i in identifiers:
        found = key_function(i.expression)
        if found is None:
            log.warning("resolve: identifier %s's expression %r needs Spark: /resolve "
                        "compares it as missing", i.name, i.expression)
        fns.append((f"{IDENTIFIER_PREFIX}{i.name}", found[0] if found else None))

    def add(record: dict[str, Any]) -> dict[str, Any]:
        for col, fn in fns:
            value = fn(record) if fn is not None else None
            record[col] = identifier_value(_sql_string(value))
        return record

    return add


def _plain_record(row: dict[str, Any]) -> dict[str, Any]:
    ids = row.get("identifiers")
    if isinstance(ids, list):  # Arrow maps come as lists of (key, value)
        row["identifiers"] = {k: v for k, v in ids if v is not None}
    return row


def read_columns(dt: DeltaTable, columns: list[str]) -> pa.Table:
    """The table's ``columns`` at its loaded version (Spark's INT96 times as microseconds,
    as ``snapshot.read_table``)."""
    present = [c for c in columns if c in {f.name for f in dt.schema().fields}]
    return read_table(dt, present)


@dataclass(frozen=True)
class ResolverState:
    """Everything a resolve request reads, from one load."""

    scorer: PairScorer | None = None
    model_version: str | None = None
    records: pa.Table | None = None
    #: block -> rows of ``records`` in it, every block (the oversized ones are skipped
    #: when candidates are gathered, so that a change can bring a block under the limit)
    by_block: dict[str, tuple[int, ...]] = field(default_factory=dict)
    versions: dict[str, int | None] = field(default_factory=dict)
    unavailable: str | None = "not loaded yet"
    alias_version: str | None = None  # the version behind the alias when last loaded
    row_of: dict[str, int] = field(default_factory=dict)  # record_id -> its live row
    stale_rows: int = 0  # rows of ``records`` changed or deleted since the last full load


@dataclass(frozen=True)
class RecordMatch:
    record_id: str
    source: str
    score: PairScore


class Resolver:
    """The index and matcher behind ``/v1/resolve``; :meth:`refresh` reloads what moved.

    Args:
        cfg: the pipeline config (matching and standardize settings, MLflow).
        records_path, tf_path: ``silver.party_records``, ``silver.match_term_frequencies``.
        default_region: region of phone numbers given without +country.
    """

    def __init__(self, cfg: PipelineConfig, records_path: str, tf_path: str,
                 default_region: str, refresh_seconds: float = 1.0) -> None:
        self.cfg = cfg
        self.paths = {"silver.party_records": records_path,
                      "silver.match_term_frequencies": tf_path}
        self.default_region = default_region
        self.refresh_seconds = refresh_seconds
        self.blocking = BlockKeys.from_settings(cfg.matching.blocking)
        self.with_ids = identifier_columns(cfg.matching.identifiers)
        # the block stage's size cap of a block (the caps computed once, not per request)
        self.cap_of = functools.partial(cfg.matching.blocking.cap_of,
                                        caps=cfg.matching.blocking.block_caps())
        self.current = ResolverState()
        self._tables: dict[str, DeltaTable] = {}
        self._model: tuple[str, FSModel | None, str | None] | None = None  # version, model, why
        self._model_checked = 0.0
        self._lock = threading.Lock()
        self._stop = threading.Event()

    # --- loading ----------------------------------------------------------------------

    def _latest(self, name: str) -> DeltaTable | None:
        dt = self._tables.get(name)
        if dt is None:
            if not DeltaTable.is_deltatable(self.paths[name]):
                return None
            dt = self._tables[name] = DeltaTable(self.paths[name])
        else:
            dt.update_incremental()
        return dt

    def _alias_version(self) -> str:
        from mlflow import MlflowClient

        mcfg, ml = self.cfg.matching.model, self.cfg.mlflow
        client = MlflowClient(tracking_uri=ml.tracking_uri,
                              registry_uri=ml.registry_uri or ml.tracking_uri)
        return str(client.get_model_version_by_alias(mcfg.registered_name, mcfg.alias).version)

    def _load_model(self, version: str) -> tuple[FSModel | None, str | None]:
        """The Fellegi-Sunter model of ``version`` (its ``fs_model.json`` artifact), or
        None and why (a supervised matcher is not served: its trees need Spark)."""
        import mlflow.artifacts

        mcfg, ml = self.cfg.matching.model, self.cfg.mlflow
        # A models:/ URI is resolved in the registry given here; without one MLflow reads its
        # process default store (MLFLOW_TRACKING_URI), not the config's tracking URI: the
        # registry lives in the tracking store unless the config names another.
        with tempfile.TemporaryDirectory() as tmp:
            local = mlflow.artifacts.download_artifacts(
                artifact_uri=f"models:/{mcfg.registered_name}/{version}", dst_path=tmp,
                tracking_uri=ml.tracking_uri, registry_uri=ml.registry_uri or ml.tracking_uri)
            found = list(Path(local).rglob("fs_model.json"))
            if not found:
                return None, (f"model {mcfg.registered_name} version {version} is not a "
                              f"Fellegi-Sunter model: /resolve scores with Fellegi-Sunter only")
            return FSModel.from_json(found[0].read_text()), None

    def _model_now(self, force: bool) -> tuple[str, FSModel | None, str | None]:
        now = time.monotonic()
        if self._model is not None and not force and now - self._model_checked < max(
                MODEL_POLL_SECONDS, self.refresh_seconds):
            return self._model
        self._model_checked = now
        mcfg = self.cfg.matching.model
        try:
            version = self._alias_version()
        except Exception as exc:
            self._model = ("", None, f"no model {mcfg.registered_name}@{mcfg.alias} in the "
                           f"registry ({type(exc).__name__}): run `udp train`")
            return self._model
        if self._model is None or self._model[0] != version:
            model, why = self._load_model(version)
            self._model = (version, model, why)
            log.info("resolve: matcher %s version %s loaded", mcfg.registered_name, version)
        return self._model

    def _term_frequencies(self, dt: DeltaTable | None, model: FSModel, label: str
                          ) -> dict[str, dict[str, float]] | None:
        if not model.tf_columns:
            return {}
        if dt is None:
            return None
        table = read_columns(dt, ["model_version", "comparison", "value", "tf"])
        table = table.filter(pc.equal(table.column("model_version"), label))
        if table.num_rows == 0:
            return None
        tf: dict[str, dict[str, float]] = {c: {} for c in [*model.tf_columns, *model.joint_tf]}
        for comparison, value, freq in zip(table.column("comparison").to_pylist(),
                                           table.column("value").to_pylist(),
                                           table.column("tf").to_pylist(), strict=True):
            if comparison in tf and value is not None and freq is not None:
                tf[comparison][value] = float(freq)
        return tf

    def _block_rows(self, records: pa.Table) -> list[tuple[str | None, list[str]]]:
        """``(record_id, blocks)`` of each row of ``records``."""
        cols = {c: records.column(c).to_pylist() for c in records.column_names
                if c in self.blocking.columns or c in ("identifiers", "record_id")}
        if "identifiers" in cols:
            cols["identifiers"] = [dict(v) if v else {} for v in cols["identifiers"]]
        out = []
        for i in range(records.num_rows):
            row = {c: values[i] for c, values in cols.items()}
            out.append((row.get("record_id"), self.blocking.blocks(self.with_ids(row))))
        return out

    def _index(self, records: pa.Table) -> tuple[dict[str, tuple[int, ...]], dict[str, int]]:
        """``(block -> rows, record_id -> row)`` of every record."""
        groups: dict[str, list[int]] = {}
        row_of: dict[str, int] = {}
        for i, (rid, blocks) in enumerate(self._block_rows(records)):
            if rid is not None:
                row_of[rid] = i
            for block in blocks:
                groups.setdefault(block, []).append(i)
        return {b: tuple(rows) for b, rows in groups.items()}, row_of

    def _changed(self, dt: DeltaTable, state: ResolverState
                 ) -> tuple[pa.Table, dict[str, tuple[int, ...]], dict[str, int], int] | None:
        """``state``'s index brought to ``dt``'s version from the table's change data feed
        (copy on write: readers of ``state`` see it unchanged), or None when a full load is
        the way: no feed for those versions (vacuumed, disabled), or a large one.

        Per commit, the rows deleted or replaced (``delete``, ``update_preimage``) leave
        their blocks first, then the rows written (``insert``, ``update_postimage``) are
        appended to ``records`` and join theirs; a replaced row stays in ``records``,
        unreferenced, until the next full load."""
        old, new = state.versions.get("silver.party_records"), dt.version()
        records = state.records
        if old is None or records is None or new <= old:
            return None
        try:
            feed = pa.RecordBatchReader.from_stream(dt.load_cdf(
                starting_version=old + 1, ending_version=new,
                columns=[*records.column_names, "_change_type", "_commit_version"])
            ).read_all()
            rows = feed.select(records.column_names).cast(records.schema)
        except Exception as exc:  # vacuumed change files, feed off: reload instead
            log.info("resolve: no change feed for party_records %d..%d (%s): full reload",
                     old + 1, new, type(exc).__name__)
            return None
        if state.stale_rows + feed.num_rows > RELOAD_SHARE * max(len(state.row_of), 1):
            return None
        by_block = dict(state.by_block)
        row_of = dict(state.row_of)
        stale = state.stale_rows
        touched: dict[str, list[int]] = {}

        def members(block: str) -> list[int]:
            if block not in touched:
                touched[block] = list(by_block.get(block, ()))
            return touched[block]

        kinds = feed.column("_change_type").to_pylist()
        versions = feed.column("_commit_version").to_pylist()
        rids = rows.column("record_id").to_pylist()
        order = sorted(range(feed.num_rows), key=lambda i: (
            versions[i], kinds[i] not in ("delete", "update_preimage")))

        loaded = records

        def retire(rid: str) -> None:
            at = row_of.pop(rid)
            for block in self._block_rows(loaded.slice(at, 1))[0][1]:
                if at in (m := members(block)):
                    m.remove(at)

        pending: dict[str, int] = {}  # record_id -> its row in the feed, written at the end
        for i in order:
            rid = rids[i]
            if rid in pending:  # written earlier in this feed: that row never lands
                del pending[rid]
            elif rid in row_of:
                retire(rid)
                stale += 1
            if kinds[i] not in ("delete", "update_preimage"):
                pending[rid] = i
        if pending:
            added = rows.take(list(pending.values()))
            for j, (rid, blocks) in enumerate(self._block_rows(added)):
                row_of[str(rid)] = records.num_rows + j
                for block in blocks:
                    members(block).append(records.num_rows + j)
            # one chunk: take() over several concatenates them all first (4 ms a request
            # at 217k records against well under 0.1 ms)
            records = pa.concat_tables([records, added]).combine_chunks()
        for block, m in touched.items():
            if m:
                by_block[block] = tuple(m)
            else:
                by_block.pop(block, None)
        return records, by_block, row_of, stale

    def refresh(self, force: bool = False) -> bool:
        """Reload what moved; True when a new state was swapped in."""
        with self._lock:
            state = self.current
            version, model, why = self._model_now(force)
            dts = {name: self._latest(name) for name in self.paths}
            versions: dict[str, int | None] = {
                name: dt.version() if dt is not None else None for name, dt in dts.items()}
            versions_key = {**versions, "model": version or None}
            if not force and versions_key == {**state.versions, "model": state.alias_version}:
                return False
            started = time.perf_counter()
            label = f"{self.cfg.matching.model.registered_name}/{version}"
            unavailable = why
            scorer, served = None, version or None
            if model is not None:
                tf = self._term_frequencies(dts["silver.match_term_frequencies"], model, label)
                if tf is not None:
                    scorer = PairScorer(model, tf)
                elif state.scorer is not None and state.model_version != version:
                    # A new version scores nothing until `udp score` froze its term
                    # frequencies: until then the one silver.match_scores holds is served.
                    scorer, served = state.scorer, state.model_version
                    log.info("resolve: %s has no frozen term frequencies yet; still serving "
                             "version %s", label, served)
                else:
                    unavailable = (f"the term frequencies of {label} are not frozen yet: "
                                   f"run `udp score` with it")
            records, by_block = state.records, state.by_block
            row_of, stale, how = state.row_of, state.stale_rows, "unchanged"
            dt = dts["silver.party_records"]
            if dt is None:
                records, by_block, row_of, stale = None, {}, {}, 0
                unavailable = unavailable or "silver.party_records does not exist yet"
            elif versions["silver.party_records"] != state.versions.get(
                    "silver.party_records") or records is None or force:
                wanted = list(dict.fromkeys(
                    [*RECORD_COLUMNS, "identifiers", *sorted(self.blocking.columns)]))
                changed = None if force else self._changed(dt, state)
                if changed is not None:
                    records, by_block, row_of, stale = changed
                    how = "change feed"
                else:
                    records = read_columns(dt, wanted).combine_chunks()  # see _changed
                    (by_block, row_of), stale, how = self._index(records), 0, "full load"
            self.current = ResolverState(scorer, served, records, by_block, versions,
                                         unavailable if scorer is None or records is None
                                         else None, version or None, row_of, stale)
            settle_heap()
            log.info("resolve: index at %s by %s, model %s (%d records, %d blocks, %.0f ms)%s",
                     versions, how, version, len(row_of), len(by_block),
                     (time.perf_counter() - started) * 1000,
                     f"; unavailable: {self.current.unavailable}"
                     if self.current.unavailable else "")
            return True

    def run(self) -> None:
        while not self._stop.wait(self.refresh_seconds):
            try:
                self.refresh()
            except Exception as exc:  # keep answering from the last good state
                log.warning("resolve: refresh failed, still serving the previous index: %s",
                            exc)

    def start(self) -> None:
        try:
            self.refresh(force=True)
        except Exception as exc:
            log.warning("resolve: first load failed (retried every %.1f s): %s",
                        self.refresh_seconds, exc)
        # The first request would build the nickname, country and phone tables (about
        # 0.1 s): built here instead.
        self.standardize({"given_name": "Ann", "country": "US", "phone": "2025550143"},
                         date.today())
        threading.Thread(target=self.run, name="udp-serve-resolve", daemon=True).start()

    def stop(self) -> None:
        self._stop.set()

    # --- requests ---------------------------------------------------------------------

    def standardize(self, raw: Mapping[str, Any], today: date) -> PartyFields:
        """The incoming record standardized as ``udp standardize`` would (a source whose
        default country is the API's ``default_region``)."""
        s = self.cfg.standardize
        fields = party_fields(raw, default_country=self.default_region, today=today,
                              min_birth_year=s.min_birth_year,
                              placeholder_emails=s.placeholder_emails,
                              placeholder_dates_of_birth=s.placeholder_dates_of_birth)
        self.with_ids(fields.values)
        return fields

    @staticmethod
    def fingerprint(record: Mapping[str, Any]) -> str:
        """A stable text of the standardized record (hashed by the access log, never
        stored as it is)."""
        return hashlib.sha256(json.dumps(record, sort_keys=True, default=str).encode()
                              ).hexdigest()

    def candidates(self, state: ResolverState, record: Mapping[str, Any]) -> list[int]:
        """Rows sharing a block with ``record``, smallest blocks first, at most
        MAX_CANDIDATE_RECORDS."""
        # blocks the block stage would expand with one more record
        blocks = sorted((m for b in self.blocking.blocks(record)
                         if len(m := state.by_block.get(b, ())) < self.cap_of(b)), key=len)
        rows: dict[int, None] = {}
        for members in blocks:
            rows.update(dict.fromkeys(members))
            if len(rows) >= MAX_CANDIDATE_RECORDS:
                break
        return list(rows)[:MAX_CANDIDATE_RECORDS]

    def match(self, state: ResolverState, record: Mapping[str, Any]) -> list[RecordMatch]:
        """Every candidate record scored against ``record`` (the incoming record is the
        pair's left side: its values are looked up in the term-frequency tables)."""
        assert state.scorer is not None and state.records is not None
        rows = self.candidates(state, record)
        if not rows:
            return []
        out = []
        for row in state.records.take(rows).to_pylist():
            other = self.with_ids(_plain_record(row))
            out.append(RecordMatch(other["record_id"], other.get("source") or "",
                                   state.scorer.score(record, other)))
        return out
