"""RELION 5 tomography geometry: projection matrices, particle positions, visibility.

Pure NumPy (float64). Conventions are those of RELION 5.0.1 (3dem/relion ``ver5.0``),
checked against its binary (see docs/extract-subtomos.md):

* Positions are "decentred pixels": unbinned tilt-series pixels from the tomogram corner,
  pixel centres at integer coordinates, ``(x, y, z)`` order (x = tilt-image column).
* ``rlnCenteredCoordinate*Angst`` -> ``p = c / ps + (w0, h0, d0) / 2.0`` with
  ``(w0, h0, d0)`` = ``rlnTomoSizeX/Y/Z`` (RELION ``ParticleSet::getParticleCoordDecenteredPixel``).
  A missing size is RELION's -999.
* Projection matrix of frame f (RELION ``Tomogram::setProjectionMatrix``)::

      P_f = S(xshift/ps, yshift/ps, 0) . S(int(W/2), int(H/2), 0)
            . Rz(zrot) . Ry(ytilt) . Rx(xtilt) . S(-int(w0/2), -int(h0/2), -int(d0/2))

  Note the **half-pixel rule**: the matrix uses C integer division ``int(n/2)`` (truncation
  towards zero) while the coordinate centre uses ``n/2.0``; with an odd or missing tomogram
  size every particle moves by half a pixel, as in RELION.
* Rotations are active and right-handed, angles in degrees.

Nothing here imports pyworkflow; the functions are shared by extraction
(docs/extract-subtomos.md) and reconstruction (docs/reconstruct.md).
"""
import math
from typing import List, Optional, Sequence, Tuple

import numpy as np
from numpy.typing import ArrayLike

from .euler import relion_euler_matrix

__all__ = ["MISSING_TOMO_SIZE", "rot_x", "rot_y", "rot_z", "c_half", "tomogram_centre",
           "projection_matrices", "decentred_positions", "apply_offsets", "project",
           "depth_offsets", "visibility", "select_frames", "relion_round", "box_sizes",
           "GeometryError"]

#: RELION's value for a tomogram size that is absent from tomograms.star
MISSING_TOMO_SIZE = -999


class GeometryError(ValueError):
    """Inconsistent geometry input (shapes, pixel sizes); the message names the values."""


def c_half(n: int) -> float:
    """C integer division ``n/2`` of an integer size (truncation towards zero, so -999 -> -499),
    as RELION's ``int(n/2)``."""
    return float(math.trunc(int(n) / 2))


def rot_x(deg: ArrayLike) -> np.ndarray:
    """Active right-handed rotation about x, ``(..., 3, 3)``; ``deg`` in degrees."""
    a = np.deg2rad(np.asarray(deg, dtype=np.float64))
    c, s = np.cos(a), np.sin(a)
    R = np.zeros(a.shape + (3, 3))
    R[..., 0, 0] = 1.0
    R[..., 1, 1], R[..., 1, 2], R[..., 2, 1], R[..., 2, 2] = c, -s, s, c
    return R


def rot_y(deg: ArrayLike) -> np.ndarray:
    """Active right-handed rotation about y: ``[[c, 0, s], [0, 1, 0], [-s, 0, c]]``."""
    a = np.deg2rad(np.asarray(deg, dtype=np.float64))
    c, s = np.cos(a), np.sin(a)
    R = np.zeros(a.shape + (3, 3))
    R[..., 1, 1] = 1.0
    R[..., 0, 0], R[..., 0, 2], R[..., 2, 0], R[..., 2, 2] = c, s, -s, c
    return R


def rot_z(deg: ArrayLike) -> np.ndarray:
    """Active right-handed rotation about z: ``[[c, -s, 0], [s, c, 0], [0, 0, 1]]``."""
    a = np.deg2rad(np.asarray(deg, dtype=np.float64))
    c, s = np.cos(a), np.sin(a)
    R = np.zeros(a.shape + (3, 3))
    R[..., 2, 2] = 1.0
    R[..., 0, 0], R[..., 0, 1], R[..., 1, 0], R[..., 1, 1] = c, -s, s, c
    return R


def tomogram_centre(tomo_size: Optional[Sequence[int]]) -> np.ndarray:
    """RELION's tomogram centre ``(w0/2.0, h0/2.0, d0/2.0)`` in decentred pixels.

    ``tomo_size`` is ``(w0, h0, d0)`` (``rlnTomoSizeX/Y/Z``) or None for RELION's -999.
    """
    size = _tomo_size(tomo_size)
    return np.array([s / 2.0 for s in size])


def _tomo_size(tomo_size):
    if tomo_size is None:
        return (float(MISSING_TOMO_SIZE),) * 3
    size = tuple(float(s) for s in tomo_size)
    if len(size) != 3:
        raise GeometryError("tomogram size must be (x, y, z), got %s" % (tomo_size,))
    return size


