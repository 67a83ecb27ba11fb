"""Orientations of the picks: angle lists (GAPSTOP zxz / STOPGAP zzx column orders), the rows
an angle map holds at the picks (0- or 1-based), C\\ :sub:`n` symmetry randomisation, and the
angular distances and consistency filter.

Angles are zxz ``[phi, theta, psi]`` in degrees: the active rotation
``Rz(psi) Rx(theta) Rz(phi)`` = scipy ``Rotation.from_euler('zxz', ...)`` (TOM / STOPGAP /
cryoCAT convention).
"""
import math
import os
import re
from dataclasses import dataclass
from typing import Optional, Tuple, Union

import numpy as np
from numpy.typing import ArrayLike

from ...constants import PEAKS_ORDERS
from .errors import AngleIndexError, PeakPickingError
from .maps import gather

__all__ = ["ANGLE_ORDERS", "load_angle_list", "angle_rows_at", "symmetry_order",
           "randomize_phi", "zxz_rotations", "angular_distance_tables", "AngularFilter",
           "angular_consistency"]

#: angle-list column orders: ``zxz`` = phi, theta, psi (GAPSTOP); ``zzx`` = phi, psi, theta
#: (STOPGAP)
ANGLE_ORDERS = tuple(PEAKS_ORDERS)


def load_angle_list(angles: Union[str, os.PathLike, ArrayLike],
                    order: str = "zxz") -> np.ndarray:
    """Angle list as ``(L, 3)`` float64 ``[phi, theta, psi]`` (degrees, zxz).

    Parameters
    ----------
    angles : str or array_like
        CSV file with three columns and no header (GAPSTOP/STOPGAP lists), or an ``(L, 3)``
        array. Both are reordered for ``zzx``.
    order : {"zxz", "zzx"}
        Column order: ``zxz`` = phi, theta, psi (GAPSTOP); ``zzx`` = phi, psi, theta (STOPGAP).

    Raises
    ------
    PeakPickingError
        unknown order, unreadable file, not three numeric columns, or an empty list.
    """
    if order not in ANGLE_ORDERS:
        raise PeakPickingError("angle order must be one of %s; got %r" % (ANGLE_ORDERS, order))
    if isinstance(angles, (str, bytes)) or hasattr(angles, "__fspath__"):
        path = os.fspath(angles)
        if not os.path.exists(path):
            raise PeakPickingError("angle list %s does not exist" % path)
        try:
            arr = np.loadtxt(path, delimiter=",", dtype=np.float64, ndmin=2)
        except ValueError:
            try:
                arr = np.loadtxt(path, dtype=np.float64, ndmin=2)
            except ValueError as exc:
                raise PeakPickingError("cannot read angle list %s (3 comma-separated numbers per "
                                       "line expected): %s" % (path, exc)) from None
        where = path
    else:
        arr = np.asarray(angles, dtype=np.float64)
        where = "the angle array"
    if arr.ndim != 2 or arr.shape[1] != 3 or arr.shape[0] == 0:
        raise PeakPickingError("%s must hold 3 columns (phi, theta, psi or phi, psi, theta) and "
                               "at least one row; got shape %s" % (where, arr.shape))
    if not np.all(np.isfinite(arr)):
        raise PeakPickingError("%s contains non-numeric or infinite angles" % where)
    if order == "zzx":
        arr = arr[:, [0, 2, 1]]
    return np.ascontiguousarray(arr)


