r"""Weighting alternatives to matching, in the same shape (a :class:`MatchResult`).

=========  ==========  ===========================================  ==================================
method     estimand    treated weight                               control weight
=========  ==========  ===========================================  ==================================
ipw        ATT         1                                            :math:`e/(1-e)` (odds; not normalised)
ipw        ATE         :math:`1/e`                                  :math:`1/(1-e)`
overlap    ATO         :math:`1-e`                                  :math:`e`
entropy    ATT         1                                            :math:`\propto \exp(\lambda'x)`, control
                                                                    means of every covariate = treated means
entropy    ATE         :math:`\propto \exp(\lambda_1'x)`              :math:`\propto \exp(\lambda_0'x)`, both
                                                                    groups' means = full-sample means
=========  ==========  ===========================================  ==================================

:math:`e` is the logit propensity score on all units (as :func:`match`). Entropy balancing
(Hainmueller 2012) solves the convex dual :math:`\min_\lambda \log\sum_i \exp(\lambda'(x_i - \bar x^*))`
by Newton's method (scipy ``trust-exact``) on standardised covariates; its weights are
scaled to sum to the group size.
"""
from __future__ import annotations

import numpy as np
from scipy import optimize

from .._validation import check_option
from ..errors import EstimationError, SpecificationError
from ._design import fit_logit, prepare
from .results import MatchResult

__all__ = ["weight", "entropy_weights"]

_ESTIMANDS = {"ipw": ("ATT", "ATE"), "overlap": ("ATO",), "entropy": ("ATT", "ATE")}


def entropy_weights(X: np.ndarray, target: np.ndarray, names=(), tol: float = 1e-8) -> np.ndarray:
    """Weights (summing to 1) on the rows of ``X`` whose weighted means equal ``target``, with
    minimum Kullback-Leibler divergence from uniform weights (the entropy-balancing dual)."""
    sd = X.std(axis=0)
    sd[sd == 0] = 1.0
    Z = (X - target) / sd

    def f(lam):
        a = Z @ lam
        amax = a.max()
        p = np.exp(a - amax)
        s = p.sum()
        p /= s
        val = amax + np.log(s)
        g = p @ Z
        H = (Z * p[:, None]).T @ Z - np.outer(g, g)
        return val, g, H

    res = optimize.minimize(lambda l: f(l)[0], np.zeros(Z.shape[1]), jac=lambda l: f(l)[1], hess=lambda l: f(l)[2],
                            method="trust-exact", options={"gtol": 1e-12, "maxiter": 500})
    a = Z @ res.x
    p = np.exp(a - a.max())
    p /= p.sum()
    gap = np.abs(p @ Z)
    if not np.all(gap < max(tol, 1e-6)):
        worst = [names[j] if j < len(names) else str(j) for j in np.argsort(-gap)[:3]]
        raise EstimationError(
            f"Entropy balancing did not converge: the target means lie (nearly) outside the range of the "
            f"reweighted group (largest standardised gaps for {worst}). This means poor overlap on those "
            f"covariates: drop or coarsen them, or restrict the sample to common support."
        )
    return p


def weight(data, *, treatment: str, covariates, estimand: str | None = None, method: str = "ipw") -> MatchResult:
    """Propensity-score or entropy-balancing weights, returned in the shape of :func:`match`.

    Parameters
    ----------
    data : DataFrame
    treatment : str
        Binary treatment column.
    covariates : list of str
        As in :func:`match` (factors expanded with treatment contrasts).
    estimand : {"ATT", "ATE", "ATO"}, default=None
        Default "ATT" for ``ipw``/``entropy`` and "ATO" for ``overlap`` (the only one it targets).
    method : {"ipw", "overlap", "entropy"}, default="ipw"

    Returns
    -------
    MatchResult
        ``weights`` for every row (none dropped), ``balance()`` (SMD denominator: treated SD for
        the ATT, pooled SD for ATE/ATO, from the unweighted sample), ``summary()``, ``plot()``;
        :func:`estimate_effect` gives HC0 standard errors (weights treated as known).

    Notes
    -----
    See the module docstring for the weights. IPW for the ATT reproduces MatchIt's reference
    (``ps/(1-ps)`` odds weights for controls).
    """
    check_option(method, "method", tuple(_ESTIMANDS), "weight")
    if estimand is None:
        estimand = "ATO" if method == "overlap" else "ATT"
    if estimand not in _ESTIMANDS[method]:
        raise SpecificationError(f"method={method!r} supports estimand in {list(_ESTIMANDS[method])}. Got {estimand!r}.")
    design = prepare(data, treatment, covariates)
    t = design.treat
    n = len(t)
    ps_model = None
    ps = None
    notes = []
    if method in ("ipw", "overlap"):
        ps_model = fit_logit(design)
        ps = ps_model.ps
        if method == "ipw" and estimand == "ATT":
            w = np.where(t == 1, 1.0, ps / (1 - ps))
        elif method == "ipw":
            w = np.where(t == 1, 1 / ps, 1 / (1 - ps))
        else:
            w = np.where(t == 1, 1 - ps, ps)
    else:
        X = design.X_model
        w = np.zeros(n)
        if estimand == "ATT":
            w[t == 1] = 1.0
            p = entropy_weights(X[t == 0], X[t == 1].mean(axis=0), design.model_names)
            w[t == 0] = p * (t == 0).sum()
        else:
            target = X.mean(axis=0)
            for g in (0, 1):
                p = entropy_weights(X[t == g], target, design.model_names)
                w[t == g] = p * (t == g).sum()
    for g, lab in ((0, "control"), (1, "treated")):
        wg = w[t == g]
        ess = wg.sum() ** 2 / (wg**2).sum()
        if ess < 0.1 * len(wg):
            notes.append(f"Effective sample size of the {lab} group is {ess:.1f} of {len(wg)}: a few units carry most weight (limited overlap).")
    return MatchResult(
        data=data, treatment=treatment, covariates=design.covariates, method=method, estimand=estimand,
        weights=w, subclass=np.full(n, np.nan), distance=ps, design=design, options={"estimand": estimand},
        ps_model=ps_model, notes=tuple(notes),
    )
