"""The resolver behind ``POST /v1/resolve`` on its own, without Spark: records written with
delta-rs, a Fellegi-Sunter model registered in a real (SQLite) MLflow registry, term
frequencies frozen per model version. Checked: it refuses to score before the model's
term frequencies exist, finds candidates through the blocking keys, follows a new records
version, and keeps serving the previous model until a new one's term frequencies are
frozen."""

from __future__ import annotations

from datetime import date
from pathlib import Path
from typing import Any

import pyarrow as pa
import pytest
from deltalake import write_deltalake

from udp_spark.config import MlflowSettings, PipelineConfig
from udp_spark.matching import pairwise
from udp_spark.matching.fellegi_sunter import MISSING, FSModel
from udp_spark.serve.resolve import RECORD_COLUMNS, Resolver
from udp_spark.standardize.pure import party_fields

SCHEMA = pa.schema([
    ("record_id", pa.string()), ("source", pa.string()), ("given_name_norm", pa.string()),
    ("given_name_aliases", pa.list_(pa.string())), ("middle_name_norm", pa.string()),
    ("family_name_norm", pa.string()), ("family_name_phonetic", pa.string()),
    ("date_of_birth", pa.date32()), ("birth_year", pa.int32()),
    ("email_canonical", pa.string()), ("phone_e164", pa.string()),
    ("mobile_e164", pa.string()), ("street_norm", pa.string()), ("postcode", pa.string()),
    ("city_norm", pa.string()), ("loyalty_id", pa.string()), ("gender", pa.string()),
    ("identifiers", pa.map_(pa.string(), pa.string())),
])
TF_SCHEMA = pa.schema([("model_version", pa.string()), ("comparison", pa.string()),
                       ("value", pa.string()), ("tf", pa.float64())])
TODAY = date(2026, 12, 4)
PEOPLE = {
    "crm:1": {"given_name": "Ann", "family_name": "Smith", "email": "ann.smith@example.com",
              "phone": "(202) 555-0143", "date_of_birth": date(1984, 2, 29)},
    "shop:7": {"given_name": "Annie", "family_name": "Smith", "email": "ann.s@example.org",
               "phone": "+1 202 555 0143", "date_of_birth": date(1984, 2, 29)},
    "crm:2": {"given_name": "Bob", "family_name": "Jones", "email": "bob@example.com",
              "date_of_birth": date(1970, 5, 6)},
}


def _model(prior: float) -> FSModel:
    names = list(pairwise.BUILTIN)
    tops = {"given_name": 5, "middle_name": 2, "family_name": 3, "date_of_birth": 5,
            "email": 3, "phone": 2, "address": 5, "loyalty_id": 2, "gender": 1,
            "email_name": 1}
    levels = {c: [MISSING, *range(tops[c] + 1)] for c in names}
    return FSModel(
        comparisons=names, levels=levels,
        labels={c: {lv: f"l{lv}" for lv in levels[c]} for c in names},
        m={c: {lv: (lv + 1.0) / sum(range(1, tops[c] + 2)) for lv in range(tops[c] + 1)}
           for c in names},
        u={c: {lv: 1.0 / (tops[c] + 1) for lv in range(tops[c] + 1)} for c in names},
        prior=prior, tf_columns={"given_name": "given_name_norm", "email": "email_canonical"},
        top_levels=tops)


def _records(people: dict[str, dict[str, Any]]) -> pa.Table:
    rows = []
    for rid, raw in people.items():
        values = party_fields(raw, default_country="US", today=TODAY).values
        rows.append({**{c: values.get(c) for c in RECORD_COLUMNS}, "record_id": rid,
                     "source": rid.split(":")[0], "identifiers": []})
    return pa.Table.from_pylist(rows, schema=SCHEMA)


def _frozen(label: str, tf: dict[str, dict[str, float]]) -> pa.Table:
    return pa.Table.from_pylist([{"model_version": label, "comparison": c, "value": v,
                                  "tf": f} for c, values in tf.items()
                                 for v, f in values.items()], schema=TF_SCHEMA)


