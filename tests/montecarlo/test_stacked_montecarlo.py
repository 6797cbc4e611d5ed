"""Monte Carlo: weighted stacked DiD (Wing, Freedman & Hollingsworth 2024) on simulated AQC panels.

``simulate_aqc(effect="growing", churn=False)`` (balanced member-quarter panels, effects growing
with time in the contract and differing by cohort). Window (-4, 7) quarters: the 2009-2011 entry
cohorts are included, 2012 is trimmed (its window leaves the data). Planted truth on the realised
sample: the trimmed aggregate ATT at event time h, ``sum_a N_a ATT(a, a+h) / sum_a N_a`` over the
included cohorts (``truth.att_gt``, ``truth.cohort_sizes``), and its mean over h = 0..7 (the
overall row). Checks: mean error within 3 Monte Carlo SE of 0 (overall and h = 0, 4, 7); coverage
of the CR1 intervals (clustered by organisation) within 0.95 ± 3 MC SE in the full study.
``EVALKIT_MC_SEED`` shifts the seeds.
"""
from __future__ import annotations

import os
import warnings

import numpy as np
import pytest

import evalkit as ek

pytestmark = pytest.mark.montecarlo

SEED0 = int(os.environ.get("EVALKIT_MC_SEED", "0"))
WINDOW = (-4, 7)
CHECK_H = (0, 4, 7)


def _truth(truth, included_t):
    gt = truth.att_gt("spending", time="quarter")
    sizes = truth.cohort_sizes("spending")
    gt = gt[gt["t"] - gt["event_time"] >= 0]
    cohort_t = (gt["t"] - gt["event_time"]).to_numpy()
    gt = gt.assign(cohort_t=cohort_t, N=gt["entry_year"].map(sizes).to_numpy(dtype=float))
    gt = gt[np.isin(gt["cohort_t"], included_t)]
    d = {}
    for h in range(0, WINDOW[1] + 1):
        c = gt[gt["event_time"] == h]
        assert sorted(c["cohort_t"]) == sorted(included_t)
        d[h] = float(np.sum(c["N"] * c["att"]) / c["N"].sum())
    return float(np.mean(list(d.values()))), d


def _study(reps: int, n_members: int, n_orgs: int, control: str = "notyet"):
    out = []
    for r in range(reps):
        df, truth = ek.datasets.simulate_aqc(seed=SEED0 * 100_000 + 9_000 + r, n_members=n_members, n_orgs=n_orgs,
                                             effect="growing", churn=False)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", ek.errors.EvalkitWarning)
            res = ek.staggered.stacked_did(df, outcome="spending", unit="member_id", time="quarter",
                                           cohort="entry_quarter", window=WINDOW, control=control, cluster="org_id")
        q0 = df["quarter"].min()
        included_t = [(c - q0).n for c in res.subexperiment_frame()["cohort"]]
        overall, by_h = _truth(truth, included_t)
        fr = res.to_frame().set_index("term")
        row = [res.estimate - overall, res.std_error]
        for h in CHECK_H:
            row += [fr.loc[f"e={h}", "estimate"] - by_h[h], fr.loc[f"e={h}", "std_error"]]
        crit = float(fr.iloc[0]["conf_high"] - fr.iloc[0]["estimate"]) / res.std_error
        out.append(row + [crit])
    return np.array(out)


def _check_bias(a):
    R = a.shape[0]
    for k, what in enumerate(["overall"] + [f"e={h}" for h in CHECK_H]):
        err = a[:, 2 * k]
        mcse = err.std(ddof=1) / np.sqrt(R)
        assert abs(err.mean()) < 3 * mcse, f"{what}: bias {err.mean():.2f} vs 3 MC SE {3 * mcse:.2f}"


def test_stacked_recovers_trimmed_aggregate_ci():
    _check_bias(_study(reps=12, n_members=2_000, n_orgs=80))


@pytest.mark.slow
@pytest.mark.parametrize("control", ["notyet", "never"])
def test_stacked_full(control):
    a = _study(reps=200, n_members=3_000, n_orgs=100, control=control)
    _check_bias(a)
    R = a.shape[0]
    cover = np.mean(np.abs(a[:, 0]) <= a[:, -1] * a[:, 1])
    tol = 3 * np.sqrt(0.95 * 0.05 / R)
    assert abs(cover - 0.95) < tol, f"coverage {cover:.3f} outside 0.95 ± {tol:.3f}"
