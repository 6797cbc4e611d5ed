r"""Sample size for a target power to detect a change in a disparity, with clear impossible-target errors.

The power is that of :func:`evalkit.power.power_disparity` (same planning model, variance and
test). It increases with the number of patients, but need not reach the target: when the number
of practices is fixed, the practice-level variance :math:`\mathrm{ICC}(1-\rho_c)(1+\mathrm{CV}^2)/G`
of each group's change does not shrink as practices grow, so the power is bounded by its limit as
:math:`n\to\infty`; likewise when one group's size is held fixed. :func:`n_for_disparity` reports
that limit and raises instead of returning a meaningless number.
"""
from __future__ import annotations

import inspect
import math
from dataclasses import dataclass, field
from numbers import Real

from scipy import optimize

from .._validation import check_option, check_scalar
from ..errors import SpecificationError
from .analytic import power_disparity

__all__ = ["n_for_disparity", "SampleSize"]

_N_INF = 1e13  # "n -> infinity" for the limiting power


@dataclass(frozen=True)
class SampleSize:
    """Patients needed for the target power (see :func:`n_for_disparity`).

    ``n_total``, ``n_reference``, ``n_minority`` are whole patients (rounded up); ``power`` is the
    power at those sizes, ``n_exact`` the continuous solution, ``power_limit`` the power as the
    solved-for size grows without bound.
    """

    n_total: int
    n_reference: int
    n_minority: int
    n_exact: float
    power: float
    target_power: float
    power_limit: float
    solve_for: str
    change: float
    cluster_sizes: tuple[float, float]
    notes: tuple[str, ...] = field(default=())

    def __repr__(self) -> str:
        return (f"<SampleSize: {self.n_reference} reference + {self.n_minority} minority = {self.n_total} patients for "
                f"power {self.power:.3f} (target {self.target_power:g}) to detect a {100 * self.change:.2f} pp gap change>")


# power_disparity keywords that n_for_disparity forwards through **design (the rest it sets itself)
_DESIGN_KEYS = tuple(k for k, p in inspect.signature(power_disparity).parameters.items()
                     if p.kind == p.KEYWORD_ONLY and k not in ("reduction", "change", "n_total", "shares", "cluster_size"))


