"""RELION 5 tomography projects: ``tomograms.star``, per-tilt-series STAR files,
``particles.star`` and ``optimisation_set.star`` (reading, writing, RELION's path rules).

Conventions of RELION 5.0.1 (``tomogram_set.cpp``, ``particle_set.cpp``, ``subtomo.cpp``;
see docs/import-relion5.md and docs/extract-subtomos.md):

* **Paths** inside STAR files are relative to the RELION project directory (the directory
  RELION runs in), unless absolute or URLs. Tilt series and tomograms may be OME-Zarr
  images (``TS_01.zarr``, ``https://.../TS_01.zarr``; convert/images.py), also as
  ``"<n>@TS_01.zarr"`` in ``rlnMicrographName``. ``rlnMicrographName`` is ``"<n>@stack.mrcs"`` (1-based
  frame) or a per-tilt file; a ``:mrcs``/``:mrc`` suffix is a format hint.
  :func:`resolve` applies these rules; :func:`relion_path` writes a path back relative to
  the project when it lies inside it, absolute otherwise.
* ``tomograms.star`` block ``data_global``: one row per tilt series; optional
  ``rlnTomoSizeX/Y/Z`` (missing = -999, see kernels/relion_geometry.py),
  ``rlnTomoDefocusSlope`` (1), ``rlnCtfBfactorPerElectronDose`` (0), compulsory
  ``rlnTomoHand``.
* Per tilt series, block ``data_<rlnTomoName>``: one row per tilt image in stack order, with
  ``rlnTomoXTilt`` (optional), ``rlnTomoYTilt``, ``rlnTomoZRot``, ``rlnTomoX/YShiftAngst``
  (or RELION 4 ``rlnTomoProjX/Y/Z/W``), ``rlnDefocusU/V/Angle``, ``rlnMicrographPreExposure``
  and optional ``rlnCtfScalefactor`` (1), ``rlnCtfBfactor`` (0), ``rlnPhaseShift`` (0).
* ``particles.star``: ``data_general`` (optional), ``data_optics`` (built from
  tomograms.star when empty, as RELION does), ``data_particles``.

Blocks are pandas DataFrames; labels without the leading underscore (``starfile``).
"""
import os
from dataclasses import dataclass, field
from typing import Dict, List, Mapping, Optional, Sequence, Tuple, Union

import numpy as np
import pandas as pd
from numpy.typing import ArrayLike

from ..kernels import relion_geometry
from ..kernels.euler import relion_euler_matrix
from .images import image_info, is_image_store, is_url
from .mrc import MrcFormatError, parse_location
from .star import read_star, write_star

__all__ = ["Relion5Error", "guess_project_dir", "TiltSeries", "ParticleTable", "resolve",
           "relion_path", "star_kind", "read_tomograms", "load_tilt_series", "read_tilt_series", "read_particles",
           "particle_names", "particle_positions", "optics_pixel_sizes",
           "write_tomograms_star", "write_tilt_series_star", "write_particles_star",
           "write_optimisation_set", "extraction_particle_tables", "stack2d_name",
           "CENTERED_COLUMNS", "PIXEL_COLUMNS", "ORIGIN_COLUMNS", "SUBTOMO_COLUMNS",
           "ANGLE_COLUMNS"]

CENTERED_COLUMNS = ["rlnCenteredCoordinateXAngst", "rlnCenteredCoordinateYAngst",
                    "rlnCenteredCoordinateZAngst"]
PIXEL_COLUMNS = ["rlnCoordinateX", "rlnCoordinateY", "rlnCoordinateZ"]
ORIGIN_COLUMNS = ["rlnOriginXAngst", "rlnOriginYAngst", "rlnOriginZAngst"]
SUBTOMO_COLUMNS = ["rlnTomoSubtomogramRot", "rlnTomoSubtomogramTilt", "rlnTomoSubtomogramPsi"]
ANGLE_COLUMNS = ["rlnAngleRot", "rlnAngleTilt", "rlnAnglePsi"]
PROJ_COLUMNS = ["rlnTomoProjX", "rlnTomoProjY", "rlnTomoProjZ", "rlnTomoProjW"]


