"""Callaway-Sant'Anna ATT(g,t) and aggregations on mpdta against R ``did`` 2.x.

Provenance: R ``did`` 2.x, ``att_gt(yname="lemp", tname="year", idname="countyreal",
gname="first.treat", data=mpdta, est_method="dr", base_period="varying", bstrap=FALSE,
control_group=..., xformla=...)`` and ``aggte(type=..., bstrap=FALSE)``; values as recorded in the
project's shared reference README ("Callaway-Sant'Anna" tables: never-treated no covariates;
never-treated ~lpop; not-yet-treated with and without ~lpop; universal base period event study).
Analytic SEs: se = sqrt(mean(IF^2)/n), n = 500 counties. R prints 7 decimals, so estimates are
compared at 2e-7 absolute (rounding) and SEs at 1e-4 relative.
"""
from __future__ import annotations

import numpy as np
import pytest

import evalkit as ek

pytestmark = pytest.mark.reference

CELLS = [(2004, 2004), (2004, 2005), (2004, 2006), (2004, 2007), (2006, 2004), (2006, 2005),
         (2006, 2006), (2006, 2007), (2007, 2004), (2007, 2005), (2007, 2006), (2007, 2007)]

# (control, covariates) -> {"gt": [(att, se) in CELLS order], "agg": {...}, "dyn": {e: (att, se)}, ...}
REF = {
    ("never", ()): {
        "gt": [(-0.0105032, 0.0232510), (-0.0704232, 0.0309848), (-0.1372587, 0.0364357), (-0.1008114, 0.0343592),
               (0.0065201, 0.0233268), (-0.0027508, 0.0195586), (-0.0045946, 0.0177552), (-0.0412245, 0.0202292),
               (0.0305067, 0.0150336), (-0.0027259, 0.0163958), (-0.0310871, 0.0178775), (-0.0260544, 0.0166554)],
        "overall": {"simple": (-0.0399513, 0.0120340), "dynamic": (-0.0772398, 0.0199650),
                    "group": (-0.0310183, 0.0124461), "calendar": (-0.0417004, 0.0159719)},
        "dynamic": {-3: (0.0305067, 0.0150336), -2: (-0.0005631, 0.0132916), -1: (-0.0244587, 0.0142364),
                    0: (-0.0199318, 0.0118264), 1: (-0.0509574, 0.0168935), 2: (-0.1372587, 0.0364357),
                    3: (-0.1008114, 0.0343592)},
        "group": {2004: (-0.0797491, 0.0263678), 2006: (-0.0229095, 0.0167033), 2007: (-0.0260544, 0.0166554)},
        "calendar": {2004: (-0.0105032, 0.0232510), 2005: (-0.0704232, 0.0309848), 2006: (-0.0488160, 0.0201259),
                     2007: (-0.0370593, 0.0137471)},
    },
    ("never", ("lpop",)): {
        "gt": [(-0.0145297, 0.0221292), (-0.0764219, 0.0286713), (-0.1404483, 0.0353782), (-0.1069039, 0.0328865),
               (-0.0004721, 0.0222234), (-0.0062025, 0.0184957), (0.0009606, 0.0194002), (-0.0412939, 0.0197211),
               (0.0267278, 0.0140657), (-0.0045766, 0.0157178), (-0.0284475, 0.0181809), (-0.0287814, 0.0162390)],
        "overall": {"simple": (-0.0417518, 0.0115028), "dynamic": (-0.0803539, 0.0189576),
                    "group": (-0.0328196, 0.0118982), "calendar": (-0.0441774, 0.0150382)},
        "dynamic": {-3: (0.0267278, 0.0140657), -2: (-0.0036165, 0.0129283), -1: (-0.0232440, 0.0144851),
                    0: (-0.0210604, 0.0114942), 1: (-0.0530032, 0.0163465), 2: (-0.1404483, 0.0353782),
                    3: (-0.1069039, 0.0328865)},
        "group": {2004: (-0.0845759, 0.0245649), 2006: (-0.0201666, 0.0174696), 2007: (-0.0287814, 0.0162390)},
        "calendar": {2004: (-0.0145297, 0.0221292), 2005: (-0.0764219, 0.0286713), 2006: (-0.0461757, 0.0212107),
                     2007: (-0.0395822, 0.0129299)},
    },
    ("notyet", ()): {
        "gt": [(-0.0193724, 0.0223101), (-0.0783191, 0.0303902), (-0.1362743, 0.0354034), (-0.1008114, 0.0343592),
               (-0.0025626, 0.0225302), (-0.0019392, 0.0190422), (0.0046609, 0.0163356), (-0.0412245, 0.0202292),
               (0.0297594, 0.0145335), (-0.0024106, 0.0160313), (-0.0310871, 0.0178775), (-0.0260544, 0.0166554)],
        "overall": {"simple": (-0.0397636, 0.0120524), "dynamic": (-0.0773993, 0.0195602),
                    "group": (-0.0304622, 0.0125751), "calendar": (-0.0442671, 0.0155709)},
        "dynamic": {-3: (0.0297594, 0.0145335), -2: (-0.0024462, 0.0131204), -1: (-0.0242689, 0.0144637),
                    0: (-0.0189222, 0.0120446), 1: (-0.0535893, 0.0169464), 2: (-0.1362743, 0.0354034),
                    3: (-0.1008114, 0.0343592)},
        "group": {2004: (-0.0836943, 0.0257016), 2006: (-0.0182818, 0.0159222), 2007: (-0.0260544, 0.0166554)},
        "calendar": {2004: (-0.0193724, 0.0223101), 2005: (-0.0783191, 0.0303902), 2006: (-0.0423175, 0.0190563),
                     2007: (-0.0370593, 0.0137471)},
    },
    ("notyet", ("lpop",)): {
        "gt": [(-0.0211831, 0.0216482), (-0.0816032, 0.0283415), (-0.1381918, 0.0342280), (-0.1069039, 0.0328865),
               (-0.0074552, 0.0218357), (-0.0045634, 0.0182914), (0.0086607, 0.0168391), (-0.0412939, 0.0197211),
               (0.0269327, 0.0139136), (-0.0042010, 0.0155484), (-0.0284475, 0.0181809), (-0.0287814, 0.0162390)],
        "overall": {"simple": (-0.0413516, 0.0114278), "dynamic": (-0.0799926, 0.0184940),
                    "group": (-0.0322640, 0.0119834), "calendar": (-0.0456646, 0.0146983)},
        "dynamic": {-3: (0.0269327, 0.0139136), -2: (-0.0049622, 0.0128047), -1: (-0.0228606, 0.0146118),
                    0: (-0.0201445, 0.0116323), 1: (-0.0547303, 0.0164000), 2: (-0.1381918, 0.0342280),
                    3: (-0.1069039, 0.0328865)},
        "group": {2004: (-0.0869705, 0.0240620), 2006: (-0.0163166, 0.0161883), 2007: (-0.0287814, 0.0162390)},
        "calendar": {2004: (-0.0211831, 0.0216482), 2005: (-0.0816032, 0.0283415), 2006: (-0.0402901, 0.0192635),
                     2007: (-0.0395822, 0.0129299)},
    },
}

