"""Which equity measures can a system's contract detect? Per-system, per-measure detectability.

Input: the stratified quality report a plan already produces, in long format, one row per
system x measure x group with ``system, measure, group, denominator, rate, higher_is_better``
and optionally ``n_practices, icc, rho`` (row values override the function defaults).
Each minority group is compared with ``reference_group`` in the same system and measure.
"""
from __future__ import annotations

import math
import warnings
from numbers import Real

import numpy as np
import pandas as pd

from .._validation import check_scalar
from ..errors import DataError, InferenceWarning, SpecificationError
from ..power.analytic import _ONE_BOUNDARY, _warn_one_boundary, mde_disparity, power_disparity

__all__ = ["detectability", "select_measures", "REQUIRED_COLUMNS"]

REQUIRED_COLUMNS = ("system", "measure", "group", "denominator", "rate", "higher_is_better")


def _validate(baseline: pd.DataFrame) -> pd.DataFrame:
    if not isinstance(baseline, pd.DataFrame):
        raise DataError(f"'baseline' must be a pandas DataFrame in long format with columns {list(REQUIRED_COLUMNS)}.")
    missing = [c for c in REQUIRED_COLUMNS if c not in baseline.columns]
    if missing:
        raise DataError(f"Column(s) {missing} not found in 'baseline'; it needs {list(REQUIRED_COLUMNS)} "
                        "(optional: n_practices, icc, rho).")
    df = baseline.copy()
    for col in ("denominator", "rate"):
        if not pd.api.types.is_numeric_dtype(df[col]):
            raise DataError(f"Column {col!r} must be numeric.")
        n_na = int(df[col].isna().sum())
        if n_na:
            raise DataError(f"Column {col!r}: {n_na} missing value(s); fill or drop those rows.")
    bad = df[(df["rate"] < 0) | (df["rate"] > 1)]
    if len(bad):
        raise DataError(f"Column 'rate': {len(bad)} value(s) outside [0, 1] (e.g. {float(bad['rate'].iloc[0])!r}); rates are "
                        "proportions -- divide percentages by 100.")
    if (df["denominator"] < 0).any():
        raise DataError("Column 'denominator': negative values; denominators are patient counts.")
    dup = df.duplicated(["system", "measure", "group"])
    if dup.any():
        ex = df.loc[dup, ["system", "measure", "group"]].head(3).to_dict("records")
        raise DataError(f"{int(dup.sum())} duplicate (system, measure, group) rows, e.g. {ex}; one row per cell.")
    flag = df["higher_is_better"]
    ok_flag = flag.map(lambda v: isinstance(v, (bool, np.bool_))
                       or (isinstance(v, (int, float, np.integer, np.floating)) and v in (0, 1)))
    if not ok_flag.all():
        ex = flag[~ok_flag].iloc[0]
        raise DataError(f"Column 'higher_is_better' must hold True/False (or 1/0); got {ex!r} in {int((~ok_flag).sum())} "
                        "row(s). A text value such as 'False' would silently count as True and flip the gap's sign: "
                        "convert the column, e.g. df['higher_is_better'] = df['higher_is_better'].map({'True': True, "
                        "'False': False}).")
    df["higher_is_better"] = flag.astype(bool)
    hib = df.groupby(["system", "measure"])["higher_is_better"].nunique()
    if (hib > 1).any():
        raise DataError(f"Column 'higher_is_better' differs within a system x measure: {list(hib[hib > 1].index[:3])}.")
    return df


def _row_or(row, col, default):
    if col in row.index and pd.notna(row[col]):
        return float(row[col])
    return default


