"""Particles drawn on movie frames: sphere cross-sections on the slices of a tomogram
(:class:`SliceOverlay`) and projected circles on tilt images (:class:`ProjectedOverlay`).

Pure NumPy + OpenCV drawing on uint8 BGR frames ``[rows, cols, 3]``; no file I/O.

Coordinates are input pixels with pixel centres at integers: a volume's voxel ``(x, y, z)``
(0-based, x = MRC column, y = MRC row, z = section) or a tilt image's ``(u, v)`` (u = column),
as :mod:`cryoprocs.kernels.relion_geometry` projects them. :class:`PixelMap` maps them onto
the movie frame after binning and resizing, so the circles move with the image.

Drawing styles (``style``):

* ``outline`` (default): a circle of the true cross-section radius ``sqrt(R^2 - dz^2)`` of a
  sphere of radius ``R`` on the slices with ``|dz| < R`` (``dz`` = particle depth minus slice
  depth), so the particle itself stays visible inside the circle;
* ``filled``: the same discs, filled and blended at 40 % opacity;
* ``mrc2movie``: mrc2movie 0.2.0's markers, written from its documented behaviour
  (docs/export-movie.md, mrc2movie 0.2.0): opaque discs of radius
  ``max(1, round(R (1 - |dz| / max(R, 1))))`` on the slices with ``|dz| <= R``, centred on the
  pixel that contains the point (``int(x)`` of its IMOD model coordinate), skipped when that
  pixel is outside the frame; red by default.

On tilt images a particle of radius R projects to a disc of radius R whatever the tilt: the
circle has radius R on every frame.
"""
from __future__ import annotations

from typing import Any, Sequence

import numpy as np
from numpy.typing import ArrayLike

from .movie import MovieError

__all__ = ["STYLES", "COLOURS", "COLORMAPS", "parse_colour", "PixelMap", "ColourKey",
           "colour_key", "draw_legend", "draw_circles", "SliceOverlay", "ProjectedOverlay",
           "slice_axes", "line_width"]

#: a colour as OpenCV draws it: (blue, green, red), 0-255
BGR = tuple[int, int, int]

STYLES = ("outline", "filled", "mrc2movie")
#: named colours, BGR
COLOURS = {"green": (0, 255, 0), "red": (0, 0, 255), "yellow": (0, 255, 255),
           "cyan": (255, 255, 0), "magenta": (255, 0, 255), "blue": (255, 0, 0),
           "orange": (0, 165, 255), "white": (255, 255, 255), "black": (0, 0, 0)}
#: colour maps for values (OpenCV's): name -> cv2 constant name
COLORMAPS = {"viridis": "COLORMAP_VIRIDIS", "plasma": "COLORMAP_PLASMA",
             "inferno": "COLORMAP_INFERNO", "magma": "COLORMAP_MAGMA",
             "cividis": "COLORMAP_CIVIDIS", "turbo": "COLORMAP_TURBO", "jet": "COLORMAP_JET",
             "hot": "COLORMAP_HOT", "cool": "COLORMAP_COOL"}
#: colours of classes (integer columns with few values): Tableau 10, BGR
CLASS_COLOURS = [(180, 119, 31), (14, 127, 255), (44, 160, 44), (40, 39, 214),
                 (189, 103, 148), (75, 86, 140), (194, 119, 227), (127, 127, 127),
                 (34, 189, 188), (207, 190, 23)]
MAX_CLASSES = len(CLASS_COLOURS)
FILL_OPACITY = 0.4
_SHIFT = 4                     # sub-pixel bits of OpenCV's drawing coordinates
_ONE = 1 << _SHIFT


def _cv2():
    import cv2
    return cv2


