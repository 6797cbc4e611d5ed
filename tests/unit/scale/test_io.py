"""read_claims: claim lines -> member-period rows aggregated in DuckDB / pyarrow, vs a pandas groupby."""
from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from tests.conftest import require

duckdb = require("duckdb", "the out-of-core path")
pa = require("pyarrow", "the out-of-core path")

import evalkit as ek  # noqa: E402
from evalkit.errors import DataError, SpecificationError  # noqa: E402

AGG = {
    "spending": "sum:allowed",
    "n_lines": ("count", None),
    "spend_ip": ("sum", "allowed", {"category": "inpatient"}),
    "spend_rx": ("sum", "allowed", {"category": "pharmacy"}),
    "max_line": ("max", "allowed"),
}


def _claims(seed=42, n=6000, n_members=120):
    rng = np.random.default_rng(seed)
    members = np.array([f"M{i:05d}" for i in rng.permutation(n_members)])
    m = rng.integers(0, n_members, n)
    return pd.DataFrame({
        "member_id": members[m],
        "org_id": np.array([f"ORG{j:02d}" for j in range(7)])[m % 7],
        "service_date": pd.Timestamp("2019-01-01") + pd.to_timedelta(rng.integers(0, 3 * 365, n), unit="D"),
        "category": rng.choice(["inpatient", "outpatient", "pharmacy"], n),
        "allowed": np.round(rng.gamma(2.0, 80.0, n), 2),
        "unused": rng.normal(size=n),
    })


def _reference(df):
    d = df.assign(quarter=df["service_date"].dt.to_period("Q").dt.start_time)
    g = d.groupby(["member_id", "quarter"])
    ref = pd.DataFrame({
        "spending": g["allowed"].sum(),
        "n_lines": g.size(),
        "spend_ip": d.assign(v=d["allowed"].where(d["category"] == "inpatient", 0.0)).groupby(["member_id", "quarter"])["v"].sum(),
        "spend_rx": d.assign(v=d["allowed"].where(d["category"] == "pharmacy", 0.0)).groupby(["member_id", "quarter"])["v"].sum(),
        "max_line": g["allowed"].max(),
        "org_id": g["org_id"].first(),
    }).reset_index()
    return ref.sort_values(["member_id", "quarter"]).reset_index(drop=True)


@pytest.fixture(scope="module")
def files(tmp_path_factory):
    d = tmp_path_factory.mktemp("claims")
    df = _claims()
    half = len(df) // 2
    # two Parquet parts (a glob) and one CSV
    pa_tab = pa.Table.from_pandas(df, preserve_index=False)
    import pyarrow.parquet as pq

    pq.write_table(pa_tab.slice(0, half), d / "part-0.parquet")
    pq.write_table(pa_tab.slice(half), d / "part-1.parquet")
    df.to_csv(d / "claims.csv", index=False)
    return d, df


@pytest.mark.parametrize("engine", ["duckdb", "pyarrow"])
@pytest.mark.parametrize("fmt", ["parquet", "csv"])
def test_read_claims_matches_pandas_groupby(files, engine, fmt):
    d, df = files
    src = str(d / "part-*.parquet") if fmt == "parquet" else str(d / "claims.csv")
    cp = ek.scale.read_claims(src, unit="member_id", time="service_date", time_grain="quarter",
                              keep=["org_id"], aggregate=AGG, engine=engine)
    ref = _reference(df)
    out = cp.data
    assert list(out.columns) == ["member_id", "service_date", *AGG, "org_id"]
    # ids encoded to dense int64 codes in sorted id order, inside the engine
    assert out["member_id"].dtype == np.int64 and out["org_id"].dtype == np.int64
    assert out["member_id"].min() == 0 and out["member_id"].max() == ref["member_id"].nunique() - 1
    np.testing.assert_array_equal(cp.decode("member_id").to_numpy(), ref["member_id"].to_numpy())
    np.testing.assert_array_equal(cp.decode("org_id").to_numpy(), ref["org_id"].to_numpy())
    np.testing.assert_array_equal(out["service_date"].to_numpy("datetime64[ns]"), ref["quarter"].to_numpy("datetime64[ns]"))
    for c in ["spending", "spend_ip", "spend_rx", "max_line"]:
        np.testing.assert_allclose(out[c].to_numpy(), ref[c].to_numpy(), rtol=1e-12, err_msg=c)
    np.testing.assert_array_equal(out["n_lines"].to_numpy(), ref["n_lines"].to_numpy())
    assert cp.n_source_rows == len(df)
    # ready for the data contract: sorted (unit, time), one row per member-quarter
    vp = ek.data.validate_panel(out, outcome="spending", unit="member_id", time="service_date", cluster="org_id")
    assert vp.sorted_by_unit_time and vp.nobs == len(ref)


