"""The coordinate checker: tilt series of a RELION 5 project as movies, with every particle
projected into every tilt image by extraction's own geometry.

Positions and projections are those of ``cryoprocs extract`` (RELION 5
``relion_tomo_subtomo``): :func:`cryoprocs.convert.relion5.particle_positions` (centred Å ->
decentred tilt-series px, offsets folded in) and :func:`cryoprocs.kernels.relion_geometry.
project` with each tilt series' :attr:`~cryoprocs.convert.relion5.TiltSeries.matrices`; a
particle is flagged in a frame by :func:`cryoprocs.kernels.relion_geometry.select_frames`,
extraction's visibility test (box of ``box_size`` px inside the image, strictly, and
pre-exposure <= ``max_dose``). The movie shows the raw tilt images (where extraction cuts its
boxes), in tilt-angle, file or dose order.
"""
import os

import numpy as np

from ...convert import relion5
from ...kernels import particle_overlay
from ...kernels import relion_geometry
from ...kernels.movie import MovieError
from .overlay import overlay_colours
from .sources import StackSource

__all__ = ["RelionTiltSeries", "relion_tilt_series", "ORDERS", "project_dir_for"]

#: frame orders of a tilt series: tilt angle, STAR row order, pre-exposure (acquisition)
ORDERS = ("angle", "file", "dose")


def project_dir_for(tomograms_star, project_dir=None):
    """The RELION project directory: ``project_dir``, else the current directory when the
    tilt-series STAR files resolve from it (RELION's rule), else the folder of
    ``tomograms_star`` or its first parent from which they do."""
    if project_dir:
        return os.path.abspath(project_dir)
    tomos = relion5.read_tomograms(tomograms_star)
    files = [str(f) for f in tomos.get("rlnTomoTiltSeriesStarFile", [])]
    if files and all(os.path.exists(relion5.resolve(f, os.getcwd())) for f in files):
        return os.getcwd()
    return relion5.guess_project_dir(tomograms_star, tomos)


class RelionTiltSeries:
    """One tilt series of a RELION 5 project and its particles, ready to become a movie.

    Attributes: ``name``, ``ts`` (:class:`~cryoprocs.convert.relion5.TiltSeries`),
    ``frame_order`` (row indices in movie order), ``positions`` (``(N, 3)`` decentred
    tilt-series px, as extraction computes them), ``particles`` (their rows), ``q``
    (``(F, N, 3)`` projections in STAR row order).
    """

    def __init__(self, name, ts, frame_order, particles=None, positions=None):
        self.name, self.ts, self.frame_order = name, ts, np.asarray(frame_order, dtype=int)
        self.particles = particles
        self.positions = np.zeros((0, 3)) if positions is None else positions
        self.q = relion_geometry.project(ts.matrices, self.positions)

    def angles(self):
        t = self.ts.table
        col = "rlnTomoNominalStageTiltAngle" if "rlnTomoNominalStageTiltAngle" in t.columns \
            else "rlnTomoYTilt"
        return t[col].to_numpy(np.float64)

    def source(self, pixel_size=None, nonfinite="error"):
        """A :class:`StackSource` of the tilt images in movie order (labels: tilt angles);
        ``nonfinite``: NaN / infinite values in them are an error, or replaced (see
        :class:`StackSource`)."""
        frames = [self.ts.frames[i] for i in self.frame_order]
        angles = self.angles()[self.frame_order]
        return StackSource(frames, angles, pixel_size=pixel_size or self.ts.pixel_size,
                           nonfinite=nonfinite)

    def image_files(self):
        """The files holding the tilt images (inputs of the path checks)."""
        return sorted({str(p) for p, _ in self.ts.frames})

    def usable(self, box_size, max_dose=-1.0):
        """``(F, N)`` bool in movie order: the particle's box of ``box_size`` unbinned px
        lies inside the image and the frame's pre-exposure is <= ``max_dose`` (extraction's
        :func:`~cryoprocs.kernels.relion_geometry.select_frames`)."""
        if max_dose is not None and max_dose > 0 and not np.all(
                np.isfinite(self.ts.pre_exposure)):
            raise MovieError("%s: a maximum dose needs rlnMicrographPreExposure in the "
                             "tilt-series STAR file" % self.name)
        vis, _ = relion_geometry.select_frames(self.q, self.ts.image_size, 0.5 * float(box_size),
                                               self.ts.pre_exposure, max_dose, min_frames=0)
        return vis[self.frame_order]

    def overlay(self, settings):
        """The :class:`~cryoprocs.kernels.particle_overlay.ProjectedOverlay` of the
        particles (radius and box in tilt-series px or Å, see OverlaySettings)."""
        settings.validate()
        radius = settings.radius_px(self.ts.pixel_size, "the tilt series %s" % self.name)
        box = settings.box_size if settings.box_size > 0 else 2.0 * radius
        usable = self.usable(box, settings.max_dose)
        n = len(self.positions)
        if n:
            colours, key = overlay_colours(self.particles, settings)
        else:
            colours, key = particle_overlay.parse_colour(settings.base_colour()), None
        ids = None
        if settings.ids and n:
            ids = [s.rsplit("/", 1)[-1] for s in relion5.particle_names(self.particles)]
        ov = particle_overlay.ProjectedOverlay(self.q[self.frame_order, :, :2], radius, usable,
                                               colours,
                                               particle_overlay.parse_colour(settings.flag_colour),
                                               settings.style, ids, key, settings.thickness or None)
        ov.info = {"radius_px": radius, "box_px": float(box),
                   "max_dose": float(settings.max_dose)}
        return ov


