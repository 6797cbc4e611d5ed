"""Spark (local mode) cell builder: same cells as DuckDB, same TWFE as ek.did.twfe on the rows (1e-10).

One local SparkSession (``local[2]``) serves the module. Without pyspark or a Java runtime the
tests skip locally and fail under CI=true (a skipped check cannot fail).
"""
from __future__ import annotations

import os
import shutil
import subprocess
import sys
import warnings

import numpy as np
import pandas as pd
import pytest

from tests.conftest import in_ci, require

require("pyspark", "the Spark cell builder (pip install 'evalkit[spark]')")
require("duckdb", "the DuckDB cells the Spark cells are compared with")
require("pyarrow", "Parquet files")

import evalkit as ek  # noqa: E402
from evalkit.errors import DataError, SpecificationError  # noqa: E402
from evalkit.inference.vcov import ssc  # noqa: E402

RTOL = 1e-10
ROLES = dict(outcome="spending", unit="member_id", time="t", treatment="aqc", cluster="org_id")
COLS = ["member_id", "org_id", "t", "aqc", "spending"]


def _java_or_skip() -> None:
    if shutil.which("java") or os.environ.get("JAVA_HOME"):
        return
    msg = "no Java runtime found (no `java` on PATH, JAVA_HOME unset): PySpark needs a JRE (17+ for pyspark 4)"
    if in_ci():
        pytest.fail(f"CI=true: {msg}. Install a JRE on the CI machine (e.g. apt-get install -y "
                    f"openjdk-17-jre-headless) instead of skipping the Spark tests.", pytrace=False)
    pytest.skip(msg)


@pytest.fixture(scope="session")
def spark():
    _java_or_skip()
    from pyspark.sql import SparkSession

    session = (
        SparkSession.builder.master("local[2]").appName("evalkit-tests")
        .config("spark.ui.enabled", "false").config("spark.ui.showConsoleProgress", "false")
        .config("spark.sql.session.timeZone", "UTC")
        .config("spark.sql.shuffle.partitions", "2").config("spark.default.parallelism", "2")
        .config("spark.driver.host", "127.0.0.1").config("spark.driver.bindAddress", "127.0.0.1")
        # test-speed settings: tiny data, so skip the JIT's optimising tier, whole-stage codegen and AQE
        # (test_cells_do_not_depend_on_partitioning turns AQE back on)
        .config("spark.driver.extraJavaOptions", "-XX:TieredStopAtLevel=1 -XX:+UseSerialGC")
        .config("spark.sql.codegen.wholeStage", "false").config("spark.sql.adaptive.enabled", "false")
        .getOrCreate()
    )
    session.sparkContext.setLogLevel("ERROR")
    yield session
    session.stop()


def _rows(df, **kw):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return ek.did.twfe(df, **{**ROLES, **kw})


def _from_cells(cells, **kw):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # few clusters / singletons: the same warnings as the row path
        return ek.scale.twfe_from_cells(cells, **kw)


@pytest.fixture(scope="module", params=[False, True], ids=["balanced", "churn"])
def panel(request, tmp_path_factory):
    df = ek.datasets.simulate_aqc(seed=42, churn=request.param, n_members=2000).data[COLS].copy()
    path = tmp_path_factory.mktemp("spark") / f"panel_{request.param}.parquet"
    df.to_parquet(path, index=False)
    return df, str(path)


def _rel(a, b) -> float:
    a, b = np.asarray(a, dtype=float), np.asarray(b, dtype=float)
    return float(np.max(np.abs(a - b) / np.maximum(np.abs(b), 1e-300)))


def _same_cells(a, b, rtol=1e-12):
    assert (a.n_obs, a.n_units, a.n_periods, a.n_strata, a.n_clusters, a.balanced) == (
        b.n_obs, b.n_units, b.n_periods, b.n_strata, b.n_clusters, b.balanced)
    ca, cb = a.cells, b.cells
    assert list(ca.columns) == list(cb.columns)
    for col in ("cluster", "stratum", "period", "n", "d"):
        np.testing.assert_array_equal(ca[col].to_numpy(), cb[col].to_numpy(), err_msg=col)
    for col in ("sum_y", "sum_y2"):
        np.testing.assert_allclose(ca[col].to_numpy(), cb[col].to_numpy(), rtol=rtol, err_msg=col)


