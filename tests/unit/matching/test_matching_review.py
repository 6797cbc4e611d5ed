"""Regression tests from the matched-control correctness review (MatchIt 4.7 conventions)."""
import numpy as np
import pandas as pd
import pytest

from evalkit.errors import DataError, SpecificationError
from evalkit.matching import estimate_effect, match



@pytest.fixture
def gapped():
    """Overlapping score ranges, but every treated unit is 0.5 away from the nearest control."""
    rng = np.random.default_rng(0)
    t = np.r_[np.ones(20, int), np.zeros(40, int)]
    s = np.r_[np.arange(20) + 0.5, np.arange(40.0)]
    return pd.DataFrame({"t": t, "x": rng.normal(size=60), "y": rng.normal(size=60), "s": s})


def test_caliper_sd_excludes_discarded_units(df):
    # MatchIt's process.caliper: caliper * sd(distance[!discarded])
    d = df.assign(score=np.where(df.t == 1, 0.5, 0.3) + np.abs(df.z) * 0.1)
    with pytest.warns(Warning, match="discarded"):
        m = match(d, treatment="t", covariates=["x"], distance="score", discard="both", caliper=0.25)
    assert m.discarded.sum() > 0
    keep = ~m.discarded
    want = 0.25 * np.std(d["score"].to_numpy()[keep], ddof=1)
    assert m.options["caliper_width"] == pytest.approx(want, rel=1e-12)
    assert m.options["caliper_width"] != pytest.approx(0.25 * d["score"].std(ddof=1), rel=1e-6)


@pytest.mark.parametrize("kw", [{}, {"method": "optimal"}, {"replace": True}])
def test_caliper_excluding_everyone_is_a_data_error(gapped, kw):
    with pytest.raises(DataError, match=r"all 20 treated units are unmatched under caliper=0.1.*Widen the caliper"):
        match(gapped, treatment="t", covariates=["x"], distance="s", caliper=0.1, std_caliper=False, **kw)


def test_exact_excluding_everyone_is_a_data_error(df):
    d = df.assign(g=np.where(df.t == 1, "a", "b"))
    with pytest.raises(DataError, match=r"unmatched under exact=\['g'\]"):
        match(d, treatment="t", covariates=["x"], exact=["g"])


def test_estimate_effect_refuses_an_empty_group(df):
    m = match(df, treatment="t", covariates=["x"], replace=True)
    object.__setattr__(m, "weights", np.where(m.treat == 1, 0.0, m.weights))
    with pytest.raises(DataError, match="0 treated"):
        estimate_effect(m, "y")


def test_infinite_distance_column_is_a_data_error(df):
    d = df.assign(score=np.where(np.arange(len(df)) == 3, np.inf, df.z))
    with pytest.raises(DataError, match=r"Distance column 'score'.*1 infinite"):
        match(d, treatment="t", covariates=["x"], distance="score")


@pytest.mark.parametrize("cut, msg", [(-2, "number of bins >= 0"), (True, "cutpoints\\['x'\\]"),
                                      ({"nope": 3}, r"\['nope'\].*not covariates"), ([1.0, np.nan], "finite cut points")])
def test_cem_bad_cutpoints(df, cut, msg):
    with pytest.raises(SpecificationError, match=msg):
        match(df, treatment="t", covariates=["x", "z"], method="cem", cutpoints=cut)
