"""Callaway & Sant'Anna (2021) group-time average treatment effects: panel data (balanced or not) and
repeated cross-sections."""
from __future__ import annotations

import logging
import warnings
from numbers import Integral, Real

import numpy as np
import pandas as pd

from .._validation import as_generator, check_columns_arg, check_option, check_scalar
from ..data.schema import validate_panel
from ..errors import DataError, EvalkitWarning, SpecificationError
from ..results import Conventions, SampleInfo
from ._aggregate import register_cohort_codes
from ._bootstrap import BOOT_WEIGHTS, cluster_sums
from ._cell import cell_att, cell_att_rc
from .results import ATTgtResult, _bands, _cell_table, _readonly, _se_from_if

__all__ = ["att_gt"]

logger = logging.getLogger(__name__)


def _per_unit(values: np.ndarray, unit: np.ndarray, n_units: int, name: str, what: str) -> np.ndarray:
    """The (unit-constant) value of a row-level array per unit; DataError if it varies within unit."""
    out = np.full(n_units, np.nan)
    out[unit] = values
    back = out[unit]
    same = back == values
    if not same.all():  # NaN == NaN is allowed; check only the rows that differ
        bad_rows = np.flatnonzero(~same)
        same[bad_rows] = np.isnan(values[bad_rows]) & np.isnan(back[bad_rows])
    if not np.all(same):
        bad = np.unique(unit[~same]).size
        raise DataError(f"Column {name!r} ({what}) varies within unit for {bad} unit(s); it must be constant within unit.")
    return out


_RC_NAMES = {"dr": "drdid_rc (locally efficient doubly robust)", "ipw": "std_ipw_did_rc", "reg": "reg_did_rc"}


def _validate_rc(data, *, outcome, unit, time, cohort, clusters, weights, covariates, dropna):
    """Validate repeated cross-sections: one row per observation; ``unit`` (if given) unique per row."""
    p = validate_panel(data, outcome=outcome, unit=None, time=time, cohort=cohort, cluster=clusters or None,
                       weights=weights, covariates=covariates, dropna=dropna, already_treated="drop", stacklevel=4)
    if unit is not None:
        if unit not in data.columns:
            raise DataError(f"Column {unit!r} (the unit) not found in data. With panel=False, `unit` may be None.")
        ids = data[unit].iloc[p.row_index] if len(p.row_index) != len(data) else data[unit]
        dup = ids.duplicated(keep=False).to_numpy()
        if dup.any():
            ex = list(pd.unique(ids[dup])[:3])
            raise DataError(
                f"att_gt(panel=False): column {unit!r} (the unit) repeats in {int(dup.sum())} rows (e.g. {unit}={ex}), "
                f"but repeated cross-sections treat every row as an independent observation. If the same units "
                f"are observed in several periods use panel=True (unbalanced panels are handled directly); if the "
                f"rows are genuine cross-sections pass unit=None (and cluster={unit!r} to sum influence functions "
                f"within {unit!r})."
            )
    cnt = np.bincount(p.time, minlength=p.n_periods)
    if (cnt == 0).any():
        empty = [str(p.time_axis.label(j)) for j in np.flatnonzero(cnt == 0)[:5]]
        logger.info("att_gt(panel=False): no rows in period(s) %s", empty)
    return p


