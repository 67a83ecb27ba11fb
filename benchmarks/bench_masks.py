"""Benchmark: ApplyMask kernels vs a plain mrcfile read + write of the same data.

Targets (2-core machine, docs/apply-mask.md): masking time / plain read+write time <= 1.5, and peak memory
above the start <= 1 GB whatever the stack size, for
  * 20,000 particles of 128x128 (one .mrcs stack, 1.3 GB) and
  * 100 volumes of 128^3 (100 .mrc files, 0.84 GB),
masked with a raised-cosine mask (file -> file, the `cryoprocs mask` / protocol path).

Each measured operation runs in its own process (clean peak RSS); operations are repeated
and the median is reported. Usage: python benchmarks/bench_masks.py [--particles N]
[--volumes N] [--repeat R] [--threads T] [--workdir DIR]
"""
import argparse
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time

import numpy as np


def _status_mb(key):
    """VmRSS / VmHWM of this process in MB (VmHWM, unlike ru_maxrss, is reset by exec)."""
    with open("/proc/self/status") as fh:
        for line in fh:
            if line.startswith(key + ":"):
                return int(line.split()[1]) / 1024.0
    return 0.0


def _drop(path):
    """Remove an output so each repetition writes a new file."""
    if os.path.isdir(path):
        shutil.rmtree(path)
    elif os.path.exists(path):
        os.remove(path)


def op_main(op, workdir, threads):
    """One measured operation (child process): prints JSON {seconds, peak_mb_above_start}."""
    import mrcfile

    sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
    from cryoprocs.pipelines.masks import MaskRecipe, mask_file

    stack = os.path.join(workdir, "particles.mrcs")
    vols = [os.path.join(workdir, "vols", f) for f in sorted(os.listdir(os.path.join(workdir, "vols")))]
    out_dir = os.path.join(workdir, "out_" + op)
    _drop(out_dir)
    os.makedirs(out_dir)
    recipe2d = MaskRecipe("raised_cosine", {"inner_radius": 40, "outer_radius": 60})
    recipe3d = MaskRecipe("raised_cosine", {"inner_radius": 40, "outer_radius": 60})
    start = _status_mb("VmRSS")
    t0 = time.perf_counter()
    if op == "read_write_stack":
        data = mrcfile.read(stack)
        mrcfile.write(os.path.join(out_dir, "o.mrcs"), data, voxel_size=1.0)
    elif op == "mask_stack":
        mask_file(stack, os.path.join(out_dir, "o.mrcs"), recipe2d, threads=threads)
    elif op == "read_write_volumes":
        for v in vols:
            data = mrcfile.read(v)
            mrcfile.write(os.path.join(out_dir, os.path.basename(v)), data, voxel_size=1.0)
    elif op == "mask_volumes":
        from concurrent.futures import ThreadPoolExecutor

        def one(v):
            mask_file(v, os.path.join(out_dir, os.path.basename(v)), recipe3d)
        if threads > 1:
            with ThreadPoolExecutor(threads) as pool:
                list(pool.map(one, vols))
        else:
            for v in vols:
                one(v)
    else:
        raise SystemExit("unknown op %s" % op)
    seconds = time.perf_counter() - t0
    peak = _status_mb("VmHWM")
    _drop(out_dir)
    print(json.dumps({"op": op, "seconds": seconds, "peak_mb_above_start": peak - start}))


def run_op(op, workdir, threads):
    out = subprocess.run([sys.executable, os.path.abspath(__file__), "--op", op,
                          "--workdir", workdir, "--threads", str(threads)],
                         capture_output=True, text=True, check=True)
    return json.loads(out.stdout.strip().splitlines()[-1])


def make_data(workdir, n_particles, n_volumes):
    import mrcfile
    rng = np.random.default_rng(0)
    stack = os.path.join(workdir, "particles.mrcs")
    if not os.path.exists(stack):
        mrc = mrcfile.new_mmap(stack, shape=(n_particles, 128, 128), mrc_mode=2)
        for i0 in range(0, n_particles, 1000):
            i1 = min(i0 + 1000, n_particles)
            mrc.data[i0:i1] = rng.standard_normal((i1 - i0, 128, 128), dtype=np.float32)
        mrc.set_image_stack()
        mrc.close()
    os.makedirs(os.path.join(workdir, "vols"), exist_ok=True)
    for k in range(n_volumes):
        path = os.path.join(workdir, "vols", "vol_%03d.mrc" % k)
        if not os.path.exists(path):
            mrcfile.write(path, rng.standard_normal((128, 128, 128), dtype=np.float32))


def main():
    ap = argparse.ArgumentParser(description=__doc__,
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--op", help=argparse.SUPPRESS)
    ap.add_argument("--particles", type=int, default=20000)
    ap.add_argument("--volumes", type=int, default=100)
    ap.add_argument("--repeat", type=int, default=3)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--workdir")
    args = ap.parse_args()
    if args.op:
        return op_main(args.op, args.workdir, args.threads)
    workdir = args.workdir or tempfile.mkdtemp(prefix="bench_masks_", dir=os.getcwd())
    own = args.workdir is None
    try:
        make_data(workdir, args.particles, args.volumes)
        results = {}
        for kind in ("stack", "volumes"):
            for op in ("read_write_" + kind, "mask_" + kind):     # warm the page cache
                run_op(op, workdir, args.threads)
            for _ in range(args.repeat):
                for op in ("read_write_" + kind, "mask_" + kind):
                    results.setdefault(op, []).append(run_op(op, workdir, args.threads))
        print("cryoprocs mask benchmark: %d particles 128^2, %d volumes 128^3, raised cosine, "
              "%d threads, median of %d" % (args.particles, args.volumes, args.threads,
                                            args.repeat))
        ok = True
        for kind in ("stack", "volumes"):
            base = statistics.median(r["seconds"] for r in results["read_write_" + kind])
            mask = statistics.median(r["seconds"] for r in results["mask_" + kind])
            peak = max(r["peak_mb_above_start"] for r in results["mask_" + kind])
            base_peak = max(r["peak_mb_above_start"] for r in results["read_write_" + kind])
            ratio = mask / base
            ok &= ratio <= 1.5 and peak <= 1024
            print("  %-8s plain read+write %6.2f s (peak +%5.0f MB) | masking %6.2f s "
                  "(peak +%5.0f MB) | ratio %.2f (target <= 1.5) | peak %s 1 GB"
                  % (kind, base, base_peak, mask, peak, ratio, "<=" if peak <= 1024 else ">"))
        print("targets met" if ok else "TARGETS NOT MET")
        return 0 if ok else 1
    finally:
        if own:
            shutil.rmtree(workdir, ignore_errors=True)


if __name__ == "__main__":
    sys.exit(main())
