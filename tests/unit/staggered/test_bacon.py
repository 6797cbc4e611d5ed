"""Goodman-Bacon decomposition: weights sum to 1 and reproduce the TWFE coefficient."""
from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

import evalkit as ek
from evalkit.errors import DataError

KW = dict(outcome="lemp", unit="countyreal", time="year", cohort="first.treat")


def test_mpdta_sums_to_twfe_reference():
    b = ek.staggered.bacon_decomposition(ek.datasets.load_mpdta(), **KW)
    fr = b.to_frame()
    # TWFE lemp ~ treated_post | county + year on mpdta: -0.036548937 (R fixest; shared reference README)
    assert b.twfe == pytest.approx(-0.036548937, abs=1e-9)
    assert fr["weight"].sum() == pytest.approx(1.0, abs=1e-10)
    assert (fr["weight"] > 0).all()
    # 3 cohorts + never: 3 treated-vs-never, 3 pairs x 2 timing comparisons
    assert fr["type"].value_counts().to_dict() == {"treated vs never": 3, "earlier vs later": 3, "later vs earlier": 3}
    bt = b.by_type()
    assert np.sum(bt["weight"] * bt["estimate"]) == pytest.approx(b.twfe, abs=1e-12)


def test_hand_2x2_and_no_never_treated():
    df = ek.datasets.load_mpdta()
    sub = df[df["first.treat"] > 0]  # no never-treated group: timing comparisons only
    b = ek.staggered.bacon_decomposition(sub, **KW)
    fr = b.to_frame()
    assert set(fr["type"]) == {"earlier vs later", "later vs earlier"}
    assert b.twfe == pytest.approx(b.twfe_direct, abs=1e-10)
    # later (2007) vs earlier (2004) treated: periods 2004-2006 as pre, 2007 as post
    m = sub.groupby(["first.treat", "year"])["lemp"].mean().unstack()
    pre = [2004, 2005, 2006]
    hand = (m.loc[2007, 2007] - m.loc[2007, pre].mean()) - (m.loc[2004, 2007] - m.loc[2004, pre].mean())
    row = fr[(fr["treated"] == 2007) & (fr["control"] == 2004)].iloc[0]
    assert row["estimate"] == pytest.approx(hand, abs=1e-12)


def test_unbalanced_raises_and_plot():
    import matplotlib.axes

    df = ek.datasets.load_mpdta()
    with pytest.raises(DataError, match="balanced panel: 1 .* rows are missing"):
        ek.staggered.bacon_decomposition(df.iloc[1:], **KW)
    b = ek.staggered.bacon_decomposition(df, **KW)
    assert isinstance(b.plot(), matplotlib.axes.Axes)
    with pytest.raises(Exception):
        b.twfe = 0.0
