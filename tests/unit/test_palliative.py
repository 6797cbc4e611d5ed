"""Unit tests of evalkit.palliative: simulation truth, index-date design, matched analysis, net benefit."""
from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

import evalkit as ek
from evalkit import palliative as P
from evalkit.errors import DataError, SpecificationError


@pytest.fixture(scope="module")
def sim():
    return P.simulate_palliative(n_decedents=1500, seed=11)


# -- simulation ---------------------------------------------------------------------------------


def test_simulation_shape_and_truth(sim):
    df, truth = sim
    assert isinstance(df, pd.DataFrame)
    assert len(df) == 1500 * 12
    assert df["months_before_death"].max() == 12 and df["months_before_death"].min() == 1
    np.testing.assert_allclose(df["spending"], df[["spend_inpatient", "spend_hospice", "spend_other"]].sum(axis=1), rtol=1e-12)
    assert (df[["spend_inpatient", "spend_hospice", "spend_other"]] >= 0).all().all()
    # the planted member-month PMPM effect is exact on the realised sample
    assert truth.pmpm() == pytest.approx(-1351.0, rel=1e-10)
    pp = truth.per_patient
    np.testing.assert_allclose(pp[["tau_spend_inpatient", "tau_spend_hospice", "tau_spend_other"]].sum(axis=1), pp["tau_total"], rtol=1e-10)
    assert (pp["tau_spend_hospice"] > 0).all()
    # program rows = enrolled patients' months from enrollment to death
    pt = df.groupby("patient_id").agg(enrolled=("enrolled", "first"), e=("enroll_month", "first"), prog=("in_program", "sum"))
    assert (pt.loc[pt.enrolled == 1, "prog"] == pt.loc[pt.enrolled == 1, "e"]).all()
    assert (pt.loc[pt.enrolled == 0, "prog"] == 0).all() and pt.loc[pt.enrolled == 0, "e"].isna().all()
    # spending rises toward death; enrolled patients are higher-need
    m = df.groupby("months_before_death")["spending"].mean()
    assert m.loc[1] > 2 * m.loc[6]
    assert pt.enrolled.mean() == pytest.approx(0.15, abs=0.03)
    base = df.groupby("patient_id").first()
    assert base.loc[base.enrolled == 1, "frailty"].mean() > base.loc[base.enrolled == 0, "frailty"].mean() + 0.3


def test_simulation_is_deterministic_and_effect_configurable():
    a, ta = P.simulate_palliative(n_decedents=300, seed=5)
    b, tb = P.simulate_palliative(n_decedents=300, seed=5)
    pd.testing.assert_frame_equal(a, b)
    _, t0 = P.simulate_palliative(n_decedents=300, seed=5, effect_pmpm=0.0)
    assert t0.pmpm() == pytest.approx(0.0, abs=1e-8)
    _, t2 = P.simulate_palliative(n_decedents=300, seed=5, effect_pmpm=-500.0, hospice_increase_pmpm=0.0)
    assert t2.pmpm() == pytest.approx(-500.0)
    assert (t2.per_patient["tau_spend_hospice"] == 0).all()
    r = P.simulate_palliative(n_decedents=300, seed=5)
    assert "SimulatedPalliative(" in repr(r)


def test_simulation_bad_arguments():
    with pytest.raises(SpecificationError, match="enrollment_share"):
        P.simulate_palliative(enrollment_share=1.5)
    with pytest.raises(SpecificationError, match="n_decedents"):
        P.simulate_palliative(n_decedents=3)
    with pytest.raises(SpecificationError, match="effect_pmpm=-90000"):
        P.simulate_palliative(n_decedents=300, seed=1, effect_pmpm=-90000.0)


# -- index-date design --------------------------------------------------------------------------


def test_index_dates_follow_treated_distribution(sim):
    df, _ = sim
    ix = P.assign_index_dates(df, seed=3)
    base = df.groupby("patient_id", sort=False).first()
    assert list(ix.index) == list(base.index)
    t = base["enrolled"] == 1
    assert (ix.loc[t, "index_month"] == base.loc[t, "enroll_month"]).all()
    assert not ix.loc[t, "pseudo_index"].any() and ix.loc[~t, "pseudo_index"].all()
    pt = ix.loc[t, "index_month"].value_counts(normalize=True).sort_index()
    pc = ix.loc[~t, "index_month"].value_counts(normalize=True).reindex(pt.index, fill_value=0)
    assert np.abs(pt - pc).max() < 0.05
    assert set(ix.loc[~t, "index_month"]) <= set(ix.loc[t, "index_month"])
    # stratified draws stay within the stratum's treated values; same seed -> same draws
    ixs = P.assign_index_dates(df, by="diagnosis", seed=3)
    for d, g in base.groupby("diagnosis", observed=True):
        tv = set(g.loc[g.enrolled == 1, "enroll_month"])
        assert set(ixs.loc[g.index[g.enrolled == 0], "index_month"]) <= tv
    pd.testing.assert_frame_equal(ix, P.assign_index_dates(df, seed=3))


