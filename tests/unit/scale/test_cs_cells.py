"""Callaway-Sant'Anna ATT(g,t) from sufficient statistics equals the row-level ek.staggered.att_gt (1e-9)."""
from __future__ import annotations

import logging
import subprocess
import sys
import warnings

import numpy as np
import pandas as pd
import pytest

from tests.conftest import require

require("duckdb", "the out-of-core path")
require("pyarrow", "Parquet files")

import evalkit as ek  # noqa: E402
from evalkit.errors import DataError, SpecificationError  # noqa: E402
from evalkit.staggered.results import ATTgtResult  # noqa: E402

RTOL = 1e-9
pytestmark = pytest.mark.filterwarnings("ignore::evalkit.errors.SingletonWarning")
KINDS = ("simple", "group", "dynamic", "calendar")
MPDTA = dict(outcome="lemp", unit="countyreal", time="year", cohort="first.treat")


def _assert_same(ref, res, kinds=KINDS, agg_kw=None):
    """Cells and every aggregation: estimates and standard errors (NaN where the row path has NaN)."""
    pairs = [("cells", ref.table, res.table)]
    for k in kinds:
        pairs.append((k, ref.aggregate(k, **(agg_kw or {})).table, res.aggregate(k, **(agg_kw or {})).table))
    for what, a, b in pairs:
        assert list(a["term"]) == list(b["term"]), what
        for col in ("estimate", "std_error", "conf_low", "conf_high"):
            x, y = a[col].to_numpy(float), b[col].to_numpy(float)
            np.testing.assert_array_equal(np.isnan(x), np.isnan(y), err_msg=f"{what} {col}")
            np.testing.assert_allclose(y[~np.isnan(y)], x[~np.isnan(x)], rtol=RTOL, atol=1e-14, err_msg=f"{what} {col}")
    for col in ("n_treated", "n_control", "event_time", "post"):
        np.testing.assert_array_equal(ref.table[col].to_numpy(), res.table[col].to_numpy(), err_msg=col)


def _rows(df, **kw):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return ek.staggered.att_gt(df, **{"n_boot": 0, **kw})


def _cells(df, **kw):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return ek.scale.att_gt(df, **{"n_boot": 0, **kw})


@pytest.fixture(scope="module")
def mpdta():
    df = ek.datasets.load_mpdta()
    rng = np.random.default_rng(7)
    county_cl = rng.integers(0, 40, size=int(df["countyreal"].max()) + 1)  # a synthetic coarser cluster (state)
    df["state"] = county_cl[df["countyreal"].to_numpy()].astype(np.int64)
    return df


@pytest.mark.parametrize("cluster", [None, "state"])
@pytest.mark.parametrize("base_period", ["varying", "universal"])
@pytest.mark.parametrize("control", ["never", "notyet"])
def test_mpdta_equals_row_path(mpdta, control, base_period, cluster):
    kw = dict(MPDTA, control=control, base_period=base_period, cluster=cluster)
    ref, res = _rows(mpdta, **kw), _cells(mpdta, **kw)
    assert isinstance(res, ek.scale.CellATTgtResult) and isinstance(res, ATTgtResult)
    _assert_same(ref, res)
    np.testing.assert_allclose(np.asarray(res.vcov), np.asarray(ref.vcov), rtol=RTOL, atol=1e-16)
    assert res.conventions.vcov_type == ref.conventions.vcov_type
    assert res.conventions.vcov_description == ref.conventions.vcov_description
    assert res.conventions.n_clusters == ref.conventions.n_clusters
    assert res.sample.n_units == ref.sample.n_units and res.nobs == ref.nobs
    np.testing.assert_allclose(np.asarray(res.aggregate("dynamic").vcov), np.asarray(ref.aggregate("dynamic").vcov),
                               rtol=1e-8, atol=1e-16)  # what honest_sensitivity reads
    t_ref, t_res = ref.pretrend_test(), res.pretrend_test()
    assert t_res.df == t_ref.df
    np.testing.assert_allclose(t_res.statistic, t_ref.statistic, rtol=1e-8)


