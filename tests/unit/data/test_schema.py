"""The data contract (evalkit.data.schema): accepted inputs, codes, drops and their records.

Error messages are pinned in tests/test_errors.py; this file checks what validate_panel returns.
"""
from __future__ import annotations

import logging
import warnings

import numpy as np
import pandas as pd
import pytest

from evalkit.data.schema import DropRecord, TimeAxis, ValidatedPanel, check_clusters, validate_panel
from evalkit.errors import (
    DataError,
    DroppedRowsWarning,
    EvalkitError,
    FewClustersWarning,
    SingletonWarning,
)

YEARS = [2015, 2016, 2017, 2018]


def panel(n_units: int = 6, years=YEARS, entry: int = 2017, n_treated: int = 3, seed: int = 42) -> pd.DataFrame:
    """Balanced panel sorted by (id, year); the first ``n_treated`` units enter at ``entry``."""
    rng = np.random.default_rng(seed)
    ids = np.repeat(np.arange(1, n_units + 1), len(years))
    yr = np.tile(years, n_units)
    treated = ids <= n_treated
    return pd.DataFrame(
        {
            "id": ids,
            "year": yr,
            "y": rng.normal(size=len(ids)),
            "d": (treated & (yr >= entry)).astype(int),
            "g": np.where(treated, float(entry), np.nan),
            "org": (ids - 1) // 2,
            "x": rng.normal(size=len(ids)),
        }
    )


KW = dict(outcome="y", unit="id", time="year", treatment="d")


# ----------------------------------------------------------------------------------------------
# basics


def test_basic_panel_arrays_and_properties():
    df = panel()
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        vp = validate_panel(df, **KW, cluster="org", covariates=["x"])
    assert isinstance(vp, ValidatedPanel)
    assert vp.nobs == 24 and vp.n_units == 6 and vp.n_periods == 4 and vp.is_balanced
    assert vp.n_input_rows == 24 and vp.dropped == () and vp.notes == ()
    np.testing.assert_array_equal(vp.y, df["y"].to_numpy())
    np.testing.assert_array_equal(vp.time, np.tile([0, 1, 2, 3], 6))
    np.testing.assert_array_equal(vp.unit, np.repeat(np.arange(6), 4))
    assert list(vp.unit_levels) == [1, 2, 3, 4, 5, 6]
    np.testing.assert_array_equal(vp.treatment, df["d"].to_numpy(dtype=float))
    assert vp.cluster.shape == (24, 1) and vp.cluster_names == ("org",)
    np.testing.assert_array_equal(vp.cluster[:, 0], df["org"].to_numpy())
    assert vp.X.shape == (24, 1) and vp.covariate_names == ("x",)
    np.testing.assert_array_equal(vp.row_index, np.arange(24))
    assert vp.sorted_by_unit_time
    assert vp.roles == {"outcome": ("y",), "time": ("year",), "unit": ("id",), "treatment": ("d",),
                        "cluster": ("org",), "covariate": ("x",)}
    for a in (vp.y, vp.X, vp.unit, vp.time, vp.treatment, vp.cluster, vp.row_index):
        assert a.dtype in (np.float64, np.int64, np.intp)


def test_returned_arrays_are_read_only():
    vp = validate_panel(panel(), **KW, weights=None, covariates=["x"], cluster="org")
    for a in (vp.y, vp.X, vp.unit, vp.time, vp.treatment, vp.cluster, vp.row_index):
        assert not a.flags.writeable
        with pytest.raises(ValueError):
            a[0] = 0


def test_data_error_is_a_value_error():
    assert issubclass(DataError, ValueError) and issubclass(DataError, EvalkitError)


def test_warnings_are_evalkit_warnings():
    for w in (FewClustersWarning, SingletonWarning, DroppedRowsWarning):
        assert issubclass(w, UserWarning)


# ----------------------------------------------------------------------------------------------
# accepted input types: string ids, Periods, dates, int years, booleans


