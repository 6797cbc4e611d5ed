"""Out-of-core input: claim lines (Parquet/CSV) -> member-period panel, aggregated inside the engine.

The claim lines never reach pandas: DuckDB (embedded, the default) or pyarrow reads only the
columns the aggregation needs, groups claim lines to one row per member and period, encodes
string ids to dense integers, and hands pandas the (much smaller) member-period frame, sorted by
(unit, time), ready for :func:`evalkit.data.validate_panel`.
"""
from __future__ import annotations

import glob as _glob
import logging
import os
from dataclasses import dataclass
from typing import Mapping, Sequence

import numpy as np
import pandas as pd

from .._validation import check_columns_arg, check_option
from ..errors import DataError, SpecificationError

__all__ = ["read_claims", "ClaimsPanel", "AGGREGATES", "check_panel_source", "duckdb_connect", "source_sql",
           "panel_relation", "PanelRelation"]

logger = logging.getLogger(__name__)

#: Aggregate functions accepted in ``aggregate=`` (DuckDB name, pyarrow name).
AGGREGATES = {
    "sum": ("sum", "sum"),
    "count": ("count", "count"),
    "mean": ("avg", "mean"),
    "min": ("min", "min"),
    "max": ("max", "max"),
    "any_value": ("any_value", "min"),  # a column constant within member-period (e.g. org id): min is one of its values
    "count_distinct": ("count_distinct", "count_distinct"),
}
_GRAINS = ("month", "quarter", "year")


@dataclass(frozen=True)
class _Agg:
    out: str
    func: str
    column: str | None  # None: count(*)
    where: tuple[tuple[str, object], ...] = ()


@dataclass(frozen=True)
class ClaimsPanel:
    """A member-period panel read out of core, with the levels of the encoded ids.

    Attributes
    ----------
    data : pandas.DataFrame
        One row per (unit, time), sorted by them; encoded id columns are int64 codes ``0..K-1``.
    levels : dict of {str: pandas.Index}
        For each encoded column, the original id of each code (``levels[col][code]``).
    n_source_rows : int
        Claim lines read (after ``where`` filters).
    engine : str
        ``"duckdb"`` or ``"pyarrow"``.
    """

    data: pd.DataFrame
    levels: Mapping[str, pd.Index]
    n_source_rows: int
    engine: str

    def decode(self, column: str) -> pd.Series:
        """The original ids of an encoded column, aligned with ``data``."""
        if column not in self.levels:
            raise SpecificationError(f"Column {column!r} was not encoded; encoded columns: {list(self.levels)}.")
        lev = self.levels[column]
        return pd.Series(lev.take(self.data[column].to_numpy()), index=self.data.index, name=column)


# ----------------------------------------------------------------------------------------------
# helpers shared with the cell builders


def duckdb_connect(connection=None, *, threads: int | None = None, memory_limit: str | None = None):
    """An in-memory DuckDB connection (or the one given), configured for out-of-core work.

    A connection made here uses ``TimeZone = 'UTC'`` (DuckDB's default is the machine's local zone),
    so nothing evalkit computes depends on where it runs. A connection passed in keeps its settings:
    the builders convert zoned timestamps to wall-clock time explicitly (:func:`panel_relation`).
    """
    try:
        import duckdb
    except ImportError as exc:  # pragma: no cover - exercised only without the extra
        raise ImportError("evalkit.scale needs duckdb: pip install 'evalkit[scale]' (or pip install duckdb pyarrow).") from exc
    if connection is not None:
        con = connection
    else:
        con = duckdb.connect(":memory:")
        try:
            con.execute("SET TimeZone = 'UTC'")  # needs the ICU extension (bundled in the pip wheels)
        except duckdb.Error:  # pragma: no cover - a build without ICU has no time zones: always UTC
            pass
    if threads is not None:
        con.execute(f"SET threads = {int(threads)}")
    if memory_limit is not None:
        con.execute(f"SET memory_limit = '{_sql_str(memory_limit)}'")
    return con


def _sql_str(s: str) -> str:
    return str(s).replace("'", "''")


def qident(name: str) -> str:
    """A quoted SQL identifier."""
    return '"' + str(name).replace('"', '""') + '"'


def is_float_type(sql_type: str) -> bool:
    """Whether a DuckDB column type can hold NaN and +-inf (which the data contract counts as missing)."""
    return str(sql_type).upper() in ("FLOAT", "DOUBLE", "REAL", "FLOAT4", "FLOAT8")


def is_zoned_type(sql_type: str) -> bool:
    """A DuckDB ``TIMESTAMP WITH TIME ZONE`` (an instant; shown in the session's time zone)."""
    t = str(sql_type).upper()
    return t in ("TIMESTAMPTZ", "TIMESTAMP WITH TIME ZONE")


def _offset_minutes(zone: str) -> int | None:
    """Minutes east of UTC of a fixed-offset zone written ``+HH:MM`` / ``-HH:MM`` (pyarrow's spelling)."""
    z = str(zone)
    if len(z) == 6 and z[0] in "+-" and z[3] == ":" and z[1:3].isdigit() and z[4:].isdigit():
        m = int(z[1:3]) * 60 + int(z[4:])
        return m if z[0] == "+" else -m
    return None