def test_mpdta_reproduces_r_did(mpdta):
    """R did 2.x: att_gt(lemp ~ 1, never-treated, dr) + aggte('simple'): -0.0399513 (SE 0.0120340, 500 counties)."""
    agg = _cells(mpdta, **MPDTA).aggregate("simple")
    assert abs(agg.estimate - (-0.0399513)) < 2e-7
    np.testing.assert_allclose(agg.std_error, 0.0120340, rtol=1e-4)


@pytest.mark.parametrize("cluster", [None, "state"])
def test_anticipation_and_aggregation_options(mpdta, cluster):
    kw = dict(MPDTA, control="notyet", anticipation=1, cluster=cluster)
    ref, res = _rows(mpdta, **kw), _cells(mpdta, **kw)
    _assert_same(ref, res)
    _assert_same(ref, res, kinds=("dynamic",), agg_kw=dict(min_e=-2, max_e=1))
    _assert_same(_rows(mpdta, **MPDTA), _cells(mpdta, **MPDTA), kinds=("dynamic",), agg_kw=dict(balance_e=1))
    _assert_same(ref, res, kinds=("simple", "group"), agg_kw=dict(max_e=1))


def test_clustered_bootstrap_band_is_the_row_paths(mpdta):
    """Clustered: the cluster sums are the row path's, in its cluster order, so the same seed gives the same band."""
    kw = dict(MPDTA, cluster="state", n_boot=199, seed=11)
    ref, res = _rows(mpdta, **kw), _cells(mpdta, **kw)
    for a, b in [(ref.table, res.table), (ref.aggregate("dynamic").table, res.aggregate("dynamic").table)]:
        np.testing.assert_allclose(b["conf_low_simul"].to_numpy(float), a["conf_low_simul"].to_numpy(float), rtol=1e-9)
    # unit level: Gaussian draws with the exact covariance; the band agrees up to Monte Carlo error
    ref, res = _rows(mpdta, **{**kw, "cluster": None, "n_boot": 999}), _cells(mpdta, **{**kw, "cluster": None, "n_boot": 999})
    assert abs(res.extra["crit_value"] - ref.extra["crit_value"]) < 0.15 * ref.extra["crit_value"]


def test_tiny_panel_by_hand():
    # cohort 2 (units 1, 2) and never treated (3, 4); periods 1..3
    df = pd.DataFrame({"id": np.repeat([1, 2, 3, 4], 3), "t": np.tile([1, 2, 3], 4),
                       "g": np.repeat([2, 2, 0, 0], 3), "cl": np.repeat([0, 1, 0, 1], 3),
                       "y": [1, 3, 4, 2, 2, 6, 0, 1, 1, 1, 1, 3]}).astype(float)
    kw = dict(outcome="y", unit="id", time="t", cohort="g")
    res = ek.scale.att_gt_from_cells(ek.scale.att_gt_cells(df, **kw), n_boot=0)  # (the dispatcher would use rows:
    assert isinstance(res, ek.scale.CellATTgtResult)  # 12 rows are smaller than their statistics)
    # ATT(2,2) = mean(2, 0) - mean(1, 0) = 0.5; ATT(2,3) = mean(3, 4) - mean(1, 2) = 2
    np.testing.assert_allclose(res.table["estimate"], [0.5, 2.0], rtol=1e-12)
    # psi(2,2) = (2, -2, -1, 1): se = sqrt(10)/4;  psi(2,3) = (-1, 1, 1, -1): se = 2/4
    np.testing.assert_allclose(res.table["std_error"], [np.sqrt(10) / 4, 0.5], rtol=1e-12)
    simple = res.aggregate("simple")  # one cohort: the weight IF is 0; psi = (0.5, -0.5, 0, 0)
    np.testing.assert_allclose([simple.estimate, simple.std_error], [1.25, np.sqrt(0.5) / 4], rtol=1e-12)
    cl = ek.scale.att_gt_from_cells(ek.scale.att_gt_cells(df, cluster="cl", **kw), n_boot=0)  # clusters {1, 3}, {2, 4}: sums (1, -1) and (0, 0)
    np.testing.assert_allclose(cl.table["std_error"], [np.sqrt(2) / 4, 0.0], rtol=1e-12, atol=1e-15)
    np.testing.assert_allclose(cl.aggregate("simple").std_error, np.sqrt(0.5) / 4, rtol=1e-12)
    _assert_same(_rows(df, **kw), res)


