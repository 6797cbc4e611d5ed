"""Outputs of the AQC evaluations: several outcomes with a joint covariance, relative effects,
price vs. utilization decomposition, quality measures in percentage points, propensity weights.

The joint outputs (:func:`twfe_multi`, :func:`price_utilization`) use cluster-robust CR1 (R fixest
convention, as :func:`twfe`), computed from the joint cluster-level influence functions so that ratios
and differences of estimates get delta-method standard errors that respect their correlation;
:func:`relative_effect` uses the covariance type of the result it is given (see its notes).
"""
from __future__ import annotations

import logging
import warnings
from dataclasses import dataclass
from typing import Sequence

import numpy as np
import pandas as pd

from .._validation import check_columns_arg, check_option
from ..data.schema import DropRecord, validate_panel
from ..errors import DataError, EvalkitWarning, SpecificationError
from ..inference.vcov import SmallSampleCorrection, _k_for_cluster, cluster_scores
from ..results import Conventions, EffectResult, SampleInfo, tidy_table
from ._engine import fe_codes_for, fit_absorbed, sample_info
from .twfe import twfe

__all__ = [
    "MultiOutcomeResult",
    "twfe_multi",
    "price_utilization",
    "relative_effect",
    "quality_effects",
    "propensity_weights",
    "PropensityWeights",
]

logger = logging.getLogger(__name__)


@dataclass(frozen=True, repr=False)
class MultiOutcomeResult(EffectResult):
    """Treatment effects on several outcomes estimated on one sample, with their joint covariance."""


def _cr1_factor(n: int, K: int, G: int, s: SmallSampleCorrection) -> float:
    return (G / (G - 1) if s.G_adj else 1.0) * ((n - 1) / (n - K) if s.k_adj else 1.0)


def _check_outcomes(data: pd.DataFrame, outcomes: Sequence[str], covariates: Sequence[str]) -> None:
    """Every outcome must be a numeric (or boolean) column, as :func:`twfe`'s outcome must be.

    The extra outcomes travel through the covariate path of the validation, which would expand a
    string or categorical column into dummies; check them as outcomes first.
    """
    from ..data.schema import _is_plain_numeric, _numeric

    dup = sorted({o for o in outcomes if list(outcomes).count(o) > 1} | (set(outcomes) & set(covariates)))
    if dup:
        raise SpecificationError(f"outcomes: {dup} appear twice (or also among the covariates); list each column once.")
    for o in outcomes:
        if o not in data.columns:
            raise DataError(f"Column {o!r} (an outcome) not found in data. Check the outcomes= names.")
        if isinstance(data[o].dtype, pd.CategoricalDtype) or not _is_plain_numeric(data[o].dtype):
            _numeric(data[o], o, "outcome")  # raises the DataError twfe raises for this column


