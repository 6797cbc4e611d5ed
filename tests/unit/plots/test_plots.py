"""House-style plots: each takes ax=, returns the Axes, never shows; Agg backend."""
from __future__ import annotations

import matplotlib
import matplotlib.pyplot as plt
import numpy as np
import pandas as pd
import pytest
from matplotlib.axes import Axes

import evalkit as ek
from evalkit.errors import SpecificationError
from evalkit.plots import PALETTE, house_style, plot_coefficients, plot_event_study, plot_group_means
from evalkit.plots.style import color_cycle


@pytest.fixture(autouse=True)
def _no_show(monkeypatch):
    def boom(*a, **k):
        raise AssertionError("plot functions must not call plt.show()")

    monkeypatch.setattr(plt, "show", boom)


@pytest.fixture(scope="module")
def mpdta():
    df = ek.datasets.load_mpdta()
    df["d"] = ((df["first.treat"] > 0) & (df["year"] >= df["first.treat"])).astype(int)
    return df


@pytest.fixture(scope="module")
def twfe_by(mpdta):
    return ek.did.twfe(mpdta, outcome="lemp", unit="countyreal", time="year", treatment="d", by="first.treat")


def test_backend_is_agg():
    assert matplotlib.get_backend().lower() == "agg"


def test_palette_is_okabe_ito_and_cycles():
    assert PALETTE["blue"] == "#0072B2" and PALETTE["vermillion"] == "#D55E00"
    cols = color_cycle(10)
    assert len(cols) == 10 and len(set(cols[:8])) == 8
    assert cols[0] == PALETTE["blue"] and cols[1] == PALETTE["vermillion"]  # comparison, treated


def test_house_style_restores_rcparams():
    before = dict(matplotlib.rcParams)
    with house_style():
        assert matplotlib.rcParams["axes.spines.top"] is False
    assert matplotlib.rcParams["axes.spines.top"] == before["axes.spines.top"]


def test_coefficients_from_frame_uses_given_axes():
    frame = pd.DataFrame({"term": ["a", "b"], "estimate": [1.0, -0.5], "conf_low": [0.5, -1.0], "conf_high": [1.5, 0.0]})
    fig, ax = plt.subplots()
    out = plot_coefficients(frame, ax=ax, title="T")
    assert out is ax
    ticks = dict(zip(ax.get_yticks(), (t.get_text() for t in ax.get_yticklabels())))
    assert ticks == {1: "a", 0: "b"}  # first term on top
    assert ax.get_title(loc="left") == "T"
    # zero reference line
    assert any(np.allclose(line.get_xdata(), 0) for line in ax.get_lines())


def test_coefficients_from_result_draws_effect_terms_only(twfe_by):
    ax = plot_coefficients(twfe_by)
    assert isinstance(ax, Axes)
    labels = {t.get_text() for t in ax.get_yticklabels()}
    assert labels == {t for t in twfe_by.to_frame()["term"] if t.startswith("d[")}


def test_coefficients_from_dict_labels_each_result(mpdta):
    r = ek.did.twfe(mpdta, outcome="lemp", unit="countyreal", time="year", treatment="d")
    ax = plot_coefficients({"Model A": r, "Model B": r.with_vcov("CR0")})
    assert {t.get_text() for t in ax.get_yticklabels()} == {"Model A", "Model B"}


def test_coefficients_errors():
    with pytest.raises(SpecificationError, match="lacks column"):
        plot_coefficients(pd.DataFrame({"term": ["a"], "estimate": [1.0]}))
    with pytest.raises(SpecificationError, match="not in the table"):
        plot_coefficients(pd.DataFrame({"term": ["a"], "estimate": [1.0], "conf_low": [0.0], "conf_high": [2.0]}), terms=["zz"])
    with pytest.raises(SpecificationError, match="expects"):
        plot_coefficients(42)


def _es_frame():
    e = [-3, -2, 0, 1, 2]
    est = [0.1, -0.1, 1.0, 1.5, 2.0]
    return pd.DataFrame({"term": [f"e={k}" for k in e] + ["reference"], "estimate": est + [0.0],
                         "std_error": [0.2] * 5 + [np.nan], "conf_low": [x - 0.4 for x in est] + [0.0],
                         "conf_high": [x + 0.4 for x in est] + [0.0], "event_time": e + [-1]})


def test_event_study_marks_reference_zero_and_entry():
    fig, ax = plt.subplots()
    out = plot_event_study(_es_frame(), ax=ax)
    assert out is ax
    lines = ax.get_lines()
    # zero line (axhline: y = [0, 0]) and entry line (axvline: x = [-0.5, -0.5])
    assert any(len(ln.get_ydata()) == 2 and np.allclose(ln.get_ydata(), 0) for ln in lines)
    assert any(len(ln.get_xdata()) == 2 and np.allclose(ln.get_xdata(), -0.5) for ln in lines)
    # the reference period: a hollow marker at (-1, 0)
    ref = [ln for ln in lines if ln.get_markerfacecolor() == "white"]
    assert len(ref) == 1 and np.allclose(ref[0].get_xdata(), [-1]) and np.allclose(ref[0].get_ydata(), [0])
    labels = [t.get_text() for t in ax.get_legend().get_texts()]
    assert "Reference (e = -1)" in labels and "Entry" in labels


def test_event_study_explicit_reference_and_no_reference_row():
    f = _es_frame()
    f = f[f["term"] != "reference"]
    ax = plot_event_study(f, reference=-1)
    assert any(ln.get_markerfacecolor() == "white" for ln in ax.get_lines())
    with pytest.raises(SpecificationError, match="lacks column"):
        plot_event_study(f.drop(columns="conf_low"))


def test_event_study_result_plot_uses_house_function(mpdta):
    es = ek.did.event_study(mpdta, outcome="lemp", unit="countyreal", time="year", cohort="first.treat",
                            warn_staggered=False)
    ax = es.plot()
    assert isinstance(ax, Axes)
    assert any(ln.get_markerfacecolor() == "white" for ln in ax.get_lines())


def test_group_means_lines_per_group_with_periods():
    q = pd.period_range("2008Q1", periods=8, freq="Q")
    df = pd.DataFrame({"q": np.tile(q, 4), "g": np.repeat([0, 0, 1, 1], 8),
                       "y": np.arange(32, dtype=float)})
    fig, ax = plt.subplots()
    out = plot_group_means(df, "y", "q", "g", ax=ax, entry=pd.Period("2009Q1", "Q"))
    assert out is ax
    labels = [t.get_text() for t in ax.get_legend().get_texts()]
    assert labels[:2] == ["Comparison (g = 0)", "Treated (g = 1)"] and "Entry" in labels
    data_lines = [ln for ln in ax.get_lines() if ln.get_label().startswith(("Comparison", "Treated"))]
    assert len(data_lines) == 2
    # means: group 0 in the first quarter = mean of rows 0 and 8
    assert np.isclose(data_lines[0].get_ydata()[0], (0 + 8) / 2)


def test_group_means_missing_group_is_never_and_mapping_entry():
    df = pd.DataFrame({"t": [1, 2, 1, 2, 1, 2], "cohort": [np.nan, np.nan, 2.0, 2.0, 3.0, 3.0], "y": [1, 2, 3, 4, 5, 6.0]})
    ax = plot_group_means(df, "y", "t", "cohort", entry={2.0: 2, 3.0: 3})
    labels = [t.get_text() for t in ax.get_legend().get_texts()]
    assert labels == ["cohort: none (never treated)", "cohort = 2", "cohort = 3"]
    with pytest.raises(SpecificationError, match="not found"):
        plot_group_means(df, "nope", "t", "cohort")
