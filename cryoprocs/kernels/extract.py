"""Particle extraction kernels: RELION 5 2D tilt stacks and plain 3D sub-volumes.

Pure NumPy/SciPy on arrays; everything is float32 like RELION, with the CTF and dose weights
computed in float64 and stored as float32 (kernels/ctf.py). The steps follow RELION 5.0.1
``relion_tomo_subtomo --stack2d`` (``extractAt2D_Fourier``, ``subtomo.cpp``, see
docs/extract-subtomos.md):

1. :func:`cut_boxes`: an ``s0`` x ``s0`` square at ``round(q) - s0//2`` (C ``round``), pixels
   outside the image replaced by the nearest edge pixel (``extractSquares``).
2. :func:`centered_rfft2`: roll by ``s0//2`` (box centre = phase origin), float32 r2c FFT with
   ``norm="ortho"`` (``FourierTransformStack_fast``, ``FFT::Both``).
3. :func:`fourier_crop_half`: keep ``x <= sb/2`` and the rows ``y < sb//2 -> y``,
   ``y >= sb//2 -> y - sb + s0`` (``FourierCrop_fftwHalfStack``), then divide by ``bin``.
4. :func:`shift_half`: sub-pixel phase shift so the particle lands on pixel ``sb//2``
   (``NewStackHelper::shiftStack(centered=true)``).
5. multiply by ``sign * CTF * dose`` (``sign = -1``: contrast inversion), divide by ``bin``
   again (2D stacks), inverse FFT with the ``(-1)^(x+y)`` decentring
   (:func:`centered_irfft2`).
6. :func:`crop_circle`: subtract the mean outside the circle of radius ``crop/2`` and apply a
   5 px raised-cosine edge (``TomoExtraction::cropCircle``); centre crop to ``crop``.
7. :func:`relion_float16`: RELION's own float16 rounding (``src/float16.h``).

Arrays: images ``[n, y, x]``; positions ``(x, y)`` in pixels (x = column); spectra are the
FFTW half spectrum ``[n, y, x <= size/2]``.
"""
from typing import Optional, Tuple

import numpy as np
from numpy.typing import ArrayLike
import scipy.fft

from .relion_geometry import relion_round

__all__ = ["cut_boxes", "centered_rfft2", "fourier_crop_half", "shift_half",
           "centered_irfft2", "crop_circle", "circle_crop_weights", "center_crop",
           "relion_float16", "fourier_boxes", "stack2d_from_boxes", "box_corners", "subvolume",
           "ExtractionError"]


class ExtractionError(ValueError):
    """Invalid extraction parameters; the message names the values."""


