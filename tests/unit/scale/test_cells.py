"""TWFE DiD from cluster x stratum x period cells equals the row-level ek.did.twfe (1e-9)."""
from __future__ import annotations

import logging
import warnings

import numpy as np
import pandas as pd
import pytest

from tests.conftest import require

duckdb = require("duckdb", "the out-of-core path")
require("pyarrow", "Parquet files")

import evalkit as ek  # noqa: E402
from evalkit.errors import DataError  # noqa: E402
from evalkit.inference.vcov import ssc  # noqa: E402

RTOL = 1e-9
ROLES = dict(outcome="spending", unit="member_id", time="quarter", treatment="aqc", cluster="org_id")


@pytest.fixture(scope="module", params=[False, True], ids=["balanced", "churn"])
def panel(request):
    df = ek.datasets.simulate_aqc(seed=42, churn=request.param, n_members=3000).data
    return df[["member_id", "org_id", "quarter", "t", "aqc", "spending", "age", "female"]].copy()


def _rows(df, **kw):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return ek.did.twfe(df, **{**ROLES, **kw})


@pytest.mark.parametrize("vcov,small", [("CR1", None), ("CR0", None), ("CR1", ssc(k_fixef="full")), ("CR1", ssc(k_adj=False))])
def test_cells_equal_row_level_twfe(panel, vcov, small):
    ref = _rows(panel, vcov=vcov, ssc=small)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # singletons under churn: kept by both paths
        cells = ek.scale.twfe_cells(panel, **ROLES)
        res = ek.scale.twfe_from_cells(cells, vcov=vcov, ssc=small)
    # churn: strata key on the enrollment spell too, so compression is weaker at this size
    assert cells.n_cells < len(panel) / (20 if cells.balanced else 2)
    np.testing.assert_allclose(res.estimate, ref.estimate, rtol=RTOL)
    np.testing.assert_allclose(res.std_error, ref.std_error, rtol=RTOL)
    for col in ["statistic", "p_value", "conf_low", "conf_high", "df"]:
        np.testing.assert_allclose(res.table[col].to_numpy(), ref.table[col].to_numpy(), rtol=RTOL, err_msg=col)
    assert res.conventions.vcov_description == ref.conventions.vcov_description  # same N, K, G
    assert res.nobs == ref.nobs and res.sample.n_units == ref.sample.n_units


def test_balanced_strata_are_cohorts():
    df = ek.datasets.simulate_aqc(seed=1, churn=False, n_members=1500).data
    cells = ek.scale.twfe_cells(df, **ROLES)
    assert cells.balanced
    assert cells.n_strata == df.loc[df["aqc"] == 1].groupby("member_id")["t"].min().nunique() + 1  # cohorts + never
    assert cells.n_cells == len(df.groupby(["org_id", "entry_year", "quarter"], dropna=False))


def test_duckdb_cells_from_parquet_equal_rows(panel, tmp_path):
    path = tmp_path / "panel.parquet"
    out = panel.assign(quarter=panel["t"])  # Parquet holds an integer period code
    out.to_parquet(path, index=False)
    ref = _rows(out)
    cd = ek.scale.twfe_cells(str(path), **ROLES)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        cn = ek.scale.twfe_cells(out, **ROLES)
    assert cd.engine == "duckdb" and cd.n_cells == cn.n_cells and cd.n_strata == cn.n_strata
    res = ek.scale.twfe(str(path), **ROLES)
    np.testing.assert_allclose([res.estimate, res.std_error], [ref.estimate, ref.std_error], rtol=RTOL)
    assert "cells" in res.conventions.notes[0]


