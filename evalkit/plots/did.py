"""Figures for difference-in-differences designs: coefficients, event studies, group means.

Every function takes ``ax=`` (draws on it, or on a new house-styled Axes when ``None``), returns
the Axes, and never calls ``plt.show()``: restyle or save the figure as you like
(``ax.figure.savefig(...)``).
"""
from __future__ import annotations

from typing import Any, Mapping, Sequence

import numpy as np
import pandas as pd

from ..errors import SpecificationError
from .style import LINESTYLES, MARKERS, PALETTE, color_cycle, finish_axes, new_axes

__all__ = ["plot_coefficients", "plot_event_study", "plot_group_means"]

_REQUIRED = ("term", "estimate", "conf_low", "conf_high")


def _effect_frame(obj: Any, terms: Sequence[str] | None) -> pd.DataFrame:
    """Tidy rows of one result (its effect terms by default) or of a tidy frame."""
    if isinstance(obj, pd.DataFrame):
        frame = obj.copy()
        default_terms = None
    elif hasattr(obj, "to_frame"):
        frame = obj.to_frame()
        ctx = getattr(obj, "extra", {}).get("_context") if isinstance(getattr(obj, "extra", None), dict) else None
        idx = getattr(ctx, "effect_terms", None)
        default_terms = [str(frame["term"].iloc[i]) for i in idx] if idx else None
    else:
        raise SpecificationError(
            f"plot_coefficients expects a result (with .to_frame()), a tidy DataFrame or a dict of them. "
            f"Got {type(obj).__name__}."
        )
    missing = [c for c in _REQUIRED if c not in frame.columns]
    if missing:
        raise SpecificationError(f"plot_coefficients: the table lacks column(s) {missing}; expected {list(_REQUIRED)}.")
    wanted = list(terms) if terms is not None else default_terms
    if wanted is not None:
        unknown = [t for t in wanted if t not in set(frame["term"])]
        if unknown:
            raise SpecificationError(f"plot_coefficients: term(s) {unknown} not in the table. Available: {list(frame['term'])}.")
        frame = frame.set_index("term").loc[wanted].reset_index()
    return frame


def plot_coefficients(
    result_or_frame: Any,
    ax=None,
    *,
    terms: Sequence[str] | None = None,
    title: str | None = None,
    xlabel: str | None = None,
    reference: float = 0.0,
):
    """Point estimates with confidence intervals, one row per term (a forest plot).

    Parameters
    ----------
    result_or_frame : EffectResult, pandas.DataFrame or dict
        A result (its effect terms are drawn, e.g. the treatment and its ``by=`` splits, not the
        covariates), a tidy table with ``term, estimate, conf_low, conf_high``, or a dict
        ``{label: result_or_frame}`` drawing each entry's effect terms labelled ``label``
        (``label: term`` when an entry has several).
    ax : matplotlib.axes.Axes or None, default=None
        Axes to draw on; ``None`` makes a new house-styled figure.
    terms : sequence of str or None, default=None
        Terms to draw (default: the effect terms of a result, every row of a frame).
    title, xlabel : str or None
        Labels. ``xlabel`` defaults to "Estimate (CI)" with the level if known.
    reference : float, default=0.0
        Where the vertical reference line is drawn.

    Returns
    -------
    matplotlib.axes.Axes
    """
    if isinstance(result_or_frame, Mapping):
        parts = []
        for label, obj in result_or_frame.items():
            f = _effect_frame(obj, terms)
            f["term"] = [str(label)] if len(f) == 1 else [f"{label}: {t}" for t in f["term"]]
            parts.append(f)
        if not parts:
            raise SpecificationError("plot_coefficients: the dict of results is empty.")
        frame = pd.concat(parts, ignore_index=True)
    else:
        frame = _effect_frame(result_or_frame, terms)
    level = getattr(getattr(result_or_frame, "conventions", None), "level", None)
    if xlabel is None:
        xlabel = f"Estimate ({level:.0%} CI)" if level else "Estimate (confidence interval)"
    ax = new_axes(ax, figsize=(6.4, max(1.6, 0.45 * len(frame) + 1.0)))
    est = frame["estimate"].to_numpy(dtype=float)
    lo = frame["conf_low"].to_numpy(dtype=float)
    hi = frame["conf_high"].to_numpy(dtype=float)
    y = np.arange(len(frame))[::-1]
    colour = PALETTE["blue"]
    ax.axvline(reference, color=PALETTE["black"], linewidth=0.8, zorder=1)
    ax.hlines(y, lo, hi, color=colour, linewidth=2.0, zorder=2)
    ax.plot(est, y, "o", color=colour, markersize=6, zorder=3)
    ax.set_yticks(y)
    ax.set_yticklabels([str(t) for t in frame["term"]])
    ax.set_ylim(-0.7, len(frame) - 0.3)
    finish_axes(ax, title=title, xlabel=xlabel)
    ax.grid(False, axis="y")
    ax.grid(True, axis="x", color="#d9d9d9", linewidth=0.6)
    return ax


