r"""The disparity difference-in-differences estimator on patient-level data.

For each system and each minority group M the estimator compares M with the reference group R
in a baseline ("pre") and a contract ("post") period:

.. math::

    \text{gap}_t = s\,(\bar y_{R,t} - \bar y_{M,t}), \qquad
    \widehat\Delta = \text{gap}_\text{pre} - \text{gap}_\text{post},

with :math:`s = +1` when higher is better and :math:`-1` otherwise, so a positive gap means M is
disadvantaged and a positive change means the gap closed -- the orientation of
:mod:`evalkit.power`. With comparison systems, ``change_vs_comparison`` is the system's change
minus the change in the pooled comparison systems (a triple difference).

Group-period means are weighted means :math:`\bar y_c = \sum_{i\in c} w_i y_i/\sum_{i\in c} w_i`
(weights 1 for self-reported race; membership probabilities for imputed race). Inference uses the
influence function of every estimate, a linear combination :math:`\sum_c a_c \bar y_c`:
:math:`\psi_i = a_{c(i)}\,w_i(y_i-\bar y_{c(i)})/W_{c(i)}`, summed within clusters:

.. math::

    \widehat V = \frac{G}{G-1}\sum_{g=1}^{G}\Big(\sum_{i\in g}\psi_i\Big)^2,

the CR1-type cluster-robust (linearisation) variance, with :math:`G` the clusters that carry any
of the estimate's rows. When every cluster lies within one system-set x group stratum (known race,
practices of one group -- the planning model of :mod:`evalkit.power`), the strata are independent
samples and the factor is applied per stratum, :math:`\sum_h \frac{G_h}{G_h-1}\sum_{g\in h}(\cdot)^2`,
with Satterthwaite degrees of freedom :math:`(\sum_h V_h)^2/\sum_h V_h^2/(G_h-1)` for
``distribution="t"`` (as :func:`evalkit.power.mde_disparity`); otherwise (imputed race, shared
practices) one factor :math:`G/(G-1)` and :math:`G-1` degrees of freedom. Clusters are ``cluster`` (practices; patients must nest in them), else
``unit`` (patients: accounts for the within-person correlation of pre and post), else rows.
"""
from __future__ import annotations

import math
import warnings
from dataclasses import dataclass, field
from numbers import Real

import numpy as np
import pandas as pd
from scipy import stats

from .._validation import check_option, check_scalar
from ..errors import DataError, DroppedRowsWarning, EvalkitWarning, FewClustersWarning, SpecificationError

__all__ = ["disparity_did", "DisparityDiD"]

_TERMS = ("gap_pre", "gap_post", "change", "change_vs_comparison")
_COMPARISON = "comparison (pooled)"


