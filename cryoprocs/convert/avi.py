"""AVI (RIFF) files of MJPEG frames: the container OpenCV's MJPG writer and mrc2movie write,
written here from already-encoded JPEG frames (so a repeated frame costs a copy of its
bytes, not an encode).

Layout (Microsoft "AVI RIFF File Reference", AVI 1.0 with an ``idx1`` index)::

    RIFF 'AVI ' { LIST 'hdrl' { 'avih' (MainAVIHeader),
                                LIST 'strl' { 'strh' (AVIStreamHeader, 'vids' 'MJPG'),
                                              'strf' (BITMAPINFOHEADER, 'MJPG') } },
                  LIST 'movi' { '00dc' <JPEG> ... },
                  'idx1' { '00dc', AVIIF_KEYFRAME, offset, size } ... }

Sizes are little-endian 32-bit: an AVI 1.0 file stays below :data:`MAX_BYTES` (1 GiB, the
limit players reliably support); larger movies need OpenDML (ffmpeg writes it).
"""
from __future__ import annotations

import os
import struct
from fractions import Fraction

__all__ = ["MjpegAvi", "MAX_BYTES"]

#: largest AVI 1.0 file written (larger ones need OpenDML extensions)
MAX_BYTES = 1 << 30
_AVIF_HASINDEX = 0x10
_AVIIF_KEYFRAME = 0x10


class MjpegAvi:
    """An AVI file being written from JPEG frames.

    Parameters
    ----------
    path : str
        File to write (the caller renames it when complete).
    width, height : int
        Frame size in px.
    fps : float
        Frames per second (stored as an exact fraction with denominator <= 1001).

    Raises
    ------
    OSError
        the file cannot be written; ``ValueError`` when the file would exceed
        :data:`MAX_BYTES`.
    """

    def __init__(self, path: str | os.PathLike, width: int, height: int, fps: float) -> None:
        self.path = path
        self.size = (int(width), int(height))
        f = Fraction(float(fps)).limit_denominator(1001)
        self.rate, self.scale = f.numerator, f.denominator
        self.usec = int(round(1e6 * self.scale / self.rate))
        self.fh = open(path, "wb")
        self.index = []            # (offset from 'movi', size)
        self.max_frame = 0
        self._header_len = len(self._header(0))
        self.fh.write(b"\0" * self._header_len)       # rewritten by close()
        self.fh.write(b"movi")
        self._movi_pos = self.fh.tell() - 4            # where the 'movi' fourcc is
        self._bytes = self.fh.tell()

    def write(self, jpeg: bytes) -> None:
        """Append one frame (JPEG bytes)."""
        n = len(jpeg)
        pad = n & 1
        if self._bytes + 8 + n + pad + 16 * (len(self.index) + 1) + 8 > MAX_BYTES:
            raise ValueError("the AVI file %s would exceed %d bytes (AVI 1.0)"
                             % (self.path, MAX_BYTES))
        self.index.append((self._bytes - self._movi_pos, n))
        self.fh.write(b"00dc" + struct.pack("<I", n))
        self.fh.write(jpeg)
        if pad:
            self.fh.write(b"\0")
        self._bytes += 8 + n + pad
        self.max_frame = max(self.max_frame, n)

    def _header(self, movi_size):
        w, h = self.size
        n = len(self.index)
        avih = struct.pack("<10I4I", self.usec, 0, 0, _AVIF_HASINDEX, n, 0, 1,
                           self.max_frame, w, h, 0, 0, 0, 0)
        strh = b"vidsMJPG" + struct.pack("<IHHIIIIIIII4h", 0, 0, 0, 0, self.scale, self.rate,
                                         0, n, self.max_frame, 0xFFFFFFFF, 0, 0, 0, w, h)
        strf = struct.pack("<IiiHH4sIiiII", 40, w, h, 1, 24, b"MJPG", w * h * 3, 0, 0, 0, 0)
        strl = b"strl" + _chunk(b"strh", strh) + _chunk(b"strf", strf)
        hdrl = b"hdrl" + _chunk(b"avih", avih) + _chunk(b"LIST", strl)
        riff_size = 4 + 8 + len(hdrl) + 8 + movi_size + 8 + 16 * n
        return b"RIFF" + struct.pack("<I", riff_size) + b"AVI " + _chunk(b"LIST", hdrl) + \
            b"LIST" + struct.pack("<I", movi_size)

    def close(self) -> None:
        """Write the index and the final header; close the file."""
        movi_size = self._bytes - self._movi_pos
        idx = b"".join(struct.pack("<4sIII", b"00dc", _AVIIF_KEYFRAME, off, n)
                       for off, n in self.index)
        self.fh.write(_chunk(b"idx1", idx))
        header = self._header(movi_size)
        assert len(header) == self._header_len
        self.fh.seek(0)
        self.fh.write(header)
        self.fh.close()

    def abort(self) -> None:
        """Close and remove the unfinished file."""
        try:

            self.fh.close()
        finally:
            if os.path.exists(self.path):
                os.remove(self.path)


def _chunk(fourcc, data):
    return fourcc + struct.pack("<I", len(data)) + data + (b"\0" if len(data) & 1 else b"")
