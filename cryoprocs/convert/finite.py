"""NaN and infinite values in input images: detected as blocks are read, reported with the
file, the count and the first ``[z, y, x]``, or replaced by the mean of the file's finite
values (``--replace-nonfinite``). Used by :class:`cryoprocs.convert.mrc.MappedMrc`,
:func:`cryoprocs.convert.mrc.read_mrc` and the pipelines that read images otherwise
(movies, score maps, tilt series).
"""
from __future__ import annotations

import logging
import threading
from typing import Any, Callable, Iterable

import numpy as np

__all__ = ["NONFINITE_POLICIES", "NONFINITE_OPTION", "NONFINITE_FORM", "NonFiniteError",
           "FiniteGuard"]

#: what to do with NaN / infinite voxels of an input: an error (default), or replace them by
#: the mean of the finite voxels of the file (``--replace-nonfinite``)
NONFINITE_POLICIES = ("error", "replace")
NONFINITE_OPTION = "--replace-nonfinite"
NONFINITE_FORM = "Replace non-finite values?"

#: bytes scanned at once by :meth:`FiniteGuard.scan`
_SCAN_BYTES = 64 * 1024 * 1024


class NonFiniteError(ValueError):
    """An input holds NaN or infinite voxels (and they are not to be replaced)."""


class FiniteGuard:
    """Checks the blocks of one file for NaN / infinite values as they are read.

    A clean block costs one float32 sum (a non-finite value makes it non-finite); on the
    first bad block the whole file is scanned once (streamed) for the count, the first
    ``[z, y, x]`` index and the mean of its finite voxels. Then, with ``policy="error"``, a
    :class:`NonFiniteError` names the file, the count and the first index; with ``"replace"``
    the non-finite values of every block are replaced by that mean (one warning per file,
    logged and kept in :attr:`warnings`). Integer data are never checked.

    Parameters
    ----------
    path : str
        the file (for messages).
    data : array-like
        ``[z, y, x]`` / ``[n, y, x]`` data of the file (a memory map), for the scan.
    policy : {"error", "replace"}
    release : callable, optional
        ``release(z0, z1)`` after scanning sections ``z0..z1-1`` (page release).
    sections : sequence of int, optional
        scan only these sections (0-based; e.g. the frames of a tilt series a stack holds).
    """

    def __init__(self, path: str, data: Any, policy: str = "error",
                 release: Callable[[int, int], Any] | None = None,
                 sections: Iterable[int] | None = None) -> None:
        if policy not in NONFINITE_POLICIES:
            raise ValueError("non-finite policy must be one of %s, got %r"
                             % (", ".join(NONFINITE_POLICIES), policy))
        self.path, self.data, self.policy, self._release = path, data, policy, release
        self.sections = None if sections is None else sorted({int(i) for i in sections})
        self.enabled = np.dtype(data.dtype).kind == "f"
        self.result = None                     # (count, first [z, y, x], finite mean)
        self.warnings = []
        self._lock = threading.Lock()

    def scan(self) -> tuple[int, list[int] | None, float | None]:
        """``(count, first index or None, mean of the finite voxels)`` of the whole file
        (or of :attr:`sections`). A clean file costs one float32 sum per block; the count,
        the first index and the mean (None for a clean file) are only computed when a block
        sum is not finite."""
        with self._lock:
            if self.result is not None:
                return self.result
            data = self.data
            if not self.enabled:
                self.result = (0, None, None)
                return self.result
            per = max(1, _SCAN_BYTES // max(1, int(np.prod(data.shape[1:])) *
                                           data.dtype.itemsize))
            acc = np.float32 if data.dtype.itemsize < 4 else None
            count, first = 0, None
            for z0, z1 in self._runs(per):
                block = data[z0:z1]
                if not np.isfinite(np.sum(block, dtype=acc)):
                    bad = ~np.isfinite(block)
                    nb = int(np.count_nonzero(bad))
                    if nb and first is None:
                        first = [int(v) for v in np.argwhere(bad)[0]]
                        first[0] += z0
                    count += nb
                if self._release is not None:
                    self._release(z0, z1)
            mean = self._finite_mean(per) if count else None
            self.result = (count, first, mean)
            if count and self.policy == "replace":
                if mean is None:
                    raise NonFiniteError("%s holds no finite voxel at all: nothing to replace "
                                         "its %d non-finite voxels with" % (self.path, count))
                msg = ("%s: %d non-finite voxel%s (NaN or infinite; the first at [z, y, x] = "
                       "%s) replaced by the mean of its finite voxels, %.6g"
                       % (self.path, count, "s" if count > 1 else "", first, mean))
                self.warnings.append(msg)
                logging.getLogger(__name__).warning(msg)
            return self.result

    def finite_mean(self) -> float | None:
        """Mean (float64) of the finite values of the file (or :attr:`sections`); None when
        there is none. A streamed pass (cached)."""
        if getattr(self, "_mean", None) is None:
            result = self.scan()
            if result[0]:
                self._mean = result[2]
            else:
                per = max(1, _SCAN_BYTES // max(1, int(np.prod(self.data.shape[1:])) *
                                               self.data.dtype.itemsize))
                self._mean = self._finite_mean(per)
        return self._mean

    def _finite_mean(self, per):
        total, n = 0.0, 0
        for z0, z1 in self._runs(per):
            block = np.asarray(self.data[z0:z1])
            good = block[np.isfinite(block)]
            total += float(good.sum(dtype=np.float64))
            n += good.size
            if self._release is not None:
                self._release(z0, z1)
        return total / n if n else None

    def _runs(self, per):
        """``(z0, z1)`` runs of at most ``per`` consecutive sections to scan."""
        if self.sections is None:
            return [(z0, min(z0 + per, self.data.shape[0]))
                    for z0 in range(0, self.data.shape[0], per)]
        runs = []
        for z in self.sections:
            if runs and runs[-1][1] == z and z - runs[-1][0] < per:
                runs[-1][1] = z + 1
            else:
                runs.append([z, z + 1])
        return [tuple(r) for r in runs]

    def message(self) -> str:
        """The error message naming the file, the count and the first non-finite index."""
        count, first, _ = self.scan()
        return ("%s holds %d non-finite voxel%s (NaN or infinite), the first at [z, y, x] = "
                "%s; fix the file, or replace them by the mean of its finite voxels with %s "
                "(in Scipion: '%s')" % (self.path, count, "s" if count > 1 else "", first,
                                        NONFINITE_OPTION, NONFINITE_FORM))

    def check_all(self) -> int:
        """Scan the whole file now; raise :class:`NonFiniteError` if it holds non-finite
        values and the policy is "error". Returns the count."""
        count = self.scan()[0]
        if count and self.policy == "error":
            raise NonFiniteError(self.message())
        return count

    def check(self, block: np.ndarray, inplace: bool = False) -> np.ndarray:

        """``block`` itself when it is finite, else (policy "replace") a copy with the
        non-finite values replaced (in place with ``inplace``, for a private copy)."""
        if not self.enabled:
            return block
        if self.result is not None and self.result[0] == 0:
            return block                        # the whole file is known to be finite
        acc = np.float32 if block.dtype.itemsize < 4 else None
        if np.isfinite(np.sum(block, dtype=acc)) or np.isfinite(block).all():
            return block
        self.check_all()
        out = block if inplace else np.array(block)
        out[~np.isfinite(out)] = self.result[2]
        return out
