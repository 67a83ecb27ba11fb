"""Peak picking in template-matching score maps, with cryoCAT ``scores_extract_particles``
semantics (cryoCAT 0.7.1, ``cryocat/tmana.py``) and an order of magnitude less time and memory.

Everything here works on NumPy arrays (``numpy.memmap`` included) in MRC order ``[z, y, x]``
(x = MRC column, the fastest axis); nothing is transposed or copied whole. The semantics are
re-stated from ../shared/docs/peak-picking.md (sections 1, 3 and 7), not copied from cryoCAT:

1. **Threshold** ``thr`` (float32), one of

   * ``direct``: the given value, rounded to float32 as NumPy does for a Python float;
   * ``sigma``: ``mean + k * std(ddof=1)`` with NumPy 2's float32 reductions (one pairwise sum
     over the whole map, :class:`NumpySum`) and promotion rules, bit-identical to cryoCAT 0.7.1
     run with NumPy 2.4;
   * ``percentile``: NumPy's linear-interpolation percentile of the map values, found exactly by
     a histogram of the float32 bit patterns and a selection (no full sort);
   * ``triangle``: cryoCAT ``compute_scores_map_threshold_triangle``, the knee of the sorted
     positive values below the chord to the maximum, evaluated with cryoCAT's float expression
     on the few histogram bins that can hold the maximum (exact, O(N), no full sort);
   * ``false-positives``: ``mean + k * std`` with ``k = sqrt(2) * erfcinv(2 nFP / Nvox)``, the
     Gaussian false-alarm level for ``nFP`` expected false positives among ``Nvox`` voxels
     (Rickgauer et al. 2017, eLife 6:e25648; pytom-match-pick's ``extract`` cut-off).

2. **Candidates**: every voxel with ``score > thr`` (strictly), optionally inside the mask and
   at least ``border`` voxels from every face.
3. **Order**: descending score. Ties: ascending flat index ``(z, y, x)``; in cryoCAT-compatible
   mode NumPy's ``argpartition`` + ``argsort`` on the x-major candidate sequence, as cryoCAT.
4. **Greedy exclusion**: a candidate becomes a peak iff no earlier peak lies within Euclidean
   distance ``<= d`` (cryoCAT's ``particle_diameter``; it acts as a *radius*). Implemented with
   a coarse "fully covered" grid and a one-peak-per-cell grid (exact, O(K)), stopping early once
   ``max_picks`` picks are accepted (identical to truncating the full result).
5. **Filters** (off by default, not in cryoCAT): minimum peak size (STOPGAP ``cluster_size``:
   candidates within ``d`` of the peak, the peak included) and angular consistency (enough voxels
   around the peak whose orientation is within a given angle of the peak's). A rejected peak
   still excludes its neighbourhood, as in STOPGAP.
6. **Angles** at the picks only: ``row = int(angle_map[z, y, x]) - numbering`` (truncation as
   ``astype(int)``), validated against the angle list; C\\ :sub:`n` symmetry optionally adds a
   random multiple of 360/n to phi (seeded, wrapped to [0, 360)).

Coordinates returned are 0-based voxel indices; cryoCAT/STOPGAP motive lists use index + 1.
Angles are zxz (phi, theta, psi) in degrees: ``Rotation.from_euler('zxz', [phi, theta, psi])``.
"""
import math
import mmap as _mmap_module
from dataclasses import dataclass, field

import numpy as np

from .pages import release_pages

__all__ = [
    "THRESHOLD_MODES", "MASK_MODES", "ANGLE_ORDERS", "NUMPY_BUFSIZE",
    "PeakPickingError", "AngleIndexError",
    "NumpySum", "float32_sort_key", "numpy_mean_std",
    "false_positive_k", "expected_false_positives", "sigma_threshold", "direct_threshold",
    "triangle_threshold_sorted", "triangle_threshold", "percentile_threshold",
    "MapPass", "map_statistics",
    "find_candidates", "order_candidates", "greedy_exclusion", "count_within",
    "load_angle_list", "angle_rows_at", "gather", "symmetry_order", "randomize_phi",
    "zxz_rotations", "angular_distance_tables", "angular_consistency",
    "AngularFilter", "PickResult", "pick_peaks",
]

THRESHOLD_MODES = ("direct", "sigma", "percentile", "triangle", "false-positives")
MASK_MODES = ("multiply", "inside")
ANGLE_ORDERS = ("zxz", "zzx")
#: NumPy's default ufunc buffer size: reductions sum blocks of this many values pairwise
NUMPY_BUFSIZE = 8192
#: values per streaming chunk (a multiple of NUMPY_BUFSIZE; 4 MB of float32)
CHUNK = 128 * NUMPY_BUFSIZE


class PeakPickingError(ValueError):
    """Invalid peak-picking inputs or parameters; the message names the offending values."""


class AngleIndexError(PeakPickingError):
    """Angle-map values that do not index the angle list (wrong numbering or wrong list)."""


# ============================================================================ exact reductions
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

    def __init__(self, n, dtype=np.float32, leaf=NUMPY_BUFSIZE):
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

    def add(self, values):
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

    def result(self):
        if self.count != self.n:
            raise ValueError("NumpySum: got %d of %d values" % (self.count, self.n))
        vals = self.sums
        for big, pos in reversed(self._levels):
            up = vals[pos].copy()
            up[big] = vals[pos[big]] + vals[pos[big] + 1]      # float32 additions
            vals = up
        return self.dtype.type(vals[0]) if self.n else self.dtype.type(0)


def numpy_mean_std(sum_values, sum_sq_dev, n, ddof=1):
    """NumPy 2's ``mean()`` and ``std(ddof)`` of a float32 array from its exact sums.

    ``sum_values`` is ``a.sum()`` (float32) and ``sum_sq_dev`` is ``((a - mean)**2).sum()``
    (float32, with the float32 ``mean`` returned by :func:`mean_from_sum`). Division by the
    count is done in float64 and rounded to float32, as ``numpy._core._methods`` does.
    """
    mean = mean_from_sum(sum_values, n)
    var = np.float32(np.float64(sum_sq_dev) / np.float64(max(n - ddof, 0)))
    return mean, np.float32(np.sqrt(var))


def mean_from_sum(sum_values, n):
    """float32 mean from a float32 sum, as NumPy (float64 division, rounded to float32)."""
    return np.float32(np.float64(np.float32(sum_values)) / np.float64(n))


