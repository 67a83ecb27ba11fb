"""RELION STAR files: thin helpers over the ``starfile`` package.

Blocks are pandas DataFrames (loop blocks) or dicts (single-row ``data_general``-style
blocks). Labels are written without the leading underscore as ``starfile`` does
(``rlnTomoName``); RELION 5 reads these files.
"""
import os
from typing import TYPE_CHECKING, Dict, Mapping, Union

from .mrc import atomic_output

if TYPE_CHECKING:
    import pandas as pd

__all__ = ["read_star", "write_star"]


def read_star(path: str) -> Dict[str, Union["pd.DataFrame", dict]]:
    """Read every block of a STAR file into an ordered dict ``{name: DataFrame | dict}``.

    Raises
    ------
    FileNotFoundError
        missing file; ``ValueError`` for an unreadable file (with its path).
    """
    import starfile                   # imported here: it imports pandas (about 0.5 s)

    if not os.path.exists(path):
        raise FileNotFoundError("STAR file not found: %s" % path)
    try:
        return starfile.read(path, always_dict=True)
    except Exception as exc:
        raise ValueError("cannot read STAR file %s: %s" % (path, exc)) from None


def write_star(path: str, blocks: Mapping[str, object], overwrite: bool = True,
               float_format: str = "%.6f") -> str:
    """Write ``{name: DataFrame | dict}`` to ``path`` atomically (temporary name, rename)."""
    import pandas as pd
    import starfile

    clean = {}
    for name, block in blocks.items():
        clean[name] = block if isinstance(block, (pd.DataFrame, dict)) else pd.DataFrame(block)
    with atomic_output(path, overwrite=overwrite) as tmp:
        starfile.write(clean, tmp, float_format=float_format, overwrite=True)
    return path
