"""What the RELION 5 project jobs (:class:`~cryoprocs.pipelines.extract.Stack2DJob`,
:class:`~cryoprocs.pipelines.reconstruct.ReconstructJob`) share: reading and checking the
project's particles.star and tomograms.star, and the per-tilt-series fingerprints that decide
whether results already in the output folder may be reused.
"""
import json
import logging
import os
import threading

import numpy as np

from ..convert import relion5
from ..convert import outputs
from ..convert.finite import NONFINITE_OPTION, FiniteGuard, NonFiniteError
from ..convert.images import is_image_store, is_url, open_image, read_frame, signature_files
from ..convert.mrc import MappedMrc
from ..convert.paths import check_io, check_output_dir, safe_name
from ..kernels import relion_geometry
from .records import file_signature

__all__ = ["Relion5ProjectJob", "safe_name", "iter_frames", "scan_tilt_series", "check_boxes"]

logger = logging.getLogger(__name__)

#: non-finite scans of tilt-series files: (real path, size, mtime, policy, frames) -> result
_SCANS = {}
_SCANS_LOCK = threading.Lock()


def scan_tilt_series(ts, policy="error"):
    """Check the frames of a tilt series for NaN / infinite pixels, once per file (and per
    process: results are cached by file signature), streamed before any work. MRC files are
    scanned whole; OME-Zarr images (local folders and URLs) only where boxes are read
    (:func:`iter_frames`), so that no chunk is fetched or decompressed beyond those the
    extraction reads.

    Returns ``{file: finite mean}`` of the files whose non-finite pixels are to be replaced
    (policy "replace"; empty when every frame is finite).

    Raises
    ------
    NonFiniteError
        policy "error" and a frame holds non-finite pixels (the message names the file, the
        count and the first [z, y, x]).
    """
    means = {}
    for path, frames in ts.frame_groups().items():
        if is_image_store(path):
            continue
        indices = tuple(sorted({i for _, i in frames}))
        key = (os.path.realpath(path), json.dumps(file_signature(signature_files(path))),
               policy, indices)
        with _SCANS_LOCK:
            result = _SCANS.get(key)
        if result is None:
            with open_image(path, voxel_size=ts.pixel_size) as img:
                guard = FiniteGuard(path, img.data, policy, img.release, indices)
                try:
                    guard.check_all()
                    result = guard.result
                finally:
                    guard.data = None
            with _SCANS_LOCK:
                _SCANS[key] = result
        if result[0]:
            means[path] = result[2]
    return means


def iter_frames(ts, boxes=None, replace=None, policy="error"):
    """Yield ``(frame, image)`` for every frame of a tilt series, file by file.

    MRC: ``image`` is a read-only memory-mapped ``[y, x]`` view; its pages are handed back
    to the page cache once the caller moves on (so touching every frame of a large stack
    does not keep it in the process's resident memory). OME-Zarr (local or remote):
    ``boxes(f)`` gives the ``(corners, size)`` of the boxes the caller will cut from frame
    ``f``, and only the chunks under them are fetched into a reused ``[y, x]`` buffer
    (:func:`~cryoprocs.convert.images.read_frame`); other pixels are unset.

    Non-finite pixels: ``replace`` (``{file: value}`` from :func:`scan_tilt_series`) makes
    the frames of those files come as copies with their non-finite pixels replaced by the
    value; the boxes read from OME-Zarr images, which are not scanned beforehand, are
    checked with ``policy`` (:func:`check_boxes`).
    """
    replace = replace or {}
    for path, frames in ts.frame_groups().items():
        mapped = open_image(path, voxel_size=ts.pixel_size)
        value = replace.get(path)
        buf = None
        try:
            for f, index in frames:
                if isinstance(mapped, MappedMrc):
                    image = mapped.data[index]
                else:
                    buf = read_frame(mapped, index, boxes(f) if boxes else None, out=buf)
                    image = buf
                    check_boxes(path, index, image, boxes(f) if boxes else None, policy)
                if value is not None:
                    image = np.where(np.isfinite(image), image, value).astype(np.float32)
                yield f, image
                mapped.release(index, index + 1)
        finally:
            mapped.close()


