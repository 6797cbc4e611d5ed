"""Reference values for ``att_gt(..., panel=False)`` (repeated cross-sections) on mpdta.

Run with the benchmark venv (it has csdid; evalkit is NOT imported here):

    .venv-bench/bin/python tests/reference/py/att_gt_rcs_references.py

Writes ``tests/reference/values/mpdta_att_gt_rcs.json``.

mpdta (tests/reference/data/mpdta.csv, 500 counties x 2003-2007) is treated as repeated
cross-sections, as in R ``did``'s own tests (``att_gt(..., panel=FALSE)``): every row is an
independent observation with its own id (``obsid`` = row number; csdid, like R did >= 2.1,
refuses repeated ids with panel=False). Reference implementation: csdid (the Python port of
R did/DRDID) ``ATTgt(panel=False).fit(est_method=..., bstrap=False)`` and
``aggte(typec=..., bstrap=False)`` -> analytic influence-function SEs.

csdid has known bugs, so two independent computations written here check it:

* without covariates every method is the 2x2 OLS ``y ~ D + post + D:post`` on the cell's rows
  (the interaction coefficient, by numpy lstsq) and the IF standard error of a difference of
  four row means, ``sqrt(sum_k sum_{i in k} (y_i - mean_k)^2 / n_k^2)``;
* ``reg`` with ``lpop``: the ATT of DRDID::reg_did_rc from two OLS fits on the comparison rows
  (pre and post) by lstsq: ``mean(Y|D=1,post) - mean(Y|D=1,pre) - mean_{D=1}(X b_post - X b_pre)``
  with ``mean_{D=1}`` over all treated rows of the cell.

The largest discrepancy of each check is stored under ``cross_checks``; the script stops if one
exceeds 1e-10.
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
from csdid.att_gt import ATTgt  # noqa: E402

HERE = Path(__file__).resolve().parent
DATA = HERE.parent / "data" / "mpdta.csv"
OUT = HERE.parent / "values" / "mpdta_att_gt_rcs.json"


def load():
    df = pd.read_csv(DATA).rename(columns={"first.treat": "first_treat"})
    df["obsid"] = np.arange(len(df)) + 1
    # deterministic row weights for the weighted spec: 1, 2 or 3 by county
    df["wt"] = 1.0 + (df["countyreal"] % 3)
    return df


SPECS = {}
for control in ("never", "notyet"):
    for cov in ((), ("lpop",)):
        for method in ("dr", "ipw", "reg"):
            SPECS[f"{control}-{'+'.join(cov) or 'nocov'}-{method}"] = dict(
                control=control, covariates=cov, method=method, base_period="varying", weights=None)
SPECS["never-lpop-dr-universal"] = dict(control="never", covariates=("lpop",), method="dr",
                                        base_period="universal", weights=None)
SPECS["notyet-lpop-dr-weighted"] = dict(control="notyet", covariates=("lpop",), method="dr",
                                        base_period="varying", weights="wt")
SPECS["never-nocov-reg-weighted"] = dict(control="never", covariates=(), method="reg",
                                         base_period="varying", weights="wt")


def run_csdid(df, spec):
    xf = "lemp~" + ("+".join(spec["covariates"]) if spec["covariates"] else "1")
    cg = "nevertreated" if spec["control"] == "never" else "notyettreated"
    att = ATTgt(yname="lemp", tname="year", idname="obsid", gname="first_treat", data=df.copy(),
                control_group=cg, panel=False, xformla=xf, weights_name=spec["weights"])
    with contextlib.redirect_stdout(io.StringIO()):
        att.fit(est_method=spec["method"], base_period=spec["base_period"], bstrap=False)
    r = att.results
    cells = [{"cohort": int(g), "time": int(t), "att": float(a), "se": float(s)}
             for g, t, a, s in zip(r["group"], r["year"], r["att"], r["se"])]
    aggs = {}
    for kind, key in (("simple", None), ("group", "group"), ("dynamic", "event_time"), ("calendar", "time")):
        with contextlib.redirect_stdout(io.StringIO()):  # csdid prints its summaries
            a = att.aggte(typec=kind, bstrap=False, cband=False).atte
        comp = []
        if kind != "simple":
            for e, v, s in zip(a["egt"], a["att_egt"], a["se_egt"]):
                comp.append({key: int(e), "att": float(v), "se": float(s)})
        aggs[kind] = {"att": float(a["overall_att"]), "se": float(a["overall_se"]), "components": comp}
    return cells, aggs


def hand_2x2(df, g, t, b, control, weights=None):
    """Difference of four (weighted) row means, via the OLS interaction coefficient, and its IF SE."""
    G = df["first_treat"].to_numpy()
    yr = df["year"].to_numpy()
    never = G == 0
    ctrl = never if control == "never" else never | ((G > max(t, b)) & (G != g))
    m = np.isin(yr, [t, b]) & ((G == g) | ctrl)
    y = df["lemp"].to_numpy()[m]
    D = (G[m] == g).astype(float)
    P = (yr[m] == t).astype(float)
    w = np.ones(m.sum()) if weights is None else df[weights].to_numpy()[m]
    Z = np.column_stack([np.ones_like(D), D, P, D * P])
    sw = np.sqrt(w)
    coef = np.linalg.lstsq(Z * sw[:, None], y * sw, rcond=None)[0]
    var = 0.0
    n = m.sum()
    for d in (0, 1):
        for p_ in (0, 1):
            k = (D == d) & (P == p_)
            wk = w[k] / w.mean()
            mk = np.sum(wk * y[k]) / wk.sum()
            # IF of a weighted mean in a cell of n rows: w_i (y_i - m_k) / mean_n(w 1_k)
            var += np.sum((wk * (y[k] - mk)) ** 2) / (wk.sum() ** 2)
    return float(coef[3]), float(np.sqrt(var)), int(n)


def hand_reg_lpop(df, g, t, b, control):
    G = df["first_treat"].to_numpy()
    yr = df["year"].to_numpy()
    never = G == 0
    ctrl = never if control == "never" else never | ((G > max(t, b)) & (G != g))
    m = np.isin(yr, [t, b]) & ((G == g) | ctrl)
    y, X = df["lemp"].to_numpy()[m], np.column_stack([np.ones(m.sum()), df["lpop"].to_numpy()[m]])
    D, P = (G[m] == g), (yr[m] == t)
    bpre = np.linalg.lstsq(X[~D & ~P], y[~D & ~P], rcond=None)[0]
    bpost = np.linalg.lstsq(X[~D & P], y[~D & P], rcond=None)[0]
    return float(y[D & P].mean() - y[D & ~P].mean() - np.mean(X[D] @ (bpost - bpre)))


def main():
    df = load()
    out = {"meta": {
        "description": "att_gt repeated cross-sections (panel=False) on mpdta, every row an independent "
                       "observation; csdid ATTgt(panel=False) with analytic IF SEs (bstrap=False)",
        "generator": "tests/reference/py/att_gt_rcs_references.py",
        "python": sys.version.split()[0], "platform": platform.platform(),
        "packages": {p: version(p) for p in ("csdid", "drdid", "numpy", "pandas", "statsmodels")},
        "inputs": {"mpdta": {"path": "tests/reference/data/mpdta.csv",
                             "md5": hashlib.md5(DATA.read_bytes()).hexdigest()}},
        "weights_column": "wt = 1 + countyreal % 3 (row weights of the *-weighted specs)",
        "se": "sqrt(sum_i psi_i^2)/n, n = 2500 rows (R did's analytic SE)",
    }, "specs": {}, "cross_checks": {}}
    worst = {"nocov_att_ols": 0.0, "nocov_se_four_means": 0.0, "reg_lpop_att_lstsq": 0.0}
    for name, spec in SPECS.items():
        cells, aggs = run_csdid(df, spec)
        out["specs"][name] = {**{k: (list(v) if isinstance(v, tuple) else v) for k, v in spec.items()},
                              "cells": cells, "aggregations": aggs}
        if spec["base_period"] != "varying":
            continue
        for c in cells:
            g, t = c["cohort"], c["time"]
            b = g - 1 if t >= g else t - 1
            if not spec["covariates"]:
                att, se, n1 = hand_2x2(df, g, t, b, spec["control"], spec["weights"])
                worst["nocov_att_ols"] = max(worst["nocov_att_ols"], abs(att - c["att"]))
                # the cell IF scaled by n/n_cell gives sqrt(sum psi^2)/n = the four-means SE
                worst["nocov_se_four_means"] = max(worst["nocov_se_four_means"], abs(se - c["se"]) / c["se"])
            elif spec["method"] == "reg" and spec["weights"] is None:
                worst["reg_lpop_att_lstsq"] = max(worst["reg_lpop_att_lstsq"],
                                                  abs(hand_reg_lpop(df, g, t, b, spec["control"]) - c["att"]))
    out["cross_checks"] = {
        "description": "largest |csdid - hand| over the cells (SE: relative); hand computations in this script",
        **worst}
    for k, v in worst.items():
        print(f"cross-check {k}: {v:.3e}")
        if v > 1e-10:
            sys.exit(f"csdid disagrees with the hand computation ({k} = {v:.3e}); investigate before committing")
    OUT.write_text(json.dumps(out, indent=1) + "\n")
    print(f"wrote {OUT}")


if __name__ == "__main__":
    main()
