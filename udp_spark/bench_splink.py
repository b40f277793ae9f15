"""Splink 5 beside udp-spark in ``make bench``: the same records, the same truth, timed by phase.

A user choosing a matcher compares with Splink, so the bench runs it on the records udp-spark
matched (``silver.party_records`` after standardize) on DuckDB and on Spark, with a fixed
mapping of our comparisons and blocking onto Splink's settings (docs/bench.md), trained the
way Splink's documentation trains a model without labels, and scores its clusters with our
evaluation code (:func:`udp_spark.matching.evaluation.cluster_metrics`). Nothing here is tuned
against the truth.

Needs the optional ``bench`` extra (``splink``, ``duckdb``); ``make setup`` installs it.

Example::

    records = party_records(ctx)
    run = run_splink(splink_records(records), "duckdb", threshold=0.7)
    metrics = cluster_metrics(run.clusters, truth)
"""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass, field
from typing import Any, Literal

from pyspark.sql import DataFrame, SparkSession
from pyspark.sql import functions as F

log = logging.getLogger(__name__)

Backend = Literal["duckdb", "spark"]
BACKENDS: tuple[Backend, ...] = ("duckdb", "spark")
PHASES = ("blocking", "training", "scoring", "clustering")

# Splink's own README and tutorials estimate the prior from deterministic rules with this
# recall; it is Splink's documented default workflow, not a value fitted to our truth.
PRIOR_RECALL = 0.7


class SplinkUnavailableError(RuntimeError):
    """Splink cannot run on this backend here; the message says why (with the error)."""


@dataclass
class SplinkRun:
    """One Splink run: seconds per phase, pair counts and the clusters.

    ``clusters`` is ``(record_id, cluster_id)`` as a Spark DataFrame, whatever the backend,
    so our evaluation code scores it.
    """

    backend: Backend
    timings: dict[str, float]
    candidate_pairs: int
    predicted_links: int
    clusters: DataFrame
    notes: list[str] = field(default_factory=list)


def splink_records(records: DataFrame) -> DataFrame:
    """``silver.party_records`` -> the flat table Splink reads, one row per record.

    Standardized values are passed as they are (Splink gets the cleaning udp-spark did);
    the two phone numbers become one array (our phone comparison pools them); dates become
    ISO strings, the form Splink's date comparison parses on every backend.
    """
    phones = F.array_compact(F.array("phone_e164", "mobile_e164"))
    return records.select(
        "record_id",
        "source",
        F.col("given_name_norm").alias("given_name"),
        F.col("family_name_norm").alias("family_name"),
        "family_name_phonetic",
        F.date_format("date_of_birth", "yyyy-MM-dd").alias("date_of_birth"),
        F.col("email_canonical").alias("email"),
        F.when(F.size(phones) > 0, phones).alias("phones"),
        F.col("street_norm").alias("street"),
        "postcode",
        F.col("city_norm").alias("city"),
        "loyalty_id",
        "gender",
    )


def _address_comparison() -> Any:
    """Street, postcode and city as one comparison, level for level as our ``address``
    (three separate comparisons would count one shared address three times)."""
    import splink.comparison_level_library as cll
    import splink.comparison_library as cl

    return cl.CustomComparison(
        output_column_name="address",
        comparison_description="street with postcode or city (udp-spark's address levels)",
        comparison_levels=[
            cll.And(cll.NullLevel("street"), cll.NullLevel("postcode"), cll.NullLevel("city")
                    ).configure(is_null_level=True),
            cll.And(cll.ExactMatchLevel("street"),
                    cll.Or(cll.ExactMatchLevel("postcode"), cll.ExactMatchLevel("city"))),
            cll.And(cll.JaroWinklerLevel("street", 0.88),
                    cll.Or(cll.ExactMatchLevel("postcode"), cll.ExactMatchLevel("city"))),
            cll.ExactMatchLevel("postcode"),
            cll.ExactMatchLevel("city"),
            cll.ElseLevel(),
        ],
    )


