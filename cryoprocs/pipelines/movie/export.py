"""One movie from one source: contrast window, rendering (once per distinct frame),
optional particle overlay, and the writers (see :mod:`.writers`).

The run claims the movie (and its PNG frames folder) before any frame is rendered, the
writers encode to temporaries, and the finished outputs are renamed together, the movie
last (:mod:`.outputs`)."""
import logging
import os

import numpy as np

from ...convert import outputs
from . import outputs as movie_outputs
from ...kernels import movie as movie_kernels
from ...kernels.movie import MovieError
from ...kernels.particle_overlay import PixelMap
from .settings import EVEN_FORMATS, movie_path
from .sources import FrameReader, StackSource
from .writers import (EncoderThread, FfmpegWriter, FrameCache, MjpegAviWriter, OpenCvWriter,
                      PngWriter)

logger = logging.getLogger(__name__)

__all__ = ["MovieInfo", "export_movie", "human_size", "PERCENTILE_SAMPLES"]

#: values sampled from all frames together for a percentile window
PERCENTILE_SAMPLES = 4_000_000


class MovieInfo(dict):
    """What was written: ``path``, ``format``, ``frames``, ``fps``, ``duration_s``, ``width``,
    ``height``, ``size_bytes``, ``kept`` ([start, end) of the source frames), ``window``,
    ``input_shape``, ``pixel_size`` (Å, of the input), ``png_frames`` (folder or None),
    ``distinct_frames`` (frames rendered and encoded), ``particles`` (overlay counts or
    None). The forward pass's central frame is in the attribute ``central`` (not
    serialised)."""
    central = None

    def summary_line(self):
        line = ("%s: %d frames, %.1f s at %g fps, %dx%d px, %s"
                % (os.path.basename(self["path"]), self["frames"], self["duration_s"],
                   self["fps"], self["width"], self["height"], human_size(self["size_bytes"])))
        p = self.get("particles")
        if p:
            line += "; " + particle_summary(p)
        return line


def _particles(n):
    return "%d particle%s" % (n, "" if n == 1 else "s")


def particle_summary(p):
    """One line about the particles of a movie (counts of :func:`export_movie`)."""
    if "frames_flagged" in p:
        return ("%s projected into every tilt image: %d particle-frames usable, "
                "%d flagged (box of %g px leaving the image%s), %s usable in no "
                "frame" % (_particles(p["particles"]), p["frames_usable"],
                           p["frames_flagged"], p.get("box_px", 0),
                           " or pre-exposure above %g e/Å²" % p["max_dose"]
                           if p.get("max_dose", -1) > 0 else "",
                           _particles(p["never_usable"])))
    return "%d of %s drawn (radius %.3g px)" % (p["drawn"], _particles(p["particles"]),
                                                p.get("radius_px", 0))


def human_size(n):
    n = float(n)
    for unit in ("B", "KB", "MB", "GB"):
        if n < 1000 or unit == "GB":
            return ("%d %s" % (n, unit)) if unit == "B" else ("%.1f %s" % (n, unit))
        n /= 1000.0


def _path_size(path):
    if os.path.isdir(path):
        return sum(os.path.getsize(os.path.join(path, f)) for f in os.listdir(path))
    return os.path.getsize(path)


def _window(reader, kept, settings):
    """Contrast window over the kept frames (one pass over the input)."""
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
        return movie_kernels.window_from_minmax(lo, hi)
    budget = PERCENTILE_SAMPLES / max(1, end - start)
    samples = [movie_kernels.percentile_sample(reader.frame(k), budget) for k in range(start, end)]
    return movie_kernels.window_from_percentiles(np.concatenate(samples), *settings.percentiles)


def _output_names(out_path, settings):
    """``(stem, PNG frames folder or None)`` of a movie."""
    out_dir = os.path.dirname(os.path.abspath(out_path))
    stem = os.path.basename(out_path)
    stem = (stem[:-len("_frames")] if stem.endswith("_frames") else stem) \
        if settings.format == "png" else os.path.splitext(stem)[0]
    png_dir = movie_path(out_dir, stem, "png") \
        if settings.png_frames and settings.format != "png" else None
    return stem, png_dir


