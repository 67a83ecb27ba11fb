"""Helpers of the OME-Zarr and copick tests (not a test module): OME-Zarr stores written with
the ome-zarr library (independent of cryoprocs' reader), RELION 5 projects whose tilt series
are OME-Zarr, and a local HTTP server that counts the bytes it serves."""
import contextlib
import http.server
import os
import shutil
import threading

import mrcfile
import numpy as np
import pytest
import starfile

SPACE_AXES = [{"name": n, "type": "space", "unit": "angstrom"} for n in ("z", "y", "x")]


def write_ngff(path, data, voxel_size, chunks, levels=1, tilt_series=True):
    """Write ``data`` ``[z, y, x]`` as an OME-NGFF 0.4 multiscale image with ome-zarr's
    writer: level k is level 0 subsampled by 2^k in y and x (and z unless ``tilt_series``),
    scales in Å. Returns ``path``."""
    zarr = pytest.importorskip("zarr")
    writer = pytest.importorskip("ome_zarr.writer")
    pyramid, transforms = [], []
    for k in range(levels):
        f = 2 ** k
        zf = 1 if tilt_series else f
        pyramid.append(np.ascontiguousarray(data[::zf, ::f, ::f]))
        transforms.append([{"type": "scale",
                            "scale": [voxel_size * zf, voxel_size * f, voxel_size * f]}])
    group = zarr.group(store=zarr.storage.DirectoryStore(str(path)), overwrite=True)
    writer.write_multiscale(pyramid, group=group, axes=SPACE_AXES,
                            coordinate_transformations=transforms,
                            storage_options=dict(chunks=tuple(chunks)))
    return str(path)


def store_bytes(path, level=None):
    """Total size of the files of a store (or of one level folder)."""
    root = os.path.join(str(path), level) if level is not None else str(path)
    return sum(os.path.getsize(os.path.join(d, f)) for d, _, files in os.walk(root)
               for f in files)


def zarr_project(pack, proj, chunks, levels=1, micrograph_names=True, store_url=None,
                 particles=None):
    """A RELION 5 project in ``proj`` equal to the shared one (``pack``) except that its tilt
    series is the OME-Zarr ``proj/tiltseries/TS_01.zarr`` (written from the MRC stack), named
    either per frame in ``rlnMicrographName`` (``"<n>@<store>"``) or, with
    ``micrograph_names=False``, once in ``rlnTomoTiltSeriesName`` of tomograms.star;
    ``store_url`` replaces the store's path in the STAR files (a served copy).
    ``particles`` replaces the particle table (a DataFrame)."""
    proj = str(proj)
    os.makedirs(os.path.join(proj, "tiltseries"), exist_ok=True)
    with mrcfile.open(os.path.join(pack, "tiltseries", "TS_01.mrcs"), permissive=True) as m:
        stack = np.array(m.data, dtype=np.float32)
    store = os.path.join(proj, "tiltseries", "TS_01.zarr")
    if not os.path.exists(store):
        write_ngff(store, stack, 6.72, chunks, levels=levels)
    name = store_url or "tiltseries/TS_01.zarr"
    tilt = starfile.read(os.path.join(pack, "tiltseries", "TS_01.star"), always_dict=True)
    table = tilt["TS_01"].copy()
    tomos = starfile.read(os.path.join(pack, "tomograms.star"), always_dict=True)
    glob = tomos["global"].copy()
    if micrograph_names:
        table["rlnMicrographName"] = ["%d@%s" % (k + 1, name) for k in range(len(table))]
    else:
        table = table.drop(columns=["rlnMicrographName"])
        glob["rlnTomoTiltSeriesName"] = name
    starfile.write({"TS_01": table}, os.path.join(proj, "tiltseries", "TS_01.star"))
    starfile.write({"global": glob}, os.path.join(proj, "tomograms.star"))
    parts = starfile.read(os.path.join(pack, "particles.star"), always_dict=True)
    if particles is not None:
        parts["particles"] = particles
    starfile.write(parts, os.path.join(proj, "particles.star"))
    return proj


def mrc_project(pack, proj, particles=None):
    """The shared MRC project linked into ``proj`` (particles optionally replaced)."""
    proj = str(proj)
    os.makedirs(proj, exist_ok=True)
    for name in ("tomograms.star", "tiltseries"):
        os.symlink(os.path.join(pack, name), os.path.join(proj, name))
    if particles is None:
        shutil.copy(os.path.join(pack, "particles.star"), os.path.join(proj, "particles.star"))
    else:
        parts = starfile.read(os.path.join(pack, "particles.star"), always_dict=True)
        parts["particles"] = particles
        starfile.write(parts, os.path.join(proj, "particles.star"))
    return proj


class _CountingHandler(http.server.SimpleHTTPRequestHandler):
    counter = None
    protocol_version = "HTTP/1.1"                   # keep-alive, as real servers

    def copyfile(self, source, outputfile):
        data = source.read()
        outputfile.write(data)
        with self.counter["lock"]:
            self.counter["bytes"] += len(data)
            self.counter["requests"] += 1
            self.counter["paths"].append(self.path)

    def log_message(self, *args):                    # quiet
        pass


@contextlib.contextmanager
def serve(directory):
    """Serve ``directory`` over HTTP on 127.0.0.1 (a free port) in a thread; yields
    ``(base_url, counter)`` where ``counter["bytes"]`` is the body bytes served."""
    counter = {"bytes": 0, "requests": 0, "paths": [], "lock": threading.Lock()}

    class Handler(_CountingHandler):
        pass

    Handler.counter = counter

    def factory(*args, **kwargs):
        return Handler(*args, directory=str(directory), **kwargs)

    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), factory)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield "http://127.0.0.1:%d" % server.server_address[1], counter
    finally:
        server.shutdown()
        server.server_close()
        thread.join(5)


def read_stacks(folder):
    """``{relative path: float32 array}`` of every ``*_stack2d.mrcs`` under ``folder``."""
    out = {}
    for d, _, files in os.walk(folder):
        for f in files:
            if f.endswith("_stack2d.mrcs"):
                p = os.path.join(d, f)
                with mrcfile.open(p, permissive=True) as m:
                    out[os.path.relpath(p, folder)] = (np.array(m.data), m.voxel_size.copy())
    return out