def projection_matrices(ytilt: ArrayLike, zrot: ArrayLike, xshift_angst: ArrayLike,
                        yshift_angst: ArrayLike, pixel_size: float, image_size: Sequence[int],
                        tomo_size: Optional[Sequence[int]],
                        xtilt: Optional[ArrayLike] = None) -> np.ndarray:
    """RELION 5 projection matrices of a tilt series (``Tomogram::setProjectionMatrix``).

    Parameters
    ----------
    ytilt, zrot, xshift_angst, yshift_angst : array_like, shape (F,)
        ``rlnTomoYTilt``, ``rlnTomoZRot`` (degrees), ``rlnTomoX/YShiftAngst`` (Å), one per
        tilt-series row (frame) in stack order.
    pixel_size : float
        Tilt-series pixel size ``rlnTomoTiltSeriesPixelSize`` in Å.
    image_size : (W, H)
        Tilt-image width and height in px.
    tomo_size : (w0, h0, d0) or None
        ``rlnTomoSizeX/Y/Z`` in unbinned tilt-series px; None = missing (RELION uses -999).
    xtilt : array_like, shape (F,), optional
        ``rlnTomoXTilt`` in degrees (default 0).

    Returns
    -------
    numpy.ndarray
        ``(F, 4, 4)`` float64 matrices mapping homogeneous decentred positions ``(x, y, z, 1)``
        to ``(u, v, depth, 1)``; ``u, v`` are tilt-image pixel coordinates (pixel centres at
        integers, u = column).

    Raises
    ------
    GeometryError
        non-positive pixel size or mismatched array lengths.
    """
    ytilt = np.atleast_1d(np.asarray(ytilt, dtype=np.float64))
    n = ytilt.shape[0]
    zrot = np.broadcast_to(np.asarray(zrot, dtype=np.float64), (n,))
    xs = np.broadcast_to(np.asarray(xshift_angst, dtype=np.float64), (n,))
    ys = np.broadcast_to(np.asarray(yshift_angst, dtype=np.float64), (n,))
    xt = np.zeros(n) if xtilt is None else np.broadcast_to(
        np.asarray(xtilt, dtype=np.float64), (n,))
    ps = float(pixel_size)
    if not ps > 0.001:
        raise GeometryError("tilt-series pixel size must be > 0.001 Å, got %r" % pixel_size)
    W, H = image_size
    w0, h0, d0 = _tomo_size(tomo_size)
    R = rot_z(zrot) @ rot_y(ytilt) @ rot_x(xt)                     # (F, 3, 3)
    s0 = -np.array([c_half(w0), c_half(h0), c_half(d0)])
    P = np.zeros((n, 4, 4))
    P[:, :3, :3] = R
    P[:, :3, 3] = R @ s0
    P[:, 0, 3] += c_half(W) + xs / ps
    P[:, 1, 3] += c_half(H) + ys / ps
    P[:, 3, 3] = 1.0
    return P


def decentred_positions(pixel_size: float, tomo_size: Optional[Sequence[int]],
                        centered_angst: Optional[ArrayLike] = None,
                        coordinates_px: Optional[ArrayLike] = None) -> np.ndarray:
    """Particle positions in decentred tilt-series pixels, ``(N, 3)`` float64 (x, y, z).

    ``centered_angst`` (``rlnCenteredCoordinateX/Y/ZAngst``, RELION 5) is converted with
    ``c / ps + size / 2.0``; otherwise ``coordinates_px`` (RELION 4 ``rlnCoordinateX/Y/Z``,
    unbinned tilt-series px) are used as they are (``getParticleCoordDecenteredPixel``).
    """
    if centered_angst is not None:
        c = np.asarray(centered_angst, dtype=np.float64).reshape(-1, 3)
        return c / float(pixel_size) + tomogram_centre(tomo_size)
    if coordinates_px is None:
        raise GeometryError("particle coordinates are missing: give rlnCenteredCoordinate*"
                            "Angst or rlnCoordinateX/Y/Z")
    return np.asarray(coordinates_px, dtype=np.float64).reshape(-1, 3).copy()


def apply_offsets(positions: ArrayLike, origins_angst: Optional[ArrayLike], pixel_size: float,
                  subtomo_angles: Optional[ArrayLike] = None) -> np.ndarray:
    """Fold ``rlnOriginX/Y/ZAngst`` into positions as RELION does (``ParticleSet::getPosition``):
    ``p -= A_subtomo . origin / ps``, with ``A_subtomo`` RELION's Euler matrix of
    ``rlnTomoSubtomogramRot/Tilt/Psi`` (identity if None). Shapes ``(N, 3)``; returns a copy.
    """
    p = np.asarray(positions, dtype=np.float64).reshape(-1, 3)
    o = np.asarray(origins_angst, dtype=np.float64).reshape(-1, 3)
    if subtomo_angles is not None:
        a = np.asarray(subtomo_angles, dtype=np.float64).reshape(-1, 3)
        A = relion_euler_matrix(a[:, 0], a[:, 1], a[:, 2])
        o = np.einsum("nij,nj->ni", A, o)
    return p - o / float(pixel_size)


