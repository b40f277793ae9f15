"""Bronze -> silver transforms: canonical party records, interactions, quarantine.

Each source is mapped onto one canonical party schema by its YAML mapping, then every field is
normalized. Problems are not dropped: each row carries ``_issues`` (field, raw value, reason,
action) and ``_reject_reason``; :func:`quarantine_rows` turns them into quarantine rows and
:func:`party_records` keeps the usable rows, one per source record.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import date
from pathlib import Path

from pyspark.errors import AnalysisException, ParseException
from pyspark.sql import Column, DataFrame, SparkSession
from pyspark.sql import functions as F
from pyspark.sql import types as T
from pyspark.sql.window import Window

from udp_spark.config import (
    ConfigError,
    ConstSpec,
    ExprSpec,
    FieldSpec,
    InteractionMapping,
    PartyMapping,
    PipelineConfig,
    SourceConfig,
    StandardizeSettings,
    mapping_expressions,
)
from udp_spark.io import CORRUPT_COL
from udp_spark.landing import RESCUED_COL
from udp_spark.standardize import functions as sf
from udp_spark.standardize.phones import normalize_phone

Transform = Callable[[DataFrame], DataFrame]

ISSUE_TYPE = T.StructType([
    T.StructField("field", T.StringType()),
    T.StructField("raw_value", T.StringType()),
    T.StructField("reason", T.StringType()),
    T.StructField("action", T.StringType()),
])

# Canonical party fields in output order (lineage and run columns follow).
PARTY_FIELDS = (
    "record_id", "source", "source_key", "source_rank",
    "given_name", "middle_name", "family_name", "full_name",
    "given_name_norm", "middle_name_norm", "family_name_norm",
    "given_name_phonetic", "family_name_phonetic", "given_name_aliases",
    "email", "email_canonical", "email_valid",
    "phone_e164", "phone_valid", "phone_kind", "mobile_e164", "mobile_valid",
    "street", "street_norm", "city", "city_norm", "state", "postcode", "country",
    "date_of_birth", "birth_year", "gender", "loyalty_id", "identifiers", "attributes",
    "created_at", "updated_at", "completeness",
)

INTERACTION_FIELDS = (
    "interaction_id", "record_id", "source", "interaction_key", "type", "occurred_at",
    "amount", "currency", "channel", "status", "attributes",
)


class MappingError(ValueError):
    """A source mapping names a column the data does not have."""


# The reader puts U+FFFD where a file's bytes are not valid in the source's encoding (UTF-8
# unless options.encoding says otherwise): the value is already damaged ('Jos\ufffd').
UNDECODABLE = ("undecodable text: bytes not valid in the source's encoding (set "
               "options.encoding in its YAML, e.g. ISO-8859-1)")
# No name, e-mail or address is this long: a value beyond it is a broken export (a missing
# closing quote swallowing the rest of the file, a blob in a text column).
MAX_VALUE_CHARS = 1000
TOO_LONG = f"value longer than {MAX_VALUE_CHARS} characters"
NO_LETTERS = "name has no letters (emoji, symbols or titles only)"
KEY_REUSED = ("source key reused for a different person: name or date of birth differs "
              "from the record's latest row (the row is kept here, not merged into it)")


# --------------------------------------------------------------------------- mapping


def _column_exists(schema: T.StructType, path: str) -> bool:
    dtype: T.DataType = schema
    for part in path.split("."):
        if not isinstance(dtype, T.StructType) or part not in dtype.fieldNames():
            return False
        dtype = dtype[part].dataType
    return True


def field_column(spec: FieldSpec | None) -> Column:
    """The column a mapping entry denotes, as a string (null when unmapped)."""
    if spec is None:
        return F.lit(None).cast("string")
    if isinstance(spec, ExprSpec):
        return F.expr(spec.expr).cast("string")
    if isinstance(spec, ConstSpec):
        return F.lit(spec.const).cast("string")
    return F.col(".".join(f"`{p}`" for p in spec.split("."))).cast("string")


def mapped_columns(source: SourceConfig) -> list[tuple[str, str]]:
    """``(key, column)`` of every mapping entry that names a raw column (not expr/const)."""
    specs: list[tuple[str, FieldSpec | None]] = []
    if source.party:
        for name, spec in source.party:
            if isinstance(spec, dict):
                specs += [(f"party.{name}.{k}", v) for k, v in spec.items()]
            else:
                specs.append((f"party.{name}", spec))
    for i, inter in enumerate(source.interactions):
        for name, spec in inter:
            if isinstance(spec, dict):
                specs += [(f"interactions.{i}.{name}.{k}", v) for k, v in spec.items()]
            elif name != "party_source":
                specs.append((f"interactions.{i}.{name}", spec))
    for i, consent in enumerate(source.consent):
        specs += [(f"consent.{i}.{name}", spec) for name, spec in consent
                  if name in ("status", "occurred_at", "expires_at", "legal_basis")]
    return [(key, spec) for key, spec in specs if isinstance(spec, str)]


def column_exists(schema: T.StructType, path: str) -> bool:
    """True when ``path`` (dotted for nested fields) is a column of ``schema``."""
    return _column_exists(schema, path)


def check_mapping(source: SourceConfig, schema: T.StructType) -> None:
    """Fail early, naming source, field and column, if a mapped column does not exist."""
    for key, spec in mapped_columns(source):
        if not _column_exists(schema, spec):
            raise MappingError(
                f"source {source.name!r}: {key} maps column {spec!r}, which is not in the data; "
                f"columns are {sorted(schema.fieldNames())}"
            )


def check_expressions(source: SourceConfig, df: DataFrame) -> None:
    """Fail, naming source, key and expression, if a mapped ``{expr: ...}`` does not parse or
    does not resolve against ``df``'s columns (Spark parses and analyses it; nothing runs)."""
    for key, expr in mapping_expressions(source):
        try:
            df.select(F.expr(expr)).schema  # noqa: B018 - analysis happens here
        except Exception as exc:
            gist = " ".join(ln.strip() for ln in str(exc).strip().splitlines()[:1]) or repr(exc)
            raise MappingError(
                f"source {source.name!r}: {key}.expr {expr!r} is not a valid Spark SQL "
                f"expression over its columns: {gist}; fix it in the source's YAML") from None


