"""One record pair scored in plain Python: the twin of the Spark comparisons
(:mod:`udp_spark.matching.comparisons`) and of the Fellegi-Sunter weights with frozen term
frequencies (:func:`udp_spark.matching.scoring.weight_columns` and ``score``), for scoring
a handful of pairs per request without Spark (``POST /v1/resolve``).

Records are dicts of the pair-frame columns (:data:`comparisons.RECORD_COLUMNS` plus any
``idc_<name>``), dates as :class:`datetime.date`. SQL's three-valued logic is kept where it
matters: a level's condition over a null is not true, and every condition that negates
something negates a value already known to be present. ``tests/test_resolve_parity.py``
checks the levels against Spark's on crafted pairs, and ``tests/test_serve.py`` the whole
score against ``udp explain``.
"""

from __future__ import annotations

import math
import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import UTC, date, datetime
from typing import Any

from rapidfuzz.distance import JaroWinkler, Levenshtein

from udp_spark.matching.fellegi_sunter import MISSING, FSModel

# The scoring module's constants, repeated (importing it would import Spark):
# tests/test_resolve_parity.py checks they are equal.
TF_FLOOR = 1e-6
IDENTIFIER_PREFIX = "idc_"
MIN_ID_NEAR_LENGTH = 5
BUILTIN = ("given_name", "middle_name", "family_name", "date_of_birth", "email", "phone",
           "address", "loyalty_id", "gender", "email_name")

Record = Mapping[str, Any]
_DIGITS = re.compile("[^0-9]")
_LETTERS = re.compile("[^a-z]")


def _jw(a: str | None, b: str | None) -> float | None:
    return None if a is None or b is None else JaroWinkler.normalized_similarity(a, b)


def _ge(x: float | None, threshold: float) -> bool:
    return x is not None and x >= threshold


def _eq(a: Any, b: Any) -> bool:
    return a is not None and b is not None and a == b


def _first(a: str | None, n: int = 1) -> str | None:
    return None if a is None else a[:n]


def transposed(a: str, b: str) -> bool:
    """``b`` is ``a`` with two adjacent characters swapped."""
    n = len(a)
    return n == len(b) and n >= 2 and a != b and any(
        a[:k] + a[k + 1] + a[k] + a[k + 2:] == b for k in range(n - 1))


def one_edit(a: str | None, b: str | None) -> bool:
    """Twin of ``comparisons.one_edit`` (Damerau-Levenshtein distance at most 1)."""
    if a is None or b is None:
        return False
    return Levenshtein.distance(a, b) <= 1 or transposed(a, b)


def _near_name(family: str | None, given: str | None, aliases: Any) -> bool:
    """Twin of ``comparisons._near_name``."""
    if family is None or given is None or len(family) < 2 or len(given) < 2:
        return False
    return (_ge(_jw(family, given), 0.88) or family.split(" ")[0] == given.split(" ")[0]
            or family in set(aliases if aliases is not None else ()))


def _swapped(l: Record, r: Record) -> bool:  # noqa: E741
    """Twin of ``comparisons._swapped``."""
    g_l, f_l = l.get("given_name_norm"), l.get("family_name_norm")
    g_r, f_r = r.get("given_name_norm"), r.get("family_name_norm")
    cross_l, cross_r = _eq(g_l, f_r), _eq(f_l, g_r)
    # the exact half of a near swap is a name, not an initial
    near_l, near_r = cross_l and len(str(g_l)) > 1, cross_r and len(str(f_l)) > 1
    return ((cross_l and cross_r)
            or (near_l and _near_name(f_l, g_r, r.get("given_name_aliases")))
            or (near_r and _near_name(f_r, g_l, l.get("given_name_aliases"))))


def given_name(l: Record, r: Record) -> int:  # noqa: E741
    g_l, g_r = l.get("given_name_norm"), r.get("given_name_norm")
    if g_l is None or g_r is None:
        return MISSING
    if g_l == g_r or _swapped(l, r):
        return 5
    if (set(l.get("given_name_aliases") or ()) & set(r.get("given_name_aliases") or ())
            and not (" " in g_l and " " in g_r)):
        return 4
    jw = _jw(g_l, g_r)
    if _ge(jw, 0.92):
        return 3
    if _ge(jw, 0.80) or ((len(g_l) == 1 or len(g_r) == 1) and g_l[:1] == g_r[:1]):
        return 2
    return 1 if g_l[:1] == g_r[:1] else 0


