"""Unit tests of evalkit.staggered.sun_abraham: CS equivalence on mpdta, an independent
dummy-variable regression (numpy lstsq + explicit IW weights + hand CR1), exact micro panel, errors."""
from __future__ import annotations

import warnings

import numpy as np
import pandas as pd
import pytest

import evalkit as ek
from evalkit.errors import DataError, SpecificationError

pytestmark = [pytest.mark.filterwarnings("ignore::evalkit.errors.SingletonWarning"),
              pytest.mark.filterwarnings("ignore::evalkit.errors.FewClustersWarning")]


def _panel(seed=0, n=120, T=6, drop=0.0, weights=False):
    rng = np.random.default_rng(seed)
    g = rng.choice([0, 3, 4, 5], size=n, p=[0.3, 0.25, 0.25, 0.2])
    ids = np.repeat(np.arange(n), T)
    t = np.tile(np.arange(1, T + 1), n)
    gi = np.repeat(g, T)
    x = rng.normal(size=n * T)
    y = (np.repeat(rng.normal(size=n), T) + 0.3 * t + 0.5 * x
         + np.where((gi > 0) & (t >= gi), 1.0 + 0.4 * (t - gi) + 0.2 * gi, 0.0) + rng.normal(size=n * T))
    df = pd.DataFrame({"id": ids, "t": t, "g": gi, "y": y, "x": x, "w": np.repeat(rng.uniform(0.5, 2, n), T)})
    if drop:
        df = df.loc[rng.random(len(df)) >= drop].reset_index(drop=True)
    return df


def _dummy_regression(df, weights=None, covariates=("x",)):
    """Independent implementation: full dummy design, lstsq, hand CR1 (fixest K), explicit IW weights."""
    g = df["g"].to_numpy(float)
    tr = g > 0
    e = np.where(tr, df["t"] - g, 0).astype(int)
    cell = tr & (e != -1)
    pairs = sorted(set(zip(g[cell], e[cell])))
    D = np.column_stack([(cell & (g == a) & (e == b)).astype(float) for a, b in pairs])
    U = pd.get_dummies(df["id"]).to_numpy(float)
    Tm = pd.get_dummies(df["t"]).to_numpy(float)[:, 1:]
    Xc = df[list(covariates)].to_numpy(float) if covariates else np.empty((len(df), 0))
    Z = np.column_stack([D, Xc, U, Tm])
    w = np.ones(len(df)) if weights is None else df[weights].to_numpy(float)
    sw = np.sqrt(w)
    beta = np.linalg.lstsq(Z * sw[:, None], df["y"].to_numpy() * sw, rcond=None)[0]
    resid = df["y"].to_numpy() - Z @ beta
    bread = np.linalg.pinv((Z * w[:, None]).T @ Z)
    cl = df["id"].to_numpy()
    G = np.unique(cl).size
    scores = np.zeros((G, Z.shape[1]))
    np.add.at(scores, pd.factorize(cl)[0], Z * (w * resid)[:, None])
    n, k = len(df), D.shape[1] + Xc.shape[1]
    Kfix = k + df["t"].nunique()  # fixest: regressors + non-nested FE levels (time), unit FE nested in the cluster
    V = bread @ scores.T @ scores @ bread * G / (G - 1) * (n - 1) / (n - Kfix)
    nD = D.shape[1]
    bD, VD = beta[:nD], V[:nD, :nD]
    n_cell = np.array([w[(cell & (g == a) & (e == b))].sum() for a, b in pairs])
    ev = sorted({b for _, b in pairs})
    Wm = np.array([[n_cell[j] / n_cell[[i for i, p in enumerate(pairs) if p[1] == k]].sum() if pairs[j][1] == k else 0.0
                    for j in range(nD)] for k in ev])
    post = np.array([p[1] >= 0 for p in pairs])
    w0 = np.where(post, n_cell, 0) / n_cell[post].sum()
    Wm = np.vstack([w0, Wm])
    return Wm @ bD, Wm @ VD @ Wm.T, bD, VD


@pytest.mark.parametrize("drop,weights", [(0.0, None), (0.15, "w")])
def test_matches_independent_dummy_regression(drop, weights):
    df = _panel(seed=3, drop=drop)
    res = ek.staggered.sun_abraham(df, outcome="y", unit="id", time="t", cohort="g", covariates=["x"], weights=weights)
    est, V, bD, VD = _dummy_regression(df, weights=weights)
    np.testing.assert_allclose(res.to_frame()["estimate"], est, rtol=1e-9, atol=1e-11)
    np.testing.assert_allclose(res.vcov, V, rtol=1e-9, atol=1e-14)
    np.testing.assert_allclose(res.cohort_frame()["estimate"], bD, rtol=1e-9, atol=1e-11)
    np.testing.assert_allclose(res.extra["coef_vcov"], VD, rtol=1e-9, atol=1e-14)


