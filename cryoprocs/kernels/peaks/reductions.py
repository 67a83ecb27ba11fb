"""Exact float32 reductions as NumPy computes them, streamed: the pairwise sum of NumPy 2
(:class:`NumpySum`), mean and ``std(ddof)`` from those sums, and sort keys / histograms of
float32 bit patterns (order statistics without a full sort).

These make the ``sigma``, ``percentile`` and ``triangle`` thresholds of cryoCAT bit-identical
while the map is read once, chunk by chunk, never whole.
"""
from typing import Tuple

import numpy as np
from numpy.typing import ArrayLike, DTypeLike

__all__ = ["NUMPY_BUFSIZE", "NumpySum", "numpy_mean_std", "mean_from_sum", "float32_sort_key",
           "key_to_float32", "KeyHistogram", "float64_to_float32_floor"]

#: NumPy's default ufunc buffer size: reductions sum blocks of this many values pairwise
NUMPY_BUFSIZE = 8192


class NumpySum:
    """Streaming float32 sum equal, bit for bit, to NumPy 2's ``a.sum()`` of a contiguous array
    of ``n`` values fed in order (any chunking).

    NumPy 2.4 reduces a contiguous array with one pairwise recursion over the whole array
    (``numpy/_core/src/umath/loops_utils.h.src``, ``pairwise_sum``: ranges longer than 128
    values are split at ``n2 = n/2`` rounded down to a multiple of 8; the two halves are added
    in float32). Ranges of at most :data:`NUMPY_BUFSIZE` values are summed by NumPy itself (the
    same recursion in every NumPy version); the larger ones are combined here level by level.
    (NumPy 1.x instead added the pairwise sums of 8192-value buffers one after the other; the
    cryoCAT references were made with NumPy 2.4.6.)
    """

    def __init__(self, n: int, dtype: DTypeLike = np.float32, leaf: int = NUMPY_BUFSIZE) -> None:
        self.n = int(n)
        self.dtype = np.dtype(dtype)
        st, ln = np.zeros(1, np.int64), np.array([self.n], np.int64)
        self._levels = []                      # (split mask, child positions) top-down
        while (ln > leaf).any():
            big = ln > leaf
            n2 = ln // 2
            n2 -= n2 % 8
            pos = np.arange(len(ln)) + np.concatenate(([0], np.cumsum(big)[:-1]))
            out_st = np.empty(len(ln) + int(big.sum()), np.int64)
            out_ln = np.empty_like(out_st)
            out_st[pos] = st
            out_ln[pos] = np.where(big, n2, ln)
            out_st[pos[big] + 1] = (st + n2)[big]
            out_ln[pos[big] + 1] = (ln - n2)[big]
            self._levels.append((big, pos))
            st, ln = out_st, out_ln
        self.starts, self.lengths = st, ln
        self.ends = st + ln
        # runs of consecutive leaves of equal length: one reshape + sum per run
        brk = np.flatnonzero(np.diff(ln)) + 1
        self._run_first = np.concatenate(([0], brk)).astype(np.int64)
        self._run_count = np.diff(np.concatenate((self._run_first, [len(ln)])))
        self.sums = np.zeros(len(ln), self.dtype)
        self.count = 0
        self._k = 0                            # next leaf to complete
        self._pending = []                     # pieces of the leaf being filled

    def add(self, values: ArrayLike) -> None:
        """Feed the next values (any length; in order)."""
        v = np.asarray(values)
        if v.dtype != self.dtype:
            v = v.astype(self.dtype)
        v = v.reshape(-1)
        if v.size == 0:
            return
        if self.count + v.size > self.n:
            raise ValueError("NumpySum: more than the announced %d values" % self.n)
        base = self.count
        i = 0
        if self._pending:
            have = sum(p.size for p in self._pending)
            need = int(self.lengths[self._k]) - have
            take = min(need, v.size)
            self._pending.append(np.array(v[:take]))
            i = take
            if take == need:
                self.sums[self._k] = np.concatenate(self._pending).sum()
                self._k += 1
                self._pending = []
        end = base + v.size
        k2 = int(np.searchsorted(self.ends, end, side="right"))
        k = self._k
        if k2 > k:
            r = int(np.searchsorted(self._run_first, k, side="right")) - 1
            while k < k2:
                run_end = int(self._run_first[r] + self._run_count[r])
                m = min(run_end, k2) - k
                L = int(self.lengths[k])
                s0 = int(self.starts[k]) - base
                np.add.reduce(v[s0:s0 + m * L].reshape(m, L), axis=1, out=self.sums[k:k + m])
                k += m
                r += 1
            i = int(self.ends[k2 - 1]) - base
            self._k = k2
        if i < v.size:
            self._pending.append(np.array(v[i:]))
        self.count = end

    def result(self) -> np.floating:
        """The sum, once all ``n`` values were fed."""
        if self.count != self.n:
            raise ValueError("NumpySum: got %d of %d values" % (self.count, self.n))
        vals = self.sums
        for big, pos in reversed(self._levels):
            up = vals[pos].copy()
            up[big] = vals[pos[big]] + vals[pos[big] + 1]      # float32 additions
            vals = up
        return self.dtype.type(vals[0]) if self.n else self.dtype.type(0)


