"""Greedy nearest-neighbour matching (MatchIt ``method = "nearest"`` conventions).

Treated units are processed in the order given by ``m_order``; each takes the nearest control
still available (without replacement) that lies within the caliper and in its exact-match
group. With ``ratio > 1`` and no replacement, matching runs in rounds: every treated unit gets
its first control before any gets its second (as MatchIt). With a scalar distance (a
propensity score) controls are searched outward from the treated unit's position among all
units sorted by distance (stable sort, ties in data order), as MatchIt's C++ matcher does; the
loop over treated units is inherently sequential, everything else is vectorised.
"""
from __future__ import annotations

import numpy as np

__all__ = ["greedy_scalar", "greedy_matrix", "treated_order"]


def treated_order(d: np.ndarray, treated_idx: np.ndarray, m_order: str, rng: np.random.Generator | None) -> np.ndarray:
    """Processing order of the treated units (indices into the full data)."""
    if m_order == "data":
        return treated_idx
    if m_order == "largest":
        return treated_idx[np.argsort(-d[treated_idx], kind="stable")]
    if m_order == "smallest":
        return treated_idx[np.argsort(d[treated_idx], kind="stable")]
    if m_order == "random":
        return treated_idx[rng.permutation(len(treated_idx))]
    raise ValueError(m_order)


class _Avail:
    """Next available position to the left/right in a sorted array (union-find, path halving)."""

    def __init__(self, n: int):
        self.right = np.arange(n + 1)  # n = sentinel "none"
        self.left = np.arange(-1, n) + 1  # shifted: left[i+1] -> position; 0 = sentinel
        self.n = n

    def find_right(self, i: int) -> int:
        r = self.right
        while r[i] != i:
            r[i] = r[r[i]]
            i = r[i]
        return i  # == n when none

    def find_left(self, i: int) -> int:
        lft = self.left
        j = i + 1
        while lft[j] != j:
            lft[j] = lft[lft[j]]
            j = lft[j]
        return j - 1  # == -1 when none

    def remove(self, i: int) -> None:
        self.right[i] = i + 1
        self.left[i + 1] = i


def greedy_scalar(
    d: np.ndarray,
    treat: np.ndarray,
    order: np.ndarray,
    ratio: int,
    replace: bool,
    caliper: float | None,
    groups: np.ndarray | None,
    eligible: np.ndarray,
) -> dict[int, list[int]]:
    """Match on a scalar distance ``d``; returns {treated index: [control indices in match order]}."""
    n = len(d)
    if groups is None:
        groups = np.zeros(n, dtype=np.int64)
    matches: dict[int, list[int]] = {int(t): [] for t in order}
    cal = np.inf if caliper is None else float(caliper)
    # per exact-match group: the controls sorted by distance (stable: ties in data order)
    state = {}
    for g in np.unique(groups[order]) if len(order) else []:
        ctrl = np.flatnonzero((treat == 0) & eligible & (groups == g))
        ctrl = ctrl[np.argsort(d[ctrl], kind="stable")]
        state[g] = (ctrl, d[ctrl], _Avail(len(ctrl)))

    def position(t: int, cd: np.ndarray, ctrl: np.ndarray) -> int:
        # where treated t sits among the sorted controls in the stable sort of all units
        lo = int(np.searchsorted(cd, d[t], side="left"))
        hi = int(np.searchsorted(cd, d[t], side="right"))
        if hi > lo:  # controls tied with t: those earlier in data order come first
            lo += int(np.sum(ctrl[lo:hi] < t))
        return lo

    pos_cache = {}
    rounds = 1 if replace else ratio
    per_round = ratio if replace else 1
    for r in range(rounds):
        for t in order:
            t = int(t)
            if not replace and len(matches[t]) < r:
                # this treated unit found no control in an earlier round: it gets no more
                continue
            g = groups[t]
            if g not in state:
                continue
            ctrl, cd, av = state[g]
            if len(ctrl) == 0:
                continue
            if t not in pos_cache:
                pos_cache[t] = position(t, cd, ctrl)
            p = pos_cache[t]
            taken: list[int] = []
            lp = av.find_left(p - 1)
            rp = av.find_right(p)
            local_left, local_right = lp, rp
            for _k in range(per_round):
                if replace:
                    lp, rp = local_left, local_right
                if lp < 0 and rp >= len(ctrl):
                    break
                dl = d[t] - cd[lp] if lp >= 0 else np.inf
                dr = cd[rp] - d[t] if rp < len(ctrl) else np.inf
                if dl < dr:
                    pick, dist = lp, dl
                else:
                    pick, dist = rp, dr
                if dist > cal:
                    break
                taken.append(pick)
                if replace:
                    # step past the pick locally (controls stay available to other treated units)
                    if pick == lp:
                        local_left = lp - 1
                    else:
                        local_right = rp + 1
                else:
                    av.remove(pick)
                    lp = av.find_left(p - 1)
                    rp = av.find_right(p)
            matches[t].extend(int(ctrl[i]) for i in taken)
    return matches


def greedy_matrix(
    X: np.ndarray,
    VI: np.ndarray,
    treat: np.ndarray,
    order: np.ndarray,
    ratio: int,
    replace: bool,
    caliper_var: np.ndarray | None,
    caliper: float | None,
    groups: np.ndarray | None,
    eligible: np.ndarray,
) -> dict[int, list[int]]:
    """Greedy matching on the Mahalanobis distance sqrt((x_t - x_c)' VI (x_t - x_c)).

    Ties go to the control first in data order. ``caliper_var``/``caliper`` optionally restrict
    matches to |caliper_var_t - caliper_var_c| <= caliper (e.g. a propensity-score caliper).
    """
    n = X.shape[0]
    if groups is None:
        groups = np.zeros(n, dtype=np.int64)
    L = np.linalg.cholesky(VI + 1e-300 * np.eye(VI.shape[0])) if np.all(np.linalg.eigvalsh(VI) > 0) else None
    if L is not None:
        Z = X @ L
    else:  # generalised inverse: use its symmetric square root
        vals, vecs = np.linalg.eigh(VI)
        Z = X @ (vecs * np.sqrt(np.clip(vals, 0, None)))
    ctrl_all = np.flatnonzero((treat == 0) & eligible)
    avail = np.ones(n, dtype=bool)
    matches: dict[int, list[int]] = {int(t): [] for t in order}
    rounds = 1 if replace else ratio
    per_round = ratio if replace else 1
    for r in range(rounds):
        for t in order:
            t = int(t)
            if not replace and len(matches[t]) < r:
                continue
            cand = ctrl_all[(groups[ctrl_all] == groups[t]) & (avail[ctrl_all] | replace)]
            if caliper is not None:
                cand = cand[np.abs(caliper_var[cand] - caliper_var[t]) <= caliper]
            if len(cand) == 0:
                continue
            dist = np.sqrt(np.sum((Z[cand] - Z[t]) ** 2, axis=1))
            k = min(per_round, len(cand))
            pick = cand[np.argsort(dist, kind="stable")[:k]]
            matches[t].extend(int(c) for c in pick)
            if not replace:
                avail[pick] = False
    return matches
