"""Register-shaped sparse sources, generated only on request (``generate(registers=True)``).

Population registers are where a matcher's recall is lost: each source knows only a few
fields, one person has many records spread over decades, and the fields that would link
them are the ones a source does not carry. Two shapes are generated:

- ``electoral_roll``: name and postal address only, one entry per person and canvass
  edition since 1998, each with the address the household had at that time. The
  population's own history (one move since 2016 for 15% of households) is too short for
  that, so :func:`address_history` extends it backwards with earlier homes, all before the
  first record any customer source could hold (2012), so no existing source is contradicted.
- ``benefit_claims``: name, date of birth and national id only, one row per claim. The
  national id is keyed in by a clerk: a digit is sometimes off or two digits swapped.

Neither carries a phone, an e-mail or a sex, and household members share the address and
the family name, so an address-only record of a parent and one of a child differ by the
first name alone. No customer source carries the national id: shops, apps and support
desks do not ask for it, so adding it there would make linking easier than it is.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pyarrow as pa

from udp_spark.generate import noise as nz
from udp_spark.generate import render as rd
from udp_spark.generate import strops as so
from udp_spark.generate.population import (
    DAY,
    REF_TS,
    People,
    _addresses,
    _postcodes,
    ts,
)
from udp_spark.generate.sources import (
    Ctx,
    NameStyle,
    SourceData,
    _shuffled,
    render_dob,
    render_names,
)

ROLL_COLUMNS = [
    "entry_id",
    "edition",
    "first_name",
    "middle_name",
    "surname",
    "address_line",
    "town",
    "postcode",
    "country",
]
CLAIM_COLUMNS = [
    "claim_id",
    "national_id",
    "first_name",
    "last_name",
    "date_of_birth",
    "claimed_on",
]

ROLL_EDITIONS = tuple(range(1998, 2027, 4))  # canvass every four years, 1998 to 2026
ROLL_REGISTERED = 0.70  # people on the roll at all (structural)
ROLL_PER_EDITION = 0.50  # a registered adult appears in a given edition (structural)
CLAIMANTS = 0.40  # people with at least one benefit claim (structural)
ID_TYPO_RATE = 0.02  # claims whose national id has one digit off or two swapped (noise)
DOB_MISSING_RATE = 0.08  # claims with no date of birth (noise)

EARLIEST_KNOWN = ts("2012-01-01")  # first record date of the customer sources (CRM)
HISTORY_FLOOR = ts("1990-01-01")  # no address history is drawn before this
MAX_EARLIER_HOMES = 6
_OFFSET = ts("1900-01-01")  # spell starts are stored relative to this in lookup keys
_KEY_SPAN = 1 << 33  # seconds since 1900 fit below this until the 2170s


@dataclass(frozen=True)
class AddressHistory:
    """Homes of each household over time: one row per spell, sorted by household and start.

    ``start`` of a household's earliest spell is the earliest time its address is known
    (see :meth:`known`). ``end`` is ``REF_TS`` for the current home.
    """

    household: np.ndarray
    start: np.ndarray
    end: np.ndarray
    city_idx: np.ndarray
    street: np.ndarray
    house_number: np.ndarray
    unit: np.ndarray
    postcode: np.ndarray

    def at(self, household: np.ndarray, t: np.ndarray) -> np.ndarray:
        """Spell index (row of this history) holding each ``(household, t)``; the
        household's earliest spell where ``t`` is before it (see :meth:`known`)."""
        keys = self.household * _KEY_SPAN + (self.start - _OFFSET)
        query = household * _KEY_SPAN + (np.asarray(t) - _OFFSET)
        idx = np.searchsorted(keys, query, side="right") - 1
        first = np.searchsorted(self.household, household, side="left")
        return np.maximum(idx, first)

    def known(self, household: np.ndarray, t: np.ndarray) -> np.ndarray:
        """Whether the household's address at ``t`` is known (``t`` is not before its
        earliest spell: an older member may have lived elsewhere before the household)."""
        first = np.searchsorted(self.household, household, side="left")
        return np.asarray(t) >= self.start[first]


def household_index(p: People) -> np.ndarray:
    """0-based household number per person (people are stored household by household)."""
    _, inv = np.unique(p["household_id"], return_inverse=True)
    return np.asarray(inv, dtype=np.int64)


