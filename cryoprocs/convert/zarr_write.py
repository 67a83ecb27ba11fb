"""Write OME-Zarr images (OME-NGFF 0.4, Zarr v2): one scale level, written section block by
section block under a unique temporary folder name (``.NAME.<pid>.<random>.partial``,
:func:`cryoprocs.convert.outputs.temp_dir`) and renamed when complete.

Layout (https://ngff.openmicroscopy.org/0.4/): ``.zgroup``; ``.zattrs`` with
``multiscales[0]`` = axes ``z, y, x`` (type space, unit angstrom), one dataset ``"0"`` with
a ``scale`` transformation (the voxel size, Å, in z, y, x order) and, when the origin is not
zero, a ``translation`` (Å); ``0/`` the array (chunks ``[cz, cy, cx]``, "/" dimension
separator, Blosc LZ4 with byte shuffle as zarr's default). Readable by ome-zarr, copick,
napari and :class:`~cryoprocs.convert.zarr_image.ZarrImage`.
"""
from __future__ import annotations

import os
from typing import TYPE_CHECKING, Any, Sequence

import numpy as np
from numpy.typing import ArrayLike, DTypeLike

if TYPE_CHECKING:
    from .paths import PathLike

from . import outputs

__all__ = ["OmeZarrWriter", "ngff_attrs", "default_chunks", "ZARR_OUTPUT_SUFFIX"]

ZARR_OUTPUT_SUFFIX = ".zarr"


def default_chunks(shape: Sequence[int], stack: bool = False) -> tuple[int, int, int]:
    """Chunks of ``shape`` ``[z, y, x]``: one section deep for stacks (tilt series), 64 deep
    for volumes; 256 x 256 in y, x (at most the shape)."""
    z, y, x = (int(s) for s in shape)
    return (1 if stack else min(z, 64), min(y, 256), min(x, 256))


def ngff_attrs(voxel_size: Sequence[float], origin: Sequence[float] | None = None,
               name: str | None = None) -> dict[str, Any]:
    """The ``.zattrs`` of a one-level OME-NGFF 0.4 image (``voxel_size``, ``origin``:
    ``(x, y, z)`` in Å)."""
    vs = [float(v) for v in voxel_size]
    transforms = [{"type": "scale", "scale": [vs[2], vs[1], vs[0]]}]
    if origin is not None and any(float(o) != 0.0 for o in origin):
        o = [float(v) for v in origin]
        transforms.append({"type": "translation", "translation": [o[2], o[1], o[0]]})
    ms = {"version": "0.4",
          "axes": [{"name": n, "type": "space", "unit": "angstrom"} for n in ("z", "y", "x")],
          "datasets": [{"path": "0", "coordinateTransformations": transforms}]}
    if name:
        ms["name"] = str(name)
    return {"multiscales": [ms]}


class OmeZarrWriter:
    """Write a ``[z, y, x]`` image as an OME-Zarr folder, section blocks at a time.

    Parameters
    ----------
    path : str
        the final folder (``*.zarr``).
    shape : (z, y, x)
    dtype : numpy dtype (default float32)
    voxel_size : float or (x, y, z)
        Å per voxel.
    origin : (x, y, z), optional
        Å (an NGFF translation).
    chunks : (cz, cy, cx), optional
        default :func:`default_chunks`.
    overwrite : bool
        replace an existing ``path`` at :meth:`commit`.
    stack : bool
        a stack of images (tilt series): one section per chunk by default.

    Raises
    ------
    FileExistsError
        ``path`` exists and ``overwrite`` is False.
    OSError
        the temporary folder cannot be created (naming ``path``).
    """

    def __init__(self, path: PathLike, shape: Sequence[int], dtype: DTypeLike = np.float32,
                 voxel_size: float | Sequence[float] = 1.0,
                 origin: Sequence[float] | None = None, chunks: Sequence[int] | None = None,
                 overwrite: bool = False, stack: bool = False) -> None:
        if not overwrite and os.path.lexists(path):
            raise FileExistsError("output %s exists; pass --overwrite to replace it" % path)
        self.final_path = os.path.abspath(path)
        self.overwrite = overwrite
        os.makedirs(os.path.dirname(self.final_path), exist_ok=True)
        self.tmp = outputs.temp_dir(self.final_path)
        try:
            self._create(shape, dtype, voxel_size, origin, chunks, stack)
        except BaseException as exc:
            self.abort()
            if isinstance(exc, OSError) and exc.filename is None and exc.errno:
                raise OSError(exc.errno, exc.strerror, path) from None
            raise

    def _create(self, shape, dtype, voxel_size, origin, chunks, stack):
        import zarr
        path = self.final_path
        self.shape = tuple(int(s) for s in shape)
        vs = (float(voxel_size),) * 3 if np.isscalar(voxel_size) else \
            tuple(float(v) for v in voxel_size)
        store = zarr.storage.DirectoryStore(self.tmp, dimension_separator="/")
        root = zarr.group(store=store, overwrite=True)
        root.attrs.update(ngff_attrs(vs, origin, os.path.basename(path)))
        # blocks written by threads may share chunks: chunk-level locks
        self.array = root.create_dataset("0", shape=self.shape, dtype=np.dtype(dtype),
                                         chunks=tuple(chunks or default_chunks(shape, stack)),
                                         dimension_separator="/", overwrite=True,
                                         synchronizer=zarr.ThreadSynchronizer())
        self.chunks = self.array.chunks

    def write(self, z0: int, block: ArrayLike) -> None:
        """Write ``block`` ``[n, y, x]`` as sections ``z0 .. z0+n-1`` (thread-safe; blocks
        that cover whole z-chunks write each chunk once)."""
        block = np.asarray(block)
        try:
            self.array[int(z0):int(z0) + block.shape[0]] = block
        except OSError as exc:              # e.g. a full disk: name the output, not a chunk
            raise OSError(exc.errno, exc.strerror or str(exc), self.final_path) from None

    def finish(self) -> str:
        """The complete temporary folder, not renamed (for a group commit,
        :func:`cryoprocs.convert.outputs.commit_group`)."""
        return self.tmp

    def commit(self) -> str:
        """Rename the finished folder to its final name (an old folder of that name is
        replaced at once, with ``overwrite``); returns it."""
        try:
            if os.path.lexists(self.final_path) and not self.overwrite:
                raise FileExistsError("output %s appeared while writing; not replaced"
                                      % self.final_path)
            outputs.commit_temp(self.tmp, self.final_path)
        except BaseException:
            self.abort()
            raise
        return self.final_path

    def abort(self) -> None:

        """Remove the temporary folder (the final name is never touched); never raises."""
        outputs.discard_temp(self.tmp)

    def __enter__(self):
        return self

    def __exit__(self, exc_type, *exc):
        if exc_type is not None:
            self.abort()
        else:
            self.commit()
