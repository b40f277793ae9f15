"""The ``udp`` command: one subcommand per stage, plus ``generate`` and ``demo``.

Jobs in ``jobs/`` are thin wrappers around these commands for ``spark-submit``.
"""

from __future__ import annotations

import logging
import sys
from pathlib import Path
from typing import Annotated

import typer

app = typer.Typer(add_completion=False, no_args_is_help=True,
                  help="udp-spark: unified customer profiles on Spark and Delta Lake.")

ConfigOpt = Annotated[Path, typer.Option("--config", "-c", envvar="UDP_CONFIG",
                                         help="pipeline YAML (sources are read beside it)")]
DataRootOpt = Annotated[str | None, typer.Option(
    "--data-root", envvar="UDP_DATA_ROOT", help="base folder of relative source paths")]
LakehouseOpt = Annotated[str | None, typer.Option(
    "--lakehouse", envvar="UDP_LAKEHOUSE", help="root folder/URI of the Delta tables")]
SourcesOpt = Annotated[list[str] | None, typer.Option(
    "--source", "-s", help="only this source (repeatable)")]

FullOpt = Annotated[bool, typer.Option(
    "--full", help="process everything again, not only what changed since the last run")]

DEFAULT_CONFIG = Path("conf/pipeline.yaml")
log = logging.getLogger("udp_spark")


def _context(config: Path, data_root: str | None, lakehouse: str | None):
    from udp_spark.config import load_config
    from udp_spark.pipeline.context import StageContext
    from udp_spark.session import get_session
    from udp_spark.standardize.transforms import check_expression_syntax

    cfg = load_config(config, data_root=data_root, lakehouse_root=lakehouse)
    spark = get_session(cfg.spark)
    # Spark's own parser, before any stage runs: what the config check without Spark let by.
    folders = cfg.sources_dirs(config.parent)
    check_expression_syntax(spark, cfg, folders[0] if len(folders) == 1 else None)
    return StageContext(spark, cfg)


@app.command("setup-jars")
def setup_jars() -> None:
    """Download the pinned Delta jars from Maven Central once (checksums verified)."""
    from udp_spark.jars import fetch_jars, jars_dir

    paths = fetch_jars()
    typer.echo(f"{len(paths)} jars ready in {jars_dir()}")


@app.command("submit-args")
def submit_args_cmd(config: ConfigOpt = DEFAULT_CONFIG) -> None:
    """Print the spark-submit options a job needs on a cluster (jars, package zip, Delta
    and the config's Spark conf): ``spark-submit --master URL $(udp submit-args) jobs/...``."""
    import shlex

    from udp_spark.config import load_config
    from udp_spark.session import submit_args

    typer.echo(" ".join(shlex.quote(a) for a in submit_args(load_config(config).spark)))


@app.command()
def generate(
    out: Annotated[Path, typer.Option(help="output folder")] = Path("data/demo"),
    people: Annotated[int, typer.Option(min=1, help="number of distinct people")] = 20_000,
    seed: Annotated[int, typer.Option(help="random seed: same seed, same files")] = 42,
    noise: Annotated[float, typer.Option(min=0.0, help="noise multiplier (1 = realistic)")] = 1.0,
    registers: Annotated[bool, typer.Option(
        "--registers", help="also write register-shaped sources under registers/ (electoral "
        "roll: name + address per canvass since 1998; benefit claims: name + birth date + "
        "national id); run them with conf/pipeline-registers.yaml")] = False,
) -> None:
    """Generate synthetic data for six source systems, with the truth kept apart."""
    from udp_spark.generate import generate as gen

    report = gen(out, people=people, seed=seed, noise=noise, registers=registers)
    typer.echo(f"{report.people} people -> {report.party_records} party records, "
               f"{report.source_rows} source rows in {report.seconds:.1f}s under {out}")
    for name, rows in sorted(report.files.items()):
        typer.echo(f"  {name:40s} {rows:>10,}")


