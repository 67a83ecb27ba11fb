"""Reconstruction kernels on arrays: dose x-ranges, Fourier slices, backprojection (NumPy and
numba agree; geometric invariants), gridding and CTF correction, taper, RELION's weight
layout, point-group symmetry (RELION's operator lists, symmetrisation of synthetic Cn and Dn
objects) and the FSC (no shared data needed)."""
import numpy as np
import pytest
import scipy.fft
import scipy.ndimage

from cryoprocs.kernels.euler import relion_euler_matrix
from cryoprocs.kernels import backprojection
from cryoprocs.kernels import ctf as ctf_kernels
from cryoprocs.kernels import extract
from cryoprocs.kernels import fsc
from cryoprocs.kernels import reconstruct
from cryoprocs.kernels import symmetry

needs_numba = pytest.mark.skipif(not backprojection.numba_available(), reason="numba not installed")


def _random_slices(rng, n, s):
    sh = s // 2 + 1
    sl = (rng.standard_normal((n, s, sh)) + 1j * rng.standard_normal((n, s, sh)))
    sw = rng.random((n, s, sh))
    A = relion_euler_matrix(rng.uniform(-180, 180, n),
                            np.degrees(np.arccos(rng.uniform(-1, 1, n))),
                            rng.uniform(-180, 180, n))
    return sl.astype(np.complex64), sw.astype(np.float32), reconstruct.slice_matrices(np.eye(3), A)


def _zeros(s):
    sh = s // 2 + 1
    return np.zeros((s, s, sh), np.complex128), np.zeros((s, s, sh))


