"""Variance estimators for linear models with absorbed fixed effects — one place for every design.

Notation: after absorbing the fixed effects, ``X`` (n × k) and the residuals ``e`` satisfy
Frisch–Waugh–Lovell, so :math:`\\hat\\beta = (X'WX)^{-1}X'Wy` and the sandwich is
:math:`V = c\\,(X'WX)^{-1}\\,\\Omega\\,(X'WX)^{-1}`.

Supported types (``vcov=``):

``"iid"``
    :math:`\\hat\\sigma^2 (X'WX)^{-1}`, :math:`\\hat\\sigma^2 = e'We/(N-K_{all})`; t(N − K_all), with
    K_all the regressors plus the exact rank of the fixed effects (as ``lm``; with three or more
    effects it is computed by :func:`evalkit.inference.absorb.fe_rank`, falling back to R fixest's
    count, an upper bound, when that is too costly — the description says which).
``"HC1"``
    :math:`\\Omega = \\sum_i w_i^2 e_i^2 x_i x_i'`, :math:`c = N/(N-K_{all})`; t(N − K_all), K_all as for iid.
``"CR0"``, ``"CR1"``
    :math:`\\Omega = \\sum_g s_g s_g'`, :math:`s_g = X_g'W_g e_g`. CR1 multiplies by
    :math:`G/(G-1)\\cdot(N-1)/(N-K)` (see :class:`SmallSampleCorrection`: by default K counts the
    regressors and the fixed effects *not nested* in the clusters — the R fixest convention);
    inference uses t(G − 1).
``"CR2"``
    Bell–McCaffrey bias-reduced sandwich with Satterthwaite degrees of freedom (Pustejovsky &
    Tipton 2018), computed in the k × k low-rank form; fixed effects nested in the clusters are
    absorbed, the others kept in the hat matrix. Matches R clubSandwich.
``"wild"``
    Wild cluster bootstrap-t with the null imposed (WCR; Cameron, Gelbach & Miller 2008;
    MacKinnon, Nielsen & Webb 2023), Rademacher or Webb weights, from cluster-level sums; reports
    the CR1 standard error and t statistic, the bootstrap p-value and a confidence interval by
    test inversion.

Two-way clustering (``cluster=[a, b]``) uses :math:`V_a + V_b - V_{a\\cap b}` (Cameron, Gelbach &
Miller 2011) with the small-sample factor of the smaller dimension, as R fixest does.
"""
from __future__ import annotations

import itertools
import warnings
from dataclasses import dataclass, field
from typing import Literal

import numpy as np

from .._progress import progress_bar
from .._validation import as_generator, check_option
from ..errors import InferenceWarning, SpecificationError

__all__ = [
    "SmallSampleCorrection",
    "ssc",
    "VCOV_TYPES",
    "VcovResult",
    "LinearFit",
    "compute_vcov",
    "wild_cluster_bootstrap",
    "cluster_scores",
    "influence_vcov",
]

VCOV_TYPES = ("iid", "HC1", "CR0", "CR1", "CR2", "wild")
_CLUSTER_TYPES = ("CR0", "CR1", "CR2", "wild")


@dataclass(frozen=True)
class SmallSampleCorrection:
    """Small-sample correction of the sandwich (after pyfixest's ``ssc``, R fixest's ``ssc()``).

    Parameters
    ----------
    k_adj : bool, default=True
        Multiply by (N − 1)/(N − K).
    k_fixef : {"nonnested", "full", "none"}, default="nonnested"
        Which fixed-effect levels count in K: those not nested in a cluster (R fixest's default),
        all of them (Stata ``areg``, statsmodels/R ``lm`` with dummies), or none.
    G_adj : bool, default=True
        Multiply cluster-robust variances by G/(G − 1).
    G_df : {"min", "conventional"}, default="min"
        With several clustering variables: G is the smallest number of clusters (fixest) or each
        term uses its own G ("conventional").
    """

    k_adj: bool = True
    k_fixef: Literal["nonnested", "full", "none"] = "nonnested"
    G_adj: bool = True
    G_df: Literal["min", "conventional"] = "min"

    def __post_init__(self) -> None:
        check_option(self.k_fixef, "k_fixef", ("nonnested", "full", "none"), "ssc")
        check_option(self.G_df, "G_df", ("min", "conventional"), "ssc")

    def describe(self) -> str:
        parts = []
        if self.G_adj:
            parts.append("G/(G-1)")
        if self.k_adj:
            which = {"nonnested": "regressors + fixed-effect levels not nested in the clusters",
                     "full": "regressors + every fixed-effect level", "none": "regressors only"}[self.k_fixef]
            parts.append(f"(N-1)/(N-K) [K = {which}]")
        return " x ".join(parts) if parts else "none"


