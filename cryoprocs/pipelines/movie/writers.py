"""Movie writers: every distinct frame is rendered and encoded once.

A movie plays its kept frames in an order (forward-backward, pauses, cycles) that repeats
most of them; the writers are told ``add(key, frame)`` for the first occurrence of a frame and
``repeat(key)`` for the later ones:

* ``avi`` with MJPG (:class:`MjpegAviWriter`): each frame is JPEG-encoded once (OpenCV's
  libjpeg-turbo, 4:2:0 YCbCr as OpenCV's MJPG writer, mrc2movie's, stores it) and its bytes
  are written again for a repeat, into an AVI file (:mod:`cryoprocs.convert.avi`; beyond
  1 GiB the bundled ffmpeg muxes them, ``-c:v copy``, OpenDML).
* ``mp4`` (H.264) and ``gif`` (:class:`FfmpegWriter`), other OpenCV fourccs
  (:class:`OpenCvWriter`): the rendered frame is kept in a :class:`FrameCache` and fed to
  the encoder again for a repeat.
* PNG frames (:class:`PngWriter`): one file per distinct frame.

Every output is written under a unique temporary name in its folder (``self.tmp``,
:func:`.outputs.writer_temp`); ``close`` finishes it and checks it is complete, and
:func:`~cryoprocs.pipelines.movie.export_movie` renames the outputs together
(:func:`.outputs.commit_movie_outputs`). A writer that cannot be opened, or an encoder that
fails, raises :class:`~cryoprocs.kernels.movie.MovieError` (a full disk or another write
error: an ``OSError`` naming the movie) and leaves no file; an ffmpeg child is killed when
the run is interrupted (:func:`.outputs.start_encoder`).
"""
import contextlib
import os
import queue
import subprocess
import tempfile
import threading
from fractions import Fraction

import numpy as np

from ...kernels.movie import MovieError
from . import outputs as movie_outputs

__all__ = ["ffmpeg_exe", "FrameCache", "MjpegAviWriter", "FfmpegWriter", "OpenCvWriter",
           "PngWriter", "EncoderThread", "CACHE_BYTES", "QUEUE_FRAMES"]

#: frames queued between the renderer and the encoder
QUEUE_FRAMES = 4
#: bytes of repeated frames kept in memory; the rest goes to an unlinked temporary file
#: (the page cache holds it, not the process)
CACHE_BYTES = 24 * 1024 * 1024
#: pipe buffer to the ffmpeg child (Linux caps it at /proc/sys/fs/pipe-max-size, 1 MiB)
PIPE_BYTES = 1024 * 1024


def ffmpeg_exe():
    """Path of the ffmpeg executable bundled with imageio-ffmpeg (or $IMAGEIO_FFMPEG_EXE)."""
    try:
        import imageio_ffmpeg
    except ImportError as exc:      # pragma: no cover - a declared dependency
        raise MovieError("imageio-ffmpeg is needed for MP4, AVI and GIF movies: %s" % exc)
    return imageio_ffmpeg.get_ffmpeg_exe()


