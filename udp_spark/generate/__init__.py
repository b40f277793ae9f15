"""Synthetic multi-source customer data with a known truth, for testing and evaluation."""

from __future__ import annotations

from udp_spark.generate.core import GenerateError, GenerateReport, generate

__all__ = ["GenerateError", "GenerateReport", "generate"]
