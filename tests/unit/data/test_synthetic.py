"""Tests for simulate_aqc: structure, calibration, and exactness of the planted truth."""
import warnings

import numpy as np
import pandas as pd
import pytest

from evalkit.data.synthetic import CATEGORIES, MEASURES
from evalkit.datasets import AQCTruth, SimulatedAQC, simulate_aqc
from evalkit.errors import EvalkitWarning, SpecificationError

SEED = 42
SPEND_CATS = [f"spend_{c}" for c in CATEGORIES]
COLUMNS = [
    "member_id", "org_id", "quarter", "year", "t", "entry_year", "entry_quarter", "cohort_t",
    "contract", "post", "aqc", "years_in_contract", "age", "female", "risk_score", "race_eth",
    "spending", "spending_std", *SPEND_CATS, *MEASURES,
]


@pytest.fixture(scope="module")
def sim():
    return simulate_aqc(n_members=3_000, seed=SEED)


@pytest.fixture(scope="module")
def sim_zero():
    """Same seed, no effect at all on spending: its spending is the counterfactual."""
    return simulate_aqc(n_members=3_000, seed=SEED, effect="constant", constant_effect=0.0)


@pytest.fixture(scope="module")
def large():
    return simulate_aqc(n_members=30_000, seed=2026)


# ---------------------------------------------------------------------------------- structure


def test_result_types_and_unpacking(sim):
    assert isinstance(sim, SimulatedAQC)
    df, truth = sim
    assert df is sim.data and truth is sim.truth
    assert isinstance(truth, AQCTruth)
    with pytest.raises(AttributeError):
        sim.data = None  # frozen


def test_columns_and_dtypes(sim):
    df = sim.data
    assert list(df.columns) == COLUMNS
    assert isinstance(df.index, pd.RangeIndex)
    assert df["member_id"].iloc[0] == "M000001"
    assert df["org_id"].str.match(r"^ORG\d{3}$").all()
    assert df["member_id"].str.match(r"^M\d{6}$").all()
    assert isinstance(df["quarter"].dtype, pd.PeriodDtype) and df["quarter"].dtype == pd.PeriodDtype("Q")
    assert isinstance(df["entry_quarter"].dtype, pd.PeriodDtype)
    for col in ("year", "t", "aqc", "years_in_contract", "age"):
        assert pd.api.types.is_integer_dtype(df[col]), col
    for col in ("contract", "post", "female"):
        assert pd.api.types.is_bool_dtype(df[col]), col
    for col in ("entry_year", "cohort_t", "risk_score", "spending", "spending_std", *SPEND_CATS, *MEASURES):
        assert pd.api.types.is_float_dtype(df[col]), col
    assert isinstance(df["race_eth"].dtype, pd.CategoricalDtype)
    assert list(df["race_eth"].cat.categories) == ["White", "Black", "Hispanic", "Asian", "Other"]
    # the truth stays out of the user-facing frame
    assert not any(c.startswith(("tau", "counterfactual")) for c in df.columns)


def test_sorted_unique_member_quarter(sim):
    df = sim.data
    assert not df.duplicated(["member_id", "quarter"]).any()
    key = df["member_id"].astype(str) + "|" + df["t"].astype(str).str.zfill(2)
    assert key.is_monotonic_increasing


def test_time_columns(sim):
    df = sim.data
    assert df["t"].min() == 0 and df["t"].max() == 27
    assert df["quarter"].nunique() == 28
    first = pd.Period("2006Q1", freq="Q")
    np.testing.assert_array_equal(df["quarter"].array.asi8 - first.ordinal, df["t"].to_numpy())
    np.testing.assert_array_equal(df["quarter"].dt.year.to_numpy(), df["year"].to_numpy())