@pytest.mark.parametrize("as_type", ["str", object, "category"])
def test_string_member_ids(as_type):
    df = panel()
    df["id"] = ("M" + df["id"].astype(str).str.zfill(6)).astype(as_type)
    vp = validate_panel(df, **KW)
    assert vp.n_units == 6
    assert list(vp.unit_levels) == [f"M{i:06d}" for i in range(1, 7)]
    np.testing.assert_array_equal(vp.unit, np.repeat(np.arange(6), 4))


def test_string_ids_unsorted_rows_give_consistent_codes():
    df = panel().sample(frac=1.0, random_state=1).reset_index(drop=True)
    df["id"] = "M" + df["id"].astype(str)
    vp = validate_panel(df, **KW)
    # every code maps back to the row's own id
    np.testing.assert_array_equal(np.asarray(vp.unit_levels)[vp.unit], df["id"].to_numpy())
    assert not vp.sorted_by_unit_time


def test_large_integer_ids_use_hash_path():
    df = panel().sample(frac=1.0, random_state=2)  # unsorted ids ...
    df["id"] = df["id"] * 10**12 + 7  # ... with a range far larger than the number of rows
    vp = validate_panel(df, **KW)
    assert vp.n_units == 6
    np.testing.assert_array_equal(np.asarray(vp.unit_levels)[vp.unit], df["id"].to_numpy())


@pytest.mark.parametrize("order", ["sorted", "shuffled"])
def test_integer_ids_codes_are_sorted(order):
    df = panel()
    df["id"] = 100 - 7 * df["id"]  # descending ids
    if order == "shuffled":
        df = df.sample(frac=1.0, random_state=4)
    vp = validate_panel(df, **KW)
    assert list(vp.unit_levels) == [58, 65, 72, 79, 86, 93]
    np.testing.assert_array_equal(np.asarray(vp.unit_levels)[vp.unit], df["id"].to_numpy())


def test_categorical_ids_ignore_unused_categories():
    df = panel()
    df["id"] = pd.Categorical(df["id"], categories=[0, 1, 2, 3, 4, 5, 6, 99])
    vp = validate_panel(df, **KW)
    assert vp.n_units == 6 and list(vp.unit_levels) == [1, 2, 3, 4, 5, 6]


def test_period_quarters_across_years_are_consecutive():
    df = panel()
    q = pd.PeriodIndex(["2019Q3", "2019Q4", "2020Q1", "2020Q2"], freq="Q")
    df["quarter"] = pd.Series(np.tile(q, 6), dtype=q.dtype)
    vp = validate_panel(df, outcome="y", unit="id", time="quarter", treatment="d")
    assert vp.time_axis.kind == "period"
    np.testing.assert_array_equal(vp.time, np.tile([0, 1, 2, 3], 6))
    assert list(vp.time_axis.levels.astype(str)) == ["2019Q3", "2019Q4", "2020Q1", "2020Q2"]
    assert vp.time_axis.label(2) == pd.Period("2020Q1", "Q")
    assert vp.time_axis.label(5) == pd.Period("2020Q4", "Q")  # extrapolates
    assert vp.time_axis.label(np.inf) is None


@pytest.mark.parametrize("edge", ["start", "end"])
def test_datetime_quarter_dates_become_quarters(edge):
    df = panel()
    q = pd.PeriodIndex(["2019Q4", "2020Q1", "2020Q2", "2020Q3"], freq="Q")
    dates = q.start_time if edge == "start" else q.end_time.normalize()
    df["qdate"] = np.tile(dates, 6)
    vp = validate_panel(df, outcome="y", unit="id", time="qdate", treatment="d")
    assert vp.time_axis.kind == "period"
    assert vp.time_axis.levels.dtype == q.dtype
    assert list(vp.time_axis.levels.astype(str)) == ["2019Q4", "2020Q1", "2020Q2", "2020Q3"]
    np.testing.assert_array_equal(vp.time, np.tile([0, 1, 2, 3], 6))


