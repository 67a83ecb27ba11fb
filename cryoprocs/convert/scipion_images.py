"""Scipion (pwem) access to OME-Zarr images: a pwem ``ImageReader`` for ``*.zarr`` locations,
registered in ``ImageReadersRegistry`` when the cryoprocs protocols are loaded.

With it a Scipion ``Tomogram``, ``TomoMask`` or ``TiltImage`` whose file name is an OME-Zarr
folder has its dimensions (``getDim``, set dimensions), and Scipion's viewers and
thumbnails can read its slices (level 0; a whole-image read takes the smallest level that
still has all sections). Remote stores (URLs) are not files for Scipion: their objects have
no dimensions there, but every cryoprocs protocol reads them. Programs of other plugins
(IMOD, Xmipp, RELION...) read MRC files only: give them MRC copies (the copick import's
"copy to MRC", or ``cryoprocs convert``).
"""
from __future__ import annotations

import logging

import numpy as np

logger = logging.getLogger(__name__)

__all__ = ["register_zarr_reader"]

_REGISTERED = []


def _reader_class():
    from pwem.emlib.image.image_readers import ImageReader, ImageStack

    class ZarrImageReader(ImageReader):
        """pwem reader of OME-Zarr images (cryoprocs.convert.zarr_image)."""

        @staticmethod
        def getCompatibleExtensions():
            return ["zarr"]

        @staticmethod
        def getDimensions(filePath):
            from .images import image_info
            from .mrc import parse_location
            _, path = parse_location(str(filePath))
            shape = image_info(path).shape
            return int(shape[2]), int(shape[1]), int(shape[0]), 1

        @classmethod
        def canOpenSlices(cls):
            return True

        @classmethod
        def openSlice(cls, path, slice):
            from .images import open_image
            with open_image(path) as img:
                return np.asarray(img[int(slice) - 1], dtype=np.float32)

        @classmethod
        def open(cls, path):
            from .images import open_image
            with open_image(path) as img:
                return ImageStack(images=[np.asarray(s, dtype=np.float32)
                                          for s in img.read(0, img.shape[0])])

    return ZarrImageReader


def register_zarr_reader() -> type | None:
    """Register the reader for ``zarr`` locations (once; silently skipped without pwem).
    Returns the reader class (None without pwem)."""

    if _REGISTERED:
        return _REGISTERED[0]
    try:
        from pwem.emlib.image.image_readers import ImageReadersRegistry
    except Exception as exc:                       # pragma: no cover - pwem always there
        logger.debug("pwem image readers unavailable: %s", exc)
        return None
    cls = _reader_class()
    ImageReadersRegistry.addReader(cls)
    _REGISTERED.append(cls)
    return cls
