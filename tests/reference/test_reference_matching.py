"""Matching against R MatchIt 4.7.2 on the Lalonde data (tests/reference/values/matchit_lalonde.json).

Provenance of the copies: tests/reference/data/PROVENANCE_matching.md. Tolerances:
* matched sets, weights and pair ids: exact (per unit, lalonde_matchit_units.csv);
* ATT and every SE type: 1e-9 relative (exact algebra once the matched sets agree);
* balance statistics: 1e-8 relative (they involve the propensity score);
* the propensity score: 1e-10 absolute. evalkit runs R's glm.fit IRLS (same start and stopping
  rule), so the scores agree with R's to rounding (2e-13 here), not merely to glm's 1e-8 tolerance.
"""
import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

import evalkit as ek

pytestmark = pytest.mark.reference

HERE = Path(__file__).parent
REF = json.loads((HERE / "values" / "matchit_lalonde.json").read_text())
COV = ["age", "educ", "race", "married", "nodegree", "re74", "re75"]

DESIGNS = {
    "nn_1to1": ({}, "w_nn_1to1", "subclass_nn_1to1"),
    "nn_1to1_caliper0.1": ({"caliper": 0.1}, "w_nn_caliper", "subclass_nn_caliper"),
    "nn_2to1_replace": ({"ratio": 2, "replace": True}, "w_nn_2to1_replace", None),
}
# MatchIt quirk not reproduced: with the caliper, its std_pair_dist for 'educ' is the raw mean
# absolute pair difference (2.3243 = 258/111) while every other row (and 'educ' in the other
# designs) is divided by the treated SD. We report the standardised value for every row.
SKIP_CELLS = {("nn_1to1_caliper0.1", "educ", "std_pair_dist_after")}


@pytest.fixture(scope="module")
def lalonde():
    return pd.read_csv(HERE / "data" / "lalonde.csv")


@pytest.fixture(scope="module")
def units():
    return pd.read_csv(HERE / "data" / "lalonde_matchit_units.csv")


@pytest.fixture(scope="module")
def results(lalonde):
    return {k: ek.matching.match(lalonde, treatment="treat", covariates=COV, method="nearest", **kw)
            for k, (kw, _, _) in DESIGNS.items()}


def test_propensity_model(lalonde, units):
    m = ek.matching.match(lalonde, treatment="treat", covariates=COV)
    coef = REF["meta"]["propensity_model"]["coefficients"]
    np.testing.assert_allclose(m.ps_model.coef[list(coef)].to_numpy(), list(coef.values()), rtol=1e-6)
    np.testing.assert_allclose(m.distance, units["ps"], atol=1e-10, rtol=0)


@pytest.mark.parametrize("key", list(DESIGNS))
def test_matched_sets_exact(key, results, units):
    _, wcol, scol = DESIGNS[key]
    m = results[key]
    np.testing.assert_allclose(m.weights, units[wcol], rtol=0, atol=1e-12)
    if scol:
        got = pd.Series(m.subclass)
        want = units[scol]
        assert (got.isna() == want.isna()).all()
        assert (got[want.notna()].to_numpy() == want[want.notna()].to_numpy()).all()


@pytest.mark.parametrize("key", list(DESIGNS))
def test_att_and_every_se(key, results):
    ref = REF[key]["att"]
    e = ek.matching.estimate_effect(results[key], "re78")
    assert e.estimate == pytest.approx(ref["estimate"], rel=1e-9)
    assert e.conventions.vcov_type == {"CL_default_HC1": "CR1", "HC3": "HC3"}[ref["primary_se_type"]]
    assert e.std_error == pytest.approx(ref["primary"]["se"], rel=1e-9)
    assert e.p_value == pytest.approx(ref["primary"]["p_value_t_df_residual"], rel=1e-9)
    np.testing.assert_allclose(e.table[["conf_low", "conf_high"]].iloc[0], ref["primary"]["ci95_t"], rtol=1e-9)
    assert e.conventions.df == ref["df_residual"]
    assert e.nobs == ref["n_obs"]
    for k, v in ref["se"].items():
        if k in e.extra["se_all"]:
            assert e.extra["se_all"][k] == pytest.approx(v, rel=1e-9), k
    assert e.extra["sum_weights_control"] == pytest.approx(ref["sum_weights_control"], rel=1e-12)


def test_twoway_pair_unit_clustering(results):
    ref = REF["nn_2to1_replace"]["att_get_matches_twoway"]
    e = ek.matching.estimate_effect(results["nn_2to1_replace"], "re78", vcov="twoway")
    assert e.estimate == pytest.approx(ref["estimate"], rel=1e-9)
    assert e.std_error == pytest.approx(ref["se_CL_twoway_subclass_id"], rel=1e-9)
    assert e.extra["n_rows"] == ref["n_rows"]


@pytest.mark.parametrize("key", list(DESIGNS))
def test_balance_tables(key, results):
    want = pd.DataFrame(REF[key]["balance"]).T
    got = results[key].balance()
    assert list(got.index) == list(want.index)
    for col in want.columns:
        for row in want.index:
            w = want.loc[row, col]
            if (key, row, col) in SKIP_CELLS:
                continue
            g = got.loc[row, col]
            if w is None or pd.isna(w):
                assert np.isnan(g), (row, col)
            else:
                assert g == pytest.approx(float(w), rel=1e-8, abs=1e-12), (row, col)


@pytest.mark.parametrize("key", list(DESIGNS))
def test_sample_sizes(key, results):
    want = REF[key]["sample_sizes"]
    ss = results[key].sample_sizes()
    for row in ("All", "Matched", "Unmatched", "Discarded", "Matched (ESS)"):
        for grp in ("control", "treated"):
            assert ss.loc[row, grp] == pytest.approx(want[row][grp], rel=1e-9), (row, grp)


def test_caliper_width(results):
    ref = REF["nn_1to1_caliper0.1"]
    assert results["nn_1to1_caliper0.1"].options["caliper_width"] == pytest.approx(ref["caliper_width_ps_units"], rel=1e-7)


def test_ipw_att(lalonde, units):
    ref = REF["ipw_att"]
    w = ek.matching.weight(lalonde, treatment="treat", covariates=COV, estimand="ATT", method="ipw")
    np.testing.assert_allclose(w.weights, units["w_ipw_att"], rtol=1e-10)
    e = ek.matching.estimate_effect(w, "re78")
    assert e.conventions.vcov_type == ref["att"]["primary_se_type"] == "HC0"
    assert e.estimate == pytest.approx(ref["att"]["estimate"], rel=1e-9)
    assert e.std_error == pytest.approx(ref["att"]["primary"]["se"], rel=1e-9)
    assert e.p_value == pytest.approx(ref["att"]["primary"]["p_value_t_df_residual"], rel=1e-8)
    for k, v in ref["att"]["se"].items():
        assert e.extra["se_all"][k] == pytest.approx(v, rel=1e-9), k
    assert e.extra["sum_weights_control"] == pytest.approx(ref["weights_sum"]["control"], rel=1e-10)
    ss = w.sample_sizes()
    assert ss.loc["Matched (ESS)", "control"] == pytest.approx(ref["ess_control"], rel=1e-9)
    want = pd.DataFrame(ref["balance"]).T.astype(float)
    got = w.balance().loc[want.index, want.columns]
    np.testing.assert_allclose(got.to_numpy(), want.to_numpy(), rtol=1e-8, atol=1e-12)
