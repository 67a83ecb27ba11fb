"""The peak picker of one score map (:func:`pick_peaks`) and its result (:class:`PickResult`).

Steps (each in its own module of this package):

1. threshold (:mod:`.thresholds`) and candidates (:mod:`.candidates`), from two streaming
   passes over the map (:mod:`.maps`): the first sums the values (and histograms them for
   the triangle / percentile thresholds); the second sums the squared deviations, gathers the
   values that decide the triangle / percentile threshold and collects the voxels above a
   provisional threshold no higher than the final one (a third pass only when it was not);
2. order: descending score (ties as cryoCAT in compatible mode);
3. greedy exclusion (:mod:`.exclusion`) with the optional peak filters;
4. orientations at the picks (:mod:`.angles`).
"""
from dataclasses import dataclass, field
from typing import Callable, Optional, Union

import numpy as np
from numpy.typing import ArrayLike

from ...constants import DEFAULT_SYMMETRY
from .angles import (AngularFilter, angle_rows_at, angular_consistency, load_angle_list,
                     randomize_phi, symmetry_order)
from .candidates import CandidateCollector, find_candidates, order_candidates, unravel
from .errors import PeakPickingError
from .exclusion import count_within, greedy_exclusion
from .maps import MapPass, map_maximum, two_pass_statistics
from .thresholds import THRESHOLD_MODES, expected_false_positives, threshold_rule

__all__ = ["PickResult", "pick_peaks"]


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
    candidate_ranks: np.ndarray = None  # (K',) 0-based ranks of candidate_scores among all the
    #                                     candidates when they are a thinned curve (a stored
    #                                     result); None: candidate_scores holds them all
    sample: np.ndarray = None          # strided sample of the statistics region
    maximum: float = float("nan")
    messages: list = field(default_factory=list)

    @property
    def n_picks(self) -> int:
        """Number of picks."""
        return len(self.scores)

    @property
    def xyz(self) -> np.ndarray:
        """``(M, 3)`` 0-based ``(x, y, z)``."""
        return self.coords[:, ::-1]


def pick_peaks(scores: np.ndarray, angle_map: Optional[np.ndarray],
               angle_list: Union[str, ArrayLike, None], min_distance: float,
               threshold_mode: str = "false-positives", threshold: Optional[float] = None,
               sigma: float = 3.0, percentile: float = 99.5, n_false_positives: float = 10.0,
               max_picks: Optional[int] = None, border: int = 0, mask: Optional[np.ndarray] = None,
               mask_mode: str = "multiply", angles_order: str = "zxz", angles_numbering: int = 0,
               symmetry: Union[int, str] = DEFAULT_SYMMETRY, randomize_symmetry: bool = True,
               seed: Optional[int] = None, min_peak_size: Optional[int] = None,
               angular_filter: Optional[AngularFilter] = None, compatible: bool = False,
               keep_candidates: bool = True, progress: Optional[Callable] = None) -> PickResult:
    """Pick oriented peaks in a template-matching score map.

    Parameters
    ----------
    scores : ndarray (nz, ny, nx)
        Score map, e.g. ``mrcfile.mmap(path).data`` (float32; other dtypes are cast per chunk).
    angle_map : ndarray (nz, ny, nx)
        Angle-index map (float or int), read only at the picks.
    angle_list : str or ndarray
        Angle list (see :func:`~.angles.load_angle_list`); None with no angle map.
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
    angles_order, angles_numbering : see :func:`~.angles.load_angle_list`,
        :func:`~.angles.angle_rows_at`.
    symmetry : int or str
        C_n symmetry; with ``randomize_symmetry`` phi gets a random multiple of 360/n (``seed``).
    min_peak_size : int, optional
        Reject peaks with fewer candidates within ``min_distance`` (STOPGAP ``cluster_size``).
    angular_filter : AngularFilter, optional
    compatible : bool
        cryoCAT-compatible mode: cryoCAT's tie order; must be combined with cryoCAT's options
        (no border, multiply mask, no filters) to reproduce it.
    keep_candidates : bool
        keep the sorted candidate scores in the result (diagnostics).
    progress : callable, optional
        ``progress(done, K)`` during the exclusion.

    Returns
    -------
    PickResult
        Empty (``n_picks == 0``) when no voxel is above the threshold.

    Raises
    ------
    PeakPickingError
        invalid parameters or inputs (shape mismatch, bad angle indices, ...).
    """
    d = _check_arguments(scores, angle_map, threshold_mode, max_picks, border, min_distance)
    anglist = load_angle_list(angle_list, angles_order) if angle_list is not None else None
    n_sym = symmetry_order(symmetry)
    mp = MapPass(scores, mask, mask_mode)
    rule = threshold_rule(threshold_mode, threshold=threshold, sigma=sigma,
                          percentile=percentile, n_false_positives=n_false_positives)
    rule.validate()
    thr, stats, flat, values = _threshold_and_candidates(mp, rule, border)
    summary = _summary(thr, threshold_mode, stats, values, mp)
    if len(values) == 0:
        return _no_candidates(summary)
    coords, values = _in_processing_order(flat, values, mp.shape, compatible)
    filters = _PeakFilters(coords, d, min_peak_size, angular_filter, angle_map, anglist,
                           angles_numbering, n_sym)
    peaks, accepted, stopped = greedy_exclusion(
        coords, d, mp.shape, max_accept=max_picks, accept=filters if filters.tests else None,
        progress=progress)
    picks = peaks[accepted]
    if max_picks is not None and len(picks) > int(max_picks):
        picks = picks[:int(max_picks)]
    rows, raw, ang = _orientations(angle_map, anglist, coords[picks], angles_numbering, n_sym,
                                   randomize_symmetry, seed)
    capped = max_picks is not None and len(picks) >= int(max_picks)
    if capped and stopped:
        summary["messages"].append("stopped at the maximum of %d picks before visiting every "
                                   "candidate" % int(max_picks))
    sizes, counts = filters.per_pick(picks)
    return PickResult(
        coords[picks], values[picks], rows, raw, ang, n_peaks=len(peaks),
        n_rejected_size=filters.rejected["size"], n_rejected_angular=filters.rejected["angular"],
        stopped_early=stopped, capped=capped, peak_sizes=sizes, angular_counts=counts,
        candidate_scores=values if keep_candidates else None,
        pick_ranks=picks.astype(np.int64), **summary)


