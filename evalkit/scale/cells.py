r"""Sufficient statistics: TWFE DiD from cluster × stratum × period cells, exactly.

A *stratum* is a set of units with the same observed periods and the same treatment path (on a
balanced panel with absorbing cohort × period treatment: the entry cohort). Rows are compressed
to cells (cluster, stratum, period) holding the count :math:`n_{gst}`, the outcome sum
:math:`S_{gst}` and the sum of squares. From the cells, the TWFE coefficient and its CR0/CR1
cluster-robust variance equal the row-level ones of :func:`evalkit.did.twfe` (to rounding):

* The unit × period design of the row regression, after absorbing unit and period effects,
  gives a residualised treatment :math:`\tilde D_{it}` that depends only on the unit's stratum
  and the period (units of a stratum are interchangeable in the normal equations), so
  :math:`\tilde D_{it} = \tilde D_{st}`, the *weighted* two-way residual of the cell treatment
  :math:`D_{st}` on stratum and period effects with weights :math:`n_{st}`.
* :math:`\hat\beta = \sum \tilde D\,y / \sum \tilde D^2 = \sum_{st} \tilde D_{st} S_{st} / \sum_{st} n_{st}\tilde D_{st}^2`.
* Cluster scores :math:`s_g = \sum_{i \in g,t} \tilde D_{it} e_{it}`. With
  :math:`e_{it} = y_{it} - \alpha_i - \lambda_t - \beta D_{it}`, the unit effect drops out because
  :math:`\sum_t \tilde D_{st} = 0` over the stratum's periods (:math:`\tilde D` is orthogonal to
  each unit's dummy) and every unit lies in one cluster, so
  :math:`s_g = \sum_{st} \tilde D_{st}\,[\,S_{gst} - n_{gst}\bar y_{st} + n_{gst} r_{st}\,]`
  with :math:`r_{st}` the residual of the weighted cell regression. Only counts and sums enter.

Conditions (checked; otherwise :func:`twfe` falls back to the row path and logs why): unit and
period fixed effects only (no covariates, no weights), a 0/1 treatment, clusters constant within
unit and coarser than the unit, vcov ``"CR1"`` or ``"CR0"``. Unbalanced panels (enrollment churn)
stay exact because the stratum keys on the enrollment pattern; the compression then depends on
how many distinct patterns there are.
"""
from __future__ import annotations

import logging
from dataclasses import dataclass, field
from typing import Sequence

import numpy as np
import pandas as pd

from .._validation import check_columns_arg, check_option
from ..data.schema import DropRecord, check_clusters, validate_panel
from ..errors import DataError, SpecificationError
from ..inference.absorb import FixedEffects, absorb
from ..inference.vcov import SmallSampleCorrection
from ..results import Conventions, SampleInfo, tidy_table

__all__ = ["TwfeCells", "twfe_cells", "twfe_from_cells", "twfe", "NotCompressible"]

logger = logging.getLogger(__name__)

_WORD = 52  # periods per float64 bit-pattern word (exact integers up to 2**53)


class NotCompressible(Exception):
    """The design is not exactly reducible to cells (the message says why)."""


@dataclass(frozen=True)
class TwfeCells:
    """Cluster × stratum × period cells of a member-period panel.

    Attributes
    ----------
    cells : pandas.DataFrame
        Columns ``cluster, stratum, period`` (int codes), ``n``, ``sum_y``, ``sum_y2``, ``d`` (the
        treatment of the cell, 0/1). One row per non-empty cell.
    n_obs, n_units, n_periods, n_strata, n_clusters : int
    balanced : bool
    names : dict
        Column roles (``outcome``, ``unit``, ``time``, ``treatment``, ``cluster``).
    engine : str
    """

    cells: pd.DataFrame
    n_obs: int
    n_units: int
    n_periods: int
    n_strata: int
    n_clusters: int
    balanced: bool
    names: dict
    engine: str
    dropped: tuple[DropRecord, ...] = field(default=())

    @property
    def n_cells(self) -> int:
        return len(self.cells)


# ----------------------------------------------------------------------------------------------
# building cells


