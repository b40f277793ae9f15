"""Reference pools for the synthetic generator: names, places, streets, phone plans, e-mail domains.

The bulky lists (names, cities, streets, nicknames) live in ``udp_spark/data/gen_*.csv`` so
they can be reviewed and extended without touching code; this module loads them once and
adds the small per-country tables (phone numbering plans, e-mail domains, salutations).
"""

from __future__ import annotations

import csv
import functools
import io
from collections.abc import Sequence
from dataclasses import dataclass
from importlib import resources

import numpy as np
import phonenumbers

COUNTRIES: tuple[str, ...] = ("US", "GB", "DE", "FR", "ES")
COUNTRY_SHARE: tuple[float, ...] = (0.45, 0.20, 0.15, 0.12, 0.08)
LANGUAGE = {"US": "EN", "GB": "EN", "DE": "DE", "FR": "FR", "ES": "ES"}
CURRENCY = {"US": "USD", "GB": "GBP", "DE": "EUR", "FR": "EUR", "ES": "EUR"}
CALLING_CODE = {"US": "1", "GB": "44", "DE": "49", "FR": "33", "ES": "34"}
TRUNK = {"US": "", "GB": "0", "DE": "0", "FR": "0", "ES": ""}

# How a country is written in free-text country fields, with relative weights.
COUNTRY_SPELLINGS: dict[str, list[tuple[str, float]]] = {
    "US": [
        ("US", 30),
        ("USA", 25),
        ("United States", 25),
        ("United States of America", 6),
        ("U.S.A.", 3),
        ("us", 3),
        ("America", 2),
        ("U.S.", 3),
        ("usa", 3),
    ],
    "GB": [
        ("UK", 30),
        ("GB", 15),
        ("United Kingdom", 30),
        ("Great Britain", 5),
        ("England", 10),
        ("U.K.", 4),
        ("uk", 3),
        ("Scotland", 2),
        ("Wales", 1),
    ],
    "DE": [("DE", 30), ("Germany", 35), ("Deutschland", 25), ("GER", 3), ("de", 3), ("DEU", 4)],
    "FR": [("FR", 30), ("France", 60), ("FRA", 5), ("fr", 3), ("République française", 2)],
    "ES": [("ES", 30), ("Spain", 35), ("España", 25), ("Espana", 5), ("ESP", 3), ("es", 2)],
}

US_STATE_NAMES = {
    "NY": "New York",
    "CA": "California",
    "IL": "Illinois",
    "TX": "Texas",
    "AZ": "Arizona",
    "PA": "Pennsylvania",
    "FL": "Florida",
    "OH": "Ohio",
    "WA": "Washington",
    "CO": "Colorado",
    "MA": "Massachusetts",
    "MI": "Michigan",
    "TN": "Tennessee",
    "OR": "Oregon",
    "NV": "Nevada",
    "GA": "Georgia",
    "MN": "Minnesota",
    "NC": "North Carolina",
    "MO": "Missouri",
    "ME": "Maine",
    "NJ": "New Jersey",
    "CT": "Connecticut",
    "RI": "Rhode Island",
}
DE_STATE_CODES = {
    "Berlin": "BE",
    "Hamburg": "HH",
    "Bayern": "BY",
    "Nordrhein-Westfalen": "NRW",
    "Hessen": "HE",
    "Baden-Württemberg": "BW",
    "Sachsen": "SN",
    "Bremen": "HB",
    "Niedersachsen": "NI",
    "Brandenburg": "BB",
}

