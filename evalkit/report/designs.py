"""Report designs beyond DiD: staggered adoption (``att_gt``) and equity detectability (``detectability``).

Each design function returns an :class:`~evalkit.results.EffectResult` so that the report's
results.json/csv, HTML tables and figures treat it like any other design:

* ``att_gt``: :func:`evalkit.staggered.att_gt` followed by the requested aggregations; the table
  stacks each aggregation's overall row and components (column ``aggregation``), ``event_frame()``
  returns the dynamic components (with the simultaneous band) for the event-study figure and
  ``pretrend_test`` the Wald test of the pre-treatment cells.
* ``detectability``: :func:`evalkit.equity.detectability` on a baseline table (one row per
  system x measure x group). The tidy rows are the baseline gaps (pp, positive = minority group
  disadvantaged) with normal intervals; the detectability columns (MDE, share of gap, power,
  precision, candidate, reason) travel in the same rows of results.json.
"""
from __future__ import annotations

from dataclasses import dataclass, replace

import numpy as np
import pandas as pd
from scipy import stats

from ..errors import DataError, EvalkitError
from ..results import Conventions, EffectResult, SampleInfo

__all__ = ["att_gt_design", "detectability_design", "StaggeredReportResult", "DetectabilityReportResult",
           "AGGREGATIONS", "DETECTABILITY_COLUMNS"]

AGGREGATIONS = ("simple", "group", "dynamic", "calendar")
DETECTABILITY_COLUMNS = ("system", "measure", "group", "reference_group", "n_reference", "n_minority", "rate_reference",
                         "rate_minority", "baseline_gap_pp", "mde_pp", "share_of_gap", "power", "precision_pp",
                         "reliability", "candidate", "reason")


@dataclass(frozen=True, repr=False)
class StaggeredReportResult(EffectResult):
    """ATT(g,t) aggregations stacked for a report (first row: the first aggregation's overall effect)."""

    def event_frame(self) -> pd.DataFrame:
        """Dynamic-aggregation components (event times), with pointwise and simultaneous intervals."""
        ef = self.extra.get("event_frame")
        if ef is None:
            raise DataError("This att_gt design has no 'dynamic' aggregation; add it to options.aggregations.")
        return ef.copy()

    @property
    def pretrend_test(self) -> dict | None:
        return self.extra.get("pretrend")


def att_gt_design(data: pd.DataFrame, *, outcome: str, unit: str, time: str, cohort: str, cluster=None, weights=None,
                  covariates=(), control: str = "never", method: str = "dr", anticipation: int = 0,
                  base_period: str = "varying", level: float = 0.95, n_boot: int = 999, boot_weights: str = "rademacher",
                  seed=None, dropna: bool = False, aggregations=("simple", "group", "dynamic"), min_e=None, max_e=None,
                  balance_e=None) -> StaggeredReportResult:
    """Callaway-Sant'Anna ATT(g,t) and its aggregations, as one report result (see the module docstring)."""
    from ..staggered import att_gt

    aggs = [aggregations] if isinstance(aggregations, str) else list(aggregations)
    bad = [a for a in aggs if a not in AGGREGATIONS]
    if not aggs or bad:
        raise DataError(f"options.aggregations must list some of {list(AGGREGATIONS)}. Got {aggregations!r}.")
    gt = att_gt(data, outcome=outcome, unit=unit, time=time, cohort=cohort, control=control, method=method,
                covariates=covariates, anticipation=anticipation, base_period=base_period, cluster=cluster,
                weights=weights, level=level, n_boot=n_boot, boot_weights=boot_weights, seed=seed, dropna=dropna)
    frames, event_frame, crit, pre = [], None, {}, None
    for kind in aggs:
        kw = {"max_e": max_e} if kind in ("simple", "group") and max_e is not None else {}
        if kind == "dynamic":
            kw = {k: v for k, v in (("min_e", min_e), ("max_e", max_e), ("balance_e", balance_e)) if v is not None}
        agg = gt.aggregate(kind, **kw)
        fr = agg.to_frame()
        for c in ("cohort", "time", "event_time"):
            if c not in fr.columns:
                fr[c] = pd.NA
            vals = [None if v is None or v is pd.NA or (isinstance(v, float) and v != v) else v for v in fr[c]]
            fr[c] = pd.Series([v if v is None or c == "event_time" else str(v) for v in vals], index=fr.index, dtype=object)
        for c in ("conf_low_simul", "conf_high_simul"):
            if c not in fr.columns:
                fr[c] = np.nan
        fr.insert(1, "aggregation", kind)
        frames.append(fr)
        crit[kind] = agg.extra.get("crit_value")
        if kind == "dynamic":
            event_frame = agg.event_frame()
            pre = _event_time_pretest(agg)
    cols = ["term", "aggregation", "cohort", "time", "event_time", "estimate", "std_error", "statistic", "p_value",
            "conf_low", "conf_high", "conf_low_simul", "conf_high_simul"]
    table = pd.concat([f[cols] for f in frames], ignore_index=True)
    table["event_time"] = pd.array([None if v is None or pd.isna(v) else int(v) for v in table["event_time"]], dtype="Int64")
    if pre is None:
        try:
            w = gt.pretrend_test()
            pre = {"statistic": w.statistic, "df_num": w.df, "p_value": w.p_value, "distribution": f"chi2({w.df})",
                   "description": f"Wald test that all {w.df} pre-treatment ATT(g,t) cells are zero"}
        except EvalkitError:  # no pre-treatment cells
            pre = None
    conv = gt.conventions
    notes = tuple(conv.notes) + (f"Aggregations: {', '.join(aggs)} (R did::aggte definitions); component rows have "
                                 f"pointwise intervals conf_low/conf_high and, when bootstrapped, a simultaneous sup-t "
                                 f"band conf_low_simul/conf_high_simul.",)
    conv = replace(conv, notes=notes)
    return StaggeredReportResult(table=table, vcov=np.full((len(table), len(table)), np.nan), conventions=conv,
                                 sample=gt.sample, extra={"event_frame": event_frame, "pretrend": pre, "crit": crit,
                                                          "n_cells": int(len(gt.table))})