def family_name(l: Record, r: Record) -> int:  # noqa: E741
    f_l, f_r = l.get("family_name_norm"), r.get("family_name_norm")
    if f_l is None or f_r is None:
        return MISSING
    names = len(f_l) > 1 and len(f_r) > 1
    initial = not names and f_l[:1] == f_r[:1]
    if (names and f_l == f_r) or _swapped(l, r):
        return 3
    jw = _jw(f_l, f_r)
    if names and _ge(jw, 0.92):
        return 2
    if (_ge(jw, 0.80) or _eq(l.get("family_name_phonetic"), r.get("family_name_phonetic"))
            or initial):
        return 1
    return 0


def middle_name(l: Record, r: Record) -> int:  # noqa: E741
    m_l, m_r = l.get("middle_name_norm"), r.get("middle_name_norm")
    if m_l is None or m_r is None:
        return MISSING
    first_l, first_r = m_l.split(" ", 1)[0], m_r.split(" ", 1)[0]
    full = len(first_l) > 1 and len(first_r) > 1
    if full and (first_l == first_r or (len(first_l) > 3 and one_edit(first_l, first_r))):
        return 2
    return 1 if not full and m_l[:1] == m_r[:1] else 0


def _yyyymmdd(d: date) -> str:
    return f"{d.year:04d}{d.month:02d}{d.day:02d}"


def date_of_birth(l: Record, r: Record) -> int:  # noqa: E741
    y_l, y_r = l.get("birth_year"), r.get("birth_year")
    if y_l is None or y_r is None:
        return MISSING
    d_l, d_r = l.get("date_of_birth"), r.get("date_of_birth")
    if d_l is not None and d_r is not None:
        if d_l == d_r:
            return 5
        if d_l.year == d_r.year and d_l.month == d_r.day and d_l.day == d_r.month:
            return 4
        if Levenshtein.distance(_yyyymmdd(d_l), _yyyymmdd(d_r)) <= 1:
            return 3
    if y_l == y_r:
        return 2
    return 1 if abs(y_l - y_r) == 1 else 0


def _made_of_names(local: str, l: Record, r: Record) -> bool:  # noqa: E741
    letters = _LETTERS.sub("", local)
    for key in ("family_name_norm", "given_name_norm"):  # family names first
        for side in (l, r):
            letters = letters.replace((side.get(key) or "").replace(" ", ""), "")
    return len(letters) <= 1


def email(l: Record, r: Record) -> int:  # noqa: E741
    e_l, e_r = l.get("email_canonical"), r.get("email_canonical")
    if e_l is None or e_r is None:
        return MISSING
    local_l, local_r = e_l.split("@", 1)[0], e_r.split("@", 1)[0]
    other_provider = Levenshtein.distance(e_l.rsplit("@", 1)[-1], e_r.rsplit("@", 1)[-1]) > 2
    if local_l == local_r and other_provider and _made_of_names(local_l, l, r):
        return MISSING
    if e_l == e_r:
        return 3
    if local_l == local_r:
        return 2
    if (Levenshtein.distance(e_l, e_r) <= 2
            and _DIGITS.sub("", local_l) == _DIGITS.sub("", local_r)):
        return 1
    return 0


def _nameless_with_email(side: Record) -> bool:
    return (side.get("given_name_norm") is None and side.get("family_name_norm") is None
            and side.get("email_canonical") is not None)


def _named(side: Record) -> bool:
    return side.get("given_name_norm") is not None and side.get("family_name_norm") is not None


def _email_and_named(l: Record, r: Record) -> tuple[Record, Record] | None:  # noqa: E741
    """(the nameless record with an e-mail, the named one) of an ``email_name`` pair."""
    if _nameless_with_email(l) and _named(r):
        return l, r
    if _nameless_with_email(r) and _named(l):
        return r, l
    return None


def email_name(l: Record, r: Record) -> int:  # noqa: E741
    """Twin of ``comparisons.email_name``."""
    sides = _email_and_named(l, r)
    if sides is None:
        return MISSING
    mail, named = sides
    local = _LETTERS.sub("", str(mail["email_canonical"]).split("@", 1)[0])
    given = _LETTERS.sub("", str(named["given_name_norm"]))
    family = _LETTERS.sub("", str(named["family_name_norm"]))
    return 1 if local in (given + family, family + given) else 0


