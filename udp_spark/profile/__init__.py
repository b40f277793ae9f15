"""Golden profiles: survivorship with per-field lineage, derived metrics, segments and the
change sets that version them.

Pure ``DataFrame -> DataFrame`` logic; :mod:`udp_spark.pipeline.publish` reads the silver
and gold inputs, calls :func:`build_profiles` and writes the results.
"""

from __future__ import annotations

from udp_spark.profile.build import PROFILE_COLUMNS, build_profiles
from udp_spark.profile.segments import SegmentError
from udp_spark.profile.survivorship import SurvivorshipError

__all__ = ["PROFILE_COLUMNS", "SegmentError", "SurvivorshipError", "build_profiles"]
