"""Rambachan & Roth (2023) sensitivity of event-study conclusions to parallel-trends violations."""
from __future__ import annotations

from dataclasses import dataclass, field
from functools import lru_cache

import numpy as np
import pandas as pd
from scipy import optimize, stats

from .._validation import check_option, check_scalar
from ..errors import SpecificationError

__all__ = ["honest_sensitivity", "honest_bounds", "SensitivityResult"]

_RM_DRAWS = 100_000
_RM_SEED = 20230517


@dataclass(frozen=True)
class SensitivityResult:
    """Robust confidence intervals for :math:`\\theta = l'\\tau_{post}` over a grid of ``M`` (or ``Mbar``)."""

    frame: pd.DataFrame  # M, conf_low, conf_high, method, delta
    original: tuple[float, float]
    estimate: float
    l_vec: np.ndarray
    method: str
    level: float
    notes: tuple[str, ...] = field(default=())

    def to_frame(self) -> pd.DataFrame:
        """Columns ``M, conf_low, conf_high, method, delta`` (a copy)."""
        return self.frame.copy()

    def breakdown(self) -> float | None:
        """Smallest ``M`` of the grid whose robust interval contains 0 (``None`` if none does)."""
        f = self.frame
        hit = f[(f["conf_low"] <= 0) & (f["conf_high"] >= 0)]
        return None if hit.empty else float(hit["M"].min())

    def __repr__(self) -> str:
        return (f"<SensitivityResult ({self.method}): theta = {self.estimate:.4g}, original CI "
                f"[{self.original[0]:.4g}, {self.original[1]:.4g}], {len(self.frame)} values of M>")

    def plot(self, ax=None, *, title: str | None = None):
        """Robust intervals against ``M`` (the original interval at the left); returns the Axes."""
        from ..plots.style import PALETTE, finish_axes, new_axes

        ax = new_axes(ax)
        f = self.frame
        Ms = f["M"].to_numpy(float)
        step = np.diff(Ms).min() if Ms.size > 1 else 1.0
        x0 = Ms.min() - step
        ax.errorbar([x0], [self.estimate], yerr=[[self.estimate - self.original[0]], [self.original[1] - self.estimate]],
                    fmt="none", ecolor=PALETTE["black"], elinewidth=2, capsize=4, label="Original")
        mid = (f["conf_low"] + f["conf_high"]) / 2
        ax.errorbar(Ms, mid, yerr=[mid - f["conf_low"], f["conf_high"] - mid], fmt="none",
                    ecolor=PALETTE["vermillion"], elinewidth=2, capsize=4, label=f"Robust ({self.frame['method'].iloc[0]})")
        ax.axhline(0.0, color=PALETTE["black"], linewidth=0.8)
        xlabel = "M (smoothness)" if self.method == "smoothness" else "M̄ (relative magnitudes)"
        finish_axes(ax, title=title, xlabel=xlabel, ylabel=f"{int(round(100 * self.level))}% robust CI")
        ax.legend(frameon=False)
        return ax


def _cv_abs_normal(t: float, alpha: float) -> float:
    """1-alpha quantile of |N(t, 1)|."""
    t = abs(float(t))
    if t < 1e-10:
        return float(stats.norm.ppf(1 - alpha / 2))
    return float(np.sqrt(stats.ncx2.ppf(1 - alpha, df=1, nc=t * t)))


def _delta_basis(n_pre: int, n_post: int):
    """delta (pre then post, reference removed) = A * slope + B @ second_differences."""
    L = n_pre + 1 + n_post  # grid incl. the reference
    r = n_pre  # index of the reference
    n_d = L - 2

    def build(s, d):
        f = np.zeros(L)  # f[q] = delta_q - delta_{q-1}
        f[r + 1] = s if r + 1 < L else 0.0
        for q in range(r + 1, L - 1):
            f[q + 1] = f[q] + d[q - 1]
        for q in range(r, 0, -1):
            f[q] = f[q + 1] - d[q - 1]
        delta = np.zeros(L)
        for q in range(r + 1, L):
            delta[q] = delta[q - 1] + f[q]
        for q in range(r, 0, -1):
            delta[q - 1] = delta[q] - f[q]
        return np.delete(delta, r)

    A = build(1.0, np.zeros(n_d))
    B = np.column_stack([build(0.0, np.eye(n_d)[j]) for j in range(n_d)]) if n_d else np.zeros((L - 1, 0))
    return A, B


