"""Writes the API accepts: source events into a landing folder, consent events and erasure
requests into their ``privacy`` tables (delta-rs appends; Spark jobs take them from there).
"""

from __future__ import annotations

import fnmatch
import hashlib
import json
import os
import re
import uuid
from datetime import UTC, date, datetime
from pathlib import Path
from typing import Any

import pyarrow as pa
from deltalake import DeltaTable, write_deltalake

from udp_spark.config import ConstSpec, ExprSpec, PipelineConfig, SourceConfig

# Nullability as Spark's privacy.consent_events (udp_spark/privacy/consent.py), so either
# side may create the table first and the other appends to it.
CONSENT_EVENTS_SCHEMA = pa.schema([
    pa.field("event_id", pa.string(), nullable=False),
    pa.field("subject_type", pa.string(), nullable=False),
    pa.field("subject", pa.string(), nullable=False),
    pa.field("purpose", pa.string(), nullable=False),
    pa.field("status", pa.string(), nullable=False),
    pa.field("legal_basis", pa.string()),
    pa.field("source", pa.string()),
    pa.field("occurred_at", pa.timestamp("us", tz="UTC"), nullable=False),
    pa.field("expires_at", pa.timestamp("us", tz="UTC")),
    pa.field("recorded_at", pa.timestamp("us", tz="UTC"), nullable=False),
    pa.field("run_id", pa.string()),
])

ERASURE_REQUESTS_SCHEMA = pa.schema([
    pa.field("request_id", pa.string(), nullable=False),
    pa.field("subject_type", pa.string(), nullable=False),
    pa.field("subject", pa.string()),  # nulled once the erasure is done
    pa.field("subject_hash", pa.string(), nullable=False),
    pa.field("requested_at", pa.timestamp("us", tz="UTC"), nullable=False),
    pa.field("requested_by", pa.string(), nullable=False),
    pa.field("status", pa.string(), nullable=False),  # pending|running|completed|failed
    pa.field("completed_at", pa.timestamp("us", tz="UTC")),
    pa.field("report", pa.string()),  # JSON
    pa.field("error", pa.string()),
])


class IntakeError(ValueError):
    """A payload the API refuses; ``field`` names the offending field (a 422)."""

    def __init__(self, field: str, message: str) -> None:
        super().__init__(f"{field}: {message}")
        self.field = field
        self.message = message


class UnsupportedSource(ValueError):
    """The source cannot take events over HTTP (not JSON lines, or no landing path)."""


# --- event intake ------------------------------------------------------------------------

_SPARK_TO_STRPTIME = (("yyyy", "%Y"), ("MM", "%m"), ("dd", "%d"), ("HH", "%H"), ("mm", "%M"),
                      ("ss", "%S"))


def _strptime_pattern(spark_pattern: str) -> str:
    out = spark_pattern
    for spark, py in _SPARK_TO_STRPTIME:
        out = out.replace(spark, py)
    return out


def _parses_as_time(value: Any, formats: tuple[str, ...], *, dates: bool = False) -> bool:
    for fmt in formats:
        if fmt in ("epoch_millis", "epoch_seconds"):
            if isinstance(value, int | float) and not isinstance(value, bool):
                return True
            if isinstance(value, str) and value.strip().isdigit():
                return True
            continue
        if not isinstance(value, str):
            continue
        text = value.strip()
        if fmt == "iso8601":
            try:
                if dates:
                    date.fromisoformat(text[:10])
                else:
                    datetime.fromisoformat(text.replace("Z", "+00:00"))
                return True
            except ValueError:
                continue
        try:
            datetime.strptime(text, _strptime_pattern(fmt))
            return True
        except ValueError:
            continue
    return False


def _lookup(payload: dict[str, Any], path: str) -> tuple[bool, Any]:
    """(present, value) of a dotted column path in a JSON object."""
    current: Any = payload
    for part in path.split("."):
        if not isinstance(current, dict) or part not in current:
            return False, None
        current = current[part]
    return True, current


def _column(spec: Any) -> str | None:
    """The raw column a field spec reads, when it is a plain column (not expr/const)."""
    return spec if isinstance(spec, str) else None


def _roles(source: SourceConfig) -> dict[str, str]:
    """Raw column path -> the mapped role whose type it must have."""
    kinds: dict[str, str] = {}
    party = source.party
    if party is not None:
        for name in ("created_at", "updated_at"):
            if col := _column(getattr(party, name)):
                kinds[col] = "timestamp"
        if col := _column(party.date_of_birth):
            kinds[col] = "date"
    for inter in source.interactions:
        if col := _column(inter.occurred_at):
            kinds[col] = "timestamp"
        if col := _column(inter.amount):
            kinds[col] = "number"
    return kinds