# ============================================================================ cache
class FrameCache:
    """Frames (uint8 arrays or encoded bytes) kept until their last repeat.

    Parameters
    ----------
    repeats : dict
        ``{key: number of repeats}`` (later occurrences in the playback order); frames with
        none are not kept.
    budget : int
        Bytes kept in memory; beyond it frames go to an unlinked temporary file in
        ``folder`` (read back with ``pread``: the page cache holds them, not the process;
        nothing is left on disk however the run ends).
    path : str, optional
        The movie, named by write errors of that file (a full disk).
    """

    def __init__(self, repeats, budget=CACHE_BYTES, folder=None, path=None):
        self.left = {k: int(v) for k, v in repeats.items() if v > 0}
        self.budget = int(budget)
        self.folder = folder
        self.path = path or folder
        self._mem, self._mem_bytes = {}, 0
        self._disk, self._fd, self._end = {}, None, 0
        self.spilled_bytes = 0

    def put(self, key, item):
        """Keep ``item`` (an array is copied only when spilled) if ``key`` repeats."""
        if self.left.get(key, 0) <= 0:
            return
        n = item.nbytes if isinstance(item, np.ndarray) else len(item)
        if self._mem_bytes + n <= self.budget:
            self._mem[key] = item
            self._mem_bytes += n
            return
        data = memoryview(np.ascontiguousarray(item)).cast("B") \
            if isinstance(item, np.ndarray) else memoryview(item)
        try:
            if self._fd is None:
                self._fd = tempfile.TemporaryFile(dir=self.folder, prefix=".cryoprocs-frames-")
            done = 0
            while done < n:                    # pwrite may write less (a full disk)
                done += os.pwrite(self._fd.fileno(), data[done:], self._end + done)
        except OSError as exc:
            raise movie_outputs.named_os_error(exc, self.path) from None
        meta = (item.shape, item.dtype) if isinstance(item, np.ndarray) else None
        self._disk[key] = (self._end, n, meta)
        self._end += n
        self.spilled_bytes += n

    def get(self, key):
        """The frame of ``key`` for one repeat (dropped after its last one)."""
        self.left[key] -= 1
        last = self.left[key] <= 0
        if key in self._mem:
            item = self._mem[key]
            if last:
                del self._mem[key]
                self._mem_bytes -= item.nbytes if isinstance(item, np.ndarray) else len(item)
            return item
        offset, n, meta = self._disk[key]
        data = os.pread(self._fd.fileno(), n, offset)
        if len(data) != n:
            raise MovieError("the frame cache returned %d of %d bytes" % (len(data), n))
        if last:
            del self._disk[key]
        if meta is None:
            return data
        return np.frombuffer(data, dtype=meta[1]).reshape(meta[0])

    def close(self):
        self._mem.clear()
        self._disk.clear()
        if self._fd is not None:
            self._fd.close()
            self._fd = None


# ============================================================================ writers
class _Writer:
    """Common part: ``add(key, frame)`` writes a first occurrence, ``repeat(key)`` a later
    one; ``frames`` counts the written frames. ``prepare(frame)`` is the part of the work
    that may run in the rendering threads, right after a frame is rendered (while it is in
    that core's cache); ``add`` receives what it returns."""
    forward_only = False

    def __init__(self, cache=None):
        self.cache = cache
        self.frames = 0

    def prepare(self, frame):
        return frame

    def add(self, key, frame):
        self._write(frame)
        if self.cache is not None:
            self.cache.put(key, frame)

    def repeat(self, key):
        self._write(self.cache.get(key))

    def _close_cache(self):
        if self.cache is not None:
            self.cache.close()


def _grow_pipe(fh, size=PIPE_BYTES):
    """Enlarge a pipe's buffer (Linux ``F_SETPIPE_SZ``; best effort): frames are written
    while ffmpeg starts instead of waiting for it."""
    try:
        import fcntl
        fcntl.fcntl(fh.fileno(), getattr(fcntl, "F_SETPIPE_SZ", 1031), int(size))
    except (ImportError, OSError, ValueError):
        pass


class _FfmpegProcess:
    """An ffmpeg child reading from a pipe, its stderr kept in a temporary file."""

    def __init__(self, cmd, path):
        self.cmd, self.path = cmd, path
        self._err = tempfile.TemporaryFile()
        try:                                     # killed if the run is interrupted
            self.proc = movie_outputs.start_encoder(cmd, stdin=subprocess.PIPE,
                                                    stdout=subprocess.DEVNULL, stderr=self._err)
        except OSError as exc:
            self._err.close()
            raise MovieError("cannot start the ffmpeg encoder %s: %s" % (cmd[0], exc))
        _grow_pipe(self.proc.stdin)

    def stderr(self):
        self._err.seek(0)
        return self._err.read().decode("utf-8", "replace").strip()[-2000:]

    def send(self, data, frames_done):
        try:
            self.proc.stdin.write(data)
        except (BrokenPipeError, OSError):
            self.proc.wait()
            raise movie_outputs.disk_full_error(self.path) or MovieError(
                "the ffmpeg encoder stopped after %d frames of %s (exit %s): %s"
                % (frames_done, self.path, self.proc.returncode, self.stderr()))

    def finish(self, tmp):
        """Wait for ffmpeg to finish ``tmp``; a failure (a full disk: an ``OSError`` naming
        the movie) removes it."""
        with contextlib.suppress(BrokenPipeError, OSError):
            self.proc.stdin.close()
        rc = self.proc.wait()
        movie_outputs.untrack_encoder(self.proc)
        msg = self.stderr()
        self._err.close()
        if rc != 0 or not os.path.exists(tmp) or os.path.getsize(tmp) == 0:
            movie_outputs.discard(tmp)
            raise movie_outputs.disk_full_error(self.path) or MovieError(
                "the ffmpeg encoder failed for %s (exit %s): %s"
                % (self.path, rc, msg or "no output written"))

    def kill(self):
        with contextlib.suppress(Exception):
            if self.proc.poll() is None:
                self.proc.kill()
            self.proc.wait()
        movie_outputs.untrack_encoder(self.proc)
        with contextlib.suppress(Exception):
            self._err.close()


