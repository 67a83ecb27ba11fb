"""``cryoprocs movie`` and the streaming pipeline: the written files are decoded (ffmpeg) and
compared with mrc2movie's frames, exactly for PNG, GIF and the uint8 frames before encoding,
within codec tolerance for MJPEG and H.264."""
import os

import mrcfile
import numpy as np
import pytest

from cryoprocs import cli
from cryoprocs.convert.mrc import write_mrc
from cryoprocs.kernels import movie
from cryoprocs.pipelines import movie as movie_pipeline
from cryoprocs.tests import shared_data
from cryoprocs.tests.movie_helpers import (decode, fb_order, mrc2movie_frames, nearest_frame,
                                           psnr, read_pngs, synthetic_volume)

#: smallest PSNR (dB) of a decoded frame against its uint8 frame; measured 35.7 dB (MJPEG)
#: and 25.6 dB (H.264 crf 23) on this pure-noise volume, where codecs do worst
MIN_PSNR = {"avi": 32.0, "mp4": 22.0}


@pytest.fixture(scope="module")
def vol_file(tmp_path_factory):
    d = tmp_path_factory.mktemp("movie_in")
    vol = synthetic_volume((12, 48, 64))
    path = str(d / "syn.mrc")
    write_mrc(path, vol, voxel_size=10.0)
    return path, vol


def _movie(args):
    assert cli.main(["movie"] + [str(a) for a in args]) == 0


# ----------------------------------------------------------------------------- exact frames
def test_png_frames_equal_mrc2movie(vol_file, tmp_path):
    path, vol = vol_file
    _movie([path, tmp_path, "--codec", "png"])
    frames, files = read_pngs(tmp_path / "syn_frames")
    np.testing.assert_array_equal(frames, mrc2movie_frames(vol))
    assert os.path.basename(files[0]) == "syn_0000.png" and len(files) == 12


def test_uint8_frames_before_encoding_equal_mrc2movie(vol_file, tmp_path, monkeypatch):
    """Every frame of the MJPG AVI default of mrc2movie, in order: each distinct frame is
    JPEG-encoded once (in the rendering threads), a repeat reuses its bytes."""
    from cryoprocs.pipelines.movie import writers
    path, vol = vol_file
    encoded, sequence, frame_of = {}, [], {}
    real_add, real_repeat = writers.MjpegAviWriter.add, writers.MjpegAviWriter.repeat

    def add(self, key, data):
        assert key not in encoded and isinstance(data, bytes)
        encoded[key] = frame_of[id(data)][1]      # the uint8 frame these bytes encode
        sequence.append(key)
        return real_add(self, key, data)

    def repeat(self, key):
        sequence.append(key)
        return real_repeat(self, key)
    monkeypatch.setattr(writers.MjpegAviWriter, "add", add)
    monkeypatch.setattr(writers.MjpegAviWriter, "repeat", repeat)
    jpegs = []
    real_encode = writers.MjpegAviWriter.encode

    def encode(self, f):
        data = real_encode(self, f)
        jpegs.append(1)
        frame_of[id(data)] = (data, np.array(f))
        return data
    monkeypatch.setattr(writers.MjpegAviWriter, "encode", encode)
    _movie([path, tmp_path, "--codec", "MJPG"])
    ref = mrc2movie_frames(vol)
    assert len(jpegs) == len(encoded) == 12                 # 22 movie frames, 12 encoded
    np.testing.assert_array_equal(np.stack([encoded[k] for k in sequence]), ref[fb_order(12)])


def test_gif_is_lossless(vol_file, tmp_path):
    path, vol = vol_file
    _movie([path, tmp_path, "--codec", "gif", "--playback", "forward"])
    frames, meta = decode(str(tmp_path / "syn.gif"))
    np.testing.assert_array_equal(frames, mrc2movie_frames(vol))


