"""Review regressions: degenerate baseline rates (0 or 1 in both groups) must not report an MDE of 0."""
import math

import pytest

import evalkit as ek


@pytest.mark.parametrize("pr, pm", [(1.0, 0.0), (0.0, 0.0), (1.0, 1.0), (0.0, 1.0)])
def test_mde_undefined_when_baseline_variance_is_zero(pr, pm):
    r = ek.power.mde_disparity(5000, 1500, pr, pm)
    assert math.isnan(r.mde) and math.isnan(r.share_of_gap) and math.isnan(r.precision)
    assert not r.feasible
    assert "0 or 1" in r.reason and "power_disparity" in r.reason


def test_power_disparity_at_degenerate_baseline_keeps_power_but_no_mde():
    r = ek.power.power_disparity(5000, 1500, 1.0, 0.0, reduction=0.25)
    assert math.isnan(r.mde) and not r.feasible
    assert r.power > 0.99  # the alternative variance is positive: a 25 pp change is detectable


def test_one_boundary_rate_still_gives_a_positive_mde():
    with pytest.warns(ek.errors.InferenceWarning, match="understated"):
        r = ek.power.mde_disparity(5000, 1500, 0.7, 0.0, higher_is_better=True)
    assert r.mde > 0 and r.feasible


def test_t_distribution_at_degenerate_baseline_does_not_divide_by_zero():
    r = ek.power.mde_disparity(100, 100, 1.0, 0.0, distribution="t")
    assert math.isnan(r.mde) and r.df == pytest.approx(198)
    p = ek.power.power_disparity(100, 100, 1.0, 0.0, reduction=0.25, distribution="t")
    assert 0 < p.power <= 1


@pytest.mark.parametrize("pr, pm, grp", [(1.0, 0.8, "reference"), (0.7, 0.0, "minority")])
def test_one_boundary_rate_warns_that_the_mde_is_understated(pr, pm, grp):
    from evalkit.errors import InferenceWarning
    with pytest.warns(InferenceWarning, match=f"The {grp} group's baseline rate is 0 or 1.*understated"):
        ek.power.mde_disparity(5000, 1500, pr, pm)


def test_interior_and_both_boundary_rates_do_not_warn(recwarn):
    ek.power.mde_disparity(5000, 1500, 0.7, 0.6)
    ek.power.mde_disparity(5000, 1500, 1.0, 0.0)  # both degenerate: MDE is NaN with a reason, no warning
    assert not recwarn.list
