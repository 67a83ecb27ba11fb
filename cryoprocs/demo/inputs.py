"""Derived demo inputs shared by the demo steps (files and import protocols, made once).

Every function takes the :class:`~cryoprocs.demo.workflow.DemoContext` and caches its
result with ``ctx.shared``, so several steps can use the same imported tomogram.
"""
import os

import numpy as np

from ..convert.mrc import read_mrc, write_mrc
from . import data as demo_data

HIV_TSID = "hiv_ts01"


def hiv_tomogram_file(ctx):
    """The real HIV VLP tomogram as float32 MRC at 40 Å/voxel (``inputs/hiv_ts01.mrc``)."""
    def make(ctx):
        path = os.path.join(ctx.inputs_dir, "tomograms", HIV_TSID + ".mrc")
        if not os.path.exists(path):
            os.makedirs(os.path.dirname(path), exist_ok=True)
            write_mrc(path, demo_data.load_hiv_tomogram(ctx.data["tomo.tif"]),
                      voxel_size=demo_data.HIV_VOXEL_A)
        return path
    return ctx.shared("hiv_tomogram_file", make)


def hiv_particles(ctx):
    """``(positions, normals)``: real particle positions as 0-based (x, y, z) voxels of the
    40 Å tomogram, and their unit Z axes (x, y, z)."""
    return ctx.shared("hiv_particles", lambda ctx: demo_data.load_hiv_particles(
        ctx.data["tomo_point.npy"], ctx.data.get("tomo_vector.npy")))


def import_hiv_tomogram(ctx):
    """ProtImportTomograms of the HIV VLP tomogram (output ``Tomograms``, tsId hiv_ts01)."""
    def make(ctx):
        from tomo.protocols import ProtImportTomograms
        path = hiv_tomogram_file(ctx)
        prot = ctx.new(ProtImportTomograms, label="import HIV VLP tomogram",
                       filesPath=os.path.dirname(path), filesPattern=os.path.basename(path),
                       samplingRate=demo_data.HIV_VOXEL_A)
        return ctx.launch(prot)
    return ctx.shared("import_hiv_tomogram", make)


def hiv_coordinates_file(ctx, stride=1):
    """Real particle positions (every ``stride``-th) as a tomo txt coordinate file named like
    the tomogram (0-based voxels of the 40 Å tomogram, bottom-left origin)."""
    tomo_file = hiv_tomogram_file(ctx)
    folder = os.path.join(ctx.inputs_dir, "coordinates_all" if stride == 1 else
                          "coordinates_every_%d" % stride)
    path = os.path.join(folder, os.path.splitext(os.path.basename(tomo_file))[0] + ".txt")
    if not os.path.exists(path):
        os.makedirs(folder, exist_ok=True)
        pos, _ = hiv_particles(ctx)
        with open(path + ".part", "w") as fh:
            for x, y, z in pos[::stride]:
                fh.write("%.3f %.3f %.3f\n" % (x, y, z))
        os.replace(path + ".part", path)
    return path


def import_hiv_coordinates(ctx, stride=1, box=16):
    """ProtImportCoordinates3D of :func:`hiv_coordinates_file` on the imported tomogram."""
    def make(ctx):
        from tomo.protocols import ProtImportCoordinates3D
        path = hiv_coordinates_file(ctx, stride)
        tomos = import_hiv_tomogram(ctx)
        label = "import HIV particle coordinates" + (" (all)" if stride == 1 else
                                                     " (every %d)" % stride)
        prot = ctx.new(ProtImportCoordinates3D, label=label,
                       filesPath=os.path.dirname(path), filesPattern=os.path.basename(path),
                       importTomograms=tomos.Tomograms, boxSize=box)
        prot.importFrom.set(prot._getImportChoices().index("txt"))
        return ctx.launch(prot)
    return ctx.shared("import_hiv_coordinates_%d_%d" % (stride, box), make)


def emd3197_file(ctx):
    """EMD-3197 (20^3, 11.4 Å) as an .mrc file."""
    def make(ctx):
        path = os.path.join(ctx.inputs_dir, "maps", "EMD-3197.mrc")
        if not os.path.exists(path):
            os.makedirs(os.path.dirname(path), exist_ok=True)
            write_mrc(path, read_mrc(ctx.data["EMD-3197.map"], dtype=np.float32),
                      voxel_size=demo_data.EMD3197_VOXEL_A)
        return path
    return ctx.shared("emd3197_file", make)


def import_emd3197(ctx):
    def make(ctx):
        from pwem.protocols import ProtImportVolumes
        prot = ctx.new(ProtImportVolumes, label="import EMD-3197",
                       filesPath=emd3197_file(ctx), samplingRate=demo_data.EMD3197_VOXEL_A)
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
            tomo = demo_data.load_hiv_tomogram(ctx.data["tomo.tif"])
            pos, _ = hiv_particles(ctx)
            nz, ny, nx = tomo.shape
            ij = np.rint(pos).astype(int)
            h = box // 2
            ok = ((ij[:, 0] >= h) & (ij[:, 0] + box - h <= nx) & (ij[:, 1] >= h)
                  & (ij[:, 1] + box - h <= ny) & (ij[:, 2] >= 0) & (ij[:, 2] < nz))
            boxes = np.stack([tomo[z, y - h:y - h + box, x - h:x - h + box]
                              for x, y, z in ij[ok]])
            write_mrc(path, boxes, voxel_size=demo_data.HIV_VOXEL_A, is_stack=True)
        return path
    return ctx.shared("particle_boxes_%d" % box, make)


