"""One way to open an image wherever it lives: MRC files (memory-mapped,
:class:`~cryoprocs.convert.mrc.MappedMrc`) and OME-Zarr images, local or remote
(:class:`~cryoprocs.convert.zarr_image.ZarrImage`), behind the same lazy array interface
(``shape`` ``[z, y, x]``, ``dtype``, ``voxel_size`` ``(x, y, z)`` Å, ``read(z0, z1)``,
``read_sections``, slicing, ``release``, ``close``).

Locations: a file name (``tomo.mrc``, optionally ``n@stack.mrcs`` or ``:mrc`` hints, which
are ignored here), an OME-Zarr folder (``tomo.zarr``, ``tomo.zarr/1`` for one scale level)
or an fsspec URL of one (``https://...``, ``s3://...``, anonymous).
"""
from __future__ import annotations

import os
from typing import TYPE_CHECKING, Any, List, Optional, Union

import numpy as np

from .mrc import MappedMrc, MrcFormatError, MrcInfo, mrc_info, parse_location

if TYPE_CHECKING:
    from .zarr_image import ZarrImage

__all__ = ["open_image", "image_info", "is_image_store", "is_url", "read_frame",
           "box_rects", "signature_files", "location_exists", "ImageFormatError"]

#: errors raised for unreadable images of either format
ImageFormatError = MrcFormatError


URL_PREFIXES = ("http://", "https://", "s3://", "gs://", "gcs://", "file://")


def is_url(location: str) -> bool:
    """True for an fsspec URL (``http(s)://``, ``s3://``, ``gs://``, ``file://``)."""
    return str(location).lower().startswith(URL_PREFIXES)


def is_image_store(location: str) -> bool:
    """True when ``location`` (``n@`` prefix and format hints ignored) is an OME-Zarr store
    or a URL, i.e. not a plain file read by :class:`MappedMrc`."""
    if location is None:
        return False
    _, path = parse_location(str(location))
    if is_url(path):
        return True
    low = path.rstrip("/").lower()
    if low.endswith(".zarr") or "/" in low and low.rsplit("/", 1)[0].endswith(".zarr"):
        return True
    return os.path.isdir(path) and any(os.path.exists(os.path.join(path, f))
                                       for f in (".zattrs", ".zgroup", "zarr.json"))


def location_exists(location: str) -> bool:
    """Whether a local image exists (URLs are assumed to, and checked when opened)."""
    _, path = parse_location(str(location))
    return is_url(path) or os.path.exists(path)


def open_image(location: str, permissive: bool = True, level: Union[str, int, None] = None,
               binning: Optional[float] = None, voxel_size: Optional[float] = None,
               cache_bytes: Optional[int] = None,
               nonfinite: Optional[str] = None) -> Union[MappedMrc, ZarrImage]:
    """Open an image read-only, lazily.

    Parameters
    ----------
    location : str
        MRC file or OME-Zarr folder / URL (see the module docstring).
    permissive : bool
        MRC files without the "MAP " id are accepted.
    level, binning, voxel_size : optional
        OME-Zarr scale level choice (:class:`~cryoprocs.convert.zarr_image.ZarrImage`);
        ignored for MRC files.
    cache_bytes : int, optional
        OME-Zarr chunk cache bound.
    nonfinite : {None, "error", "replace"}
        check the blocks read for NaN / infinite values
        (:class:`~cryoprocs.convert.finite.FiniteGuard`, kept as ``guard``); None: no check.

    Returns
    -------
    MappedMrc or ZarrImage

    Raises
    ------
    MrcFormatError
        missing or unreadable file, a header that does not match the file;
        :class:`~cryoprocs.convert.zarr_image.ZarrFormatError` (a subclass) for OME-Zarr
        problems; :class:`~cryoprocs.convert.finite.NonFiniteError` when a block read holds
        NaN / infinite values (policy "error").
    """
    _, path = parse_location(str(location))
    if is_image_store(path):
        from .zarr_image import DEFAULT_CACHE_BYTES, ZarrImage
        return ZarrImage(path, level=level, binning=binning, voxel_size=voxel_size,
                         cache_bytes=cache_bytes or DEFAULT_CACHE_BYTES, nonfinite=nonfinite)
    return MappedMrc(path, permissive=permissive, nonfinite=nonfinite)


def image_info(location: str, **kwargs: Any) -> MrcInfo:
    """``(shape, voxel_size, dtype, is_stack)`` of an image (MRC header or OME-Zarr
    metadata only; keyword arguments choose the OME-Zarr level as :func:`open_image`)."""
    _, path = parse_location(str(location))
    if not is_image_store(path):
        return mrc_info(path)
    img = open_image(path, **kwargs)
    try:
        return MrcInfo(img.shape, img.voxel_size, img.dtype, img.is_stack)
    finally:
        img.close()


def box_rects(corners: np.ndarray, size: int, height: int, width: int) -> List[tuple]:
    """The pixel rectangles ``(y0, y1, x0, x1)`` (half-open) that ``size`` x ``size`` boxes
    at ``corners`` ``(n, 2)`` = ``(x0, y0)`` read from a ``height`` x ``width`` image with
    edge replication (RELION ``extractSquares``: coordinates clamped to the image)."""
    c = np.asarray(corners, dtype=np.int64).reshape(-1, 2)
    s = int(size)
    x0 = np.clip(c[:, 0], 0, width - 1)
    x1 = np.clip(c[:, 0] + s - 1, 0, width - 1) + 1
    y0 = np.clip(c[:, 1], 0, height - 1)
    y1 = np.clip(c[:, 1] + s - 1, 0, height - 1) + 1
    return list(zip(y0.tolist(), y1.tolist(), x0.tolist(), x1.tolist()))


def read_frame(reader: Union[MappedMrc, ZarrImage], index: int, boxes: Optional[tuple] = None,

               out: Optional[np.ndarray] = None) -> np.ndarray:
    """Section ``index`` (``[y, x]``) of an open image, for cutting boxes from it.

    For a memory-mapped MRC this is the mapped view (pages are read when touched; release
    them with ``reader.release(index, index + 1)``). For an OME-Zarr image, with ``boxes``
    = ``(corners, size)`` (see :func:`box_rects`) only the chunks under the boxes are
    fetched, into ``out`` (a reusable ``[y, x]`` buffer of ``reader.dtype``, allocated when
    None); pixels outside the boxes' chunks are left unset.
    """
    if isinstance(reader, MappedMrc):
        return reader.data[index]
    H, W = reader.shape[1:]
    if out is None or out.shape != (H, W):
        out = np.empty((H, W), dtype=reader.dtype)
    if boxes is None:
        out[...] = reader[int(index)]
        return out
    corners, size = boxes
    return reader.read_regions(int(index), box_rects(corners, size, H, W), out)


def signature_files(location: str) -> List[str]:
    """Local files whose size and modification time identify an image's content for the
    resume fingerprints: the file itself, or an OME-Zarr store's ``.zattrs`` and its
    levels' ``.zarray`` (a URL: none; the URL itself is recorded by the caller)."""
    _, path = parse_location(str(location))
    if not is_image_store(path):
        return [path]
    if is_url(path):
        return []
    from .zarr_image import split_level
    store, _ = split_level(path)
    files = [os.path.join(store, ".zattrs")]
    try:
        for name in sorted(os.listdir(store)):
            za = os.path.join(store, name, ".zarray")
            if os.path.exists(za):
                files.append(za)
    except OSError:
        pass
    return files
