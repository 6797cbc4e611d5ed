"""Two-way fixed-effects difference-in-differences (the AQC evaluations' regression)."""
from __future__ import annotations

import logging
import warnings
from typing import Sequence

import numpy as np
import pandas as pd

from .._validation import check_columns_arg, check_option, check_scalar
from ..data.schema import validate_panel
from ..errors import DataError, SpecificationError
from ..inference.vcov import VCOV_TYPES, SmallSampleCorrection
from ._engine import FitContext, build_conventions, fe_codes_for, fit_absorbed, infer, sample_info
from .results import DiDResult

__all__ = ["twfe", "did_2x2"]

logger = logging.getLogger(__name__)


def _interact(d: np.ndarray, by_values: pd.Series, name: str, by: str) -> tuple[np.ndarray, list[str]]:
    """Split the 0/1 treatment into one column per level of ``by`` (among treated rows)."""
    treated = d == 1
    levels = pd.Index(pd.unique(by_values[treated])).sort_values()
    if levels.hasnans:
        raise SpecificationError(f"by={by!r}: missing values among treated rows.")
    cols = [(treated & (by_values.to_numpy() == lv)).astype(float) for lv in levels]
    return np.column_stack(cols), [f"{name}[{by}={lv}]" for lv in levels]


def twfe(
    data: pd.DataFrame,
    *,
    outcome: str,
    unit: str,
    time: str,
    treatment: str,
    covariates: Sequence[str] = (),
    fixed_effects: Sequence[str] = ("unit", "time"),
    cluster: str | Sequence[str] | None = None,
    weights: str | None = None,
    vcov: str = "CR1",
    ssc: SmallSampleCorrection | None = None,
    by: str | None = None,
    level: float = 0.95,
    seed: int | np.random.Generator | None = None,
    n_boot: int = 999,
    boot_weights: str = "rademacher",
    dropna: bool = False,
    drop_singletons: bool = False,
    freeze_covariates: bool = False,
    check_bad_controls: bool = True,
) -> DiDResult:
    r"""Two-way fixed-effects DiD: :math:`y_{it} = \alpha_i + \lambda_t + \tau D_{it} + X_{it}'\gamma + \varepsilon_{it}`.

    Parameters
    ----------
    data : pandas.DataFrame
        Long panel, one row per unit and period; unbalanced panels (enrollment churn) are fine.
    outcome, unit, time : str
        Outcome (numeric or boolean: a 0/1 quality measure gives a linear probability model, in
        probability points), unit identifier (member id; strings fine), time (integers, Periods, dates).
    treatment : str
        0/1 treated-and-post indicator (absorbing).
    covariates : sequence of str, default=()
        Adjusters (age, sex, risk score, ...). Categorical columns are expanded to dummies.
    fixed_effects : sequence of str, default=("unit", "time")
        Absorbed effects: ``"unit"``, ``"time"`` or any column names (e.g. ``"org_id"``).
    cluster : str or list of str or None, default=None
        Clustering variable(s); ``None`` clusters on ``unit`` (recorded in the conventions).
        Two names give two-way clustering.
    weights : str or None, default=None
        Observation weights (propensity or enrollment weights): weighted least squares.
    vcov : {"CR1", "CR0", "CR2", "wild", "HC1", "iid"}, default="CR1"
        See :mod:`evalkit.inference.vcov`. ``"CR1"`` follows R fixest: G/(G−1)·(N−1)/(N−K), K counts the
        regressors and the fixed effects not nested in the clusters; t(G−1) inference.
    ssc : SmallSampleCorrection or None
        Other CR1 conventions, e.g. ``ek.inference.ssc(k_fixef="full")`` (every dummy counted, as
        statsmodels/``lm``), ``ssc(k_adj=False)`` (G/(G−1) only).
    by : str or None
        Report the effect separately by the levels of this column among treated rows (e.g. entry
        cohort, or years in the contract): the treatment is split into one indicator per level.
    level : float, default=0.95
        Confidence level.
    seed, n_boot, boot_weights
        Wild cluster bootstrap settings (``vcov="wild"``): seed (int or Generator), draws, and
        ``"rademacher"`` (all 2^G sign patterns when 2^G ≤ n_boot) or ``"webb"``.
    dropna, drop_singletons : bool, default=False
        Data-contract options (see :func:`evalkit.data.validate_panel`).
    freeze_covariates : bool, default=False
        Use each unit's covariate values in its first observed period (baseline) instead of the
        current ones: a risk score that responds to global-budget incentives after entry is a bad
        control. Frozen covariates are constant within unit, so with unit fixed effects they enter
        interacted with period dummies (baseline characteristics shape the trend) — terms
        ``x(baseline):t=...``.
    check_bad_controls : bool, default=True
        Warn (``BadControlWarning``) when a time-varying covariate itself moves with treatment
        (its own TWFE DiD is significant at 5%, CR1). Only with unit fixed effects, where it measures
        within-unit change after entry rather than a level difference between groups.

    Returns
    -------
    DiDResult

    Notes
    -----
    Fixed effects are absorbed, never expanded into dummies: with two effects where one has few
    levels (periods), exactly by Frisch–Waugh–Lovell in cross-product space (unbalanced and weighted
    panels included); otherwise by alternating projections to 1e-12. Singletons are kept (R fixest).
    With staggered adoption the TWFE coefficient is a weighted average of cohort-period effects with
    possibly negative weights (Goodman-Bacon 2021); use ``by=`` or the staggered module.

    Examples
    --------
    >>> import evalkit as ek
    >>> df = ek.datasets.load_mpdta()
    >>> df["d"] = ((df["first.treat"] > 0) & (df["year"] >= df["first.treat"])).astype(int)
    >>> res = ek.did.twfe(df, outcome="lemp", unit="countyreal", time="year", treatment="d")
    >>> round(res.estimate, 6), round(res.std_error, 6)
    (-0.036549, 0.013265)
    """
    check_option(vcov, "vcov", VCOV_TYPES, "twfe")
    check_scalar(n_boot, "n_boot", (int, np.integer), min_val=1)
    fixed_effects = check_columns_arg(fixed_effects, "fixed_effects")
    clusters = check_columns_arg(cluster, "cluster") or (unit,)
    covariates = check_columns_arg(covariates, "covariates")
    vp = validate_panel(
        data, outcome=outcome, unit=unit, time=time, treatment=treatment, cluster=clusters,
        weights=weights, covariates=covariates, dropna=dropna, drop_singletons=drop_singletons,
    )
    if by:
        if by not in data.columns:
            raise SpecificationError(f"by={by!r}: column not found in data.")
        by_vals = data[by].iloc[vp.row_index].reset_index(drop=True)
        D, dnames = _interact(vp.treatment, by_vals, treatment, by)
    else:
        D, dnames = vp.treatment[:, None], [treatment]
    fe = fe_codes_for(vp, data, fixed_effects, unit, time)
    Xc, cnames = vp.X, vp.covariate_names
    if freeze_covariates and Xc.shape[1]:
        Xc, cnames = _baseline_covariates(vp, "unit" in fixed_effects or unit in fixed_effects)
    X = np.column_stack([D, Xc]) if Xc.shape[1] else D
    names = tuple(dnames) + tuple(cnames)
    fit, info, X = fit_absorbed(vp.y, X, names, fe, vp.weights, n_protected=D.shape[1])
    ctx = FitContext(fit, fe, info, X, vp.y, vp.cluster, clusters, vp.treatment, tuple(range(D.shape[1])), vp.unit, ssc)
    table, vr, extra = infer(ctx, vcov, small_sample=ssc, level=level, seed=seed, n_boot=n_boot, boot_weights=boot_weights)
    notes = []
    if by and vcov in ("CR0", "CR1") and vp.cluster is not None:
        notes += _few_treated_clusters_by_term(D, dnames, vp.cluster[:, 0], clusters[0])
    unit_fe = "unit" in fixed_effects or unit in fixed_effects
    if check_bad_controls and unit_fe and not freeze_covariates and fit.k > D.shape[1]:
        notes += _bad_control_check(fit, D.shape[1], vp.cluster[:, 0], fit.k - D.shape[1])
    if freeze_covariates:
        notes.append("Covariates frozen at each unit's first observed period (baseline).")
    if _staggered(vp):
        notes.append(
            "Staggered adoption (treatment starts in several periods): the TWFE coefficient averages cohort-period "
            "effects with weights that can be negative when effects grow over time (Goodman-Bacon 2021); "
            "compare with ek.staggered estimators or report by='cohort'."
        )
    if cluster is None and vcov not in ("iid", "HC1"):
        notes.append(f"cluster=None: standard errors clustered on the unit ({unit!r}).")
    conv = build_conventions("Two-way fixed effects DiD (OLS" + (", weighted)" if weights else ")"), vr,
                             level=level, weights=weights, fe=fe, absorb_info=info, seed=seed, notes=tuple(notes))
    if vp.unit_entry is not None:
        treated_units = int(np.count_nonzero(vp.unit_entry < vp.n_periods))
    else:
        present = np.zeros(int(vp.unit.max()) + 1, dtype=bool)
        present[vp.unit[vp.treatment == 1]] = True
        treated_units = int(present.sum())
    return DiDResult(table, vr.vcov, conv, sample_info(vp, treated_units), {"_context": ctx, **extra})


