"""The six source systems: who appears in each, and how each renders what it knows.

Each ``build_*`` function takes the population and returns the columns of its file(s) plus
the truth rows (party key -> person). Which people a source holds, when its records were
created and last touched, and how carefully they were typed differ per source, as in real
systems: the CRM is old and keyed in by staff, the web shop and app are self-service, the
support desk and tills are typed in a hurry, the e-mail tool mostly knows an address.
"""

from __future__ import annotations

import zlib
from dataclasses import dataclass, field

import numpy as np
import pyarrow as pa

from udp_spark.generate import noise as nz
from udp_spark.generate import render as rd
from udp_spark.generate import strops as so
from udp_spark.generate.noise import Noise
from udp_spark.generate.pools import COUNTRIES, CURRENCY, SALUTATIONS, Pools
from udp_spark.generate.population import DAY, REF_TS, People, ts
from udp_spark.generate.writers import (
    Malformed,
    j_bool,
    j_int,
    j_num,
    j_obj,
    j_str,
)


@dataclass
class Ctx:
    """Shared state for building sources: the population, pools, seed and noise level."""

    people: People
    pools: Pools
    seed: int
    noise_level: float

    def rng(self, name: str) -> np.random.Generator:
        """An independent generator per named stream, so sources don't shift each other."""
        return np.random.default_rng([self.seed, zlib.crc32(name.encode())])

    def noise(self, name: str) -> Noise:
        """A :class:`Noise` with its own stream."""
        return Noise(self.noise_level, self.rng("noise:" + name))

    @property
    def n(self) -> int:
        """Population size."""
        return len(self.people["person_id"])


@dataclass
class SourceData:
    """Columns to write for one file plus truth rows for its party records."""

    columns: dict[str, np.ndarray] = field(default_factory=dict)
    lines: pa.Array | None = None
    truth_keys: np.ndarray | None = None
    truth_pids: np.ndarray | None = None
    malformed: Malformed | None = None
    table: pa.Table | None = None


# -- shared helpers -----------------------------------------------------------------------


def age_years(p: People, pid: np.ndarray, t: np.ndarray | int = REF_TS) -> np.ndarray:
    """Age in years at time ``t``."""
    return (np.asarray(t) / DAY - p["dob_day"][pid]) / 365.25


def select(rng: np.random.Generator, prob: np.ndarray) -> np.ndarray:
    """Indexes of people included with per-person probability ``prob``."""
    return np.flatnonzero(rng.random(len(prob)) < prob)


def with_duplicates(
    rng: np.random.Generator, noise: Noise, pid: np.ndarray, base: float
) -> tuple[np.ndarray, np.ndarray]:
    """Append duplicate records (a second account) for a noise-scaled share of people."""
    dup = pid[noise.mask(len(pid), base)]
    extra = dup[rng.random(len(dup)) < 0.12]  # a few people even have three accounts
    all_pid = np.concatenate([pid, dup, extra])
    is_dup = np.concatenate([np.zeros(len(pid), bool), np.ones(len(dup) + len(extra), bool)])
    return all_pid, is_dup


def record_times(
    rng: np.random.Generator,
    p: People,
    pid: np.ndarray,
    start: str,
    skew: float = 0.8,
    touched: float = 0.75,
) -> tuple[np.ndarray, np.ndarray]:
    """Created / last-updated epoch seconds: created in ``[start, ref)`` (skewed recent, never
    before the person turned 16), updated later for a ``touched`` share of records."""
    n = len(pid)
    lo = np.maximum(ts(start), (p["dob_day"][pid] + int(16 * 365.25)) * DAY)
    lo = np.minimum(lo, REF_TS - 40 * DAY)
    created = lo + ((REF_TS - DAY - lo) * rng.random(n) ** skew).astype(np.int64)
    created += rng.integers(0, DAY, n)
    gap = ((REF_TS - created) * rng.random(n) ** 1.5).astype(np.int64)
    updated = np.where(rng.random(n) < touched, created + gap, created)
    return created, np.minimum(updated, REF_TS - 1)


def asof_family(p: People, pid: np.ndarray, t: np.ndarray) -> np.ndarray:
    """Family name a record made at ``t`` holds (maiden name before the marriage)."""
    before = (p["marriage_ts"][pid] > 0) & (t < p["marriage_ts"][pid])
    return so.where(before, p["maiden_name"][pid], p["family_name"][pid])


def asof_address(p: People, pid: np.ndarray, t: np.ndarray) -> dict[str, np.ndarray]:
    """Address columns as of ``t`` (previous address before the move)."""
    before = p["moved"][pid] & (t < p["move_ts"][pid])
    out = {}
    for k in ("street", "house_number", "unit", "city", "state", "postcode"):
        out[k] = so.where(before, p["prev_" + k][pid], p[k][pid])
    out["city_idx"] = np.where(before, p["prev_city_idx"][pid], p["city_idx"][pid])
    out["landline_nsn"] = so.where(before, p["prev_landline_nsn"][pid], p["landline_nsn"][pid])
    out["landline_area_len"] = np.where(
        before, p["prev_landline_area_len"][pid], p["landline_area_len"][pid]
    )
    return out


def asof_email(
    rng: np.random.Generator,
    p: People,
    pid: np.ndarray,
    t: np.ndarray,
    work_share: float,
    family_share: float,
) -> np.ndarray:
    """The address a record made at ``t`` holds: personal (old one before a change), some
    work addresses, and the household's shared mailbox where there is one."""
    n = len(pid)
    before = (p["email_change_ts"][pid] > 0) & (t < p["email_change_ts"][pid])
    e = so.where(before, p["old_email"][pid], p["email"][pid])
    work = p["work_email"][pid]
    fam = p["family_email"][pid]
    e = so.where(so.is_missing(e), work, e)
    e = so.where(so.is_missing(e), fam, e)
    e = so.where(~so.is_missing(work) & (rng.random(n) < work_share), work, e)
    return so.where(~so.is_missing(fam) & (rng.random(n) < family_share), fam, e)


def asof_loyalty(p: People, pid: np.ndarray, t: np.ndarray) -> np.ndarray:
    """Loyalty card number a record made at ``t`` holds (old card before a replacement)."""
    before = (p["card_replaced_ts"][pid] > 0) & (t < p["card_replaced_ts"][pid])
    return so.where(before, p["old_loyalty_id"][pid], p["loyalty_id"][pid])


