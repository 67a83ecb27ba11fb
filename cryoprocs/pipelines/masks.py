"""File-level masking: stream images or volumes from MRC files through the mask kernels.

Used by the ``cryoprocs mask`` command and by the ApplyMask2D/3D protocols. Inputs are read
through ``mrcfile.mmap`` in blocks, outputs are float32 MRC written under a temporary name
and renamed when complete. Peak memory is a few blocks (``block`` images), whatever the
stack size.
"""
import os
from concurrent.futures import ThreadPoolExecutor

import numpy as np

import threading
from collections import OrderedDict

from ..convert.mrc import (MrcFormatError, atomic_output, finish_mrc, mmap_mrc, mrc_info,
                           new_mrc, open_mrc, partial_path, read_mrc)
from ..kernels import masks as K

__all__ = ["MaskRecipe", "ImageSources", "mask_range", "mask_file", "preallocate_stack"]

#: images per block: 512 images of 128x128 float32 = 32 MB per block and thread.
DEFAULT_BLOCK_BYTES = 32 * 1024 * 1024


class MaskRecipe:
    """Everything needed to mask an image of a given shape: a geometry or a created mask.

    Parameters
    ----------
    geometry : str or None
        Kernel geometry name (see :mod:`cryoprocs.kernels.masks`), None with ``mask_file``.
    params : dict
        Form values as the Xmipp form holds them (``radius``, ``box_size``, ``inner_radius``,
        ``outer_radius``, ``height``, ``sigma``, ``border_decay``; -1 = Xmipp default).
    center : tuple
        Centre shift (x0, y0[, z0]) in px.
    fill, fill_value, seed : see :func:`cryoprocs.kernels.masks.apply_mask`.
    gaussian_peak_one : bool
        Peak-normalised gaussian instead of Xmipp's unit integral.
    mask_file : str or None
        Created mask (MRC), multiplied voxel-wise.
    """

    def __init__(self, geometry=None, params=None, center=(0, 0, 0), fill="value",
                 fill_value=0.0, seed=42, gaussian_peak_one=False, mask_file=None):
        self.geometry = geometry
        self.params = dict(params or {})
        self.center = tuple(center)
        self.fill = fill
        self.fill_value = float(fill_value)
        self.seed = int(seed)
        self.gaussian_peak_one = bool(gaussian_peak_one)
        self.mask_file = mask_file
        if geometry is None and mask_file is None:
            raise K.MaskError("give a mask geometry or a mask file")
        self._cache = {}

    def build(self, shape):
        """Mask array for one image/volume of ``shape`` (numpy order); cached per shape.

        Returns ``(mask, warnings)``.
        """
        shape = tuple(shape)
        if shape not in self._cache:
            if self.mask_file is not None:
                mask = read_mrc(self.mask_file)
                if mask.ndim == 3 and mask.shape[0] == 1 and len(shape) == 2:
                    mask = mask[0]
                warnings = K.check_created_mask(mask, shape)
                self._cache[shape] = (mask.astype(np.float32), warnings)
            else:
                kw = K.xmipp_form_defaults(shape[-1], self.geometry, **self.params)
                mask = K.make_mask(shape, self.geometry, center=self.center,
                                   gaussian_peak_one=self.gaussian_peak_one, **kw)
                self._cache[shape] = (mask, [])
        return self._cache[shape]

    def apply(self, images, first_index=0, out=None):
        """Mask a block ``[n, y, x]`` / ``[n, z, y, x]``; returns float32."""
        mask, _ = self.build(images.shape[1:])
        if self.mask_file is not None:
            return K.apply_created_mask(images, mask, out=out)
        return K.apply_mask(images, mask, fill=self.fill, fill_value=self.fill_value,
                            seed=self.seed, first_index=first_index, out=out)


class ImageSources:
    """Where each image of an ordered set lives: ``paths[file_ids[i]]``, 0-based ``index[i]``.

    ``item_ndim`` is 2 for images, 3 for volumes: a file whose data already has that many
    dimensions holds a single item and its index is ignored (Scipion writes ``1@vol.mrc``
    for plain volumes), otherwise ``data[index]`` is the item.
    """

    def __init__(self, paths, file_ids, index, item_ndim=2):
        self.paths = list(paths)
        self.file_ids = np.asarray(file_ids, dtype=np.int64)
        self.index = np.asarray(index, dtype=np.int64)
        self.item_ndim = int(item_ndim)

    def __len__(self):
        return len(self.index)

    @classmethod
    def from_locations(cls, locations, item_ndim=2):
        """From ``(index, path)`` pairs with Scipion's 1-based stack index (0/None = whole file)."""
        paths, ids, idx, lookup = [], [], [], {}
        for index, path in locations:
            if path not in lookup:
                lookup[path] = len(paths)
                paths.append(path)
            ids.append(lookup[path])
            idx.append(int(index) - 1 if index else -1)
        return cls(paths, ids, idx, item_ndim)

    def _item(self, data, k):
        idx = self.index[k]
        if data.ndim == self.item_ndim:
            return data
        if idx < 0:
            raise MrcFormatError("%s holds %d items; its location needs an index"
                                 % (self.paths[self.file_ids[k]], data.shape[0]))
        return data[idx]

    def read(self, i0, i1, handles):
        """Read items ``i0..i1-1`` into a new array (original dtype); ``handles(fid)`` gives
        the data of file ``fid``."""
        out = None
        for k in range(i0, i1):
            img = self._item(handles(self.file_ids[k]), k)
            if out is None:
                out = np.empty((i1 - i0,) + img.shape, dtype=img.dtype)
            out[k - i0] = img
        return out

    def read_item(self, k):
        """Read item ``k`` alone (opens and closes its file)."""
        with open_mrc(self.paths[self.file_ids[k]], permissive=True) as mrc:
            return np.array(self._item(mrc.data, k))


