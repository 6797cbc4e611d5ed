r"""Monte Carlo power for a change in a disparity: simulate the full design and run the estimator.

Design simulated (seeded, vectorised over replications):

* a closed cohort of ``n_reference`` + ``n_minority`` patients in practices of ``cluster_size``
  patients (practices of one group; group sizes are rounded to whole practices), measured in
  ``pre_years`` + ``post_years`` years;
* binary outcomes with *exactly* the planning model's correlations: uniforms are shared by a
  copying construction (a measurement copies its practice-year uniform with probability
  :math:`\sqrt{\mathrm{ICC}}`, the practice-year uniform copies the practice's permanent one with
  probability :math:`\sqrt{\rho_c}`, otherwise the measurement copies the patient's permanent
  uniform with probability :math:`\delta`, :math:`\delta^2 = (\rho-\mathrm{ICC}\rho_c)/(1-\sqrt{\mathrm{ICC}})^2`),
  and :math:`Y = 1\{U < p_{g,t}\}`. With equal rates in all years the indicator correlations
  are exactly :math:`\rho`, ICC and :math:`\rho_c\,\mathrm{ICC}`; when the post rate differs, the
  correlation of a copied uniform's indicators is slightly below 1 (part of the drift under the
  alternative). Needs :math:`\rho - \mathrm{ICC}\rho_c \le (1-\sqrt{\mathrm{ICC}})^2`.
* imputed race (``race_accuracy`` = :math:`a_M`): every patient of the pooled cohort gets a
  probability :math:`q_i \sim \mathrm{Beta}(\pi\kappa, (1-\pi)\kappa)` of being in M
  (:math:`\pi = n_M/(n_R+n_M)`, :math:`\kappa` set so that :math:`E[q^2]/E[q] = a_M`) and the true
  group is drawn with that probability (calibrated). Patients are assigned to practices after
  sorting by :math:`q` (practices mostly of one group).

Estimator: the change in the gap is :math:`\hat\Delta = \pm\sum_i c_i d_i` with :math:`d_i` the
patient's post-minus-pre mean, :math:`c_i = q_i/\sum q - (1-q_i)/\sum(1-q)` (``q`` = 0/1 for
known race) -- the stratified DiD of gaps with probability weights. Its SE is cluster-robust by
practice, :math:`\hat V = \frac{G}{G-1}\sum_j (\sum_{i\in j}\psi_i)^2` with influence values
:math:`\psi_i = q_i(d_i-\bar d_M)/\sum q - (1-q_i)(d_i-\bar d_R)/\sum(1-q)`. The test is the
Wald z test (``distribution="normal"``) or a t test with Satterthwaite df from the two groups'
cluster-robust variances (known race only). The returned estimate is *not* divided by the
attenuation :math:`\lambda` (that is what a user who ignores imputation would see); divide it to
compare with the true gap.
"""
from __future__ import annotations

import math
from dataclasses import dataclass
from numbers import Integral, Real

import numpy as np
import pandas as pd
from scipy import stats

from .._progress import progress_bar
from .._validation import as_generator, check_option, check_scalar
from ..errors import SpecificationError
from .analytic import _check_n, _check_rate, _race_lambda

__all__ = ["simulate_disparity_did", "simulate_disparity_panel", "power_disparity_mc", "MonteCarloPower"]


@dataclass(frozen=True)
class MonteCarloPower:
    """Rejection rate of the simulated test, with its Monte Carlo SE, and the estimates' spread."""

    power: float
    mc_se: float
    n_reps: int
    mean_estimate: float
    sd_estimate: float
    mean_se: float
    test: str
    seed: int | None
    draws: pd.DataFrame


def _copy_probs(rho, icc, rho_c):
    a = math.sqrt(icc)
    g = math.sqrt(rho_c)
    num = rho - icc * rho_c
    if num < -1e-12:
        raise SpecificationError(f"rho={rho} < icc*practice_persistence={icc * rho_c}: not representable in the simulation.")
    d2 = max(num, 0.0) / (1 - a) ** 2 if a < 1 else 0.0
    if d2 > 1 + 1e-12:
        raise SpecificationError(f"rho={rho} with icc={icc}: the simulation needs rho - icc*rho_c <= (1 - sqrt(icc))^2 "
                                 f"= {(1 - a) ** 2:.3g}.")
    return a, g, math.sqrt(min(d2, 1.0))


