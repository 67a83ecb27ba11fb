"""NumPy ``.npz`` archives written atomically (partial sums, pick results).

``numpy.savez`` leaves its zip file open when a write fails (a full disk): the zip file's
``__del__`` then prints an "Exception ignored ... seek of closed file" traceback when it is
collected. :func:`write_npz` writes the same archive and always closes it.
"""
from __future__ import annotations

import zipfile
from typing import TYPE_CHECKING, Mapping

import numpy as np
from numpy.typing import ArrayLike

if TYPE_CHECKING:
    from .paths import PathLike

from .mrc import atomic_output

__all__ = ["write_npz"]


def write_npz(path: PathLike, arrays: Mapping[str, ArrayLike]) -> PathLike:
    """Write ``{name: array}`` as an uncompressed ``.npz`` (what ``numpy.savez`` writes,
    readable by ``numpy.load``) under a temporary name, renamed when complete. Returns
    ``path``.


    Raises
    ------
    OSError
        naming ``path`` (e.g. "No space left on device"); nothing is left behind.
    """
    with atomic_output(path) as tmp:
        with zipfile.ZipFile(tmp, "w", compression=zipfile.ZIP_STORED, allowZip64=True) as zf:
            for name, value in arrays.items():
                with zf.open(name + ".npy", "w", force_zip64=True) as fh:
                    np.lib.format.write_array(fh, np.asanyarray(value), allow_pickle=False)
    return path
