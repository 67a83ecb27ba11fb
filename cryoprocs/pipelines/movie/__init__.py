"""Tomograms, volumes and tilt series to movies, streamed from a memory map to the encoder,
optionally with particles drawn in.

Used by the ``cryoprocs movie`` command and by the ExportMovie protocol. The frame maths
(mrc2movie parity, CLAHE, binning, labels) is in :mod:`cryoprocs.kernels.movie`, the particle
drawing in :mod:`cryoprocs.kernels.particle_overlay`. This package:

* :mod:`.settings`: :class:`MovieSettings`, output names, tilt-angle files;
* :mod:`.sources`: volumes and tilt series read through ``mrcfile.mmap`` a block of slices
  at a time (peak memory: a block of <= 32 MB, a few frames, the mapped pages);
* :mod:`.writers`: H.264 MP4 (libx264 ``-preset veryfast -crf 23 -pix_fmt yuv420p -movflags
  +faststart``) and GIF through the ffmpeg bundled with imageio-ffmpeg; MJPG AVI (JPEG frames
  muxed by ffmpeg); other fourccs through ``cv2.VideoWriter``; PNG frames. Every distinct
  frame is rendered and encoded once (see docs/export-movie.md);
* :mod:`.export`: :func:`export_movie`, one movie of one source;
* :mod:`.overlay`: :class:`OverlaySettings` and particles on tomogram slices;
* :mod:`.relion`: the coordinate checker, tilt series of a RELION 5 project with their
  particles projected by extraction's geometry;
* :mod:`.outputs`: data safety, called by the others: the non-finite check of the sources,
  the writers' unique temporaries and ffmpeg children, write errors the encoders hide, the
  claims on a movie and the group rename of its outputs.

The run claims its movie (one writer per output) before any frame is rendered; every output
is written under a unique temporary name in the destination folder and the outputs are
renamed together when complete, the movie last; an interruption removes the temporaries and
stops the encoder. A writer that cannot be opened, or an encoder that fails, raises
:class:`~cryoprocs.kernels.movie.MovieError` and leaves no file (mrc2movie logged "Saved" for
a writer that never opened); a full disk is an ``OSError`` naming the movie.
"""
from ...kernels.movie import MovieError
from .export import MovieInfo, export_movie, human_size, particle_summary
from .overlay import OverlaySettings, parse_radius, tomogram_overlay
from .settings import (EVEN_FORMATS, EXTENSIONS, FORMATS, X264_PRESETS, MovieSettings,
                       movie_path, read_tilt_angles)
from .sources import FrameReader, StackSource, VolumeSource
from .writers import ffmpeg_exe

__all__ = ["FORMATS", "EXTENSIONS", "EVEN_FORMATS", "X264_PRESETS", "MovieSettings",
           "VolumeSource", "StackSource", "FrameReader", "MovieInfo", "export_movie",
           "movie_path", "read_tilt_angles", "ffmpeg_exe", "MovieError", "human_size",
           "particle_summary", "OverlaySettings", "parse_radius", "tomogram_overlay",
           "ORDERS", "RelionTiltSeries", "relion_tilt_series"]

_LAZY = {"ORDERS", "RelionTiltSeries", "relion_tilt_series"}


def __getattr__(name):
    """The RELION 5 part (pandas, starfile) is imported when first used (PEP 562), so that
    plain movies start fast."""
    if name in _LAZY:
        from . import relion
        return getattr(relion, name)
    raise AttributeError("module %r has no attribute %r" % (__name__, name))
