"""copick projects (https://github.com/copick/copick, copick 1.2): reading tomograms, picks and
segmentations, and writing picks, through copick's own API (imported lazily; the optional
``[copick]`` extra).

Data model (copick 1.2, filesystem backend): a JSON config (``pickable_objects``,
``overlay_root``, optional ``static_root``) and per run ``ExperimentRuns/<run>/``
``VoxelSpacing<vs>/<tomo_type>.zarr`` (OME-Zarr tomograms, level 0 at the voxel spacing),
``Picks/<user>_<session>_<object>.json`` and
``Segmentations/<vs>_<user>_<session>_<name>[-multilabel].zarr``. The portal backend
(``config_type: cryoet_data_portal``) is read through copick in the same way.

Conventions (stated by copick: ``CopickPoint.transformation`` is "the transformation
necessary to transform coordinates from the object space to the tomogram space"; copick's
RELION converter, ``copick.util.relion`` in later releases, uses the same):

* a pick's **position** in Å is ``location + transformation[:3, 3]``, measured from the
  centre of the tomogram's first voxel: 0-based voxel index ``i`` is at ``i * voxel_size``
  (copick writes the tomogram centre as ``shape / 2 * voxel_size``). Here: voxel
  ``(x, y, z) = position / voxel_size``, x = the MRC column, which is Scipion's
  bottom-left-corner convention (``convert.scipion.set_coordinate``).
* the **rotation** ``R = transformation[:3, :3]`` maps particle (object) coordinates to
  tomogram coordinates: a particle axis ``u`` points along ``R u`` in the tomogram. It
  equals RELION's Euler matrix ``A(rot, tilt, psi)`` (src/euler.cpp, i.e.
  ``Rotation.from_euler('ZYZ', [rot, tilt, psi]).inv()``), so RELION angles are
  ``relion_angles_from_matrix(R)`` and back ``R = relion_euler_matrix(rot, tilt, psi)``;
  e.g. R = Rz(+90°) (x axis -> y axis) is rot + psi = -90°, tilt = 0.
* exported picks carry ``transformation[:3, 3] = 0`` and the whole position in
  ``location``.
"""
from __future__ import annotations

import json
import os
from types import ModuleType
from typing import TYPE_CHECKING, Iterable, List, Sequence, Tuple

import numpy as np
from numpy.typing import ArrayLike

if TYPE_CHECKING:
    import zarr
    from copick.models import CopickPicks, CopickRoot, CopickRun


    from .outputs import _Claim
    from .paths import PathLike

from .euler import relion_angles_from_matrix, relion_euler_matrix

__all__ = ["CopickError", "open_project", "require_copick", "picks_positions_voxels",
           "copick_rotations_to_relion", "relion_to_copick_transforms", "select_runs",
           "tomogram_entries", "read_picks", "segmentation_entries", "write_picks",
           "zarr_location", "object_names", "parse_list", "store_picks", "picks_claim"]


class CopickError(ValueError):
    """A copick project, run, object, tomogram or pick set that does not exist or cannot be
    read or written (the message names the offending value and what exists)."""


def require_copick() -> ModuleType:
    """The ``copick`` module, or a clear error when it is not installed.

    copick 1.2 calls ``logging.basicConfig(force=True)`` when imported, which closes and
    removes the root logger's handlers (a Scipion run's log files, whose streams are its
    ``sys.stdout``/``sys.stderr``). They are taken off the root logger during the import and
    put back afterwards, and copick's own handler is dropped.
    """
    import logging
    import sys
    if "copick" in sys.modules:
        return sys.modules["copick"]
    root = logging.getLogger()
    handlers, level = list(root.handlers), root.level
    for h in handlers:
        root.removeHandler(h)
    try:
        import copick
        return copick
    except ImportError as exc:
        raise CopickError("copick is not installed (%s); install the extra: pip install "
                          "'scipion-em-cryoprocs[copick]'" % exc) from None
    finally:
        for h in list(root.handlers):
            root.removeHandler(h)
        for h in handlers:
            root.addHandler(h)
        root.setLevel(level)


