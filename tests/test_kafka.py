"""A ``format: kafka`` source against a real Kafka broker (KRaft, started here from the jars
set-up fetched): messages land in bronze exactly once, from where bronze says it stopped,
and reach silver through the same mapping as a JSON file would."""

from __future__ import annotations

import json
import shutil
from collections.abc import Iterator
from pathlib import Path

import pytest
from pyspark.sql import SparkSession
from pyspark.sql import functions as F

from udp_spark import io
from udp_spark.config import load_config
from udp_spark.pipeline.context import StageContext
from udp_spark.pipeline.ingest import run_ingest
from udp_spark.pipeline.standardize import run_standardize
from udp_spark.platform.kafka import LocalKafka
from udp_spark.tables import SILVER_PARTY_RECORDS, SILVER_QUARANTINE

REPO = Path(__file__).resolve().parents[1]
pytestmark = pytest.mark.slow
TOPIC = "app-signups"


@pytest.fixture(scope="module")
def kafka(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LocalKafka]:
    # A cluster id that starts with '-', as one random id in 64 does: the broker's storage
    # is formatted all the same (it once failed the run that drew one).
    with LocalKafka(tmp_path_factory.mktemp("kafka"), cluster_id="-" + "Q" * 21) as broker:
        assert f"cluster.id={broker.cluster_id}" in (
            broker.workdir / "data" / "meta.properties").read_text()
        yield broker


def _produce(spark: SparkSession, kafka: LocalKafka, values: list[str]) -> None:
    """Messages written by Spark's own Kafka sink: a real producer, no mock."""
    (spark.createDataFrame([(v,) for v in values], "value string").write.format("kafka")
     .option("kafka.bootstrap.servers", kafka.bootstrap).option("topic", TOPIC).save())


def _ctx(spark: SparkSession, tmp_path: Path, kafka: LocalKafka) -> StageContext:
    conf = tmp_path / "conf"
    (conf / "sources").mkdir(parents=True)
    shutil.copy(REPO / "conf" / "pipeline.yaml", conf / "pipeline.yaml")
    (conf / "sources" / "app_signups.yaml").write_text(
        "name: app_signups\nformat: kafka\ntopic: " + TOPIC + "\n"
        "options: {kafka.bootstrap.servers: '" + kafka.bootstrap + "'}\n"
        "trust_rank: 2\ndefault_country: DE\n"
        "columns: [user_id, name, email, phone, signed_up_at]\n"
        "party:\n  source_key: user_id\n  given_name: name.first\n  family_name: name.last\n"
        "  email: email\n  phone: phone\n  updated_at: signed_up_at\n")
    cfg = load_config(conf / "pipeline.yaml", data_root=str(tmp_path / "in"),
                      lakehouse_root=str(tmp_path / "lake"))
    return StageContext(spark, cfg)


def _signup(n: int, **extra: object) -> str:
    return json.dumps({"user_id": f"U{n}", "name": {"first": "Jana", "last": f"Novak{n}"},
                       "email": f"jana{n}@example.org", "phone": "+49 30 1234567",
                       "signed_up_at": "2026-11-30T10:00:00Z", **extra})


def test_kafka_messages_land_once_and_reach_silver(spark: SparkSession, tmp_path: Path,
                                                   kafka: LocalKafka) -> None:
    ctx = _ctx(spark, tmp_path, kafka)
    bronze = ctx.lakehouse.bronze("app_signups")
    _produce(spark, kafka, [_signup(1), _signup(2), "not json {"])
    first = run_ingest(ctx)
    assert first.rows_written == 3, first
    rows = io.read_table(spark, bronze)
    assert rows.filter(F.col("_corrupt_record").isNotNull()).count() == 1
    assert {r["_file"] for r in rows.collect()} == {f"kafka://{TOPIC}/0/{i}" for i in range(3)}

    # Nothing new on the topic: nothing lands, not even an empty commit.
    version = io.table_version(spark, bronze)
    assert run_ingest(ctx).rows_written == 0
    assert io.table_version(spark, bronze) == version

    # Two more messages (one with a field the mapping does not expect): only they land.
    _produce(spark, kafka, [_signup(3), _signup(4, referrer="friend")])
    assert run_ingest(ctx).rows_written == 2
    rows = io.read_table(spark, bronze)
    assert rows.count() == 5 and rows.select("_file").distinct().count() == 5
    assert rows.filter(F.col("_rescued_data").contains("friend")).count() == 1

    run_standardize(ctx)
    records = io.read_table(spark, ctx.lakehouse.ref(SILVER_PARTY_RECORDS))
    got = {r["source_key"]: r for r in records.collect()}
    assert sorted(got) == ["U1", "U2", "U3", "U4"]
    for n in range(1, 5):
        r = got[f"U{n}"]
        assert (r["family_name"].casefold(), r["email"], r["phone_e164"]) == (
            f"novak{n}", f"jana{n}@example.org", "+49301234567"), r
    quarantined = io.read_table(spark, ctx.lakehouse.ref(SILVER_QUARANTINE))
    assert quarantined.filter(F.col("source") == "app_signups").count() >= 1


def test_the_stream_wakes_up_on_kafka_messages(spark: SparkSession, tmp_path: Path,
                                               kafka: LocalKafka) -> None:
    """``udp stream``'s trigger over a Kafka source: one row per message on the topic."""
    from udp_spark.pipeline.stream import landing_stream, watched_sources

    ctx = _ctx(spark, tmp_path, kafka)
    assert watched_sources(ctx) == ["app_signups"]
    query = (landing_stream(ctx, ["app_signups"]).writeStream.format("memory")
             .queryName("kafka_wakeups").option("checkpointLocation", str(tmp_path / "chk"))
             .trigger(availableNow=True).start())
    query.awaitTermination()
    rows = spark.table("kafka_wakeups").collect()
    assert {r["source"] for r in rows} == {"app_signups"}
    # every message produced to the topic so far (by this module's tests) woke it up
    offsets = sorted(int(r["path"].rsplit("/", 1)[1]) for r in rows)
    assert offsets == list(range(len(offsets))) and len(offsets) >= 5
