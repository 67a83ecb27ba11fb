"""The noise fill (:func:`noise_fill`) in its default (cryoprocs) mode: noise with the mean and
standard deviation of the tomogram outside the expanded soft mask (or the robust, global or
script rule), white or with the background's power spectrum, drawn per z-plane from seeded
streams so that the output depends neither on the slab size nor on the number of threads, and
the blend ``out = w * tomo + (1 - w) * noise``. The TomoPANDA parity mode is
:mod:`.parity`; :func:`noise_fill` hands parity parameters to it.
"""
import time
from concurrent.futures import ThreadPoolExecutor
from typing import Any, Callable, Optional

import numpy as np
from numpy.typing import ArrayLike

from . import parity
from .geometry import default_slab, prepare_geometry
from .noise import Moments, SpectralNoise, plane_noise, robust_stats, sample_strides
from .params import NoiseFillError, NoiseFillParams
from .report import finish_report, geometry_report, preview_planes, slab_stats, uniform_stats

__all__ = ["noise_fill", "noise_fill_array"]


def noise_fill(tomo: ArrayLike, mask: ArrayLike, params: NoiseFillParams, write: Callable,
               write_weight: Optional[Callable] = None, threads: int = 1,
               slab: Optional[int] = None, preview: bool = True) -> dict:
    """Keep ``tomo`` inside the expanded mask and fill the rest with matched noise.

    Parameters
    ----------
    tomo : array-like
        ``[z, y, x]`` tomogram, any real dtype; read in slabs with ``tomo[z0:z1]`` (numpy
        array, memmap or :class:`~cryoprocs.convert.mrc.MappedMrc`). Parity mode
        also calls ``np.std`` on ``tomo.full()`` (or the array itself), as the script does.
    mask : array-like
        ``[z, y, x]`` mask or label map of the same shape.
    params : NoiseFillParams
        what to do (:meth:`NoiseFillParams.resolved` is applied here).
    write : callable
        ``write(z0, slab)`` receives every float32 output slab exactly once (from worker
        threads when ``threads > 1``, in any order; in z order with ``parity``).
    write_weight : callable, optional
        ``write_weight(z0, w)`` receives the final blend weight (1 = tomogram, 0 = noise).
    threads : int
        worker threads (slabs and distance chunks in parallel).
    slab : int, optional
        planes per output slab (default about 8 M voxels); the output does not depend on it.
    preview : bool
        keep the central z-slice (before, after, weight, binarised mask) in the report.

    Returns
    -------
    dict
        report: voxel counts (mask, expanded, ratio, kept, soft edge, filled; exact),
        kept/filled mean and std of the output and mean and std of the replaced tomogram
        voxels (from every second row and column when planes have >= 512^2 px), noise mean
        and std, statistics rule, timings, and ``preview`` arrays when asked.

    Raises
    ------
    NoiseFillError
        shape mismatch, empty mask, nothing left to take statistics from, bad parameters.
    """
    p = params.resolved()
    shape = _check_shapes(tomo, mask)
    threads = max(1, int(threads))
    slab = int(slab or default_slab(shape))
    if p.parity:
        return parity.noise_fill(tomo, mask, p, write, write_weight, threads, slab, preview)
    t_start = time.time()
    geo = prepare_geometry(mask, p, threads, slab)
    report = geometry_report(shape, p, geo)
    t1 = time.time()
    mean, std, sinfo = _noise_stats(tomo, geo, p, slab)
    report.update(sinfo)
    noise_mean, noise_sd = mean, p.noise_level * std
    report.update(noise_stats=p.noise_stats, stats_mean=mean, stats_std=std)
    report["noise_mean"] = float(noise_mean)
    report["noise_std"] = float(noise_sd)
    spectral = None
    if p.spectral:
        spectral, slab = _spectral_noise(tomo, geo, p.seed, slab, report)
    report["stats_seconds"] = time.time() - t1
    t2 = time.time()
    blend = _SlabBlend(tomo, geo, p.seed, noise_mean, noise_sd, spectral, write, write_weight,
                       slab, preview)
    parts, preview_data = blend.run(threads)
    report["fill_seconds"] = time.time() - t2
    return finish_report(report, parts, preview_data, preview, t_start)