def _flci(beta, sigma, n_pre, l_vec, M, alpha):
    """Optimal fixed-length CI over affine estimators l'b_post - w'b_pre under Delta^SD(M)."""
    n_post = l_vec.size
    A, B = _delta_basis(n_pre, n_post)
    Apre, Apost, Bpre, Bpost = A[:n_pre], A[n_pre:], B[:n_pre], B[n_pre:]
    target_slope = float(l_vec @ Apost)
    # w = w0 + N z satisfies the slope equality Apre'w = target_slope
    w0 = Apre * target_slope / float(Apre @ Apre)
    Nb = np.linalg.svd(Apre[None, :])[2][1:].T if n_pre > 1 else np.zeros((n_pre, 0))
    Spp, Sqq, Spq = sigma[:n_pre, :n_pre], sigma[n_pre:, n_pre:], sigma[:n_pre, n_pre:]

    def var(w):
        return float(w @ Spp @ w - 2 * w @ Spq @ l_vec + l_vec @ Sqq @ l_vec)

    def cvec(w):
        return l_vec @ Bpost - w @ Bpre

    nz = Nb.shape[1]
    Q = Nb.T @ Spp @ Nb
    lin = Nb.T @ (Spp @ w0 - Spq @ l_vec)
    z_mv = -np.linalg.solve(Q, lin) if nz else np.zeros(0)
    w_mv = w0 + Nb @ z_mv
    if M == 0 or Bpre.shape[1] == 0:
        w = w_mv
        return float(l_vec @ beta[n_pre:] - w @ beta[:n_pre]), _cv_abs_normal(0.0, alpha) * np.sqrt(var(w)), w
    nd = Bpre.shape[1]
    # smallest attainable worst-case bias (per unit M): LP in (z, u)
    if nz:
        c0 = cvec(w0)
        G = -(Nb.T @ Bpre).T  # d c / d z
        A_ub = np.block([[G, -np.eye(nd)], [-G, -np.eye(nd)]])
        b_ub = np.concatenate([-c0, c0])
        lp = optimize.linprog(np.concatenate([np.zeros(nz), np.ones(nd)]), A_ub=A_ub, b_ub=b_ub,
                              bounds=[(None, None)] * nz + [(0, None)] * nd, method="highs")
        b_lo = float(lp.fun)
    else:
        b_lo = float(np.abs(cvec(w0)).sum())
    b_hi = float(np.abs(cvec(w_mv)).sum())

    def min_var(bbound):
        if not nz:
            return w0
        c0 = cvec(w0)
        G = -(Nb.T @ Bpre).T
        x0 = np.concatenate([z_mv, np.abs(cvec(w_mv)) + 1e-9])
        cons = [
            {"type": "ineq", "fun": lambda x: x[nz:] - (c0 + G @ x[:nz]), "jac": lambda x: np.hstack([-G, np.eye(nd)])},
            {"type": "ineq", "fun": lambda x: x[nz:] + (c0 + G @ x[:nz]), "jac": lambda x: np.hstack([G, np.eye(nd)])},
            {"type": "ineq", "fun": lambda x: bbound - x[nz:].sum(), "jac": lambda x: np.concatenate([np.zeros(nz), -np.ones(nd)])[None, :]},
        ]
        res = optimize.minimize(lambda x: x[:nz] @ Q @ x[:nz] + 2 * lin @ x[:nz],
                                x0, jac=lambda x: np.concatenate([2 * Q @ x[:nz] + 2 * lin, np.zeros(nd)]),
                                constraints=cons, method="SLSQP", options={"maxiter": 500, "ftol": 1e-15})
        return w0 + Nb @ res.x[:nz]

    def half(bbound):
        w = min_var(bbound)
        sd = np.sqrt(var(w))
        b = float(np.abs(cvec(w)).sum())
        return sd * _cv_abs_normal(M * b / sd, alpha), w

    grid = np.linspace(b_lo, b_hi, 21) if b_hi > b_lo else np.array([b_lo])
    vals = [half(b)[0] for b in grid]
    j = int(np.argmin(vals))
    if grid.size > 1:
        lo, hi = grid[max(j - 1, 0)], grid[min(j + 1, grid.size - 1)]
        opt = optimize.minimize_scalar(lambda b: half(b)[0], bounds=(lo, hi), method="bounded", options={"xatol": 1e-10 * max(b_hi, 1e-12)})
        bbest = opt.x if opt.fun < vals[j] else grid[j]
    else:
        bbest = grid[0]
    h, w = half(bbest)
    return float(l_vec @ beta[n_pre:] - w @ beta[:n_pre]), h, w