@pytest.fixture(scope="module", params=[False, True], ids=["balanced", "churn"])
def aqc(request):
    df = ek.datasets.simulate_aqc(seed=5, churn=request.param, n_members=2500).data
    return df[["member_id", "org_id", "quarter", "t", "cohort_t", "entry_quarter", "spending", "age"]].copy()


AQC = dict(outcome="spending", unit="member_id", time="quarter", cohort="entry_quarter")


@pytest.mark.parametrize("control", ["never", "notyet"])
def test_aqc_clustered_exact(aqc, control):
    kw = dict(AQC, control=control, cluster="org_id")
    ref, res = _rows(aqc, **kw), _cells(aqc, **kw)
    assert isinstance(res, ek.scale.CellATTgtResult)  # churn: strata key on the enrollment pattern
    _assert_same(ref, res)
    if len(aqc) == aqc["member_id"].nunique() * aqc["quarter"].nunique():
        assert res.extra["cells"].n_strata == aqc["entry_quarter"].nunique(dropna=False)


def test_aqc_unit_level(aqc, caplog):
    ref = _rows(aqc, **AQC)
    with caplog.at_level(logging.INFO, logger="evalkit.scale.cs_cells"):
        res = _cells(aqc, **AQC)
    _assert_same(ref, res)
    cells = ek.scale.att_gt_cells(aqc, **AQC)
    if cells.balanced:
        assert isinstance(res, ek.scale.CellATTgtResult)
        assert cells.n_numbers < len(aqc) / 20
    else:
        # churn at this size: ~300 cohort x spell strata with 28 x 28 Gram matrices are not smaller than the rows,
        # so the dispatcher takes the row path and says why; the statistics themselves are still exact
        assert not isinstance(res, ek.scale.CellATTgtResult)
        assert "not smaller than" in res.conventions.notes[-1] and "not smaller than" in caplog.text
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            _assert_same(ref, ek.scale.att_gt_from_cells(cells, n_boot=0))


@pytest.mark.parametrize("kw,why", [(dict(covariates=["age"]), "covariates"), (dict(weights="w"), "weights")])
def test_fallback_to_rows_with_a_note(aqc, kw, why, caplog):
    df = aqc.assign(w=1.0 + (aqc["member_id"].str[-1].astype(int) % 3))
    args = dict(AQC, cluster="org_id", **kw)
    if "covariates" in kw:
        df = df[df["quarter"].dt.year <= 2009]  # keep the DR logits cheap
    with caplog.at_level(logging.INFO, logger="evalkit.scale.cs_cells"):
        res = _cells(df, **args)
    ref = _rows(df, **args)
    assert type(res) is ATTgtResult
    assert why in res.conventions.notes[-1] and "row-level path" in caplog.text
    np.testing.assert_allclose(res.table["estimate"], ref.table["estimate"], rtol=1e-12)
    np.testing.assert_allclose(res.aggregate("simple").std_error, ref.aggregate("simple").std_error, rtol=1e-12)


def test_trimmed_cell_falls_back():
    """dr/ipw trim a cell whose cohort is >= 99.5% of it: not a difference of means, so rows; reg stays on cells."""
    n_t, n_c = 400, 2
    ids = np.arange(n_t + n_c)
    df = pd.DataFrame({"id": np.repeat(ids, 3), "t": np.tile([1, 2, 3], ids.size),
                       "g": np.repeat(np.where(ids < n_t, 3, 0), 3)})
    df["y"] = np.random.default_rng(0).normal(size=len(df)) + df["t"]
    kw = dict(outcome="y", unit="id", time="t", cohort="g")
    res = _cells(df, method="dr", **kw)
    assert type(res) is ATTgtResult and "trims" in res.conventions.notes[-1]
    res_reg = _cells(df, method="reg", **kw)
    assert isinstance(res_reg, ek.scale.CellATTgtResult)
    _assert_same(_rows(df, method="reg", **kw), res_reg)


