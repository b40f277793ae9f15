"""Tests of the synthetic multi-source generator (no Spark)."""

from __future__ import annotations

import contextlib
import csv
import json
import re
from pathlib import Path

import numpy as np
import pandas as pd
import phonenumbers
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from udp_spark.generate import GenerateError, GenerateReport, generate
from udp_spark.generate.strops import german_fold, strip_accents

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
CUSTOMER_KEYS = {
    "customer_id",
    "email",
    "name",
    "phone",
    "shipping_address",
    "date_of_birth",
    "loyalty_id",
    "created_at",
    "updated_at",
    "marketing_opt_in",
}
ORDER_KEYS = {
    "order_id",
    "customer_id",
    "ordered_at",
    "total",
    "currency",
    "status",
    "items",
    "channel",
}
USER_KEYS = {
    "user_id",
    "display_name",
    "email",
    "phone",
    "country",
    "birth_year",
    "signup_ts",
    "last_active_ts",
}
EVENT_KEYS = {"event_id", "user_id", "event_type", "ts", "platform", "amount"}
POS_COLUMNS = [
    "txn_id",
    "store_id",
    "loyalty_id",
    "card_holder",
    "phone",
    "postcode",
    "amount",
    "currency",
    "txn_ts",
    "payment_method",
]
EMAIL_RE = re.compile(r"^[^@\s]+@[^@\s]+\.[a-zA-Z]{2,}$")


# -- fixtures -----------------------------------------------------------------------------


@pytest.fixture(scope="module")
def default(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, GenerateReport]:
    out = tmp_path_factory.mktemp("default")
    return out, generate(out, people=5000, seed=42, noise=1.0)


@pytest.fixture(scope="module")
def small(tmp_path_factory: pytest.TempPathFactory) -> dict[str, tuple[Path, GenerateReport]]:
    runs = {}
    for name, seed, noise in (
        ("a", 7, 1.0),
        ("b", 7, 1.0),
        ("c", 8, 1.0),
        ("clean", 7, 0.0),
        ("noisy", 7, 2.0),
    ):
        out = tmp_path_factory.mktemp(name)
        runs[name] = (out, generate(out, people=2000, seed=seed, noise=noise))
    return runs


# -- helpers ------------------------------------------------------------------------------


def read_csv_lines(path: Path) -> tuple[list[str], list[list[str]], list[str]]:
    """Parse a CSV line by line (as Spark does without multiLine): header, good rows, bad lines.

    A line is bad when it does not split into exactly as many fields as the header.
    """
    lines = path.read_text(encoding="utf-8").split("\n")
    header = lines[0].split(",")
    good, bad = [], []
    for line in lines[1:]:
        if not line:
            continue
        fields = next(csv.reader([line]))
        if len(fields) == len(header) and line.count('"') % 2 == 0 and not _stray_quote(line):
            good.append(fields)
        else:
            bad.append(line)
    return header, good, bad


def _stray_quote(line: str) -> bool:
    # a quote that neither opens/closes a field nor is doubled inside one
    return re.search(r'[^,"]"[^,"]', line.replace('""', "")) is not None


def csv_frame(path: Path) -> pd.DataFrame:
    header, good, _ = read_csv_lines(path)
    return pd.DataFrame(good, columns=header).replace("", np.nan)


def jsonl(path: Path) -> list[dict]:
    return [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines()]


def truth(out: Path) -> pd.DataFrame:
    return pd.read_csv(out / "truth/records.csv", dtype=str, keep_default_na=False)


def people(out: Path) -> pd.DataFrame:
    return pq.read_table(out / "truth/people.parquet").to_pandas()


def all_files(out: Path) -> dict[str, bytes]:
    return {str(p.relative_to(out)): p.read_bytes() for p in sorted(out.rglob("*")) if p.is_file()}


def norm(s: object) -> str | None:
    if not isinstance(s, str):
        return None
    return re.sub(r"\s+", " ", strip_accents(s)).strip().lower()


def source_keys(out: Path) -> dict[str, set[str]]:
    """Party keys present in each source file (tolerant of malformed CSV lines)."""
    crm_lines = (out / "crm/contacts.csv").read_text(encoding="utf-8").split("\n")[1:]
    sup_lines = (out / "support/tickets.csv").read_text(encoding="utf-8").split("\n")[1:]
    pos = pq.read_table(out / "pos/transactions.parquet").column("loyalty_id").to_pylist()
    return {
        "crm": {ln.split(",", 1)[0] for ln in crm_lines if ln},
        "webshop_customers": {r["customer_id"] for r in jsonl(out / "webshop/customers.jsonl")},
        "app_users": {r["user_id"] for r in jsonl(out / "app/users.jsonl")},
        "support_tickets": {ln.split(",", 2)[1] for ln in sup_lines if ln},
        "email_subscribers": set(csv_frame(out / "email/subscribers.csv").subscriber_id),
        "pos_transactions": {x for x in pos if x is not None},
    }


