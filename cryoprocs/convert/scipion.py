"""Scipion objects <-> arrays and RELION quantities (the only convert module that imports
pyworkflow / pwem / tomo, lazily, inside functions).

Conventions (docs/conventions.md, checked against scipion-em-tomo 3.12.4 ``tomo/objects.py``
and scipion-em-reliontomo ``convertBase``):

* ``Coordinate3D`` positions are set with ``coord.setVolume(tomo)`` first, then
  ``setPosition(x, y, z, BOTTOM_LEFT_CORNER)`` with **0-based voxel indices** of the tomogram
  (x = MRC column); ``x_centre = x_BLC - dim/2``.
* Orientation matrices go through RELION angles exactly as scipion-em-reliontomo does
  (``genTransformMatrix`` / ``getTransformInfoFromCoordOrSubtomo``), so exports to RELION,
  Dynamo or reliontomo agree.
"""
from typing import TYPE_CHECKING, Sequence, Tuple

import numpy as np

from ..kernels.euler import relion_angles_from_matrix, relion_euler_matrix

if TYPE_CHECKING:                       # Scipion objects (pyworkflow is imported lazily)
    from tomo.objects import Coordinate3D, Tomogram

__all__ = ["relion_to_scipion_matrix", "scipion_matrix_to_relion", "set_coordinate",
           "coordinate_blc", "set_relion_orientation", "relion_orientation"]


def relion_to_scipion_matrix(rot: float, tilt: float, psi: float,
                             shifts_angst: Sequence[float] = (0.0, 0.0, 0.0),
                             sampling_rate: float = 1.0) -> np.ndarray:
    """4x4 matrix to pass to ``setMatrix(M, convention=TR_RELION)`` for RELION angles (deg)
    and origin shifts (Å, ``rlnOriginX/Y/ZAngst``) at ``sampling_rate`` Å/px.

    Same result as scipion-em-reliontomo ``genTransformMatrix``: inverse of
    ``[[A(rot, tilt, psi), -shifts/sr], [0, 1]]``.
    """
    M = np.eye(4)
    M[:3, :3] = relion_euler_matrix(rot, tilt, psi)
    M[:3, 3] = -np.asarray(shifts_angst, dtype=np.float64) / float(sampling_rate)
    return np.linalg.inv(M)


def scipion_matrix_to_relion(M: np.ndarray, sampling_rate: float = 1.0
                             ) -> Tuple[Tuple[float, float, float], np.ndarray]:
    """Exact inverse of :func:`relion_to_scipion_matrix`: a matrix read with
    ``getMatrix(convention=TR_RELION)`` -> ``((rot, tilt, psi), shifts_angst)``.

    The angles equal scipion-em-reliontomo's ``getTransformInfoFromCoordOrSubtomo``; its
    shifts are ``-A^T s`` instead of ``s`` (it reads the translation before inverting), so
    non-zero shifts round-trip only through this function.
    """
    T = np.linalg.inv(np.asarray(M, dtype=np.float64))
    angles = relion_angles_from_matrix(T[:3, :3])
    return tuple(float(a) for a in angles), -T[:3, 3] * float(sampling_rate)


def set_coordinate(coord: "Coordinate3D", tomo: "Tomogram", x: float, y: float, z: float) -> None:
    """Place ``coord`` at 0-based voxel ``(x, y, z)`` of ``tomo`` (x = MRC column)."""
    from tomo.constants import BOTTOM_LEFT_CORNER
    coord.setVolume(tomo)
    coord.setPosition(float(x), float(y), float(z), BOTTOM_LEFT_CORNER)


def coordinate_blc(coord: "Coordinate3D") -> Tuple[float, float, float]:
    """0-based voxel ``(x, y, z)`` of a coordinate read with ``iterCoordinates``."""
    from tomo.constants import BOTTOM_LEFT_CORNER
    return coord.getPosition(BOTTOM_LEFT_CORNER)


def set_relion_orientation(obj: "Coordinate3D", rot: float, tilt: float, psi: float,
                           shifts_angst: Sequence[float] = (0.0, 0.0, 0.0),
                           sampling_rate: float = 1.0) -> None:
    """Set a ``Coordinate3D``/``SubTomogram`` orientation from RELION angles (deg)."""
    from tomo.constants import TR_RELION
    from pwem.objects import Transform
    M = relion_to_scipion_matrix(rot, tilt, psi, shifts_angst, sampling_rate)
    if hasattr(obj, "setMatrix"):
        obj.setMatrix(M, convention=TR_RELION)
    else:
        obj.setTransform(Transform(M), convention=TR_RELION)


def relion_orientation(obj: "Coordinate3D",
                       sampling_rate: float = 1.0) -> Tuple[Tuple[float, float, float], np.ndarray]:
    """RELION ``((rot, tilt, psi), shifts_angst)`` of a ``Coordinate3D``/``SubTomogram``."""
    from tomo.constants import TR_RELION
    from tomo.objects import Coordinate3D
    if isinstance(obj, Coordinate3D):
        M = obj.getMatrix(convention=TR_RELION)
    else:
        M = obj.getTransform(convention=TR_RELION).getMatrix()
    return scipion_matrix_to_relion(M, sampling_rate)