def _fps_arg(fps):
    return str(Fraction(fps).limit_denominator(1001))


class MjpegAviWriter(_Writer):
    """MJPG in AVI: JPEG frames (quality ``quality``, 4:2:0, encoded once each) written into
    the AVI container by :mod:`cryoprocs.convert.avi`, or muxed by ffmpeg without
    re-encoding (OpenDML) when the movie would exceed 1 GiB (estimated from the first frame
    and ``total_frames``). Gray frames are stored as 4:2:0 colour JPEGs too (what OpenCV's
    MJPG writer stores; some players do not show 1-channel JPEG frames)."""

    def __init__(self, path, width, height, fps, quality=90, cache=None, total_frames=0):
        super().__init__(cache)
        import cv2
        self._cv2 = cv2
        self.path, self.tmp = path, movie_outputs.writer_temp(path)
        self.size = (int(width), int(height))
        self.fps = fps
        self.total_frames = int(total_frames)
        self.params = [cv2.IMWRITE_JPEG_QUALITY, int(quality),
                       cv2.IMWRITE_JPEG_SAMPLING_FACTOR, cv2.IMWRITE_JPEG_SAMPLING_FACTOR_420]
        self.avi = self.ff = None

    def _open(self, first):
        from ...convert import avi
        if len(first) * max(1, self.total_frames) * 1.5 < avi.MAX_BYTES:
            try:
                self.avi = avi.MjpegAvi(self.tmp, self.size[0], self.size[1], self.fps)
            except OSError as exc:
                raise movie_outputs.named_os_error(exc, self.path) from None
            return
        cmd = [ffmpeg_exe(), "-y", "-hide_banner", "-nostdin", "-loglevel", "error",
               "-f", "image2pipe", "-framerate", _fps_arg(self.fps), "-c:v", "mjpeg",
               "-i", "-", "-an", "-c:v", "copy", "-f", "avi", self.tmp]
        self.ff = _FfmpegProcess(cmd, self.path)

    def encode(self, frame):
        """JPEG bytes of a gray or BGR uint8 frame (thread-safe: the rendering threads
        encode, see :meth:`prepare`)."""
        cv2 = self._cv2
        if frame.ndim == 2:
            frame = cv2.cvtColor(frame, cv2.COLOR_GRAY2BGR)
        ok, buf = cv2.imencode(".jpg", frame, self.params)
        if not ok:
            raise MovieError("JPEG encoding failed for a frame of %s" % self.path)
        return buf.tobytes()

    def prepare(self, frame):
        return self.encode(frame)

    def add(self, key, frame):
        data = frame if isinstance(frame, bytes) else self.encode(frame)
        self._write(data)
        if self.cache is not None:
            self.cache.put(key, data)

    def _write(self, data):
        if self.avi is None and self.ff is None:
            self._open(data)
        if self.avi is not None:
            try:
                self.avi.write(data)
            except OSError as exc:                 # a full disk...: one line naming it
                raise movie_outputs.named_os_error(exc, self.path) from None
            except ValueError as exc:
                raise MovieError("cannot write the movie %s: %s" % (self.path, exc))
        else:
            self.ff.send(data, self.frames)
        self.frames += 1

    def close(self):
        """Finish the AVI (left under ``self.tmp``) and check that its RIFF chunks add up
        to its size (a file cut short is an error, and removed)."""
        self._close_cache()
        if self.avi is not None:
            try:
                self.avi.close()
            except OSError as exc:
                self.abort()
                raise movie_outputs.named_os_error(exc, self.path) from None
        elif self.ff is not None:
            self.ff.finish(self.tmp)
        else:
            raise MovieError("no frame was written to %s" % self.path)
        if not movie_outputs.riff_complete(self.tmp):
            movie_outputs.discard(self.tmp)
            raise movie_outputs.disk_full_error(self.path) or MovieError(
                "the AVI file written for %s is incomplete" % self.path)

    def abort(self):
        self._close_cache()
        if self.avi is not None:
            with contextlib.suppress(Exception):
                self.avi.abort()
        if self.ff is not None:
            self.ff.kill()
        movie_outputs.discard(self.tmp)


