"""End to end on generated data through real Delta tables: idempotent stages, nothing lost,
a user's own CSV with a YAML mapping, and identity resolution with stable ids."""

from __future__ import annotations

import csv
import json
import logging
import shutil
from pathlib import Path

import pandas as pd
import pytest
from pyspark.sql import SparkSession
from pyspark.sql import functions as F

from udp_spark import io
from udp_spark.config import load_config
from udp_spark.generate import generate
from udp_spark.generate.holdout import hold_out, release
from udp_spark.matching.evaluation import id_churn
from udp_spark.pipeline.context import StageContext
from udp_spark.pipeline.ingest import run_ingest
from udp_spark.pipeline.standardize import run_standardize
from udp_spark.tables import (
    GOLD_IDENTITY_XREF,
    SILVER_INTERACTIONS,
    SILVER_MATCH_SCORES,
    SILVER_PARTY_RECORDS,
    SILVER_QUARANTINE,
)

REPO = Path(__file__).resolve().parents[1]
pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def demo(spark: SparkSession, tmp_path_factory: pytest.TempPathFactory) -> StageContext:
    base = tmp_path_factory.mktemp("e2e")
    report = generate(base / "data", people=250, seed=11)
    assert report.party_records > 400
    # Late arrivals for the incremental identity check, released by that test.
    assert hold_out(base / "data", 0.03, seed=3) > 0
    # Make sure there is a malformed line whatever the generator drew at this small size.
    with (base / "data" / "crm" / "contacts.csv").open("a") as fh:
        fh.write('C0000000X,Mr,Broken,,"Line,with,too,many,fields\n')
    cfg = load_config(REPO / "conf" / "pipeline.yaml", data_root=str(base / "data"),
                      lakehouse_root=str(base / "lake"))
    ctx = StageContext(spark, cfg)
    run_ingest(ctx)
    run_standardize(ctx)
    return ctx


def _counts(ctx: StageContext) -> dict[str, int]:
    lake = ctx.lakehouse
    refs = [lake.bronze(s) for s in ctx.cfg.sources] + [
        lake.ref(t) for t in (SILVER_PARTY_RECORDS, SILVER_INTERACTIONS, SILVER_QUARANTINE)]
    return {str(r): io.read_table(ctx.spark, r).count() for r in refs}


def _data_lines(path: Path) -> int:
    with path.open(newline="") as fh:
        return sum(1 for _ in fh) - 1  # minus the header


def test_every_input_row_is_in_bronze(demo: StageContext) -> None:
    data = Path(demo.cfg.data_root)
    spark, lake = demo.spark, demo.lakehouse
    # CSV: one bronze row per physical data line (malformed ones included, flagged).
    for source, rel in (("crm", "crm/contacts.csv"), ("support_tickets", "support/tickets.csv"),
                        ("email_subscribers", "email/subscribers.csv")):
        bronze = io.read_table(spark, lake.bronze(source))
        assert bronze.count() == _data_lines(data / rel), source
    crm = io.read_table(spark, lake.bronze("crm"))
    assert crm.filter(F.col("_corrupt_record").isNotNull()).count() >= 1
    pos = spark.read.parquet(str(data / "pos" / "transactions.parquet"))
    assert io.read_table(spark, lake.bronze("pos_transactions")).count() == pos.count()
    shop = io.read_table(spark, lake.bronze("webshop_customers"))
    assert shop.filter(F.col("_rescued_data").isNotNull()).count() >= 1


def test_rerunning_ingest_and_standardize_changes_nothing(demo: StageContext) -> None:
    before = _counts(demo)
    ingest = run_ingest(demo)
    std = run_standardize(demo)
    assert ingest.rows_written == 0
    assert (std.party_inserted, std.party_updated, std.interactions_inserted,
            std.interactions_updated, std.quarantine_inserted) == (0, 0, 0, 0, 0)
    assert _counts(demo) == before