@dataclass(frozen=True)
class DisparityDiD:
    """Result of :func:`disparity_did`.

    ``table``: one row per system x minority group x term (``gap_pre``, ``gap_post``,
    ``change``, ``change_vs_comparison``) with ``estimate, std_error, statistic, p_value,
    conf_low, conf_high`` (proportion scale), the cell denominators, ``attenuation``,
    ``n_clusters``, ``suppressed`` and ``reason``. Pooled comparison systems appear as system
    ``"comparison (pooled)"``.
    """

    table: pd.DataFrame
    conventions: dict
    dropped: tuple = field(default=())

    def to_frame(self) -> pd.DataFrame:
        return self.table.copy()

    def summary(self):
        from ..results import Summary

        c = self.conventions
        head = [("Reference group", str(c["reference_group"])), ("Orientation", "+ gap = minority disadvantaged; "
                "+ change = gap closed" + ("" if c["higher_is_better"] else " (lower is better)")),
                ("SE", c["se"]), ("Test", f"{c['distribution']}, level {c['level']:g}"),
                ("Small cells", f"suppressed below a denominator of {c['min_denominator']}")]
        cols = ["system", "group", "term", "estimate", "std_error", "conf_low", "conf_high", "p_value", "suppressed"]
        return Summary("Disparity difference-in-differences", self.table[cols], head, list(c["notes"]))

    def plot(self, term: str = "change", ax=None):
        """Estimates of ``term`` with their CIs, one row per system x group (suppressed rows omitted); returns the Axes."""
        from ..plots.style import color_cycle, finish_axes, house_style, new_axes

        check_option(term, "term", _TERMS)
        d = self.table[(self.table["term"] == term) & ~self.table["suppressed"]]
        ax = new_axes(ax)
        with house_style():
            y = np.arange(len(d))[::-1]
            ax.errorbar(d["estimate"] * 100, y, xerr=[(d["estimate"] - d["conf_low"]) * 100, (d["conf_high"] - d["estimate"]) * 100],
                        fmt="o", color=color_cycle(1)[0])
            ax.set_yticks(y, [f"{s} | {g}" for s, g in zip(d["system"], d["group"])])
            ax.axvline(0.0, color="#777777", linewidth=0.8, linestyle=":")
        finish_axes(ax, title=f"Disparity DiD: {term.replace('_', ' ')} ({self.conventions['level']:.0%} CI)",
                    xlabel="percentage points (+ = gap closed)" if term.startswith("change") else
                    "percentage points (+ = minority disadvantaged)", ylabel="")
        return ax

    def __repr__(self) -> str:
        ch = self.table[self.table["term"] == "change"]
        return f"<DisparityDiD: {len(ch)} system x group gap change(s); reference {self.conventions['reference_group']!r}>"


def _as_list(v):
    if v is None:
        return None
    if isinstance(v, (list, tuple, set, np.ndarray, pd.Index)):
        return list(v)
    return [v]