def _rm_critical_values(R: np.ndarray, alpha: float, rng_seed: int = _RM_SEED):
    """Draws of (max_j |Z_pre_j|, |Z_post|) for the correlation matrix R (deterministic seed)."""
    rng = np.random.default_rng(rng_seed)
    L = np.linalg.cholesky(R + 1e-12 * np.eye(R.shape[0]))
    Z = rng.standard_normal((_RM_DRAWS, R.shape[0])) @ L.T
    return np.abs(Z[:, :-1]).max(axis=1), np.abs(Z[:, -1])


@lru_cache(maxsize=8)
def _rm_sorted_draws(R_bytes: bytes, k: int):
    R = np.frombuffer(R_bytes, dtype=float).reshape(k, k)
    A_d, B_d = _rm_critical_values(R, 0.0)
    order = np.argsort(A_d)
    return A_d[order], B_d[order]


@lru_cache(maxsize=64)
def _rm_box(R_bytes: bytes, k: int, alpha: float, ratio: float) -> tuple[float, float]:
    """Critical values (c1 for the pre first differences, c2 for the target) of the joint 1-alpha box
    minimising c2 + ratio * c1; depends on the correlation matrix only (cached)."""
    A_s, B_s = _rm_sorted_draws(R_bytes, k)
    n = A_s.size
    need = int(np.ceil((1 - alpha) * n))
    best = (np.inf, np.nan, np.nan)
    for q in np.linspace(1 - alpha, 1 - alpha / 200, 40):
        j = min(int(np.ceil(q * n)), n) - 1
        c1 = float(A_s[j])
        if j + 1 < need:
            continue
        c2 = float(np.partition(B_s[: j + 1], need - 1)[need - 1])
        if c2 + ratio * c1 < best[0]:
            best = (c2 + ratio * c1, c1, c2)
    return best[1], best[2]


