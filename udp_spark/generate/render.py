"""Turning true values into the text a source system would hold: phones, addresses, dates, ids.

All functions are vectorized over whole columns; per-row variation (which format a record
uses) is drawn up front and applied with one kernel call per format.
"""

from __future__ import annotations

import re
from collections.abc import Sequence

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from udp_spark.generate import strops as so
from udp_spark.generate.pools import (
    CALLING_CODE,
    COUNTRIES,
    COUNTRY_SPELLINGS,
    DE_STATE_CODES,
    PHONE_FORMATS,
    US_STATE_NAMES,
    Pools,
    subscriber_groups,
    weighted,
)

# -- choice helpers -----------------------------------------------------------------------


def choose(rng: np.random.Generator, options: Sequence[tuple[str, float]], n: int) -> np.ndarray:
    """``n`` draws from weighted string options."""
    vals, p = weighted(options)
    return vals[rng.choice(len(vals), size=n, p=p)]


def choose_idx(rng: np.random.Generator, weights: list[float], n: int) -> np.ndarray:
    """``n`` draws of an index into ``weights``."""
    w = np.asarray(weights, dtype=float)
    return rng.choice(len(w), size=n, p=w / w.sum())


def by_country(
    rng: np.random.Generator, country: np.ndarray, table: dict[str, list[tuple[str, float]]]
) -> np.ndarray:
    """One weighted draw per row from the row's country table."""
    out = np.empty(len(country), dtype=object)
    for c in COUNTRIES:
        idx = np.flatnonzero(country == c)
        if len(idx):
            out[idx] = choose(rng, table[c], len(idx))
    return out


# -- ids ----------------------------------------------------------------------------------

_B62 = np.frombuffer(
    b"0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz", dtype=np.uint8
)
_HEX = np.frombuffer(b"0123456789abcdef", dtype=np.uint8)


def _chars(rng: np.random.Generator, n: int, width: int, alphabet: np.ndarray) -> np.ndarray:
    codes = alphabet[rng.integers(0, len(alphabet), (n, width))]
    return np.frombuffer(codes.tobytes(), dtype=f"S{width}").astype(f"U{width}").astype(object)


def unique_codes(
    rng: np.random.Generator, n: int, width: int, alphabet: str = "digits", prefix: str = ""
) -> np.ndarray:
    """``n`` distinct random codes (``digits``, ``hex`` or ``base62``) with a prefix."""
    table = {"digits": _B62[:10], "hex": _HEX, "base62": _B62}[alphabet]
    out = np.empty(0, dtype=object)
    while len(out) < n:
        cand = _chars(rng, int((n - len(out)) * 1.05) + 8, width, table)
        if alphabet == "digits":
            cand = so.where(so.substr(cand, 0, 1) == "0", so.cat("9", so.substr(cand, 1)), cand)
        merged = np.concatenate([out, cand])
        _, first = np.unique(merged.astype(str), return_index=True)
        out = merged[np.sort(first)]
    out = out[:n]
    return so.cat(prefix, out) if prefix else out


def uuids(rng: np.random.Generator, n: int) -> np.ndarray:
    """Random version-4 UUID strings."""
    h = _chars(rng, n, 32, _HEX)
    variant = np.array(list("89ab"), dtype=object)[rng.integers(0, 4, n)]
    return so.cat(
        so.substr(h, 0, 8),
        "-",
        so.substr(h, 8, 12),
        "-4",
        so.substr(h, 13, 16),
        "-",
        variant,
        so.substr(h, 17, 20),
        "-",
        so.substr(h, 20, 32),
    )


# -- dates and times ----------------------------------------------------------------------


def _iso(seconds: np.ndarray) -> pa.Array:
    s = np.datetime_as_string(np.asarray(seconds, dtype=np.int64).astype("datetime64[s]"))
    return pa.array(s)


_TOKEN = re.compile(r"yyyy|MM|dd|HH|mm|ss")
_SLICES = {
    "yyyy": (0, 4),
    "MM": (5, 7),
    "dd": (8, 10),
    "HH": (11, 13),
    "mm": (14, 16),
    "ss": (17, 19),
}