def test_datetime_month_and_year_starts():
    df = panel()
    df["m"] = np.tile(pd.date_range("2020-11-01", periods=4, freq="MS"), 6)
    vp = validate_panel(df, outcome="y", unit="id", time="m", treatment="d")
    assert list(vp.time_axis.levels.astype(str)) == ["2020-11", "2020-12", "2021-01", "2021-02"]
    df["a"] = pd.to_datetime(df["year"].astype(str) + "-01-01")
    vp = validate_panel(df, outcome="y", unit="id", time="a", treatment="d")
    assert list(vp.time_axis.levels.astype(str)) == ["2015", "2016", "2017", "2018"]


@pytest.mark.parametrize(
    "dates, labels",
    [
        (pd.date_range("2020-01-30", periods=4, freq="D"), ["2020-01-30", "2020-01-31", "2020-02-01", "2020-02-02"]),
        (pd.date_range("2020-01-06", periods=4, freq="W-MON"),
         ["2020-01-06/2020-01-12", "2020-01-13/2020-01-19", "2020-01-20/2020-01-26", "2020-01-27/2020-02-02"]),
    ],
)
def test_daily_and_weekly_dates(dates, labels):
    df = panel()
    df["when"] = np.tile(dates, 6)
    vp = validate_panel(df, outcome="y", unit="id", time="when", treatment="d")
    assert list(vp.time_axis.levels.astype(str)) == labels
    np.testing.assert_array_equal(vp.time, np.tile([0, 1, 2, 3], 6))


def test_single_unaligned_date_is_one_day():
    df = pd.DataFrame({"when": pd.to_datetime(["2020-03-17"] * 3), "y": [1.0, 2.0, 3.0]})
    vp = validate_panel(df, outcome="y", time="when")
    assert vp.n_periods == 1 and str(vp.time_axis.levels[0]) == "2020-03-17"


def test_timezone_aware_dates():
    df = panel()
    df["qdate"] = np.tile(pd.date_range("2020-01-01", periods=4, freq="QS"), 6)
    df["qdate"] = df["qdate"].dt.tz_localize("US/Eastern")
    vp = validate_panel(df, outcome="y", unit="id", time="qdate", treatment="d")
    assert list(vp.time_axis.levels.astype(str)) == ["2020Q1", "2020Q2", "2020Q3", "2020Q4"]


def test_int_years_and_float_years():
    vp = validate_panel(panel(), **KW)
    assert vp.time_axis.kind == "int" and list(vp.time_axis.levels) == YEARS
    df = panel()
    df["year"] = df["year"].astype(float)
    vp2 = validate_panel(df, **KW)
    assert vp2.time_axis.kind == "float"
    np.testing.assert_array_equal(vp2.time, vp.time)


def test_time_with_a_constant_step():
    vp = validate_panel(panel(years=[2014, 2016, 2018, 2020], entry=2018), **KW)
    np.testing.assert_array_equal(vp.time[:4], [0, 1, 2, 3])
    assert vp.time_axis.label(1) == 2016 and vp.time_axis.label(4) == 2022


def test_nullable_integer_time_and_outcome():
    df = panel()
    df["year"] = df["year"].astype("Int64")
    df["y"] = (df["y"] * 100).round().astype("Int64")
    vp = validate_panel(df, **KW)
    assert vp.y.dtype == np.float64 and vp.time_axis.kind == "int"


def test_boolean_treatment_and_outcome():
    df = panel()
    df["d"] = df["d"].astype(bool)
    df["any_ed"] = df["y"] > 0
    vp = validate_panel(df, outcome="any_ed", unit="id", time="year", treatment="d")
    np.testing.assert_array_equal(vp.y, (df["y"] > 0).to_numpy(dtype=float))
    assert set(np.unique(vp.treatment)) == {0.0, 1.0}
    df["d"] = df["d"].astype("boolean")  # nullable boolean without NA
    vp = validate_panel(df, outcome="any_ed", unit="id", time="year", treatment="d")
    assert vp.treatment.dtype == np.float64


# ----------------------------------------------------------------------------------------------
# unbalanced panels, time mapping


