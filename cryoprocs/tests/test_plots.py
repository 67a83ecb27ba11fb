"""The viewer figures (cryoprocs.plots) on an Agg canvas: what they draw and how their widgets
react; and that the module stays free of pyworkflow."""
import subprocess
import sys

import numpy as np
import pytest

from cryoprocs.plots import figures
from cryoprocs.plots import images


@pytest.fixture
def fig():
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure
    f = Figure(figsize=(8, 6))
    FigureCanvasAgg(f)
    return f


def test_plots_do_not_import_pyworkflow():
    code = ("import sys, cryoprocs.plots.figures, cryoprocs.plots.images, cryoprocs.sysdeps; "
            "print(sorted(m for m in ('pwem', 'pyworkflow', 'tomo') if m in sys.modules))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                         check=True).stdout.strip()
    assert out == "[]"


def test_display_range_and_selection_helpers():
    a = np.arange(101, dtype=np.float32)
    assert images.display_range(a) == pytest.approx((1.0, 99.0))
    assert images.display_range(np.full(5, 3.0)) == (3.0, 4.0)            # flat: non-empty window
    assert images.display_range(np.array([np.nan, np.inf])) == (0.0, 1.0)
    assert images.spread_indices(10, 4) == [0, 3, 6, 9]
    assert images.spread_indices(3, 10) == [0, 1, 2]
    assert images.sphere_section_radius(5, 3) == pytest.approx(4.0)
    assert images.sphere_section_radius(5, 6) == 0.0


def test_central_slices_and_montage():
    vol = np.arange(4 * 6 * 8, dtype=np.float32).reshape(4, 6, 8)
    s = images.central_slices(vol)
    np.testing.assert_array_equal(s["XY"], vol[2])
    np.testing.assert_array_equal(s["XZ"], vol[:, 3, :])
    np.testing.assert_array_equal(s["YZ"], vol[:, :, 4])
    m, corners = images.montage(np.ones((5, 3, 4)), ncols=3, gap=1)
    assert m.shape == (2 * 3 + 1, 3 * 4 + 2)
    assert corners[4] == (4, 5)
    assert np.isnan(m[3, 0]) and np.nansum(m) == 5 * 12


def test_kept_region_is_where_the_values_are_kept():
    before = np.random.default_rng(0).normal(size=(10, 10)).astype(np.float32)
    after = before.copy()
    after[:, 6:] = 0.5 * before[:, 6:] + 0.3            # blended and noise
    kept = images.kept_region(before, after)
    assert kept[:, :6].all() and not kept[:, 6:].any()


def test_mask_volume_panels_draw_the_outline(fig):
    vol = np.random.default_rng(1).normal(size=(16, 16, 16)).astype(np.float32)
    zz, yy, xx = np.ogrid[:16, :16, :16]
    mask = (((zz - 8) ** 2 + (yy - 8) ** 2 + (xx - 8) ** 2) <= 25).astype(np.float32)
    axes = figures.draw_mask_volume(fig, vol, mask, vol * mask, title="t")
    assert len(axes) == 3 and all(len(r) == 3 for r in axes)
    for row in axes:                                    # one contour per panel
        for ax in row:
            assert ax.collections, ax.get_title()
    np.testing.assert_array_equal(axes[1][0].images[0].get_array(), mask[8])


def test_mask_particles_montage(fig):
    imgs = np.random.default_rng(2).normal(size=(5, 12, 12)).astype(np.float32)
    yy, xx = np.mgrid[:12, :12]
    mask = (((yy - 6) ** 2 + (xx - 6) ** 2) <= 16).astype(np.float32)
    axes = figures.draw_mask_particles(fig, imgs, mask, imgs * mask, labels=list("abcde"))
    assert axes[0].get_title() == "input (5 particles)"
    assert axes[0].images[0].get_array().shape == (2 * 12 + 1, 3 * 12 + 2)
    assert [t.get_text() for t in axes[2].texts] == list("abcde")


def test_slice_browser_follows_the_slider(fig):
    vol = np.arange(5 * 4 * 4, dtype=np.float32).reshape(5, 4, 4)
    b = figures.SliceBrowser(fig, [("a", lambda z: vol[z]), ("b", lambda z: -vol[z])], 5,
                             outlines=[(lambda z: (vol[z] > vol[z].mean()).astype(float),
                                        "r", "hi")],
                             info=lambda z: "slice %d" % z)
    assert b.z == 2 and fig._cryoprocs_handle is b
    b.slider.set_val(4)                                 # as a user drags it
    assert b.z == 4
    np.testing.assert_array_equal(b.images[0].get_array(), vol[4])
    np.testing.assert_array_equal(b.images[1].get_array(), -vol[4])
    assert "z = 4 / 4" in b._text.get_text() and "slice 4" in b._text.get_text()
    assert len([c for c in b._contours if c is not None]) == 2
    b.set_z(99)
    assert b.z == 4 and int(b.slider.val) == 4


def test_picks_browser_draws_sphere_sections(fig):
    vol = np.zeros((20, 30, 30), np.float32)
    picks = [(10, 10, 5, 0.9), (20, 20, 12, 0.5)]
    b = figures.PicksBrowser(fig, lambda z: vol[z], 20, picks, radius=3)
    assert b.z == 5                                     # opens on the best pick
    assert [round(c.get_radius(), 3) for c in b._circles] == [3.0]
    b.set_z(7)
    assert [round(c.get_radius(), 3) for c in b._circles] == [round(np.sqrt(5), 3)]
    b.set_z(12)
    assert len(b._circles) == 1 and b._circles[0].center == (20, 20)
    assert "1 of 2 picks" in b._text.get_text()


def test_fsc_legend_states_the_given_resolution(fig):
    ax = fig.add_subplot(111)
    f = np.linspace(0, 0.05, 11)
    v = np.linspace(1, -0.1, 11)
    txt = figures.draw_fsc(ax, f, v, 25.0, at_nyquist=False)
    assert txt == "25.00 Å"
    legend = [t.get_text() for t in ax.get_legend().get_texts()]
    assert "0.143: 25.00 Å" in legend[0] and legend[2] == "resolution 25.00 Å"
    ax2 = fig.add_subplot(212)
    assert figures.draw_fsc(ax2, f, np.ones(11), 20.0, at_nyquist=True) == "<= 20.00 Å"


def test_stack_gallery_moves_every_stack(fig):
    stacks = [np.arange(n * 4 * 4, dtype=np.float32).reshape(n, 4, 4) for n in (3, 5)]
    g = figures.StackGallery(fig, stacks, ["a", "b"])
    np.testing.assert_array_equal(g.images[1].get_array(), stacks[1][2])
    g.slider.set_val(4)
    np.testing.assert_array_equal(g.images[0].get_array(), stacks[0][2])
    np.testing.assert_array_equal(g.images[1].get_array(), stacks[1][4])
    g.set_position(0)
    assert int(g.slider.val) == 0
    np.testing.assert_array_equal(g.images[0].get_array(), stacks[0][0])


def test_movie_panel_play_buttons_call_the_player(fig):
    played = []
    p = figures.MoviePanel(fig, np.zeros((10, 20)), [("a.mp4", "/x/a.mp4"), ("b.avi", "/x/b.avi")],
                           lambda path: played.append(path) or "opening %s" % path)
    assert [b.label.get_text() for b in p.buttons] == ["\u25b6 play a.mp4", "\u25b6 play b.avi"]
    p.buttons[1]._observers.process("clicked", None)     # what a click does
    assert played == ["/x/b.avi"] and p._msg.get_text() == "opening /x/b.avi"


def test_tilt_plots(fig):
    axes = figures.draw_tilt_plots(fig, [-3, 0, 3], [3, 0, 6], [1e4] * 3, [9e3] * 3)
    assert len(axes) == 2 and axes[1].get_ylabel() == "defocus (Å)"
    assert axes[0].get_ylabel() == "pre-exposure (e/Å²)"