class Relion5Error(ValueError):
    """A RELION 5 project file is missing a block, a column or a referenced file."""


# ----------------------------------------------------------------------------- paths
def resolve(path: str, project_dir: str) -> str:
    """Absolute file name of a path found in a RELION STAR file (``n@`` prefix and ``:mrcs``
    hint removed); relative paths are relative to ``project_dir``."""
    _, p = parse_location(str(path))
    if os.path.isabs(p) or is_url(p):
        return p
    return os.path.normpath(os.path.join(project_dir, p))


def relion_path(path: str, project_dir: str) -> str:
    """Path to write into a STAR file: relative to ``project_dir`` when ``path`` lies inside
    it (RELION's convention), absolute otherwise. Directories keep a trailing slash."""
    if is_url(path):
        return str(path)
    trailing = str(path).endswith(os.sep)
    ap = os.path.abspath(path)
    pd_ = os.path.abspath(project_dir)
    if ap == pd_:
        rel = "."
    elif ap.startswith(pd_.rstrip(os.sep) + os.sep):
        rel = os.path.relpath(ap, pd_)
    else:
        rel = ap
    return rel + os.sep if trailing and not rel.endswith(os.sep) else rel


def guess_project_dir(tomograms_star: str, tomograms: Optional[pd.DataFrame] = None) -> str:
    """The RELION project directory of a tomograms.star: the first of its folder and that
    folder's parents in which every ``rlnTomoTiltSeriesStarFile`` exists (RELION resolves
    them against the directory it runs in). Falls back to the file's folder."""
    folder = os.path.dirname(os.path.abspath(tomograms_star))
    if tomograms is None:
        tomograms = read_tomograms(tomograms_star)
    files = [str(f) for f in tomograms.get("rlnTomoTiltSeriesStarFile", [])]
    if not files or any(os.path.isabs(f) for f in files):
        return folder
    d = folder
    while True:
        if all(os.path.exists(os.path.join(d, f)) for f in files):
            return d
        parent = os.path.dirname(d)
        if parent == d:
            return folder
        d = parent


# ----------------------------------------------------------------------------- tomograms
def _first_block(blocks, name, path):
    if name in blocks:
        return blocks[name]
    if len(blocks) == 1:
        return next(iter(blocks.values()))
    raise Relion5Error("%s has no data_%s block (blocks: %s)" % (path, name, ", ".join(blocks)))


def _as_frame(block):
    if isinstance(block, pd.DataFrame):
        return block
    return pd.DataFrame([block]) if block else pd.DataFrame()


def _is_particle_table(table) -> bool:
    return isinstance(table, pd.DataFrame) and "rlnTomoTiltSeriesStarFile" not in \
        table.columns and (all(c in table.columns for c in CENTERED_COLUMNS)
                           or all(c in table.columns for c in PIXEL_COLUMNS))


def star_kind(path: str) -> tuple:
    """What a RELION 5 STAR file holds: ``"tomograms"`` (a table with
    ``rlnTomoTiltSeriesStarFile``), ``"particles"`` (a ``data_particles`` block, or a table
    of particle coordinates) or None; with the number of rows of that table.

    Raises
    ------
    ValueError
        an unreadable STAR file.
    """
    blocks = read_star(path)
    for block in blocks.values():
        if isinstance(block, pd.DataFrame) and "rlnTomoTiltSeriesStarFile" in block.columns:
            return "tomograms", len(block)
    for name, block in blocks.items():
        if name == "particles" or _is_particle_table(block):
            return "particles", len(_as_frame(block))
    return None, 0


