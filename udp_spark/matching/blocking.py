"""Candidate pairs: deterministic keys, rule blocks and banded MinHash LSH.

Every blocking method emits ``(record_id, block)`` rows, where ``block`` names the method and
its key value. Records in the same block become candidate pairs, except in blocks larger than
their method's cap (:func:`block_cap`: ``max_block_size``, or a key's, rule's or LSH index's
own; a shop's generic phone, ``noemail@...``, a band of a common street): those are reported
by :func:`oversized_blocks` and not expanded. Pairs from all methods are unioned, each pair once
(``record_id_l < record_id_r``), with the list of methods that proposed it.

Example::

    keys = records.transform(block_keys(cfg.matching.blocking))
    pairs = keys.transform(candidate_pairs(block_cap(cfg.matching.blocking)))
"""

from __future__ import annotations

import functools
from collections.abc import Callable, Sequence

from pyspark.sql import Column, DataFrame
from pyspark.sql import functions as F

from udp_spark.config import BlockingSettings, LshSettings
from udp_spark.matching.pairwise import EMAIL_NAME_KEY

Transform = Callable[[DataFrame], DataFrame]
#: a block-size cap: one number for every block, or a column over ``block`` (:func:`block_cap`)
Cap = int | Column


def block_cap(settings: BlockingSettings) -> Column:
    """The largest size at which the ``block`` column's block is expanded into pairs: its
    method's own cap (:meth:`BlockingSettings.block_caps`), else ``max_block_size``."""
    cap = F.lit(settings.max_block_size)
    for prefix, n in settings.block_caps().items():
        cap = F.when(F.col("block").startswith(prefix), F.lit(n)).otherwise(cap)
    return cap



class BlockingConfigError(ValueError):
    """A blocking expression does not resolve against the records."""


def check_blocking(settings: BlockingSettings, records: DataFrame) -> None:
    """Resolve every key, rule and LSH expression against ``records``' schema (no job runs).

    Raises:
        BlockingConfigError: naming the key and expression, and listing the columns.
    """
    named = ([(f"keys.{k.name}", c) for k in settings.keys for c in k.columns]
             + [(f"rules.{r.name}", c) for r in settings.rules for c in r.columns]
             + [(f"lsh.{x.name}", c) for x in settings.lsh if x.enabled for c in x.columns])
    for where, expr in named:
        try:
            records.select(F.expr(expr)).schema  # noqa: B018 - analysis only
        except Exception as exc:
            raise BlockingConfigError(
                f"matching.blocking.{where}: expression {expr!r} does not resolve against "
                f"silver.party_records ({type(exc).__name__}); columns are "
                f"{', '.join(records.columns)}") from None


def _non_empty(col: Column) -> Column:
    s = F.trim(col.cast("string"))
    return F.when(s != F.lit(""), s)


def shingles(text: Column, size: int) -> Column:
    """Distinct character ``size``-grams of ``text`` (array<string>; empty for short text)."""
    n = F.length(text)
    return F.when(
        n >= size,
        F.array_distinct(F.transform(F.sequence(F.lit(1), n - size + 1),
                                     lambda i: F.substring(text, i, size))),
    ).otherwise(F.array().cast("array<string>"))


def minhash_band_keys(shingled: DataFrame, bands: int, rows: int) -> DataFrame:
    """``(record_id, _sh)`` -> ``(record_id, _band)``: the ``bands`` band keys of the MinHash
    signature of each record's shingle set ``_sh``.

    Each of the ``bands * rows`` hash functions is ``xxhash64(seed, shingle)``; a band key is
    the hash of its band index and its ``rows`` minima, so records share a band only if all
    ``rows`` minima agree (the AND within a band that Spark ML's MinHashLSH lacks).

    The minima are taken over the exploded shingles by one aggregation (generated code; the
    partial aggregate leaves one row per record before the shuffle), not by an
    ``array_min(transform(...))`` per hash function: Spark evaluates higher-order functions
    interpreted, element by element, and at 1M source rows those took 40 s of the block
    stage against 13 s this way, for the same keys (docs/bench.md, "Block and resolve at 1M
    source rows").
    """
    n = bands * rows
    mins = shingled.select("record_id", F.explode("_sh").alias("_s")).groupBy("record_id").agg(
        *[F.min(F.xxhash64(F.lit(seed), F.col("_s"))).alias(f"_m{seed}") for seed in range(n)])
    keys = F.array(*[
        F.concat_ws(":", F.lit(b), F.xxhash64(*[F.col(f"_m{seed}") for seed in
                                                range(b * rows, (b + 1) * rows)]).cast("string"))
        for b in range(bands)
    ])
    return mins.select("record_id", F.explode(keys).alias("_band"))