EMAIL_DOMAINS: dict[str, list[tuple[str, float]]] = {
    "US": [
        ("gmail.com", 35),
        ("yahoo.com", 15),
        ("hotmail.com", 8),
        ("outlook.com", 8),
        ("aol.com", 5),
        ("icloud.com", 8),
        ("comcast.net", 3),
        ("att.net", 2),
        ("msn.com", 2),
        ("verizon.net", 1),
        ("live.com", 2),
        ("me.com", 1),
        ("protonmail.com", 1),
    ],
    "GB": [
        ("gmail.com", 30),
        ("hotmail.co.uk", 15),
        ("yahoo.co.uk", 8),
        ("outlook.com", 8),
        ("btinternet.com", 7),
        ("icloud.com", 6),
        ("live.co.uk", 5),
        ("sky.com", 4),
        ("aol.co.uk", 2),
        ("virginmedia.com", 3),
        ("talktalk.net", 2),
        ("googlemail.com", 3),
    ],
    "DE": [
        ("gmx.de", 22),
        ("web.de", 22),
        ("gmail.com", 20),
        ("t-online.de", 12),
        ("yahoo.de", 5),
        ("outlook.de", 4),
        ("hotmail.de", 4),
        ("freenet.de", 3),
        ("icloud.com", 3),
        ("posteo.de", 2),
        ("gmx.net", 3),
    ],
    "FR": [
        ("gmail.com", 30),
        ("orange.fr", 15),
        ("hotmail.fr", 12),
        ("yahoo.fr", 8),
        ("free.fr", 8),
        ("laposte.net", 6),
        ("sfr.fr", 5),
        ("outlook.fr", 4),
        ("wanadoo.fr", 4),
        ("live.fr", 3),
        ("icloud.com", 3),
        ("neuf.fr", 2),
    ],
    "ES": [
        ("gmail.com", 40),
        ("hotmail.com", 20),
        ("yahoo.es", 10),
        ("outlook.es", 6),
        ("hotmail.es", 8),
        ("telefonica.net", 4),
        ("icloud.com", 4),
        ("movistar.es", 2),
        ("live.com", 3),
        ("terra.es", 1),
    ],
}
OLD_EMAIL_DOMAINS: dict[str, list[tuple[str, float]]] = {
    "US": [("aol.com", 40), ("hotmail.com", 30), ("yahoo.com", 20), ("earthlink.net", 10)],
    "GB": [
        ("btinternet.com", 30),
        ("ntlworld.com", 20),
        ("hotmail.co.uk", 30),
        ("tiscali.co.uk", 20),
    ],
    "DE": [("t-online.de", 40), ("gmx.de", 30), ("arcor.de", 15), ("freenet.de", 15)],
    "FR": [("wanadoo.fr", 40), ("club-internet.fr", 20), ("hotmail.fr", 25), ("aol.fr", 15)],
    "ES": [("terra.es", 35), ("ya.com", 20), ("hotmail.com", 30), ("wanadoo.es", 15)],
}
WORK_DOMAINS: dict[str, list[str]] = {
    "US": [
        "acmecorp.com",
        "globex.com",
        "initech.com",
        "hooli.com",
        "contoso.com",
        "northwindtraders.com",
        "fabrikam.com",
        "vandelayind.com",
        "umbrellacorp.com",
        "stark-industries.com",
        "cyberdyne.com",
        "soylent.com",
    ],
    "GB": [
        "acme.co.uk",
        "barchester-group.co.uk",
        "thamesworks.co.uk",
        "pennineltd.co.uk",
        "nhs.net",
        "wessex-ltd.co.uk",
        "brightonsys.co.uk",
    ],
    "DE": [
        "musterfirma.de",
        "beispiel-ag.de",
        "technik-gmbh.de",
        "rheinwerk-gmbh.de",
        "nordlicht-ag.de",
        "alpenbau.de",
        "spree-logistik.de",
    ],
    "FR": [
        "exemple-sa.fr",
        "societe-durand.fr",
        "groupe-loire.fr",
        "atelier-paris.fr",
        "provence-conseil.fr",
        "techno-lyon.fr",
    ],
    "ES": [
        "empresa-ejemplo.es",
        "grupo-iberia.es",
        "construcciones-sol.es",
        "consultora-madrid.es",
        "mediterraneo-sa.es",
    ],
}
PLACEHOLDER_EMAILS = (
    "noemail@example.com",
    "none@none.com",
    "no@email.com",
    "test@test.com",
    "na@na.com",
    "unknown@unknown.com",
    "x@x.com",
    "noemail@noemail.com",
)
INVALID_PHONES = ("123", "000000", "0000000000", "9999999999", "1234567890", "n/a", "-", "0")