def test_read_claims_where_filter_and_only_needed_columns(files):
    d, df = files
    cp = ek.scale.read_claims(str(d / "part-*.parquet"), unit="member_id", time="service_date", time_grain="year",
                              aggregate={"rx": "sum:allowed"}, where={"category": "pharmacy"}, encode=())
    sub = df[df["category"] == "pharmacy"]
    ref = sub.groupby(["member_id", sub["service_date"].dt.year])["allowed"].sum()
    assert not pd.api.types.is_integer_dtype(cp.data["member_id"])  # encode=() keeps the ids as they are
    np.testing.assert_allclose(cp.data["rx"].to_numpy(), ref.to_numpy(), rtol=1e-12)
    assert cp.levels == {}


def test_read_claims_missing_column_message(files):
    d, _ = files
    with pytest.raises(DataError, match=r"Column 'allowd' \(the column aggregated into 'x'\) not found in data\."):
        ek.scale.read_claims(str(d / "claims.csv"), unit="member_id", time="service_date", aggregate={"x": "sum:allowd"})
    with pytest.raises(DataError, match=r"Column 'Member_ID' \(the unit\) not found in data\. Did you mean 'member_id'\?"):
        ek.scale.read_claims(str(d / "claims.csv"), unit="Member_ID", time="service_date", aggregate={"x": "sum:allowed"},
                             engine="pyarrow")


@pytest.mark.parametrize("engine", ["duckdb", "pyarrow"])
def test_read_claims_missing_values_counted_like_validate_panel(tmp_path, engine):
    df = _claims(n=500)
    df.loc[[3, 10], "member_id"] = None
    df.loc[[5], "allowed"] = np.nan
    df.to_parquet(tmp_path / "c.parquet", index=False)
    msg = r"Missing \(or infinite\) values in 3 of 500 rows \('member_id': 2, 'allowed': 1\)\. .*dropna=True"
    with pytest.raises(DataError, match=msg):
        ek.scale.read_claims(tmp_path / "c.parquet", unit="member_id", time="service_date", aggregate={"s": "sum:allowed"},
                             engine=engine)
    # dropna drops lines with missing keys only; a missing amount still raises
    df.loc[[5], "allowed"] = 1.0
    df.to_parquet(tmp_path / "c.parquet", index=False)
    cp = ek.scale.read_claims(tmp_path / "c.parquet", unit="member_id", time="service_date", time_grain="month",
                              aggregate={"s": "sum:allowed"}, engine=engine, dropna=True)
    assert cp.data["s"].sum() == pytest.approx(df["allowed"][df["member_id"].notna()].sum(), rel=1e-12)


@pytest.mark.parametrize("engine", ["duckdb", "pyarrow"])
def test_kept_column_must_be_constant_within_member_period(tmp_path, engine):
    df = _claims(n=400)
    df.loc[0, "org_id"] = "ORG99"  # one line attributed elsewhere
    df.to_parquet(tmp_path / "c.parquet", index=False)
    with pytest.raises(DataError, match=r"Column 'org_id' \(a kept column\) takes several values within 1 "):
        ek.scale.read_claims(tmp_path / "c.parquet", unit="member_id", time="service_date", time_grain="quarter",
                             keep=["org_id"], aggregate={"s": "sum:allowed"}, engine=engine)


def test_read_claims_argument_errors(files):
    d, _ = files
    with pytest.raises(SpecificationError, match="aggregate="):
        ek.scale.read_claims(str(d / "claims.csv"), unit="member_id", time="service_date", aggregate={})
    with pytest.raises(ValueError, match="engine"):
        ek.scale.read_claims(str(d / "claims.csv"), unit="member_id", time="service_date", aggregate={"s": "sum:allowed"},
                             engine="spark")
    with pytest.raises(DataError, match="No claim files found"):
        ek.scale.read_claims(str(d / "nothing-*.parquet"), unit="member_id", time="service_date", aggregate={"s": "sum:allowed"})
    with pytest.raises(DataError, match="time_grain='quarter' needs a date"):
        ek.scale.read_claims(str(d / "claims.csv"), unit="member_id", time="allowed", time_grain="quarter",
                             aggregate={"s": "count:"})


def test_check_panel_source_duplicates_message(tmp_path):
    from evalkit.scale import check_panel_source

    con = duckdb.connect()
    panel = pd.DataFrame({"m": ["a", "a", "b", "b"], "t": [1, 1, 1, 2], "y": [1.0, 2.0, None, 4.0]})
    con.register("p", panel)
    cols = list(panel.columns)
    with pytest.raises(DataError, match=r"Missing \(or infinite\) values in 1 of 4 rows \('y': 1\)"):
        check_panel_source(con, "p", columns=cols, roles={"outcome": ["y"], "unit": ["m"], "time": ["t"]}, unit="m", time="t")
    with pytest.raises(DataError, match=r"2 rows share a \('m', 't'\) pair with another row, e.g\. m='a', t=1"):
        check_panel_source(con, "p", columns=cols, roles={"unit": ["m"], "time": ["t"]}, unit="m", time="t")
    with pytest.raises(DataError, match=r"Column 'z' \(the outcome\) not found in data\."):
        check_panel_source(con, "p", columns=cols, roles={"outcome": ["z"]}, unit="m", time="t")