def float32_sort_key(values):
    """uint32 keys that sort like the float32 ``values`` (-0.0 sorts just below +0.0).

    Negative floats have their bits inverted, non-negative ones get the sign bit set.
    """
    bits = np.ascontiguousarray(values, dtype=np.float32).view(np.uint32)
    neg = bits >= np.uint32(0x80000000)
    return np.where(neg, ~bits, bits | np.uint32(0x80000000))


def _key_to_float32(keys):
    keys = np.asarray(keys, dtype=np.uint32)
    neg = keys < np.uint32(0x80000000)
    bits = np.where(neg, ~keys, keys & np.uint32(0x7FFFFFFF))
    return bits.view(np.float32)


# ============================================================================ thresholds
def false_positive_k(n_false_positives, n_voxels):
    """``k = sqrt(2) * erfcinv(2 nFP / Nvox)``: the number of standard deviations above the mean
    at which a Gaussian background gives ``nFP`` expected false positives among ``Nvox`` voxels.

    Raises
    ------
    PeakPickingError
        ``nFP`` not in (0, Nvox/2).
    """
    from scipy.special import erfcinv
    nfp, n = float(n_false_positives), float(n_voxels)
    if not (0.0 < nfp < n / 2.0):
        raise PeakPickingError("expected false positives must be in (0, %g) for %d voxels; got %g"
                               % (n / 2.0, int(n), nfp))
    return float(np.sqrt(2.0) * erfcinv(2.0 * nfp / n))


def expected_false_positives(threshold, mean, std, n_voxels):
    """Expected number of background voxels above ``threshold`` for a Gaussian background of
    ``mean`` and ``std`` over ``n_voxels`` voxels: ``Nvox * erfc(z / sqrt(2)) / 2``."""
    from scipy.special import erfc
    if not std > 0:
        return float("nan")
    z = (float(threshold) - float(mean)) / float(std)
    return float(n_voxels) * 0.5 * float(erfc(z / math.sqrt(2.0)))


def sigma_threshold(mean, std, k):
    """``mean + k * std`` in float32 arithmetic (cryoCAT under NumPy 2: ``k`` is a Python float
    and therefore cast to float32)."""
    mean, std = np.float32(mean), np.float32(std)
    return np.float32(mean + np.float32(np.float32(k) * std))


def direct_threshold(value):
    """A user threshold as the float32 value NumPy compares a float32 map with."""
    return np.float32(value)


def triangle_threshold_sorted(sp):
    """cryoCAT's triangle threshold from the **sorted** (ascending) values ``sp``.

    The reference implementation (O(N log N) because of the sort the caller did); the float
    expression follows cryoCAT 0.7.1 ``compute_scores_map_threshold_triangle`` evaluated with
    NumPy 2 promotion (float64 for everything mixing the float32 maximum and int64 ranks).

    Raises
    ------
    PeakPickingError
        no positive value, or every positive value equals the maximum.
    """
    sp = np.asarray(sp)
    nbins = len(sp)
    pos = np.flatnonzero(sp > 0)
    if pos.size == 0:
        raise PeakPickingError("the triangle threshold needs positive scores; the map has none "
                               "(maximum %s)" % (sp[-1] if nbins else "n/a"))
    arg_peak = int(np.argmax(sp))
    peak_height = sp[arg_peak]
    arg_low, arg_high = int(pos[0]), int(pos[-1])
    flip = arg_peak - arg_low < arg_high - arg_peak
    if flip:
        sp = sp[::-1]
        arg_low = nbins - arg_high - 1
        arg_peak = nbins - arg_peak - 1
    width = arg_peak - arg_low
    if width <= 0:
        raise PeakPickingError("the triangle threshold is undefined: every positive score equals "
                               "the maximum %s" % peak_height)
    a, b = _triangle_coefficients(peak_height, width)
    x1 = np.arange(width, dtype=np.int64)
    y1 = sp[x1 + arg_low]
    length = a * x1.astype(np.float64) - b * y1.astype(np.float64)
    level = int(np.argmax(length)) + arg_low
    if flip:
        level = nbins - level - 1
        return np.asarray(sp[::-1])[level]
    return sp[level]


def _triangle_coefficients(peak_height, width):
    """cryoCAT's normalised slope terms: ``norm = sqrt(ph**2 + w**2)`` (ph**2 in float32, the sum
    in float64), ``a = ph / norm``, ``b = w / norm`` (float64)."""
    ph = np.float32(peak_height)
    ph2 = np.float32(ph ** 2)
    norm = np.sqrt(np.float64(ph2) + np.float64(np.int64(width) * np.int64(width)))
    return np.float64(ph) / norm, np.float64(width) / norm


# ---------------------------------------------------------------------------- map passes
@dataclass
class _Region:
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

    def __init__(self, scores, mask=None, mask_mode="multiply", chunk=CHUNK):
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
        self._flat = _flat_view(scores)
        self._mflat = _flat_view(mask) if mask is not None else None

    def count_statistics_voxels(self):
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
            yield _Region(start, v, inside)
            release_pages(self._flat, start, stop)
            if self._mflat is not None:
                release_pages(self._mflat, start, stop)


def _flat_view(a):
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


class _KeyHistogram:
    """Histogram of float32 values over their sort keys ``>> shift`` (monotone bins)."""

    def __init__(self, shift=12, positive_only=False):
        self.shift = shift
        self.positive_only = positive_only
        self.counts = np.zeros((1 << 32) >> shift, dtype=np.int64)

    def add(self, values):
        if self.positive_only:
            values = values[values > 0]
        if values.size:
            keys = float32_sort_key(values) >> np.uint32(self.shift)
            k0 = int(keys.min())
            keys -= np.uint32(k0)
            c = np.bincount(keys)
            self.counts[k0:k0 + c.size] += c

    def add_positive(self, values):
        """Histogram only the values > 0 (their keys are the bits with the sign bit set)."""
        b = values.view(np.int32) >> np.int32(self.shift)
        np.maximum(b, 0, out=b)                 # negatives and zeros -> bin 0 (of the +0 key)
        c = np.bincount(b)
        c[0] -= np.count_nonzero(values <= 0)   # keep only positive values in bin 0
        base = 1 << (31 - self.shift)           # key = bits | 0x80000000
        self.counts[base:base + c.size] += c

    def bin_range(self, b):
        """float32 value range [lo, hi] of bin ``b``."""
        lo_key = np.uint32(int(b) << self.shift)
        hi_key = np.uint32(((int(b) + 1) << self.shift) - 1)
        return _key_to_float32(lo_key), _key_to_float32(hi_key)