def _held_out_ids(ctx: StageContext) -> set[str]:
    """Record ids of the rows held back for the incremental check (not landed yet)."""
    sources = {"webshop": "webshop_customers", "app": "app_users",
               "email": "email_subscribers"}
    ids = set()
    for path in (Path(ctx.cfg.data_root) / "_held_out").glob("*/*"):
        source = ctx.cfg.sources[sources[path.parent.name]]
        assert source.party is not None
        key = str(source.party.source_key)
        if path.suffix == ".jsonl":
            rows = [json.loads(line) for line in path.read_text().splitlines()]
        else:
            with path.open(newline="") as fh:
                rows = list(csv.DictReader(fh))
        ids |= {f"{source.name}:{r[key]}" for r in rows}
    return ids


def test_every_party_row_is_a_record_or_quarantined(demo: StageContext) -> None:
    spark, lake = demo.spark, demo.lakehouse
    records = io.read_table(spark, lake.ref(SILVER_PARTY_RECORDS))
    rejected = io.read_table(spark, lake.ref(SILVER_QUARANTINE)).filter(
        "action = 'row_rejected' and stage = 'standardize:party'")
    truth = Path(demo.cfg.data_root) / "truth" / "records.csv"
    with truth.open(newline="") as fh:
        truth_ids = {f"{r['source']}:{r['source_key']}" for r in csv.DictReader(fh)}
    got = {r[0] for r in records.select("record_id").collect()}
    missing = truth_ids - got - _held_out_ids(demo)
    # A party missing from silver must have been rejected with a reason.
    rejected_ids = {r[0] for r in rejected.select("record_id").collect()}
    assert not (missing - rejected_ids), sorted(missing - rejected_ids)[:5]
    reasons = {r[0] for r in io.read_table(spark, lake.ref(SILVER_QUARANTINE))
               .select("reason").distinct().collect()}
    assert {"malformed row", "invalid email", "invalid phone number"} <= reasons


def _user_conf(tmp_path: Path, **sources: str) -> Path:
    """A conf folder with the shipped pipeline.yaml and the given source YAML texts."""
    conf = tmp_path / "conf"
    (conf / "sources").mkdir(parents=True)
    shutil.copy(REPO / "conf" / "pipeline.yaml", conf / "pipeline.yaml")
    for name, text in sources.items():
        (conf / "sources" / f"{name}.yaml").write_text(text)
    return conf


def test_users_own_csv_flows_to_silver_with_only_yaml(spark: SparkSession,
                                                      tmp_path: Path) -> None:
    conf = _user_conf(tmp_path, my_crm=(
        "name: my_crm\nformat: csv\npath: my/*.csv\noptions: {header: 'true', sep: ';'}\n"
        "trust_rank: 2\ndefault_country: DE\ndate_formats: [dd.MM.yyyy]\n"
        "columns: [kundennr, vorname, nachname, mail, tel, geburtsdatum]\n"
        "party:\n  source_key: kundennr\n  given_name: vorname\n  family_name: nachname\n"
        "  email: mail\n  phone: tel\n  date_of_birth: geburtsdatum\n"
        "  country: {const: DE}\n  identifiers: {kundennr: kundennr}\n"))
    (tmp_path / "in" / "my").mkdir(parents=True)
    (tmp_path / "in" / "my" / "kunden.csv").write_text(
        "kundennr;vorname;nachname;mail;tel;geburtsdatum\n"
        "K-1;Jürgen;Müller;j.mueller@web.de;030 1234567;03.04.1971\n"
        "K-2;Anna;Schmidt;kaputt@;0151 23456789;99.99.1999\n")
    cfg = load_config(conf / "pipeline.yaml", data_root=str(tmp_path / "in"),
                      lakehouse_root=str(tmp_path / "lake"))
    ctx = StageContext(spark, cfg)
    run_ingest(ctx)
    run_standardize(ctx)
    rows = {r["record_id"]: r for r in
            io.read_table(spark, ctx.lakehouse.ref(SILVER_PARTY_RECORDS)).collect()}
    assert set(rows) == {"my_crm:K-1", "my_crm:K-2"}
    k1 = rows["my_crm:K-1"]
    assert (k1["family_name_norm"], k1["phone_e164"], str(k1["date_of_birth"])) == (
        "muller", "+49301234567", "1971-04-03")
    assert k1["identifiers"] == {"kundennr": "K1"}
    q = {(r["record_id"], r["reason"]) for r in
         io.read_table(spark, ctx.lakehouse.ref(SILVER_QUARANTINE)).collect()}
    assert q == {("my_crm:K-2", "invalid email"), ("my_crm:K-2", "unparseable date")}


