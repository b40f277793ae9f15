"""Pinned JVM dependencies (Delta Lake, optional GraphFrames) fetched once from Maven Central.

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
            f"Delta jars not found in {directory} (missing: {names}). "
            "Run `make setup` (or `udp setup-jars`) once, with network access to Maven Central."
        )
    return [directory / j.file_name for j in JARS if (directory / j.file_name).is_file()]


def fetch_jars(directory: Path | None = None, timeout: float = 120.0) -> list[Path]:
    """Download every pinned jar not yet present, verifying its SHA-256. Idempotent."""
    directory = directory or jars_dir()
    directory.mkdir(parents=True, exist_ok=True)
    fetched: list[Path] = []
    for jar in JARS:
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
