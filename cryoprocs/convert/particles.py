"""Particle coordinate files drawn on tomogram movies (``cryoprocs movie --particles``):
IMOD models, ``x y z`` text, CSV, RELION 5 particles.star, STOPGAP STAR and EM (cryoCAT/TOM)
motive lists, converted to 0-based voxel positions of one tomogram.

Coordinate conventions (every position ends as a 0-based voxel index ``(x, y, z)`` with
voxel centres at integers, x = MRC column, y = MRC row, z = section):

* **IMOD model** (``.mod``, read with ``imodmodel``) and **``x y z`` text** (mrc2movie
  ``-p``; one point per line, spaces or commas, ``#`` comments; what IMOD ``model2point``
  writes): IMOD model coordinates, in which X and Y run from 0 to NX from the *corner* of
  the first pixel (its centre is at 0.5) and Z from -0.5 (section k is centred on Z = k)
  (IMOD binary model format, "Model Coordinate Conventions"). voxel = ``(x - 0.5, y - 0.5,
  z)``. mrc2movie's ``int(x)`` is exactly the pixel that contains the point.
* **CSV with a header row** naming ``x,y,z`` columns (``cryoprocs pick`` CSV, the file the
  ExportMovie protocol writes): 0-based voxel centres, as they are.
* **RELION 5 particles.star**: ``rlnCenteredCoordinateX/Y/ZAngst`` are Å from the tomogram
  centre: voxel = ``c / pixel_size + size / 2`` (``size`` = tomogram dimensions in voxels,
  RELION's "decentred pixel" rule), minus ``rlnOriginX/Y/ZAngst / pixel_size`` rotated by
  the subtomogram angles (RELION ``ParticleSet::getPosition``). RELION 4 ``rlnCoordinateX/Y/Z``
  are unbinned tilt-series px: scaled by ``rlnTomoTiltSeriesPixelSize / pixel_size``.
  ``rlnTomoName`` names the tomogram.
* **STOPGAP STAR** (``data_stopgap_motivelist``) and **EM motive lists** (cryoCAT/TOM/AV3,
  1 x N x 20): 1-based voxels plus shifts: voxel = ``orig + shift - 1``; ``tomo_num`` /
  ``tomo_id`` name the tomogram.
"""
from __future__ import annotations

import csv
import os
import re
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Mapping, Sequence

import numpy as np
from numpy.typing import ArrayLike

if TYPE_CHECKING:
    import pandas as pd

    from .paths import PathLike

__all__ = ["ParticleFormatError", "ParticleList", "read_particle_list", "particles_in_tomogram",
           "value_column", "FORMATS", "write_particles_csv"]

FORMATS = ("imod", "text", "csv", "relion", "stopgap", "em")
#: names accepted for common value columns (``--color-by score``)
VALUE_ALIASES = {"score": ("score", "rlnLCCmax", "rlnAutopickFigureOfMerit", "rlnMaxValueProbDistribution"),
                 "class": ("class", "rlnClassNumber", "classId", "group"),
                 "object": ("object", "object_id", "tomo_num")}


class ParticleFormatError(ValueError):
    """A particle file cannot be read, or does not say where its particles are."""


class Table:
    """Named columns (numpy arrays) of equal length, with the part of a pandas DataFrame's
    interface used here: ``t[name]`` (a column), ``t[bool array]`` (rows), ``columns``,
    ``len``. Text, CSV and IMOD particles are read into it without importing pandas (0.3 s
    of start-up); STAR and EM motive lists stay DataFrames."""

    def __init__(self, columns: Mapping[str, ArrayLike]) -> None:
        self._c = {str(k): np.asarray(v) for k, v in columns.items()}
        lengths = {len(v) for v in self._c.values()}
        if len(lengths) > 1:
            raise ParticleFormatError("columns of different lengths %s" % sorted(lengths))

    @property
    def columns(self) -> list[str]:
        """The column names, in insertion order."""
        return list(self._c)

    def __len__(self):
        return len(next(iter(self._c.values()))) if self._c else 0

    def __contains__(self, name):
        return name in self._c

    def __getitem__(self, key):
        if isinstance(key, str):
            return self._c[key]
        mask = np.asarray(key)
        return Table({k: v[mask] for k, v in self._c.items()})

    def __setitem__(self, name, values):
        self._c[str(name)] = np.broadcast_to(np.asarray(values), (len(self),)).copy() \
            if self._c else np.asarray(values)