def _prepare(n_reference, n_minority, p_reference, p_minority, p_reference_post, p_minority_post, rho, icc,
             cluster_size, practice_persistence, pre_years, post_years, race_accuracy, seed):
    """Validate the design and derive the simulation constants (shared by the estimator and panel simulators)."""
    n_r, n_m = int(_check_n(n_reference, "n_reference")), int(_check_n(n_minority, "n_minority"))
    pr0, pm0 = _check_rate(p_reference, "p_reference"), _check_rate(p_minority, "p_minority")
    pr1 = pr0 if p_reference_post is None else _check_rate(p_reference_post, "p_reference_post")
    pm1 = pm0 if p_minority_post is None else _check_rate(p_minority_post, "p_minority_post")
    check_scalar(rho, "rho", Real, min_val=0, max_val=1, include_max=False)
    check_scalar(icc, "icc", Real, min_val=0, max_val=1, include_max=False)
    check_scalar(cluster_size, "cluster_size", Integral, min_val=1)
    check_scalar(pre_years, "pre_years", Integral, min_val=1)
    check_scalar(post_years, "post_years", Integral, min_val=1)
    rho_c = rho if practice_persistence is None else practice_persistence
    a_copy, g_copy, d_copy = _copy_probs(rho, icc, rho_c)
    rng = as_generator(seed)
    k = int(cluster_size)
    J_r, J_m = max(n_r // k, 1), max(n_m // k, 1)
    n_r, n_m = J_r * k, J_m * k
    N, J, T = n_r + n_m, J_r + J_m, pre_years + post_years
    post = np.r_[np.zeros(pre_years, bool), np.ones(post_years, bool)]
    pi = kappa = None
    if race_accuracy is not None:
        pi = n_m / N
        check_scalar(race_accuracy, "race_accuracy", Real, min_val=pi, max_val=1, include_min=False, include_max=False)
        kappa = (1 - pi) / (race_accuracy - pi) - 1
    return n_r, n_m, pr0, pr1, pm0, pm1, a_copy, g_copy, d_copy, rng, k, J_r, J_m, N, J, T, post, pi, kappa


def _draw(rng, B, J, N, T, k, n_r, n_m, a_copy, g_copy, d_copy, race_accuracy, pi, kappa, post, pr0, pr1, pm0, pm1):
    """One chunk of ``B`` replications: outcomes Y (B, N, T), minority probabilities q, true membership."""
    P = rng.random((B, J, 1))
    S = np.where(rng.random((B, J, T)) < g_copy, P, rng.random((B, J, T)))
    Q = rng.random((B, N, 1))
    W = np.where(rng.random((B, N, T)) < d_copy, Q, rng.random((B, N, T)))
    prac = np.repeat(np.arange(J), k)
    U = np.where(rng.random((B, N, T)) < a_copy, S[:, prac, :], W)
    if race_accuracy is None:
        q = np.r_[np.zeros(n_r), np.ones(n_m)][None, :].repeat(B, 0)
        minority = q.astype(bool)
    else:
        q = np.sort(rng.beta(pi * kappa, (1 - pi) * kappa, size=(B, N)), axis=1)  # practices sorted by q
        minority = rng.random((B, N)) < q
    p_pre = np.where(minority, pm0, pr0)
    p_post = np.where(minority, pm1, pr1)
    thr = np.where(post[None, None, :], p_post[:, :, None], p_pre[:, :, None])
    return (U < thr).astype(float), q, minority


def simulate_disparity_did(
    n_reference: int,
    n_minority: int,
    p_reference: float,
    p_minority: float,
    *,
    p_reference_post: float | None = None,
    p_minority_post: float | None = None,
    rho: float = 0.0,
    icc: float = 0.0,
    cluster_size: int = 1,
    practice_persistence: float | None = None,
    pre_years: int = 1,
    post_years: int = 1,
    race_accuracy: float | None = None,
    higher_is_better: bool = True,
    n_reps: int = 1000,
    seed: int | np.random.Generator | None = None,
    chunk: int | None = None,
    progress: bool | None = None,
) -> pd.DataFrame:
    """Simulate ``n_reps`` studies and return one row per replication.

    Columns: ``estimate`` (change in the oriented gap; positive = gap closed), ``std_error``
    (cluster-robust), ``df`` (Satterthwaite, NaN under imputed race), ``gap_pre`` (estimated
    baseline gap). See the module docstring for the design and the estimator.
    ``progress=True`` shows a bar of the replications on stderr (default ``None``: silent unless
    a caller turned bars on; the draws do not depend on it).

    Examples
    --------
    >>> d = simulate_disparity_did(400, 200, 0.7, 0.6, rho=0.5, n_reps=50, seed=1)
    >>> list(d.columns)
    ['estimate', 'std_error', 'df', 'gap_pre']
    """
    check_scalar(n_reps, "n_reps", Integral, min_val=1)
    (n_r, n_m, pr0, pr1, pm0, pm1, a_copy, g_copy, d_copy, rng, k, J_r, J_m, N, J, T, post, pi, kappa) = _prepare(
        n_reference, n_minority, p_reference, p_minority, p_reference_post, p_minority_post, rho, icc, cluster_size,
        practice_persistence, pre_years, post_years, race_accuracy, seed)
    chunk = chunk or max(1, min(n_reps, int(4e6 // (N * T))))
    sign = 1.0 if higher_is_better else -1.0
    out = []
    done = 0
    bar = progress_bar(total=int(n_reps), desc="Monte Carlo replications", unit=" reps", progress=progress)
    while done < n_reps:
        B = min(chunk, n_reps - done)
        done += B
        Y, q, minority = _draw(rng, B, J, N, T, k, n_r, n_m, a_copy, g_copy, d_copy, race_accuracy, pi, kappa,
                               post, pr0, pr1, pm0, pm1)
        d = Y[:, :, post].mean(2) - Y[:, :, ~post].mean(2)
        ypre = Y[:, :, ~post].mean(2)
        sm, sr = q.sum(1, keepdims=True), (1 - q).sum(1, keepdims=True)
        dm = (q * d).sum(1, keepdims=True) / sm
        dr = ((1 - q) * d).sum(1, keepdims=True) / sr
        est = sign * (dm - dr)[:, 0]  # oriented: gap = sign*(p_R - p_M); change = gap_pre - gap_post
        gap_pre = sign * (((1 - q) * ypre).sum(1) / sr[:, 0] - (q * ypre).sum(1) / sm[:, 0])
        psi_m = q * (d - dm) / sm
        psi_r = (1 - q) * (d - dr) / sr
        cm = (psi_m.reshape(B, J, k).sum(2))
        cr = (psi_r.reshape(B, J, k).sum(2))
        if race_accuracy is None:
            vm = (cm[:, J_r:] ** 2).sum(1) * J_m / max(J_m - 1, 1)
            vr = (cr[:, :J_r] ** 2).sum(1) * J_r / max(J_r - 1, 1)
            var = vm + vr
            with np.errstate(divide="ignore", invalid="ignore"):
                df = var**2 / (vr**2 / max(J_r - 1, 1) + vm**2 / max(J_m - 1, 1))
        else:
            var = ((cm - cr) ** 2).sum(1) * J / (J - 1)
            df = np.full(B, np.nan)
        out.append(pd.DataFrame({"estimate": est, "std_error": np.sqrt(var), "df": df, "gap_pre": gap_pre}))
        bar.update(B)
    bar.close()
    return pd.concat(out, ignore_index=True)


def simulate_disparity_panel(
    n_reference: int,
    n_minority: int,
    p_reference: float,
    p_minority: float,
    *,
    p_reference_post: float | None = None,
    p_minority_post: float | None = None,
    rho: float = 0.0,
    icc: float = 0.0,
    cluster_size: int = 1,
    practice_persistence: float | None = None,
    pre_years: int = 1,
    post_years: int = 1,
    race_accuracy: float | None = None,
    reference_group: str = "White",
    minority_group: str = "Black",
    seed: int | np.random.Generator | None = None,
) -> pd.DataFrame:
    """One simulated study of :func:`simulate_disparity_did`'s design as patient-year rows.

    Draws exactly what ``simulate_disparity_did(..., n_reps=1, seed=seed)`` draws (same random
    stream), so :func:`evalkit.equity.disparity_did` on this table reproduces that replication's
    estimate. Columns: ``patient, practice, year`` (0 ..
    ``pre_years + post_years - 1``), ``period`` ("pre"/"post"), ``y`` (0/1), ``race`` (true
    group), ``prob_minority`` (the imputed probability; 0/1 for known race),
    ``prob_reference`` (= 1 - ``prob_minority``).

    Examples
    --------
    >>> p = simulate_disparity_panel(40, 20, 0.7, 0.6, cluster_size=10, seed=1)
    >>> p.shape, sorted(p.period.unique())
    ((120, 8), ['post', 'pre'])
    """
    (n_r, n_m, pr0, pr1, pm0, pm1, a_copy, g_copy, d_copy, rng, k, J_r, J_m, N, J, T, post, pi, kappa) = _prepare(
        n_reference, n_minority, p_reference, p_minority, p_reference_post, p_minority_post, rho, icc, cluster_size,
        practice_persistence, pre_years, post_years, race_accuracy, seed)
    Y, q, minority = _draw(rng, 1, J, N, T, k, n_r, n_m, a_copy, g_copy, d_copy, race_accuracy, pi, kappa,
                           post, pr0, pr1, pm0, pm1)
    pid = np.repeat(np.arange(N), T)
    return pd.DataFrame({
        "patient": pid,
        "practice": np.repeat(np.arange(J), k)[pid],
        "year": np.tile(np.arange(T), N),
        "period": np.where(np.tile(post, N), "post", "pre"),
        "y": Y[0].ravel().astype(int),
        "race": np.where(minority[0], minority_group, reference_group)[pid],
        "prob_minority": q[0][pid],
        "prob_reference": 1.0 - q[0][pid],
    })


def power_disparity_mc(
    n_reference: int,
    n_minority: int,
    p_reference: float,
    p_minority: float,
    *,
    change: float = 0.0,
    alpha: float = 0.05,
    alternative: str = "two-sided",
    distribution: str = "normal",
    attenuation: float = 1.0,
    n_reps: int = 2000,
    seed: int | None = None,
    higher_is_better: bool = True,
    progress: bool | None = None,
    **design,
) -> MonteCarloPower:
    r"""Simulated power of the disparity DiD test for a gap closing by ``change`` (proportion scale).

    The minority group's post rate moves toward the reference by ``change``; ``change=0`` gives
    the false-positive rate. ``design`` takes the keyword arguments of
    :func:`simulate_disparity_did` (``rho``, ``icc``, ``cluster_size``, ``race_accuracy``, ...).
    The test is the Wald z test with the cluster-robust SE (``distribution="normal"``) or the t
    test with Satterthwaite df (``"t"``, known race only). ``progress=True`` shows a bar of the
    replications on stderr (silent by default).

    ``attenuation`` is the imputed-race attenuation :math:`\lambda = a_R + a_M - 1` of
    :func:`evalkit.power.power_disparity` (its result's ``attenuation``). ``attenuation < 1``
    simulates imputed race with the minority accuracy the analytic model maps to that
    :math:`\lambda` (two-group identity: :math:`a_M = (\lambda n_R + n_M)/(n_R + n_M)`), so MC and
    analytic power describe the same design. It may be combined with ``race_accuracy`` only
    if the two agree; ``1`` (default) means known race unless ``race_accuracy`` is given.
    """
    check_option(alternative, "alternative", ("two-sided", "larger", "smaller"))
    check_option(distribution, "distribution", ("normal", "t"))
    design = dict(design)
    race_accuracy = design.get("race_accuracy")
    check_scalar(attenuation, "attenuation", Real, min_val=0.02, max_val=1, include_min=False)
    n_r0, n_m0 = _check_n(n_reference, "n_reference"), _check_n(n_minority, "n_minority")
    if race_accuracy is not None:
        if not (isinstance(race_accuracy, Real) and not isinstance(race_accuracy, bool)):
            raise SpecificationError(f"The simulation takes 'race_accuracy' as one float (minority-group accuracy). "
                                     f"Got {race_accuracy!r}.")
        lam_ra = _race_lambda(race_accuracy, n_r0, n_m0)[0]
        if attenuation != 1 and abs(attenuation - lam_ra) > 1e-9:
            raise SpecificationError(
                f"attenuation={attenuation:g} contradicts race_accuracy={race_accuracy:g}, which implies attenuation "
                f"lambda = {lam_ra:.6g}. Give only one of them (attenuation is derived from race_accuracy).")
    elif attenuation < 1:
        design["race_accuracy"] = (attenuation * n_r0 + n_m0) / (n_r0 + n_m0)
    sgn = 1.0 if higher_is_better else -1.0
    pm1 = p_minority + sgn * change
    if not 0 <= pm1 <= 1:
        raise SpecificationError(f"Impossible target: change={change:g} puts the minority post rate at {pm1:.4g}.")
    draws = simulate_disparity_did(n_reference, n_minority, p_reference, p_minority, p_minority_post=pm1,
                                   higher_is_better=higher_is_better, n_reps=n_reps, seed=seed, progress=progress,
                                   **design)
    stat = draws["estimate"].to_numpy() / draws["std_error"].to_numpy()
    a = alpha / 2 if alternative == "two-sided" else alpha
    if distribution == "t":
        if design.get("race_accuracy") is not None:
            raise SpecificationError("distribution='t' is available for known race only (race_accuracy=None, "
                                     "attenuation=1); use distribution='normal' with imputed race.")
        crit = stats.t.isf(a, draws["df"].to_numpy())
    else:
        crit = stats.norm.isf(a)
    if alternative == "two-sided":
        rej = np.abs(stat) > crit
    elif alternative == "larger":
        rej = stat > crit
    else:
        rej = stat < -crit
    p = float(rej.mean())
    return MonteCarloPower(power=p, mc_se=math.sqrt(max(p * (1 - p), 1e-12) / n_reps), n_reps=n_reps,
                           mean_estimate=float(draws["estimate"].mean()), sd_estimate=float(draws["estimate"].std(ddof=1)),
                           mean_se=float(draws["std_error"].mean()),
                           test=f"Wald {'z' if distribution == 'normal' else 't (Satterthwaite df)'} with cluster-robust SE, "
                                f"{alternative}, alpha={alpha:g}",
                           seed=seed if isinstance(seed, int) else None, draws=draws)