def import_particle_boxes(ctx, box=24):
    def make(ctx):
        from pwem.protocols import ProtImportParticles
        path = particle_boxes_file(ctx, box)
        prot = ctx.new(ProtImportParticles, label="import HIV particle boxes",
                       importFrom=ProtImportParticles.IMPORT_FROM_FILES,
                       filesPath=os.path.dirname(path), filesPattern=os.path.basename(path),
                       samplingRate=demo_data.HIV_VOXEL_A)
        return ctx.launch(prot)
    return ctx.shared("import_particle_boxes_%d" % box, make)


def simulated_hiv_tilt_series(ctx):
    """ProtCryoprocsSimulateTiltSeries of the real HIV VLP tomogram (-60..60 deg, 3 deg steps,
    CTF, dose-symmetric pre-exposure, noise): outputs a SetOfTiltSeries and its
    SetOfCTFTomoSeries, shared by the extraction, reconstruction and movie demos."""
    def make(ctx):
        from ..protocols import ProtCryoprocsSimulateTiltSeries
        tomos = import_hiv_tomogram(ctx)
        prot = ctx.new(ProtCryoprocsSimulateTiltSeries,
                       label="simulate HIV tilt series (-60..60)",
                       inputTomograms=tomos.Tomograms)
        return ctx.launch(prot)
    return ctx.shared("simulated_hiv_tilt_series", make)


def fit_vlp_spheres(positions, normals=None, link=3.0, min_particles=20):
    """Spheres of the HIV VLPs from their real particles (the Gag lattice tiles each VLP).

    Particles closer than ``link`` voxels are grouped (connected components of the
    neighbour graph; the VLPs of the HIV tomogram are 9 groups of 540-660 particles). Each
    group's centre is the least-squares intersection of the lines through the particles
    along their normals (``sum (I - n n^T) c = sum (I - n n^T) p``: the normals point
    radially), or, without normals, the algebraic sphere fit; the radius is the median
    particle distance to the centre.

    Parameters
    ----------
    positions : ndarray, (N, 3)
        0-based (x, y, z) voxel coordinates.
    normals : ndarray, (N, 3), optional
        unit particle Z axes (x, y, z).

    Returns
    -------
    centres : ndarray, (K, 3) float64
        (x, y, z) voxels, sorted by x.
    radii : ndarray, (K,) float64
        voxels.
    """
    from scipy.sparse import coo_matrix
    from scipy.sparse.csgraph import connected_components
    from scipy.spatial import cKDTree

    pos = np.asarray(positions, dtype=np.float64)
    pairs = cKDTree(pos).query_pairs(link, output_type="ndarray")
    graph = coo_matrix((np.ones(len(pairs)), (pairs[:, 0], pairs[:, 1])),
                       shape=(len(pos), len(pos)))
    _, labels = connected_components(graph, directed=False)
    centres, radii = [], []
    for k in np.unique(labels):
        p = pos[labels == k]
        if len(p) < min_particles:
            continue
        if normals is not None:
            n = np.asarray(normals, dtype=np.float64)[labels == k]
            proj = np.eye(3)[None] - n[:, :, None] * n[:, None, :]
            c = np.linalg.solve(proj.sum(axis=0), np.einsum("kij,kj->i", proj, p))
        else:
            sol = np.linalg.lstsq(np.c_[2 * p, np.ones(len(p))], (p ** 2).sum(axis=1),
                                  rcond=None)[0]
            c = sol[:3]
        centres.append(c)
        radii.append(float(np.median(np.linalg.norm(p - c, axis=1))))
    order = np.argsort([c[0] for c in centres])
    return np.array(centres)[order], np.array(radii)[order]


def hiv_vlp_spheres(ctx):
    """``(centres, radii)`` of the HIV VLPs in voxels of the 40 Å tomogram, from the real
    particle positions and normals (:func:`fit_vlp_spheres`)."""
    return ctx.shared("hiv_vlp_spheres", lambda ctx: fit_vlp_spheres(*hiv_particles(ctx)))


def hiv_vlp_mask_file(ctx):
    """int8 0/1 mask of the HIV tomogram: solid balls of the VLP radius around the VLP
    centres (``inputs/vlp_masks/hiv_ts01.mrc``, named after the tsId for tomo-mask import)."""
    def make(ctx):
        path = os.path.join(ctx.inputs_dir, "vlp_masks", HIV_TSID + ".mrc")
        if not os.path.exists(path):
            os.makedirs(os.path.dirname(path), exist_ok=True)
            from ..convert.mrc import mrc_info
            nz, ny, nx = mrc_info(hiv_tomogram_file(ctx)).shape
            centres, radii = hiv_vlp_spheres(ctx)
            zz, yy, xx = np.ogrid[:nz, :ny, :nx]
            mask = np.zeros((nz, ny, nx), dtype=np.int8)
            for (x, y, z), r in zip(centres, radii):
                mask[(xx - x) ** 2 + (yy - y) ** 2 + (zz - z) ** 2 <= r * r] = 1
            write_mrc(path, mask, voxel_size=demo_data.HIV_VOXEL_A)
        return path
    return ctx.shared("hiv_vlp_mask_file", make)


def import_hiv_vlp_tomomask(ctx):
    """ProtImportTomomasks of :func:`hiv_vlp_mask_file` (output ``tomomasks``, tsId
    hiv_ts01), attached to :func:`import_hiv_tomogram`."""
    def make(ctx):
        from tomo.protocols import ProtImportTomomasks
        path = hiv_vlp_mask_file(ctx)
        tomos = import_hiv_tomogram(ctx)
        prot = ctx.new(ProtImportTomomasks, label="import HIV VLP sphere mask",
                       filesPath=os.path.dirname(path), filesPattern=os.path.basename(path),
                       inputTomos=tomos.Tomograms)
        return ctx.launch(prot)
    return ctx.shared("import_hiv_vlp_tomomask", make)