def test_index_dates_and_evaluation_do_not_depend_on_row_order(sim):
    # the seeded pseudo-index draws follow sorted patient ids, not the panel's row order
    df, _ = sim
    shuffled = df.iloc[np.random.default_rng(5).permutation(len(df))].reset_index(drop=True)
    for by in (None, "diagnosis"):
        a = P.assign_index_dates(df, by=by, seed=3)
        b = P.assign_index_dates(shuffled, by=by, seed=3)
        pd.testing.assert_frame_equal(a.loc[b.index], b)
    ea = P.palliative_evaluation(df, seed=1)
    eb = P.palliative_evaluation(shuffled, seed=1)
    assert eb.pmpm.estimate == pytest.approx(ea.pmpm.estimate, rel=1e-10)
    assert eb.pmpm.std_error == pytest.approx(ea.pmpm.std_error, rel=1e-10)


def test_analysis_frame_hand_computed():
    # two patients, 4 months before death; window 2, lookback 2
    rows = []
    for pid, enr, e, spend in (("a", 1, 2, [10, 20, 30, 40]), ("b", 0, np.nan, [1, 2, 3, 4])):
        for j, m in enumerate((4, 3, 2, 1)):
            rows.append({"patient_id": pid, "months_before_death": m, "enrolled": enr, "enroll_month": e, "age": 70, "spending": spend[j]})
    df = pd.DataFrame(rows)
    ix = pd.DataFrame({"index_month": [2, 1], "pseudo_index": [False, True]}, index=pd.Index(["a", "b"], name="patient_id"))
    fr = P.analysis_frame(df, covariates=["age"], components=None, window=2, lookback=2, index_dates=ix).set_index("patient_id")
    # a: index 2 -> pre months 4,3 (10, 20); post months 2,1 (30, 40)
    assert fr.loc["a", "pre_pmpm"] == 15 and fr.loc["a", "post_pmpm"] == 35 and fr.loc["a", "post_total"] == 70
    assert fr.loc["a", "months_in_program"] == 2 and fr.loc["a", "window_pmpm"] == 35
    # b: pseudo-index 1 -> pre months 3,2 (2, 3); post month 1 (4); window months 2,1
    assert fr.loc["b", "pre_pmpm"] == 2.5 and fr.loc["b", "post_pmpm"] == 4 and fr.loc["b", "window_pmpm"] == 3.5
    assert fr.loc["b", "months_in_program"] == 1 and bool(fr.loc["b", "pseudo_index"])


def test_analysis_frame_has_no_post_index_information(sim):
    """Changing spending on or after the index month must not change any pre-index column."""
    df, _ = sim
    ix = P.assign_index_dates(df, seed=1)
    fr = P.analysis_frame(df, index_dates=ix)
    idx = df["patient_id"].map(ix["index_month"]).to_numpy()
    df2 = df.copy()
    post = df2["months_before_death"].to_numpy() <= idx
    df2.loc[post, ["spending", "spend_inpatient"]] *= 7.0
    fr2 = P.analysis_frame(df2, index_dates=ix)
    pre_cols = [c for c in fr.columns if c.startswith("pre_")]
    pd.testing.assert_frame_equal(fr[pre_cols], fr2[pre_cols])
    assert not np.allclose(fr["post_pmpm"], fr2["post_pmpm"])


def test_design_errors(sim):
    df, _ = sim
    with pytest.raises(DataError, match="'nope'"):
        P.analysis_frame(df, outcome="nope")
    with pytest.raises(DataError, match="shorten lookback"):
        P.analysis_frame(df, lookback=12, seed=1)
    bad = df.loc[~((df["patient_id"] == df["patient_id"].iloc[0]) & (df["months_before_death"] == 9))]
    with pytest.raises(DataError, match="miss months"):
        P.analysis_frame(bad, index_dates=P.assign_index_dates(df, seed=1).assign(index_month=4))
    dup = pd.concat([df, df.iloc[[0]]])
    with pytest.raises(DataError, match="duplicate"):
        P.analysis_frame(dup, seed=1)
    nan_t = df.copy()
    nan_t.loc[(nan_t.enrolled == 1), "enroll_month"] = np.nan
    with pytest.raises(DataError, match="lack a valid index month"):
        P.assign_index_dates(nan_t)
    vary = df.copy()
    vary.loc[vary.index[0], "age"] = 200
    with pytest.raises(DataError, match="vary within"):
        P.analysis_frame(vary, seed=1)


