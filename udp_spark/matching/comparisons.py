"""Declarative comparisons: each turns a record pair into a graded agreement level.

Levels are small integers, highest = strongest agreement, 0 = disagreement, and
:data:`MISSING` (-1) when either side lacks the value: missing is its own level, never
disagreement. A pair frame has every record column twice, suffixed ``_l`` and ``_r``.

Example::

    comparisons = default_comparisons()
    vectors = pairs.transform(comparison_vectors(comparisons))
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING

from pyspark.sql import Column, DataFrame
from pyspark.sql import functions as F

from udp_spark.matching.similarity import jaro_winkler

if TYPE_CHECKING:  # config validates against BUILTIN_COMPARISONS: a runtime import cycles
    from udp_spark.config import IdentifierComparison

MISSING = -1
#: the joint term-frequency table of given and family name (``scoring.joint_tf_table``)
FULL_NAME = "full_name"

LevelFn = Callable[[], Column]


def L(name: str) -> Column:
    return F.col(f"{name}_l")


def R(name: str) -> Column:
    return F.col(f"{name}_r")


@dataclass(frozen=True)
class Comparison:
    """A named comparison with its levels, from strongest agreement down to 0.

    ``levels`` are ``(label, condition)`` from the highest level down; the first condition
    that holds gives the level ``len(levels) - i``; none holding gives 0. ``missing`` says
    when the comparison has no information. ``tf_column`` names the column whose value
    frequency adjusts the top level (two Smiths prove less than two Zbigniewskis);
    ``tf_value`` and ``tf_table`` instead give the pair's value to look up and the name of
    the table it is in (another comparison's, or a joint one such as :data:`FULL_NAME`).
    ``params`` are the settings it was built with (``address``'s ``moved_years``): a
    trained model keeps them (:func:`comparison_settings`) so that scoring builds the same
    levels (:func:`comparisons_named`).
    """

    name: str
    levels: tuple[tuple[str, LevelFn], ...]
    missing: LevelFn
    tf_column: str | None = None
    description: str = ""
    params: tuple[tuple[str, int], ...] = ()
    tf_value: LevelFn | None = None
    tf_table: str | None = None

    @property
    def level_labels(self) -> dict[int, str]:
        n = len(self.levels)
        labels = {n - i: label for i, (label, _) in enumerate(self.levels)}
        return {**labels, 0: "else", MISSING: "missing"}

    @property
    def top_level(self) -> int:
        return len(self.levels)

    def level(self) -> Column:
        n = len(self.levels)
        expr = F.when(self.missing(), F.lit(MISSING))
        for i, (_, cond) in enumerate(self.levels):
            expr = expr.when(cond(), F.lit(n - i))
        return expr.otherwise(F.lit(0)).cast("int").alias(self.name)


def _either_null(*cols: str) -> LevelFn:
    def f() -> Column:
        out = F.lit(False)
        for c in cols:
            out = out | L(c).isNull() | R(c).isNull()
        return out
    return f


def _near_name(family: Column, given: Column, aliases: Column, when: Column) -> Column:
    """A family-name field holding ``given`` (from the other record's given-name field, with
    its ``aliases``) a little off: Jaro-Winkler >= 0.88, the first part of a compound, or a
    nickname; neither side an initial. Only worked out where ``when`` holds (the similarity
    is a UDF: the other rows pass it nulls)."""
    jw = jaro_winkler(F.when(when, family), F.when(when, given))
    return ((F.length(family) > 1) & (F.length(given) > 1) & (
        (jw >= 0.88) | (F.substring_index(family, " ", 1) == F.substring_index(given, " ", 1))
        | F.array_contains(aliases, family)))


def _swapped() -> Column:
    """Given and family name in each other's fields: both exactly, or one exactly and the
    other near (:func:`_near_name`: ``castillo / jstin`` for Justin Castillo, ``watson /
    thomas`` against Tommy Watson, ``sanchez ibanez / fernando`` against Fernando Sanchez).

    A swap that is not exact used to be no agreement at all: a first-name conflict that kept
    one person's records apart (on 1,500 people with register sources, 40 candidate pairs
    became swaps, all 40 of one person)."""
    g_l, f_l = L("given_name_norm"), L("family_name_norm")
    g_r, f_r = R("given_name_norm"), R("family_name_norm")
    cross_l, cross_r = g_l == f_r, f_l == g_r
    # the exact half of a near swap is a name, not an initial
    near_l, near_r = cross_l & (F.length(g_l) > 1), cross_r & (F.length(f_l) > 1)
    return (cross_l & cross_r) | (
        near_l & _near_name(f_l, g_r, R("given_name_aliases"), near_l)) | (
        near_r & _near_name(f_r, g_l, L("given_name_aliases"), near_r))


def given_name() -> Comparison:
    g_l, g_r = L("given_name_norm"), R("given_name_norm")
    jw = jaro_winkler(g_l, g_r)
    return Comparison(
        "given_name",
        (("exact or swapped", lambda: (g_l == g_r) | _swapped()),
         # Aliases hold a compound name's parts: "maria dolores" meets "lola" and "maria",
         # but two compounds sharing a part ("maria dolores", "maria pilar") are not one name.
        ("nickname or part of a compound", lambda: F.arrays_overlap(
            L("given_name_aliases"), R("given_name_aliases"))
            & ~(F.contains(g_l, F.lit(" ")) & F.contains(g_r, F.lit(" ")))),
         ("jaro_winkler >= 0.92", lambda: jw >= 0.92),
         ("jaro_winkler >= 0.80 or initial", lambda: (jw >= 0.80) | (
             ((F.length(g_l) == 1) | (F.length(g_r) == 1))
             & (F.substring(g_l, 1, 1) == F.substring(g_r, 1, 1)))),
         ("same first letter", lambda: F.substring(g_l, 1, 1) == F.substring(g_r, 1, 1))),
        _either_null("given_name_norm"),
        tf_column="given_name_norm",
    )


def family_name() -> Comparison:
    f_l, f_r = L("family_name_norm"), R("family_name_norm")
    jw = jaro_winkler(f_l, f_r)
    # A one-letter family name is an initial: it agrees with any name it starts, weakly.
    names = (F.length(f_l) > 1) & (F.length(f_r) > 1)
    initial = ~names & (F.substring(f_l, 1, 1) == F.substring(f_r, 1, 1))
    return Comparison(
        "family_name",
        (("exact or swapped", lambda: (names & (f_l == f_r)) | _swapped()),
         ("jaro_winkler >= 0.92", lambda: names & (jw >= 0.92)),
         ("jaro_winkler >= 0.80, phonetic or initial",
          lambda: (jw >= 0.80) | (L("family_name_phonetic") == R("family_name_phonetic"))
          | initial)),
        _either_null("family_name_norm"),
        tf_column="family_name_norm",
    )


def _transposed(a: Column, b: Column) -> Column:
    """``b`` is ``a`` with two adjacent characters swapped (``12345``, ``12435``)."""
    n = F.length(a)
    one_swap = F.exists(F.sequence(F.lit(1), F.greatest(n - 1, F.lit(1))), lambda i: F.concat(
        F.substr(a, F.lit(1), i - 1), F.substr(a, i + 1, F.lit(1)), F.substr(a, i, F.lit(1)),
        F.substr(a, i + 2, n)) == b)
    return (n == F.length(b)) & (n >= 2) & (a != b) & one_swap


def one_edit(a: Column, b: Column) -> Column:
    """Damerau-Levenshtein distance at most 1: equal, one character inserted, deleted or
    replaced, or two adjacent characters swapped."""
    return (F.levenshtein(a, b) <= 1) | _transposed(a, b)


def middle_name() -> Comparison:
    """Middle names or initials: the same name (or one letter off), the same initial where
    a side holds only an initial, or different. Two people of one given and family name at
    one address are often told apart only by it; a record without one tells nothing."""
    m_l, m_r = L("middle_name_norm"), R("middle_name_norm")
    first_l, first_r = F.substring_index(m_l, " ", 1), F.substring_index(m_r, " ", 1)
    full = (F.length(first_l) > 1) & (F.length(first_r) > 1)
    return Comparison(
        "middle_name",
        (("same name (or one letter off)", lambda: full & (
            (first_l == first_r) | ((F.length(first_l) > 3) & one_edit(first_l, first_r)))),
         ("same initial", lambda: ~full & (F.substring(m_l, 1, 1) == F.substring(m_r, 1, 1)))),
        _either_null("middle_name_norm"),
    )


def date_of_birth() -> Comparison:
    d_l, d_r = L("date_of_birth"), R("date_of_birth")
    y_l, y_r = L("birth_year"), R("birth_year")
    both_dates = d_l.isNotNull() & d_r.isNotNull()
    s_l, s_r = F.date_format(d_l, "yyyyMMdd"), F.date_format(d_r, "yyyyMMdd")
    return Comparison(
        "date_of_birth",
        (("exact", lambda: both_dates & (d_l == d_r)),
         ("day/month transposed", lambda: both_dates & (F.year(d_l) == F.year(d_r))
          & (F.month(d_l) == F.dayofmonth(d_r)) & (F.dayofmonth(d_l) == F.month(d_r))),
         ("one digit off", lambda: both_dates & (F.levenshtein(s_l, s_r) <= 1)),
         ("same birth year", lambda: y_l == y_r),
         ("birth year off by one", lambda: F.abs(y_l - y_r) == 1)),
        lambda: y_l.isNull() | y_r.isNull(),
    )


def _local_part(c: Column) -> Column:
    return F.substring_index(c, "@", 1)


def _digits(c: Column) -> Column:
    return F.regexp_replace(c, "[^0-9]", "")


def _made_of_names(local: Column) -> Column:
    """True when a local part's letters are the pair's names and at most one more letter
    (``oliviaredridge``, ``a.martinez``, ``carterj``, ``thomas1983``)."""
    letters = F.regexp_replace(local, "[^a-z]", "")
    for side in (L, R):  # family names first: they are the longer part
        letters = F.replace(letters, F.coalesce(
            F.regexp_replace(side("family_name_norm"), " ", ""), F.lit("")))
    for side in (L, R):
        letters = F.replace(letters, F.coalesce(
            F.regexp_replace(side("given_name_norm"), " ", ""), F.lit("")))
    return F.length(letters) <= 1


def email() -> Comparison:
    """Exact, same local part, or a typo. A typo may not change the address's digits:
    ``jsmith82`` and ``jsmith04`` are two accounts, often two people.

    The same local part made of the names at another provider (``oliviaredridge@gmail.com``,
    ``oliviaredridge@sky.com``) tells nothing the name comparisons have not counted already:
    namesakes pick it as readily as one person does, while u (from random pairs, which
    rarely share names) would call it near-proof. Such a pair is scored as no e-mail
    evidence (the missing level). At 67k records those pairs were 1,458 namesakes and 175
    matches; a domain typo (``yaho.com``) or a local part of its own keeps the level.
    """
    e_l, e_r = L("email_canonical"), R("email_canonical")
    local_l, local_r = _local_part(e_l), _local_part(e_r)
    other_provider = F.levenshtein(F.substring_index(e_l, "@", -1),
                                   F.substring_index(e_r, "@", -1)) > 2
    return Comparison(
        "email",
        (("exact", lambda: e_l == e_r),
         ("same local part", lambda: local_l == local_r),
         ("levenshtein <= 2, same digits",
          lambda: (F.levenshtein(e_l, e_r) <= 2) & (_digits(local_l) == _digits(local_r)))),
        lambda: e_l.isNull() | e_r.isNull() | (
            (local_l == local_r) & other_provider & _made_of_names(local_l)),
        tf_column="email_canonical",
    )


def _letters(c: Column) -> Column:
    return F.regexp_replace(c, "[^a-z]", "")


def _nameless_with_email(side: Callable[[str], Column]) -> Column:
    return (side("given_name_norm").isNull() & side("family_name_norm").isNull()
            & side("email_canonical").isNotNull())


def _named(side: Callable[[str], Column]) -> Column:
    return side("given_name_norm").isNotNull() & side("family_name_norm").isNotNull()


def _spells(email_side: Callable[[str], Column], named_side: Callable[[str], Column]
            ) -> Column:
    local = _letters(_local_part(email_side("email_canonical")))
    given, family = (_letters(named_side("given_name_norm")),
                     _letters(named_side("family_name_norm")))
    return (local == F.concat(given, family)) | (local == F.concat(family, given))


def email_name() -> Comparison:
    """A record with an e-mail and no name against one with a given and a family name: the
    e-mail's local part spells that full name (its letters are given + family name or
    family + given: ``thomas.ross82``, ``rossthomas``), or it does not. Every other pair
    has no such evidence (missing): two named records are compared by their names.

    A newsletter sign-up or a till receipt often holds nothing but an e-mail: without this
    it met its person only through an e-mail address their other records share. The top
    level is weighed by how common the full name is (the :data:`FULL_NAME` table): a
    namesake's e-mail spells the name as well as the person's own does.
    """
    l_named_r = _nameless_with_email(L) & _named(R)
    r_named_l = _nameless_with_email(R) & _named(L)

    def full_name(side: Callable[[str], Column]) -> Column:
        return F.concat_ws("|", side("given_name_norm"), side("family_name_norm"))

    return Comparison(
        "email_name",
        (("e-mail local part spells the other record's full name",
          lambda: (l_named_r & _spells(L, R)) | (r_named_l & _spells(R, L))),),
        lambda: ~(l_named_r | r_named_l),
        tf_value=lambda: F.when(l_named_r, full_name(R)).when(r_named_l, full_name(L)),
        tf_table=FULL_NAME,
    )


def _phones(side: Callable[[str], Column]) -> Column:
    return F.filter(F.array(side("phone_e164"), side("mobile_e164")), lambda x: x.isNotNull())


def phone() -> Comparison:
    p_l, p_r = _phones(L), _phones(R)
    last7_l = F.transform(p_l, lambda x: F.substring(x, -7, 7))
    last7_r = F.transform(p_r, lambda x: F.substring(x, -7, 7))
    return Comparison(
        "phone",
        (("shared number", lambda: F.arrays_overlap(p_l, p_r)),
         ("same last 7 digits", lambda: F.arrays_overlap(last7_l, last7_r))),
        lambda: (F.size(p_l) == 0) | (F.size(p_r) == 0),
    )


#: the pair-frame column holding when a record's values were last known true by its source
#: (:func:`record_time`)
RECORD_TIME = "record_time"


def record_time(records: DataFrame) -> Column:
    """When the source says a record last changed: ``updated_at``, else ``created_at``
    (``profile.functions.source_time``); null when the source gives neither or the frame
    has no such column. The landing time is no stand-in: a file's arrival says nothing
    about when an address was held."""
    cols = [F.col(c) for c in ("updated_at", "created_at") if c in records.columns]
    time = F.coalesce(*cols) if len(cols) > 1 else cols[0] if cols else F.lit(None)
    return time.cast("timestamp").alias(RECORD_TIME)


def observed_apart(years: int) -> Column:
    """Both records of the pair carry a :func:`record_time` and those are at least
    ``years`` x 365 days apart."""
    return F.abs(F.datediff(L(RECORD_TIME), R(RECORD_TIME))) >= F.lit(365 * years)


def address(moved_years: int | None = None) -> Comparison:
    """Street, postcode and city as one comparison: they agree or disagree together, and
    scoring them separately would count one shared address three times. A record with a
    postcode but no street (a till, an app) is not a neighbour on another street: the two
    are separate levels. A postcode one typo off counts as the same postcode for a street
    that agrees.

    ``moved_years``: an address that disagrees between records observed at least that many
    years apart (:func:`observed_apart`) is a level of its own below "same city", since
    people move: EM weighs it apart from a disagreement between records of one time. A
    record whose source gives no time falls to the ordinary "else". None: no such level
    (the levels of models trained before it).
    """
    s_l, s_r = L("street_norm"), R("street_norm")
    p_l, p_r = L("postcode"), R("postcode")
    same_pc = p_l == p_r
    same_city = L("city_norm") == R("city_norm")
    # A postcode one character off (or two swapped) is a typo when the street agrees.
    near_pc = same_pc | one_edit(p_l, p_r)
    place = near_pc | (p_l.isNull() | p_r.isNull()) & same_city
    jw = jaro_winkler(s_l, s_r)
    levels: tuple[tuple[str, LevelFn], ...] = (
        # The same street and house number in one city is one address whatever the
        # postcodes say (a typo in one of them dropped it to "same city").
        ("same street and postcode/city", lambda: (s_l == s_r) & (place | same_city)),
        ("similar street, same postcode/city", lambda: (jw >= 0.88) & place),
        ("same postcode, a street on one side only",
         lambda: same_pc & (s_l.isNull() | s_r.isNull())),
        ("same postcode, other street", lambda: same_pc),
        ("same city or postcode area", lambda: same_city | (
            F.substring(p_l, 1, 3) == F.substring(p_r, 1, 3))))
    if moved_years is not None:
        years = moved_years
        levels += ((f"different, observed at least {years} years apart",
                    lambda: observed_apart(years)),)
    return Comparison(
        "address", levels,
        lambda: (s_l.isNull() | s_r.isNull()) & (p_l.isNull() | p_r.isNull())
        & (L("city_norm").isNull() | R("city_norm").isNull()),
        tf_column=None,
        params=() if moved_years is None else (("moved_years", moved_years),),
    )


#: identifiers shorter than this (normalised) have no typo level: one character off is
#: as likely another value as a typo
MIN_ID_NEAR_LENGTH = 5


def loyalty_id() -> Comparison:
    """The same card, one digit off or two swapped (a typo: agreement, not a conflict), or
    another card."""
    a, b = L("loyalty_id"), R("loyalty_id")
    long_enough = (F.length(a) >= MIN_ID_NEAR_LENGTH) & (F.length(b) >= MIN_ID_NEAR_LENGTH)
    return Comparison("loyalty_id", (("exact", lambda: a == b),
                                     ("one character off or transposed",
                                      lambda: long_enough & one_edit(a, b))),
                      _either_null("loyalty_id"))


def gender() -> Comparison:
    return Comparison("gender", (("exact", lambda: L("gender") == R("gender")),),
                      _either_null("gender"))


def default_comparisons(address_moved_years: int | None = None) -> tuple[Comparison, ...]:
    """The comparisons used when the config names none (``address_moved_years``: see
    :func:`address`)."""
    return (given_name(), middle_name(), family_name(), date_of_birth(), email(), phone(),
            address(address_moved_years), loyalty_id(), gender(), email_name())


BUILTIN_COMPARISONS = frozenset(("given_name", "middle_name", "family_name", "date_of_birth",
                                 "email", "phone", "address", "loyalty_id", "gender",
                                 "email_name"))
IDENTIFIER_PREFIX = "idc_"


def identifier(name: str) -> Comparison:
    """Agreement on the identifier column ``idc_<name>`` (see
    :func:`with_identifier_columns`): exact, one character off or two adjacent characters
    swapped (``396919886`` / ``396119886``: a typo, not a conflict), or different."""
    col = f"{IDENTIFIER_PREFIX}{name}"
    a, b = L(col), R(col)
    long_enough = (F.length(a) >= MIN_ID_NEAR_LENGTH) & (F.length(b) >= MIN_ID_NEAR_LENGTH)
    return Comparison(name, (("exact", lambda: a == b),
                             ("one character off or transposed",
                              lambda: long_enough & one_edit(a, b))),
                      _either_null(col), tf_column=col,
                      description=f"mapped identifier {name}")


def comparisons_for(identifiers: Sequence[IdentifierComparison] = (),
                    address_moved_years: int | None = None) -> tuple[Comparison, ...]:
    """The built-in comparisons plus one exact comparison per configured identifier
    (``address_moved_years``: ``matching.address_moved_years``, see :func:`address`)."""
    return default_comparisons(address_moved_years) + tuple(
        identifier(i.name) for i in identifiers)


def with_identifier_columns(identifiers: Sequence[IdentifierComparison]
                            ) -> Callable[[DataFrame], DataFrame]:
    """records -> records with ``idc_<name>`` = the identifier's expression upper-cased
    with only letters and digits kept (``396-91-9886`` -> ``396919886``), '' as null."""
    def transform(records: DataFrame) -> DataFrame:
        if not identifiers:
            return records
        cols = {}
        for i in identifiers:
            v = F.regexp_replace(F.upper(F.expr(i.expression).cast("string")),
                                 r"[^\p{L}\p{N}]", "")
            cols[f"{IDENTIFIER_PREFIX}{i.name}"] = F.when(v != F.lit(""), v)
        return records.withColumns(cols)

    return transform


def comparison_settings(comparisons: Sequence[Comparison]) -> dict[str, dict[str, int]]:
    """comparison -> the settings it was built with, for those built with any (kept on a
    trained model for :func:`comparisons_named`)."""
    return {c.name: dict(c.params) for c in comparisons if c.params}


def comparisons_named(names: Sequence[str],
                      settings: Mapping[str, Mapping[str, int]] | None = None
                      ) -> list[Comparison]:
    """The comparisons a trained model uses, in its order: built-in ones by name (built with
    the model's ``settings``, :func:`comparison_settings`; a model without them gets the
    levels it was trained with), any other name an identifier comparison."""
    address_settings = (settings or {}).get("address", {})
    builtin = {c.name: c for c in default_comparisons(address_settings.get("moved_years"))}
    return [builtin[n] if n in builtin else identifier(n) for n in names]


def record_columns(identifiers: Sequence[IdentifierComparison] = ()) -> tuple[str, ...]:
    """The record columns a pair frame needs for :func:`comparisons_for`."""
    return RECORD_COLUMNS + tuple(f"{IDENTIFIER_PREFIX}{i.name}" for i in identifiers)


RECORD_COLUMNS = (
    "record_id", "source", "given_name_norm", "given_name_aliases", "middle_name_norm",
    "family_name_norm", "family_name_phonetic", "date_of_birth", "birth_year",
    "email_canonical", "phone_e164", "mobile_e164", "street_norm", "postcode", "city_norm",
    "loyalty_id", "gender",
)


def pair_frame(records: DataFrame, pairs: DataFrame,
               columns: Sequence[str] | None = None) -> DataFrame:
    """``(record_id_l, record_id_r, ...)`` joined with both records' columns (``_l``/``_r``),
    and their :func:`record_time` (``record_time_l``/``_r``).

    ``columns`` defaults to :data:`RECORD_COLUMNS` plus any identifier columns
    (``idc_*``) the records carry.
    """
    if columns is None:
        columns = RECORD_COLUMNS + tuple(c for c in records.columns
                                         if c.startswith(IDENTIFIER_PREFIX))
    columns = [c for c in columns if c != RECORD_TIME]
    sel = records.select(*columns, record_time(records))
    columns = [*columns, RECORD_TIME]
    left = sel.select(*[F.col(c).alias(f"{c}_l") for c in columns])
    right = sel.select(*[F.col(c).alias(f"{c}_r") for c in columns])
    return pairs.join(left, "record_id_l").join(right, "record_id_r")


def comparison_vectors(comparisons: Sequence[Comparison]) -> Callable[[DataFrame], DataFrame]:
    """pair frame -> the pair keys, extra pair columns kept, plus one level per comparison."""

    def transform(pairs: DataFrame) -> DataFrame:
        keep = [c for c in pairs.columns if not (c.endswith("_l") or c.endswith("_r"))
                or c in ("record_id_l", "record_id_r")]
        tf_cols = [(c.tf_value() if c.tf_value else F.col(f"{c.tf_column}_l"))
                   .alias(f"tf_value_{c.name}")
                   for c in comparisons if c.tf_column or c.tf_value]
        return pairs.select(*keep, *[c.level() for c in comparisons], *tf_cols)

    return transform
