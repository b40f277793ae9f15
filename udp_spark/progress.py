"""Progress lines of a stage run: step, elapsed time and Spark jobs so far.

A stage calls :func:`step` as it moves on (``step("score pairs", rows=n)``); inside
:func:`tracking` (``audited_run`` opens it) each call logs one line, so a long run never
looks hung, and the run's audit row gets how many Spark jobs it started (``spark_jobs``: the
actions the stage ran, each a full pass of its plan). Outside a tracked run :func:`step`
does nothing.
"""

from __future__ import annotations

import contextlib
import logging
import time
from collections.abc import Iterator
from contextvars import ContextVar
from dataclasses import dataclass, field

from pyspark.sql import SparkSession

log = logging.getLogger("udp_spark.progress")


@dataclass
class Tracker:
    """Elapsed time and Spark jobs of one stage run."""

    spark: SparkSession
    stage: str
    started: float = field(default_factory=time.perf_counter)
    _jobs_before: set[int] = field(default_factory=set)
    _last: float = 0.0

    def __post_init__(self) -> None:
        self._jobs_before = self._job_ids()
        self._last = self.started

    def _job_ids(self) -> set[int]:
        """Jobs of this thread's job group that Spark still remembers (``spark.ui.retainedJobs``,
        1,000 by default: a stage that runs more reports a floor)."""
        sc = self.spark.sparkContext
        try:
            group = sc.getLocalProperty("spark.jobGroup.id")
            return set(sc.statusTracker().getJobIdsForGroup(group))
        except Exception:  # Spark Connect: no status tracker
            return set()

    @property
    def elapsed(self) -> float:
        return time.perf_counter() - self.started

    @property
    def spark_jobs(self) -> int:
        return len(self._job_ids() - self._jobs_before)

    def metrics(self) -> dict[str, float]:
        """``seconds`` and ``spark_jobs`` so far, for the run's audit row."""
        return {"seconds": self.elapsed, "spark_jobs": float(self.spark_jobs)}

    def step(self, name: str, rows: int | None = None) -> None:
        now = time.perf_counter()
        took, self._last = now - self._last, now
        log.info("%s: %s%s (step %.1fs, elapsed %.1fs, %d Spark jobs)", self.stage, name,
                 "" if rows is None else f", {rows:,} rows", took, now - self.started,
                 self.spark_jobs)


_current: ContextVar[Tracker | None] = ContextVar("udp_progress", default=None)


@contextlib.contextmanager
def tracking(spark: SparkSession, stage: str) -> Iterator[Tracker]:
    """Track the stage run inside the block (nested blocks track their own stage)."""
    tracker = Tracker(spark, stage)
    token = _current.set(tracker)
    try:
        yield tracker
    finally:
        _current.reset(token)


def step(name: str, rows: int | None = None) -> None:
    """Log that the current stage finished ``name`` (``rows``: how many, where known)."""
    tracker = _current.get()
    if tracker is not None:
        tracker.step(name, rows)
