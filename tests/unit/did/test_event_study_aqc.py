"""Event study and AQC outputs: exact algebra against independent computations."""
import warnings

import matplotlib

matplotlib.use("Agg")

import numpy as np
import pandas as pd
import pytest

import evalkit as ek
from evalkit.errors import StaggeredTimingWarning


@pytest.fixture(scope="module")
def mpdta():
    df = ek.datasets.load_mpdta()
    df["d"] = ((df["first.treat"] > 0) & (df["year"] >= df["first.treat"])).astype(int)
    return df


@pytest.fixture(scope="module")
def aqc():
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return ek.datasets.simulate_aqc(seed=3, n_members=2500, n_orgs=40)


def _dummy_event_study(df):
    e = np.where(df["first.treat"] > 0, df["year"] - df["first.treat"], -99)
    cols = [k for k in range(-4, 4) if k != -1]
    D = np.column_stack([(e == k) for k in cols]).astype(float)
    U = pd.get_dummies(df["countyreal"]).to_numpy(float)
    Tm = pd.get_dummies(df["year"]).to_numpy(float)[:, 1:]
    X = np.column_stack([D, U, Tm])
    y = df["lemp"].to_numpy()
    b = np.linalg.lstsq(X, y, rcond=None)[0]
    res = y - X @ b
    bread = np.linalg.pinv(X.T @ X)
    g = df["countyreal"].to_numpy()
    S = pd.DataFrame(X * res[:, None]).groupby(g).sum().to_numpy()
    V = bread @ S.T @ S @ bread
    n, G = len(df), len(np.unique(g))
    V *= G / (G - 1) * (n - 1) / (n - (len(cols) + 5))  # K = 7 leads/lags + 5 year levels (fixest: county FE nested)
    return cols, b[: len(cols)], V[: len(cols), : len(cols)]


def test_event_study_equals_dummy_regression(mpdta):
    with pytest.warns(StaggeredTimingWarning, match="Sun & Abraham"):
        es = ek.did.event_study(mpdta, outcome="lemp", unit="countyreal", time="year", cohort="first.treat")
    cols, b, V = _dummy_event_study(mpdta)
    fr = es.to_frame()
    assert fr["event_time"].tolist() == cols
    np.testing.assert_allclose(fr["estimate"], b, atol=1e-10)
    np.testing.assert_allclose(fr["std_error"], np.sqrt(np.diag(V)), rtol=1e-9)
    # joint pre-trend Wald test: F = b' V^-1 b / q against F(q, G-1)
    from scipy import stats

    lead = [i for i, k in enumerate(cols) if k < 0]
    W = b[lead] @ np.linalg.solve(V[np.ix_(lead, lead)], b[lead]) / len(lead)
    pt = es.pretrend_test
    assert pt["statistic"] == pytest.approx(W, rel=1e-8)
    assert pt["p_value"] == pytest.approx(stats.f.sf(W, len(lead), 499), rel=1e-8)
    assert "Pre-trend test" in str(es.summary())


def test_event_study_binning_and_window(mpdta):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        es = ek.did.event_study(mpdta, outcome="lemp", unit="countyreal", time="year", cohort="first.treat", leads=2, lags=1)
        dropped = ek.did.event_study(mpdta, outcome="lemp", unit="countyreal", time="year", cohort="first.treat",
                                     leads=2, lags=1, bin_endpoints=False)
    assert es.to_frame()["term"].tolist() == ["e<=-2", "e=0", "e>=1"]
    assert dropped.sample.dropped and dropped.sample.dropped[-1].reason == "event times outside the window"
    assert dropped.nobs == len(mpdta) - dropped.sample.dropped[-1].n_rows
    with pytest.raises(ek.SpecificationError, match="outside the event window"):
        ek.did.event_study(mpdta, outcome="lemp", unit="countyreal", time="year", cohort="first.treat", reference=-3, leads=2)


def test_event_study_plot_returns_axes(mpdta):
    import matplotlib.pyplot as plt

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        es = ek.did.event_study(mpdta, outcome="lemp", unit="countyreal", time="year", cohort="first.treat")
    ax = es.plot()
    assert ax is not None and len(ax.get_lines()) >= 1
    ef = es.event_frame()
    assert ef.loc[ef["event_time"] == -1, "estimate"].item() == 0.0
    plt.close("all")


def test_categories_add_up_and_joint_cov_matches_single_fits(aqc):
    df, _ = aqc
    cats = ["spend_inpatient", "spend_outpatient", "spend_professional", "spend_imaging", "spend_pharmacy"]
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        mr = ek.did.twfe_multi(df, outcomes=["spending"] + cats, unit="member_id", time="quarter", treatment="aqc",
                               cluster="org_id", covariates=["age", "female"])
        singles = [ek.did.twfe(df, outcome=o, unit="member_id", time="quarter", treatment="aqc", cluster="org_id",
                               covariates=["age", "female"], check_bad_controls=False) for o in ["spending"] + cats]
    est = mr.to_frame()["estimate"].to_numpy()
    # categories sum to the total, so do their effects (linear estimator, same sample)
    assert est[1:].sum() == pytest.approx(est[0], rel=1e-9)
    np.testing.assert_allclose(est, [s.estimate for s in singles], rtol=1e-10)
    np.testing.assert_allclose(np.sqrt(np.diag(mr.vcov)), [s.std_error for s in singles], rtol=1e-9)
    # the variance of the total equals the variance of the sum of the category effects
    ones = np.ones(len(cats))
    assert ones @ mr.vcov[1:, 1:] @ ones == pytest.approx(mr.vcov[0, 0], rel=1e-8)