def test_unbalanced_panel_unit_skipping_periods_is_fine():
    df = panel().drop(index=[1, 2, 9]).reset_index(drop=True)  # unit 1 skips 2016-17, unit 3 skips 2016
    vp = validate_panel(df, **KW)
    assert vp.nobs == 21 and not vp.is_balanced and vp.n_periods == 4
    np.testing.assert_array_equal(vp.time[:2], [0, 3])


def test_row_order_does_not_change_the_result():
    df = panel(n_units=10, n_treated=4)
    shuffled = df.sample(frac=1.0, random_state=3)  # also a non-default index
    a = validate_panel(df, **KW, cohort="g", cluster="org", covariates=["x"])
    b = validate_panel(shuffled, **KW, cohort="g", cluster="org", covariates=["x"])
    assert not b.sorted_by_unit_time
    order = np.argsort(shuffled.index.to_numpy()[b.row_index], kind="stable")
    np.testing.assert_array_equal(b.y[order], a.y)
    np.testing.assert_array_equal(b.time[order], a.time)
    np.testing.assert_array_equal(b.treatment[order], a.treatment)
    np.testing.assert_array_equal(b.cohort[order], a.cohort)
    np.testing.assert_array_equal(np.asarray(b.unit_levels)[b.unit][order], df["id"].to_numpy())


# ----------------------------------------------------------------------------------------------
# cohorts


def test_cohort_codes_are_period_codes_inf_for_never():
    df = panel()
    vp = validate_panel(df, outcome="y", unit="id", time="year", cohort="g")
    np.testing.assert_array_equal(vp.cohort, np.where(df["id"] <= 3, 2.0, np.inf))
    assert vp.treatment is None


@pytest.mark.parametrize("never", [np.nan, np.inf, 0.0])
def test_cohort_never_treated_codings(never):
    df = panel()
    df["g"] = np.where(df["id"] <= 3, 2017.0, never)
    vp = validate_panel(df, outcome="y", unit="id", time="year", cohort="g")
    assert np.isinf(vp.cohort[df["id"].to_numpy() > 3]).all()


def test_cohort_integer_column_with_zero_for_never():
    df = panel()
    df["g"] = np.where(df["id"] <= 3, 2017, 0)
    vp = validate_panel(df, outcome="y", unit="id", time="year", cohort="g")
    assert np.isinf(vp.cohort[3 * 4:]).all() and (vp.cohort[:12] == 2).all()


def test_cohort_after_last_period_is_never_treated_and_recorded(caplog):
    df = panel()
    df["g"] = np.select([df["id"] <= 2, df["id"] == 3], [2017.0, 2025.0], np.nan)
    with caplog.at_level(logging.INFO, logger="evalkit.data.schema"):
        vp = validate_panel(df, outcome="y", unit="id", time="year", cohort="g")
    assert np.isinf(vp.cohort[df["id"].to_numpy() == 3]).all()
    assert vp.dropped == ()
    assert any("1 units (4 rows) first treated after the last period (2018)" in n for n in vp.notes)
    assert "recoded as never treated" in caplog.text


def test_cohort_with_time_step():
    df = panel(years=[2014, 2016, 2018, 2020], entry=2018)
    df["g"] = np.where(df["id"] <= 3, 2018.0, np.nan)
    vp = validate_panel(df, outcome="y", unit="id", time="year", cohort="g")
    assert (vp.cohort[:12] == 2).all()


def test_period_and_datetime_cohorts():
    df = panel()
    q = pd.period_range("2019Q1", periods=4, freq="Q")
    df["quarter"] = pd.Series(np.tile(q, 6), dtype=q.dtype)
    df["gq"] = pd.Series(np.where(df["id"] <= 3, q[2], pd.NaT), dtype=q.dtype)
    vp = validate_panel(df, outcome="y", unit="id", time="quarter", cohort="gq")
    np.testing.assert_array_equal(vp.cohort, np.where(df["id"] <= 3, 2.0, np.inf))
    df["qdate"] = df["quarter"].dt.start_time
    df["gdate"] = df["gq"].dt.start_time  # NaT stays NaT
    vp2 = validate_panel(df, outcome="y", unit="id", time="qdate", cohort="gdate")
    np.testing.assert_array_equal(vp2.cohort, vp.cohort)


