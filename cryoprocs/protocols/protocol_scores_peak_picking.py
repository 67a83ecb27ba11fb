"""ScoresPeakPicking: oriented 3D coordinates from template-matching score and angle maps
(GAPSTOP, STOPGAP, pytom-match-pick), with cryoCAT ``scores_extract_particles`` semantics and
an order of magnitude less time and memory.

The maths is in :mod:`cryoprocs.kernels.peaks` (see docs/peak-picking.md), the file
handling in :mod:`cryoprocs.pipelines.peaks`. This module maps Scipion objects to those calls and
the picks back to a ``SetOfCoordinates3D``:

* picks are 0-based voxels of the score map; they are placed in the tomograms the coordinates
  refer to through the physical offset from the volume centres (identical voxels when the
  score map and the tomogram share size and sampling), with ``setPosition(...,
  BOTTOM_LEFT_CORNER)`` after ``setVolume`` (Scipion's bottom-left corner = 0-based voxel; the
  1-based cryoCAT/STOPGAP motive lists are converted);
* orientations go through RELION angles (``rot = 90 - phi, tilt = theta, psi = -90 - psi``) and
  scipion-em-reliontomo's matrix route (:func:`cryoprocs.convert.scipion.set_relion_orientation`).
"""
import logging
import os

import numpy as np
import pyworkflow.protocol.params as params
from pyworkflow import BETA
from pyworkflow.object import Float, Integer
from pyworkflow.protocol.constants import LEVEL_ADVANCED
from tomo.objects import Coordinate3D, SetOfCoordinates3D, SetOfTomograms, Tomogram

from .. import constants
from ..constants import SAMPLING_TOLERANCE
from ..convert.euler import zxz_to_relion
from ..convert.mrc import atomic_output
from ..convert.scipion import set_coordinate, set_relion_orientation
from ..kernels import peaks
from ..pipelines import peaks as peaks_pipeline
from .protocol_base import COMMAND_BASE_MB, NOT_READY, ProtCryoprocsBase, read_json, write_json
from .texts import link, plural

logger = logging.getLogger(__name__)

ANGDIST_KINDS = (("total", constants.OUTPUT_ANGDIST_TOTAL),
                 ("normal", constants.OUTPUT_ANGDIST_NORMAL),
                 ("inplane", constants.OUTPUT_ANGDIST_INPLANE))


def map_to_tomogram(xyz, map_dims, map_sr, tomo_dims, tomo_sr):
    """0-based voxel ``(x, y, z)`` of a score map -> 0-based voxel of the tomogram, keeping the
    physical offset from the volume centres: ``(x - n/2) * sr_map / sr_tomo + n_tomo/2``."""
    xyz = np.asarray(xyz, dtype=np.float64)
    f = float(map_sr) / float(tomo_sr)
    return (xyz - np.asarray(map_dims, float) / 2.0) * f + np.asarray(tomo_dims, float) / 2.0


