"""Parameter checks with one message shape (after scikit-learn's ``_param_validation``)."""
from __future__ import annotations

from numbers import Integral, Real
from typing import Any, Iterable, Sequence

import numpy as np

from .errors import SpecificationError

__all__ = ["check_option", "check_scalar", "check_columns_arg", "as_generator"]


def check_option(value: Any, name: str, options: Iterable[Any], func: str | None = None) -> Any:
    """Raise unless ``value`` is one of ``options``.

    >>> check_option("CR1", "vcov", ["iid", "CR1"])
    'CR1'
    """
    options = list(options)
    if value not in options:
        where = f" of {func}" if func else ""
        raise SpecificationError(
            f"The {name!r} parameter{where} must be one of {options}. Got {value!r} instead."
        )
    return value


def check_scalar(
    value: Any,
    name: str,
    kind: type | tuple[type, ...],
    *,
    min_val: float | None = None,
    max_val: float | None = None,
    include_min: bool = True,
    include_max: bool = True,
) -> Any:
    """Raise unless ``value`` is a scalar of ``kind`` within the bounds."""
    kinds = kind if isinstance(kind, tuple) else (kind,)
    if isinstance(value, bool) or not isinstance(value, kinds):
        names = " or ".join({Integral: "int", Real: "float"}.get(k, getattr(k, "__name__", str(k))) for k in kinds)
        raise SpecificationError(f"The {name!r} parameter must be {names}. Got {value!r} instead.")
    lo_ok = min_val is None or (value >= min_val if include_min else value > min_val)
    hi_ok = max_val is None or (value <= max_val if include_max else value < max_val)
    if not (lo_ok and hi_ok):
        lo = "-inf" if min_val is None else min_val
        hi = "inf" if max_val is None else max_val
        lb = "[" if include_min else "("
        rb = "]" if include_max else ")"
        raise SpecificationError(
            f"The {name!r} parameter must be in the range {lb}{lo}, {hi}{rb}. Got {value!r} instead."
        )
    return value


def check_columns_arg(value: str | Sequence[str] | None, name: str) -> tuple[str, ...]:
    """Normalise a column-or-columns argument to a tuple of names."""
    if value is None:
        return ()
    if isinstance(value, str):
        return (value,)
    try:
        out = tuple(value)
    except TypeError:
        raise SpecificationError(f"The {name!r} parameter must be a column name or a list of names. Got {value!r}.") from None
    for v in out:
        if not isinstance(v, str):
            raise SpecificationError(f"The {name!r} parameter must contain column names (str). Got {v!r}.")
    return out


def as_generator(seed: int | np.random.Generator | None) -> np.random.Generator:
    """Turn ``seed`` into a :class:`numpy.random.Generator` (never touches global state)."""
    if isinstance(seed, np.random.Generator):
        return seed
    if seed is None or (isinstance(seed, Integral) and not isinstance(seed, bool)):
        return np.random.default_rng(seed)
    raise SpecificationError(f"The 'seed' parameter must be an int, a numpy Generator or None. Got {seed!r}.")
