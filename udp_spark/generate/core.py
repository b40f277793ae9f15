"""Entry point of the synthetic multi-source customer-data generator.

Example::

    from udp_spark.generate import generate
    report = generate("data/synth", people=20_000, seed=42, noise=1.0)
    print(report.source_rows, report.files["crm/contacts.csv"])
"""

from __future__ import annotations

import logging
import shutil
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pyarrow as pa

from udp_spark.generate import strops as so
from udp_spark.generate.noise import MAX_NOISE
from udp_spark.generate.pools import load_pools
from udp_spark.generate.population import DAY, build_people
from udp_spark.generate.registers import (
    CLAIM_COLUMNS,
    ROLL_COLUMNS,
    address_history,
    build_claims,
    build_roll,
    history_table,
    national_ids,
)
from udp_spark.generate.sources import (
    CRM_COLUMNS,
    EMAIL_COLUMNS,
    SUPPORT_COLUMNS,
    Ctx,
    build_app,
    build_crm,
    build_email,
    build_pos,
    build_support,
    build_webshop,
)
from udp_spark.generate.writers import (
    MALFORMED_KINDS,
    write_csv,
    write_jsonl,
    write_parquet,
    write_parquet_parts,
)

log = logging.getLogger(__name__)

SOURCE_FILES = {
    "crm": "crm/contacts.csv",
    "webshop_customers": "webshop/customers.jsonl",
    "webshop_orders": "webshop/orders.jsonl",
    "app_users": "app/users.jsonl",
    "app_events": "app/events.jsonl",
    "support_tickets": "support/tickets.csv",
    "email_subscribers": "email/subscribers.csv",
    "pos_transactions": "pos/transactions.parquet",
}
TRUTH_SOURCES = (
    "crm",
    "webshop_customers",
    "app_users",
    "support_tickets",
    "email_subscribers",
    "pos_transactions",
)
REGISTER_FILES = {
    "electoral_roll": "registers/electoral_roll.csv",
    "benefit_claims": "registers/benefit_claims.csv",
}
POS_PARTS = 4


class GenerateError(ValueError):
    """Invalid arguments to :func:`generate`."""


@dataclass(frozen=True)
class GenerateReport:
    """What :func:`generate` wrote.

    Attributes:
        people: size of the true population.
        files: relative file path -> rows written (data lines for CSV/JSONL, rows for
            Parquet; ``pos/transactions.parquet`` is a folder of part files).
        party_records: rows that are party records (crm + web-shop customers + app users +
            distinct support requesters + e-mail subscribers + distinct POS loyalty ids,
            plus electoral-roll entries and benefit claims when registers were asked for).
        source_rows: rows in all source files (everything except ``truth/``).
        seconds: wall-clock duration.
    """

    people: int
    files: dict[str, int]
    party_records: int
    source_rows: int
    seconds: float


