"""Data-contract errors: every DataError names the column, gives the count and says how to fix it.

Each test pins the key parts of one message with ``pytest.raises(DataError, match=...)``.
"""
from __future__ import annotations

import re

import numpy as np
import pandas as pd
import pytest

import evalkit.data.schema as schema
from evalkit import DataError, SpecificationError
from evalkit.data import check_clusters, validate_panel

YEARS = [2015, 2016, 2017, 2018]


def panel(n_units: int = 6, years=YEARS, entry: int = 2017, n_treated: int = 3) -> pd.DataFrame:
    """Balanced panel sorted by (id, year); the first ``n_treated`` units enter at ``entry``."""
    ids = np.repeat(np.arange(1, n_units + 1), len(years))
    yr = np.tile(years, n_units)
    treated = ids <= n_treated
    return pd.DataFrame(
        {
            "id": ids,
            "year": yr,
            "spend": np.linspace(100.0, 200.0, len(ids)),
            "d": (treated & (yr >= entry)).astype(int),
            "g": np.where(treated, float(entry), np.nan),
            "org": (ids - 1) // 2,
            "x": np.arange(len(ids), dtype=float),
        }
    )


KW = dict(outcome="spend", unit="id", time="year", treatment="d")
CKW = dict(outcome="spend", unit="id", time="year", cohort="g")


def shuffled(df: pd.DataFrame) -> pd.DataFrame:
    return df.sample(frac=1.0, random_state=0).reset_index(drop=True)


# ----------------------------------------------------------------------------------------------
# columns and frame


def test_data_not_a_dataframe():
    with pytest.raises(DataError, match=r"`data` must be a pandas DataFrame\. Got dict\."):
        validate_panel({"a": [1]}, **KW)


def test_missing_column_names_role_and_suggests():
    df = panel().rename(columns={"spend": "Spend"})
    with pytest.raises(DataError, match=r"Column 'spend' \(the outcome\) not found in data\. Did you mean 'Spend'\?"):
        validate_panel(df, **KW)


def test_missing_cluster_column_lists_available():
    with pytest.raises(DataError, match=r"Column 'org_id' \(the cluster\) not found in data\. Available columns: \['id'"):
        validate_panel(panel(), **KW, cluster="org_id")


def test_duplicated_column_names():
    df = panel()
    df = pd.concat([df, df[["spend"]]], axis=1)
    with pytest.raises(DataError, match=r"Column names must be unique; duplicated: \['spend'\]\. Rename them\."):
        validate_panel(df, **KW)


def test_nothing_left_after_dropping_singletons():
    df = panel().drop_duplicates("id")
    with pytest.raises(DataError, match=r"No rows left after dropping: 6 rows dropped: singleton units"):
        validate_panel(df, outcome="spend", unit="id", time="year", drop_singletons=True)


def test_empty_frame():
    with pytest.raises(DataError, match="`data` has no rows"):
        validate_panel(panel().iloc[:0], **KW)


def test_invalid_already_treated_option():
    with pytest.raises(SpecificationError, match=r"'already_treated' parameter of validate_panel must be one of \['raise', 'drop', 'keep'\]"):
        validate_panel(panel(), **CKW, already_treated="ignore")


# ----------------------------------------------------------------------------------------------
# outcome, missing values


@pytest.mark.parametrize("dtype", ["str", object])
def test_non_numeric_outcome(dtype):
    df = panel()
    df["spend"] = df["spend"].map("${:.2f}".format).astype(dtype)
    with pytest.raises(DataError, match=r"Column 'spend' \(the outcome\) must be numeric \(or boolean\); it has dtype .*"
                                        r"\['\$100\.00'.*pd\.to_numeric\(data\['spend'\]\)"):
        validate_panel(df, **KW)


def test_categorical_outcome():
    df = panel()
    df["spend"] = pd.Categorical(df["spend"])
    with pytest.raises(DataError, match=r"Column 'spend' \(the outcome\) is categorical; it must be numeric.*astype\(float\)"):
        validate_panel(df, **KW)


