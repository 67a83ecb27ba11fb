"""``cryoprocs movie --particles``: circles decoded from the written frames sit on the
particles with the sphere cross-section radius, follow --bin and --axis, are the same for
every file format, mrc2movie 0.2.0's style and playback (pingpong, pause, cycles,
--start/--end), colours by a column, and the speed rule: one render and one JPEG per
distinct frame."""
import os

import numpy as np
import pytest

from cryoprocs import cli
from cryoprocs.convert import particles
from cryoprocs.convert.mrc import write_mrc
from cryoprocs.tests.movie_helpers import decode, mrc2movie_frames, read_pngs

NZ, NY, NX = 24, 60, 80
PARTICLES = np.array([[20.3, 15.6, 8.0], [40.0, 40.2, 12.5], [62.7, 47.1, 16.0]])
R = 6.0


@pytest.fixture(scope="module")
def tomo(tmp_path_factory):
    d = tmp_path_factory.mktemp("movie_particles")
    rng = np.random.default_rng(3)
    vol = rng.normal(0.0, 1.0, (NZ, NY, NX)).astype(np.float32)
    path = str(d / "tomo.mrc")
    write_mrc(path, vol, voxel_size=12.0)
    csv = str(d / "tomo_picks.csv")
    particles.write_particles_csv(csv, PARTICLES, {"score": [0.1, 0.5, 0.9], "class": [1, 2, 1]})
    return path, vol, csv


def _movie(args):
    assert cli.main(["movie"] + [str(a) for a in args]) == 0


def _overlay_mask(frame):
    """Pixels where the overlay coloured the gray frame."""
    f = frame.astype(int)
    return (np.abs(f[..., 0] - f[..., 1]) > 40) | (np.abs(f[..., 1] - f[..., 2]) > 40)


def _ring_fit(mask, cx, cy, window):
    """Mean position and mean distance of the overlay pixels within ``window`` px."""
    yy, xx = np.nonzero(mask)
    near = np.hypot(xx - cx, yy - cy) < window
    xx, yy = xx[near], yy[near]
    return xx.mean(), yy.mean(), np.hypot(xx - cx, yy - cy).mean(), near.sum()


def test_circles_are_sphere_cross_sections(tomo, tmp_path):
    path, vol, csv = tomo
    _movie([path, tmp_path, "--codec", "png", "--particles", csv, "--particle-radius", R,
            "--line-width", 1])
    frames, files = read_pngs(tmp_path / "tomo_frames")
    assert frames.shape == (NZ, NY, NX, 3)
    gray = mrc2movie_frames(vol)
    for z in range(NZ):
        mask = _overlay_mask(frames[z])
        # away from the circles (and their anti-aliased edges) the frame is mrc2movie's
        grey = (frames[z][..., 0] == frames[z][..., 1]) & (frames[z][..., 1] == frames[z][..., 2])
        np.testing.assert_array_equal(frames[z][grey][:, 0], gray[z][grey])
        assert grey.mean() > 0.8
        for x, y, pz in PARTICLES:
            dz = abs(pz - z)
            n_near = np.hypot(*np.nonzero(mask)[::-1] - np.array([[x], [y]])) < R + 2
            if dz >= R:
                assert not n_near.any(), (z, x, y)
                continue
            r = np.sqrt(R * R - dz * dz)
            mx, my, md, n = _ring_fit(mask, x, y, R + 2)
            if r >= 2:
                assert abs(md - r) < 0.75, (z, r, md)
                assert abs(mx - x) < 0.5 and abs(my - y) < 0.5, (z, mx, my)


