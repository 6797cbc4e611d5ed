r"""Payout risk of a pay-for-equity contract: the distribution of the payout given sampling noise.

A contract pays according to the *measured* reduction in the (oriented) gap between a reference
group and a minority group from the baseline to the contract period. The measured reduction is
the disparity difference-in-differences :math:`\hat\Delta` of :mod:`evalkit.power`, so it has
the same planning model and variance as :func:`evalkit.power.mde_disparity`. This module
answers: with this system's sizes, rates and design, what payout should one expect if the gap
truly closes by a given share, and how likely is a payout when nothing changes (the false
payout probability)?
"""
from __future__ import annotations

import math
from dataclasses import dataclass, field
from numbers import Integral, Real

import numpy as np
import pandas as pd
from scipy import stats

from .._validation import check_option, check_scalar
from ..errors import SpecificationError
from ..power.analytic import _MIN_GAP_DEFAULT, _common, _post_rates, _variance

__all__ = ["payout_risk", "linear_schedule", "PayoutRisk"]

_GRID = 200_001  # equiprobable normal quantiles for the analytic payout distribution
_QUANTILES = (0.05, 0.25, 0.5, 0.75, 0.95)


def linear_schedule(start: float, full: float, *, max_payout: float = 1.0) -> tuple[tuple[float, float], ...]:
    """Payout table paying nothing below ``start``, rising linearly to ``max_payout`` at ``full``, capped.

    ``start`` and ``full`` are measured reductions on the schedule's scale (share of the
    baseline gap by default).

    Examples
    --------
    >>> linear_schedule(0.1, 0.5)
    ((0.1, 0.0), (0.5, 1.0))
    """
    check_scalar(start, "start", Real)
    check_scalar(full, "full", Real)
    check_scalar(max_payout, "max_payout", Real, min_val=0, include_min=False)
    if not full > start:
        raise SpecificationError(f"linear_schedule needs full > start. Got start={start!r}, full={full!r}.")
    return ((float(start), 0.0), (float(full), float(max_payout)))


class _Schedule:
    """A payout schedule: a callable, or a (reduction -> payout) table interpolated linearly, flat outside."""

    def __init__(self, schedule):
        self.table = None
        if callable(schedule):
            self.func = schedule
            self.max = float("nan")
            self.label = getattr(schedule, "__name__", "callable")
            return
        try:
            items = list(schedule.items()) if isinstance(schedule, dict) else [tuple(p) for p in schedule]
            xs = np.array([float(x) for x, _ in items])
            ys = np.array([float(y) for _, y in items])
        except (TypeError, ValueError):
            raise SpecificationError("'schedule' must be a callable (measured reduction -> payout) or a table of "
                                     f"(reduction, payout) pairs, e.g. ((0.1, 0.0), (0.5, 1.0)). Got {schedule!r}.") from None
        if xs.size == 0 or not (np.isfinite(xs).all() and np.isfinite(ys).all()):
            raise SpecificationError("'schedule' table must hold at least one finite (reduction, payout) pair.")
        order = np.argsort(xs, kind="stable")
        xs, ys = xs[order], ys[order]
        if np.any(np.diff(xs) == 0):
            raise SpecificationError(f"'schedule' table repeats a reduction ({xs[np.r_[np.diff(xs) == 0, False]][0]:g}); "
                                     "for a jump, use a callable or two close reductions.")
        self.table = tuple(zip(xs.tolist(), ys.tolist()))
        self.max = float(ys.max())
        self.func = lambda x: np.interp(x, xs, ys)
        self.label = "table " + ", ".join(f"{x:g}->{y:g}" for x, y in self.table)

    def __call__(self, x: np.ndarray) -> np.ndarray:
        x = np.asarray(x, dtype=float)
        try:
            y = np.asarray(self.func(x), dtype=float)
            if y.shape != x.shape:
                raise ValueError
        except Exception:  # not vectorised: evaluate element by element
            y = np.array([float(self.func(float(v))) for v in x.ravel()]).reshape(x.shape)
        if not np.all(np.isfinite(y)):
            raise SpecificationError("The payout 'schedule' returned a non-finite payout; it must map every measured "
                                     "reduction (any real number) to a finite payout.")
        return y


