"""Mask geometry operations of the noise fill: the exact truncated Euclidean distance, the
cosine soft-edge weights, and 3D binary morphology (cube dilation, 3^3 opening/closing,
Gaussian blur + threshold) computed with separable filters or in slabs, identical to the
``scipy.ndimage`` calls they replace."""
import math
from typing import Optional

import numpy as np
from numpy.typing import ArrayLike
from scipy import ndimage as ndi

from .params import RADIUS_MAX, NoiseFillError

__all__ = ["GAUSS_TRUNCATE", "truncated_sq_edt", "edge_weight_lut", "cube_dilate", "open_close",
           "blur_threshold"]

GAUSS_TRUNCATE = 4.0                # scipy.ndimage.gaussian_filter default


def truncated_sq_edt(seg: ArrayLike, radius: int, threads: int = 1,
                     chunk_voxels: Optional[int] = None) -> np.ndarray:
    """Exact squared Euclidean distance (px^2) from every voxel to the nearest True voxel of
    ``seg``, up to ``radius``.

    Computed with the ``edt`` package (seung-lab, Felzenszwalb & Huttenlocher's exact
    separable transform; cost independent of the radius) in y-chunks with an R-row halo,
    so memory stays at a few chunk-sized temporaries. (scipy 1.10's
    ``distance_transform_edt`` is exact too but about 10x slower on this problem, see
    docs/noise-fill.md.)

    Parameters
    ----------
    seg : numpy.ndarray
        bool ``[z, y, x]``; voxels outside the array are not part of the mask.
    radius : int
        R, px, 0 <= R <= :data:`RADIUS_MAX`.
    threads : int
        threads of the ``edt`` transform.
    chunk_voxels : int, optional
        voxels per chunk (memory bound); default about 2^26.

    Returns
    -------
    numpy.ndarray
        uint16, same shape: the exact squared distance where it is <= R^2, and the cap
        ``(R + 1)^2`` for every farther voxel (and for every voxel if ``seg`` is empty).

    Raises
    ------
    NoiseFillError
        R out of range or a mask that is not 3D.
    """
    import edt

    R = int(radius)
    if not 0 <= R <= RADIUS_MAX:
        raise NoiseFillError("distance radius must be in 0..%d px, got %s" % (RADIUS_MAX, radius))
    seg = np.asarray(seg, dtype=bool)
    if seg.ndim != 3:
        raise NoiseFillError("the mask must be a 3D [z, y, x] array, got shape %s" % (seg.shape,))
    cap = (R + 1) ** 2
    out = np.full(seg.shape, cap, dtype=np.uint16)
    if seg.size == 0 or not seg.any():
        return out
    nz, ny, nx = seg.shape
    rows = max(1, int((chunk_voxels or (1 << 26)) // (nz * nx)))
    for y0 in range(0, ny, rows):
        y1 = min(ny, y0 + rows)
        a, b = max(0, y0 - R), min(ny, y1 + R)
        sub = seg[:, a:b]
        if not sub.any():
            continue
        inp = np.ascontiguousarray(np.logical_not(sub).view(np.uint8))
        d2 = edt.edtsq(inp, black_border=False, parallel=max(1, int(threads)))
        d2 = d2[:, y0 - a:y1 - a]
        d2[d2 > R * R] = cap
        out[:, y0:y1] = d2
    return out


def edge_weight_lut(expansion: float, soft_edge: float, cap: int) -> np.ndarray:
    """Weight for every squared distance ``0..cap`` (float32 lookup table).

    ``w = 1`` for ``d <= N``; ``w = 0.5 (1 + cos(pi (d - N) / W))`` for ``N < d < N + W``;
    ``w = 0`` beyond (doc section 3, step 3). ``d = sqrt(index)``.
    """
    d = np.sqrt(np.arange(int(cap) + 1, dtype=np.float64))
    N, W = float(expansion), float(soft_edge)
    w = (d <= N).astype(np.float64)
    if W > 0:
        ramp = (d > N) & (d < N + W)
        w[ramp] = 0.5 * (1.0 + np.cos(math.pi * (d[ramp] - N) / W))
    return w.astype(np.float32)


def _filter_all_axes(a, func, size):
    u = a.view(np.uint8) if a.dtype == bool else a.astype(np.uint8)
    for ax in range(u.ndim):
        u = func(u, size=size, axis=ax, mode="constant", cval=0)
    return u.view(bool)


def cube_dilate(seg: ArrayLike, n: int) -> np.ndarray:
    """Dilation by a (2n+1)^3 cube with zero border: identical voxels to
    ``scipy.ndimage.binary_dilation(seg, np.ones((2n+1,)*3))`` (separable maximum filters)."""
    if n <= 0:
        return np.array(seg, dtype=bool)
    return _filter_all_axes(seg, ndi.maximum_filter1d, 2 * int(n) + 1)


def _erode3(seg):
    return _filter_all_axes(seg, ndi.minimum_filter1d, 3)


def open_close(seg: ArrayLike, iterations: int) -> np.ndarray:
    """``iterations`` rounds of ``binary_opening`` then ``binary_closing`` with a 3^3 cube and
    zero border (scipy defaults, the script's ``smooth_mask_boundary``); separable filters."""
    out = np.array(seg, dtype=bool)
    for _ in range(int(iterations)):
        out = cube_dilate(_erode3(out), 1)       # opening
        out = _erode3(cube_dilate(out, 1))       # closing
    return out


def blur_threshold(seg: ArrayLike, sigma: float, threshold: float,
                   slab: int = 32) -> np.ndarray:
    """``scipy.ndimage.gaussian_filter(seg.astype(float32), sigma) > threshold``, computed in
    z-slabs with a halo of the filter radius (identical voxels, float32 as scipy keeps it).

    The caller passes either the whole volume or a crop with at least ``4 sigma + 1`` empty
    voxels between the mask and every crop face that is not a volume face.
    """
    seg = np.asarray(seg, dtype=bool)
    r = int(GAUSS_TRUNCATE * float(sigma) + 0.5)
    nz = seg.shape[0]
    out = np.zeros(seg.shape, dtype=bool)
    for z0 in range(0, nz, slab):
        z1 = min(nz, z0 + slab)
        a, b = max(0, z0 - r), min(nz, z1 + r)
        if not seg[a:b].any():
            continue
        blurred = ndi.gaussian_filter(seg[a:b].astype(np.float32), sigma=sigma)
        out[z0:z1] = blurred[z0 - a:z1 - a] > threshold
    return out
