"""The coordinate checker (``cryoprocs movie --tomograms ... --particles ...``): particles
projected into every tilt image by extraction's own geometry.

* On the shared RELION 5 project: the projected centres equal the box centres extraction
  cuts (to 0.01 px), the circles decoded from the written frames sit there, and the frames
  flagged (box leaving the image, pre-exposure above --max-dose) are exactly those RELION
  5.0.1 left out of its stacks (``rlnTomoVisibleFrames`` of its reference outputs).
* On a synthetic tilt series of gold beads (bright balls at known 3D positions, projected
  as line integrals by the same matrices; tilt axis at 85 deg, shifts): in every frame the
  drawn circle encloses its bead, centred on the bead's measured centroid.
"""
import os

import numpy as np
import pandas as pd
import pytest
from scipy import ndimage

from cryoprocs import cli
from cryoprocs.convert import relion5
from cryoprocs.kernels import extract
from cryoprocs.kernels import relion_geometry
from cryoprocs.pipelines.movie import OverlaySettings, relion_tilt_series
from cryoprocs.tests import relion5_reference as REF
from cryoprocs.tests.movie_helpers import read_pngs


def _ring(frame, x, y, window):
    """Centre, radius and pixel count of the coloured ring within ``window`` px of (x, y):
    pixels weighted by their chroma (anti-aliased edges count partly), so the centre of a
    full ring is its weighted mean."""
    f = frame.astype(np.float64)
    chroma = f.max(axis=2) - f.min(axis=2)
    yy, xx = np.nonzero(chroma > 0)
    near = np.hypot(xx - x, yy - y) < window
    xx, yy = xx[near], yy[near]
    w = chroma[yy, xx]
    cx, cy = (w * xx).sum() / w.sum(), (w * yy).sum() / w.sum()
    r = (w * np.hypot(xx - cx, yy - cy)).sum() / w.sum()
    return cx, cy, r, int((w > 40).sum())


# ----------------------------------------------------------------------------- RELION 5
@pytest.mark.shared_data
def test_projected_centres_are_the_extraction_box_centres(tmp_path):
    from cryoprocs.pipelines.extract import Stack2DJob, Stack2DSettings
    base = REF.pack_dir()
    tomos, parts = os.path.join(base, "tomograms.star"), os.path.join(base, "particles.star")
    item, = relion_tilt_series(tomos, parts, project_dir=base, order="file")
    job = Stack2DJob(parts, tomos, str(tmp_path / "x"), Stack2DSettings(box=32, binning=2),
                     project_dir=base)
    plan = job.plan("TS_01")
    s0, _ = relion_geometry.box_sizes(32, 2)
    q = relion_geometry.project(plan.ts.matrices, plan.positions)
    corner, in_box = extract.box_corners(q, s0)
    box_centres = corner + in_box                # where extraction centres each particle
    ov = item.overlay(OverlaySettings(radius=12, box_size=64))
    assert ov.uv.shape == (41, 14, 2)
    np.testing.assert_allclose(ov.uv, box_centres, rtol=0, atol=0.01)

    # the circles of the written frames are there (the visible ones, away from others)
    out = tmp_path / "movie"
    assert cli.main(["movie", str(out), "--tomograms", tomos, "--particles", parts,
                     "--project-dir", base, "--order", "file", "--codec", "png",
                     "--particle-radius", "12", "--box-size", "64", "--line-width", "1"]) == 0
    frames, _ = read_pngs(out / "TS_01_frames")
    assert frames.shape == (41, 256, 256, 3)
    checked = 0
    for f in range(41):
        for k, (u, v) in enumerate(ov.uv[f]):
            others = np.delete(ov.uv[f], k, axis=0)
            if not (16 < u < 240 and 16 < v < 240) or \
                    np.hypot(*(others - (u, v)).T).min() < 30:
                continue
            cx, cy, r, n = _ring(frames[f], u, v, 14)
            assert abs(cx - u) < 0.5 and abs(cy - v) < 0.5 and abs(r - 12) < 0.7, (f, k)
            checked += 1
    assert checked > 150


@pytest.mark.shared_data
@pytest.mark.parametrize("cid", ["c1", "c6"])
def test_flagged_frames_are_those_relion_left_out(cid):
    case = REF.case(cid)
    s = case["settings"]
    base = REF.pack_dir()
    item, = relion_tilt_series(os.path.join(base, "tomograms.star"),
                               os.path.join(base, "particles.star"), project_dir=base,
                               order="file")
    # RELION's extraction visibility: the bin x crop box inside the image
    ov = item.overlay(OverlaySettings(radius=10, box_size=s["binning"] * s["crop"],
                                      max_dose=s["max_dose"]))
    out = relion5.read_particles(os.path.join(base, case["folder"], "particles.star")).particles
    relion = {n: np.array([int(v) for v in str(vis).strip("[]").split(",")])
              for n, vis in zip(out["rlnTomoParticleName"], out["rlnTomoVisibleFrames"])}
    names = relion5.particle_names(item.particles)
    for k, name in enumerate(names):
        ours = ov.usable[:, k].astype(int)
        if name in relion:
            np.testing.assert_array_equal(ours, relion[name], err_msg=name)
        else:                                     # removed by RELION: too few frames
            assert ours.sum() < s["min_frames"], (name, ours.sum())
    assert len(relion) == len(names) - len(case["removed_particles"])


