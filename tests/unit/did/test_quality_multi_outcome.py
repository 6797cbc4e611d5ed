"""quality_effects passes the fits' warnings and drops on; twfe_multi validates every outcome as an outcome."""
import warnings

import numpy as np
import pandas as pd
import pytest

import evalkit as ek
from evalkit.errors import BadControlWarning, DroppedRowsWarning, FewClustersWarning


@pytest.fixture(scope="module")
def aqc():
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        df, _ = ek.datasets.simulate_aqc(seed=3, n_members=400)
    df = df.copy()
    df.loc[df.index[:300], "risk_score"] = np.nan
    df["org6"] = pd.factorize(df["org_id"])[0] % 6
    return df


def _quality(df, measures):
    with warnings.catch_warnings(record=True) as wl:
        warnings.simplefilter("always")
        q = ek.did.quality_effects(df, measures=measures, unit="member_id", time="quarter", treatment="aqc",
                                   cluster="org6", covariates=["risk_score"], dropna=True)
    return q, wl


def test_quality_effects_warnings_reach_the_user_once(aqc):
    df = aqc.assign(bp_copy=aqc["bp_control"])  # same eligible rows: the same messages
    _, wl = _quality(df, ["bp_control", "bp_copy", "hba1c_test"])
    kinds = [w.category for w in wl]
    assert DroppedRowsWarning in kinds and FewClustersWarning in kinds and BadControlWarning in kinds
    few = [str(w.message) for w in wl if w.category is FewClustersWarning]
    # identical messages of several measures are passed on once, naming them; others once each
    assert len(few) == 2
    assert any("[quality measures 'bp_control', 'bp_copy']" in m for m in few)
    assert any("[quality measure 'hba1c_test']" in m for m in few)
    assert all("[quality measure" in str(w.message) for w in wl if issubclass(w.category, ek.errors.EvalkitWarning))
    assert not [w for w in wl if w.category is DeprecationWarning]


def test_quality_effects_records_rows_twfe_dropped_and_uses_the_estimation_sample(aqc):
    q, _ = _quality(aqc, ["bp_control"])
    elig = aqc["bp_control"].notna()
    used = aqc[elig & aqc["risk_score"].notna()]
    reasons = {r.reason: r.n_rows for r in q.sample.dropped}
    assert reasons["not eligible for 'bp_control' (missing)"] == int((~elig).sum())
    assert reasons["missing values (measure 'bp_control')"] == int((elig & aqc["risk_score"].isna()).sum())
    row = q.to_frame().iloc[0]
    assert row["n_obs"] == len(used)
    ever = used.groupby("member_id")["aqc"].transform("max") == 1
    pre = used[ever & (used["aqc"] == 0)]
    assert row["baseline_rate"] == pytest.approx(100 * pre["bp_control"].mean(), rel=1e-12)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        one = ek.did.twfe(aqc[elig], outcome="bp_control", unit="member_id", time="quarter", treatment="aqc",
                          cluster="org6", covariates=["risk_score"], dropna=True)
    assert row["estimate"] == pytest.approx(100 * one.estimate, rel=1e-12)
    assert row["df"] == one.conventions.df and row["n_clusters"] == one.n_clusters
    assert any("moves with treatment" in n and "[quality measure 'bp_control']" in n for n in q.conventions.notes)


def test_twfe_multi_rejects_a_non_numeric_outcome(aqc):
    df = aqc.assign(spend_str=aqc["spending"].round(0).astype(str))
    with pytest.raises(ek.DataError, match=r"Column 'spend_str' \(the outcome\) must be numeric"):
        ek.did.twfe_multi(df, outcomes=["spending", "spend_str"], unit="member_id", time="quarter", treatment="aqc")
    with pytest.raises(ek.DataError, match=r"Column 'spend_str' \(the outcome\) must be numeric"):
        ek.did.twfe(df, outcome="spend_str", unit="member_id", time="quarter", treatment="aqc")
    cat = df.assign(spend_cat=df["spending"].round(-3).astype("category"))
    with pytest.raises(ek.DataError, match=r"'spend_cat' \(the outcome\) is categorical"):
        ek.did.twfe_multi(cat, outcomes=["spending", "spend_cat"], unit="member_id", time="quarter", treatment="aqc")
    with pytest.raises(ek.DataError, match=r"'nope' \(an outcome\) not found"):
        ek.did.twfe_multi(df, outcomes=["spending", "nope"], unit="member_id", time="quarter", treatment="aqc")


def test_twfe_multi_boolean_outcome_equals_twfe(aqc):
    df = aqc.assign(high=aqc["spending"] > aqc["spending"].median())
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        mr = ek.did.twfe_multi(df, outcomes=["spending", "high"], unit="member_id", time="quarter", treatment="aqc",
                               cluster="org_id")
        one = ek.did.twfe(df, outcome="high", unit="member_id", time="quarter", treatment="aqc", cluster="org_id",
                          check_bad_controls=False)
    assert mr.table["estimate"].iloc[1] == pytest.approx(one.estimate, rel=1e-10)
    assert mr.table["std_error"].iloc[1] == pytest.approx(one.std_error, rel=1e-9)