# -- matched analysis ---------------------------------------------------------------------------


def test_palliative_evaluation(sim):
    df, truth = sim
    ev = P.palliative_evaluation(df, seed=2, program_cost=2714.0, net_benefit_kwargs={"payer_share": 0.5})
    m = ev.matched
    md = m.matched_data()
    # exact on index month: every pair shares it
    sub = md.groupby("subclass")["index_month"].nunique()
    assert (sub == 1).all()
    bal = m.balance()
    assert bal.loc["index_month", "smd_after"] == pytest.approx(0.0, abs=1e-12)
    assert (bal["smd_after"].abs() < 0.2).all()
    # member-month PMPM = ATT on total / mean months of matched treated
    months = md.loc[md.enrolled == 1, "months_in_program"].mean()
    assert ev.months_enrolled == pytest.approx(months)
    assert ev.pmpm.estimate == pytest.approx(ev.total.estimate / months)
    assert ev.pmpm.std_error == pytest.approx(ev.total.std_error / months)
    assert ev.pmpm.conventions.vcov_type == "CR1"
    # matches a hand computation: weighted mean difference on the matched data
    t, c = md[md.enrolled == 1], md[md.enrolled == 0]
    att = t.post_total.mean() - np.average(c.post_total, weights=c.weights)
    assert ev.total.estimate == pytest.approx(att, rel=1e-10)
    # the estimate is in the right region and the interval is sensible
    lo, hi = ev.pmpm.table.loc[0, ["conf_low", "conf_high"]]
    assert lo < -1351 * 0.2 and hi > -1351 * 3 and lo < hi
    assert ev.did.term == "ATT (DiD)"
    assert ev.net is not None and ev.net.params["months_enrolled"] == pytest.approx(months)
    assert ev.net.estimate == pytest.approx(0.5 * -ev.pmpm.estimate * months - 0.5 * 2714.0)
    tab = ev.to_frame()
    assert list(tab["analysis"]) == ["PMPM (member-month)", "PMPM (patient average)", "PMPM matched DiD", "Total per patient"]
    assert "PMPM" in ev.summary().as_text() and "PalliativeEvaluation" in repr(ev)
    with pytest.warns(UserWarning, match="net_benefit_kwargs ignored"):
        P.palliative_evaluation(df, seed=2, net_benefit_kwargs={"payer_share": 0.5})


def test_naive_comparisons_are_biased(sim):
    """Why the index-date design: comparing windows of different length, or ignoring severity, misleads."""
    df, truth = sim
    fr = P.analysis_frame(df, seed=4)
    t, c = fr[fr.enrolled == 1], fr[fr.enrolled == 0]
    naive_post_vs_window = t.post_pmpm.mean() - c.window_pmpm.mean()
    assert naive_post_vs_window > 0  # looks like the program *raises* spending
    naive_same_window = t.post_pmpm.mean() - c.post_pmpm.mean()
    assert naive_same_window > truth.pmpm_patient()  # confounding by severity hides savings


# -- net benefit --------------------------------------------------------------------------------


def test_net_benefit_reproduces_pilot():
    r = P.net_benefit(1351, months_enrolled=6, program_cost=2714, ffs_share=0.5, payer_share=0.5)
    assert r.estimate == 2696.0
    comp = r.components.iloc[0]
    assert comp["gross_savings"] == 8106 and comp["retained_savings"] == 4053 and comp["net_program_cost"] == 1357
    assert comp["ffs_revenue"] == 1357 and comp["payer_savings"] == 4053
    assert r.std_error == 0 and r.conf_low == r.conf_high == 2696.0
    assert P.solve_net_benefit(2696, solve_for="program_cost") == 2714.0
    for term in ("months_enrolled", "payer_share", "savings_pmpm", "ffs_share"):
        v = P.solve_net_benefit(2696, solve_for=term)
        assert v == pytest.approx(P.PILOT[term])
    # global budget (ACO keeps all savings), 4 program months
    c = P.solve_net_benefit(2696, solve_for="program_cost", payer_share=0.0, months_enrolled=4)
    assert P.net_benefit(1351, months_enrolled=4, program_cost=c, payer_share=0.0).estimate == pytest.approx(2696)