def _baseline_covariates(vp, unit_fe: bool) -> tuple[np.ndarray, tuple[str, ...]]:
    """Covariates at each unit's first observed period; interacted with periods under unit FE."""
    n_u = int(vp.unit.max()) + 1
    first = np.full(n_u, np.iinfo(np.int64).max)
    np.minimum.at(first, vp.unit, vp.time)
    rows = np.flatnonzero(vp.time == first[vp.unit])
    base = np.empty((n_u, vp.X.shape[1]))
    base[vp.unit[rows]] = vp.X[rows]
    B = base[vp.unit]
    if not unit_fe:
        return B, tuple(f"{c}(baseline)" for c in vp.covariate_names)
    cols, names = [], []
    for j, c in enumerate(vp.covariate_names):
        for p in range(1, vp.n_periods):
            cols.append(B[:, j] * (vp.time == p))
            names.append(f"{c}(baseline):t={vp.time_axis.levels[p]}")
    return np.column_stack(cols), tuple(names)


def _bad_control_check(fit, n_effects: int, cluster: np.ndarray, n_cov: int) -> list[str]:
    """Regress each absorbed covariate on the absorbed treatment; warn when it moves with treatment."""
    from scipy import stats

    from ..errors import BadControlWarning
    from ..inference.vcov import cluster_scores

    notes = []
    if n_cov == 0:
        return notes
    w = fit.weights
    # treated-and-post, residualised on the fixed effects
    d = fit.X[:, 0] if n_effects == 1 else fit.X[:, :n_effects].sum(axis=1)
    wd = d if w is None else w * d
    dd = float(wd @ d)
    Xc = fit.X[:, n_effects:n_effects + n_cov]
    b = (wd @ Xc) / dd  # (n_cov,) slopes of each covariate on treatment
    G = int(cluster.max()) + 1
    # cluster sums of d * w * (x - b d) = cluster sums of wd*x - b * cluster sums of wd*d
    s_x = cluster_scores(Xc, d, w, cluster, G)  # (G, n_cov): sum_g w d x
    s_d = np.bincount(cluster, weights=wd * d, minlength=G)
    s = s_x - s_d[:, None] * b[None, :]
    se = np.sqrt(G / (G - 1) * np.sum(s**2, axis=0)) / dd
    for j in range(n_cov):
        if not (np.isfinite(b[j]) and se[j] > 0):
            continue
        if 2 * stats.t.sf(abs(b[j] / se[j]), G - 1) < 0.05:
            name = fit.names[n_effects + j]
            msg = (f"Covariate {name!r} moves with treatment (its own DiD: {b[j]:.4g}, SE {se[j]:.3g}): adjusting for it "
                   f"can absorb part of the effect (a bad control). Consider freeze_covariates=True.")
            warnings.warn(msg, BadControlWarning, stacklevel=3)
            notes.append(msg)
    return notes