def map_statistics(scores, mask=None, mask_mode="multiply"):
    """Exact NumPy ``mean()`` / ``std(ddof=1)`` (float32) of the statistics region in two passes.

    Returns
    -------
    MapStatistics
    """
    mp = MapPass(scores, mask, mask_mode)
    return _statistics_two_pass(mp)[0]


def _region_values(r):
    return r.values if r.inside is None else r.values[r.inside]


#: stride of the diagnostic sample of the map values (a prime: no alignment with rows)
SAMPLE_STRIDE = 257
#: provisional threshold for mean + k std modes: mean + PROVISIONAL_FACTOR k std(sample); the
#: final threshold is checked against it (another pass if it is lower). The sample holds one
#: voxel in SAMPLE_STRIDE (over a million for a 300 M-voxel map): its std is within ~0.1 %.
PROVISIONAL_FACTOR = 0.97


def _statistics_two_pass(mp, first_pass_hook=None, between=None):
    """Two streaming passes: sum (and ``first_pass_hook(values, chunk_max)``), then the squared
    deviations. ``between(stats_so_far)`` runs after the first pass and may return a hook for
    the second pass, called as ``hook(region, values)``."""
    s = NumpySum(mp.count_statistics_voxels())
    vmax = -np.inf
    samples = []
    for r in mp:
        v = _region_values(r)
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
        v = _region_values(r)
        if v.size:
            dev = tmp[:v.size]
            np.subtract(v, mean, out=dev)
            np.multiply(dev, dev, out=dev)
            sq.add(dev)
        if second_pass_hook is not None:
            second_pass_hook(r, v)
    mean, std = numpy_mean_std(total, sq.result(), n)
    return MapStatistics(n, mean, std, vmax, sample), mp


def triangle_threshold(scores, mask=None, mask_mode="multiply", stats=None):
    """cryoCAT's triangle threshold of a map in O(N) (see :func:`triangle_threshold_sorted`).

    One pass histograms the positive values over their float32 bit patterns; bins whose upper
    bound of cryoCAT's ``length`` cannot reach the best lower bound are discarded, and the
    expression is evaluated exactly on the values of the remaining bins (gathered in a second
    pass, sorted). The result is bit-identical to the full sort.
    """
    mp = MapPass(scores, mask, mask_mode)
    state = _TriangleState()
    for r in mp:
        state.add(_region_values(r))
    try:
        lo, hi = state.plan()
    except _TriangleFlip:
        return triangle_threshold_sorted(np.sort(_collect_all(mp)))
    if lo is None:
        return state.result
    for r in mp:
        state.gather(_region_values(r), lo, hi)
    return state.finish()


class _TriangleState:
    """Two-pass exact triangle threshold (histogram, then the values of the winning bins)."""

    SHIFT = 12

    def __init__(self):
        self.hist = _KeyHistogram(self.SHIFT)
        self.maximum = None
        self.n_max = 0
        self.result = None
        self._gathered = []

    def add(self, v, cm=None):
        if v.size == 0:
            return
        self.hist.add_positive(v)
        cm = v.max() if cm is None else cm
        if self.maximum is None or cm > self.maximum:
            self.maximum = cm
            self.n_max = int(np.count_nonzero(v == cm))
        elif cm == self.maximum:
            self.n_max += int(np.count_nonzero(v == cm))

    def plan(self):
        """Decide which value range to gather; returns ``(lo, hi)`` float32 or ``(None, None)``
        when the result is already known."""
        counts = self.hist.counts
        n_pos = int(counts.sum())
        if n_pos == 0 or self.maximum is None or not self.maximum > 0:
            raise PeakPickingError("the triangle threshold needs positive scores; the map has "
                                   "none (maximum %s)" % self.maximum)
        width = n_pos - self.n_max
        if width <= 0:
            raise PeakPickingError("the triangle threshold is undefined: every positive score "
                                   "equals the maximum %s" % self.maximum)
        if width < self.n_max - 1:
            # cryoCAT's "flip" branch (more than half of the positive voxels hold the maximum):
            # practically never happens; signal the caller to use the full sort
            raise _TriangleFlip()
        a, b = _triangle_coefficients(self.maximum, width)
        self.width, self.a, self.b = width, a, b
        bins = np.flatnonzero(counts)
        c = counts[bins]
        r1 = np.cumsum(c)                   # exclusive end rank of each bin
        r0 = r1 - c
        keys_lo = bins.astype(np.uint64) << np.uint64(self.SHIFT)
        keys_hi = ((bins.astype(np.uint64) + 1) << np.uint64(self.SHIFT)) - np.uint64(1)
        vlo = _key_to_float32(keys_lo.astype(np.uint32)).astype(np.float64)
        vhi = _key_to_float32(keys_hi.astype(np.uint32)).astype(np.float64)
        vhi = np.minimum(vhi, np.float64(self.maximum))
        use = r0 < width                    # ranks >= width hold the maximum: outside the range
        bins, r0, r1, vlo, vhi = bins[use], r0[use], np.minimum(r1[use], width), vlo[use], vhi[use]
        upper = a * (r1 - 1).astype(np.float64) - b * vlo
        lower = a * r0.astype(np.float64) - b * vhi
        best = lower.max()
        tol = 1e-9 * (abs(a) * width + abs(b) * float(self.maximum)) + 1e-300
        keep = upper >= best - tol
        kb = np.flatnonzero(keep)
        self.first_rank = int(r0[kb[0]])
        self.n_gather = int((r1[kb[-1]] - r0[kb[0]]))
        lo = np.float32(vlo[kb[0]])
        hi = np.float32(_key_to_float32(np.uint32(((int(bins[kb[-1]]) + 1) << self.SHIFT) - 1)))
        self._lo, self._hi = lo, hi
        return lo, hi

    def gather(self, v, lo, hi):
        sel = v[(v >= lo) & (v <= hi)]
        if sel.size:
            self._gathered.append(sel)

    def finish(self):
        vals = np.sort(np.concatenate(self._gathered)) if self._gathered else \
            np.empty(0, np.float32)
        # values in [lo, hi] of rank >= width are copies of the maximum: drop them
        n = min(vals.size, self.width - self.first_rank)
        vals = vals[:n]
        ranks = self.first_rank + np.arange(n, dtype=np.int64)
        length = self.a * ranks.astype(np.float64) - self.b * vals.astype(np.float64)
        self.result = vals[int(np.argmax(length))]
        return self.result


class _TriangleFlip(Exception):
    pass