def test_price_utilization_split(aqc):
    df, truth = aqc
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        pu = ek.did.price_utilization(df, actual="spending", standardized="spending_std", unit="member_id",
                                      time="quarter", treatment="aqc", cluster="org_id")
    fr = pu.to_frame().set_index("term")
    assert fr.loc["price", "estimate"] == pytest.approx(fr.loc["total", "estimate"] - fr.loc["utilization", "estimate"])
    assert fr.loc["utilization_share", "estimate"] + fr.loc["price_share", "estimate"] == pytest.approx(1.0)
    # delta method for the difference: Var(a - b) = Va + Vb - 2 Cab from the joint covariance
    V = pu.extra["joint"].vcov
    assert fr.loc["price", "std_error"] == pytest.approx(np.sqrt(V[0, 0] + V[1, 1] - 2 * V[0, 1]), rel=1e-10)
    assert fr.loc["utilization_share", "std_error"] > 0


def test_relative_effect_delta_method(mpdta):
    df = mpdta.assign(emp=np.exp(mpdta["lemp"]))
    res = ek.did.twfe(df, outcome="emp", unit="countyreal", time="year", treatment="d")
    rel = ek.did.relative_effect(res, "pre_mean").to_frame().set_index("term")
    ever = df.groupby("countyreal")["d"].transform("max") == 1
    pre = df[ever & (df.d == 0)]
    m = pre["emp"].mean()
    assert rel.loc["denominator (pre_mean)", "estimate"] == pytest.approx(m, rel=1e-12)
    assert rel.loc["effect_percent", "estimate"] == pytest.approx(100 * res.estimate / m, rel=1e-12)
    # independent influence functions: the county-level sums of the mean's and the slope's scores
    G, n = 500, len(df)
    psi_m = ((pre["emp"] - m) / len(pre)).groupby(pre["countyreal"]).sum().reindex(df["countyreal"].unique(), fill_value=0)
    ctx = res.extra["_context"]
    xr = ctx.fit.X[:, 0]
    psi_b = pd.Series(xr * ctx.fit.resid / (xr @ xr)).groupby(df["countyreal"].to_numpy()).sum().reindex(psi_m.index)
    fac = G / (G - 1) * (n - 1) / (n - 6)
    P = np.column_stack([psi_b, psi_m])
    V = fac * P.T @ P
    grad = 100 * np.array([1 / m, -res.estimate / m**2])
    assert rel.loc["effect_percent", "std_error"] == pytest.approx(np.sqrt(grad @ V @ grad), rel=1e-9)
    assert rel.loc["effect", "std_error"] == pytest.approx(res.std_error, rel=1e-10)


def test_quality_effects_in_percentage_points(aqc):
    df, truth = aqc
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        q = ek.did.quality_effects(df, measures=["hba1c_test", "crc_screen"], unit="member_id", time="quarter",
                                   treatment="aqc", cluster="org_id")
        sub = df[df["crc_screen"].notna()]
        one = ek.did.twfe(sub, outcome="crc_screen", unit="member_id", time="quarter", treatment="aqc", cluster="org_id")
    fr = q.to_frame().set_index("term")
    assert fr.loc["crc_screen", "estimate"] == pytest.approx(100 * one.estimate, rel=1e-12)
    assert fr.loc["crc_screen", "std_error"] == pytest.approx(100 * one.std_error, rel=1e-12)
    assert {r.reason for r in q.sample.dropped} >= {"not eligible for 'crc_screen' (missing)"}
    assert 0 < fr.loc["crc_screen", "baseline_rate"] < 100


def test_propensity_weights_odds_and_errors(aqc):
    df, _ = aqc
    df = df.assign(group=df["contract"].astype(int), baseline=df["year"] < 2009)
    with pytest.raises(ek.DataError, match="have no baseline rows"):
        ek.did.propensity_weights(df, unit="member_id", group="group", covariates=["age", "risk_score"], baseline="baseline")
    pw = ek.did.propensity_weights(df, unit="member_id", group="group", covariates=["age", "risk_score"],
                                   baseline="baseline", no_baseline="drop")
    assert pw.n_units_without_baseline > 0
    units = pw.pscore.index
    p = pw.pscore
    w_unit = df.groupby("member_id")["group"].first().reindex(units)
    ctrl = w_unit == 0
    odds = (p / (1 - p))[ctrl]
    row_w = pw.weights.groupby(df["member_id"]).first().reindex(units)
    np.testing.assert_allclose(row_w[ctrl], odds * ctrl.sum() / odds.sum(), rtol=1e-10)
    assert (row_w[~ctrl] == 1).all()
    with pytest.raises(ek.DataError, match="constant within unit"):
        ek.did.propensity_weights(df, unit="member_id", group="aqc", covariates=["age"])
    df2 = df.assign(sep=df["group"] * 10.0 + 1.0)
    with pytest.raises(ek.DataError, match="separate"):
        ek.did.propensity_weights(df2, unit="member_id", group="group", covariates=["sep"], baseline="baseline",
                                  no_baseline="drop")
    # the weights feed twfe, which drops the zero-weight rows and records them
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        res = ek.did.twfe(df.assign(w=pw.weights), outcome="spending", unit="member_id", time="quarter",
                          treatment="aqc", cluster="org_id", weights="w")
    assert any(r.reason == "zero weight" for r in res.sample.dropped)
