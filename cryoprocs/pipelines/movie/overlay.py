"""Particle overlays of movies: what to draw (:class:`OverlaySettings`, shared by the CLI and
the protocol) and the overlay of a tomogram from a particle file (:func:`tomogram_overlay`).
The drawing itself is :mod:`cryoprocs.kernels.particle_overlay`; file formats and their
coordinate conventions are :mod:`cryoprocs.convert.particles`."""
import os
import re
from dataclasses import dataclass

from ...kernels import particle_overlay
from ...kernels.movie import MovieError

__all__ = ["OverlaySettings", "parse_radius", "tomogram_overlay", "overlay_colours",
           "DEFAULT_RADIUS_PX", "MRC2MOVIE_RADIUS_PX"]

#: radius of particles drawn without a radius or a box size (px)
DEFAULT_RADIUS_PX = 10.0
#: mrc2movie 0.2.0's ``--psize`` default (px)
MRC2MOVIE_RADIUS_PX = 3.0

_RADIUS = re.compile(r"^\s*([0-9]*\.?[0-9]+(?:[eE][-+]?[0-9]+)?)\s*(px|a|å|angst|nm)?\s*$",
                     re.I)


def parse_radius(text):
    """``(value, unit)`` of a radius such as ``12``, ``12px``, ``150A``, ``150Å`` or
    ``15nm`` (returned in Å); unit ``"px"`` or ``"A"``.

    Raises
    ------
    MovieError
        anything else, or a radius <= 0.
    """
    m = _RADIUS.match(str(text))
    if not m:
        raise MovieError("particle radius %r: give px (12, 12px) or Å (150A, 15nm)" % (text,))
    value, unit = float(m.group(1)), (m.group(2) or "px").lower()
    if not value > 0:
        raise MovieError("particle radius must be > 0, got %r" % (text,))
    if unit == "nm":
        return value * 10.0, "A"
    return (value, "px") if unit == "px" else (value, "A")


@dataclass
class OverlaySettings:
    """What to draw and how.

    particles : particle file (tomograms; see convert/particles.py) or particles.star (tilt
    series); radius, radius_unit : sphere radius R in ``px`` of the input (tomogram voxels,
    tilt-image px) or ``A``; 0 = half ``box_size``, else 10 px (3 px in mrc2movie style);
    box_size : box size in input px (default radius; on tilt series the box must lie inside
    the image, RELION's visibility test with ``bin x crop``); style : ``outline``,
    ``filled`` or ``mrc2movie``; colour : one colour (default green, red in mrc2movie style);
    flag_colour : tilt series, particles outside the image or beyond ``max_dose`` (e/Å²,
    <= 0: none); color_by, colormap, color_range : colour by a column; ids : write particle
    ids; tomo_name : tomogram to select in files of several; thickness : outline px (0 =
    automatic).
    """
    particles: str = None
    radius: float = 0.0
    radius_unit: str = "px"
    box_size: float = 0.0
    style: str = "outline"
    colour: str = None
    flag_colour: str = "red"
    color_by: str = None
    colormap: str = "viridis"
    color_range: tuple = None
    ids: bool = False
    tomo_name: str = None
    max_dose: float = -1.0
    thickness: int = 0

    def validate(self):
        """Check the values; raise :class:`MovieError` naming the first bad one."""
        if self.style not in particle_overlay.STYLES:
            raise MovieError("overlay style %r: expected one of %s"
                             % (self.style, ", ".join(particle_overlay.STYLES)))
        if self.radius_unit not in ("px", "A"):
            raise MovieError("radius unit %r: expected px or A" % self.radius_unit)
        if self.radius < 0 or self.box_size < 0:
            raise MovieError("particle radius and box size must be >= 0, got %g and %g"
                             % (self.radius, self.box_size))
        particle_overlay.parse_colour(self.base_colour())
        particle_overlay.parse_colour(self.flag_colour)
        if self.colormap.lower() not in particle_overlay.COLORMAPS:
            raise MovieError("colour map %r: expected one of %s"
                             % (self.colormap, ", ".join(particle_overlay.COLORMAPS)))
        if self.color_range is not None and not float(self.color_range[0]) < \
                float(self.color_range[1]):
            raise MovieError("colour range must be LOW < HIGH, got %s" % (self.color_range,))
        if self.thickness < 0:
            raise MovieError("line width must be >= 0 px, got %d" % self.thickness)
        return self

    def base_colour(self):
        return self.colour or ("red" if self.style == "mrc2movie" else "green")

    def radius_px(self, pixel_size, what="the input"):
        """R in px of an input of ``pixel_size`` Å (see the class docstring for defaults)."""
        if self.radius > 0:
            if self.radius_unit == "px":
                return float(self.radius)
            if not pixel_size or not pixel_size > 0:
                raise MovieError("a particle radius in Å needs the pixel size of %s, which is "
                                 "unknown (give it, or the radius in px)" % what)
            return float(self.radius) / float(pixel_size)
        if self.box_size > 0:
            return 0.5 * float(self.box_size)
        return MRC2MOVIE_RADIUS_PX if self.style == "mrc2movie" else DEFAULT_RADIUS_PX


def overlay_colours(table, settings):
    """``(colours, key)`` of the rows of ``table``: one colour, or from ``color_by``."""
    from ...convert import particles as particles_io        # pandas: only when particles are drawn
    if not settings.color_by:
        return particle_overlay.parse_colour(settings.base_colour()), None
    values, title = particles_io.value_column(table, settings.color_by)
    return particle_overlay.colour_key(values, title, settings.colormap, settings.color_range)


def tomogram_overlay(source, settings, tomo_name=None, only_input=True):
    """The :class:`~cryoprocs.kernels.particle_overlay.SliceOverlay` of the particles of
    ``settings.particles`` that belong to the tomogram of ``source`` (a VolumeSource).

    The tomogram is ``settings.tomo_name``; else ``tomo_name`` (e.g. the file's stem) when
    the particle file names it; else, for the ``only_input`` of a run, every particle of a
    file that names at most one tomogram. RELION coordinates use the source's pixel size and
    size.

    Raises
    ------
    ParticleFormatError, MovieError
        unreadable particles, no particle of this tomogram, bad settings.
    """
    from ...convert import particles as particles_io
    settings.validate()
    plist = particles_io.read_particle_list(settings.particles)
    name = settings.tomo_name
    names = plist.tomograms()
    if name is None and names and (tomo_name in names or len(names) > 1 or not only_input):
        name = tomo_name
    # coordinates refer to the full-resolution tomogram; a stored OME-Zarr level (isotropic,
    # see VolumeSource) is mapped onto afterwards
    f = float(getattr(source, "level_factor", (1.0,))[0])
    nz, ny, nx = getattr(source, "full_shape", source.input_shape)
    pixel_size = source.pixel_size / f
    pos, table = particles_io.particles_in_tomogram(plist, name, (nx, ny, nz), pixel_size)
    colours, key = overlay_colours(table, settings)
    radius = settings.radius_px(pixel_size, source.path)
    if f != 1.0:
        pos, radius = source.to_source_voxels(pos), radius / f
    ids = table["id"].tolist() if settings.ids and "id" in table.columns else None
    return particle_overlay.SliceOverlay(pos, radius, source.axis, colours, settings.style, ids,
                                         key, settings.thickness or None)


def default_tomo_name(path):
    """Tomogram name of a file: its name without extension (``TS_01.mrc`` -> ``TS_01``)."""
    return os.path.splitext(os.path.basename(path))[0]

