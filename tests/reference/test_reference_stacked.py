"""Stacked DiD (Wing, Freedman & Hollingsworth 2024) on mpdta against diff-diff's ``StackedDiD``, an
explicit dummy-variable WLS built here with statsmodels, and the Callaway-Sant'Anna identity.

Provenance: ``tests/reference/py/stacked_did_references.py`` (benchmark venv, diff-diff 3.13.0) wrote
``tests/reference/values/mpdta_stacked_did.json`` (12 specs: never / not-yet-treated clean controls,
five windows, two unbalanced specs). Tolerances: estimates 1e-8 absolute, SEs 1e-6 relative
(observed agreement ~1e-13).
"""
from __future__ import annotations

import json
import warnings
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

import evalkit as ek

pytestmark = [pytest.mark.reference, pytest.mark.filterwarnings("ignore::evalkit.errors.EvalkitWarning")]

VALUES = json.loads((Path(__file__).parent / "values" / "mpdta_stacked_did.json").read_text())
DATA = Path(__file__).parent / "data" / "mpdta.csv"
EST_ATOL, SE_RTOL = 1e-8, 1e-6


@pytest.fixture(scope="module")
def mpdta():
    return pd.read_csv(DATA)


def _data(mpdta, kind):
    if kind == "balanced":
        return mpdta
    return mpdta[(mpdta["countyreal"] + 3 * mpdta["year"]) % 11 != 0].reset_index(drop=True)


def _fit(df, control, window, **kw):
    return ek.staggered.stacked_did(df, outcome="lemp", unit="countyreal", time="year", cohort="first.treat",
                                    window=tuple(window), control=control, **kw)


@pytest.mark.parametrize("name", list(VALUES["specs"]))
def test_against_diff_diff(mpdta, name):
    spec = VALUES["specs"][name]
    res = _fit(_data(mpdta, spec["data"]), spec["control"], spec["window"])
    fr = res.to_frame()
    np.testing.assert_allclose(res.estimate, spec["overall"]["att"], rtol=0, atol=EST_ATOL)
    np.testing.assert_allclose(res.std_error, spec["overall"]["se"], rtol=SE_RTOL)
    ev = fr[fr.event_time.notna()]
    assert [str(int(h)) for h in ev.event_time] == list(spec["event_time"])
    for (_, row), want in zip(ev.iterrows(), spec["event_time"].values()):
        np.testing.assert_allclose(row.estimate, want["att"], rtol=0, atol=EST_ATOL)
        np.testing.assert_allclose(row.std_error, want["se"], rtol=SE_RTOL)
    assert res.sample.n_obs == spec["n_stacked_obs"]
    assert res.conventions.n_clusters == (spec["n_clusters"],)
    assert [int(c) for c in res.subexperiment_frame().cohort] == spec["cohorts_included"]


def _explicit_stack(df, window, control, corrected=True):
    """The stack and the explicit dummy design, built independently of evalkit."""
    import statsmodels.api as sm

    lo, hi = window
    G = df["first.treat"].replace(0, np.inf)
    parts = []
    for a in sorted(G[np.isfinite(G)].unique()):
        clean = G > a + hi if control == "notyet" else ~np.isfinite(G)
        if a + lo < df.year.min() or a + hi > df.year.max() or not clean.any():
            continue
        m = ((G == a) | clean) & df.year.between(a + lo, a + hi)
        d = df[m].copy()
        d["sub"], d["e"], d["D"] = a, d.year - a, (G[m] == a).astype(int)
        parts.append(d)
    st = pd.concat(parts, ignore_index=True)
    w = np.ones(len(st))
    if corrected:
        n = st.groupby(["e", "sub", "D"]).size()
        tot = st.groupby(["e", "D"]).size()
        share = {k: v / tot[(k[0], k[2])] for k, v in n.items()}
        w = np.array([1.0 if d == 1 else share[(e, s, 1)] / share[(e, s, 0)]
                      for e, s, d in zip(st.e, st["sub"], st.D)])
    hs = [h for h in range(lo, hi + 1) if h != -1]
    X = pd.DataFrame({"const": 1.0, "D": st.D.astype(float)})
    for h in hs:
        X[f"lambda{h}"] = (st.e == h).astype(float)
    for h in hs:
        X[f"delta{h}"] = ((st.e == h) & (st.D == 1)).astype(float)
    fit = sm.WLS(st.lemp.to_numpy(), X, weights=w).fit(cov_type="cluster",
                                                      cov_kwds={"groups": st.countyreal.to_numpy()})
    cols = [f"delta{h}" for h in hs]
    return fit.params[cols].to_numpy(), fit.bse[cols].to_numpy()


@pytest.mark.parametrize("weights", ["corrected", "none"])
@pytest.mark.parametrize("control,window", [("notyet", (-1, 2)), ("never", (-3, 0)), ("notyet", (-1, 1))])
def test_explicit_dummy_wls(mpdta, control, window, weights):
    """statsmodels WLS on the explicit dummies (cluster by county; its default correction is fixest's
    G/(G-1) (N-1)/(N-K) here, K = all 2 + 2 x #event-dummy columns) equals the absorbed fit."""
    beta, se = _explicit_stack(mpdta, window, control, corrected=weights == "corrected")
    fr = _fit(mpdta, control, window, weights=weights).to_frame()
    ev = fr[fr.event_time.notna()]
    np.testing.assert_allclose(ev.estimate, beta, rtol=0, atol=1e-10)
    np.testing.assert_allclose(ev.std_error, se, rtol=1e-8)


@pytest.mark.parametrize("window", [(-1, 0), (-1, 1), (-1, 2), (-3, 0), (-2, 1)])
def test_identity_with_callaway_santanna(mpdta, window):
    """Never-treated controls, balanced panel: delta_h = sum_a N_a ATT(a, a+h) / sum_a N_a over the included
    cohorts, with ATT the CS group-time effect on the universal base period a-1 (exact algebra)."""
    res = _fit(mpdta, "never", window)
    gt = ek.staggered.att_gt(mpdta, outcome="lemp", unit="countyreal", time="year", cohort="first.treat",
                             control="never", base_period="universal", n_boot=0).to_frame()
    cells = {(int(g), int(t)): e for g, t, e in zip(gt.cohort, gt.time, gt.estimate)}
    sub = res.subexperiment_frame()
    for _, row in res.to_frame().dropna(subset=["event_time"]).iterrows():
        h = int(row.event_time)
        want = sum(r.n_treated * cells[(int(r.cohort), int(r.cohort) + h)] for r in sub.itertuples()) / sub.n_treated.sum()
        assert row.estimate == pytest.approx(want, abs=1e-12)
    if window == (-1, 0):  # every cohort included: e = 0 is CS's dynamic aggregate at e = 0
        dyn = ek.staggered.att_gt(mpdta, outcome="lemp", unit="countyreal", time="year", cohort="first.treat",
                                  n_boot=0).aggregate("dynamic").event_frame().set_index("event_time")
        assert res.estimate == pytest.approx(dyn.loc[0, "estimate"], abs=1e-12)