def percentile_threshold(scores, percentile, mask=None, mask_mode="multiply"):
    """NumPy's ``np.percentile(values, p)`` (linear method) of the statistics region, exactly,
    without sorting the map: a histogram of the float32 keys locates the two order statistics,
    a second pass gathers their bins. Returned as float64 (NumPy's value)."""
    mp = MapPass(scores, mask, mask_mode)
    hist = _KeyHistogram(12)
    n = 0
    for r in mp:
        v = _region_values(r)
        n += v.size
        hist.add(v)
    plan = _PercentilePlan(hist, n, percentile)
    for r in mp:
        plan.gather(_region_values(r))
    return plan.finish()


class _PercentilePlan:
    def __init__(self, hist, n, percentile):
        p = float(percentile)
        if not 0.0 <= p <= 100.0:
            raise PeakPickingError("percentile must be within [0, 100]; got %g" % p)
        if n == 0:
            raise PeakPickingError("no voxel to compute a percentile of")
        q = np.true_divide(p, 100)
        virtual = (n - 1) * np.float64(q)
        prev = int(np.floor(virtual))
        nxt = min(prev + 1, n - 1)
        self.gamma = np.float64(virtual - np.floor(virtual))
        self.prev, self.nxt = prev, nxt
        cum = np.cumsum(hist.counts)
        b0 = int(np.searchsorted(cum, prev, side="right"))
        b1 = int(np.searchsorted(cum, nxt, side="right"))
        self.first_rank = int(cum[b0] - hist.counts[b0])
        self.lo = hist.bin_range(b0)[0]
        self.hi = hist.bin_range(b1)[1]
        self._gathered = []

    def gather(self, v):
        # compare keys, not values: -0.0 and +0.0 fall in different bins
        k = float32_sort_key(v)
        klo, khi = float32_sort_key(np.float32(self.lo)), float32_sort_key(np.float32(self.hi))
        sel = v[(k >= klo) & (k <= khi)]
        if sel.size:
            self._gathered.append(sel)

    def finish(self):
        vals = np.sort(np.concatenate(self._gathered))
        a = vals[self.prev - self.first_rank]
        b = vals[self.nxt - self.first_rank]
        # numpy.lib.function_base._lerp with float64 gamma (NumPy 2 promotion)
        a64, b64, t = np.float64(a), np.float64(b), self.gamma
        diff = b64 - a64
        if t >= 0.5:
            return float(b64 - diff * (1 - t))
        return float(a64 + diff * t)


def float64_to_float32_floor(t):
    """The largest float32 ``<= t``: ``x > result`` equals ``x > t`` for every float32 ``x``."""
    f = np.float32(t)
    if np.float64(f) > np.float64(t):
        f = np.nextafter(f, np.float32(-np.inf))
    return np.float32(f)


# ============================================================================ candidates
def find_candidates(scores, threshold, mask=None, mask_mode="multiply", border=0, mp=None):
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
    col = _CandidateCollector(threshold)
    for r in mp:
        col(r)
    return col.finish(threshold, mp.shape, border)


class _CandidateCollector:
    """Collects voxels above a (provisional, lower or equal) float32 threshold chunk by chunk;
    :meth:`finish` keeps those above the final threshold."""

    def __init__(self, threshold):
        self.thr = np.float32(threshold)
        self.flats, self.vals = [], []

    def __call__(self, r, v=None):
        above = r.values > self.thr
        if r.inside is not None:
            above &= r.inside
        idx = np.flatnonzero(above)
        if idx.size:
            self.vals.append(r.values[idx])
            self.flats.append(idx + r.start)

    def finish(self, threshold, shape, border=0):
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


def unravel(flat, shape):
    """``(K, 3)`` ``(z, y, x)`` of flat indices into a C-order ``shape`` (int32 when the map has
    fewer than 2**31 voxels, else int64)."""
    nz, ny, nx = (int(v) for v in shape)
    dt = np.int32 if nz * ny * nx < (1 << 31) else np.int64
    flat = np.asarray(flat).astype(dt, copy=False)
    z, rem = np.divmod(flat, dt(ny * nx))
    y, x = np.divmod(rem, dt(nx))
    return np.stack([z, y, x], axis=1)


def order_candidates(flat, values, shape, compatible=False):
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


# ============================================================================ greedy exclusion
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


