"""Vectorized string helpers over numpy object arrays (``None`` = missing), backed by pyarrow.

The generator keeps string columns as numpy object arrays (cheap masking, ``np.where`` and
fancy indexing) and hands whole columns to pyarrow compute kernels for the string work, so
no Python loop runs per row. Python-level edits are reserved for small noisy subsets.
"""

from __future__ import annotations

import unicodedata
from collections.abc import Callable

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc


def to_pa(x: np.ndarray | pa.Array) -> pa.Array:
    """Object array (``None`` as null) -> pyarrow string array."""
    if isinstance(x, pa.ChunkedArray):
        return x.combine_chunks()
    if isinstance(x, pa.Array):
        return x
    return pa.array(x, type=pa.string(), from_pandas=True)


def to_np(a: pa.Array | pa.ChunkedArray) -> np.ndarray:
    """pyarrow array -> numpy object array with ``None`` for nulls."""
    return np.asarray(a.to_numpy(zero_copy_only=False), dtype=object)


def cat(*parts: np.ndarray | str) -> np.ndarray:
    """Element-wise concatenation; a ``None`` in any array part makes the result ``None``."""
    arrays = [p if isinstance(p, str) else to_pa(p) for p in parts]
    if not any(isinstance(p, pa.Array) for p in arrays):
        raise ValueError("cat needs at least one array part")
    return to_np(pc.binary_join_element_wise(*arrays, ""))


def upper(x: np.ndarray) -> np.ndarray:
    """Upper-case (unicode aware)."""
    return to_np(pc.utf8_upper(to_pa(x)))


def lower(x: np.ndarray) -> np.ndarray:
    """Lower-case (unicode aware)."""
    return to_np(pc.utf8_lower(to_pa(x)))


def title(x: np.ndarray) -> np.ndarray:
    """Title-case each word."""
    return to_np(pc.utf8_title(to_pa(x)))


def substr(x: np.ndarray, start: int, stop: int | None = None) -> np.ndarray:
    """Code-point slice ``x[start:stop]``."""
    return to_np(pc.utf8_slice_codeunits(to_pa(x), start, stop if stop is not None else 2**31 - 1))


def replace(
    x: np.ndarray, pattern: str, repl: str, regex: bool = False, max_replacements: int | None = None
) -> np.ndarray:
    """Replace ``pattern`` by ``repl`` (literal or RE2 regex)."""
    fn = pc.replace_substring_regex if regex else pc.replace_substring
    return to_np(fn(to_pa(x), pattern=pattern, replacement=repl, max_replacements=max_replacements))


def contains(x: np.ndarray, pattern: str, regex: bool = False) -> np.ndarray:
    """Boolean mask: ``pattern`` occurs (nulls -> False)."""
    fn = pc.match_substring_regex if regex else pc.match_substring
    return np.asarray(
        pc.fill_null(fn(to_pa(x), pattern=pattern), False).to_numpy(zero_copy_only=False),
        dtype=bool,
    )


def length(x: np.ndarray) -> np.ndarray:
    """Code-point length (nulls -> 0)."""
    return np.asarray(
        pc.fill_null(pc.utf8_length(to_pa(x)), 0).to_numpy(zero_copy_only=False), dtype=np.int64
    )


def first_token(x: np.ndarray, sep: str = " ") -> np.ndarray:
    """Text before the first ``sep`` (the whole string when absent)."""
    return replace(x, f"{sep}.*$", "", regex=True)


def zfill(values: np.ndarray, width: int) -> np.ndarray:
    """Integers -> zero-padded decimal strings."""
    s = pc.cast(pa.array(np.asarray(values, dtype=np.int64)), pa.string())
    return to_np(pc.utf8_lpad(s, width=width, padding="0"))


def int_str(values: np.ndarray) -> np.ndarray:
    """Integers -> decimal strings."""
    return to_np(pc.cast(pa.array(np.asarray(values, dtype=np.int64)), pa.string()))


def is_missing(x: np.ndarray) -> np.ndarray:
    """Mask of ``None`` entries."""
    return np.asarray(pd.isna(x), dtype=bool)


def where(mask: np.ndarray, a: np.ndarray | str | None, b: np.ndarray | str | None) -> np.ndarray:
    """``np.where`` that keeps object dtype (so ``None`` stays ``None``)."""

    def arr(v: np.ndarray | str | None) -> np.ndarray:
        return v if isinstance(v, np.ndarray) else np.array(v, dtype=object)

    return np.where(mask, arr(a), arr(b)).astype(object)


def map_unique(x: np.ndarray, fn: Callable[[str], str | None]) -> np.ndarray:
    """Apply a Python function once per distinct value (names come from small pools)."""
    codes, uniques = pd.factorize(pd.Series(x, dtype=object), use_na_sentinel=True)
    mapped = np.array([fn(u) for u in uniques] + [None], dtype=object)
    return mapped[codes]


def apply_subset(
    x: np.ndarray, mask: np.ndarray, fn: Callable[..., str | None], *args: np.ndarray
) -> np.ndarray:
    """Apply ``fn(value, *row_args)`` to the masked (non-null) rows only; returns a copy.

    ``args`` are per-masked-row sequences (e.g. random draws) zipped with the values.
    """
    out = x.copy()
    idx = np.flatnonzero(mask & ~is_missing(x))
    if len(idx) == 0:
        return out
    sliced = [np.asarray(a)[: len(idx)] for a in args]
    out[idx] = [fn(v, *r) for v, *r in zip(x[idx], *sliced, strict=True)]
    return out


_FOLD = str.maketrans(
    {
        "ß": "ss",
        "ẞ": "SS",
        "æ": "ae",
        "Æ": "AE",
        "ø": "o",
        "Ø": "O",
        "œ": "oe",
        "Œ": "OE",
        "ł": "l",
        "Ł": "L",
        "\u0131": "i",
    }
)
_GERMAN = str.maketrans(
    {"ä": "ae", "ö": "oe", "ü": "ue", "Ä": "Ae", "Ö": "Oe", "Ü": "Ue", "ß": "ss"}
)


def strip_accents(s: str) -> str:
    """ASCII-fold one string: ``Núñez`` -> ``Nunez``, ``Straße`` -> ``Strasse``."""
    s = s.translate(_FOLD)
    return "".join(c for c in unicodedata.normalize("NFKD", s) if not unicodedata.combining(c))


def german_fold(s: str) -> str:
    """German transliteration: ``Müller`` -> ``Mueller``, then ASCII-fold the rest."""
    return strip_accents(s.translate(_GERMAN))


def fold(x: np.ndarray) -> np.ndarray:
    """Vectorized :func:`strip_accents`."""
    return map_unique(x, strip_accents)


def fold_german(x: np.ndarray) -> np.ndarray:
    """Vectorized :func:`german_fold`."""
    return map_unique(x, german_fold)


def join_lines(lines: pa.Array) -> bytes:
    """Concatenate a string array, one value per line, into UTF-8 bytes (no Python loop)."""
    arr = to_pa(pc.binary_join_element_wise(to_pa(lines), "\n", ""))
    if arr.null_count:
        raise ValueError("join_lines: null line")
    offsets = np.frombuffer(arr.buffers()[1], dtype=np.int32)[
        arr.offset : arr.offset + len(arr) + 1
    ]
    data = arr.buffers()[2]
    if data is None:
        return b""
    return data.to_pybytes()[offsets[0] : offsets[-1]]
