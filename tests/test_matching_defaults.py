"""Matching defaults a new user gets without restating config: identifiers mapped in a source
are compared and blocked on, and blocking keys set by the user join the default ones."""

from __future__ import annotations

from pathlib import Path

from chispa import assert_df_equality
from pyspark.sql import SparkSession

from udp_spark.config import load_config
from udp_spark.matching.blocking import block_keys, candidate_pairs, check_blocking
from udp_spark.matching.comparisons import (
    comparison_vectors,
    comparisons_for,
    pair_frame,
    with_identifier_columns,
)


def _config(tmp_path: Path, pipeline: str = "", sources: dict[str, str] | None = None):
    (tmp_path / "sources").mkdir(parents=True, exist_ok=True)
    (tmp_path / "pipeline.yaml").write_text(pipeline)
    for name, party in (sources or {}).items():
        (tmp_path / "sources" / f"{name}.yaml").write_text(
            f"name: {name}\nformat: csv\npath: {name}.csv\ntrust_rank: 1\nparty: {party}\n")
    return load_config(tmp_path / "pipeline.yaml")


def test_a_mapped_national_id_is_compared_and_blocked_on_by_default(tmp_path: Path) -> None:
    cfg = _config(tmp_path, sources={
        "registry": "{source_key: id, full_name: name, identifiers: {national_id: ssn}}",
        "tax": "{source_key: id, full_name: name, identifiers: {national_id: tin}}",
    })
    ids = {i.name: (i.expression, i.conflict) for i in cfg.matching.identifiers}
    assert ids == {"national_id": ("identifiers['national_id']", True)}
    keys = {k.name: k.columns for k in cfg.matching.blocking.keys}
    assert keys == {"email": ("email_canonical",), "phone": ("phone_e164", "mobile_e164"),
                    "loyalty_id": ("loyalty_id",), "national_id": ("idc_national_id",)}


def test_a_source_s_own_record_key_is_not_a_person_id(tmp_path: Path) -> None:
    """The CRM maps its contact id as an identifier: alone it never agrees across records,
    and where another source refers to it, one person's two CRM records carry two values."""
    alone = _config(tmp_path / "a", sources={
        "crm": "{source_key: contact_id, full_name: n, identifiers: {crm_contact_id: contact_id}}"})
    assert alone.matching.identifiers == ()
    shared = _config(tmp_path / "b", sources={
        "crm": "{source_key: contact_id, full_name: n, identifiers: {crm_contact_id: contact_id}}",
        "shop": "{source_key: id, full_name: n, identifiers: {crm_contact_id: crm_ref}}"})
    assert [(i.name, i.conflict) for i in shared.matching.identifiers] == [
        ("crm_contact_id", False)]


def test_stated_identifiers_and_keys_win_and_the_opt_out_holds(tmp_path: Path) -> None:
    src = {"registry": "{source_key: id, full_name: n, identifiers: {national_id: ssn, SSN-2: x}}"}
    cfg = _config(tmp_path / "a", pipeline=(
        "matching:\n"
        "  identifiers:\n"
        "    - {name: nid, expression: \"identifiers['national_id']\", conflict: false}\n"
        "  blocking:\n"
        "    keys: [{name: nid, columns: [\"identifiers['national_id']\"]},\n"
        "           {name: email, columns: [\"lower(email)\"]}]\n"), sources=src)
    assert [(i.name, i.conflict) for i in cfg.matching.identifiers] == [
        ("nid", False), ("ssn_2", True)]
    assert [(k.name, k.columns) for k in cfg.matching.blocking.keys] == [
        ("email", ("lower(email)",)), ("phone", ("phone_e164", "mobile_e164")),
        ("loyalty_id", ("loyalty_id",)), ("nid", ("identifiers['national_id']",)),
        ("ssn_2", ("idc_ssn_2",))]
    off = _config(tmp_path / "b", pipeline=(
        "matching:\n  mapped_identifiers: false\n"
        "  blocking: {replace_keys: true, keys: [{name: phone, columns: [phone_e164]}]}\n"),
        sources=src)
    assert off.matching.identifiers == ()
    assert [k.name for k in off.matching.blocking.keys] == ["phone"]


def test_records_sharing_a_mapped_id_become_a_scored_candidate_pair(
        spark: SparkSession, tmp_path: Path) -> None:
    cfg = _config(tmp_path, sources={
        "registry": "{source_key: id, full_name: name, identifiers: {national_id: ssn}}"})
    records = spark.createDataFrame([
        ("a", None, None, None, None, {"national_id": "396-91-9886"}),
        ("b", None, None, None, None, {"national_id": "396919886"}),
        ("c", None, None, None, None, {"national_id": "111-22-3333"}),
    ], "record_id string, email_canonical string, phone_e164 string, mobile_e164 string, "
       "loyalty_id string, identifiers map<string,string>").transform(
        with_identifier_columns(cfg.matching.identifiers))
    settings = cfg.matching.blocking.model_copy(update={"rules": (), "lsh": ()})
    check_blocking(settings, records)
    pairs = records.transform(block_keys(settings)).transform(candidate_pairs(100))
    expected = spark.createDataFrame([("a", "b", ["key:national_id"])],
                                     "record_id_l string, record_id_r string, "
                                     "methods array<string>")
    assert_df_equality(pairs, expected, ignore_nullable=True)
    comps = [c for c in comparisons_for(cfg.matching.identifiers) if c.name == "national_id"]
    level = pair_frame(records, pairs, ["record_id", "idc_national_id"]).transform(
        comparison_vectors(comps)).first()
    assert level is not None and level["national_id"] == comps[0].top_level