def honest_bounds(betahat, sigma, num_pre: int, *, method: str = "relative_magnitude", M=None,
                  target="first post", level: float = 0.95) -> SensitivityResult:
    r"""Robust confidence intervals from event-study coefficients (see :func:`honest_sensitivity`).

    ``betahat`` stacks ``num_pre`` pre-period coefficients (event times ``-num_pre-1 .. -2``,
    consecutive, ending just before the reference ``-1``) then the post-period coefficients
    (``0, 1, ...``); ``sigma`` is their covariance.
    """
    check_option(method, "method", ["relative_magnitude", "smoothness"], "honest_sensitivity")
    check_scalar(level, "level", float, min_val=0.5, max_val=1.0, include_max=False)
    beta = np.asarray(betahat, float).ravel()
    sig = np.asarray(sigma, float)
    if sig.shape != (beta.size, beta.size):
        raise SpecificationError(f"sigma must be {beta.size}x{beta.size}; got {sig.shape}.")
    n_pre = int(num_pre)
    n_post = beta.size - n_pre
    if n_pre < 1 or n_post < 1:
        raise SpecificationError(f"Need at least one pre- and one post-period coefficient; got {n_pre} pre, {n_post} post.")
    if isinstance(target, str):
        check_option(target, "target", ["first post", "average post"], "honest_sensitivity")
        l_vec = np.eye(n_post)[0] if target == "first post" else np.full(n_post, 1.0 / n_post)
    else:
        l_vec = np.asarray(target, float).ravel()
        if l_vec.size != n_post:
            raise SpecificationError(f"target as a vector needs {n_post} entries (one per post period); got {l_vec.size}.")
    alpha = 1 - level
    theta = float(l_vec @ beta[n_pre:])
    sd = float(np.sqrt(l_vec @ sig[n_pre:, n_pre:] @ l_vec))
    z = float(stats.norm.ppf(1 - alpha / 2))
    original = (theta - z * sd, theta + z * sd)
    rows, notes = [], []
    if method == "smoothness":
        Ms = np.linspace(0, sd, 6) if M is None else np.atleast_1d(np.asarray(M, float))
        if np.any(Ms < 0):
            raise SpecificationError("M must be >= 0.")
        for m in Ms:
            est, h, _ = _flci(beta, sig, n_pre, l_vec, float(m), alpha)
            rows.append((float(m), est - h, est + h, "FLCI", "DeltaSD"))
        notes.append("Delta^SD(M): |second difference of delta| <= M at every period (reference delta = 0); optimal "
                     "fixed-length CI over estimators l'b_post - w'b_pre (Armstrong-Kolesar; Rambachan-Roth Sec. 4.1).")
    else:
        Ms = np.array([0.0, 0.5, 1.0, 1.5, 2.0]) if M is None else np.atleast_1d(np.asarray(M, float))
        if np.any(Ms < 0):
            raise SpecificationError("Mbar must be >= 0.")
        D = np.eye(n_pre) - np.eye(n_pre, k=-1)  # f_j = delta_j - delta_{j-1}; last: 0 - delta_{-2}
        D = np.vstack([D[1:], -np.eye(n_pre)[-1]]) if n_pre > 1 else -np.eye(1)
        f_hat = D @ beta[:n_pre]
        Sf = D @ sig[:n_pre, :n_pre] @ D.T
        se_f = np.sqrt(np.diag(Sf))
        cross = D @ sig[:n_pre, n_pre:] @ l_vec
        cov = np.block([[Sf, cross[:, None]], [cross[None, :], np.array([[sd * sd]])]])
        s = np.sqrt(np.diag(cov))
        Rm = cov / s[:, None] / s[None, :]
        kappa = float(np.abs(np.cumsum(l_vec[::-1])[::-1]).sum())
        for m in Ms:
            if m == 0:
                rows.append((0.0, original[0], original[1], "projection box", "DeltaRM"))
                continue
            c1, c2 = _rm_box(Rm.tobytes(), Rm.shape[0], float(alpha), float(m * kappa * se_f.max() / sd))
            half = c2 * sd + m * kappa * float(np.max(np.abs(f_hat) + c1 * se_f))
            rows.append((float(m), theta - half, theta + half, "projection box", "DeltaRM"))
        notes.append("Delta^RM(Mbar): |post first differences of delta| <= Mbar * max |pre first differences| "
                     "(incl. the step into the reference). Valid conservative CI: a joint (1-alpha) box for the "
                     "pre first differences and l'beta_post (critical values from 100,000 seeded normal draws, chosen "
                     "from the covariance only), projected through the identified set theta in l'beta_post +- "
                     "Mbar*kappa*max|f_pre|. Not the ARP conditional/hybrid test of HonestDiD (wider).")
    frame = pd.DataFrame(rows, columns=["M", "conf_low", "conf_high", "method", "delta"])
    return SensitivityResult(frame, original, theta, l_vec, method, float(level), tuple(notes))


def _from_result(res):
    fr = res.to_frame()
    if "event_time" not in fr.columns:
        raise SpecificationError("honest_sensitivity needs an event-study result (a table with an 'event_time' column), "
                                 "e.g. sun_abraham(...), did.event_study(...) or att_gt(..., base_period='universal')"
                                 ".aggregate('dynamic').")
    ref_txt = str(getattr(res.conventions, "reference_period", "") or "")
    if "varying" in ref_txt:
        raise SpecificationError("The event study uses a varying base period: pre-period coefficients are then short "
                                 "differences, not deviations from one reference. Re-estimate with "
                                 "att_gt(..., base_period='universal').")
    et = fr["event_time"].astype("Float64").to_numpy(dtype=float, na_value=np.nan)
    ok = np.isfinite(et) & fr["std_error"].notna().to_numpy()
    if "term" in fr.columns:
        ok &= fr["term"].astype(str).str.match(r"^e(<=|>=)").pipe(lambda s: ~s).to_numpy()
    idx = np.flatnonzero(ok)
    e = et[idx].astype(int)
    order = np.argsort(e)
    idx, e = idx[order], e[order]
    ref = int(res.extra.get("reference", -1)) if hasattr(res, "extra") else -1
    pre, post = e[e < ref], e[e > ref]
    if pre.size == 0 or post.size == 0:
        raise SpecificationError("honest_sensitivity needs at least one pre-period (e < reference) and one post-period "
                                 "event-study coefficient.")
    if not (np.array_equal(pre, np.arange(pre.min(), ref)) and np.array_equal(post, np.arange(ref + 1, post.max() + 1))):
        raise SpecificationError(f"Event times must be consecutive around the reference {ref}; got {e.tolist()}.")
    V = np.asarray(res.vcov)[np.ix_(idx, idx)]
    return fr["estimate"].to_numpy(float)[idx], V, int(pre.size)


