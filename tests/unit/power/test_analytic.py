"""Unit tests of evalkit.power.analytic: hand-computed variances, orientation, options, errors."""
import math

import numpy as np
import pytest
from scipy import stats

import evalkit.power as pw
from evalkit.errors import SpecificationError

Z = stats.norm.isf(0.025) + stats.norm.ppf(0.8)


def test_simple_did_variance_by_hand():
    # one pre, one post, no correlation: each group's change has variance 2 p(1-p)/n
    v = pw.disparity_variance(4000, 1000, 0.708, 0.638)
    assert v == pytest.approx(2 * 0.708 * 0.292 / 4000 + 2 * 0.638 * 0.362 / 1000, rel=1e-12)
    r = pw.mde_disparity(4000, 1000, 0.708, 0.638)
    assert r.mde == pytest.approx(Z * math.sqrt(v), rel=1e-5)  # two-sided: far tail counted (~1e-6)
    assert r.mde_pp == pytest.approx(100 * r.mde)
    assert r.share_of_gap == pytest.approx(r.mde / 0.07, rel=1e-9)
    assert r.precision == pytest.approx(stats.norm.isf(0.025) * math.sqrt(v), rel=1e-12)
    assert r.power == pytest.approx(0.8)


def test_did_not_period_mean_variance():
    # STYLE.md: n=50/50, m=r=4, rho=.5 -> sigma^2 (1-rho)(1/m+1/r)(1/nT+1/nC) = 0.0100 sigma^2 (not 0.0225)
    v = pw.disparity_variance(50, 50, 0.5, 0.5, rho=0.5, pre_years=4, post_years=4)
    assert v / 0.25 == pytest.approx(0.5 * 0.5 * 0.04, rel=1e-12)


def test_rho_icc_design_effect_by_hand():
    n_r, n_m, p_r, p_m, rho, icc, k, cv = 3000, 900, 0.747, 0.661, 0.4, 0.03, 30, 0.4
    ke = k * (1 + cv**2)
    de = 1 + (ke - 1) * icc
    assert pw.design_effect(k, icc, cluster_size_cv=cv) == pytest.approx(de)
    want = (1 - rho) * 2 * de * (p_r * (1 - p_r) / n_r + p_m * (1 - p_m) / n_m)
    got = pw.disparity_variance(n_r, n_m, p_r, p_m, rho=rho, icc=icc, cluster_size=k, cluster_size_cv=cv)
    assert got == pytest.approx(want, rel=1e-12)
    # non-persistent practice effects: [(1-rho) + (ke-1) icc] instead of (1-rho) DE
    want0 = 2 * ((1 - rho) + (ke - 1) * icc) * (p_r * (1 - p_r) / n_r + p_m * (1 - p_m) / n_m)
    got0 = pw.disparity_variance(n_r, n_m, p_r, p_m, rho=rho, icc=icc, cluster_size=k, cluster_size_cv=cv,
                                 practice_persistence=0.0)
    assert got0 == pytest.approx(want0, rel=1e-12)
    # permanent practice effects cancel in the DiD
    got1 = pw.disparity_variance(n_r, n_m, p_r, p_m, rho=rho, icc=icc, cluster_size=k, practice_persistence=1.0)
    assert got1 == pytest.approx((1 - rho) * 2 * (p_r * (1 - p_r) / n_r + p_m * (1 - p_m) / n_m), rel=1e-12)


def test_shared_practices_reduce_variance():
    sep = pw.disparity_variance(2000, 2000, 0.5, 0.5, icc=0.05, cluster_size=40)
    sh = pw.disparity_variance(2000, 2000, 0.5, 0.5, icc=0.05, cluster_size=80, shared_practices=True)
    # same within-group practice size (40); the common practice effect cancels exactly here
    assert sh < sep
    assert sh == pytest.approx(2 * 0.25 * 2 / 2000 * (1 + 39 * 0.05) - 2 * 0.05 * 2 * 0.25 * 80 / 4000, rel=1e-12)
    assert sh == pytest.approx(2 * 0.25 * 2 / 2000 * (1 - 0.05), rel=1e-12)


def test_pre_post_years_pooling():
    v11 = pw.disparity_variance(1000, 1000, 0.3, 0.2, rho=0.6)
    v23 = pw.disparity_variance(1000, 1000, 0.3, 0.2, rho=0.6, pre_years=2, post_years=3)
    assert v23 / v11 == pytest.approx((1 / 2 + 1 / 3) / 2)


def test_orientation_lower_is_better():
    r = pw.mde_disparity(5000, 800, 0.239, 0.319, higher_is_better=False, reduction=0.5)
    assert r.baseline_gap == pytest.approx(0.08)
    assert r.share_of_gap == pytest.approx(r.mde / 0.08)
    # the same design oriented the other way has a negative gap -> share NaN with a reason
    r2 = pw.mde_disparity(5000, 800, 0.239, 0.319, higher_is_better=True)
    assert math.isnan(r2.share_of_gap) and "<= 0" in r2.reason and not r2.feasible


def test_tiny_gap_nan_share():
    r = pw.mde_disparity(5000, 800, 0.700, 0.698)
    assert math.isnan(r.share_of_gap) and "min_gap" in r.reason


def test_power_at_mde_is_target():
    kw = dict(rho=0.3, icc=0.02, cluster_size=20)
    r = pw.mde_disparity(6000, 1500, 0.70, 0.62, **kw)
    p = pw.power_disparity(6000, 1500, 0.70, 0.62, change=r.mde, variance="null", **kw)
    assert p.power == pytest.approx(0.8, abs=1e-5)
    p1 = pw.power_disparity(6000, 1500, 0.70, 0.62, change=r.mde, **kw)
    assert abs(p1.power - 0.8) < 0.02  # drift: variance at the target's post rates (latent-threshold covariance)