def test_missing_values_counted_per_column():
    df = panel()
    df.loc[[0, 3, 7], "spend"] = np.nan
    df.loc[[3, 8], "x"] = np.nan
    with pytest.raises(DataError, match=re.escape(
        "Missing (or infinite) values in 4 of 24 rows ('spend': 3, 'x': 2). Fill or remove them, "
        "or pass dropna=True to drop these rows"
    )):
        validate_panel(df, **KW, covariates=["x"])


def test_infinite_outcome_counts_as_missing():
    df = panel()
    df.loc[2, "spend"] = np.inf
    with pytest.raises(DataError, match=r"in 1 of 24 rows \('spend': 1\).*dropna=True"):
        validate_panel(df, **KW)


@pytest.mark.parametrize("col, value", [("id", None), ("year", np.nan), ("org", np.nan), ("d", np.nan)])
def test_missing_in_id_time_cluster_treatment(col, value):
    df = panel()
    df[col] = df[col].astype(object if value is None else float)
    df.loc[5, col] = value
    with pytest.raises(DataError, match=rf"in 1 of 24 rows \('{col}': 1\)"):
        validate_panel(df, **KW, cluster="org")


def test_nothing_left_after_dropping():
    df = panel()
    df["w"] = 0.0
    with pytest.raises(DataError, match=r"No rows left after dropping 24 rows: 24 rows dropped: zero weight"):
        validate_panel(df, **KW, weights="w")


# ----------------------------------------------------------------------------------------------
# duplicates


@pytest.mark.parametrize("order", ["sorted", "shuffled", "huge_ids"])
def test_duplicate_unit_time_rows_show_examples(order):
    df = panel()
    df = pd.concat([df, df.iloc[[5, 6]]], ignore_index=True)
    if order == "huge_ids":
        df["id"] = df["id"] * 10**12  # exercises the sort-based duplicate check
    if order != "sorted":
        df = shuffled(df)
    ex = "id=2000000000000, year=2016" if order == "huge_ids" else "id=2, year=2016"
    with pytest.raises(DataError, match=rf"4 rows share a \('id', 'year'\) pair with another row, e\.g\. .*{ex}.*"
                                        r"Aggregate to one row per unit-period"):
        validate_panel(df, **KW)


def test_duplicates_with_string_ids():
    df = panel()
    df["id"] = "M" + df["id"].astype(str)
    df = pd.concat([df, df.iloc[[0]]], ignore_index=True)
    with pytest.raises(DataError, match=r"2 rows share a \('id', 'year'\) pair.*id='M1', year=2015"):
        validate_panel(df, **KW)


# ----------------------------------------------------------------------------------------------
# treatment


def test_treatment_not_binary():
    df = panel()
    df.loc[[0, 1], "d"] = 2
    with pytest.raises(DataError, match=r"Column 'd' \(the treatment\) must be 0/1 \(treated and post\); found values \[2\.0\] in 2 rows\. Recode"):
        validate_panel(df, **KW)


def test_treatment_non_numeric():
    df = panel()
    df["d"] = df["d"].map({0: "no", 1: "yes"})
    with pytest.raises(DataError, match=r"Column 'd' \(the treatment\) must be numeric \(or boolean\)"):
        validate_panel(df, **KW)


@pytest.mark.parametrize("order", ["sorted", "shuffled"])
def test_treatment_switches_off(order):
    df = panel()
    df.loc[3, "d"] = 0  # unit 1: 0 0 1 0
    df.loc[7, "d"] = 0  # unit 2: 0 0 1 0
    if order == "shuffled":
        df = shuffled(df)
    with pytest.raises(DataError, match=r"Column 'd' \(the treatment\) switches off \(1 then 0\) for 2 units "
                                        r"\(e\.g\. id=\[1, 2\]\): treatment must be absorbing\..*intent-to-treat at entry"
                                        r".*allow_exit=True"):
        validate_panel(df, **KW)


def test_treatment_switches_off_across_a_skipped_period():
    df = panel().drop(index=[2]).reset_index(drop=True)  # unit 1 observed 2015, 2016, 2018
    df.loc[1, "d"] = 1  # 2016 treated
    df.loc[2, "d"] = 0  # 2018 untreated
    with pytest.raises(DataError, match=r"switches off \(1 then 0\) for 1 units \(e\.g\. id=\[1\]\)"):
        validate_panel(df, **KW)


