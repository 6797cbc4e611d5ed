r"""Effect estimation after matching or weighting (MatchIt's "Estimating Effects" guidance).

The ATT is the coefficient on the treatment in the weighted regression
:math:`y_i = \alpha + \tau D_i + e_i` on the matched (or weighted) sample with the matching
weights, i.e. the weighted difference in means (R: ``lm(y ~ treat, data = match_data(m),
weights = weights)``). Standard errors by design (``vcov="auto"``):

=================================================  ===========================================
design                                             standard error
=================================================  ===========================================
nearest / optimal without replacement              cluster-robust by pair (``sandwich::vcovCL``
                                                   defaults: HC1 factor (n-1)/(n-k) and G/(G-1))
nearest with replacement, exact, CEM, subclass      HC3 (``sandwich::vcovHC(type="HC3")``)
weighting (IPW, overlap, entropy)                  HC0 (the weights are treated as known)
=================================================  ===========================================

``vcov="twoway"`` after matching with replacement clusters by pair and by unit on the
``get_matches()`` data (one row per unit per pair; Austin & Cafri 2020). Inference uses
Student t with n - 2 degrees of freedom (what ``lmtest::coeftest`` reports for ``lm``).
"""
from __future__ import annotations

from numbers import Real

import numpy as np
import pandas as pd

from .._validation import check_columns_arg, check_option, check_scalar
from ..data.schema import DropRecord
from ..errors import DataError, SpecificationError
from ..inference.vcov import LinearFit, compute_vcov, ssc
from ..results import Conventions, EffectResult, SampleInfo, tidy_table
from .results import MatchResult

__all__ = ["estimate_effect", "matched_did", "VCOV_OPTIONS"]

VCOV_OPTIONS = ("auto", "CR1", "HC0", "HC1", "HC2", "HC3", "iid", "twoway")


def _wls(y: np.ndarray, X: np.ndarray, w: np.ndarray):
    XtWX = X.T @ (X * w[:, None])
    bread = np.linalg.inv(XtWX)
    beta = bread @ (X.T @ (w * y))
    e = y - X @ beta
    return beta, e, bread


def hc_vcov(X: np.ndarray, e: np.ndarray, w: np.ndarray, bread: np.ndarray, kind: str) -> np.ndarray:
    """Heteroskedasticity-robust covariance of weighted least squares (``sandwich::vcovHC``):
    scores :math:`w_i e_i x_i`; HC1 scales by n/(n-k); HC2/HC3 divide the scores by
    :math:`\\sqrt{1-h_i}` / :math:`1-h_i` with :math:`h_i = w_i x_i'(X'WX)^{-1}x_i`."""
    n, k = X.shape
    u = w * e
    if kind in ("HC2", "HC3"):
        h = w * np.einsum("ij,jk,ik->i", X, bread, X)
        u = u / (np.sqrt(1 - h) if kind == "HC2" else (1 - h))
    S = X * u[:, None]
    V = bread @ (S.T @ S) @ bread
    if kind == "HC1":
        V *= n / (n - k)
    return V


def _outcome(data: pd.DataFrame, col: str, role: str) -> np.ndarray:
    if not isinstance(col, str):
        raise SpecificationError(f"The {role!r} parameter must be a column name (str). Got {col!r}.")
    if col not in data.columns:
        raise DataError(f"Column {col!r} ({role}=) not found in data.")
    s = data[col]
    if not pd.api.types.is_numeric_dtype(s.dtype):
        raise DataError(f"Column {col!r} ({role}=) must be numeric. Got dtype {s.dtype}; convert it first.")
    k = int(s.isna().sum())
    if k:
        raise DataError(f"Column {col!r} ({role}=): {k} missing values among the matched units. "
                        f"Drop those units before matching (so matching is done on the analysis sample).")
    return s.to_numpy(dtype=float)


