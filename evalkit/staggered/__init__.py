"""Staggered adoption: heterogeneity-robust DiD (Callaway & Sant'Anna 2021) and the Goodman-Bacon
decomposition of the TWFE coefficient.

>>> import evalkit as ek
>>> gt = ek.staggered.att_gt(df, outcome="spending", unit="member_id", time="quarter",
...                          cohort="entry_quarter", control="never", method="dr", seed=7)  # doctest: +SKIP
>>> gt.aggregate("dynamic").plot()                                                       # doctest: +SKIP
"""
from ._att_gt import att_gt
from .bacon import BaconDecomposition, bacon_decomposition
from .results import AggregateResult, ATTgtResult, WaldTest

__all__ = ["att_gt", "ATTgtResult", "AggregateResult", "WaldTest", "bacon_decomposition", "BaconDecomposition"]

from .sun_abraham import SunAbrahamResult, sun_abraham  # noqa: E402

__all__ += ["sun_abraham", "SunAbrahamResult"]

from .imputation import ImputationResult, imputation  # noqa: E402

__all__ += ["imputation", "ImputationResult"]

from .sensitivity import SensitivityResult, honest_bounds, honest_sensitivity  # noqa: E402

__all__ += ["honest_sensitivity", "honest_bounds", "SensitivityResult"]

from .stacked import StackedDiDResult, stacked_did  # noqa: E402

__all__ += ["stacked_did", "StackedDiDResult"]