def check_expression_syntax(spark: SparkSession, cfg: PipelineConfig,
                            sources_dir: Path | None = None) -> None:
    """Parse every mapped ``{expr: ...}`` with Spark's own SQL parser, at start-up.

    :func:`udp_spark.config.load_config` checks expressions without Spark (quotes, brackets,
    dangling operators); this catches the rest ('a b c', 'case when x then 1'). Column names
    are not resolved here (the data is not read yet): :func:`check_expressions` does that.

    Raises:
        ConfigError: naming the source file, the key and Spark's message.
    """
    # The session's parser, not a select over a probe frame: analysing a select would log
    # every column the probe lacks as an ERROR (SQLQueryContextLogger) on every stage start.
    jsession = getattr(spark, "_jsparkSession", None)
    if jsession is not None:
        parser = jsession.sessionState().sqlParser()

        def parse(expr: str) -> None:
            parser.parseExpression(expr)
    else:  # Spark Connect: no parser handle; analysis errors are caught below
        probe = spark.range(0)

        def parse(expr: str) -> None:
            probe.select(F.expr(expr))
    bad = []
    for name, source in sorted(cfg.sources.items()):
        for key, expr in mapping_expressions(source):
            try:
                parse(expr)
            except ParseException as exc:
                gist = " ".join(str(exc).strip().splitlines()[:1])[:300]
                where = f"source {name!r}" + (f" (in {sources_dir})" if sources_dir else "")
                bad.append(f"{where}: {key}.expr: {expr!r} is not a valid Spark SQL "
                           f"expression: {gist}")
            except AnalysisException:
                pass  # it parsed; its columns are resolved against the data later
    if bad:
        raise ConfigError("invalid configuration\n  " + "\n  ".join(bad))


def _raw_row_json(df: DataFrame) -> Column:
    data = [c for c in df.columns if not c.startswith("_") or c in (RESCUED_COL, CORRUPT_COL)]
    return F.to_json(F.struct(*[F.col(f"`{c}`") for c in data]))


def _issue(field: str, raw: Column, reason: str, action: str) -> Column:
    return F.struct(F.lit(field).alias("field"), raw.cast("string").alias("raw_value"),
                    F.lit(reason).alias("reason"), F.lit(action).alias("action"))


