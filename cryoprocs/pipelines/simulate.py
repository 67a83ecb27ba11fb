"""Simulate a RELION 5 tilt-series project from a tomogram (demo and test data).

:func:`simulate_relion_project` writes ``<out>/tiltseries/<tsId>.mrcs`` (float32 stack,
ascending tilts; file names from :func:`~cryoprocs.convert.paths.safe_name`),
``<out>/tiltseries/<tsId>.star`` and ``<out>/tomograms.star`` with
``rlnTomoSizeX/Y/Z`` = the tomogram size, so that a particle at tomogram voxel ``p`` (0-based
x, y, z) projects, with RELION 5's geometry, onto the simulated images where its density
was integrated (kernels/simulate.py).
"""
import os
from dataclasses import dataclass

import numpy as np

from ..convert import relion5
from ..convert.mrc import atomic_output, new_mrc, finish_mrc, read_mrc
from ..convert.paths import safe_name
from ..kernels import relion_geometry
from ..kernels import simulate as simulate_kernels

__all__ = ["SimulationSettings", "simulate_relion_project"]


@dataclass
class SimulationSettings:
    """Acquisition of the simulated tilt series (angles in degrees, defocus in Å, dose in
    e/Å² per tilt, noise as a multiple of the noise-free image standard deviation)."""
    tilt_min: float = -60.0
    tilt_max: float = 60.0
    tilt_step: float = 3.0
    dose_per_tilt: float = 3.0
    defocus: float = 30000.0
    astigmatism: float = 300.0
    astigmatism_angle: float = 30.0
    voltage: float = 300.0
    cs: float = 2.7
    amplitude_contrast: float = 0.1
    tilt_axis: float = 0.0
    shift_sigma: float = 0.0
    noise: float = 1.0
    seed: int = 1
    hand: int = -1

    def tilts(self):
        n = int(round((self.tilt_max - self.tilt_min) / self.tilt_step)) + 1
        return self.tilt_min + self.tilt_step * np.arange(n)


def simulate_relion_project(tomogram_file, out_dir, ts_id, settings, project_dir,
                            pixel_size=None):
    """Write a simulated RELION 5 project; returns the tomograms.star path.

    Parameters
    ----------
    tomogram_file : str
        MRC tomogram ``[z, y, x]``; its voxel size (or ``pixel_size``) is the tilt-series
        pixel size.
    out_dir : str
        output folder.
    ts_id : str
        ``rlnTomoName`` of the tilt series.
    project_dir : str
        paths inside the STAR files are written relative to it (when inside).
    """
    s = settings
    vol = read_mrc(tomogram_file, dtype=np.float32)
    Z, Y, X = vol.shape
    if pixel_size is None:
        from ..convert.mrc import mrc_info
        pixel_size = mrc_info(tomogram_file).voxel_size[0]
    ps = float(pixel_size)
    tilts = s.tilts()
    F = len(tilts)
    rng = np.random.default_rng(int(s.seed))
    pre, _ = simulate_kernels.dose_symmetric_pre_exposure(tilts, s.dose_per_tilt)
    zrot = np.full(F, float(s.tilt_axis))
    xs = rng.normal(0.0, s.shift_sigma, F) if s.shift_sigma > 0 else np.zeros(F)
    ys = rng.normal(0.0, s.shift_sigma, F) if s.shift_sigma > 0 else np.zeros(F)
    dfu = s.defocus + s.astigmatism / 2.0 + rng.normal(0.0, 100.0, F)
    dfv = dfu - s.astigmatism
    ang = np.full(F, float(s.astigmatism_angle))
    P = relion_geometry.projection_matrices(tilts, zrot, xs, ys, ps, (X, Y), (X, Y, Z))
    ts_dir = os.path.join(out_dir, "tiltseries")
    os.makedirs(ts_dir, exist_ok=True)
    stack = os.path.join(ts_dir, safe_name(ts_id) + ".mrcs")
    projections = [simulate_kernels.project_volume(vol, P[f], (Y, X)) for f in range(F)]
    with atomic_output(stack) as tmp:
        mrc = new_mrc(tmp, (F, Y, X), voxel_size=ps, is_stack=True)
        try:
            for f in range(F):
                clean = simulate_kernels.simulate_tilt_image(projections[f], ps, dfu[f], dfv[f],
                                                             ang[f],
                                                             s.voltage, s.cs, s.amplitude_contrast,
                                                             pre[f], 0.0, rng)
                sigma = s.noise * float(np.std(clean))
                mrc.data[f] = clean + rng.normal(0.0, sigma, clean.shape).astype(np.float32)
        finally:
            finish_mrc(mrc)
    rows = []
    rel_stack = relion5.relion_path(stack, project_dir)
    for f in range(F):
        rows.append({"rlnMicrographName": "%d@%s" % (f + 1, rel_stack),
                     "rlnTomoNominalStageTiltAngle": float(tilts[f]),
                     "rlnTomoNominalTiltAxisAngle": float(s.tilt_axis),
                     "rlnMicrographPreExposure": float(pre[f]),
                     "rlnDefocusU": float(dfu[f]), "rlnDefocusV": float(dfv[f]),
                     "rlnDefocusAngle": float(ang[f]),
                     "rlnCtfScalefactor": float(np.cos(np.deg2rad(tilts[f]))),
                     "rlnTomoXTilt": 0.0, "rlnTomoYTilt": float(tilts[f]),
                     "rlnTomoZRot": float(zrot[f]), "rlnTomoXShiftAngst": float(xs[f]),
                     "rlnTomoYShiftAngst": float(ys[f])})
    ts_star = os.path.join(ts_dir, safe_name(ts_id) + ".star")
    relion5.write_tilt_series_star(ts_star, ts_id, rows)
    tomos = os.path.join(out_dir, "tomograms.star")
    relion5.write_tomograms_star(tomos, [{
        "rlnTomoName": ts_id, "rlnVoltage": s.voltage, "rlnSphericalAberration": s.cs,
        "rlnAmplitudeContrast": s.amplitude_contrast, "rlnMicrographOriginalPixelSize": ps,
        "rlnTomoHand": int(s.hand), "rlnOpticsGroupName": "optics1",
        "rlnTomoTiltSeriesPixelSize": ps,
        "rlnTomoTiltSeriesStarFile": relion5.relion_path(ts_star, project_dir),
        "rlnTomoSizeX": X, "rlnTomoSizeY": Y, "rlnTomoSizeZ": Z}])
    return tomos