def greedy_exclusion(coords, distance, shape, max_accept=None, accept=None, batch=4096,
                     sub=1024, progress=None):
    """Greedy exclusion over candidates given in processing order.

    A candidate becomes a *peak* iff no earlier peak lies within Euclidean distance ``<= d``
    (equivalently: peaks are pairwise more than ``d`` apart and every other candidate is within
    ``d`` of an earlier peak, cryoCAT's KD-tree loop). Exact; O(K) with two grids: a coarse grid
    of cells entirely covered by some peak's ball (one lookup settles most candidates) and a grid
    holding at most one peak per cell for the exact test of the rest. Candidates are processed
    in batches; inside a batch the greedy choice is made on the neighbour graph.

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
    peaks, acc = [], []
    n_acc = 0
    if K == 0:
        return np.empty(0, np.int64), np.empty(0, bool), False
    n_vox = int(np.prod(shape))
    if _PeakGrid.size_for(shape, d) <= max(4 << 20, n_vox // 8):
        near = _PeakGrid(shape, d)
    else:
        near = _TreeNear(d)
    s = min(8, max(2, int(d // 5)))
    cover = _CoverGrid(shape, d, s) if d >= 2 * math.sqrt(3) * s / 2 + 1 else None
    pos = 0
    B = int(batch)
    stopped = False
    done = False
    while pos < K and not done:
        stop = min(K, pos + B)
        P = coords[pos:stop]
        alive = np.ones(len(P), bool)
        if cover is not None and peaks:
            alive &= ~cover.covered(P)
        ai = np.flatnonzero(alive)
        if ai.size and peaks:
            ai = ai[~near.near(P[ai])]
        n_alive = ai.size
        while ai.size:
            # the greedy choice on the first SUB alive candidates, then re-test the rest
            head, ai = ai[:sub], ai[sub:]
            new = head[_greedy_small(P[head], d)]
            new_pts = P[new]
            ok = np.ones(len(new), bool) if accept is None else \
                np.asarray(accept(pos + new), dtype=bool)
            if max_accept is not None and n_acc + int(ok.sum()) >= max_accept:
                last = int(np.searchsorted(np.cumsum(ok), max_accept - n_acc)) + 1
                new, ok = new[:last], ok[:last]
                peaks.append(pos + new)
                acc.append(ok)
                n_acc += int(ok.sum())
                stopped = (pos + int(new[-1]) + 1) < K
                done = True
                break
            peaks.append(pos + new)
            acc.append(ok)
            n_acc += int(ok.sum())
            near.add(new_pts)
            if cover is not None:
                cover.add(new_pts)
            if ai.size:
                ai = ai[~near.near(P[ai])]
        # adapt the batch: large when most candidates were settled by the grids
        frac = n_alive / max(1, len(P))
        if frac < 0.05:
            B = min(B * 2, 1 << 20)
        elif frac > 0.5 and B > 1024:
            B //= 2
        pos = stop
        if progress is not None:
            progress(pos, K)
    if peaks:
        return np.concatenate(peaks).astype(np.int64), np.concatenate(acc), stopped
    return np.empty(0, np.int64), np.empty(0, bool), stopped


def count_within(points, candidates, distance):
    """For each point, the number of candidates within Euclidean distance ``<= d`` (the point
    itself included if it is a candidate): STOPGAP's ``c_size``.

    Parameters
    ----------
    points : ndarray (P, 3) int
    candidates : ndarray (K, 3) int
    distance : float

    Returns
    -------
    ndarray (P,) int64
    """
    from scipy.spatial import cKDTree
    if len(points) == 0:
        return np.zeros(0, np.int64)
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
        diff = candidates[np.asarray(lst)] - points[k]
        out[k] = int(((diff * diff).sum(1) <= d2).sum())
    return out


# ============================================================================ angles
def load_angle_list(angles, order="zxz"):
    """Angle list as ``(L, 3)`` float64 ``[phi, theta, psi]`` (degrees, zxz).

    Parameters
    ----------
    angles : str or array_like
        CSV file with three columns and no header (GAPSTOP/STOPGAP lists), or an ``(L, 3)``
        array. Both are reordered for ``zzx``.
    order : {"zxz", "zzx"}
        Column order: ``zxz`` = phi, theta, psi (GAPSTOP); ``zzx`` = phi, psi, theta (STOPGAP).

    Raises
    ------
    PeakPickingError
        unknown order, unreadable file, not three numeric columns, or an empty list.
    """
    if order not in ANGLE_ORDERS:
        raise PeakPickingError("angle order must be one of %s; got %r" % (ANGLE_ORDERS, order))
    if isinstance(angles, (str, bytes)) or hasattr(angles, "__fspath__"):
        import os
        path = os.fspath(angles)
        if not os.path.exists(path):
            raise PeakPickingError("angle list %s does not exist" % path)
        try:
            arr = np.loadtxt(path, delimiter=",", dtype=np.float64, ndmin=2)
        except ValueError:
            try:
                arr = np.loadtxt(path, dtype=np.float64, ndmin=2)
            except ValueError as exc:
                raise PeakPickingError("cannot read angle list %s (3 comma-separated numbers per "
                                       "line expected): %s" % (path, exc)) from None
        where = path
    else:
        arr = np.asarray(angles, dtype=np.float64)
        where = "the angle array"
    if arr.ndim != 2 or arr.shape[1] != 3 or arr.shape[0] == 0:
        raise PeakPickingError("%s must hold 3 columns (phi, theta, psi or phi, psi, theta) and "
                               "at least one row; got shape %s" % (where, arr.shape))
    if not np.all(np.isfinite(arr)):
        raise PeakPickingError("%s contains non-numeric or infinite angles" % where)
    if order == "zzx":
        arr = arr[:, [0, 2, 1]]
    return np.ascontiguousarray(arr)


def angle_rows_at(angle_map, coords, n_angles, numbering=0):
    """Rows of the angle list at the picks: ``int(angle_map[z, y, x]) - numbering``.

    Reads only the voxels at ``coords`` (works on a memmap).

    Returns
    -------
    rows : ndarray (M,) int64
    raw : ndarray (M,) float64
        The angle-map values as stored.

    Raises
    ------
    AngleIndexError
        A value is not finite or its row is outside ``[0, n_angles)``; the message gives the
        offending values and the numbering that would fit.
    """
    coords = np.asarray(coords, dtype=np.int64)
    if numbering not in (0, 1):
        raise PeakPickingError("angle numbering must be 0 (GAPSTOP) or 1 (STOPGAP); got %r"
                               % (numbering,))
    if len(coords) == 0:
        return np.empty(0, np.int64), np.empty(0, np.float64)
    raw = gather(angle_map, coords).astype(np.float64)
    if not np.all(np.isfinite(raw)):
        bad = raw[~np.isfinite(raw)]
        raise AngleIndexError("the angle map holds non-finite values at %d picks (e.g. %s)"
                              % (bad.size, bad[:3]))
    rows = raw.astype(np.int64) - int(numbering)
    bad = (rows < 0) | (rows >= n_angles)
    if bad.any():
        lo, hi = int(raw.astype(np.int64).min()), int(raw.astype(np.int64).max())
        hint = ""
        if numbering == 1 and lo == 0:
            hint = " The map holds 0: it is probably 0-based (GAPSTOP); use numbering 0."
        elif numbering == 0 and hi == n_angles:
            hint = " The map reaches %d: it is probably 1-based (STOPGAP); use numbering 1." % hi
        raise AngleIndexError(
            "angle-map values at the picks range over %d..%d, but with %d-based numbering the "
            "angle list of %d rows accepts %d..%d (%d picks out of range).%s"
            % (lo, hi, numbering, n_angles, numbering, n_angles - 1 + numbering,
               int(bad.sum()), hint))
    return rows, raw


def gather(volume, coords, group=2048):
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
    flat = _flat_view(volume)
    pad = 16 * _mmap_module.PAGESIZE // max(1, volume.itemsize)
    for g0 in range(0, len(order), group):
        sel = order[g0:g0 + group]
        idx = flat_idx[sel]
        out[sel] = flat[idx]
        release_pages(flat, max(0, int(idx[0]) - pad), min(flat.size, int(idx[-1]) + 1 + pad))
    return out


def symmetry_order(symmetry):
    """The n of a C-symmetry string (``"C1"``, ``"c6"``, or an int). cryoCAT takes the last
    integer of any string starting with c/C; other symmetries are rejected here (cryoCAT warns and
    uses C1)."""
    if isinstance(symmetry, (int, np.integer)):
        n = int(symmetry)
    else:
        import re
        s = str(symmetry).strip()
        nums = re.findall(r"\d+", s)
        if not s.lower().startswith("c") or not nums:
            raise PeakPickingError("only cyclic symmetry C<n> is supported; got %r" % symmetry)
        n = int(nums[-1])
    if n < 1:
        raise PeakPickingError("symmetry order must be >= 1; got %d" % n)
    return n


def randomize_phi(phi, n, seed=None):
    """Add a random multiple of ``360/n`` to each phi (STOPGAP/cryoCAT C\\ :sub:`n`
    randomisation, seeded), wrapped to [0, 360).

    The angle lists of C\\ :sub:`n` searches cover phi in [0, 360/n); phi is the first rotation
    about the particle's own z (symmetry) axis, so any multiple of 360/n is an equivalent pose.
    """
    phi = np.asarray(phi, dtype=np.float64)
    if n <= 1:
        return phi.copy()
    rng = np.random.default_rng(seed)
    steps = np.linspace(0.0, 360.0, n + 1)[:-1]
    return np.mod(phi + rng.choice(steps, size=phi.shape), 360.0)


def zxz_rotations(angles):
    """``(L, 3, 3)`` active rotation matrices of zxz ``[phi, theta, psi]`` rows (degrees),
    ``Rz(psi) Rx(theta) Rz(phi)`` = scipy ``Rotation.from_euler('zxz', ...)``."""
    from scipy.spatial.transform import Rotation
    return Rotation.from_euler("zxz", np.asarray(angles, np.float64), degrees=True).as_matrix()


def _sym_rotations(n):
    a = np.deg2rad(np.arange(n) * 360.0 / n)
    R = np.zeros((n, 3, 3))
    R[:, 0, 0] = np.cos(a)
    R[:, 0, 1] = -np.sin(a)
    R[:, 1, 0] = np.sin(a)
    R[:, 1, 1] = np.cos(a)
    R[:, 2, 2] = 1.0
    return R


def _geodesic_deg(Ra, Rb, n_sym=1):
    """Rotation angle (deg) of ``Ra^T Rb``, minimised over the C_n copies ``Rb Rz(k 360/n)``."""
    best = None
    for S in _sym_rotations(n_sym):
        M = np.einsum("...ji,...jk->...ik", Ra, Rb @ S)
        c = np.clip((np.trace(M, axis1=-2, axis2=-1) - 1.0) / 2.0, -1.0, 1.0)
        ang = np.degrees(np.arccos(c))
        best = ang if best is None else np.minimum(best, ang)
    return best


def angular_distance_tables(angles, symmetry=1, reference=0):
    """Per angle-list row, its distance to row ``reference`` (cryoCAT
    ``create_angular_distance_maps`` uses the first row):

    * total: rotation angle between the two poses (minimised over the C_n copies);
    * normal: angle between the particle z axes ``R e_z``;
    * in-plane: difference of the first Euler angle phi, modulo 360/n, folded to [0, 180].

    Returns three ``(L,)`` float32 arrays (degrees).
    """
    angles = np.asarray(angles, np.float64)
    R = zxz_rotations(angles)
    R0 = np.broadcast_to(R[reference], R.shape)
    total = _geodesic_deg(R0, R, symmetry)
    z = R[:, :, 2]
    z0 = R[reference][:, 2]
    normal = np.degrees(np.arccos(np.clip(z @ z0, -1.0, 1.0)))
    phi = np.mod(angles[:, 0], 360.0 / symmetry)
    dphi = np.abs(phi - np.mod(angles[reference, 0], 360.0 / symmetry))
    inplane = np.where(dphi > 180.0, 360.0 - dphi, dphi)
    return total.astype(np.float32), normal.astype(np.float32), inplane.astype(np.float32)


@dataclass
class AngularFilter:
    """Angular consistency around a pick (cryoCAT ``select_peaks`` idea): at least
    ``min_count`` voxels within ``radius`` voxels of the pick (the pick excluded) must hold an
    orientation within ``max_angle`` degrees of the pick's own."""
    min_count: int = 4
    max_angle: float = 15.0
    radius: float = 2.0


