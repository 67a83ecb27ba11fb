"""Scipion coordinates -> the particle files of ``cryoprocs movie`` (imports pyworkflow/tomo
lazily): a CSV of voxel positions for a tomogram, a RELION 5 project (tilt series STAR
without CTF, particles.star) for the coordinate checker on a tilt series.

Positions follow the rules the other protocols use: a ``Coordinate3D`` stored in Scipion's
centre-origin convention at the coordinates' sampling rate ``csr`` is the tomogram voxel
``c * csr / tsr + dims / 2`` (0-based, x = MRC column) of a tomogram of ``dims`` voxels at
``tsr`` Å; on tilt series the coordinates and tilt series go through
:mod:`cryoprocs.convert.relion5_scipion`, as for extraction.
"""
from __future__ import annotations

import os
from typing import TYPE_CHECKING, Iterable, Sequence

import numpy as np

if TYPE_CHECKING:
    from tomo.objects import Coordinate3D, SetOfCoordinates3D, TiltSeries, Tomogram

    from .paths import PathLike

from . import relion5_scipion
from .particles import write_particles_csv
from .star import write_star

__all__ = ["write_tomogram_particles", "write_tilt_series_particles"]


def write_tomogram_particles(path: PathLike, coords: Iterable[Coordinate3D],
                             coord_sampling: float, tomo_sampling: float,
                             dims: Sequence[float]) -> int:
    """Write the coordinates ``coords`` (Coordinate3D of one tomogram) as a particles CSV
    (``x,y,z`` voxels of the tomogram, ``score``, ``class`` = group id, ``id`` = object
    id); ``dims``: the tomogram's size ``(x, y, z)`` in voxels, ``coord_sampling`` and
    ``tomo_sampling`` in Å/px. Returns the number of particles."""
    from tomo.constants import SCIPION
    pos, score, group, ids = [], [], [], []
    f = float(coord_sampling) / float(tomo_sampling)
    half = np.asarray(dims, dtype=np.float64) / 2.0
    for c in coords:
        pos.append(np.asarray(c.getPosition(SCIPION), dtype=np.float64) * f + half)
        score.append(float(c.getScore() or 0.0))
        group.append(int(c.getGroupId() or 0))
        ids.append(int(c.getObjId()))
    write_particles_csv(path, np.array(pos).reshape(-1, 3),
                        {"score": score, "class": group, "id": ids})
    return len(pos)


def write_tilt_series_particles(folder: str, project_dir: str, ts: TiltSeries,
                                coords: Iterable[Coordinate3D], coord_set: SetOfCoordinates3D,
                                tomo: Tomogram | None = None) -> tuple[str, str]:

    """Write a RELION 5 project of one tilt series (enabled images, alignment, no CTF) and
    its coordinates into ``folder``: ``tomograms.star``, ``tiltseries/<tsId>.star``,
    ``particles.star``. ``tomo``: the coordinates' tomogram (its size gives rlnTomoSize).
    Returns ``(tomograms.star, particles.star)``."""
    tsId = ts.getTsId()
    tomos = relion5_scipion.write_tilt_series_project(folder, project_dir, [tsId], {tsId: ts}, None,
                                                      {tsId: tomo} if tomo is not None else None)
    parts = os.path.join(folder, "particles.star")
    write_star(parts, relion5_scipion.coordinate_particle_blocks(list(coords), coord_set))
    return tomos, parts
