"""Pinned JVM dependencies (Delta Lake, Spark's Kafka connector, a Kafka broker) fetched once
from Maven Central.

A Spark session must never need the network, so set-up downloads these exact files, checks
their SHA-256 and puts them in one folder; :mod:`udp_spark.session` points ``spark.jars`` at
them. Only jars that PySpark does not already ship are listed (Delta's runtime dependencies
on Hadoop, Jackson, Parquet and Scala are satisfied by PySpark's own jars).
"""

from __future__ import annotations

import hashlib
import logging
import os
import shutil
import tempfile
import urllib.error
import urllib.request
from dataclasses import dataclass
from pathlib import Path

log = logging.getLogger(__name__)

MAVEN_CENTRAL = "https://repo1.maven.org/maven2"


@dataclass(frozen=True)
class Jar:
    """One pinned Maven artifact."""

    group: str
    artifact: str
    version: str
    sha256: str
    optional: bool = False

    @property
    def file_name(self) -> str:
        return f"{self.artifact}-{self.version}.jar"

    @property
    def url(self) -> str:
        return (
            f"{MAVEN_CENTRAL}/{self.group.replace('.', '/')}/{self.artifact}/"
            f"{self.version}/{self.file_name}"
        )


DELTA_VERSION = "4.4.0"  # built for Spark 4.2; matches delta-spark on PyPI

# Resolved once with `mvn dependency:tree` on io.delta:delta-spark_4.2_2.13:4.4.0, minus
# everything pyspark 4.2.0 ships in pyspark/jars. Jackson's jdk8 module is pinned to the
# Jackson version Spark ships (2.21) instead of Delta's 2.13 to avoid a mixed Jackson.
JARS: tuple[Jar, ...] = (
    Jar("io.delta", "delta-spark_4.2_2.13", DELTA_VERSION,
        "27d4fd8b1f879535c573ed1c718177d6a27f24d3e626ba02e216369725721ead"),
    Jar("io.delta", "delta-storage", DELTA_VERSION,
        "c46735481fa8e326b0957be02b4420cbcab4b325bb08009b7f2045a95133f1cc"),
    Jar("io.delta", "delta-kernel-api", DELTA_VERSION,
        "ee9b5a14ac3b7efdff4d61a58478fe8eb0e5a3fbca43889dca7290795fe79a11"),
    Jar("io.delta", "delta-kernel-defaults", DELTA_VERSION,
        "225c975199e4718b38ee5b7e6da7f19e9585024262b2cec2656b32151a856b0b"),
    Jar("io.delta", "delta-kernel-unitycatalog", DELTA_VERSION,
        "cea22dfb4ac562b3cd27bf652697750e8336009d73fb06631363aaaad5345ffa"),
    Jar("io.unitycatalog", "unitycatalog-client", "0.6.0",
        "48257499a86b801a3e2372cec55ac226ca1c1c7eabe5c118e7302f29a1fdbc19"),
    Jar("io.unitycatalog", "unitycatalog-hadoop", "0.6.0",
        "c47b63c961c87102b9e1d63809a0915ba4c86b7652f57c8d39ca3a05b441a150"),
    Jar("com.fasterxml.jackson.datatype", "jackson-datatype-jdk8", "2.21.2",
        "e581bbf3fc5622d16b57366dd41e10fc56921fb202879de2ef487f87dd9b30e7"),
    # Structured Streaming's Kafka source and sink (`format: kafka` sources), resolved with
    # `mvn dependency:tree` on org.apache.spark:spark-sql-kafka-0-10_2.13:4.2.0 minus what
    # pyspark ships.
    Jar("org.apache.spark", "spark-sql-kafka-0-10_2.13", "4.2.0",
        "64539c45e5d39f7ddb747312c239f38f5208d08c1a0ddf7d70beb2fbd9373705"),
    Jar("org.apache.spark", "spark-token-provider-kafka-0-10_2.13", "4.2.0",
        "641c7947afc8aa1189e433b7c2d305293993c8691bc1c2062d6d4f513b12518c"),
    Jar("org.apache.kafka", "kafka-clients", "3.9.2",
        "014b4ef36884478a932641818b080c36a8f8e2e92dc771e800c9d2694f4f83d8"),
    Jar("org.apache.commons", "commons-pool2", "2.13.1",
        "f77a5060d6936a9144023584232f9de3f2248f1abfe156e9d31795f18770674f"),
)