def twfe_multi(
    data: pd.DataFrame,
    *,
    outcomes: Sequence[str],
    unit: str,
    time: str,
    treatment: str,
    covariates: Sequence[str] = (),
    fixed_effects: Sequence[str] = ("unit", "time"),
    cluster: str | None = None,
    weights: str | None = None,
    ssc: SmallSampleCorrection | None = None,
    level: float = 0.95,
    dropna: bool = False,
) -> MultiOutcomeResult:
    """TWFE DiD of ``treatment`` on each of ``outcomes`` (same sample, same design), jointly.

    Returns one row per outcome and the CR1 covariance of the effects across outcomes
    (clustered on ``cluster``, default the unit), from stacked cluster-level scores:
    :math:`\\widehat{Cov}(\\hat\\tau_a, \\hat\\tau_b) = c \\sum_g \\psi_{ga}\\psi_{gb}` with
    :math:`\\psi_{g} = [(X'WX)^{-1} X_g'W_g e_g]_{\\tau}` and ``c`` the CR1 factor.
    Use it for spending categories (the effects add up to the effect on the total) and for the
    price/utilization split. Every outcome must be numeric or boolean (a ``DataError`` otherwise, as
    in :func:`twfe`).
    """
    outcomes = check_columns_arg(outcomes, "outcomes")
    if not outcomes:
        raise SpecificationError("outcomes must name at least one column.")
    covariates = check_columns_arg(covariates, "covariates")
    _check_outcomes(data, outcomes, covariates)
    cl_name = cluster or unit
    s = ssc or SmallSampleCorrection()
    vp = validate_panel(data, outcome=outcomes[0], unit=unit, time=time, treatment=treatment, cluster=cl_name,
                        weights=weights, covariates=list(outcomes[1:]) + list(covariates), dropna=dropna)
    m = len(outcomes)
    Y = np.column_stack([vp.y, vp.X[:, : m - 1]]) if m > 1 else vp.y[:, None]
    Xc = vp.X[:, m - 1:]
    X = np.column_stack([vp.treatment, Xc])
    names = (treatment,) + vp.covariate_names[m - 1:]
    fe = fe_codes_for(vp, data, fixed_effects, unit, time)
    fit0, info, X = fit_absorbed(Y[:, 0], X, names, fe, vp.weights, n_protected=1)
    from ..inference.absorb import absorb

    Yr = absorb(Y, fe, vp.weights)[0] if m > 1 else fit0.y[:, None]
    B = fit0.bread @ (fit0.X.T @ (Yr if vp.weights is None else Yr * vp.weights[:, None]))  # (k, m)
    E = Yr - fit0.X @ B
    cl = vp.cluster[:, 0]
    G = int(cl.max()) + 1
    psi = np.column_stack([(cluster_scores(fit0.X, E[:, o], vp.weights, cl, G) @ fit0.bread)[:, 0] for o in range(m)])
    K = _k_for_cluster(fit0, [cl], s)
    V = _cr1_factor(fit0.nobs, K, G, s) * (psi.T @ psi)
    table = tidy_table(list(outcomes), B[0], np.sqrt(np.diag(V)), G - 1, level)
    conv = Conventions(
        estimator=f"TWFE DiD of {treatment!r} on {m} outcomes (joint)",
        vcov_type="CR1", vcov_description=f"cluster-robust CR1 by {cl_name} (G={G}); {s.describe()} with N={fit0.nobs}, K={K}; joint across outcomes",
        distribution=f"t({G - 1})", df=float(G - 1), cluster=(cl_name,), n_clusters=(G,), small_sample=s.describe(),
        weights=weights, fixed_effects=fe.names, absorb_method=info.method, level=level,
    )
    return MultiOutcomeResult(table, V, conv, sample_info(vp), {"psi": psi, "cr1_factor": _cr1_factor(fit0.nobs, K, G, s)})


def _delta_rows(names, values, grads, V, df, level):
    ses = [float(np.sqrt(g @ V @ g)) for g in grads]
    return tidy_table(names, values, ses, df, level)


def price_utilization(
    data: pd.DataFrame,
    *,
    actual: str,
    standardized: str,
    unit: str,
    time: str,
    treatment: str,
    **kwargs,
) -> EffectResult:
    """Split the effect on spending into utilization (volume) and price, as in Song et al. (NEJM 2014).

    ``standardized`` is spending repriced at standard (plan-wide) prices, so its change reflects
    utilization only. Rows of the result: ``total`` (effect on ``actual``), ``utilization`` (effect
    on ``standardized``), ``price`` (= total − utilization), ``utilization_share`` and
    ``price_share`` (of the total effect). Standard errors by the delta method from the joint CR1
    covariance of the two effects (:func:`twfe_multi`); t(G−1) intervals.
    """
    mr = twfe_multi(data, outcomes=[actual, standardized], unit=unit, time=time, treatment=treatment, **kwargs)
    tot, util = mr.table["estimate"].to_numpy()
    V = mr.vcov
    df = mr.conventions.df
    names = ["total", "utilization", "price", "utilization_share", "price_share"]
    vals = [tot, util, tot - util, util / tot, 1 - util / tot]
    grads = [np.array([1.0, 0.0]), np.array([0.0, 1.0]), np.array([1.0, -1.0]),
             np.array([-util / tot**2, 1 / tot]), np.array([util / tot**2, -1 / tot])]
    table = _delta_rows(names, vals, grads, V, df, mr.conventions.level)
    c = mr.conventions
    conv = Conventions(**{**c.as_dict(), "estimator": f"Price vs utilization decomposition ({actual} vs {standardized})",
                          "notes": ("price = total - utilization; shares are of the total effect; delta-method SEs from the joint CR1 covariance",)})
    return EffectResult(table, np.array([[np.nan]]), conv, mr.sample, {"joint": mr})


