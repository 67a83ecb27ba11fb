"""EM files (TOM / AV3 / STOPGAP / cryoCAT volumes and motive lists).

The EM format is a 512-byte header followed by the raw data with x varying fastest
(TOM ``tom_emread.m``; the ``emfile`` package). Header bytes: 0 machine (6 = little-endian PC),
1 version, 2 unused, 3 data type (1 int8, 2 int16, 4 int32, 5 float32, 8 complex64,
9 float64), then int32 ``nx, ny, nz`` at byte 4, an 80-byte comment, 40 int32 parameters and
256 bytes of user data. Arrays here are numpy ``[z, y, x]`` like :mod:`cryoprocs.convert.mrc`
(``data[z, y, x]`` = voxel ``(x, y, z)``).
"""
import os
import struct
from typing import Tuple

import numpy as np
from numpy.typing import ArrayLike

from .mrc import atomic_output

__all__ = ["EmFormatError", "EM_HEADER_BYTES", "em_info", "mmap_em", "read_em", "write_em"]

EM_HEADER_BYTES = 512
_DTYPES = {1: np.int8, 2: np.int16, 4: np.int32, 5: np.float32, 8: np.complex64, 9: np.float64}
_CODES = {np.dtype(v).str[1:]: k for k, v in _DTYPES.items()}


class EmFormatError(ValueError):
    """A file is missing, not an EM file, or its size does not match its header."""


def em_info(path: str) -> Tuple[Tuple[int, int, int], np.dtype, str]:
    """``(shape [z, y, x], dtype, endian)`` of an EM file from its header.

    Raises
    ------
    EmFormatError
        missing file, unknown machine or data type, or a size that does not match.
    """
    if not os.path.exists(path):
        raise EmFormatError("file not found: %s" % path)
    with open(path, "rb") as fh:
        head = fh.read(EM_HEADER_BYTES)
    if len(head) < EM_HEADER_BYTES:
        raise EmFormatError("%s is too short for an EM file (%d bytes)" % (path, len(head)))
    machine, code = head[0], head[3]
    endian = ">" if machine in (3, 5) else "<"       # 3 SGI, 5 Mac (big-endian); 0/1/2/4/6 PC
    if code not in _DTYPES:
        raise EmFormatError("%s: unknown EM data type %d" % (path, code))
    nx, ny, nz = struct.unpack(endian + "3i", head[4:16])
    if min(nx, ny, nz) <= 0:
        raise EmFormatError("%s: bad EM dimensions %s" % (path, (nx, ny, nz)))
    dtype = np.dtype(_DTYPES[code]).newbyteorder(endian)
    need = EM_HEADER_BYTES + nx * ny * nz * dtype.itemsize
    if os.path.getsize(path) < need:
        raise EmFormatError("%s: EM header says %dx%dx%d %s but the file has %d bytes"
                            % (path, nx, ny, nz, dtype.name, os.path.getsize(path)))
    return (nz, ny, nx), dtype, endian


def mmap_em(path: str) -> np.memmap:
    """Read-only ``numpy.memmap`` ``[z, y, x]`` of an EM volume (no copy)."""
    shape, dtype, _ = em_info(path)
    return np.memmap(path, dtype=dtype, mode="r", offset=EM_HEADER_BYTES, shape=shape)


def read_em(path: str) -> np.ndarray:
    """An EM file into memory as a native-endian ``[z, y, x]`` array."""
    data = mmap_em(path)
    out = np.array(data, dtype=data.dtype.newbyteorder("="))
    del data
    return out


def write_em(path: str, data: ArrayLike, overwrite: bool = True) -> str:
    """Write a ``[z, y, x]`` (or ``[y, x]``) array as a little-endian EM file, atomically.

    float64 data are written as float64 (type 9); booleans and uint8 as int8.
    """
    data = np.asarray(data)
    if data.dtype == bool or data.dtype == np.uint8:
        data = data.astype(np.int8)
    data = data.astype(data.dtype.newbyteorder("<"), copy=False)
    key = data.dtype.str[1:]
    if key not in _CODES:
        raise EmFormatError("cannot write %s data to an EM file" % data.dtype)
    shape = data.shape if data.ndim == 3 else (1,) * (3 - data.ndim) + data.shape
    nz, ny, nx = shape
    header = bytearray(EM_HEADER_BYTES)
    header[0] = 6
    header[3] = _CODES[key]
    header[4:16] = struct.pack("<3i", nx, ny, nz)
    with atomic_output(path, overwrite=overwrite) as tmp:
        with open(tmp, "wb") as fh:
            fh.write(bytes(header))
            fh.write(np.ascontiguousarray(data).tobytes())
    return path