def test_cohorts_and_treatment_flags(sim):
    df = sim.data
    assert set(df["entry_year"].dropna().unique()) == {2009.0, 2010.0, 2011.0, 2012.0}
    never = df["entry_year"].isna()
    assert never.any()
    orgs = df.groupby("org_id")["entry_year"].first()
    counts = orgs.value_counts(dropna=False)
    assert counts.loc[2009.0] == 15 and counts.loc[2010.0] == 6 and counts.loc[2011.0] == 6
    assert counts.loc[2012.0] == 6 and orgs.isna().sum() == 27
    assert sim.truth.params["orgs_per_cohort"] == {2009: 15, 2010: 6, 2011: 6, 2012: 6}
    # one org per member, one entry year per org
    assert (df.groupby("member_id")["org_id"].nunique() == 1).all()
    assert (df.groupby("org_id")["entry_year"].nunique(dropna=False) == 1).all()
    # never-contracting
    assert df.loc[never, "entry_quarter"].isna().all() and df.loc[never, "cohort_t"].isna().all()
    assert not df.loc[never, ["contract", "post"]].any().any()
    assert (df.loc[never, ["aqc", "years_in_contract"]] == 0).all().all()
    # contracting
    c = df.loc[~never]
    assert c["contract"].all()
    assert (c["entry_quarter"].dt.quarter == 1).all()
    np.testing.assert_array_equal(c["entry_quarter"].dt.year.to_numpy(), c["entry_year"].to_numpy())
    np.testing.assert_array_equal(c["cohort_t"].to_numpy(), (c["entry_year"].to_numpy() - 2006) * 4)
    np.testing.assert_array_equal(c["post"].to_numpy(), (c["quarter"] >= c["entry_quarter"]).to_numpy())
    np.testing.assert_array_equal(df["aqc"].to_numpy(), (df["contract"] & df["post"]).astype(int).to_numpy())
    ylag = np.where(c["post"], c["year"] - c["entry_year"] + 1, 0)
    np.testing.assert_array_equal(c["years_in_contract"].to_numpy(), ylag)


def test_aqc_absorbing_within_member(sim):
    df = sim.data
    d = df.groupby("member_id")["aqc"].diff().fillna(0)
    assert (d >= 0).all()


def test_member_level_attributes_fixed(sim):
    df = sim.data
    per_member = df.groupby("member_id")[["female", "race_eth"]].nunique()
    assert (per_member == 1).all().all()
    for m in MEASURES:  # eligibility fixed per member
        assert (df[m].isna().groupby(df["member_id"]).nunique() == 1).all(), m
        assert set(df[m].dropna().unique()) <= {0.0, 1.0}


# ---------------------------------------------------------------------------------- determinism


def test_deterministic_given_seed(sim):
    again = simulate_aqc(n_members=3_000, seed=SEED)
    pd.testing.assert_frame_equal(sim.data, again.data)
    pd.testing.assert_frame_equal(sim.truth.per_row, again.truth.per_row)
    pd.testing.assert_frame_equal(sim.truth.per_cell, again.truth.per_cell)


def test_different_seeds_differ(sim):
    other = simulate_aqc(n_members=3_000, seed=SEED + 1)
    assert len(other.data) != len(sim.data) or not np.allclose(
        other.data["spending"].to_numpy(), sim.data["spending"].to_numpy()
    )


def test_seed_accepts_generator():
    a = simulate_aqc(n_members=200, seed=np.random.default_rng(5))
    b = simulate_aqc(n_members=200, seed=np.random.default_rng(5))
    pd.testing.assert_frame_equal(a.data, b.data)


# ---------------------------------------------------------------------------------- calibration


def test_calibration(large):
    df = large.data
    assert 800 <= df.loc[df["year"] == 2009, "spending"].mean() <= 900
    assert 0.15 <= (df["spending"] == 0).mean() <= 0.25
    assert 33 <= df["age"].mean() <= 37
    assert (df["age"] < 18).mean() > 0.1 and (df["age"] >= 18).mean() > 0.6
    assert 0.50 <= df["female"].mean() <= 0.54
    assert 1.05 <= df["risk_score"].mean() <= 1.15
    assert df["risk_score"].skew() > 1 and (df["risk_score"] > 0).all()
    assert df["spending"].skew() > 3
    assert 0.005 <= (df["spend_inpatient"] > 0).mean() <= 0.03  # admissions are rare and costly
    assert 0.12 <= df["spend_inpatient"].sum() / df["spending"].sum() <= 0.30
    members = df.groupby("member_id").first()
    assert 0.06 <= members["hba1c_test"].notna().mean() <= 0.10  # diabetics ~8%
    assert members["ldl_screen"].notna().mean() >= members["hba1c_test"].notna().mean()
    assert 0.65 <= members["race_eth"].eq("White").mean() <= 0.79
    # secular growth 5-8% a year
    by_year = df.groupby("year")["spending_std"].mean()
    growth = (by_year.loc[2012] / by_year.loc[2006]) ** (1 / 6) - 1
    assert 0.04 <= growth <= 0.09
    # price-standardised spending is on the same scale as actual spending
    assert 0.9 <= df["spending_std"].mean() / df["spending"].mean() <= 1.1


