"""Scipion tomography objects <-> RELION 5 project tables (imports pyworkflow/pwem/tomo
lazily, inside functions).

Mapping (docs/import-relion5.md; scipion-em-reliontomo ``convert50_tomo.Writer``):

* ``TiltImage``: location ``(index, stack)`` <-> ``rlnMicrographName "<index>@<stack>"``;
  ``tiltAngle`` <-> ``rlnTomoYTilt``; the 3x3 transform ``M`` <-> ``rlnTomoZRot =
  atan2(M01, M00)`` and ``rlnTomoX/YShiftAngst = inv(M)[0:2, 2] * ps`` (reliontomo
  ``ts2Star``; :func:`ti_matrix_from_relion` is its exact inverse); acquisition
  ``doseInitial`` <-> ``rlnMicrographPreExposure`` (the dose *before* the tilt);
  ``acquisitionOrder`` = rank of the pre-exposure. Disabled tilt images are not exported.
* ``CTFTomo`` (matched by acquisition order): defocus U/V/angle, phase shift.
* ``Coordinate3D``: position relative to the tomogram centre x coordinates' sampling rate
  <-> ``rlnCenteredCoordinateX/Y/ZAngst``; orientation matrix <-> RELION angles through
  convert/scipion.py (the full particle orientation ``A_subtomo . A_particle``).
* RELION quantities Scipion cannot hold are kept as extra attributes named ``_<rlnLabel>``
  (e.g. ``TiltSeries._rlnTomoHand``, ``_rlnTomoSizeX``, ``TiltImage._rlnTomoXTilt``,
  ``CTFTomo._rlnCtfScalefactor``, ``Coordinate3D._rlnAngleRot``), so that a project imported
  with ImportRelion5 is written back with exactly RELION's values. Values from attributes
  are used only while they agree with the Scipion fields they duplicate (e.g. a tilt
  series re-aligned after the import is exported from its new matrix).
"""
import json
from typing import TYPE_CHECKING, Any, Dict, List, Mapping, Optional, Sequence, Tuple

import numpy as np
import pandas as pd
from numpy.typing import ArrayLike

from . import relion5
from ..kernels.euler import relion_euler_matrix, relion_angles_from_matrix
from .scipion import scipion_matrix_to_relion

if TYPE_CHECKING:                       # Scipion objects (pyworkflow is imported lazily)
    from pyworkflow.object import Object
    from tomo.objects import (Coordinate3D, CTFTomo, CTFTomoSeries, SetOfCoordinates3D,
                              TiltSeries, Tomogram)

__all__ = ["ctf_record", "ti_matrix_from_relion", "relion_from_ti_matrix", "attr", "set_attr",
           "acquisition_orders", "MISSING", "TS_ATTRS", "COORD_SET_COLUMNS_ATTR",
           "COORD_SET_OPTICS_ATTR", "tilt_series_star_rows", "tomogram_star_row",
           "particle_star_table", "coordinate_orientation_from_row", "even_tomo_size",
           "write_tilt_series_project", "coordinate_particle_blocks"]

MISSING = -999
TS_ATTRS = ("rlnTomoHand", "rlnTomoDefocusSlope", "rlnCtfBfactorPerElectronDose",
            "rlnTomoSizeX", "rlnTomoSizeY", "rlnTomoSizeZ", "rlnOpticsGroupName",
            "rlnMicrographOriginalPixelSize")
COORD_SET_COLUMNS_ATTR = "_rlnParticleColumns"
COORD_SET_OPTICS_ATTR = "_rlnOpticsTable"


# ----------------------------------------------------------------------------- pure maths
def ti_matrix_from_relion(zrot: float, xshift_angst: float, yshift_angst: float,
                          pixel_size: float) -> np.ndarray:
    """Scipion tilt-image transform (3x3) whose reliontomo export gives back ``zrot`` (deg)
    and the shifts (Å): ``M = [[c, s, t], [-s, c, t'], [0, 0, 1]]``, ``t = -R (sx, sy)/ps``."""
    a = np.deg2rad(float(zrot))
    c, s = np.cos(a), np.sin(a)
    R = np.array([[c, s], [-s, c]])
    M = np.eye(3)
    M[:2, :2] = R
    M[:2, 2] = -R @ (np.array([xshift_angst, yshift_angst], dtype=np.float64) / pixel_size)
    return M


