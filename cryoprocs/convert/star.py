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
        missing file; ``ValueError`` for an unreadable file (with its path), a file that
        does not end with a line break, or a loop row with fewer values than the loop has
        columns (a truncated or damaged file: STAR loops have every value of every row).
    """
    import pandas as pd
    import starfile                   # imported here: it imports pandas (about 0.5 s)

    if not os.path.exists(path):
        raise FileNotFoundError("STAR file not found: %s" % path)
    if os.path.isdir(path):
        raise IsADirectoryError("%s is a folder, not a STAR file" % path)
    with open(path, "rb") as fh:
        fh.seek(0, os.SEEK_END)
        if fh.tell():
            fh.seek(-1, os.SEEK_END)
            if fh.read(1) not in (b"\n", b"\r"):
                raise ValueError("%s does not end with a line break: a truncated STAR file? "
                                 "(if it is complete, end it with a line break)" % path)
    try:
        blocks = starfile.read(path, always_dict=True)
    except Exception as exc:
        raise ValueError("cannot read STAR file %s: %s" % (" ".join(str(path).split()),
                                                           " ".join(str(exc).split()))) \
            from None
    for name, block in blocks.items():
        if isinstance(block, pd.DataFrame) and len(block):
            short = block.isna().any(axis=1).to_numpy().nonzero()[0]
            if short.size:
                row = int(short[0])
                raise ValueError("%s: row %d of data_%s has %d values for its %d columns (a "
                                 "truncated or damaged STAR file)"
                                 % (path, row + 1, name, int(block.iloc[row].notna().sum()),
                                    block.shape[1]))
    return blocks


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
