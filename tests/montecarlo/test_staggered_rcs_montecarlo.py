"""Monte Carlo: Callaway-Sant'Anna on repeated cross-sections (``att_gt(panel=False)``).

Each replication draws independent cross-sections (a fresh sample of people every period, so no
unit is seen twice) from a population where a binary covariate ``x`` drives both the cohort
(P(G = g | x)) and the outcome trend (``+ x t``): parallel trends hold only conditionally on
``x``. Effects are planted and heterogeneous: ``tau = (1 + 0.5 (t - g)) (1 + x)`` from entry on.
Truth (population): ``ATT(g, t) = (1 + 0.5 (t - g)) (1 + E[x | G = g])`` and the ``"simple"``
aggregate weights the post cells by ``P(G = g)``.

Checks: the mean error of the simple aggregate (and of ``ATT(3, 4)``) within 3 Monte Carlo SE
of 0 and 95% coverage within 0.95 ± 3 sqrt(0.95 0.05 / R), for ``dr`` (CI) and ``dr``/``ipw``/``reg``
(full study, ``-m slow``). ``EVALKIT_MC_SEED`` shifts the seeds.
"""
from __future__ import annotations

import os

import numpy as np
import pandas as pd
import pytest

import evalkit as ek

pytestmark = pytest.mark.montecarlo

SEED0 = int(os.environ.get("EVALKIT_MC_SEED", "0"))
T = 5
COHORTS = np.array([0, 3, 4, 5])  # 0 = never treated; periods are 1..T
P_G = {0: np.array([0.4, 0.2, 0.2, 0.2]), 1: np.array([0.2, 0.3, 0.2, 0.3])}  # P(G | x), x ~ Bernoulli(0.5)
Z = 1.959963984540054


def _truth():
    pg = 0.5 * P_G[0] + 0.5 * P_G[1]
    ex = 0.5 * P_G[1] / pg  # E[x | G = g]
    cells = {}
    for j, g in enumerate(COHORTS):
        if g:
            for t in range(g, T + 1):
                cells[(g, t)] = ((1 + 0.5 * (t - g)) * (1 + ex[j]), pg[j])
    simple = sum(a * p for a, p in cells.values()) / sum(p for _, p in cells.values())
    return simple, cells[(3, 4)][0]


def draw(rng: np.random.Generator, n_per_period: int) -> pd.DataFrame:
    n = n_per_period * T
    t = np.repeat(np.arange(1, T + 1), n_per_period)  # periods 1..T (0 codes never treated)
    x = (rng.random(n) < 0.5).astype(int)
    u = rng.random(n)
    cum = np.where(x[:, None] == 1, np.cumsum(P_G[1])[None, :], np.cumsum(P_G[0])[None, :])
    g = COHORTS[(u[:, None] > cum).sum(axis=1)]
    treated = (g > 0) & (t >= g)
    tau = np.where(treated, (1 + 0.5 * (t - g)) * (1 + x), 0.0)
    alpha = np.select([g == 3, g == 4, g == 5], [1.0, -0.5, 0.5], 0.0)
    y = alpha + 2.0 * x + 0.5 * t + 1.0 * x * t + tau + rng.normal(size=n)
    return pd.DataFrame({"y": y, "t": t, "g": g, "x": x})


def _study(reps: int, n_per_period: int, methods=("dr",)):
    truth_simple, truth_cell = _truth()
    out = {m: [] for m in methods}
    for r in range(reps):
        df = draw(np.random.default_rng(SEED0 * 100_000 + 7_000 + r), n_per_period)
        for m in methods:
            res = ek.staggered.att_gt(df, outcome="y", unit=None, time="t", cohort="g", panel=False, method=m,
                                      covariates=["x"], n_boot=0)
            agg = res.aggregate("simple")
            cell = res.to_frame().set_index("term").loc["ATT(3,4)"]
            out[m].append((agg.estimate - truth_simple, agg.std_error, cell["estimate"] - truth_cell, cell["std_error"]))
    return {m: np.array(v) for m, v in out.items()}


def _check(a: np.ndarray, label: str):
    R = a.shape[0]
    for err, se, what in ((a[:, 0], a[:, 1], "simple"), (a[:, 2], a[:, 3], "ATT(3,4)")):
        mcse = err.std(ddof=1) / np.sqrt(R)
        assert abs(err.mean()) < 3 * mcse, f"{label} {what}: bias {err.mean():.4f} vs 3 MC SE {3 * mcse:.4f}"
        cover = np.mean(np.abs(err) <= Z * se)
        tol = 3 * np.sqrt(0.95 * 0.05 / R)
        assert abs(cover - 0.95) < tol, f"{label} {what}: coverage {cover:.3f} outside 0.95 ± {tol:.3f}"


def test_rcs_dr_recovers_planted_effects_ci():
    _check(_study(reps=30, n_per_period=1_500)["dr"], "dr")


def test_rcs_without_covariates_is_biased_here():
    """Sanity check of the design: unconditional parallel trends fail, so the no-covariate estimator is off."""
    truth_simple, _ = _truth()
    df = draw(np.random.default_rng(SEED0 * 100_000 + 6_999), 20_000)
    res = ek.staggered.att_gt(df, outcome="y", unit=None, time="t", cohort="g", panel=False, n_boot=0)
    agg = res.aggregate("simple")
    assert abs(agg.estimate - truth_simple) > 5 * agg.std_error


@pytest.mark.slow
def test_rcs_all_methods_full():
    out = _study(reps=300, n_per_period=2_000, methods=("dr", "ipw", "reg"))
    for m, a in out.items():
        _check(a, m)
        # the analytic SE tracks the sampling SD of the simple aggregate (within 15%)
        assert abs(a[:, 1].mean() / a[:, 0].std(ddof=1) - 1) < 0.15, m