def read_tomograms(path: str) -> pd.DataFrame:
    """The ``data_global`` table of a tomograms.star, ``rlnTomoName`` as strings.

    Raises
    ------
    Relion5Error
        no ``rlnTomoName`` column, a table of particles (a particles.star given as
        tomograms.star), or duplicated names (the first few named, and their count).
    """
    glob = _as_frame(_first_block(read_star(path), "global", path)).copy()
    if _is_particle_table(glob):
        raise Relion5Error("%s holds %d particles (particle coordinates, no "
                           "rlnTomoTiltSeriesStarFile), not tilt series: it is a particles.star, "
                           "not a tomograms.star" % (path, len(glob)))
    for col in ("rlnTomoName",):
        if col not in glob.columns:
            raise Relion5Error("%s: column %s is missing from data_global" % (path, col))
    glob["rlnTomoName"] = glob["rlnTomoName"].astype(str)
    dup = glob["rlnTomoName"][glob["rlnTomoName"].duplicated()]
    if len(dup):
        names = list(dict.fromkeys(dup.tolist()))
        raise Relion5Error("%s: duplicated rlnTomoName %s%s (%d duplicated rows)"
                           % (path, ", ".join(names[:5]), ", ..." if len(names) > 5 else "",
                              len(dup)))
    return glob.reset_index(drop=True)


@dataclass
class TiltSeries:
    """One tilt series of a RELION 5 project with everything extraction needs.

    Per-frame arrays have length F = number of rows of the tilt-series STAR (stack order).
    Positions and matrices follow kernels/relion_geometry.py.
    """
    name: str
    pixel_size: float
    voltage: float
    cs: float
    amplitude_contrast: float
    hand: float
    defocus_slope: float
    bfactor_per_dose: float
    tomo_size: tuple            # (w0, h0, d0) ints or None (RELION -999)
    image_size: tuple           # (W, H)
    frames: list                # [(absolute file, 0-based frame index)]
    matrices: np.ndarray        # (F, 4, 4)
    pre_exposure: np.ndarray
    defocus_u: np.ndarray
    defocus_v: np.ndarray
    defocus_angle: np.ndarray
    phase_shift: np.ndarray
    ctf_scale: np.ndarray
    ctf_bfactor: np.ndarray
    global_row: dict = field(default_factory=dict)
    table: pd.DataFrame = None
    star_file: str = ""
    projection_from_old_matrices: bool = False

    @property
    def n_frames(self) -> int:
        """Number of tilt images (rows of the tilt-series STAR file)."""
        return len(self.frames)


    def centre(self) -> np.ndarray:
        return relion_geometry.tomogram_centre(self.tomo_size)

    def depth_offsets(self, positions: ArrayLike) -> np.ndarray:
        return relion_geometry.depth_offsets(self.matrices, positions, self.tomo_size)

    def frame_groups(self) -> Dict[str, List[Tuple[int, int]]]:
        """``{file: [(frame, index_in_file), ...]}``: frames grouped by the file they live in."""
        groups = {}
        for f, (path, idx) in enumerate(self.frames):
            groups.setdefault(path, []).append((f, idx))
        return groups


def _col(df, name, default, path, n):
    if name in df.columns:
        return df[name].to_numpy(dtype=np.float64)
    if default is None:
        raise Relion5Error("%s: column %s is missing" % (path, name))
    return np.full(n, float(default))


def _tomo_size(row):
    if all(k in row and pd.notna(row[k]) for k in ("rlnTomoSizeX", "rlnTomoSizeY",
                                                     "rlnTomoSizeZ")):
        return tuple(int(float(row[k])) for k in ("rlnTomoSizeX", "rlnTomoSizeY",
                                                   "rlnTomoSizeZ"))
    return None


def _frame_file_shape(path, pixel_size, where):
    """Shape of a tilt-image file: an MRC header, or the OME-Zarr level whose pixel size is
    the STAR file's (level 0 when none is; then its pixel size, when the store states one in
    length units, must be the STAR file's within 0.1 %)."""
    if not is_image_store(path):
        return image_info(path).shape
    from .images import open_image
    img = open_image(path, voxel_size=pixel_size)
    try:
        vs = float(img.voxel_size[0])
        if img.voxel_size_known and abs(vs - pixel_size) > 1e-3 * pixel_size:
            raise Relion5Error(
                "%s: tilt images %s have %.4g A pixels (scale levels: %s); the STAR files "
                "say rlnTomoTiltSeriesPixelSize %.4g A" % (
                    where, path, vs, ", ".join("%s = %.4g A" % (lv["path"],
                                                               lv["voxel_size"][0])
                                               for lv in img.levels), pixel_size))
        return img.shape
    finally:
        img.close()


