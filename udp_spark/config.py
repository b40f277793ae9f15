"""Configuration as data: ``conf/pipeline.yaml`` and one YAML file per source.

Parsed once at the entry point into frozen, typed models that forbid unknown keys; library
functions take these models, never paths or dicts. Every error names the file and the key.

Example::

    cfg = load_config("conf/pipeline.yaml")
    cfg.sources["crm"].party.email        # 'email'
"""

from __future__ import annotations

import hashlib
import itertools
import json
import os
import re
from datetime import date
from pathlib import Path
from typing import Annotated, Any, Literal

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

__all__ = [
    "ConfigError",
    "ConstSpec",
    "ExprSpec",
    "FieldSpec",
    "HouseholdSettings",
    "InteractionMapping",
    "LakehouseConfig",
    "PartyMapping",
    "PipelineConfig",
    "SourceConfig",
    "SparkProfile",
    "StandardizeSettings",
    "SupervisedSettings",
    "load_config",
    "load_source",
]


class ConfigError(ValueError):
    """A configuration file is missing, unreadable or invalid; the message names file and key."""


class _Model(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class ExprSpec(_Model):
    """A Spark SQL expression over the raw source columns, e.g. ``concat(first, ' ', last)``."""

    expr: str


class ConstSpec(_Model):
    """A constant value for every row, e.g. ``{const: web}``."""

    const: str | int | float | bool | None


# A field mapping: a raw column name (dotted for nested JSON), an expression or a constant.
FieldSpec = Annotated[str | ExprSpec | ConstSpec, Field(union_mode="left_to_right")]


class PartyMapping(_Model):
    """How a source's raw columns map onto the canonical party schema.

    ``full_name`` is split into given/middle/family names when those are not mapped.
    ``identifiers`` are extra ids (national id, CRM id, ...) usable as keys or comparisons
    by later stages; ``attributes`` are kept as a string map for later stages (consent ...).
    """

    source_key: FieldSpec
    given_name: FieldSpec | None = None
    middle_name: FieldSpec | None = None
    family_name: FieldSpec | None = None
    full_name: FieldSpec | None = None
    email: FieldSpec | None = None
    phone: FieldSpec | None = None
    mobile: FieldSpec | None = None
    street: FieldSpec | None = None
    city: FieldSpec | None = None
    state: FieldSpec | None = None
    postcode: FieldSpec | None = None
    country: FieldSpec | None = None
    date_of_birth: FieldSpec | None = None
    birth_year: FieldSpec | None = None
    gender: FieldSpec | None = None
    loyalty_id: FieldSpec | None = None
    created_at: FieldSpec | None = None
    updated_at: FieldSpec | None = None
    identifiers: dict[str, FieldSpec] = Field(default_factory=dict)
    attributes: dict[str, FieldSpec] = Field(default_factory=dict)

    @model_validator(mode="after")
    def _some_name_or_identifier(self) -> PartyMapping:
        usable = (self.given_name, self.family_name, self.full_name, self.email, self.phone,
                  self.mobile, self.loyalty_id)
        if all(v is None for v in usable) and not self.identifiers:
            raise ValueError(
                "party mapping has no name, email, phone, loyalty_id or identifiers: "
                "map at least one so records can be matched"
            )
        return self


class InteractionMapping(_Model):
    """Rows of a source that are interactions (orders, events, tickets, engagement)."""

    type: FieldSpec
    key: FieldSpec
    party_key: FieldSpec | None = None
    party_source: str | None = None  # defaults to the source itself
    occurred_at: FieldSpec
    amount: FieldSpec | None = None
    currency: FieldSpec | None = None
    channel: FieldSpec | None = None
    status: FieldSpec | None = None
    attributes: dict[str, FieldSpec] = Field(default_factory=dict)


class ConsentMapping(_Model):
    """A consent decision a source carries for its party record, e.g. the e-mail system's
    opt-in status: becomes events in ``privacy.consent_events`` (subject: the record).

    ``status`` is compared (trimmed, lower-cased) with ``granted`` and ``withdrawn``; any
    other value (``pending``, empty) is no decision and makes no event. ``occurred_at`` is
    parsed with the source's ``timestamp_formats``; a decision without a time is not an
    event either (latest-wins needs one), and is counted in the run's row counts.
    """

    purpose: str = Field(pattern=r"^[a-z][a-z0-9_]*$")
    status: FieldSpec
    granted: tuple[str, ...] = ("true", "yes", "1", "granted", "subscribed", "opt_in",
                                "opted_in")
    withdrawn: tuple[str, ...] = ("false", "no", "0", "withdrawn", "unsubscribed",
                                  "opt_out", "opted_out")
    occurred_at: FieldSpec
    expires_at: FieldSpec | None = None
    legal_basis: FieldSpec = ConstSpec(const="consent")


SourceFormat = Literal["csv", "json", "parquet", "delta", "jdbc", "kafka"]


class SourceConfig(_Model):
    """One source system: where its rows are, how to read them and how they map."""

    name: str
    format: SourceFormat
    path: str | None = None
    table: str | None = None
    topic: str | None = Field(default=None, description="format kafka: the topic to read "
                              "(its messages' values are JSON objects, one row each)")
    options: dict[str, str] = Field(default_factory=dict)
    description: str = ""
    trust_rank: int = Field(ge=1, description="1 = most trusted source")
    default_country: str = Field(default="US", min_length=2, max_length=2)
    date_formats: tuple[str, ...] = ("yyyy-MM-dd",)
    timestamp_formats: tuple[str, ...] = ("iso8601",)
    columns: tuple[str, ...] = ()
    require_name: bool = Field(default=False, description="records without any name are "
                               "flagged in quarantine ('empty name'); for sources that "
                               "always carry names")
    once_per_edition: bool = Field(
        default=False, description="a register of editions (an electoral roll, a census): "
        "each record is one edition's entry, dated by its created_at, and an edition lists a "
        "person once, so two records created at the same time are two people (resolve never "
        "joins them: a parent and a child of one name at one address)")
    party: PartyMapping | None = None
    interactions: tuple[InteractionMapping, ...] = ()
    consent: tuple[ConsentMapping, ...] = Field(
        default=(), description="consent decisions carried by the party rows (needs 'party')")

    @field_validator("name")
    @classmethod
    def _name_is_identifier(cls, v: str) -> str:
        if not re.fullmatch(r"[a-z][a-z0-9_]*", v):
            raise ValueError("must be lower_snake_case (it becomes a table name)")
        return v

    @field_validator("default_country")
    @classmethod
    def _upper_country(cls, v: str) -> str:
        return v.upper()

    @model_validator(mode="after")
    def _location(self) -> SourceConfig:
        if self.format in ("csv", "json", "parquet") and not self.path:
            raise ValueError(f"format {self.format!r} needs 'path'")
        if self.format == "jdbc" and not (self.table or "dbtable" in self.options
                                          or "query" in self.options):
            raise ValueError("format 'jdbc' needs 'table' (or options.dbtable / options.query)")
        if self.format == "delta" and not (self.path or self.table):
            raise ValueError("format 'delta' needs 'path' or 'table'")
        if self.format == "kafka" and not (self.topic
                                           and self.options.get("kafka.bootstrap.servers")):
            raise ValueError("format 'kafka' needs 'topic' and options "
                             "'kafka.bootstrap.servers' (host:port,...)")
        if self.party is None and not self.interactions:
            raise ValueError("a source needs a 'party' mapping, 'interactions', or both")
        if self.once_per_edition and (self.party is None or self.party.created_at is None):
            raise ValueError("once_per_edition needs 'party.created_at' (the edition's date)")
        if self.consent and self.party is None:
            raise ValueError("'consent' needs a 'party' mapping (its subject is the record)")
        return self


class LakehouseConfig(_Model):
    """Where tables live: folders under ``root`` or, with ``catalog``, metastore tables."""

    root: str = "./lakehouse"
    catalog: str | None = None
    schemas: dict[str, str] = Field(
        default_factory=lambda: {"bronze": "bronze", "silver": "silver", "gold": "gold",
                                 "audit": "audit", "privacy": "privacy"}
    )


#: SQL settings for evaluating expressions without generated Java code: each operator
#: interprets its expressions row by row instead of compiling the plan first.
INTERPRETED_EXPRESSIONS: dict[str, str] = {
    "spark.sql.codegen.wholeStage": "false",
    "spark.sql.codegen.factoryMode": "NO_CODEGEN",
}


def _default_stage_conf() -> dict[str, dict[str, str]]:
    # Measured (docs/bench.md, "Compiled or interpreted expressions, per stage"):
    # standardize's and publish's plans hold hundreds of string, array and struct
    # expressions, and interpreting them was faster at the demo's size and at 1M source
    # rows (standardize 148 / 154 s against 183 / 176 s, publish 126 / 119 against
    # 177 / 144); evaluate gained on the demo. Block and score lost (joins and aggregates
    # over many pairs) and keep generated code.
    return {stage: dict(INTERPRETED_EXPRESSIONS) for stage in ("standardize", "publish",
                                                                "evaluate")}


class SparkProfile(_Model):
    """Settings for a locally built session (``app_name``, ``master``, ``conf``: ignored when
    a session already exists), and per-stage SQL settings (``stage_conf``: applied whatever
    the session, set when the stage starts and restored when it ends)."""

    app_name: str = "udp-spark"
    master: str = "local[*]"
    conf: dict[str, str] = Field(default_factory=dict)
    # stage name (as in audit.runs) -> runtime SQL settings for that stage's run; replaces
    # the default whole (``stage_conf: {}`` turns it off)
    stage_conf: dict[str, dict[str, str]] = Field(default_factory=_default_stage_conf)


class StandardizeSettings(_Model):
    """Knobs of the standardize stage."""

    min_birth_year: int = 1900
    max_age_years: int = 120
    # Dates systems fill in when the real one is unknown; kept, they would make strangers
    # "agree" on a birth date. Nulled with a quarantine issue like any unusable value.
    placeholder_dates_of_birth: tuple[date, ...] = (
        date(1900, 1, 1), date(1901, 1, 1), date(1970, 1, 1),
    )
    # Compared with the normalized (lower-cased) address.
    placeholder_emails: tuple[str, ...] = (
        "noemail@example.com", "none@none.com", "no@email.com", "test@test.com",
        "na@na.com", "unknown@unknown.com", "x@x.com", "xx@xx.com", "xxx@xxx.com",
        "a@a.com", "noemail@noemail.com", "noemail@email.com", "none@email.com",
        "no@no.com", "nomail@nomail.com", "email@email.com", "test@example.com",
    )


class BlockingKey(_Model):
    """Records sharing a value of any of ``columns`` (values pooled) become candidate pairs.

    Each entry is a Spark SQL expression over ``silver.party_records``: a column name
    (``email_canonical``) or e.g. ``identifiers['national_id']`` for a mapped identifier
    (every identifier comparison also has its normalised column ``idc_<name>``).
    """

    name: str = Field(pattern=r"^[a-z][a-z0-9_]*$")
    columns: tuple[str, ...] = Field(min_length=1)
    max_block_size: int | None = Field(default=None, ge=2, description="this key's own "
                                       "block-size cap (default: blocking.max_block_size)")


class BlockingRule(_Model):
    """Records agreeing on all of ``columns`` (Spark SQL expressions) become candidate pairs,
    e.g. ``[family_name_norm, "substring(given_name_norm, 1, 1)"]``."""

    name: str = Field(pattern=r"^[a-z][a-z0-9_]*$")
    columns: tuple[str, ...] = Field(min_length=1)
    max_block_size: int | None = Field(default=None, ge=2, description="this rule's own "
                                       "block-size cap (default: blocking.max_block_size)")


LSH_MAX_BLOCK_SIZE = 20


class LshSettings(_Model):
    """Banded MinHash over character shingles of ``columns`` joined by spaces.

    Two records with shingle-set Jaccard similarity s share at least one band with
    probability 1 - (1 - s**rows)**bands.
    """

    name: str = Field(default="name_address", pattern=r"^[a-z][a-z0-9_]*$")
    enabled: bool = True
    columns: tuple[str, ...] = ("given_name_norm", "family_name_norm", "street_norm",
                                "city_norm")
    shingle_size: int = Field(default=3, ge=2, le=6)
    bands: int = Field(default=16, ge=1, le=64)
    rows: int = Field(default=3, ge=1, le=8)
    min_shingles: int = Field(default=6, ge=1)
    # A band is a similarity hint, not a shared value: one held by more records than this
    # is a shared street and city or a common name, not one person's typos. Measured at 1M
    # source rows (docs/bench.md "Blocking at 1M source rows"): bands over 20 records made
    # 77% of all candidate pairs; without them pair completeness went from 0.845 to 0.840
    # and the linkable true pairs reachable through candidate pairs from 0.99975 to 0.99964.
    max_block_size: int | None = Field(default=LSH_MAX_BLOCK_SIZE, ge=2, description=(
        "bands shared by more records are not expanded (null: blocking.max_block_size)"))


DEFAULT_BLOCKING_KEYS = (
    BlockingKey(name="email", columns=("email_canonical",)),
    BlockingKey(name="phone", columns=("phone_e164", "mobile_e164")),
    BlockingKey(name="loyalty_id", columns=("loyalty_id",)),
)


class BlockingSettings(_Model):
    """Candidate pairs: deterministic ``keys``, rule blocks and LSH indexes.

    ``keys`` are merged with the default keys by name: a key named like a default one
    replaces it, other keys are added, and the default e-mail, phone and loyalty keys stay
    unless ``replace_keys`` is true (then the listed keys are the only ones; an empty
    list has no keys at all). Every
    identifier comparison (``matching.identifiers`` and the identifiers mapped in the
    sources) adds a key of its name on its normalised value unless a key has that name.
    """

    keys: tuple[BlockingKey, ...] = DEFAULT_BLOCKING_KEYS
    replace_keys: bool = Field(default=False, description="the listed keys replace the "
                               "default e-mail/phone/loyalty keys instead of being merged "
                               "with them by name")
    rules: tuple[BlockingRule, ...] = (
        BlockingRule(name="family_phonetic_postcode",
                     columns=("family_name_phonetic", "postcode")),
        BlockingRule(name="given_family", columns=("given_name_norm", "family_name_norm")),
        BlockingRule(name="family_dob", columns=("family_name_norm", "date_of_birth")),
        BlockingRule(name="given_dob", columns=("given_name_norm", "date_of_birth")),
        # A typo in the family name ("jansen", "janssen") with the first name intact.
        BlockingRule(name="given_family_phonetic",
                     columns=("given_name_norm", "family_name_phonetic")),
        # Initials and short forms ("k smith", "katrina smith"): weak, capped by block size.
        BlockingRule(name="family_initial",
                     columns=("family_name_norm", "substring(given_name_norm, 1, 1)")),
    )
    # Several indexes: name + address, and the e-mail's local part (a typo'd address still
    # meets its correct form; the domain is left out, its shingles are shared by millions).
    lsh: tuple[LshSettings, ...] = (
        LshSettings(),
        LshSettings(name="email_local", columns=("substring_index(email_canonical, '@', 1)",),
                    bands=8, rows=3, min_shingles=6),
    )
    max_block_size: int = Field(default=300, ge=2,
                                description="keys shared by more records are reported, "
                                            "not expanded into pairs")
    email_names: bool = Field(default=True, description="a record with an e-mail and no "
                              "name meets the records whose full name the e-mail's local "
                              "part spells (blocks key:email_name:<letters>; see the "
                              "email_name comparison)")

    def block_caps(self) -> dict[str, int]:
        """Block prefix (``lsh:name_address:``) -> the largest block of that method expanded
        into pairs, for the methods whose cap is not ``max_block_size`` (an LSH index's cap
        never exceeds it)."""
        caps = {f"key:{k.name}:": k.max_block_size for k in self.keys if k.max_block_size}
        caps |= {f"rule:{r.name}:": r.max_block_size for r in self.rules if r.max_block_size}
        caps |= {f"lsh:{i.name}:": min(i.max_block_size, self.max_block_size)
                 for i in self.lsh if i.max_block_size}
        return {p: c for p, c in caps.items() if c != self.max_block_size}

    def cap_of(self, block: str, caps: dict[str, int] | None = None) -> int:
        """The largest size at which ``block`` (``lsh:name_address:3:123``) is expanded;
        ``caps``: :meth:`block_caps`, computed once by a caller that asks for many blocks."""
        for prefix, cap in (self.block_caps() if caps is None else caps).items():
            if block.startswith(prefix):
                return cap
        return self.max_block_size

    @model_validator(mode="before")
    @classmethod
    def _merge_default_keys(cls, data: Any) -> Any:
        # `keys: []` turns keys off: nothing to merge
        if not isinstance(data, dict) or not data.get("keys") or data.get("replace_keys"):
            return data
        given = [k if isinstance(k, BlockingKey) else BlockingKey.model_validate(k)
                 for k in data["keys"]]
        by_name = {k.name: k for k in given}
        merged = [by_name.pop(k.name, k) for k in DEFAULT_BLOCKING_KEYS]
        merged += [k for k in given if k.name in by_name]  # the user's own, in their order
        return {**data, "keys": tuple(merged)}

    @model_validator(mode="after")
    def _unique_names(self) -> BlockingSettings:
        for kind, names in (("keys", [k.name for k in self.keys]),
                            ("rules", [r.name for r in self.rules]),
                            ("lsh", [x.name for x in self.lsh])):
            dupes = sorted({n for n in names if names.count(n) > 1})
            if dupes:
                raise ValueError(f"matching.blocking.{kind}: names must be unique; "
                                 f"repeated: {dupes}")
        return self


class SupervisedSettings(_Model):
    """The supervised matcher (``kind: supervised``): a Spark ML classifier on comparison
    levels, fitted on ``silver.match_labels``."""

    algorithm: Literal["lr", "gbt"] = Field(
        default="lr", description="lr = logistic regression (a readable weight per level); "
                                  "gbt = gradient-boosted trees")
    holdout_fraction: float = Field(default=0.3, ge=0, lt=1,
                                    description="share of labelled pairs held out (by pair, "
                                                "seeded) to measure precision/recall/F1/AUC")
    min_labels_per_class: int = Field(default=20, ge=1,
                                      description="fewer positive or negative labels fail")
    reg_param: float = Field(default=1e-4, ge=0, description="lr: L2/L1 penalty strength "
                             "(small: labels are plentiful and indicators already bounded)")
    elastic_net_param: float = Field(default=0.0, ge=0, le=1,
                                     description="lr: 0 = L2 (ridge), 1 = L1 (lasso)")
    max_iter: int = Field(default=100, ge=1, description="lr: iterations; gbt: trees")
    max_depth: int = Field(default=4, ge=1, le=30, description="gbt: depth of each tree")
    step_size: float = Field(default=0.1, gt=0, le=1, description="gbt: learning rate")
    anchor_weight: float = Field(
        default=1.0, ge=0,
        description="weight of each anchor: a comparison pattern of the candidate pairs that "
                    "the Fellegi-Sunter model decides with at least anchor_confidence, added "
                    "to the training labels with its decision (a human label weighs 1). "
                    "Review labels are the uncertain pairs; the anchors keep the easy ones "
                    "right. 0: train on the labels alone")
    anchor_confidence: float = Field(default=0.99, ge=0.5, lt=1,
                                     description="probability (or 1 - it) from which a "
                                                 "pattern's Fellegi-Sunter decision anchors")


class ModelSettings(_Model):
    """The pairwise matcher: how it is trained, registered and loaded for scoring.

    ``kind``: ``fellegi_sunter`` (unsupervised, the default), ``supervised`` (needs
    ``silver.match_labels``: `udp labels import`), or ``auto`` (supervised when enough labels
    exist, else Fellegi-Sunter).
    """

    kind: Literal["fellegi_sunter", "supervised", "auto"] = "fellegi_sunter"
    registered_name: str = "udp_matcher"
    alias: str = "champion"
    random_pairs: int = Field(default=1_000_000, ge=1000,
                              description="random record pairs used to estimate u")
    em_max_iterations: int = Field(default=100, ge=1)
    prior: Literal["sessions", "candidate_em"] = Field(
        default="sessions",
        description="how the share of matching pairs is estimated: from two EM sessions "
                    "(stays right as the data grows), or by EM over the candidate pairs "
                    "(reads blocked households and namesakes as matches; the fallback when "
                    "the data holds too few sessions)")
    seed: int = 42
    supervised: SupervisedSettings = SupervisedSettings()


class ResolveSettings(_Model):
    """Turning scored pairs into clusters and customer ids."""

    threshold: float = Field(default=0.7, gt=0, lt=1,
                             description="match probability at or above which a pair links")
    conflict_on_dob: bool = True
    conflict_on_given_name: bool = True
    conflict_on_loyalty_id: bool = True
    conflict_on_middle_name: bool = Field(
        default=True, description="middle names both given that differ (beyond a letter), "
        "or whose initials differ, keep two records apart: namesakes at one address")
    graph_backend: Literal["auto", "graphframes", "builtin", "driver"] = Field(
        default="auto",
        description="connected components: auto = in the driver up to driver_graph_max_edges "
                    "accepted edges, else GraphFrames when its jar is on the classpath, else "
                    "the built-in DataFrame algorithm; every backend gives the same result")
    driver_graph_max_edges: int = Field(
        default=500_000, ge=0,
        description="largest graph (accepted edges) labelled in the driver with graph_backend "
                    "auto (about 120 bytes of driver memory per edge)")
    manual_label_sources: tuple[str, ...] = Field(
        default=("clerical",),
        description="labels in silver.match_labels from these sources are manual decisions "
                    "that override the matcher: a match always links (reason 'manual'), a "
                    "non-match never does. Generator truth ('truth') is for training only.")


class StreamSettings(_Model):
    """``udp stream``: a Structured Streaming query over the sources' landing folders whose
    micro-batches run the change-driven stages."""

    trigger_seconds: float = Field(default=10.0, gt=0, description="how often new files "
                                   "are looked for (processing-time trigger)")
    checkpoint_location: str | None = Field(
        default=None, description="the query's checkpoint; default <lakehouse "
        "root>/_checkpoints/stream")
    max_files_per_trigger: int = Field(default=1000, ge=1, description="per source and "
                                       "micro-batch; the rest waits for the next")
    sources: tuple[str, ...] = Field(default=(), description="sources to watch (default: "
                                     "every csv / json / parquet source)")


class RunSettings(_Model):
    """``udp run``: the stages as one dependency graph under a lease on the lakehouse."""

    lease_ttl_minutes: float = Field(default=120.0, gt=0, description="a run renews its "
                                     "lease at every stage; a holder silent this long is "
                                     "presumed dead")
    wait_seconds: float = Field(default=0.0, ge=0, description="how long a second run waits "
                                "for the lease before it refuses (exit 3)")


class MaintenanceSettings(_Model):
    """``udp maintain`` (the nightly job): OPTIMIZE and VACUUM every table."""

    optimize: bool = True
    vacuum_retain_hours: float = Field(default=168.0, ge=0, description="history kept for "
                                       "time travel; files only older versions read go")


class MlflowSettings(_Model):
    tracking_uri: str = Field(
        default="", description="the MLflow tracking (and, without registry_uri, registry) "
        "store; empty: a SQLite file mlflow.db in the lakehouse root when that is a local "
        "folder (each lakehouse its own matcher), else mlflow.db in the working directory")
    registry_uri: str | None = None
    experiment: str = "udp-spark-matcher"
    artifact_location: str | None = Field(
        default=None, description="where a new experiment keeps its runs' artifacts and "
        "models; default: a folder mlruns beside a sqlite tracking file (the whole store in "
        "one place, whatever the working directory), else the tracking server's default. "
        "An existing experiment keeps the location it was created with")
    dfs_tmpdir: str | None = Field(default=None, description="where Spark ML models are "
                                   "written and read by the executors on their way to and "
                                   "from MLflow (a folder/URI every executor reaches); "
                                   "default <lakehouse root>/_tmp/mlflow")


class IdentifierComparison(_Model):
    """An extra comparison on a mapped identifier (a national id, a customer number shared
    between systems): ``expression`` is Spark SQL over ``silver.party_records``, e.g.
    ``identifiers['national_id']``. Values are compared upper-cased with only letters and
    digits kept: exact, one character off or two adjacent ones swapped (a typo), or
    different. Missing on either side is its own level."""

    name: str = Field(pattern=r"^[a-z][a-z0-9_]*$")
    expression: str
    conflict: bool = Field(default=True, description="two clearly different values (not a "
                           "one-character typo) mean two different people (clustering)")
    block: bool = Field(default=True, description="records sharing a value become candidate "
                        "pairs (a blocking key of this name, unless one exists)")


def _identifier_name(key: str) -> str:
    """A comparison name for an identifier key mapped in a source (``SSN`` -> ``ssn``)."""
    from udp_spark.matching.comparisons import BUILTIN_COMPARISONS

    name = re.sub(r"[^a-z0-9_]", "_", key.lower())
    return name if re.fullmatch(r"[a-z][a-z0-9_]*", name) and name not in BUILTIN_COMPARISONS \
        else f"id_{name}"


def source_identifiers(sources: dict[str, SourceConfig],
                       stated: tuple[IdentifierComparison, ...] = ()
                       ) -> tuple[IdentifierComparison, ...]:
    """Identifier comparisons for the ``party.identifiers`` the sources map, except those
    ``stated`` already names or reads.

    An identifier a source maps from its own ``source_key`` names that source's records,
    not people: alone it is left out (it never agrees across records), and where other
    sources carry it too it is compared but is no conflict (one person's two records in
    that source carry two values).
    """
    specs: dict[str, list[tuple[SourceConfig, FieldSpec]]] = {}
    for src in sources.values():
        for key, spec in (src.party.identifiers.items() if src.party else ()):
            specs.setdefault(key, []).append((src, spec))
    taken = {i.name for i in stated}
    out = []
    for key, held in sorted(specs.items()):
        expression = f"identifiers['{key}']"
        if any(re.search(rf"identifiers\s*\[\s*['\"]{re.escape(key)}['\"]\s*\]",
                         i.expression) for i in stated):
            continue
        own_key = [s.name for s, spec in held if s.party and spec == s.party.source_key]
        if len(held) == 1 and own_key:
            continue
        name = _identifier_name(key)
        if name in taken:
            continue
        taken.add(name)
        out.append(IdentifierComparison(name=name, expression=expression,
                                        conflict=not own_key))
    return tuple(out)


class MatchingSettings(_Model):
    blocking: BlockingSettings = BlockingSettings()
    identifiers: tuple[IdentifierComparison, ...] = ()
    mapped_identifiers: bool = Field(
        default=True, description="every identifier the sources map (party.identifiers) is "
        "compared and blocked on, as if listed in 'identifiers' (conflict: true, unless a "
        "source maps it from its own source_key); an entry of 'identifiers' with its name or "
        "reading it overrides that")
    address_moved_years: int | None = Field(
        default=3, ge=1,
        description="an address that differs between two records whose sources date them "
        "(updated_at, else created_at) at least this many years apart is its own level of "
        "the address comparison, weighed by EM apart from a difference between records of "
        "one time: people move. Records without a time get the ordinary 'different' level. "
        "null: no such level")
    model: ModelSettings = ModelSettings()
    resolve: ResolveSettings = ResolveSettings()

    def for_sources(self, sources: dict[str, SourceConfig]) -> MatchingSettings:
        """These settings with the sources' mapped identifiers added (when
        ``mapped_identifiers``) and a blocking key for every identifier with ``block``."""
        identifiers = self.identifiers + (
            source_identifiers(sources, self.identifiers) if self.mapped_identifiers else ())
        from udp_spark.matching.comparisons import IDENTIFIER_PREFIX

        names = {k.name for k in self.blocking.keys}
        keys = self.blocking.keys + tuple(
            BlockingKey(name=i.name, columns=(f"{IDENTIFIER_PREFIX}{i.name}",))
            for i in identifiers if i.block and i.name not in names)
        if identifiers == self.identifiers and keys == self.blocking.keys:
            return self
        return self.model_copy(update={
            "identifiers": identifiers,
            "blocking": self.blocking.model_copy(update={"keys": keys})})

    @model_validator(mode="after")
    def _identifier_names(self) -> MatchingSettings:
        from udp_spark.matching.comparisons import BUILTIN_COMPARISONS

        names = [i.name for i in self.identifiers]
        clash = sorted({n for n in names if names.count(n) > 1 or n in BUILTIN_COMPARISONS})
        if clash:
            raise ValueError(f"matching.identifiers: names must be unique and differ from the "
                             f"built-in comparisons {sorted(BUILTIN_COMPARISONS)}; got {clash}")
        return self


# --------------------------------------------------------------------------- publish

SurvivorshipRuleName = Literal["source_priority", "most_recent", "most_frequent", "most_complete",
                               "most_common", "mobile_first", "least_shared", "spells_name"]
# Rules that rank some attributes' values only (udp_spark.profile.survivorship).
ATTRIBUTE_ONLY_RULES: dict[str, tuple[str, ...]] = {
    "most_common": ("name", "email"), "mobile_first": ("phone",),
    "least_shared": ("email", "phone"), "spells_name": ("email",)}

# Attributes with a validity check that ``valid_only`` can use (see udp_spark.profile).
VALIDATED_ATTRIBUTES = ("email", "phone", "address")


class AttributeRule(_Model):
    """How one golden attribute is chosen among the records of a customer.

    ``rule`` decides; ``tie_breakers`` decide, in order, between candidates the rule ranks
    equal; the smallest record id decides last, so the choice is always deterministic.
    ``valid_only`` keeps only candidates that pass the attribute's validity check;
    ``where`` is a Spark SQL predicate over ``silver.party_records`` columns a candidate
    record must satisfy (e.g. ``"attributes['email_verified'] = 'true'"``).
    """

    rule: SurvivorshipRuleName
    tie_breakers: tuple[SurvivorshipRuleName, ...] = ()
    valid_only: bool = False
    where: str | None = None

    @model_validator(mode="after")
    def _distinct_rules(self) -> AttributeRule:
        order = (self.rule, *self.tie_breakers)
        if len(set(order)) != len(order):
            raise ValueError(f"rule and tie_breakers repeat a rule: {list(order)}; name each "
                             "rule once")
        if self.where is not None and not self.where.strip():
            raise ValueError("where is empty: remove it or give a SQL predicate")
        return self


class SurvivorshipSettings(_Model):
    """One rule per golden attribute. An attribute given in YAML replaces its default whole.

    Attributes are groups of profile columns taken from one record together: ``name``
    (given, middle, family, full name), ``email``, ``phone``, ``address`` (street, city,
    state, postcode, country), ``birth`` (date of birth, birth year), ``gender``,
    ``loyalty_id``.
    """

    # Agreement among a customer's records first: a typo, a nickname or an old value in the
    # most trusted source loses to what the other sources agree on (measured on generated
    # data with `udp evaluate`'s golden-value accuracy: README, Reading the numbers).
    name: AttributeRule = AttributeRule(
        rule="most_frequent",
        tie_breakers=("most_complete", "most_common", "most_recent", "source_priority"))
    email: AttributeRule = AttributeRule(
        rule="most_frequent",
        tie_breakers=("least_shared", "most_common", "spells_name", "most_recent",
                      "source_priority"),
        valid_only=True)
    phone: AttributeRule = AttributeRule(
        rule="most_frequent",
        tie_breakers=("least_shared", "mobile_first", "most_recent", "source_priority"),
        valid_only=True)
    address: AttributeRule = AttributeRule(rule="most_recent",
                                           tie_breakers=("most_complete", "source_priority"),
                                           valid_only=True)
    birth: AttributeRule = AttributeRule(rule="most_frequent",
                                         tie_breakers=("source_priority", "most_complete"))
    gender: AttributeRule = AttributeRule(rule="most_frequent", tie_breakers=("source_priority",))
    loyalty_id: AttributeRule = AttributeRule(rule="source_priority",
                                              tie_breakers=("most_recent",))

    @model_validator(mode="after")
    def _valid_only_where_defined(self) -> SurvivorshipSettings:
        for attr, rule in self:
            if rule.valid_only and attr not in VALIDATED_ATTRIBUTES:
                raise ValueError(
                    f"{attr}.valid_only: {attr!r} has no validity check (only "
                    f"{', '.join(VALIDATED_ATTRIBUTES)} have one); use 'where' with a SQL "
                    "predicate instead")
            for name in (rule.rule, *rule.tie_breakers):
                only = ATTRIBUTE_ONLY_RULES.get(name)
                if only is not None and attr not in only:
                    raise ValueError(f"{attr}: {name!r} ranks {' and '.join(only)} values "
                                     f"only; use it under publish.survivorship."
                                     f"{' or '.join(only)}")
        return self


class RfmThresholds(_Model):
    """Fixed score bands (not quantiles, so one customer's change never moves another's
    score). Each list has four ascending cut points giving scores 1-5."""

    recency_days: tuple[int, int, int, int] = (30, 90, 180, 365)
    frequency: tuple[int, int, int, int] = (2, 3, 5, 10)
    monetary: tuple[float, float, float, float] = (100.0, 250.0, 500.0, 1000.0)

    @field_validator("recency_days", "frequency", "monetary")
    @classmethod
    def _ascending(cls, v: tuple[float, ...]) -> tuple[float, ...]:
        if list(v) != sorted(set(v)):
            raise ValueError(f"cut points must be strictly ascending, got {list(v)}")
        return v


class EngagementCounts(_Model):
    """Keys of ``attributes`` on engagement interactions holding the running counts."""

    sent: str = "emails_sent"
    opened: str = "emails_opened"
    clicked: str = "emails_clicked"


class MetricsSettings(_Model):
    """Derived metrics from ``silver.interactions`` (see :mod:`udp_spark.profile.metrics`)."""

    as_of: date | Literal["today", "input"] = Field(
        default="today", description="the day metrics are computed for: a date, 'today' (UTC), "
        "or 'input' (the day of the latest interaction); interactions after it are ignored")
    horizon_days: int = Field(default=365, ge=1, description="horizon of predicted_ltv")
    half_life_days: float = Field(default=180.0, gt=0, description="recency after which the "
                                  "chance a customer is still active halves (predicted_ltv)")
    min_tenure_days: int = Field(default=30, ge=1, description="a shorter purchase history "
                                 "counts as this long when estimating purchase frequency")
    purchase_types: tuple[str, ...] = ("order", "pos_purchase", "purchase")
    excluded_statuses: tuple[str, ...] = ("cancelled", "canceled", "returned", "refunded",
                                          "failed")
    ticket_types: tuple[str, ...] = ("support_ticket",)
    open_ticket_statuses: tuple[str, ...] = ("open", "pending", "new", "on_hold", "hold")
    engagement_types: tuple[str, ...] = ("email_engagement",)
    engagement_counts: EngagementCounts = EngagementCounts()
    base_currency: str = Field(default="USD", min_length=3, max_length=3)
    fx_rates: dict[str, float] = Field(
        default_factory=lambda: {"USD": 1.0, "EUR": 1.08, "GBP": 1.27},
        description="units of base_currency per unit of each currency; purchases in other "
                    "currencies count as orders but add nothing to spend")
    rfm: RfmThresholds = RfmThresholds()

    @field_validator("base_currency")
    @classmethod
    def _upper(cls, v: str) -> str:
        return v.upper()

    @field_validator("fx_rates")
    @classmethod
    def _positive_rates(cls, v: dict[str, float]) -> dict[str, float]:
        bad = {k: r for k, r in v.items() if not r > 0}
        if bad:
            raise ValueError(f"rates must be > 0, got {bad}")
        return {k.upper(): r for k, r in v.items()}


class SegmentSpec(_Model):
    """A segment: a Spark SQL predicate over ``gold.customer_profile`` columns."""

    where: str = Field(min_length=1)
    description: str = ""

    @field_validator("where")
    @classmethod
    def _looks_like_a_predicate(cls, v: str) -> str:
        problem = _predicate_problem(v)
        if problem:
            raise ValueError(problem)
        return v


def _scan_quotes(text: str) -> tuple[list[tuple[str, str]], str | None]:
    """Each character of ``text`` with where it stands: ``code``, ``open`` (the quote that
    starts a string literal or a quoted identifier) or ``quoted`` (inside one, its closing
    quote included); and the quote left unclosed at the end, if any."""
    marks: list[tuple[str, str]] = []
    quote: str | None = None
    escaped = False
    for ch in text:
        if quote:
            marks.append((ch, "quoted"))
            if escaped:
                escaped = False
            elif ch == "\\" and quote != "`":  # 'O\'Brien': Spark SQL escapes in strings
                escaped = True
            elif ch == quote:
                quote = None
        elif ch in "'\"`":
            quote = ch
            marks.append((ch, "open"))
        else:
            marks.append((ch, "code"))
    return marks, quote


def _predicate_problem(text: str) -> str | None:
    """A cheap syntax check before Spark parses the predicate (it checks the rest)."""
    marks, unclosed = _scan_quotes(text)
    depth = 0
    for ch, kind in marks:
        if kind != "code":
            continue
        if ch == "(":
            depth += 1
        elif ch == ")":
            depth -= 1
            if depth < 0:
                return f"unbalanced ')' in {text!r}"
        elif ch == ";":
            return f"one predicate only, no ';': {text!r}"
    if unclosed:
        return f"unclosed {unclosed} in {text!r}"
    if depth:
        return f"unbalanced '(' in {text!r}"
    return None


def _unquoted(text: str) -> str:
    """``text`` with every string literal ('...', "...") replaced by a bare ``'``; quoted
    identifiers (`...`) become a bare word."""
    marks, _ = _scan_quotes(text)
    return "".join(ch if kind == "code" else ("'" if ch != "`" else " ident ")
                   for ch, kind in marks if kind != "quoted")


# Slips a SQL parser rejects, outside string literals: an empty argument, an operator with
# nothing on one side.
_EXPR_SLIPS = (
    (re.compile(r",\s*[,)]|\(\s*,"), "an empty argument (',,', '(,' or ',)')"),
    (re.compile(r"(?:[,+*/%=<>&|^-]|\b(?:and|or|not)\b)\s*$", re.I),
     "nothing after the last operator or comma"),
    (re.compile(r"^\s*(?:[,*/%=<>&|^)]|\b(?:and|or)\b)", re.I),
     "an operator or comma with nothing before it"),
)
# Words that may stand right next to a string literal in Spark SQL.
_LITERAL_NEIGHBOURS = frozenset({
    "when", "then", "else", "end", "case", "like", "ilike", "rlike", "regexp", "similar",
    "escape", "in", "is", "not", "and", "or", "as", "between", "interval", "date", "timestamp",
    "timestamp_ntz", "timestamp_ltz", "x", "day", "days", "hour", "hours", "minute", "minutes",
    "second", "seconds", "month", "months", "year", "years", "week", "weeks", "millisecond",
    "milliseconds", "microsecond", "microseconds", "to", "over", "partition", "by", "order",
    "asc", "desc", "from", "for", "both", "leading", "trailing", "distinct", "null", "collate",
})
_TOKEN = re.compile(r"\w+|'|\S")


def _missing_separator(bare: str) -> str | None:
    tokens = _TOKEN.findall(bare)
    for a, b in itertools.pairwise(tokens):
        if "'" not in (a, b) or a == b == "'":  # 'a' 'b' is one literal in Spark SQL
            continue
        other = b if a == "'" else a
        if (other.isidentifier() or other.isdigit()) and other.lower() in _LITERAL_NEIGHBOURS:
            continue
        if other.isidentifier() or other.isdigit() or (a == ")" or b == "("):
            return "a string literal right next to another value (a missing comma?)"
    return None


def expression_problem(text: str) -> str | None:
    """What makes ``text`` unusable as one Spark SQL expression, or None if it looks fine.

    A check without Spark (config is validated before any Spark work): quotes and brackets
    balanced, one expression, no dangling operators or commas, no string literal right
    beside another value. Spark's parser checks the rest when the source is landed.
    """
    if not text.strip():
        return "the expression is empty"
    problem = _predicate_problem(text)
    if problem:
        return problem
    bare = _unquoted(text)
    for pattern, what in _EXPR_SLIPS:
        if pattern.search(bare):
            return what
    return _missing_separator(bare)


def mapping_expressions(source: SourceConfig) -> list[tuple[str, str]]:
    """``(key, expression)`` of every ``{expr: ...}`` in a source's mappings, keys as in YAML
    (``party.gender``, ``interactions.0.attributes.platform``)."""
    out: list[tuple[str, str]] = []

    def walk(prefix: str, mapping: BaseModel) -> None:
        for name, spec in mapping:
            specs = spec.items() if isinstance(spec, dict) else [(None, spec)]
            for sub, value in specs:
                if isinstance(value, ExprSpec):
                    key = f"{prefix}.{name}" + (f".{sub}" if sub is not None else "")
                    out.append((key, value.expr))

    if source.party is not None:
        walk("party", source.party)
    for i, inter in enumerate(source.interactions):
        walk(f"interactions.{i}", inter)
    for i, consent in enumerate(source.consent):
        walk(f"consent.{i}", consent)
    return out


class HouseholdSettings(_Model):
    """Households (``gold.households``, see :mod:`udp_spark.profile.households`): customers
    sharing a residential address and family name, or a phone number, over overlapping
    time. An address or phone held by more customers than its cap links no one (a care
    home, a PO box, a shop's address or switchboard used as a placeholder)."""

    max_address_customers: int = Field(
        default=12, ge=2, description="an address held by more customers (any family name, "
        "any time) is not a household link")
    max_phone_customers: int = Field(
        default=8, ge=2, description="a phone number held by more customers is not a "
        "household link")
    link_phones: bool = Field(default=True, description="a shared phone number links "
                              "customers (false: only address + family name)")
    adult_age: int = Field(default=18, ge=1, le=30, description="age at as_of from which a "
                           "member's role is 'adult' (below: 'minor')")


class PublishSettings(_Model):
    """Golden profiles: survivorship rules, metrics, segments and households."""

    survivorship: SurvivorshipSettings = SurvivorshipSettings()
    metrics: MetricsSettings = MetricsSettings()
    households: HouseholdSettings = HouseholdSettings()
    segments: dict[str, SegmentSpec] = Field(
        default_factory=dict, description="name -> predicate, e.g. "
        "high_value: 'ltv > 1000 and recency_days < 90' (or {where: ..., description: ...})")

    @field_validator("segments", mode="before")
    @classmethod
    def _shorthand(cls, v: Any) -> Any:
        if isinstance(v, dict):
            return {k: {"where": s} if isinstance(s, str) else s for k, s in v.items()}
        return v

    @field_validator("segments")
    @classmethod
    def _segment_names(cls, v: dict[str, SegmentSpec]) -> dict[str, SegmentSpec]:
        for name in v:
            if not re.fullmatch(r"[a-z][a-z0-9_]*", name):
                raise ValueError(f"segment name {name!r} must be lower_snake_case")
        return v


class PurposeSettings(_Model):
    """A purpose personal data is used for (GDPR art. 6): whether it needs an opt-in, and
    what an export for it may contain."""

    requires_opt_in: bool = Field(default=True, description="true: only customers with a "
                                  "current grant (consent); false: everyone but those who "
                                  "withdrew (legitimate interest, opt-out)")
    fields: tuple[str, ...] = Field(
        default=("customer_id", "given_name", "family_name", "segments"),
        description="gold.customer_profile columns an export for this purpose may hold")
    description: str = ""


def _default_purposes() -> dict[str, PurposeSettings]:
    return {
        "email_marketing": PurposeSettings(fields=(
            "customer_id", "given_name", "family_name", "email", "segments")),
        "sms_marketing": PurposeSettings(fields=(
            "customer_id", "given_name", "phone", "segments")),
        "personalization": PurposeSettings(fields=(
            "customer_id", "given_name", "segments", "preferred_channel", "rfm_score")),
        "analytics": PurposeSettings(requires_opt_in=False, fields=(
            "customer_id", "segments", "orders", "ltv", "rfm_score", "country")),
        "third_party_sharing": PurposeSettings(fields=("customer_id", "segments")),
    }


class ErasureSettings(_Model):
    """How ``udp erase`` carries out a right-to-erasure request."""

    vacuum_retain_hours: float = Field(
        default=0.0, ge=0, description="files of earlier table versions older than this are "
        "removed after an erasure (0: at once; the erased values must not survive in old "
        "versions, so time travel to before the erasure ends for the tables it touched)")
    suppression_salt: str = Field(
        default="udp-spark", description="salt of the hashes on the suppression list "
        "(set a secret: ${UDP_PRIVACY_SALT})")
    parallel_deletes: int = Field(
        default=1, ge=1, le=32, description="tables deleted from at once (threads of one Spark "
        "session). 1: one after the other; on the 20k-row bench lakehouse, 2 cores at load "
        "6-11, 4 made the deletes slower (318-329 s against 192-279 s); at 1M source rows, "
        "idle, 2 gained nothing (bronze 37.2 s against 38.1, silver 22.0 against 17.1): "
        "worth more only with idle cores")
    parallel_purge: int = Field(
        default=4, ge=1, le=32, description="tables purged (REORG, VACUUM) at once: mostly "
        "file listing and driver work (same bench: 76-109 s against 138-139 s one after the "
        "other)")


class RetentionSettings(_Model):
    """``udp retention``: how long rows are kept, per source, in days. A source's bronze rows
    go by when they were landed, its interactions by when they occurred; its party records
    stay while the source delivers them (erase a person with ``udp erase``)."""

    sources: dict[str, int] = Field(default_factory=dict, description="source -> days, e.g. "
                                    "{app_events: 400}")
    vacuum_retain_hours: float = Field(default=0.0, ge=0, description="history kept after "
                                       "a retention run (0: expired rows leave every version)")


class PrivacySettings(_Model):
    """Consent purposes, erasure and retention."""

    purposes: dict[str, PurposeSettings] = Field(default_factory=_default_purposes)
    erasure: ErasureSettings = ErasureSettings()
    retention: RetentionSettings = RetentionSettings()

    @field_validator("purposes")
    @classmethod
    def _purpose_names(cls, v: dict[str, PurposeSettings]) -> dict[str, PurposeSettings]:
        for name in v:
            if not re.fullmatch(r"[a-z][a-z0-9_]*", name):
                raise ValueError(f"purpose name {name!r} must be lower_snake_case")
        return v


def local_path(uri: str) -> Path | None:
    """A folder given as a path or a ``file:`` URI, made absolute; None for any other
    scheme (object storage, DBFS)."""
    if "://" in uri and not uri.startswith("file:"):
        return None
    return Path(uri.removeprefix("file://").removeprefix("file:")).resolve()


def default_tracking_uri(lakehouse_root: str) -> str:
    """The MLflow store of a lakehouse: ``mlflow.db`` in its root folder when that is local,
    so that a matcher registered for one lakehouse is never the one another scores with
    (a store in the working directory was shared by every lakehouse run from there: a run on
    new data skipped training and scored with the demo's model); ``mlflow.db`` in the
    working directory for a lakehouse on object storage, where SQLite cannot live."""
    root = local_path(lakehouse_root)
    return f"sqlite:///{root / 'mlflow.db'}" if root else "sqlite:///mlflow.db"


class PipelineConfig(_Model):
    """The whole pipeline: lakehouse location, Spark profile, sources and stage settings."""

    lakehouse: LakehouseConfig = LakehouseConfig()
    spark: SparkProfile = SparkProfile()
    data_root: str = "./data/demo"
    checkpoint_dir: str | None = Field(default=None, description="where reliable "
                                       "checkpoints go (a folder/URI every executor reaches); "
                                       "default <lakehouse root>/_checkpoints/spark")
    checkpoint_mode: Literal["auto", "reliable", "local"] = Field(
        default="auto", description="lineage breaks: reliable checkpoints (files, survive a "
        "lost executor), local ones (executor blocks), or auto: local only in local mode")
    sources_dir: str | list[str] = Field(
        default="sources", description="folder of source YAMLs beside the pipeline file, or "
        "a list of folders whose sources are loaded together (a name may be defined once)")
    standardize: StandardizeSettings = StandardizeSettings()
    matching: MatchingSettings = MatchingSettings()
    mlflow: MlflowSettings = MlflowSettings()
    publish: PublishSettings = PublishSettings()
    stream: StreamSettings = StreamSettings()
    run: RunSettings = RunSettings()
    maintenance: MaintenanceSettings = MaintenanceSettings()
    privacy: PrivacySettings = PrivacySettings()
    sources: dict[str, SourceConfig] = Field(default_factory=dict)
    config_hash: str = ""

    @model_validator(mode="after")
    def _matching_for_sources(self) -> PipelineConfig:
        # Identifiers mapped in the sources are matched on without restating them (see
        # MatchingSettings.for_sources). The model is frozen: set the field once, here.
        object.__setattr__(self, "matching", self.matching.for_sources(self.sources))
        return self

    @model_validator(mode="after")
    def _mlflow_store(self) -> PipelineConfig:
        if not self.mlflow.tracking_uri:
            object.__setattr__(self, "mlflow", self.mlflow.model_copy(update={
                "tracking_uri": default_tracking_uri(self.lakehouse.root)}))
        return self

    @model_validator(mode="after")
    def _consent_purposes_known(self) -> PipelineConfig:
        unknown = sorted(set(self.privacy.retention.sources) - set(self.sources))
        if unknown and self.sources:
            raise ValueError(f"privacy.retention.sources: unknown sources {unknown}; sources "
                             f"are {sorted(self.sources)}")
        for src in self.sources.values():
            for i, c in enumerate(src.consent):
                if c.purpose not in self.privacy.purposes:
                    raise ValueError(
                        f"source {src.name!r}: consent.{i}.purpose: unknown purpose "
                        f"{c.purpose!r}; privacy.purposes are {sorted(self.privacy.purposes)}")
        return self

    def sources_dirs(self, base: Path) -> list[Path]:
        """The source folders, resolved against ``base`` (the pipeline file's folder)."""
        return _sources_dirs(self.sources_dir, base)

    def source_path(self, source: SourceConfig) -> str:
        """The source's path, resolved against ``data_root`` when relative."""
        assert source.path is not None
        if re.match(r"^[a-zA-Z][a-zA-Z0-9+.-]*://", source.path) or os.path.isabs(source.path):
            return source.path
        return str(Path(self.data_root) / source.path)


_ENV = re.compile(r"\$\{([A-Za-z_][A-Za-z0-9_]*)(?::-([^}]*))?\}")


def _interpolate(value: Any, file: Path) -> Any:
    """Replace ``${VAR}`` / ``${VAR:-default}`` in strings (secrets stay out of YAML)."""
    if isinstance(value, str):
        def repl(m: re.Match[str]) -> str:
            var, default = m.group(1), m.group(2)
            if var in os.environ:
                return os.environ[var]
            if default is not None:
                return default
            raise ConfigError(f"{file}: environment variable {var} is not set (used as ${{{var}}})")
        return _ENV.sub(repl, value)
    if isinstance(value, dict):
        return {k: _interpolate(v, file) for k, v in value.items()}
    if isinstance(value, list):
        return [_interpolate(v, file) for v in value]
    return value


def read_yaml(path: Path) -> dict[str, Any]:
    """A YAML mapping with ``${VAR}`` / ``${VAR:-default}`` replaced from the environment;
    a missing file, bad YAML or a missing variable raises :class:`ConfigError`."""
    if not path.is_file():
        raise ConfigError(f"{path}: file not found")
    try:
        data = yaml.safe_load(path.read_text(encoding="utf-8"))
    except yaml.YAMLError as exc:
        raise ConfigError(f"{path}: not valid YAML: {exc}") from exc
    if data is None:
        data = {}
    if not isinstance(data, dict):
        raise ConfigError(f"{path}: top level must be a mapping of keys, got {type(data).__name__}")
    return _interpolate(data, path)


def _explain(exc: ValidationError, file: Path) -> ConfigError:
    lines = []
    for err in exc.errors():
        key = ".".join(str(p) for p in err["loc"] if not str(p).startswith(("str", "ExprSpec",
                                                                             "ConstSpec")))
        msg = err["msg"]
        if err["type"] == "extra_forbidden":
            msg = "unknown key (check the spelling against the documented keys)"
        lines.append(f"{file}: {key or '<top>'}: {msg}")
    return ConfigError("invalid configuration\n  " + "\n  ".join(lines))


def load_source(path: str | Path) -> SourceConfig:
    """Load and validate one source YAML file."""
    path = Path(path)
    data = read_yaml(path)
    data.setdefault("name", path.stem)
    try:
        source = SourceConfig.model_validate(data)
    except ValidationError as exc:
        raise _explain(exc, path) from None
    bad = [(key, expr, problem) for key, expr in mapping_expressions(source)
           if (problem := expression_problem(expr))]
    if bad:
        raise ConfigError("invalid configuration\n  " + "\n  ".join(
            f"{path}: {key}.expr: {expr!r} is not a valid SQL expression: {problem}"
            for key, expr, problem in bad))
    return source


def _read_pipeline(path: Path) -> dict[str, Any]:
    """The pipeline file's keys. With ``extends: other.yaml`` (a path beside it): that
    file's keys, each top-level key given here replacing the one of the same name."""
    data = read_yaml(path)
    base_name = data.pop("extends", None)
    if base_name is None:
        return data
    base_path = path.parent / str(base_name)
    base = read_yaml(base_path)
    if "extends" in base:
        raise ConfigError(f"{path}: extends: {base_path} extends another file itself; "
                          f"extend the file it extends instead")
    return {**base, **data}


def _sources_dirs(value: object, base: Path) -> list[Path]:
    names = value if isinstance(value, list) else [value]
    return [base / str(name) for name in names]


def load_config(path: str | Path = "conf/pipeline.yaml", *, data_root: str | None = None,
                lakehouse_root: str | None = None) -> PipelineConfig:
    """Load ``pipeline.yaml`` and every ``*.yaml`` in its sources folder(s), validated.

    Args:
        path: the pipeline file (``extends: pipeline.yaml`` in it takes every top-level key
            it does not set from that file, e.g. ``conf/pipeline-registers.yaml``).
        data_root: overrides ``data_root`` (where relative source paths point).
        lakehouse_root: overrides ``lakehouse.root``.

    Raises:
        ConfigError: naming the file and key of the first problems found.
    """
    path = Path(path)
    data = _read_pipeline(path)
    if data_root is not None:
        data["data_root"] = data_root
    if lakehouse_root is not None:
        data.setdefault("lakehouse", {})
        data["lakehouse"] = {**data["lakehouse"], "root": lakehouse_root}
    sources: dict[str, SourceConfig] = {}
    source_files: dict[str, Path] = {}
    for sources_dir in _sources_dirs(data.get("sources_dir", "sources"), path.parent):
        for src_file in sorted(sources_dir.glob("*.yaml")) if sources_dir.is_dir() else []:
            src = load_source(src_file)
            if src.name in sources:
                raise ConfigError(f"{src_file}: name: source {src.name!r} is defined twice "
                                  f"(also in {source_files[src.name]})")
            sources[src.name] = src
            source_files[src.name] = src_file
    for src in sources.values():
        for i, inter in enumerate(src.interactions):
            if inter.party_source and inter.party_source not in sources:
                raise ConfigError(
                    f"{source_files[src.name]}: interactions.{i}.party_source: "
                    f"unknown source {inter.party_source!r}; sources are {sorted(sources)}"
                )
    raw_hash = hashlib.sha256(
        json.dumps({"pipeline": data, "sources": {k: v.model_dump(mode="json")
                                                  for k, v in sources.items()}},
                   sort_keys=True, default=str).encode()
    ).hexdigest()[:16]
    try:
        return PipelineConfig.model_validate({**data, "sources": sources,
                                              "config_hash": raw_hash})
    except ValidationError as exc:
        raise _explain(exc, path) from None
