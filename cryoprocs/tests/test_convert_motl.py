"""EM files, EM motive lists, STOPGAP STAR and RELION 5 particle STAR: round trips and the
conventions (1-based motive lists, centred Å coordinates, zxz -> RELION angles)."""
import numpy as np
import pytest
from scipy.spatial.transform import Rotation

from cryoprocs.convert import motl as motl_io
from cryoprocs.convert.em import EmFormatError, em_info, mmap_em, read_em, write_em


def _picks(n=7, seed=0):
    rng = np.random.default_rng(seed)
    xyz0 = rng.integers(0, 100, size=(n, 3))
    scores = rng.random(n).astype(np.float32)
    angles = np.column_stack([rng.uniform(0, 360, n), rng.uniform(0, 180, n),
                              rng.uniform(-180, 180, n)])
    return xyz0, scores, angles


def test_em_volume_round_trip_and_layout(tmp_path):
    a = np.arange(2 * 3 * 4, dtype=np.float32).reshape(2, 3, 4)       # [z, y, x]
    p = str(tmp_path / "v.em")
    write_em(p, a)
    assert em_info(p)[0] == (2, 3, 4)
    assert np.array_equal(read_em(p), a)
    assert mmap_em(p)[1, 2, 3] == a[1, 2, 3]
    raw = open(p, "rb").read()
    assert np.frombuffer(raw[4:16], "<i4").tolist() == [4, 3, 2]           # nx, ny, nz
    assert np.frombuffer(raw[512:], "<f4")[1] == a[0, 0, 1]                # x fastest
    open(str(tmp_path / "bad.em"), "wb").write(b"\x06\x00\x00\x05" + b"\x00" * 20)
    with pytest.raises(EmFormatError):
        em_info(str(tmp_path / "bad.em"))


def test_em_motl_round_trip_one_based(tmp_path):
    xyz0, scores, angles = _picks()
    motl = motl_io.motl_from_picks(xyz0, scores, angles, tomo_id=3)
    p = str(tmp_path / "m.em")
    motl_io.write_em_motl(p, motl)
    back = motl_io.read_em_motl(p)
    assert read_em(p).shape == (1, 7, 20)
    assert np.array_equal(back[["x", "y", "z"]].values, xyz0 + 1)
    assert np.array_equal(back["score"].values.astype(np.float32), scores)
    assert np.allclose(back[["phi", "theta", "psi"]].values, angles, atol=1e-4)
    assert back["subtomo_id"].tolist() == list(range(1, 8))
    assert set(back["tomo_id"]) == {3} and set(back["class"]) == {1}


def test_stopgap_star_round_trip(tmp_path):
    xyz0, scores, angles = _picks()
    motl = motl_io.motl_from_picks(xyz0, scores, angles, tomo_id=2)
    p = str(tmp_path / "sg.star")
    motl_io.write_stopgap_star(p, motl)
    text = open(p).read()
    assert "data_stopgap_motivelist" in text and "_halfset" in text
    sg = motl_io.read_stopgap_star(p)
    assert list(sg.columns) == list(motl_io.STOPGAP_FIELDS)
    assert np.array_equal(sg[["orig_x", "orig_y", "orig_z"]].values, xyz0 + 1)
    assert np.allclose(sg["score"], scores, rtol=1e-7)
    # STOPGAP stores phi, psi, the
    assert np.allclose(sg[["phi", "the", "psi"]].values, angles, atol=1e-4)
    assert sg["halfset"].tolist() == list("ABABABA")
    assert sg["tomo_num"].tolist() == [2] * 7


def test_relion5_particles_round_trip_and_conventions(tmp_path):
    xyz0, scores, angles = _picks()
    shape_xyz = (100, 90, 40)
    t = motl_io.relion5_from_picks(xyz0, angles, "TS_01", shape_xyz, 8.5, scores=scores)
    p = str(tmp_path / "particles.star")
    motl_io.write_relion5_particles(p, t)
    back = motl_io.read_relion5_particles(p)
    cen = back[["rlnCenteredCoordinateXAngst", "rlnCenteredCoordinateYAngst",
                "rlnCenteredCoordinateZAngst"]].values
    # RELION 5: p_px = c / ps + size / 2 is the 0-based voxel
    assert np.allclose(cen / 8.5 + np.array(shape_xyz) / 2.0, xyz0, atol=1e-6)
    assert back["rlnTomoName"].tolist() == ["TS_01"] * 7
    assert back["rlnTomoParticleName"].tolist()[0] == "TS_01/1"
    # rot = 90 - phi, tilt = theta, psi = -90 - psi and R_ZYZ(rot, tilt, psi) = R_zxz^-1
    r_zyz = Rotation.from_euler("ZYZ", back[["rlnAngleRot", "rlnAngleTilt", "rlnAnglePsi"]]
                                .values, degrees=True)
    r_zxz = Rotation.from_euler("zxz", angles, degrees=True)
    assert np.degrees((r_zyz * r_zxz).magnitude()).max() < 1e-4
    r_back = Rotation.from_euler("zxz", back[["phi", "theta", "psi"]].values, degrees=True)
    assert np.degrees((r_back.inv() * r_zxz).magnitude()).max() < 1e-4
    with pytest.raises(motl_io.MotlFormatError):
        motl_io.relion5_from_picks(xyz0, angles, "TS_01", shape_xyz, None)


def test_picks_csv_columns(tmp_path):
    xyz0, scores, angles = _picks()
    p = str(tmp_path / "p.csv")
    motl_io.write_picks_csv(p, xyz0, scores, angles)
    assert open(p).readline().strip() == "x,y,z,score,phi,theta,psi"
    df = motl_io.read_picks_csv(p)
    assert np.array_equal(df[["x", "y", "z"]].values, xyz0)
    assert np.array_equal(df["score"].values.astype(np.float32), scores)
    assert np.allclose(df[["phi", "theta", "psi"]].values, angles, atol=1e-7)
