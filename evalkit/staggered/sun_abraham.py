"""Sun & Abraham (2021) interaction-weighted event study."""
from __future__ import annotations

import logging
import warnings
from dataclasses import dataclass, replace
from typing import Sequence

import numpy as np
import pandas as pd

from .._validation import check_columns_arg, check_option, check_scalar
from ..data.schema import DropRecord, validate_panel
from ..did._engine import FitContext, build_conventions, fe_codes_for, fit_absorbed, infer, sample_info
from ..did.event_study import EventStudyResult, wald_test
from ..errors import DataError, DroppedRowsWarning, SpecificationError
from ..inference.vcov import SmallSampleCorrection
from ..results import tidy_table

__all__ = ["sun_abraham", "SunAbrahamResult"]

logger = logging.getLogger(__name__)

_SA_VCOV = ("iid", "HC1", "CR0", "CR1", "CR2")


@dataclass(frozen=True, repr=False)
class SunAbrahamResult(EventStudyResult):
    """Interaction-weighted event study (Sun & Abraham 2021).

    ``to_frame()``: the overall post-entry ATT first (``event_time`` missing), then one row per
    event time ``e`` (the reference period is omitted; ``event_frame()`` adds it at 0).
    ``cohort_frame()``: the cohort-specific effects CATT(g, e) with their aggregation weights.
    ``pretrend_test``: joint Wald test of every lead (``e < 0``) IW coefficient.
    """

    def __repr__(self) -> str:
        return (f"<SunAbrahamResult: ATT = {self.estimate:.6g} (SE {self.std_error:.6g}), "
                f"{int(self.table['event_time'].notna().sum())} event times, {self.conventions.vcov_type}>")

    @property
    def pretrend_test(self) -> dict:
        """Joint Wald test that every lead (``e < 0``) interaction-weighted coefficient is zero."""
        et = self.table["event_time"].astype("Float64").to_numpy(dtype=float, na_value=np.nan)
        idx = np.flatnonzero(et < 0)
        return wald_test(self.table["estimate"].to_numpy()[idx], self.vcov[np.ix_(idx, idx)], self.conventions.df)

    def event_frame(self) -> pd.DataFrame:
        """Event-time rows (overall row removed), with the reference period added at 0 (NaN SE)."""
        return super().event_frame()

    def cohort_frame(self) -> pd.DataFrame:
        """Cohort x event-time effects CATT(g, e): estimates, SEs, cell sizes and IW weights."""
        return self.extra["cohort_table"].copy()

    def with_vcov(self, vcov: str, *, ssc: SmallSampleCorrection | None = None, level: float | None = None,
                  seed=None, n_boot: int = 999, boot_weights: str = "rademacher") -> "SunAbrahamResult":
        """Same estimates, other standard errors (``"iid"``, ``"HC1"``, ``"CR0"``, ``"CR1"``, ``"CR2"``)."""
        x = self.extra
        lvl = self.conventions.level if level is None else level
        return _finish(x["_context"], x["_design"], vcov, ssc, lvl, self.conventions.weights, self.sample,
                       self.conventions.notes, x["reference"], x["control"])


