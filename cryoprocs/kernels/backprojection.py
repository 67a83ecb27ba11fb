"""Trilinear Fourier backprojection of 2D slices into a 3D half spectrum (RELION 5.0.1
``FourierBackprojection::backprojectSlice_backward`` with ``maxFreq``, in
src/jaz/tomography/projection/Fourier_backprojection.h, and the 2D interpolators
``Interpolation::linearXY_complex_FftwHalf_clip`` / ``linearXY_symmetric_FftwHalf_clip``).

For every voxel ``p = (x, y', z')`` of the half spectrum ``[z, y, x <= s/2]`` with
``x <= int(sqrt(maxFreq^2 - y'^2 - z'^2))`` and within the slab ``|n . p| < 1`` of the slice
(``n`` = last row of ``M = inv(A)^T``): ``q = M p``; if ``|q.z| < 1``, ``|q.x| < wh2`` and
``|q.y| < h2//2 + 1``, add ``(1 - |q.z|)`` times the bilinear interpolation of the slice at
``(q.x, q.y)`` (conjugated, at ``-q``, when ``q.x < 0``) to the data, and the same of the
weight slice to the weights. Interpolation follows RELION's float rounding: each product of a
double weight with a float sample is rounded to float, sums of floats are float.

Two implementations give the same numbers (to the order of double summation):

* :func:`backproject_numpy`: vectorised NumPy (one slice at a time; every voxel appears once
  per slice, so a plain fancy-index ``+=`` scatters without collisions).
* a numba-compiled loop (``njit(cache=True, nogil=True)``), used when numba is installed: the
  hot loop of a reconstruction (about 10^4 slices x 10^4 voxels for box 128) runs about 3x
  faster than the NumPy version (0.7 vs 2.1 ms per box-128 slice, and the whole
  benchmarks/bench_reconstruct.py run takes 13 s instead of 31 s, the target being 20 s).
  numba is optional; the cache lives in ``$NUMBA_CACHE_DIR`` (default
  ``$XDG_CACHE_HOME/cryoprocs/numba``).

Arrays: ``data`` ``(d, h, wh)`` complex128 and ``weight`` ``(d, h, wh)`` float64 (accumulated in
place); ``slices`` ``(n, h2, wh2)`` complex64; ``slice_weights`` ``(n, h2, wh2)`` float32;
``matrices`` ``(n, 3, 3)`` float64 (``M = inv(A)^T``); ``max_freq`` ``(n,)`` int.
"""
import logging
import os
from types import ModuleType
from typing import Optional

import numpy as np
from numpy.typing import ArrayLike

logger = logging.getLogger(__name__)

__all__ = ["backproject", "backproject_numpy", "numba_available", "numba_kernels",
           "BACKENDS"]

_NUMBA = None        # compiled function, False when numba is unavailable
BACKENDS = ("auto", "numba", "numpy")


def _default_cache_dir():
    base = os.environ.get("XDG_CACHE_HOME") or os.path.join(os.path.expanduser("~"), ".cache")
    return os.path.join(base, "cryoprocs", "numba")


def _load_numba():
    global _NUMBA
    if _NUMBA is not None:
        return _NUMBA
    if os.environ.get("CRYOPROCS_NO_NUMBA"):
        _NUMBA = False
        return _NUMBA
    if "NUMBA_CACHE_DIR" not in os.environ:
        d = _default_cache_dir()
        try:
            os.makedirs(d, exist_ok=True)
            os.environ["NUMBA_CACHE_DIR"] = d
        except OSError:          # pragma: no cover - unwritable home: numba picks a place
            pass
    try:
        from . import _numba_kernels as nb
        _NUMBA = nb
    except Exception as exc:      # ImportError, or numba failing to compile
        logger.info("numba backprojection unavailable (%s); using NumPy", exc)
        _NUMBA = False
    return _NUMBA


def numba_available() -> bool:
    """True when the compiled kernels can be used."""
    return bool(_load_numba())