def test_micro_panel_by_hand():
    # 2 clusters x 2 units each... (4 clusters for G-1 df) balanced 2x2: beta is the DiD of means
    rows = []
    y = {0: [1.0, 2.0], 1: [2.0, 3.5], 2: [0.0, 4.0], 3: [1.0, 6.0], 4: [3.0, 3.0], 5: [2.0, 2.5], 6: [1.0, 5.0], 7: [2.0, 5.0]}
    for i, (y0, y1) in y.items():
        tr = int(i >= 4)
        rows += [dict(m=i, t=0, y=y0, d=0, c=i // 2), dict(m=i, t=1, y=y1, d=tr, c=i // 2)]
    df = pd.DataFrame(rows)
    kw = dict(outcome="y", unit="m", time="t", treatment="d", cluster="c")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        res = ek.scale.twfe(df, **kw)
        ref = ek.did.twfe(df, **kw)
    dy = np.array([v[1] - v[0] for v in y.values()])
    assert res.estimate == pytest.approx(dy[4:].mean() - dy[:4].mean(), abs=1e-12)
    assert res.std_error == pytest.approx(ref.std_error, rel=1e-12)


def test_fallback_is_logged_and_exact(panel, caplog):
    df = panel
    with caplog.at_level(logging.INFO, logger="evalkit.scale.cells"), warnings.catch_warnings():
        warnings.simplefilter("ignore")
        r1 = ek.scale.twfe(df, **ROLES, covariates=["age"])
        r2 = ek.scale.twfe(df, **ROLES, vcov="HC1")
        r3 = ek.scale.twfe(df, **{**ROLES, "cluster": None})
    msgs = [r.getMessage() for r in caplog.records]
    assert any("covariates were given" in m for m in msgs)
    assert any("vcov='HC1'" in m for m in msgs)
    assert any("cluster=None" in m for m in msgs)
    assert "row-level path" in r1.conventions.notes[-1]
    assert r1.estimate == pytest.approx(_rows(df, covariates=["age"]).estimate, rel=1e-12)
    assert r3.std_error == pytest.approx(_rows(df, cluster=None).std_error, rel=1e-12)


def test_cluster_varying_within_unit_falls_back(caplog):
    df = ek.datasets.simulate_aqc(seed=5, churn=False, n_members=800).data
    df["grp"] = df["org_id"].where(df["t"] < 10, df["org_id"].str[:-1])  # members regrouped mid-panel
    kw = {**ROLES, "cluster": "grp"}
    with caplog.at_level(logging.INFO, logger="evalkit.scale.cells"), warnings.catch_warnings():
        warnings.simplefilter("ignore")
        res = ek.scale.twfe(df, **kw)
        ref = ek.did.twfe(df, **kw)
    assert any("cluster varies within unit" in r.getMessage() for r in caplog.records)
    assert res.std_error == pytest.approx(ref.std_error, rel=1e-12)
    with pytest.raises(ek.scale.NotCompressible, match="cluster varies within unit"):
        ek.scale.twfe_cells(df, **kw)


def test_duckdb_cells_contract_errors(tmp_path):
    df = ek.datasets.simulate_aqc(seed=2, churn=False, n_members=300).data[["member_id", "org_id", "t", "aqc", "spending"]]
    kw = dict(outcome="spending", unit="member_id", time="t", treatment="aqc", cluster="org_id")
    pd.concat([df, df.iloc[:2]]).to_parquet(tmp_path / "dup.parquet", index=False)
    with pytest.raises(DataError, match=r"4 rows share a \('member_id', 't'\) pair with another row, e.g. member_id='M000001', t=0"):
        ek.scale.twfe_cells(str(tmp_path / "dup.parquet"), **kw)
    bad = df.assign(aqc=df["aqc"] * 2)
    bad.to_parquet(tmp_path / "bad.parquet", index=False)
    with pytest.raises(DataError, match=r"Column 'aqc' \(the treatment\) must be 0/1"):
        ek.scale.twfe_cells(str(tmp_path / "bad.parquet"), **kw)
    with pytest.raises(DataError, match=r"Column 'cost' \(the outcome\) not found"):
        ek.scale.twfe_cells(str(tmp_path / "bad.parquet"), **{**kw, "outcome": "cost"})


# ---- the DuckDB (and Spark) builders refuse what ek.did.twfe refuses, with its messages ---------------------------

CONTRACT = dict(outcome="spending", unit="member_id", time="t", treatment="aqc", cluster="org_id")


def contract_cases() -> dict:
    """Panels that ek.did.twfe refuses (shared with test_spark.py)."""
    base = ek.datasets.simulate_aqc(seed=7, churn=True, n_members=600).data[["member_id", "org_id", "t", "aqc", "spending"]]
    base = base.assign(aqc=base["aqc"].astype(int)).reset_index(drop=True)
    treated = base.loc[base["aqc"] == 1, "member_id"].unique()[:30]
    last = base["t"].max()
    cases = {
        "switch-off": base.assign(aqc=base["aqc"].where(~(base["member_id"].isin(treated) & (base["t"] == last)), 0)),
        "empty period": base[base["t"] != 15],
        "fractional time": base.assign(t=base["t"] + 0.5 * (base["t"] == 10)),
        "string time": base.assign(t="p" + base["t"].astype(str)),
        "inf outcome": base.assign(spending=base["spending"].where(base.index != 3, np.inf)),
        "never treated": base.assign(aqc=0),
        "no pre-period": base.assign(aqc=base.groupby("member_id")["aqc"].transform("max")),
        "treatment is time": base.assign(aqc=(base["t"] >= 10).astype(int)),
    }
    return cases


def _row_error(frame) -> str:
    with pytest.raises(DataError) as ref, warnings.catch_warnings():
        warnings.simplefilter("ignore")
        ek.did.twfe(frame, **CONTRACT)
    return str(ref.value)


@pytest.mark.parametrize("case", list(contract_cases()))
def test_duckdb_cells_refuse_what_the_row_path_refuses(tmp_path, case):
    frame = contract_cases()[case]
    path = tmp_path / "bad.parquet"
    frame.to_parquet(path, index=False)
    msg = _row_error(pd.read_parquet(path))
    for source in (str(path), frame):
        with pytest.raises(DataError) as got, warnings.catch_warnings():
            warnings.simplefilter("ignore")
            ek.scale.twfe_cells(source, engine="duckdb", **CONTRACT)
        assert str(got.value) == msg, source if isinstance(source, str) else "frame"


def test_duckdb_nan_outcome_written_by_duckdb(tmp_path):
    """NaN (not NULL) outcome: the DuckDB TWFE builder returned a NaN estimate."""
    frame = ek.datasets.simulate_aqc(seed=7, churn=True, n_members=600).data[list(CONTRACT.values())]
    path = tmp_path / "nan.parquet"
    con = duckdb.connect()
    con.register("x", frame)
    con.execute(f"""COPY (SELECT * REPLACE (CASE WHEN row_number() OVER () = 4 THEN 'NaN'::DOUBLE ELSE spending END
                    AS spending) FROM x) TO '{path}' (FORMAT parquet)""")
    msg = _row_error(pd.read_parquet(path))
    assert msg.startswith("Missing (or infinite) values in 1 of ")
    with pytest.raises(DataError) as got:
        ek.scale.twfe(str(path), **CONTRACT)
    assert str(got.value) == msg


def test_duckdb_engine_on_a_frame_with_period_columns():
    """engine='duckdb' on a DataFrame: only the five columns are registered; a Period time column goes in as ordinals."""
    df = ek.datasets.simulate_aqc(seed=3, churn=True, n_members=1200).data  # Period columns 'quarter', 'entry_quarter'
    for time in ("t", "quarter"):
        kw = {**ROLES, "time": time}
        ref = _rows(df, **kw)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            cd = ek.scale.twfe_cells(df, engine="duckdb", **kw)
            cn = ek.scale.twfe_cells(df, engine="numpy", **kw)
            res = ek.scale.twfe_from_cells(cd)
        assert cd.engine == "duckdb" and (cd.n_cells, cd.n_strata, cd.n_periods) == (cn.n_cells, cn.n_strata, cn.n_periods)
        np.testing.assert_allclose([res.estimate, res.std_error], [ref.estimate, ref.std_error], rtol=RTOL)