def generate(
    out_dir: str | Path,
    people: int = 20_000,
    seed: int = 42,
    noise: float = 1.0,
    *,
    registers: bool = False,
) -> GenerateReport:
    """Generate the multi-source synthetic customer data set under ``out_dir``.

    Args:
        out_dir: target folder; the source sub-folders and ``truth/`` inside it are replaced.
        people: size of the true population (each person appears in a random subset of
            sources, sometimes several times in one).
        seed: random seed; the same arguments give byte-identical files.
        noise: multiplier on every data-quality problem probability (0 = clean, 1 = the
            default realistic level, 2 = twice as noisy; clipped to [0, 10]). Life events
            (moves, marriages), households and per-source conventions are not noise.
        registers: also write the register-shaped sources of :mod:`.registers` under
            ``registers/`` (an electoral roll: name and address per canvass since 1998; benefit
            claims: name, birth date and national id), their truth rows, the national id in
            ``truth/people.parquet`` and ``truth/address_history.parquet``. Off by default,
            and the other files are the same bytes either way (own random streams).

    Returns:
        A :class:`GenerateReport` with the row count of every file.

    Raises:
        GenerateError: if ``people`` < 1 or ``noise`` is negative / not a number.

    Example::

        report = generate("/tmp/synth", people=2_000, seed=7)
        assert report.files["truth/records.csv"] == report.party_records
    """
    if not isinstance(people, int | np.integer) or people < 1:
        raise GenerateError(f"people must be a positive integer, got {people!r}")
    if not np.isfinite(noise) or noise < 0:
        raise GenerateError(f"noise must be a number >= 0 (0 = clean, 1 = default), got {noise!r}")
    if noise > MAX_NOISE:
        log.warning("noise %.2f clipped to %.1f", noise, MAX_NOISE)
    started = time.perf_counter()
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    for sub in ("crm", "webshop", "app", "support", "email", "pos", "registers", "truth"):
        if (out / sub).exists():
            shutil.rmtree(out / sub)

    pools = load_pools()
    rng = np.random.default_rng(seed)
    person = build_people(int(people), rng, pools)
    log.info("population of %d built in %.1fs", people, time.perf_counter() - started)
    ctx = Ctx(people=person, pools=pools, seed=int(seed), noise_level=float(noise))

    files: dict[str, int] = {}
    truth: list[tuple[str, np.ndarray | None, np.ndarray | None]] = []
    malformed_rows: list[tuple[str, np.ndarray, np.ndarray, np.ndarray]] = []

    crm = build_crm(ctx)
    files[SOURCE_FILES["crm"]] = write_csv(
        out / SOURCE_FILES["crm"], CRM_COLUMNS, crm.columns, crm.malformed
    )
    truth.append(("crm", crm.truth_keys, crm.truth_pids))
    if crm.malformed is not None:
        malformed_rows.append(
            (
                SOURCE_FILES["crm"],
                crm.malformed.rows,
                crm.columns["contact_id"][crm.malformed.rows],
                crm.malformed.kinds,
            )
        )
    _step("crm", started)

    customers, orders = build_webshop(ctx)
    files[SOURCE_FILES["webshop_customers"]] = write_jsonl(
        out / SOURCE_FILES["webshop_customers"], customers.lines
    )
    files[SOURCE_FILES["webshop_orders"]] = write_jsonl(
        out / SOURCE_FILES["webshop_orders"], orders.lines
    )
    truth.append(("webshop_customers", customers.truth_keys, customers.truth_pids))
    _step("webshop", started)

    users, events = build_app(ctx)
    files[SOURCE_FILES["app_users"]] = write_jsonl(out / SOURCE_FILES["app_users"], users.lines)
    files[SOURCE_FILES["app_events"]] = write_jsonl(out / SOURCE_FILES["app_events"], events.lines)
    truth.append(("app_users", users.truth_keys, users.truth_pids))
    _step("app", started)

    support = build_support(ctx)
    files[SOURCE_FILES["support_tickets"]] = write_csv(
        out / SOURCE_FILES["support_tickets"], SUPPORT_COLUMNS, support.columns, support.malformed
    )
    truth.append(("support_tickets", support.truth_keys, support.truth_pids))
    if support.malformed is not None:
        malformed_rows.append(
            (
                SOURCE_FILES["support_tickets"],
                support.malformed.rows,
                support.columns["requester_id"][support.malformed.rows],
                support.malformed.kinds,
            )
        )
    _step("support", started)

    email = build_email(ctx)
    files[SOURCE_FILES["email_subscribers"]] = write_csv(
        out / SOURCE_FILES["email_subscribers"], EMAIL_COLUMNS, email.columns
    )
    truth.append(("email_subscribers", email.truth_keys, email.truth_pids))
    _step("email", started)

    pos = build_pos(ctx)
    assert pos.table is not None
    files[SOURCE_FILES["pos_transactions"]] = write_parquet_parts(
        out / SOURCE_FILES["pos_transactions"], pos.table, POS_PARTS
    )
    truth.append(("pos_transactions", pos.truth_keys, pos.truth_pids))
    _step("pos", started)

    if registers:
        person["national_id"] = national_ids(ctx)
        history = address_history(ctx)
        roll = build_roll(ctx, history)
        files[REGISTER_FILES["electoral_roll"]] = write_csv(
            out / REGISTER_FILES["electoral_roll"], ROLL_COLUMNS, roll.columns
        )
        truth.append(("electoral_roll", roll.truth_keys, roll.truth_pids))
        claims = build_claims(ctx)
        files[REGISTER_FILES["benefit_claims"]] = write_csv(
            out / REGISTER_FILES["benefit_claims"], CLAIM_COLUMNS, claims.columns
        )
        truth.append(("benefit_claims", claims.truth_keys, claims.truth_pids))
        files["truth/address_history.parquet"] = write_parquet(
            out / "truth/address_history.parquet",
            history_table(person, history, pools.places.city, pools.places.state),
        )
        _step("registers", started)

    source_rows = sum(files.values())
    pid_text = person["person_id"]
    if any(k is None or p is None for _, k, p in truth):
        raise RuntimeError("a source produced no truth rows")
    src = np.concatenate([np.full(len(k), s, dtype=object) for s, k, _ in truth if k is not None])
    keys = np.concatenate([k for _, k, _ in truth if k is not None])
    pids = np.concatenate([pid_text[p] for _, _, p in truth if p is not None])
    party_records = len(keys)
    files["truth/records.csv"] = write_csv(
        out / "truth/records.csv",
        ["source", "source_key", "person_id"],
        {"source": src, "source_key": keys, "person_id": pids},
    )
    files["truth/people.parquet"] = write_parquet(
        out / "truth/people.parquet", people_table(person)
    )
    files["truth/malformed_lines.csv"] = write_csv(
        out / "truth/malformed_lines.csv",
        ["file", "line_number", "source_key", "kind"],
        {
            "file": np.concatenate(
                [np.full(len(r), f, dtype=object) for f, r, _, _ in malformed_rows]
            ),
            # line numbers are 1-based and count the header line
            "line_number": np.concatenate([so.int_str(r + 2) for _, r, _, _ in malformed_rows]),
            "source_key": np.concatenate([k for _, _, k, _ in malformed_rows]),
            "kind": np.concatenate(
                [np.array(MALFORMED_KINDS, dtype=object)[kd] for _, _, _, kd in malformed_rows]
            ),
        },
    )
    seconds = time.perf_counter() - started
    log.info(
        "generated %d source rows (%d party records) for %d people in %.1fs",
        source_rows,
        party_records,
        people,
        seconds,
    )
    return GenerateReport(
        people=int(people),
        files=files,
        party_records=party_records,
        source_rows=source_rows,
        seconds=seconds,
    )