def _numeric(values):
    """float64 of a column; entries that are not numbers become NaN."""
    a = np.asarray(values)
    if np.issubdtype(a.dtype, np.number):
        return a.astype(np.float64)
    out = np.full(a.shape, np.nan)
    for i, v in enumerate(a):
        try:
            out[i] = float(v)
        except (TypeError, ValueError):
            pass
    return out


@dataclass
class ParticleList:
    """Particles of a file: ``table`` has ``x, y, z`` in ``units`` (``voxel``: 0-based voxel
    centres; ``angst_centred``: RELION 5 Å from the tomogram centre; ``ts_px``: RELION 4
    tilt-series px), optional ``tomo`` (tomogram name, as a string), ``id`` (label) and the
    file's other columns."""
    path: str
    format: str
    table: object                      # Table or pandas DataFrame
    units: str = "voxel"
    relion: object = field(default=None, repr=False)
    ts_pixel_size: float = None

    def tomograms(self) -> list[str]:
        """Distinct tomogram names in file order ([] when the file does not name any)."""
        if "tomo" not in self.table.columns:
            return []
        return list(dict.fromkeys(np.asarray(self.table["tomo"]).tolist()))


def _detect(path):
    ext = os.path.splitext(path)[1].lower()
    if ext == ".mod":
        return "imod"
    if ext == ".em":
        return "em"
    if ext == ".star":
        with open(path, errors="replace") as fh:
            head = fh.read(65536)
        return "stopgap" if "stopgap_motivelist" in head else "relion"
    with open(path, errors="replace") as fh:
        for line in fh:
            s = line.strip()
            if not s or s.startswith("#"):
                continue
            tokens = [t.lower() for t in re.split(r"[,\s]+", s) if t]
            return "csv" if {"x", "y", "z"} <= set(tokens) else "text"
    raise ParticleFormatError("%s holds no particle" % path)


def read_particle_list(path: PathLike, fmt: str | None = None) -> ParticleList:
    """Read a particle file (format from the extension and content unless ``fmt``).

    Raises
    ------
    FileNotFoundError
        missing file.
    ParticleFormatError
        unreadable file, missing columns, or no particle.
    """
    if not os.path.isfile(path):
        raise FileNotFoundError("particle file not found: %s" % path)
    fmt = fmt or _detect(path)
    if fmt not in FORMATS:
        raise ParticleFormatError("particle format %r: expected one of %s"
                                  % (fmt, ", ".join(FORMATS)))
    plist = {"imod": _read_imod, "text": _read_text, "csv": _read_csv, "relion": _read_relion,
             "stopgap": _read_stopgap, "em": _read_em}[fmt](path)
    if not len(plist.table):
        raise ParticleFormatError("%s holds no particle" % path)
    return plist


def _read_imod(path):
    try:
        import imodmodel
        df = imodmodel.read(path)
    except Exception as exc:
        raise ParticleFormatError("cannot read the IMOD model %s: %s" % (path, exc)) from None
    t = Table({"x": df["x"].to_numpy(np.float64) - 0.5,
               "y": df["y"].to_numpy(np.float64) - 0.5,
               "z": df["z"].to_numpy(np.float64),
               "object": df["object_id"].to_numpy() + 1,
               "contour": df["contour_id"].to_numpy() + 1,
               "id": np.arange(1, len(df) + 1)})
    return ParticleList(path, "imod", t)


def _read_text(path):
    rows = []
    with open(path, errors="replace") as fh:
        for i, line in enumerate(fh, 1):
            s = line.split("#", 1)[0].strip()
            if not s:
                continue
            try:
                vals = [float(v) for v in re.split(r"[,\s]+", s) if v]
            except ValueError:
                raise ParticleFormatError("%s line %d: %r is not 'x y z' numbers" % (
                    path, i, s[:60])) from None
            if len(vals) < 3:
                raise ParticleFormatError("%s line %d has %d numbers; 'x y z' needs 3"
                                          % (path, i, len(vals)))
            rows.append(vals)
    width = min(len(r) for r in rows) if rows else 3
    arr = np.array([r[:width] for r in rows], dtype=np.float64).reshape(-1, width)
    cols = {"x": arr[:, 0] - 0.5, "y": arr[:, 1] - 0.5, "z": arr[:, 2]}
    for j in range(3, width):
        cols["c%d" % (j + 1)] = arr[:, j]
    cols["id"] = np.arange(1, len(arr) + 1)
    t = Table(cols)
    return ParticleList(path, "text", t)


