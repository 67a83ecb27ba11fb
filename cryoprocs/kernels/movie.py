"""Frames of tomograms, volumes and tilt series for movies, with mrc2movie's numbers.

Pure NumPy + OpenCV (``cv2`` for CLAHE, area resampling and the overlays); no file I/O here
(streaming and encoders live in :mod:`cryoprocs.pipelines.movie`).

Arrays are ``[z, y, x]`` for volumes and ``[n, y, x]`` for image stacks; a frame is a 2D
``[row, column]`` array. Slicing a volume along Z gives frames ``[y, x]``, along Y frames
``[z, x]`` and along X frames ``[z, y]``; row 0 is shown at the top of the movie (for Z this is
y = 0, as mrc2movie and OpenCV write it).

Reference behaviour: elemeng/mrc2movie, batch version ``mrc2movie.py`` (commits 01f189b /
6a4c244), as re-stated in docs/export-movie.md (the functions here are
written from that description, not from its source):

* contrast window: the global minimum and maximum of the kept slices;
* ``((x - min) / (max - min) * 255).astype(uint8)`` in float32, which **truncates**
  (:func:`normalize_uint8`); with max == min every pixel is 0;
* CLAHE per slice, ``cv2.createCLAHE(clipLimit=2.0, tileGridSize=(8, 8))``: an 8 x 8 *grid*
  of tiles, not a tile size in px (Zuiderveld 1994);
* forward-backward playback ``frames + reversed(frames[1:-1])``: 2n - 2 frames that loop
  seamlessly (:func:`playback_order`);
* ``--discard_range START END`` **keeps** ``[START, END)`` although mrc2movie's README says it
  discards those slices; ``--discard_percentage A B`` keeps ``[int(n*A), int(n*(1-B)))`` with
  fractions ``0 <= A, B < 1`` and so really discards A at the start and B at the end. The
  range takes precedence over the fractions (:func:`kept_range`).
"""
import math
import threading
from typing import TYPE_CHECKING, Callable, Optional, Sequence, Tuple

import numpy as np
from numpy.typing import ArrayLike

if TYPE_CHECKING:                       # OpenCV is imported where a frame is drawn
    import cv2

__all__ = [
    "MovieError", "PLAYBACKS", "AXES", "WINDOWS", "kept_range", "playback_order",
    "canonical_playback",
    "frame_count", "slab_bounds", "bin_image", "output_geometry", "window_from_minmax",
    "window_from_percentiles", "percentile_sample", "normalize_uint8", "make_clahe",
    "FrameStyle", "render_frame", "pad_even", "nice_scale_bar", "draw_label",
    "draw_scale_bar", "montage", "frame_label",
]

PLAYBACKS = ("forward", "forward-backward")
#: other names of the playbacks (mrc2movie 0.2.0 ``--mode pingpong``)
PLAYBACK_ALIASES = {"pingpong": "forward-backward", "forward_backward": "forward-backward"}
AXES = ("z", "y", "x")
WINDOWS = ("minmax", "percentile")


class MovieError(ValueError):
    """Invalid movie parameters or inputs; the message names the offending values."""


def _cv2():
    try:
        import cv2
    except ImportError as exc:      # pragma: no cover - a declared dependency
        raise MovieError("OpenCV (opencv-python-headless) is needed for movies: %s" % exc)
    return cv2