def check_boxes(path, index, image, boxes, policy="error"):
    """Non-finite pixels in the boxes read from section ``index`` of an OME-Zarr image
    (``boxes`` = ``(corners, size)``; None: the whole section): an error naming the image,
    the count in those boxes and the first [z, y, x] (policy "error"), or replaced in place
    by the mean of the finite pixels read (policy "replace", with a warning)."""
    from ..convert.images import box_rects
    H, W = image.shape
    rects = [(0, H, 0, W)] if boxes is None else box_rects(boxes[0], boxes[1], H, W)
    bad = []
    for y0, y1, x0, x1 in rects:
        sub = image[y0:y1, x0:x1]
        if sub.size and not np.isfinite(np.sum(sub, dtype=np.float64)):
            bad.append((y0, y1, x0, x1))
    if not bad:
        return image
    mask = np.zeros(image.shape, bool)
    for y0, y1, x0, x1 in bad:
        mask[y0:y1, x0:x1] |= ~np.isfinite(image[y0:y1, x0:x1])
    first = [int(index)] + [int(v) for v in np.argwhere(mask)[0]]
    count = int(mask.sum())
    if policy != "replace":
        raise NonFiniteError(
            "%s holds non-finite pixels (NaN or infinite): %d in the boxes read from section "
            "%d, the first at [z, y, x] = %s; fix the image, or replace them with %s"
            % (path, count, index, first, NONFINITE_OPTION))
    good = np.zeros(image.shape, bool)
    for y0, y1, x0, x1 in rects:
        good[y0:y1, x0:x1] = True
    good &= np.isfinite(image)
    if not good.any():
        raise NonFiniteError("%s: the boxes read from section %d hold no finite pixel"
                             % (path, index))
    value = float(image[good].mean(dtype=np.float64))
    image[mask] = value
    logger.warning("%s: %d non-finite pixels in the boxes read from section %d (the first at "
                   "[z, y, x] = %s) replaced by the mean of the finite pixels read, %.6g"
                   % (path, count, index, first, value))
    return image


