"""The `udp` command: bad input fails fast, before any Spark work, with exit code 2."""

from __future__ import annotations

from pathlib import Path

import pytest

from udp_spark.cli import main


def test_bad_config_fails_before_spark_with_the_key(tmp_path: Path,
                                                    capsys: pytest.CaptureFixture[str]) -> None:
    (tmp_path / "sources").mkdir()
    (tmp_path / "pipeline.yaml").write_text("lakehouse:\n  roots: ./x\n")
    with pytest.raises(SystemExit) as exit_info:
        main(["ingest", "--config", str(tmp_path / "pipeline.yaml")])
    assert exit_info.value.code == 2
    err = capsys.readouterr().err
    assert "lakehouse.roots: unknown key" in err


def test_missing_config_file(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as exit_info:
        main(["standardize", "--config", str(tmp_path / "nope.yaml")])
    assert exit_info.value.code == 2
    assert "file not found" in capsys.readouterr().err


def test_generate_writes_sources_and_truth(tmp_path: Path,
                                           capsys: pytest.CaptureFixture[str]) -> None:
    main(["generate", "--people", "60", "--seed", "3", "--out", str(tmp_path / "d")])
    out = capsys.readouterr().out
    assert "60 people ->" in out
    assert (tmp_path / "d" / "crm" / "contacts.csv").is_file()
    assert (tmp_path / "d" / "truth" / "records.csv").is_file()


def test_ingest_tries_every_source_and_exits_non_zero_naming_the_failed_one(
        spark: object, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    conf = tmp_path / "conf"
    (conf / "sources").mkdir(parents=True)
    (conf / "pipeline.yaml").write_text(f"data_root: {tmp_path / 'in'}\n"
                                        f"lakehouse: {{root: {tmp_path / 'lake'}}}\n")
    for name in ("a_first", "b_gone", "c_last"):
        (conf / "sources" / f"{name}.yaml").write_text(
            f"format: csv\npath: {name}/*.csv\ntrust_rank: 1\n"
            "party: {source_key: id, given_name: first}\n")
    for name in ("a_first", "c_last"):
        (tmp_path / "in" / name).mkdir(parents=True)
        (tmp_path / "in" / name / "p.csv").write_text("id,first\n1,Ann\n")
    with pytest.raises(SystemExit) as exit_info:
        main(["ingest", "--config", str(conf / "pipeline.yaml")])
    assert exit_info.value.code != 0
    captured = capsys.readouterr()
    assert "bronze.a_first" in captured.out and "bronze.c_last" in captured.out
    assert "b_gone" in captured.out and "FAILED" in captured.out
    assert "1 of 3 sources failed" in captured.err and "source 'b_gone'" in captured.err


def test_profile_of_an_unknown_customer_exits_non_zero(spark: object, tmp_path: Path,
                                                      capsys: pytest.CaptureFixture[str]) -> None:
    from udp_spark.config import LakehouseConfig
    from udp_spark.tables import GOLD_CUSTOMER_PROFILE, Lakehouse

    conf = tmp_path / "conf"
    (conf / "sources").mkdir(parents=True)
    (conf / "pipeline.yaml").write_text(f"lakehouse: {{root: {tmp_path / 'lake'}}}\n")
    ref = Lakehouse(LakehouseConfig(root=str(tmp_path / "lake"))).ref(GOLD_CUSTOMER_PROFILE)
    spark.createDataFrame([("c-1",)], "customer_id string").write.format("delta").save(
        ref.path)
    with pytest.raises(SystemExit) as exit_info:
        main(["profile", "c-nope", "--config", str(conf / "pipeline.yaml")])
    assert exit_info.value.code == 1
    captured = capsys.readouterr()
    assert "no profile for c-nope" in captured.out
    assert "no customer 'c-nope'" in captured.err
