"""Score thresholds of the peak picker: the exact functions, and one rule object per mode.

Modes (:data:`THRESHOLD_MODES`; every threshold is a float32 compared strictly, ``score >
thr``):

* ``direct``: the given value, rounded to float32 as NumPy does for a Python float;
* ``sigma``: ``mean + k * std(ddof=1)`` with NumPy 2's float32 reductions and promotion
  rules, bit-identical to cryoCAT 0.7.1 run with NumPy 2.4;
* ``percentile``: NumPy's linear-interpolation percentile of the map values, found exactly by
  a histogram of the float32 bit patterns and a selection (no full sort);
* ``triangle``: cryoCAT ``compute_scores_map_threshold_triangle``, the knee of the sorted
  positive values below the chord to the maximum, evaluated with cryoCAT's float expression
  on the few histogram bins that can hold the maximum (exact, O(N), no full sort);
* ``false-positives``: ``mean + k * std`` with ``k = sqrt(2) * erfcinv(2 nFP / Nvox)``, the
  Gaussian false-alarm level for ``nFP`` expected false positives among ``Nvox`` voxels
  (Rickgauer et al. 2017, eLife 6:e25648; pytom-match-pick's ``extract`` cut-off).

A rule (:func:`threshold_rule`) takes part in the driver's two streaming passes over the map
(:func:`cryoprocs.kernels.peaks.maps.two_pass_statistics`): ``first_pass`` sees every chunk
(histograms), :meth:`ThresholdRule.plan` gives a provisional threshold no higher than the
final one (the driver collects the candidates above it during the second pass) and a
second-pass hook, and :meth:`ThresholdRule.final` the threshold itself.
"""
import math
from typing import Callable, Optional, Tuple

import numpy as np
from numpy.typing import ArrayLike

from ...constants import PEAKS_THR_MODES
from .errors import PeakPickingError
from .maps import MapPass, MapStatistics, collect_all, region_values
from .reductions import KeyHistogram, float32_sort_key, float64_to_float32_floor, key_to_float32

__all__ = ["THRESHOLD_MODES", "PROVISIONAL_FACTOR", "false_positive_k",
           "expected_false_positives", "sigma_threshold", "direct_threshold",
           "triangle_threshold_sorted", "triangle_threshold", "percentile_threshold",
           "ThresholdRule", "DirectThreshold", "SigmaThreshold", "PercentileThreshold",
           "TriangleThreshold", "FalsePositivesThreshold", "THRESHOLD_RULES", "threshold_rule",
           "describe_threshold"]


def false_positive_k(n_false_positives: float, n_voxels: int) -> float:
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


def expected_false_positives(threshold: float, mean: float, std: float,
                             n_voxels: int) -> float:
    """Expected number of background voxels above ``threshold`` for a Gaussian background of
    ``mean`` and ``std`` over ``n_voxels`` voxels: ``Nvox * erfc(z / sqrt(2)) / 2``."""
    from scipy.special import erfc
    if not std > 0:
        return float("nan")
    z = (float(threshold) - float(mean)) / float(std)
    return float(n_voxels) * 0.5 * float(erfc(z / math.sqrt(2.0)))


def sigma_threshold(mean: float, std: float, k: float) -> np.float32:
    """``mean + k * std`` in float32 arithmetic (cryoCAT under NumPy 2: ``k`` is a Python float
    and therefore cast to float32)."""
    mean, std = np.float32(mean), np.float32(std)
    return np.float32(mean + np.float32(np.float32(k) * std))


def direct_threshold(value: float) -> np.float32:
    """A user threshold as the float32 value NumPy compares a float32 map with."""
    return np.float32(value)


def triangle_threshold_sorted(sp: ArrayLike) -> np.floating:
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


#: provisional threshold for mean + k std modes: mean + PROVISIONAL_FACTOR k std(sample); the
#: final threshold is checked against it (another pass if it is lower). The sample holds one
#: voxel in SAMPLE_STRIDE (over a million for a 300 M-voxel map): its std is within ~0.1 %.
PROVISIONAL_FACTOR = 0.97


