"""The Profile API (``udp serve``): gold tables read with delta-rs into an in-process
index, served over HTTP by FastAPI with role-based views, API keys / JWTs, an access log
and event, consent and erasure intake. No Spark on the request path.

Modules: ``app`` (routes, :func:`~udp_spark.serve.app.create_app`), ``snapshot`` (the
index and its refresh), ``access`` (role views), ``security`` (keys, JWTs, rate limit),
``audit`` (``audit.api_access``), ``intake`` (events, consent, erasure writes),
``settings`` (``conf/api.yaml``), ``keys`` (minting keys; imports nothing heavy).
"""
