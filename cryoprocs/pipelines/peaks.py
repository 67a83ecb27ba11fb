"""File-level peak picking: template-matching score and angle maps (MRC or EM) -> oriented
picks, their exports (CSV, RELION 5 / STOPGAP STAR, EM motive list), diagnostics and angular
distance maps.

Used by the ``cryoprocs pick`` command and by ProtCryoprocsScoresPeakPicking. Maps are opened
memory-mapped (``mrcfile.mmap`` / ``numpy.memmap`` for EM) and never copied whole; the angle map
is read only at the picks. The maths is in :mod:`cryoprocs.kernels.peaks`.
"""
import contextlib
import json
import os
import threading
from dataclasses import asdict, dataclass
from typing import Optional, Sequence

import numpy as np

from ..constants import DEFAULT_SYMMETRY
from ..convert import motl
from ..convert.em import mmap_em
from ..convert.images import image_info, is_image_store, open_image
from ..convert.mrc import (FiniteGuard, MrcFormatError, atomic_output, check_same_grid,
                           finish_mrc, mmap_mrc, mrc_info, new_mrc)
from ..convert.npz import write_npz
from ..kernels import peaks as peaks_kernels
from ..kernels.pages import release_pages

__all__ = ["PickOptions", "open_volume", "volume_shape", "header_value_range", "volume_max",
           "pick_volumes", "save_result", "load_result", "TomogramPicks", "export_picks",
           "plot_diagnostics", "write_angular_distance_maps", "result_summary",
           "EM_EXTENSIONS", "OUTPUT_FORMATS"]

EM_EXTENSIONS = (".em",)
OUTPUT_FORMATS = (".csv", ".star", ".em")


@contextlib.contextmanager
def open_volume(path):
    """Yield ``(data, voxel_size)``: a read-only memory-mapped ``[z, y, x]`` array of an MRC or
    EM file and its voxel size in Å (None when the header has none: EM, or 0 / 1 in MRC);
    an OME-Zarr image (local or URL) is read into memory.

    Raises
    ------
    ValueError
        (:class:`MrcFormatError` / :class:`EmFormatError`) missing or unreadable file, or a
        file that is not a 3D volume.
    """
    if is_image_store(path):
        # OME-Zarr (local or remote): the kernels need an array, so the level is read into
        # memory (about the map's size), chunk by chunk
        img = open_image(path)
        try:
            if img.shape[0] < 1:
                raise MrcFormatError("%s is not a 3D volume (shape %s)" % (path, img.shape))
            vs = float(img.voxel_size[0])
            yield img.full(), (vs if vs > 0 and vs != 1.0 else None)
        finally:
            img.close()
        return
    if str(path).lower().endswith(EM_EXTENSIONS):
        data = mmap_em(path)
        try:
            yield data, None
        finally:
            mm = getattr(data, "_mmap", None)
            del data
            if mm is not None:
                with contextlib.suppress(BufferError, ValueError):
                    mm.close()
        return
    mrc = mmap_mrc(path, permissive=True)
    try:
        data = mrc.data
        if data is None or data.ndim != 3:
            raise MrcFormatError("%s is not a 3D volume (shape %s)"
                                 % (path, None if data is None else data.shape))
        vs = float(mrc.voxel_size.x)
        yield data, (vs if vs > 0 and vs != 1.0 else None)
    finally:
        mrc.close()


def header_value_range(path):
    """``(min, max)`` of an MRC volume from its header statistics, or None when the header
    has none (dmax < dmin, as unset) or the file is not MRC. Reads only the header."""
    if str(path).lower().endswith(EM_EXTENSIONS) or is_image_store(path):
        return None
    try:
        import mrcfile
        with mrcfile.open(path, header_only=True, permissive=True) as mrc:
            lo, hi = float(mrc.header.dmin), float(mrc.header.dmax)
    except Exception:
        return None
    if not (np.isfinite(lo) and np.isfinite(hi)) or hi < lo or (lo == 0 and hi == 0):
        return None
    return lo, hi


def volume_shape(path):
    """``(nz, ny, nx)`` of an MRC, EM or OME-Zarr volume from its header or metadata.

    ``cryoprocs pick`` checks ``--min-distance`` against the map with it before any map is
    read: :func:`pick_volumes` reads an OME-Zarr level whole into memory first."""
    if is_image_store(path):
        return tuple(int(v) for v in image_info(path).shape)
    with open_volume(path) as (data, _):
        return tuple(int(v) for v in data.shape)


