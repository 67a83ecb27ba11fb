"""MaskedTomogramNoiseFill kernel: exact distances, parity with TomoPANDA's script, the
quality bar on the real tomograms, determinism, options and errors."""
import math

import mrcfile
import numpy as np
import pytest
from scipy import ndimage as ndi

from cryoprocs.kernels import noisefill
from cryoprocs.tests import shared_data

REAL_CASES = [
    ("hiv_vlp/hiv_ts01_tomo_40A.mrc", "hiv_vlp/hiv_particle_shell_mask_r3.mrc"),
    ("cylindra/13pf_MT.mrc", "cylindra/13pf_MT_tube_mask_r16.mrc"),
    ("cylindra/14pf_MT.mrc", "cylindra/14pf_MT_tube_mask_r16.mrc"),
]


def script_restatement(tomo, mask, expand_pixels=5, gaussian_sigma=1.0, fast=False,
                       smooth_iterations=1, noise_std=0.1, background_value=0.0, seed=42):
    """TomoPANDA extract_masked_tomogram.py (8852acc), re-stated step by step from
    docs/noise-fill.md on whole arrays, as the script runs them."""
    m = mask.astype(np.float32)
    if mask.max() > 1.0:
        m = m / 255.0
    b = m > 0.5
    if fast or expand_pixels > 10:
        e = (ndi.distance_transform_edt(~b) <= expand_pixels).astype(np.float32)
    else:
        s = 2 * expand_pixels + 1
        e = ndi.binary_dilation(b, structure=np.ones((s, s, s), np.uint8)).astype(np.float32)
    if gaussian_sigma > 0:
        e = (ndi.gaussian_filter(e, sigma=gaussian_sigma) > 0.5).astype(np.float32)
    if smooth_iterations > 0:
        sm = e.copy()
        for _ in range(smooth_iterations):
            sm = ndi.binary_opening(sm, structure=np.ones((3, 3, 3)))
            sm = ndi.binary_closing(sm, structure=np.ones((3, 3, 3)))
        e = sm.astype(np.float32)
    state = np.random.get_state()
    try:
        np.random.seed(seed)
        std = np.std(tomo)
        noise = np.random.normal(background_value, noise_std * std, tomo.shape).astype(tomo.dtype)
    finally:
        np.random.set_state(state)
    return tomo * e + noise * (1.0 - e), e


def _blob_case(shape=(36, 44, 52), seed=3, dtype=np.float32, touching=True):
    rng = np.random.default_rng(seed)
    tomo = (rng.standard_normal(shape) * 0.07 + 0.3).astype(dtype) if dtype == np.float32 \
        else rng.integers(-200, 200, shape).astype(dtype)
    zz, yy, xx = np.indices(shape)
    mask = ((zz - 14) ** 2 / 64 + (yy - 20) ** 2 / 100 + (xx - 22) ** 2 / 144) <= 1
    mask |= (zz == 30) & (yy > 5) & (yy < 12)          # a thin sheet, open/close removes it
    mask |= (rng.random(shape) < 0.002)                 # specks
    if touching:
        mask[:, :3, 40:46] = True                       # touches the y = 0 face
    return tomo, mask.astype(np.int8)


def _real(case):
    t, m = case
    return (mrcfile.read(shared_data("real", t)).astype(np.float32),
            mrcfile.read(shared_data("real", m)))


# ------------------------------------------------------------------ exact distances
def test_truncated_sq_edt_is_exact():
    rng = np.random.default_rng(7)
    for trial in range(5):
        shape = tuple(int(v) for v in rng.integers(6, 30, 3))
        seg = rng.random(shape) < 0.01
        seg[tuple(int(rng.integers(0, s)) for s in shape)] = True
        R = int(rng.integers(0, 13))
        ref = np.rint(ndi.distance_transform_edt(~seg) ** 2)
        want = np.where(ref <= R * R, ref, (R + 1) ** 2)
        got = noisefill.truncated_sq_edt(seg, R, chunk_voxels=700, threads=2)
        assert got.dtype == np.uint16
        np.testing.assert_array_equal(got, want)


