"""Wild cluster bootstrap (WCR) against a brute-force refit of the dummy-variable regression.

With G = 8 clusters and Rademacher weights every one of the 2^8 sign patterns is enumerated,
so the bootstrap p-value is deterministic and must equal, exactly, the share of brute-force
refits (one OLS with explicit unit and period dummies per pattern) whose |t*| is at least |t|.
"""
import itertools
import warnings

import numpy as np
import pandas as pd
import pytest

import evalkit as ek
from evalkit.did._engine import _fit_in_hat_space
from evalkit.inference.vcov import wild_cluster_bootstrap


def _small_panel(seed=3, G=8, units_per=5, T=5, effect=0.4):
    rng = np.random.default_rng(seed)
    n_units = G * units_per
    u = np.repeat(np.arange(n_units), T)
    t = np.tile(np.arange(T), n_units)
    cl = u // units_per
    treated_cluster = cl < 3
    d = (treated_cluster & (t >= 3)).astype(float)
    x = rng.normal(size=u.size)
    y = rng.normal(size=n_units)[u] + 0.1 * t + effect * d + 0.5 * x + rng.normal(size=u.size) + rng.normal(size=G)[cl]
    return pd.DataFrame({"unit": u, "t": t, "cl": cl, "d": d, "x": x, "y": y})


def _brute_force_p(df, null):
    U = pd.get_dummies(df["unit"]).to_numpy(float)
    Tm = pd.get_dummies(df["t"]).to_numpy(float)[:, 1:]
    X = np.column_stack([df[["d", "x"]].to_numpy(float), U, Tm])
    y = df["y"].to_numpy(float)
    cl = df["cl"].to_numpy()
    G = cl.max() + 1
    pinv = np.linalg.pinv(X)
    bread = np.linalg.pinv(X.T @ X)

    def t_stat(yy, b0):
        b = pinv @ yy
        e = yy - X @ b
        S = np.array([X[cl == g].T @ e[cl == g] for g in range(G)])
        V = bread @ S.T @ S @ bread  # any constant factor cancels in the comparison
        return (b[0] - b0) / np.sqrt(V[0, 0])

    t_obs = t_stat(y, null)
    Xr = X[:, 1:]
    yr = y - null * X[:, 0]
    br = np.linalg.lstsq(Xr, yr, rcond=None)[0]
    fitted = Xr @ br + null * X[:, 0]
    er = yr - Xr @ br
    hits = 0
    patterns = list(itertools.product((1.0, -1.0), repeat=G))
    for v in patterns:
        ystar = fitted + np.asarray(v)[cl] * er
        hits += abs(t_stat(ystar, null)) >= abs(t_obs) - 1e-12
    return hits / len(patterns)


@pytest.fixture(scope="module")
def panel():
    return _small_panel()


def _fit(df, **kw):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return ek.did.twfe(df, outcome="y", unit="unit", time="t", treatment="d", covariates=["x"], cluster="cl", **kw)


@pytest.mark.parametrize("null", [0.0, 0.7])
def test_enumerated_rademacher_equals_brute_force(panel, null):
    res = _fit(panel)
    ctx = res.extra["_context"]
    b = wild_cluster_bootstrap(_fit_in_hat_space(ctx), ctx.clusters[:, 0], 0, n_boot=999, null=null)
    assert b["enumerated"] and b["n_boot"] == 256
    assert b["p_value"] == pytest.approx(_brute_force_p(panel, null), abs=1e-12)


def test_wild_result_reports_cr1_se_and_bootstrap_p(panel):
    res = _fit(panel, vcov="wild", seed=1)
    cr1 = _fit(panel, vcov="CR1")
    assert res.std_error == pytest.approx(cr1.std_error, rel=1e-12)
    assert res.statistic == pytest.approx(cr1.statistic, rel=1e-12)
    assert res.p_value == pytest.approx(_brute_force_p(panel, 0.0), abs=1e-12)
    assert "wild cluster bootstrap" in res.vcov_type and "CR1" in res.vcov_type and "test inversion" in res.vcov_type


def test_confidence_interval_inverts_the_test(panel):
    res = _fit(panel, vcov="wild", seed=1)
    lo, hi = res.to_frame().loc[0, ["conf_low", "conf_high"]]
    assert lo < res.estimate < hi
    eps = 1e-4 * res.std_error + 1e-6
    for end, inside in ((lo, lo + eps), (hi, hi - eps)):
        outside = end + (end - inside)
        assert _brute_force_p(panel, inside) > 0.05
        assert _brute_force_p(panel, outside) <= 0.05


def test_webb_weights_are_seeded(panel):
    a = _fit(panel, vcov="wild", seed=7, boot_weights="webb", n_boot=499)
    b = _fit(panel, vcov="wild", seed=7, boot_weights="webb", n_boot=499)
    c = _fit(panel, vcov="wild", seed=8, boot_weights="webb", n_boot=499)
    assert a.p_value == b.p_value
    assert a.to_frame().equals(b.to_frame())
    assert 0 < a.p_value < 1 and abs(a.p_value - c.p_value) < 0.1


def test_rademacher_with_many_clusters_draws_randomly():
    df = _small_panel(G=14)
    a = _fit(df, vcov="wild", seed=1, n_boot=199)
    assert a.extra["wild"]["d"]["enumerated"] is False and a.extra["wild"]["d"]["n_boot"] == 199
