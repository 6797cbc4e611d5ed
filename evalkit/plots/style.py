"""The evalkit house style for matplotlib figures.

One look for every figure: readable on screen and in print (grey-scale safe line styles and
markers as well as colours), a colour-blind-safe palette (Okabe & Ito 2008), light horizontal
grid, no top/right spines, and labels large enough for a journal appendix.

Use :func:`house_style` as a context manager (or :func:`use_house_style` to set it globally);
the plot functions in :mod:`evalkit.plots` apply it to the figures they create themselves and
never change global state.
"""
from __future__ import annotations

import contextlib
from typing import Iterator

__all__ = ["PALETTE", "LINESTYLES", "MARKERS", "HOUSE_RC", "house_style", "use_house_style", "color_cycle", "new_axes", "finish_axes"]

#: Okabe–Ito colour-blind-safe palette (black first: the reference series).
PALETTE: dict[str, str] = {
    "black": "#000000",
    "blue": "#0072B2",
    "vermillion": "#D55E00",
    "green": "#009E73",
    "orange": "#E69F00",
    "sky": "#56B4E9",
    "purple": "#CC79A7",
    "yellow": "#F0E442",
}

#: Order in which series take colours: comparison/control first, treated second, then the rest
#: (yellow last: it is hard to read on white paper).
_ORDER = ("blue", "vermillion", "green", "purple", "orange", "sky", "black", "yellow")
#: Distinct line styles and markers, so series remain distinguishable in grey-scale print.
LINESTYLES: tuple[str, ...] = ("-", "--", "-.", ":", (0, (5, 1)), (0, (3, 1, 1, 1, 1, 1)), "-", "--")
MARKERS: tuple[str, ...] = ("o", "s", "^", "D", "v", "P", "X", "*")

#: Matplotlib rcParams of the house style.
HOUSE_RC: dict = {
    "figure.figsize": (6.4, 3.8),
    "figure.dpi": 100,
    "savefig.dpi": 150,
    "savefig.bbox": "tight",
    "font.size": 10,
    "axes.titlesize": 11,
    "axes.titleweight": "bold",
    "axes.titlelocation": "left",
    "axes.labelsize": 10,
    "axes.spines.top": False,
    "axes.spines.right": False,
    "axes.grid": True,
    "axes.grid.axis": "y",
    "grid.color": "#d9d9d9",
    "grid.linewidth": 0.6,
    "axes.edgecolor": "#333333",
    "axes.linewidth": 0.8,
    "xtick.labelsize": 9,
    "ytick.labelsize": 9,
    "legend.fontsize": 9,
    "legend.frameon": False,
    "lines.linewidth": 1.6,
    "lines.markersize": 4.5,
    "errorbar.capsize": 0,
    "svg.fonttype": "none",  # text stays text in SVG: small files, selectable labels
    "svg.hashsalt": "evalkit",  # deterministic element ids in SVG output
}


def color_cycle(n: int) -> list[str]:
    """The first ``n`` house colours (cycling when ``n`` exceeds the palette)."""
    return [PALETTE[_ORDER[i % len(_ORDER)]] for i in range(n)]


@contextlib.contextmanager
def house_style() -> Iterator[None]:
    """Context manager applying :data:`HOUSE_RC` (restores the previous settings on exit).

    Examples
    --------
    >>> import matplotlib.pyplot as plt
    >>> from evalkit.plots.style import house_style
    >>> with house_style():
    ...     fig, ax = plt.subplots()
    >>> plt.close(fig)
    """
    import matplotlib as mpl
    from cycler import cycler

    rc = dict(HOUSE_RC)
    rc["axes.prop_cycle"] = cycler(color=color_cycle(8))
    with mpl.rc_context(rc):
        yield


def use_house_style() -> None:
    """Set the house style globally (for notebooks); figures made afterwards use it."""
    import matplotlib as mpl
    from cycler import cycler

    mpl.rcParams.update(HOUSE_RC)
    mpl.rcParams["axes.prop_cycle"] = cycler(color=color_cycle(8))


def new_axes(ax=None, figsize=None):
    """Return ``ax`` or a new house-styled Axes (the figure is not shown)."""
    if ax is not None:
        return ax
    import matplotlib.pyplot as plt

    with house_style():
        fig, ax = plt.subplots(figsize=figsize or HOUSE_RC["figure.figsize"], layout="constrained")
    return ax


def finish_axes(ax, *, title=None, xlabel=None, ylabel=None) -> None:
    """House details that must be set on the Axes itself (they outlive the rc context)."""
    if title:
        ax.set_title(str(title), loc="left", fontweight="bold", fontsize=HOUSE_RC["axes.titlesize"])
    if xlabel is not None:
        ax.set_xlabel(str(xlabel))
    if ylabel is not None:
        ax.set_ylabel(str(ylabel))
    for side in ("top", "right"):
        ax.spines[side].set_visible(False)
    ax.set_axisbelow(True)
    ax.grid(True, axis="y", color=HOUSE_RC["grid.color"], linewidth=HOUSE_RC["grid.linewidth"])
    ax.grid(False, axis="x")
