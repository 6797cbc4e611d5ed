"""The data contract: validate a long panel (or repeated cross-section) given column roles.

Every design calls :func:`validate_panel` and works on the :class:`ValidatedPanel` it returns:
numpy arrays (outcome, covariates, weights) and integer codes (unit, period, cluster, cohort),
computed once, vectorised (no Python loop over rows or units), without sorting or modifying the
user's frame. The returned arrays are read-only; copy before modifying them in place.

Conventions (inherited by every design; ``docs/data_contract.md`` has the full table)
------------------------------------------------------------------------------------
* **Time** is mapped to consecutive integer periods ``0 .. T-1``. Accepted: integers (years),
  floats holding integers, :class:`pandas.Period`, and datetimes aligned to years, quarters or
  months (or with a regular frequency); dates are converted to periods. A unit may skip periods
  (enrollment churn); a period missing from the whole calendar raises, because "consecutive
  periods" would then be a lie. For numeric time the step is the smallest difference between
  observed values (years 2015, 2017, 2019 are three consecutive periods).
* **Cohort** (first treated period) is in the units of ``time``. Never-treated units may be coded
  ``NaN``/``NaT``, ``+inf``, or ``0`` (``0`` only when no period is 0, as in R ``did``).
  Cohorts after the last period are recoded to never-treated (they are untreated throughout the
  sample); the recoding is logged and recorded in ``ValidatedPanel.notes``.
* **Treatment** (0/1 treated-and-post) is absorbing: once 1, it stays 1 within a unit. Real
  members change organisations and organisations leave contracts; evalkit treats attribution as
  intent-to-treat at entry (see ``docs/data_contract.md``).
* **Missing values** raise by default, with counts per column. ``dropna=True`` drops the rows and
  records how many on the result.
* **Singletons** (a unit observed once) are kept, as R ``fixest`` does (Stata ``reghdfe`` drops
  them); they do not affect the coefficients. They are logged and warned about
  (:class:`~evalkit.errors.SingletonWarning`). ``drop_singletons=True`` drops and records them.
* Nothing is dropped silently: every drop is a :class:`DropRecord` in ``ValidatedPanel.dropped``
  and triggers one :class:`~evalkit.errors.DroppedRowsWarning`.
"""
from __future__ import annotations

import logging
import warnings
from dataclasses import dataclass, field
from typing import Sequence

import numpy as np
import pandas as pd

from .._validation import check_columns_arg, check_option
from ..errors import DataError, DroppedRowsWarning, FewClustersWarning, SingletonWarning

__all__ = ["DropRecord", "ValidatedPanel", "validate_panel", "check_clusters", "TimeAxis"]

logger = logging.getLogger(__name__)

#: Below this many clusters CR1 inference is unreliable (warn).
MIN_CLUSTERS = 30
#: Below this many treated clusters CR1 over-rejects badly (MacKinnon & Webb 2017): warn and suggest CR2/wild.
MIN_TREATED_CLUSTERS = 10
#: Refuse to build a dense dummy matrix larger than this many bytes (a high-cardinality covariate).
_MAX_DUMMY_BYTES = 2**31
#: Dense (unit, period) tables are used for O(n) checks when n_units * n_periods <= max(this, 4 n).
_MAX_TABLE_CELLS = 2**24


@dataclass(frozen=True)
class DropRecord:
    """Rows removed from the estimation sample, and why."""

    reason: str
    n_rows: int
    detail: str = ""

    def __str__(self) -> str:
        extra = f" ({self.detail})" if self.detail else ""
        return f"{self.n_rows} rows dropped: {self.reason}{extra}"


@dataclass(frozen=True)
class TimeAxis:
    """Map between the user's time values and evalkit's consecutive integer periods."""

    levels: pd.Index  # user's time value for period code 0..T-1
    kind: str  # "int" | "float" | "period"

    @property
    def n_periods(self) -> int:
        return len(self.levels)

    def label(self, code: int | float) -> object:
        """User-facing value of an integer period code (codes outside the sample extrapolate)."""
        if not np.isfinite(code):
            return None
        code = int(code)
        if 0 <= code < len(self.levels):
            return self.levels[code]
        if self.kind == "period":
            return self.levels[0] + code
        step = self.levels[1] - self.levels[0] if len(self.levels) > 1 else 1
        return self.levels[0] + code * step


@dataclass(frozen=True)
class ValidatedPanel:
    """Arrays of a validated panel, ready for estimation (rows in the user's order, minus drops).

    All arrays are read-only (``flags.writeable`` is False); copy before modifying them.
    """

    y: np.ndarray  # (n,) float64 outcome
    X: np.ndarray  # (n, k) float64 covariates (dummies expanded), may be (n, 0)
    covariate_names: tuple[str, ...]
    weights: np.ndarray | None  # (n,) float64 or None
    unit: np.ndarray | None  # (n,) int64 codes 0..n_units-1 (None for repeated cross-sections)
    unit_levels: pd.Index | None
    time: np.ndarray  # (n,) int64 period codes 0..T-1
    time_axis: TimeAxis
    treatment: np.ndarray | None  # (n,) float64 0/1
    cohort: np.ndarray | None  # (n,) float64 period code of first treatment, inf = never
    cluster: np.ndarray | None  # (n, c) int64 codes, one column per clustering variable
    cluster_names: tuple[str, ...]
    group: np.ndarray | None  # (n,) float64 0/1 group indicator (2x2 repeated cross-sections)
    row_index: np.ndarray  # positions (iloc) of the kept rows in the user's frame
    n_input_rows: int
    dropped: tuple[DropRecord, ...] = field(default=())
    roles: dict = field(default_factory=dict)
    #: Things done to the data that are not drops (singletons kept, cohorts recoded, ...).
    notes: tuple[str, ...] = field(default=())
    #: True when the kept rows are sorted by (unit, time) (estimators may skip sorting).
    sorted_by_unit_time: bool = False
    #: Per unit (read-only): code of the first treated period (``n_periods`` if never treated) and
    #: whether the unit has an untreated row. Set when a treatment and a unit were given and no
    #: row was dropped (then it describes the final rows exactly); None otherwise.
    unit_entry: np.ndarray | None = None
    unit_has_untreated: np.ndarray | None = None

    @property
    def nobs(self) -> int:
        return int(self.y.shape[0])

    @property
    def n_units(self) -> int | None:
        if self.unit is None:
            return None
        return int(self.unit.max()) + 1 if self.nobs else 0

    @property
    def n_periods(self) -> int:
        return self.time_axis.n_periods

    @property
    def is_balanced(self) -> bool:
        if self.unit is None:
            return False
        return self.nobs == self.n_units * self.n_periods


