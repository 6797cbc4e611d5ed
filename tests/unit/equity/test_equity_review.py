"""Review regressions: degenerate rates, small-cell suppression, empty groups, orientation flags."""
import numpy as np
import pandas as pd
import pytest

import evalkit as ek
from evalkit.errors import DataError, SpecificationError


def _base(**over):
    rows = [{"system": "A", "measure": "m1", "group": "White", "denominator": 5000, "rate": 0.70, "higher_is_better": True},
            {"system": "A", "measure": "m1", "group": "Black", "denominator": 1500, "rate": 0.60, "higher_is_better": True},
            {"system": "A", "measure": "m1", "group": "Asian", "denominator": 5, "rate": 0.20, "higher_is_better": True},
            {"system": "A", "measure": "m2", "group": "White", "denominator": 5000, "rate": 1.0, "higher_is_better": True},
            {"system": "A", "measure": "m2", "group": "Black", "denominator": 1500, "rate": 0.0, "higher_is_better": True}]
    df = pd.DataFrame(rows)
    for k, v in over.items():
        df[k] = v
    return df


def test_degenerate_rates_report_no_mde_and_are_not_ranked_first():
    det = ek.equity.detectability(_base())
    m2 = det[det.measure == "m2"].iloc[0]
    assert np.isnan(m2.mde_pp) and np.isnan(m2.share_of_gap)
    assert "0 or 1" in m2.reason
    sel = ek.equity.select_measures(_base())
    assert not (sel.iloc[0].measure == "m2" and sel.iloc[0].share_of_gap == 0)


def test_suppressed_cells_do_not_publish_their_rate_or_gap():
    det = ek.equity.detectability(_base())
    asian = det[det.group == "Asian"].iloc[0]
    assert asian.reason.startswith("suppressed")
    assert np.isnan(asian.rate_minority) and np.isnan(asian.baseline_gap_pp)
    # consistent with stratified_gaps, which blanks a suppressed cell's rate and gap
    b = _base()
    b.loc[b.group == "White", "denominator"] = 8
    det2 = ek.equity.detectability(b[b.measure == "m1"])
    assert det2.reason.str.startswith("suppressed").all()
    assert det2.rate_reference.isna().all() and det2.baseline_gap_pp.isna().all()


def test_empty_group_is_suppressed_even_with_min_denominator_zero():
    b = _base()
    b.loc[b.group == "Asian", "denominator"] = 0
    det = ek.equity.detectability(b, min_denominator=0)
    asian = det[det.group == "Asian"].iloc[0]
    assert asian.reason.startswith("suppressed") and not asian.candidate
    assert "empty" in asian.reason


@pytest.mark.parametrize("flag", ["False", "no", 2, None])
def test_detectability_rejects_non_boolean_higher_is_better(flag):
    with pytest.raises(DataError, match="higher_is_better"):
        ek.equity.detectability(_base(higher_is_better=flag))


def test_detectability_accepts_0_1_and_numpy_bools():
    a = ek.equity.detectability(_base(higher_is_better=1))
    b = ek.equity.detectability(_base(higher_is_better=np.bool_(True)))
    c = ek.equity.detectability(_base())
    pd.testing.assert_frame_equal(a, c)
    pd.testing.assert_frame_equal(b, c)
    low = ek.equity.detectability(_base(higher_is_better=0))
    assert (low.loc[low.group == "Black", "baseline_gap_pp"] < 0).all()


def _patients():
    return pd.DataFrame({"race": ["White"] * 40 + ["Black"] * 30, "y": [1] * 30 + [0] * 10 + [1] * 15 + [0] * 15})


@pytest.mark.parametrize("flag", ["no", "False", 1, None])
def test_stratified_gaps_rejects_non_boolean_higher_is_better(flag):
    with pytest.raises(SpecificationError, match="higher_is_better"):
        ek.equity.stratified_gaps(_patients(), "y", "race", higher_is_better=flag)


def test_stratified_gaps_validates_min_denominator():
    with pytest.raises(SpecificationError, match="min_denominator"):
        ek.equity.stratified_gaps(_patients(), "y", "race", min_denominator=-1)
    out = ek.equity.stratified_gaps(_patients(), "y", "race", higher_is_better=False)
    assert out.loc[out.race == "Black", "gap"].iloc[0] == pytest.approx(-(0.75 - 0.5))


def test_select_measures_reason_for_undefined_mde_is_readable():
    sel = ek.equity.select_measures(_base())
    m2 = sel[sel.measure == "m2"].iloc[0]
    assert "nan" not in m2.reason and "MDE undefined" in m2.reason
