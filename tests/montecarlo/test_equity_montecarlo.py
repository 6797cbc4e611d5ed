"""Monte Carlo checks of evalkit.equity: payout risk (analytic vs simulated payout distribution).

The simulated design is :func:`evalkit.power.simulate.simulate_disparity_did` (patients in
practices, repeated measures, imputed race). Checks pass within 4 Monte Carlo SE (binomial SE for
probabilities, SD/sqrt(R) for means). CI uses small replication counts; ``pytest -m slow`` runs
the full study. ``EVALKIT_MC_REPS`` overrides the CI count.
"""
import math
import os

import pytest

import evalkit as ek

pytestmark = pytest.mark.montecarlo


def _reps(default: int) -> int:
    return int(os.environ.get("EVALKIT_MC_REPS", default))


PAYOUT_GRID = [
    pytest.param((2000, 500, 0.70, 0.60), dict(rho=0.5), id="rho.5"),
    pytest.param((2000, 600, 0.70, 0.60), dict(rho=0.5, icc=0.05, cluster_size=20), id="clustered"),
    pytest.param((2000, 500, 0.70, 0.60), dict(rho=0.5, race_accuracy=0.75), id="imputed-race"),
]


def _payout_check(args, kw, R, seed):
    r = ek.equity.payout_risk(*args, schedule=ek.equity.linear_schedule(0.1, 0.5), reduction=(0.25, 0.5),
                              n_sims=R, seed=seed, **kw)
    t = r.table.set_index(["scenario", "method"])
    for sc in ("no change", "reduction 0.25", "reduction 0.5"):
        a, s = t.loc[(sc, "analytic")], t.loc[(sc, "simulation")]
        p = a.p_payout_positive
        assert abs(s.p_payout_positive - p) < 4 * math.sqrt(p * (1 - p) / R), (sc, s.p_payout_positive, p)
        sd_pay = r.draws.loc[r.draws.scenario == sc, "payout"].std(ddof=1)
        assert abs(s.expected_payout - a.expected_payout) < 4 * sd_pay / math.sqrt(R) + 1e-3, (sc, s.expected_payout,
                                                                                             a.expected_payout)
        assert abs(s.sd_measured / a.sd_measured - 1) < 4 * math.sqrt(1 / (2 * (R - 1))) + 0.02


@pytest.mark.parametrize("args, kw", PAYOUT_GRID)
def test_payout_distribution_small(args, kw):
    _payout_check(args, kw, _reps(300), seed=20261123)


@pytest.mark.slow
@pytest.mark.parametrize("args, kw", PAYOUT_GRID)
def test_payout_distribution_full(args, kw):
    _payout_check(args, kw, 4000, seed=7)