@pytest.mark.parametrize("cluster", [None, "org_id"])
def test_duckdb_from_parquet(aqc, tmp_path, cluster):
    """Parquet -> DuckDB (ids, periods and cohorts encoded in the engine) -> strata -> the row result."""
    df = aqc.assign(org_id=aqc["org_id"], cohort_t=aqc["cohort_t"])  # integer time; NaN cohort = never
    path = tmp_path / "panel.parquet"
    df.drop(columns=["quarter", "entry_quarter"]).to_parquet(path)
    kw = dict(outcome="spending", unit="member_id", time="t", cohort="cohort_t", cluster=cluster)
    ref = _rows(df, **kw)
    cells_db = ek.scale.att_gt_cells(str(path), **kw)
    cells_np = ek.scale.att_gt_cells(df, **kw)
    assert cells_db.engine == "duckdb" and cells_db.n_strata == cells_np.n_strata
    assert (cells_db.n_units, cells_db.n_obs, cells_db.balanced) == (cells_np.n_units, cells_np.n_obs, cells_np.balanced)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        res = ek.scale.att_gt_from_cells(cells_db, n_boot=0)
    _assert_same(ref, res)
    via = _cells(str(path), **kw)  # the dispatcher: cells, or rows read back from the file with a note
    np.testing.assert_allclose(via.aggregate("simple").std_error, ref.aggregate("simple").std_error, rtol=RTOL)


def test_duckdb_mpdta_and_dropped_units(mpdta, tmp_path):
    df = mpdta.copy()
    ids = np.sort(df["countyreal"].unique())
    df.loc[df["countyreal"].isin(ids[:20]), "first.treat"] = 2003  # treated from the first period: dropped by both
    df.loc[df["countyreal"].isin(ids[20:30]), "first.treat"] = 2001  # before the first period: dropped too
    path = tmp_path / "mpdta.parquet"
    df.to_parquet(path)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        cells = ek.scale.att_gt_cells(str(path), cluster="state", **MPDTA)
        res = ek.scale.att_gt_from_cells(cells, n_boot=0)
    ref = _rows(df, cluster="state", **MPDTA)
    _assert_same(ref, res)
    assert [r.n_rows for r in res.sample.dropped] == [r.n_rows for r in ref.sample.dropped] == [150]
    assert res.sample.n_units == ref.sample.n_units == 470


def test_data_errors(mpdta, tmp_path):
    bad = mpdta.copy()
    bad.loc[bad.index[0], "state"] = 999  # the cluster changes within a county
    with pytest.raises(DataError, match="varies within unit"):
        ek.scale.att_gt_cells(bad, cluster="state", **MPDTA)
    path = tmp_path / "bad.parquet"
    bad.to_parquet(path)
    with pytest.raises(DataError, match="varies within unit"):
        ek.scale.att_gt_cells(str(path), cluster="state", **MPDTA)
    dup = tmp_path / "dup.parquet"
    pd.concat([mpdta, mpdta.head(2)]).to_parquet(dup)  # duplicate (unit, time) rows: found in the per-unit pass
    with pytest.raises(DataError, match="share a"):
        ek.scale.att_gt_cells(str(dup), **MPDTA)
    res = _cells(mpdta, **MPDTA)
    with pytest.raises(SpecificationError, match="influence functions"):
        res.influence_function


def test_import_is_lazy():
    code = ("import sys, evalkit.scale; assert 'duckdb' not in sys.modules; "
            "assert 'evalkit.scale.cs_cells' not in sys.modules; evalkit.scale.att_gt; "
            "assert 'evalkit.scale.cs_cells' in sys.modules and 'duckdb' not in sys.modules")
    subprocess.run([sys.executable, "-c", code], check=True)