def _few_treated_clusters_by_term(D: np.ndarray, names, cluster: np.ndarray, cluster_name: str) -> list[str]:
    """Warn when a ``by=`` effect term rests on few treated clusters (CR1 under-covers there)."""
    from ..data.schema import MIN_TREATED_CLUSTERS
    from ..errors import FewClustersWarning

    G = int(cluster.max()) + 1
    counts = [int(np.count_nonzero(np.bincount(cluster, weights=D[:, j], minlength=G))) for j in range(D.shape[1])]
    few = [(n, c) for n, c in zip(names, counts) if c < MIN_TREATED_CLUSTERS]
    if not few:
        return []
    shown = ", ".join(f"{n} ({c})" for n, c in few[:6]) + (" ..." if len(few) > 6 else "")
    msg = (f"{len(few)} effect terms rest on fewer than {MIN_TREATED_CLUSTERS} treated clusters of {cluster_name!r}: "
           f"{shown}. CR1 intervals under-cover there; use vcov='CR2' or vcov='wild' for these terms.")
    warnings.warn(msg, FewClustersWarning, stacklevel=3)
    return [msg]


def _staggered(vp) -> bool:
    """True when treatment switches on at more than one calendar period (among units seen switching).

    A count of "entry times" from the data would be misleading under churn: a member first seen
    after the organisation entered looks like a later entrant. Only the fact is reported.
    """
    if vp.unit is None or vp.treatment is None:
        return False
    if getattr(vp, "unit_entry", None) is not None:
        # absorbing treatment: a unit with an untreated row and a treated one switched at its entry
        starts = vp.unit_entry[vp.unit_has_untreated & (vp.unit_entry < vp.n_periods)]
        return bool(starts.size and starts.min() != starts.max())
    on = vp.treatment == 1
    t_on = vp.time[on]
    if t_on.size == 0:
        return False
    if getattr(vp, "sorted_by_unit_time", False) and vp.nobs > 1:
        # rows sorted by unit then time: a switch is a treated row after an untreated row of the same unit
        sw = on[1:] & ~on[:-1] & (vp.unit[1:] == vp.unit[:-1])
        starts = vp.time[1:][sw]
        return bool(starts.size and starts.min() != starts.max())
    first = np.full(int(vp.unit.max()) + 1, np.iinfo(np.int64).max)
    np.minimum.at(first, vp.unit[on], t_on)
    switched = np.zeros(first.size, bool)
    switched[vp.unit[~on]] = True  # observed untreated at some point: a switcher
    starts = first[switched & (first < np.iinfo(np.int64).max)]
    return bool(starts.size and starts.min() != starts.max())