def numba_kernels() -> Optional[ModuleType]:
    """The module of compiled kernels (kernels/_numba_kernels.py), or None without numba
    (or with ``$CRYOPROCS_NO_NUMBA`` set)."""
    return _load_numba() or None


def _check(data, weight, slices, slice_weights, matrices, max_freq):
    if data.dtype != np.complex128 or weight.dtype != np.float64:
        raise TypeError("accumulators must be complex128 and float64, got %s and %s"
                        % (data.dtype, weight.dtype))
    if data.shape != weight.shape or data.ndim != 3:
        raise ValueError("data %s and weight %s volumes must have the same 3D shape"
                         % (data.shape, weight.shape))
    n = slices.shape[0]
    if slice_weights.shape != slices.shape or matrices.shape != (n, 3, 3) \
            or max_freq.shape != (n,):
        raise ValueError("slices %s, weights %s, matrices %s and max_freq %s do not match"
                         % (slices.shape, slice_weights.shape, matrices.shape,
                            max_freq.shape))


def backproject(data: np.ndarray, weight: np.ndarray, slices: np.ndarray, slice_weights: np.ndarray,
                matrices: np.ndarray, max_freq: ArrayLike, backend: str = "auto") -> None:
    """Add slices to the half-spectrum accumulators ``data`` and ``weight`` (in place).

    Parameters
    ----------
    backend : {"auto", "numba", "numpy"}
        "auto" uses numba when available.

    Raises
    ------
    ValueError
        mismatched shapes; ``backend="numba"`` without numba.
    """
    slices = np.ascontiguousarray(slices, dtype=np.complex64)
    slice_weights = np.ascontiguousarray(slice_weights, dtype=np.float32)
    matrices = np.ascontiguousarray(matrices, dtype=np.float64).reshape(-1, 3, 3)
    max_freq = np.ascontiguousarray(max_freq, dtype=np.int64).reshape(-1)
    _check(data, weight, slices, slice_weights, matrices, max_freq)
    if slices.shape[0] == 0:
        return
    if backend not in BACKENDS:
        raise ValueError("backend must be one of %s, got %r" % (BACKENDS, backend))
    fn = _load_numba() if backend in ("auto", "numba") else False
    if backend == "numba" and not fn:
        raise ValueError("the numba backend was requested but numba is not available")
    if fn:
        fn.backproject_slices(data, weight, slices, slice_weights, matrices, max_freq)
    else:
        backproject_numpy(data, weight, slices, slice_weights, matrices, max_freq)


# ----------------------------------------------------------------------------- NumPy
def _f32(a):
    return a.astype(np.float32)


def _interp(slc, wsl, qx, qy):
    """RELION's bilinear FFTW-half interpolation of one complex slice and its weight at
    (qx, qy) arrays; float32 rounding as in tComplex<float> arithmetic. Returns float32
    (re, im, w)."""
    h2, wh2 = wsl.shape
    neg = qx < 0.0
    xd = np.where(neg, -qx, qx)
    yd = np.where(neg, -qy, qy)
    yd = np.where(yd < 0.0, yd + h2, yd)
    x0 = xd.astype(np.int64)
    y0 = yd.astype(np.int64)
    xf = xd - x0
    yf = yd - y0
    x0 = np.minimum(x0, wh2 - 1)
    x1 = x0 + 1
    x1 = np.where(x1 >= wh2, wh2 - 2, x1)
    y0 = np.clip(y0, 0, h2 - 1)
    y1 = (y0 + 1) % h2
    ax, bx = 1.0 - xf, xf
    ay, by = 1.0 - yf, yf
    re = slc.real
    im = slc.imag
    out = []
    for comp in (re, im):
        a00, a10 = comp[y0, x0], comp[y0, x1]
        a01, a11 = comp[y1, x0], comp[y1, x1]
        v0 = _f32(ax * a00) + _f32(bx * a10)           # float + float = float
        v1 = _f32(ax * a01) + _f32(bx * a11)
        out.append(_f32(ay * v0) + _f32(by * v1))
    re_v, im_v = out
    im_v = np.where(neg, -im_v, im_v)
    w00, w10 = wsl[y0, x0], wsl[y0, x1]
    w01, w11 = wsl[y1, x0], wsl[y1, x1]
    v0 = _f32(ax * w00 + bx * w10)                       # double sum, stored as float
    v1 = _f32(ax * w01 + bx * w11)
    w_v = _f32(ay * v0) + _f32(by * v1)
    return re_v, im_v, w_v