def read_tilt_series(star_path: str, name: str) -> pd.DataFrame:
    """The per-tilt-series table ``data_<name>`` of a STAR file."""
    blocks = read_star(star_path)
    return _as_frame(_first_block(blocks, str(name), star_path)).reset_index(drop=True)


def load_tilt_series(row: Mapping, project_dir: str,
                     table: Optional[pd.DataFrame] = None,
                     need_ctf: bool = True) -> TiltSeries:
    """Build a :class:`TiltSeries` from one ``tomograms.star`` row (a dict or Series).

    Parameters
    ----------
    row : mapping
        the tomograms.star row.
    project_dir : str
        directory the STAR paths are relative to.
    table : DataFrame, optional
        the per-tilt-series table (read from ``rlnTomoTiltSeriesStarFile`` when None).
    need_ctf : bool
        require the optics (voltage, Cs, amplitude contrast, handedness), the defocus columns
        and the pre-exposure (extraction, reconstruction); False only needs the pixel size,
        the images and the alignment (geometry: movies), and fills what is absent with RELION
        defaults (optics), NaN (defocus, pre-exposure).

    Raises
    ------
    Relion5Error
        missing columns or files, frames of different sizes.
    """
    row = dict(row)
    name = str(row["rlnTomoName"])
    table, where, star_file = _tilt_table(row, name, project_dir, table)
    n = len(table)
    if n == 0:
        raise Relion5Error("%s has no tilt images" % where)
    defaults = {"rlnVoltage": 300.0, "rlnSphericalAberration": 2.7,
                "rlnAmplitudeContrast": 0.1, "rlnTomoHand": -1.0}
    for key in ("rlnTomoTiltSeriesPixelSize", "rlnVoltage", "rlnSphericalAberration",
                "rlnAmplitudeContrast", "rlnTomoHand"):
        if key not in row or pd.isna(row[key]):
            if not need_ctf and key in defaults:
                row[key] = defaults[key]
                continue
            raise Relion5Error("%s: %s is missing from tomograms.star" % (where, key))
    ps = float(row["rlnTomoTiltSeriesPixelSize"])
    nan = None if need_ctf else float("nan")
    frames = _frame_sources(row, table, project_dir, where)
    W, H = _image_size(frames, ps, where)
    tomo_size = _tomo_size(row)
    P, old = _projections(table, ps, (W, H), tomo_size, where)
    return TiltSeries(
        name=name, pixel_size=ps, voltage=float(row["rlnVoltage"]),
        cs=float(row["rlnSphericalAberration"]),
        amplitude_contrast=float(row["rlnAmplitudeContrast"]),
        hand=float(row["rlnTomoHand"]),
        defocus_slope=_optional(row, "rlnTomoDefocusSlope", 1.0),
        bfactor_per_dose=_optional(row, "rlnCtfBfactorPerElectronDose", 0.0),
        tomo_size=tomo_size, image_size=(int(W), int(H)), frames=frames, matrices=P,
        pre_exposure=_col(table, "rlnMicrographPreExposure", nan, where, n),
        defocus_u=_col(table, "rlnDefocusU", nan, where, n),
        defocus_v=_col(table, "rlnDefocusV", nan, where, n),
        defocus_angle=_col(table, "rlnDefocusAngle", nan, where, n),
        phase_shift=_col(table, "rlnPhaseShift", 0.0, where, n),
        ctf_scale=_col(table, "rlnCtfScalefactor", 1.0, where, n),
        ctf_bfactor=_col(table, "rlnCtfBfactor", 0.0, where, n),
        global_row=row, table=table, star_file=star_file,
        projection_from_old_matrices=old)


def _optional(row, key, default):
    """A float column of a tomograms.star row, ``default`` when absent or NaN."""
    v = row.get(key, default)
    return float(v if pd.notna(v) else default)


