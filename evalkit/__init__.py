"""evalkit: evaluate health-care payment and care programs.

>>> import evalkit as ek
>>> res = ek.did.twfe(df, outcome="spend", unit="member_id", time="quarter",
...                   treatment="aqc_post", cluster="org_id")          # doctest: +SKIP
"""
import logging

from . import data, datasets, did, inference
from ._version import __version__
from .errors import (
    DataError,
    EstimationError,
    EvalkitError,
    EvalkitWarning,
    FewClustersWarning,
    SpecificationError,
)

logging.getLogger(__name__).addHandler(logging.NullHandler())

__all__ = [
    "__version__",
    "data",
    "datasets",
    "did",
    "inference",
    "DataError",
    "EstimationError",
    "EvalkitError",
    "EvalkitWarning",
    "FewClustersWarning",
    "SpecificationError",
]