def format_ts(seconds: np.ndarray, fmt: str, missing: np.ndarray | None = None) -> np.ndarray:
    """Epoch seconds -> text in a Java-style pattern (``yyyy-MM-dd HH:mm:ss``, ``dd/MM/yyyy``).

    Literal text may be quoted as in Java (``yyyy-MM-dd'T'HH:mm:ss``). ``missing`` rows -> None.
    """
    iso = _iso(seconds)
    parts: list[pa.Array | str] = []
    pos = 0
    plain = fmt.replace("'", "")
    for m in _TOKEN.finditer(plain):
        if m.start() > pos:
            parts.append(plain[pos : m.start()])
        a, b = _SLICES[m.group()]
        parts.append(pc.utf8_slice_codeunits(iso, a, b))
        pos = m.end()
    if pos < len(plain):
        parts.append(plain[pos:])
    if not any(isinstance(p, pa.Array) for p in parts):
        raise ValueError(f"format {fmt!r} has no date fields")
    out = so.to_np(pc.binary_join_element_wise(*parts, ""))
    if missing is not None:
        out = so.where(missing, None, out)
    return out


def format_day(days: np.ndarray, fmt: str) -> np.ndarray:
    """Days since epoch -> date text in a Java-style pattern."""
    return format_ts(np.asarray(days, dtype=np.int64) * 86_400, fmt)


# -- phones -------------------------------------------------------------------------------


def _template_parts(template: str) -> list[str]:
    return [t for t in re.split(r"(\{[^}]*\})", template) if t]


def format_phones(
    rng: np.random.Generator,
    country: np.ndarray,
    nsn: np.ndarray,
    area_len: np.ndarray,
    e164_share: float = 0.0,
    national_only: bool = False,
) -> np.ndarray:
    """Render national significant numbers in the many ways people and systems write them.

    ``e164_share`` of rows are written as E.164 (``+4915112345678``); ``national_only``
    restricts the rest to formats without a country code.
    """
    n = len(nsn)
    out = np.full(n, None, dtype=object)
    present = ~so.is_missing(nsn)
    e164 = rng.random(n) < e164_share
    nsn_len = so.length(nsn)
    pick = rng.random(n)
    for c in COUNTRIES:
        formats = PHONE_FORMATS[c]
        if national_only:
            formats = [f for f in formats if "+" not in f[0] and not f[0].startswith("00")]
        w = np.cumsum([f[1] for f in formats])
        fmt_idx = np.searchsorted(w / w[-1], pick, side="right")
        cm = present & (country == c)
        for al, nl in sorted(set(zip(area_len[cm].tolist(), nsn_len[cm].tolist(), strict=True))):
            km = cm & (area_len == al) & (nsn_len == nl)
            a = so.substr(nsn[km], 0, al)
            s = so.substr(nsn[km], al)
            groups = subscriber_groups(c, nl - al)
            g_parts = []
            pos = 0
            for g in groups:
                g_parts.append(so.substr(s, pos, pos + g))
                pos += g
            tokens = {"{a}": a, "{s}": s, "{cc}": None}
            for sep, key in ((" ", "{G}"), (".", "{G.}"), ("-", "{G-}")):
                tokens[key] = so.cat(*_interleave(g_parts, sep)) if len(g_parts) > 1 else s
            sub_idx = fmt_idx[km]
            res = np.empty(int(km.sum()), dtype=object)
            for fi, (tmpl, _) in enumerate(formats):
                fm = sub_idx == fi
                if not fm.any():
                    continue
                pieces: list[np.ndarray | str] = []
                for t in _template_parts(tmpl):
                    v = tokens.get(t)
                    pieces.append(v[fm] if isinstance(v, np.ndarray) else t)
                res[fm] = (
                    so.cat(*pieces) if any(isinstance(p, np.ndarray) for p in pieces) else pieces[0]
                )
            out[km] = res
    cc = np.empty(n, dtype=object)
    for c in COUNTRIES:
        cc[country == c] = CALLING_CODE[c]
    e164_val = so.cat("+", cc, so.where(present, nsn, ""))
    return so.where(present & e164, e164_val, out)


