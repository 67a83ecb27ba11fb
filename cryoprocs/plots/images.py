"""Array helpers of the result figures (NumPy only): display windows, central slices,
montages, evenly spaced selections and sphere sections.

Arrays are ``[z, y, x]`` volumes and ``[y, x]`` images (x = MRC column); row 0 of an image
is y = 0 (figures show it at the top, as MRC viewers do).
"""
import numpy as np

__all__ = ["display_range", "central_slices", "orthoslices_at", "montage", "spread_indices",
           "sphere_section_radius", "kept_region"]


def display_range(*arrays, low=1.0, high=99.0):
    """``(vmin, vmax)``: the ``low``/``high`` percentiles of the finite values of all
    ``arrays`` together (a common grey window); ``(0, 1)`` when there is none, and a
    non-empty interval when all values are equal."""
    vals = [np.asarray(a, dtype=np.float64).ravel() for a in arrays if np.size(a)]
    vals = [v[np.isfinite(v)] for v in vals]
    vals = [v for v in vals if v.size]
    if not vals:
        return 0.0, 1.0
    allv = np.concatenate(vals)
    lo, hi = np.percentile(allv, [low, high])
    if not hi > lo:
        lo, hi = float(allv.min()), float(allv.max())
    if not hi > lo:
        hi = lo + 1.0
    return float(lo), float(hi)


def orthoslices_at(vol, z, y, x):
    """``{"XY": vol[z], "XZ": vol[:, y, :], "YZ": vol[:, :, x]}`` as float32 copies of a
    ``[z, y, x]`` array (or memory map); XZ and YZ have z as rows."""
    v = vol
    return {"XY": np.asarray(v[z], dtype=np.float32),
            "XZ": np.asarray(v[:, y, :], dtype=np.float32),
            "YZ": np.asarray(v[:, :, x], dtype=np.float32)}


def central_slices(vol):
    """:func:`orthoslices_at` the voxel ``size // 2`` of each axis (Xmipp's mask centre)."""
    nz, ny, nx = np.shape(vol)
    return orthoslices_at(vol, nz // 2, ny // 2, nx // 2)


def spread_indices(n, k):
    """At most ``k`` indices of ``range(n)``, evenly spread and including the first and last."""
    if n <= 0 or k <= 0:
        return []
    if k >= n:
        return list(range(n))
    if k == 1:
        return [0]
    return sorted({int(round(i * (n - 1) / (k - 1))) for i in range(k)})


def montage(images, ncols=None, gap=1, fill=np.nan):
    """Tile ``[n, y, x]`` images row by row into one 2D float32 array.

    Parameters
    ----------
    images : array_like (n, y, x)
    ncols : int, optional
        Tiles per row (default ``ceil(sqrt(n))``).
    gap : int
        Pixels between tiles, filled with ``fill`` (NaN shows as the axes background).

    Returns
    -------
    (ndarray, list)
        The montage and the ``(row0, col0)`` corner of each tile.
    """
    imgs = np.asarray(images, dtype=np.float32)
    if imgs.ndim == 2:
        imgs = imgs[None]
    n, h, w = imgs.shape
    ncols = int(ncols or max(1, int(np.ceil(np.sqrt(max(n, 1))))))
    nrows = max(1, int(np.ceil(n / ncols)))
    out = np.full((nrows * h + (nrows - 1) * gap, ncols * w + (ncols - 1) * gap), fill,
                  dtype=np.float32)
    corners = []
    for i in range(n):
        r, c = divmod(i, ncols)
        r0, c0 = r * (h + gap), c * (w + gap)
        out[r0:r0 + h, c0:c0 + w] = imgs[i]
        corners.append((r0, c0))
    return out, corners


def sphere_section_radius(radius, dz):
    """Radius of the circle where the plane at distance ``dz`` cuts a sphere of ``radius``
    (0 when the plane misses it)."""
    d2 = float(radius) ** 2 - float(dz) ** 2
    return float(np.sqrt(d2)) if d2 > 0 else 0.0


def kept_region(before, after, rtol=1e-6):
    """Voxels of a noise-filled slice that hold the input value (the region kept at weight
    1): ``|after - before| <= rtol * max|before|``. Blended soft-edge voxels and noise are
    outside it."""
    b = np.asarray(before, dtype=np.float64)
    a = np.asarray(after, dtype=np.float64)
    scale = float(np.nanmax(np.abs(b))) if b.size else 0.0
    return np.abs(a - b) <= rtol * max(scale, 1e-30)
