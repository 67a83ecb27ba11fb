"""System packages the Scipion GUI needs in a pip-only install (no pyworkflow import).

pip installs Python packages only: the Tk windows of the Scipion GUI need Tcl/Tk, and
Scipion's table viewer (metadata-viewer, Qt 5) needs three X11 xcb libraries that Debian
and Ubuntu do not install with a desktop by default ("Could not load the Qt platform
plugin xcb" otherwise). :func:`missing_gui_packages` names the Debian packages to install;
``cryoprocs demo`` prints them.
"""
import ctypes

__all__ = ["QT_XCB_LIBRARIES", "missing_gui_packages", "gui_packages_message"]

#: Debian package -> shared library that Qt's xcb platform plugin loads
QT_XCB_LIBRARIES = {"libxcb-icccm4": "libxcb-icccm.so.4",
                    "libxcb-keysyms1": "libxcb-keysyms.so.1",
                    "libxcb-xinerama0": "libxcb-xinerama.so.0"}

TK_PACKAGES = "python3-tk (Debian's python3) or tk8.6 / libtk8.6 (a Python built from source)"


def _loadable(soname):
    try:
        ctypes.CDLL(soname)
        return True
    except OSError:
        return False


def missing_gui_packages():
    """``{"tk": [...], "qt": [...]}``: the Debian packages missing for the Tk GUI and for
    the Qt table viewer (empty lists when everything is there)."""
    missing = {"tk": [], "qt": []}
    try:
        import tkinter              # noqa: F401  (needs libtk8.6 / python3-tk)
        import _tkinter             # noqa: F401
    except ImportError:
        missing["tk"].append(TK_PACKAGES)
    missing["qt"] = [pkg for pkg, lib in QT_XCB_LIBRARIES.items() if not _loadable(lib)]
    return missing


def gui_packages_message():
    """Lines telling what to install for the GUI, or an empty list when nothing is missing."""
    m = missing_gui_packages()
    lines = []
    if m["tk"]:
        lines.append("The Scipion GUI needs Tk: install %s." % m["tk"][0])
    if m["qt"]:
        lines.append("Scipion's table viewer (Qt) needs: sudo apt-get install %s"
                     % " ".join(m["qt"]))
    return lines