def _own_sources(root: Path) -> dict[str, str]:
    """Two sources of a made-up shop in its own formats (a German CSV export and a JSON-lines
    web shop), with namesakes, changed e-mails and nicknames. Returns record id -> person;
    the pipeline never sees it."""
    import random

    rng = random.Random(5)
    given = ["anna", "ben", "clara", "david", "elena", "felix", "greta", "hans", "ida", "jonas",
             "karin", "lukas", "maria", "niklas", "olga", "paul", "rosa", "sebastian"]
    nick = {"sebastian": "basti", "hans": "hannes", "maria": "mia"}
    family = ["bauer", "becker", "fischer", "hoffmann", "koch", "meyer", "richter", "schmidt",
              "schulz", "wagner", "weber", "wolf"]
    truth: dict[str, str] = {}
    (root / "kunden").mkdir(parents=True)
    (root / "shop").mkdir(parents=True)
    people = []
    for i in range(160):
        g, f = rng.choice(given), rng.choice(family)
        dob = f"{rng.randint(1950, 2002)}-{rng.randint(1, 12):02d}-{rng.randint(1, 28):02d}"
        tel = str(rng.randint(1000000, 9999999))
        people.append((f"P{i}", g, f, dob, f"{g}.{f}{i}@example.de", tel))
    with (root / "kunden" / "export.csv").open("w", newline="") as fh:
        w = csv.writer(fh, delimiter=";")
        w.writerow(["kundennr", "vorname", "nachname", "mail", "tel", "geburtsdatum"])
        for pid, g, f, dob, mail, tel in people[:130]:
            y, m, d = dob.split("-")
            w.writerow([f"K{pid[1:]}", g.title(), f.title(), mail, f"030 {tel}", f"{d}.{m}.{y}"])
            truth[f"kunden:K{pid[1:]}"] = pid
    with (root / "shop" / "accounts.jsonl").open("w") as fh:
        for n, (pid, g, f, dob, mail, tel) in enumerate(people[40:]):
            changed = n % 3 == 0  # a new e-mail address, the same phone and birth date
            fh.write(json.dumps({
                "id": f"S{n}", "name": {"first": nick.get(g, g).upper() if n % 5 == 0 else g,
                                        "last": f.upper()},
                "email": f"{f}.{g}@shop-mail.de" if changed else mail.upper(),
                "phone": f"+49 30 {tel}", "birthday": dob}) + "\n")
            truth[f"shop:S{n}"] = pid
    return truth