@pytest.fixture()
def lake(workdir: Path) -> dict[str, Any]:
    settings = MlflowSettings(tracking_uri=f"sqlite:///{workdir / 'mlflow.db'}")
    cfg = PipelineConfig().model_copy(update={"mlflow": settings})
    return {"cfg": cfg, "records": str(workdir / "party_records"),
            "tf": str(workdir / "match_term_frequencies"), "settings": settings}


def _register(lake: dict[str, Any], model: FSModel) -> str:
    from udp_spark.platform.mlflow_store import log_and_register

    mcfg = lake["cfg"].matching.model
    return log_and_register(model, settings=lake["settings"], name=mcfg.registered_name,
                            alias=mcfg.alias, params={}, metrics={}).version


def test_resolver_loads_follows_versions_and_waits_for_frozen_frequencies(
        lake: dict[str, Any]) -> None:
    cfg = lake["cfg"]
    resolver = Resolver(cfg, lake["records"], lake["tf"], "US", refresh_seconds=0.1)
    resolver.refresh(force=True)
    assert resolver.current.unavailable is not None
    assert "registry" in resolver.current.unavailable  # nothing trained yet

    write_deltalake(lake["records"], _records(PEOPLE))
    v1 = _register(lake, _model(1e-3))
    resolver.refresh(force=True)
    assert "not frozen" in (resolver.current.unavailable or "")  # score has not run
    label1 = f"{cfg.matching.model.registered_name}/{v1}"
    write_deltalake(lake["tf"], _frozen(label1, {"given_name": {"ann": 0.01}}))
    assert resolver.refresh()  # the term-frequency table moved
    state = resolver.current
    assert state.unavailable is None and state.model_version == v1

    query = resolver.standardize({"given_name": "Ann", "family_name": "Smith",
                                  "email": "ANN.SMITH@example.com"}, TODAY).values
    found = {m.record_id: m for m in resolver.match(state, query)}
    # crm:1 shares the e-mail and the name; shop:7 the family-name rules; crm:2 nothing
    assert set(found) == {"crm:1", "shop:7"}
    assert found["crm:1"].score.match_weight > found["shop:7"].score.match_weight
    given = {c.comparison: c for c in found["crm:1"].score.comparisons}["given_name"]
    assert given.level == 5
    assert given.weight == pytest.approx(pairwise._log2(
        state.scorer.model.m["given_name"][5] / 0.01))  # type: ignore[union-attr]
    assert not resolver.refresh()  # nothing moved

    # A new records version is indexed: Bob's new e-mail is found.
    moved = {**PEOPLE, "crm:2": {**PEOPLE["crm:2"], "email": "ann.smith@example.com"}}
    write_deltalake(lake["records"], _records(moved), mode="overwrite")
    assert resolver.refresh()
    assert {m.record_id for m in resolver.match(resolver.current, query)} == {
        "crm:1", "shop:7", "crm:2"}

    # A new model version: served only once its term frequencies are frozen.
    v2 = _register(lake, _model(1e-5))
    resolver.refresh(force=True)
    assert resolver.current.model_version == v1 and resolver.current.unavailable is None
    write_deltalake(lake["tf"], _frozen(f"{cfg.matching.model.registered_name}/{v2}",
                                        {"given_name": {"ann": 0.02}}), mode="append")
    assert resolver.refresh(force=True)
    assert resolver.current.model_version == v2
    assert resolver.current.scorer is not None
    assert resolver.current.scorer.model.prior == pytest.approx(1e-5)


def _by_block(state: Any) -> dict[str, set[str]]:
    """block -> record ids, the way a request sees the index."""
    ids = state.records.column("record_id").to_pylist()
    return {b: {ids[i] for i in rows} for b, rows in state.by_block.items() if rows}


