"""MaskedTomogramNoiseFill: keep each tomogram inside its expanded mask and fill the rest
with noise matching the tomogram's background, at full tomogram size.

Maps Scipion objects to :func:`cryoprocs.pipelines.noisefill.noise_fill_file` (the maths is in
:mod:`cryoprocs.kernels.noisefill`, see docs/noise-fill.md). Model protocol for the
set handling: scipion-em-tomo ``ProtTomoApplyTomoMask`` (per-tsId parallel steps, tsId
matching, non-matching tsIds reported).
"""
import logging
import os

import pyworkflow.protocol.params as params
from pyworkflow import BETA
from pyworkflow.object import String
from pyworkflow.protocol.constants import LEVEL_ADVANCED
from tomo.objects import SetOfTomograms, SetOfTomoMasks, Tomogram, TomoMask

from .. import constants
from ..constants import SAMPLING_TOLERANCE
from ..convert.mrc import MrcFormatError, is_complete_mrc, mrc_info
from ..kernels import noisefill
from .protocol_base import COMMAND_BASE_MB, NOT_READY, ProtCryoprocsBase, read_json
from .texts import link, plural

logger = logging.getLogger(__name__)


class ProtCryoprocsMaskedTomogramNoiseFill(ProtCryoprocsBase):
    """Keep every tomogram inside its mask plus a margin and replace the rest by noise with
    the mean, standard deviation (and optionally power spectrum) of the tomogram's own
    background, with a soft edge: for template matching, training data, denoising or display.
    Masks (segmentations, label maps) are matched to tomograms by tsId, or one volume mask is
    used for all. A parity mode reproduces TomoPANDA's extract_masked_tomogram.py exactly.
    One step per tomogram runs `cryoprocs noise-fill` (one cluster job per tomogram with "Use
    queue for jobs"). Peak memory per tomogram (measured, 300x1024x1024 float32 = 1.26 GB, 10 %
    mask): 1.0-1.6x the tomogram for expansions up to 50 px, 2.3x in parity mode, + 150 MB."""
    _label = 'masked tomogram noise fill'
    _devStatus = BETA
    _possibleOutputs = {constants.OUTPUT_NOISE_FILLED_TOMOS: SetOfTomograms,
                        constants.OUTPUT_NOISE_FILL_MASKS: SetOfTomoMasks}

    def __init__(self, **kwargs):
        super().__init__(**kwargs)
        self.unmatchedTsIds = String()

    # ================================================================= form
    def _defineParams(self, form):
        form.addSection(label='Input')
        form.addParam('inputTomograms', params.PointerParam, pointerClass='SetOfTomograms',
                      important=True, label='Tomograms',
                      help='Tomograms to fill. Each output tomogram is float32 with the same '
                           'dimensions, sampling rate, tsId and origin.')
        form.addParam('inputMasks', params.PointerParam,
                      pointerClass='SetOfTomoMasks, VolumeMask', important=True,
                      label='Masks',
                      help='A set of tomo masks (segmentations or label maps), matched to the '
                           'tomograms by tsId (tomograms without a mask are skipped and named '
                           'in the summary), or one volume mask used for every tomogram. Each '
                           'mask needs the dimensions of its tomogram and a sampling rate '
                           'within 1 %.')
        form.addParam('parityMode', params.BooleanParam, default=False,
                      label='Reproduce TomoPANDA script?',
                      help='Yes: reproduce extract_masked_tomogram.py (TomoPANDA 8852acc) '
                           'voxel for voxel: mask/255 if its maximum > 1, then > 0.5; a '
                           '(2N+1)^3 cube expansion for N <= 10 (unless "fast") and a '
                           'Euclidean ball above; its Gaussian blur + 0.5 re-threshold; its '
                           'open/close; noise of mean "background value" and std "noise '
                           'std" x the global std from np.random.seed(seed). Its noise mean '
                           '(0) leaves an intensity step at the mask boundary. Peak memory '
                           'about 2.3x the tomogram (the script\'s global std).')

        form.addParam('maskThreshold', params.FloatParam, default=0.5,
                      condition='not parityMode', label='Mask threshold',
                      help='Voxels with mask value > threshold are inside. 0.5 suits 0/1 and '
                           '0/255 masks and keeps every label of a label map (all labels > '
                           '0.5); use 127.5 for a 0..255 probability map.')
        form.addParam('invertMask', params.BooleanParam, default=False,
                      condition='not parityMode', label='Invert mask?',
                      help='Yes: fill the expanded mask (e.g. gold beads, carbon) with noise '
                           'and keep the rest. The expansion and soft edge still apply to the '
                           'mask, and the noise statistics come from the voxels outside it.')
        form.addSection(label='Expansion')
        cryo = 'not parityMode'
        form.addParam('expansionMode', params.EnumParam, choices=constants.NF_EXPANSION_CHOICES,
                      default=constants.NF_EXPANSION_EUCLIDEAN, condition=cryo,
                      display=params.EnumParam.DISPLAY_HLIST, label='Expansion',
                      help='*Euclidean distance*: keep every voxel within the exact distance '
                           'below of the mask (a ball, not the script\'s cube). *Gaussian '
                           'blur + threshold*: blur the 0/1 mask with sigma and keep > '
                           'threshold (the script\'s documented rule). Its real effect: a '
                           'flat boundary moves out by sigma x Phi^-1(1 - threshold) only; '
                           'threshold 0.5 does not expand at all (convex parts shrink), 0.16 '
                           'expands by ~1 sigma, 0.023 by ~2 sigma, and thin structures '
                           'expand less than flat ones.')
        form.addParam('expandPixels', params.IntParam, default=10, condition=cryo,
                      validators=[params.GE(0)], label='Expansion (px)',
                      help='Margin kept around the mask, in px (Euclidean distance). 10 px '
                           'puts the transition beyond the density halo around segmented '
                           'objects, so it falls in background. In Gaussian mode, the '
                           'distance a flat boundary moves (sets the threshold).')
        form.addParam('softEdge', params.FloatParam, default=4.0, condition=cryo,
                      validators=[params.GE(0)], label='Soft edge (px)',
                      help='Width W of the cosine transition from tomogram to noise beyond '
                           'the expanded mask: weight 0.5 (1 + cos(pi (d - N) / W)) for N < d '
                           '< N + W. 0 = hard edge.')
        form.addParam('gaussianSigma', params.FloatParam, default=2.0,
                      condition='%s and expansionMode == %d'
                                % (cryo, constants.NF_EXPANSION_GAUSSIAN),
                      label='Gaussian sigma (px)',
                      help='Sigma of the Gaussian expansion blur, px (the script\'s --sigma). '
                           'The blur reaches about 3 sigma, so the expansion is limited to '
                           '3 sigma.')
        form.addParam('gaussianThreshold', params.FloatParam, default=-1,
                      condition='%s and expansionMode == %d'
                                % (cryo, constants.NF_EXPANSION_GAUSSIAN),
                      label='Gaussian threshold',
                      help='Keep voxels whose blurred 0/1 mask is > threshold, in (0, 1). '
                           '-1 = derived from the expansion: 1 - Phi(expansion / sigma), so a '
                           'flat boundary moves by the expansion. 0.5 does not expand.')
        form.addParam('smoothIterations', params.IntParam, default=0, condition=cryo,
                      validators=[params.GE(0)], label='Smoothing iterations',
                      help='Rounds of morphological opening + closing (3x3x3) of the mask '
                           'before the expansion: removes specks and fills pinholes. 0 = off.')
        form.addParam('boundarySigma', params.FloatParam, default=0.0, condition=cryo,
                      expertLevel=LEVEL_ADVANCED, validators=[params.GE(0)],
                      label='Boundary blur sigma (px)',
                      help='The script\'s --gaussian_sigma step: blur the expanded mask and '
                           'keep > 0.5. It re-binarises (rounds corners, fills gaps narrower '
                           'than ~sigma), it neither expands nor softens. 0 = off.')
        parity = 'parityMode'
        group = form.addGroup('TomoPANDA parity', condition=parity,
                              help='The flags of extract_masked_tomogram.py, with its '
                                   'defaults.')
        group.addParam('parityExpandPixels', params.IntParam, default=5, condition=parity,
                       validators=[params.GE(0)], label='Expand pixels (px)',
                       help='The script\'s --expand_pixels (default 5): a (2N+1)^3 cube '
                            'dilation for N <= 10 unless "fast", else Euclidean distance <= N.')
        group.addParam('parityFast', params.BooleanParam, default=False, condition=parity,
                       label='Fast (distance transform)?',
                       help='The script\'s --fast: Euclidean distance also for N <= 10.')
        group.addParam('parityGaussianSigma', params.FloatParam, default=1.0,
                       condition=parity, validators=[params.GE(0)],
                       label='Gaussian sigma (px)',
                       help='The script\'s --gaussian_sigma (default 1.0): blur the expanded '
                            'mask and keep > 0.5. 0 = skip.')
        group.addParam('paritySmoothIterations', params.IntParam, default=1, condition=parity,
                       validators=[params.GE(0)], label='Smooth iterations',
                       help='The script\'s --smooth_iterations (default 1): opening + '
                            'closing rounds after the expansion.')
        group.addParam('parityNoiseStd', params.FloatParam, default=0.1, condition=parity,
                       validators=[params.GE(0)], label='Noise std',
                       help='The script\'s --noise_std (default 0.1): noise std relative to '
                            'the global std of the tomogram.')
        group.addParam('parityBackgroundValue', params.FloatParam, default=0.0,
                       condition=parity, label='Background value',
                       help='The script\'s --background_value (default 0.0): the noise mean, '
                            'in absolute units.')

        form.addSection(label='Noise')
        form.addParam('noiseStats', params.EnumParam, choices=constants.NF_STATS_CHOICES,
                      default=constants.NF_STATS_OUTSIDE, condition=cryo,
                      display=params.EnumParam.DISPLAY_COMBO, label='Noise statistics',
                      help='Mean and std of the noise: *outside mask* = of the tomogram '
                           'voxels outside the expanded soft mask, i.e. of what is replaced '
                           '(no step at the boundary); *robust* = their median and 1.4826 x '
                           'MAD (gold beads, hot pixels); *global* = of the whole tomogram; '
                           '*script rule* = mean "background value", std of the whole '
                           'tomogram.')
        form.addParam('noiseLevel', params.FloatParam, default=1.0, condition=cryo,
                      validators=[params.GE(0)], label='Noise level',
                      help='Noise std relative to the std chosen above (the script\'s '
                           '--noise_std; it uses 0.1, visibly weaker than the data).')
        form.addParam('backgroundValue', params.FloatParam, default=0.0,
                      condition='%s and noiseStats == %d' % (cryo, constants.NF_STATS_PARITY),
                      label='Background value',
                      help='Noise mean for the script rule, in the tomogram\'s units.')
        form.addParam('spectralNoise', params.BooleanParam, default=False, condition=cryo,
                      label='Spectrally matched noise?',
                      help='Yes: the noise gets the power spectrum of the background '
                           '(estimated from 32^3 patches outside the mask), so it looks like '
                           'the tomogram\'s own texture instead of white noise. A few seconds '
                           'more per 1k x 1k x 300 tomogram.')
        form.addParam('seed', params.IntParam, default=42, label='Random seed',
                      help='Seed of the noise (the script uses 42). Same seed and inputs give '
                           'the same output whatever the number of threads.')
        form.addParam('saveSoftMask', params.BooleanParam, default=False,
                      label='Output the soft masks?',
                      help='Yes: also output the blend weights (1 = tomogram kept, 0 = noise, '
                           'in between = soft edge) as a set of tomo masks.')
        self._defineNonFiniteParam(form)
        form.addParallelSection(threads=2, mpi=0)

    # ================================================================= helpers
    def _params(self):
        if self.parityMode.get():
            return noisefill.NoiseFillParams(
                parity=True, expansion=self.parityExpandPixels.get(),
                fast=self.parityFast.get(), boundary_sigma=self.parityGaussianSigma.get(),
                smooth_iterations=self.paritySmoothIterations.get(),
                noise_level=self.parityNoiseStd.get(),
                background_value=self.parityBackgroundValue.get(), seed=self.seed.get())
        gthr = self.gaussianThreshold.get()
        return noisefill.NoiseFillParams(
            threshold=self.maskThreshold.get(), invert=self.invertMask.get(),
            expansion=self.expandPixels.get(),
            expansion_mode=noisefill.EXPANSION_MODES[self.expansionMode.get()],
            sigma=self.gaussianSigma.get(),
            gaussian_threshold=None if gthr is None or gthr < 0 else gthr,
            boundary_sigma=self.boundarySigma.get(), soft_edge=self.softEdge.get(),
            smooth_iterations=self.smoothIterations.get(),
            noise_stats=noisefill.NOISE_STATS[self.noiseStats.get()],
            noise_level=self.noiseLevel.get(), background_value=self.backgroundValue.get(),
            spectral=self.spectralNoise.get(), seed=self.seed.get())

    def _singleMask(self):
        return not isinstance(self.inputMasks.get(), SetOfTomoMasks)

    def _pairs(self):
        """``(pairs, unmatched)``: ``pairs`` = [(tsId, tomo clone, mask clone)] in tsId order,
        ``unmatched`` = tsIds of tomograms without a mask and of masks without a tomogram."""
        tomos = self._byTsId(self.inputTomograms.get())
        if self._singleMask():
            mask = self.inputMasks.get()
            return [(ts, tomos[ts], mask) for ts in sorted(tomos)], []
        masks = self._byTsId(self.inputMasks.get())
        common, _ = self._matchTsIds([('tomograms', tomos), ('masks', masks)])
        unmatched = sorted(set(tomos) ^ set(masks))
        return [(ts, tomos[ts], masks[ts]) for ts in common], unmatched

    def _outFile(self, tsId):
        return self._tsIdPath(tsId, '_noisefilled.mrc')

    def _maskOutFile(self, tsId):
        return self._tsIdPath(tsId, '_softmask.mrc')

    def _pngFile(self, tsId):
        return self._tsIdPath(tsId, '_preview.png')

    def _reportFile(self, tsId):
        return self._tsIdPath(tsId, '_report.json')

    def _readReport(self, tsId):
        return read_json(self._reportFile(tsId))

    # ================================================================= steps
    def _insertAllSteps(self):
        pairs, unmatched = self._pairs()
        if unmatched:
            self.unmatchedTsIds.set(', '.join(unmatched))
            self._store(self.unmatchedTsIds)
        # paths are passed as step arguments: steps run in threads and must not read sets
        ids = self._insertItemSteps(
            self.noiseFillStep,
            [(ts, self._projectPath(t.getFileName()), self._projectPath(m.getFileName()),
              t.getSamplingRate(), len(pairs)) for ts, t, m in pairs])
        self._insertFunctionStep(self.createOutputStep, prerequisites=ids, needsGPU=False)

    def _done(self, tsId):
        """None when the outputs of ``tsId`` are complete, else what is wrong. The tomogram is
        renamed last by the command, after its report, preview and soft mask."""
        rep = self._readReport(tsId)
        if rep is None:
            return 'no readable report %s' % self._reportFile(tsId)
        if os.path.basename(rep.get('files', {}).get('output') or '') != \
                os.path.basename(self._outFile(tsId)):
            return 'the report %s is not that of %s' % (self._reportFile(tsId),
                                                         self._outFile(tsId))
        if not is_complete_mrc(self._outFile(tsId)):
            return '%s is not a complete MRC file' % self._outFile(tsId)
        return None

    def _commandArgs(self, tsId, tomoPath, maskPath, samplingRate, threads):
        """The ``cryoprocs noise-fill`` options of one tomogram (form -> command line)."""
        from ..commands.noise_fill import args_from_params
        args = ['--input_tomo', tomoPath, '--input_mask', maskPath,
                '--output_tomo', os.path.abspath(self._outFile(tsId)),
                '--preview', os.path.abspath(self._pngFile(tsId)),
                '--report', os.path.abspath(self._reportFile(tsId)),
                '--threads', str(threads), '--overwrite']
        if self.saveSoftMask.get():
            args += ['--soft-mask-out', os.path.abspath(self._maskOutFile(tsId))]
        if samplingRate:
            args += ['--voxel-size', repr(float(samplingRate))]
        return args + args_from_params(self._params(), self._nonFinite())

    def noiseFillStep(self, tsId, tomoPath, maskPath, samplingRate, nSteps):
        """One tomogram: ``cryoprocs noise-fill`` as this step's job, then its results checked
        (a tomogram finished before a restart is kept)."""
        out = self._outFile(tsId)
        if os.path.exists(out) and self._done(tsId) is None:
            logger.info('tsId = %s: %s exists, skipped', tsId, out)
            return
        threads = self._kernelThreads(nSteps)
        logger.info('tsId = %s: noise fill -> %s (%d threads)', tsId, out, threads)
        self._runCryoprocs('noise-fill', self._commandArgs(tsId, tomoPath, maskPath,
                                                           samplingRate, threads), threads)
        self._requireResults('tsId %s' % tsId, [out, self._reportFile(tsId)],
                             lambda: self._done(tsId))
        rep = self._readReport(tsId)
        logger.info('tsId = %s: mask %d -> %d voxels, noise mean %.4g std %.4g, %.1f s',
                    tsId, rep['mask_voxels'], rep['expanded_voxels'], rep['noise_mean'],
                    rep['noise_std'], rep['seconds'])

    def createOutputStep(self):
        inSet = self.inputTomograms.get()
        pairs, _ = self._pairs()
        outSet = SetOfTomograms.create(self._getPath(), template='tomograms%s.sqlite')
        outSet.copyInfo(inSet)
        masks = None
        if self.saveSoftMask.get():
            masks = SetOfTomoMasks.create(self._getPath(), template='tomomasks%s.sqlite')
            masks.copyInfo(inSet)
        for tsId, tomo, _ in pairs:
            if not os.path.exists(self._outFile(tsId)):
                continue
            t = Tomogram()
            t.copyInfo(tomo)
            t.setFileName(self._outFile(tsId))
            outSet.append(t)
            if masks is not None and os.path.exists(self._maskOutFile(tsId)):
                m = TomoMask()
                m.copyInfo(tomo)
                m.setFileName(self._maskOutFile(tsId))
                m.setVolName(self._outFile(tsId))
                masks.append(m)
        self._defineOutputs(**{constants.OUTPUT_NOISE_FILLED_TOMOS: outSet})
        self._defineSourceRelation(self.inputTomograms, outSet)
        self._defineSourceRelation(self.inputMasks, outSet)
        if masks is not None:
            self._defineOutputs(**{constants.OUTPUT_NOISE_FILL_MASKS: masks})
            self._defineSourceRelation(self.inputMasks, masks)

    # ================================================================= memory
    _memoryHelp = ('Peak memory of one tomogram: about 1.6 x its size as float32 (1.0 x for '
                   'expansions up to 10 px; 2.3 x in TomoPANDA parity mode) + 150 MB; a '
                   '300 x 1024 x 1024 tomogram (1.26 GB) needs up to 2.2 GB.')

    def _memoryItems(self):
        factor = 2.3 if self.parityMode.get() else 1.6
        items = []
        for tsId, tomo, _ in self._pairs()[0]:
            x, y, z = tomo.getDim()
            items.append(('tsId %s (%d x %d x %d)' % (tsId, x, y, z),
                          factor * x * y * z * 4 / 2.0 ** 20 + COMMAND_BASE_MB))
        return items

    # ================================================================= info
    def _validate(self):
        errors = []
        tomos = self.inputTomograms.get()
        masks = self.inputMasks.get()
        if tomos is None or masks is None:
            return errors
        try:
            p = self._params().resolved()
        except noisefill.NoiseFillError as exc:
            return [str(exc)]
        pairs, unmatched = self._pairs()
        if not pairs:
            return ['No tomogram has a mask with the same tsId: tomograms %s, masks %s.'
                    % (', '.join(sorted(t.getTsId() for t in tomos.iterItems())),
                       ', '.join(sorted(m.getTsId() for m in masks.iterItems())))]
        checked = {}
        for tsId, tomo, mask in pairs:
            tsr, msr = tomo.getSamplingRate(), mask.getSamplingRate()
            if tsr and msr and abs(tsr - msr) > SAMPLING_TOLERANCE * tsr:
                errors.append('tsId %s: the mask sampling rate %.4g Å/px differs from the '
                              'tomogram\'s %.4g Å/px by more than 1 %%.' % (tsId, msr, tsr))
            tfn = self._projectPath(tomo.getFileName())
            mfn = self._projectPath(mask.getFileName())
            try:
                tshape = mrc_info(tfn).shape
                mshape = mrc_info(mfn).shape
            except MrcFormatError as exc:
                errors.append('tsId %s: %s' % (tsId, exc))
                continue
            if tshape != mshape:
                errors.append('tsId %s: mask %s is %s (x, y, z) but the tomogram is %s.'
                              % (tsId, os.path.basename(mfn), 'x'.join(map(str, mshape[::-1])),
                                 'x'.join(map(str, tshape[::-1]))))
                continue
            if mfn not in checked:
                checked[mfn] = _mask_has_inside(mfn, p)
            found, vmax = checked[mfn]
            if not found:
                rule = ('mask (/255 if max > 1) > 0.5' if p.parity
                        else 'mask > %g' % p.threshold)
                errors.append('tsId %s: no voxel of mask %s is inside after thresholding '
                              '(%s; mask maximum %s).'
                              % (tsId, os.path.basename(mfn), rule, vmax))
        return errors

    def _warnings(self):
        _, unmatched = self._pairs() if self.inputMasks.get() is not None else ([], [])
        if unmatched:
            return ['These tsIds have no partner and are skipped: %s.' % ', '.join(unmatched)]
        return []

    def _summary(self):
        summary = []
        if self.unmatchedTsIds.get():
            summary.append('*Skipped, no tomogram/mask partner:* %s' % self.unmatchedTsIds.get())
        if not hasattr(self, constants.OUTPUT_NOISE_FILLED_TOMOS):
            summary.append(NOT_READY)
            return summary
        out = getattr(self, constants.OUTPUT_NOISE_FILLED_TOMOS)
        p = self._params().resolved()
        summary.append('%s noise-filled (%s).' % (plural(out.getSize(), 'tomogram'),
                                                  self._describe(p)))
        for tsId, _, _ in self._pairs()[0]:
            rep = self._readReport(tsId)
            if rep is None:
                continue
            summary.append(
                '*%s*: mask %d -> %d voxels after expansion (%.2fx); kept region mean %s std '
                '%s; filled region mean %s std %s (replaced data mean %s std %s); noise mean '
                '%s std %s. Preview: %s'
                % (tsId, rep['mask_voxels'], rep['expanded_voxels'], rep['expansion_ratio'],
                   _g(rep['kept_mean']), _g(rep['kept_std']), _g(rep['filled_mean']),
                   _g(rep['filled_std']), _g(rep['replaced_mean']), _g(rep['replaced_std']),
                   _g(rep['noise_mean']), _g(rep['noise_std']), link(self._pngFile(tsId))))
        return summary

    def _describe(self, p):
        if p.parity:
            return ('TomoPANDA parity: expand %d px, gaussian sigma %g, %d smoothing rounds, '
                    'noise mean %g, std %g x global std, seed %d'
                    % (p.expansion, p.boundary_sigma, p.smooth_iterations, p.background_value,
                       p.noise_level, p.seed))
        exp = ('Euclidean expansion %d px' % p.expansion if p.expansion_mode == 'euclidean'
               else 'Gaussian expansion sigma %g px, threshold %.4g'
               % (p.sigma, p.gaussian_threshold))
        return ('%s, soft edge %g px, noise statistics %s x %g%s%s, seed %d'
                % (exp, p.soft_edge, p.noise_stats, p.noise_level,
                   ', spectrally matched' if p.spectral else '',
                   ', inverted mask' if p.invert else '', p.seed))

    def _methods(self):
        if not self.isFinished():
            return []
        p = self._params().resolved()
        return ['Tomograms were kept inside their masks and the rest replaced by noise with '
                'cryoprocs [cryoprocs2026] (%s).' % self._describe(p)]


def _g(v):
    return 'n/a' if v is None else '%.4g' % v


def _mask_has_inside(path, p, slab=16):
    """``(found, maximum)``: whether any voxel of the mask file is inside after the
    binarisation of ``p`` (stops at the first slab with one)."""
    from ..convert.mrc import MappedMrc
    import numpy as np
    with MappedMrc(path, permissive=True) as r:
        vmax = None
        scale = False
        if p.parity:
            for z0 in range(0, r.shape[0], slab):
                v = r[z0:z0 + slab].max()
                vmax = v if vmax is None else max(vmax, v)
            scale = bool(vmax > 1.0)
        for z0 in range(0, r.shape[0], slab):
            a = r[z0:z0 + slab]
            vmax = a.max() if vmax is None else max(vmax, a.max())
            if p.parity:
                m = a.astype(np.float32)
                inside = ((m / 255.0) if scale else m) > 0.5
            else:
                inside = a > p.threshold
            if inside.any():
                return True, vmax
        return False, vmax
