"""Fourier reconstruction of a subtomogram average from tilt-series slices (RELION 5 style).

Pure NumPy/SciPy on arrays (the backprojection loop is also available compiled with numba,
see kernels/backprojection.py). The steps are those of RELION 5.0.1
``relion_tomo_reconstruct_particle`` (``reconstruct_particle.cpp``, ``Fourier_backprojection.h``,
``reconstruction.h``, ``radial_avg.h``, ``centering.h``, ``tomogram.cpp``), see
docs/reconstruct.md:

1. :func:`dose_x_ranges`: per frame and half-spectrum row, ``1 + max{x <= sqrt(s^2/4 - y'^2):
   dose(x, y, f) > cutoff}`` (``Tomogram::findDoseXRanges``).
2. :func:`slice_from_boxes`: the extraction of ``extractAt3D_Fourier``: soft circle crop with
   background subtraction on the unbinned ``s0`` box (``cropCircle(boundary 0, falloff 5)``),
   centred ortho FFT, Fourier crop and ``/ bin`` (once), sub-pixel shift to the box centre.
3. :func:`weight_slices`: ``c = sign * CTF * dose`` (float32) for ``x < xRanges(y, f)``,
   ``data *= c``, ``weight = c^2``; zero beyond. Without CTF: ``data *= sign``, weight 1.
4. Backprojection (kernels/backprojection.py): trilinear Fourier insertion
   (``backprojectSlice_backward``) into double data and weight half spectra.
5. :func:`gridding_correct_sinc2`, :func:`ctf_correct_heuristic` /
   :func:`ctf_correct_wiener`, :func:`taper`: the finalisation of each map
   (:func:`reconstruct_map`).

Arrays: volumes ``[z, y, x]``; FFTW half spectra ``[z, y, x <= s/2]`` (``y' = y`` for
``y < s/2``, else ``y - s``; the same for z); 2D slices ``[n, y, x <= s/2]``. Float32 where
RELION uses float (slices), float64 where it uses double (volumes).
"""
from typing import Optional, Union

import numpy as np
from numpy.typing import ArrayLike
import scipy.fft

from . import extract

__all__ = ["ReconstructionError", "dose_x_ranges", "slice_from_boxes", "frame_slices",
           "prepare_boxes", "shift_half_separable", "weight_slices",
           "slice_matrices", "gridding_correct_sinc2", "radial_average_half",
           "ctf_correct_heuristic", "ctf_correct_wiener", "taper", "unpad_center",
           "fftw_half_to_human_full", "reconstruct_map", "signed_freq"]


class ReconstructionError(ValueError):
    """Invalid reconstruction input; the message names the values."""


