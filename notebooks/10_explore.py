# Databricks notebook source
# MAGIC %md
# MAGIC # Explore the result
# MAGIC Cluster sizes, the matcher's weights, the waterfall of one pair, segment sizes and
# MAGIC data quality by source. Read-only.

# COMMAND ----------

dbutils.widgets.text("config", "conf/pipeline.yaml")  # noqa: F821
dbutils.widgets.text("data_root", "")  # noqa: F821
dbutils.widgets.text("lakehouse", "")  # noqa: F821

# COMMAND ----------

from udp_spark.pipeline.context import notebook_context

ctx = notebook_context(spark, dbutils.widgets)  # noqa: F821  (the notebook's own session)

# COMMAND ----------

from pyspark.sql import functions as F

from udp_spark import io
from udp_spark.tables import (
    GOLD_CUSTOMER_PROFILE,
    GOLD_IDENTITY_XREF,
    SILVER_MATCH_SCORES,
    SILVER_PARTY_RECORDS,
    SILVER_QUARANTINE,
)

lake = ctx.lakehouse

# COMMAND ----------

# MAGIC %md
# MAGIC ### Cluster-size distribution

# COMMAND ----------

sizes = (io.read_table(spark, lake.ref(GOLD_IDENTITY_XREF)).groupBy("customer_id").count()  # noqa: F821
         .groupBy(F.col("count").alias("records")).agg(F.count("*").alias("customers"))
         .orderBy("records"))
display(sizes)  # noqa: F821

# COMMAND ----------

# MAGIC %md
# MAGIC ### Match weight per comparison level (the registered model)

# COMMAND ----------

from udp_spark.platform import mlflow_store

mcfg = ctx.cfg.matching.model
model, version = mlflow_store.load_by_alias(ctx.cfg.mlflow, mcfg.registered_name, mcfg.alias)
display(getattr(model, "model", model).weights_table())  # noqa: F821

# COMMAND ----------

# MAGIC %md
# MAGIC ### Waterfall of the best-scored pair

# COMMAND ----------

from udp_spark.pipeline.score import explain_pair

best = (io.read_table(spark, lake.ref(SILVER_MATCH_SCORES))  # noqa: F821
        .orderBy(F.desc("match_weight"), "record_id_l", "record_id_r").first())
waterfall = explain_pair(ctx, best["record_id_l"], best["record_id_r"])
display(waterfall["comparisons"])  # noqa: F821

# COMMAND ----------

# MAGIC %md
# MAGIC ### Segment sizes

# COMMAND ----------

profiles = io.read_table(spark, lake.ref(GOLD_CUSTOMER_PROFILE))  # noqa: F821
display(profiles.select(F.explode("segments").alias("segment")).groupBy("segment").count()  # noqa: F821
        .orderBy(F.desc("count")))

# COMMAND ----------

# MAGIC %md
# MAGIC ### Data quality by source

# COMMAND ----------

records = io.read_table(spark, lake.ref(SILVER_PARTY_RECORDS))  # noqa: F821
quality = records.groupBy("source").agg(
    F.count("*").alias("records"),
    *[F.avg(F.col(c).isNull().cast("double")).alias(f"{c}_missing")
      for c in ("email", "phone_e164", "date_of_birth", "street")])
display(quality.orderBy("source"))  # noqa: F821
display(io.read_table(spark, lake.ref(SILVER_QUARANTINE))  # noqa: F821
        .groupBy("source", "reason").count().orderBy("source", F.desc("count")))