def splink_settings() -> Any:
    """The Splink model: comparisons and prediction blocking mapped from udp-spark's
    defaults (docs/bench.md has the table)."""
    import splink.comparison_library as cl
    from splink import ColumnExpression, SettingsCreator, block_on

    email_local = ColumnExpression("email").regex_extract("^[^@]+")
    return SettingsCreator(
        link_type="dedupe_only",
        unique_id_column_name="record_id",
        comparisons=[
            # Splink's name comparison: exact (with term frequencies), Jaro-Winkler 0.92,
            # 0.88, 0.70, else.
            cl.NameComparison("given_name"),
            cl.NameComparison("family_name"),
            # Exact, one character off, within a month, a year, ten years.
            cl.DateOfBirthComparison("date_of_birth", input_is_string=True),
            # Exact (term frequencies), same user name, Jaro-Winkler 0.88 on both.
            cl.EmailComparison("email"),
            cl.ArrayIntersectAtSizes("phones", [1]),
            _address_comparison(),
            cl.ExactMatch("loyalty_id"),
            cl.ExactMatch("gender"),
        ],
        blocking_rules_to_generate_predictions=[
            # udp-spark's keys
            block_on("email"),
            block_on("phones", arrays_to_explode=["phones"]),
            block_on("loyalty_id"),
            # its rule blocks
            block_on("family_name_phonetic", "postcode"),
            block_on("given_name", "family_name"),
            block_on("family_name", "date_of_birth"),
            block_on("given_name", "date_of_birth"),
            block_on("given_name", "family_name_phonetic"),
            block_on("family_name", "substr(given_name, 1, 1)"),
            # its two MinHash indexes, as exact keys (Splink has no LSH)
            block_on("street", "postcode"),
            block_on(email_local),
        ],
        retain_matching_columns=False,
        retain_intermediate_calculation_columns=False,
    )


def _db_api(backend: Backend, spark: SparkSession | None) -> Any:
    if backend == "duckdb":
        from splink import DuckDBAPI

        return DuckDBAPI()
    if spark is None:
        raise ValueError("Splink on Spark needs a SparkSession")
    from splink import SparkAPI

    enable_similarity_udfs(spark)
    return SparkAPI(spark_session=spark)


def similarity_jar() -> str:
    """Splink's Scala UDF jar for this Spark (Splink 5 ships a Spark 4 / Scala 2.13 build)."""
    from splink.internals.spark.jar_location import similarity_jar_location

    return str(similarity_jar_location())


def enable_similarity_udfs(spark: SparkSession) -> None:
    """Put Splink's UDF jar (``jaro_winkler`` and friends) on the session's class path.

    A session built with the jar in ``spark.jars`` has it already; ``ADD JAR`` adds it to a
    running session (the test session), after which SparkAPI registers the functions.

    Raises:
        SplinkUnavailableError: the functions still cannot be registered, with Spark's error.
    """
    jar = similarity_jar()
    if jar not in spark.sparkContext.getConf().get("spark.jars", ""):
        spark.sql(f"ADD JAR '{jar}'")
    from pyspark.sql.types import DoubleType

    try:
        spark.udf.registerJavaFunction(
            "jaro_winkler", "uk.gov.moj.dash.linkage.JaroWinklerSimilarity", DoubleType())
        spark.sql("select jaro_winkler('martha', 'marhta') as s").collect()
    except Exception as exc:  # the JVM's error, whatever its class
        raise SplinkUnavailableError(
            f"Splink's Spark UDF jar {jar} cannot be used on Spark {spark.version}: {exc}"
        ) from exc


def _count(sdf: Any) -> int:
    rows = sdf.query_sql("select count(*) as n from {this}").as_record_list()
    return int(next(iter(rows[0].values())))