def test_duckdb_dates_and_in_memory_frame(tmp_path):
    """Dated periods (quarter start dates; NaT = never) through DuckDB, from Parquet and from a registered frame."""
    df = ek.datasets.simulate_aqc(seed=2, churn=False, n_members=800).data
    df = pd.DataFrame({"member_id": df["member_id"], "org_id": df["org_id"], "spending": df["spending"],
                       "qdate": df["quarter"].dt.start_time, "edate": df["entry_quarter"].dt.start_time})
    path = tmp_path / "dates.parquet"
    df.to_parquet(path)
    kw = dict(outcome="spending", unit="member_id", time="qdate", cohort="edate", cluster="org_id")
    ref = _rows(df, **kw)
    for source, engine in [(str(path), "auto"), (df, "duckdb")]:
        res = ek.scale.att_gt_from_cells(ek.scale.att_gt_cells(source, engine=engine, **kw), n_boot=0)
        assert res.extra["cells"].engine == "duckdb"
        _assert_same(ref, res, kinds=("simple", "dynamic"))


# ---- review fixes: non-finite values, precision, DataFrame columns, time zones ----------------------------------


def _nonfinite_files(mpdta, tmp_path):
    """mpdta with one bad outcome: +inf written by pandas, NaN (not NULL) written by DuckDB; a -inf cluster."""
    import duckdb

    row = mpdta.index[(mpdta["first.treat"] == 2004) & (mpdta["year"] == 2004)][0]
    inf = tmp_path / "inf.parquet"
    mpdta.assign(lemp=mpdta["lemp"].where(mpdta.index != row, np.inf)).to_parquet(inf)
    nan = tmp_path / "nan.parquet"
    con = duckdb.connect()
    con.register("m", mpdta.assign(bad=mpdta.index == row))
    con.execute(f"""COPY (SELECT * EXCLUDE (bad) REPLACE (CASE WHEN bad THEN 'NaN'::DOUBLE ELSE lemp END AS lemp) FROM m)
                    TO '{nan}' (FORMAT parquet)""")
    infcl = tmp_path / "infcl.parquet"
    mpdta.assign(state=mpdta["state"].astype(float).where(mpdta["countyreal"] != mpdta["countyreal"].iloc[0], -np.inf)
                 ).to_parquet(infcl)
    return {"inf outcome": (inf, None), "NaN outcome": (nan, None), "NaN outcome, clustered": (nan, "state"),
            "-inf cluster": (infcl, "state")}


@pytest.mark.parametrize("case", ["inf outcome", "NaN outcome", "NaN outcome, clustered", "-inf cluster"])
def test_duckdb_refuses_nan_and_inf_like_the_row_path(mpdta, tmp_path, case):
    """Were accepted: ATT(g,t) inf/NaN silently (clustered) or LinAlgError in the band (unit level, even n_boot=0)."""
    path, cluster = _nonfinite_files(mpdta, tmp_path)[case]
    frame = pd.read_parquet(path)
    with pytest.raises(DataError) as ref:
        ek.staggered.att_gt(frame, cluster=cluster, n_boot=0, **MPDTA)
    assert str(ref.value).startswith("Missing (or infinite) values in ")
    for source in (str(path), frame):  # Parquet, and the frame registered with DuckDB
        with pytest.raises(DataError) as got:
            ek.scale.att_gt_cells(source, cluster=cluster, engine="duckdb", **MPDTA)
        assert str(got.value) == str(ref.value)
        with pytest.raises(DataError) as got:  # the dispatcher does not fall back on a data error
            ek.scale.att_gt(source, cluster=cluster, engine="duckdb", n_boot=0, **MPDTA)
        assert str(got.value) == str(ref.value)


def test_no_bootstrap_needs_no_factorisation(mpdta, monkeypatch):
    """n_boot=0: no band, so the eigendecomposition of the IF second moments is never computed."""
    from evalkit.scale.cs_cells import _IFStats

    cells = ek.scale.att_gt_cells(mpdta, **MPDTA)

    def boom(self):
        raise AssertionError("factor() called with n_boot=0")

    monkeypatch.setattr(_IFStats, "factor", boom)
    res = ek.scale.att_gt_from_cells(cells, n_boot=0)
    for kind in KINDS:
        assert np.isnan(res.aggregate(kind).table["conf_low_simul"]).all()
    assert np.isnan(res.extra["crit_value"]) and np.isnan(res.table["conf_low_simul"]).all()


