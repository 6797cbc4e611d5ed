"""K with three or more fixed effects: fixest's count for CR1, the exact rank for iid/HC1 (as lm)."""
import importlib
import warnings

import numpy as np
import pandas as pd
import pytest

import evalkit as ek
from evalkit.inference.absorb import FixedEffects, fe_rank

absorb_mod = importlib.import_module("evalkit.inference.absorb")


def _panel(seed=1, n_units=80, T=6, n_orgs=12, drop=0.25):
    rng = np.random.default_rng(seed)
    u = np.repeat(np.arange(n_units), T)
    t = np.tile(np.arange(T), n_units)
    org = (np.arange(n_units) % n_orgs)[u]
    coh = rng.choice([2, 3, 4, 99], size=n_units)[u]
    d = ((coh != 99) & (t >= coh)).astype(int)
    x = rng.normal(size=u.size) + 0.1 * t
    y = (0.5 * rng.normal(size=n_units)[u] + 0.2 * t + 1.5 * d + 0.3 * x
         + 0.4 * rng.normal(size=n_orgs * T)[org * T + t] + rng.normal(size=u.size))
    df = pd.DataFrame({"unit": [f"m{i:04d}" for i in u], "t": 2000 + t, "d": d, "x": x, "y": y,
                       "org": [f"o{k}" for k in org], "region": org % 3})
    keep = rng.random(u.size) > drop
    keep[t == 0] = True
    df = df[keep].reset_index(drop=True)
    df["orgyear"] = df["org"] + "_" + df["t"].astype(str)
    return df


def _dummies(df, cols):
    return np.column_stack([pd.get_dummies(df[c].astype(str)).to_numpy(float) for c in cols])


def _codes(df, cols):
    return FixedEffects(tuple(pd.factorize(df[c])[0].astype(np.int64) for c in cols), tuple(cols))


@pytest.mark.parametrize("cols", [["unit", "t", "orgyear"], ["unit", "t", "region"], ["unit", "t"],
                                  ["t", "orgyear", "region", "unit"], ["org", "region"], ["unit"]])
def test_fe_rank_equals_the_rank_of_the_dummies(cols):
    df = _panel()
    assert fe_rank(_codes(df, cols)) == np.linalg.matrix_rank(_dummies(df, cols))


def test_fe_rank_two_disconnected_effects_counts_components():
    a = np.array([0, 0, 1, 1, 2, 2, 3])
    b = np.array([0, 1, 0, 1, 2, 3, 3])  # {a0,a1,b0,b1} and {a2,a3,b2,b3}: two components
    fe = FixedEffects((a, b), ("a", "b"))
    D = np.column_stack([np.eye(4)[a], np.eye(4)[b]])
    assert fe_rank(fe) == np.linalg.matrix_rank(D) == 6


def _lm(df, fes, weights=None):
    """Dummy-variable OLS with lm's K (the rank), iid and HC1 standard errors of d and x."""
    X = np.column_stack([df[["d", "x"]].to_numpy(float), _dummies(df, fes)])
    y = df["y"].to_numpy(float)
    n = len(y)
    beta = np.linalg.lstsq(X, y, rcond=None)[0]
    e = y - X @ beta
    rank = np.linalg.matrix_rank(X)
    bread = np.linalg.pinv(X.T @ X)
    iid = np.sqrt(np.diag(bread) * (e @ e) / (n - rank))[:2]
    S = X * e[:, None]
    hc1 = np.sqrt(np.diag(bread @ S.T @ S @ bread) * n / (n - rank))[:2]
    return beta[:2], iid, hc1, rank


@pytest.mark.parametrize("extra", ["orgyear", "region"])
def test_iid_and_hc1_use_the_exact_rank_with_three_effects(extra):
    df = _panel()
    fes = ["unit", "t", extra]
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        res = ek.did.twfe(df, outcome="y", unit="unit", time="t", treatment="d", covariates=["x"], cluster="org",
                          fixed_effects=fes)
        iid, hc1 = res.with_vcov("iid"), res.with_vcov("HC1")
    beta, se_iid, se_hc1, rank = _lm(df, fes)
    np.testing.assert_allclose(res.to_frame()["estimate"], beta, atol=1e-9)
    np.testing.assert_allclose(iid.to_frame()["std_error"], se_iid, rtol=1e-8)
    np.testing.assert_allclose(hc1.to_frame()["std_error"], se_hc1, rtol=1e-8)
    count = sum(df[c].nunique() for c in fes) - 2
    assert rank < 2 + count  # the design overlaps beyond fixest's count
    assert f"K={rank}" in iid.conventions.vcov_description and "exact rank" in iid.conventions.vcov_description
    assert f"is {count}" in iid.conventions.vcov_description
    # CR1 keeps fixest's count (default fixef.force_exact=FALSE) and the conventions say so
    fit = res.extra["_context"].fit
    assert fit.k_all == 2 + count
    assert any("R fixest does by default" in n and f"= {count}" in n for n in res.conventions.notes)
    assert any("R fixest does by default" in n for n in iid.conventions.notes)


def test_redundant_effect_constant_within_unit_leaves_iid_unchanged():
    df = _panel(3)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        r3 = ek.did.twfe(df, outcome="y", unit="unit", time="t", treatment="d", cluster="unit",
                         fixed_effects=["unit", "t", "region"])
        r2 = ek.did.twfe(df, outcome="y", unit="unit", time="t", treatment="d", cluster="unit")
        for v in ("iid", "HC1"):
            assert r3.with_vcov(v).std_error == pytest.approx(r2.with_vcov(v).std_error, rel=1e-8)
    assert r3.estimate == pytest.approx(r2.estimate, rel=1e-9)
    # CR1: region (3 levels) is not nested in the unit clusters, so fixest counts 2 more parameters
    n = r2.nobs
    K2 = r2.extra["_vcov"].K
    assert r3.extra["_vcov"].K == K2 + 2
    assert r3.std_error == pytest.approx(r2.std_error * np.sqrt((n - K2) / (n - K2 - 2)), rel=1e-8)


def test_rank_not_computed_falls_back_to_fixest_count_and_says_so(monkeypatch):
    df = _panel()
    monkeypatch.setattr(absorb_mod, "MAX_RANK_DENSE", 5)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        res = ek.did.twfe(df, outcome="y", unit="unit", time="t", treatment="d", cluster="org",
                          fixed_effects=["unit", "t", "orgyear"])
        iid = res.with_vcov("iid")
    count = sum(df[c].nunique() for c in ["unit", "t", "orgyear"]) - 2
    assert iid.extra["_vcov"].K == 1 + count
    assert "upper bound" in iid.conventions.vcov_description
