r"""Analytic power, minimum detectable effect (MDE) and precision for a change in a disparity.

The estimand is the change in the gap between a reference group (R) and a minority group (M)
from a baseline ("pre") to a contract ("post") period -- a difference-in-differences of
proportions. Every gap is *oriented* so that a positive gap means the minority group is
disadvantaged (``higher_is_better`` per measure), and a positive change means the gap closed.

Planning model (the default)
----------------------------
A closed cohort of patients; group :math:`g \in \{R, M\}` has :math:`n_g` patients. Each patient
is measured in :math:`m` pre years and :math:`r` post years (``pre_years``, ``post_years``;
default one each) which are pooled. Patients sit in practices of :math:`k` patients of the same
group (``cluster_size``). With :math:`\sigma^2_{g} = p_g(1-p_g)` the binary-outcome variance, the
correlation between two measurements :math:`Y_{ijt}, Y_{i'j't'}` (patient i, practice j, year t)
is *separable*

.. math::

    \operatorname{corr} = a(t,t')\,b(i,i'), \qquad
    a = \begin{cases}1 & t=t'\\ \rho & t\ne t'\end{cases}, \quad
    b = \begin{cases}1 & i=i' \\ \mathrm{ICC} & i\ne i' \text{ same practice} \\ 0 & \text{else}\end{cases}

so the within-person correlation across years is :math:`\rho` (``rho``), the intraclass
correlation within a year is ICC (``icc``) and the practice-level correlation across years is
:math:`\rho\cdot\mathrm{ICC}`. The two groups are independent and, for the MDE, both periods
are at the baseline rate.

Variance of the change in a group's rate
----------------------------------------
Let :math:`D_g = \bar Y_{g,\text{post}} - \bar Y_{g,\text{pre}}` (means over patients and
years). Write the time contrast :math:`w_t = 1/r` (post) or :math:`-1/m` (pre), so
:math:`\sum_t w_t = 0`, and the patient weights :math:`u_i = 1/n_g`. Summing the covariances:

* same patient: :math:`\frac1{n_g}\, w^\top[(1-\rho)I + \rho J]w = \frac{(1-\rho)}{n_g}(\tfrac1m+\tfrac1r)`
  -- the :math:`\rho J` part vanishes because :math:`\sum_t w_t = 0`;
* different patients in the same practice (:math:`\sum_j k_j(k_j-1) = n_g(k_e-1)` ordered pairs,
  :math:`k_e = \sum_j k_j^2/\sum_j k_j`):
  :math:`\frac{(k_e-1)}{n_g}\,\mathrm{ICC}\,(1-\rho_c)(\tfrac1m+\tfrac1r)`,

where :math:`\rho_c` is the practice-level correlation across years (``practice_persistence``;
the separable default is :math:`\rho_c = \rho`). Hence

.. math::

    \operatorname{Var}(D_g) = \frac{\sigma_g^2}{n_g}\Big(\frac1m+\frac1r\Big)
       \big[(1-\rho) + (k_e-1)\,\mathrm{ICC}\,(1-\rho_c)\big],

which under the separable default factorises into
:math:`\sigma_g^2(1-\rho)(1/m+1/r)\,\mathrm{DE}/n_g` with the design effect
:math:`\mathrm{DE} = 1 + (k_e - 1)\mathrm{ICC}`; with unequal practice sizes of mean
:math:`\bar k` and coefficient of variation CV (``cluster_size_cv``)
:math:`k_e = \bar k(1+\mathrm{CV}^2)` (Eldridge, Ashby & Kerry 2006). Note this is the variance
of a *difference* of period means: the variance of a period mean,
:math:`\sigma^2(1+(T-1)\rho)/T`, grows with :math:`\rho` whereas the DiD variance shrinks as
:math:`1-\rho` (the error made by some published panel-DiD power code).

The correlations are those of outcomes at equal rates. Outcomes at different rates (pre vs
post under the alternative; R vs M in a shared practice) follow a latent-threshold model,
:math:`Y = 1\{U < p\}` with the latent uniforms correlated as above, so a copied latent draw
gives covariance :math:`\kappa(p,p') = \min(p,p') - pp'` (< :math:`\sigma\sigma'` when
:math:`p \ne p'`: a binary outcome whose rate shifts cannot stay perfectly correlated). The same
sums then give, for each correlation :math:`c \in \{\rho, \rho_c\}`,
:math:`\kappa(p_1,p_1)\frac{1+(r-1)c}{r} + \kappa(p_0,p_0)\frac{1+(m-1)c}{m} - 2c\,\kappa(p_0,p_1)`
in place of :math:`\sigma^2(1-c)(1/m+1/r)`. This is the variance under the alternative; it is
larger than the null variance when the minority's rate moves away from its baseline, which is
why power at the (null-variance) MDE drifts below the target (e.g. 0.76 instead of 0.80 for
2,000/500 patients, 70% vs 60%, rho = 0.5: the gain in correlation lost to the rate shift).

The change in the gap is :math:`\Delta = \pm(D_M - D_R)` and
:math:`\operatorname{Var}(\hat\Delta) = \operatorname{Var}(D_R) + \operatorname{Var}(D_M)
- 2\operatorname{Cov}(D_R, D_M)`, with the covariance zero for separate practices. With
``shared_practices=True`` the two groups share practices in proportion to their sizes
(``cluster_size`` is then the number of R+M patients per practice, group g has
:math:`k\,n_g/(n_R+n_M)` of them) and the common practice effect cancels partly:
:math:`\operatorname{Cov}(D_R,D_M) = \kappa(p_R,p_M)\,\mathrm{ICC}(1-\rho_c)(1/m+1/r)\,k_e/(n_R+n_M)`
(with :math:`\kappa` below).

Imputed race/ethnicity (BISG-style probabilities)
-------------------------------------------------
When race is imputed, each patient carries a probability :math:`q_i` of belonging to M (and
:math:`1-q_i` to R), and group rates are probability-weighted means. For *calibrated*
probabilities (the true group is drawn with probability :math:`q_i`) the share of group g's
weight that truly belongs to g is :math:`a_g = \sum_i q_{ig}^2/\sum_i q_{ig}` (``race_accuracy``;
:func:`race_accuracy_from_probabilities`). Then

* **attenuation**: :math:`E[\hat p_M] = a_M p_M + (1-a_M) p_R` and likewise for R, so every
  estimated gap, and the change in the gap, is multiplied by
  :math:`\lambda = a_R + a_M - 1`;
* **variance**: the estimator is :math:`\sum_i c_i d_i` with :math:`c_i = q_i/n_M - (1-q_i)/n_R`
  and :math:`\sum_i c_i^2 = \lambda(1/n_R + 1/n_M)` (using the two-group identity
  :math:`n_M(1-a_M) = n_R(1-a_R)`), so with a common :math:`\sigma^2` the variance is
  :math:`\lambda` times the known-race variance.

On the scale of the true gap (dividing by :math:`\lambda`) the variance is therefore the
known-race variance times :math:`1/\lambda`: imputation acts like multiplying both group sizes by
:math:`\lambda`. We apply this factor to the (group-specific-:math:`\sigma^2`, clustered) known-race
variance; it is exact for a common :math:`\sigma^2` without clustering and an approximation
otherwise (checked by simulation in ``tests/montecarlo/test_power_montecarlo.py``). With more
than two groups, pass both accuracies as a tuple (the leaked weight is then treated as if it
came from the comparison group).

Test, MDE and power
-------------------
Normal quantiles are the default: the MDE is
:math:`(z_{1-\alpha/s} + z_{\text{power}})\,\mathrm{SE}_0` with :math:`s = 2` (two-sided) or 1,
and :math:`\mathrm{SE}_0` the standard error with both periods at the baseline rate (for a
two-sided test the MDE is solved with both rejection tails counted, as R ``pwr`` does; the far
tail changes it by ~1e-6 relative).
``distribution="t"`` uses a t reference with Satterthwaite degrees of freedom
:math:`\nu = (V_R+V_M)^2 / (V_R^2/(G_R-1) + V_M^2/(G_M-1))`, :math:`G_g = n_g/k_g` practices,
and the noncentral t for power (so a one-practice-per-patient, equal-variance design reproduces
R ``pwr.t2n.test``). Use it when there are few practices: a z test with an estimated
cluster-robust SE over-rejects there.

:func:`power_disparity` returns the power of the Wald test that uses an *estimated* SE, i.e.
:math:`\Phi(\delta/\mathrm{SE}_1 - z)`, with :math:`\mathrm{SE}_1` computed at the post-period
rates implied by the target (``variance="alternative"``, default) or at baseline
(``variance="null"``). The two differ slightly: this is the drift between the analytic MDE (null
variance) and the simulated power at the MDE.
"""
from __future__ import annotations