def _issues(*conditional: tuple[Column, Column]) -> Column:
    """array of issue structs for the conditions that hold (nulls removed)."""
    items = [F.when(cond, issue) for cond, issue in conditional]
    if not items:
        return F.array().cast(T.ArrayType(ISSUE_TYPE))
    return F.filter(F.array(*items), lambda x: x.isNotNull())


# --------------------------------------------------------------------------- party


def row_keys(source: SourceConfig) -> list[Column]:
    """Over bronze rows: the keys a row is grouped by in silver (the party source key, each
    interaction mapping's key), exactly as :func:`check_party` and
    :func:`check_interactions` derive them. Rows sharing a key are standardized together."""
    keys = [sf.clean_text(field_column(source.party.source_key))] if source.party else []
    keys += [sf.clean_text(field_column(m.key)) for m in source.interactions]
    return keys



def check_party(source: SourceConfig, settings: StandardizeSettings,
                today: date | None = None) -> Transform:
    """Bronze rows -> one normalized canonical row per input row with ``_issues`` and
    ``_reject_reason`` (null when the row is usable)."""
    assert source.party is not None
    m: PartyMapping = source.party
    today = today or date.today()

    def transform(bronze: DataFrame) -> DataFrame:
        check_mapping(source, bronze.schema)
        check_expressions(source, bronze)
        raw = bronze.select(
            _raw_row_json(bronze).alias("_raw_row"),
            F.col(CORRUPT_COL).alias("_corrupt"),
            *[field_column(getattr(m, f)).alias(f"raw_{f}") for f in (
                "source_key", "given_name", "middle_name", "family_name", "full_name", "email",
                "phone", "mobile", "street", "city", "state", "postcode", "country",
                "date_of_birth", "birth_year", "gender", "loyalty_id", "created_at",
                "updated_at")],
            (F.create_map(*[x for k, v in sorted(m.identifiers.items())
                            for x in (F.lit(k), sf.normalize_id(field_column(v)))])
             if m.identifiers else F.create_map().cast("map<string,string>")).alias("_ids"),
            (F.create_map(*[x for k, v in sorted(m.attributes.items())
                            for x in (F.lit(k), sf.clean_text(field_column(v)))])
             if m.attributes else F.create_map().cast("map<string,string>")).alias("_attrs"),
            "_batch_id", "_file", "_ingested_at", "_row_hash",
        )
        # Each stage refers to the previous stage's columns by name. Composing the
        # normalizers directly would nest each inside the next, and every function that uses
        # its input twice doubles the tree: the plan grows exponentially and code generation
        # fails. Spark does not collapse a stage whose non-trivial columns are used twice.
        texts = ("source_key", "given_name", "middle_name", "family_name", "full_name",
                 "email", "phone", "mobile", "street", "city", "state", "postcode", "country",
                 "date_of_birth", "birth_year", "gender", "loyalty_id", "created_at",
                 "updated_at")
        too_long = F.array_compact(F.array(*[
            F.when(F.length(F.col(f"raw_{f}")) > MAX_VALUE_CHARS, F.lit(f)) for f in texts]))
        stage1 = raw.select("*", too_long.alias("_too_long"), *[
            F.when(F.length(F.col(f"raw_{f}")) <= MAX_VALUE_CHARS,
                   sf.clean_text(F.col(f"raw_{f}"))).alias(f"t_{f}") for f in texts])
        t = lambda f: F.col(f"t_{f}")  # noqa: E731
        stage2 = stage1.select(
            "*",
            sf.strip_name_titles(t("full_name")).alias("_bare_name"),
            sf.has_name_title(t("full_name")).alias("_had_title"),
            sf.normalize_email(t("email")).alias("_email"),
            sf.normalize_country(t("country"), None).alias("_country"),
            sf.parse_date(t("date_of_birth"), source.date_formats).alias("_dob"),
            t("birth_year").try_cast("int").alias("_birth_year"),
            sf.parse_timestamp(t("created_at"), source.timestamp_formats).alias("_created"),
            sf.parse_timestamp(t("updated_at"), source.timestamp_formats).alias("_updated"),
            sf.normalize_id(t("loyalty_id")).alias("_loyalty"),
        )
        region = F.coalesce(F.col("_country"), F.lit(source.default_country))
        placeholder = sf.in_set(F.col("_email"), settings.placeholder_emails)
        dob_placeholder = F.coalesce(F.col("_dob").isin(
            *[F.lit(d) for d in settings.placeholder_dates_of_birth]), F.lit(False))
        stage3 = stage2.select(
            "*", sf.split_bare_name(F.col("_bare_name"), F.col("_had_title")).alias("_split"))
        df = stage3.select(
            "*",
            t("source_key").alias("source_key"),
            F.coalesce(t("given_name"), F.col("_split.given")).alias("_given"),
            F.coalesce(t("middle_name"), F.col("_split.middle")).alias("_middle"),
            F.coalesce(t("family_name"), F.col("_split.family")).alias("_family"),
            (sf.email_is_valid(F.col("_email")) & ~placeholder).alias("_email_ok"),
            placeholder.alias("_email_placeholder"),
            normalize_phone(t("phone"), region).alias("_phone"),
            normalize_phone(t("mobile"), region).alias("_mobile"),
            t("country").alias("_country_clean"),
            (F.coalesce((F.year("_dob") >= settings.min_birth_year)
                        & (F.col("_dob") <= F.lit(today)), F.lit(False))
             & ~dob_placeholder).alias("_dob_ok"),
            dob_placeholder.alias("_dob_placeholder"),
            t("birth_year").alias("_birth_year_raw"),
        ).select(
            "*",
            sf.normalize_name(F.col("_given")).alias("_given_norm"),
            sf.normalize_name(F.col("_middle")).alias("_middle_norm"),
            sf.normalize_name(F.col("_family")).alias("_family_norm"),
            sf.display_name(F.col("_given")).alias("_given_disp"),
            sf.display_name(F.col("_middle")).alias("_middle_disp"),
            sf.display_name(F.col("_family")).alias("_family_disp"),
            sf.canonical_email(F.col("_email")).alias("_email_canonical"),
            sf.normalize_street(t("street")).alias("_street_norm"),
            sf.normalize_city(t("city")).alias("_city_norm"),
            sf.normalize_postcode(t("postcode"), region).alias("_postcode"),
            sf.normalize_gender(t("gender")).alias("_gender"),
        )
        c = F.col
        # A name that normalizes to nothing (emoji, symbols, titles only) is no name.
        name_present = c("_given_norm").isNotNull() | c("_family_norm").isNotNull()
        name_given = (t("given_name").isNotNull() | t("family_name").isNotNull()
                      | t("full_name").isNotNull())
        email_present = c("_email").isNotNull()
        issues = _issues(
            (F.size(c("_too_long")) > 0,
             F.struct(F.array_join(c("_too_long"), ",").alias("field"),
                      F.lit(None).cast("string").alias("raw_value"),
                      F.lit(TOO_LONG).alias("reason"), F.lit("field_nulled").alias("action"))),
            (name_given & ~name_present,
             _issue("name", F.coalesce(c("raw_full_name"), c("raw_given_name"),
                                       c("raw_family_name")), NO_LETTERS, "field_nulled")),
            (email_present & c("_email_placeholder"),
             _issue("email", c("raw_email"), "placeholder email", "field_nulled")),
            (email_present & ~c("_email_placeholder") & ~c("_email_ok"),
             _issue("email", c("raw_email"), "invalid email", "field_nulled")),
            (c("_phone.valid") == F.lit(False),
             _issue("phone", c("raw_phone"), "invalid phone number", "field_nulled")),
            (c("_mobile.valid") == F.lit(False),
             _issue("mobile", c("raw_mobile"), "invalid phone number", "field_nulled")),
            (t("date_of_birth").isNotNull() & c("_dob").isNull(),
             _issue("date_of_birth", c("raw_date_of_birth"), "unparseable date", "field_nulled")),
            (c("_dob_placeholder"),
             _issue("date_of_birth", c("raw_date_of_birth"), "placeholder date of birth",
                    "field_nulled")),
            (c("_dob").isNotNull() & ~c("_dob_ok") & ~c("_dob_placeholder"),
             _issue("date_of_birth", c("raw_date_of_birth"), "date of birth out of range",
                    "field_nulled")),
            (c("_birth_year_raw").isNotNull()
             & ~F.coalesce(c("_birth_year").between(settings.min_birth_year, today.year),
                           F.lit(False)),
             _issue("birth_year", c("raw_birth_year"), "invalid birth year", "field_nulled")),
            (t("created_at").isNotNull() & c("_created").isNull(),
             _issue("created_at", c("raw_created_at"), "unparseable timestamp", "field_nulled")),
            (t("updated_at").isNotNull() & c("_updated").isNull(),
             _issue("updated_at", c("raw_updated_at"), "unparseable timestamp", "field_nulled")),
            (c("_country_clean").isNotNull() & c("_country").isNull(),
             _issue("country", c("raw_country"), "unknown country", "field_nulled")),
            (F.lit(source.require_name) & ~name_present & ~name_given,
             _issue("name", F.coalesce(c("raw_full_name"), c("raw_given_name"),
                                       c("raw_family_name")), "empty name", "kept_without_name")),
        )
        # _email_ok is null without an e-mail: null | false would keep the row as usable
        usable = (name_present | F.coalesce(c("_email_ok"), F.lit(False))
                  | F.coalesce(c("_phone.valid"), F.lit(False))
                  | F.coalesce(c("_mobile.valid"), F.lit(False))
                  | c("_loyalty").isNotNull()
                  | (F.size(F.map_filter(c("_ids"), lambda k, v: v.isNotNull())) > 0))
        reject = (F.when(c("_corrupt").isNotNull(), F.lit("malformed row"))
                  .when(F.instr(c("_raw_row"), "\ufffd") > 0, F.lit(UNDECODABLE))
                  .when(c("source_key").isNull(), F.lit("missing source key"))
                  .when(~usable, F.lit("no usable identifier")))
        out = df.select(
            F.when(c("source_key").isNotNull(),
                   F.concat_ws(":", F.lit(source.name), c("source_key"))).alias("record_id"),
            F.lit(source.name).alias("source"),
            c("source_key"),
            F.lit(source.trust_rank).alias("source_rank"),
            F.when(c("_given_norm").isNotNull(), c("_given_disp")).alias("given_name"),
            F.when(c("_middle_norm").isNotNull(), c("_middle_disp")).alias("middle_name"),
            F.when(c("_family_norm").isNotNull(), c("_family_disp")).alias("family_name"),
            F.nullif(F.concat_ws(" ", *[F.when(c(f"_{p}_norm").isNotNull(), c(f"_{p}_disp"))
                                        for p in ("given", "middle", "family")]),
                     F.lit("")).alias("full_name"),
            c("_given_norm").alias("given_name_norm"),
            c("_middle_norm").alias("middle_name_norm"),
            c("_family_norm").alias("family_name_norm"),
            sf.name_phonetic(c("_given_norm")).alias("given_name_phonetic"),
            sf.name_phonetic(c("_family_norm")).alias("family_name_phonetic"),
            sf.nickname_aliases(c("_given_norm")).alias("given_name_aliases"),
            F.when(c("_email_ok"), c("_email")).alias("email"),
            F.when(c("_email_ok"), c("_email_canonical")).alias("email_canonical"),
            F.when(email_present, c("_email_ok")).alias("email_valid"),
            c("_phone.e164").alias("phone_e164"), c("_phone.valid").alias("phone_valid"),
            c("_phone.kind").alias("phone_kind"),
            c("_mobile.e164").alias("mobile_e164"), c("_mobile.valid").alias("mobile_valid"),
            t("street").alias("street"),
            c("_street_norm").alias("street_norm"),
            t("city").alias("city"),
            c("_city_norm").alias("city_norm"),
            t("state").alias("state"),
            c("_postcode").alias("postcode"),
            F.coalesce(c("_country"), F.when(c("_country_clean").isNull(),
                                             F.lit(source.default_country))).alias("country"),
            F.when(c("_dob_ok"), c("_dob")).alias("date_of_birth"),
            F.coalesce(F.when(c("_dob_ok"), F.year(c("_dob"))),
                       F.when(c("_birth_year").between(settings.min_birth_year, today.year),
                              c("_birth_year"))).alias("birth_year"),
            c("_gender").alias("gender"),
            c("_loyalty").alias("loyalty_id"),
            F.map_filter(c("_ids"), lambda k, v: v.isNotNull()).alias("identifiers"),
            F.map_filter(c("_attrs"), lambda k, v: v.isNotNull()).alias("attributes"),
            c("_created").alias("created_at"),
            c("_updated").alias("updated_at"),
            issues.alias("_issues"),
            reject.alias("_reject_reason"),
            c("_raw_row"), c("_batch_id"), c("_file"), c("_ingested_at"), c("_row_hash"),
        )
        if source.interactions:
            # Rows without a party key are interaction-only (an anonymous till receipt):
            # they live on in silver.interactions and are not a quarantine case here.
            out = out.filter(F.coalesce(c("_reject_reason") != "missing source key",
                                        F.lit(True)))
        return out.transform(_reused_keys_rejected)

    return transform


