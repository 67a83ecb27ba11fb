"""Peak picking in template-matching score maps, with cryoCAT ``scores_extract_particles``
semantics (cryoCAT 0.7.1, ``cryocat/tmana.py``) and an order of magnitude less time and memory.

Everything here works on NumPy arrays (``numpy.memmap`` included) in MRC order ``[z, y, x]``
(x = MRC column, the fastest axis); nothing is transposed or copied whole. The semantics are
re-stated in docs/peak-picking.md, not copied from cryoCAT:

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

Modules: :mod:`.reductions` (exact NumPy float32 reductions), :mod:`.maps` (streaming passes,
statistics, scattered reads), :mod:`.thresholds` (one rule object per mode),
:mod:`.candidates`, :mod:`.exclusion` (greedy exclusion), :mod:`.angles` (angle lists,
symmetry, angular filters) and :mod:`.driver` (:func:`pick_peaks`). The names below are the
public interface; ``from cryoprocs.kernels import peaks`` gives all of them.
"""
from .angles import (ANGLE_ORDERS, AngularFilter, angle_rows_at, angular_consistency,
                     angular_distance_tables, load_angle_list, randomize_phi, symmetry_order,
                     zxz_rotations)
from .candidates import find_candidates, order_candidates, unravel
from .driver import PickResult, pick_peaks
from .errors import AngleIndexError, PeakPickingError
from .exclusion import count_within, greedy_exclusion
from .maps import (CHUNK, MASK_MODES, SAMPLE_STRIDE, MapPass, MapStatistics, gather,
                   map_statistics)
from .reductions import (NUMPY_BUFSIZE, NumpySum, float32_sort_key, float64_to_float32_floor,
                         numpy_mean_std)
from .thresholds import (THRESHOLD_MODES, describe_threshold, direct_threshold,
                         expected_false_positives, false_positive_k, percentile_threshold,
                         sigma_threshold, threshold_rule, triangle_threshold,
                         triangle_threshold_sorted)

__all__ = [
    "THRESHOLD_MODES", "MASK_MODES", "ANGLE_ORDERS", "NUMPY_BUFSIZE", "CHUNK", "SAMPLE_STRIDE",
    "PeakPickingError", "AngleIndexError",
    "NumpySum", "float32_sort_key", "numpy_mean_std", "float64_to_float32_floor",
    "false_positive_k", "expected_false_positives", "sigma_threshold", "direct_threshold",
    "triangle_threshold_sorted", "triangle_threshold", "percentile_threshold",
    "threshold_rule", "describe_threshold",
    "MapPass", "MapStatistics", "map_statistics",
    "find_candidates", "order_candidates", "greedy_exclusion", "count_within",
    "load_angle_list", "angle_rows_at", "gather", "symmetry_order", "randomize_phi",
    "zxz_rotations", "angular_distance_tables", "angular_consistency",
    "AngularFilter", "PickResult", "pick_peaks", "unravel",
]
