"""Immutable results of :func:`evalkit.staggered.att_gt` and of its aggregations."""
from __future__ import annotations

from dataclasses import dataclass
from types import MappingProxyType

import numpy as np
import pandas as pd
from scipy import stats

from .._validation import as_generator, check_option, check_scalar
from ..errors import EstimationError, SpecificationError
from ..results import EffectResult, tidy_table
from ._aggregate import AggregationDesign, aggregate_cells
from ._bootstrap import BOOT_WEIGHTS, cluster_sums, multiplier_draws, sup_t_critical_value

__all__ = ["ATTgtResult", "AggregateResult", "WaldTest", "AGGREGATIONS"]

AGGREGATIONS = ("simple", "group", "dynamic", "calendar")
_COMPONENT_COLUMN = {"event_time": "event_time", "group": "cohort", "time": "time"}


@dataclass(frozen=True)
class WaldTest:
    """A chi-squared Wald test (``statistic``, ``df``, ``p_value``) of the listed ``terms`` = 0."""

    statistic: float
    df: int
    p_value: float
    terms: tuple[str, ...]
    description: str = ""

    def __str__(self) -> str:
        return f"{self.description}: chi2({self.df}) = {self.statistic:.4f}, p = {self.p_value:.4g}"


def _cell_table(rows, est: np.ndarray, se: np.ndarray, axis, level: float) -> pd.DataFrame:
    """Tidy ATT(g,t) table; ``rows`` are (g, t, base, post, n_treated, n_control, is_reference) codes."""
    terms = [f"ATT({axis.label(r[0])},{axis.label(r[1])})" for r in rows]
    table = tidy_table(terms, est, se, None, level)
    table.insert(1, "cohort", [axis.label(r[0]) for r in rows])
    table.insert(2, "time", [axis.label(r[1]) for r in rows])
    table.insert(3, "event_time", np.array([r[1] - r[0] for r in rows], dtype=np.int64))
    table.insert(4, "base_period", [axis.label(r[2]) for r in rows])
    table.insert(5, "post", np.array([r[3] for r in rows], dtype=bool))
    table.insert(6, "n_treated", np.array([r[4] for r in rows], dtype=np.int64))
    table.insert(7, "n_control", np.array([r[5] for r in rows], dtype=np.int64))
    return table


def _aggregate_table(comps, est: np.ndarray, se: np.ndarray, axis, kind: str, level: float) -> pd.DataFrame:
    """Tidy table of an aggregation: the overall row, then one row per component (cohort, time or event time)."""
    terms, cols = [], {"event_time": [], "cohort": [], "time": []}
    for label, val in comps:
        for c in cols:
            cols[c].append(None)
        if val is None:
            terms.append(f"ATT ({kind})")
            continue
        col = _COMPONENT_COLUMN[label]
        if col == "event_time":
            cols[col][-1] = int(val)
            terms.append(f"e={int(val)}")
        else:
            cols[col][-1] = axis.label(val)
            terms.append(f"{col}={axis.label(val)}")
    table = tidy_table(terms, est, se, None, level)
    pos = 1
    for c in ("cohort", "time", "event_time"):
        if any(v is not None for v in cols[c]):
            present = [v for v in cols[c] if v is not None]
            if c == "event_time" or all(isinstance(v, (int, np.integer)) for v in present):
                vals = pd.array(cols[c], dtype="Int64")
            else:
                vals = pd.Series(cols[c], dtype=object)
            table.insert(pos, c, vals)
            pos += 1
    return table

def _readonly(a: np.ndarray) -> np.ndarray:
    a = np.array(a, dtype=float, copy=True)
    a.setflags(write=False)
    return a


def _se_from_if(S: np.ndarray, n: int) -> np.ndarray:
    """Standard errors from (cluster-summed) influence functions: sqrt(sum_c S_c^2) / n."""
    return np.sqrt(np.sum(S**2, axis=0)) / n


def _bands(table: pd.DataFrame, S: np.ndarray, n: int, n_boot: int, kind: str, rng, level: float, rows=None):
    """Add sup-t simultaneous band columns using a multiplier bootstrap of S (rows: the band's terms)."""
    est = table["estimate"].to_numpy()
    se = table["std_error"].to_numpy()
    rows = np.arange(len(table)) if rows is None else rows
    lo = np.full(len(table), np.nan)
    hi = np.full(len(table), np.nan)
    crit = float("nan")
    if n_boot > 0 and rows.size:
        draws = multiplier_draws(S[:, rows], n, n_boot, rng, kind)
        crit = sup_t_critical_value(draws, se[rows], level)
        lo[rows] = est[rows] - crit * se[rows]
        hi[rows] = est[rows] + crit * se[rows]
    table = table.copy()
    table["conf_low_simul"] = lo
    table["conf_high_simul"] = hi
    return table, crit