def wall_time_sql(expr: str, zone: str = "UTC") -> str:
    """SQL turning a zoned timestamp (an instant) into the naive wall-clock time in ``zone``.

    Explicit, so that the result does not depend on the session's ``TimeZone`` setting: pandas
    (the row path) sees a zoned column in the zone it was written with (``UTC`` when unknown).
    """
    off = _offset_minutes(zone)
    if off is not None:
        return f"(timezone('UTC', {expr}) + INTERVAL ({off}) MINUTE)"
    return f"timezone('{_sql_str(zone)}', {expr})"


def instant_sql(expr: str, zone: str = "UTC") -> str:
    """The inverse of :func:`wall_time_sql`: a naive wall-clock time in ``zone`` as an instant."""
    off = _offset_minutes(zone)
    if off is not None:
        return f"timezone('UTC', {expr} - INTERVAL ({off}) MINUTE)"
    return f"timezone('{_sql_str(zone)}', {expr})"


def parquet_time_zones(files: Sequence[str], columns: Sequence[str]) -> dict[str, str]:
    """The time zone each zoned timestamp column was written with, from the Parquet (Arrow) schema.

    pandas writes a tz-aware column with its zone in the file's Arrow schema and reads it back in
    that zone; DuckDB keeps only the instant. Columns not found (or pyarrow missing): absent (UTC).
    """
    try:
        import pyarrow as pa
        import pyarrow.parquet as pq
    except ImportError:  # pragma: no cover - pyarrow is part of the scale extra
        return {}
    want = set(columns)
    zones: dict[str, str] = {}
    for f in files:
        if not want or os.path.splitext(f)[1].lower() not in (".parquet", ".pq"):
            continue
        try:
            schema = pq.read_schema(f)
        except Exception:  # noqa: BLE001, S112 - unreadable here: DuckDB reports it with its own message
            continue
        for c in list(want):
            if c in schema.names:
                t = schema.field(c).type
                if pa.types.is_timestamp(t) and t.tz:
                    zones[c] = str(t.tz)
                want.discard(c)
    return zones


def _check_zone(con, zone: str, column: str, role: str) -> None:
    if _offset_minutes(zone) is not None or zone.upper() in ("UTC", "ETC/UTC"):
        return
    try:
        con.execute("SELECT " + wall_time_sql("TIMESTAMPTZ '2000-01-01 00:00:00+00'", zone)).fetchone()
    except Exception as exc:  # duckdb.Error, without importing duckdb here
        raise DataError(f"Column {column!r} (the {role}) holds timestamps in time zone {zone!r}, which DuckDB does not "
                        f"know. Convert the column to UTC (or to naive dates) before writing the file.") from exc


def _literal(v) -> str:
    if v is None:
        return "NULL"
    if isinstance(v, (bool, np.bool_)):
        return "TRUE" if v else "FALSE"
    if isinstance(v, (int, np.integer)):
        return str(int(v))
    if isinstance(v, (float, np.floating)):
        return repr(float(v))
    return "'" + _sql_str(v) + "'"


def _expand(source) -> list[str]:
    """Files named by a path, a glob or a list of them (directories: every Parquet/CSV file inside)."""
    items = [source] if isinstance(source, (str, os.PathLike)) else list(source)
    files: list[str] = []
    for it in items:
        p = os.fspath(it)
        if os.path.isdir(p):
            found = sorted(_glob.glob(os.path.join(p, "**", "*.parquet"), recursive=True)
                           + _glob.glob(os.path.join(p, "**", "*.csv"), recursive=True))
        elif any(ch in p for ch in "*?["):
            found = sorted(_glob.glob(p, recursive=True))
        else:
            found = [p] if os.path.exists(p) else []
        if not found:
            raise DataError(f"No claim files found at {p!r}. Check the path or glob (e.g. 'claims/*.parquet').")
        files += found
    return files


def _format_of(files: Sequence[str], fmt: str | None) -> str:
    if fmt is not None:
        return check_option(fmt, "format", ("parquet", "csv"), "read_claims")
    exts = {os.path.splitext(f)[1].lower() for f in files}
    if exts <= {".parquet", ".pq"}:
        return "parquet"
    if exts <= {".csv", ".gz", ".txt"}:
        return "csv"
    raise SpecificationError(f"Cannot tell the file format from the extensions {sorted(exts)}; pass format='parquet' or 'csv'.")


def is_sql_query(source) -> bool:
    """Whether ``source`` is a SQL query (rather than a path or glob)."""
    return isinstance(source, str) and source.strip().lower().startswith(("select ", "from ", "with "))


def source_sql(files: Sequence[str], fmt: str) -> str:
    """A DuckDB table function reading the files (only the selected columns are ever read)."""
    lst = "[" + ", ".join("'" + _sql_str(f) + "'" for f in files) + "]"
    if fmt == "parquet":
        return f"read_parquet({lst}, union_by_name = true)"
    return f"read_csv({lst}, header = true, union_by_name = true)"


