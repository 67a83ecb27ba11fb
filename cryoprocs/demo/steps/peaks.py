"""Demo of ScoresPeakPicking on the real HIV VLP tomogram.

A score map is computed from the tomogram by normalised cross-correlation with a spherical
shell of the VLP radius (one orientation, so the angle map is all row 0 of a one-row list),
imported into Scipion with its angle map, and picked with the default parameters. The picked
VLP centres are compared with the VLP centres implied by the real particles: each particle
sits on the Gag lattice of its VLP with its Z axis pointing outwards, so
``position - radius * normal`` is an estimate of its VLP centre; these estimates are grouped
per VLP and averaged.
"""
import logging
import os

import numpy as np

from .. import inputs

logger = logging.getLogger("cryoprocs.demo")

#: Gag-lattice radius of the VLPs in 40 Å voxels (sphere fit of the real particles: 10.9-12.2)
VLP_RADIUS = 11.5
SHELL_SIGMA = 1.5          # voxels, Gaussian profile of the shell template
MIN_DISTANCE = 15.0        # voxels between picked centres (VLPs are >= 2 radii apart)
MATCH_RADIUS = 4.0         # voxels


def shell_ncc(tomo, radius=VLP_RADIUS, sigma=SHELL_SIGMA):
    """Local normalised cross-correlation of a ``[z, y, x]`` volume with a spherical shell
    (Gaussian radial profile) inside a sphere of ``radius + 4`` voxels; float32, same shape."""
    from scipy import fft
    h = int(np.ceil(radius + 4))
    g = np.arange(-h, h + 1)
    zz, yy, xx = np.meshgrid(g, g, g, indexing="ij")
    r = np.sqrt(zz ** 2 + yy ** 2 + xx ** 2)
    support = (r <= radius + 4).astype(np.float64)
    tpl = np.exp(-0.5 * ((r - radius) / sigma) ** 2)
    tpl = (tpl - tpl[support > 0].mean()) * support
    tpl /= np.sqrt((tpl ** 2).sum())
    n = support.sum()
    f = np.pad(np.asarray(tomo, np.float64), h, mode="constant", constant_values=float(tomo.mean()))
    shape = f.shape
    F = fft.rfftn(f, workers=2)
    F2 = fft.rfftn(f * f, workers=2)

    def corr(spec, k):
        K = np.zeros(shape)
        K[:k.shape[0], :k.shape[1], :k.shape[2]] = k
        K = np.roll(K, (-h, -h, -h), axis=(0, 1, 2))
        return fft.irfftn(spec * np.conj(fft.rfftn(K, workers=2)), s=shape, workers=2)
    num = corr(F, tpl)
    s1 = corr(F, support)
    s2 = corr(F2, support)
    var = np.maximum(s2 - s1 * s1 / n, 1e-12)
    return (num / np.sqrt(var))[h:-h, h:-h, h:-h].astype(np.float32)


def vlp_centres(positions, normals, radius=VLP_RADIUS, link=3.0, min_particles=50):
    """VLP centres implied by particles on the VLP surfaces: ``position - radius * normal``,
    grouped (single linkage within ``link`` voxels) and averaged; ``(n, 3)`` x, y, z."""
    import scipy.sparse as sp
    from scipy.sparse.csgraph import connected_components
    from scipy.spatial import cKDTree
    est = positions - radius * normals
    pairs = cKDTree(est).query_pairs(link, output_type="ndarray")
    graph = sp.coo_matrix((np.ones(len(pairs)), (pairs[:, 0], pairs[:, 1])),
                          shape=(len(est), len(est)))
    _, lab = connected_components(graph, directed=False)
    sizes = np.bincount(lab)
    return np.array([est[lab == k].mean(0) for k in np.flatnonzero(sizes >= min_particles)])