# ----------------------------------------------------------------------------- beads
#: bead centres, 0-based voxels (x, y, z); 17 voxels apart along y (the tilt axis before the
#: in-plane rotation), so that they stay apart in every projection
BEADS = np.array([[40.0, 14.0, 16.0], [70.0, 31.0, 24.0], [56.0, 48.0, 20.0],
                  [38.0, 65.0, 26.0], [74.0, 82.0, 14.0]])
BEAD_RADIUS = 2.5


def _bead_project(folder):
    """A RELION 5 project of a tilt series of gold beads: bright balls of radius 2.5 voxels
    in a 112 x 96 x 40 tomogram at 10 Å, projected (line integrals) by RELION's matrices with
    the tilt axis at 85 deg and per-tilt shifts; no CTF, no noise."""
    from cryoprocs.convert.mrc import write_mrc
    from cryoprocs.kernels import simulate
    nx, ny, nz, ps = 112, 96, 40, 10.0
    zz, yy, xx = np.mgrid[0:nz, 0:ny, 0:nx]
    vol = np.zeros((nz, ny, nx), np.float32)
    for x, y, z in BEADS:
        vol[(xx - x) ** 2 + (yy - y) ** 2 + (zz - z) ** 2 <= BEAD_RADIUS ** 2] = 1.0
    tilts = np.arange(-60.0, 61.0, 6.0)
    rng = np.random.default_rng(0)
    xs, ys = rng.uniform(-30, 30, len(tilts)), rng.uniform(-30, 30, len(tilts))
    P = relion_geometry.projection_matrices(tilts, 85.0, xs, ys, ps, (nx, ny), (nx, ny, nz))
    stack = np.stack([simulate.project_volume(vol, P[f], (ny, nx)) for f in range(len(tilts))])
    os.makedirs(folder / "tiltseries")
    write_mrc(str(folder / "tiltseries" / "beads.mrcs"), stack, voxel_size=ps, is_stack=True)
    pre = np.abs(tilts) / 6.0 * 3.0
    relion5.write_tilt_series_star(str(folder / "tiltseries" / "beads.star"), "beads", [
        {"rlnMicrographName": "%d@tiltseries/beads.mrcs" % (f + 1),
         "rlnTomoYTilt": t, "rlnTomoZRot": 85.0, "rlnTomoXShiftAngst": xs[f],
         "rlnTomoYShiftAngst": ys[f], "rlnMicrographPreExposure": pre[f]}
        for f, t in enumerate(tilts)])
    relion5.write_tomograms_star(str(folder / "tomograms.star"), [{
        "rlnTomoName": "beads", "rlnTomoTiltSeriesStarFile": "tiltseries/beads.star",
        "rlnTomoTiltSeriesPixelSize": ps, "rlnVoltage": 300.0, "rlnSphericalAberration": 2.7,
        "rlnAmplitudeContrast": 0.1, "rlnTomoHand": -1, "rlnTomoSizeX": nx,
        "rlnTomoSizeY": ny, "rlnTomoSizeZ": nz}])
    centred = (BEADS - np.array([nx, ny, nz]) / 2.0) * ps
    relion5.write_particles_star(str(folder / "particles.star"), {}, pd.DataFrame(), pd.DataFrame(
        {"rlnTomoName": "beads", "rlnCenteredCoordinateXAngst": centred[:, 0],
         "rlnCenteredCoordinateYAngst": centred[:, 1],
         "rlnCenteredCoordinateZAngst": centred[:, 2]}))
    return stack, P


def test_circles_enclose_the_beads_in_every_frame(tmp_path, monkeypatch):
    project = tmp_path / "project"
    stack, P = _bead_project(project)
    q = relion_geometry.project(P, BEADS)
    for f in range(len(P)):                   # setup: beads apart and inside every image
        d = np.hypot(*(q[f, :, None, :2] - q[f, None, :, :2]).transpose(2, 0, 1))
        assert d[np.triu_indices(len(BEADS), 1)].min() > 16
    monkeypatch.chdir(project)
    radius = 6.0
    assert cli.main(["movie", str(tmp_path / "out"), "--tomograms", "tomograms.star",
                     "--particles", "particles.star", "--codec", "png", "--order", "file",
                     "--particle-radius", "60A", "--line-width", "1"]) == 0
    frames, _ = read_pngs(tmp_path / "out" / "beads_frames")
    assert len(frames) == len(stack)
    for f, (img, frame) in enumerate(zip(stack, frames)):
        labels, n = ndimage.label(img > 0.5 * img.max())
        assert n == len(BEADS), (f, n)
        for lab in range(1, n + 1):
            yy, xx = np.nonzero(labels == lab)
            w = img[yy, xx]
            bx, by = (w * xx).sum() / w.sum(), (w * yy).sum() / w.sum()
            cx, cy, r, npx = _ring(frame, bx, by, radius + 3)
            assert npx > 20 and abs(r - radius) < 0.7, (f, lab, r)
            assert np.hypot(cx - bx, cy - by) < 0.5, (f, lab, cx, cy, bx, by)
            assert np.hypot(xx - cx, yy - cy).max() < r - 1.0, (f, lab)   # enclosed