def test_a_new_records_version_is_taken_in_from_the_change_feed_as_a_full_load_gives_it(
        lake: dict[str, Any]) -> None:
    """Records updated (moving blocks), deleted, inserted and written twice in later
    commits: the index built from the change data feed finds, block for block and query
    for query, what a full load of the same version finds; and it was built from the feed
    (the replaced rows stay in the records table, unreferenced, until a full load)."""
    from deltalake import DeltaTable

    cfg = lake["cfg"]
    given = ["Ann", "Bob", "Carl", "Dana", "Eve", "Finn", "Gail", "Hugo"]
    family = ["Smith", "Jones", "Meyer", "Brown", "Novak"]
    people = {f"crm:{i}": {"given_name": given[i % 8], "family_name": family[i % 5],
                           "email": f"{given[i % 8].lower()}.{i}@example.com",
                           "phone": f"(202) 555-{1000 + i % 17:04d}",
                           "date_of_birth": date(1950 + i % 40, 1 + i % 12, 1 + i % 28)}
              for i in range(80)}
    write_deltalake(lake["records"], _records(people),
                    configuration={"delta.enableChangeDataFeed": "true"})
    label = f"{cfg.matching.model.registered_name}/{_register(lake, _model(1e-3))}"
    write_deltalake(lake["tf"], _frozen(label, {"given_name": {"ann": 0.01}}))
    resolver = Resolver(cfg, lake["records"], lake["tf"], "US", refresh_seconds=0.1)
    resolver.refresh(force=True)
    assert resolver.current.unavailable is None and resolver.current.stale_rows == 0

    def merge(rows: dict[str, dict[str, Any]], delete: tuple[str, ...] = ()) -> None:
        dt = DeltaTable(lake["records"])
        source = _records(rows) if rows else pa.Table.from_pylist([], schema=SCHEMA)
        (dt.merge(source, "t.record_id = s.record_id", source_alias="s", target_alias="t")
         .when_matched_update_all().when_not_matched_insert_all().execute())
        if delete:
            ids = ", ".join(f"'{r}'" for r in delete)
            DeltaTable(lake["records"]).delete(f"record_id IN ({ids})")

    # 1. two moved e-mails and a new family name, two records gone, two new ones
    moved = {"crm:3": {**people["crm:3"], "email": "ann.0@example.com"},
             "crm:4": {**people["crm:4"], "family_name": "Novak"},
             "crm:5": {**people["crm:5"], "phone": None},
             "web:1": {"given_name": "Ann", "family_name": "Smith",
                       "email": "ann.0@example.com"},
             "web:2": {"given_name": "Ivo", "family_name": "Kral", "phone": "(202) 555-1003"}}
    merge(moved, delete=("crm:6", "crm:7"))
    # 2. a record written again (the later row wins) and one of the new ones deleted
    merge({"crm:3": {**people["crm:3"], "email": "bob.1@example.com"}}, delete=("web:2",))
    assert resolver.refresh()
    state = resolver.current
    assert state.stale_rows > 0  # taken in from the feed, not loaded again
    assert state.records is not None and state.records.num_rows > len(state.row_of)

    full = Resolver(cfg, lake["records"], lake["tf"], "US")
    full.refresh(force=True)
    assert full.current.stale_rows == 0
    assert set(state.row_of) == set(full.current.row_of)
    assert "crm:6" not in state.row_of and "web:2" not in state.row_of
    assert _by_block(state) == _by_block(full.current)
    for raw in [people["crm:0"], people["crm:3"], moved["web:2"], moved["crm:4"],
                {"given_name": "Bob", "email": "bob.1@example.com"}]:
        query = resolver.standardize(raw, TODAY).values
        got = sorted((m.record_id, m.score.match_weight) for m in resolver.match(state, query))
        want = sorted((m.record_id, m.score.match_weight)
                      for m in full.match(full.current, query))
        assert got == want and got, raw

    # a change feed larger than a quarter of the index: loaded in full again
    merge({f"crm:{i}": {**people[f"crm:{i}"], "email": f"x{i}@example.org"}
           for i in range(10, 40)})
    assert resolver.refresh()
    assert resolver.current.stale_rows == 0
    again = Resolver(cfg, lake["records"], lake["tf"], "US")
    again.refresh(force=True)
    assert _by_block(resolver.current) == _by_block(again.current)
