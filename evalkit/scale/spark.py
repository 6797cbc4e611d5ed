r"""TWFE cells built by Apache Spark: the aggregation of :mod:`evalkit.scale.cells` pushed to a cluster.

For member-period panels that do not fit one machine. Spark reads the rows (a Spark DataFrame, or
Parquet files through ``spark.read.parquet``: local paths, HDFS, ``s3a://``, ``abfss://``, ...),
builds the cluster × stratum × period cells with DataFrame aggregations (no Python UDFs, no rows
collected), and only the cells -- about ``n_clusters × n_strata × T`` rows -- are collected to the
driver, where :func:`evalkit.scale.twfe_from_cells` estimates exactly as for the numpy and DuckDB
builders.

The strata, the checks and the error messages are those of the DuckDB builder
(:func:`evalkit.scale.twfe_cells` on a Parquet path); the codes are the same too (periods and
clusters in sorted order, strata ordered by their observed periods, then treated periods, units
never treated last), so the cell table does not depend on how Spark partitions the data. Only the
floating-point sums can differ in the last bits with the summation order, as in any parallel sum.

pyspark is an optional dependency (``pip install 'evalkit[spark]'``) and is imported only when a
function here is called. See ``docs/scale_spark.md``.

Plan (one shuffle of the rows):

1. one scan: row count, missing values per column, non-0/1 treatment (the data contract's cheap checks);
2. ``groupBy(unit)``: each unit's sorted observed periods and treated periods (its stratum key),
   whether its cluster varies, whether its treatment switches off, and its (period, outcome,
   treatment, cluster) observations;
3. the observations are exploded and summed by (cluster, stratum key, period) -- partial
   aggregation before the shuffle, so only cell-sized data moves -- and the cells are cached;
4. the distinct periods of the cached cells are checked with ``validate_panel``'s time-axis rules;
5. periods, clusters and strata are coded by dense rank over the cached cells, which are sorted and
   collected; the treatment's identification checks of ``validate_panel`` run on the cells.
"""
from __future__ import annotations

import logging
import os
from typing import Sequence

import numpy as np
import pandas as pd

from ..errors import DataError, SpecificationError
from .cells import (
    NotCompressible,
    TwfeCells,
    _check_treatment_cells,
    _switch_off_error,
    twfe_from_cells,
)

__all__ = ["twfe_cells_spark", "twfe_spark"]

logger = logging.getLogger(__name__)

_INSTALL = ("evalkit.scale's Spark builder needs pyspark: pip install 'evalkit[spark]' (or pip install pyspark), and a "
            "Java runtime (JRE 17+ for pyspark 4).")


def _pyspark():
    try:
        from pyspark.sql import functions as F
        from pyspark.sql import types as T
        from pyspark.sql.window import Window
    except ImportError as exc:  # pragma: no cover - exercised only without the extra
        raise ImportError(_INSTALL) from exc
    return F, T, Window


def _is_spark_frame(obj) -> bool:
    # classic pyspark.sql.DataFrame and the Spark Connect DataFrame (Databricks, Spark 3.4+) alike
    return hasattr(obj, "sparkSession") and hasattr(obj, "groupBy") and hasattr(obj, "schema")


def _col(F, name: str):
    """A column by its literal name (dots and backticks are not parsed)."""
    return F.col("`" + str(name).replace("`", "``") + "`")