def relion_from_ti_matrix(M: np.ndarray, pixel_size: float) -> Tuple[float, float, float]:
    """``(zrot, xshift_angst, yshift_angst)`` of a Scipion tilt-image matrix (reliontomo
    ``Writer.ts2Star``)."""
    M = np.asarray(M, dtype=np.float64)
    inv = np.linalg.inv(M)
    return (float(np.rad2deg(np.arctan2(M[0, 1], M[0, 0]))), float(inv[0, 2] * pixel_size),
            float(inv[1, 2] * pixel_size))


def acquisition_orders(pre_exposure: ArrayLike) -> np.ndarray:
    """1-based acquisition order of each frame = rank of its pre-exposure (ties by index)."""
    order = np.argsort(np.asarray(pre_exposure, dtype=np.float64), kind="stable")
    ranks = np.empty(len(order), dtype=int)
    ranks[order] = np.arange(1, len(order) + 1)
    return ranks


def doses_per_tilt(pre_exposure: ArrayLike) -> np.ndarray:
    """Dose of each tilt (e/Å²): the next pre-exposure in acquisition order minus this one;
    the last tilt gets RELION's fractional dose (difference of the first two)."""
    pre = np.asarray(pre_exposure, dtype=np.float64)
    order = np.argsort(pre, kind="stable")
    d = np.empty_like(pre)
    if len(pre) == 1:
        return np.zeros(1)
    frac = pre[order[1]] - pre[order[0]]
    d[order[:-1]] = np.diff(pre[order])
    d[order[-1]] = frac
    return d


# ----------------------------------------------------------------------------- attributes
def attr(obj: "Object", label: str, default: Any = None) -> Any:
    """Value of the extra attribute ``_<label>`` of a Scipion object, or ``default``."""
    a = getattr(obj, "_" + label, None)
    if a is None or not hasattr(a, "get"):
        return default
    v = a.get()
    return default if v is None else v


def set_attr(obj: "Object", label: str, value: Any) -> None:
    """Store ``value`` as the extra attribute ``_<label>`` (Integer, Float or String)."""
    from pyworkflow.object import Float, Integer, String
    if isinstance(value, (bool, np.bool_)):
        value = int(value)
    if isinstance(value, (int, np.integer)):
        setattr(obj, "_" + label, Integer(int(value)))
    elif isinstance(value, (float, np.floating)):
        setattr(obj, "_" + label, Float(float(value)))
    else:
        setattr(obj, "_" + label, String(str(value)))


# ----------------------------------------------------------------------------- export
def ctf_record(ctf: "CTFTomo") -> dict:
    """Plain values of a CTFTomo (``CTFTomo.clone()`` drops extra attributes, so iterate the
    series and keep these records instead)."""
    return {"enabled": bool(ctf.isEnabled()),
            "defocus_u": float(ctf.getDefocusU()), "defocus_v": float(ctf.getDefocusV()),
            "defocus_angle": float(ctf.getDefocusAngle()),
            "phase_shift": float(ctf.getPhaseShift()) if ctf.hasPhaseShift() else 0.0,
            "rlnCtfScalefactor": attr(ctf, "rlnCtfScalefactor"),
            "rlnCtfBfactor": attr(ctf, "rlnCtfBfactor", 0.0)}


def _same(a, b, tol=1e-6):
    return a is not None and b is not None and abs(float(a) - float(b)) <= tol * max(
        1.0, abs(float(a)), abs(float(b)))


