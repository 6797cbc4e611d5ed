"""Monte Carlo checks of the analytic disparity-DiD variance, MDE and test size (evalkit.power).

Each check simulates the full design (patients in practices, repeated measures with within-person
correlation, imputed race) with :func:`evalkit.power.simulate.simulate_disparity_did` and runs
the stratified DiD-of-gaps estimator with a cluster-robust SE.

* variance: empirical Var(estimate)/lambda^2 vs :func:`disparity_variance`; the ratio's MC SE is
  ~sqrt(2/(R-1)) (normal estimates); pass within 3 MC SE.
* power at the analytic MDE (normal quantiles, null variance): the *estimated-SE Wald z test*
  rejects with probability 0.80 +- (3 MC SE + drift), drift = |power_disparity(change=MDE,
  variance="alternative") - 0.80| (the post-period variance differs from the baseline one).
* size under no change: the estimated-SE z test (many practices) or the Satterthwaite t test
  (few practices) rejects at 0.05 +- 3 MC SE; with few practices the z test over-rejects.

CI uses small replication counts (whole file < ~20 s); ``pytest -m slow tests/montecarlo`` runs
2,000+ replications per point. ``EVALKIT_MC_REPS`` overrides the CI count.
"""
import math
import os

import numpy as np
import pytest

import evalkit.power as pw
from evalkit.power.simulate import power_disparity_mc, simulate_disparity_did

pytestmark = pytest.mark.montecarlo


def _reps(default: int) -> int:
    return int(os.environ.get("EVALKIT_MC_REPS", default))


def _lam(n_r, n_m, a_m):
    if a_m is None:
        return 1.0
    return (1 - n_m * (1 - a_m) / n_r) + a_m - 1


GRID = [
    pytest.param((2000, 500, 0.70, 0.60), dict(), id="iid"),
    pytest.param((2000, 500, 0.70, 0.60), dict(rho=0.5), id="rho.5"),
    pytest.param((2000, 600, 0.70, 0.60), dict(rho=0.5, icc=0.05, cluster_size=20), id="rho.5-icc.05-k20"),
    pytest.param((2000, 600, 0.70, 0.60), dict(rho=0.3, icc=0.05, cluster_size=20, practice_persistence=0.0),
                 id="nonpersistent-practices"),
    pytest.param((1000, 1000, 0.30, 0.20), dict(rho=0.4, pre_years=2, post_years=3), id="m2-r3"),
    pytest.param((2000, 500, 0.70, 0.60), dict(rho=0.5, race_accuracy=0.75), id="imputed-race"),
    pytest.param((2000, 600, 0.70, 0.60), dict(rho=0.5, icc=0.05, cluster_size=20, race_accuracy=0.8),
                 id="imputed-race-clustered"),
]


def _variance_check(args, kw, R, seed):
    d = simulate_disparity_did(*args, n_reps=R, seed=seed, **kw)
    lam = _lam(args[0], args[1], kw.get("race_accuracy"))
    ratio = d["estimate"].var(ddof=1) / lam**2 / pw.disparity_variance(*args, **kw)
    assert abs(ratio - 1) < 3 * math.sqrt(2 / (R - 1)), f"Var ratio {ratio:.3f} over {R} reps"
    # the estimator is unbiased for lambda x the gap (attenuation), here checked on the baseline gap
    gap = args[2] - args[3]
    mcse = d["gap_pre"].std(ddof=1) / math.sqrt(R)
    assert abs(d["gap_pre"].mean() - lam * gap) < 3 * mcse + 1e-12
    return ratio


@pytest.mark.parametrize("args, kw", GRID)
def test_analytic_variance_matches_simulation(args, kw):
    _variance_check(args, kw, _reps(600), seed=11)


@pytest.mark.slow
@pytest.mark.parametrize("args, kw", GRID)
def test_analytic_variance_matches_simulation_full(args, kw):
    _variance_check(args, kw, 4000, seed=12)


def _power_at_mde(args, kw, R, seed):
    r = pw.mde_disparity(*args, **kw)
    drift = abs(pw.power_disparity(*args, change=r.mde, **kw).power - 0.8)
    mc = power_disparity_mc(*args, change=r.mde * 1.0, n_reps=R, seed=seed,
                            attenuation=r.attenuation, **{k: v for k, v in kw.items()})
    band = 3 * math.sqrt(0.8 * 0.2 / R) + drift
    assert abs(mc.power - 0.8) <= band, f"power {mc.power:.3f} at MDE {r.mde_pp:.2f} pp, band 0.8 +- {band:.3f}"
    return mc.power


POWER_GRID = [
    pytest.param((2000, 500, 0.70, 0.60), dict(rho=0.5), id="rho.5"),
    pytest.param((2000, 600, 0.70, 0.60), dict(rho=0.5, icc=0.05, cluster_size=20), id="rho.5-icc.05-k20"),
    pytest.param((3000, 1000, 0.747, 0.661), dict(rho=0.3, icc=0.02, cluster_size=25), id="bp-control"),
    pytest.param((2000, 500, 0.70, 0.60), dict(rho=0.5, race_accuracy=0.75), id="imputed-race"),
]


@pytest.mark.parametrize("args, kw", POWER_GRID)
def test_power_at_mde_is_080(args, kw):
    _power_at_mde(args, kw, _reps(500), seed=21)


@pytest.mark.slow
@pytest.mark.parametrize("args, kw", POWER_GRID)
def test_power_at_mde_is_080_full(args, kw):
    _power_at_mde(args, kw, 2000, seed=22)


def _size(args, kw, R, seed, distribution):
    mc = power_disparity_mc(*args, change=0.0, n_reps=R, seed=seed, distribution=distribution, **kw)
    return mc.power, 3 * math.sqrt(0.05 * 0.95 / R)


@pytest.mark.parametrize("R", [_reps(1500)])
def test_size_z_test_many_practices(R):
    p, band = _size((2000, 600, 0.70, 0.60), dict(rho=0.5, icc=0.05, cluster_size=20), R, 31, "normal")
    assert abs(p - 0.05) <= band, f"size {p:.3f}"


@pytest.mark.parametrize("R", [_reps(1500)])
def test_size_few_practices_t_not_z(R):
    # 8 and 5 practices of 25: the estimated-SE z test over-rejects, Satterthwaite t holds its level
    args, kw = (200, 125, 0.70, 0.60), dict(rho=0.5, icc=0.05, cluster_size=25)
    pt, band = _size(args, kw, R, 41, "t")
    pz, _ = _size(args, kw, R, 41, "normal")
    assert pz > 0.05 + band, f"z test size {pz:.3f} expected to over-reject"
    assert abs(pt - 0.05) <= band + 0.01, f"t test size {pt:.3f}"  # +0.01: Satterthwaite df is approximate
