"""Two-period, two-group DiD estimators for one ATT(g,t) cell, with influence functions.

Panel estimators of Sant'Anna & Zhao (2020) as implemented in R ``DRDID`` (``drdid_panel``,
``std_ipw_did_panel``, ``reg_did_panel``): logit propensity score by maximum likelihood (Newton /
IRLS, vectorised), OLS outcome regression of the change on the comparison units. Each function
takes the cell's units only and returns the estimate and the influence function of those units
(mean zero, scaled so that ``se = sqrt(mean(psi**2) / n_cell)``).

Repeated cross-sections (:func:`cell_att_rc`): ``drdid_rc`` (locally efficient doubly robust),
``std_ipw_did_rc`` and ``reg_did_rc`` of R ``DRDID``, on the cell's rows (one influence-function
value per row). Checked against the csdid/drdid ports at 1e-13 (tests/reference).
"""
from __future__ import annotations

import numpy as np

from ..errors import EstimationError

__all__ = ["cell_att", "cell_att_rc", "fit_logit"]

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


def _logit_pieces(X: np.ndarray, D: np.ndarray, w: np.ndarray):
    """Propensity score (capped at 1 - 1e-6), trimming indicator and its asymptotic linear representation."""
    n = X.shape[0]
    beta = fit_logit(X, D, w)
    ps = 1.0 / (1.0 + np.exp(-(X @ beta)))
    ps = np.minimum(ps, 1 - 1e-6)
    trim = np.where(D == 1, True, ps < TRIM_LEVEL).astype(float)
    XtWX = (X.T * (ps * (1 - ps) * w)) @ X
    if np.linalg.cond(XtWX) > 1 / np.finfo(float).eps:
        raise EstimationError(
            "The propensity score design matrix is singular in a cell. Remove a covariate from `covariates`."
        )
    alr_ps = ((w * (D - ps))[:, None] * X) @ (np.linalg.inv(XtWX) * n)
    return ps, trim, alr_ps


def _ols_rc(X: np.ndarray, y: np.ndarray, w: np.ndarray, mask: np.ndarray, n: int):
    """OLS fit on the rows ``mask``: fitted values for every row and the asymptotic linear representation."""
    coef = _ols(X[mask], y[mask], w[mask])
    fitted = X @ coef
    w_ols = w * mask
    XpX_inv = np.linalg.inv((X.T * w_ols) @ X / n)
    alr = ((w_ols * (y - fitted))[:, None] * X) @ XpX_inv
    return fitted, alr


