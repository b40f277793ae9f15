"""Phone numbers to E.164 with Google's libphonenumber rules (the ``phonenumbers`` package).

The one place in standardize that needs a library: a vectorized pandas UDF that parses each
distinct (number, region) pair of an Arrow batch once, since the same numbers repeat across
many rows, and keeps a bounded per-worker cache across batches.
"""

from __future__ import annotations

import re
from functools import lru_cache

import numpy as np
import pandas as pd
import phonenumbers
from phonenumbers import NumberParseException, PhoneNumberFormat, PhoneNumberType
from pyspark.sql import Column
from pyspark.sql import functions as F
from pyspark.sql.types import BooleanType, StringType, StructField, StructType

__all__ = ["PHONE_SCHEMA", "normalize_phone", "parse_phone"]

#: Result of :func:`normalize_phone`.
PHONE_SCHEMA = StructType([
    StructField("e164", StringType()),
    StructField("valid", BooleanType()),
    StructField("kind", StringType()),
])

DEFAULT_REGION = "US"

_KINDS = {
    PhoneNumberType.MOBILE: "mobile",
    PhoneNumberType.FIXED_LINE: "fixed_line",
    PhoneNumberType.FIXED_LINE_OR_MOBILE: "fixed_line_or_mobile",
    PhoneNumberType.VOIP: "voip",
}
_REGIONS = frozenset(phonenumbers.SUPPORTED_REGIONS)
_REGION_ALIASES = {"UK": "GB"}
# '00' is the international call prefix of most of the world; libphonenumber only reads it
# as such when the default region uses it ('0049 ...' under US would be a US number).
_DOUBLE_ZERO_RE = re.compile(r"^\s*00(?=\s*[1-9])")
_SEP = "\x1f"  # unit separator: NUL would be cut by C string paths

PhoneResult = tuple[str | None, bool | None, str | None]


@lru_cache(maxsize=1 << 16)
def parse_phone(raw: str, region: str) -> PhoneResult:
    """(e164, valid, kind) of one raw number under a default ISO-2 region.

    Blank -> (None, None, None); unparseable or invalid -> (None, False, None). Extensions
    ('x123', 'ext. 123') are accepted and dropped from the E.164 form.

    >>> parse_phone("0049 151 23456789", "US")
    ('+4915123456789', True, 'mobile')
    """
    text = raw.strip()
    if not text:
        return (None, None, None)
    candidates = [text]
    if _DOUBLE_ZERO_RE.match(text):
        candidates.append("+" + _DOUBLE_ZERO_RE.sub("", text, count=1))
    for candidate in candidates:
        try:
            number = phonenumbers.parse(candidate, region)
        except NumberParseException:
            continue
        if phonenumbers.is_valid_number(number):
            e164 = phonenumbers.format_number(number, PhoneNumberFormat.E164)
            return (e164, True, _KINDS.get(phonenumbers.number_type(number), "other"))
    return (None, False, None)


def _regions(country: pd.Series) -> pd.Series:
    region = country.astype("string").str.strip().str.upper()
    region = region.replace(_REGION_ALIASES)
    return region.where(region.isin(_REGIONS), DEFAULT_REGION).fillna(DEFAULT_REGION)


def _normalize_batch(raw: pd.Series, country: pd.Series) -> pd.DataFrame:
    """Parse each distinct (raw, region) of the batch once and map the results back."""
    keys = raw.astype("string") + _SEP + _regions(country)  # null raw -> <NA> key
    codes, uniques = pd.factorize(keys)  # <NA> gets code -1
    results = [parse_phone(*key.split(_SEP, 1)) for key in uniques]
    results.append((None, None, None))  # index -1: null raw
    e164, valid, kind = (np.array(column, dtype=object) for column in zip(*results, strict=True))
    return pd.DataFrame({"e164": e164[codes], "valid": valid[codes], "kind": kind[codes]})


@F.pandas_udf(PHONE_SCHEMA)  # type: ignore[call-overload]
def _normalize_phone_udf(raw: pd.Series, country: pd.Series) -> pd.DataFrame:
    return _normalize_batch(raw, country)


def normalize_phone(raw: Column, country: Column) -> Column:
    """``struct<e164, valid, kind>`` of a raw phone number, parsed with ``country`` (ISO-2;
    null or unknown -> 'US') as the default region.

    Handles '+', the '00' international prefix, national numbers with trunk '0', spaces,
    dots, slashes, parentheses and extensions. ``e164`` is set only for valid numbers;
    ``valid`` is false for non-blank input that does not parse or is not a valid number;
    ``kind`` is 'mobile', 'fixed_line', 'fixed_line_or_mobile', 'voip' or 'other'. Null raw
    -> null struct; blank raw -> all fields null.

    Example::

        df.withColumn("phone", normalize_phone(F.col("phone_raw"), F.col("country")))
          .select("phone.e164", "phone.valid")
    """
    parsed = _normalize_phone_udf(raw.cast("string"), country.cast("string"))
    return F.when(raw.isNotNull(), parsed)