def backproject_numpy(data: np.ndarray, weight: np.ndarray, slices: np.ndarray,
                      slice_weights: np.ndarray, matrices: np.ndarray, max_freq: ArrayLike) -> None:
    """NumPy implementation of :func:`backproject` (same arguments, no checks)."""
    d3, h3, wh3 = weight.shape
    n, h2, wh2 = slice_weights.shape
    zz = np.arange(d3, dtype=np.float64)
    zz = np.where(zz >= d3 // 2, zz - d3, zz)
    yy = np.arange(h3, dtype=np.float64)
    yy = np.where(yy >= h3 // 2, yy - h3, yy)
    ZZ = np.repeat(zz, h3)                    # row r = z * h3 + y
    YY = np.tile(yy, d3)
    R2 = YY * YY + ZZ * ZZ
    dflat = data.reshape(-1)
    wflat = weight.reshape(-1)
    ylim = h2 // 2 + 1
    for k in range(n):
        M = matrices[k]
        nx, ny, nz = M[2, 0], M[2, 1], M[2, 2]
        yz = ny * YY + nz * ZZ
        if nx == 0.0:
            inside = (yz > -1.0) & (yz < 1.0)
            x0 = np.zeros(yz.shape, np.int64)
            x1 = np.where(inside, wh3 - 1, -1).astype(np.int64)
        else:
            a0 = (-yz - 1.0) / nx
            a1 = (-yz + 1.0) / nx
            lo = np.minimum(a0, a1)
            hi = np.maximum(a0, a1)
            x0 = np.maximum(np.ceil(lo), 0).astype(np.int64)
            x1 = np.minimum(np.floor(hi), wh3 - 1).astype(np.int64)
        mf = float(max_freq[k])
        r2 = mf * mf - R2
        valid = r2 >= 0.0
        max_x = np.where(valid, np.sqrt(np.where(valid, r2, 0.0)), -1.0).astype(np.int64)
        max_x = np.where(valid, max_x, np.iinfo(np.int32).min)
        x1 = np.minimum(x1, max_x)
        cnt = np.maximum(x1 - x0 + 1, 0)
        rows = np.flatnonzero(cnt)
        if rows.size == 0:
            continue
        c_rows = cnt[rows]
        total = int(c_rows.sum())
        rep = np.repeat(rows, c_rows)
        starts = np.repeat(np.cumsum(c_rows) - c_rows, c_rows)
        x = (x0[rep] + (np.arange(total) - starts)).astype(np.float64)
        yv = YY[rep]
        zv = ZZ[rep]
        qx = M[0, 0] * x + M[0, 1] * yv + M[0, 2] * zv
        qy = M[1, 0] * x + M[1, 1] * yv + M[1, 2] * zv
        qz = M[2, 0] * x + M[2, 1] * yv + M[2, 2] * zv
        ok = (qz > -1.0) & (qz < 1.0) & (np.abs(qx) < wh2) & (np.abs(qy) < ylim)
        if not ok.any():
            continue
        qx, qy, qz = qx[ok], qy[ok], qz[ok]
        idx = rep[ok] * wh3 + x[ok].astype(np.int64)
        c = 1.0 - np.abs(qz)
        re_v, im_v, w_v = _interp(slices[k], slice_weights[k], qx, qy)
        dflat[idx] += c * re_v.astype(np.float64) + 1j * (c * im_v.astype(np.float64))
        wflat[idx] += c * w_v.astype(np.float64)
