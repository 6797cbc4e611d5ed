"""Difference-in-differences designs: TWFE, 2x2, event study, AQC outputs."""
from .results import DiDResult
from .aqc import (
    MultiOutcomeResult,
    PropensityWeights,
    price_utilization,
    propensity_weights,
    quality_effects,
    relative_effect,
    twfe_multi,
)
from .event_study import EventStudyResult, event_study, wald_test
from .twfe import did_2x2, twfe

__all__ = ["twfe", "did_2x2", "event_study", "wald_test", "DiDResult", "EventStudyResult",
           "twfe_multi", "price_utilization", "relative_effect", "quality_effects", "propensity_weights",
           "MultiOutcomeResult", "PropensityWeights"]
