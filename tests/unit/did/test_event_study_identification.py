"""event_study identification: no never-treated units, reference at the lowest event time, absent reference."""
import warnings

import numpy as np
import pandas as pd
import pytest

import evalkit as ek


def _panel(seed=13, n_units=100, T=8, cohorts=(2, 3, 4, 99), drop=0.2):
    rng = np.random.default_rng(seed)
    u = np.repeat(np.arange(n_units), T)
    t = np.tile(np.arange(T), n_units)
    coh = rng.choice(list(cohorts), size=n_units)[u]
    d = ((coh != 99) & (t >= coh)).astype(int)
    y = rng.normal(size=n_units)[u] + 0.2 * t + (1.0 + 0.2 * (t - coh)) * d + rng.normal(size=u.size)
    df = pd.DataFrame({"unit": u, "t": 2000 + t, "y": y, "cohort": np.where(coh == 99, np.nan, 2000 + coh)})
    keep = rng.random(u.size) > drop
    keep[t == 0] = True
    return df[keep].reset_index(drop=True)


def _dummy_es(df, terms):
    """OLS of y on the given event-time indicator columns plus unit and period dummies."""
    X = np.column_stack([np.column_stack(terms), pd.get_dummies(df["unit"]).to_numpy(float),
                         pd.get_dummies(df["t"]).to_numpy(float)[:, 1:]])
    return np.linalg.lstsq(X, df["y"].to_numpy(float), rcond=None)[0][: len(terms)]


def _es(df, **kw):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return ek.did.event_study(df, outcome="y", unit="unit", time="t", cohort="cohort", **kw)


def test_without_never_treated_the_lowest_event_time_is_also_omitted():
    df = _panel()
    d4 = df[df["cohort"].notna()].reset_index(drop=True)
    e = (d4["t"] - d4["cohort"]).astype(int)
    assert (e.min(), e.max()) == (-4, 5)
    res = _es(d4)
    fr = res.to_frame()
    kept = [k for k in range(-3, 6) if k != -1]
    assert fr["event_time"].tolist() == kept
    np.testing.assert_allclose(fr["estimate"], _dummy_es(d4, [(e == k).astype(float) for k in kept]), atol=1e-9)
    note = res.conventions.notes[0]
    assert "besides the reference (event time -1) the lowest event time, e=-4, is also omitted" in note


@pytest.mark.parametrize("kw", [{"reference": -4}, {"leads": 3, "reference": -3, "bin_endpoints": False}])
def test_reference_at_the_lowest_event_time_without_pooling_is_a_data_error(kw):
    d4 = _panel().pipe(lambda d: d[d["cohort"].notna()])
    with pytest.raises(ek.DataError, match=r"No never-treated units.*collinear.*reference=-\d is the lowest event time.*"
                                           r"Choose a reference above"):
        _es(d4, **kw)


def test_reference_at_a_pooled_lowest_bin_is_identified_and_the_note_says_how():
    d4 = _panel().pipe(lambda d: d[d["cohort"].notna()]).reset_index(drop=True)
    res = _es(d4, leads=3, reference=-3)
    e = (d4["t"] - d4["cohort"]).astype(int).clip(-3, None)
    kept = list(range(-2, 6))
    fr = res.to_frame()
    assert fr["event_time"].tolist() == kept
    np.testing.assert_allclose(fr["estimate"], _dummy_es(d4, [(e == k).astype(float) for k in kept]), atol=1e-8)
    note = res.conventions.notes[0]
    assert "only the reference is omitted" in note and "e<=-3 pools event times -4..-3" in note
    assert "also omitted" not in note.split(";")[0]
    assert res.conventions.reference_period == "event time <=-3 (omitted bin)"


def test_reference_event_time_with_no_rows_is_a_data_error():
    df = _panel()
    d = df[~((df["t"] - df["cohort"]) == -1)]
    with pytest.raises(ek.DataError, match=r"reference=-1: no treated unit is observed at event time -1.*"
                                           r"Choose another reference among the observed event times \[-4, -3, -2, 0"):
        _es(d)