# ----------------------------------------------------------------------------- selection
def kept_range(n: int, keep_range: Optional[Tuple[int, int]] = None,
               discard_fraction: Optional[Tuple[float, float]] = None) -> Tuple[int, int]:
    """Slices kept for the movie, mrc2movie's ``discard_slices`` semantics.

    Parameters
    ----------
    n : int
        Number of slices (frames before selection).
    keep_range : (int, int), optional
        ``(start, end)``: keep slices ``start .. end-1`` (0-based, end exclusive). This is
        what mrc2movie's ``--discard_range START END`` does (its README says "discard").
        Takes precedence over ``discard_fraction``.
    discard_fraction : (float, float), optional
        ``(a, b)`` fractions in [0, 1): keep ``[int(n*a), int(n*(1-b)))``, i.e. discard a
        fraction ``a`` of the slices at the start and ``b`` at the end (mrc2movie's
        ``--discard_percentage``, which takes fractions such as 0.1, not percents).

    Returns
    -------
    (int, int)
        ``(start, stop)`` with ``0 <= start < stop <= n``.

    Raises
    ------
    MovieError
        a range outside ``[0, n]`` or empty, fractions outside [0, 1), or a selection that
        keeps no slice.
    """
    n = int(n)
    if n < 1:
        raise MovieError("the input has no slice (n = %d)" % n)
    if keep_range is not None:
        start, end = (int(v) for v in keep_range)
        if start < 0 or end > n or start >= end:
            raise MovieError("slice range [%d, %d) is not inside [0, %d) or is empty: give "
                             "0 <= START < END <= %d" % (start, end, n, n))
        return start, end
    if discard_fraction is not None:
        a, b = (float(v) for v in discard_fraction)
        if not (0.0 <= a < 1.0 and 0.0 <= b < 1.0):
            raise MovieError("discard fractions (%g, %g) must be in [0, 1) (e.g. 0.1 0.1 "
                             "discards 10 %% at each end)" % (a, b))
        start, end = int(n * a), int(n * (1.0 - b))
        if end <= start:
            raise MovieError("discarding %g at the start and %g at the end of %d slices keeps "
                             "no slice ([%d, %d))" % (a, b, n, start, end))
        return start, end
    return 0, n


def canonical_playback(playback: str) -> str:
    """``forward`` or ``forward-backward`` for a playback name; ``pingpong`` (mrc2movie 0.2.0)
    is ``forward-backward``.

    Raises
    ------
    MovieError
        an unknown name.
    """
    name = str(playback).lower()
    name = PLAYBACK_ALIASES.get(name, name)
    if name not in PLAYBACKS:
        raise MovieError("playback %r: expected one of %s" % (
            playback, ", ".join(PLAYBACKS + tuple(PLAYBACK_ALIASES))))
    return name


def playback_order(n: int, playback: str = "forward-backward", pause: int = 0,
                   cycles: int = 1) -> np.ndarray:
    """Frame order for ``n`` kept frames: indexes into the kept frames.

    ``forward``: ``0 .. n-1``. ``forward-backward`` (``pingpong``): ``0 .. n-1`` then
    ``n-2 .. 1`` (mrc2movie ``frames + reversed(frames[1:-1])``), 2n - 2 frames for n >= 3
    that loop without repeating the first or last frame.

    ``pause`` holds the last frame of each pass for ``pause`` more frames and, in
    forward-backward playback, the first frame too (appended after the backward pass, so that
    a looping player shows it ``pause + 1`` times); ``cycles`` repeats the whole pass. So a
    forward-backward cycle has ``2n - 2 + 2 pause`` frames and every cycle loops into the
    next. (mrc2movie 0.2.0 holds only between cycles and repeats the first frame: 2n - 1
    frames per cycle.)

    Returns
    -------
    numpy.ndarray
        int64 indexes.
    """
    n = int(n)
    playback = canonical_playback(playback)
    pause, cycles = int(pause), int(cycles)
    if pause < 0 or cycles < 1:
        raise MovieError("pause must be >= 0 and cycles >= 1, got %d and %d" % (pause, cycles))
    fwd = np.arange(n, dtype=np.int64)
    hold_end = np.full(pause, n - 1, dtype=np.int64)
    if playback == "forward" or n < 2:
        one = np.concatenate([fwd, hold_end])
    else:
        one = np.concatenate([fwd, hold_end, fwd[n - 2:0:-1],
                              np.zeros(pause, dtype=np.int64)])
    return np.tile(one, cycles)


def frame_count(n: int, playback: str = "forward-backward", pause: int = 0,
                cycles: int = 1) -> int:
    """Number of movie frames for ``n`` kept frames (n or 2n - 2 without pause and cycles)."""
    return int(len(playback_order(n, playback, pause, cycles)))


