"""Where every table lives: the one place table names become paths or catalog names.

The same jobs run on local folders (``./lakehouse/silver/party_records``), object storage
(``s3a://bucket/lakehouse/...``) or metastore/catalog tables (``main.silver.party_records``),
chosen by ``lakehouse`` in ``conf/pipeline.yaml``.
"""

from __future__ import annotations

from dataclasses import dataclass

from udp_spark.config import LakehouseConfig

# Every table the pipeline writes, by layer; sources add bronze.<source>.
SILVER_PARTY_RECORDS = ("silver", "party_records")
SILVER_INTERACTIONS = ("silver", "interactions")
SILVER_QUARANTINE = ("silver", "quarantine")
AUDIT_RUNS = ("audit", "runs")
AUDIT_LEASES = ("audit", "leases")  # who may write the lakehouse now (udp run, udp stream)


@dataclass(frozen=True)
class TableRef:
    """A table: by path (``path`` set) or by metastore name (``name`` set)."""

    layer: str
    table: str
    path: str | None = None
    name: str | None = None

    def __str__(self) -> str:
        return f"{self.layer}.{self.table}"


@dataclass(frozen=True)
class Lakehouse:
    """Resolves ``(layer, table)`` to a :class:`TableRef` according to the config."""

    config: LakehouseConfig

    def table(self, layer: str, table: str) -> TableRef:
        schema = self.config.schemas.get(layer, layer)
        if self.config.catalog:
            return TableRef(layer, table, name=f"{self.config.catalog}.{schema}.{table}")
        root = self.config.root.rstrip("/")
        return TableRef(layer, table, path=f"{root}/{schema}/{table}")

    def bronze(self, source: str) -> TableRef:
        return self.table("bronze", source)

    def ref(self, layer_table: tuple[str, str]) -> TableRef:
        return self.table(*layer_table)

SILVER_BLOCK_KEYS = ("silver", "block_keys")  # the blocking index: block -> record_id
SILVER_CANDIDATE_PAIRS = ("silver", "candidate_pairs")
SILVER_MATCH_SCORES = ("silver", "match_scores")
SILVER_MATCH_LABELS = ("silver", "match_labels")
SILVER_MATCH_TERM_FREQUENCIES = ("silver", "match_term_frequencies")
GOLD_IDENTITY_XREF = ("gold", "identity_xref")
GOLD_IDENTITY_EVENTS = ("gold", "identity_events")
GOLD_CUSTOMER_PROFILE = ("gold", "customer_profile")
GOLD_CUSTOMER_PROFILE_HISTORY = ("gold", "customer_profile_history")
GOLD_SEGMENT_MEMBERSHIP = ("gold", "segment_membership")
GOLD_HOUSEHOLDS = ("gold", "households")  # who lives together; the profile's household_id
GOLD_PROFILE_EVENTS = ("gold", "profile_events")  # changes downstream systems act on
PRIVACY_CONSENT_EVENTS = ("privacy", "consent_events")  # append-only consent decisions
PRIVACY_ERASURE_REQUESTS = ("privacy", "erasure_requests")  # right-to-erasure requests
PRIVACY_SUPPRESSIONS = ("privacy", "suppressions")  # salted hashes of erased identifiers

#: Tables created with deletion vectors: the tables a change-driven run MERGEs a few rows
#: into. A record's pairs lie in every file of the pair tables (no order a change could
#: follow), so without them each MERGE rewrites nearly the whole table (at 1M source rows,
#: 16.8M pairs: 79 s and 94 s to delete one customer's pairs and scores); the golden
#: profile and its history are rewritten file by file for a few changed customers (at 1M,
#: a MERGE of 1.9k changed profiles copied the other 94k rows). With them a MERGE writes the
#: changed rows and marks the old ones deleted. An erasure purges them (REORG ... APPLY
#: (PURGE), then VACUUM) before the files of earlier versions go. Read them with Spark or with
#: ``udp_spark.serve.snapshot.read_table`` (delta-rs' DataFusion reader applies deletion
#: vectors; its ``to_pyarrow_*`` refuse such a table). Only new tables get them: an existing
#: table keeps its protocol (``docs/incremental.md``).
DELETION_VECTOR_TABLES = frozenset({SILVER_CANDIDATE_PAIRS, SILVER_MATCH_SCORES,
                                    SILVER_BLOCK_KEYS, GOLD_CUSTOMER_PROFILE,
                                    GOLD_CUSTOMER_PROFILE_HISTORY})