def test_cohort_before_first_period_counts_as_already_treated():
    df = panel()
    df["g"] = np.where(df["id"] == 1, 2010.0, df["g"])
    with pytest.raises(DataError, match="1 units"):
        validate_panel(df, outcome="y", unit="id", time="year", cohort="g")


def test_already_treated_drop_is_recorded():
    df = panel()
    df.loc[df["id"] == 1, "g"] = 2015.0
    with pytest.warns(DroppedRowsWarning, match="4 of 24 rows dropped"):
        vp = validate_panel(df, outcome="y", unit="id", time="year", cohort="g", already_treated="drop")
    assert vp.dropped == (DropRecord(
        "treated in the first period (no pre-period)", 4,
        "1 units (4 rows) in column 'g' are treated from the first period (2015) on, so they have no pre-period",
    ),)
    assert vp.n_units == 5 and vp.nobs == 20
    np.testing.assert_array_equal(vp.row_index, np.arange(4, 24))
    np.testing.assert_array_equal(vp.unit, np.repeat(np.arange(5), 4))
    assert list(vp.unit_levels) == [2, 3, 4, 5, 6]


def test_already_treated_keep_is_noted():
    df = panel()
    df.loc[df["id"] == 1, "g"] = 2015.0
    vp = validate_panel(df, outcome="y", unit="id", time="year", cohort="g", already_treated="keep")
    assert vp.nobs == 24 and vp.cohort[0] == 0.0 and vp.dropped == ()
    assert any("already_treated='keep'" in n for n in vp.notes)


# ----------------------------------------------------------------------------------------------
# treatment


def test_allow_exit_accepts_switching_off():
    df = panel()
    df.loc[3, "d"] = 0  # unit 1 leaves in 2018
    vp = validate_panel(df, **KW, allow_exit=True)
    assert vp.treatment[3] == 0


def test_units_always_treated_are_fine_when_others_have_pre_periods():
    df = panel()
    df.loc[df["id"] == 1, "d"] = 1  # treated in every observed period (absorbed by the unit effect)
    vp = validate_panel(df, **KW)
    assert vp.treatment[:4].tolist() == [1, 1, 1, 1]


def test_staggered_treatment_without_never_treated_is_allowed():
    df = panel(n_units=4, n_treated=4)
    df.loc[df["id"] >= 3, "d"] = (df.loc[df["id"] >= 3, "year"] >= 2018).astype(int)
    vp = validate_panel(df, **KW)
    assert vp.treatment.sum() == 2 * 2 + 2 * 1


def test_require_flags_can_be_switched_off():
    df = panel()
    df["d"] = 1
    vp = validate_panel(df, **KW, require_untreated=False, require_pre_period=False)
    assert vp.treatment.min() == 1


# ----------------------------------------------------------------------------------------------
# missing values, weights, singletons: drop-and-record


def test_dropna_records_and_warns():
    df = panel()
    df.loc[[0, 5], "y"] = np.nan
    df.loc[[5, 7], "x"] = np.nan
    df.loc[9, "x"] = np.inf
    with pytest.warns(DroppedRowsWarning, match=r"4 of 24 rows dropped: 4 rows dropped: missing values"):
        vp = validate_panel(df, **KW, covariates=["x"], dropna=True)
    assert vp.dropped == (DropRecord("missing values", 4, "'y': 2, 'x': 3"),)
    np.testing.assert_array_equal(vp.row_index, np.setdiff1d(np.arange(24), [0, 5, 7, 9]))
    np.testing.assert_array_equal(vp.y, df["y"].to_numpy()[vp.row_index])
    np.testing.assert_array_equal(vp.X[:, 0], df["x"].to_numpy()[vp.row_index])
    assert vp.nobs == 20 and not vp.is_balanced