def _to_frame(data, spark):
    """The source as a Spark DataFrame: as given, or Parquet read with ``spark.read.parquet``."""
    if _is_spark_frame(data):
        return data
    if isinstance(data, (str, os.PathLike)):
        paths = [os.fspath(data)]
    elif isinstance(data, (list, tuple)) and data and all(isinstance(p, (str, os.PathLike)) for p in data):
        paths = [os.fspath(p) for p in data]
    else:
        raise SpecificationError(
            f"`data` must be a Spark DataFrame or a Parquet path (str, os.PathLike, or a list of them; globs and "
            f"directories as Spark reads them); got {type(data).__name__}. For a pandas DataFrame use "
            f"ek.scale.twfe_cells(df, ...).")
    if spark is None:
        from pyspark.sql import SparkSession

        spark = SparkSession.getActiveSession()
        if spark is None:
            logger.info("No active SparkSession: SparkSession.builder.getOrCreate() (local unless spark-submit or "
                        "SPARK_REMOTE configure a master).")
            spark = SparkSession.builder.getOrCreate()
    try:
        return spark.read.parquet(*paths)
    except Exception as exc:  # AnalysisException (PATH_NOT_FOUND, ...) lives in pyspark.errors on 3.4+
        if type(exc).__name__ in ("AnalysisException", "SparkRuntimeException", "IllegalArgumentException"):
            raise DataError(f"Spark could not read Parquet from {paths}: {exc}") from exc
        raise


def _check_types(schema, names: dict, T) -> None:
    fields = {f.name: f.dataType for f in schema.fields}
    for role in ("outcome", "treatment"):
        c = names[role]
        dt = fields[c]
        if not isinstance(dt, (T.NumericType, T.BooleanType)):
            fix = "Recode it as 0/1 or boolean." if role == "treatment" else "Cast it to a number."
            raise DataError(f"Column {c!r} (the {role}) must be numeric; it has Spark type {dt.simpleString()}. {fix}")
    for role in ("unit", "time", "cluster"):
        c = names[role]
        dt = fields[c]
        if isinstance(dt, (T.ArrayType, T.MapType, T.StructType)):
            raise DataError(f"Column {c!r} (the {role}) must hold scalar ids; it has Spark type {dt.simpleString()}.")


def _duplicate_error(sdf, F, unit: str, time: str) -> DataError | None:
    """validate_panel's duplicate (unit, time) message, or None (runs a groupBy over the rows)."""
    u, t = _col(F, unit), _col(F, time)
    dups = sdf.groupBy(u.alias("u"), t.alias("t")).count().where(F.col("count") > 1)
    total = dups.agg(F.sum("count")).collect()[0][0]
    if not total:
        return None
    ex = dups.orderBy("u", "t").limit(3).collect()
    eg = "; ".join(f"{unit}={r['u']!r}, {time}={r['t']!r}" for r in ex)
    return DataError(
        f"{int(total)} rows share a ({unit!r}, {time!r}) pair with another row, e.g. "
        f"{eg}. Aggregate to one row per unit-period (e.g. sum claims within "
        f"member-quarter) before estimating."
    )


def _time_axis_spark(raw, dtype, name: str, F, T):
    """validate_panel's time axis of the distinct periods (integer periods, dates; no gaps), or its DataError.

    Spark timestamps are instants: they are read as their UTC wall-clock time (``unix_micros``), not
    in the session's or the driver's time zone. Dates are taken as dates (pandas reads a Parquet
    date column as objects, which the row path refuses; ``docs/scale_spark.md``).
    """
    from ..data.schema import _time_axis

    tv = raw.select("t").distinct()
    if isinstance(dtype, T.TimestampType):
        micros = [r[0] for r in tv.select(F.unix_micros(F.col("t"))).collect()]
        vals = pd.Series(pd.to_datetime(np.asarray(micros, dtype=np.int64), unit="us"))
    elif isinstance(dtype, T.DateType):
        vals = pd.Series(pd.to_datetime([r[0] for r in tv.collect()]))
    else:
        vals = _collect_pandas(tv, ["t"])["t"]
    return _time_axis(vals, name)[1]


def _collect_pandas(sdf, columns: Sequence[str]) -> pd.DataFrame:
    """The (small) cell table on the driver: Arrow batches when available, else plain rows."""
    to_arrow = getattr(sdf, "toArrow", None)  # pyspark >= 4.0; needs pyarrow on the driver
    if to_arrow is not None:
        try:
            return to_arrow().to_pandas()
        except ImportError:  # no (or too old a) pyarrow: fall through to rows
            pass
    return pd.DataFrame.from_records([tuple(r) for r in sdf.collect()], columns=list(columns))


