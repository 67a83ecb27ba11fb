"""Streaming passes over a score map: chunks of the flat ``[z, y, x]`` map (and mask) with
their pages released after use, the exact NumPy statistics of the values that enter the
threshold, and reads of scattered voxels (:func:`gather`).

Nothing here copies a map whole: a 1000 x 1000 x 300 float32 map (1.2 GB) is read in 4 MB
chunks, so the resident memory stays near one chunk plus what the caller keeps.
"""
import mmap
from dataclasses import dataclass
from typing import Callable, Optional, Tuple

import numpy as np
from numpy.typing import ArrayLike

from ...constants import PEAKS_MASK_MODES
from ..pages import release_pages
from .errors import PeakPickingError
from .reductions import NUMPY_BUFSIZE, NumpySum, mean_from_sum, numpy_mean_std

__all__ = ["MASK_MODES", "CHUNK", "SAMPLE_STRIDE", "Region", "MapPass", "MapStatistics",
           "map_statistics", "two_pass_statistics", "region_values", "flat_view", "gather",
           "map_maximum", "collect_all"]

#: ``multiply``: scores x mask before anything else (cryoCAT); ``inside``: statistics and
#: candidates only where mask > 0
MASK_MODES = tuple(PEAKS_MASK_MODES)
#: values per streaming chunk (a multiple of NUMPY_BUFSIZE; 4 MB of float32)
CHUNK = 128 * NUMPY_BUFSIZE
#: stride of the diagnostic sample of the map values (a prime: no alignment with rows)
SAMPLE_STRIDE = 257


@dataclass
class Region:
    """Values of one chunk that enter the statistics (``values``) and their inside flags."""
    start: int
    values: np.ndarray            # float32 chunk values (mask applied in multiply mode)
    inside: np.ndarray = None     # bool per voxel (inside mode), None = all


