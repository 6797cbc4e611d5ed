"""DiD estimates and standard errors against R reference values (tests/reference/values/*.json).

The JSON files were produced by tests/reference/r/twfe_references.R (R 4.2.2, sandwich 3.0.2,
clubSandwich 0.5.8; lm with explicit dummies) on the CSV copies in tests/reference/data/ (provenance
in tests/reference/data/PROVENANCE.md). Each spec records N, G and the K used by each convention.
Tolerances: coefficients 1e-9 relative (deterministic algebra); standard errors, degrees of freedom
and p-values 1e-7 relative (R prints 15 significant digits; both sides are exact algebra).
"""
import json
import warnings
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

import evalkit as ek
from evalkit.inference import ssc

pytestmark = pytest.mark.reference

HERE = Path(__file__).parent
VALUES = HERE / "values"
DATA = HERE / "data"
RTOL_SE = 1e-7


def _spec(file, name):
    return json.loads((VALUES / f"{file}.json").read_text())["specs"][name]


@pytest.fixture(scope="module")
def mpdta():
    m = pd.read_csv(DATA / "mpdta.csv")
    m["d"] = ((m["first.treat"] > 0) & (m["year"] >= m["first.treat"])).astype(int)
    m["lpop_trend"] = m["lpop"] * (m["year"] - 2005)
    m["w_pop"] = np.exp(m["lpop"]) / np.exp(m["lpop"]).mean()
    m["grp12"] = m["countyreal"] % 12
    return m


@pytest.fixture(scope="module")
def card_krueger():
    ck = pd.read_csv(DATA / "card_krueger.csv")
    ck = ck[ck.groupby("store_id")["fte"].transform(lambda s: s.notna().all())].copy()
    ck["d"] = ck["nj"] * ck["wave"]
    return ck


def _quiet(fn, *a, **k):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return fn(*a, **k)


def _se(res, term=None):
    fr = res.to_frame().set_index("term")
    return fr["std_error"].iloc[0] if term is None else fr.loc[term, "std_error"]


# name in the JSON -> (vcov, ssc)
CONVENTIONS = {
    "iid": ("iid", None),
    "HC1": ("HC1", None),
    "CR0": ("CR0", None),
    "CR1": ("CR1", None),
    "CR1_G_only": ("CR1", ssc(k_adj=False)),
    "CR1_all_dummies": ("CR1", ssc(k_fixef="full")),
    "CR2": ("CR2", None),
}


def _check_all_conventions(res, spec, terms=None, skip=()):
    for conv, (vcov, s) in CONVENTIONS.items():
        if conv not in spec["se"] or conv in skip:
            continue
        r = _quiet(res.with_vcov, vcov, ssc=s)
        want = spec["se"][conv]
        if isinstance(want, dict):
            for term, name in (terms or {}).items():
                assert _se(r, term) == pytest.approx(want[name], rel=RTOL_SE), (conv, term)
        else:
            assert r.std_error == pytest.approx(want, rel=RTOL_SE), conv
        if vcov == "CR1":
            assert r.conventions.df == spec["df"]["CR1"]
        if vcov == "CR2":
            want_df = spec["df"]["CR2_satterthwaite"]
            got_df = r.to_frame().set_index("term")["df"]
            if isinstance(want_df, dict):
                for term, name in (terms or {}).items():
                    assert got_df[term] == pytest.approx(want_df[name], rel=1e-6), (conv, term)
            else:
                assert got_df.iloc[0] == pytest.approx(want_df, rel=1e-6)
                assert r.p_value == pytest.approx(spec["p_value"]["CR2_satterthwaite"], rel=1e-6)


def test_mpdta_twfe_every_convention(mpdta):
    spec = _spec("mpdta_twfe", "twfe_cluster_county")
    res = ek.did.twfe(mpdta, outcome="lemp", unit="countyreal", time="year", treatment="d")
    assert res.estimate == pytest.approx(spec["coef"], rel=1e-9)
    assert res.nobs == spec["N"] and res.n_clusters == spec["G"]
    assert res.p_value == pytest.approx(spec["p_value"]["CR1"], rel=1e-6)
    _check_all_conventions(res, spec)


def test_mpdta_twfe_time_varying_covariate(mpdta):
    spec = _spec("mpdta_twfe", "twfe_covariate_cluster_county")
    res = _quiet(ek.did.twfe, mpdta, outcome="lemp", unit="countyreal", time="year", treatment="d", covariates=["lpop_trend"])
    fr = res.to_frame().set_index("term")
    for term in ("d", "lpop_trend"):
        assert fr.loc[term, "estimate"] == pytest.approx(spec["coef"][term], rel=1e-9)
    _check_all_conventions(res, spec, terms={"d": "d", "lpop_trend": "lpop_trend"})


