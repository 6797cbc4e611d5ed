"""Shared fixtures of the matching tests (a module may define its own ``df``, which takes precedence)."""
from __future__ import annotations

import numpy as np
import pandas as pd
import pytest


@pytest.fixture
def df():
    """300 units, treatment from a logit in ``x``; ``z`` is noise; ``y = x + t + e``."""
    rng = np.random.default_rng(11)
    n = 300
    x = rng.normal(size=n)
    t = (rng.uniform(size=n) < 1 / (1 + np.exp(-(-0.8 + x)))).astype(int)
    return pd.DataFrame({"t": t, "x": x, "z": rng.normal(size=n), "y": x + t + rng.normal(size=n)})
