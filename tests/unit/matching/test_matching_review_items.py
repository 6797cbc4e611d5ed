"""Review items: factor cutpoints warn, duplicate covariates, integer/numpy inputs for float parameters."""
import warnings

import numpy as np
import pandas as pd
import pytest

from evalkit.errors import EvalkitWarning, SpecificationError
from evalkit.matching import estimate_effect, match, matched_did, weight


@pytest.fixture
def df():
    rng = np.random.default_rng(5)
    n = 400
    x = rng.normal(size=n)
    g = rng.choice(["a", "b", "c"], size=n)
    t = (rng.uniform(size=n) < 1 / (1 + np.exp(-(-0.5 + x)))).astype(int)
    return pd.DataFrame({"t": t, "x": x, "g": g, "b": rng.uniform(size=n) < 0.5,
                         "y0": x + rng.normal(size=n), "y": x + t + rng.normal(size=n)})


@pytest.mark.parametrize("col", ["g", "b"])
def test_cem_cutpoints_for_factor_column_warn(df, col):
    with pytest.warns(EvalkitWarning, match=rf"cutpoints entries for factor column\(s\) \['{col}'\] are ignored") as rec:
        match(df, treatment="t", covariates=["x", col], method="cem", cutpoints={col: 3, "x": 4})
    assert rec[0].filename == __file__


def test_cem_cutpoints_numeric_only_does_not_warn(df):
    with warnings.catch_warnings():
        warnings.simplefilter("error", EvalkitWarning)
        match(df, treatment="t", covariates=["x", "g"], method="cem", cutpoints={"x": 4})


@pytest.mark.parametrize("fn", [match, weight])
def test_covariate_listed_twice(df, fn):
    with pytest.raises(SpecificationError, match=r"lists \['x'\] twice"):
        fn(df, treatment="t", covariates=["x", "g", "x"])


@pytest.mark.parametrize("level", [0.9, np.float32(0.9), np.float64(0.9)])
def test_level_accepts_any_real(df, level):
    m = match(df, treatment="t", covariates=["x"])
    r = estimate_effect(m, "y", level=level)
    assert r.conventions.level == pytest.approx(0.9, abs=1e-6)


@pytest.mark.parametrize("level", [1, 0])
def test_integer_level_is_a_range_error_not_a_type_error(df, level):
    m = match(df, treatment="t", covariates=["x"])
    with pytest.raises(SpecificationError, match=r"'level' parameter must be in the range \(0, 1\)"):
        estimate_effect(m, "y", level=level)
    with pytest.raises(SpecificationError, match=r"'level' parameter must be in the range"):
        matched_did(m, outcome="y", pre="y0", level=level)


def test_integer_caliper_accepted(df):
    m = match(df, treatment="t", covariates=["x"], caliper=1)
    assert m is not None
