"""Unit tests of evalkit.staggered.att_gt: hand-computable panels, unbalanced cells, clustering,
bootstrap bands, pre-trend test, errors."""
from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

import evalkit as ek

pytestmark = pytest.mark.filterwarnings("ignore::evalkit.errors.SingletonWarning")
from evalkit.errors import DataError, EstimationError, SpecificationError


def _micro_panel() -> pd.DataFrame:
    """8 units x 4 periods; cohort 2 (units 0-1), cohort 3 (units 2-3), never (4-7).

    y = unit effect + period effect + 3 * treated_post exactly (ATT = 3 in every post cell, 0 pre).
    """
    rows = []
    cohort = {0: 2, 1: 2, 2: 3, 3: 3}
    for i in range(8):
        for t in range(4):
            g = cohort.get(i, 0)
            y = 10.0 * i + 2.0 * t + t * t + (3.0 if g and t >= g else 0.0)
            rows.append((i, t + 1, g + 1 if g else 0, y, i % 2))
    return pd.DataFrame(rows, columns=["id", "period", "first", "y", "org"])


def _noisy_panel(seed=0, n=300, T=5, drop=0.0):
    rng = np.random.default_rng(seed)
    g = rng.choice([0, 3, 4, 5], size=n, p=[0.4, 0.2, 0.2, 0.2])
    x = rng.normal(size=n)
    org = rng.integers(0, 25, size=n)
    ids = np.repeat(np.arange(n), T)
    t = np.tile(np.arange(1, T + 1), n)
    gi = np.repeat(g, T)
    y = np.repeat(rng.normal(size=n) + 0.5 * x, T) + 0.3 * t + 0.2 * np.repeat(x, T) * t \
        + np.where((gi > 0) & (t >= gi), 1.0 + 0.5 * (t - gi), 0.0) + rng.normal(size=n * T)
    df = pd.DataFrame({"id": ids, "t": t, "g": gi, "y": y, "x": np.repeat(x, T), "org": np.repeat(org, T)})
    if drop:
        df = df.loc[rng.random(len(df)) >= drop].reset_index(drop=True)
    return df


def test_micro_panel_exact_att():
    res = ek.staggered.att_gt(_micro_panel(), outcome="y", unit="id", time="period", cohort="first", n_boot=0)
    fr = res.to_frame()
    post = fr["post"].to_numpy()
    np.testing.assert_allclose(fr.loc[post, "estimate"], 3.0, rtol=1e-10)
    np.testing.assert_allclose(fr.loc[~post, "estimate"], 0.0, atol=1e-10)
    assert res.aggregate("simple").estimate == pytest.approx(3.0, rel=1e-10)
    assert res.aggregate("dynamic").estimate == pytest.approx(3.0, rel=1e-10)


def test_unbalanced_cells_equal_hand_2x2():
    """Each ATT(g,t) is the 2x2 DiD of the units observed in both t and its base period."""
    df = _noisy_panel(seed=1, drop=0.25)
    res = ek.staggered.att_gt(df, outcome="y", unit="id", time="t", cohort="g", n_boot=0)
    assert res.sample.balanced is False
    wide = df.pivot(index="id", columns="t", values="y")
    gid = df.groupby("id")["g"].first()
    n_units = wide.shape[0]
    for _, row in res.to_frame().iterrows():
        g, t, b = int(row["cohort"]), int(row["time"]), int(row["base_period"])
        dy = (wide[t] - wide[b]).dropna()
        grp = gid.loc[dy.index]
        d1, d0 = dy[grp == g], dy[grp == 0]
        assert row["estimate"] == pytest.approx(d1.mean() - d0.mean(), abs=1e-12)
        # IF of a difference of means: (n/n1)(dy - mean1) for treated, -(n/n0)(dy - mean0) for controls
        se = np.sqrt(((d1 - d1.mean()) ** 2).sum() / len(d1) ** 2 + ((d0 - d0.mean()) ** 2).sum() / len(d0) ** 2)
        assert row["std_error"] == pytest.approx(se, rel=1e-10)
        assert (row["n_treated"], row["n_control"]) == (len(d1), len(d0))
    assert res.influence_function.shape[0] == n_units


