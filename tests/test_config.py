"""Config validation: typed models, errors that name the file and key."""

from __future__ import annotations

from pathlib import Path

import pytest

from udp_spark.config import ConfigError, ExprSpec, load_config, load_source

REPO = Path(__file__).resolve().parents[1]


def test_repo_config_loads_all_sources() -> None:
    cfg = load_config(REPO / "conf" / "pipeline.yaml")
    assert set(cfg.sources) == {"crm", "webshop_customers", "webshop_orders", "app_users",
                                "app_events", "support_tickets", "email_subscribers",
                                "pos_transactions"}
    crm = cfg.sources["crm"]
    assert crm.party is not None and crm.party.email == "email"
    assert isinstance(crm.party.gender, ExprSpec)
    assert cfg.sources["webshop_orders"].interactions[0].party_source == "webshop_customers"
    assert len(cfg.config_hash) == 16


def _write(path: Path, text: str) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text)
    return path


def test_unknown_key_is_named_with_file(tmp_path: Path) -> None:
    f = _write(tmp_path / "s.yaml", "name: s\nformat: csv\npath: x.csv\ntrust_rank: 1\n"
               "party: {source_key: id, emial: e}\n")
    with pytest.raises(ConfigError) as err:
        load_source(f)
    assert f"{f}: party.emial: unknown key" in str(err.value)


def test_missing_path_for_file_source(tmp_path: Path) -> None:
    f = _write(tmp_path / "s.yaml", "name: s\nformat: parquet\ntrust_rank: 1\n"
               "party: {source_key: id, email: e}\n")
    with pytest.raises(ConfigError, match="needs 'path'"):
        load_source(f)


def test_an_edition_register_needs_its_edition_date(tmp_path: Path) -> None:
    f = _write(tmp_path / "s.yaml", "name: s\nformat: csv\npath: a.csv\ntrust_rank: 1\n"
               "once_per_edition: true\nparty: {source_key: id, family_name: f}\n")
    with pytest.raises(ConfigError, match=r"once_per_edition needs 'party\.created_at'"):
        load_source(f)
    f.write_text(f.read_text().replace("family_name: f}", "family_name: f, created_at: d}"))
    assert load_source(f).once_per_edition


def test_mapping_without_identifiers_is_rejected(tmp_path: Path) -> None:
    f = _write(tmp_path / "s.yaml", "name: s\nformat: csv\npath: a.csv\ntrust_rank: 1\n"
               "party: {source_key: id, city: c}\n")
    with pytest.raises(ConfigError, match="no name, email, phone"):
        load_source(f)


def test_env_interpolation_and_overrides(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("MY_ROOT", "/data/x")
    p = _write(tmp_path / "pipeline.yaml", "data_root: ${MY_ROOT}\n"
               "lakehouse:\n  root: ${NOT_SET_VAR:-./lh}\n")
    cfg = load_config(p)
    assert cfg.data_root == "/data/x" and cfg.lakehouse.root == "./lh"
    cfg2 = load_config(p, data_root="/other", lakehouse_root="/lake")
    assert cfg2.data_root == "/other" and cfg2.lakehouse.root == "/lake"


def test_missing_env_var_is_an_error(tmp_path: Path) -> None:
    p = _write(tmp_path / "pipeline.yaml", "data_root: ${SURELY_NOT_SET_UDP}\n")
    with pytest.raises(ConfigError, match="SURELY_NOT_SET_UDP is not set"):
        load_config(p)


def test_unknown_party_source_reference(tmp_path: Path) -> None:
    p = _write(tmp_path / "pipeline.yaml", "sources_dir: sources\n")
    _write(tmp_path / "sources" / "o.yaml", "name: o\nformat: json\npath: o.json\n"
           "trust_rank: 1\ninteractions:\n  - {type: {const: order}, key: id, "
           "party_source: nowhere, party_key: c, occurred_at: ts}\n")
    with pytest.raises(ConfigError, match="unknown source 'nowhere'"):
        load_config(p)


def test_bad_yaml_names_file(tmp_path: Path) -> None:
    p = _write(tmp_path / "pipeline.yaml", "lakehouse: [unclosed\n")
    with pytest.raises(ConfigError, match="not valid YAML"):
        load_config(p)


@pytest.mark.parametrize(("expr", "problem"), [
    ("concat(first_name, ' ' last_name)", "missing comma"),
    ("coalesce(nullif(trim(gender), ''), salutation", "unbalanced '('"),
    ("upper(trim(x),, y)", "empty argument"),
    ("regexp_replace(x, '^LOY-?, '')", "unclosed"),
])
def test_invalid_mapping_expression_names_file_key_and_expression(
        tmp_path: Path, expr: str, problem: str) -> None:
    p = _write(tmp_path / "pipeline.yaml", "sources_dir: sources\n")
    src = _write(tmp_path / "sources" / "crm.yaml", "format: csv\npath: a.csv\ntrust_rank: 1\n"
                 f"party:\n  source_key: id\n  email: e\n  gender: {{expr: \"{expr}\"}}\n")
    with pytest.raises(ConfigError) as err:
        load_config(p)
    message = str(err.value)
    assert f"{src}: party.gender.expr: {expr!r} is not a valid SQL expression" in message
    assert problem in message


def test_valid_mapping_expressions_pass(tmp_path: Path) -> None:
    f = _write(tmp_path / "s.yaml", "format: csv\npath: a.csv\ntrust_rank: 1\nparty:\n"
               "  source_key: {expr: \"case when id like 'X%' then 'x' || id else id end\"}\n"
               "  email: {expr: \"lower(concat(u, '@', d))\"}\n"
               "  identifiers: {n: {expr: \"regexp_replace(n, '[^0-9]', '')\"}}\n")
    assert load_source(f).party is not None


def test_mlflow_store_defaults_to_the_lakehouse_root(tmp_path: Path,
                                                     monkeypatch: pytest.MonkeyPatch) -> None:
    """Each local lakehouse keeps its own matcher: a store in the working directory was
    shared by every lakehouse run from there, and a run on new data scored with the model
    another lakehouse had registered."""
    monkeypatch.delenv("UDP_MLFLOW_TRACKING_URI", raising=False)
    monkeypatch.delenv("UDP_LAKEHOUSE", raising=False)
    monkeypatch.chdir(tmp_path)
    conf = REPO / "conf" / "pipeline.yaml"
    assert load_config(conf).mlflow.tracking_uri == \
        f"sqlite:///{tmp_path.resolve() / 'lakehouse' / 'mlflow.db'}"
    assert load_config(conf, lakehouse_root=f"file:{tmp_path}/lh").mlflow.tracking_uri == \
        f"sqlite:///{tmp_path.resolve() / 'lh' / 'mlflow.db'}"
    # SQLite cannot live on object storage: the working directory, as before
    assert load_config(conf, lakehouse_root="s3a://bucket/lh").mlflow.tracking_uri == \
        "sqlite:///mlflow.db"
    monkeypatch.setenv("UDP_MLFLOW_TRACKING_URI", "databricks")
    assert load_config(conf).mlflow.tracking_uri == "databricks"