def volume_max(path, slab_bytes=64 * 2 ** 20):
    """Largest value of a volume (MRC, EM or OME-Zarr): the header's ``dmax`` when the header
    has statistics (:func:`header_value_range`), else read in slabs of z of about
    ``slab_bytes``, stopping at the first slab holding a value > 0 (a mask's check: only
    an all-zero volume is read whole, page by page).

    The header's statistics are trusted only once the header matches the file
    (:func:`~cryoprocs.convert.mrc.mrc_info`: size, mode, dimensions).

    Raises
    ------
    ValueError
        (:class:`MrcFormatError`) missing or unreadable file, a header that does not match
        the file, or not a 3D volume.
    """
    if not (str(path).lower().endswith(EM_EXTENSIONS) or is_image_store(path)):
        mrc_info(path)
    rng = header_value_range(path)
    if rng is not None:
        return float(rng[1])
    with open_volume(path) as (data, _):
        nz = data.shape[0]
        step = max(1, int(slab_bytes // max(1, data[0].nbytes)))
        best = -np.inf
        for z0 in range(0, nz, step):
            best = max(best, float(np.max(data[z0:z0 + step])))
            if best > 0:
                break
    return best


@dataclass
class PickOptions:
    """Every parameter of a pick (see :func:`cryoprocs.kernels.peaks.pick_peaks`).

    ``min_distance`` is in voxels of the score map; ``max_picks`` None means all.
    """
    min_distance: float
    threshold_mode: str = "false-positives"
    threshold: float = None
    sigma: float = 3.0
    percentile: float = 99.5
    n_false_positives: float = 10.0
    max_picks: int = None
    border: int = 0
    mask_mode: str = "multiply"
    angles_order: str = "zxz"
    angles_numbering: int = 0
    symmetry: str = DEFAULT_SYMMETRY
    randomize_symmetry: bool = True
    seed: int = 0
    min_peak_size: int = None
    angular_filter: dict = None          # {"min_count", "max_angle", "radius"}
    compatible: bool = False

    def kernel_kwargs(self):
        kw = asdict(self)
        af = kw.pop("angular_filter")
        kw["angular_filter"] = peaks_kernels.AngularFilter(**af) if af else None
        return kw

    def describe(self):
        """One sentence with the threshold rule and the exclusion distance."""
        thr = peaks_kernels.describe_threshold(self.threshold_mode, threshold=self.threshold,
                                               sigma=self.sigma, percentile=self.percentile,
                                               n_false_positives=self.n_false_positives)
        s = "%s, picks more than %g voxels apart" % (thr, self.min_distance)
        if self.max_picks:
            s += ", at most %d per tomogram" % self.max_picks
        if self.border:
            s += ", %d-voxel border excluded" % self.border
        if self.min_peak_size:
            s += ", minimum peak size %d voxels" % self.min_peak_size
        if self.angular_filter:
            af = self.angular_filter
            s += (", at least %d voxels within %g voxels with orientations within %g deg"
                  % (af["min_count"], af["radius"], af["max_angle"]))
        if self.compatible:
            s += " (cryoCAT-compatible)"
        return s


def pick_volumes(scores_path, angles_path, angle_list, options, mask_path=None, progress=None,
                 nonfinite="error"):
    """Pick peaks in a score map file with its angle map file.

    Parameters
    ----------
    scores_path, angles_path : str
        MRC or EM volumes of the same shape (``angles_path`` may be None: no orientations).
    angle_list : str or ndarray
        Angle list (CSV, 3 columns, no header) or array.
    options : PickOptions
    mask_path : str, optional
        Tomogram mask of the same shape and voxel size (within 1 %).
    nonfinite : {"error", "replace"}
        NaN / infinite values in the score map or the mask are an error naming the file, the
        count and the first [z, y, x] (:class:`~cryoprocs.convert.mrc.NonFiniteError`), or
        are replaced by the mean of the file's finite values (then the map is held in
        memory, as a copy).

    Returns
    -------
    result : cryoprocs.kernels.peaks.PickResult
    info : dict
        ``shape`` (nz, ny, nx), ``voxel_size`` (Å or None) of the score map.

    Raises
    ------
    ValueError
        unreadable files, shape or voxel-size mismatches, bad angle indices, a minimum
        distance larger than the map, non-finite values (the message names the values).
    """
    with contextlib.ExitStack() as stack:
        scores, vs = stack.enter_context(open_volume(scores_path))
        diagonal = float(np.sqrt(sum((s - 1) ** 2 for s in scores.shape)))
        if not float(options.min_distance) <= diagonal:
            raise peaks_kernels.PeakPickingError(
                "the minimum distance %g voxels is larger than the score map %s (diagonal "
                "%.1f voxels): every pick would exclude all the others"
                % (float(options.min_distance), scores_path, diagonal))
        angles = mask = None
        if angles_path:
            angles, _ = stack.enter_context(open_volume(angles_path))
            if angles.shape != scores.shape:
                raise peaks_kernels.PeakPickingError(
                    "angle map %s has %s voxels (x, y, z) but the score map %s has %s"
                    % (angles_path, angles.shape[::-1], scores_path, scores.shape[::-1]))
        if mask_path:
            mask, _ = stack.enter_context(open_volume(mask_path))
            if mask.shape != scores.shape:
                raise peaks_kernels.PeakPickingError(
                    "mask %s has %s voxels (x, y, z) but the score map %s has %s"
                    % (mask_path, mask.shape[::-1], scores_path, scores.shape[::-1]))
            _check_mask_voxel_size(scores_path, mask_path)
            mask = _finite(mask_path, mask, nonfinite, always=True)
        guard = FiniteGuard(scores_path, scores, nonfinite)
        if nonfinite == "replace":
            scores = _finite(scores_path, scores, nonfinite)
        try:
            # non-finite values are checked here (below): no numpy warnings about them
            with np.errstate(invalid="ignore", over="ignore"):
                result = peaks_kernels.pick_peaks(scores, angles,
                                                  angle_list if angles_path else None,
                                                  progress=progress, mask=mask,
                                                  **options.kernel_kwargs())
        except peaks_kernels.PeakPickingError:
            guard.check_all()        # the kernel's "contains NaN": name the file and voxels
            if angles is not None:
                FiniteGuard(angles_path, angles, "error").check_all()
            raise
        return result, {"shape": tuple(int(v) for v in scores.shape), "voxel_size": vs}


def _finite(path, data, policy, always=False):
    """``data`` after a non-finite scan (``always``, or with the "replace" policy): itself
    when finite; with "replace", an in-memory copy with the non-finite values replaced."""
    guard = FiniteGuard(path, data, policy)
    if guard.check_all():
        mean = guard.result[2]
        return np.where(np.isfinite(data), data, mean).astype(data.dtype.newbyteorder("="))
    return data


def _check_mask_voxel_size(scores_path, mask_path):
    """Both voxel sizes from MRC headers (EM has none; 0 or 1 Å count as unset, as in
    :func:`open_volume`): within 1 %."""
    if str(scores_path).lower().endswith(EM_EXTENSIONS) or \
            str(mask_path).lower().endswith(EM_EXTENSIONS):
        return
    a, b = image_info(scores_path), image_info(mask_path)
    if 1.0 in (a.voxel_size[0], b.voxel_size[0]):
        return
    check_same_grid(scores_path, a, mask_path, b, "mask")


_ARRAYS = ("coords", "scores", "angle_rows", "angle_map_values", "angles", "candidate_scores",
           "pick_ranks", "sample", "peak_sizes", "angular_counts")
_SCALARS = ("threshold", "threshold_mode", "n_voxels", "mean", "std", "n_candidates", "n_peaks",
            "n_rejected_size", "n_rejected_angular", "expected_false_positives", "k_sigma",
            "stopped_early", "capped", "maximum")


def save_result(path, result, **extra):
    """Store a PickResult (and ``extra`` JSON-able values) in an ``.npz`` file, atomically.

    More than 200,000 candidate scores are thinned to a curve of about 100,000 (log-spaced
    ranks, the last one kept), stored with their ranks."""
    arrays = {}
    for name in _ARRAYS:
        v = getattr(result, name)
        if v is not None:
            arrays[name] = np.asarray(v)
    ranks = result.candidate_ranks
    if arrays.get("candidate_scores") is not None and arrays["candidate_scores"].size > 200000:
        cs = arrays["candidate_scores"]           # keep the curve, not millions of values
        idx = np.unique(np.concatenate([np.geomspace(1, cs.size, 100000).astype(np.int64) - 1,
                                        [cs.size - 1]]))
        ranks = idx if ranks is None else np.asarray(ranks)[idx]
        arrays["candidate_scores"] = cs[idx]
    if ranks is not None:
        arrays["candidate_scores_index"] = np.asarray(ranks)
    meta = {name: _jsonable(getattr(result, name)) for name in _SCALARS}
    meta["messages"] = list(result.messages)
    meta.update({k: _jsonable(v) for k, v in extra.items()})
    arrays["meta"] = np.array(json.dumps(meta))
    return write_npz(path, arrays)


def _jsonable(v):
    if isinstance(v, (np.floating, np.integer, np.bool_)):
        return v.item()
    if isinstance(v, tuple):
        return list(v)
    return v


#: the PickResult fields a stored result must hold
_REQUIRED = ("coords", "scores", "angle_rows", "angle_map_values", "angles", "threshold",
             "threshold_mode", "n_voxels", "mean", "std", "n_candidates", "n_peaks")


def load_result(path):
    """A result stored by :func:`save_result`: ``(PickResult, extra)``, with ``extra`` the
    values given to :func:`save_result` as keywords (e.g. ``tsId``, ``shape``).

    A thinned candidate curve keeps its ranks in ``PickResult.candidate_ranks``.

    Raises
    ------
    OSError
        missing or unreadable file.
    ValueError
        not an ``.npz`` file, or one without the fields of a pick result.
    """
    with np.load(path, allow_pickle=False) as z:
        arrays = {k: z[k] for k in z.files if k != "meta"}
        meta = json.loads(str(z["meta"])) if "meta" in z.files else {}
    fields = {name: arrays.get(name) for name in _ARRAYS}
    fields.update({name: meta.pop(name) for name in _SCALARS if name in meta})
    missing = [name for name in _REQUIRED if fields.get(name) is None]
    if missing:
        raise ValueError("%s is not a pick result: it lacks %s" % (path, ", ".join(missing)))
    fields["messages"] = list(meta.pop("messages", []))
    fields["candidate_ranks"] = arrays.get("candidate_scores_index")
    return peaks_kernels.PickResult(**fields), meta


@dataclass
class TomogramPicks:
    """The picks of one tomogram as they are exported (:func:`export_picks`).

    ``xyz0`` (N, 3): 0-based voxels ``(x, y, z)`` of the tomogram (x = MRC column); ``scores``
    (N,); ``angles`` (N, 3): zxz ``phi, theta, psi`` in degrees; ``tomo_name``
    (``rlnTomoName``), ``tomo_id`` (motive-list tomogram number), ``shape_xyz`` (nx, ny, nz)
    and ``pixel_size`` (Å), needed by RELION 5 coordinates.
    """
    xyz0: np.ndarray
    scores: np.ndarray
    angles: np.ndarray
    tomo_name: str = "tomo"
    tomo_id: int = 1
    shape_xyz: Optional[Sequence[int]] = None
    pixel_size: Optional[float] = None

    @classmethod
    def from_result(cls, result, **kwargs):
        """The picks of a :class:`~cryoprocs.kernels.peaks.PickResult` in the voxels of its
        score map; ``kwargs``: the other fields."""
        return cls(np.asarray(result.coords)[:, ::-1], result.scores, result.angles, **kwargs)


def export_picks(path, picks, star_format="relion5", overwrite=True):
    """Write the picks of one or more tomograms by the extension of ``path``.

    * ``.csv``: ``x,y,z`` (0-based voxels, x = MRC column), ``score``, ``phi,theta,psi`` (zxz);
      one tomogram only.
    * ``.star``: RELION 5 particles (``star_format="relion5"``; needs each tomogram's
      ``pixel_size`` in Å and ``shape_xyz``; particle names numbered from 1 per tomogram) or a
      STOPGAP motive list (``"stopgap"``).
    * ``.em``: cryoCAT/TOM EM motive list (1 x N x 20, 1-based coordinates).

    Motive lists number the particles 1..N over all the tomograms, in order.

    Parameters
    ----------
    path : str
    picks : TomogramPicks or sequence of TomogramPicks

    Raises
    ------
    ValueError
        another extension or star format, several tomograms in a CSV, RELION 5 coordinates
        without a shape or pixel size.
    FileExistsError
        ``path`` exists and not ``overwrite``.
    """
    if isinstance(picks, TomogramPicks):
        picks = [picks]
    ext = os.path.splitext(str(path))[1].lower()
    if ext not in OUTPUT_FORMATS:
        raise ValueError("output %s: the extension must be one of %s"
                         % (path, ", ".join(OUTPUT_FORMATS)))
    if not overwrite and os.path.exists(path):
        raise FileExistsError("output %s exists; pass --overwrite to replace it" % path)
    if ext == ".csv":
        if len(picks) != 1:
            raise ValueError("output %s: a picks CSV holds one tomogram; got %d"
                             % (path, len(picks)))
        p = picks[0]
        return motl.write_picks_csv(path, p.xyz0, p.scores, p.angles)
    if ext == ".em":
        return motl.write_em_motl(path, _motive_list(picks))
    if star_format == "stopgap":
        return motl.write_stopgap_star(path, _motive_list(picks))
    if star_format != "relion5":
        raise ValueError("star format must be relion5 or stopgap; got %r" % star_format)
    return motl.write_relion5_particles(path, _relion5_table(picks))


def _motive_list(picks):
    """One motive-list table of all the tomograms' picks, ``subtomo_id`` 1..N in order."""
    import pandas as pd

    tables, first = [], 1
    for p in picks:
        tables.append(motl.motl_from_picks(p.xyz0, p.scores, p.angles, tomo_id=p.tomo_id,
                                           first_id=first))
        first += len(tables[-1])
    return pd.concat(tables, ignore_index=True)


def _relion5_table(picks):
    """One RELION 5 particle table of all the tomograms' picks."""
    import pandas as pd

    tables = []
    for p in picks:
        if p.shape_xyz is None:
            raise ValueError("RELION 5 coordinates need the tomogram shape")
        tables.append(motl.relion5_from_picks(p.xyz0, p.angles, p.tomo_name,
                                              tuple(p.shape_xyz), p.pixel_size,
                                              scores=p.scores))
    return pd.concat(tables, ignore_index=True)


def result_summary(result, name=None):
    """One line with the numbers of a pick (threshold, candidates, picks, false positives)."""
    s = "%sthreshold %.6g (%s, = mean + %.2f std), %d candidate voxels, %d picks, %.3g " \
        "expected false positives at this threshold" % (
            "%s: " % name if name else "", result.threshold, result.threshold_mode,
            result.k_sigma, result.n_candidates, result.n_picks,
            result.expected_false_positives)
    rej = []
    if result.n_rejected_size:
        rej.append("%d peaks below the minimum size" % result.n_rejected_size)
    if result.n_rejected_angular:
        rej.append("%d peaks without angular consistency" % result.n_rejected_angular)
    if rej:
        s += " (rejected: %s)" % ", ".join(rej)
    if result.capped:
        s += "; stopped at the maximum number of picks"
    return s


#: matplotlib is not thread-safe (protocol steps run in threads): one figure at a time
_PLOT_LOCK = threading.Lock()


def plot_diagnostics(path, result, title=""):
    """PNG with the score histogram (Gaussian model, threshold) and the sorted candidate scores
    (picks marked), annotated with threshold, candidates, picks and expected false positives."""
    with _PLOT_LOCK:
        return _plot_diagnostics(path, result, title)


def _plot_diagnostics(path, result, title):
    from matplotlib.figure import Figure
    from matplotlib.backends.backend_agg import FigureCanvasAgg

    thr = float(result.threshold)
    mean, std = float(result.mean), float(result.std)
    sample = np.asarray(result.sample if result.sample is not None else [], dtype=np.float64)
    fig = Figure(figsize=(11, 4.2), dpi=100)
    FigureCanvasAgg(fig)
    ax1, ax2 = fig.subplots(1, 2)
    if sample.size:
        lo, hi = float(sample.min()), max(float(sample.max()), thr)
        bins = np.linspace(lo, hi, 200)
        h, e = np.histogram(sample, bins=bins)
        ax1.step(e[:-1], np.maximum(h, 0.5), where="post", color="0.3", lw=1,
                 label="map values (1 in %d)" % peaks_kernels.SAMPLE_STRIDE)
        if std > 0:
            x = 0.5 * (e[:-1] + e[1:])
            gauss = sample.size * (e[1] - e[0]) * np.exp(-0.5 * ((x - mean) / std) ** 2) / \
                (std * np.sqrt(2 * np.pi))
            ax1.plot(x, np.maximum(gauss, 1e-3), color="tab:blue", lw=1,
                     label="Gaussian (mean, std)")
        ax1.set_yscale("log")
        ax1.set_ylim(0.5, None)
    ax1.axvline(thr, color="tab:red", lw=1.2, label="threshold %.4g" % thr)
    ax1.set_xlabel("score")
    ax1.set_ylabel("voxels")
    ax1.legend(fontsize=8, loc="upper right")
    cs = np.asarray(result.candidate_scores if result.candidate_scores is not None else [])
    ci = np.asarray(result.candidate_ranks) if result.candidate_ranks is not None \
        else np.arange(cs.size)
    if cs.size:
        ax2.plot(ci + 1, cs, color="0.3", lw=1, label="candidates (sorted)")
    ps = np.asarray(result.scores)
    if ps.size:
        ax2.plot(np.arange(1, ps.size + 1), ps, color="tab:orange", lw=1.5,
                 label="picks (%d), by pick number" % ps.size)
    if cs.size or ps.size:
        ax2.set_xscale("log")
    ax2.axhline(thr, color="tab:red", lw=1.2)
    ax2.set_xlabel("rank (candidate voxels / picks)")
    ax2.set_ylabel("score")
    if cs.size or ps.size:
        ax2.legend(fontsize=8, loc="upper right")
    text = ("threshold %.5g (%s) = mean + %.2f std\ncandidates %d, picks %d\n"
            "expected false positives %.3g" % (thr, result.threshold_mode, result.k_sigma,
                                               result.n_candidates, result.n_picks,
                                               result.expected_false_positives))
    ax2.text(0.02, 0.03, text, transform=ax2.transAxes, fontsize=8, va="bottom",
             bbox=dict(facecolor="white", alpha=0.8, edgecolor="0.7"))
    if title:
        fig.suptitle(title, fontsize=10)
    fig.tight_layout()
    with atomic_output(path) as tmp:
        fig.savefig(tmp, format="png")
    return path


def write_angular_distance_maps(angles_path, angle_list, out_paths, angles_order="zxz",
                                numbering=0, symmetry=1, voxel_size=None, chunk=1 << 22):
    """Angular distance of every voxel's orientation to the first row of the angle list
    (cryoCAT ``create_angular_distance_maps``): ``out_paths = {"total": ..., "normal": ...,
    "inplane": ...}`` (float32 MRC, degrees), streamed slab by slab.

    Raises
    ------
    cryoprocs.kernels.peaks.AngleIndexError
        the map holds values outside the angle list for this numbering.
    """
    anglist = peaks_kernels.load_angle_list(angle_list, angles_order)
    tables = dict(zip(("total", "normal", "inplane"),
                      peaks_kernels.angular_distance_tables(
                          anglist, peaks_kernels.symmetry_order(symmetry))))
    n_ang = len(anglist)
    with open_volume(angles_path) as (amap, _):
        shape = amap.shape
        flat = amap.reshape(-1)
        with contextlib.ExitStack() as stack:
            outs = {}
            for name, path in out_paths.items():
                tmp = stack.enter_context(atomic_output(path))
                outs[name] = new_mrc(tmp, shape, np.float32, voxel_size=voxel_size)
            try:
                oflat = {name: m.data.reshape(-1) for name, m in outs.items()}
                for s in range(0, flat.size, chunk):
                    v = np.asarray(flat[s:s + chunk])
                    rows = v.astype(np.int64) - int(numbering)
                    bad = (rows < 0) | (rows >= n_ang) | ~np.isfinite(v)
                    if bad.any():
                        raise peaks_kernels.AngleIndexError(
                            "angle map %s holds values %s..%s that do not index the %d-row "
                            "angle list with %d-based numbering"
                            % (angles_path, v[bad].min(), v[bad].max(), n_ang, numbering))
                    for name in outs:
                        oflat[name][s:s + chunk] = tables[name][rows]
                    release_pages(flat, s, min(flat.size, s + chunk))
            finally:
                for m in outs.values():
                    finish_mrc(m)
    return out_paths