def test_binning_and_axis_move_the_circles(tomo, tmp_path):
    path, vol, csv = tomo
    _movie([path, tmp_path / "b", "--codec", "png", "--particles", csv, "--particle-radius",
            R, "--bin", 2, "--line-width", 1])
    frames, _ = read_pngs(tmp_path / "b" / "tomo_frames")
    x, y, z = PARTICLES[1]
    mx, my, md, _ = _ring_fit(_overlay_mask(frames[int(round(z))]), (x + 0.5) / 2 - 0.5,
                              (y + 0.5) / 2 - 0.5, R / 2 + 2)
    assert abs(mx - ((x + 0.5) / 2 - 0.5)) < 0.5 and abs(my - ((y + 0.5) / 2 - 0.5)) < 0.5
    assert abs(md - np.sqrt(R * R - (z - round(z)) ** 2) / 2) < 0.75
    _movie([path, tmp_path / "y", "--codec", "png", "--particles", csv, "--particle-radius",
            R, "--axis", "y", "--line-width", 1])
    frames, _ = read_pngs(tmp_path / "y" / "tomo_frames")   # frames [z, x], one per y
    assert frames.shape[:3] == (NY, NZ, NX)
    x, y, z = PARTICLES[0]
    mask = _overlay_mask(frames[int(round(y))])
    mx, my, md, _ = _ring_fit(mask, x, z, R + 2)
    assert abs(mx - x) < 0.5 and abs(my - z) < 0.5


def test_every_format_draws_the_same_frames(tomo, tmp_path):
    import imodmodel
    import pandas as pd
    from cryoprocs.convert import motl

    path, vol, csv = tomo
    model = PARTICLES + [0.5, 0.5, 0.0]
    files = {"csv": csv, "mod": str(tmp_path / "tomo.mod"), "txt": str(tmp_path / "p.txt"),
             "star": str(tmp_path / "p.star"), "em": str(tmp_path / "p.em")}
    imodmodel.write(pd.DataFrame(model, columns=list("xyz")), files["mod"])
    np.savetxt(files["txt"], model)
    motl.write_relion5_particles(files["star"], motl.relion5_from_picks(
        PARTICLES, np.zeros((3, 3)), "tomo", (NX, NY, NZ), 12.0))
    motl.write_em_motl(files["em"], motl.motl_from_picks(PARTICLES, [1, 1, 1], np.zeros((3, 3))))
    ref = None
    for name, f in files.items():
        out = tmp_path / name
        _movie([path, out, "--codec", "png", "--particles", f, "--particle-radius", "72A"])
        frames, _ = read_pngs(out / "tomo_frames")
        if ref is None:
            ref = frames
        # EM motive lists are float32 and RELION Å are written with 6 decimals
        diff = np.abs(frames.astype(int) - ref).max()
        assert diff <= (40 if name in ("em", "star") else 0), (name, diff)
        assert (_overlay_mask(frames) == _overlay_mask(ref)).mean() > 0.999, name


def test_mrc2movie_style_and_pingpong_playback(tomo, tmp_path, monkeypatch):
    """mrc2movie 0.2.0: -p text file, red discs (radius 2 = --psize), pingpong with pause
    and cycles; each distinct frame is rendered and JPEG-encoded once."""
    import cv2
    from cryoprocs.kernels import movie
    from cryoprocs.pipelines.movie import writers
    path, vol, _ = tomo
    txt = tmp_path / "p.txt"
    np.savetxt(txt, PARTICLES + [0.5, 0.5, 0.0])
    renders, jpegs = [], []
    real_render, real_encode = movie.render_frame, writers.MjpegAviWriter.encode
    monkeypatch.setattr(movie, "render_frame",
                        lambda *a, **k: (renders.append(1), real_render(*a, **k))[1])
    monkeypatch.setattr(writers.MjpegAviWriter, "encode",
                        lambda self, f: (jpegs.append(1), real_encode(self, f))[1])
    _movie([path, tmp_path, "-p", txt, "--overlay-style", "mrc2movie", "--psize", 2,
            "--codec", "MJPG", "--playback", "pingpong", "--pause", 3, "--cycles", 2,
            "--start", 4, "--end", 15, "--png"])
    frames, _ = decode(str(tmp_path / "tomo.avi"))
    n = 12                                          # slices 4..15, end included
    assert len(frames) == 2 * (2 * n - 2 + 2 * 3)
    assert len(renders) == len(jpegs) == n
    pngs, _ = read_pngs(tmp_path / "tomo_frames")
    assert len(pngs) == n
    gray = mrc2movie_frames(vol, keep=(4, 16))
    for i, z in enumerate(range(4, 16)):
        ref = cv2.cvtColor(gray[i], cv2.COLOR_GRAY2BGR)
        for px, py, pz in PARTICLES + [0.5, 0.5, 0.0]:
            dz = abs(pz - z)
            if dz <= 2:
                cv2.circle(ref, (int(px), int(py)), max(1, round(2 * (1 - dz / 2))),
                           (0, 0, 255), -1)
        np.testing.assert_array_equal(pngs[i], ref)


