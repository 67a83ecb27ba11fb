"""Rebuild the in-repository reference subset from the full reference data (maintainers only).

    python cryoprocs/tests/reference_data/build.py /path/to/shared/data

Copies the files listed in :data:`FILES` (paths relative to the data folder, the same layout
the tests use) as xz-compressed files ``<path>.xz`` next to this script, and writes
``manifest.json`` with the sha256 of every decompressed file. Float32 MRC files are stored with
their bytes regrouped by position in the 4-byte word ("shuffle": the exponent bytes compress
together), which the reader undoes. Two files are reduced, each without changing what the
reference program computed from them (see README.md):

* ``relion5_extract/tiltseries/TS_01.mrcs``: pixels that no box of the shipped cases reads are
  set to 0 (RELION reads only the boxes it cuts; the global maximum, which sets the test
  tolerance, is kept);
* ``xmipp_masks/cases.json``: only the shipped cases.
"""
import hashlib
import json
import lzma
import os
import sys

import numpy as np

HERE = os.path.dirname(os.path.abspath(__file__))

XMIPP_CASES = ("m2d03_circular_default_fillavg", "m2d05_circular_r30_shift_fillmax",
               "m2d07_gaussian_default", "m2d11_createdmask_softellipse",
               "m2d12_crown_default_inner0_ERROR", "m3d02_sphere_r15_shift_fillavg",
               "m3d05_cylinder_r12_h20", "m3d08_raisedcrown_6_18_decay3",
               "m3d09_createdmask_binary")
RELION_EXTRACT = ("Extract/c1_b32_crop32_bin2",)
RELION_RECONSTRUCT = ("Reconstruct/c7_b32_bin2_C1",)


def files(src):
    out = ["xmipp_masks/inputs/in2d_relion31crop_5x101x101.mrcs",
           "xmipp_masks/inputs/in3d_emd3883crop_x41y46z39.mrc",
           "xmipp_masks/inputs/createdmask2d_softellipse_101x101.mrc",
           "xmipp_masks/inputs/createdmask3d_binary_thr_x41y46z39.mrc"]
    for cid in XMIPP_CASES:
        folder = os.path.join(src, "xmipp_masks", "cases", cid)
        if os.path.isdir(folder):
            out += ["xmipp_masks/cases/%s/%s" % (cid, f) for f in sorted(os.listdir(folder))]
    real = "cryocat_peaks/real"
    out += ["%s/%s" % (real, f) for f in sorted(os.listdir(os.path.join(src, real)))
            if f.endswith((".mrc", ".csv"))]
    out += ["%s/cryocat_out/%s" % (real, f)
            for f in sorted(os.listdir(os.path.join(src, real, "cryocat_out")))]
    out += ["cryocat_peaks/generator/make_synthetic.py"]
    r5 = "relion5_extract"
    out += ["%s/%s" % (r5, f) for f in ("tomograms.star", "particles.star",
                                        "tiltseries/TS_01.star", "tiltseries/TS_01.mrcs",
                                        "phantom_truth.json")]
    for case in RELION_EXTRACT + RELION_RECONSTRUCT:
        for root, _dirs, names in os.walk(os.path.join(src, r5, case)):
            for n in sorted(names):
                out.append(os.path.relpath(os.path.join(root, n), src))
    out += ["real/cylindra/%s" % f for f in ("13pf_MT.mrc", "13pf_MT_tube_mask_r16.mrc",
                                              "14pf_MT.mrc", "14pf_MT_tube_mask_r16.mrc")]
    out += ["real/cryocat_tilt_stack/tilt_stack.mrc",
            "real/hiv_vlp/hiv_particle_shell_mask_r3.mrc"]
    return out


def xmipp_cases_json(src):
    data = json.load(open(os.path.join(src, "xmipp_masks", "cases.json")))
    data["cases"] = [c for c in data["cases"] if c["id"] in XMIPP_CASES]
    data["note"] = ("in-repository subset of the full reference pack: %d of its cases"
                    % len(data["cases"]))
    return json.dumps(data, indent=1).encode()


