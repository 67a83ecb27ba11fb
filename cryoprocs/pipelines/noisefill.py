"""File -> file masked-tomogram noise fill, shared by ``cryoprocs noise-fill`` and
ProtCryoprocsMaskedTomogramNoiseFill.

Streaming: the tomogram and the mask are memory-mapped and read in z-slabs whose pages are
released after use (:class:`~cryoprocs.convert.mrc.MappedMrc`), or read chunk by chunk from
OME-Zarr images, local or remote (convert/images.py); the output (and the optional soft
mask) are written slab by slab under temporary names and renamed only when everything
succeeded (:class:`~cryoprocs.convert.mrc.AtomicMrcWriter`; an output named ``*.zarr`` is
written as OME-Zarr, :class:`~cryoprocs.convert.zarr_write.OmeZarrWriter`). What stays in
memory is the mask's bounding box (1 byte per voxel) with its squared-distance map (2 bytes
per voxel) and a few output slabs (measured peaks: ``benchmarks/bench_noise_fill.py``).

The maths is in :mod:`cryoprocs.kernels.noisefill`.
"""
import contextlib
import json
import logging
import os

import numpy as np

from ..constants import SAMPLING_TOLERANCE
from ..convert import outputs
from ..convert.images import image_info, open_image
from ..convert.mrc import AtomicMrcWriter, MrcFormatError, atomic_output, check_same_grid
from ..convert.zarr_write import OmeZarrWriter
from ..convert.paths import check_io
from ..kernels import noisefill as noisefill_kernels

logger = logging.getLogger(__name__)



def noise_fill_file(tomo_path, mask_path, out_path, params, soft_mask_path=None,
                    preview_png=None, report_json=None, threads=1, overwrite=False,
                    slab=None, voxel_size=None, nonfinite="error"):
    """Noise-fill ``tomo_path`` outside the expanded ``mask_path``; write ``out_path``.

    Parameters
    ----------
    tomo_path, mask_path : str
        MRC tomogram (any real mode) and mask / label map with the same dimensions and
        voxel size (within 1 %).
    out_path : str
        float32 MRC output with the tomogram's voxel size and origin.
    params : NoiseFillParams
    soft_mask_path : str, optional
        also write the final blend weight (1 = kept tomogram, 0 = noise) as float32 MRC.
    preview_png : str, optional
        PNG of the central z-slice before / after with the mask outlines.
    report_json : str, optional
        the report (counts, statistics, timings) as JSON.
    threads : int
        worker threads.
    overwrite : bool
        replace existing outputs; otherwise an existing output is an error and nothing runs.
    voxel_size : float, optional
        Å/px for the outputs when the tomogram header has none (Scipion's sampling rate).
    nonfinite : {"error", "replace"}
        NaN / infinite voxels in the tomogram or the mask are an error, or are replaced by
        the mean of the file's finite voxels (with a warning in the report).

    The outputs are written under temporary names and renamed together at the end, the
    tomogram last (:func:`cryoprocs.convert.outputs.commit_group`): the tomogram's existence
    means its side outputs are complete, and a run killed while renaming is rolled back by
    the next run of the same output.

    Returns
    -------
    dict
        the kernel report plus ``files`` and ``voxel_size``.

    Raises
    ------
    FileExistsError
        an output exists and ``overwrite`` is False.
    FileNotFoundError, IsADirectoryError, ValueError
        a missing input, a folder given as a file, an output naming an input or another
        output (see :func:`cryoprocs.convert.paths.check_io`); nothing is written.
    MrcFormatError, NoiseFillError
        unreadable inputs, different dimensions or voxel sizes, non-finite voxels, bad
        parameters.
    """
    with outputs.run_scope():
        check_io(inputs=[("tomogram", tomo_path), ("mask", mask_path)],
                 outputs=[("output", out_path), ("soft mask", soft_mask_path),
                          ("preview", preview_png), ("report", report_json)],
                 overwrite=overwrite)
        params.resolved()                          # parameter errors before any I/O
        tinfo, minfo = image_info(tomo_path), image_info(mask_path)
        check_same_grid(tomo_path, tinfo, mask_path, minfo, "mask", SAMPLING_TOLERANCE)
        with contextlib.ExitStack() as stack:
            tomo = stack.enter_context(open_image(tomo_path, nonfinite=nonfinite))
            mask = stack.enter_context(open_image(mask_path, nonfinite=nonfinite))
            return _noise_fill(tomo, mask, tomo_path, mask_path, out_path, params,
                               soft_mask_path, preview_png, report_json, threads, overwrite,
                               slab, voxel_size)