def honest_sensitivity(event_study_result, *, method: str = "relative_magnitude", M=None,
                       target="first post", level: float = 0.95) -> SensitivityResult:
    r"""Rambachan & Roth (2023) robust confidence intervals under bounded parallel-trends violations.

    Parameters
    ----------
    event_study_result : result with an ``event_time`` column and ``vcov``
        :func:`sun_abraham`, :func:`evalkit.did.event_study`, or ``att_gt(...,
        base_period="universal").aggregate("dynamic")`` — coefficients relative to one reference
        period (varying base periods raise). Binned end points are excluded.
    method : {"relative_magnitude", "smoothness"}, default="relative_magnitude"
        :math:`\Delta^{RM}(\bar M)` or :math:`\Delta^{SD}(M)`.
    M : float or array or None
        Grid of :math:`\bar M` (default ``0, 0.5, 1, 1.5, 2``) or :math:`M` (default six values
        from 0 to the standard error of the target).
    target : {"first post", "average post"} or array, default="first post"
        :math:`l` in :math:`\theta = l'\tau_{post}`.
    level : float, default=0.95

    Returns
    -------
    SensitivityResult
        ``to_frame()`` (``M, conf_low, conf_high``), ``original``, ``breakdown()``, ``plot()``.

    Notes
    -----
    Model: :math:`\hat\beta \sim N(\beta, \Sigma)`, :math:`\beta = \tau + \delta` with
    :math:`\tau_{pre} = 0` and the reference :math:`\delta_{-1} = 0`.

    * ``"smoothness"``: :math:`|\delta_{t+1} - 2\delta_t + \delta_{t-1}| \le M`. Writing
      :math:`\delta` as a linear trend plus second differences, the estimator
      :math:`l'\hat\beta_{post} - w'\hat\beta_{pre}` has bounded bias iff it removes linear
      trends, and then worst-case bias :math:`M\|c(w)\|_1`. The interval is the optimal
      fixed-length CI (FLCI, Rambachan & Roth Sec. 4.1): minimise
      :math:`\sigma_w\,cv_\alpha(M\|c(w)\|_1/\sigma_w)` over :math:`w`,
      :math:`cv_\alpha(t)` the :math:`1-\alpha` quantile of :math:`|N(t,1)|`, by convex
      subproblems (minimum variance given a bias bound, SLSQP) and a 1-D search. Reproduces the
      published HonestDiD FLCI of the Medicaid example to the 3 printed decimals.
    * ``"relative_magnitude"``: :math:`\max_{t\ge0}|\delta_{t+1}-\delta_t| \le \bar M
      \max_{s<0}|\delta_{s+1}-\delta_s|`. The identified set is
      :math:`l'\beta_{post} \pm \bar M\kappa\max_j|f_j|` with :math:`f = ` the pre-period first
      differences of :math:`\beta` and :math:`\kappa = \sum_u|\sum_{t\ge u}l_t|`. The interval
      projects a joint :math:`1-\alpha` box for :math:`(f, l'\beta_{post})` (critical values
      chosen from :math:`\Sigma` alone, by seeded simulation) — valid and conservative; HonestDiD's
      conditional-least-favourable hybrid test is shorter. At :math:`\bar M = 0` it is the
      original interval.
    """
    beta, V, n_pre = _from_result(event_study_result)
    return honest_bounds(beta, V, n_pre, method=method, M=M, target=target, level=level)
