"""The one place a SparkSession is built.

On a cluster (``spark-submit``, Databricks, a notebook) the session that exists is used as
it is, with its configuration. Locally a session is built with the pinned Delta jars from
:mod:`udp_spark.jars`, the Delta SQL extension and catalog, and laptop-sized defaults; it
never touches the network.
"""

from __future__ import annotations

import logging
import os
import shutil
import subprocess
import sys
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

from pyspark import SparkContext
from pyspark.sql import SparkSession

from udp_spark.config import SparkProfile
from udp_spark.jars import local_jar_paths

log = logging.getLogger(__name__)

# Defaults for a locally built session; the profile's conf and the caller's extra conf win.
LOCAL_DEFAULTS: dict[str, str] = {
    "spark.sql.extensions": "io.delta.sql.DeltaSparkSessionExtension",
    "spark.sql.catalog.spark_catalog": "org.apache.spark.sql.delta.catalog.DeltaCatalog",
    "spark.sql.session.timeZone": "UTC",
    "spark.sql.shuffle.partitions": "8",
    "spark.default.parallelism": "4",
    "spark.driver.memory": "4g",
    "spark.sql.adaptive.enabled": "true",
    "spark.sql.execution.arrow.pyspark.enabled": "true",
    "spark.ui.showConsoleProgress": "false",
    # Delta: small local tables do not need 50 log-replay partitions.
    "spark.databricks.delta.snapshotPartitions": "2",
    # Parallel reads of a laptop's tables. A Parquet file is read by one task per row group,
    # and OPTIMIZE / REORG (the erasure's purge) pack a table into files of up to 1 GB, one
    # task per file written: a 130 MB table became one file of one or two row groups, read
    # and rewritten on one core. Row groups of 16 MB and files of up to 32 MB: a full scan
    # of the 1M bench's blocking index (5.2M rows) 3.4-4.5 s -> 2.0-2.8 s, the REORG of
    # three deletion-vector tables 51-60 s -> 42-43 s (docs/bench.md, session 32).
    "spark.hadoop.parquet.block.size": str(16 * 1024 * 1024),
    "spark.databricks.delta.optimize.maxFileSize": str(32 * 1024 * 1024),
    "spark.databricks.delta.schema.autoMerge.enabled": "false",
    # Change data feed on every table created: the change-driven stages read what changed.
    "spark.databricks.delta.properties.defaults.enableChangeDataFeed": "true",
    # No per-column min/max statistics in the Delta log: they would copy names, e-mails and
    # phones into log files that a DELETE cannot reach, so an erased person would survive
    # there (docs/privacy.md). The stages join on keys, which statistics rarely prune.
    "spark.databricks.delta.properties.defaults.dataSkippingNumIndexedCols": "0",
    # PySpark 4 records the Python call site of every DataFrame and column function for
    # error messages: several JVM round trips and a stack walk per call. Standardize builds
    # thousands of column expressions per run; with it on, building its plan took longer
    # than running it (measured: 142,907 JVM calls, 38.9 s of 46 s on 40 people).
    "spark.python.sql.dataFrameDebugging.enabled": "false",
}


def cache_jvm_function_lookups() -> bool:
    """Make PySpark look up each JVM column function once per process instead of per call.

    Every ``F.col``, ``F.when``, ``F.regexp_replace`` ... resolves
    ``org.apache.spark.sql.functions`` and then the function's name on the JVM: two py4j
    round trips before the call itself. Standardize builds about 12,000 such expressions
    per run; on 30 people (warm JVM) the lookups were 2.4 of its 21.8 s (cProfile), and
    caching them took a warm standardize from 22.4 to 19.7 s (medians of 3,
    docs/testing.md). The cached handle
    is the same py4j object PySpark would build (a static method reference holding no JVM
    object), kept per JVM gateway view; Spark Connect does not take this path. Returns
    whether the cache is in place (False if this PySpark has no such function).
    """
    from pyspark.sql.functions import builtin

    lookup = getattr(builtin, "_get_jvm_function", None)
    if lookup is None:
        return False
    if getattr(lookup, "_udp_cached", False):
        return True
    cache: dict[str, tuple[object, Callable[..., Any]]] = {}

    def cached(name: str, sc: SparkContext) -> Callable[..., Any]:
        jvm = sc._jvm
        hit = cache.get(name)
        if hit is not None and hit[0] is jvm:  # same gateway view: the handle is valid
            return hit[1]
        fn = lookup(name, sc)
        cache[name] = (jvm, fn)
        return fn

    cached._udp_cached = True  # type: ignore[attr-defined]
    builtin._get_jvm_function = cached
    return True


class SessionError(RuntimeError):
    """A Spark session cannot be built here; the message says what to install or run."""


