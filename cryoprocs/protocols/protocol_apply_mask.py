"""ApplyMask2D / ApplyMask3D: Xmipp's apply-mask protocols on NumPy kernels.

Same form vocabulary, enum order and defaults as scipion-em-xmipp ``XmippProtMaskParticles``
and ``XmippProtMaskVolumes`` (xmipp3/protocols/protocol_preprocess/protocol_mask.py), with the
numbers of Xmipp's ``xmipp_transform_mask`` (see docs/apply-mask.md). The
maths is in :mod:`cryoprocs.kernels.masks`, the file streaming in
:mod:`cryoprocs.pipelines.masks`.
"""
import logging
import math
import os

import numpy as np
import pyworkflow.protocol.params as params
from pwem.objects import SetOfParticles, SetOfVolumes, Volume, VolumeMask
from pyworkflow.object import Pointer, PointerList, Set
from pyworkflow import BETA
from pyworkflow.protocol.constants import LEVEL_ADVANCED

from .. import constants
from ..commands.mask import args_from_recipe
from ..constants import SAMPLING_TOLERANCE
from ..convert import relion5_scipion
from ..convert.mrc import is_complete_mrc, mrc_info
from ..kernels import masks
from ..pipelines.masks import DEFAULT_BLOCK_BYTES, ImageSources, MaskRecipe
from .protocol_base import COMMAND_BASE_MB, NOT_READY, ProtCryoprocsBase, chunk_ranges
from .texts import link, plural

logger = logging.getLogger(__name__)



