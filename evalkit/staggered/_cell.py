"""Two-period, two-group DiD estimators for one ATT(g,t) cell, with influence functions.

Panel estimators of Sant'Anna & Zhao (2020) as implemented in R ``DRDID`` (``drdid_panel``,
``std_ipw_did_panel``, ``reg_did_panel``): logit propensity score by maximum likelihood (Newton /
IRLS, vectorised), OLS outcome regression of the change on the comparison units. Each function
takes the cell's units only and returns the estimate and the influence function of those units
(mean zero, scaled so that ``se = sqrt(mean(psi**2) / n_cell)``).
"""
from __future__ import annotations

import numpy as np

from ..errors import EstimationError

__all__ = ["cell_att", "fit_logit"]

#: Propensity scores of comparison units at or above this are trimmed (R DRDID ``trim.level``).
TRIM_LEVEL = 0.995


def fit_logit(X: np.ndarray, d: np.ndarray, w: np.ndarray, *, tol: float = 1e-12, max_iter: int = 100) -> np.ndarray:
    """Weighted logit by Newton-Raphson (IRLS) with step halving; returns the coefficients."""
    k = X.shape[1]
    beta = np.zeros(k)
    pbar = np.sum(w * d) / np.sum(w)
    if not 0 < pbar < 1:
        raise EstimationError("Propensity score: the cell has no treated or no comparison units.")
    beta[0] = np.log(pbar / (1 - pbar)) if np.allclose(X[:, 0], 1.0) else 0.0

    def loglik(b):
        eta = X @ b
        return float(np.sum(w * (d * eta - np.logaddexp(0.0, eta))))

    ll = loglik(beta)
    for _ in range(max_iter):
        eta = X @ beta
        p = 1.0 / (1.0 + np.exp(-eta))
        grad = X.T @ (w * (d - p))
        H = (X * (w * p * (1 - p))[:, None]).T @ X
        try:
            step = np.linalg.solve(H, grad)
        except np.linalg.LinAlgError:
            raise EstimationError(
                "The propensity score design matrix is singular in a cell: a covariate is collinear "
                "or constant among the cell's units. Remove it from `covariates`."
            ) from None
        s = 1.0
        while True:
            new = beta + s * step
            ll_new = loglik(new)
            if ll_new >= ll - 1e-12 * abs(ll) or s < 1e-8:
                break
            s /= 2
        beta, ll = new, ll_new
        if np.max(np.abs(s * step)) <= tol * (1.0 + np.max(np.abs(beta))):
            break
    return beta


def _ols(X: np.ndarray, y: np.ndarray, w: np.ndarray) -> np.ndarray:
    XtW = X.T * w
    XtX = XtW @ X
    if np.linalg.cond(XtX) > 1 / np.finfo(float).eps:
        raise EstimationError(
            "The outcome-regression design matrix is singular in a cell (a covariate is collinear or "
            "constant among the comparison units). Remove it from `covariates`."
        )
    return np.linalg.solve(XtX, XtW @ y)


def cell_att(dy: np.ndarray, D: np.ndarray, X: np.ndarray, w: np.ndarray, method: str) -> tuple[float, np.ndarray]:
    """ATT and influence function for one 2x2 cell (panel).

    Parameters
    ----------
    dy : (m,) outcome change ``Y_t - Y_base``.
    D : (m,) 1 for units of the treated cohort, 0 for comparison units.
    X : (m, k) covariates **including the intercept column** (first column of ones).
    w : (m,) non-negative unit weights.
    method : {"dr", "ipw", "reg"}
    """
    n = dy.shape[0]
    w = w / w.mean()
    D = D.astype(float)
    if method == "reg":
        ctrl = D == 0
        coef = _ols(X[ctrl], dy[ctrl], w[ctrl])
        out = X @ coef
        w_t = w * D
        eta_t = np.mean(w_t * dy) / np.mean(w_t)
        eta_c = np.mean(w_t * out) / np.mean(w_t)
        w_ols = w * (1 - D)
        XpX_inv = np.linalg.inv((X.T * w_ols) @ X / n)
        alr_ols = ((w_ols * (dy - out))[:, None] * X) @ XpX_inv
        inf_t = (w_t * dy - w_t * eta_t) / np.mean(w_t)
        M1 = np.mean(w_t[:, None] * X, axis=0)
        inf_c = (w_t * out - w_t * eta_c + alr_ols @ M1) / np.mean(w_t)
        return eta_t - eta_c, inf_t - inf_c

    beta = fit_logit(X, D, w)
    ps = 1.0 / (1.0 + np.exp(-(X @ beta)))
    ps = np.minimum(ps, 1 - 1e-6)
    trim = np.where(D == 1, True, ps < TRIM_LEVEL).astype(float)
    W = ps * (1 - ps) * w
    XtWX = (X.T * W) @ X
    if np.linalg.cond(XtWX) > 1 / np.finfo(float).eps:
        raise EstimationError(
            "The propensity score design matrix is singular in a cell. Remove a covariate from `covariates`."
        )
    alr_ps = ((w * (D - ps))[:, None] * X) @ (np.linalg.inv(XtWX) * n)
    w_t = trim * w * D
    w_c = trim * w * ps * (1 - D) / (1 - ps)

    if method == "ipw":
        eta_t = np.mean(w_t * dy) / np.mean(w_t)
        eta_c = np.mean(w_c * dy) / np.mean(w_c)
        inf_t = (w_t * dy - w_t * eta_t) / np.mean(w_t)
        M2 = np.mean((w_c * (dy - eta_c))[:, None] * X, axis=0)
        inf_c = (w_c * dy - w_c * eta_c + alr_ps @ M2) / np.mean(w_c)
        return eta_t - eta_c, inf_t - inf_c

    # doubly robust (locally efficient, "traditional") estimator
    ctrl = D == 0
    coef = _ols(X[ctrl], dy[ctrl], w[ctrl])
    out = X @ coef
    resid = dy - out
    eta_t = np.mean(w_t * resid) / np.mean(w_t)
    eta_c = np.mean(w_c * resid) / np.mean(w_c)
    w_ols = w * (1 - D)
    XpX = (X.T * w_ols) @ X / n
    alr_ols = ((w_ols * resid)[:, None] * X) @ np.linalg.inv(XpX)
    M1 = np.mean(w_t[:, None] * X, axis=0)
    inf_t = (w_t * resid - w_t * eta_t - alr_ols @ M1) / np.mean(w_t)
    M2 = np.mean((w_c * (resid - eta_c))[:, None] * X, axis=0)
    M3 = np.mean(w_c[:, None] * X, axis=0)
    inf_c = (w_c * resid - w_c * eta_c + alr_ps @ M2 - alr_ols @ M3) / np.mean(w_c)
    return eta_t - eta_c, inf_t - inf_c