def _event_time_pretest(agg) -> dict | None:
    """Wald test that the pre-entry components (e < 0) of a dynamic aggregation are zero.

    Uses the aggregation's influence-function covariance (clustered as in the fit). Preferred
    over the test of every pre-treatment cell because it has far fewer restrictions: with many
    cells and few clusters the cell-level covariance is nearly singular.
    """
    fr = agg.to_frame()
    e = fr["event_time"]
    pre = (e.notna() & (e.fillna(0) < 0)).to_numpy(dtype=bool)
    if not pre.any():
        return None
    theta = fr["estimate"].to_numpy(dtype=float)[pre]
    V = np.asarray(agg.vcov)[np.ix_(pre, pre)]
    ok = np.isfinite(theta) & np.all(np.isfinite(V), axis=1)
    theta, V = theta[ok], V[np.ix_(ok, ok)]
    if theta.size == 0:
        return None
    rank = int(np.linalg.matrix_rank(V))
    W = float(theta @ np.linalg.pinv(V) @ theta)
    lo, hi = int(e[pre].min()), int(e[pre].max())
    return {"statistic": W, "df_num": rank, "p_value": float(stats.chi2.sf(W, rank)), "distribution": f"chi2({rank})",
            "description": f"Wald test that the {int(pre.sum())} pre-entry event-time effects (e = {lo} to {hi}) of the "
                           f"dynamic aggregation are zero"}


@dataclass(frozen=True, repr=False)
class DetectabilityReportResult(EffectResult):
    """Baseline gaps with detectability columns (see the module docstring)."""

    def detectability_frame(self) -> pd.DataFrame:
        return self.extra["detect"].copy()


def detectability_design(data: pd.DataFrame, *, outcome: str = "rate", reference_group: str = "White",
                         reduction: float = 0.25, alpha: float = 0.05, power: float = 0.8,
                         alternative: str = "two-sided", rho: float = 0.0, icc: float = 0.0, pre_years: int = 1,
                         post_years: int = 1, distribution: str = "normal", min_denominator: int = 11,
                         min_gap: float = 0.005, level: float = 0.95) -> DetectabilityReportResult:
    """:func:`evalkit.equity.detectability` as a report result; ``outcome`` names the rate column."""
    from ..equity import detectability

    base = data
    if outcome != "rate":
        if outcome not in data.columns:
            raise DataError(f"Column {outcome!r} (the rate) not found in the baseline table.")
        base = data.drop(columns=[c for c in ("rate",) if c in data.columns]).rename(columns={outcome: "rate"})
    det = detectability(base, reference_group=reference_group, reduction=reduction, alpha=alpha, power=power,
                        alternative=alternative, rho=rho, icc=icc, pre_years=pre_years, post_years=post_years,
                        distribution=distribution, min_denominator=min_denominator, min_gap=min_gap)
    z = stats.norm.ppf(0.5 + level / 2)
    gap = det["baseline_gap_pp"].to_numpy(float)
    se = det["gap_se_pp"].to_numpy(float)
    with np.errstate(divide="ignore", invalid="ignore"):
        stat = gap / se
    table = pd.DataFrame({
        "term": [f"{s} | {m} | {g} vs {r}" for s, m, g, r in zip(det["system"], det["measure"], det["group"], det["reference_group"])],
        "estimate": gap, "std_error": se, "statistic": stat, "p_value": 2 * stats.norm.sf(np.abs(stat)),
        "conf_low": gap - z * se, "conf_high": gap + z * se,
    })
    for c in DETECTABILITY_COLUMNS:
        if c in det.columns and c not in ("baseline_gap_pp",):
            table[c] = det[c].to_numpy()
    conv = Conventions(
        estimator="Detectability of a change in a disparity (evalkit.equity.detectability)",
        vcov_type="analytic",
        vcov_description=("rows: baseline gap (pp; positive = minority group disadvantaged) with a normal interval from the "
                          "unpooled binomial SE; MDE and power from the planning variance of the difference-in-differences "
                          "of gaps (docs/equity.md)"),
        distribution="normal" if distribution == "normal" else "t (Satterthwaite)",
        df=None, level=level,
        notes=(f"Target: close {reduction:.0%} of the baseline gap; alpha {alpha:g} ({alternative}); power {power:g}; "
               f"{pre_years} baseline and {post_years} contract year(s) pooled; reference group {reference_group!r}.",
               f"Candidate: baseline gap > {100 * min_gap:g} pp, no group below {min_denominator} patients (suppressed), "
               f"power >= {power:g} at the target. Reliability (how well systems are told apart) is reported, not used."),
    )
    sample = SampleInfo(n_obs=int(len(data)), n_input_rows=int(len(data)))
    return DetectabilityReportResult(table=table, vcov=np.diag(se ** 2), conventions=conv, sample=sample,
                                     extra={"detect": det, "options": {"reference_group": reference_group, "alpha": alpha,
                                                                       "power": power, "alternative": alternative,
                                                                       "rho": rho, "icc": icc, "pre_years": pre_years,
                                                                       "post_years": post_years,
                                                                       "distribution": distribution,
                                                                       "min_denominator": min_denominator,
                                                                       "min_gap": min_gap}})
