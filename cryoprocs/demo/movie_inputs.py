"""Demo inputs of the movie step: a tilt series simulated from the real HIV VLP tomogram.

Kept apart from :mod:`cryoprocs.demo.inputs` so the movie step can be merged on its own; if
another step provides a simulated tilt series, this one can be replaced by it.
"""
import os

import numpy as np

from ..convert.mrc import write_mrc
from . import data as D
from . import inputs

#: tilt angles of the simulated series: -60..+60 deg every 3 deg (41 images)
SIM_ANGLES = (-60.0, 3.0, 41)
SIM_TSID = "hiv_ts01_sim"


def project_tilt_series(vol, angles, noise_sd=0.0, seed=0):
    """Projections of ``vol`` ``[z, y, x]`` tilted about the Y axis (float32 ``[n, y, x]``).

    Each image is the sum along Z of the volume (mean removed) rotated by the tilt angle in
    the Z-X plane (linear interpolation, ``scipy.ndimage.rotate``), plus gaussian noise of
    ``noise_sd`` times the projections' standard deviation. A simple simulation for demos:
    no CTF, no dose weighting.
    """
    from scipy import ndimage

    v = np.asarray(vol, dtype=np.float32)
    v = v - np.float32(v.mean())
    out = np.stack([ndimage.rotate(v, a, axes=(0, 2), reshape=False, order=1,
                                   mode="constant", cval=0.0).sum(axis=0) for a in angles])
    if noise_sd:
        rng = np.random.default_rng(seed)
        out += rng.normal(0, noise_sd * out.std(), out.shape).astype(np.float32)
    return out.astype(np.float32)


def simulated_tilt_series_file(ctx):
    """``inputs/tilt_series/hiv_ts01_sim.mrcs``: 41 projections (-60..60 deg, 3 deg steps) of
    the real HIV VLP tomogram at 40 A/px, with noise (SNR about 1)."""
    def make(ctx):
        path = os.path.join(ctx.inputs_dir, "tilt_series", SIM_TSID + ".mrcs")
        if not os.path.exists(path):
            os.makedirs(os.path.dirname(path), exist_ok=True)
            first, step, n = SIM_ANGLES
            vol = D.load_hiv_tomogram(ctx.data["tomo.tif"])
            stack = project_tilt_series(vol, [first + i * step for i in range(n)],
                                        noise_sd=1.0)
            write_mrc(path, stack, voxel_size=D.HIV_VOXEL_A, is_stack=True)
        return path
    return ctx.shared("simulated_tilt_series_file", make)


def simulated_tilt_series(ctx):
    """A SetOfTiltSeries (output ``TiltSeries``) of the simulated stack, dose-symmetric."""
    def make(ctx):
        from .. import constants as C
        from ..protocols import ProtCryoprocsTiltSeriesFromStacks
        path = simulated_tilt_series_file(ctx)
        first, step, _ = SIM_ANGLES
        prot = ctx.new(ProtCryoprocsTiltSeriesFromStacks,
                       label="tilt series simulated from the HIV tomogram",
                       filesPath=os.path.dirname(path), filesPattern=os.path.basename(path),
                       angleSource=C.TS_ANGLES_RANGE, minAngle=first, stepAngle=step,
                       acquisitionOrder=C.TS_ACQ_DOSE_SYMMETRIC, groupSize=2,
                       samplingRate=D.HIV_VOXEL_A, dosePerTilt=3.0)
        return ctx.launch(prot)
    return ctx.shared("simulated_tilt_series", make)


def hiv_tomograms(ctx):
    """The imported HIV VLP tomogram set (``Tomograms``)."""
    return inputs.import_hiv_tomogram(ctx)
