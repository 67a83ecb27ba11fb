"""A small copick project made with copick's own API (filesystem backend) for the copick
tests (not a test module)."""
import json
import os

import numpy as np
import pytest

VOXEL = 10.0
SHAPE = (24, 40, 48)                               # z, y, x


def copick_or_skip():
    """The copick module (imported without its logging side effects), or skip."""
    from cryoprocs.convert import copick_io
    try:
        return copick_io.require_copick()
    except copick_io.CopickError as exc:
        pytest.skip(str(exc))


def rz(deg):
    c, s = np.cos(np.deg2rad(deg)), np.sin(np.deg2rad(deg))
    return np.array([[c, -s, 0.0], [s, c, 0.0], [0.0, 0.0, 1.0]])


def random_rotations(n, seed=3):
    from scipy.spatial.transform import Rotation
    return Rotation.random(n, random_state=seed).as_matrix()


def blobs(shape, centres, sigma, amp):
    """``[z, y, x]`` float32 sum of Gaussian blobs at ``centres`` ``(n, 3)`` voxels (x, y,
    z)."""
    zz, yy, xx = np.meshgrid(*(np.arange(n) for n in shape), indexing="ij")
    out = np.zeros(shape, np.float32)
    for x, y, z in np.asarray(centres, dtype=np.float64).reshape(-1, 3):
        out += amp * np.exp(-((xx - x) ** 2 + (yy - y) ** 2 + (zz - z) ** 2)
                            / (2 * sigma ** 2))
    return out


def pick_scores(n):
    """The scores of the picks of :func:`make_project` with ``particles`` (0.3 to 0.9)."""
    return 0.3 + 0.6 * np.arange(n) / max(n - 1, 1)


def make_project(folder, runs=("TS_01", "TS_02"), n_picks=6, seed=7, particles=False):
    """Write a copick project in ``folder``: per run a ``wbp`` tomogram at 10 Å (SHAPE, a
    3-level pyramid as copick writes it), ``ribosome`` picks by ``alice`` session ``1``
    (the first pick rotated by Rz(+90°), the others random, one with a non-zero
    transformation translation) and a ``membrane`` segmentation (tomogram > 1). With
    ``particles`` the tomogram is weak noise (std 0.3) plus a bright blob (sigma 2 voxels)
    at each pick, so pictures show the picks on particles, and the picks have scores
    (:func:`pick_scores`; else copick's default 1). Returns
    ``(config path, {run: (locations Å, transforms, tomogram array, segmentation)})``."""
    copick = copick_or_skip()
    os.makedirs(folder, exist_ok=True)
    cfg = os.path.join(folder, "copick.json")
    with open(cfg, "w") as fh:
        json.dump({"config_type": "filesystem", "name": "cryoprocs test", "version": "1.2.0",
                   "overlay_root": "local://" + os.path.join(folder, "overlay"),
                   "overlay_fs_args": {"auto_mkdir": True},
                   "pickable_objects": [
                       {"name": "ribosome", "is_particle": True, "label": 1, "radius": 80.0},
                       {"name": "membrane", "is_particle": False, "label": 2}]}, fh)
    root = copick.from_file(cfg)
    rng = np.random.default_rng(seed)
    truth = {}
    for r, name in enumerate(runs):
        run = root.new_run(name)
        vs = run.new_voxel_spacing(VOXEL)
        vol = rng.standard_normal(SHAPE).astype(np.float32)
        n = n_picks
        loc = np.stack([rng.uniform(5, SHAPE[2] - 5, n), rng.uniform(5, SHAPE[1] - 5, n),
                        rng.uniform(3, SHAPE[0] - 3, n)], axis=1) * VOXEL
        T = np.tile(np.eye(4), (n, 1, 1))
        T[:, :3, :3] = random_rotations(n, seed + r)
        T[0, :3, :3] = rz(90.0)
        T[1, :3, 3] = [4.0, -3.0, 2.5]                 # a translation (Å), part of the position
        if particles:
            vol = (0.3 * vol + blobs(SHAPE, (loc + T[:, :3, 3]) / VOXEL, 2.0, 3.0)) \
                .astype(np.float32)
        vs.new_tomogram("wbp").from_numpy(vol)
        picks = run.new_picks("ribosome", "1", "alice")
        picks.from_numpy(loc, T)
        if particles:
            for q, score in zip(picks.points, pick_scores(n)):
                q.score = float(score)
            picks.store()
        seg = (vol > 1.0).astype(np.uint8)
        run.new_segmentation(VOXEL, "membrane", "1", False, "alice").from_numpy(seg)
        truth[name] = (loc, T, vol, seg)
    return cfg, truth
