"""Unit tests for ek.matching: hand-computable matches, weights, designs, matched data, plots."""
import numpy as np
import pandas as pd
import pytest

import evalkit as ek
from evalkit.errors import DataError
from evalkit.matching import estimate_effect, match, matched_did, weight


@pytest.fixture
def tiny():
    # user score 'ps' so matches are known by hand
    return pd.DataFrame({
        "treat": [1, 1, 1, 0, 0, 0, 0, 0],
        "ps":    [0.9, 0.5, 0.45, 0.88, 0.52, 0.47, 0.1, 0.2],
        "x":     [3.0, 2.0, 2.0, 3.0, 2.0, 1.0, 0.0, 0.0],
        "g":     ["a", "b", "a", "a", "b", "a", "b", "b"],
        "y":     [10.0, 7.0, 6.0, 4.0, 5.0, 3.0, 1.0, 2.0],
        "y0":    [5.0, 4.0, 4.0, 3.0, 4.0, 2.0, 1.0, 1.0],
    })


def test_greedy_largest_first_by_hand(tiny):
    m = match(tiny, treatment="treat", covariates=["x"], distance="ps")
    # order 0.9, 0.5, 0.45: 0.9->0.88 (row 3); 0.5->0.52 (row 4); 0.45->0.47 (row 5)
    assert m.pairs == {0: [3], 1: [4], 2: [5]}
    np.testing.assert_array_equal(m.weights, [1, 1, 1, 1, 1, 1, 0, 0])
    md = m.matched_data()
    assert list(md.index) == [0, 1, 2, 3, 4, 5]
    assert {"weights", "subclass", "distance"} <= set(md.columns)
    assert md["subclass"].tolist() == [1, 2, 3, 1, 2, 3]
    e = estimate_effect(m, "y")
    assert e.estimate == pytest.approx((10 + 7 + 6) / 3 - (4 + 5 + 3) / 3, rel=1e-12)
    assert e.conventions.vcov_type == "CR1"
    assert e.sample.dropped[0].n_rows == 2


def test_greedy_order_matters(tiny):
    # 0.5 and 0.45 both prefer 0.47 (|0.5-0.47| = 0.03 < 0.02? no: 0.5 prefers 0.52)
    d = tiny.copy()
    d.loc[4, "ps"] = 0.40  # now 0.5 -> 0.47 first (largest first), then 0.45 -> 0.40
    m = match(d, treatment="treat", covariates=["x"], distance="ps")
    assert m.pairs[1] == [5] and m.pairs[2] == [4]
    m2 = match(d, treatment="treat", covariates=["x"], distance="ps", m_order="smallest")
    assert m2.pairs[2] == [5] and m2.pairs[1] == [4]


def test_ratio_rounds_and_weights(tiny):
    m = match(tiny, treatment="treat", covariates=["x"], distance="ps", ratio=2, caliper=1.0, std_caliper=False)
    # round 1: 0->3, 1->4, 2->5; round 2 (largest first): 0 -> nearest left = 7 (0.2), 1 -> 6 (0.1), 2 -> none
    assert m.pairs == {0: [3, 7], 1: [4, 6], 2: [5]}
    w = m.weights
    raw = np.array([1, 1, 1, 0.5, 0.5, 1.0, 0.5, 0.5])
    raw[3:] *= 5 / raw[3:].sum()
    np.testing.assert_allclose(w, raw)
    assert w[3:].sum() == pytest.approx(5)


