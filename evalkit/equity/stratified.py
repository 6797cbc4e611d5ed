"""Quality measures by race/ethnicity with confidence intervals and small-cell suppression."""
from __future__ import annotations

from numbers import Real

import numpy as np
import pandas as pd
from scipy import stats

from .._validation import check_columns_arg, check_scalar
from ..errors import DataError, SpecificationError

__all__ = ["stratified_gaps"]


def stratified_gaps(
    data: pd.DataFrame,
    outcome: str,
    group: str,
    *,
    system: str | None = None,
    reference: str = "White",
    higher_is_better: bool = True,
    level: float = 0.95,
    min_denominator: int = 11,
) -> pd.DataFrame:
    r"""Rates by group (Wilson CIs) and gaps vs ``reference`` (Wald CIs), per system.

    Parameters
    ----------
    data : DataFrame
        One row per eligible patient; ``outcome`` is 0/1 (or boolean).
    outcome, group : str
        Column names of the binary measure and the race/ethnicity group.
    system : str, optional
        Column identifying the system (one table per system, stacked).
    reference : str, default="White"
    higher_is_better : bool, default=True
        Gaps are oriented so that positive = the group is disadvantaged relative to ``reference``.
    level : float, default=0.95
    min_denominator : int, default=11
        Cells with fewer patients are suppressed (rate, CI and gap set to NaN, ``suppressed=True``).

    Returns
    -------
    DataFrame
        ``[system,] group, denominator, numerator, rate, conf_low, conf_high, gap, gap_se,
        gap_conf_low, gap_conf_high, suppressed``. The gap's SE is the unpooled
        :math:`\sqrt{p_r(1-p_r)/n_r + p_g(1-p_g)/n_g}` (patients independent).
    """
    if not isinstance(data, pd.DataFrame):
        raise DataError("'data' must be a pandas DataFrame with one row per eligible patient.")
    cols = [outcome, group, *check_columns_arg(system, "system")]
    for c in cols:
        if c not in data.columns:
            raise DataError(f"Column {c!r} not found in data.")
    check_scalar(level, "level", float, min_val=0, max_val=1, include_min=False, include_max=False)
    check_scalar(min_denominator, "min_denominator", Real, min_val=0)
    if not isinstance(higher_is_better, (bool, np.bool_)):
        raise SpecificationError(f"The 'higher_is_better' parameter must be True or False. Got {higher_is_better!r} instead "
                                 "(a text value would silently flip the sign of every gap).")
    y = data[outcome]
    if y.isna().any():
        raise DataError(f"Column {outcome!r}: {int(y.isna().sum())} missing value(s); drop ineligible patients first.")
    y = y.astype(float)
    if not np.isin(y.to_numpy(), (0.0, 1.0)).all():
        raise DataError(f"Column {outcome!r} must be binary (0/1 or boolean).")
    if data[group].isna().any():
        raise DataError(f"Column {group!r}: {int(data[group].isna().sum())} missing value(s); code them (e.g. 'Unknown').")
    keys = [system] if system else []
    d = data[keys + [group]].copy()
    d["_y"] = y.to_numpy()
    tab = d.groupby(keys + [group], sort=True, observed=True)["_y"].agg(denominator="count", numerator="sum").reset_index()
    z = stats.norm.isf((1 - level) / 2)
    n, x = tab["denominator"].astype(float), tab["numerator"].astype(float)
    p = x / n
    centre = (p + z**2 / (2 * n)) / (1 + z**2 / n)
    half = z * np.sqrt(p * (1 - p) / n + z**2 / (4 * n**2)) / (1 + z**2 / n)
    tab["rate"], tab["conf_low"], tab["conf_high"] = p, centre - half, centre + half
    tab["suppressed"] = tab["denominator"] < min_denominator
    sgn = 1.0 if higher_is_better else -1.0
    parts = []
    for _, sub in (tab.groupby(keys, sort=True) if keys else [(None, tab)]):
        sub = sub.copy()
        ref = sub[sub[group] == reference]
        if ref.empty or bool(ref["suppressed"].iloc[0]):
            sub["gap"] = sub["gap_se"] = np.nan
        else:
            pr, nr = float(ref["rate"].iloc[0]), float(ref["denominator"].iloc[0])
            sub["gap"] = sgn * (pr - sub["rate"])
            sub["gap_se"] = np.sqrt(pr * (1 - pr) / nr + sub["rate"] * (1 - sub["rate"]) / sub["denominator"])
            sub.loc[sub[group] == reference, ["gap", "gap_se"]] = np.nan
        parts.append(sub)
    out = pd.concat(parts, ignore_index=True)
    out["gap_conf_low"] = out["gap"] - z * out["gap_se"]
    out["gap_conf_high"] = out["gap"] + z * out["gap_se"]
    sup = out["suppressed"]
    out.loc[sup, ["numerator", "rate", "conf_low", "conf_high", "gap", "gap_se", "gap_conf_low", "gap_conf_high"]] = np.nan
    out.attrs["conventions"] = dict(reference=reference, higher_is_better=higher_is_better, level=level,
                                    min_denominator=min_denominator, rate_ci="Wilson", gap_ci="Wald (unpooled)")
    return out[keys + [group, "denominator", "numerator", "rate", "conf_low", "conf_high", "gap", "gap_se",
                       "gap_conf_low", "gap_conf_high", "suppressed"]]
