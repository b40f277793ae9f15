# Databricks notebook source
# MAGIC %md
# MAGIC # Score
# MAGIC Match weights and probabilities of the new or re-blocked candidate pairs with the
# MAGIC registered model (a new model version re-scores every pair).

# COMMAND ----------

dbutils.widgets.text("config", "conf/pipeline.yaml")  # noqa: F821
dbutils.widgets.text("data_root", "")  # noqa: F821
dbutils.widgets.text("lakehouse", "")  # noqa: F821

# COMMAND ----------

from udp_spark.pipeline.context import notebook_context

ctx = notebook_context(spark, dbutils.widgets)  # noqa: F821  (the notebook's own session)

# COMMAND ----------

from udp_spark.pipeline.score import run_score

display([run_score(ctx)])  # noqa: F821