def required_columns(source: SourceConfig) -> list[str]:
    """Raw columns every event of the source must carry: the party key, the interaction
    key, its time and its party key (plain column mappings only)."""
    cols: list[str] = []
    if source.party is not None and (c := _column(source.party.source_key)):
        cols.append(c)
    for inter in source.interactions:
        for spec in (inter.key, inter.occurred_at, inter.party_key):
            if (c := _column(spec)) and c not in cols:
                cols.append(c)
    return cols


def validate_event(source: SourceConfig, payload: Any, where: str = "body") -> dict[str, Any]:
    """Check one event against the source's YAML mapping.

    Raises:
        IntakeError: naming the field (``body.<column>``) and what is wrong.
    """
    if not isinstance(payload, dict):
        raise IntakeError(where, "must be a JSON object of the source's columns")
    if source.columns:
        unknown = sorted(set(payload) - set(source.columns))
        if unknown:
            raise IntakeError(f"{where}.{unknown[0]}", f"not a column of source "
                              f"{source.name!r}; columns are {list(source.columns)}")
    for col in required_columns(source):
        present, value = _lookup(payload, col)
        if not present or value is None or (isinstance(value, str) and not value.strip()):
            raise IntakeError(f"{where}.{col}", f"required by the mapping of source "
                              f"{source.name!r} and missing or empty")
    for col, kind in _roles(source).items():
        present, value = _lookup(payload, col)
        if not present or value is None:
            continue
        if kind == "number":
            ok = (isinstance(value, int | float) and not isinstance(value, bool)) or (
                isinstance(value, str) and re.fullmatch(r"-?\d+(\.\d+)?", value.strip()))
            if not ok:
                raise IntakeError(f"{where}.{col}", "must be a number")
        elif kind in ("timestamp", "date"):
            formats = source.timestamp_formats if kind == "timestamp" else source.date_formats
            if not _parses_as_time(value, formats, dates=kind == "date"):
                raise IntakeError(f"{where}.{col}", f"is not a {kind} in the source's "
                                  f"formats {list(formats)}")
    # Nested columns the mapping reads (``name.first``) need an object at their parent.
    for spec in _mapped_specs(source):
        if "." in spec:
            parent = spec.rsplit(".", 1)[0]
            present, value = _lookup(payload, parent)
            if present and value is not None and not isinstance(value, dict):
                raise IntakeError(f"{where}.{parent}", "must be a JSON object")
    return payload


def _mapped_specs(source: SourceConfig) -> list[str]:
    specs: list[Any] = []
    if source.party is not None:
        for _name, value in source.party:
            if isinstance(value, dict):
                specs.extend(value.values())
            elif not isinstance(value, ExprSpec | ConstSpec):
                specs.append(value)
    for inter in source.interactions:
        for _, value in inter:
            if isinstance(value, dict):
                specs.extend(value.values())
            else:
                specs.append(value)
    return [s for s in specs if isinstance(s, str)]


def landing_dir(cfg: PipelineConfig, source: SourceConfig) -> tuple[Path, str]:
    """The source's landing folder and the file-name pattern its glob expects.

    Raises:
        UnsupportedSource: not a JSON source with a local path glob.
    """
    if source.format != "json":
        raise UnsupportedSource(
            f"source {source.name!r} is {source.format}: POST /v1/events takes JSON-lines "
            "sources only (a CSV or Parquet file should be dropped in its landing folder "
            "whole, with its header)")
    if not source.path or re.match(r"^[a-zA-Z][a-zA-Z0-9+.-]*://", source.path):
        raise UnsupportedSource(f"source {source.name!r} has no local landing path")
    full = Path(cfg.source_path(source))
    if any(ch in str(full.parent) for ch in "*?["):
        raise UnsupportedSource(f"source {source.name!r}: its path {source.path!r} has a "
                                "wildcard in a folder name; events need one landing folder")
    return full.parent, full.name


def land_events(cfg: PipelineConfig, source: SourceConfig, events: list[dict[str, Any]]
                ) -> Path:
    """Write ``events`` as one new JSON-lines file in the source's landing folder,
    atomically (a hidden temporary file renamed into place), named to match its glob."""
    folder, pattern = landing_dir(cfg, source)
    folder.mkdir(parents=True, exist_ok=True)
    stamp = datetime.now(UTC).strftime("%Y%m%dT%H%M%S%fZ")
    tag = f"_api_{stamp}_{uuid.uuid4().hex[:12]}"
    name = pattern.replace("*", tag, 1) if "*" in pattern else f"{pattern}{tag}"
    name = name.replace("?", "x")
    if not fnmatch.fnmatch(name, pattern):
        raise UnsupportedSource(f"source {source.name!r}: cannot name a file matching "
                                f"{pattern!r}")
    target = folder / name
    tmp = folder / f".{name}.tmp"  # hidden: file streams and globs skip it
    with tmp.open("w", encoding="utf-8") as out:
        for event in events:
            out.write(json.dumps(event, separators=(",", ":"), ensure_ascii=False) + "\n")
        out.flush()
        os.fsync(out.fileno())
    os.replace(tmp, target)
    return target