def test_caliper_leaves_treated_unmatched(tiny):
    m = match(tiny, treatment="treat", covariates=["x"], distance="ps", caliper=0.025, std_caliper=False)
    assert m.pairs[0] == [3] and m.pairs[1] == [4] and m.pairs[2] == [5]
    d = tiny.assign(ps=tiny.ps.where(tiny.index != 3, 0.8))  # row 0 (0.9) has no control within 0.025
    m = match(d, treatment="treat", covariates=["x"], distance="ps", caliper=0.025, std_caliper=False)
    assert m.pairs == {0: [], 1: [4], 2: [5]}
    assert m.sample_sizes().loc["Unmatched", "treated"] == 1
    # a caliper that excludes every treated unit is an error, not an empty match (MatchIt: "No matches were found")
    with pytest.raises(DataError, match="all 3 treated units are unmatched under caliper=0.015"):
        match(tiny, treatment="treat", covariates=["x"], distance="ps", caliper=0.015, std_caliper=False)


def test_replace_allows_reuse(tiny):
    d = tiny.copy()
    d.loc[2, "ps"] = 0.89
    m = match(d, treatment="treat", covariates=["x"], distance="ps", replace=True)
    assert m.pairs[0] == [3] and m.pairs[2] == [3]
    assert m.matched_data()["subclass"].isna().all()
    e = estimate_effect(m, "y")
    assert e.conventions.vcov_type == "HC3"
    with pytest.raises(ek.SpecificationError, match="with replacement"):
        estimate_effect(m, "y", vcov="CR1")
    gm = m.get_matches()
    assert len(gm) == 6 and gm["weights"].sum() == 6


def test_exact_constraint(tiny):
    m = match(tiny, treatment="treat", covariates=["x"], distance="ps", exact=["g"])
    for t, cs in m.pairs.items():
        assert all(tiny.g[c] == tiny.g[t] for c in cs)


def test_exact_matching_weights():
    df = pd.DataFrame({"t": [1, 1, 0, 0, 0, 1, 0], "a": [0, 0, 0, 0, 0, 1, 2], "y": [3., 5., 1., 2., 3., 9., 0.]})
    m = match(df, treatment="t", covariates=["a"], method="exact")
    # stratum a=0: 2 treated, 3 controls -> control weight 2/3; a=1 has no control; a=2 no treated
    np.testing.assert_allclose(m.weights, [1, 1, 1, 1, 1, 0, 0])  # 2/3 rescaled to sum 3
    e = estimate_effect(m, "y")
    assert e.estimate == pytest.approx(4 - 2)
    assert e.conventions.vcov_type == "HC3"
    assert m.sample_sizes().loc["Unmatched", "treated"] == 1


def test_cem_sturges_bins():
    rng = np.random.default_rng(3)
    n = 400
    x = rng.uniform(0, 10, n)
    t = (rng.uniform(size=n) < 0.3 + 0.04 * x).astype(int)
    df = pd.DataFrame({"t": t, "x": x, "y": x + 2 * t + rng.normal(size=n)})
    m = match(df, treatment="t", covariates=["x"], method="cem")
    bins = int(np.ceil(np.log2(n) + 1))
    assert m.options["n_subclasses"] <= bins
    # with Sturges bins the within-bin bias is small; ATT close to 2
    assert estimate_effect(m, "y").estimate == pytest.approx(2, abs=0.4)


def test_subclass_and_mahalanobis_and_optimal(lalonde_like):
    df = lalonde_like
    cov = ["x1", "x2", "grp"]
    s = match(df, treatment="t", covariates=cov, method="subclass", subclass=5)
    assert s.options["n_subclasses"] <= 5
    assert abs(estimate_effect(s, "y").estimate - 1.0) < 0.5
    mh = match(df, treatment="t", covariates=cov, distance="mahalanobis")
    assert mh.distance is None and sum(len(v) for v in mh.pairs.values()) == (df.t == 1).sum()
    assert abs(estimate_effect(mh, "y").estimate - 1.0) < 0.5
    op = match(df, treatment="t", covariates=cov, method="optimal")
    nn = match(df, treatment="t", covariates=cov)
    tot = lambda r: sum(abs(r.distance[t] - r.distance[c]) for t, cs in r.pairs.items() for c in cs)  # noqa: E731
    assert tot(op) <= tot(nn) + 1e-12


