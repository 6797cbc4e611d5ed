"""Borusyak, Jaravel & Spiess (2024) imputation estimator for staggered adoption."""
from __future__ import annotations

import logging
import warnings
from dataclasses import dataclass
from numbers import Integral, Real
from typing import Sequence

import numpy as np
import pandas as pd

from .._validation import check_columns_arg, check_scalar
from ..data.schema import DropRecord, validate_panel
from ..errors import DataError, DroppedRowsWarning, EstimationError, SpecificationError
from ..results import Conventions, EffectResult, SampleInfo, tidy_table

__all__ = ["imputation", "ImputationResult"]

logger = logging.getLogger(__name__)


@dataclass(frozen=True, repr=False)
class ImputationResult(EffectResult):
    """Imputation (BJS) estimates: the overall ATT (first row) and, by horizon, ``e = t - g``.

    ``to_frame()``: ``term, event_time, estimate, std_error, statistic, p_value, conf_low,
    conf_high, n_obs``; ``treatment_effects()``: the per-observation :math:`\\hat\\tau_{it}`;
    ``pretrend_test()``: the BJS Test-1 Wald test of lead coefficients (``pretrends=k``);
    ``plot()``: horizons.
    """

    def __repr__(self) -> str:
        return (f"<ImputationResult: ATT = {self.estimate:.6g} (SE {self.std_error:.6g}), "
                f"{int(self.table['event_time'].notna().sum())} horizons>")

    def event_frame(self) -> pd.DataFrame:
        """Horizon rows only (no overall row)."""
        return self.table[self.table["event_time"].notna()].reset_index(drop=True).copy()

    def treatment_effects(self) -> pd.DataFrame:
        """Per treated observation: unit, time, cohort, event_time, ``tau_hat``, ``y0_hat`` (imputed Y(0))."""
        return self.extra["tau_frame"].copy()

    def pretrend_test(self) -> dict:
        """Joint Wald test (F(q, G-1), CR1 by cluster) that the ``pretrends`` lead coefficients are 0.

        BJS (2024) Test 1: on the untreated observations only, regress the outcome on the unit and
        period effects, covariates and indicators of the ``k`` periods before entry.
        """
        pt = self.extra.get("pretrend")
        if pt is None:
            raise SpecificationError("No pre-trend regression was run: call imputation(..., pretrends=k) with k >= 1.")
        return dict(pt)

    def plot(self, ax=None, **kwargs):
        """Estimates by horizon with pointwise intervals (and pre-trend leads if estimated); returns the Axes."""
        from ..plots import plot_event_study

        fr = self.event_frame()
        lead = self.extra.get("pretrend_table")
        if lead is not None:
            fr = pd.concat([lead, fr], ignore_index=True)
        return plot_event_study(fr, ax=ax, **kwargs)


def _cluster_codes(vp, unit_codes):
    if vp.cluster is None:
        return unit_codes, int(unit_codes.max()) + 1
    c = vp.cluster[:, 0]
    return c, int(c.max()) + 1