def address_history(ctx: Ctx) -> AddressHistory:
    """Every household's homes: the population's current and previous address, extended
    backwards with earlier homes for decades-long registers.

    The earliest home the population knows (the previous address of movers, else the
    current one) is taken to have started 0-15 years before 2012, so every record of the
    customer sources (2012 onwards) still shows the address it always did. Before that,
    homes lasting 1-20 years (mean 7) are drawn back to 1990 or to the head of household's
    18th birthday; half of the moves stay in the same town.
    """
    p = ctx.people
    rng = ctx.rng("registers:address_history")
    pools = ctx.pools
    hh = household_index(p)
    n_hh = int(hh.max()) + 1
    first = np.flatnonzero(np.r_[True, hh[1:] != hh[:-1]])  # head = first member
    country = p["country"][first]
    moved = p["moved"][first]
    move_ts = p["move_ts"][first]
    head_adult = (p["dob_day"][first] + int(18 * 365.25)) * DAY
    floor = np.maximum(HISTORY_FLOOR, head_adult)

    known_start = EARLIEST_KNOWN - (rng.random(n_hh) * 15 * 365.25 * DAY).astype(np.int64)
    spells: list[dict[str, np.ndarray]] = []
    cur = {
        "household": np.arange(n_hh),
        "start": np.where(moved, move_ts, known_start),
        "end": np.full(n_hh, REF_TS),
        "city_idx": p["city_idx"][first],
        "street": p["street"][first],
        "house_number": p["house_number"][first],
        "unit": p["unit"][first],
        "postcode": p["postcode"][first],
    }
    spells.append(cur)
    mv = np.flatnonzero(moved)
    prev = {
        "household": mv,
        "start": known_start[mv],
        "end": move_ts[mv],
        "city_idx": p["prev_city_idx"][first][mv],
        "street": p["prev_street"][first][mv],
        "house_number": p["prev_house_number"][first][mv],
        "unit": p["prev_unit"][first][mv],
        "postcode": p["prev_postcode"][first][mv],
    }
    spells.append(prev)
    # earlier homes, walking back from the earliest known start
    end = known_start.copy()
    later_city = np.where(moved, p["prev_city_idx"][first], p["city_idx"][first])
    alive = end > floor
    for _ in range(MAX_EARLIER_HOMES):
        idx = np.flatnonzero(alive)
        if len(idx) == 0:
            break
        years = np.clip(rng.exponential(7.0, len(idx)), 1.0, 20.0)
        start = end[idx] - (years * 365.25 * DAY).astype(np.int64)
        addr = _addresses(rng, pools, country[idx])
        same_town = rng.random(len(idx)) < 0.5
        city = np.where(same_town, later_city[idx], addr["city"])
        postcode = np.where(same_town, _postcodes(rng, pools, city), addr["postcode"])
        spells.append(
            {
                "household": idx,
                "start": start,
                "end": end[idx],
                "city_idx": city,
                "street": addr["street"],
                "house_number": addr["house_number"],
                "unit": addr["unit"],
                "postcode": postcode.astype(object),
            }
        )
        end[idx] = start
        later_city[idx] = city
        alive[idx] = start > floor[idx]
    cols = {k: np.concatenate([s[k] for s in spells]) for k in spells[0]}
    order = np.lexsort((cols["start"], cols["household"]))
    return AddressHistory(**{k: v[order] for k, v in cols.items()})


def history_table(p: People, hist: AddressHistory, places_city: np.ndarray,
                  places_state: np.ndarray) -> pa.Table:
    """``truth/address_history.parquet``: every household's homes with their dates."""
    hh = household_index(p)
    first = np.flatnonzero(np.r_[True, hh[1:] != hh[:-1]])
    ts_type = pa.timestamp("us", tz="UTC")
    return pa.table(
        {
            "household_id": pa.array(p["household_id"][first][hist.household], pa.string()),
            "valid_from": pa.array(hist.start * 1_000_000, ts_type),
            "valid_to": pa.array(hist.end * 1_000_000, ts_type),
            "street": pa.array(hist.street, pa.string()),
            "house_number": pa.array(hist.house_number, pa.string()),
            "unit": pa.array(hist.unit, pa.string()),
            "city": pa.array(places_city[hist.city_idx], pa.string()),
            "state": pa.array(places_state[hist.city_idx], pa.string()),
            "postcode": pa.array(hist.postcode, pa.string()),
        }
    )


# -- national ids ---------------------------------------------------------------------------

_DNI_LETTERS = np.array(list("TRWAGMYFPDXBNJZSQVHLCKE"), dtype=object)
_NINO_FIRST = np.array(list("ABCEGHJKLMNOPRSTWXYZ"), dtype=object)
_NINO_SECOND = np.array(list("ABCEGHJKLMNPRSTWXYZ"), dtype=object)