import math
import warnings
from dataclasses import dataclass, field, fields
from numbers import Integral, Real

import numpy as np
from scipy import optimize, stats

from .._validation import check_option, check_scalar
from ..errors import InferenceWarning, SpecificationError

__all__ = [
    "DisparityPower",
    "design_effect",
    "disparity_variance",
    "mde_disparity",
    "power_disparity",
    "power_two_proportions",
    "race_accuracy_from_probabilities",
    "orient_gap",
]

_ALTERNATIVES = ("two-sided", "larger", "smaller")
_MIN_GAP_DEFAULT = 0.005


# ------------------------------------------------------------------------------------ helpers
def design_effect(cluster_size: float, icc: float, *, cluster_size_cv: float = 0.0) -> float:
    r"""Design effect :math:`1 + (\bar k(1+\mathrm{CV}^2) - 1)\,\mathrm{ICC}` of a mean over clustered patients.

    Parameters
    ----------
    cluster_size : float
        Mean number of patients per practice :math:`\bar k` (>= 1).
    icc : float
        Intraclass correlation within a practice, in [0, 1].
    cluster_size_cv : float, default=0
        Coefficient of variation of practice sizes (0 = equal sizes).

    Examples
    --------
    >>> round(design_effect(20, 0.05), 4)
    1.95
    >>> round(design_effect(20, 0.05, cluster_size_cv=0.5), 4)
    2.2
    """
    check_scalar(cluster_size, "cluster_size", Real, min_val=1)
    check_scalar(icc, "icc", Real, min_val=0, max_val=1)
    check_scalar(cluster_size_cv, "cluster_size_cv", Real, min_val=0)
    return float(1.0 + (cluster_size * (1.0 + cluster_size_cv**2) - 1.0) * icc)


def race_accuracy_from_probabilities(prob_minority) -> tuple[float, float]:
    r"""Accuracy :math:`(a_R, a_M)` of imputed membership from BISG-style probabilities.

    :math:`a_M = \sum_i q_i^2 / \sum_i q_i` and :math:`a_R = \sum_i (1-q_i)^2/\sum_i (1-q_i)`:
    for calibrated probabilities, the share of each group's weight that truly belongs to it.
    ``prob_minority`` holds :math:`q_i` for the patients who are in R or M.

    Examples
    --------
    >>> race_accuracy_from_probabilities([1.0, 0.0, 0.0])
    (1.0, 1.0)
    >>> race_accuracy_from_probabilities([0.5, 0.5])
    (0.5, 0.5)
    """
    q = np.asarray(prob_minority, dtype=float).ravel()
    if q.size == 0 or not np.all(np.isfinite(q)) or np.any((q < 0) | (q > 1)):
        raise SpecificationError("'prob_minority' must be a non-empty array of probabilities in [0, 1].")
    sm, sr = q.sum(), (1 - q).sum()
    if sm <= 0 or sr <= 0:
        raise SpecificationError("'prob_minority' gives one group no weight at all; both groups need patients.")
    return float(((1 - q) ** 2).sum() / sr), float((q**2).sum() / sm)