def test_truncated_sq_edt_empty_and_bad_radius():
    seg = np.zeros((4, 5, 6), bool)
    assert (noisefill.truncated_sq_edt(seg, 3) == 16).all()
    with pytest.raises(noisefill.NoiseFillError, match="0..180"):
        noisefill.truncated_sq_edt(seg, 500)


def test_expansion_is_the_euclidean_ball_and_edge_is_cosine():
    tomo, mask = _blob_case()
    d = ndi.distance_transform_edt(~(mask > 0.5))
    for N, W in ((0, 0), (3, 0), (7, 2.5), (15, 4)):
        p = noisefill.NoiseFillParams(expansion=N, soft_edge=W, noise_stats="global")
        out, rep, w = noisefill.noise_fill_array(tomo, mask, p, weight=True)
        np.testing.assert_array_equal(w == 1, d <= N)            # the ball, not a cube
        assert rep["expanded_voxels"] == int((d <= N).sum())
        want = np.where(d <= N, 1.0, 0.0)
        if W:
            ramp = (d > N) & (d < N + W)
            want[ramp] = 0.5 * (1 + np.cos(np.pi * (d[ramp] - N) / W))
        np.testing.assert_allclose(w, want, atol=2e-6)
        inside = w == 1
        np.testing.assert_array_equal(out[inside], tomo[inside])   # kept voxels untouched
        edge = (w > 0) & (w < 1)
        assert rep["edge_voxels"] == int(edge.sum())


def test_gaussian_rule_shift_and_derived_threshold():
    assert noisefill.gaussian_expansion_distance(2.0, 0.5) == 0.0
    assert noisefill.gaussian_expansion_distance(2.0, 0.1587) == pytest.approx(2.0, abs=0.01)
    assert noisefill.gaussian_expansion_distance(2.0, 0.02275) == pytest.approx(4.0, abs=0.01)
    t = noisefill.gaussian_threshold_for_distance(3.0, 2.0)
    assert noisefill.gaussian_expansion_distance(2.0, t) == pytest.approx(3.0)
    # a flat boundary (half space) moves by the wanted distance; t = 0.5 does not move it
    shape = (30, 30, 30)
    tomo = np.zeros(shape, np.float32)
    mask = np.zeros(shape, np.int8)
    mask[:, :, :10] = 1
    for N, thr, want in ((3, None, 13), (0, 0.5, 10)):
        p = noisefill.NoiseFillParams(expansion=N, expansion_mode="gaussian", sigma=2.0,
                                      gaussian_threshold=thr, soft_edge=0)
        _, rep, w = noisefill.noise_fill_array(tomo, mask, p, weight=True)
        assert (w[:, :, :want] == 1).all() and (w[:, :, want:] == 0).all()
    with pytest.raises(noisefill.NoiseFillError, match="sigma"):
        noisefill.NoiseFillParams(expansion=10, expansion_mode="gaussian", sigma=2.0).resolved()


# ------------------------------------------------------------------ parity with the script
PARITY_FLAGS = [
    {},                                                        # the script's defaults
    {"expand_pixels": 3, "gaussian_sigma": 0, "smooth_iterations": 0},
    {"expand_pixels": 12},                                     # > 10: distance transform
    {"expand_pixels": 4, "fast": True, "smooth_iterations": 2, "gaussian_sigma": 1.7},
    {"expand_pixels": 0, "noise_std": 0.5, "background_value": 0.2, "seed": 7},
]