class _HandleCache:
    """Thread-safe LRU of open read-only mmaps, so sets spread over thousands of stack files
    never exceed the open-file limit."""

    def __init__(self, paths, size=64):
        self.paths, self.size = paths, size
        self._open = OrderedDict()
        self._lock = threading.Lock()

    def __call__(self, fid):
        with self._lock:
            mrc = self._open.pop(fid, None)
            if mrc is None:
                mrc = mmap_mrc(self.paths[fid], permissive=True)
                while len(self._open) >= self.size:
                    # Dropped, not closed: another thread may still hold a view of it;
                    # garbage collection closes it once the views are gone.
                    self._open.popitem(last=False)
            self._open[fid] = mrc
            return mrc.data

    def close(self):
        with self._lock:
            for mrc in self._open.values():
                mrc.close()
            self._open.clear()


def preallocate_stack(path, n, shape, voxel_size):
    """Create the float32 output stack under its temporary name (resumable fill).

    Returns the temporary path. An existing temporary file of the right shape is kept, so
    a resumed run does not lose finished chunks.
    """
    tmp = partial_path(path)
    want = (n,) + tuple(shape)
    if os.path.exists(tmp):
        try:
            if mrc_info(tmp).shape == want:
                return tmp
        except MrcFormatError:
            pass
    mrc = new_mrc(tmp, want, np.float32, voxel_size=voxel_size, is_stack=True)
    finish_mrc(mrc, stats=False)
    return tmp


def _block_size(shape, threads=1):
    per_image = int(np.prod(shape)) * 4
    return max(1, DEFAULT_BLOCK_BYTES // max(per_image, 1))


def mask_range(sources, recipe, out_stack, i0, i1, threads=1, block=None):
    """Mask images ``i0..i1-1`` of ``sources`` into the open-able stack ``out_stack``.

    The output file (from :func:`preallocate_stack`) is opened in ``r+`` mode and only rows
    ``i0..i1-1`` are written, so several ranges can run in parallel or be resumed.
    """
    import mrcfile

    if i1 <= i0:
        return
    get = _HandleCache(sources.paths)
    first = sources.read(i0, i0 + 1, get)
    shape = first.shape[1:]
    block = block or _block_size(shape, threads)
    starts = list(range(i0, i1, block))
    out = mrcfile.mmap(out_stack, mode="r+")
    try:
        def work(b0):
            b1 = min(b0 + block, i1)
            imgs = sources.read(b0, b1, get)
            recipe.apply(imgs, first_index=b0, out=out.data[b0:b1])

        if threads > 1 and len(starts) > 1:
            with ThreadPoolExecutor(threads) as pool:
                list(pool.map(work, starts))
        else:
            for b0 in starts:
                work(b0)
        out.flush()
    finally:
        out.close()
        get.close()


def mask_file(in_path, out_path, recipe, threads=1, overwrite=True):
    """Mask an MRC image, image stack (.mrcs) or volume into ``out_path`` (float32 MRC).

    A 2D image or a volume is masked as one item; a stack (``.mrcs``, or ispg 0 with
    ``nz > 1``) image by image. Returns the list of mask warnings.

    Raises
    ------
    MrcFormatError
        input not MRC; :class:`~cryoprocs.kernels.masks.MaskError` for mask problems.
    FileExistsError
        ``out_path`` exists and ``overwrite`` is False.
    """
    info = mrc_info(in_path)
    if os.path.abspath(in_path) == os.path.abspath(out_path):
        raise ValueError("output %s would overwrite the input" % out_path)
    if not overwrite and os.path.exists(out_path):
        raise FileExistsError("output %s exists" % out_path)
    nz, ny, nx = info.shape
    if info.is_stack:
        item_shape, n = (ny, nx), nz
    elif nz == 1:
        item_shape, n = (ny, nx), 1
    else:
        item_shape, n = (nz, ny, nx), 1
    _, warnings = recipe.build(item_shape)     # validates before anything is written
    vs = info.voxel_size[0]
    with atomic_output(out_path, overwrite=overwrite) as tmp:
        mrc = new_mrc(tmp, (n,) + item_shape if info.is_stack else info.shape, np.float32,
                      voxel_size=vs, is_stack=info.is_stack)
        try:
            with open_mrc(in_path, permissive=True) as src:
                data = src.data
                if info.is_stack:
                    block = _block_size(item_shape, threads)
                    starts = list(range(0, n, block))

                    def work(b0):
                        b1 = min(b0 + block, n)
                        recipe.apply(np.asarray(data[b0:b1]), first_index=b0,
                                     out=mrc.data[b0:b1])

                    if threads > 1 and len(starts) > 1:
                        with ThreadPoolExecutor(threads) as pool:
                            list(pool.map(work, starts))
                    else:
                        for b0 in starts:
                            work(b0)
                else:
                    item = np.asarray(data).reshape((1,) + item_shape)
                    res = recipe.apply(item)
                    mrc.data[...] = res.reshape(mrc.data.shape)
        finally:
            finish_mrc(mrc)
    return warnings
