"""MLflow: log a trained matcher, register a version, move an alias, load by alias.

The registered model is an MLflow pyfunc (it scores a pandas frame of comparison levels).
A Fellegi-Sunter version's artifact ``fs_model.json`` holds the parameters; Spark scoring
reads that artifact and evaluates it as column expressions. A supervised version holds
``supervised_model.json`` (features, coefficients or importances) and ``spark_pipeline/``
(the fitted Spark ML PipelineModel, saved with its own writer); scoring loads the pipeline.
"""

from __future__ import annotations

import logging
import os
import socket
import tempfile
import uuid
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import mlflow
import mlflow.pyfunc
import pandas as pd
from mlflow import MlflowClient
from mlflow.exceptions import MlflowException

from udp_spark.config import MlflowSettings
from udp_spark.faults import crash_point
from udp_spark.matching.fellegi_sunter import MISSING, FSModel, match_probability
from udp_spark.matching.supervised import LN2, SupervisedMatcher, SupervisedModel
from udp_spark.platform.process import pid_alive

log = logging.getLogger(__name__)

MODEL_ARTIFACT = "fs_model"
SUPERVISED_ARTIFACT = "supervised_model"
PIPELINE_ARTIFACT = "spark_pipeline"
HOST_TAG, PID_TAG = "udp.host", "udp.pid"

# What scoring gets back from the registry, whichever kind of matcher was registered.
Matcher = FSModel | SupervisedMatcher


class FSMatcherPyfunc(mlflow.pyfunc.PythonModel):  # type: ignore[misc,name-defined]
    """pyfunc wrapper: comparison levels (one column per comparison) -> match probability."""

    def load_context(self, context: Any) -> None:
        self.model = FSModel.from_json(Path(context.artifacts[MODEL_ARTIFACT]).read_text())

    def predict(self, context: Any, model_input: pd.DataFrame,
                params: dict[str, Any] | None = None) -> pd.Series:
        m = self.model
        weights = pd.Series(m.prior_weight, index=model_input.index)
        for c in m.comparisons:
            lv = model_input[c].fillna(MISSING).astype(int)
            weights += lv.map(lambda x, c=c: 0.0 if x == MISSING else m.weight(c, x))
        return weights.map(match_probability)


class SupervisedMatcherPyfunc(mlflow.pyfunc.PythonModel):  # type: ignore[misc,name-defined]
    """pyfunc wrapper of a supervised matcher: comparison levels -> match probability.

    Logistic regression is evaluated from its coefficients in pandas (no Spark needed);
    gradient-boosted trees load the Spark ML pipeline into the active Spark session.
    """

    def load_context(self, context: Any) -> None:
        self.model = SupervisedModel.from_json(
            Path(context.artifacts[SUPERVISED_ARTIFACT]).read_text())
        self.pipeline_path = context.artifacts[PIPELINE_ARTIFACT]

    def predict(self, context: Any, model_input: pd.DataFrame,
                params: dict[str, Any] | None = None) -> pd.Series:
        m = self.model
        if m.algorithm == "lr":
            log_odds = pd.Series(m.intercept, index=model_input.index)
            for c in m.comparisons:
                lv = model_input[c].fillna(MISSING).astype(int)
                log_odds += lv.map(lambda x, c=c: m.coefficients[c].get(x, 0.0))
            return (log_odds / LN2).map(match_probability)
        from pyspark.ml import PipelineModel
        from pyspark.sql import SparkSession

        spark = SparkSession.getActiveSession()
        if spark is None:
            raise RuntimeError("a gbt matcher scores with Spark: start a SparkSession first")
        from udp_spark.matching.supervised import supervised_scores

        matcher = SupervisedMatcher(m, PipelineModel.load(self.pipeline_path))
        frame = spark.createDataFrame(model_input[m.comparisons].fillna(MISSING).astype(int)
                                      .reset_index(names="_row"))
        scored: pd.DataFrame = frame.transform(supervised_scores(matcher)).select(
            "_row", "match_probability").toPandas()
        return scored.set_index("_row")["match_probability"].reindex(model_input.index)


@dataclass(frozen=True)
class RegisteredModel:
    name: str
    version: str
    run_id: str


