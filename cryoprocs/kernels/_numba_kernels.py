"""numba-compiled loops of the reconstruction (imported only through
``backprojection.numba_kernels()``, which points ``NUMBA_CACHE_DIR`` at a writable folder
first):

* :func:`backproject_slices`: same arithmetic as ``backprojection.backproject_numpy`` (see
  that module for the algorithm and its RELION source);
* :func:`cut_crop_roll`: the fused box cutting (edge replication), RELION circle crop with
  background subtraction and FFT roll of ``kernels.reconstruct.prepare_boxes`` (same numbers
  as its NumPy path).
"""
import math

import numpy as np
from numba import njit


@njit(cache=True, nogil=True, fastmath=False)
def backproject_slices(data: np.ndarray, weight: np.ndarray, slices: np.ndarray,
                       slice_weights: np.ndarray, matrices: np.ndarray,
                       max_freq: np.ndarray) -> None:
    """:func:`cryoprocs.kernels.backprojection.backproject_numpy` compiled (same arguments,
    same arithmetic): adds the slices into ``data`` and ``weight`` in place."""
    d3, h3, wh3 = weight.shape

    n = slices.shape[0]
    h2 = slices.shape[1]
    wh2 = slices.shape[2]
    ylim = h2 // 2 + 1
    for k in range(n):
        m00 = matrices[k, 0, 0]
        m01 = matrices[k, 0, 1]
        m02 = matrices[k, 0, 2]
        m10 = matrices[k, 1, 0]
        m11 = matrices[k, 1, 1]
        m12 = matrices[k, 1, 2]
        nx = matrices[k, 2, 0]
        ny = matrices[k, 2, 1]
        nz = matrices[k, 2, 2]
        mf = float(max_freq[k])
        for z in range(d3):
            zz = float(z - d3) if z >= d3 // 2 else float(z)
            for y in range(h3):
                yy = float(y - h3) if y >= h3 // 2 else float(y)
                r2 = mf * mf - yy * yy - zz * zz
                if r2 < 0.0:
                    continue                    # RELION: (int) sqrt(<0) -> no voxel
                yz = ny * yy + nz * zz
                if nx == 0.0:
                    if yz > -1.0 and yz < 1.0:
                        x0 = 0
                        x1 = wh3 - 1
                    else:
                        continue
                else:
                    a0 = (-yz - 1.0) / nx
                    a1 = (-yz + 1.0) / nx
                    if a0 < a1:
                        x0 = int(math.ceil(a0))
                        x1 = int(math.floor(a1))
                    else:
                        x0 = int(math.ceil(a1))
                        x1 = int(math.floor(a0))
                    if x0 < 0:
                        x0 = 0
                    if x1 > wh3 - 1:
                        x1 = wh3 - 1
                max_x = int(math.sqrt(r2))
                if x1 > max_x:
                    x1 = max_x
                for x in range(x0, x1 + 1):
                    xf_ = float(x)
                    qx = m00 * xf_ + m01 * yy + m02 * zz
                    qy = m10 * xf_ + m11 * yy + m12 * zz
                    qz = nx * xf_ + ny * yy + nz * zz
                    if not (qz > -1.0 and qz < 1.0 and abs(qx) < wh2 and abs(qy) < ylim):
                        continue
                    c = 1.0 - abs(qz)
                    if qx >= 0.0:
                        xd = qx
                        yd = qy
                        conj = False
                    else:
                        xd = -qx
                        yd = -qy
                        conj = True
                    if yd < 0.0:
                        yd += h2
                    ix0 = int(xd)
                    iy0 = int(yd)
                    fx = xd - ix0
                    fy = yd - iy0
                    if ix0 >= wh2:
                        ix0 = wh2 - 1
                    ix1 = ix0 + 1
                    if ix1 >= wh2:
                        ix1 = wh2 - 2
                    if iy0 < 0:
                        iy0 = 0
                    elif iy0 >= h2:
                        iy0 = h2 - 1
                    iy1 = (iy0 + 1) % h2
                    ax = 1.0 - fx
                    ay = 1.0 - fy
                    s00 = slices[k, iy0, ix0]
                    s10 = slices[k, iy0, ix1]
                    s01 = slices[k, iy1, ix0]
                    s11 = slices[k, iy1, ix1]
                    # complex<float>: double x float products rounded to float, float sums
                    r0 = np.float32(ax * s00.real) + np.float32(fx * s10.real)
                    r1 = np.float32(ax * s01.real) + np.float32(fx * s11.real)
                    i0 = np.float32(ax * s00.imag) + np.float32(fx * s10.imag)
                    i1 = np.float32(ax * s01.imag) + np.float32(fx * s11.imag)
                    vr = np.float32(ay * r0) + np.float32(fy * r1)
                    vi = np.float32(ay * i0) + np.float32(fy * i1)
                    if conj:
                        vi = -vi
                    # real weights: double sums rounded to float, then as above
                    w0 = np.float32(ax * slice_weights[k, iy0, ix0]
                                    + fx * slice_weights[k, iy0, ix1])
                    w1 = np.float32(ax * slice_weights[k, iy1, ix0]
                                    + fx * slice_weights[k, iy1, ix1])
                    vw = np.float32(ay * w0) + np.float32(fy * w1)
                    data[z, y, x] += complex(c * float(vr), c * float(vi))
                    weight[z, y, x] += c * float(vw)


