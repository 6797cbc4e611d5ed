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
* ``match`` / ``stratified_gaps``: :mod:`evalkit.matching` (MatchIt conventions) and
  :func:`evalkit.equity.stratified_gaps`.
* ``palliative``: :func:`evalkit.palliative.palliative_evaluation` (index-date matched PMPM
  savings in the last months of life) with the ACO net benefit and its one-way sensitivity.
"""
from __future__ import annotations

from dataclasses import dataclass, replace

import numpy as np
import pandas as pd
from scipy import stats

from ..errors import DataError, EvalkitError
from ..results import Conventions, EffectResult, SampleInfo

__all__ = ["att_gt_design", "detectability_design", "match_design", "stratified_gaps_design", "palliative_design",
           "plot_gaps", "StaggeredReportResult", "DetectabilityReportResult", "MatchReportResult", "GapsReportResult",
           "PalliativeReportResult",
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


# ----------------------------------------------------------------------------------------------
# matching (evalkit.matching: MatchIt conventions)

SMD_DENOMINATOR = {
    "ATT": "the treated group's SD in the unmatched, unweighted sample (MatchIt; n - 1 variance), the same before and after",
    "ATE": "the pooled SD sqrt((s_t^2 + s_c^2)/2) in the unmatched sample, the same before and after",
    "ATO": "the pooled SD sqrt((s_t^2 + s_c^2)/2) in the unmatched sample, the same before and after",
}


@dataclass(frozen=True, repr=False)
class MatchReportResult(EffectResult):
    """ATT of each outcome on a matched sample; the :class:`~evalkit.matching.MatchResult` is in ``extra["match"]``."""

    @property
    def match(self):
        return self.extra["match"]

    def report_details(self) -> dict:
        """Sample sizes, balance table and matching options for results.json and the HTML report."""
        return _match_details(self.match, self.extra.get("se_all", {}))


def _match_details(m, se_all: dict) -> dict:
    ss = m.sample_sizes().reset_index(names="sample")
    bal = m.balance().reset_index(names="covariate")
    opts = {k: v for k, v in m.options.items()}
    opts.update(method=m.method, estimand=m.estimand)
    return {
        "sample_sizes": ss.to_dict("records"),
        "balance": bal.to_dict("records"),
        "smd_denominator": (f"SMD = (weighted mean treated - weighted mean control) / s, s = "
                            f"{SMD_DENOMINATOR.get(m.estimand, SMD_DENOMINATOR['ATE'])}; binary (0/1) covariates use "
                            f"s = sqrt(p(1 - p)). Column smd_denominator holds s."),
        "balance_notes": ("Variance ratio (treated / control, weighted variances) for continuous covariates only; "
                          "eCDF mean/max over the distinct covariate values; std. pair distance = mean |x_t - x_c| "
                          "over matched pairs / s. Row 'distance' is the propensity score (probability scale)."),
        "matching": opts,
        "match_notes": list(m.notes),
        "se_all": se_all,
    }


def match_design(data: pd.DataFrame, *, outcome: str, treatment: str, covariates, outcomes=(), method: str = "nearest",
                 distance="logit", estimand: str = "ATT", ratio: int = 1, replace: bool = False, caliper=None,
                 std_caliper: bool = True, exact=None, m_order=None, discard: str = "none", seed=None, pre=None,
                 vcov: str = "auto", level: float = 0.95) -> MatchReportResult:
    """:func:`evalkit.matching.match` then :func:`evalkit.matching.estimate_effect` for ``outcome``
    and each of ``outcomes``; one row per outcome (term ``ATT``, or ``ATT (outcome)`` with several)."""
    from ..matching import estimate_effect, match

    extra_outcomes = [outcomes] if isinstance(outcomes, str) else list(outcomes or ())
    ys = list(dict.fromkeys([outcome, *extra_outcomes]))
    missing = [y for y in ys if y not in data.columns]
    if missing:
        raise DataError(f"Outcome column(s) {missing} not found in data.")
    covs = [covariates] if isinstance(covariates, str) else list(covariates)
    m = match(data, treatment=treatment, covariates=covs, method=method, distance=distance, estimand=estimand,
              ratio=ratio, replace=replace, caliper=caliper, std_caliper=std_caliper, exact=exact, m_order=m_order,
              discard=discard, seed=seed)
    fits = [estimate_effect(m, y, pre=pre, vcov=vcov, level=level) for y in ys]
    frames = []
    for y, r in zip(ys, fits):
        fr = r.to_frame().copy()
        if len(ys) > 1:
            fr["term"] = [f"{t} ({y})" for t in fr["term"]]
        fr.insert(1, "outcome", y)
        frames.append(fr)
    table = pd.concat(frames, ignore_index=True)
    first = fits[0]
    conv = first.conventions
    notes = tuple(conv.notes) + (
        f"Matching: method {m.method}, {m.options.get('distance_label') or distance}, estimand {m.estimand}; "
        f"ratio {m.options.get('ratio')}, replace {m.options.get('replace')}, caliper {m.options.get('caliper')}"
        + (f" (width {m.options['caliper_width']:.6g} on the distance)" if m.options.get("caliper_width") is not None else "")
        + (f", exact on {list(m.options['exact'])}" if m.options.get("exact") else "") + ".",
    ) + ((f"Outcomes: {', '.join(ys)} (one ATT each, same matched sample and SE type)",) if len(ys) > 1 else ())
    conv = replace_conv(conv, notes=notes, seed=seed if isinstance(seed, (int, np.integer)) else None)
    V = np.diag(table["std_error"].to_numpy(float) ** 2)
    se_all = {y: r.extra.get("se_all", {}) for y, r in zip(ys, fits)}
    return MatchReportResult(table=table, vcov=V, conventions=conv, sample=first.sample,
                             extra={"match": m, "se_all": se_all, "outcomes": ys})


def replace_conv(conv: Conventions, **kw) -> Conventions:
    return replace(conv, **kw)


def _match_check(data: pd.DataFrame, d: dict, roles: dict) -> tuple[str, dict, list[str]]:
    """Data contract of the match design: one row per unit, binary treatment, covariates and outcomes present."""
    treat, covs = roles.get("treatment"), roles.get("covariates") or []
    outcomes = [d["outcome"]] + list(np.atleast_1d(d["options"].get("outcomes") or []))
    exact = d["options"].get("exact") or []
    wanted = [("treatment", treat)] + [("covariate", c) for c in covs] + [("outcome", y) for y in outcomes] \
        + [("exact", c) for c in ([exact] if isinstance(exact, str) else exact)]
    missing = [f"{c!r} (the {r})" for r, c in wanted if c not in data.columns]
    if missing:
        raise DataError(f"Column(s) not found in data: {', '.join(dict.fromkeys(missing))}. "
                        f"Available columns: {[str(c) for c in data.columns][:30]}.")
    t = data[treat]
    if t.isna().any() or not set(pd.unique(t.astype(float))) <= {0.0, 1.0}:
        raise DataError(f"Treatment column {treat!r} must be 0/1 (or boolean) without missing values.")
    n_t, n_c = int((t.astype(float) == 1).sum()), int((t.astype(float) == 0).sum())
    if n_t == 0 or n_c == 0:
        raise DataError(f"Treatment column {treat!r} needs both treated (1) and control (0) units; got {n_t} / {n_c}.")
    miss = {c: int(data[c].isna().sum()) for c in covs if data[c].isna().any()}
    if miss:
        raise DataError(f"Covariate(s) with missing values: {miss}. Impute or drop those rows before matching "
                        f"(evalkit does not drop them silently).")
    warns = []
    for y in outcomes:
        k = int(data[y].isna().sum())
        if k:
            warns.append(f"Outcome {y!r}: {k} missing value(s) (an error if any falls among the matched units).")
    return (f"{len(data):,} units: {n_t:,} treated, {n_c:,} control; {len(covs)} covariate(s)",
            {"n_obs": int(len(data)), "n_treated": n_t, "n_control": n_c, "n_covariates": len(covs)}, warns)


# ----------------------------------------------------------------------------------------------
# stratified rates and gaps (evalkit.equity.stratified_gaps)


@dataclass(frozen=True, repr=False)
class GapsReportResult(EffectResult):
    """Gaps vs the reference group (pp) per system and group; all rates in ``extra["rates"]``."""

    def rates_frame(self) -> pd.DataFrame:
        return self.extra["rates"].copy()

    def report_details(self) -> dict:
        return {"rates": self.extra["rates"].to_dict("records"), "options": dict(self.extra["options"])}


def stratified_gaps_design(data: pd.DataFrame, *, outcome: str, group: str = "race_eth", system=None,
                           reference: str = "White", higher_is_better: bool = True, level: float = 0.95,
                           min_denominator: int = 11, dropna: bool = False) -> GapsReportResult:
    """Rates (Wilson CIs, %) and gaps vs ``reference`` (Wald CIs, pp) by ``group`` within each ``system``.

    Cells with fewer than ``min_denominator`` patients are suppressed: rate, CI, gap and the
    numerator and denominator themselves are withheld (null) in every output.
    ``dropna=True`` excludes rows with a missing outcome (not eligible), counted in the sample.
    """
    from ..equity import stratified_gaps

    for c in [outcome, group] + ([system] if system else []):
        if c not in data.columns:
            raise DataError(f"Column {c!r} not found in data.")
    n_in = len(data)
    frame = data
    dropped = ()
    if dropna:
        keep = data[outcome].notna().to_numpy()
        frame = data.loc[keep]
        if (~keep).any():
            from ..data.schema import DropRecord

            dropped = (DropRecord(f"missing {outcome!r} (not eligible)", int((~keep).sum()), ""),)
    frame = frame.assign(**{group: frame[group].astype(str)})
    if system:
        frame = frame.assign(**{system: frame[system].astype(str)})
    tab = stratified_gaps(frame, outcome, group, system=system, reference=reference, higher_is_better=higher_is_better,
                          level=level, min_denominator=min_denominator)
    sys_col = tab[system].astype(str) if system else pd.Series(["all"] * len(tab))
    sup = tab["suppressed"].to_numpy(bool)
    rates = pd.DataFrame({
        "system": sys_col.to_numpy(), "group": tab[group].astype(str).to_numpy(),
        "denominator": pd.array([None if s else int(n) for s, n in zip(sup, tab["denominator"])], dtype="Int64"),
        "numerator": pd.array([None if s else int(x) for s, x in zip(sup, tab["numerator"].fillna(0))], dtype="Int64"),
        "rate_pct": 100 * tab["rate"].to_numpy(float), "conf_low_pct": 100 * tab["conf_low"].to_numpy(float),
        "conf_high_pct": 100 * tab["conf_high"].to_numpy(float), "gap_pp": 100 * tab["gap"].to_numpy(float),
        "gap_conf_low_pp": 100 * tab["gap_conf_low"].to_numpy(float),
        "gap_conf_high_pp": 100 * tab["gap_conf_high"].to_numpy(float), "suppressed": sup,
        "reference": (tab[group].astype(str) == reference).to_numpy(),
    })
    g = rates.loc[~rates["reference"]].reset_index(drop=True)
    se = 100 * tab.loc[~rates["reference"].to_numpy(), "gap_se"].to_numpy(float)
    z = stats.norm.isf((1 - level) / 2)
    with np.errstate(divide="ignore", invalid="ignore"):
        stat = g["gap_pp"].to_numpy(float) / se
    table = pd.DataFrame({
        "term": [f"{s} | {grp} vs {reference}" for s, grp in zip(g["system"], g["group"])],
        "estimate": g["gap_pp"].to_numpy(float), "std_error": se, "statistic": stat,
        "p_value": 2 * stats.norm.sf(np.abs(stat)), "conf_low": g["gap_pp"].to_numpy(float) - z * se,
        "conf_high": g["gap_pp"].to_numpy(float) + z * se,
        "system": g["system"].to_numpy(), "group": g["group"].to_numpy(), "rate_pct": g["rate_pct"].to_numpy(float),
        "denominator": g["denominator"], "suppressed": g["suppressed"].to_numpy(bool),
    })
    orient = "reference rate - group rate" if higher_is_better else "group rate - reference rate"
    conv = Conventions(
        estimator=f"Stratified rates and gaps by {group} (evalkit.equity.stratified_gaps)",
        vcov_type="analytic",
        vcov_description=(f"gap (pp) = {orient}, positive = group disadvantaged; Wald interval with the unpooled SE "
                          f"sqrt(p_r(1-p_r)/n_r + p_g(1-p_g)/n_g); rates (%) with Wilson score intervals; rows treated "
                          f"as independent patients"),
        distribution="normal", df=None, level=level,
        notes=(f"Reference group {reference!r}; systems by {system!r}." if system else f"Reference group {reference!r}; one system (all rows).",
               f"Small-cell suppression: cells with fewer than {min_denominator} patients show no rate, CI, gap, numerator "
               f"or denominator; a suppressed reference group suppresses every gap of its system."),
    )
    sample = SampleInfo(n_obs=int(len(frame)), n_input_rows=int(n_in), dropped=dropped)
    return GapsReportResult(table=table, vcov=np.diag(np.where(np.isfinite(se), se, np.nan) ** 2), conventions=conv,
                            sample=sample, extra={"rates": rates, "options": {
                                "group": group, "system": system, "reference": reference,
                                "higher_is_better": higher_is_better, "level": level, "min_denominator": min_denominator}})


def plot_gaps(result: GapsReportResult, *, systems=None, title=None, max_systems: int = 8, ax=None):
    """Gap (pp, 95% CI) by group, one colour per system; suppressed cells are labelled. Returns the Axes."""
    from ..plots.style import PALETTE, color_cycle, finish_axes, house_style, new_axes

    rates = result.rates_frame()
    rates = rates.loc[~rates["reference"]]
    all_sys = list(dict.fromkeys(rates["system"]))
    chosen = [str(s) for s in systems] if systems else all_sys[:max_systems]
    unknown = [s for s in chosen if s not in all_sys]
    if unknown:
        raise DataError(f"Gap figure: system(s) {unknown} not in the table (systems: {all_sys[:20]}).")
    groups = list(dict.fromkeys(rates["group"]))
    k = len(chosen)
    with house_style():
        ax = new_axes(ax, figsize=(6.4, 0.45 * len(groups) * max(1, k) ** 0.5 + 1.5))
        colors = color_cycle(k)
        yy = np.arange(len(groups))[::-1].astype(float)
        off = np.linspace(-0.3, 0.3, k) if k > 1 else np.zeros(1)
        for j, s in enumerate(chosen):
            sub = rates.loc[rates["system"] == s].set_index("group")
            for i, grp in enumerate(groups):
                if grp not in sub.index:
                    continue
                r = sub.loc[grp]
                y = yy[i] - off[j]  # first system on top
                if bool(r["suppressed"]) or not np.isfinite(r["gap_pp"]):
                    ax.annotate("suppressed", (0, y), fontsize=7, color="#777777", va="center", ha="left",
                                xytext=(3, 0), textcoords="offset points")
                    continue
                ax.plot([r["gap_conf_low_pp"], r["gap_conf_high_pp"]], [y, y], color=colors[j], linewidth=1.4)
                ax.plot([r["gap_pp"]], [y], "o", color=colors[j])
        handles = [ax.plot([], [], "o-", color=colors[j])[0] for j in range(k)]
        if k > 1:
            ax.legend(handles, chosen, title=result.extra["options"]["system"] or None, loc="best")
        ax.axvline(0, color=PALETTE["black"], linewidth=0.8)
        ax.set_yticks(yy)
        ax.set_yticklabels(groups)
        ax.set_ylim(-0.6, len(groups) - 0.4)
        ref = result.extra["options"]["reference"]
        finish_axes(ax, title=title, xlabel=f"Gap vs {ref} (percentage points, {result.conventions.level:.0%} CI; "
                                              f"positive = group disadvantaged)")
        ax.grid(True, axis="x", color="#d9d9d9", linewidth=0.6)
    return ax


# ----------------------------------------------------------------------------------------------
# home palliative care (evalkit.palliative): index-date matched PMPM savings and ACO net benefit

PALLIATIVE_TERMS = ("PMPM (member-month)", "PMPM (patient average)", "PMPM (matched DiD)", "Total per patient")
NET_BENEFIT_TERM = "Net benefit per patient (ACO)"


@dataclass(frozen=True, repr=False)
class PalliativeReportResult(EffectResult):
    """Matched PMPM effects (negative = savings) and, with a program cost, the ACO net benefit.

    ``extra["evaluation"]`` is the :class:`~evalkit.palliative.PalliativeEvaluation`;
    ``extra["net"]`` the :class:`~evalkit.palliative.NetBenefitResult` (or None) and
    ``extra["sensitivity"]`` its one-way sensitivity table.
    """

    @property
    def evaluation(self):
        return self.extra["evaluation"]

    @property
    def match(self):
        return self.extra["evaluation"].matched

    def report_details(self) -> dict:
        out = _match_details(self.match, {})
        ev = self.evaluation
        net, sens = self.extra["net"], self.extra["sensitivity"]
        out["index_design"] = dict(self.extra["index_design"])
        out["months_enrolled"] = ev.months_enrolled
        out["net_benefit"] = None
        if net is not None:
            comp = net.components.iloc[0].to_dict()
            out["net_benefit"] = {"estimate": net.estimate, "std_error": net.std_error, "conf_low": net.conf_low,
                                  "conf_high": net.conf_high, "method": net.method, "level": net.level,
                                  "components": comp,
                                  "params": {k: v for k, v in net.params.items() if k != "savings_source"},
                                  "notes": list(net.notes)}
        out["sensitivity"] = sens.to_dict("records") if sens is not None else []
        out["sensitivity_summary"] = self.extra["sensitivity_summary"]
        return out

    def truth_terms(self, truth) -> dict | None:
        """Planted effects (simulate_palliative) on the matched enrolled patients, by term."""
        if not all(hasattr(truth, a) for a in ("pmpm", "pmpm_patient", "total_per_patient")):
            return None
        ids = self.extra["treated_ids"]
        terms = {"PMPM (member-month)": truth.pmpm(ids), "PMPM (patient average)": truth.pmpm_patient(ids),
                 "PMPM (matched DiD)": truth.pmpm_patient(ids), "Total per patient": truth.total_per_patient(ids)}
        return {"description": ("planted effects of simulate_palliative on the matched enrolled patients: member-month "
                                "PMPM = total effect / program months; patient average and matched DiD = mean per-patient "
                                "PMPM effect; total = mean effect over program months (negative = savings). The net "
                                "benefit depends on the contract terms and has no planted value"),
                "terms": {k: float(v) for k, v in terms.items()}}


def palliative_design(data: pd.DataFrame, *, outcome: str = "spending", unit: str = "patient_id",
                      time: str = "months_before_death", treatment: str = "enrolled", covariates=None,
                      index: str = "enroll_month", pre_covariates=None, components=None, window: int = 6,
                      lookback: int = 6, by=None, caliper=0.2, ratio: int = 1, propensity: str = "by_index",
                      program_cost=None, program_cost_se: float = 0.0, ffs_share: float = 0.5, payer_share: float = 0.5,
                      min_savings_rate=None, benchmark_pmpm=None, net_benefit_method: str = "auto", n_draws: int = 10_000,
                      sensitivity=None, level: float = 0.95, seed=None) -> PalliativeReportResult:
    """Index-date matched evaluation of home palliative care (:func:`evalkit.palliative.palliative_evaluation`).

    Rows: member-month PMPM effect (ATT on post-index total spending / mean program months of the
    matched enrolled patients; the headline), patient-average PMPM, matched DiD on PMPM, total per
    patient (all negative = savings, pair-clustered CR1 SEs, t(n - 2)) and, with ``program_cost``,
    the ACO net benefit per enrolled patient (:func:`evalkit.palliative.net_benefit` of the
    member-month savings; delta-method interval unless a minimum savings rate makes it simulate).
    ``sensitivity`` maps contract terms (payer_share, months_enrolled, program_cost, ffs_share) to
    value grids for the one-way sensitivity table (default grids of
    :func:`evalkit.palliative.net_benefit_sensitivity`).

    ``covariates`` default to the simulated cohort's baseline columns; ``components`` to
    ``spend_inpatient, spend_hospice, spend_other`` when present (else none); ``pre_covariates``
    to the pre-index PMPM of the outcome and of every component but the last (collinear with
    their sum).
    """
    from .. import palliative as pal

    covs = list(pal.DEFAULT_COVARIATES) if covariates is None else ([covariates] if isinstance(covariates, str) else list(covariates))
    if components is None:
        comps = [c for c in pal.COMPONENTS if c in data.columns] if outcome == "spending" else []
    else:
        comps = [components] if isinstance(components, str) else list(components)
    if pre_covariates is None:
        pre = ["pre_pmpm"] + [f"pre_{c}_pmpm" for c in comps[:-1]]
    else:
        pre = [pre_covariates] if isinstance(pre_covariates, str) else list(pre_covariates)
    _choice(net_benefit_method, "net_benefit_method", ("auto", "delta", "simulation"))
    ev = pal.palliative_evaluation(data, unit=unit, time=time, treatment=treatment, index=index, covariates=covs,
                                   pre_covariates=pre, outcome=outcome, components=comps, window=window,
                                   lookback=lookback, by=by, caliper=caliper, ratio=ratio, propensity=propensity,
                                   level=level, seed=seed)
    fits = dict(zip(PALLIATIVE_TERMS, (ev.pmpm, ev.pmpm_patient, ev.did, ev.total)))
    rows = []
    for term, r in fits.items():
        fr = r.to_frame().iloc[[0]].copy()
        fr["term"] = term
        fr["df"] = r.conventions.df
        rows.append(fr)
    table = pd.concat(rows, ignore_index=True)
    se = list(table["std_error"].to_numpy(float))
    m_months = float(ev.months_enrolled)
    net = sens = None
    summary: list[dict] = []
    if program_cost is not None:
        net = pal.net_benefit(ev.pmpm, months_enrolled=m_months, program_cost=program_cost, ffs_share=ffs_share,
                              payer_share=payer_share, min_savings_rate=min_savings_rate, benchmark_pmpm=benchmark_pmpm,
                              program_cost_se=program_cost_se, method=net_benefit_method, n_draws=n_draws, level=level,
                              seed=seed)
        if net.method == "delta" and net.std_error > 0:
            stat = net.estimate / net.std_error
            pv = float(2 * stats.norm.sf(abs(stat)))
        else:
            stat = pv = np.nan
        table = pd.concat([table, pd.DataFrame({"term": [NET_BENEFIT_TERM], "estimate": [net.estimate],
                                                "std_error": [net.std_error], "statistic": [stat], "p_value": [pv],
                                                "conf_low": [net.conf_low], "conf_high": [net.conf_high],
                                                "df": [np.nan]})], ignore_index=True)
        se.append(net.std_error)
        vary = None
        if sensitivity is not None:
            if not isinstance(sensitivity, dict) or not sensitivity:
                raise DataError(f"options.sensitivity must map contract terms to lists of values. Got {sensitivity!r}.")
            vary = {k: [float(x) for x in (v if isinstance(v, (list, tuple)) else [v])] for k, v in sensitivity.items()}
        sens = pal.net_benefit_sensitivity(ev.pmpm, months_enrolled=m_months, program_cost=float(program_cost),
                                           ffs_share=ffs_share, payer_share=payer_share, vary=vary, level=level)
        base = {"savings_pmpm": -ev.pmpm.estimate, "months_enrolled": m_months, "program_cost": float(program_cost),
                "ffs_share": float(ffs_share), "payer_share": float(payer_share)}
        for prm, g in sens.groupby("parameter", sort=False):
            g = g.sort_values("value")
            try:
                be = pal.solve_net_benefit(0.0, solve_for=prm, **{k: v for k, v in base.items() if k != prm})
            except (ZeroDivisionError, FloatingPointError):
                be = None
            summary.append({"parameter": prm, "base": base[prm], "value_low": float(g["value"].iloc[0]),
                            "net_benefit_low": float(g["net_benefit"].iloc[0]), "value_high": float(g["value"].iloc[-1]),
                            "net_benefit_high": float(g["net_benefit"].iloc[-1]),
                            "break_even": be if be is None or np.isfinite(be) else None})
    m = ev.matched
    treated = m.matched & (m.treat == 1)
    ids = ev.frame.loc[treated, unit].tolist()
    conv0 = ev.pmpm.conventions
    c = m.options.get("caliper")
    notes = (
        "Negative effects are lower spending (savings). Outcome "
        f"{outcome!r} per month, from the index month to death within the last {window} months of life.",
        f"Index-date design: enrolled patients' index is the enrollment month ({index!r}, months before death); "
        f"controls get a pseudo-enrollment month drawn from the enrolled patients' months"
        + (f" within strata of {by!r}" if by else "") + f" (seed {seed!r}). Matching covariates are measured before the "
        f"index only (baseline {', '.join(covs)}; pre-index {', '.join(pre)} over the {lookback} months before the index).",
        f"Matching: nearest neighbour 1:{ratio} without replacement on a logit propensity score "
        f"({'fitted within each index month' if propensity == 'by_index' else 'pooled, index month as a covariate'}), "
        f"caliper {c if c is not None else 'none'}" + (" SD of the score" if c is not None else "")
        + ", exact on the index month. SEs: cluster-robust by matched pair (CR1, sandwich::vcovCL), t(n - 2), the "
        "propensity score treated as known (MatchIt's guidance). Estimand: ATT on the matched enrolled patients.",
        f"PMPM (member-month) = ATT on post-index total spending / mean program months of the matched enrolled "
        f"({m_months:.4g}); its product with the months is the gross savings per patient. PMPM (patient average) "
        f"weights patients equally; PMPM (matched DiD) is the ATT on post-index minus pre-index PMPM.",
    )
    if net is not None:
        notes += (f"{NET_BENEFIT_TERM} = (1 - payer share) x savings PMPM x months - program cost x (1 - FFS share) "
                  f"with savings = -PMPM (member-month), months {m_months:.4g}, program cost {float(program_cost):g}, FFS "
                  f"share {ffs_share:g}, payer share {payer_share:g}"
                  + (f", minimum savings rate {min_savings_rate:g} of {benchmark_pmpm:g} PMPM" if min_savings_rate is not None else "")
                  + "; interval: " + ("delta method (normal)" if net.method == "delta" else
                                                     f"simulation ({n_draws} draws, percentile, seed {seed!r})") + ".",)
    else:
        notes += ("No program cost given (options.program_cost): the ACO net benefit is not computed.",)
    conv = replace(conv0, estimator="Home palliative care: index-date matched evaluation (evalkit.palliative)",
                   notes=tuple(conv0.notes[:-1]) + notes, seed=seed if isinstance(seed, (int, np.integer)) else None)
    V = np.diag(np.asarray(se, float) ** 2)
    sample = replace(ev.pmpm.sample, n_input_rows=int(len(ev.frame)))
    index_design = {"unit": unit, "time": time, "treatment": treatment, "index": index, "window": window,
                    "lookback": lookback, "by": by, "covariates": covs, "pre_covariates": pre, "components": comps,
                    "propensity": propensity, "n_patients": int(len(ev.frame)), "n_patient_months": int(len(data)),
                    "n_enrolled": int(ev.frame[treatment].astype(int).sum())}
    return PalliativeReportResult(table=table, vcov=V, conventions=conv, sample=sample,
                                  extra={"evaluation": ev, "net": net, "sensitivity": sens, "sensitivity_summary": summary,
                                         "treated_ids": ids, "index_design": index_design})


def _choice(value, name: str, allowed) -> str:
    if value not in allowed:
        raise DataError(f"options.{name} must be one of {list(allowed)}. Got {value!r}.")
    return value


def _palliative_check(data: pd.DataFrame, d: dict, roles: dict) -> tuple[str, dict, list[str]]:
    """Data contract of the palliative design: the per-patient analysis frame can be built.

    Runs :func:`evalkit.palliative.analysis_frame` (columns present, baseline columns constant
    within patient, 0/1 enrollment with both groups, valid index months for the enrolled, whole
    months before death, no duplicate patient-months, every month of the look-back and outcome
    windows present).
    """
    from .. import palliative as pal

    o = d["options"]
    unit = roles.get("unit", "patient_id")
    treat = roles.get("treatment", "enrolled")
    covs = roles.get("covariates") or list(pal.DEFAULT_COVARIATES)
    comps = o.get("components")
    if comps is None:
        comps = [c for c in pal.COMPONENTS if c in data.columns] if d["outcome"] == "spending" else []
    frame, _ = _prepare_plain(data, d)
    fr = pal.analysis_frame(frame, unit=unit, time=roles.get("time", "months_before_death"), treatment=treat,
                            index=o.get("index", "enroll_month"), covariates=covs, outcome=d["outcome"],
                            components=comps, window=o.get("window", 6), lookback=o.get("lookback", 6),
                            by=o.get("by"), seed=o.get("seed"))
    n_t = int(fr[treat].astype(int).sum())
    summ = {"n_obs": int(len(frame)), "n_units": int(len(fr)), "n_treated": n_t, "n_control": int(len(fr) - n_t)}
    warns = []
    if n_t < 20:
        warns.append(f"Only {n_t} enrolled patients: matched estimates will be imprecise.")
    return (f"{len(frame):,} patient-months of {len(fr):,} decedents: {n_t:,} enrolled, {len(fr) - n_t:,} potential "
            f"controls; {len(covs)} baseline covariate(s)", summ, warns)


def _prepare_plain(data: pd.DataFrame, d: dict):
    from .build import _prepare

    return _prepare(data, d)
