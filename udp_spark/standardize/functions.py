"""Column -> Column helpers that clean and normalize party fields, built on Spark built-ins.

Every function takes and returns a :class:`~pyspark.sql.Column`, is null-safe (null in, null
out) and never raises on bad data under ANSI mode: unparseable values become null. Lookup
tables live in :mod:`udp_spark.standardize.reference`; they are shipped to Spark as one
JSON string literal that the optimizer folds into a map constant once per query.

Example::

    from udp_spark.standardize import functions as sf

    people.select(
        sf.normalize_name(F.col("first_name")).alias("given_norm"),
        sf.canonical_email(F.col("email")).alias("email_key"),
        sf.parse_date(F.col("dob"), ["yyyy-MM-dd", "dd/MM/yyyy", "epoch_millis"]).alias("dob"),
    )

Phone numbers need a library and live in :mod:`udp_spark.standardize.phones`.
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable, Iterable, Mapping, Sequence
from functools import cache

from pyspark.sql import Column
from pyspark.sql import functions as F

from udp_spark.standardize import reference as ref

__all__ = [
    "canonical_email",
    "clean_text",
    "display_name",
    "email_is_valid",
    "fold_accents",
    "has_name_title",
    "name_phonetic",
    "nickname_aliases",
    "normalize_city",
    "normalize_country",
    "normalize_email",
    "normalize_gender",
    "normalize_id",
    "normalize_name",
    "normalize_postcode",
    "normalize_street",
    "parse_date",
    "parse_timestamp",
    "split_bare_name",
    "split_full_name",
    "strip_name_titles",
]

# Runs of whitespace-like characters (incl. no-break and typographic spaces) -> one space.
_WHITESPACE_RE = r"[\s\u00A0\u1680\u2000-\u200A\u2028\u2029\u202F\u205F\u3000]+"
# Control and invisible format characters (zero-width space, BOM, soft hyphen): dropped.
_CONTROL_RE = r"[\p{Cc}\p{Cf}]+"
_APOSTROPHE_RE = "[" + re.escape(ref.APOSTROPHES) + "]"
_NOT_WORD_RE = r"[^\p{L}\p{M}\p{N}]+"  # marks: vowel signs of Indic scripts

# RFC 5321/5322-ish: dot-atom local part (no leading, trailing or double dot), at most 64
# characters, at most 254 overall; LDH domain labels; alphabetic (or punycode) TLD.
_EMAIL_RE = (
    r"^(?=.{3,254}$)(?=[^@]{1,64}@)"
    r"[a-z0-9!#$%&'*+/=?^_`{|}~-]+(\.[a-z0-9!#$%&'*+/=?^_`{|}~-]+)*"
    r"@([a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?\.)+([a-z]{2,63}|xn--[a-z0-9-]{1,59})$"
)


def _alternation(words: Sequence[str]) -> str:
    # Longest first so 'mrs' is tried before 'mr'.
    return "|".join(re.escape(w) for w in sorted(words, key=len, reverse=True))


# the whole value one of reference.PLACEHOLDER_TOKENS, in any case (Unicode case folding,
# as F.lower: the Kelvin sign is a 'k')
_PLACEHOLDER_RE = "(?iu)^(?:" + _alternation([t for t in ref.PLACEHOLDER_TOKENS if t]) + r")\z"


def _null_if_empty(col: Column) -> Column:
    # nullif evaluates its input once (see _let on conditions and branches)
    return F.nullif(col, F.lit(""))


def _let(value: Column, body: Callable[[Column], Column]) -> Column:
    """``body(value)`` with ``value`` computed once: a one-element array and ``transform``
    bind it to a lambda variable. Without it, a body that uses its input in many CASE
    branches inlines the whole input expression into each one and the generated Java code
    outgrows the 64 KB method limit; and since Spark shares no subexpression between a CASE
    condition and its branch, an input used in both is computed twice a row (a chain of
    regexes in ``normalize_country`` ran four times)."""
    return F.element_at(F.transform(F.array(value), body), 1)


def _collapse_spaces(col: Column) -> Column:
    return F.trim(F.regexp_replace(col, " {2,}", " "))


@cache
def _json_literal(table: tuple[tuple[str, object], ...]) -> str:
    return json.dumps(dict(table), ensure_ascii=False, sort_keys=True)


def _map_literal(table: Mapping[str, object], value_type: str) -> Column:
    """A constant ``map<string, value_type>`` column.

    One JSON string literal parsed by ``from_json``: a single expression node that the
    optimizer constant-folds into a map literal, instead of thousands of ``lit`` children.
    """
    items = tuple(sorted(table.items()))
    return F.from_json(F.lit(_json_literal(items)), f"map<string,{value_type}>")


@cache
def _json_array(values: tuple[str, ...]) -> str:
    return json.dumps(sorted(set(values)), ensure_ascii=False)


def in_set(col: Column, values: Iterable[str]) -> Column:
    """``col IN (values)`` as one constant ``array<string>`` (a JSON literal the optimizer
    folds) instead of one ``lit`` per value: ``isin(*values)`` makes a JVM round trip per
    value each time the expression is built, and standardize builds it hundreds of times.
    Null when ``col`` is null, as ``isin``."""
    return F.array_contains(F.from_json(F.lit(_json_array(tuple(values))), "array<string>"),
                            col)


def _lookup_key(col: Column) -> Column:
    """Spark twin of :func:`reference.lookup_key` (applied after :func:`clean_text`)."""
    key = fold_accents(clean_text(col))
    key = F.regexp_replace(key, r"[." + re.escape(ref.APOSTROPHES) + "]", "")
    key = F.trim(F.regexp_replace(key, _NOT_WORD_RE, " "))
    return F.regexp_replace(key, "^the ", "")


# --------------------------------------------------------------------------------------------
# Text
# --------------------------------------------------------------------------------------------


def clean_text(col: Column) -> Column:
    """Trim, collapse whitespace, drop control characters; empty or placeholder -> null.

    Placeholders (``reference.PLACEHOLDER_TOKENS``: 'null', 'n/a', '-', 'unknown', ...) are
    matched case-insensitively. ``'  John \\t Smith '`` -> ``'John Smith'``; ``'N/A'`` -> null.
    """
    text = F.regexp_replace(col, _WHITESPACE_RE, " ")
    text = F.trim(F.regexp_replace(text, _CONTROL_RE, ""))
    text = F.regexp_replace(text, " {2,}", " ")
    # a placeholder becomes '' and '' null: the text above is used once (see _let)
    return _null_if_empty(F.regexp_replace(text, _PLACEHOLDER_RE, ""))


def fold_accents(col: Column) -> Column:
    """Lower-case and fold Latin letters to ASCII: 'Émile Müller-Łoś' -> 'emile muller-los'.

    Multi-letter folds first (ß -> ss, æ -> ae, œ -> oe, þ -> th), then one ``translate`` over
    Latin-1 and Latin Extended-A, then any combining mark left on a Latin letter (decomposed
    input) is removed. Other scripts pass through unchanged.
    """
    text = F.lower(col)
    for src, dst in ref.ACCENT_FOLD_MULTI.items():
        text = F.replace(text, F.lit(src), F.lit(dst))
    sources = "".join(ref.ACCENT_FOLD.values())
    targets = "".join(dst * len(srcs) for dst, srcs in ref.ACCENT_FOLD.items())
    text = F.translate(text, sources, targets)
    # Only marks on Latin letters: in Devanagari, Thai, Arabic ... vowel signs are marks too,
    # and part of the name ('अमित' is not 'अमत').
    return F.regexp_replace(text, r"(?<=\p{IsLatin})\p{M}+", "")


# --------------------------------------------------------------------------------------------
# Person names
# --------------------------------------------------------------------------------------------


def normalize_name(col: Column) -> Column:
    """Matching form of a name: folded, no titles/suffixes, punctuation-free, single-spaced.

    ``"Dr. Seán O'Brien-Smith Jr."`` -> ``'sean obrien smith'``; nothing left -> null.
    """
    text = fold_accents(clean_text(col))
    text = F.regexp_replace(text, _APOSTROPHE_RE, "")
    text = F.trim(F.regexp_replace(text, _NOT_WORD_RE, " "))
    dropped = (*ref.NAME_TITLES, *ref.NAME_SUFFIXES)
    tokens = F.filter(F.split(text, " "), lambda t: ~in_set(t, dropped))
    return _null_if_empty(F.array_join(tokens, " "))


def _title_case_token(token: Column) -> Column:
    # initcap only splits on spaces: a marker + space after '-' and apostrophes makes
    # 'jean-luc' -> 'Jean-Luc' and "o'brien" -> "O'Brien"; the marker is removed afterwards.
    marked = F.regexp_replace(token, "([-" + re.escape(ref.APOSTROPHES) + "])", "$1\uE000 ")
    return F.replace(F.initcap(marked), F.lit("\uE000 "), F.lit(""))


def display_name(col: Column) -> Column:
    """Name for showing: cleaned and proper-cased, accents kept.

    Only tokens typed all upper or all lower case are re-cased ('JOHN SMITH' -> 'John Smith',
    'josé de la o' -> 'José De La O'); mixed-case tokens such as 'McDonald' are kept as typed,
    roman numerals are upper-cased ('iii' -> 'III').
    """
    text = clean_text(col)

    def fix(token: Column) -> Column:
        return (
            F.when(in_set(F.lower(token), ref.ROMAN_NUMERAL_SUFFIXES), F.upper(token))
            .when((token == F.lower(token)) | (token == F.upper(token)), _title_case_token(token))
            .otherwise(token)
        )

    return F.array_join(F.transform(F.split(text, " "), fix), " ")


def _title_re(words: Sequence[str]) -> str:
    return r"(?i)(?<![\p{L}\p{N}])(?:" + _alternation(words) + r")(?![\p{L}\p{N}])"


def has_name_title(col: Column) -> Column:
    """True when a (cleaned) full name carries a title such as Mr or Dr."""
    return col.rlike(_title_re(ref.NAME_TITLES))


def strip_name_titles(col: Column) -> Column:
    """A cleaned full name without titles and suffixes; '/' (card style LAST/FIRST) and ','
    normalized to ', '; null when nothing is left."""
    drop_re = (
        r"(?i)(?<![\p{L}\p{N}])(?:" + _alternation((*ref.NAME_TITLES, *ref.NAME_SUFFIXES))
        + r")\.?(?![\p{L}\p{N}])"
    )
    bare = F.regexp_replace(col, drop_re, " ")
    bare = F.regexp_replace(bare, r"\s*[,/]\s*", ", ")
    bare = F.regexp_replace(bare, r"^[\s,.]+|[\s,]+$", "")
    return _null_if_empty(_collapse_spaces(bare))


def split_bare_name(bare: Column, had_title: Column) -> Column:
    """``struct<given, middle, family>`` of the output of :func:`strip_name_titles`.

    Pass column references (not expressions): the input is used many times.
    """
    # 'Family, Given Middle'
    c_family = _null_if_empty(F.trim(F.substring_index(bare, ",", 1)))
    after_comma = F.regexp_extract(bare, r"^[^,]*,(.*)$", 1)
    c_rest = _collapse_spaces(F.regexp_replace(after_comma, ",", " "))
    c_given = _null_if_empty(F.regexp_extract(c_rest, r"^(\S+)", 1))
    c_middle = _null_if_empty(F.regexp_extract(c_rest, r"^\S+ (.+)$", 1))

    # 'Given Middle Family'
    p_given = F.regexp_extract(bare, r"^(\S+)", 1)
    p_rest = F.regexp_extract(bare, r"^\S+ (.+)$", 1)
    particles = _alternation(ref.NAME_PARTICLES)
    # '??': try the longest family first, so particles join it ('van Beethoven').
    tail_re = r"^(?:(.*?) )??((?:(?:(?i:" + particles + r")) )*\S+)$"
    p_middle = _null_if_empty(F.regexp_extract(p_rest, tail_re, 1))
    p_family = _null_if_empty(F.regexp_extract(p_rest, tail_re, 2))
    lone_title_name = F.coalesce(had_title, F.lit(False)) & (p_rest == F.lit(""))

    has_comma = bare.contains(",")
    given = F.when(has_comma, c_given).when(~lone_title_name, _null_if_empty(p_given))
    middle = F.when(has_comma, c_middle).otherwise(p_middle)
    family = (
        F.when(has_comma, c_family)
        .when(lone_title_name, _null_if_empty(p_given))
        .otherwise(p_family)
    )
    parts = F.struct(given.alias("given"), middle.alias("middle"), family.alias("family"))
    return F.when(bare.isNotNull(), parts)


def split_full_name(col: Column) -> Column:
    """Split a full name into ``struct<given, middle, family>`` (strings, case kept).

    * 'Smith, John A' -> (John, A, Smith): text before the first comma is the family name;
      'SMITH/JOHN' (card style) reads the same.
    * 'john a. smith' -> (john, a., smith): first token given, last token family, rest middle;
      lower-case particles stay with the family name: 'Ludwig van Beethoven' -> (Ludwig, null,
      van Beethoven).
    * a single token is the given name, unless a title preceded it ('Mr Smith' -> family).
    * titles (Mr, Dr, ...) and suffixes (Jr, Sr, III, ...) are dropped.

    On large frames, stage it instead: ``strip_name_titles`` and ``has_name_title`` into
    columns first, then ``split_bare_name`` on those columns, so the plan stays small.
    """
    stripped = _let(
        clean_text(col),
        lambda text: F.struct(
            strip_name_titles(text).alias("bare"), has_name_title(text).alias("had_title")
        ),
    )
    return _let(stripped, lambda parts: split_bare_name(parts["bare"], parts["had_title"]))


def name_phonetic(col: Column) -> Column:
    """Soundex key of a (normalized) name, over its folded letters: "o'brien" -> 'O165'.

    Non-letters are ignored ('mary ann' -> soundex('maryann')); no Latin letter left -> null.
    """
    letters = F.regexp_replace(fold_accents(col), "[^a-z]", "")
    return F.soundex(_null_if_empty(letters))


def nickname_aliases(col: Column) -> Column:
    """Sorted distinct canonical given names a normalized given name may stand for, itself
    included: 'bob' -> ['bob', 'robert'], 'liz' -> ['elizabeth', 'liz'], 'robert' -> ['robert'].

    A compound name also stands for each of its parts and their canonical names, since people
    go by either part: 'maria dolores' -> ['dolores', 'maria', 'maria dolores'], which meets
    'lola' -> ['dolores', 'lola'].

    Table: :func:`reference.nickname_table` (the ``nicknames`` package plus European short
    forms), one folded map literal; the input is only lower-cased and trimmed, so pass the
    output of :func:`normalize_name`.
    """
    key = _null_if_empty(F.lower(F.trim(col)))
    table = _map_literal(ref.nickname_table(), "array<string>")

    def aliases(name: Column) -> Column:
        return F.coalesce(F.try_element_at(table, name), F.array(name))

    parts = F.filter(F.split(key, " "), lambda t: t != F.lit(""))
    every = F.flatten(F.array_prepend(F.transform(parts, aliases), aliases(key)))
    return F.when(key.isNotNull(), F.array_sort(F.array_distinct(every)))


# --------------------------------------------------------------------------------------------
# E-mail
# --------------------------------------------------------------------------------------------


def normalize_email(col: Column) -> Column:
    """Trimmed, lower-cased e-mail; empty -> null. Does not validate (see email_is_valid)."""
    return _null_if_empty(F.lower(F.trim(col)))


def email_is_valid(col: Column) -> Column:
    """Whether the normalized e-mail looks deliverable: 'local@domain.tld', TLD of 2+ letters,
    no '..', no leading or trailing dot in the local part. Null -> null.

    'john@' -> false, 'a@b' -> false, 'john..doe@x.com' -> false, 'j.doe+x@mail.co.uk' -> true.
    """
    return normalize_email(col).rlike(_EMAIL_RE)


def canonical_email(col: Column) -> Column:
    """Matching key of an e-mail: '+tag' removed from the local part; for gmail.com and
    googlemail.com the dots are removed too and the domain becomes gmail.com.

    'John.Doe+news@GoogleMail.com' -> 'johndoe@gmail.com'; 'a.b+x@corp.com' -> 'a.b@corp.com'.
    Null when the value is not of the form local@domain (one '@', both sides non-empty).
    """
    email = normalize_email(col)
    well_formed = email.rlike(r"^[^@\s]+@[^@\s]+$")
    domain = F.substring_index(email, "@", -1)
    local = F.regexp_replace(F.substring_index(email, "@", 1), r"\+.*$", "")
    is_gmail = in_set(domain, ref.GMAIL_DOMAINS)
    local = F.when(is_gmail, F.replace(local, F.lit("."), F.lit(""))).otherwise(local)
    domain = F.when(is_gmail, F.lit(ref.GMAIL_DOMAINS[0])).otherwise(domain)
    return F.when(well_formed & (local != F.lit("")), F.concat(local, F.lit("@"), domain))


# --------------------------------------------------------------------------------------------
# Addresses
# --------------------------------------------------------------------------------------------


def _words(col: Column) -> Column:
    """Cleaned, folded, punctuation -> space, single-spaced ('' stays '')."""
    text = fold_accents(clean_text(col))
    return F.trim(F.regexp_replace(text, _NOT_WORD_RE, " "))


def normalize_street(col: Column) -> Column:
    """Matching form of a street line: folded, punctuation-free, street types abbreviated.

    Street-type words become one short form, whole words only (``reference.STREET_TYPES``):
    '12 Main Street' -> '12 main st', 'Hauptstraße 5' -> 'haupt str 5', 'C/ Mayor, 3' ->
    'calle mayor 3', 'Avenida de Mayo' -> 'avda de mayo'. '#' stays as a token ('apt #4' ->
    'apt # 4').
    """
    text = fold_accents(clean_text(col))
    text = F.regexp_replace(text, r"(^|[\s,])c/", "$1calle ")
    text = F.regexp_replace(text, _APOSTROPHE_RE, "")
    text = F.regexp_replace(text, r"[^\p{L}\p{N}#]+", " ")
    text = F.regexp_replace(text, "#", " # ")
    suffixes = _alternation(tuple(ref.STREET_COMPOUND_SUFFIXES))
    text = F.regexp_replace(text, r"(?<![\p{L}\p{N}])(\p{L}{2,}?)(" + suffixes + r")\b", "$1 $2")
    text = F.trim(F.regexp_replace(text, " {2,}", " "))
    types = _map_literal(ref.STREET_TYPES, "string")
    words = F.transform(
        F.split(text, " "), lambda w: F.coalesce(F.try_element_at(types, w), w)
    )
    return _null_if_empty(F.array_join(words, " "))


def normalize_city(col: Column) -> Column:
    """Matching form of a city: 'St. Louis' -> 'st louis', 'München' -> 'munchen'."""
    return _null_if_empty(_words(col))


def normalize_postcode(col: Column, country: Column | None = None) -> Column:
    """Upper-case, letters and digits only: 'sw1a 1aa' -> 'SW1A1AA'; nothing left -> null.

    With ``country``, a five-digit code that lost its leading zeros (a spreadsheet read it as
    a number) gets them back: a US ZIP code '2131' or '501' -> '02131', '00501'; a German,
    French, Spanish or Italian '4246' -> '04246' (codes there have five digits, where
    Austria's, Switzerland's or Belgium's have four and stay as written). The old European
    country prefix goes: German 'D-22752' -> '22752', French 'F-75001' -> '75001'.
    """
    code = _null_if_empty(F.regexp_replace(F.upper(clean_text(col)), r"[^\p{L}\p{N}]", ""))
    if country is None:
        return code
    # null unless the country's codes have five digits
    prefix = F.try_element_at(_map_literal(ref.POSTCODE_PREFIXES, "string"), country)

    def fix(value: Column) -> Column:
        return (F.when((country == "US") & value.rlike("^[0-9]{3,4}$"), F.lpad(value, 5, "0"))
                .when(prefix.isNotNull() & value.rlike("^[0-9]{4}$"), F.lpad(value, 5, "0"))
                .when(value.rlike("^[A-Z][0-9]{5}$") & (F.substring(value, 1, 1) == prefix),
                      F.substring(value, 2, 5))
                .otherwise(value))

    return _let(code, fix)


def normalize_country(col: Column, default: str | Column | None = None) -> Column:
    """ISO 3166-1 alpha-2 code from a code, an alpha-3 code or a name in several languages.

    'USA', 'U.S.A.', 'United States', 'Deutschland', 'España', 'UK', 'England' -> 'US', 'US',
    'US', 'DE', 'ES', 'GB', 'GB'. Unknown non-null input -> null (for quarantine); null or
    placeholder input -> ``default``.

    Args:
        col: raw country values.
        default: value for missing input: an alpha-2 code or name (checked now), a column
            (used as is) or None.

    Raises:
        ValueError: ``default`` is a string that is not a known country.
    """
    table = ref.country_by_key()
    if isinstance(default, str):
        code = table.get(ref.lookup_key(default))
        if code is None:
            raise ValueError(
                f"normalize_country: default {default!r} is not a known country; "
                "use an ISO 3166-1 alpha-2 code such as 'US' or 'DE'"
            )
        fallback: Column = F.lit(code)
    elif default is None:
        fallback = F.lit(None).cast("string")
    else:
        fallback = default
    return _let(_null_if_empty(_lookup_key(col)), lambda key: F.when(
        key.isNull(), fallback).otherwise(F.try_element_at(_map_literal(table, "string"), key)))


# --------------------------------------------------------------------------------------------
# Dates
# --------------------------------------------------------------------------------------------


def _parse_one(text: Column, fmt: str) -> Column:
    if fmt == "iso8601":
        # Full dates only: the format-less parser would also accept '1980' as 1980-01-01.
        return F.when(text.rlike(r"^\d{4}-\d{1,2}-\d{1,2}"), F.try_to_timestamp(text))
    # Epoch numbers: at least 10^9 ms / 10^6 s (11.6 days from 1970), so a year ('1980') or a
    # short code is never read as a 1970 instant; at most 15 / 12 digits (year ~33658), so
    # the conversion cannot overflow.
    if fmt == "epoch_millis":
        return F.when(text.rlike(r"^-?\d{10,15}$"), F.timestamp_millis(text.try_cast("long")))
    if fmt == "epoch_seconds":
        return F.when(
            text.rlike(r"^-?\d{7,12}(\.\d{1,6})?$"),
            F.timestamp_seconds(text.try_cast("decimal(18,6)")),
        )
    return F.try_to_timestamp(text, F.lit(fmt))


def parse_timestamp(col: Column, formats: Sequence[str]) -> Column:
    """TimestampType from the first of ``formats`` that parses; none -> null.

    Formats are Spark datetime patterns ('yyyy-MM-dd HH:mm:ss', 'dd/MM/yyyy') or the tokens
    'iso8601' (ISO dates and date-times, with or without zone), 'epoch_millis' and
    'epoch_seconds' (numeric strings of 10-15 / 7-12 digits, i.e. not within 11.6 days of
    1970-01-01). Impossible dates (31/02/1980) are null.

    Raises:
        ValueError: ``formats`` is empty or a single string.
    """
    if isinstance(formats, str) or not formats:
        raise ValueError(
            "parse_timestamp/parse_date: formats must be a non-empty list such as "
            "['yyyy-MM-dd', 'iso8601']"
        )
    text = F.trim(col.cast("string"))
    return F.coalesce(*[_parse_one(text, fmt) for fmt in formats])


def parse_date(col: Column, formats: Sequence[str]) -> Column:
    """DateType from the first of ``formats`` that parses (see :func:`parse_timestamp`).

    Epoch values and zoned date-times take their date in the session time zone.
    """
    return F.to_date(parse_timestamp(col, formats))


# --------------------------------------------------------------------------------------------
# Other fields
# --------------------------------------------------------------------------------------------


def normalize_gender(col: Column) -> Column:
    """'M', 'F' or 'X' from codes, words and titles in several languages; anything else null.

    'male', 'Mr.', 'Herr' -> 'M'; 'F', 'woman', 'Mrs', 'weiblich' -> 'F'; 'x', 'diverse',
    'non-binary' -> 'X'; 'unknown', 'u' -> null.
    """
    return F.try_element_at(_map_literal(ref.GENDER_BY_KEY, "string"), _lookup_key(col))


def normalize_id(col: Column) -> Column:
    """Identifier: upper-case without spaces, dashes or dots: 'ab-12.34 5' -> 'AB12345'."""
    stripped = F.regexp_replace(F.upper(clean_text(col)), r"[\s.\-\u2010-\u2015]", "")
    return _null_if_empty(stripped)