def relative_effect(result, denominator: str = "pre_mean", level: float | None = None,
                    term: str | int | None = None) -> EffectResult:
    r"""Effect as a percentage of a stated denominator, with a delta-method SE.

    Parameters
    ----------
    result : DiDResult
        From :func:`twfe` (the first term is the effect), with any ``vcov``.
    denominator : {"pre_mean", "counterfactual_mean"}
        ``"pre_mean"``: the treated units' mean outcome in their pre-entry periods;
        ``"counterfactual_mean"``: the treated-and-post mean minus the effect (what they would
        have spent without the contract). Means are weighted by the fit's weights, on its sample.
    term : str, int or None
        Which effect term to express as a percentage, by name (e.g. ``"d[cohort=2004]"``) or position among
        the effect terms. ``None`` (default) uses the first effect term; for a result fitted with ``by=``
        (several effect terms) the conventions' notes state which term was used. For a ``by=`` term the
        denominator is computed on that term's units: ``"pre_mean"`` on the pre-entry rows of the units
        with a row in the term, ``"counterfactual_mean"`` on the term's treated rows.

    Notes
    -----
    The denominator is estimated on the same data, so its sampling error and its covariance with
    the effect enter the SE. Both are linear in the outcome and are written as observation-level
    influence functions (the effect's :math:`[(X'WX)^{-1}x_i w_i e_i]_1`, the mean's
    :math:`w_i(y_i-\bar y)/\sum w` on its rows), combined with the base result's covariance type:

    * ``"CR0"``/``"CR1"`` (one- or two-way): cluster sums on the same clusters, the same
      small-sample factor (ssc, N, K) and t(G−1) — the ``effect`` row reproduces the base SE;
    * ``"HC1"``: each observation its own cluster, N/(N−K), t(N−K);
    * ``"iid"``: errors independent with variance :math:`\sigma^2/w_i` given the regressors and fixed
      effects, :math:`\hat\sigma^2 = e'We/(N-K)`: the mean's variance is :math:`\sigma^2/\sum w` on
      its rows and its covariance with the effect follows; t(N−K);
    * ``"CR2"`` and ``"wild"``: the delta method has no CR2 (Satterthwaite) or bootstrap analogue here,
      so CR1 on the same clusters is used and the result is labelled CR1, with a note
      (for ``"wild"`` the effect row's SE equals the base result's, which is CR1, but its interval is
      t(G−1), not the bootstrap's).

    ``res.conventions`` states what was computed.
    """
    from ..inference.vcov import compute_vcov, influence_vcov

    check_option(denominator, "denominator", ("pre_mean", "counterfactual_mean"), "relative_effect")
    ctx = result.extra.get("_context") if isinstance(getattr(result, "extra", None), dict) else None
    if ctx is None or ctx.unit is None or ctx.treated is None:
        raise SpecificationError("relative_effect needs a result of ek.did.twfe (a panel with a unit column and a 0/1 "
                                 "treatment); pass the result of ek.did.twfe(...).")
    fit = ctx.fit
    n = fit.nobs
    w = np.ones(n) if fit.weights is None else fit.weights
    effect_terms = tuple(ctx.effect_terms) or (0,)
    names = [fit.names[k] for k in effect_terms]
    if term is None:
        pos = 0
    elif isinstance(term, str):
        if term not in names:
            raise SpecificationError(f"The 'term' parameter of relative_effect must be one of the effect terms {names}. "
                                     f"Got {term!r} instead.")
        pos = names.index(term)
    elif isinstance(term, (int, np.integer)) and not isinstance(term, bool):
        if not 0 <= term < len(names):
            raise SpecificationError(f"The 'term' parameter of relative_effect must be a position in 0..{len(names) - 1} "
                                     f"(effect terms {names}) or a term name. Got {term!r} instead.")
        pos = int(term)
    else:
        raise SpecificationError(f"The 'term' parameter of relative_effect must be an effect-term name {names} or its "
                                 f"position (int). Got {term!r} instead.")
    j = effect_terms[pos]
    d = ctx.treated
    if len(effect_terms) > 1:  # a by= term: its own treated rows and units
        d = (ctx.regressors[:, j] != 0).astype(float)
    ever = np.bincount(ctx.unit, weights=d, minlength=int(ctx.unit.max()) + 1)[ctx.unit] > 0
    rows = ever & (ctx.treated == 0) if denominator == "pre_mean" else (d == 1)
    if not rows.any():
        raise DataError("No treated pre-entry rows to compute the denominator: every treated unit is first observed "
                        "after entry. Use denominator='counterfactual_mean'." if denominator == "pre_mean" else
                        "No treated rows to compute the denominator.")
    y = ctx.outcome
    W_rows = float(np.sum(w[rows]))
    mean = float(np.sum(w[rows] * y[rows]) / W_rows)
    # linear weights in y of the effect (a) and of the mean (b); influence functions a*e and b*(y - mean)
    a = (fit.X @ fit.bread[:, j]) * w
    b = np.where(rows, w, 0.0) / W_rows
    P = np.column_stack([a * fit.resid, b * (y - mean)])

    base = result.extra.get("_vcov")
    base_type = base.vcov_type if base is not None else result.conventions.vcov_type
    notes = []
    if base_type in ("CR2", "wild"):
        s = (base.ssc if base is not None and base.ssc is not None else ctx.small_sample) or SmallSampleCorrection()
        vr = compute_vcov(fit, "CR1", clusters=ctx.clusters, cluster_names=ctx.cluster_names, small_sample=s)
        if base_type == "CR2":
            notes.append(f"The base result used CR2 (Bell-McCaffrey, Satterthwaite df), which has no delta-method "
                         f"analogue here: these SEs are CR1 on the same clusters ({', '.join(ctx.cluster_names)}), "
                         f"t(G-1); the effect row therefore differs from the base result's CR2 SE.")
        else:
            notes.append("The base result used the wild cluster bootstrap for its p-value and interval; the delta "
                         "method here uses its CR1 covariance (same clusters and small-sample factor), so the effect "
                         "row's SE equals the base SE but its p-value and interval are t(G-1), not the bootstrap's.")
    elif base is not None:
        vr = base
    else:  # a result built before the covariance was stored on it
        vr = compute_vcov(fit, base_type, clusters=None if base_type in ("iid", "HC1") else ctx.clusters,
                          cluster_names=ctx.cluster_names, small_sample=ctx.small_sample)
    if vr.vcov_type == "iid":
        sigma2 = float(fit.resid @ (w * fit.resid)) / (n - vr.K)
        L = np.column_stack([a, b])
        V = sigma2 * (L.T @ (L / w[:, None]))
        how = ("homoskedastic errors with variance sigma^2/w_i given the regressors and fixed effects; the denominator's "
               "variance is sigma^2 over its rows' total weight")
    elif vr.vcov_type == "HC1":
        V = influence_vcov(P, "HC1", K=vr.K)
        how = "observation-level influence functions, N/(N-K)"
    else:
        V = influence_vcov(P, vr.vcov_type, clusters=ctx.clusters, small_sample=vr.ssc, K=vr.K)
        how = ("cluster sums of the influence functions on the base result's clusters, with "
               + ("CR1's small-sample factor" if base_type in ("CR2", "wild") else "its small-sample factor"))
    df = vr.df
    b0 = float(fit.beta[j])
    if denominator == "pre_mean":
        den, g_den = mean, np.array([0.0, 1.0])
    else:
        den, g_den = mean - b0, np.array([-1.0, 1.0])
    rel = 100 * b0 / den
    g_rel = 100 * (np.array([1.0, 0.0]) / den - b0 * g_den / den**2)
    lvl = result.conventions.level if level is None else level
    table = _delta_rows(["effect", f"denominator ({denominator})", "effect_percent"], [b0, den, rel],
                        [np.array([1.0, 0.0]), g_den, g_rel], V, df, lvl)
    if len(effect_terms) > 1:
        notes.insert(0, f"The result has {len(effect_terms)} effect terms ({', '.join(names)}); this is the relative effect "
                        f"of {names[pos]!r}" + (" (the first; pass term= for another)" if term is None else "")
                        + ", with the denominator on that term's units.")
    notes.insert(0, f"percent = 100 * effect / denominator; delta method with the joint {vr.vcov_type} covariance of "
                    f"effect and denominator ({how}).")
    if df is None:
        dist = "normal"
    else:
        dist = f"t({float(df):.6g})"
    conv = Conventions(**{
        **result.conventions.as_dict(),
        "estimator": f"Relative effect (% of {denominator})",
        "vcov_type": vr.vcov_type,
        "vcov_description": vr.description + "; joint with the denominator by the delta method",
        "distribution": dist,
        "df": None if df is None else float(df),
        "cluster": vr.cluster_names,
        "n_clusters": vr.n_clusters,
        "small_sample": vr.ssc.describe() if vr.ssc else "",
        "seed": None,
        "level": lvl,
        "notes": tuple(notes),
    })
    return EffectResult(table, V, conv, result.sample)