def _strata_numpy(unit: np.ndarray, time: np.ndarray, d: np.ndarray, n_units: int, T: int) -> np.ndarray:
    """Stratum code per unit: identical (observed periods, treated periods) bit patterns."""
    cols = []
    for w0 in range(0, T, _WORD):
        inw = (time >= w0) & (time < w0 + _WORD)
        bit = np.where(inw, np.exp2(np.where(inw, time - w0, 0)), 0.0)
        cols.append(np.bincount(unit, weights=bit, minlength=n_units))
        cols.append(np.bincount(unit, weights=bit * d, minlength=n_units))
    keys = np.column_stack(cols).astype(np.int64)
    return np.unique(keys, axis=0, return_inverse=True)[1].ravel().astype(np.int64)


def _cells_from_arrays(y, unit, time, d, cluster, n_units: int, T: int) -> tuple[pd.DataFrame, int, int]:
    owner = np.empty(n_units, dtype=cluster.dtype)
    owner[unit] = cluster
    if not np.array_equal(owner[unit], cluster):
        raise NotCompressible("the cluster varies within unit (a member changes organisation): unit effects do not "
                              "drop out of the cluster scores")
    G = int(cluster.max()) + 1
    if G >= n_units:
        raise NotCompressible("the cluster is the unit (or finer): cells would be units; nothing to compress")
    strat_u = _strata_numpy(unit, time, d, n_units, T)
    S = int(strat_u.max()) + 1
    s = strat_u[unit]
    key = (cluster.astype(np.int64) * S + s) * T + time
    ncell = G * S * T
    if ncell <= max(4 * len(y), 1 << 20):
        n = np.bincount(key, minlength=ncell)
        nz = np.flatnonzero(n)
        sy = np.bincount(key, weights=y, minlength=ncell)[nz]
        sy2 = np.bincount(key, weights=y * y, minlength=ncell)[nz]
        sd = np.bincount(key, weights=d, minlength=ncell)[nz]
        n = n[nz]
        k = nz
    else:
        k, inv = np.unique(key, return_inverse=True)
        inv = inv.ravel()
        n = np.bincount(inv)
        sy = np.bincount(inv, weights=y)
        sy2 = np.bincount(inv, weights=y * y)
        sd = np.bincount(inv, weights=d)
    g, rem = np.divmod(k, S * T)
    st, t = np.divmod(rem, T)
    cells = pd.DataFrame({"cluster": g, "stratum": st, "period": t, "n": n.astype(np.int64), "sum_y": sy,
                          "sum_y2": sy2, "d": sd / n})
    return cells, S, G


def twfe_cells(
    data,
    *,
    outcome: str,
    unit: str,
    time: str,
    treatment: str,
    cluster: str,
    engine: str = "auto",
    connection=None,
) -> TwfeCells:
    """Compress a member-period panel to cluster × stratum × period cells for TWFE DiD.

    Parameters
    ----------
    data : pandas.DataFrame, ClaimsPanel, path/glob of Parquet files, or SQL query
        Member-period rows. A DataFrame is validated with :func:`evalkit.data.validate_panel` and
        compressed in numpy; a Parquet path is compressed inside DuckDB (only the five columns are
        read). In DuckDB the data contract of the row path is checked in SQL: missing values (NULL,
        NaN, +-inf), duplicate unit-periods, the time axis (``validate_panel``'s rules, applied to
        the distinct periods), a 0/1 treatment that never switches off, and the identification
        checks (treated and untreated rows, a pre-period, a treatment not collinear with time).
    outcome, unit, time, treatment, cluster : str
        Column roles as in :func:`evalkit.did.twfe`; ``cluster`` must be constant within unit.
    engine : {"auto", "numpy", "duckdb"}, default="auto"
        ``"auto"``: numpy for in-memory frames, DuckDB for files and queries. ``"duckdb"`` on a
        DataFrame registers only the five columns with DuckDB.

    Raises
    ------
    NotCompressible
        When the cells would not reproduce the row-level estimate (the reason is in the message).
    """
    check_option(engine, "engine", ("auto", "numpy", "duckdb"), "twfe_cells")
    from .io import ClaimsPanel

    if isinstance(data, ClaimsPanel):
        data = data.data
    names = {"outcome": outcome, "unit": unit, "time": time, "treatment": treatment, "cluster": cluster}
    if engine == "auto":
        engine = "numpy" if isinstance(data, pd.DataFrame) else "duckdb"
    if engine == "duckdb":
        return _cells_duckdb(data, names, connection)
    if not isinstance(data, pd.DataFrame):
        raise SpecificationError("engine='numpy' needs a pandas DataFrame; pass engine='duckdb' for files.")
    vp = validate_panel(data, outcome=outcome, unit=unit, time=time, treatment=treatment, cluster=cluster, stacklevel=4)
    cells, S, G = _cells_from_arrays(vp.y, vp.unit, vp.time, vp.treatment, vp.cluster[:, 0], vp.n_units, vp.n_periods)
    return TwfeCells(cells, vp.nobs, vp.n_units, vp.n_periods, S, G, vp.is_balanced, names, "numpy", vp.dropped)