def _check_arguments(scores, angle_map, threshold_mode, max_picks, border, min_distance):
    """Validate what needs no pass over the map; returns the exclusion distance (float)."""
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
    return d


class _CandidatePass:
    """The ``between`` step of the two statistics passes: asks the threshold rule for its
    provisional threshold and second-pass hook, and collects the voxels above the provisional
    threshold during the second pass."""

    def __init__(self, rule):
        self.rule = rule
        self.collector = None

    def __call__(self, stats):
        provisional, hook = self.rule.plan(stats)
        hooks = [hook] if hook is not None else []
        if provisional is not None:
            self.collector = CandidateCollector(provisional)
            hooks.append(self.collector)
        if not hooks:
            return None
        return lambda region, values: [h(region, values) for h in hooks]


def _threshold_and_candidates(mp, rule, border):
    """``(threshold, statistics, flat indices, values)`` of the candidates (ascending flat
    index), in two passes over the map, or three when the provisional threshold was higher
    than the final one (or the rule gave none)."""
    candidate_pass = _CandidatePass(rule)
    stats, _ = two_pass_statistics(mp, first_pass_hook=rule.first_pass, between=candidate_pass)
    thr = np.float32(rule.final(stats, mp))
    col = candidate_pass.collector
    if col is not None and thr >= col.thr:
        flat, values = col.finish(thr, mp.shape, border)
    else:                                       # provisional threshold too high: one more pass
        flat, values = find_candidates(mp.scores, thr, border=border, mp=mp)
    return thr, stats, flat, values


def _summary(thr, threshold_mode, stats, values, mp):
    """The :class:`PickResult` fields that describe the threshold and the map."""
    efp = expected_false_positives(thr, stats.mean, stats.std, stats.n)
    k_eff = float((np.float64(thr) - np.float64(stats.mean)) / np.float64(stats.std)) \
        if stats.std > 0 else float("nan")
    maximum = stats.maximum
    if not np.isfinite(maximum):
        maximum = float(values.max()) if len(values) else map_maximum(mp)
    return dict(threshold=np.float32(thr), threshold_mode=threshold_mode, n_voxels=stats.n,
                mean=float(stats.mean), std=float(stats.std), n_candidates=len(values),
                expected_false_positives=efp, k_sigma=k_eff, sample=stats.sample,
                maximum=maximum, messages=[])


