"""A single-node Kafka broker in KRaft mode, in its own JVM, from the jars set-up fetched.

For the Kafka source's tests and for trying ``format: kafka`` sources on a laptop: no
ZooKeeper, no Docker, nothing but Java and the pinned jars in
:func:`udp_spark.jars.kafka_broker_dir`. Not a production broker: one node, replication 1,
data in a folder that :meth:`LocalKafka.stop` leaves behind for inspection.

    with LocalKafka(tmp_path / "kafka") as kafka:
        df.write.format("kafka").option("kafka.bootstrap.servers", kafka.bootstrap)...
"""

from __future__ import annotations

import base64
import logging
import shutil
import socket
import subprocess
import time
import uuid
from pathlib import Path
from types import TracebackType

from udp_spark.jars import KAFKA_BROKER_JARS, kafka_broker_dir
from udp_spark.platform.process import free_port

log = logging.getLogger(__name__)


class KafkaUnavailableError(RuntimeError):
    """The broker cannot start: Java or its jars are missing, or it did not come up."""


def _listening(port: int) -> bool:
    with socket.socket() as s:
        s.settimeout(0.5)
        return s.connect_ex(("127.0.0.1", port)) == 0


class LocalKafka:
    """Start with :meth:`start` (or ``with``), stop with :meth:`stop`."""

    def __init__(self, workdir: Path, *, port: int | None = None, heap: str = "512m",
                 startup_timeout: float = 90.0, cluster_id: str | None = None) -> None:
        """``cluster_id``: the KRaft cluster id (22 URL-safe base64 characters, Kafka's
        ``Uuid``); a random one by default."""
        self.workdir = Path(workdir)
        self.cluster_id = cluster_id or base64.urlsafe_b64encode(
            uuid.uuid4().bytes).decode().rstrip("=")
        self.port = port or free_port()
        self.controller_port = free_port()
        self.heap = heap
        self.startup_timeout = startup_timeout
        self._proc: subprocess.Popen[bytes] | None = None

    @property
    def bootstrap(self) -> str:
        """``host:port`` for ``kafka.bootstrap.servers``."""
        return f"127.0.0.1:{self.port}"

    def _classpath(self) -> str:
        jars = kafka_broker_dir()
        missing = [j.file_name for j in KAFKA_BROKER_JARS if not (jars / j.file_name).is_file()]
        if missing:
            raise KafkaUnavailableError(f"Kafka broker jars missing in {jars} ({missing[:3]}"
                                        f"{'...' if len(missing) > 3 else ''}): run "
                                        "`make setup` (or `udp setup-jars`)")
        return str(jars / "*")

    def _config(self) -> Path:
        logs = self.workdir / "data"
        props = {
            "process.roles": "broker,controller",
            "node.id": "1",
            "controller.quorum.voters": f"1@127.0.0.1:{self.controller_port}",
            "listeners": f"PLAINTEXT://127.0.0.1:{self.port},"
                         f"CONTROLLER://127.0.0.1:{self.controller_port}",
            "advertised.listeners": f"PLAINTEXT://127.0.0.1:{self.port}",
            "controller.listener.names": "CONTROLLER",
            "inter.broker.listener.name": "PLAINTEXT",
            "listener.security.protocol.map": "CONTROLLER:PLAINTEXT,PLAINTEXT:PLAINTEXT",
            "log.dirs": str(logs),
            "num.partitions": "1",
            "offsets.topic.replication.factor": "1",
            "transaction.state.log.replication.factor": "1",
            "transaction.state.log.min.isr": "1",
            "group.initial.rebalance.delay.ms": "0",
            "auto.create.topics.enable": "true",
        }
        path = self.workdir / "server.properties"
        path.write_text("".join(f"{k}={v}\n" for k, v in props.items()))
        return path

    def start(self) -> LocalKafka:
        java = shutil.which("java")
        if java is None:
            raise KafkaUnavailableError("java is not on PATH")
        self.workdir.mkdir(parents=True, exist_ok=True)
        cp, config = self._classpath(), self._config()
        # '=' binds the value: a random id starts with '-' once in 64 and would otherwise
        # be read as an option ("argument --cluster-id/-t: expected one argument")
        fmt = subprocess.run([java, "-Xmx256m", "-cp", cp, "kafka.tools.StorageTool", "format",
                              f"--cluster-id={self.cluster_id}", f"--config={config}"],
                             capture_output=True, text=True, timeout=120)
        if fmt.returncode != 0:
            raise KafkaUnavailableError(f"formatting the broker's storage failed: "
                                        f"{fmt.stderr.strip()[-500:]}")
        out = (self.workdir / "broker.log").open("wb")
        self._proc = subprocess.Popen([java, f"-Xmx{self.heap}", "-cp", cp, "kafka.Kafka",
                                       str(config)], stdout=out, stderr=subprocess.STDOUT)
        deadline = time.monotonic() + self.startup_timeout
        while not _listening(self.port):
            if self._proc.poll() is not None or time.monotonic() > deadline:
                self.stop()
                tail = (self.workdir / "broker.log").read_text(errors="replace")[-1000:]
                raise KafkaUnavailableError(f"Kafka broker did not start: {tail}")
            time.sleep(0.5)
        log.info("Kafka broker %s up (data in %s)", self.bootstrap, self.workdir)
        return self

    def stop(self) -> None:
        if self._proc is None:
            return
        self._proc.terminate()
        try:
            self._proc.wait(timeout=30)
        except subprocess.TimeoutExpired:
            self._proc.kill()
            self._proc.wait(timeout=10)
        self._proc = None

    def __enter__(self) -> LocalKafka:
        return self.start()

    def __exit__(self, exc_type: type[BaseException] | None, exc: BaseException | None,
                 tb: TracebackType | None) -> None:
        self.stop()
