"""Plain-Python twins of the standardize functions that matching reads, for one record at a
time without Spark (the Profile API's ``POST /v1/resolve``).

Each function returns what its Spark namesake in :mod:`udp_spark.standardize.functions`
gives for the same value, Java regex and SQL semantics included: ``trim`` strips spaces
only, ``\\s`` is ASCII whitespace, empty results are None. ``tests/test_resolve_parity.py``
runs both on a shared set of tricky values. Phones reuse
:func:`udp_spark.standardize.phones.parse_phone` (what the Spark UDF calls), nicknames
:func:`udp_spark.standardize.reference.nickname_table`, Soundex ``jellyfish``.

:func:`party_fields` puts them together the way ``transforms.check_party`` does, for the
columns the comparisons and blocking keys read.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import date
from functools import cache
from typing import Any

import jellyfish
import regex

from udp_spark.standardize import reference as ref

# Java's \s is ASCII whitespace: [ \t\n\x0B\f\r].
_JAVA_SPACE = " \\t\\n\\x0B\\f\\r"
_WHITESPACE = regex.compile(
    "[" + _JAVA_SPACE + "\u00a0\u1680\u2000-\u200a\u2028\u2029\u202f\u205f\u3000]+")
_CONTROL = regex.compile(r"[\p{Cc}\p{Cf}]+")
_SPACES = regex.compile(" {2,}")
_APOSTROPHE = regex.compile("[" + re.escape(ref.APOSTROPHES) + "]")
_NOT_WORD = regex.compile(r"[^\p{L}\p{M}\p{N}]+")
_LATIN_MARKS = regex.compile(r"(?<=\p{IsLatin})\p{M}+")
_DOTS_APOSTROPHES = regex.compile("[." + re.escape(ref.APOSTROPHES) + "]")
_NON_LETTERS = re.compile("[^a-z]")
_FOLD = str.maketrans({src: dst for dst, srcs in ref.ACCENT_FOLD.items() for src in srcs})
_DROPPED = frozenset((*ref.NAME_TITLES, *ref.NAME_SUFFIXES))
_PLACEHOLDERS = frozenset(ref.PLACEHOLDER_TOKENS)
_EMAIL = re.compile(  # functions._EMAIL_RE (ASCII only: Java and Python read it alike)
    r"^(?=.{3,254}$)(?=[^@]{1,64}@)"
    r"[a-z0-9!#$%&'*+/=?^_`{|}~-]+(\.[a-z0-9!#$%&'*+/=?^_`{|}~-]+)*"
    r"@([a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?\.)+([a-z]{2,63}|xn--[a-z0-9-]{1,59})$")
_WELL_FORMED = re.compile("^[^@" + _JAVA_SPACE + "]+@[^@" + _JAVA_SPACE + "]+$")
_PLUS_TAG = re.compile(r"\+.*$")
_STREET_C = regex.compile("(^|[" + _JAVA_SPACE + ",])c/")
_STREET_JUNK = regex.compile(r"[^\p{L}\p{N}#]+")
_ID_JUNK = regex.compile("[" + _JAVA_SPACE + ".\\-\u2010-\u2015]")
_NOT_LETTER_DIGIT = regex.compile(r"[^\p{L}\p{N}]")


def _street_suffix_re() -> regex.Pattern[str]:
    words = sorted(ref.STREET_COMPOUND_SUFFIXES, key=len, reverse=True)
    alternation = "|".join(re.escape(w) for w in words)
    return regex.compile(r"(?<![\p{L}\p{N}])(\p{L}{2,}?)(" + alternation + r")\b")


_STREET_SUFFIX = _street_suffix_re()


def _none_if_empty(text: str | None) -> str | None:
    return text if text else None


def clean_text(value: str | None) -> str | None:
    """Twin of ``functions.clean_text``."""
    if value is None:
        return None
    text = _WHITESPACE.sub(" ", value)
    text = _CONTROL.sub("", text).strip(" ")
    text = _SPACES.sub(" ", text)
    return None if text.lower() in _PLACEHOLDERS else text


def fold_accents(value: str | None) -> str | None:
    """Twin of ``functions.fold_accents`` (marks dropped only after Latin letters)."""
    if value is None:
        return None
    text = value.lower()
    for src, dst in ref.ACCENT_FOLD_MULTI.items():
        text = text.replace(src, dst)
    return _LATIN_MARKS.sub("", text.translate(_FOLD))


def normalize_name(value: str | None) -> str | None:
    """Twin of ``functions.normalize_name``: ``"Dr. Seán O'Brien-Smith Jr."`` ->
    ``'sean obrien smith'``."""
    text = fold_accents(clean_text(value))
    if text is None:
        return None
    text = _NOT_WORD.sub(" ", _APOSTROPHE.sub("", text)).strip(" ")
    return _none_if_empty(" ".join(t for t in text.split(" ") if t not in _DROPPED))


def name_phonetic(norm: str | None) -> str | None:
    """Twin of ``functions.name_phonetic``: Soundex of the folded letters."""
    folded = fold_accents(norm)
    letters = _NON_LETTERS.sub("", folded) if folded is not None else ""
    return jellyfish.soundex(letters) if letters else None


def nickname_aliases(norm: str | None) -> list[str] | None:
    """Twin of ``functions.nickname_aliases``."""
    if norm is None:
        return None
    key = norm.strip(" ").lower()
    if not key:
        return None
    table = ref.nickname_table()
    every = list(table.get(key, (key,)))
    for part in key.split(" "):
        if part:
            every += table.get(part, (part,))
    return sorted(set(every))


def normalize_email(value: str | None) -> str | None:
    """Twin of ``functions.normalize_email`` (trim, lower-case)."""
    return None if value is None else _none_if_empty(value.strip(" ").lower())


def email_is_valid(value: str | None) -> bool | None:
    """Twin of ``functions.email_is_valid``."""
    email = normalize_email(value)
    return None if email is None else _EMAIL.search(email) is not None


def canonical_email(value: str | None) -> str | None:
    """Twin of ``functions.canonical_email``."""
    email = normalize_email(value)
    if email is None or not _WELL_FORMED.search(email):
        return None
    local, domain = email.split("@", 1)[0], email.rsplit("@", 1)[-1]
    local = _PLUS_TAG.sub("", local)
    if domain in ref.GMAIL_DOMAINS:
        local, domain = local.replace(".", ""), ref.GMAIL_DOMAINS[0]
    return f"{local}@{domain}" if local else None


def normalize_street(value: str | None) -> str | None:
    """Twin of ``functions.normalize_street``."""
    text = fold_accents(clean_text(value))
    if text is None:
        return None
    text = _STREET_C.sub(r"\1calle ", text)
    text = _APOSTROPHE.sub("", text)
    text = _STREET_JUNK.sub(" ", text).replace("#", " # ")
    text = _STREET_SUFFIX.sub(r"\1 \2", text)
    text = _SPACES.sub(" ", text).strip(" ")
    return _none_if_empty(" ".join(ref.STREET_TYPES.get(w, w) for w in text.split(" ")))


def _words(value: str | None) -> str | None:
    text = fold_accents(clean_text(value))
    return None if text is None else _NOT_WORD.sub(" ", text).strip(" ")


def normalize_city(value: str | None) -> str | None:
    """Twin of ``functions.normalize_city``."""
    return _none_if_empty(_words(value))


def normalize_postcode(value: str | None, country: str | None = None) -> str | None:
    """Twin of ``functions.normalize_postcode``."""
    text = clean_text(value)
    code = None if text is None else _none_if_empty(_NOT_LETTER_DIGIT.sub("", text.upper()))
    if code is None or not code.isascii():
        return code
    if country == "US" and code.isdigit() and 3 <= len(code) <= 4:
        return code.rjust(5, "0")
    prefix = ref.POSTCODE_PREFIXES.get(country or "")
    if prefix is not None:
        if code.isdigit() and len(code) == 4:
            return code.rjust(5, "0")
        if len(code) == 6 and code[0] == prefix and code[1:].isdigit():
            return code[1:]
    return code


def lookup_key(value: str | None) -> str | None:
    """Twin of ``functions._lookup_key`` (the Spark side's key, which keeps marks on
    non-Latin letters; ``reference.lookup_key`` drops every mark)."""
    text = fold_accents(clean_text(value))
    if text is None:
        return None
    text = _NOT_WORD.sub(" ", _DOTS_APOSTROPHES.sub("", text)).strip(" ")
    return text[4:] if text.startswith("the ") else text


def normalize_country(value: str | None) -> str | None:
    """Twin of ``functions.normalize_country(col, None)``: ISO alpha-2, or None."""
    key = _none_if_empty(lookup_key(value))
    return None if key is None else ref.country_by_key().get(key)


def normalize_gender(value: str | None) -> str | None:
    """Twin of ``functions.normalize_gender``: 'M', 'F', 'X' or None."""
    key = lookup_key(value)
    return None if key is None else ref.GENDER_BY_KEY.get(key)


def normalize_id(value: str | None) -> str | None:
    """Twin of ``functions.normalize_id``: 'ab-12.34 5' -> 'AB12345'."""
    text = clean_text(value)
    return None if text is None else _none_if_empty(_ID_JUNK.sub("", text.upper()))


def identifier_value(value: str | None) -> str | None:
    """Twin of ``comparisons.with_identifier_columns``' normalisation (letters and digits,
    upper-cased; '' as None)."""
    return None if value is None else _none_if_empty(_NOT_LETTER_DIGIT.sub("", value.upper()))


# ------------------------------------------------------------------------------- records


@cache
def _supported_regions() -> frozenset[str]:
    import phonenumbers

    return frozenset(phonenumbers.SUPPORTED_REGIONS)


def phone_region(country: str | None, default: str) -> str:
    """The default region a phone is parsed under, as ``phones._regions`` picks it."""
    region = (country or default).strip().upper()
    region = {"UK": "GB"}.get(region, region)
    return region if region in _supported_regions() else "US"


def parse_phone(raw: str | None, region: str) -> tuple[str | None, bool | None]:
    """(E.164, valid) of a cleaned phone number, from the function the Spark UDF calls."""
    if raw is None:
        return None, None
    from udp_spark.standardize.phones import parse_phone as parse

    e164, valid, _kind = parse(raw, region)
    return e164, valid


@dataclass(frozen=True)
class Problem:
    """A value standardize would have nulled (and quarantined as an issue)."""

    field: str
    message: str


@dataclass
class PartyFields:
    """The standardized columns of one record that comparisons and blocking keys read."""

    values: dict[str, Any]
    problems: list[Problem] = field(default_factory=list)


def party_fields(raw: Mapping[str, Any], *, default_country: str, today: date,
                 min_birth_year: int = 1900,
                 placeholder_emails: tuple[str, ...] = (),
                 placeholder_dates_of_birth: tuple[date, ...] = ()) -> PartyFields:
    """One raw person record -> the ``silver.party_records`` matching columns, as
    ``transforms.check_party`` derives them (raw keys: ``given_name``, ``middle_name``,
    ``family_name``, ``email``, ``phone``, ``mobile``, ``street``, ``city``, ``postcode``,
    ``country``, ``date_of_birth`` (a date), ``birth_year``, ``gender``, ``loyalty_id``,
    ``identifiers``). A value standardize would null is nulled and named in ``problems``."""
    problems: list[Problem] = []

    def text(key: str) -> str | None:
        value = raw.get(key)
        return clean_text(str(value)) if value is not None else None

    given, middle, family = (normalize_name(text(k)) for k in
                             ("given_name", "middle_name", "family_name"))
    for key, norm in (("given_name", given), ("middle_name", middle),
                      ("family_name", family)):
        if text(key) is not None and norm is None:
            problems.append(Problem(key, "no letters left once titles and symbols go"))
    email = normalize_email(text("email"))
    email_ok = False
    if email is not None:
        if email in placeholder_emails:
            problems.append(Problem("email", "a placeholder e-mail address"))
        elif not email_is_valid(email):
            problems.append(Problem("email", "not a valid e-mail address"))
        else:
            email_ok = True
    country = normalize_country(text("country"))
    if text("country") is not None and country is None:
        problems.append(Problem("country", "unknown country"))
    region = phone_region(country, default_country)
    phones: dict[str, str | None] = {}
    for key in ("phone", "mobile"):
        e164, valid = parse_phone(text(key), region)
        if valid is False:
            problems.append(Problem(key, f"not a valid phone number (region {region})"))
        phones[key] = e164
    dob = raw.get("date_of_birth")
    if dob is not None:
        if dob in placeholder_dates_of_birth:
            problems.append(Problem("date_of_birth", "a placeholder date of birth"))
            dob = None
        elif not (dob.year >= min_birth_year and dob <= today):
            problems.append(Problem("date_of_birth", f"out of range ({min_birth_year}-01-01 "
                                    f"to today)"))
            dob = None
    year = raw.get("birth_year")
    if year is not None and not (min_birth_year <= int(year) <= today.year):
        problems.append(Problem("birth_year", f"out of range ({min_birth_year} to "
                                f"{today.year})"))
        year = None
    gender = normalize_gender(text("gender"))
    if text("gender") is not None and gender is None:
        problems.append(Problem("gender", "not a known gender code or word"))
    identifiers: dict[str, str] = {}
    for key, value in sorted((raw.get("identifiers") or {}).items()):
        norm = normalize_id(str(value)) if value is not None else None
        if norm is not None:
            identifiers[str(key)] = norm
    values: dict[str, Any] = {
        "given_name_norm": given,
        "middle_name_norm": middle,
        "family_name_norm": family,
        "family_name_phonetic": name_phonetic(family),
        "given_name_aliases": nickname_aliases(given) or [],
        "email_canonical": canonical_email(email) if email_ok else None,
        "phone_e164": phones["phone"],
        "mobile_e164": phones["mobile"],
        "street_norm": normalize_street(text("street")),
        "city_norm": normalize_city(text("city")),
        "postcode": normalize_postcode(text("postcode"), country or default_country),
        "date_of_birth": dob,
        "birth_year": dob.year if dob is not None else year,
        "gender": gender,
        "loyalty_id": normalize_id(text("loyalty_id")),
        "identifiers": identifiers,
    }
    return PartyFields(values, problems)