def angular_consistency(angle_map, coords, angle_rows, angles, numbering=0, radius=2.0,
                        max_angle=15.0, symmetry=1):
    """Number of neighbours (within ``radius`` voxels, the centre excluded, inside the map) whose
    orientation is within ``max_angle`` degrees of the orientation at each pick.

    Returns
    -------
    ndarray (M,) int64
    """
    coords = np.asarray(coords, np.int64)
    M = len(coords)
    if M == 0:
        return np.zeros(0, np.int64)
    shape = angle_map.shape
    r = int(math.floor(radius))
    g = np.arange(-r, r + 1)
    off = np.stack(np.meshgrid(g, g, g, indexing="ij"), -1).reshape(-1, 3)
    d2 = (off ** 2).sum(1)
    off = off[(d2 <= radius * radius) & (d2 > 0)]
    pts = coords[:, None, :] + off[None, :, :]
    inside = np.all((pts >= 0) & (pts < np.array(shape)), axis=2)
    pc = np.clip(pts, 0, np.array(shape) - 1).reshape(-1, 3)
    vals = gather(angle_map, pc).astype(np.float64)
    vals = vals.reshape(M, len(off))
    nb_rows = np.where(np.isfinite(vals), vals, -1).astype(np.int64) - int(numbering)
    valid = inside & (nb_rows >= 0) & (nb_rows < len(angles))
    R = zxz_rotations(angles)
    # distance table only for the rows involved
    Rc = R[np.asarray(angle_rows, np.int64)]
    Rn = R[np.where(valid, nb_rows, 0)]
    ang = _geodesic_deg(np.broadcast_to(Rc[:, None], Rn.shape), Rn, symmetry)
    return ((ang <= max_angle) & valid).sum(1).astype(np.int64)