def test_spark_equals_rows_and_duckdb(spark, panel):
    df, path = panel
    cs = ek.scale.twfe_cells_spark(spark.read.parquet(path), **ROLES)
    cd = ek.scale.twfe_cells(path, **ROLES)  # DuckDB from the same file
    assert cs.engine == "spark" and cs.cells["cluster"].dtype == np.int64
    _same_cells(cs, cd)  # same strata definition and codes, not just the same estimate
    assert cs.balanced == (len(df) == df["member_id"].nunique() * df["t"].nunique())
    worst = 0.0
    for vcov, small in [("CR1", None), ("CR0", None), ("CR1", ssc(k_fixef="full")), ("CR1", ssc(k_adj=False))]:
        ref = _rows(df, vcov=vcov, ssc=small)
        res = _from_cells(cs, vcov=vcov, ssc=small)
        duck = _from_cells(cd, vcov=vcov, ssc=small)
        for other in (ref, duck):
            np.testing.assert_allclose(res.estimate, other.estimate, rtol=RTOL)
            np.testing.assert_allclose(res.std_error, other.std_error, rtol=RTOL)
            np.testing.assert_allclose(res.table["df"].to_numpy(), other.table["df"].to_numpy(), rtol=RTOL)
            assert res.nobs == other.nobs and res.conventions.n_clusters == other.conventions.n_clusters
        assert res.conventions.vcov_description == ref.conventions.vcov_description  # same N, K, G
        worst = max(worst, _rel(res.estimate, ref.estimate), _rel(res.std_error, ref.std_error))
    print(f"max relative difference Spark cells vs rows: {worst:.1e}")


def test_twfe_spark_from_parquet_path(spark, panel):
    df, path = panel
    ref = _rows(df)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        res = ek.scale.twfe_spark([path], **ROLES, spark=spark)  # read with spark.read.parquet
    np.testing.assert_allclose([res.estimate, res.std_error], [ref.estimate, ref.std_error], rtol=RTOL)
    np.testing.assert_allclose(res.table["df"].to_numpy(), ref.table["df"].to_numpy(), rtol=RTOL)
    assert res.nobs == ref.nobs and res.conventions.n_clusters == ref.conventions.n_clusters
    assert "spark" in res.conventions.notes[0] and res.sample.n_units == df["member_id"].nunique()


def test_cells_do_not_depend_on_partitioning(spark, tmp_path):
    df = ek.datasets.simulate_aqc(seed=7, churn=True, n_members=600).data[COLS]
    src = str(tmp_path / "one.parquet")
    df.to_parquet(src, index=False)
    base = ek.scale.twfe_cells_spark(spark.read.parquet(src), **ROLES)
    # a multi-file directory written by Spark, rows shuffled across 5 partitions, AQE on (Spark's default)
    spark.read.parquet(src).repartition(5, "org_id").write.parquet(str(tmp_path / "parts"))
    spark.conf.set("spark.sql.adaptive.enabled", "true")
    spark.conf.set("spark.sql.shuffle.partitions", "3")
    try:
        other = ek.scale.twfe_cells_spark(str(tmp_path / "parts"), **ROLES, spark=spark)
    finally:
        spark.conf.set("spark.sql.adaptive.enabled", "false")
        spark.conf.set("spark.sql.shuffle.partitions", "2")
    assert len([f for f in os.listdir(tmp_path / "parts") if f.endswith(".parquet")]) > 1
    _same_cells(base, other, rtol=1e-13)


def test_contract_errors_match_duckdb(spark, tmp_path):
    df = ek.datasets.simulate_aqc(seed=2, churn=False, n_members=300).data[COLS]

    def both(frame, name, **kw):
        path = str(tmp_path / f"{name}.parquet")
        frame.to_parquet(path, index=False)
        with pytest.raises(DataError) as es:
            ek.scale.twfe_cells_spark(spark.read.parquet(path), **{**ROLES, **kw})
        with pytest.raises(DataError) as ed:
            ek.scale.twfe_cells(path, **{**ROLES, **kw})
        assert str(es.value) == str(ed.value)
        return str(es.value)

    msg = both(pd.concat([df, df.iloc[:2]]), "dup")
    assert msg.startswith("4 rows share a ('member_id', 't') pair with another row, e.g. member_id='M000001', t=0")
    assert "must be 0/1" in both(df.assign(aqc=df["aqc"] * 2), "bad")
    assert "Column 'cost' (the outcome) not found" in both(df, "nocol", outcome="cost")
    na = df.copy()
    na.iloc[[5, 17, 40], na.columns.get_loc("spending")] = np.nan  # null in Parquet
    assert both(na, "na").startswith(
        f"Missing (or infinite) values in 3 of {len(df)} rows ('spending': 3)")
    # Spark also counts NaN/inf in floating columns as missing (as validate_panel does)
    nan = spark.read.parquet(str(tmp_path / "bad.parquet")).selectExpr(
        "member_id", "org_id", "t", "aqc", "IF(t = 3, double('NaN'), spending) AS spending")
    with pytest.raises(DataError, match=r"Missing \(or infinite\) values in 300 of \d+ rows \('spending': 300\)"):
        ek.scale.twfe_cells_spark(nan, **ROLES)
    txt = spark.read.parquet(str(tmp_path / "bad.parquet")).selectExpr("*", "string(aqc) AS aqc_s")
    with pytest.raises(DataError, match=r"Column 'aqc_s' \(the treatment\) must be numeric; it has Spark type string"):
        ek.scale.twfe_cells_spark(txt, **{**ROLES, "treatment": "aqc_s"})
    with pytest.raises(SpecificationError, match="Spark DataFrame or a Parquet path"):
        ek.scale.twfe_cells_spark(df, **ROLES)
    with pytest.raises(DataError, match="Spark could not read Parquet from"):
        ek.scale.twfe_cells_spark(str(tmp_path / "nope.parquet"), **ROLES, spark=spark)


