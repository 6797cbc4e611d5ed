"""Shared fixtures of the report tests."""
from __future__ import annotations

from pathlib import Path

import pytest

import evalkit as ek


@pytest.fixture(scope="module")
def panel_csv(tmp_path_factory) -> Path:
    """mpdta (500 counties x 5 years) with a treated-and-post column ``d`` and a group column ``ever``, as CSV."""
    df = ek.datasets.load_mpdta()
    df["d"] = ((df["first.treat"] > 0) & (df["year"] >= df["first.treat"])).astype(int)
    df["ever"] = (df["first.treat"] > 0).astype(int)
    path = tmp_path_factory.mktemp("data") / "panel.csv"
    df.to_csv(path, index=False)
    return path
