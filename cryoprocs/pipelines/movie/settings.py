"""Movie settings shared by ``cryoprocs movie`` and the ExportMovie protocol, output names and
tilt-angle files."""
import os

from ...kernels import movie as movie_kernels
from ...kernels.movie import MovieError

__all__ = ["FORMATS", "EXTENSIONS", "EVEN_FORMATS", "X264_PRESETS", "MovieSettings",
           "movie_path", "read_tilt_angles"]

#: output formats and their file extension ("" = a folder of PNG files)
EXTENSIONS = {"mp4": ".mp4", "avi": ".avi", "gif": ".gif", "png": ""}
FORMATS = tuple(EXTENSIONS)
#: formats whose frames are padded to even sizes: yuv420p for H.264, and the 4:2:0 JPEG
#: frames of MJPG (OpenCV's writer, mrc2movie's, silently crops odd sizes to even)
EVEN_FORMATS = ("mp4", "avi")

X264_PRESETS = ("ultrafast", "superfast", "veryfast", "faster", "fast", "medium", "slow",
                "slower", "veryslow")


class MovieSettings:
    """Movie parameters shared by the CLI and the protocol (mrc2movie defaults except the
    format: H.264 MP4 instead of MJPG AVI).

    Parameters
    ----------
    format : str
        ``mp4`` (H.264), ``avi`` (``fourcc``, MJPG by default), ``gif`` or ``png``.
    fps : float
        Frames per second (mrc2movie: 30).
    playback : str
        ``forward`` or ``forward-backward`` (2n - 2 frames, loops seamlessly); ``pingpong``
        (mrc2movie 0.2.0's name) is the same as ``forward-backward``.
    pause : int
        Frames to hold the last (and, forward-backward, the first) frame of each pass
        (mrc2movie 0.2.0 ``--pause``; default 0).
    cycles : int
        Passes (mrc2movie 0.2.0 ``--cycles``; default 1).
    keep_range : (int, int) or None
        Keep frames ``[start, end)`` (mrc2movie's ``--discard_range``, which keeps them).
    discard_fraction : (float, float) or None
        Discard these fractions of the frames at the start and at the end.
    axis : str
        ``z``, ``y`` or ``x``: slicing axis of volumes (stacks are always shown image by image).
    slab : int
        Average this many neighbouring slices per frame (1 = none).
    binning : int
        Average ``binning x binning`` pixel blocks.
    max_width : int
        Shrink wider frames to this width in px (0 = no limit).
    upscale : int
        Enlarge the (binned) frames this many times, bicubic (1 = no; for small tomograms).
    window : str
        ``minmax`` (global min/max of the kept frames, mrc2movie) or ``percentile``.
    percentiles : (float, float)
        Low/high percentiles of the ``percentile`` window.
    clahe, clip_limit, tile_grid_size : bool, float, int
        CLAHE (mrc2movie: on, 2.0, 8 x 8 grid).
    invert : bool
        Invert the contrast.
    label : bool
        Write the slice number (volumes) or tilt angle (tilt series) on every frame.
    scale_bar : bool
        Draw a scale bar in nm (needs the pixel size).
    crf, preset : int, str
        x264 constant rate factor and preset for MP4.
    fourcc : str
        OpenCV fourcc for ``avi`` (mrc2movie: MJPG).
    png_frames : bool
        Also write the frames as PNG files next to the movie (mrc2movie ``--png``).
    jpeg_quality : int
        JPEG quality of MJPG frames (1-100; default 90, which decodes closer to the rendered
        frames than OpenCV's MJPG writer, mrc2movie's).
    """

    def __init__(self, format="mp4", fps=30.0, playback="forward-backward", keep_range=None,
                 discard_fraction=None, axis="z", slab=1, binning=1, max_width=0,
                 window="minmax", percentiles=(0.1, 99.9), clahe=True, clip_limit=2.0,
                 tile_grid_size=8, invert=False, label=False, scale_bar=False, crf=23,
                 preset="veryfast", fourcc="MJPG", png_frames=False, pause=0, cycles=1,
                 jpeg_quality=90, upscale=1):
        self.format = str(format).lower()
        self.fps = float(fps)
        self.playback = movie_kernels.canonical_playback(playback)
        self.pause = int(pause)
        self.cycles = int(cycles)
        self.jpeg_quality = int(jpeg_quality)
        self.upscale = int(upscale)
        self.keep_range = tuple(int(v) for v in keep_range) if keep_range is not None else None
        self.discard_fraction = (tuple(float(v) for v in discard_fraction)
                                 if discard_fraction is not None else None)
        self.axis = str(axis).lower()
        self.slab = int(slab)
        self.binning = int(binning)
        self.max_width = int(max_width or 0)
        self.window = str(window)
        self.percentiles = tuple(float(v) for v in percentiles)
        self.clahe = bool(clahe)
        self.clip_limit = float(clip_limit)
        self.tile_grid_size = int(tile_grid_size)
        self.invert = bool(invert)
        self.label = bool(label)
        self.scale_bar = bool(scale_bar)
        self.crf = int(crf)
        self.preset = str(preset)
        self.fourcc = str(fourcc)
        self.png_frames = bool(png_frames)
        self.validate()

    def validate(self):
        """Check every value; raise :class:`MovieError` naming the first bad one."""
        if self.format not in FORMATS:
            raise MovieError("format %r: expected one of %s" % (self.format, ", ".join(FORMATS)))
        if not (self.fps > 0):
            raise MovieError("frames per second must be > 0, got %g" % self.fps)
        if self.playback not in movie_kernels.PLAYBACKS:
            raise MovieError("playback %r: expected one of %s"
                             % (self.playback, ", ".join(movie_kernels.PLAYBACKS)))
        if self.pause < 0:
            raise MovieError("pause must be >= 0 frames, got %d" % self.pause)
        if self.cycles < 1:
            raise MovieError("cycles must be >= 1, got %d" % self.cycles)
        if self.upscale < 1:
            raise MovieError("enlargement must be >= 1, got %d" % self.upscale)
        if not 1 <= self.jpeg_quality <= 100:
            raise MovieError("JPEG quality must be in 1..100, got %d" % self.jpeg_quality)
        if self.axis not in movie_kernels.AXES:
            raise MovieError("slicing axis %r: expected one of z, y, x" % self.axis)
        if self.slab < 1:
            raise MovieError("slab thickness must be >= 1 slice, got %d" % self.slab)
        if self.binning < 1:
            raise MovieError("binning must be >= 1, got %d" % self.binning)
        if self.max_width < 0 or self.max_width == 1:
            raise MovieError("maximum width must be 0 (no limit) or >= 2 px, got %d"
                             % self.max_width)
        if self.window not in movie_kernels.WINDOWS:
            raise MovieError("contrast window %r: expected minmax or percentile" % self.window)
        lo, hi = self.percentiles
        if self.window == "percentile" and not (0.0 <= lo < hi <= 100.0):
            raise MovieError("percentiles must satisfy 0 <= low < high <= 100, got %g and %g"
                             % (lo, hi))
        if not self.clip_limit > 0:
            raise MovieError("CLAHE clip limit must be > 0, got %g" % self.clip_limit)
        if self.tile_grid_size < 1:
            raise MovieError("CLAHE tile grid size must be >= 1, got %d" % self.tile_grid_size)
        if not 0 <= self.crf <= 51:
            raise MovieError("x264 CRF must be in 0..51, got %d" % self.crf)
        if self.preset not in X264_PRESETS:
            raise MovieError("x264 preset %r: expected one of %s"
                             % (self.preset, ", ".join(X264_PRESETS)))
        if len(self.fourcc) != 4:
            raise MovieError("an OpenCV fourcc has 4 characters, got %r" % self.fourcc)
        if self.keep_range is not None and len(self.keep_range) != 2:
            raise MovieError("the slice range takes START END")
        if self.discard_fraction is not None:
            a, b = self.discard_fraction
            if not (0.0 <= a < 1.0 and 0.0 <= b < 1.0):
                raise MovieError("discard fractions (%g, %g) must be in [0, 1) (e.g. 0.1 0.1 "
                                 "discards 10 %% at each end)" % (a, b))
        return self

    def describe(self):
        """One line for logs and summaries."""
        jpeg = ", JPEG quality %d" % self.jpeg_quality if self.fourcc.upper() == "MJPG" else ""
        fmt = {"mp4": "MP4 (H.264, crf %d, %s)" % (self.crf, self.preset),
               "avi": "AVI (%s%s)" % (self.fourcc, jpeg), "gif": "GIF",
               "png": "PNG frames"}[self.format]
        parts = [fmt, "%g fps" % self.fps, self.playback]
        if self.pause:
            parts.append("pause %d" % self.pause)
        if self.cycles > 1:
            parts.append("%d cycles" % self.cycles)
        if self.axis != "z":
            parts.append("axis %s" % self.axis.upper())
        if self.slab > 1:
            parts.append("slab %d" % self.slab)
        if self.binning > 1:
            parts.append("bin %d" % self.binning)
        if self.upscale > 1:
            parts.append("enlarged %dx" % self.upscale)
        if self.max_width:
            parts.append("max width %d px" % self.max_width)
        parts.append("min/max window" if self.window == "minmax" else
                     "window %g-%g %%" % self.percentiles)
        parts.append("CLAHE clip %g grid %d" % (self.clip_limit, self.tile_grid_size)
                     if self.clahe else "no CLAHE")
        if self.invert:
            parts.append("inverted")
        return ", ".join(parts)


