"""Derived demo inputs shared by the demo steps (files and import protocols, made once).

Every function takes the :class:`~cryoprocs.demo.workflow.DemoContext` and caches its
result with ``ctx.shared``, so several steps can use the same imported tomogram.
"""
import os

import numpy as np

from ..convert.mrc import read_mrc, write_mrc
from . import data as D

HIV_TSID = "hiv_ts01"


def hiv_tomogram_file(ctx):
    """The real HIV VLP tomogram as float32 MRC at 40 Å/voxel (``inputs/hiv_ts01.mrc``)."""
    def make(ctx):
        path = os.path.join(ctx.inputs_dir, "tomograms", HIV_TSID + ".mrc")
        if not os.path.exists(path):
            os.makedirs(os.path.dirname(path), exist_ok=True)
            write_mrc(path, D.load_hiv_tomogram(ctx.data["tomo.tif"]), voxel_size=D.HIV_VOXEL_A)
        return path
    return ctx.shared("hiv_tomogram_file", make)


def hiv_particles(ctx):
    """``(positions, normals)``: real particle positions as 0-based (x, y, z) voxels of the
    40 Å tomogram, and their unit Z axes (x, y, z)."""
    return ctx.shared("hiv_particles", lambda ctx: D.load_hiv_particles(
        ctx.data["tomo_point.npy"], ctx.data.get("tomo_vector.npy")))


def import_hiv_tomogram(ctx):
    """ProtImportTomograms of the HIV VLP tomogram (output ``Tomograms``, tsId hiv_ts01)."""
    def make(ctx):
        from tomo.protocols import ProtImportTomograms
        path = hiv_tomogram_file(ctx)
        prot = ctx.new(ProtImportTomograms, label="import HIV VLP tomogram",
                       filesPath=os.path.dirname(path), filesPattern=os.path.basename(path),
                       samplingRate=D.HIV_VOXEL_A)
        return ctx.launch(prot)
    return ctx.shared("import_hiv_tomogram", make)


def emd3197_file(ctx):
    """EMD-3197 (20^3, 11.4 Å) as an .mrc file."""
    def make(ctx):
        path = os.path.join(ctx.inputs_dir, "maps", "EMD-3197.mrc")
        if not os.path.exists(path):
            os.makedirs(os.path.dirname(path), exist_ok=True)
            write_mrc(path, read_mrc(ctx.data["EMD-3197.map"], dtype=np.float32),
                      voxel_size=D.EMD3197_VOXEL_A)
        return path
    return ctx.shared("emd3197_file", make)


def import_emd3197(ctx):
    def make(ctx):
        from pwem.protocols import ProtImportVolumes
        prot = ctx.new(ProtImportVolumes, label="import EMD-3197",
                       filesPath=emd3197_file(ctx), samplingRate=D.EMD3197_VOXEL_A)
        return ctx.launch(prot)
    return ctx.shared("import_emd3197", make)


def particle_boxes_file(ctx, box=24):
    """2D boxes (``box`` px) cut from the tomogram's z-slices at the real particle positions.

    Each box is centred on the nearest voxel of a particle (x, y) in the slice round(z);
    particles whose box leaves the slice are skipped. Written as a float32 stack at 40 Å.
    """
    def make(ctx):
        path = os.path.join(ctx.inputs_dir, "particles", "hiv_particle_boxes_%d.mrcs" % box)
        if not os.path.exists(path):
            os.makedirs(os.path.dirname(path), exist_ok=True)
            tomo = D.load_hiv_tomogram(ctx.data["tomo.tif"])
            pos, _ = hiv_particles(ctx)
            nz, ny, nx = tomo.shape
            ij = np.rint(pos).astype(int)
            h = box // 2
            ok = ((ij[:, 0] >= h) & (ij[:, 0] + box - h <= nx) & (ij[:, 1] >= h)
                  & (ij[:, 1] + box - h <= ny) & (ij[:, 2] >= 0) & (ij[:, 2] < nz))
            boxes = np.stack([tomo[z, y - h:y - h + box, x - h:x - h + box]
                              for x, y, z in ij[ok]])
            write_mrc(path, boxes, voxel_size=D.HIV_VOXEL_A, is_stack=True)
        return path
    return ctx.shared("particle_boxes_%d" % box, make)


def import_particle_boxes(ctx, box=24):
    def make(ctx):
        from pwem.protocols import ProtImportParticles
        path = particle_boxes_file(ctx, box)
        prot = ctx.new(ProtImportParticles, label="import HIV particle boxes",
                       importFrom=ProtImportParticles.IMPORT_FROM_FILES,
                       filesPath=os.path.dirname(path), filesPattern=os.path.basename(path),
                       samplingRate=D.HIV_VOXEL_A)
        return ctx.launch(prot)
    return ctx.shared("import_particle_boxes_%d" % box, make)


def simulate_hiv_tilt_series(ctx):
    """ProtCryoprocsSimulateTiltSeries of the HIV VLP tomogram (-60..60 deg, 3 deg steps, CTF,
    dose, noise), run once and shared (outputs: tilt series, CTF tomo series, and a RELION 5
    project in ``extra/simulated/tomograms.star``)."""
    def make(ctx):
        from ..protocols import ProtCryoprocsSimulateTiltSeries
        tomos = import_hiv_tomogram(ctx)
        return ctx.launch(ctx.new(ProtCryoprocsSimulateTiltSeries,
                                  label="simulate HIV tilt series (-60..60)",
                                  inputTomograms=tomos.Tomograms))
    return ctx.shared("simulate_hiv_tilt_series", make)