class MapPass:
    """Stream a ``[z, y, x]`` score map (and mask) in flat chunks of :data:`CHUNK` values.

    ``mask_mode`` ``"multiply"`` multiplies the scores by the mask before anything else
    (cryoCAT); ``"inside"`` keeps the scores and restricts statistics and candidates to voxels
    where the mask is > 0. Pages of memory-mapped inputs are released after each chunk
    (``madvise(MADV_DONTNEED)``) so the resident memory stays near one chunk.
    """

    def __init__(self, scores: np.ndarray, mask: Optional[np.ndarray] = None,
                 mask_mode: str = "multiply", chunk: int = CHUNK):
        if scores.ndim != 3:
            raise PeakPickingError("the score map must be 3D [z, y, x]; got shape %s"
                                   % (scores.shape,))
        if mask is not None and tuple(mask.shape) != tuple(scores.shape):
            raise PeakPickingError("the mask shape %s (x, y, z) differs from the score map shape "
                                   "%s" % (tuple(mask.shape)[::-1], tuple(scores.shape)[::-1]))
        if mask_mode not in MASK_MODES:
            raise PeakPickingError("mask mode must be one of %s; got %r" % (MASK_MODES, mask_mode))
        self.scores, self.mask, self.mask_mode = scores, mask, mask_mode
        self.shape = tuple(int(s) for s in scores.shape)
        self.size = int(np.prod(self.shape))
        self.chunk = max(NUMPY_BUFSIZE, int(chunk) // NUMPY_BUFSIZE * NUMPY_BUFSIZE)
        self._flat = flat_view(scores)
        self._mflat = flat_view(mask) if mask is not None else None

    def count_statistics_voxels(self) -> int:
        """Number of voxels entering the statistics (all, or those with mask > 0); raises
        :class:`PeakPickingError` when the mask keeps none."""
        if self._mflat is None or self.mask_mode == "multiply":
            n = self.size
        else:
            n = 0
            for start in range(0, self.size, self.chunk):
                n += int(np.count_nonzero(np.asarray(self._mflat[start:start + self.chunk]) > 0))
                release_pages(self._mflat, start, min(start + self.chunk, self.size))
        if n == 0:
            raise PeakPickingError("no voxel is inside the mask: cannot compute map statistics")
        return n

    def __iter__(self):
        for start in range(0, self.size, self.chunk):
            stop = min(start + self.chunk, self.size)
            v = np.asarray(self._flat[start:stop])
            if v.dtype != np.float32:
                v = v.astype(np.float32)
            inside = None
            if self._mflat is not None:
                m = np.asarray(self._mflat[start:stop])
                if self.mask_mode == "multiply":
                    v = np.multiply(v, m, dtype=np.float32, casting="unsafe")
                else:
                    inside = m > 0
            yield Region(start, v, inside)
            release_pages(self._flat, start, stop)
            if self._mflat is not None:
                release_pages(self._mflat, start, stop)


def flat_view(a: ArrayLike) -> np.ndarray:
    """1D view of a C-contiguous map (a memmap stays a memmap); strided views are refused."""
    a = a if isinstance(a, np.ndarray) else np.asarray(a)
    if not a.flags.c_contiguous:
        raise PeakPickingError("maps must be C-contiguous [z, y, x] arrays (as mrcfile gives "
                               "them); got a strided view")
    return a.reshape(-1)


@dataclass
class MapStatistics:
    """Statistics of the values a threshold is computed on (float32, NumPy semantics);
    ``maximum`` is -inf when it was not computed (only the triangle threshold needs it)."""
    n: int
    mean: np.float32
    std: np.float32
    maximum: float
    sample: np.ndarray = None     # strided sample of the values (diagnostic histogram)


def map_statistics(scores: np.ndarray, mask: Optional[np.ndarray] = None,
                   mask_mode: str = "multiply") -> "MapStatistics":
    """Exact NumPy ``mean()`` / ``std(ddof=1)`` (float32) of the statistics region in two passes.

    Returns
    -------
    MapStatistics
    """
    mp = MapPass(scores, mask, mask_mode)
    return two_pass_statistics(mp)[0]


def region_values(r: Region) -> np.ndarray:
    """The values of a chunk that enter the statistics (those inside the mask in inside mode)."""
    return r.values if r.inside is None else r.values[r.inside]


def two_pass_statistics(mp: MapPass, first_pass_hook: Optional[Callable] = None,
                        between: Optional[Callable] = None) -> Tuple["MapStatistics", MapPass]:
    """Two streaming passes: sum (and ``first_pass_hook(values, chunk_max)``), then the squared
    deviations. ``between(stats_so_far)`` runs after the first pass and may return a hook for
    the second pass, called as ``hook(region, values)``."""
    s = NumpySum(mp.count_statistics_voxels())
    vmax = -np.inf
    samples = []
    for r in mp:
        v = region_values(r)
        if v.size == 0:
            continue
        s.add(v)
        samples.append(v[::SAMPLE_STRIDE].copy())
        if first_pass_hook is not None:
            cm = v.max()
            vmax = max(vmax, float(cm))
            first_pass_hook(v, cm)
    n = s.count
    total = s.result()
    if not np.isfinite(total):
        raise PeakPickingError("the score map contains NaN or infinite values")
    mean = mean_from_sum(total, n)
    sample = np.concatenate(samples) if samples else np.empty(0, np.float32)
    second_pass_hook = between(MapStatistics(n, mean, np.float32(np.nan), vmax, sample)) \
        if between is not None else None
    sq = NumpySum(n)
    tmp = np.empty(mp.chunk, np.float32)
    for r in mp:
        v = region_values(r)
        if v.size:
            dev = tmp[:v.size]
            np.subtract(v, mean, out=dev)
            np.multiply(dev, dev, out=dev)
            sq.add(dev)
        if second_pass_hook is not None:
            second_pass_hook(r, v)
    mean, std = numpy_mean_std(total, sq.result(), n)
    return MapStatistics(n, mean, std, vmax, sample), mp


def gather(volume: np.ndarray, coords: ArrayLike, group: int = 2048) -> np.ndarray:
    """Values of ``volume[z, y, x]`` at ``coords`` ``(M, 3)``, reading only those voxels.

    On a memory-mapped volume the voxels are read in file order, ``group`` at a time, and the
    pages touched are released after each group (the kernel maps up to 64 KB around every
    page fault, which would otherwise make the whole file resident for scattered picks).
    """
    coords = np.asarray(coords, dtype=np.int64)
    out = np.empty(len(coords), dtype=volume.dtype)
    if len(coords) == 0:
        return out
    shape = volume.shape
    flat_idx = (coords[:, 0] * shape[1] + coords[:, 1]) * shape[2] + coords[:, 2]
    order = np.argsort(flat_idx, kind="stable")
    flat = flat_view(volume)
    pad = 16 * mmap.PAGESIZE // max(1, volume.itemsize)
    for g0 in range(0, len(order), group):
        sel = order[g0:g0 + group]
        idx = flat_idx[sel]
        out[sel] = flat[idx]
        release_pages(flat, max(0, int(idx[0]) - pad), min(flat.size, int(idx[-1]) + 1 + pad))
    return out


def map_maximum(mp: MapPass) -> float:
    """Maximum of the statistics values of a map (one more pass)."""
    out = -np.inf
    for r in mp:
        v = region_values(r)
        if v.size:
            out = max(out, float(v.max()))
    return out


def collect_all(mp: MapPass) -> np.ndarray:
    """Every statistics value of a map in one array (only for the rare triangle 'flip' case)."""
    return np.concatenate([region_values(r) for r in mp])

