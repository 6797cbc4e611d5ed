"""Unit tests of evalkit.staggered.imputation (Borusyak-Jaravel-Spiess): exact algebra on a micro
panel, an independent dense implementation of the estimator and its Theorem-3 variance, the
extended-TWFE and Callaway-Sant'Anna equivalences, drops and errors."""
from __future__ import annotations

import warnings

import numpy as np
import pandas as pd
import pytest

import evalkit as ek
from evalkit.errors import DroppedRowsWarning, SpecificationError

pytestmark = [pytest.mark.filterwarnings("ignore::evalkit.errors.SingletonWarning"),
              pytest.mark.filterwarnings("ignore::evalkit.errors.FewClustersWarning")]


def _panel(seed=0, n=80, T=6, drop=0.0, cohorts=(0, 3, 4, 5), p=(0.3, 0.25, 0.25, 0.2)):
    rng = np.random.default_rng(seed)
    g = rng.choice(list(cohorts), size=n, p=list(p))
    ids = np.repeat(np.arange(n), T)
    t = np.tile(np.arange(1, T + 1), n)
    gi = np.repeat(g, T)
    x = rng.normal(size=n * T)
    y = (np.repeat(rng.normal(size=n), T) + 0.3 * t ** 1.5 + 0.5 * x
         + np.where((gi > 0) & (t >= gi), 1.0 + 0.4 * (t - gi) + 0.3 * gi, 0.0) + rng.normal(size=n * T))
    df = pd.DataFrame({"id": ids, "t": t, "g": gi, "y": y, "x": x, "w": np.repeat(rng.uniform(0.5, 2, n), T),
                       "org": np.repeat(rng.integers(0, 15, n), T)})
    if drop:
        df = df.loc[rng.random(len(df)) >= drop].reset_index(drop=True)
    return df


def test_micro_panel_exact_heterogeneous_effects():
    """y = a_i + l_t + tau_it exactly: every tau_it is recovered, overall = mean of tau over treated rows."""
    rows = []
    coh = {0: 2, 1: 2, 2: 3, 3: 3}
    for i in range(7):
        for t in range(5):
            g = coh.get(i)
            tau = (1.0 + i + 2.0 * (t - g)) if g is not None and t >= g else 0.0
            rows.append((i, t, g if g is not None else np.nan, 5.0 * i - t + t ** 2 + tau, tau))
    df = pd.DataFrame(rows, columns=["id", "t", "g", "y", "tau"])
    r = ek.staggered.imputation(df, outcome="y", unit="id", time="t", cohort="g")
    te = r.treatment_effects()
    truth = df[df["tau"] != 0].sort_values(["id", "t"])["tau"].to_numpy()
    np.testing.assert_allclose(te.sort_values(["id", "t"])["tau_hat"], truth, atol=1e-10)
    assert r.estimate == pytest.approx(truth.mean(), abs=1e-10)
    fr = r.to_frame().set_index("term")
    tr = df[df["tau"] != 0].assign(e=lambda d: d["t"] - d["g"]).groupby("e")["tau"].mean()
    for e, v in tr.items():
        assert fr.loc[f"e={int(e)}", "estimate"] == pytest.approx(v, abs=1e-10)


def _dense_bjs(df, covariates=(), weights=None, cluster="id"):
    """Independent implementation with the full dummy design Z and pinv (BJS eqs. 6, 8, 10)."""
    g = df["g"].to_numpy(float)
    t = df["t"].to_numpy()
    treat = (g > 0) & (t >= g)
    U = pd.get_dummies(df["id"]).to_numpy(float)
    Tm = pd.get_dummies(df["t"]).to_numpy(float)[:, 1:]
    Z = np.column_stack([U, Tm] + [df[list(covariates)].to_numpy(float)] * bool(covariates))
    w = np.ones(len(df)) if weights is None else df[weights].to_numpy(float)
    y = df["y"].to_numpy(float)
    Z0, Z1, W0 = Z[~treat], Z[treat], w[~treat]
    A = np.linalg.pinv(Z0.T @ (Z0 * W0[:, None]))
    theta = A @ Z0.T @ (W0 * y[~treat])
    tau = y[treat] - Z1 @ theta
    e = (t - g)[treat].astype(int)
    hz = np.unique(e)
    W1 = np.column_stack([w[treat] / w[treat].sum()] + [np.where(e == h, w[treat], 0) / w[treat][e == h].sum() for h in hz])
    est = W1.T @ tau
    v0 = -(Z0 * W0[:, None]) @ A @ Z1.T @ W1
    eps0 = y[~treat] - Z0 @ theta
    cl0, cl1 = df[cluster].to_numpy()[~treat], df[cluster].to_numpy()[treat]
    cells = pd.Series(list(zip(g[treat], e)))
    se = []
    for j in range(W1.shape[1]):
        v1 = W1[:, j]
        tbar = np.zeros(len(tau))
        for key in cells.unique():
            mk = (cells == key).to_numpy()
            d = (v1[mk] ** 2).sum()
            tbar[mk] = (v1[mk] ** 2 * tau[mk]).sum() / d if d > 0 else 0.0
        tot = 0.0
        for c in np.unique(df[cluster]):
            s = (v0[cl0 == c, j] * eps0[cl0 == c]).sum() + (v1[cl1 == c] * (tau - tbar)[cl1 == c]).sum()
            tot += s * s
        se.append(np.sqrt(tot))
    return est, np.array(se), v0, W1