# ============================================================================ pipeline kernel
@dataclass
class PickResult:
    """Picks of one score map and the numbers behind them.

    Coordinates are 0-based voxel indices ``(z, y, x)`` of the score map (x = MRC column);
    cryoCAT/STOPGAP motive lists hold ``x + 1, y + 1, z + 1``. Angles are zxz degrees.
    """
    coords: np.ndarray                 # (M, 3) int64 z, y, x
    scores: np.ndarray                 # (M,) float32
    angle_rows: np.ndarray             # (M,) int64, 0-based row of the angle list
    angle_map_values: np.ndarray       # (M,) float64, raw map values
    angles: np.ndarray                 # (M, 3) float64 phi, theta, psi (after symmetry)
    threshold: np.float32
    threshold_mode: str
    n_voxels: int                      # voxels in the statistics region
    mean: float
    std: float
    n_candidates: int
    n_peaks: int                       # peaks found by the exclusion (before filters)
    n_rejected_size: int = 0
    n_rejected_angular: int = 0
    expected_false_positives: float = float("nan")
    k_sigma: float = float("nan")      # (thr - mean) / std
    stopped_early: bool = False
    capped: bool = False               # max picks reached
    peak_sizes: np.ndarray = None      # (M,) candidates within d (when computed)
    angular_counts: np.ndarray = None  # (M,) consistent neighbours (when computed)
    candidate_scores: np.ndarray = None   # (K,) float32, descending (diagnostics)
    pick_ranks: np.ndarray = None      # (M,) positions of the picks in candidate_scores
    sample: np.ndarray = None          # strided sample of the statistics region
    maximum: float = float("nan")
    messages: list = field(default_factory=list)

    @property
    def n_picks(self):
        return len(self.scores)

    @property
    def xyz(self):
        """``(M, 3)`` 0-based ``(x, y, z)``."""
        return self.coords[:, ::-1]