def lsh_keys(settings: LshSettings) -> Transform:
    """records -> ``(record_id, block)`` for every MinHash band of the index's text."""

    def transform(records: DataFrame) -> DataFrame:
        text = F.concat_ws(" ", *[F.coalesce(F.expr(c).cast("string"), F.lit(""))
                                  for c in settings.columns])
        text = F.trim(F.regexp_replace(text, r"\s+", " "))
        sh = shingles(text, settings.shingle_size)
        with_sh = records.select("record_id", sh.alias("_sh")).filter(
            F.size("_sh") >= settings.min_shingles)
        return minhash_band_keys(with_sh, settings.bands, settings.rows).select(
            "record_id", F.concat(F.lit(f"lsh:{settings.name}:"), F.col("_band"))
            .alias("block"))

    return transform


def _letters(c: Column) -> Column:
    return F.regexp_replace(c, "[^a-z]", "")


#: the columns :func:`email_name_keys` reads (records without them have no such blocks)
EMAIL_NAME_COLUMNS = ("given_name_norm", "family_name_norm", "email_canonical")


def email_name_keys(records: DataFrame) -> DataFrame:
    """records -> ``(record_id, block)``: a record with an e-mail and no name is in the
    block of its local part's letters (``thomas.ross82`` -> ``thomasross``), a named record
    in those of its given + family and family + given name's letters: the pairs the
    ``email_name`` comparison can weigh. Named records meet their namesakes there too, as
    the given/family rule already pairs them."""
    given, family = _letters(F.col("given_name_norm")), _letters(F.col("family_name_norm"))
    nameless = F.col("given_name_norm").isNull() & F.col("family_name_norm").isNull()
    values = F.when(nameless, F.array(_letters(
        F.substring_index(F.col("email_canonical"), "@", 1)))).otherwise(
        F.array(F.concat(given, family), F.concat(family, given)))
    return records.select("record_id", F.explode(F.array_distinct(F.filter(
        values, lambda v: v.isNotNull() & (v != F.lit(""))))).alias("_v")).select(
        "record_id", F.concat(F.lit(f"key:{EMAIL_NAME_KEY}:"), F.col("_v")).alias("block"))


def block_keys(settings: BlockingSettings) -> Transform:
    """records -> ``(record_id, block)`` for every deterministic key, rule, e-mail name
    (:func:`email_name_keys`, unless ``email_names`` is off) and LSH band."""

    def transform(records: DataFrame) -> DataFrame:
        parts: list[DataFrame] = []
        for key in settings.keys:
            values = F.array(*[_non_empty(F.expr(c)) for c in key.columns])
            parts.append(records.select(
                "record_id", F.explode(F.array_distinct(F.filter(values, lambda v: v.isNotNull())))
                .alias("_v")).select("record_id",
                                     F.concat(F.lit(f"key:{key.name}:"), F.col("_v"))
                                     .alias("block")))
        for rule in settings.rules:
            vals = [_non_empty(F.expr(c)) for c in rule.columns]
            all_present = functools.reduce(lambda a, b: a & b, [v.isNotNull() for v in vals])
            parts.append(records.filter(all_present).select(
                "record_id",
                F.concat(F.lit(f"rule:{rule.name}:"), F.concat_ws("|", *vals)).alias("block")))
        if settings.email_names and set(EMAIL_NAME_COLUMNS) <= set(records.columns):
            parts.append(records.transform(email_name_keys))
        for index in settings.lsh:
            if index.enabled:
                parts.append(records.transform(lsh_keys(index)))
        return functools.reduce(lambda a, b: a.unionByName(b), parts).distinct()

    return transform


def _method(block: Column) -> Column:
    """'key:email:x@y' -> 'key:email'; 'lsh:name:3:123' -> 'lsh:name'."""
    return F.regexp_extract(block, r"^([a-z]+:[a-z0-9_]+):", 1)


def block_sizes(keys: DataFrame) -> DataFrame:
    """``(block, method, size)`` for every block."""
    return keys.groupBy("block").agg(F.count("*").alias("size")).withColumn(
        "method", _method(F.col("block")))


def oversized_blocks(keys: DataFrame, max_block_size: Cap) -> DataFrame:
    """Blocks too large to expand: shared placeholder values, generic numbers, common names."""
    return block_sizes(keys).filter(F.col("size") > max_block_size)


