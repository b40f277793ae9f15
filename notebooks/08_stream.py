# Databricks notebook source
# MAGIC %md
# MAGIC # Stream
# MAGIC `udp stream`: a Structured Streaming query over the landing folders whose
# MAGIC micro-batches run the change-driven stages. `available_now` processes what is there and
# MAGIC stops (a scheduled notebook); clear it to run until the notebook is stopped.

# COMMAND ----------

dbutils.widgets.text("config", "conf/pipeline.yaml")  # noqa: F821
dbutils.widgets.text("data_root", "")  # noqa: F821
dbutils.widgets.text("lakehouse", "")  # noqa: F821
dbutils.widgets.dropdown("available_now", "true", ["true", "false"])  # noqa: F821

# COMMAND ----------

from udp_spark.pipeline.context import notebook_context

ctx = notebook_context(spark, dbutils.widgets)  # noqa: F821  (the notebook's own session)

# COMMAND ----------

from udp_spark.pipeline.stream import run_stream

batches = run_stream(ctx, available_now=dbutils.widgets.get("available_now") == "true")  # noqa: F821
display([{"batch": b.batch_id, "files": b.files, "rows": b.rows_landed, "seconds": b.seconds,  # noqa: F821
          **b.profile_events} for b in batches] or [{"batch": None}])