class ProtCryoprocsApplyMaskBase(ProtCryoprocsBase):
    """Shared form and steps of the 2D and 3D apply-mask protocols (base class)."""
    _label = None
    _dims = None              # 2 or 3 in subclasses
    _geometries = None        # kernel names in form-enum order
    _choices = None           # form labels

    # ================================================================= form
    def _defineMaskParams(self, form):
        is3d = self._dims == 3
        form.addParam('source', params.EnumParam, choices=constants.SOURCE_CHOICES,
                      default=constants.SOURCE_GEOMETRY, display=params.EnumParam.DISPLAY_HLIST,
                      label='Mask source',
                      help='*Geometry*: a mask defined by the parameters below (Xmipp '
                           'xmipp_transform_mask). *Created mask*: a mask made by another '
                           'protocol; every %s is multiplied by it voxel by voxel.'
                           % ('volume' if is3d else 'image'))
        form.addParam('inputMask', params.PointerParam,
                      pointerClass='VolumeMask' if is3d else 'Mask',
                      condition='source == %d' % constants.SOURCE_MASK, allowsNull=True,
                      important=True, label='Mask',
                      help='Created mask with the same dimensions (every axis) and sampling '
                           'rate as the input. Values are used as weights: 0 removes, 1 keeps.')
        self._defineMaskOutputParams(form)

        form.addSection(label='Geometry')
        geoCond = 'source == %d' % constants.SOURCE_GEOMETRY
        form.addParam('geo', params.EnumParam, choices=self._choices, default=0,
                      condition=geoCond, label='Mask type',
                      help='Shape of the mask, centred on the voxel at index size//2 of each '
                           'axis (shifted by the centre offsets below). Binary masks '
                           '(%s) replace the outside by the fill; soft masks (gaussian, '
                           'raised cosine, raised crown) multiply the data and ignore the fill.'
                           % ('sphere, box, crown, cylinder' if is3d else 'circular, box, crown'))

        def geoIs(*names):
            idx = [self._geometries.index(n) for n in names]
            return '%s and geo in %s' % (geoCond, tuple(idx) if len(idx) > 1 else '(%d,)' % idx[0])

        radiusGeos = ('sphere', 'cylinder') if is3d else ('circular',)
        form.addParam('radius', params.IntParam, default=-1, condition=geoIs(*radiusGeos),
                      label='Radius (px)',
                      help='Radius of the %s in px; voxels at distance <= radius are kept. '
                           '-1 = half the X dimension (Xmipp default).'
                           % ('sphere or cylinder' if is3d else 'circle'))
        form.addParam('boxSize', params.IntParam, default=-1, condition=geoIs('box'),
                      label='Box size (px)',
                      help='Full side length of the kept box in px, centred at size//2. '
                           '-1 = half the X dimension (Xmipp default).')
        crownGeos = ('crown', 'raised_cosine', 'raised_crown')
        form.addParam('innerRadius', params.IntParam, default=0, condition=geoIs(*crownGeos),
                      label='Inner radius (px)',
                      help='Inner radius in px. For a crown, voxels with inner <= r <= outer are '
                           'kept; for a raised cosine the mask is 1 up to the inner radius and '
                           'falls to 0 at the outer radius. 0 is valid here (Xmipp aborts with '
                           '"cannot determine mode" on 0).')
        form.addParam('outerRadius', params.IntParam, default=-1, condition=geoIs(*crownGeos),
                      label='Outer radius (px)',
                      help='Outer radius in px. -1 = half the X dimension (Xmipp default).')
        if is3d:
            form.addParam('height', params.IntParam, default=-1, condition=geoIs('cylinder'),
                          label='Height (px)',
                          help='Cylinder height along Z in px: slices with |z - centre| <= '
                               'height/2 are kept, so an even height keeps height+1 slices, '
                               'as in Xmipp. -1 = the X dimension (Xmipp default).')
        form.addParam('sigma', params.FloatParam, default=-1, condition=geoIs('gaussian'),
                      label='Sigma (px)',
                      help='Standard deviation of the gaussian in px. -1 = X dimension / 6 '
                           '(Xmipp default).')
        form.addParam('gaussianPeakOne', params.BooleanParam, default=False,
                      condition=geoIs('gaussian'), expertLevel=LEVEL_ADVANCED,
                      label='Gaussian with peak 1?',
                      help='No (Xmipp): the gaussian has unit integral, so its peak is '
                           '1/(sqrt(2 pi) sigma)^%d and the masked data shrink by that factor '
                           '(about 1/700 for a 64^2 image with the default sigma). Yes: the '
                           'gaussian is scaled to peak 1 and only attenuates the edges.'
                           % self._dims)
        form.addParam('borderDecay', params.IntParam, default=0, condition=geoIs('raised_crown'),
                      label='Border decay (px)',
                      help='Half-width w of the raised-crown edges in px: each edge is a cosine '
                           'ramp of total width 2w centred on its radius. 0 = hard crown '
                           'inner < r <= outer. -1 = 0.')
        form.addParam('shiftCenter', params.BooleanParam, default=False, condition=geoCond,
                      label='Shift centre of the mask?',
                      help='Move the mask centre by whole pixels from the box centre '
                           '(index size//2).')
        line = form.addLine('Shift centre (px)', condition='%s and shiftCenter' % geoCond,
                            help='Offsets in px; +X moves the mask towards larger column '
                                 'indexes, +Y larger rows%s.' % (', +Z larger slices' if is3d else ''))
        line.addParam('centerX', params.IntParam, default=0, label='X',
                      help='Shift of the mask centre along X (columns), px.')
        line.addParam('centerY', params.IntParam, default=0, label='Y',
                      help='Shift of the mask centre along Y (rows), px.')
        if is3d:
            line.addParam('centerZ', params.IntParam, default=0, label='Z',
                          help='Shift of the mask centre along Z (slices), px.')
        form.addParam('fillType', params.EnumParam, choices=constants.FILL_CHOICES,
                      default=constants.FILL_VALUE, condition=geoCond,
                      display=params.EnumParam.DISPLAY_COMBO, label='Fill with',
                      help='What replaces the removed voxels of a *binary* mask: a value, or '
                           'the minimum, maximum or average of each whole %s (inside and '
                           'outside the mask, as Xmipp computes them). Soft masks multiply and '
                           'ignore value/min/max/avg, as in Xmipp. *noise* (cryoprocs): '
                           'gaussian noise with the mean and standard deviation of the %s\'s own '
                           'voxels outside the mask; with a soft mask the data are blended with '
                           'that noise (data x mask + noise x (1 - mask)).'
                           % (('volume',) * 2 if is3d else ('image',) * 2))
        binary = [i for i, g in enumerate(self._geometries) if masks.mask_is_binary(g)]
        form.addParam('fillValue', params.FloatParam, default=0,
                      condition='%s and fillType == %d and geo in %s'
                                % (geoCond, constants.FILL_VALUE, tuple(binary)),
                      label='Fill value',
                      help='Value written outside a binary mask (soft masks multiply the data '
                           'and ignore it).')
        form.addParam('noiseSeed', params.IntParam, default=42, expertLevel=LEVEL_ADVANCED,
                      condition='%s and fillType == %d' % (geoCond, constants.FILL_NOISE),
                      label='Noise seed',
                      help='Random seed of the noise fill; each %s draws its own stream from '
                           '(seed, position in the set), so results do not depend on the number '
                           'of threads.' % ('volume' if is3d else 'image'))
        self._defineNonFiniteParam(form)
        form.addParallelSection(threads=2, mpi=0)

    def _defineMaskOutputParams(self, form):
        """Form parameters about the mask as an output (subclasses)."""

    # ================================================================= helpers
    def _geometryName(self):
        return self._geometries[self.geo.get()]

    def _formParams(self):
        """The Xmipp form values (-1 = default) for the selected geometry, kernel names."""
        p = {'radius': self.radius.get(), 'box_size': self.boxSize.get(),
             'inner_radius': self.innerRadius.get(), 'outer_radius': self.outerRadius.get(),
             'sigma': self.sigma.get(), 'border_decay': self.borderDecay.get()}
        if self._dims == 3:
            p['height'] = self.height.get()
        geo = self._geometryName()
        keep = {'circular': ('radius',), 'sphere': ('radius',), 'box': ('box_size',),
                'crown': ('inner_radius', 'outer_radius'),
                'raised_cosine': ('inner_radius', 'outer_radius'),
                'raised_crown': ('inner_radius', 'outer_radius', 'border_decay'),
                'cylinder': ('radius', 'height'), 'gaussian': ('sigma',)}[geo]
        return {k: p[k] for k in keep}

    def _center(self):
        if not self.shiftCenter.get():
            return (0, 0, 0)
        z = self.centerZ.get() if self._dims == 3 else 0
        return (self.centerX.get(), self.centerY.get(), z)

    def _useCreatedMask(self):
        return self.source.get() == constants.SOURCE_MASK

    def _recipe(self):
        if self._useCreatedMask():
            return MaskRecipe(mask_file=self._projectPath(self.inputMask.get().getFileName()),
                              nonfinite=self._nonFinite())
        return MaskRecipe(self._geometryName(), self._formParams(), center=self._center(),
                          fill=constants.FILL_CHOICES[self.fillType.get()],
                          fill_value=self.fillValue.get(), seed=self.noiseSeed.get(),
                          gaussian_peak_one=self.gaussianPeakOne.get(),
                          nonfinite=self._nonFinite())

    def _itemShape(self):
        """Numpy shape of one input image/volume, from the input object."""
        raise NotImplementedError

    def _inputSamplingRate(self):
        raise NotImplementedError

    def _maskDescription(self):
        if self._useCreatedMask():
            return 'the created mask %s' % self.inputMask.get().getFileName()
        shape = self._itemShape()
        geo = self._geometryName()
        kw = masks.xmipp_form_defaults(shape[-1], geo, **self._formParams())
        desc = '%s mask (%s)' % (geo.replace('_', ' '),
                                 ', '.join('%s %s px' % (k.replace('_', ' '), v)
                                           for k, v in kw.items()))
        if any(self._center()):
            desc += ' centred at offset %s px' % (self._center()[:self._dims],)
        return desc

    # ================================================================= info
    def _validate(self):
        errors = []
        shape = self._itemShape()
        if shape is None:
            return ['Cannot read the dimensions of the input.']
        if self._useCreatedMask():
            mask = self.inputMask.get()
            if mask is None:
                return ['Choose the created mask (source = Created mask).']
            mdims = tuple(mask.getDim() or ())
            want = tuple(shape[::-1])
            mshape = mdims[:self._dims] if self._dims == 2 else mdims
            if self._dims == 2 and len(mdims) == 3 and mdims[2] not in (1, None):
                mshape = mdims
            if tuple(mshape) != want:
                errors.append('The mask dimensions %s (x, y%s) differ from the input '
                              'dimensions %s.' % (mshape, ', z' if self._dims == 3 else '', want))
            srIn, srMask = self._inputSamplingRate(), mask.getSamplingRate()
            if srIn and srMask and abs(srIn - srMask) > SAMPLING_TOLERANCE * srIn:
                errors.append('The mask sampling rate %.4f Å/px differs from the input '
                              'sampling rate %.4f Å/px by more than %d%%.'
                              % (srMask, srIn, SAMPLING_TOLERANCE * 100))
            return errors
        try:
            kw = masks.xmipp_form_defaults(shape[-1], self._geometryName(), **self._formParams())
        except masks.MaskError as exc:
            return [str(exc)]
        for name, value in self._formParams().items():
            if value < -1 or (value == -1 and name == 'inner_radius'):
                errors.append('%s = %s: sizes must be >= 0, or -1 for the Xmipp default.'
                              % (name, value))
        if errors:
            return errors
        if int(np.prod(shape)) <= 256 ** 3:       # cheap enough for the GUI
            try:
                masks.make_mask(shape, self._geometryName(), center=self._center(), **kw)
            except masks.MaskError as exc:
                errors.append(str(exc))
        return errors

    def _warnings(self):
        warnings = []
        if self._useCreatedMask() and self.inputMask.get() is not None:
            try:
                _, w = MaskRecipe(mask_file=self._projectPath(
                    self.inputMask.get().getFileName())).build(self._itemShape())
                warnings.extend(w)
            except (masks.MaskError, ValueError) as exc:
                warnings.append(str(exc))
        elif not self._useCreatedMask():
            geo = self._geometryName()
            if not masks.mask_is_binary(geo) and self.fillType.get() not in (constants.FILL_VALUE,
                                                                             constants.FILL_NOISE):
                warnings.append('A %s mask is soft: it multiplies the data and the fill '
                                '(%s) is ignored, as in Xmipp.'
                                % (geo.replace('_', ' '),
                                   constants.FILL_CHOICES[self.fillType.get()]))
        return warnings

    def _fillSummary(self):
        """The fill as the summary states it: soft masks multiply and ignore value, min, max
        and avg fills (as in Xmipp); noise is blended."""
        fill = self.fillType.get()
        soft = not masks.mask_is_binary(self._geometryName())
        if soft and fill != constants.FILL_NOISE:
            return 'Fill: ignored (soft mask: the data are multiplied by the mask).'
        if fill == constants.FILL_VALUE:
            return 'Fill: value %g.' % self.fillValue.get()
        if fill == constants.FILL_NOISE:
            return ('Fill: gaussian noise with the statistics outside the mask%s.'
                    % (', blended by the soft mask' if soft else ''))
        return 'Fill: the %s of each %s.' % (constants.FILL_CHOICES[fill], self._itemNoun())

    def _methods(self):
        if not self.isFinished():
            return []
        fill = ''
        if not self._useCreatedMask():
            if (masks.mask_is_binary(self._geometryName())
                    or self.fillType.get() == constants.FILL_NOISE):
                fill = ', filling the outside with %s' % constants.FILL_CHOICES[self.fillType.get()]
        return ['The %s were masked with %s [delaRosaTrevin2013] using cryoprocs '
                '[cryoprocs2026]%s.' % (self._itemNoun(plural=True), self._maskDescription(),
                                        fill)]

    def _citations(self):
        return ['delaRosaTrevin2013']

    def _itemNoun(self, plural=False):
        raise NotImplementedError