@app.command()
def ingest(config: ConfigOpt = DEFAULT_CONFIG, data_root: DataRootOpt = None,
           lakehouse: LakehouseOpt = None, source: SourcesOpt = None,
           batch_id: Annotated[str | None, typer.Option(
               help="batch id (JDBC sources; prefixes file batch ids)")] = None) -> None:
    """Land source files/tables into bronze Delta tables (already landed batches skipped)."""
    from udp_spark.pipeline.ingest import IngestError, run_ingest

    try:
        report = run_ingest(_context(config, data_root, lakehouse), source, batch_id)
    except IngestError as exc:
        _ingest_summary(exc.report)
        raise  # exits non-zero, naming each failed source, file and error
    _ingest_summary(report)


def _ingest_summary(report) -> None:
    for s in report.sources:
        if s.failed:
            typer.echo(f"bronze.{s.source:22s} FAILED, nothing landed"
                       + (f": {s.file}" if s.file else "") + f"\n    {s.error}")
            continue
        typer.echo(f"bronze.{s.source:22s} files {s.batches_seen:>4} new {s.batches_new:>4} "
                   f"rows written {s.rows_written:>10,}"
                   + (f"  rescued columns: {s.rescued_columns}" if s.rescued_columns else "")
                   + (f"  MISSING columns: {s.missing_columns}" if s.missing_columns else "")
                   + (f"  EMPTY files (0 bytes, nothing landed): {s.empty_files}"
                      if s.empty_files else ""))
        for file, n in sorted(s.undecodable_rows.items()):
            typer.echo(f"    {n:,} rows of {file} hold U+FFFD (not valid in the configured "
                       "encoding): set options.encoding in the source's YAML")


@app.command()
def standardize(config: ConfigOpt = DEFAULT_CONFIG, data_root: DataRootOpt = None,
                lakehouse: LakehouseOpt = None, source: SourcesOpt = None,
                full: FullOpt = False) -> None:
    """Bronze -> silver party records, interactions and quarantine (what was landed since
    the last run)."""
    from udp_spark.pipeline.standardize import StandardizeError, run_standardize

    try:
        r = run_standardize(_context(config, data_root, lakehouse), source, full=full)
    except StandardizeError as exc:  # the other sources were written
        typer.echo(f"error: {exc}", err=True)
        raise typer.Exit(1) from None
    typer.echo(f"party records +{r.party_inserted:,} ~{r.party_updated:,}; interactions "
               f"+{r.interactions_inserted:,} ~{r.interactions_updated:,}; quarantine "
               f"+{r.quarantine_inserted:,}")


TruthOpt = Annotated[str | None, typer.Option(
    help="truth CSV (record_id,entity_id or source,source_key,person_id); default: "
         "<data-root>/truth/records.csv when it exists")]


def _truth(ctx, truth: str | None) -> str | None:
    from udp_spark.pipeline.inputs import default_truth_path

    return truth or default_truth_path(ctx.cfg.data_root)


@app.command()
def block(config: ConfigOpt = DEFAULT_CONFIG, data_root: DataRootOpt = None,
          lakehouse: LakehouseOpt = None, truth: TruthOpt = None, full: FullOpt = False
          ) -> None:
    """Candidate pairs by deterministic keys, rule blocks and MinHash LSH (for the records
    changed since the last run)."""
    from udp_spark.pipeline.block import run_block

    ctx = _context(config, data_root, lakehouse)
    r = run_block(ctx, _truth(ctx, truth), full=full)
    if not r.full:
        typer.echo(f"{r.records_changed:,} records changed: {r.pairs_written:,} pairs "
                   f"written, {r.pairs_retired:,} retired")
    typer.echo(f"{r.records:,} records -> {r.candidate_pairs:,} candidate pairs "
               f"(reduction ratio {r.metrics['reduction_ratio']:.6f}); largest block "
               f"expanded: {r.largest_block}")
    if "pair_completeness" in r.metrics:
        typer.echo(f"pair completeness {r.metrics['pair_completeness']:.4f}; pairs per true "
                   f"match {r.metrics['pairs_per_true_match']:.2f}")
    for name, size in r.oversized_blocks:
        typer.echo(f"  oversized block not expanded: {name} ({size:,} records)")


