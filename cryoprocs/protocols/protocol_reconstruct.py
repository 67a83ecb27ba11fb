"""ReconstructSubtomoAverage: RELION 5 style Fourier reconstruction of a subtomogram average
from tilt series, with half maps and the FSC, to RELION 5.0.1's numbers.

The Scipion inputs are written as a RELION 5 project into extra/ (convert/relion5_scipion.py,
the same mapping as ExtractSubtomos; with subtomograms from ExtractSubtomos as input, its
tomograms.star is used and the particles are the subtomograms' coordinates and
orientations). Each tilt series is then backprojected in its own parallel step by
``cryoprocs reconstruct --tilt-series`` (pipelines/reconstruct.py), which saves its partial
sums (extra/partial/<tsId>.npz: a resumed run skips finished tilt series); the last step,
``cryoprocs reconstruct`` without it, sums them, symmetrises, reconstructs the half maps and
the merged map, computes the FSC and writes extra/reconstruction.json, which the protocol
registers. scipion-em-reliontomo's pseudo-subtomograms (ours, or the particles of a RELION 5
refinement) are read through convert/reliontomo_scipion.py: their RELION project's
tomograms.star, and their refined orientations, origins and positions.
"""
import json
import logging
import os

import numpy as np
import pandas as pd
import pyworkflow.protocol.params as params
from pyworkflow import BETA
from pyworkflow.object import String
from pyworkflow.protocol.constants import LEVEL_ADVANCED
from pwem.objects import FSC
from tomo.objects import AverageSubTomogram

from .. import constants
from ..constants import SAMPLING_TOLERANCE
from ..convert import relion5
from ..convert import relion5_scipion
from ..convert import reliontomo_scipion
from ..convert.euler import relion_euler_matrix
from ..convert.star import write_star
from ..kernels import relion_geometry
from ..pipelines.reconstruct import ReconstructJob, ReconstructSettings
from .protocol_base import COMMAND_BASE_MB, NOT_READY, ProtCryoprocsBase, read_json
from .texts import link, plural

logger = logging.getLogger(__name__)



