"""MLflow: log a trained matcher, register a version, move an alias, load by alias.

The registered model is an MLflow pyfunc (it scores a pandas frame of comparison levels) whose
artifact ``fs_model.json`` holds the parameters; Spark scoring reads that artifact and
evaluates it as column expressions.
"""

from __future__ import annotations

import logging
import tempfile
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import mlflow
import mlflow.pyfunc
import pandas as pd
from mlflow import MlflowClient

from udp_spark.config import MlflowSettings
from udp_spark.matching.fellegi_sunter import MISSING, FSModel, match_probability

log = logging.getLogger(__name__)

MODEL_ARTIFACT = "fs_model"


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


@dataclass(frozen=True)
class RegisteredModel:
    name: str
    version: str
    run_id: str


def configure(settings: MlflowSettings) -> None:
    mlflow.set_tracking_uri(settings.tracking_uri)
    if settings.registry_uri:
        mlflow.set_registry_uri(settings.registry_uri)
    mlflow.set_experiment(settings.experiment)


def _weights_chart(model: FSModel, path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    table = model.weights_table()
    table = table[table["level"] != MISSING]
    fig, ax = plt.subplots(figsize=(8, 0.28 * len(table) + 1))
    labels = [f"{r.comparison}: {r.label}" for r in table.itertuples()]
    colors = ["tab:green" if w > 0 else "tab:red" for w in table["weight"]]
    ax.barh(labels[::-1], table["weight"].tolist()[::-1], color=colors[::-1])
    ax.axvline(0, color="black", linewidth=0.8)
    ax.set_xlabel("match weight (log2 Bayes factor)")
    ax.set_title("Match weight per comparison level")
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def log_and_register(model: FSModel, *, settings: MlflowSettings, name: str, alias: str,
                     params: Mapping[str, object], metrics: Mapping[str, float]
                     ) -> RegisteredModel:
    """Log params, metrics, the weights table and chart, and the model; register a version
    and point ``alias`` at it."""
    configure(settings)
    with mlflow.start_run(run_name="train_matcher") as run, \
            tempfile.TemporaryDirectory() as tmp:
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
        version = str(info.registered_model_version)
        MlflowClient().set_registered_model_alias(name, alias, version)
        log.info("registered %s version %s as @%s (run %s)", name, version, alias,
                 run.info.run_id)
        return RegisteredModel(name, version, run.info.run_id)


def load_by_alias(settings: MlflowSettings, name: str, alias: str) -> tuple[FSModel, str]:
    """The registered model's parameters and its version, looked up by alias."""
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
        if not found:
            raise LookupError(f"model {name} version {mv.version} has no fs_model.json")
        return FSModel.from_json(found[0].read_text()), str(mv.version)


def log_evaluation(settings: MlflowSettings, metrics: Mapping[str, float],
                   params: Mapping[str, object]) -> str:
    configure(settings)
    with mlflow.start_run(run_name="evaluate") as run:
        mlflow.log_params({k: str(v)[:500] for k, v in params.items()})
        mlflow.log_metrics({k: float(v) for k, v in metrics.items()})
        mlflow.log_dict(dict(metrics), "evaluation.json")
        return str(run.info.run_id)