# ----------------------------------------------------------------------------- dose ranges
def test_dose_x_ranges_rule():
    s = 16
    dose = ctf_kernels.dose_weights_half([0.0, 30.0, 500.0], s, 5.0)
    xr = reconstruct.dose_x_ranges(dose, 0.01)
    # no dose: every x up to sqrt(s^2/4 - y'^2) is kept
    yy = reconstruct.signed_freq(s)
    want = np.floor(np.minimum(np.sqrt(s * s // 4 - yy ** 2), s // 2)).astype(int) + 1
    assert xr[0].tolist() == want.tolist()
    # the range shrinks with dose and is exactly 1 + the last x above the cut-off
    assert np.all(xr[1] <= xr[0]) and np.all(xr[2] <= xr[1]) and xr[2, 0] < xr[0, 0]
    for f in range(3):
        for y in range(s):
            good = [x for x in range(s // 2 + 1)
                    if x <= np.sqrt(s * s // 4 - yy[y] ** 2) and dose[f, y, x] > 0.01]
            assert xr[f, y] == (max(good) + 1 if good else 0)


# ----------------------------------------------------------------------------- slices
def test_slice_of_centred_point_is_flat_and_binning_divides_once():
    """A delta at the projected position gives a flat spectrum (after the shift to the box
    centre); Fourier cropping to bin 2 keeps the values divided by bin once."""
    s0 = 32
    img = np.zeros((100, 100), np.float32)
    img[40, 50] = 1.0
    q = np.array([[50.0, 40.0]])
    F1 = reconstruct.frame_slices(img, q, 32, 1.0, circle_crop=False)
    assert np.allclose(F1, 1.0 / s0, atol=1e-7)
    F2 = reconstruct.frame_slices(img, q, 16, 2.0, circle_crop=False)
    assert F2.shape == (1, 16, 9)
    assert np.allclose(F2, 1.0 / s0 / 2.0, atol=1e-7)


@pytest.mark.parametrize("backend", ["numpy", "auto"])
def test_frame_slices_equal_reference_path(backend):
    """The fused cut + circle crop + pruned FFT + separable shift give the same numbers as
    the step-by-step path built on the extraction kernels (RELION extractAt3D_Fourier)."""
    rng = np.random.default_rng(3)
    img = (rng.standard_normal((200, 260)) + 3.0).astype(np.float32)
    q = np.array([[3.2, 5.7], [130.4, 99.5], [257.9, 198.2], [60.0, 60.0]])
    for box, binning in ((32, 2.0), (24, 1.0), (20, 3.0)):
        s0 = int(box * binning)
        corner, pib = extract.box_corners(q, s0)
        ref = reconstruct.slice_from_boxes(extract.cut_boxes(img, corner, s0), pib, binning, box,
                                           True)
        got = reconstruct.frame_slices(img, q, box, binning, True, backend=backend)
        assert np.abs(got - ref).max() <= 1e-6 * np.abs(ref).max()


def test_weight_slices_ctf_dose_and_ranges():
    rng = np.random.default_rng(0)
    s, sh = 8, 5
    sl = (rng.standard_normal((2, s, sh)) + 1j * rng.standard_normal((2, s, sh))).astype(
        np.complex64)
    orig = sl.copy()
    ctf = rng.uniform(-1, 1, (2, s, sh)).astype(np.float32)
    dose = rng.uniform(0, 1, (s, sh)).astype(np.float32)
    xr = np.array([5, 4, 3, 2, 0, 2, 3, 4])
    w = reconstruct.weight_slices(sl, xr, ctf, dose, -1.0)
    c = -(ctf * dose)
    for y in range(s):
        for x in range(sh):
            if x < xr[y]:
                assert w[0, y, x] == np.float32(c[0, y, x] * c[0, y, x])
                assert sl[0, y, x] == orig[0, y, x] * c[0, y, x]
            else:
                assert w[0, y, x] == 0 and sl[0, y, x] == 0
    sl2 = orig.copy()
    w2 = reconstruct.weight_slices(sl2, xr, None, None, -1.0)
    assert np.all(w2 == 1) and np.all(sl2 == -orig)


# ----------------------------------------------------------------------------- backprojection
def test_backprojection_identity_slice_fills_central_plane():
    """With A = identity the slice lands exactly on the plane z = 0 (c = 1, integer
    positions, no interpolation); planes z = +-1 get nothing (|q.z| < 1 is strict)."""
    s = 16
    sh = s // 2 + 1
    rng = np.random.default_rng(1)
    sl = (rng.standard_normal((1, s, sh)) + 1j * rng.standard_normal((1, s, sh))).astype(
        np.complex64)
    sw = rng.random((1, s, sh)).astype(np.float32)
    for backend in ("numpy",) + (("numba",) if backprojection.numba_available() else ()):
        d, w = _zeros(s)
        backprojection.backproject(d, w, sl, sw, np.eye(3)[None], np.array([s // 2]),
                                   backend=backend)
        yy = reconstruct.signed_freq(s)
        x = np.arange(sh)
        inside = (x[None, :] <= np.sqrt(np.maximum((s // 2) ** 2 - yy[:, None] ** 2, 0)) + 0) \
            & ((s // 2) ** 2 - yy[:, None] ** 2 >= 0)
        assert np.array_equal(d[0][inside], sl[0][inside].astype(np.complex128))
        assert np.array_equal(w[0][inside], sw[0][inside].astype(np.float64))
        assert np.all(d[0][~inside] == 0)
        assert np.all(d[1:] == 0) and np.all(w[1:] == 0)


def test_backprojection_rotated_slice_is_hermitian_consistent():
    """A slice rotated by 180 deg about y maps x -> -x: voxels read the conjugate of the
    mirrored slice value (RELION's half-spectrum interpolation)."""
    s = 16
    sh = s // 2 + 1
    rng = np.random.default_rng(2)
    sl = (rng.standard_normal((1, s, sh)) + 1j * rng.standard_normal((1, s, sh))).astype(
        np.complex64)
    sw = rng.random((1, s, sh)).astype(np.float32)
    A = relion_euler_matrix(0.0, 180.0, 0.0)[None]      # diag(-1, 1, -1)
    d, w = _zeros(s)
    backprojection.backproject(d, w, sl, sw, reconstruct.slice_matrices(np.eye(3), A),
                               np.array([s // 2]), backend="numpy")
    # voxel (x, y', 0) reads the slice at (-x, y') = conj(slice(x, -y'))
    yy = reconstruct.signed_freq(s)
    for y in range(s):
        for x in range(1, 5):
            if x * x + yy[y] ** 2 > (s // 2) ** 2:
                continue                     # beyond maxFreq: untouched
            ym = (-y) % s
            assert d[0, y, x] == pytest.approx(complex(np.conj(sl[0, ym, x])), rel=1e-12)
            assert w[0, y, x] == pytest.approx(float(sw[0, ym, x]), rel=1e-12)


@needs_numba
def test_backprojection_numba_equals_numpy():
    rng = np.random.default_rng(5)
    s, n = 24, 12
    sl, sw, M = _random_slices(rng, n, s)
    mf = rng.integers(3, s // 2 + 1, n)
    d1, w1 = _zeros(s)
    d2, w2 = _zeros(s)
    backprojection.backproject(d1, w1, sl, sw, M, mf, backend="numpy")
    backprojection.backproject(d2, w2, sl, sw, M, mf, backend="numba")
    assert np.abs(d1 - d2).max() <= 1e-12 * np.abs(d1).max()
    assert np.abs(w1 - w2).max() <= 1e-12 * np.abs(w1).max()
    # the maximum frequency limits every contribution to the sphere of that radius
    zz = reconstruct.signed_freq(s)
    r = np.sqrt(zz[:, None, None] ** 2 + zz[None, :, None] ** 2
                + np.arange(s // 2 + 1)[None, None, :] ** 2)
    assert np.all(w1[r > mf.max() + 1e-9] == 0)


def test_backprojection_rejects_bad_shapes():
    d, w = _zeros(8)
    sl = np.zeros((2, 8, 5), np.complex64)
    with pytest.raises(ValueError):
        backprojection.backproject(d, w, sl, np.zeros((2, 8, 5), np.float32), np.zeros((3, 3, 3)),
                                   np.zeros(2, int))
    with pytest.raises(TypeError):
        backprojection.backproject(d.astype(np.complex64), w, sl, np.zeros((2, 8, 5), np.float32),
                                   np.zeros((2, 3, 3)), np.zeros(2, int))


# ----------------------------------------------------------------------------- finalisation
def test_gridding_correction_of_a_constant_spectrum_is_a_corrected_delta():
    """A flat spectrum is a delta at the centre voxel; sinc^2 division leaves the centre
    untouched and divides the other voxels by sinc^2(r/s) (0.01 where it is smaller)."""
    s = 16
    F = np.ones((s, s, s // 2 + 1), np.complex128)
    img = reconstruct.gridding_correct_sinc2(F)
    delta = scipy.fft.irfftn(F, s=(s,) * 3, norm="ortho")
    assert img[s // 2, s // 2, s // 2] == pytest.approx(s ** 1.5)
    assert np.argmax(img) == np.ravel_multi_index((s // 2,) * 3, img.shape)
    d = 3.0 / s
    sinc2 = (np.sin(np.pi * d) / (np.pi * d)) ** 2
    raw = np.roll(delta, (s // 2,) * 3, axis=(0, 1, 2))
    assert img[s // 2, s // 2, s // 2 + 3] == pytest.approx(raw[s // 2, s // 2, s // 2 + 3]
                                                           / sinc2, abs=1e-12)


def test_ctf_correct_heuristic_and_wiener_on_constant_weights():
    rng = np.random.default_rng(0)
    s = 16
    img = rng.standard_normal((s, s, s))
    W = np.full((s, s, s // 2 + 1), 4.0)
    out = reconstruct.ctf_correct_heuristic(img, W)
    F = scipy.fft.rfftn(img, norm="ortho") / 4.0
    zz = reconstruct.signed_freq(s)
    r = np.sqrt(zz[:, None, None] ** 2 + zz[None, :, None] ** 2
                + np.arange(s // 2 + 1)[None, None, :] ** 2)
    F[r.astype(int) + 1 >= s // 2 + 1] = 0
    assert np.allclose(out, scipy.fft.irfftn(F, s=img.shape, norm="ortho"), atol=1e-12)
    out = reconstruct.ctf_correct_wiener(img, W, 1.0)
    assert np.allclose(out, img / 5.0, atol=1e-12)
    # heuristic floor: a voxel with tiny weight is divided by 0.001 x the radial average
    W2 = W.copy()
    W2[0, 0, 3] = 1e-9
    avg = reconstruct.radial_average_half(W2)
    assert avg[3] < 4.0 and avg[2] == pytest.approx(4.0)


def test_radial_average_half_of_radial_function():
    s = 20
    zz = reconstruct.signed_freq(s)
    r = np.sqrt(zz[:, None, None] ** 2 + zz[None, :, None] ** 2
                + np.arange(s // 2 + 1)[None, None, :] ** 2)
    avg = reconstruct.radial_average_half(2.0 * r + 1.0)
    assert avg[0] == 1.0
    assert np.allclose(avg[3:], 2.0 * np.arange(3, s // 2 + 1) + 1.0, rtol=0.05)


def test_taper_subtracts_weighted_mean_and_zeroes_outside():
    s = 20
    img = np.full((s, s, s), 3.0)
    out = reconstruct.taper(img, 4.0)
    assert np.allclose(out, 0.0)
    rng = np.random.default_rng(0)
    img = rng.standard_normal((s, s, s)) + 5
    out = reconstruct.taper(img, 4.0)
    a = np.arange(s) - s / 2.0
    r = np.sqrt(a[:, None, None] ** 2 + a[None, :, None] ** 2 + a[None, None, :] ** 2)
    assert np.all(out[r >= s / 2.0] == 0)
    c = np.where(r < s / 2.0 - 4, 1.0, 0.5 - 0.5 * np.cos(np.pi * (s / 2.0 - r) / 4.0))
    c[r >= s / 2.0] = 0
    mean = (c * img).sum() / c.sum()
    assert np.allclose(out, c * (img - mean))


def test_fftw_half_to_human_full_matches_fftshift_for_real_volumes():
    rng = np.random.default_rng(0)
    v = rng.standard_normal((12, 12, 12))
    P = np.abs(scipy.fft.rfftn(v)) ** 2
    full = reconstruct.fftw_half_to_human_full(P)
    assert np.allclose(full, np.fft.fftshift(np.abs(np.fft.fftn(v)) ** 2))


def test_unpad_center():
    v = np.arange(6 ** 3).reshape(6, 6, 6)
    assert np.array_equal(reconstruct.unpad_center(v, 1), v[1:5, 1:5, 1:5])
    assert reconstruct.unpad_center(v, 0) is v


# ----------------------------------------------------------------------------- symmetry
@pytest.mark.parametrize("name,order", [("C1", 1), ("C2", 2), ("c7", 7), ("D1", 2),
                                        ("D2", 4), ("D7", 14), ("T", 12), ("O", 24),
                                        ("I", 60), ("I1", 60), ("I2", 60), ("I3", 60),
                                        ("I4", 60)])
def test_point_group_orders_and_rotations(name, order):
    R = symmetry.point_group_matrices(name)
    assert len(R) + 1 == order == symmetry.group_order(name)
    for M in R:
        assert np.allclose(M @ M.T, np.eye(3), atol=1e-5)
        assert np.linalg.det(M) == pytest.approx(1.0, abs=1e-5)
    # closed under multiplication (within RELION's 1e-6 accuracy, up to the generators')
    full = [np.eye(3)] + list(R)
    for A in full[:6]:
        for B in full[:6]:
            P = A @ B
            assert min(np.abs(P - Q).max() for Q in full) < 1e-4


def test_point_group_conventions():
    """RELION's axes: Cn about z; D2 adds the two-fold about x; I (= I2) has a two-fold on z
    and a five-fold at (0.5257, 0, 0.8507); O has a four-fold on z."""
    R = symmetry.point_group_matrices("C4")
    assert np.allclose(R[0], [[0, 1, 0], [-1, 0, 0], [0, 0, 1]])    # transpose of Rz(90)
    D2 = symmetry.point_group_matrices("D2")
    assert any(np.allclose(M, np.diag([1, -1, -1])) for M in D2)
    assert any(np.allclose(M, np.diag([-1, -1, 1])) for M in D2)
    axis5 = np.array([0.525731114, 0, 0.850650807])
    I = symmetry.point_group_matrices("I")
    assert any(np.allclose(M, np.diag([-1, -1, 1]), atol=1e-6) for M in I)
    five = [M for M in I if np.allclose(M @ axis5, axis5, atol=1e-6)
            and not np.allclose(M, np.eye(3))]
    assert len(five) == 4
    O = symmetry.point_group_matrices("O")
    assert sum(np.allclose(M[:, 2], [0, 0, 1]) and not np.allclose(M, np.eye(3))
               for M in O) == 3


def test_parse_symmetry_errors():
    assert symmetry.parse_symmetry(" d3 ") == "D3"
    for bad in ("C0", "Cs", "Oh", "X", "C123", "I5"):
        with pytest.raises(symmetry.SymmetryError):
            symmetry.parse_symmetry(bad)


def _blob(s, centre, sigma=1.5):
    g = np.arange(s, dtype=np.float64)
    z, y, x = np.meshgrid(g, g, g, indexing="ij")
    return np.exp(-((x - centre[0]) ** 2 + (y - centre[1]) ** 2 + (z - centre[2]) ** 2)
                  / (2 * sigma ** 2))


def _rotate_about_centre(vol, R):
    """Rotate a cube about voxel s//2 with p' = R p (x, y, z) by cubic interpolation."""
    s = vol.shape[0]
    c = s // 2
    # output voxel p' samples input at R^-1 p' ; axes of affine_transform are (z, y, x)
    Rinv = np.linalg.inv(R)
    P = np.array([[0, 0, 1], [0, 1, 0], [1, 0, 0]])
    Mz = P @ Rinv @ P
    off = np.array([c, c, c]) - Mz @ np.array([c, c, c])
    return scipy.ndimage.affine_transform(vol, Mz, offset=off, order=3, mode="constant")


@pytest.mark.parametrize("n", [3, 4, 5, 7])
def test_symmetrise_synthetic_cn_object(n):
    """A synthetic C_n object (n blobs around z plus one on the axis) is left unchanged by
    C_n symmetrisation; a single off-axis blob becomes C_n symmetric with 1/n of the mass."""
    s = 48
    c = s // 2
    obj = _blob(s, (c, c, c + 3), 2.0)
    for k in range(n):
        a = 2 * np.pi * k / n
        obj += _blob(s, (c + 5 * np.cos(a), c + 5 * np.sin(a), c - 2), 1.6)
    sym = symmetry.symmetrise_volume(obj, "C%d" % n)
    assert np.corrcoef(sym.ravel(), obj.ravel())[0, 1] > 0.999
    assert np.abs(sym - obj).max() < 0.05 * obj.max()
    one = _blob(s, (c + 5, c, c), 1.6)
    sym1 = symmetry.symmetrise_volume(one, "C%d" % n)
    want = sum(_blob(s, (c + 5 * np.cos(2 * np.pi * k / n), c + 5 * np.sin(2 * np.pi * k / n),
                         c), 1.6) for k in range(n)) / n
    assert np.corrcoef(sym1.ravel(), want.ravel())[0, 1] > 0.995
    assert sym1.sum() == pytest.approx(one.sum(), rel=1e-9)        # DC is preserved
    # invariant under the group's rotation about z (RELION: p' = R p, R = Rz^T)
    rot = _rotate_about_centre(sym1, symmetry.point_group_matrices("C%d" % n)[0])
    core = _blob(s, (c, c, c), 9.0) > 0.2
    assert np.corrcoef(rot[core], sym1[core])[0, 1] > 0.999
    assert np.abs(rot - sym1)[core].max() < 0.06 * sym1.max()


def test_symmetrise_c4_is_exact_on_the_grid():
    """90 deg rotations map grid points to grid points: C4 symmetrisation is then exact, the
    result invariant under a 90 deg rotation about z through voxel s//2 to rounding."""
    rng = np.random.default_rng(0)
    s = 16
    v = scipy.ndimage.gaussian_filter(rng.standard_normal((s, s, s)), 1.0)
    sym = symmetry.symmetrise_volume(v, "C4")
    c = s // 2
    idx = np.arange(s)
    # p' = R p with R = [[0, 1, 0], [-1, 0, 0], [0, 0, 1]]: x' = y, y' = -x
    rot = np.empty_like(sym)
    for y in range(s):
        for x in range(s):
            rot[:, (c - (x - c)) % s, (c + (y - c)) % s] = sym[:, y, x]
    assert np.abs(rot - sym).max() < 1e-12 * np.abs(sym).max()
    assert np.abs(sym - v).max() > 0.1 * np.abs(v).max()     # it did something
    del idx


def test_symmetrise_d2_and_weights():
    """D2 symmetrisation of real weights (no conjugation) averages |k|-mirrored voxels."""
    rng = np.random.default_rng(1)
    s = 12
    W = rng.random((s, s, s // 2 + 1))
    S = symmetry.symmetrise_fs(W, symmetry.point_group_matrices("D2"))
    assert S.dtype == np.float64 and S.shape == W.shape
    # R = diag(-1, -1, 1) maps (x, y, z) -> (-x, -y, z) = reading (x, y, -z) by symmetry
    x, y, z = 2, 3, 4
    vals = [W[z, y, x], W[(-z) % s, y, x], W[(-z) % s, (-y) % s, x], W[z, (-y) % s, x]]
    assert S[z, y, x] == pytest.approx(np.mean(vals))


# ----------------------------------------------------------------------------- FSC
def test_fsc_identical_and_independent_halves():
    rng = np.random.default_rng(0)
    s = 32
    a = scipy.ndimage.gaussian_filter(rng.standard_normal((s, s, s)), 1.0)
    f = fsc.fsc(a, a)
    assert f.shape == (s // 2 + 1,)
    assert np.allclose(f[1:], 1.0)
    b = rng.standard_normal((s, s, s))
    c = rng.standard_normal((s, s, s))
    g = fsc.fsc(b, c)
    assert abs(g[3:].mean()) < 0.03
    assert np.abs(g[3:]).max() < 0.25
    freqs = fsc.shell_frequencies(s, 2.0)
    res, nyq = fsc.fsc_resolution(freqs, f)
    assert nyq and res == pytest.approx(4.0)
    res, nyq = fsc.fsc_resolution(freqs, g)
    assert not nyq and (res == float("inf") or res > 2 * 32 * 2.0 / 3)


def test_fsc_resolution_interpolates_like_scipion():
    freqs = np.array([0.0, 0.1, 0.2, 0.3, 0.4])
    vals = np.array([1.0, 0.9, 0.5, 0.1, 0.0])
    res, nyq = fsc.fsc_resolution(freqs, vals, 0.143)
    x = 0.3 - (0.143 - 0.1) / (0.5 - 0.1) * 0.1
    assert res == pytest.approx(1 / x) and not nyq
    from pwem.objects import FSC
    o = FSC()
    o.setData(list(freqs), list(vals))
    assert float(o.calculateResolution()) == pytest.approx(res, abs=1e-3)


def test_fsc_shape_errors():
    with pytest.raises(fsc.FscError):
        fsc.fsc(np.zeros((4, 4, 4)), np.zeros((4, 4, 6)))