class Relion5ProjectJob:
    """Base of the jobs run on a RELION 5 project (not used directly).

    Subclasses validate their settings, then call this constructor, and provide
    ``plan(tomo_name)`` returning an object whose ``ts`` is the
    :class:`~cryoprocs.convert.relion5.TiltSeries`.

    Attributes set here: ``settings``, ``project_dir``, ``output_dir``, ``particles_star``,
    ``tomograms_star`` (absolute), ``ptable``, ``tomograms``, ``optics``, ``parts``,
    ``pixel_size_of_group``, ``unknown_tomograms`` (particle tomograms absent from
    tomograms.star) and ``tomogram_order`` (tomograms.star order, those with particles).

    Claims (:mod:`cryoprocs.convert.outputs`): the output folder is checked here, but
    claimed in parts, so that the per-tilt-series runs of one protocol (``--tilt-series``,
    in parallel threads or cluster jobs) never refuse each other: the results of one tilt
    series are claimed as a unit (:meth:`claim_tilt_series`, through the lock of its record
    file), the files of the final stage (STAR files, maps) by :meth:`claim_shared`, and a
    whole run claims every tilt series and the shared outputs before any work
    (:meth:`claim_all`). Two runs that want the same tilt series or the same final outputs
    still fail fast: the second names the output and the first one's process id.
    ``nonfinite`` ("error" or "replace") is what to do with NaN / infinite pixels in the
    tilt images (checked per tilt series before its work, :func:`scan_tilt_series`).

    Raises
    ------
    FileNotFoundError, IsADirectoryError
        a missing input, a folder given as an input.
    NotADirectoryError, ValueError
        an output folder that is a file, or whose outputs would replace an input.
    Relion5Error
        unreadable STAR files, or no particle of a tomogram of tomograms.star.
    """

    #: files the job writes into its output folder (checked against the inputs)
    output_names = ()
    #: settings whose change invalidates the results of a tilt series
    fingerprint_keys = ()
    fingerprint_version = 1

    def __init__(self, particles_star, tomograms_star, output_dir, settings, project_dir=None,
                 nonfinite="error"):
        self.settings = settings
        self.nonfinite = nonfinite
        self.project_dir = os.path.abspath(project_dir or os.getcwd())
        self.output_dir = os.path.abspath(output_dir)
        self.particles_star = os.path.abspath(particles_star)
        self.tomograms_star = os.path.abspath(tomograms_star)
        inputs = [("particles", particles_star), ("tomograms", tomograms_star)]
        check_io(inputs=inputs)
        check_output_dir(output_dir, self.output_names, inputs, claim=False)
        self.ptable = relion5.read_particles(self.particles_star)
        self.tomograms = relion5.read_tomograms(self.tomograms_star)
        self.optics, self.parts = relion5.build_optics(self.ptable.optics, self.ptable.particles,
                                                       self.tomograms)
        self.pixel_size_of_group = relion5.optics_pixel_sizes(self.optics)
        particle_tomograms = self.parts["rlnTomoName"]
        self.unknown_tomograms = sorted(set(particle_tomograms)
                                        - set(self.tomograms["rlnTomoName"]))
        self.tomogram_order = [t for t in self.tomograms["rlnTomoName"]
                               if (particle_tomograms == t).any()]
        if not self.tomogram_order:
            raise relion5.Relion5Error("no particle of %s belongs to a tomogram of %s (particle "
                                       "tomograms: %s)" % (particles_star, tomograms_star,
                                                           ", ".join(self.unknown_tomograms[:10])))

    def fingerprint(self, tomo_name):
        """What the results of one tilt series depend on: the settings
        :attr:`fingerprint_keys` and the input files (real path, size, modification time:
        particles, tomograms, the tilt-series STAR file and its stacks, or the metadata
        files of OME-Zarr stores and the URLs of remote ones)."""
        ts = self.plan(tomo_name).ts
        sources = sorted({f for f, _ in ts.frames})
        files = file_signature([self.particles_star, self.tomograms_star,
                                relion5.resolve(ts.star_file, self.project_dir)]
                               + [p for f in sources for p in signature_files(f)])
        record = {"settings": {k: getattr(self.settings, k) for k in self.fingerprint_keys},
                  "files": files, "tomogram": str(tomo_name),
                  "version": self.fingerprint_version}
        urls = [f for f in sources if is_url(f)]
        if urls:                                   # remote images: their URLs
            record["urls"] = urls
        return json.dumps(record, sort_keys=True)

    # ------------------------------------------------------------------ claims
    def tilt_series_record(self, tomo_name):
        """The file whose claim stands for every result of one tilt series (subclasses)."""
        raise NotImplementedError

    def tilt_series_outputs(self, tomo_name):
        """The files written for one tilt series (subclasses): a claim of the tilt series
        removes the temporaries dead runs left for them."""
        return []

    def shared_outputs(self):
        """The files of the final stage (subclasses add their records)."""
        return [os.path.join(self.output_dir, n) for n in self.output_names]

    def claim_tilt_series(self, tomo_name):
        """This process's claim on the results of one tilt series, until the enclosing
        :func:`~cryoprocs.convert.outputs.run_scope` ends.

        Raises
        ------
        OutputInUseError
            another run holds them (the message names the folder, the tilt series and the
            holder's process id).
        """
        outputs.claim(self.tilt_series_record(tomo_name), "output folder",
                      shown="%s (tilt series %s)" % (self.output_dir, tomo_name))
        outputs.remove_dead_temps(self.tilt_series_outputs(tomo_name))

    def claim_shared(self):
        """This process's claim on the files of the final stage (:meth:`shared_outputs`)."""
        for path in self.shared_outputs():
            outputs.claim(path, "output")

    def claim_all(self):
        """Every tilt series (tomograms.star order), then the shared outputs: what a run
        over the whole project holds."""
        for name in self.tomogram_order:
            self.claim_tilt_series(name)
        self.claim_shared()

    #: the unbinned box size that must fit the tilt images (subclasses may override)
    def unbinned_box(self):
        s0, _ = relion_geometry.box_sizes(self.settings.box, self.settings.binning)
        return s0

    def check_box_fits(self, ts):
        """A box larger than the tilt images can hold no particle: an error before any work.

        Raises
        ------
        Relion5Error
            naming the box, the binning and the image size.
        """
        s0 = self.unbinned_box()
        W, H = ts.image_size
        if s0 > min(W, H):
            raise relion5.Relion5Error(
                "box size %d px at bin %g is %d unbinned px, larger than the %d x %d px tilt "
                "images of %s: no particle can be cut; give a smaller --box-size or a larger "
                "--bin" % (self.settings.box, self.settings.binning, s0, W, H, ts.name))

    def frame_replacements(self, tomo_name):
        """:func:`scan_tilt_series` of one tilt series with this job's policy."""
        return scan_tilt_series(self.plan(tomo_name).ts, self.nonfinite)
