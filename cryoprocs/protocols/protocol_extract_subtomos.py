"""ExtractSubtomos: RELION 5 pseudo-subtomograms (2D tilt stacks) from tilt series, with
RELION 5.0.1's numbers, or plain 3D sub-volumes from tomograms.

2D mode: the Scipion inputs are written as a RELION 5 project into extra/
(convert/relion5_scipion.py; paths relative to the Scipion project directory), then each tilt
series is extracted by ``cryoprocs extract --tilt-series`` (pipelines/extract.py; one
parallel step per tilt series, resumable), which writes
extra/Subtomograms/<tsId>/<k>_stack2d.mrcs, and the registration writes extra/particles.star
and extra/optimisation_set.star: RELION 5 can refine from them directly (run it from the
Scipion project directory); with scipion-em-reliontomo installed, the same stacks are also
registered as its RelionSetOfPseudoSubtomograms (convert/reliontomo_scipion.py), the input
of its RELION 5 refinement protocols. 3D mode: boxes cut from the tomograms by the hidden
``cryoprocs extract-subvolumes`` (one step per tomogram).
"""
import json
import logging
import os

import numpy as np
import pyworkflow.protocol.params as params
from pyworkflow import BETA
from pyworkflow.object import Pointer, String
from pyworkflow.protocol.constants import LEVEL_ADVANCED
from tomo.objects import SetOfSubTomograms

from .. import constants
from ..constants import SAMPLING_TOLERANCE
from ..convert import relion5_scipion
from ..convert.paths import safe_name
from ..convert.star import write_star
from ..kernels import relion_geometry
from ..pipelines.extract import Stack2DJob, Stack2DSettings, SubvolumeSettings
from .protocol_base import (COMMAND_BASE_MB, NOT_READY, ProtCryoprocsBase, read_json,
                            write_json)
from .texts import link, plural

logger = logging.getLogger(__name__)



