"""Where the noise fill keeps the tomogram: the blend weights of a mask (:class:`FillGeometry`,
stored on the mask's bounding box), the binarised crop they are computed on, and the default
(cryoprocs) mode's geometry (:func:`prepare_geometry`): threshold, optional smoothing, exact
Euclidean (or Gaussian) expansion and a cosine soft edge.
"""
import math
import time
from typing import Callable, Optional, Sequence, Tuple, Union

import numpy as np
from numpy.typing import ArrayLike

from .morphology import (GAUSS_TRUNCATE, blur_threshold, edge_weight_lut, open_close,
                         truncated_sq_edt)
from .params import NoiseFillError, NoiseFillParams, gaussian_expansion_distance

__all__ = ["SLAB_VOXELS", "FillGeometry", "BinarisedCrop", "binarised_crop", "prepare_geometry",
           "default_slab", "scan_mask", "grow", "load_crop", "mask_max"]

SLAB_VOXELS = 1 << 22               # output slab size (voxels) unless given


def default_slab(shape: Sequence[int]) -> int:
    """Planes per slab: about :data:`SLAB_VOXELS` voxels."""
    return max(1, SLAB_VOXELS // (shape[1] * shape[2]))


class FillGeometry:
    """The blend weights of one tomogram, stored on the mask's bounding box.

    ``values`` (uint16 squared distances, or uint8 0/1) covers ``region`` = ``(z0, z1, y0,
    y1, x0, x1)``; ``lut[values]`` is the segmentation weight (1 keeps, 0 fills) and voxels
    outside the region have weight 0. With ``invert`` the final weight is ``1 - w``.
    """

    def __init__(self, shape: Sequence[int], region: Sequence[int], values: np.ndarray,
                 lut: ArrayLike, invert: bool = False, counts: Optional[dict] = None,
                 preview_mask: Optional[Tuple[Tuple[int, ...], np.ndarray]] = None) -> None:
        self.shape = tuple(shape)
        self.region = tuple(int(v) for v in region)
        self.values = values
        self.lut = np.asarray(lut, dtype=np.float32)
        self.invert = bool(invert)
        self.counts = counts or {}
        self.preview_mask = preview_mask
        self._zero = self.lut == 0

    def _region_slab(self, z0, z1):
        rz0, rz1, ry0, ry1, rx0, rx1 = self.region
        a, b = max(z0, rz0), min(z1, rz1)
        if a >= b:
            return None
        return a, b, self.values[a - rz0:b - rz0]

    def seg_weight(self, z0: int, z1: int) -> Optional[np.ndarray]:
        """Segmentation weight (before ``invert``), float32 ``(z1-z0, ny, nx)``, or None
        when the whole slab has weight 0."""
        hit = self._region_slab(z0, z1)
        if hit is None:
            return None
        a, b, vals = hit
        rz0, rz1, ry0, ry1, rx0, rx1 = self.region
        w = np.zeros((z1 - z0,) + self.shape[1:], dtype=np.float32)
        w[a - z0:b - z0, ry0:ry1, rx0:rx1] = self.lut[vals]
        return w

    def outside(self, z0: int, z1: int, step: int = 1) -> np.ndarray:
        """bool ``[z0:z1:step]`` slab: True where the segmentation weight is 0 (the
        voxels the noise statistics come from)."""
        zs = list(range(z0, z1, step))
        out = np.ones((len(zs),) + self.shape[1:], dtype=bool)
        rz0, rz1, ry0, ry1, rx0, rx1 = self.region
        for i, z in enumerate(zs):
            if rz0 <= z < rz1:
                out[i, ry0:ry1, rx0:rx1] = self._zero[self.values[z - rz0]]
        return out

    def weight(self, z0: int, z1: int) -> Union[np.ndarray, float]:
        """Final blend weight ``(z1-z0, ny, nx)`` float32 (after ``invert``), or the scalars
        0.0 / 1.0 when the whole slab has that weight."""
        w = self.seg_weight(z0, z1)
        if w is None:
            return 1.0 if self.invert else 0.0
        if self.invert:
            np.subtract(1.0, w, out=w)
        return w

    def nbytes(self) -> int:
        return int(self.values.nbytes)


def scan_mask(mask: ArrayLike, binarize: Callable,
              slab: int) -> Tuple[Optional[Tuple[int, ...]], int]:
    """bbox ``(z0, z1, y0, y1, x0, x1)`` of the binarised mask and its voxel count."""
    nz, ny, nx = mask.shape
    lo, hi = [None] * 3, [None] * 3
    count = 0
    for z0 in range(0, nz, slab):
        z1 = min(nz, z0 + slab)
        b = binarize(mask[z0:z1])
        c = int(np.count_nonzero(b))
        if not c:
            continue
        count += c
        zz = np.flatnonzero(b.any(axis=(1, 2)))
        yy = np.flatnonzero(b.any(axis=(0, 2)))
        xx = np.flatnonzero(b.any(axis=(0, 1)))
        cand_lo = (z0 + zz[0], yy[0], xx[0])
        cand_hi = (z0 + zz[-1] + 1, yy[-1] + 1, xx[-1] + 1)
        lo = [c_ if l_ is None else min(l_, c_) for l_, c_ in zip(lo, cand_lo)]
        hi = [c_ if h_ is None else max(h_, c_) for h_, c_ in zip(hi, cand_hi)]
    if count == 0:
        return None, 0
    return (lo[0], hi[0], lo[1], hi[1], lo[2], hi[2]), count


def grow(bbox: Sequence[int], margin: int, shape: Sequence[int]) -> Tuple[int, ...]:
    """``bbox`` grown by ``margin`` on every side, clipped to ``shape``."""
    z0, z1, y0, y1, x0, x1 = bbox
    m = int(margin)
    return (max(0, z0 - m), min(shape[0], z1 + m), max(0, y0 - m), min(shape[1], y1 + m),
            max(0, x0 - m), min(shape[2], x1 + m))


def load_crop(mask: ArrayLike, binarize: Callable, crop: Sequence[int], slab: int) -> np.ndarray:
    """The binarised mask on ``crop`` (bool), read slab by slab."""
    z0, z1, y0, y1, x0, x1 = crop
    out = np.empty((z1 - z0, y1 - y0, x1 - x0), dtype=bool)
    for a in range(z0, z1, slab):
        b = min(z1, a + slab)
        out[a - z0:b - z0] = binarize(mask[a:b])[:, y0:y1, x0:x1]
    return out


def mask_max(mask: ArrayLike, slab: int) -> float:
    """Maximum of a mask, read slab by slab."""
    m = None
    for z0 in range(0, mask.shape[0], slab):
        v = np.asarray(mask[z0:z0 + slab]).max()
        m = v if m is None else max(m, v)
    return m


class BinarisedCrop:
    """The binarised mask on its bounding box grown by a margin (``region`` = ``(z0, z1, y0,
    y1, x0, x1)``), with the counts and details for the report. The geometry steps replace
    ``seg`` or set it to None once it is no longer needed (it can be hundreds of MB)."""

    def __init__(self, seg: Optional[np.ndarray], region: Tuple[int, ...], counts: dict,
                 preview: Optional[Tuple[Tuple[int, ...], np.ndarray]], info: dict) -> None:
        self.seg, self.region, self.counts, self.preview, self.info = \
            seg, region, counts, preview, info


def binarised_crop(mask: ArrayLike, binarize: Callable, rule: str, margin: int,
                   slab: int) -> BinarisedCrop:
    """Binarise ``mask`` slab by slab with ``binarize`` (described by ``rule`` in messages) and
    load it on its bounding box grown by ``margin`` voxels.

    Raises
    ------
    NoiseFillError
        no voxel is inside (names the rule and the mask maximum).
    """
    shape = tuple(int(s) for s in mask.shape)
    bbox, count = scan_mask(mask, binarize, slab)
    if bbox is None:
        mx = mask_max(mask, slab)
        raise NoiseFillError("no mask voxel is inside after thresholding (%s; mask maximum %s)"
                             % (rule, mx))
    counts = {"mask_voxels": count, "binarisation": rule}
    crop = grow(bbox, margin, shape)
    seg = load_crop(mask, binarize, crop, slab)
    zc = shape[0] // 2 - crop[0]
    preview = (crop, seg[zc].copy()) if 0 <= zc < seg.shape[0] else None
    return BinarisedCrop(seg, crop, counts, preview, {"crop": crop, "crop_voxels": int(seg.size)})


def prepare_geometry(mask: ArrayLike, params: NoiseFillParams, threads: int = 1,
                     slab: Optional[int] = None) -> FillGeometry:
    """The default (cryoprocs) mode: binarise (``mask > threshold``), smooth and expand a
    mask; return its :class:`FillGeometry`. (The parity mode has its own,
    :func:`cryoprocs.kernels.noisefill.parity.prepare_geometry`.)

    Parameters
    ----------
    mask : array-like
        ``[z, y, x]`` mask or label map of any real dtype (slabs are read with ``[z0:z1]``).
    params : NoiseFillParams
        resolved parameters.

    Raises
    ------
    NoiseFillError
        no voxel is inside the mask after thresholding (names the threshold and the maximum).
    """
    p = params
    shape = tuple(int(s) for s in mask.shape)
    slab = slab or default_slab(shape)
    t0 = time.time()
    thr = float(p.threshold)

    def binarize(a):
        return np.asarray(a) > thr
    c = binarised_crop(mask, binarize, "mask > %g" % thr, _margin(p), slab)
    if p.smooth_iterations:
        c.seg = open_close(c.seg, p.smooth_iterations)
        c.counts["smoothed_voxels"] = int(np.count_nonzero(c.seg))
    if p.expansion_mode == "euclidean" and p.boundary_sigma == 0:
        values, lut = _distance_weights(c, p, threads)
    else:
        values, lut = _hard_mask_weights(c, p, threads)
    geo = FillGeometry(shape, c.region, values, lut, invert=p.invert, counts=c.counts,
                       preview_mask=c.preview)
    c.info["seconds"] = time.time() - t0
    geo.info = c.info
    return geo


def _margin(p):
    """Voxels around the mask's bounding box that the smoothing, expansion, boundary blur and
    soft edge can reach (plus the blur halos)."""
    k = p.smooth_iterations
    rb = int(GAUSS_TRUNCATE * p.boundary_sigma + 0.5) if p.boundary_sigma > 0 else 0
    Wc = int(math.ceil(float(p.soft_edge)))
    if p.expansion_mode == "euclidean":
        reach = p.expansion
    else:
        reach = int(GAUSS_TRUNCATE * p.sigma + 0.5) + 2
    return (k + 2 if k else 0) + reach + (rb + 2 if rb else 0) + Wc + 1


def _distance_weights(c, p, threads):
    """One exact distance to N + W: the soft edge is a lookup on the squared distance."""
    W = float(p.soft_edge)
    R = p.expansion + int(math.ceil(W))
    values = truncated_sq_edt(c.seg, R, threads)
    c.seg = None
    lut = edge_weight_lut(p.expansion, W, (R + 1) ** 2)
    c.counts["expanded_voxels"] = int(np.count_nonzero(values <= p.expansion ** 2))
    c.info["expansion_rule"] = "Euclidean distance <= %d px" % p.expansion
    return values, lut


def _hard_mask_weights(c, p, threads):
    """The expanded 0/1 mask (Gaussian rule, or Euclidean then a boundary blur), then the
    soft edge as a distance from it."""
    W = float(p.soft_edge)
    Wc = int(math.ceil(W))
    if p.expansion_mode == "gaussian":
        hard = blur_threshold(c.seg, p.sigma, p.gaussian_threshold)
        c.info["expansion_rule"] = ("Gaussian blur sigma %g px > %.4g (flat boundary moves "
                                    "%.2f px)" % (p.sigma, p.gaussian_threshold,
                                                  gaussian_expansion_distance(
                                                      p.sigma, p.gaussian_threshold)))
    else:
        d2 = truncated_sq_edt(c.seg, p.expansion, threads)
        hard = d2 <= p.expansion ** 2
        del d2
        c.info["expansion_rule"] = "Euclidean distance <= %d px" % p.expansion
    c.seg = None
    if p.boundary_sigma > 0:
        hard = blur_threshold(hard, p.boundary_sigma, 0.5)
    c.counts["expanded_voxels"] = int(np.count_nonzero(hard))
    if Wc:
        return truncated_sq_edt(hard, Wc, threads), edge_weight_lut(0, W, (Wc + 1) ** 2)
    return hard.view(np.uint8), np.array([0.0, 1.0])
