"""Frame sources of a movie: slices of a volume (:class:`VolumeSource`), images of a tilt
series (:class:`StackSource`), memory-mapped MRC files or OME-Zarr images (local or URL,
read chunk by chunk), and the block reader that turns them into slab-averaged, binned
float32 frames (:class:`FrameReader`). Every block and view of a file goes through its
non-finite check (:func:`.outputs.source_guard`)."""
import numpy as np

from ...convert.images import is_image_store, open_image
from ...convert.mrc import MrcFormatError, mmap_mrc, voxel_size_of
from ...kernels import movie as movie_kernels
from ...kernels.movie import MovieError
from .outputs import source_guard

__all__ = ["VolumeSource", "StackSource", "FrameReader", "BLOCK_BYTES"]

#: raw slices read at once (a block of the memory-mapped input)
BLOCK_BYTES = 32 * 1024 * 1024


class VolumeSource:
    """Slices of one MRC volume (or image, or image stack read as a volume), or of an
    OME-Zarr image, along an axis.

    Parameters
    ----------
    path : str
        MRC file (a Scipion ``n@`` prefix is ignored; volumes are whole files), or an OME-Zarr
        image (a ``.zarr`` folder or URL).
    axis : str
        ``z`` (frames ``[y, x]``), ``y`` (frames ``[z, x]``) or ``x`` (frames ``[z, y]``).
    pixel_size : float, optional
        Å per pixel of the full-resolution input; default the header's X voxel size (0 =
        unknown), or the OME-Zarr level's.
    binning : int, optional
        OME-Zarr only: read the stored level binned this many times in x and y when there is
        one (``level_binning`` then tells how many times; the frames need that much less
        binning; :meth:`to_source_voxels` maps full-resolution coordinates onto it).
    nonfinite : {"error", "replace"}
        NaN / infinite voxels are an error naming the file, their count and the first
        [z, y, x], or are replaced by the mean of the file's finite voxels
        (:class:`~cryoprocs.convert.finite.FiniteGuard`).

    Attributes
    ----------
    level_binning : int
        1, or the binning of the stored OME-Zarr level read.
    level_factor : (float, float, float)
        voxel size of what is read over that of the full-resolution input, (x, y, z).
    level_isotropic : bool
        the level is binned alike along x, y and z (spheres stay spheres).
    full_shape : (int, int, int)
        ``[z, y, x]`` of the full-resolution input.
    """
    kind = "slice"

    def __init__(self, path, axis="z", pixel_size=None, binning=None, nonfinite="error"):
        self.path = path
        self.axis = axis
        self._mrc = _open_volume(path, binning)
        self.level_binning = getattr(self._mrc, "level_binning", 1)
        self.level_factor = getattr(self._mrc, "level_factor", (1.0, 1.0, 1.0))
        self.level_isotropic = bool(np.isclose(self.level_factor[2], self.level_factor[0]))
        self._level_offset = getattr(self._mrc, "level_offset", (0.0, 0.0, 0.0))
        data = self._mrc.data
        if data is None:
            raise MrcFormatError("%s holds no data" % path)
        if data.ndim == 2:
            data = data[None]
        if data.ndim != 3:
            raise MovieError("%s has %d dimensions; a movie needs an image, a stack or a volume"
                             % (path, data.ndim))
        if axis not in movie_kernels.AXES:
            raise MovieError("slicing axis %r: expected one of z, y, x" % axis)
        if axis != "z" and data.shape[0] == 1:
            raise MovieError("%s is a single image: it can only be shown along Z" % path)
        self._data = data
        self._guard = source_guard(path, data, nonfinite)
        self._finite = set()                    # slices already checked and finite
        self._ax = movie_kernels.AXES.index(axis)
        shape = data.shape
        self.n = int(shape[self._ax])
        self.frame_shape = tuple(int(s) for i, s in enumerate(shape) if i != self._ax)
        vs = self._mrc.voxel_size if hasattr(self._mrc, "levels") else voxel_size_of(self._mrc)
        self.pixel_size = float(pixel_size) * self.level_binning if pixel_size else float(vs[0])
        self.input_shape = tuple(int(s) for s in shape)
        self.full_shape = tuple(getattr(self._mrc, "full_shape", self.input_shape))
        self.dtype = data.dtype

    def to_source_voxels(self, positions):
        """Full-resolution voxel positions ``(N, 3)`` ``(x, y, z)`` -> voxels of what is read
        (the same, or on a stored OME-Zarr level: through both levels' NGFF scale and
        translation, ``(origin0 + x0 vs0 - origin) / vs``)."""
        pos = np.asarray(positions, dtype=np.float64).reshape(-1, 3)
        if self.level_factor == (1.0, 1.0, 1.0):
            return pos
        return pos / np.asarray(self.level_factor) + np.asarray(self._level_offset)

    def read(self, a, b):
        """Slices ``a .. b-1`` along the axis as float32 ``[b-a, rows, cols]`` (a copy)."""
        if self._ax == 0:
            blk = self._data[a:b]
        elif self._ax == 1:
            blk = np.moveaxis(self._data[:, a:b, :], 1, 0)
        else:
            blk = np.moveaxis(self._data[:, :, a:b], 2, 0)
        return self._guard.check(np.array(blk, dtype=np.float32, order="C"), inplace=True)

    def label(self, k):
        return movie_kernels.frame_label("slice", k, self.n, self.axis)

    def view(self, k):
        """Z slice ``k`` as a read-only view of the memory map (None along Y or X, whose
        slices are strided: read them in blocks); checked for non-finite values (a copy
        with them replaced, with ``nonfinite="replace"``) once: a slice found finite (by the
        contrast window's pass) is not summed again when it is rendered."""
        if self._ax != 0:
            return None
        img = self._data[k]
        if k in self._finite:
            return img
        out = self._guard.check(img)
        if out is img:
            self._finite.add(k)
        return out

    def overlay_key(self, k, slab=1):
        """Depth (voxels along the axis) of frame ``k``'s slab centre, where particles are
        cut (:class:`~cryoprocs.kernels.particle_overlay.SliceOverlay`)."""
        a, b = movie_kernels.slab_bounds(k, self.n, slab)
        return 0.5 * (a + b - 1)

    def close(self):
        self._mrc.close()