def plot_event_study(
    frame: pd.DataFrame,
    ax=None,
    *,
    event_time: str = "event_time",
    reference: int | None = None,
    entry: float = -0.5,
    title: str | None = None,
    xlabel: str = "Periods since entry",
    ylabel: str = "Estimate",
):
    """Event-study estimates by event time, with confidence intervals.

    Draws the zero line, a dashed vertical line at entry (between event times -1 and 0 by
    default) and the reference period as a hollow marker at 0 (it is normalised, not estimated).
    Lead (pre-entry) estimates are blue circles, lag estimates vermillion squares, so the figure
    reads in grey-scale too. A simultaneous band (``conf_low_simul``/``conf_high_simul``) is
    shaded when present.

    Parameters
    ----------
    frame : pandas.DataFrame
        Columns ``event_time`` (int; rows with a missing event time, e.g. covariates, are
        ignored), ``estimate``, ``conf_low``, ``conf_high``; e.g.
        ``EventStudyResult.event_frame()``.
    ax : matplotlib.axes.Axes or None, default=None
    event_time : str, default="event_time"
        Name of the event-time column.
    reference : int or None, default=None
        The normalised period. ``None``: the row whose ``term`` is ``"reference"`` or whose
        standard error is missing; if there is none, nothing is marked.
    entry : float, default=-0.5
        x position of the vertical entry line.
    title, xlabel, ylabel : str

    Returns
    -------
    matplotlib.axes.Axes
    """
    if not isinstance(frame, pd.DataFrame):
        if hasattr(frame, "event_frame"):
            frame = frame.event_frame()
        else:
            raise SpecificationError(f"plot_event_study expects a DataFrame (e.g. result.event_frame()). Got {type(frame).__name__}.")
    need = [event_time, "estimate", "conf_low", "conf_high"]
    missing = [c for c in need if c not in frame.columns]
    if missing:
        raise SpecificationError(f"plot_event_study: the frame lacks column(s) {missing}; expected {need}.")
    f = frame[frame[event_time].notna()].copy()
    f["_e"] = f[event_time].astype(float)
    if reference is None:
        is_ref = np.zeros(len(f), bool)
        if "term" in f.columns:
            is_ref |= (f["term"].astype(str) == "reference").to_numpy()
        if "std_error" in f.columns and not is_ref.any():
            is_ref |= (f["std_error"].isna() & (f["estimate"] == 0)).to_numpy()
    else:
        is_ref = (f["_e"] == float(reference)).to_numpy()
    ref_e = f.loc[is_ref, "_e"].to_numpy()
    if reference is not None and not len(ref_e):
        ref_e = np.array([float(reference)])
    est = f.loc[~is_ref].sort_values("_e")
    ax = new_axes(ax)
    ax.axhline(0.0, color=PALETTE["black"], linewidth=0.8, zorder=1)
    ax.axvline(entry, color="#555555", linestyle="--", linewidth=1.0, zorder=1, label="Entry")
    if {"conf_low_simul", "conf_high_simul"} <= set(est.columns):
        ax.fill_between(est["_e"], est["conf_low_simul"], est["conf_high_simul"], color=PALETTE["sky"], alpha=0.25,
                        linewidth=0, label="Simultaneous band", zorder=1)
    e = est["_e"].to_numpy()
    for mask, colour, marker, label in (
        (e < entry, PALETTE["blue"], "o", "Before entry"),
        (e >= entry, PALETTE["vermillion"], "s", "After entry"),
    ):
        if not mask.any():
            continue
        sub = est.loc[mask]
        yerr = np.vstack([sub["estimate"] - sub["conf_low"], sub["conf_high"] - sub["estimate"]]).astype(float)
        ax.errorbar(sub["_e"], sub["estimate"], yerr=yerr, fmt=marker, color=colour, ecolor=colour,
                    elinewidth=1.2, markersize=4.5, label=label, zorder=3)
    if len(ref_e):
        ax.plot(ref_e, np.zeros(len(ref_e)), "o", markerfacecolor="white", markeredgecolor=PALETTE["black"],
                markersize=6, zorder=4, label=f"Reference (e = {int(ref_e[0])})")
    all_e = np.concatenate([e, ref_e])
    if all_e.size and np.all(np.mod(all_e, 1) == 0):
        from matplotlib.ticker import MaxNLocator

        ax.xaxis.set_major_locator(MaxNLocator(integer=True))
    finish_axes(ax, title=title, xlabel=xlabel, ylabel=ylabel)
    _legend_below(ax)
    return ax


def _legend_below(ax, ncol: int = 3) -> None:
    """Legend under the plot area, so it never hides data."""
    handles, labels = ax.get_legend_handles_labels()
    if handles:
        ax.legend(handles, labels, loc="upper center", bbox_to_anchor=(0.5, -0.16), ncol=min(ncol, len(handles)),
                  frameon=False)


