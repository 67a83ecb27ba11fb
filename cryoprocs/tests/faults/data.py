"""Small synthetic inputs for the fault tests (not a test module): MRC volumes, stacks and
masks, and a RELION 5 project of two simulated tilt series with oriented particles and half
sets. Everything is generated (seeded) in a few hundred ms, so the fault suite needs no
shared data."""
import os

import mrcfile
import numpy as np


def write_volume(path, data, voxel_size=10.0, stack=False):
    """Write ``data`` as an MRC file (mode from the dtype) and return ``path``."""
    with mrcfile.new(str(path), overwrite=True) as m:
        m.set_data(np.asarray(data))
        if stack:
            m.set_image_stack()
        m.voxel_size = voxel_size
    return str(path)


def tomogram(shape=(32, 64, 64), seed=0):
    """Blobs on gaussian noise, float32 ``[z, y, x]``."""
    rng = np.random.default_rng(seed)
    vol = rng.normal(0.0, 1.0, shape).astype(np.float32)
    zz, yy, xx = np.mgrid[:shape[0], :shape[1], :shape[2]]
    for _ in range(6):
        c = [rng.uniform(6, s - 6) for s in shape]
        vol += 4.0 * np.exp(-((zz - c[0]) ** 2 + (yy - c[1]) ** 2 + (xx - c[2]) ** 2) / 8.0)
    return vol


def mask_volume(shape=(32, 64, 64)):
    m = np.zeros(shape, np.float32)
    z, y, x = [s // 2 for s in shape]
    m[z - 4:z + 4, y - 10:y + 10, x - 10:x + 10] = 1.0
    return m


def relion_project(folder, tomo_names=("TS_01", "TS_02"), n_particles=12, seed=1,
                   angles=True, halves=True, shape=(32, 64, 64), pixel_size=10.0,
                   subsets=None):
    """A RELION 5 project in ``folder``: ``tomograms.star``, ``particles.star`` and
    ``tiltseries/<i>.mrcs|.star`` (7 tilts, -30..30 deg, 64 x 64 px at 10 A) simulated from a
    blob tomogram. ``tomo_names`` are the rlnTomoName values (files are named ``ts<i>``, so
    names that differ only by characters a file name cannot hold are allowed).

    Returns ``(particles_star, tomograms_star)`` (absolute paths)."""
    import pandas as pd

    from ...convert import relion5
    from ...convert.star import write_star
    from ...pipelines.simulate import SimulationSettings, simulate_relion_project

    folder = os.path.abspath(str(folder))
    os.makedirs(folder, exist_ok=True)
    tomo_file = write_volume(os.path.join(folder, "tomo.mrc"), tomogram(shape, seed),
                             pixel_size)
    settings = SimulationSettings(tilt_min=-30, tilt_max=30, tilt_step=10, noise=0.5,
                                  seed=seed)
    rows = []
    for i, name in enumerate(tomo_names):
        sub = os.path.join(folder, "sim%d" % i)
        tstar = simulate_relion_project(tomo_file, sub, "ts%d" % i, settings, folder)
        row = relion5.read_tomograms(tstar).iloc[0].to_dict()
        row["rlnTomoName"] = name
        rows.append(row)
        os.remove(tstar)
    os.remove(tomo_file)
    tomograms_star = os.path.join(folder, "tomograms.star")
    relion5.write_tomograms_star(tomograms_star, rows)
    rng = np.random.default_rng(seed)
    parts = []
    Z, Y, X = shape
    for name in tomo_names:
        n = n_particles
        cen = np.stack([rng.uniform(-X / 4, X / 4, n), rng.uniform(-Y / 4, Y / 4, n),
                        rng.uniform(-Z / 6, Z / 6, n)], axis=1) * pixel_size
        d = {"rlnTomoName": [name] * n,
             "rlnCenteredCoordinateXAngst": cen[:, 0],
             "rlnCenteredCoordinateYAngst": cen[:, 1],
             "rlnCenteredCoordinateZAngst": cen[:, 2]}
        if angles:
            d.update(rlnAngleRot=rng.uniform(-180, 180, n), rlnAngleTilt=rng.uniform(0, 180, n),
                     rlnAnglePsi=rng.uniform(-180, 180, n))
        if halves:
            d["rlnRandomSubset"] = (np.arange(n) % 2 + 1) if subsets is None \
                else np.full(n, int(subsets))
        parts.append(pd.DataFrame(d))
    particles_star = os.path.join(folder, "particles.star")
    write_star(particles_star, {"particles": pd.concat(parts, ignore_index=True)})
    return particles_star, tomograms_star
