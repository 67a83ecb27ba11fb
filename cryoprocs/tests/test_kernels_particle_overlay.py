"""Particle overlays of movies (kernels/particle_overlay.py) and particle files
(convert/particles.py): cross-section radii, slicing axes, the binning/resize map checked
against binned images, drawn pixels, mrc2movie 0.2.0's marker rule, colour keys, and every
file format read back to the same voxel positions."""
import numpy as np
import pandas as pd
import pytest

from cryoprocs.convert import particles
from cryoprocs.kernels import movie
from cryoprocs.kernels import particle_overlay


# ----------------------------------------------------------------------------- geometry
def test_sphere_cross_sections_on_slices():
    ov = particle_overlay.SliceOverlay([[30.3, 20.7, 10.0]], 5.0, "z")
    pm = particle_overlay.PixelMap()
    for depth in np.arange(3.0, 18.0):
        idx, cx, cy, r = ov.circles(depth, pm)
        dz = abs(depth - 10.0)
        if dz < 5:
            assert idx.tolist() == [0]
            assert r[0] == pytest.approx(np.sqrt(25 - dz * dz))
            assert (cx[0], cy[0]) == pytest.approx((30.3, 20.7))
        else:
            assert idx.size == 0                   # |dz| >= R: not cut by this slice


@pytest.mark.parametrize("axis,col,row,depth", [("z", 1.0, 2.0, 3.0), ("y", 1.0, 3.0, 2.0),
                                                ("x", 2.0, 3.0, 1.0)])
def test_slicing_axes_put_the_section_in_the_frame_plane(axis, col, row, depth):
    """Frames are [y, x] (z), [z, x] (y) and [z, y] (x), as VolumeSource slices them."""
    ov = particle_overlay.SliceOverlay([[1.0, 2.0, 3.0]], 2.0, axis)
    idx, cx, cy, r = ov.circles(depth, particle_overlay.PixelMap())
    assert idx.tolist() == [0] and (cx[0], cy[0], r[0]) == pytest.approx((col, row, 2.0))


def test_pixel_map_follows_binning_and_resizing():
    """A small bright blob at a sub-pixel position, binned and shrunk as the movie frames
    are: its intensity centroid lands where the map puts the particle."""
    h, w = 96, 160
    x0, y0 = 57.3, 41.8
    yy, xx = np.mgrid[0:h, 0:w]
    img = np.exp(-((xx - x0) ** 2 + (yy - y0) ** 2) / (2 * 3.0 ** 2)).astype(np.float32)
    import cv2
    for binning, max_width, up in ((1, 0, 1), (2, 0, 1), (3, 0, 1), (2, 50, 1), (1, 0, 3),
                                   (2, 0, 4)):
        binned, out, _ = movie.output_geometry((h, w), binning, max_width, up)
        f = movie.bin_image(img, binning)
        if out != binned:
            f = cv2.resize(f, out[::-1], interpolation=cv2.INTER_CUBIC if up > 1 else
                           cv2.INTER_AREA)
        gy, gx = np.mgrid[0:f.shape[0], 0:f.shape[1]]
        cx, cy = (f * gx).sum() / f.sum(), (f * gy).sum() / f.sum()
        pm = particle_overlay.PixelMap(binning, binned, out)
        tol = 0.02 * max(1, up)
        assert pm.cols(x0) == pytest.approx(cx, abs=tol), (binning, max_width, up)
        assert pm.rows(y0) == pytest.approx(cy, abs=tol), (binning, max_width, up)


def test_outline_pixels_lie_on_the_circle():
    img = np.zeros((80, 100, 3), np.uint8)
    particle_overlay.draw_circles(img, [40.25], [30.5], [10.3], [(0, 255, 0)], "outline", 1)
    yy, xx = np.nonzero(img[..., 1] > 128)
    d = np.hypot(xx - 40.25, yy - 30.5)
    assert len(d) > 50 and abs(d.mean() - 10.3) < 0.3 and np.abs(d - 10.3).max() < 1.0
    assert not img[..., 0].any() and not img[..., 2].any()