@dataclass(frozen=True)
class PayoutRisk:
    """Payout distribution under each scenario (see :func:`payout_risk`).

    ``table`` has one row per scenario and method: ``scenario, method, true_reduction,
    true_change_pp, mean_measured, sd_measured, expected_payout, p_payout_positive,
    p_max_payout, q05 ... q95, n_sims`` (payouts in the schedule's units times ``amount``;
    ``mean_measured``/``sd_measured`` on the schedule's scale).
    """

    table: pd.DataFrame
    baseline_gap: float
    attenuation: float
    conventions: dict
    curves: dict = field(repr=False)
    draws: pd.DataFrame | None = field(default=None, repr=False)

    @property
    def false_payout_probability(self) -> float:
        """P(payout > 0) when the gap does not change (analytic)."""
        t = self.table
        return float(t.loc[(t["scenario"] == "no change") & (t["method"] == "analytic"), "p_payout_positive"].iloc[0])

    def to_frame(self) -> pd.DataFrame:
        return self.table.copy()

    def summary(self):
        """A :class:`evalkit.results.Summary` of the payout table and its conventions."""
        from ..results import Summary

        c = self.conventions
        head = [("Baseline gap (pp, + = minority disadvantaged)", f"{100 * self.baseline_gap:.2f}"),
                ("Schedule", f"{c['schedule']} on {c['scale']}"),
                ("Measured reduction", "normal approximation N(change, SE^2), SE from the disparity-DiD planning model"),
                ("Race attenuation", f"{self.attenuation:.3f}" + (" (corrected)" if c["corrected"] else " (not corrected)"))]
        return Summary("Payout risk of a pay-for-equity contract", self.table, head, list(c["notes"]))

    def __repr__(self) -> str:
        return (f"<PayoutRisk: false payout probability {self.false_payout_probability:.3f}; "
                f"{len(self.table)} scenario x method rows>")

    def plot(self, ax=None):
        """Exceedance curves P(payout >= x) per scenario (analytic solid, simulation dashed); returns the Axes."""
        from ..plots.style import color_cycle, finish_axes, house_style, new_axes

        ax = new_axes(ax)
        names = list(self.curves)
        cols = color_cycle(len(names))
        with house_style():
            for col, name in zip(cols, names):
                for method, ls in (("analytic", "-"), ("simulation", "--")):
                    v = self.curves[name].get(method)
                    if v is None:
                        continue
                    v = np.sort(v)
                    surv = 1.0 - np.arange(v.size) / v.size  # P(payout >= v_i)
                    ax.step(v, surv, where="post", color=col, linestyle=ls, label=f"{name} ({method})")
            ax.set_ylim(-0.02, 1.02)
            ax.legend(loc="best", fontsize=8)
        finish_axes(ax, title="Payout distribution under each scenario", xlabel=f"payout (x {self.conventions['amount']:g})",
                    ylabel="P(payout >= x)")
        return ax


