"""Geometric masks and their application, with Xmipp ``xmipp_transform_mask`` semantics.

Everything here is NumPy only. Arrays are ``[y, x]`` for images, ``[n, y, x]`` for image
stacks and ``[z, y, x]`` for volumes; x is the MRC column.

Conventions (Xmipp ``ProgMask``, I2PC/xmipp ``src/xmipp/libraries/data/mask.cpp`` @3ce80f0, as
re-stated in docs/apply-mask.md; the kernels are written from those
formulas, not from Xmipp source):

* The mask centre is the voxel at index ``n // 2`` on every axis, for even and odd sizes.
  A centre shift ``(x0, y0[, z0])`` (integer voxels) moves it to ``n // 2 + offset``.
* Distances are Euclidean in voxels: ``r**2 = (k-z0)**2 + (i-y0)**2 + (j-x0)**2`` with
  logical coordinates ``k = z - nz//2`` etc. Radii are inclusive (``r**2 <= R**2``).
* Binary masks (circular/sphere, box, crown, cylinder) replace voxels where the mask is 0 by
  the fill value; soft masks (gaussian, raised cosine, raised crown) multiply and ignore the
  fill value. Fill statistics (min/max/avg) are per image, over the whole image, in float64.
* The gaussian mask has unit integral (peak ``1/(sqrt(2 pi) sigma)**dim``) unless
  ``gaussian_peak_one`` is set.
"""
import math
from typing import List, Optional, Sequence

import numpy as np

__all__ = [
    "GEOMETRIES_2D", "GEOMETRIES_3D", "BINARY_GEOMETRIES", "FILL_MODES",
    "MaskError", "xmipp_form_defaults", "make_mask", "mask_is_binary",
    "apply_mask", "apply_created_mask", "check_created_mask",
]

#: Geometry names in the order of the Xmipp/Scipion form enums (``geo`` index).
GEOMETRIES_2D = ("circular", "box", "crown", "gaussian", "raised_cosine", "raised_crown")
GEOMETRIES_3D = ("sphere", "box", "crown", "cylinder", "gaussian", "raised_cosine", "raised_crown")
BINARY_GEOMETRIES = frozenset({"circular", "sphere", "box", "crown", "cylinder"})
#: Fill modes in the order of the form enum (``fillType``); "noise" is a cryoprocs addition.
FILL_MODES = ("value", "min", "max", "avg", "noise")


class MaskError(ValueError):
    """Invalid mask parameters or inputs; the message names the offending values."""


def _trunc_half(size):
    """Xmipp/Scipion ``'%d' % (size / 2)``: half the size, truncated toward zero."""
    return int(size / 2)


def xmipp_form_defaults(size_x: int, geometry: str, radius: int = -1, box_size: int = -1,
                        inner_radius: int = 0, outer_radius: int = -1, height: int = -1,
                        sigma: float = -1.0, border_decay: int = 0) -> dict:
    """Resolve Scipion/Xmipp form values (``-1`` = automatic) into mask parameters.

    Follows scipion-em-xmipp ``argsForTransformMask(size)``
    (xmipp3/protocols/protocol_preprocess/geometrical_mask.py): the automatic values derive
    from the **X dimension only**: radius, box size and outer radius ``-1 -> int(size_x/2)``,
    height ``-1 -> size_x``, sigma ``-1 -> size_x/6``; radii are integers and sigma is rounded
    to 6 decimals as Xmipp's ``'%f'`` formatting does.

    Parameters
    ----------
    size_x : int
        X dimension (columns) of the input images or volumes, in px.
    geometry : str
        One of :data:`GEOMETRIES_2D` / :data:`GEOMETRIES_3D`.
    radius, box_size, inner_radius, outer_radius, height : int
        Form values in px; ``-1`` means the Xmipp default.
    sigma : float
        Gaussian sigma in px; ``-1`` means ``size_x / 6``.
    border_decay : int
        Raised-crown edge half-width w in px (Xmipp ``pix_width``); ``-1`` means 0.

    Returns
    -------
    dict
        Keyword arguments for :func:`make_mask` relevant to ``geometry``.
    """
    half = _trunc_half(size_x)
    if geometry in ("circular", "sphere"):
        return {"radius": half if radius == -1 else int(radius)}
    if geometry == "box":
        return {"box_size": half if box_size == -1 else int(box_size)}
    if geometry in ("crown", "raised_cosine"):
        return {"inner_radius": int(inner_radius),
                "outer_radius": half if outer_radius == -1 else int(outer_radius)}
    if geometry == "raised_crown":
        return {"inner_radius": int(inner_radius),
                "outer_radius": half if outer_radius == -1 else int(outer_radius),
                "border_decay": 0 if border_decay == -1 else int(border_decay)}
    if geometry == "cylinder":
        return {"radius": half if radius == -1 else int(radius),
                "height": int(size_x) if height == -1 else int(height)}
    if geometry == "gaussian":
        s = size_x / 6.0 if sigma == -1 else float(sigma)
        return {"sigma": float("%f" % s)}
    raise MaskError("unknown mask geometry %r; expected one of %s"
                    % (geometry, ", ".join(sorted(set(GEOMETRIES_2D) | set(GEOMETRIES_3D)))))


