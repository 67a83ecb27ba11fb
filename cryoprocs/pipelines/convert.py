"""Image conversion between MRC and OME-Zarr (``cryoprocs convert``; the copick import's copy
to MRC), streamed block by block and written atomically."""
import os

import numpy as np

from ..convert.images import is_image_store, open_image
from ..convert.mrc import AtomicMrcWriter
from ..convert.paths import check_io
from ..convert.zarr_image import ZarrFormatError
from ..convert.zarr_write import OmeZarrWriter

__all__ = ["convert_image", "MRC_OUTPUTS"]

MRC_OUTPUTS = (".mrc", ".mrcs", ".rec", ".st", ".ali", ".map")
MRC_DTYPES = (np.float32, np.int16, np.uint16, np.int8, np.uint8)


def convert_image(src, dst, level=None, binning=None, chunks=None, stack=None,
                  block_bytes=128 * 2 ** 20, overwrite=False):
    """Copy the image ``src`` (MRC, OME-Zarr folder or URL) to ``dst`` (MRC, or OME-Zarr
    when it ends in ``.zarr``).

    Parameters
    ----------
    level, binning : optional
        OME-Zarr input level (path), or the stored level binned by ``binning`` (an error
        when there is none).
    chunks : (cz, cy, cx), optional
        OME-Zarr output chunks.
    stack : bool, optional
        an image stack (MRC stack header, one-section chunks); default: the input's flag.
    block_bytes : int
        sections copied at once.

    Returns
    -------
    dict
        ``output``, ``shape`` ``(z, y, x)``, ``dtype``, ``voxel_size``, ``level``,
        ``bytes_read`` (OME-Zarr: compressed bytes fetched).

    Raises
    ------
    ValueError
        unknown output format, a missing binned level, data MRC cannot hold.
    MrcFormatError, FileExistsError
        unreadable input; an existing output without ``overwrite``.
    """
    low = str(dst).rstrip("/").lower()
    to_zarr = low.endswith(".zarr")
    if not to_zarr and not low.endswith(MRC_OUTPUTS):
        raise ValueError("output %s: give an MRC name (%s) or an OME-Zarr folder (.zarr)"
                         % (dst, ", ".join(MRC_OUTPUTS)))
    if to_zarr:
        if os.path.exists(dst) and not overwrite:
            raise FileExistsError("output %s exists; pass --overwrite to replace it" % dst)
        check_io(inputs=[] if is_image_store(src) else [("input", src)])
    else:
        check_io(inputs=[] if is_image_store(src) else [("input", src)],
                 outputs=[("output", dst)], overwrite=overwrite)
    img = open_image(src, level=level, binning=binning)
    try:
        if binning is not None and float(binning) != 1.0 and is_image_store(src):
            v0 = img.levels[0]["voxel_size"][0]
            if abs(img.voxel_size[0] - v0 * float(binning)) > 1e-4 * v0 * float(binning):
                raise ZarrFormatError("%s has no level binned %g times (levels: %s)" % (
                    src, float(binning), ", ".join("%s = %.4g A" % (lv["path"],
                                                                  lv["voxel_size"][0])
                                                 for lv in img.levels)))
        is_stack = img.is_stack if stack is None else bool(stack)
        nz, ny, nx = img.shape
        dtype = np.dtype(img.dtype)
        if not to_zarr and not any(dtype == np.dtype(d) for d in MRC_DTYPES):
            if dtype.kind == "f":
                dtype = np.dtype(np.float32)
            else:
                raise ValueError("%s holds %s data, which MRC cannot store" % (src, dtype))
        step = max(1, int(block_bytes) // max(1, ny * nx * dtype.itemsize))
        if to_zarr:
            writer = OmeZarrWriter(dst, img.shape, dtype, img.voxel_size, img.origin,
                                   chunks=chunks, overwrite=overwrite, stack=is_stack)
            if chunks is None and writer.chunks[0] > 1:
                step = max(step - step % writer.chunks[0], writer.chunks[0])
        else:
            writer = AtomicMrcWriter(dst, img.shape, voxel_size=img.voxel_size,
                                     origin=img.origin, overwrite=overwrite, dtype=dtype,
                                     is_stack=is_stack)
        with writer:
            for z0 in range(0, nz, step):
                z1 = min(nz, z0 + step)
                block = img.read(z0, z1)
                if block.dtype != dtype:
                    block = block.astype(dtype)
                writer.write(z0, block)
        read = getattr(img, "fetched_bytes", None)
        return {"output": str(dst), "shape": img.shape, "dtype": str(dtype),
                "voxel_size": img.voxel_size, "level": getattr(img, "level", None),
                "bytes_read": read if read is not None else nz * ny * nx * img.dtype.itemsize}
    finally:
        img.close()
