"""Power curves and MDE by measure (house style; return the Axes)."""
from __future__ import annotations

import numpy as np
import pandas as pd

from ..errors import DataError
from ..plots.style import LINESTYLES, MARKERS, color_cycle, finish_axes, house_style, new_axes
from .detect import detectability

__all__ = ["plot_power_curves", "plot_mde"]


def plot_power_curves(baseline: pd.DataFrame, system, *, group: str | None = None, reductions=None, power: float = 0.8,
                      ax=None, **kwargs):
    """Power to detect each gap reduction (share of the baseline gap), one curve per measure x group.

    ``kwargs`` go to :func:`evalkit.equity.detectability`. Returns the Axes.
    """
    reductions = np.linspace(0.05, 1.0, 20) if reductions is None else np.asarray(reductions, float)
    if system not in set(baseline["system"]):
        raise DataError(f"System {system!r} not in 'baseline'.")
    base = baseline[baseline["system"] == system]
    curves: dict[tuple, list] = {}
    for red in reductions:
        det = detectability(base, reduction=float(red), power=power, **kwargs)
        if group is not None:
            det = det[det["group"] == group]
        for _, r in det.iterrows():
            curves.setdefault((r["measure"], r["group"]), []).append(r["power"])
    ax = new_axes(ax)
    with house_style():
        cols = color_cycle(max(len(curves), 1))
        for i, ((m, g), ys) in enumerate(curves.items()):
            if np.all(~np.isfinite(np.asarray(ys, float))):
                continue
            ax.plot(100 * reductions, ys, color=cols[i], linestyle=LINESTYLES[i % len(LINESTYLES)],
                    marker=MARKERS[i % len(MARKERS)], markevery=4, label=f"{m} ({g})")
        ax.axhline(power, color="#777777", linewidth=0.8, linestyle=":")
        ax.set_ylim(0, 1.02)
        ax.legend(loc="lower right")
    finish_axes(ax, title=f"Power to detect a gap reduction: {system}", xlabel="Gap reduction (% of baseline gap)",
                ylabel="Power")
    return ax


def plot_mde(detect: pd.DataFrame, *, system=None, ax=None):
    """MDE as a share of the baseline gap by measure and group (from :func:`detectability`); returns the Axes."""
    d = detect if system is None else detect[detect["system"] == system]
    d = d[np.isfinite(d["share_of_gap"].astype(float))]
    ax = new_axes(ax)
    labels = [f"{r.system} | {r.measure} | {r.group}" if system is None else f"{r.measure} | {r.group}" for r in d.itertuples()]
    with house_style():
        cols = [color_cycle(2)[0] if c else color_cycle(2)[1] for c in d["candidate"]]
        y = np.arange(len(d))
        ax.barh(y, d["share_of_gap"], color=cols)
        ax.set_yticks(y, labels)
        ax.axvline(1.0, color="#777777", linewidth=0.8, linestyle=":")
    finish_axes(ax, title="MDE as a share of the baseline gap" + (f": {system}" if system else ""),
                xlabel="MDE / baseline gap (blue = candidate)", ylabel="")
    return ax
