"""Masked-tomogram noise fill: keep a tomogram inside an expanded mask, fill the rest with
noise that matches the tomogram's own background, at full tomogram size.

Arrays are ``[z, y, x]`` (x = MRC column); distances are in voxels (px). Everything here is
NumPy/SciPy on arrays or on array-likes that return ``[z0:z1]`` slabs (numpy arrays, memory
maps, :class:`cryoprocs.convert.mrc.MappedMrc`), so volumes larger than memory are
processed slab by slab.

Source of the behaviour: ../shared/docs/noise-fill.md. Two modes:

* **cryoprocs (default)** (doc section 3): binarise with a threshold (``mask > threshold``,
  so label maps keep every label above it); optional morphological open/close; expand by an
  **exact Euclidean distance** N computed once (:func:`truncated_sq_edt`, restricted to the
  mask's bounding box plus N + W) or by the Gaussian blur + threshold rule; a cosine soft edge
  ``w = 0.5 (1 + cos(pi (d - N) / W))`` over ``N < d < N + W``; noise whose mean and standard
  deviation are those of the tomogram voxels **outside** the expanded (soft) mask (robust,
  global and the script's rule as options), drawn in float32 from a seeded
  ``numpy.random.default_rng([seed, z])`` stream per z-plane (so the output depends neither on
  the slab size nor on the number of threads), optionally with the background's power
  spectrum; ``out = w * tomo + (1 - w) * noise``.
* **parity**: the TomoPANDA script ``scripts/extract_masked_tomogram.py`` (commit 8852acc,
  GiantFurosemide/TomoPANDA; re-stated in the doc section 1, not copied): its ``/255``
  binarisation, its expansion rule (a (2N+1)^3 cube for N <= 10 unless ``fast``, else the
  Euclidean ball), its Gaussian blur + 0.5 re-threshold, its 3^3 open/close, and its noise
  ``np.random.normal(background_value, noise_std * std(tomogram))`` from the legacy
  ``RandomState(seed)`` stream (the script seeds the global one with 42), cast to the
  tomogram's dtype, and its hard blend ``tomo * m + noise * (1 - m)``: the same voxels as the
  script, computed on the mask's bounding box and in slabs.

The script's "Gaussian expansion" (blur sigma, threshold t) moves a flat boundary outwards
by ``d = sigma * Phi^-1(1 - t)`` only: t = 0.5 does not expand at all (convex parts shrink),
t = 0.16 expands by about 1 sigma, t = 0.023 by about 2 sigma, and thin structures expand
less than flat ones (:func:`gaussian_expansion_distance`).
"""
import math
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import asdict, dataclass

import numpy as np
from scipy import ndimage as ndi
from scipy.special import ndtri

__all__ = [
    "NOISE_STATS", "EXPANSION_MODES", "NoiseFillError", "NoiseFillParams",
    "gaussian_expansion_distance", "gaussian_threshold_for_distance", "truncated_sq_edt",
    "edge_weight_lut", "open_close", "cube_dilate", "blur_threshold", "sample_strides",
    "robust_stats", "plane_noise", "SpectralNoise", "FillGeometry", "prepare_geometry",
    "noise_fill", "noise_fill_array", "RADIUS_MAX",
]

NOISE_STATS = ("outside", "robust", "global", "parity")
EXPANSION_MODES = ("euclidean", "gaussian")
MAD_TO_STD = 1.4826                 # normal consistency constant of the MAD
RADIUS_MAX = 180                    # (R+1)^2 + R^2 must fit uint16
GAUSS_TRUNCATE = 4.0                # scipy.ndimage.gaussian_filter default
SAMPLE_LIMIT = 1 << 24              # voxels used for the noise statistics
SLAB_VOXELS = 1 << 22               # output slab size (voxels) unless given


class NoiseFillError(ValueError):
    """Invalid noise-fill parameters or inputs; the message names the offending values."""