def parse_list(text: str | Iterable[object] | None) -> List[str]:
    """``"a, b c"`` -> ``["a", "b", "c"]``; a list or tuple -> its items as strings;
    empty/None -> ``[]``."""
    if not text:
        return []
    if isinstance(text, (list, tuple)):
        return [str(t) for t in text if str(t)]
    return [t for t in str(text).replace(",", " ").split() if t]


# ----------------------------------------------------------------------------- conventions
def picks_positions_voxels(locations: np.ndarray, transforms: np.ndarray,
                           voxel_size: float) -> np.ndarray:
    """0-based voxel positions ``(N, 3)`` (x, y, z) of copick points: ``(location +
    transformation[:3, 3]) / voxel_size``.

    Parameters
    ----------
    locations : (N, 3) float, Å
    transforms : (N, 4, 4) float
    voxel_size : float, Å

    Raises
    ------
    CopickError
        a transform with a perspective row other than ``[0, 0, 0, 1]``.
    """
    loc = np.asarray(locations, dtype=np.float64).reshape(-1, 3)
    T = np.asarray(transforms, dtype=np.float64).reshape(-1, 4, 4)
    if T.shape[0] and not np.allclose(T[:, 3, :], [0.0, 0.0, 0.0, 1.0]):
        bad = np.flatnonzero(~np.all(np.isclose(T[:, 3, :], [0, 0, 0, 1]), axis=1))
        raise CopickError("copick transforms %s have a last row other than [0, 0, 0, 1]"
                          % bad[:10].tolist())
    return (loc + T[:, :3, 3]) / float(voxel_size)


def copick_rotations_to_relion(transforms: np.ndarray) -> Tuple[np.ndarray, ...]:
    """RELION ``(rot, tilt, psi)`` (three ``(N,)`` arrays, degrees) of copick transforms
    (``A(rot, tilt, psi) = transformation[:3, :3]``; see the module docstring)."""
    T = np.asarray(transforms, dtype=np.float64).reshape(-1, 4, 4)
    R = T[:, :3, :3]
    det = np.linalg.det(R) if len(R) else np.ones(0)
    if len(R) and (not np.allclose(det, 1.0, atol=1e-3) or not np.allclose(
            np.einsum("nij,nkj->nik", R, R), np.eye(3), atol=1e-3)):
        bad = np.flatnonzero(~np.isclose(det, 1.0, atol=1e-3))
        raise CopickError("copick transforms %s are not rotations (det %s)"
                          % (bad[:10].tolist(), np.round(det[bad[:10]], 4).tolist()))
    rot, tilt, psi = relion_angles_from_matrix(R)
    return rot, tilt, psi


def relion_to_copick_transforms(rot: ArrayLike, tilt: ArrayLike,
                                psi: ArrayLike) -> np.ndarray:
    """``(N, 4, 4)`` copick transforms of RELION angles (degrees): rotation
    ``A(rot, tilt, psi)``, no translation."""
    A = relion_euler_matrix(rot, tilt, psi).reshape(-1, 3, 3)
    T = np.zeros((A.shape[0], 4, 4))
    T[:, :3, :3] = A
    T[:, 3, 3] = 1.0
    return T


# ----------------------------------------------------------------------------- reading
def open_project(config: PathLike) -> CopickRoot:
    """The copick root of a project config (JSON file).

    Raises
    ------
    CopickError
        copick missing, the file missing or not a copick config.
    """
    copick = require_copick()
    if not os.path.isfile(str(config)):
        raise CopickError("copick config %s not found" % config)
    try:
        return copick.from_file(str(config))
    except Exception as exc:
        raise CopickError("%s is not a readable copick config: %s: %s"
                          % (config, type(exc).__name__, str(exc).strip()[:300])) from None


def object_names(root: CopickRoot) -> List[str]:
    """Names of the project's pickable objects."""
    return [o.name for o in root.pickable_objects]


def select_runs(root: CopickRoot,
                names: str | Iterable[str] | None = None) -> List[CopickRun]:
    """The project's runs, or those named (in the given order).

    Raises
    ------
    CopickError
        a named run that does not exist; a project without runs.
    """
    runs = {r.name: r for r in root.runs}
    if not runs:
        raise CopickError("the copick project has no runs")
    names = parse_list(names)
    if not names:
        return [runs[n] for n in sorted(runs)]
    missing = [n for n in names if n not in runs]
    if missing:
        raise CopickError("copick run(s) %s do not exist (runs: %s)"
                          % (", ".join(missing), ", ".join(sorted(runs)[:20])))
    return [runs[n] for n in names]


