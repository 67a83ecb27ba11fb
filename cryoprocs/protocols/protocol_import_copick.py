"""ImportCopick: a copick project (tomograms, picks, segmentations) into Scipion.

The tomograms of one voxel spacing and reconstruction type become a ``SetOfTomograms``
whose files are the OME-Zarr stores themselves (read lazily by every cryoprocs protocol;
Scipion gets their dimensions from the reader of convert/scipion_images.py), or MRC copies
when asked (one ``cryoprocs convert`` job per tomogram, for programs of other plugins). The
picks of the chosen objects, users and sessions become a ``SetOfCoordinates3D`` with
orientations, and segmentations a ``SetOfTomoMasks``. Conventions: convert/copick_io.py.
"""
import json
import logging
import os

import pyworkflow.protocol.params as params
from pyworkflow import BETA
from pyworkflow.object import Integer, String
from tomo.objects import SetOfCoordinates3D, SetOfTomograms, SetOfTomoMasks

from .. import constants
from ..convert import copick_io
from ..convert.mrc import is_complete_mrc
from ..convert.scipion import set_coordinate, set_relion_orientation
from ..convert.scipion_images import register_zarr_reader
from .protocol_base import NOT_READY, ProtCryoprocsBase, safe_name
from .texts import link, plural

logger = logging.getLogger(__name__)


