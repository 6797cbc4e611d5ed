"""Scale: claims-sized data out of core (DuckDB/pyarrow) and sufficient-statistics estimation.

Needs the optional extra ``pip install 'evalkit[scale]'`` (duckdb, pyarrow). See ``docs/scale.md``
and ``docs/scale_cs_cells.md``. The Spark cell builder (``twfe_cells_spark``, ``twfe_spark``; extra
``evalkit[spark]``, ``docs/scale_spark.md``) loads on first access: importing this package never
imports pyspark.
"""
from .cells import NotCompressible, TwfeCells, twfe, twfe_cells, twfe_from_cells
from .io import ClaimsPanel, check_panel_source, read_claims

__all__ = ["read_claims", "ClaimsPanel", "check_panel_source", "twfe", "twfe_cells", "twfe_from_cells", "TwfeCells",
           "NotCompressible", "att_gt", "att_gt_cells", "att_gt_from_cells", "CsCells", "CellATTgtResult",
           "twfe_cells_spark", "twfe_spark"]

_LAZY = {"att_gt", "att_gt_cells", "att_gt_from_cells", "CsCells", "CellATTgtResult"}
_SPARK = {"twfe_cells_spark", "twfe_spark"}  # evalkit.scale.spark; pyspark itself is imported when they run


def __getattr__(name):  # Callaway-Sant'Anna from cells: imported on first use
    if name in _LAZY:
        import importlib

        return getattr(importlib.import_module(".cs_cells", __name__), name)
    if name in _SPARK:
        import importlib

        return getattr(importlib.import_module(".spark", __name__), name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
