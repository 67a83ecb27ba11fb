"""Tomograms, volumes and tilt series to movies, streamed from a memory map to the encoder.

Used by the ``cryoprocs movie`` command and by the ExportMovie protocol. The frame maths
(mrc2movie parity, CLAHE, binning, overlays) is in :mod:`cryoprocs.kernels.movie`; this module
reads the input through ``mrcfile.mmap`` a block of slices at a time, renders one frame at a
time and hands it to the writer through a small queue (the encoder runs in a thread or in the
ffmpeg process while the next frames are rendered). Nothing accumulates: peak memory is a
block of slices (<= 32 MB), a few frames, and the pages of the memory-mapped input.
Forward-backward playback renders the kept frames again in reverse order instead of keeping
them.

Writers (see docs/export-movie.md):

* ``mp4``: H.264 (libx264 ``-preset veryfast -crf 23 -pix_fmt yuv420p -movflags +faststart``)
  through the ffmpeg executable bundled with imageio-ffmpeg.
* ``avi``: MJPG in AVI through ``cv2.VideoWriter``, mrc2movie's own writer (parity); other
  fourccs (``XVID``, ``mp4v``) also go through OpenCV.
* MP4 and AVI frames are padded to even sizes by repeating the last row/column (yuv420p needs
  them; OpenCV's MJPG writer would otherwise crop an odd frame to even, as in mrc2movie).
* ``gif``: ffmpeg's GIF encoder (gray palette, loops forever).
* ``png``: one 8-bit PNG per kept frame (forward order only) in ``<stem>_frames/``.

Every output is written under a temporary name in the destination folder and renamed when
complete; a writer that cannot be opened, or an encoder that fails, raises
:class:`~cryoprocs.kernels.movie.MovieError` and leaves no file (mrc2movie logged "Saved" for
a writer that never opened).
"""
import contextlib
import logging
import os
import queue
import subprocess
import tempfile
import threading
from fractions import Fraction

import numpy as np

from ..convert import outputs as O
from ..convert.images import is_image_store, open_image
from ..convert.mrc import MrcFormatError, mmap_mrc, voxel_size_of
from . import movie_outputs as MO
from .movie_outputs import source_guard
from ..kernels import movie as K
from ..kernels.movie import MovieError

logger = logging.getLogger(__name__)

__all__ = ["FORMATS", "EXTENSIONS", "MovieSettings", "VolumeSource", "StackSource",
           "MovieInfo", "export_movie", "movie_path", "read_tilt_angles", "ffmpeg_exe",
           "MovieError"]

#: output formats and their file extension ("" = a folder of PNG files)
EXTENSIONS = {"mp4": ".mp4", "avi": ".avi", "gif": ".gif", "png": ""}
FORMATS = tuple(EXTENSIONS)
#: formats whose frames are padded to even sizes: yuv420p for H.264, and OpenCV's MJPG writer
#: (yuvj420p), which silently crops odd sizes to even (mrc2movie loses a row/column there)
EVEN_FORMATS = ("mp4", "avi")
#: raw slices read at once (a block of the memory-mapped input)
BLOCK_BYTES = 32 * 1024 * 1024
#: values sampled from all frames together for a percentile window
PERCENTILE_SAMPLES = 4_000_000
#: frames queued between the renderer and the encoder
QUEUE_FRAMES = 4

X264_PRESETS = ("ultrafast", "superfast", "veryfast", "faster", "fast", "medium", "slow",
                "slower", "veryslow")


def ffmpeg_exe():
    """Path of the ffmpeg executable bundled with imageio-ffmpeg (or $IMAGEIO_FFMPEG_EXE)."""
    try:
        import imageio_ffmpeg
    except ImportError as exc:      # pragma: no cover - a declared dependency
        raise MovieError("imageio-ffmpeg is needed for MP4 and GIF movies: %s" % exc)
    return imageio_ffmpeg.get_ffmpeg_exe()