def test_one_sided():
    r1 = pw.mde_disparity(2000, 500, 0.7, 0.6, alternative="larger")
    r2 = pw.mde_disparity(2000, 500, 0.7, 0.6)
    assert r1.mde / r2.mde == pytest.approx((stats.norm.isf(0.05) + stats.norm.ppf(0.8)) / Z, rel=1e-5)  # far tail


def test_t_distribution_df_and_larger_mde():
    r = pw.mde_disparity(600, 300, 0.7, 0.6, icc=0.05, cluster_size=50, distribution="t")
    # 12 and 6 practices: Satterthwaite df between min(G)-1 = 5 and G_R + G_M - 2 = 16
    assert 5 <= r.df <= 16
    rz = pw.mde_disparity(600, 300, 0.7, 0.6, icc=0.05, cluster_size=50)
    assert r.mde > rz.mde
    vr = 2 * 0.21 * (1 + 49 * 0.05) / 600
    vm = 2 * 0.24 * (1 + 49 * 0.05) / 300
    assert r.df == pytest.approx((vr + vm) ** 2 / (vr**2 / 11 + vm**2 / 5))
    assert pw.power_disparity(600, 300, 0.7, 0.6, icc=0.05, cluster_size=50, distribution="t", change=r.mde,
                              variance="null").power == pytest.approx(0.8, abs=1e-6)


def test_total_and_shares():
    a = pw.mde_disparity(n_total=10000, shares=(0.6, 0.15), p_reference=0.7, p_minority=0.6)
    b = pw.mde_disparity(6000, 1500, 0.7, 0.6)
    assert a.mde == pytest.approx(b.mde)


def test_imputed_race_variance_factor():
    base = pw.disparity_variance(3000, 1000, 0.5, 0.5)
    imp = pw.disparity_variance(3000, 1000, 0.5, 0.5, race_accuracy=0.8)
    a_r = 1 - 1000 * 0.2 / 3000
    lam = a_r + 0.8 - 1
    assert imp == pytest.approx(base / lam)
    assert pw.race_accuracy_from_probabilities([0.9, 0.1, 0.2, 0.0]) == pytest.approx(
        ((0.01 + 0.81 + 0.64 + 1) / 2.8, (0.81 + 0.01 + 0.04) / 1.2))
    r = pw.mde_disparity(3000, 1000, 0.7, 0.6, race_accuracy=(0.93, 0.8))
    assert r.attenuation == pytest.approx(0.73)


def test_power_two_proportions_methods():
    p_a = pw.power_two_proportions(0.6, 0.5, 400, 400)
    p_n = pw.power_two_proportions(0.6, 0.5, 400, 400, method="normal")
    assert abs(p_a - p_n) < 0.01
    se = math.sqrt(0.24 / 400 + 0.25 / 400)
    assert p_n == pytest.approx(stats.norm.sf(1.959963984540054 - 0.1 / se) + stats.norm.cdf(-1.959963984540054 - 0.1 / se))


@pytest.mark.parametrize(
    "kwargs, match",
    [
        (dict(p_reference=1.2), r"'p_reference' parameter must be a rate .* in \[0, 1\]"),
        (dict(p_minority=-0.1), r"'p_minority' parameter must be a rate"),
        (dict(n_minority=0), r"'n_minority' parameter is 0: the group is empty"),
        (dict(n_reference=None, n_minority=None, n_total=1000, shares=(0.8, 0.3)), r"shares sum to 1\.1 > 1"),
        (dict(n_total=1000), r"Give either n_reference and n_minority, or n_total and shares"),
        (dict(power=0.02), r"power=0\.02 is already reached with no data"),
        (dict(power=1.0), r"'power' parameter must be in the range \(0, 1\)"),
        (dict(alternative="greater"), r"'alternative' parameter must be one of"),
        (dict(rho=1.0), r"'rho' parameter must be in the range \[0, 1\)"),
        (dict(icc=0.1, cluster_size=2000), r"cluster_size=2000 exceeds a group's size"),
        (dict(race_accuracy=0.5, n_minority=1000, n_reference=1000), r"attenuates the gap by lambda"),
        (dict(distribution="t", icc=0.1, cluster_size=1000), r"at least 2 practices per group"),
        (dict(higher_is_better="yes"), r"'higher_is_better' parameter must be True or False"),
    ],
)
def test_mde_errors(kwargs, match):
    base = dict(n_reference=4000, n_minority=1000, p_reference=0.7, p_minority=0.6)
    base.update(kwargs)
    with pytest.raises(SpecificationError, match=match):
        pw.mde_disparity(**base)


def test_power_errors():
    with pytest.raises(SpecificationError, match=r"Impossible target: reduction=3 of the gap puts the minority"):
        pw.power_disparity(4000, 1000, 0.9, 0.6, reduction=3.0)
    with pytest.raises(SpecificationError, match=r"needs a positive baseline gap"):
        pw.power_disparity(4000, 1000, 0.6, 0.7, reduction=0.5)
    with pytest.raises(SpecificationError, match=r"exactly one of 'reduction'"):
        pw.power_disparity(4000, 1000, 0.7, 0.6)


def test_result_summary_and_dict():
    r = pw.mde_disparity(4000, 1000, 0.7, 0.6, reduction=0.5, icc=0.01, cluster_size=20)
    txt = r.summary().as_text()
    assert "MDE (pp)" in txt and "power at 50% gap reduction" in txt
    d = r.as_dict()
    assert d["mde_pp"] == pytest.approx(r.mde_pp) and isinstance(d["notes"], list)
    assert "<DisparityPower" in repr(r)
