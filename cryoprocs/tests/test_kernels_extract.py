"""Extraction kernels on arrays: RELION geometry rules, CTF/dose formulas, Fourier steps,
circle crop, RELION float16 rounding, 3D sub-volumes (no shared data needed)."""
import numpy as np
import pytest

from cryoprocs.kernels.euler import relion_euler_matrix
from cryoprocs.kernels import ctf as ctf_kernels
from cryoprocs.kernels import extract
from cryoprocs.kernels import relion_geometry


# ----------------------------------------------------------------------------- geometry
def test_c_half_truncates_like_c():
    c_half = relion_geometry.c_half
    assert c_half(256) == 128 and c_half(255) == 127 and c_half(-999) == -499


def test_projection_identity_tilt_maps_centre_to_image_centre():
    P = relion_geometry.projection_matrices([0.0], [0.0], [0.0], [0.0], 2.0, (100, 80),
                                            (60, 50, 40))
    q = relion_geometry.project(P, relion_geometry.tomogram_centre((60, 50, 40))[None])
    assert np.allclose(q[0, 0], [50, 40, 0])


def test_half_pixel_rule_odd_and_missing_sizes():
    """Odd and missing rlnTomoSize shift the projection by half a pixel (RELION's int(n/2)
    in the matrix vs n/2.0 for the coordinate centre)."""
    def q_of(size):
        P = relion_geometry.projection_matrices([0.0], [0.0], [0.0], [0.0], 1.0, (100, 100), size)
        p = relion_geometry.decentred_positions(1.0, size, centered_angst=[[0.0, 0.0, 0.0]])
        return relion_geometry.project(P, p)[0, 0, :2]
    assert np.allclose(q_of((60, 60, 40)), [50, 50])
    assert np.allclose(q_of((61, 60, 40)), [50.5, 50])
    assert np.allclose(q_of(None), [49.5, 49.5])          # -999: centre -499.5 vs int -499


def test_projection_rotations_and_shifts():
    """A point +10 px along x, tilted by 90 deg about y, goes to depth; zrot 90 maps x to y;
    shifts are in Å."""
    p = np.array([[10.0, 0.0, 0.0]]) + relion_geometry.tomogram_centre((64, 64, 64))
    P = relion_geometry.projection_matrices([90.0], [0.0], [0.0], [0.0], 1.0, (64, 64),
                                            (64, 64, 64))
    q = relion_geometry.project(P, p)[0, 0]
    assert np.allclose(q, [32, 32, -10])     # Ry(90): x -> -z; depth relative to the centre
    P = relion_geometry.projection_matrices([0.0], [90.0], [20.0], [-10.0], 2.0, (64, 64),
                                            (64, 64, 64))
    q = relion_geometry.project(P, p)[0, 0]
    assert np.allclose(q[:2], [32 + 10, 32 + 10 - 5])      # Rz(90): x -> y; shifts /2 Å


def test_visibility_is_strict_and_max_dose_min_frames():
    q = np.array([[[10.0, 50.0]], [[10.0001, 50.0]], [[50.0, 89.9999]], [[50, 50]]])
    vis, keep = relion_geometry.select_frames(q, (100, 100), 10.0, [0, 10, 20, 30], max_dose=25,
                                              min_frames=2)
    assert vis[:, 0].tolist() == [False, True, True, False]
    assert keep.tolist() == [True]
    _, keep = relion_geometry.select_frames(q, (100, 100), 10.0, [0, 10, 20, 30], max_dose=15,
                                            min_frames=2)
    assert keep.tolist() == [False]
    with pytest.raises(relion_geometry.GeometryError):
        relion_geometry.select_frames(q, (100, 100), 10.0, [0] * 4, min_frames=-1)


def test_offsets_rotated_by_subtomogram_matrix():
    pos = np.array([[100.0, 100.0, 50.0]])
    o = np.array([[10.0, 0.0, 0.0]])
    assert np.allclose(relion_geometry.apply_offsets(pos, o, 2.0), [[95, 100, 50]])
    A = relion_euler_matrix(90.0, 0.0, 0.0)
    got = relion_geometry.apply_offsets(pos, o, 2.0, subtomo_angles=[[90.0, 0.0, 0.0]])
    assert np.allclose(got, pos - (A @ o[0]) / 2.0)