def sun_abraham(
    data: pd.DataFrame,
    *,
    outcome: str,
    unit: str,
    time: str,
    cohort: str,
    covariates: Sequence[str] = (),
    control: str = "never",
    reference: int = -1,
    cluster: str | Sequence[str] | None = None,
    weights: str | None = None,
    vcov: str = "CR1",
    ssc: SmallSampleCorrection | None = None,
    level: float = 0.95,
    dropna: bool = False,
) -> SunAbrahamResult:
    r"""Interaction-weighted (IW) event study of Sun & Abraham (2021).

    Parameters
    ----------
    data : pandas.DataFrame
        Long panel (balanced or not), one row per unit and period.
    outcome, unit, time : str
        Outcome, unit and time columns.
    cohort : str
        First treated period of the unit in the units of ``time`` (never treated: NaN, inf, or 0
        when no period is 0). Units treated in the first period are dropped (recorded).
    covariates : sequence of str, default=()
        Time-varying controls added linearly (common slopes).
    control : {"never", "last"}, default="never"
        Comparison cohort: the never treated; or the last-treated cohort (for designs where every
        unit is eventually treated): its units get no interaction dummies and every row from its
        entry period on is dropped (recorded); never-treated units, if any, stay as controls.
    reference : int, default=-1
        Omitted relative period (every cohort's effects are measured relative to it).
    cluster : str or sequence of str or None, default=None
        Cluster column(s) for ``vcov``; ``None`` clusters on the unit.
    weights : str or None, default=None
        Regression weights (WLS); the IW cohort shares then count weights instead of rows.
    vcov : {"CR1", "CR2", "CR0", "HC1", "iid"}, default="CR1"
        Covariance of the cohort x period coefficients (fixest conventions for CR1: small-sample
        factor :math:`G/(G-1)\cdot(N-1)/(N-K)`, t(G−1) inference).
    ssc : SmallSampleCorrection or None, default=None
        Small-sample correction for CR1 (default: fixest's).
    level : float, default=0.95
    dropna : bool, default=False
        Drop rows with missing values in the used columns (recorded) instead of raising.

    Returns
    -------
    SunAbrahamResult
        ``estimate`` is the overall post-entry ATT; ``to_frame()`` has an ``event_time`` column,
        ``cohort_frame()`` the CATT(g, e); ``pretrend_test``; ``plot()``.

    Notes
    -----
    Step 1 (saturated TWFE): with :math:`E_i` the entry period and :math:`C` the control cohort,

    .. math:: Y_{it} = \alpha_i + \lambda_t + \sum_{g \notin C}\sum_{e \ne r} \delta_{g,e}\,
              1[E_i = g]\,1[t - E_i = e] + X_{it}'\gamma + \varepsilon_{it},

    unit and period effects absorbed; every observed (cohort, relative period) pair gets a
    dummy except the reference :math:`r`, so no treated relative period is pooled with another.
    Step 2 (IW aggregation): :math:`\hat\nu_e = \sum_g \hat w_{g,e}\hat\delta_{g,e}` with
    :math:`\hat w_{g,e} = n_{g,e} / \sum_{g'} n_{g',e}`, :math:`n_{g,e}` the number of rows
    (sum of weights) of cohort :math:`g` at relative period :math:`e` in the estimation sample
    (the cohort share among units observed at :math:`e`; on a balanced panel the cohort size).
    The overall ATT averages every post-entry :math:`\hat\delta_{g,e}` (:math:`e \ge 0`) with
    weights :math:`n_{g,e}` (fixest ``sunab(att=TRUE)``). Variance: :math:`W\hat V_\delta W'`
    with :math:`\hat V_\delta` the ``vcov`` covariance of the interaction coefficients; the
    shares are treated as fixed (as R fixest's ``aggregate``; Sun & Abraham's Proposition 6 adds
    a term for their estimation, which vanishes when the cohort shares are known). Inference:
    t(G−1) for CR1, as ``fixest``; the average Satterthwaite df of the involved terms is not used
    for CR2 — its smallest df is (conservative).

    With never-treated controls, no covariates and a balanced panel, :math:`\hat\delta_{g,e}`
    equals the Callaway–Sant'Anna :math:`ATT(g, g+e)` with never-treated controls and the
    universal base period :math:`g-1` (Sun & Abraham 2021, Sec. 4.1), and :math:`\hat\nu_e` the
    ``"dynamic"`` aggregation of ``att_gt(..., base_period="universal")`` (tested at 1e-9).

    Examples
    --------
    >>> import evalkit as ek
    >>> sa = ek.staggered.sun_abraham(ek.datasets.load_mpdta(), outcome="lemp", unit="countyreal",
    ...                               time="year", cohort="first.treat")
    >>> sa.to_frame()[["event_time", "estimate"]].round(4).tail(1).to_numpy().tolist()
    [[3, -0.1008]]
    """
    check_option(control, "control", ["never", "last"], "sun_abraham")
    if vcov == "wild":
        raise SpecificationError("sun_abraham does not support vcov='wild' (the IW effects are combinations of many "
                                 "coefficients); use 'CR1' or 'CR2'.")
    check_option(vcov, "vcov", _SA_VCOV, "sun_abraham")
    check_scalar(reference, "reference", (int, np.integer), max_val=-1)
    check_scalar(level, "level", float, min_val=0.5, max_val=1.0, include_max=False)
    covariates = check_columns_arg(covariates, "covariates")
    clusters = check_columns_arg(cluster, "cluster") or (unit,)
    vp = validate_panel(data, outcome=outcome, unit=unit, time=time, cohort=cohort, cluster=clusters,
                        weights=weights, covariates=covariates, dropna=dropna, already_treated="drop", stacklevel=3)
    g = np.asarray(vp.cohort, dtype=float)
    notes: list[str] = []
    keep = np.ones(vp.nobs, bool)
    ctrl = ~np.isfinite(g)
    if control == "never":
        if not ctrl.any():
            raise DataError(f"Column {cohort!r}: no never-treated units. Use control='last' (the last-treated cohort "
                            f"as comparison, dropping the periods from its entry on).")
    else:
        finite = np.unique(g[np.isfinite(g)])
        if finite.size < 2:
            raise DataError(f"control='last' needs at least two treated cohorts in {cohort!r}; found {finite.size}.")
        g_last = finite.max()
        ctrl = ctrl | (g == g_last)
        keep = vp.time < g_last
        notes.append(f"Control cohort: last treated ({vp.time_axis.label(g_last)}) and never treated; periods from "
                     f"{vp.time_axis.label(g_last)} on dropped.")
    if not keep.all():
        from ..did.event_study import _subset

        rec = DropRecord("periods from the entry of the last-treated (control) cohort on", int((~keep).sum()),
                         "control='last'")
        vp = _subset(vp, keep, rec)
        g = g[keep]
        ctrl = ctrl[keep]
        warnings.warn(f"sun_abraham: {rec}.", DroppedRowsWarning, stacklevel=2)
    treated = ~ctrl
    e = np.where(treated, vp.time - np.where(treated, g, 0), 0).astype(np.int64)
    cell = treated & (e != reference)
    # dummies for every observed (cohort, relative period) except the reference
    pairs = np.unique(np.column_stack([g[cell], e[cell]]), axis=0) if cell.any() else np.empty((0, 2))
    if pairs.shape[0] == 0:
        raise DataError("sun_abraham: no treated cohort has observations outside the reference period.")
    key = {(float(a), int(b)): j for j, (a, b) in enumerate(pairs)}
    col = np.full(vp.nobs, -1, dtype=np.int64)
    rows = np.flatnonzero(cell)
    col[rows] = [key[(float(a), int(b))] for a, b in zip(g[rows], e[rows])]
    K = pairs.shape[0]
    D = np.zeros((vp.nobs, K))
    D[rows, col[rows]] = 1.0
    ax = vp.time_axis
    names = tuple(f"g={ax.label(a)},e={int(b)}" for a, b in pairs)
    X = np.column_stack([D, vp.X]) if vp.X.shape[1] else D
    fe = fe_codes_for(vp, data, ("unit", "time"), unit, time)
    fit, info, Xraw = fit_absorbed(vp.y, X, names + vp.covariate_names, fe, vp.weights, n_protected=K)
    dtreat = (treated & (e >= 0)).astype(float)
    ctx = FitContext(fit, fe, info, Xraw, vp.y, vp.cluster, clusters, dtreat, tuple(range(K)), unit=vp.unit)
    wrow = np.ones(vp.nobs) if vp.weights is None else np.asarray(vp.weights, float)
    n_cell = np.bincount(col[rows], weights=wrow[rows], minlength=K)
    design = {"pairs": pairs, "n_cell": n_cell, "K": K, "time_axis": ax}
    ref_note = f"relative period {reference} (omitted for every cohort)"
    return _finish(ctx, design, vcov, ssc, level, weights, sample_info(vp, int(np.unique(vp.unit[treated]).size)),
                   tuple(notes), reference, control, ref_note=ref_note)