def orient_gap(p_reference: float, p_minority: float, higher_is_better: bool = True) -> float:
    """Gap oriented so that positive = minority disadvantaged.

    >>> round(orient_gap(0.708, 0.638, True), 3)
    0.07
    >>> round(orient_gap(0.239, 0.319, False), 3)
    0.08
    """
    return float(p_reference - p_minority) if higher_is_better else float(p_minority - p_reference)


def _check_rate(p, name):
    if isinstance(p, bool) or not isinstance(p, Real) or not np.isfinite(p) or p < 0 or p > 1:
        raise SpecificationError(f"The {name!r} parameter must be a rate (proportion) in [0, 1]. Got {p!r} instead; "
                                 "pass percentages divided by 100.")
    return float(p)


def _check_n(n, name):
    if isinstance(n, bool) or not isinstance(n, Real) or not np.isfinite(n):
        raise SpecificationError(f"The {name!r} parameter must be a positive number of patients. Got {n!r} instead.")
    if n <= 0:
        raise SpecificationError(f"The {name!r} parameter is {n!r}: the group is empty. Every group needs patients "
                                 "(drop the group or merge it with another).")
    return float(n)


def _resolve_sizes(n_reference, n_minority, n_total, shares):
    if n_total is not None or shares is not None:
        if n_reference is not None or n_minority is not None:
            raise SpecificationError("Give either n_reference and n_minority, or n_total and shares, not both.")
        if n_total is None or shares is None:
            raise SpecificationError("With group shares, also give 'n_total' (and vice versa).")
        _check_n(n_total, "n_total")
        try:
            s_r, s_m = (float(s) for s in shares)
        except (TypeError, ValueError):
            raise SpecificationError(f"'shares' must be a pair (share_reference, share_minority). Got {shares!r}.") from None
        if not (0 <= s_r <= 1 and 0 <= s_m <= 1):
            raise SpecificationError(f"Group shares must lie in [0, 1]. Got {shares!r}.")
        if s_r + s_m > 1 + 1e-12:
            raise SpecificationError(f"Group shares sum to {s_r + s_m:.4g} > 1: shares are fractions of n_total and "
                                     "cannot exceed 1 in total.")
        n_reference, n_minority = n_total * s_r, n_total * s_m
    if n_reference is None or n_minority is None:
        raise SpecificationError("Give the group sizes n_reference and n_minority (or n_total and shares).")
    return _check_n(n_reference, "n_reference"), _check_n(n_minority, "n_minority")


def _race_lambda(race_accuracy, n_r, n_m):
    if race_accuracy is None:
        return 1.0, 1.0, 1.0
    if isinstance(race_accuracy, Real) and not isinstance(race_accuracy, bool):
        a_m = float(race_accuracy)
        check_scalar(a_m, "race_accuracy", Real, min_val=0, max_val=1, include_min=False)
        a_r = 1.0 - n_m * (1.0 - a_m) / n_r  # two-group identity n_M(1-a_M) = n_R(1-a_R)
        if a_r <= 0:
            raise SpecificationError(f"race_accuracy={a_m} with n_minority={n_m:g} > n_reference={n_r:g} implies a "
                                     "reference-group accuracy <= 0; give both accuracies as a tuple.")
    else:
        try:
            a_r, a_m = (float(a) for a in race_accuracy)
        except (TypeError, ValueError):
            raise SpecificationError(f"'race_accuracy' must be a float (minority group) or a pair (reference, minority). "
                                     f"Got {race_accuracy!r}.") from None
        for a, nm in ((a_r, "race_accuracy[0]"), (a_m, "race_accuracy[1]")):
            check_scalar(a, nm, Real, min_val=0, max_val=1, include_min=False)
    lam = a_r + a_m - 1.0
    if lam <= 0.02:
        raise SpecificationError(f"Imputed race with accuracies ({a_r:.3g}, {a_m:.3g}) attenuates the gap by "
                                 f"lambda = a_R + a_M - 1 = {lam:.3g}: the imputed groups carry (almost) no information "
                                 "on the gap. Use self-reported race or a better imputation.")
    return lam, a_r, a_m


def _kappa(p, q):
    """Covariance of 1{U < p} and 1{U < q} for one shared uniform U (latent-threshold model)."""
    return min(p, q) - p * q


def _pair_var(a0, a1, b0, b1, c, m, r):
    r""":math:`\sum_{t,t'} w_t w_{t'} \operatorname{Cov}` for two series with rates (a0 pre, a1 post), (b0, b1).

    Same-year correlation 1 and cross-year correlation ``c`` on the latent scale; with equal
    rates this is :math:`p(1-p)(1-c)(1/m+1/r)`.
    """
    return (_kappa(a1, b1) * (1 + (r - 1) * c) / r + _kappa(a0, b0) * (1 + (m - 1) * c) / m
            - c * (_kappa(a1, b0) + _kappa(a0, b1)))


@dataclass(frozen=True)
class _Design:
    n_r: float
    n_m: float
    rho: float
    icc: float
    k: float
    cv: float
    rho_c: float
    shared: bool
    m: int
    r: int
    lam: float


def _group_var(n, k, p0, p1, d: _Design):
    ke = k * (1 + d.cv**2)
    return (_pair_var(p0, p1, p0, p1, d.rho, d.m, d.r) + (ke - 1) * d.icc * _pair_var(p0, p1, p0, p1, d.rho_c, d.m, d.r)) / n


