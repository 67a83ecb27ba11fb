"""Movie frame kernels on arrays: mrc2movie parity, selection and playback semantics,
geometry, contrast windows, overlays."""
import numpy as np
import pytest

from cryoprocs.kernels import movie
from cryoprocs.tests.movie_helpers import fb_order, mrc2movie_frames, synthetic_volume


# ----------------------------------------------------------------------------- selection
def test_discard_range_keeps_the_range_like_mrc2movie():
    # mrc2movie --discard_range 2 5 writes 3 frames: tomogram[2:5] is KEPT
    assert movie.kept_range(10, keep_range=(2, 5)) == (2, 5)
    assert movie.kept_range(10) == (0, 10)


def test_discard_fraction_discards_at_each_end():
    assert movie.kept_range(300, discard_fraction=(0.1, 0.1)) == (30, 270)
    assert movie.kept_range(10, discard_fraction=(0.25, 0.0)) == (2, 10)
    # int() truncation of n*(1-b): 7 * 0.9 = 6.3 -> 6
    assert movie.kept_range(7, discard_fraction=(0.0, 0.1)) == (0, 6)


def test_range_takes_precedence_over_fraction():
    assert movie.kept_range(10, keep_range=(1, 3), discard_fraction=(0.5, 0.4)) == (1, 3)


@pytest.mark.parametrize("kw,needle", [
    (dict(keep_range=(-1, 3)), "[-1, 3)"),
    (dict(keep_range=(3, 3)), "[3, 3)"),
    (dict(keep_range=(0, 11)), "[0, 11)"),
    (dict(discard_fraction=(1.0, 0.0)), "(1, 0)"),
    (dict(discard_fraction=(0.6, 0.5)), "keeps no slice"),
])
def test_selection_errors_name_values(kw, needle):
    with pytest.raises(movie.MovieError) as exc:
        movie.kept_range(10, **kw)
    assert needle in str(exc.value)


def test_playback_orders():
    assert movie.playback_order(5, "forward").tolist() == [0, 1, 2, 3, 4]
    assert movie.playback_order(5).tolist() == [0, 1, 2, 3, 4, 3, 2, 1] == fb_order(5)
    assert movie.frame_count(300) == 598 == 2 * 300 - 2
    assert movie.playback_order(1).tolist() == [0] == fb_order(1)
    assert movie.playback_order(2).tolist() == [0, 1] == fb_order(2)
    with pytest.raises(movie.MovieError, match="boomerang"):
        movie.playback_order(3, "boomerang")


def test_pingpong_pause_and_cycles():
    """mrc2movie 0.2.0's pingpong is forward-backward; pauses hold both ends, cycles repeat
    and each cycle loops into the next."""
    assert movie.playback_order(4, "pingpong").tolist() == fb_order(4) == [0, 1, 2, 3, 2, 1]
    assert movie.playback_order(4, "pingpong", pause=2).tolist() == \
        [0, 1, 2, 3, 3, 3, 2, 1, 0, 0]
    assert movie.playback_order(3, "forward-backward", pause=1, cycles=2).tolist() == \
        [0, 1, 2, 2, 1, 0] * 2
    assert movie.playback_order(3, "forward", pause=2, cycles=2).tolist() == [0, 1, 2, 2, 2] * 2
    assert movie.frame_count(300, "pingpong", pause=5, cycles=3) == 3 * (598 + 10)
    with pytest.raises(movie.MovieError, match="cycles"):
        movie.playback_order(3, pause=0, cycles=0)


def test_slab_bounds_centre_and_clip():
    assert movie.slab_bounds(5, 10, 1) == (5, 6)
    assert movie.slab_bounds(5, 10, 3) == (4, 7)
    assert movie.slab_bounds(5, 10, 4) == (4, 8)
    assert movie.slab_bounds(0, 10, 5) == (0, 3)
    assert movie.slab_bounds(9, 10, 5) == (7, 10)


# ----------------------------------------------------------------------------- geometry
@pytest.mark.parametrize("shape", [(48, 64), (49, 67)])
def test_bin_image_is_block_mean(shape):
    img = np.random.default_rng(1).normal(size=shape).astype(np.float32)
    b = movie.bin_image(img, 2)
    h, w = shape[0] // 2, shape[1] // 2
    ref = img[:h * 2, :w * 2].astype(np.float64).reshape(h, 2, w, 2).mean(axis=(1, 3))
    assert b.shape == (h, w) and b.dtype == np.float32
    np.testing.assert_allclose(b, ref, atol=1e-6)
    assert movie.bin_image(img, 1) is not None and movie.bin_image(img, 1).shape == shape
    with pytest.raises(movie.MovieError, match="binning 100"):
        movie.bin_image(img, 100)