def tilt_series_star_rows(ts: "TiltSeries", ctf_by_order: Mapping[int, dict], pixel_size: float,
                          project_dir: str, scale_factor: str = "cos") -> List[dict]:
    """Rows of the per-tilt-series STAR for the enabled tilt images of ``ts`` that have a CTF.

    Parameters
    ----------
    ts : tomo.objects.TiltSeries
    ctf_by_order : dict or None
        ``{acquisition order: ctf_record(CTFTomo)}`` of the matching CTF series; None writes
        every enabled tilt image without CTF columns (geometry only, e.g. movies).
    pixel_size : float
        tilt-series pixel size (Å).
    project_dir : str
        paths are written relative to it when inside it.
    scale_factor : "cos" or "one"
        ``rlnCtfScalefactor`` for tilt images without an imported value: cos(tilt) as RELION 5
        pipelines write (doc §13.2), or 1.

    Returns
    -------
    list of dict (stack order).
    """
    import os
    rows = []
    tis = sorted((ti.clone() for ti in ts.iterItems()), key=lambda t: t.getObjId())
    for ti in tis:
        if not ti.isEnabled():
            continue
        ctf = None
        if ctf_by_order is not None:
            ctf = ctf_by_order.get(ti.getAcquisitionOrder())
            if ctf is None or not ctf["enabled"]:
                continue
        index, fn = ti.getLocation()
        path = fn if os.path.isabs(fn) else os.path.join(project_dir, fn)
        tilt = float(ti.getTiltAngle())
        M = ti.getTransform().getMatrix() if ti.getTransform() is not None else np.eye(3)
        zrot, sx, sy = relion_from_ti_matrix(M, pixel_size)
        rz, rx, ry = (attr(ti, k) for k in ("rlnTomoZRot", "rlnTomoXShiftAngst",
                                            "rlnTomoYShiftAngst"))
        if rz is not None and np.allclose(ti_matrix_from_relion(rz, rx, ry, pixel_size), M,
                                          rtol=0, atol=1e-9):
            zrot, sx, sy = float(rz), float(rx), float(ry)
        acq = ti.getAcquisition()
        pre = acq.getDoseInitial() if acq is not None else None
        pre_attr = attr(ti, "rlnMicrographPreExposure")
        if pre_attr is not None and (pre is None or _same(pre, pre_attr)):
            pre = pre_attr
        if pre is None:
            pre = 0.0
        row = {"rlnMicrographName": "%d@%s" % (int(index or 1),
                                               relion5.relion_path(path, project_dir)),
               "rlnTomoNominalStageTiltAngle": tilt,
               "rlnMicrographPreExposure": float(pre)}
        if ctf is not None:
            scale = ctf["rlnCtfScalefactor"]
            if scale is None:
                scale = float(np.cos(np.deg2rad(tilt))) if scale_factor == "cos" else 1.0
            row.update({"rlnDefocusU": ctf["defocus_u"], "rlnDefocusV": ctf["defocus_v"],
                        "rlnDefocusAngle": ctf["defocus_angle"],
                        "rlnPhaseShift": ctf["phase_shift"],
                        "rlnCtfScalefactor": float(scale),
                        "rlnCtfBfactor": float(ctf["rlnCtfBfactor"])})
        row.update({"rlnTomoXTilt": float(attr(ti, "rlnTomoXTilt", 0.0)),
                    "rlnTomoYTilt": tilt, "rlnTomoZRot": zrot,
                    "rlnTomoXShiftAngst": sx, "rlnTomoYShiftAngst": sy})
        rows.append(row)
    return rows


def tomogram_star_row(ts: "TiltSeries", star_file: str, pixel_size: float,
                      hand: Optional[float] = None, defocus_slope: Optional[float] = None,
                      tomo_size: Optional[Sequence[int]] = None) -> dict:
    """The tomograms.star row of a tilt series.

    ``hand``/``defocus_slope``: form values; None = the imported attribute or RELION's
    default (-1 handedness as reliontomo, slope 1). ``tomo_size`` (w0, h0, d0) overrides the
    imported ``_rlnTomoSize*``; without either, -999 (RELION's "missing") is written.
    """
    acq = ts.getAcquisition()
    row = {"rlnTomoName": ts.getTsId(),
           "rlnVoltage": float(acq.getVoltage()),
           "rlnSphericalAberration": float(acq.getSphericalAberration()),
           "rlnAmplitudeContrast": float(acq.getAmplitudeContrast()),
           "rlnMicrographOriginalPixelSize": float(attr(ts, "rlnMicrographOriginalPixelSize",
                                                        pixel_size)),
           "rlnTomoHand": float(hand if hand is not None else attr(ts, "rlnTomoHand", -1.0)),
           "rlnOpticsGroupName": str(attr(ts, "rlnOpticsGroupName", "optics1")),
           "rlnTomoTiltSeriesPixelSize": float(pixel_size),
           "rlnTomoTiltSeriesStarFile": star_file,
           "rlnTomoDefocusSlope": float(defocus_slope if defocus_slope is not None
                                        else attr(ts, "rlnTomoDefocusSlope", 1.0))}
    bf = attr(ts, "rlnCtfBfactorPerElectronDose")
    if bf is not None:
        row["rlnCtfBfactorPerElectronDose"] = float(bf)
    size = tomo_size
    if size is None:
        size = tuple(attr(ts, k, MISSING) for k in ("rlnTomoSizeX", "rlnTomoSizeY",
                                                     "rlnTomoSizeZ"))
    for k, v in zip(("rlnTomoSizeX", "rlnTomoSizeY", "rlnTomoSizeZ"), size):
        row[k] = int(v)
    return row


