"""The data contract: validate a long panel (or repeated cross-section) given column roles.

Every design calls :func:`validate_panel` and works on the :class:`ValidatedPanel` it returns:
numpy arrays (outcome, covariates, weights) and integer codes (unit, period, cluster, cohort),
computed once, vectorised, without sorting or copying the user's frame.

Conventions (inherited by every design)
---------------------------------------
* **Time** is mapped to consecutive integer periods ``0 .. T-1``. Accepted: integers (years),
  floats holding integers, :class:`pandas.Period`, and datetimes with a regular frequency
  (converted to periods). A unit may skip periods (enrollment churn); a period missing from
  the whole calendar raises, because "consecutive periods" would then be a lie.
* **Cohort** (first treated period) is in the units of ``time``. Never-treated units may be coded
  ``NaN``/``NaT``, ``+inf``, or ``0`` (``0`` only when no period is 0, as in R ``did``).
  Cohorts after the last period are recoded to never-treated (they are untreated throughout the
  sample) and the recoding is recorded.
* **Treatment** (0/1 treated-and-post) is absorbing: once 1, it stays 1 within a unit. Real
  members change organisations and organisations leave contracts; evalkit treats attribution as
  intent-to-treat at entry (see ``docs/data_contract.md``).
* **Missing values** raise by default, with counts per column. ``dropna=True`` drops the rows and
  records how many on the result.
* **Singletons** (a unit observed once) are kept, as R ``fixest`` does (Stata ``reghdfe`` drops
  them); they do not affect the coefficients. ``drop_singletons=True`` drops and records them.
"""
from __future__ import annotations

import logging
import warnings
from dataclasses import dataclass, field
from typing import Sequence

import numpy as np
import pandas as pd

from .._validation import check_columns_arg
from ..errors import DataError, DroppedRowsWarning, FewClustersWarning, SingletonWarning

__all__ = ["DropRecord", "ValidatedPanel", "validate_panel", "check_clusters", "TimeAxis"]

logger = logging.getLogger(__name__)

#: Below this many clusters CR1 inference is unreliable (warn).
MIN_CLUSTERS = 30
#: Below this many treated clusters CR1 over-rejects badly (MacKinnon & Webb 2017): warn and suggest CR2/wild.
MIN_TREATED_CLUSTERS = 10


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
    """Arrays of a validated panel, ready for estimation (rows in the user's order, minus drops)."""

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

    @property
    def nobs(self) -> int:
        return int(self.y.shape[0])

    @property
    def n_units(self) -> int | None:
        return None if self.unit is None else int(self.unit.max()) + 1 if self.nobs else 0

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
    cols = set(map(str, data.columns)) | set(data.columns)
    for role, names in roles.items():
        for name in names:
            if name not in cols:
                close = [c for c in data.columns if str(c).lower() == str(name).lower()]
                hint = f" Did you mean {close[0]!r}?" if close else ""
                raise DataError(
                    f"Column {name!r} (the {role}) not found in data.{hint} "
                    f"Available columns: {list(data.columns)[:20]}."
                )
    if data.columns.duplicated().any():
        dup = list(data.columns[data.columns.duplicated()])
        raise DataError(f"Column names must be unique; duplicated: {dup}. Rename them.")


def _numeric(series: pd.Series, name: str, role: str) -> np.ndarray:
    """Numeric float64 view of a column; booleans become 0/1; anything else raises."""
    s = series
    if isinstance(s.dtype, pd.CategoricalDtype):
        raise DataError(
            f"Column {name!r} (the {role}) is categorical; it must be numeric. "
            f"Convert it, e.g. data[{name!r}].astype(float), or pass it as a covariate to get dummies."
        )
    if pd.api.types.is_bool_dtype(s.dtype):
        return s.to_numpy(dtype=np.float64, na_value=np.nan)
    if pd.api.types.is_numeric_dtype(s.dtype):
        return s.to_numpy(dtype=np.float64, na_value=np.nan)
    example = s.dropna().iloc[:3].tolist() if len(s.dropna()) else []
    raise DataError(
        f"Column {name!r} (the {role}) must be numeric (or boolean); it has dtype {s.dtype} "
        f"(e.g. {example}). Convert it with pd.to_numeric(data[{name!r}])."
    )


