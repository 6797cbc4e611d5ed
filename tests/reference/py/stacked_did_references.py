"""Reference values for ``evalkit.staggered.stacked_did`` on mpdta from diff-diff's ``StackedDiD``.

Run with the benchmark venv (diff-diff installed; evalkit is NOT imported here):

    .venv-bench/bin/python tests/reference/py/stacked_did_references.py

Writes ``tests/reference/values/mpdta_stacked_did.json``.

diff-diff ``StackedDiD(kappa_pre=k, kappa_post=m, weighting="aggregate", control_group=...,
cluster="unit", vcov_type="hc1")`` implements Wing, Freedman & Hollingsworth (2024) following
their R code (github.com/hollina/stacked-did-weights): clean controls A > a + m ("not_yet_treated")
or never treated, IC1 trimming of cohorts whose window leaves the data, corrective weights
Q = (N^D_ae / N^D_e) / (N^C_ae / N^C_e) from row counts per (event time, sub-experiment), WLS of
``y ~ D + event-time dummies + D x event-time dummies`` (reference e = -1), CR1 clustered by unit
with the factor G/(G-1) (N-1)/(N-K) (K = 2 + 2 x #event dummies); overall ATT = mean of the post
event-time coefficients.

Specs: never / not-yet-treated controls x windows (-1,0), (-1,1), (-1,2), (-2,1), (-3,0) on the
balanced panel, and two specs on an unbalanced version (rows with (countyreal + 3 year) % 11 == 0
dropped: 227 of 2500 rows).
"""
from __future__ import annotations

import contextlib
import hashlib
import io
import json
import platform
import sys
import warnings
from importlib.metadata import version
from pathlib import Path

import numpy as np
import pandas as pd

warnings.filterwarnings("ignore")
from diff_diff import StackedDiD  # noqa: E402

HERE = Path(__file__).resolve().parent
DATA = HERE.parent / "data" / "mpdta.csv"
OUT = HERE.parent / "values" / "mpdta_stacked_did.json"


def unbalanced(df: pd.DataFrame) -> pd.DataFrame:
    return df[(df["countyreal"] + 3 * df["year"]) % 11 != 0].reset_index(drop=True)


SPECS = {}
for control in ("never", "notyet"):
    for win in ((-1, 0), (-1, 1), (-1, 2), (-2, 1), (-3, 0)):
        SPECS[f"{control}_{-win[0]}_{win[1]}"] = {"control": control, "window": list(win), "data": "balanced"}
SPECS["notyet_1_1_unbalanced"] = {"control": "notyet", "window": [-1, 1], "data": "unbalanced"}
SPECS["never_2_1_unbalanced"] = {"control": "never", "window": [-2, 1], "data": "unbalanced"}


def main():
    base = pd.read_csv(DATA).rename(columns={"first.treat": "first_treat"})
    out = {"meta": {
        "description": "Wing-Freedman-Hollingsworth weighted stacked DiD on mpdta (lemp), diff-diff StackedDiD",
        "generator": "tests/reference/py/stacked_did_references.py",
        "python": sys.version.split()[0], "platform": platform.platform(),
        "packages": {p: version(p) for p in ("diff-diff", "numpy", "pandas")},
        "inputs": {"mpdta": {"path": "tests/reference/data/mpdta.csv",
                             "md5": hashlib.md5(DATA.read_bytes()).hexdigest()}},
        "unbalanced": "rows with (countyreal + 3 * year) % 11 == 0 dropped",
        "call": "StackedDiD(kappa_pre=-window[0], kappa_post=window[1], weighting='aggregate', "
                "control_group={'never': 'never_treated', 'notyet': 'not_yet_treated'}[control], "
                "cluster='unit', vcov_type='hc1').fit(df, outcome='lemp', unit='countyreal', time='year', "
                "first_treat='first.treat')",
        "se": "CR1 by county: G/(G-1) (N-1)/(N-K) CR0, N = stacked rows, K = 2 + 2 x #event dummies",
    }, "specs": {}}
    for name, spec in SPECS.items():
        df = base if spec["data"] == "balanced" else unbalanced(base)
        lo, hi = spec["window"]
        est = StackedDiD(kappa_pre=-lo, kappa_post=hi, weighting="aggregate",
                         control_group="never_treated" if spec["control"] == "never" else "not_yet_treated",
                         cluster="unit", vcov_type="hc1")
        with contextlib.redirect_stdout(io.StringIO()):
            r = est.fit(df, outcome="lemp", unit="countyreal", time="year", first_treat="first_treat")
        ev = {str(h): {"att": float(v["effect"]), "se": float(v["se"])}
              for h, v in sorted(r.event_study_effects.items()) if h != -1}
        out["specs"][name] = {**spec, "n_rows_data": int(len(df)), "n_stacked_obs": int(r.n_stacked_obs),
                              "n_clusters": int(r.n_clusters),
                              "overall": {"att": float(r.overall_att), "se": float(r.overall_se)},
                              "event_time": ev,
                              "cohorts_included": sorted(int(g) for g in np.unique(
                                  r.stacked_data.loc[r.stacked_data["_D_sa"] == 1, "_sub_exp"]))}
        print(name, out["specs"][name]["overall"], out["specs"][name]["cohorts_included"])
    OUT.write_text(json.dumps(out, indent=1) + "\n")
    print(f"wrote {OUT}")


if __name__ == "__main__":
    main()