def test_nullable_float_missing_and_infinite_values():
    df = panel()
    df["y"] = df["y"].astype("Float64")
    df.loc[0, "y"] = pd.NA
    df.loc[1, "y"] = np.inf
    with pytest.warns(DroppedRowsWarning):
        vp = validate_panel(df, **KW, dropna=True)
    assert vp.dropped == (DropRecord("missing values", 2, "'y': 2"),)


def test_nan_cohort_is_not_missing():
    df = panel()
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        vp = validate_panel(df, outcome="y", unit="id", time="year", cohort="g")
    assert vp.nobs == 24 and vp.dropped == ()


def test_zero_weights_dropped_and_recorded():
    df = panel()
    df["w"] = 1.0 + np.arange(24) / 10
    df.loc[[2, 11], "w"] = 0.0
    with pytest.warns(DroppedRowsWarning, match="2 rows dropped: zero weight"):
        vp = validate_panel(df, **KW, weights="w")
    assert vp.dropped == (DropRecord("zero weight", 2, "column 'w'"),)
    np.testing.assert_array_equal(vp.row_index, np.setdiff1d(np.arange(24), [2, 11]))
    np.testing.assert_array_equal(vp.weights, df["w"].to_numpy()[vp.row_index])
    assert (vp.weights > 0).all()


def test_integer_and_boolean_weights():
    df = panel()
    df["w"] = 2
    vp = validate_panel(df, **KW, weights="w")
    assert vp.weights.dtype == np.float64 and (vp.weights == 2).all()


def test_missing_and_zero_weight_drops_are_both_recorded():
    df = panel()
    df["w"] = 1.0
    df.loc[0, "w"] = np.nan
    df.loc[1, "w"] = 0.0
    with pytest.warns(DroppedRowsWarning):
        vp = validate_panel(df, **KW, weights="w", dropna=True)
    assert [r.reason for r in vp.dropped] == ["missing values", "zero weight"]
    assert [r.n_rows for r in vp.dropped] == [1, 1]
    np.testing.assert_array_equal(vp.row_index, np.arange(2, 24))


def test_singletons_kept_warned_and_logged(caplog):
    df = panel()
    extra = pd.DataFrame({"id": [7], "year": [2016], "y": [0.5], "d": [0], "g": [np.nan], "org": [3], "x": [0.0]})
    df = pd.concat([df, extra], ignore_index=True)
    with caplog.at_level(logging.INFO, logger="evalkit.data.schema"):
        with pytest.warns(SingletonWarning, match=r"1 units in 'id' are observed once .*drop_singletons=True"):
            vp = validate_panel(df, **KW)
    assert vp.nobs == 25 and vp.n_units == 7 and vp.dropped == ()
    assert "singletons" in caplog.text
    assert any("observed once" in n for n in vp.notes)


def test_drop_singletons_records_the_drop():
    df = panel()
    extra = pd.DataFrame({"id": [7, 8], "year": [2016, 2018], "y": [0.5, 0.1], "d": [0, 0], "g": np.nan,
                          "org": [3, 3], "x": [0.0, 1.0]})
    df = pd.concat([extra.iloc[:1], df, extra.iloc[1:]], ignore_index=True)
    with warnings.catch_warnings():
        warnings.simplefilter("error", SingletonWarning)  # dropping does not also warn about keeping
        with pytest.warns(DroppedRowsWarning, match="singleton"):
            vp = validate_panel(df, **KW, drop_singletons=True, cluster="org", covariates=["x"])
    assert vp.dropped == (DropRecord("singleton units (observed once)", 2, "drop_singletons=True (Stata reghdfe policy)"),)
    np.testing.assert_array_equal(vp.row_index, np.arange(1, 25))
    assert vp.n_units == 6 and vp.unit.max() == 5 and list(vp.unit_levels) == [1, 2, 3, 4, 5, 6]
    assert vp.X.shape == (24, 1) and vp.cluster.shape == (24, 1)