class FfmpegWriter(_Writer):
    """Gray or BGR uint8 frames piped to the bundled ffmpeg: H.264 MP4 or GIF.

    GIF frames in colour are mapped to ``palette`` (a list of BGR colours: the overlay's
    colours plus grey levels) without dithering, so grey stays grey."""

    def __init__(self, path, width, height, fps, fmt, crf=23, preset="veryfast", threads=0,
                 colour=False, palette=None, cache=None):
        super().__init__(cache)
        # found (imageio-ffmpeg runs "ffmpeg -version" once) before any file is created
        exe = ffmpeg_exe()
        self.path, self.tmp = path, movie_outputs.writer_temp(path)
        self.size = (int(width), int(height))
        self._palette_file = None
        try:
            self._start(exe, fps, fmt, crf, preset, threads, colour, palette)
        except BaseException:
            self._remove_palette()
            movie_outputs.discard(self.tmp)
            raise

    def _start(self, exe, fps, fmt, crf, preset, threads, colour, palette):
        cmd = [exe, "-y", "-hide_banner", "-nostdin", "-loglevel", "error",
               "-f", "rawvideo", "-pix_fmt", "bgr24" if colour else "gray",
               "-s", "%dx%d" % self.size, "-r", _fps_arg(fps), "-i", "-"]
        if fmt == "mp4":
            cmd += ["-an", "-c:v", "libx264", "-preset", preset, "-crf", str(int(crf)),
                    "-pix_fmt", "yuv420p", "-movflags", "+faststart", "-f", "mp4"]
        elif fmt == "gif" and colour:
            self._palette_file = self._write_palette(palette)
            cmd += ["-i", self._palette_file, "-an", "-filter_complex",
                    "[0:v][1:v]paletteuse=dither=none", "-c:v", "gif", "-loop", "0",
                    "-f", "gif"]
        elif fmt == "gif":
            cmd += ["-an", "-c:v", "gif", "-pix_fmt", "gray", "-loop", "0", "-f", "gif"]
        else:
            raise MovieError("ffmpeg writer: unknown format %r" % fmt)
        if threads:
            cmd[-2:-2] = ["-threads", str(int(threads))]
        cmd.append(self.tmp)
        self.cmd = cmd
        self.ff = _FfmpegProcess(cmd, self.path)

    def _write_palette(self, colours):
        """A 16 x 16 PNG of 256 colours: ``colours`` (BGR) then evenly spaced grey levels,
        in a temporary file of the movie's (removed with it, also on interruption)."""
        import cv2
        cols = [tuple(int(v) for v in c) for c in (colours or [])][:64]
        greys = np.linspace(0, 255, 256 - len(cols)).round().astype(np.uint8)
        pal = np.array(cols + [(g, g, g) for g in greys], dtype=np.uint8).reshape(16, 16, 3)
        name = movie_outputs.writer_temp(self.path, ".png")
        ok, buf = cv2.imencode(".png", pal)
        if not ok:
            movie_outputs.discard(name)
            raise MovieError("could not encode the GIF palette of %s" % self.path)
        try:
            with open(name, "wb") as fh:
                fh.write(buf.tobytes())
        except OSError as exc:
            movie_outputs.discard(name)
            raise movie_outputs.named_os_error(exc, self.path) from None
        return name

    def _remove_palette(self):
        if self._palette_file:
            movie_outputs.discard(self._palette_file)
            self._palette_file = None

    def _write(self, frame):
        self.ff.send(memoryview(np.ascontiguousarray(frame)).cast("B"), self.frames)
        self.frames += 1

    def close(self):
        """Finish encoding (the movie stays under ``self.tmp``)."""
        self._close_cache()
        try:
            self.ff.finish(self.tmp)
        finally:
            self._remove_palette()

    def abort(self):
        self._close_cache()
        self.ff.kill()
        self._remove_palette()
        movie_outputs.discard(self.tmp)


