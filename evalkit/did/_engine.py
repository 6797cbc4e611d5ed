"""Shared engine of the regression-based DiD designs: validated panel -> absorbed OLS -> inference."""
from __future__ import annotations

import logging
import warnings
from dataclasses import dataclass

import numpy as np
import pandas as pd

from .._validation import check_option, check_scalar
from ..data.schema import ValidatedPanel, check_clusters
from ..errors import CollinearityWarning, EstimationError, InferenceWarning, SpecificationError
from ..inference.absorb import AbsorbInfo, FixedEffects, absorb
from ..inference.vcov import (
    VCOV_TYPES,
    LinearFit,
    SmallSampleCorrection,
    VcovResult,
    compute_vcov,
    wild_cluster_bootstrap,
)
from ..results import Conventions, SampleInfo, tidy_table

logger = logging.getLogger(__name__)

#: CR2 keeps fixed effects that are not nested in the clusters in the hat matrix as dummies;
#: beyond this many dummy columns that is infeasible.
MAX_CR2_DUMMIES = 5_000


@dataclass(frozen=True)
class FitContext:
    """Everything needed to recompute inference on a fitted model (``with_vcov``)."""

    fit: LinearFit
    fe: FixedEffects
    absorb_info: AbsorbInfo
    regressors: np.ndarray  # raw (n, k) regressors before absorption
    outcome: np.ndarray  # raw (n,) outcome
    clusters: np.ndarray | None  # (n, c) codes
    cluster_names: tuple[str, ...]
    treated: np.ndarray | None  # (n,) 0/1 for counting treated clusters
    effect_terms: tuple[int, ...]  # coefficients reported as effects (wild bootstrap targets)
    unit: np.ndarray | None = None  # (n,) unit codes
    small_sample: SmallSampleCorrection | None = None


def fe_codes_for(vp: ValidatedPanel, data: pd.DataFrame, fixed_effects, unit_name: str | None, time_name: str) -> FixedEffects:
    """Integer codes of the requested fixed effects ("unit", "time", or column names)."""
    codes, names = [], []
    for f in fixed_effects:
        if f == "unit" or (unit_name is not None and f == unit_name):
            if vp.unit is None:
                raise SpecificationError("fixed_effects contains 'unit' but no unit column was given.")
            codes.append(vp.unit)
            names.append(unit_name or "unit")
        elif f == "time" or f == time_name:
            codes.append(vp.time)
            names.append(time_name)
        else:
            if f not in data.columns:
                raise SpecificationError(f"fixed_effects: column {f!r} not found in data.")
            col = data[f].iloc[vp.row_index] if len(vp.row_index) != len(data) else data[f]
            if col.isna().any():
                raise SpecificationError(f"fixed_effects: column {f!r} has missing values.")
            codes.append(pd.factorize(col, sort=True)[0].astype(np.int64))
            names.append(f)
    return FixedEffects(tuple(codes), tuple(names))


