"""``match()``: MatchIt-style matching (nearest, optimal, exact, CEM, subclassification)."""
from __future__ import annotations

import logging
import math
import warnings
from numbers import Integral, Real

import numpy as np
import pandas as pd

from .._validation import as_generator, check_columns_arg, check_option, check_scalar
from ..errors import DataError, DroppedRowsWarning, EvalkitWarning, SpecificationError
from ._design import check_distance_column, fit_logit, prepare
from ._nearest import greedy_matrix, greedy_scalar, treated_order
from .results import MatchResult

__all__ = ["match", "METHODS"]

_log = logging.getLogger(__name__)

METHODS = ("nearest", "optimal", "exact", "cem", "subclass")


def _group_codes(df: pd.DataFrame) -> np.ndarray:
    """Integer code per row for each distinct combination of the columns (first-appearance order)."""
    if df.shape[1] == 0:
        return np.zeros(len(df), dtype=np.int64)
    return pd.MultiIndex.from_frame(df.astype(object)).factorize()[0] if df.shape[1] > 1 else pd.factorize(df.iloc[:, 0])[0]


def pair_arrays(pairs: dict) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Flatten {treated: [controls]} into (treated, control, pair number) arrays; pairs are
    numbered 1.. over matched treated units in data order."""
    ts = np.array(sorted(t for t, cs in pairs.items() if cs), dtype=np.int64)
    ks = np.array([len(pairs[t]) for t in ts], dtype=np.int64)
    cs = np.array([c for t in ts for c in pairs[t]], dtype=np.int64)
    return np.repeat(ts, ks), cs, np.repeat(np.arange(1, len(ts) + 1), ks)


def _weights_from_pairs(pairs: dict, n: int, treat: np.ndarray):
    """MatchIt weights and pair ids from a {treated: [controls]} map (pairs numbered in data order)."""
    w = np.zeros(n)
    sub = np.full(n, np.nan)
    t_arr, c_arr, p_arr = pair_arrays(pairs)
    if len(t_arr):
        k = np.bincount(t_arr, minlength=n)[t_arr]  # controls of each pair's treated unit
        w[t_arr] = 1.0
        w += np.bincount(c_arr, weights=1.0 / k, minlength=n)
        sub[t_arr] = p_arr
        sub[c_arr] = p_arr  # with replacement the last pair wins; cleared by the caller
    c = treat == 0
    if w[c].sum() > 0:
        w[c] *= (w[c] > 0).sum() / w[c].sum()
    return w, sub


def _weights_from_subclass(sub: np.ndarray, treat: np.ndarray, estimand: str):
    """MatchIt weights for stratum designs (exact, CEM, subclass): ATT treated 1, controls
    n_t,s / n_c,s rescaled so control weights sum to the number of matched controls; ATE
    n_s / n_g,s, each group rescaled to its matched count."""
    n = len(sub)
    ok = ~np.isnan(sub)
    codes = np.where(ok, sub, -1).astype(np.int64)
    G = int(codes.max()) + 1 if ok.any() else 0
    nt = np.bincount(codes[ok], weights=treat[ok], minlength=G)
    nc = np.bincount(codes[ok], weights=1 - treat[ok], minlength=G)
    w = np.zeros(n)
    if estimand == "ATT":
        w[ok & (treat == 1)] = 1.0
        cc = ok & (treat == 0)
        w[cc] = nt[codes[cc]] / nc[codes[cc]]
    else:
        ns = nt + nc
        tt = ok & (treat == 1)
        cc = ok & (treat == 0)
        w[tt] = ns[codes[tt]] / nt[codes[tt]]
        w[cc] = ns[codes[cc]] / nc[codes[cc]]
        if w[tt].sum() > 0:
            w[tt] *= tt.sum() / w[tt].sum()
    cc = ok & (treat == 0)
    if w[cc].sum() > 0:
        w[cc] *= cc.sum() / w[cc].sum()
    return w


def _renumber(sub_codes: np.ndarray, keep: np.ndarray, first_in: np.ndarray | None = None) -> np.ndarray:
    """Subclass ids 1..S for the rows in kept strata, NaN elsewhere. Strata are numbered by first
    appearance in data order among the rows ``first_in`` (MatchIt's exact/CEM: among the controls),
    or among all kept rows."""
    out = np.full(len(sub_codes), np.nan)
    if keep.any():
        ref = keep & (first_in if first_in is not None else keep)
        labels = pd.unique(sub_codes[ref])
        lookup = pd.Series(np.arange(1, len(labels) + 1), index=labels)
        out[keep] = lookup.reindex(sub_codes[keep]).to_numpy(dtype=float)
    return out


def _mahalanobis_vi(X: np.ndarray, treat: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """MatchIt >= 4.4: standardise the covariates, pooled within-group covariance, generalised inverse."""
    sd = X.std(axis=0, ddof=1)
    sd[sd == 0] = 1.0
    Z = (X - X.mean(axis=0)) / sd
    S = np.zeros((X.shape[1], X.shape[1]))
    dof = 0
    for g in (0, 1):
        Zg = Z[treat == g]
        if len(Zg) > 1:
            S += np.cov(Zg, rowvar=False, ddof=1) * (len(Zg) - 1)
            dof += len(Zg) - 1
    S /= max(dof, 1)
    return Z, np.linalg.pinv(np.atleast_2d(S), hermitian=True)


def _sturges(n: int) -> int:
    return int(math.ceil(math.log2(n) + 1))


def _cem_codes(data: pd.DataFrame, covs, factors: dict, cutpoints) -> pd.DataFrame:
    """Coarsen each covariate: factors exactly; numeric ones into equal-width bins (Sturges by default),
    the outer breaks set to -inf/inf (MatchIt's ``cem``)."""
    out = {}
    n = len(data)
    if isinstance(cutpoints, dict):
        unknown = [k for k in cutpoints if k not in covs]
        if unknown:
            raise SpecificationError(f"cutpoints names column(s) {unknown} that are not covariates; keys must be among {list(covs)}.")
        ignored = [k for k in cutpoints if k in factors or pd.api.types.is_bool_dtype(data[k].dtype)]
        if ignored:
            warnings.warn(f"cutpoints entries for factor column(s) {ignored} are ignored: factors are matched exactly "
                          f"on their levels in method='cem' (recode a factor as numeric to coarsen it).",
                          EvalkitWarning, stacklevel=3)
    for c in covs:
        s = data[c]
        if c in factors or pd.api.types.is_bool_dtype(s.dtype):
            out[c] = pd.factorize(s)[0]
            continue
        x = s.to_numpy(dtype=float)
        spec = cutpoints.get(c, "sturges") if isinstance(cutpoints, dict) else cutpoints
        if isinstance(spec, str):
            check_option(spec, f"cutpoints[{c!r}]", ["sturges", "scott", "fd"], "match")
            if spec == "sturges":
                bins = _sturges(n)
            elif spec == "scott":
                h = 3.5 * np.std(x, ddof=1) * n ** (-1 / 3)
                bins = max(1, int(math.ceil((x.max() - x.min()) / h))) if h > 0 else 1
            else:
                iqr = np.subtract(*np.percentile(x, [75, 25]))
                h = 2 * iqr * n ** (-1 / 3)
                bins = max(1, int(math.ceil((x.max() - x.min()) / h))) if h > 0 else 1
            breaks = np.linspace(x.min(), x.max(), bins + 1)
            breaks[0], breaks[-1] = -np.inf, np.inf
        elif isinstance(spec, Integral) and not isinstance(spec, bool):
            if spec < 0:
                raise SpecificationError(f"cutpoints[{c!r}] must be a number of bins >= 0 (0 = no coarsening), a rule name or a list of cut points. Got {spec!r}.")
            if spec == 0:
                out[c] = pd.factorize(x)[0]
                continue
            breaks = np.linspace(x.min(), x.max(), int(spec) + 1)
            breaks[0], breaks[-1] = -np.inf, np.inf
        else:
            try:
                cuts = np.asarray(spec, dtype=float).ravel()
            except (TypeError, ValueError):
                cuts = np.array([np.nan])
            if isinstance(spec, (bool, np.bool_)) or cuts.size == 0 or not np.all(np.isfinite(cuts)):
                raise SpecificationError(f"cutpoints[{c!r}] must be 'sturges', 'scott', 'fd', a number of bins >= 0 or a list of finite cut points. Got {spec!r}.")
            breaks = np.sort(np.unique(np.concatenate([[-np.inf], cuts, [np.inf]])))
        out[c] = np.searchsorted(breaks, x, side="right")
    return pd.DataFrame(out, index=data.index)


def match(
    data: pd.DataFrame,
    *,
    treatment: str,
    covariates,
    method: str = "nearest",
    distance="logit",
    estimand: str = "ATT",
    ratio: int = 1,
    replace: bool = False,
    caliper: float | None = None,
    std_caliper: bool = True,
    exact=None,
    m_order: str | None = None,
    discard: str = "none",
    cutpoints="sturges",
    subclass: int = 6,
    seed: int | np.random.Generator | None = None,
) -> MatchResult:
    r"""Match treated to control units, following R MatchIt 4.7's conventions.

    Parameters
    ----------
    data : DataFrame
        One row per unit; never modified, never silently subset.
    treatment : str
        Binary (0/1 or bool) treatment column.
    covariates : list of str
        Pre-treatment covariates. String/categorical columns are factors: the propensity model
        uses treatment contrasts (first level, in sorted or category order, as reference, like R);
        balance tables show one row per level (``race`` -> ``raceblack``, ``racehispan``, ...).
    method : {"nearest", "optimal", "exact", "cem", "subclass"}, default="nearest"
        Greedy nearest neighbour; optimal pair matching (minimum total distance, Hungarian
        algorithm); exact matching on all covariates; coarsened exact matching; subclassification
        on propensity-score quantiles.
    distance : {"logit", "mahalanobis"} or str, default="logit"
        ``"logit"``: propensity score from a logistic regression on all units, on the probability
        scale (MatchIt ``distance="glm"``). ``"mahalanobis"``: Mahalanobis distance on the
        standardised covariates with the pooled within-group covariance and a generalised inverse
        (MatchIt >= 4.4). Any other string names a numeric column holding a user score.
    estimand : {"ATT", "ATE"}, default="ATT"
        ``"ATE"`` only for exact, CEM and subclassification (as MatchIt).
    ratio : int, default=1
        Controls per treated unit (nearest, optimal).
    replace : bool, default=False
        Match with replacement (nearest).
    caliper : float, default=None
        Maximum distance between matched units, in standard deviations of the distance when
        ``std_caliper=True`` (MatchIt's default: the SD of the propensity score over *all* units
        of both groups not removed by ``discard=`` -- ``sd(distance[!discarded])`` --, n - 1 divisor,
        probability scale). Treated units without a control within the caliper stay unmatched
        (weight 0); the count is in ``sample_sizes()``. If no treated unit can be matched, a
        :class:`~evalkit.errors.DataError` is raised.
    std_caliper : bool, default=True
        Whether ``caliper`` is in SD units (True) or in distance units (False).
    exact : list of str, default=None
        Columns on which matched units must agree exactly (nearest, optimal).
    m_order : {"largest", "smallest", "random", "data"}, default=None
        Order in which treated units are matched (nearest without replacement). Default
        ``"largest"`` (descending propensity score, ties in data order) for a propensity score,
        ``"data"`` otherwise, as MatchIt.
    discard : {"none", "both", "control", "treated"}, default="none"
        Drop units outside the common support of the distance before matching (MatchIt's
        ``discard``); dropped units are counted in ``sample_sizes()`` ("Discarded") with a
        :class:`~evalkit.errors.DroppedRowsWarning`.
    cutpoints : "sturges" | "scott" | "fd" | int | dict, default="sturges"
        CEM coarsening: a rule for the number of equal-width bins, a number of bins (0 = exact),
        or a dict per column (numbers of bins or explicit cut points). Factors match exactly.
    subclass : int, default=6
        Number of subclasses for ``method="subclass"``: quantiles of the propensity score among
        the treated (ATT) or all units (ATE).
    seed : int or Generator, default=None
        Used by ``m_order="random"`` only.

    Returns
    -------
    MatchResult
        ``matched_data()``, ``balance()``, ``summary()``, ``plot()``; pass it to
        :func:`estimate_effect`.

    Notes
    -----
    Nearest neighbour: treated units are processed in ``m_order``; each takes the nearest
    available control (controls sorted by distance, ties in data order; searched outward from the
    treated unit's position). With ``ratio > 1`` and no replacement every treated unit receives
    its first control before any receives its second. Weights (ATT): treated 1; control
    :math:`\sum_{t \ni c} 1/k_t`, rescaled so control weights sum to the number of matched
    controls. Exact/CEM/subclass weights: treated 1, controls :math:`n_{t,s}/n_{c,s}`, rescaled
    the same way. Pair ids number the matched treated units in data order.

    Examples
    --------
    >>> import evalkit as ek                                          # doctest: +SKIP
    >>> m = ek.matching.match(df, treatment="treat", covariates=["age", "educ", "race"],
    ...                       caliper=0.1)                            # doctest: +SKIP
    >>> m.balance(); ek.matching.estimate_effect(m, "re78")           # doctest: +SKIP
    """
    check_option(method, "method", METHODS, "match")
    check_option(estimand, "estimand", ("ATT", "ATE"), "match")
    check_option(discard, "discard", ("none", "both", "control", "treated"), "match")
    check_scalar(ratio, "ratio", Integral, min_val=1)
    if not isinstance(replace, bool):
        raise SpecificationError(f"The 'replace' parameter must be bool. Got {replace!r} instead.")
    if caliper is not None:
        check_scalar(caliper, "caliper", Real, min_val=0, include_min=False)
    if estimand == "ATE" and method in ("nearest", "optimal"):
        raise SpecificationError(f"estimand='ATE' is not available for method={method!r} (as in MatchIt); use method='exact', 'cem', 'subclass' or ek.matching.weight(..., estimand='ATE').")
    design = prepare(data, treatment, covariates)
    treat = design.treat
    n = len(treat)
    exact_cols = check_columns_arg(exact, "exact")
    miss = [c for c in exact_cols if c not in data.columns]
    if miss:
        raise DataError(f"Column(s) {miss} given in exact= not found in data.")
    for c in exact_cols:
        k = int(data[c].isna().sum())
        if k:
            raise DataError(f"Column {c!r} (exact=): {k} missing values. Drop or impute those rows first.")
    notes: list[str] = []
    options: dict = {"ratio": ratio, "replace": replace, "caliper": caliper, "std_caliper": std_caliper,
                     "exact": list(exact_cols) or None, "discard": discard, "seed": seed if not isinstance(seed, np.random.Generator) else "Generator"}

    # -- distance -------------------------------------------------------------------------------
    ps_model = None
    dvec = None
    mahal = False
    uses_ps = method in ("nearest", "optimal", "subclass") or discard != "none"
    if method in ("exact", "cem") and distance not in ("logit",) and distance is not None:
        warnings.warn(f"distance={distance!r} ignored for method={method!r}.", UserWarning, stacklevel=2)
    if method in ("exact", "cem", "subclass"):
        ignored = [nm for nm, bad in (("ratio", ratio != 1), ("replace", replace), ("caliper", caliper is not None),
                                      ("m_order", m_order is not None)) if bad]
        if ignored:
            warnings.warn(f"{', '.join(ignored)} ignored for method={method!r}.", UserWarning, stacklevel=2)
    if not isinstance(distance, str):
        raise SpecificationError(f"The 'distance' parameter must be 'logit', 'mahalanobis' or a column name. Got {distance!r}.")
    if distance == "logit":
        if uses_ps:  # exact matching and CEM use no distance (as MatchIt)
            ps_model = fit_logit(design)
            dvec = ps_model.ps
            options["distance_label"] = "propensity score, logit"
    elif distance == "mahalanobis":
        if method not in ("nearest", "optimal"):
            raise SpecificationError(f"distance='mahalanobis' is for method='nearest' or 'optimal'. Got method={method!r}.")
        mahal = True
        options["distance_label"] = "Mahalanobis (standardised covariates, pooled within-group covariance, generalised inverse)"
        if caliper is not None:
            raise SpecificationError("A caliper with distance='mahalanobis' is not supported: match on a propensity score column with caliper=, or use exact= to restrict matches.")
    else:
        if distance not in data.columns:
            raise DataError(f"distance={distance!r} is neither 'logit', 'mahalanobis' nor a column of data.")
        dvec = check_distance_column(data, distance, treat)
        options["distance_label"] = f"user score {distance!r}"
    if m_order is None:
        m_order = "largest" if (dvec is not None and distance == "logit") else "data"
    check_option(m_order, "m_order", ("largest", "smallest", "random", "data"), "match")
    if method == "nearest":
        options["m_order"] = m_order

    # -- common support -------------------------------------------------------------------------
    eligible = np.ones(n, dtype=bool)
    discarded = np.zeros(n, dtype=bool)
    if dvec is not None:
        d1, d0 = dvec[treat == 1], dvec[treat == 0]
        if d1.min() > d0.max() or d1.max() < d0.min():
            raise DataError(
                f"No overlap: the distance ranges of treated [{d1.min():.4g}, {d1.max():.4g}] and controls "
                f"[{d0.min():.4g}, {d0.max():.4g}] do not intersect, so no treated unit has a comparable control. "
                f"Revisit the covariates (a near-deterministic predictor of '{treatment}') or the comparison group."
            )
        out_t = int(np.sum((d1 < d0.min()) | (d1 > d0.max())))
        if out_t:
            notes.append(f"{out_t} treated units have a distance outside the controls' range (limited overlap); "
                         f"discard='treated' or 'both' trims them, a caliper leaves them unmatched.")
        if discard != "none":
            lo1, hi1, lo0, hi0 = d1.min(), d1.max(), d0.min(), d0.max()
            if discard in ("both", "control"):
                discarded |= (treat == 0) & ((dvec < lo1) | (dvec > hi1))
            if discard in ("both", "treated"):
                discarded |= (treat == 1) & ((dvec < lo0) | (dvec > hi0))
            eligible = ~discarded
            nd1, nd0 = int((discarded & (treat == 1)).sum()), int((discarded & (treat == 0)).sum())
            if nd1 + nd0:
                msg = f"discard={discard!r}: {nd1} treated and {nd0} control units outside the common support of the distance were discarded before matching."
                notes.append(msg)
                warnings.warn(msg, DroppedRowsWarning, stacklevel=2)

    # -- matching -------------------------------------------------------------------------------
    pairs: dict = {}
    sub = np.full(n, np.nan)
    if method in ("nearest", "optimal"):
        n_t = int(((treat == 1) & eligible).sum())
        n_c = int(((treat == 0) & eligible).sum())
        if not replace and n_c < ratio * n_t and caliper is None and not exact_cols:
            raise DataError(
                f"Too few controls for ratio={ratio} without replacement: {n_c} controls for {n_t} treated units "
                f"need at least {ratio * n_t}. Use replace=True, ratio={max(1, n_c // max(n_t, 1))} or fewer, or a "
                f"caliper (which leaves some treated units unmatched)."
                if n_c >= n_t else
                f"Too few controls: {n_c} controls for {n_t} treated units (ratio={ratio}, no replacement), so "
                f"{n_t - n_c // ratio} treated units could not be matched. Use replace=True, or weight(...) instead of matching."
            )
        groups = _group_codes(data[list(exact_cols)]) if exact_cols else None
        cal_abs = None
        if caliper is not None:
            # MatchIt: sd(distance[!discarded]) -- the pooled SD over the units kept for matching
            sd = float(np.std(dvec[eligible], ddof=1))
            cal_abs = caliper * sd if std_caliper else float(caliper)
            options["caliper_width"] = cal_abs
        rng = as_generator(seed) if m_order == "random" else None
        treated_idx = np.flatnonzero((treat == 1) & eligible)
        if method == "nearest":
            if mahal:
                Z, VI = _mahalanobis_vi(design.X_model, treat)
                order = treated_order(np.zeros(n), treated_idx, "data" if m_order in ("largest", "smallest") else m_order, rng)
                pairs = greedy_matrix(Z, VI, treat, order, ratio, replace, None, None, groups, eligible)
            else:
                order = treated_order(dvec, treated_idx, m_order, rng)
                pairs = greedy_scalar(dvec, treat, order, ratio, replace, cal_abs, groups, eligible)
        else:
            if replace:
                raise SpecificationError("method='optimal' matches without replacement; use method='nearest' with replace=True.")
            Zm = _mahalanobis_vi(design.X_model, treat) if mahal else None
            pairs = _optimal(dvec, Zm, treat, treated_idx, ratio, cal_abs, groups, eligible)
        weights, sub = _weights_from_pairs(pairs, n, treat)
        if replace:
            sub = np.full(n, np.nan)
        n_unm = int(sum(1 for t in pairs if not pairs[t]))
        if pairs and n_unm == len(pairs):
            cause = []
            if caliper is not None:
                cause.append(f"caliper={caliper!r} ({cal_abs:.4g} in distance units)")
            if exact_cols:
                cause.append(f"exact={list(exact_cols)!r}")
            raise DataError(
                f"No treated unit has an eligible control: all {n_unm} treated units are unmatched"
                + (f" under {' and '.join(cause)}" if cause else "")
                + ". Widen the caliper, drop or coarsen the exact= columns, or use weight(...) instead of matching."
            )
        if n_unm:
            why = "no control within the caliper" if caliper is not None else "no available control in their exact-match group" if exact_cols else "controls ran out"
            notes.append(f"{n_unm} treated units unmatched ({why}); the estimand is the ATT among matched treated units.")
    elif method in ("exact", "cem"):
        if method == "exact":
            codes = _group_codes(data[list(design.covariates) + list(exact_cols)])
        else:
            coarse = _cem_codes(data, design.covariates, design.factors, cutpoints)
            if exact_cols:
                coarse = pd.concat([coarse, data[list(exact_cols)].astype(object)], axis=1)
            codes = _group_codes(coarse)
            options["cutpoints"] = cutpoints if not isinstance(cutpoints, dict) else dict(cutpoints)
        both = _strata_with_both(codes, treat, eligible)
        sub = _renumber(codes, both, first_in=treat == 0)
        weights = _weights_from_subclass(sub, treat, estimand)
        options["n_subclasses"] = int(np.nanmax(sub)) if both.any() else 0
        nt_lost = int(((treat == 1) & ~both).sum())
        if nt_lost:
            notes.append(f"{nt_lost} treated units have no control in their {'exact' if method == 'exact' else 'coarsened'} stratum and are unmatched.")
        if not both.any():
            raise DataError(f"method={method!r}: no stratum contains both treated and control units; coarsen the covariates (cutpoints=) or use fewer covariates.")
    else:  # subclass
        check_scalar(subclass, "subclass", Integral, min_val=1)
        base = dvec[(treat == 1) & eligible] if estimand == "ATT" else dvec[eligible]
        q = np.quantile(base, np.linspace(0, 1, subclass + 1))
        q = np.unique(q)
        codes = np.clip(np.searchsorted(q, dvec, side="right"), 1, len(q) - 1).astype(float)
        codes[~eligible] = np.nan
        codes = _merge_empty(codes, treat)
        keep = ~np.isnan(codes)
        sub = _renumber(np.where(keep, codes, -1), keep)
        weights = _weights_from_subclass(sub, treat, estimand)
        options["n_subclasses"] = int(np.nanmax(sub))
    weights = np.where(eligible, weights, 0.0)
    return MatchResult(
        data=data,
        treatment=treatment,
        covariates=design.covariates,
        method=method,
        estimand=estimand,
        weights=weights,
        subclass=sub,
        distance=dvec,
        design=design,
        pairs=pairs,
        discarded=discarded,
        options=options,
        ps_model=ps_model,
        notes=tuple(notes),
    )


def _strata_with_both(codes: np.ndarray, treat: np.ndarray, eligible: np.ndarray) -> np.ndarray:
    G = int(codes.max()) + 1
    nt = np.bincount(codes[eligible], weights=treat[eligible], minlength=G)
    nc = np.bincount(codes[eligible], weights=1 - treat[eligible], minlength=G)
    return eligible & (nt[codes] > 0) & (nc[codes] > 0)


def _merge_empty(codes: np.ndarray, treat: np.ndarray) -> np.ndarray:
    """Merge subclasses lacking treated or control units into their neighbour (MatchIt: min.n = 1)."""
    codes = codes.copy()
    while True:
        ok = ~np.isnan(codes)
        levels = np.unique(codes[ok])
        bad = [s for s in levels if treat[ok][codes[ok] == s].min() == treat[ok][codes[ok] == s].max()]
        if not bad or len(levels) == 1:
            return codes
        s = bad[0]
        i = int(np.flatnonzero(levels == s)[0])
        tgt = levels[i - 1] if i > 0 else levels[i + 1]
        codes[codes == s] = tgt


def _optimal(dvec, Zm, treat, treated_idx, ratio, cal_abs, groups, eligible) -> dict:
    """Optimal pair matching: minimum total |distance| (Hungarian algorithm on a ratio-replicated
    cost matrix); pairs beyond the caliper or across exact groups are forbidden."""
    from scipy.optimize import linear_sum_assignment

    ctrl = np.flatnonzero((treat == 0) & eligible)
    if Zm is not None:
        Z, VI = Zm
        vals, vecs = np.linalg.eigh(VI)
        Zs = Z @ (vecs * np.sqrt(np.clip(vals, 0, None)))
        cost = np.sqrt(((Zs[treated_idx][:, None, :] - Zs[ctrl][None, :, :]) ** 2).sum(-1))
    else:
        cost = np.abs(dvec[treated_idx][:, None] - dvec[ctrl][None, :])
    big = np.isfinite(cost).all() and (cost.max() + 1) * 1e6 or 1e12
    forbid = np.zeros_like(cost, dtype=bool)
    if cal_abs is not None:
        forbid |= cost > cal_abs
    if groups is not None:
        forbid |= groups[treated_idx][:, None] != groups[ctrl][None, :]
    C = np.where(forbid, big, cost)
    C = np.repeat(C, ratio, axis=0)
    rows, cols = linear_sum_assignment(C)
    pairs = {int(t): [] for t in treated_idx}
    for r, c in zip(rows, cols):
        if C[r, c] >= big:
            continue
        pairs[int(treated_idx[r // ratio])].append(int(ctrl[c]))
    return pairs