def _switch_off_error(treatment: str, unit: str, n_units: int, examples) -> DataError:
    """validate_panel's message for a treatment that switches off within unit (DuckDB and Spark builders)."""
    return DataError(
        f"Column {treatment!r} (the treatment) switches off (1 then 0) for {int(n_units)} units (e.g. "
        f"{unit}={list(examples)}): treatment must be absorbing. evalkit attributes by intent-to-treat at entry: "
        f"keep the flag on after entry (or pass allow_exit=True where the design supports it)."
    )


def _check_treatment_cells(cells: pd.DataFrame, names: dict, levels) -> None:
    """validate_panel's identification checks of the treatment, from the cells (DuckDB and Spark builders).

    ``levels`` are the labels of the period codes (the time axis). A stratum's units share their
    treated periods, so 'a unit with treated and untreated rows' is 'a stratum with cells of both'.
    """
    tr, un = names["treatment"], names["unit"]
    n = cells["n"].to_numpy(dtype=np.float64)
    d = cells["d"].to_numpy(dtype=np.float64)
    on = float(n @ d)
    if on == 0:
        raise DataError(f"Column {tr!r} (the treatment): no treated observations (all 0). Check the "
                        f"treatment flag (1 = treated and post).")
    if on == n.sum():
        raise DataError(f"Column {tr!r} (the treatment): no untreated observations - all rows are treated. "
                        f"A DiD needs control units or pre-periods; include them.")
    s = cells["stratum"].to_numpy()
    S = int(s.max()) + 1
    has_on = np.bincount(s, weights=(d == 1), minlength=S) > 0
    has_off = np.bincount(s, weights=(d == 0), minlength=S) > 0
    if not (has_on & has_off).any():
        raise DataError(f"Column {tr!r} (the treatment): no pre-period - every treated unit is treated in "
                        f"all its observed periods, so the effect is not identified from within-unit changes. "
                        f"Include periods before entry.")
    t = cells["period"].to_numpy()
    T = int(t.max()) + 1
    n_t = np.bincount(t, weights=n, minlength=T)
    on_t = np.bincount(t, weights=n * d, minlength=T)
    if np.all((on_t == 0) | (on_t == n_t)):
        start = levels[int(np.flatnonzero(on_t > 0)[0])]
        raise DataError(f"Column {tr!r} (the treatment): no untreated units - in every period all units "
                        f"in {un!r} have the same treatment status (all treated from {start}), so treatment "
                        f"is collinear with time. Include never-treated or not-yet-treated (comparison) units.")


