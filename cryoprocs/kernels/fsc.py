"""Fourier shell correlation between two half maps and the resolution at a threshold.

* Shells as RELION's ``getFSC`` (src/fftw.cpp): voxel ``k`` of the FFTW half spectrum
  ``[z, y, x <= s/2]`` belongs to shell ``round(|k|)``; shells ``0 .. s/2`` are returned.
  ``FSC(i) = sum Re(F1 conj(F2)) / sqrt(sum |F1|^2 sum |F2|^2)`` over the shell. Shell 0
  (the map mean, which RELION's taper subtracts from each half map, leaving rounding noise
  whose correlation is meaningless) is reported as 1.
* Resolution: the FSC is followed from low to high frequency; at the first shell ``i >= 1``
  whose FSC is below the threshold (0.143, Rosenthal & Henderson 2003) the crossing is
  interpolated linearly in spatial frequency between shells ``i-1`` and ``i``, as Scipion's
  ``pwem.objects.FSC.calculateResolution`` does. If the FSC never falls below the
  threshold, the resolution is the Nyquist limit ``2 * pixel size`` (flagged).

Arrays are ``[z, y, x]`` cubes; frequencies in 1/Å, resolutions in Å.
"""
from typing import Tuple

import numpy as np
from numpy.typing import ArrayLike
import scipy.fft

__all__ = ["fsc", "shell_frequencies", "fsc_resolution", "FscError"]


class FscError(ValueError):
    """Half maps of different shapes, or not cubes."""


def _shell_index(shape):
    d, h, w = shape
    kz = np.fft.fftfreq(d) * d
    ky = np.fft.fftfreq(h) * h
    kx = np.arange(w // 2 + 1, dtype=np.float64)
    r = np.sqrt(kz[:, None, None] ** 2 + ky[None, :, None] ** 2 + kx[None, None, :] ** 2)
    return np.floor(r + 0.5).astype(np.int64)


def fsc(map1: np.ndarray, map2: np.ndarray, workers: int = 1) -> np.ndarray:
    """FSC between two maps.

    Parameters
    ----------
    map1, map2 : ndarray, (s, s, s)
        Real-space half maps (any float dtype).

    Returns
    -------
    ndarray, (s//2 + 1,) float64
        FSC per shell index 0 .. s/2 (0 where a shell has no power; 1 at shell 0).

    Raises
    ------
    FscError
        different shapes or not a cube.
    """
    a = np.asarray(map1, dtype=np.float64)
    b = np.asarray(map2, dtype=np.float64)
    if a.shape != b.shape or a.ndim != 3 or len(set(a.shape)) != 1:
        raise FscError("half maps must be cubes of the same size, got %s and %s"
                       % (a.shape, b.shape))
    s = a.shape[0]
    F1 = scipy.fft.rfftn(a, workers=workers)
    F2 = scipy.fft.rfftn(b, workers=workers)
    idx = _shell_index(a.shape).ravel()
    n = s // 2 + 1
    keep = idx < n
    idx = idx[keep]
    num = np.bincount(idx, (F1 * np.conj(F2)).real.ravel()[keep], minlength=n)
    d1 = np.bincount(idx, (np.abs(F1) ** 2).ravel()[keep], minlength=n)
    d2 = np.bincount(idx, (np.abs(F2) ** 2).ravel()[keep], minlength=n)
    den = np.sqrt(d1 * d2)
    out = np.where(den > 0, num / np.where(den > 0, den, 1.0), 0.0)
    out[0] = 1.0
    return out


def shell_frequencies(box: int, pixel_size: float) -> np.ndarray:
    """Spatial frequency (1/Å) of shells ``0 .. box/2``: ``i / (box * pixel_size)``."""
    return np.arange(int(box) // 2 + 1, dtype=np.float64) / (int(box) * float(pixel_size))


def fsc_resolution(frequencies: ArrayLike, values: ArrayLike,
                   threshold: float = 0.143) -> Tuple[float, bool]:
    """Resolution (Å) where the FSC first falls below ``threshold``.

    Parameters
    ----------
    frequencies : array_like (n,)
        Shell frequencies in 1/Å (increasing, ``frequencies[0] = 0``).
    values : array_like (n,)
        FSC per shell.

    Returns
    -------
    (float, bool)
        The resolution in Å and whether it is limited by Nyquist (the FSC never fell below
        the threshold). ``(inf, False)`` when the FSC is below the threshold already at the
        first shell after the origin.
    """
    f = np.asarray(frequencies, dtype=np.float64)
    v = np.asarray(values, dtype=np.float64)
    for i in range(1, len(f)):
        if v[i] < threshold:
            f0, f1, v0, v1 = f[i - 1], f[i], v[i - 1], v[i]
            if f0 <= 0 and v0 < threshold:
                return float("inf"), False
            x = f1 - (threshold - v1) / (v0 - v1) * (f1 - f0) if v0 != v1 else f1
            return (1.0 / x if x > 0 else float("inf")), False
    return 1.0 / f[-1], True
