"""Unit tests of evalkit.equity.disparity_did: hand-computed micro panel, equality with the simulation
estimator of evalkit.power, imputed race (wide and long), comparison systems, suppression, errors."""
import math
import warnings

import numpy as np
import pandas as pd
import pytest

import evalkit as ek
from evalkit.errors import DataError, DroppedRowsWarning, FewClustersWarning, SpecificationError
from evalkit.power.simulate import simulate_disparity_did, simulate_disparity_panel


def _micro():
    # White: pre 3/4, post 3/4; Black: pre 1/4, post 2/4 -> gap_pre 0.5, gap_post 0.25, change 0.25
    rows = []
    for race, pre, post in (("White", [1, 1, 1, 0], [1, 1, 0, 1]), ("Black", [1, 0, 0, 0], [1, 1, 0, 0])):
        for i, (a, b) in enumerate(zip(pre, post)):
            pid = f"{race}{i}"
            rows += [dict(pid=pid, race=race, year=2019, y=a), dict(pid=pid, race=race, year=2023, y=b)]
    return pd.DataFrame(rows)


def _change(r, system="all", group="Black", term="change"):
    t = r.table
    return t[(t.system == system) & (t.group == group) & (t.term == term)].iloc[0]


def test_micro_panel_by_hand():
    df = _micro()
    r = ek.equity.disparity_did(df, outcome="y", group="race", period="year", reference_group="White", unit="pid",
                                min_denominator=0)
    assert _change(r, term="gap_pre").estimate == pytest.approx(0.5, abs=1e-12)
    assert _change(r, term="gap_post").estimate == pytest.approx(0.25, abs=1e-12)
    row = _change(r)
    assert row.estimate == pytest.approx(0.25, abs=1e-12)
    # by hand: psi_i = d_i-contrast; per patient (post - pre residuals)/4, sign +1 for Black, -1 for White
    d_w = np.array([0, 0, -1, 1]) - 0.0
    d_b = np.array([0, 1, 0, 0]) - 0.25
    psi = np.r_[-d_w / 4, d_b / 4]
    # patients nest in groups: CR1 factor per group, 4/3 each
    assert row.std_error == pytest.approx(math.sqrt(4 / 3 * (psi**2).sum()), rel=1e-12)
    assert row.n_clusters == 8 and row.n_minority_pre == 4
    # lower is better flips every sign
    r2 = ek.equity.disparity_did(df, outcome="y", group="race", period="year", reference_group="White", unit="pid",
                                 min_denominator=0, higher_is_better=False)
    assert _change(r2).estimate == pytest.approx(-0.25) and _change(r2).std_error == pytest.approx(row.std_error)


@pytest.mark.parametrize("kw", [dict(rho=0.5, icc=0.05, cluster_size=20, race_accuracy=0.8),
                                dict(rho=0.4, pre_years=2, post_years=2, race_accuracy=0.75)])
def test_equals_simulation_estimator_imputed_race(kw):
    args = (1000, 400, 0.7, 0.6)
    df = simulate_disparity_panel(*args, p_minority_post=0.64, seed=3, **kw)
    sim = simulate_disparity_did(*args, p_minority_post=0.64, n_reps=1, seed=3, **kw).iloc[0]
    cl = "practice" if kw.get("cluster_size", 1) > 1 else "patient"
    r = ek.equity.disparity_did(df, outcome="y", group=None, period="period", reference_group="White", cluster=cl,
                                weights={"White": "prob_reference", "Black": "prob_minority"}, correct_attenuation=False)
    row = _change(r)
    assert row.estimate == pytest.approx(sim.estimate, abs=1e-12)
    assert row.std_error == pytest.approx(sim.std_error, rel=1e-10)
    assert _change(r, term="gap_pre").estimate == pytest.approx(sim.gap_pre, abs=1e-12)
    # attenuation correction divides estimate and SE by lambda-hat = a_R + a_M - 1 from the probabilities
    q = df.loc[df.year == 0, "prob_minority"].to_numpy()
    lam = ((1 - q) ** 2).sum() / (1 - q).sum() + (q**2).sum() / q.sum() - 1
    rc = ek.equity.disparity_did(df, outcome="y", group=None, period="period", reference_group="White", cluster=cl,
                                 weights={"White": "prob_reference", "Black": "prob_minority"})
    assert _change(rc).attenuation == pytest.approx(lam, rel=1e-12)
    assert _change(rc).estimate == pytest.approx(sim.estimate / lam, rel=1e-10)
    assert _change(rc).std_error == pytest.approx(sim.std_error / lam, rel=1e-10)


