"""Data safety of the movie export (:mod:`cryoprocs.pipelines.movie`), in small functions the
sources (:mod:`.sources`), writers (:mod:`.writers`) and
:func:`~cryoprocs.pipelines.movie.export_movie` (:mod:`.export`) call:

* :func:`source_guard`: NaN / infinite voxels of a source file are an error naming the
  file, their count and the first ``[z, y, x]``, or are replaced by the file's finite mean;
* :func:`writer_temp` / :func:`writer_temp_dir`: the unique temporary name a writer encodes
  to (same folder, same extension: OpenCV picks the container from it), removed on failure
  or interruption (a side file such as a GIF palette likewise, with its own extension);
  :func:`start_encoder` / :func:`track_encoder` / :func:`untrack_encoder`: an ffmpeg child
  killed when the run is interrupted;
* :func:`disk_full_error`, :func:`riff_complete`, :func:`write_png_frame`,
  :func:`named_os_error`: write errors the encoders do not report (OpenCV), report without
  the file (ffmpeg, a write to an unnamed cache file) or report as a truncated file, as one
  line naming the movie;
* :func:`claim_movie_outputs`: this run's claim on the movie (and its PNG frames folder),
  before any frame is rendered; :func:`commit_movie_outputs`: the temporaries renamed
  together, the movie last.

Nothing here renders or encodes frames.
"""
import errno
import os
import struct

from ...convert import outputs as outputs_io
from ...convert.finite import FiniteGuard

__all__ = ["source_guard", "writer_temp", "writer_temp_dir", "discard", "start_encoder",
           "track_encoder", "untrack_encoder", "disk_full_error", "named_os_error",
           "riff_complete", "write_png_frame", "claim_movie_outputs", "commit_movie_outputs"]


def source_guard(path, data, nonfinite="error"):
    """The non-finite check of a movie source's file (:class:`FiniteGuard` over ``data``,
    ``[z, y, x]``, a 2D image as one section; MRC memory map or OME-Zarr image): each block
    of frames goes through its ``check`` ("error": NaN / infinite voxels stop the export
    naming the file, the count and the first [z, y, x]; "replace": the mean of the file's
    finite voxels, with a warning)."""
    return FiniteGuard(path, data if data.ndim == 3 else data[None], nonfinite)


def writer_temp(path, ext=None):
    """A unique temporary file for the movie ``path`` (``.NAME.<pid>.<random>.partial.EXT``
    in its folder, created empty and registered for removal on interruption); ``ext``: the
    extension of a side file (e.g. ``.png`` for a GIF palette), default the movie's."""
    return outputs_io.temp_path(path, os.path.splitext(path)[1] if ext is None else ext)


def writer_temp_dir(folder):
    """A unique temporary folder for a PNG frames folder (created empty, registered)."""
    return outputs_io.temp_dir(folder)


def discard(tmp):
    """Remove a writer's temporary (file or folder); never raises."""
    outputs_io.discard_temp(tmp)


def track_encoder(proc):
    """An encoder child process (ffmpeg) killed when the run is interrupted."""
    outputs_io.register_child(proc)


def start_encoder(cmd, **popen_kwargs):
    """Start an encoder (``subprocess.Popen(cmd, ...)``) tracked from the moment it exists
    (:func:`~cryoprocs.convert.outputs.start_child`: an interruption while it starts kills
    it too)."""
    return outputs_io.start_child(cmd, **popen_kwargs)


def untrack_encoder(proc):
    outputs_io.unregister_child(proc)


def disk_full_error(path):
    """An ``OSError(ENOSPC)`` naming ``path`` when its file system has no space left (the
    OpenCV writers report no error of their own, ffmpeg only a broken pipe), else None."""
    try:
        st = os.statvfs(os.path.dirname(os.path.abspath(path)))
    except OSError:
        return None
    if st.f_bavail * st.f_frsize < 64 * 1024:
        return OSError(errno.ENOSPC, os.strerror(errno.ENOSPC), path)
    return None


def named_os_error(exc, path):
    """``exc`` (an ``OSError`` from writing the movie ``path`` or one of its temporaries or
    caches) as an ``OSError`` naming ``path``: one line "path: reason" (exit status 2)."""
    if exc.errno is None:
        return OSError(errno.EIO, str(exc), path)
    return OSError(exc.errno, exc.strerror or os.strerror(exc.errno), path)


def riff_complete(path):
    """True when the RIFF chunks of an AVI file (``RIFF AVI `` then OpenDML ``RIFF AVIX``)
    add up to exactly the file size: a file cut short (full disk) does not."""
    size = os.path.getsize(path)
    pos = 0
    with open(path, "rb") as fh:
        while pos < size:
            fh.seek(pos)
            head = fh.read(8)
            if len(head) < 8 or head[:4] != b"RIFF":
                return False
            pos += 8 + struct.unpack("<I", head[4:])[0]
            pos += pos % 2
    return pos == size


def write_png_frame(tmp_folder, folder, name, data):
    """Write the encoded PNG ``data`` as ``name`` in the temporary folder of ``folder``
    (written here, not by libpng: an error is one line naming ``folder/name``)."""
    try:
        with open(os.path.join(tmp_folder, name), "wb") as fh:
            fh.write(data)
    except OSError as exc:
        raise OSError(exc.errno, exc.strerror, os.path.join(folder, name)) from None


def claim_movie_outputs(out_path, png_dir=None, png_output=False, overwrite=True):
    """Claim the movie ``out_path`` (a PNG frames folder with ``png_output``) and the extra
    PNG frames folder ``png_dir`` for this run, until the enclosing
    :func:`~cryoprocs.convert.outputs.run_scope` ends; the claim creates the output folder
    (removed again when the run fails).

    Raises
    ------
    OutputInUseError
        another run writes one of them (naming it and the holder's process id).
    FileExistsError
        one exists and ``overwrite`` is False.
    """
    outputs_io.claim(out_path, "movie", folder=png_output)
    if png_dir:
        outputs_io.claim(png_dir, "PNG frames", folder=True)
    for p in (out_path, png_dir):
        if p and not overwrite and os.path.lexists(p):
            raise FileExistsError("output %s exists; pass --overwrite to replace it" % p)


def commit_movie_outputs(writers):
    """Rename the writers' finished temporaries (``w.tmp`` -> ``w.path``) as one group, the
    first writer's (the movie) last: its existence means the export is complete."""
    outputs_io.commit_group([(w.tmp, w.path) for w in writers[::-1]])