def _variance(d: _Design, pr0, pr1, pm0, pm1):
    """Variance (true-gap scale) of the change in the gap, and the components V_R, V_M, cov."""
    k_r, k_m = _group_k(d)
    v_r = _group_var(d.n_r, max(k_r, 1.0) if not d.shared else k_r, pr0, pr1, d)
    v_m = _group_var(d.n_m, max(k_m, 1.0) if not d.shared else k_m, pm0, pm1, d)
    cov = 0.0
    if d.shared and d.icc > 0:
        ke = d.k * (1 + d.cv**2)
        # practice-level covariance of the two groups' changes (common practice effect)
        cov = d.icc * _pair_var(pr0, pr1, pm0, pm1, d.rho_c, d.m, d.r) * ke / (d.n_r + d.n_m)
    var = (v_r + v_m - 2 * cov) / d.lam
    return var, v_r / d.lam, v_m / d.lam, cov / d.lam, k_r, k_m


def _group_k(d):
    """Practice size of each group's own patients."""
    if isinstance(d.k, tuple):
        return d.k
    if d.shared:
        tot = d.n_r + d.n_m
        return d.k * d.n_r / tot, d.k * d.n_m / tot
    return d.k, d.k


def _satterthwaite(v_r, v_m, n_r, n_m, k_r, k_m):
    g_r, g_m = n_r / max(k_r, 1e-12), n_m / max(k_m, 1e-12)
    if g_r <= 1 or g_m <= 1:
        raise SpecificationError(f"distribution='t' needs at least 2 practices per group; got {g_r:.3g} (reference) and "
                                 f"{g_m:.3g} (minority) = n / cluster_size.")
    den = v_r**2 / (g_r - 1) + v_m**2 / (g_m - 1)
    if den <= 0:  # both variances zero (rates at 0 or 1): the equal-variance df
        return float(g_r + g_m - 2)
    return float((v_r + v_m) ** 2 / den)


def _crit(alpha, alternative, df):
    a = alpha / 2 if alternative == "two-sided" else alpha
    return float(stats.norm.isf(a)) if df is None else float(stats.t.isf(a, df))


def _power_from(delta, se, alpha, alternative, df):
    """Power of the level-alpha test for an effect ``delta`` (signed in the 'larger' direction)."""
    if se <= 0 or not np.isfinite(se):
        return float("nan")
    ncp = delta / se
    if alternative == "smaller":
        ncp = -ncp
    crit = _crit(alpha, alternative, df)
    if df is None:
        p = stats.norm.sf(crit - ncp)
        if alternative == "two-sided":
            p += stats.norm.cdf(-crit - ncp)
    else:
        p = stats.nct.sf(crit, df, ncp)
        if alternative == "two-sided":
            far = stats.nct.cdf(-crit, df, ncp)
            p += far if np.isfinite(far) else 0.0  # scipy can return NaN far in the tail
    return float(p)


def _solve_mde(se, alpha, alternative, df, power):
    """Effect with power ``power`` (both tails of a two-sided test counted, as R pwr does)."""
    crit = _crit(alpha, alternative, df)
    if df is None and alternative != "two-sided":
        return float((crit + stats.norm.ppf(power)) * se)
    alt = "two-sided" if alternative == "two-sided" else "larger"
    f = lambda x: _power_from(x, 1.0, alpha, alt, df) - power  # noqa: E731
    return float(optimize.brentq(f, 0.0, 2 * crit + abs(stats.norm.ppf(power)) + 5, xtol=1e-14, rtol=1e-14) * se)


# ------------------------------------------------------------------------------------ result
@dataclass(frozen=True)
class DisparityPower:
    """Detectability of a change in a disparity (see :func:`mde_disparity`).

    All effects are on the proportion scale unless the name ends in ``_pp`` (percentage points).
    ``share_of_gap`` is NaN (with ``reason``) when the baseline gap is <= ``min_gap``.
    """

    mde: float
    se: float
    se_alternative: float
    precision: float
    baseline_gap: float
    share_of_gap: float
    power: float
    reduction: float | None
    target_change: float | None
    alpha: float
    target_power: float
    alternative: str
    distribution: str
    df: float | None
    design_effect_reference: float
    design_effect_minority: float
    attenuation: float
    feasible: bool
    reason: str
    notes: tuple[str, ...] = field(default=())

    @property
    def mde_pp(self) -> float:
        """MDE in percentage points."""
        return 100.0 * self.mde

    @property
    def precision_pp(self) -> float:
        """Half-width of the (1 - alpha) CI for the change in the gap, in percentage points."""
        return 100.0 * self.precision

    @property
    def se_pp(self) -> float:
        return 100.0 * self.se

    @property
    def baseline_gap_pp(self) -> float:
        return 100.0 * self.baseline_gap

    def as_dict(self) -> dict:
        d = {f.name: getattr(self, f.name) for f in fields(self)}
        d.update(mde_pp=self.mde_pp, precision_pp=self.precision_pp, baseline_gap_pp=self.baseline_gap_pp)
        d["notes"] = list(self.notes)
        return d

    def summary(self):
        """A :class:`evalkit.results.Summary` of the figures and their conventions."""
        import pandas as pd

        from ..results import Summary

        rows = [("baseline gap (pp, + = minority disadvantaged)", self.baseline_gap_pp),
                ("MDE (pp)", self.mde_pp), ("MDE / baseline gap", self.share_of_gap),
                ("SE of gap change (pp)", self.se_pp), (f"CI half-width (pp, {1 - self.alpha:.0%})", self.precision_pp)]
        if self.reduction is not None:
            rows.append((f"power at {self.reduction:.0%} gap reduction", self.power))
        tab = pd.DataFrame(rows, columns=["quantity", "value"])
        head = [("Test", f"{self.alternative}, alpha={self.alpha:g}, {self.distribution}"
                 + (f" (df={self.df:.1f})" if self.df is not None else "")),
                ("Target power", f"{self.target_power:g}"),
                ("Design effects (R, M)", f"{self.design_effect_reference:.3f}, {self.design_effect_minority:.3f}"),
                ("Race attenuation", f"{self.attenuation:.3f}")]
        notes = list(self.notes) + ([self.reason] if self.reason else [])
        return Summary("Detectability of a change in a disparity", tab, head, notes)

    def __repr__(self) -> str:
        return (f"<DisparityPower: MDE {self.mde_pp:.2f} pp ({self.share_of_gap:.2f} of a {self.baseline_gap_pp:.2f} pp gap), "
                f"CI half-width {self.precision_pp:.2f} pp, power {self.power:.3f}>")