def test_no_pre_period():
    df = panel()
    df["d"] = (df["id"] <= 3).astype(int)  # treated units are treated in every period
    with pytest.raises(DataError, match=r"Column 'd' \(the treatment\): no pre-period - every treated unit is treated "
                                        r"in all its observed periods.*Include periods before entry"):
        validate_panel(df, **KW)


def test_no_untreated_observations():
    df = panel()
    df["d"] = 1
    with pytest.raises(DataError, match=r"Column 'd' \(the treatment\): no untreated observations - all rows are treated"):
        validate_panel(df, **KW)


def test_no_untreated_units_when_all_enter_together():
    df = panel(n_treated=6)
    with pytest.raises(DataError, match=r"Column 'd' \(the treatment\): no untreated units - in every period all "
                                        r"units in 'id' have the same treatment status \(all treated from 2017\).*"
                                        r"Include never-treated or not-yet-treated \(comparison\) units"):
        validate_panel(df, **KW)


def test_no_untreated_units_in_an_unbalanced_panel():
    # all units treated from 2016; unit 1 is first observed in 2017, already treated
    df = panel(n_treated=6, entry=2016).drop(index=[0, 1]).reset_index(drop=True)
    with pytest.raises(DataError, match=r"no untreated units - in every period all units in 'id' have the same"):
        validate_panel(df, **KW)


def test_no_treated_observations():
    df = panel()
    df["d"] = False
    with pytest.raises(DataError, match=r"Column 'd' \(the treatment\): no treated observations \(all 0\)"):
        validate_panel(df, **KW)


# ----------------------------------------------------------------------------------------------
# cohort


def test_cohort_not_constant_within_unit():
    df = shuffled(panel())
    df.loc[df["id"] == 2, "g"] = np.where(df.loc[df["id"] == 2, "year"] > 2016, 2017.0, np.nan)
    with pytest.raises(DataError, match=r"Column 'g' \(the cohort\) is not constant within unit for 1 units "
                                        r"\(e\.g\. id=\[2\]\).*transform\('min'\)"):
        validate_panel(df, **CKW)


def test_cohort_treated_in_first_period_has_no_pre_period():
    df = panel()
    df.loc[df["id"].isin([1, 2]), "g"] = 2015.0
    with pytest.raises(DataError, match=r"2 units \(8 rows\) in column 'g' are treated from the first period \(2015\) on, "
                                        r"so they have no pre-period\. Drop them, or pass already_treated='drop'"):
        validate_panel(df, **CKW)


def test_cohort_no_untreated_units():
    df = panel()
    df["g"] = 2017.0
    with pytest.raises(DataError, match=r"Column 'g' \(the cohort\): no untreated units \(no never-treated units and a "
                                        r"single cohort, 2017\).*include never-treated units"):
        validate_panel(df, **CKW)


def test_cohort_no_treated_units():
    df = panel()
    df["g"] = np.inf
    with pytest.raises(DataError, match=r"Column 'g' \(the cohort\): no treated units \(every unit is never treated\)"):
        validate_panel(df, **CKW)


def test_cohort_all_nat_dates():
    df = panel()
    df["qdate"] = np.tile(pd.date_range("2020-01-01", periods=4, freq="QS"), 6)
    df["gdate"] = pd.Series(pd.NaT, index=df.index, dtype="datetime64[ns]")
    with pytest.raises(DataError, match=r"Column 'gdate' \(the cohort\): no treated units"):
        validate_panel(df, outcome="spend", unit="id", time="qdate", cohort="gdate")


def test_cohort_zero_for_never_when_zero_is_a_period():
    df = panel(years=[0, 1, 2, 3], entry=2)
    df["g"] = np.where(df["id"] <= 3, 2.0, 0.0)
    with pytest.raises(DataError, match=r"Column 'g' \(the cohort\) uses 0, but 0 is also a time period.*Code "
                                        r"never-treated units as NaN or inf"):
        validate_panel(df, **CKW)


