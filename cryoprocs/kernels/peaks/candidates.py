"""Candidates of the peak picker: the voxels above the threshold (optionally inside a mask and
away from the faces) and the order in which the greedy exclusion visits them."""
from typing import Optional, Sequence, Tuple

import numpy as np
from numpy.typing import ArrayLike

from .maps import MapPass, Region
from .reductions import float32_sort_key

__all__ = ["find_candidates", "CandidateCollector", "unravel", "order_candidates"]


def find_candidates(scores: np.ndarray, threshold: float, mask: Optional[np.ndarray] = None,
                    mask_mode: str = "multiply", border: int = 0,
                    mp: Optional[MapPass] = None) -> Tuple[np.ndarray, np.ndarray]:
    """Voxels with ``score > threshold`` (float32 comparison).

    Parameters
    ----------
    scores : ndarray, (nz, ny, nx)
        Score map (float32 or castable), e.g. ``mrcfile.mmap(...).data``.
    threshold : float32
    mask : ndarray, optional
        Same shape; see :class:`MapPass` for ``mask_mode``.
    border : int
        Drop voxels closer than ``border`` voxels to any face (``border <= idx < n - border``).

    Returns
    -------
    flat : ndarray (K,) int64
        Flat indices into the ``[z, y, x]`` map, ascending.
    values : ndarray (K,) float32
        Scores at those voxels (mask applied in multiply mode).
    """
    mp = mp or MapPass(scores, mask, mask_mode)
    col = CandidateCollector(threshold)
    for r in mp:
        col(r)
    return col.finish(threshold, mp.shape, border)


class CandidateCollector:
    """Collects voxels above a (provisional, lower or equal) float32 threshold chunk by chunk;
    :meth:`finish` keeps those above the final threshold."""

    def __init__(self, threshold: float):
        self.thr = np.float32(threshold)
        self.flats, self.vals = [], []

    def __call__(self, r: Region, v=None) -> None:
        above = r.values > self.thr
        if r.inside is not None:
            above &= r.inside
        idx = np.flatnonzero(above)
        if idx.size:
            self.vals.append(r.values[idx])
            self.flats.append(idx + r.start)

    def finish(self, threshold: float, shape: Sequence[int],
               border: int = 0) -> Tuple[np.ndarray, np.ndarray]:
        flat = np.concatenate(self.flats) if self.flats else np.empty(0, np.int64)
        values = np.concatenate(self.vals) if self.vals else np.empty(0, np.float32)
        self.flats = self.vals = None
        thr = np.float32(threshold)
        if thr > self.thr:
            keep = values > thr
            flat, values = flat[keep], values[keep]
        border = int(border or 0)
        if border > 0 and flat.size:
            zyx = unravel(flat, shape)
            keep = np.ones(flat.size, bool)
            for ax in range(3):
                keep &= (zyx[:, ax] >= border) & (zyx[:, ax] < shape[ax] - border)
            flat, values = flat[keep], values[keep]
        return flat.astype(np.int64, copy=False), values


def unravel(flat: ArrayLike, shape: Sequence[int]) -> np.ndarray:
    """``(K, 3)`` ``(z, y, x)`` of flat indices into a C-order ``shape`` (int32 when the map has
    fewer than 2**31 voxels, else int64)."""
    nz, ny, nx = (int(v) for v in shape)
    dt = np.int32 if nz * ny * nx < (1 << 31) else np.int64
    flat = np.asarray(flat).astype(dt, copy=False)
    z, rem = np.divmod(flat, dt(ny * nx))
    y, x = np.divmod(rem, dt(nx))
    return np.stack([z, y, x], axis=1)


def order_candidates(flat: np.ndarray, values: np.ndarray, shape: Sequence[int],
                     compatible: bool = False) -> np.ndarray:
    """Processing order of the candidates: descending score.

    Ties are broken by ascending flat index, or, with ``compatible``, exactly as cryoCAT:
    ``argpartition(-v, K-1)`` then ``argsort`` of the partitioned values, on the candidates in
    x-major order (its ``np.where`` on the transposed ``[x, y, z]`` map).

    Parameters
    ----------
    flat : ndarray (K,) int
        Ascending flat indices of the candidates (:func:`find_candidates`).
    values : ndarray (K,) float32

    Returns
    -------
    ndarray (K,) int64
        Permutation of the candidate indices.
    """
    K = len(values)
    if K == 0:
        return np.empty(0, np.int64)
    if compatible:
        zyx = unravel(flat, shape).astype(np.int64)
        nz, ny, nx = shape
        xkey = (zyx[:, 2] * ny + zyx[:, 1]) * nz + zyx[:, 0]
        del zyx
        if int(np.prod(shape)) <= (1 << 32) and K <= (1 << 32):
            key = xkey.astype(np.uint64) << np.uint64(32)
            key |= np.arange(K, dtype=np.uint64)
            key.sort()
            perm = (key & np.uint64(0xFFFFFFFF)).astype(np.int64)
            del key
        else:
            perm = np.argsort(xkey, kind="stable")
        vx = values[perm]
        k = K - 1
        s_idx = np.argpartition(-vx, k)[:k + 1]
        s_idx = s_idx[np.argsort(-vx[s_idx])]
        return perm[s_idx].astype(np.int64, copy=False)
    if K < (1 << 32):
        key = (~float32_sort_key(values)).astype(np.uint64) << np.uint64(32)
        key |= np.arange(K, dtype=np.uint64)
        key.sort()
        return (key & np.uint64(0xFFFFFFFF)).astype(np.int64)
    return np.lexsort((np.arange(K), -values.astype(np.float64)))


