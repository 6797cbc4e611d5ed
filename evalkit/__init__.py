"""evalkit: evaluate health-care payment and care programs.

>>> import evalkit as ek
>>> res = ek.did.twfe(df, outcome="spend", unit="member_id", time="quarter",
...                   treatment="aqc_post", cluster="org_id")          # doctest: +SKIP
"""
import importlib
import logging

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

_SUBMODULES = ("data", "datasets", "did", "inference", "matching", "plots", "report", "staggered", "power", "equity", "palliative", "scale")


def __getattr__(name):  # PEP 562: submodules load on first use (keeps `import evalkit` light)
    if name in _SUBMODULES:
        return importlib.import_module(f".{name}", __name__)
    raise AttributeError(f"module 'evalkit' has no attribute {name!r}")


def __dir__():
    return sorted(set(globals()) | set(_SUBMODULES))

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
