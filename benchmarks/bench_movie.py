"""ExportMovie benchmark: synthetic float32 tomograms to movies.

Targets (docs/export-movie.md): mrc2movie with its defaults (MJPG AVI, forward-backward,
30 fps) takes 21.9 s and 1.62 GB peak on a 2-core machine and writes 311 MB. cryoprocs must
write the same MJPEG movie in <= 11 s with a peak memory <= 0.5 GB above the memory-mapped
input, and its default H.264 MP4 of the same movie must be <= 1/2 of the MJPEG size.

Targets of the encode-once writers and the particle overlays (docs/export-movie.md), every
distinct frame rendered and encoded once:
(a) 120 x 512 x 512, mrc2movie's defaults (MJPG AVI, forward-backward): >= 2.5x faster than
    the mrc2movie-style batch run below, timed in the same run (best of --repeat runs each);
(b) 300 x 1024 x 1024 with 500 particles drawn (``--particles``): <= 10 % slower than the
    plain movie; forward-backward costs little more than forward;
(c) peak memory within the README figures (0.16 GB above the mapped input; target 0.5 GB).

Each export runs as ``cryoprocs movie`` in its own process (what a user runs); wall time,
peak RSS (VmHWM of the process, which includes the input pages it maps) and the output size
are measured, and every output is decoded with ffmpeg to check its frame count. With
``--reference`` (default) an mrc2movie-style run (multiprocessing Pool over pickled slices, all
frames kept in a list, cv2.VideoWriter MJPG; re-implemented here from the behaviour described
in the doc) is timed on the same machine and file.

The tomogram: correlated gaussian noise (white noise smoothed with sigma = 1 voxel, as
reconstruction filtering and binning correlate real tomogram noise between neighbouring
slices), 60 spherical membrane shells (VLP-like) and 40 dense gold beads (outliers for the
global min/max). ``--noise white`` uses uncorrelated noise instead, the worst case for video
compression. The file is cached in --workdir.

Run on a quiet machine (``flock /tmp/cryoprocs-heavy.lock python benchmarks/bench_movie.py``).
"""
import argparse
import os
import shutil
import subprocess
import sys
import tempfile
import time

import numpy as np

SHAPE = (300, 1024, 1024)
MRC2MOVIE_S = 21.9
MRC2MOVIE_GB = 1.62
MRC2MOVIE_MB = 311.0
TARGET_S = 11.0
TARGET_EXTRA_GB = 0.5
TARGET_SIZE_RATIO = 0.5
SMALL_SHAPE = (120, 512, 512)
TARGET_SMALL_SPEEDUP = 2.5
TARGET_OVERLAY = 1.10
README_EXTRA_GB = 0.16
N_PARTICLES = 500