def coordinate_orientation_from_row(row: Mapping) -> Tuple[float, float, float]:
    """Full RELION orientation ``A_subtomo . A_particle`` of a particles.star row as
    ``(rot, tilt, psi)`` degrees (identity parts where the columns are absent)."""
    A = np.eye(3)
    if all(c in row and pd.notna(row[c]) for c in relion5.SUBTOMO_COLUMNS):
        A = relion_euler_matrix(*(float(row[c]) for c in relion5.SUBTOMO_COLUMNS))
    if all(c in row and pd.notna(row[c]) for c in relion5.ANGLE_COLUMNS):
        A = A @ relion_euler_matrix(*(float(row[c]) for c in relion5.ANGLE_COLUMNS))
    return tuple(float(v) for v in relion_angles_from_matrix(A))


def _coord_matrix(coord):
    from tomo.constants import TR_RELION
    M = coord.getMatrix(convention=TR_RELION)
    return None if M is None else np.asarray(M, dtype=np.float64)


def particle_star_table(coords: Sequence["Coordinate3D"], tomo_sampling: float,
                        columns: Optional[Sequence[str]] = None,
                        optics_json: Optional[str] = None
                        ) -> Tuple[Optional[pd.DataFrame], pd.DataFrame]:
    """particles.star ``data_particles`` (and optics, when imported) from coordinates.

    Parameters
    ----------
    coords : list of tomo.objects.Coordinate3D
        clones, with their volume attached when available (``iterCoordinates``).
    tomo_sampling : float
        sampling rate (Å/px) of the coordinates' set.
    columns : list of str, optional
        particles.star columns recorded at import (``_rlnParticleColumns`` of the set).
    optics_json : str, optional
        the imported optics table (``_rlnOpticsTable`` of the set, JSON records).

    Returns
    -------
    (optics DataFrame or None, particles DataFrame)
        Columns: those recorded at import when the coordinates carry their values, else ``rlnTomoName``, centred
        Å coordinates, ``rlnTomoSubtomogramRot/Tilt/Psi`` (the coordinate orientation),
        ``rlnAngleRot/Tilt/Psi = 0``, ``rlnOpticsGroup``, ``rlnRandomSubset``.
    """
    from tomo.constants import CENTER_GRAVITY, SCIPION
    rows = []
    counter = {}
    for coord in coords:
        tsid = coord.getTomoId()
        try:
            pos = coord.getPosition(CENTER_GRAVITY) if coord.getVolume() is not None \
                else coord.getPosition(SCIPION)
        except Exception:
            pos = coord.getPosition(SCIPION)
        cen = np.asarray(pos, dtype=np.float64) * float(tomo_sampling)
        row = {"rlnTomoName": tsid}
        for c, v in zip(relion5.CENTERED_COLUMNS, cen):
            row[c] = float(v)
        M = _coord_matrix(coord)
        full = (0.0, 0.0, 0.0) if M is None else scipion_matrix_to_relion(M)[0]
        raw = coordinate_orientation_from_row(
            {c: attr(coord, c) for c in relion5.SUBTOMO_COLUMNS + relion5.ANGLE_COLUMNS})
        raw_ok = M is None or np.allclose(relion_euler_matrix(*raw), relion_euler_matrix(*full),
                                          atol=1e-6)
        if columns and raw_ok:
            for c in columns:
                if c in row or c in relion5.PIXEL_COLUMNS:
                    continue
                v = attr(coord, c)
                if v is not None:
                    row[c] = v
        else:
            # reliontomo convention for foreign coordinates: orientation in the subtomogram
            # angles, rlnAngle* from its R5 attributes (0 when absent)
            for c, v in zip(relion5.SUBTOMO_COLUMNS, full):
                row[c] = float(v)
            for c in relion5.ANGLE_COLUMNS:
                a = getattr(coord, c, None)
                row[c] = float(a.get()) if a is not None and hasattr(a, "get") and \
                    a.get() is not None else 0.0
            row["rlnOpticsGroup"] = int(attr(coord, "rlnOpticsGroup", 1))
            sub = attr(coord, "rlnRandomSubset")
            if sub is None:
                counter[tsid] = counter.get(tsid, 0) + 1
                sub = 2 - counter[tsid] % 2
            row["rlnRandomSubset"] = int(sub)
            name = attr(coord, "rlnTomoParticleName")
            if name is not None:
                row["rlnTomoParticleName"] = str(name)
        rows.append(row)
    df = pd.DataFrame(rows)
    if columns and len(df):
        order = [c for c in columns if c in df.columns and c not in relion5.PIXEL_COLUMNS]
        if all(c in columns for c in relion5.PIXEL_COLUMNS) and not all(
                c in columns for c in relion5.CENTERED_COLUMNS):
            # imported from RELION 4 pixel coordinates: written back as centred Å
            i = columns.index(relion5.PIXEL_COLUMNS[0])
            order[i:i] = relion5.CENTERED_COLUMNS
        rest = [c for c in df.columns if c not in order]
        df = df[order + rest]
    optics = None
    if optics_json:
        optics = pd.DataFrame(json.loads(optics_json))
    return optics, df