@dataclass(frozen=True)
class NameStyle:
    """How carefully a source records names. Noise-scaled rates unless marked structural."""

    nickname: float = 0.04
    compound_first: float = 0.05
    swap: float = 0.02
    typo: float = 0.02
    case: float = 0.04
    space: float = 0.02
    missing_first: float = 0.005
    missing_last: float = 0.003
    ascii_share: float = 0.10  # structural: the system strips accents
    es_single_surname: float = 0.30  # structural: only the first Spanish surname
    hyphen_short: float = 0.30  # structural: only the first part of a double-barrelled name
    suffix_share: float = 0.5  # structural: Jr./Sr. appended to the family name


def render_names(
    ctx: Ctx, name: str, pid: np.ndarray, t: np.ndarray, style: NameStyle
) -> tuple[np.ndarray, np.ndarray]:
    """Given and family name as a source holds them, with the source's noise."""
    p = ctx.people
    rng = ctx.rng("names:" + name)
    noise = ctx.noise("names:" + name)
    n = len(pid)
    first = p["given_name"][pid].copy()
    last = asof_family(p, pid, t)
    short = p["family_name_short"][pid]
    use_short = (
        ~so.is_missing(short)
        & (last == p["family_name"][pid])
        & np.where(
            p["country"][pid] == "ES",
            rng.random(n) < style.es_single_surname,
            rng.random(n) < style.hyphen_short,
        )
    )
    last = so.where(use_short, short, last)
    suffix = p["name_suffix"][pid]
    add_sfx = ~so.is_missing(suffix) & (rng.random(n) < style.suffix_share)
    sep = so.where(rng.random(n) < 0.7, " ", ", ")
    last = so.where(add_sfx, so.cat(last, sep, so.where(add_sfx, suffix, "")), last)
    first = nz.nicknames(
        first, p["language"][pid], noise.mask(n, style.nickname), rng, ctx.pools.nicknames
    )
    compound = so.contains(first, "[ -]", regex=True)
    first = so.where(
        compound & noise.mask(n, style.compound_first),
        so.first_token(so.replace(first, "-", " "), " "),
        first,
    )
    ascii_rows = rng.random(n) < style.ascii_share
    de_fold = ascii_rows & (p["country"][pid] == "DE") & (rng.random(n) < 0.5)
    first = so.where(de_fold, so.fold_german(first), so.where(ascii_rows, so.fold(first), first))
    last = so.where(de_fold, so.fold_german(last), so.where(ascii_rows, so.fold(last), last))
    swap = noise.mask(n, style.swap)
    first, last = so.where(swap, last, first), so.where(swap, first, last)
    first = nz.typos(first, noise.mask(n, style.typo), rng)
    last = nz.typos(last, noise.mask(n, style.typo), rng)
    case = noise.mask(n, style.case)
    first = nz.case_noise(first, case, rng)
    last = nz.case_noise(last, case, rng)
    first = nz.space_noise(first, noise.mask(n, style.space), rng)
    last = nz.space_noise(last, noise.mask(n, style.space), rng)
    first = nz.blank(first, noise.mask(n, style.missing_first))
    last = nz.blank(last, noise.mask(n, style.missing_last))
    return first, last


def render_email(
    ctx: Ctx,
    name: str,
    email: np.ndarray,
    present: float,
    typo: float,
    invalid: float,
    placeholder: float,
    case: float = 0.02,
    gmail: float = 0.0,
    plus: float = 0.0,
    plus_tags: tuple[str, ...] = ("shop",),
) -> np.ndarray:
    """E-mail column with structural absence and noise (typos, invalid, placeholders)."""
    rng = ctx.rng("email:" + name)
    noise = ctx.noise("email:" + name)
    n = len(email)
    e = so.where(rng.random(n) < present, email, None)
    e = nz.gmail_variants(e, rng.random(n) < gmail, rng, plus_tags)
    e = nz.plus_tags(e, rng.random(n) < plus, rng, plus_tags)
    e = nz.email_typos(e, noise.mask(n, typo), rng)
    e = nz.invalid_emails(e, noise.mask(n, invalid), rng)
    e = nz.placeholder_emails(e, noise.mask(n, placeholder), rng)
    up = noise.mask(n, case)
    e = so.where(up & (rng.random(n) < 0.5), so.upper(e), e)
    e = so.where(up & ~so.contains(e, "[A-Z]", regex=True), so.title(e), e)
    return nz.space_noise(e, noise.mask(n, 0.005), rng)


def render_phone(
    ctx: Ctx,
    name: str,
    country: np.ndarray,
    nsn: np.ndarray,
    area_len: np.ndarray,
    present: float,
    typo: float = 0.01,
    invalid: float = 0.008,
    e164_share: float = 0.0,
    extension: float = 0.0,
) -> np.ndarray:
    """Phone column: formatted numbers, absent for ``1 - present``, with noise."""
    rng = ctx.rng("phone:" + name)
    noise = ctx.noise("phone:" + name)
    n = len(nsn)
    ph = rd.format_phones(rng, country, nsn, area_len, e164_share=e164_share)
    ph = so.where(rng.random(n) < present, ph, None)
    ph = nz.digit_typos(ph, noise.mask(n, typo), rng)
    ph = nz.phone_extensions(ph, noise.mask(n, extension), rng)
    return nz.invalid_phones(ph, noise.mask(n, invalid), rng)


def render_dob(
    ctx: Ctx,
    name: str,
    dob_day: np.ndarray,
    formats: list[tuple[str, float]],
    present: float,
    unparseable: float,
    wrong: float = 0.015,
) -> np.ndarray:
    """Date-of-birth text: several formats, missing values, wrong and placeholder dates,
    day/month swaps and a few unparseable values."""
    rng = ctx.rng("dob:" + name)
    noise = ctx.noise("dob:" + name)
    n = len(dob_day)
    d = dob_day.copy()
    wrong_m = noise.mask(n, wrong)
    shift = np.array([-365, 365, -3653, 3653, -1, 1, 30, -30])[rng.integers(0, 8, n)]
    d = np.where(wrong_m, d, d) + np.where(wrong_m, shift, 0)
    ph = noise.mask(n, 0.004)
    ph_days = np.array(
        [
            int(np.datetime64(x, "D").astype(np.int64))
            for x in ("1900-01-01", "1970-01-01", "1901-01-01")
        ]
    )
    d = np.where(ph, ph_days[rng.integers(0, 3, n)], d)
    k = rd.choose_idx(rng, [f[1] for f in formats], n)
    out = np.empty(n, dtype=object)
    for i, (fmt, _) in enumerate(formats):
        m = k == i
        if m.any():
            out[m] = rd.format_day(d[m], fmt)
    swap = noise.mask(n, 0.01) & (k == 0) & (formats[0][0] == "MM/dd/yyyy")
    out = so.where(swap, rd.format_day(d, "dd/MM/yyyy"), out)
    junk = np.array(
        [
            "31/02/1980",
            "unknown",
            "00/00/0000",
            "N/A",
            "0000-00-00",
            "13/32/1985",
            "19xx",
            "?",
            "02/30/1975",
            "not given",
        ],
        dtype=object,
    )
    out = so.where(noise.mask(n, unparseable), junk[rng.integers(0, len(junk), n)], out)
    return so.where(rng.random(n) < present, out, None)


