"""Power, minimum detectable effects and precision (analytic and Monte Carlo).

>>> import evalkit as ek
>>> r = ek.power.mde_disparity(4000, 1000, 0.708, 0.638, rho=0.5, icc=0.02, cluster_size=25)
>>> r.mde_pp > 0
True
"""
from .analytic import (
    DisparityPower,
    design_effect,
    disparity_variance,
    mde_disparity,
    orient_gap,
    power_disparity,
    power_two_proportions,
    race_accuracy_from_probabilities,
)
from .samplesize import SampleSize, n_for_disparity
from .simulate import MonteCarloPower, power_disparity_mc, simulate_disparity_did, simulate_disparity_panel

__all__ = [
    "SampleSize",
    "n_for_disparity",
    "MonteCarloPower",
    "power_disparity_mc",
    "simulate_disparity_did",
    "simulate_disparity_panel",
    "DisparityPower",
    "design_effect",
    "disparity_variance",
    "mde_disparity",
    "orient_gap",
    "power_disparity",
    "power_two_proportions",
    "race_accuracy_from_probabilities",
]