def disparity_did(
    data: pd.DataFrame,
    *,
    outcome: str,
    group: str | None,
    period: str,
    reference_group: str,
    system: str | None = None,
    comparison=None,
    weights: str | dict | None = None,
    cluster: str | None = None,
    unit: str | None = None,
    pre=None,
    post=None,
    higher_is_better: bool = True,
    correct_attenuation: bool = True,
    level: float = 0.95,
    distribution: str = "normal",
    min_denominator: float = 11,
) -> DisparityDiD:
    r"""Change in the gap between a reference group and each minority group, with CIs.

    Parameters
    ----------
    data : DataFrame
        One row per eligible patient and measurement period (or year), long over groups when
        race is imputed with ``weights`` as a column name (one row per patient x period x
        candidate group).
    outcome : str
        Binary (0/1) measure column (any numeric outcome works; SEs are model-free).
    group : str or None
        Race/ethnicity column. ``None`` only when ``weights`` is a dict.
    period : str
        Period column.
    reference_group : str
        The comparison group of every gap (e.g. ``"White"``).
    system : str, optional
        System column; one set of estimates per system.
    comparison : label or list, optional
        Systems (values of ``system``) not in the contract: pooled, their change is subtracted
        from each contract system's change (``change_vs_comparison``).
    weights : str or dict, optional
        Imputed race. A column name: membership probabilities of the row's ``group`` (long
        format). A dict ``{group label: probability column}``: wide BISG-style probabilities,
        one row per patient x period (``group`` is then ignored). Group-period means are weighted
        by the probabilities.
    cluster : str, optional
        Practice (or other) column for cluster-robust SEs; patients must nest in clusters.
    unit : str, optional
        Patient id; clusters for the SE when ``cluster`` is not given (pre and post rows of a
        patient are correlated; without ``unit`` or ``cluster`` rows are treated as
        independent, which overstates the DiD variance when the within-person correlation is
        positive).
    pre, post : label or list, optional
        Period values of the baseline and contract periods (lists are pooled). Default: the
        two values of ``period``: "pre"/"post" when so labelled, else in sorted order (years).
    higher_is_better : bool, default=True
    correct_attenuation : bool, default=True
        With ``weights``, divide every estimate (and its SE) by the estimated attenuation
        :math:`\hat\lambda = \hat a_R + \hat a_M - 1`,
        :math:`\hat a_g = \sum_i q_{ig}^2/\sum_i q_{ig}` over the rows of the system (the
        factor of :mod:`evalkit.power`).
    level : float, default=0.95
    distribution : {"normal", "t"}, default="normal"
        Normal quantiles, or t with Satterthwaite (stratified clusters) or :math:`G-1` degrees of
        freedom (few clusters).
    min_denominator : float, default=11
        A group-period cell with a denominator (sum of weights) below this is suppressed: every
        estimate that uses it is NaN with ``suppressed=True``.

    Returns
    -------
    DisparityDiD

    Notes
    -----
    Estimator and SE are in the module docstring of :mod:`evalkit.equity.did`. The SE is the
    cluster-robust linearisation (CR1-type, :math:`G/(G-1)`) variance, conditional on the
    membership probabilities; normal reference by default.

    **Imputed race.** For calibrated probabilities (the true group is drawn with probability
    :math:`q_i`) and two groups, the probability-weighted estimate has expectation
    :math:`\lambda\,\Delta` exactly (:math:`\sum_i c_i q_i = a_M - (1-a_R) = \lambda` with
    :math:`c_i = q_i/\sum q - (1-q_i)/\sum(1-q)`), so dividing by :math:`\hat\lambda` (computed
    from the probabilities, not the outcomes) is unbiased, with SE divided by the same factor:
    the :math:`1/\lambda` variance inflation of :func:`evalkit.power.mde_disparity`. With more
    than two groups, weight leaking from a third group is treated as if it came from the
    reference group (the approximation stated in :mod:`evalkit.power`).

    Examples
    --------
    >>> import evalkit as ek
    >>> df = ek.power.simulate_disparity_panel(400, 200, 0.7, 0.6, p_minority_post=0.65, rho=0.5, seed=1)
    >>> r = ek.equity.disparity_did(df, outcome="y", group="race", period="period", reference_group="White",
    ...                             unit="patient", pre="pre", post="post")
    >>> r.table.loc[r.table.term == "change", ["estimate", "std_error"]].round(3).values.tolist()
    [[0.062, 0.043]]
    """
    if not isinstance(data, pd.DataFrame):
        raise DataError("'data' must be a pandas DataFrame with one row per patient and period.")
    check_scalar(level, "level", Real, min_val=0, max_val=1, include_min=False, include_max=False)
    check_scalar(min_denominator, "min_denominator", Real, min_val=0)
    check_option(distribution, "distribution", ("normal", "t"))
    if not isinstance(higher_is_better, (bool, np.bool_)):
        raise SpecificationError(f"The 'higher_is_better' parameter must be True or False. Got {higher_is_better!r}.")
    wide = isinstance(weights, dict)
    if wide and group is not None:
        warnings.warn(f"'group'={group!r} is ignored: with 'weights' as a dict the groups are its keys.", EvalkitWarning,
                      stacklevel=2)
    if group is None and not wide:
        raise SpecificationError("'group' is required unless 'weights' is a dict {group: probability column}.")
    need = [outcome, period] + ([group] if not wide else []) + [c for c in (system, cluster, unit) if c is not None]
    if wide:
        if not weights:
            raise SpecificationError("'weights' dict is empty; map each group label to its probability column.")
        need += list(weights.values())
    elif weights is not None:
        if not isinstance(weights, str):
            raise SpecificationError(f"'weights' must be a column name or a dict {{group: column}}. Got {weights!r}.")
        need.append(weights)
    for c in need:
        if c not in data.columns:
            raise DataError(f"Column {c!r} not found in data.")
    for c in need:
        n_na = int(data[c].isna().sum())
        if n_na:
            raise DataError(f"Column {c!r}: {n_na} missing value(s); drop ineligible rows or code missing groups "
                            "(e.g. 'Unknown') first.")
    y = data[outcome]
    if not (pd.api.types.is_numeric_dtype(y) or pd.api.types.is_bool_dtype(y)):
        raise DataError(f"Column {outcome!r} must be numeric (0/1 for a quality measure).")
    # ---- periods
    labels = pd.unique(data[period])
    if pre is None and post is None:
        if len(labels) != 2:
            raise SpecificationError(f"Column {period!r} has {len(labels)} distinct values; give pre=... and post=... "
                                     "(lists are pooled).")
        low = {str(v).lower(): v for v in labels}
        if set(low) == {"pre", "post"}:
            pre_l, post_l = [low["pre"]], [low["post"]]
        else:
            pre_l, post_l = [sorted(labels)[0]], [sorted(labels)[1]]
    elif pre is None or post is None:
        raise SpecificationError("Give both 'pre' and 'post' (or neither, with exactly two periods in the data).")
    else:
        pre_l, post_l = _as_list(pre), _as_list(post)
    for v in pre_l + post_l:
        if v not in set(labels):
            raise DataError(f"Period {v!r} is not in column {period!r} (values: {sorted(map(str, labels))[:10]}).")
    if set(pre_l) & set(post_l):
        raise SpecificationError(f"Periods {sorted(map(str, set(pre_l) & set(post_l)))} are in both 'pre' and 'post'.")
    in_p = data[period].isin(pre_l + post_l).to_numpy()
    dropped = []
    if not in_p.all():
        n_drop = int((~in_p).sum())
        dropped.append(("period not in pre/post", n_drop))
        warnings.warn(f"Dropped {n_drop} row(s) whose {period!r} is in neither 'pre' nor 'post'.", DroppedRowsWarning,
                      stacklevel=2)
    d = data.loc[in_p]
    # ---- long frame: y, g, w, t (0 pre / 1 post), s (system), cl (cluster code)
    if wide:
        parts = []
        for g, col in weights.items():
            parts.append(pd.DataFrame({"_row": np.arange(len(d)), "g": g, "w": d[col].to_numpy(dtype=float)}))
        long = pd.concat(parts, ignore_index=True)
        idx = long["_row"].to_numpy()
    else:
        idx = np.arange(len(d))
        long = pd.DataFrame({"g": d[group].to_numpy(),
                             "w": d[weights].to_numpy(dtype=float) if weights is not None else 1.0})
    w = long["w"].to_numpy(dtype=float)
    if weights is not None and (not np.all(np.isfinite(w)) or (w < 0).any() or (w > 1).any()):
        raise DataError("Membership probabilities in 'weights' must lie in [0, 1].")
    long["y"] = d[outcome].to_numpy(dtype=float)[idx]
    long["t"] = d[period].isin(post_l).to_numpy()[idx].astype(int)
    long["s"] = d[system].to_numpy()[idx] if system is not None else "all"
    cl_col = cluster if cluster is not None else unit
    if cl_col is not None:
        long["cl"] = pd.factorize(d[cl_col].to_numpy()[idx])[0]
        se_txt = f"cluster-robust by {cl_col!r} (CR1-type linearisation, G/(G-1))"
    else:
        if weights is not None and not wide:
            raise SpecificationError("With 'weights' as a column (one row per patient x period x candidate group), give "
                                     "unit= (patient id) or cluster=: a patient's rows share one outcome and must be "
                                     "clustered together.")
        long["cl"] = idx  # wide probabilities: the candidate-group rows of one data row share the cluster
        se_txt = "rows independent (heteroskedasticity-robust, n/(n-1)); give unit= or cluster= for repeated measures"
    if reference_group not in set(long["g"]):
        raise DataError(f"reference_group={reference_group!r} is not among the groups "
                        f"({sorted(map(str, pd.unique(long['g'])))}).")
    comp = _as_list(comparison) or []
    if comp:
        if system is None:
            raise SpecificationError("'comparison' names systems: give the 'system' column too.")
        missing = [c for c in comp if c not in set(long["s"])]
        if missing:
            raise DataError(f"Comparison system(s) {missing} not in column {system!r}.")
        long["s"] = np.where(long["s"].isin(comp), _COMPARISON, long["s"].astype(object))
    sgn = 1.0 if higher_is_better else -1.0
    long = long[long["w"] > 0].reset_index(drop=True)
    # ---- cells
    long["WY"] = long["w"] * long["y"]
    long["W2"] = long["w"] ** 2
    cells = long.rename(columns={"w": "W"}).groupby(["s", "g", "t"], sort=True)[["W", "WY", "W2"]].sum()
    cells["mean"] = cells["WY"] / cells["W"]
    key = pd.MultiIndex.from_frame(long[["s", "g", "t"]])
    cpos = cells.index.get_indexer(key)
    mean_row = cells["mean"].to_numpy()[cpos]
    W_row = cells["W"].to_numpy()[cpos]
    resid = long["w"].to_numpy() * (long["y"].to_numpy() - mean_row) / W_row  # psi for coefficient 1 on the cell
    cl = long["cl"].to_numpy()
    cell_code = pd.factorize(pd.MultiIndex.from_frame(long[["s", "g"]]))[0]  # stratum: system-set x group
    n_cl = int(cl.max()) + 1 if len(cl) else 0
    z_two = (1 - level) / 2
    systems = [s for s in pd.unique(long["s"]) if s != _COMPARISON] + ([_COMPARISON] if comp else [])
    groups = [g for g in pd.unique(long["g"]) if g != reference_group]
    # attenuation per (system, group): a_g = sum w^2 / sum w over the system's rows
    rows, few = [], False
    for s in systems:
        for g in groups:
            lam = _lambda(cells, s, g, reference_group) if (weights is not None and correct_attenuation) else 1.0
            terms = {"gap_pre": {(s, reference_group, 0): sgn, (s, g, 0): -sgn},
                     "gap_post": {(s, reference_group, 1): sgn, (s, g, 1): -sgn}}
            terms["change"] = {**{k: v for k, v in terms["gap_pre"].items()},
                               **{k: -v for k, v in terms["gap_post"].items()}}
            lam_c = None
            if comp and s != _COMPARISON:
                lam_c = _lambda(cells, _COMPARISON, g, reference_group) if (weights is not None and correct_attenuation) else 1.0
                terms["change_vs_comparison"] = {**{k: v / lam for k, v in terms["change"].items()},
                                                 **{(_COMPARISON,) + k[1:]: -v / lam_c for k, v in terms["change"].items()}}
            den = {f"n_{nm}_{per}": _den(cells, (s, gg, t)) for nm, gg in (("reference", reference_group), ("minority", g))
                   for per, t in (("pre", 0), ("post", 1))}
            for term, coef in terms.items():
                if term != "change_vs_comparison":
                    coef = {k: v / lam for k, v in coef.items()}
                dens = [_den(cells, k) for k in coef]
                out = dict(system=s, group=g, term=term, **den, attenuation=lam,
                           attenuation_comparison=lam_c if term == "change_vs_comparison" else np.nan)
                if np.isnan(lam) or min(dens) < min_denominator or any(k not in cells.index for k in coef):
                    out.update(estimate=np.nan, std_error=np.nan, statistic=np.nan, p_value=np.nan, conf_low=np.nan,
                               conf_high=np.nan, n_clusters=np.nan, df=np.nan, suppressed=True,
                               reason=(f"suppressed: a group-period denominator < {min_denominator:g} (small cell)"
                                       if not np.isnan(lam) else "attenuation lambda <= 0.02: imputed groups carry no information"))
                    rows.append(out)
                    continue
                est = float(sum(v * cells.loc[k, "mean"] for k, v in coef.items()))
                a_row = np.zeros(len(cells))
                for k, v in coef.items():
                    a_row[cells.index.get_loc(k)] = v
                psi = a_row[cpos] * resid
                used = a_row[cpos] != 0
                var, G, df = _cluster_var(psi, cl[used], cell_code[used], psi[used], n_cl)
                se = math.sqrt(var) if np.isfinite(var) else np.nan
                if distribution != "t":
                    df = np.nan
                crit = stats.norm.isf(z_two) if distribution == "normal" else stats.t.isf(z_two, df)
                stat = est / se if se and np.isfinite(se) and se > 0 else np.nan
                p = (2 * stats.norm.sf(abs(stat)) if distribution == "normal" else 2 * stats.t.sf(abs(stat), df)) \
                    if np.isfinite(stat) else np.nan
                few = few or (cl_col == cluster and cluster is not None and G < 20 and distribution == "normal")
                out.update(estimate=est, std_error=se, statistic=stat, p_value=float(p), conf_low=est - crit * se,
                           conf_high=est + crit * se, n_clusters=G, df=df, suppressed=False, reason="")
                rows.append(out)
    if few:
        warnings.warn("Fewer than 20 clusters carry an estimate: the cluster-robust z test over-rejects; use "
                      "distribution='t' (or a wild bootstrap).", FewClustersWarning, stacklevel=2)
    table = pd.DataFrame(rows)
    cols = ["system", "group", "term", "estimate", "std_error", "statistic", "p_value", "conf_low", "conf_high",
            "n_reference_pre", "n_minority_pre", "n_reference_post", "n_minority_post", "attenuation",
            "attenuation_comparison", "n_clusters", "df", "suppressed", "reason"]
    table = table[cols] if len(table) else pd.DataFrame(columns=cols)
    notes = ["Estimates on the proportion scale; positive gap = minority disadvantaged, positive change = gap closed."]
    if weights is not None:
        notes.append("Imputed race: probability-weighted group means; " + (
            "estimates and SEs divided by lambda = a_R + a_M - 1 (attenuation correction)." if correct_attenuation
            else "NOT corrected for attenuation: estimates are lambda x the true gap (see 'attenuation')."))
    conv = dict(reference_group=reference_group, higher_is_better=bool(higher_is_better), pre=tuple(pre_l),
                post=tuple(post_l), comparison=tuple(comp), se=se_txt, distribution=distribution, level=level,
                min_denominator=min_denominator, weights=weights, cluster=cluster, unit=unit,
                correct_attenuation=bool(correct_attenuation), notes=tuple(notes))
    return DisparityDiD(table=table, conventions=conv, dropped=tuple(dropped))


