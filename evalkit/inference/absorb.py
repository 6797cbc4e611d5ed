"""Absorb fixed effects: residualise columns on several sets of group dummies, never forming them.

Three exact paths and one iterative fallback:

* one fixed effect: weighted group demeaning (``np.bincount``);
* two fixed effects where one has few levels (time periods, cohorts; at most ``SMALL_FE``):
  demean within the large effect, then project the *small* effect's demeaned dummies out in
  cross-product space (Frisch–Waugh–Lovell). The small system ``D' M_U W D`` is assembled from the
  unit × period incidence matrix, so it is exact on unbalanced and weighted panels — no iteration,
  and it reduces to the textbook two-way demeaning on a balanced, unweighted panel;
* otherwise: alternating projections (method of alternating projections with a convergence
  tolerance on the sup-norm of the update), which match dummy-variable OLS to ~1e-10.

Every path works column-wise on an ``(n, m)`` float64 matrix; memory is O(n m).
"""
from __future__ import annotations

import logging
from dataclasses import dataclass

import numpy as np
import scipy.sparse as sp

from ..errors import EstimationError

__all__ = ["FixedEffects", "absorb", "AbsorbInfo", "group_sums", "group_means", "fe_rank"]

logger = logging.getLogger(__name__)

#: A fixed effect with at most this many levels may be projected in cross-product space.
SMALL_FE = 2_000
#: Cells (units x periods) per block when forming the dense incidence product (256 MB of float64).
_BLOCK_CELLS = 2**25


@dataclass(frozen=True)
class FixedEffects:
    """Integer-coded fixed effects (codes ``0..size-1``), one array per effect."""

    codes: tuple[np.ndarray, ...]
    names: tuple[str, ...]

    @property
    def sizes(self) -> tuple[int, ...]:
        return tuple(int(c.max()) + 1 if c.size else 0 for c in self.codes)

    def __len__(self) -> int:
        return len(self.codes)


@dataclass(frozen=True)
class AbsorbInfo:
    """How the fixed effects were absorbed and how many parameters they use."""

    method: str  # "none" | "intercept" | "one-way" | "two-way exact" | "alternating projections"
    #: parameters of the fixed effects (including the intercept they replace): their exact rank on the
    #: exact paths; with alternating projections R fixest's count, sum of levels - (number of effects - 1),
    #: an upper bound on the rank (fixest's default, ``fixef.force_exact=FALSE``)
    n_params: int
    iterations: int = 0
    converged: bool = True
    #: exact rank of the fixed-effect dummies (with the intercept) when known, else None (see :func:`fe_rank`)
    rank: int | None = None


def group_sums(codes: np.ndarray, Z: np.ndarray, size: int, w: np.ndarray | None = None) -> np.ndarray:
    """Sum the rows of ``Z`` (n,) or (n, m) within groups: returns (size,) or (size, m)."""
    if Z.ndim == 1:
        return np.bincount(codes, weights=Z if w is None else Z * w, minlength=size)
    out = np.empty((size, Z.shape[1]))
    for j in range(Z.shape[1]):
        col = Z[:, j]
        out[:, j] = np.bincount(codes, weights=col if w is None else col * w, minlength=size)
    return out


def group_means(codes: np.ndarray, Z: np.ndarray, size: int, w: np.ndarray | None = None) -> np.ndarray:
    """(Weighted) group means of the rows of ``Z``."""
    tot = np.bincount(codes, weights=w, minlength=size).astype(float)
    with np.errstate(invalid="ignore", divide="ignore"):
        s = group_sums(codes, Z, size, w)
        return s / (tot[:, None] if s.ndim == 2 else tot)


class _Groups:
    """Group sums and in-place broadcast-subtraction for one code array.

    When the rows are sorted by the codes in equal-length runs (a balanced panel sorted by unit
    then period, the usual layout of a claims extract) the work is done on a reshaped view with no
    temporaries; otherwise ``bincount``/``take`` into a reusable buffer (no fresh allocations per
    column, which dominate the cost at tens of millions of rows).
    """

    def __init__(self, codes: np.ndarray, size: int):
        self.codes, self.size = codes, size
        self.run_length = 0
        n = codes.size
        if size and n % size == 0:
            L = n // size
            if L >= 1 and codes[0] == 0 and codes[-1] == size - 1:
                v = codes.reshape(size, L)
                if np.array_equal(v[:, 0], np.arange(size)) and (L == 1 or bool((v == v[:, :1]).all())):
                    self.run_length = L
        self.starts = None
        if not self.run_length and n > 1 and bool((codes[1:] >= codes[:-1]).all()):
            # sorted, unequal runs (an unbalanced panel sorted by unit): sequential reduceat / repeat
            starts = np.flatnonzero(codes[1:] != codes[:-1]) + 1
            if starts.size + 1 == size and codes[0] == 0:
                self.starts = np.concatenate(([0], starts))
                self.lengths = np.diff(np.append(self.starts, n))

    def sums(self, v: np.ndarray) -> np.ndarray:
        if self.run_length:
            return v.reshape(self.size, self.run_length).sum(axis=1)
        if self.starts is not None:
            return np.add.reduceat(v, self.starts)
        return np.bincount(self.codes, weights=v, minlength=self.size)

    def subtract(self, col: np.ndarray, vals: np.ndarray, buf: np.ndarray) -> None:
        """``col -= vals[codes]`` in place."""
        if self.run_length:
            col.reshape(self.size, self.run_length)[...] -= vals[:, None]
        elif self.starts is not None:
            col -= np.repeat(vals, self.lengths)
        else:
            np.take(vals, self.codes, out=buf, mode="clip")  # valid codes; "raise" would buffer out
            col -= buf


