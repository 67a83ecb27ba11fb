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

from ..convert import relion5 as R5
from ..convert.mrc import atomic_output, write_mrc
from ..convert.paths import claim_outputs, file_signature, read_record
from ..convert.images import open_image, read_frame
from ..convert.mrc import MappedMrc
from ..kernels import ctf as KC
from ..kernels import extract as KE
from ..kernels import relion_geometry as G
from .relion5_project import Relion5ProjectJob, safe_name

logger = logging.getLogger(__name__)

__all__ = ["Stack2DSettings", "Stack2DJob", "TiltSeriesPlan", "write_stack",
           "extract_subvolumes", "SubvolumeSettings"]


# ============================================================================ 2D stacks
def iter_frames(ts, boxes=None):
    """Yield ``(frame, image)`` for every frame of a tilt series, file by file.

    MRC: ``image`` is a read-only memory-mapped ``[y, x]`` view; its pages are handed back
    to the page cache once the caller moves on (so touching every frame of a large stack
    does not keep it in the process's resident memory). OME-Zarr (local or remote):
    ``boxes(f)`` gives the ``(corners, size)`` of the boxes the caller will cut from frame
    ``f``, and only the chunks under them are fetched into a reused ``[y, x]`` buffer
    (:func:`~cryoprocs.convert.images.read_frame`); other pixels are unset.
    """
    for path, frames in ts.frame_groups().items():
        mapped = open_image(path, voxel_size=ts.pixel_size)
        buf = None
        try:
            for f, index in frames:
                if isinstance(mapped, MappedMrc):
                    yield f, mapped.data[index]
                    mapped.release(index, index + 1)
                else:
                    buf = read_frame(mapped, index, boxes(f) if boxes else None, out=buf)
                    yield f, buf
        finally:
            mapped.close()


