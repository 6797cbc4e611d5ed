"""Goodman-Bacon (2021) decomposition of the two-way fixed-effects DiD coefficient."""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd

from ..data.schema import validate_panel
from ..errors import DataError, EstimationError

__all__ = ["bacon_decomposition", "BaconDecomposition"]

_TYPES = ("treated vs never", "earlier vs later", "later vs earlier")


@dataclass(frozen=True)
class BaconDecomposition:
    """All 2x2 DiD comparisons behind a TWFE coefficient, with their weights.

    ``to_frame()``: ``type, treated, control, estimate, weight`` (weights sum to 1);
    ``twfe`` is the TWFE coefficient ``sum(weight * estimate)``, checked against a direct
    two-way within regression (``twfe_direct``).
    """

    table: pd.DataFrame
    twfe: float
    twfe_direct: float

    def __post_init__(self) -> None:
        object.__setattr__(self, "table", self.table.copy())

    def to_frame(self) -> pd.DataFrame:
        return self.table.copy()

    def by_type(self) -> pd.DataFrame:
        """Total weight and weighted-average estimate of each comparison type."""
        t = self.table
        g = t.assign(we=t["weight"] * t["estimate"]).groupby("type", sort=False)[["weight", "we"]].sum()
        g["estimate"] = g["we"] / g["weight"]
        return g[["weight", "estimate"]].reindex([x for x in _TYPES if x in g.index]).reset_index()

    def plot(self, ax=None):
        """Scatter of each 2x2 estimate against its weight, by comparison type; dashed line = TWFE."""
        from ..plots.style import PALETTE, finish_axes, new_axes

        ax = new_axes(ax)
        styles = {"treated vs never": (PALETTE["blue"], "o"), "earlier vs later": (PALETTE["vermillion"], "s"),
                  "later vs earlier": (PALETTE["black"], "^")}
        for typ, (col, mk) in styles.items():
            sub = self.table[self.table["type"] == typ]
            if len(sub):
                ax.scatter(sub["weight"], sub["estimate"], color=col, marker=mk, label=typ, zorder=3)
        ax.axhline(self.twfe, color="#555555", linestyle="--", linewidth=1.0, label=f"TWFE = {self.twfe:.4g}")
        ax.axhline(0.0, color=PALETTE["black"], linewidth=0.8)
        finish_axes(ax, title="Goodman-Bacon decomposition", xlabel="Weight", ylabel="2x2 DiD estimate")
        ax.legend(frameon=False)
        return ax


def _did(Y, units_a, units_b, post, pre):
    """2x2 DiD of mean outcomes: group a vs group b, periods post vs pre (boolean masks over T)."""
    ya, yb = Y[units_a], Y[units_b]
    return (ya[:, post].mean() - ya[:, pre].mean()) - (yb[:, post].mean() - yb[:, pre].mean())