@pytest.mark.parametrize("flags", PARITY_FLAGS, ids=lambda f: ",".join(map(str, f.items())))
def test_parity_equals_script_restatement(flags):
    tomo, mask = _blob_case()
    want, e = script_restatement(tomo, mask, **flags)
    p = noisefill.NoiseFillParams(parity=True, expansion=flags.get("expand_pixels"),
                                  boundary_sigma=flags.get("gaussian_sigma"),
                                  fast=flags.get("fast", False),
                                  smooth_iterations=flags.get("smooth_iterations"),
                                  noise_level=flags.get("noise_std"),
                                  background_value=flags.get("background_value", 0.0),
                                  seed=flags.get("seed", 42))
    for slab, threads in ((5, 1), (36, 2)):
        out, rep, w = noisefill.noise_fill_array(tomo, mask, p, weight=True, slab=slab,
                                                 threads=threads)
        np.testing.assert_array_equal(w, e)
        np.testing.assert_array_equal(out, want.astype(np.float32))
        assert rep["mask_voxels"] == int((mask > 0.5).sum())
        assert rep["expanded_voxels"] == int(e.sum())


def test_parity_0_255_label_and_integer_tomogram():
    tomo, mask = _blob_case(dtype=np.int16)
    m255 = (mask.astype(np.uint8) * 255)
    m255[0, 0, 0] = 100                     # below 127.5: outside for the script
    want, e = script_restatement(tomo, m255)
    out, rep = noisefill.noise_fill_array(tomo, m255, noisefill.NoiseFillParams(parity=True))
    np.testing.assert_array_equal(out, want.astype(np.float32))
    assert rep["binarisation"].startswith("script: (mask / 255)")
    # the script loses labels 1..127 of a label map; cryoprocs keeps every label > 0.5
    labels = mask.astype(np.int16) * 3
    labels[labels > 0] += np.arange(int((labels > 0).sum())) % 120
    labels[0, 0, 0] = 200
    _, rep_s = noisefill.noise_fill_array(tomo.astype(np.float32), labels,
                                          noisefill.NoiseFillParams(parity=True))
    _, rep_c = noisefill.noise_fill_array(tomo.astype(np.float32), labels,
                                          noisefill.NoiseFillParams(expansion=1,
                                                                    noise_stats="global"))
    assert rep_s["mask_voxels"] == 1
    assert rep_c["mask_voxels"] == int((labels > 0).sum())


def test_parity_on_real_hiv_tomogram():
    tomo, mask = _real(REAL_CASES[0])
    for flags in ({}, {"expand_pixels": 30}):       # the default and the script's example
        want, _ = script_restatement(tomo, mask, **flags)
        out, _ = noisefill.noise_fill_array(tomo, mask, noisefill.NoiseFillParams(
            parity=True, expansion=flags.get("expand_pixels")), threads=2)
        np.testing.assert_array_equal(out, want)


# ------------------------------------------------------------------ the quality bar
def _shells_and_fill(tomo, out, mask, p):
    p = p.resolved()
    d = ndi.distance_transform_edt(~(mask > p.threshold))
    N, W = p.expansion, p.soft_edge
    filled = d >= N + W
    t, o = tomo.astype(np.float64), out.astype(np.float64)
    bg_mean, bg_std = t[filled].mean(), t[filled].std()
    inner = o[(d > N - 2) & (d <= N)].mean()
    outer = o[(d > N) & (d <= N + 2)].mean()
    return (o[filled].mean() - bg_mean) / bg_std, o[filled].std() / bg_std, \
        (outer - inner) / bg_std


