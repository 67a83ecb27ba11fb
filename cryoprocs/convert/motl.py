"""Particle lists written and read by the peak picker: cryoCAT/TOM EM motive lists, STOPGAP
STAR motive lists and RELION 5 particle STAR files.

Conventions (docs/peak-picking.md; cryoCAT 0.7.1 ``cryomotl.py``, STOPGAP
``sg_get_motl_fields.m``):

* Motive-list coordinates ``x, y, z`` are **1-based** voxels with x = MRC column
  (cryoCAT/STOPGAP/TOM: voxel index + 1); angles are zxz ``phi, theta, psi`` in degrees
  (``Rotation.from_euler('zxz', [phi, theta, psi])``).
* EM motive list: a 1 x N x 20 float32 EM file (one 20-value column per particle):
  0 score, 1 geom1, 2 geom2, 3 subtomo_id, 4 tomo_id, 5 object_id, 6 subtomo_mean, 7 x, 8 y,
  9 z, 10 shift_x, 11 shift_y, 12 shift_z, 13 geom3, 14 geom4, 15 geom5, 16 phi, 17 psi,
  18 theta, 19 class.
* STOPGAP STAR: block ``data_stopgap_motivelist`` with the 16 fields of STOPGAP
  ``sg_get_motl_fields.m`` (``motl_idx tomo_num object subtomo_num halfset orig_x orig_y orig_z
  score x_shift y_shift z_shift phi psi the class``), halfset A/B alternating as STOPGAP's
  ``sg_tm_generate_motl.m`` splits them.
* RELION 5 particles: ``data_particles`` with ``rlnTomoName``, ``rlnTomoParticleName``,
  ``rlnCenteredCoordinateX/Y/ZAngst`` (Å from the tomogram centre: ``(x0 - n/2) * pixel``,
  with x0 the 0-based voxel, RELION's "decentred pixel" convention) and ``rlnAngleRot/Tilt/Psi``
  = :func:`cryoprocs.kernels.euler.zxz_to_relion` of the zxz angles; the score goes to
  ``rlnLCCmax`` as pytom-match-pick writes it.
"""
import os
from typing import TYPE_CHECKING, Mapping, Optional, Sequence, Union

import numpy as np
from numpy.typing import ArrayLike

from .em import read_em, write_em
from ..kernels.euler import relion_to_zxz, zxz_to_relion
from .mrc import atomic_output
from .star import read_star, write_star

if TYPE_CHECKING:                       # pandas is imported where a table is built (0.5 s)
    import pandas as pd

__all__ = ["EM_MOTL_FIELDS", "STOPGAP_FIELDS", "MotlFormatError", "motl_from_picks",
           "write_em_motl", "read_em_motl", "write_stopgap_star", "read_stopgap_star",
           "relion5_from_picks", "write_relion5_particles", "read_relion5_particles",
           "write_picks_csv", "read_picks_csv", "PICKS_CSV_COLUMNS"]

EM_MOTL_FIELDS = ("score", "geom1", "geom2", "subtomo_id", "tomo_id", "object_id",
                  "subtomo_mean", "x", "y", "z", "shift_x", "shift_y", "shift_z", "geom3",
                  "geom4", "geom5", "phi", "psi", "theta", "class")
STOPGAP_FIELDS = ("motl_idx", "tomo_num", "object", "subtomo_num", "halfset", "orig_x",
                  "orig_y", "orig_z", "score", "x_shift", "y_shift", "z_shift", "phi", "psi",
                  "the", "class")
_STOPGAP_INT = {"motl_idx", "tomo_num", "object", "subtomo_num", "class"}
PICKS_CSV_COLUMNS = ("x", "y", "z", "score", "phi", "theta", "psi")


class MotlFormatError(ValueError):
    """A motive list or particle file cannot be read or has unexpected columns."""


def motl_from_picks(xyz0: ArrayLike, scores: ArrayLike, angles: ArrayLike,
                    tomo_id: Union[int, ArrayLike] = 1, object_id: Union[int, ArrayLike] = 1,
                    first_id: int = 1) -> "pd.DataFrame":
    """cryoCAT motive-list table (columns :data:`EM_MOTL_FIELDS`) from 0-based picks.

    Parameters
    ----------
    xyz0 : array (N, 3)
        0-based ``(x, y, z)`` voxels (x = MRC column); written 1-based.
    scores : array (N,)
    angles : array (N, 3)
        zxz ``phi, theta, psi`` (degrees).
    tomo_id : int or array (N,)
    first_id : int
        ``subtomo_id`` of the first row (ids are consecutive).
    """
    import pandas as pd

    xyz0 = np.asarray(xyz0, dtype=np.float64).reshape(-1, 3)
    n = len(xyz0)
    ang = np.asarray(angles, dtype=np.float64).reshape(-1, 3)
    df = pd.DataFrame({f: np.zeros(n) for f in EM_MOTL_FIELDS})
    df["score"] = np.asarray(scores, dtype=np.float64)
    df["subtomo_id"] = np.arange(first_id, first_id + n, dtype=np.float64)
    df["tomo_id"] = np.broadcast_to(np.asarray(tomo_id, dtype=np.float64), (n,))
    df["object_id"] = np.broadcast_to(np.asarray(object_id, dtype=np.float64), (n,))
    df["x"], df["y"], df["z"] = xyz0[:, 0] + 1, xyz0[:, 1] + 1, xyz0[:, 2] + 1
    df["phi"], df["theta"], df["psi"] = ang[:, 0], ang[:, 1], ang[:, 2]
    df["class"] = 1.0
    return df