# base_period="universal", never treated, no covariates: aggte(type="dynamic"); e = -1 is the reference (0, no SE)
UNIVERSAL_DYNAMIC = {-4: (0.0033064, 0.0244519), -3: (0.0250218, 0.0181189), -2: (0.0244587, 0.0142364),
                     -1: (0.0, None), 0: (-0.0199318, 0.0118264), 1: (-0.0509574, 0.0168935),
                     2: (-0.1372587, 0.0364357), 3: (-0.1008114, 0.0343592)}
UNIVERSAL_OVERALL = (-0.0772398, 0.0199650)

EST_ATOL = 2e-7
SE_RTOL = 1e-4


@pytest.fixture(scope="module")
def mpdta():
    return ek.datasets.load_mpdta()


_CACHE: dict = {}


def _fit(mpdta, control, covariates, base_period="varying"):
    key = (control, covariates, base_period)
    if key not in _CACHE:
        _CACHE[key] = ek.staggered.att_gt(mpdta, outcome="lemp", unit="countyreal", time="year", cohort="first.treat",
                                          control=control, method="dr", covariates=covariates,
                                          base_period=base_period, n_boot=0)
    return _CACHE[key]


def _check(got_est, got_se, want):
    est, se = want
    np.testing.assert_allclose(got_est, est, rtol=0, atol=EST_ATOL)
    if se is None:
        assert np.isnan(got_se)
    else:
        np.testing.assert_allclose(got_se, se, rtol=SE_RTOL)


@pytest.mark.parametrize("spec", list(REF), ids=lambda s: f"{s[0]}-{'+'.join(s[1]) or 'nocov'}")
def test_att_gt_cells(mpdta, spec):
    res = _fit(mpdta, *spec)
    fr = res.to_frame()
    got = {(int(g), int(t)): (e, s) for g, t, e, s in zip(fr["cohort"], fr["time"], fr["estimate"], fr["std_error"])}
    assert sorted(got) == sorted(CELLS)
    for cell, want in zip(CELLS, REF[spec]["gt"]):
        _check(*got[cell], want)


@pytest.mark.parametrize("kind", ["simple", "group", "dynamic", "calendar"])
@pytest.mark.parametrize("spec", list(REF), ids=lambda s: f"{s[0]}-{'+'.join(s[1]) or 'nocov'}")
def test_aggregations(mpdta, spec, kind):
    agg = _fit(mpdta, *spec).aggregate(kind)
    _check(agg.estimate, agg.std_error, REF[spec]["overall"][kind])
    if kind == "simple":
        return
    col = {"dynamic": "event_time", "group": "cohort", "calendar": "time"}[kind]
    comp = agg.event_frame()
    assert [int(v) for v in comp[col]] == list(REF[spec][kind])
    for (_, row), want in zip(comp.iterrows(), REF[spec][kind].values()):
        _check(row["estimate"], row["std_error"], want)


def test_universal_base_period_event_study(mpdta):
    agg = _fit(mpdta, "never", (), "universal").aggregate("dynamic")
    _check(agg.estimate, agg.std_error, UNIVERSAL_OVERALL)
    comp = agg.event_frame()
    assert [int(v) for v in comp["event_time"]] == list(UNIVERSAL_DYNAMIC)
    for (_, row), want in zip(comp.iterrows(), UNIVERSAL_DYNAMIC.values()):
        _check(row["estimate"], row["std_error"], want)


@pytest.mark.parametrize("method", ["ipw", "reg"])
def test_methods_equal_without_covariates(mpdta, method):
    """Without covariates every method is the difference of mean changes (and has the same IF)."""
    dr = _fit(mpdta, "never", ())
    other = ek.staggered.att_gt(mpdta, outcome="lemp", unit="countyreal", time="year", cohort="first.treat",
                                method=method, n_boot=0)
    np.testing.assert_allclose(other.to_frame()["estimate"], dr.to_frame()["estimate"], rtol=0, atol=1e-12)
    np.testing.assert_allclose(other.to_frame()["std_error"], dr.to_frame()["std_error"], rtol=1e-10)