def att_gt(
    data: pd.DataFrame,
    *,
    outcome: str,
    unit: str | None,
    time: str,
    cohort: str,
    panel: bool = True,
    control: str = "never",
    method: str = "dr",
    covariates=(),
    anticipation: int = 0,
    base_period: str = "varying",
    cluster: str | None = None,
    weights: str | None = None,
    level: float = 0.95,
    n_boot: int = 999,
    boot_weights: str = "rademacher",
    seed: int | np.random.Generator | None = None,
    dropna: bool = False,
) -> ATTgtResult:
    r"""Group-time average treatment effects ATT(g, t) of Callaway & Sant'Anna (2021).

    Parameters
    ----------
    data : pandas.DataFrame
        Long panel, one row per unit and period; may be unbalanced (units skipping periods). With
        ``panel=False``: repeated cross-sections, one row per independent observation.
    outcome, unit, time : str
        Outcome, unit identifier and time columns (time: integers, Periods or dates). ``unit`` may
        be ``None`` when ``panel=False``; if given it must then be unique per row.
    cohort : str
        First treated period of the unit (or, with ``panel=False``, of the row's group), in the
        units of ``time``; never treated: ``NaN``, ``inf`` or ``0``. Must be constant within unit.
        Units (rows) treated in the first period are dropped (recorded in ``sample.dropped``).
    panel : bool, default=True
        ``False``: repeated cross-sections (R ``did``'s ``panel=FALSE``). Every row is an
        independent observation; ATT(g, t) compares the rows of periods ``t`` and ``b`` with the
        repeated-cross-section estimators of ``DRDID`` (``drdid_rc``, ``std_ipw_did_rc``,
        ``reg_did_rc``); covariates are each row's own values; weights and clusters are per row;
        the aggregation weights :math:`P(G=g)` are shares of rows. See Notes.
    control : {"never", "notyet"}, default="never"
        Comparison units: never treated, or never treated plus not yet treated
        (:math:`G > \max(t, b) + \delta`, :math:`G \ne g`) in the cell's periods.
    method : {"dr", "ipw", "reg"}, default="dr"
        Doubly robust (Sant'Anna & Zhao 2020), normalised inverse probability weighting, or outcome
        regression. Without covariates all three equal the difference of mean changes.
    covariates : sequence of str, default=()
        Covariates of the propensity score (logit, ML) and the outcome regression (OLS on the
        comparison units' changes); an intercept is always included. Taken in the earlier of the
        cell's two periods (as R ``did``); they should be pre-determined.
    anticipation : int, default=0
        Periods of anticipation :math:`\delta`: the base period of post cells is :math:`g-\delta-1`.
    base_period : {"varying", "universal"}, default="varying"
        ``"varying"``: pre-treatment cells compare :math:`t` with :math:`t-1` (short differences);
        post cells use :math:`g-\delta-1`. ``"universal"``: every cell uses :math:`g-\delta-1`,
        and the cell :math:`t = g-\delta-1` is a reference cell fixed at 0 (no standard error).
    cluster : str or None, default=None
        Cluster above the unit (constant within unit): influence functions are summed within
        cluster; no small-sample factor (R ``did``'s clustered multiplier bootstrap uses none).
        With ``panel=False``: any grouping of the rows (e.g. the organisation or survey PSU).
    weights : str or None, default=None
        Unit weights (constant within unit; per row with ``panel=False``), normalised to mean 1.
    level : float, default=0.95
        Confidence level of the pointwise intervals and of the simultaneous band.
    n_boot : int, default=999
        Multiplier-bootstrap draws for the simultaneous (sup-t) band ``conf_low_simul/conf_high_simul``;
        0 skips the bootstrap. Pointwise intervals are always analytic.
    boot_weights : {"rademacher", "mammen"}, default="rademacher"
    seed : int, numpy.random.Generator or None, default=None
        Seeds the bootstrap (and the bootstraps of :meth:`ATTgtResult.aggregate`).
    dropna : bool, default=False
        Drop rows with missing values in the used columns (recorded) instead of raising.

    Returns
    -------
    ATTgtResult

    Notes
    -----
    For cohort :math:`g` and period :math:`t` with base period :math:`b`, the cell sample is the
    units of cohort :math:`g` and of the comparison group **observed in both** :math:`t` and
    :math:`b` (on a balanced panel: all of them). With :math:`\Delta Y_i = Y_{it} - Y_{ib}`, the
    cell estimator is the 2x2 DiD of ``method`` (no covariates:
    :math:`\bar{\Delta Y}_{G=g} - \bar{\Delta Y}_{C}`). Its influence function :math:`\psi^{gt}_i`
    (including the estimation of the propensity score and outcome-regression coefficients, as R
    ``DRDID``) is scaled by :math:`n / n_{gt}` and set to 0 for units outside the cell, so that

    .. math:: \widehat{se}(\widehat{ATT}(g,t)) = \frac{1}{n}\sqrt{\sum_c \Big(\sum_{i\in c}\psi^{gt}_i\Big)^2}

    with :math:`n` the number of units and :math:`c` units (``se = sqrt(mean(psi**2)/n)``, R
    ``did``) or clusters. Inference is normal; intervals are pointwise; ``conf_*_simul`` is a
    sup-t band from the multiplier bootstrap of the (cluster-summed) influence functions.
    Unbalanced panels: the estimator assumes attrition is ignorable for the cell's change —
    whether a unit is observed in both :math:`t` and :math:`b` is independent of its outcome
    change given its cohort (and covariates); see ``docs/staggered.md``.

    **Repeated cross-sections** (``panel=False``): the cell sample is the rows of periods
    :math:`t` and :math:`b` of cohort :math:`g` and of the comparison group; with
    :math:`T_i = 1\{t_i = t\}` the cell estimator is the repeated-cross-section DiD of ``method``
    (no covariates: :math:`(\bar Y_{g,t} - \bar Y_{g,b}) - (\bar Y_{C,t} - \bar Y_{C,b})`, four
    row means); ``"dr"`` is the locally efficient estimator ``DRDID::drdid_rc`` (outcome
    regressions in each of the four group x period cells), as R ``did`` with ``panel=FALSE``.
    Influence functions are per row, scaled by :math:`n / n_{gt}` with :math:`n` the number of
    rows; ``se = sqrt(sum_c S_c^2)/n`` over rows or clusters. The composition of each cohort must
    be stable across periods (the rows of cohort :math:`g` sampled at :math:`t` and :math:`b`
    come from the same population).

    Examples
    --------
    >>> import evalkit as ek
    >>> res = ek.staggered.att_gt(ek.datasets.load_mpdta(), outcome="lemp", unit="countyreal",
    ...                           time="year", cohort="first.treat", n_boot=0)
    >>> round(res.aggregate("simple").estimate, 7)
    -0.0399513
    """
    check_option(control, "control", ["never", "notyet"], "att_gt")
    check_option(method, "method", ["dr", "ipw", "reg"], "att_gt")
    check_option(base_period, "base_period", ["varying", "universal"], "att_gt")
    check_option(boot_weights, "boot_weights", BOOT_WEIGHTS, "att_gt")
    check_scalar(anticipation, "anticipation", Integral, min_val=0)
    check_scalar(level, "level", Real, min_val=0, max_val=1, include_min=False, include_max=False)
    check_scalar(n_boot, "n_boot", Integral, min_val=0)
    covariates = check_columns_arg(covariates, "covariates")
    clusters = check_columns_arg(cluster, "cluster")
    if len(clusters) > 1:
        raise SpecificationError(f"The 'cluster' parameter takes one column (clustering above the unit). Got {list(clusters)}.")
    if isinstance(seed, np.random.Generator):
        seed_seq = np.random.SeedSequence(int(seed.integers(2**63)))
        seed_int = None
    else:
        as_generator(seed)  # validates
        seed_seq = None if seed is None else np.random.SeedSequence(seed)
        seed_int = seed

    if not isinstance(panel, (bool, np.bool_)):
        raise SpecificationError(f"att_gt: `panel` must be True (panel data) or False (repeated cross-sections). "
                                 f"Got {panel!r}.")
    panel = bool(panel)
    if panel and unit is None:
        raise SpecificationError("att_gt: `unit` is required for panel data. For repeated cross-sections (independent "
                                 "observations in each period) pass panel=False (unit may then be None).")
    if not panel:
        p = _validate_rc(data, outcome=outcome, unit=unit, time=time, cohort=cohort, clusters=clusters,
                         weights=weights, covariates=covariates, dropna=dropna)
        N, T = p.nobs, p.n_periods
        ucoh = np.array(p.cohort, dtype=float)
        ucoh[~np.isfinite(ucoh)] = np.inf
        uw = np.ones(N) if p.weights is None else np.array(p.weights, dtype=float)
        uw = uw / uw.mean()
        ucl = pd.factorize(p.cluster[:, 0])[0].astype(np.int64) if clusters else None
    else:
        p = validate_panel(data, outcome=outcome, unit=unit, time=time, cohort=cohort, cluster=clusters or None,
                           weights=weights, covariates=covariates, dropna=dropna, already_treated="drop", stacklevel=3)
        N, T = p.n_units, p.n_periods
        u, tt = p.unit, p.time
        ucoh = _per_unit(p.cohort, u, N, cohort, "the cohort")
        ucoh[~np.isfinite(ucoh)] = np.inf
        uw = np.ones(N) if p.weights is None else _per_unit(p.weights, u, N, weights, "the weights")
        uw = uw / uw.mean()
        ucl = None
        if clusters and clusters[0] != unit:
            ucl_f = _per_unit(p.cluster[:, 0].astype(float), u, N, clusters[0], "the cluster")
            ucl = pd.factorize(ucl_f)[0].astype(np.int64)

    k = p.X.shape[1]
    if k and panel:
        Y = np.full((N, T), np.nan)
        Y[u, tt] = p.y
        obs = np.zeros((N, T), bool)
        obs[u, tt] = True
        Xw = np.zeros((N, T, k))
        Xw[u, tt] = p.X

    cvals = np.sort(pd.unique(ucoh))  # distinct cohorts, never (inf) last
    glist = cvals[np.isfinite(cvals)]
    delta = int(anticipation)
    never = ~np.isfinite(ucoh)
    cells, notes = [], []
    skipped = []
    for g in glist.astype(int):
        b_post = g - delta - 1
        if b_post < 0:
            skipped.append(f"cohort {p.time_axis.label(g)}: no period before g - anticipation; its cells are skipped")
            continue
        trange = range(1, T) if base_period == "varying" else range(T)
        for t in trange:
            post = g <= t
            b = b_post if (post or base_period == "universal") else t - 1
            cells.append((g, t, b, post))

    V = ucode = None
    if not panel:
        est, rows, psi = _cells_rc(cells, N, ucoh, never, p, uw, control, delta, method, skipped)
    elif not k:  # no covariates: every cell is a difference of mean changes, computed in one pass
        est, rows, psi, V, ucode = _cells_no_covariates(cells, p, N, T, ucoh, cvals, uw, p.weights is not None, control,
                                                 delta, method, skipped)
    else:
        est, rows, psi = _cells_general(cells, N, ucoh, never, Y, obs, Xw, uw, control, delta, method, k, p, skipped)
    if skipped:
        warnings.warn("att_gt: " + "; ".join(skipped[:5]) + (f"; ... ({len(skipped)} in all)" if len(skipped) > 5 else ""),
                      EvalkitWarning, stacklevel=2)
        notes.extend(skipped)
    if not rows or all(r[6] for r in rows):  # only universal-base reference cells (fixed at 0) left
        raise DataError("att_gt: no ATT(g,t) cell could be estimated (no treated cohort with comparison units "
                        "observed in the cell's period and its base period). Check the cohort coding, or use "
                        "control='notyet' when there are no never-treated units.")

    if ucl is None and V is not None:
        S = psi
        se = np.sqrt(np.diag(V)) / N
        vcov = V / N**2
    else:
        S = cluster_sums(psi, ucl)
        se = _se_from_if(S, N)
        vcov = S.T @ S / N**2
    is_ref = np.array([r[6] for r in rows])
    se[is_ref] = np.nan
    ax = p.time_axis
    g_code = np.array([r[0] for r in rows], dtype=float)
    t_code = np.array([r[1] for r in rows], dtype=float)
    table = _cell_table(rows, est, se, ax, level)
    rng = np.random.default_rng(np.random.SeedSequence(seed_seq.entropy, spawn_key=(0,))) if seed_seq is not None else np.random.default_rng()
    psi.setflags(write=False)  # owned here: read-only without a copy
    table, crit = _bands(table, S, N, n_boot, boot_weights, rng, level, np.flatnonzero(~is_ref))

    n_cl = (int(ucl.max()) + 1,) if ucl is not None else ()
    what = "units" if panel else "rows (independent observations)"
    vdesc = (f"influence function, se = sqrt(sum_i psi_i^2)/n over {what}" if ucl is None else
             f"influence function summed within {clusters[0]!r} clusters, se = sqrt(sum_c S_c^2)/n; no small-sample factor")
    ref = ("varying: t-1 for pre-treatment cells, g-1-anticipation for post cells" if base_period == "varying"
           else "universal: g-1-anticipation (reference cell fixed at 0)")
    if n_boot:
        notes.append(f"Simultaneous band over the ATT(g,t) cells: sup-t critical value {crit:.4f} from {n_boot} "
                     f"{boot_weights} multiplier draws" + (f" clustered by {clusters[0]!r}" if ucl is not None else "") + ".")
    if not panel:
        notes.append("Repeated cross-sections (panel=False): each ATT(g,t) compares the rows of periods t and b with "
                     f"DRDID's {_RC_NAMES[method]}; P(G=g) in aggregations are shares of rows.")
    elif not p.is_balanced:
        notes.append("Unbalanced panel: each ATT(g,t) uses the units observed in both t and its base period.")
    conv = Conventions(
        estimator=f"Callaway-Sant'Anna ATT(g,t), {method}, control={control!r}"
                  + ("" if panel else ", repeated cross-sections"),
        vcov_type="IF" if ucl is None else "IF-cluster",
        vcov_description=vdesc,
        distribution="normal",
        df=None,
        cluster=(clusters[0],) if ucl is not None else ((unit,) if panel else ("observation",)),
        n_clusters=n_cl or (N,),
        small_sample="none",
        weights=weights,
        reference_period=ref,
        level=float(level),
        seed=seed_int,
        notes=tuple(notes),
    )
    if panel:
        sample = SampleInfo(n_obs=p.nobs, n_input_rows=p.n_input_rows, n_units=N, n_periods=T, balanced=p.is_balanced,
                            n_treated_units=int(np.isfinite(ucoh).sum()), dropped=p.dropped)
    else:  # no units: n_treated_units counts the rows of treated cohorts
        sample = SampleInfo(n_obs=p.nobs, n_input_rows=p.n_input_rows, n_units=None, n_periods=T, balanced=None,
                            n_treated_units=int(np.isfinite(ucoh).sum()), dropped=p.dropped)
    ucoh_ro, uw_ro = _readonly(ucoh), _readonly(uw)
    if ucode is not None:
        register_cohort_codes(ucoh_ro, uw_ro, cvals, ucode)
    extra = {
        "psi": psi, "g_code": _readonly(g_code), "t_code": _readonly(t_code),
        "unit_cohort": ucoh_ro, "unit_w": uw_ro, "cluster": ucl, "n_periods": T,
        "is_reference": is_ref, "time_axis": ax, "n_boot": int(n_boot), "boot_weights": boot_weights,
        "seed_seq": seed_seq, "crit_value": crit, "method": method, "control": control,
        "base_period": base_period, "anticipation": delta, "panel": panel,
    }
    return ATTgtResult(table=table, vcov=vcov, conventions=conv, sample=sample, extra=extra)