@pytest.mark.parametrize("method", ["dr", "ipw", "reg"])
def test_unbalanced_cell_equals_two_period_fit_with_covariates(method):
    """An unbalanced cell equals the same estimator run on the two-period panel of its units."""
    df = _noisy_panel(seed=2, drop=0.2)
    res = ek.staggered.att_gt(df, outcome="y", unit="id", time="t", cohort="g", covariates=["x"], method=method, n_boot=0)
    row = res.to_frame().query("cohort == 4 and time == 5").iloc[0]
    b = int(row["base_period"])
    sub = df[df["t"].isin([b, 5]) & df["g"].isin([0, 4])]
    both = sub.groupby("id")["t"].transform("size") == 2
    sub = sub.loc[both].assign(tt=lambda d: (d["t"] == 5).astype(int) + 1, gg=lambda d: np.where(d["g"] == 4, 2, 0))
    two = ek.staggered.att_gt(sub, outcome="y", unit="id", time="tt", cohort="gg", covariates=["x"], method=method, n_boot=0)
    r2 = two.to_frame().iloc[0]
    assert row["estimate"] == pytest.approx(r2["estimate"], abs=1e-10)
    assert row["std_error"] == pytest.approx(r2["std_error"], rel=1e-8)


def test_balanced_panel_unaffected_by_extra_unobserved_periods():
    """Rows of periods a cell does not use do not change it (the per-cell sample is what matters)."""
    df = _noisy_panel(seed=3)
    full = ek.staggered.att_gt(df, outcome="y", unit="id", time="t", cohort="g", n_boot=0).to_frame()
    # drop period-1 rows of some never-treated units: only cells using period 1 may change
    rng = np.random.default_rng(0)
    ids = rng.choice(df.loc[df.g == 0, "id"].unique(), 10, replace=False)
    part = ek.staggered.att_gt(df[~(df.id.isin(ids) & (df.t == 1))], outcome="y", unit="id", time="t", cohort="g",
                               n_boot=0).to_frame()
    untouched = (full["time"] != 1) & (full["base_period"] != 1)
    np.testing.assert_allclose(part.loc[untouched, "estimate"], full.loc[untouched, "estimate"], atol=1e-12)
    np.testing.assert_allclose(part.loc[untouched, "std_error"], full.loc[untouched, "std_error"], rtol=1e-12)
    assert not np.allclose(part.loc[~untouched, "estimate"], full.loc[~untouched, "estimate"])


def test_cluster_sums_and_unit_cluster_equivalence():
    df = _noisy_panel(seed=4)
    base = ek.staggered.att_gt(df, outcome="y", unit="id", time="t", cohort="g", n_boot=0)
    same = ek.staggered.att_gt(df, outcome="y", unit="id", time="t", cohort="g", cluster="id", n_boot=0)
    np.testing.assert_allclose(same.to_frame()["std_error"], base.to_frame()["std_error"], rtol=1e-12)
    cl = ek.staggered.att_gt(df, outcome="y", unit="id", time="t", cohort="g", cluster="org", n_boot=0)
    psi = base.influence_function
    org = df.groupby("id")["org"].first().to_numpy()
    S = pd.DataFrame(psi).groupby(org).sum().to_numpy()
    np.testing.assert_allclose(cl.to_frame()["std_error"], np.sqrt((S**2).sum(0)) / psi.shape[0], rtol=1e-12)
    assert cl.conventions.small_sample == "none" and cl.conventions.n_clusters == (25,)
    agg = cl.aggregate("simple")
    assert agg.std_error != pytest.approx(base.aggregate("simple").std_error, rel=1e-6)


