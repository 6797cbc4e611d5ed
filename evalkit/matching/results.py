"""The result of matching or weighting: the user's rows, weights, subclasses, balance."""
from __future__ import annotations

from dataclasses import dataclass, field
from functools import cached_property

import numpy as np
import pandas as pd

from ..results import Summary
from .balance import balance_table

__all__ = ["MatchResult"]


@dataclass(frozen=True, repr=False)
class MatchResult:
    """Matched (or weighted) sample with MatchIt's conventions.

    Attributes
    ----------
    data : DataFrame
        The user's data, unchanged (all rows).
    treatment, covariates : str, tuple of str
        Column names.
    method : str
        ``"nearest"``, ``"optimal"``, ``"exact"``, ``"cem"``, ``"subclass"``, or a weighting method
        (``"ipw"``, ``"overlap"``, ``"entropy"``).
    estimand : str
        ``"ATT"``, ``"ATE"`` or ``"ATO"``.
    weights : ndarray
        One weight per row of ``data``: 0 for unmatched units. Matching: treated 1, controls
        sum of 1/k over the treated units they serve (k = controls of that treated unit),
        rescaled so control weights sum to the number of matched controls (MatchIt).
    subclass : ndarray
        Pair/subclass id per row (float; NaN for unmatched units and after matching with
        replacement, where a control belongs to several pairs: see ``pairs``).
    distance : ndarray or None
        The distance used for matching (propensity score on the probability scale), per row.
    pairs : dict
        Treated row position -> list of matched control row positions (nearest/optimal).
    discarded : ndarray of bool
        Units discarded before matching (``discard=``, outside common support).
    options : dict
        Every matching option, including the caliper width in distance units.
    """

    data: pd.DataFrame
    treatment: str
    covariates: tuple[str, ...]
    method: str
    estimand: str
    weights: np.ndarray
    subclass: np.ndarray
    distance: np.ndarray | None
    design: object = field(repr=False)
    pairs: dict = field(default_factory=dict, repr=False)
    discarded: np.ndarray | None = None
    options: dict = field(default_factory=dict)
    ps_model: object = field(default=None, repr=False)
    notes: tuple[str, ...] = ()

    # ------------------------------------------------------------------------------------------
    @property
    def treat(self) -> np.ndarray:
        return self.design.treat

    @property
    def is_weighting(self) -> bool:
        return self.method in ("ipw", "overlap", "entropy")

    @property
    def replace(self) -> bool:
        return bool(self.options.get("replace", False))

    @property
    def matched(self) -> np.ndarray:
        """Boolean mask of the rows with positive weight."""
        return self.weights > 0

    def sample_sizes(self) -> pd.DataFrame:
        """Counts as MatchIt's ``summary()``: All, Matched (and effective sizes), Unmatched, Discarded."""
        t = self.treat
        w = self.weights
        disc = self.discarded if self.discarded is not None else np.zeros(len(t), bool)

        def ess(g):
            wg = w[t == g]
            return float(wg.sum() ** 2 / (wg**2).sum()) if wg.sum() > 0 else 0.0

        rows = {
            "All": [int((t == 0).sum()), int((t == 1).sum())],
            "Matched (ESS)": [ess(0), ess(1)],
            "Matched": [int(((t == 0) & (w > 0)).sum()), int(((t == 1) & (w > 0)).sum())],
            "Unmatched": [int(((t == 0) & (w == 0) & ~disc).sum()), int(((t == 1) & (w == 0) & ~disc).sum())],
            "Discarded": [int(((t == 0) & disc).sum()), int(((t == 1) & disc).sum())],
        }
        return pd.DataFrame(rows, index=["control", "treated"]).T

    def matched_data(self, *, weights: str = "weights", subclass: str = "subclass", distance: str = "distance") -> pd.DataFrame:
        """The user's rows with positive weight, plus ``weights``, ``subclass`` and ``distance`` columns
        (like MatchIt's ``match_data()``). Weighting results return every row."""
        for nm in (weights, subclass, distance):
            if nm in self.data.columns:
                from ..errors import SpecificationError

                raise SpecificationError(f"Column {nm!r} already exists in the data; pass another name, e.g. matched_data({'weights' if nm == weights else 'subclass' if nm == subclass else 'distance'}='{nm}_m').")
        out = self.data.copy()
        if self.distance is not None:
            out[distance] = self.distance
        out[weights] = self.weights
        if not self.is_weighting:
            out[subclass] = pd.array(np.where(np.isnan(self.subclass), pd.NA, self.subclass), dtype="Int64") if not self.replace else pd.array([pd.NA] * len(out), dtype="Int64")
            out = out.loc[self.weights > 0]
        return out

    def get_matches(self, *, weights: str = "weights", subclass: str = "subclass", id: str = "row") -> pd.DataFrame:
        """One row per (pair, unit), as MatchIt's ``get_matches()``: treated weight 1, each control
        1/k with k the number of controls of its treated unit. Controls reused after matching with
        replacement appear once per pair; ``id`` gives the row position in ``data``."""
        if not self.pairs:
            from ..errors import SpecificationError

            raise SpecificationError(f"get_matches() needs pair-forming matching (nearest/optimal); this result is method={self.method!r}.")
        rows, sub, w = [], [], []
        k = 0
        for t in sorted(self.pairs):
            cs = self.pairs[t]
            if not cs:
                continue
            k += 1
            rows += [t] + list(cs)
            sub += [k] * (len(cs) + 1)
            w += [1.0] + [1.0 / len(cs)] * len(cs)
        out = self.data.iloc[rows].copy()
        out[id] = rows
        out[subclass] = sub
        out[weights] = w
        if self.distance is not None:
            out["distance"] = self.distance[rows]
        return out.reset_index(drop=True)

    # ------------------------------------------------------------------------------------------
    @cached_property
    def _balance(self) -> pd.DataFrame:
        d = self.design
        X, names, binary = d.X_balance, list(d.balance_names), d.balance_binary
        if self.distance is not None:
            X = np.column_stack([self.distance, X])
            names = ["distance"] + names
            binary = np.concatenate([[False], binary])
        pairs = self.pairs if (self.pairs and not self.is_weighting) else None
        bal = balance_table(X, names, binary, d.treat, self.weights, estimand=self.estimand, pairs=pairs)
        if self.is_weighting:
            bal = bal.drop(columns=["std_pair_dist_after"])
        return bal

    def balance(self, *, which: str = "all") -> pd.DataFrame:
        """Balance table before and after (a copy): SMD, variance ratio, eCDF mean/max, pair distance.

        ``which="smd"`` keeps the means and SMDs only. The SMD denominator (column
        ``smd_denominator``) is the treated SD in the unmatched sample for the ATT (MatchIt), the
        pooled SD ``sqrt((s_t^2+s_c^2)/2)`` for the ATE/ATO; binary variables use ``sqrt(p(1-p))``.
        """
        b = self._balance.copy()
        if which == "smd":
            return b[["mean_treated_before", "mean_control_before", "smd_before", "mean_treated_after", "mean_control_after", "smd_after"]]
        return b

    def summary(self) -> Summary:
        """Balance and sample sizes with every convention stated."""
        bal = self.balance()
        cols = ["smd_before", "smd_after", "var_ratio_before", "var_ratio_after", "ecdf_max_before", "ecdf_max_after"]
        tab = bal[cols].reset_index()
        ss = self.sample_sizes()
        header = [
            ("Method", self.method + (f" ({self.options.get('distance_label')})" if self.options.get("distance_label") else "")),
            ("Estimand", self.estimand),
        ]
        for k in ("ratio", "replace", "caliper", "caliper_width", "m_order", "exact", "discard", "cutpoints", "n_subclasses"):
            if self.options.get(k) not in (None, False, "none") or k in ("ratio", "replace") and not self.is_weighting and k in self.options:
                header.append((k, str(self.options.get(k))))
        for r, row in ss.iterrows():
            header.append((f"{r} (control / treated)", f"{row['control']:.6g} / {row['treated']:.6g}"))
        denom = "treated-group SD in the unmatched sample" if self.estimand == "ATT" else "pooled SD sqrt((s_t^2+s_c^2)/2) in the unmatched sample"
        notes = [
            f"SMD = (weighted mean treated - weighted mean control) / {denom}; binary variables sqrt(p(1-p)). Same denominator before and after.",
            "Variance ratios for continuous covariates only; eCDF statistics over the distinct covariate values.",
        ] + list(self.notes)
        return Summary(f"Balance: {self.method} ({self.estimand})", tab, header, notes)

    def plot(self, kind: str = "love", ax=None, *, threshold: float = 0.1, absolute: bool = True):
        """``kind="love"``: SMD before/after per covariate; ``kind="overlap"``: distance (propensity)
        distributions by group before and after. Returns the Axes."""
        from .plots import love_plot, overlap_plot

        if kind == "love":
            return love_plot(self, ax=ax, threshold=threshold, absolute=absolute)
        if kind in ("overlap", "distance", "propensity"):
            return overlap_plot(self, ax=ax)
        from .._validation import check_option

        check_option(kind, "kind", ["love", "overlap"], "MatchResult.plot")

    def __repr__(self) -> str:
        ss = self.sample_sizes()
        return (f"<MatchResult: {self.method}, {self.estimand}; matched {ss.loc['Matched', 'treated']:.0f} treated / "
                f"{ss.loc['Matched', 'control']:.0f} controls of {ss.loc['All', 'treated']:.0f} / {ss.loc['All', 'control']:.0f}>")

    def _repr_html_(self) -> str:
        return self.summary().as_html()
