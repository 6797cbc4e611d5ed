"""Covariate balance statistics with MatchIt's conventions (``summary.matchit``).

For each covariate (factors expanded into one row per level, plus the ``distance`` row):

* standardised mean difference ``(m_t - m_c) / s`` with weighted group means. For the ATT the
  denominator ``s`` is the treated group's standard deviation in the *unmatched, unweighted*
  sample (the same before and after matching); for the ATE/ATO it is
  ``sqrt((s_t^2 + s_c^2) / 2)`` from the unmatched sample. Continuous variables use the n - 1
  sample variance, binary (all 0/1) variables ``sqrt(p (1 - p))`` without correction.
* variance ratio ``v_t / v_c`` (continuous variables only) with weighted variances
  ``sum w (x - m)^2 / (sum w - sum w^2 / sum w)`` (n - 1 when unweighted);
* eCDF mean and maximum: the mean and the maximum over the distinct values of ``x`` of the
  absolute difference between the groups' weighted empirical CDFs (for binary variables both
  equal the absolute difference in proportions);
* standardised pair distance after matching: the mean absolute difference over every matched
  (treated, control) pair, divided by ``s`` (MatchIt's ``pair.dist``).
"""
from __future__ import annotations

import numpy as np
import pandas as pd

__all__ = ["balance_table", "smd_denominator", "BALANCE_COLUMNS"]

BALANCE_COLUMNS = [
    "mean_treated_before", "mean_control_before", "smd_before", "var_ratio_before", "ecdf_mean_before", "ecdf_max_before",
    "mean_treated_after", "mean_control_after", "smd_after", "var_ratio_after", "ecdf_mean_after", "ecdf_max_after",
    "std_pair_dist_after",
]


def _wmean(X: np.ndarray, w: np.ndarray) -> np.ndarray:
    return (w @ X) / w.sum()


def _wvar(X: np.ndarray, w: np.ndarray) -> np.ndarray:
    m = _wmean(X, w)
    sw = w.sum()
    return (w @ (X - m) ** 2) / (sw - (w @ w) / sw)


def smd_denominator(X: np.ndarray, treat: np.ndarray, binary: np.ndarray, estimand: str = "ATT") -> np.ndarray:
    """The SMD denominator per column, from the unmatched, unweighted sample."""

    def sd(g):
        Xg = X[treat == g]
        p = Xg.mean(axis=0)
        v = np.where(binary, p * (1 - p), Xg.var(axis=0, ddof=1) if len(Xg) > 1 else np.nan)
        return v

    if estimand == "ATT":
        v = sd(1)
    elif estimand == "ATC":
        v = sd(0)
    else:
        v = (sd(1) + sd(0)) / 2
    return np.sqrt(v)


def _ecdf_stats(x: np.ndarray, treat: np.ndarray, w: np.ndarray) -> tuple[float, float]:
    o = np.argsort(x, kind="stable")
    xs, ts, ws = x[o], treat[o], w[o]
    signed = np.where(ts == 1, ws / ws[ts == 1].sum(), -ws / ws[ts == 0].sum())
    cum = np.abs(np.cumsum(signed))
    last = np.append(np.diff(xs) != 0, True)
    e = cum[last]
    return float(e.mean()), float(e.max())


def _pair_dist(X: np.ndarray, pairs: dict[int, list[int]] | None, denom: np.ndarray) -> np.ndarray:
    if not pairs:
        return np.full(X.shape[1], np.nan)
    from ._match import pair_arrays

    t_arr, c_arr, p_arr = pair_arrays(pairs)
    if len(t_arr) == 0:
        return np.full(X.shape[1], np.nan)
    # MatchIt's pair.dist: mean over every matched (treated, control) cell
    return np.abs(X[c_arr] - X[t_arr]).mean(axis=0) / denom


def balance_table(
    X: np.ndarray,
    names,
    binary: np.ndarray,
    treat: np.ndarray,
    weights: np.ndarray | None,
    *,
    estimand: str = "ATT",
    pairs: dict[int, list[int]] | None = None,
) -> pd.DataFrame:
    """Balance before and (if ``weights`` is given) after matching/weighting, one row per column of ``X``."""
    denom = smd_denominator(X, treat, binary, estimand)
    out = {}
    for label, w in (("before", np.ones(len(treat))), ("after", weights)):
        if w is None:
            continue
        t1, t0 = treat == 1, treat == 0
        m1, m0 = _wmean(X[t1], w[t1]), _wmean(X[t0], w[t0])
        out[f"mean_treated_{label}"] = m1
        out[f"mean_control_{label}"] = m0
        with np.errstate(divide="ignore", invalid="ignore"):
            out[f"smd_{label}"] = (m1 - m0) / denom
            vr = _wvar(X[t1], w[t1]) / _wvar(X[t0], w[t0])
        out[f"var_ratio_{label}"] = np.where(binary, np.nan, vr)
        em, ex = np.empty(X.shape[1]), np.empty(X.shape[1])
        for j in range(X.shape[1]):
            if binary[j]:
                em[j] = ex[j] = abs(m1[j] - m0[j])
            else:
                em[j], ex[j] = _ecdf_stats(X[:, j], treat, w)
        out[f"ecdf_mean_{label}"] = em
        out[f"ecdf_max_{label}"] = ex
    if weights is not None:
        out["std_pair_dist_after"] = _pair_dist(X, pairs, denom)
    df = pd.DataFrame(out, index=pd.Index(list(names), name="covariate"))
    df["smd_denominator"] = denom
    return df