def _missing_column_error(name: str, role: str, available: Sequence[str]) -> DataError:
    close = [c for c in available if str(c).lower() == str(name).lower()]
    hint = f" Did you mean {close[0]!r}?" if close else ""
    return DataError(f"Column {name!r} (the {role}) not found in data.{hint} Available columns: {list(available)[:20]}.")


def _parse_aggregate(aggregate: Mapping[str, object] | None) -> list[_Agg]:
    if not aggregate:
        raise SpecificationError(
            "aggregate= must map output columns to aggregations, e.g. {'spending': ('sum', 'allowed'), "
            "'n_claims': ('count', None), 'spend_ip': ('sum', 'allowed', {'category': 'inpatient'})}."
        )
    out = []
    for name, spec in aggregate.items():
        where: Mapping[str, object] = {}
        if isinstance(spec, str):
            func, _, col = spec.partition(":")
            col = col or None
        elif isinstance(spec, (tuple, list)) and 1 <= len(spec) <= 3:
            func = spec[0]
            col = spec[1] if len(spec) > 1 else None
            where = spec[2] if len(spec) > 2 else {}
        else:
            raise SpecificationError(f"aggregate[{name!r}] must be 'func:column' or (func, column[, {{col: value}}]). Got {spec!r}.")
        check_option(func, f"aggregate[{name!r}]", tuple(AGGREGATES), "read_claims")
        if col is None and func != "count":
            raise SpecificationError(f"aggregate[{name!r}]: {func!r} needs a column.")
        if not isinstance(where, Mapping):
            raise SpecificationError(f"aggregate[{name!r}]: the filter must be a dict {{column: value}}. Got {where!r}.")
        out.append(_Agg(str(name), func, None if col is None else str(col), tuple(where.items())))
    return out


def _needed_columns(unit: str, time: str, aggs: list[_Agg], keep: Sequence[str], where: Mapping[str, object] | None) -> dict[str, str]:
    roles: dict[str, str] = {unit: "unit", time: "time"}
    for a in aggs:
        if a.column is not None:
            roles.setdefault(a.column, f"column aggregated into {a.out!r}")
        for c, _ in a.where:
            roles.setdefault(c, f"filter of {a.out!r}")
    for c in keep:
        roles.setdefault(c, "kept column")
    for c in (where or {}):
        roles.setdefault(c, "row filter")
    return roles


# ----------------------------------------------------------------------------------------------
# read_claims


def read_claims(
    source,
    *,
    unit: str,
    time: str,
    aggregate: Mapping[str, object],
    keep: Sequence[str] = (),
    time_grain: str | None = None,
    encode: Sequence[str] | None = None,
    where: Mapping[str, object] | None = None,
    validate: bool = True,
    dropna: bool = False,
    engine: str = "duckdb",
    format: str | None = None,
    connection=None,
    threads: int | None = None,
    memory_limit: str | None = None,
) -> ClaimsPanel:
    """Read claim lines out of core and aggregate them to one row per unit and period in the engine.

    Parameters
    ----------
    source : str, path, or list of them
        Parquet or CSV file(s): a path, a glob (``"claims/*.parquet"``), a directory, or a list.
    unit, time : str
        Member id and service-date (or period) column of the claim lines. Output keeps these names.
    aggregate : dict
        Output column -> aggregation of claim lines within member-period: ``"sum:allowed"``,
        ``("sum", "allowed")``, ``("count", None)`` (claim lines), or with an equality filter
        ``("sum", "allowed", {"category": "inpatient"})`` (spending by category). Functions:
        ``sum``, ``count``, ``mean``, ``min``, ``max``, ``any_value``, ``count_distinct``.
        Sums and counts of member-periods with no matching line are 0, not missing.
    keep : sequence of str, default=()
        Member-period attributes carried through (e.g. ``org_id``, ``cohort``): one value per
        (unit, time) is taken (``min``); with ``validate=True`` a column that varies within a
        member-period raises.
    time_grain : {"month", "quarter", "year"} or None, default=None
        Truncate a date ``time`` to this grain in the engine (``date_trunc``) before grouping;
        ``None`` groups on the values as they are (already a period code).
    encode : sequence of str or None, default=None
        Columns (among ``unit`` and ``keep``) to encode as dense int64 codes (sorted order of the
        ids) inside the engine, so that string ids never reach pandas; ``None`` encodes ``unit``
        and every non-numeric kept column. The original ids are in ``ClaimsPanel.levels``.
    where : dict or None, default=None
        Equality filters on claim lines applied before aggregation (``{"line_status": "paid"}``).
    validate : bool, default=True
        Check the cheap parts of the data contract in the engine, with the messages of
        :func:`evalkit.data.validate_panel`: missing columns, missing unit/time/aggregated values
        (counts per column), kept columns constant within member-period.
    dropna : bool, default=False
        With ``validate=True``: drop claim lines with a missing unit or time (and count them in
        the log) instead of raising.
    engine : {"duckdb", "pyarrow"}, default="duckdb"
        DuckDB streams and spills to disk (bounded memory, ``memory_limit``); pyarrow reads the
        selected columns into Arrow memory (not pandas) and aggregates there.
    format : {"parquet", "csv"} or None
        File format; inferred from the extensions when None.
    connection : duckdb.DuckDBPyConnection or None
        Reuse a connection (e.g. with settings); default a new in-memory one.
    threads, memory_limit : optional
        DuckDB ``SET threads`` / ``SET memory_limit`` (e.g. ``"4GB"``).

    Returns
    -------
    ClaimsPanel
        ``.data`` (pandas, one row per unit-period, sorted), ``.levels`` (encoded ids).

    Examples
    --------
    >>> cp = ek.scale.read_claims("claims/*.parquet", unit="member_id", time="service_date",
    ...                           time_grain="quarter", keep=["org_id"],
    ...                           aggregate={"spending": "sum:allowed", "n_lines": ("count", None),
    ...                                      "spend_ip": ("sum", "allowed", {"category": "inpatient"})})
    ...                                                                    # doctest: +SKIP
    >>> vp = ek.data.validate_panel(cp.data, outcome="spending", unit="member_id", time="service_date")
    ...                                                                    # doctest: +SKIP
    """
    check_option(engine, "engine", ("duckdb", "pyarrow"), "read_claims")
    if time_grain is not None:
        check_option(time_grain, "time_grain", _GRAINS, "read_claims")
    keep = check_columns_arg(keep, "keep")
    aggs = _parse_aggregate(aggregate)
    outs = [a.out for a in aggs]
    clash = [o for o in outs if o in (unit, time) or o in keep]
    if clash or len(set(outs)) != len(outs):
        raise SpecificationError(f"aggregate=: output names must be unique and differ from unit/time/keep; clash: {clash or outs}.")
    files = _expand(source)
    fmt = _format_of(files, format)
    roles = _needed_columns(unit, time, aggs, keep, where)
    if engine == "duckdb":
        return _read_duckdb(files, fmt, unit, time, aggs, keep, time_grain, encode, where, validate, dropna, roles,
                            connection, threads, memory_limit)
    return _read_pyarrow(files, fmt, unit, time, aggs, keep, time_grain, encode, where, validate, dropna, roles)


