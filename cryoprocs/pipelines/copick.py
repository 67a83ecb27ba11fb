"""copick projects <-> RELION 5 particle tables (``cryoprocs copick-import`` /
``copick-export``, and the copick protocols). Conventions: convert/copick_io.py.
"""
import os

import numpy as np
import pandas as pd

from ..convert import copick_io
from ..convert import relion5
from ..convert.euler import relion_euler_matrix, relion_angles_from_matrix
from ..convert.images import image_info
from ..kernels import relion_geometry

__all__ = ["particles_to_copick_sets", "export_to_copick", "copick_to_particles",
           "import_from_copick"]


def _orientation(parts):
    """RELION ``(rot, tilt, psi)`` of the particles' full orientation
    ``A_subtomogram . A_particle`` (absent columns: identity)."""
    n = len(parts)
    A = np.tile(np.eye(3), (n, 1, 1))
    if all(c in parts.columns for c in relion5.SUBTOMO_COLUMNS):
        A = relion_euler_matrix(*(parts[c].to_numpy(dtype=np.float64)
                                  for c in relion5.SUBTOMO_COLUMNS)).reshape(n, 3, 3)
    if all(c in parts.columns for c in relion5.ANGLE_COLUMNS):
        A = A @ relion_euler_matrix(*(parts[c].to_numpy(dtype=np.float64)
                                      for c in relion5.ANGLE_COLUMNS)).reshape(n, 3, 3)
    return relion_angles_from_matrix(A)


def particles_to_copick_sets(particles_star, tomograms_star=None, pixel_size=None):
    """Pick sets (one per ``rlnTomoName``, for :func:`~cryoprocs.convert.copick_io.write_picks`)
    of a RELION particles STAR file: positions in Å from the first voxel (decentred RELION
    position, offsets folded in, times the pixel size), orientations
    ``A_subtomogram . A_particle``, scores from ``rlnLCCmax`` (else 1).

    ``rlnCenteredCoordinate*Angst`` need the tomogram size (``rlnTomoSizeX/Y/Z`` of
    ``tomograms_star``); ``rlnCoordinateX/Y/Z`` are pixels of ``pixel_size`` Å (default the
    optics group's ``rlnTomoTiltSeriesPixelSize``).

    Raises
    ------
    Relion5Error
        no coordinates, no pixel size, centred coordinates without tomogram sizes.
    """
    table = relion5.read_particles(particles_star)
    parts = table.particles
    tomos = relion5.read_tomograms(tomograms_star) if tomograms_star else None
    centred = all(c in parts.columns for c in relion5.CENTERED_COLUMNS)
    if pixel_size:
        ps_of = float(pixel_size)
    elif len(table.optics) and "rlnTomoTiltSeriesPixelSize" in table.optics.columns:
        ps_of = relion5.optics_pixel_sizes(table.optics)
    elif tomos is not None:
        ps_of = relion5.optics_pixel_sizes(relion5.build_optics(table.optics, parts, tomos)[0])
    else:
        raise relion5.Relion5Error("%s: no pixel size (no optics table with "
                                   "rlnTomoTiltSeriesPixelSize); give one" % particles_star)
    sets = []
    for name in pd.unique(parts["rlnTomoName"]):
        sub = parts[parts["rlnTomoName"] == name]
        size = None
        if centred:
            if tomos is None or name not in set(tomos["rlnTomoName"]):
                raise relion5.Relion5Error("%s: centred coordinates of tomogram %s need its size "
                                           "(rlnTomoSizeX/Y/Z of a tomograms.star)"
                                           % (particles_star, name))
            size = relion5._tomo_size(tomos[tomos["rlnTomoName"] == name].iloc[0].to_dict())
            if size is None:
                raise relion5.Relion5Error("tomogram %s has no rlnTomoSizeX/Y/Z" % name)
        pos = relion5.particle_positions(sub, ps_of, size, apply_offsets=True)
        og = sub["rlnOpticsGroup"].astype(int).to_numpy() \
            if "rlnOpticsGroup" in sub.columns else np.ones(len(sub), int)
        ps = np.full(len(sub), ps_of) if not isinstance(ps_of, dict) else \
            np.array([ps_of[int(g)] for g in og])
        rot, tilt, psi = _orientation(sub)
        scores = sub["rlnLCCmax"].to_numpy(dtype=np.float64) if "rlnLCCmax" in sub.columns \
            else None
        sets.append({"run": str(name), "positions": pos * ps[:, None], "rot": rot,
                     "tilt": tilt, "psi": psi, "scores": scores})
    return sets


