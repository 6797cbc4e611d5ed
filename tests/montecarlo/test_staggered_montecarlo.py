"""Monte Carlo: Callaway-Sant'Anna simple ATT on simulated AQC claims panels (growing effects, churn).

Planted truth: ``truth.simple_att("spending", time="quarter")`` on the realised sample. Checks:
mean error within 3 Monte Carlo SE of 0, and coverage of the 95% interval (SE clustered by
organisation, the level of treatment assignment) within 0.95 ± 3 sqrt(0.95 * 0.05 / R).
CI runs a few replications; ``-m slow`` runs the full study. ``EVALKIT_MC_SEED`` shifts the seeds.
"""
from __future__ import annotations

import os
import warnings

import numpy as np
import pytest

import evalkit as ek

pytestmark = pytest.mark.montecarlo

SEED0 = int(os.environ.get("EVALKIT_MC_SEED", "0"))


def _study(reps: int, n_members: int, n_orgs: int = 40):
    rows = []
    for r in range(reps):
        df, truth = ek.datasets.simulate_aqc(seed=SEED0 * 100_000 + 5_000 + r, n_members=n_members, n_orgs=n_orgs,
                                             effect="growing", churn=True)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", ek.errors.EvalkitWarning)
            res = ek.staggered.att_gt(df, outcome="spending", unit="member_id", time="quarter",
                                      cohort="entry_quarter", cluster="org_id", n_boot=0)
        agg = res.aggregate("simple")
        rows.append((agg.estimate, agg.std_error, truth.simple_att("spending", time="quarter")))
    out = np.array(rows)
    err = out[:, 0] - out[:, 2]
    cover = np.abs(err) <= 1.959963984540054 * out[:, 1]
    return err, cover, out


def _check(err, cover):
    R = err.size
    mcse = err.std(ddof=1) / np.sqrt(R)
    assert abs(err.mean()) < 3 * mcse, f"bias {err.mean():.2f} vs 3 MC SE {3 * mcse:.2f}"
    tol = 3 * np.sqrt(0.95 * 0.05 / R)
    assert abs(cover.mean() - 0.95) < tol, f"coverage {cover.mean():.3f} outside 0.95 ± {tol:.3f}"


def test_simple_att_recovers_truth_ci():
    err, cover, _ = _study(reps=12, n_members=2_000)
    _check(err, cover)


@pytest.mark.slow
def test_simple_att_recovers_truth_full():
    err, cover, out = _study(reps=200, n_members=4_000)
    _check(err, cover)
    # the clustered SE tracks the sampling SD (within 15%)
    assert abs(out[:, 1].mean() / err.std(ddof=1) - 1) < 0.15