def _missing_mask(series: pd.Series) -> np.ndarray:
    m = series.isna().to_numpy()
    if pd.api.types.is_float_dtype(series.dtype):
        # +-inf in an outcome or covariate is as unusable as NaN
        m = m | np.isinf(series.to_numpy(dtype=np.float64, na_value=np.nan))
    return m


def _time_axis(series: pd.Series, name: str) -> tuple[np.ndarray, TimeAxis]:
    """Consecutive integer period codes for a time column, or a DataError."""
    s = series
    if isinstance(s.dtype, pd.PeriodDtype):
        ords = s.array.asi8.astype(np.int64)
        lo, hi = int(ords.min()), int(ords.max())
        uniq = np.unique(ords)
        if len(uniq) != hi - lo + 1:
            missing = sorted(set(range(lo, hi + 1)) - set(uniq.tolist()))[:5]
            labels = [str(pd.Period(ordinal=m, freq=s.dtype.freq)) for m in missing]
            raise DataError(
                f"Column {name!r} (the time): the calendar has gaps: no rows at all in period(s) "
                f"{labels}. Individual units may skip periods, but every period between the first "
                f"and the last must appear for some unit. Check the extract, or re-code time."
            )
        levels = pd.PeriodIndex.from_ordinals(np.arange(lo, hi + 1), freq=s.dtype.freq)
        return ords - lo, TimeAxis(levels=pd.Index(levels), kind="period")
    if pd.api.types.is_datetime64_any_dtype(s.dtype):
        uniq = pd.DatetimeIndex(np.unique(s.to_numpy()))
        freq = pd.infer_freq(uniq) if len(uniq) >= 3 else None
        if freq is None:
            raise DataError(
                f"Column {name!r} (the time) holds dates without a regular frequency. Convert it to "
                f"periods, e.g. data[{name!r}].dt.to_period('Q') for quarters."
            )
        per = s.dt.to_period(freq)
        return _time_axis(per, name)
    if pd.api.types.is_bool_dtype(s.dtype) or not pd.api.types.is_numeric_dtype(s.dtype):
        raise DataError(
            f"Column {name!r} (the time) must be integer periods (e.g. years), pandas Periods or dates; "
            f"it has dtype {s.dtype}. Convert it, e.g. pd.PeriodIndex(data[{name!r}], freq='Q')."
        )
    vals = s.to_numpy(dtype=np.float64)
    uniq = np.unique(vals)
    if not np.all(np.equal(np.mod(uniq, 1), 0)):
        raise DataError(
            f"Column {name!r} (the time) has non-integer values (e.g. {uniq[np.mod(uniq, 1) != 0][:3].tolist()}); "
            f"use integer periods or pandas Periods."
        )
    if len(uniq) == 1:
        step = 1.0
    else:
        diffs = np.diff(uniq)
        step = float(diffs.min())
        if not np.all(diffs == step):
            gaps = uniq[1:][diffs != step][:5]
            raise DataError(
                f"Column {name!r} (the time): the calendar has gaps (consecutive values differ by "
                f"{sorted(set(diffs.tolist()))[:4]}; first gap before {gaps.tolist()}). Individual units "
                f"may skip periods, but every period must appear for some unit."
            )
    codes = np.rint((vals - uniq[0]) / step).astype(np.int64)
    is_int = pd.api.types.is_integer_dtype(s.dtype)
    levels = pd.Index(uniq.astype(np.int64) if is_int else uniq)
    return codes, TimeAxis(levels=levels, kind="int" if is_int else "float")