def bacon_decomposition(data: pd.DataFrame, *, outcome: str, unit: str, time: str, cohort: str) -> BaconDecomposition:
    r"""Goodman-Bacon decomposition of the TWFE coefficient on :math:`D_{it} = 1\{t \ge G_i\}`.

    Parameters
    ----------
    data : pandas.DataFrame
        A **balanced** panel (every unit observed in every period).
    outcome, unit, time, cohort : str
        As in :func:`att_gt` (cohort: first treated period; never treated: NaN, inf or 0).

    Returns
    -------
    BaconDecomposition

    Raises
    ------
    DataError
        The panel is unbalanced, or some units are treated in the first period (the
        decomposition here is exact for balanced panels with an absorbing treatment switched on
        after the first period; drop always-treated units or use :func:`att_gt`).

    Notes
    -----
    Timing groups :math:`k` with shares :math:`n_k` and treated fractions :math:`\bar D_k`; the
    2x2 comparisons are treated vs never treated (all periods), earlier vs later treated (before
    the later group's entry) and later vs earlier treated (after the earlier group's entry, the
    "forbidden" comparison). Weights are the Goodman-Bacon (2021, Theorem 1) variance shares,
    normalised by the variance of the two-way demeaned treatment, and sum to one; the weighted
    sum equals the TWFE coefficient (checked to 1e-8 against a direct within regression).
    """
    p = validate_panel(data, outcome=outcome, unit=unit, time=time, cohort=cohort, already_treated="raise",
                       stacklevel=3)
    N, T = p.n_units, p.n_periods
    if not p.is_balanced:
        missing = N * T - p.nobs
        raise DataError(
            f"bacon_decomposition needs a balanced panel: {missing} (unit, period) rows are missing across "
            f"{N} units and {T} periods. Keep units observed in every period, or use att_gt, which handles "
            f"unbalanced panels."
        )
    Y = np.full((N, T), np.nan)
    Y[p.unit, p.time] = p.y
    G = np.full(N, np.inf)
    G[p.unit] = p.cohort
    G[~np.isfinite(G)] = np.inf
    tt = np.arange(T)
    D = (tt[None, :] >= G[:, None]).astype(float)
    Dd = D - D.mean(1, keepdims=True) - D.mean(0, keepdims=True) + D.mean()
    Yd = Y - Y.mean(1, keepdims=True) - Y.mean(0, keepdims=True) + Y.mean()
    VD = float(np.mean(Dd**2))
    if VD <= 1e-14:
        raise EstimationError("The treatment has no variation after removing unit and period effects.")
    twfe_direct = float(np.sum(Dd * Yd) / np.sum(Dd**2))

    groups = np.unique(G[np.isfinite(G)]).astype(int)
    never = ~np.isfinite(G)
    n_U = never.mean()
    share = {k: np.mean(G == k) for k in groups}
    Dbar = {k: (T - k) / T for k in groups}
    rows = []
    for k in groups:
        nk, dk = share[k], Dbar[k]
        uk = G == k
        if n_U > 0:
            nkU = nk / (nk + n_U)
            w = (nk + n_U) ** 2 * nkU * (1 - nkU) * dk * (1 - dk) / VD
            rows.append(("treated vs never", k, None, _did(Y, uk, never, tt >= k, tt < k), w))
        for l_ in groups[groups > k]:
            nl, dl = share[l_], Dbar[l_]
            ul = G == l_
            nkl = nk / (nk + nl)
            w_e = ((nk + nl) * (1 - dl)) ** 2 * nkl * (1 - nkl) * ((dk - dl) / (1 - dl)) * ((1 - dk) / (1 - dl)) / VD
            win = tt < l_
            rows.append(("earlier vs later", k, l_, _did(Y, uk, ul, win & (tt >= k), tt < k), w_e))
            w_l = ((nk + nl) * dk) ** 2 * nkl * (1 - nkl) * (dl / dk) * ((dk - dl) / dk) / VD
            rows.append(("later vs earlier", l_, k, _did(Y, ul, uk, tt >= l_, (tt >= k) & (tt < l_)), w_l))
    ax = p.time_axis
    table = pd.DataFrame(rows, columns=["type", "treated", "control", "estimate", "weight"])
    table["treated"] = [ax.label(v) for v in table["treated"]]
    table["control"] = ["never" if v is None or (isinstance(v, float) and np.isnan(v)) else ax.label(v)
                        for v in table["control"]]
    twfe = float(np.sum(table["weight"] * table["estimate"]))
    if not np.isclose(table["weight"].sum(), 1.0, atol=1e-8) or not np.isclose(twfe, twfe_direct, atol=1e-8, rtol=1e-8):
        raise EstimationError(  # pragma: no cover - a bug, not a data problem
            f"Goodman-Bacon weights sum to {table['weight'].sum():.10f} and give {twfe:.10g} vs TWFE {twfe_direct:.10g}."
        )
    return BaconDecomposition(table=table, twfe=twfe, twfe_direct=twfe_direct)