def _default_encode(unit: str, keep: Sequence[str], types: Mapping[str, str]) -> tuple[str, ...]:
    def numeric(t: str) -> bool:
        t = t.upper()
        return any(k in t for k in ("INT", "DOUBLE", "FLOAT", "DECIMAL", "REAL", "BOOL")) or t in ("int64", "double")

    return tuple(c for c in (unit, *keep) if not numeric(types.get(c, "VARCHAR")))


def _missing_error(counts: dict[str, int], n_bad: int, n: int) -> DataError:
    detail = ", ".join(f"{c!r}: {k}" for c, k in counts.items())
    return DataError(
        f"Missing (or infinite) values in {n_bad} of {n} rows ({detail}). Fill or remove "
        f"them, or pass dropna=True to drop these rows (the count is recorded on the result)."
    )


def _read_duckdb(files, fmt, unit, time, aggs, keep, grain, encode, where, validate, dropna, roles,
                 connection, threads, memory_limit) -> ClaimsPanel:
    con = duckdb_connect(connection, threads=threads, memory_limit=memory_limit)
    src = source_sql(files, fmt)
    desc = con.execute(f"DESCRIBE SELECT * FROM {src}").fetchall()
    types = {r[0]: str(r[1]) for r in desc}
    for c, role in roles.items():
        if c not in types:
            raise _missing_column_error(c, role, list(types))
    q = qident
    filt = " AND ".join(f"{q(c)} = {_literal(v)}" for c, v in (where or {}).items())
    base_where = f"WHERE {filt}" if filt else ""
    # zoned timestamps: truncate in the wall-clock time of the zone the file records (not the session's)
    zoned = [c for c in roles if is_zoned_type(types[c])]
    zones = parquet_time_zones(files, zoned) if zoned else {}
    for c in zoned:
        zones.setdefault(c, "UTC")
        _check_zone(con, zones[c], c, "time" if c == time else "column")
    if grain and time in zones:
        tcol = instant_sql(f"date_trunc('{grain}', {wall_time_sql(q(time), zones[time])})", zones[time])
    else:
        tcol = f"date_trunc('{grain}', {q(time)})" if grain else q(time)
    if grain and not any(k in types[time].upper() for k in ("DATE", "TIMESTAMP")):
        raise DataError(f"Column {time!r} (the time) has type {types[time]}; time_grain={grain!r} needs a date. "
                        f"Pass time_grain=None when it already holds periods.")
    cols = ", ".join(q(c) for c in roles)
    lines = f"(SELECT {cols} FROM {src} {base_where}) AS lines"
    n_src = None
    dropped_keys = 0
    if validate:
        # one scan: NULL counts of the keys and of the aggregated columns
        value_cols = list(dict.fromkeys([unit, time] + [a.column for a in aggs if a.column is not None]))
        # NULL, and NaN / +-inf in floating-point columns (NaN is not NULL in Parquet written by DuckDB, Spark, Polars)
        infl = [c for c in value_cols if is_float_type(types[c])]

        def bad_expr(c: str) -> str:
            return f"{q(c)} IS NULL" + (f" OR isnan({q(c)}) OR isinf({q(c)})" if c in infl else "")

        # one scan, bad rows counted with FILTER: a WHERE isnan(..) would be pushed into the Parquet reader,
        # whose row-group statistics leave NaN out (row groups holding NaN would be skipped)
        any_bad = " OR ".join(f"({bad_expr(c)})" for c in value_cols)
        exprs = ["count(*)", f"count(*) FILTER (WHERE {any_bad})"] + [f"count(*) FILTER (WHERE {bad_expr(c)})" for c in value_cols]
        row = con.execute(f"SELECT {', '.join(exprs)} FROM {lines}").fetchone()
        n_src = int(row[0])
        if n_src == 0:
            raise DataError("`data` has no rows.")
        counts = {c: int(v) for c, v in zip(value_cols, row[2:]) if v}
        if counts:
            n_bad = int(row[1])
            key_bad = {c: k for c, k in counts.items() if c in (unit, time)}
            if not dropna or len(key_bad) != len(counts):
                if not dropna:
                    raise _missing_error(counts, n_bad, n_src)
                other = {c: k for c, k in counts.items() if c not in (unit, time)}
                raise DataError(
                    f"Missing (or infinite) values in aggregated columns ({', '.join(f'{c!r}: {k}' for c, k in other.items())}) "
                    f"of the claim lines; dropna=True drops only lines with a missing {unit!r} or {time!r}. Fill them "
                    f"(e.g. allowed amount 0) or filter them with where=."
                )
            dropped_keys = n_bad
            logger.info("read_claims: %d of %d claim lines dropped (missing %s)", n_bad, n_src, list(key_bad))
    key_ok = f"{q(unit)} IS NOT NULL AND {q(time)} IS NOT NULL"
    sel = [f"{q(unit)} AS {q(unit)}", f"{tcol} AS {q(time)}"]
    for a in aggs:
        cond = " AND ".join(f"{q(c)} = {_literal(v)}" for c, v in a.where)
        if a.func == "count":
            inner = "*" if a.column is None else q(a.column)
            expr = (f"count({inner}) FILTER (WHERE {cond})" if cond else f"count({inner})")
        else:
            fn = AGGREGATES[a.func][0]
            expr = f"{fn}({q(a.column)})" + (f" FILTER (WHERE {cond})" if cond else "")
            if a.func == "sum":
                expr = f"coalesce({expr}, 0)"
            elif a.func == "count_distinct":
                expr = f"count(DISTINCT {q(a.column)})" + (f" FILTER (WHERE {cond})" if cond else "")
        sel.append(f"{expr} AS {q(a.out)}")
    for c in keep:
        sel.append(f"min({q(c)}) AS {q(c)}")
        if validate:
            sel.append(f"count(DISTINCT {q(c)}) AS {q('__nd_' + c)}")
    grouped = f"SELECT {', '.join(sel)} FROM {lines} WHERE {key_ok} GROUP BY ALL"
    enc = tuple(encode) if encode is not None else _default_encode(unit, keep, types)
    bad_enc = [c for c in enc if c not in (unit, *keep)]
    if bad_enc:
        raise SpecificationError(f"encode={list(enc)}: {bad_enc} are not the unit or kept columns.")
    con.execute(f"CREATE OR REPLACE TEMP TABLE __ek_mp AS {grouped}")
    if validate and keep:
        nd = ", ".join(f"sum(CASE WHEN {q('__nd_' + c)} > 1 THEN 1 ELSE 0 END)" for c in keep)
        row = con.execute(f"SELECT {nd} FROM __ek_mp").fetchone()
        varying = {c: int(v) for c, v in zip(keep, row) if v}
        if varying:
            c, k = next(iter(varying.items()))
            raise DataError(
                f"Column {c!r} (a kept column) takes several values within {k} ({unit!r}, {time!r}) member-periods. "
                f"Aggregate it instead (aggregate={{{c!r}: ('max', {c!r})}}) or fix the attribution."
            )
    levels: dict[str, pd.Index] = {}
    out_cols = []
    joins = []
    for c in enc:
        con.execute(f"CREATE OR REPLACE TEMP TABLE {q('__lev_' + c)} AS SELECT v, (row_number() OVER (ORDER BY v)) - 1 AS code "
                    f"FROM (SELECT DISTINCT {q(c)} AS v FROM __ek_mp WHERE {q(c)} IS NOT NULL)")
        lev = con.execute(f"SELECT v FROM {q('__lev_' + c)} ORDER BY code").fetchnumpy()["v"]
        levels[c] = pd.Index(np.asarray(lev), name=c)
        joins.append(f"LEFT JOIN {q('__lev_' + c)} AS {q('l_' + c)} ON mp.{q(c)} = {q('l_' + c)}.v")
    for c in [unit, time] + [a.out for a in aggs] + list(keep):
        out_cols.append(f"{q('l_' + c)}.code AS {q(c)}" if c in enc else f"mp.{q(c)}")
    order = f"{q('l_' + unit)}.code" if unit in enc else f"mp.{q(unit)}"
    final = f"SELECT {', '.join(out_cols)} FROM __ek_mp AS mp {' '.join(joins)} ORDER BY {order}, mp.{q(time)}"
    df = con.execute(final).df()
    for c in enc:
        df[c] = df[c].astype(np.int64)
    # zoned timestamps come back in the session's zone: show them in the file's zone (as pandas and pyarrow do)
    src_of = {time: time, **{a.out: a.column for a in aggs}, **{c: c for c in keep}}
    for c, src_col in src_of.items():
        if c in df.columns and isinstance(df[c].dtype, pd.DatetimeTZDtype):
            df[c] = df[c].dt.tz_convert(zones.get(src_col, "UTC"))
    if n_src is None:
        n_src = -1
    con.execute("DROP TABLE IF EXISTS __ek_mp")
    for c in enc:
        con.execute(f"DROP TABLE IF EXISTS {q('__lev_' + c)}")
    logger.info("read_claims(duckdb): %s claim lines -> %d member-periods (%d dropped)", n_src, len(df), dropped_keys)
    return ClaimsPanel(df, levels, n_src, "duckdb")