def _writers(out_path, settings, size, repeats, threads, colour, palette, total=0):
    """The writers of a movie (plus the PNG sink), each on its temporary output."""
    width, height = size
    out_dir = os.path.dirname(os.path.abspath(out_path))
    stem, png_dir = _output_names(out_path, settings)
    writers = []
    try:
        cache = (lambda: FrameCache(repeats, folder=out_dir, path=out_path))
        if settings.format in ("mp4", "gif"):
            writers.append(FfmpegWriter(out_path, width, height, settings.fps, settings.format,
                                        settings.crf, settings.preset, threads, colour=colour,
                                        palette=palette, cache=cache()))
        elif settings.format == "avi" and settings.fourcc.upper() == "MJPG":
            writers.append(MjpegAviWriter(out_path, width, height, settings.fps,
                                          settings.jpeg_quality, cache=cache(),
                                          total_frames=total))
        elif settings.format == "avi":
            writers.append(OpenCvWriter(out_path, width, height, settings.fps, settings.fourcc,
                                        colour=colour, cache=cache()))
        else:
            writers.append(PngWriter(out_path, stem))
        if png_dir:
            writers.append(PngWriter(png_dir, stem))
    except BaseException:
        for w in writers:
            w.abort()
        raise
    return writers


def _check(source, settings, out_path, overwrite):
    settings.validate()
    if not overwrite and os.path.lexists(out_path):
        raise FileExistsError("output %s exists; pass --overwrite to replace it" % out_path)
    if isinstance(source, StackSource) and settings.slab > 1:
        raise MovieError("slab averaging mixes neighbouring images; it is for volumes, not "
                         "for tilt series (slab %d)" % settings.slab)
    if settings.scale_bar and not source.pixel_size > 0:
        raise MovieError("a scale bar needs the pixel size, but %s has none (give it "
                         "explicitly)" % source.path)


def _style(source, settings, reader, kept, out_shape, scale, colour):
    window = _window(reader, kept, settings)
    if settings.window == "minmax" and window[0] == window[1]:
        logger.warning("%s is constant (%g) over the kept frames: the movie is black",
                       source.path, float(window[0]))
    bar = None
    if settings.scale_bar:
        bar = movie_kernels.nice_scale_bar(out_shape[1], source.pixel_size * scale / 10.0)
    style = movie_kernels.FrameStyle(window, clip_window=settings.window == "percentile",
                                     clahe=settings.clahe, clip_limit=settings.clip_limit,
                                     tile_grid_size=settings.tile_grid_size, invert=settings.invert,
                                     even=settings.format in EVEN_FORMATS, scale_bar=bar,
                                     colour=colour)
    return window, style


def export_movie(source, out_path, settings, threads=0, progress=None, overwrite=True,
                 overlay=None, render_threads=None):
    """Render ``source`` with ``settings`` and write the movie ``out_path``.

    Each kept frame is rendered (and, for MJPG, JPEG-encoded) once, however often the
    playback order shows it; repeats are fed from a cache (see :mod:`.writers`).

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
        ``progress(done, total)`` after each movie frame.
    overwrite : bool
        Replace an existing ``out_path`` (else :class:`FileExistsError`).
    render_threads : int, optional
        Frames rendered in parallel (default: 2 on a machine with at least 2 cores; CLAHE
        is single-threaded in OpenCV).
    overlay : SliceOverlay or ProjectedOverlay, optional
        Particles drawn on the frames (kernels/particle_overlay.py); frames are then BGR.
        A :class:`SliceOverlay` is drawn at the depth of each frame's slab centre (input
        voxels), a :class:`ProjectedOverlay` on the source image of each frame.

    Returns
    -------
    MovieInfo

    Raises
    ------
    MovieError
        bad settings for this input (range, scale bar without pixel size...), or an encoder
        that cannot be opened or fails; nothing is left under ``out_path`` then.
    NonFiniteError
        the source holds NaN / infinite values (its ``nonfinite="error"``).
    OutputInUseError
        another run writes ``out_path`` or its PNG frames folder.
    OSError
        a write error (a full disk, a read-only folder), naming the movie.
    """
    _check(source, settings, out_path, overwrite)
    # the kept range and the frame geometry are checked before the output folder exists
    kept = movie_kernels.kept_range(source.n, settings.keep_range, settings.discard_fraction)
    geometry = movie_kernels.output_geometry(source.frame_shape, settings.binning,
                                             settings.max_width, settings.upscale)
    with outputs.run_scope():
        # claimed (which creates the output folder) before any frame is rendered
        movie_outputs.claim_movie_outputs(out_path, _output_names(out_path, settings)[1],
                                          settings.format == "png", overwrite)
        return _export(source, out_path, settings, kept, geometry, threads, progress,
                       overlay, render_threads)