def country_arr(p: People, pid: np.ndarray) -> np.ndarray:
    """ISO country per record."""
    return p["country"][pid]


# -- CRM ----------------------------------------------------------------------------------

CRM_COLUMNS = [
    "contact_id",
    "salutation",
    "first_name",
    "middle_name",
    "last_name",
    "email",
    "phone",
    "mobile",
    "street",
    "city",
    "state",
    "postal_code",
    "country",
    "birth_date",
    "gender",
    "loyalty_id",
    "created_at",
    "last_modified",
]


def build_crm(ctx: Ctx) -> SourceData:
    """CRM contacts: staff-entered, oldest source (2012-), US-style dates, duplicates."""
    p = ctx.people
    rng = ctx.rng("crm")
    noise = ctx.noise("crm")
    pid = select(rng, np.full(ctx.n, 0.55))
    pid, is_dup = with_duplicates(rng, noise, pid, 0.04)
    n = len(pid)
    created, updated = record_times(rng, p, pid, "2012-01-01")
    t = updated
    c = country_arr(p, pid)
    first, last = render_names(ctx, "crm", pid, t, NameStyle())
    # middle names: full, initial ("J." / "J") or left out; sometimes typed into first_name
    mid = p["middle_name"][pid]
    mk = rng.random(n)
    middle = so.where(
        mk < 0.45, mid, so.where(mk < 0.8, nz.initial(mid, rng.random(n) < 0.7), None)
    )
    in_first = ~so.is_missing(mid) & ~so.is_missing(first) & noise.mask(n, 0.02)
    first = so.where(in_first, so.cat(first, " ", so.where(in_first, mid, "")), first)
    middle = so.where(in_first, None, middle)
    middle = nz.typos(middle, noise.mask(n, 0.01) & (so.length(middle) > 2), rng)
    # salutation
    g = p["gender"][pid]
    wrong_g = noise.mask(n, 0.01)
    sal_g = so.where(wrong_g, so.where(g == "F", "M", "F"), g)
    sal = np.empty(n, dtype=object)
    for cc in COUNTRIES:
        for sex in ("M", "F"):
            m = (c == cc) & (sal_g == sex)
            if m.any():
                sal[m] = rd.choose(rng, SALUTATIONS[cc][sex], int(m.sum()))
    sal = so.where(rng.random(n) < 0.25, None, sal)
    # contact data
    addr = asof_address(p, pid, t)
    email = asof_email(rng, p, pid, t, work_share=0.08, family_share=0.4)
    dup_alt = so.where(
        ~so.is_missing(p["work_email"][pid]), p["work_email"][pid], p["old_email"][pid]
    )
    email = so.where(is_dup & ~so.is_missing(dup_alt) & (rng.random(n) < 0.6), dup_alt, email)
    email = nz.email_typos(email, is_dup & (rng.random(n) < 0.3), rng)
    email = render_email(
        ctx, "crm", email, present=0.88, typo=0.015, invalid=0.01, placeholder=0.015, case=0.03
    )
    land = addr["landline_nsn"]
    use_land = ~so.is_missing(land)
    phone_nsn = so.where(use_land, land, p["mobile_nsn"][pid])
    phone_al = np.where(use_land, addr["landline_area_len"], p["mobile_area_len"][pid])
    phone = render_phone(ctx, "crm.phone", c, phone_nsn, phone_al, present=0.6, extension=0.01)
    mobile = render_phone(
        ctx, "crm.mobile", c, p["mobile_nsn"][pid], p["mobile_area_len"][pid], present=0.55
    )
    street = rd.street_line(rng, c, addr["street"], addr["house_number"], addr["unit"])
    street = so.where(rng.random(n) < 0.92, street, None)
    street = nz.typos(street, noise.mask(n, 0.02), rng)
    street = nz.case_noise(street, noise.mask(n, 0.04), rng)
    street = nz.space_noise(street, noise.mask(n, 0.03), rng)
    city = rd.city_text(rng, ctx.pools, addr["city_idx"], 0.1)
    city = nz.typos(city, noise.mask(n, 0.015), rng)
    city = nz.case_noise(city, noise.mask(n, 0.03), rng)
    city = so.where(rng.random(n) < 0.95, city, None)
    state = rd.state_text(rng, c, addr["state"])
    postal = rd.postcode_text(
        rng, c, addr["postcode"], plus4_share=0.05, gb_compact_share=0.1, de_prefix_share=0.03
    )
    postal = rd.drop_leading_zero(
        postal, noise.mask(n, 0.25) & np.isin(c, ["US", "DE", "FR", "ES"])
    )
    postal = so.where(rng.random(n) < 0.93, postal, None)
    postal = nz.digit_typos(postal, noise.mask(n, 0.01), rng)
    country = so.where(rng.random(n) < 0.97, rd.country_text(rng, c, iso_share=0.0), None)
    birth = render_dob(
        ctx,
        "crm",
        p["dob_day"][pid],
        [("MM/dd/yyyy", 80), ("yyyy-MM-dd", 20)],
        present=0.7,
        unparseable=0.006,
    )
    gk = rd.choose_idx(rng, [55, 15, 12, 18], n)
    wrong_sex = noise.mask(n, 0.005)
    gg = so.where(wrong_sex, so.where(g == "F", "M", "F"), g)
    gender = so.where(gk == 0, gg, None)
    gender = so.where(gk == 1, so.where(gg == "F", "Female", "Male"), gender)
    gender = so.where(gk == 2, so.where(gg == "F", "female", "male"), gender)
    loyalty = asof_loyalty(p, pid, t)
    loyalty = so.where(rng.random(n) < 0.7, loyalty, None)
    lk = rd.choose_idx(rng, [82, 8, 5, 5], n)
    spaced = so.cat(
        so.substr(loyalty, 0, 4), " ", so.substr(loyalty, 4, 8), " ", so.substr(loyalty, 8)
    )
    loyalty = so.where(
        lk == 1,
        spaced,
        so.where(
            lk == 2, so.cat("LOY-", loyalty), so.where(lk == 3, so.cat(loyalty, " "), loyalty)
        ),
    )
    loyalty = nz.digit_typos(loyalty, noise.mask(n, 0.005), rng)
    key = rd.unique_codes(rng, n, 8, "digits", prefix="C")
    cols = {
        "contact_id": key,
        "salutation": sal,
        "first_name": first,
        "middle_name": middle,
        "last_name": last,
        "email": email,
        "phone": phone,
        "mobile": mobile,
        "street": street,
        "city": city,
        "state": state,
        "postal_code": postal,
        "country": country,
        "birth_date": birth,
        "gender": gender,
        "loyalty_id": loyalty,
        "created_at": rd.format_ts(created, "yyyy-MM-dd HH:mm:ss"),
        "last_modified": rd.format_ts(updated, "yyyy-MM-dd HH:mm:ss"),
    }
    return _shuffled(rng, cols, key, pid, malformed=_malformed(rng, noise, n, 0.002, protect=1))