@pytest.mark.parametrize("engine", ["numpy", "duckdb"])
@pytest.mark.parametrize("cluster", [None, "state"])
def test_large_per_unit_level_shifts_keep_full_precision(mpdta, engine, cluster, tmp_path):
    """Outcome levels that differ by ~1e7 between units, changes of ~0.1 within: the statistics are built from
    each unit's outcomes net of its own mean, so differences of sums do not cancel (were 1e-2 off at unit level)."""
    rng = np.random.default_rng(3)
    shift = rng.normal(0.0, 1e7, size=int(mpdta["countyreal"].max()) + 1)
    df = mpdta.assign(y=mpdta["lemp"] + shift[mpdta["countyreal"].to_numpy()])
    kw = dict(MPDTA, outcome="y", cluster=cluster)
    if engine == "duckdb":
        df.to_parquet(tmp_path / "shift.parquet")
        source = str(tmp_path / "shift.parquet")
    else:
        source = df
    for control, base_period in [("never", "varying"), ("notyet", "universal")]:
        ref = _rows(df, control=control, base_period=base_period, **kw)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            res = ek.scale.att_gt_from_cells(ek.scale.att_gt_cells(source, engine=engine, **kw), control=control,
                                             base_period=base_period, n_boot=0)
        _assert_same(ref, res)
        # the shift itself does not change the result (up to the rounding of lemp + 1e7-sized shifts, ~2e-9)
        plain = _rows(mpdta, control=control, base_period=base_period, cluster=cluster, **MPDTA)
        np.testing.assert_allclose(res.table["estimate"], plain.table["estimate"], rtol=0, atol=1e-8)


def test_duckdb_engine_on_a_frame_reads_only_the_role_columns():
    """simulate_aqc has pandas Period columns: DuckDB cannot read them, so they must not be registered unless used;
    a Period role column goes in as ordinals and comes back as Periods (same time axis as the row path)."""
    df = ek.datasets.simulate_aqc(seed=3, churn=False, n_members=1500).data
    assert isinstance(df["quarter"].dtype, pd.PeriodDtype)
    for time, cohort in [("t", "cohort_t"), ("quarter", "entry_quarter")]:
        kw = dict(outcome="spending", unit="member_id", time=time, cohort=cohort, cluster="org_id")
        ref = _rows(df, **kw)
        cells = ek.scale.att_gt_cells(df, engine="duckdb", **kw)
        assert cells.engine == "duckdb"
        assert list(cells.time_axis.levels) == list(ref.extra["time_axis"].levels)
        res = ek.scale.att_gt_from_cells(cells, n_boot=0)
        _assert_same(ref, res, kinds=("simple", "dynamic"))
        assert isinstance(_cells(df, engine="duckdb", **kw), ek.scale.CellATTgtResult)
    with pytest.raises(DataError, match=r"Column 'spend' \(the outcome\) not found in data\. .*'quarter'"):
        ek.scale.att_gt_cells(df, outcome="spend", unit="member_id", time="t", cohort="cohort_t", engine="duckdb")


_TZ_SCRIPT = r"""
import json, sys, warnings
import evalkit as ek
warnings.simplefilter("ignore")
path, kind = sys.argv[1], sys.argv[2]
if kind == "cs":
    res = ek.scale.att_gt_from_cells(ek.scale.att_gt_cells(path, outcome="lemp", unit="countyreal", time="date",
                                                           cohort="gdate"), n_boot=0)
    out = {"terms": list(res.table["term"]), "estimate": res.table["estimate"].tolist()}
else:
    c = ek.scale.twfe_cells(path, outcome="spending", unit="member_id", time="qdate", treatment="aqc", cluster="org_id")
    r = ek.scale.twfe_from_cells(c)
    out = {"n_periods": c.n_periods, "estimate": r.estimate}
print(json.dumps(out))
"""


