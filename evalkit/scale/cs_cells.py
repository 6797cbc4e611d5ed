r"""Callaway–Sant'Anna ATT(g,t) without covariates from sufficient statistics, exactly.

Rows are compressed to *strata*: units with the same cohort and the same enrollment pattern
(the set of periods they are observed in; on a balanced panel one pattern, so strata are the
cohorts). Every ATT(g,t) without covariates is a difference of mean changes over whole strata,
and its influence function (IF) is linear in the unit's outcome vector, so:

* point estimates need the per-stratum outcome sums :math:`S_{st}` and counts :math:`n_s`;
* clustered standard errors (``cluster=`` coarser than the unit) need the cluster × stratum
  outcome sums and counts (cluster sums of the IF are linear in them);
* unit-level standard errors (``cluster=None``) need, in addition, the per-stratum centred
  Gram matrix :math:`\tilde Q_s = \sum_{i \in s} (y_i - \bar y_s)(y_i - \bar y_s)'` (:math:`T \times T`).

Every statistic is built from each unit's outcomes net of the unit's own mean over its observed
periods: the estimator uses only within-unit differences, so this is exact, and it keeps sums of
units with very different outcome levels from cancelling (``docs/scale_cs_cells.md`` §3).

The aggregations (simple/group/dynamic/calendar) of R ``did::aggte`` are linear in the cell IFs
and in the cohort indicators (the IF of the estimated weights :math:`\hat P(G=g)`), so their
standard errors are exact from the same statistics. The derivation, the conditions and the
measured compression are in ``docs/scale_cs_cells.md``.

Entry points: :func:`att_gt_cells` (build the statistics, numpy or DuckDB), :func:`att_gt_from_cells`
(estimate) and :func:`att_gt` (dispatcher with a logged fallback to
:func:`evalkit.staggered.att_gt` on rows).
"""
from __future__ import annotations

import logging
import warnings
from dataclasses import dataclass, field, replace
from numbers import Integral, Real
from typing import Sequence

import numpy as np
import pandas as pd

from .._validation import as_generator, check_columns_arg, check_option, check_scalar
from ..data.schema import DropRecord, TimeAxis, validate_panel
from ..errors import DataError, DroppedRowsWarning, EvalkitWarning, SingletonWarning, SpecificationError
from ..results import Conventions, SampleInfo
from ..staggered.results import AGGREGATIONS, AggregateResult, ATTgtResult, _aggregate_table, _cell_table, _readonly
from .cells import NotCompressible

__all__ = ["CsCells", "CellATTgtResult", "att_gt_cells", "att_gt_from_cells", "att_gt"]

logger = logging.getLogger(__name__)

#: DuckDB path: enrollment patterns are BIGINT bit masks.
_MAX_T_SQL = 62


@dataclass(frozen=True)
class CsCells:
    """Sufficient statistics of a panel for Callaway–Sant'Anna ATT(g,t) without covariates.

    A *stratum* is a set of units with the same cohort and the same observed periods.

    Attributes
    ----------
    cohort : numpy.ndarray
        ``(S,)`` cohort period code of each stratum (``inf`` = never treated).
    observed : numpy.ndarray
        ``(S, T)`` bool: the periods the stratum's units are observed in.
    n : numpy.ndarray
        ``(S,)`` units per stratum.
    sum_y : numpy.ndarray
        ``(S, T)`` sums of the unit-centred outcomes :math:`y_{it} - \\bar y_i` (:math:`\\bar y_i` the
        unit's mean over its observed periods; 0 where not observed). The estimator uses only
        within-unit differences :math:`y_{it} - y_{ib}`, in which the unit mean cancels; centring
        keeps differences of these sums accurate when outcome levels differ hugely between units.
        Stratum means of the outcome itself are therefore not recoverable from the statistics.
    gram : numpy.ndarray or None
        ``(S, T, T)`` centred cross-products :math:`\\sum_i (\\tilde y_i - \\bar{\\tilde y}_s)(\\tilde y_i - \\bar{\\tilde y}_s)'`
        of the unit-centred outcomes (unit-level standard errors); ``None`` when built for clustered
        standard errors.
    cl_cluster, cl_stratum, cl_n, cl_sum_y : numpy.ndarray or None
        Cluster × stratum cells (clustered standard errors): cluster code, stratum, units and
        ``(K, T)`` sums of the unit-centred outcomes; ``None`` without a cluster.
    n_clusters : int or None
    n_units, n_obs, n_input_rows : int
    time_axis : TimeAxis
    names : dict
        Column roles (``outcome``, ``unit``, ``time``, ``cohort``, ``cluster``).
    engine : str
    dropped : tuple of DropRecord
    """

    cohort: np.ndarray
    observed: np.ndarray
    n: np.ndarray
    sum_y: np.ndarray
    gram: np.ndarray | None
    cl_cluster: np.ndarray | None
    cl_stratum: np.ndarray | None
    cl_n: np.ndarray | None
    cl_sum_y: np.ndarray | None
    n_clusters: int | None
    n_units: int
    n_obs: int
    n_input_rows: int
    time_axis: TimeAxis
    names: dict
    engine: str
    dropped: tuple[DropRecord, ...] = field(default=())

    @property
    def n_periods(self) -> int:
        return int(self.observed.shape[1])

    @property
    def n_strata(self) -> int:
        return int(self.n.shape[0])

    @property
    def balanced(self) -> bool:
        return self.n_obs == self.n_units * self.n_periods

    @property
    def n_numbers(self) -> int:
        """How many numbers the statistics hold (the compressed size)."""
        T = self.n_periods
        k = self.n_strata * (2 + T)
        if self.gram is not None:
            k += self.n_strata * T * (T + 1) // 2
        if self.cl_n is not None:
            k += self.cl_n.shape[0] * (3 + T)
        return int(k)


# ----------------------------------------------------------------------------------------------
# building the statistics: numpy