def run_splink(records: DataFrame, backend: Backend, *, threshold: float,
               random_pairs: int = 1_000_000, seed: int = 42) -> SplinkRun:
    """Block, train (zero labels), score and cluster ``records`` (:func:`splink_records`)
    with Splink on ``backend``; seconds per phase.

    Training is Splink's documented unsupervised workflow: the prior from deterministic rules
    (:data:`PRIOR_RECALL`), u from ``random_pairs`` random pairs (udp-spark's
    ``matching.model.random_pairs``), m by two EM sessions (blocked on names, then on date
    of birth). Pairs at or above ``threshold`` (udp-spark's ``matching.resolve.threshold``)
    link; clusters are Splink's connected components at the same threshold.

    For DuckDB the records are first copied out of Spark as Arrow (``load`` in the timings,
    not part of Splink's phases).
    """
    from splink import Linker, block_on

    spark = records.sparkSession
    timings: dict[str, float] = {}
    t0 = time.perf_counter()
    db_api = _db_api(backend, spark)
    if backend == "duckdb":
        table: Any = records.toArrow()
    else:
        table = records.localCheckpoint()  # Splink starts from materialized records
    timings["load"] = time.perf_counter() - t0

    linker = Linker(db_api.register(table, dataset_display_name="party_records"),
                    splink_settings(), log_level=logging.WARNING)

    t0 = time.perf_counter()
    blocked = linker.inference.compute_blocked_pairs_for_predict()
    candidate_pairs = _count(blocked)
    timings["blocking"] = time.perf_counter() - t0

    t0 = time.perf_counter()
    training = linker.training
    training.estimate_probability_two_random_records_match(
        [block_on("email"), block_on("given_name", "family_name", "date_of_birth")],
        recall=PRIOR_RECALL)
    training.estimate_u_using_random_sampling(max_pairs=random_pairs, seed=seed)
    training.estimate_parameters_using_expectation_maximisation(
        block_on("given_name", "family_name"))
    training.estimate_parameters_using_expectation_maximisation(block_on("date_of_birth"))
    timings["training"] = time.perf_counter() - t0

    t0 = time.perf_counter()
    predictions = linker.inference.predict(threshold_match_probability=threshold)
    predicted_links = _count(predictions)
    timings["scoring"] = time.perf_counter() - t0

    t0 = time.perf_counter()
    clustered = linker.clustering.cluster_pairwise_predictions_at_threshold(
        predictions, threshold_match_probability=threshold)
    timings["clustering"] = time.perf_counter() - t0  # the table is materialized
    timings["total"] = sum(timings[p] for p in PHASES)
    if backend == "duckdb":  # into Spark for our evaluation code (not timed)
        clusters = spark.createDataFrame(clustered.as_pyarrow_table().select(
            ["record_id", "cluster_id"])).localCheckpoint()
    else:
        clusters = clustered.as_spark_dataframe().select("record_id", "cluster_id")
    return SplinkRun(backend, timings, candidate_pairs, predicted_links,
                     clusters.select(F.col("record_id").cast("string"),
                                     F.col("cluster_id").cast("string")))


ACCURACY_KEYS = ("pairwise_precision", "pairwise_recall", "pairwise_f1", "bcubed_precision",
                 "bcubed_recall", "bcubed_f1", "clusters_found", "clusters_true",
                 "largest_cluster", "records")


def compare(records: DataFrame, truth: DataFrame, backends: tuple[Backend, ...], *,
            threshold: float, random_pairs: int = 1_000_000, seed: int = 42
            ) -> dict[str, dict[str, Any]]:
    """Run Splink on each backend over ``records`` (``silver.party_records``) and score its
    clusters against ``truth`` (``record_id, entity_id``) with our evaluation code.

    Returns ``{"splink_<backend>": {"timings_s", "candidate_pairs", "predicted_links",
    "accuracy"}}``, or ``{"error": ...}`` for a backend that failed (the others still run).
    """
    from udp_spark.matching.evaluation import cluster_metrics

    inputs = splink_records(records).localCheckpoint()
    ids = inputs.select("record_id")
    t = truth.join(ids, "record_id").localCheckpoint()
    out: dict[str, dict[str, Any]] = {}
    for backend in backends:
        try:
            run = run_splink(inputs, backend, threshold=threshold, random_pairs=random_pairs,
                             seed=seed)
        except Exception as exc:  # reported, not fatal: the other backend still runs
            log.exception("Splink on %s failed", backend)
            first = str(exc).strip().splitlines()[:3]
            out[f"splink_{backend}"] = {"error": f"{type(exc).__name__}: {' | '.join(first)}"}
            continue
        metrics = cluster_metrics(run.clusters, t)
        out[f"splink_{backend}"] = {
            "timings_s": {k: round(v, 2) for k, v in run.timings.items()},
            "candidate_pairs": run.candidate_pairs,
            "predicted_links": run.predicted_links,
            "accuracy": {k: metrics[k] for k in ACCURACY_KEYS},
        }
    return out