def estimate_effect(
    matched: MatchResult,
    outcome: str | None = None,
    *,
    pre=None,
    vcov: str = "auto",
    level: float = 0.95,
) -> EffectResult:
    r"""ATT (or ATE) on matched or weighted data, with the standard error MatchIt recommends.

    Parameters
    ----------
    matched : MatchResult
        From :func:`match` or :func:`weight`.
    outcome : str
        Outcome column (may be given positionally).
    pre : str or list of str, default=None
        Matched difference-in-differences: the outcome becomes ``outcome - mean(pre columns)``,
        the change from the pre-period(s) for each unit, so the estimate is the difference between
        matched treated and control units in their outcome changes.
    vcov : {"auto", "CR1", "HC0", "HC1", "HC2", "HC3", "iid", "twoway"}, default="auto"
        ``"auto"`` follows the table in the module docstring. ``"CR1"`` clusters by pair/subclass
        (``sandwich::vcovCL`` defaults); ``"twoway"`` clusters by pair and unit on the
        ``get_matches()`` data (matching with replacement).
    level : float, default=0.95

    Returns
    -------
    EffectResult
        Term ``"ATT"`` (``"ATT (DiD)"`` with ``pre=``). ``extra["se_all"]`` gives the SE under
        every type for comparison.

    Notes
    -----
    :math:`\hat\tau = \sum_{D=1} w_i y_i / \sum_{D=1} w_i - \sum_{D=0} w_i y_i / \sum_{D=0} w_i`.
    Inference: Student t with :math:`n - 2` degrees of freedom, n the matched units.
    The propensity score is treated as known (no adjustment for its estimation), as in MatchIt.
    """
    if not isinstance(matched, MatchResult):
        raise SpecificationError(f"'matched' must be the result of ek.matching.match() or weight(). Got {type(matched).__name__}.")
    if outcome is None:
        raise SpecificationError("estimate_effect() needs an outcome column: estimate_effect(m, 're78').")
    check_option(vcov, "vcov", VCOV_OPTIONS, "estimate_effect")
    check_scalar(level, "level", Real, min_val=0, max_val=1, include_min=False, include_max=False)
    pre_cols = check_columns_arg(pre, "pre")
    data = matched.data
    use = matched.weights > 0
    n_t, n_c = int((use & (matched.treat == 1)).sum()), int((use & (matched.treat == 0)).sum())
    if n_t == 0 or n_c == 0:
        raise DataError(f"The matched sample has {n_t} treated and {n_c} control units with positive weight; "
                        f"an effect needs both. Re-run match() with a wider caliper or fewer exact= columns.")
    y_all = _outcome(data.loc[use], outcome, "outcome")
    y = np.zeros(len(data))
    y[use] = y_all
    term = "ATT" if matched.estimand == "ATT" else matched.estimand
    if pre_cols:
        pre_vals = np.column_stack([_outcome(data.loc[use], c, "pre") for c in pre_cols])
        y[use] = y_all - pre_vals.mean(axis=1)
        term = f"{term} (DiD)"
    method = matched.method
    auto = vcov == "auto"
    if auto:
        if matched.is_weighting:
            vcov = "HC0"
        elif method in ("nearest", "optimal") and not matched.replace:
            vcov = "CR1"
        else:
            vcov = "HC3"
    if vcov == "CR1" and (matched.is_weighting or matched.replace):
        raise SpecificationError(
            "vcov='CR1' clusters by pair/subclass, which is undefined "
            + ("after weighting; use 'HC0'." if matched.is_weighting else "after matching with replacement (a control belongs to several pairs); use 'HC3' or 'twoway'.")
        )
    if vcov == "twoway" and not matched.pairs:
        raise SpecificationError("vcov='twoway' (pair and unit) needs pair-forming matching (method='nearest' or 'optimal').")

    if vcov == "twoway":
        gm = matched.get_matches(id="_row_", subclass="_pair_", weights="_w_")
        rows = gm["_row_"].to_numpy()
        yy, tt, ww = y[rows], matched.treat[rows].astype(float), gm["_w_"].to_numpy(float)
        cl = np.column_stack([pd.factorize(gm["_pair_"])[0], pd.factorize(rows)[0]])
    else:
        yy, tt, ww = y[use], matched.treat[use].astype(float), matched.weights[use]
        cl = pd.factorize(matched.subclass[use])[0] if not np.isnan(matched.subclass[use]).any() else None
    X = np.column_stack([np.ones(len(yy)), tt])
    beta, e, bread = _wls(yy, X, ww)
    n, k = X.shape
    df = n - k
    fit = LinearFit(X=X, resid=e, beta=beta, bread=bread, weights=ww, names=("(Intercept)", term), n_fe_params=0)
    se_all = {"classical_ols": float(np.sqrt(compute_vcov(fit, "iid").vcov[1, 1]))}
    for kind in ("HC0", "HC1", "HC2", "HC3"):
        se_all[kind] = float(np.sqrt(hc_vcov(X, e, ww, bread, kind)[1, 1]))
    if cl is not None and vcov != "twoway" and cl.max() >= 1:
        se_all["CL_default_HC1"] = float(np.sqrt(compute_vcov(fit, "CR1", clusters=cl).vcov[1, 1]))
    n_clusters: tuple[int, ...] = ()
    cluster_names: tuple[str, ...] = ()
    if vcov == "iid":
        V = compute_vcov(fit, "iid").vcov
        desc = "homoskedastic (lm's classical variance)"
    elif vcov.startswith("HC"):
        V = hc_vcov(X, e, ww, bread, vcov)
        desc = {
            "HC0": "heteroskedasticity-robust HC0 (sandwich::vcovHC type='HC0'); weights treated as fixed",
            "HC1": "heteroskedasticity-robust HC1: n/(n-k)",
            "HC2": "heteroskedasticity-robust HC2: leverage 1/sqrt(1-h)",
            "HC3": "heteroskedasticity-robust HC3 (sandwich::vcovHC type='HC3'): scores / (1-h), h = weighted leverage",
        }[vcov]
    elif vcov == "CR1":
        if cl is None or cl.max() < 1:
            raise SpecificationError("vcov='CR1' needs pair/subclass ids on every matched unit and at least 2 pairs/subclasses.")
        vr = compute_vcov(fit, "CR1", clusters=cl, cluster_names=("subclass",))
        V = vr.vcov
        n_clusters = vr.n_clusters
        cluster_names = ("subclass",)
        desc = (f"cluster-robust by pair/subclass (sandwich::vcovCL defaults: HC1 (n-1)/(n-k) and G/(G-1)), "
                f"G={n_clusters[0]}, N={n}, K={k}")
    else:  # twoway
        vr = compute_vcov(fit, "CR1", clusters=cl, cluster_names=("pair", "unit"), small_sample=ssc(G_df="conventional"))
        V = vr.vcov
        n_clusters = vr.n_clusters
        cluster_names = ("pair", "unit")
        desc = (f"two-way cluster-robust by pair and unit on get_matches() rows (sandwich::vcovCL(cluster=~subclass+id)), "
                f"G={n_clusters}, N={n} rows")
        se_all["CL_twoway"] = float(np.sqrt(V[1, 1]))
    se = float(np.sqrt(V[1, 1]))
    table = tidy_table([term], [beta[1]], [se], df, level)
    n_unmatched = int((~use).sum())
    dropped = ()
    if n_unmatched:
        dropped = (DropRecord("unmatched or discarded (weight 0)", n_unmatched,
                              f"{int(((~use) & (matched.treat == 1)).sum())} treated, {int(((~use) & (matched.treat == 0)).sum())} control"),)
    weights_desc = {
        "nearest": "matching weights (MatchIt): treated 1, controls sum of 1/k over their treated units, rescaled to the matched control count",
        "optimal": "matching weights (MatchIt): treated 1, controls 1/k, rescaled to the matched control count",
        "exact": "stratum weights n_t,s/n_c,s (MatchIt), rescaled to the matched control count",
        "cem": "stratum weights n_t,s/n_c,s (MatchIt), rescaled to the matched control count",
        "subclass": "subclass weights n_t,s/n_c,s (MatchIt), rescaled to the matched control count",
    }.get(method, f"{method} weights ({matched.estimand})")
    est_desc = f"{term}: weighted difference in means after {method} {'weighting' if matched.is_weighting else 'matching'} (WLS of {outcome}{' - ' + '/'.join(pre_cols) if pre_cols else ''} on the treatment)"
    notes = [
        "Propensity score and weights treated as known (no correction for their estimation), as in MatchIt's guidance.",
        f"SE type {vcov}: " + ("chosen by design as MatchIt's 'Estimating Effects' guidance recommends (vcov='auto')." if auto else "requested by the user (vcov=)."),
        "Inference: Student t with n - 2 degrees of freedom (lmtest::coeftest on lm), n = matched units.",
    ]
    if pre_cols:
        notes.append(f"Matched DiD: outcome change {outcome} - mean({', '.join(pre_cols)}) per unit.")
    conv = Conventions(
        estimator=est_desc,
        vcov_type=vcov,
        vcov_description=desc,
        distribution=f"t({df})",
        df=float(df),
        cluster=cluster_names,
        n_clusters=n_clusters,
        small_sample="(n-1)/(n-k) x G/(G-1)" if vcov in ("CR1", "twoway") else ("n/(n-k)" if vcov == "HC1" else ""),
        weights=weights_desc,
        level=level,
        notes=tuple(notes),
    )
    sample = SampleInfo(n_obs=int(use.sum()), n_input_rows=len(data), n_units=int(use.sum()),
                        n_treated_units=int((use & (matched.treat == 1)).sum()), dropped=dropped)
    extra = {
        "se_all": se_all,
        "n_rows": n,
        "sum_weights_treated": float(ww[tt == 1].sum()),
        "sum_weights_control": float(ww[tt == 0].sum()),
        "intercept": float(beta[0]),
        "outcome": outcome,
        "pre": pre_cols,
    }
    return EffectResult(table, V[1:, 1:], conv, sample, extra)


def matched_did(matched: MatchResult, *, outcome: str, pre, vcov: str = "auto", level: float = 0.95) -> EffectResult:
    """Matched difference-in-differences: :func:`estimate_effect` with ``pre=`` (outcome changes
    of matched treated and control units; e.g. Lalonde ``outcome="re78", pre="re75"``)."""
    if pre is None:
        raise SpecificationError("matched_did() needs pre= (the pre-period outcome column or columns).")
    return estimate_effect(matched, outcome, pre=pre, vcov=vcov, level=level)