def _cells_rc(cells, N, ucoh, never, p, w, control, delta, method, skipped):
    """ATT(g,t) cell by cell for repeated cross-sections (:func:`cell_att_rc`); rows are the observations."""
    est, rows = [], []
    psi = np.zeros((N, len(cells)), order="F")
    tt = p.time
    k = p.X.shape[1]
    for g, t, b, post in cells:
        j = len(rows)
        if t == b:  # universal base period: reference cell
            est.append(0.0)
            rows.append((g, t, b, post, int(np.sum((ucoh == g) & (tt == t))), 0, True))
            continue
        ctrl = never if control == "never" else never | ((ucoh > max(t, b) + delta) & (ucoh != g))
        in_t, in_b = tt == t, tt == b
        treat = ucoh == g
        n_t1, n_t0 = int(np.sum(treat & in_t)), int(np.sum(treat & in_b))
        n_c1, n_c0 = int(np.sum(ctrl & in_t)), int(np.sum(ctrl & in_b))
        if min(n_t1, n_t0, n_c1, n_c0) == 0:
            ax = p.time_axis
            skipped.append(f"ATT({ax.label(g)},{ax.label(t)}): rows of cohort {ax.label(g)} in periods "
                           f"{ax.label(t)}/{ax.label(b)}: {n_t1}/{n_t0}, comparison rows: {n_c1}/{n_c0}; cell skipped")
            continue
        idx = np.flatnonzero((in_t | in_b) & (treat | ctrl))
        X = np.ones((idx.size, 1 + k))
        if k:
            X[:, 1:] = p.X[idx]
        att, psi_sub = cell_att_rc(p.y[idx], in_t[idx], treat[idx], X, w[idx], method)
        psi[idx, j] = psi_sub * (N / idx.size)
        est.append(att)
        rows.append((g, t, b, post, n_t1 + n_t0, n_c1 + n_c0, False))
    return est, rows, psi[:, :len(rows)]