def relion_cases_json(src):
    data = json.load(open(os.path.join(src, "relion5_extract", "cases.json")))
    keep = RELION_EXTRACT + RELION_RECONSTRUCT
    data["cases"] = [c for c in data["cases"] if c["folder"] in keep]
    return json.dumps(data, indent=1).encode()


def reduced_tilt_series(src):
    """TS_01.mrcs with the pixels outside every box the shipped cases read set to 0: boxes of
    s0 = 64 px (all shipped cases: box 32 at bin 2) around each particle's projection in every
    frame, plus a 2-px margin, plus the pixel holding the maximum |value|."""
    import mrcfile
    sys.path.insert(0, os.path.abspath(os.path.join(HERE, "..", "..", "..")))
    from cryoprocs.convert import relion5
    from cryoprocs.kernels import relion_geometry
    proj = os.path.join(src, "relion5_extract")
    tomograms = relion5.read_tomograms(os.path.join(proj, "tomograms.star"))
    ts = relion5.load_tilt_series(tomograms.iloc[0], proj)
    pt = relion5.read_particles(os.path.join(proj, "particles.star"))
    pos = relion5.particle_positions(pt.particles, relion5.optics_pixel_sizes(pt.optics),
                                     ts.tomo_size)
    q = relion_geometry.project(ts.matrices, pos)
    path = os.path.join(proj, "tiltseries", "TS_01.mrcs")
    with mrcfile.open(path, permissive=True) as m:
        data = np.array(m.data)
    keep = np.zeros(data.shape, bool)
    F, H, W = data.shape
    half = 32 + 2
    for f in range(F):
        for cx, cy in np.round(q[f, :, :2]).astype(int):
            keep[f, max(0, cy - half):min(H, cy + half), max(0, cx - half):min(W, cx + half)] = 1
    keep[np.unravel_index(np.abs(data).argmax(), data.shape)] = True
    raw = bytearray(open(path, "rb").read())
    offset = len(raw) - data.nbytes
    reduced = np.where(keep, data, np.float32(0)).astype(data.dtype)
    raw[offset:] = reduced.tobytes()
    return bytes(raw), float(keep.mean())


def shuffle(raw):
    return np.frombuffer(raw, np.uint8).reshape(-1, 4).T.tobytes()


def main(src):
    manifest = {}
    total = 0
    for rel in files(src):
        note = None
        if rel == "relion5_extract/tiltseries/TS_01.mrcs":
            raw, frac = reduced_tilt_series(src)
            note = "pixels never read by the shipped cases set to 0 (%.0f %% kept)" % (100 * frac)
        else:
            raw = open(os.path.join(src, rel), "rb").read()
        use_shuffle = rel.endswith((".mrc", ".mrcs")) and len(raw) % 4 == 0
        packed = lzma.compress(shuffle(raw) if use_shuffle else raw,
                               preset=9 | lzma.PRESET_EXTREME)
        dst = os.path.join(HERE, rel + ".xz")
        os.makedirs(os.path.dirname(dst), exist_ok=True)
        open(dst, "wb").write(packed)
        total += len(packed)
        manifest[rel] = {"sha256": hashlib.sha256(raw).hexdigest(), "shuffle": use_shuffle}
        if note:
            manifest[rel]["reduced"] = note
    for rel, blob in (("xmipp_masks/cases.json", xmipp_cases_json(src)),
                      ("relion5_extract/cases.json", relion_cases_json(src))):
        dst = os.path.join(HERE, rel + ".xz")
        packed = lzma.compress(blob, preset=9 | lzma.PRESET_EXTREME)
        open(dst, "wb").write(packed)
        total += len(packed)
        manifest[rel] = {"sha256": hashlib.sha256(blob).hexdigest(), "shuffle": False,
                         "reduced": "only the shipped cases"}
    with open(os.path.join(HERE, "manifest.json"), "w") as fh:
        json.dump(manifest, fh, indent=1, sort_keys=True)
    print("%d files, %.2f MB compressed" % (len(manifest), total / 1e6))


if __name__ == "__main__":
    main(os.path.abspath(sys.argv[1] if len(sys.argv) > 1 else
                         os.path.join(HERE, "..", "..", "..", "..", "shared", "data")))