# ----------------------------------------------------------------------------- lossy codecs
@pytest.mark.parametrize("codec,fmt,ext", [("MJPG", "avi", ".avi"), ("h264", "mp4", ".mp4")])
def test_decoded_movie_matches_frames(vol_file, tmp_path, codec, fmt, ext):
    path, vol = vol_file
    _movie([path, tmp_path, "--codec", codec])
    out = tmp_path / ("syn" + ext)
    frames, meta = decode(str(out))
    ref = mrc2movie_frames(vol)
    order = fb_order(12)
    assert len(frames) == 2 * 12 - 2 == len(order)
    assert meta["fps"] == pytest.approx(30.0)
    assert frames.shape[1:] == (48, 64)            # already even: no padding
    for i, k in enumerate(order):
        assert psnr(frames[i], ref[k]) >= MIN_PSNR[fmt], (i, k, psnr(frames[i], ref[k]))
        assert nearest_frame(frames[i], ref) == k  # the right slice at the right place
    # first and last frames of a forward-backward loop: slice 0 and slice 1
    assert nearest_frame(frames[0], ref) == 0 and nearest_frame(frames[-1], ref) == 1


def test_mp4_is_h264_yuv420p_faststart(vol_file, tmp_path):
    path, _ = vol_file
    _movie([path, tmp_path])                        # default codec: H.264 MP4
    _, meta = decode(str(tmp_path / "syn.mp4"))
    assert meta["codec"] == "h264" and "yuv420p" in meta["pix_fmt"]
    boxes = _top_level_boxes(str(tmp_path / "syn.mp4"))
    assert "moov" in boxes and "mdat" in boxes, boxes
    assert boxes.index("moov") < boxes.index("mdat"), boxes       # +faststart


def _top_level_boxes(path):
    """Types of the top-level ISO-BMFF boxes of an MP4, in file order."""
    import struct
    types = []
    size_total = os.path.getsize(path)
    with open(path, "rb") as fh:
        pos = 0
        while pos + 8 <= size_total:
            fh.seek(pos)
            size, kind = struct.unpack(">I4s", fh.read(8))
            if size == 1:
                size = struct.unpack(">Q", fh.read(8))[0]
            elif size == 0:
                size = size_total - pos
            assert size >= 8, (path, pos, size)
            types.append(kind.decode("latin-1"))
            pos += size
    return types


def test_odd_sizes_are_padded_to_even(tmp_path):
    vol = synthetic_volume((5, 33, 45))
    p = str(tmp_path / "odd.mrc")
    write_mrc(p, vol)
    for codec, ext in (("h264", ".mp4"), ("MJPG", ".avi")):
        _movie([p, tmp_path / "o", "--codec", codec, "--playback", "forward"])
        frames, _ = decode(str(tmp_path / "o" / ("odd" + ext)))
        assert frames.shape == (5, 34, 46)
        ref = mrc2movie_frames(vol)
        for i in range(5):
            assert nearest_frame(frames[i, :33, :45], ref) == i


# ----------------------------------------------------------------------------- semantics
def test_discard_range_keeps_start_to_end(vol_file, tmp_path):
    path, vol = vol_file
    _movie([path, tmp_path, "--codec", "png", "--discard_range", 2, 5])
    frames, _ = read_pngs(tmp_path / "syn_frames")
    # 3 frames, with min/max taken over the kept slices only (mrc2movie)
    np.testing.assert_array_equal(frames, mrc2movie_frames(vol, keep=(2, 5)))
    _movie([path, tmp_path / "k", "--codec", "gif", "--keep_range", 2, 5])
    gif, _ = decode(str(tmp_path / "k" / "syn.gif"))
    np.testing.assert_array_equal(gif, mrc2movie_frames(vol, keep=(2, 5))[[0, 1, 2, 1]])


def test_discard_percentage(vol_file, tmp_path):
    path, vol = vol_file
    _movie([path, tmp_path, "--codec", "png", "--discard_percentage", 0.25, 0.25])
    frames, _ = read_pngs(tmp_path / "syn_frames")
    assert len(frames) == 6                         # [3, 9) of 12
    np.testing.assert_array_equal(frames, mrc2movie_frames(vol, frac=(0.25, 0.25)))


def test_bad_selection_is_an_error(vol_file, tmp_path, capsys):
    path, _ = vol_file
    assert cli.main(["movie", path, str(tmp_path), "--discard_range", "5", "50"]) == 2
    assert "[5, 50)" in capsys.readouterr().err
    assert not os.listdir(tmp_path)