def _check_java() -> None:
    java_home = os.environ.get("JAVA_HOME")
    java = str(Path(java_home) / "bin" / "java") if java_home else shutil.which("java")
    if not java or not Path(java).exists():
        raise SessionError(
            "Java not found: Spark 4 needs Java 17 or 21. Install OpenJDK 17 "
            "(e.g. `apt-get install openjdk-17-jre-headless`) and/or set JAVA_HOME."
        )
    try:
        out = subprocess.run([java, "-version"], capture_output=True, text=True, timeout=30)
    except OSError as exc:  # pragma: no cover - broken java binary
        raise SessionError(f"cannot run {java}: {exc}") from exc
    first = (out.stderr or out.stdout).splitlines()[:1]
    version = first[0] if first else ""
    if '"1.8' in version or '"11' in version:
        raise SessionError(f"Spark 4 needs Java 17 or newer; {java} is {version}")


# JVM options for short runs on small data (the chaos harness, the tests' subprocesses):
# C1 only and the serial collector. A fresh JVM spends more CPU compiling with C2 than a
# small run ever wins back: measured on a 40-person pipeline in one fresh JVM, 115 s of JVM
# CPU against 138 s with the defaults. Not for real data, where C2's code pays.
SHORT_RUN_JAVA_OPTIONS = "-XX:TieredStopAtLevel=1 -XX:+UseSerialGC"


def _with_log4j(conf: dict[str, str]) -> None:
    """Point the driver at the packaged log4j2.properties (warnings, minus known noise)."""
    log4j = Path(__file__).parent / "data" / "log4j2.properties"
    conf["spark.driver.extraJavaOptions"] = (
        f"-Dlog4j2.configurationFile=file:{log4j} " + conf.get("spark.driver.extraJavaOptions", "")
    ).strip()


def get_session(profile: SparkProfile | None = None,
                extra_conf: Mapping[str, str] | None = None) -> SparkSession:
    """Return the active session, or build a local one with Delta.

    Args:
        profile: app name, master and conf for a local session (ignored if one exists).
        extra_conf: conf that wins over the profile (tests use it).

    Raises:
        SessionError: Java or the Delta jars are missing, with what to run.
    """
    cache_jvm_function_lookups()
    active = SparkSession.getActiveSession()
    if active is not None:
        return active
    if os.environ.get("PYSPARK_GATEWAY_PORT"):
        # Launched by spark-submit / a managed runtime: its JVM and conf are authoritative.
        return SparkSession.builder.getOrCreate()

    profile = profile or SparkProfile()
    _check_java()
    jars = local_jar_paths()
    # Python workers must run this interpreter (the venv), not whatever python3 is on PATH.
    os.environ.setdefault("PYSPARK_PYTHON", sys.executable)
    conf = {**LOCAL_DEFAULTS, **profile.conf, **(extra_conf or {})}
    _with_log4j(conf)
    # A laptop session talks to itself only: bind to loopback, whatever the hostname says.
    os.environ.setdefault("SPARK_LOCAL_IP", "127.0.0.1")
    user_jars = [j for j in conf.pop("spark.jars", "").split(",") if j]
    builder = SparkSession.builder.appName(profile.app_name).master(profile.master)
    builder = builder.config("spark.jars", ",".join([str(j) for j in jars] + user_jars))
    for key, value in conf.items():
        builder = builder.config(key, value)
    spark = builder.getOrCreate()
    spark.sparkContext.setLogLevel("WARN")
    log.info("local Spark %s session with Delta (%d jars)", spark.version, len(jars))
    return spark


def package_zip(directory: Path | None = None) -> Path:
    """The ``udp_spark`` package as a zip for ``spark-submit --py-files`` (built once per
    package content, beside the jars): how the library reaches the executors' Python."""
    import hashlib
    import zipfile

    from udp_spark.jars import jars_dir

    root = Path(__file__).parent
    files = sorted(p for p in root.rglob("*") if p.is_file() and "__pycache__" not in p.parts)
    digest = hashlib.sha256()
    for p in files:
        digest.update(str(p.relative_to(root)).encode())
        digest.update(p.read_bytes())
    out = (directory or jars_dir().parent / "dist") / f"udp_spark-{digest.hexdigest()[:12]}.zip"
    if not out.is_file():
        out.parent.mkdir(parents=True, exist_ok=True)
        tmp = out.with_suffix(".tmp")
        with zipfile.ZipFile(tmp, "w", zipfile.ZIP_DEFLATED) as zf:
            for p in files:
                zf.write(p, Path("udp_spark") / p.relative_to(root))
        tmp.replace(out)
    return out


def submit_args(profile: SparkProfile | None = None, *, python: str | None = None
                ) -> list[str]:
    """``spark-submit`` options for a job of this project on any master: the pinned jars,
    the package zip, the Delta extension and catalog, the defaults a local session gets
    (change data feed on new tables, UTC...) and the profile's conf, and the Python the
    executors run (``python``, default this interpreter: on a real cluster, a path that
    exists on every node, e.g. an environment shipped with ``--archives``)."""
    profile = profile or SparkProfile()
    conf = {**LOCAL_DEFAULTS, **profile.conf,
            "spark.pyspark.python": python or sys.executable}
    _with_log4j(conf)  # the driver's logging, as locally
    jars = [str(j) for j in local_jar_paths()]
    jars += [j for j in conf.pop("spark.jars", "").split(",") if j]
    args = ["--jars", ",".join(jars), "--py-files", str(package_zip())]
    for key, value in conf.items():
        args += ["--conf", f"{key}={value}"]
    return args