def angle_rows_at(angle_map: np.ndarray, coords: ArrayLike, n_angles: int,
                  numbering: int = 0) -> Tuple[np.ndarray, np.ndarray]:
    """Rows of the angle list at the picks: ``int(angle_map[z, y, x]) - numbering``.

    Reads only the voxels at ``coords`` (works on a memmap).

    Returns
    -------
    rows : ndarray (M,) int64
    raw : ndarray (M,) float64
        The angle-map values as stored.

    Raises
    ------
    AngleIndexError
        A value is not finite or its row is outside ``[0, n_angles)``; the message gives the
        offending values and the numbering that would fit.
    """
    coords = np.asarray(coords, dtype=np.int64)
    if numbering not in (0, 1):
        raise PeakPickingError("angle numbering must be 0 (GAPSTOP) or 1 (STOPGAP); got %r"
                               % (numbering,))
    if len(coords) == 0:
        return np.empty(0, np.int64), np.empty(0, np.float64)
    raw = gather(angle_map, coords).astype(np.float64)
    if not np.all(np.isfinite(raw)):
        bad = raw[~np.isfinite(raw)]
        raise AngleIndexError("the angle map holds non-finite values at %d picks (e.g. %s)"
                              % (bad.size, bad[:3]))
    rows = raw.astype(np.int64) - int(numbering)
    bad = (rows < 0) | (rows >= n_angles)
    if bad.any():
        lo, hi = int(raw.astype(np.int64).min()), int(raw.astype(np.int64).max())
        hint = ""
        if numbering == 1 and lo == 0:
            hint = " The map holds 0: it is probably 0-based (GAPSTOP); use numbering 0."
        elif numbering == 0 and hi == n_angles:
            hint = " The map reaches %d: it is probably 1-based (STOPGAP); use numbering 1." % hi
        raise AngleIndexError(
            "angle-map values at the picks range over %d..%d, but with %d-based numbering the "
            "angle list of %d rows accepts %d..%d (%d picks out of range).%s"
            % (lo, hi, numbering, n_angles, numbering, n_angles - 1 + numbering,
               int(bad.sum()), hint))
    return rows, raw


def symmetry_order(symmetry: Union[int, str]) -> int:
    """The n of a C-symmetry string (``"C1"``, ``"c6"``, or an int). cryoCAT takes the last
    integer of any string starting with c/C; other symmetries are rejected here (cryoCAT warns and
    uses C1)."""
    if isinstance(symmetry, (int, np.integer)):
        n = int(symmetry)
    else:
        s = str(symmetry).strip()
        nums = re.findall(r"\d+", s)
        if not s.lower().startswith("c") or not nums:
            raise PeakPickingError("only cyclic symmetry C<n> is supported; got %r" % symmetry)
        n = int(nums[-1])
    if n < 1:
        raise PeakPickingError("symmetry order must be >= 1; got %d" % n)
    return n


def randomize_phi(phi: ArrayLike, n: int, seed: Optional[int] = None) -> np.ndarray:
    """Add a random multiple of ``360/n`` to each phi (STOPGAP/cryoCAT C\\ :sub:`n`
    randomisation, seeded), wrapped to [0, 360).

    The angle lists of C\\ :sub:`n` searches cover phi in [0, 360/n); phi is the first rotation
    about the particle's own z (symmetry) axis, so any multiple of 360/n is an equivalent pose.
    """
    phi = np.asarray(phi, dtype=np.float64)
    if n <= 1:
        return phi.copy()
    rng = np.random.default_rng(seed)
    steps = np.linspace(0.0, 360.0, n + 1)[:-1]
    return np.mod(phi + rng.choice(steps, size=phi.shape), 360.0)


def zxz_rotations(angles: ArrayLike) -> np.ndarray:
    """``(L, 3, 3)`` active rotation matrices of zxz ``[phi, theta, psi]`` rows (degrees),
    ``Rz(psi) Rx(theta) Rz(phi)`` = scipy ``Rotation.from_euler('zxz', ...)``."""
    from scipy.spatial.transform import Rotation
    return Rotation.from_euler("zxz", np.asarray(angles, np.float64), degrees=True).as_matrix()


def _sym_rotations(n):
    a = np.deg2rad(np.arange(n) * 360.0 / n)
    R = np.zeros((n, 3, 3))
    R[:, 0, 0] = np.cos(a)
    R[:, 0, 1] = -np.sin(a)
    R[:, 1, 0] = np.sin(a)
    R[:, 1, 1] = np.cos(a)
    R[:, 2, 2] = 1.0
    return R