def fit_absorbed(y: np.ndarray, X: np.ndarray, names: tuple[str, ...], fe: FixedEffects, w: np.ndarray | None,
                 n_protected: int | None = None) -> tuple[LinearFit, AbsorbInfo, np.ndarray]:
    """OLS/WLS of y on X with the fixed effects absorbed; clear errors for collinearity.

    The first ``n_protected`` columns (the treatment terms; default all) raise when the fixed
    effects absorb them; later columns (covariates) are dropped with a warning instead, as R
    fixest does (e.g. sex is constant within member and absorbed by member effects).
    """
    Z = np.empty((len(y), 1 + X.shape[1]), order="F")
    Z[:, 0] = y
    Z[:, 1:] = X
    Zr, info = absorb(Z, fe, w, overwrite=True)
    yr, Xr = Zr[:, 0], Zr[:, 1:]
    n, k = Xr.shape
    n_protected = k if n_protected is None else n_protected
    if n <= k + info.n_params:
        raise EstimationError(
            f"Not enough observations ({n}) for {k} regressors and {info.n_params} fixed-effect parameters."
        )
    # a regressor the fixed effects explain entirely (e.g. treatment constant within units and periods)
    wsum = float(n if w is None else w.sum())
    drop = []
    for j, nm in enumerate(names):
        xj, xr = X[:, j], Xr[:, j]
        wx = xj if w is None else w * xj
        ss_tot = float(wx @ xj)
        ss_raw = max(ss_tot - float(wx.sum()) ** 2 / wsum, 0.0)
        if ss_raw <= 1e-12 * max(ss_tot, 1e-300):
            ss_raw = 0.0
        ss_res = float(xr @ (xr if w is None else w * xr))
        if ss_raw == 0 and j < n_protected:
            raise EstimationError(f"Regressor {nm!r} has no variation (it is constant). Remove it.")
        if ss_res <= 1e-10 * max(ss_raw, 1e-300):
            if j >= n_protected:
                drop.append(j)
                continue
            raise EstimationError(
                f"Regressor {nm!r} is collinear with the fixed effects {list(fe.names)}: nothing is left to "
                f"estimate it from (e.g. every treated unit is treated in all its periods, all units are "
                f"treated, or a covariate is constant within units). Check the treatment timing or drop it."
            )
    if drop:
        gone = [names[j] for j in drop]
        msg = (f"Covariates {gone} are constant within the fixed effects {list(fe.names)} (absorbed by them) "
               f"and were removed from the regression, as R fixest does.")
        warnings.warn(msg, CollinearityWarning, stacklevel=4)
        logger.info(msg)
        keep = [j for j in range(k) if j not in drop]
        Xr, X = Xr[:, keep], X[:, keep]
        names = tuple(names[j] for j in keep)
        k = len(keep)
    XtWX = Xr.T @ (Xr if w is None else Xr * w[:, None])
    scale = 1.0 / np.sqrt(np.diag(XtWX))
    vals = np.linalg.eigvalsh(XtWX * scale[:, None] * scale[None, :])  # correlation scale: units don't matter
    if vals.min() <= 1e-10 * vals.max():
        raise EstimationError(
            f"The regressors {list(names)} are collinear after absorbing the fixed effects (smallest/largest "
            f"eigenvalue {vals.min() / vals.max():.2e}). Drop redundant covariates."
        )
    bread = np.linalg.inv(XtWX)
    beta = bread @ (Xr.T @ (yr if w is None else w * yr))
    resid = yr - Xr @ beta
    fit = LinearFit(
        X=Xr, resid=resid, beta=beta, bread=bread, weights=w, names=tuple(names),
        n_fe_params=info.n_params, fe_sizes=fe.sizes if len(fe) else (), fe_codes=fe.codes, y=yr,
        fe_rank_exact=info.rank is not None,
    )
    return fit, info, X


def _hat_design_for_cr2(ctx: FitContext, with_outcome: bool = False):
    """Regressors residualised on the FEs nested in the cluster; other FEs as dummy columns.

    CR2 and the wild cluster bootstrap need this design: the fixed effects nested in the clusters
    can be absorbed (their projection is block-diagonal by cluster), the others must stay in the
    hat matrix (Pustejovsky & Tipton 2018; for the bootstrap, cluster-level weights commute only
    with within-cluster projections).
    """
    from ..inference.vcov import _nested

    cl = ctx.clusters[:, 0]
    nested, other = [], []
    for codes, name in zip(ctx.fe.codes, ctx.fe.names):
        (nested if _nested(codes, cl) else other).append((codes, name))
    w = ctx.fit.weights
    if w is not None and not with_outcome:
        for codes, name in nested:
            lo = np.full(int(codes.max()) + 1, np.inf)
            hi = np.full(int(codes.max()) + 1, -np.inf)
            np.minimum.at(lo, codes, w)
            np.maximum.at(hi, codes, w)
            if np.any(hi - lo > 1e-12 * np.maximum(np.abs(hi), 1.0)):
                raise SpecificationError(
                    f"vcov='CR2' with weights that vary within the levels of {name!r} (absorbed, nested in the "
                    f"clusters) is not supported: the bias-reduction matrices are then not low-rank. Use unit-level "
                    f"weights (constant within {name!r}), vcov='CR1', or vcov='wild'."
                )
    # the intercept spans every cluster: absorb it only through a nested effect, else keep it explicit
    dummies = [] if nested else [np.ones((len(cl), 1))]
    for codes, name in other:
        size = int(codes.max()) + 1
        if size - 1 > MAX_CR2_DUMMIES:
            raise SpecificationError(
                f"vcov='CR2' and vcov='wild' keep fixed effects not nested in the clusters in the hat matrix; {name!r} has {size} "
                f"levels, too many. Cluster at a level that nests {name!r}, or use vcov='CR1'."
            )
        D = np.zeros((len(codes), size - 1))
        rows = np.flatnonzero(codes >= 1)
        D[rows, codes[rows] - 1] = 1.0
        dummies.append(D)
    Xraw = np.column_stack([ctx.regressors] + dummies) if dummies else ctx.regressors
    Zraw = np.column_stack([ctx.outcome, Xraw])
    if nested:
        fe_n = FixedEffects(tuple(c for c, _ in nested), tuple(nm for _, nm in nested))
        Xh, _ = absorb(Zraw, fe_n, ctx.fit.weights)
    else:
        Xh = Zraw
    yh, Xh = Xh[:, 0], Xh[:, 1:]
    # drop dummy columns made redundant (zero after absorption) or collinear, greedily on the Gram matrix
    k0 = ctx.regressors.shape[1]
    gram = Xh.T @ Xh
    d = np.sqrt(np.maximum(np.diag(gram), 1e-300))
    corr = gram / d[:, None] / d[None, :]
    keep = [True] * k0
    chosen = list(range(k0))
    for j in range(k0, Xh.shape[1]):
        if gram[j, j] < 1e-12 * len(Xh):
            keep.append(False)
            continue
        idx = chosen + [j]
        if np.linalg.eigvalsh(corr[np.ix_(idx, idx)]).min() > 1e-10:
            chosen.append(j)
            keep.append(True)
        else:
            keep.append(False)
    Xh = Xh[:, np.array(keep)]
    if with_outcome:
        return Xh, np.arange(ctx.regressors.shape[1]), yh
    return Xh, np.arange(ctx.regressors.shape[1])