def imputation(
    data: pd.DataFrame,
    *,
    outcome: str,
    unit: str,
    time: str,
    cohort: str,
    covariates: Sequence[str] = (),
    horizons: Sequence[int] | None = None,
    anticipation: int = 0,
    pretrends: int = 0,
    cluster: str | None = None,
    weights: str | None = None,
    leave_out: bool = False,
    level: float = 0.95,
    dropna: bool = False,
) -> ImputationResult:
    r"""Imputation estimator of Borusyak, Jaravel & Spiess (BJS, 2024).

    Parameters
    ----------
    data : pandas.DataFrame
        Long panel, balanced or not.
    outcome, unit, time, cohort : str
        Columns; ``cohort`` is the first treated period (never treated: NaN, inf, or 0 when no
        period is 0). Units treated in the first period are dropped (recorded): nothing untreated
        is observed for them.
    covariates : sequence of str, default=()
        Time-varying controls in the untreated-outcome model (common slopes).
    horizons : sequence of int or None, default=None
        Event times :math:`e = t - g` to report; ``None``: every observed horizon.
    anticipation : int, default=0
        Observations from :math:`g - \text{anticipation}` on count as treated.
    pretrends : int, default=0
        Number of leads for the BJS Test 1 (``pretrend_test()``); 0 skips it.
    cluster : str or None, default=None
        Cluster column for the variance (default: the unit). Must nest units.
    weights : str or None, default=None
        Weights of the untreated-outcome regression (WLS) and of the estimands (each treated
        observation weighted by it).
    leave_out : bool, default=False
        Leave-out averaging of :math:`\hat\tau` in the variance (see Notes).
    level : float, default=0.95
    dropna : bool, default=False

    Returns
    -------
    ImputationResult

    Notes
    -----
    1. Fit :math:`Y_{it} = \alpha_i + \lambda_t + X_{it}'\beta + \varepsilon_{it}` by (W)LS on the
       untreated observations :math:`\Omega_0` (never treated, and not-yet-treated periods
       :math:`t < g - \text{anticipation}`). The normal equations are solved exactly by
       eliminating the unit effects (Schur complement on the period effects and covariates).
    2. Impute :math:`\hat Y_{it}(0)` and :math:`\hat\tau_{it} = Y_{it} - \hat Y_{it}(0)` for the
       treated observations :math:`\Omega_1`. Treated observations whose unit has no untreated
       observation, or whose period has none, cannot be imputed: they are dropped, recorded and
       warned about.
    3. Estimands :math:`\hat\tau_w = \sum_{\Omega_1} w_{it}\hat\tau_{it}` with :math:`w` the
       normalised (weights of the) treated observations overall, or at horizon :math:`e`.

    Variance (BJS Theorem 3, as R ``didimputation``): :math:`\hat\tau_w = \sum_{it} v_{it}Y_{it}`
    with :math:`v_{it} = w_{it}` on :math:`\Omega_1` and
    :math:`v_{\Omega_0} = -W_0 Z_0 (Z_0'W_0Z_0)^{-1} Z_1' w_1` (BJS eq. 6). Then

    .. math:: \hat V = \sum_c \Big(\sum_{it \in c} v_{it}\,\tilde\varepsilon_{it}\Big)^2,

    :math:`\tilde\varepsilon_{it}` the untreated-model residual on :math:`\Omega_0` and
    :math:`\hat\tau_{it} - \bar\tau_{g,e}` on :math:`\Omega_1`, where
    :math:`\bar\tau_{g,e} = \sum v^2\hat\tau / \sum v^2` over the cohort :math:`g` x horizon
    :math:`e` cell (BJS eq. 10 with cohort-by-horizon groups, ``didimputation``'s choice). With
    ``leave_out=True``, :math:`\bar\tau` for an observation in cluster :math:`c` omits cluster
    :math:`c` (BJS Appendix A.6, reducing the downward bias from small cells); a cell that lies in
    a single cluster falls back to the full average. The variance is conservative when effects are
    heterogeneous within cells. No small-sample factor; normal inference.

    Relations: on a balanced panel without covariates the estimates equal the cell-count-weighted
    coefficients of the extended TWFE regression with a dummy for every treated (cohort, period)
    cell (Wooldridge 2021); with a single cohort entering in the second period, they equal
    Callaway–Sant'Anna with never-treated controls (``aggregate("simple")``) — tested.

    Examples
    --------
    >>> import evalkit as ek
    >>> r = ek.staggered.imputation(ek.datasets.load_mpdta(), outcome="lemp", unit="countyreal",
    ...                             time="year", cohort="first.treat")
    >>> round(r.estimate, 4)
    -0.0477
    """
    check_scalar(anticipation, "anticipation", Integral, min_val=0)
    check_scalar(pretrends, "pretrends", Integral, min_val=0)
    check_scalar(level, "level", Real, min_val=0.5, max_val=1, include_max=False)
    covariates = check_columns_arg(covariates, "covariates")
    clusters = check_columns_arg(cluster, "cluster")
    if len(clusters) > 1:
        raise SpecificationError(f"The 'cluster' parameter takes one column. Got {list(clusters)}.")
    vp = validate_panel(data, outcome=outcome, unit=unit, time=time, cohort=cohort, cluster=clusters or None,
                        weights=weights, covariates=covariates, dropna=dropna, already_treated="drop", stacklevel=3)
    n = vp.nobs
    u = np.asarray(vp.unit, np.int64)
    tt = np.asarray(vp.time, np.int64)
    g = np.asarray(vp.cohort, float)
    y = np.asarray(vp.y, float)
    w = np.ones(n) if vp.weights is None else np.asarray(vp.weights, float)
    Xc = np.asarray(vp.X, float)
    k = Xc.shape[1]
    N = int(u.max()) + 1
    treat = np.isfinite(g) & (tt >= g - anticipation)
    om0 = ~treat
    if not treat.any():
        raise DataError(f"Column {cohort!r}: no treated observations.")
    # -- step 1: untreated-outcome model on Omega_0 -------------------------------------------------
    periods0 = np.unique(tt[om0])
    tcol = np.full(int(tt.max()) + 1, -2, dtype=np.int64)  # -2: period absent from Omega_0
    tcol[periods0] = np.arange(periods0.size) - 1  # -1: the reference period (first)
    m = periods0.size - 1 + k

    def design(rows):
        M = np.zeros((rows.size, m))
        c = tcol[tt[rows]]
        ok = c >= 0
        M[np.flatnonzero(ok), c[ok]] = 1.0
        if k:
            M[:, periods0.size - 1:] = Xc[rows]
        return M

    r0 = np.flatnonzero(om0)
    u0, w0, y0 = u[r0], w[r0], y[r0]
    M0 = design(r0)
    Du = np.bincount(u0, weights=w0, minlength=N)
    B = np.zeros((N, m))
    np.add.at(B, u0, M0 * w0[:, None])
    C = M0.T @ (M0 * w0[:, None])
    has = Du > 0
    inv = np.zeros(N)
    inv[has] = 1.0 / Du[has]
    S = C - B.T @ (B * inv[:, None])

    def solve_theta(Ru, Rm):
        """Solve the Omega_0 normal equations with right-hand side (Ru: unit part, Rm: other part)."""
        am = np.linalg.solve(S, Rm - B.T @ (Ru * inv[:, None] if Ru.ndim == 2 else Ru * inv)) if m else np.zeros_like(Rm)
        au = (Ru - (B @ am)) * (inv[:, None] if Ru.ndim == 2 else inv)
        return au, am

    if m:
        sc = np.sqrt(np.maximum(np.diag(S), 1e-300))
        ev = np.linalg.eigvalsh(S / sc[:, None] / sc[None, :])
        if ev.min() <= 1e-10 * ev.max():
            raise EstimationError("The untreated-outcome model is not identified: period effects or covariates are "
                                  "collinear on the untreated observations (e.g. the not-yet-treated units do not "
                                  "connect the periods, or a covariate is constant within units). Drop the covariate "
                                  "or add never-treated units.")
    Ru = np.bincount(u0, weights=w0 * y0, minlength=N)
    Rm = M0.T @ (w0 * y0)
    alpha, gam = solve_theta(Ru, Rm)
    resid0 = y0 - alpha[u0] - M0 @ gam
    # -- step 2: impute Y(0) on Omega_1 ---------------------------------------------------------
    r1 = np.flatnonzero(treat)
    ok = has[u[r1]] & (tcol[tt[r1]] >= -1)
    dropped = list(vp.dropped)
    if not ok.all():
        bad_u = int((~has[u[r1]]).sum())
        bad_t = int((~ok).sum()) - bad_u
        rec = DropRecord("treated observations that cannot be imputed", int((~ok).sum()),
                         f"{bad_u} rows of units with no untreated observation, {bad_t} rows in periods with none")
        dropped.append(rec)
        warnings.warn(f"imputation: {rec}. Their effects are not identified without extrapolation.",
                      DroppedRowsWarning, stacklevel=2)
        r1 = r1[ok]
    if r1.size == 0:
        raise DataError("imputation: no treated observation can be imputed (no untreated observation of the treated "
                        "units or periods).")
    M1 = design(r1)
    u1, w1 = u[r1], w[r1]
    y0hat = alpha[u1] + M1 @ gam
    tau = y[r1] - y0hat
    e1 = (tt[r1] - g[r1]).astype(np.int64)
    # -- step 3: estimands -------------------------------------------------------------------------
    all_h = np.unique(e1)
    if horizons is None:
        hz = all_h
    else:
        hz = np.array(sorted({int(h) for h in horizons}), dtype=np.int64)
        missing = sorted(set(hz.tolist()) - set(all_h.tolist()))
        if missing:
            raise SpecificationError(f"horizons {missing} have no imputable treated observations; observed horizons "
                                     f"are {all_h.tolist()}.")
    W1 = np.zeros((r1.size, 1 + hz.size))
    W1[:, 0] = w1 / w1.sum()
    for j, h in enumerate(hz, start=1):
        mk = e1 == h
        W1[mk, j] = w1[mk] / w1[mk].sum()
    est = W1.T @ tau
    # -- variance (BJS Theorem 3) ------------------------------------------------------------------
    RuW = np.zeros((N, W1.shape[1]))
    np.add.at(RuW, u1, W1)
    RmW = M1.T @ W1
    au, am = solve_theta(RuW, RmW)
    v0 = -w0[:, None] * (au[u0] + M0 @ am)  # (n0, H)
    cl, G = _cluster_codes(vp, u)
    c0, c1 = cl[r0], cl[r1]
    gcode = pd.factorize(pd.Series(g[r1]).astype(str) + "|" + pd.Series(e1).astype(str))[0]
    ncell = int(gcode.max()) + 1
    Ssum = np.zeros((G, W1.shape[1]))
    np.add.at(Ssum, c0, v0 * resid0[:, None])
    for j in range(W1.shape[1]):
        v1 = W1[:, j]
        v2 = v1 * v1
        num = np.bincount(gcode, weights=v2 * tau, minlength=ncell)
        den = np.bincount(gcode, weights=v2, minlength=ncell)
        tbar = np.divide(num, den, out=np.zeros(ncell), where=den > 0)[gcode]
        if leave_out:
            key = gcode.astype(np.int64) * G + c1
            kk, inv_k = np.unique(key, return_inverse=True)
            num_c = np.bincount(inv_k, weights=v2 * tau)[inv_k]
            den_c = np.bincount(inv_k, weights=v2)[inv_k]
            den_lo = den[gcode] - den_c
            use = den_lo > 1e-12 * np.maximum(den[gcode], 1e-300)
            tbar = np.where(use, (num[gcode] - num_c) / np.where(use, den_lo, 1.0), tbar)
        np.add.at(Ssum[:, j], c1, v1 * (tau - tbar))
    V = Ssum.T @ Ssum
    se = np.sqrt(np.diag(V))
    terms = ["ATT (overall)"] + [f"e={int(h)}" for h in hz]
    table = tidy_table(terms, est, se, None, level)
    table.insert(1, "event_time", pd.array([None] + [int(h) for h in hz], dtype="Int64"))
    table["n_obs"] = np.concatenate([[r1.size], [int((e1 == h).sum()) for h in hz]]).astype(np.int64)
    ax = vp.time_axis
    tau_frame = pd.DataFrame({
        unit: np.asarray(vp.unit_levels)[u1] if vp.unit_levels is not None else u1,
        time: [ax.label(x) for x in tt[r1]],
        "cohort": [ax.label(x) for x in g[r1]],
        "event_time": e1, "tau_hat": tau, "y0_hat": y0hat,
    })
    extra = {"tau_frame": tau_frame, "v0": v0, "v1": W1, "omega0_rows": r0, "omega1_rows": r1}
    notes = []
    if pretrends:
        extra.update(_pretrend(vp, data, unit, time, om0, g, tt, int(pretrends), clusters, level))
        notes.append(f"Pre-trend test (BJS Test 1): {pretrends} lead indicators added to the untreated-outcome model "
                     f"on the untreated observations; CR1 Wald test.")
    if leave_out:
        notes.append("Leave-out (by cluster) averages of tau-hat in the variance.")
    clname = clusters[0] if clusters else unit
    conv = Conventions(
        estimator="Borusyak-Jaravel-Spiess imputation (unit + period effects" + (" + covariates" if k else "")
                  + " fitted on untreated observations)",
        vcov_type="BJS", vcov_description=f"BJS (2024) Theorem 3 conservative variance clustered by {clname!r} "
                  "(tau-bar by cohort x horizon, weights v^2; didimputation); no small-sample factor",
        distribution="normal", df=None, cluster=(clname,), n_clusters=(G,), small_sample="none",
        weights=weights, fixed_effects=(unit, time), absorb_method="exact (Schur complement)",
        reference_period=f"none (imputation); anticipation={anticipation}", level=float(level), notes=tuple(notes),
    )
    sample = SampleInfo(n_obs=n - (int((~ok).sum()) if not ok.all() else 0), n_input_rows=vp.n_input_rows,
                        n_units=vp.n_units, n_periods=vp.n_periods, balanced=vp.is_balanced,
                        n_treated_units=int(np.unique(u[np.isfinite(g)]).size), dropped=tuple(dropped))
    return ImputationResult(table, V, conv, sample, extra)