def _step(name: str, started: float) -> None:
    log.info("%s written after %.1fs", name, time.perf_counter() - started)


def _ts_col(seconds: np.ndarray) -> pa.Array:
    return pa.array(
        np.where(seconds >= 0, seconds * 1_000_000, 0),
        pa.timestamp("us", tz="UTC"),
        mask=seconds < 0,
    )


def people_table(p: dict[str, np.ndarray]) -> pa.Table:
    """The truth person table (one row per person) for ``truth/people.parquet``."""
    s = pa.string()
    table = pa.table(
        {
            "person_id": pa.array(p["person_id"], s),
            "household_id": pa.array(p["household_id"], s),
            "household_role": pa.array(p["household_role"], s),
            "household_size": pa.array(p["household_size"], pa.int32()),
            "is_twin": pa.array(p["is_twin"], pa.bool_()),
            "twin_id": pa.array(p["twin_id"], s),
            "parent_id": pa.array(p["parent_id"], s),
            "same_name_as": pa.array(p["same_name_as"], s),
            "gender": pa.array(p["gender"], s),
            "given_name": pa.array(p["given_name"], s),
            "middle_name": pa.array(p["middle_name"], s),
            "family_name": pa.array(p["family_name"], s),
            "family_name_short": pa.array(p["family_name_short"], s),
            "name_suffix": pa.array(p["name_suffix"], s),
            "maiden_name": pa.array(p["maiden_name"], s),
            "marriage_date": _ts_col(p["marriage_ts"]).cast(pa.timestamp("us", tz="UTC")),
            "dob": pa.array(p["dob_day"].astype(np.int32), pa.date32()),
            "country": pa.array(p["country"], s),
            "street": pa.array(p["street"], s),
            "house_number": pa.array(p["house_number"], s),
            "unit": pa.array(p["unit"], s),
            "city": pa.array(p["city"], s),
            "state": pa.array(p["state"], s),
            "postcode": pa.array(p["postcode"], s),
            "moved_at": _ts_col(p["move_ts"]),
            "prev_street": pa.array(p["prev_street"], s),
            "prev_house_number": pa.array(p["prev_house_number"], s),
            "prev_unit": pa.array(p["prev_unit"], s),
            "prev_city": pa.array(p["prev_city"], s),
            "prev_state": pa.array(p["prev_state"], s),
            "prev_postcode": pa.array(p["prev_postcode"], s),
            "mobile": pa.array(p["mobile"], s),
            "landline": pa.array(p["landline"], s),
            "prev_landline": pa.array(
                so.where(
                    so.is_missing(p["prev_landline_nsn"]),
                    None,
                    so.cat(
                        "+",
                        p["calling_code"],
                        so.where(so.is_missing(p["prev_landline_nsn"]), "", p["prev_landline_nsn"]),
                    ),
                ),
                s,
            ),
            "email": pa.array(p["email"], s),
            "work_email": pa.array(p["work_email"], s),
            "old_email": pa.array(p["old_email"], s),
            "email_changed_at": _ts_col(p["email_change_ts"]),
            "family_email": pa.array(p["family_email"], s),
            "loyalty_id": pa.array(p["loyalty_id"], s),
            "old_loyalty_id": pa.array(p["old_loyalty_id"], s),
            "card_replaced_at": _ts_col(p["card_replaced_ts"]),
        }
    )
    if "national_id" in p:  # only drawn for the register sources
        table = table.append_column("national_id", pa.array(p["national_id"], s))
    return table


__all__ = [
    "DAY",
    "REGISTER_FILES",
    "SOURCE_FILES",
    "TRUTH_SOURCES",
    "GenerateError",
    "GenerateReport",
    "generate",
    "people_table",
]