def _unit_constant(values: np.ndarray, unit: np.ndarray, n_units: int, name: str, what: str) -> np.ndarray:
    out = np.empty(n_units, dtype=values.dtype)
    out[unit] = values
    if not np.array_equal(out[unit], values):
        bad = np.unique(unit[out[unit] != values]).size
        raise DataError(f"Column {name!r} ({what}) varies within unit for {bad} unit(s); it must be constant within unit.")
    return out


def _pattern_codes(obs: np.ndarray) -> np.ndarray:
    """Dense code per unit of its row of ``obs`` (units x periods, bool)."""
    packed = np.packbits(obs, axis=1)
    return np.unique(packed, axis=0, return_inverse=True)[1].ravel().astype(np.int64)


def _runs(sorted_keys: np.ndarray):
    """Start positions and distinct values of the runs of a sorted key array."""
    if sorted_keys.size == 0:
        return np.zeros(0, np.intp), sorted_keys
    head = np.empty(sorted_keys.size, bool)
    head[0] = True
    np.not_equal(sorted_keys[1:], sorted_keys[:-1], out=head[1:])
    starts = np.flatnonzero(head)
    return starts, sorted_keys[starts]


def _cells_from_panel(p, names: dict, clustered: bool, engine: str = "numpy") -> CsCells:
    N, T = p.n_units, p.n_periods
    u, tt, y = p.unit, p.time, p.y
    ucoh = _unit_constant(p.cohort, u, N, names["cohort"], "the cohort")
    ucl = None
    if clustered:
        ucl_raw = _unit_constant(p.cluster[:, 0], u, N, names["cluster"], "the cluster")
        ucl = pd.factorize(ucl_raw.astype(float))[0].astype(np.int64)  # the row path's cluster order
    balanced = p.is_balanced
    # Each unit's outcomes net of its own mean over its observed periods. Exact: every quantity the
    # estimator uses is a within-unit difference y_it - y_ib over periods the unit is observed in (a
    # per-unit constant cancels), and it keeps large level differences between units out of the
    # sums, so that differences of sums (S_t - S_b, Q_tt - Q_tb - Q_bt + Q_bb) do not cancel.
    n_obs_u = np.bincount(u, minlength=N)
    umean = np.bincount(u, weights=y, minlength=N) / np.maximum(n_obs_u, 1)
    Y = np.zeros((N, T))
    Y[u, tt] = y - umean[u]
    if balanced:
        pat = np.zeros(N, np.int64)
    else:
        obs_u = np.zeros((N, T), bool)
        obs_u[u, tt] = True
        pat = _pattern_codes(obs_u)
    cvals = np.unique(ucoh)
    ci = np.searchsorted(cvals, ucoh).astype(np.int64)
    P = int(pat.max()) + 1
    key = ci * P + pat
    order = np.argsort(key, kind="stable")
    ks = key[order]
    starts, kv = _runs(ks)
    S = kv.size
    n = np.diff(np.append(starts, N)).astype(np.int64)
    Ys = Y[order]
    sum_y = np.add.reduceat(Ys, starts, axis=0)
    coh_s = cvals[kv // P]
    first = order[starts]  # a unit of each stratum
    if balanced:
        observed = np.ones((S, T), bool)
    else:
        observed = obs_u[first]
    s_sorted = np.repeat(np.arange(S), n)
    gram = None
    if not clustered:
        Yc = Ys - (sum_y / n[:, None])[s_sorted]  # unobserved entries: 0 - 0
        gram = np.empty((S, T, T))
        for s in range(S):
            blk = Yc[starts[s]:starts[s] + n[s]]
            gram[s] = blk.T @ blk
        del Yc
    cl = dict(cl_cluster=None, cl_stratum=None, cl_n=None, cl_sum_y=None, n_clusters=None)
    if clustered:
        s_u = np.empty(N, np.int64)
        s_u[order] = s_sorted
        key2 = ucl * S + s_u
        o2 = np.argsort(key2, kind="stable")
        st2, kv2 = _runs(key2[o2])
        cl = dict(cl_cluster=kv2 // S, cl_stratum=kv2 % S, cl_n=np.diff(np.append(st2, N)).astype(np.int64),
                  cl_sum_y=np.add.reduceat(Y[o2], st2, axis=0), n_clusters=int(ucl.max()) + 1)
    return CsCells(cohort=coh_s, observed=observed, n=n, sum_y=sum_y, gram=gram, **cl, n_units=N, n_obs=p.nobs,
                   n_input_rows=p.n_input_rows, time_axis=p.time_axis, names=names, engine=engine, dropped=p.dropped)


# ----------------------------------------------------------------------------------------------
# building the statistics: DuckDB


def _cells_duckdb(source, names: dict, clustered: bool, connection) -> CsCells:
    from ..data.schema import _cohort_codes, _time_axis
    from .io import check_panel_source, duckdb_connect, panel_relation, qident as q

    con = duckdb_connect(connection)
    roles = {"outcome": (names["outcome"],), "unit": (names["unit"],), "time": (names["time"],)}
    if clustered:
        roles["cluster"] = (names["cluster"],)
    # only the role columns; zoned timestamps as wall-clock time (not the session's zone); Periods as ordinals
    src = panel_relation(con, source, {**roles, "cohort": (names["cohort"],)}, view="__ek_cs_df")
    rel = src.sql
    tmp = ["__ek_cs_units", "__ek_cs_strata"]
    try:
        cols = src.columns
        # missing values here; duplicate (unit, time) rows are counted in the per-unit pass below
        n_input = check_panel_source(con, rel, columns=cols, roles=roles, unit=None, time=names["time"])
        u, t, y, g = (q(names[k]) for k in ("unit", "time", "outcome", "cohort"))
        # time axis and cohort codes from the distinct values, with validate_panel's own rules
        tvals = con.execute(f"SELECT DISTINCT {t} AS t FROM {rel}").df()["t"]
        tcode, axis = _time_axis(src.restore(names["time"], tvals), names["time"])
        T = axis.n_periods
        if T > _MAX_T_SQL:
            raise NotCompressible(f"{T} periods: the DuckDB path keys enrollment patterns on 62-bit masks")
        gvals = con.execute(f"SELECT DISTINCT {g} AS g FROM {rel} WHERE {g} IS NOT NULL").df()["g"]
        gcode, late = (_cohort_codes(src.restore(names["cohort"], gvals), names["cohort"], axis) if len(gvals)
                       else (np.zeros(0), np.zeros(0, bool)))
        con.register("__ek_cs_tmap", pd.DataFrame({"t": tvals, "tc": tcode.astype(np.int64)}))
        # -1 = never treated; 0 = treated in or before the first period (dropped below, as validate_panel does)
        gc = np.where(np.isfinite(gcode), np.maximum(gcode, 0.0), -1.0)
        con.register("__ek_cs_gmap", pd.DataFrame({"g": gvals, "gc": gc.astype(np.int64)}))
        c_sel = ", min(c) AS c, max(c) AS c_max" if clustered else ""
        wide = ", ".join(f"sum(y) FILTER (WHERE tc = {k}) AS y{k}" for k in range(T))
        # ym: the unit's mean over its observed periods; the statistics are built from y - ym (see _cells_from_panel)
        con.execute(f"""
            CREATE OR REPLACE TEMP TABLE __ek_cs_units AS
            SELECT u, bit_or((1::BIGINT) << tc) AS pat, count(*) AS nrow, min(gc) AS gc, max(gc) AS gc_max{c_sel},
                   avg(y) AS ym, {wide}
            FROM (SELECT s.{u} AS u, m.tc, s.{y}::DOUBLE AS y, coalesce(gm.gc, -1) AS gc
                         {', s.' + q(names['cluster']) + ' AS c' if clustered else ''}
                  FROM {rel} s JOIN __ek_cs_tmap m ON s.{t} = m.t LEFT JOIN __ek_cs_gmap gm ON s.{g} = gm.g)
            GROUP BY u""")
        if con.execute("SELECT count(*) FROM __ek_cs_units WHERE nrow <> bit_count(pat)").fetchone()[0]:
            check_panel_source(con, rel, columns=cols, roles=roles, unit=names["unit"], time=names["time"])  # raises
        n_var = con.execute("SELECT count(*) FROM __ek_cs_units WHERE gc <> gc_max").fetchone()[0]
        if n_var:
            raise DataError(f"Column {names['cohort']!r} (the cohort) is not constant within unit for {int(n_var)} units. "
                            f"The cohort is the unit's first treated period: set it once per unit.")
        if clustered:
            n_var = con.execute("SELECT count(*) FROM __ek_cs_units WHERE c <> c_max").fetchone()[0]
            if n_var:
                raise DataError(f"Column {names['cluster']!r} (the cluster) varies within unit for {int(n_var)} unit(s); "
                                f"it must be constant within unit.")
        dropped = []
        pre_units, pre_rows = con.execute("SELECT count(*), coalesce(sum(nrow), 0) FROM __ek_cs_units WHERE gc = 0").fetchone()
        if pre_units:
            msg = (f"{int(pre_units)} units ({int(pre_rows)} rows) in column {names['cohort']!r} are treated from the first "
                   f"period ({axis.levels[0]}) on, so they have no pre-period")
            dropped.append(DropRecord("treated in the first period (no pre-period)", int(pre_rows), msg))
            warnings.warn(msg + "; dropped.", DroppedRowsWarning, stacklevel=4)
            con.execute("DELETE FROM __ek_cs_units WHERE gc = 0")
        N, n_obs, n_single = (int(v or 0) for v in con.execute(
            "SELECT count(*), sum(nrow), count(*) FILTER (WHERE nrow = 1) FROM __ek_cs_units").fetchone())
        if n_single:  # as validate_panel: kept (they enter no cell but count in n)
            warnings.warn(f"{n_single} units in {names['unit']!r} are observed once (singletons). They are kept, as in "
                          f"R fixest (Stata reghdfe drops them): they do not change the coefficients but count in N.",
                          SingletonWarning, stacklevel=4)
        if N == 0:
            raise DataError("No rows left after dropping: " + "; ".join(str(r) for r in dropped) + ".")
        con.execute("""
            CREATE OR REPLACE TEMP TABLE __ek_cs_strata AS
            SELECT gc, pat, (row_number() OVER (ORDER BY gc, pat)) - 1 AS sc
            FROM (SELECT DISTINCT gc, pat FROM __ek_cs_units)""")
        sums = ", ".join(f"coalesce(sum(y{k} - ym), 0) AS s{k}" for k in range(T))
        st = con.execute(f"""
            SELECT sc, any_value(gc) AS gc, any_value(pat) AS pat, count(*) AS n, {sums}
            FROM __ek_cs_units JOIN __ek_cs_strata USING (gc, pat) GROUP BY sc ORDER BY sc""").df()
        S = len(st)
        n = st["n"].to_numpy(np.int64)
        sum_y = st[[f"s{k}" for k in range(T)]].to_numpy(float)
        gcs = st["gc"].to_numpy(np.int64)
        coh = np.where(gcs < 0, np.inf, gcs.astype(float))
        pats = st["pat"].to_numpy(np.int64)
        observed = ((pats[:, None] >> np.arange(T)[None, :]) & 1).astype(bool)
        gram = None
        cl = dict(cl_cluster=None, cl_stratum=None, cl_n=None, cl_sum_y=None, n_clusters=None)
        if not clustered:
            means = pd.DataFrame({"sc": np.arange(S)})
            for k in range(T):
                means[f"m{k}"] = sum_y[:, k] / n
            con.register("__ek_cs_means", means)
            prods = ", ".join(f"coalesce(sum((y{a} - ym - m{a}) * (y{b} - ym - m{b})), 0) AS q{a}_{b}"
                              for a in range(T) for b in range(a, T))
            qdf = con.execute(f"""
                SELECT sc, {prods} FROM __ek_cs_units JOIN __ek_cs_strata USING (gc, pat) JOIN __ek_cs_means USING (sc)
                GROUP BY sc ORDER BY sc""").df()
            gram = np.zeros((S, T, T))
            for a in range(T):
                for b in range(a, T):
                    gram[:, a, b] = gram[:, b, a] = qdf[f"q{a}_{b}"].to_numpy(float)
        else:
            csum = ", ".join(f"coalesce(sum(y{k} - ym), 0) AS s{k}" for k in range(T))
            cdf = con.execute(f"""
                WITH cc AS (SELECT c, (row_number() OVER (ORDER BY min(u))) - 1 AS cc FROM __ek_cs_units GROUP BY c)
                SELECT cc.cc, sc, count(*) AS n, {csum}
                FROM __ek_cs_units JOIN __ek_cs_strata USING (gc, pat) JOIN cc USING (c)
                GROUP BY ALL ORDER BY 1, 2""").df()
            cl = dict(cl_cluster=cdf["cc"].to_numpy(np.int64), cl_stratum=cdf["sc"].to_numpy(np.int64),
                      cl_n=cdf["n"].to_numpy(np.int64), cl_sum_y=cdf[[f"s{k}" for k in range(T)]].to_numpy(float))
            cl["n_clusters"] = int(cl["cl_cluster"].max()) + 1
    finally:
        for tbl in tmp:
            con.execute(f"DROP TABLE IF EXISTS {tbl}")
        for v in ("__ek_cs_tmap", "__ek_cs_gmap", "__ek_cs_means"):
            try:
                con.unregister(v)
            except Exception:  # noqa: BLE001 - not registered
                pass
        src.close(con)
    return CsCells(cohort=coh, observed=observed, n=n, sum_y=sum_y, gram=gram, **cl, n_units=N, n_obs=n_obs,
                   n_input_rows=int(n_input), time_axis=axis, names=names, engine="duckdb", dropped=tuple(dropped))


def att_gt_cells(
    data,
    *,
    outcome: str,
    unit: str,
    time: str,
    cohort: str,
    cluster: str | None = None,
    engine: str = "auto",
    connection=None,
    dropna: bool = False,
) -> CsCells:
    """Compress a panel to the sufficient statistics of Callaway–Sant'Anna ATT(g,t) without covariates.

    Parameters
    ----------
    data : pandas.DataFrame, ClaimsPanel, path/glob of Parquet files, or SQL query
        Unit-period rows (one per unit and period; may be unbalanced).
    outcome, unit, time, cohort : str
        As in :func:`evalkit.staggered.att_gt`.
    cluster : str or None, default=None
        ``None``: statistics for unit-level standard errors (per-stratum centred Gram matrices).
        A column constant within unit: cluster × stratum sums for clustered standard errors.
    engine : {"auto", "numpy", "duckdb"}, default="auto"
        ``"auto"``: numpy for in-memory frames (validated by :func:`evalkit.data.validate_panel`,
        exactly as the row path), DuckDB for files (ids and periods are encoded in the engine and
        only strata/cells are collected).
    dropna : bool, default=False
        numpy engine only: drop rows with missing values (as :func:`evalkit.staggered.att_gt`).

    Raises
    ------
    NotCompressible
        When the statistics cannot be built exactly (the reason is in the message).
    DataError
        For violations of the data contract (as the row path).
    """
    check_option(engine, "engine", ("auto", "numpy", "duckdb"), "att_gt_cells")
    from .io import ClaimsPanel

    if isinstance(data, ClaimsPanel):
        data = data.data
    names = {"outcome": outcome, "unit": unit, "time": time, "cohort": cohort, "cluster": cluster}
    clustered = cluster is not None and cluster != unit
    if engine == "auto":
        engine = "numpy" if isinstance(data, pd.DataFrame) else "duckdb"
    if engine == "duckdb":
        if dropna:
            raise NotCompressible("dropna=True is handled on the numpy/row path only")
        return _cells_duckdb(data, names, clustered, connection)
    if not isinstance(data, pd.DataFrame):
        raise SpecificationError("engine='numpy' needs a pandas DataFrame; pass engine='duckdb' for files.")
    p = validate_panel(data, outcome=outcome, unit=unit, time=time, cohort=cohort, cluster=cluster if clustered else None,
                       dropna=dropna, already_treated="drop", stacklevel=4)
    return _cells_from_panel(p, names, clustered)


# ----------------------------------------------------------------------------------------------
# estimation


@dataclass(frozen=True)
class _IFStats:
    """Second moments of the augmented IF vectors ``z_c = (psi_c, n_c,cohort)`` (c = unit or cluster)."""

    M: np.ndarray  # (J + C, J + C) = sum_c z_c z_c'
    Z: np.ndarray | None  # (G, J + C) cluster sums (clustered), None unit level
    cvals: np.ndarray  # (C,) cohort codes (inf = never)
    n_g: np.ndarray  # (C,) units per cohort
    J: int

    def factor(self) -> np.ndarray:
        """``F`` with ``F'F = M``: the cluster sums, or an eigen factor (unit level)."""
        if self.Z is not None:
            return self.Z
        lam, U = np.linalg.eigh(self.M)
        keep = lam > lam.max() * 1e-14 if lam.size and lam.max() > 0 else np.zeros(lam.size, bool)
        return (U[:, keep] * np.sqrt(lam[keep])).T


def _estimate_cells(cells: CsCells, control: str, delta: int, base_period: str, method: str):
    """Cells, estimates and IF statistics. Mirrors the cell plan of :func:`evalkit.staggered.att_gt`."""
    from ..staggered._cell import TRIM_LEVEL

    T = cells.n_periods
    N = cells.n_units
    ax = cells.time_axis
    coh, obs, n = cells.cohort, cells.observed, cells.n.astype(float)
    cvals = np.unique(coh)
    C = cvals.size
    cidx = np.searchsorted(cvals, coh)
    n_g = np.zeros(C)
    np.add.at(n_g, cidx, n)  # C and S are small
    glist = cvals[np.isfinite(cvals)].astype(int)
    plan, skipped = [], []
    for g in glist:
        b_post = g - delta - 1
        if b_post < 0:
            skipped.append(f"cohort {ax.label(g)}: no period before g - anticipation; its cells are skipped")
            continue
        trange = range(1, T) if base_period == "varying" else range(T)
        for t in trange:
            post = g <= t
            b = b_post if (post or base_period == "universal") else t - 1
            plan.append((g, t, b, post))

    ybar = cells.sum_y / n[:, None]
    never = ~np.isfinite(coh)
    rows, est, A, D = [], [], [], []
    S = coh.size
    for g, t, b, post in plan:
        if t == b:
            rows.append((g, t, b, post, int(n_g[np.searchsorted(cvals, g)]), 0, True))
            est.append(0.0)
            A.append(np.zeros(S))
            D.append(np.zeros(S))
            continue
        both = obs[:, t] & obs[:, b]
        ctrl = never if control == "never" else never | ((coh > max(t, b) + delta) & (coh != g))
        tr = both & (coh == g)
        co = both & ctrl
        n1, n0 = float(n[tr].sum()), float(n[co].sum())
        if n1 == 0 or n0 == 0:
            skipped.append(f"ATT({ax.label(g)},{ax.label(t)}): {int(n1)} treated and {int(n0)} comparison units "
                           f"observed in both periods; cell skipped")
            continue
        if method != "reg" and not n1 / (n1 + n0) < TRIM_LEVEL - 1e-9:
            raise NotCompressible(f"ATT({ax.label(g)},{ax.label(t)}): the cohort is {n1 / (n1 + n0):.4f} of the cell, so "
                                  f"method={method!r} trims the propensity score (row path only)")
        dS = cells.sum_y[:, t] - cells.sum_y[:, b]
        m1, m0 = dS[tr].sum() / n1, dS[co].sum() / n0
        a = np.where(tr, N / n1, np.where(co, -N / n0, 0.0))
        m = np.where(tr, m1, m0)
        A.append(a)
        D.append(np.where(tr | co, a * (ybar[:, t] - ybar[:, b] - m), 0.0))
        est.append(float(m1 - m0))
        rows.append((g, t, b, post, int(n1), int(n0), False))
    J = len(rows)
    if J == 0:
        return rows, np.zeros(0), None, skipped, cvals
    A = np.array(A).T  # (S, J)
    D = np.array(D).T  # (S, J)
    tj = np.array([r[1] for r in rows])
    bj = np.array([r[2] for r in rows])

    K = J + C
    if cells.cl_n is None:
        # unit level: sum_s [ (a_s a_s') o E'Q_s E + n_s d_s d_s' ], sum_{i in s} psi_i = n_s d_s
        Q = cells.gram
        M = np.zeros((K, K))
        Mpp = np.zeros((J, J))
        for s in range(S):
            if not A[s].any() and not D[s].any():
                continue
            Qs = Q[s]
            B = Qs[np.ix_(tj, tj)] - Qs[np.ix_(tj, bj)] - Qs[np.ix_(bj, tj)] + Qs[np.ix_(bj, bj)]
            Mpp += np.outer(A[s], A[s]) * B + n[s] * np.outer(D[s], D[s])
        M[:J, :J] = Mpp
        P = np.zeros((C, J))
        np.add.at(P, cidx, n[:, None] * D)
        M[J:, :J] = P
        M[:J, J:] = P.T
        M[J:, J:] = np.diag(n_g)
        stats = _IFStats(M=M, Z=None, cvals=cvals, n_g=n_g, J=J)
    else:
        s_k = cells.cl_stratum
        nk = cells.cl_n.astype(float)
        Yt = cells.cl_sum_y - nk[:, None] * ybar[s_k]  # centred cluster x stratum sums
        Psi = A[s_k] * (Yt[:, tj] - Yt[:, bj]) + nk[:, None] * D[s_k]
        Zk = np.zeros((nk.size, K))
        Zk[:, :J] = Psi
        Zk[np.arange(nk.size), J + cidx[s_k]] = nk
        order = np.argsort(cells.cl_cluster, kind="stable")
        starts, gids = _runs(cells.cl_cluster[order])
        Z = np.zeros((cells.n_clusters, K))
        Z[gids] = np.add.reduceat(Zk[order], starts, axis=0)
        stats = _IFStats(M=Z.T @ Z, Z=Z, cvals=cvals, n_g=n_g, J=J)
    return rows, np.array(est), stats, skipped, cvals


def _gaussian_band(table, F, N, n_boot, rng, level, rows):
    """Sup-t band from Gaussian draws with the exact IF covariance (``F'F``): unit-level cell results."""
    from ..staggered._bootstrap import sup_t_critical_value

    est = table["estimate"].to_numpy()
    se = table["std_error"].to_numpy()
    lo = np.full(len(table), np.nan)
    hi = np.full(len(table), np.nan)
    crit = float("nan")
    if n_boot > 0 and rows.size:
        draws = rng.standard_normal((n_boot, F.shape[0])) @ F[:, rows] / N
        crit = sup_t_critical_value(draws, se[rows], level)
        lo[rows] = est[rows] - crit * se[rows]
        hi[rows] = est[rows] + crit * se[rows]
    table = table.copy()
    table["conf_low_simul"] = lo
    table["conf_high_simul"] = hi
    return table, crit


def _band(table, stats: _IFStats, coef, N, n_boot, boot_weights, rng, level, rows):
    """Simultaneous band: the row path's multiplier bootstrap of cluster sums (clustered), else Gaussian."""
    from ..staggered.results import _bands

    if n_boot <= 0 or rows.size == 0:  # no band: no draws, so no factor of M (its eigendecomposition) is needed
        table = table.copy()
        table["conf_low_simul"] = np.nan
        table["conf_high_simul"] = np.nan
        return table, float("nan")
    F = stats.factor() @ coef
    if stats.Z is not None:
        return _bands(table, F, N, n_boot, boot_weights, rng, level, rows)
    return _gaussian_band(table, F, N, n_boot, rng, level, rows)


class CellATTgtResult(ATTgtResult):
    """:class:`~evalkit.staggered.results.ATTgtResult` estimated from sufficient statistics.

    Same table, ``vcov``, ``pretrend_test`` and :meth:`aggregate` (same estimates and analytic
    standard errors as the row path). Unit-level influence functions are not available; the
    IF second moments are (``extra["if_stats"]``).
    """

    def __repr__(self) -> str:
        return (f"<CellATTgtResult: {len(self.table)} ATT(g,t) cells, {self.conventions.estimator}, "
                f"{self.sample.n_units:,} units>")

    @property
    def influence_function(self):
        raise SpecificationError("A result from sufficient statistics has no unit-level influence functions; "
                                 "run ek.staggered.att_gt on rows for them (extra['if_stats'] holds their moments).")

    def _design(self):  # pragma: no cover - aggregate is overridden
        raise SpecificationError("No unit-level design on a result from sufficient statistics.")

    def aggregate(self, kind: str = "simple", *, min_e=None, max_e=None, balance_e=None, n_boot=None,
                  boot_weights=None, seed=None, level=None):
        from ..staggered._bootstrap import BOOT_WEIGHTS

        check_option(kind, "kind", AGGREGATIONS, "aggregate")
        for name, v in (("min_e", min_e), ("max_e", max_e), ("balance_e", balance_e)):
            if v is not None:
                check_scalar(v, name, (int, np.integer))
        if kind != "dynamic" and (min_e is not None or balance_e is not None):
            raise SpecificationError(f"min_e and balance_e apply to kind='dynamic' only. Got kind={kind!r}.")
        x = self.extra
        n_boot = x["n_boot"] if n_boot is None else check_scalar(n_boot, "n_boot", (int, np.integer), min_val=0)
        boot_weights = x["boot_weights"] if boot_weights is None else check_option(boot_weights, "boot_weights", BOOT_WEIGHTS)
        level = self.conventions.level if level is None else check_scalar(level, "level", float, min_val=0, max_val=1, include_min=False, include_max=False)
        if seed is not None:
            rng = as_generator(seed)
        elif x["seed_seq"] is not None:
            rng = np.random.default_rng(np.random.SeedSequence(x["seed_seq"].entropy, spawn_key=(1 + AGGREGATIONS.index(kind),)))
        else:
            rng = np.random.default_rng()
        stats: _IFStats = x["if_stats"]
        N = self.sample.n_units
        att = self.table["estimate"].to_numpy(dtype=float)
        g, t = x["g_code"], x["t_code"]
        sel = np.arange(att.size) if kind == "dynamic" else np.flatnonzero(~x["is_reference"])
        comps, est, coef_sel = _aggregation_coefficients(att[sel], g[sel], t[sel], stats, N, int(x["n_periods"]) - 1,
                                                         kind, min_e, max_e, balance_e)
        coef = np.zeros((stats.M.shape[0], coef_sel.shape[1]))
        coef[sel] = coef_sel[:sel.size]
        coef[stats.J:] = coef_sel[sel.size:]
        V = coef.T @ stats.M @ coef
        se = np.sqrt(np.maximum(np.diag(V), 0.0)) / N
        se = np.where(se > 1e-14 * max(1.0, np.nanmax(np.abs(est))), se, np.nan)
        axis = x["time_axis"]
        table = _aggregate_table(comps, est, se, axis, kind, level)
        comp_rows = np.arange(1, len(table))
        table, crit = _band(table, stats, coef, N, n_boot, boot_weights, rng, level, comp_rows)
        conv = self.conventions
        notes = tuple(conv.notes) + ((f"Simultaneous band over the {len(comp_rows)} components: sup-t critical value "
                                      f"{crit:.4f} from {n_boot} {_draw_kind(stats, boot_weights)} draws.",)
                                     if n_boot > 0 and comp_rows.size else ())
        conv = replace(conv, estimator=f"{conv.estimator} — aggregation '{kind}'", notes=notes)
        return AggregateResult(table=table, vcov=V / N**2, conventions=conv, sample=self.sample,
                               extra={"psi": None, "if_coefficients": _readonly(coef), "kind": kind, "crit_value": crit})


def _draw_kind(stats: _IFStats, boot_weights: str) -> str:
    return f"{boot_weights} multiplier" if stats.Z is not None else "Gaussian (exact IF covariance)"


def _aggregation_coefficients(att, g, t, stats: _IFStats, N: int, last_period: int, kind, min_e, max_e, balance_e):
    r"""Estimates and IF coefficients of an aggregation, through the row path's own ``aggregate_cells``.

    The aggregated IF of unit :math:`i` in cohort :math:`c` is :math:`\psi_i' W + H_c` (R ``did``:
    cell IFs times the aggregation weights plus the IF of the estimated weights, which depends on
    the unit only through its cohort; the constant term of ``_combine_many`` is identically 0).
    ``aggregate_cells`` is run on a design of ``J + C`` pseudo-units: the unit vectors of the cells
    (weight 0) and one pseudo-unit per cohort with weight :math:`\beta n_c`,
    :math:`\beta = (J + C)/N`, so that its :math:`\hat P(G=g) = n_g / N` as in the sample; the rows
    of the returned IFs are then :math:`W` and :math:`\beta n_c H_c`.
    Returns ``(components, estimates, coefficients (J' + C, 1 + K))``.
    """
    from ..staggered._aggregate import AggregationDesign, aggregate_cells

    J = att.size
    C = stats.cvals.size
    K0 = J + C
    beta = K0 / N
    psi = np.zeros((K0, J))
    psi[:J] = np.eye(J)
    ucoh = np.concatenate([np.full(J, np.inf), stats.cvals])
    uw = np.concatenate([np.zeros(J), beta * stats.n_g])
    d = AggregationDesign(att=att, psi=psi, g=g, t=t, unit_cohort=ucoh, unit_w=uw, last_period=last_period)
    comps, est, inf = aggregate_cells(d, kind, min_e=min_e, max_e=max_e, balance_e=balance_e)
    coef = np.array(inf, dtype=float)
    coef[J:] /= (beta * stats.n_g)[:, None]
    return comps, est, coef


def att_gt_from_cells(
    cells: CsCells,
    *,
    control: str = "never",
    method: str = "dr",
    anticipation: int = 0,
    base_period: str = "varying",
    level: float = 0.95,
    n_boot: int = 999,
    boot_weights: str = "rademacher",
    seed: int | np.random.Generator | None = None,
    notes: Sequence[str] = (),
):
    r"""Callaway–Sant'Anna ATT(g,t) without covariates from :class:`CsCells`, exactly.

    Returns a :class:`CellATTgtResult` (a subclass of
    :class:`~evalkit.staggered.results.ATTgtResult`) whose cells, standard errors, ``vcov``,
    ``pretrend_test()`` and ``aggregate(kind)`` estimates and standard errors equal those of
    ``ek.staggered.att_gt`` on the rows (to rounding).

    Parameters
    ----------
    cells : CsCells
        From :func:`att_gt_cells`; built with ``cluster=`` for clustered standard errors, without for
        unit-level ones.
    control, method, anticipation, base_period, level, n_boot, boot_weights, seed
        As in :func:`evalkit.staggered.att_gt`. Without covariates ``dr``, ``ipw`` and ``reg`` are
        the same difference of mean changes (``dr``/``ipw`` trim a cell whose cohort share is
        :math:`\ge 0.995`: then :class:`NotCompressible` is raised).

    Notes
    -----
    Standard errors are influence-function based: :math:`\sqrt{\sum_c (\sum_{i\in c}\psi_i)^2}/n`
    with :math:`n` the number of units and :math:`c` the units (``cluster=None``) or the clusters;
    no small-sample factor (as R ``did`` and the row path). Simultaneous bands: with clusters, the
    row path's multiplier bootstrap of the (identical) cluster sums; at unit level, Gaussian draws
    with the exact IF covariance (the row path's Rademacher draws over units approximate the same
    Gaussian; the bands agree up to Monte Carlo error, not draw for draw).
    """
    from ..staggered._bootstrap import BOOT_WEIGHTS

    check_option(control, "control", ["never", "notyet"], "att_gt")
    check_option(method, "method", ["dr", "ipw", "reg"], "att_gt")
    check_option(base_period, "base_period", ["varying", "universal"], "att_gt")
    check_option(boot_weights, "boot_weights", BOOT_WEIGHTS, "att_gt")
    check_scalar(anticipation, "anticipation", Integral, min_val=0)
    check_scalar(level, "level", Real, min_val=0, max_val=1, include_min=False, include_max=False)
    check_scalar(n_boot, "n_boot", Integral, min_val=0)
    if isinstance(seed, np.random.Generator):
        seed_seq = np.random.SeedSequence(int(seed.integers(2**63)))
        seed_int = None
    else:
        as_generator(seed)
        seed_seq = None if seed is None else np.random.SeedSequence(seed)
        seed_int = seed
    delta = int(anticipation)
    rows, est, stats, skipped, cvals = _estimate_cells(cells, control, delta, base_period, method)
    notes = list(notes)
    if skipped:
        warnings.warn("att_gt: " + "; ".join(skipped[:5]) + (f"; ... ({len(skipped)} in all)" if len(skipped) > 5 else ""),
                      EvalkitWarning, stacklevel=3)
        notes.extend(skipped)
    if not rows or all(r[6] for r in rows):  # only universal-base reference cells (fixed at 0) left, as the row path
        raise DataError("att_gt: no ATT(g,t) cell could be estimated (no treated cohort with comparison units "
                        "observed in the cell's period and its base period). Check the cohort coding, or use "
                        "control='notyet' when there are no never-treated units.")
    N = cells.n_units
    J = stats.J
    V = stats.M[:J, :J]
    se = np.sqrt(np.maximum(np.diag(V), 0.0)) / N
    vcov = V / N**2
    is_ref = np.array([r[6] for r in rows])
    se[is_ref] = np.nan
    ax = cells.time_axis
    table = _cell_table(rows, est, se, ax, level)
    rng = np.random.default_rng(np.random.SeedSequence(seed_seq.entropy, spawn_key=(0,))) if seed_seq is not None else np.random.default_rng()
    coef = np.zeros((stats.M.shape[0], J))
    coef[:J] = np.eye(J)
    table, crit = _band(table, stats, coef, N, n_boot, boot_weights, rng, level, np.flatnonzero(~is_ref))

    clustered = stats.Z is not None
    cname = cells.names["cluster"]
    vdesc = ("influence function, se = sqrt(sum_i psi_i^2)/n over units" if not clustered else
             f"influence function summed within {cname!r} clusters, se = sqrt(sum_c S_c^2)/n; no small-sample factor")
    ref = ("varying: t-1 for pre-treatment cells, g-1-anticipation for post cells" if base_period == "varying"
           else "universal: g-1-anticipation (reference cell fixed at 0)")
    strata_desc = (f"{cells.n_strata:,} cohort x enrollment-pattern strata" if not cells.balanced
                   else f"{cells.n_strata:,} cohort strata")
    what = (f"{cells.cl_n.shape[0]:,} cluster x stratum cells ({strata_desc})" if clustered
            else f"{strata_desc} with their T x T Gram matrices")
    notes.insert(0, f"Estimated from sufficient statistics: {what}, {cells.n_numbers:,} numbers for {cells.n_obs:,} rows "
                    f"({cells.engine}); equal to the row-level att_gt.")
    if n_boot:
        notes.append(f"Simultaneous band over the ATT(g,t) cells: sup-t critical value {crit:.4f} from {n_boot} "
                     f"{_draw_kind(stats, boot_weights)} draws" + (f" clustered by {cname!r}" if clustered else "") + ".")
    if not cells.balanced:
        notes.append("Unbalanced panel: each ATT(g,t) uses the units observed in both t and its base period.")
    conv = Conventions(
        estimator=f"Callaway-Sant'Anna ATT(g,t), {method}, control={control!r}",
        vcov_type="IF" if not clustered else "IF-cluster",
        vcov_description=vdesc,
        distribution="normal",
        df=None,
        cluster=(cname,) if clustered else (cells.names["unit"],),
        n_clusters=(cells.n_clusters,) if clustered else (N,),
        small_sample="none",
        weights=None,
        reference_period=ref,
        level=float(level),
        seed=seed_int,
        notes=tuple(notes),
    )
    n_treated = int(cells.n[np.isfinite(cells.cohort)].sum())
    sample = SampleInfo(n_obs=cells.n_obs, n_input_rows=cells.n_input_rows, n_units=N, n_periods=cells.n_periods,
                        balanced=cells.balanced, n_treated_units=n_treated, dropped=cells.dropped)
    extra = {
        "psi": None, "g_code": _readonly([r[0] for r in rows]), "t_code": _readonly([r[1] for r in rows]),
        "unit_cohort": None, "unit_w": None, "cluster": None, "n_periods": cells.n_periods,
        "is_reference": is_ref, "time_axis": ax, "n_boot": int(n_boot), "boot_weights": boot_weights,
        "seed_seq": seed_seq, "crit_value": crit, "method": method, "control": control,
        "base_period": base_period, "anticipation": delta, "if_stats": stats, "cells": cells,
    }
    return CellATTgtResult(table=table, vcov=vcov, conventions=conv, sample=sample, extra=extra)


# ----------------------------------------------------------------------------------------------
# dispatcher with a logged fallback


def att_gt(
    data,
    *,
    outcome: str,
    unit: str,
    time: str,
    cohort: str,
    control: str = "never",
    method: str = "dr",
    covariates: Sequence[str] = (),
    anticipation: int = 0,
    base_period: str = "varying",
    cluster: str | None = None,
    weights: str | None = None,
    level: float = 0.95,
    n_boot: int = 999,
    boot_weights: str = "rademacher",
    seed: int | np.random.Generator | None = None,
    dropna: bool = False,
    engine: str = "auto",
    connection=None,
):
    """ATT(g,t) from sufficient statistics when that is exact, else the row-level :func:`evalkit.staggered.att_gt`.

    Same arguments and (aggregations, estimates, standard errors) as
    :func:`evalkit.staggered.att_gt`; ``data`` may also be a :class:`~evalkit.scale.ClaimsPanel`,
    a Parquet path/glob or a SQL query (compressed inside DuckDB). The cell path is taken when there
    are no covariates and no weights (and, on the DuckDB engine, ``dropna=False``); it handles
    ``control``, ``base_period``, ``anticipation``, balanced and unbalanced panels, and
    ``cluster`` (constant within unit) or unit-level standard errors. Otherwise — or when
    :func:`att_gt_cells` / :func:`att_gt_from_cells` raise :class:`NotCompressible` — the row path
    runs (files are read with DuckDB, only the needed columns) and the reason is logged (logger
    ``evalkit.scale.cs_cells``, INFO) and added to the result's notes.

    Returns
    -------
    CellATTgtResult or ATTgtResult

    Examples
    --------
    >>> import evalkit as ek
    >>> res = ek.scale.att_gt(ek.datasets.load_mpdta(), outcome="lemp", unit="countyreal", time="year",
    ...                       cohort="first.treat", n_boot=0)
    >>> agg = res.aggregate("simple")
    >>> round(agg.estimate, 7), round(agg.std_error, 7)
    (-0.0399513, 0.012034)
    """
    covariates = check_columns_arg(covariates, "covariates")
    clusters = check_columns_arg(cluster, "cluster")
    if len(clusters) > 1:
        raise SpecificationError(f"The 'cluster' parameter takes one column (clustering above the unit). Got {list(clusters)}.")
    reason = None
    if covariates:
        reason = "covariates were given (the cell estimator is the unconditional difference of mean changes)"
    elif weights is not None:
        reason = "weights were given"
    if reason is None:
        try:
            cells = att_gt_cells(data, outcome=outcome, unit=unit, time=time, cohort=cohort, cluster=cluster, engine=engine,
                             connection=connection, dropna=dropna)
            if cells.n_numbers >= cells.n_obs:
                raise NotCompressible(f"the statistics ({cells.n_numbers:,} numbers) are not smaller than the "
                                      f"{cells.n_obs:,} rows")
            return att_gt_from_cells(cells, control=control, method=method, anticipation=anticipation,
                                     base_period=base_period, level=level, n_boot=n_boot, boot_weights=boot_weights,
                                     seed=seed)
        except NotCompressible as exc:
            reason = str(exc)
    msg = f"ATT(g,t) from sufficient statistics is not exact here ({reason}); using the row-level path."
    logger.info(msg)
    from .. import staggered

    from .cells import _rows_frame

    data = _rows_frame(data, {"outcome": [outcome], "unit": [unit], "time": [time], "cohort": [cohort],
                              "cluster": clusters, "covariate": covariates, "weights": [weights] if weights else []},
                       connection)
    res = staggered.att_gt(data, outcome=outcome, unit=unit, time=time, cohort=cohort, control=control, method=method,
                           covariates=covariates, anticipation=anticipation, base_period=base_period, cluster=cluster,
                           weights=weights, level=level, n_boot=n_boot, boot_weights=boot_weights, seed=seed,
                           dropna=dropna)
    conv = res.conventions
    object.__setattr__(res, "conventions", Conventions(**{**conv.as_dict(), "notes": conv.notes + (msg,)}))
    return res
