"""Report designs att_gt (staggered) and detectability (equity): specs render, results are reproducible."""
from __future__ import annotations


import pytest

import evalkit as ek
from evalkit.errors import SpecificationError
from evalkit.report import build_report, normalize_spec, validate_data
from evalkit.report.build import DESIGNS


@pytest.fixture(scope="module")
def mpdta_csv(tmp_path_factory):
    path = tmp_path_factory.mktemp("gt") / "mpdta.csv"
    ek.datasets.load_mpdta().to_csv(path, index=False)
    return path


@pytest.fixture(scope="module")
def baseline_csv(tmp_path_factory):
    path = tmp_path_factory.mktemp("det") / "baseline.csv"
    ek.equity.example_baseline().to_csv(path, index=False)
    return path


def gt_spec(path, **opts):
    return {"title": "Staggered", "data": {"path": str(path)},
            "columns": {"unit": "countyreal", "time": "year", "cohort": "first.treat"},
            "designs": [{"name": "cs", "design": "att_gt", "outcome": "lemp", "label": "Log teen employment",
                         "options": {"seed": 1, **opts}}]}


def det_spec(path):
    return {"title": "Equity", "data": {"path": str(path)},
            "designs": [{"name": "equity", "design": "detectability", "outcome": "rate", "label": "Gap reduction",
                         "options": {"reduction": 0.5, "post_years": 2}}]}


def test_designs_registered():
    assert {"att_gt", "detectability"} <= set(DESIGNS)
    assert "aggregations" in DESIGNS["att_gt"].options and "reduction" in DESIGNS["detectability"].options


def test_att_gt_report_matches_library_and_r(mpdta_csv, tmp_path):
    rep = build_report(gt_spec(mpdta_csv), tmp_path / "a")
    est = {e["term"]: e for e in rep.results["designs"][0]["estimates"]}
    assert est["ATT (simple)"]["estimate"] == pytest.approx(-0.0399513, abs=1e-7)  # R did::aggte(type="simple")
    gt = ek.staggered.att_gt(ek.datasets.load_mpdta(), outcome="lemp", unit="countyreal", time="year",
                             cohort="first.treat", seed=1)
    dyn = gt.aggregate("dynamic").to_frame()
    for term, v in zip(dyn["term"], dyn["estimate"]):
        assert est[term]["estimate"] == pytest.approx(v, rel=1e-10)
        assert est[term]["aggregation"] == "dynamic"
    assert est["cohort=2004"]["conf_low_simul"] is not None
    pt = rep.results["designs"][0]["pretrend_test"]
    assert pt["df_num"] == 3 and "pre-entry event-time effects (e = -3 to -1)" in pt["description"]
    html = rep.html.read_text()
    assert "pre-entry event-time effects" in html and "Simultaneous (sup-t) bands" in html
    assert html.count("data:image/svg+xml;base64,") == 1  # default figure: the event study


def test_att_gt_results_reproducible(mpdta_csv, tmp_path):
    a = build_report(gt_spec(mpdta_csv), tmp_path / "a")
    b = build_report(gt_spec(mpdta_csv), tmp_path / "b")
    for k in ("json", "csv"):
        assert a.files[k].read_bytes() == b.files[k].read_bytes()


def test_att_gt_on_simulated_data_carries_truth(tmp_path):
    spec = {"title": "CS", "data": {"dataset": "simulate_aqc", "params": {"seed": 3, "n_members": 1500}},
            "columns": {"unit": "member_id", "time": "quarter", "cohort": "entry_quarter", "cluster": "org_id"},
            "designs": [{"name": "cs", "design": "att_gt", "outcome": "spending",
                         "options": {"seed": 7, "n_boot": 99, "min_e": -4, "max_e": 8}}]}
    rep = build_report(spec, tmp_path / "sim")
    d = rep.results["designs"][0]
    _, truth = ek.datasets.simulate_aqc(seed=3, n_members=1500)
    assert d["truth"]["terms"]["ATT (simple)"] == pytest.approx(truth.simple_att("spending"), rel=1e-9)
    assert d["truth"]["terms"]["e=0"] == pytest.approx(
        truth.att_by_event_time("spending", unit="quarter", weighting="cells").loc[0], rel=1e-9)
    assert "cohort=2009Q1" in d["truth"]["terms"]


def test_att_gt_spec_errors(mpdta_csv):
    with pytest.raises(SpecificationError, match=r"unknown option\(s\) \['bogus'\] for design 'att_gt'"):
        normalize_spec(gt_spec(mpdta_csv, bogus=1))
    spec = gt_spec(mpdta_csv, aggregations=["simple"])
    spec["figures"] = [{"type": "event_study", "design": "cs"}]
    with pytest.raises(SpecificationError, match="needs the 'dynamic' aggregation"):
        normalize_spec(spec)
    bad = gt_spec(mpdta_csv)
    bad["columns"].pop("cohort")
    with pytest.raises(SpecificationError, match=r"needs the column role\(s\) \['cohort'\]"):
        normalize_spec(bad)


def test_detectability_report(baseline_csv, tmp_path):
    rep = build_report(det_spec(baseline_csv), tmp_path / "d")
    rows = rep.results["designs"][0]["estimates"]
    exp = ek.equity.detectability(ek.equity.example_baseline(), reduction=0.5, post_years=2)
    assert len(rows) == len(exp)
    for r, (_, e) in zip(rows, exp.iterrows()):
        assert r["estimate"] == pytest.approx(e["baseline_gap_pp"], rel=1e-10)
        assert r["mde_pp"] == pytest.approx(e["mde_pp"], rel=1e-10)
        assert r["candidate"] == bool(e["candidate"]) and r["reason"] == e["reason"]
    html = rep.html.read_text()
    assert "MDE / gap" in html and "power curves" in html
    assert html.count("data:image/svg+xml;base64,") == 1
    again = build_report(det_spec(baseline_csv), tmp_path / "d2")
    assert again.files["json"].read_bytes() == rep.files["json"].read_bytes()
    assert again.files["csv"].read_bytes() == rep.files["csv"].read_bytes()


def test_detectability_contract_and_escaping(baseline_csv, tmp_path):
    b = ek.equity.example_baseline()
    b["system"] = b["system"].replace({"System C (small, mostly White)": "<script>alert('x')</script>"})
    path = tmp_path / "b.csv"
    b.to_csv(path, index=False)
    spec = det_spec(path)
    spec["figures"] = [{"type": "power_curves", "design": "equity", "system": "System A (large, diverse urban)",
                        "group": "Black"}]
    rep = build_report(spec, tmp_path / "esc")
    html = rep.html.read_text()
    assert "<script>alert" not in html and "&lt;script&gt;alert" in html
    # the data contract of a baseline table
    b.loc[0, "rate"] = 70.8
    checks = validate_data(b, normalize_spec(det_spec(path)))
    assert not checks[0].ok and "outside [0, 1]" in checks[0].message
    bad = det_spec(path)
    bad["figures"] = [{"type": "power_curves", "design": "nope"}]
    with pytest.raises(SpecificationError, match="must name a detectability design"):
        normalize_spec(bad)