# ----------------------------------------------------------------------------- cutting
def box_corners(q: ArrayLike, s0: int) -> Tuple[np.ndarray, np.ndarray]:
    """Integer corners ``round(q) - s0//2`` (C ``round``) and the residual sub-pixel positions
    ``q - corner`` of projected positions ``q`` ``(..., 2)`` (x, y)."""
    q = np.asarray(q, dtype=np.float64)
    corner = relion_round(q[..., :2]) - (int(s0) // 2)
    return corner.astype(np.int64), q[..., :2] - corner


def cut_boxes(image: np.ndarray, corners: np.ndarray, size: int, row_offset: int = 0,
              image_height: Optional[int] = None) -> np.ndarray:
    """Cut ``size`` x ``size`` boxes with edge replication (RELION ``extractSquares``).

    Parameters
    ----------
    image : ndarray, (H', W)
        A tilt image, or a band of its rows starting at image row ``row_offset`` (the band
        must contain every clamped row the boxes need).
    corners : int array, (n, 2)
        ``(x0, y0)`` of each box in full-image pixel coordinates; pixels outside
        ``[0, W) x [0, H)`` take the value of the nearest edge pixel.
    size : int
        box size in px.
    row_offset : int
        image row of ``image[0]``.
    image_height : int, optional
        height H of the full image (default: ``row_offset + image.shape[0]``).

    Returns
    -------
    ndarray, (n, size, size), the dtype of ``image``.

    Raises
    ------
    ExtractionError
        a needed row is not in the band.
    """
    corners = np.asarray(corners, dtype=np.int64).reshape(-1, 2)
    H = int(image_height) if image_height is not None else int(row_offset) + image.shape[0]
    return _cut(image, corners, size, int(row_offset), image.shape[1], H)


def _cut(image, corners, size, row_offset, W, H):
    ar = np.arange(int(size))
    xs = np.clip(corners[:, 0, None] + ar, 0, W - 1)
    ys = np.clip(corners[:, 1, None] + ar, 0, H - 1) - int(row_offset)
    if ys.min(initial=0) < 0 or ys.max(initial=0) >= image.shape[0]:
        raise ExtractionError("box rows %d..%d are outside the rows %d..%d read from the image"
                              % (ys.min() + row_offset, ys.max() + row_offset, row_offset,
                                 row_offset + image.shape[0] - 1))
    return image[ys[:, :, None], xs[:, None, :]]


# ----------------------------------------------------------------------------- Fourier steps
def centered_rfft2(boxes: np.ndarray, workers: int = 1) -> np.ndarray:
    """Float32 r2c FFT of ``[n, s, s]`` boxes rolled by ``s//2`` (box centre = origin),
    ``norm="ortho"``: RELION ``FourierTransformStack_fast(center=true, FFT::Both)``.
    Returns complex64 ``[n, s, s//2+1]``."""
    b = np.asarray(boxes, dtype=np.float32)
    h, w = b.shape[-2:]
    b = np.roll(b, (-(h // 2), -(w // 2)), axis=(-2, -1))
    return scipy.fft.rfft2(b, norm="ortho", workers=workers)


def fourier_crop_half(F: np.ndarray, size: int) -> np.ndarray:
    """Fourier crop a half spectrum ``[n, h0, w0//2+1]`` to ``[n, size, size//2+1]``
    (RELION ``FourierCrop_fftwHalfStack``: rows ``y < size//2 -> y``, else
    ``y - size + h0``). No scaling here."""
    h0 = F.shape[-2]
    wh = int(size) // 2 + 1
    rows = np.arange(int(size))
    rows = np.where(rows < int(size) // 2, rows, rows - int(size) + h0)
    return F[..., rows, :wh]


def shift_half(F: np.ndarray, pos: ArrayLike, centered: bool = True) -> np.ndarray:
    """Phase-shift half spectra ``[n, h, wh]`` so that the point at ``pos`` ``(n, 2)`` (x, y;
    px in the box) moves to the box centre (RELION ``NewStackHelper::shiftStack``).

    With ``w = 2 (wh - 1)``: ``t = pos - (w//2, h//2)`` if centered, and
    ``F *= exp(i 2 pi (t_x x / w + t_y y' / h))`` with ``y' = y`` for ``y < h//2`` else
    ``y - h``. The phase factor is computed in float64 and rounded to complex64.
    """
    F = np.asarray(F)
    h, wh = F.shape[-2:]
    w = (wh - 1) * 2
    pos = np.asarray(pos, dtype=np.float64).reshape(-1, 2)
    tx = pos[:, 0] - (w // 2 if centered else 0)
    ty = pos[:, 1] - (h // 2 if centered else 0)
    x = np.arange(wh, dtype=np.float64)
    y = np.arange(h, dtype=np.float64)
    y = np.where(y < h // 2, y, y - h)
    phi = (2 * np.pi * tx / w)[:, None, None] * x[None, None, :] \
        + (2 * np.pi * ty / h)[:, None, None] * y[None, :, None]
    z = (np.cos(phi) + 1j * np.sin(phi)).astype(F.dtype if np.iscomplexobj(F) else
                                                np.complex64)
    return F * z


def centered_irfft2(F: np.ndarray, workers: int = 1) -> np.ndarray:
    """Inverse of :func:`centered_rfft2` as RELION's ``inverseFourierTransformStack
    (decenter=true, FFT::Both)``: multiply by ``(-1)^(x+y)`` (raw indices), c2r FFT of size
    ``(h, 2 (wh - 1))``, ``norm="ortho"``. Returns float32 ``[n, h, w]``."""
    h, wh = F.shape[-2:]
    w = 2 * (wh - 1)
    sign = np.where((np.arange(h)[:, None] + np.arange(wh)[None, :]) % 2 == 0, 1, -1)
    G = F * sign.astype(np.float32)
    return scipy.fft.irfft2(G, s=(h, w), norm="ortho", workers=workers).astype(np.float32,
                                                                                copy=False)


# ----------------------------------------------------------------------------- real space
def circle_crop_weights(size: int, boundary: int,
                        falloff: float = 5.0) -> Tuple[np.ndarray, np.ndarray]:
    """Weights ``c(r)`` and outside mask of RELION's ``cropCircle`` for a ``size`` x ``size``
    image: centre ``(size//2, size//2)``, radius ``R = size//2 - boundary``; ``c = 1`` for
    ``r < R - falloff``, ``0.5 - 0.5 cos(pi (R - r) / falloff)`` up to ``R``, 0 beyond.
    Returns ``(c, outside)`` with ``outside = r > R`` (where the background mean is taken)."""
    size = int(size)
    m = size // 2
    R = m - float(boundary)
    yy, xx = np.mgrid[0:size, 0:size].astype(np.float64)
    r = np.sqrt((xx - m) ** 2 + (yy - m) ** 2)
    c = np.where(r < R - falloff, 1.0,
                 np.where(r < R, 0.5 - 0.5 * np.cos(np.pi * (R - r) / falloff), 0.0))
    return c, r > R


def crop_circle(images: np.ndarray, boundary: int, falloff: float = 5.0) -> np.ndarray:
    """RELION ``TomoExtraction::cropCircle`` on ``[n, s, s]`` images (returns a new float32
    array): subtract the mean of the pixels outside radius ``s//2 - boundary`` (in float64),
    then multiply by the raised-cosine weights of :func:`circle_crop_weights`."""
    imgs = np.asarray(images)
    c, outside = circle_crop_weights(imgs.shape[-1], boundary, falloff)
    n_out = int(outside.sum())
    if n_out:
        mean = imgs[..., outside].sum(axis=-1, dtype=np.float64) / n_out
    else:
        mean = np.zeros(imgs.shape[:-2])
    out = c * (imgs - mean[..., None, None])
    return out.astype(np.float32)


def center_crop(images: np.ndarray, boundary: int) -> np.ndarray:
    """Pixels ``[boundary, s - boundary)`` along y and x (RELION ``unpadCenter2D_full``)."""
    b = int(boundary)
    if b == 0:
        return images
    return images[..., b:images.shape[-2] - b, b:images.shape[-1] - b]


def relion_float16(x: ArrayLike) -> np.ndarray:
    """Round float32 values to float16 as RELION does (``float2half`` in src/float16.h).

    Round half up on the magnitude (add ``1 << 12`` to the float32 mantissa, truncate),
    flush float16 subnormals (|v| < 2**-14) to signed zero, saturate overflow to +-65504;
    inf/NaN keep their class. Returns a float16 array (numpy's ``astype`` rounds to even
    and keeps subnormals, which differs for ~4 % of voxels).
    """
    f = np.ascontiguousarray(x, dtype=np.float32)
    i = f.view(np.uint32)
    sign = ((i >> 16) & 0x8000).astype(np.uint16)
    exp = ((i >> 23) & 0xFF).astype(np.int64)
    frac = (i & 0x007FFFFF).astype(np.int64)
    special = exp == 255
    frac_r = frac + (1 << 12)
    carry = (frac_r & (1 << 23)) != 0
    frac_r = np.where(carry, frac_r & 0x007FFFFF, frac_r)
    exp_r = np.where(carry, exp + 1, exp)
    out = sign.copy()
    normal = (exp != 0) & ~special & (exp_r >= 127 - 14) & (exp_r <= 127 + 15)
    over = (exp != 0) & ~special & (exp_r > 127 + 15)
    out = np.where(normal, sign | (((exp_r + 15 - 127) & 0x1F) << 10).astype(np.uint16)
                   | (frac_r >> 13).astype(np.uint16), out)
    out = np.where(over, sign | np.uint16((30 << 10) | 0x03FF), out)
    out = np.where(special, sign | np.uint16(31 << 10) | (frac >> 13).astype(np.uint16), out)
    return out.astype(np.uint16).view(np.float16).reshape(f.shape)


# ----------------------------------------------------------------------------- pipeline
def fourier_boxes(boxes: np.ndarray, pos_in_box: ArrayLike, binning: float, box: int,
                  circle_precrop: bool = False, workers: int = 1) -> np.ndarray:
    """Cut boxes -> centred, Fourier-binned, sub-pixel-shifted half spectra, as RELION's
    ``TomoExtraction::extractAt2D_Fourier`` (shared by 2D-stack extraction and
    reconstruction).

    Parameters
    ----------
    boxes : ndarray, (n, s0, s0)
        unrolled boxes from :func:`cut_boxes` (``s0 = (int)(bin * box + 0.5)``).
    pos_in_box : ndarray, (n, 2)
        particle position inside each box (x, y), unbinned px (``q - corner``).
    binning : float
    box : int
        binned box size ``b``.
    circle_precrop : bool
        RELION's ``cropCircle(boundary 0, falloff 5)`` with mean subtraction on the unbinned
        box before the FFT (on by default in reconstruction, off in extraction).

    Returns
    -------
    ndarray, (n, b, b//2+1) complex64
        divided by ``bin`` once (when ``bin != 1``), particle centre on pixel ``b//2``.

    Raises
    ------
    ExtractionError
        the binned box is not ``b`` px.
    """
    s0 = boxes.shape[-1]
    binning = float(binning)
    if circle_precrop:
        boxes = crop_circle(boxes, 0, 5.0)
    F = centered_rfft2(boxes, workers=workers)
    if binning != 1.0:
        F = fourier_crop_half(F, int(s0 / binning + 0.5))
        F /= np.float32(binning)
    if F.shape[-2] != int(box):
        raise ExtractionError("box %d at binning %g gives a binned box of %d px; use a box "
                              "size and binning with bin*box an integer" % (int(box), binning,
                                                                            F.shape[-2]))
    return shift_half(F, np.asarray(pos_in_box, dtype=np.float64) / binning)


def stack2d_from_boxes(boxes: np.ndarray, pos_in_box: ArrayLike, binning: float, box: int,
                       crop: int, weights: Optional[np.ndarray] = None, sign: float = -1.0,
                       circle_crop: bool = True, workers: int = 1) -> np.ndarray:
    """RELION 5 2D-stack processing of cut boxes (``extractAt2D_Fourier`` + ``subtomo.cpp``).

    Parameters
    ----------
    boxes : ndarray, (n, s0, s0) float32
        Unrolled boxes from :func:`cut_boxes` (``s0`` = pre-binning box).
    pos_in_box : ndarray, (n, 2)
        Particle position inside each box, ``q - corner`` (x, y) in unbinned px.
    binning : float
        Binning factor (``--bin``).
    box, crop : int
        Binned box ``b`` and output size ``crop <= b`` (same parity).
    weights : ndarray, (n, b, b//2+1) float32, optional
        ``CTF * dose`` per image (the product rounded to float32, as RELION); None = no CTF
        premultiplication (``--no_ctf``: only the sign is applied, no dose weighting).
    sign : float
        -1 inverts the contrast (RELION default), +1 keeps it (``--no_ic``).
    circle_crop : bool
        background subtraction and soft circular mask of radius ``crop/2``.

    Returns
    -------
    ndarray, (n, crop', crop') float32 with ``crop' = b - 2 ((b - crop) // 2)``.
    """
    b = int(box)
    binning = float(binning)
    F = fourier_boxes(boxes, pos_in_box, binning, b, workers=workers)
    if weights is not None:
        F *= (np.float32(sign) * np.asarray(weights, dtype=np.float32))
    else:
        F *= np.float32(sign)
    F /= np.float32(binning)
    imgs = centered_irfft2(F, workers=workers)
    boundary = (b - int(crop)) // 2
    if circle_crop:
        imgs = crop_circle(imgs, boundary, 5.0)
    return np.ascontiguousarray(center_crop(imgs, boundary))


def subvolume(volume: np.ndarray, center_xyz: ArrayLike, box: int, pad: str = "edge",
              fill: float = 0.0) -> Tuple[np.ndarray, bool]:
    """Cut a ``box``^3 sub-volume ``[z, y, x]`` centred at voxel ``round(center)`` (corner
    ``round(c) - box//2``), reading only the needed slab of ``volume`` (works on mmaps).

    Parameters
    ----------
    volume : ndarray-like, (Z, Y, X)
    center_xyz : (x, y, z)
        0-based voxel coordinates (x = column).
    pad : {"edge", "constant", None}
        how voxels outside the volume are filled: nearest edge voxel, ``fill``, or None to
        raise :class:`ExtractionError`.

    Returns
    -------
    (ndarray (box, box, box) float32, bool inside)
        ``inside`` is False when the box leaves the volume.
    """
    box = int(box)
    Z, Y, X = volume.shape
    c = relion_round(np.asarray(center_xyz, dtype=np.float64)[:3])
    x0, y0, z0 = (int(v) - box // 2 for v in c)
    lo = np.array([z0, y0, x0])
    hi = lo + box
    shape = np.array([Z, Y, X])
    inside = bool(np.all(lo >= 0) and np.all(hi <= shape))
    if inside:
        return np.array(volume[z0:z0 + box, y0:y0 + box, x0:x0 + box], dtype=np.float32), True
    if pad is None:
        raise ExtractionError("box of %d voxels at (x, y, z) = %s leaves the volume of size "
                              "(x, y, z) = %s" % (box, tuple(c), (X, Y, Z)))
    a = np.maximum(lo, 0)
    b = np.minimum(hi, shape)
    out = np.full((box, box, box), np.float32(fill), dtype=np.float32)
    if np.all(b > a):
        src = np.asarray(volume[a[0]:b[0], a[1]:b[1], a[2]:b[2]], dtype=np.float32)
        if pad == "edge":
            zz = np.clip(np.arange(box) + lo[0], a[0], b[0] - 1) - a[0]
            yy = np.clip(np.arange(box) + lo[1], a[1], b[1] - 1) - a[1]
            xx = np.clip(np.arange(box) + lo[2], a[2], b[2] - 1) - a[2]
            out = src[zz[:, None, None], yy[None, :, None], xx[None, None, :]]
        else:
            d = a - lo
            out[d[0]:d[0] + (b - a)[0], d[1]:d[1] + (b - a)[1], d[2]:d[2] + (b - a)[2]] = src
    return np.ascontiguousarray(out, dtype=np.float32), False