def triangle_threshold(scores: np.ndarray, mask: Optional[np.ndarray] = None,
                       mask_mode: str = "multiply") -> np.floating:
    """cryoCAT's triangle threshold of a map in O(N) (see :func:`triangle_threshold_sorted`).

    One pass histograms the positive values over their float32 bit patterns; bins whose upper
    bound of cryoCAT's ``length`` cannot reach the best lower bound are discarded, and the
    expression is evaluated exactly on the values of the remaining bins (gathered in a second
    pass, sorted). The result is bit-identical to the full sort.
    """
    mp = MapPass(scores, mask, mask_mode)
    state = _TriangleState()
    for r in mp:
        state.add(region_values(r))
    try:
        lo, hi = state.plan()
    except _TriangleFlip:
        return triangle_threshold_sorted(np.sort(collect_all(mp)))
    if lo is None:
        return state.result
    for r in mp:
        state.gather(region_values(r), lo, hi)
    return state.finish()


class _TriangleState:
    """Two-pass exact triangle threshold (histogram, then the values of the winning bins)."""

    SHIFT = 12

    def __init__(self):
        self.hist = KeyHistogram(self.SHIFT)
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
        vlo = key_to_float32(keys_lo.astype(np.uint32)).astype(np.float64)
        vhi = key_to_float32(keys_hi.astype(np.uint32)).astype(np.float64)
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
        hi = np.float32(key_to_float32(np.uint32(((int(bins[kb[-1]]) + 1) << self.SHIFT) - 1)))
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


def percentile_threshold(scores: np.ndarray, percentile: float,
                         mask: Optional[np.ndarray] = None, mask_mode: str = "multiply") -> float:
    """NumPy's ``np.percentile(values, p)`` (linear method) of the statistics region, exactly,
    without sorting the map: a histogram of the float32 keys locates the two order statistics,
    a second pass gathers their bins. Returned as float64 (NumPy's value)."""
    mp = MapPass(scores, mask, mask_mode)
    hist = KeyHistogram(12)
    n = 0
    for r in mp:
        v = region_values(r)
        n += v.size
        hist.add(v)
    plan = _PercentilePlan(hist, n, percentile)
    for r in mp:
        plan.gather(region_values(r))
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


# ---------------------------------------------------------------------------- one rule per mode
class ThresholdRule:
    """How one threshold mode is computed during the driver's two passes over the map.

    ``first_pass`` is None or a callable ``(values, chunk_max)`` that sees every chunk of the
    first pass (the driver then also tracks the map maximum). :meth:`plan` runs between the
    passes; :meth:`final` after them. The parameters of every mode are accepted (and only
    this mode's are used), so a rule is made from a full option set.
    """

    first_pass: Optional[Callable] = None

    def __init__(self, threshold: Optional[float] = None, sigma: float = 3.0,
                 percentile: float = 99.5, n_false_positives: float = 10.0) -> None:
        self.threshold, self.sigma = threshold, sigma
        self.percentile, self.n_false_positives = percentile, n_false_positives

    def validate(self) -> None:
        """Raise :class:`PeakPickingError` for a missing or non-finite parameter."""

    def plan(self, stats: MapStatistics) -> Tuple[Optional[np.float32], Optional[Callable]]:
        """After the first pass: ``(provisional, second_pass)``. ``provisional`` is a float32
        no higher than the final threshold, or None (the driver then finds the candidates in
        a third pass); ``second_pass`` is None or a callable ``(region, values)``."""
        return None, None

    def final(self, stats: MapStatistics, mp: MapPass) -> np.float32:
        """The threshold, after both passes (``stats`` holds the exact mean and std)."""
        raise NotImplementedError

    def describe(self) -> str:
        """The rule in words, e.g. ``score > mean + 3 std``."""
        raise NotImplementedError


class DirectThreshold(ThresholdRule):
    """``score > value``."""

    def validate(self) -> None:
        if self.threshold is None:
            raise PeakPickingError("the direct threshold mode needs a threshold value")
        if not np.isfinite(float(self.threshold)):
            raise PeakPickingError("the direct threshold must be a finite number; got %r"
                                   % (self.threshold,))

    def plan(self, stats: MapStatistics) -> Tuple[Optional[np.float32], Optional[Callable]]:
        return direct_threshold(self.threshold), None

    def final(self, stats: MapStatistics, mp: MapPass) -> np.float32:
        return direct_threshold(self.threshold)

    def describe(self) -> str:
        return "score > %g" % self.threshold