def score_map_files(ctx):
    """``(folder, angle_list)``: scores_hiv_ts01.mrc / angles_hiv_ts01.mrc and a one-row list."""
    def make(ctx):
        from ...convert.mrc import read_mrc, write_mrc
        folder = os.path.join(ctx.inputs_dir, "peaks")
        os.makedirs(folder, exist_ok=True)
        scores = os.path.join(folder, "scores_%s.mrc" % inputs.HIV_TSID)
        angles = os.path.join(folder, "angles_%s.mrc" % inputs.HIV_TSID)
        alist = os.path.join(folder, "angles_one_orientation.csv")
        if not os.path.exists(scores):
            tomo = read_mrc(inputs.hiv_tomogram_file(ctx), dtype=np.float32)
            from ..data import HIV_VOXEL_A
            write_mrc(angles, np.zeros(tomo.shape, np.float32), voxel_size=HIV_VOXEL_A)
            write_mrc(scores, shell_ncc(tomo), voxel_size=HIV_VOXEL_A)
        if not os.path.exists(alist):
            with open(alist, "w") as fh:
                fh.write("0.0,0.0,0.0\n")
        return folder, alist
    return ctx.shared("peaks_score_maps", make)


def run(ctx):
    from scipy.spatial import cKDTree
    from tomo.protocols import ProtImportTomograms

    from ... import constants
    from ...convert.scipion import coordinate_blc
    from ...protocols import ProtCryoprocsScoresPeakPicking
    from ..data import HIV_VOXEL_A

    tomos = inputs.import_hiv_tomogram(ctx)
    folder, alist = score_map_files(ctx)
    imp = {}
    for kind in ("scores", "angles"):
        prot = ctx.new(ProtImportTomograms, label="import HIV shell-NCC %s map" % kind,
                       filesPath=folder, filesPattern="%s_{TS}.mrc" % kind,
                       samplingRate=HIV_VOXEL_A)
        imp[kind] = ctx.launch(prot).Tomograms
    pick = ctx.launch(ctx.new(ProtCryoprocsScoresPeakPicking,
                              label="pick HIV VLP centres (scores peak picking)",
                              inputScoreMaps=imp["scores"], inputAngleMaps=imp["angles"],
                              inputTomograms=tomos.Tomograms, angleList=alist,
                              minDistance=MIN_DISTANCE, boxSize=int(2 * VLP_RADIUS + 8)))
    coords = [(coordinate_blc(c), c.getScore()) for c in
              getattr(pick, constants.OUTPUT_COORDINATES).iterCoordinates()]
    coords.sort(key=lambda t: -t[1])
    picked = np.array([c[0] for c in coords], float).reshape(-1, 3)
    scores = np.array([c[1] for c in coords], float)
    positions, normals = inputs.hiv_particles(ctx)
    ref = vlp_centres(positions, normals)
    dist, idx = cKDTree(ref).query(picked, distance_upper_bound=MATCH_RADIUS) \
        if len(picked) else (np.empty(0), np.empty(0, int))
    ok = np.isfinite(dist)
    found = len(set(idx[ok].tolist()))
    top = int(np.argmin(ok)) if not ok.all() else len(ok)     # leading run of matched picks
    msg = ("ScoresPeakPicking on the real HIV VLP tomogram: %d picks; %d of the %d VLP centres "
           "implied by the %d real particles were picked within %g voxels (mean distance %.2f "
           "voxels = %.0f A). The %d best picks are VLP centres (scores %.2f-%.2f); the %d "
           "other picks (best score %.2f) are VLPs without annotated particles or background."
           % (len(picked), found, len(ref), len(positions), MATCH_RADIUS,
              float(dist[ok].mean()) if ok.any() else float("nan"),
              float(dist[ok].mean()) * HIV_VOXEL_A if ok.any() else float("nan"),
              top, scores[top - 1] if top else float("nan"), scores[0] if top else float("nan"),
              len(picked) - int(ok.sum()),
              scores[~ok].max() if (~ok).any() else float("nan")))
    ctx.note(msg)
    ctx.shared("peaks_match", lambda ctx: {"picks": len(picked), "matched": found,
                                           "centres": len(ref), "leading_matches": top,
                                           "mean_distance": float(dist[ok].mean())
                                           if ok.any() else None})
