"""Report designs match (evalkit.matching, MatchIt conventions) and stratified_gaps (equity)."""
from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest

import evalkit as ek
from evalkit.errors import SpecificationError
from evalkit.report import build_report, normalize_spec, validate_data
from evalkit.report.build import DESIGNS

LALONDE = Path(__file__).resolve().parents[2] / "reference" / "data" / "lalonde.csv"
COVS = ["age", "educ", "race", "married", "nodegree", "re74", "re75"]


@pytest.fixture(scope="module")
def lalonde_csv(tmp_path_factory):
    path = tmp_path_factory.mktemp("lalonde") / "lalonde.csv"
    pd.read_csv(LALONDE).to_csv(path, index=False)
    return path


def match_spec(path, covariates=COVS, **opts):
    return {"title": "NSW job training (Lalonde)", "data": {"path": str(path)},
            "columns": {"treatment": "treat", "covariates": list(covariates)},
            "designs": [{"name": "nsw", "design": "match", "outcome": "re78", "label": "Earnings 1978 ($)",
                         "options": {"method": "nearest", "distance": "logit", "ratio": 1, "replace": False, **opts}}]}


def test_match_design_registered_with_options():
    opts = set(DESIGNS["match"].options)
    assert {"method", "distance", "ratio", "replace", "caliper", "exact", "seed", "outcomes", "vcov"} <= opts
    assert DESIGNS["match"].required == ("treatment", "covariates")
    assert "group" in DESIGNS["stratified_gaps"].options and "min_denominator" in DESIGNS["stratified_gaps"].options


def test_match_report_reproduces_matchit_and_is_deterministic(lalonde_csv, tmp_path):
    a = build_report(match_spec(lalonde_csv), tmp_path / "a")
    rec = a.results["designs"][0]
    att = rec["estimates"][0]
    assert att["term"] == "ATT"
    assert att["estimate"] == pytest.approx(894.3675, abs=5e-5)  # MatchIt 4.7.2, 1:1 nearest, logit PS
    assert att["std_error"] == pytest.approx(705.2298, abs=5e-5)  # pair-clustered CR1 (vcovCL)
    assert rec["conventions"]["vcov_type"] == "CR1"
    det = rec["details"]
    ss = {r["sample"]: r for r in det["sample_sizes"]}
    assert ss["All"]["treated"] == 185 and ss["All"]["control"] == 429 and ss["Matched"]["control"] == 185
    bal = {r["covariate"]: r for r in det["balance"]}
    assert {"distance", "age", "raceblack", "re74"} <= set(bal)
    m = ek.matching.match(pd.read_csv(LALONDE), treatment="treat", covariates=COVS)
    lib = m.balance()
    assert bal["age"]["smd_after"] == pytest.approx(lib.loc["age", "smd_after"], rel=1e-10)
    assert bal["age"]["smd_denominator"] == pytest.approx(lib.loc["age", "smd_denominator"], rel=1e-10)
    assert bal["re74"]["var_ratio_before"] is not None and bal["married"]["var_ratio_before"] is None  # binary: none
    assert "treated group's SD in the unmatched" in det["smd_denominator"]
    # the ATT reaches results.csv; the HTML states the conventions and embeds love + overlap plots
    csv = pd.read_csv(a.files["csv"])
    row = csv.loc[(csv["design"] == "nsw") & (csv["term"] == "ATT")].iloc[0]
    assert row["estimate"] == pytest.approx(894.36748, abs=1e-4) and row["vcov"] == "CR1"
    html = a.html.read_text()
    assert html.count("data:image/svg+xml;base64,") == 2
    assert "Covariate balance" in html and "SMD denominator s" in html and "Var. ratio after" in html
    assert "unmatched, unweighted sample (MatchIt" in html and "Standard error of the ATT: <strong>CR1" in html
    # byte-identical results across two runs
    b = build_report(match_spec(lalonde_csv), tmp_path / "b")
    for k in ("json", "csv"):
        assert a.files[k].read_bytes() == b.files[k].read_bytes()


def test_match_report_options_and_several_outcomes(lalonde_csv, tmp_path):
    spec = match_spec(lalonde_csv, caliper=0.1, outcomes=["re75"])
    spec["figures"] = [{"type": "love", "design": "nsw", "threshold": 0.05}]
    rep = build_report(spec, tmp_path / "cal")
    est = {e["term"]: e for e in rep.results["designs"][0]["estimates"]}
    assert est["ATT (re78)"]["estimate"] == pytest.approx(1835.4077, abs=5e-5)  # MatchIt, caliper 0.1
    assert est["ATT (re78)"]["std_error"] == pytest.approx(1026.5564, abs=5e-5)
    assert est["ATT (re75)"]["outcome"] == "re75"
    assert rep.html.read_text().count("data:image/svg+xml;base64,") == 1
    rep2 = build_report(match_spec(lalonde_csv, ratio=2, replace=True), tmp_path / "rep")
    e = rep2.results["designs"][0]["estimates"][0]
    assert e["estimate"] == pytest.approx(1792.4098, abs=5e-5) and rep2.results["designs"][0]["conventions"]["vcov_type"] == "HC3"


