"""evalkit.power against R ``pwr`` (tests/reference/values/power_pwr.json) and statsmodels.

The JSON was written by tests/reference/r/power_references.R (R 4.2.2, pwr 1.3.0); each case
records its R call. Mapping (see the R script): two-proportion power uses Cohen's h in both;
the disparity DiD with equal group variances (p = 0.7 vs 0.3), known SE, maps to
``pwr.norm.test(d, n)`` with n = n_R n_M/(n_R+n_M), d = delta/sqrt(2 sigma^2 (1-rho)); with
``distribution="t"``, equal group sizes and no clustering the Satterthwaite df is n1+n2-2 and
power is ``pwr.t2n.test``.
Tolerances: power 1e-10 relative (same closed forms); MDE 1e-6 relative (pwr solves with uniroot
and counts the far tail of a two-sided test, which mde_disparity ignores: < 1e-7 here).
"""
import json
from pathlib import Path

import numpy as np
import pytest

import evalkit.power as pw

pytestmark = pytest.mark.reference

REF = json.loads((Path(__file__).parent / "values" / "power_pwr.json").read_text())


@pytest.mark.parametrize("case", REF["two_proportions_arcsine"], ids=lambda c: c["call"][:60])
def test_two_proportions_vs_pwr_2p2n(case):
    got = pw.power_two_proportions(case["p1"], case["p2"], case["n1"], case["n2"], alpha=case["alpha"],
                                   alternative=case["alternative"])
    np.testing.assert_allclose(got, case["power"], rtol=1e-10)


@pytest.mark.parametrize("case", REF["disparity_norm"], ids=lambda c: c["call"][:60])
def test_disparity_normal_vs_pwr_norm(case):
    kw = dict(rho=case["rho"], alpha=case["alpha"], alternative=case["alternative"])
    got = pw.power_disparity(case["n_r"], case["n_m"], case["p_reference"], case["p_minority"], change=case["delta"],
                             variance="null", **kw)
    np.testing.assert_allclose(got.power, case["power"], rtol=1e-10)
    mde = pw.mde_disparity(case["n_r"], case["n_m"], case["p_reference"], case["p_minority"], **kw)
    np.testing.assert_allclose(mde.mde, case["mde_80"], rtol=1e-6)


@pytest.mark.parametrize("case", REF["disparity_t"], ids=lambda c: c["call"][:60])
def test_disparity_t_vs_pwr_t2n(case):
    kw = dict(rho=case["rho"], alpha=case["alpha"], alternative=case["alternative"], distribution="t")
    got = pw.power_disparity(case["n"], case["n"], case["p_reference"], case["p_minority"], change=case["delta"],
                             variance="null", **kw)
    assert got.df == pytest.approx(2 * case["n"] - 2, rel=1e-12)
    np.testing.assert_allclose(got.power, case["power"], rtol=1e-9)
    mde = pw.mde_disparity(case["n"], case["n"], case["p_reference"], case["p_minority"], **kw)
    np.testing.assert_allclose(mde.mde, case["mde_80"], rtol=1e-6)


@pytest.mark.parametrize("p1, p2, n1, n2, alt", [(0.708, 0.638, 1000, 400, "two-sided"), (0.319, 0.239, 300, 2500, "larger"),
                                                 (0.5, 0.55, 250, 250, "smaller")])
def test_two_proportions_vs_statsmodels(p1, p2, n1, n2, alt):
    from statsmodels.stats.power import NormalIndPower
    from statsmodels.stats.proportion import proportion_effectsize

    h = proportion_effectsize(p1, p2)
    want = NormalIndPower().power(h, nobs1=n1, alpha=0.05 if alt != "larger" else 0.01, ratio=n2 / n1,
                                  alternative={"two-sided": "two-sided", "larger": "larger", "smaller": "smaller"}[alt])
    got = pw.power_two_proportions(p1, p2, n1, n2, alpha=0.05 if alt != "larger" else 0.01, alternative=alt)
    np.testing.assert_allclose(got, want, rtol=1e-10)