def _cohort_codes(series: pd.Series, name: str, axis: TimeAxis) -> tuple[np.ndarray, int]:
    """Cohort (first treated period) as a float period code; inf = never treated.

    Returns the codes and the number of rows whose cohort lies after the last period (recoded never).
    """
    s = series
    if axis.kind == "period":
        if isinstance(s.dtype, pd.PeriodDtype):
            if s.dtype.freq != axis.levels.dtype.freq:
                raise DataError(
                    f"Column {name!r} (the cohort) has frequency {s.dtype.freq}, but time has "
                    f"{axis.levels.dtype.freq}. Express the first treated period in the units of time."
                )
            na = s.isna().to_numpy()
            ords = s.array.asi8.astype(np.float64)
            codes = ords - float(axis.levels[0].ordinal)
            codes[na] = np.inf
        else:
            raise DataError(
                f"Column {name!r} (the cohort) must be a Period column like the time column "
                f"(first treated period; NaT for never treated). Got dtype {s.dtype}."
            )
    else:
        if not pd.api.types.is_numeric_dtype(s.dtype) or pd.api.types.is_bool_dtype(s.dtype):
            raise DataError(
                f"Column {name!r} (the cohort) must hold the first treated period in the units of time "
                f"(never treated: NaN, inf or 0). Got dtype {s.dtype}."
            )
        vals = s.to_numpy(dtype=np.float64, na_value=np.nan)
        never = np.isnan(vals) | np.isposinf(vals)
        zero = vals == 0
        if zero.any():
            if 0 in set(np.asarray(axis.levels, dtype=float).tolist()):
                raise DataError(
                    f"Column {name!r} (the cohort) uses 0, but 0 is also a time period, so 0 cannot mean "
                    f"'never treated'. Code never-treated units as NaN or inf."
                )
            never |= zero
        step = float(axis.levels[1] - axis.levels[0]) if axis.n_periods > 1 else 1.0
        codes = (vals - float(axis.levels[0])) / step
        codes[never] = np.inf
        fin = np.isfinite(codes)
        if not np.all(np.equal(np.mod(codes[fin], 1), 0)):
            bad = np.unique(vals[fin][np.mod(codes[fin], 1) != 0])[:3]
            raise DataError(
                f"Column {name!r} (the cohort) has values {bad.tolist()} that are not periods of the time axis."
            )
    late = np.isfinite(codes) & (codes > axis.n_periods - 1)
    n_late = int(late.sum())
    codes[late] = np.inf
    return codes, n_late


def _examples(keys: pd.DataFrame, n: int = 3) -> str:
    return "; ".join(", ".join(f"{k}={v!r}" for k, v in row.items()) for row in keys.head(n).to_dict("records"))