def _cells_general(cells, N, ucoh, never, Y, obs, Xw, uw, control, delta, method, k, p, skipped):
    """ATT(g,t) cell by cell through :func:`cell_att` (any method, with covariates)."""
    est, rows = [], []
    psi = np.zeros((N, len(cells)), order="F")
    for g, t, b, post in cells:
        j = len(rows)
        if t == b:  # universal base period: reference cell
            est.append(0.0)
            rows.append((g, t, b, post, int(np.sum(ucoh == g)), 0, True))
            continue
        if control == "never":
            ctrl = never
        else:
            ctrl = never | ((ucoh > max(t, b) + delta) & (ucoh != g))
        both = obs[:, t] & obs[:, b]
        treat_m = both & (ucoh == g)
        ctrl_m = both & ctrl
        n1, n0 = int(treat_m.sum()), int(ctrl_m.sum())
        if n1 == 0 or n0 == 0:
            skipped.append(f"ATT({p.time_axis.label(g)},{p.time_axis.label(t)}): "
                           f"{n1} treated and {n0} comparison units observed in both periods; cell skipped")
            continue
        idx = np.flatnonzero(treat_m | ctrl_m)
        dy = Y[idx, t] - Y[idx, b]
        D = (ucoh[idx] == g).astype(float)
        X = np.ones((idx.size, 1))
        if k:
            X = np.column_stack([X, Xw[idx, min(t, b)]])
        att, psi_sub = cell_att(dy, D, X, uw[idx], method)
        psi[idx, j] = psi_sub * (N / idx.size)
        est.append(att)
        rows.append((g, t, b, post, n1, n0, False))
    return est, rows, psi[:, :len(rows)]


