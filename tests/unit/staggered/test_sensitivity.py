"""Unit tests of evalkit.staggered.honest_sensitivity / honest_bounds: structure, M = 0 limits,
Monte Carlo coverage under a planted linear pre-trend (coefficient-level draws), errors, plot.
The ARP / C-LF relative-magnitudes test: test_sensitivity_arp.py."""
from __future__ import annotations

import warnings

import numpy as np
import pytest

import evalkit as ek
from evalkit.errors import SpecificationError


def _sigma(k=7, rho=0.4, s=0.01):
    i = np.arange(k)
    return s * s * rho ** np.abs(i[:, None] - i[None, :])


def test_flci_m0_removes_linear_trend_and_widens_with_m():
    Sig = _sigma()
    beta = np.array([-0.04, -0.03, -0.02, -0.01, 0.01, 0.02, 0.03])  # exactly linear (slope .01, ref e=-1), tau = 0
    r = ek.staggered.honest_bounds(beta, Sig, 4, method="smoothness", M=[0, 0.005, 0.01])
    fr = r.to_frame()
    lo, hi = fr.loc[0, ["conf_low", "conf_high"]]
    assert lo < 0 < hi and abs((lo + hi) / 2) < 1e-10  # trend extrapolated away: centred at tau = 0
    assert (np.diff(fr["conf_high"] - fr["conf_low"]) > 0).all()


def test_relative_magnitude_zero_is_original():
    Sig = _sigma()
    beta = np.array([0.001, -0.002, 0.0, 0.001, 0.04, 0.05, 0.06])
    r = ek.staggered.honest_bounds(beta, Sig, 4, method="relative_magnitude", M=[0, 1, 2], target="average post",
                                   rm_method="projection")
    fr = r.to_frame()
    np.testing.assert_allclose(fr.loc[0, ["conf_low", "conf_high"]].to_numpy(float), r.original)
    assert (np.diff(fr["conf_high"]) > 0).all() and (np.diff(fr["conf_low"]) < 0).all()
    # default C-LF hybrid: at Mbar = 0 close to (not equal to) the original CI (size (alpha-kappa)/(1-kappa) stage)
    h = ek.staggered.honest_bounds(beta, Sig, 4, method="relative_magnitude", M=[0, 1, 2], target="average post")
    fh = h.to_frame()
    assert (fh["method"] == "C-LF").all()
    np.testing.assert_allclose(fh.loc[0, ["conf_low", "conf_high"]].to_numpy(float), h.original,
                               atol=0.1 * Sig[0, 0] ** 0.5)
    assert (np.diff(fh["conf_high"]) > 0).all() and (np.diff(fh["conf_low"]) < 0).all()


@pytest.mark.montecarlo
def test_coverage_under_planted_linear_pretrend():
    """beta_hat ~ N(tau + slope * (e + 1), Sigma): Delta^SD(0) and Delta^RM(1) contain the linear violation."""
    rng = np.random.default_rng(11)
    Sig = _sigma()
    e = np.array([-5, -4, -3, -2, 0, 1, 2])
    tau = np.array([0, 0, 0, 0, 0.03, 0.04, 0.05])
    mean = tau + 0.025 * (e + 1)
    Lc = np.linalg.cholesky(Sig)
    R = 300
    cov_sd = cov_rm = cov_naive = 0
    for _ in range(R):
        b = mean + Lc @ rng.standard_normal(7)
        sd = ek.staggered.honest_bounds(b, Sig, 4, method="smoothness", M=[0]).to_frame().iloc[0]
        rm = ek.staggered.honest_bounds(b, Sig, 4, method="relative_magnitude", M=[1],
                                        rm_method="projection").to_frame().iloc[0]
        cov_sd += sd["conf_low"] <= 0.03 <= sd["conf_high"]
        cov_rm += rm["conf_low"] <= 0.03 <= rm["conf_high"]
        lo, hi = ek.staggered.honest_bounds(b, Sig, 4, method="smoothness", M=[0]).original
        cov_naive += lo <= 0.03 <= hi
    tol = 3 * np.sqrt(0.95 * 0.05 / R)
    assert abs(cov_sd / R - 0.95) < tol  # FLCI at M=0 is exact under a linear trend
    assert cov_rm / R >= 0.95 - tol  # projection: conservative (C-LF: tests/montecarlo/test_honest_montecarlo.py)
    assert cov_naive / R < 0.6  # the unadjusted CI fails


def test_from_results_and_errors():
    import matplotlib

    matplotlib.use("Agg")
    df = ek.datasets.load_mpdta()
    sa = ek.staggered.sun_abraham(df, outcome="lemp", unit="countyreal", time="year", cohort="first.treat")
    r1 = ek.staggered.honest_sensitivity(sa, method="smoothness", M=[0, 0.01])
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        cs = ek.staggered.att_gt(df, outcome="lemp", unit="countyreal", time="year", cohort="first.treat",
                                 base_period="universal", n_boot=0)
        csv = ek.staggered.att_gt(df, outcome="lemp", unit="countyreal", time="year", cohort="first.treat", n_boot=0)
    r2 = ek.staggered.honest_sensitivity(cs.aggregate("dynamic"), method="relative_magnitude", M=[1])
    assert r1.estimate == pytest.approx(r2.estimate, abs=1e-9)  # SA = CS on mpdta (e = 0)
    assert r1.plot() is not None
    with pytest.raises(SpecificationError, match="universal"):
        ek.staggered.honest_sensitivity(csv.aggregate("dynamic"))
    with pytest.raises(SpecificationError, match="method"):
        ek.staggered.honest_sensitivity(sa, method="bogus")
    with pytest.raises(SpecificationError, match="entries"):
        ek.staggered.honest_bounds(np.zeros(4), np.eye(4), 2, target=[1.0])


def test_reference_read_from_result_and_reported():
    """The omitted event time comes from the result (anticipation shifts it); the note names it."""
    m = ek.datasets.load_mpdta()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        a = ek.staggered.att_gt(m, outcome="lemp", unit="countyreal", time="year", cohort="first.treat",
                                base_period="universal", anticipation=1, n_boot=0).aggregate("dynamic")
    r = ek.staggered.honest_sensitivity(a, M=[0.0], rm_method="projection")
    fr = a.to_frame().set_index("event_time")
    assert r.estimate == pytest.approx(float(fr.loc[-1, "estimate"]), abs=1e-15)  # first after the reference -2
    assert r.notes[0].startswith("Reference event time -2") and "e = [-1]" in r.notes[0]
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        u = ek.staggered.att_gt(m, outcome="lemp", unit="countyreal", time="year", cohort="first.treat",
                                base_period="universal", n_boot=0).aggregate("dynamic")
    r0 = ek.staggered.honest_sensitivity(u, M=[0.0], target="average post", rm_method="projection")
    assert r0.notes[0].startswith("Reference event time -1") and "e = [0, 1, 2, 3]" in r0.notes[0]
    with pytest.raises(SpecificationError, match="not all zero"):
        ek.staggered.honest_sensitivity(u, target=[0, 0, 0, 0])