@app.command()
def train(config: ConfigOpt = DEFAULT_CONFIG, data_root: DataRootOpt = None,
          lakehouse: LakehouseOpt = None,
          if_missing: Annotated[bool, typer.Option(
              "--if-missing", help="only when no model is registered under the alias (what "
              "a scheduled pipeline wants: a new model re-scores every pair)")] = False
          ) -> None:
    """Fit the matcher and register it in MLflow: Fellegi-Sunter + EM (no labels, the
    default) or supervised on silver.match_labels (matching.model.kind)."""
    from udp_spark.matching.fellegi_sunter import FSModel
    from udp_spark.pipeline.train import run_train

    ctx = _context(config, data_root, lakehouse)
    if if_missing:
        from udp_spark.platform import mlflow_store

        mcfg = ctx.cfg.matching.model
        version = mlflow_store.alias_version(ctx.cfg.mlflow, mcfg.registered_name, mcfg.alias)
        if version is not None:
            typer.echo(f"{mcfg.registered_name}@{mcfg.alias} is version {version}: not "
                       f"training (--if-missing)")
            return
    r = run_train(ctx)
    if isinstance(r.model, FSModel):
        typer.echo(f"model version {r.model_version} (MLflow run {r.mlflow_run_id}); prior "
                   f"{r.model.prior:.3g} ({r.model.prior_method}); EM iterations "
                   f"{r.model.em_iterations}")
        typer.echo(r.model.weights_table().to_string(index=False))
        return
    m = r.model.model
    typer.echo(f"supervised ({m.algorithm}) model version {r.model_version} (MLflow run "
               f"{r.mlflow_run_id}); trained on {m.train_positives} matching / "
               f"{m.train_negatives} non-matching labels")
    for prefix in ("holdout", "fs_holdout", "train"):
        if f"{prefix}_f1" in r.metrics:
            typer.echo(f"  {prefix:10s} precision {r.metrics[f'{prefix}_precision']:.4f} "
                       f"recall {r.metrics[f'{prefix}_recall']:.4f} "
                       f"F1 {r.metrics[f'{prefix}_f1']:.4f} AUC {r.metrics[f'{prefix}_auc']:.4f}")
    typer.echo(m.weights_table().round(4).to_string(index=False))


labels_app = typer.Typer(no_args_is_help=True,
                         help="Labelled record pairs (silver.match_labels) for the supervised "
                              "matcher.")
app.add_typer(labels_app, name="labels")


@labels_app.command("import")
def labels_import(
    file: Annotated[str, typer.Argument(
        help="pairs CSV record_id_a,record_id_b,is_match; with --from-truth an entity CSV "
             "record_id,entity_id or source,source_key,person_id")],
    from_truth: Annotated[bool, typer.Option(
        "--from-truth", help="label the candidate pairs from an entity (truth) file")] = False,
    sample: Annotated[float, typer.Option(
        help="with --from-truth: share of candidate pairs to label (seeded by pair)")] = 1.0,
    label_source: Annotated[str | None, typer.Option(
        help="stored with each label; default clerical (pairs) or truth")] = None,
    strict: Annotated[bool, typer.Option(
        help="fail, importing nothing, if any row is unusable")] = False,
    config: ConfigOpt = DEFAULT_CONFIG, data_root: DataRootOpt = None,
    lakehouse: LakehouseOpt = None,
) -> None:
    """Merge labelled pairs into silver.match_labels (re-importing changes nothing)."""
    from udp_spark.pipeline.labels import run_import_labels

    r = run_import_labels(_context(config, data_root, lakehouse), file, from_truth=from_truth,
                          sample=sample, label_source=label_source, strict=strict)
    typer.echo(f"{r.rows_read:,} rows read; {r.positives:,} matching / {r.negatives:,} "
               f"non-matching labels ({r.source}); inserted {r.inserted:,}, updated "
               f"{r.updated:,}")
    if r.skipped_without_truth:
        typer.echo(f"  {r.skipped_without_truth:,} candidate pairs not labelled: a record is "
                   f"not in the truth file")
    if r.rejected:
        typer.echo(f"  NOT imported: {sum(r.rejected.values()):,} unusable rows "
                   + ", ".join(f"{k}: {v}" for k, v in sorted(r.rejected.items())))
        for a, b, problem in r.examples:
            typer.echo(f"    {a},{b}: {problem}")