def email_name_value(l: Record, r: Record) -> str | None:  # noqa: E741
    """The full name (``given|family``) whose frequency weighs ``email_name``."""
    sides = _email_and_named(l, r)
    return None if sides is None else (
        f"{sides[1]['given_name_norm']}|{sides[1]['family_name_norm']}")


def _phones(side: Record) -> list[str]:
    return [p for p in (side.get("phone_e164"), side.get("mobile_e164")) if p is not None]


def phone(l: Record, r: Record) -> int:  # noqa: E741
    p_l, p_r = _phones(l), _phones(r)
    if not p_l or not p_r:
        return MISSING
    if set(p_l) & set(p_r):
        return 2
    return 1 if {p[-7:] for p in p_l} & {p[-7:] for p in p_r} else 0


def record_time(record: Record) -> date | None:
    """Twin of ``comparisons.record_time``, as a UTC date (what Spark's ``datediff`` compares
    in a UTC session): ``record_time``, else ``updated_at``, else ``created_at``."""
    for key in ("record_time", "updated_at", "created_at"):
        value = record.get(key)
        if value is not None:
            break
    else:
        return None
    if isinstance(value, datetime):
        return (value.astimezone(UTC) if value.tzinfo else value).date()
    return value if isinstance(value, date) else None


def observed_apart(l: Record, r: Record, years: int) -> bool:  # noqa: E741
    t_l, t_r = record_time(l), record_time(r)
    return t_l is not None and t_r is not None and abs((t_l - t_r).days) >= 365 * years


def address(l: Record, r: Record, moved_years: int | None = None) -> int:  # noqa: E741
    s_l, s_r = l.get("street_norm"), r.get("street_norm")
    p_l, p_r = l.get("postcode"), r.get("postcode")
    c_l, c_r = l.get("city_norm"), r.get("city_norm")
    if ((s_l is None or s_r is None) and (p_l is None or p_r is None)
            and (c_l is None or c_r is None)):
        return MISSING
    # With moved_years the agreement levels sit one higher, above "moved" (1).
    up = 0 if moved_years is None else 1
    same_pc, same_city = _eq(p_l, p_r), _eq(c_l, c_r)
    near_pc = same_pc or one_edit(p_l, p_r)
    place = near_pc or ((p_l is None or p_r is None) and same_city)
    if _eq(s_l, s_r) and (place or same_city):
        return 5 + up
    if _ge(_jw(s_l, s_r), 0.88) and place:
        return 4 + up
    if same_pc and (s_l is None or s_r is None):
        return 3 + up
    if same_pc:
        return 2 + up
    if same_city or _eq(_first(p_l, 3), _first(p_r, 3)):
        return 1 + up
    return 1 if moved_years is not None and observed_apart(l, r, moved_years) else 0


def _identifier_level(a: str | None, b: str | None) -> int:
    if a is None or b is None:
        return MISSING
    if a == b:
        return 2
    long_enough = len(a) >= MIN_ID_NEAR_LENGTH and len(b) >= MIN_ID_NEAR_LENGTH
    return 1 if long_enough and one_edit(a, b) else 0


def loyalty_id(l: Record, r: Record) -> int:  # noqa: E741
    return _identifier_level(l.get("loyalty_id"), r.get("loyalty_id"))


def gender(l: Record, r: Record) -> int:  # noqa: E741
    g_l, g_r = l.get("gender"), r.get("gender")
    if g_l is None or g_r is None:
        return MISSING
    return 1 if g_l == g_r else 0


LevelFn = Callable[[Record, Record], int]
_LEVELS: dict[str, LevelFn] = {
    "given_name": given_name, "middle_name": middle_name, "family_name": family_name,
    "date_of_birth": date_of_birth, "email": email, "phone": phone, "address": address,
    "loyalty_id": loyalty_id, "gender": gender, "email_name": email_name,
}
#: the block method of records an ``email_name`` comparison can weigh
#: (``blocking.email_name_keys``; ``serve.resolve.BlockKeys``)
EMAIL_NAME_KEY = "email_name"
#: the term-frequency value of comparisons whose value is not the left record's column
_TF_VALUES: dict[str, Callable[[Record, Record], Any]] = {"email_name": email_name_value}