def project(P: np.ndarray, positions: ArrayLike) -> np.ndarray:
    """Project positions ``(N, 3)`` with matrices ``(F, 4, 4)``: ``(F, N, 3)`` = (u, v, depth)."""
    P = np.asarray(P, dtype=np.float64)
    p = np.asarray(positions, dtype=np.float64).reshape(-1, 3)
    return np.einsum("fij,nj->fni", P[:, :3, :3], p) + P[:, None, :3, 3]


def depth_offsets(P: np.ndarray, positions: ArrayLike,
                  tomo_size: Optional[Sequence[int]]) -> np.ndarray:
    """Depth of each particle relative to the tomogram centre along each frame's beam,
    ``(F, N)`` px (``Tomogram::getDepthOffset``): ``(P p).z - (P centre).z``."""
    q = project(P, positions)[..., 2]
    c = project(P, tomogram_centre(tomo_size)[None])[..., 2]
    return q - c


def visibility(q: np.ndarray, image_size: Sequence[int], radius: float) -> np.ndarray:
    """RELION's visibility test (``Tomogram::isVisible``): ``r < u < W - r`` and
    ``r < v < H - r``, strict. ``q`` is ``(..., 2+)`` (u, v); returns a bool array."""
    W, H = image_size
    u, v = q[..., 0], q[..., 1]
    r = float(radius)
    return (u > r) & (u < W - r) & (v > r) & (v < H - r)


def select_frames(q: np.ndarray, image_size: Sequence[int], radius: float, pre_exposure: ArrayLike,
                  max_dose: float = -1.0, min_frames: int = 1) -> Tuple[np.ndarray, np.ndarray]:
    """Visible frames and kept particles (``Tomogram::getVisibilityMinFramesMaxDose``).

    Parameters
    ----------
    q : ndarray, (F, N, 2+)
        projected positions.
    radius : float
        visibility radius in unbinned px (``binning * crop / 2`` for extraction, ``box / 2``
        for RELION's reconstruction).
    pre_exposure : array_like, (F,)
        ``rlnMicrographPreExposure`` (e/Å²); frames above ``max_dose`` (if > 0) are dropped.
    min_frames : int
        a particle is kept iff at least this many frames stay visible.

    Returns
    -------
    visible : ndarray, (F, N) bool
    keep : ndarray, (N,) bool

    Raises
    ------
    GeometryError
        ``min_frames < 0`` (RELION aborts too).
    """
    if min_frames < 0:
        raise GeometryError("minimum number of frames must be >= 0, got %d" % min_frames)
    vis = visibility(q, image_size, radius)
    if max_dose is not None and max_dose > 0:
        vis &= (np.asarray(pre_exposure, dtype=np.float64) <= max_dose)[:, None]
    keep = vis.sum(axis=0) >= int(min_frames)
    return vis, keep


def relion_round(x: ArrayLike) -> np.ndarray:
    """C ``round``: halves away from zero (numpy's ``round`` goes to even)."""
    x = np.asarray(x, dtype=np.float64)
    return np.sign(x) * np.floor(np.abs(x) + 0.5)


def box_sizes(box: int, binning: float) -> Tuple[int, int]:
    """``(s0, sb)``: pre-binning box ``(int)(bin*box + 0.5)`` and binned box
    ``(int)(s0/bin + 0.5)`` (RELION ``subtomo.cpp`` / ``extractAt2D_Fourier``)."""
    s0 = int(float(binning) * int(box) + 0.5)
    sb = int(s0 / float(binning) + 0.5)
    return s0, sb


def box_errors(box: int, crop: int, binning: float, min_box: int = 2) -> List[str]:
    """Problems with a RELION box / crop / binning triple (list of messages, empty if valid).

    The box must be even (>= ``min_box``), the crop even-compatible with it (RELION crops
    ``(box - crop) / 2`` px on each side), the binning >= 1, and ``bin x box`` must bin back
    to ``box`` (:func:`box_sizes`).
    """
    err = []
    if box < min_box or box % 2:
        err.append("box size must be an even number of px >= %d, got %d" % (min_box, box))
    if crop < 2 or crop > box:
        err.append("crop size must be between 2 and the box size %d px, got %d" % (box, crop))
    elif (box - crop) % 2:
        err.append("box size %d and crop size %d must both be even (RELION crops "
                   "(box - crop)/2 px on each side)" % (box, crop))
    if not binning >= 1.0:
        err.append("binning must be >= 1, got %g" % binning)
    else:
        s0, sb = box_sizes(box, binning)
        if sb != box:
            err.append("box %d at binning %g: the unbinned box %d bins to %d px, not %d; "
                       "choose a binning with bin x box an integer" % (box, binning, s0, sb, box))
    return err