def n_for_disparity(
    p_reference: float,
    p_minority: float,
    *,
    reduction: float | None = None,
    change: float | None = None,
    power: float = 0.8,
    solve_for: str = "total",
    shares: tuple[float, float] | None = None,
    n_reference: float | None = None,
    n_minority: float | None = None,
    cluster_size: float | tuple[float, float] = 1,
    n_practices: float | tuple[float, float] | None = None,
    max_n: float = 1e9,
    **design,
) -> SampleSize:
    r"""Smallest number of patients with power >= ``power`` to detect a gap reduction.

    Parameters
    ----------
    p_reference, p_minority : float
        Baseline rates.
    reduction, change : float
        The target: a share of the baseline gap, or an absolute change (proportion scale).
        Exactly one.
    power : float, default=0.8
        Target power.
    solve_for : {"total", "per_group", "minority", "reference"}, default="total"
        ``"total"``: total patients N with ``shares=(share_reference, share_minority)``
        (:math:`n_g = s_g N`); ``"per_group"``: equal groups :math:`n_R = n_M = n`;
        ``"minority"``: minority patients with ``n_reference`` fixed; ``"reference"``:
        reference patients with ``n_minority`` fixed.
    cluster_size : float or (float, float), default=1
        Patients per practice (held fixed: practices are added with patients).
    n_practices : float or (float, float), optional
        Fixed number of practices per group (reference, minority) instead: the practices grow
        with the patients. With ``icc > 0`` power is then bounded as :math:`n\to\infty`.
    max_n : float, default=1e9
        Largest solved-for size searched.
    **design
        Other arguments of :func:`evalkit.power.power_disparity` (``rho``, ``icc``,
        ``cluster_size_cv``, ``practice_persistence``, ``pre_years``, ``post_years``,
        ``race_accuracy``, ``higher_is_better``, ``alpha``, ``alternative``, ``distribution``,
        ``variance``, ``who_improves``).

    Returns
    -------
    SampleSize

    Raises
    ------
    SpecificationError
        When the target is reached with no data (``power`` <= the test's one-sided level), or
        never reached: the limiting power as the solved-for size grows (fixed practices, a fixed
        other group, a zero or wrong-direction change) is below ``power``; the message gives the
        limit and the fix. Also when the target needs more than ``max_n`` patients.

    Notes
    -----
    Power is increasing in the solved-for size; the continuous solution is found by Brent's
    method between the smallest feasible size (one patient per group; a full practice with
    ``icc > 0``; two practices per group with ``distribution="t"``; ``n_practices`` patients
    with fixed practices) and the first doubling with enough power, then rounded up to whole
    patients per group. The limit is the power evaluated at :math:`n = 10^{13}`; with fixed
    practices per group it equals the power with variance
    :math:`\sum_g \mathrm{ICC}(1+\mathrm{CV}^2)\,\kappa_g(1-\rho_c)(1/m+1/r)/(G_g\lambda)`.
    Imputed race (``race_accuracy``) multiplies the variance by :math:`1/\lambda`, so it raises
    the required n by about :math:`1/\lambda` but never bounds power by itself.

    Examples
    --------
    >>> r = n_for_disparity(0.708, 0.638, reduction=0.5, shares=(0.8, 0.2), rho=0.5)
    >>> r.n_total, round(r.power, 3)
    (9423, 0.8)
    """
    bad = sorted(set(design) - set(_DESIGN_KEYS))
    if bad:
        raise SpecificationError(
            f"n_for_disparity() got unknown keyword argument(s) {', '.join(map(repr, bad))}. Besides its own arguments it "
            f"accepts the design arguments of power_disparity: {', '.join(_DESIGN_KEYS)}.")
    check_option(solve_for, "solve_for", ("total", "per_group", "minority", "reference"))
    check_scalar(power, "power", Real, min_val=0, max_val=1, include_min=False, include_max=False)
    check_scalar(max_n, "max_n", Real, min_val=1)
    if (reduction is None) == (change is None):
        raise SpecificationError("Give exactly one of 'reduction' (share of the baseline gap) or 'change' (proportion scale).")
    alpha = design.get("alpha", 0.05)
    alternative = design.get("alternative", "two-sided")
    check_scalar(alpha, "alpha", Real, min_val=0, max_val=1, include_min=False, include_max=False)
    one_sided = alpha / 2 if alternative == "two-sided" else alpha
    if power <= one_sided:
        raise SpecificationError(f"power={power:g} is already reached at n=0: a level-{alpha:g} {alternative} test rejects "
                                 f"with probability {one_sided:g} with no effect and no data. Ask for power > {one_sided:g}.")

    # group sizes as a function of the solved-for size x
    if solve_for == "total":
        if shares is None:
            raise SpecificationError("solve_for='total' needs shares=(share_reference, share_minority) of the total.")
        try:
            s_r, s_m = (float(s) for s in shares)
        except (TypeError, ValueError):
            raise SpecificationError(f"'shares' must be a pair (share_reference, share_minority). Got {shares!r}.") from None
        if not (0 < s_r <= 1 and 0 < s_m <= 1):
            raise SpecificationError(f"Group shares must lie in (0, 1]: both groups need patients. Got {shares!r}.")
        if s_r + s_m > 1 + 1e-12:
            raise SpecificationError(f"Group shares sum to {s_r + s_m:.4g} > 1: shares are fractions of the total and "
                                     "cannot exceed 1 in total.")
        sizes = lambda x: (s_r * x, s_m * x)  # noqa: E731
        inv = lambda nr, nm: max(nr / s_r, nm / s_m)  # noqa: E731
    elif solve_for == "per_group":
        sizes = lambda x: (x, x)  # noqa: E731
        inv = lambda nr, nm: max(nr, nm)  # noqa: E731
    elif solve_for == "minority":
        if n_reference is None:
            raise SpecificationError("solve_for='minority' needs the fixed n_reference.")
        check_scalar(n_reference, "n_reference", Real, min_val=0, include_min=False)
        sizes = lambda x: (float(n_reference), x)  # noqa: E731
        inv = lambda nr, nm: nm  # noqa: E731
    else:
        if n_minority is None:
            raise SpecificationError("solve_for='reference' needs the fixed n_minority.")
        check_scalar(n_minority, "n_minority", Real, min_val=0, include_min=False)
        sizes = lambda x: (x, float(n_minority))  # noqa: E731
        inv = lambda nr, nm: nr  # noqa: E731

    icc = design.get("icc", 0.0)
    t_dist = design.get("distribution", "normal") == "t"
    if n_practices is not None:
        g_r, g_m = (n_practices, n_practices) if isinstance(n_practices, Real) else tuple(n_practices)
        check_scalar(g_r, "n_practices[0]", Real, min_val=1)
        check_scalar(g_m, "n_practices[1]", Real, min_val=1)
        if t_dist and min(g_r, g_m) < 2:
            raise SpecificationError("distribution='t' needs at least 2 practices per group.")
        ksize = lambda nr, nm: (max(nr / g_r, 1.0), max(nm / g_m, 1.0))  # noqa: E731
        lo_r, lo_m = float(g_r), float(g_m)
    else:
        k_r, k_m = (cluster_size, cluster_size) if isinstance(cluster_size, Real) else tuple(cluster_size)
        check_scalar(k_r, "cluster_size[0]", Real, min_val=1)
        check_scalar(k_m, "cluster_size[1]", Real, min_val=1)
        ksize = lambda nr, nm: (float(k_r), float(k_m))  # noqa: E731
        mult = 2.0 if t_dist else (1.0 if icc > 0 else 0.0)
        lo_r, lo_m = max(1.0, mult * k_r), max(1.0, mult * k_m)

    def pw(x):
        nr, nm = sizes(x)
        return power_disparity(nr, nm, p_reference, p_minority, reduction=reduction, change=change,
                               cluster_size=ksize(nr, nm), **design)

    # smallest feasible x: every group reaches its lower bound (the fixed group must already)
    x_lo = inv(lo_r, lo_m)
    fixed_r, fixed_m = sizes(x_lo)
    if fixed_r < lo_r - 1e-9 or fixed_m < lo_m - 1e-9:
        which = "n_reference" if fixed_r < lo_r - 1e-9 else "n_minority"
        raise SpecificationError(f"The fixed {which} is smaller than the design allows (one full practice per group, two "
                                 "with distribution='t', or n_practices patients).")
    x_lo = max(x_lo, 1e-9)
    r_lo = pw(x_lo)
    target_change = r_lo.target_change
    limit = pw(_N_INF).power
    what = {"total": "total patients", "per_group": "patients per group", "minority": "minority patients",
            "reference": "reference patients"}[solve_for]
    if not limit >= power:
        why = []
        if target_change == 0 or (alternative == "larger" and target_change < 0) or (alternative == "smaller" and target_change > 0):
            why.append(f"the target change {100 * target_change:.3g} pp is zero or in the direction the "
                       f"{alternative} test does not detect")
        if n_practices is not None and icc > 0:
            why.append(f"with {n_practices!r} practices fixed, the practice-level variance (ICC={icc:g}) does not shrink "
                       "as practices grow; add practices (give cluster_size instead) or reduce the ICC")
        if solve_for in ("minority", "reference"):
            other = "reference" if solve_for == "minority" else "minority"
            why.append(f"the {other} group's size is fixed, so its variance remains; enlarge it too (solve_for='total')")
        raise SpecificationError(f"Impossible target: power {power:g} is never reached. As the {what} grow without bound "
                                 f"the power tends to {limit:.4f}" + (" because " + "; ".join(why) if why else "") + ".")
    if r_lo.power >= power:
        x_star = x_lo
    else:
        hi = max(2 * x_lo, 2.0)
        while pw(hi).power < power:
            if hi > max_n:
                raise SpecificationError(f"The target needs more than max_n={max_n:g} {what}; raise max_n if that is "
                                         "really intended.")
            hi *= 2
        x_star = optimize.brentq(lambda x: pw(x).power - power, x_lo if x_lo < hi / 2 else hi / 2, hi, xtol=1e-6, rtol=1e-12)
    nr, nm = sizes(x_star)
    if solve_for == "minority":
        nr_i, nm_i = int(round(nr)), math.ceil(nm - 1e-9)
    elif solve_for == "reference":
        nr_i, nm_i = math.ceil(nr - 1e-9), int(round(nm))
    else:
        nr_i, nm_i = math.ceil(nr - 1e-9), math.ceil(nm - 1e-9)
    ks = ksize(nr_i, nm_i)
    achieved = power_disparity(nr_i, nm_i, p_reference, p_minority, reduction=reduction, change=change, cluster_size=ks,
                               **design).power
    notes = [f"Power of the Wald test as in power_disparity (variance={design.get('variance', 'alternative')!r}); "
             f"continuous solution {x_star:.2f} {what}, rounded up per group."]
    if r_lo.power >= power:
        notes.append(f"The target is met at the smallest feasible design ({x_lo:g} {what}).")
    if n_practices is not None:
        notes.append(f"Practices fixed at {n_practices!r}: patients per practice grow with n; power limit {limit:.4f}.")
    n_tot = nr_i + nm_i if solve_for != "total" else max(math.ceil(x_star - 1e-9), nr_i + nm_i)
    return SampleSize(n_total=int(n_tot), n_reference=int(nr_i), n_minority=int(nm_i), n_exact=float(x_star),
                      power=float(achieved), target_power=float(power), power_limit=float(limit), solve_for=solve_for,
                      change=float(target_change), cluster_sizes=(float(ks[0]), float(ks[1])), notes=tuple(notes))
