"""Unit tests of the ARP conditional / conditional-least-favourable (C-LF) relative-magnitudes CI of
evalkit.staggered.honest_bounds (rm_method="hybrid" default, "conditional"): the dual-vertex LP value
against HiGHS, the conditioning bounds against a brute-force LP scan, the one-post-period case against an
independent no-nuisance ARP test (HonestDiD's ``.testInIdentifiedSet``), exact limits, determinism, errors.
"""
from __future__ import annotations

import numpy as np
import pytest
from scipy import optimize, stats

import evalkit as ek
from evalkit.errors import SpecificationError
from evalkit.staggered import sensitivity as S


def _sigma(k, rho=0.4, s=0.01):
    i = np.arange(k)
    return s * s * rho ** np.abs(i[:, None] - i[None, :])


def _lp_eta(y, X, sd):
    """min eta s.t. y - X nu <= eta sd (HiGHS)."""
    k = X.shape[1]
    res = optimize.linprog(np.r_[1.0, np.zeros(k)], A_ub=-np.column_stack([sd, X]), b_ub=-y,
                           bounds=[(None, None)] * (k + 1), method="highs",
                           options={"primal_feasibility_tolerance": 1e-10, "dual_feasibility_tolerance": 1e-10})
    assert res.status == 0
    return res.fun


@pytest.mark.parametrize("n_pre,n_post,mbar,l_vec",
                         [(3, 3, 1.3, None), (4, 2, 0.5, [0.5, 0.5]), (2, 4, 2.0, [0, 1, 0, 1])])
def test_dual_vertices_reproduce_lp_value(n_pre, n_post, mbar, l_vec):
    rng = np.random.default_rng(3)
    l_vec = np.eye(n_post)[0] if l_vec is None else np.asarray(l_vec, float)
    sig = _sigma(n_pre + n_post)
    for A in S._rm_polyhedra(n_pre, n_post, mbar)[:3]:
        comp = S._arp_component(A, sig, n_pre, l_vec, np.zeros((5, n_pre + n_post)), 0.005)
        for _ in range(20):
            beta = rng.normal(0, 0.02, n_pre + n_post)
            theta = rng.normal(0, 0.03)
            eta = (comp["H"] @ beta - comp["c"] * theta).max()
            y = A @ beta - comp["a"] * theta
            assert eta == pytest.approx(_lp_eta(y, comp["X"], comp["sd"]), abs=1e-10)


def test_conditioning_bounds_match_lp_scan():
    """[vlo, vup] is where the optimal dual vertex stays optimal along y = s + b c (ARP Appendix D)."""
    rng = np.random.default_rng(5)
    n_pre, n_post = 3, 3
    sig = _sigma(6)
    A = S._rm_polyhedra(n_pre, n_post, 1.0)[1]
    comp = S._arp_component(A, sig, n_pre, np.full(3, 1 / 3), np.zeros((5, 6)), 0.005)
    SigY = A @ sig @ A.T
    checked = 0
    for _ in range(30):
        beta = rng.normal(0, 0.02, 6)
        theta = np.array([rng.normal(0, 0.02)])
        eta, s2, vlo, vup = (v[0] for v in S._arp_stats(comp, beta, theta))
        y = A @ beta - comp["a"] * theta[0]
        g = comp["G"][np.argmax(comp["H"] @ beta - comp["c"] * theta[0])]
        b = SigY @ g / (g @ SigY @ g)
        s = y - b * (g @ y)
        assert g @ y == pytest.approx(eta, abs=1e-12) and g @ SigY @ g == pytest.approx(s2, rel=1e-9)
        for v, inside_side in ((vlo, 1), (vup, -1)):
            if not np.isfinite(v):
                continue
            eps = 1e-4 * max(1.0, abs(v))
            if np.isfinite(vup - vlo) and vup - vlo < 4 * eps:
                continue
            on = _lp_eta(s + b * (v + inside_side * eps), comp["X"], comp["sd"])
            off = _lp_eta(s + b * (v - inside_side * eps), comp["X"], comp["sd"])
            assert on == pytest.approx(v + inside_side * eps, abs=1e-9)  # vertex still optimal
            assert off > v - inside_side * eps + 1e-8  # another vertex takes over
            checked += 1
    assert checked > 10