def candidate_pairs(max_block_size: Cap) -> Transform:
    """``(record_id, block)`` -> ``(record_id_l, record_id_r, methods)``, each pair once."""

    def transform(keys: DataFrame) -> DataFrame:
        sizes = keys.groupBy("block").agg(F.count("*").alias("_n"))
        usable = keys.join(sizes.filter((F.col("_n") >= 2) & (F.col("_n") <= max_block_size)),
                           "block").select("record_id", "block")
        left = usable.select(F.col("record_id").alias("record_id_l"), "block")
        right = usable.select(F.col("record_id").alias("record_id_r"), "block")
        pairs = left.join(right, "block").filter(F.col("record_id_l") < F.col("record_id_r"))
        return pairs.groupBy("record_id_l", "record_id_r").agg(
            F.sort_array(F.collect_set(_method(F.col("block")))).alias("methods"))

    return transform


# --------------------------------------------------------------------------- incremental
#
# The blocking index (``silver.block_keys``) holds ``(block, record_id, expanded)`` for every
# record; ``expanded`` says whether the block was within its cap (size <= cap) when it last
# changed. A block of one record makes no pair either way; counting it expandable means that a
# record joining it (a stream's usual new record, whose e-mail or phone block held one
# record) flips nothing, so the index only gains rows. When records change, only the blocks
# they leave or join change size; a pair can change only if one of its records changed, or if
# both its records lie in a block whose ``expanded`` flipped (grown past the maximum, or
# shrunk back under it). So
# the pairs of the changed records are computed again against the touched blocks, and the
# pairs within flipped blocks against all their shared blocks; every other pair stays as it
# is. From an empty index with every record changed, this is the full blocking.


def _expandable(size: Column, max_block_size: Cap) -> Column:
    return size <= max_block_size


def updated_index(index: DataFrame | None, changed: DataFrame, new_keys: DataFrame
                  ) -> DataFrame:
    """``(block, record_id)`` after ``changed`` records (``record_id``) got ``new_keys``
    (their ``(record_id, block)`` now; a deleted record has none)."""
    keys = new_keys.select("block", "record_id")
    if index is None:
        return keys
    kept = index.select("block", "record_id").join(changed, "record_id", "left_anti")
    return kept.unionByName(keys)


def touched_blocks(index: DataFrame | None, changed: DataFrame, new_keys: DataFrame,
                   after: DataFrame, max_block_size: Cap) -> DataFrame:
    """``(block, size, expanded, was_expanded)`` for every block a changed record left or
    joined: its size and status after the change and its status before."""
    if index is None:  # everything is new: ``after`` is ``new_keys``, every block touched
        return (after.groupBy("block").agg(F.count("record_id").alias("size"))
                .withColumn("expanded", _expandable(F.col("size"), max_block_size))
                .withColumn("was_expanded", _expandable(F.lit(0), max_block_size)))
    blocks = new_keys.select("block").unionByName(
        index.join(changed, "record_id", "left_semi").select("block")).distinct()
    sizes = after.join(blocks, "block", "right").groupBy("block").agg(
        F.count("record_id").alias("size"))
    status = sizes.withColumn("expanded", _expandable(F.col("size"), max_block_size))
    # the status before, from the size before (what the index's flag says for a block
    # written since blocks of one count as expandable; an older index says False for them)
    before = index.join(blocks, "block", "left_semi").groupBy("block").agg(
        F.count("record_id").alias("_before"))
    return status.join(before, "block", "left").withColumn(
        "was_expanded", _expandable(F.coalesce("_before", F.lit(0)), max_block_size)
    ).drop("_before")


def _flipped(touched: DataFrame) -> DataFrame:
    """``block`` of the touched blocks whose expanded status flipped."""
    return touched.filter(F.col("expanded") != F.col("was_expanded")).select("block")


def flipped_members(changed: DataFrame, after: DataFrame, touched: DataFrame) -> DataFrame:
    """``record_id`` of the unchanged members of blocks whose expanded status flipped: the
    only records, besides the changed ones, some of whose pairs can change."""
    return (after.join(_flipped(touched), "block", "left_semi").select("record_id")
            .join(changed, "record_id", "left_anti").distinct())


def flipped_block_candidates(members: DataFrame, after: DataFrame, touched: DataFrame
                             ) -> DataFrame:
    """``(record_id_l, record_id_r)`` of every two ``members`` (:func:`flipped_members`)
    sharing a flipped block: the only pairs between unchanged records that can change (a
    pair of unchanged records sharing no flipped block keeps every block it had, each with
    its status). The table's rows of them are replaced by :func:`candidate_pairs_now`."""
    held = after.join(_flipped(touched), "block", "left_semi").join(members, "record_id",
                                                                   "left_semi")
    return (held.select("block", F.col("record_id").alias("record_id_l"))
            .join(held.select("block", F.col("record_id").alias("record_id_r")), "block")
            .filter(F.col("record_id_l") < F.col("record_id_r"))
            .select("record_id_l", "record_id_r").distinct())