def _malformed(
    rng: np.random.Generator, noise: Noise, n: int, base: float, protect: int
) -> Malformed:
    rows = np.flatnonzero(noise.mask(n, base))
    return Malformed(
        rows=rows,
        kinds=rng.integers(0, 4, len(rows)),
        positions=rng.random(len(rows)),
        protect=protect,
    )


def _shuffled(
    rng: np.random.Generator,
    cols: dict[str, np.ndarray],
    key: np.ndarray,
    pid: np.ndarray,
    malformed: Malformed | None = None,
) -> SourceData:
    """Shuffle rows so that file order says nothing about people; keep truth aligned."""
    order = rng.permutation(len(key))
    out = {k: v[order] for k, v in cols.items()}
    if malformed is not None:
        inv = np.empty_like(order)
        inv[order] = np.arange(len(order))
        malformed = Malformed(
            rows=np.sort(inv[malformed.rows]),
            kinds=malformed.kinds,
            positions=malformed.positions,
            protect=malformed.protect,
        )
    return SourceData(
        columns=out, truth_keys=key[order], truth_pids=pid[order], malformed=malformed
    )


# -- web shop -----------------------------------------------------------------------------

REFERRERS = (
    "google",
    "facebook",
    "newsletter",
    "instagram",
    "tiktok",
    "affiliate:awin",
    "bing",
    "direct",
    "pinterest",
    "partner:loyalty",
)


def build_webshop(ctx: Ctx) -> tuple[SourceData, SourceData]:
    """Web-shop customers (self-registered, e-mail login) and their orders."""
    p = ctx.people
    rng = ctx.rng("webshop")
    noise = ctx.noise("webshop")
    age = age_years(p, np.arange(ctx.n))
    has_mail = ~so.is_missing(p["email"]) | ~so.is_missing(p["work_email"])
    prob = 0.45 * np.clip(1.35 - (age - 18) / 80, 0.4, 1.35) * has_mail / 0.93
    pid = select(rng, prob)
    pid, is_dup = with_duplicates(rng, noise, pid, 0.04)
    n = len(pid)
    created, updated = record_times(rng, p, pid, "2015-01-01", skew=0.7)
    t = updated
    c = country_arr(p, pid)
    first, last = render_names(
        ctx,
        "webshop",
        pid,
        t,
        NameStyle(
            nickname=0.06,
            swap=0.01,
            typo=0.015,
            case=0.10,
            space=0.03,
            missing_last=0.01,
            ascii_share=0.08,
            es_single_surname=0.45,
        ),
    )
    email = asof_email(rng, p, pid, t, work_share=0.1, family_share=0.3)
    # a second account needs another login: work/old address, a typo or a plus alias
    alt = so.where(~so.is_missing(p["work_email"][pid]), p["work_email"][pid], p["old_email"][pid])
    k = rng.random(n)
    email = so.where(is_dup & ~so.is_missing(alt) & (k < 0.55), alt, email)
    email = nz.email_typos(email, is_dup & (k >= 0.55) & (k < 0.8), rng)
    email = nz.plus_tags(email, is_dup & (k >= 0.8), rng, ("shop", "2", "new"))
    email = render_email(
        ctx,
        "webshop",
        email,
        present=1.0,
        typo=0.01,
        invalid=0.003,
        placeholder=0.002,
        case=0.05,
        gmail=0.08,
        plus=0.03,
        plus_tags=("shop", "webshop", "orders", "deals"),
    )
    email = _dedupe_login(rng, email)
    phone = render_phone(
        ctx,
        "webshop",
        c,
        p["mobile_nsn"][pid],
        p["mobile_area_len"][pid],
        present=0.55,
        e164_share=0.2,
    )
    addr = asof_address(p, pid, t)
    line1 = rd.street_line(
        rng, c, addr["street"], addr["house_number"], addr["unit"], unit_share=0.9
    )
    line1 = nz.typos(line1, noise.mask(n, 0.015), rng)
    line1 = nz.case_noise(line1, noise.mask(n, 0.05), rng)
    line1 = nz.space_noise(line1, noise.mask(n, 0.02), rng)
    city = nz.typos(rd.city_text(rng, ctx.pools, addr["city_idx"], 0.08), noise.mask(n, 0.01), rng)
    city = nz.case_noise(city, noise.mask(n, 0.06), rng)
    postcode = rd.postcode_text(rng, c, addr["postcode"], gb_compact_share=0.15)
    ship_country = rd.country_text(rng, c, iso_share=0.85)
    no_address = rng.random(n) < 0.06
    dob = render_dob(
        ctx, "webshop", p["dob_day"][pid], [("yyyy-MM-dd", 1)], present=0.3, unparseable=0.0
    )
    loyalty = so.where(rng.random(n) < 0.06, asof_loyalty(p, pid, t), None)
    optin = rng.random(n) < 0.45
    key = rd.unique_codes(rng, n, 14, "base62", prefix="cus_")
    extra_m = noise.mask(n, 0.01)
    ref = np.array(REFERRERS, dtype=object)[rng.integers(0, len(REFERRERS), n)]
    extra = pa.array(so.where(extra_m, so.cat(',"referrer":', so.to_np(j_str(ref))), ""))
    ship = j_obj(
        [
            ("line1", j_str(line1)),
            ("city", j_str(city)),
            ("postcode", j_str(postcode)),
            ("country", j_str(ship_country)),
        ],
        null=no_address,
    )
    lines = j_obj(
        [
            ("customer_id", j_str(key)),
            ("email", j_str(email)),
            ("name", j_obj([("first", j_str(first)), ("last", j_str(last))])),
            ("phone", j_str(phone)),
            ("shipping_address", ship),
            ("date_of_birth", j_str(dob)),
            ("loyalty_id", j_str(loyalty)),
            ("created_at", j_str(rd.format_ts(created, "yyyy-MM-dd'T'HH:mm:ss'Z'"))),
            ("updated_at", j_str(rd.format_ts(updated, "yyyy-MM-dd'T'HH:mm:ss'Z'"))),
            ("marketing_opt_in", j_bool(optin)),
        ],
        extra=extra,
    )
    order = rng.permutation(n)
    customers = SourceData(
        lines=lines.take(pa.array(order)), truth_keys=key[order], truth_pids=pid[order]
    )
    orders = _orders(ctx, key, pid, created, c)
    return customers, orders


