"""Equity measures for pay-for-equity contracts: detectability, measure selection, stratified gaps.

>>> import evalkit as ek
>>> sel = ek.equity.select_measures(ek.equity.example_baseline())
>>> sorted(sel.columns)[:3]
['best_group', 'groups', 'measure']
"""
from .detect import REQUIRED_COLUMNS, detectability, select_measures
from .did import DisparityDiD, disparity_did
from .example import PUBLISHED_RATES, example_baseline
from .payout import PayoutRisk, linear_schedule, payout_risk
from .plots import plot_mde, plot_power_curves
from .stratified import stratified_gaps

__all__ = ["REQUIRED_COLUMNS", "detectability", "select_measures", "example_baseline", "PUBLISHED_RATES",
           "plot_power_curves", "plot_mde", "stratified_gaps",
           "payout_risk", "linear_schedule", "PayoutRisk", "disparity_did", "DisparityDiD"]
