"""Comparison of an extraction output with RELION 5.0.1's reference outputs in the reference
data ``relion5_extract`` (helpers for the CLI and protocol tests; not a test module).

The bars (docs/extract-subtomos.md): every stack within ``16 * spacing(float32(max|tilts| /
bin))`` of RELION's, float16 stacks within one float16 step of RELION's own rounding, the same
particles kept and the same frames, and the same STAR values in every column RELION writes.
"""
import json
import os

import mrcfile
import numpy as np
import starfile

from . import shared_data, shared_data_root

PACK = "relion5_extract"


def pack_dir():
    return shared_data(PACK)


def case_ids():
    """Short ids of the extraction cases in the reference data in use, for parametrising at
    collection time (no skip there): all six with the full pack, ``c1`` with the repository
    subset."""
    root = shared_data_root()
    path = os.path.join(root, PACK, "cases.json") if root else ""
    if not os.path.exists(path):
        return []
    return sorted(os.path.basename(c["folder"]).split("_")[0]
                  for c in json.load(open(path))["cases"]
                  if c["program"] == "relion_tomo_subtomo")


def case(cid):
    """The extraction case ``cid``; skips the calling test, saying so, when the reference data
    in use do not have it (the repository subset ships c1 only)."""
    found = cases()
    if cid not in found:
        import pytest
        pytest.skip("RELION reference case %s is not in the reference data in use (%s); the "
                    "full pack has c1-c6" % (cid, ", ".join(sorted(found)) or "none"))
    return found[cid]


def cases():
    """``{short id: case dict}`` (``c1`` ... ``c6``) of the extraction cases of cases.json,
    each with the parsed settings added under ``"settings"``."""
    base = pack_dir()
    data = json.load(open(os.path.join(base, "cases.json")))
    out = {}
    for case in data["cases"]:
        if case["program"] != "relion_tomo_subtomo":
            continue
        argv = case["argv"]
        opt = {}
        i = 1
        while i < len(argv):
            a = argv[i]
            if i + 1 < len(argv) and not argv[i + 1].startswith("--"):
                opt[a] = argv[i + 1]
                i += 2
            else:
                opt[a] = True
                i += 1
        box = int(opt["--b"])
        case["settings"] = dict(box=box, crop=int(opt.get("--crop", box)),
                                binning=float(opt.get("--bin", 1)),
                                do_ctf="--no_ctf" not in opt,
                                circle_crop="--no_circle_crop" not in opt,
                                float16="--float16" in opt,
                                max_dose=float(opt.get("--max_dose", -1)),
                                min_frames=int(opt.get("--min_frames", 1)))
        out[os.path.basename(case["folder"]).split("_")[0]] = case
    return out


def max_abs_tilts():
    with mrcfile.open(os.path.join(pack_dir(), "tiltseries", "TS_01.mrcs"),
                      permissive=True) as m:
        return float(np.abs(m.data).max())


def compare_stacks(ours_dir, case):
    """Compare ``<ours_dir>/Subtomograms/TS_01/*_stack2d.mrcs`` with the reference.

    Returns a dict with ``worst_units`` (max diff / bar unit), ``bit_exact`` (fraction of
    float16 voxels identical) and the checked file names. Raises AssertionError.
    """
    ref_dir = os.path.join(pack_dir(), case["folder"], "Subtomograms", "TS_01")
    ours_sub = os.path.join(ours_dir, "Subtomograms", "TS_01")
    ref_files = sorted(os.listdir(ref_dir))
    ours_files = sorted(f for f in os.listdir(ours_sub) if not f.startswith("."))
    assert ours_files == ref_files, (ours_files, ref_files)
    s = case["settings"]
    unit = np.spacing(np.float32(max_abs_tilts() / s["binning"]))
    worst, same, total = 0.0, 0, 0
    for fn in ref_files:
        name = "TS_01/" + fn.split("_")[0]
        with mrcfile.open(os.path.join(ref_dir, fn), permissive=True) as m:
            ref = np.array(m.data)
        with mrcfile.open(os.path.join(ours_sub, fn)) as m:
            ours = np.array(m.data)
            assert m.header.mode == (12 if s["float16"] else 2), (fn, m.header.mode)
            assert abs(float(m.voxel_size.x) - 6.72 * s["binning"]) < 1e-4
        assert ours.shape == ref.shape, (fn, ours.shape, ref.shape)
        assert ours.shape[0] == case["frames_per_particle"][name]
        assert ours.dtype == ref.dtype, (fn, ours.dtype, ref.dtype)
        d = np.abs(ours.astype(np.float64) - ref.astype(np.float64)).max()
        if s["float16"]:
            step = float(np.spacing(np.float16(np.abs(ref.astype(np.float32)).max())))
            assert d <= step, (fn, d, step)
            worst = max(worst, d / step)
            same += int((ours.view(np.uint16) == ref.view(np.uint16)).sum())
            total += ours.size
        else:
            assert d <= 16 * unit, (fn, d, 16 * unit)
            worst = max(worst, d / unit)
    return {"worst_units": worst, "files": ref_files,
            "bit_exact": same / total if total else None}


def _num(a):
    return np.asarray(a, dtype=np.float64)


def compare_star(ours_particles_star, case, image_prefix=None):
    """Compare our particles.star with RELION's: general and optics equal, the same particles
    (in the same order) and, in every column RELION writes, the same values (numbers to 1e-5;
    ``rlnImageName`` after replacing RELION's output prefix by ``image_prefix`` when given)."""
    ref = starfile.read(os.path.join(pack_dir(), case["folder"], "particles.star"),
                        always_dict=True)
    ours = starfile.read(ours_particles_star, always_dict=True)
    assert int(ours["general"]["rlnTomoSubTomosAre2DStacks"]) == \
        int(ref["general"]["rlnTomoSubTomosAre2DStacks"]) == 1
    for block in ("optics", "particles"):
        r, o = ref[block], ours[block]
        assert list(o.columns) == list(r.columns), (block, list(o.columns), list(r.columns))
        assert len(o) == len(r), (block, len(o), len(r))
        for col in r.columns:
            if col == "rlnImageName":
                prefix = case["folder"] + "/"
                want = [v.replace(prefix, image_prefix, 1) if image_prefix is not None else v
                        for v in r[col].astype(str)]
                got = list(o[col].astype(str))
                if image_prefix is None:
                    got = [g[g.index("Subtomograms/"):] for g in got]
                    want = [w[w.index("Subtomograms/"):] for w in want]
                assert got == want, (col, got[:2], want[:2])
            elif r[col].dtype.kind in "fiu":
                assert np.allclose(_num(o[col]), _num(r[col]), rtol=0, atol=1e-5), \
                    (block, col, _num(o[col])[:3], _num(r[col])[:3])
            else:
                assert list(o[col].astype(str)) == list(r[col].astype(str)), (block, col)
    return ours
