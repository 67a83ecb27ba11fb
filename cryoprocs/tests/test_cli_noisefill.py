"""``cryoprocs noise-fill``: the script's flags, the new options, overwrite refusal, no
partial files, and the streaming MRC writer underneath."""
import json
import os

import mrcfile
import numpy as np
import pytest

from cryoprocs import cli
from cryoprocs.convert.mrc import AtomicMrcWriter, MappedMrc
from cryoprocs.kernels import noisefill
from cryoprocs.tests import shared_data
from cryoprocs.tests.test_kernels_noisefill import _blob_case, script_restatement


def _temporaries(path):
    """The temporaries (``.NAME.<pid>.<hex>.partial...``) of ``path`` left in its folder."""
    folder, name = os.path.split(os.path.abspath(path))
    return [f for f in os.listdir(folder) if f.startswith("." + name + ".") and ".partial" in f]


@pytest.fixture
def files(tmp_path):
    tomo, mask = _blob_case()
    t, m = str(tmp_path / "tomo.mrc"), str(tmp_path / "mask.mrc")
    with mrcfile.new(t) as f:
        f.set_data(tomo)
        f.voxel_size = 13.5
        f.header.origin = (10.0, 20.0, 30.0)
    with mrcfile.new(m) as f:
        f.set_data(mask)
        f.voxel_size = 13.5
    return tomo, mask, t, m, str(tmp_path / "out.mrc")


def _run(*args):
    return cli.main(["noise-fill"] + [str(a) for a in args])


def test_defaults_write_float32_with_header_and_keep_the_mask(files, capsys):
    tomo, mask, t, m, out = files
    assert _run("--input_tomo", t, "--input_mask", m, "--output_tomo", out,
                "--expand_pixels", 2, "--noise-stats", "global") == 0
    printed = capsys.readouterr().out
    assert "expanded mask voxels" in printed and "wrote %s" % out in printed
    with mrcfile.open(out) as f:
        data = f.data.copy()
        assert data.dtype == np.float32 and data.shape == tomo.shape
        assert f.voxel_size.x == pytest.approx(13.5)
        assert (float(f.header.origin.x), float(f.header.origin.z)) == (10.0, 30.0)
        assert float(f.header.dmax) == pytest.approx(float(data.max()))
        assert float(f.header.dmean) == pytest.approx(float(data.mean(dtype=np.float64)),
                                                      rel=1e-5)
    from scipy import ndimage as ndi
    kept = ndi.distance_transform_edt(~(mask > 0.5)) <= 2
    np.testing.assert_array_equal(data[kept], tomo[kept])


def test_refuses_to_overwrite_and_overwrites_when_asked(files, capsys):
    tomo, mask, t, m, out = files
    with open(out, "wb") as fh:
        fh.write(b"precious")
    assert _run("--input_tomo", t, "--input_mask", m, "--output_tomo", out) == 2
    assert "exists" in capsys.readouterr().err
    assert open(out, "rb").read() == b"precious"
    assert _temporaries(out) == []
    assert _run("--input_tomo", t, "--input_mask", m, "--output_tomo", out, "--overwrite",
                "--noise-stats", "global") == 0
    assert mrcfile.read(out).shape == tomo.shape


def test_parity_flags_reproduce_the_script(files):
    tomo, mask, t, m, out = files
    flags = {"expand_pixels": 3, "gaussian_sigma": 0.8, "smooth_iterations": 2,
             "noise_std": 0.3, "background_value": 0.1}
    assert _run("--input_tomo", t, "--input_mask", m, "--output_tomo", out, "--parity",
                "--expand_pixels", 3, "--gaussian_sigma", 0.8, "--smooth_iterations", 2,
                "--noise_std", 0.3, "--background_value", 0.1, "--sigma", 3.0,
                "--threshold", 0.7) == 0            # --sigma/--threshold: dead in the script
    want, _ = script_restatement(tomo, mask, **flags)
    np.testing.assert_array_equal(mrcfile.read(out), want.astype(np.float32))
    out2 = out.replace(".mrc", "_fast.mrc")
    assert _run("--input-tomo", t, "--input-mask", m, "--output-tomo", out2, "--parity",
                "--fast") == 0
    want, _ = script_restatement(tomo, mask, fast=True)
    np.testing.assert_array_equal(mrcfile.read(out2), want.astype(np.float32))


def test_parity_rejects_new_options_and_fast_needs_parity(files, capsys):
    _, _, t, m, out = files
    assert _run("--input_tomo", t, "--input_mask", m, "--output_tomo", out, "--parity",
                "--soft-edge", 2, "--spectral-noise") == 2
    err = capsys.readouterr().err
    assert "--soft-edge" in err and "--spectral-noise" in err
    assert _run("--input_tomo", t, "--input_mask", m, "--output_tomo", out, "--fast") == 2
    assert not os.path.exists(out)


def test_side_outputs_soft_mask_preview_report(files):
    tomo, mask, t, m, out = files
    w, png, rep = out + ".w.mrc", out + ".png", out + ".json"
    assert _run("--input-tomo", t, "--input-mask", m, "--output-tomo", out, "--soft-mask-out",
                w, "--preview", png, "--report", rep, "--expand-pixels", 1, "--soft-edge", 2,
                "--noise-stats", "robust", "--seed", 3, "--threads", 2) == 0
    weight = mrcfile.read(w)
    data = mrcfile.read(out)
    np.testing.assert_array_equal(data[weight == 1], tomo[weight == 1])
    assert 0 < np.count_nonzero((weight > 0) & (weight < 1))
    r = json.load(open(rep))
    assert r["kept_voxels"] == int((weight == 1).sum())
    assert r["filled_voxels"] == int((weight == 0).sum())
    assert r["noise_stats"] == "robust" and r["params"]["seed"] == 3
    from PIL import Image
    img = Image.open(png)
    assert img.mode == "RGB" and img.size[1] >= 384
    px = np.asarray(img)
    assert ((px[..., 0] == 250) & (px[..., 1] == 220)).any()       # mask outline drawn


