"""Report design ``palliative`` (evalkit.palliative): matched PMPM savings, balance, net benefit, sensitivity."""
from __future__ import annotations

import copy
from pathlib import Path

import pandas as pd
import pytest
import yaml

import evalkit as ek
from evalkit.errors import SpecificationError
from evalkit.report import build_report, normalize_spec, validate_data
from evalkit.report.build import DESIGNS, load_data

EXAMPLE = Path(__file__).resolve().parents[3] / "reports" / "examples" / "palliative.yaml"
COVS = ["age", "female", "diagnosis", "comorbidities", "frailty"]


def pal_spec(n=1500, **opts):
    return {"title": "Home palliative care", "seed": 11,
            "data": {"dataset": "simulate_palliative", "params": {"n_decedents": n, "seed": 2024}},
            "columns": {"unit": "patient_id", "time": "months_before_death", "treatment": "enrolled", "covariates": COVS},
            "designs": [{"name": "palliative", "design": "palliative", "outcome": "spending",
                         "label": "Spending in the last 6 months of life", "units": "$ per member per month",
                         "options": {"program_cost": 2714, "ffs_share": 0.5, "payer_share": 0.5, "seed": 7, **opts}}]}


@pytest.fixture(scope="module")
def report(tmp_path_factory):
    return build_report(pal_spec(), tmp_path_factory.mktemp("pal") / "a")


def test_palliative_registered_with_options():
    ds = DESIGNS["palliative"]
    assert ds.required == ("unit", "time", "treatment")
    assert {"program_cost", "payer_share", "ffs_share", "caliper", "window", "lookback", "sensitivity", "seed"} <= set(ds.options)
    assert "analysis_frame" in ds.checks and "validate_panel" not in ds.checks


def test_palliative_report_matches_library(report):
    rec = report.results["designs"][0]
    est = {e["term"]: e for e in rec["estimates"]}
    assert list(est) == ["PMPM (member-month)", "PMPM (patient average)", "PMPM (matched DiD)", "Total per patient",
                         "Net benefit per patient (ACO)"]
    df, truth = ek.palliative.simulate_palliative(n_decedents=1500, seed=2024)
    ev = ek.palliative.palliative_evaluation(df, seed=7)
    assert est["PMPM (member-month)"]["estimate"] == pytest.approx(ev.pmpm.estimate, rel=1e-10)
    assert est["PMPM (member-month)"]["std_error"] == pytest.approx(ev.pmpm.std_error, rel=1e-10)
    assert est["PMPM (matched DiD)"]["estimate"] == pytest.approx(ev.did.estimate, rel=1e-10)
    nb = ek.palliative.net_benefit(ev.pmpm, months_enrolled=ev.months_enrolled, program_cost=2714, ffs_share=0.5,
                                   payer_share=0.5)
    assert est["Net benefit per patient (ACO)"]["estimate"] == pytest.approx(nb.estimate, rel=1e-10)
    assert est["Net benefit per patient (ACO)"]["conf_low"] == pytest.approx(nb.conf_low, rel=1e-10)
    assert rec["conventions"]["vcov_type"] == "CR1"
    # planted truth on the matched enrolled patients
    ids = ev.frame.loc[ev.matched.matched & (ev.matched.treat == 1), "patient_id"]
    assert rec["truth"]["terms"]["PMPM (member-month)"] == pytest.approx(truth.pmpm(ids), rel=1e-10)
    det = rec["details"]
    assert det["net_benefit"]["components"]["net_benefit"] == pytest.approx(nb.estimate, rel=1e-10)
    assert {r["parameter"] for r in det["sensitivity_summary"]} == {"payer_share", "months_enrolled", "program_cost", "ffs_share"}
    sens = pd.DataFrame(det["sensitivity"])
    lib = ek.palliative.net_benefit_sensitivity(ev.pmpm, months_enrolled=ev.months_enrolled, program_cost=2714)
    assert len(sens) == len(lib)
    assert sens["net_benefit"].to_numpy() == pytest.approx(lib["net_benefit"].to_numpy(), rel=1e-10)
    pay = next(r for r in det["sensitivity_summary"] if r["parameter"] == "payer_share")
    assert ek.palliative.net_benefit(-ev.pmpm.estimate, months_enrolled=ev.months_enrolled, program_cost=2714,
                                     payer_share=pay["break_even"]).estimate == pytest.approx(0, abs=1e-4)
    bal = {r["covariate"]: r for r in det["balance"]}
    assert {"frailty", "pre_pmpm", "index_month"} <= set(bal) and abs(bal["index_month"]["smd_after"]) < 1e-12
    # the CSV carries every row, the net benefit included
    csv = pd.read_csv(report.files["csv"])
    assert "Net benefit per patient (ACO)" in set(csv["term"])