def quality_effects(
    data: pd.DataFrame,
    *,
    measures: Sequence[str],
    unit: str,
    time: str,
    treatment: str,
    **twfe_kwargs,
) -> EffectResult:
    """Linear-probability DiD for binary quality measures, in percentage points.

    Each measure is estimated by :func:`twfe` (with ``twfe_kwargs``) on the rows where it is defined
    (eligible members: missing = not eligible). Estimates and SEs are multiplied by 100 (percentage
    points). ``baseline_rate`` is the treated units' pre-entry rate (%) on that measure's estimation
    sample (weighted by the fit's weights, if any). The table also gives each measure's ``n_obs``,
    ``n_clusters`` and ``df``.

    ``sample.dropped`` records, per measure, the ineligible rows and the rows :func:`twfe` dropped
    (``dropna=True``, zero weights, ...). The warnings of the fits (few clusters, bad controls,
    dropped rows, singletons, ...) are passed on, each distinct message once, tagged with the
    measures it concerns; the fits' notes are kept in ``conventions.notes`` the same way.
    """
    measures = check_columns_arg(measures, "measures")
    if not measures:
        raise SpecificationError("measures must name at least one column (a 0/1 quality measure).")
    rows, dropped = [], []
    conv = None
    caught: dict[tuple[type, str], list[str]] = {}
    fit_notes: dict[str, list[str]] = {}
    for mname in measures:
        if mname not in data.columns:
            raise DataError(f"Column {mname!r} (a quality measure) not found in data.")
        elig = data[mname].notna()
        sub = data.loc[elig]
        vals = pd.to_numeric(sub[mname], errors="coerce")
        if not vals.isin([0, 1]).all():
            raise DataError(f"Column {mname!r} (a quality measure) must be 0/1 among eligible rows.")
        if (~elig).any():
            dropped.append(DropRecord(f"not eligible for {mname!r} (missing)", int((~elig).sum())))
        with warnings.catch_warnings(record=True) as wlist:
            warnings.simplefilter("always")
            r = twfe(sub, outcome=mname, unit=unit, time=time, treatment=treatment, **twfe_kwargs)
        for wm in wlist:
            if issubclass(wm.category, EvalkitWarning):
                caught.setdefault((wm.category, str(wm.message)), []).append(mname)
            else:  # not ours: pass it on from where it was raised, under the caller's filters
                warnings.warn_explicit(wm.message, wm.category, wm.filename, wm.lineno, source=wm.source)
        for note in r.conventions.notes:
            fit_notes.setdefault(note, []).append(mname)
        for rec in r.sample.dropped:
            dropped.append(DropRecord(f"{rec.reason} (measure {mname!r})", rec.n_rows, rec.detail))
        ctx = r.extra["_context"]
        y, d = ctx.outcome, ctx.treated
        wts = np.ones(y.size) if ctx.fit.weights is None else ctx.fit.weights
        ever = np.bincount(ctx.unit, weights=d, minlength=int(ctx.unit.max()) + 1)[ctx.unit] > 0
        pre = ever & (d == 0)
        base = float(100 * np.sum(wts[pre] * y[pre]) / np.sum(wts[pre])) if pre.any() else np.nan
        t = r.to_frame().iloc[0]
        rows.append({"term": mname, "estimate": 100 * t.estimate, "std_error": 100 * t.std_error, "statistic": t.statistic,
                     "p_value": t.p_value, "conf_low": 100 * t.conf_low, "conf_high": 100 * t.conf_high,
                     "baseline_rate": base, "n_obs": r.nobs,
                     "n_clusters": r.conventions.n_clusters[0] if r.conventions.n_clusters else np.nan,
                     "df": t["df"] if "df" in t.index else np.nan})
        conv = r.conventions

    def tag(ms: list[str]) -> str:
        return f" [quality measure{'s' if len(ms) > 1 else ''} {', '.join(repr(m) for m in ms)}]"

    for (category, msg), ms in caught.items():
        warnings.warn(msg + tag(ms), category, stacklevel=2)
    table = pd.DataFrame(rows)
    notes = [("estimates and SEs x 100 (percentage points); each measure on its eligible rows; baseline_rate is the "
              "treated units' pre-entry rate on the measure's estimation sample"),
             (f"vcov_description and df describe the last measure's fit ({measures[-1]!r}); each measure's n_obs, "
              f"n_clusters and df are in the table")]
    notes += [note + tag(ms) for note, ms in fit_notes.items()]
    conv = Conventions(**{**conv.as_dict(), "estimator": "Quality measures: linear probability TWFE DiD (percentage points)",
                          "notes": tuple(notes)})
    sample = SampleInfo(n_obs=int(table["n_obs"].max()), n_input_rows=len(data), dropped=tuple(dropped))
    return EffectResult(table, np.diag(table["std_error"].to_numpy() ** 2), conv, sample)