class ProtCryoprocsImportCopick(ProtCryoprocsBase):
    """Import a copick project: its tomograms of one voxel spacing and type (kept as
    OME-Zarr, not copied unless asked), the picks of chosen objects/users/sessions as
    oriented 3D coordinates, and segmentations as tomo masks."""
    _label = 'import copick project'
    _devStatus = BETA
    _possibleOutputs = {constants.OUTPUT_TOMOGRAMS: SetOfTomograms,
                        constants.OUTPUT_COORDINATES: SetOfCoordinates3D,
                        constants.OUTPUT_TOMO_MASKS: SetOfTomoMasks}

    def __init__(self, **kwargs):
        super().__init__(**kwargs)
        self.importReport = String()

    # ================================================================= form
    def _defineParams(self, form):
        form.addSection(label='Input')
        form.addParam('configFile', params.FileParam, important=True,
                      label='copick config (JSON)',
                      help='The copick project configuration (filesystem backend, or the '
                           'CryoET Data Portal backend read through copick).')
        form.addParam('runNames', params.StringParam, default='',
                      label='Runs',
                      help='Run names to import, separated by commas or spaces; empty: all.')
        form.addParam('voxelSpacing', params.FloatParam, default=10.0,
                      label='Voxel spacing (Å)',
                      help='Voxel spacing of the tomograms (copick VoxelSpacing); picks are '
                           'given in voxels of these tomograms.')
        form.addParam('tomoType', params.StringParam, default='wbp',
                      label='Tomogram type',
                      help='Reconstruction type (copick tomo_type), e.g. wbp, denoised.')
        form.addParam('copyToMrc', params.BooleanParam, default=False,
                      label='Copy to MRC?',
                      help='No: the tomograms (and masks) point at the OME-Zarr stores, read '
                           'lazily chunk by chunk by every cryoprocs protocol. Yes: MRC '
                           'copies in the run folder (extra/), for programs of other plugins '
                           '(IMOD, Xmipp, RELION), which read MRC only.')
        form.addSection(label='Picks')
        form.addParam('objects', params.StringParam, default='',
                      label='Objects',
                      help='Pickable object names whose picks are imported as coordinates '
                           '(comma separated); empty: no coordinates.')
        form.addParam('users', params.StringParam, default='', label='Users',
                      help='User ids of the picks (comma separated); empty: all.')
        form.addParam('sessions', params.StringParam, default='', label='Sessions',
                      help='Session ids of the picks (comma separated); empty: all.')
        form.addParam('boxSize', params.IntParam, default=-1, label='Box size (px)',
                      help='Box size of the coordinates in tomogram voxels; -1: the first '
                           'object\'s diameter (2 x radius / voxel spacing, even), or 32.')
        form.addSection(label='Segmentations')
        form.addParam('importMasks', params.BooleanParam, default=False,
                      label='Import segmentations?',
                      help='Segmentations at the voxel spacing as tomo masks (label maps).')
        form.addParam('maskNames', params.StringParam, default='', label='Names',
                      condition='importMasks',
                      help='Segmentation names (objects or multilabel names); empty: all.')
        form.addParam('maskUsers', params.StringParam, default='', label='Users',
                      condition='importMasks', help='User ids; empty: all.')
        form.addParam('maskSessions', params.StringParam, default='', label='Sessions',
                      condition='importMasks', help='Session ids; empty: all.')
        self._defineNonFiniteParam(form, condition='copyToMrc')
        form.addParallelSection(threads=2, mpi=0)

    # ================================================================= steps
    def _insertAllSteps(self):
        plan = self._plan()
        ids = []
        if self.copyToMrc.get():
            for kind, key, loc in self._copies(plan):
                ids.append(self._insertFunctionStep(self.copyStep, kind, key, loc,
                                                    prerequisites=[], needsGPU=False))
        self._insertFunctionStep(self.createOutputStep, prerequisites=ids, needsGPU=False)

    def _root(self):
        return copick_io.open_project(self.configFile.get())

    def _plan(self):
        """What to import: tomograms ``[(run, location)]`` and masks (dicts)."""
        root = self._root()
        runs = copick_io.select_runs(root, self.runNames.get())
        tomos = copick_io.tomogram_entries(root, runs, self.voxelSpacing.get(), self.tomoType.get())
        masks = copick_io.segmentation_entries(root, runs, self.voxelSpacing.get(),
                                               self.maskNames.get(), self.maskUsers.get(),
                                               self.maskSessions.get()) \
            if self.importMasks.get() else []
        return {"tomograms": tomos, "masks": masks}

    def _copies(self, plan):
        out = [("tomogram", run, loc) for run, loc in plan["tomograms"]]
        out += [("mask", self._maskKey(m), m["location"]) for m in plan["masks"]]
        return out

    @staticmethod
    def _maskKey(m):
        return "%s_%s_%s_%s" % (m["run"], m["user"], m["session"], m["name"])

    def _copyFile(self, kind, key):
        return self._getExtraPath("tomograms" if kind == "tomogram" else "masks",
                                  safe_name(key) + ".mrc")

    def copyStep(self, kind, key, location):
        """One ``cryoprocs convert`` job: the OME-Zarr level 0 to an MRC file (skipped when
        a complete copy exists: resume), then checked."""
        out = self._copyFile(kind, key)
        if is_complete_mrc(out):
            return
        self._runCryoprocs('convert', [location, os.path.abspath(out), '--overwrite']
                           + self._nonFiniteArgs(), 1)
        self._requireResults('%s %s' % (kind, key), [out],
                             lambda: None if is_complete_mrc(out) else
                             '%s is not a complete MRC file' % out)

    def createOutputStep(self):
        from tomo.objects import Tomogram, TomoMask
        register_zarr_reader()
        root = self._root()
        plan = self._plan()
        vs = float(self.voxelSpacing.get())
        copy = self.copyToMrc.get()
        report = {"config": self.configFile.get(), "voxel_spacing": vs,
                  "tomo_type": self.tomoType.get(), "copied": bool(copy), "tomograms": [],
                  "picks": [], "masks": [], "skipped_picks": {}}
        tomoSet = SetOfTomograms.create(self._getPath(), template='tomograms%s.sqlite')
        tomoSet.setSamplingRate(vs)
        tomoObjs = {}
        for run, loc in plan["tomograms"]:
            path = self._copyFile("tomogram", run) if copy else loc
            tomo = Tomogram(location=path)
            tomo.setTsId(run)
            tomo.setSamplingRate(vs)
            tomo.setOrigin()
            tomo._copickLocation = String(loc)
            tomoSet.append(tomo)
            tomoObjs[run] = tomo.clone()
            report["tomograms"].append({"tsId": run, "file": path})
        tomoSet.write()
        self._defineOutputs(**{constants.OUTPUT_TOMOGRAMS: tomoSet})
        if copick_io.parse_list(self.objects.get()):
            self._importPicks(root, tomoSet, tomoObjs, report)
        if plan["masks"]:
            maskSet = SetOfTomoMasks.create(self._getPath(), template='tomomasks%s.sqlite')
            maskSet.setSamplingRate(vs)
            for m in plan["masks"]:
                if m["run"] not in tomoObjs:
                    continue
                path = self._copyFile("mask", self._maskKey(m)) if copy else m["location"]
                mask = TomoMask(location=path)
                mask.setTsId(m["run"])
                mask.setSamplingRate(vs)
                mask.setVolName(tomoObjs[m["run"]].getFileName())
                mask._copickName = String(m["name"])
                mask._copickUser = String(m["user"])
                mask._copickSession = String(m["session"])
                maskSet.append(mask)
                report["masks"].append({k: m[k] for k in ("run", "name", "user", "session",
                                                          "multilabel")})
            maskSet.write()
            self._defineOutputs(**{constants.OUTPUT_TOMO_MASKS: maskSet})
            self._defineSourceRelation(tomoSet, maskSet)
        self.importReport.set(json.dumps(report))
        self._store(self.importReport)

    def _boxSize(self, root):
        box = int(self.boxSize.get())
        if box > 0:
            return box
        for name in copick_io.parse_list(self.objects.get()):
            obj = root.get_object(name)
            r = getattr(obj, "radius", None) if obj is not None else None
            if r:
                return max(8, 2 * int(round(float(r) / float(self.voxelSpacing.get()))))
        return 32

    def _importPicks(self, root, tomoSet, tomoObjs, report):
        from tomo.objects import Coordinate3D
        vs = float(self.voxelSpacing.get())
        runs = copick_io.select_runs(root, self.runNames.get())
        sets = copick_io.read_picks(root, runs, self.objects.get(), self.users.get(),
                                    self.sessions.get())
        objects = copick_io.parse_list(self.objects.get())
        coordSet = SetOfCoordinates3D.create(self._getPath(), template='coordinates%s.sqlite')
        coordSet.setPrecedents(tomoSet)
        coordSet.setSamplingRate(vs)
        coordSet.setBoxSize(self._boxSize(root))
        for s in sets:
            if s["run"] not in tomoObjs:
                report["skipped_picks"][s["run"]] = \
                    report["skipped_picks"].get(s["run"], 0) + len(s["locations"])
                continue
            vox = copick_io.picks_positions_voxels(s["locations"], s["transforms"], vs)
            rot, tilt, psi = copick_io.copick_rotations_to_relion(s["transforms"])
            group = objects.index(s["object"]) + 1 if s["object"] in objects else 0
            for k in range(len(vox)):
                c = Coordinate3D()
                set_coordinate(c, tomoObjs[s["run"]], *vox[k])
                set_relion_orientation(c, rot[k], tilt[k], psi[k])
                c.setScore(float(s["scores"][k]))
                c.setGroupId(group)
                c._copickObject = String(s["object"])
                c._copickUser = String(s["user"])
                c._copickSession = String(s["session"])
                c._copickInstanceId = Integer(int(s["instance_ids"][k]))
                coordSet.append(c)
            report["picks"].append({"run": s["run"], "object": s["object"], "user": s["user"],
                                    "session": s["session"], "count": int(len(vox)),
                                    "trust_orientation": s["trust_orientation"]})
        coordSet.write()
        self._defineOutputs(**{constants.OUTPUT_COORDINATES: coordSet})
        self._defineSourceRelation(tomoSet, coordSet)

    # ================================================================= info
    def _validate(self):
        path = self.configFile.get()
        if not path or not os.path.isfile(path):
            return ['copick config not found: %s' % path]
        if not self.voxelSpacing.get() or self.voxelSpacing.get() <= 0:
            return ['voxel spacing must be > 0 A, got %s' % self.voxelSpacing.get()]
        try:
            root = self._root()
            runs = copick_io.select_runs(root, self.runNames.get())
            copick_io.tomogram_entries(root, runs, self.voxelSpacing.get(), self.tomoType.get())
            if copick_io.parse_list(self.objects.get()):
                copick_io.read_picks(root, runs, self.objects.get(), self.users.get(),
                                     self.sessions.get())
            if self.importMasks.get():
                copick_io.segmentation_entries(root, runs, self.voxelSpacing.get(),
                                               self.maskNames.get(), self.maskUsers.get(),
                                               self.maskSessions.get())
        except copick_io.CopickError as exc:
            return [str(exc)]
        return []

    def _summary(self):
        if not self.importReport.get():
            return [NOT_READY]
        rep = json.loads(self.importReport.get())
        lines = ['%s (%s, %.3f Å/voxel) from %s, %s.'
                 % (plural(len(rep["tomograms"]), 'tomogram'), rep["tomo_type"],
                    rep["voxel_spacing"], link(rep["config"]), "copied to MRC" if rep["copied"]
                    else "read in place (OME-Zarr)")]
        for p in rep["picks"]:
            lines.append('  %s: %s of %s by %s, session %s%s'
                         % (p["run"], plural(p["count"], 'pick'), p["object"], p["user"], p["session"],
                            "" if p["trust_orientation"] else " (orientations not trusted)"))
        if rep["skipped_picks"]:
            lines.append('Picks skipped (runs without the tomogram): %s' % ", ".join(
                "%s (%d)" % kv for kv in sorted(rep["skipped_picks"].items())))
        for m in rep["masks"]:
            lines.append('  mask %s: %s by %s, session %s%s' % (
                m["run"], m["name"], m["user"], m["session"],
                " (multilabel)" if m["multilabel"] else ""))
        return lines

    def _methods(self):
        if not self.importReport.get():
            return []
        return ['A copick project [copick] was imported into Scipion with cryoprocs '
                '[cryoprocs2026].']

    def _citations(self):
        return ['copick']