def test_failure_leaves_no_partial_file(files, monkeypatch):
    tomo, mask, t, m, out = files

    def broken(tomo, mask, params, write, write_weight=None, **kw):
        write(0, np.zeros((2,) + tomo.shape[1:], np.float32))
        raise noisefill.NoiseFillError("simulated failure after one slab")

    monkeypatch.setattr(noisefill, "noise_fill", broken)
    assert _run("--input_tomo", t, "--input_mask", m, "--output_tomo", out,
                "--soft-mask-out", out + ".w.mrc") == 2
    assert set(os.listdir(os.path.dirname(out))) == {"tomo.mrc", "mask.mrc"}


def test_failed_commit_leaves_no_preview_or_report(files, monkeypatch):
    """Soft mask, preview and report get their final names just before the tomogram, and
    are removed again when the tomogram cannot be committed: a failed run leaves none of them
    (and no temporary file)."""
    tomo, mask, t, m, out = files
    from cryoprocs.convert import outputs
    real_commit = outputs.commit_temp

    def commit(tmp, final):
        if final == out:
            raise OSError(28, "No space left on device", tmp)
        return real_commit(tmp, final)

    monkeypatch.setattr(outputs, "commit_temp", commit)
    assert _run("--input-tomo", t, "--input-mask", m, "--output-tomo", out, "--soft-mask-out",
                out + ".w.mrc", "--preview", out + ".png", "--report", out + ".json",
                "--expand-pixels", 1) == 2
    assert set(os.listdir(os.path.dirname(out))) == {"tomo.mrc", "mask.mrc"}


def test_output_folder_or_link_to_input_is_refused(files, tmp_path, capsys):
    """A folder as input, or an output that is a link to the tomogram: one line, nothing
    written, the input untouched."""
    tomo, mask, t, m, out = files
    assert _run("--input-tomo", str(tmp_path), "--input-mask", m, "--output-tomo", out) == 2
    assert "is a folder" in capsys.readouterr().err
    link = str(tmp_path / "link.mrc")
    os.symlink(t, link)
    assert _run("--input-tomo", t, "--input-mask", m, "--output-tomo", link,
                "--overwrite") == 2
    assert "is the same file as the tomogram" in capsys.readouterr().err
    np.testing.assert_array_equal(mrcfile.read(t), tomo)
    assert not os.path.exists(out)


def test_mismatched_mask_is_refused_before_writing(files, tmp_path, capsys):
    tomo, mask, t, m, out = files
    small = str(tmp_path / "small.mrc")
    with mrcfile.new(small) as f:
        f.set_data(mask[:, :, :-2])
    assert _run("--input_tomo", t, "--input_mask", small, "--output_tomo", out) == 2
    err = capsys.readouterr().err
    assert "50x44x36" in err and "52x44x36" in err
    assert sorted(os.listdir(os.path.dirname(out))) == ["mask.mrc", "small.mrc", "tomo.mrc"]


def test_real_microtubule_tomogram_cli(tmp_path):
    t = shared_data("real", "cylindra", "14pf_MT.mrc")
    m = shared_data("real", "cylindra", "14pf_MT_tube_mask_r16.mrc")
    out = str(tmp_path / "mt.mrc")
    assert _run("--input_tomo", t, "--input_mask", m, "--output_tomo", out, "--report",
                out + ".json") == 0
    r = json.load(open(out + ".json"))
    assert abs(r["filled_mean"] - r["replaced_mean"]) < 0.05 * r["replaced_std"]
    assert r["filled_std"] == pytest.approx(r["replaced_std"], rel=0.05)
    assert mrcfile.open(out).voxel_size.x == pytest.approx(10.52, rel=1e-4)


def test_slab_reader_and_writer_roundtrip(tmp_path):
    rng = np.random.default_rng(0)
    vol = rng.standard_normal((9, 11, 13)).astype(np.float32)
    path = str(tmp_path / "v.mrc")
    with AtomicMrcWriter(path, vol.shape, 2.5, (1.0, 2.0, 3.0)) as w:
        for z0 in (6, 0, 3):                      # any order
            w.write(z0, vol[z0:z0 + 3])
        assert os.path.exists(w.tmp) and not os.path.exists(path)
    with mrcfile.open(path) as f:
        np.testing.assert_array_equal(f.data, vol)
        assert float(f.header.rms) == pytest.approx(float(vol.std()), rel=1e-5)
        assert float(f.header.dmin) == float(vol.min())
    with MappedMrc(path) as r:
        assert r.shape == vol.shape and r.voxel_size[0] == pytest.approx(2.5)
        np.testing.assert_array_equal(r[2:5], vol[2:5])
        np.testing.assert_array_equal(r[1:9:3], vol[1:9:3])
    with pytest.raises(FileExistsError):
        AtomicMrcWriter(path, vol.shape)
    with pytest.raises(RuntimeError):
        with AtomicMrcWriter(path, vol.shape, overwrite=True) as w:
            w.write(0, vol[:2])
            raise RuntimeError("boom")
    np.testing.assert_array_equal(mrcfile.read(path), vol)       # untouched
    assert _temporaries(path) == []