def _dedupe_login(rng: np.random.Generator, email: np.ndarray) -> np.ndarray:
    """A shop login is unique: a repeated address gets a digit (as the sign-up form forces)."""
    import pandas as pd

    out = email.copy()
    for _ in range(10):
        low = so.lower(so.where(so.is_missing(out), "", out))
        dup = pd.Series(low, dtype=object).duplicated().to_numpy() & ~so.is_missing(out)
        if not dup.any():
            break
        d = so.int_str(rng.integers(1, 99, int(dup.sum())))
        out[dup] = so.replace(
            so.cat(out[dup], "|", d), r"^([^@|]*)@([^|]*)\|(.*)$", r"\1\3@\2", regex=True
        )
    return out


def _orders(
    ctx: Ctx, cust_key: np.ndarray, pid: np.ndarray, created: np.ndarray, country: np.ndarray
) -> SourceData:
    """0..many orders per customer (skewed, some heavy buyers) plus orphan orders."""
    rng = ctx.rng("orders")
    noise = ctx.noise("orders")
    n = len(cust_key)
    heavy = rng.random(n) < 0.02
    mean = np.where(heavy, 40.0, 2.2)
    count = np.where(rng.random(n) < 0.3, 0, 1 + rng.negative_binomial(1.0, 1.0 / mean))
    idx = np.repeat(np.arange(n), count)
    m = len(idx)
    span = REF_TS - created[idx]
    at = created[idx] + (span * rng.random(m)).astype(np.int64)
    cust = cust_key[idx]
    orphan = noise.mask(m, 0.004)
    cust = so.where(orphan, rd.unique_codes(rng, m, 14, "base62", prefix="cus_"), cust)
    ctry = country[idx]
    cur = np.empty(m, dtype=object)
    for c in COUNTRIES:
        cur[ctry == c] = CURRENCY[c]
    total = np.round(np.exp(rng.normal(3.9, 0.8, m)), 2) + 0.0
    status = rd.choose(rng, [("completed", 88), ("cancelled", 6), ("returned", 6)], m)
    items = 1 + rng.geometric(0.45, m) - 1
    sort = np.lexsort((rng.random(m), at))
    oid = so.int_str(5_000_000 + np.arange(m) * 3 + rng.integers(0, 3, m))
    lines = j_obj(
        [
            ("order_id", j_str(oid)),
            ("customer_id", j_str(cust[sort])),
            ("ordered_at", j_str(rd.format_ts(at[sort], "yyyy-MM-dd'T'HH:mm:ss'Z'"))),
            ("total", j_num(total[sort])),
            ("currency", j_str(cur[sort])),
            ("status", j_str(status[sort])),
            ("items", j_int(items[sort])),
            ("channel", j_str(np.full(m, "web", dtype=object))),
        ]
    )
    return SourceData(lines=lines)


# -- mobile app ---------------------------------------------------------------------------


def build_app(ctx: Ctx) -> tuple[SourceData, SourceData]:
    """App users (informal display names, E.164 mobiles, birth year only) and events."""
    p = ctx.people
    rng = ctx.rng("app")
    noise = ctx.noise("app")
    age = age_years(p, np.arange(ctx.n))
    prob = 0.35 * np.clip(1.7 - (age - 18) / 40, 0.15, 1.7)
    pid = select(rng, prob)
    pid, is_dup = with_duplicates(rng, noise, pid, 0.015)
    n = len(pid)
    signup, _ = record_times(rng, p, pid, "2018-01-01", skew=0.6)
    c = country_arr(p, pid)
    first, last = render_names(
        ctx,
        "app",
        pid,
        np.full(n, REF_TS),
        NameStyle(
            nickname=0.25,
            compound_first=0.3,
            swap=0.005,
            typo=0.01,
            case=0.0,
            space=0.02,
            missing_first=0.0,
            missing_last=0.0,
            ascii_share=0.15,
            es_single_surname=0.7,
            hyphen_short=0.6,
            suffix_share=0.05,
        ),
    )
    dk = rd.choose_idx(rng, [30, 15, 15, 12, 5, 8, 10, 5], n)
    f_l = so.cat(first, " ", last)
    init_l = so.cat(so.substr(last, 0, 1), ".")
    handle = so.lower(so.replace(so.fold(so.cat(first, last)), r"[ '\-]", "", regex=True))
    handle = so.where(
        rng.random(n) < 0.5, so.cat(handle, so.int_str(rng.integers(1, 99, n))), handle
    )
    forms = [
        f_l,
        so.lower(f_l),
        so.cat(first, " ", init_l),
        so.lower(first),
        so.cat(so.substr(first, 0, 1), ". ", last),
        handle,
        first,
        so.upper(f_l),
    ]
    display = forms[0]
    for i in range(1, len(forms)):
        display = so.where(dk == i, forms[i], display)
    display = nz.typos(display, noise.mask(n, 0.01), rng)
    platform_user = np.where(rng.random(n) < 0.45, "ios", "android").astype(object)
    email = asof_email(rng, p, pid, np.full(n, REF_TS), work_share=0.05, family_share=0.2)
    relay = (platform_user == "ios") & (rng.random(n) < 0.12)
    relay_addr = so.cat(rd.unique_codes(rng, n, 10, "base62"), "@privaterelay.appleid.com")
    email = so.where(relay, so.lower(relay_addr), email)
    alt = p["work_email"][pid]
    email = so.where(is_dup & ~so.is_missing(alt), alt, nz.email_typos(email, is_dup, rng))
    email = render_email(
        ctx, "app", email, present=0.88, typo=0.008, invalid=0.002, placeholder=0.0, case=0.01
    )
    phone = render_phone(
        ctx,
        "app",
        c,
        p["mobile_nsn"][pid],
        p["mobile_area_len"][pid],
        present=0.5,
        e164_share=0.6,
        invalid=0.003,
    )
    ctry = so.where(rng.random(n) < 0.03, "US", c)
    ctry = so.where(rng.random(n) < 0.01, None, ctry)
    year = p["birth_year"][pid].copy()
    off = noise.mask(n, 0.03)
    year = np.where(off, year + rng.choice([-1, 1], n), year)
    year = np.where(noise.mask(n, 0.005), rng.choice([1900, 2000, 1970], n), year)
    year_missing = rng.random(n) < 0.5
    key = rd.uuids(rng, n)
    events, last_active = _events(ctx, key, signup, platform_user)
    lines = j_obj(
        [
            ("user_id", j_str(key)),
            ("display_name", j_str(display)),
            ("email", j_str(email)),
            ("phone", j_str(phone)),
            ("country", j_str(ctry)),
            ("birth_year", j_int(year, missing=year_missing)),
            ("signup_ts", j_int(signup * 1000 + rng.integers(0, 1000, n))),
            ("last_active_ts", j_int(last_active)),
        ]
    )
    order = rng.permutation(n)
    users = SourceData(
        lines=lines.take(pa.array(order)), truth_keys=key[order], truth_pids=pid[order]
    )
    return users, events


