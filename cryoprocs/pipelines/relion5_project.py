"""What the RELION 5 project jobs (:class:`~cryoprocs.pipelines.extract.Stack2DJob`,
:class:`~cryoprocs.pipelines.reconstruct.ReconstructJob`) share: reading and checking the
project's particles.star and tomograms.star, and the per-tilt-series fingerprints that decide
whether results already in the output folder may be reused.
"""
import json
import os

from ..convert import relion5 as R5
from ..convert.images import is_url, signature_files
from ..convert.paths import check_io, check_output_dir, file_signature

__all__ = ["Relion5ProjectJob", "safe_name"]


def safe_name(name):
    """``name`` with every character other than letters, digits, ``-``, ``_`` and ``.``
    replaced by ``_`` (tomogram names as file names)."""
    return "".join(ch if ch.isalnum() or ch in "-_." else "_" for ch in str(name))


class Relion5ProjectJob:
    """Base of the jobs run on a RELION 5 project (not used directly).

    Subclasses validate their settings, then call this constructor, and provide
    ``plan(tomo_name)`` returning an object whose ``ts`` is the
    :class:`~cryoprocs.convert.relion5.TiltSeries`.

    Attributes set here: ``settings``, ``project_dir``, ``output_dir``, ``particles_star``,
    ``tomograms_star`` (absolute), ``ptable``, ``tomograms``, ``optics``, ``parts``,
    ``pixel_size_of_group``, ``unknown_tomograms`` (particle tomograms absent from
    tomograms.star) and ``tomogram_order`` (tomograms.star order, those with particles).

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

    def __init__(self, particles_star, tomograms_star, output_dir, settings, project_dir=None):
        self.settings = settings
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
        particles, tomograms, the tilt-series STAR file and its stacks, or the metadata
        files of OME-Zarr stores and the URLs of remote ones)."""
        ts = self.plan(tomo_name).ts
        sources = sorted({f for f, _ in ts.frames})
        files = file_signature([self.particles_star, self.tomograms_star,
                                R5.resolve(ts.star_file, self.project_dir)]
                               + [p for f in sources for p in signature_files(f)])
        record = {"settings": {k: getattr(self.settings, k) for k in self.fingerprint_keys},
                  "files": files, "tomogram": str(tomo_name),
                  "version": self.fingerprint_version}
        urls = [f for f in sources if is_url(f)]
        if urls:                                   # remote images: their URLs
            record["urls"] = urls
        return json.dumps(record, sort_keys=True)
