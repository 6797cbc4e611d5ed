"""The report's data-contract table states, per design, which checks ran (validate_panel only for panel designs)."""
from __future__ import annotations

import re

from evalkit.report import build_report, normalize_spec, validate_data
from evalkit.report.build import DESIGNS, PANEL_CHECKS, load_data


def spec():
    return {"title": "contract", "seed": 3, "data": {"dataset": "simulate_aqc", "params": {"n_members": 600}},
            "columns": {"unit": "member_id", "time": "quarter", "treatment": "aqc", "cluster": "org_id"},
            "designs": [{"name": "spend", "design": "twfe", "outcome": "spending"},
                        {"name": "gaps", "design": "stratified_gaps", "outcome": "hba1c_test", "subset": {"year": 2008},
                         "options": {"group": "race_eth", "system": "contract", "dropna": True}}],
            "figures": []}


def test_checks_declared_per_design():
    for name in ("twfe", "event_study", "did_2x2", "att_gt", "price_utilization"):
        assert DESIGNS[name].checks == PANEL_CHECKS
    for name in ("match", "stratified_gaps", "detectability", "palliative"):
        assert DESIGNS[name].checks and "validate_panel" not in DESIGNS[name].checks, name


def test_contract_table_is_truthful(tmp_path):
    s = normalize_spec(spec())
    checks = {c.design: c for c in validate_data(load_data(s["data"]).frame, s)}
    assert "validate_panel" in checks["spend"].checks and "validate_panel" not in checks["gaps"].checks
    html = build_report(spec(), tmp_path / "r").html.read_text()
    section = html.split('<section id="data-contract">')[1].split("</section>")[0]
    assert "Each design's data were checked by <code>evalkit.data.validate_panel</code>" not in html
    rows = {re.search(r"<td>([^<]+)</td>", r).group(1): r for r in section.split("<tr>")[2:]}
    assert "evalkit.data.validate_panel" in rows["spend"]
    assert "validate_panel" not in rows["gaps"] and "binary (0/1) outcome" in rows["gaps"]
