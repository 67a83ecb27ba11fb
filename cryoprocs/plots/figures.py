"""The figures of the cryoprocs viewers (matplotlib on a given Figure; no pyworkflow).

Every function draws on ``fig`` (a :class:`matplotlib.figure.Figure` on any canvas).
Interactive ones return a handle object keeping their widgets (a ``Slider`` over z, play
``Button``\\ s); the handle is also stored as ``fig._cryoprocs_handle`` so the widgets live as
long as the figure. Images are shown with row 0 (y = 0) at the top and x = MRC column, in a
grey window of the 1-99 percentiles (:func:`cryoprocs.plots.images.display_range`).
"""
import numpy as np

from .images import (central_slices, display_range, montage, sphere_section_radius)

__all__ = ["draw_orthoslices", "draw_mask_volume", "draw_mask_particles", "SliceBrowser",
           "PicksBrowser", "draw_fsc", "StackGallery", "MoviePanel", "draw_tilt_plots",
           "draw_image_file"]

OUTLINE = "#ffd400"        # mask outline (yellow)
KEPT = "#e8301c"           # kept region / picks (red)
#: outlines of segmentations drawn with picks (cyan first: picks are red to yellow)
SEGMENTATION = ("#40c0ff", "#7cfc00", "#ff66ff", "#ffffff")


def _image(ax, a, window, title=None):
    im = ax.imshow(a, cmap="gray", vmin=window[0], vmax=window[1], interpolation="nearest")
    ax.set_xticks([])
    ax.set_yticks([])
    if title:
        ax.set_title(title, fontsize=9)
    return im


def _outline(ax, m, color, level=0.5, lw=1.0):
    """Contour of ``m`` at ``level`` (nothing when ``m`` does not cross it)."""
    m = np.asarray(m, dtype=np.float32)
    if not m.size or not (np.nanmin(m) < level < np.nanmax(m)):
        return None
    return ax.contour(m, levels=[level], colors=[color], linewidths=lw)


def _remove(artist):
    if artist is None:
        return
    try:
        artist.remove()
    except (AttributeError, ValueError, NotImplementedError):    # older ContourSets
        for c in getattr(artist, "collections", []):
            c.remove()


def _keep(fig, handle):
    fig._cryoprocs_handle = handle
    return handle


def draw_orthoslices(fig, maps, title=None):
    """Central XY, XZ and YZ slices (index ``size // 2``) of each map, one row per map.

    Parameters
    ----------
    maps : list of (str, array_like [z, y, x])
        Row label and volume (a memory map is fine: only three slices are read).

    Returns
    -------
    list of list of Axes
    """
    axes = fig.subplots(len(maps), 3, squeeze=False)
    for r, (label, vol) in enumerate(maps):
        s = central_slices(vol)
        win = display_range(*s.values())
        for c, key in enumerate(("XY", "XZ", "YZ")):
            _image(axes[r][c], s[key], win, "%s  %s" % (label, key))
    if title:
        fig.suptitle(title, fontsize=10)
    return axes


def draw_mask_volume(fig, volume, mask, output, title=None):
    """Input | mask | output of a masked volume: rows input, mask, output; columns the
    central XY, XZ, YZ slices; the mask outline (level 0.5) in yellow on every panel.

    ``volume``, ``mask``, ``output`` are ``[z, y, x]`` arrays of one shape; the mask is in
    [0, 1] (binary or soft)."""
    rows = [("input", volume), ("mask", mask), ("output", output)]
    axes = fig.subplots(3, 3, squeeze=False)
    ms = central_slices(mask)
    for r, (label, vol) in enumerate(rows):
        s = central_slices(vol)
        win = (0.0, 1.0) if label == "mask" else display_range(*s.values())
        for c, key in enumerate(("XY", "XZ", "YZ")):
            _image(axes[r][c], s[key], win, "%s  %s" % (label, key))
            _outline(axes[r][c], ms[key], OUTLINE)
    if title:
        fig.suptitle(title, fontsize=10)
    return axes


