"""Review regressions: detectability warns, naming the system, measure and group, when one baseline rate is 0 or 1."""
import warnings

import pandas as pd
import pytest

import evalkit as ek
from evalkit.errors import InferenceWarning


def test_detectability_names_measure_and_group_for_one_boundary_rate():
    b = pd.DataFrame(dict(system="s1", measure=["bp", "bp", "a1c", "a1c"], group=["White", "Black"] * 2,
                          denominator=[5000, 1500, 5000, 1500], rate=[0.7, 0.6, 1.0, 0.8], higher_is_better=True))
    with warnings.catch_warnings(record=True) as w:
        warnings.simplefilter("always")
        ek.equity.detectability(b)
    msgs = [str(x.message) for x in w if issubclass(x.category, InferenceWarning)]
    assert len(msgs) == 1, msgs
    assert "measure 'a1c'" in msgs[0] and "group 'Black'" in msgs[0] and "reference group's baseline rate" in msgs[0]