def write_em_motl(path: str, motl: Union["pd.DataFrame", Mapping[str, ArrayLike]],
                  overwrite: bool = True) -> str:
    """Write a motive-list table (:data:`EM_MOTL_FIELDS` columns) as a 1 x N x 20 float32 EM
    file (TOM/AV3/cryoCAT ``emmotl``)."""
    missing = [f for f in EM_MOTL_FIELDS if f not in motl]
    if missing:
        raise MotlFormatError("motive list lacks columns %s" % missing)
    arr = np.stack([np.asarray(motl[f], dtype=np.float32) for f in EM_MOTL_FIELDS], axis=1)
    return write_em(path, arr.reshape(1, len(arr), 20), overwrite=overwrite)


def read_em_motl(path: str) -> "pd.DataFrame":
    """An EM motive list (20 x N, any z) as a DataFrame with :data:`EM_MOTL_FIELDS` columns."""
    import pandas as pd

    data = read_em(path)
    if data.shape[-1] != 20:
        raise MotlFormatError("%s is not a motive list: the EM x dimension is %d, not 20"
                              % (path, data.shape[-1]))
    return pd.DataFrame(data.reshape(-1, 20).astype(np.float64), columns=list(EM_MOTL_FIELDS))


def write_stopgap_star(path: str, motl: Union["pd.DataFrame", Mapping[str, ArrayLike]],
                       overwrite: bool = True) -> str:
    """Write a motive list as a STOPGAP STAR file (``data_stopgap_motivelist``).

    ``motl`` holds :data:`EM_MOTL_FIELDS` columns (coordinates 1-based). STOPGAP's own writer
    (``sg_motl_write2.m``) prints one space-separated row per particle; floats get 4 decimals,
    the score 8 significant digits.
    """
    n = len(motl["x"])
    ids = np.asarray(motl["subtomo_id"], dtype=np.int64)
    cols = {
        "motl_idx": ids, "tomo_num": np.asarray(motl["tomo_id"], dtype=np.int64),
        "object": np.asarray(motl["object_id"], dtype=np.int64), "subtomo_num": ids,
        "halfset": np.where(np.arange(n) % 2 == 0, "A", "B"),
        "orig_x": motl["x"], "orig_y": motl["y"], "orig_z": motl["z"], "score": motl["score"],
        "x_shift": motl["shift_x"], "y_shift": motl["shift_y"], "z_shift": motl["shift_z"],
        "phi": motl["phi"], "psi": motl["psi"], "the": motl["theta"],
        "class": np.asarray(motl["class"], dtype=np.int64),
    }
    lines = ["", "data_stopgap_motivelist", "", "loop_"]
    lines += ["_" + f for f in STOPGAP_FIELDS]
    lines.append("")
    fmt = []
    for f in STOPGAP_FIELDS:
        if f in _STOPGAP_INT:
            fmt.append(lambda v: "%d" % v)
        elif f == "halfset":
            fmt.append(str)
        elif f == "score":
            fmt.append(lambda v: "%.8g" % v)
        else:
            fmt.append(lambda v: "%.4f" % v)
    arrays = [np.asarray(cols[f]) for f in STOPGAP_FIELDS]
    for i in range(n):
        lines.append(" " + " ".join(fm(a[i]) for fm, a in zip(fmt, arrays)))
    with atomic_output(path, overwrite=overwrite) as tmp:
        with open(tmp, "w") as fh:
            fh.write("\n".join(lines) + "\n")
    return path


def read_stopgap_star(path: str) -> "pd.DataFrame":
    """A STOPGAP STAR motive list as a DataFrame (STOPGAP field names)."""
    import pandas as pd

    blocks = read_star(path)
    df = blocks.get("stopgap_motivelist")
    if df is None:
        df = next(iter(blocks.values()))
    if isinstance(df, dict):
        df = pd.DataFrame([df])
    missing = [f for f in STOPGAP_FIELDS if f not in df.columns]
    if missing:
        raise MotlFormatError("%s lacks STOPGAP fields %s" % (path, missing))
    return df