def _read_pyarrow(files, fmt, unit, time, aggs, keep, grain, encode, where, validate, dropna, roles) -> ClaimsPanel:
    import pyarrow as pa
    import pyarrow.compute as pc
    import pyarrow.dataset as ds

    dset = ds.dataset(list(files), format=fmt)
    names = dset.schema.names
    for c, role in roles.items():
        if c not in names:
            raise _missing_column_error(c, role, names)
    expr = None
    for c, v in (where or {}).items():
        e = pc.field(c) == v
        expr = e if expr is None else expr & e
    tab = dset.to_table(columns=list(roles), filter=expr)
    n_src = tab.num_rows
    if validate:
        if n_src == 0:
            raise DataError("`data` has no rows.")
        value_cols = list(dict.fromkeys([unit, time] + [a.column for a in aggs if a.column is not None]))
        counts, bad = {}, None
        for c in value_cols:
            col = tab[c]
            m = pc.is_null(col)
            if pa.types.is_floating(col.type):  # NaN (not null in Arrow) and +-inf count as missing
                m = pc.or_(m, pc.fill_null(pc.or_(pc.is_inf(col), pc.is_nan(col)), False))
            k = pc.sum(m.cast(pa.int64())).as_py() or 0
            if k:
                counts[c] = k
                bad = m if bad is None else pc.or_(bad, m)
        if counts:
            n_bad = pc.sum(bad.cast(pa.int64())).as_py()
            if not dropna or any(c not in (unit, time) for c in counts):
                raise _missing_error(counts, n_bad, n_src)
            tab = tab.filter(pc.invert(bad))
            logger.info("read_claims: %d of %d claim lines dropped (missing keys)", n_bad, n_src)
    else:
        tab = tab.filter(pc.and_(pc.is_valid(tab[unit]), pc.is_valid(tab[time])))
    tcol = tab[time]
    if grain:
        if not (pa.types.is_date(tcol.type) or pa.types.is_timestamp(tcol.type)):
            raise DataError(f"Column {time!r} (the time) has type {tcol.type}; time_grain={grain!r} needs a date. "
                            f"Pass time_grain=None when it already holds periods.")
        tcol = pc.floor_temporal(tcol, unit=grain)
    cols = {unit: tab[unit], time: tcol}
    spec = []
    for i, a in enumerate(aggs):
        if a.column is None:
            vals = pa.array(np.ones(tab.num_rows, dtype=np.int64))
        else:
            vals = tab[a.column]
        if a.where:
            m = None
            for c, v in a.where:
                e = pc.fill_null(pc.equal(tab[c], v), False)
                m = e if m is None else pc.and_(m, e)
            vals = pc.if_else(m, vals, pa.scalar(None, vals.type))
        tmp = f"__a{i}"
        cols[tmp] = vals
        fn = AGGREGATES[a.func][1]
        if a.func == "count" and a.column is None:
            fn = "sum"
        spec.append((tmp, fn, a))
    for c in keep:
        cols[c] = tab[c]
    t2 = pa.table(cols)
    agg_list = [(tmp, fn) for tmp, fn, _ in spec] + [(c, "min") for c in keep]
    if validate:
        agg_list += [(c, "count_distinct") for c in keep]
    g = t2.group_by([unit, time]).aggregate(agg_list)
    out = {unit: g[unit], time: g[time]}
    for tmp, fn, a in spec:
        v = g[f"{tmp}_{fn}"]
        if a.func in ("sum", "count"):
            v = pc.fill_null(v, 0)
        out[a.out] = v
    for c in keep:
        out[c] = g[f"{c}_min"]
        if validate:
            nd = g[f"{c}_count_distinct"]
            k = pc.sum(pc.greater(nd, 1).cast(pa.int64())).as_py() or 0
            if k:
                raise DataError(
                    f"Column {c!r} (a kept column) takes several values within {k} ({unit!r}, {time!r}) member-periods. "
                    f"Aggregate it instead (aggregate={{{c!r}: ('max', {c!r})}}) or fix the attribution."
                )
    types = {c: ("int64" if pa.types.is_integer(out[c].type) or pa.types.is_floating(out[c].type) else "VARCHAR") for c in (unit, *keep)}
    enc = tuple(encode) if encode is not None else _default_encode(unit, keep, types)
    levels = {}
    for c in enc:
        uniq = pc.unique(out[c]).drop_null() if hasattr(pc.unique(out[c]), "drop_null") else pc.unique(out[c])
        uniq = pc.take(uniq, pc.sort_indices(uniq))
        out[c] = pc.index_in(out[c], value_set=uniq).cast(pa.int64())
        levels[c] = pd.Index(uniq.to_numpy(zero_copy_only=False), name=c)
    res = pa.table(out)
    res = res.take(pc.sort_indices(res, sort_keys=[(unit, "ascending"), (time, "ascending")]))
    df = res.to_pandas(date_as_object=False)
    logger.info("read_claims(pyarrow): %d claim lines -> %d member-periods", n_src, len(df))
    return ClaimsPanel(df, levels, n_src, "pyarrow")