def check_clusters(
    cluster: np.ndarray,
    name: str,
    treated: np.ndarray | None = None,
    *,
    stacklevel: int = 3,
) -> dict:
    """Count clusters (and treated clusters) and warn when CR1 inference is unreliable.

    Returns ``{"n_clusters": G, "n_treated_clusters": G1 or None}``.
    """
    G = int(cluster.max()) + 1 if cluster.size else 0
    out = {"n_clusters": G, "n_treated_clusters": None}
    if treated is not None:
        ever = np.bincount(cluster, weights=(treated > 0).astype(float), minlength=G) > 0
        out["n_treated_clusters"] = int(ever.sum())
    G1 = out["n_treated_clusters"]
    if G < 2:
        raise DataError(
            f"Column {name!r} (the cluster) has {G} cluster; cluster-robust standard errors need at least 2. "
            f"Cluster on a finer level, or use vcov='HC1'."
        )
    if G < MIN_CLUSTERS or (G1 is not None and G1 < MIN_TREATED_CLUSTERS):
        what = f"{G} clusters" + (f", {G1} of them treated" if G1 is not None else "")
        msg = (
            f"Only {what} in {name!r}. With few (treated) clusters, CR1 standard errors are too small "
            f"and tests over-reject (below ~{MIN_TREATED_CLUSTERS} treated clusters CR1 fails). "
            f"Use vcov='CR2' (Bell-McCaffrey with Satterthwaite df) or vcov='wild' (wild cluster bootstrap)."
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
) -> ValidatedPanel:
    """Validate a long panel and return its arrays.

    Parameters
    ----------
    data : pandas.DataFrame
        One row per unit and period (panel) or per observation (repeated cross-section, ``unit=None``).
    outcome, time : str
        Outcome column (numeric or boolean) and time column (integers, Periods or dates).
    unit : str or None, default=None
        Unit identifier (any hashable: string member ids are fine). ``None`` for repeated
        cross-sections.
    treatment : str or None
        0/1 (or boolean) treated-and-post indicator; must be absorbing within unit unless
        ``allow_exit=True``.
    cohort : str or None
        First treated period, in the units of ``time`` (never treated: NaN, inf, or 0).
    group : str or None
        0/1 treated-group indicator for 2x2 designs on repeated cross-sections.
    cluster : str or list of str or None
        Clustering variable(s).
    weights : str or None
        Non-negative observation weights. Rows with weight 0 are dropped and recorded.
    covariates : sequence of str
        Numeric, boolean or categorical columns (categorical/object columns are expanded to
        dummies, first level omitted, named ``col[level]``).
    dropna : bool, default=False
        Drop rows with missing values in any used column (and record the count) instead of raising.
    drop_singletons : bool, default=False
        Drop units observed once (Stata reghdfe's policy) instead of keeping them (R fixest's).
    require_pre_period, require_untreated : bool, default=True
        Raise when no treated unit is ever observed untreated, or when no unit is untreated.
    already_treated : {"raise", "drop", "keep"}, default="raise"
        What to do with units whose cohort is at or before the first period (no pre-period).
    allow_exit : bool, default=False
        Allow the treatment to switch off within a unit.

    Returns
    -------
    ValidatedPanel

    Raises
    ------
    DataError
        With the column, the count and the fix, for every violation of the contract.
    """
    covariates = check_columns_arg(covariates, "covariates")
    clusters = check_columns_arg(cluster, "cluster")
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

    # ---- missing values ------------------------------------------------------------------------
    used = list(dict.fromkeys(c for names in roles.values() for c in names))
    keep = np.ones(n_input, dtype=bool)
    counts = {}
    for c in used:
        if c == cohort:  # NaN cohort means never treated
            continue
        m = _missing_mask(data[c])
        if m.any():
            counts[c] = int(m.sum())
            keep &= ~m
    if counts:
        n_bad = int((~keep).sum())
        detail = ", ".join(f"{c!r}: {k}" for c, k in counts.items())
        if not dropna:
            raise DataError(
                f"Missing values in {n_bad} of {n_input} rows ({detail}). Fill or remove them, "
                f"or pass dropna=True to drop these rows (the count is recorded on the result)."
            )
        dropped.append(DropRecord("missing values", n_bad, detail))
    df = data if keep.all() else data.loc[keep]

    # ---- weights -------------------------------------------------------------------------------
    w = None
    if weights:
        w = _numeric(df[weights], weights, "weights")
        if (w < 0).any():
            raise DataError(
                f"Column {weights!r} (the weights) has {int((w < 0).sum())} negative values; weights "
                f"must be non-negative."
            )
        zero = w == 0
        if zero.any():
            dropped.append(DropRecord("zero weight", int(zero.sum()), f"column {weights!r}"))
            df = df.loc[~zero]
            w = w[~zero]
            keep[np.flatnonzero(keep)[zero]] = False

    # ---- outcome -------------------------------------------------------------------------------
    y = _numeric(df[outcome], outcome, "outcome")

    # ---- time ----------------------------------------------------------------------------------
    tcode, axis = _time_axis(df[time], time)

    # ---- unit ----------------------------------------------------------------------------------
    ucode = ulev = None
    if unit:
        ucode, ulev = pd.factorize(df[unit], sort=False)
        ucode = ucode.astype(np.int64)
        ulev = pd.Index(ulev)
        key = ucode * axis.n_periods + tcode
        dup = pd.Series(key).duplicated(keep=False).to_numpy()
        if dup.any():
            ex = df.loc[dup, [unit, time]].drop_duplicates().head(3)
            raise DataError(
                f"{int(dup.sum())} rows share a ({unit!r}, {time!r}) pair with another row, e.g. "
                f"{_examples(ex)}. Aggregate to one row per unit-period (e.g. sum claims within "
                f"member-quarter) before estimating."
            )

    # ---- treatment -----------------------------------------------------------------------------
    d = None
    if treatment:
        d = _numeric(df[treatment], treatment, "treatment")
        bad = ~np.isin(d, (0.0, 1.0))
        if bad.any():
            raise DataError(
                f"Column {treatment!r} (the treatment) must be 0/1 (treated and post); found values "
                f"{np.unique(d[bad])[:5].tolist()}."
            )
        if unit and not allow_exit:
            n_u = len(ulev)
            last_untreated = np.full(n_u, -1, dtype=np.int64)
            np.maximum.at(last_untreated, ucode[d == 0], tcode[d == 0])
            first_treated = np.full(n_u, np.iinfo(np.int64).max, dtype=np.int64)
            np.minimum.at(first_treated, ucode[d == 1], tcode[d == 1])
            off = last_untreated > first_treated
            if off.any():
                ex = list(ulev[np.flatnonzero(off)[:3]])
                raise DataError(
                    f"Column {treatment!r} (the treatment) switches off for {int(off.sum())} units "
                    f"(e.g. {unit}={ex}): treatment must be absorbing. evalkit treats attribution as "
                    f"intent-to-treat at entry: keep the flag on after entry (or pass allow_exit=True "
                    f"where the design supports it)."
                )
            if require_pre_period:
                ever = first_treated < np.iinfo(np.int64).max
                if ever.any() and not (ever & (last_untreated >= 0)).any():
                    raise DataError(
                        f"Column {treatment!r}: no pre-period — every treated unit is treated in all its "
                        f"observed periods, so the effect is not identified from within-unit changes. "
                        f"Include periods before entry."
                    )
        if require_untreated and d.min() == 1:
            raise DataError(
                f"Column {treatment!r}: no untreated observations — all rows are treated. A DiD needs "
                f"control units or pre-periods."
            )
        if d.max() == 0:
            raise DataError(f"Column {treatment!r}: no treated observations (all 0). Check the treatment flag.")

    # ---- cohort --------------------------------------------------------------------------------
    g = None
    if cohort:
        g, n_late = _cohort_codes(df[cohort], cohort, axis)
        if n_late:
            logger.info("cohort %r: %d rows with first treatment after the last period recoded as never treated", cohort, n_late)
        if unit:
            gsort = np.where(np.isfinite(g), g, -1.0)
            lo = np.full(len(ulev), np.inf)
            hi = np.full(len(ulev), -np.inf)
            np.minimum.at(lo, ucode, gsort)
            np.maximum.at(hi, ucode, gsort)
            varying = lo != hi
            if varying.any():
                ex = list(ulev[np.flatnonzero(varying)[:3]])
                raise DataError(
                    f"Column {cohort!r} (the cohort) is not constant within unit for {int(varying.sum())} "
                    f"units (e.g. {unit}={ex}). The cohort is the unit's first treated period: set it once "
                    f"per unit (e.g. groupby({unit!r})[{cohort!r}].transform('min'))."
                )
        pre = np.isfinite(g) & (g <= 0)
        if pre.any():
            n_units_pre = len(np.unique(ucode[pre])) if unit else int(pre.sum())
            msg = (
                f"{n_units_pre} units in column {cohort!r} are treated from the first period "
                f"({axis.levels[0]}) on, so they have no pre-period"
            )
            if already_treated == "raise":
                raise DataError(msg + ". Drop them, or pass already_treated='drop'.")
            if already_treated == "drop":
                dropped.append(DropRecord("treated in the first period (no pre-period)", int(pre.sum()), msg))
                sel = ~pre
                df, y, tcode, g = df.loc[sel], y[sel], tcode[sel], g[sel]
                w = None if w is None else w[sel]
                d = None if d is None else d[sel]
                if ucode is not None:
                    ucode, ulev = _refactor(ucode[sel], ulev)
                keep[np.flatnonzero(keep)[~sel]] = False
        if require_untreated and not np.isinf(g).any() and len(np.unique(g)) < 2:
            raise DataError(
                f"Column {cohort!r}: no untreated units (no never-treated units and a single cohort). "
                f"A DiD needs a comparison group."
            )

    # ---- group (2x2 repeated cross-sections) ----------------------------------------------------
    grp = None
    if group:
        grp = _numeric(df[group], group, "group")
        if not np.isin(grp, (0.0, 1.0)).all():
            raise DataError(f"Column {group!r} (the group) must be 0/1 (1 = treated group).")

    # ---- singletons ----------------------------------------------------------------------------
    if unit:
        nper = np.bincount(ucode)
        single = nper[ucode] == 1
        n_single = int(single.sum())
        if n_single:
            if drop_singletons:
                dropped.append(DropRecord("singleton units (observed once)", n_single, "drop_singletons=True (reghdfe policy)"))
                sel = ~single
                df, y, tcode = df.loc[sel], y[sel], tcode[sel]
                w = None if w is None else w[sel]
                d = None if d is None else d[sel]
                g = None if g is None else g[sel]
                grp = None if grp is None else grp[sel]
                ucode, ulev = _refactor(ucode[sel], ulev)
                keep[np.flatnonzero(keep)[~sel]] = False
            else:
                msg = (
                    f"{n_single} units in {unit!r} are observed once (singletons). They are kept, as in "
                    f"R fixest (Stata reghdfe drops them): they do not change the coefficients but count in N. "
                    f"Pass drop_singletons=True to drop them."
                )
                logger.info(msg)
                warnings.warn(msg, SingletonWarning, stacklevel=3)

    # ---- covariates ----------------------------------------------------------------------------
    X, names = _covariate_matrix(df, covariates)

    # ---- clusters ------------------------------------------------------------------------------
    cl = None
    if clusters:
        cl = np.column_stack([pd.factorize(df[c], sort=True)[0].astype(np.int64) for c in clusters])

    if dropped:
        total = sum(r.n_rows for r in dropped)
        msg = f"{total} of {n_input} rows dropped: " + "; ".join(str(r) for r in dropped)
        logger.info(msg)
        warnings.warn(msg, DroppedRowsWarning, stacklevel=3)

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
        row_index=np.flatnonzero(keep),
        n_input_rows=n_input,
        dropped=tuple(dropped),
        roles={k: v for k, v in roles.items() if v},
    )


def _refactor(codes: np.ndarray, levels: pd.Index) -> tuple[np.ndarray, pd.Index]:
    new, uniq = pd.factorize(codes, sort=False)
    return new.astype(np.int64), levels[uniq]


def _covariate_matrix(df: pd.DataFrame, covariates: Sequence[str]) -> tuple[np.ndarray, tuple[str, ...]]:
    cols, names = [], []
    for c in covariates:
        s = df[c]
        if pd.api.types.is_bool_dtype(s.dtype) or (
            pd.api.types.is_numeric_dtype(s.dtype) and not isinstance(s.dtype, pd.CategoricalDtype)
        ):
            cols.append(s.to_numpy(dtype=np.float64))
            names.append(c)
        else:
            codes, levels = pd.factorize(s, sort=True)
            for j in range(1, len(levels)):
                cols.append((codes == j).astype(np.float64))
                names.append(f"{c}[{levels[j]}]")
    if not cols:
        return np.empty((len(df), 0)), ()
    return np.column_stack(cols), tuple(names)
