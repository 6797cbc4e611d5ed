"""Difference-in-differences designs: TWFE, 2x2, event study, AQC outputs."""
from .results import DiDResult
from .twfe import did_2x2, twfe

__all__ = ["twfe", "did_2x2", "DiDResult"]