@pytest.mark.parametrize("case", REAL_CASES, ids=lambda c: c[0].split("/")[1])
def test_quality_bar_on_real_tomograms(case):
    tomo, mask = _real(case)
    p = noisefill.NoiseFillParams()                   # default settings
    out, rep = noisefill.noise_fill_array(tomo, mask, p, threads=2)
    dmean, std_ratio, step = _shells_and_fill(tomo, out, mask, p)
    # filled region: mean and std within 5 % of the background they replace
    assert abs(dmean) < 0.05
    assert abs(std_ratio - 1) < 0.05
    # no step: 2-px shells outside/inside the expanded mask differ by < 0.1 background std
    assert abs(step) < 0.1
    assert rep["filled_mean"] == pytest.approx(rep["replaced_mean"],
                                               abs=0.05 * rep["replaced_std"])
    # the script's fill does leave a step (mean 0 against data mean 105 on the microtubules)
    if "MT" in case[0]:
        outp, _ = noisefill.noise_fill_array(tomo, mask, noisefill.NoiseFillParams(parity=True))
        assert _shells_and_fill(tomo, outp, mask, p)[0] < -4


def test_noise_statistics_rules_on_real_tomogram():
    tomo, mask = _real(REAL_CASES[1])
    _, out = noisefill.noise_fill_array(tomo, mask, noisefill.NoiseFillParams())
    _, rob = noisefill.noise_fill_array(tomo, mask, noisefill.NoiseFillParams(noise_stats="robust"))
    _, glo = noisefill.noise_fill_array(tomo, mask, noisefill.NoiseFillParams(noise_stats="global"))
    _, par = noisefill.noise_fill_array(tomo, mask, noisefill.NoiseFillParams(
        noise_stats="parity", background_value=3.0, noise_level=0.1))
    d = ndi.distance_transform_edt(~(mask > 0.5))
    bg = tomo[d >= 14].astype(np.float64)
    assert out["noise_mean"] == pytest.approx(bg.mean(), rel=1e-6)
    assert out["noise_std"] == pytest.approx(bg.std(), rel=1e-6)
    med = np.median(bg)
    assert rob["noise_mean"] == pytest.approx(med)
    assert rob["noise_std"] == pytest.approx(1.4826 * np.median(np.abs(bg - med)))
    assert glo["noise_mean"] == pytest.approx(tomo.astype(np.float64).mean(), rel=1e-6)
    assert par["noise_mean"] == 3.0
    assert par["noise_std"] == pytest.approx(0.1 * tomo.astype(np.float64).std(), rel=1e-6)


def _lag1_y(x, region):
    """Lag-1 autocorrelation along y over the voxel pairs inside ``region``."""
    x = x.astype(np.float64)
    v = x - x[region].mean()
    pairs = region[:, 1:] & region[:, :-1]
    return float((v[:, 1:] * v[:, :-1])[pairs].mean() / (v[region] ** 2).mean())


def test_spectral_noise_matches_background_texture():
    tomo, mask = _real(REAL_CASES[0])
    p = noisefill.NoiseFillParams(spectral=True)
    out, rep = noisefill.noise_fill_array(tomo, mask, p, slab=13, threads=2)
    white, _ = noisefill.noise_fill_array(tomo, mask, noisefill.NoiseFillParams())
    assert rep["spectral_patches"] > 4
    filled = ndi.distance_transform_edt(~(mask > 0.5)) >= 14
    target = _lag1_y(tomo, filled)
    assert target > 0.15                                   # the background is not white
    assert abs(_lag1_y(out, filled) - target) < 0.1
    assert abs(_lag1_y(white, filled)) < 0.03
    assert out[filled].std() == pytest.approx(rep["noise_std"], rel=0.1)
    assert out[filled].mean() == pytest.approx(rep["noise_mean"], abs=0.1 * rep["noise_std"])
    # slab size and threads do not change the output
    again, _ = noisefill.noise_fill_array(tomo, mask, p, slab=40, threads=1)
    np.testing.assert_array_equal(out, again)