def export_to_copick(particles_star, config, object_name, user_id, session_id,
                     tomograms_star=None, pixel_size=None, overwrite=False, create_runs=False):
    """Write the particles of a RELION STAR file as copick picks (checked first, then
    written; see :func:`particles_to_copick_sets`), holding the claim of the pick set
    (:func:`~cryoprocs.convert.copick_io.picks_claim`). Returns ``[(run, count, path)]``."""
    from ..convert import outputs
    with outputs.run_scope():
        copick_io.picks_claim(config, object_name, user_id, session_id)
        root = copick_io.open_project(config)
        sets = particles_to_copick_sets(particles_star, tomograms_star, pixel_size)
        return copick_io.write_picks(root, sets, object_name, user_id, session_id,
                                     overwrite=overwrite, create_runs=create_runs,
                                     inputs=[p for p in (particles_star, tomograms_star,
                                                         config) if p])


def copick_to_particles(root, runs, objects, users, sessions, voxel_size, tomo_type):
    """A RELION 5 particle table of copick picks: ``rlnTomoName`` (the run),
    ``rlnCenteredCoordinate*Angst`` about the centre of the run's tomogram of ``tomo_type``
    at ``voxel_size`` (RELION's rule, ``size / 2``), ``rlnAngleRot/Tilt/Psi``, ``rlnLCCmax``
    (score), and ``rlnCopickObject/User/Session``. Returns ``(table, tomograms)`` with
    ``tomograms`` ``{run: (location, (x, y, z) size)}``."""
    entries = dict(copick_io.tomogram_entries(root, runs, voxel_size, tomo_type))
    sizes = {}
    for run, loc in entries.items():
        shape = image_info(loc).shape
        sizes[run] = (int(shape[2]), int(shape[1]), int(shape[0]))
    rows = []
    for ps in copick_io.read_picks(root, runs, objects, users, sessions):
        if ps["run"] not in entries or not len(ps["locations"]):
            continue
        vox = copick_io.picks_positions_voxels(ps["locations"], ps["transforms"], voxel_size)
        cen = (vox - relion_geometry.tomogram_centre(sizes[ps["run"]])) * float(voxel_size)
        rot, tilt, psi = copick_io.copick_rotations_to_relion(ps["transforms"])
        for k in range(len(vox)):
            rows.append({"rlnTomoName": ps["run"],
                         "rlnCenteredCoordinateXAngst": cen[k, 0],
                         "rlnCenteredCoordinateYAngst": cen[k, 1],
                         "rlnCenteredCoordinateZAngst": cen[k, 2],
                         "rlnAngleRot": rot[k], "rlnAngleTilt": tilt[k], "rlnAnglePsi": psi[k],
                         "rlnLCCmax": ps["scores"][k], "rlnCopickObject": ps["object"],
                         "rlnCopickUser": ps["user"], "rlnCopickSession": ps["session"]})
    return pd.DataFrame(rows), {r: (entries[r], sizes[r]) for r in entries}


def import_from_copick(config, output_dir, voxel_size, tomo_type, objects, users=None,
                       sessions=None, runs=None, overwrite=False):
    """Write ``output_dir/particles.star`` (see :func:`copick_to_particles`) and
    ``output_dir/tomograms.tsv`` (run, tomogram location, size x y z, voxel size), claimed
    for this run, under temporary names renamed together (the STAR file last).
    Returns ``(particles file, number of particles, tomograms)``.

    Raises
    ------
    CopickError
        an unreadable config, unknown runs or objects, no picks, no tomogram.
    FileExistsError, ValueError, OutputInUseError
        see :func:`~cryoprocs.convert.paths.check_io` (an output that names the config).
    """
    from ..convert import outputs
    from ..convert.paths import check_io
    from ..convert.star import write_star
    pfile = os.path.join(output_dir, "particles.star")
    tfile = os.path.join(output_dir, "tomograms.tsv")
    with outputs.run_scope():
        check_io(inputs=[("config", config)],
                 outputs=[("particles", pfile), ("tomogram list", tfile)], overwrite=overwrite)
        root = copick_io.open_project(config)
        sel = copick_io.select_runs(root, runs)
        table, tomos = copick_to_particles(root, sel, objects, users, sessions, voxel_size,
                                           tomo_type)
        os.makedirs(output_dir, exist_ok=True)
        pairs = []
        try:
            tmp = outputs.temp_path(tfile, ".tsv")
            pairs.append((tmp, tfile))
            with open(tmp, "w") as fh:
                fh.write("run\ttomogram\tsize_x\tsize_y\tsize_z\tvoxel_size\n")
                for run, (loc, size) in tomos.items():
                    fh.write("%s\t%s\t%d\t%d\t%d\t%g\n" % ((run, loc) + size + (voxel_size,)))
            tmp = outputs.temp_path(pfile, ".star")
            pairs.append((tmp, pfile))
            write_star(tmp, {"particles": table})
            outputs.commit_group(pairs)
        except BaseException:
            for tmp, _ in pairs:
                outputs.discard_temp(tmp)
            raise
    return pfile, len(table), tomos
