"""Demo of ReconstructSubtomoAverage: the average of the real HIV VLP particles (real
positions and particle axes of EMPIAR-10164 TS_01, Alister Burt's napari demo data) from the
tilt series simulated from the real tomogram, with half maps and the FSC.

The particles' orientations are their real Z axes (the membrane normals: tilt and psi of
RELION's Euler angles); their in-plane angle is unknown, so the average is that of the Gag
lattice and membrane layers around the normal. The particles are brought in as a RELION 5
particles.star through ImportRelion5 (Scipion's plain coordinate import has no orientations).
"""
import os

import numpy as np

from ... import constants
from .. import inputs

#: every n-th real particle (5377 in total) keeps the demo step near 30 s
PARTICLE_STRIDE = 2
BOX = 20


def particles_star(ctx, tomo_size):
    """RELION 5 particles.star of the real HIV particles (centred Å coordinates at the
    40 Å tilt-series pixel; rot 0, tilt/psi from the particle Z axis; alternating half sets)."""
    path = os.path.join(ctx.inputs_dir, "reconstruct", "hiv_particles.star")
    if os.path.exists(path):
        return path
    import pandas as pd
    from ...convert.star import write_star
    from ..data import HIV_VOXEL_A
    pos, normals = inputs.hiv_particles(ctx)
    pos, normals = pos[::PARTICLE_STRIDE], normals[::PARTICLE_STRIDE]
    cen = (pos - np.asarray(tomo_size, dtype=np.float64) / 2.0) * HIV_VOXEL_A
    # RELION's A maps the particle frame to the tomogram: A z = (-cos psi sin tilt,
    # sin psi sin tilt, cos tilt) is the particle Z axis
    tilt = np.degrees(np.arccos(np.clip(normals[:, 2], -1.0, 1.0)))
    psi = np.degrees(np.arctan2(normals[:, 1], -normals[:, 0]))
    n = len(pos)
    parts = pd.DataFrame({"rlnTomoName": inputs.HIV_TSID,
                          "rlnCenteredCoordinateXAngst": cen[:, 0],
                          "rlnCenteredCoordinateYAngst": cen[:, 1],
                          "rlnCenteredCoordinateZAngst": cen[:, 2],
                          "rlnAngleRot": np.zeros(n), "rlnAngleTilt": tilt,
                          "rlnAnglePsi": psi, "rlnRandomSubset": np.arange(n) % 2 + 1})
    os.makedirs(os.path.dirname(path), exist_ok=True)
    write_star(path, {"particles": parts})
    return path


def run(ctx):
    from ...convert import relion5
    from ...protocols import (ProtCryoprocsImportRelion5,
                              ProtCryoprocsReconstructSubtomoAverage)

    tomos = inputs.import_hiv_tomogram(ctx)
    sim = inputs.simulated_hiv_tilt_series(ctx)
    project = os.path.abspath(ctx.project.getPath())
    tomograms_star = os.path.join(project, sim._getExtraPath("simulated", "tomograms.star"))
    row = relion5.read_tomograms(tomograms_star).iloc[0]
    size = [int(row[k]) for k in ("rlnTomoSizeX", "rlnTomoSizeY", "rlnTomoSizeZ")]
    imp = ctx.launch(ctx.new(ProtCryoprocsImportRelion5,
                             label="import HIV particles with their axes (RELION 5)",
                             tomogramsFile=tomograms_star,
                             particlesFile=particles_star(ctx, size), projectDir=project,
                             inputTomograms=tomos.Tomograms))
    ctx.launch(ctx.new(ProtCryoprocsReconstructSubtomoAverage,
                       label="reconstruct HIV Gag/membrane average",
                       inputCoordinates=getattr(imp, constants.OUTPUT_COORDINATES),
                       inputTiltSeries=getattr(imp, constants.OUTPUT_TILT_SERIES),
                       inputCtfTomoSeries=getattr(imp, constants.OUTPUT_CTF_SERIES),
                       boxSize=BOX, binning=1, symmetry="C1", numberOfThreads=2))