# ----------------------------------------------------------------------------------------------
# helpers


def _require_columns(data: pd.DataFrame, roles: dict[str, tuple[str, ...]]) -> None:
    if not isinstance(data, pd.DataFrame):
        raise DataError(f"`data` must be a pandas DataFrame. Got {type(data).__name__}.")
    cols = set(data.columns)
    for role, names in roles.items():
        for name in names:
            if name not in cols:
                close = [c for c in data.columns if str(c).lower() == str(name).lower()]
                hint = f" Did you mean {close[0]!r}?" if close else ""
                raise DataError(
                    f"Column {name!r} (the {role}) not found in data.{hint} "
                    f"Available columns: {list(data.columns)[:20]}."
                )
    used = {c for names in roles.values() for c in names}
    dup = [c for c in data.columns[data.columns.duplicated()].unique() if c in used]
    if dup:
        raise DataError(f"Column names must be unique; duplicated: {dup}. Rename them.")


def _is_plain_numeric(dtype) -> bool:
    return pd.api.types.is_bool_dtype(dtype) or (
        pd.api.types.is_numeric_dtype(dtype) and not isinstance(dtype, pd.CategoricalDtype)
    )


def _numeric(series: pd.Series, name: str, role: str) -> np.ndarray:
    """Numeric float64 values of a column; booleans become 0/1; anything else raises."""
    s = series
    if isinstance(s.dtype, pd.CategoricalDtype):
        raise DataError(
            f"Column {name!r} (the {role}) is categorical; it must be numeric. "
            f"Convert it, e.g. data[{name!r}].astype(float), or pass it as a covariate to get dummies."
        )
    if _is_plain_numeric(s.dtype):
        return s.to_numpy(dtype=np.float64, na_value=np.nan)
    nonmissing = s.dropna()
    example = nonmissing.iloc[:3].tolist()
    raise DataError(
        f"Column {name!r} (the {role}) must be numeric (or boolean); it has dtype {s.dtype} "
        f"(e.g. {example}). Convert it with pd.to_numeric(data[{name!r}])."
    )


def _missing_mask(series: pd.Series) -> np.ndarray | None:
    """Rows that are missing (NaN, None, NaT, pd.NA) or infinite; None when there are none."""
    dt = series.dtype
    if isinstance(dt, np.dtype) and dt.kind in "iub":  # cannot hold missing values
        return None
    if isinstance(dt, np.dtype) and dt.kind == "f":
        m = ~np.isfinite(series.to_numpy())  # +-inf is as unusable as NaN
    else:
        m = series.isna().to_numpy()
        if pd.api.types.is_float_dtype(dt):
            m = m | np.isinf(series.to_numpy(dtype=np.float64, na_value=np.nan))
    return m if m.any() else None


def _codes(series: pd.Series) -> tuple[np.ndarray, pd.Index]:
    """Dense int64 codes ``0 .. K-1`` and the levels of an id-like column (no missing values).

    Integer ids with a compact range are coded in sorted order by an O(n) lookup table; categorical
    columns in category order; other ids (strings) in order of first appearance, hashing one value
    per run of equal consecutive ids (a panel sorted by unit hashes each id once, not T times).
    """
    s = series
    n = len(s)
    dt = s.dtype
    if isinstance(dt, pd.CategoricalDtype):
        raw = s.cat.codes.to_numpy().astype(np.int64)
        present = np.bincount(raw, minlength=len(dt.categories)) > 0
        remap = np.cumsum(present) - 1
        return remap[raw], pd.Index(dt.categories[present])
    if pd.api.types.is_integer_dtype(dt) and not (isinstance(dt, np.dtype) and dt.kind == "u" and dt.itemsize == 8):
        v = s.to_numpy(dtype=np.int64)
        if n > 1 and np.all(v[1:] >= v[:-1]):  # ids already sorted (a panel sorted by unit)
            heads = np.empty(n, dtype=bool)
            heads[0] = True
            np.not_equal(v[1:], v[:-1], out=heads[1:])
            return np.cumsum(heads, dtype=np.int64) - 1, pd.Index(v[heads])
        lo, hi = int(v.min()), int(v.max())
        span = hi - lo + 1
        if span <= max(4 * n, 1 << 16):
            rel = v - lo
            present = np.zeros(span, dtype=bool)
            present[rel] = True
            lookup = np.cumsum(present, dtype=np.int64) - 1
            return lookup[rel], pd.Index(np.flatnonzero(present) + lo)
        codes, uniq = pd.factorize(v, sort=False)
        return codes.astype(np.int64), pd.Index(uniq)
    v = s.to_numpy()
    if v.dtype == object and n > 1:
        heads = np.empty(n, dtype=bool)
        heads[0] = True
        np.not_equal(v[1:], v[:-1], out=heads[1:])
        pos = np.flatnonzero(heads)
        if len(pos) <= n // 2:
            hc, uniq = pd.factorize(v[pos], sort=False)
            return np.repeat(hc.astype(np.int64), np.diff(np.append(pos, n))), pd.Index(uniq)
    codes, uniq = pd.factorize(s, sort=False)
    return codes.astype(np.int64), pd.Index(uniq)