def _row_order() -> Column:
    """Which of a record's rows is the latest: ``updated_at`` (else the landing time), then
    the landing time, then a hash of the row's raw values. The last only breaks ties, and
    must not depend on where the file was landed from: ``_row_hash`` includes the batch id,
    which names the file's path, so the same data landed from two folders took different
    values on ties (at 1M source rows, up to 32 of 3.9M candidate pairs differed between
    bench repetitions)."""
    return F.struct(F.coalesce("updated_at", "_ingested_at"), F.col("_ingested_at"),
                    F.xxhash64("_raw_row"))


def _reused_keys_rejected(checked: DataFrame) -> DataFrame:
    """Reject the rows of a record that name another person than its latest row does.

    :func:`party_records` fills each field of a record from its latest row that has it, which
    is right for re-exports of one person and wrong when a system reused a key: an earlier
    row's e-mail and phone would fill the blanks of a different person's latest row, making
    one record of two people. A row is another person when its name shares no word or
    sound-alike (Soundex) with the latest named row's (so nicknames, typos and swapped
    given/family names still agree) or its date of birth differs from the latest one.
    """
    c = F.col
    w = Window.partitionBy("record_id")
    order = _row_order()
    ok = c("_reject_reason").isNull()
    who = F.array_compact(F.array("given_name_norm", "family_name_norm", "given_name_phonetic",
                                  "family_name_phonetic"))
    named = ok & (F.size(who) > 0)
    ref_who = F.max_by(F.when(named, who), F.when(named, order)).over(w)
    dated = ok & c("date_of_birth").isNotNull()
    ref_dob = F.max_by(F.when(dated, c("date_of_birth")), F.when(dated, order)).over(w)
    staged = checked.select("*", who.alias("_who"), ref_who.alias("_ref_who"),
                            ref_dob.alias("_ref_dob"))
    reused = (ok & c("record_id").isNotNull()
              & (((F.size("_who") > 0) & ~F.arrays_overlap("_who", "_ref_who"))
                 | (c("date_of_birth") != c("_ref_dob"))))
    return staged.withColumn("_reject_reason", F.when(F.coalesce(reused, F.lit(False)),
                                                      F.lit(KEY_REUSED))
                             .otherwise(c("_reject_reason"))).drop("_who", "_ref_who",
                                                                   "_ref_dob")


