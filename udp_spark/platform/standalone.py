"""A Spark standalone cluster on this machine: one master and N workers, each its own JVM
started with the installed PySpark's ``spark-class``, each worker with its own work and
local folders, so executors run in separate JVMs as on a real cluster.

For ``make cluster-demo`` and the cluster test, and to try ``spark-submit --master
spark://...`` on a laptop:

    with LocalStandaloneCluster(tmp_path / "cluster", workers=2) as cluster:
        subprocess.run(["spark-submit", "--master", cluster.master_url, *submit_args(), ...])

``python -m udp_spark.platform.standalone DIR`` does the same from a shell until Ctrl-C or
``kill`` (the README's "Running on a cluster"); the master URL goes to ``DIR/master_url``.
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import signal
import subprocess
import sys
import time
import urllib.request
from pathlib import Path
from types import TracebackType

from pyspark.find_spark_home import _find_spark_home

from udp_spark.platform.process import free_port

log = logging.getLogger(__name__)


class ClusterUnavailableError(RuntimeError):
    """The master or a worker did not come up; the message points at its log."""


def spark_home() -> Path:
    """The installed PySpark's Spark home (``bin/spark-class``, ``bin/spark-submit``)."""
    return Path(_find_spark_home())


class LocalStandaloneCluster:
    """Start with :meth:`start` (or ``with``), stop with :meth:`stop`."""

    def __init__(self, workdir: Path, *, workers: int = 2, cores: int = 1,
                 memory: str = "1536m", startup_timeout: float = 90.0) -> None:
        self.workdir = Path(workdir)
        self.workers, self.cores, self.memory = workers, cores, memory
        self.port, self.ui_port = free_port(), free_port()
        self.startup_timeout = startup_timeout
        self._procs: list[subprocess.Popen[bytes]] = []

    @property
    def master_url(self) -> str:
        return f"spark://127.0.0.1:{self.port}"

    def _env(self, name: str) -> dict[str, str]:
        local = self.workdir / name / "local"
        local.mkdir(parents=True, exist_ok=True)
        return {**os.environ, "SPARK_LOCAL_IP": "127.0.0.1", "SPARK_LOCAL_DIRS": str(local),
                "SPARK_DAEMON_MEMORY": "384m", "PYSPARK_PYTHON": sys.executable,
                "SPARK_NO_DAEMONIZE": "1"}

    def _spawn(self, name: str, *args: str) -> None:
        logfile = (self.workdir / f"{name}.log").open("wb")
        cmd = [str(spark_home() / "bin" / "spark-class"), *args]
        self._procs.append(subprocess.Popen(cmd, stdout=logfile, stderr=subprocess.STDOUT,
                                            env=self._env(name), start_new_session=True))

    def status(self) -> dict[str, object]:
        """The master's JSON status (``aliveworkers``, ``activeapps``, ...)."""
        with urllib.request.urlopen(f"http://127.0.0.1:{self.ui_port}/json/",
                                    timeout=5) as r:
            return dict(json.load(r))

    def start(self) -> LocalStandaloneCluster:
        self.workdir.mkdir(parents=True, exist_ok=True)
        self._spawn("master", "org.apache.spark.deploy.master.Master", "--host", "127.0.0.1",
                    "--port", str(self.port), "--webui-port", str(self.ui_port))
        for i in range(self.workers):
            work = self.workdir / f"worker-{i}" / "work"
            work.mkdir(parents=True, exist_ok=True)
            self._spawn(f"worker-{i}", "org.apache.spark.deploy.worker.Worker",
                        "--host", "127.0.0.1", "--cores", str(self.cores), "--memory",
                        self.memory, "--work-dir", str(work), "--webui-port",
                        str(free_port()), self.master_url)
        deadline = time.monotonic() + self.startup_timeout
        alive = 0
        while time.monotonic() < deadline:
            dead = [p for p in self._procs if p.poll() is not None]
            if dead:
                self.stop()
                raise ClusterUnavailableError(f"a cluster process exited; see the logs in "
                                              f"{self.workdir}")
            try:
                alive = int(self.status().get("aliveworkers", 0))  # type: ignore[call-overload]
            except OSError:
                alive = 0
            if alive >= self.workers:
                log.info("standalone cluster up at %s with %d workers (UI port %d)",
                         self.master_url, alive, self.ui_port)
                (self.workdir / "master_url").write_text(self.master_url)
                return self
            time.sleep(0.5)
        self.stop()
        raise ClusterUnavailableError(f"{alive} of {self.workers} workers registered within "
                                      f"{self.startup_timeout:.0f}s; see {self.workdir}/*.log")

    def stop(self) -> None:
        """Stop every process (workers first: their executors go with them)."""
        for proc in reversed(self._procs):
            if proc.poll() is None:
                os.killpg(proc.pid, signal.SIGTERM)
        for proc in reversed(self._procs):
            try:
                proc.wait(timeout=20)
            except subprocess.TimeoutExpired:
                os.killpg(proc.pid, signal.SIGKILL)
                proc.wait()
        self._procs.clear()

    def __enter__(self) -> LocalStandaloneCluster:
        return self.start()

    def __exit__(self, exc_type: type[BaseException] | None, exc: BaseException | None,
                 tb: TracebackType | None) -> None:
        self.stop()


def main(argv: list[str] | None = None) -> None:
    """Run a cluster in the foreground until Ctrl-C or SIGTERM (it prints the master URL and
    writes it to DIR/master_url)."""
    parser = argparse.ArgumentParser(prog="python -m udp_spark.platform.standalone")
    parser.add_argument("workdir", type=Path)
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--cores", type=int, default=1)
    parser.add_argument("--memory", default="1536m")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(message)s")

    def interrupt(signum: int, frame: object) -> None:
        raise KeyboardInterrupt  # `kill` stops the cluster as Ctrl-C does

    signal.signal(signal.SIGTERM, interrupt)
    with LocalStandaloneCluster(args.workdir, workers=args.workers, cores=args.cores,
                                memory=args.memory) as cluster:
        sys.stdout.write(cluster.master_url + "\n")
        sys.stdout.flush()
        try:
            while True:
                time.sleep(3600)
        except KeyboardInterrupt:
            pass


if __name__ == "__main__":
    main()