def _tilt_table(row, name, project_dir, table):
    """``(table, where, star file)``: the per-tilt-series table (read from
    ``rlnTomoTiltSeriesStarFile`` unless given) and the name used in messages."""
    where = "tomogram %s" % name
    star_file = row.get("rlnTomoTiltSeriesStarFile", "")
    if table is not None:
        return table, where, star_file
    if not star_file:
        raise Relion5Error("%s: rlnTomoTiltSeriesStarFile is missing from tomograms.star"
                           % where)
    star_abs = resolve(star_file, project_dir)
    if not os.path.exists(star_abs):
        raise Relion5Error("%s: tilt-series STAR file %s not found (resolved from %s "
                           "relative to the project directory %s)"
                           % (where, star_abs, star_file, project_dir))
    return read_tilt_series(star_abs, name), "%s (%s)" % (where, star_file), star_file


def _frame_sources(row, table, project_dir, where):
    """``[(absolute file, 0-based frame index)]`` of the tilt images, in table order."""
    if "rlnMicrographName" in table.columns:
        frames = []
        for v in table["rlnMicrographName"].astype(str):
            idx, p = parse_location(v)
            frames.append((resolve(p, project_dir), (idx - 1) if idx else 0))
        return frames
    if row.get("rlnTomoTiltSeriesName"):
        p = resolve(row["rlnTomoTiltSeriesName"], project_dir)
        return [(p, i) for i in range(len(table))]
    raise Relion5Error("%s: no rlnMicrographName column (and no rlnTomoTiltSeriesName)"
                       % where)


def _image_size(frames, ps, where):
    """``(W, H)`` of the tilt images: every frame exists and all have one size."""
    sizes = {}
    for p, idx in frames:
        if p not in sizes:
            try:
                sizes[p] = _frame_file_shape(p, ps, where)
            except MrcFormatError as exc:
                raise Relion5Error("%s: %s" % (where, exc)) from None
        nz = sizes[p][0]
        if idx >= nz:
            raise Relion5Error("%s: frame %d requested from %s, which has %d" % (where, idx + 1,
                                                                                p, nz))
    shapes = {s[1:] for s in sizes.values()}
    if len(shapes) != 1:
        raise Relion5Error("%s: tilt images of different sizes %s" % (where, sorted(shapes)))
    H, W = next(iter(shapes))
    return W, H


def _projections(table, ps, image_size, tomo_size, where):
    """``(P, old)``: the (F, 4, 4) projection matrices from RELION 5's alignment columns, or
    the RELION 4 ``rlnTomoProjX/Y/Z/W`` matrices (``old`` True)."""
    n = len(table)
    old = all(c in table.columns for c in PROJ_COLUMNS)
    if all(c in table.columns for c in ("rlnTomoYTilt", "rlnTomoZRot", "rlnTomoXShiftAngst",
                                        "rlnTomoYShiftAngst")) and not old:
        P = relion_geometry.projection_matrices(table["rlnTomoYTilt"], table["rlnTomoZRot"],
                                                table["rlnTomoXShiftAngst"],
                                                table["rlnTomoYShiftAngst"],
                                                ps, image_size, tomo_size,
                                                xtilt=_col(table, "rlnTomoXTilt", 0.0, where, n))
    elif old:
        P = np.zeros((n, 4, 4))
        for i, c in enumerate(PROJ_COLUMNS):
            for f, v in enumerate(table[c]):
                vals = [float(t) for t in str(v).strip("[]").split(",")]
                P[f, i] = vals
    else:
        raise Relion5Error("%s: no alignment (rlnTomoYTilt, rlnTomoZRot, rlnTomoX/YShiftAngst "
                           "or rlnTomoProjX/Y/Z/W)" % where)
    return P, old


# ----------------------------------------------------------------------------- particles
@dataclass
class ParticleTable:
    """The three blocks of a particles.star (general may be empty, optics may be empty)."""
    general: dict
    optics: pd.DataFrame
    particles: pd.DataFrame
    path: str = ""