def parse_colour(value: str | Sequence[int]) -> BGR:
    """BGR tuple of a colour name (:data:`COLOURS`), ``#RRGGBB`` or ``R,G,B`` (0-255).

    Raises
    ------
    MovieError
        an unknown name or values outside 0..255.
    """
    if isinstance(value, (tuple, list)) and len(value) == 3:
        bgr = tuple(int(v) for v in value)
    else:
        text = str(value).strip().lower()
        if text in COLOURS:
            return COLOURS[text]
        try:
            if text.startswith("#") and len(text) == 7:
                r, g, b = (int(text[i:i + 2], 16) for i in (1, 3, 5))
            else:
                r, g, b = (int(v) for v in text.split(","))
        except ValueError:
            raise MovieError("colour %r: give a name (%s), #RRGGBB or R,G,B"
                             % (value, ", ".join(COLOURS))) from None
        bgr = (b, g, r)
    if not all(0 <= v <= 255 for v in bgr):
        raise MovieError("colour %r: values must be in 0..255" % (value,))
    return bgr


def line_width(shape: Sequence[int]) -> int:
    """Outline width in px for a frame of ``shape``: 1 up to 1535 px, 2 up to 2559, ..."""
    return max(1, int(round(min(shape[:2]) / 1024.0)))


# ----------------------------------------------------------------------------- geometry
class PixelMap:
    """Input pixel coordinates -> movie frame coordinates (pixel centres at integers).

    Binning averages ``binning x binning`` blocks (input pixel ``x`` lies in output pixel
    ``(x + 0.5) / b - 0.5``); a resize from ``binned_shape`` to ``out_shape`` (area
    averaging) scales about the frame corner the same way.

    Parameters
    ----------
    binning : int
    binned_shape, out_shape : (rows, cols), optional
        frame size after binning and after resizing (default: no resize).
    """

    def __init__(self, binning: int = 1, binned_shape: Sequence[int] | None = None,
                 out_shape: Sequence[int] | None = None) -> None:
        self.binning = int(binning)
        fy = fx = 1.0
        if binned_shape is not None and out_shape is not None:
            fy = out_shape[0] / float(binned_shape[0])
            fx = out_shape[1] / float(binned_shape[1])
        self.fx = fx / self.binning
        self.fy = fy / self.binning
        self.scale = 0.5 * (self.fx + self.fy)

    def cols(self, x: ArrayLike) -> np.ndarray:
        """Frame columns (float64) of input columns ``x``."""
        return (np.asarray(x, dtype=np.float64) + 0.5) * self.fx - 0.5

    def rows(self, y: ArrayLike) -> np.ndarray:
        """Frame rows (float64) of input rows ``y``."""
        return (np.asarray(y, dtype=np.float64) + 0.5) * self.fy - 0.5


def slice_axes(axis: str) -> tuple[int, int, int]:
    """Indices into ``(x, y, z)`` of the frame column, frame row and depth for slices along
    ``axis`` (frames ``[y, x]`` for z, ``[z, x]`` for y, ``[z, y]`` for x)."""
    return {"z": (0, 1, 2), "y": (0, 2, 1), "x": (1, 2, 0)}[axis]


# ----------------------------------------------------------------------------- colours
class ColourKey:
    """How particle values map to colours, for the legend: ``kind`` ``"bar"`` (a colour map
    from ``lo`` to ``hi``, ``lut`` 256 x 3 BGR) or ``"classes"`` (``classes`` = list of
    ``(value, BGR)``); ``title`` = the column name."""

    def __init__(self, kind: str, title: str, lut: np.ndarray | None = None,
                 lo: float | None = None, hi: float | None = None,
                 classes: list[tuple[float, BGR]] | None = None) -> None:
        self.kind, self.title = kind, str(title)
        self.lut, self.lo, self.hi, self.classes = lut, lo, hi, classes

    def palette(self, n: int = 24) -> list[BGR]:
        """A few representative BGR colours (for GIF palettes)."""
        if self.kind == "classes":
            return [c for _, c in self.classes]
        idx = np.linspace(0, 255, n).round().astype(int)
        return [tuple(int(v) for v in self.lut[i]) for i in idx]


def _lut(cmap):
    cv2 = _cv2()
    name = COLORMAPS.get(str(cmap).lower())
    if name is None or not hasattr(cv2, name):
        raise MovieError("colour map %r: expected one of %s" % (cmap, ", ".join(COLORMAPS)))
    ramp = np.arange(256, dtype=np.uint8).reshape(256, 1)
    return cv2.applyColorMap(ramp, getattr(cv2, name)).reshape(256, 3)


