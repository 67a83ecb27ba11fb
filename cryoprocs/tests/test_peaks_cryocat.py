"""cryoCAT-compatible mode reproduces cryoCAT 0.7.1 ``scores_extract_particles`` exactly on every
reference run of the reference data ``cryocat_peaks`` (same picks, order, scores, angles,
threshold and candidate count): real and synthetic maps, GAPSTOP and STOPGAP conventions with
the full pack, the real maps with the repository subset; and the EM motive list we write
equals cryoCAT's."""
import glob
import json
import os

import numpy as np
import pandas as pd
import pytest

from cryoprocs.convert import motl
from cryoprocs.pipelines import peaks
from cryoprocs.tests import shared_data, shared_data_root

pytestmark = pytest.mark.shared_data


def _runs():
    root = shared_data_root()
    if root is None:
        return []
    return sorted(glob.glob(os.path.join(root, "cryocat_peaks", "*", "cryocat_out",
                                         "*_summary.json")))


def _case(summary_path):
    case = os.path.dirname(os.path.dirname(summary_path))
    S = json.load(open(summary_path))
    kw = S["kwargs"]

    def path(p):
        return os.path.normpath(os.path.join(case, p)) if p else None
    if kw["scores_threshold"] is not None:
        mode = dict(threshold_mode="direct", threshold=kw["scores_threshold"])
    elif kw["sigma_threshold"] is not None:
        mode = dict(threshold_mode="sigma", sigma=kw["sigma_threshold"])
    else:
        mode = dict(threshold_mode="triangle")
    assert kw["symmetry"] == "c1" and kw["cluster_size"] is None
    opts = peaks.PickOptions(min_distance=kw["particle_diameter"], max_picks=kw["n_particles"],
                             angles_order=kw["angles_order"],
                             angles_numbering=kw["angles_numbering"], compatible=True, **mode)
    return S, opts, path(kw["scores_map"]), path(kw["angles_map"]), path(kw["angles_list"]), \
        path(kw["tomo_mask"])


@pytest.mark.parametrize("summary", _runs(), ids=lambda p: "/".join(p.split(os.sep)[-3::2]))
def test_compatible_mode_reproduces_cryocat(summary):
    S, opts, scores, angles, anglist, mask = _case(summary)
    res, info = peaks.pick_volumes(scores, angles, anglist, opts, mask_path=mask)
    ref = pd.read_csv(summary.replace("_summary.json", ".csv"))
    assert np.float32(res.threshold) == np.float32(S["threshold_used"])
    assert res.n_candidates == S["n_candidate_voxels"]
    assert res.n_picks == S["n_picks"] == len(ref)
    assert np.array_equal(res.xyz + 1, ref[["x", "y", "z"]].values)          # 1-based, order
    assert np.array_equal(res.xyz, ref[["x0", "y0", "z0"]].values)
    assert np.array_equal(res.scores, ref["score"].values.astype(np.float32))
    assert np.array_equal(res.angle_map_values, ref["angle_map_value"].values)
    assert np.allclose(res.angles, ref[["phi", "theta", "psi"]].values, rtol=0, atol=1e-9)


def test_em_motive_list_matches_cryocat_file(tmp_path):
    base = shared_data("cryocat_peaks", "syn_small")
    ref = motl.read_em_motl(os.path.join(base, "cryocat_out", "sigma3_emmotl.em"))
    res, _ = peaks.pick_volumes(os.path.join(base, "scores.mrc"), os.path.join(base, "angles.mrc"),
                                os.path.join(base, "angles.csv"),
                                peaks.PickOptions(min_distance=20.0, threshold_mode="sigma",
                                                  sigma=3.0, compatible=True))
    out = str(tmp_path / "picks.em")
    peaks.export_picks(out, peaks.TomogramPicks.from_result(res))
    ours = motl.read_em_motl(out)
    assert ours.shape == ref.shape == (74, 20)
    assert np.array_equal(ours.values.astype(np.float32), ref.values.astype(np.float32))
    # EM header and layout: 1 x N x 20 float32, little-endian
    raw = open(out, "rb").read()
    assert raw[0] == 6 and raw[3] == 5
    assert np.frombuffer(raw[4:16], "<i4").tolist() == [20, 74, 1]
    assert len(raw) == 512 + 74 * 20 * 4


def test_real_stopgap_maps_in_em_format_give_expected_peak():
    """The real 1-based / zzx cryoCAT tutorial maps, read from the original EM files: rank 1 is
    cryoCAT's expected peak (template_list.csv, 0-based (25, 25, 20) = 0.14795902)."""
    base = shared_data("cryocat_peaks", "real")
    opts = peaks.PickOptions(min_distance=10.0, threshold_mode="sigma", sigma=3.0,
                             angles_order="zzx", angles_numbering=1, compatible=True)
    res, _ = peaks.pick_volumes(shared_data("cryocat_peaks", "real", "id_2_scores.em"),
                                shared_data("cryocat_peaks", "real", "id_2_angles.em"),
                                os.path.join(base, "AGL_anglist_20_deg_c1.csv"), opts)
    ref = pd.read_csv(os.path.join(base, "cryocat_out", "id_2_sigma3.csv"))
    assert res.xyz[0].tolist() == [25, 25, 20]
    assert res.scores[0] == np.float32(0.14795902)
    assert np.array_equal(res.xyz + 1, ref[["x", "y", "z"]].values)
