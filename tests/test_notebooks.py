"""Notebooks are Databricks source files that must parse and only call the library."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

NOTEBOOKS = sorted((Path(__file__).resolve().parents[1] / "notebooks").glob("*.py"))


def test_there_are_notebooks() -> None:
    assert NOTEBOOKS


@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: p.name)
def test_notebook_parses_and_imports_only_udp_spark(path: Path) -> None:
    text = path.read_text()
    assert text.startswith("# Databricks notebook source\n")
    tree = ast.parse(text)
    modules = {n.module.split(".")[0] for n in ast.walk(tree)
               if isinstance(n, ast.ImportFrom) and n.module}
    modules |= {a.name.split(".")[0] for n in ast.walk(tree) if isinstance(n, ast.Import)
                for a in n.names}
    assert modules <= {"udp_spark", "pyspark"}, modules
    # no function or class definitions: logic belongs in the library
    assert not [n for n in ast.walk(tree) if isinstance(n, ast.FunctionDef | ast.ClassDef)]