@njit(cache=True, nogil=True, fastmath=False)
def cut_crop_roll(image: np.ndarray, corners: np.ndarray, s0: int, weights: np.ndarray,
                  out_lo: np.ndarray, out_hi: np.ndarray, do_crop: bool,
                  out: np.ndarray) -> None:
    """``out[j]`` = box ``j`` of ``image`` (corner ``corners[j]`` = (x0, y0), pixels outside
    the image clamped to the edge), minus the double mean of its pixels outside the circle
    (row ``y``: columns ``< out_lo[y]`` and ``>= out_hi[y]``), times ``weights`` (double,
    rounded to float32), rolled by ``s0 // 2`` on both axes. Without ``do_crop`` the pixels
    are copied as they are."""
    H, W = image.shape
    half = s0 // 2
    n = corners.shape[0]
    row = np.empty(s0, dtype=np.float64)
    for j in range(n):
        x0 = corners[j, 0]
        y0 = corners[j, 1]
        inside = x0 >= 0 and y0 >= 0 and x0 + s0 <= W and y0 + s0 <= H
        mean = 0.0
        if do_crop:
            total = 0.0
            count = 0
            for y in range(s0):
                yy = min(max(y0 + y, 0), H - 1)
                if inside:
                    for x in range(out_lo[y]):
                        total += float(image[yy, x0 + x])
                    for x in range(out_hi[y], s0):
                        total += float(image[yy, x0 + x])
                else:
                    for x in range(out_lo[y]):
                        total += float(image[yy, min(max(x0 + x, 0), W - 1)])
                    for x in range(out_hi[y], s0):
                        total += float(image[yy, min(max(x0 + x, 0), W - 1)])
                count += out_lo[y] + s0 - out_hi[y]
            if count > 0:
                mean = total / count
        for y in range(s0):
            yy = min(max(y0 + y, 0), H - 1)
            ty = y - half if y >= half else y + half
            if inside:
                for x in range(s0):
                    row[x] = image[yy, x0 + x]
            else:
                for x in range(s0):
                    row[x] = image[yy, min(max(x0 + x, 0), W - 1)]
            if do_crop:
                for x in range(half):
                    out[j, ty, x + half] = np.float32(weights[y, x] * (row[x] - mean))
                for x in range(half, s0):
                    out[j, ty, x - half] = np.float32(weights[y, x] * (row[x] - mean))
            else:
                for x in range(half):
                    out[j, ty, x + half] = np.float32(row[x])
                for x in range(half, s0):
                    out[j, ty, x - half] = np.float32(row[x])