@pytest.mark.parametrize("tz", ["America/New_York", "Asia/Tokyo"])
def test_zoned_timestamps_do_not_depend_on_the_machine_time_zone(mpdta, tmp_path, tz):
    """TIMESTAMPTZ periods through DuckDB: were decoded in the session (= machine) zone — one year early under
    America/New_York, a spurious DataError under Asia/Tokyo. Run in a subprocess with TZ set."""
    import os

    d = mpdta.assign(date=pd.to_datetime(mpdta["year"].astype(str) + "-01-01").dt.tz_localize("UTC"),
                     gdate=pd.to_datetime(mpdta["first.treat"].replace(0, np.nan).astype("Int64").astype(str),
                                          errors="coerce").dt.tz_localize("UTC"))
    cs_path = tmp_path / "mpdta_tz.parquet"
    d.to_parquet(cs_path)
    aqc = ek.datasets.simulate_aqc(seed=4, churn=False, n_members=600).data
    aqc = aqc.assign(qdate=aqc["quarter"].dt.start_time.dt.tz_localize("UTC"))
    tw_path = tmp_path / "aqc_tz.parquet"
    aqc[["member_id", "org_id", "qdate", "aqc", "spending"]].to_parquet(tw_path)
    ref_cs = _rows(pd.read_parquet(cs_path), outcome="lemp", unit="countyreal", time="date", cohort="gdate")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        ref_tw = ek.did.twfe(pd.read_parquet(tw_path), outcome="spending", unit="member_id", time="qdate", treatment="aqc",
                             cluster="org_id")
    env = {**os.environ, "TZ": tz}
    import json

    outs = {}
    for kind, path in [("cs", cs_path), ("twfe", tw_path)]:
        run = subprocess.run([sys.executable, "-c", _TZ_SCRIPT, str(path), kind], capture_output=True, text=True,
                             env=env, timeout=300, check=False)
        assert run.returncode == 0, run.stderr[-2000:]
        outs[kind] = json.loads(run.stdout.strip().splitlines()[-1])
    assert outs["cs"]["terms"] == list(ref_cs.table["term"])
    np.testing.assert_allclose(outs["cs"]["estimate"], ref_cs.table["estimate"].to_numpy(), rtol=RTOL)
    assert outs["twfe"]["n_periods"] == 28
    np.testing.assert_allclose(outs["twfe"]["estimate"], ref_tw.estimate, rtol=RTOL)


def test_zoned_timestamps_in_their_own_zone_and_on_a_user_connection(mpdta, tmp_path):
    """A column written in a local zone is read in that zone (as pandas reads it), on a connection whose TimeZone
    is something else; a tz-aware DataFrame column on the DuckDB engine is read as its wall-clock time."""
    import duckdb

    zone = "America/Chicago"
    d = mpdta.assign(date=pd.to_datetime(mpdta["year"].astype(str) + "-01-01").dt.tz_localize(zone),
                     gdate=pd.to_datetime(mpdta["first.treat"].replace(0, np.nan).astype("Int64").astype(str),
                                          errors="coerce").dt.tz_localize(zone))
    path = tmp_path / "chicago.parquet"
    d.to_parquet(path)
    kw = dict(outcome="lemp", unit="countyreal", time="date", cohort="gdate", cluster="state")
    ref = _rows(pd.read_parquet(path), **kw)
    con = duckdb.connect()
    con.execute("SET TimeZone = 'Asia/Tokyo'")
    for source in (str(path), d):
        res = ek.scale.att_gt_from_cells(ek.scale.att_gt_cells(source, engine="duckdb", connection=con, **kw), n_boot=0)
        _assert_same(ref, res, kinds=("simple", "dynamic"))
    assert con.execute("SELECT current_setting('TimeZone')").fetchone()[0] == "Asia/Tokyo"


@pytest.mark.parametrize("path", ["rows", "cells"])
def test_only_reference_cells_left_is_the_same_clear_error(path):
    """No never-treated units, control='never', universal base: only reference cells remain; both
    paths raise the row path's DataError (it was an IndexError later, in aggregate)."""
    rng = np.random.default_rng(4)
    n, T = 40, 6
    df = pd.DataFrame({"id": np.repeat(np.arange(n), T), "t": np.tile(np.arange(1, T + 1), n)})
    df["g"] = np.where(df["id"] < n // 2, 3, 5)
    df["y"] = rng.normal(size=len(df))
    fit = ek.staggered.att_gt if path == "rows" else ek.scale.att_gt
    with pytest.raises(DataError, match="no ATT\\(g,t\\) cell could be estimated"):
        fit(df, outcome="y", unit="id", time="t", cohort="g", control="never", base_period="universal", n_boot=0)