def slab_bounds(k: int, n_axis: int, slab: int) -> Tuple[int, int]:
    """Slices averaged for the frame centred on slice ``k``: ``[a, b)``.

    The slab holds ``slab`` slices ``k - (slab-1)//2 .. k + slab//2``, clipped to the volume
    ``[0, n_axis)``, so frames near the faces average fewer slices. Neighbours outside the kept
    range but inside the volume are used (the kept range selects frames, not data).
    """
    slab = int(slab)
    if slab < 1:
        raise MovieError("slab thickness must be >= 1 slice, got %d" % slab)
    a = max(0, int(k) - (slab - 1) // 2)
    b = min(int(n_axis), int(k) + slab // 2 + 1)
    return a, b


# ----------------------------------------------------------------------------- geometry
def bin_image(img: np.ndarray, factor: int) -> np.ndarray:
    """Average ``factor x factor`` blocks of a 2D image (float32 result).

    Rows and columns beyond the last whole block are dropped, so the result has shape
    ``(h // factor, w // factor)`` and each pixel is the exact mean of its block.

    Raises
    ------
    MovieError
        factor < 1 or larger than the image.
    """
    factor = int(factor)
    if factor < 1:
        raise MovieError("binning must be >= 1, got %d" % factor)
    img = np.asarray(img, dtype=np.float32)
    if factor == 1:
        return img
    h, w = img.shape
    hb, wb = h // factor, w // factor
    if hb < 1 or wb < 1:
        raise MovieError("binning %d leaves no pixel of a %dx%d frame" % (factor, w, h))
    cv2 = _cv2()
    crop = np.ascontiguousarray(img[:hb * factor, :wb * factor])
    # INTER_AREA with an integer factor is the block mean.
    return cv2.resize(crop, (wb, hb), interpolation=cv2.INTER_AREA)


def output_geometry(shape: Tuple[int, int], binning: int = 1, max_width: int = 0,
                    upscale: int = 1) -> Tuple[Tuple[int, int], Tuple[int, int], float]:
    """Frame size after binning, enlargement and the maximum-width limit.

    Parameters
    ----------
    shape : (int, int)
        ``(rows, columns)`` of the raw frames.
    binning : int
        Block-average factor.
    max_width : int
        Largest output width in px (0 = no limit); wider binned frames are shrunk with area
        averaging, keeping the aspect ratio.
    upscale : int
        Enlarge the binned frames this many times (bicubic), e.g. for small tomograms with
        particles drawn; the maximum width still applies.

    Returns
    -------
    binned : (int, int)
        ``(rows, cols)`` after binning.
    out : (int, int)
        ``(rows, cols)`` of the frames (before any even-size padding).
    scale : float
        Output pixel size / input pixel size (binning / upscale, or more with a maximum
        width).
    """
    rows, cols = (int(s) for s in shape)
    b, u = int(binning), int(upscale)
    if b < 1:
        raise MovieError("binning must be >= 1, got %d" % b)
    if u < 1:
        raise MovieError("enlargement must be >= 1, got %d" % u)
    br, bc = rows // b, cols // b
    if br < 1 or bc < 1:
        raise MovieError("binning %d leaves no pixel of a %dx%d frame" % (b, cols, rows))
    max_width = int(max_width or 0)
    if max_width < 0:
        raise MovieError("maximum width must be >= 0 (0 = no limit), got %d" % max_width)
    if max_width and bc * u > max_width:
        if max_width < 2:
            raise MovieError("maximum width %d px is too small" % max_width)
        oc = max_width
        orow = max(1, int(round(br * max_width / bc)))
        return (br, bc), (orow, oc), b * bc / oc
    return (br, bc), (br * u, bc * u), float(b) / u


def pad_even(img: np.ndarray) -> np.ndarray:
    """Pad a frame to even rows and columns by repeating its last row/column (yuv420p needs
    even sizes); a frame that is already even is returned as is."""
    h, w = img.shape[:2]
    ph, pw = h % 2, w % 2
    if not ph and not pw:
        return img
    return np.pad(img, ((0, ph), (0, pw)), mode="edge")


# ----------------------------------------------------------------------------- contrast
def window_from_minmax(lo: float, hi: float) -> Tuple[np.float32, np.float32]:
    """Contrast window ``(lo, hi)`` as float32, from a global minimum and maximum."""
    return np.float32(lo), np.float32(hi)


def percentile_sample(frame: np.ndarray, budget_per_frame: int) -> np.ndarray:
    """A regular sub-sample of ``frame`` holding at most about ``budget_per_frame`` values
    (every s-th row and column), flattened as float32."""
    h, w = frame.shape
    s = max(1, int(math.ceil(math.sqrt(h * w / max(1.0, float(budget_per_frame))))))
    return np.asarray(frame[::s, ::s], dtype=np.float32).ravel()


def window_from_percentiles(samples: ArrayLike, low: float = 0.1,
                            high: float = 99.9) -> Tuple[np.float32, np.float32]:
    """Contrast window from percentiles of sampled values (robust to gold beads, hot pixels).

    Parameters
    ----------
    samples : array_like
        Values sampled from the frames (see :func:`percentile_sample`).
    low, high : float
        Percentiles in [0, 100], ``low < high``.

    Returns
    -------
    (numpy.float32, numpy.float32)
    """
    low, high = float(low), float(high)
    if not (0.0 <= low < high <= 100.0):
        raise MovieError("percentiles must satisfy 0 <= low < high <= 100, got %g and %g"
                         % (low, high))
    samples = np.asarray(samples, dtype=np.float64)
    samples = samples[np.isfinite(samples)]
    if samples.size == 0:
        raise MovieError("no finite value to set the contrast window from")
    lo, hi = np.percentile(samples, [low, high])
    return np.float32(lo), np.float32(hi)


def normalize_uint8(frame: np.ndarray, lo: float, hi: float, out: Optional[np.ndarray] = None,
                    clip: bool = False, work: Optional[np.ndarray] = None) -> np.ndarray:
    """Map ``[lo, hi]`` to 0..255 with mrc2movie's float32 arithmetic and truncation.

    ``u = ((x - lo) / (hi - lo) * 255).astype(uint8)`` computed step by step in float32, as
    mrc2movie's ``normalize_slice`` does (so the result is identical to it for lo/hi = the
    global min/max); when ``hi == lo`` the division is skipped and every pixel becomes 0.

    Parameters
    ----------
    frame : numpy.ndarray
        2D frame, any real dtype.
    lo, hi : float
        Contrast window (float32 values are used as is).
    out : numpy.ndarray, optional
        uint8 output of the frame's shape.
    clip : bool
        Clip to [0, 255] before the cast (needed when the window is narrower than the data,
        e.g. percentiles; unnecessary for the global min/max).
    work : numpy.ndarray, optional
        float32 scratch buffer of the frame's shape.

    Returns
    -------
    numpy.ndarray
        uint8 frame.
    """
    lo = np.float32(lo)
    hi = np.float32(hi)
    if work is None or work.shape != frame.shape:
        work = np.empty(frame.shape, dtype=np.float32)
    np.copyto(work, frame, casting="unsafe")
    np.subtract(work, lo, out=work)
    span = np.float32(hi - lo)
    if hi > lo:
        np.divide(work, span, out=work)
    np.multiply(work, np.float32(255), out=work)
    if clip:
        np.clip(work, 0.0, 255.0, out=work)
    if out is None:
        out = np.empty(frame.shape, dtype=np.uint8)
    np.copyto(out, work, casting="unsafe")
    return out


def make_clahe(clip_limit: float = 2.0, tile_grid_size: int = 8) -> "cv2.CLAHE":
    """OpenCV CLAHE object: ``clipLimit`` and an ``n x n`` grid of tiles (mrc2movie defaults
    2.0 and 8).

    Raises
    ------
    MovieError
        clip limit <= 0 or a grid < 1.
    """
    if not float(clip_limit) > 0:
        raise MovieError("CLAHE clip limit must be > 0, got %g" % clip_limit)
    if int(tile_grid_size) < 1:
        raise MovieError("CLAHE tile grid size must be >= 1, got %d" % tile_grid_size)
    cv2 = _cv2()
    g = int(tile_grid_size)
    return cv2.createCLAHE(clipLimit=float(clip_limit), tileGridSize=(g, g))


# ----------------------------------------------------------------------------- overlays
def frame_label(kind: str, value: float, total: Optional[int] = None, axis: str = "z") -> str:
    """Overlay text: ``"Z 51/101"`` for slice numbers (1-based), ``"tilt -60.0 deg"`` for
    tilt angles (OpenCV's Hershey fonts have no degree sign)."""
    if kind == "angle":
        return "tilt %+.1f deg" % float(value)
    if total:
        return "%s %d/%d" % (axis.upper(), int(value) + 1, int(total))
    return "%s %d" % (axis.upper(), int(value) + 1)


def _font_scale(h):
    return max(0.35, min(3.0, h / 600.0))


def _white_black(img):
    """White and black in the colour space of ``img`` (gray or BGR)."""
    if img.ndim == 3:
        return (255, 255, 255), (0, 0, 0)
    return 255, 0


def draw_label(img: np.ndarray, text: str) -> np.ndarray:
    """Write ``text`` in the top-left corner (white with a black outline), in place; ``img``
    is a gray or BGR uint8 frame."""
    cv2 = _cv2()
    white, black = _white_black(img)
    h = img.shape[0]
    scale = _font_scale(h)
    thick = max(1, int(round(scale * 1.5)))
    (tw, th), base = cv2.getTextSize(text, cv2.FONT_HERSHEY_SIMPLEX, scale, thick)
    margin = max(2, h // 60)
    org = (margin, margin + th)
    cv2.putText(img, text, org, cv2.FONT_HERSHEY_SIMPLEX, scale, black, thick + 2,
                cv2.LINE_AA)
    cv2.putText(img, text, org, cv2.FONT_HERSHEY_SIMPLEX, scale, white, thick, cv2.LINE_AA)
    return img


def nice_scale_bar(width_px: int, pixel_nm: float,
                   fraction: float = 0.2) -> Tuple[float, int]:
    """A scale bar of a round length near ``fraction`` of the frame width.

    Parameters
    ----------
    width_px : int
        Frame width in output pixels.
    pixel_nm : float
        Output pixel size in nm (> 0).

    Returns
    -------
    (float, int)
        Bar length in nm (1, 2 or 5 x 10^k) and in output pixels (>= 1).
    """
    if not pixel_nm > 0:
        raise MovieError("a scale bar needs the pixel size, got %r nm" % (pixel_nm,))
    target = max(1.0, width_px * fraction) * pixel_nm
    exp = math.floor(math.log10(target))
    best = 10.0 ** exp
    for m in (1.0, 2.0, 5.0, 10.0):
        if m * 10.0 ** exp <= target:
            best = m * 10.0 ** exp
    return best, max(1, int(round(best / pixel_nm)))


def _nm_text(nm):
    if nm >= 1000:
        return "%g um" % (nm / 1000.0)
    return "%g nm" % nm


def draw_scale_bar(img: np.ndarray, length_px: int, length_nm: float) -> np.ndarray:
    """Draw a white bar of ``length_px`` with its length in nm, bottom-left, in place (gray
    or BGR frame)."""
    cv2 = _cv2()
    white, black = _white_black(img)
    h, w = img.shape[:2]
    margin = max(2, h // 30)
    bar_h = max(2, h // 100)
    x0, y1 = margin, h - margin - 1
    x1 = min(w - 1, x0 + int(length_px) - 1)
    y0 = y1 - bar_h + 1
    text = _nm_text(length_nm)
    scale = _font_scale(h) * 0.85
    thick = max(1, int(round(scale * 1.5)))
    org = (x0, y0 - max(3, bar_h) - 1)
    cv2.putText(img, text, org, cv2.FONT_HERSHEY_SIMPLEX, scale, black, thick + 2,
                cv2.LINE_AA)
    cv2.putText(img, text, org, cv2.FONT_HERSHEY_SIMPLEX, scale, white, thick, cv2.LINE_AA)
    # the bar last, so that the text's anti-aliased outline never eats into it
    cv2.rectangle(img, (x0 - 1, y0 - 1), (x1 + 1, y1 + 1), black, -1)
    cv2.rectangle(img, (x0, y0), (x1, y1), white, -1)
    return img


# ----------------------------------------------------------------------------- one frame
class FrameStyle:
    """Everything that turns a float frame into the movie's uint8 frame.

    Parameters
    ----------
    window : (float, float)
        Contrast window ``(lo, hi)`` (see :func:`window_from_minmax`,
        :func:`window_from_percentiles`).
    clip_window : bool
        Clip values outside the window (percentile windows); the global min/max needs none.
    clahe : bool
        Apply CLAHE after the 8-bit conversion (mrc2movie: yes).
    clip_limit, tile_grid_size : float, int
        CLAHE parameters.
    invert : bool
        Invert the final 8-bit contrast (255 - u), after CLAHE.
    out_shape : (int, int) or None
        ``(rows, cols)`` to resample the (binned) frame to with area averaging, or None.
    even : bool
        Pad to even rows/columns (H.264 yuv420p).
    scale_bar : (float, int) or None
        ``(length_nm, length_px)`` from :func:`nice_scale_bar`.
    colour : bool
        Return BGR frames (``[rows, cols, 3]``; for overlays in colour) instead of gray ones.
    """

    def __init__(self, window: Sequence[float], clip_window: bool = False, clahe: bool = True,
                 clip_limit: float = 2.0, tile_grid_size: int = 8, invert: bool = False,
                 out_shape: Optional[Sequence[int]] = None, even: bool = False,
                 scale_bar: Optional[Tuple[float, int]] = None, colour: bool = False) -> None:
        self.window = (np.float32(window[0]), np.float32(window[1]))
        self.clip_window = bool(clip_window)
        self.clahe = make_clahe(clip_limit, tile_grid_size) if clahe else None
        self._clahe_args = (clip_limit, tile_grid_size) if clahe else None
        self.invert = bool(invert)
        self.out_shape = tuple(out_shape) if out_shape is not None else None
        self.even = bool(even)
        self.scale_bar = scale_bar
        self.colour = bool(colour)
        self._local = threading.local()

    def scratch(self, shape: Sequence[int]) -> Tuple[np.ndarray, Optional["cv2.CLAHE"]]:
        """This thread's float32 scratch frame and CLAHE object (OpenCV's CLAHE keeps
        buffers: one per thread, so frames can be rendered in parallel)."""
        loc = self._local
        if getattr(loc, "work", None) is None or loc.work.shape != tuple(shape):
            loc.work = np.empty(shape, dtype=np.float32)
        if self._clahe_args is not None and getattr(loc, "clahe", None) is None:
            loc.clahe = make_clahe(*self._clahe_args)
        return loc.work, getattr(loc, "clahe", None)


def render_frame(frame: np.ndarray, style: "FrameStyle", label: Optional[str] = None,
                 overlay: Optional[Callable[[np.ndarray], object]] = None) -> np.ndarray:
    """uint8 movie frame from a float frame (already slab-averaged and binned). Threads may
    render frames of the same ``style`` in parallel.

    Order: area resampling to ``style.out_shape`` -> :func:`normalize_uint8` -> CLAHE ->
    inversion -> even padding -> (BGR) -> ``overlay(img)`` (e.g. particles, drawn in place)
    -> label top-left, scale bar bottom-left.

    Returns
    -------
    numpy.ndarray
        uint8 ``[rows, cols]``, or ``[rows, cols, 3]`` BGR with ``style.colour`` (a new
        array).
    """
    cv2 = _cv2()
    if style.out_shape is not None and tuple(frame.shape) != style.out_shape:
        rows, cols = style.out_shape
        frame = cv2.resize(np.ascontiguousarray(frame, dtype=np.float32), (cols, rows),
                           interpolation=cv2.INTER_AREA)
    work, clahe = style.scratch(frame.shape)
    u8 = normalize_uint8(frame, style.window[0], style.window[1], clip=style.clip_window,
                         work=work)
    if clahe is not None:
        u8 = clahe.apply(u8)
    if style.invert:
        np.subtract(np.uint8(255), u8, out=u8)
    if style.even:
        u8 = pad_even(u8)
    if style.colour:
        u8 = cv2.cvtColor(u8, cv2.COLOR_GRAY2BGR)
    if overlay is not None:
        u8 = np.ascontiguousarray(u8)
        overlay(u8)
    if label or style.scale_bar:
        u8 = np.ascontiguousarray(u8)
        if label:
            draw_label(u8, label)
        if style.scale_bar:
            draw_scale_bar(u8, style.scale_bar[1], style.scale_bar[0])
    return u8


# ----------------------------------------------------------------------------- preview
def montage(tiles: Sequence[np.ndarray], labels: Optional[Sequence[str]] = None,
            tile_size: int = 256, ncols: Optional[int] = None, gap: int = 4) -> np.ndarray:
    """Grid of uint8 tiles with their labels written underneath.

    Each cell is ``min(tile_size, largest tile side)`` px square; tiles are shrunk (never
    enlarged) to fit and centred. With ``labels``, a caption strip below each cell holds its
    label, so the tiles' own overlays stay visible.

    Parameters
    ----------
    tiles : list of numpy.ndarray
        uint8 frames, gray ``[rows, cols]`` or BGR ``[rows, cols, 3]`` (any sizes).
    labels : list of str, optional
        Caption of each tile.

    Returns
    -------
    numpy.ndarray
        uint8 montage on a black background: gray ``[rows, cols]``, or BGR when any tile is.
    """
    cv2 = _cv2()
    if not tiles:
        raise MovieError("no frame to put in the preview montage")
    n = len(tiles)
    ncols = int(ncols or min(n, max(1, int(math.ceil(math.sqrt(n))))))
    nrows = int(math.ceil(n / ncols))
    cell = int(min(tile_size, max(max(np.shape(t)[:2]) for t in tiles)))
    cap = 0
    if labels is not None:
        cap_scale = 0.45
        (_, th), base = cv2.getTextSize("Ag", cv2.FONT_HERSHEY_SIMPLEX, cap_scale, 1)
        cap = th + base + 6
    colour = any(np.ndim(t) == 3 for t in tiles)
    out = np.zeros((nrows * (cell + cap) + (nrows - 1) * gap, ncols * cell + (ncols - 1) * gap)
                   + ((3,) if colour else ()), dtype=np.uint8)
    white = (255, 255, 255) if colour else 255
    for i, t in enumerate(tiles):
        t = np.asarray(t, dtype=np.uint8)
        if colour and t.ndim == 2:
            t = cv2.cvtColor(t, cv2.COLOR_GRAY2BGR)
        h, w = t.shape[:2]
        f = min(1.0, cell / float(max(h, w)))
        if f < 1.0:
            t = cv2.resize(t, (max(1, int(round(w * f))), max(1, int(round(h * f)))),
                           interpolation=cv2.INTER_AREA)
        r, c = divmod(i, ncols)
        top = r * (cell + cap + gap)
        left = c * (cell + gap)
        y0 = top + (cell - t.shape[0]) // 2
        x0 = left + (cell - t.shape[1]) // 2
        out[y0:y0 + t.shape[0], x0:x0 + t.shape[1]] = t
        if cap and labels[i]:
            text = str(labels[i])
            (tw, th), base = cv2.getTextSize(text, cv2.FONT_HERSHEY_SIMPLEX, cap_scale, 1)
            org = (left + max(0, (cell - tw) // 2), top + cell + 3 + th)
            cv2.putText(out, text, org, cv2.FONT_HERSHEY_SIMPLEX, cap_scale, white, 1,
                        cv2.LINE_AA)
    return out
