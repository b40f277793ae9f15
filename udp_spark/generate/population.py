"""The true population behind all sources: people, households and what happened to them.

Everything is drawn column-wise with numpy. The result is a dict of aligned arrays, one entry
per person (index = person number), holding both the truth written to ``truth/people.parquet``
and helper columns the source renderers need (phone parts, city indexes, event times).
"""

from __future__ import annotations

from collections.abc import Mapping

import numpy as np

from udp_spark.generate import strops as so
from udp_spark.generate.pools import (
    CALLING_CODE,
    COUNTRIES,
    COUNTRY_SHARE,
    EMAIL_DOMAINS,
    LANDLINE_NSN_LEN,
    LANDLINE_SHARE,
    LANGUAGE,
    MIDDLE_NAME_SHARE,
    MOBILE_PLANS,
    OLD_EMAIL_DOMAINS,
    SAME_NAME_SON,
    WORK_DOMAINS,
    Pools,
    valid_leads,
    weighted,
    zipf_weights,
)

REF_DATE = np.datetime64("2026-06-30", "D")
REF_DAY = int(REF_DATE.astype(np.int64))
DAY = 86_400
REF_TS = REF_DAY * DAY


def ts(date: str) -> int:
    """``yyyy-mm-dd`` -> epoch seconds (UTC)."""
    return int(np.datetime64(date, "D").astype(np.int64)) * DAY


HEAD, PARTNER, CHILD, GRANDPARENT = 0, 1, 2, 3
ROLE_NAMES = np.array(["head", "partner", "child", "grandparent"], dtype=object)

People = dict[str, np.ndarray]