# ----------------------------------------------------------------------------- input
def make_tomogram(path, shape=SHAPE, noise="correlated", seed=0):
    """Write the synthetic tomogram slab by slab (bounded memory); deterministic."""
    import mrcfile
    from scipy import ndimage

    nz, ny, nx = shape
    rng = np.random.default_rng(seed)
    shells = [(rng.uniform(0, nz), rng.uniform(0, ny), rng.uniform(0, nx),
               rng.uniform(30, 110)) for _ in range(60)]
    beads = [(rng.uniform(0, nz), rng.uniform(0, ny), rng.uniform(0, nx)) for _ in range(40)]
    halo, chunk = 4, 20
    tmp = path + ".part"
    mrc = mrcfile.new_mmap(tmp, shape=shape, mrc_mode=2, overwrite=True)
    mrc.voxel_size = 10.0
    for z0 in range(0, nz, chunk):
        z1 = min(nz, z0 + chunk)
        a, b = (max(0, z0 - halo), min(nz, z1 + halo)) if noise == "correlated" else (z0, z1)
        block = np.empty((b - a, ny, nx), dtype=np.float32)
        for z in range(a, b):           # per-slice streams: chunks agree on their halos
            block[z - a] = np.random.default_rng([seed, z]).standard_normal(
                (ny, nx), dtype=np.float32)
        if noise == "correlated":
            block = ndimage.gaussian_filter(block, 1.0, mode="nearest")
            block /= np.float32(0.15)   # std of white noise smoothed with sigma 1 in 3D
        block = block[z0 - a:z0 - a + (z1 - z0)]
        zz = np.arange(z0, z1, dtype=np.float32)[:, None, None]
        for cz, cy, cx, r in shells:
            if cz + r + 3 < z0 or cz - r - 3 > z1:
                continue
            y0, y1 = int(max(0, cy - r - 3)), int(min(ny, cy + r + 4))
            x0, x1 = int(max(0, cx - r - 3)), int(min(nx, cx + r + 4))
            yy = np.arange(y0, y1, dtype=np.float32)[None, :, None]
            xx = np.arange(x0, x1, dtype=np.float32)[None, None, :]
            d = np.sqrt((zz - cz) ** 2 + (yy - cy) ** 2 + (xx - cx) ** 2)
            block[:, y0:y1, x0:x1] += np.float32(1.5) * np.exp(-((d - r) / 2.0) ** 2)
        for cz, cy, cx in beads:
            if cz + 6 < z0 or cz - 6 > z1:
                continue
            y0, y1 = int(max(0, cy - 6)), int(min(ny, cy + 7))
            x0, x1 = int(max(0, cx - 6)), int(min(nx, cx + 7))
            yy = np.arange(y0, y1, dtype=np.float32)[None, :, None]
            xx = np.arange(x0, x1, dtype=np.float32)[None, None, :]
            d2 = (zz - cz) ** 2 + (yy - cy) ** 2 + (xx - cx) ** 2
            block[:, y0:y1, x0:x1] -= np.float32(12.0) * (d2 <= 25.0)
        mrc.data[z0:z1] = block
    mrc.update_header_stats()
    mrc.close()
    os.replace(tmp, path)


# ----------------------------------------------------------------------------- measuring
def _status(pid):
    out = {}
    try:
        with open("/proc/%d/status" % pid) as fh:
            for line in fh:
                k, _, v = line.partition(":")
                if k in ("VmHWM", "VmRSS", "RssAnon", "RssFile"):
                    out[k] = int(v.split()[0]) * 1024
    except (FileNotFoundError, ProcessLookupError, ValueError):
        pass
    return out


def _children(pid):
    kids = []
    try:
        for tid in os.listdir("/proc/%d/task" % pid):
            with open("/proc/%d/task/%s/children" % (pid, tid)) as fh:
                kids += [int(x) for x in fh.read().split()]
    except (FileNotFoundError, ProcessLookupError):
        pass
    return kids


def run_measured(cmd, env=None):
    """Run ``cmd``; return wall time, peak VmHWM of the main process, peak anonymous RSS of
    the main process, peak summed RSS of its children (ffmpeg, Pool workers), the output,
    and the CPU time (user + system) of the process and the children it waited for."""
    t0 = time.perf_counter()
    p = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, env=env)
    hwm = anon = kids = 0
    while True:
        pid, status, ru = os.wait4(p.pid, os.WNOHANG)
        if pid:
            break
        st = _status(p.pid)
        hwm = max(hwm, st.get("VmHWM", 0))
        anon = max(anon, st.get("RssAnon", 0))
        kids = max(kids, sum(_status(c).get("VmRSS", 0) for c in _children(p.pid)))
        time.sleep(0.02)
    wall = time.perf_counter() - t0
    p.returncode = os.waitstatus_to_exitcode(status)
    out = p.stdout.read().decode(errors="replace")
    if p.returncode != 0:
        raise RuntimeError("%s failed (%d):\n%s" % (" ".join(cmd), p.returncode, out[-3000:]))
    return wall, hwm, anon, kids, out, ru.ru_utime + ru.ru_stime


def decoded_frames(path):
    import imageio_ffmpeg
    gen = imageio_ffmpeg.read_frames(path, pix_fmt="gray", bits_per_pixel=8)
    meta = next(gen)
    n = sum(1 for _ in gen)
    return n, tuple(meta["size"])