def detectability(
    baseline: pd.DataFrame,
    *,
    reference_group: str = "White",
    reduction: float = 0.25,
    alpha: float = 0.05,
    power: float = 0.8,
    alternative: str = "two-sided",
    rho: float = 0.0,
    icc: float = 0.0,
    pre_years: int = 1,
    post_years: int = 1,
    race_accuracy: float | dict | None = None,
    distribution: str = "normal",
    min_denominator: int = 11,
    min_gap: float = 0.005,
    between_system_variance: float | dict | None = None,
    reliability_threshold: float = 0.7,
) -> pd.DataFrame:
    """Per system, measure and minority group: MDE, share of gap, power, precision, reliability, candidate.

    Parameters
    ----------
    baseline : DataFrame
        Long table ``system, measure, group, denominator, rate, higher_is_better`` (+ optional
        ``n_practices, icc, rho``).
    reference_group : str, default="White"
    reduction : float, default=0.25
        Target share of the baseline gap to close over the contract; ``power`` column is the
        power to detect it.
    alpha, power, alternative, rho, icc, pre_years, post_years, distribution
        As in :func:`evalkit.power.mde_disparity` (``rho``/``icc`` are overridden by table columns).
    race_accuracy : float or dict, optional
        Imputed race accuracy of the minority groups (a dict maps group -> accuracy).
    min_denominator : int, default=11
        Small-cell suppression: a group with fewer patients is reported as suppressed and is not a candidate.
    min_gap : float, default=0.005
        Baseline gaps at or below this are "no disparity to close" (share of gap NaN).
    between_system_variance : float or dict, optional
        Signal variance of the true gap across systems (per measure if a dict) for reliability;
        default: the moment estimator ``max(0, var(gap) - mean(SE^2))`` across the table's systems.
    reliability_threshold : float, default=0.7
        Threshold quality programs use for reliability (reported, not a candidacy criterion:
        reliability measures how well *systems are told apart* by their gap, not whether a
        change in one system's gap is detectable).

    Returns
    -------
    DataFrame
        One row per system x measure x minority group with ``baseline_gap_pp, mde_pp,
        share_of_gap, se_pp, precision_pp, power, reliability, candidate, reason``. A row is a
        candidate when the baseline gap is positive (minority disadvantaged) and larger than
        ``min_gap``, no cell is suppressed, and the power to detect ``reduction`` is >= ``power``
        (equivalently the MDE <= ``reduction`` x gap).
    """
    df = _validate(baseline)
    check_scalar(reduction, "reduction", Real, min_val=0, include_min=False)
    check_scalar(min_denominator, "min_denominator", Real, min_val=0)
    check_scalar(reliability_threshold, "reliability_threshold", Real, min_val=0, max_val=1)
    if reference_group not in set(df["group"]):
        raise DataError(f"reference_group={reference_group!r} is not in column 'group' (groups: {sorted(map(str, df['group'].unique()))}).")
    rows = []
    for (system, measure), cell in df.groupby(["system", "measure"], sort=False):
        ref = cell[cell["group"] == reference_group]
        if ref.empty:
            raise DataError(f"System {system!r}, measure {measure!r}: no {reference_group!r} row.")
        ref = ref.iloc[0]
        hib = bool(ref["higher_is_better"])
        for _, row in cell[cell["group"] != reference_group].iterrows():
            out = dict(system=system, measure=measure, group=row["group"], reference_group=reference_group,
                       n_reference=float(ref["denominator"]), n_minority=float(row["denominator"]),
                       rate_reference=float(ref["rate"]), rate_minority=float(row["rate"]), higher_is_better=hib)
            gap = (out["rate_reference"] - out["rate_minority"]) * (1 if hib else -1)
            out["baseline_gap_pp"] = 100 * gap
            n_r, n_m = out["n_reference"], out["n_minority"]
            if min(n_r, n_m) < min_denominator or min(n_r, n_m) <= 0:
                # small-cell suppression: publish neither the small cell's rate nor the gap derived from it
                out.update(mde_pp=np.nan, share_of_gap=np.nan, se_pp=np.nan, precision_pp=np.nan, power=np.nan,
                           gap_se_pp=np.nan, candidate=False, baseline_gap_pp=np.nan,
                           reason=(f"suppressed: denominator < {min_denominator} (small cell)" if min(n_r, n_m) > 0
                                   else "suppressed: empty group (denominator 0)"))
                if n_r < min_denominator or n_r <= 0:
                    out["rate_reference"] = np.nan
                if n_m < min_denominator or n_m <= 0:
                    out["rate_minority"] = np.nan
                rows.append(out)
                continue
            n_prac_r = _row_or(ref, "n_practices", None)
            n_prac_m = _row_or(row, "n_practices", None)
            # each group's patients spread over its practices: own practice sizes (R, M)
            k = (max(1.0, n_r / n_prac_r) if n_prac_r else 1.0, max(1.0, n_m / n_prac_m) if n_prac_m else 1.0)
            rho_i = _row_or(row, "rho", rho)
            icc_i = _row_or(row, "icc", icc)
            ra = race_accuracy.get(row["group"]) if isinstance(race_accuracy, dict) else race_accuracy
            kw = dict(rho=rho_i, icc=icc_i, cluster_size=k, pre_years=pre_years, post_years=post_years,
                      race_accuracy=ra, higher_is_better=hib, alpha=alpha, alternative=alternative,
                      distribution=distribution, min_gap=min_gap)
            with warnings.catch_warnings():  # re-issued below with the system, measure and group
                warnings.filterwarnings("ignore", message=f".*{_ONE_BOUNDARY}", category=InferenceWarning)
                r = mde_disparity(n_r, n_m, out["rate_reference"], out["rate_minority"], power=power, **kw)
            _warn_one_boundary(out["rate_reference"], out["rate_minority"],
                               where=f"System {system!r}, measure {measure!r}, group {row['group']!r} "
                                     f"(reference {reference_group!r}): ")
            pw_ = np.nan
            reasons = [r.reason] if r.reason and (gap <= min_gap or not np.isfinite(r.mde)) else []
            if gap > min_gap:
                try:
                    pw_ = power_disparity(n_r, n_m, out["rate_reference"], out["rate_minority"], reduction=reduction,
                                          **kw).power
                except SpecificationError as exc:  # impossible target, e.g. rate would leave [0, 1]
                    reasons.append(str(exc))
            gap_se = math.sqrt((1 + (k[0] - 1) * icc_i) * out["rate_reference"] * (1 - out["rate_reference"]) / n_r
                               + (1 + (k[1] - 1) * icc_i) * out["rate_minority"] * (1 - out["rate_minority"]) / n_m)
            cand = bool(gap > min_gap and np.isfinite(pw_) and pw_ >= power)
            if gap > min_gap and np.isfinite(pw_) and (not reasons or not np.isfinite(r.mde)):
                reasons.append(f"power {pw_:.2f} to detect a {reduction:.0%} gap reduction "
                               + (">=" if cand else "<") + f" {power:g}"
                               + (f"; MDE = {r.share_of_gap:.2f} of the gap" if np.isfinite(r.mde) else ""))
            out.update(mde_pp=r.mde_pp, share_of_gap=r.share_of_gap, se_pp=r.se_pp, precision_pp=r.precision_pp,
                       power=pw_, gap_se_pp=100 * gap_se, candidate=cand, reason="; ".join(reasons))
            rows.append(out)
    res = pd.DataFrame(rows)
    # reliability of the system-level gap (signal-to-noise across systems)
    res["reliability"] = np.nan
    for (measure, group), sub in res.groupby(["measure", "group"], sort=False):
        ok = sub["gap_se_pp"].notna()
        if isinstance(between_system_variance, dict):
            tau2 = between_system_variance.get(measure, np.nan)
            tau2 = tau2 * 1e4 if np.isfinite(tau2) else tau2
        elif between_system_variance is not None:
            tau2 = float(between_system_variance) * 1e4
        else:
            tau2 = (max(0.0, sub.loc[ok, "baseline_gap_pp"].var(ddof=1) - (sub.loc[ok, "gap_se_pp"] ** 2).mean())
                    if ok.sum() >= 2 else np.nan)
        res.loc[sub.index[ok], "reliability"] = tau2 / (tau2 + sub.loc[ok, "gap_se_pp"] ** 2)
    res["reliable"] = res["reliability"] >= reliability_threshold
    res.attrs["conventions"] = dict(reference_group=reference_group, reduction=reduction, alpha=alpha, power=power,
                                    alternative=alternative, distribution=distribution, min_denominator=min_denominator,
                                    reliability_threshold=reliability_threshold)
    cols = ["system", "measure", "group", "reference_group", "higher_is_better", "n_reference", "n_minority",
            "rate_reference", "rate_minority", "baseline_gap_pp", "mde_pp", "share_of_gap", "se_pp", "precision_pp",
            "power", "gap_se_pp", "reliability", "reliable", "candidate", "reason"]
    return res[cols]


