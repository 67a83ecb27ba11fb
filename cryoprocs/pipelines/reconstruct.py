"""Subtomogram-average reconstruction jobs (file -> file), shared by ``cryoprocs reconstruct``
and the ReconstructSubtomoAverage protocol.

:class:`ReconstructJob` does what RELION 5.0.1 ``relion_tomo_reconstruct_particle`` does on a
RELION 5 project (particles.star + tomograms.star + per-tilt-series STARs + tilt stacks), with
its numbers (kernels/reconstruct.py, kernels/backprojection.py, kernels/symmetry.py):

* per tilt series (:meth:`ReconstructJob.accumulate_tilt_series`, one protocol step): the
  visible particles (``r < q < W - r`` with ``r = box/2`` unbinned px, RELION's
  reconstruction radius), frame by frame: boxes cut from the memory-mapped tilt image,
  Fourier slices, CTF x dose weights within the dose x-ranges, trilinear backprojection into
  double half spectra (data and weights) per half set. The partial sums are saved per tilt
  series (``<work>/partial/<tomo>.npz``), so a killed run resumes without redoing finished
  tilt series;
* :meth:`ReconstructJob.finalise`: symmetrisation, gridding correction, CTF division (RELION's
  heuristic, or Wiener with an SNR), taper, optional crop, the maps ``merged.mrc``,
  ``half1.mrc``, ``half2.mrc`` (voxel size = tilt-series pixel size x binning, origin 0), the
  FSC between the half maps (``fsc.star``, ``fsc.png``) and ``reconstruction.json``.

Memory: a worker holds two half spectra (data complex128 + weights float64: 48 bytes x
s^2 (s/2+1), 51 MB for box 128), the slices of one frame and one tilt image is memory-mapped
(only the boxes are read; touched pages are dropped after each frame).
"""
import contextlib
import json
import logging
import os
import threading
from concurrent.futures import ThreadPoolExecutor
from dataclasses import asdict, dataclass

import numpy as np

from ..constants import DEFAULT_SYMMETRY
from ..convert import outputs
from ..convert import relion5
from ..convert.euler import relion_euler_matrix
from ..convert.mrc import atomic_output, write_mrc
from ..convert.npz import write_npz
from ..convert.star import write_star
from ..kernels import backprojection
from ..kernels import ctf as ctf_kernels
from ..kernels import extract
from ..kernels import fsc
from ..kernels import reconstruct as reconstruct_kernels
from ..kernels import relion_geometry
from ..kernels import symmetry as symmetry_kernels
from .extract import frame_ctf
from .records import read_record, write_record
from .relion5_project import Relion5ProjectJob, iter_frames, safe_name

logger = logging.getLogger(__name__)

__all__ = ["ReconstructSettings", "ReconstructJob", "TomogramSums", "write_fsc_star",
           "write_fsc_plot"]


@dataclass
class ReconstructSettings:
    """Parameters of ``relion_tomo_reconstruct_particle`` (RELION option names in brackets).

    box : binned box size in px (``--b``); crop : output size (``--crop``, default box);
    binning : (``--bin``); symmetry : point group (``--sym``); snr : > 0 Wiener division by
    ``W + 1/snr`` (``--SNR``), <= 0 RELION's heuristic; do_ctf : CTF x dose weighting (not
    ``--no_ctf``); circle_crop : soft circle + background subtraction before the FFT (not
    ``--no_circle_crop``); max_dose : frames with a pre-exposure above this (e/Å²) are not
    used, <= 0 = all (cryoprocs option; RELION has none); cutoff_fraction : dose-weight
    cut-off of the x-ranges (``--cutoff_fract``); taper : edge taper in px (``--taper``);
    apply_offsets : fold rlnOrigin*Angst into positions; invert_contrast : multiply by -1.
    """
    box: int
    crop: int = None
    binning: float = 1.0
    symmetry: str = DEFAULT_SYMMETRY
    snr: float = -1.0
    do_ctf: bool = True
    circle_crop: bool = True
    max_dose: float = -1.0
    cutoff_fraction: float = 0.01
    taper: float = 10.0
    apply_offsets: bool = True
    invert_contrast: bool = True

    def __post_init__(self):
        if self.crop is None or int(self.crop) <= 0:
            self.crop = self.box
        self.box, self.crop = int(self.box), int(self.crop)
        self.binning = float(self.binning)
        self.snr = float(self.snr if self.snr is not None else -1.0)
        self.max_dose = float(self.max_dose if self.max_dose is not None else -1.0)

    def errors(self):
        """Problems with the values (empty list when valid)."""
        err = relion_geometry.box_errors(self.box, self.crop, self.binning, min_box=4)
        try:
            self.symmetry = symmetry_kernels.parse_symmetry(self.symmetry)
        except symmetry_kernels.SymmetryError as exc:
            err.append(str(exc))
        if not 0.0 <= self.cutoff_fraction < 1.0:
            err.append("dose cut-off fraction must be in [0, 1), got %g" % self.cutoff_fraction)
        if self.taper < 0:
            err.append("taper must be >= 0 px, got %g" % self.taper)
        return err

    @property
    def radius(self):
        """Visibility radius in unbinned px: ``box / 2`` (RELION reconstruct_particle.cpp,
        ``determineVisiblity(traj, s/2.0)``; not ``bin * box / 2``)."""
        return self.box / 2.0


