"""Plumbing shared by the cryoprocs viewers: plot windows (matplotlib in Tk, as pwem's
plotters), the viewer form with the ecosystem viewers as extra choices, volume reading, and
opening a file with the system's player.

The figures themselves are drawn by :mod:`cryoprocs.plots` (no pyworkflow there).
"""
import logging
import os
import shutil
import subprocess
import sys

import numpy as np
import pyworkflow.protocol.params as params
import pyworkflow.viewer as pwviewer
from pyworkflow.gui.plotter import Plotter

logger = logging.getLogger(__name__)


class FigureView(Plotter):
    """A plot window whose figure is drawn by ``draw(figure)`` (a :mod:`cryoprocs.plots`
    function); in the Scipion GUI (TkAgg backend) it is a Tk window with matplotlib's
    toolbar. ``handle`` is what ``draw`` returned (e.g. a slice browser)."""

    def __init__(self, draw, windowTitle, figsize=(10, 6)):
        Plotter.__init__(self, figsize=figsize, windowTitle=windowTitle)
        self.tightLayoutOn = False
        self.windowTitle = windowTitle
        self.handle = draw(self.figure)

    def show(self, interactive=True, block=False):
        import matplotlib.pyplot as plt
        self.figure.canvas.draw_idle()
        plt.show(block=block)


def read_volume(path):
    """A lazy read-only ``[z, y, x]`` volume whose slices are read on demand: the memory map
    of an MRC file, or, for an OME-Zarr store (a folder or URL, e.g. a copick tomogram or
    segmentation), the :class:`~cryoprocs.convert.zarr_image.ZarrImage` of its level 0
    opened by :func:`cryoprocs.convert.images.open_image` (``vol[z]``, ``vol[:, y, :]``,
    ``shape`` and ``len`` as for the memory map; only the chunks a slice cuts are read).

    Raises
    ------
    MrcFormatError
        missing or unreadable file or store (``ZarrFormatError`` for OME-Zarr).
    """
    from ..convert.images import is_image_store, open_image
    if is_image_store(path):
        return open_image(path)
    from ..convert.mrc import MappedMrc
    return MappedMrc(path, permissive=True).data


def read_image(location):
    """One image of a Scipion ``(index, file)`` location as float32 ``[y, x]``."""
    from ..convert.mrc import read_mrc
    index, fn = location
    a = read_mrc(fn, index=int(index) if index else None, dtype=np.float32, permissive=True)
    return a[0] if a.ndim == 3 and a.shape[0] == 1 else a


def system_open(path):
    """Open ``path`` with the desktop's default application (the system video player for a
    movie): ``xdg-open`` on Linux, ``open`` on macOS, the file association on Windows.
    Returns a message for the user (never raises)."""
    path = os.path.abspath(path)
    if not os.path.exists(path):
        return "File not found: %s" % path
    try:
        if os.name == "nt":                                  # pragma: no cover
            os.startfile(path)                               # noqa: S606
            return "Opened %s" % path
        cmd = ["open"] if sys.platform == "darwin" else None
        if cmd is None:
            for opener in (["xdg-open"], ["gio", "open"]):
                if shutil.which(opener[0]):
                    cmd = opener
                    break
        if cmd is None:
            return ("No system player found (xdg-open is missing): open %s with a video "
                    "player" % path)
        subprocess.Popen(cmd + [path], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                         start_new_session=True)
        return "Opening %s with %s" % (os.path.basename(path), " ".join(cmd))
    except OSError as exc:
        return "Cannot open %s: %s" % (path, exc)