def test_equals_callaway_santanna_universal_base_on_mpdta():
    """Never-treated controls, no covariates, balanced: CATT(g,e) = CS ATT(g,g+e) with base g-1; IW = dynamic."""
    df = ek.datasets.load_mpdta()
    sa = ek.staggered.sun_abraham(df, outcome="lemp", unit="countyreal", time="year", cohort="first.treat")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        cs = ek.staggered.att_gt(df, outcome="lemp", unit="countyreal", time="year", cohort="first.treat",
                                 base_period="universal", n_boot=0)
    dyn = cs.aggregate("dynamic").event_frame()
    dyn = dyn[dyn["std_error"].notna()]
    fr = sa.to_frame().iloc[1:]
    np.testing.assert_array_equal(fr["event_time"].to_numpy(int), dyn["event_time"].to_numpy(int))
    np.testing.assert_allclose(fr["estimate"].to_numpy(), dyn["estimate"].to_numpy(), atol=1e-9)
    csf = cs.to_frame()
    csf = csf[csf["std_error"].notna()]
    cf = sa.cohort_frame()
    merged = cf.merge(csf, left_on=["cohort", "event_time"], right_on=["cohort", "event_time"])
    assert len(merged) == len(cf)
    np.testing.assert_allclose(merged["estimate_x"], merged["estimate_y"], atol=1e-9)
    assert sa.estimate == pytest.approx(cs.aggregate("simple").estimate, abs=1e-9)  # -0.0399513
    assert sa.estimate == pytest.approx(-0.0399513, abs=5e-8)


def test_micro_panel_exact_and_last_control():
    rows = []
    cohort = {0: 2, 1: 2, 2: 3, 3: 3, 4: 4, 5: 4}
    for i in range(9):
        for t in range(5):
            g = cohort.get(i)
            y = 10.0 * i + 2.0 * t + t * t + (3.0 + (t - g) if g is not None and t >= g else 0.0)
            rows.append((i, t, g if g is not None else np.nan, y))
    df = pd.DataFrame(rows, columns=["id", "t", "g", "y"])
    res = ek.staggered.sun_abraham(df, outcome="y", unit="id", time="t", cohort="g")
    fr = res.to_frame().set_index("term")
    for k in range(3):
        assert fr.loc[f"e={k}", "estimate"] == pytest.approx(3.0 + k, abs=1e-9)
    assert fr.loc["e=-2", "estimate"] == pytest.approx(0.0, abs=1e-9)
    dfl = df[df["g"].notna()]
    with pytest.warns(ek.errors.DroppedRowsWarning, match="last-treated"):
        rl = ek.staggered.sun_abraham(dfl, outcome="y", unit="id", time="t", cohort="g", control="last")
    assert rl.to_frame().set_index("term").loc["e=0", "estimate"] == pytest.approx(3.0, abs=1e-9)
    assert any("last-treated" in d.reason for d in rl.sample.dropped)


def test_with_vcov_pretrend_plot_errors():
    import matplotlib

    matplotlib.use("Agg")
    df = _panel(seed=5)
    res = ek.staggered.sun_abraham(df, outcome="y", unit="id", time="t", cohort="g")
    r2 = res.with_vcov("CR2")
    np.testing.assert_allclose(r2.to_frame()["estimate"], res.to_frame()["estimate"])
    assert not np.allclose(r2.to_frame()["std_error"], res.to_frame()["std_error"])
    pt = res.pretrend_test
    assert pt["df_num"] == int((res.to_frame()["event_time"] < 0).sum()) and 0 <= pt["p_value"] <= 1
    ax = res.plot()
    assert ax is not None and "e=-1" not in res.to_frame()["term"].tolist()
    with pytest.raises(SpecificationError, match="wild"):
        ek.staggered.sun_abraham(df, outcome="y", unit="id", time="t", cohort="g", vcov="wild")
    with pytest.raises(DataError, match="no never-treated units"):
        ek.staggered.sun_abraham(df[df["g"] > 0], outcome="y", unit="id", time="t", cohort="g")
