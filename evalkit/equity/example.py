"""A small built-in baseline table: three SYNTHETIC systems with published group rates.

The group rates are the Blue Cross Blue Shield of Massachusetts baselines cited in the
pay-for-equity contracts (colorectal cancer screening, controlling blood pressure, HbA1c poor
control; percentages by race/ethnicity). The systems, their sizes, group mixes and practice
counts are invented for illustration; every system uses the same published rates, so the
table shows how scale and diversity alone change which measures are detectable.
"""
from __future__ import annotations

import pandas as pd

__all__ = ["example_baseline", "PUBLISHED_RATES"]

#: Published baseline rates (proportions) by measure and group; HbA1c poor control: lower is better.
PUBLISHED_RATES = {
    "colorectal_cancer_screening": ({"White": 0.708, "Black": 0.638, "Hispanic": 0.654, "Asian": 0.670}, True),
    "controlling_blood_pressure": ({"White": 0.747, "Black": 0.661, "Hispanic": 0.690, "Asian": 0.742}, True),
    "hba1c_poor_control": ({"White": 0.239, "Black": 0.257, "Hispanic": 0.319, "Asian": 0.218}, False),
}

# synthetic systems: attributed adults, group mix, practices, share of adults eligible per measure
_SYSTEMS = {
    "System A (large, diverse urban)": dict(adults=180_000, mix={"White": 0.55, "Black": 0.18, "Hispanic": 0.17, "Asian": 0.10},
                                            practices=120),
    "System B (mid-size suburban)": dict(adults=60_000, mix={"White": 0.75, "Black": 0.08, "Hispanic": 0.09, "Asian": 0.08},
                                         practices=45),
    "System C (small, mostly White)": dict(adults=15_000, mix={"White": 0.90, "Black": 0.03, "Hispanic": 0.04, "Asian": 0.03},
                                           practices=12),
}
_ELIGIBLE = {"colorectal_cancer_screening": 0.35, "controlling_blood_pressure": 0.18, "hba1c_poor_control": 0.08}


def example_baseline() -> pd.DataFrame:
    """Synthetic baseline table (long format) for three systems x three measures x four groups.

    Columns ``system, measure, group, denominator, rate, higher_is_better, n_practices, icc,
    rho`` as :func:`evalkit.equity.detectability` expects. Rates are the published BCBSMA
    baselines; denominators, practices, ICC (0.02) and within-person correlation (0.5) are
    synthetic planning values.

    Examples
    --------
    >>> b = example_baseline()
    >>> b.shape
    (36, 9)
    """
    rows = []
    for system, s in _SYSTEMS.items():
        for measure, (rates, hib) in PUBLISHED_RATES.items():
            for group, share in s["mix"].items():
                rows.append(dict(system=system, measure=measure, group=group,
                                 denominator=int(round(s["adults"] * share * _ELIGIBLE[measure])), rate=rates[group],
                                 higher_is_better=hib, n_practices=s["practices"], icc=0.02, rho=0.5))
    return pd.DataFrame(rows)