def signed_freq(n: int) -> np.ndarray:
    """FFTW signed frequency indexes of an axis of length ``n`` (``i`` for ``i < n/2``, else
    ``i - n``), float64."""
    i = np.arange(int(n), dtype=np.float64)
    return np.where(i < int(n) // 2, i, i - int(n))


# ----------------------------------------------------------------------------- dose ranges
def dose_x_ranges(dose_weights: np.ndarray, cutoff_fraction: float = 0.01) -> np.ndarray:
    """Last useful x + 1 per half-spectrum row and frame (``Tomogram::findDoseXRanges``).

    Parameters
    ----------
    dose_weights : ndarray, (F, s, s//2+1) float32
        Dose weights of every frame on the half grid (kernels/ctf.py ``dose_weights_half``).
    cutoff_fraction : float
        RELION ``--cutoff_fract`` (default 0.01).

    Returns
    -------
    ndarray, (F, s) int64
        ``1 + max{x : x <= sqrt(s*s//4 - y'^2), x <= s/2, w(x, y, f) > cutoff}`` or 0.
    """
    w = np.asarray(dose_weights)
    F, s, sh = w.shape
    yy = signed_freq(s)
    xmax = np.sqrt((s * s // 4) - yy * yy)                       # (s,)
    x = np.arange(sh)
    inside = x[None, :] <= xmax[:, None]                         # (s, sh)
    good = (w.astype(np.float64) > float(cutoff_fraction)) & inside[None]
    idx = np.where(good, x[None, None, :] + 1, 0)
    return idx.max(axis=2).astype(np.int64)


# ----------------------------------------------------------------------------- slices
def slice_from_boxes(boxes: np.ndarray, pos_in_box: ArrayLike, binning: float, box: int,
                     circle_crop: bool = True, workers: int = 1) -> np.ndarray:
    """Fourier slices of cut boxes as RELION's ``TomoExtraction::extractAt3D_Fourier``
    (kernels/extract.py ``fourier_boxes`` with the circle pre-crop; the reference path of
    :func:`frame_slices`).

    Parameters
    ----------
    boxes : ndarray, (n, s0, s0) float32
        Edge-replicated boxes cut at ``round(q) - s0//2`` (kernels/extract.py ``cut_boxes``).
    pos_in_box : ndarray, (n, 2)
        ``q - corner`` (x, y) in unbinned px.
    binning : float
        ``--bin``.
    box : int
        Binned box ``s`` (``--b``).
    circle_crop : bool
        Subtract the mean outside radius ``s0//2`` and apply a 5 px raised-cosine edge before
        the FFT (RELION default; ``--no_circle_crop`` turns it off).

    Returns
    -------
    ndarray, (n, s, s//2+1) complex64
        Centred ortho spectra divided by ``bin`` once, shifted so that the particle sits on
        pixel ``s//2``.

    Raises
    ------
    ReconstructionError
        the binned box differs from ``box``.
    """
    try:
        return extract.fourier_boxes(np.asarray(boxes, dtype=np.float32), pos_in_box, binning, box,
                                     circle_precrop=circle_crop, workers=workers)
    except extract.ExtractionError as exc:
        raise ReconstructionError(str(exc)) from None


def prepare_boxes(image: np.ndarray, corners: np.ndarray, s0: int, circle_crop: bool = True,
                  backend: str = "auto") -> np.ndarray:
    """Cut, circle-crop and FFT-roll boxes of one tilt image in one pass.

    Parameters
    ----------
    image : ndarray, (H, W)
        Tilt image (any real dtype, e.g. a memory-mapped float32 frame).
    corners : int ndarray, (n, 2)
        ``(x0, y0)`` box corners (``round(q) - s0//2``); pixels outside the image take the
        nearest edge value (RELION ``extractSquares``).
    s0 : int
        Unbinned box size (even).
    circle_crop : bool
        RELION ``cropCircle(boundary 0, falloff 5)``: subtract the double mean of the pixels
        at radius ``> s0//2`` from ``(s0//2, s0//2)`` and multiply by the raised-cosine
        weights, rounding to float32.
    backend : {"auto", "numba", "numpy"}

    Returns
    -------
    ndarray, (n, s0, s0) float32
        The boxes rolled by ``s0//2`` on both axes (the box centre at index 0, ready for the
        centred FFT of :func:`frame_slices`).
    """
    from . import backprojection
    corners = np.ascontiguousarray(corners, dtype=np.int64).reshape(-1, 2)
    s0 = int(s0)
    nb = backprojection.numba_kernels() if backend in ("auto", "numba") else None
    if nb is not None:
        c, lo, hi = _circle_rows(s0)
        out = np.empty((corners.shape[0], s0, s0), dtype=np.float32)
        img = np.asarray(image)
        if img.dtype not in (np.float32, np.float64, np.int16, np.uint16, np.int8,
                             np.uint8):
            img = img.astype(np.float32)
        nb.cut_crop_roll(img, corners, s0, c, lo, hi, bool(circle_crop), out)
        return out
    boxes = extract.cut_boxes(image, corners, s0).astype(np.float32, copy=False)
    if circle_crop:
        boxes = extract.crop_circle(boxes, 0, 5.0)
    return np.roll(boxes, (-(s0 // 2), -(s0 // 2)), axis=(-2, -1))


_CIRCLE_ROWS = {}


def _circle_rows(s0):
    """Weights of RELION's ``cropCircle(boundary 0, falloff 5)`` for an ``s0`` box and, per
    row, the columns outside the circle as ``[0, lo) + [hi, s0)`` (cached)."""
    if s0 not in _CIRCLE_ROWS:
        c, outside = extract.circle_crop_weights(s0, 0, 5.0)
        lo = np.zeros(s0, np.int64)
        hi = np.full(s0, s0, np.int64)
        for y in range(s0):
            ins = np.flatnonzero(~outside[y])
            if ins.size:
                lo[y], hi[y] = ins[0], ins[-1] + 1
                assert not outside[y, lo[y]:hi[y]].any()
            else:
                lo[y], hi[y] = s0, s0
        _CIRCLE_ROWS[s0] = (np.ascontiguousarray(c), lo, hi)
    return _CIRCLE_ROWS[s0]


def shift_half_separable(F: np.ndarray, pos: ArrayLike) -> np.ndarray:
    """:func:`kernels.extract.shift_half` (centred) with the phase factor computed as the
    product of its x and y parts (complex128, rounded to complex64): the same factor as
    RELION's per-voxel ``cos/sin(mx x + my y')`` to double rounding, at a fraction of the
    cost. ``F`` ``(n, h, wh)`` complex64, ``pos`` ``(n, 2)`` (x, y) px in the box."""
    h, wh = F.shape[-2:]
    w = 2 * (wh - 1)
    pos = np.asarray(pos, dtype=np.float64).reshape(-1, 2)
    mx = 2 * np.pi * (pos[:, 0] - w // 2) / float(w)
    my = 2 * np.pi * (pos[:, 1] - h // 2) / float(h)
    ex = np.exp(1j * (mx[:, None] * np.arange(wh, dtype=np.float64)[None, :]))
    ey = np.exp(1j * (my[:, None] * signed_freq(h)[None, :]))
    z = (ey[:, :, None] * ex[:, None, :]).astype(np.complex64)
    return F * z


def frame_slices(image: np.ndarray, q_xy: ArrayLike, box: int, binning: float,
                 circle_crop: bool = True, backend: str = "auto", workers: int = 1) -> np.ndarray:
    """Fourier slices of the particles at projected positions ``q_xy`` ``(n, 2)`` in one tilt
    image, as :func:`slice_from_boxes` on boxes cut at ``round(q) - s0//2`` (RELION
    ``extractAt3D_Fourier``), computed with the fused :func:`prepare_boxes` and
    :func:`shift_half_separable`. Returns ``(n, box, box//2+1)`` complex64."""
    from .relion_geometry import box_sizes
    s0, sb = box_sizes(box, binning)
    if sb != int(box):
        raise ReconstructionError("box %d at binning %g gives a binned box of %d px"
                                  % (int(box), float(binning), sb))
    corner, pos_in_box = extract.box_corners(q_xy, s0)
    rolled = prepare_boxes(image, corner, s0, circle_crop, backend)
    binning = float(binning)
    if binning != 1.0:
        # rfft2(norm="ortho") is an r2c pass along x scaled by float32(1/s0), then a c2c pass
        # along y (pocketfft); only the columns kept by the crop need the y pass. Same
        # numbers as rfft2 followed by the crop, ~25 % fewer operations.
        F = scipy.fft.rfft(rolled, axis=-1, workers=workers)[..., :sb // 2 + 1]
        F *= np.float32(1.0 / s0)
        F = scipy.fft.fft(F, axis=-2, workers=workers)
        F = extract.fourier_crop_half(F, sb)
        F /= np.float32(binning)
    else:
        F = scipy.fft.rfft2(rolled, norm="ortho", workers=workers)
    return shift_half_separable(F, pos_in_box / binning)


def weight_slices(slices: np.ndarray, x_ranges_f: np.ndarray, ctf: Optional[np.ndarray] = None,
                  dose_f: Optional[np.ndarray] = None, sign: float = -1.0) -> np.ndarray:
    """Apply RELION's CTF x dose weighting to slices of one frame (in place) and return the
    weight slices (``reconstruct_particle.cpp``, ``processTomograms``).

    Parameters
    ----------
    slices : ndarray, (n, s, sh) complex64
        Modified in place.
    x_ranges_f : ndarray, (s,) int
        :func:`dose_x_ranges` of this frame.
    ctf : ndarray, (n, s, sh) float32 or None
        RELION CTFs of each particle in this frame (None: ``--no_ctf``).
    dose_f : ndarray, (s, sh) float32
        Dose weights of this frame.
    sign : float
        -1 (contrast inversion, RELION default) or +1.

    Returns
    -------
    ndarray, (n, s, sh) float32
        ``c^2`` with ``c = sign * CTF * dose`` (float32 arithmetic) inside the x ranges, 0
        beyond; all ones without CTF (data then only multiplied by ``sign``).
    """
    n, s, sh = slices.shape
    if ctf is None:
        slices *= np.float32(sign)
        return np.ones((n, s, sh), dtype=np.float32)
    keep = np.arange(sh)[None, :] < np.asarray(x_ranges_f)[:, None]          # (s, sh)
    c = (np.float32(sign) * np.asarray(ctf, dtype=np.float32)) \
        * np.asarray(dose_f, dtype=np.float32)[None]
    c = np.where(keep[None], c, np.float32(0.0)).astype(np.float32, copy=False)
    slices *= c
    return c * c


def slice_matrices(projection: np.ndarray, particle_rotation: np.ndarray,
                   scale: float = 1.0) -> np.ndarray:
    """Slice-to-volume matrices ``M = inv(A)^T`` with ``A = scale * P_f[:3, :3] @ E``
    (``projPart = scaleRatio * projCut * particleToTomo``; only the linear part matters in
    Fourier space). ``projection`` ``(..., 3+, 3+)``, ``particle_rotation`` ``(..., 3, 3)``
    (RELION ``A_subtomo @ A_particle``); returns ``(..., 3, 3)`` float64."""
    A = float(scale) * (np.asarray(projection, dtype=np.float64)[..., :3, :3]
                        @ np.asarray(particle_rotation, dtype=np.float64)[..., :3, :3])
    # inv(A)^T = cofactor(A) / det(A) (gravis t3Matrix::invert: adjugate / det), vectorised
    a = A
    cof = np.empty_like(a)
    cof[..., 0, 0] = a[..., 1, 1] * a[..., 2, 2] - a[..., 1, 2] * a[..., 2, 1]
    cof[..., 0, 1] = a[..., 1, 2] * a[..., 2, 0] - a[..., 1, 0] * a[..., 2, 2]
    cof[..., 0, 2] = a[..., 1, 0] * a[..., 2, 1] - a[..., 1, 1] * a[..., 2, 0]
    cof[..., 1, 0] = a[..., 0, 2] * a[..., 2, 1] - a[..., 0, 1] * a[..., 2, 2]
    cof[..., 1, 1] = a[..., 0, 0] * a[..., 2, 2] - a[..., 0, 2] * a[..., 2, 0]
    cof[..., 1, 2] = a[..., 0, 1] * a[..., 2, 0] - a[..., 0, 0] * a[..., 2, 1]
    cof[..., 2, 0] = a[..., 0, 1] * a[..., 1, 2] - a[..., 0, 2] * a[..., 1, 1]
    cof[..., 2, 1] = a[..., 0, 2] * a[..., 1, 0] - a[..., 0, 0] * a[..., 1, 2]
    cof[..., 2, 2] = a[..., 0, 0] * a[..., 1, 1] - a[..., 0, 1] * a[..., 1, 0]
    det = (a[..., 0, 0] * cof[..., 0, 0] + a[..., 0, 1] * cof[..., 0, 1]
           + a[..., 0, 2] * cof[..., 0, 2])
    if np.any(np.abs(det) < 1e-12):
        raise ReconstructionError("singular slice matrix (det %g)" % np.abs(det).min())
    return cof * (1.0 / det)[..., None, None]


# ----------------------------------------------------------------------------- finalisation
def gridding_correct_sinc2(data_fs: np.ndarray, workers: int = 1) -> np.ndarray:
    """RELION ``Reconstruction::griddingCorrect3D_sinc2(center=true)``.

    Multiplies the half spectrum by ``(-1)^(x+y+z)`` (raw indexes, i.e. centres the map),
    inverse FFT (``norm="ortho"``), then divides voxel ``(x, y, z)`` by ``sinc^2(r / s)`` with
    ``r`` the distance to ``(s/2, s/2, s/2)``; by 0.01 where ``sinc^2 < 0.01`` or
    ``r / s > 1``; the centre voxel is left as is.

    Parameters
    ----------
    data_fs : ndarray, (s, s, s//2+1) complex
        Backprojected data (not modified).

    Returns
    -------
    ndarray, (s, s, s) float64
    """
    F = np.asarray(data_fs, dtype=np.complex128)
    d, h, wh = F.shape
    w = 2 * (wh - 1)
    sign = ((-1.0) ** np.arange(d))[:, None, None] * ((-1.0) ** np.arange(h))[None, :, None] \
        * ((-1.0) ** np.arange(wh))[None, None, :]
    img = scipy.fft.irfftn(F * sign, s=(d, h, w), norm="ortho", workers=workers)
    zz = np.arange(d, dtype=np.float64) - d // 2
    yy = np.arange(h, dtype=np.float64) - h // 2
    xx = np.arange(w, dtype=np.float64) - w // 2
    r = np.sqrt(zz[:, None, None] ** 2 + yy[None, :, None] ** 2 + xx[None, None, :] ** 2)
    dd = r / w
    with np.errstate(divide="ignore", invalid="ignore"):
        sinc = np.sin(np.pi * dd) / (np.pi * dd)
    sinc2 = sinc * sinc
    div = np.where((sinc2 < 1e-2) | (dd > 1.0), 1e-2, sinc2)
    div[d // 2, h // 2, w // 2] = 1.0
    return img / div


def radial_average_half(weight_fs: np.ndarray) -> np.ndarray:
    """Linear-interpolated radial average of a half spectrum over its own voxels
    (``RadialAvg::fftwHalf_3D_lin``): ``(s//2+1,)`` float64; shells without weight are 0."""
    W = np.asarray(weight_fs, dtype=np.float64)
    d, h, wh = W.shape
    zz, yy, xx = signed_freq(d), signed_freq(h), np.arange(wh, dtype=np.float64)
    r = np.sqrt(zz[:, None, None] ** 2 + yy[None, :, None] ** 2 + xx[None, None, :] ** 2)
    r0 = r.astype(np.int64)
    w1 = r - r0
    w0 = 1.0 - w1
    avg = np.zeros(wh)
    wgh = np.zeros(wh)
    m0 = r0 < wh
    avg += np.bincount(r0[m0], (w0 * W)[m0], minlength=wh)[:wh]
    wgh += np.bincount(r0[m0], w0[m0], minlength=wh)[:wh]
    m1 = (r0 + 1) < wh
    avg += np.bincount(r0[m1] + 1, (w1 * W)[m1], minlength=wh)[:wh]
    wgh += np.bincount(r0[m1] + 1, w1[m1], minlength=wh)[:wh]
    return np.where(wgh > 0, avg / np.where(wgh > 0, wgh, 1.0), avg)


def ctf_correct_heuristic(img: np.ndarray, weight_fs: np.ndarray, weight_fraction: float = 0.001,
                          workers: int = 1) -> np.ndarray:
    """RELION ``Reconstruction::ctfCorrect3D_heuristic``: divide the spectrum of ``img`` by
    ``max(W, weight_fraction * radial_avg(W))`` (W > 0 only), zero every voxel with
    ``int(r) + 1 >= s/2 + 1``; ortho FFTs.

    Parameters
    ----------
    img : ndarray, (s, s, s) float64
        Gridding-corrected map (:func:`gridding_correct_sinc2`).
    weight_fs : ndarray, (s, s, s//2+1) float64
        Accumulated CTF^2 weights.

    Returns
    -------
    ndarray, (s, s, s) float64
    """
    img = np.asarray(img, dtype=np.float64)
    W = np.asarray(weight_fs, dtype=np.float64)
    F = scipy.fft.rfftn(img, norm="ortho", workers=workers)
    d, h, wh = F.shape
    avg = radial_average_half(W)
    zz, yy, xx = signed_freq(d), signed_freq(h), np.arange(wh, dtype=np.float64)
    r = np.sqrt(zz[:, None, None] ** 2 + yy[None, :, None] ** 2 + xx[None, None, :] ** 2)
    r0 = r.astype(np.int64)
    beyond = (r0 + 1) >= wh
    r0c = np.minimum(r0, wh - 2)
    f = r - r0
    avg_w = f * avg[r0c + 1] + (1.0 - f) * avg[r0c]
    threshold = avg_w * float(weight_fraction)
    wg = np.where(W < threshold, threshold, W)
    F = np.where(wg > 0.0, F / np.where(wg > 0.0, wg, 1.0), F)
    F[beyond] = 0.0
    return scipy.fft.irfftn(F, s=img.shape, norm="ortho", workers=workers)


def ctf_correct_wiener(img: np.ndarray, weight_fs: np.ndarray,
                       wiener_offset: Union[float, np.ndarray], workers: int = 1) -> np.ndarray:
    """RELION ``Reconstruction::ctfCorrect3D_Wiener``: spectrum / (W + 1/SNR), ortho FFTs.
    Shapes as :func:`ctf_correct_heuristic`; ``wiener_offset`` = 1/SNR."""
    img = np.asarray(img, dtype=np.float64)
    F = scipy.fft.rfftn(img, norm="ortho", workers=workers)
    F /= (np.asarray(weight_fs, dtype=np.float64) + float(wiener_offset))
    return scipy.fft.irfftn(F, s=img.shape, norm="ortho", workers=workers)


def taper(img: np.ndarray, dist: float = 10.0, subtract_mean: bool = True) -> np.ndarray:
    """RELION ``Reconstruction::taper``: with ``m = s/2.0`` and ``r`` the distance to
    ``(m, m, m)``, subtract the ``c``-weighted mean over ``r < m`` (``c = 1`` for
    ``r < m - dist``, ``0.5 - 0.5 cos(pi (m - r) / dist)`` up to ``m``), multiply by ``c``,
    and zero ``r >= m``. ``img`` ``(s, s, s)``; returns a new float64 array."""
    img = np.asarray(img, dtype=np.float64)
    s = img.shape[-1]
    m = s / 2.0
    a = np.arange(s, dtype=np.float64) - m
    r = np.sqrt(a[:, None, None] ** 2 + a[None, :, None] ** 2 + a[None, None, :] ** 2)
    inside = r < m
    with np.errstate(invalid="ignore"):
        c = np.where(r < m - dist, 1.0, 0.5 - 0.5 * np.cos(np.pi * (m - r) / dist))
    c = np.where(inside, c, 0.0)
    mean = 0.0
    if subtract_mean:
        wsum = c.sum()
        mean = (c * img).sum() / wsum if wsum > 0 else 0.0
    return np.where(inside, c * (img - mean), 0.0)


def unpad_center(img: np.ndarray, b: int) -> np.ndarray:
    """Drop ``b`` voxels on every side (``Padding::unpadCenter3D_full``)."""
    b = int(b)
    if b <= 0:
        return img
    return img[b:img.shape[0] - b, b:img.shape[1] - b, b:img.shape[2] - b]


def fftw_half_to_human_full(half: np.ndarray) -> np.ndarray:
    """A half spectrum ``(d, h, wh)`` as a full, centred ``(d, h, 2 (wh-1))`` volume, as
    RELION writes ``weight_*.mrc`` (``Centering::fftwHalfToHumanFull``, including the order
    in which the Nyquist plane is overwritten by its mirror)."""
    H = np.asarray(half)
    d, h, wh = H.shape
    w = 2 * (wh - 1)
    full = np.zeros((d, h, w), dtype=H.dtype)
    full[:, :, :wh] = H
    zi = (d - np.arange(d)) % d
    yi = (h - np.arange(h)) % h
    # mirrored writes for x = 1 .. wh-2 (distinct targets w - x)
    full[:, :, w - np.arange(1, wh - 1)] = H[zi][:, yi][:, :, 1:wh - 1]
    # Nyquist plane x = wh-1 (target w - x = wh - 1 again): later (z, y) iterations win
    if wh > 1:
        zz, yy = np.meshgrid(np.arange(d), np.arange(h), indexing="ij")
        zm, ym = zi[zz], yi[yy]
        direct_later = (zz > zm) | ((zz == zm) & (yy >= ym))
        full[:, :, wh - 1] = np.where(direct_later, H[:, :, wh - 1], H[zm, ym, wh - 1])
    cz, cy, cx = d - d // 2, h - h // 2, w - w // 2
    return np.roll(full, (-cz, -cy, -cx), axis=(0, 1, 2))


def reconstruct_map(data_fs: np.ndarray, weight_fs: np.ndarray, snr: float = -1.0,
                    crop: Optional[int] = None, taper_dist: float = 10.0,
                    weight_fraction: float = 0.001, workers: int = 1) -> dict:
    """Finalise one map as ``ReconstructParticleProgram::reconstruct`` + ``writeOutput``.

    Parameters
    ----------
    data_fs : ndarray, (s, s, s//2+1) complex128
    weight_fs : ndarray, (s, s, s//2+1) float64
    snr : float
        > 0: Wiener division by ``W + 1/snr``; otherwise RELION's heuristic.
    crop : int, optional
        Output size (``--crop``); ``None`` or >= s: no cropping.
    taper_dist : float
        RELION ``--taper`` (px).

    Returns
    -------
    dict
        ``data`` (gridding-corrected map before CTF division, ``data_<tag>.mrc``),
        ``full`` (CTF-corrected ``s``^3 map, ``<tag>_full.mrc`` when cropping) and ``map``
        (the tapered, possibly cropped map, ``<tag>.mrc``), all float64.
    """
    data = gridding_correct_sinc2(data_fs, workers=workers)
    if snr is not None and float(snr) > 0:
        corrected = ctf_correct_wiener(data, weight_fs, 1.0 / float(snr), workers=workers)
    else:
        corrected = ctf_correct_heuristic(data, weight_fs, weight_fraction, workers=workers)
    s = corrected.shape[-1]
    if crop is not None and 0 < int(crop) < s:
        out = taper(unpad_center(corrected, (s - int(crop)) // 2), taper_dist, True)
    else:
        out = taper(corrected, taper_dist, True)
    return {"data": data, "full": corrected, "map": out}
