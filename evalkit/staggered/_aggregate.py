"""Aggregations of ATT(g,t) (R ``did::aggte``) with influence functions that include the
estimation of the aggregation weights."""
from __future__ import annotations

import weakref
from dataclasses import dataclass

import numpy as np

from ..errors import EstimationError

__all__ = ["AggregationDesign", "aggregate_cells"]


@dataclass(frozen=True)
class AggregationDesign:
    att: np.ndarray  # (J,)
    psi: np.ndarray  # (N, J) unit-level influence functions
    g: np.ndarray  # (J,) cohort period codes
    t: np.ndarray  # (J,) period codes
    unit_cohort: np.ndarray  # (N,) cohort codes, inf = never
    unit_w: np.ndarray  # (N,) unit weights, mean 1
    last_period: int


#: unit-cohort codes computed by ``att_gt`` (``id(unit_cohort) -> (ref, ref of unit_w, cohorts, codes)``), so
#: that aggregations of a result need not recompute them; entries die with the result's arrays.
_COHORT_CODES: dict = {}


def register_cohort_codes(unit_cohort: np.ndarray, unit_w: np.ndarray, cvals: np.ndarray, code: np.ndarray) -> None:
    """Remember that ``unit_cohort == cvals[code]`` (read-only arrays of an ``att_gt`` result)."""
    key = id(unit_cohort)
    _COHORT_CODES[key] = (weakref.ref(unit_cohort, lambda _r, k=key: _COHORT_CODES.pop(k, None)),
                          weakref.ref(unit_w), np.asarray(cvals, dtype=float), code)


def _cohort_index(d: AggregationDesign):
    """Distinct cohorts of the cells, each unit's index among them (len = not a cell cohort), and
    ``P(G = g)`` per distinct cohort (``mean(w * (G == g))``)."""
    gv = np.unique(d.g)
    hit = _COHORT_CODES.get(id(d.unit_cohort))
    if hit is not None and hit[0]() is d.unit_cohort and hit[1]() is d.unit_w:
        cvals, code_all = hit[2], hit[3]
        at = np.minimum(np.searchsorted(gv, cvals), gv.size - 1)
        table = np.where(gv[at] == cvals, at, gv.size)
        code = np.take(table, code_all)
    else:
        at = np.minimum(np.searchsorted(gv, d.unit_cohort), gv.size - 1)
        code = np.where(gv[at] == d.unit_cohort, at, gv.size)
    n = d.unit_cohort.shape[0]
    if bool(np.all(d.unit_w == 1.0)):
        pgv = np.bincount(code, minlength=gv.size + 1)[:gv.size] / n
    else:
        pgv = np.array([np.mean(d.unit_w * (d.unit_cohort == gj)) for gj in gv])
    return gv, code, pgv


def _combine_many(d: AggregationDesign, specs, pg: np.ndarray | None, coh=None, out=None):
    """Weighted averages of cells, several at once: ``specs`` = list of ``(keep, weights)``.

    Returns the estimates ``(K,)`` and influence functions ``(N, K)`` (Fortran order): ``psi @ W``
    in one pass over ``psi`` plus, if ``pg``, the influence function of the estimated weights
    ``pg[keep] / sum(pg[keep])``. With ``ind_ij = w_i 1{G_i = g_j} - pg_j`` and ``s = sum pg[keep]``
    that term is ``(ind @ att) / s - ind.sum(1) * (pg @ att) / s**2``, which depends on the unit
    only through its weight and cohort: it is evaluated per cohort and gathered.
    """
    J, K = d.att.shape[0], len(specs)
    Wm = np.zeros((J, K))
    est = np.empty(K)
    for c, (keep, weights) in enumerate(specs):
        Wm[keep, c] = weights
        est[c] = float(np.sum(d.att[keep] * weights))
    inf = np.empty((d.psi.shape[0], K), order="F") if out is None else out
    np.matmul(d.psi, Wm, out=inf)
    if not np.isfinite(inf.sum(axis=0)).all():  # a non-finite cell would leak through its zero weight
        for c, (keep, weights) in enumerate(specs):
            inf[:, c] = d.psi[:, keep] @ weights
    if pg is not None and d.g.size:
        gv, code, _ = coh if coh is not None else _cohort_index(d)
        A = np.zeros((gv.size + 1, K))  # sum of att over kept cells of the cohort
        C = np.zeros((gv.size + 1, K))  # number of kept cells of the cohort
        s = np.empty(K)
        q = np.empty(K)
        pa = np.empty(K)
        gi = np.searchsorted(gv, d.g)
        for c, (keep, _) in enumerate(specs):
            np.add.at(A[:, c], gi[keep], d.att[keep])
            np.add.at(C[:, c], gi[keep], 1.0)
            s[c] = pg[keep].sum()
            pa[c] = pg[keep] @ d.att[keep]
            q[c] = (pg[keep] / s[c] ** 2) @ d.att[keep]
        # wif_i = (w_i A_c - pa) / s - (w_i C_c - s) q = w_i (A_c / s - C_c q) + (s q - pa / s)
        H = A / s - C * q
        const = s * q - pa / s
        unweighted = bool(np.all(d.unit_w == 1.0))
        for c in range(K):
            col = np.take(H[:, c], code)
            if not unweighted:
                col *= d.unit_w
            col += const[c]
            inf[:, c] += col
    return est, inf


