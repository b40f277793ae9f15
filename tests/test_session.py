"""The session factory's process-wide settings."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

from pyspark.sql import SparkSession
from pyspark.sql import functions as F
from pyspark.sql.functions import builtin

from udp_spark.session import cache_jvm_function_lookups


@contextmanager
def _round_trips(spark: SparkSession) -> Iterator[list[int]]:
    """Count the py4j commands sent to the JVM inside the block."""
    client = spark.sparkContext._gateway._gateway_client  # type: ignore[union-attr]
    send = client.send_command
    calls = [0]

    def counting(*args: object, **kwargs: object) -> object:
        calls[0] += 1
        return send(*args, **kwargs)

    client.send_command = counting
    try:
        yield calls
    finally:
        del client.send_command  # back to the class's method


def test_column_functions_cost_one_round_trip_once_looked_up(spark: SparkSession) -> None:
    assert cache_jvm_function_lookups()  # the fixture's get_session installed it already
    assert cache_jvm_function_lookups()  # idempotent
    F.regexp_replace(F.col("warm"), "a", "b")  # first use of each name looks it up
    with _round_trips(spark) as calls:
        F.col("x")
    # a lookup of the class and of the member would make it three
    assert calls[0] == 1
    sc = spark.sparkContext
    assert builtin._get_jvm_function("col", sc) is builtin._get_jvm_function("col", sc)
    # the cached handles build the same expressions as before
    df = spark.createDataFrame([("banana",), (None,)], "s string")
    got = df.select(F.regexp_replace(F.col("s"), "a", "o").alias("t"),
                    F.when(F.col("s").isNull(), F.lit("none")).alias("u")).collect()
    assert [tuple(r) for r in got] == [("bonono", None), (None, "none")]