def _no_candidates(summary):
    summary["messages"].append("no voxel is above the threshold %.6g (map maximum %.6g)"
                               % (summary["threshold"], summary["maximum"]))
    return PickResult(np.empty((0, 3), np.int64), np.empty(0, np.float32),
                      np.empty(0, np.int64), np.empty(0), np.empty((0, 3)), n_peaks=0,
                      candidate_scores=np.empty(0, np.float32),
                      pick_ranks=np.empty(0, np.int64), **summary)


def _in_processing_order(flat, values, shape, compatible):
    """Candidates as ``(z, y, x)`` coordinates and scores, in processing order."""
    order = order_candidates(flat, values, shape, compatible)
    flat = flat[order]
    values = values[order]
    del order
    return unravel(flat, shape), values


class _PeakFilters:
    """The optional peak filters, in this order: minimum size (candidates within ``d``, the
    peak included; STOPGAP ``cluster_size``) and angular consistency. Called by the greedy
    exclusion with each batch of new peaks (positions into ``coords``); keeps the number of
    peaks each filter rejected and the value it measured for every peak it tested."""

    def __init__(self, coords, d, min_peak_size, angular_filter, angle_map, anglist,
                 numbering, n_sym):
        self.coords, self.d = coords, d
        self.min_peak_size, self.angular_filter = min_peak_size, angular_filter
        self.angle_map, self.anglist = angle_map, anglist
        self.numbering, self.n_sym = numbering, n_sym
        self.tests = []
        self.rejected = {"size": 0, "angular": 0}
        self.measured = {"size": {}, "angular": {}}
        if min_peak_size:
            from scipy.spatial import cKDTree
            self.tree = cKDTree(coords)
            self.tests.append(("size", self._size_ok))
        if angular_filter is not None:
            if anglist is None or angle_map is None:
                raise PeakPickingError("the angular consistency filter needs the angle map and "
                                       "list")
            self.tests.append(("angular", self._angular_ok))

    def _size_ok(self, idx):
        c = count_within(self.coords[idx], self.coords, self.d, tree=self.tree)
        self.measured["size"].update(zip(idx.tolist(), c.tolist()))
        return c >= int(self.min_peak_size)

    def _angular_ok(self, idx):
        af = self.angular_filter
        pts = self.coords[idx]
        rows, _ = angle_rows_at(self.angle_map, pts, len(self.anglist), self.numbering)
        c = angular_consistency(self.angle_map, pts, rows, self.anglist, self.numbering,
                                af.radius, af.max_angle, self.n_sym)
        self.measured["angular"].update(zip(idx.tolist(), c.tolist()))
        return c >= int(af.min_count)

    def __call__(self, idx):
        ok = np.ones(len(idx), bool)
        for name, test in self.tests:
            sub = np.flatnonzero(ok)
            if sub.size == 0:
                break
            good = test(idx[sub])
            self.rejected[name] += int((~good).sum())
            ok[sub[~good]] = False
        return ok

    def per_pick(self, picks):
        """``(peak sizes, angular counts)`` of the picks (-1 where a filter did not test the
        pick; None for a filter that is off)."""
        def values(name, on):
            return np.array([self.measured[name].get(int(i), -1) for i in picks]) if on else None
        return (values("size", bool(self.min_peak_size)),
                values("angular", self.angular_filter is not None))


def _orientations(angle_map, anglist, pc, numbering, n_sym, randomize_symmetry, seed):
    """``(angle rows, raw angle-map values, zxz angles)`` at the picks ``pc``; zeros (and NaN
    raw values) without an angle map."""
    if anglist is not None and angle_map is not None:
        rows, raw = angle_rows_at(angle_map, pc, len(anglist), numbering)
        ang = anglist[rows].copy()
        if n_sym > 1 and randomize_symmetry:
            ang[:, 0] = randomize_phi(ang[:, 0], n_sym, seed)
        return rows, raw, ang
    return np.zeros(len(pc), np.int64), np.full(len(pc), np.nan), np.zeros((len(pc), 3))
