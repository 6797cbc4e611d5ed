"""Scale: claims-sized data out of core (DuckDB/pyarrow) and sufficient-statistics estimation.

Needs the optional extra ``pip install 'evalkit[scale]'`` (duckdb, pyarrow). See ``docs/scale.md``.
"""
from .cells import NotCompressible, TwfeCells, twfe, twfe_cells, twfe_from_cells
from .io import ClaimsPanel, check_panel_source, read_claims

__all__ = ["read_claims", "ClaimsPanel", "check_panel_source", "twfe", "twfe_cells", "twfe_from_cells", "TwfeCells",
           "NotCompressible"]