@pytest.fixture
def lalonde_like():
    rng = np.random.default_rng(7)
    n = 600
    x1 = rng.normal(size=n)
    x2 = rng.normal(size=n)
    grp = rng.choice(["a", "b", "c"], n)
    lin = -1 + 0.8 * x1 - 0.5 * x2 + 0.5 * (grp == "b")
    t = (rng.uniform(size=n) < 1 / (1 + np.exp(-lin))).astype(int)
    y = 1.0 * t + 2 * x1 + x2 + rng.normal(size=n)
    return pd.DataFrame({"t": t, "x1": x1, "x2": x2, "grp": grp, "y": y, "y_pre": 2 * x1 + x2 + rng.normal(size=n)})


def test_factor_reference_level_and_balance_rows(lalonde_like):
    m = match(lalonde_like, treatment="t", covariates=["x1", "grp"])
    assert list(m.ps_model.coef.index) == ["(Intercept)", "x1", "grpb", "grpc"]
    assert list(m.balance().index) == ["distance", "x1", "grpa", "grpb", "grpc"]
    cat = lalonde_like.assign(grp=pd.Categorical(lalonde_like.grp, categories=["c", "b", "a"]))
    m2 = match(cat, treatment="t", covariates=["x1", "grp"])
    assert list(m2.ps_model.coef.index) == ["(Intercept)", "x1", "grpb", "grpa"]


def test_matched_did(tiny):
    m = match(tiny, treatment="treat", covariates=["x"], distance="ps")
    e = matched_did(m, outcome="y", pre="y0")
    want = np.mean([10 - 5, 7 - 4, 6 - 4]) - np.mean([4 - 3, 5 - 4, 3 - 2])
    assert e.estimate == pytest.approx(want, rel=1e-12)
    assert e.term == "ATT (DiD)"
    assert estimate_effect(m, "y", pre="y0").estimate == pytest.approx(want)


def test_weighting_shapes(lalonde_like):
    for method, est in (("ipw", "ATT"), ("ipw", "ATE"), ("overlap", "ATO"), ("entropy", "ATT"), ("entropy", "ATE")):
        w = weight(lalonde_like, treatment="t", covariates=["x1", "x2", "grp"], method=method, estimand=est)
        assert (w.weights > 0).all()
        e = estimate_effect(w, "y")
        assert e.conventions.vcov_type == "HC0"
        assert abs(e.estimate - 1.0) < 0.5, (method, est)
        if method in ("entropy", "overlap"):  # exact mean balance on the model covariates
            assert np.abs(w.balance().drop(index="distance", errors="ignore")["smd_after"]).max() < 1e-6
    assert len(w.matched_data()) == len(lalonde_like)


def test_summary_and_plots(lalonde_like):
    import matplotlib.pyplot as plt

    m = match(lalonde_like, treatment="t", covariates=["x1", "x2", "grp"], caliper=0.2)
    text = str(m.summary())
    assert "treated-group SD in the unmatched sample" in text and "caliper" in text
    ax = m.plot()
    assert ax.get_xlabel().startswith("Absolute standardised mean difference")
    ax2 = m.plot("overlap")
    assert ax2.get_ylabel() == "Density"
    plt.close("all")
    e = estimate_effect(m, "y")
    assert "pair" in e.conventions.vcov_description
    assert "ATT" in str(e.summary())


def test_seeded_random_order_is_deterministic(lalonde_like):
    a = match(lalonde_like, treatment="t", covariates=["x1", "x2"], m_order="random", seed=5)
    b = match(lalonde_like, treatment="t", covariates=["x1", "x2"], m_order="random", seed=5)
    assert a.pairs == b.pairs


def test_input_not_modified(lalonde_like):
    before = lalonde_like.copy()
    match(lalonde_like, treatment="t", covariates=["x1", "grp"]).matched_data()
    pd.testing.assert_frame_equal(before, lalonde_like)
