# Databricks notebook source
# MAGIC %md
# MAGIC # Block
# MAGIC Candidate pairs by deterministic keys, rule blocks and MinHash LSH, into
# MAGIC `silver.block_keys` and `silver.candidate_pairs`: only records that changed since the last
# MAGIC run are re-blocked. With a truth file, pair completeness is measured too.

# COMMAND ----------

dbutils.widgets.text("config", "conf/pipeline.yaml")  # noqa: F821
dbutils.widgets.text("data_root", "")  # noqa: F821
dbutils.widgets.text("lakehouse", "")  # noqa: F821
dbutils.widgets.text("truth", "")  # noqa: F821

# COMMAND ----------

from udp_spark.pipeline.context import notebook_context

ctx = notebook_context(spark, dbutils.widgets)  # noqa: F821  (the notebook's own session)

# COMMAND ----------

from udp_spark.pipeline.block import run_block

block_report = run_block(ctx, dbutils.widgets.get("truth") or None)  # noqa: F821
display([{"records": block_report.records, "candidate_pairs": block_report.candidate_pairs,  # noqa: F821
          "records_changed": block_report.records_changed, **block_report.metrics}])