# --- privacy tables ----------------------------------------------------------------------

def _utc(value: datetime) -> datetime:
    return value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)


def consent_event_id(subject_type: str, subject: str, purpose: str, status: str,
                     occurred_at: datetime) -> str:
    """sha256 hex of ``subject_type|subject|purpose|status|occurred_at``, the time as UTC
    ``yyyy-MM-ddTHH:mm:ss.ffffff``: the same key Spark's ``privacy.consent.event_id`` gives,
    so one decision recorded by either side is one event."""
    iso = _utc(occurred_at).strftime("%Y-%m-%dT%H:%M:%S.%f")
    text = f"{subject_type}|{subject}|{purpose}|{status}|{iso}"
    return hashlib.sha256(text.encode("utf-8")).hexdigest()


def normalize_subject(subject_type: str, subject: str, region: str) -> str:
    """The subject as the consent ledger keys it: e-mails trimmed and lower-cased, phones
    in E.164, ids trimmed.

    Raises:
        IntakeError: an empty subject or a phone number that cannot be parsed.
    """
    from udp_spark.serve.snapshot import normalize_email, normalize_phone

    text = subject.strip()
    if not text:
        raise IntakeError("body.subject", "must not be empty")
    if subject_type == "email":
        if not re.fullmatch(r"[^@\s]+@[^@\s]+\.[A-Za-z]{2,}", text):
            raise IntakeError("body.subject", "is not an e-mail address")
        return normalize_email(text)
    if subject_type == "phone":
        e164 = normalize_phone(text, region)
        if e164 is None:
            raise IntakeError("body.subject", f"is not a phone number (region {region})")
        return e164
    return text


def subject_hash(subject_type: str, subject: str, salt: str | None) -> str:
    """What stays once the subject is erased: sha256 hex of ``salt|subject_type:subject``
    with the pipeline's ``privacy.erasure.suppression_salt``, the hash ``udp erase`` writes
    (without a salt configured: of ``subject_type|subject``)."""
    if salt is None:
        return hashlib.sha256(f"{subject_type}|{subject}".encode()).hexdigest()
    return hashlib.sha256(f"{salt}|{subject_type}:{subject}".encode()).hexdigest()


def _append(path: str, schema: pa.Schema, row: dict[str, Any]) -> None:
    table = pa.Table.from_pylist([row], schema=schema)
    if not DeltaTable.is_deltatable(path):
        # Created with exactly this schema (the Spark side creates the same if first), with
        # the change data feed the change-driven stages read.
        DeltaTable.create(path, schema, mode="ignore",
                          configuration={"delta.enableChangeDataFeed": "true"})
    write_deltalake(path, table, mode="append")


def append_consent_event(path: str, *, subject_type: str, subject: str, purpose: str,
                         status: str, legal_basis: str | None, source: str | None,
                         occurred_at: datetime, expires_at: datetime | None,
                         run_id: str) -> dict[str, Any]:
    occurred = _utc(occurred_at)
    row = {
        "event_id": consent_event_id(subject_type, subject, purpose, status, occurred),
        "subject_type": subject_type, "subject": subject, "purpose": purpose,
        "status": status, "legal_basis": legal_basis, "source": source,
        "occurred_at": occurred, "expires_at": _utc(expires_at) if expires_at else None,
        "recorded_at": datetime.now(UTC), "run_id": run_id,
    }
    _append(path, CONSENT_EVENTS_SCHEMA, row)
    return row


def append_erasure_request(path: str, *, subject_type: str, subject: str,
                           requested_by: str, salt: str | None = None) -> dict[str, Any]:
    row = {
        "request_id": uuid.uuid4().hex, "subject_type": subject_type, "subject": subject,
        "subject_hash": subject_hash(subject_type, subject, salt),
        "requested_at": datetime.now(UTC), "requested_by": requested_by,
        "status": "pending", "completed_at": None, "report": None, "error": None,
    }
    _append(path, ERASURE_REQUESTS_SCHEMA, row)
    return row


def read_erasure_request(path: str, request_id: str) -> dict[str, Any] | None:
    """The request's current row (the latest by ``requested_at`` if several)."""
    if not DeltaTable.is_deltatable(path):
        return None
    rows = DeltaTable(path).to_pyarrow_table(
        filters=[("request_id", "=", request_id)]).to_pylist()
    if not rows:
        return None
    return max(rows, key=lambda r: r.get("completed_at") or r["requested_at"])
