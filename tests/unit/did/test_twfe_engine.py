"""TWFE engine against an independent dummy-variable OLS (numpy lstsq on explicit dummies).

These checks are exact algebra (tolerance 1e-9): absorbed fixed effects must give the
dummy-variable coefficients and residuals on unbalanced, weighted panels, and the cluster-robust
variances must equal the textbook sandwich on the dummy regression with the stated K.
"""
import warnings

import numpy as np
import pandas as pd
import pytest

import evalkit as ek
from evalkit.errors import EstimationError, InferenceWarning, SpecificationError


def _panel(seed=0, n_units=120, T=6, drop=0.2, n_clusters=15):
    rng = np.random.default_rng(seed)
    u = np.repeat(np.arange(n_units), T)
    t = np.tile(np.arange(T), n_units)
    cohort = rng.choice([3, 4, 99], size=n_units, p=[0.3, 0.3, 0.4])[u]
    d = ((cohort != 99) & (t >= cohort)).astype(int)
    x = rng.normal(size=u.size) + 0.1 * t
    y = 0.5 * u / n_units + 0.2 * t + 1.5 * d + 0.3 * x + rng.normal(size=u.size)
    df = pd.DataFrame({"unit": [f"m{i:04d}" for i in u], "t": 2000 + t, "d": d, "x": x, "y": y,
                       "w": rng.uniform(0.5, 2.0, u.size), "org": u % n_clusters})
    keep = rng.random(u.size) > drop
    keep[(t == 0)] = True  # every period present; units still churn
    return df[keep].reset_index(drop=True)


def _dummy_ols(df, weights=None):
    U = pd.get_dummies(df["unit"]).to_numpy(float)
    Tm = pd.get_dummies(df["t"]).to_numpy(float)[:, 1:]
    X = np.column_stack([df[["d", "x"]].to_numpy(float), U, Tm])
    y = df["y"].to_numpy(float)
    sw = np.ones(len(df)) if weights is None else np.sqrt(df[weights].to_numpy(float))
    beta, *_ = np.linalg.lstsq(X * sw[:, None], y * sw, rcond=None)
    e = y - X @ beta
    return X, beta, e


@pytest.mark.parametrize("weights", [None, "w"])
def test_absorbed_equals_dummy_ols_unbalanced(weights):
    df = _panel()
    res = ek.did.twfe(df, outcome="y", unit="unit", time="t", treatment="d", covariates=["x"], weights=weights)
    X, beta, e = _dummy_ols(df, weights)
    np.testing.assert_allclose(res.to_frame()["estimate"], beta[:2], rtol=0, atol=1e-9)
    fit = res.extra["_context"].fit
    np.testing.assert_allclose(fit.resid, e, atol=1e-9)


@pytest.mark.parametrize("weights", [None, "w"])
def test_cr1_equals_sandwich_on_dummy_regression(weights):
    df = _panel(1)
    res = ek.did.twfe(df, outcome="y", unit="unit", time="t", treatment="d", covariates=["x"], cluster="org", weights=weights)
    X, beta, e = _dummy_ols(df, weights)
    w = np.ones(len(df)) if weights is None else df[weights].to_numpy(float)
    bread = np.linalg.pinv(X.T @ (X * w[:, None]))
    g = df["org"].to_numpy()
    G = len(np.unique(g))
    S = np.array([X[g == c].T @ (w[g == c] * e[g == c]) for c in np.unique(g)])
    V0 = bread @ S.T @ S @ bread
    n = len(df)
    # units are nested in org clusters: fixest counts K = 2 regressors + (T) period levels
    K = 2 + df["t"].nunique()
    V1 = V0 * G / (G - 1) * (n - 1) / (n - K)
    np.testing.assert_allclose(res.to_frame()["std_error"], np.sqrt(np.diag(V1))[:2], rtol=1e-9)
    assert res.conventions.df == G - 1
    # every dummy counted (statsmodels / lm convention)
    r_full = res.with_vcov("CR1", ssc=ek.inference.ssc(k_fixef="full"))
    K_all = np.linalg.matrix_rank(X)
    np.testing.assert_allclose(r_full.std_error, np.sqrt(V0[0, 0] * G / (G - 1) * (n - 1) / (n - K_all)), rtol=1e-9)