def test_churn_gives_unbalanced_panel_with_every_quarter(sim):
    df = sim.data
    obs = df.groupby("member_id").size()
    assert 0.30 <= (obs < 28).mean() <= 0.60
    assert df["quarter"].nunique() == 28
    assert (df.groupby("t").size() > 0).all()
    # one enrollment spell: quarters of a member are consecutive
    span = df.groupby("member_id")["t"].agg(lambda s: s.max() - s.min() + 1)
    np.testing.assert_array_equal(span.to_numpy(), obs.to_numpy())


def test_no_churn_gives_balanced_panel(sim):
    bal = simulate_aqc(n_members=3_000, seed=SEED, churn=False)
    df = bal.data
    assert len(df) == 3_000 * 28
    assert (df.groupby("member_id").size() == 28).all()
    # same member-quarter, same outcome, whatever the enrollment
    m = sim.data[["member_id", "t", "spending", "spending_std"]].merge(
        df[["member_id", "t", "spending", "spending_std"]], on=["member_id", "t"], suffixes=("", "_bal")
    )
    assert len(m) == len(sim.data)
    np.testing.assert_array_equal(m["spending"].to_numpy(), m["spending_bal"].to_numpy())


def test_tiny_sample_still_has_every_quarter():
    df = simulate_aqc(n_members=3, n_orgs=3, seed=0).data
    assert df["quarter"].nunique() == 28


def test_categories_sum_to_spending(sim):
    df = sim.data
    np.testing.assert_allclose(df[SPEND_CATS].sum(axis=1).to_numpy(), df["spending"].to_numpy(),
                               rtol=1e-12, atol=1e-9)
    assert (df[[*SPEND_CATS, "spending", "spending_std"]] >= 0).all().all()


# ---------------------------------------------------------------------------------- exact truth


def test_truth_aligned_with_data(sim):
    df, truth = sim
    pr = truth.per_row
    assert pr.index.equals(df.index)
    np.testing.assert_array_equal(pr["aqc"].to_numpy(), df["aqc"].to_numpy())
    np.testing.assert_array_equal(pr["t"].to_numpy(), df["t"].to_numpy())
    untreated = df["aqc"].to_numpy() == 0
    tau_cols = [c for c in pr.columns if c.startswith("tau_")]
    assert (pr.loc[untreated, tau_cols].fillna(0) == 0).all().all()
    for m in MEASURES:
        np.testing.assert_array_equal(pr[f"tau_quality_{m}"].isna().to_numpy(), df[m].isna().to_numpy())


def test_tau_is_exactly_outcome_minus_counterfactual(sim, sim_zero):
    """Hidden path: the counterfactual draws do not depend on the effect settings."""
    df, truth = sim
    cf = sim_zero.data
    assert len(cf) == len(df)
    pd.testing.assert_frame_equal(df[COLUMNS[:16]], cf[COLUMNS[:16]])
    pr = truth.per_row
    np.testing.assert_allclose((df["spending"] - cf["spending"]).to_numpy(), pr["tau_spending"].to_numpy(),
                               rtol=0, atol=1e-9)
    np.testing.assert_allclose(pr["counterfactual_spending"].to_numpy(), cf["spending"].to_numpy(),
                               rtol=0, atol=1e-9)
    cf_std = sim_zero.truth.per_row["counterfactual_spending_std"].to_numpy()
    np.testing.assert_allclose(cf_std, cf["spending_std"].to_numpy(), rtol=0, atol=1e-9)
    np.testing.assert_allclose((df["spending_std"].to_numpy() - cf_std), pr["tau_spending_std"].to_numpy(),
                               rtol=0, atol=1e-9)
    for c in SPEND_CATS:
        np.testing.assert_allclose((df[c] - cf[c]).to_numpy(), pr[f"tau_{c}"].to_numpy(), rtol=0, atol=1e-9)
    np.testing.assert_allclose(pr[[f"tau_{c}" for c in SPEND_CATS]].sum(axis=1).to_numpy(),
                               pr["tau_spending"].to_numpy(), rtol=1e-12, atol=1e-9)
    np.testing.assert_allclose((pr["tau_spending_price"] + pr["tau_spending_utilization"]).to_numpy(),
                               pr["tau_spending"].to_numpy(), rtol=0, atol=1e-12)


