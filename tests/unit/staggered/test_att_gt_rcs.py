"""Unit tests of ``att_gt(..., panel=False)``: repeated cross-sections (hand-computable cells,
clusters, weights, errors, aggregations). Reference values: tests/reference/test_reference_staggered_rcs.py."""
from __future__ import annotations

import warnings

import numpy as np
import pandas as pd
import pytest

import evalkit as ek
from evalkit.errors import DataError, EvalkitWarning, SpecificationError
from evalkit.staggered._cell import cell_att_rc


def _rcs(seed=0, n=400, T=5):
    """Independent cross-sections: n rows per period, cohorts 3, 4 and never (0)."""
    rng = np.random.default_rng(seed)
    N = n * T
    t = np.repeat(np.arange(1, T + 1), n)
    g = rng.choice([0, 3, 4], size=N, p=[0.5, 0.25, 0.25])
    x = rng.normal(size=N) + 0.3 * (g > 0)
    y = 0.5 * x + 0.3 * t + 0.2 * x * t + np.where((g > 0) & (t >= g), 1.0 + 0.5 * (t - g), 0.0) + rng.normal(size=N)
    return pd.DataFrame({"y": y, "t": t, "g": g, "x": x, "w": rng.uniform(0.5, 2.0, N),
                         "site": rng.integers(0, 30, N), "rid": np.arange(N) + 100})


def _fit(df, **kw):
    kw.setdefault("n_boot", 0)
    return ek.staggered.att_gt(df, outcome="y", unit=None, time="t", cohort="g", panel=False, **kw)


def _four_means(df, g, t, b, control="never", w=None):
    ctrl = (df.g == 0) if control == "never" else ((df.g == 0) | ((df.g > max(t, b)) & (df.g != g)))
    m = df.t.isin([t, b]) & ((df.g == g) | ctrl)
    d = df[m]
    ww = np.ones(len(d)) if w is None else d[w].to_numpy() / d[w].mean()
    att, var = 0.0, 0.0
    for treat, sign_t in ((True, 1), (False, -1)):
        for per, sign_p in ((t, 1), (b, -1)):
            k = ((d.g == g) == treat).to_numpy() & (d.t == per).to_numpy()
            mk = np.sum(ww[k] * d.y.to_numpy()[k]) / ww[k].sum()
            att += sign_t * sign_p * mk
            var += np.sum((ww[k] * (d.y.to_numpy()[k] - mk)) ** 2) / ww[k].sum() ** 2
    return att, np.sqrt(var), m.to_numpy()


@pytest.mark.parametrize("control", ["never", "notyet"])
def test_cells_are_four_means_without_covariates(control):
    df = _rcs(seed=1)
    res = _fit(df, control=control)
    for _, row in res.to_frame().iterrows():
        att, se, m = _four_means(df, int(row.cohort), int(row.time), int(row.base_period), control)
        assert row.estimate == pytest.approx(att, abs=1e-12)
        assert row.std_error == pytest.approx(se, rel=1e-10)
        assert row.n_treated + row.n_control == m.sum()
    assert res.influence_function.shape == (len(df), len(res.table))
    assert res.sample.n_units is None and res.sample.n_obs == len(df)
    assert "repeated cross-sections" in res.conventions.estimator
    assert "observations" in repr(res)


@pytest.mark.parametrize("method", ["dr", "ipw", "reg"])
def test_methods_agree_without_covariates_weighted(method):
    df = _rcs(seed=2)
    res = _fit(df, method=method, weights="w")
    for _, row in res.to_frame().iterrows():
        att, se, _ = _four_means(df, int(row.cohort), int(row.time), int(row.base_period), w="w")
        assert row.estimate == pytest.approx(att, abs=1e-12)
        assert row.std_error == pytest.approx(se, rel=1e-8)


@pytest.mark.parametrize("method", ["dr", "ipw", "reg"])
def test_cell_with_covariates_equals_direct_2x2(method):
    df = _rcs(seed=3)
    res = _fit(df, method=method, covariates=["x"])
    row = res.to_frame().set_index("term").loc["ATT(3,4)"]
    m = df.t.isin([4, 2]) & df.g.isin([3, 0])
    d = df[m]
    X = np.column_stack([np.ones(len(d)), d.x])
    att, psi = cell_att_rc(d.y.to_numpy(), (d.t == 4).to_numpy(), (d.g == 3).to_numpy(), X, np.ones(len(d)), method)
    assert row.estimate == pytest.approx(att, abs=1e-12)
    assert row.std_error == pytest.approx(np.sqrt(np.mean(psi**2) / len(d)), rel=1e-10)