def twfe_cells_spark(
    data,
    *,
    outcome: str,
    unit: str,
    time: str,
    treatment: str,
    cluster: str,
    spark=None,
    storage_level=None,
) -> TwfeCells:
    """Compress a member-period panel to cluster × stratum × period cells with Apache Spark.

    The Spark counterpart of :func:`evalkit.scale.twfe_cells`: same strata (units with the same
    observed periods and treated periods), same checks and messages, same :class:`TwfeCells`
    (``engine="spark"``). Spark does the aggregation; only the cells are collected to the driver.

    Parameters
    ----------
    data : pyspark.sql.DataFrame, str, os.PathLike or list of them
        Member-period rows: a Spark DataFrame (classic or Spark Connect), or Parquet path(s)
        read with ``spark.read.parquet`` (anything Spark reads: globs, directories,
        ``hdfs://``, ``s3a://``, ``abfss://``, ``dbfs:/`` ...). Only the five role columns are used.
    outcome, unit, time, treatment, cluster : str
        Column roles as in :func:`evalkit.did.twfe`. ``treatment`` must be 0/1 (or boolean);
        ``cluster`` must be constant within unit and coarser than it.
    spark : pyspark.sql.SparkSession, optional
        Session used to read Parquet paths. Default: the active session, else
        ``SparkSession.builder.getOrCreate()``. Ignored for a DataFrame (its own session is used).
    storage_level : pyspark.StorageLevel, optional
        How the intermediate cell table (before the codes are assigned) is cached; default
        ``MEMORY_AND_DISK``. It is unpersisted before returning.

    Returns
    -------
    TwfeCells
        ``cells`` sorted by ``cluster, stratum, period`` (int64 codes: clusters and periods in
        sorted order of their values, strata in order of their observed then treated periods).

    Raises
    ------
    DataError
        A missing column, missing/NaN/infinite values, duplicate (unit, time) rows, a non-0/1 or
        non-numeric treatment, a non-numeric outcome, unreadable Parquet; as
        :func:`evalkit.did.twfe` on the rows: a time column that is not integer periods or dates
        on a regular grid without empty periods, a treatment that switches off (1 then 0), no
        treated or no untreated rows, no pre-period, a treatment collinear with time.
    NotCompressible
        The cluster varies within unit, or is the unit (or finer): the cells would not reproduce
        the row-level estimate (use :func:`evalkit.did.twfe` on the rows instead).

    Notes
    -----
    Spark jobs run: one scan for the cheap checks; one aggregation with a single shuffle of the
    rows (by unit), whose output -- the cells keyed by raw values -- is cached; small jobs on the
    cached cells. Duplicate rows are detected in the unit aggregation; the duplicate message (with
    examples) then costs one more ``groupBy(unit, time)``, on the error path only.
    """
    F, T, Window = _pyspark()
    names = {"outcome": outcome, "unit": unit, "time": time, "treatment": treatment, "cluster": cluster}
    for role, c in names.items():
        if not isinstance(c, str) or not c:
            raise SpecificationError(f"`{role}` must be a column name (str); got {c!r}.")
    sdf = _to_frame(data, spark)

    from .io import _missing_column_error, _missing_error

    columns = list(sdf.columns)
    for role, c in names.items():
        if c not in columns:
            raise _missing_column_error(c, role, columns)
    _check_types(sdf.schema, names, T)

    # 1. one scan: rows, missing values per column, non-0/1 treatment
    fields = {f.name: f.dataType for f in sdf.schema.fields}
    used = list(dict.fromkeys(names.values()))

    def missing(c):
        e = _col(F, c).isNull()
        if isinstance(fields[c], (T.FloatType, T.DoubleType)):
            e = e | F.isnan(_col(F, c)) | (F.abs(_col(F, c)) == float("inf"))
        return e

    def count_if(e):
        return F.sum(F.when(e, F.lit(1)).otherwise(F.lit(0)))

    d_raw = _col(F, treatment).cast("double")
    any_missing = missing(used[0])
    for c in used[1:]:
        any_missing = any_missing | missing(c)
    aggs = [F.count(F.lit(1)).alias("n"), count_if(any_missing).alias("n_bad"),
            count_if(~missing(treatment) & ~d_raw.isin(0.0, 1.0)).alias("bad_d")]
    aggs += [count_if(missing(c)).alias(f"m{i}") for i, c in enumerate(used)]
    row = sdf.agg(*aggs).collect()[0]
    n_rows = int(row["n"])
    if n_rows == 0:
        raise DataError("`data` has no rows.")
    counts = {c: int(row[f"m{i}"]) for i, c in enumerate(used) if row[f"m{i}"]}
    if counts:
        raise _missing_error(counts, int(row["n_bad"]), n_rows)
    if row["bad_d"]:
        err = _duplicate_error(sdf, F, unit, time)  # the DuckDB builder reports duplicates first
        if err is not None:
            raise err
        raise DataError(f"Column {treatment!r} (the treatment) must be 0/1 (treated and post); found other "
                        f"values in {int(row['bad_d'])} rows. Recode it as 0/1 or boolean.")

    # 2. per unit: stratum key (sorted observed periods, sorted treated periods) and observations
    src = sdf.select(_col(F, unit).alias("u"), _col(F, time).alias("t"), _col(F, outcome).cast("double").alias("y"),
                     d_raw.alias("d"), _col(F, cluster).alias("c"))
    units = src.groupBy("u").agg(
        F.sort_array(F.collect_list("t")).alias("pat"),
        F.sort_array(F.collect_list(F.when(F.col("d") == 1.0, F.col("t")))).alias("trt"),
        (F.min("c") != F.max("c")).alias("multi"),
        F.count(F.lit(1)).alias("nr"),
        F.collect_list(F.struct("t", "y", "d", "c")).alias("obs"),
        # absorbing treatment (as validate_panel): no untreated period after the first treated one
        F.coalesce(F.max(F.when(F.col("d") == 0.0, F.col("t"))) > F.min(F.when(F.col("d") == 1.0, F.col("t"))),
                   F.lit(False)).alias("off"),
    ).withColumn("dup", F.size(F.array_distinct("pat")) < F.col("nr"))
    # 3. cells keyed by raw values (partial aggregation before the shuffle); unit counts via pos == 0
    ex = units.select("pat", "trt", "multi", "dup", "off", F.posexplode("obs").alias("pos", "o"))
    first = F.col("pos") == 0
    raw = ex.groupBy(F.col("o.c").alias("c"), "pat", "trt", F.col("o.t").alias("t")).agg(
        F.count(F.lit(1)).alias("n"),
        F.sum("o.y").alias("sum_y"),
        F.sum(F.col("o.y") * F.col("o.y")).alias("sum_y2"),
        F.avg("o.d").alias("d"),
        count_if(first).alias("units"),
        count_if(first & F.col("multi")).alias("multi_units"),
        count_if(first & F.col("dup")).alias("dup_units"),
        count_if(first & F.col("off")).alias("off_units"),
    )
    if storage_level is None:
        from pyspark import StorageLevel

        storage_level = StorageLevel.MEMORY_AND_DISK
    raw = raw.persist(storage_level)
    try:
        diag = raw.agg(F.sum("n").alias("N"), F.sum("units").alias("n_units"), F.sum("multi_units").alias("n_multi"),
                       F.sum("dup_units").alias("n_dup"), F.sum("off_units").alias("n_off"),
                       F.countDistinct("c").alias("G")).collect()[0]
        if diag["n_dup"]:
            err = _duplicate_error(sdf, F, unit, time)
            raise err if err is not None else DataError(  # pragma: no cover - both detect the same rows
                f"{int(diag['n_dup'])} units have more than one row in a period of {time!r}. Aggregate to one row per "
                f"unit-period before estimating.")
        # the time axis from the distinct periods (T values, from the cached cells), with validate_panel's rules
        axis = _time_axis_spark(raw, fields[time], time, F, T)
        if diag["n_off"]:
            ex = [r["u"] for r in units.where(F.col("off")).select("u").orderBy("u").limit(3).collect()]
            raise _switch_off_error(treatment, unit, int(diag["n_off"]), ex)
        N, n_units, n_multi, G = int(diag["N"]), int(diag["n_units"]), int(diag["n_multi"]), int(diag["G"])
        if n_multi:
            raise NotCompressible(f"the cluster varies within unit for {n_multi} units: unit effects do not drop out "
                                  f"of the cluster scores")
        if G >= n_units:
            raise NotCompressible("the cluster is the unit (or finer): cells would be units; nothing to compress")
        # 4. codes by dense rank over the cells (which are collected whole anyway); as in the DuckDB
        #    builder: periods and clusters in sorted order, strata by (periods, treated periods), never-treated last
        def code(*keys):
            return (F.dense_rank().over(Window.orderBy(*keys)) - 1).cast("long")

        out = (raw.select(code("c").alias("cluster"), code("pat", F.size("trt") == 0, "trt").alias("stratum"),
                          code("t").alias("period"), F.col("n").cast("long").alias("n"), "sum_y", "sum_y2", "d")
               .orderBy("cluster", "stratum", "period"))
        cols = ["cluster", "stratum", "period", "n", "sum_y", "sum_y2", "d"]
        cells = _collect_pandas(out, cols)
    finally:
        raw.unpersist()
    cells = cells[cols].reset_index(drop=True)
    for col in ("cluster", "stratum", "period", "n"):
        cells[col] = cells[col].to_numpy().astype(np.int64)
    for col in ("sum_y", "sum_y2", "d"):
        cells[col] = cells[col].to_numpy().astype(np.float64)
    _check_treatment_cells(cells, names, axis.levels)
    S = int(cells["stratum"].max()) + 1
    n_periods = int(cells["period"].max()) + 1
    logger.info("Spark: %d rows of %d units -> %d cells (%d clusters x %d strata x %d periods)", N, n_units, len(cells),
                G, S, n_periods)
    return TwfeCells(cells, N, n_units, n_periods, S, G, N == n_units * n_periods, names, "spark")


