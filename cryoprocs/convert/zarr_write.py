"""Write OME-Zarr images (OME-NGFF 0.4, Zarr v2): one scale level, written section block by
section block under a temporary folder name and renamed when complete.

Layout (https://ngff.openmicroscopy.org/0.4/): ``.zgroup``; ``.zattrs`` with
``multiscales[0]`` = axes ``z, y, x`` (type space, unit angstrom), one dataset ``"0"`` with
a ``scale`` transformation (the voxel size, Å, in z, y, x order) and, when the origin is not
zero, a ``translation`` (Å); ``0/`` the array (chunks ``[cz, cy, cx]``, "/" dimension
separator, Blosc LZ4 with byte shuffle as zarr's default). Readable by ome-zarr, copick,
napari and :class:`~cryoprocs.convert.zarr_image.ZarrImage`.
"""
import contextlib
import os
import shutil

import numpy as np

from .mrc import partial_path

__all__ = ["OmeZarrWriter", "ngff_attrs", "default_chunks", "ZARR_OUTPUT_SUFFIX"]

ZARR_OUTPUT_SUFFIX = ".zarr"


def default_chunks(shape, stack=False):
    """Chunks of ``shape`` ``[z, y, x]``: one section deep for stacks (tilt series), 64 deep
    for volumes; 256 x 256 in y, x (at most the shape)."""
    z, y, x = (int(s) for s in shape)
    return (1 if stack else min(z, 64), min(y, 256), min(x, 256))


def ngff_attrs(voxel_size, origin=None, name=None):
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
    """

    def __init__(self, path, shape, dtype=np.float32, voxel_size=1.0, origin=None,
                 chunks=None, overwrite=False, stack=False):
        import zarr
        if not overwrite and os.path.exists(path):
            raise FileExistsError("output %s exists; pass overwrite to replace it" % path)
        self.final_path = os.path.abspath(path)
        self.overwrite = overwrite
        self.tmp = partial_path(self.final_path)
        if os.path.exists(self.tmp):
            shutil.rmtree(self.tmp)
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

    def write(self, z0, block):
        """Write ``block`` ``[n, y, x]`` as sections ``z0 .. z0+n-1`` (thread-safe; blocks
        that cover whole z-chunks write each chunk once)."""
        block = np.asarray(block)
        self.array[int(z0):int(z0) + block.shape[0]] = block

    def commit(self):
        """Rename the finished folder to its final name; returns it."""
        if os.path.exists(self.final_path):
            if not self.overwrite:
                self.abort()
                raise FileExistsError("output %s appeared while writing; not replaced"
                                      % self.final_path)
            if os.path.isdir(self.final_path) and not os.path.islink(self.final_path):
                shutil.rmtree(self.final_path)
            else:
                os.remove(self.final_path)
        os.replace(self.tmp, self.final_path)
        return self.final_path

    def abort(self):
        """Remove the temporary folder."""
        with contextlib.suppress(FileNotFoundError):
            shutil.rmtree(self.tmp)

    def __enter__(self):
        return self

    def __exit__(self, exc_type, *exc):
        if exc_type is not None:
            self.abort()
        else:
            self.commit()