def test_axis_slab_bin_and_window(vol_file, tmp_path):
    path, vol = vol_file
    # slicing along Y: frames [z, x], one per row y
    _movie([path, tmp_path / "y", "--codec", "png", "--axis", "y", "--no_clahe"])
    fy, _ = read_pngs(tmp_path / "y" / "syn_frames")
    assert fy.shape == (48, 12, 64)
    yz = np.moveaxis(vol, 1, 0)
    np.testing.assert_array_equal(fy, mrc2movie_frames(yz, clahe=False))
    _movie([path, tmp_path / "x", "--codec", "png", "--axis", "x", "--no_clahe"])
    fx, _ = read_pngs(tmp_path / "x" / "syn_frames")
    np.testing.assert_array_equal(fx, mrc2movie_frames(np.moveaxis(vol, 2, 0), clahe=False))
    # slab of 3: frame k = mean of slices k-1..k+1 (clipped at the faces)
    _movie([path, tmp_path / "s", "--codec", "png", "--slab", 3, "--no_clahe"])
    fs, _ = read_pngs(tmp_path / "s" / "syn_frames")
    slab = np.stack([vol[max(0, k - 1):k + 2].mean(axis=0, dtype=np.float32)
                     for k in range(12)])
    ref = mrc2movie_frames(slab, clahe=False)
    assert np.abs(fs.astype(int) - ref).max() <= 1   # float32 summation order
    # bin 2: 24 x 32 frames of 2x2 block means
    _movie([path, tmp_path / "b", "--codec", "png", "--bin", 2, "--no_clahe"])
    fb, _ = read_pngs(tmp_path / "b" / "syn_frames")
    binned = vol.reshape(12, 24, 2, 32, 2).mean(axis=(2, 4), dtype=np.float64)
    assert fb.shape == (12, 24, 32)
    assert np.abs(fb.astype(int) - mrc2movie_frames(binned.astype(np.float32),
                                                    clahe=False)).max() <= 1
    # percentile window, inverted
    _movie([path, tmp_path / "p", "--codec", "png", "--percentile", 1, 99, "--no_clahe",
            "--invert", "--max_width", 32])
    fp, _ = read_pngs(tmp_path / "p" / "syn_frames")
    assert fp.shape == (12, 24, 32)
    assert (fp == 255).mean() >= 0.005 and (fp == 0).mean() >= 0.005   # clipped tails


