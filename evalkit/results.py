"""Immutable results objects shared by every design (tidy table + conventions + sample)."""
from __future__ import annotations

import html
from dataclasses import dataclass, field, fields
from functools import cached_property

import numpy as np
import pandas as pd
from scipy import stats

from .data.schema import DropRecord

__all__ = ["Conventions", "SampleInfo", "Summary", "EffectResult", "tidy_table", "TIDY_COLUMNS"]

TIDY_COLUMNS = ["term", "estimate", "std_error", "statistic", "p_value", "conf_low", "conf_high"]


@dataclass(frozen=True)
class Conventions:
    """Every convention behind the numbers: what a referee asks first."""

    estimator: str
    vcov_type: str
    vcov_description: str
    distribution: str  # "t(df)" or "normal"
    df: float | None
    cluster: tuple[str, ...] = ()
    n_clusters: tuple[int, ...] = ()
    small_sample: str = ""
    weights: str | None = None
    fixed_effects: tuple[str, ...] = ()
    absorb_method: str = ""
    reference_period: str | None = None
    level: float = 0.95
    seed: int | None = None
    notes: tuple[str, ...] = ()

    def as_dict(self) -> dict:
        return {f.name: getattr(self, f.name) for f in fields(self)}


@dataclass(frozen=True)
class SampleInfo:
    """Who is in the estimation sample and who was dropped."""

    n_obs: int
    n_input_rows: int
    n_units: int | None = None
    n_periods: int | None = None
    balanced: bool | None = None
    n_treated_units: int | None = None
    n_singletons: int = 0
    dropped: tuple[DropRecord, ...] = ()

    def as_dict(self) -> dict:
        d = {f.name: getattr(self, f.name) for f in fields(self)}
        d["dropped"] = [str(r) for r in self.dropped]
        return d


def tidy_table(terms, estimates, std_errors, df, level: float = 0.95, null: float = 0.0) -> pd.DataFrame:
    """Tidy coefficient table with t (or normal when ``df`` is None) p-values and intervals."""
    est = np.asarray(estimates, dtype=float)
    se = np.asarray(std_errors, dtype=float)
    dfa = np.broadcast_to(np.asarray(np.inf if df is None else df, dtype=float), est.shape)
    with np.errstate(divide="ignore", invalid="ignore"):
        stat = (est - null) / se
    q = np.where(np.isinf(dfa), stats.norm.ppf(0.5 + level / 2), stats.t.ppf(0.5 + level / 2, np.where(np.isinf(dfa), 1, dfa)))
    p = np.where(np.isinf(dfa), 2 * stats.norm.sf(np.abs(stat)), 2 * stats.t.sf(np.abs(stat), np.where(np.isinf(dfa), 1, dfa)))
    return pd.DataFrame(
        {
            "term": list(terms),
            "estimate": est,
            "std_error": se,
            "statistic": stat,
            "p_value": p,
            "conf_low": est - q * se,
            "conf_high": est + q * se,
        }
    )


class Summary:
    """A printable summary: ``str()``, ``as_text()``, ``as_html()`` (Jupyter shows the HTML)."""

    def __init__(self, title: str, table: pd.DataFrame, header: list[tuple[str, str]], notes: list[str]):
        self.title = title
        self.table = table
        self.header = header
        self.notes = notes

    def as_text(self) -> str:
        lines = [self.title, "=" * len(self.title)]
        width = max((len(k) for k, _ in self.header), default=0)
        lines += [f"{k:<{width}} : {v}" for k, v in self.header]
        lines.append("")
        fmt = self.table.copy()
        lines.append(fmt.to_string(index=False, float_format=lambda x: f"{x:.6g}"))
        if self.notes:
            lines.append("")
            lines += [f"Note: {n}" for n in self.notes]
        return "\n".join(lines)

    def as_html(self) -> str:
        head = "".join(f"<tr><th style='text-align:left'>{html.escape(k)}</th><td style='text-align:left'>{html.escape(str(v))}</td></tr>" for k, v in self.header)
        body = self.table.to_html(index=False, float_format=lambda x: f"{x:.6g}", escape=True, border=0)
        notes = "".join(f"<p><em>Note:</em> {html.escape(n)}</p>" for n in self.notes)
        return f"<div><h4>{html.escape(self.title)}</h4><table>{head}</table>{body}{notes}</div>"

    def __str__(self) -> str:
        return self.as_text()

    def __repr__(self) -> str:
        return self.as_text()

    def _repr_html_(self) -> str:
        return self.as_html()