def ssc(k_adj: bool = True, k_fixef: str = "nonnested", G_adj: bool = True, G_df: str = "min") -> SmallSampleCorrection:
    """Build a :class:`SmallSampleCorrection` (the default reproduces R fixest)."""
    return SmallSampleCorrection(k_adj, k_fixef, G_adj, G_df)  # type: ignore[arg-type]


@dataclass(frozen=True)
class VcovResult:
    """A covariance matrix together with how to do inference with it."""

    vcov: np.ndarray
    vcov_type: str
    description: str
    df: float | np.ndarray | None  # None = normal; per-coefficient array for CR2
    n_clusters: tuple[int, ...] = ()
    cluster_names: tuple[str, ...] = ()
    ssc: SmallSampleCorrection | None = None
    K: int | None = None
    extra: dict = field(default_factory=dict)


@dataclass(frozen=True)
class LinearFit:
    """A least-squares fit on fixed-effect-residualised data (everything vcov needs)."""

    X: np.ndarray  # (n, k) residualised regressors
    resid: np.ndarray  # (n,)
    beta: np.ndarray  # (k,)
    bread: np.ndarray  # (k, k) = (X'WX)^{-1}
    weights: np.ndarray | None
    names: tuple[str, ...]
    n_fe_params: int  # rank of the absorbed fixed effects (incl. the intercept they replace)
    fe_sizes: tuple[int, ...] = ()
    fe_codes: tuple[np.ndarray, ...] = ()
    y: np.ndarray | None = None  # residualised outcome (wild bootstrap)
    #: whether ``n_fe_params`` is the exact rank of the fixed effects (False: R fixest's count with
    #: alternating projections, sum of levels - (number of effects - 1), an upper bound)
    fe_rank_exact: bool = True

    @property
    def nobs(self) -> int:
        return int(self.X.shape[0])

    @property
    def k(self) -> int:
        return int(self.X.shape[1])

    @property
    def k_all(self) -> int:
        return self.k + self.n_fe_params


def _k_rank(fit: LinearFit) -> tuple[int, str]:
    """K for iid/HC1: the regressors plus the exact rank of the fixed effects (as ``lm``), and a note.

    With alternating projections ``n_fe_params`` is fixest's count; the exact rank is computed here
    (:func:`evalkit.inference.absorb.fe_rank`) and used when it can be determined.
    """
    if fit.fe_rank_exact or not fit.fe_codes:
        return fit.k_all, ""
    from .absorb import FixedEffects, fe_rank

    fe = FixedEffects(tuple(fit.fe_codes), tuple(f"fe{j}" for j in range(len(fit.fe_codes))))
    r = fe_rank(fe)
    count = fit.n_fe_params
    m = len(fit.fe_codes)
    if r is None:
        return fit.k_all, (f"; K counts the {m} fixed effects as R fixest does, sum of levels - {m - 1} = {count}, an "
                           f"upper bound on their rank (their exact rank was not computed: too many levels)")
    if r == count:
        return fit.k_all, f"; K = regressors + exact rank of the {m} fixed effects ({r}, equal to fixest's count)"
    return fit.k + r, (f"; K = regressors + exact rank of the {m} fixed effects ({r}, as lm with dummies; R fixest's "
                       f"default count, sum of levels - {m - 1}, is {count})")