def _noNuis_arp_accept(beta, sig, n_pre, mbar, theta, alpha):
    """Independent one-post-period ARP conditional test (HonestDiD .testInIdentifiedSet), union over (s, sign)."""
    acc = False
    for A in S._rm_polyhedra(n_pre, 1, mbar):
        y = beta.copy()
        y[n_pre] -= theta
        sdv = np.sqrt(np.diag(A @ sig @ A.T))
        At = A / sdv[:, None]
        mom = At @ y
        j = int(np.argmax(mom))
        gam = At[j]
        Abar = At - At[j][None, :]
        sb2 = gam @ sig @ gam
        c = sig @ gam / sb2
        z = y - c * (gam @ y)
        Ac, Az = Abar @ c, Abar @ z
        with np.errstate(divide="ignore", invalid="ignore"):
            r = -Az / Ac
        vlo = np.max(r[Ac < -1e-12], initial=-np.inf)
        vup = np.min(r[Ac > 1e-12], initial=np.inf)
        sb = np.sqrt(sb2)
        cv = max(0.0, sb * stats.truncnorm.ppf(1 - alpha, vlo / sb, vup / sb))
        acc |= not (mom[j] > cv)
    return acc


def test_one_post_period_matches_independent_no_nuisance_test():
    rng = np.random.default_rng(8)
    sig = _sigma(4)
    beta = np.array([0.004, -0.006, 0.003, 0.05]) + rng.normal(0, 0.002, 4)
    r = ek.staggered.honest_bounds(beta, sig, 3, M=[0.7], rm_method="conditional").to_frame().iloc[0]
    grid = np.linspace(r["conf_low"] - 0.01, r["conf_high"] + 0.01, 301)
    ref = np.array([_noNuis_arp_accept(beta, sig, 3, 0.7, t, 0.05) for t in grid])
    assert ref.any()
    lo, hi = grid[ref].min(), grid[ref].max()
    step = grid[1] - grid[0]
    assert lo - step <= r["conf_low"] <= lo + 1e-9 and hi - 1e-9 <= r["conf_high"] <= hi + step


def test_conditional_at_mbar_zero_is_original_ci():
    """Mbar = 0 pins delta_post = 0: the paired one-sided moments give vlo = 0, a half-normal cut-off."""
    sig = _sigma(7)
    beta = np.array([0.001, -0.002, 0.0, 0.001, 0.04, 0.05, 0.06])
    for tgt in ("first post", "average post"):
        r = ek.staggered.honest_bounds(beta, sig, 4, M=[0], rm_method="conditional", target=tgt)
        np.testing.assert_allclose(r.to_frame().loc[0, ["conf_low", "conf_high"]].to_numpy(float), r.original,
                                   atol=1e-7)


def test_tiny_noise_recovers_identified_set():
    """With negligible sampling noise the CI is the identified set l'beta_post +- Mbar kappa max|f_pre|."""
    beta = np.array([0.01, -0.01, 0.005, 0.02, 0.05])  # pre first differences -.02, .015, -.005: max .02
    sig = 1e-14 * np.eye(5)
    f = np.r_[np.diff(beta[:3]), -beta[2]]  # pre first differences incl. the step into the reference
    for m in (0.5, 1.0, 2.0):
        fr = ek.staggered.honest_bounds(beta, sig, 3, M=[m]).to_frame().iloc[0]
        half = m * np.abs(f).max()
        assert fr["conf_low"] == pytest.approx(beta[3] - half, abs=1e-5)
        assert fr["conf_high"] == pytest.approx(beta[3] + half, abs=1e-5)


