"""Greedy exclusion (non-maximum suppression) of the candidates, exact and O(K).

A candidate becomes a *peak* iff no earlier peak lies within Euclidean distance ``<= d``
(cryoCAT's ``particle_diameter``; it acts as a radius). Two grids answer "is a peak within
d?": a coarse grid of cells entirely covered by some peak's ball (one lookup settles most
candidates) and a grid holding at most one peak per cell for the exact test of the rest; a
KD-tree replaces the latter for tiny distances on huge maps.
"""
import math
from typing import Callable, Optional, Sequence, TYPE_CHECKING, Tuple

import numpy as np
from numpy.typing import ArrayLike

from .errors import PeakPickingError

if TYPE_CHECKING:
    from scipy.spatial import cKDTree

__all__ = ["greedy_exclusion", "count_within"]


def _ball_offsets_cells(d, cell):
    """Cell offsets that may hold a point within ``d`` of a point in the centre cell."""
    R = int((cell - 1 + math.floor(d)) // cell)
    r = np.arange(-R, R + 1)
    o = np.stack(np.meshgrid(r, r, r, indexing="ij"), -1).reshape(-1, 3)
    gap = np.maximum(0, (np.abs(o) - 1) * cell + 1)
    keep = (gap ** 2).sum(1) <= d * d
    return o[keep], R


def _cell_index(pts, side, R, strides, dtype):
    """Flat index of the (padded) grid cell of each point, column by column (no (n, 3)
    temporaries)."""
    side = pts.dtype.type(side)
    out = (pts[:, 0] // side + R).astype(dtype, copy=False) * dtype(strides[0])
    out += (pts[:, 1] // side + R).astype(dtype, copy=False) * dtype(strides[1])
    out += (pts[:, 2] // side + R).astype(dtype, copy=False)
    return out


class _PeakGrid:
    """Peaks on a grid of cells of side ``c`` with ``(c - 1) sqrt(3) <= d``: two voxels of one
    cell are at most ``d`` apart, so a cell holds at most one peak (peaks are more than ``d``
    apart). Answers "is any peak within d" for many points at once (one gather per cell that
    can hold such a peak)."""

    def __init__(self, shape, d):
        self.d2 = float(d) * float(d)
        self.c = self.side(d)
        self.offsets, self.R = _ball_offsets_cells(d, self.c)
        dims = [-(-s // self.c) + 2 * self.R for s in shape]
        self.dims = dims
        self.grid = np.full(dims, -1, dtype=np.int32)
        self.gflat = self.grid.reshape(-1)
        self.itype = np.int32 if self.grid.size < (1 << 31) else np.int64
        self.strides = (dims[1] * dims[2], dims[2], 1)
        self.off_flat = (self.offsets * np.array(self.strides)).sum(1).astype(self.itype)
        self.coords = np.empty((0, 3), np.int32)

    @staticmethod
    def side(d):
        c = int(math.floor(d / math.sqrt(3.0))) + 1
        while c > 1 and (c - 1) * math.sqrt(3.0) > d:
            c -= 1
        return max(1, c)

    @staticmethod
    def size_for(shape, d):
        c = _PeakGrid.side(d)
        R = int((c - 1 + math.floor(d)) // c)
        return int(np.prod([-(-s // c) + 2 * R for s in shape]))

    def _cells(self, pts):
        return _cell_index(pts, self.c, self.R, self.strides, self.itype)

    def add(self, pts):
        n0 = len(self.coords)
        self.coords = np.concatenate([self.coords, pts.astype(self.coords.dtype)])
        self.gflat[self._cells(pts)] = np.arange(n0, n0 + len(pts), dtype=np.int32)

    def near(self, pts, block=16384):
        """Bool per point: some peak lies within distance <= d."""
        out = np.zeros(len(pts), bool)
        if len(self.coords) == 0 or len(pts) == 0:
            return out
        for b0 in range(0, len(pts), block):
            p = pts[b0:b0 + block]
            ids = self.gflat[self._cells(p)[:, None] + self.off_flat[None, :]]
            qi, oi = np.nonzero(ids >= 0)
            if qi.size == 0:
                continue
            diff = (p[qi] - self.coords[ids[qi, oi]]).astype(np.int64)
            hit = (diff * diff).sum(1) <= self.d2
            out[b0 + qi[hit]] = True
        return out


class _TreeNear:
    """Fallback of :class:`_PeakGrid` for very small distances on large maps (scipy KD-tree)."""

    def __init__(self, d):
        self.d = float(d)
        self.d2 = self.d * self.d
        self.coords = np.empty((0, 3), np.int64)
        self._tree = None

    def add(self, pts):
        self.coords = np.concatenate([self.coords, pts.astype(np.int64)])
        self._tree = None

    def near(self, pts):
        out = np.zeros(len(pts), bool)
        if len(self.coords) == 0 or len(pts) == 0:
            return out
        from scipy.spatial import cKDTree
        if self._tree is None:
            self._tree = cKDTree(self.coords)
        dist, idx = self._tree.query(pts, k=1, distance_upper_bound=self.d * (1 + 1e-9) + 1e-9)
        ok = np.isfinite(dist)
        diff = pts[ok].astype(np.int64) - self.coords[idx[ok]]
        out[np.flatnonzero(ok)[(diff * diff).sum(1) <= self.d2]] = True
        return out


class _CoverGrid:
    """Coarse cells of side ``s`` entirely within ``d`` of some peak (one lookup per point)."""

    def __init__(self, shape, d, s):
        self.s = int(s)
        self.d2 = float(d) * float(d)
        R = int(math.ceil(d / self.s)) + 1
        self.R = R
        dims = [-(-n // self.s) + 2 * R for n in shape]
        self.grid = np.zeros(dims, dtype=bool)
        self.gflat = self.grid.reshape(-1)
        self.itype = np.int32 if self.grid.size < (1 << 31) else np.int64
        self.strides = (dims[1] * dims[2], dims[2], 1)
        st = np.array(self.strides, dtype=np.int64)
        r = np.arange(-R, R + 1)
        o = np.stack(np.meshgrid(r, r, r, indexing="ij"), -1).reshape(-1, 3)
        # per sub-position class (p mod s on each axis): offsets of the covered cells
        self.class_offsets = []
        for cz in range(self.s):
            for cy in range(self.s):
                for cx in range(self.s):
                    sub = np.array([cz, cy, cx])
                    lo = o * self.s - sub           # voxel range of the cell relative to p
                    hi = lo + self.s - 1
                    far = np.maximum(np.abs(lo), np.abs(hi))
                    ok = (far.astype(np.float64) ** 2).sum(1) <= self.d2
                    self.class_offsets.append((o[ok] * st).sum(1).astype(self.itype))

    def _cells(self, pts):
        return _cell_index(pts, self.s, self.R, self.strides, self.itype)

    def add(self, pts):
        if len(pts) == 0:
            return
        cells = self._cells(pts)
        sub = pts % pts.dtype.type(self.s)
        cls = (sub[:, 0].astype(np.int64) * self.s + sub[:, 1]) * self.s + sub[:, 2]
        for c in np.unique(cls):
            offs = self.class_offsets[int(c)]
            if offs.size == 0:
                continue
            sel = cells[cls == c]
            self.gflat[(sel[:, None] + offs[None, :]).reshape(-1)] = True

    def covered(self, pts):
        return self.gflat[self._cells(pts)]


def _greedy_small(pts, d):
    """Lexicographically first set of points pairwise more than ``d`` apart (greedy in order):
    rounds of "no undecided or kept earlier neighbour" on the neighbour pairs (exact)."""
    n = len(pts)
    if n <= 1:
        return np.arange(n)
    from scipy.spatial import cKDTree
    d2 = float(d) * float(d)
    pairs = cKDTree(pts).query_pairs(float(d) * (1 + 1e-9) + 1e-9, output_type="ndarray")
    if len(pairs) == 0:
        return np.arange(n)
    i, j = pairs[:, 0].astype(np.int64), pairs[:, 1].astype(np.int64)
    sw = i > j
    i[sw], j[sw] = j[sw], i[sw]
    diff = (pts[i] - pts[j]).astype(np.int64)
    exact = (diff * diff).sum(1) <= d2
    i, j = i[exact], j[exact]
    state = np.zeros(n, np.int8)      # 0 undecided, 1 kept, 2 excluded
    while True:
        und = state == 0
        if not und.any():
            break
        blocked = np.zeros(n, bool)
        m = (state[i] != 2) & und[j]
        blocked[j[m]] = True
        state[und & ~blocked] = 1
        m = (state[i] == 1) & (state[j] == 0)
        state[j[m]] = 2
        live = state[j] == 0
        i, j = i[live], j[live]
    return np.flatnonzero(state == 1)


class _GreedyRun:
    """One greedy exclusion in progress: the peaks found so far (accepted or not) and the
    indexes that tell whether a point lies within ``d`` of one of them."""

    def __init__(self, K, d, shape, max_accept, accept, sub):
        self.K, self.d, self.max_accept, self.accept, self.sub = K, d, max_accept, accept, sub
        n_vox = int(np.prod(shape))
        if _PeakGrid.size_for(shape, d) <= max(4 << 20, n_vox // 8):
            self.near = _PeakGrid(shape, d)
        else:
            self.near = _TreeNear(d)
        s = min(8, max(2, int(d // 5)))
        self.cover = _CoverGrid(shape, d, s) if d >= 2 * math.sqrt(3) * s / 2 + 1 else None
        self.peaks, self.acc = [], []
        self.n_acc = 0
        self.stopped = self.done = False

    def alive(self, P):
        """Positions in the batch ``P`` of the candidates no peak so far excludes."""
        alive = np.ones(len(P), bool)
        if self.cover is not None and self.peaks:
            alive &= ~self.cover.covered(P)
        ai = np.flatnonzero(alive)
        if ai.size and self.peaks:
            ai = ai[~self.near.near(P[ai])]
        return ai

    def settle(self, P, pos, ai):
        """The greedy choice on the alive candidates ``ai`` of the batch starting at ``pos``:
        on the first ``sub`` of them, then the rest is re-tested against the new peaks."""
        while ai.size:
            head, ai = ai[:self.sub], ai[self.sub:]
            new = head[_greedy_small(P[head], self.d)]
            ok = np.ones(len(new), bool) if self.accept is None else \
                np.asarray(self.accept(pos + new), dtype=bool)
            if self.max_accept is not None and self.n_acc + int(ok.sum()) >= self.max_accept:
                last = int(np.searchsorted(np.cumsum(ok), self.max_accept - self.n_acc)) + 1
                new, ok = new[:last], ok[:last]
                self._record(pos + new, ok)
                self.stopped = (pos + int(new[-1]) + 1) < self.K
                self.done = True
                return
            self._record(pos + new, ok)
            new_pts = P[new]
            self.near.add(new_pts)
            if self.cover is not None:
                self.cover.add(new_pts)
            if ai.size:
                ai = ai[~self.near.near(P[ai])]

    def _record(self, positions, ok):
        self.peaks.append(positions)
        self.acc.append(ok)
        self.n_acc += int(ok.sum())

    def result(self):
        if self.peaks:
            return np.concatenate(self.peaks).astype(np.int64), np.concatenate(self.acc), \
                self.stopped
        return np.empty(0, np.int64), np.empty(0, bool), self.stopped


def _next_batch(B, alive_fraction):
    """Adapt the batch size: large when most candidates were settled by the grids."""
    if alive_fraction < 0.05:
        return min(B * 2, 1 << 20)
    if alive_fraction > 0.5 and B > 1024:
        return B // 2
    return B


def greedy_exclusion(coords: ArrayLike, distance: float, shape: Sequence[int],
                     max_accept: Optional[int] = None, accept: Optional[Callable] = None,
                     batch: int = 4096, sub: int = 1024,
                     progress: Optional[Callable] = None) -> Tuple[np.ndarray, np.ndarray, bool]:
    """Greedy exclusion over candidates given in processing order.

    A candidate becomes a *peak* iff no earlier peak lies within Euclidean distance ``<= d``
    (equivalently: peaks are pairwise more than ``d`` apart and every other candidate is within
    ``d`` of an earlier peak, cryoCAT's KD-tree loop). Exact; O(K) with the two grids of the
    module docstring. Candidates are processed in batches; inside a batch the greedy choice is
    made on the neighbour graph.

    Parameters
    ----------
    coords : ndarray (K, 3) int
        ``(z, y, x)`` voxel coordinates, already in processing order.
    distance : float
        Exclusion distance ``d`` in voxels (> 0).
    shape : tuple
        Map shape ``(nz, ny, nx)`` (all coordinates inside).
    max_accept : int, optional
        Stop once this many peaks are accepted.
    accept : callable, optional
        ``accept(peak_positions) -> bool array``: filters peaks (e.g. minimum size); rejected
        peaks still exclude their neighbourhood. Called once per batch of new peaks, in order.
    progress : callable, optional
        ``progress(done, K)`` after each batch.

    Returns
    -------
    peaks : ndarray (P,) int64
        Positions (into ``coords``) of the peaks found, in order (accepted and rejected).
    accepted : ndarray (P,) bool
    stopped_early : bool
        ``max_accept`` was reached before all candidates were visited.
    """
    coords = np.asarray(coords)
    if coords.dtype not in (np.int32, np.int64):
        coords = coords.astype(np.int64)
    K = len(coords)
    d = float(distance)
    if not d > 0:
        raise PeakPickingError("the minimum distance between picks must be > 0 voxels; got %g" % d)
    if K == 0:
        return np.empty(0, np.int64), np.empty(0, bool), False
    run = _GreedyRun(K, d, shape, max_accept, accept, sub)
    pos, B = 0, int(batch)
    while pos < K and not run.done:
        stop = min(K, pos + B)
        P = coords[pos:stop]
        ai = run.alive(P)
        n_alive = ai.size
        run.settle(P, pos, ai)
        B = _next_batch(B, n_alive / max(1, len(P)))
        pos = stop
        if progress is not None:
            progress(pos, K)
    return run.result()


def count_within(points: ArrayLike, candidates: np.ndarray, distance: float,
                 tree: Optional["cKDTree"] = None) -> np.ndarray:
    """For each point, the number of candidates within Euclidean distance ``<= d`` (the point
    itself included if it is a candidate): STOPGAP's ``c_size``.

    Parameters
    ----------
    points : ndarray (P, 3) int
    candidates : ndarray (K, 3) int
    distance : float
    tree : scipy.spatial.cKDTree, optional
        A tree of ``candidates`` already built (several calls on the same candidates).

    Returns
    -------
    ndarray (P,) int64
    """
    if len(points) == 0:
        return np.zeros(0, np.int64)
    if tree is None:
        from scipy.spatial import cKDTree
        tree = cKDTree(candidates)
    d = float(distance)
    # query a hair beyond d, then drop exact ties beyond d by integer distances
    lists = tree.query_ball_point(points, d * (1 + 1e-9) + 1e-9)
    d2 = d * d
    out = np.empty(len(points), np.int64)
    for k, lst in enumerate(lists):
        if not lst:
            out[k] = 0
            continue
        diff = candidates[np.asarray(lst, dtype=np.int64)] - points[k]
        out[k] = int(((diff * diff).sum(1) <= d2).sum())
    return out
