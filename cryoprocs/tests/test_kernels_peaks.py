"""Peak-picking kernels on arrays: exact reductions, thresholds, candidates, order, greedy
exclusion, angles and filters, each against an independent (slow) reference."""
import math

import numpy as np
import pytest
from scipy.spatial.transform import Rotation

from cryoprocs.kernels import peaks as peaks_kernels


# ----------------------------------------------------------------------------- references
def pairwise_sum_ref(a):
    """NumPy 2's pairwise sum of a contiguous float32 array, by recursion (leaves of at most
    8192 values are summed by NumPy, which uses the same recursion in every version)."""
    n = a.size
    if n <= 8192:
        return a.sum()
    n2 = n // 2
    n2 -= n2 % 8
    return np.float32(pairwise_sum_ref(a[:n2]) + pairwise_sum_ref(a[n2:]))


def greedy_ref(coords, d):
    """cryoCAT's rule, sequentially: keep a point iff no kept point lies within <= d."""
    coords = np.asarray(coords, dtype=np.int64)
    kept = np.zeros(len(coords), bool)
    d2 = d * d
    for i in range(len(coords)):
        k = coords[kept]
        if k.size == 0 or (((k - coords[i]) ** 2).sum(1) > d2).all():
            kept[i] = True
    return np.flatnonzero(kept)


def synthetic_map(shape=(40, 64, 72), n=12, seed=0, noise=0.02, quantize=None):
    rng = np.random.default_rng(seed)
    from scipy import ndimage
    bg = ndimage.gaussian_filter(rng.standard_normal(shape).astype(np.float32), 1.2)
    bg *= np.float32(noise / bg.std())
    bg += np.float32(0.08)
    pos = np.stack([rng.integers(6, s - 6, size=n) for s in shape], axis=1)
    g = np.arange(-5, 6)
    zz, yy, xx = np.meshgrid(g, g, g, indexing="ij")
    ker = np.exp(-(xx ** 2 + yy ** 2 + zz ** 2) / (2 * 1.5 ** 2)).astype(np.float32)
    for (z, y, x), h in zip(pos, rng.uniform(0.1, 0.3, size=n)):
        bg[z - 5:z + 6, y - 5:y + 6, x - 5:x + 6] += np.float32(h) * ker
    if quantize:
        bg = (np.round(bg / quantize) * quantize).astype(np.float32)
    return bg, pos


# ----------------------------------------------------------------------------- reductions
@pytest.mark.parametrize("n", [1, 7, 100, 8192, 8193, 20011, 100003, 1 << 20, 3000017])
def test_numpy_sum_is_numpy2_pairwise_for_any_chunking(n):
    a = np.random.default_rng(n).standard_normal(n).astype(np.float32) * 0.02 + 0.08
    ref = pairwise_sum_ref(a)
    for chunk in ((5,) if n < 30000 else ()) + (4096, 65536, 1 << 20):
        s = peaks_kernels.NumpySum(n)
        for i in range(0, n, chunk):
            s.add(a[i:i + chunk])
        assert s.result() == ref


def test_numpy_sum_rejects_wrong_counts():
    s = peaks_kernels.NumpySum(10)
    s.add(np.ones(4, np.float32))
    with pytest.raises(ValueError):
        s.result()
    with pytest.raises(ValueError):
        s.add(np.ones(7, np.float32))


def test_map_statistics_is_numpy2_mean_and_std():
    m, _ = synthetic_map((33, 47, 61))
    st = peaks_kernels.map_statistics(m)
    total = pairwise_sum_ref(m.ravel())
    mean = np.float32(np.float64(total) / m.size)
    dev = (m - mean).ravel()
    var = np.float32(np.float64(pairwise_sum_ref(dev * dev)) / (m.size - 1))
    assert st.mean == mean and st.std == np.float32(np.sqrt(var))
    assert abs(float(st.std) - m.astype(np.float64).std(ddof=1)) < 1e-6


def test_float32_sort_key_orders_like_values():
    v = np.array([-np.inf, -3.5, -1e-30, -0.0, 0.0, 1e-40, 1e-30, 0.5, 7.0, np.inf], np.float32)
    k = peaks_kernels.float32_sort_key(v)
    assert np.all(np.diff(k.astype(np.int64)) > 0)
    assert np.array_equal(peaks_kernels.reductions.key_to_float32(k).view(np.uint32),
                          v.view(np.uint32))