def draw_mask_particles(fig, images, mask, outputs, labels=None, title=None):
    """Montages of input particles | the mask | the masked particles, with the mask outline.

    Parameters
    ----------
    images, outputs : array_like (n, y, x)
        The same particles before and after masking.
    mask : array_like (y, x)
        In [0, 1].
    labels : list of str, optional
        One caption per particle (e.g. its id), written in the corner of its tile.
    """
    images = np.asarray(images, dtype=np.float32)
    outputs = np.asarray(outputs, dtype=np.float32)
    mask = np.asarray(mask, dtype=np.float32)
    n = len(images)
    ncols = int(np.ceil(np.sqrt(max(n, 1))))
    gs = fig.add_gridspec(1, 3, width_ratios=[3, 1.2, 3])
    axes = [fig.add_subplot(gs[0, i]) for i in range(3)]
    mont_in, corners = montage(images, ncols)
    mont_out, _ = montage(outputs, ncols)
    mont_mask, _ = montage(np.repeat(mask[None], n, axis=0), ncols, fill=0.0)
    _image(axes[0], mont_in, display_range(images), "input (%d particle%s)"
           % (n, "" if n == 1 else "s"))
    _image(axes[1], mask, (0.0, 1.0), "mask")
    _image(axes[2], mont_out, display_range(outputs), "output")
    for ax, m in ((axes[0], mont_mask), (axes[1], mask), (axes[2], mont_mask)):
        _outline(ax, m, OUTLINE)
    if labels:
        for ax in (axes[0], axes[2]):
            for (r0, c0), lab in zip(corners, labels):
                ax.text(c0 + 1, r0 + 1, str(lab), color="#40c0ff", fontsize=6, va="top")
    if title:
        fig.suptitle(title, fontsize=10)
    return axes


