"""The TomoPANDA parity mode of the noise fill: the voxels of the script
``scripts/extract_masked_tomogram.py`` (GiantFurosemide/TomoPANDA, commit 8852acc; re-stated
from its behaviour in docs/noise-fill.md, not copied), computed on the mask's bounding box and
in slabs:

* its binarisation: ``mask / 255 > 0.5`` when the mask's maximum exceeds 1, else
  ``mask > 0.5``;
* its expansion: a (2N+1)^3 cube for N <= 10 unless ``fast``, else the Euclidean ball;
* its boundary blur (Gaussian ``boundary_sigma``, then ``> 0.5``) and its 3^3 opening and
  closing (``smooth_iterations``), in that order;
* its noise, ``np.random.normal(background_value, noise_level * std(tomogram))`` from the
  legacy ``RandomState(seed)`` stream (the script seeds the global one with 42), drawn slab
  after slab in z order (the same stream as one whole-volume draw) and cast to the
  tomogram's dtype;
* its hard blend ``tomo * m + noise * (1 - m)``.

Shared with the default mode: the binarised crop, :class:`~.geometry.FillGeometry`, the
morphology and the report.
"""
import time
from typing import Callable, Optional

import numpy as np
from numpy.typing import ArrayLike

from .geometry import FillGeometry, binarised_crop, default_slab, mask_max
from .morphology import GAUSS_TRUNCATE, blur_threshold, cube_dilate, open_close, truncated_sq_edt
from .params import NoiseFillParams
from .report import finish_report, geometry_report, preview_planes, slab_stats

__all__ = ["prepare_geometry", "noise_fill"]


def prepare_geometry(mask: ArrayLike, params: NoiseFillParams, threads: int = 1,
                     slab: int = None) -> FillGeometry:
    """The script's expanded 0/1 mask as a :class:`FillGeometry` (weights 0 or 1).

    Raises
    ------
    NoiseFillError
        no voxel is inside the mask after the script's binarisation.
    """
    p = params
    shape = tuple(int(s) for s in mask.shape)
    slab = slab or default_slab(shape)
    t0 = time.time()
    scale = bool(mask_max(mask, slab) > 1.0)

    def binarize(a):
        m = np.asarray(a).astype(np.float32)
        if scale:
            m = m / 255.0
        return m > 0.5
    rule = "script: (mask%s) > 0.5" % (" / 255" if scale else "")
    k = p.smooth_iterations
    rb = int(GAUSS_TRUNCATE * p.boundary_sigma + 0.5) if p.boundary_sigma > 0 else 0
    c = binarised_crop(mask, binarize, rule, p.expansion + rb + k + 2, slab)
    N = p.expansion
    if p.fast or N > 10:
        d2 = truncated_sq_edt(c.seg, N, threads)
        hard = d2 <= N * N
        del d2
        c.info["expansion_rule"] = "Euclidean ball (distance <= %d px)" % N
    else:
        hard = cube_dilate(c.seg, N)
        c.info["expansion_rule"] = "cube %d^3 (Chebyshev distance <= %d px)" % (2 * N + 1, N)
    c.seg = None
    if p.boundary_sigma > 0:
        hard = blur_threshold(hard, p.boundary_sigma, 0.5)
    if k:
        hard = open_close(hard, k)
    c.counts["expanded_voxels"] = int(np.count_nonzero(hard))
    geo = FillGeometry(shape, c.region, hard.view(np.uint8), np.array([0.0, 1.0]),
                       counts=c.counts, preview_mask=c.preview)
    c.info["seconds"] = time.time() - t0
    geo.info = c.info
    return geo


def noise_fill(tomo: ArrayLike, mask: ArrayLike, p: NoiseFillParams, write: Callable,
               write_weight: Optional[Callable], threads: int, slab: int, preview: bool) -> dict:
    """The parity mode of :func:`cryoprocs.kernels.noisefill.noise_fill` (resolved parameters,
    checked shapes); slabs are written in z order."""
    shape = tuple(int(s) for s in tomo.shape)
    t_start = time.time()
    geo = prepare_geometry(mask, p, threads, slab)
    report = geometry_report(shape, p, geo)
    t1 = time.time()
    full = tomo.full() if hasattr(tomo, "full") else np.asarray(tomo)
    tomo_std = np.std(full)                # the script: np.std of the whole tomogram
    if hasattr(tomo, "release_all"):
        tomo.release_all()
    noise_sd = float(p.noise_level) * tomo_std
    report.update(noise_stats="parity (script)", stats_std=float(tomo_std))
    report["noise_mean"] = float(p.background_value)
    report["noise_std"] = float(noise_sd)
    report["stats_seconds"] = time.time() - t1
    t2 = time.time()
    parts, preview_data = _blend(tomo, geo, p, noise_sd, write, write_weight, slab, preview)
    report["fill_seconds"] = time.time() - t2
    return finish_report(report, parts, preview_data, preview, t_start)


def _blend(tomo, geo, p, noise_sd, write, write_weight, slab, preview):
    shape = geo.shape
    zc = shape[0] // 2
    rs = np.random.RandomState(int(p.seed))
    parts, preview_data = [], {}
    for z0 in range(0, shape[0], slab):
        z1 = min(shape[0], z0 + slab)
        t = np.asarray(tomo[z0:z1])
        n = rs.normal(p.background_value, noise_sd, (z1 - z0,) + shape[1:]).astype(t.dtype)
        m = geo.seg_weight(z0, z1)
        if m is None:
            m = np.zeros(t.shape, dtype=np.float32)
        out = (t * m + n * (1.0 - m)).astype(np.float32)
        parts.append(slab_stats(t, out, m))
        if z0 <= zc < z1 and preview:
            preview_data = preview_planes(t[zc - z0], out[zc - z0], m[zc - z0], geo)
        write(z0, out)
        if write_weight is not None:
            write_weight(z0, m)
    return parts, preview_data