# ----------------------------------------------------------------------------- thresholds
def test_false_positive_k_matches_rickgauer_levels():
    # k = sqrt(2) erfcinv(2 nFP / Nvox): 5.36 for 1 false positive in 24 M voxels, 5.80 in 300 M
    assert peaks_kernels.false_positive_k(1, 24e6) == pytest.approx(5.3598, abs=1e-3)
    assert peaks_kernels.false_positive_k(1, 3e8) == pytest.approx(5.7991, abs=1e-3)
    k = peaks_kernels.false_positive_k(10, 1e6)
    assert peaks_kernels.expected_false_positives(k, 0.0, 1.0, 1e6) == pytest.approx(10, rel=1e-9)
    with pytest.raises(peaks_kernels.PeakPickingError):
        peaks_kernels.false_positive_k(0, 100)


def test_sigma_and_direct_thresholds_are_float32():
    assert peaks_kernels.direct_threshold(0.2) == np.float32(0.2)
    t = peaks_kernels.sigma_threshold(np.float32(0.08), np.float32(0.02), 3.0)
    assert t.dtype == np.float32
    assert t == np.float32(np.float32(0.08) + np.float32(np.float32(3.0) * np.float32(0.02)))


@pytest.mark.parametrize("case", ["peaks", "quantized", "mostly_negative", "few_positive",
                                  "uniform"])
def test_triangle_linear_time_equals_full_sort(case):
    rng = np.random.default_rng(hash(case) % 1000)
    if case == "peaks":
        m, _ = synthetic_map(seed=3)
    elif case == "quantized":
        m, _ = synthetic_map(seed=4, quantize=1e-3)          # many ties
    elif case == "mostly_negative":
        m, _ = synthetic_map(seed=5)
        m -= np.float32(0.12)
    elif case == "few_positive":
        m = -np.abs(rng.standard_normal((20, 30, 40))).astype(np.float32)
        m.ravel()[rng.choice(m.size, 50, replace=False)] = rng.random(50).astype(np.float32)
    else:
        m = rng.random((25, 31, 37)).astype(np.float32)
    ref = peaks_kernels.triangle_threshold_sorted(np.sort(m, axis=None))
    assert peaks_kernels.triangle_threshold(m) == ref
    r = peaks_kernels.pick_peaks(m, None, None, 5.0, threshold_mode="triangle")
    assert r.threshold == ref
    assert r.n_candidates == int((m > ref).sum())


def test_triangle_flip_branch_and_errors():
    m = np.zeros((10, 10, 10), np.float32)
    m.ravel()[:600] = 1.0                       # most positive voxels hold the maximum
    m.ravel()[600:700] = np.linspace(0.1, 0.9, 100, dtype=np.float32)
    ref = peaks_kernels.triangle_threshold_sorted(np.sort(m, axis=None))
    assert peaks_kernels.triangle_threshold(m) == ref
    with pytest.raises(peaks_kernels.PeakPickingError, match="positive"):
        peaks_kernels.triangle_threshold(-np.ones((4, 4, 4), np.float32))
    with pytest.raises(peaks_kernels.PeakPickingError, match="maximum"):
        peaks_kernels.triangle_threshold(np.ones((4, 4, 4), np.float32))


@pytest.mark.parametrize("p", [0.0, 0.1, 50.0, 99.5, 99.99, 100.0])
def test_percentile_is_exact(p):
    m, _ = synthetic_map(seed=7, quantize=1e-4)
    m[0, 0, :5] = [-0.0, 0.0, -1.0, 2.0, 0.0]
    assert peaks_kernels.percentile_threshold(m, p) == np.percentile(m.astype(np.float64), p)


def test_float64_to_float32_floor_keeps_strict_comparisons():
    v = np.array([0.19999999, 0.2, 0.20000002], np.float32)
    for t in (0.2, float(np.float32(0.2)), 0.1999999999):
        t32 = peaks_kernels.float64_to_float32_floor(t)
        assert np.array_equal(v > t32, v.astype(np.float64) > t)


# ----------------------------------------------------------------------------- candidates
def test_candidates_strict_border_and_mask_modes():
    m = np.zeros((10, 12, 14), np.float32)
    m[5, 6, 7] = 1.0
    m[5, 6, 8] = 0.5                      # equal to the threshold: not a candidate
    m[0, 6, 7] = 2.0                      # on the border
    flat, vals = peaks_kernels.find_candidates(m, 0.5)
    assert sorted(vals.tolist()) == [1.0, 2.0]
    flat, vals = peaks_kernels.find_candidates(m, 0.5, border=1)
    assert vals.tolist() == [1.0]
    assert np.array_equal(peaks_kernels.unravel(flat, m.shape), [[5, 6, 7]])
    mask = np.ones_like(m, dtype=np.int8)
    mask[5] = 0
    _, vals = peaks_kernels.find_candidates(m, 0.5, mask=mask, mask_mode="inside")
    assert vals.tolist() == [2.0]
    _, vals = peaks_kernels.find_candidates(m, 0.5, mask=mask * 3, mask_mode="multiply")
    assert vals.tolist() == [6.0]