@dataclass
class NoiseFillParams:
    """Parameters of :func:`noise_fill` (the script's flag names in brackets).

    Attributes
    ----------
    threshold : float
        mask binarisation: voxels with ``mask > threshold`` are inside [--threshold]. 0.5
        keeps 0/1 and 0/255 masks and every label of a label map. Ignored with ``parity``.
    invert : bool
        fill the (expanded) segmentation instead of its outside.
    expansion : int or None
        N, px [--expand_pixels]. Euclidean mode: voxels within distance N of the mask.
        None: 10 (beyond the dark/bright density halo around segmented objects, so the
        transition falls in background), 5 with ``parity`` (the script's default).
    expansion_mode : str
        ``euclidean`` (exact distance) or ``gaussian`` (blur ``sigma`` + ``gaussian_threshold``).
    sigma : float
        Gaussian-mode blur sigma, px [--sigma].
    gaussian_threshold : float or None
        Gaussian-mode threshold of the blurred 0/1 mask; None derives it from ``expansion``
        (:func:`gaussian_threshold_for_distance`); 0.5 does not expand.
    boundary_sigma : float or None
        the script's "boundary blur" [--gaussian_sigma]: blur the expanded 0/1 mask and keep
        ``> 0.5`` (re-binarises; rounds corners, fills sub-sigma gaps). None: 1.0 with
        ``parity``, else 0 (off).
    fast : bool
        parity only [--fast]: Euclidean ball even for N <= 10.
    soft_edge : float
        W, px: cosine transition from tomogram to noise over ``N < d < N + W`` (0 = hard).
    smooth_iterations : int or None
        rounds of 3^3 opening + closing [--smooth_iterations]; None: 1 with ``parity``, else 0.
        The script smooths the expanded mask; cryoprocs smooths the binarised mask before the
        expansion (a ball expansion already closes gaps narrower than 2N).
    noise_stats : str
        ``outside`` (mean/std of the tomogram outside the expanded soft mask), ``robust``
        (median and 1.4826 MAD there), ``global`` (whole tomogram), ``parity`` (the script's
        rule: mean ``background_value``, std of the whole tomogram).
    noise_level : float or None
        noise std relative to the chosen std [--noise_std]; None: 0.1 with ``parity``, else 1.
    background_value : float
        noise mean for ``noise_stats='parity'`` and parity mode [--background_value].
    spectral : bool
        noise with the power spectrum of the background (otherwise white).
    seed : int
        random seed (the script: 42).
    parity : bool
        reproduce the script exactly (see the module docstring).
    """
    threshold: float = 0.5
    invert: bool = False
    expansion: int = None
    expansion_mode: str = "euclidean"
    sigma: float = 2.0
    gaussian_threshold: float = None
    boundary_sigma: float = None
    fast: bool = False
    soft_edge: float = 4.0
    smooth_iterations: int = None
    noise_stats: str = "outside"
    noise_level: float = None
    background_value: float = 0.0
    spectral: bool = False
    seed: int = 42
    parity: bool = False

    def resolved(self):
        """A copy with the mode-dependent defaults filled in, validated.

        Raises
        ------
        NoiseFillError
            a value out of range (named with the value).
        """
        p = NoiseFillParams(**asdict(self))
        if p.expansion is None:
            p.expansion = 5 if p.parity else 10
        if p.smooth_iterations is None:
            p.smooth_iterations = 1 if p.parity else 0
        if p.noise_level is None:
            p.noise_level = 0.1 if p.parity else 1.0
        if p.boundary_sigma is None:
            p.boundary_sigma = 1.0 if p.parity else 0.0
        p.expansion = _as_int("expansion", p.expansion)
        p.smooth_iterations = _as_int("smooth_iterations", p.smooth_iterations)
        if p.expansion < 0:
            raise NoiseFillError("expansion must be >= 0 px, got %s" % p.expansion)
        if p.smooth_iterations < 0:
            raise NoiseFillError("smooth_iterations must be >= 0, got %s" % p.smooth_iterations)
        if p.boundary_sigma < 0:
            raise NoiseFillError("boundary (gaussian) sigma must be >= 0 px, got %s"
                                 % p.boundary_sigma)
        if p.noise_level < 0:
            raise NoiseFillError("noise level must be >= 0, got %s" % p.noise_level)
        if p.parity:
            return p
        if p.expansion_mode not in EXPANSION_MODES:
            raise NoiseFillError("expansion mode %r unknown; expected one of %s"
                                 % (p.expansion_mode, ", ".join(EXPANSION_MODES)))
        if p.noise_stats not in NOISE_STATS:
            raise NoiseFillError("noise statistics %r unknown; expected one of %s"
                                 % (p.noise_stats, ", ".join(NOISE_STATS)))
        if not p.soft_edge >= 0:
            raise NoiseFillError("soft edge must be >= 0 px, got %s" % p.soft_edge)
        if p.expansion_mode == "euclidean" and p.expansion + math.ceil(p.soft_edge) > RADIUS_MAX:
            raise NoiseFillError("expansion + soft edge = %s px exceeds the supported %d px"
                                 % (p.expansion + p.soft_edge, RADIUS_MAX))
        if p.expansion_mode == "gaussian":
            if not p.sigma > 0:
                raise NoiseFillError("Gaussian expansion needs sigma > 0 px, got %s" % p.sigma)
            if p.gaussian_threshold is None:
                if p.expansion > 3.0 * p.sigma:
                    raise NoiseFillError(
                        "a Gaussian expansion of %s px needs sigma >= %.2f px (the blur of "
                        "sigma %s px reaches only about 3 sigma = %.1f px); use the Euclidean "
                        "expansion or a larger sigma" % (p.expansion, p.expansion / 3.0,
                                                         p.sigma, 3 * p.sigma))
                p.gaussian_threshold = gaussian_threshold_for_distance(p.expansion, p.sigma)
            elif not 0 < p.gaussian_threshold < 1:
                raise NoiseFillError("Gaussian threshold must be in (0, 1), got %s"
                                     % p.gaussian_threshold)
        return p