def test_net_benefit_uncertainty():
    r = P.net_benefit(1351, months_enrolled=6, program_cost=2714, savings_se=400)
    assert r.method == "delta" and r.std_error == pytest.approx(0.5 * 6 * 400)
    assert r.conf_low == pytest.approx(2696 - 1.959963984540054 * 1200)
    # simulation agrees with the delta method (linear identity)
    s = P.net_benefit(1351, months_enrolled=6, program_cost=2714, savings_se=400, method="simulation", n_draws=40_000, seed=1)
    assert s.std_error == pytest.approx(1200, rel=0.02) and s.conf_low == pytest.approx(r.conf_low, abs=60)
    s2 = P.net_benefit(1351, months_enrolled=6, program_cost=2714, savings_se=400, method="simulation", n_draws=40_000, seed=1)
    np.testing.assert_array_equal(s.draws, s2.draws)
    # cost uncertainty adds in quadrature
    rc = P.net_benefit(1351, months_enrolled=6, program_cost=2714, savings_se=400, program_cost_se=1000)
    assert rc.std_error == pytest.approx(np.hypot(1200, 500))
    # an EffectResult on spending: savings = -estimate
    er = ek.results.EffectResult(ek.results.tidy_table(["ATT"], [-1351.0], [400.0], None), np.array([[160000.0]]),
                                 ek.results.Conventions("x", "CR1", "x", "normal", None), ek.results.SampleInfo(10, 10))
    re = P.net_benefit(er, months_enrolled=6, program_cost=2714)
    assert re.estimate == 2696.0 and re.std_error == pytest.approx(1200)
    # months as an array: mean used, resampled in the simulation
    ra = P.net_benefit(1351, months_enrolled=[4, 6, 8], program_cost=2714, savings_se=400, seed=2)
    assert ra.method == "simulation" and ra.params["months_enrolled"] == 6 and ra.estimate == 2696.0
    assert ra.std_error > 1200
    assert "net benefit" in ra.summary().as_text().lower() and "NetBenefitResult" in repr(ra)


def test_net_benefit_min_savings_rate():
    # savings rate 1351 / 10000 = 13.5% >= 2%: shared; below an MSR of 20%: nothing retained
    ok = P.net_benefit(1351, months_enrolled=6, program_cost=2714, min_savings_rate=0.02, benchmark_pmpm=10_000, seed=1)
    assert ok.estimate == 2696.0 and ok.method == "simulation"
    no = P.net_benefit(1351, months_enrolled=6, program_cost=2714, min_savings_rate=0.2, benchmark_pmpm=10_000, seed=1)
    assert no.estimate == -1357.0
    with pytest.raises(SpecificationError, match="benchmark_pmpm"):
        P.net_benefit(1351, months_enrolled=6, program_cost=2714, min_savings_rate=0.02)
    with pytest.warns(ek.errors.EvalkitWarning, match="step"):
        P.net_benefit(1351, months_enrolled=6, program_cost=2714, min_savings_rate=0.02, benchmark_pmpm=1e4, method="delta")
    with pytest.warns(UserWarning, match="benchmark_pmpm ignored"):
        P.net_benefit(1351, months_enrolled=6, program_cost=2714, benchmark_pmpm=1e4)


def test_net_benefit_errors():
    with pytest.raises(SpecificationError, match="payer_share"):
        P.net_benefit(1351, months_enrolled=6, program_cost=2714, payer_share=1.5)
    with pytest.raises(SpecificationError, match="months_enrolled"):
        P.net_benefit(1351, months_enrolled=-1, program_cost=2714)
    with pytest.raises(SpecificationError, match="method"):
        P.net_benefit(1351, months_enrolled=6, program_cost=2714, method="bootstrap")
    with pytest.raises(SpecificationError, match="solve_for"):
        P.solve_net_benefit(2696, solve_for="nope")
    with pytest.raises(SpecificationError, match="unknown"):
        P.solve_net_benefit(2696, solve_for="program_cost", program_cost=1.0)


def test_sensitivity_table_and_plot():
    tab = P.net_benefit_sensitivity(savings_se=400)
    assert set(tab["parameter"]) == {"payer_share", "months_enrolled", "program_cost", "ffs_share", "savings_pmpm"}
    base = tab.loc[tab["is_base"]]
    assert np.allclose(base["net_benefit"], 2696.0) and len(base) == 5
    ps = tab.loc[tab.parameter == "payer_share"].set_index("value")["net_benefit"]
    assert ps.loc[0.0] == pytest.approx(8106 - 1357) and ps.loc[1.0] == pytest.approx(-1357)
    mo = tab.loc[tab.parameter == "months_enrolled"].set_index("value")["net_benefit"]
    assert np.allclose(np.diff(mo.to_numpy()), 675.5)
    ax = P.plot_net_benefit_sensitivity(tab)
    assert len(ax.get_yticklabels()) == 5
    ax2 = P.plot_net_benefit_sensitivity(tab, parameter="payer_share")
    assert ax2.get_xlabel() == "Payer share of savings"
    with pytest.raises(SpecificationError):
        P.plot_net_benefit_sensitivity(tab, parameter="nope")


def test_lazy_import():
    assert "palliative" in dir(ek)
    assert ek.palliative.simulate_palliative is P.simulate_palliative
