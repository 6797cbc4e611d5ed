"""Monte Carlo: Sun-Abraham and BJS imputation overall ATT on simulated AQC panels (growing effects,
churn). Truth: the mean planted effect over treated member-quarters (both estimands weight each
treated row equally: SA's IW cohort shares count rows, BJS's overall weights are equal per row).
Checks: mean error within 3 MC SE, coverage of the 95% interval (clustered by organisation) within
0.95 ± 3 sqrt(.95 * .05 / R). CI runs a few replications; ``-m slow`` the full study.
"""
from __future__ import annotations

import functools
import os
import warnings

import numpy as np
import pytest

import evalkit as ek

pytestmark = pytest.mark.montecarlo

SEED0 = int(os.environ.get("EVALKIT_MC_SEED", "0"))


def _study(reps, n_members, n_orgs=40):
    out = []
    for r in range(reps):
        df, truth = ek.datasets.simulate_aqc(seed=SEED0 * 100_000 + 7_000 + r, n_members=n_members, n_orgs=n_orgs,
                                             effect="growing", churn=True)
        pr = truth.per_row
        true = float(pr.loc[pr["aqc"] == 1, "tau_spending"].mean())
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", ek.errors.EvalkitWarning)
            bjs = ek.staggered.imputation(df, outcome="spending", unit="member_id", time="quarter",
                                          cohort="entry_quarter", cluster="org_id")
            # 40 organisations, ~4 treated per later cohort: CR1 under-covers there (few treated clusters),
            # so the Sun-Abraham interval uses CR2 with Satterthwaite df
            sa = ek.staggered.sun_abraham(df, outcome="spending", unit="member_id", time="quarter",
                                          cohort="entry_quarter", cluster="org_id", vcov="CR2")
        lo, hi = sa.to_frame().loc[0, ["conf_low", "conf_high"]]
        out.append((bjs.estimate, bjs.std_error, sa.estimate, sa.std_error, true, lo, hi))
    return np.array(out)


def _check(est, se, true, crit=1.959963984540054, lo=None, hi=None):
    err = est - true
    R = err.size
    mcse = err.std(ddof=1) / np.sqrt(R)
    assert abs(err.mean()) < 3 * mcse + 1e-9, f"bias {err.mean():.2f} vs 3 MC SE {3 * mcse:.2f}"
    cover = np.abs(err) <= crit * se if lo is None else (lo <= true) & (true <= hi)
    tol = 3 * np.sqrt(0.95 * 0.05 / R)
    assert cover.mean() >= 0.95 - tol, f"coverage {cover.mean():.3f} below 0.95 - {tol:.3f}"
    return cover.mean()


def test_sa_bjs_recover_truth_ci():
    out = _study(reps=3, n_members=800)
    _check(out[:, 0], out[:, 1], out[:, 4])
    _check(out[:, 2], out[:, 3], out[:, 4], lo=out[:, 5], hi=out[:, 6])


@functools.lru_cache(maxsize=1)
def _full_study():
    return _study(reps=200, n_members=3_000)


@pytest.mark.slow
def test_sa_recovers_truth_full():
    out = _full_study()
    # with ~4 treated organisations per later cohort, CR2's Satterthwaite df are small and the interval is
    # conservative (1.000 over 200 reps); _check asserts coverage >= 0.95 - 3 MC SE (CR1 gave 0.900)
    _check(out[:, 2], out[:, 3], out[:, 4], lo=out[:, 5], hi=out[:, 6])


@pytest.mark.slow
def test_bjs_bias_full():
    out = _full_study()
    err = out[:, 0] - out[:, 4]
    assert abs(err.mean()) < 3 * err.std(ddof=1) / np.sqrt(err.size)
    assert abs(np.mean(err) / np.mean(out[:, 4])) < 0.05  # bias < 5%


@pytest.mark.slow
@pytest.mark.xfail(strict=True, reason=(
    "Known limitation: BJS's clustered variance (as in R didimputation, normal inference) under-covers with "
    "~4 treated organisations per later cohort: 0.900 over 200 reps. Prefer sun_abraham(vcov='CR2') there."))
def test_bjs_coverage_full():
    out = _full_study()
    _check(out[:, 0], out[:, 1], out[:, 4])