def _export(source, out_path, settings, kept, geometry, threads, progress, overlay,
            render_threads):
    """:func:`export_movie` once its outputs are claimed."""
    if render_threads is None:
        render_threads = min(2, os.cpu_count() or 1)
    n_kept = kept[1] - kept[0]
    order = movie_kernels.playback_order(n_kept, settings.playback, settings.pause, settings.cycles)
    binned, out_shape, scale = geometry
    reader = FrameReader(source, settings.slab, settings.binning,
                         out_shape if out_shape != binned else None)
    colour = overlay is not None
    even = settings.format in EVEN_FORMATS
    size = (out_shape[1] + (out_shape[1] % 2 if even else 0),
            out_shape[0] + (out_shape[0] % 2 if even else 0))
    counts = np.bincount(order, minlength=n_kept)
    repeats = {k: int(c) - 1 for k, c in enumerate(counts) if c > 1}
    png_dir = _output_names(out_path, settings)[1]
    # the encoders start (ffmpeg: a child process) while the contrast window is computed
    writers = _writers(out_path, settings, size, repeats, threads, colour,
                       overlay.palette() if colour else None, len(order))
    try:
        window, style = _style(source, settings, reader, kept, out_shape, scale, colour)
    except BaseException:
        for w in writers:
            w.abort()
        raise
    pmap = PixelMap(settings.binning, binned, out_shape)
    central, distinct = _encode(source, reader, settings, style, order, kept, writers,
                                overlay, pmap, progress, render_threads)
    main = writers[0]
    info = MovieInfo(path=os.path.abspath(out_path), format=settings.format,
                     frames=int(main.frames), fps=settings.fps,
                     duration_s=main.frames / settings.fps, width=int(size[0]),
                     height=int(size[1]), size_bytes=int(_path_size(out_path)),
                     kept=[int(kept[0]), int(kept[1])],
                     window=[float(window[0]), float(window[1])],
                     input_shape=list(source.input_shape), pixel_size=float(source.pixel_size),
                     png_frames=png_dir and os.path.abspath(png_dir),
                     settings=settings.describe(), distinct_frames=int(distinct),
                     particles=overlay.counts() if overlay is not None else None)
    info.central = central
    logger.debug("wrote %s", info.summary_line())
    return info


class _Renderer:
    """Renders frames in ``threads`` threads (OpenCV and NumPy release the GIL) and hands
    them to the encoder in playback order; repeats wait their turn in the same queue."""

    def __init__(self, encoder, threads):
        from collections import deque
        from concurrent.futures import ThreadPoolExecutor
        self.encoder = encoder
        self.pool = ThreadPoolExecutor(threads, thread_name_prefix="movie-render") \
            if threads > 1 else None
        self.ahead = 2 * threads + 2
        self.pending = deque()

    def add(self, pos, fn, *args):
        item = self.pool.submit(fn, *args) if self.pool is not None else fn(*args)
        self.pending.append((pos, item))
        self._flush(self.ahead)

    def repeat(self, pos):
        self.pending.append((pos, None))
        self._flush(self.ahead)

    def _flush(self, keep):
        while len(self.pending) > keep:
            pos, item = self.pending.popleft()
            if item is None:
                self.encoder.repeat(pos)
            else:
                self.encoder.add(pos, item.result() if self.pool is not None else item)

    def finish(self):
        self._flush(0)
        self.close()

    def close(self):
        if self.pool is not None:
            self.pool.shutdown(wait=True, cancel_futures=True)
            self.pool = None


def _encode(source, reader, settings, style, order, kept, writers, overlay, pmap, progress,
            render_threads=1):
    """Render every distinct frame once and feed the writers in playback order; returns the
    central frame of the forward pass and the number of distinct frames."""
    forward_only = settings.format == "png"
    n_kept = kept[1] - kept[0]
    total = n_kept if forward_only else len(order)
    central_pos = n_kept // 2
    central = {}
    encoder = EncoderThread(writers)
    renderer = _Renderer(encoder, render_threads)
    seen = np.zeros(n_kept, dtype=bool)

    def render(pos, k, raw):
        draw = None
        if overlay is not None:
            key = source.overlay_key(k, settings.slab)
            draw = (lambda img: overlay.draw(img, key, pmap))
        frame = movie_kernels.render_frame(raw, style, source.label(k) if settings.label else None,
                                           draw)
        if pos == central_pos:
            central["frame"] = frame.copy()
        return encoder.prepare(frame)         # e.g. JPEG-encoded here, in this thread

    try:
        for done, pos in enumerate(order, 1):
            pos = int(pos)
            if not seen[pos]:
                seen[pos] = True
                k = kept[0] + pos
                renderer.add(pos, render, pos, k, reader.frame(k))   # read here, in order
            elif not forward_only:
                renderer.repeat(pos)
            if progress is not None and (not forward_only or done <= total):
                progress(min(done, total), total)
        renderer.finish()
        encoder.finish()
        for w in writers:
            w.close()
        movie_outputs.commit_movie_outputs(writers)                  # together, the movie last
    except BaseException:
        renderer.close()
        try:
            encoder.finish()
        except BaseException:
            pass
        for w in writers:
            w.abort()
        raise
    return central.get("frame"), int(seen.sum())