@app.command()
def review(
    n: Annotated[int, typer.Option("--n", min=1, help="how many pairs to pick")] = 100,
    out: Annotated[Path, typer.Option(help="folder for pairs.csv and pairs.html")] = Path(
        "review"),
    min_uncertainty: Annotated[float, typer.Option(
        min=0.0, max=1.0, help="leave out pairs surer than this (0.1: p in 0.05..0.95)")
    ] = 0.1,
    config: ConfigOpt = DEFAULT_CONFIG, data_root: DataRootOpt = None,
    lakehouse: LakehouseOpt = None,
) -> None:
    """Write the scored pairs a clerk should label next (the model's most uncertain, spread
    over comparison patterns): fill in is_match, then `udp labels import OUT/pairs.csv`."""
    from udp_spark.pipeline.review import run_review

    r = run_review(_context(config, data_root, lakehouse), n, out,
                   min_uncertainty=min_uncertainty)
    typer.echo(f"{r.pairs:,} of {r.candidates:,} uncertain unlabelled pairs (model version "
               f"{r.model_version}, {r.patterns:,} comparison patterns, "
               f"{r.expected_bits:.1f} bits) -> {r.csv_path} and {r.html_path}")
    typer.echo(f"  next: fill in is_match (yes/no), then `udp labels import {r.csv_path}`; "
               "rows left empty are reported and not imported")


@app.command()
def score(config: ConfigOpt = DEFAULT_CONFIG, data_root: DataRootOpt = None,
          lakehouse: LakehouseOpt = None, full: FullOpt = False) -> None:
    """Score new and changed candidate pairs with the model registered under the configured
    alias (all pairs when that model version changed)."""
    from udp_spark.pipeline.score import run_score

    r = run_score(_context(config, data_root, lakehouse), full=full)
    typer.echo(f"{int(r['pairs_scored']):,} pairs scored with model version "
               f"{int(r['model_version'])}")


@app.command()
def resolve(config: ConfigOpt = DEFAULT_CONFIG, data_root: DataRootOpt = None,
            lakehouse: LakehouseOpt = None, full: FullOpt = False) -> None:
    """Clusters and stable customer ids into gold.identity_xref / gold.identity_events (for
    the components that changes since the last run touch)."""
    from udp_spark.pipeline.resolve import run_resolve

    r = run_resolve(_context(config, data_root, lakehouse), full=full)
    if not r.full:
        typer.echo(f"{r.records_reclustered:,} records re-clustered")
    typer.echo(f"{r.records:,} records -> {r.customers:,} customers; largest cluster "
               f"{r.largest_cluster}; ids changed {r.ids_changed:,}; events {r.events}")


@app.command()
def evaluate(config: ConfigOpt = DEFAULT_CONFIG, data_root: DataRootOpt = None,
             lakehouse: LakehouseOpt = None, truth: TruthOpt = None) -> None:
    """Pairwise and B-cubed precision/recall/F1 and blocking completeness against truth."""
    from udp_spark.pipeline.evaluate import run_evaluate

    ctx = _context(config, data_root, lakehouse)
    path = _truth(ctx, truth)
    if path is None:
        raise ValueError("no truth file: pass --truth (record_id,entity_id CSV)")
    m = run_evaluate(ctx, path)
    for k, v in m.items():
        typer.echo(f"  {k:36s} {v:,.4f}" if v < 100 else f"  {k:36s} {v:,.0f}")


@app.command()
def explain(record_a: str, record_b: str, config: ConfigOpt = DEFAULT_CONFIG,
            data_root: DataRootOpt = None, lakehouse: LakehouseOpt = None) -> None:
    """Why two records were or were not matched: levels, weights, probability."""
    from udp_spark.pipeline.score import explain_pair

    e = explain_pair(_context(config, data_root, lakehouse), record_a, record_b)
    typer.echo(f"{e['record_a']}  vs  {e['record_b']}   (model version {e['model_version']})")
    typer.echo(f"  {'prior':24s} {'':28s} {e['prior_weight']:+7.2f}")
    for c in e["comparisons"]:  # type: ignore[attr-defined]
        typer.echo(f"  {c['comparison']:24s} {c['label']:28s} {c['weight']:+7.2f}")
    typer.echo(f"  match weight {e['match_weight']:+.2f} -> probability "
               f"{e['match_probability']:.4f} (threshold {e['threshold']})")
    typer.echo(f"  proposed by blocking: {e['blocking_methods']}; same customer now: "
               f"{e['same_customer']}")