def select_measures(baseline: pd.DataFrame, *, max_measures: int | None = None, **kwargs) -> pd.DataFrame:
    """Rank measures per system by detectability and recommend a set, with reasons.

    A measure is recommended for a system when at least one minority group is a candidate
    (see :func:`detectability`); measures are ranked by the best (smallest) MDE as a share of the
    baseline gap among candidate groups, then by power. ``max_measures`` caps the set per system.
    Keyword arguments go to :func:`detectability`.

    Returns
    -------
    DataFrame
        ``system, measure, rank, recommended, groups, best_group, share_of_gap, power, reason``.
    """
    det = detectability(baseline, **kwargs)
    out = []
    for (system, measure), sub in det.groupby(["system", "measure"], sort=False):
        cand = sub[sub["candidate"]]
        if len(cand):
            best = cand.sort_values(["share_of_gap", "power"], ascending=[True, False]).iloc[0]
            mde_txt = (f"MDE {best['mde_pp']:.2f} pp = {best['share_of_gap']:.2f} of a {best['baseline_gap_pp']:.2f} pp gap"
                       if np.isfinite(best["mde_pp"]) else f"MDE undefined (rates at 0 or 1), {best['baseline_gap_pp']:.2f} pp gap")
            reason = f"detectable for {', '.join(map(str, cand['group']))}; best {best['group']}: {mde_txt}, power {best['power']:.2f}"
            out.append(dict(system=system, measure=measure, recommended=True, groups=", ".join(map(str, cand["group"])),
                            best_group=best["group"], share_of_gap=best["share_of_gap"], power=best["power"], reason=reason))
        else:
            fin = sub[np.isfinite(sub["share_of_gap"].astype(float))]
            best = fin.sort_values("share_of_gap").iloc[0] if len(fin) else sub.iloc[0]
            reason = "not detectable: " + " | ".join(f"{g}: {r}" for g, r in zip(sub["group"], sub["reason"]))
            out.append(dict(system=system, measure=measure, recommended=False, groups="", best_group=best["group"],
                            share_of_gap=best["share_of_gap"], power=best["power"], reason=reason))
    res = pd.DataFrame(out)
    res["_key"] = np.where(res["recommended"], 0, 1)
    res = res.sort_values(["system", "_key", "share_of_gap", "power"], ascending=[True, True, True, False],
                          na_position="last", kind="stable")
    res["rank"] = res.groupby("system").cumcount() + 1
    if max_measures is not None:
        check_scalar(max_measures, "max_measures", int, min_val=1)
        over = res["recommended"] & (res["rank"] > max_measures)
        res.loc[over, "recommended"] = False
        res.loc[over, "reason"] = "detectable, but beyond max_measures=" + str(max_measures) + "; " + res.loc[over, "reason"]
    res = res.drop(columns="_key")
    return res[["system", "measure", "rank", "recommended", "groups", "best_group", "share_of_gap", "power", "reason"]].reset_index(drop=True)
