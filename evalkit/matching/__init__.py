"""Matched-control designs and weighting (R MatchIt 4.7 conventions).

>>> import evalkit as ek
>>> m = ek.matching.match(df, treatment="treat", covariates=["age", "educ", "race"])  # doctest: +SKIP
>>> m.balance(); m.summary(); m.plot()                                               # doctest: +SKIP
>>> ek.matching.estimate_effect(m, "re78")                                           # doctest: +SKIP
"""
from ._match import METHODS, match
from .balance import balance_table
from .effects import estimate_effect, matched_did
from .results import MatchResult
from .weighting import entropy_weights, weight

__all__ = ["match", "weight", "entropy_weights", "estimate_effect", "matched_did", "MatchResult", "balance_table", "METHODS"]