# ----------------------------------------------------------------------------- reference
REFERENCE = r'''
import sys, numpy as np, mrcfile, cv2
from multiprocessing import Pool, cpu_count

def work(args):
    sl, lo, hi, clip, grid = args
    f = sl.astype(np.float32)
    f -= lo
    if hi > lo:
        f /= hi - lo
    f *= 255
    return cv2.createCLAHE(clipLimit=clip, tileGridSize=(grid, grid)).apply(f.astype(np.uint8))

if __name__ == "__main__":
    inp, out = sys.argv[1], sys.argv[2]
    with mrcfile.mmap(inp, mode="r") as mrc:
        vol = mrc.data
        lo, hi = vol.min(), vol.max()
        with Pool(cpu_count()) as pool:
            frames = list(pool.imap(work, [(s, lo, hi, 2.0, 8) for s in vol]))
        h, w = vol.shape[1:]
    wr = cv2.VideoWriter(out, cv2.VideoWriter_fourcc(*"MJPG"), 30.0, (w, h), isColor=False)
    for f in frames + list(reversed(frames[1:-1])):
        wr.write(f)
    wr.release()
'''


def particles_csv(path, shape, n=N_PARTICLES, seed=1):
    """``n`` random particles (0-based voxels, a score) inside a ``(z, y, x)`` volume."""
    nz, ny, nx = shape
    rng = np.random.default_rng(seed)
    with open(path, "w") as fh:
        fh.write("x,y,z,score\n")
        for _ in range(n):
            fh.write("%.2f,%.2f,%.2f,%.3f\n" % (rng.uniform(0, nx - 1), rng.uniform(0, ny - 1),
                                                rng.uniform(0, nz - 1), rng.uniform()))
    return path


def tomogram(workdir, shape, noise):
    path = os.path.join(workdir, "tomo_%dx%dx%d_%s.mrc" % (tuple(shape) + (noise,)))
    if not os.path.exists(path):
        t = time.perf_counter()
        make_tomogram(path, tuple(shape), noise)
        print("generated %s in %.1f s" % (path, time.perf_counter() - t))
    with open(path, "rb") as fh:        # warm the page cache: every run sees the same state
        while fh.read(64 << 20):
            pass
    return path


def best_of(repeat, *cmds):
    """Best wall time of ``repeat`` runs of each command, with the peak memory figures of
    that run, and as a 7th item the least CPU time of its runs (the robust figure when other
    jobs load the machine); the commands alternate, so that a change of load on the shared
    machine hits them alike. One result per command."""
    best = [None] * len(cmds)
    cpu = [float("inf")] * len(cmds)
    for _ in range(repeat):
        for i, cmd in enumerate(cmds):
            r = run_measured(cmd)
            cpu[i] = min(cpu[i], r[5])
            if best[i] is None or r[0] < best[i][0]:
                best[i] = r
    best = [b + (c,) for b, c in zip(best, cpu)]
    return best if len(cmds) > 1 else best[0]


def small_case(args, exe):
    """(a): 120 x 512^2 MJPEG, cryoprocs against the mrc2movie-style batch run."""
    tomo = tomogram(args.workdir, SMALL_SHAPE, args.noise)
    ref_py = os.path.join(args.workdir, "mrc2movie_like.py")
    with open(ref_py, "w") as fh:
        fh.write(REFERENCE)
    out_dir = os.path.join(args.workdir, "small")
    shutil.rmtree(out_dir, ignore_errors=True)
    ours, ref = best_of(args.repeat, exe + [tomo, out_dir, "--codec", "MJPG", "--overwrite"],
                        [sys.executable, ref_py, tomo,
                         os.path.join(args.workdir, "small_reference.avi")])
    avi = os.path.join(out_dir, os.path.splitext(os.path.basename(tomo))[0] + ".avi")
    frames, _ = decoded_frames(avi)
    assert frames == 2 * SMALL_SHAPE[0] - 2, frames
    ratio = ref[0] / ours[0]
    print("(a) %s MJPEG AVI (%d frames): cryoprocs %.2f s, mrc2movie-style %.2f s: %.2fx "
          "faster (target >= %.1fx: %s); CPU (least of %d runs) %.2f s vs %.2f s (%.2fx); "
          "peak RSS %.2f vs %.2f GB"
          % ("x".join(map(str, SMALL_SHAPE[::-1])), frames, ours[0], ref[0], ratio,
             TARGET_SMALL_SPEEDUP, "PASS" if ratio >= TARGET_SMALL_SPEEDUP else "FAIL",
             args.repeat, ours[6], ref[6], ref[6] / ours[6], ours[1] / 1e9,
             (ref[1] + ref[3]) / 1e9))