def test_users_own_sources_get_clusters_with_only_yaml(spark: SparkSession,
                                                       tmp_path: Path) -> None:
    """No truth, no labels, no code: two YAML mappings, then ingest through resolve."""
    from udp_spark.matching.evaluation import cluster_metrics
    from udp_spark.pipeline.block import run_block
    from udp_spark.pipeline.resolve import run_resolve
    from udp_spark.pipeline.score import run_score
    from udp_spark.pipeline.train import run_train

    kunden = (
        "name: kunden\nformat: csv\npath: kunden/*.csv\noptions: {header: 'true', sep: ';'}\n"
        "trust_rank: 1\ndefault_country: DE\ndate_formats: [dd.MM.yyyy]\n"
        "columns: [kundennr, vorname, nachname, mail, tel, geburtsdatum]\n"
        "party: {source_key: kundennr, given_name: vorname, family_name: nachname, email: mail,"
        " phone: tel, date_of_birth: geburtsdatum}\n")
    shop = (
        "name: shop\nformat: json\npath: shop/*.jsonl\ntrust_rank: 2\ndefault_country: DE\n"
        "date_formats: [yyyy-MM-dd]\ncolumns: [id, name, email, phone, birthday]\n"
        "party: {source_key: id, given_name: name.first, family_name: name.last, email: email,"
        " phone: phone, date_of_birth: birthday}\n")
    conf = _user_conf(tmp_path, kunden=kunden, shop=shop)
    truth = _own_sources(tmp_path / "in")
    cfg = load_config(conf / "pipeline.yaml", data_root=str(tmp_path / "in"),
                      lakehouse_root=str(tmp_path / "lake"))
    cfg = cfg.model_copy(update={"mlflow": cfg.mlflow.model_copy(update={
        "tracking_uri": f"sqlite:///{tmp_path / 'mlflow.db'}"})})
    ctx = StageContext(spark, cfg)
    run_ingest(ctx)
    run_standardize(ctx)
    run_block(ctx)
    run_train(ctx)
    run_score(ctx)
    report = run_resolve(ctx)
    xref = io.read_table(spark, ctx.lakehouse.ref(GOLD_IDENTITY_XREF))
    assert report.records == len(truth) == xref.count()
    t = spark.createDataFrame(sorted(truth.items()), "record_id string, entity_id string")
    m = cluster_metrics(xref.select("record_id", F.col("customer_id").alias("cluster_id")), t)
    # 90 people are in both sources; a third of them changed e-mail (phone and birth date
    # still agree), and some go by a nickname in the shop.
    assert m["pairwise_recall"] > 0.9 and m["pairwise_precision"] > 0.95, m