def _as_int(name, value):
    if int(value) != value:
        raise NoiseFillError("%s must be a whole number of px, got %s" % (name, value))
    return int(value)


def gaussian_expansion_distance(sigma, threshold):
    """Outward shift of a flat boundary by "blur with ``sigma`` then keep ``> threshold``".

    A flat 0/1 step blurred with a Gaussian of ``sigma`` px equals ``Phi(-x / sigma)`` at
    signed distance x outside it, so the threshold t is crossed at ``x = sigma Phi^-1(1 - t)``
    (../shared/docs/noise-fill.md section 2). Returns px; 0 for t = 0.5, negative above.
    Convex parts move less and thin structures much less than this.
    """
    return float(sigma) * float(ndtri(1.0 - float(threshold)))


def gaussian_threshold_for_distance(distance, sigma):
    """Threshold t such that the Gaussian rule moves a flat boundary by ``distance`` px:
    ``t = 1 - Phi(distance / sigma)``."""
    return float(0.5 * math.erfc(float(distance) / (float(sigma) * math.sqrt(2.0))))


# ----------------------------------------------------------------------------- distances
def truncated_sq_edt(seg, radius, threads=1, chunk_voxels=None):
    """Exact squared Euclidean distance (px^2) from every voxel to the nearest True voxel of
    ``seg``, up to ``radius``.

    Computed with the ``edt`` package (seung-lab, Felzenszwalb & Huttenlocher's exact
    separable transform; cost independent of the radius) in y-chunks with an R-row halo,
    so memory stays at a few chunk-sized temporaries. (scipy 1.10's
    ``distance_transform_edt`` is exact too but about 10x slower on this problem, see
    ../shared/docs/noise-fill.md section 4.)

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


def edge_weight_lut(expansion, soft_edge, cap):
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


# ----------------------------------------------------------------------------- morphology
def _filter_all_axes(a, func, size):
    u = a.view(np.uint8) if a.dtype == bool else a.astype(np.uint8)
    for ax in range(u.ndim):
        u = func(u, size=size, axis=ax, mode="constant", cval=0)
    return u.view(bool)


def cube_dilate(seg, n):
    """Dilation by a (2n+1)^3 cube with zero border: identical voxels to
    ``scipy.ndimage.binary_dilation(seg, np.ones((2n+1,)*3))`` (separable maximum filters)."""
    if n <= 0:
        return np.array(seg, dtype=bool)
    return _filter_all_axes(seg, ndi.maximum_filter1d, 2 * int(n) + 1)


def _erode3(seg):
    return _filter_all_axes(seg, ndi.minimum_filter1d, 3)


def open_close(seg, iterations):
    """``iterations`` rounds of ``binary_opening`` then ``binary_closing`` with a 3^3 cube and
    zero border (scipy defaults, the script's ``smooth_mask_boundary``); separable filters."""
    out = np.array(seg, dtype=bool)
    for _ in range(int(iterations)):
        out = cube_dilate(_erode3(out), 1)       # opening
        out = _erode3(cube_dilate(out, 1))       # closing
    return out


def blur_threshold(seg, sigma, threshold, slab=32):
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


# ----------------------------------------------------------------------------- statistics
def sample_strides(shape, limit=SAMPLE_LIMIT):
    """Strides ``(sz, sy, sx)`` so that ``vol[::sz, ::sy, ::sx]`` has at most ``limit`` voxels."""
    s = [1, 1, 1]
    while np.prod([-(-n // k) for n, k in zip(shape, s)]) > limit:
        ext = [-(-n // k) for n, k in zip(shape, s)]
        s[int(np.argmax(ext))] += 1
    return tuple(s)


def robust_stats(values):
    """``(median, 1.4826 * MAD)`` of a 1D sample (float64)."""
    v = np.asarray(values, dtype=np.float64)
    med = float(np.median(v))
    return med, float(MAD_TO_STD * np.median(np.abs(v - med)))


class _Moments:
    """Mergeable count/mean/M2 (Chan et al. parallel variance)."""

    def __init__(self, n=0, mean=0.0, m2=0.0):
        self.n, self.mean, self.m2 = n, mean, m2

    @classmethod
    def of(cls, v):
        v = np.asarray(v).ravel()
        if v.size == 0:
            return cls()
        m = float(v.mean(dtype=np.float64))
        d = v - v.dtype.type(m) if v.dtype.kind == "f" else v.astype(np.float64) - m
        return cls(v.size, m, float(np.einsum("i,i->", d, d, dtype=np.float64)))

    def __add__(self, o):
        n = self.n + o.n
        if n == 0:
            return _Moments()
        d = o.mean - self.mean
        return _Moments(n, self.mean + d * o.n / n, self.m2 + o.m2 + d * d * self.n * o.n / n)

    def result(self):
        if self.n == 0:
            return None, None
        return self.mean, math.sqrt(self.m2 / self.n)


# ----------------------------------------------------------------------------- noise
def plane_noise(seed, z, shape, key=0, out=None):
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

    def __init__(self, kernel, seed):
        self.kernel = np.asarray(kernel, dtype=np.float64)
        self.half = self.kernel.shape[0] // 2
        self.seed = int(seed)

    @classmethod
    def estimate(cls, patches, seed):
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

    def generate(self, z0, z1, plane_shape, workers=1):
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


# ----------------------------------------------------------------------------- geometry
class FillGeometry:
    """The blend weights of one tomogram, stored on the mask's bounding box.

    ``values`` (uint16 squared distances, or uint8 0/1) covers ``region`` = ``(z0, z1, y0,
    y1, x0, x1)``; ``lut[values]`` is the segmentation weight (1 keeps, 0 fills) and voxels
    outside the region have weight 0. With ``invert`` the final weight is ``1 - w``.
    """

    def __init__(self, shape, region, values, lut, invert=False, counts=None, preview_mask=None):
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

    def seg_weight(self, z0, z1):
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

    def outside(self, z0, z1, step=1):
        """bool ``[z0:z1:step]`` slab: True where the segmentation weight is 0 (the
        voxels the noise statistics come from)."""
        zs = list(range(z0, z1, step))
        out = np.ones((len(zs),) + self.shape[1:], dtype=bool)
        rz0, rz1, ry0, ry1, rx0, rx1 = self.region
        for i, z in enumerate(zs):
            if rz0 <= z < rz1:
                out[i, ry0:ry1, rx0:rx1] = self._zero[self.values[z - rz0]]
        return out

    def weight(self, z0, z1):
        """Final blend weight ``(z1-z0, ny, nx)`` float32 (after ``invert``), or the scalars
        0.0 / 1.0 when the whole slab has that weight."""
        w = self.seg_weight(z0, z1)
        if w is None:
            return 1.0 if self.invert else 0.0
        if self.invert:
            np.subtract(1.0, w, out=w)
        return w

    def nbytes(self):
        return int(self.values.nbytes)


def _scan_mask(mask, binarize, slab):
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


def _grow(bbox, margin, shape):
    z0, z1, y0, y1, x0, x1 = bbox
    m = int(margin)
    return (max(0, z0 - m), min(shape[0], z1 + m), max(0, y0 - m), min(shape[1], y1 + m),
            max(0, x0 - m), min(shape[2], x1 + m))


def _load_crop(mask, binarize, crop, slab):
    z0, z1, y0, y1, x0, x1 = crop
    out = np.empty((z1 - z0, y1 - y0, x1 - x0), dtype=bool)
    for a in range(z0, z1, slab):
        b = min(z1, a + slab)
        out[a - z0:b - z0] = binarize(mask[a:b])[:, y0:y1, x0:x1]
    return out


def _mask_max(mask, slab):
    m = None
    for z0 in range(0, mask.shape[0], slab):
        v = np.asarray(mask[z0:z0 + slab]).max()
        m = v if m is None else max(m, v)
    return m


def prepare_geometry(mask, params, threads=1, slab=None):
    """Binarise, smooth and expand a mask; return its :class:`FillGeometry`.

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
    slab = slab or max(1, SLAB_VOXELS // (shape[1] * shape[2]))
    t0 = time.time()
    if p.parity:
        scale = bool(_mask_max(mask, slab) > 1.0)

        def binarize(a):
            m = np.asarray(a).astype(np.float32)
            if scale:
                m = m / 255.0
            return m > 0.5
        rule = "script: (mask%s) > 0.5" % (" / 255" if scale else "")
    else:
        thr = float(p.threshold)

        def binarize(a):
            return np.asarray(a) > thr
        rule = "mask > %g" % thr
    bbox, count = _scan_mask(mask, binarize, slab)
    if bbox is None:
        mx = _mask_max(mask, slab)
        raise NoiseFillError("no mask voxel is inside after thresholding (%s; mask maximum %s)"
                             % (rule, mx))
    counts = {"mask_voxels": count, "binarisation": rule}
    W = 0 if p.parity else float(p.soft_edge)
    Wc = int(math.ceil(W))
    k = p.smooth_iterations
    rb = int(GAUSS_TRUNCATE * p.boundary_sigma + 0.5) if p.boundary_sigma > 0 else 0
    direct = (not p.parity and p.expansion_mode == "euclidean" and p.boundary_sigma == 0)
    if p.parity:
        margin = p.expansion + rb + k + 2
    elif p.expansion_mode == "euclidean":
        reach = p.expansion
        margin = (k + 2 if k else 0) + reach + (rb + 2 if rb else 0) + Wc + 1
    else:
        rg = int(GAUSS_TRUNCATE * p.sigma + 0.5)
        margin = (k + 2 if k else 0) + rg + 2 + (rb + 2 if rb else 0) + Wc + 1
    crop = _grow(bbox, margin, shape)
    seg = _load_crop(mask, binarize, crop, slab)
    zc = shape[0] // 2 - crop[0]
    preview_seg = None
    if 0 <= zc < seg.shape[0]:
        preview_seg = (crop, seg[zc].copy())
    info = {"crop": crop, "crop_voxels": int(seg.size)}
    if p.parity:
        N = p.expansion
        if p.fast or N > 10:
            d2 = truncated_sq_edt(seg, N, threads)
            hard = d2 <= N * N
            del d2
            info["expansion_rule"] = "Euclidean ball (distance <= %d px)" % N
        else:
            hard = cube_dilate(seg, N)
            info["expansion_rule"] = "cube %d^3 (Chebyshev distance <= %d px)" % (2 * N + 1, N)
        del seg
        if p.boundary_sigma > 0:
            hard = blur_threshold(hard, p.boundary_sigma, 0.5)
        if k:
            hard = open_close(hard, k)
        counts["expanded_voxels"] = int(np.count_nonzero(hard))
        geo = FillGeometry(shape, crop, hard.view(np.uint8), np.array([0.0, 1.0]),
                           counts=counts, preview_mask=preview_seg)
        info["seconds"] = time.time() - t0
        geo.info = info
        return geo
    if k:
        seg = open_close(seg, k)
        counts["smoothed_voxels"] = int(np.count_nonzero(seg))
    if direct:
        R = p.expansion + Wc
        values = truncated_sq_edt(seg, R, threads)
        del seg
        lut = edge_weight_lut(p.expansion, W, (R + 1) ** 2)
        counts["expanded_voxels"] = int(np.count_nonzero(values <= p.expansion ** 2))
        info["expansion_rule"] = "Euclidean distance <= %d px" % p.expansion
    else:
        if p.expansion_mode == "gaussian":
            hard = blur_threshold(seg, p.sigma, p.gaussian_threshold)
            info["expansion_rule"] = ("Gaussian blur sigma %g px > %.4g (flat boundary moves "
                                      "%.2f px)" % (p.sigma, p.gaussian_threshold,
                                                    gaussian_expansion_distance(
                                                        p.sigma, p.gaussian_threshold)))
        else:
            d2 = truncated_sq_edt(seg, p.expansion, threads)
            hard = d2 <= p.expansion ** 2
            del d2
            info["expansion_rule"] = "Euclidean distance <= %d px" % p.expansion
        del seg
        if p.boundary_sigma > 0:
            hard = blur_threshold(hard, p.boundary_sigma, 0.5)
        counts["expanded_voxels"] = int(np.count_nonzero(hard))
        if Wc:
            values = truncated_sq_edt(hard, Wc, threads)
            lut = edge_weight_lut(0, W, (Wc + 1) ** 2)
        else:
            values = hard.view(np.uint8)
            lut = np.array([0.0, 1.0])
        del hard
    geo = FillGeometry(shape, crop, values, lut, invert=p.invert, counts=counts,
                       preview_mask=preview_seg)
    info["seconds"] = time.time() - t0
    geo.info = info
    return geo


# ----------------------------------------------------------------------------- the fill
def _noise_stats(tomo, geo, p, slab):
    """Noise mean/std (before ``noise_level``) and a description, from a strided sample."""
    shape = geo.shape
    sz, sy, sx = sample_strides(shape)
    outside_vals, all_m = [], _Moments()
    need_out = p.noise_stats in ("outside", "robust")
    planes = max(sz, (slab // sz) * sz)
    for z0 in range(0, shape[0], planes):
        z1 = min(shape[0], z0 + planes)
        t = np.asarray(tomo[z0:z1:sz])[:, ::sy, ::sx]
        if need_out:
            o = geo.outside(z0, z1, sz)[:, ::sy, ::sx]
            outside_vals.append(t[o].astype(np.float32))
        else:
            all_m = all_m + _Moments.of(t)
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


def noise_fill(tomo, mask, params, write, write_weight=None, threads=1, slab=None,
               preview=True):
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
    shape = tuple(int(s) for s in tomo.shape)
    if len(shape) != 3:
        raise NoiseFillError("the tomogram must be 3D [z, y, x], got shape %s" % (shape,))
    if tuple(mask.shape) != shape:
        raise NoiseFillError("mask shape %s (z, y, x) differs from the tomogram shape %s"
                             % (tuple(mask.shape), shape))
    threads = max(1, int(threads))
    slab = int(slab or max(1, SLAB_VOXELS // (shape[1] * shape[2])))
    t_start = time.time()
    geo = prepare_geometry(mask, p, threads, slab)
    report = {"shape": shape, "parity": p.parity, "params": asdict(p)}
    report.update(geo.counts)
    report["expansion_ratio"] = (report["expanded_voxels"] / report["mask_voxels"]
                                 if report["mask_voxels"] else 0.0)
    report["expansion_rule"] = geo.info.get("expansion_rule")
    report["geometry_seconds"] = geo.info["seconds"]
    report["geometry_bytes"] = geo.nbytes()
    t1 = time.time()
    if p.parity:
        full = tomo.full() if hasattr(tomo, "full") else np.asarray(tomo)
        tomo_std = np.std(full)                # the script: np.std of the whole tomogram
        if hasattr(tomo, "release_all"):
            tomo.release_all()
        noise_mean = p.background_value
        noise_sd = float(p.noise_level) * tomo_std
        report.update(noise_stats="parity (script)", stats_std=float(tomo_std))
    else:
        mean, std, sinfo = _noise_stats(tomo, geo, p, slab)
        report.update(sinfo)
        noise_mean, noise_sd = mean, p.noise_level * std
        report.update(noise_stats=p.noise_stats, stats_mean=mean, stats_std=std)
    report["noise_mean"] = float(noise_mean)
    report["noise_std"] = float(noise_sd)
    spectral = None
    if p.spectral and not p.parity:
        patches = _background_patches(tomo, geo)
        spectral = SpectralNoise.estimate(patches, p.seed)
        if spectral is not None:
            spectral.nz = shape[0]
            B = SpectralNoise.BLOCK
            slab = B * max(1, int(round(slab / B)))       # whole noise blocks per slab
        report["spectral_patches"] = len(patches)
        report["spectral_kernel_px"] = None if spectral is None else spectral.kernel.shape[0]
        if spectral is None:
            report["warnings"] = ["no background patch found for the spectrum; white noise "
                                  "used"]
    report["stats_seconds"] = time.time() - t1
    t2 = time.time()
    zc = shape[0] // 2
    preview_data = {}
    nzs = list(range(0, shape[0], slab))

    if p.parity:
        rs = np.random.RandomState(int(p.seed))
        parts = []
        for z0 in nzs:
            z1 = min(shape[0], z0 + slab)
            t = np.asarray(tomo[z0:z1])
            n = rs.normal(p.background_value, noise_sd, (z1 - z0,) + shape[1:]).astype(t.dtype)
            m = geo.seg_weight(z0, z1)
            if m is None:
                m = np.zeros(t.shape, dtype=np.float32)
            out = (t * m + n * (1.0 - m)).astype(np.float32)
            parts.append(_slab_stats(t, out, m))
            if z0 <= zc < z1 and preview:
                preview_data = _preview(t[zc - z0], out[zc - z0], m[zc - z0], geo)
            write(z0, out)
            if write_weight is not None:
                write_weight(z0, m)
    else:
        sd32, mean32 = np.float32(noise_sd), np.float32(noise_mean)

        def work(z0):
            z1 = min(shape[0], z0 + slab)
            t = np.asarray(tomo[z0:z1], dtype=np.float32)
            if spectral is not None:
                n = spectral.generate(z0, z1, shape[1:], workers=1)
            else:
                n = np.empty(t.shape, dtype=np.float32)
                for i, z in enumerate(range(z0, z1)):
                    plane_noise(p.seed, z, shape[1:], out=n[i])
            n *= sd32
            n += mean32
            w = geo.weight(z0, z1)
            if np.isscalar(w):
                out = n if w == 0.0 else t.copy()
                st = _uniform_stats(t, out, w)
            else:
                keep = w == 1
                out = np.subtract(t, n)
                out *= w
                out += n
                np.copyto(out, t, where=keep)      # kept voxels bit-exact
                st = _slab_stats(t, out, w, keep)
            wa = None
            if write_weight is not None or (preview and z0 <= zc < z1):
                wa = w if not np.isscalar(w) else np.full(t.shape, w, dtype=np.float32)
            pv = None
            if preview and z0 <= zc < z1:
                pv = _preview(t[zc - z0], out[zc - z0], wa[zc - z0], geo)
            write(z0, out)
            if write_weight is not None:
                write_weight(z0, wa)
            return st, pv

        parts = []
        if threads > 1 and len(nzs) > 1:
            with ThreadPoolExecutor(threads) as pool:
                # bounded in-flight work: map over windows of `threads` slabs
                for i in range(0, len(nzs), threads):
                    for st, pv in pool.map(work, nzs[i:i + threads]):
                        parts.append(st)
                        preview_data = pv or preview_data
        else:
            for z0 in nzs:
                st, pv = work(z0)
                parts.append(st)
                preview_data = pv or preview_data
    report["fill_seconds"] = time.time() - t2
    kept, filled, replaced, total = _Moments(), _Moments(), _Moments(), _Moments()
    nk = nf = edge = 0
    for st in parts:
        kept, filled, replaced, total = (kept + st["kept"], filled + st["filled"],
                                         replaced + st["replaced"], total + st["total"])
        edge += st["edge"]
        nk += st["kept_n"]
        nf += st["filled_n"]
    report["kept_voxels"], report["filled_voxels"], report["edge_voxels"] = nk, nf, edge
    report["kept_mean"], report["kept_std"] = kept.result()
    report["filled_mean"], report["filled_std"] = filled.result()
    report["replaced_mean"], report["replaced_std"] = replaced.result()
    report["output_mean"], report["output_std"] = total.result()
    report["seconds"] = time.time() - t_start
    if preview:
        report["preview"] = preview_data
    return report


def _sums(v):
    """``_Moments`` of an array from float64 sums (no float64 copy of the data)."""
    v = v.ravel()
    n = v.size
    if n == 0:
        return _Moments()
    s1 = float(v.sum(dtype=np.float64))
    s2 = float(np.einsum("i,i->", v, v, dtype=np.float64))
    m = s1 / n
    return _Moments(n, m, max(s2 - n * m * m, 0.0))


def _stat_view(a):
    """Voxels the summary means/stds are taken from: all of them for planes below 512^2
    px, every second row and column above (counts stay exact)."""
    return a[:, ::2, ::2] if a.shape[1] * a.shape[2] >= (512 * 512) else a


def _slab_stats(t, out, w, keep=None):
    keep = (w == 1) if keep is None else keep
    fill = w == 0
    nk, nf = int(np.count_nonzero(keep)), int(np.count_nonzero(fill))
    tv, ov, kv, fv = (_stat_view(a) for a in (t, out, keep, fill))
    return {"kept": _sums(ov[kv]), "filled": _sums(ov[fv]), "replaced": _sums(tv[fv]),
            "total": _sums(ov), "edge": int(w.size - nk - nf), "kept_n": nk, "filled_n": nf}


def _uniform_stats(t, out, w):
    """Slab stats when the whole slab has weight ``w`` (0 or 1)."""
    n = out.size
    t, out = _stat_view(t), _stat_view(out)
    total = _sums(out)
    if w == 0:
        return {"kept": _Moments(), "filled": total, "replaced": _sums(t), "total": total,
                "edge": 0, "kept_n": 0, "filled_n": n}
    return {"kept": total, "filled": _Moments(), "replaced": _Moments(), "total": total,
            "edge": 0, "kept_n": n, "filled_n": 0}


def _preview(before, after, weight, geo):
    pm = geo.preview_mask
    seg = np.zeros(before.shape, dtype=bool)
    if pm is not None:
        (z0, z1, y0, y1, x0, x1), plane = pm
        seg[y0:y1, x0:x1] = plane
    return {"before": np.array(before, dtype=np.float32), "after": np.array(after),
            "weight": np.array(weight, dtype=np.float32), "mask": seg,
            "z": geo.shape[0] // 2}


def noise_fill_array(tomo, mask, params, **kwargs):
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