def overlay_case(args, exe, tomo, shape, in_gb):
    """(b), (c): the same MJPEG movie with particles drawn, and forward only."""
    csv = particles_csv(os.path.join(args.workdir, "particles_%d.csv" % N_PARTICLES), shape)
    out_dir = os.path.join(args.workdir, "overlay")
    shutil.rmtree(out_dir, ignore_errors=True)
    variants = (("plain", []),
                ("particles", ["--particles", csv, "--particle-radius", "20",
                               "--color-by", "score"]),
                ("forward", ["--playback", "forward"]))
    runs = best_of(args.repeat, *[exe + [tomo, os.path.join(out_dir, name), "--codec", "MJPG",
                                         "--overwrite"] + extra for name, extra in variants])
    res = {name: (r[0], r[1], r[6]) for (name, _), r in zip(variants, runs)}
    ratio = res["particles"][0] / res["plain"][0]
    print("(b) %d particles drawn: %.2f s vs %.2f s plain = %.3fx (target <= %.2fx: %s); CPU "
          "(least of %d runs) %.2f s vs %.2f s = %.3fx; forward %.2f s: forward-backward "
          "costs %.2fx forward (CPU %.2fx)"
          % (N_PARTICLES, res["particles"][0], res["plain"][0], ratio, TARGET_OVERLAY,
             "PASS" if ratio <= TARGET_OVERLAY else "FAIL", args.repeat, res["particles"][2],
             res["plain"][2], res["particles"][2] / res["plain"][2], res["forward"][0],
             res["plain"][0] / res["forward"][0], res["plain"][2] / res["forward"][2]))
    extra_gb = res["particles"][1] / 1e9 - in_gb
    print("(c) peak RSS with particles %.2f GB = mapped input %.2f GB + %.2f GB (README %.2f "
          "GB, target <= %.1f GB: %s)" % (res["particles"][1] / 1e9, in_gb, extra_gb,
                                          README_EXTRA_GB, TARGET_EXTRA_GB,
                                          "PASS" if extra_gb <= TARGET_EXTRA_GB else "FAIL"))