def test_cluster_sums_influence_functions_within_cluster():
    df = _rcs(seed=4)
    plain = _fit(df, covariates=["x"])
    cl = _fit(df, covariates=["x"], cluster="site")
    np.testing.assert_allclose(cl.to_frame().estimate, plain.to_frame().estimate, atol=1e-14)
    psi = plain.influence_function
    S = pd.DataFrame(psi).groupby(df["site"].to_numpy()).sum().to_numpy()
    np.testing.assert_allclose(cl.to_frame().std_error, np.sqrt((S**2).sum(0)) / len(df), rtol=1e-10)
    assert cl.conventions.vcov_type == "IF-cluster" and cl.conventions.n_clusters == (30,)
    agg = cl.aggregate("dynamic")
    assert np.isfinite(agg.std_error)


def test_unique_unit_column_is_accepted_and_ignored():
    df = _rcs(seed=5)
    a = _fit(df)
    b = ek.staggered.att_gt(df, outcome="y", unit="rid", time="t", cohort="g", panel=False, n_boot=0)
    pd.testing.assert_frame_equal(a.to_frame(), b.to_frame())


def test_repeated_unit_ids_raise_with_the_fix():
    df = _rcs(seed=6)
    df["rid"] = df["rid"] % 400  # the same ids in every period: a panel
    with pytest.raises(DataError, match=r"repeats in .* rows.*panel=True.*unit=None"):
        ek.staggered.att_gt(df, outcome="y", unit="rid", time="t", cohort="g", panel=False, n_boot=0)


def test_argument_errors():
    df = _rcs(seed=7)
    with pytest.raises(SpecificationError, match="`unit` is required for panel data"):
        ek.staggered.att_gt(df, outcome="y", unit=None, time="t", cohort="g", n_boot=0)
    with pytest.raises(SpecificationError, match="`panel` must be True"):
        ek.staggered.att_gt(df, outcome="y", unit=None, time="t", cohort="g", panel="no", n_boot=0)
    with pytest.raises(DataError, match="not found"):
        ek.staggered.att_gt(df, outcome="y", unit="nope", time="t", cohort="g", panel=False, n_boot=0)


def test_cell_without_base_period_rows_is_skipped():
    df = _rcs(seed=8)
    df = df[~((df.g == 4) & (df.t == 3))]  # cohort 4 has no rows in its base period 3
    with pytest.warns(EvalkitWarning, match=r"ATT\(4,4\).*cell skipped"):
        res = _fit(df)
    terms = set(res.to_frame().term)
    assert "ATT(4,4)" not in terms and "ATT(3,4)" in terms


def test_planted_effects_and_bootstrap_band():
    df = _rcs(seed=9, n=3000)
    res = ek.staggered.att_gt(df, outcome="y", unit=None, time="t", cohort="g", panel=False, covariates=["x"],
                              n_boot=199, seed=3)
    fr = res.to_frame().set_index("term")
    # planted: 1 + 0.5 (t - g) from entry on; trends depend on x (x-adjusted by the covariate)
    for term, truth in (("ATT(3,3)", 1.0), ("ATT(3,5)", 2.0), ("ATT(4,5)", 1.5)):
        assert abs(fr.loc[term, "estimate"] - truth) < 4 * fr.loc[term, "std_error"]
    assert (fr["conf_low_simul"] <= fr["conf_low"]).all()
    ps = res.pretrend_test()
    assert 0 <= ps.p_value <= 1
    for kind in ("simple", "group", "dynamic", "calendar"):
        agg = res.aggregate(kind)
        assert np.isfinite(agg.estimate) and np.isfinite(agg.std_error)


def test_aggregation_weights_are_row_shares():
    """P(G = g) in the aggregations count rows: the simple aggregate is the row-share-weighted mean of post cells."""
    df = _rcs(seed=10)
    res = _fit(df)
    fr = res.to_frame()
    post = fr[fr.post]
    pg = df.g.value_counts(normalize=True)
    w = post.cohort.astype(int).map(pg).to_numpy()
    assert res.aggregate("simple").estimate == pytest.approx(np.sum(w * post.estimate) / w.sum(), abs=1e-12)


def test_universal_base_period_reference_cells():
    df = _rcs(seed=11)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", EvalkitWarning)
        res = _fit(df, base_period="universal")
    fr = res.to_frame().set_index("term")
    assert fr.loc["ATT(3,2)", "estimate"] == 0 and np.isnan(fr.loc["ATT(3,2)", "std_error"])
    att, se, _ = _four_means(df, 3, 1, 2)
    assert fr.loc["ATT(3,1)", "estimate"] == pytest.approx(att, abs=1e-12)
