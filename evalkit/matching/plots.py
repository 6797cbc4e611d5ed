"""Love plot (SMD before/after) and propensity-score overlap, in the evalkit house style."""
from __future__ import annotations

import numpy as np

from ..plots.style import PALETTE, finish_axes, house_style, new_axes

__all__ = ["love_plot", "overlap_plot"]


def love_plot(result, ax=None, *, threshold: float = 0.1, absolute: bool = True):
    """Standardised mean differences per covariate before (open circles) and after (filled);
    dashed lines at +/- ``threshold``. Returns the Axes."""
    bal = result.balance()
    before = bal["smd_before"].to_numpy()
    after = bal["smd_after"].to_numpy()
    if absolute:
        before, after = np.abs(before), np.abs(after)
    names = list(bal.index)
    with house_style():
        ax = new_axes(ax, figsize=(6.4, 0.32 * len(names) + 1.2))
        yy = np.arange(len(names))[::-1]
        ax.scatter(before, yy, facecolors="none", edgecolors=PALETTE["vermillion"], marker="o", label="Before", zorder=3)
        ax.scatter(after, yy, color=PALETTE["blue"], marker="s", label="After", zorder=3)
        for b, a, y in zip(before, after, yy):
            ax.plot([b, a], [y, y], color="#999999", linewidth=0.6, zorder=2)
        ax.axvline(0, color=PALETTE["black"], linewidth=0.8)
        for s in ((threshold,) if absolute else (-threshold, threshold)):
            ax.axvline(s, color="#777777", linestyle="--", linewidth=0.8)
        ax.set_yticks(yy)
        ax.set_yticklabels(names)
        ax.legend(loc="lower right")
        label = "Absolute standardised mean difference" if absolute else "Standardised mean difference"
        denom = "treated SD, unmatched" if result.estimand == "ATT" else "pooled SD, unmatched"
        finish_axes(ax, title=f"Covariate balance ({result.method})", xlabel=f"{label} ({denom})")
        ax.grid(True, axis="x", color="#d9d9d9", linewidth=0.6)
    return ax


def overlap_plot(result, ax=None, bins: int = 30):
    """Distribution of the distance (propensity score) by group, before (outline) and after
    matching/weighting (filled, weighted). Returns the Axes."""
    from ..errors import SpecificationError

    if result.distance is None:
        raise SpecificationError(f"method={result.method!r} used no distance; plot(kind='love') instead.")
    d, t, w = result.distance, result.treat, result.weights
    edges = np.histogram_bin_edges(d, bins=bins)
    with house_style():
        ax = new_axes(ax)
        for g, col, lab in ((0, PALETTE["blue"], "Control"), (1, PALETTE["vermillion"], "Treated")):
            m = t == g
            ax.hist(d[m], bins=edges, density=True, histtype="step", color=col, linestyle="--", label=f"{lab}, before")
            if (w[m] > 0).any():
                ax.hist(d[m], bins=edges, weights=w[m], density=True, alpha=0.35, color=col, label=f"{lab}, after")
        ax.legend()
        finish_axes(ax, title="Propensity score overlap", xlabel="Distance (propensity score)", ylabel="Density")
    return ax