def _nested(fe_codes: np.ndarray, cluster: np.ndarray) -> bool:
    """True when every level of the fixed effect lies in a single cluster."""
    size = int(fe_codes.max()) + 1
    if size < np.count_nonzero(np.bincount(cluster[:: max(1, cluster.size // 65536)])):
        return False  # nested levels number at least the clusters they fill (a strided sample's are a lower bound)
    owner = np.empty(size, dtype=cluster.dtype)
    owner[fe_codes] = cluster  # one cluster per level, if nested (last write wins otherwise)
    step = max(1, fe_codes.size // 65536)
    if not np.array_equal(owner.take(fe_codes[::step]), cluster[::step]):
        return False  # cheap rejection on a strided sample before the full pass
    return bool(np.array_equal(owner.take(fe_codes), cluster))


def _k_for_cluster(fit: LinearFit, clusters: list[np.ndarray], s: SmallSampleCorrection) -> int:
    if s.k_fixef == "none" or not fit.fe_sizes:
        return fit.k + (0 if fit.fe_sizes else 1) if s.k_fixef == "none" else fit.k_all
    if s.k_fixef == "full":
        return fit.k_all
    # fixest "nonnested": drop the levels of effects nested in a cluster, keeping one for each
    nested_levels = 0
    for codes, size in zip(fit.fe_codes, fit.fe_sizes):
        if any(_nested(codes, c) for c in clusters):
            nested_levels += size - 1
    return fit.k_all - nested_levels


def cluster_scores(X: np.ndarray, e: np.ndarray, w: np.ndarray | None, cluster: np.ndarray, G: int | None = None) -> np.ndarray:
    """Per-cluster score sums :math:`s_g = X_g' W_g e_g` as a (G, k) array."""
    G = int(cluster.max()) + 1 if G is None else G
    we = e if w is None else w * e
    out = np.empty((G, X.shape[1]))
    for j in range(X.shape[1]):
        out[:, j] = np.bincount(cluster, weights=X[:, j] * we, minlength=G)
    return out


def _sandwich(bread: np.ndarray, S: np.ndarray) -> np.ndarray:
    meat = S.T @ S
    return bread @ meat @ bread


def _intersect(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    key = a.astype(np.int64) * (int(b.max()) + 1) + b
    return np.unique(key, return_inverse=True)[1].ravel()


def _cluster_terms(cols: list[np.ndarray], s: SmallSampleCorrection, vcov: str) -> list[tuple[float, np.ndarray, int]]:
    """The cluster-robust meat as ``sum(factor * S_c'S_c)`` over (factor, cluster codes, G) terms.

    One clustering column: one term, factor G/(G-1) (CR1 with ``G_adj``). Two: Cameron-Gelbach-Miller
    c1 + c2 - c1∩c2, each with the factor of min(G) (``G_df="min"``, fixest) or its own G. CR0: factor 1.
    The (N-1)/(N-K) factor is the caller's (it multiplies the sum).
    """
    if len(cols) > 2:
        raise SpecificationError("At most two clustering variables are supported.")
    terms = [(cols[0], 1.0)] if len(cols) == 1 else [(cols[0], 1.0), (cols[1], 1.0), (_intersect(cols[0], cols[1]), -1.0)]
    Gmin = min(int(c.max()) + 1 for c in cols)
    out = []
    for c, sign in terms:
        G = int(c.max()) + 1
        if s.G_adj and vcov != "CR0":
            Gc = Gmin if s.G_df == "min" else G
            gfac = Gc / (Gc - 1)
        else:
            gfac = 1.0
        out.append((sign * gfac, c, G))
    return out


def compute_vcov(
    fit: LinearFit,
    vcov: str = "CR1",
    *,
    clusters: np.ndarray | None = None,
    cluster_names: tuple[str, ...] = (),
    small_sample: SmallSampleCorrection | None = None,
    hat_design: tuple[np.ndarray, np.ndarray] | None = None,
) -> VcovResult:
    """Covariance of ``fit.beta`` of the requested type (``"wild"`` gives CR1 here).

    ``hat_design`` (CR2 only) is ``(Xh, idx)``: the regressors residualised only on the fixed
    effects nested in the clusters, with the other effects' dummies as extra columns, and the
    column positions of ``fit``'s coefficients in it.
    """
    check_option(vcov, "vcov", VCOV_TYPES)
    s = small_sample or SmallSampleCorrection()
    n, k = fit.nobs, fit.k
    w = fit.weights
    e = fit.resid
    if vcov == "iid":
        K, knote = _k_rank(fit)
        sigma2 = float(e @ (e if w is None else w * e)) / (n - K)
        return VcovResult(sigma2 * fit.bread, "iid", f"homoskedastic; sigma^2 = e'We/(N-K), N={n}, K={K}{knote}", n - K, K=K)
    if vcov == "HC1":
        K, knote = _k_rank(fit)
        we = e if w is None else w * e
        S = fit.X * we[:, None]
        V = _sandwich(fit.bread, S) * (n / (n - K))
        return VcovResult(V, "HC1", f"heteroskedasticity-robust HC1: N/(N-K), N={n}, K={K} "
                          f"(every fixed-effect parameter counted{knote})", n - K, K=K)
    if clusters is None:
        raise SpecificationError(f"vcov={vcov!r} needs clusters.")
    cl = clusters if clusters.ndim == 2 else clusters[:, None]
    cols = [cl[:, j] for j in range(cl.shape[1])]
    K = _k_for_cluster(fit, cols, s)
    kfac = (n - 1) / (n - K) if s.k_adj else 1.0
    Gs = tuple(int(c.max()) + 1 for c in cols)
    if vcov == "CR2":
        if len(cols) > 1:
            raise SpecificationError("vcov='CR2' supports one clustering variable. Use 'CR1' for two-way clustering.")
        V, df, extra = _cr2(fit, cols[0], hat_design)
        return VcovResult(
            V, "CR2",
            f"Bell-McCaffrey CR2 (clubSandwich), clustered by {', '.join(cluster_names) or 'cluster'} (G={Gs[0]}); "
            f"Satterthwaite degrees of freedom per coefficient",
            df, Gs, cluster_names, None, None, extra,
        )
    if vcov == "CR0":
        kfac = 1.0
    V = np.zeros((k, k))
    for fac, c, G in _cluster_terms(cols, s, vcov):
        V += fac * _sandwich(fit.bread, cluster_scores(fit.X, e, w, c, G))
    V *= kfac
    if len(cols) == 1:
        G = Gs[0]
        desc = (
            f"cluster-robust {'CR0 (no small-sample factor)' if vcov == 'CR0' else 'CR1'} by "
            f"{', '.join(cluster_names) or 'cluster'} (G={G}); "
            + ("" if vcov == "CR0" else f"small-sample factor {s.describe()} with N={n}, K={K}; ")
            + f"t({G - 1}) inference"
        )
        return VcovResult(V, vcov, desc, G - 1, Gs, cluster_names, s, K)
    Gmin = min(Gs)
    desc = (
        f"two-way cluster-robust (Cameron-Gelbach-Miller) by {' and '.join(cluster_names)} "
        f"(G={Gs[0]}, {Gs[1]}); factors G/(G-1) with G=min={Gmin}, (N-1)/(N-K) with K={K}; t({Gmin - 1})"
    )
    return VcovResult(V, vcov, desc, Gmin - 1, Gs, cluster_names, s, K)


def influence_vcov(P: np.ndarray, vcov: str, *, clusters: np.ndarray | None = None,
                   small_sample: SmallSampleCorrection | None = None, K: int | None = None) -> np.ndarray:
    """Covariance of several estimators from their observation-level influence functions.

    ``P`` is (n, m): row i holds each estimator's contribution, so that the estimators' errors are
    ``P.sum(axis=0)`` to first order (for a regression coefficient, :math:`[(X'WX)^{-1}x_i w_i e_i]_j`).
    ``vcov`` is ``"HC1"`` (every observation its own cluster, factor N/(N−K)) or ``"CR0"``/``"CR1"``
    with one or two clustering columns, with exactly the factors of :func:`compute_vcov` (so a
    coefficient's own variance equals :func:`compute_vcov`'s). ``K`` is the parameter count of the
    small-sample factor (that of the underlying fit).
    """
    check_option(vcov, "vcov", ("HC1", "CR0", "CR1"), "influence_vcov")
    s = small_sample or SmallSampleCorrection()
    n = P.shape[0]
    if vcov == "HC1":
        if K is None:
            raise SpecificationError("influence_vcov(vcov='HC1') needs K.")
        return (P.T @ P) * (n / (n - K))
    if clusters is None:
        raise SpecificationError(f"influence_vcov(vcov={vcov!r}) needs clusters.")
    cl = clusters if clusters.ndim == 2 else clusters[:, None]
    cols = [cl[:, j] for j in range(cl.shape[1])]
    if vcov == "CR1" and s.k_adj and K is None:
        raise SpecificationError("influence_vcov(vcov='CR1') needs K.")
    kfac = (n - 1) / (n - K) if (vcov == "CR1" and s.k_adj) else 1.0
    V = np.zeros((P.shape[1], P.shape[1]))
    for fac, c, G in _cluster_terms(cols, s, vcov):
        S = np.column_stack([np.bincount(c, weights=P[:, j], minlength=G) for j in range(P.shape[1])])
        V += fac * (S.T @ S)
    return V * kfac


# ----------------------------------------------------------------------------------------------
# CR2


def _group_crossprod(X: np.ndarray, cluster: np.ndarray, G: int, w: np.ndarray | None) -> np.ndarray:
    """Per-cluster X_g' W_g X_g as a (G, k, k) array.

    Few clusters: one BLAS product per cluster on its rows (a loop over clusters, not rows);
    many clusters: one ``bincount`` per column pair.
    """
    k = X.shape[1]
    out = np.empty((G, k, k))
    if G <= 2_000 and k > 2:
        order = np.argsort(cluster, kind="stable")
        bounds = np.concatenate(([0], np.cumsum(np.bincount(cluster, minlength=G))))
        for g in range(G):
            rows = order[bounds[g]:bounds[g + 1]]
            Xg = X[rows]
            out[g] = Xg.T @ (Xg if w is None else Xg * w[rows, None])
        return out
    Xw = X if w is None else X * w[:, None]
    for a in range(k):
        for b in range(a, k):
            v = np.bincount(cluster, weights=Xw[:, a] * X[:, b], minlength=G)
            out[:, a, b] = v
            out[:, b, a] = v
    return out


def _psd_power(A: np.ndarray, power: float, tol: float = 1e-10) -> np.ndarray:
    """Batched symmetric matrix power on the positive eigen-space (pseudo-inverse for negatives)."""
    vals, vecs = np.linalg.eigh(A)
    top = np.maximum(np.abs(vals).max(axis=-1, keepdims=True), 1.0)
    ok = vals > tol * top
    safe = np.where(ok, vals, 1.0)
    p = np.where(ok, safe**power, 0.0)
    return (vecs * p[..., None, :]) @ np.swapaxes(vecs, -1, -2)


def _cr2(fit: LinearFit, cluster: np.ndarray, hat_design: tuple[np.ndarray, np.ndarray] | None):
    """CR2 in the k×k low-rank form, with Satterthwaite df for each coefficient."""
    if hat_design is None:
        Xh, idx = fit.X, np.arange(fit.k)
    else:
        Xh, idx = hat_design
    w = fit.weights
    if w is not None:
        return _cr2_weighted(fit, cluster, Xh, idx)
    e = fit.resid
    G = int(cluster.max()) + 1
    p = Xh.shape[1]
    XtX = Xh.T @ (Xh if w is None else Xh * w[:, None])
    M = np.linalg.pinv(XtX, hermitian=True)
    S = _group_crossprod(Xh, cluster, G, w)  # (G, p, p)
    u = cluster_scores(Xh, e, w, cluster, G)  # (G, p)
    # S_g = V L V'; R = L^{1/2} V' ; C = I - R M R'  (all in the p-dimensional eigen-basis)
    lam, vec = np.linalg.eigh(S)
    top = np.maximum(lam.max(axis=-1, keepdims=True), 1e-300)
    keep = lam > 1e-12 * top
    sq = np.where(keep, np.sqrt(np.where(keep, lam, 0.0)), 0.0)
    R = np.swapaxes(vec, -1, -2) * sq[..., :, None]  # rows scaled: (G, p, p), zero rows dropped
    C = np.eye(p)[None] - R @ M @ np.swapaxes(R, -1, -2)
    # restrict to kept eigen-directions: zero rows of R give C = I there, harmless
    C_mhalf = _psd_power(C, -0.5)
    C_minus1 = _psd_power(C, -1.0)
    inv_sq = np.where(keep, 1.0 / np.where(keep, sq, 1.0), 0.0)
    Qe = inv_sq * np.einsum("gpk,gk->gp", np.swapaxes(vec, -1, -2), u)  # Q' e_g = L^{-1/2} V' u_g
    Ik = np.eye(p)[None]
    adj = np.einsum("gkr,grs,gs->gk", np.swapaxes(R, -1, -2), C_mhalf - Ik, Qe)
    ut = u + adj
    Vfull = M @ (ut.T @ ut) @ M
    V = Vfull[np.ix_(idx, idx)]
    # Satterthwaite df per coefficient (working model: independent, homoskedastic in the WLS metric)
    Rt = np.swapaxes(R, -1, -2)
    SA1 = S + Rt @ (C_mhalf - Ik) @ R  # X_g' A_g X_g
    SA2 = S + Rt @ (C_minus1 - Ik) @ R  # X_g' A_g^2 X_g
    df = np.empty(len(idx))
    for pos, j in enumerate(idx):
        m = M[:, j]
        d = np.einsum("k,gkl,l->g", m, SA2, m)  # a_g'a_g
        b = SA1 @ m  # (G, p)
        bMb = np.einsum("gk,kl,gl->g", b, M, b)
        BB = b.T @ b
        MBB = M @ BB
        trace = np.sum(d - bMb)
        sumsq = np.sum(d**2) - 2 * np.sum(d * bMb) + np.sum(MBB * MBB.T)
        df[pos] = trace**2 / sumsq
    return V, df, {"hat_columns": p}


def _cr2_weighted(fit: LinearFit, cluster: np.ndarray, Xh: np.ndarray, idx: np.ndarray):
    r"""Weighted CR2 with clubSandwich's default working model (:math:`\Phi = I`: the weights are
    not inverse variances), in a 2p×2p low-rank form per cluster.

    With :math:`H = X(X'WX)^{-1}X'W`, :math:`B_g = [(I-H)(I-H)']_{gg}
    = \Pi_g + U_g C U_g'`, :math:`U_g = [X_g, W_gX_g]`,
    :math:`C = \begin{pmatrix} MS_2M & -M \\ -M & 0 \end{pmatrix}`, :math:`S_2 = X'W^2X`,
    :math:`\Pi_g` the within-cluster projection of the absorbed nested effects (weights must be
    constant within those groups). :math:`A_g = B_g^{+1/2}` acts as the identity off span(U_g).
    """
    w = fit.weights
    e = fit.resid
    G = int(cluster.max()) + 1
    p = Xh.shape[1]
    WX = Xh * w[:, None]
    M = np.linalg.pinv(Xh.T @ WX, hermitian=True)
    S2 = WX.T @ WX
    Ufull = np.column_stack([Xh, WX])
    GU = _group_crossprod(Ufull, cluster, G, None)  # (G, 2p, 2p): U_g'U_g
    ue = cluster_scores(Ufull, e, None, cluster, G)  # (G, 2p): U_g'e_g = [X'e, X'We]
    C = np.block([[M @ S2 @ M, -M], [-M, np.zeros((p, p))]])
    lam, vec = np.linalg.eigh(GU)
    top = np.maximum(lam.max(axis=-1, keepdims=True), 1e-300)
    keep = lam > 1e-12 * top
    sq = np.where(keep, np.sqrt(np.where(keep, lam, 0.0)), 0.0)
    R = np.swapaxes(vec, -1, -2) * sq[..., :, None]  # (G, 2p, 2p), zero rows off the span
    I2 = np.eye(2 * p)[None]
    core = I2 + R @ C @ np.swapaxes(R, -1, -2)
    F1 = _psd_power(core, -0.5) - I2
    F2 = _psd_power(core, -1.0) - I2
    inv_sq = np.where(keep, 1.0 / np.where(keep, sq, 1.0), 0.0)
    Qe = inv_sq * np.einsum("gpk,gk->gp", np.swapaxes(vec, -1, -2), ue)  # Q'e_g
    Rt = np.swapaxes(R, -1, -2)
    # score_g = X_g'W_g A_g e_g = u_w + E2' R' F1 Q'e
    score = ue[:, p:] + np.einsum("gkr,grs,gs->gk", Rt[:, p:, :], F1, Qe)
    Vfull = M @ (score.T @ score) @ M
    V = Vfull[np.ix_(idx, idx)]
    # Satterthwaite: Gram_gh = y_g' C y_h + delta_gh a_g'a_g, y_g = (G_U + R'F1R) E2 m
    df = np.empty(len(idx))
    S2g = GU[:, p:, p:]
    for pos, j in enumerate(idx):
        m = M[:, j]
        Em = np.concatenate([np.zeros(p), m])
        y = np.einsum("gab,b->ga", GU + Rt @ F1 @ R, Em)  # (G, 2p)
        d = np.einsum("k,gkl,l->g", m, S2g, m) + np.einsum("a,gab,b->g", Em, Rt @ F2 @ R, Em)
        yCy = np.einsum("ga,ab,gb->g", y, C, y)
        YY = y.T @ y
        CYY = C @ YY
        trace = np.sum(d + yCy)
        sumsq = np.sum(CYY * CYY.T) + 2 * np.sum(d * yCy) + np.sum(d**2)
        df[pos] = trace**2 / sumsq
    return V, df, {"hat_columns": p, "working_model": "Phi = I (weights are not inverse variances; clubSandwich default)"}


# ----------------------------------------------------------------------------------------------
# wild cluster bootstrap


_WEBB = np.array([-np.sqrt(1.5), -1.0, -np.sqrt(0.5), np.sqrt(0.5), 1.0, np.sqrt(1.5)])


def _draw_weights(kind: str, B: int, G: int, rng: np.random.Generator) -> tuple[np.ndarray, bool]:
    """Bootstrap weights (B, G); full enumeration of Rademacher signs when 2^G <= B."""
    if kind == "rademacher":
        if G <= 20 and 2**G <= B:
            signs = np.array(list(itertools.product((1.0, -1.0), repeat=G)))
            return signs, True
        return rng.choice(np.array([-1.0, 1.0]), size=(B, G)), False
    if kind == "webb":
        return rng.choice(_WEBB, size=(B, G)), False
    raise SpecificationError(f"The 'weights_type' parameter must be 'rademacher' or 'webb'. Got {kind!r}.")


def wild_cluster_bootstrap(
    fit: LinearFit,
    cluster: np.ndarray,
    coef: int,
    *,
    n_boot: int = 999,
    weights_type: str = "rademacher",
    seed: int | np.random.Generator | None = None,
    level: float = 0.95,
    small_sample: SmallSampleCorrection | None = None,
    K: int | None = None,
    null: float = 0.0,
    progress: bool | None = None,
) -> dict:
    """Wild cluster bootstrap-t with the null imposed (WCR) for one coefficient.

    The bootstrap DGP is :math:`y^* = X\\tilde\\beta_{H_0} + v_g \\tilde e_g` with cluster-level
    weights :math:`v_g`; every draw is computed from cluster sums (no refitting): with
    :math:`s_g = X_g'W_g\\tilde e_g` and :math:`S_g = X_g'W_gX_g`,
    :math:`\\delta^* = (X'WX)^{-1}\\sum_g v_g s_g` and the draw's CR1 scores are
    :math:`v_g s_g - S_g\\delta^*`. The p-value is symmetric: the share of draws with
    :math:`|t^*| \\ge |t|`. The confidence interval inverts the test over the null value.

    ``null`` is the value of the coefficient under the tested hypothesis (default 0).
    ``progress=True`` shows a bar on stderr counting the bootstrap p-value evaluations of the test
    and of the interval inversion (default ``None``: silent unless a caller such as the report
    builder turned bars on; the results do not depend on it).

    Returns a dict with ``p_value``, ``conf_int`` (tuple), ``t_stat``, ``n_boot`` (draws used),
    ``enumerated`` (all 2^G Rademacher sign patterns used), ``weights_type``.
    """
    s = small_sample or SmallSampleCorrection()
    rng = as_generator(seed)
    X, w, y = fit.X, fit.weights, fit.y
    if y is None:
        raise SpecificationError("wild bootstrap needs the residualised outcome on the fit")
    G = int(cluster.max()) + 1
    n, k = X.shape
    M = fit.bread
    Kc = fit.k_all if K is None else K
    fac = (G / (G - 1) if s.G_adj else 1.0) * ((n - 1) / (n - Kc) if s.k_adj else 1.0)
    Sg = _group_crossprod(X, cluster, G, w)
    # restricted fit is linear in the null value b0: e~(b0) = ea - b0 * eb
    others = [j for j in range(k) if j != coef]
    Xo = X[:, others]
    xj = X[:, coef]
    if others:
        Mo = np.linalg.pinv(Xo.T @ (Xo if w is None else Xo * w[:, None]), hermitian=True)
        proj = lambda v: v - Xo @ (Mo @ (Xo.T @ (v if w is None else w * v)))  # noqa: E731
        ea, eb = proj(y), proj(xj)
    else:
        ea, eb = y.copy(), xj.copy()
    sa = cluster_scores(X, ea, w, cluster, G)
    sb = cluster_scores(X, eb, w, cluster, G)
    m = M[:, coef]
    Gm = Sg @ m  # (G, k): S_g m
    # observed t with CR1
    S_obs = cluster_scores(X, fit.resid, w, cluster, G)
    se = float(np.sqrt(fac * m @ (S_obs.T @ S_obs) @ m))
    beta = float(fit.beta[coef])
    V, enumerated = _draw_weights(weights_type, n_boot, G, rng)
    B = V.shape[0]

    def tstats(b0: float) -> np.ndarray:
        sg = sa - b0 * sb  # (G, k)
        alpha = sg @ m  # (G,)
        delta = (V @ sg) @ M  # (B, k): beta* - beta~
        a = V * alpha[None, :] - delta @ Gm.T  # (B, G)
        var = fac * np.einsum("bg,bg->b", a, a)
        return delta[:, coef] / np.sqrt(np.maximum(var, 1e-300))

    bar = progress_bar(desc=f"wild bootstrap ({B} draws x {G} clusters)", unit=" p-values", progress=progress)

    def pval(b0: float) -> float:
        t_obs = (beta - b0) / se
        bar.update(1)
        return float(np.mean(np.abs(tstats(b0)) >= abs(t_obs) - 1e-12))

    with bar:
        p0 = pval(float(null))
        alpha_lvl = 1 - level
        ci = (np.nan, np.nan)
        if se > 0:
            ci = (_invert(pval, beta, se, alpha_lvl, -1), _invert(pval, beta, se, alpha_lvl, +1))
    if enumerated is False and B < 199:
        warnings.warn(f"Only {B} bootstrap draws; use n_boot >= 999 for stable p-values.", InferenceWarning, stacklevel=3)
    return {
        "p_value": p0,
        "conf_int": ci,
        "t_stat": beta / se if se > 0 else np.nan,
        "se_cr1": se,
        "n_boot": B,
        "enumerated": enumerated,
        "weights_type": weights_type,
        "n_clusters": G,
    }


def _invert(pval, beta: float, se: float, alpha: float, side: int) -> float:
    """Endpoint of {b0 : p(b0) > alpha} on one side of beta, by bracketing and bisection."""
    inside = beta
    step = se
    outside = beta + side * step
    for _ in range(60):
        if pval(outside) <= alpha:
            break
        inside = outside
        step *= 2.0
        outside = beta + side * step
    else:
        return side * np.inf
    for _ in range(60):
        mid = 0.5 * (inside + outside)
        if pval(mid) > alpha:
            inside = mid
        else:
            outside = mid
        if abs(outside - inside) < 1e-7 * max(se, 1e-12):
            break
    return 0.5 * (inside + outside)
