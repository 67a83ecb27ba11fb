"""Point-group symmetry in RELION's conventions: the operator matrices of Cn, Dn, T, O, I
(I1..I4) and the Fourier-space symmetrisation of RELION's tomography programs.

Matrices (RELION src/symmetries.cpp ``SymList::read_sym_file`` / ``fill_symmetry_class``,
``SymList::compute_subgroup``; src/transformations.cpp ``rotation3DMatrix``):

* generators, as RELION's built-in symmetry "files":

  ======== ====================================================================
  Cn       rot_axis n (0, 0, 1)
  Dn       rot_axis n (0, 0, 1) (if n > 1), rot_axis 2 (1, 0, 0)
  T        rot_axis 3 (0, 0, 1), rot_axis 2 (0, 0.816496, 0.577350)
  O        rot_axis 3 (.5773502, .5773502, .5773502), rot_axis 4 (0, 0, 1)
  I, I2    rot_axis 2 (0, 0, 1), rot_axis 5 (0.525731114, 0, 0.850650807),
           rot_axis 3 (0, 0.356822076, 0.934172364)
  I1       rot_axis 2 (1, 0, 0), rot_axis 5 (0.85065080702670, 0, -0.5257311142635),
           rot_axis 3 (0.9341723640, 0.3568220765, 0)
  I3       rot_axis 2 (-0.5257311143, 0, 0.8506508070), rot_axis 5 (0, 0, 1),
           rot_axis 3 (-0.4911234778630044, 0.3568220764705179, 0.7946544753759428)
  I4       rot_axis 2 (0.5257311143, 0, 0.8506508070),
           rot_axis 5 (0.8944271932547096, 0, 0.4472135909903704),
           rot_axis 3 (0.4911234778630044, 0.3568220764705179, 0.7946544753759428)
  ======== ====================================================================

* ``rot_axis n a`` adds, for ``j = 1 .. n-1``, the transpose of the active right-handed
  rotation by ``j * 360/n`` degrees about the normalised axis ``a`` (``rotation3DMatrix``:
  ``B^T Rz B`` with ``B`` RELION's ``alignWithZ``), entries below 1e-6 set to 0;
* the group is closed by multiplying pairs ``(i, j)`` in RELION's order (by increasing
  ``max(i, j)``: ``(0, n) .. (n, n)``, then ``(n, n-1) .. (n, 0)``), appending every product
  that is not the identity and differs from every known operator by more than 1e-6 in some
  entry (``XMIPP_EQUAL_ACCURACY``), small entries set to 0.

The identity is not in the list (``SymList::SymsNo``).

Symmetrisation (src/jaz/image/symmetry.h ``symmetrise_FS_complex`` / ``symmetrise_FS_real``):
``out(k) = (F(k) + sum_R F~(R k)) / (N + 1)`` on the FFTW half spectrum, with ``F~`` RELION's
trilinear half-spectrum interpolation (``Interpolation::linearXYZ_FftwHalf_complex``:
``x <= 0`` -> conjugate value at ``-k``; indexes clipped/wrapped as RELION does). Point groups
have no translation, so no phase factor.
"""
import math
import re

import numpy as np

__all__ = ["SymmetryError", "parse_symmetry", "point_group_matrices", "group_order",
           "symmetrise_fs", "symmetrise_volume"]

EQUAL_ACCURACY = 1e-6

_GENERATORS = {
    "T": [(3, (0.0, 0.0, 1.0)), (2, (0.0, 0.816496, 0.577350))],
    "O": [(3, (.5773502, .5773502, .5773502)), (4, (0.0, 0.0, 1.0))],
    "I": [(2, (0.0, 0.0, 1.0)), (5, (0.525731114, 0.0, 0.850650807)),
          (3, (0.0, 0.356822076, 0.934172364))],
    "I1": [(2, (1.0, 0.0, 0.0)), (5, (0.85065080702670, 0.0, -0.5257311142635)),
           (3, (0.9341723640, 0.3568220765, 0.0))],
    "I3": [(2, (-0.5257311143, 0.0, 0.8506508070)), (5, (0.0, 0.0, 1.0)),
           (3, (-0.4911234778630044, 0.3568220764705179, 0.7946544753759428))],
    "I4": [(2, (0.5257311143, 0.0, 0.8506508070)),
           (5, (0.8944271932547096, 0.0, 0.4472135909903704)),
           (3, (0.4911234778630044, 0.3568220764705179, 0.7946544753759428))],
}
_GENERATORS["I2"] = _GENERATORS["I"]