def read_particles(path: str) -> ParticleTable:
    """Read a RELION 5 particles.star (``rlnTomoName`` as strings).

    Raises
    ------
    Relion5Error
        no ``data_particles`` table or no ``rlnTomoName``.
    """
    blocks = read_star(path)
    if "particles" in blocks:
        parts = _as_frame(blocks["particles"])
    elif len(blocks) == 1:
        parts = _as_frame(next(iter(blocks.values())))
    else:
        raise Relion5Error("%s has no data_particles block (blocks: %s)"
                           % (path, ", ".join(blocks)))
    if "rlnTomoName" not in parts.columns:
        raise Relion5Error("%s: column rlnTomoName is missing from data_particles" % path)
    parts = parts.copy().reset_index(drop=True)
    parts["rlnTomoName"] = parts["rlnTomoName"].astype(str)
    if "rlnTomoParticleName" in parts.columns:
        parts["rlnTomoParticleName"] = parts["rlnTomoParticleName"].astype(str)
    general = blocks.get("general", {})
    if isinstance(general, pd.DataFrame):
        general = general.iloc[0].to_dict() if len(general) else {}
    optics = _as_frame(blocks.get("optics", pd.DataFrame())).copy()
    return ParticleTable(dict(general), optics.reset_index(drop=True), parts, path)


def build_optics(optics: Optional[pd.DataFrame], particles: pd.DataFrame,
                 tomograms: pd.DataFrame) -> Tuple[pd.DataFrame, pd.DataFrame]:
    """RELION's optics table: the input one, or (when empty) one group per optics-group name
    of tomograms.star in order of first appearance in the particles (``ParticleSet::read``);
    then ``rlnOpticsGroup`` of the particles is set accordingly. Returns
    ``(optics, particles)`` (copies)."""
    particles = particles.copy()
    if optics is not None and len(optics):
        if "rlnOpticsGroup" not in particles.columns:
            particles["rlnOpticsGroup"] = 1
        return optics.copy(), particles
    glob = tomograms.set_index("rlnTomoName")
    gname = {t: (str(glob.at[t, "rlnOpticsGroupName"]) if "rlnOpticsGroupName" in glob.columns
                 else t) for t in glob.index}
    order, first = [], {}
    for t in particles["rlnTomoName"]:
        g = gname.get(t, t)
        if g not in first:
            first[g] = t
            order.append(g)
    rows = []
    for i, g in enumerate(order):
        t = first[g]
        if t not in glob.index:
            continue
        rows.append({"rlnVoltage": glob.at[t, "rlnVoltage"],
                     "rlnSphericalAberration": glob.at[t, "rlnSphericalAberration"],
                     "rlnAmplitudeContrast": glob.at[t, "rlnAmplitudeContrast"],
                     "rlnTomoTiltSeriesPixelSize": glob.at[t, "rlnTomoTiltSeriesPixelSize"],
                     "rlnOpticsGroup": i + 1, "rlnOpticsGroupName": g})
    group_of = {g: i + 1 for i, g in enumerate(order)}
    particles["rlnOpticsGroup"] = [group_of.get(gname.get(t, t), 1)
                                   for t in particles["rlnTomoName"]]
    return pd.DataFrame(rows), particles


def optics_pixel_sizes(optics: pd.DataFrame) -> Dict[int, float]:
    """``{rlnOpticsGroup: rlnTomoTiltSeriesPixelSize}``.

    Raises
    ------
    Relion5Error
        the optics table has no ``rlnTomoTiltSeriesPixelSize``.
    """
    if "rlnTomoTiltSeriesPixelSize" not in optics.columns:
        raise Relion5Error("rlnTomoTiltSeriesPixelSize is missing from the optics table")
    groups = optics["rlnOpticsGroup"] if "rlnOpticsGroup" in optics.columns else \
        pd.Series(np.arange(1, len(optics) + 1))
    return {int(g): float(p) for g, p in zip(groups, optics["rlnTomoTiltSeriesPixelSize"])}