def configure(settings: MlflowSettings) -> None:
    """Point MLflow at the configured tracking store and experiment, and close the runs that
    a killed process of this machine left RUNNING (:func:`close_abandoned_runs`)."""
    db = _sqlite_file(settings)
    if db is not None:  # a store in the lakehouse root: the lakehouse may not exist yet
        db.parent.mkdir(parents=True, exist_ok=True)
    mlflow.set_tracking_uri(settings.tracking_uri)
    if settings.registry_uri:
        mlflow.set_registry_uri(settings.registry_uri)
    client = MlflowClient()
    if client.get_experiment_by_name(settings.experiment) is None:
        try:
            client.create_experiment(settings.experiment,
                                     artifact_location=artifact_location(settings))
        except MlflowException as exc:  # another process created it meanwhile
            if exc.error_code != "RESOURCE_ALREADY_EXISTS":
                raise
    experiment = mlflow.set_experiment(settings.experiment)
    close_abandoned_runs(experiment.experiment_id)


def artifact_location(settings: MlflowSettings) -> str | None:
    """Where a new experiment's artifacts go: the configured location, else ``mlruns``
    beside a SQLite tracking file (MLflow's own default is ``./mlruns`` of whatever the
    working directory is, which splits one store over two places), else the server's."""
    if settings.artifact_location:
        return settings.artifact_location
    db = _sqlite_file(settings)
    return str(db.parent / "mlruns") if db is not None else None


def _sqlite_file(settings: MlflowSettings) -> Path | None:
    """The tracking store's file when it is SQLite (absolute), else None."""
    if not settings.tracking_uri.startswith("sqlite:///"):
        return None
    return Path(settings.tracking_uri.removeprefix("sqlite:///")).resolve()


def _process_tags() -> dict[str, str]:
    """Which process a run belongs to, so that a later one can tell it died."""
    return {HOST_TAG: socket.gethostname(), PID_TAG: str(os.getpid())}


def close_abandoned_runs(experiment_id: str) -> list[str]:
    """Mark KILLED the runs still RUNNING whose process, on this machine, no longer exists
    (a stage killed mid-run never ends its MLflow run). Runs of other machines are left as
    they are: from here a live one cannot be told from a dead one. Returns their run ids."""
    client = MlflowClient()
    host = socket.gethostname()
    closed = []
    for run in client.search_runs([experiment_id], "attributes.status = 'RUNNING'",
                                  max_results=1000):
        tags = run.data.tags
        pid = tags.get(PID_TAG, "")
        if tags.get(HOST_TAG) == host and pid.isdigit() and not pid_alive(int(pid)):
            client.set_terminated(run.info.run_id, status="KILLED")
            closed.append(run.info.run_id)
    if closed:
        log.warning("marked %d MLflow run(s) KILLED whose process died while they ran: %s",
                    len(closed), ", ".join(closed))
    return closed


def _weights_chart(model: FSModel, path: Path) -> None:
    _level_chart(model.weights_table(), path, "match weight (log2 Bayes factor)",
                 "Match weight per comparison level")