class _StaggeredBase(EffectResult):
    def __post_init__(self) -> None:
        super().__post_init__()
        object.__setattr__(self, "extra", MappingProxyType(dict(self.extra)))

    @property
    def influence_function(self) -> np.ndarray:
        """Unit-level influence functions, ``(n_units, n_terms)`` (read-only); with repeated cross-sections
        (``panel=False``) one row per observation."""
        return self.extra["psi"]


@dataclass(frozen=True, repr=False)
class ATTgtResult(_StaggeredBase):
    """Group-time average treatment effects ATT(g, t) with influence-function inference.

    ``to_frame()`` has one row per (cohort, time) cell: ``term, cohort, time, event_time, base_period,
    post, n_treated, n_control, estimate, std_error, statistic, p_value, conf_low, conf_high`` and,
    when bootstrapped, the simultaneous band ``conf_low_simul, conf_high_simul``. The headline
    properties (``estimate`` ...) refer to the first cell; use :meth:`aggregate` for summaries.
    """

    def __repr__(self) -> str:
        who = (f"{self.sample.n_units:,} units" if self.sample.n_units is not None
               else f"{self.sample.n_obs:,} observations")
        return f"<ATTgtResult: {len(self.table)} ATT(g,t) cells, {self.conventions.estimator}, {who}>"

    def _design(self) -> AggregationDesign:
        x = self.extra
        return AggregationDesign(att=self.table["estimate"].to_numpy(dtype=float), psi=x["psi"], g=x["g_code"],
                                 t=x["t_code"], unit_cohort=x["unit_cohort"], unit_w=x["unit_w"],
                                 last_period=int(x["n_periods"]) - 1)

    def aggregate(self, kind: str = "simple", *, min_e: int | None = None, max_e: int | None = None,
                  balance_e: int | None = None, n_boot: int | None = None, boot_weights: str | None = None,
                  seed: int | np.random.Generator | None = None, level: float | None = None) -> "AggregateResult":
        r"""Aggregate the ATT(g,t) cells (as R ``did::aggte``).

        Parameters
        ----------
        kind : {"simple", "group", "dynamic", "calendar"}, default="simple"
            * ``"simple"``: post-treatment cells (:math:`t \ge g`) averaged with weights :math:`P(G=g)`;
            * ``"group"``: per cohort, the plain mean of its post-treatment cells; overall =
              :math:`P(G=g)`-weighted mean over cohorts;
            * ``"dynamic"``: per event time :math:`e = t - g`, cells averaged with weights
              :math:`P(G=g)`; overall = plain mean over :math:`e \ge 0`;
            * ``"calendar"``: per period, post-treatment cells with :math:`g \le t` averaged with
              weights :math:`P(G=g)`; overall = plain mean over periods.
        min_e, max_e : int or None, default=None
            Event-time window (periods) for ``"dynamic"``; ``max_e`` also caps the cells used by
            ``"simple"`` and ``"group"`` (as in R).
        balance_e : int or None, default=None
            ``"dynamic"`` only: keep cohorts observed for at least ``balance_e`` periods after entry
            (a composition-balanced event study).
        n_boot, boot_weights, seed, level : default=None
            Multiplier bootstrap for the simultaneous band of the components; ``None`` inherits the
            values given to :func:`att_gt`.

        Returns
        -------
        AggregateResult
            ``.estimate``/``.std_error`` are the overall aggregate; ``.to_frame()`` lists the overall
            row first, then the components.

        Notes
        -----
        Influence functions (as R ``did``): :math:`\psi^{agg}_i = \sum_j w_j \psi_{ij} + \sum_j
        \hat\theta_j \, \partial w_j` where the second term accounts for estimating the weights
        :math:`\hat P(G=g)` from the sample; standard errors are
        :math:`\sqrt{\sum_c (\sum_{i \in c} \psi^{agg}_i)^2} / n` (``c`` = unit, or cluster).
        """
        check_option(kind, "kind", AGGREGATIONS, "aggregate")
        for name, v in (("min_e", min_e), ("max_e", max_e), ("balance_e", balance_e)):
            if v is not None:
                check_scalar(v, name, (int, np.integer))
        if kind != "dynamic" and (min_e is not None or balance_e is not None):
            raise SpecificationError(f"min_e and balance_e apply to kind='dynamic' only. Got kind={kind!r}.")
        x = self.extra
        n_boot = x["n_boot"] if n_boot is None else check_scalar(n_boot, "n_boot", (int, np.integer), min_val=0)
        boot_weights = x["boot_weights"] if boot_weights is None else check_option(boot_weights, "boot_weights", BOOT_WEIGHTS)
        level = self.conventions.level if level is None else check_scalar(level, "level", float, min_val=0, max_val=1, include_min=False, include_max=False)
        if seed is not None:
            rng = as_generator(seed)
        elif x["seed_seq"] is not None:  # reproducible: one stream per aggregation kind
            rng = np.random.default_rng(np.random.SeedSequence(x["seed_seq"].entropy, spawn_key=(1 + AGGREGATIONS.index(kind),)))
        else:
            rng = np.random.default_rng()

        d = self._design()
        real = ~x["is_reference"]
        if kind != "dynamic":  # reference cells of a universal base period carry no information
            d = AggregationDesign(d.att[real], d.psi[:, real], d.g[real], d.t[real], d.unit_cohort, d.unit_w, d.last_period)
        comps, est, inf = aggregate_cells(d, kind, min_e=min_e, max_e=max_e, balance_e=balance_e)
        n = inf.shape[0]
        S = cluster_sums(inf, x["cluster"])
        se = _se_from_if(S, n)
        se = np.where(se > 1e-14 * max(1.0, np.nanmax(np.abs(est))), se, np.nan)  # zero-IF rows (reference)
        axis = x["time_axis"]
        table = _aggregate_table(comps, est, se, axis, kind, level)
        comp_rows = np.arange(1, len(table))
        table, crit = _bands(table, S, n, n_boot, boot_weights, rng, level, comp_rows)
        conv = self.conventions
        notes = tuple(conv.notes) + ((f"Simultaneous band over the {len(comp_rows)} components: sup-t critical value "
                                      f"{crit:.4f} from {n_boot} {boot_weights} multiplier draws.",) if n_boot > 0 and comp_rows.size else ())
        from dataclasses import replace

        conv = replace(conv, estimator=f"{conv.estimator} — aggregation '{kind}'", notes=notes)
        return AggregateResult(table=table, vcov=S.T @ S / n**2, conventions=conv, sample=self.sample,
                               extra={"psi": _readonly(inf), "kind": kind, "crit_value": crit})

    def pretrend_test(self) -> WaldTest:
        r"""Wald test that every pre-treatment ATT(g,t) (:math:`t < g`) is zero.

        :math:`W = \hat\theta_{pre}' \hat V_{pre}^{-1} \hat\theta_{pre} \sim \chi^2_{k}` with
        :math:`\hat V` the influence-function covariance (clustered if ``cluster`` was given);
        reference cells of a universal base period (fixed at 0) are excluded; a singular
        :math:`\hat V_{pre}` uses the pseudo-inverse and its rank as degrees of freedom.
        """
        fr = self.table
        pre = (~self.extra["is_reference"]) & (~fr["post"].to_numpy(dtype=bool))
        if not pre.any():
            raise EstimationError("No pre-treatment ATT(g,t) cells: the pre-trend test needs t < g cells.")
        theta = fr["estimate"].to_numpy(dtype=float)[pre]
        V = np.asarray(self.vcov)[np.ix_(pre, pre)]
        Vinv = np.linalg.pinv(V)
        rank = int(np.linalg.matrix_rank(V))
        W = float(theta @ Vinv @ theta)
        return WaldTest(W, rank, float(stats.chi2.sf(W, rank)), tuple(fr["term"][pre]),
                        "Pre-trend Wald test (all pre-treatment ATT(g,t) = 0)")

    def plot(self, ax=None, **kwargs):
        """Event-study plot of the dynamic aggregation (``self.aggregate('dynamic').plot()``)."""
        return self.aggregate("dynamic").plot(ax=ax, **kwargs)


@dataclass(frozen=True, repr=False)
class AggregateResult(_StaggeredBase):
    """An aggregation of ATT(g,t): the overall effect (first row, ``.estimate``) and its components."""

    @property
    def kind(self) -> str:
        return self.extra["kind"]

    def __repr__(self) -> str:
        return (f"<AggregateResult ({self.kind}): ATT = {self.estimate:.6g} (SE {self.std_error:.6g}), "
                f"{len(self.table) - 1} components>")

    def event_frame(self) -> pd.DataFrame:
        """The components (event times for ``'dynamic'``), without the overall row."""
        return self.table.iloc[1:].reset_index(drop=True).copy()

    def plot(self, ax=None, **kwargs):
        """Event-study plot (``kind='dynamic'`` only), with the simultaneous band when bootstrapped."""
        if self.kind != "dynamic":
            raise SpecificationError(f"plot() draws event studies: use aggregate('dynamic'). This is {self.kind!r}.")
        from ..plots import plot_event_study

        return plot_event_study(self.event_frame(), ax=ax, **kwargs)
