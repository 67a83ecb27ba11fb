"""Benchmark of ``cryoprocs extract`` (RELION 5 2D-stack extraction) against its
targets (docs/extract-subtomos.md).

Generates (once, cached) a RELION 5 project of 2 tilt series of 41 x 2048^2 float32 images
(2.165 Å/px, ±60° in 3° steps, dose-symmetric pre-exposure, rlnTomoSize 2048x2048x600) with
240 particles, then times ``cryoprocs extract`` end to end as a child process (start-up,
imports, reading, extraction, writing) for box 64 (bin 1) and box 32 (bin 4), with
``--threads 2``, and reads the child's peak resident memory (``ru_maxrss``).

Reference (2-core machine, docs/extract-subtomos.md), box 64:
RELION 5.0.1 ``relion_tomo_subtomo`` 9.1 s / 2.05 GB, zarr-particle-tools 1.0.1 8.4 s /
0.75 GB. Target: <= 4 s and <= 0.75 GB.

Zarr rows: the same project with its tilt series as OME-Zarr (OME-NGFF 0.4, 1 x 256 x 256
chunks, Blosc LZ4, written by ``cryoprocs convert``), extracted (box 64) from the local
folders and over HTTP from a server on 127.0.0.1 started by this script (in its own
process); the bytes the server sent are reported against the full store size. Target: local
Zarr within 1.5x of the MRC run.

zarr-particle-tools is timed in the same run only if its ``zarr-particle-extract`` command is
found (on PATH, or given as $ZPT_BIN, e.g. from a separate virtual environment); it is never a
dependency.

Run on a quiet machine; on the shared development machine wrap it:
``flock /tmp/cryoprocs-heavy.lock .venv/bin/python benchmarks/bench_extract.py``.
Options: ``--workdir DIR`` (default $TMPDIR/cryoprocs-bench-extract), ``--repeat N``.
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

RELION = {"box64": (9.1, 2.05)}
ZPT = {"box64": (8.4, 0.75)}
TARGET_S, TARGET_GB = 4.0, 0.75
VERSION = "v1"

N_TS, N_TILTS, SIZE, PS, N_PART = 2, 41, 2048, 2.165, 240


def generate(workdir):
    """Write the benchmark project into ``workdir`` (skipped when already there)."""
    import mrcfile
    import pandas as pd
    import starfile

    stamp = os.path.join(workdir, "generated-%s.json" % VERSION)
    if os.path.exists(stamp):
        return
    os.makedirs(os.path.join(workdir, "tiltseries"), exist_ok=True)
    rng = np.random.default_rng(2026)
    tilts = np.arange(-60, 61, 3, dtype=np.float64)
    order = np.argsort(np.abs(tilts) + (tilts < 0) * 0.5, kind="stable")   # dose-symmetric
    pre = np.empty(N_TILTS)
    pre[order] = np.arange(N_TILTS) * 3.0
    glob = []
    particles = []
    for t in range(N_TS):
        name = "TS_%02d" % (t + 1)
        stack = os.path.join(workdir, "tiltseries", name + ".mrcs")
        with mrcfile.new_mmap(stack, shape=(N_TILTS, SIZE, SIZE), mrc_mode=2,
                              overwrite=True) as m:
            for f in range(N_TILTS):
                m.data[f] = rng.standard_normal((SIZE, SIZE), dtype=np.float32) + 2.0
            m.voxel_size = PS
        rows = []
        for f in range(N_TILTS):
            df = 30000 + rng.normal(0, 300)
            rows.append({"rlnMicrographName": "%d@tiltseries/%s.mrcs" % (f + 1, name),
                         "rlnTomoXTilt": 0.0, "rlnTomoYTilt": tilts[f] + rng.normal(0, 0.2),
                         "rlnTomoZRot": 85.0 + rng.normal(0, 0.1),
                         "rlnTomoXShiftAngst": rng.uniform(-50, 50),
                         "rlnTomoYShiftAngst": rng.uniform(-50, 50),
                         "rlnDefocusU": df + 200, "rlnDefocusV": df - 200,
                         "rlnDefocusAngle": 30.0 + rng.normal(0, 5),
                         "rlnCtfScalefactor": np.cos(np.deg2rad(tilts[f])),
                         "rlnMicrographPreExposure": pre[f]})
        starfile.write({name: pd.DataFrame(rows)},
                       os.path.join(workdir, "tiltseries", name + ".star"), overwrite=True)
        glob.append({"rlnTomoName": name, "rlnVoltage": 300.0, "rlnSphericalAberration": 2.7,
                     "rlnAmplitudeContrast": 0.1, "rlnMicrographOriginalPixelSize": PS,
                     "rlnTomoHand": -1, "rlnOpticsGroupName": "optics1",
                     "rlnTomoTiltSeriesPixelSize": PS,
                     "rlnTomoTiltSeriesStarFile": "tiltseries/%s.star" % name,
                     "rlnTomoSizeX": SIZE, "rlnTomoSizeY": SIZE, "rlnTomoSizeZ": 600})
        n = N_PART // N_TS
        xyz = np.stack([rng.uniform(-900, 900, n), rng.uniform(-900, 900, n),
                        rng.uniform(-250, 250, n)], axis=1) * PS
        for k in range(n):
            particles.append({"rlnTomoName": name,
                              "rlnCenteredCoordinateXAngst": xyz[k, 0],
                              "rlnCenteredCoordinateYAngst": xyz[k, 1],
                              "rlnCenteredCoordinateZAngst": xyz[k, 2],
                              "rlnAngleRot": rng.uniform(-180, 180),
                              "rlnAngleTilt": rng.uniform(0, 180),
                              "rlnAnglePsi": rng.uniform(-180, 180),
                              "rlnOpticsGroup": 1, "rlnRandomSubset": k % 2 + 1})
    starfile.write({"global": pd.DataFrame(glob)}, os.path.join(workdir, "tomograms.star"),
                   overwrite=True)
    optics = pd.DataFrame([{"rlnOpticsGroup": 1, "rlnOpticsGroupName": "optics1",
                            "rlnSphericalAberration": 2.7, "rlnVoltage": 300.0,
                            "rlnAmplitudeContrast": 0.1, "rlnTomoTiltSeriesPixelSize": PS}])
    starfile.write({"general": {"rlnTomoSubTomosAre2DStacks": 0}, "optics": optics,
                    "particles": pd.DataFrame(particles)},
                   os.path.join(workdir, "particles.star"), overwrite=True)
    with open(stamp, "w") as fh:
        json.dump({"tilt_series": N_TS, "tilts": N_TILTS, "size": SIZE, "particles": N_PART},
                  fh)


_WRAPPER = ("import resource, subprocess, sys, time, json\n"
            "t0 = time.perf_counter()\n"
            "r = subprocess.run(sys.argv[1:], stdout=subprocess.PIPE, stderr=subprocess.STDOUT,"
            " text=True)\n"
            "dt = time.perf_counter() - t0\n"
            "rss = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss\n"
            "sys.stdout.write(r.stdout)\n"
            "print(json.dumps({'rc': r.returncode, 'seconds': dt, 'maxrss_kb': rss}))\n")


def timed_child(cmd, cwd):
    """Run ``cmd`` under a fresh wrapper process; return (seconds, peak RSS of the command in
    GB (``ru_maxrss`` of the wrapper's only child), return code, output)."""
    res = subprocess.run([sys.executable, "-c", _WRAPPER] + list(cmd), cwd=cwd,
                         stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    lines = res.stdout.rstrip().splitlines()
    info = json.loads(lines[-1])
    return (info["seconds"], info["maxrss_kb"] / 1024.0 ** 2, info["rc"],
            "\n".join(lines[:-1]))


def generate_zarr(workdir):
    """OME-Zarr copies of the tilt series and a project variant pointing at them (folder
    ``zarr/``: tomograms.star, tiltseries/TS_xx.star with ``n@tiltseries/TS_xx.zarr``; the
    stores themselves in ``tiltseries/``). ``url`` variants are written per run."""
    import starfile
    stamp = os.path.join(workdir, "generated-zarr-%s.json" % VERSION)
    if os.path.exists(stamp):
        return
    for t in range(N_TS):
        name = "TS_%02d" % (t + 1)
        store = os.path.join(workdir, "tiltseries", name + ".zarr")
        subprocess.run(cryoprocs_cmd() + ["convert", os.path.join("tiltseries", name + ".mrcs"),
                                          store, "--stack", "--chunks", "1", "256", "256",
                                          "--overwrite"], cwd=workdir, check=True)
    with open(stamp, "w") as fh:
        json.dump({"chunks": [1, 256, 256]}, fh)


def zarr_project(workdir, label, prefix):
    """A project folder ``workdir/<label>`` whose tilt-series STAR files name the OME-Zarr
    stores as ``<n>@<prefix>/TS_xx.zarr`` (``prefix``: a folder or a URL)."""
    import starfile
    proj = os.path.join(workdir, label)
    os.makedirs(os.path.join(proj, "tiltseries"), exist_ok=True)
    glob = starfile.read(os.path.join(workdir, "tomograms.star"), always_dict=True)["global"]
    for t in range(N_TS):
        name = "TS_%02d" % (t + 1)
        tab = starfile.read(os.path.join(workdir, "tiltseries", name + ".star"),
                            always_dict=True)[name]
        tab["rlnMicrographName"] = ["%d@%s/%s.zarr" % (k + 1, prefix, name)
                                    for k in range(len(tab))]
        starfile.write({name: tab}, os.path.join(proj, "tiltseries", name + ".star"),
                       overwrite=True)
    starfile.write({"global": glob}, os.path.join(proj, "tomograms.star"), overwrite=True)
    shutil.copy(os.path.join(workdir, "particles.star"), os.path.join(proj, "particles.star"))
    return proj


_SERVER = ("import http.server, sys, threading\n"
           "class H(http.server.SimpleHTTPRequestHandler):\n"
           "    protocol_version = 'HTTP/1.1'\n"
           "    n = 0\n"
           "    lock = threading.Lock()\n"
           "    def copyfile(self, src, dst):\n"
           "        data = src.read(); dst.write(data)\n"
           "        with H.lock: H.n += len(data)\n"
           "    def log_message(self, *a): pass\n"
           "    def do_POST(self):\n"
           "        body = str(H.n).encode(); self.send_response(200)\n"
           "        self.send_header('Content-Length', str(len(body))); self.end_headers()\n"
           "        self.wfile.write(body)\n"
           "s = http.server.ThreadingHTTPServer(('127.0.0.1', 0),"
           " lambda *a, **k: H(*a, directory=sys.argv[1], **k))\n"
           "print(s.server_address[1], flush=True)\n"
           "s.serve_forever()\n")


def served_bytes(port):
    """Body bytes the benchmark's HTTP server has sent (asked with a POST)."""
    import urllib.request
    with urllib.request.urlopen(urllib.request.Request("http://127.0.0.1:%d/" % port,
                                                       data=b"", method="POST")) as r:
        return int(r.read())


def store_size(path):
    return sum(os.path.getsize(os.path.join(d, f)) for d, _, fs in os.walk(path) for f in fs)


def cryoprocs_cmd():
    exe = shutil.which("cryoprocs", path=os.path.dirname(sys.executable) + os.pathsep
                       + os.environ.get("PATH", ""))
    return [exe] if exe else [sys.executable, "-m", "cryoprocs.cli"]


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__,
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--workdir", default=os.path.join(tempfile.gettempdir(),
                                                      "cryoprocs-bench-extract"))
    ap.add_argument("--repeat", type=int, default=2)
    ap.add_argument("--threads", type=int, default=2)
    args = ap.parse_args(argv)
    t0 = time.time()
    generate(args.workdir)
    print("project: %s (generated/checked in %.1f s)" % (args.workdir, time.time() - t0))
    cases = {"box64": ["--box-size", "64", "--bin", "1"],
             "box32_bin4": ["--box-size", "32", "--bin", "4"]}
    results = {}
    for label, extra in cases.items():
        best = None
        for r in range(args.repeat):
            out = os.path.join(args.workdir, "out_" + label)
            shutil.rmtree(out, ignore_errors=True)
            cmd = cryoprocs_cmd() + ["extract", "--particles", "particles.star",
                                     "--tomograms", "tomograms.star", "--output-dir", out,
                                     "--threads", str(args.threads)] + extra
            dt, gb, rc, text = timed_child(cmd, args.workdir)
            if rc != 0:
                print(text)
                raise SystemExit("cryoprocs extract failed (%s)" % label)
            print("cryoprocs %-11s run %d: %.2f s, peak RSS %.2f GB" % (label, r + 1, dt, gb))
            if best is None or dt < best[0]:
                best = (dt, gb)
        results[label] = best
    results.update(zarr_rows(args))
    zpt = os.environ.get("ZPT_BIN") or shutil.which("zarr-particle-extract")
    zpt_res = None
    if zpt:
        out = os.path.join(args.workdir, "out_zpt")
        shutil.rmtree(out, ignore_errors=True)
        cmd = [zpt, "local", "--particles-starfile", "particles.star", "--tomograms-starfile",
               "tomograms.star", "--output-dir", out, "--box-size", "64", "--bin", "1"]
        dt, gb, rc, text = timed_child(cmd, args.workdir)
        zpt_res = (dt, gb) if rc == 0 else None
        print("zarr-particle-tools box64: %s" % ("%.2f s, peak RSS %.2f GB" % (dt, gb)
                                                 if rc == 0 else "failed:\n" + text[-2000:]))
    else:
        print("zarr-particle-tools not found (optional; set ZPT_BIN to time it)")
    t, gb = results["box64"]
    print()
    print("box 64, bin 1 (2 x 41 x 2048^2, 240 particles, %d threads):" % args.threads)
    print("  cryoprocs %.2f s / %.2f GB  (target <= %.1f s / <= %.2f GB: %s)"
          % (t, gb, TARGET_S, TARGET_GB,
             "MET" if t <= TARGET_S and gb <= TARGET_GB else "NOT MET"))
    print("  speed-up vs RELION 5.0.1 (9.1 s): %.2fx; vs zarr-particle-tools 1.0.1 (8.4 s): "
          "%.2fx" % (RELION["box64"][0] / t, ZPT["box64"][0] / t))
    print("  memory ratio vs RELION (2.05 GB): %.2f; vs zarr-particle-tools (0.75 GB): %.2f"
          % (gb / RELION["box64"][1], gb / ZPT["box64"][1]))
    if zpt_res:
        print("  zarr-particle-tools in this run: %.2f s / %.2f GB -> speed-up %.2fx"
              % (zpt_res[0], zpt_res[1], zpt_res[0] / t))
    t4, gb4 = results["box32_bin4"]
    print("box 32, bin 4: cryoprocs %.2f s / %.2f GB" % (t4, gb4))
    tz, gbz = results["zarr_local"]
    print("OME-Zarr tilt series (1 x 256 x 256 chunks), box 64:")
    print("  local: %.2f s / %.2f GB = %.2fx the MRC run (target <= 1.5x: %s)"
          % (tz, gbz, tz / t, "MET" if tz <= 1.5 * t else "NOT MET"))
    th, gbh = results["zarr_http"]
    sent, total = results["zarr_http_bytes"]
    print("  HTTP (127.0.0.1): %.2f s / %.2f GB = %.2fx the MRC run; %.1f MB served of the "
          "%.1f MB stores (%.1f %%)" % (th, gbh, th / t, sent / 1e6, total / 1e6,
                                        100.0 * sent / total))
    return 0


def zarr_rows(args):
    """Time the box-64 extraction on the OME-Zarr copies, locally and over HTTP."""
    t0 = time.time()
    generate_zarr(args.workdir)
    print("OME-Zarr stores: generated/checked in %.1f s" % (time.time() - t0))
    out = {}
    extra = ["--box-size", "64", "--bin", "1"]
    local = zarr_project(args.workdir, "zarr_local", os.path.join(args.workdir, "tiltseries"))
    best = None
    for r in range(args.repeat):
        dest = os.path.join(args.workdir, "out_zarr_local")
        shutil.rmtree(dest, ignore_errors=True)
        cmd = cryoprocs_cmd() + ["extract", "--particles", "particles.star", "--tomograms",
                                 "tomograms.star", "--output-dir", dest,
                                 "--threads", str(args.threads)] + extra
        dt, gb, rc, text = timed_child(cmd, local)
        if rc != 0:
            print(text)
            raise SystemExit("cryoprocs extract failed (zarr local)")
        print("cryoprocs zarr local  run %d: %.2f s, peak RSS %.2f GB" % (r + 1, dt, gb))
        best = (dt, gb) if best is None or dt < best[0] else best
    out["zarr_local"] = best
    server = subprocess.Popen([sys.executable, "-c", _SERVER,
                               os.path.join(args.workdir, "tiltseries")],
                              stdout=subprocess.PIPE, text=True)
    try:
        port = int(server.stdout.readline())
        remote = zarr_project(args.workdir, "zarr_http", "http://127.0.0.1:%d" % port)
        dest = os.path.join(args.workdir, "out_zarr_http")
        shutil.rmtree(dest, ignore_errors=True)
        before = served_bytes(port)
        cmd = cryoprocs_cmd() + ["extract", "--particles", "particles.star", "--tomograms",
                                 "tomograms.star", "--output-dir", dest,
                                 "--threads", str(args.threads)] + extra
        dt, gb, rc, text = timed_child(cmd, remote)
        if rc != 0:
            print(text)
            raise SystemExit("cryoprocs extract failed (zarr http)")
        sent = served_bytes(port) - before
        print("cryoprocs zarr http         : %.2f s, peak RSS %.2f GB, %.1f MB served"
              % (dt, gb, sent / 1e6))
        out["zarr_http"] = (dt, gb)
        total = sum(store_size(os.path.join(args.workdir, "tiltseries", "TS_%02d.zarr"
                                            % (t + 1))) for t in range(N_TS))
        out["zarr_http_bytes"] = (sent, total)
    finally:
        server.terminate()
        server.wait(10)
    return out


if __name__ == "__main__":
    sys.exit(main())
