# Databricks notebook source
# MAGIC %md
# MAGIC # Ingest and standardize
# MAGIC Lands every configured source into `bronze.<source>` and standardizes it into
# MAGIC `silver.party_records`, `silver.interactions` and `silver.quarantine`.
# MAGIC The logic lives in the `udp_spark` library; this notebook only wires parameters to it.

# COMMAND ----------

dbutils.widgets.text("config", "conf/pipeline.yaml")  # noqa: F821
dbutils.widgets.text("data_root", "")  # noqa: F821
dbutils.widgets.text("lakehouse", "")  # noqa: F821

# COMMAND ----------

from udp_spark.pipeline.context import notebook_context
from udp_spark.pipeline.ingest import run_ingest
from udp_spark.pipeline.standardize import run_standardize

ctx = notebook_context(spark, dbutils.widgets)  # noqa: F821  (the notebook's own session)

# COMMAND ----------

ingest_report = run_ingest(ctx)
display([s.__dict__ for s in ingest_report.sources])  # noqa: F821

# COMMAND ----------

std_report = run_standardize(ctx)
display([std_report.__dict__])  # noqa: F821

# COMMAND ----------

# MAGIC %md
# MAGIC ### Quarantine by reason

# COMMAND ----------

from udp_spark import io
from udp_spark.tables import SILVER_QUARANTINE

display(  # noqa: F821
    io.read_table(spark, ctx.lakehouse.ref(SILVER_QUARANTINE))  # noqa: F821
    .groupBy("source", "reason", "action").count().orderBy("source", "reason")
)