def _fit_in_hat_space(ctx: FitContext) -> LinearFit:
    """The same regression with non-nested fixed effects as explicit dummies (same beta, residuals)."""
    Xh, idx, yh = _hat_design_for_cr2(ctx, with_outcome=True)
    w = ctx.fit.weights
    bread = np.linalg.pinv(Xh.T @ (Xh if w is None else Xh * w[:, None]), hermitian=True)
    beta = bread @ (Xh.T @ (yh if w is None else w * yh))
    return LinearFit(X=Xh, resid=yh - Xh @ beta, beta=beta, bread=bread, weights=w, names=ctx.fit.names,
                     n_fe_params=ctx.fit.k_all - Xh.shape[1], y=yh)


def infer(ctx: FitContext, vcov: str, *, small_sample: SmallSampleCorrection | None, level: float,
          seed, n_boot: int, boot_weights: str) -> tuple[pd.DataFrame, VcovResult, dict]:
    """Tidy table and covariance for the requested inference."""
    check_option(vcov, "vcov", VCOV_TYPES)
    check_scalar(level, "level", float, min_val=0.5, max_val=1.0, include_max=False)
    fit = ctx.fit
    if vcov in ("iid", "HC1"):
        if vcov == "HC1" and any(n == "unit" or s > fit.nobs / 50 for n, s in zip(ctx.fe.names, fit.fe_sizes)):
            warnings.warn(
                "vcov='HC1' with unit fixed effects in a short panel is inconsistent (Stock & Watson 2008) "
                "and ignores serial correlation within units: cluster on the unit (vcov='CR1', the default).",
                InferenceWarning, stacklevel=4,
            )
        vr = compute_vcov(fit, vcov)
    else:
        if ctx.clusters is None:
            raise SpecificationError(f"vcov={vcov!r} needs a cluster column.")
        for j, nm in enumerate(ctx.cluster_names):
            check_clusters(ctx.clusters[:, j], nm, ctx.treated, stacklevel=5)
        if vcov == "CR2":
            hd = _hat_design_for_cr2(ctx)
            vr = compute_vcov(fit, "CR2", clusters=ctx.clusters, cluster_names=ctx.cluster_names, hat_design=hd)
        else:
            vr = compute_vcov(fit, "CR1" if vcov == "wild" else vcov, clusters=ctx.clusters,
                              cluster_names=ctx.cluster_names, small_sample=small_sample)
    se = np.sqrt(np.diag(vr.vcov))
    table = tidy_table(fit.names, fit.beta, se, vr.df, level)
    table["df"] = vr.df if vr.df is not None else np.inf
    extra: dict = {}
    if vcov == "wild":
        if ctx.clusters.shape[1] != 1:
            raise SpecificationError("vcov='wild' supports one clustering variable.")
        boots = {}
        fit_h = _fit_in_hat_space(ctx)
        for j in ctx.effect_terms:
            b = wild_cluster_bootstrap(fit_h, ctx.clusters[:, 0], j, n_boot=n_boot, weights_type=boot_weights,
                                       seed=seed, level=level, small_sample=small_sample, K=vr.K)
            table.loc[j, "p_value"] = b["p_value"]
            table.loc[j, "conf_low"], table.loc[j, "conf_high"] = b["conf_int"]
            boots[fit.names[j]] = b
        extra["wild"] = boots
        vr = VcovResult(
            vr.vcov, "wild",
            f"wild cluster bootstrap-t (null imposed, {boot_weights} weights, "
            f"{next(iter(boots.values()))['n_boot'] if boots else n_boot} draws"
            f"{', all sign patterns enumerated' if boots and next(iter(boots.values()))['enumerated'] else ''}, seed={seed}): "
            f"p-values and intervals (by test inversion) for the effect terms come from the bootstrap; "
            f"std_error and statistic are CR1 ({vr.description})",
            vr.df, vr.n_clusters, vr.cluster_names, vr.ssc, vr.K, vr.extra,
        )
    extra["_vcov"] = vr  # how the standard errors were computed (type, clusters, ssc, K): derived results reuse it
    return table, vr, extra


