"""Tests for the shipped reference data (load_mpdta)."""
import hashlib
from importlib import resources

import numpy as np
import pandas as pd

from evalkit.datasets import load_mpdta

MPDTA_MD5 = "1c418c1c923b8dc56511ff09d25c182f"


def test_mpdta_shape_and_columns():
    df = load_mpdta()
    assert isinstance(df, pd.DataFrame)
    assert df.shape == (2500, 6)
    assert list(df.columns) == ["year", "countyreal", "lpop", "lemp", "first.treat", "treat"]
    for col in ("year", "countyreal", "first.treat", "treat"):
        assert pd.api.types.is_integer_dtype(df[col]), col


def test_mpdta_panel_structure():
    df = load_mpdta()
    assert df["countyreal"].nunique() == 500
    assert sorted(df["year"].unique().tolist()) == [2003, 2004, 2005, 2006, 2007]
    assert not df.duplicated(["countyreal", "year"]).any()
    assert (df.groupby("countyreal").size() == 5).all()
    # sorted by county, then year
    assert df.equals(df.sort_values(["countyreal", "year"], kind="stable").reset_index(drop=True))


def test_mpdta_cohorts():
    df = load_mpdta()
    counts = df.groupby("first.treat")["countyreal"].nunique().to_dict()
    assert counts == {0: 309, 2004: 20, 2006: 40, 2007: 131}
    assert ((df["first.treat"] > 0).astype(int) == df["treat"]).all()
    # cohort and lpop are time-invariant within county
    assert (df.groupby("countyreal")[["first.treat", "lpop"]].nunique() == 1).all().all()


def test_mpdta_shipped_file_md5():
    path = resources.files("evalkit.data").joinpath("_files", "mpdta.csv")
    assert hashlib.md5(path.read_bytes()).hexdigest() == MPDTA_MD5
    prov = resources.files("evalkit.data").joinpath("_files", "PROVENANCE.md").read_text(encoding="utf-8")
    assert "71ba8a564eada94d710d65ec0d4f64041351de96" in prov
    assert MPDTA_MD5 in prov


def test_mpdta_values_first_rows():
    df = load_mpdta()
    first = df.iloc[0]
    assert first["year"] == 2003 and first["countyreal"] == 8001 and first["first.treat"] == 2007
    np.testing.assert_allclose(first["lemp"], 8.46146904264388, rtol=0, atol=1e-12)


def test_mpdta_returns_fresh_copy():
    a = load_mpdta()
    a.loc[0, "lemp"] = -1.0
    assert load_mpdta().loc[0, "lemp"] != -1.0