# ------------------------------------------------------------------------------------ main API
def _common(n_reference, n_minority, p_reference, p_minority, *, n_total, shares, rho, icc, cluster_size,
            cluster_size_cv, practice_persistence, shared_practices, pre_years, post_years, race_accuracy,
            higher_is_better, alpha, alternative, distribution, min_gap):
    n_r, n_m = _resolve_sizes(n_reference, n_minority, n_total, shares)
    pr, pm = _check_rate(p_reference, "p_reference"), _check_rate(p_minority, "p_minority")
    check_scalar(rho, "rho", Real, min_val=0, max_val=1, include_max=False)
    check_scalar(icc, "icc", Real, min_val=0, max_val=1, include_max=False)
    if isinstance(cluster_size, (tuple, list)):
        if len(cluster_size) != 2 or shared_practices:
            raise SpecificationError("'cluster_size' as a pair means (reference, minority) practice sizes for groups in "
                                     f"separate practices. Got {cluster_size!r} (shared_practices={shared_practices}).")
        for kk, nm in zip(cluster_size, ("cluster_size[0]", "cluster_size[1]")):
            check_scalar(kk, nm, Real, min_val=1)
        cluster_size = (float(cluster_size[0]), float(cluster_size[1]))
    else:
        check_scalar(cluster_size, "cluster_size", Real, min_val=1)
    check_scalar(cluster_size_cv, "cluster_size_cv", Real, min_val=0)
    rho_c = rho if practice_persistence is None else practice_persistence
    check_scalar(rho_c, "practice_persistence", Real, min_val=0, max_val=1)
    check_scalar(pre_years, "pre_years", Integral, min_val=1)
    check_scalar(post_years, "post_years", Integral, min_val=1)
    check_scalar(alpha, "alpha", Real, min_val=0, max_val=1, include_min=False, include_max=False)
    check_scalar(min_gap, "min_gap", Real, min_val=0)
    check_option(alternative, "alternative", _ALTERNATIVES)
    check_option(distribution, "distribution", ("normal", "t"))
    if not isinstance(higher_is_better, (bool, np.bool_)):
        raise SpecificationError(f"The 'higher_is_better' parameter must be True or False. Got {higher_is_better!r}.")
    k_pair = cluster_size if isinstance(cluster_size, tuple) else (cluster_size, cluster_size)
    if not shared_practices and (k_pair[0] > n_r or k_pair[1] > n_m) and icc > 0:
        raise SpecificationError(f"cluster_size={cluster_size:g} exceeds a group's size ({n_r:g} reference, {n_m:g} "
                                 "minority): practices hold patients of one group unless shared_practices=True.")
    lam, a_r, a_m = _race_lambda(race_accuracy, n_r, n_m)
    d = _Design(n_r, n_m, float(rho), float(icc), cluster_size if isinstance(cluster_size, tuple) else float(cluster_size),
                float(cluster_size_cv), float(rho_c),
                bool(shared_practices), int(pre_years), int(post_years), lam)
    gap = orient_gap(pr, pm, bool(higher_is_better))
    return d, pr, pm, gap


def _df_for(distribution, d, v_r, v_m, k_r, k_m):
    if distribution == "normal":
        return None
    return _satterthwaite(v_r, v_m, d.n_r, d.n_m, k_r, k_m)


def _post_rates(pr, pm, gap, change, higher_is_better, who):
    """Post-period rates when the oriented gap closes by ``change`` (moves by the minority by default)."""
    sgn = 1.0 if higher_is_better else -1.0  # direction of 'better' on the rate scale
    if who == "minority":
        pm1, pr1 = pm + sgn * change, pr
    elif who == "reference":
        pm1, pr1 = pm, pr - sgn * change
    else:  # "both": half each
        pm1, pr1 = pm + sgn * change / 2, pr - sgn * change / 2
    return pr1, pm1


def _notes(d, distribution, df):
    notes = [f"Planning model: closed cohort, {d.m} pre and {d.r} post year(s) pooled; within-person correlation "
             f"rho={d.rho:g}; ICC={d.icc:g} in practices of {d.k if isinstance(d.k, tuple) else f'{d.k:g}'}"
             + (f" (CV {d.cv:g})" if d.cv else "") + f"; practice-level correlation across years rho_c*ICC with "
             f"rho_c={d.rho_c:g}; " + ("groups share practices." if d.shared else "groups in separate practices.")]
    if d.lam < 1:
        notes.append(f"Imputed race: gap attenuated by lambda={d.lam:.3f}; variance on the true-gap scale inflated by 1/lambda.")
    notes.append("Normal quantiles." if distribution == "normal" else
                 f"t quantiles, Satterthwaite df={df:.1f} from the number of practices per group.")
    return tuple(notes)


