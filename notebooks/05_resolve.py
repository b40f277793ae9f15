# Databricks notebook source
# MAGIC %md
# MAGIC # Resolve
# MAGIC Clusters of the components the changed pairs touch, with the conflict rules, into
# MAGIC `gold.identity_xref` (stable customer ids) and `gold.identity_events`.

# COMMAND ----------

dbutils.widgets.text("config", "conf/pipeline.yaml")  # noqa: F821
dbutils.widgets.text("data_root", "")  # noqa: F821
dbutils.widgets.text("lakehouse", "")  # noqa: F821

# COMMAND ----------

from udp_spark.pipeline.context import notebook_context

ctx = notebook_context(spark, dbutils.widgets)  # noqa: F821  (the notebook's own session)

# COMMAND ----------

from udp_spark.pipeline.resolve import run_resolve

resolve_report = run_resolve(ctx)
display([{"records": resolve_report.records, "customers": resolve_report.customers,  # noqa: F821
          "largest_cluster": resolve_report.largest_cluster, **resolve_report.events}])