def _cells_duckdb(source, names: dict, connection) -> TwfeCells:
    from ..data.schema import _time_axis
    from .io import check_panel_source, duckdb_connect, panel_relation, qident as q

    con = duckdb_connect(connection)
    roles = {k: (v,) for k, v in names.items()}
    # only the five columns; zoned timestamps as wall-clock time (not the session's zone); Periods as ordinals
    src = panel_relation(con, source, roles, view="__ek_tw_df")
    rel = src.sql
    try:
        check_panel_source(con, rel, columns=src.columns, roles=roles, unit=names["unit"], time=names["time"])
        u, t, y, d, c = (q(names[k]) for k in ("unit", "time", "outcome", "treatment", "cluster"))
        # the time axis from the distinct values, with validate_panel's rules (integer periods, Periods or
        # dates; a regular grid without empty periods); the period codes below are their sorted order
        tvals = con.execute(f"SELECT DISTINCT {t} AS t FROM {rel}").df()["t"]
        _, axis = _time_axis(src.restore(names["time"], tvals), names["time"])
        bad = con.execute(f"SELECT count(*) FROM {rel} WHERE {d}::DOUBLE NOT IN (0, 1)").fetchone()[0]
        if bad:
            raise DataError(f"Column {names['treatment']!r} (the treatment) must be 0/1 (treated and post); found other "
                            f"values in {int(bad)} rows. Recode it as 0/1 or boolean.")
        con.execute(f"""
            CREATE OR REPLACE TEMP TABLE __ek_rows AS
            WITH src AS (SELECT {u} AS u, {t} AS t, {y}::DOUBLE AS y, {d}::DOUBLE AS d, {c} AS c FROM {rel}),
                 per AS (SELECT t, (row_number() OVER (ORDER BY t)) - 1 AS tc FROM (SELECT DISTINCT t FROM src)),
                 cl AS (SELECT c, (row_number() OVER (ORDER BY c)) - 1 AS gc FROM (SELECT DISTINCT c FROM src))
            SELECT src.u, per.tc, src.y, src.d, cl.gc FROM src JOIN per USING (t) JOIN cl USING (c)""")
        con.execute("""
            CREATE OR REPLACE TEMP TABLE __ek_units AS
            SELECT u, list(tc ORDER BY tc) AS pat, list(tc ORDER BY tc) FILTER (WHERE d = 1) AS trt,
                   min(gc) AS gc, count(DISTINCT gc) AS ncl,
                   min(tc) FILTER (WHERE d = 1) AS on_first, max(tc) FILTER (WHERE d = 0) AS off_last
            FROM __ek_rows GROUP BY u""")
        # absorbing treatment, as validate_panel: no untreated period after a treated one
        n_off, ex = con.execute("SELECT count(*), list(u ORDER BY u)[1:3] FROM __ek_units WHERE off_last > on_first").fetchone()
        if n_off:
            raise _switch_off_error(names["treatment"], names["unit"], n_off, ex)
        n_units, n_multi = con.execute("SELECT count(*), count(*) FILTER (WHERE ncl > 1) FROM __ek_units").fetchone()
        T, G, N = con.execute("SELECT max(tc) + 1, max(gc) + 1, count(*) FROM __ek_rows").fetchone()
        if n_multi:
            raise NotCompressible(f"the cluster varies within unit for {n_multi} units: unit effects do not drop out of "
                                  f"the cluster scores")
        if G >= n_units:
            raise NotCompressible("the cluster is the unit (or finer): cells would be units; nothing to compress")
        con.execute("""
            CREATE OR REPLACE TEMP TABLE __ek_strata AS
            SELECT pat, trt, (row_number() OVER (ORDER BY pat, trt)) - 1 AS sc
            FROM (SELECT DISTINCT pat, trt FROM __ek_units)""")
        cells = con.execute("""
            SELECT r.gc AS cluster, s.sc AS stratum, r.tc AS period, count(*) AS n, sum(r.y) AS sum_y,
                   sum(r.y * r.y) AS sum_y2, avg(r.d) AS d
            FROM __ek_rows r JOIN __ek_units un USING (u)
                 JOIN __ek_strata s ON s.pat = un.pat AND s.trt IS NOT DISTINCT FROM un.trt
            GROUP BY ALL ORDER BY 1, 2, 3""").df()
        S = int(con.execute("SELECT count(*) FROM __ek_strata").fetchone()[0])
    finally:
        for tbl in ("__ek_rows", "__ek_units", "__ek_strata"):
            con.execute(f"DROP TABLE IF EXISTS {tbl}")
        src.close(con)
    for col in ("cluster", "stratum", "period", "n"):
        cells[col] = cells[col].astype(np.int64)
    _check_treatment_cells(cells, names, axis.levels)
    return TwfeCells(cells, int(N), int(n_units), int(T), S, int(G), int(N) == int(n_units) * int(T), names, "duckdb")


# ----------------------------------------------------------------------------------------------
# estimating from cells


