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
import json
import logging
import os
import threading
from concurrent.futures import ThreadPoolExecutor
from dataclasses import asdict, dataclass

import numpy as np

from ..constants import DEFAULT_SYMMETRY
from ..convert import relion5 as R5
from ..convert.euler import relion_euler_matrix
from ..convert.mrc import atomic_output, write_mrc
from ..convert.paths import read_record, write_record
from ..convert.star import write_star
from ..kernels import backprojection as BP
from ..kernels import ctf as KC
from ..kernels import extract as KE
from ..kernels import fsc as KF
from ..kernels import reconstruct as KR
from ..kernels import relion_geometry as G
from ..kernels import symmetry as KS
from .extract import frame_ctf, iter_frames
from .relion5_project import Relion5ProjectJob, safe_name

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
        err = G.box_errors(self.box, self.crop, self.binning, min_box=4)
        try:
            self.symmetry = KS.parse_symmetry(self.symmetry)
        except KS.SymmetryError as exc:
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
        with atomic_output(path) as tmp:
            with open(tmp, "wb") as fh:
                np.savez(fh, data=self.data, weight=self.weight,
                         counts=np.array([self.used, self.skipped, self.slices]),
                         fingerprint=np.array(str(fingerprint)))
        return path

    @classmethod
    def load(cls, path, fingerprint=None):
        """Read a saved sum; None when ``fingerprint`` is given and differs (stale file)."""
        with np.load(path) as z:
            if fingerprint is not None and ("fingerprint" not in z.files
                                            or str(z["fingerprint"]) != str(fingerprint)):
                return None
            c = z["counts"]
            return cls(z["data"], z["weight"], int(c[0]), int(c[1]), int(c[2]))