def particle_names(particles: pd.DataFrame) -> List[str]:
    """``rlnTomoParticleName`` of every row, generated as ``"<tomo>/<k>"`` (1-based per
    tomogram, input order) when the column is absent (RELION ``ParticleSet::read``)."""
    if "rlnTomoParticleName" in particles.columns:
        return particles["rlnTomoParticleName"].astype(str).tolist()
    count = {}
    names = []
    for t in particles["rlnTomoName"].astype(str):
        count[t] = count.get(t, 0) + 1
        names.append("%s/%d" % (t, count[t]))
    return names


def particle_positions(particles: pd.DataFrame, pixel_sizes: Union[Mapping[int, float], float],
                       tomo_size: Optional[Sequence[int]],
                       apply_offsets: bool = True) -> np.ndarray:
    """Decentred tilt-series-pixel positions ``(N, 3)`` of particle rows (one tomogram),
    with offsets folded in when ``apply_offsets`` (RELION ``ParticleSet::getPosition``).

    ``pixel_sizes`` is the ``{optics group: pixel size}`` map (or one float).

    Raises
    ------
    Relion5Error
        no coordinate columns.
    """
    if isinstance(pixel_sizes, dict):
        og = particles["rlnOpticsGroup"].astype(int) if "rlnOpticsGroup" in particles.columns \
            else pd.Series(np.ones(len(particles), int))
        ps = np.array([pixel_sizes[int(g)] for g in og], dtype=np.float64)
    else:
        ps = np.full(len(particles), float(pixel_sizes))
    if all(c in particles.columns for c in CENTERED_COLUMNS):
        c = particles[CENTERED_COLUMNS].to_numpy(dtype=np.float64)
        pos = c / ps[:, None] + relion_geometry.tomogram_centre(tomo_size)
    elif all(c in particles.columns for c in PIXEL_COLUMNS):
        pos = particles[PIXEL_COLUMNS].to_numpy(dtype=np.float64).copy()
    else:
        raise Relion5Error("particle coordinates are missing: neither rlnCenteredCoordinate"
                           "X/Y/ZAngst nor rlnCoordinateX/Y/Z")
    if apply_offsets and any(c in particles.columns for c in ORIGIN_COLUMNS):
        o = np.stack([particles[c].to_numpy(dtype=np.float64) if c in particles.columns
                      else np.zeros(len(particles)) for c in ORIGIN_COLUMNS], axis=1)
        if all(c in particles.columns for c in SUBTOMO_COLUMNS):
            A = relion_euler_matrix(*(particles[c].to_numpy(dtype=np.float64)
                                        for c in SUBTOMO_COLUMNS))
            o = np.einsum("nij,nj->ni", A, o)
        pos = pos - o / ps[:, None]
    return pos


def stack2d_name(output_dir: str, tomo_name: str, particle_name: str,
                 per_tomogram_dirs: bool) -> str:
    """``<o>Subtomograms/[<tomo>/]<name>_stack2d.mrcs`` (RELION ``getOutputFilename``)."""
    parts = [output_dir, "Subtomograms"]
    if per_tomogram_dirs:
        parts.append(tomo_name)
    return os.path.join(*parts, particle_name + "_stack2d.mrcs")


def _set_column(df, name, values):
    """Set a column in place (keeps its position) or append it at the end (RELION
    ``MetaDataTable::setValue`` on a new label)."""
    df[name] = values


