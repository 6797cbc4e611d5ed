"""Figures in one house style (matplotlib): each function takes ``ax=`` and returns the Axes.

>>> from evalkit.plots import plot_coefficients, plot_event_study, plot_group_means  # doctest: +SKIP
"""
from .did import plot_coefficients, plot_event_study, plot_group_means
from .style import PALETTE, house_style, use_house_style

__all__ = ["plot_coefficients", "plot_event_study", "plot_group_means", "PALETTE", "house_style", "use_house_style"]
