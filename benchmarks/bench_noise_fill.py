"""Benchmark of the masked-tomogram noise fill (MaskedTomogramNoiseFill, docs/noise-fill.md).

Builds a 300 x 1024 x 1024 float32 tomogram (mean 0.300, std 0.0707, as in
docs/noise-fill.md) with an int8 mask covering ~10 % (a thick ellipsoidal shell, a
solid ellipsoid and a slab, bounding box = most of the volume), writes both as MRC files, and
runs the file -> file pipeline (the code path of the CLI and the protocol) in a fresh process
per configuration, with expansion 10 px and soft edge 4 px, then with expansion 50 px.

Prints wall time and peak RSS (the whole process, ``ru_maxrss``, memory-mapped input
included) and their ratios to the targets (25 s, 2.5 x the tomogram size) and to the
original script's measured figures (139 s / 15.6 GB at expansion 30, 425 s for its default
cube path), for the ``edt`` accelerator (when installed) and for the NumPy fallback.

Run it alone on the machine: ``flock /tmp/cryoprocs-heavy.lock python benchmarks/bench_noise_fill.py``
Options: ``--quick`` (100 x 512 x 512), ``--keep DIR`` (reuse/keep the input files).
"""
import argparse
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time

import numpy as np

TARGET_S = 25.0
TARGET_RSS_RATIO = 2.5
SCRIPT_S_N30 = 139.0
SCRIPT_GB_N30 = 15.6
SCRIPT_S_CUBE_N5 = 425.0

CHILD = r"""
import json, sys, time
from cryoprocs.kernels.noisefill import NoiseFillParams
from cryoprocs.pipelines.noisefill import noise_fill_file
a = json.loads(sys.argv[1])
t0 = time.time()
if a.get("parity"):
    params = NoiseFillParams(parity=True, expansion=a["n"])
else:
    params = NoiseFillParams(expansion=a["n"], soft_edge=a["w"],
                             noise_stats=a.get("stats", "outside"),
                             spectral=a.get("spectral", False))
rep = noise_fill_file(a["tomo"], a["mask"], a["out"], params, threads=a["threads"],
                      overwrite=True)
dt = time.time() - t0
# VmHWM: this process's peak RSS (ru_maxrss would include the parent's peak, kept over exec)
hwm = [int(l.split()[1]) * 1024 for l in open("/proc/self/status") if l.startswith("VmHWM:")][0]
print(json.dumps({"seconds": dt, "maxrss": hwm, "geometry_s": rep["geometry_seconds"], "stats_s": rep["stats_seconds"],
                  "fill_s": rep["fill_seconds"], "mask": rep["mask_voxels"],
                  "expanded": rep["expanded_voxels"], "noise_mean": rep["noise_mean"],
                  "noise_std": rep["noise_std"], "filled_mean": rep["filled_mean"],
                  "filled_std": rep["filled_std"], "crop": rep.get("geometry_bytes")}))
"""


