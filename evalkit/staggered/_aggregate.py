"""Aggregations of ATT(g,t) (R ``did::aggte``) with influence functions that include the
estimation of the aggregation weights."""
from __future__ import annotations

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


def _wif(keep: np.ndarray, pg: np.ndarray, d: AggregationDesign) -> np.ndarray:
    """Influence function of the estimated weights pg[keep] / sum(pg[keep]) (N x |keep|)."""
    ind = d.unit_w[:, None] * (d.unit_cohort[:, None] == d.g[keep][None, :]) - pg[keep][None, :]
    s = pg[keep].sum()
    return ind / s - ind.sum(axis=1, keepdims=True) * (pg[keep] / s**2)[None, :]


def _combine(d: AggregationDesign, keep: np.ndarray, weights: np.ndarray, pg: np.ndarray | None):
    """Weighted average of cells ``keep`` and its influence function (with weight estimation if pg)."""
    est = float(np.sum(d.att[keep] * weights))
    inf = d.psi[:, keep] @ weights
    if pg is not None:
        inf = inf + _wif(keep, pg, d) @ d.att[keep]
    return est, inf


def aggregate_cells(d: AggregationDesign, kind: str, min_e=None, max_e=None, balance_e=None):
    """Return ``(components, est, inf)``.

    ``components`` is a list of ``(label, value)`` pairs (``value`` an event time, cohort or period
    code; ``None`` for the overall row), ``est`` the estimates (overall first) and ``inf`` the
    ``(N, 1 + K)`` influence functions.
    """
    N = d.psi.shape[0]
    pg = np.array([np.mean(d.unit_w * (d.unit_cohort == gj)) for gj in d.g])
    max_e_ = np.inf if max_e is None else max_e
    min_e_ = -np.inf if min_e is None else min_e
    post = d.g <= d.t
    e_all = d.t - d.g
    comps, ests, infs = [], [], []

    if kind == "simple":
        keep = np.flatnonzero(post & (e_all <= max_e_))
        if keep.size == 0:
            raise EstimationError("No post-treatment ATT(g,t) cells to aggregate.")
        w = pg[keep] / pg[keep].sum()
        est, inf = _combine(d, keep, w, pg)
        return [("overall", None)], np.array([est]), inf[:, None]

    if kind == "group":
        glist = np.unique(d.g)
        pgg = np.array([np.mean(d.unit_w * (d.unit_cohort == gg)) for gg in glist])
        att_g, inf_g, ok = [], [], []
        for gg in glist:
            keep = np.flatnonzero((d.g == gg) & post & (e_all <= max_e_))
            if keep.size == 0:
                att_g.append(np.nan)
                inf_g.append(np.zeros(N))
                ok.append(False)
                continue
            est, inf = _combine(d, keep, np.full(keep.size, 1.0 / keep.size), None)
            att_g.append(est)
            inf_g.append(inf)
            ok.append(True)
        att_g, inf_g, ok = np.array(att_g), np.column_stack(inf_g), np.array(ok)
        sub = AggregationDesign(att_g[ok], inf_g[:, ok], glist[ok], glist[ok], d.unit_cohort, d.unit_w, d.last_period)
        idx = np.arange(ok.sum())
        w = pgg[ok] / pgg[ok].sum()
        est, inf = _combine(sub, idx, w, pgg[ok])
        comps = [("overall", None)] + [("group", float(gg)) for gg in glist]
        return comps, np.concatenate([[est], att_g]), np.column_stack([inf, inf_g])

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
        att_e, inf_e = [], []
        for e in eseq:
            keep = np.flatnonzero((e_all == e) & include)
            w = pg[keep] / pg[keep].sum()
            est, inf = _combine(d, keep, w, pg)
            att_e.append(est)
            inf_e.append(inf)
        att_e, inf_e = np.array(att_e), np.column_stack(inf_e)
        epos = eseq >= 0
        if not epos.any():
            est, inf = np.nan, np.full(N, np.nan)
        else:
            est = float(att_e[epos].mean())
            inf = inf_e[:, epos].mean(axis=1)
        comps = [("overall", None)] + [("event_time", float(e)) for e in eseq]
        return comps, np.concatenate([[est], att_e]), np.column_stack([inf, inf_e])

    if kind == "calendar":
        tlist = np.unique(d.t)
        tlist = tlist[tlist >= d.g.min()]
        att_t, inf_t, tl = [], [], []
        for tt in tlist:
            keep = np.flatnonzero((d.t == tt) & post)
            if keep.size == 0:
                continue
            w = pg[keep] / pg[keep].sum()
            est, inf = _combine(d, keep, w, pg)
            att_t.append(est)
            inf_t.append(inf)
            tl.append(tt)
        if not tl:
            raise EstimationError("No post-treatment ATT(g,t) cells to aggregate.")
        att_t, inf_t = np.array(att_t), np.column_stack(inf_t)
        est = float(att_t.mean())
        inf = inf_t.mean(axis=1)
        comps = [("overall", None)] + [("time", float(tt)) for tt in tl]
        return comps, np.concatenate([[est], att_t]), np.column_stack([inf, inf_t])

    raise ValueError(kind)  # pragma: no cover - checked by the caller
