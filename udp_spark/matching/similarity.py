"""String similarity Spark lacks as a built-in: Jaro-Winkler via rapidfuzz, vectorized."""

from __future__ import annotations

import numpy as np
import pandas as pd
from pyspark.sql import Column
from pyspark.sql import functions as F
from pyspark.sql import types as T


def _jw_batch(left: pd.Series, right: pd.Series) -> pd.Series:
    from rapidfuzz.distance import JaroWinkler
    from rapidfuzz.process import cpdist

    mask = left.notna() & right.notna()
    out = np.full(len(left), np.nan)
    if mask.any():
        out[mask.to_numpy()] = cpdist(left[mask].tolist(), right[mask].tolist(),
                                      scorer=JaroWinkler.normalized_similarity, workers=1)
    return pd.Series(out)


@F.pandas_udf(T.DoubleType())  # type: ignore[call-overload]
def _jaro_winkler_udf(left: pd.Series, right: pd.Series) -> pd.Series:
    return _jw_batch(left, right)


def jaro_winkler(left: Column, right: Column) -> Column:
    """Jaro-Winkler similarity in [0, 1]; null if either side is null."""
    return _jaro_winkler_udf(left, right)
