"""Deterministic, vectorized CSV / JSON-lines / Parquet writers for the generated sources.

CSV and JSON text is assembled column-wise with pyarrow string kernels and written as one
buffer, so 1M rows take about a second and the bytes depend only on the data.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq

from udp_spark.generate import strops as so

# -- CSV ----------------------------------------------------------------------------------


def csv_field(values: np.ndarray) -> pa.Array:
    """RFC 4180 field text: quoted (with doubled quotes) only where needed; null -> empty."""
    a = so.to_pa(values)
    needs = pc.match_substring_regex(a, pattern='[",\r\n]')
    quoted = pc.binary_join_element_wise('"', pc.replace_substring(a, '"', '""'), '"', "")
    return pc.fill_null(pc.if_else(needs, quoted, a), "")


def _quote_one(v: object) -> str:
    if v is None:
        return ""
    s = str(v)
    if any(ch in s for ch in ',"\r\n'):
        return '"' + s.replace('"', '""') + '"'
    return s


@dataclass(frozen=True)
class Malformed:
    """Which lines of a CSV file to break, and how."""

    rows: np.ndarray  # row indexes (0-based, data rows)
    kinds: np.ndarray  # 0 missing field, 1 extra field, 2 unclosed quote, 3 stray quote
    positions: np.ndarray  # uniform draws choosing the damaged field
    protect: int = 1  # leading fields (keys) that stay intact


MALFORMED_KINDS = ("missing_field", "extra_field", "unclosed_quote", "stray_quote")


def _break_row(fields: list[object], kind: int, u: float, protect: int) -> str:
    """Render one row as a malformed CSV line."""
    vals = ["" if v is None else str(v) for v in fields]
    n = len(vals)
    j = protect + min(int(u * (n - protect)), n - protect - 1)
    if kind == 0:
        return ",".join(_quote_one(v) for i, v in enumerate(fields) if i != j)
    text_cols = [i for i in range(protect, n) if vals[i] and not vals[i].isdigit()] or [j]
    k = text_cols[min(int(u * len(text_cols)), len(text_cols) - 1)]
    if kind == 1:
        parts = [_quote_one(v) for v in fields]
        v = vals[k]
        cut = max(1, len(v) // 2)
        parts[k] = (v[:cut] + "," + v[cut:]).replace('"', "")
        return ",".join(parts)
    if kind == 2:
        parts = [_quote_one(v) for v in fields]
        parts[k] = '"' + vals[k].replace('"', "")
        return ",".join(parts)
    parts = [_quote_one(v) for v in fields]
    v = vals[k]
    cut = max(1, len(v) // 2)
    parts[k] = '"' + v[:cut] + '"' + v[cut:] + '"'
    return ",".join(parts)


def write_csv(
    path: Path, columns: list[str], data: dict[str, np.ndarray], malformed: Malformed | None = None
) -> int:
    """Write a CSV file with header; returns the number of data lines."""
    cols = [csv_field(data[c]) for c in columns]
    parts: list[pa.Array | str] = []
    for i, c in enumerate(cols):
        if i:
            parts.append(",")
        parts.append(c)
    lines = pc.binary_join_element_wise(*parts, "")
    if malformed is not None and len(malformed.rows):
        arr = so.to_np(lines)
        for r, kind, u in zip(malformed.rows, malformed.kinds, malformed.positions, strict=True):
            arr[r] = _break_row(
                [data[c][r] for c in columns], int(kind), float(u), malformed.protect
            )
        lines = so.to_pa(arr)
    header = ",".join(columns).encode() + b"\n"
    body = so.join_lines(lines)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(header + body)
    return len(lines)


# -- JSON lines ---------------------------------------------------------------------------


def j_str(values: np.ndarray) -> pa.Array:
    """JSON string literal per row (``null`` for None)."""
    a = so.to_pa(values)
    esc = pc.replace_substring(pc.replace_substring(a, "\\", "\\\\"), '"', '\\"')
    esc = pc.replace_substring_regex(esc, pattern="[\t]", replacement="\\\\t")
    return pc.fill_null(pc.binary_join_element_wise('"', esc, '"', ""), "null")


def j_num(values: np.ndarray, missing: np.ndarray | None = None, decimals: int = 2) -> pa.Array:
    """JSON number per row, rounded to ``decimals`` (``null`` where ``missing``)."""
    v = pa.array(np.round(np.asarray(values, dtype=float), decimals))
    s = pc.cast(v, pa.string())
    if missing is not None:
        s = pc.if_else(pa.array(missing), pa.scalar("null"), s)
    return s


def j_int(values: np.ndarray, missing: np.ndarray | None = None) -> pa.Array:
    """JSON integer per row (``null`` where ``missing``)."""
    s = pc.cast(pa.array(np.asarray(values, dtype=np.int64)), pa.string())
    if missing is not None:
        s = pc.if_else(pa.array(missing), pa.scalar("null"), s)
    return s


def j_bool(values: np.ndarray) -> pa.Array:
    """JSON boolean per row."""
    return pa.array(np.where(np.asarray(values, dtype=bool), "true", "false"))


def j_obj(
    fields: list[tuple[str, pa.Array]],
    extra: pa.Array | None = None,
    null: np.ndarray | None = None,
) -> pa.Array:
    """JSON object per row from ``(key, json_value)`` pairs; ``extra`` is raw text appended
    before the closing brace (e.g. ``,"referrer":"x"``); ``null`` rows become ``null``."""
    parts: list[pa.Array | str] = []
    for i, (k, v) in enumerate(fields):
        parts.append(("{" if i == 0 else ",") + '"' + k + '":')
        parts.append(v)
    if extra is not None:
        parts.append(extra)
    parts.append("}")
    obj = pc.binary_join_element_wise(*parts, "")
    if null is not None:
        obj = pc.if_else(pa.array(null), pa.scalar("null"), obj)
    return obj


def write_jsonl(path: Path, lines: pa.Array) -> int:
    """Write one JSON document per line; returns the number of lines."""
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(so.join_lines(lines))
    return len(lines)


# -- Parquet ------------------------------------------------------------------------------


def write_parquet_parts(folder: Path, table: pa.Table, parts: int) -> int:
    """Write ``table`` as ``parts`` files ``part-0000N.parquet`` in ``folder`` (rows in order)."""
    folder.mkdir(parents=True, exist_ok=True)
    n = table.num_rows
    bounds = np.linspace(0, n, parts + 1).astype(int)
    for i in range(parts):
        chunk = table.slice(int(bounds[i]), int(bounds[i + 1] - bounds[i]))
        pq.write_table(chunk, folder / f"part-{i:05d}.parquet", compression="snappy")
    return n


def write_parquet(path: Path, table: pa.Table) -> int:
    """Write one Parquet file; returns the row count."""
    path.parent.mkdir(parents=True, exist_ok=True)
    pq.write_table(table, path, compression="snappy")
    return table.num_rows