def _completeness() -> Column:
    c = F.col
    parts = [c("given_name_norm").isNotNull(), c("family_name_norm").isNotNull(),
             c("email").isNotNull(), c("phone_e164").isNotNull() | c("mobile_e164").isNotNull(),
             c("street_norm").isNotNull(), c("city_norm").isNotNull(), c("postcode").isNotNull(),
             c("date_of_birth").isNotNull()]
    total = sum((p.cast("int") for p in parts[1:]), parts[0].cast("int"))
    return F.round(total / F.lit(len(parts)), 3)


# Fields taken from one row together: a contact value with its verdict. The value is the
# latest one given; its flag says whether any row gave a valid one (a later row's typo,
# nulled as invalid, does not mark the earlier valid number invalid).
_TOGETHER: tuple[tuple[str, ...], ...] = (
    ("email", "email_canonical", "email_valid"),
    ("phone_e164", "phone_valid", "phone_kind"),
    ("mobile_e164", "mobile_valid"),
)


def party_records(run_id: str) -> Transform:
    """Checked rows -> usable party records, one per ``record_id``.

    A source may hold a record several times (re-exports, one row per support ticket): each
    field takes its latest non-null value, ordered by ``updated_at`` then ingestion time; an
    e-mail or phone number comes with the validity of the row it came from (:data:`_TOGETHER`),
    or the latest verdict when no row gave a valid one.
    """

    def transform(checked: DataFrame) -> DataFrame:
        usable = checked.filter(F.col("_reject_reason").isNull()).withColumn(
            "_order", _row_order())
        value_fields = [f for f in PARTY_FIELDS if f not in (
            "record_id", "source", "source_key", "source_rank", "completeness")]

        def latest(f: str) -> Column:
            if f in ("identifiers", "attributes", "given_name_aliases"):
                present = F.size(F.col(f)) > 0
            else:
                present = F.col(f).isNotNull()
            return F.max_by(F.col(f), F.when(present, F.col("_order")))

        together = {f: group for group in _TOGETHER for f in group}

        def with_its_row(f: str) -> Column:
            value = together[f][0]
            row = F.max_by(F.struct(*together[f]), F.when(F.col(value).isNotNull(),
                                                           F.col("_order")))
            return (F.coalesce(row[f], latest(f)) if f.endswith("_valid") else row[f]).alias(f)

        grouped = usable.groupBy("record_id", "source", "source_key", "source_rank").agg(
            *[with_its_row(f) if f in together else latest(f).alias(f) for f in value_fields],
            F.sort_array(F.collect_set("_batch_id")).alias("_batch_ids"),
            F.count(F.lit(1)).cast("int").alias("_source_rows"),
            F.max("_ingested_at").alias("_ingested_at"),
        )
        filled = grouped.select(
            *[F.coalesce(F.col(f), F.create_map().cast("map<string,string>")).alias(f)
              if f in ("identifiers", "attributes")
              else F.coalesce(F.col(f), F.array().cast("array<string>")).alias(f)
              if f == "given_name_aliases" else F.col(f)
              for f in PARTY_FIELDS if f != "completeness"],
            "_batch_ids", "_source_rows", "_ingested_at")
        with_score = filled.withColumn("completeness", _completeness())
        content = F.to_json(F.struct(*[F.col(f) for f in PARTY_FIELDS], F.col("_batch_ids")))
        return with_score.select(
            *PARTY_FIELDS, "_batch_ids", "_source_rows", "_ingested_at",
            F.lit(run_id).alias("_run_id"),
            F.sha2(content, 256).alias("_row_hash"),
        )

    return transform


