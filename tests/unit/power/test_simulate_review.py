"""Review regressions: power_disparity_mc applies its 'attenuation' argument (imputed race) like the analytic model."""
import math

import pytest

import evalkit.power as pw
from evalkit.errors import SpecificationError
from evalkit.power.simulate import power_disparity_mc

ARGS = (2000, 500, 0.70, 0.60)


def test_mc_power_with_attenuation_matches_analytic_imputed_race():
    a = pw.power_disparity(*ARGS, rho=0.5, race_accuracy=0.75, change=0.06)
    assert a.attenuation == pytest.approx(0.6875)
    mc = power_disparity_mc(*ARGS, rho=0.5, change=0.06, attenuation=a.attenuation, n_reps=2000, seed=3)
    known = pw.power_disparity(*ARGS, rho=0.5, change=0.06).power
    assert abs(mc.power - a.power) < 4 * mc.mc_se + 0.02
    assert mc.power < known - 0.08  # attenuation is not ignored


def test_mc_attenuation_equals_simulating_the_implied_race_accuracy():
    m1 = power_disparity_mc(*ARGS, rho=0.5, change=0.05, attenuation=0.6875, n_reps=200, seed=5)
    m2 = power_disparity_mc(*ARGS, rho=0.5, change=0.05, race_accuracy=0.75, n_reps=200, seed=5)
    m3 = power_disparity_mc(*ARGS, rho=0.5, change=0.05, race_accuracy=0.75, attenuation=0.6875, n_reps=200, seed=5)
    assert m1.power == m2.power == m3.power
    assert math.isclose(m1.mean_estimate, m2.mean_estimate)


@pytest.mark.parametrize("kw, match", [
    (dict(attenuation=0.5, race_accuracy=0.75), "contradicts race_accuracy"),
    (dict(attenuation=0.0), "attenuation"),
    (dict(attenuation=1.5), "attenuation"),
    (dict(attenuation=0.8, distribution="t"), "known race only"),
])
def test_mc_attenuation_errors(kw, match):
    with pytest.raises(SpecificationError, match=match):
        power_disparity_mc(*ARGS, change=0.05, n_reps=10, seed=1, **kw)