def _check_shapes(tomo, mask):
    shape = tuple(int(s) for s in tomo.shape)
    if len(shape) != 3:
        raise NoiseFillError("the tomogram must be 3D [z, y, x], got shape %s" % (shape,))
    if tuple(mask.shape) != shape:
        raise NoiseFillError("mask shape %s (z, y, x) differs from the tomogram shape %s"
                             % (tuple(mask.shape), shape))
    return shape


def _noise_stats(tomo, geo, p, slab):
    """Noise mean/std (before ``noise_level``) and a description, from a strided sample."""
    shape = geo.shape
    sz, sy, sx = sample_strides(shape)
    outside_vals, all_m = [], Moments()
    need_out = p.noise_stats in ("outside", "robust")
    planes = max(sz, (slab // sz) * sz)
    for z0 in range(0, shape[0], planes):
        z1 = min(shape[0], z0 + planes)
        t = np.asarray(tomo[z0:z1:sz])[:, ::sy, ::sx]
        if need_out:
            o = geo.outside(z0, z1, sz)[:, ::sy, ::sx]
            outside_vals.append(t[o].astype(np.float32))
        else:
            all_m = all_m + Moments.of(t)
    info = {"sample_strides": (sz, sy, sx)}
    if need_out:
        v = np.concatenate(outside_vals) if outside_vals else np.zeros(0, np.float32)
        info["sample_voxels"] = int(v.size)
        if v.size < 16:
            raise NoiseFillError(
                "only %d sampled tomogram voxels lie outside the expanded mask (expansion %s "
                "px, soft edge %s px): nothing to take noise statistics from; reduce the "
                "expansion or use the 'global' noise statistics" % (v.size, p.expansion,
                                                                     p.soft_edge))
        if p.noise_stats == "robust":
            mean, std = robust_stats(v)
        else:
            v64 = v.astype(np.float64)
            mean, std = float(v64.mean()), float(v64.std())
        return mean, std, info
    info["sample_voxels"] = int(all_m.n)
    mean, std = all_m.result()
    if p.noise_stats == "parity":
        mean = float(p.background_value)
    return mean, std, info


def _background_patches(tomo, geo, size=32, max_patches=64):
    """Up to ``max_patches`` cubic ``size``^3 float32 patches lying entirely outside the
    expanded mask, on a half-overlapping grid, spread evenly over the candidates."""
    nz, ny, nx = geo.shape
    P = int(min(size, nz, ny, nx))
    P -= P % 2
    if P < 8:
        return []
    st = P // 2
    good = []
    for z in range(0, nz - P + 1, st):
        o2 = geo.outside(z, z + P).all(axis=0)           # (ny, nx): outside on all P planes
        for y in range(0, ny - P + 1, st):
            row = o2[y:y + P]
            for x in range(0, nx - P + 1, st):
                if row[:, x:x + P].all():
                    good.append((z, y, x))
    if len(good) > max_patches:
        pick = np.linspace(0, len(good) - 1, max_patches).round().astype(int)
        good = [good[i] for i in pick]
    patches = []
    for z in sorted({g[0] for g in good}):
        slab = np.asarray(tomo[z:z + P], dtype=np.float32)
        patches += [slab[:, y:y + P, x:x + P].copy() for (zz, y, x) in good if zz == z]
    return patches


def _spectral_noise(tomo, geo, seed, slab, report):
    """The background's spectrum from patches outside the expanded mask (None: white noise,
    with a warning), and the slab size rounded to whole noise blocks."""
    patches = _background_patches(tomo, geo)
    spectral = SpectralNoise.estimate(patches, seed)
    if spectral is not None:
        spectral.nz = geo.shape[0]
        B = SpectralNoise.BLOCK
        slab = B * max(1, int(round(slab / B)))       # whole noise blocks per slab
    report["spectral_patches"] = len(patches)
    report["spectral_kernel_px"] = None if spectral is None else spectral.kernel.shape[0]
    if spectral is None:
        report["warnings"] = ["no background patch found for the spectrum; white noise used"]
    return spectral, slab


class _SlabBlend:
    """The blend of every output slab, ``out = w * tomo + (1 - w) * noise`` (kept voxels
    bit-exact), in worker threads; each slab's statistics and the central slice's preview."""

    def __init__(self, tomo, geo, seed, noise_mean, noise_sd, spectral, write, write_weight,
                 slab, preview):
        self.tomo, self.geo, self.seed, self.spectral = tomo, geo, seed, spectral
        self.sd32, self.mean32 = np.float32(noise_sd), np.float32(noise_mean)
        self.write, self.write_weight = write, write_weight
        self.slab, self.preview = slab, preview
        self.shape = geo.shape

    def noise(self, z0, z1):
        """Noise of planes ``z0..z1-1`` (float32), scaled to the noise mean and std."""
        if self.spectral is not None:
            n = self.spectral.generate(z0, z1, self.shape[1:], workers=1)
        else:
            n = np.empty((z1 - z0,) + self.shape[1:], dtype=np.float32)
            for i, z in enumerate(range(z0, z1)):
                plane_noise(self.seed, z, self.shape[1:], out=n[i])
        n *= self.sd32
        n += self.mean32
        return n

    def __call__(self, z0):
        z1 = min(self.shape[0], z0 + self.slab)
        t = np.asarray(self.tomo[z0:z1], dtype=np.float32)
        n = self.noise(z0, z1)
        w = self.geo.weight(z0, z1)
        if np.isscalar(w):
            out = n if w == 0.0 else t.copy()
            st = uniform_stats(t, out, w)
        else:
            keep = w == 1
            out = np.subtract(t, n)
            out *= w
            out += n
            np.copyto(out, t, where=keep)      # kept voxels bit-exact
            st = slab_stats(t, out, w, keep)
        zc = self.shape[0] // 2
        in_preview = self.preview and z0 <= zc < z1
        wa = None
        if self.write_weight is not None or in_preview:
            wa = w if not np.isscalar(w) else np.full(t.shape, w, dtype=np.float32)
        pv = preview_planes(t[zc - z0], out[zc - z0], wa[zc - z0], self.geo) \
            if in_preview else None
        self.write(z0, out)
        if self.write_weight is not None:
            self.write_weight(z0, wa)
        return st, pv

    def run(self, threads):
        """``(per-slab statistics, preview)`` after writing every slab once."""
        nzs = list(range(0, self.shape[0], self.slab))
        parts, preview_data = [], {}
        if threads > 1 and len(nzs) > 1:
            with ThreadPoolExecutor(threads) as pool:
                # bounded in-flight work: map over windows of `threads` slabs
                for i in range(0, len(nzs), threads):
                    for st, pv in pool.map(self, nzs[i:i + threads]):
                        parts.append(st)
                        preview_data = pv or preview_data
        else:
            for z0 in nzs:
                st, pv = self(z0)
                parts.append(st)
                preview_data = pv or preview_data
        return parts, preview_data


def noise_fill_array(tomo: ArrayLike, mask: ArrayLike, params: NoiseFillParams,
                     **kwargs: Any) -> tuple:
    """In-memory convenience: returns ``(out, report)`` with ``out`` float32 ``[z, y, x]``.
    Same arguments as :func:`noise_fill` except ``write``; ``weight=True`` in ``kwargs``
    also returns the blend weight as a third item."""
    want_w = kwargs.pop("weight", False)
    out = np.empty(tomo.shape, dtype=np.float32)
    wgt = np.empty(tomo.shape, dtype=np.float32) if want_w else None

    def write(z0, s):
        out[z0:z0 + s.shape[0]] = s

    def write_w(z0, s):
        wgt[z0:z0 + s.shape[0]] = s

    rep = noise_fill(tomo, mask, params, write, write_w if want_w else None, **kwargs)
    return (out, rep, wgt) if want_w else (out, rep)