class SymmetryError(ValueError):
    """Unknown or unsupported symmetry name."""


def parse_symmetry(name: str) -> str:
    """Normalised symmetry name (``"C1"``, ``"C7"``, ``"D2"``, ``"T"``, ``"O"``, ``"I"``,
    ``"I1"`` .. ``"I4"``; case-insensitive, spaces ignored).

    Raises
    ------
    SymmetryError
        anything else (improper groups such as Ci, Cs, Cnv, Cnh, Sn, Dnh, Dnv, Td, Th, Oh, Ih
        are not supported: a reconstruction of a chiral object uses a rotation group).
    """
    s = str(name).strip().upper().replace(" ", "")
    m = re.fullmatch(r"([CD])(\d{1,2})", s)
    if m:
        n = int(m.group(2))
        if n < 1:
            raise SymmetryError("symmetry %r: the order must be >= 1" % name)
        return "%s%d" % (m.group(1), n)
    if s in ("T", "O", "I", "I1", "I2", "I3", "I4"):
        return s
    raise SymmetryError("unknown or unsupported symmetry %r: use Cn, Dn (n = 1..99), T, O, "
                        "I or I1..I4 (RELION's conventions)" % name)


def _align_with_z(axis):
    """RELION ``alignWithZ``: a rotation mapping the normalised axis onto z."""
    a = np.asarray(axis, dtype=np.float64)
    a = a / np.sqrt((a * a).sum())
    B = np.zeros((3, 3))
    proj = math.sqrt(a[1] * a[1] + a[2] * a[2])
    if proj > EQUAL_ACCURACY:
        B[0] = [proj, -a[0] * a[1] / proj, -a[0] * a[2] / proj]
        B[1] = [0.0, a[2] / proj, -a[1] / proj]
        B[2] = a
    else:
        B[0, 2] = -1.0 if a[0] > 0 else 1.0
        B[1, 1] = 1.0
        B[2, 0] = 1.0 if a[0] > 0 else -1.0
    return B


def _rotation(angle_deg, axis):
    """RELION ``rotation3DMatrix(ang, axis)``: ``B^T Rz(ang) B``."""
    B = _align_with_z(axis)
    t = math.radians(angle_deg)
    c, s = math.cos(t), math.sin(t)
    Rz = np.array([[c, -s, 0.0], [s, c, 0.0], [0.0, 0.0, 1.0]])
    return B.T @ Rz @ B


def _small_to_zero(M):
    M = M.copy()
    M[np.abs(M) < EQUAL_ACCURACY] = 0.0
    return M


def _generators(name):
    if name[0] == "C":
        return [(int(name[1:]), (0.0, 0.0, 1.0))]
    if name[0] == "D":
        n = int(name[1:])
        return ([(n, (0.0, 0.0, 1.0))] if n > 1 else []) + [(2, (1.0, 0.0, 0.0))]
    return _GENERATORS[name]


def point_group_matrices(name: str) -> np.ndarray:
    """The non-identity operators of a point group, RELION's list and order.

    Parameters
    ----------
    name : str
        Symmetry name (see :func:`parse_symmetry`).

    Returns
    -------
    ndarray, (N - 1, 3, 3) float64
        The matrices ``R`` that RELION applies as ``p' = R p`` to half-spectrum coordinates
        ``(x, y, z)`` (``Symmetry::getPointGroupMatrices``); empty for C1.
    """
    name = parse_symmetry(name)
    mats = []
    for fold, axis in _generators(name):
        inc = 360.0 / fold
        ang = inc
        for _ in range(1, fold):
            mats.append(_small_to_zero(_rotation(ang, axis)).T.copy())
            ang += inc
    # closure (SymList::compute_subgroup): pairs in RELION's scan order
    n = 0
    pending = []
    while True:
        if not pending:
            if n >= len(mats):
                break
            pending = [(i, n) for i in range(n + 1)] + [(n, j) for j in range(n - 1, -1, -1)]
            n += 1
        i, j = pending.pop(0)
        P = mats[i] @ mats[j]
        if np.all(np.abs(P - np.eye(3)) <= EQUAL_ACCURACY):
            continue
        if any(np.all(np.abs(P - Q) <= EQUAL_ACCURACY) for Q in mats):
            continue
        mats.append(_small_to_zero(P))
    return np.array(mats, dtype=np.float64).reshape(-1, 3, 3)