class OpenCvWriter(_Writer):
    """OpenCV ``VideoWriter`` for other fourccs (``XVID``, ``mp4v``...): gray or BGR frames."""

    def __init__(self, path, width, height, fps, fourcc="MJPG", colour=False, cache=None):
        super().__init__(cache)
        import cv2
        self.path, self.tmp = path, movie_outputs.writer_temp(path)
        self.size = (int(width), int(height))
        self.writer = cv2.VideoWriter(self.tmp, cv2.VideoWriter_fourcc(*fourcc), float(fps),
                                      self.size, bool(colour))
        if not self.writer.isOpened():
            self.writer.release()
            movie_outputs.discard(self.tmp)
            hint = (" (the pip OpenCV wheels have no H.264 encoder: use the mp4 format, which "
                    "goes through ffmpeg)" if fourcc.lower() in ("avc1", "h264", "x264")
                    else "")
            raise MovieError("OpenCV could not open a %s video writer for %s%s"
                             % (fourcc, self.path, hint))

    def _write(self, frame):
        self.writer.write(np.ascontiguousarray(frame))
        self.frames += 1

    def close(self):
        """Finish the AVI (left under ``self.tmp``): OpenCV reports no write error, so a
        full disk shows as a file whose RIFF chunks do not add up to its size."""
        self._close_cache()
        self.writer.release()
        if not os.path.exists(self.tmp) or os.path.getsize(self.tmp) == 0 or \
                not movie_outputs.riff_complete(self.tmp):
            movie_outputs.discard(self.tmp)
            raise movie_outputs.disk_full_error(self.path) or MovieError(
                "OpenCV wrote an incomplete or empty file for %s" % self.path)

    def abort(self):
        self._close_cache()
        with contextlib.suppress(Exception):
            self.writer.release()
        movie_outputs.discard(self.tmp)


class PngWriter(_Writer):
    """One PNG per distinct frame (the forward pass), ``<folder>/<stem>_%04d.png``, written
    into a temporary folder (``self.tmp``) that replaces ``folder`` when renamed."""
    forward_only = True

    def __init__(self, folder, stem):
        super().__init__(None)
        import cv2
        self._cv2 = cv2
        self.path, self.stem = folder, stem
        self.tmp = movie_outputs.writer_temp_dir(folder)

    def add(self, key, frame):
        name = "%s_%04d.png" % (self.stem, self.frames)
        ok, buf = self._cv2.imencode(".png", np.ascontiguousarray(frame))
        if not ok:
            raise MovieError("OpenCV could not encode frame %d of %s as PNG"
                             % (self.frames, self.path))
        movie_outputs.write_png_frame(self.tmp, self.path, name, buf.tobytes())
        self.frames += 1

    def repeat(self, key):
        pass

    def close(self):
        pass

    def abort(self):
        movie_outputs.discard(self.tmp)


class EncoderThread:
    """Feeds the writers from a bounded queue, so rendering and encoding overlap:
    ``add(key, frame)`` for a new frame (a list, one item per writer, for frames prepared
    by :meth:`prepare`), ``repeat(key)`` for a repeated one."""
    _STOP = object()

    def __init__(self, writers, maxsize=QUEUE_FRAMES):
        self.writers = list(writers)
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
            key, frame = item
            try:
                for i, w in enumerate(self.writers):
                    if frame is None:
                        w.repeat(key)
                    else:
                        w.add(key, frame[i] if isinstance(frame, list) else frame)
            except BaseException as exc:  # re-raised in the rendering thread
                self.error = exc

    def add(self, key, frame):
        self._put((key, frame))

    def prepare(self, frame):
        """Each writer's :meth:`_Writer.prepare` of a rendered frame (in the calling
        thread), for :meth:`add`."""
        return [w.prepare(frame) for w in self.writers]

    def repeat(self, key):
        self._put((key, None))

    def _put(self, item):
        if self.error is not None:
            raise self.error
        self.q.put(item)

    def finish(self):
        self.q.put(self._STOP)
        self.thread.join()
        if self.error is not None:
            raise self.error