def extraction_particle_tables(ptable: ParticleTable, tomograms: pd.DataFrame,
                               kept_rows: Sequence[int], visible: Sequence[np.ndarray],
                               image_names: Sequence[str], positions: np.ndarray,
                               centres: np.ndarray, pixel_sizes: ArrayLike, binning: float,
                               crop: int, do_ctf: bool, apply_offsets: bool = True,
                               stack2d: bool = True) -> Tuple[dict, pd.DataFrame, pd.DataFrame]:
    """The optics and particles tables RELION's ``writeParticleSet`` writes.

    Parameters
    ----------
    ptable : ParticleTable
        the input particles (optics possibly empty).
    tomograms : DataFrame
        tomograms.star ``data_global`` (to build an empty optics table).
    kept_rows : list of int
        row numbers of the kept particles in output order (tomograms.star order, then input
        order).
    visible : list of 1D int/bool arrays
        per kept particle, the visibility of every tilt-series frame.
    image_names : list of str
        ``rlnImageName`` per kept particle (already in RELION path form).
    positions, centres : (K, 3) arrays
        decentred positions with offsets and the tomogram centre of each kept particle.
    pixel_sizes : (K,) array
        tilt-series pixel size of each kept particle (its optics group).

    Returns
    -------
    (general, optics, particles) : (dict, DataFrame, DataFrame)
    """
    optics, parts = build_optics(ptable.optics, ptable.particles, tomograms)
    names = particle_names(ptable.particles)
    if "rlnTomoParticleName" not in parts.columns:
        parts["rlnTomoParticleName"] = names
    out = parts.iloc[list(kept_rows)].copy().reset_index(drop=True)
    if stack2d:
        _set_column(out, "rlnTomoVisibleFrames",
                    ["[" + ",".join(str(int(v)) for v in vis) + "]" for vis in visible])
    _set_column(out, "rlnImageName", list(image_names))
    if apply_offsets:
        for c in ORIGIN_COLUMNS:
            _set_column(out, c, np.zeros(len(out)))
        cen = (np.asarray(positions, dtype=np.float64).reshape(-1, 3)
               - np.asarray(centres, dtype=np.float64).reshape(-1, 3)) \
            * np.asarray(pixel_sizes, dtype=np.float64).reshape(-1, 1)
        for i, c in enumerate(CENTERED_COLUMNS):
            _set_column(out, c, cen[:, i] if len(out) else np.zeros(0))
    drop = [c for c in PIXEL_COLUMNS if c in out.columns]
    if stack2d and "rlnCtfImage" in out.columns:
        drop.append("rlnCtfImage")
    out = out.drop(columns=drop)
    optics = optics.copy()
    optics["rlnCtfDataAreCtfPremultiplied"] = int(bool(do_ctf)) if stack2d else 1
    optics["rlnImageDimensionality"] = 2 if stack2d else 3
    optics["rlnTomoSubtomogramBinning"] = float(binning)
    optics["rlnImagePixelSize"] = optics["rlnTomoTiltSeriesPixelSize"].astype(float) \
        * float(binning)
    optics["rlnImageSize"] = int(crop)
    general = dict(ptable.general)
    general["rlnTomoSubTomosAre2DStacks"] = 1 if stack2d else 0
    return general, optics, out


# ----------------------------------------------------------------------------- writing
def write_particles_star(path: str, general: Mapping, optics: pd.DataFrame,
                         particles: pd.DataFrame) -> str:
    """Write ``data_general``, ``data_optics``, ``data_particles`` atomically."""
    return write_star(path, {"general": dict(general), "optics": optics,
                             "particles": particles})


def write_optimisation_set(path: str, particles_file: str, tomograms_file: str,
                           trajectories_file: Optional[str] = None) -> str:
    """Write RELION's ``optimisation_set.star`` (``data_`` list block; paths as given)."""
    block = {"rlnTomoParticlesFile": particles_file, "rlnTomoTomogramsFile": tomograms_file}
    if trajectories_file:
        block["rlnTomoTrajectoriesFile"] = trajectories_file
    return write_star(path, {"": block})


def write_tomograms_star(path: str, rows: Union[pd.DataFrame, List[dict]]) -> str:
    """Write ``data_global`` of a tomograms.star from a DataFrame or a list of dicts."""
    df = rows if isinstance(rows, pd.DataFrame) else pd.DataFrame(list(rows))
    return write_star(path, {"global": df})


def write_tilt_series_star(path: str, name: str, table: Union[pd.DataFrame, List[dict]]) -> str:
    """Write the per-tilt-series STAR ``data_<name>``."""
    df = table if isinstance(table, pd.DataFrame) else pd.DataFrame(list(table))
    return write_star(path, {str(name): df})
