"""Identity resolution: blocking, comparison, pairwise scoring, clustering, stable ids.

Pure DataFrame logic: no Delta, MLflow or GraphFrames imports here (those live in
:mod:`udp_spark.io` and the platform modules), so it could run on another engine.
"""