# -- determinism and report ---------------------------------------------------------------


def test_same_seed_gives_identical_bytes(small: dict) -> None:
    a, b = all_files(small["a"][0]), all_files(small["b"][0])
    assert sorted(a) == sorted(b)
    assert len(a) >= 13
    for name in a:
        assert a[name] == b[name], name


def test_different_seed_gives_different_data(small: dict) -> None:
    a, c = all_files(small["a"][0]), all_files(small["c"][0])
    for name in ("crm/contacts.csv", "webshop/customers.jsonl", "truth/records.csv"):
        assert a[name] != c[name]


def test_report_matches_files(default: tuple[Path, GenerateReport]) -> None:
    out, rep = default
    assert rep.people == 5000
    for rel in (
        "crm/contacts.csv",
        "support/tickets.csv",
        "email/subscribers.csv",
        "truth/records.csv",
    ):
        lines = (out / rel).read_text(encoding="utf-8").split("\n")
        assert rep.files[rel] == len([x for x in lines[1:] if x]), rel
    for rel in (
        "webshop/customers.jsonl",
        "webshop/orders.jsonl",
        "app/users.jsonl",
        "app/events.jsonl",
    ):
        assert rep.files[rel] == len((out / rel).read_text(encoding="utf-8").splitlines()), rel
    pos = pq.read_table(out / "pos/transactions.parquet")
    assert rep.files["pos/transactions.parquet"] == pos.num_rows
    assert len(list((out / "pos/transactions.parquet").glob("part-*.parquet"))) >= 2
    assert rep.party_records == rep.files["truth/records.csv"]
    assert rep.source_rows == sum(v for k, v in rep.files.items() if not k.startswith("truth/"))
    assert rep.seconds > 0
    with pytest.raises(AttributeError):
        rep.people = 1  # type: ignore[misc]


def test_party_records_definition(default: tuple[Path, GenerateReport]) -> None:
    out, rep = default
    pos = pq.read_table(out / "pos/transactions.parquet").column("loyalty_id")
    expected = (
        rep.files["crm/contacts.csv"]
        + rep.files["webshop/customers.jsonl"]
        + rep.files["app/users.jsonl"]
        + len(source_keys(out)["support_tickets"])
        + rep.files["email/subscribers.csv"]
        + len(set(pos.drop_null().to_pylist()))
    )
    assert rep.party_records == expected


def test_invalid_arguments(tmp_path: Path) -> None:
    with pytest.raises(GenerateError, match="people"):
        generate(tmp_path, people=0)
    with pytest.raises(GenerateError, match="noise"):
        generate(tmp_path, people=10, noise=-1)


# -- truth --------------------------------------------------------------------------------


def test_truth_and_sources_agree(default: tuple[Path, GenerateReport]) -> None:
    out, _ = default
    tr = truth(out)
    keys = source_keys(out)
    assert set(tr.source) == set(keys)
    for source, present in keys.items():
        t = set(tr.loc[tr.source == source, "source_key"])
        assert t == present, source  # every truth row exists and every party key has truth
        assert tr.loc[tr.source == source, "source_key"].is_unique, source
    assert set(tr.person_id) <= set(people(out).person_id)


def test_source_keys_do_not_encode_person(default: tuple[Path, GenerateReport]) -> None:
    out, _ = default
    tr = truth(out)
    ids = set(tr.person_id)
    assert not set(tr.source_key) & ids
    assert not any(
        pid in key or pid[1:] in key for key, pid in zip(tr.source_key, tr.person_id, strict=True)
    )
    # neither key order nor file order follows person order
    crm = tr[tr.source == "crm"].reset_index(drop=True)
    person_no = crm.person_id.str[1:].astype(int)
    assert abs(np.corrcoef(person_no, crm.source_key.rank())[0, 1]) < 0.1
    _, rows, _ = read_csv_lines(out / "crm/contacts.csv")
    file_order = pd.Series(range(len(rows)), index=[r[0] for r in rows])
    pos_in_file = crm.source_key.map(file_order).dropna()
    assert abs(np.corrcoef(person_no[pos_in_file.index], pos_in_file)[0, 1]) < 0.1