def national_ids(ctx: Ctx) -> np.ndarray:
    """One distinct national id per person in its country's format (US SSN ``123-45-6789``,
    GB NINO ``AB123456C``, DE tax id, FR NIR with its key, ES DNI with its letter).

    Drawn from its own random stream, so the population and every other source stay as
    they are without registers.
    """
    p = ctx.people
    rng = ctx.rng("registers:national_id")
    n = ctx.n
    country = p["country"]
    out = np.empty(n, dtype=object)
    for c in ("US", "GB", "DE", "FR", "ES"):
        idx = np.flatnonzero(country == c)
        k = len(idx)
        if k == 0:
            continue
        if c == "US":
            num = rng.choice(899 * 99 * 9999, size=k, replace=False)
            area = 1 + num // (99 * 9999)
            area = np.where(area == 666, 667, area)
            group = 1 + (num // 9999) % 99
            serial = 1 + num % 9999
            out[idx] = so.cat(so.zfill(area, 3), "-", so.zfill(group, 2), "-", so.zfill(serial, 4))
        elif c == "GB":
            num = rng.choice(10**6 * 20 * 19, size=k, replace=False)
            out[idx] = so.cat(
                _NINO_FIRST[num // (10**6 * 19)],
                _NINO_SECOND[(num // 10**6) % 19],
                so.zfill(num % 10**6, 6),
                np.array(list("ABCD"), dtype=object)[rng.integers(0, 4, k)],
            )
        elif c == "DE":
            num = 10**10 + rng.choice(9 * 10**10, size=k, replace=False)
            out[idx] = so.int_str(num)
        elif c == "FR":
            sex = np.where(p["gender"][idx] == "F", 2, 1)
            dob = p["dob_day"][idx].astype("datetime64[D]")
            yy = (dob.astype("datetime64[Y]").astype(np.int64) + 1970) % 100
            mm = dob.astype("datetime64[M]").astype(np.int64) % 12 + 1
            rest = rng.choice(95 * 10**6, size=k, replace=False)  # department, commune, order
            dept = 1 + rest // 10**6
            body = (
                sex.astype(np.int64) * 10**12 + yy * 10**10 + mm * 10**8
                + dept * 10**6 + rest % 10**6
            )
            key = 97 - body % 97
            out[idx] = so.cat(so.int_str(body), so.zfill(key, 2))
        else:
            num = rng.choice(10**8, size=k, replace=False)
            out[idx] = so.cat(so.zfill(num, 8), _DNI_LETTERS[num % 23])
    return out


def _id_text(rng: np.random.Generator, country: np.ndarray, nid: np.ndarray) -> np.ndarray:
    """National ids as clerks key them: with or without the usual separators."""
    n = len(nid)
    u = rng.random(n)
    plain = so.replace(nid, "[^0-9A-Z]", "", regex=True)
    out = so.where((country == "US") & (u < 0.3), plain, nid)
    gb_spaced = so.replace(nid, r"^([A-Z]{2})(\d\d)(\d\d)(\d\d)([A-D])$", r"\1 \2 \3 \4 \5",
                           regex=True)
    out = so.where((country == "GB") & (u < 0.4), gb_spaced, out)
    fr_spaced = so.replace(
        nid, r"^(\d)(\d\d)(\d\d)(\d\d)(\d{3})(\d{3})(\d\d)$", r"\1 \2 \3 \4 \5 \6 \7", regex=True
    )
    out = so.where((country == "FR") & (u < 0.5), fr_spaced, out)
    de_spaced = so.replace(nid, r"^(\d\d)(\d{3})(\d{3})(\d{3})$", r"\1 \2 \3 \4", regex=True)
    out = so.where((country == "DE") & (u < 0.3), de_spaced, out)
    return so.where((country == "ES") & (u < 0.2), so.replace(nid, r"^(\d{8})", r"\1-",
                                                              regex=True), out)


def id_typos(x: np.ndarray, mask: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """One keying error in each masked id: a digit one off from the one meant, or two
    neighbouring digits swapped (a swap of equal digits becomes a changed digit)."""
    k = int(mask.sum())
    ops = np.where(rng.random(k) < 0.5, 1, 2)
    out = so.apply_subset(x, mask, nz.digit_typo, ops, rng.random(k), rng.integers(0, 9, k))
    same = mask & (out == x)
    k2 = int(same.sum())
    return so.apply_subset(out, same, nz.digit_typo, np.full(k2, 2), rng.random(k2),
                           rng.integers(0, 9, k2))


# -- electoral roll -------------------------------------------------------------------------


def build_roll(ctx: Ctx, hist: AddressHistory) -> SourceData:
    """Electoral-roll entries: name and the address held at each canvass; nothing else."""
    p = ctx.people
    rng = ctx.rng("electoral_roll")
    noise = ctx.noise("electoral_roll")
    registered = rng.random(ctx.n) < ROLL_REGISTERED
    pid_parts, t_parts, year_parts = [], [], []
    for edition in ROLL_EDITIONS:
        canvass = ts(f"{edition}-03-01")
        adult = (canvass / DAY - p["dob_day"]) / 365.25 >= 18
        on = np.flatnonzero(registered & adult & (rng.random(ctx.n) < ROLL_PER_EDITION))
        pid_parts.append(on)
        t_parts.append(np.full(len(on), canvass, dtype=np.int64))
        year_parts.append(np.full(len(on), edition, dtype=np.int64))
    pid = np.concatenate(pid_parts)
    t = np.concatenate(t_parts) + rng.integers(0, 60 * DAY, len(pid))
    year = np.concatenate(year_parts)
    # where nobody knows the person's address at that time, they are left off that edition
    known = hist.known(household_index(p)[pid], t)
    pid, t, year = pid[known], t[known], year[known]
    n = len(pid)
    c = p["country"][pid]
    first, last = render_names(
        ctx,
        "electoral_roll",
        pid,
        t,
        NameStyle(nickname=0.05, typo=0.025, case=0.15, swap=0.02, ascii_share=0.2),
    )
    mid = p["middle_name"][pid]
    mk = rng.random(n)
    middle = so.where(
        mk < 0.4, mid, so.where(mk < 0.75, nz.initial(mid, rng.random(n) < 0.5), None)
    )
    middle = nz.typos(middle, noise.mask(n, 0.01) & (so.length(middle) > 2), rng)
    home = hist.at(household_index(p)[pid], t)
    street = rd.street_line(rng, c, hist.street[home], hist.house_number[home], hist.unit[home])
    street = nz.typos(street, noise.mask(n, 0.02), rng)
    street = nz.case_noise(street, noise.mask(n, 0.10), rng)
    street = nz.space_noise(street, noise.mask(n, 0.02), rng)
    street = nz.blank(street, noise.mask(n, 0.005))
    town = rd.city_text(rng, ctx.pools, hist.city_idx[home], 0.1)
    town = nz.typos(town, noise.mask(n, 0.015), rng)
    town = nz.case_noise(town, noise.mask(n, 0.10), rng)
    postcode = rd.postcode_text(rng, c, hist.postcode[home], gb_compact_share=0.1)
    postcode = nz.digit_typos(postcode, noise.mask(n, 0.01), rng)
    postcode = nz.blank(postcode, noise.mask(n, 0.04))
    key = rd.unique_codes(rng, n, 9, "digits", prefix="ER")
    cols = {
        "entry_id": key,
        "edition": so.int_str(year),
        "first_name": first,
        "middle_name": middle,
        "surname": last,
        "address_line": street,
        "town": town,
        "postcode": postcode,
        "country": c,
    }
    return _shuffled(rng, cols, key, pid)


# -- benefit claims -------------------------------------------------------------------------


def build_claims(ctx: Ctx) -> SourceData:
    """Benefit claims: name, date of birth and national id per claim; nothing else."""
    p = ctx.people
    rng = ctx.rng("benefit_claims")
    noise = ctx.noise("benefit_claims")
    claimant = np.flatnonzero(rng.random(ctx.n) < CLAIMANTS)
    claims = 1 + np.minimum(rng.poisson(1.2, len(claimant)), 5)
    pid = np.repeat(claimant, claims)
    n = len(pid)
    lo = np.maximum(ts("1995-01-01"), (p["dob_day"][pid] + int(18 * 365.25)) * DAY)
    lo = np.minimum(lo, REF_TS - 60 * DAY)
    t = lo + ((REF_TS - DAY - lo) * rng.random(n)).astype(np.int64)
    first, last = render_names(
        ctx, "benefit_claims", pid, t, NameStyle(nickname=0.03, typo=0.02, case=0.05)
    )
    dob = render_dob(
        ctx,
        "benefit_claims",
        p["dob_day"][pid],
        [("yyyy-MM-dd", 70), ("dd/MM/yyyy", 30)],
        present=1.0,
        unparseable=0.003,
    )
    dob = nz.blank(dob, noise.mask(n, DOB_MISSING_RATE))
    nid = _id_text(rng, p["country"][pid], p["national_id"][pid])
    nid = id_typos(nid, noise.mask(n, ID_TYPO_RATE), rng)
    key = rd.unique_codes(rng, n, 10, "digits", prefix="BC")
    cols = {
        "claim_id": key,
        "national_id": nid,
        "first_name": first,
        "last_name": last,
        "date_of_birth": dob,
        "claimed_on": rd.format_day(t // DAY, "yyyy-MM-dd"),
    }
    return _shuffled(rng, cols, key, pid)


__all__ = [
    "CLAIM_COLUMNS",
    "ID_TYPO_RATE",
    "ROLL_COLUMNS",
    "AddressHistory",
    "address_history",
    "build_claims",
    "build_roll",
    "history_table",
    "national_ids",
]