def test_quality_draws_are_coupled_to_counterfactual(sim, sim_zero):
    """Same uniform draw, different effect: a measure moves only in the direction of the effect."""
    df, truth = sim
    base = sim_zero.data  # quality effect +3 points on every treated-post row
    tau0 = np.where(df["aqc"].to_numpy() == 1, 0.03, 0.0)
    for m in MEASURES:
        tau = truth.per_row[f"tau_quality_{m}"].to_numpy()
        y, y0 = df[m].to_numpy(), base[m].to_numpy()
        np.testing.assert_array_equal(np.isnan(y), np.isnan(y0))
        ok = ~np.isnan(y)
        up, down = ok & (tau > tau0 + 1e-12), ok & (tau < tau0 - 1e-12)
        same = ok & ~up & ~down
        assert (y[up] >= y0[up]).all() and (y[down] <= y0[down]).all()
        np.testing.assert_array_equal(y[same], y0[same])


def test_growing_schedule(sim):
    df, truth = sim
    pr = truth.per_row
    post = df["aqc"].to_numpy() == 1
    k = df["years_in_contract"].to_numpy()[post]
    cf = pr["counterfactual_spending"].to_numpy()[post]
    pos = cf > 0
    ratio = pr["tau_spending"].to_numpy()[post][pos] / cf[pos]
    expected = np.array([0, 0.019, 0.033, 0.068, 0.090])[np.minimum(k[pos], 4)]
    np.testing.assert_allclose(ratio, -expected, rtol=1e-12)
    price_share = (pr["tau_spending_price"].to_numpy()[post][pos] / pr["tau_spending"].to_numpy()[post][pos])
    assert (price_share >= 0.4 - 1e-12).all() and (price_share <= 0.5 + 1e-12).all()
    zero_cf = ~pos
    assert (pr["tau_spending"].to_numpy()[post][zero_cf] == 0).all()
    q = pr["tau_quality_bp_control"].to_numpy()[post]
    okq = ~np.isnan(q)
    np.testing.assert_allclose(q[okq], np.array([0, .02, .03, .04, .05])[np.minimum(k[okq], 4)])
    es = truth.att_by_event_time("spending")
    assert (es.loc[es.index < 0] == 0).all()
    assert -25 < es.loc[0] < -8 and -115 < es.loc[3] < -65
    assert es.loc[0] > es.loc[1] > es.loc[2] > es.loc[3]
    assert 0.4 <= truth.att("spending_price") / truth.att("spending") <= 0.5
    assert truth.att("spending_std") == pytest.approx(truth.att("spending_utilization"), rel=0.1)


def test_constant_effect_is_exact():
    df, truth = simulate_aqc(n_members=1_500, seed=3, effect="constant")
    assert truth.att() == -60.0
    assert truth.simple_att() == -60.0
    assert (truth.att_by_cohort() == -60.0).all()
    assert (truth.att_by_cohort(weighting="cells", time="year") == -60.0).all()
    es = truth.att_by_event_time(unit="quarter")
    assert (es.loc[es.index >= 0] == -60.0).all() and (es.loc[es.index < 0] == 0.0).all()
    gt = truth.att_gt()
    assert (gt.loc[gt["post"], "att"] == -60.0).all() and (gt.loc[~gt["post"], "att"] == 0.0).all()
    assert truth.att("spending_std") == pytest.approx(-33.0, abs=1e-12)
    assert truth.att("spending_price") == pytest.approx(-27.0, abs=1e-12)
    for m in MEASURES:
        assert truth.att(m) == pytest.approx(0.03, abs=1e-12)
    other = simulate_aqc(n_members=1_500, seed=3, effect="constant", constant_effect=-25.5)
    assert other.truth.att() == -25.5
    assert truth.params["effect"] == "constant" and truth.params["constant_effect"] == -60.0


