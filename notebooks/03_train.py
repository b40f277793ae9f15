# Databricks notebook source
# MAGIC %md
# MAGIC # Train the matcher
# MAGIC Fellegi-Sunter with EM (no labels, the default) or the supervised matcher on
# MAGIC `silver.match_labels`, logged and registered in MLflow under the configured alias.

# COMMAND ----------

dbutils.widgets.text("config", "conf/pipeline.yaml")  # noqa: F821
dbutils.widgets.text("data_root", "")  # noqa: F821
dbutils.widgets.text("lakehouse", "")  # noqa: F821

# COMMAND ----------

from udp_spark.pipeline.context import notebook_context

ctx = notebook_context(spark, dbutils.widgets)  # noqa: F821  (the notebook's own session)

# COMMAND ----------

from udp_spark.pipeline.train import run_train

train_report = run_train(ctx)
print(train_report.summary)

# COMMAND ----------

model = train_report.model
display(getattr(model, "model", model).weights_table())  # noqa: F821
