"""Exceptions and warnings raised by evalkit.

Every error is a subclass of :class:`EvalkitError` and of a built-in exception
(``ValueError`` for bad input), so ``except ValueError`` keeps working.
Messages name the column or argument at fault and say how to fix it.
"""
from __future__ import annotations

__all__ = [
    "EvalkitError",
    "DataError",
    "SpecificationError",
    "EstimationError",
    "EvalkitWarning",
    "FewClustersWarning",
    "SingletonWarning",
    "DroppedRowsWarning",
    "InferenceWarning",
    "StaggeredTimingWarning",
    "BadControlWarning",
    "CollinearityWarning",
]


class EvalkitError(Exception):
    """Base class of every evalkit exception."""


class DataError(EvalkitError, ValueError):
    """The data do not satisfy the data contract (missing column, NaN, duplicates, ...)."""


class SpecificationError(EvalkitError, ValueError):
    """An argument is invalid or the options contradict each other."""


class EstimationError(EvalkitError, ValueError):
    """The model cannot be estimated on these data (e.g. the treatment is collinear with the fixed effects)."""


class EvalkitWarning(UserWarning):
    """Base class of every evalkit warning."""


class FewClustersWarning(EvalkitWarning):
    """Too few clusters (or treated clusters) for cluster-robust CR1 inference to be reliable."""


class SingletonWarning(EvalkitWarning):
    """Fixed-effect groups with a single observation were found."""


class DroppedRowsWarning(EvalkitWarning):
    """Rows were dropped; the result's ``sample.dropped`` says which and why."""


class InferenceWarning(EvalkitWarning):
    """The requested standard error is questionable for this design."""


class StaggeredTimingWarning(EvalkitWarning):
    """Two-way fixed effects with staggered adoption mixes effects across cohorts and periods."""


class BadControlWarning(EvalkitWarning):
    """A covariate responds to treatment (it moves after entry)."""


class CollinearityWarning(EvalkitWarning):
    """Covariates absorbed by the fixed effects (or collinear) were removed from the regression."""