def test_period_emptied_by_drops_is_noted():
    df = panel()
    extra = pd.DataFrame({"id": [7], "year": [2019], "y": [0.5], "d": [0], "g": [np.nan], "org": [3], "x": [0.0]})
    df = pd.concat([df, extra], ignore_index=True)  # 2019 is observed only for a singleton
    with pytest.warns(DroppedRowsWarning):
        vp = validate_panel(df, **KW, drop_singletons=True)
    assert vp.n_periods == 5 and vp.time.max() == 3
    assert any("no rows remain in period(s) [2019]" in n for n in vp.notes)


def test_sort_based_duplicate_check(monkeypatch):
    import evalkit.data.schema as schema

    monkeypatch.setattr(schema, "_use_table", lambda cells, n: False)
    df = panel().sample(frac=1.0, random_state=5)
    assert validate_panel(df, **KW).nobs == 24
    with pytest.raises(DataError, match="2 rows share"):
        validate_panel(pd.concat([df, df.iloc[[0]]]), **KW)


def test_repeated_cross_section_has_no_unit_and_no_singleton_check():
    rng = np.random.default_rng(0)
    df = pd.DataFrame({"year": np.repeat([2019, 2020], 8), "treated_group": np.tile([0, 1], 8),
                       "y": rng.normal(size=16)})
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        vp = validate_panel(df, outcome="y", time="year", group="treated_group")
    assert vp.unit is None and vp.unit_levels is None and vp.n_units is None and not vp.is_balanced
    np.testing.assert_array_equal(vp.group, df["treated_group"].to_numpy(dtype=float))


# ----------------------------------------------------------------------------------------------
# covariates


def test_object_covariate_expanded_to_dummies_first_level_dropped():
    df = panel()
    df["plan"] = np.tile(["hmo", "ppo", "epo", "ppo"], 6)  # sorted levels: epo, hmo, ppo
    vp = validate_panel(df, **KW, covariates=["x", "plan"])
    assert vp.covariate_names == ("x", "plan[hmo]", "plan[ppo]")
    np.testing.assert_array_equal(vp.X[:, 1], (df["plan"] == "hmo").to_numpy(dtype=float))
    np.testing.assert_array_equal(vp.X[:, 2], (df["plan"] == "ppo").to_numpy(dtype=float))
    assert vp.X.flags.c_contiguous or vp.X.flags.f_contiguous


def test_categorical_covariate_uses_category_order_and_bool_is_numeric():
    df = panel()
    df["risk"] = pd.Categorical(np.tile(["low", "mid", "high", "mid"], 6), categories=["low", "mid", "high"])
    df["female"] = np.tile([True, False], 12)
    vp = validate_panel(df, **KW, covariates=["risk", "female"])
    assert vp.covariate_names == ("risk[mid]", "risk[high]", "female")
    np.testing.assert_array_equal(vp.X[:, 1], (df["risk"] == "high").to_numpy(dtype=float))
    np.testing.assert_array_equal(vp.X[:, 2], df["female"].to_numpy(dtype=float))


def test_dummies_built_on_kept_rows_only():
    df = panel()
    df["plan"] = np.tile(["a", "b", "c", "c"], 6)
    df.loc[df["plan"] == "a", "y"] = np.nan  # level 'a' disappears with the dropped rows
    with pytest.warns(DroppedRowsWarning):
        vp = validate_panel(df, **KW, covariates=["plan"], dropna=True)
    assert vp.covariate_names == ("plan[c]",)


def test_no_covariates_gives_empty_matrix():
    vp = validate_panel(panel(), **KW)
    assert vp.X.shape == (24, 0) and vp.covariate_names == ()


# ----------------------------------------------------------------------------------------------
# the user's frame is never modified