def _iw_weights(design: dict, reference: int):
    """Rows: overall post ATT, then each event time; columns: the cohort x period coefficients."""
    pairs, n_cell, K = design["pairs"], design["n_cell"], design["K"]
    e = pairs[:, 1].astype(np.int64)
    ev = np.unique(e)
    W = np.zeros((1 + ev.size, K))
    post = e >= 0
    if post.any():
        W[0, post] = n_cell[post] / n_cell[post].sum()
    else:
        W[0, :] = np.nan
    for r, k in enumerate(ev, start=1):
        m = e == k
        W[r, m] = n_cell[m] / n_cell[m].sum()
    return W, ev


def _finish(ctx: FitContext, design: dict, vcov: str, ssc, level: float, weights, sample, notes, reference, control,
            ref_note: str | None = None) -> SunAbrahamResult:
    if vcov == "wild":
        raise SpecificationError("sun_abraham does not support vcov='wild'; use 'CR1' or 'CR2'.")
    check_option(vcov, "vcov", _SA_VCOV, "with_vcov")
    coef_table, vr, _ = infer(ctx, vcov, small_sample=ssc, level=level, seed=None, n_boot=0, boot_weights="rademacher")
    K = design["K"]
    beta = ctx.fit.beta[:K]
    Vd = np.asarray(vr.vcov)[:K, :K]
    W, ev = _iw_weights(design, reference)
    est = W @ beta
    V = W @ Vd @ W.T
    df = vr.df
    if df is not None and np.ndim(df) > 0:
        df = float(np.min(np.asarray(df)[:K]))
    se = np.sqrt(np.clip(np.diag(V), 0, None))
    terms = ["ATT (post average)"] + [f"e={int(k)}" for k in ev]
    table = tidy_table(terms, est, se, df, level)
    table.insert(1, "event_time", pd.array([None] + [int(k) for k in ev], dtype="Int64"))
    table["n_cohorts"] = np.concatenate([[int((design["pairs"][:, 1] >= 0).sum())],
                                         [(design["pairs"][:, 1] == k).sum() for k in ev]]).astype(np.int64)
    ax = design["time_axis"]
    ct = coef_table.iloc[:K].copy()
    ct.insert(1, "cohort", [ax.label(a) for a in design["pairs"][:, 0]])
    ct.insert(2, "event_time", design["pairs"][:, 1].astype(np.int64))
    ct["n_cell"] = design["n_cell"]
    ct["iw_weight"] = W[1:][np.searchsorted(ev, design["pairs"][:, 1].astype(np.int64)), np.arange(K)]
    vr_agg = replace(vr, vcov=V, df=df)
    conv = build_conventions(
        "Sun-Abraham interaction-weighted event study (saturated TWFE, "
        + ("never-treated" if control == "never" else "last-treated") + " controls)",
        vr_agg, level=level, weights=weights, fe=ctx.fe, absorb_info=ctx.absorb_info,
        reference_period=ref_note or f"relative period {reference} (omitted for every cohort)",
        notes=tuple(notes) + ("IW weights: cohort shares of rows at each relative period, treated as fixed "
                              "(fixest aggregate convention).",),
    )
    extra = {"_context": ctx, "_design": design, "reference": reference, "control": control,
             "cohort_table": ct.reset_index(drop=True), "iw_weights": W, "coef_vcov": Vd}
    return SunAbrahamResult(table, V, conv, sample, extra)