# ----------------------------------------------------------------------------------------------
# a member-period source as a DuckDB relation


@dataclass(frozen=True)
class PanelRelation:
    """A member-period source as a DuckDB table expression holding only the columns of the roles.

    Attributes
    ----------
    sql : str
        A table expression (``(SELECT ... )`` or a registered view) with the used columns; zoned
        timestamps are already naive wall-clock times in their zone (``zones``).
    columns : list of str
        All columns of the source (for the missing-column message).
    types : dict
        DuckDB type of each used column as ``sql`` returns it.
    periods : dict
        DataFrame ``Period`` columns passed to DuckDB as their ordinals: column -> frequency.
    zones : dict
        Zoned timestamp columns turned into wall-clock time: column -> zone.
    view : str or None
        The name the DataFrame was registered under (unregister with :meth:`close`).
    """

    sql: str
    columns: list
    types: dict
    periods: dict
    zones: dict
    view: str | None

    def restore(self, column: str, values: pd.Series) -> pd.Series:
        """Values of ``column`` fetched from ``sql``, in the dtype the row path sees (Periods back from ordinals)."""
        freq = self.periods.get(column)
        if freq is None:
            return values
        ords = pd.array(values, dtype="Int64").to_numpy(dtype=np.int64, na_value=np.iinfo(np.int64).min)
        return pd.Series(pd.PeriodIndex.from_ordinals(ords, freq=freq), name=values.name)

    def close(self, con) -> None:
        if self.view is not None:
            try:
                con.unregister(self.view)
            except Exception:  # noqa: BLE001, S110 - not registered
                pass