def test_identity_resolution_is_accurate_and_ids_are_stable(
        demo: StageContext, tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    from udp_spark.pipeline.block import run_block
    from udp_spark.pipeline.evaluate import run_evaluate
    from udp_spark.pipeline.resolve import run_resolve
    from udp_spark.pipeline.score import run_score
    from udp_spark.pipeline.train import run_train

    cfg = demo.cfg.model_copy(update={"mlflow": demo.cfg.mlflow.model_copy(update={
        "tracking_uri": f"sqlite:///{tmp_path / 'mlflow.db'}"})})
    ctx = StageContext(demo.spark, cfg)
    truth = str(Path(cfg.data_root) / "truth" / "records.csv")
    block = run_block(ctx, truth)
    assert block.metrics["reachable_pair_completeness"] > 0.8
    trained = run_train(ctx)
    assert trained.model_version == "1" and trained.model.prior_method == "sessions"
    # The match rate among all record pairs, from two EM sessions, against the truth's.
    records = int(trained.metrics["records"])
    sizes = pd.read_csv(truth).groupby("person_id").size()
    true_rate = float((sizes * (sizes - 1) / 2).sum()) / (records * (records - 1) / 2)
    assert 0.6 < trained.model.prior / true_rate < 1.5, (trained.model.prior, true_rate)
    # The version records the lakehouse it was fitted for: `udp run` there keeps it, and a
    # run on another lakehouse sharing this registry fits its own.
    from udp_spark.pipeline.run import RunOptions, _check_train

    assert _check_train(ctx, RunOptions()).startswith("skip: udp_matcher@champion is version 1")
    other = StageContext(demo.spark, cfg.model_copy(update={"lakehouse": cfg.lakehouse.model_copy(
        update={"root": str(tmp_path / "another-lake")})}))
    assert _check_train(other, RunOptions()) == (
        f"udp_matcher@champion (version 1) was fitted for another lakehouse "
        f"({Path(cfg.lakehouse.root).resolve()})")
    run_score(ctx)
    first = run_resolve(ctx)
    assert first.events.get("created") == first.customers
    metrics = run_evaluate(ctx, truth)
    # A floor, far below what the matcher reaches, that a broken stage would not pass.
    assert metrics["bcubed_f1"] > 0.8 and metrics["pairwise_precision"] > 0.8
    # Golden values against the true people (1,500 people: 0.95-0.99 of those a record
    # holds): floors that a broken survivorship or evaluation would not pass.
    for attr in ("name", "email", "phone", "address", "birth"):
        assert metrics[f"golden_{attr}_attainable_accuracy"] > 0.85, (attr, metrics)
        assert 0.3 < metrics[f"golden_{attr}_coverage"] <= 1.0, (attr, metrics)
    # After a publish of these clusters evaluate scores the published golden values: the
    # same figures as the ones it built from the records
    from udp_spark.pipeline.publish import published_profiles, run_publish

    assert published_profiles(ctx) is None  # nothing published yet
    run_publish(ctx)
    assert published_profiles(ctx) is not None
    golden = {k: v for k, v in metrics.items() if k.startswith("golden_")}
    caplog.clear()
    with caplog.at_level(logging.INFO, logger="udp_spark.pipeline.evaluate"):
        assert {k: v for k, v in run_evaluate(ctx, truth).items() if k in golden} == golden
    assert "golden values built from the records" not in caplog.text
    again = run_resolve(ctx)
    assert again.ids_changed == 0 and again.events == {}

    # New records land: only the clusters they touch may change id.
    xref_ref = ctx.lakehouse.ref(GOLD_IDENTITY_XREF)
    before = io.read_table(ctx.spark, xref_ref).select("record_id", "customer_id")
    before = before.localCheckpoint(eager=True)
    records_ref, scores_ref = (ctx.lakehouse.ref(SILVER_PARTY_RECORDS),
                               ctx.lakehouse.ref(SILVER_MATCH_SCORES))
    old_records = io.read_table(ctx.spark, records_ref).select(
        "record_id", "_run_id").localCheckpoint(eager=True)
    old_scores = io.read_table(ctx.spark, scores_ref).select(
        "record_id_l", "record_id_r", F.col("match_weight").alias("old_weight")
    ).localCheckpoint(eager=True)
    assert release(Path(cfg.data_root))
    held = io.persisted_rdd_ids(ctx.spark)
    run_ingest(ctx)
    run_standardize(ctx)
    run_block(ctx)
    run_score(ctx)
    # each stage frees the checkpoints it made (audited_run): nothing persisted since is
    # held (Spark's cleaner may free some of the earlier ones meanwhile)
    assert io.persisted_rdd_ids(ctx.spark) <= held
    # Term frequencies are frozen with the model version: a pair of records the new batch
    # did not touch keeps its weight to the last bit.
    untouched = io.read_table(ctx.spark, records_ref).join(
        old_records, ["record_id", "_run_id"]).select("record_id")
    moved = (io.read_table(ctx.spark, scores_ref).join(old_scores, ["record_id_l", "record_id_r"])
             .join(untouched.withColumnRenamed("record_id", "record_id_l"), "record_id_l")
             .join(untouched.withColumnRenamed("record_id", "record_id_r"), "record_id_r"))
    assert moved.count() > 100
    assert moved.filter(F.col("match_weight") != F.col("old_weight")).count() == 0
    run_resolve(ctx)
    assert published_profiles(ctx) is None  # the clusters moved since that publish
    churn = id_churn(before, io.read_table(ctx.spark, xref_ref))
    assert churn["new_records"] > 0 and churn["clusters_touched"] > 0
    assert churn["ids_changed_outside_touched"] == 0, churn

    # A clerical decision overrides the matcher: two singletons the matcher never compared
    # become one customer, with the reason "manual".
    from udp_spark.pipeline.labels import run_import_labels

    singles = [r["record_id"] for r in io.read_table(ctx.spark, xref_ref)
               .filter(F.col("reason") == "singleton").orderBy("record_id").limit(50).collect()]
    scored = {(r["record_id_l"], r["record_id_r"]) for r in io.read_table(
        ctx.spark, scores_ref).filter(F.col("record_id_l").isin(*singles)).collect()}
    a, b = next((x, y) for x in singles for y in singles if x < y and (x, y) not in scored)
    review = tmp_path / "review.csv"
    review.write_text(f"record_id_a,record_id_b,is_match\n{a},{b},yes\n")
    run_import_labels(ctx, str(review))
    run_resolve(ctx)
    linked = {r["record_id"]: (r["customer_id"], r["reason"]) for r in io.read_table(
        ctx.spark, xref_ref).filter(F.col("record_id").isin(a, b)).collect()}
    assert linked[a] == linked[b] and linked[a][1] == "manual", linked