KAFKA_VERSION = "4.1.1"
# A single-node Kafka broker in KRaft mode (no ZooKeeper) for the Kafka source's tests and
# `make stream-kafka`: the runtime classpath of org.apache.kafka:kafka_2.13:4.1.1 as
# `mvn dependency:list -DincludeScope=runtime` resolves it. It runs in its own JVM
# (:mod:`udp_spark.platform.kafka`), never on Spark's classpath, so its Jackson and Scala
# versions do not meet Spark's.
KAFKA_BROKER_JARS: tuple[Jar, ...] = (
    Jar("com.dynatrace.hash4j", "hash4j", "0.22.0",
        "23028a3fd006e530bf495f551083208187cafd8f80624d048eba56442f16a50e"),
    Jar("com.fasterxml.jackson.core", "jackson-annotations", "2.19.0",
        "ead60e9cac0e42b57092b9e2d087ff43536e9477d4486ba393037a8cc156cda7"),
    Jar("com.fasterxml.jackson.core", "jackson-core", "2.19.0",
        "da8e859bac94874528116a25f20c68560e4287acbf27628711b8a4f96b028430"),
    Jar("com.fasterxml.jackson.core", "jackson-databind", "2.19.0",
        "ceda311f476c3b18e1d2b240c94e2dcb9c8d44e70f8afa9facab88bac4ddc03a"),
    Jar("com.fasterxml.jackson.dataformat", "jackson-dataformat-csv", "2.19.0",
        "bec1150426b0616bb488149b952b45a0dcb16d9416b017c38f6455ad9389bc68"),
    Jar("com.fasterxml.jackson.dataformat", "jackson-dataformat-yaml", "2.19.0",
        "46e54dcbd39d4d12cda18ec9276e7b888e08fc765ea0c77e71662306f0d4abc4"),
    Jar("com.fasterxml.jackson.datatype", "jackson-datatype-jdk8", "2.19.0",
        "04f1a3f9da8155995dd00098d6847cdb9b7af67f4a3028c94031eff017c8e3e5"),
    Jar("com.github.ben-manes.caffeine", "caffeine", "3.2.0",
        "ec411dfdf0c03f25218648ce89861630b71680e5858a9a7278ebac8e55cab3d7"),
    Jar("com.github.luben", "zstd-jni", "1.5.6-10",
        "b6c3237e24b8252a5a9c3a0e1ae30ef8f323412e74bd358548b7a9e527d676df"),
    Jar("com.google.re2j", "re2j", "1.8",
        "7b52c72156dd7f98b3237a5b35c1d34fba381b21048c89208913ad80a45dfbd7"),
    Jar("com.typesafe.scala-logging", "scala-logging_2.13", "3.9.5",
        "87a3017d3f43e6ace7566fe4c3d615134c6914ff871c8d64bb32ca1d996d0545"),
    Jar("com.yammer.metrics", "metrics-core", "2.2.0",
        "6b7a14a6f34c10f8683f7b5e2f39df0f07b58c7dff0e468ebbc713905c46979c"),
    Jar("commons-beanutils", "commons-beanutils", "1.9.4",
        "7d938c81789028045c08c065e94be75fc280527620d5bd62b519d5838532368a"),
    Jar("commons-collections", "commons-collections", "3.2.2",
        "eeeae917917144a68a741d4c0dff66aa5c5c5fd85593ff217bced3fc8ca783b8"),
    Jar("commons-digester", "commons-digester", "2.1",
        "e0b2b980a84fc6533c5ce291f1917b32c507f62bcad64198fff44368c2196a3d"),
    Jar("commons-logging", "commons-logging", "1.3.2",
        "6b858424f518015f32bfcd1183a373f4a827d72d026b6031da0c91cf0e8f3489"),
    Jar("commons-validator", "commons-validator", "1.9.0",
        "c3c14748e2d78db58df88808740711bd643b32c45ffa7b8a739f00fb467cd7d7"),
    Jar("net.sf.jopt-simple", "jopt-simple", "5.0.4",
        "df26cc58f235f477db07f753ba5a3ab243ebe5789d9f89ecf68dd62ea9a66c28"),
    Jar("net.sourceforge.argparse4j", "argparse4j", "0.7.0",
        "65ceb669d88f63306c680f8088bbf765bbca72d288a61a03703000076c3d3f56"),
    Jar("org.apache.kafka", "kafka-clients", "4.1.1",
        "00247122a572c3d3ae4eb60a50192a5811bc0181f51923d13018600f892e821d"),
    Jar("org.apache.kafka", "kafka-coordinator-common", "4.1.1",
        "2072fc1ce7e0505149bba22a463a5909a899c6235c4fa696f15c21194a7baf60"),
    Jar("org.apache.kafka", "kafka-group-coordinator-api", "4.1.1",
        "3d1801d2329dcf7d273796a034d61e6c7e0f851f384d0afbdd3a2e6cbd17a968"),
    Jar("org.apache.kafka", "kafka-group-coordinator", "4.1.1",
        "3eb5a673b69d5992cfa86c5436f39adbf4ce284046a4c999ec6af0a8e31c5589"),
    Jar("org.apache.kafka", "kafka-metadata", "4.1.1",
        "a689665751415b6456de1ecb013042cb7ba99ac68fd8c3e8bf28e098feb43218"),
    Jar("org.apache.kafka", "kafka-raft", "4.1.1",
        "4810c93d93d1935dd54de61c5ba130f501c7fe11bc49ccd3ee05ec857818a72a"),
    Jar("org.apache.kafka", "kafka-server-common", "4.1.1",
        "207edecd8322cf6c13d76d84addea7fd0ec441dc8d698cf69df43210ccdc0a94"),
    Jar("org.apache.kafka", "kafka-server", "4.1.1",
        "9f6aff422855491aad54326eca8d604163d6d3a6507cc48ffe3ce6de73caf79a"),
    Jar("org.apache.kafka", "kafka-share-coordinator", "4.1.1",
        "e6bec53428c77bf6579321836d482542a93575f7c08e860a26c9f2c7f6059dac"),
    Jar("org.apache.kafka", "kafka-storage-api", "4.1.1",
        "8c0a712472185d706c6bf5ae24bf5d84a8e396fd4745c708e6146a415f7fa7f7"),
    Jar("org.apache.kafka", "kafka-storage", "4.1.1",
        "1f85b82853eaec0143efbef7e3a4d4be8929ff83a386326431e0c2d0a557e58c"),
    Jar("org.apache.kafka", "kafka-tools-api", "4.1.1",
        "542b08fe20cf872a2d866acdff61ea338b469219dc2ebfae727a1d9ea5737e1a"),
    Jar("org.apache.kafka", "kafka-transaction-coordinator", "4.1.1",
        "a261b5730ac9e3205df7af5d45180d851e9d5f729ce1275c67511a6f51f73755"),
    Jar("org.apache.kafka", "kafka_2.13", "4.1.1",
        "e89428126cc7630a802123ba27aac4442816840b66d60670226feaff65f24fd1"),
    Jar("org.apache.logging.log4j", "log4j-api", "2.24.3",
        "5b4a0a0cd0e751ded431c162442bdbdd53328d1f8bb2bae5fc1bbeee0f66d80f"),
    Jar("org.apache.logging.log4j", "log4j-core", "2.24.3",
        "7eb4084596ae25bd3c61698e48e8d0ab65a9260758884ed5cbb9c6e55c44a56a"),
    Jar("org.bitbucket.b_c", "jose4j", "0.9.6",
        "7314af50cde9c99e8eaf43eee617a23edcc6bb43036221064355094999d837ef"),
    Jar("org.hdrhistogram", "HdrHistogram", "2.2.2",
        "22d1d4316c4ec13a68b559e98c8256d69071593731da96136640f864fa14fad8"),
    Jar("org.jspecify", "jspecify", "1.0.0",
        "1fad6e6be7557781e4d33729d49ae1cdc8fdda6fe477bb0cc68ce351eafdfbab"),
    Jar("org.lz4", "lz4-java", "1.8.0",
        "d74a3334fb35195009b338a951f918203d6bbca3d1d359033dc33edd1cadc9ef"),
    Jar("org.pcollections", "pcollections", "4.0.2",
        "2bbeef5797a241300c4f7513cd546239629ed7deda4fc0c31df90bb95f5f13ef"),
    Jar("org.scala-lang", "scala-library", "2.13.16",
        "1ebb2b6f9e4eb4022497c19b1e1e825019c08514f962aaac197145f88ed730f1"),
    Jar("org.scala-lang", "scala-reflect", "2.13.16",
        "fb49ccd9cac7464486ab993cda20a3c1569d8ef26f052e897577ad2a4970fb1d"),
    Jar("org.slf4j", "slf4j-api", "1.7.36",
        "d3ef575e3e4979678dc01bf1dcce51021493b4d11fb7f1be8ad982877c16a1c0"),
    Jar("org.xerial.snappy", "snappy-java", "1.1.10.7",
        "4c766cb3f855415ee734b2392949a0b6f12a60879334a74518deaf6270d32e36"),
    Jar("org.yaml", "snakeyaml", "2.4",
        "ef779af5d29a9dde8cc70ce0341f5c6f7735e23edff9685ceaa9d35359b7bb7f"),

)