def _combine(d: AggregationDesign, keep: np.ndarray, weights: np.ndarray, pg: np.ndarray | None, coh=None):
    """Weighted average of cells ``keep`` and its influence function (with weight estimation if pg)."""
    est, inf = _combine_many(d, [(keep, weights)], pg, coh)
    return float(est[0]), inf[:, 0]


def aggregate_cells(d: AggregationDesign, kind: str, min_e=None, max_e=None, balance_e=None):
    """Return ``(components, est, inf)``.

    ``components`` is a list of ``(label, value)`` pairs (``value`` an event time, cohort or period
    code; ``None`` for the overall row), ``est`` the estimates (overall first) and ``inf`` the
    ``(N, 1 + K)`` influence functions.
    """
    N = d.psi.shape[0]
    coh = _cohort_index(d)
    gv, _, pgv = coh
    pg = pgv[np.searchsorted(gv, d.g)]  # P(G = g) of each cell's cohort
    max_e_ = np.inf if max_e is None else max_e
    min_e_ = -np.inf if min_e is None else min_e
    post = d.g <= d.t
    e_all = d.t - d.g

    if kind == "simple":
        keep = np.flatnonzero(post & (e_all <= max_e_))
        if keep.size == 0:
            raise EstimationError("No post-treatment ATT(g,t) cells to aggregate.")
        w = pg[keep] / pg[keep].sum()
        est, inf = _combine_many(d, [(keep, w)], pg, coh)
        return [("overall", None)], est, inf

    if kind == "group":
        glist = np.unique(d.g)
        pgg = np.array([np.mean(d.unit_w * (d.unit_cohort == gg)) for gg in glist])
        specs, ok = [], []
        for gg in glist:
            keep = np.flatnonzero((d.g == gg) & post & (e_all <= max_e_))
            ok.append(keep.size > 0)
            if keep.size:
                specs.append((keep, np.full(keep.size, 1.0 / keep.size)))
        ok = np.array(ok)
        att_g = np.full(glist.size, np.nan)
        inf_g = np.zeros((N, glist.size), order="F")
        if specs:
            e_ok, i_ok = _combine_many(d, specs, None)
            att_g[ok] = e_ok
            inf_g[:, ok] = i_ok
        sub = AggregationDesign(att_g[ok], inf_g[:, ok], glist[ok], glist[ok], d.unit_cohort, d.unit_w, d.last_period)
        idx = np.arange(ok.sum())
        w = pgg[ok] / pgg[ok].sum()
        est, inf = _combine(sub, idx, w, pgg[ok])
        comps = [("overall", None)] + [("group", float(gg)) for gg in glist]
        out = np.empty((N, 1 + glist.size), order="F")
        out[:, 0] = inf
        out[:, 1:] = inf_g
        return comps, np.concatenate([[est], att_g]), out

    if kind == "dynamic":
        include = np.ones(d.g.shape[0], bool)
        eseq = np.unique(e_all)
        if balance_e is not None:
            include = (d.last_period - d.g) >= balance_e
            eseq = np.unique(e_all[include])
            eseq = eseq[(eseq <= balance_e) & (eseq >= balance_e - d.last_period)]
        eseq = eseq[(eseq >= min_e_) & (eseq <= max_e_)]
        if eseq.size == 0:
            raise EstimationError("No event times left to aggregate: check min_e, max_e and balance_e.")
        specs = []
        for e in eseq:
            keep = np.flatnonzero((e_all == e) & include)
            specs.append((keep, pg[keep] / pg[keep].sum()))
        out = np.empty((N, 1 + eseq.size), order="F")
        att_e, inf_e = _combine_many(d, specs, pg, coh, out=out[:, 1:])
        epos = eseq >= 0
        if not epos.any():
            est = np.nan
            out[:, 0] = np.nan
        else:
            est = float(att_e[epos].mean())
            np.matmul(inf_e, np.where(epos, 1.0 / epos.sum(), 0.0), out=out[:, 0])
            if not np.isfinite(out[:, 0].sum()):
                out[:, 0] = inf_e[:, epos].mean(axis=1)
        comps = [("overall", None)] + [("event_time", float(e)) for e in eseq]
        return comps, np.concatenate([[est], att_e]), out

    if kind == "calendar":
        tlist = np.unique(d.t)
        tlist = tlist[tlist >= d.g.min()]
        specs, tl = [], []
        for tt in tlist:
            keep = np.flatnonzero((d.t == tt) & post)
            if keep.size == 0:
                continue
            specs.append((keep, pg[keep] / pg[keep].sum()))
            tl.append(tt)
        if not tl:
            raise EstimationError("No post-treatment ATT(g,t) cells to aggregate.")
        out = np.empty((N, 1 + len(tl)), order="F")
        att_t, inf_t = _combine_many(d, specs, pg, coh, out=out[:, 1:])
        est = float(att_t.mean())
        np.matmul(inf_t, np.full(len(tl), 1.0 / len(tl)), out=out[:, 0])
        comps = [("overall", None)] + [("time", float(tt)) for tt in tl]
        return comps, np.concatenate([[est], att_t]), out

    raise ValueError(kind)  # pragma: no cover - checked by the caller