def test_output_geometry_max_width_keeps_aspect():
    binned, out, scale = movie.output_geometry((1000, 2000), binning=2, max_width=500)
    assert binned == (500, 1000) and out == (250, 500) and scale == pytest.approx(4.0)
    assert movie.output_geometry((135, 135)) == ((135, 135), (135, 135), 1.0)
    assert movie.output_geometry((135, 135), max_width=200)[1] == (135, 135)


def test_pad_even_repeats_last_row_and_column():
    img = np.arange(15, dtype=np.uint8).reshape(3, 5)
    p = movie.pad_even(img)
    assert p.shape == (4, 6)
    np.testing.assert_array_equal(p[:3, :5], img)
    np.testing.assert_array_equal(p[3, :5], img[2])
    np.testing.assert_array_equal(p[:3, 5], img[:, 4])
    even = np.zeros((4, 6), np.uint8)
    assert movie.pad_even(even) is even


# ----------------------------------------------------------------------------- contrast
def test_normalize_truncates_like_mrc2movie():
    lo, hi = np.float32(0.0), np.float32(1.0)
    # 0.99999 * 255 = 254.997..., truncated to 254 (rounding would give 255)
    x = np.array([[0.0, 0.5, 0.99999, 1.0]], dtype=np.float32)
    np.testing.assert_array_equal(movie.normalize_uint8(x, lo, hi), [[0, 127, 254, 255]])


def test_normalize_matches_mrc2movie_on_float32_and_int16():
    vol = synthetic_volume((6, 40, 50))
    ref = mrc2movie_frames(vol, clahe=False)
    lo, hi = movie.window_from_minmax(vol.min(), vol.max())
    ours = np.stack([movie.normalize_uint8(s, lo, hi) for s in vol])
    np.testing.assert_array_equal(ours, ref)
    ints = (vol * 1000).astype(np.int16)
    ref16 = mrc2movie_frames(ints, clahe=False)
    lo, hi = movie.window_from_minmax(ints.min(), ints.max())
    np.testing.assert_array_equal(np.stack([movie.normalize_uint8(s, lo, hi) for s in ints]), ref16)


def test_constant_input_gives_black_frames():
    x = np.full((8, 8), 3.0, np.float32)
    assert not movie.normalize_uint8(x, 3.0, 3.0).any()


def test_percentile_window_ignores_gold():
    rng = np.random.default_rng(0)
    img = rng.normal(0, 1, (200, 200)).astype(np.float32)
    img[50:55, 50:55] = -60.0                     # a gold bead
    lo, hi = movie.window_from_percentiles(movie.percentile_sample(img, 1e9), 0.1, 99.9)
    ref = np.percentile(img, [0.1, 99.9])
    assert lo == pytest.approx(ref[0], rel=1e-5) and hi == pytest.approx(ref[1], rel=1e-5)
    assert lo > -5
    u = movie.normalize_uint8(img, lo, hi, clip=True)
    assert u[52, 52] == 0 and u.max() == 255
    with pytest.raises(movie.MovieError, match="99 and 1"):
        movie.window_from_percentiles(img.ravel(), 99, 1)


def test_percentile_sample_budget():
    s = movie.percentile_sample(np.zeros((1000, 1000), np.float32), 10_000)
    assert 9_000 <= s.size <= 11_000


def test_render_frame_parity_frames():
    """normalize + CLAHE clip 2.0 on an 8x8 grid == mrc2movie's frames, exactly."""
    vol = synthetic_volume((8, 64, 72))
    ref = mrc2movie_frames(vol)
    style = movie.FrameStyle(movie.window_from_minmax(vol.min(), vol.max()))
    ours = np.stack([movie.render_frame(s, style) for s in vol])
    np.testing.assert_array_equal(ours, ref)
    # other CLAHE parameters are passed through
    ref4 = mrc2movie_frames(vol, clip_limit=4.0, grid=4)
    style4 = movie.FrameStyle(movie.window_from_minmax(vol.min(), vol.max()), clip_limit=4.0,
                              tile_grid_size=4)
    np.testing.assert_array_equal(np.stack([movie.render_frame(s, style4) for s in vol]), ref4)


def test_render_invert_and_even_padding():
    vol = synthetic_volume((2, 31, 41))
    win = movie.window_from_minmax(vol.min(), vol.max())
    plain = movie.render_frame(vol[0], movie.FrameStyle(win))
    inv = movie.render_frame(vol[0], movie.FrameStyle(win, invert=True, even=True))
    assert inv.shape == (32, 42)
    np.testing.assert_array_equal(inv[:31, :41], 255 - plain)


