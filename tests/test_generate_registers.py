"""Tests of the opt-in register-shaped sources of the generator (no Spark)."""

from __future__ import annotations

import re
from pathlib import Path

import pandas as pd
import pyarrow.parquet as pq
import pytest
import yaml

from udp_spark.config import ConfigError, load_config
from udp_spark.generate import generate
from udp_spark.generate.core import REGISTER_FILES
from udp_spark.generate.registers import CLAIM_COLUMNS, ID_TYPO_RATE, ROLL_COLUMNS

REPO = Path(__file__).resolve().parents[1]
PEOPLE = 2_000
SEED = 5


@pytest.fixture(scope="module")
def plain(tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("plain")
    generate(out, people=PEOPLE, seed=SEED)
    return out


@pytest.fixture(scope="module")
def registers(tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("registers")
    generate(out, people=PEOPLE, seed=SEED, registers=True)
    return out


def _csv(path: Path) -> pd.DataFrame:
    return pd.read_csv(path, dtype=str, keep_default_na=False).replace("", None)


def _truth(out: Path) -> pd.DataFrame:
    return pd.read_csv(out / "truth/records.csv", dtype=str)


def _canon(values: pd.Series) -> pd.Series:
    """Upper-cased letters and digits only, as the matcher compares ids and postcodes."""
    return values.fillna("").str.upper().str.replace(r"[^0-9A-Z]", "", regex=True)


def test_registers_are_written_only_when_asked(plain: Path, registers: Path) -> None:
    assert not (plain / "registers").exists()
    assert not (plain / "truth/address_history.parquet").exists()
    assert "national_id" not in pq.read_schema(plain / "truth/people.parquet").names
    assert set(_truth(plain)["source"]).isdisjoint(REGISTER_FILES)
    for name, rel in REGISTER_FILES.items():
        assert (registers / rel).is_file(), name
    assert set(REGISTER_FILES) <= set(_truth(registers)["source"])
    assert "national_id" in pq.read_schema(registers / "truth/people.parquet").names


def test_registers_leave_every_other_file_unchanged(plain: Path, registers: Path) -> None:
    # Own random streams: the default data, demo and accuracy floors stay as they were.
    files = [p.relative_to(plain) for p in plain.rglob("*")
             if p.is_file() and p.parts[-2] != "truth"]
    assert len(files) >= 8
    for rel in files:
        assert (plain / rel).read_bytes() == (registers / rel).read_bytes(), rel
    before, after = _truth(plain), _truth(registers)
    pd.testing.assert_frame_equal(before, after.iloc[: len(before)])
    people = pq.read_table(registers / "truth/people.parquet").drop(["national_id"])
    assert people.equals(pq.read_table(plain / "truth/people.parquet"))


def test_columns_are_what_the_shapes_say(registers: Path) -> None:
    roll = _csv(registers / REGISTER_FILES["electoral_roll"])
    claims = _csv(registers / REGISTER_FILES["benefit_claims"])
    assert list(roll.columns) == ROLL_COLUMNS
    assert list(claims.columns) == CLAIM_COLUMNS
    contact = re.compile(r"mail|phone|mobile|birth|dob|gender|sex|loyalty")
    assert not [c for c in roll.columns if contact.search(c)]
    address = re.compile(r"address|street|town|city|postcode|postal|country")
    assert not [c for c in claims.columns
                if address.search(c) or (contact.search(c) and c != "date_of_birth")]
    # and the values are there: names and addresses in the roll, ids and dates in claims
    assert roll["surname"].notna().mean() > 0.95
    assert roll["address_line"].notna().mean() > 0.95
    assert claims["national_id"].notna().all()
    assert 0.85 < claims["date_of_birth"].notna().mean() < 0.97


def test_source_yamls_map_only_what_the_shapes_carry() -> None:
    folder = REPO / "conf/sources-registers"
    roll = yaml.safe_load((folder / "electoral_roll.yaml").read_text())["party"]
    claims = yaml.safe_load((folder / "benefit_claims.yaml").read_text())["party"]
    assert {"street", "city", "postcode", "family_name"} <= set(roll)
    assert not {"email", "phone", "mobile", "date_of_birth", "gender"} & set(roll)
    assert claims["identifiers"] == {"national_id": "national_id"}
    assert not {"email", "phone", "mobile", "street", "city", "postcode"} & set(claims)


def test_every_register_record_is_in_the_truth(registers: Path) -> None:
    truth = _truth(registers)
    people = set(pq.read_table(registers / "truth/people.parquet")["person_id"].to_pylist())
    for name, rel in REGISTER_FILES.items():
        keys = _csv(registers / rel).iloc[:, 0]
        assert keys.is_unique
        rows = truth[truth["source"] == name]
        assert set(rows["source_key"]) == set(keys), name
        assert rows["source_key"].is_unique
        assert set(rows["person_id"]) <= people


def test_roll_follows_each_household_through_its_homes(registers: Path) -> None:
    roll = _csv(registers / REGISTER_FILES["electoral_roll"])
    truth = _truth(registers)
    people = pq.read_table(registers / "truth/people.parquet",
                           columns=["person_id", "household_id", "moved_at"]).to_pandas()
    history = pq.read_table(registers / "truth/address_history.parquet").to_pandas()
    # decades of moves: homes before the population's own (2012-) history
    homes = history.groupby("household_id").size()
    assert (homes >= 3).mean() > 0.3
    assert history["valid_from"].min() < pd.Timestamp("1995-01-01", tz="UTC")
    entries = (roll.merge(truth[truth["source"] == "electoral_roll"],
                          left_on="entry_id", right_on="source_key")
               .merge(people, on="person_id"))
    entries["at"] = pd.to_datetime(entries["edition"] + "-03-01", utc=True)
    spells = entries.merge(history, on="household_id")
    held = spells[(spells["valid_from"] <= spells["at"] + pd.Timedelta(days=60))
                  & (spells["at"] < spells["valid_to"])]
    held = held.sort_values("valid_from").drop_duplicates("entry_id", keep="last")
    assert len(held) == len(entries)
    # each entry shows the home held at its edition (postcode noise aside)
    same = _canon(held["postcode_x"]) == _canon(held["postcode_y"])
    assert same.mean() > 0.9
    # people whose entries span several homes show several addresses
    spans = held.groupby("person_id").agg(homes=("valid_from", "nunique"),
                                          shown=("postcode_x", lambda s: _canon(s).nunique()))
    movers = spans[spans["homes"] > 1]
    assert len(movers) > 100
    assert (movers["shown"] > 1).mean() > 0.9
    # movers in the population's own history (moved_at) are among them
    assert movers.index.isin(people.loc[people["moved_at"].notna(), "person_id"]).any()


def test_household_members_share_address_and_family_name(registers: Path) -> None:
    roll = _csv(registers / REGISTER_FILES["electoral_roll"])
    truth = _truth(registers)
    people = pq.read_table(registers / "truth/people.parquet",
                           columns=["person_id", "household_id"]).to_pandas()
    entries = (roll.merge(truth, left_on="entry_id", right_on="source_key")
               .merge(people, on="person_id"))
    entries["where"] = _canon(entries["postcode"])
    shared = entries.groupby(["household_id", "edition", "where"])["person_id"].nunique()
    assert (shared > 1).sum() > 100  # hard negatives: several people at one address


def test_national_ids_are_distinct_and_keyed_with_typos_at_the_configured_rate(
        registers: Path) -> None:
    people = pq.read_table(registers / "truth/people.parquet",
                           columns=["person_id", "national_id", "twin_id"]).to_pandas()
    assert people["national_id"].is_unique and people["national_id"].notna().all()
    claims = _csv(registers / REGISTER_FILES["benefit_claims"])
    truth = _truth(registers)
    rows = (claims.merge(truth, left_on="claim_id", right_on="source_key")
            .merge(people, on="person_id"))
    keyed, meant = _canon(rows["national_id_x"]), _canon(rows["national_id_y"])
    wrong = rows[keyed != meant]
    assert len(rows) > 1_000
    # noise level 1: the configured rate itself; binomial spread at ~1,700 claims is ~0.4%
    assert abs(len(wrong) / len(rows) - ID_TYPO_RATE) < 0.01
    for k, m in zip(keyed[keyed != meant], meant[keyed != meant], strict=True):
        assert len(k) == len(m)
        diff = [i for i in range(len(m)) if k[i] != m[i]]
        one_off = len(diff) == 1
        swapped = (len(diff) == 2 and diff[1] == diff[0] + 1
                   and k[diff[0]] == m[diff[1]] and k[diff[1]] == m[diff[0]])
        assert one_off or swapped, (k, m)


def test_no_id_typos_at_noise_zero(tmp_path: Path) -> None:
    generate(tmp_path, people=300, seed=SEED, noise=0.0, registers=True)
    claims = _csv(tmp_path / REGISTER_FILES["benefit_claims"])
    truth = _truth(tmp_path)
    people = pq.read_table(tmp_path / "truth/people.parquet",
                           columns=["person_id", "national_id"]).to_pandas()
    rows = (claims.merge(truth, left_on="claim_id", right_on="source_key")
            .merge(people, on="person_id"))
    assert (_canon(rows["national_id_x"]) == _canon(rows["national_id_y"])).all()
    assert rows["date_of_birth"].notna().all()


def test_registers_config_is_the_pipeline_config_with_both_source_folders() -> None:
    cfg = load_config(REPO / "conf/pipeline-registers.yaml")
    base = load_config(REPO / "conf/pipeline.yaml")
    assert set(cfg.sources) == set(base.sources) | set(REGISTER_FILES)
    assert [i.name for i in cfg.matching.identifiers] == ["national_id"]
    # everything else is pipeline.yaml's, so a run differs by the register sources only
    same = {"sources", "sources_dir", "matching", "config_hash"}
    assert cfg.model_dump(exclude=same) == base.model_dump(exclude=same)
    # the mapped national id is compared and blocked on; no other matching setting moves
    keys = cfg.matching.blocking.keys
    assert keys[:-1] == base.matching.blocking.keys and keys[-1].name == "national_id"
    unchanged = {"identifiers": True, "blocking": {"keys"}}
    assert cfg.matching.model_dump(exclude=unchanged) == base.matching.model_dump(
        exclude=unchanged)


def test_extends_takes_the_other_files_keys_unless_set(tmp_path: Path) -> None:
    (tmp_path / "base.yaml").write_text("data_root: /data/base\ncheckpoint_mode: local\n")
    (tmp_path / "more.yaml").write_text("extends: base.yaml\ndata_root: /data/more\n")
    cfg = load_config(tmp_path / "more.yaml")
    assert (cfg.data_root, cfg.checkpoint_mode) == ("/data/more", "local")
    (tmp_path / "base.yaml").write_text("extends: more.yaml\n")
    with pytest.raises(ConfigError, match="extends another file itself"):
        load_config(tmp_path / "more.yaml")


def test_a_source_defined_in_two_folders_names_both_files(tmp_path: Path) -> None:
    (tmp_path / "pipeline.yaml").write_text("sources_dir: [a, b]\n")
    text = "format: csv\npath: x.csv\ntrust_rank: 1\nparty: {source_key: id, email: e}\n"
    for folder in ("a", "b"):
        (tmp_path / folder).mkdir()
        (tmp_path / folder / "s.yaml").write_text(text)
    with pytest.raises(ConfigError, match=r"b/s\.yaml: name: source 's' is defined twice "
                                          r"\(also in .*a/s\.yaml\)"):
        load_config(tmp_path / "pipeline.yaml")