def test_mpdta_year_effects_only(mpdta):
    spec = _spec("mpdta_twfe", "year_fe_lpop_cluster_county")
    res = ek.did.twfe(mpdta, outcome="lemp", unit="countyreal", time="year", treatment="d", covariates=["lpop"],
                      fixed_effects=("time",), cluster="countyreal")
    assert res.estimate == pytest.approx(spec["coef"]["d"], rel=1e-9)
    _check_all_conventions(res, spec, terms={"d": "d", "lpop": "lpop"})


def test_mpdta_weighted(mpdta):
    spec = _spec("mpdta_twfe", "twfe_weighted_cluster_county")
    res = ek.did.twfe(mpdta, outcome="lemp", unit="countyreal", time="year", treatment="d", weights="w_pop")
    assert res.estimate == pytest.approx(spec["coef"], rel=1e-9)
    # weighted CR2 = clubSandwich's default working model (Phi = I: weights are not inverse variances)
    _check_all_conventions(res, spec)


def test_mpdta_weighted_few_clusters_cr1(mpdta):
    spec = _spec("mpdta_twfe", "twfe_weighted_cluster_grp12")
    res = _quiet(ek.did.twfe, mpdta, outcome="lemp", unit="countyreal", time="year", treatment="d", weights="w_pop",
                 cluster="grp12")
    assert res.estimate == pytest.approx(spec["coef"], rel=1e-9)
    # weights vary within the 12 clusters (constant within county, the absorbed nested effect)
    _check_all_conventions(res, spec)


def test_weighted_cr2_refuses_weights_varying_within_absorbed_units(mpdta):
    m = mpdta.assign(w_row=1.0 + (mpdta["year"] - 2003) / 10)
    res = ek.did.twfe(m, outcome="lemp", unit="countyreal", time="year", treatment="d", weights="w_row")
    with pytest.raises(ek.SpecificationError, match="vary within the levels of 'countyreal'"):
        res.with_vcov("CR2")


def test_mpdta_twoway_clustering(mpdta):
    spec = _spec("mpdta_twfe", "twfe_twoway_cluster_county_year")
    res = _quiet(ek.did.twfe, mpdta, outcome="lemp", unit="countyreal", time="year", treatment="d",
                 cluster=["countyreal", "year"])
    assert res.std_error == pytest.approx(spec["se"]["twoway_fixest"], rel=RTOL_SE)
    assert res.conventions.df == spec["df"]["twoway_fixest"]
    conv = _quiet(res.with_vcov, "CR1", ssc=ssc(G_df="conventional"))
    assert conv.std_error == pytest.approx(spec["se"]["twoway_fixest_conventional"], rel=RTOL_SE)
    cr0 = _quiet(res.with_vcov, "CR0")
    assert cr0.std_error == pytest.approx(spec["se"]["twoway_CR0"], rel=RTOL_SE)


def test_mpdta_twelve_clusters_cr2_with_nested_units(mpdta):
    spec = _spec("mpdta_twfe", "twfe_cluster_grp12")
    with pytest.warns(ek.FewClustersWarning, match="12 clusters"):
        res = ek.did.twfe(mpdta, outcome="lemp", unit="countyreal", time="year", treatment="d", cluster="grp12")
    _check_all_conventions(res, spec)


def test_mpdta_event_study(mpdta):
    spec = _spec("mpdta_event_study", "event_study_cluster_county")
    es = _quiet(ek.did.event_study, mpdta, outcome="lemp", unit="countyreal", time="year", cohort="first.treat")
    fr = es.to_frame().set_index("event_time")
    for e, v in spec["coef"].items():
        assert fr.loc[int(e), "estimate"] == pytest.approx(v, rel=1e-8)
    for conv in ("CR1", "CR2", "iid", "HC1"):
        if conv not in spec["se"]:
            continue
        vcov, s = CONVENTIONS[conv]
        r = _quiet(es.with_vcov, vcov, ssc=s)
        got = r.to_frame().set_index("event_time")["std_error"]
        for e, v in spec["se"][conv].items():
            assert got[int(e)] == pytest.approx(v, rel=RTOL_SE), (conv, e)
    # joint pre-trend test: F = W/q against F(q, G-1) (the Stata `test` convention after clustering)
    wald = spec["pretrend_wald"]["CR1"]
    pt = es.pretrend_test
    assert pt["df_num"] == wald["F_df1"] and pt["df_den"] == wald["F_df2_G_minus_1"]
    assert pt["statistic"] == pytest.approx(wald["F"], rel=1e-7)
    assert pt["p_value"] == pytest.approx(wald["F_p_G_minus_1"], rel=1e-6)