def _frame_order(ts, order):
    if order not in ORDERS:
        raise MovieError("frame order %r: expected one of %s" % (order, ", ".join(ORDERS)))
    n = ts.n_frames
    if order == "file":
        return np.arange(n)
    t = ts.table
    if order == "angle":
        col = "rlnTomoNominalStageTiltAngle" if "rlnTomoNominalStageTiltAngle" in t.columns \
            else "rlnTomoYTilt"
        key = t[col].to_numpy(np.float64)
    else:
        key = ts.pre_exposure
        if not np.all(np.isfinite(key)):
            raise MovieError("%s: dose order needs rlnMicrographPreExposure" % ts.name)
    return np.argsort(key, kind="stable")


def relion_tilt_series(tomograms_star, particles_star=None, project_dir=None, names=None,
                       order="angle"):
    """The tilt series of a RELION 5 project with their particles (a generator, one
    :class:`RelionTiltSeries` at a time, in tomograms.star order).

    Parameters
    ----------
    tomograms_star : str
        tomograms.star (``data_global``).
    particles_star : str, optional
        particles.star; its ``rlnTomoName`` selects each tilt series' particles.
    project_dir : str, optional
        RELION project directory (see :func:`project_dir_for`).
    names : list of str, optional
        only these tilt series (``rlnTomoName``).
    order : str
        ``angle``, ``file`` (STAR rows) or ``dose`` (pre-exposure, i.e. acquisition).

    Raises
    ------
    Relion5Error, MovieError
        unreadable files, unknown names, no alignment.
    """
    project = project_dir_for(tomograms_star, project_dir)
    tomos = relion5.read_tomograms(tomograms_star)
    known = tomos["rlnTomoName"].tolist()
    if names:
        missing = [n for n in names if n not in known]
        if missing:
            raise MovieError("%s has no tilt series %s (it has %s)" % (
                tomograms_star, ", ".join(missing), ", ".join(known[:10])))
    parts = optics_ps = None
    if particles_star:
        pt = relion5.read_particles(particles_star)
        optics, parts = relion5.build_optics(pt.optics, pt.particles, tomos)
        optics_ps = relion5.optics_pixel_sizes(optics)
    for _, row in tomos.iterrows():
        name = row["rlnTomoName"]
        if names and name not in names:
            continue
        ts = relion5.load_tilt_series(row, project, need_ctf=False)
        sub, pos = None, None
        if parts is not None:
            sub = parts[parts["rlnTomoName"] == name]
            pos = relion5.particle_positions(sub, optics_ps, ts.tomo_size) if len(sub) else None
        yield RelionTiltSeries(name, ts, _frame_order(ts, order), sub, pos)