class ProtCryoprocsExtractSubtomos(ProtCryoprocsBase):
    """Extract subtomograms at 3D coordinates: RELION 5 pseudo-subtomograms (per-particle 2D
    stacks of CTF-premultiplied, dose-weighted tilt-image boxes, identical to
    relion_tomo_subtomo --stack2d, plus a RELION 5 project to refine from), or plain 3D
    sub-volumes cut from tomograms. One step per tilt series / tomogram runs `cryoprocs
    extract` (one cluster job each with "Use queue for jobs"); peak memory per tilt series
    about 150 MB + 224 MB per thread."""
    _label = 'extract subtomograms'
    _devStatus = BETA
    _possibleOutputs = {constants.OUTPUT_SUBTOMOGRAMS: SetOfSubTomograms}

    def __init__(self, **kwargs):
        super().__init__(**kwargs)
        self.extractionReport = String()

    # ================================================================= form
    def _defineParams(self, form):
        form.addSection(label='Input')
        form.addParam('extractionMode', params.EnumParam, choices=constants.EXTRACT_MODE_CHOICES,
                      default=constants.EXTRACT_MODE_STACK2D,
                      display=params.EnumParam.DISPLAY_HLIST, label='Extract',
                      help='*2D tilt stacks (RELION 5)*: per particle, the boxes of every '
                           'tilt image in which it is visible, CTF-premultiplied and '
                           'dose-weighted (RELION 5 pseudo-subtomograms, for RELION 5 '
                           'refinement and averaging). *3D sub-volumes*: boxes cut from '
                           'reconstructed tomograms.')
        form.addParam('inputCoordinates', params.PointerParam,
                      pointerClass='SetOfCoordinates3D', important=True,
                      label='Coordinates',
                      help='3D particle positions with orientations. Their tsIds select the '
                           'tilt series / tomograms.')
        stack2d = 'extractionMode == %d' % constants.EXTRACT_MODE_STACK2D
        vol3d = 'extractionMode == %d' % constants.EXTRACT_MODE_SUBVOLUMES
        form.addParam('inputTiltSeries', params.PointerParam, pointerClass='SetOfTiltSeries',
                      condition=stack2d, allowsNull=True, important=True,
                      label='Tilt series',
                      help='Aligned, non-interpolated tilt series (the raw stacks with their '
                           'alignment transforms), matched to the coordinates by tsId.')
        form.addParam('inputCtfTomoSeries', params.PointerParam,
                      pointerClass='SetOfCTFTomoSeries', condition=stack2d, allowsNull=True,
                      important=True, label='CTF tomo series',
                      help='Per-tilt CTF estimates (defocus U/V/angle, phase shift) matched by '
                           'tsId and acquisition order.')
        form.addParam('inputTomograms', params.PointerParam, pointerClass='SetOfTomograms',
                      condition=vol3d, allowsNull=True, label='Tomograms (optional)',
                      help='Tomograms to cut from, matched by tsId. Empty: the tomograms the '
                           'coordinates refer to.')

        form.addSection(label='Box')
        form.addParam('boxSize', params.IntParam, default=64, validators=[params.Positive],
                      label='Box size (px)',
                      help='2D: binned box size b in px (RELION --b), even; the box cut from '
                           'the tilt images is bin x b px. 3D: side of the output cube in px '
                           'at the output sampling rate.')
        form.addParam('cropSize', params.IntParam, default=-1, condition=stack2d,
                      label='Crop size (px)',
                      help='Output image size in px (RELION --crop), at most the box size '
                           'and of the same parity; -1 = the box size. The circular mask and '
                           'the visibility test use crop/2.')
        form.addParam('binning', params.FloatParam, default=1.0, label='Binning',
                      help='2D: binning of the tilt images by Fourier cropping (RELION --bin); '
                           'output pixel size = tilt-series pixel size x binning. 3D: output '
                           'voxel size = coordinates sampling rate x binning (Fourier cropping '
                           'of the tomogram box when larger than the tomogram voxel).')

        form.addSection(label='Options')
        relion = form.addGroup('RELION 5 extraction', condition=stack2d,
                               help='Options of relion_tomo_subtomo --stack2d, with its '
                                    'defaults.')
        relion.addParam('ctfPremultiply', params.BooleanParam, default=True, condition=stack2d,
                        label='CTF premultiplication?',
                        help='Multiply each tilt image by its CTF at the particle depth (RELION '
                             'default). No = RELION --no_ctf: only the contrast inversion is '
                             'applied, and, as in RELION, no dose weighting.')
        relion.addParam('doseWeighting', params.BooleanParam, default=True,
                        condition='%s and ctfPremultiply' % stack2d, label='Dose weighting?',
                        help='Multiply by the Grant & Grigorieff (2015) dose weights of each '
                             'tilt\'s pre-exposure (RELION default). No: CTF only (a cryoprocs '
                             'option; RELION always weights with the CTF).')
        relion.addParam('circleCrop', params.BooleanParam, default=True, condition=stack2d,
                        label='Circle crop with background subtraction?',
                        help='Subtract the mean outside a circle of radius crop/2 and apply a '
                             '5 px soft edge (RELION default; No = --no_circle_crop).')
        relion.addParam('maxDose', params.FloatParam, default=-1, condition=stack2d,
                        label='Maximum dose (e/Å²)',
                        help='Tilts whose pre-exposure exceeds this dose are left out (RELION '
                             '--max_dose). -1 = use every tilt (RELION\'s default; '
                             'scipion-em-reliontomo proposes 50).')
        relion.addParam('minFrames', params.IntParam, default=1, condition=stack2d,
                        validators=[params.GE(0)], label='Minimum visible frames',
                        help='Particles visible (box inside the image, within the maximum dose) '
                             'in fewer tilts are removed (RELION --min_frames).')
        relion.addParam('float16', params.BooleanParam, default=False, condition=stack2d,
                        label='Write float16?',
                        help='MRC mode 12 with RELION\'s own float16 rounding (--float16): half '
                             'the disk space, about 3 significant digits.')
        relion.addParam('handedness', params.EnumParam, choices=constants.HAND_CHOICES,
                        default=constants.HAND_AUTO, condition=stack2d, label='Handedness',
                        help='rlnTomoHand: does the defocus decrease with Z? It sets the sign of '
                             'the per-particle defocus change with depth. Automatic: the value '
                             'imported with the tilt series (import relion 5 project), else -1 '
                             '(the usual case, as scipion-em-reliontomo).')
        relion.addParam('defocusSlope', params.FloatParam, default=-1, condition=stack2d,
                        expertLevel=LEVEL_ADVANCED, label='Defocus slope',
                        help='rlnTomoDefocusSlope: defocus change per unit of depth. -1 = the '
                             'imported value, else 1 (RELION default).')
        relion.addParam('applyOffsets', params.BooleanParam, default=True, condition=stack2d,
                        expertLevel=LEVEL_ADVANCED, label='Apply offsets?',
                        help='Fold rlnOriginX/Y/ZAngst (rotated by the subtomogram angles) into '
                             'the positions (RELION default; No = --dont_apply_offsets).')
        relion.addParam('ctfScaleFactor', params.EnumParam, choices=constants.CTF_SCALE_CHOICES,
                        default=constants.CTF_SCALE_COS, condition=stack2d,
                        expertLevel=LEVEL_ADVANCED, label='CTF scale factor',
                        help='rlnCtfScalefactor of tilts without an imported value: cos(tilt), '
                             'as RELION 5 pipelines write it, or 1.')
        sub = form.addGroup('Sub-volumes', condition=vol3d,
                            help='Options of the 3D sub-volumes cut from the tomograms.')
        sub.addParam('invertContrast', params.BooleanParam, default=False, condition=vol3d,
                      label='Invert contrast?',
                      help='Multiply the sub-volumes by -1 (dark protein becomes bright).')
        sub.addParam('normalize', params.BooleanParam, default=False, condition=vol3d,
                      label='Normalize?',
                      help='Scale each sub-volume so that the voxels outside the sphere of '
                           'radius box/2 have mean 0 and standard deviation 1.')
        sub.addParam('outsideBoxes', params.EnumParam, choices=constants.OUTSIDE_CHOICES,
                     default=constants.OUTSIDE_SKIP, condition=vol3d,
                      label='Boxes leaving the tomogram',
                      help='Skip those particles, or fill the missing voxels with the '
                           'tomogram mean. The summary gives the counts.')
        self._defineNonFiniteParam(form)
        form.addParallelSection(threads=2, mpi=0)

    # ================================================================= helpers
    def _is2d(self):
        return self.extractionMode.get() == constants.EXTRACT_MODE_STACK2D

    def _settings(self):
        return Stack2DSettings(box=self.boxSize.get(), crop=self.cropSize.get(),
                               binning=self.binning.get(), do_ctf=self.ctfPremultiply.get(),
                               circle_crop=self.circleCrop.get(), float16=self.float16.get(),
                               max_dose=self.maxDose.get(), min_frames=self.minFrames.get(),
                               apply_offsets=self.applyOffsets.get(),
                               dose_weighting=self.doseWeighting.get())

    def _projectDir(self):
        return os.path.abspath(self.getProject().getPath()) if self.getProject() \
            else os.getcwd()

    def _extra(self, *p):
        return os.path.abspath(self._getExtraPath(*p))

    def _inputParticlesStar(self):
        return self._extra("input_particles.star")

    def _tomogramsStar(self):
        return self._extra("tomograms.star")

    def _mapFile(self):
        return self._extra("input_coordinates.json")

    def _coordinates(self):
        """Clones of the enabled input coordinates, volumes attached when possible."""
        cset = self.inputCoordinates.get()
        try:
            it = cset.iterCoordinates() if cset.getPrecedents() is not None else cset.iterItems()
            return [c.clone() for c in it if c.isEnabled()]
        except Exception:                         # precedents without the tsId
            return [c.clone() for c in cset.iterItems() if c.isEnabled()]

    def _coordTsIds(self):
        cset = self.inputCoordinates.get()
        return sorted(str(t) for t in cset.getUniqueValues('_tomoId'))

    def _tsDict(self):
        return {ts.getTsId(): ts.clone() for ts in self.inputTiltSeries.get().iterItems()}

    def _ctfDict(self):
        return {c.getTsId(): c.clone() for c in self.inputCtfTomoSeries.get().iterItems()}

    def _tomoDict(self):
        tomos = self.inputTomograms.get()
        if tomos is None:
            tomos = self.inputCoordinates.get().getPrecedents()
        return {t.getTsId(): t.clone() for t in tomos.iterItems()} if tomos is not None else {}

    # ================================================================= steps
    def _insertAllSteps(self):
        # one step per tilt series / tomogram (one cluster job each with "Use queue for
        # jobs"), then the registration; pyworkflow's parallel executor polls every 3 s
        # between dependent steps, so the input conversion runs inside the first item step
        # (under the protocol lock), and a single tilt series / tomogram is extracted and
        # registered in one step.
        tsIds = self._stepTsIds()
        func = self.extractTiltSeriesStep if self._is2d() else self.extractTomogramStep
        if len(tsIds) <= 1:
            self._insertFunctionStep(self.extractAllStep, tsIds, prerequisites=[],
                                     needsGPU=False)
            return
        ids = self._insertItemSteps(func, [(t, len(tsIds)) for t in tsIds])
        self._insertFunctionStep(self.createOutputStep, prerequisites=ids, needsGPU=False)

    def extractAllStep(self, tsIds):
        func = self.extractTiltSeriesStep if self._is2d() else self.extractTomogramStep
        for t in tsIds:
            func(t, 1)
        self.createOutputStep()

    def _prepareInput(self):
        """Write the converted inputs once per run (later steps and resumed runs reuse them)."""
        with self._lock:
            if not os.path.exists(self._mapFile()):
                self.convertInputStep()

    def _stepTsIds(self):
        coords = set(self._coordTsIds())
        if self._is2d():
            ts = {t.getTsId() for t in self.inputTiltSeries.get().iterItems()}
            ctf = {c.getTsId() for c in self.inputCtfTomoSeries.get().iterItems()}
            return sorted(coords & ts & ctf)
        return sorted(coords & set(self._tomoDict()))

    # ---------------------------------------------------------------- 2D
    def convertInputStep(self):
        if not self._is2d():
            return self._convert3d()
        project = self._projectDir()
        tsIds = self._stepTsIds()
        relion5_scipion.write_tilt_series_project(
            self._extra(), project, tsIds, self._tsDict(), self._ctfDict(), self._tomoDict(),
            hand={constants.HAND_MINUS: -1.0, constants.HAND_PLUS: 1.0}.get(self.handedness.get()),
            defocus_slope=self.defocusSlope.get() if self.defocusSlope.get() > 0 else None,
            scale_factor="cos" if self.ctfScaleFactor.get() == constants.CTF_SCALE_COS else "one")
        cset = self.inputCoordinates.get()
        coords = [c for c in self._coordinates() if c.getTomoId() in set(tsIds)]
        write_star(self._inputParticlesStar(),
                   relion5_scipion.coordinate_particle_blocks(coords, cset))
        # degenerate inputs stop the run here, before any tilt series is extracted (the
        # per-tilt-series commands each see one tilt series only)
        self._job().check_some_visible()
        write_json(self._mapFile(), {"coordinate_ids": [int(c.getObjId()) for c in coords]})

    def _job(self):
        return Stack2DJob(self._inputParticlesStar(), self._tomogramsStar(), self._extra(),
                          self._settings(), project_dir=self._projectDir(),
                          nonfinite=self._nonFinite())

    def _resultFile(self, tsId):
        return self._extra(safe_name(tsId) + '_extraction.json')

    def _tiltSeriesDone(self, tsId):
        """None when every stack of ``tsId`` is written (its result is written last)."""
        res = read_json(self._resultFile(tsId))
        if res is None or res.get('tilt_series') != tsId:
            return 'no readable result %s for tsId %s' % (self._resultFile(tsId), tsId)
        job = self._job()
        plan = job.plan(tsId)
        bad = [plan.out_files[i] for i in np.flatnonzero(plan.keep)
               if not job.stack_done(plan, i, warn=False)]
        if bad:
            return '%d stacks missing or incomplete, e.g. %s' % (len(bad), bad[0])
        return None

    def extractTiltSeriesStep(self, tsId, nSteps):
        """One tilt series: ``cryoprocs extract --tilt-series`` as this step's job (stacks
        written before a restart with the same inputs and settings are kept)."""
        from ..commands.extract import args_from_settings
        self._prepareInput()
        if os.path.exists(self._resultFile(tsId)) and self._tiltSeriesDone(tsId) is None:
            logger.info('tsId = %s: extracted before, skipped', tsId)
            return
        threads = self._kernelThreads(nSteps)
        self._runCryoprocs('extract', [
            '--particles', self._inputParticlesStar(), '--tomograms', self._tomogramsStar(),
            '--project-dir', self._projectDir(), '--output-dir', self._extra(),
            '--tilt-series', tsId, '--result', self._resultFile(tsId), '--threads',
            str(threads), '--overwrite'] + args_from_settings(self._settings(), self._nonFinite()),
            threads)
        self._requireResults('tsId %s' % tsId, [self._resultFile(tsId)],
                             lambda: self._tiltSeriesDone(tsId))
        res = read_json(self._resultFile(tsId))
        logger.info("tsId = %s: %d stacks written, %d already present, %d frames", tsId,
                    res["written"], res["skipped_existing"], res["frames"])

    # ---------------------------------------------------------------- 3D
    def _subvolumeSettings(self):
        return SubvolumeSettings(box=self.boxSize.get(), binning=1.0,
                                 invert_contrast=self.invertContrast.get(),
                                 normalize=self.normalize.get(),
                                 outside="skip" if self.outsideBoxes.get() == constants.OUTSIDE_SKIP
                                 else "pad")

    def _convert3d(self):
        from tomo.constants import CENTER_GRAVITY
        tomos = self._tomoDict()
        cset = self.inputCoordinates.get()
        csr = cset.getSamplingRate()
        data = {}
        for coord in self._coordinates():
            tsId = coord.getTomoId()
            tomo = tomos.get(tsId)
            if tomo is None:
                continue
            if tsId not in data:
                fn = tomo.getFileName()
                data[tsId] = {"tomogram": fn if os.path.isabs(fn) else
                              os.path.join(self._projectDir(), fn),
                              "sampling": tomo.getSamplingRate(),
                              "dims": list(tomo.getDim()), "coords": []}
            dims = np.array(data[tsId]["dims"], dtype=np.float64)
            tsr = data[tsId]["sampling"]
            try:
                c = np.array(coord.getPosition(CENTER_GRAVITY), dtype=np.float64)
            except Exception:
                from tomo.constants import SCIPION
                c = np.array(coord.getPosition(SCIPION), dtype=np.float64)
            pos = c * csr / tsr + dims / 2.0
            data[tsId]["coords"].append([int(coord.getObjId())] + [float(v) for v in pos])
        write_json(self._mapFile(), data)

    def _subvolumeFile(self, tsId, coordId):
        name = safe_name(tsId)
        return self._extra("Subtomograms", name, "%s_%06d.mrc" % (name, coordId))

    def _statusFile(self, tsId):
        return self._extra("status_%s.json" % safe_name(tsId))

    def _tomogramDone(self, tsId):
        """None when the status of every particle of ``tsId`` is recorded (written last)."""
        st = read_json(self._statusFile(tsId))
        coords = read_json(self._mapFile(), {}).get(tsId, {}).get("coords", [])
        if st is None or st.get("tilt_series") != tsId or len(st["status"]) != len(coords):
            return 'no complete status %s for tsId %s' % (self._statusFile(tsId), tsId)
        return None

    def extractTomogramStep(self, tsId, nSteps):
        """One tomogram: ``cryoprocs extract-subvolumes`` (hidden) as this step's job
        (sub-volumes written before a restart with the same settings are kept)."""
        self._prepareInput()
        if os.path.exists(self._statusFile(tsId)) and self._tomogramDone(tsId) is None:
            logger.info('tsId = %s: extracted before, skipped', tsId)
            return
        from ..commands.subvolumes import args_from_settings
        data = read_json(self._mapFile())[tsId]
        csr = self.inputCoordinates.get().getSamplingRate()
        settings = self._subvolumeSettings()
        settings.binning = max(1.0, csr * self.binning.get() / data["sampling"])
        args = ['--coordinates', self._mapFile(), '--tilt-series', tsId,
                '--output-dir', self._extra("Subtomograms"), '--status', self._statusFile(tsId)]
        args += args_from_settings(settings, self._nonFinite())
        threads = self._kernelThreads(nSteps)
        self._runCryoprocs('extract-subvolumes', args, threads)
        self._requireResults('tsId %s' % tsId, [self._statusFile(tsId)],
                             lambda: self._tomogramDone(tsId))
        c = read_json(self._statusFile(tsId))["counts"]
        logger.info("tsId = %s: %d sub-volumes written, %d outside the tomogram (%d skipped, "
                    "%d padded)", tsId, c["written"], c["outside"], c["skipped"], c["padded"])

    # ---------------------------------------------------------------- output
    def createOutputStep(self):
        self._prepareInput()
        from pwem.objects import Transform
        from tomo.objects import SubTomogram

        coords = {c.getObjId(): c for c in self._coordinates()}
        outSet = SetOfSubTomograms.create(self._getPath(), template='subtomograms%s.sqlite')
        # a pointer of its own: sharing the form's Pointer object makes the protocol's
        # final store fail ("Circular reference ... _coordsPointer found twice")
        outSet.setCoordinates3D(Pointer(self.inputCoordinates.getObjValue(),
                                        extended=self.inputCoordinates.getExtended()))
        report = {}
        if self._is2d():
            job = self._job()
            job.write_star_files()
            ids = read_json(self._mapFile())["coordinate_ids"]
            tsSet = self.inputTiltSeries.get()
            ps = tsSet.getSamplingRate()
            sr = ps * self.binning.get()
            outSet.setSamplingRate(sr)
            acq = tsSet.getAcquisition()
            outSet.setAcquisition(acq)
            counts = job.counts()
            report = {"mode": "2d", "kept": counts["kept"], "removed": counts["removed"],
                      "per_ts": {}, "frames": 0}
            byName = {}
            for tsId in job.tomogram_order:
                plan = job.plan(tsId)
                report["per_ts"][tsId] = [int(len(plan.rows)), plan.n_kept]
                for i in np.flatnonzero(plan.keep):
                    coord = coords[ids[int(plan.rows[i])]].clone()
                    byName[str(plan.names[i])] = coord.clone()
                    sub = SubTomogram()
                    sub.setLocation(os.path.relpath(plan.out_files[i], self._projectDir()))
                    sub.setSamplingRate(sr)
                    sub.setCoordinate3D(coord)
                    sub.setVolName(tsId)
                    sub.setAcquisition(acq)
                    M = coord.getMatrix()
                    if M is not None:
                        sub.setTransform(Transform(np.array(M)))
                    vis = plan.visible[:, i].astype(int)
                    report["frames"] += int(vis.sum())
                    relion5_scipion.set_attr(sub, "rlnTomoVisibleFrames",
                                             "[" + ",".join(str(v) for v in vis) + "]")
                    relion5_scipion.set_attr(sub, "rlnTomoParticleName", plan.names[i])
                    relion5_scipion.set_attr(sub, "rlnTomoTiltSeriesPixelSize", float(ps))
                    outSet.append(sub)
            for k, v in (("are2dStacks", 1), ("relionBinning", float(self.binning.get())),
                         ("tsSamplingRate", float(ps)),
                         ("optimisationSet", os.path.relpath(
                             self._extra("optimisation_set.star"), self._projectDir()))):
                relion5_scipion.set_attr(outSet, k, v)
        else:
            data = read_json(self._mapFile())
            tomos = self._tomoDict()
            report = {"mode": "3d", "per_ts": {}}
            sr = None
            for tsId in sorted(data):
                info = read_json(self._statusFile(tsId))
                if info is None:
                    continue
                report["per_ts"][tsId] = info["counts"]
                csr = self.inputCoordinates.get().getSamplingRate()
                f = max(1.0, csr * self.binning.get() / data[tsId]["sampling"])
                s0 = int(self.boxSize.get() * f + 0.5) if f != 1.0 else self.boxSize.get()
                sr = data[tsId]["sampling"] * s0 / float(self.boxSize.get())
                tomo = tomos[tsId]
                for cid, status in info["status"].items():
                    if status not in ("written", "padded", "existing"):
                        continue
                    coord = coords[int(cid)].clone()
                    sub = SubTomogram()
                    sub.setLocation(os.path.relpath(self._subvolumeFile(tsId, int(cid)),
                                                    self._projectDir()))
                    sub.setSamplingRate(sr)
                    sub.setCoordinate3D(coord)
                    sub.setVolName(tsId)
                    if tomo.getAcquisition() is not None:
                        sub.setAcquisition(tomo.getAcquisition())
                    M = coord.getMatrix()
                    if M is not None:
                        sub.setTransform(Transform(np.array(M)))
                    outSet.append(sub)
            outSet.setSamplingRate(sr or self.inputCoordinates.get().getSamplingRate())
        outSet.write()
        self._defineOutputs(**{constants.OUTPUT_SUBTOMOGRAMS: outSet})
        self._defineSourceRelation(self.inputCoordinates, outSet)
        if self._is2d():
            self._defineSourceRelation(self.inputTiltSeries, outSet)
            self._defineSourceRelation(self.inputCtfTomoSeries, outSet)
            report["relion_particles"] = self._registerRelionParticles(byName, acq, ps)
        self.extractionReport.set(json.dumps(report))
        self._store(self.extractionReport)

    def _registerRelionParticles(self, byName, acquisition, tsSampling):
        """Also register the stacks as scipion-em-reliontomo's RelionSetOfPseudoSubtomograms
        (the input of its RELION 5 refinement, classification, initial model...), made with
        reliontomo's own API from this run's optimisation_set.star, when the plugin is
        installed. Returns what the summary reports: ``{"n", "coordinates"}`` or
        ``{"reason"}`` (the stacks are registered as subtomograms either way)."""
        from ..convert import reliontomo_scipion
        mods, reason = reliontomo_scipion.reliontomo_modules()
        if mods is None:
            logger.info('%s not registered: %s', constants.OUTPUT_RELION_PARTICLES, reason)
            return {"reason": reason}
        try:
            pset, attached = reliontomo_scipion.pseudo_subtomograms_from_project(
                self._getPath(), self._getExtraPath('optimisation_set.star'),
                # a pointer of its own (see createOutputStep)
                Pointer(self.inputCoordinates.getObjValue(),
                        extended=self.inputCoordinates.getExtended()),
                tsSampling, self.binning.get(), self._settings().crop, acquisition,
                coordinates=byName)
        except Exception as exc:          # reliontomo's reader: the stacks stay registered
            logger.warning('%s not registered: scipion-em-reliontomo failed to read %s: %s: '
                           '%s', constants.OUTPUT_RELION_PARTICLES,
                           self._getExtraPath('optimisation_set.star'), type(exc).__name__,
                           exc)
            return {"reason": 'scipion-em-reliontomo failed to read the RELION project '
                              '(%s: %s)' % (type(exc).__name__, exc)}
        self._defineOutputs(**{constants.OUTPUT_RELION_PARTICLES: pset})
        self._defineSourceRelation(self.inputCoordinates, pset)
        self._defineSourceRelation(self.inputTiltSeries, pset)
        self._defineSourceRelation(self.inputCtfTomoSeries, pset)
        return {"n": int(pset.getSize()), "coordinates": int(attached)}

    # ================================================================= memory
    _memoryHelp = ('Peak memory of one tilt series (2D stacks): about 150 MB + 224 MB per '
                   'thread (output stacks of a particle group, at most 160 MB, and the boxes '
                   'being cut), whatever the tilt-series size (images are memory-mapped); '
                   'of one tomogram (3D sub-volumes): 150 MB + 32 x box^3 bytes.')

    def _memoryItems(self):
        tsIds = self._stepTsIds()
        threads = self._kernelThreads(len(tsIds))
        if self._is2d():
            need = COMMAND_BASE_MB + threads * (Stack2DJob.max_group_bytes / 2.0 ** 20 + 64)
        else:
            need = COMMAND_BASE_MB + 32.0 * self.boxSize.get() ** 3 / 2.0 ** 20
        return [('tsId %s' % t, need) for t in tsIds]

    # ================================================================= info
    def _validate(self):
        errors = []
        cset = self.inputCoordinates.get()
        if cset is None or cset.getSize() == 0:
            return ['The input set of coordinates is empty.']
        coordIds = set(self._coordTsIds())
        if self._is2d():
            errors += self._settings().errors()
            tsSet, ctfSet = self.inputTiltSeries.get(), self.inputCtfTomoSeries.get()
            if tsSet is None or ctfSet is None:
                return errors + ['2D tilt stacks need the tilt series and their CTF tomo '
                                 'series.']
            tsIds = {}
            for ts in tsSet.iterItems():
                tsIds[ts.getTsId()] = (ts.hasAlignment(), ts.getSamplingRate(), ts.getDim())
            ctfIds = {c.getTsId() for c in ctfSet.iterItems()}
            noTs = sorted(coordIds - set(tsIds))
            noCtf = sorted((coordIds & set(tsIds)) - ctfIds)
            if noTs:
                errors.append('Coordinates of tsIds %s have no tilt series (tilt series: %s).'
                              % (", ".join(noTs[:10]), ", ".join(sorted(tsIds)[:10])))
            if noCtf:
                errors.append('Tilt series %s have no CTF tomo series.' % ", ".join(noCtf[:10]))
            used = sorted(coordIds & set(tsIds) & ctfIds)
            unaligned = [t for t in used if not tsIds[t][0]]
            if unaligned:
                errors.append('Tilt series %s have no alignment (RELION needs the tilt-image '
                              'transforms).' % ", ".join(unaligned[:10]))
            srs = {t: tsIds[t][1] for t in used}
            srSet = tsSet.getSamplingRate()
            bad = ["%s (%.4f Å/px)" % (t, s) for t, s in srs.items()
                   if abs(s - srSet) > SAMPLING_TOLERANCE * srSet]
            if bad:
                errors.append('Tilt series sampling rates %s differ from the set\'s %.4f Å/px.'
                              % (", ".join(bad), srSet))
            if not errors:
                s0, _ = relion_geometry.box_sizes(self.boxSize.get(), self.binning.get())
                small = ["%s (%d x %d px)" % (t, tsIds[t][2][0], tsIds[t][2][1]) for t in used
                         if tsIds[t][2] and s0 > min(tsIds[t][2][0], tsIds[t][2][1])]
                if small:
                    errors.append('The unbinned box of %d px (box %d x binning %g) is larger '
                                  'than the tilt images of %s.' % (s0, self.boxSize.get(),
                                                                   self.binning.get(),
                                                                   ", ".join(small)))
        else:
            errors += SubvolumeSettings(box=self.boxSize.get(),
                                        binning=self.binning.get()).errors()
            tomos = self._tomoDict()
            if not tomos:
                return errors + ['3D sub-volumes need tomograms (input or the coordinates\' '
                                 'precedents).']
            missing = sorted(coordIds - set(tomos))
            if missing:
                errors.append('Coordinates of tsIds %s have no tomogram (tomograms: %s).'
                              % (", ".join(missing[:10]), ", ".join(sorted(tomos)[:10])))
            csr = cset.getSamplingRate()
            for t in sorted(coordIds & set(tomos)):
                tsr = tomos[t].getSamplingRate()
                f = csr * self.binning.get() / tsr
                if f < 1 - SAMPLING_TOLERANCE:
                    errors.append('tsId %s: the output voxel (coordinates %.3f Å/px x binning '
                                  '%g) is smaller than the tomogram voxel %.3f Å; increase the '
                                  'binning' % (t, csr, self.binning.get(), tsr))
                dims = tomos[t].getDim()
                s0 = int(self.boxSize.get() * max(1.0, f) + 0.5)
                if dims and s0 > min(dims):
                    errors.append('tsId %s: the box of %d voxels is larger than the tomogram '
                                  '%s.' % (t, s0, "x".join(str(d) for d in dims)))
        return errors

    def _warnings(self):
        w = []
        if self._is2d() and self.inputTiltSeries.get() is not None:
            interp = [ts.getTsId() for ts in self.inputTiltSeries.get().iterItems()
                      if ts.interpolated()]
            if interp:
                w.append('Tilt series %s are interpolated: RELION extraction expects the raw '
                         'tilt images with their alignment.' % ", ".join(interp[:10]))
        return w

    def _summary(self):
        if not self.extractionReport.get():
            return [NOT_READY]
        rep = json.loads(self.extractionReport.get())
        if rep["mode"] == "2d":
            lines = ['%s (2D stacks, %s) extracted; %s removed (visible in fewer than %s).'
                     % (plural(rep["kept"], 'RELION 5 pseudo-subtomogram'),
                        plural(rep["frames"], 'frame'), plural(rep["removed"], 'particle'),
                        plural(self.minFrames.get(), 'tilt'))]
            for t, (n, k) in sorted(rep["per_ts"].items()):
                lines.append('  %s: %d of %s' % (t, k, plural(n, 'particle')))
            lines.append('RELION 5 project: %s (run RELION from the Scipion project '
                         'directory)' % link(self._getExtraPath('optimisation_set.star')))
            rp = rep.get("relion_particles") or {}
            if "n" in rp:
                lines.append('%s: the %s as RELION 5 pseudo-subtomograms of '
                             'scipion-em-reliontomo (input of its refinement, '
                             'classification, initial model, reconstruction), with their '
                             'coordinates.' % (constants.OUTPUT_RELION_PARTICLES,
                                               plural(rp["n"], 'stack')))
            elif "reason" in rp:
                lines.append('No %s: %s.' % (constants.OUTPUT_RELION_PARTICLES, rp["reason"]))
            return lines
        lines = []
        tot = {"written": 0, "outside": 0, "skipped": 0, "padded": 0, "skipped_existing": 0}
        for t, c in sorted(rep["per_ts"].items()):
            for k in tot:
                tot[k] += c.get(k, 0)
            lines.append('  %s: %d written, %d outside the tomogram (%d skipped, %d padded)'
                         % (t, c["written"] + c.get("skipped_existing", 0), c["outside"],
                            c["skipped"], c["padded"]))
        return ['%s of %d px extracted; %s left the tomogram: %d skipped, '
                '%d padded with the tomogram mean.'
                % (plural(tot["written"] + tot["skipped_existing"], 'sub-volume'),
                   self.boxSize.get(), plural(tot["outside"], 'box', 'boxes'), tot["skipped"],
                   tot["padded"])] + lines

    def _methods(self):
        if not self.extractionReport.get():
            return []
        if self._is2d():
            return ['Pseudo-subtomograms were extracted as 2D tilt stacks of %d px (box %d, '
                    'binning %g) with the algorithm of RELION 5 relion_tomo_subtomo '
                    '[Burt2024]%s using cryoprocs [cryoprocs2026].'
                    % (self._settings().crop, self.boxSize.get(), self.binning.get(),
                       ', CTF premultiplication and dose weighting [Grant2015]'
                       if self.ctfPremultiply.get() else '')]
        return ['Sub-volumes of %d px were cut from the tomograms with cryoprocs '
                '[cryoprocs2026].' % self.boxSize.get()]

    def _citations(self):
        return ['Burt2024', 'Grant2015'] if self._is2d() else []