def mde_disparity(
    n_reference: float | None = None,
    n_minority: float | None = None,
    p_reference: float | None = None,
    p_minority: float | None = None,
    *,
    n_total: float | None = None,
    shares: tuple[float, float] | None = None,
    rho: float = 0.0,
    icc: float = 0.0,
    cluster_size: float = 1,
    cluster_size_cv: float = 0.0,
    practice_persistence: float | None = None,
    shared_practices: bool = False,
    pre_years: int = 1,
    post_years: int = 1,
    race_accuracy: float | tuple[float, float] | None = None,
    higher_is_better: bool = True,
    alpha: float = 0.05,
    power: float = 0.8,
    alternative: str = "two-sided",
    distribution: str = "normal",
    reduction: float | None = None,
    min_gap: float = _MIN_GAP_DEFAULT,
) -> DisparityPower:
    r"""Minimum detectable change in a disparity (DiD of proportions), its precision and share of the gap.

    The planning model, the variance derivation and the imputed-race approximation are in the
    module docstring of :mod:`evalkit.power.analytic` and in ``docs/equity.md``.

    Parameters
    ----------
    n_reference, n_minority : float
        Patients (denominators) in the reference and minority group; or give ``n_total`` and
        ``shares`` instead.
    p_reference, p_minority : float
        Baseline rates in [0, 1].
    n_total : float, optional
        Total patients; with ``shares=(share_reference, share_minority)`` (sum <= 1).
    rho : float, default=0
        Within-person correlation across measurement years.
    icc : float, default=0
        Intraclass correlation of patients in the same practice (within a year).
    cluster_size : float or (float, float), default=1
        Mean patients per practice (of one group; of both with ``shared_practices=True``); a
        pair gives the reference and minority groups' own practice sizes.
    cluster_size_cv : float, default=0
        Coefficient of variation of practice sizes.
    practice_persistence : float, optional
        Correlation of practice effects across years, :math:`\rho_c`; default ``rho`` (separable
        covariance). 0 = practice effects that do not persist; 1 = permanent practice effects
        (they cancel in the DiD).
    shared_practices : bool, default=False
        Groups share practices in proportion to their sizes (common practice effect cancels partly).
    pre_years, post_years : int, default=1
        Measurement years pooled before and after (equicorrelated).
    race_accuracy : float or (float, float), optional
        Imputed race: accuracy :math:`a_M` of the minority group (the reference accuracy follows
        from the two-group identity) or the pair :math:`(a_R, a_M)`; see
        :func:`race_accuracy_from_probabilities`. None = self-reported race.
    higher_is_better : bool, default=True
        Orientation of the measure (False for e.g. HbA1c poor control).
    alpha : float, default=0.05
    power : float, default=0.8
    alternative : {"two-sided", "larger", "smaller"}, default="two-sided"
        One-sided "larger" tests a gap reduction.
    distribution : {"normal", "t"}, default="normal"
        Normal quantiles, or t with Satterthwaite df (few practices).
    reduction : float, optional
        Also report the power to detect this share of the baseline gap closing.
    min_gap : float, default=0.005
        Baseline gaps at or below this (proportion scale) give ``share_of_gap`` = NaN.

    Returns
    -------
    DisparityPower
        ``.mde``, ``.mde_pp``, ``.share_of_gap``, ``.se``, ``.precision`` (CI half-width),
        ``.power`` (at ``reduction``; at the MDE otherwise), ``.reason``.

    Examples
    --------
    >>> r = mde_disparity(4000, 1000, 0.708, 0.638, rho=0.5)
    >>> round(r.mde_pp, 2), round(r.share_of_gap, 2)
    (4.71, 0.67)
    """
    check_scalar(power, "power", Real, min_val=0, max_val=1, include_min=False, include_max=False)
    d, pr, pm, gap = _common(n_reference, n_minority, p_reference, p_minority, n_total=n_total, shares=shares, rho=rho,
                             icc=icc, cluster_size=cluster_size, cluster_size_cv=cluster_size_cv,
                             practice_persistence=practice_persistence, shared_practices=shared_practices,
                             pre_years=pre_years, post_years=post_years, race_accuracy=race_accuracy,
                             higher_is_better=higher_is_better, alpha=alpha, alternative=alternative,
                             distribution=distribution, min_gap=min_gap)
    one_sided_alpha = alpha / 2 if alternative == "two-sided" else alpha
    if power <= one_sided_alpha:
        raise SpecificationError(f"power={power:g} is already reached with no data (a level-{alpha:g} {alternative} test "
                                 f"rejects with probability {one_sided_alpha:g} at no effect): ask for power > {one_sided_alpha:g}.")
    var0, v_r, v_m, _, k_r, k_m = _variance(d, pr, pr, pm, pm)
    se0 = math.sqrt(var0)
    _warn_one_boundary(pr, pm)
    df = _df_for(distribution, d, v_r, v_m, k_r, k_m)
    mde = _solve_mde(se0, alpha, alternative, df, power) if se0 > 0 else float("nan")
    precision = _crit(alpha, "two-sided", df) * se0 if se0 > 0 else float("nan")
    reason, feasible = _feasibility(gap, mde, pr, pm, higher_is_better, min_gap)
    share = mde / gap if gap > min_gap else float("nan")
    if reduction is not None:
        pw, target, se1 = _power_at(d, pr, pm, gap, reduction, higher_is_better, alpha, alternative, df, "alternative", "minority")
    else:
        pw, target, se1 = float(power), None, se0
    k_r_eff, k_m_eff = _group_k(d)
    return DisparityPower(
        mde=float(mde), se=se0, se_alternative=float(se1), precision=float(precision), baseline_gap=gap,
        share_of_gap=float(share), power=float(pw), reduction=reduction, target_change=target, alpha=float(alpha),
        target_power=float(power), alternative=alternative, distribution=distribution, df=df,
        design_effect_reference=1 + (k_r_eff * (1 + d.cv**2) - 1) * d.icc,
        design_effect_minority=1 + (k_m_eff * (1 + d.cv**2) - 1) * d.icc,
        attenuation=d.lam, feasible=feasible, reason=reason, notes=_notes(d, distribution, df),
    )


