"""Euler-angle conventions (pure NumPy; angles in degrees).

* RELION (rot, tilt, psi), ZYZ: the matrix ``A`` of RELION ``Euler_angles2matrix``
  (src/euler.cpp), the transpose of scipy ``Rotation.from_euler('ZYZ', [rot, tilt, psi])``
  and equal to pwem ``euler_matrix(-rot, -tilt, -psi, 'szyz')`` (what scipion-em-reliontomo
  builds).
* TOM / AV3 / STOPGAP / cryoCAT (phi, theta, psi), zxz: scipy
  ``Rotation.from_euler('zxz', [phi, theta, psi])`` (extrinsic, phi first about z).
  Conversion to RELION (cryoCAT ``RelionMotl``; verified numerically, see
  docs/conventions.md): ``rot = 90 - phi, tilt = theta,
  psi = -90 - psi`` (wrapped to (-180, 180]), i.e. ``R_ZYZ(rot, tilt, psi) = R_zxz(phi,
  theta, psi)^-1``; equivalently RELION's ``A(rot, tilt, psi)`` equals the zxz active matrix.
"""
from typing import Tuple

import numpy as np
from numpy.typing import ArrayLike

__all__ = ["relion_euler_matrix", "relion_angles_from_matrix", "zxz_to_relion",
           "relion_to_zxz", "wrap180"]


def wrap180(a: ArrayLike) -> np.ndarray:
    """Wrap angles (deg) to (-180, 180]."""
    a = np.mod(np.asarray(a, dtype=np.float64) + 180.0, 360.0) - 180.0
    return np.where(a == -180.0, 180.0, a)


def relion_euler_matrix(rot: ArrayLike, tilt: ArrayLike, psi: ArrayLike) -> np.ndarray:
    """RELION's Euler matrix ``A(rot, tilt, psi)`` (src/euler.cpp ``Euler_angles2matrix``).

    Parameters
    ----------
    rot, tilt, psi : float or array_like (broadcast together)
        Angles in degrees.

    Returns
    -------
    numpy.ndarray
        ``(..., 3, 3)`` float64::

            [[ cψcθcφ - sψsφ,  cψcθsφ + sψcφ, -cψsθ],
             [-sψcθcφ - cψsφ, -sψcθsφ + cψcφ,  sψsθ],
             [ sθcφ,           sθsφ,           cθ  ]]

        with φ = rot, θ = tilt, ψ = psi.
    """
    f, t, p = (np.deg2rad(np.asarray(v, dtype=np.float64)) for v in (rot, tilt, psi))
    f, t, p = np.broadcast_arrays(f, t, p)
    cf, sf, ct, st, cp, sp = np.cos(f), np.sin(f), np.cos(t), np.sin(t), np.cos(p), np.sin(p)
    A = np.empty(f.shape + (3, 3))
    A[..., 0, 0] = cp * ct * cf - sp * sf
    A[..., 0, 1] = cp * ct * sf + sp * cf
    A[..., 0, 2] = -cp * st
    A[..., 1, 0] = -sp * ct * cf - cp * sf
    A[..., 1, 1] = -sp * ct * sf + cp * cf
    A[..., 1, 2] = sp * st
    A[..., 2, 0] = st * cf
    A[..., 2, 1] = st * sf
    A[..., 2, 2] = ct
    return A


def relion_angles_from_matrix(A: ArrayLike,
                              eps: float = 1e-9) -> Tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Inverse of :func:`relion_euler_matrix` (RELION ``Euler_matrix2angles``).

    Returns ``(rot, tilt, psi)`` in degrees with tilt in [0, 180]; when ``sin(tilt) == 0``
    rot is set to 0 and the whole in-plane angle goes to psi.
    """
    A = np.asarray(A, dtype=np.float64)
    ct = np.clip(A[..., 2, 2], -1.0, 1.0)
    tilt = np.arccos(ct)
    st = np.sin(tilt)
    regular = st > eps
    rot = np.where(regular, np.arctan2(A[..., 2, 1], A[..., 2, 0]), 0.0)
    psi_reg = np.arctan2(A[..., 1, 2], -A[..., 0, 2])
    psi_up = np.arctan2(A[..., 0, 1], A[..., 0, 0])          # tilt = 0
    psi_down = np.arctan2(A[..., 0, 1], -A[..., 0, 0])       # tilt = 180
    psi = np.where(regular, psi_reg, np.where(ct > 0, psi_up, psi_down))
    return np.rad2deg(rot), np.rad2deg(tilt), np.rad2deg(psi)


def zxz_to_relion(phi: ArrayLike, theta: ArrayLike,
                  psi: ArrayLike) -> Tuple[np.ndarray, np.ndarray, np.ndarray]:
    """cryoCAT/STOPGAP zxz (phi, theta, psi) -> RELION (rot, tilt, psi), degrees, wrapped."""
    return (wrap180(90.0 - np.asarray(phi, dtype=np.float64)),
            wrap180(np.asarray(theta, dtype=np.float64)),
            wrap180(-90.0 - np.asarray(psi, dtype=np.float64)))


def relion_to_zxz(rot: ArrayLike, tilt: ArrayLike,
                  psi: ArrayLike) -> Tuple[np.ndarray, np.ndarray, np.ndarray]:
    """RELION (rot, tilt, psi) -> zxz (phi, theta, psi), inverse of :func:`zxz_to_relion`."""
    return (wrap180(90.0 - np.asarray(rot, dtype=np.float64)),
            wrap180(np.asarray(tilt, dtype=np.float64)),
            wrap180(-90.0 - np.asarray(psi, dtype=np.float64)))
