"""Inputs of the cluster (SLURM) tests and benchmark: several real tomograms from the demo's
real data, as files (no pyworkflow import).

The demo's HIV-1 VLP tomogram (EMPIAR-10164 TS_01, 40 Å/voxel, 135 x 135 x 101) is cut into
crops that each hold real VLPs and real particles, so every item of a run is a different
piece of real data. For each crop this writes: the tomogram, a VLP sphere mask (noise fill),
a shell-NCC score map with its angle map (peak picking), and a RELION 5 particles.star of its
real particles (positions, particle axes and alternating half sets), for ImportRelion5 on the
tilt series simulated from the crops (extraction, reconstruction).
"""
import os

import numpy as np

from ..convert.mrc import write_mrc
from ..demo import data as demo_data
from ..demo import inputs as demo_inputs
from ..demo.steps.peaks import shell_ncc

#: (x0, y0, z0) of the crops in the 135 x 135 x 101 tomogram; each holds 1-4 VLP centres
CROP_ORIGINS = ((0, 0, 20), (0, 63, 20), (63, 0, 20), (63, 63, 20), (32, 32, 20),
                (32, 0, 20), (0, 32, 20), (63, 32, 20))
CROP_SIZE = 72


def crop_names(n):
    return ["hiv_%s" % "abcdefgh"[k] for k in range(n)]


def locate_data(shared_real=None):
    """The demo's real files (``../shared/data/real`` when given, else the demo's download
    cache); raises :class:`cryoprocs.demo.data.DemoDataError` when unavailable."""
    return demo_data.locate(shared_real, download=True)


def write_crops(data, folder, n=3, particle_stride=8, size=CROP_SIZE, nan_score_voxel=False):
    """Write ``n`` crops of the real HIV tomogram and their derived inputs under ``folder``
    (``nan_score_voxel``: the first crop's score map gets a NaN at [0, 0, 0], an input that
    needs the *Replace non-finite values?* switch).

    Returns a dict: ``names`` (tsIds), ``tomograms``, ``masks``, ``scores``, ``angles``
    (folders holding ``<name>.mrc`` / ``scores_<name>.mrc`` / ``angles_<name>.mrc``),
    ``angle_list`` (one-row CSV), ``particles`` ({name: (positions (k, 3) crop voxels, unit
    normals)}) and ``voxel_size`` (Å).
    """
    if n > len(CROP_ORIGINS):
        raise ValueError("at most %d crops" % len(CROP_ORIGINS))
    tomo = demo_data.load_hiv_tomogram(data["tomo.tif"])
    pos, normals = demo_data.load_hiv_particles(data["tomo_point.npy"], data.get("tomo_vector.npy"))
    centres, radii = demo_inputs.fit_vlp_spheres(pos, normals)
    out = {k: os.path.join(folder, k) for k in ("tomograms", "masks", "scores")}
    for path in out.values():
        os.makedirs(path, exist_ok=True)
    out["angles"] = out["scores"]
    out["angle_list"] = os.path.join(out["scores"], "angles_one_orientation.csv")
    with open(out["angle_list"], "w") as fh:
        fh.write("0.0,0.0,0.0\n")
    out["names"] = crop_names(n)
    out["particles"] = {}
    out["voxel_size"] = demo_data.HIV_VOXEL_A
    for name, (x0, y0, z0) in zip(out["names"], CROP_ORIGINS):
        sub = np.ascontiguousarray(tomo[z0:z0 + size, y0:y0 + size, x0:x0 + size])
        write_mrc(os.path.join(out["tomograms"], name + ".mrc"), sub,
                  voxel_size=demo_data.HIV_VOXEL_A)
        zz, yy, xx = np.ogrid[:sub.shape[0], :sub.shape[1], :sub.shape[2]]
        mask = np.zeros(sub.shape, np.int8)
        for (x, y, z), r in zip(centres - (x0, y0, z0), radii):
            mask[(xx - x) ** 2 + (yy - y) ** 2 + (zz - z) ** 2 <= r * r] = 1
        write_mrc(os.path.join(out["masks"], name + ".mrc"), mask, voxel_size=demo_data.HIV_VOXEL_A)
        write_mrc(os.path.join(out["scores"], "angles_%s.mrc" % name),
                  np.zeros(sub.shape, np.float32), voxel_size=demo_data.HIV_VOXEL_A)
        scores = shell_ncc(sub)
        if nan_score_voxel and name == out["names"][0]:
            scores[0, 0, 0] = np.nan
        write_mrc(os.path.join(out["scores"], "scores_%s.mrc" % name), scores,
                  voxel_size=demo_data.HIV_VOXEL_A)
        p = pos - (x0, y0, z0)
        inside = np.all((p >= 4) & (p < np.array(sub.shape[::-1]) - 4), axis=1)
        out["particles"][name] = (p[inside][::particle_stride], normals[inside][::particle_stride])
    return out


def write_particles_star(crops, path, tomo_sizes):
    """RELION 5 particles.star of the crops' particles (centred Å coordinates, rot 0,
    tilt/psi from the particle axis, alternating half sets), as the demo's reconstruction
    step writes it. ``tomo_sizes``: {name: (x, y, z)} of the simulated tilt series."""
    import pandas as pd

    from ..convert.star import write_star
    tables = []
    for name in crops["names"]:
        pos, normals = crops["particles"][name]
        cen = (pos - np.asarray(tomo_sizes[name], np.float64) / 2.0) * crops["voxel_size"]
        n = len(pos)
        tables.append(pd.DataFrame({
            "rlnTomoName": name, "rlnCenteredCoordinateXAngst": cen[:, 0],
            "rlnCenteredCoordinateYAngst": cen[:, 1], "rlnCenteredCoordinateZAngst": cen[:, 2],
            "rlnAngleRot": np.zeros(n),
            "rlnAngleTilt": np.degrees(np.arccos(np.clip(normals[:, 2], -1.0, 1.0))),
            "rlnAnglePsi": np.degrees(np.arctan2(normals[:, 1], -normals[:, 0])),
            "rlnRandomSubset": np.arange(n) % 2 + 1}))
    write_star(path, {"particles": pd.concat(tables, ignore_index=True)})
    return path