def test_hc1_and_iid_against_dummy_regression():
    df = _panel(2)
    X, beta, e = _dummy_ols(df)
    n, K = X.shape[0], np.linalg.matrix_rank(X)
    bread = np.linalg.pinv(X.T @ X)
    with pytest.warns(InferenceWarning, match="cluster on the unit"):
        hc1 = ek.did.twfe(df, outcome="y", unit="unit", time="t", treatment="d", covariates=["x"], vcov="HC1")
    V = bread @ (X * e[:, None] ** 2).T @ X @ bread * n / (n - K)
    np.testing.assert_allclose(hc1.std_error, np.sqrt(V[0, 0]), rtol=1e-9)
    iid = hc1.with_vcov("iid")
    np.testing.assert_allclose(iid.std_error, np.sqrt(e @ e / (n - K) * bread[0, 0]), rtol=1e-9)
    assert iid.conventions.df == n - K


def test_two_way_clustering_matches_cgm_formula():
    df = _panel(3)
    res = ek.did.twfe(df, outcome="y", unit="unit", time="t", treatment="d", covariates=["x"], cluster=["org", "t"])
    X, beta, e = _dummy_ols(df)
    bread = np.linalg.pinv(X.T @ X)

    def meat(codes):
        S = np.array([X[codes == c].T @ e[codes == c] for c in np.unique(codes)])
        return S.T @ S

    a, b = df["org"].to_numpy(), df["t"].to_numpy()
    ab = a * 10_000 + b
    Gmin = min(len(np.unique(a)), len(np.unique(b)))
    n = len(df)
    K = 2 + 0  # unit FE nested in org and period FE nested in t: neither counted (fixest "nonnested")
    V = bread @ (meat(a) + meat(b) - meat(ab)) @ bread * Gmin / (Gmin - 1) * (n - 1) / (n - K - 1)
    # K above: fixest keeps one level of each nested effect -> 2 regressors + 1
    np.testing.assert_allclose(res.std_error, np.sqrt(V[0, 0]), rtol=1e-9)
    assert res.conventions.df == Gmin - 1


def test_three_fixed_effects_use_alternating_projections():
    df = _panel(4)
    res = ek.did.twfe(df, outcome="y", unit="unit", time="t", treatment="d", covariates=["x"],
                      fixed_effects=("unit", "time", "org"))
    assert res.conventions.absorb_method == "alternating projections"
    X, beta, e = _dummy_ols(df)  # org is nested in unit: same model
    np.testing.assert_allclose(res.estimate, beta[0], atol=1e-9)


def test_by_cohort_splits_the_effect():
    df = _panel(5)
    first = df[df.d == 1].groupby("unit")["t"].min()
    df["entry"] = df["unit"].map(first).fillna(0).astype(int)
    res = ek.did.twfe(df, outcome="y", unit="unit", time="t", treatment="d", covariates=["x"], by="entry")
    terms = res.to_frame()["term"].tolist()
    levels = sorted(df.loc[df.d == 1, "entry"].unique())
    assert terms[: len(levels)] == [f"d[entry={g}]" for g in levels]
    # dummy-variable check of the split
    U = pd.get_dummies(df["unit"]).to_numpy(float)
    Tm = pd.get_dummies(df["t"]).to_numpy(float)[:, 1:]
    D = np.column_stack([(df.d == 1) & (df.entry == g) for g in levels]).astype(float)
    X = np.column_stack([D, df[["x"]].to_numpy(float), U, Tm])
    beta = np.linalg.lstsq(X, df["y"].to_numpy(float), rcond=None)[0]
    np.testing.assert_allclose(res.to_frame()["estimate"][: len(levels)], beta[: len(levels)], atol=1e-9)


def test_treatment_collinear_with_fixed_effects_is_a_clear_error():
    df = _panel(6)
    df["d_time"] = (df["t"] >= 2003).astype(int)  # every unit switches on in the same period
    with pytest.raises(ek.DataError, match="collinear with time"):
        ek.did.twfe(df, outcome="y", unit="unit", time="t", treatment="d_time")
    # a fixed effect that absorbs the treatment: caught at estimation, not a LinAlgError
    df["cell"] = df["d"]
    with pytest.raises(EstimationError, match="'d' is collinear with the fixed effects"):
        ek.did.twfe(df, outcome="y", unit="unit", time="t", treatment="d", fixed_effects=("unit", "time", "cell"))
    df["x2"] = 2 * df["x"]
    with pytest.raises(EstimationError, match="collinear after absorbing"):
        ek.did.twfe(df, outcome="y", unit="unit", time="t", treatment="d", covariates=["x", "x2"])