def _open_volume(path, binning=None):
    """An MRC file memory-mapped (mrcfile), or an OME-Zarr image (local or URL) read chunk by
    chunk: with ``binning`` > 1, the stored level binned that many times in x and y when
    there is one (its ``level_binning`` tells; the frames then need no more binning)."""
    if not is_image_store(path):
        return mmap_mrc(path, permissive=True)
    img = open_image(path, binning=binning if binning and binning > 1 else None)
    ratio = img.voxel_size[0] / img.levels[0]["voxel_size"][0]
    img.level_binning = int(round(ratio)) if abs(ratio - round(ratio)) < 1e-3 else 1
    if img.level != img.levels[0]["path"]:
        try:
            with open_image(path, level=img.levels[0]["path"]) as full:   # metadata only
                vs0, org0, img.full_shape = full.voxel_size, full.origin, full.shape
        except BaseException:
            img.close()
            raise
        img.level_factor = tuple(float(v / v0) for v, v0 in zip(img.voxel_size, vs0))
        img.level_offset = tuple(float((o0 - o) / v)
                                 for o0, o, v in zip(org0, img.origin, img.voxel_size))
    return img


class StackSource:
    """Images from MRC files in a given order (a tilt series): ``entries[k] = (path, index)``
    with a 0-based ``index`` into the file's stack, or None for a single-image file.

    Parameters
    ----------
    entries : list of (str, int or None)
        The images, in frame order.
    angles : list of float, optional
        Tilt angle of each entry in degrees (labels).
    pixel_size : float, optional
        Å per pixel; default the first file's header voxel size.
    nonfinite : {"error", "replace"}
        as for :class:`VolumeSource` (the mean is that of each file).
    """
    kind = "image"
    axis = "z"

    def __init__(self, entries, angles=None, pixel_size=None, nonfinite="error"):
        self.nonfinite = nonfinite
        self._guards = {}
        if not entries:
            raise MovieError("the tilt series has no image")
        self.entries = [(p, None if i is None else int(i)) for p, i in entries]
        self.angles = None if angles is None else [float(a) for a in angles]
        if self.angles is not None and len(self.angles) != len(self.entries):
            raise MovieError("%d tilt angles for %d images" % (len(self.angles),
                                                               len(self.entries)))
        self._open = {}
        first = self._image(0)
        self.frame_shape = tuple(int(s) for s in first.shape)
        self.n = len(self.entries)
        self.input_shape = (self.n,) + self.frame_shape
        self.dtype = first.dtype
        mrc = self._open[self.entries[0][0]]
        vs = mrc.voxel_size if hasattr(mrc, "levels") else voxel_size_of(mrc)
        self.pixel_size = float(pixel_size) if pixel_size else float(vs[0])
        self.path = self.entries[0][0]

    def _image(self, k):
        path, index = self.entries[k]
        mrc = self._open.get(path)
        if mrc is None:
            mrc = self._open[path] = _open_volume(path)
            self._guards[path] = source_guard(path, mrc.data, self.nonfinite)
        data = mrc.data
        if hasattr(mrc, "levels"):                  # OME-Zarr: one section at a time
            if index is None or not 0 <= index < data.shape[0]:
                raise MovieError("%s holds %d images; image %s requested"
                                 % (path, data.shape[0], None if index is None else index + 1))
            return data[index]
        if data.ndim == 2:
            if index not in (None, 0):
                raise MovieError("%s holds one image; image %d requested" % (path, index + 1))
            img = data
        else:
            if index is None or not 0 <= index < data.shape[0]:
                raise MovieError("%s holds %d images; image %s requested"
                                 % (path, data.shape[0], None if index is None else index + 1))
            img = data[index]
        if img.shape != getattr(self, "frame_shape", img.shape):
            raise MovieError("image %d of %s is %s px, the first image is %s px"
                             % ((index or 0) + 1, path, "x".join(map(str, img.shape[::-1])),
                                "x".join(map(str, self.frame_shape[::-1]))))
        return img

    def read(self, a, b):
        out = np.empty((b - a,) + self.frame_shape, dtype=np.float32)
        for k in range(a, b):
            out[k - a] = self._image(k)
            self._guards[self.entries[k][0]].check(out[k - a], inplace=True)
        return out

    def label(self, k):
        if self.angles is not None:
            return movie_kernels.frame_label("angle", self.angles[k])
        return "image %d/%d" % (k + 1, self.n)

    def view(self, k):
        """Image ``k`` as a read-only view of its memory map, checked for non-finite values
        (a copy with them replaced, with ``nonfinite="replace"``)."""
        img = self._image(k)                        # opens the file and its guard
        return self._guards[self.entries[k][0]].check(img)

    def overlay_key(self, k, slab=1):
        """Frame ``k`` itself (particles are projected per image)."""
        return k

    def close(self):
        for mrc in self._open.values():
            mrc.close()
        self._open.clear()