def test_relion_round_and_box_sizes():
    assert relion_geometry.relion_round([0.5, 1.5, 2.5, -0.5, -2.5]).tolist() == [1, 2, 3, -1, -3]
    assert relion_geometry.box_sizes(64, 1) == (64, 64)
    assert relion_geometry.box_sizes(32, 4) == (128, 32)
    assert relion_geometry.box_sizes(64, 1.5) == (96, 64)


# ----------------------------------------------------------------------------- CTF, dose
def test_ctf_matches_direct_formula():
    box, ps = 32, 3.0
    ctf = ctf_kernels.relion_ctf_half(box, ps, 20000.0, 18000.0, 30.0, 300.0, 2.7, 0.1,
                                      phase_shift=10.0, bfactor=50.0, scale=0.8, dtype=np.float64)
    lam = 12.2643247 / np.sqrt(300e3 * (1 + 300e3 * 0.978466e-6))
    for (y, x) in [(0, 1), (3, 5), (31, 16), (16, 0), (20, 7)]:
        X = x / (box * ps)
        Y = (y if y < box // 2 else y - box) / (box * ps)
        ang = np.arctan2(Y, X) - np.deg2rad(30.0)
        df = 0.5 * (20000 + 18000 + (20000 - 18000) * np.cos(2 * ang))
        u2 = X * X + Y * Y
        gamma = -np.pi * lam * df * u2 + np.pi / 2 * 2.7e7 * lam ** 3 * u2 ** 2 \
            - np.deg2rad(10.0) - np.arctan(0.1 / np.sqrt(1 - 0.01))
        want = -np.sin(gamma) * np.exp(-50.0 / 4 * u2) * 0.8
        assert np.isclose(ctf[y, x], want, rtol=1e-10, atol=1e-12), (y, x)
    # DC: -sin(-K3) * scale, and the 1e-8 clamp keeps the sign
    assert np.isclose(ctf[0, 0], np.sin(np.arctan(0.1 / np.sqrt(0.99)) + np.deg2rad(10)) * 0.8)


def test_ctf_depth_offset_equals_shifted_defocus_and_vectorises():
    a = ctf_kernels.relion_ctf_half(16, 4.0, [30000, 31000], [29000, 30500], [10, 80], 300, 2.7,
                                    0.07, defocus_offset=[500.0, -250.0])
    b0 = ctf_kernels.relion_ctf_half(16, 4.0, 30500, 29500, 10, 300, 2.7, 0.07)
    b1 = ctf_kernels.relion_ctf_half(16, 4.0, 30750, 30250, 80, 300, 2.7, 0.07)
    assert a.shape == (2, 16, 9) and a.dtype == np.float32
    assert np.array_equal(a[0], b0) and np.array_equal(a[1], b1)
    with pytest.raises(ValueError):
        ctf_kernels.relion_ctf_half(16, 4.0, 1, 1, 0, 300, 2.7, 1.0)


def test_dose_weights_grant_grigorieff_and_bfactor():
    w = ctf_kernels.dose_weights_half([0.0, 30.0], 32, 2.0, dtype=np.float64)
    assert w.shape == (2, 32, 17)
    assert np.all(w[0] == 1.0) and w[1, 0, 0] == 1.0
    k = 5 / (32 * 2.0)
    assert np.isclose(w[1, 0, 5], np.exp(-0.5 * 30 / (0.245 * k ** -1.665 + 2.81)))
    assert np.isclose(w[1, 3, 4], w[1, 32 - 3, 4])            # symmetric in y
    wb = ctf_kernels.dose_weights_half([30.0], 32, 2.0, bfactor_per_dose=4.0, dtype=np.float64)
    assert np.isclose(wb[0, 0, 5], np.exp(-4.0 * 30 * k * k / 4))


# ----------------------------------------------------------------------------- Fourier steps
def test_cut_boxes_replicates_edges_and_reads_bands():
    img = np.arange(100, dtype=np.float32).reshape(10, 10)
    boxes = extract.cut_boxes(img, [[-2, -1], [7, 8]], 4)
    assert boxes[0, 0, 0] == img[0, 0] and boxes[0, 1, 3] == img[0, 1]
    assert boxes[0, 2, 2] == img[1, 0]
    assert boxes[1, 3, 3] == img[9, 9] and boxes[1, 0, 0] == img[8, 7]
    band = extract.cut_boxes(img[6:], [[7, 8]], 4, row_offset=6, image_height=10)
    assert np.array_equal(band, boxes[1:])
    with pytest.raises(extract.ExtractionError):
        extract.cut_boxes(img[6:], [[0, 0]], 4, row_offset=6, image_height=10)


def test_fourier_roundtrip_and_crop_rows():
    rng = np.random.default_rng(0)
    x = rng.standard_normal((3, 16, 16)).astype(np.float32)
    F = extract.centered_rfft2(x)
    assert F.dtype == np.complex64
    # centred transform + decentred inverse = identity (box centre at pixel s//2)
    assert np.allclose(extract.centered_irfft2(F), x, atol=1e-5)
    # DC of the ortho transform = sum / s
    assert np.allclose(F[:, 0, 0].real, x.sum(axis=(1, 2)) / 16, atol=1e-4)
    C = extract.fourier_crop_half(F, 8)
    assert C.shape == (3, 8, 5)
    assert np.array_equal(C[:, :4], F[:, :4, :5]) and np.array_equal(C[:, 4:], F[:, 12:, :5])


def test_shift_half_integer_shift_is_a_roll():
    rng = np.random.default_rng(1)
    x = rng.standard_normal((1, 16, 16)).astype(np.float32)
    F = extract.centered_rfft2(x)
    # the point at (8 + 3, 8 - 2) moves to the centre (8, 8): a roll by (-3, +2)
    out = extract.centered_irfft2(extract.shift_half(F, [[11.0, 6.0]]))
    assert np.allclose(out, np.roll(x, (2, -3), axis=(1, 2)), atol=1e-5)


def test_crop_circle_subtracts_outside_mean_and_tapers():
    img = np.full((1, 32, 32), 3.0, dtype=np.float32)
    img[0, 16, 16] = 10.0
    out = extract.crop_circle(img, boundary=4, falloff=5)
    c, outside = extract.circle_crop_weights(32, 4, 5)
    assert np.allclose(out[0, 16, 16], 7.0)              # 10 - mean outside (3)
    assert np.allclose(out[0][outside], 0.0)
    assert np.isclose(c[16, 16 + 11], 0.5 - 0.5 * np.cos(np.pi * 1 / 5))
    assert extract.center_crop(out, 4).shape == (1, 24, 24)


def test_stack2d_pipeline_places_gaussian_at_centre():
    """A Gaussian at a sub-pixel position comes out centred on pixel b/2 (bin 1 and 2)."""
    yy, xx = np.mgrid[0:128, 0:128]
    cx, cy = 60.3, 71.8
    img = np.exp(-((xx - cx) ** 2 + (yy - cy) ** 2) / (2 * 3.0 ** 2)).astype(np.float32)
    for binning, b in ((1, 32), (2, 32)):
        s0, _ = relion_geometry.box_sizes(b, binning)
        corner, pos = extract.box_corners(np.array([[cx, cy]]), s0)
        boxes = extract.cut_boxes(img, corner, s0)
        out = extract.stack2d_from_boxes(boxes, pos, binning, b, b, None, sign=1.0,
                                         circle_crop=False)[0]
        iy, ix = np.unravel_index(np.argmax(out), out.shape)
        assert (iy, ix) == (b // 2, b // 2)
        # grey level = local mean / bin (RELION: "greyscale of 2D stacks scales as 1/bin"),
        # on bin^2 fewer pixels
        assert np.isclose(out.sum(), img.sum() / binning ** 3, rtol=1e-3)


# ----------------------------------------------------------------------------- float16
def test_relion_float16_rounding_rules():
    vals = np.array([1.0 + 2 ** -11,            # exact half: RELION rounds up, IEEE to even
                     1.0 + 3 * 2 ** -11,        # half above odd: both round up
                     -(1.0 + 2 ** -11),         # sign-magnitude: rounds away from zero
                     1e-5, -1e-5,               # float16 subnormals: flushed to signed zero
                     7e4, -1e6,                 # overflow saturates at 65504
                     2.0 ** -14,                # smallest normal stays
                     np.inf, 0.0], dtype=np.float32)
    h = extract.relion_float16(vals)
    assert h.dtype == np.float16
    assert h[0] == np.float16(1.0 + 2 ** -10) and vals[:1].astype(np.float16)[0] == 1.0
    assert h[1] == np.float16(1.0 + 2 * 2 ** -10)
    assert h[2] == -np.float16(1.0 + 2 ** -10)
    assert h[3] == 0 and not np.signbit(h[3]) and h[4] == 0 and np.signbit(h[4])
    assert h[5] == 65504 and h[6] == -65504
    assert h[7] == np.float16(2.0 ** -14)
    assert np.isinf(h[8]) and h[9] == 0
    rng = np.random.default_rng(3)
    x = rng.standard_normal(100000).astype(np.float32)
    x = x[np.abs(x) >= 2 ** -14]                # below: flushed to zero (tested above)
    d = np.abs(extract.relion_float16(x).astype(np.float64) - x)
    assert np.all(d <= np.spacing(np.abs(x).astype(np.float16)).astype(np.float64) / 2 + 1e-12)


# ----------------------------------------------------------------------------- 3D
def test_subvolume_equals_direct_slicing_and_padding():
    rng = np.random.default_rng(2)
    vol = rng.standard_normal((40, 50, 60)).astype(np.float32)
    sub, inside = extract.subvolume(vol, (30, 20, 10), 8)
    assert inside and np.array_equal(sub, vol[6:14, 16:24, 26:34])
    sub, inside = extract.subvolume(vol, (30.4, 19.6, 10.5), 8)     # rounds half away from zero
    assert np.array_equal(sub, vol[7:15, 16:24, 26:34])
    sub, inside = extract.subvolume(vol, (1, 20, 10), 8, pad="constant", fill=-7.0)
    assert not inside and np.all(sub[:, :, :3] == -7) and np.array_equal(sub[:, :, 3:],
                                                                          vol[6:14, 16:24, 0:5])
    sub, _ = extract.subvolume(vol, (1, 20, 10), 8, pad="edge")
    assert np.array_equal(sub[:, :, 0], vol[6:14, 16:24, 0])
    with pytest.raises(extract.ExtractionError):
        extract.subvolume(vol, (1, 20, 10), 8, pad=None)


def test_extract_subvolumes_resumes_only_with_the_same_settings(tmp_path):
    """extract_subvolumes cuts exact boxes; a re-run keeps finished files, but files recorded
    with other settings (here no inversion, then inversion) are redone, never reused, even
    when the run that replaces them is killed half-way."""
    import mrcfile
    from cryoprocs.convert.mrc import write_mrc
    from cryoprocs.pipelines.extract import SubvolumeSettings, extract_subvolumes
    rng = np.random.default_rng(3)
    tomo = rng.normal(size=(20, 24, 28)).astype(np.float32)
    write_mrc(str(tmp_path / "t.mrc"), tomo, voxel_size=5.0)
    pos = [(10, 12, 9), (14, 8, 11)]
    files = [str(tmp_path / "s" / ("%d.mrc" % k)) for k in range(2)]
    fp = str(tmp_path / "s" / ".fingerprint.json")
    settings = SubvolumeSettings(box=6)
    res = extract_subvolumes(str(tmp_path / "t.mrc"), pos, files, settings,
                             fingerprint_file=fp)
    assert res["written"] == 2
    with mrcfile.open(files[0]) as m:
        assert np.array_equal(m.data, tomo[6:12, 9:15, 7:13])
    res = extract_subvolumes(str(tmp_path / "t.mrc"), pos, files, settings,
                             fingerprint_file=fp)
    assert res["skipped_existing"] == 2 and res["written"] == 0
    # new settings, killed after the first file, then resumed: no file of the old settings
    from cryoprocs.pipelines import extract as extract_pipeline
    inverted = SubvolumeSettings(box=6, invert_contrast=True)
    real_write = extract_pipeline.write_mrc

    def dying_write(path, *a, **k):
        if path == files[1]:
            raise KeyboardInterrupt
        return real_write(path, *a, **k)
    extract_pipeline.write_mrc = dying_write
    try:
        with pytest.raises(KeyboardInterrupt):
            extract_subvolumes(str(tmp_path / "t.mrc"), pos, files, inverted,
                               fingerprint_file=fp)
    finally:
        extract_pipeline.write_mrc = real_write
    res = extract_subvolumes(str(tmp_path / "t.mrc"), pos, files, inverted,
                             fingerprint_file=fp)
    assert res["written"] == 1 and res["skipped_existing"] == 1
    with mrcfile.open(files[0]) as m:
        assert np.array_equal(m.data, -tomo[6:12, 9:15, 7:13])
    with mrcfile.open(files[1]) as m:
        assert np.array_equal(m.data, -tomo[8:14, 5:11, 11:17])
