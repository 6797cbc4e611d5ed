"""Public reference data sets shipped with evalkit."""
from __future__ import annotations

import logging
from importlib import resources

import pandas as pd

__all__ = ["load_mpdta"]

logger = logging.getLogger(__name__)


def load_mpdta() -> pd.DataFrame:
    """Load ``mpdta``, the minimum-wage panel of Callaway & Sant'Anna (2021).

    500 US counties observed yearly 2003–2007 (2,500 rows, a balanced panel sorted by
    ``countyreal, year``), exactly as shipped with the R package ``did``.

    Returns
    -------
    pandas.DataFrame
        One row per county-year, with the original column names:

        ``year`` : int
            2003 … 2007.
        ``countyreal`` : int
            County id (the unit).
        ``lpop`` : float
            Log county population (time-invariant).
        ``lemp`` : float
            Log teen employment (the outcome).
        ``first.treat`` : int
            First year the county's state raised its minimum wage: 2004 (20 counties),
            2006 (40), 2007 (131); ``0`` = never treated (309 counties). The name contains a dot.
        ``treat`` : int
            1 if ever treated (``first.treat > 0``).

    Notes
    -----
    Source: ``data/mpdta.rda`` in the GitHub repository bcallaway11/did, commit
    71ba8a564eada94d710d65ec0d4f64041351de96, converted to CSV with R (``write.csv``, 15
    significant digits). md5 of the shipped CSV: 1c418c1c923b8dc56511ff09d25c182f. See
    ``evalkit/data/_files/PROVENANCE.md``.

    The data code never-treated counties as ``first.treat = 0`` (R ``did`` convention), which
    :func:`evalkit.data.validate_panel` accepts because no period is 0.

    Examples
    --------
    >>> from evalkit.datasets import load_mpdta
    >>> df = load_mpdta()
    >>> df.shape
    (2500, 6)
    >>> df.groupby("first.treat")["countyreal"].nunique().to_dict()
    {0: 309, 2004: 20, 2006: 40, 2007: 131}
    """
    path = resources.files("evalkit.data").joinpath("_files", "mpdta.csv")
    with path.open("rb") as fh:
        df = pd.read_csv(fh)
    logger.debug("Loaded mpdta (%d rows) from %s", len(df), path)
    return df