def _cells_no_covariates(cells, p, N, T, ucoh, cvals, uw, weighted, control, delta, method, skipped):
    """All ATT(g,t) cells without covariates, from a periods x units outcome table sorted by cohort.

    Without covariates the ``dr``, ``ipw`` and ``reg`` estimators all equal the difference of the
    (weighted) mean changes of the cohort and of the comparison units, with influence function
    ``w_i (dY_i - m_1) n / W_1`` on the cohort's units and ``-w_i (dY_i - m_0) n / W_0`` on the
    comparison units (0 elsewhere; ``W`` = sum of weights). Units are sorted by cohort once, so
    every cell works on contiguous slices; the (unit-cluster) covariance is accumulated per cohort
    block. A cell whose propensity score would be trimmed (cohort share >= TRIM_LEVEL for ``dr``
    and ``ipw``) goes through :func:`cell_att` unchanged. Returns ``(est, rows, psi, V)`` with
    ``V = psi' psi``.
    """
    from ._cell import TRIM_LEVEL

    nc = cvals.size
    code = np.searchsorted(cvals, ucoh)
    code = code.astype(np.int16 if nc < 2**15 else np.int64)
    order = np.argsort(code, kind="stable")
    counts = np.bincount(code, minlength=nc)
    bounds = np.concatenate([[0], np.cumsum(counts)])
    pos = np.empty(N, np.intp)
    pos[order] = np.arange(N)
    u, tt = p.unit, p.time
    prow = pos[u]
    YT = np.empty((T, N)) if p.is_balanced else np.full((T, N), np.nan)
    YT[tt, prow] = p.y
    obsT = None
    if not p.is_balanced:
        obsT = np.zeros((T, N), bool)
        obsT[tt, prow] = True
    del prow
    ws = uw[order] if weighted else None
    ci_of = {float(c): i for i, c in enumerate(cvals)}

    # which cohort blocks each cell touches (treated cohort, comparison cohorts)
    plan = []
    for g, t, b, post in cells:
        if t == b:
            plan.append(None)
            continue
        cg = ci_of[float(g)]
        thr = max(t, b) + delta
        ctrl = [i for i, c in enumerate(cvals) if (np.isinf(c) if control == "never" else ((c > thr) and c != g))]
        plan.append((cg, ctrl))

    # one buffer per cohort block, a row per planned cell touching it (no per-cell temporaries)
    slot: dict = {}
    nrow = np.zeros(nc, np.int64)
    for c, pl in enumerate(plan):
        if pl is not None:
            for i in [pl[0]] + pl[1]:
                slot[(c, i)] = int(nrow[i])
                nrow[i] += 1
    buf = {i: np.empty((int(nrow[i]), int(counts[i]))) for i in range(nc) if nrow[i]}
    used: dict = {i: [] for i in buf}  # (buffer row, cell row j) of the cells kept

    est, rows = [], []
    for c, ((g, t, b, post), pl) in enumerate(zip(cells, plan)):
        j = len(rows)
        if pl is None:  # universal base period: reference cell
            est.append(0.0)
            rows.append((g, t, b, post, int(counts[ci_of[float(g)]]), 0, True))
            continue
        cg, ctrl = pl
        parts = []  # (block, dy, weights or None, mask or None, n, sum_w, sum_wdy)
        for i in [cg] + ctrl:
            a, z = bounds[i], bounds[i + 1]
            if z == a:
                continue
            dy = np.subtract(YT[t, a:z], YT[b, a:z], out=buf[i][slot[(c, i)]])
            m = None
            if obsT is not None:
                m = obsT[t, a:z] & obsT[b, a:z]
                if m.all():
                    m = None
                else:
                    dy[~m] = 0.0
            w = None if ws is None else (ws[a:z] if m is None else ws[a:z] * m)
            n = (z - a) if m is None else int(m.sum())
            if w is None:
                sw, swy = float(n), float(np.sum(dy))
            else:
                sw, swy = float(np.sum(w)), float(w @ dy)
            parts.append((i, dy, w, m, n, sw, swy))
        tp = [x for x in parts if x[0] == cg]
        cp = [x for x in parts if x[0] != cg]
        n1 = sum(x[4] for x in tp)
        n0 = sum(x[4] for x in cp)
        if n1 == 0 or n0 == 0:
            skipped.append(f"ATT({p.time_axis.label(g)},{p.time_axis.label(t)}): "
                           f"{n1} treated and {n0} comparison units observed in both periods; cell skipped")
            continue
        W1 = sum(x[5] for x in tp)
        W0 = sum(x[5] for x in cp)
        closed = W1 > 0 and W0 > 0 and (method == "reg" or W1 / (W1 + W0) < TRIM_LEVEL - 1e-9)
        if not closed:  # the general estimator (trimming / degenerate weights), on the same units
            idx_parts = []
            for i, dy, w, m, n, sw, swy in parts:
                ids = order[bounds[i]:bounds[i + 1]]
                idx_parts.append(ids if m is None else ids[m])
            idx = np.sort(np.concatenate(idx_parts))
            pi = pos[idx]
            dyg = YT[t, pi] - YT[b, pi]
            D = (ucoh[idx] == g).astype(float)
            att, psi_sub = cell_att(dyg, D, np.ones((idx.size, 1)), uw[idx], method)
            vals = psi_sub * (N / idx.size)
            for i, dy, w, m, n, sw, swy in parts:
                dy[:] = 0.0  # the cell's row of block i
                sel = (pi >= bounds[i]) & (pi < bounds[i + 1])
                dy[pi[sel] - bounds[i]] = vals[sel]
                used[i].append((slot[(c, i)], j))
        else:
            m1 = sum(x[6] for x in tp) / W1
            m0 = sum(x[6] for x in cp) / W0
            att = m1 - m0
            for i, dy, w, m, n, sw, swy in parts:
                mean, scale = (m1, N / W1) if i == cg else (m0, -N / W0)
                v = dy  # in place, in the block buffer
                v -= mean
                v *= scale
                if w is not None:
                    v *= w
                elif m is not None:
                    v[~m] = 0.0
                used[i].append((slot[(c, i)], j))
        est.append(float(att))
        rows.append((g, t, b, post, n1, n0, False))

    J = len(rows)
    psiT = np.zeros((J, N))
    V = np.zeros((J, J))
    for i, lst in used.items():
        if not lst:
            continue
        r_ = np.array([r for r, _ in lst])
        js = np.array([j for _, j in lst])
        B = buf[i] if np.array_equal(r_, np.arange(buf[i].shape[0])) else buf[i][r_]
        V[np.ix_(js, js)] += B @ B.T
        ids = order[bounds[i]:bounds[i + 1]]
        if np.array_equal(js, np.arange(js[0], js[0] + js.size)):
            psiT[js[0]:js[0] + js.size][:, ids] = B  # one 2-D scatter (a cohort's cells are adjacent)
        else:
            psiT[np.ix_(js, ids)] = B
    return est, rows, psiT.T, V, code
