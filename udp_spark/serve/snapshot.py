"""The in-process index the API answers from, read with delta-rs (no Spark, no JVM).

Each gold table is read whole at one committed version into plain Python structures
(JSON-ready dicts, look-up maps). A poller asks each table's Delta log for its latest
version every ``refresh_seconds``; a table that moved is read again and its part of the
index rebuilt, and a new :class:`Snapshot` replaces the old one by one reference
assignment. A request takes ``store.current`` once and answers from that object only, so
it never sees a table half written or two parts from different swaps.
"""

from __future__ import annotations

import dataclasses
import gc
import logging
import math
import re
import threading
import time
from collections.abc import Callable, Iterable, Iterator, Mapping
from dataclasses import dataclass, field
from datetime import UTC, date, datetime
from decimal import Decimal
from typing import Any

import phonenumbers
import pyarrow as pa
import pyarrow.compute as pc
from deltalake import DeltaTable
from pyarrow.dataset import ParquetReadOptions

log = logging.getLogger(__name__)

PROFILE = "gold.customer_profile"
HISTORY = "gold.customer_profile_history"
XREF = "gold.identity_xref"
EVENTS = "gold.identity_events"
SEGMENTS = "gold.segment_membership"
TABLES: tuple[str, ...] = (PROFILE, HISTORY, XREF, EVENTS, SEGMENTS)

# Profile columns that are bookkeeping, not customer data: never served.
INTERNAL = frozenset({"_row_hash"})