def twfe_spark(
    data,
    *,
    outcome: str,
    unit: str,
    time: str,
    treatment: str,
    cluster: str,
    vcov: str = "CR1",
    ssc=None,
    level: float = 0.95,
    spark=None,
):
    """TWFE DiD (unit and period effects, CR1/CR0 by cluster) with the cells built by Spark.

    ``twfe_from_cells(twfe_cells_spark(data, ...), vcov=vcov, ssc=ssc, level=level)``: the same
    estimate, standard error, degrees of freedom, N and G as :func:`evalkit.did.twfe` on the rows
    (to rounding), under the exactness conditions of :mod:`evalkit.scale.cells` (no covariates or
    weights, 0/1 treatment, cluster constant within unit and coarser than it, vcov CR1 or CR0).
    There is no row-level fallback here (the rows are assumed too large for one machine):
    :class:`~evalkit.scale.NotCompressible` is raised with the reason instead.

    Parameters
    ----------
    data, outcome, unit, time, treatment, cluster, spark
        As in :func:`twfe_cells_spark`.
    vcov : {"CR1", "CR0"}, default="CR1"
    ssc : SmallSampleCorrection, optional
        As in :func:`evalkit.did.twfe` (``k_fixef``, ``k_adj``, ``G_adj``).
    level : float, default=0.95

    Returns
    -------
    evalkit.did.results.DiDResult
    """
    from .._validation import check_option

    check_option(vcov, "vcov", ("CR1", "CR0"), "twfe_spark")
    cells = twfe_cells_spark(data, outcome=outcome, unit=unit, time=time, treatment=treatment, cluster=cluster,
                             spark=spark)
    return twfe_from_cells(cells, vcov=vcov, ssc=ssc, level=level)