@app.command()
def demo(
    config: ConfigOpt = DEFAULT_CONFIG,
    people: Annotated[int, typer.Option(min=1)] = 20_000,
    seed: int = 42,
    noise: float = 1.0,
    data_dir: Annotated[Path, typer.Option(help="where demo sources are generated")] = Path(
        "data/demo"),
    lakehouse: LakehouseOpt = None,
    fresh: Annotated[bool, typer.Option(help="delete the demo lakehouse first")] = False,
    challenger: Annotated[bool, typer.Option(
        help="also train a supervised challenger on 30% of the candidate pairs labelled "
        "from the generator's truth and compare it with the champion")] = False,
) -> None:
    """Generate demo data (if missing) and run every stage end to end, with a summary."""
    from udp_spark.pipeline.demo import run_demo

    run_demo(config=config, people=people, seed=seed, noise=noise, data_dir=data_dir,
             lakehouse=lakehouse, fresh=fresh, echo=typer.echo, challenger=challenger)


@app.command()
def stream(config: ConfigOpt = DEFAULT_CONFIG, data_root: DataRootOpt = None,
           lakehouse: LakehouseOpt = None,
           available_now: Annotated[bool, typer.Option(
               "--available-now", help="process the files there now, then stop")] = False,
           timeout: Annotated[float | None, typer.Option(
               help="stop after this many seconds")] = None) -> None:
    """Watch the sources' landing folders and run the change-driven stages on every
    micro-batch of new files (Structured Streaming; Ctrl-C stops)."""
    from udp_spark.pipeline.stream import run_stream

    def show(b) -> None:
        typer.echo(f"micro-batch {b.batch_id}: {b.files} files from {', '.join(b.sources)}, "
                   f"{b.rows_landed:,} rows landed, {b.seconds:.1f}s {b.stages}; profile "
                   f"events {b.profile_events}")

    reports = run_stream(_context(config, data_root, lakehouse), available_now=available_now,
                         timeout=timeout, on_batch=show)
    typer.echo(f"{len(reports)} micro-batches with new files")


@app.command()
def maintain(config: ConfigOpt = DEFAULT_CONFIG, data_root: DataRootOpt = None,
             lakehouse: LakehouseOpt = None) -> None:
    """Compact (OPTIMIZE) and VACUUM every table of the lakehouse: the nightly job."""
    from udp_spark.pipeline.maintain import run_maintain

    ctx = _context(config, data_root, lakehouse)
    r = run_maintain(ctx)
    typer.echo(f"{r.tables} tables maintained; {r.files_compacted} small files compacted; "
               f"history kept {ctx.cfg.maintenance.vacuum_retain_hours:g} h")


@app.command("run")
def run_all(config: ConfigOpt = DEFAULT_CONFIG, data_root: DataRootOpt = None,
            lakehouse: LakehouseOpt = None, full: FullOpt = False,
            retrain: Annotated[bool, typer.Option(
                "--retrain", help="fit and register a new model (re-scores every pair)")] = False,
            truth: Annotated[str | None, typer.Option(
                help="truth CSV: evaluate the clusters after resolve")] = None,
            wait: Annotated[float | None, typer.Option(
                help="seconds to wait for another run's lease (default run.wait_seconds)")]
            = None) -> None:
    """Every stage in dependency order, each skipped when its inputs did not change since
    its last successful run; resumes after a failure. Exit 1 if a stage failed, 3 if
    another run holds the lakehouse."""
    from udp_spark.lease import LeaseHeld
    from udp_spark.pipeline.run import RunOptions, run_pipeline

    ctx = _context(config, data_root, lakehouse)
    try:
        summary = run_pipeline(ctx, RunOptions(full=full, retrain=retrain, truth=truth,
                                               wait_seconds=wait))
    except LeaseHeld as exc:
        typer.echo(f"error: {exc}", err=True)
        raise typer.Exit(3) from None
    for line in summary.lines():
        typer.echo(line)
    if summary.failed:
        raise typer.Exit(1)


AsOfOpt = Annotated[str | None, typer.Option(
    "--as-of", help="table version (e.g. 3) or timestamp (e.g. '2026-06-30 12:00:00') to "
                    "read the profile as it was then")]