# --------------------------------------------------------------------------- interactions


def check_interactions(source: SourceConfig, mapping: InteractionMapping,
                       index: int) -> Transform:
    """Bronze rows -> canonical interactions with ``_issues`` and ``_reject_reason``."""

    def transform(bronze: DataFrame) -> DataFrame:
        check_mapping(source, bronze.schema)
        check_expressions(source, bronze)
        c = F.col
        party_source = mapping.party_source or source.name
        staged = bronze.select(
            _raw_row_json(bronze).alias("_raw_row"), c(CORRUPT_COL).alias("_corrupt"),
            sf.clean_text(field_column(mapping.key)).alias("interaction_key"),
            sf.clean_text(field_column(mapping.party_key)).alias("_party_key"),
            sf.clean_text(field_column(mapping.occurred_at)).alias("_occurred_raw"),
            sf.clean_text(field_column(mapping.amount)).alias("_amount_raw"),
            sf.clean_text(field_column(mapping.type)).alias("type"),
            F.upper(sf.clean_text(field_column(mapping.currency))).alias("currency"),
            F.lower(sf.clean_text(field_column(mapping.channel))).alias("channel"),
            F.lower(sf.clean_text(field_column(mapping.status))).alias("status"),
            (F.create_map(*[x for k, v in sorted(mapping.attributes.items())
                            for x in (F.lit(k), sf.clean_text(field_column(v)))])
             if mapping.attributes else F.create_map().cast("map<string,string>"))
            .alias("_attrs"),
            "_batch_id", "_file", "_ingested_at", "_row_hash",
        )
        df = staged.select(
            "*",
            sf.parse_timestamp(c("_occurred_raw"), source.timestamp_formats).alias("occurred_at"),
            F.regexp_replace(c("_amount_raw"), r"[^0-9.\-]", "").try_cast("decimal(18,2)")
            .alias("amount"),
        )
        issues = _issues(
            (c("_amount_raw").isNotNull() & c("amount").isNull(),
             _issue("amount", c("_amount_raw"), "unparseable amount", "field_nulled")),
        )
        reject = (F.when(c("_corrupt").isNotNull(), F.lit("malformed row"))
                  .when(F.instr(c("_raw_row"), "\ufffd") > 0, F.lit(UNDECODABLE))
                  .when(c("interaction_key").isNull(), F.lit("missing interaction key"))
                  .when(c("_occurred_raw").isNull(), F.lit("missing timestamp"))
                  .when(c("occurred_at").isNull(), F.lit("unparseable timestamp")))
        if source.party is not None or index > 0:
            # A malformed line is quarantined once, by the party check or the first mapping.
            reject = F.when(c("_corrupt").isNull(), reject).otherwise(F.lit("_duplicate"))
        out = df.select(
            F.when(c("interaction_key").isNotNull(), F.concat_ws(
                ":", F.lit(source.name), F.lit(str(index)), c("interaction_key")))
            .alias("interaction_id"),
            F.when(c("_party_key").isNotNull(),
                   F.concat_ws(":", F.lit(party_source), c("_party_key"))).alias("record_id"),
            F.lit(source.name).alias("source"),
            "interaction_key", "type", "occurred_at", "amount", "currency", "channel", "status",
            F.map_filter(c("_attrs"), lambda k, v: v.isNotNull()).alias("attributes"),
            issues.alias("_issues"), reject.alias("_reject_reason"),
            "_raw_row", "_batch_id", "_file", "_ingested_at", "_row_hash",
        )
        return out.filter(F.coalesce(c("_reject_reason") != "_duplicate", F.lit(True)))

    return transform