def relion5_from_picks(xyz0: ArrayLike, angles: ArrayLike, tomo_name: Union[str, ArrayLike],
                       shape_xyz: Sequence[int], pixel_size: float,
                       scores: Optional[ArrayLike] = None, first_index: int = 1) -> "pd.DataFrame":
    """RELION 5 ``data_particles`` table from 0-based picks.

    Parameters
    ----------
    xyz0 : array (N, 3)
        0-based voxel ``(x, y, z)`` in a tomogram of ``shape_xyz = (nx, ny, nz)`` voxels of
        ``pixel_size`` Å. ``rlnCenteredCoordinateXAngst = (x0 - nx/2) * pixel_size``.
    angles : array (N, 3)
        zxz ``phi, theta, psi``; written as RELION ``rot = 90 - phi, tilt = theta,
        psi = -90 - psi`` (wrapped, :func:`~cryoprocs.kernels.euler.zxz_to_relion`).
    tomo_name : str or array (N,)
    """
    import pandas as pd

    xyz0 = np.asarray(xyz0, dtype=np.float64).reshape(-1, 3)
    n = len(xyz0)
    ang = np.asarray(angles, dtype=np.float64).reshape(-1, 3)
    if not pixel_size or pixel_size <= 0:
        raise MotlFormatError("RELION 5 coordinates need the pixel size in Å; got %r"
                              % (pixel_size,))
    centre = np.asarray(shape_xyz, dtype=np.float64) / 2.0
    cen = (xyz0 - centre) * float(pixel_size)
    rot, tilt, psi = zxz_to_relion(ang[:, 0], ang[:, 1], ang[:, 2])
    names = np.broadcast_to(np.asarray(tomo_name, dtype=object), (n,))
    df = pd.DataFrame({
        "rlnTomoName": names,
        "rlnTomoParticleName": ["%s/%d" % (t, first_index + i) for i, t in enumerate(names)],
        "rlnCenteredCoordinateXAngst": cen[:, 0],
        "rlnCenteredCoordinateYAngst": cen[:, 1],
        "rlnCenteredCoordinateZAngst": cen[:, 2],
        "rlnAngleRot": rot, "rlnAngleTilt": tilt, "rlnAnglePsi": psi,
    })
    if scores is not None:
        df["rlnLCCmax"] = np.asarray(scores, dtype=np.float64)
    return df


def write_relion5_particles(path: str, particles: Union["pd.DataFrame", Mapping[str, ArrayLike]],
                            overwrite: bool = True) -> str:
    """Write a RELION 5 particle table (``data_particles``) as STAR, atomically."""
    import pandas as pd

    need = ("rlnTomoName", "rlnCenteredCoordinateXAngst", "rlnCenteredCoordinateYAngst",
            "rlnCenteredCoordinateZAngst", "rlnAngleRot", "rlnAngleTilt", "rlnAnglePsi")
    missing = [c for c in need if c not in particles]
    if missing:
        raise MotlFormatError("RELION 5 particles lack %s" % missing)
    return write_star(path, {"particles": pd.DataFrame(particles)}, overwrite=overwrite,
                      float_format="%.6f")


def read_relion5_particles(path: str) -> "pd.DataFrame":
    """The ``data_particles`` block of a RELION 5 particle STAR file, with zxz angles added as
    ``phi, theta, psi`` (inverse of the conversion used when writing)."""
    import pandas as pd

    blocks = read_star(path)
    df = blocks.get("particles")
    if df is None:
        raise MotlFormatError("%s has no data_particles block" % path)
    if isinstance(df, dict):
        df = pd.DataFrame([df])
    df = df.copy()
    if {"rlnAngleRot", "rlnAngleTilt", "rlnAnglePsi"} <= set(df.columns):
        phi, theta, psi = relion_to_zxz(df["rlnAngleRot"], df["rlnAngleTilt"],
                                        df["rlnAnglePsi"])
        df["phi"], df["theta"], df["psi"] = phi, theta, psi
    return df


def write_picks_csv(path: str, xyz0: ArrayLike, scores: ArrayLike, angles: ArrayLike,
                    overwrite: bool = True) -> str:
    """The ``cryoprocs pick`` CSV: columns ``x,y,z`` (0-based voxels, x = MRC column),
    ``score`` and zxz ``phi,theta,psi`` (degrees), one row per pick in pick order."""
    xyz0 = np.asarray(xyz0).reshape(-1, 3)
    ang = np.asarray(angles, dtype=np.float64).reshape(-1, 3)
    scores = np.asarray(scores)
    with atomic_output(path, overwrite=overwrite) as tmp:
        with open(tmp, "w") as fh:
            fh.write(",".join(PICKS_CSV_COLUMNS) + "\n")
            for (x, y, z), s, (a, b, c) in zip(xyz0, scores, ang):
                fh.write("%d,%d,%d,%s,%.10g,%.10g,%.10g\n" % (x, y, z, _repr32(s), a, b, c))
    return path


def _repr32(v):
    """Shortest repr of a float32 value (round-trips through float32)."""
    return str(np.float32(v))


def read_picks_csv(path: str) -> "pd.DataFrame":
    """Read a picks CSV written by :func:`write_picks_csv`."""
    import pandas as pd

    if not os.path.exists(path):
        raise FileNotFoundError("picks file not found: %s" % path)
    df = pd.read_csv(path)
    missing = [c for c in PICKS_CSV_COLUMNS if c not in df.columns]
    if missing:
        raise MotlFormatError("%s lacks columns %s" % (path, missing))
    return df