# Salutations per country and gender (M, F) with weights; "" = left empty.
SALUTATIONS: dict[str, dict[str, list[tuple[str, float]]]] = {
    "US": {
        "M": [("Mr.", 60), ("Mr", 25), ("MR", 5), ("Dr.", 4), ("Mister", 1)],
        "F": [("Mrs.", 30), ("Ms.", 35), ("Ms", 12), ("Mrs", 10), ("Miss", 8), ("Dr.", 4)],
    },
    "GB": {
        "M": [("Mr", 70), ("Mr.", 20), ("Dr", 5), ("MR", 5)],
        "F": [("Mrs", 35), ("Ms", 30), ("Miss", 20), ("Mrs.", 8), ("Dr", 5)],
    },
    "DE": {
        "M": [("Herr", 85), ("Hr.", 10), ("Dr.", 5)],
        "F": [("Frau", 85), ("Fr.", 10), ("Dr.", 5)],
    },
    "FR": {
        "M": [("M.", 60), ("Monsieur", 30), ("Mr", 10)],
        "F": [("Mme", 55), ("Madame", 30), ("Mlle", 10), ("Mme.", 5)],
    },
    "ES": {
        "M": [("Sr.", 65), ("D.", 15), ("Don", 10), ("Sr", 10)],
        "F": [("Sra.", 60), ("Dña.", 15), ("Doña", 10), ("Srta.", 15)],
    },
}

# Share of people with a middle name, per country (FR/ES mostly use compound given names).
MIDDLE_NAME_SHARE = {"US": 0.70, "GB": 0.45, "DE": 0.18, "FR": 0.22, "ES": 0.06}
# Share of households with a landline, per country.
LANDLINE_SHARE = {"US": 0.35, "GB": 0.50, "DE": 0.70, "FR": 0.50, "ES": 0.45}
# Probability that a son shares his father's given name (Jr./Sr. in US/GB).
SAME_NAME_SON = {"US": 0.10, "GB": 0.04, "DE": 0.03, "FR": 0.03, "ES": 0.12}

# Mobile numbering: (national prefix, national significant number length, display area length).
MOBILE_PLANS: dict[str, list[tuple[str, int, int, float]]] = {
    "GB": [("7", 10, 4, 1.0)],
    "DE": [
        ("151", 11, 3, 10),
        ("152", 11, 3, 6),
        ("157", 11, 3, 5),
        ("159", 11, 3, 5),
        ("160", 10, 3, 5),
        ("162", 10, 3, 4),
        ("163", 10, 3, 3),
        ("170", 10, 3, 6),
        ("171", 10, 3, 6),
        ("172", 10, 3, 6),
        ("173", 10, 3, 5),
        ("174", 10, 3, 4),
        ("175", 10, 3, 5),
        ("176", 11, 3, 7),
        ("177", 10, 3, 4),
        ("178", 10, 3, 4),
        ("179", 10, 3, 3),
    ],
    "FR": [("6", 9, 1, 0.8), ("7", 9, 1, 0.2)],
    "ES": [("6", 9, 3, 0.9), ("7", 9, 3, 0.1)],
}
# Landline NSN length by country (area code + subscriber number, no trunk prefix).
LANDLINE_NSN_LEN = {"US": 10, "GB": 10, "DE": 10, "FR": 9, "ES": 9}