# ============================================================================ settings
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
        ``forward`` or ``forward-backward`` (2n - 2 frames, loops seamlessly).
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
    """

    def __init__(self, format="mp4", fps=30.0, playback="forward-backward", keep_range=None,
                 discard_fraction=None, axis="z", slab=1, binning=1, max_width=0,
                 window="minmax", percentiles=(0.1, 99.9), clahe=True, clip_limit=2.0,
                 tile_grid_size=8, invert=False, label=False, scale_bar=False, crf=23,
                 preset="veryfast", fourcc="MJPG", png_frames=False):
        self.format = str(format).lower()
        self.fps = float(fps)
        self.playback = str(playback)
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
        if self.playback not in K.PLAYBACKS:
            raise MovieError("playback %r: expected one of %s"
                             % (self.playback, ", ".join(K.PLAYBACKS)))
        if self.axis not in K.AXES:
            raise MovieError("slicing axis %r: expected one of z, y, x" % self.axis)
        if self.slab < 1:
            raise MovieError("slab thickness must be >= 1 slice, got %d" % self.slab)
        if self.binning < 1:
            raise MovieError("binning must be >= 1, got %d" % self.binning)
        if self.max_width < 0 or self.max_width == 1:
            raise MovieError("maximum width must be 0 (no limit) or >= 2 px, got %d"
                             % self.max_width)
        if self.window not in K.WINDOWS:
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
        fmt = {"mp4": "MP4 (H.264, crf %d, %s)" % (self.crf, self.preset),
               "avi": "AVI (%s)" % self.fourcc, "gif": "GIF", "png": "PNG frames"}[self.format]
        parts = [fmt, "%g fps" % self.fps, self.playback]
        if self.axis != "z":
            parts.append("axis %s" % self.axis.upper())
        if self.slab > 1:
            parts.append("slab %d" % self.slab)
        if self.binning > 1:
            parts.append("bin %d" % self.binning)
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


# ============================================================================ sources
class VolumeSource:
    """Slices of one MRC volume (or image, or image stack read as a volume) along an axis.

    Parameters
    ----------
    path : str
        MRC file (a Scipion ``n@`` prefix is ignored; volumes are whole files).
    axis : str
        ``z`` (frames ``[y, x]``), ``y`` (frames ``[z, x]``) or ``x`` (frames ``[z, y]``).
    pixel_size : float, optional
        Å per pixel; default the header's X voxel size (0 = unknown).
    nonfinite : {"error", "replace"}
        NaN / infinite voxels are an error, or replaced by the mean of the finite ones
        (:class:`~cryoprocs.convert.mrc.FiniteGuard`).
    """
    kind = "slice"

    def __init__(self, path, axis="z", pixel_size=None, binning=None, nonfinite="error"):
        self.path = path
        self.axis = axis
        self._mrc = _open_volume(path, binning)
        self.level_binning = getattr(self._mrc, "level_binning", 1)
        data = self._mrc.data
        if data is None:
            raise MrcFormatError("%s holds no data" % path)
        if data.ndim == 2:
            data = data[None]
        if data.ndim != 3:
            raise MovieError("%s has %d dimensions; a movie needs an image, a stack or a volume"
                             % (path, data.ndim))
        if axis not in K.AXES:
            raise MovieError("slicing axis %r: expected one of z, y, x" % axis)
        if axis != "z" and data.shape[0] == 1:
            raise MovieError("%s is a single image: it can only be shown along Z" % path)
        self._data = data
        self._guard = source_guard(path, data, nonfinite)
        self._ax = K.AXES.index(axis)
        shape = data.shape
        self.n = int(shape[self._ax])
        self.frame_shape = tuple(int(s) for i, s in enumerate(shape) if i != self._ax)
        vs = self._mrc.voxel_size if hasattr(self._mrc, "levels") else voxel_size_of(self._mrc)
        self.pixel_size = float(pixel_size) * self.level_binning if pixel_size else float(vs[0])
        self.input_shape = tuple(int(s) for s in shape)
        self.dtype = data.dtype

    def read(self, a, b):
        """Slices ``a .. b-1`` along the axis as float32 ``[b-a, rows, cols]`` (a copy)."""
        if self._ax == 0:
            blk = self._data[a:b]
        elif self._ax == 1:
            blk = np.moveaxis(self._data[:, a:b, :], 1, 0)
        else:
            blk = np.moveaxis(self._data[:, :, a:b], 2, 0)
        return self._guard.check(np.array(blk, dtype=np.float32, order="C"), inplace=True)

    def label(self, k):
        return K.frame_label("slice", k, self.n, self.axis)

    def close(self):
        self._mrc.close()


def _open_volume(path, binning=None):
    """An MRC file memory-mapped (mrcfile), or an OME-Zarr image (local or URL) read chunk by
    chunk: with ``binning`` > 1, the stored level binned that many times in x and y when
    there is one (its ``level_binning`` tells; the frames then need no more binning)."""
    if not is_image_store(path):
        return mmap_mrc(path, permissive=True)
    img = open_image(path, binning=binning if binning and binning > 1 else None)
    ratio = img.voxel_size[0] / img.levels[0]["voxel_size"][0]
    img.level_binning = int(round(ratio)) if abs(ratio - round(ratio)) < 1e-3 else 1
    return img


class StackSource:
    """Images from MRC files in a given order (a tilt series): ``entries[k] = (path, index)``
    with a 0-based ``index`` into the file's stack, or None for a single-image file.

    Parameters
    ----------
    entries : list of (str, int or None)
        The images, in frame order.
    angles : list of float, optional
        Tilt angle of each entry in degrees (labels).
    pixel_size : float, optional
        Å per pixel; default the first file's header voxel size.
    nonfinite : {"error", "replace"}
        as for :class:`VolumeSource` (the mean is that of each file).
    """
    kind = "image"
    axis = "z"

    def __init__(self, entries, angles=None, pixel_size=None, nonfinite="error"):
        self.nonfinite = nonfinite
        self._guards = {}
        if not entries:
            raise MovieError("the tilt series has no image")
        self.entries = [(p, None if i is None else int(i)) for p, i in entries]
        self.angles = None if angles is None else [float(a) for a in angles]
        if self.angles is not None and len(self.angles) != len(self.entries):
            raise MovieError("%d tilt angles for %d images" % (len(self.angles),
                                                               len(self.entries)))
        self._open = {}
        first = self._image(0)
        self.frame_shape = tuple(int(s) for s in first.shape)
        self.n = len(self.entries)
        self.input_shape = (self.n,) + self.frame_shape
        self.dtype = first.dtype
        mrc = self._open[self.entries[0][0]]
        vs = mrc.voxel_size if hasattr(mrc, "levels") else voxel_size_of(mrc)
        self.pixel_size = float(pixel_size) if pixel_size else float(vs[0])
        self.path = self.entries[0][0]

    def _image(self, k):
        path, index = self.entries[k]
        mrc = self._open.get(path)
        if mrc is None:
            mrc = self._open[path] = _open_volume(path)
            self._guards[path] = source_guard(path, mrc.data, self.nonfinite)
        data = mrc.data
        if hasattr(mrc, "levels"):                  # OME-Zarr: one section at a time
            if index is None or not 0 <= index < data.shape[0]:
                raise MovieError("%s holds %d images; image %s requested"
                                 % (path, data.shape[0], None if index is None else index + 1))
            return data[index]
        if data.ndim == 2:
            if index not in (None, 0):
                raise MovieError("%s holds one image; image %d requested" % (path, index + 1))
            img = data
        else:
            if index is None or not 0 <= index < data.shape[0]:
                raise MovieError("%s holds %d images; image %s requested"
                                 % (path, data.shape[0], None if index is None else index + 1))
            img = data[index]
        if img.shape != getattr(self, "frame_shape", img.shape):
            raise MovieError("image %d of %s is %s px, the first image is %s px"
                             % ((index or 0) + 1, path, "x".join(map(str, img.shape[::-1])),
                                "x".join(map(str, self.frame_shape[::-1]))))
        return img

    def read(self, a, b):
        out = np.empty((b - a,) + self.frame_shape, dtype=np.float32)
        for k in range(a, b):
            out[k - a] = self._image(k)
            self._guards[self.entries[k][0]].check(out[k - a], inplace=True)
        return out

    def label(self, k):
        if self.angles is not None:
            return K.frame_label("angle", self.angles[k])
        return "image %d/%d" % (k + 1, self.n)

    def close(self):
        for mrc in self._open.values():
            mrc.close()
        self._open.clear()


class _FrameReader:
    """Float32 frames of a source, slab-averaged, binned and shrunk to ``out_shape`` (area
    averaging), read a block of slices at a time."""

    def __init__(self, source, slab=1, binning=1, out_shape=None, block_bytes=BLOCK_BYTES):
        self.source = source
        self.slab = int(slab)
        self.binning = int(binning)
        self.out_shape = None if out_shape is None else tuple(out_shape)
        rows, cols = source.frame_shape
        self.block = max(self.slab, int(block_bytes // max(1, rows * cols * 4)), 1)
        self._c0 = self._c1 = 0
        self._buf = None

    def _slices(self, a, b):
        if self._buf is None or a < self._c0 or b > self._c1:
            n = self.source.n
            if self._buf is not None and a < self._c0 and self._c0 - a <= self.block:
                # walking backwards (forward-backward playback): keep the block below
                c1 = b
                c0 = max(0, min(a, c1 - self.block))
            else:
                c0 = a
                c1 = min(n, max(b, a + self.block))
            self._buf = None
            self._buf = self.source.read(c0, c1)
            self._c0, self._c1 = c0, c1
        return self._buf[a - self._c0:b - self._c0]

    def frame(self, k):
        a, b = K.slab_bounds(k, self.source.n, self.slab)
        sl = self._slices(a, b)
        f = sl[0] if b - a == 1 else sl.mean(axis=0, dtype=np.float32)
        f = K.bin_image(f, self.binning)
        if self.out_shape is not None and f.shape != self.out_shape:
            import cv2
            f = cv2.resize(f, self.out_shape[::-1], interpolation=cv2.INTER_AREA)
        return f


# ============================================================================ writers
class _FfmpegWriter:
    """Gray uint8 frames piped to the bundled ffmpeg (H.264 MP4 or GIF), written to a
    temporary file (``self.tmp``) that the caller renames when every writer succeeded."""

    def __init__(self, path, width, height, fps, fmt, crf=23, preset="veryfast", threads=0):
        self.path, self.tmp = path, MO.writer_temp(path)
        self.size = (int(width), int(height))
        fps_arg = str(Fraction(fps).limit_denominator(1001))
        cmd = [ffmpeg_exe(), "-y", "-hide_banner", "-nostdin", "-loglevel", "error",
               "-f", "rawvideo", "-pix_fmt", "gray", "-s", "%dx%d" % self.size,
               "-r", fps_arg, "-i", "-", "-an"]
        if fmt == "mp4":
            cmd += ["-c:v", "libx264", "-preset", preset, "-crf", str(int(crf)),
                    "-pix_fmt", "yuv420p", "-movflags", "+faststart", "-f", "mp4"]
        elif fmt == "gif":
            cmd += ["-c:v", "gif", "-pix_fmt", "gray", "-loop", "0", "-f", "gif"]
        else:
            MO.discard(self.tmp)
            raise MovieError("ffmpeg writer: unknown format %r" % fmt)
        if threads:
            cmd[-2:-2] = ["-threads", str(int(threads))]
        cmd.append(self.tmp)
        self.cmd = cmd
        self._err = tempfile.TemporaryFile()
        try:
            self.proc = subprocess.Popen(cmd, stdin=subprocess.PIPE, stdout=subprocess.DEVNULL,
                                         stderr=self._err)
        except OSError as exc:
            self._err.close()
            MO.discard(self.tmp)
            raise MovieError("cannot start the ffmpeg encoder %s: %s" % (cmd[0], exc))
        MO.track_encoder(self.proc)
        self.frames = 0

    def _stderr(self):
        self._err.seek(0)
        return self._err.read().decode("utf-8", "replace").strip()[-2000:]

    def write(self, frame):
        try:
            self.proc.stdin.write(memoryview(np.ascontiguousarray(frame)).cast("B"))
        except (BrokenPipeError, OSError):
            self.proc.wait()
            raise MO.disk_full_error(self.path) or MovieError(
                "the ffmpeg encoder stopped after %d frames of %s (exit %s): %s"
                % (self.frames, self.path, self.proc.returncode, self._stderr()))
        self.frames += 1

    def close(self):
        """Finish encoding (the movie stays under ``self.tmp``)."""
        try:
            self.proc.stdin.close()
        except (BrokenPipeError, OSError):
            pass
        rc = self.proc.wait()
        MO.untrack_encoder(self.proc)
        msg = self._stderr()
        self._err.close()
        if rc != 0 or not os.path.exists(self.tmp) or os.path.getsize(self.tmp) == 0:
            MO.discard(self.tmp)
            raise MO.disk_full_error(self.path) or MovieError(
                "the ffmpeg encoder failed for %s (exit %s): %s"
                % (self.path, rc, msg or "no output written"))

    def abort(self):
        with contextlib.suppress(Exception):
            if self.proc.poll() is None:
                self.proc.kill()
            self.proc.wait()
        MO.untrack_encoder(self.proc)
        with contextlib.suppress(Exception):
            self._err.close()
        MO.discard(self.tmp)


class _OpenCvWriter:
    """OpenCV ``VideoWriter`` (mrc2movie's writer): grayscale frames, fourcc e.g. MJPG;
    written to ``self.tmp`` (same extension, OpenCV picks the container from it)."""

    def __init__(self, path, width, height, fps, fourcc="MJPG"):
        import cv2
        self.path, self.tmp = path, MO.writer_temp(path)
        self.size = (int(width), int(height))
        self.writer = cv2.VideoWriter(self.tmp, cv2.VideoWriter_fourcc(*fourcc), float(fps),
                                      self.size, False)
        if not self.writer.isOpened():
            self.writer.release()
            MO.discard(self.tmp)
            hint = (" (the pip OpenCV wheels have no H.264 encoder: use the mp4 format, which "
                    "goes through ffmpeg)" if fourcc.lower() in ("avc1", "h264", "x264")
                    else "")
            raise MovieError("OpenCV could not open a %s video writer for %s%s"
                             % (fourcc, self.path, hint))
        self.frames = 0

    def write(self, frame):
        self.writer.write(np.ascontiguousarray(frame))
        self.frames += 1

    def close(self):
        self.writer.release()
        if not os.path.exists(self.tmp) or os.path.getsize(self.tmp) == 0 or \
                not MO.riff_complete(self.tmp):
            # OpenCV reports no write error: a full disk leaves a truncated file
            MO.discard(self.tmp)
            raise MO.disk_full_error(self.path) or MovieError(
                "OpenCV wrote an incomplete or empty file for %s" % self.path)

    def abort(self):
        with contextlib.suppress(Exception):
            self.writer.release()
        MO.discard(self.tmp)


class _PngWriter:
    """One PNG per frame, ``<folder>/<stem>_%04d.png``, written into a temporary folder
    (``self.tmp``) that replaces ``folder`` when renamed."""

    def __init__(self, folder, stem):
        import cv2
        self._cv2 = cv2
        self.path, self.stem = folder, stem
        self.tmp = MO.writer_temp_dir(folder)
        self.frames = 0

    def write(self, frame):
        name = "%s_%04d.png" % (self.stem, self.frames)
        ok, buf = self._cv2.imencode(".png", np.ascontiguousarray(frame))
        if not ok:
            raise MovieError("OpenCV could not encode frame %d of %s as PNG"
                             % (self.frames, self.path))
        MO.write_png_frame(self.tmp, self.path, name, buf.tobytes())
        self.frames += 1

    def close(self):
        pass

    def abort(self):
        MO.discard(self.tmp)


class _EncoderThread:
    """Feeds frames to the writers from a bounded queue, so rendering and encoding overlap.

    ``put(frame, forward_only)``: writers flagged ``forward`` (PNG frames) only get frames of
    the forward pass.
    """
    _STOP = object()

    def __init__(self, writers, maxsize=QUEUE_FRAMES):
        self.writers = writers             # list of (writer, forward_only)
        self.q = queue.Queue(maxsize=maxsize)
        self.error = None
        self.thread = threading.Thread(target=self._run, name="movie-encoder", daemon=True)
        self.thread.start()

    def _run(self):
        while True:
            item = self.q.get()
            if item is self._STOP:
                return
            if self.error is not None:
                continue                  # drain after a failure
            frame, forward = item
            try:
                for w, forward_only in self.writers:
                    if forward or not forward_only:
                        w.write(frame)
            except BaseException as exc:  # re-raised in the rendering thread
                self.error = exc

    def put(self, frame, forward):
        if self.error is not None:
            raise self.error
        self.q.put((frame, forward))

    def finish(self):
        self.q.put(self._STOP)
        self.thread.join()
        if self.error is not None:
            raise self.error


# ============================================================================ export
class MovieInfo(dict):
    """What was written: ``path``, ``format``, ``frames``, ``fps``, ``duration_s``, ``width``,
    ``height``, ``size_bytes``, ``kept`` ([start, end) of the source frames), ``window``,
    ``input_shape``, ``pixel_size`` (Å, of the input), ``png_frames`` (folder or None). The
    forward pass's central uint8 frame is in the attribute ``central`` (not serialised)."""
    central = None

    def summary_line(self):
        size = self["size_bytes"]
        return ("%s: %d frames, %.1f s at %g fps, %dx%d px, %s"
                % (os.path.basename(self["path"]), self["frames"], self["duration_s"],
                   self["fps"], self["width"], self["height"], _human_size(size)))


def _human_size(n):
    n = float(n)
    for unit in ("B", "KB", "MB", "GB"):
        if n < 1000 or unit == "GB":
            return ("%d %s" % (n, unit)) if unit == "B" else ("%.1f %s" % (n, unit))
        n /= 1000.0


def _path_size(path):
    if os.path.isdir(path):
        return sum(os.path.getsize(os.path.join(path, f)) for f in os.listdir(path))
    return os.path.getsize(path)


def _window(reader, kept, settings, progress=None):
    """Contrast window over the kept frames (one pass over the memory-mapped input)."""
    start, end = kept
    if settings.window == "minmax":
        lo, hi = np.inf, -np.inf
        for k in range(start, end):
            f = reader.frame(k)
            lo = min(lo, float(f.min()))
            hi = max(hi, float(f.max()))
        if not (np.isfinite(lo) and np.isfinite(hi)):
            raise MovieError("%s holds NaN or infinite values (min %s, max %s): its contrast "
                             "window is undefined" % (reader.source.path, lo, hi))
        return K.window_from_minmax(lo, hi)
    budget = PERCENTILE_SAMPLES / max(1, end - start)
    samples = [K.percentile_sample(reader.frame(k), budget) for k in range(start, end)]
    return K.window_from_percentiles(np.concatenate(samples), *settings.percentiles)


def export_movie(source, out_path, settings, threads=0, progress=None, overwrite=True):
    """Render ``source`` with ``settings`` and write the movie ``out_path``.

    Parameters
    ----------
    source : VolumeSource or StackSource
        Frames to show (an open source; closed by the caller).
    out_path : str
        Movie file (``.mp4``/``.avi``/``.gif``) or PNG folder, see :func:`movie_path`.
    settings : MovieSettings
    threads : int
        Encoder threads (x264 ``-threads``; 0 = ffmpeg's choice).
    progress : callable, optional
        ``progress(done, total)`` after each written frame.
    overwrite : bool
        Replace an existing ``out_path`` (else :class:`FileExistsError`).

    Returns
    -------
    MovieInfo

    Raises
    ------
    MovieError
        bad settings for this input (range, scale bar without pixel size...), or an encoder
        that cannot be opened or fails; nothing is left under ``out_path`` then.
    """
    settings.validate()
    if not overwrite and os.path.lexists(out_path):
        raise FileExistsError("output %s exists; pass --overwrite to replace it" % out_path)
    if isinstance(source, StackSource) and settings.slab > 1:
        raise MovieError("slab averaging mixes neighbouring images; it is for volumes, not "
                         "for tilt series (slab %d)" % settings.slab)
    kept = K.kept_range(source.n, settings.keep_range, settings.discard_fraction)
    n_kept = kept[1] - kept[0]
    order = K.playback_order(n_kept, settings.playback)
    binned, out_shape, scale = K.output_geometry(source.frame_shape, settings.binning,
                                                 settings.max_width)
    bar = None
    if settings.scale_bar:
        if not source.pixel_size > 0:
            raise MovieError("a scale bar needs the pixel size, but %s has none (give it "
                             "explicitly)" % source.path)
        bar = K.nice_scale_bar(out_shape[1], source.pixel_size * scale / 10.0)
    reader = _FrameReader(source, settings.slab, settings.binning,
                          out_shape if out_shape != binned else None)
    window = _window(reader, kept, settings)
    if settings.window == "minmax" and window[0] == window[1]:
        logger.warning("%s is constant (%g) over the kept frames: the movie is black",
                       source.path, float(window[0]))
    even = settings.format in EVEN_FORMATS
    style = K.FrameStyle(window, clip_window=settings.window == "percentile",
                         clahe=settings.clahe, clip_limit=settings.clip_limit,
                         tile_grid_size=settings.tile_grid_size, invert=settings.invert,
                         even=even, scale_bar=bar)
    height = out_shape[0] + (out_shape[0] % 2 if even else 0)
    width = out_shape[1] + (out_shape[1] % 2 if even else 0)

    out_dir = os.path.dirname(os.path.abspath(out_path))
    stem = os.path.basename(out_path)
    if settings.format == "png":
        stem = stem[:-len("_frames")] if stem.endswith("_frames") else stem
    else:
        stem = os.path.splitext(stem)[0]
    png_dir = movie_path(out_dir, stem, "png") \
        if settings.png_frames and settings.format != "png" else None
    with O.run_scope():
        MO.claim_movie_outputs(out_path, png_dir, settings.format == "png", overwrite)
        return _encode(source, out_path, png_dir, stem, settings, reader, style, kept, order,
                       width, height, window, threads, progress)


def _encode(source, out_path, png_dir, stem, settings, reader, style, kept, order, width,
            height, window, threads, progress):
    """Open the writers, render and encode every frame, then rename the outputs together
    (the movie last)."""
    n_kept = kept[1] - kept[0]
    writers = []
    try:
        if settings.format in ("mp4", "gif"):
            writers.append((_FfmpegWriter(out_path, width, height, settings.fps,
                                          settings.format, settings.crf, settings.preset,
                                          threads), False))
        elif settings.format == "avi":
            writers.append((_OpenCvWriter(out_path, width, height, settings.fps,
                                          settings.fourcc), False))
        else:
            writers.append((_PngWriter(out_path, stem), True))
        if png_dir:
            writers.append((_PngWriter(png_dir, stem), True))
    except BaseException:
        for w, _ in writers:
            w.abort()
        raise

    forward_only = settings.format == "png"
    total = n_kept if forward_only else len(order)
    central_pos = n_kept // 2
    central = None
    encoder = _EncoderThread(writers)
    done = 0
    try:
        for i, pos in enumerate(order):
            forward = i < n_kept
            if forward_only and not forward:
                break
            k = kept[0] + int(pos)
            frame = K.render_frame(reader.frame(k), style,
                                   source.label(k) if settings.label else None)
            if forward and pos == central_pos:
                central = frame.copy()
            encoder.put(frame, forward)
            done += 1
            if progress is not None:
                progress(done, total)
        encoder.finish()
        for w, _ in writers:
            w.close()
        MO.commit_movie_outputs([w for w, _ in writers])              # the movie last
    except BaseException:
        with contextlib.suppress(BaseException):
            encoder.finish()
        for w, _ in writers:
            w.abort()
        raise

    info = MovieInfo(path=os.path.abspath(out_path), format=settings.format,
                     frames=int(writers[0][0].frames), fps=settings.fps,
                     duration_s=writers[0][0].frames / settings.fps, width=int(width),
                     height=int(height), size_bytes=int(_path_size(out_path)),
                     kept=[int(kept[0]), int(kept[1])],
                     window=[float(window[0]), float(window[1])],
                     input_shape=list(source.input_shape), pixel_size=float(source.pixel_size),
                     png_frames=png_dir and os.path.abspath(png_dir),
                     settings=settings.describe())
    info.central = central
    logger.debug("wrote %s", info.summary_line())
    return info