def test_check_panel_source_counts_nan_and_inf_like_validate_panel(tmp_path):
    """NaN is not NULL in Parquet written by DuckDB/Spark/Polars; NaN and +-inf count as missing, per column."""
    from evalkit.scale import check_panel_source

    con = duckdb.connect()
    path = tmp_path / "p.parquet"
    con.execute(f"""COPY (SELECT * FROM (VALUES ('a', 1, 'NaN'::DOUBLE, 1.0::FLOAT), ('a', 2, 2.0, 1.0), ('b', 1, 'inf'::DOUBLE, 2.0),
                                              ('b', 2, 4.0, '-inf'::FLOAT), ('c', 1, NULL, 3.0)) AS v(m, t, y, c))
                    TO '{path}' (FORMAT parquet)""")
    rel = f"read_parquet('{path}')"
    cols = ["m", "t", "y", "c"]
    frame = pd.read_parquet(path)  # the row path's message on the same rows
    with pytest.raises(DataError) as ref:
        ek.data.validate_panel(frame, outcome="y", unit="m", time="t", cluster="c")
    with pytest.raises(DataError, match=r"Missing \(or infinite\) values in 4 of 5 rows \('y': 3, 'c': 1\)") as got:
        check_panel_source(con, rel, columns=cols, roles={"outcome": ["y"], "unit": ["m"], "time": ["t"], "cluster": ["c"]},
                           unit="m", time="t")
    assert str(got.value) == str(ref.value)


@pytest.mark.parametrize("engine", ["duckdb", "pyarrow"])
def test_read_claims_counts_nan_amounts(tmp_path, engine):
    df = _claims(n=300)
    tab = pa.Table.from_pandas(df, preserve_index=False)
    allowed = tab["allowed"].to_numpy().copy()
    allowed[[4, 9]] = np.nan  # NaN values (not nulls) in the file
    tab = tab.set_column(tab.schema.get_field_index("allowed"), "allowed", pa.array(allowed, from_pandas=False))
    import pyarrow.parquet as pq

    pq.write_table(tab, tmp_path / "c.parquet")
    assert pq.read_table(tmp_path / "c.parquet")["allowed"].null_count == 0
    with pytest.raises(DataError, match=r"Missing \(or infinite\) values in 2 of 300 rows \('allowed': 2\)"):
        ek.scale.read_claims(tmp_path / "c.parquet", unit="member_id", time="service_date", aggregate={"s": "sum:allowed"},
                             engine=engine)


def test_read_claims_zoned_dates_do_not_depend_on_the_session_time_zone(tmp_path):
    """A tz-aware service date is truncated in its own zone (as pandas and pyarrow do), not DuckDB's session zone."""
    df = _claims(n=2000)
    df["service_date"] = (df["service_date"] + pd.to_timedelta(np.arange(len(df)) % 24, unit="h")).dt.tz_localize("UTC")
    df.to_parquet(tmp_path / "z.parquet", index=False)
    kw = dict(unit="member_id", time="service_date", time_grain="quarter", aggregate={"s": "sum:allowed"})
    ref = ek.scale.read_claims(tmp_path / "z.parquet", engine="pyarrow", **kw).data
    d = df.assign(q=df["service_date"].dt.tz_localize(None).dt.to_period("Q").dt.start_time)
    expect = d.groupby(["member_id", "q"])["allowed"].sum()
    np.testing.assert_allclose(ref["s"].to_numpy(), expect.to_numpy(), rtol=1e-12)
    for tz in ["America/New_York", "Asia/Tokyo", None]:
        con = duckdb.connect()
        if tz:
            con.execute(f"SET TimeZone = '{tz}'")
        out = ek.scale.read_claims(tmp_path / "z.parquet", connection=con, **kw).data
        assert str(out["service_date"].dt.tz) == "UTC", tz
        np.testing.assert_array_equal(out["service_date"].to_numpy(), ref["service_date"].to_numpy())
        np.testing.assert_allclose(out["s"].to_numpy(), ref["s"].to_numpy(), rtol=1e-12, err_msg=str(tz))


def test_connections_made_here_use_utc():
    from evalkit.scale.io import duckdb_connect

    assert duckdb_connect().execute("SELECT current_setting('TimeZone')").fetchone()[0] == "UTC"
    con = duckdb.connect()
    con.execute("SET TimeZone = 'Asia/Tokyo'")
    assert duckdb_connect(con).execute("SELECT current_setting('TimeZone')").fetchone()[0] == "Asia/Tokyo"  # left alone