def _check_roles(roles: Mapping[str, Sequence[str]], columns: Sequence[str]) -> None:
    for role, names in roles.items():
        for c in names:
            if c not in columns:
                raise _missing_column_error(c, role, list(columns))


def panel_relation(con, source, roles: Mapping[str, Sequence[str]], *, view: str = "__ek_panel_src") -> PanelRelation:
    """The source (DataFrame, SQL query, Parquet/CSV path or glob) as a relation of the role columns only.

    * A DataFrame is registered with only the columns the roles name (an unused column of a type
      DuckDB cannot read, e.g. a pandas ``Period``, does not matter); ``Period`` role columns go in
      as ordinals (:meth:`PanelRelation.restore` turns them back) and tz-aware ones as their
      wall-clock time, which is what :func:`evalkit.data.validate_panel` reads. A column DuckDB
      still cannot read raises :class:`~evalkit.scale.NotCompressible` (the dispatchers then
      take the row path).
    * ``TIMESTAMP WITH TIME ZONE`` columns of files and queries are converted explicitly to the
      wall-clock time in the zone the Parquet file records for them (UTC when it records none),
      so the result does not depend on the session's (or the machine's) time zone.

    Raises :class:`~evalkit.errors.DataError` for a missing column (the row path's message).
    """
    used = list(dict.fromkeys(c for names in roles.values() for c in names))
    role_of: dict[str, str] = {}
    for role, names in roles.items():
        for c in names:
            role_of.setdefault(c, role)
    q = qident
    periods: dict = {}
    zones: dict[str, str] = {}
    if isinstance(source, pd.DataFrame):
        columns = list(source.columns)
        _check_roles(roles, columns)
        dup = [c for c in source.columns[source.columns.duplicated()].unique() if c in used]
        if dup:
            raise DataError(f"Column names must be unique; duplicated: {dup}. Rename them.")
        frame = {}
        for c in used:
            col = source[c]
            if isinstance(col.dtype, pd.PeriodDtype):
                periods[c] = col.dtype.freq
                col = pd.Series(pd.arrays.IntegerArray(col.array.asi8.copy(), col.isna().to_numpy()), index=col.index)
            elif isinstance(col.dtype, pd.DatetimeTZDtype):
                col = col.dt.tz_localize(None)  # wall-clock time in the column's zone, as validate_panel reads it
            frame[c] = col
        try:
            con.register(view, pd.DataFrame(frame))
            desc = con.execute(f"DESCRIBE SELECT * FROM {view}").fetchall()
        except Exception as exc:  # duckdb.Error subclasses (NotImplementedException ...)
            try:
                con.unregister(view)
            except Exception:  # noqa: BLE001, S110 - not registered
                pass
            from .cells import NotCompressible

            kinds = ", ".join(f"{c!r}: {source[c].dtype}" for c in used)
            raise NotCompressible(f"DuckDB cannot read the columns of the frame ({kinds}): {exc}") from exc
        types = {r[0]: str(r[1]) for r in desc}
        return PanelRelation(view, columns, types, periods, zones, view)
    files = None
    if is_sql_query(source):
        base = f"({source})"
    else:
        files = _expand(source)
        base = source_sql(files, _format_of(files, None))
    desc = con.execute(f"DESCRIBE SELECT * FROM {base}").fetchall()
    types_all = {r[0]: str(r[1]) for r in desc}
    columns = list(types_all)
    _check_roles(roles, columns)
    zoned = [c for c in used if is_zoned_type(types_all[c])]
    if zoned:
        zones = parquet_time_zones(files, zoned) if files else {}
        for c in zoned:
            zones.setdefault(c, "UTC")
            _check_zone(con, zones[c], c, role_of[c])
    sel = ", ".join((f"{wall_time_sql(q(c), zones[c])} AS {q(c)}" if c in zones else q(c)) for c in used)
    types = {c: ("TIMESTAMP" if c in zones else types_all[c]) for c in used}
    return PanelRelation(f"(SELECT {sel} FROM {base})", columns, types, periods, zones, None)