# ----------------------------------------------------------------------------- main
def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__,
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--workdir", default=os.path.join(tempfile.gettempdir(),
                                                      "cryoprocs-bench-movie"))
    ap.add_argument("--noise", choices=("correlated", "white"), default="correlated")
    ap.add_argument("--no-reference", dest="reference", action="store_false",
                    help="skip the mrc2movie-style reference run")
    ap.add_argument("--no-h264", dest="h264", action="store_false",
                    help="skip the H.264 run (it is the slow one)")
    ap.add_argument("--shape", type=int, nargs=3, default=SHAPE, metavar=("Z", "Y", "X"))
    ap.add_argument("--repeat", type=int, default=3,
                    help="runs of each timed case (the best counts; default 3)")
    ap.add_argument("--only", choices=("small", "large", "overlay"),
                    help="only (a), only the 300 x 1024^2 cases, or only (b) and (c)")
    args = ap.parse_args(argv)
    os.makedirs(args.workdir, exist_ok=True)
    exe = [sys.executable, "-m", "cryoprocs.cli", "movie"]
    if args.only != "large":
        small_case(args, exe)
    if args.only == "small":
        return 0

    shape = tuple(args.shape)
    tomo = tomogram(args.workdir, shape, args.noise)
    in_gb = os.path.getsize(tomo) / 1e9
    if args.only == "overlay":
        overlay_case(args, exe, tomo, shape, in_gb)
        return 0
    n = shape[0]
    results = {}

    def one(name, extra, ext):
        out = os.path.join(args.workdir, name)
        shutil.rmtree(out, ignore_errors=True)
        wall, hwm, anon, kids, _, _ = run_measured(exe + [tomo, out] + extra)
        path = os.path.join(out, os.path.splitext(os.path.basename(tomo))[0] + ext)
        frames, size = decoded_frames(path)
        results[name] = dict(wall=wall, hwm=hwm / 1e9, anon=anon / 1e9, kids=kids / 1e9,
                             mb=os.path.getsize(path) / 1e6, frames=frames, size=size)
        r = results[name]
        print("%-10s %6.1f s  peak RSS %.2f GB (anon %.2f GB, children %.2f GB)  %7.1f MB  "
              "%d frames %dx%d" % (name, wall, r["hwm"], r["anon"], r["kids"], r["mb"],
                                   frames, size[0], size[1]))
        assert frames == 2 * n - 2, "expected %d frames, decoded %d" % (2 * n - 2, frames)

    print("input %s: %.2f GB float32, %s noise" % ("x".join(map(str, shape[::-1])), in_gb,
                                                   args.noise))
    one("mjpeg", ["--codec", "MJPG"], ".avi")
    if args.h264:
        one("h264", [], ".mp4")
    if args.reference:
        ref_py = os.path.join(args.workdir, "mrc2movie_like.py")
        with open(ref_py, "w") as fh:
            fh.write(REFERENCE)
        out = os.path.join(args.workdir, "reference.avi")
        wall, hwm, anon, kids, _, _ = run_measured([sys.executable, ref_py, tomo, out])
        frames, size = decoded_frames(out)
        import filecmp
        ours = os.path.join(args.workdir, "mjpeg",
                            os.path.splitext(os.path.basename(tomo))[0] + ".avi")
        same = filecmp.cmp(ours, out, shallow=False)
        results["reference"] = dict(wall=wall, hwm=hwm / 1e9, anon=anon / 1e9,
                                    kids=kids / 1e9, mb=os.path.getsize(out) / 1e6,
                                    frames=frames, size=size)
        print("%-10s %6.1f s  peak RSS %.2f GB (anon %.2f GB, workers %.2f GB)  %7.1f MB  "
              "%d frames (mrc2movie-style, this machine)"
              % ("reference", wall, hwm / 1e9, anon / 1e9, kids / 1e9,
                 os.path.getsize(out) / 1e6, frames))
        print("%-10s the cryoprocs MJPEG AVI is %s the reference's" % (
            "", "byte-identical to" if same else "NOT byte-identical to"))

    m = results["mjpeg"]
    extra = m["hwm"] - in_gb
    print()
    print("MJPEG AVI: %.1f s (target <= %.1f s: %s), %.2fx faster than mrc2movie's %.1f s "
          "(doc)%s" % (m["wall"], TARGET_S, "PASS" if m["wall"] <= TARGET_S else "FAIL",
                       MRC2MOVIE_S / m["wall"], MRC2MOVIE_S,
                       ", %.2fx faster than the reference run here" %
                       (results["reference"]["wall"] / m["wall"]) if "reference" in results
                       else ""))
    print("MJPEG AVI: peak RSS %.2f GB = memory-mapped input %.2f GB + %.2f GB (target <= "
          "%.1f GB above the input: %s); mrc2movie %.2f GB (doc)"
          % (m["hwm"], in_gb, extra, TARGET_EXTRA_GB,
             "PASS" if extra <= TARGET_EXTRA_GB else "FAIL", MRC2MOVIE_GB))
    if "h264" in results:
        h = results["h264"]
        ratio = h["mb"] / m["mb"]
        print("H.264 MP4: %.1f MB = %.3f x the MJPEG %.1f MB (target <= %.2f: %s); %.1f s, "
              "peak RSS %.2f GB + ffmpeg %.2f GB"
              % (h["mb"], ratio, m["mb"], TARGET_SIZE_RATIO,
                 "PASS" if ratio <= TARGET_SIZE_RATIO else "FAIL", h["wall"], h["hwm"],
                 h["kids"]))
    overlay_case(args, exe, tomo, shape, in_gb)
    return 0


if __name__ == "__main__":
    sys.exit(main())