def test_card_krueger_store_and_wave_effects(card_krueger):
    spec = _spec("card_krueger_twfe", "twfe_cluster_store")
    res = ek.did.twfe(card_krueger, outcome="fte", unit="store_id", time="wave", treatment="d")
    assert res.estimate == pytest.approx(2.75, rel=1e-9)
    assert res.nobs == 768 and res.n_clusters == 384
    _check_all_conventions(res, spec)
    # the published 2.75 (1.34) is the Welch SE = CR2 clustered by store
    assert round(res.with_vcov("CR2").std_error, 2) == spec["published"]["se"]


def test_card_krueger_pooled_2x2(card_krueger):
    spec = _spec("card_krueger_twfe", "pooled_2x2_cluster_store")
    res = ek.did.did_2x2(card_krueger, outcome="fte", group="nj", time="wave", cluster="store_id", vcov="CR1")
    assert res.estimate == pytest.approx(spec["coef"], rel=1e-9)
    for conv in ("CR0", "CR1", "CR2", "iid", "HC1"):
        vcov, s = CONVENTIONS[conv]
        r = _quiet(res.with_vcov, vcov, ssc=s or ssc(k_fixef="full"))
        assert r.std_error == pytest.approx(spec["se"][conv], rel=RTOL_SE), conv


@pytest.mark.parametrize("name,covs", [
    ("rprice_2x2", []),
    ("rprice_2x2_age", ["age", "agesq"]),
    ("rprice_2x2_full", ["age", "agesq", "intst", "land", "area", "rooms", "baths"]),
    ("lprice_2x2", []),
    ("lprice_2x2_full", ["age", "agesq", "lintst", "lland", "larea", "rooms", "baths"]),
])
def test_kielmc_incinerator_2x2(name, covs):
    spec = _spec("kielmc_2x2", name)
    k = pd.read_csv(DATA / "kielmc.csv")
    outcome = name.split("_")[0]
    res = ek.did.did_2x2(k, outcome=outcome, group="nearinc", time="year", covariates=covs, vcov="iid")
    assert res.estimate == pytest.approx(spec["coef"], rel=1e-9)
    assert res.std_error == pytest.approx(spec["se"]["iid"], rel=RTOL_SE)
    assert res.with_vcov("HC1").std_error == pytest.approx(spec["se"]["HC1"], rel=RTOL_SE)
    # published (Wooldridge Example 13.3) to the printed precision
    assert res.estimate == pytest.approx(spec["published"]["coef"], abs=0.006 * max(1, abs(spec["published"]["coef"]) / 100))


def test_kielmc_few_neighbourhood_clusters():
    spec = _spec("kielmc_2x2", "rprice_2x2_cluster_nbh")
    k = pd.read_csv(DATA / "kielmc.csv")
    with pytest.warns(ek.FewClustersWarning):
        res = ek.did.did_2x2(k, outcome="rprice", group="nearinc", time="year", cluster="nbh", vcov="CR1")
    assert res.std_error == pytest.approx(spec["se"]["CR1"], rel=RTOL_SE)
    assert res.conventions.df == spec["df"]["CR1"]
    cr2 = _quiet(res.with_vcov, "CR2")
    assert cr2.std_error == pytest.approx(spec["se"]["CR2"], rel=RTOL_SE)
    assert cr2.to_frame()["df"].iloc[0] == pytest.approx(spec["df"]["CR2_satterthwaite"], rel=1e-6)


@pytest.mark.parametrize("state", ["kentucky", "michigan"])
def test_injury_workers_compensation_2x2(state):
    spec = _spec("injury_2x2", f"{state}_2x2")
    d = pd.read_csv(DATA / "injury.csv")
    d = d[d["ky" if state == "kentucky" else "mi"] == 1]
    res = ek.did.did_2x2(d, outcome="ldurat", group="highearn", time="afchnge", vcov="iid")
    assert res.estimate == pytest.approx(spec["coef"], rel=1e-9)
    assert res.std_error == pytest.approx(spec["se"]["iid"], rel=RTOL_SE)
    assert res.with_vcov("HC1").std_error == pytest.approx(spec["se"]["HC1"], rel=RTOL_SE)
    assert round(res.estimate, 3) == spec["published"]["coef"]
    assert round(res.std_error, 3) == spec["published"]["se"]