def _interleave(parts: list[np.ndarray], sep: str) -> list[np.ndarray | str]:
    out: list[np.ndarray | str] = []
    for i, p in enumerate(parts):
        if i:
            out.append(sep)
        out.append(p)
    return out


# -- addresses ----------------------------------------------------------------------------

# (regex, [(replacement, weight), ...]) applied to the street name; the first entry keeps it.
STREET_ABBREV: dict[str, list[tuple[str, list[tuple[str, float]]]]] = {
    "US": [
        (r"\bStreet$", [("Street", 35), ("St", 30), ("St.", 25), ("ST", 5), ("street", 5)]),
        (r"\bAvenue$", [("Avenue", 35), ("Ave", 35), ("Ave.", 25), ("Av", 5)]),
        (r"\bRoad$", [("Road", 45), ("Rd", 35), ("Rd.", 20)]),
        (r"\bDrive$", [("Drive", 45), ("Dr", 35), ("Dr.", 20)]),
        (r"\bLane$", [("Lane", 55), ("Ln", 35), ("Ln.", 10)]),
        (r"\bBoulevard$", [("Boulevard", 40), ("Blvd", 45), ("Blvd.", 15)]),
        (r"\bCourt$", [("Court", 55), ("Ct", 45)]),
        (r"\bPlace$", [("Place", 55), ("Pl", 45)]),
    ],
    "GB": [
        (r"\bStreet$", [("Street", 60), ("St", 25), ("St.", 10), ("street", 5)]),
        (r"\bRoad$", [("Road", 65), ("Rd", 30), ("Rd.", 5)]),
        (r"\bAvenue$", [("Avenue", 65), ("Ave", 35)]),
        (r"\bLane$", [("Lane", 75), ("Ln", 25)]),
        (r"\bClose$", [("Close", 80), ("Cl", 20)]),
        (r"\bCrescent$", [("Crescent", 75), ("Cres", 25)]),
        (r"\bDrive$", [("Drive", 75), ("Dr", 25)]),
        (r"\bTerrace$", [("Terrace", 70), ("Terr", 30)]),
    ],
    "DE": [
        (r"straße$", [("straße", 55), ("str.", 30), ("strasse", 12), ("str", 3)]),
        (r"Straße$", [("Straße", 55), ("Str.", 30), ("Strasse", 12), ("str.", 3)]),
        (r"platz$", [("platz", 80), ("pl.", 20)]),
    ],
    "FR": [
        (r"^rue\b", [("rue", 60), ("Rue", 35), ("R.", 5)]),
        (r"^avenue\b", [("avenue", 40), ("Avenue", 25), ("av.", 20), ("Av.", 15)]),
        (r"^boulevard\b", [("boulevard", 40), ("Boulevard", 20), ("bd", 25), ("Bd", 15)]),
        (r"^place\b", [("place", 60), ("Place", 30), ("pl.", 10)]),
        (r"^chemin\b", [("chemin", 70), ("Chemin", 20), ("ch.", 10)]),
        (r"^allée\b", [("allée", 70), ("Allée", 30)]),
        (r"^impasse\b", [("impasse", 70), ("Impasse", 20), ("imp.", 10)]),
    ],
    "ES": [
        (r"^Calle\b", [("Calle", 40), ("C/", 35), ("C/.", 5), ("c/", 10), ("Cl.", 5), ("Cll.", 5)]),
        (r"^Avenida\b", [("Avenida", 45), ("Avda.", 35), ("Av.", 15), ("Avd.", 5)]),
        (r"^Plaza\b", [("Plaza", 60), ("Pza.", 20), ("Pl.", 20)]),
        (r"^Paseo\b", [("Paseo", 60), ("Pº", 25), ("P.º", 15)]),
    ],
}