def test_known_race_matches_simulation_estimate_and_long_weights_equal_wide():
    args = (600, 300, 0.7, 0.6)
    kw = dict(rho=0.5, icc=0.05, cluster_size=10)
    df = simulate_disparity_panel(*args, p_minority_post=0.66, seed=9, **kw)
    sim = simulate_disparity_did(*args, p_minority_post=0.66, n_reps=1, seed=9, **kw).iloc[0]
    r = ek.equity.disparity_did(df, outcome="y", group="race", period="period", reference_group="White", cluster="practice")
    assert _change(r).estimate == pytest.approx(sim.estimate, abs=1e-12)
    # practices of one group: per-group G_g/(G_g-1) factors and Satterthwaite df, as the simulator
    assert _change(r).std_error == pytest.approx(sim.std_error, rel=1e-10)
    rt = ek.equity.disparity_did(df, outcome="y", group="race", period="period", reference_group="White",
                                 cluster="practice", distribution="t")
    assert _change(rt).df == pytest.approx(sim.df, rel=1e-10)
    dfi = simulate_disparity_panel(*args, p_minority_post=0.66, seed=9, race_accuracy=0.8, **kw)
    wide = ek.equity.disparity_did(dfi, outcome="y", group=None, period="period", reference_group="White",
                                   cluster="practice", weights={"White": "prob_reference", "Black": "prob_minority"})
    long = pd.concat([dfi.assign(g="White", p=dfi.prob_reference), dfi.assign(g="Black", p=dfi.prob_minority)])
    lr = ek.equity.disparity_did(long, outcome="y", group="g", period="period", reference_group="White",
                                 cluster="practice", weights="p")
    cols = ["estimate", "std_error", "attenuation", "n_minority_pre"]
    np.testing.assert_allclose(wide.table[cols].to_numpy(float), lr.table[cols].to_numpy(float), rtol=1e-10)


def test_comparison_systems_triple_difference():
    parts = []
    for i, (s, post) in enumerate((("A", 0.68), ("B", 0.60), ("C", 0.62))):
        d = simulate_disparity_panel(400, 200, 0.7, 0.6, p_minority_post=post, rho=0.5, seed=i)
        parts.append(d.assign(sys=s, patient=s + d.patient.astype(str)))
    df = pd.concat(parts, ignore_index=True)
    r = ek.equity.disparity_did(df, outcome="y", group="race", period="period", reference_group="White", system="sys",
                                comparison=["B", "C"], unit="patient")
    a, c = _change(r, "A"), _change(r, "comparison (pooled)")
    v = _change(r, "A", term="change_vs_comparison")
    assert v.estimate == pytest.approx(a.estimate - c.estimate, abs=1e-12)
    assert v.std_error == pytest.approx(math.hypot(a.std_error, c.std_error), rel=5e-3)
    assert set(r.table.system) == {"A", "comparison (pooled)"}
    assert "Disparity difference-in-differences" in str(r.summary())


def test_small_cell_suppression_and_drops():
    df = _micro()
    r = ek.equity.disparity_did(df, outcome="y", group="race", period="year", reference_group="White", unit="pid")
    assert r.table.suppressed.all() and r.table.estimate.isna().all()
    assert r.table.reason.str.startswith("suppressed: a group-period denominator < 11").all()
    df3 = pd.concat([df, df.assign(year=2021)])
    with pytest.warns(DroppedRowsWarning, match=r"Dropped 16 row\(s\)"):
        r3 = ek.equity.disparity_did(df3, outcome="y", group="race", period="year", reference_group="White", unit="pid",
                                     pre=2019, post=2023, min_denominator=0)
    assert r3.dropped == (("period not in pre/post", 16),)


def test_few_clusters_warning_and_t():
    df = simulate_disparity_panel(100, 100, 0.7, 0.6, icc=0.05, cluster_size=20, seed=2)
    with pytest.warns(FewClustersWarning, match="distribution='t'"):
        ek.equity.disparity_did(df, outcome="y", group="race", period="period", reference_group="White", cluster="practice")
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        r = ek.equity.disparity_did(df, outcome="y", group="race", period="period", reference_group="White",
                                    cluster="practice", distribution="t")
    assert 4 <= _change(r).df <= 8  # Satterthwaite over 5 + 5 practices


@pytest.mark.parametrize("kwargs, err, match", [
    (dict(outcome="z"), DataError, r"Column 'z' not found in data\."),
    (dict(reference_group="Whites"), DataError, r"reference_group='Whites' is not among the groups"),
    (dict(period="pid"), SpecificationError, r"Column 'pid' has 8 distinct values; give pre=\.\.\. and post=\.\.\."),
    (dict(pre=2019, post=2020), DataError, r"Period 2020 is not in column 'year'"),
    (dict(comparison="B"), SpecificationError, r"'comparison' names systems: give the 'system' column too"),
    (dict(weights="y", unit=None), SpecificationError, r"give unit= \(patient id\) or cluster="),
    (dict(group=None), SpecificationError, r"'group' is required unless 'weights' is a dict"),
])
def test_disparity_did_errors(kwargs, err, match):
    base = dict(outcome="y", group="race", period="year", reference_group="White", unit="pid")
    with pytest.raises(err, match=match):
        ek.equity.disparity_did(_micro(), **{**base, **kwargs})


def test_plot_and_ignored_group_warning():
    import matplotlib.axes

    from evalkit.errors import EvalkitWarning

    df = simulate_disparity_panel(300, 200, 0.7, 0.6, race_accuracy=0.8, seed=4)
    with pytest.warns(EvalkitWarning, match=r"'group'='race' is ignored"):
        r = ek.equity.disparity_did(df, outcome="y", group="race", period="period", reference_group="White",
                                    unit="patient", weights={"White": "prob_reference", "Black": "prob_minority"})
    assert isinstance(r.plot(), matplotlib.axes.Axes) and isinstance(r.plot("gap_pre"), matplotlib.axes.Axes)
    with pytest.raises(SpecificationError, match=r"The 'term' parameter must be one of"):
        r.plot("gap")