def test_palliative_html_states_conventions_and_embeds_figures(report):
    html = report.html.read_text()
    assert html.count("data:image/svg+xml;base64,") == 3  # love, overlap, net-benefit tornado (default figures)
    for text in ("ACO net benefit per enrolled patient", "One-way sensitivity", "Break-even value", "Covariate balance",
                 "Index-date design", "Negative effects are lower spending (savings)", "exact on the index month",
                 "evalkit.palliative.analysis_frame: columns present"):
        assert text in html, text


def test_palliative_report_is_deterministic(report, tmp_path):
    again = build_report(pal_spec(), tmp_path / "b")
    for k in ("json", "csv", "html"):
        assert report.files[k].read_bytes() == again.files[k].read_bytes(), k


def test_palliative_escapes_user_strings(tmp_path):
    evil = "<script>alert('x')</script>"
    spec = pal_spec(n=600)
    spec["title"] = f"Title {evil}"
    spec["description"] = f"Description {evil}"
    d = spec["designs"][0]
    d["label"], d["units"] = f"Label {evil}", f"Units {evil}"
    spec["columns"]["covariates"] = COVS[:-1] + [evil]  # a column name reaching the balance table and notes
    df, _ = ek.palliative.simulate_palliative(n_decedents=600, seed=2024)
    df = df.rename(columns={"frailty": evil})
    rep = build_report(spec, tmp_path / "evil", data=df)
    html = rep.html.read_text()
    assert "<script>" not in html
    assert "&lt;script&gt;" in html


def test_palliative_spec_errors():
    spec = pal_spec()
    del spec["seed"]
    del spec["designs"][0]["options"]["seed"]
    with pytest.raises(SpecificationError, match="seed"):
        normalize_spec(spec)
    spec = pal_spec()
    del spec["designs"][0]["options"]["program_cost"]
    spec["figures"] = [{"type": "net_benefit", "design": "palliative"}]
    with pytest.raises(SpecificationError, match="program_cost"):
        normalize_spec(spec)
    spec = pal_spec(unknown=1)
    with pytest.raises(SpecificationError, match="unknown option"):
        normalize_spec(spec)


def test_palliative_contract_check_and_no_cost(tmp_path):
    spec = normalize_spec(pal_spec(n=600))
    df = load_data(spec["data"]).frame
    ok = validate_data(df, spec)[0]
    assert ok.ok and "decedents" in ok.message and "analysis_frame" in ok.checks
    bad = validate_data(df.drop(columns=["enroll_month"]), spec)[0]
    assert not bad.ok and "enroll_month" in bad.message
    s = pal_spec(n=600)
    del s["designs"][0]["options"]["program_cost"]
    rep = build_report(s, tmp_path / "nocost")
    rec = rep.results["designs"][0]
    assert [e["term"] for e in rec["estimates"]][-1] == "Total per patient"
    assert rec["details"]["net_benefit"] is None
    assert any("No program cost given" in n for n in rec["conventions"]["notes"])
    assert rep.html.read_text().count("data:image/svg+xml;base64,") == 2


def test_example_spec_is_valid():
    raw = yaml.safe_load(EXAMPLE.read_text())
    spec = normalize_spec(copy.deepcopy(raw))
    assert spec["designs"][0]["design"] == "palliative"
    assert spec["data"]["dataset"] == "simulate_palliative"