JsonOpt = Annotated[bool, typer.Option("--json", help="print JSON instead of text")]


@app.command()
def publish(config: ConfigOpt = DEFAULT_CONFIG, data_root: DataRootOpt = None,
            lakehouse: LakehouseOpt = None, full: FullOpt = False) -> None:
    """Golden profiles into gold.customer_profile (+ history, segment membership, profile
    events), for the customers whose inputs changed since the last run."""
    from udp_spark.pipeline.publish import run_publish

    r = run_publish(_context(config, data_root, lakehouse), full=full)
    typer.echo(f"{r.customers:,} customers (metrics as of {r.as_of}); profile "
               f"+{r.profile_inserted:,} ~{r.profile_updated:,} ={r.profile_unchanged:,} "
               f"-{r.profile_deleted:,}; history +{r.history_inserted:,} closed "
               f"{r.history_closed:,}; segments entered {r.segments_entered:,} exited "
               f"{r.segments_exited:,}; profile events {r.events}")
    for name, size in sorted(r.segment_sizes.items()):
        typer.echo(f"  segment {name:24s} {size:>10,}")


@app.command()
def profile(customer_id: str, config: ConfigOpt = DEFAULT_CONFIG,
            data_root: DataRootOpt = None, lakehouse: LakehouseOpt = None,
            as_of: AsOfOpt = None, as_json: JsonOpt = False) -> None:
    """Show a golden profile with the lineage of each value, now or --as-of an earlier state.

    A merged-away customer id resolves to the customer it was merged into.
    """
    from dataclasses import asdict

    from udp_spark.pipeline.publish import format_profile, lookup_profile, to_json

    found = lookup_profile(_context(config, data_root, lakehouse), customer_id, as_of)
    if as_json:
        typer.echo(to_json(asdict(found)))
    else:
        for line in format_profile(found):
            typer.echo(line)
    if found.profile is None:
        typer.echo(f"error: no customer {customer_id!r} in gold.customer_profile"
                   + (f" at {as_of}" if as_of else "") + "; `udp lineage` or the "
                   "identity_xref table show which customer a record belongs to", err=True)
        raise typer.Exit(1)


@app.command()
def lineage(customer_id: str, config: ConfigOpt = DEFAULT_CONFIG,
            data_root: DataRootOpt = None, lakehouse: LakehouseOpt = None,
            as_json: JsonOpt = False) -> None:
    """The source records, identity events and runs behind a profile."""
    from udp_spark.pipeline.publish import format_lineage, profile_lineage, to_json

    info = profile_lineage(_context(config, data_root, lakehouse), customer_id)
    if as_json:
        typer.echo(to_json(info))
    else:
        for line in format_lineage(info):
            typer.echo(line)


consent_app = typer.Typer(no_args_is_help=True, help="Consent decisions by purpose "
                          "(privacy.consent_events).")
app.add_typer(consent_app, name="consent")


def _subject(customer: str | None, email: str | None, phone: str | None,
             record: str | None) -> tuple[str, str]:
    given = [(t, v) for t, v in (("customer", customer), ("email", email), ("phone", phone),
                                 ("record", record)) if v]
    if len(given) != 1:
        typer.echo("error: name exactly one subject: --customer, --email, --phone or --record",
                   err=True)
        raise typer.Exit(2)
    return given[0]


CustomerOpt = Annotated[str | None, typer.Option("--customer", help="a customer id")]
EmailOpt = Annotated[str | None, typer.Option("--email", help="an e-mail address")]
PhoneOpt = Annotated[str | None, typer.Option("--phone", help="a phone number")]
RecordOpt = Annotated[str | None, typer.Option("--record", help="a record id source:key")]