@pytest.mark.parametrize(
    "extra",
    [
        {},
        {"dropna": True, "weights": "w"},
        {"cohort": "g", "already_treated": "drop", "drop_singletons": True},
    ],
)
def test_user_frame_is_never_modified(extra):
    df = panel()
    df["w"] = np.r_[0.0, np.ones(23)]
    df.loc[5, "x"] = np.nan
    df["plan"] = np.tile(["a", "b"], 12)
    df.loc[df["id"] == 2, "g"] = 2015.0
    df.loc[df["id"] == 2, "d"] = 1
    df = pd.concat([df, df.iloc[[0]].assign(id=99)], ignore_index=True)  # a singleton
    df = df.sample(frac=1.0, random_state=0)
    before = df.copy(deep=True)
    kw = dict(outcome="y", unit="id", time="year", treatment="d", covariates=["x", "plan"], cluster="org",
              dropna=True)
    kw.update(extra)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        vp = validate_panel(df, **kw)
    pd.testing.assert_frame_equal(df, before)
    assert vp.nobs <= len(df)


# ----------------------------------------------------------------------------------------------
# clusters


def test_cluster_codes_are_dense_on_kept_rows():
    df = panel()
    df["org"] = np.repeat([10, 20, 30, 40, 50, 60], 4)
    df["region"] = np.repeat(["n", "s", "n", "s", "e", "e"], 4)
    vp = validate_panel(df, **KW, cluster=["org", "region"])
    assert vp.cluster_names == ("org", "region") and vp.cluster.shape == (24, 2)
    assert vp.cluster[:, 0].max() == 5 and vp.cluster[:, 1].max() == 2


def test_check_clusters_counts_and_warns_with_counts():
    cl = np.repeat(np.arange(12), 5)
    treated = (cl < 4).astype(float)
    with pytest.warns(FewClustersWarning) as rec:
        out = check_clusters(cl, "org", treated)
    assert out == {"n_clusters": 12, "n_treated_clusters": 4, "n_untreated_clusters": 8}
    msg = str(rec[0].message)
    assert "'org'" in msg and "12 clusters, 4 of them treated" in msg
    assert "vcov='CR2'" in msg and "vcov='wild'" in msg and "wild cluster bootstrap" in msg


def test_check_clusters_few_treated_among_many():
    cl = np.arange(200) % 50
    treated = (cl < 6).astype(float)
    with pytest.warns(FewClustersWarning, match=r"50 clusters, 6 of them treated \(fewer than 10 treated clusters, where CR1 fails\)"):
        check_clusters(cl, "org", treated)


def test_check_clusters_enough_clusters_is_silent():
    cl = np.arange(400) % 40
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        out = check_clusters(cl, "org", (cl < 20).astype(float))
        assert out["n_clusters"] == 40 and out["n_treated_clusters"] == 20
        assert check_clusters(cl, "org")["n_treated_clusters"] is None


def test_check_clusters_accepts_validated_panel_columns_and_labels():
    df = panel()
    vp = validate_panel(df, **KW, cluster=["org", "id"])
    with pytest.warns(FewClustersWarning):
        out = check_clusters(vp.cluster, ["org", "id"], vp.treatment)
    assert out["n_clusters"] == 3 and out["by_column"]["id"]["n_clusters"] == 6
    assert out["by_column"]["id"]["n_treated_clusters"] == 3
    with pytest.warns(FewClustersWarning, match="2 clusters"):
        assert check_clusters(np.array(["a", "b", "a"]), "org")["n_clusters"] == 2
    with pytest.warns(FewClustersWarning, match="3 clusters"):
        check_clusters(vp.cluster[:, :1], "org", stacklevel=2)
    with pytest.warns(FewClustersWarning, match="'org, region'"):
        check_clusters(vp.cluster[:, 0], ["org", "region"])


def test_check_clusters_logs(caplog):
    with caplog.at_level(logging.WARNING, logger="evalkit.data.schema"):
        with pytest.warns(FewClustersWarning):
            check_clusters(np.arange(10) % 5, "org")
    assert "5 clusters" in caplog.text


def test_time_axis_label_numeric():
    ax = TimeAxis(levels=pd.Index([2014, 2016]), kind="int")
    assert ax.n_periods == 2 and ax.label(0) == 2014 and ax.label(3) == 2020