# Phone display templates per country with weights. Tokens: {cc} calling code, {a} area /
# prefix, {s} subscriber digits, {G} {G.} {G-} subscriber groups joined by space/dot/dash.
PHONE_FORMATS: dict[str, list[tuple[str, float]]] = {
    "US": [
        ("({a}) {G-}", 25),
        ("{a}-{G-}", 20),
        ("{a}.{G.}", 8),
        ("{a}{s}", 12),
        ("+1 ({a}) {G-}", 6),
        ("+1{a}{s}", 8),
        ("1{a}{s}", 3),
        ("001 {a} {G}", 1),
        ("+1-{a}-{G-}", 4),
        ("{a} {G}", 6),
        ("1-{a}-{G-}", 3),
        ("+1 {a} {G}", 4),
    ],
    "GB": [
        ("0{a} {G}", 40),
        ("0{a}{s}", 15),
        ("+44 {a} {G}", 15),
        ("+44{a}{s}", 10),
        ("+44 (0){a} {G}", 5),
        ("0044 {a} {G}", 3),
        ("(0{a}) {G}", 7),
        ("0{a}-{s}", 5),
    ],
    "DE": [
        ("0{a} {s}", 25),
        ("0{a}/{s}", 15),
        ("0{a}-{s}", 10),
        ("0{a}{s}", 12),
        ("+49 {a} {s}", 15),
        ("+49{a}{s}", 10),
        ("0049 {a} {s}", 4),
        ("+49 (0){a} {s}", 4),
        ("(0{a}) {s}", 5),
    ],
    "FR": [
        ("0{a} {G}", 35),
        ("0{a}{s}", 20),
        ("0{a}.{G.}", 10),
        ("+33 {a} {G}", 15),
        ("+33{a}{s}", 10),
        ("0033 {a} {G}", 3),
        ("+33 (0){a} {G}", 3),
        ("0{a}-{G-}", 4),
    ],
    "ES": [
        ("{a} {G}", 35),
        ("{a}{s}", 25),
        ("+34 {a} {G}", 15),
        ("+34{a}{s}", 12),
        ("0034 {a}{s}", 3),
        ("+34 {a}{s}", 5),
        ("{a}-{G-}", 5),
    ],
}