def test_covariate_absorbed_by_unit_effects_is_dropped_with_a_warning():
    from evalkit.errors import CollinearityWarning

    df = _panel(6)
    df["female"] = (df["unit"].str[-1].astype(int) % 2).astype(int)  # constant within unit
    with pytest.warns(CollinearityWarning, match=r"\['female'\].*removed"):
        res = ek.did.twfe(df, outcome="y", unit="unit", time="t", treatment="d", covariates=["x", "female"])
    assert res.to_frame()["term"].tolist() == ["d", "x"]
    ref = ek.did.twfe(df, outcome="y", unit="unit", time="t", treatment="d", covariates=["x"])
    assert res.estimate == pytest.approx(ref.estimate, rel=1e-12)
    assert res.std_error == pytest.approx(ref.std_error, rel=1e-12)


def test_all_treated_or_no_variation_is_a_clear_error():
    df = _panel(7)
    with pytest.raises(ek.DataError, match="no untreated observations"):
        ek.did.twfe(df.assign(d=1), outcome="y", unit="unit", time="t", treatment="d")
    with pytest.raises(ek.DataError, match="no treated observations"):
        ek.did.twfe(df.assign(d=0), outcome="y", unit="unit", time="t", treatment="d")


def test_bad_vcov_name():
    df = _panel(8)
    with pytest.raises(SpecificationError, match="'vcov' parameter of twfe must be one of"):
        ek.did.twfe(df, outcome="y", unit="unit", time="t", treatment="d", vcov="robust")


def test_result_is_immutable_and_tidy():
    df = _panel(9)
    res = ek.did.twfe(df, outcome="y", unit="unit", time="t", treatment="d")
    fr = res.to_frame()
    assert list(fr.columns[:7]) == ["term", "estimate", "std_error", "statistic", "p_value", "conf_low", "conf_high"]
    fr.loc[0, "estimate"] = 99
    assert res.estimate != 99
    with pytest.raises(Exception):
        res.vcov[0, 0] = 1.0
    with pytest.raises(Exception):
        res.table = None  # frozen dataclass
    ci = res.conf_int(0.9)
    assert ci.loc["d", "conf_low"] > fr.loc[0, "conf_low"] - 100  # finite
    assert "CR1" in res.vcov_type and "G/(G-1)" in res.vcov_type
    text = str(res.summary())
    assert "clustered on the unit" in text and "Observations" in text


def test_no_rows_dropped_silently_with_dropna():
    df = _panel(10)
    df.loc[[3, 7, 11], "x"] = np.nan
    with pytest.raises(ek.DataError, match="3 of"):
        ek.did.twfe(df, outcome="y", unit="unit", time="t", treatment="d", covariates=["x"])
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        res = ek.did.twfe(df, outcome="y", unit="unit", time="t", treatment="d", covariates=["x"], dropna=True)
    assert res.nobs == len(df) - 3
    assert res.sample.dropped[0].n_rows == 3


def test_did_2x2_matches_interaction_regression():
    rng = np.random.default_rng(11)
    n = 400
    df = pd.DataFrame({"grp": rng.integers(0, 2, n), "yr": rng.choice([1978, 1981], n), "x": rng.normal(size=n)})
    df["y"] = 1 + 0.5 * df.grp + 0.3 * (df.yr == 1981) + 2.0 * df.grp * (df.yr == 1981) + 0.4 * df.x + rng.normal(size=n)
    res = ek.did.did_2x2(df, outcome="y", group="grp", time="yr", covariates=["x"])
    X = np.column_stack([np.ones(n), df.grp, df.yr == 1981, df.grp * (df.yr == 1981), df.x]).astype(float)
    y = df.y.to_numpy()
    b = np.linalg.lstsq(X, y, rcond=None)[0]
    e = y - X @ b
    bread = np.linalg.inv(X.T @ X)
    V = bread @ (X * e[:, None] ** 2).T @ X @ bread * n / (n - 5)
    np.testing.assert_allclose(res.estimate, b[3], atol=1e-10)
    np.testing.assert_allclose(res.std_error, np.sqrt(V[3, 3]), rtol=1e-9)


def test_by_terms_on_few_treated_clusters_warn():
    df = ek.datasets.simulate_aqc(seed=1, n_members=1500).data
    with pytest.warns(ek.FewClustersWarning, match=r"effect terms rest on fewer than 10 treated clusters of 'org_id'"):
        res = ek.did.twfe(df, outcome="spending", unit="member_id", time="quarter", treatment="aqc",
                          cluster="org_id", by="entry_year")
    assert any("under-cover" in n for n in res.conventions.notes)