class SigmaThreshold(ThresholdRule):
    """``score > mean + k std`` with ``k = sigma``."""

    def validate(self) -> None:
        if not np.isfinite(float(self.sigma)):
            raise PeakPickingError("sigma must be a finite number; got %r" % (self.sigma,))

    def k(self, n_voxels: int) -> float:
        return self.sigma

    def plan(self, stats: MapStatistics) -> Tuple[Optional[np.float32], Optional[Callable]]:
        k = float(self.k(stats.n))
        sd = float(np.std(stats.sample, dtype=np.float64)) if stats.sample.size > 1 else 0.0
        return np.float32(float(stats.mean) + PROVISIONAL_FACTOR * k * sd
                          - 1e-6 * abs(float(stats.mean))), None

    def final(self, stats: MapStatistics, mp: MapPass) -> np.float32:
        return sigma_threshold(stats.mean, stats.std, self.k(stats.n))

    def describe(self) -> str:
        return "score > mean + %g std" % self.sigma


class FalsePositivesThreshold(SigmaThreshold):
    """``score > mean + k std`` with ``k`` giving ``n_false_positives`` expected false
    positives over the map (:func:`false_positive_k`)."""

    def validate(self) -> None:
        pass

    def k(self, n_voxels: int) -> float:
        return false_positive_k(self.n_false_positives, n_voxels)

    def describe(self) -> str:
        return "score > mean + k std with %g expected false positives" % self.n_false_positives


class PercentileThreshold(ThresholdRule):
    """``score > `` the percentile of the map values (NumPy's linear method, exact)."""

    def __init__(self, *args: Optional[float], **kwargs: Optional[float]) -> None:
        super().__init__(*args, **kwargs)
        self._hist = KeyHistogram(12)
        self._plan = None

    def first_pass(self, values: np.ndarray, chunk_max: np.float32) -> None:
        self._hist.add(values)

    def plan(self, stats: MapStatistics) -> Tuple[Optional[np.float32], Optional[Callable]]:
        self._plan = _PercentilePlan(self._hist, stats.n, self.percentile)
        return self._plan.lo, lambda region, values: self._plan.gather(values)

    def final(self, stats: MapStatistics, mp: MapPass) -> np.float32:
        return float64_to_float32_floor(self._plan.finish())

    def describe(self) -> str:
        return "score > the %g-th percentile" % self.percentile


class TriangleThreshold(ThresholdRule):
    """cryoCAT's triangle threshold (exact, O(N))."""

    def __init__(self, *args: Optional[float], **kwargs: Optional[float]) -> None:
        super().__init__(*args, **kwargs)
        self._tri = _TriangleState()
        self._flip = False

    def first_pass(self, values: np.ndarray, chunk_max: np.float32) -> None:
        self._tri.add(values, chunk_max)

    def plan(self, stats: MapStatistics) -> Tuple[Optional[np.float32], Optional[Callable]]:
        try:
            lo, hi = self._tri.plan()
        except _TriangleFlip:
            self._flip = True
            return None, None
        # the threshold is one of the gathered values, all >= lo
        return lo, lambda region, values: self._tri.gather(values, lo, hi)

    def final(self, stats: MapStatistics, mp: MapPass) -> np.float32:
        if self._flip:
            return np.float32(triangle_threshold_sorted(np.sort(collect_all(mp))))
        return np.float32(self._tri.finish())

    def describe(self) -> str:
        return "score > the triangle threshold (cryoCAT default)"


#: the names of the threshold modes (defined in :mod:`cryoprocs.constants`, form-enum order)
THRESHOLD_MODES = tuple(PEAKS_THR_MODES)
#: the rule of each mode
THRESHOLD_RULES = dict(zip(THRESHOLD_MODES, (DirectThreshold, SigmaThreshold,
                                             PercentileThreshold, TriangleThreshold,
                                             FalsePositivesThreshold)))


def threshold_rule(mode: str, **params: Optional[float]) -> ThresholdRule:
    """The rule of threshold ``mode`` with its parameters (``threshold``, ``sigma``,
    ``percentile``, ``n_false_positives``), not yet validated.

    Raises
    ------
    PeakPickingError
        unknown mode.
    """
    if mode not in THRESHOLD_RULES:
        raise PeakPickingError("threshold mode must be one of %s; got %r"
                               % (", ".join(THRESHOLD_MODES), mode))
    return THRESHOLD_RULES[mode](**params)


def describe_threshold(mode: str, **params: Optional[float]) -> str:
    """The threshold rule of ``mode`` in words (for summaries), e.g. ``score > mean + 3 std``."""
    return threshold_rule(mode, **params).describe()