def test_filled_discs_are_translucent():
    img = np.full((40, 40, 3), 100, np.uint8)
    particle_overlay.draw_circles(img, [20.0], [20.0], [8.0], [(0, 0, 255)], "filled")
    centre = img[20, 20].astype(int)
    # 40 % red over grey 100: the particle below stays visible
    assert centre.tolist() == pytest.approx([60, 60, 162], abs=1)
    assert img[2, 2].tolist() == [100, 100, 100]


def test_mrc2movie_marker_rule():
    """mrc2movie 0.2.0 (doc section 2): red discs of radius max(1, round(psize (1 - dz /
    max(psize, 1)))) on slices with |z - slice| <= psize, at (int(x), int(y)) of the IMOD
    model coordinate, skipped outside the frame. Our voxel positions are model - 0.5."""
    import cv2
    pts_model = np.array([[10.7, 12.2, 5.0], [30.5, 8.9, 7.4], [-3.0, 5.0, 6.0]])
    psize = 3
    vox = pts_model - [0.5, 0.5, 0.0]
    ov = particle_overlay.SliceOverlay(vox, psize, "z", particle_overlay.COLOURS["red"],
                                       "mrc2movie")
    for z in range(2, 12):
        ours = np.zeros((24, 40, 3), np.uint8)
        ov.draw(ours, float(z), particle_overlay.PixelMap())
        ref = np.zeros_like(ours)
        for px, py, pz in pts_model:
            dz = abs(pz - z)
            cx, cy = int(px), int(py)
            if dz <= psize and 0 <= cx < 40 and 0 <= cy < 24:
                r = max(1, round(psize * (1.0 - dz / max(psize, 1))))
                cv2.circle(ref, (cx, cy), r, (0, 0, 255), -1)
        np.testing.assert_array_equal(ours, ref)


def test_projected_overlay_flags_and_counts():
    uv = np.array([[[10.0, 10.0], [30.0, 12.0]], [[11.0, 10.0], [31.0, 12.0]]])
    usable = np.array([[True, False], [True, True]])
    ov = particle_overlay.ProjectedOverlay(uv, 4.0, usable, (0, 255, 0), (0, 0, 255), thickness=1)
    img = np.zeros((24, 40, 3), np.uint8)
    assert ov.draw(img, 0, particle_overlay.PixelMap()) == 2
    left, right = img[:, :20], img[:, 20:]
    assert left[..., 1].any() and not left[..., 2].any()            # usable: green
    assert right[..., 2].any() and not right[..., 1].any()          # flagged: red
    c = ov.counts()
    assert (c["particles"], c["frames_usable"], c["frames_flagged"], c["never_usable"]) == \
        (2, 3, 1, 0)


def test_colour_keys():
    cols, key = particle_overlay.colour_key([1, 2, 2, 3], "class")
    assert key.kind == "classes" and len(key.classes) == 3
    assert cols[1].tolist() == cols[2].tolist() != cols[0].tolist()
    cols, key = particle_overlay.colour_key([0.1, 0.5, 0.9, np.nan], "score", "viridis")
    assert key.kind == "bar" and (key.lo, key.hi) == (0.1, 0.9)
    assert cols[0].tolist() == key.lut[0].tolist() and cols[2].tolist() == key.lut[255].tolist()
    assert cols[3].tolist() == [128, 128, 128]                      # not a number: grey
    img = np.zeros((200, 300, 3), np.uint8)
    particle_overlay.draw_legend(img, key)
    assert img[:, 200:].any() and not img[:, :150].any()            # top-right corner only
    assert particle_overlay.parse_colour("#FF8000") == (0, 128, 255) \
        == particle_overlay.parse_colour("255,128,0")
    with pytest.raises(movie.MovieError, match="colour"):
        particle_overlay.parse_colour("ultraviolet")


# ----------------------------------------------------------------------------- files
POS = np.array([[10.25, 20.5, 3.0], [40.0, 5.75, 12.5], [0.0, 0.0, 0.0]])
SHAPE_XYZ = (64, 48, 16)
PIXEL = 8.5


