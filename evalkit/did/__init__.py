"""Difference-in-differences designs: TWFE, 2x2, event study, AQC outputs."""
from .results import DiDResult
from .event_study import EventStudyResult, event_study, wald_test
from .twfe import did_2x2, twfe

__all__ = ["twfe", "did_2x2", "event_study", "wald_test", "DiDResult", "EventStudyResult"]