class ProtCryoprocsScoresPeakPicking(ProtCryoprocsBase):
    """Pick oriented particles in template-matching score maps (GAPSTOP, STOPGAP, pytom) with
    cryoCAT's rules: voxels above a threshold, visited in descending score, kept when no earlier
    pick is within the minimum distance; the orientation is the angle-list row stored in the
    angle map. Exact cryoCAT results in cryoCAT-compatible mode, about 10-30 times faster, with
    diagnostics (score histogram, sorted scores, expected false positives) per tomogram.
    One step per score map runs `cryoprocs pick` (one cluster job per map with "Use queue for
    jobs"); peak memory per map about 0.4 x its float32 size + 200 MB."""
    _label = 'scores peak picking'
    _devStatus = BETA
    _possibleOutputs = {constants.OUTPUT_COORDINATES: SetOfCoordinates3D,
                        constants.OUTPUT_ANGDIST_TOTAL: SetOfTomograms,
                        constants.OUTPUT_ANGDIST_NORMAL: SetOfTomograms,
                        constants.OUTPUT_ANGDIST_INPLANE: SetOfTomograms}

    # ================================================================= form
    def _defineParams(self, form):
        form.addSection(label='Input')
        form.addParam('inputScoreMaps', params.PointerParam, pointerClass='SetOfTomograms',
                      important=True, label='Score maps',
                      help='Template-matching score maps (GAPSTOP scores_*.mrc, STOPGAP '
                           'scores, pytom *_scores.mrc) imported as tomograms; the tsId of '
                           'each map (e.g. import with a {TS} pattern such as '
                           'scores_0_{TS}.mrc) matches it with its angle map and tomogram.')
        form.addParam('inputAngleMaps', params.PointerParam, pointerClass='SetOfTomograms',
                      important=True, label='Angle maps',
                      help='Angle-index maps of the same template matching, same dimensions '
                           'as the score maps: each voxel holds the row of the angle list '
                           'that gave its score. Only the values at the picks are read.')
        form.addParam('angleList', params.FileParam, important=True, label='Angle list file',
                      help='The angle list of the search: a CSV text file with 3 columns and '
                           'no header, one rotation per row, in degrees (GAPSTOP '
                           'angles_<sampling>_C<n>.txt, STOPGAP anglist .csv). The run works '
                           'on its own copy (extra/angle_list.*).')
        form.addParam('anglesOrder', params.EnumParam, choices=constants.PEAKS_ORDER_CHOICES,
                      default=constants.PEAKS_ORDER_ZXZ, label='Angle list column order',
                      help='zxz: columns phi, theta, psi (GAPSTOP, cryoCAT). zzx: columns '
                           'phi, psi, theta (STOPGAP lists). Angles are zxz Euler angles '
                           '(TOM/STOPGAP convention) in both cases.')
        form.addParam('anglesNumbering', params.EnumParam,
                      choices=constants.PEAKS_NUMBERING_CHOICES,
                      default=constants.PEAKS_NUMBERING_0, label='Angle map numbering',
                      help='0-based: value v is row v of the list (GAPSTOP). 1-based: value v '
                           'is row v-1 (STOPGAP). Checked against the list length: a value '
                           'outside it stops the run with the offending values.')
        form.addParam('inputTomograms', params.PointerParam, pointerClass='SetOfTomograms',
                      important=True, label='Tomograms the coordinates refer to',
                      help='The output coordinates belong to these tomograms (matched by '
                           'tsId) and are expressed in their pixels: positions are scaled by '
                           'the ratio of the score-map and tomogram sampling rates, keeping '
                           'the offset from the volume centres.')
        form.addParam('inputMasks', params.PointerParam, pointerClass='SetOfTomoMasks',
                      allowsNull=True, label='Tomogram masks (optional)',
                      help='Masks with the dimensions of the score maps, matched by tsId, '
                           'restricting where particles are picked (import them with the '
                           'score maps as their tomograms).')
        form.addSection(label='Picking')
        form.addParam('cryocatCompatible', params.BooleanParam, default=False,
                      label='cryoCAT-compatible?',
                      help='Reproduce cryoCAT 0.7.1 scores_extract_particles exactly: its '
                           'order among equal scores, scores multiplied by the mask, no '
                           'border exclusion and no peak filters.')

        form.addParam('maskMode', params.EnumParam, choices=constants.PEAKS_MASK_CHOICES,
                      default=constants.PEAKS_MASK_MULTIPLY, condition='not cryocatCompatible',
                      label='Mask use',
                      help='Multiply: the scores are multiplied by the mask before the '
                           'threshold statistics, as cryoCAT does (masked-out zeros lower the '
                           'mean and raise the std). Inside: statistics and candidates only '
                           'where the mask is > 0, scores unchanged.')

        form.addParam('minDistance', params.FloatParam, default=10.0,
                      validators=[params.Positive], label='Minimum distance between picks (px)',
                      help='In pixels of the score maps. A candidate within this distance '
                           '(<=) of a higher-scoring pick is not picked, so picks are more '
                           'than this apart. This is cryoCAT\'s "particle_diameter" (it acts '
                           'as this distance, i.e. a radius) and scipion-em-gapstop\'s '
                           '"particle diameter (px)"; pytom uses half its diameter.')
        form.addParam('thresholdMode', params.EnumParam, choices=constants.PEAKS_THR_CHOICES,
                      default=constants.PEAKS_THR_FALSE_POSITIVES, label='Threshold',
                      help='Voxels strictly above the threshold are candidates. *Direct '
                           'value*: a score. *mean + k std*: of the (masked) map, NumPy '
                           'float32 statistics as cryoCAT. *Percentile*: of the map values '
                           '(scipion-em-gapstop default 99.5). *Triangle*: cryoCAT\'s default, '
                           'the knee of the sorted scores; lenient, most picks are noise. '
                           '*Expected false positives*: mean + k std with k such that a '
                           'Gaussian background gives this many false positives per '
                           'tomogram (k = sqrt(2) erfcinv(2 nFP / voxels)).')
        form.addParam('threshold', params.FloatParam, default=0.2,
                      condition='thresholdMode == %d' % constants.PEAKS_THR_DIRECT,
                      label='Score threshold', help='Candidates have a score > this value.')
        form.addParam('sigma', params.FloatParam, default=3.0,
                      condition='thresholdMode == %d' % constants.PEAKS_THR_SIGMA,
                      label='k (number of standard deviations)',
                      help='Threshold = mean + k std(ddof=1) of the map (cryoCAT '
                           'sigma_threshold).')
        form.addParam('percentile', params.FloatParam, default=99.5,
                      condition='thresholdMode == %d' % constants.PEAKS_THR_PERCENTILE,
                      validators=[params.Range(0, 100)], label='Percentile (%)',
                      help='Threshold = this percentile of the map values (NumPy linear '
                           'interpolation, computed exactly without sorting the map).')
        form.addParam('nFalsePositives', params.FloatParam, default=10.0,
                      condition='thresholdMode == %d' % constants.PEAKS_THR_FALSE_POSITIVES,
                      validators=[params.Positive], label='Expected false positives per tomogram',
                      help='Number of background voxels expected above the threshold if the '
                           'background were Gaussian with the map\'s mean and std '
                           '(Rickgauer et al. 2017). Real maps have heavier tails: use it as a '
                           'scale, check the diagnostics.')
        form.addParam('maxPicks', params.IntParam, default=-1, label='Maximum picks per tomogram',
                      help='Stop after this many picks (cryoCAT n_particles); -1 = all. The '
                           'result equals the first picks of the full list.')
        form.addParam('boxSize', params.IntParam, default=-1,
                      label='Box size (px)',
                      help='Box size of the output coordinates, in pixels of the tomograms; '
                           '-1 = the minimum distance scaled to the tomograms.')
        form.addParam('symmetry', params.StringParam, default=constants.DEFAULT_SYMMETRY,
                      label='Symmetry',
                      help='Cyclic symmetry C<n> of the angle search. With n > 1 the angle '
                           'list covers phi in [0, 360/n); each pick gets a random multiple '
                           'of 360/n added to phi (seeded, wrapped to [0, 360)), as STOPGAP and '
                           'cryoCAT do, to avoid a preferred orientation in averaging.')
        form.addParam('randomizeSymmetry', params.BooleanParam, default=True,
                      expertLevel=LEVEL_ADVANCED, label='Randomise phi by the symmetry?',
                      help='Only with C<n>, n > 1: add the random multiple of 360/n to phi.')
        form.addParam('seed', params.IntParam, default=0, expertLevel=LEVEL_ADVANCED,
                      label='Random seed', help='Seed of the symmetry randomisation.')
        form.addSection(label='Filters')
        form.addParam('border', params.IntParam, default=0, validators=[params.GE(0)],
                      condition='not cryocatCompatible', label='Border exclusion (px)',
                      help='No pick closer than this many score-map pixels to a face of the '
                           'map (template matching is unreliable where the template leaves '
                           'the volume). 0 = none, as cryoCAT.')
        form.addParam('minPeakSize', params.IntParam, default=0, validators=[params.GE(0)],
                      condition='not cryocatCompatible', label='Minimum peak size (voxels)',
                      help='STOPGAP cluster_size: a peak needs at least this many voxels above '
                           'the threshold within the minimum distance (itself included). '
                           'Rejects isolated noise spikes; a rejected peak still excludes its '
                           'neighbourhood, as in STOPGAP. 0 = off.')
        form.addParam('angularFilter', params.BooleanParam, default=False,
                      condition='not cryocatCompatible', label='Angular consistency filter?',
                      help='cryoCAT select_peaks idea: a true peak is surrounded by voxels '
                           'whose best orientation is close to its own.')
        form.addParam('angularMinCount', params.IntParam, default=4,
                      condition='angularFilter and not cryocatCompatible',
                      label='Consistent voxels needed',
                      help='Minimum number of voxels around the peak with an orientation '
                           'within the angle below of the peak\'s.')
        form.addParam('angularMaxAngle', params.FloatParam, default=20.0,
                      condition='angularFilter and not cryocatCompatible',
                      label='Maximum angular distance (deg)',
                      help='Rotation angle between the two orientations (C<n> copies '
                           'considered).')
        form.addParam('angularRadius', params.FloatParam, default=2.0,
                      condition='angularFilter and not cryocatCompatible',
                      label='Neighbourhood radius (px)',
                      help='Voxels within this distance of the peak (the peak excluded) are '
                           'examined.')

        form.addSection(label='Outputs')
        form.addParam('writeAngularMaps', params.BooleanParam, default=False,
                      label='Angular distance maps?',
                      help='Also output, per tomogram, maps of the angular distance of each '
                           'voxel\'s orientation to the first row of the angle list (total '
                           'rotation, particle normal, in-plane), as cryoCAT '
                           'create_angular_distance_maps. Three float32 volumes per map.')
        self._defineNonFiniteParam(form)
        form.addParallelSection(threads=2, mpi=0)

    # ================================================================= helpers
    def _options(self):
        compat = bool(self.cryocatCompatible.get())
        af = None
        if self.angularFilter.get() and not compat:
            af = {"min_count": int(self.angularMinCount.get()),
                  "max_angle": float(self.angularMaxAngle.get()),
                  "radius": float(self.angularRadius.get())}
        return peaks_pipeline.PickOptions(
            min_distance=float(self.minDistance.get()),
            threshold_mode=constants.PEAKS_THR_MODES[self.thresholdMode.get()],
            threshold=self.threshold.get(), sigma=self.sigma.get(),
            percentile=self.percentile.get(), n_false_positives=self.nFalsePositives.get(),
            max_picks=None if self.maxPicks.get() in (None, -1, 0) else int(self.maxPicks.get()),
            border=0 if compat else int(self.border.get() or 0),
            mask_mode="multiply" if compat else constants.PEAKS_MASK_MODES[self.maskMode.get()],
            angles_order=constants.PEAKS_ORDERS[self.anglesOrder.get()],
            angles_numbering=int(self.anglesNumbering.get()),
            symmetry=self.symmetry.get() or constants.DEFAULT_SYMMETRY,
            randomize_symmetry=bool(self.randomizeSymmetry.get()), seed=int(self.seed.get()),
            min_peak_size=None if compat or not self.minPeakSize.get()
            else int(self.minPeakSize.get()),
            angular_filter=af, compatible=compat)

    def _matchItems(self):
        """``(items, unmatched)``: ``items = {tsId: (score, angle, tomo, mask)}`` (clones).

        Items are matched by tsId; when no tsId is shared and every set holds one item, the
        single items are paired (a warning in the summary)."""
        sc = self._byTsId(self.inputScoreMaps.get())
        an = self._byTsId(self.inputAngleMaps.get())
        to = self._byTsId(self.inputTomograms.get())
        ma = self._byTsId(self.inputMasks.get()) if self.inputMasks.get() is not None else None
        keys, unmatched = self._matchTsIds([("score maps", sc), ("angle maps", an),
                                            ("tomograms", to), ("masks", ma)])
        if not keys and len(sc) == len(an) == len(to) == 1 and (ma is None or len(ma) == 1):
            ts = next(iter(to))
            item = (next(iter(sc.values())), next(iter(an.values())), to[ts],
                    next(iter(ma.values())) if ma else None)
            return {ts: item}, ["paired the single score map, angle map and tomogram "
                                "although their tsIds differ (%s, %s, %s)"
                                % (next(iter(sc)), next(iter(an)), ts)]
        return {k: (sc[k], an[k], to[k], ma[k] if ma else None) for k in keys}, unmatched

    def _angleListFile(self):
        """The run's own copy of the angle list, ``extra/angle_list<ext>``, made on first use
        (under the protocol lock: steps are threads). The run reads only the copy, as Scipion
        imports copy their files: a moved project or a changed original does not matter."""
        import shutil
        src = self._projectPath(self.angleList.get())
        ext = os.path.splitext(src)[1] or '.txt'
        dst = self._projectPath(self._getExtraPath('angle_list' + ext))
        with self._lock:
            if not os.path.exists(dst):
                with atomic_output(dst) as tmp:
                    shutil.copyfile(src, tmp)
        return dst

    def _picksFile(self, tsId):
        return self._tsIdPath(tsId, '_picks.npz')

    def _csvFile(self, tsId):
        return self._tsIdPath(tsId, '_picks.csv')

    def _diagFile(self, tsId):
        return self._tsIdPath(tsId, '_diagnostics.png')

    def _angdistFile(self, tsId, kind):
        return self._tsIdPath(tsId, '_angdist_%s.mrc' % kind)

    def _mapSr(self):
        return self.inputScoreMaps.get().getSamplingRate()

    def _tomoSr(self):
        return self.inputTomograms.get().getSamplingRate()

    # ================================================================= steps
    def _insertAllSteps(self):
        items, _ = self._matchItems()
        # file paths are passed as step arguments: steps run in threads and read no sets
        args = [(ts, self._projectPath(s.getFileName()), self._projectPath(a.getFileName()),
                 self._projectPath(m.getFileName()) if m is not None else None, self._mapSr(),
                 len(items)) for ts, (s, a, _t, m) in items.items()]
        ids = self._insertItemSteps(self.pickStep, args)
        self._insertFunctionStep(self.createOutputStep, prerequisites=ids, needsGPU=False)

    def _results(self, tsId):
        files = [self._csvFile(tsId), self._diagFile(tsId), self._picksFile(tsId)]
        if self.writeAngularMaps.get():
            files += [self._angdistFile(tsId, k) for k, _ in ANGDIST_KINDS]
        return files

    def _done(self, tsId):
        """None when the pick of ``tsId`` is complete (the .npz result is written last)."""
        try:
            _, extra = peaks_pipeline.load_result(self._picksFile(tsId))
        except (OSError, ValueError, KeyError) as exc:
            return 'unreadable result %s (%s)' % (self._picksFile(tsId), exc)
        if extra.get('tsId') != tsId:
            return 'the result %s is that of tsId %s' % (self._picksFile(tsId), extra.get('tsId'))
        return None

    def _commandArgs(self, tsId, scorePath, anglePath, maskPath, mapSr):
        """The ``cryoprocs pick`` options of one score map (form -> command line)."""
        from ..commands.pick import args_from_options
        args = ['--scores', scorePath, '--angles', anglePath,
                '--angle-list', self._angleListFile(),
                '--output', os.path.abspath(self._csvFile(tsId)),
                '--diagnostics', os.path.abspath(self._diagFile(tsId)),
                '--result', os.path.abspath(self._picksFile(tsId)),
                '--tomo-name', tsId, '--overwrite']
        if maskPath:
            args += ['--tomo-mask', maskPath]
        if mapSr:
            args += ['--pixel-size', repr(float(mapSr))]
        if self.writeAngularMaps.get():
            args += ['--angular-distance-maps'] + [os.path.abspath(self._angdistFile(tsId, k))
                                                   for k, _ in ANGDIST_KINDS]
        return args + args_from_options(self._options(), self._nonFinite())

    def pickStep(self, tsId, scorePath, anglePath, maskPath, mapSr, nSteps):
        """One score map: ``cryoprocs pick`` as this step's job, then its results checked
        (a map picked before a restart is kept)."""
        results = self._results(tsId)
        if all(os.path.exists(p) for p in results) and self._done(tsId) is None:
            logger.info('tsId = %s: picked before, skipped', tsId)
            return
        threads = self._kernelThreads(nSteps)
        self._runCryoprocs('pick', self._commandArgs(tsId, scorePath, anglePath, maskPath,
                                                     mapSr), threads)
        self._requireResults('tsId %s' % tsId, results, lambda: self._done(tsId))
        result, _ = peaks_pipeline.load_result(self._picksFile(tsId))
        logger.info('tsId = %s -> %s', tsId, peaks_pipeline.result_summary(result))

    def createOutputStep(self):
        items, unmatched = self._matchItems()
        mapSr, tomoSr = self._mapSr(), self._tomoSr()
        opts = self._options()
        box = int(self.boxSize.get())
        if box <= 0:
            box = max(1, int(round(opts.min_distance * mapSr / tomoSr)))
        coords = SetOfCoordinates3D.create(self._getPath())
        coords.setPrecedents(self.inputTomograms)
        coords.setSamplingRate(tomoSr)
        coords.setBoxSize(box)
        summary = {"tomograms": {}, "unmatched": unmatched, "box_size": box,
                   "options": opts.describe()}
        picks = []
        for tomoNum, (tsId, (score, _angle, tomo, _mask)) in enumerate(items.items(), start=1):
            r, _ = peaks_pipeline.load_result(self._picksFile(tsId))
            mapDims = score.getDim()
            tomoDims = tomo.getDim()
            xyz = map_to_tomogram(np.asarray(r.coords)[:, ::-1], mapDims, mapSr, tomoDims,
                                  tomoSr)
            ang = np.asarray(r.angles).reshape(-1, 3)
            rot, tilt, psi = zxz_to_relion(ang[:, 0], ang[:, 1], ang[:, 2])
            for k in range(len(xyz)):
                c = Coordinate3D()
                set_coordinate(c, tomo, *xyz[k])
                c.setScore(float(r.scores[k]))
                c.setGroupId(tomoNum)
                set_relion_orientation(c, rot[k], tilt[k], psi[k])
                c._cryoprocsPhi = Float(float(ang[k, 0]))
                c._cryoprocsTheta = Float(float(ang[k, 1]))
                c._cryoprocsPsi = Float(float(ang[k, 2]))
                c._cryoprocsAngleIndex = Integer(int(r.angle_rows[k]))
                coords.append(c)
            picks.append(peaks_pipeline.TomogramPicks(xyz, r.scores, ang, tomo_name=tsId,
                                                      tomo_id=tomoNum,
                                                      shape_xyz=tomoDims, pixel_size=tomoSr))
            summary["tomograms"][tsId] = {
                "tomo_num": tomoNum, "line": peaks_pipeline.result_summary(r),
                "threshold": float(r.threshold), "candidates": int(r.n_candidates),
                "picks": len(xyz), "expected_false_positives":
                    float(r.expected_false_positives), "messages": r.messages}
        if picks:
            peaks_pipeline.export_picks(self._getExtraPath(constants.PEAKS_EM_MOTL), picks)
            peaks_pipeline.export_picks(self._getExtraPath(constants.PEAKS_STOPGAP_STAR), picks,
                                        star_format="stopgap")
            if sum(len(p.scores) for p in picks):
                peaks_pipeline.export_picks(self._getExtraPath(constants.PEAKS_RELION5_STAR), picks)
        write_json(self._getExtraPath(constants.PEAKS_SUMMARY_JSON), summary, indent=1)
        outputs = {constants.OUTPUT_COORDINATES: coords}
        if self.writeAngularMaps.get():
            outputs.update(self._angularMapSets(items))
        self._defineOutputs(**outputs)
        for src in (self.inputScoreMaps, self.inputAngleMaps, self.inputTomograms):
            self._defineSourceRelation(src, coords)

    def _angularMapSets(self, items):
        out = {}
        for kind, name in ANGDIST_KINDS:
            s = SetOfTomograms.create(self._getPath(), suffix='angdist_%s' % kind)
            s.setSamplingRate(self._mapSr())
            for tsId, (_score, angle, _tomo, _mask) in items.items():
                t = Tomogram()
                t.copyInfo(angle)
                t.setLocation(self._angdistFile(tsId, kind))
                s.append(t)
            out[name] = s
        return out

    # ================================================================= memory
    _memoryHelp = ('Peak memory of one score map: about 0.4 x its size as float32 (0.25 x '
                   'with a mean + k std threshold; more with a very lenient threshold, whose '
                   'candidates are kept) + 200 MB; a 1000 x 1000 x 300 map (1.2 GB) needs '
                   'about 0.7 GB.')

    def _memoryItems(self):
        items = []
        for tsId, (score, _a, _t, _m) in self._matchItems()[0].items():
            x, y, z = score.getDim()
            items.append(('tsId %s (%d x %d x %d)' % (tsId, x, y, z),
                          0.4 * x * y * z * 4 / 2.0 ** 20 + COMMAND_BASE_MB + 50))
        return items

    # ================================================================= info
    def _validate(self):
        errors = []
        try:
            items, _ = self._matchItems()
        except Exception as exc:                    # e.g. sets not ready
            return ['Cannot read the inputs: %s' % exc]
        if not items:
            ids = lambda s: ", ".join(sorted(t.getTsId() for t in s)) if s else "none"  # noqa
            return ['No tsId is shared by the score maps (%s), the angle maps (%s)%s and the '
                    'tomograms (%s).' % (ids(self.inputScoreMaps.get()),
                                         ids(self.inputAngleMaps.get()),
                                         ', the masks (%s)' % ids(self.inputMasks.get())
                                         if self.inputMasks.get() is not None else '',
                                         ids(self.inputTomograms.get()))]
        path = self.angleList.get()
        n_angles = None
        if not path:
            errors.append('Give the angle list file.')
        else:
            try:
                order = constants.PEAKS_ORDERS[self.anglesOrder.get()]
                n_angles = len(peaks.load_angle_list(self._projectPath(path), order))
            except (peaks.PeakPickingError, OSError) as exc:
                errors.append(str(exc))
        srS = self.inputScoreMaps.get().getSamplingRate()
        srA = self.inputAngleMaps.get().getSamplingRate()
        if srS and srA and abs(srS - srA) > SAMPLING_TOLERANCE * srS:
            errors.append('The score maps (%.4f Å/px) and the angle maps (%.4f Å/px) have '
                          'different sampling rates.' % (srS, srA))
        masks = self.inputMasks.get()
        srM = masks.getSamplingRate() if masks is not None else None
        if srS and srM and abs(srS - srM) > SAMPLING_TOLERANCE * srS:
            errors.append('The masks (%.4f A/px) and the score maps (%.4f A/px) have sampling '
                          'rates that differ by more than %d %%.'
                          % (srM, srS, SAMPLING_TOLERANCE * 100))
        for tsId, (score, angle, _tomo, mask) in items.items():
            diagonal = float(np.sqrt(sum((int(d) - 1) ** 2 for d in score.getDim())))
            if not self.minDistance.get() <= diagonal:
                errors.append('tsId %s: the minimum distance %g voxels is larger than the score '
                              'map (%s voxels, diagonal %.1f).'
                              % (tsId, self.minDistance.get(), score.getDim(), diagonal))
            if tuple(score.getDim()) != tuple(angle.getDim()):
                errors.append('tsId %s: the angle map has %s voxels (x, y, z) but the score map '
                              'has %s.' % (tsId, angle.getDim(), score.getDim()))
            if mask is not None and tuple(mask.getDim()) != tuple(score.getDim()):
                errors.append('tsId %s: the mask has %s voxels (x, y, z) but the score map has '
                              '%s.' % (tsId, mask.getDim(), score.getDim()))
            elif mask is not None:
                errors += self._emptyMaskErrors(tsId, mask)
            if n_angles is not None:
                rng = peaks_pipeline.header_value_range(self._projectPath(angle.getFileName()))
                if rng is not None:
                    lo, hi = rng
                    num = int(self.anglesNumbering.get())
                    if int(lo) - num < 0 or int(hi) - num >= n_angles:
                        errors.append(
                            'tsId %s: the angle map holds values %g..%g (header statistics) but '
                            'with %d-based numbering the %d-row angle list accepts %d..%d.%s'
                            % (tsId, lo, hi, num, n_angles, num, n_angles - 1 + num,
                               ' Use 0-based numbering.' if num == 1 and lo == 0 else
                               ' Use 1-based numbering.' if num == 0 and hi == n_angles
                               else ''))
        if self.thresholdMode.get() == constants.PEAKS_THR_FALSE_POSITIVES and \
                not self.nFalsePositives.get() > 0:
            errors.append('The expected number of false positives must be > 0.')
        try:
            peaks.symmetry_order(self.symmetry.get() or constants.DEFAULT_SYMMETRY)
        except peaks.PeakPickingError as exc:
            errors.append(str(exc))
        return errors

    def _emptyMaskErrors(self, tsId, mask):
        """An all-zero mask picks nothing (and gives NaN threshold statistics)."""
        path = self._projectPath(mask.getFileName())
        try:
            top = peaks_pipeline.volume_max(path)
        except (OSError, ValueError):         # unreadable: the run reports it
            return []
        if top > 0:
            return []
        return ['tsId %s: the mask %s has no voxel > 0 (maximum %g): nothing can be picked '
                'there. Check the mask or leave the masks empty.' % (tsId, path, top)]

    def _warnings(self):
        warnings = []
        if self.thresholdMode.get() == constants.PEAKS_THR_TRIANGLE:
            warnings.append('The triangle threshold (cryoCAT\'s default) is lenient: on '
                            'synthetic maps about 9 picks in 10 are noise. Consider the '
                            'expected-false-positives threshold or a maximum number of picks.')
        try:
            _, unmatched = self._matchItems()
            warnings.extend(unmatched)
        except Exception:
            pass
        return warnings

    def _summary(self):
        s = read_json(self._getExtraPath(constants.PEAKS_SUMMARY_JSON))
        if s is None:
            return [NOT_READY]
        out = ['%s in %s (box %d px): %s.'
               % (plural(sum(t["picks"] for t in s["tomograms"].values()), 'coordinate'),
                  plural(len(s["tomograms"]), 'tomogram'), s["box_size"], s["options"])]
        for tsId, t in s["tomograms"].items():
            out.append('*%s*: %s' % (tsId, t["line"]))
            if not t["picks"]:
                out.append('   %s: no voxel above the threshold; no coordinates.' % tsId)
        out.extend(s["unmatched"])
        out.append('Exports: %s, %s, %s'
                   % (link(self._getExtraPath(constants.PEAKS_RELION5_STAR)),
                      link(self._getExtraPath(constants.PEAKS_STOPGAP_STAR)),
                      link(self._getExtraPath(constants.PEAKS_EM_MOTL))))
        diags = [link(self._diagFile(tsId)) for tsId in s["tomograms"]
                 if os.path.exists(self._diagFile(tsId))]
        if diags:
            out.append('Diagnostics: %s' % ', '.join(diags))
        return out

    def _methods(self):
        if not self.isFinished():
            return []
        return ['Particles were picked in template-matching score maps with the rules of '
                'cryoCAT scores_extract_particles [cryoCAT] (%s) using cryoprocs '
                '[cryoprocs2026].' % self._options().describe()]

    def _citations(self):
        cites = ['cryoCAT']
        if self.thresholdMode.get() == constants.PEAKS_THR_FALSE_POSITIVES:
            cites.append('Rickgauer2017')
        return cites
