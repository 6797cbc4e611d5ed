"""Stacked difference-in-differences with the corrective weights of Wing, Freedman & Hollingsworth (2024)."""
from __future__ import annotations

import logging
import warnings
from dataclasses import dataclass, replace

import numpy as np
import pandas as pd

from .._validation import check_columns_arg, check_option, check_scalar
from ..data.schema import validate_panel
from ..did._engine import FitContext, build_conventions, fit_absorbed, infer
from ..did.event_study import EventStudyResult
from ..errors import DataError, EvalkitWarning, SpecificationError
from ..inference.absorb import FixedEffects
from ..inference.vcov import SmallSampleCorrection
from ..results import SampleInfo, tidy_table

__all__ = ["stacked_did", "StackedDiDResult"]

logger = logging.getLogger(__name__)

_STACK_VCOV = ("CR1", "CR0", "CR2")


@dataclass(frozen=True, repr=False)
class StackedDiDResult(EventStudyResult):
    """Weighted stacked DiD (Wing, Freedman & Hollingsworth 2024).

    ``to_frame()``: the overall post-entry effect first (``event_time`` missing; the mean of the
    post event-time effects), then one row per event time of the window except the reference
    ``-1`` (``event_frame()`` adds it at 0). Columns ``term, event_time, estimate, std_error,
    statistic, p_value, conf_low, conf_high``. ``subexperiment_frame()`` lists the
    sub-experiments (one per included cohort) with their sizes and weights; ``pretrend_test`` is
    the joint Wald test of the leads; ``plot()`` draws the event study; ``with_vcov()``.
    """

    def __repr__(self) -> str:
        n_e = int(self.table["event_time"].notna().sum())
        return (f"<StackedDiDResult: ATT = {self.estimate:.6g} (SE {self.std_error:.6g}), {n_e} event times, "
                f"{len(self.extra['subexperiments'])} sub-experiments, {self.conventions.vcov_type}>")

    def subexperiment_frame(self) -> pd.DataFrame:
        """One row per sub-experiment: ``cohort, n_treated, n_control, n_rows, treated_share, control_weight``."""
        return self.extra["subexperiments"].copy()

    def with_vcov(self, vcov: str, *, ssc: SmallSampleCorrection | None = None, level: float | None = None,
                  **_ignored) -> "StackedDiDResult":
        """Same estimates, other clustered standard errors (``"CR1"``, ``"CR0"``, ``"CR2"``)."""
        lvl = self.conventions.level if level is None else level
        x = self.extra
        return _finish(x["_context"], x["_design"], vcov, ssc, lvl, self.sample, self.conventions.notes)


def _window(window) -> tuple[int, int]:
    if (not isinstance(window, (tuple, list)) or len(window) != 2
            or not all(isinstance(v, (int, np.integer)) and not isinstance(v, bool) for v in window)):
        raise SpecificationError(f"stacked_did: `window` must be a pair of integers (-k, m), e.g. (-3, 2) for three "
                                 f"pre-entry and two post-entry event times. Got {window!r}.")
    lo, hi = int(window[0]), int(window[1])
    if lo > -1 or hi < 0:
        raise SpecificationError(f"stacked_did: `window` = ({lo}, {hi}) must satisfy -k <= -1 (the reference event "
                                 f"time -1 is in the window) and m >= 0. E.g. window=(-3, 2).")
    return lo, hi