def _cell_fit(cells: pd.DataFrame, n_strata: int, T: int):
    g = cells["cluster"].to_numpy()
    s = cells["stratum"].to_numpy()
    t = cells["period"].to_numpy()
    n = cells["n"].to_numpy().astype(np.float64)
    sy = cells["sum_y"].to_numpy()
    d = cells["d"].to_numpy()
    if np.any((d != 0) & (d != 1)):
        raise NotCompressible("the treatment varies within a stratum × period cell")
    # stratum × period aggregates (over clusters)
    st = s * T + t
    k, inv = np.unique(st, return_inverse=True)
    inv = inv.ravel()
    n_st = np.bincount(inv, weights=n)
    S_st = np.bincount(inv, weights=sy)
    D_st = np.bincount(inv, weights=d * n) / n_st
    ybar = S_st / n_st
    s_c, t_c = np.divmod(k, T)
    fe = FixedEffects((s_c.astype(np.int64), t_c.astype(np.int64)), ("stratum", "period"))
    Zr, info = absorb(np.column_stack([ybar, D_st]), fe, n_st)
    yt, xt = Zr[:, 0], Zr[:, 1]
    xx = float(n_st @ (xt * xt))
    if xx <= 1e-10 * max(float(n_st @ (D_st - (n_st @ D_st) / n_st.sum()) ** 2), 1e-300):
        from ..errors import EstimationError

        raise EstimationError("The treatment is collinear with the unit and period fixed effects: nothing is left to "
                              "estimate it from (check the treatment timing).")
    beta = float(n_st @ (xt * yt)) / xx
    r = yt - beta * xt
    # cluster scores from cluster × stratum × period sums
    x_c = xt[inv]
    contrib = x_c * (sy - n * ybar[inv] + n * r[inv])
    G = int(g.max()) + 1
    scores = np.bincount(g, weights=contrib, minlength=G)
    return beta, xx, scores, info, G


def twfe_from_cells(
    cells: TwfeCells,
    *,
    vcov: str = "CR1",
    ssc: SmallSampleCorrection | None = None,
    level: float = 0.95,
    notes: Sequence[str] = (),
):
    r"""TWFE DiD (unit and period effects, CR1/CR0 clustered) estimated from cells.

    Returns a :class:`evalkit.did.results.DiDResult` equal (to rounding) to
    ``ek.did.twfe(rows, ..., cluster=cluster, vcov=vcov)`` on the rows the cells came from.

    Notes
    -----
    CR1 follows R fixest (:mod:`evalkit.inference.vcov`): :math:`G/(G-1)\cdot(N-1)/(N-K)` with K
    the regressor plus the fixed-effect levels not nested in the clusters. The unit effects are
    nested (units lie in one cluster), so :math:`K = 1 + \mathrm{rank}(\text{period FE after unit FE})`
    (``T + 1`` on a connected panel); ``k_fixef="full"`` counts every unit level as well.
    Inference uses t(G − 1). ``with_vcov`` is not available on results from cells.
    """
    from ..did.results import DiDResult

    check_option(vcov, "vcov", ("CR1", "CR0"), "twfe_from_cells")
    s = ssc or SmallSampleCorrection()
    c = cells.cells
    beta, xx, scores, info, G = _cell_fit(c, cells.n_strata, cells.n_periods)
    treated = c["d"].to_numpy() > 0
    check_clusters(c["cluster"].to_numpy(), cells.names["cluster"], treated, stacklevel=3)
    N = cells.n_obs
    # fixed-effect rank at row level: cell rank + (units - strata) extra unit levels
    n_fe_row = info.n_params + (cells.n_units - cells.n_strata)
    k_all = 1 + n_fe_row
    if s.k_fixef == "full":
        K = k_all
    elif s.k_fixef == "none":
        K = 1
    else:
        K = k_all - (cells.n_units - 1)
    meat = float(scores @ scores)
    if vcov == "CR0":
        fac = 1.0
    else:
        fac = (G / (G - 1) if s.G_adj else 1.0) * ((N - 1) / (N - K) if s.k_adj else 1.0)
    var = fac * meat / xx**2
    se = np.sqrt(var)
    tname = cells.names["treatment"]
    table = tidy_table([tname], [beta], [se], G - 1, level)
    table["df"] = float(G - 1)
    cname = cells.names["cluster"]
    desc = (f"cluster-robust {'CR0 (no small-sample factor)' if vcov == 'CR0' else 'CR1'} by {cname} (G={G}); "
            + ("" if vcov == "CR0" else f"small-sample factor {s.describe()} with N={N}, K={K}; ")
            + f"t({G - 1}) inference")
    all_notes = (
        f"Estimated from {cells.n_cells:,} cluster x stratum x period cells ({cells.n_strata:,} strata of units with the same "
        f"observed periods and treatment path; {cells.engine}); equal to the row-level TWFE on {N:,} rows.",
        *notes,
    )
    conv = Conventions(
        estimator="Two-way fixed effects DiD (OLS, from sufficient statistics)", vcov_type=vcov, vcov_description=desc,
        distribution=f"t({G - 1})", df=float(G - 1), cluster=(cname,), n_clusters=(G,),
        small_sample="" if vcov == "CR0" else s.describe(), fixed_effects=(cells.names["unit"], cells.names["time"]),
        absorb_method=f"cells ({info.method}, weighted)", level=level, notes=tuple(all_notes),
    )
    n_treated_units = None
    sample = SampleInfo(n_obs=N, n_input_rows=N, n_units=cells.n_units, n_periods=cells.n_periods,
                        balanced=cells.balanced, n_treated_units=n_treated_units, dropped=cells.dropped)
    return DiDResult(table, np.array([[var]]), conv, sample, {"cells": cells})