def test_match_spec_and_contract_errors(lalonde_csv):
    with pytest.raises(SpecificationError, match=r"unknown option\(s\) \['bogus'\] for design 'match'"):
        normalize_spec(match_spec(lalonde_csv, bogus=1))
    bad = match_spec(lalonde_csv)
    bad["columns"].pop("covariates")
    with pytest.raises(SpecificationError, match=r"needs the column role\(s\) \['covariates'\]"):
        normalize_spec(bad)
    spec = match_spec(lalonde_csv)
    spec["figures"] = [{"type": "overlap", "design": "nope"}]
    with pytest.raises(SpecificationError, match="must name a match or palliative design"):
        normalize_spec(spec)
    df = pd.read_csv(LALONDE)
    checks = validate_data(df.drop(columns=["re74"]), normalize_spec(match_spec(lalonde_csv)))
    assert not checks[0].ok and "'re74' (the covariate)" in checks[0].message
    df.loc[3, "treat"] = 2
    checks = validate_data(df, normalize_spec(match_spec(lalonde_csv)))
    assert not checks[0].ok and "must be 0/1" in checks[0].message


def test_script_in_covariate_name_is_escaped_in_balance_table(tmp_path):
    evil = "<script>alert('x')</script>"
    df = pd.read_csv(LALONDE).rename(columns={"age": evil})
    path = tmp_path / "evil.csv"
    df.to_csv(path, index=False)
    rep = build_report(match_spec(path, covariates=[evil, "educ", "re74", "re75"]), tmp_path / "esc")
    assert evil in {r["covariate"] for r in rep.results["designs"][0]["details"]["balance"]}  # the raw name in JSON
    html = rep.html.read_text()
    assert "<script" not in html
    assert "<td>&lt;script&gt;alert(&#39;x&#39;)&lt;/script&gt;</td>" in html  # the balance-table row, escaped


# ----------------------------------------------------------------------------------------------
# stratified gaps


def gaps_spec(**opts):
    return {"title": "Quality by race/ethnicity", "data": {"dataset": "simulate_aqc", "params": {"seed": 1, "n_members": 2000}},
            "designs": [{"name": "hba1c_gaps", "design": "stratified_gaps", "outcome": "hba1c_test", "label": "HbA1c testing, 2008",
                         "subset": {"year": 2008},
                         "options": {"group": "race_eth", "system": "contract", "dropna": True, **opts}}]}


def test_stratified_gaps_report_matches_library_with_suppression(tmp_path):
    rep = build_report(gaps_spec(), tmp_path / "g")
    rec = rep.results["designs"][0]
    df, _ = ek.datasets.simulate_aqc(seed=1, n_members=2000)
    d = df[(df["year"] == 2008) & df["hba1c_test"].notna()].assign(race_eth=lambda x: x["race_eth"].astype(str),
                                                                      contract=lambda x: x["contract"].astype(str))
    lib = ek.equity.stratified_gaps(d, "hba1c_test", "race_eth", system="contract")
    rates = rec["details"]["rates"]
    assert len(rates) == len(lib) == 10
    for r, (_, e) in zip(rates, lib.iterrows()):
        assert (r["system"], r["group"], r["suppressed"]) == (e["contract"], e["race_eth"], bool(e["suppressed"]))
        if e["suppressed"]:  # small cells: nothing but the flag
            assert r["rate_pct"] is None and r["denominator"] is None and r["numerator"] is None and r["gap_pp"] is None
        else:
            assert r["rate_pct"] == pytest.approx(100 * e["rate"], rel=1e-10)
            assert r["conf_low_pct"] == pytest.approx(100 * e["conf_low"], rel=1e-10)
            assert r["denominator"] == e["denominator"]
            if np.isfinite(e["gap"]):
                assert r["gap_pp"] == pytest.approx(100 * e["gap"], rel=1e-10)
    assert sum(r["suppressed"] for r in rates) == 3  # non-contracting: Black 4, Asian 4, Other 10 patients
    est = {e["term"]: e for e in rec["estimates"]}
    assert len(est) == 8 and est["False | Black vs White"]["estimate"] is None
    ok = est["True | Hispanic vs White"]
    assert ok["conf_high"] - ok["estimate"] == pytest.approx(ok["estimate"] - ok["conf_low"], rel=1e-9)
    assert "truth" not in rec  # no planted counterpart of a gap
    html = rep.html.read_text()
    assert html.count("data:image/svg+xml;base64,") == 1 and "suppressed (small cell)" in html and "&lt;11" in html
    again = build_report(gaps_spec(), tmp_path / "g2")
    assert again.files["json"].read_bytes() == rep.files["json"].read_bytes()
    assert again.files["csv"].read_bytes() == rep.files["csv"].read_bytes()


def test_stratified_gaps_contract_and_figure_options(tmp_path):
    df, _ = ek.datasets.simulate_aqc(seed=1, n_members=500)
    spec = gaps_spec(dropna=False)
    checks = validate_data(df, normalize_spec(spec))
    assert not checks[0].ok and "dropna" in checks[0].message
    spec = gaps_spec(reference="Martian")
    checks = validate_data(df, normalize_spec(spec))
    assert not checks[0].ok and "reference='Martian'" in checks[0].message
    spec = gaps_spec()
    spec["figures"] = [{"type": "gaps", "design": "hba1c_gaps", "systems": ["True"], "title": "Contracting systems"}]
    rep = build_report(spec, tmp_path / "fig")
    assert rep.html.read_text().count("data:image/svg+xml;base64,") == 1
    spec["figures"] = [{"type": "gaps", "design": "hba1c_gaps", "systems": ["Mars"]}]
    with pytest.raises(ek.errors.DataError, match="not in the table"):
        build_report(spec, tmp_path / "fig2")