def stacked_did(
    data: pd.DataFrame,
    *,
    outcome: str,
    unit: str,
    time: str,
    cohort: str,
    window,
    control: str = "notyet",
    cluster: str | None = None,
    weights: str = "corrected",
    vcov: str = "CR1",
    ssc: SmallSampleCorrection | None = None,
    level: float = 0.95,
    dropna: bool = False,
) -> StackedDiDResult:
    r"""Stacked DiD of Wing, Freedman & Hollingsworth (2024) with corrective sample-share weights.

    Parameters
    ----------
    data : pandas.DataFrame
        Long panel (balanced or not), one row per unit and period.
    outcome, unit, time : str
        Outcome, unit and time columns.
    cohort : str
        First treated period of the unit (never treated: NaN, inf, or 0 when no period is 0).
        Units treated in the first period are dropped (recorded).
    window : tuple (-k, m)
        Event window: ``k >= 1`` pre-entry and ``m >= 0`` post-entry event times; event time
        ``-1`` is the reference.
    control : {"notyet", "never"}, default="notyet"
        Clean controls of the sub-experiment of cohort :math:`a`: units not treated within the
        window, :math:`G > a + m` (never treated included; WFH's default), or never treated only.
    cluster : str or None, default=None
        Cluster column (constant within unit); ``None`` clusters on ``unit``. A unit that appears
        in several sub-experiments (a control of several cohorts, or a control before being
        treated) is always within one cluster.
    weights : {"corrected", "none"}, default="corrected"
        ``"corrected"``: WFH's weights for the trimmed aggregate ATT — 1 for treated rows and
        :math:`Q_{a,e} = (N^D_{a,e}/N^D_e) / (N^C_{a,e}/N^C_e)` for the control rows of
        sub-experiment :math:`a` at event time :math:`e` (row counts, so that each
        sub-experiment's controls carry the sub-experiment's share of the treated). ``"none"``:
        the unweighted ("naive") stacked regression, whose estimand mixes the sub-experiments
        with variance weights (WFH Sec. 3).
    vcov : {"CR1", "CR2", "CR0"}, default="CR1"
        Cluster-robust covariance of the event-time coefficients (CR1: fixest's small-sample factor
        :math:`G/(G-1)\cdot(N-1)/(N-K)`, t(G-1) inference, as WFH's ``feols`` code).
    ssc : SmallSampleCorrection or None, default=None
        Small-sample correction for CR1 (default: fixest's).
    level : float, default=0.95
    dropna : bool, default=False

    Returns
    -------
    StackedDiDResult

    Notes
    -----
    1. Trimming: cohort :math:`a` is included when its window fits in the data
       (:math:`a - k \ge` first period and :math:`a + m \le` last period) and it has clean
       controls; trimmed cohorts are listed in the notes (and warned about).
    2. Sub-experiment :math:`a`: units of cohort :math:`a` (:math:`D=1`) and its clean controls
       (:math:`D=0`), periods :math:`a-k, \dots, a+m`, event time :math:`e = t - a`.
    3. Stacked weighted regression (WFH eq. 3) on all sub-experiments,

       .. math:: Y_{sae} = \alpha_0 + \alpha_1 D_{sa} + \sum_{h \ne -1} \big[\lambda_h 1(e=h)
                 + \delta_h D_{sa} 1(e=h)\big] + u_{sae},

       with the intercept, :math:`D` and event-time effects absorbed by the project's
       fixed-effects engine. With the corrected weights and a balanced panel
       :math:`\hat\delta_h = \sum_a \frac{N^D_a}{N^D} \big[(\bar Y^D_{a,h} - \bar Y^D_{a,-1}) -
       (\bar Y^C_{a,h} - \bar Y^C_{a,-1})\big]`: the trimmed aggregate ATT at event time
       :math:`h` (for ``control="never"`` this is exactly the Callaway–Sant'Anna
       :math:`ATT(a, a+h)` with the universal base period :math:`a-1`, averaged over the included
       cohorts with their sizes as weights; tested).
    4. The overall effect is the plain mean of :math:`\hat\delta_h, h = 0..m`. Standard errors
       cluster on the unit (or ``cluster``) across sub-experiments; the weights are treated as
       fixed.

    Examples
    --------
    >>> import evalkit as ek
    >>> st = ek.staggered.stacked_did(ek.datasets.load_mpdta(), outcome="lemp", unit="countyreal",
    ...                               time="year", cohort="first.treat", window=(-1, 0), control="never")
    >>> round(st.estimate, 7)
    -0.0199318
    """
    check_option(control, "control", ["notyet", "never"], "stacked_did")
    check_option(weights, "weights", ["corrected", "none"], "stacked_did")
    if vcov not in _STACK_VCOV:
        raise SpecificationError(f"stacked_did: vcov must be one of {list(_STACK_VCOV)} (units repeat across "
                                 f"sub-experiments, so the covariance is always clustered). Got {vcov!r}.")
    check_scalar(level, "level", float, min_val=0.5, max_val=1.0, include_max=False)
    lo, hi = _window(window)
    clusters = check_columns_arg(cluster, "cluster")
    if len(clusters) > 1:
        raise SpecificationError(f"stacked_did: `cluster` takes one column. Got {list(clusters)}.")
    vp = validate_panel(data, outcome=outcome, unit=unit, time=time, cohort=cohort, cluster=clusters or None,
                        dropna=dropna, already_treated="drop", stacklevel=3)
    N, T = vp.n_units, vp.n_periods
    ax = vp.time_axis
    u, tt = vp.unit, vp.time
    ucoh = np.full(N, np.inf)
    ucoh[u] = vp.cohort
    ucoh[~np.isfinite(ucoh)] = np.inf
    if clusters and clusters[0] != unit:
        ucl = np.full(N, -1, dtype=np.int64)
        ucl[u] = vp.cluster[:, 0]
        if not np.array_equal(ucl[u], vp.cluster[:, 0]):
            raise DataError(f"stacked_did: column {clusters[0]!r} (the cluster) varies within unit; it must be constant "
                            f"within {unit!r} (a cluster above the unit) so that a unit's copies in several "
                            f"sub-experiments stay in one cluster.")
        cl_name = clusters[0]
    else:
        ucl = np.arange(N, dtype=np.int64)
        cl_name = unit

    events = np.unique(ucoh[np.isfinite(ucoh)]).astype(np.int64)
    if events.size == 0:
        raise DataError(f"stacked_did: no treated units in {cohort!r}.")
    included, trimmed = [], []
    for a in events:
        clean = ~np.isfinite(ucoh) if control == "never" else ucoh > a + hi
        if a + lo < 0 or a + hi > T - 1:
            trimmed.append(f"{ax.label(a)} (window {lo}..{hi} outside the data)")
        elif not clean.any():
            trimmed.append(f"{ax.label(a)} (no clean controls)")
        else:
            included.append(int(a))
    notes: list[str] = []
    if trimmed:
        msg = "stacked_did: cohorts trimmed (not in the estimand): " + "; ".join(trimmed)
        warnings.warn(msg, EvalkitWarning, stacklevel=2)
        notes.append(msg.replace("stacked_did: c", "C"))
    if not included:
        raise DataError(f"stacked_did: every cohort was trimmed ({'; '.join(trimmed)}). Shorten the window "
                        f"(currently ({lo}, {hi}))" + (" or use control='notyet'." if control == "never" else "."))

    # ---- build the stack (vectorised per sub-experiment) ----
    r_idx, s_idx, e_val, d_val = [], [], [], []
    for s, a in enumerate(included):
        clean = ~np.isfinite(ucoh) if control == "never" else ucoh > a + hi
        member = (ucoh == a) | clean
        rows = np.flatnonzero(member[u] & (tt >= a + lo) & (tt <= a + hi))
        r_idx.append(rows)
        s_idx.append(np.full(rows.size, s, dtype=np.int64))
        e_val.append(tt[rows] - a)
        d_val.append((ucoh[u[rows]] == a).astype(np.int64))
    rows = np.concatenate(r_idx)
    sub = np.concatenate(s_idx)
    ev = np.concatenate(e_val).astype(np.int64)
    D = np.concatenate(d_val)
    S, E = len(included), hi - lo + 1
    ecode = ev - lo

    pair = sub * N + u[rows]
    per_pair = np.bincount(pair, minlength=S * N)
    per_pair = per_pair[per_pair > 0]
    if (per_pair != E).any():
        msg = (f"stacked_did: {int((per_pair != E).sum())} of {per_pair.size} (unit, sub-experiment) pairs miss some "
               f"event times of the window. The stacked regression (WFH eq. 3) has no unit effects, so changes in "
               f"the composition of the treated or control rows across event times move the estimates; prefer a "
               f"window where units are observed throughout, or att_gt (which differences within unit).")
        warnings.warn(msg, EvalkitWarning, stacklevel=2)
        notes.append(msg.replace("stacked_did: ", ""))

    # ---- corrective weights: counts by (event time, sub-experiment, D) as WFH's compute_weights ----
    cnt = np.bincount((ecode * S + sub) * 2 + D, minlength=E * S * 2).reshape(E, S, 2).astype(float)
    tot = cnt.sum(axis=1)  # (E, 2)
    with np.errstate(divide="ignore", invalid="ignore"):
        q = (cnt[:, :, 1] / tot[:, None, 1]) / (cnt[:, :, 0] / tot[:, None, 0])
    if weights == "corrected":
        bad = ~np.isfinite(q) & (cnt[:, :, 0] > 0)
        if bad.any():
            raise DataError("stacked_did: some event time has no treated rows in the stack; with an unbalanced panel "
                            "every event time of the window needs treated rows. Shorten the window.")
        w = np.where(D == 1, 1.0, q[ecode, sub])
    else:
        w = None
    if cnt[-lo - 1, :, 1].sum() == 0 or cnt[-lo - 1, :, 0].sum() == 0:
        raise DataError("stacked_did: no treated or no control rows at the reference event time -1.")

    # ---- regression: D x 1(e = h), h != -1, with D and event-time effects absorbed ----
    hs = [h for h in range(lo, hi + 1) if h != -1]
    present = [h for h in hs if cnt[h - lo, :, 1].sum() > 0]
    if len(present) < len(hs):
        missing = sorted(set(hs) - set(present))
        raise DataError(f"stacked_did: no treated rows at event time(s) {missing} in the stack. Shorten the window.")
    X = np.zeros((rows.size, len(hs)))
    for j, h in enumerate(hs):
        X[:, j] = (D == 1) & (ev == h)
    names = tuple(f"e={h}" for h in hs)
    fe = FixedEffects((D.astype(np.int64), ecode.astype(np.int64)), ("treated", "event_time"))
    y = vp.y[rows]
    fit, info, Xraw = fit_absorbed(y, X, names, fe, w, n_protected=len(hs))
    cl_st = pd.factorize(ucl[u[rows]])[0].astype(np.int64)[:, None]  # clusters present in the stack
    ctx = FitContext(fit, fe, info, Xraw, y, cl_st, (cl_name,), (D * (ev >= 0)).astype(float),
                     tuple(range(len(hs))), unit=None)

    # ---- sub-experiment table and sample ----
    n_tr = np.array([np.unique(u[rows][(sub == s) & (D == 1)]).size for s in range(S)])
    n_co = np.array([np.unique(u[rows][(sub == s) & (D == 0)]).size for s in range(S)])
    n_rows = np.bincount(sub, minlength=S)
    qs = q[-lo - 1]  # control weight at the reference event time (constant over e on balanced panels)
    sub_tab = pd.DataFrame({
        "cohort": [ax.label(a) for a in included],
        "n_treated": n_tr.astype(np.int64), "n_control": n_co.astype(np.int64), "n_rows": n_rows.astype(np.int64),
        "treated_share": n_tr / n_tr.sum(),
        "control_weight": qs if weights == "corrected" else np.ones(S),
    })
    used_units = np.unique(u[rows])
    sample = SampleInfo(n_obs=int(rows.size), n_input_rows=vp.n_input_rows, n_units=int(used_units.size),
                        n_periods=T, balanced=vp.is_balanced,
                        n_treated_units=int(np.unique(u[rows][D == 1]).size), dropped=vp.dropped)
    notes.append(f"Stack: {S} sub-experiments, {rows.size:,} stacked rows from {np.unique(rows).size:,} of "
                 f"{vp.nobs:,} data rows; n_obs counts stacked rows, n_units distinct units used.")
    notes.append("Weights: " + ("WFH corrective weights for the trimmed aggregate ATT (treated 1, controls "
                                "Q_ae = (N^D_ae/N^D_e)/(N^C_ae/N^C_e)), treated as fixed." if weights == "corrected"
                                else "none (naive stacked regression; variance-weighted mix of sub-experiments)."))
    design = {"hs": hs, "hi": hi, "lo": lo, "subexperiments": sub_tab, "control": control, "weights": weights}
    return _finish(ctx, design, vcov, ssc, level, sample, tuple(notes))