def _pretrend(vp, data, unit, time, om0, g, tt, K, clusters, level) -> dict:
    from ..did._engine import FitContext, fe_codes_for, fit_absorbed, infer
    from ..did.event_study import _subset, wald_test

    keep = om0
    sub = _subset(vp, keep, DropRecord("treated observations (pre-trend regression uses untreated only)",
                                       int((~keep).sum())))
    gs, ts = g[keep], tt[keep]
    lead = np.where(np.isfinite(gs), ts - np.where(np.isfinite(gs), gs, 0), np.nan)
    cols, names = [], []
    for j in range(1, K + 1):
        d = (lead == -j).astype(float)
        if d.any():
            cols.append(d)
            names.append(f"e=-{j}")
    if not cols:
        raise DataError(f"pretrends={K}: no untreated observation lies within {K} periods before entry.")
    X = np.column_stack(cols + ([np.asarray(sub.X)] if sub.X.shape[1] else []))
    fe = fe_codes_for(sub, data, ("unit", "time"), unit, time)
    fit, info, Xraw = fit_absorbed(sub.y, X, tuple(names) + sub.covariate_names, fe, sub.weights, n_protected=len(names))
    cl = sub.cluster if sub.cluster is not None else sub.unit[:, None]
    ctx = FitContext(fit, fe, info, Xraw, sub.y, cl, clusters or (unit,), None, tuple(range(len(names))))
    table, vr, _ = infer(ctx, "CR1", small_sample=None, level=level, seed=None, n_boot=0, boot_weights="rademacher")
    q = len(names)
    wt = wald_test(fit.beta[:q], np.asarray(vr.vcov)[:q, :q], vr.df)
    lt = table.iloc[:q][["term", "estimate", "std_error", "statistic", "p_value", "conf_low", "conf_high"]].copy()
    lt.insert(1, "event_time", pd.array([-int(nm.split("-")[1]) for nm in names], dtype="Int64"))
    return {"pretrend": wt, "pretrend_table": lt.reset_index(drop=True)}