# -- layout -------------------------------------------------------------------------------


def test_columns_of_every_file(default: tuple[Path, GenerateReport]) -> None:
    out, _ = default
    assert read_csv_lines(out / "crm/contacts.csv")[0] == CRM_COLUMNS
    assert read_csv_lines(out / "support/tickets.csv")[0] == SUPPORT_COLUMNS
    assert read_csv_lines(out / "email/subscribers.csv")[0] == EMAIL_COLUMNS
    customers = jsonl(out / "webshop/customers.jsonl")
    assert all(set(r) >= CUSTOMER_KEYS for r in customers)
    assert all(set(r["name"]) == {"first", "last"} for r in customers)
    assert all(
        r["shipping_address"] is None
        or set(r["shipping_address"]) == {"line1", "city", "postcode", "country"}
        for r in customers
    )
    extra = [r for r in customers if set(r) - CUSTOMER_KEYS]
    assert 0 < len(extra) < 0.05 * len(customers)  # a few lines carry an unexpected key
    assert all(set(r) == ORDER_KEYS for r in jsonl(out / "webshop/orders.jsonl"))
    assert all(set(r) == USER_KEYS for r in jsonl(out / "app/users.jsonl"))
    assert all(set(r) == EVENT_KEYS for r in jsonl(out / "app/events.jsonl"))
    schema = pq.read_schema(next((out / "pos/transactions.parquet").glob("*.parquet")))
    assert schema.names == POS_COLUMNS
    assert schema.field("txn_ts").type == pa.timestamp("us", tz="UTC")
    assert schema.field("amount").type == pa.float64()
    assert pq.read_schema(out / "truth/people.parquet").names[:3] == [
        "person_id",
        "household_id",
        "household_role",
    ]