class ProtCryoprocsApplyMask2D(ProtCryoprocsApplyMaskBase):
    """Apply a geometric (circular, box, crown, gaussian, raised cosine, raised crown) or a
    created 2D mask to a set of particles, with Xmipp's results. Output particles keep every
    input attribute; only the image changes. One step per chunk of particles (one per
    thread) runs `cryoprocs mask` into its own stack (one cluster job per chunk with "Use
    queue for jobs"); peak memory per chunk about 150 MB + 48 MB per thread."""
    _label = 'apply 2d mask'
    _devStatus = BETA
    _dims = 2
    _geometries = masks.GEOMETRIES_2D
    _choices = constants.MASK2D_CHOICES
    _possibleOutputs = {constants.OUTPUT_PARTICLES: SetOfParticles}

    #: at most this many bytes of input per step (resume granularity for huge sets)
    MAX_CHUNK_BYTES = 4 * 1024 ** 3

    def _defineParams(self, form):
        form.addSection(label='Input')
        form.addParam('inputParticles', params.PointerParam, pointerClass='SetOfParticles',
                      important=True, label='Input particles',
                      help='Particles to mask. Images are read from their stacks in blocks and '
                           'written once into float32 stacks, one per chunk of the set '
                           '(extra/output_particles_FIRST-LAST.mrcs).')
        self._defineMaskParams(form)

    # ---------------------------------------------------------------- steps
    def _insertAllSteps(self):
        # pyworkflow's parallel executor polls every 3 s, so the set is cut into one chunk
        # per worker thread (more only for very large sets), not into many small steps.
        ranges = self._chunkRanges()
        ids = self._insertItemSteps(self.maskChunkStep, [r + (len(ranges),) for r in ranges])
        self._insertFunctionStep(self.createOutputStep, prerequisites=ids, needsGPU=False)

    def _chunkRanges(self):
        """``[(i0, i1)]``: the particle chunks, one per worker thread, more only for sets
        above MAX_CHUNK_BYTES per chunk."""
        inSet = self.inputParticles.get()
        n = inSet.getSize()
        xdim = inSet.getXDim() or 1
        return chunk_ranges(n, max(max(1, self._totalThreads() - 1),
                                   math.ceil(n * xdim * xdim * 4 / self.MAX_CHUNK_BYTES)))

    def _sourcesFile(self):
        return self._getExtraPath('input_locations.npz')

    def _chunkFile(self, i0, i1):
        """The output stack of particles ``i0..i1-1`` (0-based positions in the set)."""
        return self._getExtraPath(constants.MASKED_PARTICLES_CHUNK % (i0 + 1, i1))

    def _prepareInput(self):
        """List the input locations once per run (under the protocol lock; later chunk
        steps and resumed runs reuse the file): the input of the chunk commands."""
        with self._lock:
            if os.path.exists(self._sourcesFile()):
                return
            inSet = self.inputParticles.get()
            locations, ids = [], []
            for p in inSet.iterItems(orderBy='id'):
                if not p.isEnabled():
                    continue
                index, fn = p.getLocation()
                locations.append((index, self._projectPath(fn)))
                ids.append(p.getObjId())
            ImageSources.from_locations(locations).save(
                self._sourcesFile(), voxel_size=inSet.getSamplingRate(), ids=ids)

    def _loadSources(self):
        sources, ids, _ = ImageSources.load(self._sourcesFile())
        return sources, ids

    def _chunkDone(self, i0, i1):
        """None when the chunk stack holds its ``i1 - i0`` images, else the problem."""
        path = self._chunkFile(i0, i1)
        try:
            shape = mrc_info(path).shape
        except (OSError, ValueError) as exc:
            return 'unreadable %s (%s)' % (path, exc)
        if shape[0] != i1 - i0 or tuple(shape[1:]) != tuple(self._itemShape()):
            return '%s holds %s images, %d of %s expected' % (path, shape, i1 - i0,
                                                               self._itemShape())
        return None

    def maskChunkStep(self, i0, i1, nSteps):
        """Particles ``i0..i1-1``: ``cryoprocs mask --sources`` as this step's job, into their
        own stack (a chunk finished before a restart is kept)."""
        self._prepareInput()
        sources, _ = self._loadSources()
        i1 = min(i1, len(sources))
        if i1 <= i0:
            return
        out = self._chunkFile(i0, i1)
        if os.path.exists(out) and self._chunkDone(i0, i1) is None:
            logger.info('particles %d..%d: %s exists, skipped', i0 + 1, i1, out)
            return
        threads = self._kernelThreads(nSteps)
        logger.info('particles %d..%d -> %s (%d threads)', i0 + 1, i1, out, threads)
        self._runCryoprocs('mask', ['--input', os.path.abspath(self._sourcesFile()),
                                    '--sources', '--range', str(i0), str(i1),
                                    '--output', os.path.abspath(out), '--threads', str(threads),
                                    '--overwrite'] + args_from_recipe(self._recipe()), threads)
        self._requireResults('particles %d..%d' % (i0 + 1, i1), [out],
                             lambda: self._chunkDone(i0, i1))

    def createOutputStep(self):
        self._prepareInput()
        sources, ids = self._loadSources()
        position = {}
        n = len(sources)
        for i0, i1 in [(a, min(b, n)) for a, b in self._chunkRanges() if a < min(b, n)]:
            out = self._chunkFile(i0, i1)
            for k in range(i0, i1):
                position[int(ids[k])] = (k - i0 + 1, out)
        inSet = self.inputParticles.get()
        outSet = self._createSetOfParticles()
        outSet.copyInfo(inSet)

        def updateLocation(item, row):
            item.setLocation(*position[item.getObjId()])

        outSet.copyItems(inSet, updateItemCallback=updateLocation)
        self._defineOutputs(**{constants.OUTPUT_PARTICLES: outSet})
        self._defineTransformRelation(self.inputParticles, outSet)

    # ---------------------------------------------------------------- memory
    _memoryHelp = ('Peak memory of one chunk of particles: about 3 blocks of 16 MB per thread '
                   '+ 150 MB, whatever the number of particles (the stacks are streamed).')

    def _memoryItems(self):
        ranges = self._chunkRanges()
        threads = self._kernelThreads(len(ranges))
        return [('particles %d..%d' % (i0 + 1, i1),
                 COMMAND_BASE_MB + threads * 3 * DEFAULT_BLOCK_BYTES / 2.0 ** 20)
                for i0, i1 in ranges]

    # ---------------------------------------------------------------- info
    def _itemShape(self):
        inSet = self.inputParticles.get()
        dims = inSet.getDimensions() if inSet is not None else None
        if not dims or dims[0] is None:
            return None
        return (int(dims[1]), int(dims[0]))

    def _inputSamplingRate(self):
        return self.inputParticles.get().getSamplingRate()

    def _itemNoun(self, plural=False):
        return 'particles' if plural else 'particle'

    def _validate(self):
        inSet = self.inputParticles.get()
        if inSet is None or inSet.getSize() == 0:
            return ['The input set of particles is empty.']
        return super()._validate()

    def _summary(self):
        summary = []
        if not hasattr(self, constants.OUTPUT_PARTICLES):
            summary.append(NOT_READY)
            return summary
        out = getattr(self, constants.OUTPUT_PARTICLES)
        summary.append('%s masked with %s.' % (plural(out.getSize(), 'particle'),
                                               self._maskDescription()))
        if not self._useCreatedMask():
            summary.append(self._fillSummary())
        stacks = sorted({p.getFileName() for p in out.iterItems()}) if out.getSize() < 10 ** 5 \
            else []
        if stacks:
            summary.append('Output stack%s: %s' % ('s' if len(stacks) > 1 else '',
                                                   ', '.join(link(f) for f in stacks)))
        return summary


