"""Shared helpers of the movie tests: an independent statement of mrc2movie's frames, and
decoders for the written files (ffmpeg through imageio-ffmpeg, OpenCV for PNG)."""
import glob
import os

import numpy as np


def mrc2movie_frames(vol, keep=None, frac=None, clip_limit=2.0, grid=8, clahe=True):
    """mrc2movie's uint8 frames of a ``[z, y, x]`` volume, as docs/export-movie.md
    section 1.2 states them: keep ``vol[S:E]`` (``--discard_range``) or
    ``vol[int(n*a):int(n*(1-b))]`` (``--discard_percentage``), global min/max of the kept
    slices in the data dtype, ``x.astype(float32); -= min; /= (max - min) if max > min;
    *= 255; astype(uint8)``, then ``cv2.createCLAHE(clip, (grid, grid)).apply`` per slice."""
    import cv2

    vol = np.asarray(vol)
    n = vol.shape[0]
    if keep is not None:
        vol = vol[keep[0]:keep[1]]
    elif frac is not None:
        vol = vol[int(n * frac[0]):int(n * (1 - frac[1]))]
    lo, hi = vol.min(), vol.max()
    out = []
    for s in vol:
        f = s.astype(np.float32)
        f -= lo
        if hi > lo:
            f /= hi - lo
        f *= 255
        u = f.astype(np.uint8)
        if clahe:
            u = cv2.createCLAHE(clipLimit=clip_limit, tileGridSize=(grid, grid)).apply(u)
        out.append(u)
    return np.stack(out)


def fb_order(n):
    """mrc2movie's forward-backward frame order ``frames + reversed(frames[1:-1])``."""
    idx = list(range(n))
    return idx + list(reversed(idx[1:-1]))


def decode(path):
    """All frames of a movie as uint8 ``[n, rows, cols]`` (ffmpeg decoder, gray)."""
    import imageio_ffmpeg

    gen = imageio_ffmpeg.read_frames(path, pix_fmt="gray", bits_per_pixel=8)
    meta = next(gen)
    w, h = meta["size"]
    frames = [np.frombuffer(b, dtype=np.uint8).reshape(h, w) for b in gen]
    return np.stack(frames), meta


def read_pngs(folder):
    """PNG frames of a folder, in name order, as uint8 ``[n, rows, cols]``."""
    import cv2

    files = sorted(glob.glob(os.path.join(folder, "*.png")))
    return np.stack([cv2.imread(f, cv2.IMREAD_UNCHANGED) for f in files]), files


def psnr(a, b):
    err = np.mean((a.astype(np.float64) - b.astype(np.float64)) ** 2)
    return float("inf") if err == 0 else 10 * np.log10(255.0 ** 2 / err)


def nearest_frame(frame, candidates):
    """Index of the candidate closest (mean absolute difference) to ``frame``."""
    d = [np.mean(np.abs(frame.astype(np.int16) - c.astype(np.int16))) for c in candidates]
    return int(np.argmin(d))


def synthetic_volume(shape=(12, 48, 64), seed=0):
    """A small float32 volume with structure (a moving disc) and noise, all slices distinct."""
    rng = np.random.default_rng(seed)
    nz, ny, nx = shape
    yy, xx = np.mgrid[0:ny, 0:nx]
    vol = rng.normal(0, 1, shape).astype(np.float32)
    for z in range(nz):
        cy, cx = ny / 2, 8 + z * (nx - 16) / max(1, nz - 1)
        vol[z] += 4.0 * (((yy - cy) ** 2 + (xx - cx) ** 2) < (ny / 5) ** 2)
    return vol