def _read_csv(path):
    try:
        with open(path, newline="", errors="replace") as fh:
            lines = [ln for ln in fh if ln.strip() and not ln.lstrip().startswith("#")]
        dialect = csv.Sniffer().sniff(lines[0], delimiters=",;\t ") if lines else csv.excel
        rows = list(csv.reader(lines, dialect))
    except (OSError, csv.Error) as exc:
        raise ParticleFormatError("cannot read CSV %s: %s" % (path, exc)) from None
    header = [h.strip() for h in rows[0]] if rows else []
    lower = {c.lower(): c for c in header}
    missing = [c for c in "xyz" if c not in lower]
    if missing:
        raise ParticleFormatError("%s lacks columns %s (columns: %s)"
                                  % (path, missing, ", ".join(header)))
    body = [r for r in rows[1:] if any(v.strip() for v in r)]
    bad = [i + 2 for i, r in enumerate(body) if len(r) != len(header)]
    if bad:
        raise ParticleFormatError("%s line %d has %d values for %d columns"
                                  % (path, bad[0], len(body[bad[0] - 2]), len(header)))
    cols = {}
    for j, name in enumerate(header):
        raw = np.array([r[j].strip() for r in body])
        num = _numeric(raw)
        cols[name] = num if not (np.isnan(num) & (raw != "") & (np.char.lower(raw) != "nan")
                                 ).any() else raw
    for c in "xyz":
        cols[c] = _numeric(cols.pop(lower[c]))
    for name in ("tomo", "tomo_name", "tsid", "rlntomoname"):
        if name in lower and "tomo" not in cols:
            cols["tomo"] = np.asarray(cols[lower[name]]).astype(str)
    if "id" not in cols:
        cols["id"] = np.arange(1, len(body) + 1)
    return ParticleList(path, "csv", Table(cols))


def _read_relion(path):
    from . import relion5
    try:
        pt = relion5.read_particles(path)
    except (relion5.Relion5Error, ValueError) as exc:
        raise ParticleFormatError(str(exc)) from None
    parts = pt.particles
    ts_ps = None
    if all(c in parts.columns for c in relion5.CENTERED_COLUMNS):
        units, cols = "angst_centred", relion5.CENTERED_COLUMNS
    elif all(c in parts.columns for c in relion5.PIXEL_COLUMNS):
        units, cols = "ts_px", relion5.PIXEL_COLUMNS
        if "rlnTomoTiltSeriesPixelSize" in pt.optics.columns and len(pt.optics):
            ts_ps = float(pt.optics["rlnTomoTiltSeriesPixelSize"].iloc[0])
    else:
        raise ParticleFormatError("%s: no rlnCenteredCoordinateX/Y/ZAngst nor rlnCoordinateX/"
                                  "Y/Z columns" % path)
    t = parts.copy()
    t["x"], t["y"], t["z"] = (parts[c].to_numpy(np.float64) for c in cols)
    t["tomo"] = parts["rlnTomoName"].astype(str)
    names = relion5.particle_names(parts)
    t["id"] = [n.rsplit("/", 1)[-1] for n in names]
    return ParticleList(path, "relion", t, units, relion=parts, ts_pixel_size=ts_ps)


def _read_stopgap(path):
    from .motl import MotlFormatError, read_stopgap_star
    try:
        m = read_stopgap_star(path)
    except (MotlFormatError, ValueError) as exc:
        raise ParticleFormatError(str(exc)) from None
    t = m.copy()
    for c in "xyz":
        t[c] = m["orig_" + c].to_numpy(np.float64) + m[c + "_shift"].to_numpy(np.float64) - 1
    t["tomo"] = m["tomo_num"].astype(int).astype(str)
    t["id"] = m["subtomo_num"].astype(int)
    return ParticleList(path, "stopgap", t)


def _read_em(path):
    from .motl import MotlFormatError, read_em_motl
    try:
        m = read_em_motl(path)
    except (MotlFormatError, ValueError) as exc:
        raise ParticleFormatError(str(exc)) from None
    t = m.copy()
    for c in "xyz":
        t[c] = m[c].to_numpy(np.float64) + m["shift_" + c].to_numpy(np.float64) - 1
    t["tomo"] = m["tomo_id"].astype(int).astype(str)
    t["id"] = m["subtomo_id"].astype(int)
    return ParticleList(path, "em", t)


def _select(plist, tomo_name):
    names = plist.tomograms()
    if not names:
        return plist.table
    if tomo_name is None:
        if len(names) == 1:
            return plist.table
        raise ParticleFormatError("%s holds particles of %d tomograms (%s); choose one with "
                                  "the tomogram name" % (plist.path, len(names),
                                                         ", ".join(names[:10])))
    want = str(tomo_name)
    tomo = np.asarray(plist.table["tomo"]).astype(str)
    sel = tomo == want
    if not sel.any():
        try:                                # "3" matches tomo_num 3.0 written as "3"
            sel = _numeric(tomo) == float(want)
        except ValueError:
            pass
    if not sel.any():
        raise ParticleFormatError("%s has no particle of tomogram %r (tomograms: %s)"
                                  % (plist.path, want, ", ".join(names[:10])))
    return plist.table[sel]