def _households(n: int, rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Household id, member index and household size per person (~60% live alone)."""
    single_p = 0.8157  # gives ~60% of people in one-person households (mean multi size 2.95)
    sizes_l: list[np.ndarray] = []
    total = 0
    while total < n:
        k = max(16, int((n - total) / 1.4) + 16)
        s = np.where(
            rng.random(k) < single_p, 1, rng.choice([2, 3, 4, 5], size=k, p=[0.45, 0.25, 0.2, 0.1])
        )
        sizes_l.append(s)
        total += int(s.sum())
    sizes = np.concatenate(sizes_l)
    cum = np.cumsum(sizes)
    h = int(np.searchsorted(cum, n)) + 1
    sizes = sizes[:h].copy()
    sizes[-1] -= int(cum[h - 1] - n)
    hh = np.repeat(np.arange(h), sizes)
    start = np.concatenate([[0], np.cumsum(sizes)[:-1]])
    member = np.arange(n) - start[hh]
    return hh, member, sizes[hh]


def per_country(
    country: np.ndarray, mapping: Mapping[str, object], dtype: type = object
) -> np.ndarray:
    """Look a per-country constant up for every row (one vectorized pass per country)."""
    out: np.ndarray = np.empty(len(country), dtype=dtype)
    for c in COUNTRIES:
        out[country == c] = mapping[c]
    return out


def _draw(rng: np.random.Generator, names: np.ndarray, p: np.ndarray, k: int) -> np.ndarray:
    return names[rng.choice(len(names), size=k, p=p)]


def _family_names(rng: np.random.Generator, pools: Pools, country: np.ndarray) -> np.ndarray:
    """One family name per row: Zipf-weighted common names plus a synthetic long tail."""
    out: np.ndarray = np.empty(len(country), dtype=object)
    for c in COUNTRIES:
        idx = np.flatnonzero(country == c)
        if len(idx) == 0:
            continue
        names, p = pools.family[c]
        common = _draw(rng, names, p, len(idx))
        pre, suf = pools.family_parts[c]
        tail = so.cat(
            pre[rng.integers(0, len(pre), len(idx))], suf[rng.integers(0, len(suf), len(idx))]
        )
        out[idx] = so.where(rng.random(len(idx)) < 0.22, tail, common)
    return out


def _given_names(
    rng: np.random.Generator, pools: Pools, country: np.ndarray, gender: np.ndarray
) -> np.ndarray:
    out = np.empty(len(country), dtype=object)
    for c in COUNTRIES:
        for g in ("M", "F"):
            idx = np.flatnonzero((country == c) & (gender == g))
            if len(idx):
                names, p = pools.given[(c, g)]
                out[idx] = _draw(rng, names, p, len(idx))
    return out


def _similar_given(
    rng: np.random.Generator,
    pools: Pools,
    country: np.ndarray,
    gender: np.ndarray,
    other: np.ndarray,
) -> np.ndarray:
    """A given name sharing the first letter with ``other`` (twins: Anna/Anne, Max/Moritz)."""
    out = other.copy()
    u = rng.random(len(other))
    for c in COUNTRIES:
        for g in ("M", "F"):
            idx = np.flatnonzero((country == c) & (gender == g))
            if len(idx) == 0:
                continue
            names = pools.given[(c, g)][0]
            by_initial: dict[str, list[str]] = {}
            for name in names:
                by_initial.setdefault(name[0], []).append(name)
            picks = []
            for o, uu in zip(other[idx], u[idx], strict=True):
                cands = [x for x in by_initial.get(o[0], []) if x != o] or [
                    x for x in names[:20] if x != o
                ]
                picks.append(cands[min(int(uu * len(cands)), len(cands) - 1)])
            out[idx] = picks
    return out


def _make_numbers(
    rng: np.random.Generator, country: str, prefixes: np.ndarray, nsn_len: np.ndarray
) -> np.ndarray:
    """National significant numbers for the given prefixes, valid per libphonenumber."""
    out = np.empty(len(prefixes), dtype=object)
    keys = sorted(set(zip(prefixes.tolist(), nsn_len.tolist(), strict=True)))
    for pre, nl in keys:
        idx = np.flatnonzero((prefixes == pre) & (nsn_len == nl))
        leads = np.array(valid_leads(country, pre, int(nl)), dtype=object)
        rest = int(nl) - len(pre) - 2
        lead = leads[rng.integers(0, len(leads), len(idx))]
        tail = so.zfill(rng.integers(0, 10**rest, len(idx)), rest)
        out[idx] = so.cat(np.full(len(idx), pre, dtype=object), lead, tail)
    return out


def _landlines(
    rng: np.random.Generator, pools: Pools, city: np.ndarray, country: np.ndarray
) -> tuple[np.ndarray, np.ndarray]:
    """A landline NSN in the city's area code (and its display area length) per row."""
    n = len(city)
    area = np.empty(n, dtype=object)
    for ci in np.unique(city):
        idx = np.flatnonzero(city == ci)
        codes = np.array(pools.places.area_codes[ci], dtype=object)
        area[idx] = codes[rng.integers(0, len(codes), len(idx))]
    nsn = np.empty(n, dtype=object)
    for c in COUNTRIES:
        idx = np.flatnonzero(country == c)
        if len(idx):
            nsn[idx] = _make_numbers(rng, c, area[idx], np.full(len(idx), LANDLINE_NSN_LEN[c]))
    return nsn, so.length(area)


def _mobiles(
    rng: np.random.Generator, pools: Pools, city: np.ndarray, country: np.ndarray
) -> tuple[np.ndarray, np.ndarray]:
    """A mobile NSN per row (US mobiles use the home city's area codes)."""
    n = len(city)
    nsn = np.empty(n, dtype=object)
    area_len = np.zeros(n, dtype=np.int64)
    us = np.flatnonzero(country == "US")
    if len(us):
        nsn[us], area_len[us] = _landlines(rng, pools, city[us], country[us])
    for c, plans in MOBILE_PLANS.items():
        idx = np.flatnonzero(country == c)
        if len(idx) == 0:
            continue
        w = np.array([p[3] for p in plans], dtype=float)
        k = rng.choice(len(plans), size=len(idx), p=w / w.sum())
        pre = np.array([p[0] for p in plans], dtype=object)[k]
        nl = np.array([p[1] for p in plans])[k]
        nsn[idx] = _make_numbers(rng, c, pre, nl)
        area_len[idx] = np.array([p[2] for p in plans])[k]
    return nsn, area_len


def _postcodes(rng: np.random.Generator, pools: Pools, city: np.ndarray) -> np.ndarray:
    out = np.empty(len(city), dtype=object)
    letters = np.array(list("ABDEFGHJLNPQRSTUWXYZ"), dtype=object)
    for ci in np.unique(city):
        idx = np.flatnonzero(city == ci)
        specs = pools.places.postcodes[ci]
        k = len(idx)
        if pools.places.country[ci] == "GB":
            outward = np.array(specs, dtype=object)[rng.integers(0, len(specs), k)]
            out[idx] = so.cat(
                outward,
                " ",
                so.int_str(rng.integers(1, 10, k)),
                letters[rng.integers(0, 20, k)],
                letters[rng.integers(0, 20, k)],
            )
            continue
        lo = np.array([int(s.split("-")[0]) for s in specs])
        hi = np.array([int(s.split("-")[-1]) for s in specs])
        r = rng.integers(0, len(specs), k)
        out[idx] = so.zfill(lo[r] + (rng.random(k) * (hi[r] - lo[r] + 1)).astype(np.int64), 5)
    return out


def _addresses(
    rng: np.random.Generator, pools: Pools, country: np.ndarray
) -> dict[str, np.ndarray]:
    """One address per row (city, street, number, unit, postcode) in the row's country."""
    n = len(country)
    city = np.zeros(n, dtype=np.int64)
    street = np.empty(n, dtype=object)
    for c in COUNTRIES:
        idx = np.flatnonzero(country == c)
        if len(idx) == 0:
            continue
        cities = np.flatnonzero(pools.places.country == c)
        w = pools.places.weight[cities]
        city[idx] = cities[rng.choice(len(cities), size=len(idx), p=w / w.sum())]
        st = pools.streets[c]
        street[idx] = st[rng.choice(len(st), size=len(idx), p=zipf_weights(len(st), 0.6))]
    big = np.isin(country, ["US"])
    number = np.where(big, np.exp(rng.normal(6.0, 1.3, n)), np.exp(rng.normal(2.8, 1.0, n)))
    number = np.clip(number, 1, np.where(big, 19999, 400)).astype(np.int64)
    house = so.int_str(number)
    suffix = np.array(["a", "b", "c"], dtype=object)[rng.integers(0, 3, n)]
    house = so.where((country == "DE") & (rng.random(n) < 0.08), so.cat(house, suffix), house)
    fr_suffix = np.array(["bis", "ter"], dtype=object)[(rng.random(n) < 0.2).astype(int)]
    house = so.where((country == "FR") & (rng.random(n) < 0.05), so.cat(house, fr_suffix), house)
    u = rng.random(n)
    unit_no = so.int_str(rng.integers(1, 40, n))
    letter = np.array(list("ABCD"), dtype=object)[rng.integers(0, 4, n)]
    floor = so.int_str(rng.integers(1, 9, n))
    unit = np.full(n, None, dtype=object)
    unit = so.where((country == "US") & (u < 0.25), so.cat("Apt ", unit_no, letter), unit)
    unit = so.where((country == "GB") & (u < 0.15), so.cat("Flat ", unit_no), unit)
    unit = so.where((country == "FR") & (u < 0.15), so.cat("Apt ", unit_no), unit)
    unit = so.where((country == "ES") & (u < 0.65), so.cat(floor, "º ", letter), unit)
    return {
        "city": city,
        "street": street,
        "house_number": house,
        "unit": unit,
        "postcode": _postcodes(rng, pools, city),
    }


def _email_local(
    rng: np.random.Generator,
    first: np.ndarray,
    last: np.ndarray,
    birth_year: np.ndarray,
    style_bias: int = 0,
) -> np.ndarray:
    """Local parts from ASCII-folded names in the usual patterns (``john.smith``, ``jsmith78``)."""
    n = len(first)
    f = so.lower(so.replace(so.fold(first), r"[ '\-]", "", regex=True))
    ln = so.lower(so.replace(so.fold(last), r"[ '\-]", "", regex=True))
    f0 = so.substr(f, 0, 1)
    yy = so.zfill(birth_year % 100, 2)
    yyyy = so.int_str(birth_year)
    nn = so.int_str(rng.integers(1, 999, n))
    pats = [
        (so.cat(f, ".", ln), 25),
        (so.cat(f, ln), 14),
        (so.cat(f0, ln), 10),
        (so.cat(f, "_", ln), 5),
        (so.cat(f, ".", ln, yy), 8),
        (so.cat(f, ln, nn), 10),
        (so.cat(ln, ".", f), 5),
        (so.cat(f, yy), 4),
        (so.cat(f0, ".", ln), 5),
        (so.cat(f, ".", so.substr(ln, 0, 1)), 3),
        (so.cat(ln, f0), 4),
        (so.cat(f, yyyy), 3),
        (so.cat(ln, nn), 2),
        (so.cat(f, "-", ln), 2),
    ]
    w = np.array([p[1] for p in pats], dtype=float)
    if style_bias:
        w = np.roll(w, style_bias)
    k = rng.choice(len(pats), size=n, p=w / w.sum())
    out = np.empty(n, dtype=object)
    for i, (arr, _) in enumerate(pats):
        m = k == i
        out[m] = arr[m]
    return out


def _domains(
    rng: np.random.Generator, country: np.ndarray, table: dict[str, list[tuple[str, float]]]
) -> np.ndarray:
    out = np.empty(len(country), dtype=object)
    for c in COUNTRIES:
        idx = np.flatnonzero(country == c)
        if len(idx):
            vals, p = weighted(table[c])
            out[idx] = vals[rng.choice(len(vals), size=len(idx), p=p)]
    return out


def _unique_emails(rng: np.random.Generator, email: np.ndarray) -> np.ndarray:
    """Make addresses unique by appending digits to later duplicates (as mail providers do)."""
    import pandas as pd

    out = email.copy()
    for _ in range(20):
        dup = pd.Series(out, dtype=object).duplicated(keep="first").to_numpy() & ~so.is_missing(out)
        if not dup.any():
            break
        idx = np.flatnonzero(dup)
        digits = so.int_str(rng.integers(1, 9999, len(idx)))
        out[idx] = so.replace(
            so.cat(out[idx], "\x1f", digits),
            r"^([^@]*)@([^\x1f]*)\x1f(.*)$",
            r"\1\3@\2",
            regex=True,
        )
    return out


def build_people(n: int, rng: np.random.Generator, pools: Pools) -> People:
    """Draw ``n`` people in households with names, addresses, phones, e-mails and events."""
    hh, member, hsize = _households(n, rng)
    n_hh = int(hh.max()) + 1
    start = np.concatenate([[0], np.flatnonzero(np.diff(hh)) + 1])
    head = start[hh]

    hh_country = np.array(COUNTRIES, dtype=object)[
        rng.choice(len(COUNTRIES), size=n_hh, p=COUNTRY_SHARE)
    ]
    country = hh_country[hh]
    language = per_country(country, LANGUAGE)

    # roles -------------------------------------------------------------------------------
    hh_partner = rng.random(n_hh) < 0.8
    hh_grand = rng.random(n_hh) < 0.12
    role = np.full(n, CHILD)
    role[member == 0] = HEAD
    role[(member == 1) & hh_partner[hh]] = PARTNER
    role[(member == hsize - 1) & (hsize >= 3) & hh_grand[hh]] = GRANDPARENT
    has_partner = np.bincount(hh, weights=role == PARTNER, minlength=n_hh) > 0
    n_child = np.bincount(hh, weights=role == CHILD, minlength=n_hh).astype(int)

    # gender & age ------------------------------------------------------------------------
    gender = np.where(rng.random(n) < 0.5, "F", "M").astype(object)
    opposite = np.where(gender[head] == "F", "M", "F").astype(object)
    gender = np.where((role == PARTNER) & (rng.random(n) < 0.95), opposite, gender).astype(object)
    age_single = 18 + rng.gamma(2.0, 12.0, n)
    age_head = np.where(n_child[hh] > 0, rng.uniform(38, 72, n), 20 + rng.gamma(2.2, 11.0, n))
    age = np.where(hsize == 1, age_single, age_head)
    age = np.clip(age, 18, 96)
    head_age = age[head]
    age = np.where(role == PARTNER, np.clip(head_age + rng.normal(0, 4, n), 18, 98), age)
    child_age = head_age - rng.uniform(21, 38, n)
    child_age = np.where(child_age < 16, 16 + rng.uniform(0, 3, n), child_age)
    age = np.where(role == CHILD, child_age, age)
    age = np.where(role == GRANDPARENT, np.clip(head_age + rng.uniform(21, 34, n), 40, 99), age)
    dob = (REF_DAY - age * 365.25).astype(np.int64)

    # twins: the first two children of ~22% of households with two or more children ------
    child_rank = np.zeros(n, dtype=np.int64)
    is_child = role == CHILD
    first_child = np.where(has_partner, start + 2, start + 1)
    child_rank[is_child] = (np.arange(n) - first_child[hh])[is_child]
    hh_twins = (n_child >= 2) & (rng.random(n_hh) < 0.22)
    twin2 = is_child & (child_rank == 1) & hh_twins[hh]
    twin1_idx = first_child[hh[twin2]]
    dob[twin2] = dob[twin1_idx]
    twin_of = np.full(n, -1)
    twin_of[twin2] = twin1_idx
    twin_of[twin1_idx] = np.flatnonzero(twin2)

    # names -------------------------------------------------------------------------------
    own = _family_names(rng, pools, country)
    es = country == "ES"
    own2 = _family_names(rng, pools, country)  # Spanish second surname
    surname1 = own.copy()
    surname2 = so.where(es, own2, None)
    married = has_partner[hh] & (rng.random(n_hh) < 0.75)[hh]
    partner_idx = np.where(has_partner, start + 1, -1)[hh]
    hetero = married & (gender[head] != gender[np.maximum(partner_idx, 0)])
    husband = np.where(gender[head] == "M", head, np.maximum(partner_idx, 0))
    hh_name = np.where(hetero, own[husband], own[head]).astype(object)
    wife_changes = rng.random(n)
    is_wife = hetero & ((role == HEAD) | (role == PARTNER)) & (gender == "F") & ~es
    takes = is_wife & (wife_changes < 0.84)
    hyphen = (
        is_wife
        & (wife_changes >= 0.84)
        & (wife_changes < 0.90)
        & np.isin(country, ["DE", "GB", "US"])
    )
    family = own.copy()
    family = np.where(takes, hh_name, family).astype(object)
    family = np.where(hyphen, so.cat(hh_name, "-", own), family).astype(object)
    maiden = so.where(takes | hyphen, own, None)
    # children and grandparents carry the household name (a grandparent is the head's parent)
    head_birth_name = so.where(~so.is_missing(maiden[head]), maiden[head], family[head])
    family = np.where((role == CHILD) & ~es, hh_name, family).astype(object)
    family = np.where((role == GRANDPARENT) & ~es, head_birth_name, family).astype(object)
    # Spanish: child = father's first surname + mother's first surname
    father = np.where(gender[head] == "M", head, np.where(partner_idx >= 0, partner_idx, head))
    mother = np.where(gender[head] == "F", head, np.where(partner_idx >= 0, partner_idx, -1))
    es_child = es & (role == CHILD)
    surname1 = np.where(es_child, surname1[father], surname1).astype(object)
    two_parents = (mother >= 0) & (mother != father)
    surname2 = np.where(
        es_child & two_parents,
        own[np.maximum(mother, 0)],
        np.where(es_child, surname2[head], surname2),
    ).astype(object)
    surname1 = np.where(es & (role == GRANDPARENT), surname1[head], surname1).astype(object)
    family = np.where(es, so.cat(surname1, " ", surname2), family).astype(object)
    family_short = so.where(es, surname1, None)
    family_short = np.where(hyphen, hh_name, family_short).astype(object)
    # marriage happened at 21-38 (or recently for younger wives): older records carry maiden
    marriage_age = rng.uniform(21, 38, n)
    marriage_age = np.where(marriage_age > age, age - rng.uniform(0, 2, n), marriage_age)
    married_on = (dob + marriage_age * 365.25).astype(np.int64) * DAY
    marriage_ts = np.where(~so.is_missing(maiden), married_on, -1)

    given = _given_names(rng, pools, country, gender)
    middle = _given_names(rng, pools, country, gender)
    has_middle = rng.random(n) < per_country(country, MIDDLE_NAME_SHARE, float)
    middle = so.where(has_middle & (middle != given), middle, None)

    # Jr./Sr.: sons (and heads) sharing their father's given name
    suffix = np.full(n, None, dtype=object)
    parent_of = np.full(n, -1)
    p_same = per_country(country, SAME_NAME_SON, float)
    gp_same = (
        (role == GRANDPARENT) & (gender == "M") & (gender[head] == "M") & (rng.random(n) < p_same)
    )
    gp_idx = np.flatnonzero(gp_same)
    given[head[gp_idx]] = given[gp_idx]
    middle[head[gp_idx]] = middle[gp_idx]
    parent_of[head[gp_idx]] = gp_idx
    suffix[gp_idx] = "Sr."
    suffix[head[gp_idx]] = "Jr."
    son_same = (
        is_child
        & (child_rank == 0)
        & (gender == "M")
        & (gender[head] == "M")
        & (rng.random(n) < p_same)
    )
    son_idx = np.flatnonzero(son_same)
    given[son_idx] = given[head[son_idx]]
    middle[son_idx] = middle[head[son_idx]]
    parent_of[son_idx] = head[son_idx]
    head_is_jr = suffix[head[son_idx]] == "Jr."
    suffix[son_idx] = np.where(head_is_jr, "III", "Jr.")
    suffix[head[son_idx]] = np.where(head_is_jr, "Jr.", "Sr.")
    suffix = so.where(np.isin(country, ["US", "GB"]), suffix, None)

    # twins get different (sometimes similar) given names
    t2 = np.flatnonzero(twin2)
    t1 = twin_of[t2]
    similar = rng.random(len(t2)) < 0.35
    alt = _similar_given(rng, pools, country[t2], gender[t2], given[t1])
    given[t2] = np.where(similar, alt, given[t2])
    for _ in range(10):
        same = given[t2] == given[t1]
        if not same.any():
            break
        redraw = _given_names(rng, pools, country[t2][same], gender[t2][same])
        sel = t2[same]
        given[sel] = redraw

    # same-name strangers: ~3% of people living alone copy the name of someone else --------
    clone = (hsize == 1) & (rng.random(n) < 0.03) & (role == HEAD)
    clone_of = np.full(n, -1)
    for c in COUNTRIES:
        for g in ("M", "F"):
            pool_idx = np.flatnonzero((country == c) & (gender == g) & ~clone)
            cl = np.flatnonzero(clone & (country == c) & (gender == g))
            if len(cl) == 0 or len(pool_idx) == 0:
                continue
            src = pool_idx[rng.integers(0, len(pool_idx), len(cl))]
            clone_of[cl] = src
    cl = np.flatnonzero(clone_of >= 0)
    src = clone_of[cl]
    given[cl] = given[src]
    family[cl] = family[src]
    family_short[cl] = family_short[src]
    surname1[cl] = surname1[src]
    surname2[cl] = surname2[src]
    copy_middle = rng.random(len(cl)) < 0.3
    middle[cl] = np.where(copy_middle, middle[src], middle[cl])
    same_year = rng.random(len(cl)) < 0.35
    year_shift = ((dob[src] - dob[cl]) / 365.25).round().astype(np.int64)
    dob[cl] = np.where(same_year, dob[cl] + (year_shift * 365.25).astype(np.int64), dob[cl])
    # keep day-of-year distinct from the original so the pair differs in full DOB
    dob[cl] = np.where(same_year & (dob[cl] == dob[src]), dob[cl] + 17, dob[cl])
    age = (REF_DAY - dob) / 365.25
    middle = so.where(middle == given, None, middle)

    # addresses: per household, movers have a previous address -----------------------------
    addr = _addresses(rng, pools, hh_country)
    moved_hh = rng.random(n_hh) < 0.15
    prev = _addresses(rng, pools, hh_country)
    same_city = rng.random(n_hh) < 0.5
    prev["city"] = np.where(same_city, addr["city"], prev["city"])
    prev["postcode"] = np.where(
        same_city, _postcodes(rng, pools, addr["city"]), prev["postcode"]
    ).astype(object)
    move_ts = (ts("2016-01-01") + rng.random(n_hh) * (ts("2026-03-01") - ts("2016-01-01"))).astype(
        np.int64
    )
    # same-name strangers in the same city as their namesake (40%)
    same_town = rng.random(len(cl)) < 0.4
    town_src_hh = hh[src]
    cl_hh = hh[cl]
    for key in ("city",):
        addr[key][cl_hh] = np.where(same_town, addr[key][town_src_hh], addr[key][cl_hh])
    addr["postcode"][cl_hh[same_town]] = _postcodes(rng, pools, addr["city"][cl_hh[same_town]])

    # phones ------------------------------------------------------------------------------
    mobile, mobile_al = _mobiles(rng, pools, addr["city"][hh], country)
    mobile = so.where(rng.random(n) < np.where(age < 70, 0.93, 0.7), mobile, None)
    land, land_al = _landlines(rng, pools, addr["city"], hh_country)
    has_land = rng.random(n_hh) < per_country(hh_country, LANDLINE_SHARE, float)
    land = so.where(has_land, land, None)
    prev_land, prev_land_al = _landlines(rng, pools, prev["city"], hh_country)
    prev_land = so.where(has_land & moved_hh, prev_land, None)

    # e-mails -----------------------------------------------------------------------------
    birth_year = (dob / 365.25 + 1970).astype(np.int64)
    has_email = rng.random(n) < np.where(age < 60, 0.96, np.where(age < 75, 0.8, 0.5))
    email = so.cat(
        _email_local(rng, given, family, birth_year), "@", _domains(rng, country, EMAIL_DOMAINS)
    )
    email = _unique_emails(rng, so.where(has_email, email, None))
    work_domains = {c: [(d, 1.0) for d in WORK_DOMAINS[c]] for c in COUNTRIES}
    work = so.cat(
        _email_local(rng, given, family, birth_year, style_bias=3),
        "@",
        _domains(rng, country, work_domains),
    )
    has_work = (rng.random(n) < 0.3) & (age > 21) & (age < 67)
    email2 = _unique_emails(rng, so.where(has_work, work, None))
    old_name = so.where(~so.is_missing(maiden), maiden, family)
    old = so.cat(
        _email_local(rng, given, old_name, birth_year, style_bias=5),
        "@",
        _domains(rng, country, OLD_EMAIL_DOMAINS),
    )
    renamed = ~so.is_missing(maiden) & (rng.random(n) < 0.5)
    has_old = has_email & ((rng.random(n) < 0.18) | renamed)
    old_email = _unique_emails(rng, so.where(has_old, old, None))
    email_change_ts = np.where(
        has_old,
        (ts("2015-01-01") + rng.random(n) * (ts("2025-12-01") - ts("2015-01-01"))).astype(np.int64),
        -1,
    )
    # family mailbox shared by a household (~10% of multi-person households)
    fam_kind = rng.integers(0, 4, n_hh)
    fam_name = so.lower(so.replace(so.fold(hh_name[start]), r"[ '\-]", "", regex=True))
    fam_local = np.select(
        [fam_kind == 0, fam_kind == 1, fam_kind == 2],
        [so.cat(fam_name, "family"), so.cat("the", fam_name, "s"), so.cat(fam_name, ".family")],
        so.cat(fam_name, "home"),
    ).astype(object)
    fam_email = so.cat(fam_local, "@", _domains(rng, hh_country, EMAIL_DOMAINS))
    sizes_hh = np.bincount(hh, minlength=n_hh)
    has_fam = (sizes_hh >= 2) & (rng.random(n_hh) < 0.10)
    fam_email = _unique_emails(rng, so.where(has_fam, fam_email, None))

    # loyalty cards -----------------------------------------------------------------------
    has_card = rng.random(n) < 0.47
    card_nums = rng.choice(10**11, size=int(n * 1.3) + 10, replace=False)
    loyalty = so.cat("4", so.zfill(card_nums[:n], 11))
    old_card = so.cat(
        "4",
        so.zfill(
            card_nums[n : 2 * n]
            if 2 * n <= len(card_nums)
            else rng.choice(10**11, size=n, replace=False),
            11,
        ),
    )
    loyalty = so.where(has_card, loyalty, None)
    replaced = has_card & (rng.random(n) < 0.04)
    old_loyalty = so.where(replaced, old_card, None)
    card_replaced_ts = np.where(
        replaced,
        (ts("2024-01-01") + rng.random(n) * (ts("2026-03-01") - ts("2024-01-01"))).astype(np.int64),
        -1,
    )

    person_id = so.cat("P", so.zfill(np.arange(1, n + 1), 7))
    hh_id = so.cat("H", so.zfill(hh + 1, 7))
    places = pools.places
    cc = per_country(country, CALLING_CODE)
    pid_or_none = so.where(twin_of >= 0, person_id[np.maximum(twin_of, 0)], None)
    return {
        "person_id": person_id,
        "household_id": hh_id,
        "household_role": ROLE_NAMES[role],
        "household_size": hsize,
        "is_twin": twin_of >= 0,
        "twin_id": pid_or_none,
        "parent_id": so.where(parent_of >= 0, person_id[np.maximum(parent_of, 0)], None),
        "same_name_as": so.where(clone_of >= 0, person_id[np.maximum(clone_of, 0)], None),
        "gender": gender,
        "given_name": given,
        "middle_name": middle,
        "family_name": family,
        "family_name_short": family_short,
        "name_suffix": suffix,
        "maiden_name": maiden,
        "marriage_ts": marriage_ts,
        "dob_day": dob,
        "birth_year": birth_year,
        "country": country,
        "language": language,
        "city_idx": addr["city"][hh],
        "city": places.city[addr["city"][hh]],
        "state": places.state[addr["city"][hh]],
        "street": addr["street"][hh],
        "house_number": addr["house_number"][hh],
        "unit": addr["unit"][hh],
        "postcode": addr["postcode"][hh],
        "moved": moved_hh[hh],
        "move_ts": np.where(moved_hh[hh], move_ts[hh], -1),
        "prev_city_idx": prev["city"][hh],
        "prev_city": so.where(moved_hh[hh], places.city[prev["city"][hh]], None),
        "prev_state": so.where(moved_hh[hh], places.state[prev["city"][hh]], None),
        "prev_street": so.where(moved_hh[hh], prev["street"][hh], None),
        "prev_house_number": so.where(moved_hh[hh], prev["house_number"][hh], None),
        "prev_unit": so.where(moved_hh[hh], prev["unit"][hh], None),
        "prev_postcode": so.where(moved_hh[hh], prev["postcode"][hh], None),
        "calling_code": cc,
        "mobile_nsn": mobile,
        "mobile_area_len": mobile_al,
        "landline_nsn": land[hh],
        "landline_area_len": land_al[hh],
        "prev_landline_nsn": prev_land[hh],
        "prev_landline_area_len": prev_land_al[hh],
        "mobile": so.where(so.is_missing(mobile), None, so.cat("+", cc, mobile)),
        "landline": so.where(so.is_missing(land[hh]), None, so.cat("+", cc, land[hh])),
        "email": email,
        "work_email": email2,
        "old_email": old_email,
        "email_change_ts": email_change_ts,
        "family_email": fam_email[hh],
        "loyalty_id": loyalty,
        "old_loyalty_id": old_loyalty,
        "card_replaced_ts": card_replaced_ts,
    }


__all__ = ["DAY", "REF_DAY", "REF_TS", "People", "build_people", "ts"]
