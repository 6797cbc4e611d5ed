"""relative_effect computes its delta-method SEs with the base result's covariance type and labels them.

Independent reference: the effect and the denominator are linear in y, beta = a'y and mean = b'y, with a
from the explicit dummy-variable regression; their joint covariance is written from the observation-level
influence functions (a_i e_i, b_i (y_i - mean)) or, for iid, from sigma^2 * sum a_i b_i / w_i.
"""
import warnings

import numpy as np
import pandas as pd
import pytest

import evalkit as ek


def _panel(seed=6, n_units=150, T=6, n_orgs=30, drop=0.2):
    rng = np.random.default_rng(seed)
    u = np.repeat(np.arange(n_units), T)
    t = np.tile(np.arange(T), n_units)
    org = (np.arange(n_units) % n_orgs)[u]
    coh = rng.choice([2, 3, 4, 99], size=n_units)[u]
    d = ((coh != 99) & (t >= coh)).astype(int)
    y = 10 + rng.normal(size=n_units)[u] + 0.2 * t + 1.5 * d + 0.5 * rng.normal(size=n_orgs * T)[org * T + t] \
        + rng.normal(size=u.size)
    df = pd.DataFrame({"unit": u, "t": 2000 + t, "d": d, "y": y, "org": org,
                       "wu": rng.uniform(0.5, 2.0, n_units)[u]})
    keep = rng.random(u.size) > drop
    keep[t == 0] = True
    return df[keep].reset_index(drop=True)


def _reference(df, weights=None):
    """Linear weights a (effect), b (pre-mean), residuals, rank of the dummy regression."""
    X = np.column_stack([df["d"].to_numpy(float), pd.get_dummies(df["unit"]).to_numpy(float),
                         pd.get_dummies(df["t"]).to_numpy(float)[:, 1:]])
    y = df["y"].to_numpy(float)
    w = np.ones(len(df)) if weights is None else df[weights].to_numpy(float)
    M = np.linalg.pinv(X.T @ (X * w[:, None]))
    beta = M @ (X.T @ (w * y))
    e = y - X @ beta
    a = w * (X @ M[:, 0])
    ever = df.groupby("unit")["d"].transform("max").to_numpy() == 1
    rows = ever & (df["d"].to_numpy() == 0)
    b = np.where(rows, w, 0.0) / w[rows].sum()
    mean = float(b @ y)
    return beta[0], a, b, e, y, mean, w, np.linalg.matrix_rank(X)


def _cluster_meat(P, codes):
    S = pd.DataFrame(P).groupby(np.asarray(codes)).sum().to_numpy()
    return S.T @ S


def _expected(df, vcov, cluster, weights=None):
    b0, a, b, e, y, mean, w, rank = _reference(df, weights)
    n = len(df)
    P = np.column_stack([a * e, b * (y - mean)])
    if vcov == "iid":
        L = np.column_stack([a, b])
        V = (w * e * e).sum() / (n - rank) * (L.T @ (L / w[:, None]))
    elif vcov == "HC1":
        V = P.T @ P * n / (n - rank)
    elif isinstance(cluster, list):  # two-way CR1: unit nested in org, t in t -> K = 1 regressor + 1
        ga, gb = df[cluster[0]].to_numpy(), df[cluster[1]].to_numpy()
        Gmin = min(len(np.unique(ga)), len(np.unique(gb)))
        V = (_cluster_meat(P, ga) + _cluster_meat(P, gb) - _cluster_meat(P, ga * 10_000 + gb)) \
            * Gmin / (Gmin - 1) * (n - 1) / (n - 2)
    else:  # CR0 / CR1 by org: unit FE nested (fixest keeps one level): K = 1 + T
        g = df[cluster].to_numpy()
        G = len(np.unique(g))
        K = 1 + df["t"].nunique()
        V = _cluster_meat(P, g) * ((G / (G - 1) * (n - 1) / (n - K)) if vcov == "CR1" else 1.0)
    grad = 100 * np.array([1 / mean, -b0 / mean**2])
    return V, float(np.sqrt(grad @ V @ grad))


@pytest.mark.parametrize("vcov,cluster,weights", [
    ("iid", "org", None), ("iid", "org", "wu"), ("HC1", "org", None), ("HC1", "org", "wu"),
    ("CR0", "org", None), ("CR1", "org", "wu"), ("CR1", ["org", "t"], None),
])
def test_relative_effect_uses_the_base_covariance(vcov, cluster, weights):
    df = _panel()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        res = ek.did.twfe(df, outcome="y", unit="unit", time="t", treatment="d", cluster=cluster, vcov=vcov,
                          weights=weights)
    rel = ek.did.relative_effect(res)
    fr = rel.to_frame().set_index("term")
    V, se_pct = _expected(df, vcov, cluster, weights)
    assert fr.loc["effect", "std_error"] == pytest.approx(res.std_error, rel=1e-9)
    assert fr.loc["denominator (pre_mean)", "std_error"] == pytest.approx(np.sqrt(V[1, 1]), rel=1e-8)
    assert fr.loc["effect_percent", "std_error"] == pytest.approx(se_pct, rel=1e-8)
    c, cb = rel.conventions, res.conventions
    assert (c.vcov_type, c.cluster, c.n_clusters, c.df, c.distribution, c.small_sample) == \
        (cb.vcov_type, cb.cluster, cb.n_clusters, cb.df, cb.distribution, cb.small_sample)
    assert f"joint {vcov} covariance" in c.notes[0]