def _copySetAttributes(outSet, inSet):
    """Copy every attribute of ``inSet`` to ``outSet`` (acquisition, coordinates pointer,
    flags, extra attributes of other plugins), except the bookkeeping of the set itself
    (its file, size and stream state). Pointers are copied into the output's own Pointer
    objects (sharing one breaks the protocol's final store)."""
    own = {name for name, _ in Set().getAttributes()}
    for name, attr in inSet.getAttributes():
        if name in own or attr is None:
            continue
        if isinstance(attr, PointerList):
            copy = PointerList()
            for ptr in attr:
                copy.append(Pointer(ptr.getObjValue(), extended=ptr.getExtended()))
            setattr(outSet, name, copy)
        else:
            outSet.copyAttributes(inSet, name)


class ProtCryoprocsApplyMask3D(ProtCryoprocsApplyMaskBase):
    """Apply a geometric (sphere, box, crown, cylinder, gaussian, raised cosine, raised crown)
    or a created 3D mask to a volume or a set of volumes, with Xmipp's results. One step
    per volume runs `cryoprocs mask` (one cluster job per volume with "Use queue for jobs");
    peak memory per volume about 4 x its float32 size + 150 MB."""
    _label = 'apply 3d mask'
    _devStatus = BETA
    _dims = 3
    _geometries = masks.GEOMETRIES_3D
    _choices = constants.MASK3D_CHOICES
    # the output has the input's class: a Tomogram / SetOfTomograms, a SubTomogram /
    # SetOfSubTomograms... (subclasses of these)
    _possibleOutputs = {constants.OUTPUT_VOLUME: Volume, constants.OUTPUT_VOLUMES: SetOfVolumes,
                        constants.OUTPUT_VOLUME_MASK: VolumeMask}

    def _defineParams(self, form):
        form.addSection(label='Input')
        form.addParam('inputVolumes', params.PointerParam, pointerClass='Volume, SetOfVolumes',
                      important=True, label='Input volume(s)',
                      help='A volume (output: outputVolume) or a set of volumes (output: '
                           'outputVolumes), e.g. tomograms or subtomograms: the output has '
                           'the input\'s type (a set of tomograms gives a set of tomograms) '
                           'and keeps every attribute; only the files change (half maps are '
                           'not masked and are dropped). Each volume is written to its own '
                           'float32 MRC file.')
        self._defineMaskParams(form)

    def _defineMaskOutputParams(self, form):
        form.addParam('saveMask', params.BooleanParam, default=False,
                      label='Save the mask as a VolumeMask?',
                      help='Also register the mask applied (output: outputMask): the geometric '
                           'mask with its soft edge as computed (binary masks as 0/1), or the '
                           'created mask, as a float32 MRC with the dimensions and sampling '
                           'rate of the input volumes, e.g. the solvent mask of RELION '
                           'post-processing or refinement.')

    def _isSet(self):
        return isinstance(self.inputVolumes.get(), SetOfVolumes)

    def _inputItems(self):
        """[(objId, (index, path))] of the enabled input volumes, in id order."""
        inp = self.inputVolumes.get()
        vols = inp.iterItems(orderBy='id') if self._isSet() else [inp]
        return [(v.getObjId(), v.getLocation()) for v in vols if v.isEnabled()]

    def _maskFile(self):
        return self._getExtraPath('mask.mrc')

    def _outputFile(self, objId):
        if self._isSet():
            return self._getExtraPath('output_volume_%06d.mrc' % objId)
        return self._getExtraPath('output_volume.mrc')

    # ---------------------------------------------------------------- steps
    def _insertAllSteps(self):
        # one step per volume (one queue job per volume with "Use queue for jobs")
        items = self._inputItems()
        ids = self._insertItemSteps(self.maskVolumeStep, [(k, objId, len(items))
                                                          for k, (objId, _) in enumerate(items)])
        self._insertFunctionStep(self.createOutputStep, prerequisites=ids, needsGPU=False)

    def _sourcesFile(self):
        return self._getExtraPath('input_volumes.npz')

    def _prepareInput(self):
        """List the volume locations once per run (under the protocol lock)."""
        with self._lock:
            if os.path.exists(self._sourcesFile()):
                return
            items = self._inputItems()
            ImageSources.from_locations([(loc[0], self._projectPath(loc[1]))
                                         for _, loc in items], item_ndim=3).save(
                self._sourcesFile(), voxel_size=self._inputSamplingRate(),
                ids=[objId for objId, _ in items])

    def _volumeDone(self, k, objId):
        """None when the output of volume ``k`` is a volume of its input's size."""
        path = self._outputFile(objId)
        sources, _, _ = ImageSources.load(self._sourcesFile())
        try:
            shape = mrc_info(path).shape
            inShape = mrc_info(sources.paths[sources.file_ids[k]]).shape
        except (OSError, ValueError) as exc:
            return 'unreadable %s (%s)' % (path, exc)
        if shape[1:] != inShape[1:] or shape[0] > inShape[0]:
            return '%s is %s (z, y, x), its input %s' % (path, shape, inShape)
        if k == 0 and self.saveMask.get() and not is_complete_mrc(self._maskFile()):
            return 'missing or incomplete mask %s' % self._maskFile()
        return None

    def maskVolumeStep(self, k, objId, nSteps):
        """Volume ``k`` (position in the set, id ``objId``): ``cryoprocs mask --sources`` as
        this step's job (a volume finished before a restart is kept)."""
        self._prepareInput()
        out = self._outputFile(objId)
        if os.path.exists(out) and self._volumeDone(k, objId) is None:
            logger.info('volume id %d: %s exists, skipped', objId, out)
            return
        threads = self._kernelThreads(nSteps)
        # the first volume's command also writes the mask (before its output)
        save = ['--save-mask', os.path.abspath(self._maskFile())] \
            if k == 0 and self.saveMask.get() else []
        self._runCryoprocs('mask', ['--input', os.path.abspath(self._sourcesFile()),
                                    '--sources', '--range', str(k), str(k + 1),
                                    '--output', os.path.abspath(out), '--threads', str(threads),
                                    '--overwrite'] + save + args_from_recipe(self._recipe()),
                           threads)
        self._requireResults('volume id %d' % objId, [out], lambda: self._volumeDone(k, objId))
        logger.info('volume id %d -> %s', objId, out)

    def createOutputStep(self):
        """Register the masked volume(s) with the input's class and every attribute of the
        input (set and items), only the locations changed, and the mask when asked."""
        inp = self.inputVolumes.get()
        if self._isSet():
            outSet = type(inp).create(self._getPath(), prefix='volumes')
            outSet.copyInfo(inp)
            _copySetAttributes(outSet, inp)
            if hasattr(outSet, '_hasOddEven'):      # the odd/even halves are not masked
                outSet._hasOddEven.set(False)

            def updateItem(item, row):
                item.setLocation(self._outputFile(item.getObjId()))
                item.setHalfMaps([])

            outSet.copyItems(inp, updateItemCallback=updateItem)
            self._defineOutputs(**{constants.OUTPUT_VOLUMES: outSet})
            self._defineTransformRelation(self.inputVolumes, outSet)
        else:
            vol = inp.clone()                     # the input's class and attributes
            vol.cleanObjId()
            vol.setLocation(self._outputFile(inp.getObjId()))
            vol.setHalfMaps([])
            self._defineOutputs(**{constants.OUTPUT_VOLUME: vol})
            self._defineTransformRelation(self.inputVolumes, vol)
        if self.saveMask.get():
            mask = VolumeMask(location=self._maskFile())
            mask.setSamplingRate(self._inputSamplingRate())
            self._defineOutputs(**{constants.OUTPUT_VOLUME_MASK: mask})
            self._defineSourceRelation(self.inputVolumes, mask)

    # ---------------------------------------------------------------- memory
    _memoryHelp = ('Peak memory of one volume: about 4 x its size as float32 (input, mask, '
                   'output) + 150 MB; a 512^3 map (0.5 GB) needs about 2.2 GB.')

    def _memoryItems(self):
        z, y, x = self._itemShape()
        return [('volume id %d (%d x %d x %d)' % (objId, x, y, z),
                 COMMAND_BASE_MB + 4 * x * y * z * 4 / 2.0 ** 20)
                for objId, _ in self._inputItems()]

    # ---------------------------------------------------------------- info
    def _itemShape(self):
        inp = self.inputVolumes.get()
        if inp is None:
            return None
        dims = inp.getDimensions() if self._isSet() else inp.getDim()
        if not dims or dims[0] is None:
            return None
        return (int(dims[2]), int(dims[1]), int(dims[0]))

    def _inputSamplingRate(self):
        return self.inputVolumes.get().getSamplingRate()

    def _itemNoun(self, plural=False):
        return 'volumes' if plural else 'volume'

    def _validate(self):
        inp = self.inputVolumes.get()
        if self._isSet() and inp.getSize() == 0:
            return ['The input set of volumes is empty.']
        if relion5_scipion.attr(inp, "are2dStacks"):
            return ['The %s %s holds 2D tilt stacks (RELION 5 pseudo-subtomograms), not '
                    'volumes: a 3D mask cannot be applied to them.'
                    % (type(inp).__name__, inp.getObjLabel() or inp.getObjId())]
        return super()._validate()

    def _summary(self):
        if hasattr(self, constants.OUTPUT_VOLUMES):
            n = getattr(self, constants.OUTPUT_VOLUMES).getSize()
        elif hasattr(self, constants.OUTPUT_VOLUME):
            n = 1
        else:
            return [NOT_READY]
        out = (getattr(self, constants.OUTPUT_VOLUMES, None)
               or getattr(self, constants.OUTPUT_VOLUME))
        summary = ['%s masked with %s; output %s (the input\'s type).'
                   % (plural(n, 'volume'), self._maskDescription(), type(out).__name__)]
        if not self._useCreatedMask():
            summary.append(self._fillSummary())
        mask = getattr(self, constants.OUTPUT_VOLUME_MASK, None)
        if mask is not None:
            summary.append('Mask saved as a VolumeMask (%s): %s at %.4f Å/px.'
                           % (constants.OUTPUT_VOLUME_MASK, link(mask.getFileName()),
                              mask.getSamplingRate()))
        return summary