def test_clustered_bootstrap_matches_analytic_se():
    df = _noisy_panel(seed=5)
    res = ek.staggered.att_gt(df, outcome="y", unit="id", time="t", cohort="g", cluster="org", n_boot=0)
    from evalkit.staggered._bootstrap import cluster_sums, multiplier_draws

    S = cluster_sums(res.influence_function, res.extra["cluster"])
    draws = multiplier_draws(S, res.influence_function.shape[0], 4000, np.random.default_rng(1))
    np.testing.assert_allclose(draws.std(axis=0), res.to_frame()["std_error"], rtol=0.05)
    d2 = multiplier_draws(S, res.influence_function.shape[0], 4000, np.random.default_rng(1), "mammen")
    np.testing.assert_allclose(d2.std(axis=0), res.to_frame()["std_error"], rtol=0.05)


def test_bootstrap_band_seeded_and_wider():
    df = _noisy_panel(seed=6)
    a = ek.staggered.att_gt(df, outcome="y", unit="id", time="t", cohort="g", seed=11, n_boot=499)
    b = ek.staggered.att_gt(df, outcome="y", unit="id", time="t", cohort="g", seed=11, n_boot=499)
    fa, fb = a.to_frame(), b.to_frame()
    pd.testing.assert_frame_equal(fa, fb)
    assert (fa["conf_high_simul"] - fa["conf_low_simul"] > fa["conf_high"] - fa["conf_low"]).all()
    da, db = a.aggregate("dynamic"), b.aggregate("dynamic")
    pd.testing.assert_frame_equal(da.to_frame(), db.to_frame())
    comp = da.event_frame()
    assert (comp["conf_high_simul"] >= comp["conf_high"]).all()
    assert np.isnan(da.to_frame()["conf_low_simul"].iloc[0])
    m = a.aggregate("dynamic", boot_weights="mammen")
    assert np.isfinite(m.event_frame()["conf_low_simul"]).all()


def test_pretrend_wald_test():
    df = _noisy_panel(seed=7)
    res = ek.staggered.att_gt(df, outcome="y", unit="id", time="t", cohort="g", n_boot=0)
    w = res.pretrend_test()
    fr = res.to_frame()
    pre = ~fr["post"].to_numpy()
    th = fr["estimate"].to_numpy()[pre]
    V = np.asarray(res.vcov)[np.ix_(pre, pre)]
    assert w.df == pre.sum()
    assert w.statistic == pytest.approx(th @ np.linalg.solve(V, th), rel=1e-8)
    assert 0 <= w.p_value <= 1


def test_universal_reference_cells_and_plot():
    import matplotlib.axes

    df = _noisy_panel(seed=8)
    res = ek.staggered.att_gt(df, outcome="y", unit="id", time="t", cohort="g", base_period="universal", n_boot=99, seed=1)
    fr = res.to_frame()
    ref = fr["time"] == fr["base_period"]
    assert ref.sum() == 3 and (fr.loc[ref, "estimate"] == 0).all() and fr.loc[ref, "std_error"].isna().all()
    dyn = res.aggregate("dynamic")
    e = dyn.event_frame().set_index("event_time")
    assert e.loc[-1, "estimate"] == 0 and np.isnan(e.loc[-1, "std_error"])
    assert isinstance(dyn.plot(), matplotlib.axes.Axes)
    assert isinstance(res.plot(), matplotlib.axes.Axes)
    with pytest.raises(SpecificationError, match="dynamic"):
        res.aggregate("group").plot()


def test_notyet_controls_and_anticipation():
    df = _noisy_panel(seed=9)
    ny = ek.staggered.att_gt(df, outcome="y", unit="id", time="t", cohort="g", control="notyet", n_boot=0).to_frame()
    nv = ek.staggered.att_gt(df, outcome="y", unit="id", time="t", cohort="g", n_boot=0).to_frame()
    assert (ny["n_control"] >= nv["n_control"]).all() and (ny["n_control"] > nv["n_control"]).any()
    an = ek.staggered.att_gt(df, outcome="y", unit="id", time="t", cohort="g", anticipation=1, n_boot=0).to_frame()
    post = an[an["post"]]
    assert (post["base_period"] == post["cohort"] - 2).all()