def plain(value: Any) -> Any:
    """A value read from Arrow made JSON-ready: times as ISO 8601, decimals as floats,
    maps (Arrow gives lists of key/value tuples) as objects."""
    if isinstance(value, float) and not math.isfinite(value):
        return None  # JSON has no NaN or infinity
    if value is None or isinstance(value, str | bool | int | float):
        return value
    if isinstance(value, datetime):
        if value.tzinfo is None:  # timestamp_ntz columns hold UTC wall time
            value = value.replace(tzinfo=UTC)
        # Fixed precision, so the strings sort like the times.
        return value.astimezone(UTC).isoformat(timespec="microseconds").replace("+00:00", "Z")
    if isinstance(value, date):
        return value.isoformat()
    if isinstance(value, Decimal):
        return float(value)
    if isinstance(value, dict):
        return {k: plain(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        if value and all(isinstance(v, tuple) and len(v) == 2 for v in value):
            return {str(k): plain(v) for k, v in value}
        return [plain(v) for v in value]
    if isinstance(value, bytes):
        return None
    return str(value)


def normalize_email(value: str) -> str:
    return value.strip().lower()


def normalize_phone(value: str, region: str) -> str | None:
    """E.164 of a phone number as typed (``+44 20 ...``, ``(555) 010-...``), or None."""
    try:
        number = phonenumbers.parse(value, region)
    except phonenumbers.NumberParseException:
        return None
    if not phonenumbers.is_possible_number(number):
        return None
    return phonenumbers.format_number(number, phonenumbers.PhoneNumberFormat.E164)


def normalize_loyalty(value: str) -> str:
    # The same canonical form standardize gives card numbers keyed with a printed prefix.
    return re.sub(r"^LOY-?", "", value.strip().upper())


@dataclass(frozen=True)
class Consent:
    """One purpose's consent state on a profile."""

    allowed: bool
    expires_at: datetime | None

    def valid(self, now: datetime) -> bool:
        return self.allowed and (self.expires_at is None or self.expires_at > now)


class LazyRows(Mapping[str, dict[str, Any]]):
    """Rows of an Arrow table by key, made JSON-ready dicts only when a request reads them.

    Converting every nested row (lineage, contacts, consent) to Python up front costs about
    a millisecond a row; kept as Arrow, a refresh costs the read and a key index, and a
    request converts the one row it answers with (cached while the snapshot lives).
    """

    CACHE_ROWS = 50_000

    def __init__(self, table: pa.Table, index: dict[str, int]) -> None:
        self._table = table
        self._index = index
        self._cache: dict[str, dict[str, Any]] = {}

    def __getitem__(self, key: str) -> dict[str, Any]:
        hit = self._cache.get(key)
        if hit is not None:
            return hit
        row = self._table.slice(self._index[key], 1).to_pylist()[0]
        out = {c: plain(v) for c, v in row.items()}
        if len(self._cache) >= self.CACHE_ROWS:
            self._cache.clear()
        self._cache[key] = out
        return out

    def __contains__(self, key: object) -> bool:
        return key in self._index

    def __iter__(self) -> Iterator[str]:
        return iter(self._index)

    def __len__(self) -> int:
        return len(self._index)

    @property
    def table(self) -> pa.Table:
        return self._table

    @property
    def positions(self) -> dict[str, int]:
        return self._index


class LazyGroups(Mapping[str, list[dict[str, Any]]]):
    """Groups of rows (a customer's versions) by key, converted when read."""

    def __init__(self, table: pa.Table, groups: dict[str, list[int]]) -> None:
        self._table = table
        self._groups = groups

    def __getitem__(self, key: str) -> list[dict[str, Any]]:
        rows = self._table.take(self._groups[key]).to_pylist()
        return [{c: plain(v) for c, v in row.items()} for row in rows]

    def __contains__(self, key: object) -> bool:
        return key in self._groups

    def __iter__(self) -> Iterator[str]:
        return iter(self._groups)

    def __len__(self) -> int:
        return len(self._groups)


@dataclass(frozen=True)
class ProfileIndex:
    rows: Mapping[str, dict[str, Any]] = field(default_factory=dict)
    # purpose -> customers whose consent[purpose].allowed is true -> its expires_at
    allowed: dict[str, dict[str, datetime | None]] = field(default_factory=dict)
    by_email: dict[str, tuple[str, ...]] = field(default_factory=dict)
    by_phone: dict[str, tuple[str, ...]] = field(default_factory=dict)
    by_loyalty: dict[str, tuple[str, ...]] = field(default_factory=dict)
    columns: tuple[str, ...] = ()

    def consent_of(self, customer_id: str) -> dict[str, Consent]:
        """The purposes the customer's consent allows (others are absent: not allowed)."""
        return {purpose: Consent(True, ids[customer_id])
                for purpose, ids in self.allowed.items() if customer_id in ids}


@dataclass(frozen=True)
class XrefIndex:
    customer_of: dict[str, str] = field(default_factory=dict)
    records: Mapping[str, list[dict[str, Any]]] = field(default_factory=dict)


@dataclass(frozen=True)
class EventIndex:
    merged_into: dict[str, str] = field(default_factory=dict)
    by_customer: Mapping[str, list[dict[str, Any]]] = field(default_factory=dict)


@dataclass(frozen=True)
class HistoryIndex:
    by_customer: Mapping[str, list[dict[str, Any]]] = field(default_factory=dict)


@dataclass(frozen=True)
class SegmentIndex:
    members: dict[str, list[str]] = field(default_factory=dict)  # open spells, sorted ids
    spells: Mapping[str, list[dict[str, Any]]] = field(default_factory=dict)


@dataclass(frozen=True, eq=False)  # compared and hashed by identity (weak-keyed caches)
class Snapshot:
    """Everything a request reads, at one version of each table."""

    versions: dict[str, int | None]
    loaded_at: datetime
    profiles: ProfileIndex = ProfileIndex()
    xref: XrefIndex = XrefIndex()
    events: EventIndex = EventIndex()
    history: HistoryIndex = HistoryIndex()
    segments: SegmentIndex = SegmentIndex()

    def survivor(self, customer_id: str) -> tuple[str, list[str]]:
        """Follow ``merged`` events from ``customer_id``: the surviving id and the ids
        followed (empty when it was never merged away)."""
        chain: list[str] = []
        current = customer_id
        while len(chain) < 50:
            nxt = self.events.merged_into.get(current)
            if nxt is None or nxt in chain or nxt == customer_id:
                break
            current = nxt
            chain.append(current)
        return current, chain


def _index(pairs: Iterable[tuple[str | None, str]]) -> dict[str, tuple[str, ...]]:
    out: dict[str, set[str]] = {}
    for key, cid in pairs:
        if key:
            out.setdefault(key, set()).add(cid)
    return {k: tuple(sorted(v)) for k, v in out.items()}


def _column(table: pa.Table, name: str) -> pa.Array | None:
    return table.column(name).combine_chunks() if name in table.column_names else None


def _keyed(ids: list[str], keys: pa.Array | None, parents: list[int] | None = None
           ) -> list[tuple[str | None, str]]:
    """(key, customer id) pairs of a column, or of a flattened list column's values."""
    if keys is None:
        return []
    values = keys.to_pylist()
    if parents is None:
        return list(zip(values, ids, strict=True))
    return [(v, ids[i]) for v, i in zip(values, parents, strict=True)]


def _list_values(table: pa.Table, name: str, fld: str
                 ) -> tuple[pa.Array | None, list[int] | None]:
    """The ``fld`` of every element of a list<struct> column, with its row."""
    col = _column(table, name)
    if col is None or not pa.types.is_list(col.type):
        return None, None
    flat = pc.list_flatten(col)
    if not pa.types.is_struct(flat.type) or flat.type.get_field_index(fld) < 0:
        return None, None
    return flat.field(fld), pc.list_parent_indices(col).to_pylist()


def _email(values: pa.Array | None) -> pa.Array | None:
    return None if values is None else pc.utf8_lower(pc.utf8_trim_whitespace(values))


def _allowed(table: pa.Table, ids: list[str]) -> dict[str, dict[str, datetime | None]]:
    """purpose -> {customer id: expires_at} for every purpose whose state allows."""
    col = _column(table, "consent")
    if col is None or not pa.types.is_map(col.type):
        return {}
    out: dict[str, dict[str, datetime | None]] = {}
    for purpose in pc.unique(col.keys).to_pylist():
        state = pc.map_lookup(col, pa.scalar(purpose, col.type.key_type), "first")
        allowed = pc.fill_null(state.field("allowed"), False)
        expires = state.field("expires_at").to_pylist()
        out[str(purpose)] = {ids[i]: _utc(expires[i])
                             for i in pc.indices_nonzero(allowed).to_pylist()}
    return out


def _utc(value: Any) -> datetime | None:
    if not isinstance(value, datetime):
        return None
    return value.replace(tzinfo=UTC) if value.tzinfo is None else value


KeyPairs = list[tuple[str | None, str]]


def _lookup_keys(table: pa.Table, ids: list[str]) -> tuple[KeyPairs, KeyPairs, KeyPairs]:
    """(e-mail, phone, loyalty id) look-up keys of each row, normalized, column-wise."""
    emails = _keyed(ids, _email(_column(table, "email")))
    values, parents = _list_values(table, "emails", "value")
    emails += _keyed(ids, _email(values), parents)
    phones = _keyed(ids, _column(table, "phone")) + _keyed(ids, _column(table, "mobile"))
    values, parents = _list_values(table, "phones", "value")
    phones += _keyed(ids, values, parents)
    loyalty_col = _column(table, "loyalty_id")
    loyalty = _keyed(ids, None if loyalty_col is None else pc.replace_substring_regex(
        pc.utf8_upper(pc.utf8_trim_whitespace(loyalty_col.cast(pa.string()))),
        pattern="^LOY-?", replacement=""))
    return emails, phones, loyalty


def build_profiles(table: pa.Table) -> ProfileIndex:
    """The profile index: rows by customer id (converted when read), consent by purpose
    and the look-up maps, all computed column-wise."""
    served = [c for c in table.column_names if c not in INTERNAL]
    table = table.select(served)
    ids = table.column("customer_id").to_pylist()
    emails, phones, loyalty = _lookup_keys(table, ids)
    return ProfileIndex(LazyRows(table, {c: i for i, c in enumerate(ids)}),
                        _allowed(table, ids), _index(emails), _index(phones),
                        _index(loyalty), tuple(served))


class FullReload(Exception):
    """An incremental refresh is not possible or not worth it; read the table whole."""


def _patch(index: dict[str, tuple[str, ...]], remove: KeyPairs, add: KeyPairs
           ) -> dict[str, tuple[str, ...]]:
    out = dict(index)
    touched: dict[str, set[str]] = {}
    for key, cid in remove:
        if key:
            touched.setdefault(key, set(out.get(key, ()))).discard(cid)
    for key, cid in add:
        if key:
            touched.setdefault(key, set(out.get(key, ()))).add(cid)
    for key, cids in touched.items():
        if cids:
            out[key] = tuple(sorted(cids))
        else:
            out.pop(key, None)
    return out


def update_profiles(prev: ProfileIndex, dt: DeltaTable, old: int, new: int) -> ProfileIndex:
    """``prev`` (the index at version ``old``) moved to version ``new``: the change data
    feed in between names the customers that changed; only their rows are read (at
    ``new``), appended to the Arrow table and re-pointed, the ones gone dropped, and their
    look-up keys and consent patched.

    Raises:
        FullReload: no usable feed, a schema change, many changes, or too much garbage.
    """
    rows = prev.rows
    if not isinstance(rows, LazyRows) or not prev.columns:
        raise FullReload("no previous Arrow index")
    columns = tuple(f.name for f in dt.schema().fields if f.name not in INTERNAL)
    if columns != prev.columns:
        raise FullReload("the table's columns changed")
    try:
        # Only the ids from the feed: its reader turns Spark's INT96 times past 2262 into
        # wrong dates without an error, so the rows themselves come from read_table's path.
        reader = dt.load_cdf(starting_version=old + 1, ending_version=new,
                             columns=["customer_id"])
        feed = pa.RecordBatchReader.from_stream(reader).read_all()
    except Exception as exc:
        raise FullReload(f"change data feed unreadable: {exc}") from None
    if feed.num_rows > max(1000, len(rows) // 5):
        raise FullReload(f"{feed.num_rows} changes")
    touched = sorted({str(c) for c in feed.column("customer_id").to_pylist() if c})
    try:
        current = read_table(dt, list(prev.columns), customer_ids=touched)
        added = current.cast(rows.table.schema)
    except (KeyError, ValueError, pa.ArrowInvalid, pa.ArrowNotImplementedError) as exc:
        raise FullReload(f"schema changed: {exc}") from None
    upsert_ids = added.column("customer_id").to_pylist()
    if len(set(upsert_ids)) != len(upsert_ids):
        raise FullReload("a customer id twice")
    table = pa.concat_tables([rows.table, added])
    if table.num_rows > 2 * (len(rows) + len(upsert_ids)) + 10_000:
        raise FullReload("too many superseded rows")
    changed = [cid for cid in touched if cid in rows.positions]
    old_rows = rows.table.take([rows.positions[c] for c in changed])
    o_emails, o_phones, o_loyalty = _lookup_keys(old_rows, changed)
    n_emails, n_phones, n_loyalty = _lookup_keys(added, upsert_ids)
    positions = dict(rows.positions)
    for cid in touched:  # customers no longer in the table were deleted (merged away)
        positions.pop(cid, None)
    base = rows.table.num_rows
    positions.update({cid: base + j for j, cid in enumerate(upsert_ids)})
    gone = set(touched)
    allowed = {p: {c: e for c, e in m.items() if c not in gone}
               for p, m in prev.allowed.items()}
    for purpose, granted in _allowed(added, upsert_ids).items():
        allowed.setdefault(purpose, {}).update(granted)
    return ProfileIndex(LazyRows(table, positions), allowed,
                        _patch(prev.by_email, o_emails, n_emails),
                        _patch(prev.by_phone, o_phones, n_phones),
                        _patch(prev.by_loyalty, o_loyalty, n_loyalty), prev.columns)


def _groups(keys: Iterable[tuple[int, str | None]]) -> dict[str, list[int]]:
    out: dict[str, list[int]] = {}
    for i, key in keys:
        if key is not None:
            out.setdefault(key, []).append(i)
    return out


def _order(table: pa.Table, *columns: str) -> list[int]:
    return pc.sort_indices(table, [(c, "ascending") for c in columns]).to_pylist()


def build_xref(table: pa.Table) -> XrefIndex:
    """record id -> customer id, and each customer's records (converted when read)."""
    table = table.select([c for c in table.column_names if c not in INTERNAL])
    records = table.column("record_id").to_pylist()
    cids = table.column("customer_id").to_pylist()
    order = _order(table, "customer_id", "record_id") if table.num_rows else []
    return XrefIndex(dict(zip(records, cids, strict=True)),
                     LazyGroups(table, _groups((i, cids[i]) for i in order)))


def build_events(table: pa.Table) -> EventIndex:
    """The latest ``merged`` target of each merged-away id, and every event by the ids it
    names (customer and related customer), oldest first."""
    merged = table.filter(pc.equal(table.column("event_type"), "merged")).select(
        ["customer_id", "related_customer_id", "event_at"]).to_pylist()
    latest: dict[str, tuple[Any, str]] = {}
    for row in merged:
        cid, rel = row["customer_id"], row["related_customer_id"]
        at = row["event_at"] or datetime.min.replace(tzinfo=UTC)
        if cid and rel and (cid not in latest or at > latest[cid][0]):
            latest[cid] = (at, rel)
    cids = table.column("customer_id").to_pylist()
    rels = table.column("related_customer_id").to_pylist()
    order = _order(table, "event_at", "event_type") if table.num_rows else []
    keys = [(i, k) for i in order for k in dict.fromkeys((cids[i], rels[i]))]
    return EventIndex({k: v[1] for k, v in latest.items()}, LazyGroups(table, _groups(keys)))


def build_history(table: pa.Table) -> HistoryIndex:
    """Every customer's versions, oldest first (converted when read)."""
    table = table.select([c for c in table.column_names if c not in INTERNAL])
    if table.num_rows == 0:
        return HistoryIndex({})
    order = pc.sort_indices(table, [("customer_id", "ascending"),
                                    ("valid_from", "ascending")]).to_pylist()
    ids = table.column("customer_id").to_pylist()
    groups: dict[str, list[int]] = {}
    for i in order:
        groups.setdefault(ids[i], []).append(i)
    return HistoryIndex(LazyGroups(table, groups))


def build_segments(table: pa.Table) -> SegmentIndex:
    """Current members of each segment (open spells), and each customer's spells."""
    open_spells = table.filter(pc.is_null(table.column("exited_at"))).select(
        ["segment", "customer_id"]).to_pylist()
    members: dict[str, set[str]] = {}
    for row in open_spells:
        members.setdefault(row["segment"], set()).add(row["customer_id"])
    cids = table.column("customer_id").to_pylist()
    order = _order(table, "segment", "entered_at") if table.num_rows else []
    return SegmentIndex({k: sorted(v) for k, v in members.items()},
                        LazyGroups(table, _groups((i, cids[i]) for i in order)))


def settle_heap() -> None:
    """After a new index is swapped in: collect what the swap let go, then put every object
    still alive out of the cyclic collector's sight (``gc.freeze``).

    The indexes are millions of small Python objects. Without this, a full collection walks
    them all every so often, holding the interpreter lock: at 1M source rows it paused every
    request for 70-120 ms (more on a busy machine), and `POST /v1/resolve` at 200
    requests/s had a p99 of 86-310 ms. Frozen objects are still freed by reference counting
    when a later swap lets them go (the indexes hold no reference cycles); the collection
    here walks only what was created since the last freeze."""
    gc.collect()
    gc.freeze()


def read_table(dt: DeltaTable, columns: list[str] | None = None, *,
               customer_ids: list[str] | None = None) -> pa.Table:
    """The table at its loaded version (``columns`` of it; with ``customer_ids``, only their
    rows), with or without deletion vectors. Spark writes timestamps as Parquet INT96,
    which Arrow reads as nanoseconds by default and so cannot hold dates past 2262 (a
    consent expiring in 2999, a 9999-12-31 sentinel): they are read as microseconds
    instead."""
    if has_deletion_vectors(dt):
        return read_with_deletion_vectors(dt, columns, customer_ids=customer_ids)
    options = ParquetReadOptions(coerce_int96_timestamp_unit="us")
    rows = (None if customer_ids is None
            else pc.field("customer_id").isin(customer_ids))
    return dt.to_pyarrow_dataset(parquet_read_options=options).to_table(
        columns=columns, filter=rows)


def has_deletion_vectors(dt: DeltaTable) -> bool:
    return "deletionVectors" in (dt.protocol().reader_features or [])


def read_with_deletion_vectors(dt: DeltaTable, columns: list[str] | None = None, *,
                               customer_ids: list[str] | None = None) -> pa.Table:
    """The table at its loaded version through delta-rs' DataFusion reader, which applies
    deletion vectors (``to_pyarrow_table`` and ``to_pyarrow_dataset`` of deltalake 1.6 refuse
    such a table); with ``customer_ids``, only their rows. Spark's INT96 timestamps are read
    as microseconds, as :func:`read_table` does: DataFusion's default, nanoseconds, turns a
    consent expiring in 2999 into a date in 1829 without an error."""
    from deltalake import QueryBuilder

    cols = ", ".join(f'"{c}"' for c in columns) if columns else "*"
    sql = f"SELECT {cols} FROM t"
    if customer_ids is not None:
        if not customer_ids:
            sql += " WHERE false"
        else:
            quoted = ", ".join("'" + c.replace("'", "''") + "'" for c in customer_ids)
            sql += f" WHERE customer_id IN ({quoted})"
    reader = QueryBuilder(INT96_AS_MICROS).register("t", dt).execute(sql)
    table = pa.RecordBatchReader.from_stream(reader).read_all()
    return table.cast(pa.schema([f.with_type(_without_views(f.type)) for f in table.schema]))


def _without_views(t: pa.DataType) -> pa.DataType:
    """``t`` with DataFusion's string and binary views as the plain types the Parquet reader
    gives (Arrow's compute kernels lack many view kernels, e.g. ``utf8_trim_whitespace``)."""
    if pa.types.is_string_view(t):
        return pa.string()
    if pa.types.is_binary_view(t):
        return pa.binary()
    if pa.types.is_struct(t):
        return pa.struct([t.field(i).with_type(_without_views(t.field(i).type))
                          for i in range(t.num_fields)])
    if pa.types.is_map(t):
        return pa.map_(t.key_field.with_type(_without_views(t.key_type)),
                       t.item_field.with_type(_without_views(t.item_type)))
    if pa.types.is_list(t) or pa.types.is_large_list(t):
        make = pa.list_ if pa.types.is_list(t) else pa.large_list
        return make(t.value_field.with_type(_without_views(t.value_type)))
    return t


#: DataFusion session setting: Spark's INT96 timestamps read as microseconds.
INT96_AS_MICROS = {"datafusion.execution.parquet.coerce_int96": "us"}


_EMPTY: dict[str, Any] = {XREF: XrefIndex(), EVENTS: EventIndex(), SEGMENTS: SegmentIndex()}
_BUILDERS: dict[str, tuple[str, Callable[..., Any]]] = {
    XREF: ("xref", build_xref),
    EVENTS: ("events", build_events),
    SEGMENTS: ("segments", build_segments),
}


class SnapshotStore:
    """Holds the current :class:`Snapshot` and replaces it when a table moves.

    Args:
        paths: table name (``gold.customer_profile``...) -> Delta table location.
        refresh_seconds: how often :meth:`run` polls the Delta logs.
    """

    def __init__(self, paths: dict[str, str], refresh_seconds: float = 1.0) -> None:
        self.paths = paths
        self.refresh_seconds = refresh_seconds
        self._tables: dict[str, DeltaTable] = {}
        self._lock = threading.Lock()  # one refresh at a time; readers never take it
        self._stop = threading.Event()
        self.current = Snapshot({name: None for name in paths}, datetime.now(UTC))
        self.last_error: str | None = None

    def _latest(self, name: str) -> DeltaTable | None:
        dt = self._tables.get(name)
        if dt is None:
            if not DeltaTable.is_deltatable(self.paths[name]):
                return None
            dt = DeltaTable(self.paths[name])
            self._tables[name] = dt
        else:
            dt.update_incremental()
        return dt

    def refresh(self) -> bool:
        """Poll every table; rebuild and swap in what moved. True when anything did."""
        with self._lock:
            snap = self.current
            changes: dict[str, Any] = {}
            versions = dict(snap.versions)
            for name in self.paths:
                dt = self._latest(name)
                version = dt.version() if dt is not None else None
                if version == snap.versions.get(name):
                    continue
                started = time.perf_counter()
                old = snap.versions.get(name)
                if (name == PROFILE and dt is not None and old is not None
                        and version is not None and version > old):
                    try:
                        changes["profiles"] = update_profiles(snap.profiles, dt, old, version)
                        versions[name] = version
                        log.info("serve: %s version %s applied from the change feed "
                                 "(%.0f ms)", name, version,
                                 (time.perf_counter() - started) * 1000)
                        continue
                    except FullReload as exc:
                        log.info("serve: %s version %s: full read (%s)", name, version, exc)
                table = read_table(dt) if dt is not None else None
                n = table.num_rows if table is not None else 0
                if name == PROFILE:
                    changes["profiles"] = (build_profiles(table) if table is not None
                                           else ProfileIndex())
                elif name == HISTORY:
                    changes["history"] = (build_history(table) if table is not None
                                          else HistoryIndex())
                else:
                    attr, build = _BUILDERS[name]
                    changes[attr] = build(table) if table is not None else _EMPTY[name]
                versions[name] = version
                log.info("serve: %s version %s loaded (%d rows, %.0f ms)", name, version,
                         n, (time.perf_counter() - started) * 1000)
            if not changes:
                return False
            # One assignment: requests hold either the old object or the new one.
            self.current = dataclasses.replace(snap, versions=versions,
                                               loaded_at=datetime.now(UTC), **changes)
            settle_heap()
            return True

    def run(self) -> None:
        """Poll until :meth:`stop` (run in a daemon thread)."""
        while not self._stop.wait(self.refresh_seconds):
            try:
                self.refresh()
                self.last_error = None
            except Exception as exc:  # keep serving the last good snapshot
                self.last_error = f"{type(exc).__name__}: {exc}"
                log.warning("serve: refresh failed, still serving the previous snapshot: %s",
                            self.last_error)

    def start(self) -> threading.Thread:
        self.refresh()
        thread = threading.Thread(target=self.run, name="udp-serve-refresh", daemon=True)
        thread.start()
        return thread

    def stop(self) -> None:
        self._stop.set()
