"""Bad input for ek.matching: each error names the column and the fix."""
import numpy as np
import pytest

import evalkit as ek
from evalkit.errors import DataError, DroppedRowsWarning, EstimationError, SpecificationError
from evalkit.matching import estimate_effect, match, weight



def test_missing_column(df):
    with pytest.raises(DataError, match=r"Covariate column\(s\) \['nope'\] not found"):
        match(df, treatment="t", covariates=["x", "nope"])
    with pytest.raises(DataError, match="Column 'tt' not found"):
        match(df, treatment="tt", covariates=["x"])


def test_missing_covariate_values(df):
    d = df.copy()
    d.loc[:4, "z"] = np.nan
    with pytest.raises(DataError, match=r"Missing values in covariate\(s\) 'z' \(5 rows\).*dropna"):
        match(d, treatment="t", covariates=["x", "z"])


def test_constant_covariate(df):
    with pytest.raises(DataError, match=r"\['c'\] are constant"):
        match(df.assign(c=1.0), treatment="t", covariates=["x", "c"])


def test_collinear_covariate(df):
    with pytest.raises(DataError, match=r"\['x2'\] are collinear"):
        match(df.assign(x2=2 * df.x), treatment="t", covariates=["x", "x2"])


def test_non_binary_treatment(df):
    with pytest.raises(DataError, match="'t' must be binary"):
        match(df.assign(t=df.t * 2 + 1), treatment="t", covariates=["x"])


def test_perfect_separation_names_column(df):
    d = df.assign(sep=df.t * 10.0 + df.z * 0.01)
    with pytest.raises(DataError, match=r"Perfect separation.*\['sep'\] separate the groups"):
        match(d, treatment="t", covariates=["x", "sep"])


def test_no_overlap_refused(df):
    d = df.assign(score=np.where(df.t == 1, 0.8, 0.2) + df.z * 0.01)
    with pytest.raises(DataError, match="No overlap"):
        match(d, treatment="t", covariates=["x"], distance="score")


def test_limited_overlap_trimmed_with_warning(df):
    d = df.assign(score=np.where(df.t == 1, 0.5, 0.3) + np.abs(df.z) * 0.1)
    with pytest.warns(DroppedRowsWarning, match="discarded before matching"):
        m = match(d, treatment="t", covariates=["x"], distance="score", discard="both", replace=True)
    assert m.sample_sizes().loc["Discarded"].sum() > 0
    m2 = match(d, treatment="t", covariates=["x"], distance="score", replace=True)
    assert any("limited overlap" in n for n in m2.notes)


def test_too_few_controls_for_ratio(df):
    n_t, n_c = int(df.t.sum()), int((1 - df.t).sum())
    assert n_c < 3 * n_t
    with pytest.raises(DataError, match=rf"Too few controls.*{n_c} controls for {n_t} treated.*replace=True"):
        match(df, treatment="t", covariates=["x"], ratio=3)


def test_bad_options(df):
    with pytest.raises(SpecificationError, match="'method' parameter of match must be one of"):
        match(df, treatment="t", covariates=["x"], method="full")
    with pytest.raises(SpecificationError, match="'ratio' parameter must be in the range"):
        match(df, treatment="t", covariates=["x"], ratio=0)
    with pytest.raises(SpecificationError, match="estimand='ATE' is not available"):
        match(df, treatment="t", covariates=["x"], estimand="ATE")
    with pytest.raises(SpecificationError, match="supports estimand"):
        weight(df, treatment="t", covariates=["x"], method="overlap", estimand="ATT")


def test_outcome_errors(df):
    m = match(df, treatment="t", covariates=["x"])
    with pytest.raises(SpecificationError, match="needs an outcome"):
        estimate_effect(m)
    d = df.copy()
    d.loc[d.index[m.weights > 0][:3], "y"] = np.nan
    m = match(d, treatment="t", covariates=["x"])
    with pytest.raises(DataError, match=r"Column 'y' \(outcome=\): 3 missing values"):
        estimate_effect(m, "y")


def test_entropy_infeasible(df):
    d = df.assign(w=np.where(df.t == 1, 5.0, 0.0) + df.z * 1e-3)
    with pytest.raises((EstimationError, DataError)):
        weight(d, treatment="t", covariates=["x", "w"], method="entropy")


def test_errors_are_value_errors():
    assert issubclass(DataError, ValueError) and issubclass(ek.SpecificationError, ValueError)


def test_ignored_arguments_warn(df):
    with pytest.warns(UserWarning, match="ratio, caliper ignored for method='exact'"):
        match(df.assign(xb=(df.x > 0).astype(int)), treatment="t", covariates=["xb"], method="exact", ratio=2, caliper=0.1)
