"""Demo of the copick protocols: the real HIV VLP tomogram, its real particles (positions and
axes) and the VLP sphere mask written as a copick project with copick's own API (OME-Zarr
tomogram at 40 Å, picks of object ``hiv-capsid``, a ``vlp`` segmentation), imported into
Scipion without copying the tomogram, and the coordinates exported back as copick picks of
another user; positions and orientations are checked both ways."""
import json
import os

import numpy as np

from .. import inputs

#: every n-th real particle (5377 in total), as the extraction step
PARTICLE_STRIDE = 8
OBJECT = "hiv-capsid"
TOMO_TYPE = "wbp"


def _rotations(normals):
    """Object-to-tomogram rotations whose z axis is the particle's axis (in-plane angle 0)."""
    n = np.asarray(normals, float).reshape(-1, 3)
    helper = np.where(np.abs(n[:, :1]) < 0.9, [[1.0, 0.0, 0.0]], [[0.0, 1.0, 0.0]])
    x = np.cross(helper, n)
    x /= np.linalg.norm(x, axis=1, keepdims=True)
    y = np.cross(n, x)
    return np.stack([x, y, n], axis=2)                     # columns: x, y, z axes


def copick_project(ctx):
    """``(config, locations Å, rotations)`` of the demo's copick project
    (``inputs/copick/``; written once)."""
    def make(ctx):
        from ...convert import copick_io
        from ...convert.mrc import read_mrc
        from ..data import HIV_VOXEL_A
        folder = os.path.join(ctx.inputs_dir, "copick")
        cfg = os.path.join(folder, "copick.json")
        positions, normals = inputs.hiv_particles(ctx)
        loc = positions[::PARTICLE_STRIDE] * HIV_VOXEL_A
        R = _rotations(normals[::PARTICLE_STRIDE])
        stamp = os.path.join(folder, "written.json")
        if not os.path.exists(stamp):
            copick = copick_io.require_copick()
            os.makedirs(folder, exist_ok=True)
            with open(cfg, "w") as fh:
                json.dump({"config_type": "filesystem", "name": "HIV VLP (EMPIAR-10164 TS_01)",
                           "version": "1.2.0",
                           "overlay_root": "local://" + os.path.join(folder, "overlay"),
                           "overlay_fs_args": {"auto_mkdir": True},
                           "pickable_objects": [
                               {"name": OBJECT, "is_particle": True, "label": 1,
                                "radius": 120.0},
                               {"name": "vlp", "is_particle": False, "label": 2}]}, fh,
                          indent=1)
            root = copick.from_file(cfg)
            run = root.get_run(inputs.HIV_TSID) or root.new_run(inputs.HIV_TSID)
            vs = run.get_voxel_spacing(HIV_VOXEL_A) or run.new_voxel_spacing(HIV_VOXEL_A)
            tomo = vs.get_tomogram(TOMO_TYPE) or vs.new_tomogram(TOMO_TYPE)
            tomo.from_numpy(read_mrc(inputs.hiv_tomogram_file(ctx), dtype=np.float32))
            T = np.tile(np.eye(4), (len(loc), 1, 1))
            T[:, :3, :3] = R
            picks = run.get_picks(OBJECT, "empiar-10164", "1")
            picks = picks[0] if picks else run.new_picks(OBJECT, "1", "empiar-10164")
            picks.from_numpy(loc, T)
            mask = read_mrc(inputs.hiv_vlp_mask_file(ctx)).astype(np.uint8)
            segs = run.get_segmentations(name="vlp", user_id="empiar-10164", session_id="1")
            seg = segs[0] if segs else run.new_segmentation(HIV_VOXEL_A, "vlp", "1", False,
                                                            "empiar-10164")
            seg.from_numpy(mask)
            with open(stamp, "w") as fh:
                json.dump({"picks": int(len(loc))}, fh)
        return cfg, loc, R
    return ctx.shared("copick_project", make)


def run(ctx):
    from ... import constants
    from ...convert import copick_io
    from ...convert.euler import relion_euler_matrix
    from ...convert.scipion import coordinate_blc, relion_orientation
    from ...protocols import ProtCryoprocsExportCopick, ProtCryoprocsImportCopick
    from ..data import HIV_VOXEL_A
    from ..workflow import DemoStepFailed

    cfg, loc, R = copick_project(ctx)
    imp = ctx.launch(ctx.new(ProtCryoprocsImportCopick,
                             label="import the HIV data as a copick project",
                             configFile=cfg, voxelSpacing=HIV_VOXEL_A, tomoType=TOMO_TYPE,
                             objects=OBJECT, users="empiar-10164", importMasks=True))
    coords = getattr(imp, constants.OUTPUT_COORDINATES)
    got = [(coordinate_blc(c), relion_orientation(c)[0]) for c in coords.iterCoordinates()]
    pos = np.array([g[0] for g in got], float).reshape(-1, 3)
    A = relion_euler_matrix(*np.array([g[1] for g in got], float).T).reshape(-1, 3, 3)
    dpos = float(np.abs(pos * HIV_VOXEL_A - loc).max()) if len(pos) == len(loc) else np.inf
    drot = float(np.abs(A - R).max()) if len(A) == len(R) else np.inf
    tomo = getattr(imp, constants.OUTPUT_TOMOGRAMS).getFirstItem()
    if dpos > 1e-4 or drot > 1e-6 or not tomo.getFileName().endswith(".zarr"):
        raise DemoStepFailed("copick import: %d coordinates for %d picks, position error %.2g A, "
                             "rotation error %.2g, tomogram %s" % (len(pos), len(loc), dpos,
                                                                   drot, tomo.getFileName()))
    ctx.launch(ctx.new(ProtCryoprocsExportCopick, label="export the HIV picks back to copick",
                       inputObjects=coords, configFile=cfg, objectName=OBJECT,
                       userId="cryoprocs", sessionId="1", overwrite=True))
    root = copick_io.open_project(cfg)
    back = copick_io.read_picks(root, copick_io.select_runs(root), [OBJECT], ["cryoprocs"],
                                ["1"])[0]
    bpos = back["locations"] + back["transforms"][:, :3, 3]
    dpos = float(np.abs(bpos - loc).max())
    drot = float(np.abs(back["transforms"][:, :3, :3] - R).max())
    if dpos > 1e-4 or drot > 1e-4:
        raise DemoStepFailed("copick export: position error %.2g A, rotation error %.2g"
                             % (dpos, drot))
    print("copick: %d real HIV particles imported from a copick project (tomogram read in "
          "place as OME-Zarr, %s) and written back; largest position error %.1e A, rotation "
          "error %.1e" % (len(loc), "x".join(str(v) for v in tomo.getDim()), dpos, drot))
