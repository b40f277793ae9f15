"""The train stage: fit the matcher (Fellegi-Sunter or supervised) and register it."""

from __future__ import annotations

import logging
from dataclasses import dataclass, field

from pyspark import StorageLevel

from udp_spark import io
from udp_spark.matching.comparisons import (
    comparisons_for,
)
from udp_spark.matching.fellegi_sunter import FSModel
from udp_spark.matching.supervised import SupervisedMatcher
from udp_spark.matching.training import train_fellegi_sunter
from udp_spark.pipeline.context import (
    StageContext,
    audited_run,
    lakehouse_identity,
    mlflow_dfs_tmpdir,
)
from udp_spark.pipeline.inputs import party_records
from udp_spark.tables import (
    SILVER_CANDIDATE_PAIRS,
)

log = logging.getLogger(__name__)
#: the training run parameter naming the lakehouse a matcher was fitted for
LAKEHOUSE_PARAM = "lakehouse"


@dataclass
class TrainReport:
    run_id: str
    model_version: str
    mlflow_run_id: str
    model: FSModel | SupervisedMatcher
    kind: str = "fellegi_sunter"
    metrics: dict[str, float] = field(default_factory=dict)

    @property
    def summary(self) -> str:
        """One line about the fitted model (for the demo and logs)."""
        if isinstance(self.model, FSModel):
            return (f"prior {self.model.prior:.3g} ({self.model.prior_method}), "
                    f"{self.model.em_iterations} EM iterations")
        f1 = self.metrics.get("holdout_f1")
        return (f"supervised ({self.model.model.algorithm})"
                + (f", held-out F1 {f1:.4f}" if f1 is not None else ""))


def _train_kind(ctx: StageContext) -> str:
    """The configured kind, with ``auto`` resolved: supervised when labels are ready."""
    kind = ctx.cfg.matching.model.kind
    if kind != "auto":
        return kind
    from udp_spark.pipeline.supervised import labels_ready

    ready, why = labels_ready(ctx)
    log.info("kind auto: %s -> %s", why, "supervised" if ready else "fellegi_sunter")
    return "supervised" if ready else "fellegi_sunter"


def _current_fs_model(ctx: StageContext) -> tuple[FSModel, str] | None:
    """The Fellegi-Sunter model to compare a supervised one with: the one behind the alias,
    else the newest registered Fellegi-Sunter version."""
    from udp_spark.platform import mlflow_store

    mcfg = ctx.cfg.matching.model
    return mlflow_store.latest_fellegi_sunter(ctx.cfg.mlflow, mcfg.registered_name, mcfg.alias)


def run_train(ctx: StageContext) -> TrainReport:
    """Fit the matcher and register it in MLflow: Fellegi-Sunter (no labels) by default, or
    the supervised matcher on ``silver.match_labels`` (``matching.model.kind``)."""
    from udp_spark.platform import mlflow_store

    mcfg = ctx.cfg.matching.model
    kind = _train_kind(ctx)
    if kind == "supervised":
        return _run_train_supervised(ctx)
    with audited_run(ctx, "train") as run:
        records = party_records(ctx).persist(StorageLevel.MEMORY_AND_DISK)
        pairs = io.read_table(ctx.spark, ctx.lakehouse.ref(SILVER_CANDIDATE_PAIRS)).select(
            "record_id_l", "record_id_r")
        n_records = records.count()
        comps = comparisons_for(ctx.cfg.matching.identifiers,
                                ctx.cfg.matching.address_moved_years)
        model = train_fellegi_sunter(records, pairs, comps, n_records, mcfg)
        records.unpersist()
        metrics = {"prior": model.prior, "em_iterations": float(model.em_iterations),
                   "em_converged": float(model.converged), "records": float(n_records)}
        reg = mlflow_store.log_and_register(
            model, settings=ctx.cfg.mlflow, name=mcfg.registered_name, alias=mcfg.alias,
            params={"kind": "fellegi_sunter", "comparisons": ",".join(model.comparisons),
                    "random_pairs": mcfg.random_pairs, "prior_method": model.prior_method,
                    "udp_run_id": run.run_id, LAKEHOUSE_PARAM: lakehouse_identity(ctx.cfg),
                    "config_hash": ctx.cfg.config_hash},
            metrics=metrics)
        run.mlflow_run_id = reg.run_id
        run.metrics.update(metrics)
        return TrainReport(run.run_id, reg.version, reg.run_id, model, "fellegi_sunter",
                           metrics)


def _run_train_supervised(ctx: StageContext) -> TrainReport:
    from udp_spark.pipeline.supervised import read_labels, train_supervised
    from udp_spark.platform import mlflow_store

    mcfg = ctx.cfg.matching.model
    read_labels(ctx)  # fails with the fix before anything else runs when there are none
    fs = _current_fs_model(ctx)
    with audited_run(ctx, "train") as run:
        records = party_records(ctx).persist(StorageLevel.MEMORY_AND_DISK)
        try:
            comps = comparisons_for(ctx.cfg.matching.identifiers,
                                    ctx.cfg.matching.address_moved_years)
            trained = train_supervised(ctx, run, records, comps, fs[0] if fs else None)
        finally:
            records.unpersist()
        if fs:
            trained.params["fs_compared_version"] = fs[1]
        reg = mlflow_store.log_and_register_supervised(
            trained.matcher, settings=ctx.cfg.mlflow, name=mcfg.registered_name,
            alias=mcfg.alias,
            params={"kind": "supervised", "configured_kind": mcfg.kind,
                    "comparisons": ",".join(trained.matcher.comparisons),
                    "udp_run_id": run.run_id, "config_hash": ctx.cfg.config_hash,
                    LAKEHOUSE_PARAM: lakehouse_identity(ctx.cfg), **trained.params},
            metrics=trained.metrics, dfs_tmpdir=mlflow_dfs_tmpdir(ctx.cfg))
        run.mlflow_run_id = reg.run_id
        run.metrics.update(trained.metrics)
        return TrainReport(run.run_id, reg.version, reg.run_id, trained.matcher, "supervised",
                           trained.metrics)