def test_compatible_order_is_cryocat_order():
    rng = np.random.default_rng(11)
    m = np.round(rng.random((9, 11, 13)) * 20).astype(np.float32) / 20   # heavy ties
    flat, vals = peaks_kernels.find_candidates(m, 0.5)
    order = peaks_kernels.order_candidates(flat, vals, m.shape, compatible=True)
    # cryoCAT: np.where on the transposed [x, y, z] map, argpartition, argsort
    mx = m.transpose(2, 1, 0)
    t_idx = np.where(mx > np.float32(0.5))
    v = mx[t_idx]
    k = len(v) - 1
    s_idx = np.argpartition(-v, k)[:k + 1]
    s_idx = s_idx[np.argsort(-v[s_idx])]
    ref_xyz = np.stack([t_idx[0][s_idx], t_idx[1][s_idx], t_idx[2][s_idx]], axis=1)
    got_xyz = peaks_kernels.unravel(flat[order], m.shape)[:, ::-1]
    assert np.array_equal(got_xyz, ref_xyz)
    # default order: descending score, then ascending flat index
    d = peaks_kernels.order_candidates(flat, vals, m.shape)
    assert np.array_equal(d, np.lexsort((np.arange(len(vals)), -vals)))


# ----------------------------------------------------------------------------- exclusion
@pytest.mark.parametrize("d", [1.0, 1.5, 3.0, 5.0, 7.5, 20.0])
def test_greedy_exclusion_equals_sequential_greedy(d):
    rng = np.random.default_rng(int(d * 10))
    shape = (30, 60, 70)
    # dense blobs (exercise the within-batch path) plus scattered points, exact ties at d
    blobs = np.concatenate([c + rng.integers(-3, 4, size=(300, 3))
                            for c in rng.integers(5, 25, size=(8, 3)) * [1, 2, 2]])
    scatter = np.stack([rng.integers(0, s, size=3000) for s in shape], axis=1)
    pts = np.unique(np.clip(np.concatenate([blobs, scatter]), 0, np.array(shape) - 1), axis=0)
    pts = pts[rng.permutation(len(pts))]
    ref = greedy_ref(pts, d)
    peaks, acc, stopped = peaks_kernels.greedy_exclusion(pts.astype(np.int32), d, shape, batch=256,
                                                         sub=64)
    assert np.array_equal(peaks, ref) and acc.all() and not stopped
    # early stop = prefix of the full result
    peaks5, _, stopped = peaks_kernels.greedy_exclusion(pts, d, shape, max_accept=5)
    assert np.array_equal(peaks5, ref[:5]) and stopped


def test_greedy_exclusion_rejected_peaks_still_exclude():
    pts = np.array([[0, 0, 0], [0, 0, 3], [0, 0, 6], [0, 0, 9]])
    # peak 0 rejected: it still removes point 1; 2 is a peak, removes 3
    peaks, acc, _ = peaks_kernels.greedy_exclusion(pts, 3.0, (1, 1, 10),
                                                   accept=lambda idx: idx != 0)
    assert peaks.tolist() == [0, 2] and acc.tolist() == [False, True]
    peaks, acc, _ = peaks_kernels.greedy_exclusion(pts, 3.0, (1, 1, 10), max_accept=1,
                                                   accept=lambda idx: idx != 0)
    assert peaks[acc].tolist() == [2]


def test_greedy_exclusion_kdtree_fallback_for_tiny_distance():
    rng = np.random.default_rng(2)
    shape = (200, 200, 200)                  # the one-peak-per-cell grid would be too large
    pts = np.unique(rng.integers(0, 200, size=(4000, 3)), axis=0)
    pts = pts[rng.permutation(len(pts))]
    peaks, _, _ = peaks_kernels.greedy_exclusion(pts, 1.0, shape)
    assert np.array_equal(peaks, greedy_ref(pts, 1.0))


