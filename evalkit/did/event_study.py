"""Event study: leads and lags of entry in a two-way fixed-effects regression."""
from __future__ import annotations

import logging
import warnings
from dataclasses import dataclass
from numbers import Integral
from typing import Sequence

import numpy as np
import pandas as pd
from scipy import stats

from .._validation import check_columns_arg, check_option, check_scalar
from ..data.schema import validate_panel
from ..errors import DataError, SpecificationError, StaggeredTimingWarning
from ..inference.vcov import VCOV_TYPES, SmallSampleCorrection
from ._engine import FitContext, build_conventions, fe_codes_for, fit_absorbed, infer, sample_info
from .results import DiDResult

__all__ = ["event_study", "EventStudyResult", "wald_test"]

logger = logging.getLogger(__name__)


def wald_test(estimates: np.ndarray, vcov: np.ndarray, df: float | None) -> dict:
    """Joint test that every estimate is zero: F = b'V^{-1}b / q with F(q, df), or chi2(q) when df is None."""
    b = np.asarray(estimates, float)
    q = b.size
    if q == 0:
        return {"statistic": np.nan, "df_num": 0, "df_den": df, "p_value": np.nan, "distribution": "none"}
    V = np.asarray(vcov, float)
    W = float(b @ np.linalg.pinv(V, hermitian=True) @ b)
    if df is None or not np.isfinite(df):
        return {"statistic": W, "df_num": q, "df_den": None, "p_value": float(stats.chi2.sf(W, q)), "distribution": f"chi2({q})"}
    F = W / q
    return {"statistic": F, "df_num": q, "df_den": float(df), "p_value": float(stats.f.sf(F, q, df)), "distribution": f"F({q}, {df:g})"}


@dataclass(frozen=True, repr=False)
class EventStudyResult(DiDResult):
    """Event-study coefficients by event time (relative to entry) with a joint pre-trend test.

    ``to_frame()`` has an ``event_time`` column; the reference period is omitted from the table (its
    coefficient is 0 by construction) and drawn by ``plot()``.
    """

    @property
    def reference_period(self) -> int:
        return int(self.extra["reference"])

    @property
    def pretrend_test(self) -> dict:
        """Joint Wald test that all lead (pre-entry) coefficients are zero."""
        t = self.table
        lead = (t["event_time"] < 0).to_numpy() & t["event_time"].notna().to_numpy()
        idx = np.flatnonzero(lead)
        return wald_test(t["estimate"].to_numpy()[idx], self.vcov[np.ix_(idx, idx)], self.conventions.df)

    def plot(self, ax=None, **kwargs):
        """Estimates with confidence intervals by event time; returns the Axes."""
        from ..plots import plot_event_study

        return plot_event_study(self.event_frame(), ax=ax, **kwargs)

    def event_frame(self) -> pd.DataFrame:
        """Event-time rows only, with the reference period added at 0 (NaN SE)."""
        t = self.table[self.table["event_time"].notna()].copy()
        ref = pd.DataFrame({"term": ["reference"], "estimate": [0.0], "std_error": [np.nan], "statistic": [np.nan],
                            "p_value": [np.nan], "conf_low": [0.0], "conf_high": [0.0], "event_time": [self.reference_period]})
        return pd.concat([t, ref], ignore_index=True).sort_values("event_time").reset_index(drop=True)

    def summary(self):
        s = super().summary()
        pt = self.pretrend_test
        if pt["df_num"]:
            s.header.append(("Pre-trend test", f"all {pt['df_num']} leads = 0: {pt['distribution']} = {pt['statistic']:.4g}, p = {pt['p_value']:.4g}"))
        return s