def group_order(name: str) -> int:
    """Number of operators including the identity (C7 -> 7, D2 -> 4, T -> 12, O -> 24,
    I -> 60)."""
    return len(point_group_matrices(name)) + 1


def _interp_half(img, xs, ys, zs):
    """RELION ``linearXYZ_FftwHalf_complex``/``_real`` at arrays of signed coordinates
    (double arithmetic). ``img`` ``(d, h, wh)`` complex or real."""
    d, h, wh = img.shape
    pos = xs > 0.0
    xd = np.where(pos, xs, -xs)
    yd = np.where(pos, ys, -ys)
    zd = np.where(pos, zs, -zs)
    yd = np.where(yd < 0.0, yd + h, yd)
    zd = np.where(zd < 0.0, zd + d, zd)
    x0 = xd.astype(np.int64)
    y0 = yd.astype(np.int64)
    z0 = zd.astype(np.int64)
    xf, yf, zf = xd - x0, yd - y0, zd - z0
    x0 = np.minimum(x0, wh - 1)
    x1 = x0 + 1
    x1 = np.where(x1 >= wh, wh - 2, x1)
    y0 = np.clip(y0, 0, h - 1)
    y1 = (y0 + 1) % h
    z0 = np.clip(z0, 0, d - 1)
    z1 = (z0 + 1) % d
    ax, ay, az = 1.0 - xf, 1.0 - yf, 1.0 - zf
    vx00 = ax * img[z0, y0, x0] + xf * img[z0, y0, x1]
    vx10 = ax * img[z0, y1, x0] + xf * img[z0, y1, x1]
    vx01 = ax * img[z1, y0, x0] + xf * img[z1, y0, x1]
    vx11 = ax * img[z1, y1, x0] + xf * img[z1, y1, x1]
    v = az * (ay * vx00 + yf * vx10) + zf * (ay * vx01 + yf * vx11)
    if np.iscomplexobj(img):
        v = np.where(pos, v, np.conj(v))
    return v


def symmetrise_fs(half_spectrum: np.ndarray, matrices: np.ndarray) -> np.ndarray:
    """RELION's Fourier-space symmetrisation of a half spectrum.

    Parameters
    ----------
    half_spectrum : ndarray, (d, h, wh) complex or real
        FFTW half spectrum ``[z, y, x]`` (data or weights).
    matrices : ndarray, (K, 3, 3)
        :func:`point_group_matrices` (identity excluded).

    Returns
    -------
    ndarray, same shape and dtype class (complex128 or float64)
        ``(F + sum_R F~(R k)) / (K + 1)``.
    """
    F = np.asarray(half_spectrum)
    F = F.astype(np.complex128 if np.iscomplexobj(F) else np.float64)
    R = np.asarray(matrices, dtype=np.float64).reshape(-1, 3, 3)
    if len(R) == 0:
        return F.copy()
    d, h, wh = F.shape
    zz = np.arange(d, dtype=np.float64)
    zz = np.where(zz < d // 2, zz, zz - d)
    yy = np.arange(h, dtype=np.float64)
    yy = np.where(yy < h // 2, yy, yy - h)
    xx = np.arange(wh, dtype=np.float64)
    Z, Y, X = np.meshgrid(zz, yy, xx, indexing="ij")
    acc = F.copy()
    for M in R:
        px = M[0, 0] * X + M[0, 1] * Y + M[0, 2] * Z
        py = M[1, 0] * X + M[1, 1] * Y + M[1, 2] * Z
        pz = M[2, 0] * X + M[2, 1] * Y + M[2, 2] * Z
        acc += _interp_half(F, px, py, pz)
    return acc / (len(R) + 1)


def symmetrise_volume(volume: np.ndarray, name: str, workers: int = 1) -> np.ndarray:
    """Symmetrise a real-space cube ``[z, y, x]`` (centre at ``s//2``) with RELION's
    Fourier-space method: centred FFT, :func:`symmetrise_fs`, inverse FFT. Returns float64."""
    import scipy.fft
    v = np.asarray(volume, dtype=np.float64)
    s = v.shape
    c = tuple(-(n // 2) for n in s)
    F = scipy.fft.rfftn(np.roll(v, c, axis=(0, 1, 2)), workers=workers)
    G = symmetrise_fs(F, point_group_matrices(name))
    out = scipy.fft.irfftn(G, s=s, workers=workers)
    return np.roll(out, tuple(-x for x in c), axis=(0, 1, 2))
