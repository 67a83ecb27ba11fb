"""copick conventions, ``cryoprocs copick-import`` / ``copick-export`` on a project made with
copick's API (filesystem backend), and bad input."""
import os

import numpy as np
import pytest
import starfile

from cryoprocs.cli import main
from cryoprocs.convert import copick_io
from cryoprocs.convert.euler import relion_euler_matrix
from cryoprocs.tests import copick_helpers

copick = copick_helpers.copick_or_skip()


def test_convention_known_rotation():
    """copick's rotation maps particle axes to tomogram axes and is RELION's A(rot, tilt,
    psi): Rz(+90°) sends the particle's x axis to the tomogram's +y."""
    T = np.eye(4)[None].copy()
    T[0, :3, :3] = copick_helpers.rz(90.0)
    rot, tilt, psi = copick_io.copick_rotations_to_relion(T)
    assert abs(tilt[0]) < 1e-9
    assert abs(((rot[0] + psi[0] + 90.0 + 180.0) % 360.0) - 180.0) < 1e-9
    A = relion_euler_matrix(rot[0], tilt[0], psi[0])
    np.testing.assert_allclose(A @ [1.0, 0.0, 0.0], [0.0, 1.0, 0.0], atol=1e-12)
    # RELION's tilt: A(0, 30, 0) is the active rotation by -30° about y
    c, s = np.cos(np.deg2rad(30)), np.sin(np.deg2rad(30))
    T[0, :3, :3] = [[c, 0, -s], [0, 1, 0], [s, 0, c]]
    np.testing.assert_allclose(np.ravel(copick_io.copick_rotations_to_relion(T)), [0, 30, 0],
                               atol=1e-9)
    # round trip of random rotations
    R = copick_helpers.random_rotations(50)
    Ts = np.tile(np.eye(4), (50, 1, 1))
    Ts[:, :3, :3] = R
    back = copick_io.relion_to_copick_transforms(*copick_io.copick_rotations_to_relion(Ts))
    np.testing.assert_allclose(back, Ts, atol=1e-12)
    # positions: (location + translation) / voxel size
    np.testing.assert_allclose(copick_io.picks_positions_voxels([[10.0, 20.0, 30.0]],
                                                                np.eye(4)[None], 10.0), [[1, 2, 3]])
    with pytest.raises(copick_io.CopickError, match="not rotations"):
        copick_io.copick_rotations_to_relion(np.eye(4)[None] * np.array([1, 1, -1, 1])[:, None])


