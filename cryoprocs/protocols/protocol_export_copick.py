"""ExportCopick: oriented 3D coordinates (scores peak picking, an import, ...) or the
coordinates of subtomograms (extract subtomograms) written into a copick project as picks.

The coordinates are written to a RELION particles STAR file in the run folder (``rlnTomoName``
= tsId = copick run, ``rlnCoordinateX/Y/Z`` in voxels of the coordinates' sampling rate,
RELION angles and offsets, ``rlnLCCmax`` = score), then one ``cryoprocs copick-export`` job
writes them with copick's API (conventions: convert/copick_io.py). Nothing is written into
the project when any run, the object or an existing pick set (without "overwrite") is
wrong.
"""
import os

import pandas as pd
import pyworkflow.protocol.params as params
from pyworkflow import BETA
from pyworkflow.protocol.constants import STEPS_SERIAL

from .. import constants
from ..convert import copick_io
from ..convert.scipion import coordinate_blc, relion_orientation
from ..convert.star import write_star
from .protocol_base import NOT_READY, ProtCryoprocsBase, read_json, write_json
from .texts import link, plural


class ProtCryoprocsExportCopick(ProtCryoprocsBase):
    """Write 3D coordinates (or the coordinates of subtomograms) into a copick project as
    picks of one object, user and session, readable by copick and its tools."""
    _label = 'export to copick'
    _devStatus = BETA
    stepsExecutionMode = STEPS_SERIAL

    def _defineParams(self, form):
        form.addSection(label='Input')
        form.addParam('inputObjects', params.PointerParam,
                      pointerClass='SetOfCoordinates3D,SetOfSubTomograms', important=True,
                      label='Coordinates or subtomograms',
                      help='Oriented 3D coordinates (e.g. scores peak picking) or subtomograms '
                           '(extract subtomograms: their coordinates are written). The tsId '
                           'of each tomogram is the copick run name.')
        form.addParam('configFile', params.FileParam, important=True,
                      label='copick config (JSON)', help='The copick project to write into.')
        form.addParam('objectName', params.StringParam, default='', important=True,
                      label='Object', help='A pickable object of the copick project.')
        form.addParam('userId', params.StringParam, default='cryoprocs', label='User',
                      help='copick user id of the picks (no "_" or "/").')
        form.addParam('sessionId', params.StringParam, default='1', label='Session',
                      help='copick session id (no "_" or "/"; "0" marks picks made by a '
                           'tool).')
        form.addParam('createRuns', params.BooleanParam, default=False,
                      label='Create missing runs?',
                      help='Create copick runs for tsIds the project does not have (default: '
                           'an error).')
        form.addParam('overwrite', params.BooleanParam, default=False,
                      label='Replace existing picks?',
                      help='Replace picks of this object, user and session (default: an '
                           'error, nothing written).')

    def _insertAllSteps(self):
        self._insertFunctionStep(self.convertStep, needsGPU=False)
        self._insertFunctionStep(self.exportStep, needsGPU=False)

    # ------------------------------------------------------------------ steps
    def _coordinates(self):
        """``(coordinates, sampling rate)`` of the input (subtomograms: theirs)."""
        obj = self.inputObjects.get()
        if hasattr(obj, "getCoordinates3D") and not hasattr(obj, "getPrecedents"):
            from pyworkflow.object import Pointer
            cset = obj.getCoordinates3D()
            cset = cset.get() if isinstance(cset, Pointer) else cset
            sr = cset.getSamplingRate() if cset is not None else obj.getSamplingRate()
            tomos = {t.getTsId(): t.clone() for t in cset.getPrecedents()} \
                if cset is not None else {}
            out = []
            for s in obj.iterItems():
                c = s.getCoordinate3D().clone()
                if c.getTomoId() in tomos:          # its tomogram's origin places the voxel
                    c.setVolume(tomos[c.getTomoId()])
                out.append(c)
            return out, sr
        return [c.clone() for c in obj.iterCoordinates()], obj.getSamplingRate()

    def _starFile(self):
        return self._getExtraPath(constants.COPICK_EXPORT_STAR)

    def convertStep(self):
        coords, sr = self._coordinates()
        rows = []
        for c in coords:
            x, y, z = coordinate_blc(c)
            (rot, tilt, psi), shifts = relion_orientation(c)
            score = c.getScore() if hasattr(c, "getScore") else None
            rows.append({"rlnTomoName": str(c.getTomoId()), "rlnCoordinateX": float(x),
                         "rlnCoordinateY": float(y), "rlnCoordinateZ": float(z),
                         "rlnAngleRot": rot, "rlnAngleTilt": tilt, "rlnAnglePsi": psi,
                         "rlnOriginXAngst": float(shifts[0]),
                         "rlnOriginYAngst": float(shifts[1]),
                         "rlnOriginZAngst": float(shifts[2]),
                         "rlnLCCmax": float(score) if score is not None else 1.0})
        write_star(self._starFile(), {"particles": pd.DataFrame(rows)}, float_format="%.12g")
        write_json(self._infoFile(), {
            "sampling_rate": float(sr), "count": len(rows),
            "runs": {str(k): int(v) for k, v in pd.Series(
                [r["rlnTomoName"] for r in rows]).value_counts().items()}})

    def _infoFile(self):
        return self._getExtraPath("copick_export.json")

    def _exportDone(self, info):
        """None when the project holds this run's pick set with every point, run by run."""
        try:
            root = copick_io.open_project(self.configFile.get())
            runs = copick_io.select_runs(root, sorted(info["runs"]))
            sets = copick_io.read_picks(root, runs, [self.objectName.get()], [self.userId.get()],
                                        [self.sessionId.get()])
        except copick_io.CopickError as exc:
            return str(exc)
        got = {}
        for ps in sets:
            got[ps["run"]] = got.get(ps["run"], 0) + len(ps["locations"])
        if got != info["runs"]:
            return 'the project holds %s picks per run, %s expected' % (got, info["runs"])
        return None

    def exportStep(self):
        """``cryoprocs copick-export`` as this step's job, then the pick sets checked in the
        project (pyworkflow ignores a queue job's exit status)."""
        info = read_json(self._infoFile())
        args = ['--particles', os.path.abspath(self._starFile()),
                '--pixel-size', '%.10g' % info["sampling_rate"],
                '--config', os.path.abspath(self.configFile.get()),
                '--object', self.objectName.get(), '--user', self.userId.get(),
                '--session', self.sessionId.get()]
        if self.createRuns.get():
            args.append('--create-runs')
        if self.overwrite.get():
            args.append('--overwrite')
        self._runCryoprocs('copick-export', args, 1)
        self._requireResults('the copick export', [self.configFile.get()],
                             lambda: self._exportDone(info))
        info["written"] = True
        write_json(self._infoFile(), info)

    # ------------------------------------------------------------------ info
    def _validate(self):
        errors = []
        path = self.configFile.get()
        if not path or not os.path.isfile(path):
            return ['copick config not found: %s' % path]
        try:
            root = copick_io.open_project(path)
            names = copick_io.object_names(root)
            if self.objectName.get() not in names:
                errors.append('copick object %r does not exist in the project (objects: %s)'
                              % (self.objectName.get(), ", ".join(names)))
            for label, v in (("user", self.userId.get()), ("session", self.sessionId.get())):
                if not v or "_" in v or "/" in v:
                    errors.append('copick %s %r: give a non-empty id without "_" or "/"'
                                  % (label, v))
            if not errors:
                errors += self._runErrors(root)
        except copick_io.CopickError as exc:
            errors.append(str(exc))
        return errors

    def _tsIds(self):
        obj = self.inputObjects.get()
        if obj is None:
            return []
        key = "_coordinate._tomoId" if obj.getClassName() == "SetOfSubTomograms" else \
            "_tomoId"
        try:
            return sorted(str(v) for v in obj.getUniqueValues(key))
        except Exception:                         # older sets: iterate
            coords, _ = self._coordinates()
            return sorted({str(c.getTomoId()) for c in coords})

    def _runErrors(self, root):
        """Runs missing from the project (unless created) and existing pick sets of this
        object/user/session (unless replaced): what the export job would refuse."""
        runs = {r.name: r for r in root.runs}
        ids = self._tsIds()
        missing = [t for t in ids if t not in runs]
        errors = []
        if missing and not self.createRuns.get():
            errors.append('copick runs %s do not exist in the project (runs: %s); choose '
                          '"Create missing runs"' % (", ".join(missing[:10]),
                                                     ", ".join(sorted(runs)[:10])))
        if not self.overwrite.get():
            taken = [t for t in ids if t in runs and runs[t].get_picks(
                object_name=self.objectName.get(), user_id=self.userId.get(),
                session_id=self.sessionId.get())]
            if taken:
                errors.append('runs %s already have picks of %s by %s in session %s; choose '
                              'another session or "Replace existing picks"'
                              % (", ".join(taken[:10]), self.objectName.get(),
                                 self.userId.get(), self.sessionId.get()))
        return errors

    def _summary(self):
        info = read_json(self._infoFile())
        if info is None:
            return [NOT_READY]
        if not info.get("written"):
            return ['Coordinates converted; not written yet.']
        return ['%s of %s (user %s, session %s) written into %s: %s.'
                % (plural(info["count"], 'pick'), self.objectName.get(), self.userId.get(),
                   self.sessionId.get(), link(self.configFile.get()),
                   ", ".join("%s (%d)" % kv for kv in sorted(info["runs"].items())))]

    def _methods(self):
        return ['Coordinates were written into a copick project [copick] with cryoprocs '
                '[cryoprocs2026].']

    def _citations(self):
        return ['copick']