# ---------------------------------------------------------------------------------- truth helpers


def _joined(sim, outcome_tau):
    df, truth = sim
    out = df[["member_id", "quarter", "year", "t", "entry_year", "entry_quarter", "aqc"]].copy()
    out["tau"] = truth.per_row[outcome_tau]
    return out.loc[out["entry_year"].notna() & out["tau"].notna()]


@pytest.mark.parametrize("outcome,col", [("spending", "tau_spending"), ("spending_std", "tau_spending_std"),
                                         ("spend_imaging", "tau_spend_imaging"),
                                         ("hba1c_test", "tau_quality_hba1c_test")])
def test_helpers_match_groupby(sim, outcome, col):
    truth = sim.truth
    j = _joined(sim, col)
    post = j.loc[j["aqc"] == 1]
    assert truth.att(outcome) == pytest.approx(post["tau"].mean(), rel=1e-12)

    by_g = post.groupby("entry_year")["tau"].mean()
    pd.testing.assert_series_equal(truth.att_by_cohort(outcome), by_g, check_names=False)

    e_year = (j["year"] - j["entry_year"]).astype(int)
    es = j.groupby(e_year)["tau"].mean()
    got = truth.att_by_event_time(outcome, unit="year")
    np.testing.assert_array_equal(got.index.to_numpy(), es.index.to_numpy())
    np.testing.assert_allclose(got.to_numpy(), es.to_numpy(), rtol=1e-12, atol=1e-12)

    e_q = (j["quarter"].array.asi8 - j["entry_quarter"].array.asi8)
    esq = j.groupby(e_q)["tau"].mean()
    np.testing.assert_allclose(truth.att_by_event_time(outcome, unit="quarter").to_numpy(), esq.to_numpy(),
                               rtol=1e-12, atol=1e-12)

    cells = j.groupby(["entry_year", "quarter"])["tau"].agg(["mean", "size"])
    gt = truth.att_gt(outcome)
    assert len(gt) == len(cells)
    np.testing.assert_allclose(gt["att"].to_numpy(), cells["mean"].to_numpy(), rtol=1e-12, atol=1e-12)
    np.testing.assert_array_equal(gt["n"].to_numpy(), cells["size"].to_numpy())

    # CS "simple": post cells weighted by the number of distinct members of the cohort
    n_g = j.groupby("entry_year")["member_id"].nunique()
    cells = cells.reset_index()
    post_cells = cells.loc[cells["quarter"] >= pd.PeriodIndex(
        cells["entry_year"].astype(int).astype(str) + "Q1", freq="Q")]
    w = post_cells["entry_year"].map(n_g)
    assert truth.simple_att(outcome) == pytest.approx((w * post_cells["mean"]).sum() / w.sum(), rel=1e-12)
    pd.testing.assert_series_equal(truth.cohort_sizes(outcome), n_g, check_names=False)

    # CS "group": plain mean of each cohort's post cells
    grp = post_cells.groupby("entry_year")["mean"].mean()
    np.testing.assert_allclose(truth.att_by_cohort(outcome, weighting="cells").to_numpy(), grp.to_numpy(),
                               rtol=1e-12)

    # CS "dynamic": cells at event time e, weighted by N_g
    post_cells = post_cells.assign(
        e=(post_cells["quarter"].array.asi8
           - pd.PeriodIndex(post_cells["entry_year"].astype(int).astype(str) + "Q1", freq="Q").asi8),
        w=w,
    )
    dyn = post_cells.groupby("e").apply(lambda d: (d["w"] * d["mean"]).sum() / d["w"].sum(), include_groups=False)
    got = truth.att_by_event_time(outcome, unit="quarter", weighting="cells")
    np.testing.assert_allclose(got.loc[got.index >= 0].to_numpy(), dyn.to_numpy(), rtol=1e-12, atol=1e-12)


