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


# --------------------------------------------------------------------------- disparity_did on data
DID_GRID = [
    pytest.param((2000, 600, 0.70, 0.60), dict(rho=0.5, icc=0.05, cluster_size=20), None, id="known-race-clustered"),
    pytest.param((2000, 600, 0.70, 0.60), dict(rho=0.5, icc=0.05, cluster_size=20, race_accuracy=0.8), 0.8,
                 id="imputed-race-clustered"),
    pytest.param((2000, 500, 0.70, 0.60), dict(rho=0.5, race_accuracy=0.75), 0.75, id="imputed-race"),
]


def _did_check(args, kw, a_m, R, seed, change=0.04):
    """disparity_did on R simulated panels (evalkit.power.simulate design) with a planted change.

    * bias of the (attenuation-corrected) change: |mean - change| < 4 MC SE;
    * SE: mean(SE^2)/Var(estimate) within 4 sqrt(2/(R-1)) + 0.03 of 1, and Var(estimate) vs the
      analytic disparity_variance at the alternative (true-gap scale, 1/lambda inflation);
    * 95% CI coverage within 3 sqrt(.95 .05/R) + 0.01;
    * MDE: the z test at the analytic MDE of mde_disparity (same design) rejects with probability
      0.80 +- (3 MC SE + drift), drift = |power_disparity(change=MDE) - 0.80|.
    """
    import numpy as np

    from evalkit.power.simulate import simulate_disparity_panel

    rng = np.random.default_rng(seed)
    weights = {"White": "prob_reference", "Black": "prob_minority"} if a_m is not None else None
    mde = ek.power.mde_disparity(*args, **{k: v for k, v in kw.items()}).mde
    est, se, est_mde, se_mde = [], [], [], []
    for _ in range(R):
        for ch, e_out, s_out in ((change, est, se), (mde, est_mde, se_mde)):
            df = simulate_disparity_panel(*args, p_minority_post=args[3] + ch, seed=rng, **kw)
            r = ek.equity.disparity_did(df, outcome="y", group=None if weights else "race", period="period",
                                        reference_group="White", weights=weights,
                                        cluster="practice" if kw.get("cluster_size", 1) > 1 else "patient")
            row = r.table[r.table.term == "change"].iloc[0]
            e_out.append(row.estimate)
            s_out.append(row.std_error)
    est, se = np.array(est), np.array(se)
    mc = est.std(ddof=1) / math.sqrt(R)
    assert abs(est.mean() - change) < 4 * mc, f"bias {est.mean() - change:.4f} (MC SE {mc:.4f})"
    ratio = (se**2).mean() / est.var(ddof=1)
    assert abs(ratio - 1) < 4 * math.sqrt(2 / (R - 1)) + 0.03, f"mean SE^2 / Var = {ratio:.3f}"
    v_an = ek.power.disparity_variance(*args, p_minority_post=args[3] + change, **kw)
    assert abs(est.var(ddof=1) / v_an - 1) < 4 * math.sqrt(2 / (R - 1)) + 0.04, f"Var/analytic {est.var(ddof=1) / v_an:.3f}"
    cover = np.mean(np.abs(est - change) <= 1.959964 * se)
    assert abs(cover - 0.95) < 3 * math.sqrt(0.95 * 0.05 / R) + 0.01, f"coverage {cover:.3f}"
    pw = np.mean(np.abs(np.array(est_mde) / np.array(se_mde)) > 1.959964)
    drift = abs(ek.power.power_disparity(*args, change=mde, **kw).power - 0.80)
    assert abs(pw - 0.80) < 3 * math.sqrt(0.16 / R) + drift, f"power at MDE {pw:.3f} (drift {drift:.3f})"


@pytest.mark.parametrize("args, kw, a_m", DID_GRID[1:2])  # CI: the imputed-race clustered design only (~4 s)
def test_disparity_did_unbiased_se_mde_small(args, kw, a_m):
    _did_check(args, kw, a_m, _reps(50), seed=20261123)


@pytest.mark.slow
@pytest.mark.parametrize("args, kw, a_m", DID_GRID)
def test_disparity_did_unbiased_se_mde_full(args, kw, a_m):
    _did_check(args, kw, a_m, 2000, seed=11)
