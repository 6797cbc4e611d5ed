"""Monte Carlo: Callaway-Sant'Anna simple and dynamic ATT on simulated AQC claims panels (growing
effects, churn).

Planted truth: ``truth.simple_att("spending", time="quarter")`` on the realised sample, and for the
dynamic aggregate the same cohort-size-weighted average of the planted cell effects per event time,
averaged over event times ``e >= 0`` (R ``did``'s overall dynamic effect). Checks:
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


def _dynamic_truth(truth) -> float:
    """Overall dynamic aggregate of the planted ATT(g,t): per event time, cells weighted by cohort
    size (the realised number of members of the cohort), then the plain mean over e >= 0."""
    gt = truth.att_gt("spending", time="quarter")
    gt = gt.loc[gt["post"]]
    w = gt["entry_year"].map(truth.cohort_sizes("spending")).to_numpy(dtype=float)
    e = gt["event_time"].to_numpy()
    ev, code = np.unique(e, return_inverse=True)
    by_e = np.bincount(code, weights=w * gt["att"].to_numpy()) / np.bincount(code, weights=w)
    return float(by_e.mean())


def _study(reps: int, n_members: int, n_orgs: int = 40, kind: str = "simple", seed_offset: int = 5_000):
    rows = []
    for r in range(reps):
        df, truth = ek.datasets.simulate_aqc(seed=SEED0 * 100_000 + seed_offset + r, n_members=n_members, n_orgs=n_orgs,
                                             effect="growing", churn=True)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", ek.errors.EvalkitWarning)
            res = ek.staggered.att_gt(df, outcome="spending", unit="member_id", time="quarter",
                                      cohort="entry_quarter", cluster="org_id", n_boot=0)
        agg = res.aggregate(kind)
        planted = truth.simple_att("spending", time="quarter") if kind == "simple" else _dynamic_truth(truth)
        rows.append((agg.estimate, agg.std_error, planted))
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


def test_dynamic_att_recovers_truth_ci():
    err, cover, _ = _study(reps=12, n_members=2_000, kind="dynamic")
    _check(err, cover)


@pytest.mark.slow
def test_dynamic_att_coverage_full():
    """The issue's bar: coverage of the dynamic aggregate within 0.95 +/- 3 MC SE over >= 500 reps.

    150 organisations (about 38 enter in 2009 and 15 in each later year): enough treated clusters
    per cohort for the clustered influence-function variance. Observed (seed offset 0):
    bias 1.7 (MC SE 3.2) on a planted -52.5, mean SE / SD 0.94, coverage 0.936 (0.921-0.979 band);
    simple ATT coverage 0.932. With 40 organisations (about 4 treated per later cohort) the same
    study covers 0.918 (dynamic) / 0.904 (simple): docs/staggered.md, few treated clusters.
    """
    err, cover, out = _study(reps=500, n_members=8_000, n_orgs=150, kind="dynamic", seed_offset=7_000_000)
    _check(err, cover)
    assert abs(out[:, 1].mean() / err.std(ddof=1) - 1) < 0.15