def _level_chart(table: pd.DataFrame, path: Path, xlabel: str, title: str) -> None:
    """Horizontal bars of ``weight`` per comparison level (missing levels left out)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    table = table[table["level"] != MISSING]
    fig, ax = plt.subplots(figsize=(8, 0.28 * len(table) + 1))
    labels = [f"{r.comparison}: {r.label}" for r in table.itertuples()]
    colors = ["tab:green" if w > 0 else "tab:red" for w in table["weight"]]
    ax.barh(labels[::-1], table["weight"].tolist()[::-1], color=colors[::-1])
    ax.axvline(0, color="black", linewidth=0.8)
    ax.set_xlabel(xlabel)
    ax.set_title(title)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def log_and_register(model: FSModel, *, settings: MlflowSettings, name: str, alias: str,
                     params: Mapping[str, object], metrics: Mapping[str, float]
                     ) -> RegisteredModel:
    """Log params, metrics, the weights table and chart, and the model; register a version
    and point ``alias`` at it."""
    configure(settings)
    with mlflow.start_run(run_name="train_matcher", tags=_process_tags()) as run, \
            tempfile.TemporaryDirectory() as tmp:
        crash_point("train:after_mlflow_run_started")
        mlflow.log_params({k: str(v)[:500] for k, v in params.items()})
        mlflow.log_metrics({k: float(v) for k, v in metrics.items()})
        model_path = Path(tmp) / "fs_model.json"
        model_path.write_text(model.to_json())
        weights = model.weights_table()
        weights.to_csv(Path(tmp) / "match_weights.csv", index=False)
        mlflow.log_artifact(str(Path(tmp) / "match_weights.csv"))
        _weights_chart(model, Path(tmp) / "match_weights.png")
        mlflow.log_artifact(str(Path(tmp) / "match_weights.png"))
        info = mlflow.pyfunc.log_model(
            name="matcher", python_model=FSMatcherPyfunc(),
            artifacts={MODEL_ARTIFACT: str(model_path)},
            registered_model_name=name, pip_requirements=["udp-spark"],
        )
        return _point_alias(info, name, alias, run.info.run_id)


def _point_alias(info: Any, name: str, alias: str, run_id: str) -> RegisteredModel:
    """Point ``alias`` at the version a ``log_model`` call just registered."""
    version = str(info.registered_model_version)
    crash_point("train:after_model_registered")
    MlflowClient().set_registered_model_alias(name, alias, version)
    crash_point("train:after_alias_set")
    log.info("registered %s version %s as @%s (run %s)", name, version, alias, run_id)
    return RegisteredModel(name, version, run_id)


def log_and_register_supervised(matcher: SupervisedMatcher, *, settings: MlflowSettings,
                                name: str, alias: str, params: Mapping[str, object],
                                metrics: Mapping[str, float], dfs_tmpdir: str | None = None
                                ) -> RegisteredModel:
    """Log a supervised matcher (params, held-out metrics, the weight or importance per level
    as a table and chart, the Spark ML pipeline inside a pyfunc model); register a version
    and point ``alias`` at it."""
    configure(settings)
    m = matcher.model
    with mlflow.start_run(run_name="train_matcher", tags=_process_tags()) as run, \
            tempfile.TemporaryDirectory() as tmp:
        crash_point("train:after_mlflow_run_started")
        mlflow.log_params({k: str(v)[:500] for k, v in params.items()})
        mlflow.log_metrics({k: float(v) for k, v in metrics.items()})
        model_path = Path(tmp) / "supervised_model.json"
        model_path.write_text(m.to_json())
        pipeline_path = Path(tmp) / "spark_pipeline"
        _save_spark_model(matcher.pipeline, pipeline_path, dfs_tmpdir)
        weights = m.weights_table()
        weights.to_csv(Path(tmp) / "match_weights.csv", index=False)
        mlflow.log_artifact(str(Path(tmp) / "match_weights.csv"))
        if m.algorithm == "lr":
            _level_chart(weights, Path(tmp) / "match_weights.png",
                         "logistic regression coefficient (log2 odds)",
                         "Supervised match weight per comparison level")
        else:
            _level_chart(weights, Path(tmp) / "match_weights.png",
                         "feature importance", "Gradient-boosted trees: importance per "
                         "comparison level")
        mlflow.log_artifact(str(Path(tmp) / "match_weights.png"))
        info = mlflow.pyfunc.log_model(
            name="matcher", python_model=SupervisedMatcherPyfunc(),
            artifacts={SUPERVISED_ARTIFACT: str(model_path),
                       PIPELINE_ARTIFACT: str(pipeline_path)},
            registered_model_name=name, pip_requirements=["udp-spark"],
        )
        return _point_alias(info, name, alias, run.info.run_id)


def alias_version(settings: MlflowSettings, name: str, alias: str) -> str | None:
    """The version ``alias`` points at, or None (no such model or alias); reads no artifact."""
    configure(settings)
    try:
        return str(MlflowClient().get_model_version_by_alias(name, alias).version)
    except mlflow.exceptions.MlflowException:
        return None


def alias_training(settings: MlflowSettings, name: str, alias: str
                   ) -> tuple[str, dict[str, str]] | None:
    """The version ``alias`` points at and its training run's parameters (empty when the
    run is gone), or None (no such model or alias); reads no artifact."""
    configure(settings)
    client = MlflowClient()
    try:
        mv = client.get_model_version_by_alias(name, alias)
    except mlflow.exceptions.MlflowException:
        return None
    try:
        params = dict(client.get_run(mv.run_id).data.params) if mv.run_id else {}
    except mlflow.exceptions.MlflowException:
        params = {}
    return str(mv.version), params


def _save_spark_model(model: Any, local: Path, dfs_tmpdir: str | None) -> None:
    """Write a Spark ML model to a local folder of the driver for MLflow to log. The
    executors write its data, so with ``dfs_tmpdir`` (a place they all reach, as on a
    cluster) it goes there first and is copied down, the way ``mlflow.spark`` does it."""
    if dfs_tmpdir is None:
        model.write().overwrite().save(str(local))
        return
    from pyspark.sql import SparkSession

    from udp_spark import io

    spark = SparkSession.active()
    remote = f"{dfs_tmpdir.rstrip('/')}/{uuid.uuid4().hex}"
    try:
        model.write().overwrite().save(remote)
        io.copy_to_local(spark, remote, str(local))
    finally:
        io.delete_path(spark, remote)


def _load_spark_model(local: Path, dfs_tmpdir: str | None) -> Any:
    """Load a Spark ML pipeline downloaded from MLflow: through ``dfs_tmpdir`` when set (the
    executors read its data), else from the local folder."""
    from pyspark.ml import PipelineModel

    if dfs_tmpdir is None:
        return PipelineModel.load(str(local))
    from pyspark.sql import SparkSession

    from udp_spark import io

    spark = SparkSession.active()
    remote = f"{dfs_tmpdir.rstrip('/')}/{uuid.uuid4().hex}"
    try:
        io.copy_from_local(spark, str(local), remote)
        return PipelineModel.load(remote)  # read whole into the JVM: the copy can go
    finally:
        io.delete_path(spark, remote)


def load_by_alias(settings: MlflowSettings, name: str, alias: str,
                  dfs_tmpdir: str | None = None) -> tuple[Matcher, str]:
    """The registered matcher and its version, looked up by alias.

    A Fellegi-Sunter version comes back as its :class:`FSModel`; a supervised version as a
    :class:`SupervisedMatcher` whose Spark ML pipeline is loaded into the active session.
    """
    configure(settings)
    client = MlflowClient()
    try:
        mv = client.get_model_version_by_alias(name, alias)
    except mlflow.exceptions.MlflowException as exc:
        raise LookupError(f"no model {name}@{alias} in the registry at "
                          f"{settings.tracking_uri}: run `udp train` first") from exc
    with tempfile.TemporaryDirectory() as tmp:
        local = mlflow.artifacts.download_artifacts(artifact_uri=f"models:/{name}/{mv.version}",
                                                    dst_path=tmp)
        found = list(Path(local).rglob("fs_model.json"))
        if found:
            return FSModel.from_json(found[0].read_text()), str(mv.version)
        sup = list(Path(local).rglob("supervised_model.json"))
        pipes = [p for p in Path(local).rglob(PIPELINE_ARTIFACT) if p.is_dir()]
        if sup and pipes:
            # Loading reads the whole (small) model into the JVM, so the download folder
            # can go once this returns.
            matcher = SupervisedMatcher(SupervisedModel.from_json(sup[0].read_text()),
                                        _load_spark_model(pipes[0], dfs_tmpdir))
            return matcher, str(mv.version)
        raise LookupError(f"model {name} version {mv.version} has neither fs_model.json nor "
                          f"supervised_model.json with spark_pipeline/: it was not registered "
                          f"by `udp train`")


def latest_fellegi_sunter(settings: MlflowSettings, name: str, alias: str,
                          max_versions: int = 20) -> tuple[FSModel, str] | None:
    """The Fellegi-Sunter model behind ``alias`` or, if a supervised one is there or the
    alias is not set yet, the newest Fellegi-Sunter version (of the last ``max_versions``);
    None if there is none."""
    configure(settings)
    client = MlflowClient()
    try:
        every = sorted((str(v.version) for v in client.search_model_versions(
            f"name = '{name}'")), key=int, reverse=True)
    except mlflow.exceptions.MlflowException:
        return None
    try:
        current = str(client.get_model_version_by_alias(name, alias).version)
        versions = [current, *(v for v in every if v != current)]
    except mlflow.exceptions.MlflowException:
        versions = every
    for version in versions[:max_versions]:
        with tempfile.TemporaryDirectory() as tmp:
            local = mlflow.artifacts.download_artifacts(
                artifact_uri=f"models:/{name}/{version}", dst_path=tmp)
            found = list(Path(local).rglob("fs_model.json"))
            if found:
                return FSModel.from_json(found[0].read_text()), version
    return None


def log_evaluation(settings: MlflowSettings, metrics: Mapping[str, float],
                   params: Mapping[str, object]) -> str:
    configure(settings)
    with mlflow.start_run(run_name="evaluate", tags=_process_tags()) as run:
        mlflow.log_params({k: str(v)[:500] for k, v in params.items()})
        mlflow.log_metrics({k: float(v) for k, v in metrics.items()})
        mlflow.log_dict(dict(metrics), "evaluation.json")
        return str(run.info.run_id)