def _datetime_ordinals(s: pd.Series, name: str, role: str, freq: str | None = None) -> tuple[np.ndarray, str]:
    """Period ordinals of a datetime column (frequency inferred unless given), via its unique dates."""
    if getattr(s.dt, "tz", None) is not None:
        s = s.dt.tz_localize(None)
    vals = s.to_numpy(dtype="datetime64[ns]")
    uniq = pd.DatetimeIndex(np.sort(pd.unique(vals[~np.isnat(vals)])))
    if len(uniq) == 0:  # an all-NaT cohort column: nobody is treated
        return np.full(len(vals), np.nan), freq
    if freq is None:
        freq = _infer_period_freq(uniq)
        if freq is None:
            raise DataError(
                f"Column {name!r} (the {role}) holds dates that are not aligned to years, quarters or "
                f"months and have no regular frequency (or the calendar has gaps). Convert it to periods, "
                f"e.g. data[{name!r}].dt.to_period('Q') for quarters."
            )
    uords = uniq.to_period(freq).asi8
    pos = np.searchsorted(uniq.to_numpy(dtype="datetime64[ns]"), vals)
    out = uords[np.minimum(pos, len(uords) - 1)].astype(np.float64)
    out[np.isnat(vals)] = np.nan
    return out, freq


def _infer_period_freq(uniq: pd.DatetimeIndex) -> str | None:
    """Coarsest of year/quarter/month whose periods the dates start (or end); else days or weeks.

    Daily and weekly data are recognised by their smallest spacing (1 or 7 days), so that a missing
    day or week is reported as a calendar gap rather than as irregular dates.
    """
    norm = uniq.normalize()
    for freq in ("Y", "Q", "M"):
        per = uniq.to_period(freq)
        if per.has_duplicates:
            continue
        if (per.start_time == uniq).all() or (per.end_time.normalize() == norm).all():
            return freq
    if (norm != uniq).any():  # times of day
        return None
    if len(uniq) == 1:
        return "D"
    days = np.asarray(np.diff(uniq) / pd.Timedelta(days=1), dtype=np.float64)
    if days.min() == 1 and np.all(days == np.round(days)):
        return "D"
    if days.min() == 7 and np.all(days % 7 == 0):
        return "W-" + (uniq[0] - pd.Timedelta(days=1)).day_name()[:3].upper()  # weeks starting on these dates
    return None


def _calendar(ords: np.ndarray) -> tuple[np.ndarray, int]:
    """Sorted unique values and the step (smallest difference) of an integer time array."""
    uniq = np.sort(pd.unique(ords))
    step = int(np.diff(uniq).min()) if len(uniq) > 1 else 1
    return uniq, step


def _time_axis(series: pd.Series, name: str) -> tuple[np.ndarray, TimeAxis]:
    """Consecutive integer period codes for a time column, or a DataError."""
    s = series
    if isinstance(s.dtype, pd.PeriodDtype) or pd.api.types.is_datetime64_any_dtype(s.dtype):
        if isinstance(s.dtype, pd.PeriodDtype):
            freq = s.dtype.freq
            ords = s.array.asi8.astype(np.int64)
        else:
            fords, freq = _datetime_ordinals(s, name, "time")
            ords = fords.astype(np.int64)
        lo, hi = int(ords.min()), int(ords.max())
        uniq = np.sort(pd.unique(ords))
        if len(uniq) != hi - lo + 1:
            missing = np.setdiff1d(np.arange(lo, hi + 1), uniq)
            labels = [str(pd.Period(ordinal=int(m), freq=freq)) for m in missing[:5]]
            raise DataError(
                f"Column {name!r} (the time): the calendar has gaps: no rows at all in "
                f"{len(missing)} period(s), e.g. {labels}. Individual units may skip periods, but every "
                f"period between the first and the last must appear for some unit. Check the extract "
                f"(a quarter may be missing), or re-code time."
            )
        levels = pd.PeriodIndex.from_ordinals(np.arange(lo, hi + 1), freq=freq)
        return ords - lo, TimeAxis(levels=pd.Index(levels), kind="period")
    if pd.api.types.is_bool_dtype(s.dtype) or not pd.api.types.is_numeric_dtype(s.dtype) or isinstance(
        s.dtype, pd.CategoricalDtype
    ):
        raise DataError(
            f"Column {name!r} (the time) must be integer periods (e.g. years), pandas Periods or dates; "
            f"it has dtype {s.dtype}. Convert it, e.g. pd.PeriodIndex(data[{name!r}], freq='Q') or "
            f"pd.to_numeric(data[{name!r}])."
        )
    is_int = pd.api.types.is_integer_dtype(s.dtype)
    if is_int:
        ints = s.to_numpy(dtype=np.int64)
    else:
        vals = s.to_numpy(dtype=np.float64)
        fu = np.sort(pd.unique(vals))
        frac = fu[np.mod(fu, 1) != 0]
        if len(frac):
            raise DataError(
                f"Column {name!r} (the time) has non-integer values (e.g. {frac[:3].tolist()}); "
                f"use integer periods (e.g. years) or pandas Periods."
            )
        ints = vals.astype(np.int64)
    uniq, step = _calendar(ints)
    lo, hi = int(uniq[0]), int(uniq[-1])
    if len(uniq) > 1:
        diffs = np.diff(uniq)
        if np.any(diffs != step):
            off_grid = diffs % step != 0
            if off_grid.any():
                raise DataError(
                    f"Column {name!r} (the time) is not on a regular grid: consecutive values differ by "
                    f"{sorted(set(diffs.tolist()))[:4]}. Use integer periods with a constant step, or pandas "
                    f"Periods (e.g. codes like yyyyq or yyyymm must be converted to Periods)."
                )
            missing = np.setdiff1d(np.arange(lo, hi + step, step), uniq)
            raise DataError(
                f"Column {name!r} (the time): the calendar has gaps: no rows at all in {len(missing)} "
                f"period(s), e.g. {missing[:5].tolist()} (step {step}). Individual units may skip periods, "
                f"but every period between the first and the last must appear for some unit. Check the "
                f"extract, or re-code time (codes like yyyyq or yyyymm must be converted to Periods)."
            )
    codes = ints - lo
    if step != 1:
        codes //= step
    levels = pd.Index(uniq if is_int else uniq.astype(np.float64))
    return codes, TimeAxis(levels=levels, kind="int" if is_int else "float")