def _write_all(tmp_path):
    """The same particles in every format (written by their own writers where they
    exist), with their conventions: IMOD/text corner origin, 1-based motive lists, RELION
    centred Å."""
    import imodmodel
    from cryoprocs.convert import motl as motl_io

    files = {}
    model = POS + [0.5, 0.5, 0.0]
    files["imod"] = str(tmp_path / "p.mod")
    imodmodel.write(pd.DataFrame({"x": model[:, 0], "y": model[:, 1], "z": model[:, 2]}),
                    files["imod"])
    files["text"] = str(tmp_path / "p.txt")
    with open(files["text"], "w") as fh:
        fh.write("# x y z\n" + "".join("%r, %r %r\n" % tuple(p) for p in model))
    files["csv"] = str(tmp_path / "p.csv")
    particles.write_particles_csv(files["csv"], POS, {"score": [0.2, 0.9, 0.5]})
    motl = motl_io.motl_from_picks(POS, [0.2, 0.9, 0.5], np.zeros((3, 3)), tomo_id=7)
    files["em"] = str(tmp_path / "p.em")
    motl_io.write_em_motl(files["em"], motl)
    files["stopgap"] = str(tmp_path / "p_sg.star")
    motl_io.write_stopgap_star(files["stopgap"], motl)
    files["relion"] = str(tmp_path / "p_r5.star")
    motl_io.write_relion5_particles(files["relion"], motl_io.relion5_from_picks(
        POS, np.zeros((3, 3)), "TS_07", SHAPE_XYZ, PIXEL, scores=[0.2, 0.9, 0.5]))
    return files


@pytest.mark.parametrize("fmt", particles.FORMATS)
def test_every_format_gives_the_same_voxels(tmp_path, fmt):
    files = _write_all(tmp_path)
    plist = particles.read_particle_list(files[fmt])
    assert plist.format == fmt
    pos, table = particles.particles_in_tomogram(plist, None, SHAPE_XYZ, PIXEL)
    np.testing.assert_allclose(pos, POS, atol=1e-3 if fmt in ("em", "stopgap", "relion")
                               else 1e-9)
    if fmt in ("csv", "em", "stopgap", "relion"):
        np.testing.assert_allclose(particles.value_column(table, "score")[0], [0.2, 0.9, 0.5],
                                   atol=1e-6)


def test_tomogram_selection_and_errors(tmp_path):
    from cryoprocs.convert import motl as motl_io
    df = pd.concat([motl_io.relion5_from_picks(POS, np.zeros((3, 3)), t, SHAPE_XYZ, PIXEL)
                    for t in ("TS_01", "TS_02")])
    path = str(tmp_path / "two.star")
    motl_io.write_relion5_particles(path, df)
    plist = particles.read_particle_list(path)
    assert plist.tomograms() == ["TS_01", "TS_02"]
    pos, _ = particles.particles_in_tomogram(plist, "TS_02", SHAPE_XYZ, PIXEL)
    np.testing.assert_allclose(pos, POS, atol=1e-4)
    with pytest.raises(particles.ParticleFormatError, match="TS_01, TS_02"):
        particles.particles_in_tomogram(plist, None, SHAPE_XYZ, PIXEL)
    with pytest.raises(particles.ParticleFormatError, match="no particle of tomogram 'TS_09'"):
        particles.particles_in_tomogram(plist, "TS_09", SHAPE_XYZ, PIXEL)
    with pytest.raises(particles.ParticleFormatError, match="pixel size"):
        particles.particles_in_tomogram(plist, "TS_01", SHAPE_XYZ, 0.0)
    bad = tmp_path / "bad.txt"
    bad.write_text("1 2 3\n4 five 6\n")
    with pytest.raises(particles.ParticleFormatError, match="line 2"):
        particles.read_particle_list(str(bad))
    with pytest.raises(particles.ParticleFormatError, match="no column 'nope'"):
        particles.value_column(pd.DataFrame({"x": [1], "score": [2.0]}), "nope")