def colour_key(values: ArrayLike, title: str, cmap: str = "viridis",
               value_range: Sequence[float] | None = None) -> tuple[np.ndarray, ColourKey]:
    """Colours of particles from a column of values.

    Integer values with at most :data:`MAX_CLASSES` distinct values (classes, object ids)
    get distinct colours; other values a colour map over ``value_range`` (default their
    finite min and max). Non-finite values are grey.

    Returns
    -------
    colours : ndarray, (N, 3) uint8 BGR
    key : ColourKey
    """
    v = np.asarray(values, dtype=np.float64).ravel()
    finite = np.isfinite(v)
    colours = np.full((v.size, 3), 128, dtype=np.uint8)
    uniq = np.unique(v[finite])
    if value_range is None and uniq.size and uniq.size <= MAX_CLASSES and \
            np.all(uniq == np.round(uniq)):
        classes = [(float(u), CLASS_COLOURS[i]) for i, u in enumerate(uniq)]
        for val, col in classes:
            colours[v == val] = col
        return colours, ColourKey("classes", title, classes=classes)
    lut = _lut(cmap)
    if value_range is not None:
        lo, hi = (float(a) for a in value_range)
    elif uniq.size:
        lo, hi = float(uniq[0]), float(uniq[-1])
    else:
        lo, hi = 0.0, 1.0
    span = hi - lo if hi > lo else 1.0
    idx = np.clip(np.round((v[finite] - lo) / span * 255), 0, 255).astype(int)
    colours[finite] = lut[idx]
    return colours, ColourKey("bar", title, lut=lut, lo=lo, hi=hi)


def _fmt(v):
    return ("%.3g" % v) if abs(v) < 1e4 else ("%.2e" % v)


