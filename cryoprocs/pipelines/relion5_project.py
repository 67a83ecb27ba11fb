"""What the RELION 5 project jobs (:class:`~cryoprocs.pipelines.extract.Stack2DJob`,
:class:`~cryoprocs.pipelines.reconstruct.ReconstructJob`) share: reading and checking the
project's particles.star and tomograms.star, and the per-tilt-series fingerprints that decide
whether results already in the output folder may be reused.
"""
import json
import os
import threading

import numpy as np

from ..convert import relion5 as R5
from ..convert.mrc import FiniteGuard, MappedMrc
from ..convert.paths import check_io, check_output_dir, file_signature, safe_name
from ..kernels import relion_geometry as G

__all__ = ["Relion5ProjectJob", "safe_name", "iter_frames", "scan_tilt_series"]

#: non-finite scans of tilt-series files: (real path, size, mtime, policy, frames) -> result
_SCANS = {}
_SCANS_LOCK = threading.Lock()


def scan_tilt_series(ts, policy="error"):
    """Check the frames of a tilt series for NaN / infinite pixels, once per file (and per
    process: results are cached by file signature), streamed before any work.

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
        st = os.stat(path)
        indices = tuple(sorted({i for _, i in frames}))
        key = (os.path.realpath(path), st.st_size, st.st_mtime_ns, policy, indices)
        with _SCANS_LOCK:
            result = _SCANS.get(key)
        if result is None:
            with MappedMrc(path) as mapped:
                guard = FiniteGuard(path, mapped.data, policy, mapped.release, indices)
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


def iter_frames(ts, replace=None):
    """Yield ``(frame, image)`` for every frame of a tilt series, file by file.

    ``image`` is a read-only memory-mapped ``[y, x]`` view; its pages are handed back to the
    page cache once the caller moves on (so touching every frame of a large stack does not
    keep it in the process's resident memory). ``replace``: ``{file: value}`` from
    :func:`scan_tilt_series`: the frames of those files come as copies with their
    non-finite pixels replaced by the value.
    """
    replace = replace or {}
    for path, frames in ts.frame_groups().items():
        mapped = MappedMrc(path)
        value = replace.get(path)
        try:
            for f, index in frames:
                image = mapped.data[index]
                if value is not None:
                    image = np.where(np.isfinite(image), image, value).astype(np.float32)
                yield f, image
                mapped.release(index, index + 1)
        finally:
            mapped.close()


class Relion5ProjectJob:
    """Base of the jobs run on a RELION 5 project (not used directly).

    Subclasses validate their settings, then call this constructor, and provide
    ``plan(tomo_name)`` returning an object whose ``ts`` is the
    :class:`~cryoprocs.convert.relion5.TiltSeries`.

    Attributes set here: ``settings``, ``project_dir``, ``output_dir``, ``particles_star``,
    ``tomograms_star`` (absolute), ``ptable``, ``tomograms``, ``optics``, ``parts``,
    ``pixel_size_of_group``, ``unknown_tomograms`` (particle tomograms absent from
    tomograms.star) and ``tomogram_order`` (tomograms.star order, those with particles).

    The output folder is claimed for this run (:func:`cryoprocs.convert.paths.check_output_dir`):
    a second run into it fails at once. ``nonfinite`` ("error" or "replace") is what to do
    with NaN / infinite pixels in the tilt images (checked per tilt series before its work,
    :func:`scan_tilt_series`).

    Raises
    ------
    FileNotFoundError, IsADirectoryError
        a missing input, a folder given as an input.
    NotADirectoryError, ValueError
        an output folder that is a file, or whose outputs would replace an input.
    OutputInUseError
        another run is writing into the output folder.
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
        check_output_dir(output_dir, self.output_names, inputs)
        self.ptable = R5.read_particles(self.particles_star)
        self.tomograms = R5.read_tomograms(self.tomograms_star)
        self.optics, self.parts = R5.build_optics(self.ptable.optics, self.ptable.particles,
                                                  self.tomograms)
        self.pixel_size_of_group = R5.optics_pixel_sizes(self.optics)
        particle_tomograms = self.parts["rlnTomoName"]
        self.unknown_tomograms = sorted(set(particle_tomograms)
                                        - set(self.tomograms["rlnTomoName"]))
        self.tomogram_order = [t for t in self.tomograms["rlnTomoName"]
                               if (particle_tomograms == t).any()]
        if not self.tomogram_order:
            raise R5.Relion5Error("no particle of %s belongs to a tomogram of %s (particle "
                                  "tomograms: %s)" % (particles_star, tomograms_star,
                                                      ", ".join(self.unknown_tomograms[:10])))

    def fingerprint(self, tomo_name):
        """What the results of one tilt series depend on: the settings
        :attr:`fingerprint_keys` and the input files (real path, size, modification time:
        particles, tomograms, the tilt-series STAR file and its stacks)."""
        ts = self.plan(tomo_name).ts
        files = file_signature([self.particles_star, self.tomograms_star,
                                R5.resolve(ts.star_file, self.project_dir)]
                               + [f for f, _ in ts.frames])
        return json.dumps({"settings": {k: getattr(self.settings, k)
                                        for k in self.fingerprint_keys},
                           "files": files, "tomogram": str(tomo_name),
                           "version": self.fingerprint_version}, sort_keys=True)

    #: the unbinned box size that must fit the tilt images (subclasses may override)
    def unbinned_box(self):
        s0, _ = G.box_sizes(self.settings.box, self.settings.binning)
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
            raise R5.Relion5Error(
                "box size %d px at bin %g is %d unbinned px, larger than the %d x %d px tilt "
                "images of %s: no particle can be cut; give a smaller --box-size or a larger "
                "--bin" % (self.settings.box, self.settings.binning, s0, W, H, ts.name))

    def frame_replacements(self, tomo_name):
        """:func:`scan_tilt_series` of one tilt series with this job's policy."""
        return scan_tilt_series(self.plan(tomo_name).ts, self.nonfinite)