def level_function(name: str, settings: Mapping[str, int] | None = None) -> LevelFn:
    """The level function of a comparison: a built-in one (built with the model's
    ``settings`` for it, as ``comparisons.comparisons_named``), else an identifier
    comparison on ``idc_<name>``."""
    if name == "address" and settings and settings.get("moved_years") is not None:
        years = int(settings["moved_years"])
        return lambda l, r: address(l, r, years)  # noqa: E741
    if name in _LEVELS:
        return _LEVELS[name]
    col = f"{IDENTIFIER_PREFIX}{name}"
    return lambda l, r: _identifier_level(l.get(col), r.get(col))  # noqa: E741


def _log2(x: float) -> float:
    return math.log(x) / math.log(2.0)  # as Spark's log2


@dataclass(frozen=True)
class ComparisonScore:
    comparison: str
    level: int
    label: str
    weight: float


@dataclass(frozen=True)
class PairScore:
    comparisons: tuple[ComparisonScore, ...]
    match_weight: float
    match_probability: float


class PairScorer:
    """A Fellegi-Sunter model with its frozen term-frequency tables, scoring one pair at a
    time as ``score_pairs(records, pair, model, tf=frozen)`` does in Spark.

    Args:
        model: the registered model.
        tf: comparison (or joint name such as ``full_name``) -> value -> frequency, the
            model version's rows of ``silver.match_term_frequencies``.
    """

    def __init__(self, model: FSModel, tf: Mapping[str, Mapping[str, float]]) -> None:
        self.model = model
        self.tf = tf
        self.functions = [(c, level_function(c, model.comparison_settings.get(c)))
                          for c in model.comparisons]
        self.base = {c: {lv: 0.0 if lv == MISSING else model.weight(c, lv)
                         for lv in model.levels[c]} for c in model.comparisons}
        # Comparisons whose top level is weighed by the value's frequency, with the floor a
        # value no one else holds gets (the rarer of the rarest value held and the level's u).
        self.rarest: dict[str, float] = {}
        for c in [*model.tf_columns, *model.shared_tf]:
            table = model.shared_tf.get(c, c)
            if table in tf and c not in model.not_estimated:
                u_top = model.u[c][model.top_levels[c]]
                positive = [v for v in tf[table].values() if v > 0]
                self.rarest[c] = min(min(positive), u_top) if positive else u_top

    def levels(self, left: Record, right: Record) -> dict[str, int]:
        return {c: fn(left, right) for c, fn in self.functions}

    def score(self, left: Record, right: Record) -> PairScore:
        """Levels, per-comparison weights, match weight and probability of one pair; the
        term frequency is looked up with ``left``'s value (as the Spark side does)."""
        m = self.model
        levels = self.levels(left, right)
        weights: dict[str, float] = {}
        freqs: dict[str, float] = {}
        values: dict[str, Any] = {}
        for c in m.comparisons:
            level = levels[c]
            w = self.base[c].get(level)
            if c in self.rarest:
                value = (left.get(m.tf_columns[c]) if c in m.tf_columns
                         else _TF_VALUES[c](left, right))
                values[c] = value
                held = (self.tf[m.shared_tf.get(c, c)].get(str(value)) if value is not None
                        else None)
                freq = max(held or 0.0, self.rarest[c], TF_FLOOR)
                freqs[c] = freq
                if level == m.top_levels[c]:
                    w = _log2(max(m.m[c][level], 1e-12) / freq)
            weights[c] = 0.0 if w is None else w
        for name, (a, b) in m.joint_tf.items():
            if name not in self.tf or a not in freqs or b not in freqs:
                continue
            key = "|".join(str(v) for v in (values[a], values[b]) if v is not None)
            joint = self.tf[name].get(key)
            if (joint is not None and levels[a] == m.top_levels[a]
                    and levels[b] == m.top_levels[b]):
                weights[b] += min(0.0, _log2(freqs[a] * freqs[b] / max(joint, TF_FLOOR)))
        total = m.prior_weight
        for c in m.comparisons:  # in Spark's order: the same rounding
            total += weights[c]
        return PairScore(
            tuple(ComparisonScore(c, levels[c], m.labels[c].get(levels[c], str(levels[c])),
                                  weights[c]) for c in m.comparisons),
            total, probability(total))


def probability(weight: float) -> float:
    """``1 / (1 + 2^-weight)``; 0 where ``2^-weight`` overflows (Spark's Infinity)."""
    return 0.0 if weight < -1000 else 1.0 / (1.0 + 2.0 ** (-weight))