def fe_count_note(fe: FixedEffects, absorb_info: AbsorbInfo) -> str:
    """The K convention when the fixed effects' parameter count is fixest's rather than their rank."""
    if absorb_info.rank is not None or len(fe) < 2:
        return ""
    m = len(fe)
    return (f"{m} fixed effects absorbed ({', '.join(fe.names)}): for CR1 (and the wild bootstrap's CR1 t statistic) K counts their "
            f"parameters as R fixest does by default, sum of levels - {m - 1} = {absorb_info.n_params}, an upper bound "
            f"on their rank when they overlap further (e.g. an effect constant within units, or org x year with unit "
            f"and year effects); iid and HC1 use their exact rank when it can be computed, as lm with dummies "
            f"(vcov_description states K).")


def build_conventions(estimator: str, vr: VcovResult, *, level: float, weights: str | None, fe: FixedEffects,
                      absorb_info: AbsorbInfo, reference_period: str | None = None, seed=None,
                      notes: tuple[str, ...] = ()) -> Conventions:
    note = fe_count_note(fe, absorb_info)
    if note and note not in notes:
        notes = tuple(notes) + (note,)
    df = vr.df
    if df is None:
        dist = "normal"
    elif np.ndim(df) == 0:
        dist = f"t({float(df):.6g})"
    else:
        dist = "t(Satterthwaite df per coefficient: " + ", ".join(f"{d:.4g}" for d in np.atleast_1d(df)) + ")"
    return Conventions(
        estimator=estimator,
        vcov_type=vr.vcov_type,
        vcov_description=vr.description,
        distribution=dist,
        df=None if df is None else (float(df) if np.ndim(df) == 0 else None),
        cluster=vr.cluster_names,
        n_clusters=vr.n_clusters,
        small_sample=vr.ssc.describe() if vr.ssc else ("Bell-McCaffrey bias reduction" if vr.vcov_type == "CR2" else ""),
        weights=weights,
        fixed_effects=fe.names,
        absorb_method=absorb_info.method,
        reference_period=reference_period,
        level=level,
        seed=seed if isinstance(seed, (int, type(None))) else None,
        notes=notes,
    )


def sample_info(vp: ValidatedPanel, treated_units: int | None = None) -> SampleInfo:
    n_single = 0
    if vp.unit is not None:
        n_single = int((np.bincount(vp.unit) == 1).sum())
    return SampleInfo(
        n_obs=vp.nobs, n_input_rows=vp.n_input_rows, n_units=vp.n_units, n_periods=vp.n_periods,
        balanced=vp.is_balanced if vp.unit is not None else None, n_treated_units=treated_units,
        n_singletons=n_single, dropped=vp.dropped,
    )