@consent_app.command("set")
def consent_set(
    purpose: Annotated[str, typer.Option("--purpose", help="one of privacy.purposes")],
    status: Annotated[str, typer.Option("--status", help="granted or withdrawn")],
    customer: CustomerOpt = None, email: EmailOpt = None, phone: PhoneOpt = None,
    record: RecordOpt = None,
    occurred_at: Annotated[str | None, typer.Option(
        "--occurred-at", help="ISO-8601 time of the decision (default now)")] = None,
    expires_at: Annotated[str | None, typer.Option(
        "--expires-at", help="ISO-8601 time a grant ends")] = None,
    legal_basis: Annotated[str, typer.Option("--legal-basis")] = "consent",
    source: Annotated[str, typer.Option("--source", help="where the decision was made")] = "cli",
    config: ConfigOpt = DEFAULT_CONFIG, data_root: DataRootOpt = None,
    lakehouse: LakehouseOpt = None,
) -> None:
    """Record one consent decision; the next publish applies it to the customer."""
    from datetime import UTC, datetime

    from udp_spark.pipeline.consent import set_consent

    def when(text: str | None) -> datetime | None:
        if text is None:
            return None
        t = datetime.fromisoformat(text)
        return t if t.tzinfo else t.replace(tzinfo=UTC)

    stype, subject = _subject(customer, email, phone, record)
    r = set_consent(_context(config, data_root, lakehouse), subject_type=stype,
                    subject=subject, purpose=purpose, status=status,
                    occurred_at=when(occurred_at), expires_at=when(expires_at),
                    legal_basis=legal_basis, source=source)
    typer.echo(f"recorded {r.inserted} event ({r.duplicates} already recorded); run {r.run_id}")


@consent_app.command("import")
def consent_import(
    file: Annotated[Path, typer.Argument(help="CSV: subject_type,subject,purpose,status,"
                                              "occurred_at[,expires_at,legal_basis,source]")],
    strict: Annotated[bool, typer.Option("--strict", help="write nothing if any row is "
                                                          "unusable")] = False,
    config: ConfigOpt = DEFAULT_CONFIG, data_root: DataRootOpt = None,
    lakehouse: LakehouseOpt = None,
) -> None:
    """Record the consent decisions of a file (unusable rows are reported by reason)."""
    from udp_spark.pipeline.consent import import_consent

    r = import_consent(_context(config, data_root, lakehouse), file, strict=strict)
    typer.echo(f"recorded {r.inserted:,} events ({r.duplicates:,} already recorded); "
               f"run {r.run_id}")
    for reason, n in sorted(r.rejected.items()):
        typer.echo(f"  not recorded: {n:,} {reason}")


@app.command()
def erase(
    customer: CustomerOpt = None, email: EmailOpt = None, phone: PhoneOpt = None,
    record: RecordOpt = None,
    pending: Annotated[bool, typer.Option(
        "--pending", help="carry out the requests the API recorded")] = False,
    config: ConfigOpt = DEFAULT_CONFIG, data_root: DataRootOpt = None,
    lakehouse: LakehouseOpt = None,
) -> None:
    """Right to erasure: remove a person (or one record) from every table and every old
    version, re-resolve what they held together, and keep them from coming back."""
    from udp_spark.pipeline.erase import erase as run_erase
    from udp_spark.pipeline.erase import erase_pending

    ctx = _context(config, data_root, lakehouse)
    if pending:
        reports = erase_pending(ctx)
    else:
        stype, subject = _subject(customer, email, phone, record)
        reports = [run_erase(ctx, stype, subject)]
    for r in reports:
        typer.echo(f"request {r.request_id}: {r.records} records of {r.customers} customers "
                   f"erased in {r.seconds:.0f}s; {sum(r.rows_removed.values()):,} rows from "
                   f"{len(r.tables_touched)} tables; {sum(r.files_purged.values()):,} files "
                   "of earlier versions purged")
        for table, n in sorted(r.rows_removed.items()):
            if n:
                typer.echo(f"  {table:45s} {n:>8,} rows")


@app.command("export-subject")
def export_subject_cmd(
    customer: CustomerOpt = None, email: EmailOpt = None,
    out: Annotated[Path | None, typer.Option("--out", help="JSON file (default: print)")] = None,
    config: ConfigOpt = DEFAULT_CONFIG, data_root: DataRootOpt = None,
    lakehouse: LakehouseOpt = None,
) -> None:
    """Subject access: everything held about a person as one JSON document (records,
    profile with lineage, history, interactions, segments, consent, identity events, runs)."""
    from udp_spark.pipeline.consent import export_subject
    from udp_spark.pipeline.publish import to_json

    stype, subject = _subject(customer, email, None, None)
    text = to_json(export_subject(_context(config, data_root, lakehouse), stype, subject))
    if out is None:
        typer.echo(text)
    else:
        out.write_text(text + "\n")
        typer.echo(f"written to {out}")