class ProtCryoprocsReconstructSubtomoAverage(ProtCryoprocsBase):
    """Reconstruct a subtomogram average directly from the tilt series, as RELION 5
    relion_tomo_reconstruct_particle: per particle and tilt, a box cut from the tilt image,
    CTF x dose weighted and inserted into Fourier space by trilinear backprojection, per half
    set; then symmetry, gridding and CTF correction. Outputs the merged map with its half maps
    and the FSC between them. One step per tilt series runs `cryoprocs reconstruct` for its
    partial sums, a final step sums them (one cluster job each with "Use queue for jobs");
    peak memory per tilt series about 150 MB + 48 x box^3 bytes per thread."""
    _label = 'reconstruct subtomogram average'
    _devStatus = BETA
    _possibleOutputs = {constants.OUTPUT_AVERAGE: AverageSubTomogram, constants.OUTPUT_FSC: FSC}

    def __init__(self, **kwargs):
        super().__init__(**kwargs)
        self.reconstructionReport = String()

    # ================================================================= form
    def _defineParams(self, form):
        form.addSection(label='Input')
        form.addParam('inputSource', params.EnumParam, choices=constants.RECONSTRUCT_SOURCE_CHOICES,
                      default=constants.RECONSTRUCT_FROM_COORDINATES,
                      display=params.EnumParam.DISPLAY_HLIST, label='Particles from',
                      help='*coordinates + tilt series*: oriented 3D coordinates (with random '
                           'subsets for the half maps) and the tilt series and CTFs they were '
                           'picked on. *subtomograms*: the 2D-stack pseudo-subtomograms of '
                           'ExtractSubtomos; their coordinates and orientations are used with '
                           'the tilt series and CTFs of that extraction (RELION also '
                           're-extracts from the tilt series).')
        fromCoords = 'inputSource == %d' % constants.RECONSTRUCT_FROM_COORDINATES
        fromSubtomos = 'inputSource == %d' % constants.RECONSTRUCT_FROM_SUBTOMOGRAMS
        form.addParam('inputCoordinates', params.PointerParam,
                      pointerClass='SetOfCoordinates3D', condition=fromCoords,
                      allowsNull=True, important=True, label='Coordinates',
                      help='3D particle positions with orientations. Half sets come from '
                           'their rlnRandomSubset (e.g. imported with ImportRelion5); '
                           'without it particles alternate between the halves per tilt '
                           'series, as scipion-em-reliontomo does.')
        form.addParam('inputTiltSeries', params.PointerParam, pointerClass='SetOfTiltSeries',
                      condition=fromCoords, allowsNull=True, important=True,
                      label='Tilt series',
                      help='Aligned, non-interpolated tilt series (raw stacks with their '
                           'alignment), matched to the coordinates by tsId.')
        form.addParam('inputCtfTomoSeries', params.PointerParam,
                      pointerClass='SetOfCTFTomoSeries', condition=fromCoords,
                      allowsNull=True, important=True, label='CTF tomo series',
                      help='Per-tilt CTF estimates matched by tsId and acquisition order.')
        form.addParam('inputSubtomograms', params.PointerParam,
                      pointerClass='SetOfSubTomograms', condition=fromSubtomos,
                      allowsNull=True, important=True, label='Subtomograms',
                      help='2D-stack pseudo-subtomograms made by cryoprocs ExtractSubtomos '
                           '(or a subset of them), or scipion-em-reliontomo\'s RELION 5 '
                           'pseudo-subtomograms (e.g. the particles of a RELION 5 refinement, '
                           'with their refined orientations; their tomograms.star gives the '
                           'tilt series).')

        form.addSection(label='Reconstruction')
        form.addParam('boxSize', params.IntParam, default=64, validators=[params.Positive],
                      label='Box size (px)',
                      help='Binned box size b in px (RELION --b), even. Boxes of bin x b px '
                           'are cut from the tilt images; a particle is used in a tilt when it '
                           'projects at least b/2 px (unbinned) from the image edges, as in '
                           'RELION\'s reconstruction.')
        form.addParam('cropSize', params.IntParam, default=-1, label='Crop size (px)',
                      help='Output map size in px (RELION --crop), at most the box size and '
                           'of the same parity; -1 = the box size.')
        form.addParam('binning', params.FloatParam, default=1.0, label='Binning',
                      help='Fourier binning of the tilt images (RELION --bin); the map '
                           'sampling rate is the tilt-series pixel size x binning.')
        form.addParam('symmetry', params.StringParam, default=constants.DEFAULT_SYMMETRY,
                      label='Symmetry',
                      help='Point group in RELION\'s conventions: C1, Cn (axis z), Dn (n-fold '
                           'on z, two-fold on x), T, O, I (= I2) or I1, I3, I4.')
        form.addParam('doWiener', params.BooleanParam, default=False,
                      label='Wiener filter with an SNR?',
                      help='No (RELION default): divide by the CTF^2 weights, floored at '
                           '0.001 x their radial average. Yes: divide by weights + 1/SNR '
                           '(RELION --SNR).')
        form.addParam('snr', params.FloatParam, default=1.0, condition='doWiener',
                      label='Signal-to-noise ratio',
                      help='Assumed SNR (> 0) of the Wiener filter: the map is divided by '
                           'the weights + 1/SNR.')
        form.addParam('doCtf', params.BooleanParam, default=True,
                      label='Apply CTF and dose weights?',
                      help='Weight each tilt image by its CTF (at the particle depth) times '
                           'the Grant & Grigorieff (2015) dose weights (RELION default). No = '
                           'RELION --no_ctf: weights 1, only the contrast inversion.')
        form.addParam('circleCrop', params.BooleanParam, default=True,
                      label='Circle crop before insertion?',
                      help='Subtract the mean outside a circle of radius bin x b/2 and apply '
                           'a 5 px soft edge to each tilt-image box before its FFT (RELION '
                           'default; No = --no_circle_crop).')
        form.addParam('maxDose', params.FloatParam, default=-1,
                      label='Maximum dose (e/Å²)',
                      help='Tilts whose pre-exposure exceeds this dose are not used. -1 = '
                           'every tilt (RELION\'s reconstruction has no such option).')
        form.addParam('taper', params.FloatParam, default=10.0, expertLevel=LEVEL_ADVANCED,
                      label='Taper (px)',
                      help='Width of the soft spherical edge of the output maps (RELION '
                           '--taper); the weighted mean inside the sphere is subtracted.')
        form.addParam('cutoffFraction', params.FloatParam, default=0.01,
                      expertLevel=LEVEL_ADVANCED, label='Dose cut-off fraction',
                      help='Frequencies where the dose weight falls below this fraction are '
                           'not inserted (RELION --cutoff_fract).')
        form.addParam('handedness', params.EnumParam, choices=constants.HAND_CHOICES,
                      default=constants.HAND_AUTO, condition=fromCoords, expertLevel=LEVEL_ADVANCED,
                      label='Handedness',
                      help='rlnTomoHand: the sign of the defocus change with depth. '
                           'Automatic: the value imported with the tilt series, else -1.')
        form.addParam('defocusSlope', params.FloatParam, default=-1, condition=fromCoords,
                      expertLevel=LEVEL_ADVANCED, label='Defocus slope',
                      help='rlnTomoDefocusSlope: defocus change per unit of depth. -1 = the '
                           'imported value, else 1 (RELION default).')
        form.addParam('ctfScaleFactor', params.EnumParam, choices=constants.CTF_SCALE_CHOICES,
                      default=constants.CTF_SCALE_COS, condition=fromCoords,
                      expertLevel=LEVEL_ADVANCED, label='CTF scale factor',
                      help='rlnCtfScalefactor of tilts without an imported value: cos(tilt), '
                           'as RELION 5 pipelines write it, or 1. The reconstruction weights '
                           'scale with its square.')
        self._defineNonFiniteParam(form)
        form.addParallelSection(threads=2, mpi=0)

    # ================================================================= helpers
    def _fromSubtomos(self):
        return self.inputSource.get() == constants.RECONSTRUCT_FROM_SUBTOMOGRAMS

    def _settings(self):
        return ReconstructSettings(box=self.boxSize.get(), crop=self.cropSize.get(),
                                   binning=self.binning.get(), symmetry=self.symmetry.get(),
                                   snr=self.snr.get() if self.doWiener.get() else -1.0,
                                   do_ctf=self.doCtf.get(), circle_crop=self.circleCrop.get(),
                                   max_dose=self.maxDose.get(),
                                   cutoff_fraction=self.cutoffFraction.get(),
                                   taper=self.taper.get())

    def _projectDir(self):
        return os.path.abspath(self.getProject().getPath()) if self.getProject() \
            else os.getcwd()

    def _extra(self, *p):
        return os.path.abspath(self._getExtraPath(*p))

    def _particlesStar(self):
        return self._extra("particles.star")

    def _tomogramsStar(self):
        if self._fromSubtomos():
            return self._subtomoProject()[1]
        return self._extra("tomograms.star")

    def _isPseudoSubtomograms(self):
        return reliontomo_scipion.is_pseudo_subtomogram_set(self.inputSubtomograms.get())

    def _subtomoProject(self):
        """(particles.star, tomograms.star) of the extraction that made the subtomograms,
        from its optimisation set (absolute paths), or (None, None)."""
        subs = self.inputSubtomograms.get()
        if reliontomo_scipion.is_pseudo_subtomogram_set(subs):
            return reliontomo_scipion.pseudo_subtomogram_project(subs, self._projectDir())
        opt = relion5_scipion.attr(subs, "optimisationSet") if subs is not None else None
        if not opt:
            return None, None
        path = opt if os.path.isabs(opt) else os.path.join(self._projectDir(), opt)
        if not os.path.exists(path):
            return None, None
        from ..convert.star import read_star
        block = next(iter(read_star(path).values()))
        block = block.iloc[0].to_dict() if hasattr(block, "iloc") else dict(block)

        def absolute(p):
            return p if os.path.isabs(p) else os.path.join(self._projectDir(), p)
        return absolute(str(block["rlnTomoParticlesFile"])), \
            absolute(str(block["rlnTomoTomogramsFile"]))

    def _job(self):
        return ReconstructJob(self._particlesStar(), self._tomogramsStar(), self._extra(),
                              self._settings(), project_dir=self._projectDir(),
                              work_dir=self._extra("partial"), nonfinite=self._nonFinite())

    def _coordTsIds(self):
        if self._fromSubtomos():
            return sorted(str(t) for t in
                          self.inputSubtomograms.get().getUniqueValues('_volName'))
        return sorted(str(t) for t in self.inputCoordinates.get().getUniqueValues('_tomoId'))

    def _stepTsIds(self):
        coords = set(self._coordTsIds())
        if self._fromSubtomos():
            _, tomos = self._subtomoProject()
            if tomos is None:
                return sorted(coords)
            return sorted(coords & set(relion5.read_tomograms(tomos)["rlnTomoName"]))
        ts = {t.getTsId() for t in self.inputTiltSeries.get().iterItems()}
        ctf = {c.getTsId() for c in self.inputCtfTomoSeries.get().iterItems()}
        return sorted(coords & ts & ctf)

    # ================================================================= steps
    def _insertAllSteps(self):
        # one step per tilt series (its partial sums), then the final sum, symmetry and FSC
        # in a step of its own; with a single tilt series one command does both (pyworkflow's
        # parallel executor polls every 3 s between dependent steps). The conversion of the
        # inputs runs inside the first step (under the protocol lock).
        tsIds = self._stepTsIds()
        ids = []
        if len(tsIds) > 1:
            ids = self._insertItemSteps(self.backprojectTiltSeriesStep,
                                        [(t, len(tsIds)) for t in tsIds])
        self._insertFunctionStep(self.reconstructStep, tsIds, prerequisites=ids,
                                 needsGPU=False)

    def _prepareInput(self):
        """Write the converted inputs once per run (later steps and resumed runs reuse them);
        degenerate inputs (a box larger than the tilt images, no visible particle) stop the
        run then, before any tilt series is backprojected."""
        with self._lock:
            if not os.path.exists(self._particlesStar()):
                self.convertInputStep()
                self._job().check_some_visible()

    def convertInputStep(self):
        """RELION 5 project in extra/: tomograms.star + tilt-series STARs (coordinates mode)
        and particles.star (both modes)."""
        project = self._projectDir()
        tsIds = self._stepTsIds()
        if self._fromSubtomos() and self._isPseudoSubtomograms():
            subs = self.inputSubtomograms.get()
            items = [p.clone() for p in subs.iterItems()
                     if p.isEnabled() and p.getTsId() in tsIds]
            parts = pd.DataFrame(reliontomo_scipion.pseudo_subtomogram_rows(
                items, subs.getSamplingRate()))
            blocks = {"general": {"rlnTomoSubTomosAre2DStacks": 0}, "particles": parts}
        elif self._fromSubtomos():
            subs = self.inputSubtomograms.get()
            coords = []
            for sub in subs.iterItems():
                if not sub.isEnabled() or sub.getVolName() not in tsIds:
                    continue
                coord = sub.getCoordinate3D().clone()
                coord.setTomoId(sub.getVolName())
                T = sub.getTransform()
                if T is not None and T.getMatrix() is not None:
                    coord.setMatrix(np.array(T.getMatrix()))
                coords.append(coord)
            cset = subs.getCoordinates3D()
            if cset is None:
                raise ValueError("the subtomograms have no SetOfCoordinates3D: their "
                                 "coordinates' sampling rate is unknown")
            optics, parts = relion5_scipion.particle_star_table(coords, cset.getSamplingRate())
            blocks = {"general": {"rlnTomoSubTomosAre2DStacks": 0}, "particles": parts}
            if optics is not None:
                blocks["optics"] = optics
        else:
            tomos = self.inputCoordinates.get().getPrecedents()
            relion5_scipion.write_tilt_series_project(
                self._extra(), project, tsIds,
                {ts.getTsId(): ts.clone() for ts in self.inputTiltSeries.get().iterItems()},
                {c.getTsId(): c.clone() for c in self.inputCtfTomoSeries.get().iterItems()},
                {t.getTsId(): t.clone() for t in tomos.iterItems()} if tomos is not None
                else {},
                hand={constants.HAND_MINUS: -1.0,
                      constants.HAND_PLUS: 1.0}.get(self.handedness.get()),
                defocus_slope=self.defocusSlope.get() if self.defocusSlope.get() > 0 else None,
                scale_factor=("cos" if self.ctfScaleFactor.get() == constants.CTF_SCALE_COS
                              else "one"))
            cset = self.inputCoordinates.get()
            coords = [c.clone() for c in cset.iterCoordinates()
                      if c.isEnabled() and c.getTomoId() in set(tsIds)]
            blocks = relion5_scipion.coordinate_particle_blocks(coords, cset)
            parts = blocks["particles"]
            if "rlnRandomSubset" not in parts.columns and len(parts):
                counter = {}
                subsets = []
                for t in parts["rlnTomoName"]:
                    counter[t] = counter.get(t, 0) + 1
                    subsets.append(2 - counter[t] % 2)
                parts["rlnRandomSubset"] = subsets
        write_star(self._particlesStar(), blocks)

    def _commandArgs(self, threads):
        """The ``cryoprocs reconstruct`` options of this run (form -> command line)."""
        from ..commands.reconstruct import args_from_settings
        return ['--particles', self._particlesStar(), '--tomograms', self._tomogramsStar(),
                '--project-dir', self._projectDir(), '--output-dir', self._extra(),
                '--threads', str(threads)] + args_from_settings(self._settings(),
                                                                self._nonFinite())

    def _partialDone(self, job, tsId):
        """None when the saved partial sums of ``tsId`` are complete and those of this run's
        inputs and settings."""
        if job.partial_done(tsId):
            return None
        return ('%s is unreadable, incomplete or holds the sums of other inputs or settings'
                % job.partial_file(tsId))

    def backprojectTiltSeriesStep(self, tsId, nSteps):
        """One tilt series: ``cryoprocs reconstruct --tilt-series`` as this step's job (its
        partial sums in extra/partial/), then checked (sums saved before a restart are
        kept)."""
        self._prepareInput()
        job = self._job()
        if os.path.exists(job.partial_file(tsId)) and self._partialDone(job, tsId) is None:
            logger.info('tsId = %s: partial sums found, skipped', tsId)
            return
        threads = self._kernelThreads(nSteps)
        self._runCryoprocs('reconstruct', self._commandArgs(threads) + ['--tilt-series', tsId],
                           threads)
        self._requireResults('tsId %s' % tsId, [job.partial_file(tsId)],
                             lambda: self._partialDone(job, tsId))

    def _reportFile(self):
        return self._extra('reconstruction.json')

    def _mapsDone(self, job):
        """None when reconstruction.json and the maps are those of this run's inputs."""
        if read_json(self._reportFile()) is None:
            return 'no readable %s' % self._reportFile()
        return job.maps_problem()

    def reconstructStep(self, tsIds):
        """The final sum: ``cryoprocs reconstruct`` (it reuses the partial sums; with one tilt
        series it also backprojects it) as this step's job, then the outputs registered."""
        self._prepareInput()
        job = self._job()
        if not (os.path.exists(self._reportFile()) and self._mapsDone(job) is None):
            threads = self._totalThreads()
            self._runCryoprocs('reconstruct', self._commandArgs(threads) + ['--overwrite'],
                               threads)
            self._requireResults('final sum of %d tilt series' % len(tsIds),
                                 [self._reportFile()], lambda: self._mapsDone(job))
        self.createOutputStep()

    def createOutputStep(self):
        res = read_json(self._reportFile())
        project = self._projectDir()

        def rel(p):
            return os.path.relpath(p, project)
        avg = AverageSubTomogram()
        avg.setLocation(rel(res["files"]["merged"]))
        avg.setSamplingRate(res["pixel_size"])
        if res["half_sets"]:
            avg.setHalfMaps([rel(res["files"]["half1"]), rel(res["files"]["half2"])])
        outputs = {constants.OUTPUT_AVERAGE: avg}
        if res["fsc"] is not None:
            fsc = FSC(objLabel="FSC half maps")
            fsc.setData(res["fsc_frequencies"], res["fsc"])
            outputs[constants.OUTPUT_FSC] = fsc
        self._defineOutputs(**outputs)
        src = self.inputSubtomograms if self._fromSubtomos() else self.inputCoordinates
        self._defineSourceRelation(src, avg)
        if not self._fromSubtomos():
            self._defineSourceRelation(self.inputTiltSeries, avg)
            self._defineSourceRelation(self.inputCtfTomoSeries, avg)
        report = {k: res[k] for k in ("particles", "used", "skipped", "slices", "pixel_size",
                                      "box", "crop", "symmetry", "resolution",
                                      "resolution_at_nyquist", "half_sets", "warnings")}
        report["fsc_png"] = rel(res["files"]["fsc_png"]) if "fsc_png" in res["files"] else None
        report["unoriented"] = list(self._unoriented())
        self.reconstructionReport.set(json.dumps(report))
        self._store(self.reconstructionReport)

    # ================================================================= memory
    _memoryHelp = ('Peak memory of one tilt series: about 150 MB + 48 x box^3 bytes per '
                   'thread (half-set accumulators) + one tilt image; the final sum about 40 x '
                   'box^3 bytes + 150 MB (box 128: about 0.25 GB per thread, 0.25 GB final).')

    def _memoryItems(self):
        box = int(self.boxSize.get())
        tsIds = self._stepTsIds()
        threads = self._kernelThreads(len(tsIds)) if len(tsIds) > 1 else self._totalThreads()
        acc = 48.0 * box ** 3 / 2.0 ** 20
        items = [('tilt series %s' % t, COMMAND_BASE_MB + threads * acc + 64) for t in tsIds]
        items.append(('the final sum (box %d)' % box,
                      COMMAND_BASE_MB + 40.0 * box ** 3 / 2.0 ** 20))
        return items

    # ================================================================= info
    def _validate(self):
        errors = list(self._settings().errors())
        if self._fromSubtomos():
            subs = self.inputSubtomograms.get()
            if subs is None or subs.getSize() == 0:
                return errors + ['The input set of subtomograms is empty.']
            if self._isPseudoSubtomograms():
                return errors + self._validatePseudoSubtomograms(subs)
            if not relion5_scipion.attr(subs, "are2dStacks"):
                return errors + ['The subtomograms must be 2D-stack pseudo-subtomograms made '
                                 'by cryoprocs ExtractSubtomos (their RELION project gives the '
                                 'tilt series and CTFs).']
            parts, tomos = self._subtomoProject()
            if tomos is None or not os.path.exists(tomos):
                errors.append('The RELION project of the extraction (optimisation set %s) is '
                              'missing.' % relion5_scipion.attr(subs, "optimisationSet"))
                return errors
            known = set(relion5.read_tomograms(tomos)["rlnTomoName"])
            missing = sorted(set(self._coordTsIds()) - known)
            if missing:
                errors.append('Subtomograms of tsIds %s have no tilt series in %s.'
                              % (", ".join(missing[:10]), tomos))
            return errors
        cset = self.inputCoordinates.get()
        if cset is None or cset.getSize() == 0:
            return errors + ['The input set of coordinates is empty.']
        tsSet, ctfSet = self.inputTiltSeries.get(), self.inputCtfTomoSeries.get()
        if tsSet is None or ctfSet is None:
            return errors + ['Reconstruction from coordinates needs the tilt series and their '
                             'CTF tomo series.']
        coordIds = set(self._coordTsIds())
        tsInfo = {ts.getTsId(): (ts.hasAlignment(), ts.getSamplingRate(), ts.getDim())
                  for ts in tsSet.iterItems()}
        ctfIds = {c.getTsId() for c in ctfSet.iterItems()}
        noTs = sorted(coordIds - set(tsInfo))
        noCtf = sorted((coordIds & set(tsInfo)) - ctfIds)
        if noTs:
            errors.append('Coordinates of tsIds %s have no tilt series (tilt series: %s).'
                          % (", ".join(noTs[:10]), ", ".join(sorted(tsInfo)[:10])))
        if noCtf:
            errors.append('Tilt series %s have no CTF tomo series.' % ", ".join(noCtf[:10]))
        used = sorted(coordIds & set(tsInfo) & ctfIds)
        if not used:
            return errors + ['No coordinate belongs to a tilt series with a CTF.']
        unaligned = [t for t in used if not tsInfo[t][0]]
        if unaligned:
            errors.append('Tilt series %s have no alignment (the reconstruction needs the '
                          'tilt-image transforms).' % ", ".join(unaligned[:10]))
        srSet = tsSet.getSamplingRate()
        bad = ["%s (%.4f Å/px)" % (t, tsInfo[t][1]) for t in used
               if abs(tsInfo[t][1] - srSet) > SAMPLING_TOLERANCE * srSet]
        if bad:
            errors.append('Tilt series sampling rates %s differ from the set\'s %.4f Å/px.'
                          % (", ".join(bad), srSet))
        if not errors:
            s0, _ = relion_geometry.box_sizes(self.boxSize.get(), self.binning.get())
            small = ["%s (%d x %d px)" % (t, tsInfo[t][2][0], tsInfo[t][2][1]) for t in used
                     if tsInfo[t][2] and s0 > min(tsInfo[t][2][0], tsInfo[t][2][1])]
            if small:
                errors.append('The unbinned box of %d px (box %d x binning %g) is larger than '
                              'the tilt images of %s.' % (s0, self.boxSize.get(),
                                                          self.binning.get(), ", ".join(small)))
        return errors

    def _validatePseudoSubtomograms(self, subs):
        """scipion-em-reliontomo pseudo-subtomograms: their tomograms.star must exist and
        name every tsId of the particles (it gives the tilt series and their CTFs); RELION 4
        ones (pixel coordinates, RELION 4 projection matrices) are not read."""
        if not subs.areRe5Particles():
            return ['The pseudo-subtomograms %s were made with RELION 4; only RELION 5 '
                    'pseudo-subtomograms (centred coordinates in A, RELION 5 tilt-series '
                    'STAR files) can be averaged here.' % (subs.getObjLabel() or
                                                          type(subs).__name__)]
        _, tomos = self._subtomoProject()
        if tomos is None or not os.path.exists(tomos):
            return ['The RELION 5 pseudo-subtomograms have no readable tomograms.star (%s); '
                    'it gives their tilt series.' % subs.getTomogramsStar()]
        try:
            known = set(relion5.read_tomograms(tomos)["rlnTomoName"])
        except ValueError as exc:
            return [str(exc)]
        missing = sorted(set(self._coordTsIds()) - known)
        if missing:
            return ['Pseudo-subtomograms of tsIds %s have no tilt series in %s (tilt series: '
                    '%s).' % (", ".join(missing[:10]), tomos, ", ".join(sorted(known)[:10]))]
        return []

    def _unoriented(self):
        """``(n without orientation, n)`` of the enabled input particles: those whose
        rotation is the identity (coordinates picked or imported without angles), for which
        the average is a plain sum of unaligned particles."""
        if self._fromSubtomos():
            subs = self.inputSubtomograms.get()
            if subs is None:
                return 0, 0
            items = [p.clone() for p in subs.iterItems() if p.isEnabled()]
            if self._isPseudoSubtomograms():
                rots = [relion_euler_matrix(*(r[c] for c in relion5.SUBTOMO_COLUMNS))
                        @ relion_euler_matrix(*(r[c] for c in relion5.ANGLE_COLUMNS))
                        for r in reliontomo_scipion.pseudo_subtomogram_rows(
                            items, subs.getSamplingRate())]
            else:
                rots = [None if p.getTransform() is None else p.getTransform().getMatrix()
                        for p in items]
        else:
            cset = self.inputCoordinates.get()
            if cset is None:
                return 0, 0
            rots = [c.getMatrix() for c in cset.iterItems() if c.isEnabled()]
        n = sum(1 for M in rots
                if M is None or np.allclose(np.asarray(M)[:3, :3], np.eye(3), atol=1e-9))
        return n, len(rots)

    def _unorientedText(self, n, total):
        return ('%d of %d particles have no orientation (identity rotation): they are '
                'averaged as they lie in the tomogram, not aligned to each other. Import or '
                'pick them with their orientations for a subtomogram average.' % (n, total))

    def _warnings(self):
        w = []
        n, total = self._unoriented()
        if n:
            w.append(self._unorientedText(n, total))
        if not self._fromSubtomos() and self.inputTiltSeries.get() is not None:
            interp = [ts.getTsId() for ts in self.inputTiltSeries.get().iterItems()
                      if ts.interpolated()]
            if interp:
                w.append('Tilt series %s are interpolated: the reconstruction expects the '
                         'raw tilt images with their alignment.' % ", ".join(interp[:10]))
        if self._settings().symmetry != constants.DEFAULT_SYMMETRY:
            w.append('Symmetry %s is imposed in Fourier space on both half maps.'
                     % self._settings().symmetry)
        return w

    def _summary(self):
        if not self.reconstructionReport.get():
            return [NOT_READY]
        r = json.loads(self.reconstructionReport.get())
        lines = ['%d of %s reconstructed (%s); %d skipped (no tilt with '
                 'the particle at least %g px from the image edges%s).'
                 % (r["used"], plural(r["particles"], 'particle'),
                    plural(r["slices"], 'tilt image'), r["skipped"], r["box"] / 2.0,
                    ' within the maximum dose' if self.maxDose.get() > 0 else ''),
                 'Map: %d px at %.3f Å/px, symmetry %s%s.'
                 % (r["crop"], r["pixel_size"], r["symmetry"],
                    ', half maps attached' if r["half_sets"] else '')]
        if r["resolution"] is not None:
            lines.append('FSC 0.143 resolution between the half maps: %s%.2f Å.'
                         % ('<= ' if r["resolution_at_nyquist"] else '', r["resolution"]))
        elif r["half_sets"]:
            lines.append('The FSC between the half maps is below 0.143 at every shell.')
        else:
            lines.append('No two half sets with visible particles (rlnRandomSubset): no half '
                         'maps, no FSC.')
        if r.get("fsc_png"):
            lines.append('FSC plot: %s' % link(r["fsc_png"]))
        lines += ['Warning: %s.' % w.rstrip('.') for w in r.get("warnings", [])]
        if (r.get("unoriented") or [0])[0]:
            lines.append('Warning: %s' % self._unorientedText(*r["unoriented"]))
        return lines

    def _methods(self):
        if not self.reconstructionReport.get():
            return []
        r = json.loads(self.reconstructionReport.get())
        return ['A subtomogram average of %d particles was reconstructed from the tilt series '
                'with the algorithm of RELION 5 relion_tomo_reconstruct_particle [Burt2024]'
                '%s (box %d px at %.3f Å/px, symmetry %s) using cryoprocs [cryoprocs2026].'
                % (r["used"], ', CTF and dose weighting [Grant2015]' if self.doCtf.get()
                   else '', r["box"], r["pixel_size"], r["symmetry"])]

    def _citations(self):
        return ['Burt2024', 'Grant2015']


