"""Tilt-series simulation from a tomogram (for demos and tests; pure NumPy/SciPy).

Each tilt image is the line integral of the tomogram along the beam of RELION 5's projection
geometry (kernels/relion_geometry.py: a tomogram voxel at index ``p = (x, y, z)`` projects to
``q = P_f p``), so extracting the simulated tilt series at a voxel position with RELION's
algorithm finds the same particle. The projection is then contrast-inverted (bright density
in a reconstructed tomogram is dark in raw images), multiplied by the CTF and by the dose
weights of the tilt's pre-exposure (kernels/ctf.py), and Gaussian noise is added.
"""
from typing import Optional, Sequence, Tuple

import numpy as np
from numpy.typing import ArrayLike
from scipy import ndimage, fft as sfft

from . import ctf as ctf_kernels

__all__ = ["project_volume", "dose_symmetric_pre_exposure", "simulate_tilt_image"]


def dose_symmetric_pre_exposure(tilts: ArrayLike, dose_per_tilt: float,
                                start: float = 0.0) -> Tuple[np.ndarray, np.ndarray]:
    """Pre-exposure (e/Å²) of each tilt for a dose-symmetric (Hagen) scheme starting at the
    tilt closest to ``start``: 0, +1, -1, -2, +2, +3, ... steps (ties: positive first).

    Returns ``(pre_exposure (F,), acquisition order (F,) 1-based)``.
    """
    t = np.asarray(tilts, dtype=np.float64)
    d = t - start
    # Hagen: after 0 go to the next tilt on one side, then two on the other side, ...
    neg = sorted([i for i in range(len(t)) if d[i] < 0], key=lambda i: -d[i])
    pos = sorted([i for i in range(len(t)) if d[i] > 0], key=lambda i: d[i])
    zero = [i for i in range(len(t)) if d[i] == 0]
    seq = list(zero)
    side = 1
    while pos or neg:
        take = pos if side > 0 else neg
        n = 1 if len(seq) == len(zero) else 2
        for _ in range(n):
            if take:
                seq.append(take.pop(0))
        side = -side
    order = np.array(seq)
    pre = np.empty(len(t))
    pre[order] = np.arange(len(t)) * float(dose_per_tilt)
    acq = np.empty(len(t), dtype=int)
    acq[order] = np.arange(1, len(t) + 1)
    return pre, acq


def project_volume(volume: np.ndarray, P: np.ndarray, image_shape: Sequence[int],
                   depth: Optional[float] = None, order: int = 1) -> np.ndarray:
    """Line integrals of ``volume`` ``[z, y, x]`` along the beam of projection matrix ``P``
    (4x4, maps voxel ``(x, y, z, 1)`` to ``(u, v, depth, 1)``), on an image ``(H, W)``.

    ``depth``: number of unit samples along the beam (default: the volume diagonal), centred
    on the depth of the volume centre. Trilinear interpolation (``order=1``), zero outside.
    Returns float32 ``[H, W]``.
    """
    vol = np.asarray(volume, dtype=np.float32)
    Z, Y, X = vol.shape
    H, W = image_shape
    R = np.asarray(P, dtype=np.float64)[:3, :3]
    if depth is None:                     # the depth extent of the volume's corners
        corners = np.array([[x, y, z] for x in (0, X - 1) for y in (0, Y - 1)
                            for z in (0, Z - 1)], dtype=np.float64)
        dz = corners @ R[2]
        depth = int(np.ceil(dz.max() - dz.min())) + 2
    b = np.asarray(P, dtype=np.float64)[:3, 3]
    c = np.array([(X - 1) / 2.0, (Y - 1) / 2.0, (Z - 1) / 2.0])
    t0 = (R @ c + b)[2] - depth / 2.0
    Rt = R.T
    # input_xyz = R^T (q - b), q = (u, v, t0 + i): in array (z, y, x) order
    S = np.eye(3)[::-1]
    M = S @ Rt @ S
    offset = S @ (Rt @ (np.array([0.0, 0.0, t0]) - b))
    proj = np.zeros((H, W), dtype=np.float64)
    chunk = max(1, int(4e6 // (H * W)))
    for i0 in range(0, depth, chunk):
        n = min(chunk, depth - i0)
        off = offset + M @ np.array([i0, 0.0, 0.0])
        block = ndimage.affine_transform(vol, M, offset=off, output_shape=(n, H, W),
                                         output=np.float32, order=order, mode="constant",
                                         cval=0.0, prefilter=False)
        proj += block.sum(axis=0, dtype=np.float64)
    return proj.astype(np.float32)


def simulate_tilt_image(projection: np.ndarray, pixel_size: float, defocus_u: float,
                        defocus_v: float, defocus_angle: float, voltage: float, cs: float,
                        amplitude_contrast: float, pre_exposure: float, noise_sigma: float,
                        rng: np.random.Generator, invert: bool = True) -> np.ndarray:
    """Contrast inversion, CTF (``-sin gamma``, RELION formula), Grant-Grigorieff dose
    weighting for ``pre_exposure`` and additive Gaussian noise of ``noise_sigma`` applied to
    a projection ``[H, W]``. Returns float32."""
    img = -np.asarray(projection, dtype=np.float64) if invert else \
        np.asarray(projection, dtype=np.float64)
    H, W = img.shape
    F = sfft.rfft2(img)
    ctf = ctf_kernels.relion_ctf_half((H, W), pixel_size, defocus_u, defocus_v, defocus_angle,
                                      voltage, cs, amplitude_contrast, dtype=np.float64)
    X, Yf = ctf_kernels.half_grid((H, W), pixel_size)
    k = np.sqrt(X * X + Yf * Yf)
    with np.errstate(divide="ignore"):
        w = np.exp(-0.5 * float(pre_exposure) / (0.245 * np.power(k, -1.665) + 2.81))
    out = sfft.irfft2(F * ctf * w, s=(H, W))
    out += rng.normal(0.0, float(noise_sigma), size=out.shape)
    return out.astype(np.float32)