def abbreviate_streets(
    rng: np.random.Generator, country: np.ndarray, street: np.ndarray, strength: float = 1.0
) -> np.ndarray:
    """Street-type variants (``Street``/``St.``, ``Straße``/``Str.``, ``Calle``/``C/``).

    ``strength`` 0 keeps every street as in the population; 1 uses the weights above.
    """
    out = street.copy()
    for c, rules in STREET_ABBREV.items():
        cm = country == c
        for pattern, variants in rules:
            hit = cm & so.contains(out, pattern, regex=True)
            if not hit.any():
                continue
            w = [wt * (1.0 if i == 0 else strength) for i, (_, wt) in enumerate(variants)]
            k = choose_idx(rng, w, len(out))
            for vi, (rep, _) in enumerate(variants):
                m = hit & (k == vi)
                if vi == 0 or not m.any():
                    continue
                out[m] = so.replace(out[m], pattern, rep.replace("\\", "\\\\"), regex=True)
    return out


def street_line(
    rng: np.random.Generator,
    country: np.ndarray,
    street: np.ndarray,
    house: np.ndarray,
    unit: np.ndarray,
    unit_share: float = 0.8,
    strength: float = 1.0,
) -> np.ndarray:
    """One-line street address in the country's order and the record's own style."""
    n = len(street)
    st = abbreviate_streets(rng, country, street, strength)
    style = rng.random(n)
    has_unit = ~so.is_missing(unit) & (rng.random(n) < unit_share)
    out = np.full(n, None, dtype=object)
    # US / GB: "123 Main St, Apt 4B" / "Flat 3, 12 High Street"
    num_first = np.isin(country, ["US", "GB"])
    base = so.cat(house, " ", st)
    us_unit = _us_unit(rng, unit)
    out = so.where(num_first, base, out)
    out = so.where(
        num_first & (country == "US") & has_unit,
        so.cat(base, so.where(style < 0.6, " ", ", "), us_unit),
        out,
    )
    gb_unit_first = (country == "GB") & has_unit & (style < 0.6)
    out = so.where(gb_unit_first, so.cat(unit, ", ", base), out)
    out = so.where((country == "GB") & has_unit & ~gb_unit_first, so.cat(base, ", ", unit), out)
    # DE: "Hauptstraße 12", "Hauptstr. 12 a"
    de = country == "DE"
    de_house = so.where(
        style < 0.15, so.replace(house, r"([0-9])([a-c])$", r"\1 \2", regex=True), house
    )
    out = so.where(de, so.cat(st, " ", de_house), out)
    # FR: "12 rue de la Paix", "12, rue de la Paix", "12bis rue ..."
    fr = country == "FR"
    fr_house = so.where(
        style < 0.3, so.replace(house, r"([0-9])(bis|ter)$", r"\1 \2", regex=True), house
    )
    fr_sep = so.where(style < 0.25, ", ", " ")
    out = so.where(fr, so.cat(fr_house, fr_sep, st), out)
    out = so.where(fr & has_unit, so.cat(out, ", ", unit), out)
    # ES: "Calle Mayor, 12, 3º B", "C/ Mayor 12 3ºB", "Calle Mayor nº 12"
    es = country == "ES"
    es_num = so.where(
        style < 0.5,
        so.cat(", ", house),
        so.where(style < 0.8, so.cat(" ", house), so.cat(", nº ", house)),
    )
    es_unit = so.where(rng.random(n) < 0.5, unit, so.replace(unit, " ", ""))
    out = so.where(es, so.cat(st, es_num), out)
    out = so.where(es & has_unit, so.cat(out, so.where(style < 0.6, ", ", " "), es_unit), out)
    squeeze = es & (rng.random(n) < 0.3)
    return so.where(squeeze, so.replace(out, r"^([Cc])/ ", r"\1/", regex=True), out)


def _us_unit(rng: np.random.Generator, unit: np.ndarray) -> np.ndarray:
    num = so.replace(unit, r"^Apt ", "", regex=True)
    k = rng.integers(0, 5, len(unit))
    forms = [
        so.cat("Apt ", num),
        so.cat("#", num),
        so.cat("Apt. ", num),
        so.cat("Unit ", num),
        so.cat("APT ", num),
    ]
    out = forms[0]
    for i in range(1, 5):
        out = so.where(k == i, forms[i], out)
    return out