def candidate_pairs_now(candidates: DataFrame, members: DataFrame, touched: DataFrame,
                        index: DataFrame, methods: Sequence[str]) -> DataFrame:
    """``(record_id_l, record_id_r, methods)`` of the ``candidates``
    (:func:`flipped_block_candidates`) that are pairs now: with every shared block expanded
    now (a touched block's status from ``touched``, any other's as ``index`` holds it)."""
    now = touched.select("block", F.col("expanded").alias("_now"))
    rows = (index.join(members, "record_id", "left_semi").join(now, "block", "left")
            .filter(F.coalesce("_now", "expanded")).select("block", "record_id"))
    shared = (candidates.join(rows.toDF("block", "record_id_l"), "record_id_l")
              .join(rows.toDF("block", "record_id_r"), ["record_id_r", "block"]))
    agg, result = _methods_agg(F.col("block"), methods)
    return shared.groupBy("record_id_l", "record_id_r").agg(agg).select(
        "record_id_l", "record_id_r", result.alias("methods"))


def block_methods(settings: BlockingSettings) -> tuple[str, ...]:
    """Every method name (``key:email``, ``lsh:name_address``) :func:`block_keys` can emit."""
    return (*(f"key:{k.name}" for k in settings.keys), *(f"rule:{r.name}" for r in settings.rules),
            *((f"key:{EMAIL_NAME_KEY}",) if settings.email_names else ()),
            *(f"lsh:{i.name}" for i in settings.lsh if i.enabled))


def _methods_agg(block: Column, methods: Sequence[str]) -> tuple[Column, Column]:
    """``(aggregate, result)``: the sorted distinct methods of a pair's blocks, as a bit per
    method OR-ed together (an ordinary hash aggregate in generated code) and read back as
    names. ``collect_set`` needs the object hash aggregate, which falls back to sorting once
    a task holds more than 128 pairs: at 1M source rows the pairs took 24-34 s with it,
    17-19 s this way (docs/bench.md, "Block and resolve at 1M source rows"). A block of a
    method not listed fails the query."""
    names = sorted(set(methods))
    if len(names) > 63:  # more methods than bits in a long: the general form
        return (F.sort_array(F.collect_set(_method(block))).alias("_methods"),
                F.col("_methods"))
    listed = F.array(*[F.lit(m) for m in names])

    def bit(i: Column) -> Column:  # F.shiftleft takes a constant shift only
        return F.call_function("shiftleft", F.lit(1).cast("long"), i)

    pos = F.array_position(listed, _method(block)).cast("int")
    known = F.when(pos > 0, bit(pos - 1)).otherwise(F.raise_error(
        F.concat(F.lit("block of a method not in the blocking settings: "), block)))
    return (F.bit_or(known).alias("_methods"),
            F.filter(listed, lambda _m, i: F.col("_methods").bitwiseAND(bit(i)) != 0))


def pairs_of(records: DataFrame, after: DataFrame, max_block_size: Cap, methods: Sequence[str],
             *, all_records: bool = False) -> DataFrame:
    """``(record_id_l, record_id_r, methods)`` of every pair with at least one end in
    ``records`` (``record_id``), from the expandable blocks of index ``after``; ``methods``
    names every method the blocks can be of (:func:`block_methods`).

    ``all_records``: ``records`` is every record (a full run), so each pair is found from
    its smaller end only.
    """
    if all_records:
        mine_rows, members = after, after
    else:  # only the blocks of ``records`` are read, whatever the size of the index
        mine_rows = after.join(records, "record_id", "left_semi")
        members = after.join(mine_rows.select("block").distinct(), "block", "left_semi")
    sizes = members.groupBy("block").agg(F.count("*").alias("_n")).filter(
        (F.col("_n") >= 2) & _expandable(F.col("_n"), max_block_size)).select("block")
    mine = mine_rows.join(sizes, "block").select("block", F.col("record_id").alias("_a"))
    other = members.join(sizes, "block").select("block", F.col("record_id").alias("_b"))
    joined = mine.join(other, "block")
    joined = joined.filter(F.col("_a") < F.col("_b")) if all_records else joined.filter(
        F.col("_a") != F.col("_b"))
    agg, result = _methods_agg(F.col("block"), methods)
    return joined.groupBy(F.least("_a", "_b").alias("record_id_l"),
                          F.greatest("_a", "_b").alias("record_id_r")).agg(agg).select(
        "record_id_l", "record_id_r", result.alias("methods"))
