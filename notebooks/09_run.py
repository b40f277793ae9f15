# Databricks notebook source
# MAGIC %md
# MAGIC # Run every stage that has work
# MAGIC `udp run`: the stages in dependency order, each skipped when its inputs did not
# MAGIC change since its last successful run, under the lakehouse lease.

# COMMAND ----------

dbutils.widgets.text("config", "conf/pipeline.yaml")  # noqa: F821
dbutils.widgets.text("data_root", "")  # noqa: F821
dbutils.widgets.text("lakehouse", "")  # noqa: F821

# COMMAND ----------

from udp_spark.pipeline.context import notebook_context

ctx = notebook_context(spark, dbutils.widgets)  # noqa: F821  (the notebook's own session)

# COMMAND ----------

from udp_spark.pipeline.run import run_pipeline

summary = run_pipeline(ctx)
print("\n".join(summary.lines()))