def movie_path(output_dir, stem, format):
    """Output path of a movie: ``<dir>/<stem>.mp4|.avi|.gif`` or the folder
    ``<dir>/<stem>_frames`` for PNG frames."""
    ext = EXTENSIONS[format]
    return os.path.join(output_dir, stem + ext if ext else stem + "_frames")


def read_tilt_angles(path):
    """Tilt angles in degrees from an IMOD ``.tlt``/``.rawtlt`` file (one value per line;
    blank lines and ``#`` comments ignored).

    Raises
    ------
    MovieError
        unreadable file or a line that is not a number.
    """
    angles = []
    try:
        with open(path) as fh:
            for i, line in enumerate(fh, 1):
                line = line.split("#", 1)[0].strip()
                if not line:
                    continue
                try:
                    angles.append(float(line.split()[0]))
                except ValueError:
                    shown = line if len(line) <= 40 else line[:40] + "..."
                    raise MovieError("%s line %d: %r is not a tilt angle (a .tlt file has one "
                                     "angle in degrees per line)" % (path, i, shown))
    except UnicodeDecodeError:
        raise MovieError("%s is not a text file of tilt angles (one angle in degrees per "
                         "line)" % path)
    except OSError as exc:
        raise MovieError("cannot read tilt angles from %s: %s" % (path, exc))
    if not angles:
        raise MovieError("%s holds no tilt angle" % path)
    return angles