_DEGENERATE = ("both baseline rates are 0 or 1, so the planning variance at baseline is zero and the MDE is undefined "
               "(not 0); use power_disparity(reduction=...) for the power to detect a given change")


_ONE_BOUNDARY = "baseline rate is 0 or 1"


def _warn_one_boundary(pr, pm, where=""):
    """Warn when exactly one group's baseline rate is 0 or 1: the null-variance MDE omits that group's variance."""
    bad = [(g, p) for g, p in (("reference", pr), ("minority", pm)) if p in (0.0, 1.0)]
    if len(bad) == 1:
        g, p = bad[0]
        warnings.warn(f"{where}The {g} group's {_ONE_BOUNDARY} (p_{g}={p:g}): it contributes no variance at baseline, so "
                      "the MDE (computed with both periods at baseline) is understated. Check the power at a target "
                      "with power_disparity(reduction=...), whose default variance='alternative' counts that group's "
                      "variance after the change.", InferenceWarning, stacklevel=3)


def _feasibility(gap, mde, pr, pm, higher_is_better, min_gap):
    if not np.isfinite(mde):
        return (_DEGENERATE, False)
    if gap <= 0:
        return (f"baseline gap is {100 * gap:.2f} pp <= 0 (minority group not disadvantaged): share of gap undefined", False)
    if gap <= min_gap:
        return (f"baseline gap {100 * gap:.2f} pp is below min_gap={100 * min_gap:.2f} pp: share of gap undefined", False)
    if mde > gap:
        return (f"MDE {100 * mde:.2f} pp exceeds the baseline gap {100 * gap:.2f} pp: even closing the whole gap "
                "is not reliably detectable", False)
    return "", True


def _power_at(d, pr, pm, gap, reduction, higher_is_better, alpha, alternative, df, variance, who):
    check_scalar(reduction, "reduction", Real, min_val=0)
    if gap <= 0:
        raise SpecificationError(f"A target 'reduction' needs a positive baseline gap; the oriented gap is {100 * gap:.3g} pp "
                                 "(the minority group is not disadvantaged on this measure). Use power_disparity(change=...).")
    change = reduction * gap
    return (*_power_change(d, pr, pm, change, higher_is_better, alpha, alternative, df, variance, who, reduction), )


def _power_change(d, pr, pm, change, higher_is_better, alpha, alternative, df, variance, who, reduction=None):
    pr1, pm1 = _post_rates(pr, pm, None, change, higher_is_better, who)
    for p, nm in ((pr1, "reference"), (pm1, "minority")):
        if not 0 <= p <= 1:
            what = f"reduction={reduction:g} of the gap" if reduction is not None else f"change={change:g}"
            raise SpecificationError(f"Impossible target: {what} puts the {nm} group's post rate at {p:.4g}, outside [0, 1].")
    if variance == "alternative":
        var1 = _variance(d, pr, pr1, pm, pm1)[0]
    else:
        var1 = _variance(d, pr, pr, pm, pm)[0]
    se1 = math.sqrt(var1)
    return _power_from(change, se1, alpha, alternative, df), change, se1


def power_disparity(
    n_reference: float | None = None,
    n_minority: float | None = None,
    p_reference: float | None = None,
    p_minority: float | None = None,
    *,
    reduction: float | None = None,
    change: float | None = None,
    n_total: float | None = None,
    shares: tuple[float, float] | None = None,
    rho: float = 0.0,
    icc: float = 0.0,
    cluster_size: float = 1,
    cluster_size_cv: float = 0.0,
    practice_persistence: float | None = None,
    shared_practices: bool = False,
    pre_years: int = 1,
    post_years: int = 1,
    race_accuracy: float | tuple[float, float] | None = None,
    higher_is_better: bool = True,
    alpha: float = 0.05,
    alternative: str = "two-sided",
    distribution: str = "normal",
    variance: str = "alternative",
    who_improves: str = "minority",
    min_gap: float = _MIN_GAP_DEFAULT,
) -> DisparityPower:
    """Power to detect a gap reduction (share ``reduction`` of the baseline gap, or an absolute ``change``).

    Same design arguments as :func:`mde_disparity`. The target moves the minority group's rate
    toward the reference rate (``who_improves="minority"``; or ``"reference"`` worsening,
    ``"both"`` half each). Power is that of the Wald test with an estimated SE:
    :math:`\\Phi(\\delta/SE_1 - z_{1-\\alpha/2}) + \\Phi(-\\delta/SE_1 - z_{1-\\alpha/2})`
    (noncentral t with ``distribution="t"``), with :math:`SE_1` at the target's post rates
    (``variance="alternative"``) or at baseline (``variance="null"``).

    Examples
    --------
    >>> r = power_disparity(4000, 1000, 0.708, 0.638, rho=0.5, reduction=0.5)
    >>> round(r.power, 3)
    0.532
    """
    if (reduction is None) == (change is None):
        raise SpecificationError("Give exactly one of 'reduction' (share of the baseline gap) or 'change' (proportion scale).")
    check_option(variance, "variance", ("alternative", "null"))
    check_option(who_improves, "who_improves", ("minority", "reference", "both"))
    d, pr, pm, gap = _common(n_reference, n_minority, p_reference, p_minority, n_total=n_total, shares=shares, rho=rho,
                             icc=icc, cluster_size=cluster_size, cluster_size_cv=cluster_size_cv,
                             practice_persistence=practice_persistence, shared_practices=shared_practices,
                             pre_years=pre_years, post_years=post_years, race_accuracy=race_accuracy,
                             higher_is_better=higher_is_better, alpha=alpha, alternative=alternative,
                             distribution=distribution, min_gap=min_gap)
    var0, v_r, v_m, _, k_r, k_m = _variance(d, pr, pr, pm, pm)
    df = _df_for(distribution, d, v_r, v_m, k_r, k_m)
    if reduction is not None:
        if gap <= 0:
            raise SpecificationError(f"A target 'reduction' needs a positive baseline gap; the oriented gap is {100 * gap:.3g} pp "
                                     "(the minority group is not disadvantaged on this measure). Give 'change' instead.")
        check_scalar(reduction, "reduction", Real, min_val=0)
        change = reduction * gap
    else:
        check_scalar(change, "change", Real)
    pw, target, se1 = _power_change(d, pr, pm, float(change), bool(higher_is_better), alpha, alternative, df, variance,
                                    who_improves, reduction)
    se0 = math.sqrt(var0)
    mde = _solve_mde(se0, alpha, alternative, df, 0.8) if se0 > 0 else float("nan")
    reason, feasible = _feasibility(gap, mde, pr, pm, higher_is_better, min_gap)
    k_r_eff, k_m_eff = _group_k(d)
    return DisparityPower(
        mde=float(mde), se=se0, se_alternative=se1,
        precision=_crit(alpha, "two-sided", df) * se0 if se0 > 0 else float("nan"), baseline_gap=gap,
        share_of_gap=float(mde / gap) if gap > min_gap else float("nan"), power=pw, reduction=reduction,
        target_change=float(target), alpha=float(alpha), target_power=0.8, alternative=alternative,
        distribution=distribution, df=df,
        design_effect_reference=1 + (k_r_eff * (1 + d.cv**2) - 1) * d.icc,
        design_effect_minority=1 + (k_m_eff * (1 + d.cv**2) - 1) * d.icc,
        attenuation=d.lam, feasible=feasible, reason=reason, notes=_notes(d, distribution, df),
    )