# ----------------------------------------------------------------------------------------------
# dispatcher with a logged fallback


def twfe(
    data,
    *,
    outcome: str,
    unit: str,
    time: str,
    treatment: str,
    cluster: str | None = None,
    covariates: Sequence[str] = (),
    weights: str | None = None,
    vcov: str = "CR1",
    ssc: SmallSampleCorrection | None = None,
    level: float = 0.95,
    engine: str = "auto",
    connection=None,
    **row_kwargs,
):
    """TWFE DiD from cells when that is exact, else the row-level :func:`evalkit.did.twfe`.

    Same arguments and result as :func:`evalkit.did.twfe`; ``data`` may also be a Parquet path or
    glob (compressed inside DuckDB). The cell path is taken when: no covariates, no weights, no
    extra ``row_kwargs``, vcov ``"CR1"``/``"CR0"``, a cluster column constant within unit and coarser
    than it. Otherwise the row path runs (files are read with DuckDB, only the needed columns) and the
    reason is logged (logger ``evalkit.scale.cells``, INFO) and added to the result's notes.
    """
    covariates = check_columns_arg(covariates, "covariates")
    reason = None
    if covariates:
        reason = "covariates were given (cells hold unit and period effects only)"
    elif weights is not None:
        reason = "weights were given"
    elif vcov not in ("CR1", "CR0"):
        reason = f"vcov={vcov!r} needs row-level residuals (cells give CR1 and CR0)"
    elif cluster is None:
        reason = "cluster=None clusters on the unit: cells would be units"
    elif row_kwargs:
        reason = f"row-level options {sorted(row_kwargs)}"
    if reason is None:
        try:
            cells = twfe_cells(data, outcome=outcome, unit=unit, time=time, treatment=treatment, cluster=cluster,
                               engine=engine, connection=connection)
            return twfe_from_cells(cells, vcov=vcov, ssc=ssc, level=level)
        except NotCompressible as exc:
            reason = str(exc)
    msg = f"TWFE from cells is not exact here ({reason}); using the row-level path."
    logger.info(msg)
    from .. import did

    data = _rows_frame(data, {"outcome": [outcome], "unit": [unit], "time": [time], "treatment": [treatment],
                              "cluster": [cluster] if cluster else [], "covariate": covariates,
                              "weights": [weights] if weights else []}, connection)
    res = did.twfe(data, outcome=outcome, unit=unit, time=time, treatment=treatment, cluster=cluster,
                   covariates=covariates, weights=weights, vcov=vcov, ssc=ssc, level=level, **row_kwargs)
    conv = res.conventions
    object.__setattr__(res, "conventions", Conventions(**{**conv.as_dict(), "notes": conv.notes + (msg,)}))
    return res


def _rows_frame(data, roles: dict, connection) -> pd.DataFrame:
    """The rows for the row-level fallback: a DataFrame as given, a ClaimsPanel's frame, otherwise the
    source read through DuckDB (the role columns only, see :func:`_read_rows`)."""
    if isinstance(data, pd.DataFrame):
        return data
    from .io import ClaimsPanel

    if isinstance(data, ClaimsPanel):
        return data.data
    return _read_rows(data, roles, connection)


def _read_rows(source, roles: dict, connection) -> pd.DataFrame:
    """The role columns of a file/glob or SQL query as a pandas frame, for the row-level fallback.

    Read through :func:`evalkit.scale.io.panel_relation`: zoned timestamps arrive as the wall-clock
    time of their zone, which is what the row path's ``validate_panel`` reads from a tz-aware column.
    """
    from .io import duckdb_connect, panel_relation

    con = duckdb_connect(connection)
    src = panel_relation(con, source, roles)
    return con.execute(f"SELECT * FROM {src.sql}").df()