def _events(
    ctx: Ctx, user_key: np.ndarray, signup: np.ndarray, platform: np.ndarray
) -> tuple[SourceData, np.ndarray]:
    rng = ctx.rng("events")
    n = len(user_key)
    mean = np.where(rng.random(n) < 0.05, 80.0, 9.0)
    count = rng.negative_binomial(0.9, 0.9 / (0.9 + mean))
    idx = np.repeat(np.arange(n), count)
    m = len(idx)
    signup_ms = signup * 1000
    active_until = signup_ms + ((REF_TS * 1000 - signup_ms) * rng.random(n) ** 0.4).astype(np.int64)
    at = signup_ms[idx] + ((active_until[idx] - signup_ms[idx]) * rng.random(m)).astype(np.int64)
    etype = rd.choose(
        rng, [("app_open", 45), ("product_view", 35), ("add_to_cart", 12), ("purchase", 8)], m
    )
    plat = platform[idx]
    other = np.where(plat == "ios", "android", "ios").astype(object)
    plat = so.where(rng.random(m) < 0.03, other, plat)
    amount = np.round(np.exp(rng.normal(3.4, 0.9, m)), 2)
    sort = np.lexsort((rng.random(m), at))
    last = np.full(n, -1, dtype=np.int64)
    np.maximum.at(last, idx, at)
    last_active = np.where(last >= 0, last, signup_ms + rng.integers(1000, 600_000, n))
    lines = j_obj(
        [
            ("event_id", j_str(rd.unique_codes(rng, m, 16, "hex", prefix="evt_"))),
            ("user_id", j_str(user_key[idx][sort])),
            ("event_type", j_str(etype[sort])),
            ("ts", j_int(at[sort])),
            ("platform", j_str(plat[sort])),
            ("amount", j_num(amount[sort], missing=etype[sort] != "purchase")),
        ]
    )
    return SourceData(lines=lines), last_active


# -- support desk -------------------------------------------------------------------------

SUPPORT_COLUMNS = [
    "ticket_id",
    "requester_id",
    "requester_name",
    "requester_email",
    "requester_phone",
    "subject",
    "priority",
    "status",
    "channel",
    "created_at",
    "updated_at",
]
SUBJECTS = (
    "Where is my order #{n}?",
    "Refund request for order {n}",
    "Can't log in",
    "Change my address",
    "Wrong item received",
    "Cancel order {n}",
    "Unsubscribe me",
    "Question about my loyalty points",
    "Payment failed",
    "Damaged parcel, order #{n}",
    "Delete my account",
    "Update my email address",
    "Invoice needed for order {n}",
    "Problem with the app",
    "Item out of stock?",
    "Return label not working",
    'Complaint: "express" delivery took 2 weeks',
    "Discount code not applied, order {n}",
    "Card charged twice",
    "Password reset email never arrives",
)


def build_support(ctx: Ctx) -> SourceData:
    """Support tickets: several per requester, requester details re-typed per ticket."""
    p = ctx.people
    rng = ctx.rng("support")
    noise = ctx.noise("support")
    pid = select(rng, np.full(ctx.n, 0.2))
    pid, is_dup = with_duplicates(rng, noise, pid, 0.05)
    r = len(pid)
    req_key = rd.unique_codes(rng, r, 11, "digits")
    first_ts, _ = record_times(rng, p, pid, "2016-01-01", skew=0.6, touched=0.0)
    count = 1 + rng.negative_binomial(1.2, 1.2 / (1.2 + 1.4), r)
    ri = np.repeat(np.arange(r), count)
    m = len(ri)
    tpid = pid[ri]
    created = first_ts[ri] + ((REF_TS - first_ts[ri]) * rng.random(m) ** 2.0).astype(np.int64)
    created = np.where(np.r_[True, ri[1:] != ri[:-1]], first_ts[ri], created)
    updated = np.minimum(created + (rng.exponential(3.0, m) * DAY).astype(np.int64), REF_TS - 60)
    c = country_arr(p, tpid)
    first, last = render_names(
        ctx,
        "support",
        tpid,
        created,
        NameStyle(
            nickname=0.12,
            compound_first=0.2,
            swap=0.02,
            typo=0.03,
            case=0.0,
            space=0.03,
            missing_first=0.0,
            missing_last=0.0,
            ascii_share=0.2,
            es_single_surname=0.6,
        ),
    )
    nk = rd.choose_idx(rng, [25, 42, 10, 8, 6, 9], m)
    name = so.cat(last, ", ", first)
    name = so.where(nk == 1, so.cat(first, " ", last), name)
    name = so.where(nk == 2, so.lower(so.cat(first, " ", last)), name)
    name = so.where(nk == 3, so.upper(so.cat(first, " ", last)), name)
    name = so.where(nk == 4, first, name)
    name = so.where(nk == 5, None, name)
    email = asof_email(rng, p, tpid, created, work_share=0.12, family_share=0.4)
    dup_alt = so.where(
        ~so.is_missing(p["work_email"][tpid]), p["work_email"][tpid], p["old_email"][tpid]
    )
    email = so.where(is_dup[ri] & ~so.is_missing(dup_alt), dup_alt, email)
    email = render_email(
        ctx, "support", email, present=0.85, typo=0.02, invalid=0.01, placeholder=0.01, case=0.03
    )
    addr = asof_address(p, tpid, created)
    use_land = ~so.is_missing(addr["landline_nsn"]) & (rng.random(m) < 0.3)
    nsn = so.where(use_land, addr["landline_nsn"], p["mobile_nsn"][tpid])
    al = np.where(use_land, addr["landline_area_len"], p["mobile_area_len"][tpid])
    phone = render_phone(ctx, "support", c, nsn, al, present=0.3, typo=0.015, invalid=0.01)
    subj_t = np.array(SUBJECTS, dtype=object)[rng.integers(0, len(SUBJECTS), m)]
    subject = so.replace(
        so.cat(subj_t, "\x1f", so.int_str(rng.integers(5_000_000, 9_000_000, m))),
        r"\{n\}(.*)\x1f(.*)$",
        r"\2\1",
        regex=True,
    )
    subject = so.replace(subject, r"\x1f.*$", "", regex=True)
    priority = rd.choose(rng, [("low", 30), ("normal", 50), ("high", 15), ("urgent", 5)], m)
    age_days = (REF_TS - created) / DAY
    recent = age_days < 10
    status = so.where(
        recent,
        rd.choose(rng, [("open", 45), ("pending", 30), ("solved", 25)], m),
        rd.choose(rng, [("solved", 35), ("closed", 58), ("open", 3), ("pending", 4)], m),
    )
    channel = rd.choose(rng, [("email", 50), ("web", 25), ("chat", 15), ("phone", 10)], m)
    sort = np.lexsort((rng.random(m), created))
    tid = so.int_str(100_000 + np.arange(m))
    cols = {
        "ticket_id": tid,
        "requester_id": req_key[ri][sort],
        "requester_name": name[sort],
        "requester_email": email[sort],
        "requester_phone": phone[sort],
        "subject": subject[sort],
        "priority": priority[sort],
        "status": status[sort],
        "channel": channel[sort],
        "created_at": rd.format_ts(created[sort], "dd/MM/yyyy HH:mm"),
        "updated_at": rd.format_ts(updated[sort], "dd/MM/yyyy HH:mm"),
    }
    mal = _malformed(rng, noise, m, 0.002, protect=2)
    return SourceData(columns=cols, truth_keys=req_key, truth_pids=pid, malformed=mal)


