"""Noise of the fill and the statistics it is matched to: strided samples, robust (median,
MAD) and mergeable (Chan et al.) moments, seeded white noise per z-plane, and Gaussian noise
with the power spectrum of the tomogram background (:class:`SpectralNoise`)."""
import math
from typing import Optional, Sequence, Tuple

import numpy as np
from numpy.typing import ArrayLike

__all__ = ["MAD_TO_STD", "SAMPLE_LIMIT", "sample_strides", "robust_stats", "Moments",
           "moments_of", "plane_noise", "SpectralNoise"]

MAD_TO_STD = 1.4826                 # normal consistency constant of the MAD
SAMPLE_LIMIT = 1 << 24              # voxels used for the noise statistics


def sample_strides(shape: Sequence[int], limit: int = SAMPLE_LIMIT) -> Tuple[int, int, int]:
    """Strides ``(sz, sy, sx)`` so that ``vol[::sz, ::sy, ::sx]`` has at most ``limit`` voxels."""
    s = [1, 1, 1]
    while np.prod([-(-n // k) for n, k in zip(shape, s)]) > limit:
        ext = [-(-n // k) for n, k in zip(shape, s)]
        s[int(np.argmax(ext))] += 1
    return tuple(s)


def robust_stats(values: ArrayLike) -> Tuple[float, float]:
    """``(median, 1.4826 * MAD)`` of a 1D sample (float64)."""
    v = np.asarray(values, dtype=np.float64)
    med = float(np.median(v))
    return med, float(MAD_TO_STD * np.median(np.abs(v - med)))


class Moments:
    """Mergeable count/mean/M2 (Chan et al. parallel variance)."""

    def __init__(self, n: int = 0, mean: float = 0.0, m2: float = 0.0) -> None:
        self.n, self.mean, self.m2 = n, mean, m2

    @classmethod
    def of(cls, v: ArrayLike) -> "Moments":
        v = np.asarray(v).ravel()
        if v.size == 0:
            return cls()
        m = float(v.mean(dtype=np.float64))
        d = v - v.dtype.type(m) if v.dtype.kind == "f" else v.astype(np.float64) - m
        return cls(v.size, m, float(np.einsum("i,i->", d, d, dtype=np.float64)))

    def __add__(self, o):
        n = self.n + o.n
        if n == 0:
            return Moments()
        d = o.mean - self.mean
        return Moments(n, self.mean + d * o.n / n, self.m2 + o.m2 + d * d * self.n * o.n / n)

    def result(self) -> Tuple[Optional[float], Optional[float]]:
        if self.n == 0:
            return None, None
        return self.mean, math.sqrt(self.m2 / self.n)


def moments_of(v: np.ndarray) -> Moments:
    """:class:`Moments` of an array from float64 sums (no float64 copy of the data)."""
    v = v.ravel()
    n = v.size
    if n == 0:
        return Moments()
    s1 = float(v.sum(dtype=np.float64))
    s2 = float(np.einsum("i,i->", v, v, dtype=np.float64))
    m = s1 / n
    return Moments(n, m, max(s2 - n * m * m, 0.0))


def plane_noise(seed: int, z: int, shape: Sequence[int], key: int = 0,
                out: Optional[np.ndarray] = None) -> np.ndarray:
    """Standard normal float32 plane for z-plane ``z`` from ``default_rng([seed, key, z])``
    (written into ``out`` when given)."""
    rng = np.random.default_rng([int(seed), int(key), int(z)])
    if out is not None:
        return rng.standard_normal(dtype=np.float32, out=out)
    return rng.standard_normal(shape, dtype=np.float32)


class SpectralNoise:
    """Gaussian noise with the power spectrum of the tomogram background.

    The spectrum is the Welch average of ``|FFT|^2`` of Hann-windowed, mean-subtracted cubic
    patches of ``patch`` px lying entirely outside the expanded mask. Its square root, as a
    zero-phase kernel ``h`` (cropped to the half-width holding 99 % of its energy, normalised
    to ``sum(h^2) = 1``), filters seeded white noise, so the result has unit variance and the
    background's autocorrelation; ``generate`` returns slabs with halos drawn from per-plane
    streams, so slabs join seamlessly.
    """

    def __init__(self, kernel: ArrayLike, seed: int) -> None:
        self.kernel = np.asarray(kernel, dtype=np.float64)
        self.half = self.kernel.shape[0] // 2
        self.seed = int(seed)

    @classmethod
    def estimate(cls, patches: Sequence[np.ndarray], seed: int) -> Optional["SpectralNoise"]:
        """Build from a list of ``(p, p, p)`` float arrays; None if the list is empty."""
        if not patches:
            return None
        p = patches[0].shape[0]
        win1 = np.hanning(p + 2)[1:-1]
        win = win1[:, None, None] * win1[None, :, None] * win1[None, None, :]
        psd = np.zeros((p, p, p // 2 + 1))
        for q in patches:
            q = np.asarray(q, dtype=np.float64)
            psd += np.abs(np.fft.rfftn((q - q.mean()) * win)) ** 2
        psd /= len(patches)
        psd[0, 0, 0] = 0.0
        # Blackman-Tukey smoothing: taper the autocorrelation to |lag| < p/4, so the
        # spectrum is smooth and its square-root kernel compact
        acf = np.fft.irfftn(psd, s=(p, p, p))
        L = max(2, p // 4)
        lag = np.minimum(np.arange(p), p - np.arange(p))
        taper1 = np.where(lag < L, 0.5 * (1 + np.cos(np.pi * lag / L)), 0.0)
        acf *= taper1[:, None, None] * taper1[None, :, None] * taper1[None, None, :]
        psd = np.clip(np.fft.rfftn(acf).real, 0, None)
        k = np.fft.fftshift(np.fft.irfftn(np.sqrt(psd), s=(p, p, p)))
        c = p // 2
        energy = float(np.square(k).sum())
        if energy <= 0:
            return None
        half = c - 1
        for hk in range(1, c):
            if np.square(k[c - hk:c + hk + 1, c - hk:c + hk + 1, c - hk:c + hk + 1]).sum() \
                    >= 0.995 * energy:
                half = hk
                break
        k = k[c - half:c + half + 1, c - half:c + half + 1, c - half:c + half + 1]
        k /= math.sqrt(float(np.square(k).sum()))
        return cls(k, seed)

    #: planes per noise block; blocks are aligned to multiples of it, so the noise of a
    #: plane does not depend on how the output is cut into slabs
    BLOCK = 16

    def generate(self, z0: int, z1: int, plane_shape: Sequence[int],
                 workers: int = 1) -> np.ndarray:
        """Unit-variance coloured noise for planes ``z0..z1-1`` (float32)."""
        B = self.BLOCK
        parts = []
        for b0 in range((z0 // B) * B, z1, B):
            blk = self._block(b0, plane_shape, workers)
            a, b = max(z0, b0), min(z1, b0 + blk.shape[0])
            parts.append(blk[a - b0:b - b0])
        return np.concatenate(parts) if len(parts) > 1 else parts[0]

    def _block(self, b0, plane_shape, workers):
        from scipy import fft as sfft
        h = self.half
        ny, nx = plane_shape
        nz = getattr(self, "nz", None)
        b1 = b0 + self.BLOCK if nz is None else min(nz, b0 + self.BLOCK)
        white = np.stack([plane_noise(self.seed, z + h, (ny + 2 * h, nx + 2 * h), key=1)
                          for z in range(b0 - h, b1 + h)])
        shape = tuple(sfft.next_fast_len(s, real=True) for s in white.shape)
        cache = self.__dict__.setdefault("_kft", {})
        kf = cache.get(shape)
        if kf is None:
            kf = cache[shape] = sfft.rfftn(self.kernel.astype(np.float32), shape,
                                           workers=workers)
        fw = sfft.rfftn(white, shape, workers=workers)
        del white
        fw *= kf
        full = sfft.irfftn(fw, shape, workers=workers)
        del fw
        k = 2 * h
        return np.array(full[k:k + (b1 - b0), k:k + ny, k:k + nx], dtype=np.float32)