def test_colour_by_score_and_classes(tomo, tmp_path):
    from cryoprocs.kernels import particle_overlay
    path, vol, csv = tomo
    _movie([path, tmp_path, "--codec", "png", "--particles", csv, "--particle-radius", R,
            "--color-by", "score", "--line-width", 2, "--particle-ids"])
    frames, _ = read_pngs(tmp_path / "tomo_frames")
    lut = particle_overlay._lut("viridis")
    for (x, y, z), want in zip(PARTICLES, (lut[0], lut[128], lut[255])):
        f = frames[int(round(z))]
        yy, xx = np.nonzero(_overlay_mask(f))
        on = (np.abs(np.hypot(xx - x, yy - y) - R) < 0.5) & (yy > y + 1)   # below ids, legend
        got = np.median(f[yy[on], xx[on]], axis=0)
        assert np.abs(got - want).max() <= 12, (want, got)
    # the colour bar: the top of its ramp is the map's high end
    assert any((np.abs(frames[0][:NY // 2, NX // 2:].reshape(-1, 3).astype(int) - lut[255])
                .max(axis=1) <= 2).tolist())
    _movie([path, tmp_path / "c", "--codec", "png", "--particles", csv, "--particle-radius", R,
            "--color-by", "class", "--line-width", 2])
    frames, _ = read_pngs(tmp_path / "c" / "tomo_frames")
    f = frames[8]                                   # particle 1, class 1
    yy, xx = np.nonzero(_overlay_mask(f))
    on = np.hypot(xx - PARTICLES[0, 0], yy - PARTICLES[0, 1]) < R + 1
    got = np.median(f[yy[on], xx[on]], axis=0)
    assert np.abs(got - particle_overlay.CLASS_COLOURS[0]).max() <= 12, got
    assert np.abs(got - particle_overlay.CLASS_COLOURS[1]).max() > 100


def test_particle_errors_are_one_line(tomo, tmp_path, capsys):
    path, _, csv = tomo
    star = tmp_path / "two.star"
    from cryoprocs.convert import motl
    import pandas as pd
    motl.write_relion5_particles(str(star), pd.concat([motl.relion5_from_picks(
        PARTICLES, np.zeros((3, 3)), t, (NX, NY, NZ), 12.0) for t in ("TS_1", "TS_2")]))
    assert cli.main(["movie", path, str(tmp_path / "o"), "--particles", str(star)]) == 2
    assert "no particle of tomogram 'tomo' (tomograms: TS_1, TS_2)" in capsys.readouterr().err
    assert cli.main(["movie", path, str(tmp_path / "o"), "--particles", str(star),
                     "--tomo-name", "TS_2", "--codec", "gif"]) == 0
    assert cli.main(["movie", path, str(tmp_path / "o"), "--particles", csv,
                     "--particle-radius", "ten"]) == 2
    assert "particle radius 'ten'" in capsys.readouterr().err
    assert cli.main(["movie", path, str(tmp_path / "o"), "--particles", csv,
                     "--color-by", "nope"]) == 2
    assert "no column 'nope'" in capsys.readouterr().err
    assert not os.path.exists(tmp_path / "o" / "tomo.mp4")


@pytest.mark.parametrize("codec,ext", [("h264", ".mp4"), ("gif", ".gif")])
def test_colour_movies_decode_with_the_overlay(tomo, tmp_path, codec, ext):
    path, vol, csv = tomo
    _movie([path, tmp_path, "--codec", codec, "--particles", csv, "--particle-radius", R,
            "--playback", "forward", "--line-width", 2])
    import imageio_ffmpeg
    gen = imageio_ffmpeg.read_frames(str(tmp_path / ("tomo" + ext)), pix_fmt="rgb24")
    meta = next(gen)
    w, h = meta["size"]
    frames = np.stack([np.frombuffer(b, np.uint8).reshape(h, w, 3) for b in gen])
    assert len(frames) == NZ
    x, y, z = PARTICLES[0]
    f = frames[int(z)].astype(int)
    ring = f[int(round(y)), int(round(x + R))]
    assert ring[1] - ring[0] > 80 and ring[1] - ring[2] > 80, ring      # green on gray


def test_options_may_come_between_input_and_output_dir(tmp_path):
    """INPUT and OUTPUT_DIR are optional positionals (--tomograms needs only OUTPUT_DIR):
    options between them, as the protocol and users write them, still parse."""
    p = cli.build_parser()
    for argv, want in ((["a.mrc", "--bin", "2", "out"], ("a.mrc", "out", None)),
                       (["a.json", "--frame-list", "out", "--name", "x"], ("a.json", "out", None)),
                       (["out", "--tomograms", "t.star"], ("out", None, "t.star"))):
        a = p.parse_args(["movie"] + argv)
        assert (a.input, a.output_dir, a.tomograms) == want
    with pytest.raises(SystemExit):
        p.parse_args(["movie", "a.mrc", "out", "extra"])


def test_particles_on_a_stored_ome_zarr_level(tomo, tmp_path):
    """--bin 2 reads the OME-Zarr level binned 2x (here in z too): the full-resolution
    coordinates map onto it through the levels' NGFF scales (ome-zarr's pyramid subsamples,
    level voxel = voxel / 2); a level binned in x and y only would squash the spheres, so
    with particles it is not used (level 0 is binned instead, as an MRC)."""
    from cryoprocs.tests import zarr_helpers
    pytest.importorskip("ome_zarr")
    path, vol, csv = tomo
    x, y, z = PARTICLES[1]
    for tilt, nframes, (cx, cy, depth) in (
            (False, NZ // 2, (x / 2, y / 2, z / 2)),
            (True, NZ, ((x + 0.5) / 2 - 0.5, (y + 0.5) / 2 - 0.5, z))):
        store = zarr_helpers.write_ngff(tmp_path / ("t%d.zarr" % tilt), vol, 12.0, (8, 32, 32),
                                        levels=2, tilt_series=tilt)
        out = tmp_path / ("out%d" % tilt)
        _movie([store, out, "--codec", "png", "--particles", csv, "--particle-radius", "72A",
                "--bin", 2, "--line-width", 1])
        frames, _ = read_pngs(out / ("t%d_frames" % tilt))
        assert frames.shape[:3] == (nframes, NY // 2, NX // 2)
        k = int(round(depth))
        mx, my, md, _ = _ring_fit(_overlay_mask(frames[k]), cx, cy, R / 2 + 2)
        assert abs(mx - cx) < 0.5 and abs(my - cy) < 0.5, (tilt, mx, my, cx, cy)
        scale = 2.0 if nframes < NZ else 1.0          # depth voxels of what is read
        r = np.sqrt(R * R - ((depth - k) * scale) ** 2) / 2
        assert abs(md - r) < 0.75, (tilt, md, r)