def test_value_formats(default: tuple[Path, GenerateReport]) -> None:
    out, _ = default
    crm = csv_frame(out / "crm/contacts.csv")
    bd = crm.birth_date.dropna()
    us_style = bd.str.fullmatch(r"\d\d/\d\d/\d{4}").mean()
    iso = bd.str.fullmatch(r"\d{4}-\d\d-\d\d").mean()
    assert us_style > 0.6 and 0.05 < iso < 0.35 and us_style + iso < 1.0  # a few unparseable
    assert crm.created_at.str.fullmatch(r"\d{4}-\d\d-\d\d \d\d:\d\d:\d\d").all()
    assert (crm.created_at <= crm.last_modified).all()
    assert set(crm.gender.dropna()) <= {"M", "F", "Male", "Female", "male", "female"}
    assert {"US", "USA", "United States", "Deutschland", "UK"} <= set(crm.country.dropna())
    for r in jsonl(out / "webshop/customers.jsonl")[:500]:
        assert re.fullmatch(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ", r["created_at"])
        assert r["created_at"] <= r["updated_at"]
        assert r["date_of_birth"] is None or re.fullmatch(r"\d{4}-\d\d-\d\d", r["date_of_birth"])
        assert isinstance(r["marketing_opt_in"], bool)
    orders = jsonl(out / "webshop/orders.jsonl")
    assert {o["status"] for o in orders} == {"completed", "cancelled", "returned"}
    assert {o["currency"] for o in orders} == {"USD", "EUR", "GBP"}
    known = {r["customer_id"] for r in jsonl(out / "webshop/customers.jsonl")}
    orphans = sum(o["customer_id"] not in known for o in orders)
    assert 0 < orphans < 0.02 * len(orders)
    users = jsonl(out / "app/users.jsonl")
    assert all(
        isinstance(u["signup_ts"], int) and u["signup_ts"] <= u["last_active_ts"] for u in users
    )
    assert any(str(u["phone"]).startswith("+") for u in users)
    events = jsonl(out / "app/events.jsonl")
    assert all((e["amount"] is None) == (e["event_type"] != "purchase") for e in events)
    sup = csv_frame(out / "support/tickets.csv")
    assert sup.created_at.str.fullmatch(r"\d\d/\d\d/\d{4} \d\d:\d\d").all()
    assert set(sup.status) == {"open", "pending", "solved", "closed"}
    assert sup.requester_id.value_counts().max() > 1  # several tickets per requester
    assert sup.requester_name.str.contains(", ", regex=False).any()
    em = csv_frame(out / "email/subscribers.csv")
    assert em.opt_in_at.dropna().str.fullmatch(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d").all()
    unsub = em[em.opt_in_status == "unsubscribed"]
    assert unsub.opt_out_at.notna().all() and (unsub.opt_in_at <= unsub.opt_out_at).all()
    assert em[em.opt_in_status != "unsubscribed"].opt_out_at.isna().all()
    assert em.first_name.isna().mean() > 0.4
    sent, opened = em.emails_sent.astype(int), em.emails_opened.astype(int)
    assert (opened <= sent).all() and (em.emails_clicked.astype(int) <= opened).all()


def test_pos_sparsity(default: tuple[Path, GenerateReport]) -> None:
    out, _ = default
    pos = pq.read_table(out / "pos/transactions.parquet").to_pandas()
    nulls = pos.isna().mean()
    assert 0.28 < nulls.loyalty_id < 0.42
    assert 0.5 < nulls.card_holder < 0.75
    assert 0.6 < nulls.phone < 0.8
    assert pos.loyalty_id.value_counts().max() > 3  # several transactions per card
    assert pos.phone.value_counts().iloc[0] > 20  # a placeholder shared by many rows


# -- realism ------------------------------------------------------------------------------


def test_hard_negatives(default: tuple[Path, GenerateReport]) -> None:
    out, _ = default
    ppl = people(out)
    assert 0.3 < (ppl.household_size > 1).mean() < 0.5
    twins = ppl[ppl.is_twin].merge(ppl, left_on="twin_id", right_on="person_id")
    assert len(twins) > 20
    assert (twins.dob_x == twins.dob_y).all()
    assert (twins.family_name_x == twins.family_name_y).all()
    assert (twins.household_id_x == twins.household_id_y).all()
    assert (twins.given_name_x != twins.given_name_y).all()
    namesakes = ppl.groupby(["given_name", "family_name"]).person_id.nunique()
    assert (namesakes > 1).sum() > 50
    same_city = ppl.groupby(["given_name", "family_name", "city"]).person_id.nunique()
    assert (same_city > 1).sum() > 5
    year = pd.to_datetime(ppl.dob).dt.year
    same_year = ppl.assign(y=year).groupby(["given_name", "family_name", "y"]).person_id.nunique()
    assert (same_year > 1).sum() > 5
    jr = ppl[ppl.parent_id.notna()].merge(ppl, left_on="parent_id", right_on="person_id")
    assert len(jr) > 5 and (jr.given_name_x == jr.given_name_y).all()
    assert (ppl.family_email.value_counts() > 1).sum() > 10
    assert ppl.maiden_name.notna().sum() > 50 and ppl.moved_at.notna().mean() > 0.1
    # the same address on CRM records of different people (households)
    crm = csv_frame(out / "crm/contacts.csv").merge(
        truth(out), left_on="contact_id", right_on="source_key"
    )
    shared = (
        crm.dropna(subset=["street", "postal_code"])
        .groupby(["street", "postal_code"])
        .person_id.nunique()
    )
    assert (shared > 1).sum() > 10
    # and the same person more than once in one source
    tr = truth(out)
    dup = tr.groupby(["source", "person_id"]).size()
    assert (dup.loc["crm"] > 1).sum() > 20 and (dup.loc["webshop_customers"] > 1).sum() > 20
    assert (tr.groupby("person_id").source.nunique() == 1).sum() > 100


def test_countries_and_non_ascii(default: tuple[Path, GenerateReport]) -> None:
    out, _ = default
    ppl = people(out)
    share = ppl.country.value_counts(normalize=True)
    assert share.index[0] == "US" and 0.38 < share["US"] < 0.52 and share["ES"] > 0.04
    names = set(ppl.given_name) | set(ppl.family_name)
    assert any(re.search(r"[^\x00-\x7f]", n) for n in names)
    top = ppl[ppl.country == "US"].family_name.value_counts()
    assert top.iloc[0] > 3 * top.iloc[50]  # Zipf-like: common names repeat a lot


def test_malformed_and_bad_values_at_default_noise(default: tuple[Path, GenerateReport]) -> None:
    out, _ = default
    _, rows, bad = read_csv_lines(out / "crm/contacts.csv")
    assert 1 <= len(bad) <= 0.01 * (len(rows) + len(bad))
    listed = pd.read_csv(out / "truth/malformed_lines.csv", dtype=str)
    assert (listed.file == "crm/contacts.csv").sum() == len(bad)
    crm = csv_frame(out / "crm/contacts.csv")
    emails = crm.email.dropna()
    assert (~emails.str.match(EMAIL_RE)).sum() > 5  # invalid addresses
    assert emails.value_counts().iloc[0] > 10  # a placeholder shared by many records
    bd = crm.birth_date.dropna()
    assert (~bd.str.fullmatch(r"\d\d/\d\d/\d{4}|\d{4}-\d\d-\d\d")).sum() >= 1


def _phone_validity(out: Path) -> float:
    tr = truth(out)
    ppl = people(out)[["person_id", "country"]]
    ok = total = 0
    crm = (
        csv_frame(out / "crm/contacts.csv")
        .merge(tr, left_on="contact_id", right_on="source_key")
        .merge(ppl)
    )
    users = (
        pd.DataFrame(jsonl(out / "app/users.jsonl"))
        .drop(columns="country")
        .merge(tr, left_on="user_id", right_on="source_key")
        .merge(ppl)
    )
    for frame, cols in ((crm, ["phone", "mobile"]), (users, ["phone"])):
        for col in cols:
            for value, region in zip(frame[col], frame.country, strict=True):
                if not isinstance(value, str):
                    continue
                total += 1
                with contextlib.suppress(phonenumbers.NumberParseException):
                    ok += phonenumbers.is_valid_number(phonenumbers.parse(value, region))
    assert total > 500
    return ok / total


def _crm_name_mismatch(out: Path) -> float:
    """Share of CRM rows whose first or last name is not a clean rendering of the truth."""
    crm = (
        csv_frame(out / "crm/contacts.csv")
        .merge(truth(out), left_on="contact_id", right_on="source_key")
        .merge(people(out), on="person_id", suffixes=("", "_true"))
    )

    def variants(*names: object) -> set[str]:
        out_: set[str] = set()
        for n in names:
            if isinstance(n, str):
                out_ |= {norm(n), norm(german_fold(n))}
        return out_

    bad = 0
    for r in crm.itertuples():
        last = (
            re.sub(r",? (Jr\.|Sr\.|III)$", "", r.last_name)
            if isinstance(r.last_name, str)
            else r.last_name
        )
        if norm(r.first_name) not in variants(r.given_name) or norm(last) not in variants(
            r.family_name, r.maiden_name, r.family_name_short
        ):
            bad += 1
    return bad / len(crm)


def test_clean_data_at_noise_zero(small: dict) -> None:
    out, rep = small["clean"]
    assert _phone_validity(out) > 0.98
    assert _crm_name_mismatch(out) == 0.0
    _, _, bad = read_csv_lines(out / "crm/contacts.csv")
    assert bad == [] and rep.files["truth/malformed_lines.csv"] == 0
    emails = csv_frame(out / "crm/contacts.csv").email.dropna()
    assert emails.str.match(EMAIL_RE).all()
    tr = truth(out)
    assert tr[tr.source == "crm"].person_id.is_unique  # no duplicate accounts
    orders = jsonl(out / "webshop/orders.jsonl")
    known = {r["customer_id"] for r in jsonl(out / "webshop/customers.jsonl")}
    assert all(o["customer_id"] in known for o in orders)


def test_noise_level_scales_noise(small: dict) -> None:
    clean = _crm_name_mismatch(small["clean"][0])
    normal = _crm_name_mismatch(small["a"][0])
    noisy = _crm_name_mismatch(small["noisy"][0])
    assert clean < normal < noisy
    assert noisy > 1.5 * normal
    assert _phone_validity(small["noisy"][0]) < _phone_validity(small["a"][0])


def test_hold_out_and_release_move_whole_records(tmp_path: Path) -> None:
    from udp_spark.generate.holdout import hold_out, release

    generate(tmp_path, people=120, seed=5)
    files = {p: p.read_text().splitlines() for p in [
        tmp_path / "webshop" / "customers.jsonl", tmp_path / "email" / "subscribers.csv"]}
    held = hold_out(tmp_path, 0.1, seed=1)
    assert held > 0
    kept = {p: p.read_text().splitlines() for p in files}
    landed = release(tmp_path)
    late = {p.name: p.read_text().splitlines() for p in landed}
    shop_late = late["customers_late.jsonl"]
    assert sorted(kept[tmp_path / "webshop" / "customers.jsonl"] + shop_late) == sorted(
        files[tmp_path / "webshop" / "customers.jsonl"])
    subs = tmp_path / "email" / "subscribers.csv"
    assert late["subscribers_late.csv"][0] == files[subs][0]  # the header travels along
    assert sorted(kept[subs][1:] + late["subscribers_late.csv"][1:]) == sorted(files[subs][1:])
    assert not list((tmp_path / "_held_out").glob("*/*"))