def test_count_within_is_stopgap_cluster_size():
    rng = np.random.default_rng(4)
    cand = np.unique(rng.integers(0, 20, size=(500, 3)), axis=0)
    pts = cand[:10]
    got = peaks_kernels.count_within(pts, cand, 4.0)
    ref = [int((((cand - p) ** 2).sum(1) <= 16).sum()) for p in pts]
    assert got.tolist() == ref


# ----------------------------------------------------------------------------- angles
def test_load_angle_list_orders(tmp_path):
    rows = np.array([[10.0, 20.0, 30.0], [40.0, 50.0, 60.0]])
    f = tmp_path / "a.csv"
    np.savetxt(f, rows, delimiter=",", fmt="%.2f")
    assert np.array_equal(peaks_kernels.load_angle_list(str(f)), rows)
    assert np.array_equal(peaks_kernels.load_angle_list(str(f), "zzx"), rows[:, [0, 2, 1]])
    assert np.array_equal(peaks_kernels.load_angle_list(rows, "zzx"), rows[:, [0, 2, 1]])
    (tmp_path / "bad.csv").write_text("1,2\n3,4\n")
    with pytest.raises(peaks_kernels.PeakPickingError, match="3 columns"):
        peaks_kernels.load_angle_list(str(tmp_path / "bad.csv"))


def test_angle_rows_validation_names_numbering():
    amap = np.zeros((4, 4, 4), np.float32)
    amap[1, 2, 3] = 5.9                       # truncated to 5, like astype(int)
    rows, raw = peaks_kernels.angle_rows_at(amap, [[1, 2, 3], [0, 0, 0]], 10, 0)
    assert rows.tolist() == [5, 0] and raw.tolist() == [np.float32(5.9), 0.0]
    with pytest.raises(peaks_kernels.AngleIndexError, match="0-based"):
        peaks_kernels.angle_rows_at(amap, [[0, 0, 0]], 10, 1)
    amap[0, 0, 0] = 10
    with pytest.raises(peaks_kernels.AngleIndexError, match="1-based"):
        peaks_kernels.angle_rows_at(amap, [[0, 0, 0]], 10, 0)
    amap[0, 0, 0] = np.nan
    with pytest.raises(peaks_kernels.AngleIndexError, match="non-finite"):
        peaks_kernels.angle_rows_at(amap, [[0, 0, 0]], 10, 0)


def test_symmetry_randomisation_is_seeded_and_wrapped():
    phi = np.full(2000, 50.0)
    a = peaks_kernels.randomize_phi(phi, 6, seed=3)
    assert np.array_equal(a, peaks_kernels.randomize_phi(phi, 6, seed=3))
    assert (a >= 0).all() and (a < 360).all()
    steps = np.round((a - 50.0) % 360 / 60.0, 9)
    assert set(steps.tolist()) == set(range(6))
    assert np.array_equal(peaks_kernels.randomize_phi(phi, 1, seed=3), phi)
    assert peaks_kernels.symmetry_order("C6") == 6 and peaks_kernels.symmetry_order("c12") == 12
    with pytest.raises(peaks_kernels.PeakPickingError):
        peaks_kernels.symmetry_order("D2")


def test_angular_distance_tables():
    ang = np.array([[0, 0, 0], [30, 0, 0], [0, 90, 0], [10, 20, 30]], float)
    total, normal, inplane = peaks_kernels.angular_distance_tables(ang)
    R = Rotation.from_euler("zxz", ang, degrees=True)
    ref = np.degrees((R[0].inv() * R).magnitude())
    assert np.allclose(total, ref, atol=1e-4)
    assert np.allclose(normal, [0, 0, 90, 20], atol=1e-4)
    assert np.allclose(inplane, [0, 30, 0, 10], atol=1e-4)
    # C3: 120 degrees about the particle axis is no rotation at all
    t3, _, i3 = peaks_kernels.angular_distance_tables(np.array([[0, 0, 0], [120, 0, 0]], float), 3)
    assert t3[1] == pytest.approx(0, abs=1e-3) and i3[1] == pytest.approx(0, abs=1e-6)


def test_angular_consistency_counts_neighbours():
    ang = np.array([[0, 0, 0], [5, 0, 0], [90, 90, 0]], float)
    amap = np.full((9, 9, 9), 2, np.float32)          # inconsistent background
    amap[3:6, 3:6, 3:6] = 1                           # 5 degrees from row 0
    amap[4, 4, 4] = 0
    c = peaks_kernels.angular_consistency(amap, [[4, 4, 4], [0, 0, 0]], [0, 2], ang, radius=1.0,
                                          max_angle=10.0)
    assert c.tolist() == [6, 3]                       # 6 face neighbours; corner: 3 inside