def interaction_records(run_id: str) -> Transform:
    """Checked interactions -> usable ones, one per ``interaction_id`` (the latest landed)."""

    def transform(checked: DataFrame) -> DataFrame:
        usable = checked.filter(F.col("_reject_reason").isNull())
        latest = usable.groupBy("interaction_id").agg(
            F.max_by(F.struct(*INTERACTION_FIELDS, "_batch_id", "_ingested_at"),
                     F.struct("_ingested_at", "_row_hash")).alias("r"))
        flat = latest.select("r.*")
        content = F.to_json(F.struct(*[F.col(f) for f in INTERACTION_FIELDS]))
        return flat.select(*INTERACTION_FIELDS, "_batch_id", "_ingested_at",
                           F.lit(run_id).alias("_run_id"), F.sha2(content, 256).alias("_row_hash"))

    return transform


# --------------------------------------------------------------------------- quarantine

QUARANTINE_FIELDS = ("quarantine_id", "stage", "source", "record_id", "field", "raw_value",
                     "reason", "action", "raw_row", "_batch_id", "_file", "_row_hash")


def quarantine_rows(kind: str, run_id: str) -> Transform:
    """Checked rows -> one quarantine row per rejected row and per field issue.

    ``quarantine_id`` is a hash of the bronze row, the field and the reason, so the same
    problem found again on a re-run is the same quarantine row.
    """
    id_col = "record_id" if kind == "party" else "interaction_id"

    def transform(checked: DataFrame) -> DataFrame:
        c = F.col
        rejected = checked.filter(c("_reject_reason").isNotNull()).select(
            c("source"), c(id_col).alias("record_id"), F.lit(None).cast("string").alias("field"),
            F.lit(None).cast("string").alias("raw_value"), c("_reject_reason").alias("reason"),
            F.lit("row_rejected").alias("action"),
            c("_raw_row").alias("raw_row"), "_batch_id", "_file", "_row_hash")
        fields = checked.filter(c("_reject_reason").isNull()).select(
            "source", c(id_col).alias("record_id"), F.explode("_issues").alias("i"),
            c("_raw_row").alias("raw_row"), "_batch_id", "_file", "_row_hash",
        ).select("source", "record_id", "i.field", "i.raw_value", "i.reason", "i.action",
                 "raw_row", "_batch_id", "_file", "_row_hash")
        both = rejected.unionByName(fields)
        qid = F.sha2(F.concat_ws("|", F.lit(kind), c("_row_hash"), F.coalesce(c("field"),
                                 F.lit("")), c("reason")), 256)
        return both.select(qid.alias("quarantine_id"), F.lit(f"standardize:{kind}").alias("stage"),
                           *QUARANTINE_FIELDS[2:],
                           F.lit(run_id).alias("_run_id"),
                           F.current_timestamp().alias("quarantined_at")
                           ).dropDuplicates(["quarantine_id"])

    return transform
