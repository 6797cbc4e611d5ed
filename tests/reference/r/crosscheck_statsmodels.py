"""Cross-check the R reference values in tests/reference/values/*.json with statsmodels.

Not an evalkit test (the evalkit tests read the JSON files themselves); a provenance
check that the R numbers do not depend on R.  Recomputes, with statsmodels OLS/WLS on the
same dummy-variable designs, every quantity statsmodels can produce directly (coefficient,
iid, HC0-HC3, one-way clustered with and without its correction, two-way clustered) and
the fixest-convention CR1 by rescaling statsmodels' CR0.  statsmodels has no CR2.

    python tests/reference/r/crosscheck_statsmodels.py      # exits 1 on any mismatch
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import statsmodels
import statsmodels.api as sm

REF = Path(__file__).resolve().parent.parent
TOL = 1e-9  # relative
rows: list[tuple[str, str, float, float, float]] = []


def load(name: str) -> dict:
    return json.loads((REF / "values" / f"{name}.json").read_text())["specs"]


def check(spec: str, what: str, r_value: float, py_value: float) -> None:
    rel = abs(r_value - py_value) / max(abs(r_value), 1e-300)
    rows.append((spec, what, r_value, py_value, rel))


def dummies(s: pd.Series, prefix: str) -> pd.DataFrame:
    return pd.get_dummies(s.astype("category"), prefix=prefix, drop_first=True, dtype=float)


def design(df: pd.DataFrame, cols: list[str], fe: list[str]) -> pd.DataFrame:
    parts = [pd.Series(1.0, index=df.index, name="const"), df[cols].astype(float)]
    parts += [dummies(df[f], f) for f in fe]
    return pd.concat(parts, axis=1)


def se(res, name: str) -> float:
    return float(np.sqrt(res.cov_params().loc[name, name]))


def clustered(model, groups, correction: bool):
    return model.fit(cov_type="cluster", cov_kwds={"groups": groups, "use_correction": correction})


def mpdta_checks() -> None:
    m = pd.read_csv(REF / "data" / "mpdta.csv").sort_values(["countyreal", "year"]).reset_index(drop=True)
    m["d"] = ((m["first.treat"] > 0) & (m["year"] >= m["first.treat"])).astype(float)
    m["lpop_trend"] = m["lpop"] * (m["year"] - 2005)
    w = np.exp(m["lpop"]) / np.exp(m["lpop"]).mean()
    N = len(m)
    specs = load("mpdta_twfe")

    def one_way(spec_name, X, y, groups, K_cr1, coef_names, weights=None):
        ref = specs[spec_name]
        mod = sm.WLS(y, X, weights=weights) if weights is not None else sm.OLS(y, X)
        G = len(np.unique(groups))
        iid, hc1 = mod.fit(), mod.fit(cov_type="HC1")
        cr0, cr1a = clustered(mod, groups, False), clustered(mod, groups, True)
        for c in coef_names:
            get = (lambda d: d) if len(coef_names) == 1 else (lambda d: d[c])
            check(spec_name, f"coef[{c}]", get(ref["coef"]), iid.params[c])
            check(spec_name, f"se.iid[{c}]", get(ref["se"]["iid"]), se(iid, c))
            check(spec_name, f"se.HC1[{c}]", get(ref["se"]["HC1"]), se(hc1, c))
            check(spec_name, f"se.CR0[{c}]", get(ref["se"]["CR0"]), se(cr0, c))
            check(spec_name, f"se.CR1_all_dummies[{c}]", get(ref["se"]["CR1_all_dummies"]), se(cr1a, c))
            cr1 = se(cr0, c) * np.sqrt(G / (G - 1) * (N - 1) / (N - K_cr1))
            check(spec_name, f"se.CR1[{c}] (=CR0*sqrt(G/(G-1)(N-1)/(N-K)))", get(ref["se"]["CR1"]), cr1)

    X = design(m, ["d"], ["countyreal", "year"])
    one_way("twfe_cluster_county", X, m["lemp"], m["countyreal"], 6, ["d"])
    one_way("twfe_cluster_grp12", X, m["lemp"], m["countyreal"] % 12, 6, ["d"])
    one_way("twfe_weighted_cluster_county", X, m["lemp"], m["countyreal"], 6, ["d"], weights=w)
    one_way("twfe_weighted_cluster_grp12", X, m["lemp"], m["countyreal"] % 12, 6, ["d"], weights=w)
    Xc = design(m, ["d", "lpop_trend"], ["countyreal", "year"])
    one_way("twfe_covariate_cluster_county", Xc, m["lemp"], m["countyreal"], 7, ["d", "lpop_trend"])
    Xp = design(m, ["d", "lpop"], ["year"])
    one_way("year_fe_lpop_cluster_county", Xp, m["lemp"], m["countyreal"], 7, ["d", "lpop"])

    # two-way clustering: statsmodels = per-term G_i/(G_i-1) and (N-1)/(N-K_all) = sandwich HC1
    ref = specs["twfe_twoway_cluster_county_year"]
    mod = sm.OLS(m["lemp"], X)
    groups2 = np.column_stack([m["countyreal"].to_numpy(), m["year"].to_numpy()])
    tw = mod.fit(cov_type="cluster", cov_kwds={"groups": groups2})
    check("twfe_twoway_cluster_county_year", "se.twoway_sandwich_HC1", ref["se"]["twoway_sandwich_HC1"], se(tw, "d"))
    tw0 = mod.fit(cov_type="cluster", cov_kwds={"groups": groups2, "use_correction": False})
    check("twfe_twoway_cluster_county_year", "se.twoway_CR0", ref["se"]["twoway_CR0"], se(tw0, "d"))
    v = ref["variance_components"]
    check("twfe_twoway_cluster_county_year", "V_county_CR0",
          v["V_county_CR0"], se(clustered(mod, m["countyreal"], False), "d") ** 2)
    check("twfe_twoway_cluster_county_year", "V_year_CR0",
          v["V_year_CR0"], se(clustered(mod, m["year"], False), "d") ** 2)
    check("twfe_twoway_cluster_county_year", "V_county_x_year_CR0 (HC0)",
          v["V_county_x_year_CR0"], se(mod.fit(cov_type="HC0"), "d") ** 2)
    check("twfe_twoway_cluster_county_year", "se.twoway_fixest (from statsmodels components)",
          ref["se"]["twoway_fixest"], float(np.sqrt(
              (se(clustered(mod, m["countyreal"], False), "d") ** 2
               + se(clustered(mod, m["year"], False), "d") ** 2
               - se(mod.fit(cov_type="HC0"), "d") ** 2) * 5 / 4 * (N - 1) / (N - 2))))

    # event study
    es = load("mpdta_event_study")["event_study_cluster_county"]
    e = np.where(m["first.treat"] > 0, m["year"] - m["first.treat"], np.nan)
    names = []
    for k in (-4, -3, -2, 0, 1, 2, 3):
        nm = f"ev_m{-k}" if k < 0 else f"ev_{k}"
        m[nm] = (e == k).astype(float)
        names.append((k, nm))
    Xe = design(m, [nm for _, nm in names], ["countyreal", "year"])
    mod = sm.OLS(m["lemp"], Xe)
    iid, cr0 = mod.fit(), clustered(mod, m["countyreal"], False)
    for k, nm in names:
        check("event_study_cluster_county", f"coef[{k}]", es["coef"][str(k)], iid.params[nm])
        check("event_study_cluster_county", f"se.CR1[{k}]", es["se"]["CR1"][str(k)],
              se(cr0, nm) * np.sqrt(500 / 499 * (N - 1) / (N - 12)))
    pre = [nm for k, nm in names if k < 0]
    V = cr0.cov_params().loc[pre, pre].to_numpy() * 500 / 499 * (N - 1) / (N - 12)
    b = iid.params[pre].to_numpy()
    W = float(b @ np.linalg.solve(V, b))
    check("event_study_cluster_county", "pretrend chi2 (CR1)", es["pretrend_wald"]["CR1"]["chi2"], W)


def card_krueger_checks() -> None:
    ck = pd.read_csv(REF / "data" / "card_krueger.csv")
    ok = ck.groupby("store_id")["fte"].apply(lambda s: s.notna().sum() == 2)
    b = ck[ck["store_id"].isin(ok[ok].index)].sort_values(["store_id", "wave"]).reset_index(drop=True)
    b["d"] = (b["nj"] * b["wave"]).astype(float)
    ref = load("card_krueger_twfe")["twfe_cluster_store"]
    X = design(b, ["d"], ["store_id", "wave"])
    mod = sm.OLS(b["fte"], X)
    N, G = len(b), b["store_id"].nunique()
    check("card_krueger twfe_cluster_store", "coef", ref["coef"], mod.fit().params["d"])
    check("card_krueger twfe_cluster_store", "se.iid", ref["se"]["iid"], se(mod.fit(), "d"))
    check("card_krueger twfe_cluster_store", "se.HC1", ref["se"]["HC1"], se(mod.fit(cov_type="HC1"), "d"))
    cr0 = se(clustered(mod, b["store_id"], False), "d")
    check("card_krueger twfe_cluster_store", "se.CR0", ref["se"]["CR0"], cr0)
    check("card_krueger twfe_cluster_store", "se.CR1", ref["se"]["CR1"], cr0 * np.sqrt(G / (G - 1) * (N - 1) / (N - 3)))
    check("card_krueger twfe_cluster_store", "se.CR1_all_dummies", ref["se"]["CR1_all_dummies"],
          se(clustered(mod, b["store_id"], True), "d"))


def cross_section_checks() -> None:
    k = pd.read_csv(REF / "data" / "kielmc.csv")
    inj = pd.read_csv(REF / "data" / "injury.csv")
    ctrl = ["age", "agesq", "intst", "land", "area", "rooms", "baths"]
    lctrl = ["age", "agesq", "lintst", "lland", "larea", "rooms", "baths"]
    base = ["y81", "nearinc", "y81nrinc"]
    kspecs = load("kielmc_2x2")
    todo = [("rprice_2x2", k, "rprice", base, "y81nrinc", kspecs),
            ("rprice_2x2_age", k, "rprice", base + ["age", "agesq"], "y81nrinc", kspecs),
            ("rprice_2x2_full", k, "rprice", base + ctrl, "y81nrinc", kspecs),
            ("lprice_2x2", k, "lprice", base, "y81nrinc", kspecs),
            ("lprice_2x2_full", k, "lprice", base + lctrl, "y81nrinc", kspecs)]
    ispecs = load("injury_2x2")
    for state, name in (("ky", "kentucky_2x2"), ("mi", "michigan_2x2")):
        sub = inj[inj[state] == 1].reset_index(drop=True)
        todo.append((name, sub, "ldurat", ["afchnge", "highearn", "afhigh"], "afhigh", ispecs))
    for name, df, y, cols, target, specs in todo:
        ref = specs[name]
        mod = sm.OLS(df[y], sm.add_constant(df[cols].astype(float)))
        check(name, "coef", ref["coef"], mod.fit().params[target])
        check(name, "se.iid", ref["se"]["iid"], se(mod.fit(), target))
        for t in ("HC0", "HC1", "HC2", "HC3"):
            check(name, f"se.{t}", ref["se"][t], se(mod.fit(cov_type=t), target))
    for name, cols in (("rprice_2x2_cluster_nbh", base), ("rprice_2x2_full_cluster_nbh", base + ctrl)):
        ref = kspecs[name]
        mod = sm.OLS(k["rprice"], sm.add_constant(k[cols].astype(float)))
        check(name, "se.CR0", ref["se"]["CR0"], se(clustered(mod, k["nbh"], False), "y81nrinc"))
        check(name, "se.CR1 (statsmodels default)", ref["se"]["CR1"], se(clustered(mod, k["nbh"], True), "y81nrinc"))


def main() -> int:
    mpdta_checks()
    card_krueger_checks()
    cross_section_checks()
    print(f"statsmodels {statsmodels.__version__}, numpy {np.__version__}, pandas {pd.__version__}")
    width = max(len(f"{s} {w}") for s, w, *_ in rows)
    bad = 0
    for spec, what, r, p, rel in rows:
        flag = "" if rel <= TOL else "  <-- MISMATCH"
        bad += bool(flag)
        print(f"{(spec + ' ' + what):<{width}}  R {r:.15g}  statsmodels {p:.15g}  rel.diff {rel:.1e}{flag}")
    print(f"{len(rows)} compared, max rel.diff {max(r[4] for r in rows):.1e}, {bad} above {TOL:g}")
    return 1 if bad else 0


if __name__ == "__main__":
    sys.exit(main())