# ----------------------------------------------------------------------------------------------
# data-contract checks on a member-period source, in SQL


def check_panel_source(con, relation: str, *, columns: Sequence[str], roles: Mapping[str, Sequence[str]],
                       unit: str | None, time: str, dropna: bool = False) -> int:
    """The cheap conditions of :func:`evalkit.data.validate_panel`, evaluated in DuckDB.

    ``relation`` is a SQL table expression. Raises :class:`~evalkit.errors.DataError` with the
    messages of ``validate_panel`` for missing columns, missing values (counts per column: NULL,
    and NaN or +-inf in floating-point columns, as ``validate_panel`` counts them) and duplicate
    (unit, time) rows. Returns the number of rows.
    """
    q = qident
    _check_roles(roles, columns)
    used = list(dict.fromkeys(c for names in roles.values() for c in names))
    desc = con.execute(f"DESCRIBE SELECT {', '.join(q(c) for c in used)} FROM {relation}").fetchall()
    flt = {r[0] for r in desc if is_float_type(r[1])}

    def bad_expr(c: str) -> str:
        return f"{q(c)} IS NULL" + (f" OR isnan({q(c)}) OR isinf({q(c)})" if c in flt else "")

    # one scan, bad rows counted with FILTER: a WHERE isnan(..) would be pushed into the Parquet reader,
    # whose row-group statistics leave NaN out (row groups holding NaN would be skipped)
    any_bad = " OR ".join(f"({bad_expr(c)})" for c in used)
    exprs = [f"count(*) FILTER (WHERE {any_bad})"] + [f"count(*) FILTER (WHERE {bad_expr(c)})" for c in used]
    row = con.execute(f"SELECT count(*), {', '.join(exprs)} FROM {relation}").fetchone()
    n = int(row[0])
    if n == 0:
        raise DataError("`data` has no rows.")
    counts = {c: int(k) for c, k in zip(used, row[2:]) if k}
    if counts and not dropna:
        raise _missing_error(counts, int(row[1]), n)
    if unit is not None:
        dup = con.execute(
            f"SELECT sum(k)::BIGINT, list({q(unit)} ORDER BY {q(unit)}, {q(time)})[1:3], list({q(time)} ORDER BY {q(unit)}, {q(time)})[1:3] FROM "
            f"(SELECT {q(unit)}, {q(time)}, count(*) AS k FROM {relation} GROUP BY ALL HAVING count(*) > 1)"
        ).fetchone()
        if dup[0]:
            ex = "; ".join(f"{unit}={u!r}, {time}={t!r}" for u, t in zip(dup[1], dup[2]))
            raise DataError(
                f"{int(dup[0])} rows share a ({unit!r}, {time!r}) pair with another row, e.g. "
                f"{ex}. Aggregate to one row per unit-period (e.g. sum claims within "
                f"member-quarter) before estimating."
            )
    return n