# ------------------------------------------------------------------ ecosystem viewers
def viewer_available(viewerClass):
    """``(available, reason)`` for a viewer of another plugin in this installation:
    ChimeraX viewers need the ChimeraX program, Xmipp's showj needs the xmipp3 plugin and the
    Qt table viewer the xcb libraries (:mod:`cryoprocs.sysdeps`); other viewers (tomo's Tk
    dialogs, FSC plots, napari where installed) are offered as they are."""
    module = viewerClass.__module__
    name = viewerClass.getName()
    if "chimera" in module.lower() or "chimera" in name.lower():
        try:
            from pwem.viewers.viewer_chimera import Chimera
            prog = Chimera.getProgram()
        except Exception:                       # pragma: no cover - broken chimera plugin
            prog = None
        if (prog and os.path.exists(prog)) or shutil.which("ChimeraX"):
            return True, ""
        return False, "ChimeraX is not installed"
    if "mdviewer" in module:
        from ..sysdeps import missing_gui_packages
        missing = missing_gui_packages()["qt"]
        return (not missing), ("missing %s" % " ".join(missing) if missing else "")
    try:
        from pwem.viewers.viewers_data import DataViewer
        if issubclass(viewerClass, DataViewer):
            from pwem import Domain
            if "xmipp3" not in Domain.getPlugins():
                return False, "Xmipp (scipion-em-xmipp) is not installed"
    except ImportError:                         # pragma: no cover
        pass
    return True, ""


def other_viewers(protocol):
    """``[(label, outputName, viewerClass)]``: the viewers of the other plugins that can
    show an output of ``protocol`` in this installation (:func:`viewer_available`)."""
    from pwem import Domain
    out = []
    for name, obj in protocol.iterOutputAttributes():
        for v in Domain.findViewers(obj, pwviewer.DESKTOP_TKINTER):
            if v.__module__.startswith("cryoprocs."):
                continue
            ok, _ = viewer_available(v)
            if ok:
                out.append(("%s with %s" % (name, v.getName()), name, v))
    return out


class CryoprocsProtocolViewer(pwviewer.ProtocolViewer):
    """Base of the cryoprocs "Analyze Results" forms: each subclass defines its views in
    :meth:`_defineViews` / :meth:`_views` (param name -> function returning views); the
    ecosystem viewers that work here are offered as extra choices ("Open an output with")."""
    _environments = [pwviewer.DESKTOP_TKINTER]
    _label = None

    def _defineParams(self, form):
        form.addSection(label='Visualization')
        self._defineViews(form)
        self._others = other_viewers(self.protocol)
        if self._others:
            form.addParam('otherViewer', params.EnumParam,
                          choices=[lab for lab, _, _ in self._others], default=0,
                          display=params.EnumParam.DISPLAY_COMBO,
                          label='Open an output with',
                          help='Viewers of other Scipion plugins that can show this run\'s '
                               'outputs in this installation (ChimeraX, Xmipp, napari, the '
                               'table viewer: each where installed).')

    def _defineViews(self, form):
        raise NotImplementedError

    def _views(self):
        return {}

    def _getVisualizeDict(self):
        d = dict(self._views())
        if getattr(self, '_others', None):
            d['otherViewer'] = self._showOther
        return d

    def _showOther(self, paramName=None):
        _, outName, viewerClass = self._others[self.otherViewer.get()]
        viewer = viewerClass(project=self.getProject(), protocol=self.protocol,
                             parent=self.getWindow())
        viewer.visualize(getattr(self.protocol, outName), windows=getattr(self, 'windows', None),
                         protocol=self.protocol)
        return []

    # ---------------------------------------------------------------- helpers
    def _path(self, path):
        """Absolute path of a file stored relative to the project."""
        from ..convert.images import is_url
        if path is None or os.path.isabs(path) or is_url(path):
            return path
        return os.path.join(self.getProject().getPath(), path)

    def _title(self, what, width=90):
        import textwrap
        return '\n'.join(textwrap.wrap('%s: %s' % (self.protocol.getRunName(), what), width))

    def _message(self, text, title='cryoprocs viewer'):
        return [pwviewer.MessageView(text, title=title, tkParent=self.getTkRoot())]


def tsid_choices(items):
    """Sorted tsIds of an iterable of Scipion items (tomograms, masks, ...)."""
    return sorted({str(t.getTsId()) for t in items})