def _geodesic_deg(Ra, Rb, n_sym=1):
    """Rotation angle (deg) of ``Ra^T Rb``, minimised over the C_n copies ``Rb Rz(k 360/n)``."""
    best = None
    for S in _sym_rotations(n_sym):
        M = np.einsum("...ji,...jk->...ik", Ra, Rb @ S)
        c = np.clip((np.trace(M, axis1=-2, axis2=-1) - 1.0) / 2.0, -1.0, 1.0)
        ang = np.degrees(np.arccos(c))
        best = ang if best is None else np.minimum(best, ang)
    return best


def angular_distance_tables(angles: ArrayLike, symmetry: int = 1,
                            reference: int = 0) -> Tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Per angle-list row, its distance to row ``reference`` (cryoCAT
    ``create_angular_distance_maps`` uses the first row):

    * total: rotation angle between the two poses (minimised over the C_n copies);
    * normal: angle between the particle z axes ``R e_z``;
    * in-plane: difference of the first Euler angle phi, modulo 360/n, folded to [0, 180].

    Returns three ``(L,)`` float32 arrays (degrees).
    """
    angles = np.asarray(angles, np.float64)
    R = zxz_rotations(angles)
    R0 = np.broadcast_to(R[reference], R.shape)
    total = _geodesic_deg(R0, R, symmetry)
    z = R[:, :, 2]
    z0 = R[reference][:, 2]
    normal = np.degrees(np.arccos(np.clip(z @ z0, -1.0, 1.0)))
    phi = np.mod(angles[:, 0], 360.0 / symmetry)
    dphi = np.abs(phi - np.mod(angles[reference, 0], 360.0 / symmetry))
    inplane = np.where(dphi > 180.0, 360.0 - dphi, dphi)
    return total.astype(np.float32), normal.astype(np.float32), inplane.astype(np.float32)


@dataclass
class AngularFilter:
    """Angular consistency around a pick (cryoCAT ``select_peaks`` idea): at least
    ``min_count`` voxels within ``radius`` voxels of the pick (the pick excluded) must hold an
    orientation within ``max_angle`` degrees of the pick's own."""
    min_count: int = 4
    max_angle: float = 15.0
    radius: float = 2.0


def angular_consistency(angle_map: np.ndarray, coords: ArrayLike, angle_rows: ArrayLike,
                        angles: np.ndarray, numbering: int = 0, radius: float = 2.0,
                        max_angle: float = 15.0, symmetry: int = 1) -> np.ndarray:
    """Number of neighbours (within ``radius`` voxels, the centre excluded, inside the map) whose
    orientation is within ``max_angle`` degrees of the orientation at each pick.

    Returns
    -------
    ndarray (M,) int64
    """
    coords = np.asarray(coords, np.int64)
    M = len(coords)
    if M == 0:
        return np.zeros(0, np.int64)
    shape = angle_map.shape
    r = int(math.floor(radius))
    g = np.arange(-r, r + 1)
    off = np.stack(np.meshgrid(g, g, g, indexing="ij"), -1).reshape(-1, 3)
    d2 = (off ** 2).sum(1)
    off = off[(d2 <= radius * radius) & (d2 > 0)]
    pts = coords[:, None, :] + off[None, :, :]
    inside = np.all((pts >= 0) & (pts < np.array(shape)), axis=2)
    pc = np.clip(pts, 0, np.array(shape) - 1).reshape(-1, 3)
    vals = gather(angle_map, pc).astype(np.float64)
    vals = vals.reshape(M, len(off))
    nb_rows = np.where(np.isfinite(vals), vals, -1).astype(np.int64) - int(numbering)
    valid = inside & (nb_rows >= 0) & (nb_rows < len(angles))
    R = zxz_rotations(angles)
    # distance table only for the rows involved
    Rc = R[np.asarray(angle_rows, np.int64)]
    Rn = R[np.where(valid, nb_rows, 0)]
    ang = _geodesic_deg(np.broadcast_to(Rc[:, None], Rn.shape), Rn, symmetry)
    return ((ang <= max_angle) & valid).sum(1).astype(np.int64)