def _cluster_var(psi, cl_used, stratum_used, psi_used, n_cl):
    """CR1-type variance of sum(psi): stratified by system-set x group when every cluster lies in one stratum.

    Returns (variance, clusters, df): df is G - 1 (one stratum or mixed clusters) or the
    Satterthwaite df of the stratum variances (independent strata).
    """
    G = len(np.unique(cl_used))
    pairs = np.unique(np.c_[cl_used, stratum_used], axis=0)
    sums = np.bincount(cl_used, weights=psi_used, minlength=n_cl)
    if len(pairs) == G and len(np.unique(pairs[:, 1])) > 1:  # clusters nest in strata: independent samples
        parts, dfs = [], []
        for h in np.unique(pairs[:, 1]):
            g_h = pairs[pairs[:, 1] == h, 0]
            if len(g_h) < 2:
                return np.nan, G, np.nan
            parts.append(len(g_h) / (len(g_h) - 1) * float((sums[g_h] ** 2).sum()))
            dfs.append(len(g_h) - 1)
        var = float(sum(parts))
        den = sum(v**2 / d for v, d in zip(parts, dfs))
        return var, G, (var**2 / den if den > 0 else np.nan)
    if G < 2:
        return np.nan, G, np.nan
    return G / (G - 1) * float((sums**2).sum()), G, float(G - 1)


def _den(cells, key):
    return float(cells.loc[key, "W"]) if key in cells.index else 0.0


def _lambda(cells, s, g, ref):
    """lambda = a_R + a_M - 1 with a = sum w^2 / sum w over the system's rows of each group (both periods)."""
    def acc(gg):
        sub = cells.loc[[k for k in cells.index if k[0] == s and k[1] == gg]]
        return float(sub["W2"].sum() / sub["W"].sum()) if len(sub) and sub["W"].sum() > 0 else np.nan
    lam = acc(ref) + acc(g) - 1.0
    return lam if lam > 0.02 else np.nan
