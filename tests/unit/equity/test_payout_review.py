"""Review regressions: payout_risk quantile columns are unique and name the exact percentile."""
import numpy as np
import pytest

import evalkit as ek
from evalkit.errors import SpecificationError

ARGS = (4000, 1000, 0.708, 0.638)
SCHED = ek.equity.linear_schedule(0.1, 0.5)


def test_quantile_columns_are_unique_and_exact():
    qs = (0.02, 0.025, 0.05, 0.5, 0.975, 1.0)
    r = ek.equity.payout_risk(*ARGS, rho=0.5, schedule=SCHED, reduction=0.5, quantiles=qs)
    names = ["q02", "q02.5", "q05", "q50", "q97.5", "q100"]
    assert all(n in r.table.columns for n in names)
    row = r.table.set_index("scenario").loc["reduction 0.5"]
    vals = [row[n] for n in names]
    assert vals == sorted(vals) and row["q02.5"] >= row["q02"]


def test_default_quantile_names_unchanged():
    r = ek.equity.payout_risk(*ARGS, rho=0.5, schedule=SCHED, reduction=0.5)
    assert [c for c in r.table.columns if c.startswith("q")] == ["q05", "q25", "q50", "q75", "q95"]


def test_repeated_quantile_is_an_error():
    with pytest.raises(SpecificationError, match="quantiles"):
        ek.equity.payout_risk(*ARGS, rho=0.5, schedule=SCHED, reduction=0.5, quantiles=(0.5, np.float64(0.5)))