def test_cli_import_export_round_trip(tmp_path, capsys):
    cfg, truth = copick_helpers.make_project(str(tmp_path / "cp"))
    out = tmp_path / "imp"
    assert main(["copick-import", "--config", cfg, "--voxel-spacing", "10", "--objects",
                 "ribosome", "--output-dir", str(out)]) == 0
    parts = starfile.read(out / "particles.star", always_dict=True)["particles"]
    assert len(parts) == 12 and set(parts["rlnTomoName"]) == {"TS_01", "TS_02"}
    # centred coordinates about size/2: voxel = centred / vs + size / 2
    sub = parts[parts["rlnTomoName"] == "TS_01"]
    loc, T = truth["TS_01"][:2]
    size = np.array(copick_helpers.SHAPE[::-1], float)
    cen = sub[["rlnCenteredCoordinateXAngst", "rlnCenteredCoordinateYAngst",
               "rlnCenteredCoordinateZAngst"]].to_numpy()
    np.testing.assert_allclose(cen + size / 2 * 10.0, loc + T[:, :3, 3], atol=1e-4)
    A = relion_euler_matrix(*(sub[c].to_numpy() for c in ("rlnAngleRot", "rlnAngleTilt",
                                                          "rlnAnglePsi")))
    np.testing.assert_allclose(A, T[:, :3, :3], atol=1e-5)
    # a tomograms.star with the sizes, then back into copick under another session
    import pandas as pd
    tomos = pd.DataFrame([{"rlnTomoName": r, "rlnTomoSizeX": copick_helpers.SHAPE[2],
                           "rlnTomoSizeY": copick_helpers.SHAPE[1],
                           "rlnTomoSizeZ": copick_helpers.SHAPE[0],
                           "rlnTomoTiltSeriesPixelSize": 10.0, "rlnVoltage": 300,
                           "rlnSphericalAberration": 2.7, "rlnAmplitudeContrast": 0.1,
                           "rlnTomoHand": -1} for r in ("TS_01", "TS_02")])
    starfile.write({"global": tomos}, tmp_path / "tomograms.star")
    assert main(["copick-export", "--particles", str(out / "particles.star"), "--tomograms",
                 str(tmp_path / "tomograms.star"), "--pixel-size", "10", "--config", cfg,
                 "--object", "ribosome", "--user", "cryoprocs", "--session", "2"]) == 0
    root = copick.from_file(cfg)
    for name, (loc, T, _, _) in truth.items():
        p = root.get_run(name).get_picks(object_name="ribosome", user_id="cryoprocs",
                                         session_id="2")
        assert len(p) == 1
        pts, tr = p[0].numpy()
        np.testing.assert_allclose(pts + tr[:, :3, 3], loc + T[:, :3, 3], atol=1e-4)
        np.testing.assert_allclose(tr[:, :3, :3], T[:, :3, :3], atol=1e-5)
    # again: refused without --overwrite, nothing changed
    before = open(root.get_run("TS_01").get_picks(user_id="cryoprocs")[0].path).read()
    assert main(["copick-export", "--particles", str(out / "particles.star"), "--tomograms",
                 str(tmp_path / "tomograms.star"), "--pixel-size", "10", "--config", cfg,
                 "--object", "ribosome", "--user", "cryoprocs", "--session", "2"]) == 2
    assert "already has picks" in capsys.readouterr().err
    assert open(root.get_run("TS_01").get_picks(user_id="cryoprocs")[0].path).read() == before


def test_bad_copick_object_nothing_written(tmp_path, capsys):
    cfg, _ = copick_helpers.make_project(str(tmp_path / "cp"), runs=("TS_01",), n_picks=2)
    out = tmp_path / "imp"
    assert main(["copick-import", "--config", cfg, "--voxel-spacing", "10", "--objects",
                 "proteasome", "--output-dir", str(out)]) == 2
    err = capsys.readouterr().err
    assert "copick object(s) proteasome do not exist" in err and "ribosome" in err
    assert not os.path.exists(out / "particles.star")
    # export of a missing object: nothing written in the project
    import pandas as pd
    starfile.write({"particles": pd.DataFrame([{"rlnTomoName": "TS_01", "rlnCoordinateX": 1.0,
                                                 "rlnCoordinateY": 2.0, "rlnCoordinateZ": 3.0}])},
                   tmp_path / "p.star")
    picks_dir = os.path.join(str(tmp_path / "cp"), "overlay", "ExperimentRuns", "TS_01", "Picks")
    before = sorted(os.listdir(picks_dir))
    assert main(["copick-export", "--particles", str(tmp_path / "p.star"), "--pixel-size",
                 "10", "--config", cfg, "--object", "proteasome"]) == 2
    assert "copick object(s) proteasome do not exist" in capsys.readouterr().err
    assert sorted(os.listdir(picks_dir)) == before
    # a run that does not exist: refused (nothing written) unless --create-runs
    starfile.write({"particles": pd.DataFrame([{"rlnTomoName": "TS_09", "rlnCoordinateX": 1.0,
                                                 "rlnCoordinateY": 2.0, "rlnCoordinateZ": 3.0}])},
                   tmp_path / "p9.star")
    assert main(["copick-export", "--particles", str(tmp_path / "p9.star"), "--pixel-size",
                 "10", "--config", cfg, "--object", "ribosome"]) == 2
    assert "copick run TS_09 does not exist" in capsys.readouterr().err
    assert not os.path.exists(os.path.join(str(tmp_path / "cp"), "overlay", "ExperimentRuns",
                                           "TS_09"))