@pytest.mark.parametrize("drop,covs,weights,cluster", [(0.0, (), None, None), (0.2, ("x",), "w", "org")])
def test_matches_dense_implementation(drop, covs, weights, cluster):
    df = _panel(seed=2, drop=drop)
    pre = df[(df["g"] == 0) | (df["t"] < df["g"])].groupby("id").size()
    df = df[df["id"].isin(pre.index)].reset_index(drop=True)  # units with an untreated row (else not imputable)
    r = ek.staggered.imputation(df, outcome="y", unit="id", time="t", cohort="g", covariates=list(covs),
                                weights=weights, cluster=cluster)
    est, se, v0, W1 = _dense_bjs(df, covs, weights, cluster or "id")
    np.testing.assert_allclose(r.to_frame()["estimate"], est, rtol=1e-9, atol=1e-11)
    np.testing.assert_allclose(r.to_frame()["std_error"], se, rtol=1e-9)
    # the estimator is linear in Y with weights v: sum v Y = estimate (BJS eq. 6)
    y = df["y"].to_numpy()
    x = r.extra
    np.testing.assert_allclose(x["v0"].T @ y[x["omega0_rows"]] + x["v1"].T @ y[x["omega1_rows"]], est, rtol=1e-9, atol=1e-11)


def test_equals_extended_twfe_on_balanced_panel():
    """Balanced, no covariates: BJS = cell-count-weighted extended TWFE (dummy per treated cohort x period; Wooldridge 2021)."""
    df = _panel(seed=4)
    r = ek.staggered.imputation(df, outcome="y", unit="id", time="t", cohort="g")
    g, t = df["g"].to_numpy(float), df["t"].to_numpy()
    treat = (g > 0) & (t >= g)
    cells = sorted(set(zip(g[treat], t[treat])))
    D = np.column_stack([(treat & (g == a) & (t == b)).astype(float) for a, b in cells])
    Z = np.column_stack([D, pd.get_dummies(df["id"]).to_numpy(float), pd.get_dummies(df["t"]).to_numpy(float)[:, 1:]])
    beta = np.linalg.lstsq(Z, df["y"].to_numpy(), rcond=None)[0][:len(cells)]
    n = np.array([(treat & (g == a) & (t == b)).sum() for a, b in cells], float)
    assert r.estimate == pytest.approx(float(n @ beta / n.sum()), abs=1e-9)
    e = np.array([b - a for a, b in cells])
    fr = r.to_frame().set_index("term")
    for h in np.unique(e):
        assert fr.loc[f"e={int(h)}", "estimate"] == pytest.approx(float(n[e == h] @ beta[e == h] / n[e == h].sum()), abs=1e-9)


def test_equals_callaway_santanna_single_cohort_one_pre_period():
    df = _panel(seed=6, cohorts=(0, 2), p=(0.5, 0.5))
    r = ek.staggered.imputation(df, outcome="y", unit="id", time="t", cohort="g")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        cs = ek.staggered.att_gt(df, outcome="y", unit="id", time="t", cohort="g", n_boot=0)
    assert r.estimate == pytest.approx(cs.aggregate("simple").estimate, abs=1e-10)
    dyn = cs.aggregate("dynamic").event_frame().set_index("event_time")
    for _, row in r.event_frame().iterrows():
        assert row["estimate"] == pytest.approx(dyn.loc[row["event_time"], "estimate"], abs=1e-10)


def test_leave_out_pretrends_drops_errors():
    import matplotlib

    matplotlib.use("Agg")
    df = _panel(seed=8)
    base = ek.staggered.imputation(df, outcome="y", unit="id", time="t", cohort="g", pretrends=2)
    lo = ek.staggered.imputation(df, outcome="y", unit="id", time="t", cohort="g", leave_out=True)
    np.testing.assert_allclose(lo.to_frame()["estimate"], base.to_frame()["estimate"])
    assert (lo.to_frame()["std_error"] >= base.to_frame()["std_error"] - 1e-12).all()
    pt = base.pretrend_test()
    assert pt["df_num"] == 2 and 0 <= pt["p_value"] <= 1
    assert base.plot() is not None
    with pytest.raises(SpecificationError, match="pretrends"):
        lo.pretrend_test()
    with pytest.raises(SpecificationError, match="horizons"):
        ek.staggered.imputation(df, outcome="y", unit="id", time="t", cohort="g", horizons=[0, 40])
    # a treated unit never observed untreated: its rows cannot be imputed -> dropped and recorded
    d2 = df[~((df["id"] == df.loc[df["g"] == 3, "id"].iloc[0]) & (df["t"] < 3))]
    with pytest.warns(DroppedRowsWarning, match="cannot be imputed"):
        r2 = ek.staggered.imputation(d2, outcome="y", unit="id", time="t", cohort="g")
    assert any("cannot be imputed" in d.reason for d in r2.sample.dropped)