def test_weights_equal_duplicated_units():
    df = _noisy_panel(seed=10, n=120)
    w = (df["id"] % 3 == 0).astype(float) + 1.0
    res = ek.staggered.att_gt(df.assign(w=w), outcome="y", unit="id", time="t", cohort="g", weights="w", n_boot=0)
    dup = pd.concat([df, df[w == 2].assign(id=lambda d: d["id"] + 10_000)])
    ref = ek.staggered.att_gt(dup, outcome="y", unit="id", time="t", cohort="g", n_boot=0)
    np.testing.assert_allclose(res.to_frame()["estimate"], ref.to_frame()["estimate"], atol=1e-12)
    np.testing.assert_allclose(res.aggregate("simple").estimate, ref.aggregate("simple").estimate, atol=1e-12)


def test_results_are_immutable():
    res = ek.staggered.att_gt(_micro_panel(), outcome="y", unit="id", time="period", cohort="first", n_boot=0)
    with pytest.raises(Exception):
        res.table = None
    with pytest.raises(ValueError):
        res.influence_function[0, 0] = 1.0
    with pytest.raises(TypeError):
        res.extra["psi"] = None
    fr = res.to_frame()
    fr.loc[0, "estimate"] = 99.0
    assert res.to_frame().loc[0, "estimate"] != 99.0
    assert "ATT(g,t)" in str(res.summary())


def test_errors():
    df = _micro_panel()
    kw = dict(outcome="y", unit="id", time="period", cohort="first")
    with pytest.raises(SpecificationError, match="'control' parameter of att_gt must be one of"):
        ek.staggered.att_gt(df, control="nevertreated", **kw)
    with pytest.raises(SpecificationError, match="'kind' parameter"):
        ek.staggered.att_gt(df, n_boot=0, **kw).aggregate("cohort")
    with pytest.raises(SpecificationError, match="apply to kind='dynamic'"):
        ek.staggered.att_gt(df, n_boot=0, **kw).aggregate("simple", min_e=-2)
    bad = df.copy()
    bad.loc[0, "first"] = 4
    with pytest.raises(DataError, match="not constant within unit"):
        ek.staggered.att_gt(bad, n_boot=0, **kw)
    with pytest.raises(SpecificationError, match="one column"):
        ek.staggered.att_gt(df, cluster=["org", "id"], n_boot=0, **kw)
    const = _noisy_panel(seed=1).assign(c=1.0)
    with pytest.raises(EstimationError, match="singular"):
        ek.staggered.att_gt(const, outcome="y", unit="id", time="t", cohort="g", covariates=["c"], n_boot=0)


def test_dynamic_window_and_balance():
    df = _noisy_panel(seed=12, T=6)
    res = ek.staggered.att_gt(df, outcome="y", unit="id", time="t", cohort="g", n_boot=0)
    d = res.aggregate("dynamic", min_e=-2, max_e=1).event_frame()
    assert list(d["event_time"]) == [-2, -1, 0, 1]
    bal = res.aggregate("dynamic", balance_e=1).event_frame()
    # cohorts observed >= 1 period after entry: 3, 4, 5 (last period 6); e runs to balance_e
    assert bal["event_time"].max() == 1


def test_only_reference_cells_left_is_a_clear_error():
    """No never-treated units with control='never' and a universal base: every cell but the
    reference cells (fixed at 0) is skipped; att_gt says so instead of failing later in aggregate."""
    rng = np.random.default_rng(4)
    n, T = 40, 6
    df = pd.DataFrame({"id": np.repeat(np.arange(n), T), "t": np.tile(np.arange(1, T + 1), n)})
    df["g"] = np.where(df["id"] < n // 2, 3, 5)
    df["y"] = rng.normal(size=len(df))
    with pytest.raises(ek.errors.DataError, match="no ATT\\(g,t\\) cell could be estimated"):
        ek.staggered.att_gt(df, outcome="y", unit="id", time="t", cohort="g", control="never",
                            base_period="universal", n_boot=0)