def draw_legend(img: np.ndarray, key: ColourKey) -> np.ndarray:
    """Colour bar (or class list) with its title in the top-right corner of a BGR frame
    (overlays copy it on a black panel, see :meth:`SliceOverlay.draw`), in place; returns
    ``img``."""
    cv2 = _cv2()
    h, w = img.shape[:2]
    scale = max(0.3, min(1.5, h / 900.0))
    thick = max(1, int(round(scale * 1.5)))
    font = cv2.FONT_HERSHEY_SIMPLEX
    (_, th), base = cv2.getTextSize("Ag", font, scale, thick)
    margin = max(2, h // 60)

    def text(s, org):
        cv2.putText(img, s, org, font, scale, (0, 0, 0), thick + 2, cv2.LINE_AA)
        cv2.putText(img, s, org, font, scale, (255, 255, 255), thick, cv2.LINE_AA)

    tw = cv2.getTextSize(key.title, font, scale, thick)[0][0]
    text(key.title, (w - margin - tw, margin + th))
    top = margin + th + base + 2
    if key.kind == "classes":
        box = th + base
        for i, (val, col) in enumerate(key.classes):
            label = _fmt(val)
            lw = cv2.getTextSize(label, font, scale, thick)[0][0]
            y0 = top + i * (box + 2)
            x0 = w - margin - lw - box - 4
            cv2.rectangle(img, (x0, y0), (x0 + box - 1, y0 + box - 1), col, -1)
            text(label, (x0 + box + 3, y0 + th))
        return img
    bar_w = max(4, w // 60)
    bar_h = max(16, int(h * 0.3))
    labels = [_fmt(key.hi), _fmt(key.lo)]
    lw = max(cv2.getTextSize(s, font, scale, thick)[0][0] for s in labels)
    x1 = w - margin - lw - 4
    x0 = x1 - bar_w
    ramp = key.lut[np.linspace(255, 0, bar_h).round().astype(int)]
    img[top:top + bar_h, x0:x1] = ramp[:, None, :]
    cv2.rectangle(img, (x0 - 1, top - 1), (x1, top + bar_h), (0, 0, 0), 1)
    text(labels[0], (x1 + 3, top + th))
    text(labels[1], (x1 + 3, top + bar_h))
    return img


# ----------------------------------------------------------------------------- drawing
def draw_circles(img: np.ndarray, cx: ArrayLike, cy: ArrayLike, r: ArrayLike,
                 colours: BGR | ArrayLike, style: str = "outline", thickness: int = 1,
                 ids: Sequence[Any] | None = None) -> np.ndarray:
    """Draw circles (frame coordinates, sub-pixel centres and radii) on a BGR frame in place.

    ``colours`` is ``(n, 3)`` BGR or one BGR tuple; ``ids`` optional labels written at the
    upper right of each circle. ``style`` ``mrc2movie`` expects integer centres and radii
    (drawn as OpenCV filled 8-connected circles, as mrc2movie does). Returns ``img``.
    """
    cv2 = _cv2()
    n = len(cx)
    if n == 0:
        return img
    cols = np.broadcast_to(np.asarray(colours, dtype=np.uint8).reshape(-1, 3), (n, 3))
    if style == "mrc2movie":
        for i in range(n):
            cv2.circle(img, (int(cx[i]), int(cy[i])), int(r[i]),
                       tuple(int(c) for c in cols[i]), -1)
    else:
        # 8-connected 1-px circles at sub-pixel centres and radii (OpenCV's thick and
        # anti-aliased circles cost 5-10x more: hundreds of particles per 1024 px frame);
        # a width of t px is t concentric circles
        target = img.copy() if style == "filled" else img
        # Python ints once (tolist), then only the drawing calls in the loop
        X = np.round(np.asarray(cx) * _ONE).astype(np.int64).tolist()
        Y = np.round(np.asarray(cy) * _ONE).astype(np.int64).tolist()
        C = cols.tolist()
        t = 1 if style == "filled" else max(1, int(thickness))
        fill = -1 if style == "filled" else 1
        line, circle = cv2.LINE_8, cv2.circle
        for d in np.arange(t) - 0.5 * (t - 1):
            R = np.maximum(np.round((np.asarray(r) + d) * _ONE), _ONE // 2).astype(
                np.int64).tolist()
            for x, y, rr, c in zip(X, Y, R, C):
                circle(target, (x, y), rr, c, fill, line, _SHIFT)
        if style == "filled":
            cv2.addWeighted(target, FILL_OPACITY, img, 1.0 - FILL_OPACITY, 0.0, dst=img)
    if ids is not None:
        scale = max(0.3, min(1.0, img.shape[0] / 1400.0))
        for i in range(n):
            org = (int(cx[i] + 0.7 * r[i]) + 1, int(cy[i] - 0.7 * r[i]) - 1)
            col = tuple(int(c) for c in cols[i])
            cv2.putText(img, str(ids[i]), org, cv2.FONT_HERSHEY_SIMPLEX, scale, (0, 0, 0), 3,
                        cv2.LINE_AA)
            cv2.putText(img, str(ids[i]), org, cv2.FONT_HERSHEY_SIMPLEX, scale, col, 1,
                        cv2.LINE_AA)
    return img


class _Overlay:
    """What both overlays share: colours, ids, legend, style and the drawn-particle flags."""

    def __init__(self, n, radius, colours, style, ids, key, thickness):
        if style not in STYLES:
            raise MovieError("overlay style %r: expected one of %s" % (style, ", ".join(STYLES)))
        self.n = int(n)
        self.radius = np.broadcast_to(np.asarray(radius, dtype=np.float64), (self.n,)).copy()
        if self.n and not np.all(self.radius > 0):
            raise MovieError("particle radius must be > 0 px, got %s"
                             % np.unique(self.radius[~(self.radius > 0)])[:5])
        self.colours = np.broadcast_to(np.asarray(colours, dtype=np.uint8).reshape(-1, 3),
                                       (self.n, 3))
        self.style = style
        self.ids = None if ids is None else [str(i) for i in ids]
        self.key = key
        self.thickness = thickness
        self.drawn = np.zeros(self.n, dtype=bool)
        #: extra values reported by :meth:`counts` (e.g. the dose limit used)
        self.info = {}

    def _draw(self, img, idx, cx, cy, r, colours):
        if idx.size:
            th = self.thickness or line_width(img.shape)
            ids = None if self.ids is None else [self.ids[i] for i in idx]
            draw_circles(img, cx, cy, r, colours, self.style, th, ids)
            self.drawn[idx] = True
        if self.key is not None:
            self._legend(img)
        return int(idx.size)

    def _legend(self, img):
        """:func:`draw_legend` on a black panel in the top-right corner, drawn once per frame
        size and copied onto each frame."""
        shape = img.shape
        cache = getattr(self, "_legend_cache", None)
        if cache is None or cache[0] != shape:
            black = draw_legend(np.zeros(shape, np.uint8), self.key)
            rows, cols = np.nonzero(black.any(axis=2))
            if not rows.size:
                return
            m = 2
            sl = (slice(max(0, rows.min() - m), rows.max() + 1 + m),
                  slice(max(0, cols.min() - m), cols.max() + 1 + m))
            cache = self._legend_cache = (shape, sl, black[sl].copy())
        _, sl, patch = cache
        img[sl] = patch

    def palette(self) -> list[BGR]:
        """Colours the overlay uses (BGR tuples; for GIF palettes)."""
        cols = {tuple(int(v) for v in c) for c in np.unique(self.colours, axis=0)} \
            if self.n else set()
        if self.key is not None:
            cols.update(self.key.palette())
        return sorted(cols)


class SliceOverlay(_Overlay):
    """Particles on the slices of a volume.

    Parameters
    ----------
    positions : array, (N, 3)
        0-based voxel ``(x, y, z)`` (pixel centres at integers).
    radius : float or array (N,)
        sphere radius R in voxels.
    axis : str
        slicing axis of the movie (``z``, ``y`` or ``x``).
    colours : BGR tuple or (N, 3) uint8
    style : str
        :data:`STYLES`.
    ids : list, optional
        labels written next to the circles.
    key : ColourKey, optional
        drawn as a legend on every frame.
    thickness : int, optional
        outline width in frame px (default :func:`line_width`).
    """

    def __init__(self, positions: ArrayLike, radius: float | ArrayLike, axis: str = "z",
                 colours: BGR | ArrayLike = COLOURS["green"], style: str = "outline",
                 ids: Sequence[Any] | None = None, key: ColourKey | None = None,
                 thickness: int | None = None) -> None:
        pos = np.asarray(positions, dtype=np.float64).reshape(-1, 3)
        super().__init__(len(pos), radius, colours, style, ids, key, thickness)
        if not np.all(np.isfinite(pos)):
            raise MovieError("particle positions hold NaN or infinite values")
        c, r, d = slice_axes(axis)
        self.u, self.v, self.depth = pos[:, c], pos[:, r], pos[:, d]
        self._order = np.argsort(self.depth, kind="stable")
        self._sorted = self.depth[self._order]
        self._rmax = float(self.radius.max()) if self.n else 0.0

    def circles(self, depth: float, pmap: PixelMap, frame_shape: Sequence[int] | None = None
                ) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
        """Particles cut by the slice at ``depth`` (input px): ``(idx, cx, cy, r)`` in frame
        coordinates (``mrc2movie`` style: integer pixels and radii)."""
        lo = np.searchsorted(self._sorted, depth - self._rmax, side="left")
        hi = np.searchsorted(self._sorted, depth + self._rmax, side="right")
        idx = self._order[lo:hi]
        dz = np.abs(self.depth[idx] - depth)
        R = self.radius[idx]
        if self.style == "mrc2movie":
            keep = dz <= R
            idx, dz, R = idx[keep], dz[keep], R[keep]
            r = np.maximum(1.0, np.round(R * (1.0 - dz / np.maximum(R, 1.0)))) * pmap.scale
            cx = np.floor(pmap.cols(self.u[idx]) + 0.5)
            cy = np.floor(pmap.rows(self.v[idx]) + 0.5)
            if frame_shape is not None:
                inside = (cx >= 0) & (cx < frame_shape[1]) & (cy >= 0) & (cy < frame_shape[0])
                idx, cx, cy, r = idx[inside], cx[inside], cy[inside], r[inside]
            return idx, cx, cy, np.maximum(1.0, np.round(r))
        keep = dz < R
        idx, dz, R = idx[keep], dz[keep], R[keep]
        r = np.sqrt(R * R - dz * dz) * pmap.scale
        cx, cy = pmap.cols(self.u[idx]), pmap.rows(self.v[idx])
        if frame_shape is not None:
            inside = (cx + r >= -0.5) & (cx - r <= frame_shape[1] - 0.5) & \
                     (cy + r >= -0.5) & (cy - r <= frame_shape[0] - 0.5)
            idx, cx, cy, r = idx[inside], cx[inside], cy[inside], r[inside]
        return idx, cx, cy, r

    def draw(self, img: np.ndarray, depth: float, pmap: PixelMap) -> int:
        """Draw the particles cut by the slice at ``depth`` on ``img`` (BGR, in place);
        returns how many were drawn."""
        idx, cx, cy, r = self.circles(depth, pmap, img.shape[:2])
        return self._draw(img, idx, cx, cy, r, self.colours[idx])

    def counts(self) -> dict[str, Any]:
        """``{"particles", "drawn", "radius_px"}``: particle count, particles drawn on at
        least one frame so far, largest radius (input px)."""
        return dict(self.info, particles=self.n, drawn=int(self.drawn.sum()),
                    radius_px=self._rmax)


class ProjectedOverlay(_Overlay):
    """Particles projected on the images of a tilt series.

    Parameters
    ----------
    uv : array, (F, N, 2)
        projected positions in tilt-image px (u = column), per frame.
    radius : float or array (N,)
        circle radius in tilt-image px.
    usable : array, (F, N) bool, optional
        False where the particle is flagged (outside the image or beyond the dose limit):
        drawn in ``flag_colour``.
    colours, style, ids, key, thickness : see :class:`SliceOverlay`.
    flag_colour : BGR tuple
    """

    def __init__(self, uv: ArrayLike, radius: float | ArrayLike, usable: ArrayLike | None = None,
                 colours: BGR | ArrayLike = COLOURS["green"], flag_colour: BGR = COLOURS["red"],
                 style: str = "outline", ids: Sequence[Any] | None = None,
                 key: ColourKey | None = None, thickness: int | None = None) -> None:
        uv = np.asarray(uv, dtype=np.float64)
        if uv.ndim != 3 or uv.shape[2] < 2:
            raise MovieError("projected positions must be (frames, particles, 2), got %s"
                             % (uv.shape,))
        super().__init__(uv.shape[1], radius, colours, style, ids, key, thickness)
        self.uv = uv[..., :2]
        self.usable = np.ones(uv.shape[:2], dtype=bool) if usable is None else \
            np.asarray(usable, dtype=bool)
        self.flag_colour = np.asarray(flag_colour, dtype=np.uint8).reshape(1, 3)

    def draw(self, img: np.ndarray, frame: int, pmap: PixelMap) -> int:
        """Draw the particles of tilt image ``frame`` on ``img`` (BGR, in place); returns how
        many were drawn."""
        h, w = img.shape[:2]
        cx = pmap.cols(self.uv[frame, :, 0])
        cy = pmap.rows(self.uv[frame, :, 1])
        r = self.radius * pmap.scale
        if self.style == "mrc2movie":
            cx, cy, r = np.floor(cx + 0.5), np.floor(cy + 0.5), np.maximum(1.0, np.round(r))
        inside = (cx + r >= -0.5) & (cx - r <= w - 0.5) & (cy + r >= -0.5) & \
                 (cy - r <= h - 0.5) & np.isfinite(cx) & np.isfinite(cy)
        idx = np.flatnonzero(inside)
        cols = np.where(self.usable[frame, idx][:, None], self.colours[idx], self.flag_colour)
        return self._draw(img, idx, cx[idx], cy[idx], r[idx], cols)

    def counts(self) -> dict[str, Any]:
        """``{"particles", "drawn", "frames_usable", "frames_flagged", "never_usable"}``:
        particle count, particles drawn on at least one frame so far, particle-frames usable
        and flagged, particles usable in no frame."""

        return dict(self.info, particles=self.n, drawn=int(self.drawn.sum()),
                    frames_usable=int(self.usable.sum()),
                    frames_flagged=int((~self.usable).sum()),
                    never_usable=int((~self.usable.any(axis=0)).sum()) if self.n else 0)