def particles_in_tomogram(plist: ParticleList, tomo_name: str | None = None,
                          shape_xyz: Sequence[int] | None = None,
                          pixel_size: float | None = None
                          ) -> tuple[np.ndarray, Table | pd.DataFrame]:
    """Positions of the particles of one tomogram in its 0-based voxels.

    Parameters
    ----------
    plist : ParticleList
    tomo_name : str, optional
        Tomogram to select in files naming several (``rlnTomoName``, ``tomo_num``,
        ``tomo_id``, a CSV ``tomo`` column); None: all particles when the file names at most
        one tomogram.
    shape_xyz : (int, int, int)
        Tomogram size ``(nx, ny, nz)`` in voxels (RELION centred coordinates).
    pixel_size : float
        Tomogram voxel size in Å (RELION coordinates).

    Returns
    -------
    positions : ndarray, (N, 3) float64
        0-based voxel ``(x, y, z)``.
    table : Table or pandas.DataFrame
        the selected rows (``id`` and value columns).

    Raises
    ------
    ParticleFormatError
        no particle of ``tomo_name``, several tomograms and no name, non-finite coordinates,
        or RELION coordinates without the pixel size.
    """
    t = _select(plist, tomo_name)
    if plist.units == "voxel":
        pos = np.stack([_numeric(t[c]) for c in "xyz"], axis=1)
    else:
        from . import relion5
        if not pixel_size or not float(pixel_size) > 0:
            raise ParticleFormatError(
                "%s has RELION coordinates in %s: the tomogram's pixel size is needed (its MRC "
                "header has none; give it)" % (plist.path, "Å" if plist.units ==
                                               "angst_centred" else "tilt-series px"))
        ps = float(pixel_size)
        rows = plist.relion.loc[t.index]
        if plist.units == "angst_centred":
            pos = relion5.particle_positions(rows, ps, tuple(float(s) for s in shape_xyz))
        else:
            f = (plist.ts_pixel_size or ps) / ps
            pos = rows[relion5.PIXEL_COLUMNS].to_numpy(np.float64) * f
    if not np.all(np.isfinite(pos)):
        bad = int((~np.isfinite(pos).all(axis=1)).sum())
        raise ParticleFormatError("%s: %d particle position(s) are not numbers" % (plist.path,
                                                                                     bad))
    return pos, t


def value_column(table: Table | pd.DataFrame, name: str) -> tuple[np.ndarray, str]:
    """Values of column ``name`` (or of an alias: ``score``, ``class``, ``object``) as float64,
    and the column's name.

    Raises
    ------
    ParticleFormatError
        no such column, or values that are not numbers.
    """
    candidates = [name] + list(VALUE_ALIASES.get(str(name).lower(), ()))
    lower = {str(c).lower(): c for c in table.columns}
    for c in candidates:
        col = c if c in table.columns else lower.get(str(c).lower())
        if col is not None:
            vals = _numeric(table[col])
            if np.isnan(vals).all() and len(vals):
                raise ParticleFormatError("column %s holds no numbers" % col)
            return vals, str(col)
    numeric = [str(c) for c in table.columns if c not in ("x", "y", "z")
               and np.issubdtype(np.asarray(table[c]).dtype, np.number)]
    raise ParticleFormatError("no column %r to colour by (numeric columns: %s)"
                              % (name, ", ".join(numeric[:20]) or "none"))


def write_particles_csv(path: PathLike, positions: ArrayLike,
                        columns: Mapping[str, Sequence] | None = None) -> PathLike:

    """Write particles as the CSV this module reads as voxel centres: ``x,y,z`` (0-based
    voxels of the tomogram) and the given extra ``columns`` (``{name: values}``),
    atomically."""
    from .mrc import atomic_output
    pos = np.asarray(positions, dtype=np.float64).reshape(-1, 3)
    extra = {k: list(v) for k, v in (columns or {}).items()}
    fmt = (lambda v: "%.4f" % v if isinstance(v, (float, np.floating)) else str(v))
    with atomic_output(path) as tmp:
        with open(tmp, "w", newline="") as fh:
            w = csv.writer(fh)
            w.writerow(["x", "y", "z"] + list(extra))
            for i, p in enumerate(pos):
                w.writerow(["%.4f" % v for v in p] + [fmt(extra[k][i]) for k in extra])
    return path