def mask_is_binary(geometry: str) -> bool:
    """True for geometries applied by substitution (Xmipp int masks), False for soft masks."""
    return geometry in BINARY_GEOMETRIES


def _logical_axes(shape, center):
    """Broadcastable float64 logical coordinates ``index - n//2 - offset`` per axis.

    ``shape`` is ``(ny, nx)`` or ``(nz, ny, nx)``; ``center`` is ``(x0, y0[, z0])`` in px.
    Returns the axes in array order (z, y, x) / (y, x).
    """
    nd = len(shape)
    offsets = list(center) + [0] * (nd - len(center))   # (x0, y0, z0)
    axes = []
    for ax, n in enumerate(shape):
        off = offsets[nd - 1 - ax]                      # array axis -> (x, y, z) offset
        view = [1] * nd
        view[ax] = n
        axes.append((np.arange(n, dtype=np.float64) - (n // 2) - off).reshape(view))
    return axes


def _r2(axes):
    out = axes[0] ** 2
    for a in axes[1:]:
        out = out + a ** 2
    return out


def _raised_cosine(r2, r1, r2_outer):
    """Xmipp ``RaisedCosineMask`` INNER value; the plateau test compares squares (mask.cpp 36).

    With ``r1 < 0`` the plateau becomes ``r <= |r1|`` while the ramp keeps the signed value,
    which reproduces Xmipp's jump for a raised crown whose border decay exceeds the radius.
    """
    r = np.sqrt(r2)
    out = np.zeros_like(r2)
    out[r2 <= r1 * r1] = 1.0
    ramp = (r2 > r1 * r1) & (r2 < r2_outer * r2_outer)
    if np.any(ramp):
        width = r2_outer - r1
        out[ramp] = 0.5 * (1.0 + np.cos(math.pi * (r[ramp] - r1) / width))
    return out


def make_mask(shape: Sequence[int], geometry: str, radius: Optional[float] = None,
              inner_radius: Optional[float] = None, outer_radius: Optional[float] = None,
              box_size: Optional[int] = None, height: Optional[float] = None,
              sigma: Optional[float] = None, border_decay: float = 0,
              center: Sequence[int] = (0, 0, 0), gaussian_peak_one: bool = False) -> np.ndarray:
    """Build an Xmipp geometric mask (INNER mode: 1 keeps, 0 removes).

    Parameters
    ----------
    shape : tuple of int
        ``(ny, nx)`` for images or ``(nz, ny, nx)`` for volumes.
    geometry : str
        2D: circular, box, crown, gaussian, raised_cosine, raised_crown.
        3D: sphere, box, crown, cylinder, gaussian, raised_cosine, raised_crown
        ("circular" and "sphere" are accepted in both).
    radius : float
        circular/sphere radius, cylinder radius (px, inclusive).
    inner_radius, outer_radius : float
        crown, raised cosine, raised crown radii (px). ``inner_radius = 0`` is valid here
        (Xmipp aborts with "cannot determine mode").
    box_size : int
        full side length of the box (px): indices ``n//2 - b//2 .. n//2 - b//2 + b - 1``.
    height : float
        cylinder height along Z (px); voxels with ``|k - z0| <= height/2`` are kept.
    sigma : float
        gaussian sigma (px).
    border_decay : float
        raised crown edge half-width w (px): each edge is a cosine ramp of width 2w centred
        on its radius.
    center : tuple
        integer centre shift ``(x0, y0[, z0])`` in px; +x moves the mask to larger columns.
    gaussian_peak_one : bool
        scale the gaussian to peak 1 instead of Xmipp's unit integral.

    Returns
    -------
    numpy.ndarray
        ``bool`` for binary geometries, ``float64`` for soft ones, of shape ``shape``.

    Raises
    ------
    MaskError
        unknown geometry, missing or negative parameters, a cylinder on 2D data, or a mask
        that keeps no voxel (names the values).
    """
    shape = tuple(int(s) for s in shape)
    if len(shape) not in (2, 3):
        raise MaskError("mask shape must be (ny, nx) or (nz, ny, nx), got %s" % (shape,))
    center = tuple(int(c) for c in center)
    build = _BUILDERS.get(geometry)
    if build is None:
        raise MaskError("unknown mask geometry %r; expected one of %s"
                        % (geometry, ", ".join(GEOMETRIES_3D if len(shape) == 3
                                               else GEOMETRIES_2D)))
    args = _MaskArgs(geometry, shape, radius=radius, inner_radius=inner_radius,
                     outer_radius=outer_radius, box_size=box_size, height=height, sigma=sigma,
                     border_decay=border_decay, gaussian_peak_one=gaussian_peak_one)
    mask = build(_logical_axes(shape, center), args)
    if mask.dtype == bool and not mask.any():
        raise MaskError("the %s mask keeps no voxel of a %s input (radius=%s, inner=%s, "
                        "outer=%s, box=%s, height=%s, centre shift=%s)"
                        % (geometry, "x".join(map(str, shape[::-1])), radius, inner_radius,
                           outer_radius, box_size, height, center))
    return mask


class _MaskArgs:
    """The parameters of one :func:`make_mask` call, checked as each geometry reads them."""

    def __init__(self, geometry, shape, **values):
        self.geometry, self.shape, self.values = geometry, shape, values

    def need(self, name, minimum=0):
        value = self.values[name]
        if value is None:
            raise MaskError("geometry %r needs %s" % (self.geometry, name))
        if value < minimum:
            raise MaskError("%s must be >= %s for geometry %r, got %s"
                            % (name, minimum, self.geometry, value))
        return value

    def radii(self):
        """``(inner, outer)`` radii of a crown-like geometry, checked in that order."""
        return self.need("inner_radius"), self.need("outer_radius")


def _circular(axes, a):
    R = a.need("radius")
    return _r2(axes) <= R * R


def _box(axes, a):
    b = int(a.need("box_size", 1))
    first = -(b // 2)
    mask = np.ones(a.shape, dtype=bool)
    for ax in axes:                        # the logical coordinate minus the shift
        mask = mask & (ax >= first) & (ax <= first + b - 1)
    return mask


def _crown(axes, a):
    r1, r2o = a.radii()
    if r1 > r2o:
        raise MaskError("crown inner radius %s > outer radius %s" % (r1, r2o))
    rr = _r2(axes)
    return (rr >= r1 * r1) & (rr <= r2o * r2o)


def _cylinder(axes, a):
    if len(a.shape) != 3:
        raise MaskError("a cylinder mask needs a volume; got shape %s" % (a.shape,))
    R = a.need("radius")
    H = a.need("height")
    return (axes[1] ** 2 + axes[2] ** 2 <= R * R) & (np.abs(axes[0]) <= H / 2.0)


def _gaussian(axes, a):
    s = a.need("sigma")
    if s == 0:
        raise MaskError("gaussian sigma must be > 0, got %s" % s)
    g = np.exp(-_r2(axes) / (2.0 * s * s))
    if not a.values["gaussian_peak_one"]:
        g *= 1.0 / (math.sqrt(2.0 * math.pi) * s) ** len(a.shape)
    return g


def _raised_cosine_mask(axes, a):
    r1, r2o = a.radii()
    if r2o <= r1:
        raise MaskError("raised cosine needs outer radius > inner radius, got inner %s, "
                        "outer %s" % (r1, r2o))
    return _raised_cosine(_r2(axes), float(r1), float(r2o))


def _raised_crown(axes, a):
    r1, r2o = a.radii()
    w = a.need("border_decay")
    if r2o <= r1:
        raise MaskError("raised crown needs outer radius > inner radius, got inner %s, "
                        "outer %s" % (r1, r2o))
    rr = _r2(axes)
    inner = _raised_cosine(rr, float(r1 - w), float(r1 + w))
    outer = _raised_cosine(rr, float(r2o - w), float(r2o + w))
    return (1.0 - inner) * outer


#: the builder of each geometry (``circular`` and ``sphere`` are the same mask)
_BUILDERS = {"circular": _circular, "sphere": _circular, "box": _box, "crown": _crown,
             "cylinder": _cylinder, "gaussian": _gaussian, "raised_cosine": _raised_cosine_mask,
             "raised_crown": _raised_crown}


def _fill_values(images, fill, fill_value):
    """Per-image fill value, float64, shape (n,), from the whole image (Xmipp semantics)."""
    n = images.shape[0]
    flat = images.reshape(n, -1)
    if fill == "value":
        return np.full(n, float(fill_value))
    if fill == "min":
        return flat.min(axis=1).astype(np.float64)
    if fill == "max":
        return flat.max(axis=1).astype(np.float64)
    if fill == "avg":
        return flat.mean(axis=1, dtype=np.float64)
    raise MaskError("unknown fill mode %r; expected one of %s" % (fill, ", ".join(FILL_MODES)))


def _noise_fill(out, images, mask, seed, first_index):
    """Replace (binary mask) or blend (soft mask) each image with gaussian noise of its own
    outside mean/std.

    Statistics come from the voxels where the mask is 0, or below 0.5 when a soft mask has
    no exact zero. Each image draws from ``default_rng([seed, first_index + i])`` so results
    do not depend on chunking. Soft masks give ``w*img + (1-w)*noise`` (exact at w = 0, 1).
    """
    binary = mask.dtype == bool
    outside = ~mask if binary else mask == 0
    if not outside.any() and not binary:
        outside = mask < 0.5
    if not outside.any():
        raise MaskError("noise fill needs voxels outside the mask, but the mask keeps "
                        "every voxel")
    w = None if binary else mask.astype(np.float32)
    for i in range(images.shape[0]):
        img = images[i].astype(np.float32, copy=False)
        vals = img[outside].astype(np.float64)
        mu, sd = vals.mean(), vals.std()
        rng = np.random.default_rng([int(seed), int(first_index) + i])
        noise = rng.standard_normal(img.shape, dtype=np.float32) * np.float32(sd) + np.float32(mu)
        if binary:
            out[i] = np.where(mask, img, noise)
        else:
            out[i] = w * img + (np.float32(1) - w) * noise
    return out


def apply_mask(images: np.ndarray, mask: np.ndarray, fill: str = "value", fill_value: float = 0.0,
               seed: int = 42, first_index: int = 0,
               out: Optional[np.ndarray] = None) -> np.ndarray:
    """Apply one mask to every image of a stack (or to one volume) with Xmipp semantics.

    Parameters
    ----------
    images : numpy.ndarray
        ``[n, y, x]`` image stack or ``[n, z, y, x]`` volume stack, any real dtype (a single
        image/volume can be passed with a leading axis of 1).
    mask : numpy.ndarray
        ``[y, x]`` / ``[z, y, x]``; ``bool`` for binary masks (substitution), float for soft
        masks (multiplication).
    fill : str
        ``value``, ``min``, ``max``, ``avg`` (Xmipp; binary masks only, statistics of the whole
        image) or ``noise`` (cryoprocs: gaussian noise with the mean/std of the image's own
        outside voxels; for soft masks the image is blended with it).
    fill_value : float
        substitute for ``fill='value'``.
    seed, first_index : int
        noise seed, and the global index of ``images[0]`` so each image gets its own stream.
    out : numpy.ndarray, optional
        float32 output of the same shape (may be an mmap); allocated if None.

    Returns
    -------
    numpy.ndarray
        float32 masked images, same shape as ``images``.

    Raises
    ------
    MaskError
        mask shape different from the image shape, or an unknown fill mode.
    """
    if images.shape[1:] != mask.shape:
        raise MaskError("mask shape %s (z,y,x / y,x) differs from the image shape %s"
                        % (mask.shape, images.shape[1:]))
    if out is None:
        out = np.empty(images.shape, dtype=np.float32)
    if fill == "noise":
        return _noise_fill(out, images, mask, seed, first_index)
    if mask.dtype == bool:
        values = _fill_values(images, fill, fill_value).astype(np.float32)
        np.copyto(out, images, casting="unsafe")
        outside = ~mask
        for i in range(images.shape[0]):
            out[i][outside] = values[i]
        return out
    if fill not in FILL_MODES:
        raise MaskError("unknown fill mode %r; expected one of %s" % (fill, ", ".join(FILL_MODES)))
    # Soft mask: out = in * mask, the fill value is ignored (Xmipp apply_cont_mask).
    np.multiply(images, mask.astype(np.float32), out=out, casting="unsafe")
    return out


def check_created_mask(mask: np.ndarray, image_shape: Sequence[int]) -> List[str]:
    """Validate a created mask against the data; return a list of warning strings.

    Raises
    ------
    MaskError
        when the mask shape differs from ``image_shape`` on any axis (Xmipp checks X and Y only).
    """
    if tuple(mask.shape) != tuple(image_shape):
        raise MaskError("mask dimensions %s (x,y[,z]) differ from the input dimensions %s"
                        % ("x".join(map(str, mask.shape[::-1])),
                           "x".join(map(str, tuple(image_shape)[::-1]))))
    warnings = []
    lo, hi = float(np.min(mask)), float(np.max(mask))
    if lo < 0.0 or hi > 1.0:
        warnings.append("the mask values span [%g, %g], outside [0, 1]: the data will be "
                        "scaled, not only masked" % (lo, hi))
    if hi == 0.0:
        raise MaskError("the mask is zero everywhere: it would erase the data")
    return warnings


def apply_created_mask(images: np.ndarray, mask: np.ndarray,
                       out: Optional[np.ndarray] = None) -> np.ndarray:
    """Multiply every image by a created mask: ``out = in * mask`` (xmipp_image_operate --mult).

    Parameters
    ----------
    images : numpy.ndarray
        ``[n, y, x]`` or ``[n, z, y, x]``.
    mask : numpy.ndarray
        ``[y, x]`` or ``[z, y, x]`` real values (not binarised).

    Returns
    -------
    numpy.ndarray
        float32 product, shape of ``images``.
    """
    if images.shape[1:] != mask.shape:
        raise MaskError("mask shape %s differs from the image shape %s"
                        % (mask.shape, images.shape[1:]))
    if out is None:
        out = np.empty(images.shape, dtype=np.float32)
    np.multiply(images, mask.astype(np.float32), out=out, casting="unsafe")
    return out