# -- e-mail marketing ---------------------------------------------------------------------

EMAIL_COLUMNS = [
    "subscriber_id",
    "email",
    "first_name",
    "last_name",
    "opt_in_status",
    "opt_in_at",
    "opt_out_at",
    "list_name",
    "emails_sent",
    "emails_opened",
    "emails_clicked",
    "last_open_at",
]


def build_email(ctx: Ctx) -> SourceData:
    """E-mail subscribers: an address first, names often empty, opt-in history per list."""
    p = ctx.people
    rng = ctx.rng("email")
    noise = ctx.noise("email")
    has_mail = (
        ~so.is_missing(p["email"])
        | ~so.is_missing(p["work_email"])
        | ~so.is_missing(p["family_email"])
    )
    pid = select(rng, 0.5 * has_mail / 0.9)
    second_list = pid[rng.random(len(pid)) < 0.10]
    pid, is_dup = with_duplicates(rng, noise, pid, 0.03)
    pid = np.concatenate([pid, second_list])
    same_addr = np.concatenate([np.zeros(len(is_dup), bool), np.ones(len(second_list), bool)])
    is_dup = np.concatenate([is_dup, np.zeros(len(second_list), bool)])
    n = len(pid)
    opt_in, _ = record_times(rng, p, pid, "2014-01-01", skew=0.8, touched=0.0)
    c = country_arr(p, pid)
    email = asof_email(ctx.rng("email.asof"), p, pid, opt_in, work_share=0.08, family_share=0.3)
    alt = so.where(~so.is_missing(p["work_email"][pid]), p["work_email"][pid], p["old_email"][pid])
    email = so.where(is_dup & ~so.is_missing(alt), alt, email)
    email = nz.plus_tags(email, is_dup & so.is_missing(alt), rng, ("news", "newsletter"))
    email = render_email(
        ctx,
        "email",
        email,
        present=1.0,
        typo=0.01,
        invalid=0.005,
        placeholder=0.003,
        case=0.03,
        gmail=0.03,
        plus=0.04,
        plus_tags=("news", "newsletter", "promo"),
    )
    email = so.where(so.is_missing(email), "n/a", email)
    first, last = render_names(
        ctx,
        "email",
        pid,
        opt_in,
        NameStyle(
            nickname=0.08, typo=0.02, case=0.08, swap=0.01, ascii_share=0.25, es_single_surname=0.7
        ),
    )
    nk = rng.random(n)
    first = so.where(nk < 0.55, None, first)
    last = so.where(nk < 0.65, None, last)
    lists = [("newsletter", 50), ("promotions", 25), ("weekly-deals", 15), ("new-arrivals", 10)]
    list_name = rd.choose(rng, lists, n)
    loc = rng.random(n) < 0.3
    list_name = so.where(loc, so.cat(list_name, "-", so.lower(c)), list_name)
    other = rd.choose(rng, lists, n)
    list_name = so.where(
        same_addr & (other != list_name),
        other,
        so.where(same_addr, so.cat(list_name, "-vip"), list_name),
    )
    status = rd.choose(rng, [("subscribed", 70), ("unsubscribed", 20), ("pending", 10)], n)
    pending = status == "pending"
    unsub = status == "unsubscribed"
    opt_out = opt_in + ((REF_TS - opt_in) * rng.random(n)).astype(np.int64)
    end = np.where(unsub, opt_out, REF_TS)
    weeks = np.where(pending, 0, (end - opt_in) // (7 * DAY))
    sent = np.where(pending, 0, rng.binomial(np.maximum(weeks, 0), 0.9))
    open_rate = rng.beta(2, 5, n)
    opened = rng.binomial(sent, open_rate)
    clicked = rng.binomial(opened, 0.15)
    last_open = opt_in + ((end - opt_in) * (1 - rng.random(n) ** 8)).astype(np.int64)
    fmt = "yyyy-MM-dd'T'HH:mm:ss"
    key = rd.unique_codes(rng, n, 10, "hex")
    cols = {
        "subscriber_id": key,
        "email": email,
        "first_name": first,
        "last_name": last,
        "opt_in_status": status,
        "opt_in_at": rd.format_ts(opt_in, fmt, missing=pending),
        "opt_out_at": rd.format_ts(opt_out, fmt, missing=~unsub),
        "list_name": list_name,
        "emails_sent": so.int_str(sent),
        "emails_opened": so.int_str(opened),
        "emails_clicked": so.int_str(clicked),
        "last_open_at": rd.format_ts(last_open, fmt, missing=opened == 0),
    }
    return _shuffled(rng, cols, key, pid)


# -- point of sale ------------------------------------------------------------------------

STORES_PER_COUNTRY = {"US": 40, "GB": 20, "DE": 15, "FR": 12, "ES": 8}


def build_pos(ctx: Ctx) -> SourceData:
    """Till transactions: loyalty-card and anonymous; names and phones rarely captured."""
    p = ctx.people
    rng = ctx.rng("pos")
    noise = ctx.noise("pos")
    pools = ctx.pools
    # stores: id, country, city, and the store's own phone (keyed in for customers often)
    store_country = np.concatenate(
        [np.full(k, c, dtype=object) for c, k in STORES_PER_COUNTRY.items()]
    )
    s = len(store_country)
    store_id = so.cat("S", so.zfill(rng.choice(np.arange(100, 1000), s, replace=False), 3))
    store_city = np.zeros(s, dtype=np.int64)
    for c in COUNTRIES:
        m = store_country == c
        cities = np.flatnonzero(pools.places.country == c)
        w = pools.places.weight[cities]
        store_city[m] = cities[rng.choice(len(cities), int(m.sum()), p=w / w.sum())]
    from udp_spark.generate.population import _landlines

    store_nsn, store_al = _landlines(rng, pools, store_city, store_country)
    store_phone = rd.format_phones(rng, store_country, store_nsn, store_al)
    # card holders: most people with a loyalty card use it
    holders = np.flatnonzero(~so.is_missing(p["loyalty_id"]) & (rng.random(ctx.n) < 0.85))
    h = len(holders)
    heavy = rng.random(h) < 0.02
    mean = np.where(heavy, 60.0, 5.0)
    count = 1 + rng.negative_binomial(1.0, 1.0 / mean)
    hi = np.repeat(np.arange(h), count)
    owner = holders[hi]
    anon_n = int(len(hi) * 0.35 / 0.65)
    anon = rng.integers(0, ctx.n, anon_n)
    payer = np.concatenate([owner, anon])
    is_loyal = np.concatenate([np.ones(len(hi), bool), np.zeros(anon_n, bool)])
    m = len(payer)
    # a household member sometimes pays with their own bank card on the family loyalty card
    hh_start = _household_start(p)
    hh_size = p["household_size"]
    other = hh_start[payer] + rng.integers(0, hh_size[payer])
    card_user = np.where(is_loyal & (rng.random(m) < 0.1), other, payer)
    t0 = ts("2023-07-01")
    txn_ts = t0 + ((REF_TS - t0) * rng.random(m)).astype(np.int64)
    c = p["country"][payer]
    home = np.empty(m, dtype=np.int64)
    for cc in COUNTRIES:
        mm = c == cc
        stores = np.flatnonzero(store_country == cc)
        home_store = stores[rng.integers(0, len(stores), ctx.n)]
        home[mm] = np.where(
            rng.random(int(mm.sum())) < 0.7,
            home_store[payer[mm]],
            stores[rng.integers(0, len(stores), int(mm.sum()))],
        )
    loyalty = so.where(is_loyal, asof_loyalty(p, payer, txn_ts), None)
    # card holder as on a payment card: "JOHN SMITH", "J SMITH", "SMITH/JOHN"
    first, last = render_names(
        ctx,
        "pos",
        card_user,
        txn_ts,
        NameStyle(
            nickname=0.05,
            compound_first=0.3,
            swap=0.0,
            typo=0.02,
            case=0.0,
            space=0.01,
            missing_first=0.0,
            missing_last=0.0,
            ascii_share=0.9,
            es_single_surname=0.7,
            suffix_share=0.3,
        ),
    )
    hk = rd.choose_idx(rng, [50, 20, 15, 5, 10], m)
    holder = so.upper(so.cat(first, " ", last))
    holder = so.where(hk == 1, so.upper(so.cat(so.substr(first, 0, 1), " ", last)), holder)
    holder = so.where(hk == 2, so.upper(so.cat(last, "/", first)), holder)
    holder = so.where(
        hk == 3,
        so.upper(so.cat(so.where(p["gender"][card_user] == "F", "MRS ", "MR "), first, " ", last)),
        holder,
    )
    holder = so.where(hk == 4, so.cat(first, " ", last), holder)
    holder = so.where(rng.random(m) < 0.4, holder, None)
    phone = rd.format_phones(rng, c, p["mobile_nsn"][payer], p["mobile_area_len"][payer])
    phone = so.where(rng.random(m) < 0.3, phone, None)
    phone = so.where(noise.mask(m, 0.04), store_phone[home], phone)
    phone = so.where(noise.mask(m, 0.01), "0000000000", phone)
    phone = nz.digit_typos(phone, noise.mask(m, 0.01), rng)
    addr = asof_address(p, payer, txn_ts)
    postcode = so.where(rng.random(m) < 0.5, addr["postcode"], None)
    postcode = nz.typos(postcode, noise.mask(m, 0.01), rng)
    amount = np.round(np.exp(rng.normal(3.3, 0.9, m)), 2)
    amount = np.where(rng.random(m) < 0.015, -amount, amount)
    cur = np.empty(m, dtype=object)
    for cc in COUNTRIES:
        cur[c == cc] = CURRENCY[cc]
    pay = rd.choose(
        rng, [("card", 45), ("contactless", 25), ("cash", 20), ("mobile", 7), ("gift_card", 3)], m
    )
    holder = so.where(pay == "cash", None, holder)
    sort = np.lexsort((rng.random(m), txn_ts))
    txn_us = txn_ts * 1_000_000 + rng.integers(0, 1_000_000, m)
    key = rd.unique_codes(rng, m, 12, "digits", prefix="TX")
    table = pa.table(
        {
            "txn_id": pa.array(key[sort], pa.string()),
            "store_id": pa.array(store_id[home][sort], pa.string()),
            "loyalty_id": pa.array(loyalty[sort], pa.string()),
            "card_holder": pa.array(holder[sort], pa.string()),
            "phone": pa.array(phone[sort], pa.string()),
            "postcode": pa.array(postcode[sort], pa.string()),
            "amount": pa.array(amount[sort], pa.float64()),
            "currency": pa.array(cur[sort], pa.string()),
            "txn_ts": pa.array(txn_us[sort], pa.timestamp("us", tz="UTC")),
            "payment_method": pa.array(pay[sort], pa.string()),
        }
    )
    # truth: each distinct card number seen on a transaction -> its owner
    seen = ~so.is_missing(loyalty)
    cards, first_idx = np.unique(loyalty[seen].astype(str), return_index=True)
    owners = payer[seen][first_idx]
    order = rng.permutation(len(cards))
    return SourceData(table=table, truth_keys=cards.astype(object)[order], truth_pids=owners[order])


def _household_start(p: People) -> np.ndarray:
    hh = p["household_id"]
    change = np.r_[True, hh[1:] != hh[:-1]]
    starts = np.flatnonzero(change)
    return starts[np.cumsum(change) - 1]


__all__ = [
    "CRM_COLUMNS",
    "EMAIL_COLUMNS",
    "SUPPORT_COLUMNS",
    "Ctx",
    "SourceData",
    "build_app",
    "build_crm",
    "build_email",
    "build_pos",
    "build_support",
    "build_webshop",
]