def test_label_and_scale_bar_only_touch_their_corners(vol_file, tmp_path):
    path, vol = vol_file
    big = np.repeat(np.repeat(vol, 4, axis=1), 4, axis=2)        # 192 x 256 frames
    p = str(tmp_path / "big.mrc")
    write_mrc(p, big, voxel_size=10.0)
    _movie([p, tmp_path / "a", "--codec", "png"])
    _movie([p, tmp_path / "b", "--codec", "png", "--label", "--scale_bar"])
    a, _ = read_pngs(tmp_path / "a" / "big_frames")
    b, _ = read_pngs(tmp_path / "b" / "big_frames")
    diff = np.argwhere((a != b).any(axis=0))
    top = diff[diff[:, 0] < 96]
    bottom = diff[diff[:, 0] >= 96]
    assert top.size and top[:, 0].max() < 30 and top[:, 1].max() < 128
    assert bottom.size and bottom[:, 0].min() > 150 and bottom[:, 1].max() < 128
    # 1 nm pixels, 256 px wide: a 50 nm bar (round number <= 20 % of 256 nm) of 50 px
    row = b[0, 192 - 192 // 30 - 1]
    assert (row == 255).sum() == 50


def test_scale_bar_needs_pixel_size(tmp_path, capsys):
    p = str(tmp_path / "nopix.mrc")
    write_mrc(p, synthetic_volume((3, 16, 16)))
    assert cli.main(["movie", p, str(tmp_path / "o"), "--scale_bar"]) == 2
    assert "pixel size" in capsys.readouterr().err
    _movie([p, tmp_path / "o", "--scale_bar", "--pixel_size", "5", "--codec", "png"])


def test_tilt_angle_order_and_file_order(tmp_path):
    rng = np.random.default_rng(3)
    stack = rng.normal(size=(5, 40, 40)).astype(np.float32)
    stack += np.arange(5, dtype=np.float32)[:, None, None]      # distinct images
    p = str(tmp_path / "ts.mrcs")
    write_mrc(p, stack, voxel_size=20.0, is_stack=True)
    tlt = tmp_path / "ts.tlt"
    tlt.write_text("0\n3\n-3\n6\n-6\n")
    _movie([p, tmp_path / "a", "--codec", "png", "--tilt_angles", tlt])
    fa, _ = read_pngs(tmp_path / "a" / "ts_frames")
    ref = mrc2movie_frames(stack)
    np.testing.assert_array_equal(fa, ref[[4, 2, 0, 1, 3]])     # -6, -3, 0, 3, 6
    _movie([p, tmp_path / "f", "--codec", "png", "--tilt_angles", tlt, "--order", "file"])
    ff, _ = read_pngs(tmp_path / "f" / "ts_frames")
    np.testing.assert_array_equal(ff, ref)
    bad = tmp_path / "bad.tlt"
    bad.write_text("0\n3\n")
    assert cli.main(["movie", p, str(tmp_path / "x"), "--tilt_angles", str(bad)]) == 2


# ----------------------------------------------------------------------------- errors, batch
def test_writer_that_cannot_open_is_an_error_and_leaves_nothing(vol_file, tmp_path, capsys):
    path, _ = vol_file
    assert cli.main(["movie", path, str(tmp_path), "--codec", "ABCD"]) == 2
    assert "could not open a ABCD video writer" in capsys.readouterr().err
    assert os.listdir(tmp_path) == []


def test_failing_encoder_is_an_error_and_leaves_nothing(vol_file, tmp_path, monkeypatch,
                                                        capsys):
    path, _ = vol_file
    from cryoprocs.pipelines.movie import writers
    monkeypatch.setattr(writers, "ffmpeg_exe", lambda: "/bin/false")
    assert cli.main(["movie", path, str(tmp_path)]) == 2
    assert "ffmpeg encoder" in capsys.readouterr().err
    assert os.listdir(tmp_path) == []


def test_batch_folder_progress_skip_and_errors(tmp_path, capsys):
    src = tmp_path / "in"
    src.mkdir()
    for i in range(2):
        write_mrc(str(src / ("t%d.mrc" % i)), synthetic_volume((4, 16, 24), seed=i))
    (src / "notes.txt").write_text("not a tomogram")
    (src / "broken.mrc").write_bytes(b"\0" * 100)
    out = tmp_path / "out"
    assert cli.main(["movie", str(src), str(out), "--codec", "gif"]) == 2   # broken.mrc
    captured = capsys.readouterr()
    assert "broken.mrc" in captured.out and "2 movie(s) written" in captured.out
    assert sorted(os.listdir(out)) == ["t0.gif", "t1.gif"]
    for i in range(2):
        frames, _ = decode(str(out / ("t%d.gif" % i)))
        np.testing.assert_array_equal(
            frames, mrc2movie_frames(synthetic_volume((4, 16, 24), seed=i))[fb_order(4)])
    os.remove(src / "broken.mrc")
    mtime = os.path.getmtime(out / "t0.gif")
    assert cli.main(["movie", str(src), str(out), "--codec", "gif"]) == 0
    assert "skipped" in capsys.readouterr().out
    assert os.path.getmtime(out / "t0.gif") == mtime


def test_png_sink_next_to_the_movie(vol_file, tmp_path):
    path, vol = vol_file
    _movie([path, tmp_path, "--codec", "gif", "--png"])
    frames, _ = read_pngs(tmp_path / "syn_frames")
    np.testing.assert_array_equal(frames, mrc2movie_frames(vol))
    assert len(decode(str(tmp_path / "syn.gif"))[0]) == 22


def test_settings_validation_names_values():
    with pytest.raises(movie.MovieError, match="-1"):
        movie_pipeline.MovieSettings(fps=-1)
    with pytest.raises(movie.MovieError, match="'wmv'"):
        movie_pipeline.MovieSettings(format="wmv")
    with pytest.raises(movie.MovieError, match="99 and 1"):
        movie_pipeline.MovieSettings(window="percentile", percentiles=(99, 1))
    with pytest.raises(movie.MovieError, match="placebo"):
        movie_pipeline.MovieSettings(preset="placebo")


# ----------------------------------------------------------------------------- real data
@pytest.mark.shared_data
def test_real_hiv_tomogram_mp4(tmp_path):
    path = shared_data("real", "hiv_vlp", "hiv_ts01_tomo_40A.mrc")
    _movie([path, tmp_path, "--label", "--scale_bar"])
    frames, meta = decode(str(tmp_path / "hiv_ts01_tomo_40A.mp4"))
    assert frames.shape == (200, 136, 136)          # 2*101-2 frames, 135 px padded to even
    vol = mrcfile.read(path)
    ref = mrc2movie_frames(vol)
    # away from the overlays, frames follow the real slices
    for i, k in [(0, 0), (50, 50), (100, 100), (150, 50), (199, 1)]:
        core = (slice(30, 110), slice(30, 130))
        assert psnr(frames[i][core], ref[k][core]) >= 25, (i, psnr(frames[i][core],
                                                                    ref[k][core]))
        assert nearest_frame(frames[i][core], ref[:, core[0], core[1]]) == k


@pytest.mark.shared_data
def test_real_hiv_tomogram_mjpg_parity(tmp_path):
    path = shared_data("real", "hiv_vlp", "hiv_ts01_tomo_40A.mrc")
    _movie([path, tmp_path, "--codec", "MJPG"])
    frames, _ = decode(str(tmp_path / "hiv_ts01_tomo_40A.avi"))
    ref = mrc2movie_frames(mrcfile.read(path))
    assert frames.shape == (200, 136, 136)
    for i, k in enumerate(fb_order(101)):
        assert psnr(frames[i, :135, :135], ref[k]) >= 30


@pytest.mark.shared_data
def test_real_tilt_images_png_exact(tmp_path):
    path = shared_data("real", "cryocat_tilt_stack", "tilt_stack.mrc")
    tlt = tmp_path / "tilt_stack.tlt"
    tlt.write_text("0\n-3\n3\n-6\n")                # assigned here: the file has none
    _movie([path, tmp_path / "o", "--codec", "png", "--tilt_angles", tlt])
    frames, _ = read_pngs(tmp_path / "o" / "tilt_stack_frames")
    ref = mrc2movie_frames(mrcfile.read(path))
    np.testing.assert_array_equal(frames, ref[[3, 1, 0, 2]])


@pytest.mark.shared_data
def test_real_microtubule_tomogram_axis_y_gif(tmp_path):
    path = shared_data("real", "cylindra", "13pf_MT.mrc")
    _movie([path, tmp_path, "--codec", "gif", "--axis", "y", "--playback", "forward"])
    frames, _ = decode(str(tmp_path / "13pf_MT.gif"))
    vol = mrcfile.read(path)                       # (36, 206, 94)
    np.testing.assert_array_equal(frames, mrc2movie_frames(np.moveaxis(vol, 1, 0)))


def test_mjpg_avi_container_and_large_movie_fallback(vol_file, tmp_path, monkeypatch):
    """The AVI written from the JPEG frames opens with OpenCV's own MJPEG reader and ffmpeg
    (frames, fps); a movie estimated beyond the AVI 1.0 limit goes through ffmpeg's muxer."""
    import cv2
    from cryoprocs.convert import avi
    path, vol = vol_file
    _movie([path, tmp_path / "a", "--codec", "MJPG", "--fps", "29.97"])
    out = str(tmp_path / "a" / "syn.avi")
    for api in (cv2.CAP_OPENCV_MJPEG, cv2.CAP_FFMPEG):
        cap = cv2.VideoCapture(out, api)
        n = 0
        while cap.read()[0]:
            n += 1
        assert n == 22 and cap.get(cv2.CAP_PROP_FPS) == pytest.approx(29.97, abs=1e-3), api
    small, _ = decode(out)
    monkeypatch.setattr(avi, "MAX_BYTES", 10_000)
    _movie([path, tmp_path / "b", "--codec", "MJPG", "--fps", "29.97"])
    large, meta = decode(str(tmp_path / "b" / "syn.avi"))
    np.testing.assert_array_equal(large, small)       # the same JPEG frames, other muxer
    assert meta["fps"] == pytest.approx(29.97, abs=1e-2)