@dataclass(frozen=True)
class PropensityWeights:
    """ATT odds weights for control units from a logit on baseline characteristics."""

    weights: pd.Series  # aligned with the input rows
    pscore: pd.Series  # per unit
    treated: pd.Series  # per unit, bool
    covariates: tuple[str, ...]
    n_units_without_baseline: int = 0  # given weight 0 (no_baseline="drop")

    def overlap(self) -> pd.DataFrame:
        """Propensity-score range by group (check common support)."""
        return self.pscore.groupby(self.treated).describe()[["count", "min", "25%", "50%", "75%", "max"]]


def propensity_weights(
    data: pd.DataFrame,
    *,
    unit: str,
    group: str,
    covariates: Sequence[str],
    baseline: str | None = None,
    trim: float | None = None,
    no_baseline: str = "raise",
) -> PropensityWeights:
    """Propensity-score (odds) weights for control units on baseline characteristics (ATT).

    A logit of the treated-group indicator on the units' mean covariates over their baseline rows
    (``baseline``: a boolean column marking pre-period rows; default all rows) gives
    :math:`\\hat p`; treated units get weight 1 and controls :math:`\\hat p/(1-\\hat p)`, rescaled so
    control weights sum to the number of control units. Pass the result's ``weights`` to
    ``twfe(weights=...)``. Standard errors then treat the weights as fixed (as the AQC evaluations
    did); ``trim`` drops units with :math:`\\hat p` outside [trim, 1 − trim] (recorded: weight 0).
    Units with no baseline rows (members who enrolled later) cannot be scored:
    ``no_baseline="raise"`` (default) says how many; ``"drop"`` gives them weight 0, which
    ``twfe`` then drops and records.
    """
    import statsmodels.api as sm

    covariates = check_columns_arg(covariates, "covariates")
    cols = [unit, group] + list(covariates) + ([baseline] if baseline else [])
    missing = [c for c in cols if c not in data.columns]
    if missing:
        raise DataError(f"Column(s) {missing} not found in data.")
    base = data if baseline is None else data.loc[data[baseline].astype(bool)]
    if base[list(covariates)].isna().any().any():
        raise DataError(f"Missing values in covariates {list(covariates)} on baseline rows; fill or drop them.")
    if base[group].groupby(base[unit]).nunique().max() > 1:
        raise DataError(f"Column {group!r} must be constant within unit (the treated group, not treated-and-post).")
    U = base.groupby(unit, sort=True).agg({**{c: "mean" for c in covariates}, group: "first"})
    treated = U[group].astype(bool)
    if treated.all() or (~treated).all():
        raise DataError(f"Column {group!r}: need both treated and control units.")
    Xl = sm.add_constant(U[list(covariates)].astype(float), has_constant="add")
    const = Xl.columns[(Xl.std() == 0) & (Xl.columns != "const")]
    if len(const):
        raise DataError(f"Covariates {list(const)} are constant across units; drop them from the propensity model.")
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("error")
            res = sm.Logit(treated.astype(float), Xl).fit(disp=0, maxiter=200)
    except Exception as exc:  # perfect separation, non-convergence
        raise DataError(f"The propensity model failed ({type(exc).__name__}: {exc}). Check for covariates that perfectly "
                        f"separate treated from control units, and simplify the model.") from None
    p = pd.Series(res.predict(Xl), index=U.index, name="pscore")
    w = pd.Series(np.where(treated, 1.0, p / (1 - p)), index=U.index)
    if trim is not None:
        w[(p < trim) | (p > 1 - trim)] = 0.0
    ctrl = ~treated
    w[ctrl] *= ctrl.sum() / w[ctrl].sum()
    check_option(no_baseline, "no_baseline", ("raise", "drop"), "propensity_weights")
    row_w = data[unit].map(w)
    n_missing_units = 0
    if row_w.isna().any():
        n_missing_units = int(data.loc[row_w.isna(), unit].nunique())
        if no_baseline == "raise":
            raise DataError(f"{n_missing_units} units ({int(row_w.isna().sum())} rows) have no baseline rows, so they "
                            f"have no propensity score. Restrict to units observed at baseline, or pass "
                            f"no_baseline='drop' to give them weight 0 (dropped and recorded by twfe).")
        logger.info("%d units without baseline rows get weight 0", n_missing_units)
        row_w = row_w.fillna(0.0)
    return PropensityWeights(row_w.rename("ps_weight"), p, treated, covariates, n_missing_units)
