"""Progress bars: silent library default, tqdm on stderr when asked, results unchanged."""
from __future__ import annotations

import pandas as pd
import pytest

import evalkit as ek
from evalkit._progress import progress_bar, progress_enabled, progress_scope
from evalkit.power.simulate import power_disparity_mc, simulate_disparity_did
from evalkit.report import build_report


@pytest.fixture(scope="module")
def panel_spec():
    df = ek.datasets.load_mpdta()
    df["d"] = ((df["first.treat"] > 0) & (df["year"] >= df["first.treat"])).astype(int)
    spec = {"title": "progress", "data": {"dataset": "mpdta"}, "seed": 3,
            "columns": {"unit": "countyreal", "time": "year", "treatment": "d", "cluster": "countyreal"},
            "designs": [{"name": "lemp", "design": "twfe", "outcome": "lemp", "also_vcov": ["wild"],
                         "options": {"n_boot": 199}}],
            "figures": []}
    return spec, df


def test_progress_switches():
    assert progress_enabled() is False and progress_enabled(True) is True
    with progress_scope(True):
        assert progress_enabled() is True and progress_enabled(False) is False
        with progress_scope(False):
            assert progress_enabled() is False
    assert progress_enabled() is False
    bar = progress_bar(range(3))
    assert list(bar) == [0, 1, 2]
    with progress_bar(total=2) as b:
        b.update(2)


def test_build_report_silent_by_default_and_bars_change_nothing(panel_spec, tmp_path, capsys):
    spec, df = panel_spec
    a = build_report(spec, tmp_path / "a", data=df)
    out, err = capsys.readouterr()
    assert out == "" and err == ""  # library default: nothing on stdout or stderr
    b = build_report(spec, tmp_path / "b", data=df, progress=True)
    out, err = capsys.readouterr()
    assert out == ""
    assert "estimating lemp" in err and "wild bootstrap" in err and "%|" in err  # report steps + nested bootstrap bar
    for k in ("json", "csv", "html"):
        assert a.files[k].read_bytes() == b.files[k].read_bytes(), k


def test_build_report_step_callback(panel_spec, tmp_path, capsys):
    spec, df = panel_spec
    msgs = []
    build_report(spec, tmp_path / "c", data=df, on_step=msgs.append)
    assert msgs[0] == "loading data" and any(m.startswith("estimating lemp") for m in msgs)
    msgs2 = []
    build_report(spec, tmp_path / "d", data=df, progress=msgs2.append)  # old callable form
    assert msgs2 == msgs
    assert capsys.readouterr() == ("", "")


def test_simulation_progress(capsys):
    kw = dict(rho=0.5, n_reps=300, seed=1, chunk=100)
    a = simulate_disparity_did(400, 200, 0.7, 0.6, **kw)
    assert capsys.readouterr() == ("", "")
    b = simulate_disparity_did(400, 200, 0.7, 0.6, progress=True, **kw)
    out, err = capsys.readouterr()
    assert out == "" and "Monte Carlo replications" in err
    pd.testing.assert_frame_equal(a, b)
    p = power_disparity_mc(400, 200, 0.7, 0.6, change=0.05, n_reps=200, seed=2)
    assert capsys.readouterr() == ("", "")
    q = power_disparity_mc(400, 200, 0.7, 0.6, change=0.05, n_reps=200, seed=2, progress=True)
    assert "Monte Carlo replications" in capsys.readouterr().err and p.power == q.power


def test_payout_simulation_progress(capsys):
    from evalkit.equity.payout import linear_schedule, payout_risk

    kw = dict(rho=0.5, schedule=linear_schedule(0.1, 0.5), n_sims=200, seed=1)
    a = payout_risk(4000, 1000, 0.708, 0.638, **kw)
    assert capsys.readouterr() == ("", "")
    b = payout_risk(4000, 1000, 0.708, 0.638, progress=True, **kw)
    assert "Monte Carlo replications" in capsys.readouterr().err
    pd.testing.assert_frame_equal(a.table, b.table)