def make_inputs(folder, shape):
    from cryoprocs.convert.mrc import AtomicMrcWriter
    import mrcfile
    tomo_path = os.path.join(folder, "bench_tomo.mrc")
    mask_path = os.path.join(folder, "bench_mask.mrc")
    if os.path.exists(tomo_path) and os.path.exists(mask_path):
        return tomo_path, mask_path
    nz, ny, nx = shape
    zz = np.arange(nz)[:, None, None]
    yy = np.arange(ny)[None, :, None]
    xx = np.arange(nx)[None, None, :]
    rng = np.random.default_rng(0)
    tw = AtomicMrcWriter(tomo_path, shape, 10.0, overwrite=True)
    mrc = mrcfile.new_mmap(mask_path, shape=shape, mrc_mode=0, overwrite=True)
    mrc.voxel_size = 10.0
    inside = 0
    for z0 in range(0, nz, 16):
        z = zz[z0:z0 + 16]
        # a vesicle-like thick shell, a solid organelle and a lamella-like slab
        r1 = ((z - 0.5 * nz) / (0.30 * nz)) ** 2 + ((yy - 0.45 * ny) / (0.30 * ny)) ** 2 \
            + ((xx - 0.40 * nx) / (0.30 * nx)) ** 2
        r2 = ((z - 0.45 * nz) / (0.15 * nz)) ** 2 + ((yy - 0.75 * ny) / (0.15 * ny)) ** 2 \
            + ((xx - 0.78 * nx) / (0.15 * nx)) ** 2
        m = ((r1 <= 1.0) & (r1 >= 0.60)) | (r2 <= 1.0)
        m = m | ((z >= int(0.85 * nz)) & (z < int(0.85 * nz) + max(1, nz // 30))
                 & (yy >= 0) & (xx >= 0))
        inside += int(m.sum())
        mrc.data[z0:z0 + m.shape[0]] = m.astype(np.int8)
        t = rng.standard_normal(m.shape, dtype=np.float32) * np.float32(0.0707) \
            + np.float32(0.3)
        t[m] += np.float32(0.05)
        tw.write(z0, t)
    mrc.close()
    tw.commit()
    print("inputs: %s, mask covers %.1f %%" % ("x".join(map(str, shape[::-1])),
                                                100.0 * inside / np.prod(shape)))
    return tomo_path, mask_path


def run_case(tomo, mask, out, n, w, threads, extra=None):
    args = {"tomo": tomo, "mask": mask, "out": out, "n": n, "w": w, "threads": threads}
    args.update(extra or {})
    res = subprocess.run([sys.executable, "-c", CHILD, json.dumps(args)],
                         stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    if res.returncode != 0:
        raise RuntimeError(res.stderr[-3000:])
    return json.loads(res.stdout.strip().splitlines()[-1])


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__,
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--quick", action="store_true", help="100 x 512 x 512 instead")
    ap.add_argument("--keep", metavar="DIR", help="folder for the inputs (kept)")
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--expansions", type=int, nargs="+", default=[10, 50])
    ap.add_argument("--parity", action="store_true",
                    help="also time --parity at expansion 30 (the script's example; the "
                         "script itself: 139 s / 15.6 GB)")
    ap.add_argument("--spectral", action="store_true",
                    help="also time the spectrally matched noise (expansion 10)")
    args = ap.parse_args(argv)
    shape = (100, 512, 512) if args.quick else (300, 1024, 1024)
    folder = args.keep or tempfile.mkdtemp(prefix="cryoprocs_bench_nf_")
    os.makedirs(folder, exist_ok=True)
    try:
        t0 = time.time()
        tomo, mask = make_inputs(folder, shape)
        print("input files ready in %.1f s (%s)" % (time.time() - t0, folder))
        tomo_bytes = int(np.prod(shape)) * 4
        print("tomogram %s float32 = %.2f GB; targets: <= %.0f s, peak RSS <= %.1f x = %.2f GB"
              % ("x".join(map(str, shape[::-1])), tomo_bytes / 1e9, TARGET_S,
                 TARGET_RSS_RATIO, TARGET_RSS_RATIO * tomo_bytes / 1e9))
        print("%-7s %4s %4s %8s %8s %8s %8s %9s %9s  %s" % (
            "", "N", "W", "time s", "t/25s", "RSS GB", "RSS/tomo", "vs 139 s",
            "vs 15.6GB", "(geometry / stats / fill s)"))
        for n in args.expansions:
            r = run_case(tomo, mask, os.path.join(folder, "out.mrc"), n, 4, args.threads)
            rss = r["maxrss"]
            print("%-7s %4d %4d %8.1f %8.2f %8.2f %8.2f %9.3f %9.3f  (%.1f / %.1f / %.1f)"
                  % ("", n, 4, r["seconds"], r["seconds"] / TARGET_S, rss / 1e9,
                     rss / tomo_bytes, r["seconds"] / SCRIPT_S_N30,
                     rss / (SCRIPT_GB_N30 * 1e9), r["geometry_s"], r["stats_s"],
                     r["fill_s"]))
            sys.stdout.flush()
        if args.spectral:
            r2 = run_case(tomo, mask, os.path.join(folder, "out.mrc"), 10, 4, args.threads,
                          {"spectral": True})
            print("%-7s %4d %4d %8.1f %8.2f %8.2f %8.2f %9.3f %9.3f  (%.1f / %.1f / %.1f)"
                  "  spectrally matched noise"
                  % ("", 10, 4, r2["seconds"], r2["seconds"] / TARGET_S, r2["maxrss"] / 1e9,
                     r2["maxrss"] / tomo_bytes, r2["seconds"] / SCRIPT_S_N30,
                     r2["maxrss"] / (SCRIPT_GB_N30 * 1e9), r2["geometry_s"], r2["stats_s"],
                     r2["fill_s"]))
        if args.parity:
            r3 = run_case(tomo, mask, os.path.join(folder, "out.mrc"), 30, 0, args.threads,
                          {"parity": True})
            print("%-7s %4d %4s %8.1f %8s %8.2f %8.2f %9.3f %9.3f  (%.1f / %.1f / %.1f)"
                  "  --parity (the script's algorithm, same voxels)"
                  % ("", 30, "-", r3["seconds"], "-", r3["maxrss"] / 1e9,
                     r3["maxrss"] / tomo_bytes, r3["seconds"] / SCRIPT_S_N30,
                     r3["maxrss"] / (SCRIPT_GB_N30 * 1e9), r3["geometry_s"], r3["stats_s"],
                     r3["fill_s"]))
        print("original script: %.0f s / %.1f GB at N = 30, %.0f s for its N = 5 cube path "
              "(docs/noise-fill.md, same machine class)"
              % (SCRIPT_S_N30, SCRIPT_GB_N30, SCRIPT_S_CUBE_N5))
        print("noise: mean %.4f std %.4f, filled region mean %.4f std %.4f (data 0.300 / 0.0707)"
              % (r["noise_mean"], r["noise_std"], r["filled_mean"], r["filled_std"]))
    finally:
        if not args.keep:
            shutil.rmtree(folder, ignore_errors=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