# ------------------------------------------------------------------ determinism, options
def test_output_independent_of_slab_and_threads():
    tomo, mask = _blob_case()
    p = noisefill.NoiseFillParams(expansion=4, soft_edge=3, seed=5)
    ref, _ = noisefill.noise_fill_array(tomo, mask, p, slab=36, threads=1)
    for slab, threads in ((1, 2), (7, 3)):
        out, _ = noisefill.noise_fill_array(tomo, mask, p, slab=slab, threads=threads)
        np.testing.assert_array_equal(out, ref)
    other, _ = noisefill.noise_fill_array(tomo, mask,
                                          noisefill.NoiseFillParams(expansion=4, soft_edge=3,
                                                                    seed=6))
    assert not np.array_equal(other, ref)


def test_invert_fills_the_expanded_mask():
    tomo, mask = _blob_case()
    p = noisefill.NoiseFillParams(expansion=2, soft_edge=0, invert=True)
    out, rep, w = noisefill.noise_fill_array(tomo, mask, p, weight=True)
    d = ndi.distance_transform_edt(~(mask > 0.5))
    np.testing.assert_array_equal(w == 0, d <= 2)
    np.testing.assert_array_equal(out[d > 2], tomo[d > 2])
    # statistics come from outside the expanded mask (here: the kept voxels)
    assert rep["noise_mean"] == pytest.approx(tomo[d > 2].astype(np.float64).mean(), rel=1e-5)


def test_smoothing_removes_specks_before_expansion():
    tomo, mask = _blob_case(touching=False)
    _, rep0 = noisefill.noise_fill_array(tomo, mask, noisefill.NoiseFillParams(expansion=1))
    _, rep1 = noisefill.noise_fill_array(tomo, mask,
                                         noisefill.NoiseFillParams(expansion=1,
                                                                   smooth_iterations=1))
    want = noisefill.open_close(mask > 0.5, 1)
    assert rep1["smoothed_voxels"] == int(want.sum()) < rep0["mask_voxels"]
    assert rep1["expanded_voxels"] < rep0["expanded_voxels"]


def test_errors_name_the_values():
    tomo, mask = _blob_case()
    with pytest.raises(noisefill.NoiseFillError, match=r"mask > 5.*maximum 1"):
        noisefill.noise_fill_array(tomo, mask, noisefill.NoiseFillParams(threshold=5))
    with pytest.raises(noisefill.NoiseFillError, match="differs from the tomogram shape"):
        noisefill.noise_fill_array(tomo, mask[:, :, :-1], noisefill.NoiseFillParams())
    with pytest.raises(noisefill.NoiseFillError, match="outside the expanded mask"):
        noisefill.noise_fill_array(tomo, mask, noisefill.NoiseFillParams(expansion=60))
    with pytest.raises(noisefill.NoiseFillError, match="expansion must be >= 0"):
        noisefill.NoiseFillParams(expansion=-1).resolved()
    with pytest.raises(noisefill.NoiseFillError, match="noise statistics 'median'"):
        noisefill.NoiseFillParams(noise_stats="median").resolved()


def test_morphology_helpers_equal_scipy():
    rng = np.random.default_rng(11)
    m = rng.random((17, 19, 23)) < 0.4
    r = m.copy()
    for _ in range(2):
        r = ndi.binary_opening(r, np.ones((3, 3, 3)))
        r = ndi.binary_closing(r, np.ones((3, 3, 3)))
    np.testing.assert_array_equal(noisefill.open_close(m, 2), r)
    s = rng.random((17, 19, 23)) < 0.02
    np.testing.assert_array_equal(noisefill.cube_dilate(s, 3),
                                  ndi.binary_dilation(s, np.ones((7,) * 3)))
    np.testing.assert_array_equal(noisefill.blur_threshold(m, 1.4, 0.3, slab=4),
                                  ndi.gaussian_filter(m.astype(np.float32), 1.4) > 0.3)


def test_sample_strides_bound():
    s = noisefill.sample_strides((300, 1024, 1024))
    assert math.prod(-(-n // k) for n, k in zip((300, 1024, 1024), s)) <= noisefill.SAMPLE_LIMIT
    assert noisefill.sample_strides((10, 20, 30)) == (1, 1, 1)