def test_per_cell_matches_att_gt(sim):
    truth = sim.truth
    pc = truth.per_cell
    gt = truth.att_gt("spending")
    np.testing.assert_allclose(pc["tau_spending"].to_numpy(), gt["att"].to_numpy(), rtol=1e-12)
    np.testing.assert_array_equal(pc["n"].to_numpy(), gt["n"].to_numpy())
    assert isinstance(pc["quarter"].dtype, pd.PeriodDtype)
    gq = truth.att_gt("crc_screen")
    m = pc.loc[pc["n_crc_screen"] > 0]
    np.testing.assert_allclose(m["tau_quality_crc_screen"].to_numpy(), gq["att"].to_numpy(), rtol=1e-12)


def test_year_cells(sim):
    truth = sim.truth
    j = _joined(sim, "tau_spending")
    cells = j.groupby(["entry_year", "year"])["tau"].mean()
    gt = truth.att_gt(time="year")
    np.testing.assert_allclose(gt["att"].to_numpy(), cells.to_numpy(), rtol=1e-12, atol=1e-12)
    assert (gt["event_time"] == gt["year"] - gt["entry_year"]).all()


def test_simple_att_equals_att_when_balanced():
    truth = simulate_aqc(n_members=1_000, seed=11, churn=False).truth
    assert truth.simple_att() == pytest.approx(truth.att(), rel=1e-12)
    assert truth.simple_att(time="year") == pytest.approx(truth.att(), rel=1e-12)


def test_unknown_outcome_raises(sim):
    with pytest.raises(SpecificationError, match=r"'outcome' parameter must be one of .*Got 'nope'"):
        sim.truth.att("nope")
    with pytest.raises(SpecificationError, match="'weighting'"):
        sim.truth.att_by_cohort(weighting="units")


# ---------------------------------------------------------------------------------- parameters


@pytest.mark.parametrize(
    "kwargs,match",
    [
        ({"effect": "linear"}, r"'effect' parameter of simulate_aqc must be one of \['growing', 'constant'\]"),
        ({"n_members": 0}, r"'n_members' parameter must be in the range \[1, inf\]"),
        ({"cohort_shares": {2009: 0.7, 2010: 0.5}}, r"must sum to at most 1"),
        ({"cohort_shares": {2006: 0.2}}, r"entry years must be integers in \(2006, 2012\]"),
        ({"cohort_shares": {2013: 0.2}}, r"entry year 2013"),
        ({"cohort_shares": {2009: -0.1}}, r"shares in \[0, 1\]"),
        ({"end_year": 2006}, r"'end_year' parameter must be in the range \[2007, inf\]"),
        ({"churn": "yes"}, r"'churn' parameter must be a bool"),
        ({"effect": "constant", "constant_effect": float("nan")}, r"finite"),
    ],
)
def test_parameter_errors(kwargs, match):
    with pytest.raises(SpecificationError, match=match):
        simulate_aqc(**({"n_members": 10} | kwargs))


def test_ignored_constant_effect_warns():
    with pytest.warns(EvalkitWarning, match="`constant_effect` ignored"):
        simulate_aqc(n_members=10, seed=0, constant_effect=-10.0)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        simulate_aqc(n_members=10, seed=0)


def test_custom_cohorts_and_years():
    df, truth = simulate_aqc(n_members=500, n_orgs=10, start_year=2010, end_year=2014,
                             cohort_shares={2012: 0.5}, seed=1)
    assert df["quarter"].min() == pd.Period("2010Q1", freq="Q") and df["t"].max() == 19
    assert set(df["entry_year"].dropna().unique()) == {2012.0}
    assert df.groupby("org_id")["contract"].first().sum() == 5


def test_validates_as_panel(sim):
    from evalkit.data import validate_panel

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        vp = validate_panel(sim.data, outcome="spending", unit="member_id", time="quarter",
                            treatment="aqc", cohort="entry_quarter", cluster="org_id")
    assert vp.nobs == len(sim.data) and vp.n_periods == 28 and not vp.is_balanced