def test_cohort_off_the_time_grid():
    df = panel(years=[2014, 2016, 2018, 2020], entry=2018)
    df["g"] = np.where(df["id"] <= 3, 2017.0, np.nan)
    with pytest.raises(DataError, match=r"Column 'g' \(the cohort\) has values \[2017\.0\] that are not periods of the "
                                        r"time axis \(first 2014, step 2\)"):
        validate_panel(df, **CKW)


def test_cohort_negative_infinity():
    df = panel()
    df.loc[df["id"] == 6, "g"] = -np.inf
    with pytest.raises(DataError, match=r"Column 'g' \(the cohort\) has -inf values\. Code never-treated units as NaN"):
        validate_panel(df, **CKW)


def test_cohort_non_numeric():
    df = panel()
    df["g"] = df["g"].map(lambda v: "never" if np.isnan(v) else str(int(v)))
    with pytest.raises(DataError, match=r"Column 'g' \(the cohort\) must hold the first treated period in the units "
                                        r"of time \(never treated: NaN, inf or 0\)\. Got dtype"):
        validate_panel(df, **CKW)


def quarters(df: pd.DataFrame) -> pd.Series:
    q = pd.period_range("2019Q3", periods=4, freq="Q")
    return pd.Series(np.tile(q, len(df) // 4), index=df.index, dtype=q.dtype)


def test_cohort_frequency_mismatch():
    df = panel()
    df["quarter"] = quarters(df)
    df["gy"] = pd.Series(pd.period_range("2020", periods=1, freq="Y").repeat(24))
    with pytest.raises(DataError, match=r"Column 'gy' \(the cohort\) has frequency Y-DEC, but time has Q-DEC\. .*"
                                        r"data\['gy'\]\.dt\.asfreq\('Q-DEC', how='start'\)"):
        validate_panel(df, outcome="spend", unit="id", time="quarter", cohort="gy")


def test_numeric_cohort_with_period_time():
    df = panel()
    df["quarter"] = quarters(df)
    with pytest.raises(DataError, match=r"Column 'g' \(the cohort\) must hold Periods \(or dates\) like the time "
                                        r"column.*Got dtype float64"):
        validate_panel(df, outcome="spend", unit="id", time="quarter", cohort="g")


# ----------------------------------------------------------------------------------------------
# weights


def test_negative_weights():
    df = panel()
    df["w"] = 1.0
    df.loc[[1, 4, 9], "w"] = -0.5
    with pytest.raises(DataError, match=r"Column 'w' \(the weights\) has 3 negative values; weights must be non-negative"):
        validate_panel(df, **KW, weights="w")


def test_non_numeric_weights():
    df = panel()
    df["w"] = "1"
    with pytest.raises(DataError, match=r"Column 'w' \(the weights\) must be numeric"):
        validate_panel(df, **KW, weights="w")


# ----------------------------------------------------------------------------------------------
# time


def test_calendar_gap_in_integer_years():
    df = panel(years=[2015, 2016, 2018, 2019], entry=2018)
    with pytest.raises(DataError, match=r"Column 'year' \(the time\): the calendar has gaps: no rows at all in 1 "
                                        r"period\(s\), e\.g\. \[2017\] \(step 1\)\. Individual units may skip periods"):
        validate_panel(df, **KW)


def test_calendar_gap_in_period_quarters():
    df = panel()
    q = pd.PeriodIndex(["2019Q3", "2019Q4", "2020Q2", "2020Q3"], freq="Q")
    df["quarter"] = pd.Series(np.tile(q, 6), dtype=q.dtype)
    with pytest.raises(DataError, match=r"Column 'quarter' \(the time\): the calendar has gaps: no rows at all in 1 "
                                        r"period\(s\), e\.g\. \['2020Q1'\]"):
        validate_panel(df, outcome="spend", unit="id", time="quarter", treatment="d")


def test_calendar_gap_in_quarter_dates():
    df = panel()
    dates = pd.PeriodIndex(["2019Q3", "2019Q4", "2020Q2", "2020Q3"], freq="Q").start_time
    df["qdate"] = np.tile(dates, 6)
    with pytest.raises(DataError, match=r"Column 'qdate' \(the time\): the calendar has gaps.*\['2020Q1'\]"):
        validate_panel(df, outcome="spend", unit="id", time="qdate", treatment="d")


def test_yyyyq_codes_are_not_a_regular_grid():
    df = panel(years=[20193, 20194, 20201, 20202], entry=20201)
    with pytest.raises(DataError, match=r"Column 'year' \(the time\).*codes like yyyyq or yyyymm must be converted to Periods"):
        validate_panel(df, **KW)


def test_irregular_time_grid():
    df = panel(years=[2014, 2016, 2019, 2021], entry=2019)
    with pytest.raises(DataError, match=r"Column 'year' \(the time\) is not on a regular grid"):
        validate_panel(df, **KW)


def test_non_integer_time():
    df = panel()
    df["year"] = df["year"] + 0.5
    with pytest.raises(DataError, match=r"Column 'year' \(the time\) has non-integer values \(e\.g\. \[2015\.5"):
        validate_panel(df, **KW)


@pytest.mark.parametrize("conv", [str, bool])
def test_time_of_wrong_type(conv):
    df = panel()
    df["year"] = df["year"].map(lambda v: conv(v) if conv is str else v > 2016)
    with pytest.raises(DataError, match=r"Column 'year' \(the time\) must be integer periods \(e\.g\. years\), pandas "
                                        r"Periods or dates"):
        validate_panel(df, **KW)


def test_calendar_gap_in_weekly_dates():
    df = panel()
    df["week"] = np.tile(pd.to_datetime(["2020-01-06", "2020-01-13", "2020-01-27", "2020-02-03"]), 6)
    with pytest.raises(DataError, match=r"Column 'week' \(the time\): the calendar has gaps.*\['2020-01-20/2020-01-26'\]"):
        validate_panel(df, outcome="spend", unit="id", time="week", treatment="d")


@pytest.mark.parametrize("dates", [["2020-01-03", "2020-02-17", "2020-02-20", "2020-06-09"],
                                   ["2020-01-01 00:00", "2020-01-01 06:00", "2020-01-01 12:00", "2020-01-01 18:00"]])
def test_irregular_dates(dates):
    df = panel()
    df["when"] = np.tile(pd.to_datetime(dates), 6)
    with pytest.raises(DataError, match=r"Column 'when' \(the time\) holds dates that are not aligned to years, quarters "
                                        r"or months.*\.dt\.to_period\('Q'\)"):
        validate_panel(df, outcome="spend", unit="id", time="when", treatment="d")


# ----------------------------------------------------------------------------------------------
# group (2x2 repeated cross-sections), covariates, clusters


def rcs() -> pd.DataFrame:
    return pd.DataFrame({"year": np.repeat([2019, 2020], 6), "grp": np.tile([0, 1], 6), "spend": np.arange(12.0)})


def test_group_not_binary():
    df = rcs()
    df.loc[0, "grp"] = 3
    with pytest.raises(DataError, match=r"Column 'grp' \(the group\) must be 0/1 \(1 = treated group\); found values \[3\.0\]"):
        validate_panel(df, outcome="spend", time="year", group="grp")


def test_group_without_comparison():
    df = rcs()
    df["grp"] = 1
    with pytest.raises(DataError, match=r"Column 'grp' \(the group\): no untreated \(comparison\) group"):
        validate_panel(df, outcome="spend", time="year", group="grp")


def test_high_cardinality_covariate(monkeypatch):
    monkeypatch.setattr(schema, "_MAX_DUMMY_BYTES", 100)
    df = panel()
    df["member"] = "M" + df["id"].astype(str)
    with pytest.raises(DataError, match=r"Column 'member' \(a covariate\) has 6 levels: its dummies would need .*GiB\. "
                                        r"Coarsen it, or use it as a fixed effect or cluster"):
        validate_panel(df, **KW, covariates=["member"])


def test_single_cluster():
    with pytest.raises(DataError, match=r"Column 'org' \(the cluster\) has 1 cluster; cluster-robust standard errors need "
                                        r"at least 2.*vcov='HC1'"):
        check_clusters(np.zeros(10, dtype=np.int64), "org")


def test_data_errors_are_value_errors():
    with pytest.raises(ValueError):
        validate_panel(panel().iloc[:0], **KW)
