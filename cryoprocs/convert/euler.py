"""Euler-angle conventions: moved to :mod:`cryoprocs.kernels.euler` (pure NumPy, used by
kernels, conversions and pipelines alike); re-exported here for existing imports."""
from ..kernels.euler import (relion_angles_from_matrix, relion_euler_matrix, relion_to_zxz,
                             wrap180, zxz_to_relion)

__all__ = ["relion_euler_matrix", "relion_angles_from_matrix", "zxz_to_relion",
           "relion_to_zxz", "wrap180"]