def _cohort_codes(series: pd.Series, name: str, axis: TimeAxis) -> tuple[np.ndarray, np.ndarray]:
    """Cohort (first treated period) as a float period code; inf = never treated.

    Returns the codes and a mask of rows whose cohort lies after the last period (recoded never).
    """
    s = series
    if axis.kind == "period":
        freq = axis.levels.dtype.freq
        alias = _period_alias(axis.levels.dtype)
        if isinstance(s.dtype, pd.PeriodDtype):
            if s.dtype.freq != freq:
                raise DataError(
                    f"Column {name!r} (the cohort) has frequency {_period_alias(s.dtype)}, but time has "
                    f"{alias}. Express the first treated period in the units of time, e.g. "
                    f"data[{name!r}].dt.asfreq({alias!r}, how='start')."
                )
            na = s.isna().to_numpy()
            ords = s.array.asi8.astype(np.float64)
            ords[na] = np.nan
        elif pd.api.types.is_datetime64_any_dtype(s.dtype):
            ords, _ = _datetime_ordinals(s, name, "cohort", freq=freq)
        else:
            raise DataError(
                f"Column {name!r} (the cohort) must hold Periods (or dates) like the time column: the first "
                f"treated period, NaT for never treated. Got dtype {s.dtype}. Convert it, e.g. "
                f"pd.PeriodIndex(data[{name!r}], freq={alias!r})."
            )
        codes = ords - float(axis.levels[0].ordinal)
        codes[np.isnan(codes)] = np.inf
    else:
        if not _is_plain_numeric(s.dtype) or pd.api.types.is_bool_dtype(s.dtype):
            raise DataError(
                f"Column {name!r} (the cohort) must hold the first treated period in the units of time "
                f"(never treated: NaN, inf or 0). Got dtype {s.dtype}. Convert it with pd.to_numeric."
            )
        vals = s.to_numpy(dtype=np.float64, na_value=np.nan)
        if np.isneginf(vals).any():
            raise DataError(
                f"Column {name!r} (the cohort) has -inf values. Code never-treated units as NaN, +inf or 0."
            )
        never = np.isnan(vals) | np.isposinf(vals)
        zero = vals == 0
        if zero.any():
            if (np.asarray(axis.levels, dtype=np.float64) == 0).any():
                raise DataError(
                    f"Column {name!r} (the cohort) uses 0, but 0 is also a time period, so 0 cannot mean "
                    f"'never treated'. Code never-treated units as NaN or inf."
                )
            never |= zero
        lo = float(axis.levels[0])
        step = float(axis.levels[1] - axis.levels[0]) if axis.n_periods > 1 else 1.0
        codes = (vals - lo) / step
        codes[never] = np.inf
        fin = np.isfinite(codes)
        cu = np.unique(pd.unique(codes[fin]))
        bad = cu[np.mod(cu, 1) != 0]
        if len(bad):
            raise DataError(
                f"Column {name!r} (the cohort) has values {(bad[:3] * step + lo).tolist()} that are not periods "
                f"of the time axis (first {axis.levels[0]}, step {step:g}). Code the first treated period in "
                f"the units of time."
            )
    late = np.isfinite(codes) & (codes > axis.n_periods - 1)
    codes[late] = np.inf
    return codes, late


def _use_table(cells: int, n: int) -> bool:
    """Whether a dense boolean (unit, period) table is cheap enough (else sort)."""
    return cells <= max(_MAX_TABLE_CELLS, 4 * n)


def _period_alias(dtype: pd.PeriodDtype) -> str:
    """The period frequency alias ('Q-DEC'), not the offset alias ('QE-DEC')."""
    return str(dtype)[len("period["):-1]


def _examples(keys: pd.DataFrame, n: int = 3) -> str:
    return "; ".join(", ".join(f"{k}={v!r}" for k, v in row.items()) for row in keys.head(n).to_dict("records"))


def _readonly(*arrays: np.ndarray | None) -> None:
    for a in arrays:
        if a is not None:
            a.flags.writeable = False