@dataclass(frozen=True)
class EffectResult:
    """Base results object: a tidy table, its covariance, the conventions and the sample.

    Immutable: methods that change the inference return a new object.
    """

    table: pd.DataFrame
    vcov: np.ndarray
    conventions: Conventions
    sample: SampleInfo
    extra: dict = field(default_factory=dict, repr=False)

    def __post_init__(self) -> None:
        v = np.array(self.vcov, dtype=float, copy=True)
        v.setflags(write=False)
        object.__setattr__(self, "vcov", v)
        object.__setattr__(self, "table", self.table.copy())

    # -- the headline effect: the first term -------------------------------------------------
    @property
    def term(self) -> str:
        return str(self.table["term"].iloc[0])

    @property
    def estimate(self) -> float:
        return float(self.table["estimate"].iloc[0])

    @property
    def std_error(self) -> float:
        return float(self.table["std_error"].iloc[0])

    @property
    def statistic(self) -> float:
        return float(self.table["statistic"].iloc[0])

    @property
    def p_value(self) -> float:
        return float(self.table["p_value"].iloc[0])

    @property
    def nobs(self) -> int:
        return self.sample.n_obs

    @property
    def n_clusters(self) -> int | None:
        n = self.conventions.n_clusters
        return n[0] if len(n) == 1 else (min(n) if n else None)

    @property
    def vcov_type(self) -> str:
        return f"{self.conventions.vcov_type}: {self.conventions.vcov_description}"

    @cached_property
    def params(self) -> pd.Series:
        return pd.Series(self.table["estimate"].to_numpy(), index=self.table["term"], name="estimate")

    def conf_int(self, level: float = 0.95) -> pd.DataFrame:
        """Confidence intervals at ``level`` for every term (same distribution as the table)."""
        t = tidy_table(self.table["term"], self.table["estimate"], self.table["std_error"], self.conventions.df if self.conventions.distribution != "normal" else None, level)
        return t.set_index("term")[["conf_low", "conf_high"]]

    def to_frame(self) -> pd.DataFrame:
        """A copy of the tidy table (``term, estimate, std_error, statistic, p_value, conf_low, conf_high`` ...)."""
        return self.table.copy()

    def _summary_header(self) -> list[tuple[str, str]]:
        c, s = self.conventions, self.sample
        rows = [
            ("Estimator", c.estimator),
            ("Standard errors", f"{c.vcov_type} — {c.vcov_description}"),
            ("Inference", c.distribution),
            ("Observations", f"{s.n_obs:,} (of {s.n_input_rows:,} input rows)"),
        ]
        if s.n_units is not None:
            rows.append(("Units", f"{s.n_units:,}" + (" (balanced)" if s.balanced else " (unbalanced)" if s.balanced is False else "")))
        if c.fixed_effects:
            rows.append(("Fixed effects", ", ".join(c.fixed_effects) + (f" (absorbed: {c.absorb_method})" if c.absorb_method else "")))
        if c.weights:
            rows.append(("Weights", c.weights))
        if c.reference_period:
            rows.append(("Reference period", c.reference_period))
        if c.seed is not None:
            rows.append(("Seed", str(c.seed)))
        for r in s.dropped:
            rows.append(("Dropped", str(r)))
        return rows

    def summary(self) -> Summary:
        """A readable table with the conventions stated."""
        return Summary(self.conventions.estimator, self.to_frame(), self._summary_header(), list(self.conventions.notes))

    def __repr__(self) -> str:
        return f"<{type(self).__name__}: {self.term} = {self.estimate:.6g} (SE {self.std_error:.6g}), {self.conventions.vcov_type}, N={self.nobs:,}>"

    def _repr_html_(self) -> str:
        return self.summary().as_html()