def did_2x2(
    data: pd.DataFrame,
    *,
    outcome: str,
    group: str,
    time: str,
    covariates: Sequence[str] = (),
    post: str | None = None,
    cluster: str | Sequence[str] | None = None,
    weights: str | None = None,
    vcov: str = "HC1",
    ssc: SmallSampleCorrection | None = None,
    level: float = 0.95,
    seed=None,
    n_boot: int = 999,
    boot_weights: str = "rademacher",
    dropna: bool = False,
) -> DiDResult:
    r"""Classic 2×2 DiD on repeated cross-sections: :math:`y = a + b\,G + \lambda_t + \tau\,G\cdot Post + X'\gamma`.

    ``group`` is the 0/1 treated-group column. The time effect :math:`\lambda_t` is always one effect per
    period of ``time`` (``y ~ group + C(time) + group:post``):

    * without ``post``, ``time`` must have exactly two periods and the later one is post-treatment
      (the textbook ``y ~ group * post``);
    * with ``post`` (a 0/1 column that is constant within each period of ``time``), several periods
      may lie on each side of the treatment date: ``post`` only says which periods are post-treatment
      and so which cells are treated. Its main effect is absorbed by the period effects, which also
      absorb period-to-period changes within the pre and post windows (a single post dummy would not).
      To pool the periods into one post effect instead, pass the post column as ``time`` (two periods).

    Default ``vcov="HC1"`` (no unit to cluster on); pass ``cluster=`` for clustered inference (e.g. by
    state), or ``vcov="iid"``. The group and period effects are absorbed, but K counts them as the
    dummies of that regression (``ssc(k_fixef="full")``, as R ``lm`` + sandwich and fixest with explicit
    dummies), even when the group is nested in the clusters. ``res.conventions.notes`` states the model.
    """
    check_option(vcov, "vcov", VCOV_TYPES, "did_2x2")
    covariates = check_columns_arg(covariates, "covariates")
    clusters = check_columns_arg(cluster, "cluster")
    if vcov in ("CR0", "CR1", "CR2", "wild") and not clusters:
        raise SpecificationError(f"vcov={vcov!r} needs cluster=...; repeated cross-sections have no unit to default to.")
    post_col = post or time
    vp = validate_panel(data, outcome=outcome, time=time, group=group, cluster=clusters or None,
                        weights=weights, covariates=list(covariates) + ([post] if post else []), dropna=dropna)
    if post:
        p = vp.X[:, -1]
        if not np.isin(p, (0.0, 1.0)).all():
            raise SpecificationError(f"post={post!r} must be a 0/1 column.")
        n_t = np.bincount(vp.time, minlength=vp.n_periods)
        n_post = np.bincount(vp.time, weights=p, minlength=vp.n_periods)
        mixed = np.flatnonzero((n_post > 0) & (n_post < n_t))
        if mixed.size:
            lv = vp.time_axis.levels[int(mixed[0])]
            raise DataError(
                f"post={post!r} varies within periods of {time!r} (e.g. period {lv} has both 0 and 1; {mixed.size} such "
                f"periods). did_2x2 fits one effect per period of {time!r}, so post must be a function of the period "
                f"(otherwise its main effect is missing and {group} x {post} is confounded with it). Pass a time column "
                f"whose periods lie entirely before or after the treatment, or pass time={post!r} to pool the periods."
            )
        if n_post.sum() == 0 or n_post.sum() == n_t.sum():
            raise DataError(f"post={post!r} is {int(p[0])} in every row: need both pre- and post-treatment periods.")
        Xc, cnames = vp.X[:, :-1], vp.covariate_names[:-1]
    else:
        if vp.n_periods != 2:
            raise SpecificationError(f"Column {time!r} has {vp.n_periods} periods; pass post= to say which are post-treatment.")
        p = (vp.time == 1).astype(float)
        Xc, cnames = vp.X, vp.covariate_names
    d = vp.group * p
    if d.max() == 0:
        raise SpecificationError("No treated-group observations in the post period.")
    X = np.column_stack([d, Xc]) if Xc.shape[1] else d[:, None]
    names = (f"{group} x {post_col}",) + tuple(cnames)
    from ..inference.absorb import FixedEffects

    fe = FixedEffects((vp.group.astype(np.int64), vp.time), (group, time))
    fit, info, X = fit_absorbed(vp.y, X, names, fe, vp.weights, n_protected=1)
    ssc = ssc or SmallSampleCorrection(k_fixef="full")
    ctx = FitContext(fit, fe, info, X, vp.y, vp.cluster, clusters, d, (0,), None, ssc)
    table, vr, extra = infer(ctx, vcov, small_sample=ssc, level=level, seed=seed, n_boot=n_boot, boot_weights=boot_weights)
    post_k = np.flatnonzero(np.bincount(vp.time, weights=p, minlength=vp.n_periods) > 0)
    post_periods = [str(vp.time_axis.levels[int(k)]) for k in post_k[:13]]
    model = (f"Model: {outcome} ~ {group} + one effect per period of {time!r} ({vp.n_periods} periods) + "
             f"{group} x {post_col}" + (" + covariates" if Xc.shape[1] else "") + "; post-treatment periods: "
             + ", ".join(post_periods[:12]) + (" ..." if len(post_periods) > 12 else "")
             + (f" (from {post!r}; its main effect is absorbed by the period effects)." if post else "."))
    conv = build_conventions("2x2 DiD on repeated cross-sections (OLS" + (", weighted)" if weights else ")"), vr,
                             level=level, weights=weights, fe=fe, absorb_info=info, seed=seed, notes=(model,))
    return DiDResult(table, vr.vcov, conv, sample_info(vp), {"_context": ctx, **extra})