# ----------------------------------------------------------------------------- pick_peaks
def test_pick_peaks_finds_planted_peaks_with_angles():
    rng = np.random.default_rng(9)
    m = (rng.standard_normal((40, 64, 72)) * 0.01 + 0.08).astype(np.float32)
    pos = np.array([[z, y, x] for z in (10, 28) for y in (12, 32, 52) for x in (12, 36, 60)])
    g = np.arange(-4, 5)
    zz, yy, xx = np.meshgrid(g, g, g, indexing="ij")
    ker = np.exp(-(xx ** 2 + yy ** 2 + zz ** 2) / (2 * 1.5 ** 2)).astype(np.float32)
    for (z, y, x), h in zip(pos, rng.uniform(0.2, 0.3, size=len(pos))):
        m[z - 4:z + 5, y - 4:y + 5, x - 4:x + 5] += np.float32(h) * ker
    anglist = Rotation.random(50, random_state=1).as_euler("zxz", degrees=True) % 360
    amap = rng.integers(0, 50, size=m.shape).astype(np.float32)
    rows = rng.integers(0, 50, size=len(pos))
    amap[tuple(pos.T)] = rows
    res = peaks_kernels.pick_peaks(m, amap, anglist, 8.0, threshold_mode="sigma", sigma=5.0)
    assert {tuple(c) for c in res.coords.tolist()} == {tuple(p) for p in pos.tolist()}
    by_pos = dict(zip(map(tuple, res.coords.tolist()), res.angle_rows.tolist()))
    assert [by_pos[tuple(p)] for p in pos.tolist()] == rows.tolist()
    assert np.array_equal(res.angles, anglist[res.angle_rows])
    assert np.all(np.diff(res.scores) <= 0)
    assert res.scores.tolist() == m[tuple(res.coords.T)].tolist()
    assert res.n_peaks == len(pos) and res.expected_false_positives < 0.1


def test_pick_peaks_empty_result_is_valid():
    m, _ = synthetic_map(seed=1)
    res = peaks_kernels.pick_peaks(m, np.zeros_like(m), np.zeros((1, 3)), 5.0,
                                   threshold_mode="direct", threshold=10.0)
    assert res.n_picks == 0 and res.n_candidates == 0
    assert res.coords.shape == (0, 3) and res.angles.shape == (0, 3)
    assert "no voxel is above" in res.messages[0]


def test_pick_peaks_validation():
    m, _ = synthetic_map(seed=1)
    with pytest.raises(peaks_kernels.PeakPickingError, match="angle map shape"):
        peaks_kernels.pick_peaks(m, m[:-1], np.zeros((1, 3)), 5.0)
    with pytest.raises(peaks_kernels.PeakPickingError, match="mask shape"):
        peaks_kernels.pick_peaks(m, m, np.zeros((1, 3)), 5.0, mask=m[:, :-1])
    with pytest.raises(peaks_kernels.PeakPickingError, match="minimum distance"):
        peaks_kernels.pick_peaks(m, m, np.zeros((1, 3)), 0)
    with pytest.raises(peaks_kernels.PeakPickingError, match="threshold mode"):
        peaks_kernels.pick_peaks(m, m, np.zeros((1, 3)), 5.0, threshold_mode="otsu")
    with pytest.raises(peaks_kernels.PeakPickingError, match="no voxel is inside the mask"):
        peaks_kernels.pick_peaks(m, None, None, 5.0, mask=np.zeros_like(m), mask_mode="inside")


def test_min_peak_size_filter_matches_stopgap_rule():
    m, _ = synthetic_map(seed=2, n=15)
    base = peaks_kernels.pick_peaks(m, None, None, 6.0, threshold_mode="sigma", sigma=2.5)
    flat, vals = peaks_kernels.find_candidates(m, base.threshold)
    cand = peaks_kernels.unravel(flat, m.shape)
    sizes = peaks_kernels.count_within(base.coords, cand, 6.0)
    lim = int(np.median(sizes))
    res = peaks_kernels.pick_peaks(m, None, None, 6.0, threshold_mode="sigma", sigma=2.5,
                                   min_peak_size=lim)
    keep = base.coords[sizes >= lim]
    assert np.array_equal(res.coords, keep)               # same peaks, small ones removed
    assert res.n_rejected_size == int((sizes < lim).sum())
    assert np.array_equal(res.peak_sizes, sizes[sizes >= lim])