def cell_att_rc(y: np.ndarray, post: np.ndarray, D: np.ndarray, X: np.ndarray, w: np.ndarray,
                method: str) -> tuple[float, np.ndarray]:
    """ATT and influence function for one 2x2 cell of repeated cross-sections.

    Estimators of Sant'Anna & Zhao (2020) for repeated cross-sections as implemented in R
    ``DRDID``: ``"dr"`` = ``drdid_rc`` (the locally efficient doubly robust estimator, R ``did``'s
    ``est_method="dr"`` with ``panel=FALSE``), ``"ipw"`` = ``std_ipw_did_rc`` (normalised IPW),
    ``"reg"`` = ``reg_did_rc`` (outcome regression). Every row is its own observation.

    Parameters
    ----------
    y : (m,) outcome of each row.
    post : (m,) 1 for rows of the cell's period ``t``, 0 for rows of its base period.
    D : (m,) 1 for rows of the treated cohort, 0 for comparison rows.
    X : (m, k) covariates **including the intercept column**.
    w : (m,) non-negative row weights.
    method : {"dr", "ipw", "reg"}

    Returns
    -------
    (att, psi) with ``psi`` the per-row influence function (``se = sqrt(mean(psi**2) / m)``).
    """
    n = y.shape[0]
    w = w / w.mean()
    D = D.astype(float)
    post = post.astype(float)
    pre = 1.0 - post
    if method == "reg":
        out_pre, alr_pre = _ols_rc(X, y, w, (D == 0) & (post == 0), n)
        out_post, alr_post = _ols_rc(X, y, w, (D == 0) & (post == 1), n)
        w_pre, w_post, w_d = w * D * pre, w * D * post, w * D
        m_pre, m_post, m_d = w_pre.mean(), w_post.mean(), w_d.mean()
        eta_pre = np.mean(w_pre * y) / m_pre
        eta_post = np.mean(w_post * y) / m_post
        cont = w_d * (out_post - out_pre)
        eta_cont = np.mean(cont) / m_d
        inf_pre = (w_pre * y - w_pre * eta_pre) / m_pre
        inf_post = (w_post * y - w_post * eta_post) / m_post
        moment = np.mean(w_d[:, None] * X, axis=0)
        inf_cont = (cont - w_d * eta_cont + (alr_post - alr_pre) @ moment) / m_d
        return float(eta_post - eta_pre - eta_cont), inf_post - inf_pre - inf_cont

    ps, trim, alr_ps = _logit_pieces(X, D, w)
    odds = ps / (1 - ps)
    w_tpre = trim * w * D * pre
    w_tpost = trim * w * D * post
    w_cpre = trim * w * odds * (1 - D) * pre
    w_cpost = trim * w * odds * (1 - D) * post

    if method == "ipw":
        mt0, mt1, mc0, mc1 = w_tpre.mean(), w_tpost.mean(), w_cpre.mean(), w_cpost.mean()
        a_t0 = np.mean(w_tpre * y) / mt0
        a_t1 = np.mean(w_tpost * y) / mt1
        a_c0 = np.mean(w_cpre * y) / mc0
        a_c1 = np.mean(w_cpost * y) / mc1
        att = (a_t1 - a_t0) - (a_c1 - a_c0)
        inf_treat = w_tpost * (y - a_t1) / mt1 - w_tpre * (y - a_t0) / mt0
        inf_cont = w_cpost * (y - a_c1) / mc1 - w_cpre * (y - a_c0) / mc0
        M2_pre = np.mean((w_cpre * (y - a_c0))[:, None] * X, axis=0) / mc0
        M2_post = np.mean((w_cpost * (y - a_c1))[:, None] * X, axis=0) / mc1
        inf_cont = inf_cont + alr_ps @ (M2_post - M2_pre)
        return float(att), inf_treat - inf_cont

    # locally efficient doubly robust estimator (DRDID::drdid_rc)
    ctrl, treat = D == 0, D == 1
    out_c0, alr_c0 = _ols_rc(X, y, w, ctrl & (post == 0), n)
    out_c1, alr_c1 = _ols_rc(X, y, w, ctrl & (post == 1), n)
    out_t0, alr_t0 = _ols_rc(X, y, w, treat & (post == 0), n)
    out_t1, alr_t1 = _ols_rc(X, y, w, treat & (post == 1), n)
    out_c = post * out_c1 + pre * out_c0
    r = y - out_c
    w_d = trim * w * D
    w_dt1, w_dt0 = w_tpost, w_tpre
    mt0, mt1, mc0, mc1, md = w_tpre.mean(), w_tpost.mean(), w_cpre.mean(), w_cpost.mean(), w_d.mean()
    a_t0 = np.mean(w_tpre * r) / mt0
    a_t1 = np.mean(w_tpost * r) / mt1
    a_c0 = np.mean(w_cpre * r) / mc0
    a_c1 = np.mean(w_cpost * r) / mc1
    g1 = out_t1 - out_c1
    g0 = out_t0 - out_c0
    a_d1 = np.mean(w_d * g1) / md
    a_dt1 = np.mean(w_dt1 * g1) / mt1
    a_d0 = np.mean(w_d * g0) / md
    a_dt0 = np.mean(w_dt0 * g0) / mt0
    att = (a_t1 - a_t0) - (a_c1 - a_c0) + (a_d1 - a_dt1) - (a_d0 - a_dt0)

    inf_t0 = w_tpre * (r - a_t0) / mt0
    inf_t1 = w_tpost * (r - a_t1) / mt1
    M1_post = -np.mean((w_tpost * post)[:, None] * X, axis=0) / mt1
    M1_pre = -np.mean((w_tpre * pre)[:, None] * X, axis=0) / mt0
    inf_treat_or = alr_c1 @ M1_post - alr_c0 @ M1_pre
    inf_c0 = w_cpre * (r - a_c0) / mc0
    inf_c1 = w_cpost * (r - a_c1) / mc1
    M2_pre = np.mean((w_cpre * (r - a_c0))[:, None] * X, axis=0) / mc0
    M2_post = np.mean((w_cpost * (r - a_c1))[:, None] * X, axis=0) / mc1
    inf_cont_ps = alr_ps @ (M2_post - M2_pre)
    M3_post = -np.mean((w_cpost * post)[:, None] * X, axis=0) / mc1
    M3_pre = -np.mean((w_cpre * pre)[:, None] * X, axis=0) / mc0
    inf_cont_or = alr_c1 @ M3_post - alr_c0 @ M3_pre
    inf_eff = (w_d * (g1 - a_d1) / md - w_dt1 * (g1 - a_dt1) / mt1) - (w_d * (g0 - a_d0) / md - w_dt0 * (g0 - a_dt0) / mt0)
    mom_post = np.mean((w_d / md - w_dt1 / mt1)[:, None] * X, axis=0)
    mom_pre = np.mean((w_d / md - w_dt0 / mt0)[:, None] * X, axis=0)
    inf_or = (alr_t1 - alr_c1) @ mom_post - (alr_t0 - alr_c0) @ mom_pre
    inf_treat = inf_t1 - inf_t0 + inf_treat_or
    inf_cont = inf_c1 - inf_c0 + inf_cont_ps + inf_cont_or
    return float(att), inf_treat - inf_cont + inf_eff + inf_or