@dataclass
class TomogramSums:
    """Accumulated half spectra of one tilt series (or of all). ``data`` ``(2, s, s, s/2+1)``
    complex128, ``weight`` the same shape float64; index 0/1 = half set 1/2 (everything in
    0 without half sets). Counts: particles used (>= 1 visible frame), skipped (none),
    slices backprojected."""
    data: np.ndarray
    weight: np.ndarray
    used: int = 0
    skipped: int = 0
    slices: int = 0

    @classmethod
    def zeros(cls, box):
        sh = int(box) // 2 + 1
        return cls(np.zeros((2, box, box, sh), np.complex128),
                   np.zeros((2, box, box, sh), np.float64))

    def add(self, other):
        self.data += other.data
        self.weight += other.weight
        self.used += other.used
        self.skipped += other.skipped
        self.slices += other.slices
        return self

    def save(self, path, fingerprint=""):
        """Write atomically (``.npz``) with the ``fingerprint`` of the inputs and settings."""
        os.makedirs(os.path.dirname(os.path.abspath(path)), exist_ok=True)
        return write_npz(path, {"data": self.data, "weight": self.weight,
                                "counts": np.array([self.used, self.skipped, self.slices]),
                                "fingerprint": np.array(str(fingerprint))})

    @classmethod
    def load(cls, path, fingerprint=None, box=None):
        """Read a saved sum; None when ``fingerprint`` is given and differs (stale file), or
        when the file is damaged or incomplete (truncated, not an ``.npz``, missing arrays,
        or spectra of another ``box`` size): a resumed run then redoes it."""
        try:
            with np.load(path, allow_pickle=False) as z:
                if fingerprint is not None and ("fingerprint" not in z.files
                                                or str(z["fingerprint"]) != str(fingerprint)):
                    return None
                c = z["counts"]
                out = cls(z["data"], z["weight"], int(c[0]), int(c[1]), int(c[2]))
        except Exception as exc:                # zipfile/pickle/OS errors of a bad file
            logger.warning("%s is damaged or incomplete (%s); it is computed again", path,
                           " ".join(str(exc).split()) or type(exc).__name__)
            return None
        if box is not None:
            want = (2, int(box), int(box), int(box) // 2 + 1)
            if out.data.shape != want or out.weight.shape != want:
                logger.warning("%s holds spectra of shape %s, not %s; it is computed again",
                               path, out.data.shape, want)
                return None
        return out


@dataclass
class TomogramPlan:
    """Geometry of the particles of one tilt series: ``rows`` into the particle table,
    decentred positions ``(n, 3)``, rotations ``E = A_subtomo A_particle`` ``(n, 3, 3)``,
    half set 0/1 ``(n,)``, visibility ``(F, n)``."""
    ts: relion5.TiltSeries
    rows: np.ndarray
    positions: np.ndarray
    rotations: np.ndarray
    halves: np.ndarray
    visible: np.ndarray

    @property
    def used(self):
        return self.visible.any(axis=0)


#: files a reconstruction writes into its output folder (besides the optional intermediates)
OUTPUT_NAMES = ("merged.mrc", "half1.mrc", "half2.mrc", "fsc.star", "fsc.png",
                "reconstruction.json")


class ReconstructJob(Relion5ProjectJob):
    """A RELION 5 subtomogram-average reconstruction of a whole project.

    Parameters
    ----------
    particles_star, tomograms_star : str
        Input files (RELION 5 project).
    output_dir : str
        Output folder (created).
    settings : ReconstructSettings
    project_dir : str, optional
        Directory the paths inside the STAR files are relative to (default: the current
        directory, as RELION).
    work_dir : str, optional
        Where the per-tilt-series partial sums go (default ``<output_dir>/partial``).
    backend : {"auto", "numba", "numpy"}
        Backprojection implementation (kernels/backprojection.py).

    nonfinite : {"error", "replace"}
        NaN / infinite pixels in the tilt images (checked before a tilt series is
        backprojected).

    Degenerate inputs (see the README): a box larger than the tilt images, or no particle
    visible in any tilt, is an error before any work; a half set without any visible
    particle gives the merged map only (no half maps, no FSC, no resolution) with a
    warning; particles without ``rlnAngleRot/Tilt/Psi`` are averaged in the tomogram's
    orientation with a warning (:attr:`warnings`, also in ``reconstruction.json``).

    Raises
    ------
    ValueError
        invalid settings, missing files or columns, bad ``rlnRandomSubset`` values (messages
        name tomograms and values), a box larger than the tilt images.
    OutputInUseError
        another run holds a tilt series or the maps this one writes (see
        :class:`~cryoprocs.pipelines.relion5_project.Relion5ProjectJob`).
    """

    output_names = OUTPUT_NAMES
    #: the settings that act before the finalisation (see :meth:`fingerprint`)
    fingerprint_keys = ("box", "binning", "do_ctf", "circle_crop", "max_dose",
                        "cutoff_fraction", "apply_offsets", "invert_contrast")
    fingerprint_version = 2

    def __init__(self, particles_star, tomograms_star, output_dir, settings, project_dir=None,
                 work_dir=None, backend="auto", nonfinite="error"):
        errs = settings.errors()
        if errs:
            raise reconstruct_kernels.ReconstructionError("; ".join(errs))
        super().__init__(particles_star, tomograms_star, output_dir, settings, project_dir,
                         nonfinite)
        self.backend = backend
        self.work_dir = os.path.abspath(work_dir or os.path.join(self.output_dir, "partial"))
        self.has_halves = "rlnRandomSubset" in self.parts.columns
        if self.has_halves:
            subsets = self.parts["rlnRandomSubset"].to_numpy()
            bad = sorted(set(int(v) for v in subsets) - {1, 2})
            if bad:
                raise relion5.Relion5Error("rlnRandomSubset must be 1 or 2, found %s in %s"
                                           % (bad, particles_star))
        first = self.tomograms.loc[self.tomograms["rlnTomoName"] == self.tomogram_order[0]]
        self.tilt_pixel_size = float(first.iloc[0]["rlnTomoTiltSeriesPixelSize"])
        #: voxel size of the maps (RELION: first tomogram's pixel size x binning)
        self.pixel_size = self.tilt_pixel_size * settings.binning
        self.plans = {}
        self._lock = threading.Lock()
        #: warnings about the inputs (logged, printed by the command, in reconstruction.json)
        self.warnings = []
        self._replace = {}                    # tilt series -> {file: value} (non-finite)
        missing = [c for c in relion5.ANGLE_COLUMNS if c not in self.parts.columns]
        if missing:
            self._warn("%s has no %s column%s: the particles are averaged in the orientation "
                       "of their tomogram, without any rotation" % (
                           particles_star, ", ".join(missing), "s" if len(missing) > 1 else ""))

    def _warn(self, msg):
        if msg not in self.warnings:
            self.warnings.append(msg)
            logger.warning(msg)

    def unbinned_box(self):
        return relion_geometry.box_sizes(self.settings.box, self.settings.binning)[0]

    # ------------------------------------------------------------------ planning
    def plan(self, tomo_name):
        """The :class:`TomogramPlan` of one tilt series (computed once)."""
        with self._lock:
            if tomo_name in self.plans:
                return self.plans[tomo_name]
        s = self.settings
        row = self.tomograms.loc[self.tomograms["rlnTomoName"] == tomo_name].iloc[0]
        ts = relion5.load_tilt_series(row, self.project_dir)
        self.check_box_fits(ts)
        rows = np.flatnonzero(self.parts["rlnTomoName"].to_numpy() == tomo_name)
        sub = self.parts.iloc[rows]
        pos = relion5.particle_positions(sub, self.pixel_size_of_group, ts.tomo_size,
                                         s.apply_offsets)
        n = len(rows)
        A_part = _angles(sub, relion5.ANGLE_COLUMNS, n)
        A_sub = _angles(sub, relion5.SUBTOMO_COLUMNS, n)
        halves = (sub["rlnRandomSubset"].to_numpy().astype(int) - 1 if self.has_halves
                  else np.zeros(n, int))
        q = relion_geometry.project(ts.matrices, pos)
        vis, _ = relion_geometry.select_frames(q, ts.image_size, s.radius, ts.pre_exposure,
                                               s.max_dose, 0)
        plan = TomogramPlan(ts, rows, pos, A_sub @ A_part, halves, vis)
        with self._lock:
            self.plans[tomo_name] = plan
        return plan

    def partial_file(self, tomo_name):
        return os.path.join(self.work_dir, "%s.npz" % safe_name(tomo_name))

    def tilt_series_record(self, tomo_name):
        return self.partial_file(tomo_name)

    def tilt_series_outputs(self, tomo_name):
        return [self.partial_file(tomo_name)]

    def shared_outputs(self):
        return super().shared_outputs() + [self.outputs_fingerprint_file]

    def run_fingerprint(self):
        """What the final maps depend on: every tilt series' :meth:`fingerprint` and all
        the settings (recorded in ``reconstruction.json``)."""
        return json.dumps({"tilt_series": [self.fingerprint(t) for t in self.tomogram_order],
                           "settings": asdict(self.settings), "half_sets": self.has_halves},
                          sort_keys=True)

    @property
    def outputs_fingerprint_file(self):
        """Written before the first map: the :meth:`run_fingerprint` the maps in the output
        folder come from (so a run killed while writing them resumes without --overwrite)."""
        return os.path.join(self.work_dir, "outputs.fingerprint")

    def _outputs_record(self):
        """The record of the maps in the output folder: ``{"run": fingerprint, "files":
        [names]}`` (None when there is none, or one of another format)."""
        try:
            rec = json.loads(read_record(self.outputs_fingerprint_file) or "null")
        except ValueError:
            return None
        return rec if isinstance(rec, dict) and "run" in rec and "files" in rec else None

    def maps_problem(self):
        """None when the output folder holds the maps of this run's inputs and settings (its
        record and every file it lists, MRC maps complete), else what is wrong."""
        from ..convert.mrc import is_complete_mrc
        rec = self._outputs_record()
        if rec is None or rec["run"] != self.run_fingerprint():
            return "the maps in %s come from other inputs or settings" % self.output_dir
        for name in rec["files"]:
            path = os.path.join(self.output_dir, name)
            if not os.path.exists(path) or (name.endswith(".mrc") and
                                            not is_complete_mrc(path)):
                return "%s is missing or incomplete" % path
        return None

    def output_files(self, write_intermediates=False, halves=None):
        """Names of the files :meth:`finalise` writes into the output folder (``halves``:
        with half maps; default :attr:`use_halves`)."""
        halves = self.use_halves if halves is None else halves
        tags = ["half1", "half2", "merged"] if halves else ["merged"]
        names = [t + ".mrc" for t in tags]
        if halves:
            names += ["fsc.star", "fsc.png"]
        names.append("reconstruction.json")
        if write_intermediates:
            for t in tags:
                names += ["data_%s.mrc" % t, "weight_%s.mrc" % t]
                if self.settings.crop < self.settings.box:
                    names.append("%s_full.mrc" % t)
        return names

    def existing_outputs_conflict(self, write_intermediates=False):
        """A message when the output folder holds files this run would replace that are not
        its own: maps made from other inputs or settings, or files cryoprocs did not write
        (e.g. RELION's ``data_*.mrc`` / ``weight_*.mrc`` with ``--write-intermediates``).
        None when there are none.

        The console command refuses to replace them without ``--overwrite``."""
        rec = self._outputs_record()
        mine = set(rec["files"]) if rec and rec["run"] == self.run_fingerprint() else set()
        candidates = set(OUTPUT_NAMES) | set(rec["files"] if rec else ()) | \
            set(self.output_files(write_intermediates, halves=self.has_halves))
        present = sorted(n for n in candidates
                         if os.path.lexists(os.path.join(self.output_dir, n)) and n not in mine)
        if not present:
            return None
        return ("%s holds %s, made from other inputs or settings, or not by cryoprocs "
                "reconstruct; pass --overwrite to replace them or choose another output folder"
                % (self.output_dir, ", ".join(present)))

    # ------------------------------------------------------------------ degenerate inputs
    def check_some_visible(self):
        """No particle visible in any tilt: an error before any work.

        Raises
        ------
        ReconstructionError
            naming the visibility rule and the particle count.
        """
        if sum(int(self.plan(t).used.sum()) for t in self.tomogram_order) == 0:
            s = self.settings
            raise reconstruct_kernels.ReconstructionError(
                "none of the %d particles is visible in any tilt (a particle counts in a tilt "
                "when it projects at least %g px from the image edges%s): nothing to "
                "reconstruct" % (len(self.parts), s.radius,
                                 " and the pre-exposure is <= %g e/A^2" % s.max_dose
                                 if s.max_dose > 0 else ""))

    def half_counts(self):
        """Visible particles in half sets 1 and 2."""
        counts = [0, 0]
        for t in self.tomogram_order:
            plan = self.plan(t)
            for h in (0, 1):
                counts[h] += int(((plan.halves == h) & plan.used).sum())
        return counts

    @property
    def use_halves(self):
        """Half maps and FSC are made only when both half sets hold visible particles (an
        empty half set: merged map only, with a warning; never a resolution)."""
        if not self.has_halves:
            return False
        counts = self.half_counts()
        if min(counts) == 0:
            empty = 1 if counts[0] == 0 else 2
            self._warn("half set %d (rlnRandomSubset %d) holds no visible particle (%d in half "
                       "set %d): only merged.mrc is written, without half maps, FSC or "
                       "resolution" % (empty, empty, max(counts), 3 - empty))
            return False
        return True

    # ------------------------------------------------------------------ accumulation
    def accumulate_tilt_series(self, tomo_name, threads=1, overwrite=False, save=True):
        """Backproject the particles of one tilt series (one protocol step).

        A saved partial sum is reused unless ``overwrite``. ``threads`` workers split the
        particles, each with its own accumulators. The run holds the claim of this tilt
        series only (:meth:`claim_tilt_series`: the steps of other tilt series run
        meanwhile). Returns :class:`TomogramSums`.
        """
        with outputs.run_scope():
            self.claim_tilt_series(tomo_name)
            return self._accumulate_tilt_series(tomo_name, threads, overwrite, save)

    def _accumulate_tilt_series(self, tomo_name, threads, overwrite, save):
        path = self.partial_file(tomo_name)
        fp = self.fingerprint(tomo_name)
        if not overwrite and os.path.exists(path):
            done = TomogramSums.load(path, fingerprint=fp, box=self.settings.box)
            if done is not None:
                logger.info("%s: partial sums found in %s", tomo_name, path)
                return done
            logger.info("%s: %s was made with other inputs or settings; redoing it",
                        tomo_name, path)
        plan = self.plan(tomo_name)
        replace = self._replace.get(tomo_name)
        if replace is None:
            replace = self.frame_replacements(tomo_name) if plan.used.any() else {}
        used = np.flatnonzero(plan.used)
        n_groups = max(1, min(int(threads), used.size))
        groups = [g for g in np.array_split(used, n_groups) if g.size] if used.size else []
        if len(groups) <= 1:
            parts = [self._accumulate(plan, groups[0] if groups else used, replace)]
        else:
            with ThreadPoolExecutor(max_workers=len(groups)) as pool:
                parts = list(pool.map(lambda g: self._accumulate(plan, g, replace), groups))
        total = parts[0]
        for p in parts[1:]:
            total.add(p)
        total.used = int(used.size)
        total.skipped = int(len(plan.rows) - used.size)
        if save:
            total.save(path, fp)
        return total

    def partial_done(self, tomo_name):
        """True when a usable partial sum of this run's inputs and settings exists (a
        complete ``.npz`` of this box size and fingerprint)."""
        path = self.partial_file(tomo_name)
        return os.path.exists(path) and TomogramSums.load(
            path, self.fingerprint(tomo_name), self.settings.box) is not None

    #: float32 elements of unbinned boxes processed at once (per frame)
    max_batch_elements = 4 * 1024 ** 2

    def _accumulate(self, plan, idx, replace=None):
        """Accumulate particles ``idx`` (indices into the plan) frame by frame (``replace``:
        non-finite replacements, :func:`~cryoprocs.pipelines.relion5_project.iter_frames`)."""
        s = self.settings
        b = s.box
        sums = TomogramSums.zeros(b)
        if idx.size == 0:
            return sums
        ts = plan.ts
        binning = s.binning
        s0, _ = relion_geometry.box_sizes(b, binning)
        ps_bin = ts.pixel_size * binning
        scale = self.pixel_size / ps_bin
        dose = ctf_kernels.dose_weights_half(ts.pre_exposure, b, ps_bin, ts.bfactor_per_dose)
        xr = reconstruct_kernels.dose_x_ranges(dose, s.cutoff_fraction)
        pos = plan.positions[idx]
        q = relion_geometry.project(ts.matrices, pos)
        dz = relion_geometry.depth_offsets(ts.matrices, pos, ts.tomo_size) if s.do_ctf else None
        vis = plan.visible[:, idx]
        halves = plan.halves[idx]
        rot = plan.rotations[idx]
        sign = -1.0 if s.invert_contrast else 1.0
        batch = max(1, self.max_batch_elements // (s0 * s0))
        boxes = lambda f: (extract.box_corners(q[f, np.flatnonzero(vis[f])], s0)[0], s0)  # noqa: E731
        for f, image in iter_frames(ts, boxes, replace, self.nonfinite):
            ii_all = np.flatnonzero(vis[f])
            for i0 in range(0, ii_all.size, batch):
                ii = ii_all[i0:i0 + batch]
                slices = reconstruct_kernels.frame_slices(image, q[f, ii], b, binning,
                                                          circle_crop=s.circle_crop,
                                                          backend=self.backend)
                ctf = None
                if s.do_ctf:
                    ctf = frame_ctf(ts, f, b, ps_bin, dz[f, ii]).reshape(len(ii), b, b // 2 + 1)
                wts = reconstruct_kernels.weight_slices(slices, xr[f], ctf, dose[f], sign)
                M = reconstruct_kernels.slice_matrices(ts.matrices[f], rot[ii], scale)
                mf = np.full(len(ii), xr[f, 0], dtype=np.int64)
                for h in (0, 1):
                    sel = np.flatnonzero(halves[ii] == h)
                    if sel.size:
                        backprojection.backproject(sums.data[h], sums.weight[h], slices[sel],
                                                   wts[sel], M[sel], mf[sel], backend=self.backend)
                sums.slices += len(ii)
        return sums

    # ------------------------------------------------------------------ whole run
    def run(self, threads=1, overwrite=False, write_intermediates=False, progress=None):
        """Accumulate every tilt series (in parallel when ``threads`` > 1), finalise and write
        the outputs, holding the claim of every tilt series and of the maps
        (:meth:`claim_all`). Returns the summary dict of :meth:`finalise`."""
        with outputs.run_scope():
            self.claim_all()
            return self._run(max(1, int(threads)), overwrite, write_intermediates, progress)

    def _run(self, threads, overwrite, write_intermediates, progress):
        names = list(self.tomogram_order)
        self.check_some_visible()                # degenerate inputs: before any work
        self.use_halves
        n_par = max(1, min(threads, len(names)))
        inner = max(1, threads // n_par)

        def scan(name):                          # non-finite pixels: before any work
            if self.plan(name).used.any() and (overwrite or not self.partial_done(name)):
                self._replace[name] = self.frame_replacements(name)

        _each(scan, names, n_par)

        def work(name):
            res = self.accumulate_tilt_series(name, threads=inner, overwrite=overwrite)
            if progress:
                progress(name, res)
            # the sums are on disk: keep only one volume set per worker in memory

        _each(work, names, n_par)
        return self.finalise(self.load_partials(), threads=threads,
                             write_intermediates=write_intermediates)

    def load_partials(self):
        """Sum of the saved partial sums of every tilt series, in tomogram order.

        Raises
        ------
        FileNotFoundError
            a tilt series has no partial sums yet (or only stale ones).
        """
        total = TomogramSums.zeros(self.settings.box)
        for name in self.tomogram_order:
            path = self.partial_file(name)
            part = TomogramSums.load(path, self.fingerprint(name), self.settings.box) \
                if os.path.exists(path) else None
            if part is None:
                raise FileNotFoundError("no partial sums for tilt series %s with these inputs "
                                        "and settings (%s)" % (name, path))
            total.add(part)
        return total

    def finalise(self, sums, threads=1, write_intermediates=False):
        """Symmetrise, reconstruct and write the maps, the FSC and ``reconstruction.json``.

        Returns a dict: ``particles``, ``used``, ``skipped``, ``slices``, ``pixel_size``,
        ``box``, ``crop``, ``files`` (name -> path), ``resolution`` (Å or None),
        ``resolution_at_nyquist``, ``fsc`` (list) and ``unknown_tomograms``. Holds the claim
        of the files it writes (:meth:`claim_shared`).
        """
        with outputs.run_scope():
            self.claim_shared()
            for name in self.output_files(write_intermediates, halves=self.has_halves):
                outputs.claim(os.path.join(self.output_dir, name), "output")
            return self._finalise(sums, threads, write_intermediates)

    def _finalise(self, sums, threads, write_intermediates):
        s = self.settings
        if sums.used == 0:
            self.check_some_visible()
        halves = self.use_halves
        names = self.output_files(write_intermediates)
        os.makedirs(self.output_dir, exist_ok=True)
        # the files of the reconstruction this one replaces go first, so the record written
        # next describes exactly the maps in the folder (a run killed afterwards resumes)
        rec = self._outputs_record()
        for n in (set(rec["files"]) if rec else set(OUTPUT_NAMES)) - set(names):
            with contextlib.suppress(FileNotFoundError):
                os.remove(os.path.join(self.output_dir, n))
        write_record(self.outputs_fingerprint_file,
                     json.dumps({"run": self.run_fingerprint(), "files": names},
                                sort_keys=True))
        data = sums.data.copy()
        weight = sums.weight.copy()
        R = symmetry_kernels.point_group_matrices(s.symmetry)
        if len(R):
            for h in (0, 1):
                data[h] = symmetry_kernels.symmetrise_fs(data[h], R)
                weight[h] = symmetry_kernels.symmetrise_fs(weight[h], R)
        crop = s.crop if s.crop < s.box else None
        files = {}
        maps = {}
        tags = ["half1", "half2", "merged"] if halves else ["merged"]
        for tag in tags:
            if tag == "merged":
                dfs = data[0] + data[1] if self.has_halves else data[0]
                wfs = weight[0] + weight[1] if self.has_halves else weight[0]
            else:
                h = int(tag[-1]) - 1
                dfs, wfs = data[h], weight[h]
            res = reconstruct_kernels.reconstruct_map(dfs, wfs, s.snr, crop, s.taper,
                                                      workers=threads)
            maps[tag] = res["map"]
            files[tag] = self._write_map(tag + ".mrc", res["map"])
            if write_intermediates:
                files["data_" + tag] = self._write_map("data_%s.mrc" % tag, res["data"])
                # RELION writes the weights of half 1 under weight_merged (writeOutput is
                # called with ctfImgFS[0]); we write the merged weights.
                files["weight_" + tag] = self._write_map(
                    "weight_%s.mrc" % tag, reconstruct_kernels.fftw_half_to_human_full(wfs))
                if crop is not None:
                    files[tag + "_full"] = self._write_map(tag + "_full.mrc", res["full"])
        summary = {"particles": int(sum(len(self.plan(t).rows) for t in self.tomogram_order)),
                   "used": int(sums.used), "skipped": int(sums.skipped),
                   "slices": int(sums.slices), "pixel_size": self.pixel_size,
                   "box": s.box, "crop": s.crop, "symmetry": s.symmetry,
                   "half_sets": halves, "warnings": list(self.warnings),
                   "unknown_tomograms": list(self.unknown_tomograms),
                   "resolution": None, "resolution_at_nyquist": False, "fsc": None}
        if halves:
            values = fsc.fsc(maps["half1"], maps["half2"], workers=threads)
            freqs = fsc.shell_frequencies(maps["half1"].shape[0], self.pixel_size)
            res_a, at_nyq = fsc.fsc_resolution(freqs, values, 0.143)
            summary.update(resolution=None if not np.isfinite(res_a) else float(res_a),
                           resolution_at_nyquist=bool(at_nyq), fsc=[float(v) for v in values],
                           fsc_frequencies=[float(f) for f in freqs])
            files["fsc_star"] = write_fsc_star(os.path.join(self.output_dir, "fsc.star"),
                                               freqs, values, res_a)
            try:
                files["fsc_png"] = write_fsc_plot(os.path.join(self.output_dir, "fsc.png"),
                                                  freqs, values, res_a, at_nyq)
            except ImportError as exc:          # pragma: no cover - matplotlib missing
                logger.warning("fsc.png not written: %s", exc)
        summary["files"] = files
        summary["settings"] = asdict(s)
        jpath = os.path.join(self.output_dir, "reconstruction.json")
        with atomic_output(jpath) as tmp:
            with open(tmp, "w") as fh:
                json.dump(summary, fh, indent=1)
        return summary

    def _write_map(self, name, vol):
        return write_mrc(os.path.join(self.output_dir, name), np.asarray(vol, np.float32),
                         voxel_size=self.pixel_size, origin=(0.0, 0.0, 0.0))


def _angles(df, columns, n):
    if all(c in df.columns for c in columns):
        return relion_euler_matrix(*(df[c].to_numpy(dtype=np.float64) for c in columns))
    return np.broadcast_to(np.eye(3), (n, 3, 3)).copy()


# ----------------------------------------------------------------------------- FSC files
def write_fsc_star(path, frequencies, values, resolution):
    """``data_general`` (``rlnFinalResolution``, Å) and ``data_fsc`` (``rlnSpectralIndex``,
    ``rlnResolution`` 1/Å, ``rlnAngstromResolution``, ``rlnFourierShellCorrelation``), as
    RELION's postprocessing tables."""
    import pandas as pd
    f = np.asarray(frequencies, dtype=np.float64)
    with np.errstate(divide="ignore"):
        ang = np.where(f > 0, 1.0 / np.where(f > 0, f, 1.0), 999.0)
    table = pd.DataFrame({"rlnSpectralIndex": np.arange(len(f)), "rlnResolution": f,
                          "rlnAngstromResolution": ang,
                          "rlnFourierShellCorrelation": np.asarray(values, np.float64)})
    res = float(resolution) if np.isfinite(resolution) else 999.0
    return write_star(path, {"general": {"rlnFinalResolution": res}, "fsc": table})


def write_fsc_plot(path, frequencies, values, resolution, at_nyquist=False, threshold=0.143,
                   title="FSC between half maps"):
    """PNG plot of the FSC against spatial frequency with the threshold line and the
    resolution (atomic write)."""
    import matplotlib
    matplotlib.use("Agg", force=False)
    from matplotlib.figure import Figure

    fig = Figure(figsize=(6, 4), dpi=100)
    ax = fig.add_subplot(111)
    ax.plot(frequencies, values, "-o", ms=3, color="tab:blue", label="FSC")
    ax.axhline(threshold, color="tab:red", ls="--", lw=1, label="%.3f" % threshold)
    if np.isfinite(resolution):
        ax.axvline(1.0 / resolution, color="tab:gray", ls=":", lw=1)
        label = "%s%.2f Å" % ("<= " if at_nyquist else "", resolution)
    else:
        label = "below %.3f at every shell" % threshold
    ax.set_title("%s: %s" % (title, label))
    ax.set_xlabel("spatial frequency (1/Å)")
    ax.set_ylabel("FSC")
    ax.set_ylim(min(-0.1, float(np.min(values)) - 0.05), 1.05)
    ax.grid(alpha=0.3)
    ax.legend(loc="upper right")
    fig.tight_layout()
    with atomic_output(path) as tmp:
        fig.savefig(tmp, format="png")
    return path


def _each(function, names, n_par):
    """``function(name)`` for every name: in order, or in ``n_par`` threads."""
    if n_par == 1:
        for n in names:
            function(n)
    else:
        with ThreadPoolExecutor(max_workers=n_par) as pool:
            list(pool.map(function, names))