def even_tomo_size(ts: "TiltSeries", tomo: Optional["Tomogram"] = None) -> Tuple[int, int, int]:
    """Even integer ``rlnTomoSize`` (unbinned tilt-series px) from the coordinates' tomogram,
    or the tilt-image size with depth 0 when no tomogram is known (with centred coordinates
    only the parity matters; even sizes give RELION's exact centre: the half-pixel rule of
    docs/extract-subtomos.md)."""
    ps = ts.getSamplingRate()

    def even(v):
        return int(2 * round(v / 2.0))
    if tomo is not None:
        try:
            x, y, z = tomo.getDim()
            f = tomo.getSamplingRate() / ps
            return (even(x * f), even(y * f), even(z * f))
        except Exception:
            pass
    x, y, _ = ts.getDim()
    return (even(x), even(y), 0)


def write_tilt_series_project(out_dir: str, project_dir: str, ts_ids: Sequence[str],
                              ts_by_id: Mapping[str, "TiltSeries"],
                              ctf_by_id: Mapping[str, "CTFTomoSeries"],
                              tomo_by_id: Optional[Mapping[str, "Tomogram"]] = None,
                              hand: Optional[float] = None, defocus_slope: Optional[float] = None,
                              scale_factor: str = "cos") -> str:
    """Write the tilt-series half of a RELION 5 project from Scipion objects.

    Writes ``<out_dir>/tiltseries/<tsId>.star`` (one row per enabled tilt image, with its
    CTF matched by acquisition order; without CTF columns when ``ctf_by_id`` is None) and
    ``<out_dir>/tomograms.star``, with paths relative to ``project_dir`` (RELION's rule). ``hand`` / ``defocus_slope``: None keeps the imported
    value (or RELION's default); ``rlnTomoSize`` comes from the import, else from the
    tomogram in ``tomo_by_id`` (:func:`even_tomo_size`). Returns the tomograms.star path.
    """
    import os
    os.makedirs(os.path.join(out_dir, "tiltseries"), exist_ok=True)
    rows = []
    for tsId in ts_ids:
        ts = ts_by_id[tsId]
        ps = ts.getSamplingRate()
        ctfs = None if ctf_by_id is None else \
            {c.getAcquisitionOrder(): ctf_record(c) for c in ctf_by_id[tsId].iterItems()}
        table = tilt_series_star_rows(ts, ctfs, ps, project_dir, scale_factor=scale_factor)
        from .paths import safe_name
        star = os.path.join(out_dir, "tiltseries", "%s.star" % safe_name(tsId))
        relion5.write_tilt_series_star(star, tsId, table)
        size = None
        if attr(ts, "rlnTomoSizeX") is None:
            size = even_tomo_size(ts, (tomo_by_id or {}).get(tsId))
        rows.append(tomogram_star_row(ts, relion5.relion_path(star, project_dir), ps, hand=hand,
                                      defocus_slope=defocus_slope, tomo_size=size))
    path = os.path.join(out_dir, "tomograms.star")
    relion5.write_tomograms_star(path, rows)
    return path


def coordinate_particle_blocks(coords: Sequence["Coordinate3D"],
                               coord_set: "SetOfCoordinates3D") -> Dict[str, object]:
    """particles.star blocks (``general``, ``optics`` when imported, ``particles``) of the
    coordinates ``coords`` (clones) of ``coord_set``, with the columns and optics recorded
    by ImportRelion5 when present."""
    cols = getattr(coord_set, COORD_SET_COLUMNS_ATTR, None)
    optj = getattr(coord_set, COORD_SET_OPTICS_ATTR, None)
    optics, parts = particle_star_table(
        coords, coord_set.getSamplingRate(),
        columns=cols.get().split(",") if cols is not None and cols.get() else None,
        optics_json=optj.get() if optj is not None else None)
    blocks = {"general": {"rlnTomoSubTomosAre2DStacks": 0}}
    if optics is not None:
        blocks["optics"] = optics
    blocks["particles"] = parts
    return blocks