def check_clusters(
    cluster: np.ndarray,
    name: str | Sequence[str],
    treated: np.ndarray | None = None,
    *,
    stacklevel: int = 3,
    min_clusters: int = MIN_CLUSTERS,
    min_treated_clusters: int = MIN_TREATED_CLUSTERS,
) -> dict:
    """Count clusters (and treated clusters) and warn when CR1 inference is unreliable.

    Parameters
    ----------
    cluster : ndarray of shape (n,) or (n, c)
        Cluster codes (``ValidatedPanel.cluster``) or raw labels (factorised here). With ``c > 1``
        columns (multiway clustering) every column is checked and the smallest counts are returned.
    name : str or sequence of str
        Column name(s), for the messages.
    treated : ndarray of shape (n,) or None, default=None
        Row-level treatment (e.g. ``ValidatedPanel.treatment``, or ``isfinite(cohort)``). A cluster
        is treated when any of its rows is.
    stacklevel : int, default=3
        Passed to :func:`warnings.warn` (3 points at the caller of an estimator).
    min_clusters, min_treated_clusters : int, default=30, 10
        Warn below these counts.

    Returns
    -------
    dict
        ``{"n_clusters": G, "n_treated_clusters": G1 or None, "n_untreated_clusters": G - G1 or None}``
        (plus ``"by_column"`` for multiway clustering).

    Warns
    -----
    FewClustersWarning
        Fewer than ``min_clusters`` clusters, or fewer than ``min_treated_clusters`` treated ones:
        CR1 standard errors are then too small (MacKinnon & Webb 2017); use ``vcov="CR2"`` or
        ``vcov="wild"``.

    Raises
    ------
    DataError
        Fewer than 2 clusters.
    """
    c = np.asarray(cluster)
    if c.ndim == 2:
        names = [name] * c.shape[1] if isinstance(name, str) else list(name)
        if c.shape[1] == 1:
            return check_clusters(c[:, 0], names[0], treated, stacklevel=stacklevel + 1,
                                  min_clusters=min_clusters, min_treated_clusters=min_treated_clusters)
        by = {
            nm: check_clusters(c[:, j], nm, treated, stacklevel=stacklevel + 1,
                               min_clusters=min_clusters, min_treated_clusters=min_treated_clusters)
            for j, nm in enumerate(names)
        }
        worst = min(by.values(), key=lambda r: r["n_clusters"])
        return {**worst, "by_column": by}
    if not isinstance(name, str):
        name = ", ".join(name)
    if c.dtype.kind not in "iu" or (c.size and c.min() < 0):
        c = pd.factorize(c)[0]
    c = c.astype(np.int64, copy=False)
    G = int(np.count_nonzero(np.bincount(c))) if c.size else 0  # non-empty clusters
    out = {"n_clusters": G, "n_treated_clusters": None, "n_untreated_clusters": None}
    if G < 2:
        raise DataError(
            f"Column {name!r} (the cluster) has {G} cluster; cluster-robust standard errors need at least 2. "
            f"Cluster on a finer level, or use vcov='HC1'."
        )
    if treated is not None:
        ever = np.zeros(int(c.max()) + 1, dtype=bool)
        ever[c[np.asarray(treated) > 0]] = True  # a boolean scatter: cheaper than a weighted bincount
        out["n_treated_clusters"] = G1 = int(ever.sum())
        out["n_untreated_clusters"] = G - G1
    G1 = out["n_treated_clusters"]
    few_total = G < min_clusters
    few_treated = G1 is not None and G1 < min_treated_clusters
    if few_total or few_treated:
        counts = f"{G} clusters" + (f", {G1} of them treated" if G1 is not None else "")
        why = []
        if few_total:
            why.append(f"fewer than {min_clusters} clusters")
        if few_treated:
            why.append(f"fewer than {min_treated_clusters} treated clusters, where CR1 fails")
        msg = (
            f"Column {name!r} (the cluster) has only {counts} ({' and '.join(why)}). With few clusters, "
            f"or few treated clusters, CR1 standard errors are too small and tests over-reject. "
            f"Use vcov='CR2' (Bell-McCaffrey, Satterthwaite df) or vcov='wild' (wild cluster bootstrap)."
        )
        warnings.warn(msg, FewClustersWarning, stacklevel=stacklevel)
        logger.warning(msg)
    return out


# ----------------------------------------------------------------------------------------------
# main entry point