def test_not_compressible(spark, tmp_path):
    df = ek.datasets.simulate_aqc(seed=5, churn=False, n_members=300).data[COLS]
    df = df.assign(grp=df["org_id"].where(df["t"] < 10, df["org_id"].str[:-1]), own=df["member_id"])
    path = str(tmp_path / "nc.parquet")
    df.to_parquet(path, index=False)
    with pytest.raises(ek.scale.NotCompressible, match=r"the cluster varies within unit for \d+ units"):
        ek.scale.twfe_spark(path, **{**ROLES, "cluster": "grp"}, spark=spark)
    with pytest.raises(ek.scale.NotCompressible, match="the cluster is the unit"):
        ek.scale.twfe_cells_spark(path, **{**ROLES, "cluster": "own"}, spark=spark)


def test_import_evalkit_scale_does_not_import_pyspark():
    code = ("import sys, evalkit, evalkit.scale; assert 'pyspark' not in sys.modules; "
            "f = evalkit.scale.twfe_spark; assert 'pyspark' not in sys.modules; print('ok')")
    out = subprocess.run([sys.executable, "-c", code], check=False, capture_output=True, text=True, timeout=120)
    assert out.returncode == 0 and out.stdout.strip() == "ok", out.stderr


def test_spark_refuses_what_the_row_path_refuses(spark, tmp_path):
    """Were accepted by Spark: a treatment switching off, an empty period, non-integer or string periods, a never-
    or always-treated panel... Each message is ek.did.twfe's on the same rows (and the DuckDB builder's)."""
    from tests.unit.scale.test_cells import CONTRACT, contract_cases

    for case, frame in contract_cases().items():
        path = str(tmp_path / f"{case.replace(' ', '_')}.parquet")
        frame.to_parquet(path, index=False)
        with pytest.raises(DataError) as ref, warnings.catch_warnings():
            warnings.simplefilter("ignore")
            ek.did.twfe(pd.read_parquet(path), **CONTRACT)
        with pytest.raises(DataError) as got:
            ek.scale.twfe_cells_spark(spark.read.parquet(path), **CONTRACT)
        assert str(got.value) == str(ref.value), case


def test_spark_timestamps_do_not_depend_on_the_session_time_zone(spark, tmp_path):
    """Timestamp periods are checked as their UTC wall-clock time, whatever spark.sql.session.timeZone says."""
    df = ek.datasets.simulate_aqc(seed=4, churn=True, n_members=500).data
    df = df.assign(qdate=df["quarter"].dt.start_time.dt.tz_localize("UTC"))[["member_id", "org_id", "qdate", "aqc", "spending"]]
    path = str(tmp_path / "tz.parquet")
    df.to_parquet(path, index=False)
    kw = {**ROLES, "time": "qdate"}
    ref = _rows(pd.read_parquet(path), **kw)
    cd = ek.scale.twfe_cells(path, **kw)
    spark.conf.set("spark.sql.session.timeZone", "America/New_York")
    try:
        cs = ek.scale.twfe_cells_spark(spark.read.parquet(path), **kw)
    finally:
        spark.conf.set("spark.sql.session.timeZone", "UTC")
    _same_cells(cs, cd)
    res = _from_cells(cs)
    np.testing.assert_allclose([res.estimate, res.std_error], [ref.estimate, ref.std_error], rtol=RTOL)
