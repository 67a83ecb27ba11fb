"""Subtomogram extraction jobs (file -> file), shared by ``cryoprocs extract`` and the
ExtractSubtomos protocol.

* :class:`Stack2DJob`: RELION 5 ``relion_tomo_subtomo --stack2d`` on a RELION 5 project
  (particles.star + tomograms.star + per-tilt-series STARs + tilt stacks) with RELION's
  numbers (kernels/extract.py), output layout and STAR files
  (``<o>/Subtomograms/<tomo>/<k>_stack2d.mrcs``, ``<o>/particles.star``,
  ``<o>/optimisation_set.star``).
* :func:`extract_subvolumes`: plain 3D sub-volumes cut from a tomogram.

Streaming: tilt images are memory-mapped (convert.mrc.MappedMrc) and only the boxes are
gathered from them, frame by frame, for a group of particles at a time; touched pages are
handed back after each frame, so the resident memory stays near the size of the output
stacks of one group (bounded by ``max_group_bytes``). Outputs are written under a temporary
name and renamed; a re-run skips particles whose stack exists (resume).
"""
import json
import logging
import math
import os
import threading
from concurrent.futures import ThreadPoolExecutor
from dataclasses import asdict, dataclass

import mrcfile
import numpy as np

from ..convert import outputs
from ..convert import relion5
from ..convert.images import is_url, open_image, signature_files
from ..convert.mrc import atomic_output, is_complete_mrc, write_mrc
from ..convert.paths import check_replace
from ..kernels import ctf as ctf_kernels
from ..kernels import extract as extract_kernels
from ..kernels import relion_geometry
from .records import claim_outputs, file_signature, read_record, write_record
from .relion5_project import Relion5ProjectJob, iter_frames, safe_name

logger = logging.getLogger(__name__)

__all__ = ["Stack2DSettings", "Stack2DJob", "TiltSeriesPlan", "write_stack",
           "extract_subvolumes", "SubvolumeSettings", "iter_frames", "valid_output"]


def valid_output(path, shape, modes=(2,)):
    """:func:`~cryoprocs.convert.mrc.is_complete_mrc` (a resumed run's check)."""
    return is_complete_mrc(path, shape, modes)


# ============================================================================ 2D stacks
def frame_ctf(ts, f, box, pixel_size, depth):
    """RELION's CTF of frame ``f`` on the ``box`` half grid at ``pixel_size`` Å, for
    particles at projected depths ``depth`` (px, ``relion_geometry.depth_offsets``): the
    defocus changes by ``hand * ps * defocus_slope * depth`` (RELION tomogram.cpp)."""
    return ctf_kernels.relion_ctf_half(
        box, pixel_size, ts.defocus_u[f], ts.defocus_v[f], ts.defocus_angle[f], ts.voltage,
        ts.cs, ts.amplitude_contrast, phase_shift=ts.phase_shift[f],
        bfactor=ts.ctf_bfactor[f], scale=ts.ctf_scale[f],
        defocus_offset=ts.hand * ts.pixel_size * ts.defocus_slope * depth)


@dataclass
class Stack2DSettings:
    """Parameters of ``relion_tomo_subtomo --stack2d`` (RELION option names in brackets).

    box : binned box size in px (``--b``); crop : output size in px (``--crop``, default box);
    binning : (``--bin``); do_ctf : CTF premultiplication (not ``--no_ctf``); circle_crop :
    background subtraction + soft circle (not ``--no_circle_crop``); float16 : MRC mode 12
    with RELION's rounding (``--float16``); max_dose : e/Å², <= 0 = all (``--max_dose``);
    min_frames : (``--min_frames``); apply_offsets : fold rlnOrigin*Angst into the positions
    (not ``--dont_apply_offsets``); invert_contrast : multiply by -1 (not ``--no_ic``);
    dose_weighting : with CTF premultiplication, also multiply by the dose weights (RELION
    always does; False is a cryoprocs option). Without CTF premultiplication RELION applies no
    dose weighting and neither does this.
    """
    box: int
    crop: int = None
    binning: float = 1.0
    do_ctf: bool = True
    circle_crop: bool = True
    float16: bool = False
    max_dose: float = -1.0
    min_frames: int = 1
    apply_offsets: bool = True
    invert_contrast: bool = True
    dose_weighting: bool = True

    def __post_init__(self):
        if self.crop is None or int(self.crop) < 0:
            self.crop = self.box
        self.box, self.crop = int(self.box), int(self.crop)
        self.binning = float(self.binning)
        self.min_frames = int(self.min_frames)
        self.max_dose = float(self.max_dose if self.max_dose is not None else -1.0)

    def errors(self):
        """Problems with the values (empty list when valid)."""
        err = relion_geometry.box_errors(self.box, self.crop, self.binning, min_box=2)
        if self.min_frames < 0:
            err.append("minimum number of frames must be >= 0, got %d" % self.min_frames)
        return err

    @property
    def radius(self):
        """Visibility radius in unbinned px: ``bin * crop / 2`` (subtomo.cpp)."""
        return self.binning * self.crop / 2.0