def frame_ctf(ts, f, box, pixel_size, depth):
    """RELION's CTF of frame ``f`` on the ``box`` half grid at ``pixel_size`` Å, for
    particles at projected depths ``depth`` (px, ``relion_geometry.depth_offsets``): the
    defocus changes by ``hand * ps * defocus_slope * depth`` (RELION tomogram.cpp)."""
    return KC.relion_ctf_half(
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
        err = G.box_errors(self.box, self.crop, self.binning, min_box=2)
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
    ts: R5.TiltSeries
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

    Raises
    ------
    ValueError
        invalid settings, missing files/columns (messages name tomograms and values).
    """

    output_names = ("particles.star", "optimisation_set.star")
    #: the settings that change the stacks' pixels or frames (see :meth:`fingerprint`)
    fingerprint_keys = ("box", "crop", "binning", "do_ctf", "circle_crop", "float16",
                        "max_dose", "apply_offsets", "invert_contrast", "dose_weighting")

    def __init__(self, particles_star, tomograms_star, output_dir, settings, project_dir=None):
        errs = settings.errors()
        if errs:
            raise KE.ExtractionError("; ".join(errs))
        super().__init__(particles_star, tomograms_star, output_dir, settings, project_dir)
        self.names = R5.particle_names(self.ptable.particles)
        self.plans = {}
        self._plan_lock = threading.Lock()
        self._prepared = {}
        self._prepare_lock = threading.RLock()
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
        ts = R5.load_tilt_series(row, self.project_dir)
        rows = np.flatnonzero(self.parts["rlnTomoName"].to_numpy() == tomo_name)
        sub = self.parts.iloc[rows]
        pos = R5.particle_positions(sub, self.pixel_size_of_group, ts.tomo_size,
                                    self.settings.apply_offsets)
        og = sub["rlnOpticsGroup"].astype(int).to_numpy()
        ps = np.array([self.pixel_size_of_group[g] for g in og])
        q = G.project(ts.matrices, pos)
        vis, keep = G.select_frames(q, ts.image_size, self.settings.radius, ts.pre_exposure,
                                    self.settings.max_dose, self.settings.min_frames)
        names = [self.names[r] for r in rows]
        files = [R5.stack2d_name(self.output_dir, tomo_name, n, self.per_tomogram_dirs)
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
        """Extract every tilt series (``threads`` in parallel) and write the STAR files.

        Returns a dict of counts (``particles``, ``kept``, ``removed``, ``frames``,
        ``skipped_existing``, ``unknown_tomograms``).
        """
        threads = max(1, int(threads))
        jobs = []
        for name in self.tomogram_order:
            plan = self.plan(name)
            n_groups = max(1, math.ceil(threads / max(1, len(self.tomogram_order))))
            for group in self.groups(plan, n_groups):
                jobs.append((name, group))
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

    def extract_tilt_series(self, tomo_name, threads=1, overwrite=False):
        """Extract the particles of one tilt series (one protocol step); returns counts."""
        plan = self.plan(tomo_name)
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
        todo = [i for i in group if overwrite or not os.path.exists(plan.out_files[i])]
        res = {"frames": 0, "skipped_existing": len(group) - len(todo), "written": 0}
        if not todo:
            return res
        todo = np.asarray(todo)
        ts = plan.ts
        W, H = ts.image_size
        b, crop, binning = s.box, s.crop, s.binning
        s0, _ = G.box_sizes(b, binning)
        out_size = b - 2 * ((b - crop) // 2)
        vis = plan.visible[:, todo]                          # (F, n)
        slots = np.cumsum(vis, axis=0) - 1                   # frame slot per particle
        buffers = [np.empty((int(vis[:, k].sum()), out_size, out_size), np.float32)
                   for k in range(len(todo))]
        q = G.project(ts.matrices, plan.positions[todo])     # (F, n, 3)
        dz = G.depth_offsets(ts.matrices, plan.positions[todo], ts.tomo_size) if s.do_ctf \
            else None
        dose = KC.dose_weights_half(ts.pre_exposure, b, ts.pixel_size * binning,
                                    ts.bfactor_per_dose) if s.do_ctf and s.dose_weighting \
            else None
        sign = -1.0 if s.invert_contrast else 1.0
        batch = max(1, self.max_batch_elements // (s0 * s0))
        boxes = lambda f: (KE.box_corners(q[f, np.flatnonzero(vis[f])], s0)[0], s0)  # noqa: E731
        for f, image in iter_frames(ts, boxes):
            idx = np.flatnonzero(vis[f])
            for i0 in range(0, idx.size, batch):
                ii = idx[i0:i0 + batch]
                corner, pos_in_box = KE.box_corners(q[f, ii], s0)
                boxes = KE.cut_boxes(image, corner, s0).astype(np.float32, copy=False)
                weights = None
                if s.do_ctf:
                    ctf = frame_ctf(ts, f, b, ts.pixel_size * binning, dz[f, ii])
                    weights = ctf * dose[f] if dose is not None else ctf
                imgs = KE.stack2d_from_boxes(boxes, pos_in_box, binning, b, crop, weights,
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
        return R5.relion_path(path, self.project_dir)

    def write_star_files(self):
        """Write ``particles.star`` and ``optimisation_set.star`` into the output folder."""
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
        general, optics, parts = R5.extraction_particle_tables(
            self.ptable, self.tomograms, kept_rows, visible, image_names,
            np.array(positions).reshape(-1, 3), np.array(centres).reshape(-1, 3),
            np.array(ps), s.binning, s.crop, s.do_ctf, apply_offsets=s.apply_offsets)
        os.makedirs(self.output_dir, exist_ok=True)
        pfile = os.path.join(self.output_dir, "particles.star")
        R5.write_particles_star(pfile, general, optics, parts)
        R5.write_optimisation_set(os.path.join(self.output_dir, "optimisation_set.star"),
                                  self.image_name(pfile), self.image_name(self.tomograms_star))
        return pfile


def write_stack(path, data, voxel_size, float16=False):
    """Write a 2D stack ``[n, y, x]`` as RELION does: MRC mode 2 (or 12 with RELION's float16
    rounding), voxel size ``(a, a, 1)`` with ``mz = n`` (so ``cella = (nx a, ny a, n)``),
    ``ispg 0``, header statistics of the float32 data. Atomic (temporary name, rename)."""
    data = np.asarray(data, dtype=np.float32)
    out = KE.relion_float16(data) if float16 else data
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


def _tomogram_mean(mapped):
    total, count = 0.0, 0
    nz = mapped.shape[0]
    for z0 in range(0, nz, 16):
        slab = np.asarray(mapped.data[z0:z0 + 16], dtype=np.float64)
        total += slab.sum()
        count += slab.size
        mapped.release(z0, z0 + 16)
    return total / max(count, 1)


def extract_subvolumes(tomogram_file, positions, out_files, settings, voxel_size=None,
                       overwrite=False, fingerprint_file=None):
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
        outputs recorded with others (or not recorded) are redone instead of kept.

    Returns
    -------
    dict
        ``written``, ``skipped_existing``, ``outside`` (boxes leaving the tomogram),
        ``skipped`` (outside and skipped), ``padded`` and ``status``: a list with, per
        particle, "written", "existing", "skipped" or "padded".
    """
    errs = settings.errors()
    if errs:
        raise KE.ExtractionError("; ".join(errs))
    box = int(settings.box)
    f = float(settings.binning)
    s0 = int(box * f + 0.5) if f != 1.0 else box
    pos = np.asarray(positions, dtype=np.float64).reshape(-1, 3)
    res = {"written": 0, "skipped_existing": 0, "outside": 0, "skipped": 0, "padded": 0,
           "status": []}
    if fingerprint_file:
        fp = json.dumps({"settings": asdict(settings), "voxel_size": voxel_size,
                         "tomogram": file_signature([tomogram_file])}, sort_keys=True)
        claim_outputs(fingerprint_file, fp, out_files, replace=overwrite)
    mean = None
    with open_image(tomogram_file) as mapped:
        vs = float(voxel_size) if voxel_size else mapped.voxel_size[0]
        out_vs = vs * (s0 / float(box))
        r = box / 2.0
        yy, xx, zz = None, None, None
        for k, (p, out) in enumerate(zip(pos, out_files)):
            if not overwrite and os.path.exists(out):
                res["skipped_existing"] += 1
                res["status"].append("existing")
                continue
            sub, inside = KE.subvolume(mapped.data, p, s0, pad="edge")
            if not inside:
                res["outside"] += 1
                if settings.outside == "skip":
                    res["skipped"] += 1
                    res["status"].append("skipped")
                    continue
                if mean is None:
                    mean = _tomogram_mean(mapped)
                sub, _ = KE.subvolume(mapped.data, p, s0, pad="constant", fill=mean)
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
