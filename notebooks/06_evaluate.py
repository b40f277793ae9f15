# Databricks notebook source
# MAGIC %md
# MAGIC # Evaluate
# MAGIC Pairwise and B-cubed precision, recall and F1 of the clusters against a truth file
# MAGIC (`record_id,entity_id`), logged to MLflow.

# COMMAND ----------

dbutils.widgets.text("config", "conf/pipeline.yaml")  # noqa: F821
dbutils.widgets.text("data_root", "")  # noqa: F821
dbutils.widgets.text("lakehouse", "")  # noqa: F821
dbutils.widgets.text("truth", "")  # noqa: F821

# COMMAND ----------

from udp_spark.pipeline.context import notebook_context

ctx = notebook_context(spark, dbutils.widgets)  # noqa: F821  (the notebook's own session)

# COMMAND ----------

from udp_spark.pipeline.evaluate import run_evaluate

display([run_evaluate(ctx, dbutils.widgets.get("truth"))])  # noqa: F821