class JarsMissingError(RuntimeError):
    """Raised when the pinned jars are not in the jars folder."""


def jars_dir() -> Path:
    """The folder holding the pinned jars: ``$UDP_JARS_DIR`` or ``~/.cache/udp-spark/jars``."""
    env = os.environ.get("UDP_JARS_DIR")
    return Path(env) if env else Path.home() / ".cache" / "udp-spark" / "jars"


def _sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as fh:
        for chunk in iter(lambda: fh.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()


def missing_jars(directory: Path | None = None) -> list[Jar]:
    """Required jars absent from ``directory`` (size and presence only; fetch verifies hashes)."""
    directory = directory or jars_dir()
    return [j for j in JARS if not j.optional and not (directory / j.file_name).is_file()]


def local_jar_paths(directory: Path | None = None) -> list[Path]:
    """Paths of the pinned jars present in ``directory``; raises if a required one is missing."""
    directory = directory or jars_dir()
    missing = missing_jars(directory)
    if missing:
        names = ", ".join(j.file_name for j in missing)
        raise JarsMissingError(
            f"pinned jars not found in {directory} (missing: {names}). "
            "Run `make setup` (or `udp setup-jars`) once, with network access to Maven Central."
        )
    return [directory / j.file_name for j in JARS if (directory / j.file_name).is_file()]


def kafka_broker_dir(directory: Path | None = None) -> Path:
    """Where the Kafka broker's jars go: ``kafka-broker/`` inside the jars folder."""
    return (directory or jars_dir()) / "kafka-broker"


def fetch_jars(directory: Path | None = None, timeout: float = 120.0) -> list[Path]:
    """Download every pinned jar not yet present, verifying its SHA-256, and the Kafka
    broker's into :func:`kafka_broker_dir`. Idempotent."""
    directory = directory or jars_dir()
    fetched = _fetch(JARS, directory, timeout)
    _fetch(KAFKA_BROKER_JARS, kafka_broker_dir(directory), timeout)
    return fetched


def _fetch(jars: tuple[Jar, ...], directory: Path, timeout: float) -> list[Path]:
    directory.mkdir(parents=True, exist_ok=True)
    fetched: list[Path] = []
    for jar in jars:
        target = directory / jar.file_name
        if target.is_file() and _sha256(target) == jar.sha256:
            fetched.append(target)
            continue
        log.info("downloading %s", jar.url)
        try:
            with urllib.request.urlopen(jar.url, timeout=timeout) as resp, \
                    tempfile.NamedTemporaryFile(dir=directory, delete=False) as tmp:
                shutil.copyfileobj(resp, tmp)
                tmp_path = Path(tmp.name)
        except urllib.error.URLError as exc:
            if jar.optional:
                log.warning("optional jar %s unavailable (%s); skipped", jar.file_name, exc)
                continue
            raise JarsMissingError(f"could not download {jar.url}: {exc}") from exc
        actual = _sha256(tmp_path)
        if actual != jar.sha256:
            tmp_path.unlink(missing_ok=True)
            raise JarsMissingError(
                f"checksum mismatch for {jar.file_name}: expected {jar.sha256}, got {actual}"
            )
        tmp_path.replace(target)  # atomic: a killed download never leaves a half jar
        fetched.append(target)
    return fetched
