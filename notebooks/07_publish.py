# Databricks notebook source
# MAGIC %md
# MAGIC # Publish
# MAGIC Golden profiles by survivorship rules, metrics (lifetime value, RFM), segments and
# MAGIC profile events, for the customers whose inputs changed.

# COMMAND ----------

dbutils.widgets.text("config", "conf/pipeline.yaml")  # noqa: F821
dbutils.widgets.text("data_root", "")  # noqa: F821
dbutils.widgets.text("lakehouse", "")  # noqa: F821

# COMMAND ----------

from udp_spark.pipeline.context import notebook_context

ctx = notebook_context(spark, dbutils.widgets)  # noqa: F821  (the notebook's own session)

# COMMAND ----------

from udp_spark.pipeline.publish import run_publish

publish_report = run_publish(ctx)
display([{"customers": publish_report.customers, "inserted": publish_report.profile_inserted,  # noqa: F821
          "updated": publish_report.profile_updated, **publish_report.events}])