def numpy_mean_std(sum_values: float, sum_sq_dev: float, n: int,
                   ddof: int = 1) -> Tuple[np.float32, np.float32]:
    """NumPy 2's ``mean()`` and ``std(ddof)`` of a float32 array from its exact sums.

    ``sum_values`` is ``a.sum()`` (float32) and ``sum_sq_dev`` is ``((a - mean)**2).sum()``
    (float32, with the float32 ``mean`` returned by :func:`mean_from_sum`). Division by the
    count is done in float64 and rounded to float32, as ``numpy._core._methods`` does.
    """
    mean = mean_from_sum(sum_values, n)
    var = np.float32(np.float64(sum_sq_dev) / np.float64(max(n - ddof, 0)))
    return mean, np.float32(np.sqrt(var))


def mean_from_sum(sum_values: float, n: int) -> np.float32:
    """float32 mean from a float32 sum, as NumPy (float64 division, rounded to float32)."""
    return np.float32(np.float64(np.float32(sum_values)) / np.float64(n))


def float32_sort_key(values: ArrayLike) -> np.ndarray:
    """uint32 keys that sort like the float32 ``values`` (-0.0 sorts just below +0.0).

    Negative floats have their bits inverted, non-negative ones get the sign bit set.
    """
    bits = np.ascontiguousarray(values, dtype=np.float32).view(np.uint32)
    neg = bits >= np.uint32(0x80000000)
    return np.where(neg, ~bits, bits | np.uint32(0x80000000))


def key_to_float32(keys: ArrayLike) -> np.ndarray:
    """Inverse of :func:`float32_sort_key`: the float32 values of uint32 keys."""
    keys = np.asarray(keys, dtype=np.uint32)
    neg = keys < np.uint32(0x80000000)
    bits = np.where(neg, ~keys, keys & np.uint32(0x7FFFFFFF))
    return bits.view(np.float32)


class KeyHistogram:
    """Histogram of float32 values over their sort keys ``>> shift`` (monotone bins)."""

    def __init__(self, shift: int = 12, positive_only: bool = False):
        self.shift = shift
        self.positive_only = positive_only
        self.counts = np.zeros((1 << 32) >> shift, dtype=np.int64)

    def add(self, values: ArrayLike) -> None:
        """Count float32 ``values`` (only the positive ones with ``positive_only``)."""
        if self.positive_only:
            values = values[values > 0]
        if values.size:
            keys = float32_sort_key(values) >> np.uint32(self.shift)
            k0 = int(keys.min())
            keys -= np.uint32(k0)
            c = np.bincount(keys)
            self.counts[k0:k0 + c.size] += c

    def add_positive(self, values: np.ndarray) -> None:
        """Histogram only the values > 0 (their keys are the bits with the sign bit set)."""
        b = values.view(np.int32) >> np.int32(self.shift)
        np.maximum(b, 0, out=b)                 # negatives and zeros -> bin 0 (of the +0 key)
        c = np.bincount(b)
        c[0] -= np.count_nonzero(values <= 0)   # keep only positive values in bin 0
        base = 1 << (31 - self.shift)           # key = bits | 0x80000000
        self.counts[base:base + c.size] += c

    def bin_range(self, b: int) -> Tuple[np.float32, np.float32]:
        """float32 value range [lo, hi] of bin ``b``."""
        lo_key = np.uint32(int(b) << self.shift)
        hi_key = np.uint32(((int(b) + 1) << self.shift) - 1)
        return key_to_float32(lo_key), key_to_float32(hi_key)


def float64_to_float32_floor(t: float) -> np.float32:
    """The largest float32 ``<= t``: ``x > result`` equals ``x > t`` for every float32 ``x``."""
    f = np.float32(t)
    if np.float64(f) > np.float64(t):
        f = np.nextafter(f, np.float32(-np.inf))
    return np.float32(f)


