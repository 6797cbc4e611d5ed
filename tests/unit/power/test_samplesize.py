"""Unit tests of evalkit.power.n_for_disparity: inversion of power_disparity, limits, impossible targets."""
import math

import pytest
from scipy import stats

import evalkit as ek
from evalkit.errors import SpecificationError

P = (0.708, 0.638)


def test_total_inverts_power_disparity():
    r = ek.power.n_for_disparity(*P, reduction=0.5, shares=(0.8, 0.2), rho=0.5)
    assert (r.n_reference, r.n_minority) == (math.ceil(0.8 * r.n_exact), math.ceil(0.2 * r.n_exact))
    at = ek.power.power_disparity(0.8 * r.n_exact, 0.2 * r.n_exact, *P, reduction=0.5, rho=0.5).power
    assert at == pytest.approx(0.8, abs=1e-8)
    assert r.power >= 0.8
    below = ek.power.power_disparity(0.8 * (r.n_exact - 5), 0.2 * (r.n_exact - 5), *P, reduction=0.5, rho=0.5).power
    assert below < 0.8


def test_per_group_closed_form_null_variance():
    # equal groups, iid, null variance: n = (z_{1-a/2} + z_pow)^2 (s_R^2 + s_M^2)(1/m+1/r)(1-rho) / delta^2 (one tail)
    s2 = P[0] * (1 - P[0]) + P[1] * (1 - P[1])
    delta = 0.5 * (P[0] - P[1])
    r = ek.power.n_for_disparity(*P, reduction=0.5, solve_for="per_group", rho=0.3, variance="null",
                                 alternative="larger")
    n = (stats.norm.isf(0.05) + stats.norm.ppf(0.8)) ** 2 * s2 * 2 * 0.7 / delta**2
    assert r.n_exact == pytest.approx(n, rel=1e-6)


def test_imputed_race_scales_n_by_one_over_lambda():
    a = ek.power.n_for_disparity(*P, reduction=0.5, shares=(0.8, 0.2), rho=0.5)
    b = ek.power.n_for_disparity(*P, reduction=0.5, shares=(0.8, 0.2), rho=0.5, race_accuracy=0.8, variance="null")
    a0 = ek.power.n_for_disparity(*P, reduction=0.5, shares=(0.8, 0.2), rho=0.5, variance="null")
    lam = (1 - 0.2 * 0.2 / 0.8) + 0.8 - 1
    assert b.n_exact == pytest.approx(a0.n_exact / lam, rel=1e-6)
    assert a.n_total < b.n_total


def test_fixed_practices_limit_and_feasible():
    kw = dict(solve_for="per_group", rho=0.5, icc=0.05, practice_persistence=0.0, variance="null")
    r = ek.power.n_for_disparity(*P, reduction=0.5, n_practices=(400, 400), **kw)
    # limit: variance -> sum_g ICC sigma_g^2 (1/m+1/r) / G_g (rho_c = 0)
    v_inf = 0.05 * 2 * (P[0] * (1 - P[0]) + P[1] * (1 - P[1])) / 400
    z = stats.norm.isf(0.025)
    lim = stats.norm.sf(z - 0.035 / math.sqrt(v_inf)) + stats.norm.cdf(-z - 0.035 / math.sqrt(v_inf))
    assert r.power_limit == pytest.approx(lim, rel=1e-6)
    assert r.cluster_sizes == pytest.approx((r.n_reference / 400, r.n_minority / 400))
    with pytest.raises(SpecificationError, match=r"Impossible target: power 0\.8 is never reached\. As the patients per group "
                       r"grow without bound the power tends to 0\.08\d+ because with \(10, 10\) practices fixed"):
        ek.power.n_for_disparity(*P, reduction=0.5, n_practices=(10, 10), **kw)


@pytest.mark.parametrize("kwargs, match", [
    (dict(solve_for="reference", n_minority=800, rho=0.5), r"tends to 0\.52\d+ because the minority group's size is fixed"),
    (dict(solve_for="per_group", power=0.02), r"power=0\.02 is already reached at n=0: .* Ask for power > 0\.025"),
    (dict(solve_for="per_group", reduction=None, change=0.0), r"never reached.*tends to 0\.0500 because the target change 0 pp"),
    (dict(solve_for="per_group", reduction=None, change=-0.02, alternative="larger"), r"direction the larger test does not detect"),
    (dict(solve_for="total"), r"solve_for='total' needs shares"),
    (dict(shares=(0.8, 0.4)), r"Group shares sum to 1\.2 > 1"),
    (dict(shares=(1.0, 0.0)), r"both groups need patients"),
    (dict(solve_for="minority"), r"solve_for='minority' needs the fixed n_reference"),
    (dict(solve_for="per_group", reduction=None), r"Give exactly one of 'reduction'"),
    (dict(solve_for="per_group", reduction=0.01, max_n=1000), r"needs more than max_n=1000 patients per group"),
    (dict(solve_for="per_group", reduction=20.0), r"Impossible target: reduction=20 of the gap puts the minority"),
])
def test_impossible_and_bad_targets(kwargs, match):
    k = dict(reduction=0.5)
    k.update(kwargs)
    with pytest.raises(SpecificationError, match=match):
        ek.power.n_for_disparity(*P, **k)


def test_small_target_met_at_smallest_design_and_t():
    r = ek.power.n_for_disparity(*P, reduction=0.5, solve_for="per_group", power=0.03)
    assert (r.n_reference, r.n_minority) == (1, 1) and "smallest feasible design" in r.notes[1]
    t = ek.power.n_for_disparity(*P, reduction=0.5, solve_for="per_group", cluster_size=20, rho=0.5, icc=0.05,
                                 distribution="t")
    z = ek.power.n_for_disparity(*P, reduction=0.5, solve_for="per_group", cluster_size=20, rho=0.5, icc=0.05)
    assert t.n_exact > z.n_exact and t.power >= 0.8