class FrameReader:
    """Float32 frames of a source, slab-averaged, binned and shrunk to ``out_shape`` (area
    averaging), read a block of slices at a time."""

    def __init__(self, source, slab=1, binning=1, out_shape=None, block_bytes=BLOCK_BYTES):
        self.source = source
        self.slab = int(slab)
        self.binning = int(binning)
        self.out_shape = None if out_shape is None else tuple(out_shape)
        rows, cols = source.frame_shape
        self.block = max(self.slab, int(block_bytes // max(1, rows * cols * 4)), 1)
        self._c0 = self._c1 = 0
        self._buf = None

    def _slices(self, a, b):
        if self._buf is None or a < self._c0 or b > self._c1:
            n = self.source.n
            if self._buf is not None and a < self._c0 and self._c0 - a <= self.block:
                # walking backwards (forward-backward playback): keep the block below
                c1 = b
                c0 = max(0, min(a, c1 - self.block))
            else:
                c0 = a
                c1 = min(n, max(b, a + self.block))
            self._buf = None
            self._buf = self.source.read(c0, c1)
            self._c0, self._c1 = c0, c1
        return self._buf[a - self._c0:b - self._c0]

    def frame(self, k):
        """Frame ``k``: slab-averaged, binned and resized float32, or, when none of these
        applies, the source's own read-only view (any real dtype; no copy)."""
        if self.slab == 1 and self.binning == 1 and self.out_shape is None:
            v = self.source.view(k)
            if v is not None:
                return v
        a, b = movie_kernels.slab_bounds(k, self.source.n, self.slab)
        sl = self._slices(a, b)
        f = sl[0] if b - a == 1 else sl.mean(axis=0, dtype=np.float32)
        f = movie_kernels.bin_image(f, self.binning)
        if self.out_shape is not None and f.shape != self.out_shape:
            import cv2
            enlarge = self.out_shape[1] > f.shape[1]
            f = cv2.resize(f, self.out_shape[::-1],
                           interpolation=cv2.INTER_CUBIC if enlarge else cv2.INTER_AREA)
        return f