def zarr_location(store: zarr.storage.FSStore) -> str:
    """A location string for :func:`cryoprocs.convert.images.open_image` of a copick zarr
    store (an fsspec ``FSStore``): a local path, or a URL with its protocol."""
    fs, path = store.fs, store.path
    protocol = fs.protocol if isinstance(fs.protocol, str) else fs.protocol[0]
    if protocol in ("file", "local"):
        return os.path.abspath(path)
    return fs.unstrip_protocol(path)


def _voxel_spacing(run, voxel_size):
    for vs in run.voxel_spacings:
        if abs(float(vs.voxel_size) - float(voxel_size)) <= 1e-3:
            return vs
    return None


def tomogram_entries(root: CopickRoot, runs: Iterable[CopickRun], voxel_size: float,
                     tomo_type: str) -> List[Tuple[str, str]]:
    """``[(run name, location)]`` of the tomograms of type ``tomo_type`` at ``voxel_size``
    (Å) in ``runs``.

    Raises
    ------
    CopickError
        no run has such a tomogram (the message lists what exists).
    """
    out = []
    for run in runs:
        vs = _voxel_spacing(run, voxel_size)
        tomo = vs.get_tomogram(tomo_type) if vs is not None else None
        if tomo is not None:
            out.append((run.name, zarr_location(tomo.zarr())))
    if not out:
        avail = sorted({"%g A: %s" % (vs.voxel_size, t.tomo_type) for run in runs
                        for vs in run.voxel_spacings for t in vs.tomograms})
        raise CopickError("no tomogram of type %r at voxel spacing %g A in runs %s "
                          "(tomograms: %s)" % (tomo_type, float(voxel_size),
                                               ", ".join(r.name for r in runs),
                                               "; ".join(avail) or "none"))
    return out


def _check_objects(root, objects):
    names = object_names(root)
    missing = [o for o in parse_list(objects) if o not in names]
    if missing:
        raise CopickError("copick object(s) %s do not exist in the project (objects: %s)"
                          % (", ".join(missing), ", ".join(names) or "none"))


def read_picks(root: CopickRoot, runs: Iterable[CopickRun], objects: str | Iterable[str],
               users: str | Iterable[str] | None = None,
               sessions: str | Iterable[str] | None = None) -> List[dict]:
    """The pick sets of ``objects`` (names; all required to exist), filtered by users and
    sessions (empty: all), as dicts with ``run``, ``object``, ``user``, ``session``,
    ``locations`` (N, 3) Å, ``transforms`` (N, 4, 4), ``scores`` (N,), ``instance_ids``.

    Raises
    ------
    CopickError
        an object that does not exist; no pick set matching.
    """
    _check_objects(root, objects)
    objects, users, sessions = parse_list(objects), parse_list(users), parse_list(sessions)
    out = []
    for run in runs:
        for p in run.get_picks(object_name=objects or None, user_id=users or None,
                               session_id=sessions or None):
            pts = p.points or []
            loc = np.array([[q.location.x, q.location.y, q.location.z] for q in pts],
                           dtype=np.float64).reshape(-1, 3)
            T = np.array([q.transformation for q in pts], dtype=np.float64).reshape(-1, 4, 4)
            out.append({"run": run.name, "object": p.pickable_object_name, "user": p.user_id,
                        "session": p.session_id, "locations": loc, "transforms": T,
                        "scores": np.array([q.score if q.score is not None else 1.0
                                            for q in pts], dtype=np.float64),
                        "instance_ids": np.array([q.instance_id or 0 for q in pts],
                                                 dtype=np.int64),
                        "trust_orientation": bool(p.trust_orientation)})
    if not out:
        avail = sorted({"%s:%s/%s" % (p.pickable_object_name, p.user_id, p.session_id)
                        for run in runs for p in run.picks})
        raise CopickError("no picks of %s (users: %s, sessions: %s) in runs %s (picks: %s)"
                          % (", ".join(objects) or "any object", ", ".join(users) or "any",
                             ", ".join(sessions) or "any", ", ".join(r.name for r in runs),
                             ", ".join(avail) or "none"))
    return out