@dataclass
class TomogramPlan:
    """Geometry of the particles of one tilt series: ``rows`` into the particle table,
    decentred positions ``(n, 3)``, rotations ``E = A_subtomo A_particle`` ``(n, 3, 3)``,
    half set 0/1 ``(n,)``, visibility ``(F, n)``."""
    ts: R5.TiltSeries
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

    Raises
    ------
    ValueError
        invalid settings, missing files or columns, bad ``rlnRandomSubset`` values (messages
        name tomograms and values).
    """

    output_names = OUTPUT_NAMES
    #: the settings that act before the finalisation (see :meth:`fingerprint`)
    fingerprint_keys = ("box", "binning", "do_ctf", "circle_crop", "max_dose",
                        "cutoff_fraction", "apply_offsets", "invert_contrast")
    fingerprint_version = 2

    def __init__(self, particles_star, tomograms_star, output_dir, settings, project_dir=None,
                 work_dir=None, backend="auto"):
        errs = settings.errors()
        if errs:
            raise KR.ReconstructionError("; ".join(errs))
        super().__init__(particles_star, tomograms_star, output_dir, settings, project_dir)
        self.backend = backend
        self.work_dir = os.path.abspath(work_dir or os.path.join(self.output_dir, "partial"))
        self.has_halves = "rlnRandomSubset" in self.parts.columns
        if self.has_halves:
            subsets = self.parts["rlnRandomSubset"].to_numpy()
            bad = sorted(set(int(v) for v in subsets) - {1, 2})
            if bad:
                raise R5.Relion5Error("rlnRandomSubset must be 1 or 2, found %s in %s"
                                      % (bad, particles_star))
        first = self.tomograms.loc[self.tomograms["rlnTomoName"] == self.tomogram_order[0]]
        self.tilt_pixel_size = float(first.iloc[0]["rlnTomoTiltSeriesPixelSize"])
        #: voxel size of the maps (RELION: first tomogram's pixel size x binning)
        self.pixel_size = self.tilt_pixel_size * settings.binning
        self.plans = {}
        self._lock = threading.Lock()

    # ------------------------------------------------------------------ planning
    def plan(self, tomo_name):
        """The :class:`TomogramPlan` of one tilt series (computed once)."""
        with self._lock:
            if tomo_name in self.plans:
                return self.plans[tomo_name]
        s = self.settings
        row = self.tomograms.loc[self.tomograms["rlnTomoName"] == tomo_name].iloc[0]
        ts = R5.load_tilt_series(row, self.project_dir)
        rows = np.flatnonzero(self.parts["rlnTomoName"].to_numpy() == tomo_name)
        sub = self.parts.iloc[rows]
        pos = R5.particle_positions(sub, self.pixel_size_of_group, ts.tomo_size,
                                    s.apply_offsets)
        n = len(rows)
        A_part = _angles(sub, R5.ANGLE_COLUMNS, n)
        A_sub = _angles(sub, R5.SUBTOMO_COLUMNS, n)
        halves = (sub["rlnRandomSubset"].to_numpy().astype(int) - 1 if self.has_halves
                  else np.zeros(n, int))
        q = G.project(ts.matrices, pos)
        vis, _ = G.select_frames(q, ts.image_size, s.radius, ts.pre_exposure, s.max_dose, 0)
        plan = TomogramPlan(ts, rows, pos, A_sub @ A_part, halves, vis)
        with self._lock:
            self.plans[tomo_name] = plan
        return plan

    def partial_file(self, tomo_name):
        return os.path.join(self.work_dir, "%s.npz" % safe_name(tomo_name))

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

    def existing_outputs_conflict(self):
        """A message when the output folder holds maps made from other inputs or settings
        (None when it holds none, or this run's own).

        The console command refuses to replace such maps without ``--overwrite``."""
        present = [n for n in OUTPUT_NAMES if os.path.exists(os.path.join(self.output_dir, n))]
        if not present:
            return None
        if read_record(self.outputs_fingerprint_file) == self.run_fingerprint():
            return None
        return ("%s holds %s from a reconstruction with other inputs or settings; pass "
                "--overwrite to replace them or choose another output folder"
                % (self.output_dir, ", ".join(present)))

    # ------------------------------------------------------------------ accumulation
    def accumulate_tilt_series(self, tomo_name, threads=1, overwrite=False, save=True):
        """Backproject the particles of one tilt series (one protocol step).

        A saved partial sum is reused unless ``overwrite``. ``threads`` workers split the
        particles, each with its own accumulators. Returns :class:`TomogramSums`.
        """
        path = self.partial_file(tomo_name)
        fp = self.fingerprint(tomo_name)
        if not overwrite and os.path.exists(path):
            done = TomogramSums.load(path, fingerprint=fp)
            if done is not None:
                logger.info("%s: partial sums found in %s", tomo_name, path)
                return done
            logger.info("%s: %s was made with other inputs or settings; redoing it",
                        tomo_name, path)
        plan = self.plan(tomo_name)
        used = np.flatnonzero(plan.used)
        n_groups = max(1, min(int(threads), used.size))
        groups = [g for g in np.array_split(used, n_groups) if g.size] if used.size else []
        if len(groups) <= 1:
            parts = [self._accumulate(plan, groups[0] if groups else used)]
        else:
            with ThreadPoolExecutor(max_workers=len(groups)) as pool:
                parts = list(pool.map(lambda g: self._accumulate(plan, g), groups))
        total = parts[0]
        for p in parts[1:]:
            total.add(p)
        total.used = int(used.size)
        total.skipped = int(len(plan.rows) - used.size)
        if save:
            total.save(path, fp)
        return total

    #: float32 elements of unbinned boxes processed at once (per frame)
    max_batch_elements = 4 * 1024 ** 2

    def _accumulate(self, plan, idx):
        """Accumulate particles ``idx`` (indices into the plan) frame by frame."""
        s = self.settings
        b = s.box
        sums = TomogramSums.zeros(b)
        if idx.size == 0:
            return sums
        ts = plan.ts
        binning = s.binning
        s0, _ = G.box_sizes(b, binning)
        ps_bin = ts.pixel_size * binning
        scale = self.pixel_size / ps_bin
        dose = KC.dose_weights_half(ts.pre_exposure, b, ps_bin, ts.bfactor_per_dose)
        xr = KR.dose_x_ranges(dose, s.cutoff_fraction)
        pos = plan.positions[idx]
        q = G.project(ts.matrices, pos)
        dz = G.depth_offsets(ts.matrices, pos, ts.tomo_size) if s.do_ctf else None
        vis = plan.visible[:, idx]
        halves = plan.halves[idx]
        rot = plan.rotations[idx]
        sign = -1.0 if s.invert_contrast else 1.0
        batch = max(1, self.max_batch_elements // (s0 * s0))
        boxes = lambda f: (KE.box_corners(q[f, np.flatnonzero(vis[f])], s0)[0], s0)  # noqa: E731
        for f, image in iter_frames(ts, boxes):
            ii_all = np.flatnonzero(vis[f])
            for i0 in range(0, ii_all.size, batch):
                ii = ii_all[i0:i0 + batch]
                slices = KR.frame_slices(image, q[f, ii], b, binning,
                                         circle_crop=s.circle_crop, backend=self.backend)
                ctf = None
                if s.do_ctf:
                    ctf = frame_ctf(ts, f, b, ps_bin, dz[f, ii]).reshape(len(ii), b, b // 2 + 1)
                wts = KR.weight_slices(slices, xr[f], ctf, dose[f], sign)
                M = KR.slice_matrices(ts.matrices[f], rot[ii], scale)
                mf = np.full(len(ii), xr[f, 0], dtype=np.int64)
                for h in (0, 1):
                    sel = np.flatnonzero(halves[ii] == h)
                    if sel.size:
                        BP.backproject(sums.data[h], sums.weight[h], slices[sel],
                                       wts[sel], M[sel], mf[sel], backend=self.backend)
                sums.slices += len(ii)
        return sums

    # ------------------------------------------------------------------ whole run
    def run(self, threads=1, overwrite=False, write_intermediates=False, progress=None):
        """Accumulate every tilt series (in parallel when ``threads`` > 1), finalise and write
        the outputs. Returns the summary dict of :meth:`finalise`."""
        threads = max(1, int(threads))
        names = list(self.tomogram_order)
        n_par = max(1, min(threads, len(names)))
        inner = max(1, threads // n_par)

        def work(name):
            res = self.accumulate_tilt_series(name, threads=inner, overwrite=overwrite)
            if progress:
                progress(name, res)
            # the sums are on disk: keep only one volume set per worker in memory

        if n_par == 1:
            for n in names:
                work(n)
        else:
            with ThreadPoolExecutor(max_workers=n_par) as pool:
                list(pool.map(work, names))
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
            part = TomogramSums.load(path, self.fingerprint(name)) if os.path.exists(path) \
                else None
            if part is None:
                raise FileNotFoundError("no partial sums for tilt series %s with these inputs "
                                        "and settings (%s)" % (name, path))
            total.add(part)
        return total

    def finalise(self, sums, threads=1, write_intermediates=False):
        """Symmetrise, reconstruct and write the maps, the FSC and ``reconstruction.json``.

        Returns a dict: ``particles``, ``used``, ``skipped``, ``slices``, ``pixel_size``,
        ``box``, ``crop``, ``files`` (name -> path), ``resolution`` (Å or None),
        ``resolution_at_nyquist``, ``fsc`` (list) and ``unknown_tomograms``.
        """
        s = self.settings
        os.makedirs(self.output_dir, exist_ok=True)
        write_record(self.outputs_fingerprint_file, self.run_fingerprint())
        data = sums.data.copy()
        weight = sums.weight.copy()
        R = KS.point_group_matrices(s.symmetry)
        if len(R):
            for h in (0, 1):
                data[h] = KS.symmetrise_fs(data[h], R)
                weight[h] = KS.symmetrise_fs(weight[h], R)
        crop = s.crop if s.crop < s.box else None
        files = {}
        maps = {}
        tags = ["half1", "half2", "merged"] if self.has_halves else ["merged"]
        for tag in tags:
            if tag == "merged":
                dfs = data[0] + data[1] if self.has_halves else data[0]
                wfs = weight[0] + weight[1] if self.has_halves else weight[0]
            else:
                h = int(tag[-1]) - 1
                dfs, wfs = data[h], weight[h]
            res = KR.reconstruct_map(dfs, wfs, s.snr, crop, s.taper, workers=threads)
            maps[tag] = res["map"]
            files[tag] = self._write_map(tag + ".mrc", res["map"])
            if write_intermediates:
                files["data_" + tag] = self._write_map("data_%s.mrc" % tag, res["data"])
                # RELION writes the weights of half 1 under weight_merged (writeOutput is
                # called with ctfImgFS[0]); we write the merged weights.
                files["weight_" + tag] = self._write_map("weight_%s.mrc" % tag,
                                                         KR.fftw_half_to_human_full(wfs))
                if crop is not None:
                    files[tag + "_full"] = self._write_map(tag + "_full.mrc", res["full"])
        summary = {"particles": int(sum(len(self.plan(t).rows) for t in self.tomogram_order)),
                   "used": int(sums.used), "skipped": int(sums.skipped),
                   "slices": int(sums.slices), "pixel_size": self.pixel_size,
                   "box": s.box, "crop": s.crop, "symmetry": s.symmetry,
                   "half_sets": self.has_halves,
                   "unknown_tomograms": list(self.unknown_tomograms),
                   "resolution": None, "resolution_at_nyquist": False, "fsc": None}
        if self.has_halves:
            values = KF.fsc(maps["half1"], maps["half2"], workers=threads)
            freqs = KF.shell_frequencies(maps["half1"].shape[0], self.pixel_size)
            res_a, at_nyq = KF.fsc_resolution(freqs, values, 0.143)
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