def _inv_totals(codes: np.ndarray, size: int, w: np.ndarray | None) -> np.ndarray:
    tot = np.bincount(codes, weights=w, minlength=size).astype(float)
    with np.errstate(divide="ignore"):
        return np.where(tot > 0, 1.0 / tot, 0.0)


def _demean_inplace(codes: np.ndarray, Z: np.ndarray, size: int, w: np.ndarray | None,
                    inv_tot: np.ndarray | None = None, groups: _Groups | None = None,
                    buf: np.ndarray | None = None) -> np.ndarray:
    """Subtract (weighted) group means from every column of the Fortran-ordered ``Z``, in place."""
    inv = _inv_totals(codes, size, w) if inv_tot is None else inv_tot
    grp = _Groups(codes, size) if groups is None else groups
    buf = np.empty(Z.shape[0]) if buf is None else buf
    for j in range(Z.shape[1]):
        col = Z[:, j]
        if w is None:
            m = grp.sums(col)
        else:
            np.multiply(col, w, out=buf)
            m = grp.sums(buf)
        m *= inv
        grp.subtract(col, m, buf)
    return Z


def _two_way_exact(Z: np.ndarray, big: np.ndarray, nbig: int, small: np.ndarray, nsmall: int,
                   w: np.ndarray | None) -> tuple[np.ndarray, int]:
    """Residualise the Fortran-ordered ``Z`` on big + small dummies exactly, in place (FWL)."""
    inv_big = _inv_totals(big, nbig, w)
    gbig = _Groups(big, nbig)
    buf = np.empty(Z.shape[0])
    Zt = _demean_inplace(big, Z, nbig, w, inv_big, gbig, buf)
    # D' W M_big Z  (nsmall, m)
    C = group_sums(small, Zt, nsmall, w)
    # D' W M_big D = diag(w_t) - A' diag(1/w_u) A,  A[u, t] = sum of weights of unit u in period t
    wsum_small = np.bincount(small, weights=w, minlength=nsmall).astype(float)
    G = np.diag(wsum_small)
    A_all = None  # the incidence matrix, kept when it is built in one piece (reused below)
    if nsmall <= 64:
        # dense incidence in blocks of units: BLAS speed, bounded memory (repeated pairs add up)
        block = max(1, _BLOCK_CELLS // nsmall)
        for start in range(0, nbig, block):
            stop = min(start + block, nbig)
            if nbig > block:
                sel = (big >= start) & (big < stop)
                b, s, ww = big[sel] - start, small[sel], (None if w is None else w[sel])
            else:
                b, s, ww = big, small, w
            A = np.bincount(b * nsmall + s, weights=ww, minlength=(stop - start) * nsmall).astype(float)
            A = A.reshape(stop - start, nsmall)
            G -= A.T @ (A * inv_big[start:stop, None])
            if stop - start == nbig:
                A_all = A
    else:
        wt = np.ones(Z.shape[0]) if w is None else w
        A = sp.csr_matrix((wt, (big, small)), shape=(nbig, nsmall))
        G -= (A.T @ sp.diags(inv_big) @ A).toarray()
        A_all = A
    # G is PSD with a null space (at least the constant): minimum-norm solution
    vals, vecs = np.linalg.eigh(G)
    keep = vals > vals.max() * 1e-11 if vals.size and vals.max() > 0 else np.zeros(vals.shape, bool)
    Pi = vecs[:, keep] @ ((vecs[:, keep].T @ C) / vals[keep][:, None])
    # Zt -= M_big (D Pi): the small-effect fit, demeaned within the big effect
    same_pattern = gbig.run_length == nsmall and bool(np.array_equal(small[:nsmall], np.arange(nsmall))) and bool(
        np.array_equal(small.reshape(nbig, nsmall), np.broadcast_to(np.arange(nsmall), (nbig, nsmall))))
    # unit means of the small-effect fit: (A Pi) / w_u from the incidence matrix when it was kept
    AP = None
    if A_all is not None and not same_pattern:
        # (Pi' A')' rather than A Pi: OpenBLAS is ~20x slower on the tall C-ordered product here
        AP = (np.asarray(A_all @ Pi) if sp.issparse(A_all) else (Pi.T @ A_all.T).T) * inv_big[:, None]
    for j in range(Zt.shape[1]):
        col = Zt[:, j]
        if same_pattern and w is None:
            # balanced, sorted by unit then period: the closed form of two-way demeaning
            col.reshape(nbig, nsmall)[...] -= Pi[:, j][None, :] - Pi[:, j].mean()
            continue
        np.take(Pi[:, j], small, out=buf, mode="clip")
        col -= buf
        if AP is not None:
            m = AP[:, j]
        else:
            f = np.take(Pi[:, j], small)
            if w is not None:
                f *= w
            m = gbig.sums(f)
            m *= inv_big
        gbig.subtract(col, -m, buf)
    return Zt, int(keep.sum())


def _alternating_projections(Z: np.ndarray, fe: FixedEffects, w: np.ndarray | None, tol: float,
                             maxiter: int) -> tuple[np.ndarray, int, bool]:
    out = Z  # already a private Fortran-ordered copy
    sizes = fe.sizes
    invs = [_inv_totals(c, n, w) for c, n in zip(fe.codes, sizes)]
    groups = [_Groups(c, n) for c, n in zip(fe.codes, sizes)]
    buf = np.empty(Z.shape[0])
    scale = np.maximum(np.abs(Z).max(axis=0), 1.0)
    for it in range(1, maxiter + 1):
        before = out.copy(order="F")
        for codes, size, inv, grp in zip(fe.codes, sizes, invs, groups):
            _demean_inplace(codes, out, size, w, inv, grp, buf)
        change = np.abs(out - before).max(axis=0) / scale
        if np.all(change < tol):
            return out, it, True
    return out, maxiter, False


def _fe_rank_generic(fe: FixedEffects) -> int:
    # fixest's convention for more than two effects: one redundant level per additional effect
    return sum(fe.sizes) - (len(fe) - 1)


#: :func:`fe_rank` gives up (returns None) when the effects other than the largest have more levels
#: than this in total (a dense symmetric eigenproblem of that size).
MAX_RANK_DENSE = SMALL_FE


def fe_rank(fe: FixedEffects, max_dense: int | None = None) -> int | None:
    """Exact rank of the fixed-effect dummy matrix ``[D_1 ... D_m]`` (it spans the intercept).

    * one effect: its number of levels;
    * two effects: levels of both minus the connected components of their bipartite graph (exact,
      combinatorial);
    * three or more: the number of levels of the largest effect plus the rank of the Schur complement
      of its (diagonal) block in the Gram matrix of all dummies, ``S = R'R - R'D(D'D)^{-1}D'R`` with
      ``D`` the largest effect's dummies and ``R`` the others' — an ``r x r`` matrix, ``r`` the other
      effects' levels in total, built from sparse incidence counts in O(n). Its rank is read off the
      eigenvalues after Jacobi scaling; ``None`` when ``r > max_dense`` (default
      :data:`MAX_RANK_DENSE`) or when an eigenvalue falls
      between the clear-zero and clear-non-zero thresholds (1e-9 and 1e-6 of the largest), so a
      returned rank is never a guess.

    The rank does not depend on (positive) weights. R fixest by default counts
    ``sum(levels) - (m - 1)`` instead (exact only when the effects overlap no more than that), and
    ``lm`` with dummies uses the rank.
    """
    sizes = fe.sizes
    m = len(fe)
    if m == 0:
        return 1
    if m == 1:
        return sizes[0]
    n = fe.codes[0].size
    if m == 2:
        from scipy.sparse.csgraph import connected_components

        a, b = fe.codes
        na, nb = sizes
        g = sp.coo_matrix((np.ones(n, dtype=np.int8), (a, b + na)), shape=(na + nb, na + nb)).tocsr()
        n_comp = connected_components(g, directed=False)[0]
        return int(na + nb - n_comp)
    ib = int(np.argmax(sizes))
    big, nbig = fe.codes[ib], sizes[ib]
    others = [j for j in range(m) if j != ib]
    r = sum(sizes[j] for j in others)
    if r > (MAX_RANK_DENSE if max_dense is None else max_dense):
        return None
    offsets = np.cumsum([0] + [sizes[j] for j in others[:-1]])
    # R'R: diagonal blocks are level counts, off-diagonal blocks pair counts (dense bincounts)
    S = np.zeros((r, r))
    for a_pos, (ja, oa) in enumerate(zip(others, offsets)):
        ca, na = fe.codes[ja], sizes[ja]
        S[oa:oa + na, oa:oa + na] += np.diag(np.bincount(ca, minlength=na).astype(float))
        for jb, ob in zip(others[a_pos + 1:], offsets[a_pos + 1:]):
            cb, nb = fe.codes[jb], sizes[jb]
            blk = np.bincount(ca * nb + cb, minlength=na * nb).reshape(na, nb).astype(float)
            S[oa:oa + na, ob:ob + nb] += blk
            S[ob:ob + nb, oa:oa + na] += blk.T
    # minus A' diag(1/n_u) A, A[u, l] = rows of big level u at level l of the others (sparse)
    cols = np.concatenate([fe.codes[j] + off for j, off in zip(others, offsets)])
    A = sp.coo_matrix((np.ones(cols.size), (np.tile(big, len(others)), cols)), shape=(nbig, r)).tocsr()
    cnt = np.bincount(big, minlength=nbig).astype(float)
    inv = np.where(cnt > 0, 1.0 / np.maximum(cnt, 1.0), 0.0)
    S -= np.asarray((A.T @ sp.diags(inv) @ A).todense())
    S = 0.5 * (S + S.T)
    d = np.diag(S).copy()
    scale = max(float(d.max()), 1.0)
    live = d > 1e-12 * scale  # a zero diagonal: that level's dummy lies in the largest effect's span
    if not live.any():
        return int(nbig)
    sq = 1.0 / np.sqrt(d[live])
    vals = np.linalg.eigvalsh(S[np.ix_(live, live)] * sq[:, None] * sq[None, :])
    top = max(float(vals.max()), 1e-300)
    zero = vals < 1e-9 * top
    clear = vals > 1e-6 * top
    if not np.all(zero | clear):
        logger.debug("fe_rank: eigenvalues between the zero and non-zero thresholds; rank not determined")
        return None
    return int(nbig + np.count_nonzero(clear))


def absorb(Z: np.ndarray, fe: FixedEffects | None, weights: np.ndarray | None = None, *,
           tol: float = 1e-12, maxiter: int = 100_000, overwrite: bool = False) -> tuple[np.ndarray, AbsorbInfo]:
    """Residualise the columns of ``Z`` on the fixed effects (and an intercept).

    Parameters
    ----------
    Z : ndarray of shape (n, m)
        Columns to residualise (outcome and regressors).
    fe : FixedEffects or None
        ``None`` or empty: only the intercept is partialled out.
    weights : ndarray of shape (n,) or None
        Weighted least-squares projection when given.
    overwrite : bool, default=False
        Work in place on ``Z`` when it already is a Fortran-ordered float64 array (saves a copy).
    tol : float, default=1e-12
        Alternating projections stop when the largest update, relative to the column's scale,
        is below ``tol`` (only used for three or more effects, or two large ones).

    Returns
    -------
    Z_resid : ndarray of shape (n, m)
    info : AbsorbInfo
    """
    Z = np.array(Z, dtype=np.float64, order="F", copy=not overwrite)
    if fe is None or len(fe) == 0:
        if weights is None:
            return Z - Z.mean(axis=0), AbsorbInfo("intercept", 1, rank=1)
        return Z - (weights @ Z) / weights.sum(), AbsorbInfo("intercept", 1, rank=1)
    sizes = fe.sizes
    if len(fe) == 1:
        return _demean_inplace(fe.codes[0], Z, sizes[0], weights), AbsorbInfo("one-way", sizes[0], rank=sizes[0])
    if len(fe) == 2 and min(sizes) <= SMALL_FE:
        ib = int(np.argmax(sizes))
        big, small = fe.codes[ib], fe.codes[1 - ib]
        out, rank_small = _two_way_exact(Z, big, sizes[ib], small, sizes[1 - ib], weights)
        return out, AbsorbInfo("two-way exact", sizes[ib] + rank_small, rank=sizes[ib] + rank_small)
    out, it, ok = _alternating_projections(Z, fe, weights, tol, maxiter)
    if not ok:
        raise EstimationError(
            f"Absorbing the fixed effects {list(fe.names)} did not converge in {maxiter} iterations "
            f"(tol={tol}). Check for nearly disconnected groups, or raise maxiter."
        )
    logger.debug("alternating projections converged in %d iterations", it)
    return out, AbsorbInfo("alternating projections", _fe_rank_generic(fe), it, ok)
