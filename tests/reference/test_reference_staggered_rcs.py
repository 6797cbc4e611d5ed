"""``att_gt(..., panel=False)`` (repeated cross-sections) on mpdta against csdid (the Python port of
R did / DRDID), and against hand computations independent of both.

Provenance: ``tests/reference/py/att_gt_rcs_references.py`` (run with the benchmark venv) wrote
``tests/reference/values/mpdta_att_gt_rcs.json``: csdid 0.4.3 ``ATTgt(panel=False)`` with
``est_method`` dr / ipw / reg, never / not-yet-treated controls, with and without ``lpop``, a
universal base period and two row-weighted specs, analytic SEs (``bstrap=False``), and the four
``aggte`` aggregations. mpdta's 2,500 rows are treated as independent observations (as R did's own
``panel=FALSE`` tests). The script also checks csdid against an OLS 2x2 / four-means SE and a
lstsq ``reg_did_rc`` (agreement <= 1e-14, recorded under ``cross_checks``).

Tolerances: ATT 1e-6 absolute (observed ~1e-15), SE 1e-4 relative (observed ~1e-13).
"""
from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

import evalkit as ek

pytestmark = pytest.mark.reference

VALUES = json.loads((Path(__file__).parent / "values" / "mpdta_att_gt_rcs.json").read_text())
DATA = Path(__file__).parent / "data" / "mpdta.csv"
ATT_ATOL = 1e-6
SE_RTOL = 1e-4
_COMP = {"group": "cohort", "dynamic": "event_time", "calendar": "time"}


@pytest.fixture(scope="module")
def mpdta():
    df = pd.read_csv(DATA)
    df["wt"] = 1.0 + (df["countyreal"] % 3)
    return df


_CACHE: dict = {}


def _fit(mpdta, name):
    if name not in _CACHE:
        s = VALUES["specs"][name]
        _CACHE[name] = ek.staggered.att_gt(
            mpdta, outcome="lemp", unit=None, time="year", cohort="first.treat", panel=False,
            control=s["control"], method=s["method"], covariates=tuple(s["covariates"]),
            base_period=s["base_period"], weights=s["weights"], n_boot=0)
    return _CACHE[name]


def test_cross_checks_recorded():
    cc = VALUES["cross_checks"]
    assert cc["nocov_att_ols"] < 1e-10 and cc["nocov_se_four_means"] < 1e-10 and cc["reg_lpop_att_lstsq"] < 1e-10


@pytest.mark.parametrize("name", list(VALUES["specs"]))
def test_cells(mpdta, name):
    fr = _fit(mpdta, name).to_frame()
    want = VALUES["specs"][name]["cells"]
    got = {(int(g), int(t)): (e, s) for g, t, e, s in zip(fr["cohort"], fr["time"], fr["estimate"], fr["std_error"])}
    assert sorted(got) == sorted((c["cohort"], c["time"]) for c in want)
    for c in want:
        est, se = got[(c["cohort"], c["time"])]
        np.testing.assert_allclose(est, c["att"], rtol=0, atol=ATT_ATOL)
        if np.isnan(c["se"]) or c["se"] == 0:  # reference cell of the universal base period
            assert np.isnan(se)
        else:
            np.testing.assert_allclose(se, c["se"], rtol=SE_RTOL)


@pytest.mark.parametrize("kind", ["simple", "group", "dynamic", "calendar"])
@pytest.mark.parametrize("name", list(VALUES["specs"]))
def test_aggregations(mpdta, name, kind):
    agg = _fit(mpdta, name).aggregate(kind)
    want = VALUES["specs"][name]["aggregations"][kind]
    np.testing.assert_allclose(agg.estimate, want["att"], rtol=0, atol=ATT_ATOL)
    np.testing.assert_allclose(agg.std_error, want["se"], rtol=SE_RTOL)
    if kind == "simple":
        return
    col = _COMP[kind]
    key = {"cohort": "group", "event_time": "event_time", "time": "time"}[col]
    comp = agg.event_frame()
    assert [int(v) for v in comp[col]] == [c[key] for c in want["components"]]
    for (_, row), c in zip(comp.iterrows(), want["components"]):
        np.testing.assert_allclose(row["estimate"], c["att"], rtol=0, atol=ATT_ATOL)
        if np.isnan(c["se"]):
            assert np.isnan(row["std_error"])
        else:
            np.testing.assert_allclose(row["std_error"], c["se"], rtol=SE_RTOL)


def test_hand_2x2_without_covariates(mpdta):
    """Independent of csdid: each cell is the OLS interaction of y ~ D + post + D:post on its rows, and its
    SE the IF SE of a difference of four row means."""
    res = _fit(mpdta, "notyet-nocov-reg")
    G, yr, y = mpdta["first.treat"].to_numpy(), mpdta["year"].to_numpy(), mpdta["lemp"].to_numpy()
    for _, row in res.to_frame().iterrows():
        g, t, b = int(row["cohort"]), int(row["time"]), int(row["base_period"])
        ctrl = (G == 0) | ((G > max(t, b)) & (G != g))
        m = np.isin(yr, [t, b]) & ((G == g) | ctrl)
        D, P = (G[m] == g).astype(float), (yr[m] == t).astype(float)
        Z = np.column_stack([np.ones_like(D), D, P, D * P])
        coef = np.linalg.lstsq(Z, y[m], rcond=None)[0]
        assert row["estimate"] == pytest.approx(coef[3], abs=1e-12)
        var = sum(((y[m][k] - y[m][k].mean()) ** 2).sum() / k.sum() ** 2
                  for k in [(D == d) & (P == p) for d in (0, 1) for p in (0, 1)])
        assert row["std_error"] == pytest.approx(np.sqrt(var), rel=1e-10)
        assert row["n_treated"] + row["n_control"] == m.sum()