def validate_panel(
    data: pd.DataFrame,
    *,
    outcome: str,
    time: str,
    unit: str | None = None,
    treatment: str | None = None,
    cohort: str | None = None,
    group: str | None = None,
    cluster: str | Sequence[str] | None = None,
    weights: str | None = None,
    covariates: Sequence[str] = (),
    dropna: bool = False,
    drop_singletons: bool = False,
    require_pre_period: bool = True,
    require_untreated: bool = True,
    already_treated: str = "raise",
    allow_exit: bool = False,
    stacklevel: int = 3,
) -> ValidatedPanel:
    """Validate a long panel and return its arrays.

    Parameters
    ----------
    data : pandas.DataFrame
        One row per unit and period (panel) or per observation (repeated cross-section, ``unit=None``).
        Never modified; rows need not be sorted; the panel may be unbalanced.
    outcome, time : str
        Outcome column (numeric or boolean) and time column (integers, Periods or dates).
    unit : str or None, default=None
        Unit identifier (any hashable: string member ids are fine). ``None`` for repeated
        cross-sections.
    treatment : str or None, default=None
        0/1 (or boolean) treated-and-post indicator; must be absorbing within unit unless
        ``allow_exit=True``.
    cohort : str or None, default=None
        First treated period, in the units of ``time`` (never treated: NaN, inf, or 0).
    group : str or None, default=None
        0/1 treated-group indicator for 2x2 designs on repeated cross-sections.
    cluster : str or list of str or None, default=None
        Clustering variable(s). Count them with :func:`check_clusters`.
    weights : str or None, default=None
        Non-negative observation weights. Rows with weight 0 are dropped and recorded.
    covariates : sequence of str, default=()
        Numeric, boolean or categorical columns (categorical/object columns are expanded to
        dummies, first level omitted, named ``col[level]``).
    dropna : bool, default=False
        Drop rows with missing values in any used column (and record the count) instead of raising.
    drop_singletons : bool, default=False
        Drop units observed once (Stata reghdfe's policy) instead of keeping them (R fixest's).
    require_pre_period, require_untreated : bool, default=True
        Raise when no treated unit is ever observed untreated, or when there is no comparison
        (no untreated observation, unit or group).
    already_treated : {"raise", "drop", "keep"}, default="raise"
        What to do with units whose cohort is at or before the first period (no pre-period).
    allow_exit : bool, default=False
        Allow the treatment to switch off within a unit.
    stacklevel : int, default=3
        Stack level of the warnings (3 points at the caller of an estimator that calls this).

    Returns
    -------
    ValidatedPanel
        Read-only arrays for the kept rows, in the user's row order; ``dropped`` and ``notes``
        record what was done.

    Raises
    ------
    DataError
        With the column, the count and the fix, for every violation of the contract.

    Warns
    -----
    DroppedRowsWarning
        Rows were dropped (``dropna``, zero weights, ``already_treated="drop"``, ``drop_singletons``).
    SingletonWarning
        Units observed once were found and kept.

    Notes
    -----
    The checks are vectorised (O(n) hashing, bincounts and lookup tables; no loop over rows or
    units), so an 8-million-row claims panel validates in well under a second.
    """
    covariates = check_columns_arg(covariates, "covariates")
    clusters = check_columns_arg(cluster, "cluster")
    check_option(already_treated, "already_treated", ["raise", "drop", "keep"], "validate_panel")
    roles = {
        "outcome": (outcome,),
        "time": (time,),
        "unit": (unit,) if unit else (),
        "treatment": (treatment,) if treatment else (),
        "cohort": (cohort,) if cohort else (),
        "group": (group,) if group else (),
        "cluster": clusters,
        "weights": (weights,) if weights else (),
        "covariate": covariates,
    }
    _require_columns(data, roles)
    n_input = len(data)
    if n_input == 0:
        raise DataError("`data` has no rows.")
    dropped: list[DropRecord] = []
    notes: list[str] = []

    # ---- missing values ------------------------------------------------------------------------
    used = list(dict.fromkeys(c for names in roles.values() for c in names))
    keep = np.ones(n_input, dtype=bool)
    counts = {}
    for c in used:
        if c == cohort:  # NaN cohort means never treated
            continue
        m = _missing_mask(data[c])
        if m is not None:
            counts[c] = int(m.sum())
            keep &= ~m
    if counts:
        n_bad = n_input - int(keep.sum())
        detail = ", ".join(f"{c!r}: {k}" for c, k in counts.items())
        if not dropna:
            raise DataError(
                f"Missing (or infinite) values in {n_bad} of {n_input} rows ({detail}). Fill or remove "
                f"them, or pass dropna=True to drop these rows (the count is recorded on the result)."
            )
        dropped.append(DropRecord("missing values", n_bad, detail))

    # ---- weights -------------------------------------------------------------------------------
    w = None
    if weights:
        w_all = _numeric(data[weights], weights, "weights")
        neg = keep & (w_all < 0)
        if neg.any():
            raise DataError(
                f"Column {weights!r} (the weights) has {int(neg.sum())} negative values; weights must be "
                f"non-negative. Fix or remove those rows (sampling and inverse-probability weights are >= 0)."
            )
        zero = keep & (w_all == 0)
        if zero.any():
            dropped.append(DropRecord("zero weight", int(zero.sum()), f"column {weights!r}"))
            keep &= ~zero

    idx = None if keep.all() else np.flatnonzero(keep)
    if idx is not None and len(idx) == 0:
        raise DataError(
            f"No rows left after dropping {n_input} rows: " + "; ".join(str(r) for r in dropped) + "."
        )

    def take(c: str) -> pd.Series:
        s = data[c]
        return s if idx is None else s.iloc[idx]

    if weights:
        w = w_all if idx is None else w_all[idx]

    # ---- outcome and time ----------------------------------------------------------------------
    y = _numeric(take(outcome), outcome, "outcome")
    tcode, axis = _time_axis(take(time), time)
    T = axis.n_periods
    n = len(y)

    # ---- unit: codes, duplicates ---------------------------------------------------------------
    ucode = ulev = None
    is_sorted = False
    if unit:
        ucode, ulev = _codes(take(unit))
        n_u = len(ulev)
        n_obs_u = np.bincount(ucode, minlength=n_u)  # rows per unit
        key = ucode * T + tcode
        is_sorted = bool(n < 2 or np.all(key[1:] > key[:-1]))
        if not is_sorted:
            if _use_table(n_u * T, n):
                seen = np.zeros(n_u * T, dtype=bool)
                seen[key] = True
                has_dup = int(np.count_nonzero(seen)) < n
            else:
                sk = np.sort(key)
                has_dup = bool(np.any(sk[1:] == sk[:-1]))
            if has_dup:
                dup = pd.Series(key).duplicated(keep=False).to_numpy()
                pos = np.flatnonzero(dup)[:100]
                ex = pd.DataFrame({unit: take(unit).iloc[pos].to_numpy(), time: take(time).iloc[pos].to_numpy()})
                ex = ex.drop_duplicates()
                raise DataError(
                    f"{int(dup.sum())} rows share a ({unit!r}, {time!r}) pair with another row, e.g. "
                    f"{_examples(ex)}. Aggregate to one row per unit-period (e.g. sum claims within "
                    f"member-quarter) before estimating."
                )

    # ---- treatment: 0/1, absorbing -------------------------------------------------------------
    d = None
    unit_stats = None  # per unit: (ever treated, has an untreated row)
    unit_entry = None  # per unit: (first treated period code, has an untreated row); exact only without drops
    if treatment:
        d = _numeric(take(treatment), treatment, "treatment")
        bad = (d != 0) & (d != 1)
        if bad.any():
            raise DataError(
                f"Column {treatment!r} (the treatment) must be 0/1 (treated and post); found values "
                f"{np.unique(d[bad])[:5].tolist()} in {int(bad.sum())} rows. Recode it as 0/1 or boolean."
            )
        if unit:
            on = d == 1
            n_on = np.bincount(ucode, weights=d, minlength=n_u)
            n_off = n_obs_u - n_on
            first_on = np.full(n_u, T, dtype=np.int64)
            if is_sorted:
                # rows are sorted by (unit, time): a switch is a change of d between adjacent rows of a unit
                same = ucode[1:] == ucode[:-1]
                off_rows = same & (d[1:] < d[:-1])
                switched_off = np.zeros(n_u, dtype=bool)
                switched_off[ucode[1:][off_rows]] = True
                entry = on.copy()
                entry[1:] &= ~(same & on[:-1])
                first_on[ucode[entry]] = tcode[entry]  # one entry row per unit when absorbing
                if switched_off.any():
                    np.minimum.at(first_on, ucode[entry], tcode[entry])
            else:
                np.minimum.at(first_on, ucode[on], tcode[on])
                last_off = np.full(n_u, -1, dtype=np.int64)
                np.maximum.at(last_off, ucode[~on], tcode[~on])
                switched_off = last_off > first_on
            if switched_off.any() and not allow_exit:
                ex = list(ulev[np.flatnonzero(switched_off)[:3]])
                raise DataError(
                    f"Column {treatment!r} (the treatment) switches off (1 then 0) for "
                    f"{int(switched_off.sum())} units (e.g. {unit}={ex}): treatment must be absorbing. "
                    f"evalkit attributes by intent-to-treat at entry: keep the flag on after entry (or "
                    f"pass allow_exit=True where the design supports it)."
                )
            unit_stats = (n_on > 0, n_off > 0)
            unit_entry = (first_on, n_off > 0)

    # ---- cohort --------------------------------------------------------------------------------
    g = None
    if cohort:
        g, late = _cohort_codes(take(cohort), cohort, axis)
        if unit:
            rep = np.empty(n_u, dtype=np.float64)
            rep[ucode] = g  # any row's value; a non-constant unit has a row that differs from it
            differs = g != rep[ucode]
            if differs.any():
                varying = np.zeros(n_u, dtype=bool)
                varying[ucode[differs]] = True
                ex = list(ulev[np.flatnonzero(varying)[:3]])
                raise DataError(
                    f"Column {cohort!r} (the cohort) is not constant within unit for {int(varying.sum())} "
                    f"units (e.g. {unit}={ex}). The cohort is the unit's first treated period: set it once "
                    f"per unit (e.g. data.groupby({unit!r})[{cohort!r}].transform('min'))."
                )
        if late.any():
            n_late_u = int(np.count_nonzero(np.bincount(ucode[late], minlength=n_u))) if unit else None
            what = f"{n_late_u} units ({int(late.sum())} rows)" if unit else f"{int(late.sum())} rows"
            msg = (
                f"Column {cohort!r}: {what} first treated after the last period ({axis.levels[-1]}) "
                f"recoded as never treated"
            )
            logger.info(msg)
            notes.append(msg)

    # ---- drops of whole units: already treated, singletons --------------------------------------
    sel = None  # rows kept by this stage (None = all)
    if cohort:
        pre = np.isfinite(g) & (g <= 0)
        if pre.any():
            n_units_pre = int(np.count_nonzero(np.bincount(ucode[pre], minlength=n_u))) if unit else None
            who = f"{n_units_pre} units ({int(pre.sum())} rows)" if unit else f"{int(pre.sum())} rows"
            msg = (
                f"{who} in column {cohort!r} are treated from the first period ({axis.levels[0]}) on, "
                f"so they have no pre-period"
            )
            if already_treated == "raise":
                raise DataError(
                    msg + ". Drop them, or pass already_treated='drop' (R did drops them and says so)."
                )
            if already_treated == "drop":
                dropped.append(DropRecord("treated in the first period (no pre-period)", int(pre.sum()), msg))
                sel = ~pre
            else:
                notes.append(msg + "; kept (already_treated='keep')")
    if unit:
        nper = n_obs_u if sel is None else np.bincount(ucode[sel], minlength=n_u)
        single_u = nper == 1
        n_single = int(single_u.sum())
        if n_single:
            if drop_singletons:
                dropped.append(DropRecord(
                    "singleton units (observed once)", n_single, "drop_singletons=True (Stata reghdfe policy)"
                ))
                s_rows = ~single_u[ucode]
                sel = s_rows if sel is None else sel & s_rows
            else:
                msg = (
                    f"{n_single} units in {unit!r} are observed once (singletons). They are kept, as in "
                    f"R fixest (Stata reghdfe drops them): they do not change the coefficients but count in N. "
                    f"Pass drop_singletons=True to drop them."
                )
                logger.info(msg)
                notes.append(msg)
                warnings.warn(msg, SingletonWarning, stacklevel=stacklevel)

    if sel is not None:
        unit_entry = None  # row drops inside kept units would make it stale
        if not sel.any():
            raise DataError("No rows left after dropping: " + "; ".join(str(r) for r in dropped) + ".")
        rows = np.flatnonzero(sel)
        idx = rows if idx is None else idx[rows]
        y, tcode = y[rows], tcode[rows]
        w = None if w is None else w[rows]
        d = None if d is None else d[rows]
        g = None if g is None else g[rows]
        if unit:
            kept_units = np.bincount(ucode[rows], minlength=n_u) > 0
            remap = np.cumsum(kept_units) - 1
            ucode, ulev = remap[ucode[rows]], ulev[kept_units]
            if unit_stats is not None:
                unit_stats = tuple(a[kept_units] for a in unit_stats)
            n_u = len(ulev)
        present = np.bincount(tcode, minlength=T) > 0
        if not present.all():
            msg = (
                f"after the drops no rows remain in period(s) "
                f"[{', '.join(str(v) for v in axis.levels[np.flatnonzero(~present)[:5]])}]; the time axis keeps them"
            )
            logger.info(msg)
            notes.append(msg)

    # ---- identification (on the final sample) ---------------------------------------------------
    if treatment:
        if d.max() == 0:
            raise DataError(
                f"Column {treatment!r} (the treatment): no treated observations (all 0). Check the "
                f"treatment flag (1 = treated and post)."
            )
        if require_untreated and d.min() == 1:
            raise DataError(
                f"Column {treatment!r} (the treatment): no untreated observations - all rows are treated. "
                f"A DiD needs control units or pre-periods; include them."
            )
        if unit_stats is not None:
            ever, has_off = unit_stats
            if require_pre_period and not (ever & has_off).any():
                raise DataError(
                    f"Column {treatment!r} (the treatment): no pre-period - every treated unit is treated in "
                    f"all its observed periods, so the effect is not identified from within-unit changes. "
                    f"Include periods before entry."
                )
            if require_untreated:
                # treatment that is a function of time alone is collinear with the period effects
                n_t = np.bincount(tcode, minlength=T)
                on_t = np.bincount(tcode, weights=d, minlength=T)
                if np.all((on_t == 0) | (on_t == n_t)):
                    start = axis.levels[int(np.flatnonzero(on_t > 0)[0])]
                    raise DataError(
                        f"Column {treatment!r} (the treatment): no untreated units - in every period all units "
                        f"in {unit!r} have the same treatment status (all treated from {start}), so treatment "
                        f"is collinear with time. Include never-treated or not-yet-treated (comparison) units."
                    )
    if cohort:
        fin = np.isfinite(g)
        if not fin.any():
            raise DataError(
                f"Column {cohort!r} (the cohort): no treated units (every unit is never treated). Check the "
                f"cohort coding (first treated period; NaN, inf or 0 for never treated)."
            )
        if require_untreated and fin.all() and g.min() == g.max():
            raise DataError(
                f"Column {cohort!r} (the cohort): no untreated units (no never-treated units and a single "
                f"cohort, {axis.label(g[0])}). A DiD needs a comparison group: include never-treated units."
            )

    # ---- group (2x2 repeated cross-sections) ----------------------------------------------------
    grp = None
    if group:
        grp = _numeric(take(group), group, "group")
        if not ((grp == 0) | (grp == 1)).all():
            raise DataError(
                f"Column {group!r} (the group) must be 0/1 (1 = treated group); found values "
                f"{np.unique(grp[(grp != 0) & (grp != 1)])[:5].tolist()}. Recode it as 0/1 or boolean."
            )
        if require_untreated and grp.min() == grp.max():
            which = "untreated (comparison)" if grp[0] == 1 else "treated"
            raise DataError(
                f"Column {group!r} (the group): no {which} group - all rows have {group}={int(grp[0])}. "
                f"A 2x2 DiD needs both groups."
            )

    # ---- covariates and clusters (on the final rows) -------------------------------------------
    X, names = _covariate_matrix(take, covariates, len(y))
    cl = None
    if clusters:
        cl = np.column_stack([_codes(take(c))[0] for c in clusters])

    if dropped:
        total = sum(r.n_rows for r in dropped)
        msg = f"{total} of {n_input} rows dropped: " + "; ".join(str(r) for r in dropped)
        logger.info(msg)
        warnings.warn(msg, DroppedRowsWarning, stacklevel=stacklevel)

    row_index = np.arange(n_input, dtype=np.intp) if idx is None else np.asarray(idx, dtype=np.intp)
    if unit_entry is not None:
        _readonly(*unit_entry)
    _readonly(y, X, w, ucode, tcode, d, g, cl, grp, row_index)
    return ValidatedPanel(
        y=y,
        X=X,
        covariate_names=names,
        weights=w,
        unit=ucode,
        unit_levels=ulev,
        time=tcode,
        time_axis=axis,
        treatment=d,
        cohort=g,
        cluster=cl,
        cluster_names=clusters,
        group=grp,
        row_index=row_index,
        n_input_rows=n_input,
        dropped=tuple(dropped),
        roles={k: v for k, v in roles.items() if v},
        notes=tuple(notes),
        sorted_by_unit_time=is_sorted,  # a subset of sorted rows stays sorted (unit codes keep their order)
        unit_entry=None if unit_entry is None else unit_entry[0],
        unit_has_untreated=None if unit_entry is None else unit_entry[1],
    )


def _covariate_matrix(take, covariates: Sequence[str], n: int) -> tuple[np.ndarray, tuple[str, ...]]:
    blocks, names = [], []
    for c in covariates:
        s = take(c)
        if _is_plain_numeric(s.dtype):
            blocks.append(s.to_numpy(dtype=np.float64)[:, None])
            names.append(c)
            continue
        codes, levels = pd.factorize(s, sort=True)
        k = len(levels) - 1
        if n * k * 8 > _MAX_DUMMY_BYTES:
            raise DataError(
                f"Column {c!r} (a covariate) has {len(levels)} levels: its dummies would need "
                f"{n * k * 8 / 2**30:.1f} GiB. Coarsen it, or use it as a fixed effect or cluster instead."
            )
        D = np.zeros((n, k), dtype=np.float64)
        rows = np.flatnonzero(codes > 0)
        D[rows, codes[rows] - 1] = 1.0
        blocks.append(D)
        names.extend(f"{c}[{lev}]" for lev in levels[1:])
    if not blocks:
        return np.empty((n, 0)), ()
    X = blocks[0].copy() if len(blocks) == 1 else np.hstack(blocks)
    return X, tuple(names)
