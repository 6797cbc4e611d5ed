"""Multiplier bootstrap of influence functions (clustered), for simultaneous confidence bands."""
from __future__ import annotations

import numpy as np

from .._validation import check_option

__all__ = ["cluster_sums", "multiplier_draws", "sup_t_critical_value", "BOOT_WEIGHTS"]

BOOT_WEIGHTS = ("rademacher", "mammen")
_SQ5 = np.sqrt(5.0)


def cluster_sums(psi: np.ndarray, cluster: np.ndarray | None) -> np.ndarray:
    """Influence functions summed within cluster (rows = clusters); the unit rows when ``cluster`` is None."""
    if cluster is None:
        return psi
    n_cl = int(cluster.max()) + 1
    out = np.zeros((n_cl, psi.shape[1]))
    np.add.at(out, cluster, psi)
    return out


def _multipliers(rng: np.random.Generator, shape: tuple[int, int], kind: str) -> np.ndarray:
    if kind == "rademacher":
        return rng.integers(0, 2, size=shape).astype(np.float64) * 2.0 - 1.0
    # Mammen's two-point distribution: mean 0, variance 1, third moment 1
    lo, hi = (1 - _SQ5) / 2, (1 + _SQ5) / 2
    p_lo = (_SQ5 + 1) / (2 * _SQ5)
    return np.where(rng.random(shape) < p_lo, lo, hi)


def multiplier_draws(S: np.ndarray, n: int, n_boot: int, rng: np.random.Generator, kind: str = "rademacher",
                     chunk: int = 128) -> np.ndarray:
    """Bootstrap draws of the estimators' deviations, ``(n_boot, k)``: ``sum_c v_c S_c / n``.

    ``S`` holds the influence functions summed within clusters (``(G, k)``); ``v_c`` are iid
    multipliers (Rademacher or Mammen). Drawn in chunks so memory stays ``O(chunk * G)``.
    """
    check_option(kind, "boot_weights", BOOT_WEIGHTS)
    G, k = S.shape
    out = np.empty((n_boot, k))
    for start in range(0, n_boot, chunk):
        stop = min(start + chunk, n_boot)
        V = _multipliers(rng, (stop - start, G), kind)
        out[start:stop] = V @ S / n
    return out


def sup_t_critical_value(draws: np.ndarray, se: np.ndarray, level: float) -> float:
    """Quantile ``level`` of ``max_j |draw_j| / se_j`` over the columns with a positive SE."""
    ok = np.isfinite(se) & (se > 0)
    if not ok.any():
        return float("nan")
    t = np.max(np.abs(draws[:, ok]) / se[ok], axis=1)
    return float(np.quantile(t, level, method="inverted_cdf"))