def pick_peaks(scores, angle_map, angle_list, min_distance, threshold_mode="false-positives",
               threshold=None, sigma=3.0, percentile=99.5, n_false_positives=10.0,
               max_picks=None, border=0, mask=None, mask_mode="multiply", angles_order="zxz",
               angles_numbering=0, symmetry=1, randomize_symmetry=True, seed=None,
               min_peak_size=None, angular_filter=None, compatible=False, keep_candidates=True,
               progress=None):
    """Pick oriented peaks in a template-matching score map.

    Parameters
    ----------
    scores : ndarray (nz, ny, nx)
        Score map, e.g. ``mrcfile.mmap(path).data`` (float32; other dtypes are cast per chunk).
    angle_map : ndarray (nz, ny, nx)
        Angle-index map (float or int), read only at the picks.
    angle_list : str or ndarray
        Angle list (see :func:`load_angle_list`).
    min_distance : float
        Minimum distance between picks in voxels (cryoCAT ``particle_diameter``): a candidate
        within ``<= min_distance`` of an earlier pick is excluded.
    threshold_mode : str
        One of :data:`THRESHOLD_MODES`.
    threshold, sigma, percentile, n_false_positives : float
        Parameter of the ``direct``, ``sigma``, ``percentile`` and ``false-positives`` modes.
    max_picks : int, optional
        Stop after this many picks (cryoCAT ``n_particles``).
    border : int
        Exclude candidates closer than this many voxels to a face.
    mask : ndarray, optional
        Tomogram mask (same shape). ``mask_mode`` ``multiply`` (cryoCAT: scores times mask, before
        the statistics) or ``inside`` (statistics and candidates inside ``mask > 0`` only).
    angles_order, angles_numbering : see :func:`load_angle_list`, :func:`angle_rows_at`.
    symmetry : int or str
        C_n symmetry; with ``randomize_symmetry`` phi gets a random multiple of 360/n (``seed``).
    min_peak_size : int, optional
        Reject peaks with fewer candidates within ``min_distance`` (STOPGAP ``cluster_size``).
    angular_filter : AngularFilter, optional
    compatible : bool
        cryoCAT-compatible mode: cryoCAT's tie order; must be combined with cryoCAT's options
        (no border, multiply mask, no filters) to reproduce it.

    Returns
    -------
    PickResult
        Empty (``n_picks == 0``) when no voxel is above the threshold.

    Raises
    ------
    PeakPickingError
        invalid parameters or inputs (shape mismatch, bad angle indices, ...).
    """
    if threshold_mode not in THRESHOLD_MODES:
        raise PeakPickingError("threshold mode must be one of %s; got %r"
                               % (", ".join(THRESHOLD_MODES), threshold_mode))
    if angle_map is not None and tuple(angle_map.shape) != tuple(scores.shape):
        raise PeakPickingError("the angle map shape %s (x, y, z) differs from the score map shape "
                               "%s" % (tuple(angle_map.shape)[::-1], tuple(scores.shape)[::-1]))
    if max_picks is not None and int(max_picks) < 1:
        raise PeakPickingError("maximum number of picks must be >= 1 (or None for all); got %s"
                               % max_picks)
    if border and int(border) < 0:
        raise PeakPickingError("border exclusion must be >= 0 voxels; got %s" % border)
    d = float(min_distance)
    if not d > 0:
        raise PeakPickingError("the minimum distance between picks must be > 0 voxels; got %g" % d)
    anglist = load_angle_list(angle_list, angles_order) if angle_list is not None else None
    n_sym = symmetry_order(symmetry)
    mp = MapPass(scores, mask, mask_mode)
    messages = []

    # ---- threshold and candidates: two passes over the map. The first sums the values (and
    # histograms them for triangle / percentile); the second sums the squared deviations,
    # gathers the values that decide the triangle / percentile threshold and collects the
    # voxels above a provisional threshold that is <= the final one (checked afterwards).
    tri = _TriangleState() if threshold_mode == "triangle" else None
    hist = _KeyHistogram(12) if threshold_mode == "percentile" else None
    if threshold_mode == "direct":
        if threshold is None:
            raise PeakPickingError("the direct threshold mode needs a threshold value")
        if not np.isfinite(float(threshold)):
            raise PeakPickingError("the direct threshold must be a finite number; got %r"
                                   % (threshold,))
    if threshold_mode == "sigma" and not np.isfinite(float(sigma)):
        raise PeakPickingError("sigma must be a finite number; got %r" % (sigma,))
    state = {}

    def between(st):
        hooks = []
        if tri is not None:
            try:
                lo, hi = tri.plan()
            except _TriangleFlip:
                state["flip"] = True
                lo = None
            if lo is not None:
                hooks.append(lambda r, v: tri.gather(v, lo, hi))
                state["provisional"] = lo          # the threshold is a gathered value >= lo
        elif hist is not None:
            state["plan"] = _PercentilePlan(hist, st.n, percentile)
            hooks.append(lambda r, v: state["plan"].gather(v))
            state["provisional"] = state["plan"].lo
        elif threshold_mode == "direct":
            state["provisional"] = direct_threshold(threshold)
        else:
            # mean + k std with the std of the sample, lowered by a safety margin; the final
            # threshold is compared with it after the pass
            k = float(sigma) if threshold_mode == "sigma" else \
                false_positive_k(n_false_positives, st.n)
            sd = float(np.std(st.sample, dtype=np.float64)) if st.sample.size > 1 else 0.0
            state["provisional"] = np.float32(float(st.mean) + PROVISIONAL_FACTOR * k * sd
                                              - 1e-6 * abs(float(st.mean)))
        if "provisional" in state:
            state["collector"] = _CandidateCollector(state["provisional"])
            hooks.append(state["collector"])
        return (lambda r, v: [h(r, v) for h in hooks]) if hooks else None

    hook = tri.add if tri else (lambda v, cm: hist.add(v)) if hist else None
    stats, _ = _statistics_two_pass(mp, first_pass_hook=hook, between=between)
    if tri is not None:
        if state.get("flip"):
            thr = triangle_threshold_sorted(np.sort(_collect_all(mp)))
        else:
            thr = tri.finish()
        thr = np.float32(thr)
    elif hist is not None:
        thr = float64_to_float32_floor(state["plan"].finish())
    elif threshold_mode == "direct":
        thr = direct_threshold(threshold)
    elif threshold_mode == "sigma":
        thr = sigma_threshold(stats.mean, stats.std, sigma)
    else:
        k = false_positive_k(n_false_positives, stats.n)
        thr = sigma_threshold(stats.mean, stats.std, k)
    efp = expected_false_positives(thr, stats.mean, stats.std, stats.n)
    k_eff = float((np.float64(thr) - np.float64(stats.mean)) / np.float64(stats.std)) \
        if stats.std > 0 else float("nan")
    col = state.get("collector")
    if col is not None and np.float32(thr) >= col.thr:
        flat, values = col.finish(thr, mp.shape, border)
    else:                                       # provisional threshold too high: one more pass
        state.pop("collector", None)
        flat, values = find_candidates(scores, thr, mask, mask_mode, border, mp=mp)
    K = len(values)
    maximum = stats.maximum
    if not np.isfinite(maximum):
        maximum = float(values.max()) if K else _map_maximum(mp)
    base = dict(threshold=np.float32(thr), threshold_mode=threshold_mode, n_voxels=stats.n,
                mean=float(stats.mean), std=float(stats.std), n_candidates=K,
                expected_false_positives=efp, k_sigma=k_eff, sample=stats.sample,
                maximum=maximum, messages=messages)
    if K == 0:
        messages.append("no voxel is above the threshold %.6g (map maximum %.6g)"
                        % (thr, maximum))
        return PickResult(np.empty((0, 3), np.int64), np.empty(0, np.float32),
                          np.empty(0, np.int64), np.empty(0), np.empty((0, 3)), n_peaks=0,
                          candidate_scores=np.empty(0, np.float32),
                          pick_ranks=np.empty(0, np.int64), **base)
    order = order_candidates(flat, values, mp.shape, compatible)
    flat = flat[order]
    values = values[order]
    del order
    coords = unravel(flat, mp.shape)
    del flat

    accept_fns = []
    sizes_all = {}
    if min_peak_size:
        from scipy.spatial import cKDTree
        tree = cKDTree(coords)

        def size_ok(idx):
            c = _count_tree(tree, coords, coords[idx], d)
            for i, v in zip(idx, c):
                sizes_all[int(i)] = int(v)
            return c >= int(min_peak_size)
        accept_fns.append(("size", size_ok))
    ang_all = {}
    if angular_filter is not None:
        if anglist is None or angle_map is None:
            raise PeakPickingError("the angular consistency filter needs the angle map and list")

        def ang_ok(idx):
            rows, _ = angle_rows_at(angle_map, coords[idx], len(anglist), angles_numbering)
            c = angular_consistency(angle_map, coords[idx], rows, anglist, angles_numbering,
                                    angular_filter.radius, angular_filter.max_angle, n_sym)
            for i, v in zip(idx, c):
                ang_all[int(i)] = int(v)
            return c >= int(angular_filter.min_count)
        accept_fns.append(("angular", ang_ok))
    rejected = {"size": 0, "angular": 0}

    def accept(idx):
        ok = np.ones(len(idx), bool)
        for name, fn in accept_fns:
            sub = np.flatnonzero(ok)
            if sub.size == 0:
                break
            good = fn(idx[sub])
            rejected[name] += int((~good).sum())
            ok[sub[~good]] = False
        return ok

    peaks, accepted, stopped = greedy_exclusion(
        coords, d, mp.shape, max_accept=max_picks, accept=accept if accept_fns else None,
        progress=progress)
    picks = peaks[accepted]
    if max_picks is not None and len(picks) > int(max_picks):
        picks = picks[:int(max_picks)]
    pc = coords[picks]
    ps = values[picks]

    # ---- angles at the picks
    if anglist is not None and angle_map is not None:
        rows, raw = angle_rows_at(angle_map, pc, len(anglist), angles_numbering)
        ang = anglist[rows].copy()
        if n_sym > 1 and randomize_symmetry:
            ang[:, 0] = randomize_phi(ang[:, 0], n_sym, seed)
    else:
        rows = np.zeros(len(picks), np.int64)
        raw = np.full(len(picks), np.nan)
        ang = np.zeros((len(picks), 3))
    capped = max_picks is not None and len(picks) >= int(max_picks)
    if capped and stopped:
        messages.append("stopped at the maximum of %d picks before visiting every candidate"
                        % int(max_picks))
    return PickResult(
        pc, ps, rows, raw, ang, n_peaks=len(peaks),
        n_rejected_size=rejected["size"], n_rejected_angular=rejected["angular"],
        stopped_early=stopped, capped=capped,
        peak_sizes=np.array([sizes_all.get(int(i), -1) for i in picks]) if min_peak_size else None,
        angular_counts=np.array([ang_all.get(int(i), -1) for i in picks])
        if angular_filter is not None else None,
        candidate_scores=values if keep_candidates else None,
        pick_ranks=picks.astype(np.int64), **base)


def _count_tree(tree, cand, pts, d):
    lists = tree.query_ball_point(pts, float(d) * (1 + 1e-9) + 1e-9)
    d2 = float(d) * float(d)
    out = np.empty(len(pts), np.int64)
    for k, lst in enumerate(lists):
        diff = cand[np.asarray(lst, dtype=np.int64)] - pts[k]
        out[k] = int(((diff * diff).sum(1) <= d2).sum())
    return out


def _map_maximum(mp):
    out = -np.inf
    for r in mp:
        v = _region_values(r)
        if v.size:
            out = max(out, float(v.max()))
    return out


def _collect_all(mp):
    return np.concatenate([_region_values(r) for r in mp])