def disparity_variance(n_reference, n_minority, p_reference, p_minority, *, p_reference_post=None,
                       p_minority_post=None, rho=0.0, icc=0.0, cluster_size=1, cluster_size_cv=0.0,
                       practice_persistence=None, shared_practices=False, pre_years=1, post_years=1,
                       race_accuracy=None) -> float:
    """Variance (true-gap scale) of the estimated change in the gap; post rates default to baseline.

    >>> round(disparity_variance(50, 50, 0.5, 0.5, rho=0.5, pre_years=4, post_years=4) / 0.25, 4)
    0.01
    """
    d, pr, pm, _ = _common(n_reference, n_minority, p_reference, p_minority, n_total=None, shares=None, rho=rho, icc=icc,
                           cluster_size=cluster_size, cluster_size_cv=cluster_size_cv,
                           practice_persistence=practice_persistence, shared_practices=shared_practices,
                           pre_years=pre_years, post_years=post_years, race_accuracy=race_accuracy,
                           higher_is_better=True, alpha=0.05, alternative="two-sided", distribution="normal",
                           min_gap=0.0)
    pr1 = pr if p_reference_post is None else _check_rate(p_reference_post, "p_reference_post")
    pm1 = pm if p_minority_post is None else _check_rate(p_minority_post, "p_minority_post")
    return float(_variance(d, pr, pr1, pm, pm1)[0])


# ------------------------------------------------------------------------------------ two groups
def power_two_proportions(p1: float, p2: float, n1: float, n2: float, *, alpha: float = 0.05,
                          alternative: str = "two-sided", method: str = "arcsine") -> float:
    r"""Power of a two-sample test of proportions.

    ``method="arcsine"`` (default) uses Cohen's :math:`h = 2\arcsin\sqrt{p_1} - 2\arcsin\sqrt{p_2}`
    and power :math:`\Phi(h\sqrt{n_1n_2/(n_1+n_2)} - z)` (+ the other tail when two-sided), as
    R ``pwr.2p2n.test(ES.h(p1, p2), n1, n2)``; ``"larger"`` means :math:`p_1 > p_2`
    (pwr's ``"greater"``). ``method="normal"`` uses the unpooled Wald variance
    :math:`p_1(1-p_1)/n_1 + p_2(1-p_2)/n_2` on the proportion scale -- the building block of
    :func:`mde_disparity` (the two agree to first order: the arcsine transform stabilises the
    variance, :math:`\operatorname{Var}(2\arcsin\sqrt{\hat p}) \approx 1/n`).

    Examples
    --------
    >>> round(power_two_proportions(0.708, 0.638, 1000, 400), 4)
    0.7142
    """
    p1, p2 = _check_rate(p1, "p1"), _check_rate(p2, "p2")
    n1, n2 = _check_n(n1, "n1"), _check_n(n2, "n2")
    check_scalar(alpha, "alpha", Real, min_val=0, max_val=1, include_min=False, include_max=False)
    check_option(alternative, "alternative", _ALTERNATIVES)
    check_option(method, "method", ("arcsine", "normal"))
    if method == "arcsine":
        eff = 2 * math.asin(math.sqrt(p1)) - 2 * math.asin(math.sqrt(p2))
        se = math.sqrt((n1 + n2) / (n1 * n2))
    else:
        eff = p1 - p2
        se = math.sqrt(p1 * (1 - p1) / n1 + p2 * (1 - p2) / n2)
        if se == 0:
            raise SpecificationError("Both rates are 0 or 1: the normal-approximation variance is zero; use method='arcsine'.")
    return _power_from(eff, se, alpha, alternative, None)