class SliceBrowser:
    """Side-by-side panels of the same z slice with a z slider, and optional outlines.

    Parameters
    ----------
    fig : Figure
    panels : list of (str, callable)
        Title and ``get(z) -> 2D array`` of each panel (e.g. a slice of a memory map).
    nz : int
        Number of slices; the slider runs over 0..nz-1.
    outlines : list of (callable, str, str), optional
        ``(get(z) -> 2D float or bool, colour, legend label)`` contoured at 0.5 on every
        panel.
    z : int, optional
        Initial slice (default ``nz // 2``).
    shared_window : bool
        One grey window for all panels (computed on the initial slice), e.g. before/after.
    info : callable, optional
        ``info(z) -> str`` written under the panels.
    """

    def __init__(self, fig, panels, nz, outlines=(), z=None, shared_window=True, info=None,
                 title=None):
        from matplotlib.widgets import Slider

        self.fig = fig
        self.panels = list(panels)
        self.outlines = list(outlines)
        self.nz = int(nz)
        self.info = info
        self.z = int(self.nz // 2 if z is None else min(max(0, int(z)), self.nz - 1))
        self.axes = [fig.add_axes([0.02 + i * 0.96 / len(self.panels), 0.16,
                                   0.96 / len(self.panels) - 0.02, 0.74])
                     for i in range(len(self.panels))]
        first = [get(self.z) for _, get in self.panels]
        if shared_window:
            win = display_range(*first)
            self.windows = [win] * len(first)
        else:
            self.windows = [display_range(a) for a in first]
        self.images = [_image(ax, a, w, t) for ax, a, w, (t, _) in
                       zip(self.axes, first, self.windows, self.panels)]
        # the image extents: overlays (contours, circles crossing an edge) never change them
        self._limits = [(ax.get_xlim(), ax.get_ylim()) for ax in self.axes]
        self._contours = []
        self._text = fig.text(0.5, 0.095, "", ha="center", fontsize=9)
        if title:
            fig.suptitle(title, fontsize=10)
        if self.outlines:
            from matplotlib.lines import Line2D
            handles = [Line2D([], [], color=c, label=lab) for _, c, lab in self.outlines]
            fig.legend(handles=handles, fontsize=8, frameon=False, **self._legend_kw)
        sax = fig.add_axes([0.12, 0.03, 0.76, 0.035])
        self.slider = Slider(sax, "z", 0, max(self.nz - 1, 1), valinit=self.z, valstep=1,
                             valfmt="%d")
        self.slider.on_changed(self._on_slider)
        self._draw_overlays()
        _keep(fig, self)

    #: where the outlines' legend goes (figure coordinates)
    _legend_kw = {"loc": "upper right"}

    def _on_slider(self, value):
        self.set_z(int(round(value)))

    def set_z(self, z):
        """Show slice ``z`` (clipped to 0..nz-1) in every panel."""
        self.z = min(max(0, int(z)), self.nz - 1)
        for im, (_, get) in zip(self.images, self.panels):
            im.set_data(get(self.z))
        self._draw_overlays()
        if int(round(self.slider.val)) != self.z:
            self.slider.set_val(self.z)
        self.fig.canvas.draw_idle()

    def _draw_overlays(self):
        for c in self._contours:
            _remove(c)
        self._contours = []
        for get, color, _ in self.outlines:
            m = get(self.z)
            for ax in self.axes:
                self._contours.append(_outline(ax, m, color))
        self._extra_overlays()
        for ax, (xlim, ylim) in zip(self.axes, self._limits):
            ax.set_xlim(xlim)
            ax.set_ylim(ylim)
        self._text.set_text(("z = %d / %d" % (self.z, self.nz - 1)) +
                            ("   " + self.info(self.z) if self.info else ""))

    def _extra_overlays(self):
        pass


class PicksBrowser(SliceBrowser):
    """A tomogram slice browser with the picks drawn as circles: each pick is a sphere of
    ``radius`` px, drawn on every slice it cuts with the radius of that section, coloured
    by score (autumn map: red = lowest, yellow = highest; all yellow when the scores are
    equal).

    ``picks`` is ``(n, 4)``: 0-based voxel x, y, z and the score (colour). ``outlines`` are
    extra contours as in :class:`SliceBrowser` (e.g. a segmentation, colours
    :data:`SEGMENTATION`)."""

    #: the legend under the tomogram, left (a long title is centred at the top)
    _legend_kw = {"loc": "lower left", "bbox_to_anchor": (0.02, 0.115)}

    def __init__(self, fig, get_slice, nz, picks, radius, z=None, title=None, outlines=()):
        self.picks = np.asarray(picks, dtype=np.float64).reshape(-1, 4)
        self.radius = float(radius)
        self._circles = []
        if z is None and len(self.picks):
            z = int(round(self.picks[int(np.argmax(self.picks[:, 3])), 2]))
        super().__init__(fig, [("tomogram", get_slice)], nz, z=z, title=title,
                         info=self._count, outlines=outlines)

    def _visible(self, z):
        dz = np.abs(self.picks[:, 2] - z)
        return np.flatnonzero(dz < self.radius)

    def _count(self, z):
        text = "%d of %d picks cut this slice" % (len(self._visible(z)), len(self.picks))
        if len(self.picks):
            lo, hi = float(self.picks[:, 3].min()), float(self.picks[:, 3].max())
            if hi > lo:
                text += "; score %.3g (red) to %.3g (yellow)" % (lo, hi)
        return text

    def _extra_overlays(self):
        from matplotlib.patches import Circle
        for c in self._circles:
            c.remove()
        self._circles = []
        ax = self.axes[0]
        if not len(self.picks):
            return
        lo, hi = float(self.picks[:, 3].min()), float(self.picks[:, 3].max())
        import matplotlib
        cmap = matplotlib.colormaps["autumn"]
        for i in self._visible(self.z):
            x, y, z, s = self.picks[i]
            r = sphere_section_radius(self.radius, self.z - z)
            frac = 1.0 if hi <= lo else (s - lo) / (hi - lo)      # best (or all): yellow
            circ = Circle((x, y), max(r, 0.5), fill=False, lw=1.2, color=cmap(frac))
            ax.add_patch(circ)
            self._circles.append(circ)


def draw_fsc(ax, frequencies, values, resolution, at_nyquist=False, threshold=0.143,
             label="FSC between the half maps"):
    """The FSC curve with the ``threshold`` line and the resolution of the plugin's rule.

    Parameters
    ----------
    frequencies, values : array_like
        Shell frequencies (1/Å) and FSC values.
    resolution : float or None
        The resolution in Å (:func:`cryoprocs.kernels.fsc.fsc_resolution`), shown in the
        legend and as a vertical line; None or inf: the FSC is below the threshold at
        every shell.
    at_nyquist : bool
        The FSC never fell below the threshold: the resolution is written ``<= d Å``.
    """
    f = np.asarray(frequencies, dtype=np.float64)
    v = np.asarray(values, dtype=np.float64)
    ok = resolution is not None and np.isfinite(resolution) and resolution > 0
    res_txt = ("%s%.2f Å" % ("<= " if at_nyquist else "", resolution)) if ok \
        else "below %g at every shell" % threshold
    ax.plot(f, v, "-o", ms=3, color="tab:blue", label="%s (%g: %s)" % (label, threshold,
                                                                       res_txt))
    ax.axhline(threshold, color="k", ls="--", lw=1, label="threshold %g" % threshold)
    if ok:
        ax.axvline(1.0 / resolution, color="tab:red", ls=":", lw=1.2,
                   label="resolution %s" % res_txt)
    ax.set_ylim(-0.1, 1.05)
    ax.set_xlim(0, f.max() if f.size else 1)
    from matplotlib.ticker import FuncFormatter
    ax.xaxis.set_major_formatter(FuncFormatter(_freq_label))
    ax.set_xlabel("spatial frequency (1/Å) and resolution (Å)")
    ax.set_ylabel("FSC")
    ax.grid(True, alpha=0.3)
    ax.legend(fontsize=8, loc="upper right")
    return res_txt


def _freq_label(value, _pos=None):
    """Tick label of a spatial frequency: ``0.025`` over ``(40 Å)``."""
    return "%.3g\n(%.3g Å)" % (value, 1.0 / value) if value > 0 else "0"


class StackGallery:
    """A gallery of image stacks (2D tilt stacks or 3D sub-volumes seen as z stacks): one
    tile per item, the same relative frame of every stack, chosen with a slider.

    Parameters
    ----------
    stacks : list of array_like (n_i, y, x)
        One stack per item (a memory map is fine; stacks may have different lengths).
    titles : list of str
    frame_label : str
        What a frame is ("frame" of a tilt stack, "z" of a sub-volume).
    """

    def __init__(self, fig, stacks, titles, frame_label="frame", title=None, ncols=None):
        from matplotlib.widgets import Slider

        self.fig = fig
        self.stacks = list(stacks)
        self.titles = list(titles)
        self.frame_label = frame_label
        n = len(self.stacks)
        ncols = int(ncols or max(1, int(np.ceil(np.sqrt(max(n, 1) * 1.5)))))
        nrows = max(1, int(np.ceil(n / ncols)))
        self.maxlen = max((len(s) for s in self.stacks), default=1)
        gs = fig.add_gridspec(nrows, ncols, left=0.02, right=0.98, top=0.9, bottom=0.12,
                              wspace=0.05, hspace=0.25)
        self.axes = [fig.add_subplot(gs[i // ncols, i % ncols]) for i in range(n)]
        self.pos = 0.5
        self.images = []
        for ax, s, t in zip(self.axes, self.stacks, self.titles):
            a = self._frame(s)
            self.images.append(_image(ax, a, display_range(a), t))
            ax.title.set_fontsize(7)
        if title:
            fig.suptitle(title, fontsize=10)
        sax = fig.add_axes([0.15, 0.03, 0.7, 0.035])
        self.slider = Slider(sax, frame_label, 0, max(self.maxlen - 1, 1),
                             valinit=self.index_of(self.maxlen), valstep=1, valfmt="%d")
        self.slider.on_changed(self._on_slider)
        _keep(fig, self)

    def index_of(self, length):
        return min(length - 1, int(round(self.pos * (length - 1)))) if length else 0

    def _frame(self, stack):
        return np.asarray(stack[self.index_of(len(stack))], dtype=np.float32)

    def _on_slider(self, value):
        self.set_position(value / max(self.maxlen - 1, 1))

    def set_position(self, fraction):
        """Show, in every stack, the frame at ``fraction`` (0..1) of its length."""
        self.pos = min(max(float(fraction), 0.0), 1.0)
        for im, s in zip(self.images, self.stacks):
            a = self._frame(s)
            im.set_data(a)
            im.set_clim(*display_range(a))
        index = self.index_of(self.maxlen)
        if int(round(self.slider.val)) != index:
            self.slider.set_val(index)
        self.fig.canvas.draw_idle()


class MoviePanel:
    """The preview montage of the movies' central frames, with one play button per movie.

    ``on_play(path)`` is called with the movie's path when its button is pressed (the viewer
    opens the file with the system player); its return value (a message) is shown under the
    buttons."""

    def __init__(self, fig, preview, movies, on_play, title=None):
        from matplotlib.widgets import Button

        self.fig = fig
        self.movies = list(movies)
        self.on_play = on_play
        nb = max(1, len(self.movies))
        ax = fig.add_axes([0.02, 0.2, 0.96, 0.72])
        img = np.asarray(preview)
        ax.imshow(img, cmap="gray" if img.ndim == 2 else None, interpolation="nearest")
        ax.set_axis_off()
        if title:
            ax.set_title(title, fontsize=9)
        self.buttons = []
        width = min(0.3, 0.96 / nb - 0.01)
        for i, (name, path) in enumerate(self.movies):
            bax = fig.add_axes([0.02 + i * (width + 0.01), 0.08, width, 0.07])
            b = Button(bax, "\u25b6 play %s" % name, color="#e0e8f0", hovercolor="#b0c8e0")
            b.label.set_fontsize(8)
            b.on_clicked(lambda _e, p=path: self.play(p))
            self.buttons.append(b)
        self._msg = fig.text(0.02, 0.02, "", fontsize=8)
        _keep(fig, self)

    def play(self, path):
        msg = self.on_play(path)
        self._msg.set_text(msg or "")
        self.fig.canvas.draw_idle()
        return msg


def draw_tilt_plots(fig, angles, pre_exposure=None, defocus_u=None, defocus_v=None,
                    title=None):
    """Per-tilt values of a tilt series against the tilt angle: the pre-exposure (e/Å²)
    and, when given, defocus U/V (Å)."""
    n = 1 + (defocus_u is not None)
    axes = fig.subplots(1, n, squeeze=False)[0]
    a = np.asarray(angles, dtype=np.float64)
    ax = axes[0]
    if pre_exposure is not None:
        ax.plot(a, pre_exposure, "o", ms=4, color="tab:orange")
        ax.set_ylabel("pre-exposure (e/Å²)")
    ax.set_xlabel("tilt angle (deg)")
    ax.grid(True, alpha=0.3)
    ax.set_title("dose", fontsize=9)
    if defocus_u is not None:
        ax = axes[1]
        ax.plot(a, defocus_u, "o", ms=4, label="defocus U")
        if defocus_v is not None:
            ax.plot(a, defocus_v, "s", ms=3, label="defocus V")
        ax.set_xlabel("tilt angle (deg)")
        ax.set_ylabel("defocus (Å)")
        ax.grid(True, alpha=0.3)
        ax.legend(fontsize=8)
        ax.set_title("CTF", fontsize=9)
    if title:
        fig.suptitle(title, fontsize=10)
    return axes


def draw_image_file(fig, image, title=None):
    """An RGB(A) or grey image (e.g. a PNG written by a run) filling the figure."""
    ax = fig.add_axes([0, 0, 1, 0.94 if title else 1])
    img = np.asarray(image)
    ax.imshow(img, cmap="gray" if img.ndim == 2 else None, interpolation="antialiased")
    ax.set_axis_off()
    if title:
        fig.suptitle(title, fontsize=10)
    return ax