@app.command()
def retention(config: ConfigOpt = DEFAULT_CONFIG, data_root: DataRootOpt = None,
              lakehouse: LakehouseOpt = None) -> None:
    """Delete what is older than each source's retention (privacy.retention) and purge it
    from earlier versions; profiles are re-published where interactions went."""
    from udp_spark.pipeline.retention import run_retention

    r = run_retention(_context(config, data_root, lakehouse))
    typer.echo(f"retention run {r.run_id}: {sum(r.rows_removed.values()):,} rows removed, "
               f"{r.files_purged:,} files of earlier versions purged")
    for table, n in sorted(r.rows_removed.items()):
        typer.echo(f"  {table:45s} {n:>8,} rows")


@app.command("export")
def export_cmd(
    purpose: Annotated[str, typer.Option("--purpose", help="one of privacy.purposes")],
    out: Annotated[str, typer.Option("--out", help="output folder")],
    segment: Annotated[str | None, typer.Option("--segment", help="only its members")] = None,
    fmt: Annotated[str, typer.Option("--format", help="csv, parquet or json")] = "csv",
    config: ConfigOpt = DEFAULT_CONFIG, data_root: DataRootOpt = None,
    lakehouse: LakehouseOpt = None,
) -> None:
    """Profiles a purpose may use: only customers whose consent allows it, only the fields
    privacy.purposes.<purpose>.fields lists."""
    from udp_spark.pipeline.consent import export_for_purpose

    r = export_for_purpose(_context(config, data_root, lakehouse), purpose, out,
                           segment=segment, fmt=fmt)
    typer.echo(f"{r.exported:,} customers exported to {r.path} ({', '.join(r.fields)}); "
               f"{r.excluded:,} left out: no {purpose} consent")


@app.command()
def serve(config: ConfigOpt = DEFAULT_CONFIG, data_root: DataRootOpt = None,
          lakehouse: LakehouseOpt = None,
          api_config: Annotated[Path, typer.Option(
              "--api-config", envvar="UDP_API_CONFIG",
              help="roles, keys and limits (YAML)")] = Path("conf/api.yaml"),
          host: Annotated[str, typer.Option(help="interface to listen on")] = "127.0.0.1",
          port: Annotated[int, typer.Option(help="TCP port")] = 8000) -> None:
    """Serve the Profile API over HTTP (no Spark: the gold tables are read with delta-rs)."""
    from udp_spark.serve.cli import run_server

    run_server(config, api_config, host=host, port=port, data_root=data_root,
               lakehouse=lakehouse)


def main(argv: list[str] | None = None) -> None:
    """Entry point of the ``udp`` console script and of ``jobs/*.py``."""
    from udp_spark.config import ConfigError
    from udp_spark.io import SourceReadError, StorageFullError, TableLogError
    from udp_spark.jars import JarsMissingError
    from udp_spark.lease import LeaseHeld
    from udp_spark.session import SessionError
    from udp_spark.standardize.transforms import MappingError

    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: "
                        "%(message)s", stream=sys.stderr)
    logging.getLogger("py4j").setLevel(logging.WARNING)
    try:
        # Without standalone mode click returns (not raises) the code of a typer.Exit.
        code = app(args=argv, standalone_mode=False)
        if isinstance(code, int) and code != 0:
            raise SystemExit(code)
    except LeaseHeld as exc:  # another run or the stream is writing this lakehouse
        typer.echo(f"error: {exc}", err=True)
        raise SystemExit(3) from None
    except (ConfigError, MappingError, SourceReadError, JarsMissingError, SessionError,
            ValueError, LookupError) as exc:
        typer.echo(f"error: {exc}", err=True)
        raise SystemExit(2) from None
    except (StorageFullError, TableLogError) as exc:  # the message names table and fix
        typer.echo(f"error: {exc}", err=True)
        raise SystemExit(1) from None
    except typer.Exit as exc:
        raise SystemExit(exc.exit_code) from None
    except Exception as exc:
        import click
        if isinstance(exc, click.ClickException):
            exc.show()
            raise SystemExit(exc.exit_code) from None
        raise


if __name__ == "__main__":
    main()