def _noise_fill(tomo, mask, tomo_path, mask_path, out_path, params, soft_mask_path,
                preview_png, report_json, threads, overwrite, slab, voxel_size):
    vs = tomo.voxel_size
    if voxel_size and not vs[0] > 0:
        vs = (float(voxel_size),) * 3
    writers, side = [], []
    try:
        if str(out_path).rstrip("/").lower().endswith(".zarr"):     # OME-Zarr output
            writer = OmeZarrWriter(out_path, tomo.shape, np.float32, vs, tomo.origin,
                                   overwrite=overwrite)
        else:
            writer = AtomicMrcWriter(out_path, tomo.shape, vs, tomo.origin, overwrite)
        writers.append(writer)
        wwriter = None
        if soft_mask_path:
            wwriter = AtomicMrcWriter(soft_mask_path, tomo.shape, vs, tomo.origin, overwrite)
            writers.append(wwriter)
        report = noisefill_kernels.noise_fill(tomo, mask, params, writer.write,
                                              wwriter.write if wwriter else None, threads=threads,
                                              slab=slab, preview=bool(preview_png))
        preview = report.pop("preview", None)
        report["voxel_size"] = vs[0]
        report["files"] = {"tomogram": tomo_path, "mask": mask_path, "output": out_path,
                           "soft_mask": soft_mask_path, "preview": preview_png}
        replaced = [w for g in (tomo.guard, mask.guard) if g for w in g.warnings]
        if replaced:                           # (already logged as warnings)
            report["nonfinite_replaced"] = replaced
        if wwriter:
            side.append((wwriter.finish(), soft_mask_path))
        if preview_png and preview:
            tmp = outputs.temp_path(preview_png)
            side.append((tmp, preview_png))
            write_preview_png(preview, tmp, title=os.path.basename(tomo_path))
        if report_json:
            tmp = outputs.temp_path(report_json)
            side.append((tmp, report_json))
            with open(tmp, "w") as fh:
                json.dump(_jsonable(report), fh, indent=1)
        # the tomogram last: its existence means "done"
        outputs.commit_group(side + [(writer.finish(), out_path)])
    except BaseException:
        for w in writers:
            w.abort()
        for tmp, _ in side:
            outputs.discard_temp(tmp)
        raise
    return report


def _jsonable(obj):
    if isinstance(obj, dict):
        return {str(k): _jsonable(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [_jsonable(v) for v in obj]
    if isinstance(obj, np.generic):
        return obj.item()
    if isinstance(obj, np.ndarray):
        return obj.tolist()
    return obj


def _outline(mask):
    """Boundary pixels of a 2D bool mask (inside pixels with an outside 4-neighbour)."""
    m = np.asarray(mask, dtype=bool)
    if not m.any():
        return m
    p = np.pad(m, 1, mode="edge")
    inner = p[1:-1, 1:-1] & p[:-2, 1:-1] & p[2:, 1:-1] & p[1:-1, :-2] & p[1:-1, 2:]
    return m & ~inner


def preview_image(preview, min_size=384):
    """RGB uint8 image: the central slice before | after, same grey window (1-99 percentile
    of the slice before), with the original mask outline in yellow and the outline of the
    kept region (weight >= 0.5) in red. Upscaled by an integer factor to at least
    ``min_size`` px high. Row 0 of the image is y = 0 of the slice (as MRC viewers show
    y downwards)."""
    before = np.asarray(preview["before"], dtype=np.float64)
    after = np.asarray(preview["after"], dtype=np.float64)
    lo, hi = np.percentile(before, [1, 99])
    if not hi > lo:
        hi = lo + 1.0

    def grey(a):
        g = np.clip((a - lo) / (hi - lo), 0, 1) * 255
        return np.repeat(g.astype(np.uint8)[:, :, None], 3, axis=2)

    kept = _outline(np.asarray(preview["weight"]) >= 0.5)
    seg = _outline(preview["mask"])
    panels = []
    for img in (grey(before), grey(after)):
        img[kept] = (230, 30, 30)
        img[seg] = (250, 220, 0)
        panels.append(img)
    gap = np.full((before.shape[0], 4, 3), 255, dtype=np.uint8)
    rgb = np.concatenate([panels[0], gap, panels[1]], axis=1)
    f = max(1, int(np.ceil(min_size / max(1, rgb.shape[0]))))
    if f > 1:
        rgb = rgb.repeat(f, axis=0).repeat(f, axis=1)
    return rgb


def write_preview_png(preview, path, title=None):
    """Write :func:`preview_image` as a PNG to ``path`` as it is (no temporary name)."""
    from PIL import Image
    Image.fromarray(preview_image(preview)).save(path, format="PNG")
    return path


def render_preview(preview, path, title=None):
    """Write :func:`preview_image` as a PNG (temporary name, then rename)."""
    with atomic_output(path) as tmp:
        write_preview_png(preview, tmp, title)
    return path


__all__ = ["noise_fill_file", "render_preview", "preview_image", "MrcFormatError",
           "SAMPLING_TOLERANCE"]