def segmentation_entries(root: CopickRoot, runs: Iterable[CopickRun], voxel_size: float,
                         names: str | Iterable[str] | None = None,
                         users: str | Iterable[str] | None = None,
                         sessions: str | Iterable[str] | None = None) -> List[dict]:
    """``[dict(run, name, user, session, multilabel, location)]`` of the segmentations at
    ``voxel_size`` matching the filters (empty: all).

    Raises
    ------
    CopickError
        a name that is not an object of the project (single-label) and matches nothing.
    """
    names, users, sessions = parse_list(names), parse_list(users), parse_list(sessions)
    out = []
    for run in runs:
        for seg in run.segmentations:
            if abs(float(seg.voxel_size) - float(voxel_size)) > 1e-3:
                continue
            if names and seg.name not in names or users and seg.user_id not in users or \
                    sessions and seg.session_id not in sessions:
                continue
            out.append({"run": run.name, "name": seg.name, "user": seg.user_id,
                        "session": seg.session_id, "multilabel": bool(seg.is_multilabel),
                        "location": zarr_location(seg.zarr())})
    if not out:
        avail = sorted({"%s:%s/%s@%g" % (s.name, s.user_id, s.session_id, s.voxel_size)
                        for run in runs for s in run.segmentations})
        raise CopickError("no segmentation %s(users: %s, sessions: %s) at voxel spacing %g A "
                          "(segmentations: %s)" % ("named %s " % ", ".join(names) if names
                                                  else "", ", ".join(users) or "any",
                                                  ", ".join(sessions) or "any",
                                                  float(voxel_size), ", ".join(avail) or "none"))
    return out


# ----------------------------------------------------------------------------- writing
def write_picks(root: CopickRoot, sets: List[dict], object_name: str, user_id: str,
                session_id: str, overwrite: bool = False, create_runs: bool = False,
                inputs: Sequence[str] = ()) -> List[Tuple[str, int, str | None]]:
    """Write pick sets with copick's API.

    Parameters
    ----------
    sets : list of dict
        ``run`` (run name), ``positions`` (N, 3) Å (voxel index x voxel size), ``rot``,
        ``tilt``, ``psi`` (N,) RELION angles in degrees (or ``transforms`` (N, 4, 4)),
        optional ``scores`` (N,).
    object_name, user_id, session_id : str
        the pick set's identity (``session_id`` "0" marks tool picks in copick).
    overwrite : bool
        replace the points of existing pick sets of this identity; otherwise they are an
        error.
    create_runs : bool
        create runs missing from the project (default: an error).
    inputs : sequence of str
        files a pick file must not replace (the command's inputs).

    Everything is checked before the first set is written: an unknown object, a missing run,
    an existing pick set without ``overwrite``, an empty user or session, non-finite values,
    a pick file that is one of ``inputs``. Pick files of local projects are written under a
    temporary name and renamed when complete (:func:`store_picks`).

    Returns
    -------
    list of (run, count, path or None)

    Raises
    ------
    CopickError
    """
    require_copick()
    from copick.models import CopickLocation, CopickPoint
    _check_objects(root, [object_name])
    if not str(user_id or "").strip() or not str(session_id or "").strip():
        raise CopickError("copick picks need a user and a session (got user %r, session %r)"
                          % (user_id, session_id))
    for bad in ("/", "_"):
        if bad in str(user_id) or bad in str(session_id):
            raise CopickError("copick user and session must not contain %r (copick file names "
                              "are <user>_<session>_<object>.json): user %r, session %r"
                              % (bad, user_id, session_id))
    runs = {r.name: r for r in root.runs}
    plan = []
    for s in sets:
        name = str(s["run"])
        pos = np.asarray(s["positions"], dtype=np.float64).reshape(-1, 3)
        T = np.asarray(s["transforms"], dtype=np.float64).reshape(-1, 4, 4) \
            if s.get("transforms") is not None else \
            relion_to_copick_transforms(s["rot"], s["tilt"], s["psi"])
        scores = np.asarray(s.get("scores") if s.get("scores") is not None
                            else np.ones(len(pos)), dtype=np.float64)
        if len(T) != len(pos) or len(scores) != len(pos):
            raise CopickError("run %s: %d positions, %d transforms, %d scores"
                              % (name, len(pos), len(T), len(scores)))
        if not (np.isfinite(pos).all() and np.isfinite(T).all() and np.isfinite(scores).all()):
            raise CopickError("run %s: non-finite positions, angles or scores" % name)
        run = runs.get(name)
        if run is None and not create_runs:
            raise CopickError("copick run %s does not exist (runs: %s); create it first or ask "
                              "for missing runs to be created" % (name, ", ".join(sorted(runs)
                                                                                  [:20])))
        existing = run.get_picks(object_name=object_name, user_id=user_id,
                                 session_id=session_id) if run is not None else []
        if existing and not overwrite:
            raise CopickError("run %s already has picks of %s by %s in session %s; pass "
                              "overwrite to replace them" % (name, object_name, user_id,
                                                             session_id))
        if run is not None:
            _check_not_an_input(run, object_name, user_id, session_id, inputs)
        plan.append((name, run, existing, pos, T, scores))
    written = []
    for name, run, existing, pos, T, scores in plan:
        if run is None:
            run = root.new_run(name)
        picks = existing[0] if existing else run.new_picks(object_name, session_id, user_id)
        picks.points = [CopickPoint(location=CopickLocation(x=float(p[0]), y=float(p[1]),
                                                           z=float(p[2])),
                                    transformation_=t.tolist(), score=float(sc))
                        for p, t, sc in zip(pos, T, scores)]
        picks.meta.trust_orientation = True
        store_picks(picks)
        written.append((name, len(pos), getattr(picks, "path", None)))
    return written