def test_relative_effect_follows_with_vcov_ssc():
    df = _panel()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        res = ek.did.twfe(df, outcome="y", unit="unit", time="t", treatment="d", cluster="org")
    full = res.with_vcov("CR1", ssc=ek.inference.ssc(k_fixef="full"))
    rel = ek.did.relative_effect(full)
    assert rel.to_frame()["std_error"].iloc[0] == pytest.approx(full.std_error, rel=1e-10)
    assert full.std_error > res.std_error * 1.05
    assert rel.conventions.small_sample == full.conventions.small_sample
    assert "every fixed-effect level" in rel.conventions.small_sample


@pytest.mark.parametrize("vcov", ["CR2", "wild"])
def test_relative_effect_without_a_delta_method_analogue_is_labelled_cr1(vcov):
    df = _panel()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        res = ek.did.twfe(df, outcome="y", unit="unit", time="t", treatment="d", cluster="org", vcov=vcov,
                          weights="wu", seed=1, n_boot=99)
        cr1 = res.with_vcov("CR1")
    rel = ek.did.relative_effect(res)
    _, se_pct = _expected(df, "CR1", "org", "wu")
    fr = rel.to_frame().set_index("term")
    assert fr.loc["effect", "std_error"] == pytest.approx(cr1.std_error, rel=1e-9)
    assert fr.loc["effect_percent", "std_error"] == pytest.approx(se_pct, rel=1e-8)
    c = rel.conventions
    assert c.vcov_type == "CR1" and c.cluster == ("org",) and c.df == cr1.conventions.df
    assert c.distribution == cr1.conventions.distribution and c.seed is None
    assert any(("CR2" if vcov == "CR2" else "wild cluster bootstrap") in n for n in c.notes)


def _by_cohort_panel():
    df = _panel()
    first = df[df["d"] == 1].groupby("unit")["t"].min()
    df["cohort"] = df["unit"].map(first).fillna(0).astype(int)
    return df


@pytest.mark.parametrize("term", [0, 1, 2, "d[cohort=2004]"])
@pytest.mark.parametrize("denominator", ["pre_mean", "counterfactual_mean"])
def test_relative_effect_of_each_by_term(term, denominator):
    df = _by_cohort_panel()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        res = ek.did.twfe(df, outcome="y", unit="unit", time="t", treatment="d", cluster="org", by="cohort")
    terms = list(res.table["term"])
    assert len(terms) >= 3
    name = term if isinstance(term, str) else terms[term]
    j = terms.index(name)
    rel = ek.did.relative_effect(res, denominator=denominator, term=term)
    fr = rel.to_frame().set_index("term")
    # independent reference: explicit dummy regression with one treatment column per cohort
    levels = sorted(df.loc[df["d"] == 1, "cohort"].unique())
    D = np.column_stack([((df["d"] == 1) & (df["cohort"] == c)).to_numpy(float) for c in levels])
    X = np.column_stack([D, pd.get_dummies(df["unit"]).to_numpy(float), pd.get_dummies(df["t"]).to_numpy(float)[:, 1:]])
    y = df["y"].to_numpy(float)
    M = np.linalg.pinv(X.T @ X)
    beta = M @ (X.T @ y)
    e = y - X @ beta
    a = X @ M[:, j]
    in_term = (df["cohort"] == levels[j]).to_numpy()
    rows = in_term & (df["d"] == 0).to_numpy() if denominator == "pre_mean" else D[:, j] == 1
    b = rows / rows.sum()
    mean = float(b @ y)
    P = np.column_stack([a * e, b * (y - mean)])
    g = df["org"].to_numpy()
    G, n, K = len(np.unique(g)), len(df), len(levels) + df["t"].nunique()
    V = _cluster_meat(P, g) * G / (G - 1) * (n - 1) / (n - K)
    b0 = beta[j]
    den, gden = (mean, np.array([0.0, 1.0])) if denominator == "pre_mean" else (mean - b0, np.array([-1.0, 1.0]))
    grad = 100 * (np.array([1.0, 0.0]) / den - b0 * gden / den**2)
    assert fr.loc["effect", "estimate"] == pytest.approx(res.table["estimate"].iloc[j], rel=1e-9)
    assert fr.loc["effect", "std_error"] == pytest.approx(res.table["std_error"].iloc[j], rel=1e-9)
    assert fr.loc["effect_percent", "estimate"] == pytest.approx(100 * b0 / den, rel=1e-8)
    assert fr.loc["effect_percent", "std_error"] == pytest.approx(float(np.sqrt(grad @ V @ grad)), rel=1e-8)
    assert any(repr(name) in n for n in rel.conventions.notes)


def test_relative_effect_default_term_is_the_first_and_is_stated():
    df = _by_cohort_panel()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        res = ek.did.twfe(df, outcome="y", unit="unit", time="t", treatment="d", cluster="org", by="cohort")
    rel = ek.did.relative_effect(res)
    first = res.table["term"].iloc[0]
    assert rel.to_frame()["estimate"].iloc[0] == pytest.approx(res.table["estimate"].iloc[0])
    assert any(f"{first!r} (the first; pass term= for another)" in n for n in rel.conventions.notes)


@pytest.mark.parametrize("term", ["nope", 9, -1, 1.5, True])
def test_relative_effect_bad_term(term):
    df = _by_cohort_panel()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        res = ek.did.twfe(df, outcome="y", unit="unit", time="t", treatment="d", cluster="org", by="cohort")
    with pytest.raises(ek.errors.SpecificationError, match="'term'"):
        ek.did.relative_effect(res, term=term)