def test_provisional_threshold_fallback_gives_same_candidates(monkeypatch):
    m, _ = synthetic_map(seed=6)
    ref = peaks_kernels.pick_peaks(m, None, None, 5.0, threshold_mode="sigma", sigma=3.0)
    # provisional too high
    monkeypatch.setattr(peaks_kernels.thresholds, "PROVISIONAL_FACTOR", 3.0)
    res = peaks_kernels.pick_peaks(m, None, None, 5.0, threshold_mode="sigma", sigma=3.0)
    assert res.n_candidates == ref.n_candidates
    assert np.array_equal(res.coords, ref.coords)


def test_memmap_input_and_gather(tmp_path):
    import mrcfile
    m, _ = synthetic_map(seed=8)
    with mrcfile.new(str(tmp_path / "s.mrc")) as f:
        f.set_data(m)
    with mrcfile.mmap(str(tmp_path / "s.mrc"), mode="r") as f:
        res = peaks_kernels.pick_peaks(f.data, f.data, np.zeros((1, 3)), 5.0,
                                       threshold_mode="direct", threshold=0.2, angles_numbering=0)
        assert res.n_picks > 0
        vals = peaks_kernels.gather(f.data, res.coords)
    assert np.array_equal(vals, m[tuple(res.coords.T)])
    assert math.isfinite(res.expected_false_positives)


@pytest.mark.parametrize("mode", ["false-positives", "triangle", "percentile"])
def test_memory_mapped_maps_give_the_in_memory_picks(tmp_path, mode):
    """The streaming passes over a memory-mapped map (pages released after each chunk; 72 x
    128 x 144 voxels = 1.27 chunks) give exactly the picks of the same map held in memory,
    with a mask in both modes."""
    import mrcfile
    scores, _ = synthetic_map(shape=(72, 128, 144), n=30)
    assert scores.size > peaks_kernels.CHUNK
    rng = np.random.default_rng(1)
    angles = rng.integers(0, 30, size=scores.shape).astype(np.float32)
    mask = np.zeros(scores.shape, np.float32)
    mask[4:68, 6:120, 5:136] = 1
    paths = {}
    for name, arr in (("s", scores), ("a", angles), ("m", mask)):
        paths[name] = str(tmp_path / (name + ".mrc"))
        with mrcfile.new(paths[name]) as m:
            m.set_data(arr)
    alist = rng.uniform(0, 180, size=(30, 3))
    for mask_mode in ("multiply", "inside"):
        kw = dict(min_distance=6, threshold_mode=mode, percentile=99.8,
                  mask_mode=mask_mode, seed=0)
        mem = peaks_kernels.pick_peaks(scores, angles, alist, mask=mask, **kw)
        with mrcfile.mmap(paths["s"], mode="r") as s, \
                mrcfile.mmap(paths["a"], mode="r") as a, \
                mrcfile.mmap(paths["m"], mode="r") as m:
            mapped = peaks_kernels.pick_peaks(s.data, a.data, alist, mask=m.data, **kw)
        assert mem.n_picks > 5
        assert np.array_equal(mem.coords, mapped.coords)
        assert np.array_equal(mem.scores, mapped.scores)
        assert np.array_equal(mem.angles, mapped.angles)
        assert mem.threshold == mapped.threshold and mem.mean == mapped.mean


def test_one_threshold_rule_per_mode_named_once():
    """The mode names live in cryoprocs.constants; each maps to the rule class of that name,
    and the rules describe themselves as the summaries always did."""
    from cryoprocs import constants
    assert peaks_kernels.THRESHOLD_MODES == tuple(constants.PEAKS_THR_MODES)
    assert len(constants.PEAKS_THR_MODES) == len(constants.PEAKS_THR_CHOICES)
    for mode, cls in peaks_kernels.thresholds.THRESHOLD_RULES.items():
        assert cls.__name__.lower() == mode.replace("-", "") + "threshold"
    params = dict(threshold=0.25, sigma=3.0, percentile=99.5, n_false_positives=10.0)
    assert [peaks_kernels.describe_threshold(m, **params)
            for m in peaks_kernels.THRESHOLD_MODES] == [
        "score > 0.25", "score > mean + 3 std", "score > the 99.5-th percentile",
        "score > the triangle threshold (cryoCAT default)",
        "score > mean + k std with 10 expected false positives"]
    with pytest.raises(peaks_kernels.PeakPickingError, match="threshold mode must be one of"):
        peaks_kernels.threshold_rule("otsu")