def _finish(ctx: FitContext, design: dict, vcov: str, ssc, level: float, sample, notes) -> StackedDiDResult:
    if vcov not in _STACK_VCOV:
        raise SpecificationError(f"stacked_did: vcov must be one of {list(_STACK_VCOV)}. Got {vcov!r}.")
    coef_table, vr, _ = infer(ctx, vcov, small_sample=ssc, level=level, seed=None, n_boot=0, boot_weights="rademacher")
    hs = design["hs"]
    K = len(hs)
    beta = ctx.fit.beta[:K]
    Vb = np.asarray(vr.vcov)[:K, :K]
    W = np.zeros((1 + K, K))
    post = np.array([h >= 0 for h in hs])
    W[0, post] = 1.0 / post.sum()
    W[1:] = np.eye(K)
    est = W @ beta
    V = W @ Vb @ W.T
    df = vr.df
    if df is not None and np.ndim(df) > 0:
        df = float(np.min(np.asarray(df)[:K]))
    se = np.sqrt(np.clip(np.diag(V), 0, None))
    terms = [f"ATT (post average, e=0..{design['hi']})"] + [f"e={h}" for h in hs]
    table = tidy_table(terms, est, se, df, level)
    table.insert(1, "event_time", pd.array([None] + hs, dtype="Int64"))
    vr_agg = replace(vr, vcov=V, df=df)
    est_name = ("Stacked DiD (Wing-Freedman-Hollingsworth, " + ("corrective weights" if design["weights"] == "corrected"
                                                               else "unweighted") +
                f", {'not-yet-treated' if design['control'] == 'notyet' else 'never-treated'} clean controls, "
                f"window {design['lo']}..{design['hi']})")
    conv = build_conventions(est_name, vr_agg, level=level, weights=None if design["weights"] == "none" else "corrected",
                             fe=ctx.fe, absorb_info=ctx.absorb_info, reference_period="event time -1 (omitted)",
                             notes=tuple(notes))
    extra = {"_context": ctx, "_design": design, "reference": -1, "subexperiments": design["subexperiments"],
             "coef_vcov": Vb}
    return StackedDiDResult(table, V, conv, sample, extra)