def _local_picks_path(run, object_name, user_id, session_id):
    """The pick file of this identity in a local project (copick's name), else None."""
    from fsspec.implementations.local import LocalFileSystem
    if not isinstance(getattr(run, "fs_overlay", None), LocalFileSystem):
        return None
    return "%s/Picks/%s_%s_%s.json" % (run.overlay_path, user_id, session_id, object_name)


def _check_not_an_input(run, object_name, user_id, session_id, inputs):
    from .paths import same_file
    path = _local_picks_path(run, object_name, user_id, session_id)
    for p in inputs or ():
        if path and p and os.path.exists(path) and same_file(path, p):
            raise CopickError("the picks of %s by %s, session %s, in run %s are the input %s: "
                              "outputs never replace inputs" % (object_name, user_id,
                                                                 session_id, run.name, p))


def store_picks(picks: CopickPicks) -> None:
    """copick's ``picks.store()``; for a local project the same JSON (``picks.meta``, as
    copick 1.2's file system backend writes it) under a unique temporary name renamed when
    complete, so an interrupted export never leaves a truncated pick file."""
    from fsspec.implementations.local import LocalFileSystem
    if not isinstance(getattr(picks, "fs", None), LocalFileSystem):
        picks.store()
        return
    from .mrc import atomic_output
    with atomic_output(picks.path) as tmp:
        with open(tmp, "w") as fh:
            json.dump(picks.meta.dict(), fh, indent=4)


def picks_claim(config: PathLike, object_name: str, user_id: str, session_id: str) -> _Claim:

    """Claim the pick set ``object_name`` / ``user_id`` / ``session_id`` of the copick project
    ``config`` for this run (:func:`cryoprocs.convert.outputs.claim`, a lock next to the
    config file): a second export of the same pick set fails at once naming this one's
    process id."""
    from . import outputs
    from .paths import safe_name
    config = os.path.abspath(str(config))
    key = os.path.join(os.path.dirname(config), "%s.%s_%s_%s.picks" % (
        os.path.basename(config), safe_name(user_id), safe_name(session_id),
        safe_name(object_name)))
    return outputs.claim(key, "copick picks", shown="%s by %s, session %s, of %s"
                         % (object_name, user_id, session_id, config))
