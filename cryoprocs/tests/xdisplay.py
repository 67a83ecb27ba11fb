"""A virtual X display for the GUI tests (not a test module).

:func:`start_display` starts Debian's ``Xvfb`` (installing ``xvfb x11-utils xdotool
imagemagick openbox`` with apt-get when it is missing and the tests run as root, as in CI)
and a window manager when there is one, so Tk windows get decorations. Where Xvfb cannot be
had the GUI tests skip with the reason. :func:`capture` screenshots one window
(ImageMagick ``import``, or Pillow's X11 grab) and :func:`image_stats` measures it.
"""
import os
import shutil
import subprocess
import time

GUI_PACKAGES = ["xvfb", "x11-utils", "xdotool", "imagemagick", "openbox"]
SCREEN = "1600x1000x24"


def _apt_install(packages):
    """Install Debian packages as root; returns an error string or None."""
    if os.geteuid() != 0 or not shutil.which("apt-get"):
        return ("Xvfb / ImageMagick are not installed and apt-get cannot be used here (not "
                "root or no apt): apt-get install %s" % " ".join(packages))
    env = dict(os.environ, DEBIAN_FRONTEND="noninteractive")
    cmd = ["apt-get", "install", "-y", "--no-install-recommends"] + packages
    res = subprocess.run(cmd, env=env, capture_output=True, text=True)
    if res.returncode != 0:              # package lists may be missing on a fresh machine
        subprocess.run(["apt-get", "update"], env=env, capture_output=True, text=True)
        res = subprocess.run(cmd, env=env, capture_output=True, text=True)
    if res.returncode != 0:
        return "apt-get install %s failed: %s" % (" ".join(packages),
                                                  res.stderr.strip()[-300:])
    return None


class Display:
    """A running Xvfb (and window manager); ``name`` is the DISPLAY value."""

    def __init__(self, name, procs, previous=None):
        self.name = name
        self.procs = procs
        self.previous = previous

    def stop(self):
        """Stop the X server (and window manager) and restore ``$DISPLAY``."""
        if self.previous is None:
            os.environ.pop("DISPLAY", None)
        else:
            os.environ["DISPLAY"] = self.previous
        for p in reversed(self.procs):
            if p.poll() is None:
                p.terminate()
                try:
                    p.wait(5)
                except subprocess.TimeoutExpired:
                    p.kill()


def start_display():
    """``(Display, None)`` with ``$DISPLAY`` set, or ``(None, reason)`` when no X server can
    be started."""
    if not (shutil.which("Xvfb") and shutil.which("import")):
        err = _apt_install(GUI_PACKAGES)
        if err or not (shutil.which("Xvfb") and shutil.which("import")):
            return None, err or "Xvfb or ImageMagick's import not found after installing them"
    r, w = os.pipe()
    xvfb = subprocess.Popen(["Xvfb", "-displayfd", str(w), "-screen", "0", SCREEN,
                             "-nolisten", "tcp"], pass_fds=(w,), stdout=subprocess.DEVNULL,
                            stderr=subprocess.DEVNULL)
    os.close(w)
    number = b""
    deadline = time.time() + 20
    while time.time() < deadline and not number.endswith(b"\n"):
        chunk = os.read(r, 16)
        if not chunk:
            break
        number += chunk
    os.close(r)
    if not number.strip():
        xvfb.kill()
        return None, "Xvfb did not start"
    name = ":%s" % number.decode().strip()
    previous = os.environ.get("DISPLAY")
    os.environ["DISPLAY"] = name
    procs = [xvfb]
    if shutil.which("openbox"):
        procs.append(subprocess.Popen(["openbox"], stdout=subprocess.DEVNULL,
                                      stderr=subprocess.DEVNULL))
        time.sleep(0.5)
    return Display(name, procs, previous), None


def capture(window_id, path, display=None):
    """Screenshot of the X window ``window_id`` (with its frame) into the PNG ``path``."""
    os.makedirs(os.path.dirname(os.path.abspath(path)), exist_ok=True)
    if shutil.which("import"):
        subprocess.run(["import", "-window", str(window_id), path], check=True,
                       capture_output=True, timeout=30)
        return path
    raise RuntimeError("ImageMagick's import is not installed")            # pragma: no cover


def image_stats(path):
    """``(std of the grey levels, fraction of pixels differing from the most common value)``
    of a screenshot: a blank window has both near 0."""
    import numpy as np
    from PIL import Image
    g = np.asarray(Image.open(path).convert("L"), dtype=np.float64)
    values, counts = np.unique(g, return_counts=True)
    return float(g.std()), float(1.0 - counts.max() / g.size)