def subscriber_groups(country: str, sub_len: int) -> tuple[int, ...]:
    """How the subscriber part of a number is grouped for display in ``country``."""
    if country == "US":
        return (3, 4)
    if country == "FR":
        return (2,) * (sub_len // 2)
    if country == "GB":
        return {8: (4, 4), 7: (3, 4), 6: (6,)}.get(sub_len, (sub_len,))
    if country == "ES":
        return {6: (3, 3), 7: (3, 2, 2)}.get(sub_len, (sub_len,))
    return (sub_len,)


def zipf_weights(n: int, exponent: float = 1.0, offset: float = 2.7) -> np.ndarray:
    """Zipf-Mandelbrot probabilities for ``n`` ranked items (rank 1 most frequent)."""
    w = 1.0 / np.power(np.arange(1, n + 1) + offset, exponent)
    return w / w.sum()


@dataclass(frozen=True)
class Places:
    """City table with one row per city (all columns aligned numpy arrays)."""

    country: np.ndarray
    city: np.ndarray
    state: np.ndarray
    weight: np.ndarray
    postcodes: tuple[tuple[str, ...], ...]
    area_codes: tuple[tuple[str, ...], ...]
    variants: tuple[tuple[str, ...], ...]


@dataclass(frozen=True)
class Pools:
    """All reference pools, loaded once per process."""

    given: dict[tuple[str, str], tuple[np.ndarray, np.ndarray]]
    family: dict[str, tuple[np.ndarray, np.ndarray]]
    family_parts: dict[str, tuple[np.ndarray, np.ndarray]]
    places: Places
    streets: dict[str, np.ndarray]
    nicknames: dict[tuple[str, str], tuple[str, ...]]


def _read_csv(name: str) -> list[dict[str, str]]:
    text = resources.files("udp_spark").joinpath("data", name).read_text(encoding="utf-8")
    return list(csv.DictReader(io.StringIO(text)))


@functools.cache
def load_pools() -> Pools:
    """Load the name, place and street pools shipped in ``udp_spark/data``."""
    given: dict[tuple[str, str], list[str]] = {}
    for row in _read_csv("gen_given_names.csv"):
        given.setdefault((row["country"], row["gender"]), []).append(row["name"])
    family: dict[str, list[str]] = {}
    for row in _read_csv("gen_family_names.csv"):
        family.setdefault(row["country"], []).append(row["name"])
    parts: dict[str, tuple[list[str], list[str]]] = {}
    for row in _read_csv("gen_family_name_parts.csv"):
        pre, suf = parts.setdefault(row["country"], ([], []))
        (pre if row["part"] == "prefix" else suf).append(row["text"])
    place_rows = _read_csv("gen_places.csv")
    places = Places(
        country=np.array([r["country"] for r in place_rows], dtype=object),
        city=np.array([r["city"] for r in place_rows], dtype=object),
        state=np.array([r["state"] for r in place_rows], dtype=object),
        weight=np.array([float(r["weight"]) for r in place_rows]),
        postcodes=tuple(tuple(r["postcodes"].split("|")) for r in place_rows),
        area_codes=tuple(tuple(r["area_codes"].split("|")) for r in place_rows),
        variants=tuple(tuple(v for v in r["variants"].split("|") if v) for r in place_rows),
    )
    streets: dict[str, list[str]] = {}
    for row in _read_csv("gen_streets.csv"):
        streets.setdefault(row["country"], []).append(row["street"])
    nick: dict[tuple[str, str], tuple[str, ...]] = {}
    for row in _read_csv("gen_nicknames.csv"):
        nick[(row["language"], row["name"])] = tuple(row["nicknames"].split("|"))
    return Pools(
        given={
            k: (np.array(v, dtype=object), zipf_weights(len(v), 0.95, 3.0))
            for k, v in given.items()
        },
        family={
            k: (np.array(v, dtype=object), zipf_weights(len(v), 0.8, 4.0))
            for k, v in family.items()
        },
        family_parts={
            k: (np.array(p, dtype=object), np.array(s, dtype=object)) for k, (p, s) in parts.items()
        },
        places=places,
        streets={k: np.array(v, dtype=object) for k, v in streets.items()},
        nicknames=nick,
    )


def weighted(options: Sequence[tuple[str, float]]) -> tuple[np.ndarray, np.ndarray]:
    """Split ``[(value, weight), ...]`` into a value array and a probability array."""
    values = np.array([o[0] for o in options], dtype=object)
    w = np.array([o[1] for o in options], dtype=float)
    return values, w / w.sum()


@functools.cache
def valid_leads(country: str, prefix: str, nsn_len: int) -> tuple[str, ...]:
    """Two-digit continuations of ``prefix`` for which ``phonenumbers`` accepts numbers.

    libphonenumber validates by number ranges, so a lead is kept only when several random
    completions of ``prefix + lead`` are all valid numbers for ``country``. Deterministic.
    """
    cc = int(CALLING_CODE[country])
    rest = nsn_len - len(prefix) - 2
    rng = np.random.default_rng(7)
    leads = []
    for lead in range(100):
        lead_s = f"{lead:02d}"
        if country == "US" and (lead_s[0] in "01" or lead_s == "55"):
            continue  # US exchanges start 2-9; 555 holds fictional ranges
        ok = True
        for _ in range(3):
            tail = "".join(str(d) for d in rng.integers(0, 10, rest))
            num = phonenumbers.PhoneNumber(
                country_code=cc, national_number=int(prefix + lead_s + tail)
            )
            if not phonenumbers.is_valid_number(num):
                ok = False
                break
        if ok:
            leads.append(lead_s)
    return tuple(leads)
