"""Unit tests of evalkit.staggered.stacked_did: exact planted effects, weights, trimming, clusters,
errors, result object. Reference values: tests/reference/test_reference_stacked.py."""
from __future__ import annotations

import warnings

import numpy as np
import pandas as pd
import pytest

import evalkit as ek
from evalkit.errors import DataError, EvalkitWarning, SpecificationError


def _panel(seed=0, n=240, T=8, noise=1.0):
    """Cohorts 3, 5 (different sizes), 7 and never; effect 1 + h at event time h (cohort 5: twice that)."""
    rng = np.random.default_rng(seed)
    g = rng.choice([0, 3, 5, 7], size=n, p=[0.4, 0.35, 0.1, 0.15])
    ids = np.repeat(np.arange(n), T)
    t = np.tile(np.arange(1, T + 1), n)
    gi = np.repeat(g, T)
    h = t - gi
    eff = np.where((gi > 0) & (h >= 0), (1.0 + h) * np.where(gi == 5, 2.0, 1.0), 0.0)
    y = np.repeat(rng.normal(size=n), T) + 0.3 * t + eff + noise * rng.normal(size=n * T)
    return pd.DataFrame({"id": ids, "t": t, "g": gi, "y": y, "org": np.repeat(rng.integers(0, 40, n), T)})


def _fit(df, **kw):
    kw.setdefault("window", (-2, 1))
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", EvalkitWarning)
        return ek.staggered.stacked_did(df, outcome="y", unit="id", time="t", cohort="g", **kw)


@pytest.mark.filterwarnings("ignore:invalid value encountered in sqrt:RuntimeWarning")  # zero residuals
def test_noise_free_recovers_trimmed_aggregate_exactly():
    df = _panel(noise=0.0)
    res = _fit(df, window=(-2, 1), control="never")
    sub = res.subexperiment_frame()
    w = sub.set_index("cohort")["n_treated"].astype(float)
    w = w / w.sum()
    ev = res.to_frame().dropna(subset=["event_time"]).set_index("event_time")["estimate"]
    for h in (0, 1):
        want = sum(w[a] * (1.0 + h) * (2.0 if a == 5 else 1.0) for a in w.index)
        assert ev[h] == pytest.approx(want, abs=1e-10)
    assert ev[-2] == pytest.approx(0.0, abs=1e-10)
    assert res.estimate == pytest.approx(np.mean([ev[0], ev[1]]), abs=1e-12)


def test_trimming_and_clean_controls():
    df = _panel()
    with pytest.warns(EvalkitWarning, match="cohorts trimmed"):
        res = ek.staggered.stacked_did(df, outcome="y", unit="id", time="t", cohort="g", window=(-2, 2))
    sub = res.subexperiment_frame()
    assert list(sub.cohort) == [3, 5]  # 7 + 2 > 8: trimmed
    n_never = df.loc[df.g == 0, "id"].nunique()
    n7 = df.loc[df.g == 7, "id"].nunique()
    # not yet treated within the window: cohort 3 -> G > 5 (7 and never); cohort 5 -> G > 7 (never only)
    assert list(sub.n_control) == [n_never + n7, n_never]
    assert any("trimmed" in n for n in res.conventions.notes)
    never = _fit(df, window=(-2, 2), control="never").subexperiment_frame()
    assert list(never.n_control) == [n_never, n_never]


def test_corrected_weights_are_treated_share_over_control_share():
    df = _panel(seed=1)
    res = _fit(df, window=(-1, 1))
    sub = res.subexperiment_frame()
    q = (sub.n_treated / sub.n_treated.sum()) / (sub.n_control / sub.n_control.sum())
    np.testing.assert_allclose(sub.control_weight, q, rtol=1e-12)
    assert res.conventions.weights == "corrected"


def test_unweighted_differs_and_is_labelled():
    df = _panel(seed=2)
    a = _fit(df, window=(-1, 1), weights="corrected")
    b = _fit(df, window=(-1, 1), weights="none")
    assert abs(a.estimate - b.estimate) > 1e-6
    assert "unweighted" in b.conventions.estimator and b.conventions.weights is None
    assert (b.subexperiment_frame().control_weight == 1).all()


def test_cluster_column_and_with_vcov():
    df = _panel(seed=3)
    by_unit = _fit(df)
    by_org = _fit(df, cluster="org")
    np.testing.assert_allclose(by_org.to_frame().estimate, by_unit.to_frame().estimate, atol=1e-12)
    assert by_org.conventions.cluster == ("org",) and by_org.conventions.n_clusters == (40,)
    assert by_unit.conventions.n_clusters == (df.id.nunique(),)
    cr2 = by_org.with_vcov("CR2")
    np.testing.assert_allclose(cr2.to_frame().estimate, by_org.to_frame().estimate, atol=1e-12)
    assert cr2.conventions.vcov_type == "CR2"
    cr0 = by_org.with_vcov("CR0")
    assert (cr0.to_frame().std_error < by_org.to_frame().std_error).all()


def test_result_object():
    df = _panel(seed=4)
    res = _fit(df, window=(-3, 1))
    fr = res.to_frame()
    for c in ("term", "estimate", "std_error", "statistic", "p_value", "conf_low", "conf_high", "event_time"):
        assert c in fr.columns
    assert fr.event_time.isna().iloc[0] and list(fr.event_time.iloc[1:]) == [-3, -2, 0, 1]
    ef = res.event_frame()
    assert list(ef.event_time) == [-3, -2, -1, 0, 1] and ef.set_index("event_time").loc[-1, "estimate"] == 0
    pt = res.pretrend_test
    assert pt["df_num"] == 2 and 0 <= pt["p_value"] <= 1
    s = str(res.summary())
    assert "Stacked DiD" in s and "Pre-trend" in s
    assert "StackedDiDResult" in repr(res)
    ax = res.plot()
    assert ax is not None
    assert res.sample.n_obs == res.subexperiment_frame().n_rows.sum()


def test_unbalanced_stack_warns():
    df = _panel(seed=5)
    df = df.drop(index=df.sample(frac=0.05, random_state=1).index)
    with pytest.warns(EvalkitWarning, match="miss some event times"):
        ek.staggered.stacked_did(df, outcome="y", unit="id", time="t", cohort="g", window=(-2, 1), control="never")


@pytest.mark.parametrize("window", [(0, 2), (-2, -1), (-1,), "(-1, 2)", (-1.0, 2), (True, 2)])
def test_window_errors(window):
    with pytest.raises(SpecificationError, match="window"):
        ek.staggered.stacked_did(_panel(), outcome="y", unit="id", time="t", cohort="g", window=window)


def test_other_errors():
    df = _panel(seed=6)
    with pytest.raises(SpecificationError, match="vcov"):
        _fit(df, vcov="HC1")
    with pytest.raises(SpecificationError):
        _fit(df, weights="population")
    with pytest.raises(SpecificationError):
        _fit(df, control="last")
    with pytest.raises(DataError, match="every cohort was trimmed") as err:
        _fit(df, window=(-6, 4))
    assert "control='notyet'" not in str(err.value)  # already the setting: not suggested
    df2 = df.copy()
    df2["org"] = np.arange(len(df2)) % 7
    with pytest.raises(DataError, match="varies within unit"):
        _fit(df2, cluster="org")
    never_free = df[df.g != 0]
    with pytest.raises(DataError, match="every cohort was trimmed.*control='notyet'"):
        _fit(never_free, control="never")