def test_render_resamples_to_max_width():
    img = np.tile(np.linspace(0, 1, 100, dtype=np.float32), (60, 1))
    style = movie.FrameStyle((0.0, 1.0), clahe=False, out_shape=(30, 50))
    u = movie.render_frame(img, style)
    assert u.shape == (30, 50)
    # a horizontal ramp stays a ramp: monotone along x, constant along y
    assert np.all(np.diff(u[0].astype(int)) >= 0) and np.all(u == u[0])


def test_make_clahe_validates():
    with pytest.raises(movie.MovieError, match="clip limit"):
        movie.make_clahe(0)
    with pytest.raises(movie.MovieError, match="grid"):
        movie.make_clahe(2.0, 0)


# ----------------------------------------------------------------------------- overlays
def test_nice_scale_bar_lengths():
    assert movie.nice_scale_bar(1000, 1.0) == (200.0, 200)      # 20 % of 1000 nm
    assert movie.nice_scale_bar(1000, 0.4) == (50.0, 125)       # 80 nm -> 50 nm
    assert movie.nice_scale_bar(136, 4.0) == (100.0, 25)        # HIV demo: 40 A px, 108.8 nm
    with pytest.raises(movie.MovieError, match="pixel size"):
        movie.nice_scale_bar(100, 0.0)


def test_scale_bar_is_drawn_with_its_length():
    img = np.zeros((300, 400), np.uint8)
    movie.draw_scale_bar(img, 120, 100.0)
    margin, bar_h = 300 // 30, 300 // 100
    row = img[300 - margin - 1]
    white = np.flatnonzero(row == 255)
    assert white[0] == margin and white[-1] == margin + 120 - 1 and len(white) == 120
    assert (img[300 - margin - bar_h:300 - margin, margin:margin + 120] == 255).all()
    assert (img[:150] == 0).all()                          # nothing in the top half


def test_label_stays_in_the_top_left_corner():
    img = np.full((200, 300), 128, np.uint8)
    movie.draw_label(img, "Z 51/101")
    changed = np.argwhere(img != 128)
    assert changed.size and changed[:, 0].max() < 40 and changed[:, 1].max() < 150
    assert movie.frame_label("slice", 50, 101, "z") == "Z 51/101"
    assert movie.frame_label("slice", 0, 10, "y") == "Y 1/10"
    assert movie.frame_label("angle", -60) == "tilt -60.0 deg"
    assert movie.frame_label("angle", 3.04) == "tilt +3.0 deg"


def test_montage_places_tiles_and_captions():
    tiles = [np.full((50, 100), v, np.uint8) for v in (10, 20, 30)]
    m = movie.montage(tiles, tile_size=64, gap=4)
    assert m.shape == (64 * 2 + 4, 64 * 2 + 4)
    # first tile shrunk to 32x64 and centred in its cell
    assert m[16 + 5, 10] == 10 and m[0, 0] == 0
    assert m[16 + 5, 68 + 10] == 20 and m[68 + 16 + 5, 10] == 30
    # small tiles are not enlarged: cells fit the largest tile
    small = movie.montage([np.full((20, 30), 7, np.uint8)])
    assert small.shape == (30, 30) and (small[5:25] == 7).all()
    # captions go below the tiles, which stay untouched
    cap = movie.montage([np.full((40, 40), 100, np.uint8)], labels=["TS_01"])
    assert cap.shape[0] > 40 and cap.shape[1] == 40
    assert (cap[:40] == 100).all() and cap[40:].max() > 100
    with pytest.raises(movie.MovieError):
        movie.montage([])


def test_tilt_angle_file_errors_are_short(tmp_path):
    """A .tlt file with a bad line or binary content: one short message naming the file."""
    from cryoprocs.pipelines.movie import MovieError, read_tilt_angles
    good = tmp_path / "a.tlt"
    good.write_text("-60\n# comment\n\n0.5 extra\n60\n")
    assert read_tilt_angles(str(good)) == [-60.0, 0.5, 60.0]
    bad = tmp_path / "b.tlt"
    bad.write_text("1\n" + "x" * 5000 + "\n")
    with pytest.raises(MovieError) as e:
        read_tilt_angles(str(bad))
    assert "line 2" in str(e.value) and len(str(e.value)) < 200 + len(str(bad))
    binary = tmp_path / "c.tlt"
    binary.write_bytes(bytes(range(128, 256)) * 10)
    with pytest.raises(MovieError, match="not a text file"):
        read_tilt_angles(str(binary))