@dataclass
class TiltSeriesPlan:
    """What one tilt series contributes: its particles (input rows), their geometry and
    output files. ``visible`` is ``(F, n)``; ``keep`` ``(n,)``."""
    ts: relion5.TiltSeries
    rows: np.ndarray
    names: list
    positions: np.ndarray
    pixel_sizes: np.ndarray
    visible: np.ndarray
    keep: np.ndarray
    out_files: list

    @property
    def n_kept(self):
        return int(self.keep.sum())


class Stack2DJob(Relion5ProjectJob):
    """A RELION 5 2D-stack extraction of a whole project.

    Parameters
    ----------
    particles_star, tomograms_star : str
        input files (command-line paths: relative to the current directory).
    output_dir : str
        output folder (``--o``); created.
    settings : Stack2DSettings
    project_dir : str, optional
        the RELION project directory that relative paths inside the STAR files refer to, and
        relative to which output paths are written (default: the current directory, as
        RELION).

    nonfinite : {"error", "replace"}
        NaN / infinite pixels in the tilt images (checked before a tilt series is extracted).

    Raises
    ------
    ValueError
        invalid settings, missing files/columns (messages name tomograms and values), a box
        larger than the tilt images.
    OutputInUseError
        another run holds a tilt series or the STAR files this one writes (see
        :class:`~cryoprocs.pipelines.relion5_project.Relion5ProjectJob`).
    """

    output_names = ("particles.star", "optimisation_set.star")
    #: the settings that change the stacks' pixels or frames (see :meth:`fingerprint`)
    fingerprint_keys = ("box", "crop", "binning", "do_ctf", "circle_crop", "float16",
                        "max_dose", "apply_offsets", "invert_contrast", "dose_weighting")

    def __init__(self, particles_star, tomograms_star, output_dir, settings, project_dir=None,
                 nonfinite="error"):
        errs = settings.errors()
        if errs:
            raise extract_kernels.ExtractionError("; ".join(errs))
        super().__init__(particles_star, tomograms_star, output_dir, settings, project_dir,
                         nonfinite)
        self.names = relion5.particle_names(self.ptable.particles)
        self.plans = {}
        self._plan_lock = threading.Lock()
        self._prepared = {}
        self._prepare_lock = threading.RLock()
        self._replace = {}                    # tilt series -> {file: value} (non-finite)
        first = self.names[int(np.flatnonzero(
            self.parts["rlnTomoName"].to_numpy() == self.tomogram_order[0])[0])]
        self.per_tomogram_dirs = "/" not in first

    # ------------------------------------------------------------------ planning
    def plan(self, tomo_name):
        """The :class:`TiltSeriesPlan` of one tilt series (computed once)."""
        with self._plan_lock:
            if tomo_name in self.plans:
                return self.plans[tomo_name]
        row = self.tomograms.loc[self.tomograms["rlnTomoName"] == tomo_name].iloc[0]
        ts = relion5.load_tilt_series(row, self.project_dir)
        self.check_box_fits(ts)
        rows = np.flatnonzero(self.parts["rlnTomoName"].to_numpy() == tomo_name)
        sub = self.parts.iloc[rows]
        pos = relion5.particle_positions(sub, self.pixel_size_of_group, ts.tomo_size,
                                         self.settings.apply_offsets)
        og = sub["rlnOpticsGroup"].astype(int).to_numpy()
        ps = np.array([self.pixel_size_of_group[g] for g in og])
        q = relion_geometry.project(ts.matrices, pos)
        vis, keep = relion_geometry.select_frames(q, ts.image_size, self.settings.radius,
                                                  ts.pre_exposure,
                                                  self.settings.max_dose, self.settings.min_frames)
        names = [self.names[r] for r in rows]
        files = [relion5.stack2d_name(self.output_dir, tomo_name, n, self.per_tomogram_dirs)
                 if k else None for n, k in zip(names, keep)]
        plan = TiltSeriesPlan(ts, rows, names, pos, ps, vis, keep, files)
        with self._plan_lock:
            self.plans[tomo_name] = plan
        return plan

    # ------------------------------------------------------------------ resuming
    def fingerprint_file(self, tomo_name):
        """Written before the first stack of a tilt series: the :meth:`fingerprint` its
        stacks come from."""
        return os.path.join(self.output_dir, ".cryoprocs",
                            "extract_%s.json" % safe_name(tomo_name))

    def tilt_series_record(self, tomo_name):
        return self.fingerprint_file(tomo_name)

    def tilt_series_outputs(self, tomo_name):
        return [f for f in self.plan(tomo_name).out_files if f] + \
            [self.fingerprint_file(tomo_name)]

    def shared_outputs(self):
        return super().shared_outputs() + [self.star_record_file]

    def is_stale(self, tomo_name):
        """True when the output folder holds stacks of this tilt series made from other
        inputs or settings, or of unknown origin (no fingerprint)."""
        if not any(f and os.path.exists(f) for f in self.plan(tomo_name).out_files):
            return False
        return read_record(self.fingerprint_file(tomo_name)) != self.fingerprint(tomo_name)

    def stale_tilt_series(self):
        """Tilt series whose stacks in the output folder are stale (:meth:`is_stale`): a
        re-run re-extracts them. The console command refuses to replace them without
        ``--overwrite``."""
        return [n for n in self.tomogram_order if self.is_stale(n)]

    def prepare_tilt_series(self, tomo_name, overwrite=False):
        """Make the output folder hold only stacks of this run's inputs and settings for one
        tilt series (once per tilt series, thread-safe).

        Stale stacks (:meth:`is_stale`), or every existing stack with ``overwrite``, are
        deleted before the new fingerprint is recorded, so a run killed afterwards resumes
        with this run's stacks only; existing stacks of a matching fingerprint are kept.
        """
        with self._prepare_lock:
            if tomo_name in self._prepared:
                return
            files = self.plan(tomo_name).out_files
            present = any(f and os.path.exists(f) for f in files)
            if claim_outputs(self.fingerprint_file(tomo_name), self.fingerprint(tomo_name),
                             files, replace=overwrite) and present and not overwrite:
                logger.info("%s: stacks in %s were made from other inputs or settings; "
                            "re-extracting them", tomo_name, self.output_dir)
            self._prepared[tomo_name] = True

    # ------------------------------------------------------------------ extraction
    def run(self, threads=1, overwrite=False, progress=None):
        """Extract every tilt series (``threads`` in parallel) and write the STAR files,
        holding the claim of every tilt series and of the STAR files (:meth:`claim_all`).

        Returns a dict of counts (``particles``, ``kept``, ``removed``, ``frames``,
        ``skipped_existing``, ``unknown_tomograms``).
        """
        with outputs.run_scope():
            self.claim_all()
            return self._run(max(1, int(threads)), overwrite, progress)

    def _run(self, threads, overwrite, progress):
        jobs = []
        for name in self.tomogram_order:
            plan = self.plan(name)
            n_groups = max(1, math.ceil(threads / max(1, len(self.tomogram_order))))
            for group in self.groups(plan, n_groups):
                jobs.append((name, group))
        # every check before the first file is written
        self.check_some_visible()
        stars = [os.path.join(self.output_dir, n) for n in self.output_names]
        check_replace(stars, read_record(self.star_record_file) == self.run_fingerprint(),
                      overwrite, "was not written by cryoprocs extract with these inputs and "
                      "settings")
        self._parallel(lambda name: self.scan_frames(name, overwrite), threads)
        # from here on the folder is this run's: STAR files of other settings go first (a
        # run killed later resumes without --overwrite), then stale stacks
        claim_outputs(self.star_record_file, self.run_fingerprint(), stars)
        totals = {"frames": 0, "skipped_existing": 0, "written": 0}
        lock = threading.Lock()
        for name in self.tomogram_order:
            self.prepare_tilt_series(name, overwrite)

        def work(job):
            res = self.extract_group(self.plans[job[0]], job[1])
            with lock:
                for k in totals:
                    totals[k] += res.get(k, 0)
                if progress:
                    progress(job[0], res)

        if threads == 1 or len(jobs) == 1:
            for job in jobs:
                work(job)
        else:
            with ThreadPoolExecutor(max_workers=threads) as pool:
                list(pool.map(work, jobs))
        self.write_star_files()
        counts = self.counts()
        counts.update(totals)
        return counts

    def counts(self):
        n = len(self.parts)
        kept = sum(self.plan(t).n_kept for t in self.tomogram_order)
        return {"particles": n, "kept": kept, "removed": n - kept,
                "unknown_tomograms": list(self.unknown_tomograms)}

    def _parallel(self, func, threads):
        """``func(tomo_name)`` for every tilt series, ``threads`` at a time."""
        names = list(self.tomogram_order)
        if threads <= 1 or len(names) <= 1:
            for n in names:
                func(n)
        else:
            with ThreadPoolExecutor(max_workers=min(threads, len(names))) as pool:
                list(pool.map(func, names))

    def check_some_visible(self):
        """No particle visible in enough frames: an error before any work.

        Raises
        ------
        ExtractionError
            naming the visibility rule and the particle count.
        """
        if sum(self.plan(t).n_kept for t in self.tomogram_order) == 0:
            s = self.settings
            raise extract_kernels.ExtractionError(
                "none of the %d particles is visible in at least %d frame%s (a frame counts "
                "when the particle lies more than %g px from the image edges%s): nothing to "
                "extract" % (len(self.parts), s.min_frames, "s" if s.min_frames > 1 else "",
                             s.radius, " and its pre-exposure is <= %g e/A^2" % s.max_dose
                             if s.max_dose > 0 else ""))

    def stack_shape(self, plan, i):
        """Shape ``(frames, size, size)`` of particle ``i``'s stack."""
        b, crop = self.settings.box, self.settings.crop
        size = b - 2 * ((b - crop) // 2)
        return (int(plan.visible[:, i].sum()), size, size)

    def stack_done(self, plan, i, warn=True):
        """True when particle ``i``'s stack exists and is complete (shape, mode, size)."""
        path = plan.out_files[i]
        if not os.path.exists(path):
            return False
        if valid_output(path, self.stack_shape(plan, i), (12,) if self.settings.float16
                        else (2,)):
            return True
        if warn:
                logger.warning("%s is damaged or incomplete (not the %s stack this run writes); "
                           "extracting it again", path,
                           "x".join(map(str, self.stack_shape(plan, i)[::-1])))
        return False

    def scan_frames(self, tomo_name, overwrite=False):
        """Check the tilt images of a tilt series for non-finite pixels when it has stacks to
        extract (before anything of it is written); remembers what to replace."""
        plan = self.plan(tomo_name)
        fresh = overwrite or read_record(self.fingerprint_file(tomo_name)) != \
            self.fingerprint(tomo_name)
        if fresh or not all(self.stack_done(plan, i, warn=False)
                            for i in np.flatnonzero(plan.keep)):
            self._replace[tomo_name] = self.frame_replacements(tomo_name)

    def extract_tilt_series(self, tomo_name, threads=1, overwrite=False):
        """Extract the particles of one tilt series (one protocol step) holding its claim
        only (:meth:`claim_tilt_series`: the steps of other tilt series run meanwhile);
        returns counts."""
        with outputs.run_scope():
            self.claim_tilt_series(tomo_name)
            return self._extract_tilt_series(tomo_name, threads, overwrite)

    def _extract_tilt_series(self, tomo_name, threads, overwrite):
        plan = self.plan(tomo_name)
        self.scan_frames(tomo_name, overwrite)
        self.prepare_tilt_series(tomo_name, overwrite)
        overwrite = False                     # what had to be redone is deleted now
        groups = self.groups(plan, max(1, int(threads)))
        out = {"frames": 0, "skipped_existing": 0, "written": 0}
        if len(groups) <= 1 or threads <= 1:
            results = [self.extract_group(plan, g, overwrite) for g in groups]
        else:
            with ThreadPoolExecutor(max_workers=int(threads)) as pool:
                results = list(pool.map(lambda g: self.extract_group(plan, g, overwrite),
                                        groups))
        for r in results:
            for k in out:
                out[k] += r[k]
        return out

    #: bytes of output stacks (float32) held in memory per particle group
    max_group_bytes = 160 * 1024 ** 2
    #: float32 elements of cut boxes processed at once (per frame)
    max_batch_elements = 4 * 1024 ** 2

    def groups(self, plan, n_min=1):
        """Split the kept particles of a tilt series into groups (index arrays into the plan)
        whose output stacks fit ``max_group_bytes``; at least ``n_min`` groups when there are
        enough particles."""
        kept = np.flatnonzero(plan.keep)
        if kept.size == 0:
            return []
        c = self.settings.crop
        per = plan.visible[:, kept].sum(axis=0) * c * c * 4
        n_groups = max(int(n_min), int(math.ceil(per.sum() / self.max_group_bytes)))
        n_groups = min(n_groups, kept.size)
        return [g for g in np.array_split(kept, n_groups) if g.size]

    def extract_group(self, plan, group, overwrite=False):
        """Extract the particles ``group`` (indices into ``plan``) of one tilt series."""
        s = self.settings
        todo = [i for i in group if overwrite or not self.stack_done(plan, i)]
        res = {"frames": 0, "skipped_existing": len(group) - len(todo), "written": 0}
        if not todo:
            return res
        todo = np.asarray(todo)
        ts = plan.ts
        W, H = ts.image_size
        b, crop, binning = s.box, s.crop, s.binning
        s0, _ = relion_geometry.box_sizes(b, binning)
        out_size = b - 2 * ((b - crop) // 2)
        vis = plan.visible[:, todo]                          # (F, n)
        slots = np.cumsum(vis, axis=0) - 1                   # frame slot per particle
        buffers = [np.empty((int(vis[:, k].sum()), out_size, out_size), np.float32)
                   for k in range(len(todo))]
        q = relion_geometry.project(ts.matrices, plan.positions[todo])     # (F, n, 3)
        dz = relion_geometry.depth_offsets(ts.matrices, plan.positions[todo],
                                           ts.tomo_size) if s.do_ctf \
            else None
        dose = ctf_kernels.dose_weights_half(ts.pre_exposure, b, ts.pixel_size * binning,
                                             ts.bfactor_per_dose) if s.do_ctf and s.dose_weighting \
            else None
        sign = -1.0 if s.invert_contrast else 1.0
        batch = max(1, self.max_batch_elements // (s0 * s0))
        boxes = lambda f: (extract_kernels.box_corners(q[f, np.flatnonzero(vis[f])], s0)[0], s0)  # noqa: E731
        for f, image in iter_frames(ts, boxes, self._replace.get(ts.name), self.nonfinite):
            idx = np.flatnonzero(vis[f])
            for i0 in range(0, idx.size, batch):
                ii = idx[i0:i0 + batch]
                corner, pos_in_box = extract_kernels.box_corners(q[f, ii], s0)
                boxes = extract_kernels.cut_boxes(image, corner, s0).astype(np.float32, copy=False)
                weights = None
                if s.do_ctf:
                    ctf = frame_ctf(ts, f, b, ts.pixel_size * binning, dz[f, ii])
                    weights = ctf * dose[f] if dose is not None else ctf
                imgs = extract_kernels.stack2d_from_boxes(boxes, pos_in_box, binning, b, crop,
                                                          weights,
                                                          sign=sign, circle_crop=s.circle_crop)
                for j, k in enumerate(ii):
                    buffers[k][slots[f, k]] = imgs[j]
                res["frames"] += len(ii)
        voxel = ts.pixel_size * binning
        for k, i in enumerate(todo):
            write_stack(plan.out_files[i], buffers[k], voxel, float16=s.float16)
            buffers[k] = None
            res["written"] += 1
        return res

    # ------------------------------------------------------------------ STAR files
    def image_name(self, path):
        return relion5.relion_path(path, self.project_dir)

    @property
    def star_record_file(self):
        """Written before the STAR files: the :meth:`run_fingerprint` they come from (a
        rerun replaces its own STAR files without --overwrite, never someone else's)."""
        # not "extract_<x>.json": that is the record of the tilt series named <x>
        return os.path.join(self.output_dir, ".cryoprocs", "star_files.json")

    def run_fingerprint(self):
        """What the STAR files depend on: every tilt series' fingerprint and all settings."""
        return json.dumps({"tilt_series": [self.fingerprint(t) for t in self.tomogram_order],
                           "settings": asdict(self.settings)}, sort_keys=True)

    def write_star_files(self):
        """Write ``particles.star`` and ``optimisation_set.star`` into the output folder
        (the final stage: it holds the claim of the STAR files, :meth:`claim_shared`)."""
        with outputs.run_scope():
            self.claim_shared()
            return self._write_star_files()

    def _write_star_files(self):
        kept_rows, visible, image_names, positions, centres, ps = [], [], [], [], [], []
        for t in self.tomogram_order:
            plan = self.plan(t)
            for i in np.flatnonzero(plan.keep):
                kept_rows.append(int(plan.rows[i]))
                visible.append(plan.visible[:, i].astype(int))
                image_names.append(self.image_name(plan.out_files[i]))
                positions.append(plan.positions[i])
                centres.append(plan.ts.centre())
                ps.append(plan.pixel_sizes[i])
        s = self.settings
        general, optics, parts = relion5.extraction_particle_tables(
            self.ptable, self.tomograms, kept_rows, visible, image_names,
            np.array(positions).reshape(-1, 3), np.array(centres).reshape(-1, 3),
            np.array(ps), s.binning, s.crop, s.do_ctf, apply_offsets=s.apply_offsets)
        os.makedirs(self.output_dir, exist_ok=True)
        write_record(self.star_record_file, self.run_fingerprint())
        pfile = os.path.join(self.output_dir, "particles.star")
        relion5.write_particles_star(pfile, general, optics, parts)
        relion5.write_optimisation_set(os.path.join(self.output_dir, "optimisation_set.star"),
                                       self.image_name(pfile), self.image_name(self.tomograms_star))
        return pfile


def write_stack(path, data, voxel_size, float16=False):
    """Write a 2D stack ``[n, y, x]`` as RELION does: MRC mode 2 (or 12 with RELION's float16
    rounding), voxel size ``(a, a, 1)`` with ``mz = n`` (so ``cella = (nx a, ny a, n)``),
    ``ispg 0``, header statistics of the float32 data. Atomic (temporary name, rename)."""
    data = np.asarray(data, dtype=np.float32)
    out = extract_kernels.relion_float16(data) if float16 else data
    os.makedirs(os.path.dirname(path), exist_ok=True)
    with atomic_output(path) as tmp:
        with mrcfile.new(tmp, overwrite=True) as mrc:
            mrc.set_data(out)
            mrc.header.ispg = 0
            mrc.header.mz = data.shape[0]
            mrc.voxel_size = (voxel_size, voxel_size, 1.0)
            if data.size:
                mrc.header.dmin = float(data.min())
                mrc.header.dmax = float(data.max())
                mrc.header.dmean = float(data.mean(dtype=np.float64))
                mrc.header.rms = float(data.std(dtype=np.float64))
    return path


# ============================================================================ 3D sub-volumes
@dataclass
class SubvolumeSettings:
    """Plain 3D extraction. ``box``: output size in px; ``binning``: output voxel size
    divided by the tomogram voxel size (>= 1; Fourier cropping when > 1);
    ``invert_contrast``: multiply by -1; ``normalize``: background outside the sphere of
    radius box/2 to mean 0, std 1; ``outside``: ``"skip"`` particles whose box leaves the
    tomogram, or ``"pad"`` them with the tomogram mean."""
    box: int
    binning: float = 1.0
    invert_contrast: bool = False
    normalize: bool = False
    outside: str = "skip"

    def errors(self):
        err = []
        if int(self.box) < 2:
            err.append("box size must be >= 2 px, got %s" % self.box)
        if not float(self.binning) >= 1.0:
            err.append("binning must be >= 1, got %g" % float(self.binning))
        if self.outside not in ("skip", "pad"):
            err.append("outside must be 'skip' or 'pad', got %r" % self.outside)
        return err


def _fourier_resize(vol, size):
    """Fourier crop a cube to ``size``^3 keeping grey values (mean preserved)."""
    n = vol.shape[0]
    if n == size:
        return vol
    F = np.fft.rfftn(vol)
    half = size // 2
    idx = np.r_[0:size - half, n - half:n] if half else np.arange(size)
    G_ = F[np.ix_(idx, idx, np.arange(size // 2 + 1))]
    out = np.fft.irfftn(G_, s=(size,) * 3) * (size ** 3 / float(n ** 3))
    return out.astype(np.float32)


def extract_subvolumes(tomogram_file, positions, out_files, settings, voxel_size=None,
                       overwrite=False, fingerprint_file=None, nonfinite="error"):
    """Cut sub-volumes from one tomogram.

    Parameters
    ----------
    tomogram_file : str
        MRC tomogram ``[z, y, x]`` or OME-Zarr image (local or URL; only the chunks under
        the boxes are read).
    positions : (N, 3) array
        particle centres in 0-based tomogram voxels (x, y, z), x = MRC column.
    out_files : list of str
        one output file per particle.
    settings : SubvolumeSettings
    voxel_size : float, optional
        tomogram voxel size in Å (default: from the header).
    overwrite : bool
        redo existing output files (otherwise they are kept: resume).
    fingerprint_file : str, optional
        where the settings and tomogram signature of the outputs are recorded; existing
        outputs recorded with others (or not recorded) are redone instead of kept, and so
        are damaged ones (not a complete float32 MRC of the box size).
    nonfinite : {"error", "replace"}
        NaN / infinite voxels in the tomogram are an error naming it, their count and the
        first [z, y, x] (checked before anything is written; a remote OME-Zarr image in the
        boxes read only), or are replaced by the mean of its finite voxels.

    Returns
    -------
    dict
        ``written``, ``skipped_existing``, ``outside`` (boxes leaving the tomogram),
        ``skipped`` (outside and skipped), ``padded`` and ``status``: a list with, per
        particle, "written", "existing", "skipped" or "padded".
    """
    errs = settings.errors()
    if errs:
        raise extract_kernels.ExtractionError("; ".join(errs))
    box = int(settings.box)
    f = float(settings.binning)
    s0 = int(box * f + 0.5) if f != 1.0 else box
    pos = np.asarray(positions, dtype=np.float64).reshape(-1, 3)
    res = {"written": 0, "skipped_existing": 0, "outside": 0, "skipped": 0, "padded": 0,
           "status": []}
    mean = None
    with open_image(tomogram_file, nonfinite=nonfinite) as mapped:   # header checked
        fp = json.dumps({"settings": asdict(settings), "voxel_size": voxel_size,
                         "tomogram": file_signature(signature_files(tomogram_file))},
                        sort_keys=True)
        redo = overwrite or (fingerprint_file and read_record(fingerprint_file) != fp)
        if (redo or not all(valid_output(o, (box, box, box)) for o in out_files)) and \
                not is_url(str(tomogram_file)):
            mapped.guard.check_all()     # non-finite voxels: before anything is written
        if fingerprint_file:
            claim_outputs(fingerprint_file, fp, out_files, replace=overwrite)
        vs = float(voxel_size) if voxel_size else mapped.voxel_size[0]
        out_vs = vs * (s0 / float(box))
        r = box / 2.0
        yy, xx, zz = None, None, None
        for k, (p, out) in enumerate(zip(pos, out_files)):
            if not overwrite and valid_output(out, (box, box, box)):
                res["skipped_existing"] += 1
                res["status"].append("existing")
                continue
            sub, inside = extract_kernels.subvolume(mapped.data, p, s0, pad="edge")
            sub = mapped.guard.check(np.array(sub), inplace=True)
            if not inside:
                res["outside"] += 1
                if settings.outside == "skip":
                    res["skipped"] += 1
                    res["status"].append("skipped")
                    continue
                if mean is None:                # of the finite voxels
                    mean = mapped.guard.finite_mean()
                sub, _ = extract_kernels.subvolume(mapped.data, p, s0, pad="constant", fill=mean)
                sub = mapped.guard.check(np.array(sub), inplace=True)
                res["padded"] += 1
            sub = _fourier_resize(sub, box) if s0 != box else sub
            if settings.invert_contrast:
                sub = -sub
            if settings.normalize:
                if zz is None:
                    zz, yy, xx = np.mgrid[0:box, 0:box, 0:box]
                    c = box // 2
                    outside_mask = (xx - c) ** 2 + (yy - c) ** 2 + (zz - c) ** 2 > r * r
                bg = sub[outside_mask]
                std = bg.std(dtype=np.float64)
                sub = ((sub - bg.mean(dtype=np.float64)) / (std if std > 0 else 1.0)) \
                    .astype(np.float32)
            write_mrc(out, sub, voxel_size=out_vs)
            res["written"] += 1
            res["status"].append("written" if inside else "padded")
            mapped.release(max(0, int(p[2]) - s0), int(p[2]) + s0)
    return res