def event_study(
    data: pd.DataFrame,
    *,
    outcome: str,
    unit: str,
    time: str,
    cohort: str,
    covariates: Sequence[str] = (),
    reference: int = -1,
    leads: int | None = None,
    lags: int | None = None,
    bin_endpoints: bool = True,
    fixed_effects: Sequence[str] = ("unit", "time"),
    cluster: str | Sequence[str] | None = None,
    weights: str | None = None,
    vcov: str = "CR1",
    ssc: SmallSampleCorrection | None = None,
    level: float = 0.95,
    seed=None,
    n_boot: int = 999,
    boot_weights: str = "rademacher",
    dropna: bool = False,
    warn_staggered: bool = True,
) -> EventStudyResult:
    r"""TWFE event study: :math:`y_{it} = \alpha_i + \lambda_t + \sum_{e \ne r} \beta_e 1[t - G_i = e] + X'\gamma + \varepsilon`.

    Parameters
    ----------
    cohort : str
        First treated period of each unit, in the units of ``time`` (never treated: NaN, inf or 0).
    reference : int, default=-1
        Omitted event time (the period before entry); coefficients are differences from it.
    leads, lags : int or None
        Window: event times from ``-leads`` to ``lags``. ``None`` uses every observed event time.
    bin_endpoints : bool, default=True
        Event times outside the window are pooled into the end bins (``-leads`` means "``-leads`` or
        earlier"). With ``False`` they are dropped from the estimation sample (recorded), never silently
        pooled with the reference period.
    Other parameters are as in :func:`evalkit.did.twfe` (default CR1 clustered on the unit).

    Returns
    -------
    EventStudyResult
        Table with ``event_time``; ``pretrend_test`` (joint Wald F test of the leads, F(q, G−1) under CR1);
        ``plot()``.

    Notes
    -----
    With staggered entry and effects that vary over time, TWFE event-study coefficients are
    contaminated by effects from other relative periods (Sun & Abraham 2021): a
    ``StaggeredTimingWarning`` is issued; prefer heterogeneity-robust estimators (interaction-weighted
    or Callaway–Sant'Anna) for staggered designs.

    Identification without never-treated units: event time is period minus entry period, so the unit and
    period effects reproduce a linear trend in event time and the event-time effects are identified only
    up to it. Besides the reference, the lowest observed event time of the window (or its bin) is then also
    omitted (the coefficients are relative to both) and a note says so. When the reference is itself the
    lowest event time, the model is identified only if an end bin pools several event times
    (``bin_endpoints=True`` with ``leads``/``lags`` inside the observed range; a note states that the
    estimates rest on constant effects within the bins); otherwise a ``DataError`` explains the choice.
    A reference event time with no observations is a ``DataError`` too (choose another reference).
    """
    check_option(vcov, "vcov", VCOV_TYPES, "event_study")
    check_scalar(reference, "reference", (int, np.integer))
    if leads is not None:
        check_scalar(leads, "leads", Integral, min_val=0)
    if lags is not None:
        check_scalar(lags, "lags", Integral)
    if not isinstance(bin_endpoints, (bool, np.bool_)):
        raise SpecificationError(f"The 'bin_endpoints' parameter must be bool (True or False). Got {bin_endpoints!r} instead.")
    covariates = check_columns_arg(covariates, "covariates")
    clusters = check_columns_arg(cluster, "cluster") or (unit,)
    fixed_effects = check_columns_arg(fixed_effects, "fixed_effects")
    vp = validate_panel(data, outcome=outcome, unit=unit, time=time, cohort=cohort, cluster=clusters,
                        weights=weights, covariates=covariates, dropna=dropna, already_treated="raise")
    g = vp.cohort
    treated = np.isfinite(g)
    e = np.where(treated, vp.time - np.where(treated, g, 0), np.nan)
    ev = e[treated].astype(np.int64)
    lo_obs, hi_obs = int(ev.min()), int(ev.max())
    lo = lo_obs if leads is None else -int(leads)
    hi = hi_obs if lags is None else int(lags)
    if not lo <= reference <= hi:
        raise SpecificationError(f"reference={reference} lies outside the event window [{lo}, {hi}].")
    if lo >= 0:
        raise SpecificationError("No pre-entry event times: the event study needs at least one lead besides nothing; "
                                 "include periods before entry.")
    keep = np.ones(vp.nobs, bool)
    e_bin = e.copy()
    outside = treated & ((e < lo) | (e > hi))
    if outside.any():
        if bin_endpoints:
            e_bin = np.where(treated, np.clip(e, lo, hi), np.nan)
        else:
            keep = ~outside
    n_cohorts = len(np.unique(g[treated]))
    has_never = (~treated).any()
    ev_present = sorted(set(np.unique(e_bin[treated & keep]).astype(int).tolist()))
    pooled_lo = bin_endpoints and lo > lo_obs  # the lowest bin pools several event times
    pooled_hi = bin_endpoints and hi < hi_obs

    def label(k: int) -> str:
        if pooled_lo and k == lo:
            return f"e<={k}"
        if pooled_hi and k == hi:
            return f"e>={k}"
        return f"e={k}"

    if reference not in ev_present:
        raise DataError(
            f"reference={reference}: no treated unit is observed at event time {reference}"
            + (" (rows outside the window are dropped: bin_endpoints=False)" if not bin_endpoints else "")
            + f", so the event-time coefficients would have no baseline (the event-time indicators of the other "
            f"event times add up to the treated units' indicator, which the unit effects absorb). Choose another "
            f"reference among the observed event times {ev_present}."
        )
    omit = {reference}
    notes = []
    if not has_never:
        lower = [k for k in ev_present if k != reference]
        if reference < lower[0]:
            if not (pooled_lo or pooled_hi):
                raise DataError(
                    f"No never-treated units: with unit and period effects the event-time effects are collinear "
                    f"(event time = period - entry period, a linear trend the two sets of effects reproduce), so two "
                    f"event times must be omitted, or an end bin must pool several event times. reference={reference} "
                    f"is the lowest event time observed in the window [{lo}, {hi}] and no event times are pooled "
                    f"({'bin_endpoints=False' if not bin_endpoints else 'the window covers every observed event time'}), "
                    f"so no second event time can be omitted. Choose a reference above {reference} (e.g. reference=-1; "
                    f"the lowest event time, {reference}, is then also omitted), or add never-treated units."
                )
            pools = ([f"{label(lo)} pools event times {lo_obs}..{lo}"] if pooled_lo else []) + \
                ([f"{label(hi)} pools event times {hi}..{hi_obs}"] if pooled_hi else [])
            notes.append(
                f"No never-treated units, and the reference (event time {reference}) is the lowest event time of the "
                f"window: only the reference is omitted, and the event-time effects are identified only because the end "
                f"bin(s) pool several event times ({'; '.join(pools)}), i.e. by assuming the effect is constant within "
                f"each bin. The estimates rest on that assumption and are imprecise; prefer a reference above the lowest "
                f"event time (the lowest is then also omitted)."
            )
        else:
            second = lower[0]
            omit.add(second)
            notes.append(
                f"No never-treated units: the event-time effects are collinear with the unit and period effects "
                f"(event time = period - entry period) unless two are omitted, so besides the reference (event time "
                f"{reference}) the lowest event time, {label(second)}, is also omitted; the coefficients are relative "
                f"to both (assumed equal)."
            )
    times = [k for k in ev_present if k not in omit]
    D = np.column_stack([(treated & keep & (e_bin == k)).astype(float) for k in times])
    labels = [label(k) for k in times]
    X = np.column_stack([D, vp.X]) if vp.X.shape[1] else D
    names = tuple(labels) + vp.covariate_names
    if not keep.all():
        from ..data.schema import DropRecord

        vp = _subset(vp, keep, DropRecord("event times outside the window", int((~keep).sum()), "bin_endpoints=False"))
        X = X[keep]
    fe = fe_codes_for(vp, data, fixed_effects, unit, time)
    if warn_staggered and n_cohorts > 1:
        msg = (f"{n_cohorts} entry cohorts: with staggered entry, TWFE event-study coefficients mix effects across "
               f"relative periods (Sun & Abraham 2021) and are biased when effects vary by cohort or grow over time. "
               f"Use a heterogeneity-robust estimator (Sun-Abraham / Callaway-Sant'Anna) for staggered designs.")
        warnings.warn(msg, StaggeredTimingWarning, stacklevel=2)
        notes.append(msg)
    fit, info, X = fit_absorbed(vp.y, X, names, fe, vp.weights, n_protected=len(times))
    dtreat = (treated & (e >= 0))[keep].astype(float) if not keep.all() else (treated & (e >= 0)).astype(float)
    ctx = FitContext(fit, fe, info, X, vp.y, vp.cluster, clusters, dtreat, tuple(range(len(times))))
    table, vr, extra = infer(ctx, vcov, small_sample=ssc, level=level, seed=seed, n_boot=n_boot, boot_weights=boot_weights)
    table["event_time"] = pd.array(times + [None] * (fit.k - len(times)), dtype="Int64")
    conv = build_conventions("TWFE event study (OLS" + (", weighted)" if weights else ")"), vr, level=level, weights=weights,
                             fe=fe, absorb_info=info, reference_period=f"event time {reference} (omitted)" if label(reference) == f"e={reference}"
                             else f"event time {label(reference)[1:]} (omitted bin)", seed=seed,
                             notes=tuple(notes))
    return EventStudyResult(table, vr.vcov, conv, sample_info(vp, int(len(np.unique(vp.unit[treated[keep] if not keep.all() else treated])))),
                            {"_context": ctx, "reference": reference, **extra})


def _subset(vp, keep: np.ndarray, record):
    from dataclasses import replace

    return replace(
        vp, y=vp.y[keep], X=vp.X[keep], weights=None if vp.weights is None else vp.weights[keep],
        unit=pd.factorize(vp.unit[keep])[0].astype(np.int64), time=vp.time[keep],
        treatment=None if vp.treatment is None else vp.treatment[keep], cohort=vp.cohort[keep],
        cluster=None if vp.cluster is None else np.column_stack([pd.factorize(c)[0] for c in vp.cluster[keep].T]).astype(np.int64),
        row_index=vp.row_index[keep],
        dropped=vp.dropped + (record,),
    )