def payout_risk(
    n_reference: float | None = None,
    n_minority: float | None = None,
    p_reference: float | None = None,
    p_minority: float | None = None,
    *,
    schedule,
    reduction: float | tuple = 0.5,
    scale: str = "share_of_gap",
    amount: float = 1.0,
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
    corrected: bool = True,
    higher_is_better: bool = True,
    who_improves: str = "minority",
    variance: str = "alternative",
    quantiles: tuple = _QUANTILES,
    min_gap: float = _MIN_GAP_DEFAULT,
    n_sims: int | None = None,
    seed: int | np.random.Generator | None = None,
    progress: bool | None = None,
) -> PayoutRisk:
    r"""Distribution of a contract's payout under a true gap reduction and under no change.

    Parameters
    ----------
    n_reference, n_minority, p_reference, p_minority
        Group sizes and baseline rates, as in :func:`evalkit.power.mde_disparity` (or
        ``n_total`` and ``shares``).
    schedule : callable or table
        Payout as a function of the *measured* reduction in the gap: a callable (vectorised or
        not) or a table of ``(reduction, payout)`` pairs (sequence or dict) interpolated linearly
        between the points and flat outside them (so the last payout is the cap); see
        :func:`linear_schedule`. Payouts are shares of the contract amount (or any unit).
    reduction : float or sequence of float, default=0.5
        True improvement scenario(s): the share of the baseline gap that truly closes. The
        "no change" scenario is always added.
    scale : {"share_of_gap", "pp"}, default="share_of_gap"
        The schedule's argument: measured reduction as a share of the baseline gap, or in
        percentage points.
    amount : float, default=1
        Multiplies every payout (e.g. the contract's dollars at stake).
    rho, icc, cluster_size, cluster_size_cv, practice_persistence, shared_practices, pre_years, post_years
        Design, as in :func:`evalkit.power.mde_disparity`.
    race_accuracy : float or (float, float), optional
        Imputed race, as in :func:`evalkit.power.mde_disparity` (attenuation
        :math:`\lambda = a_R + a_M - 1`).
    corrected : bool, default=True
        The contract measures the gap change with the attenuation correction (divides by
        :math:`\lambda`, as :func:`evalkit.equity.disparity_did` does). ``False``: it uses the
        uncorrected probability-weighted estimate, whose mean is :math:`\lambda` times the true change.
    higher_is_better : bool, default=True
    who_improves : {"minority", "reference", "both"}, default="minority"
        Who moves under a true improvement (as in :func:`evalkit.power.power_disparity`).
    variance : {"alternative", "null"}, default="alternative"
        Variance of the measured change under a true improvement: at the post-period rates the
        scenario implies (default) or at baseline.
    quantiles : tuple of float, default=(0.05, 0.25, 0.5, 0.75, 0.95)
        Payout quantiles reported as columns named by the exact percentile, integer part padded
        to two digits: ``q05``, ``q50``, ``q02.5`` (0.025), ``q97.5``, ``q100``. Each at most once.
    min_gap : float, default=0.005
        With ``scale="share_of_gap"`` the baseline gap must exceed this.
    n_sims : int, optional
        Also simulate the full design ``n_sims`` times per scenario with
        :func:`evalkit.power.simulate_disparity_did` (practices of one group with a whole number of
        patients, known race or a single ``race_accuracy``) and report the simulated payout
        distribution as a cross-check (``method="simulation"`` rows; draws in ``.draws``).
    seed : int or Generator, optional
        Seed of the simulation (scenario streams are spawned from it).
    progress : bool, optional
        ``True`` shows a bar per simulated scenario on stderr (default: silent; the draws do not
        depend on it).

    Returns
    -------
    PayoutRisk
        ``.table`` (one row per scenario and method), ``.false_payout_probability``,
        ``.summary()``, ``.plot()``.

    Notes
    -----
    The measured change in the oriented gap is approximated as
    :math:`\hat\Delta \sim N(\Delta, \mathrm{SE}^2)` with :math:`\mathrm{SE}` from the
    disparity-DiD variance of :mod:`evalkit.power.analytic` (true-gap scale; under imputed race it
    includes the :math:`1/\lambda` inflation; uncorrected, mean and SE are both multiplied by
    :math:`\lambda`). The measured reduction is :math:`\hat\Delta/G_0` with :math:`G_0` the
    planning baseline gap (held fixed: the contract's baseline gap is treated as known), or
    :math:`100\hat\Delta` pp. The payout distribution is that of :math:`\text{amount}\times
    f(\hat\Delta/G_0)` evaluated on 200,001 equiprobable normal quantiles, so expected payout,
    quantiles and :math:`P(\text{payout} > 0)` are accurate to ~1e-5 for any schedule, monotone
    or not. The **false payout probability** is :math:`P(\text{payout}>0)` under no change; for a
    schedule paying from a measured reduction :math:`s` it is :math:`\Phi(-s G_0/\mathrm{SE}_0)`.

    Examples
    --------
    >>> r = payout_risk(4000, 1000, 0.708, 0.638, rho=0.5, schedule=linear_schedule(0.1, 0.5))
    >>> round(r.false_payout_probability, 3)
    0.339
    """
    sched = _Schedule(schedule)
    check_option(scale, "scale", ("share_of_gap", "pp"))
    check_option(variance, "variance", ("alternative", "null"))
    check_option(who_improves, "who_improves", ("minority", "reference", "both"))
    check_scalar(amount, "amount", Real)
    if not isinstance(corrected, (bool, np.bool_)):
        raise SpecificationError(f"The 'corrected' parameter must be True or False. Got {corrected!r}.")
    qs = tuple(float(q) for q in quantiles)
    for q in qs:
        check_scalar(q, "quantiles", Real, min_val=0, max_val=1)
    qnames = [_qname(q) for q in qs]
    dup = sorted({n for n in qnames if qnames.count(n) > 1})
    if dup:
        raise SpecificationError(f"The 'quantiles' parameter has repeated values ({', '.join(dup)}): each quantile "
                                 "becomes one output column, so give each at most once.")
    reds = (reduction,) if isinstance(reduction, Real) else tuple(reduction)
    for r in reds:
        check_scalar(r, "reduction", Real)
    d, pr, pm, gap = _common(n_reference, n_minority, p_reference, p_minority, n_total=n_total, shares=shares, rho=rho,
                             icc=icc, cluster_size=cluster_size, cluster_size_cv=cluster_size_cv,
                             practice_persistence=practice_persistence, shared_practices=shared_practices,
                             pre_years=pre_years, post_years=post_years, race_accuracy=race_accuracy,
                             higher_is_better=higher_is_better, alpha=0.05, alternative="two-sided",
                             distribution="normal", min_gap=min_gap)
    if gap <= min_gap:
        raise SpecificationError(f"The oriented baseline gap is {100 * gap:.3g} pp (<= min_gap={100 * min_gap:.3g} pp): the "
                                 "minority group is not disadvantaged, so a gap reduction (and a share-of-gap payout) is "
                                 "undefined. Check higher_is_better, or do not put this measure in the contract.")
    hib = bool(higher_is_better)
    scenarios = [("no change", 0.0)] + [(f"reduction {r:g}", float(r)) for r in reds if r != 0]
    lam = d.lam
    mult = 1.0 if corrected else lam
    to_scale = (1.0 / gap) if scale == "share_of_gap" else 100.0
    u = (np.arange(_GRID) + 0.5) / _GRID
    zq = stats.norm.ppf(u)
    rows, curves, sims = [], {}, []
    for name, red in scenarios:
        change = red * gap
        pr1, pm1 = _post_rates(pr, pm, None, change, hib, who_improves)
        for p, nm in ((pr1, "reference"), (pm1, "minority")):
            if not 0 <= p <= 1:
                raise SpecificationError(f"Impossible scenario: reduction={red:g} of the gap puts the {nm} group's post "
                                         f"rate at {p:.4g}, outside [0, 1].")
        var = _variance(d, pr, pr1, pm, pm1)[0] if variance == "alternative" else _variance(d, pr, pr, pm, pm)[0]
        mean_x = mult * change * to_scale
        sd_x = mult * math.sqrt(var) * to_scale
        pay = amount * sched(mean_x + sd_x * zq)
        curves[name] = {"analytic": pay[:: max(1, _GRID // 4000)].copy()}
        rows.append(_row(name, "analytic", red, change, mean_x, sd_x, pay, sched.max * amount, qs, np.nan))
    if n_sims is not None:
        sims = _simulate(d, pr, pm, gap, hib, scenarios, who_improves, n_sims, seed, sched, amount, mult / lam, to_scale,
                         qs, rows, curves, race_accuracy, progress)
    table = pd.DataFrame(rows)
    notes = [f"Measured reduction ~ normal with the disparity-DiD SE of the planning model (variance='{variance}'); "
             f"baseline gap held fixed at {100 * gap:.2f} pp.",
             "p_max_payout is reported for table schedules (NaN for a callable)."]
    if lam < 1:
        notes.append(f"Imputed race: lambda={lam:.3f}; " + ("the measured change is divided by lambda (unbiased, SE x 1/lambda "
                     "variance inflation)." if corrected else "the measured change is NOT corrected: its mean is lambda x the true change."))
    conv = dict(schedule=sched.label, scale=scale, amount=float(amount), corrected=bool(corrected), variance=variance,
                who_improves=who_improves, n_sims=n_sims, seed=seed if isinstance(seed, Integral) else None,
                grid=_GRID, notes=tuple(notes))
    draws = pd.concat(sims, ignore_index=True) if sims else None
    return PayoutRisk(table=table, baseline_gap=gap, attenuation=lam, conventions=conv, curves=curves, draws=draws)


def _qname(q):
    """Column name of quantile ``q``: the exact percentile, integer part padded to two digits (q05, q02.5, q97.5, q100)."""
    pct = f"{round(100 * q, 10):.10g}"
    whole, _, frac = pct.partition(".")
    return f"q{int(whole):02d}" + (f".{frac}" if frac else "")


def _row(name, method, red, change, mean_x, sd_x, pay, pmax, qs, n_sims):
    out = dict(scenario=name, method=method, true_reduction=red, true_change_pp=100 * change, mean_measured=mean_x,
               sd_measured=sd_x, expected_payout=float(pay.mean()), p_payout_positive=float((pay > 0).mean()),
               p_max_payout=float((pay >= pmax - 1e-12 * max(1.0, abs(pmax))).mean()) if np.isfinite(pmax) else np.nan)
    qv = np.quantile(pay, qs) if len(qs) else []
    for q, v in zip(qs, qv):
        out[_qname(q)] = float(v)
    out["n_sims"] = n_sims
    return out


def _simulate(d, pr, pm, gap, hib, scenarios, who_improves, n_sims, seed, sched, amount, corr, to_scale, qs, rows,
              curves, race_accuracy, progress=None):
    from ..power.simulate import simulate_disparity_did

    check_scalar(n_sims, "n_sims", Integral, min_val=2)
    if d.shared or isinstance(d.k, tuple) or d.cv > 0:
        raise SpecificationError("The simulation cross-check covers separate practices of one common size "
                                 "(no shared_practices, cluster_size pair or cluster_size_cv); use n_sims=None.")
    if race_accuracy is not None and not isinstance(race_accuracy, Real):
        raise SpecificationError("The simulation cross-check takes race_accuracy as the minority accuracy a_M (a float).")
    if abs(d.k - round(d.k)) > 1e-9:
        raise SpecificationError(f"The simulation needs a whole number of patients per practice; cluster_size={d.k:g}.")
    streams = np.random.SeedSequence(seed if isinstance(seed, Integral) else None).spawn(len(scenarios)) \
        if not isinstance(seed, np.random.Generator) else [seed] * len(scenarios)
    out = []
    for (name, red), ss in zip(scenarios, streams):
        change = red * gap
        pr1, pm1 = _post_rates(pr, pm, None, change, hib, who_improves)
        rng = ss if isinstance(ss, np.random.Generator) else np.random.default_rng(ss)
        sim = simulate_disparity_did(int(round(d.n_r)), int(round(d.n_m)), pr, pm, p_reference_post=pr1,
                                     p_minority_post=pm1, rho=d.rho, icc=d.icc, cluster_size=int(round(d.k)),
                                     practice_persistence=d.rho_c, pre_years=d.m, post_years=d.r,
                                     race_accuracy=race_accuracy, higher_is_better=hib, n_reps=int(n_sims), seed=rng,
                                     progress=progress)
        x = sim["estimate"].to_numpy() * corr * to_scale  # corr = 1/lambda when corrected, 1 otherwise
        pay = amount * sched(x)
        curves[name]["simulation"] = pay
        rows.append(_row(name, "simulation", red, change, float(x.mean()), float(x.std(ddof=1)), pay, sched.max * amount,
                         qs, int(n_sims)))
        out.append(pd.DataFrame({"scenario": name, "measured": x, "payout": pay}))
    return out