def city_text(
    rng: np.random.Generator, pools: Pools, city_idx: np.ndarray, variant_share: float
) -> np.ndarray:
    """City name, with ``variant_share`` of rows using a local/alternative spelling."""
    out = pools.places.city[city_idx].copy()
    use = rng.random(len(city_idx)) < variant_share
    pick = rng.random(len(city_idx))
    for ci in np.unique(city_idx[use]):
        variants = pools.places.variants[ci]
        if not variants:
            continue
        m = use & (city_idx == ci)
        out[m] = np.array(variants, dtype=object)[(pick[m] * len(variants)).astype(int)]
    return out


def state_text(rng: np.random.Generator, country: np.ndarray, state: np.ndarray) -> np.ndarray:
    """State / county / region as a CRM holds it: codes, names or nothing, by country."""
    n = len(state)
    u = rng.random(n)
    out = np.full(n, None, dtype=object)
    us = country == "US"
    us_full = _map(state, US_STATE_NAMES)
    out = so.where(us & (u < 0.78), state, out)
    out = so.where(us & (u >= 0.78) & (u < 0.93), us_full, out)
    out = so.where(us & (u >= 0.93) & (u < 0.96), so.lower(so.where(us, state, "")), out)
    out = so.where((country == "GB") & (u < 0.5), state, out)
    de = country == "DE"
    de_code = _map(state, DE_STATE_CODES)
    out = so.where(de & (u < 0.45), state, out)
    out = so.where(de & (u >= 0.45) & (u < 0.55), de_code, out)
    out = so.where((country == "FR") & (u < 0.3), state, out)
    out = so.where((country == "ES") & (u < 0.6), state, out)
    return out


def _map(values: np.ndarray, mapping: dict[str, str]) -> np.ndarray:
    return so.map_unique(values, lambda v: mapping.get(v, v))


def country_text(rng: np.random.Generator, country: np.ndarray, iso_share: float) -> np.ndarray:
    """Country as free text: ISO code for ``iso_share`` of rows, else a spelling from the
    weighted list (``USA``, ``United Kingdom``, ``Deutschland``...)."""
    spelled = by_country(rng, country, COUNTRY_SPELLINGS)
    return so.where(rng.random(len(country)) < iso_share, country, spelled)


def postcode_text(
    rng: np.random.Generator,
    country: np.ndarray,
    postcode: np.ndarray,
    plus4_share: float = 0.0,
    gb_compact_share: float = 0.0,
    de_prefix_share: float = 0.0,
) -> np.ndarray:
    """Postcode formatting variants (ZIP+4, ``sw1a1aa``, ``D-10115``)."""
    n = len(postcode)
    u = rng.random(n)
    out = postcode.copy()
    plus4 = so.cat(postcode, "-", so.zfill(rng.integers(1, 9999, n), 4))
    out = so.where((country == "US") & (u < plus4_share), plus4, out)
    gb = (country == "GB") & (u < gb_compact_share)
    out = so.where(gb & (u < gb_compact_share / 2), so.lower(so.replace(postcode, " ", "")), out)
    out = so.where(gb & (u >= gb_compact_share / 2), so.replace(postcode, " ", ""), out)
    out = so.where((country == "DE") & (u < de_prefix_share), so.cat("D-", postcode), out)
    return out


def drop_leading_zero(x: np.ndarray, mask: np.ndarray) -> np.ndarray:
    """Spreadsheet damage: ``02134`` -> ``2134`` on masked rows."""
    return so.where(mask, so.replace(x, r"^0+", "", regex=True), x)


__all__ = [
    "abbreviate_streets",
    "by_country",
    "choose",
    "choose_idx",
    "city_text",
    "country_text",
    "drop_leading_zero",
    "format_day",
    "format_phones",
    "format_ts",
    "postcode_text",
    "state_text",
    "street_line",
    "unique_codes",
    "uuids",
]