def test_widening_shorter_than_projection_and_deterministic():
    sig = _sigma(8)
    beta = np.array([0.004, -0.006, 0.003, 0.002, 0.03, 0.035, 0.04, 0.05])
    Ms = [0.5, 1, 1.5, 2]
    hyb = ek.staggered.honest_bounds(beta, sig, 4, M=Ms).to_frame()
    proj = ek.staggered.honest_bounds(beta, sig, 4, M=Ms, rm_method="projection").to_frame()
    assert (hyb["method"] == "C-LF").all() and (proj["method"] == "projection box").all()
    assert (np.diff(hyb["conf_high"]) > 0).all() and (np.diff(hyb["conf_low"]) < 0).all()
    assert ((hyb["conf_high"] - hyb["conf_low"]) < (proj["conf_high"] - proj["conf_low"])).all()
    assert ((hyb["conf_low"] < 0.03) & (hyb["conf_high"] > 0.03)).all()
    again = ek.staggered.honest_bounds(beta, sig, 4, M=Ms).to_frame()
    cols = ["conf_low", "conf_high"]
    np.testing.assert_array_equal(again[cols].to_numpy(), hyb[cols].to_numpy())
    other = ek.staggered.honest_bounds(beta, sig, 4, M=Ms, seed=7).to_frame()  # LF critical value re-simulated
    np.testing.assert_allclose(other[["conf_low", "conf_high"]].to_numpy(), hyb[["conf_low", "conf_high"]].to_numpy(),
                               atol=5e-4)


def test_arp_errors():
    with pytest.raises(SpecificationError, match="rm_method"):
        ek.staggered.honest_bounds(np.zeros(4), np.eye(4), 2, rm_method="bogus")
    with pytest.raises(SpecificationError, match="at most"):
        ek.staggered.honest_bounds(np.zeros(11), np.eye(11), 2, M=[1])
    r = ek.staggered.honest_bounds(np.zeros(11), 1e-4 * np.eye(11), 2, M=[1], rm_method="projection")
    assert np.isfinite(r.to_frame()["conf_low"]).all()


def test_truncnorm_ppf_matches_scipy():
    rng = np.random.default_rng(0)
    a = np.r_[rng.normal(0, 3, 500), -np.inf, -np.inf, 5.0, 30.0, -30.0, 0.0]
    b = np.r_[a[:500] + np.abs(rng.normal(0, 3, 500)), np.inf, 1.0, np.inf, np.inf, -29.0, np.inf]
    for p in (0.95, 0.9548, 0.5, 0.01):
        np.testing.assert_allclose(S._truncnorm_ppf(p, a, b), stats.truncnorm.ppf(p, a, b), atol=1e-10)
    assert S._truncnorm_ppf(0.95, np.array([2.0]), np.array([2.0]))[0] == 2.0  # point mass (scipy: nan)


@pytest.mark.parametrize("rm_method", ["hybrid", "conditional"])
def test_intervals_scale_with_the_outcome_units(rm_method):
    """(c beta, c^2 Sigma) gives c times the interval: the dual-vertex enumeration is unit-free.

    Before the fix, the sd column (outcome units) and the unitless nuisance columns shared one
    determinant tolerance: dollars-scale SEs dropped valid vertices (intervals of +-inf or a crash).
    """
    rng = np.random.default_rng(0)
    k, n_pre = 11, 4
    B = rng.normal(size=(k, k))
    sig = B @ B.T / k
    beta = rng.normal(0, 1, k) + np.r_[np.zeros(n_pre), np.linspace(1, 3, k - n_pre)]
    ref = ek.staggered.honest_bounds(beta, sig, n_pre, M=[1.0], target="average post",
                                     rm_method=rm_method).to_frame()[["conf_low", "conf_high"]].to_numpy()
    assert np.isfinite(ref).all()
    for c in (1e-5, 30.0, 1e5):
        got = ek.staggered.honest_bounds(beta * c, sig * c * c, n_pre, M=[1.0], target="average post",
                                         rm_method=rm_method).to_frame()[["conf_low", "conf_high"]].to_numpy()
        np.testing.assert_allclose(got / c, ref, rtol=1e-6)