def _x_values(values: pd.Series | pd.Index):
    """Plot positions of time values: Periods become timestamps (a date axis); others stay."""
    v = pd.Series(values)
    if isinstance(v.dtype, pd.PeriodDtype):
        return v.dt.to_timestamp().to_numpy()
    return v.to_numpy()


def _x_scalar(value, like):
    if isinstance(value, pd.Period):
        return value.to_timestamp()
    if isinstance(like.dtype, pd.PeriodDtype) and isinstance(value, str):
        return pd.Period(value, freq=like.dtype.freq).to_timestamp()
    return value


def _group_label(group: str, value, binary: bool) -> str:
    if value is None or (isinstance(value, float) and np.isnan(value)) or value is pd.NA or value is pd.NaT:
        return f"{group}: none (never treated)"
    if binary:
        return f"Treated ({group} = {value})" if bool(value) else f"Comparison ({group} = {value})"
    if isinstance(value, float) and value.is_integer():
        value = int(value)
    return f"{group} = {value}"


def plot_group_means(
    df: pd.DataFrame,
    outcome: str,
    time: str,
    group: str,
    ax=None,
    *,
    weights: str | None = None,
    entry: Any = None,
    labels: Mapping[Any, str] | None = None,
    title: str | None = None,
    ylabel: str | None = None,
    xlabel: str | None = None,
):
    """Mean outcome by period for each group (a parallel-trends plot).

    Parameters
    ----------
    df : pandas.DataFrame
        Long data.
    outcome, time, group : str
        Outcome column; time column (integers, dates or :class:`pandas.Period`, drawn on a
        date axis); group column (e.g. the 0/1 ever-treated flag, or the entry cohort; missing
        values form their own group, labelled "never").
    ax : matplotlib.axes.Axes or None, default=None
    weights : str or None, default=None
        Weighted means (e.g. by enrollment months).
    entry : scalar, mapping or None, default=None
        Entry time(s), drawn as dotted vertical lines: one value (a dashed line labelled
        "Entry"), or ``{group_value: entry}`` (one line per group, in the group's colour).
    labels : mapping or None
        Legend labels by group value (default: "Treated (g = 1)" / "Comparison (g = 0)" for a
        binary group, "g = value" otherwise).
    title, ylabel, xlabel : str or None

    Returns
    -------
    matplotlib.axes.Axes

    Notes
    -----
    Means are over the rows present in each period, so with enrollment churn they mix changes in
    who is enrolled with changes in outcomes; the regression designs adjust for this, the plot
    does not.
    """
    if not isinstance(df, pd.DataFrame):
        raise SpecificationError(f"plot_group_means expects a pandas DataFrame. Got {type(df).__name__}.")
    for role, col in (("outcome", outcome), ("time", time), ("group", group)) + ((("weights", weights),) if weights else ()):
        if col not in df.columns:
            raise SpecificationError(f"plot_group_means: column {col!r} (the {role}) not found in data.")
    y = pd.to_numeric(df[outcome].astype("float64") if df[outcome].dtype == bool else df[outcome], errors="coerce")
    d = pd.DataFrame({"y": y, "t": df[time], "g": df[group]})
    if weights:
        d["w"] = pd.to_numeric(df[weights], errors="coerce")
    d = d[d["y"].notna()]
    if d.empty:
        raise SpecificationError(f"plot_group_means: column {outcome!r} has no non-missing values.")
    levels = pd.unique(d["g"].dropna())
    try:
        levels = sorted(levels)
    except TypeError:
        levels = list(levels)
    binary = len(levels) <= 2 and all(v in (0, 1, True, False) for v in levels)
    has_none = bool(d["g"].isna().any())
    groups = ([None] if has_none else []) + list(levels)
    colours = color_cycle(len(groups))
    ax = new_axes(ax)
    for i, g in enumerate(groups):
        sub = d[d["g"].isna()] if g is None else d[d["g"] == g]
        if weights:
            agg = sub.assign(wy=sub["w"] * sub["y"]).groupby("t", sort=True)[["wy", "w"]].sum()
            means = agg["wy"] / agg["w"]
        else:
            means = sub.groupby("t", sort=True)["y"].mean()
        label = labels.get(g, None) if labels else None
        label = label if label is not None else _group_label(group, g, binary)
        ax.plot(_x_values(means.index), means.to_numpy(), color=colours[i], linestyle=LINESTYLES[i % len(LINESTYLES)],
                marker=MARKERS[i % len(MARKERS)], markersize=3, label=str(label))
    if entry is not None:
        if isinstance(entry, Mapping):
            for i, g in enumerate(groups):
                if g in entry and entry[g] is not None:
                    ax.axvline(_x_scalar(entry[g], df[time]), color=colours[i], linestyle=":", linewidth=1.2)
        else:
            ax.axvline(_x_scalar(entry, df[time]), color="#555555", linestyle="--", linewidth=1.0, label="Entry")
    finish_axes(ax, title=title, xlabel=xlabel if xlabel is not None else time,
                ylabel=ylabel if ylabel is not None else f"Mean {outcome}")
    _legend_below(ax)
    return ax
