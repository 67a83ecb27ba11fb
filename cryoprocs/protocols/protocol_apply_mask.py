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
from pwem.objects import SetOfParticles, SetOfVolumes, Volume
from pyworkflow import BETA
from pyworkflow.protocol.constants import LEVEL_ADVANCED

from .. import constants as C
from ..constants import SAMPLING_TOLERANCE
from ..convert.mrc import partial_path, write_mrc
from ..kernels import masks as K
from ..pipelines.masks import (ImageSources, MaskRecipe, finish_stack, mask_range,
                               preallocate_stack)
from .protocol_base import ProtCryoprocsBase

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
        form.addParam('source', params.EnumParam, choices=C.SOURCE_CHOICES,
                      default=C.SOURCE_GEOMETRY, display=params.EnumParam.DISPLAY_HLIST,
                      label='Mask source',
                      help='*Geometry*: a mask defined by the parameters below (Xmipp '
                           'xmipp_transform_mask). *Created mask*: a mask made by another '
                           'protocol; every %s is multiplied by it voxel by voxel.'
                           % ('volume' if is3d else 'image'))
        form.addParam('inputMask', params.PointerParam,
                      pointerClass='VolumeMask' if is3d else 'Mask',
                      condition='source == %d' % C.SOURCE_MASK, allowsNull=True,
                      label='Mask',
                      help='Created mask with the same dimensions (every axis) and sampling '
                           'rate as the input. Values are used as weights: 0 removes, 1 keeps.')

        form.addSection(label='Geometry')
        geoCond = 'source == %d' % C.SOURCE_GEOMETRY
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
        form.addParam('fillType', params.EnumParam, choices=C.FILL_CHOICES,
                      default=C.FILL_VALUE, condition=geoCond, display=params.EnumParam.DISPLAY_COMBO,
                      label='Fill with',
                      help='What replaces the removed voxels of a *binary* mask: a value, or '
                           'the minimum, maximum or average of each whole %s (inside and '
                           'outside the mask, as Xmipp computes them). Soft masks multiply and '
                           'ignore value/min/max/avg, as in Xmipp. *noise* (cryoprocs): '
                           'gaussian noise with the mean and standard deviation of the %s\'s own '
                           'voxels outside the mask; with a soft mask the data are blended with '
                           'that noise (data x mask + noise x (1 - mask)).'
                           % (('volume',) * 2 if is3d else ('image',) * 2))
        form.addParam('fillValue', params.FloatParam, default=0,
                      condition='%s and fillType == %d' % (geoCond, C.FILL_VALUE),
                      label='Fill value', help='Value written outside a binary mask.')
        form.addParam('noiseSeed', params.IntParam, default=42, expertLevel=LEVEL_ADVANCED,
                      condition='%s and fillType == %d' % (geoCond, C.FILL_NOISE),
                      label='Noise seed',
                      help='Random seed of the noise fill; each %s draws its own stream from '
                           '(seed, position in the set), so results do not depend on the number '
                           'of threads.' % ('volume' if is3d else 'image'))
        form.addParallelSection(threads=2, mpi=0)

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
        return self.source.get() == C.SOURCE_MASK

    def _recipe(self):
        if self._useCreatedMask():
            return MaskRecipe(mask_file=self._projectPath(self.inputMask.get().getFileName()))
        return MaskRecipe(self._geometryName(), self._formParams(), center=self._center(),
                          fill=C.FILL_CHOICES[self.fillType.get()],
                          fill_value=self.fillValue.get(), seed=self.noiseSeed.get(),
                          gaussian_peak_one=self.gaussianPeakOne.get())

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
        kw = K.xmipp_form_defaults(shape[-1], geo, **self._formParams())
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
                errors.append('The mask sampling rate %.4f A/px differs from the input '
                              'sampling rate %.4f A/px by more than %d%%.'
                              % (srMask, srIn, SAMPLING_TOLERANCE * 100))
            return errors
        try:
            kw = K.xmipp_form_defaults(shape[-1], self._geometryName(), **self._formParams())
        except K.MaskError as exc:
            return [str(exc)]
        for name, value in self._formParams().items():
            if value < -1 or (value == -1 and name == 'inner_radius'):
                errors.append('%s = %s: sizes must be >= 0, or -1 for the Xmipp default.'
                              % (name, value))
        if errors:
            return errors
        if int(np.prod(shape)) <= 256 ** 3:       # cheap enough for the GUI
            try:
                K.make_mask(shape, self._geometryName(), center=self._center(), **kw)
            except K.MaskError as exc:
                errors.append(str(exc))
        return errors

    def _warnings(self):
        warnings = []
        if self._useCreatedMask() and self.inputMask.get() is not None:
            try:
                _, w = MaskRecipe(mask_file=self._projectPath(
                    self.inputMask.get().getFileName())).build(self._itemShape())
                warnings.extend(w)
            except (K.MaskError, ValueError) as exc:
                warnings.append(str(exc))
        elif not self._useCreatedMask():
            geo = self._geometryName()
            if not K.mask_is_binary(geo) and self.fillType.get() not in (C.FILL_VALUE,
                                                                          C.FILL_NOISE):
                warnings.append('A %s mask is soft: it multiplies the data and the fill '
                                '(%s) is ignored, as in Xmipp.'
                                % (geo.replace('_', ' '), C.FILL_CHOICES[self.fillType.get()]))
        return warnings

    def _methods(self):
        if not self.isFinished():
            return []
        return ['The %s were masked with %s [delaRosaTrevin2013] using cryoprocs '
                '[cryoprocs2026]%s.' % (self._itemNoun(plural=True), self._maskDescription(),
                                        '' if self._useCreatedMask() else
                                        ', filling the outside with %s'
                                        % C.FILL_CHOICES[self.fillType.get()])]

    def _citations(self):
        return ['delaRosaTrevin2013']

    def _itemNoun(self, plural=False):
        raise NotImplementedError


class ProtCryoprocsApplyMask2D(ProtCryoprocsApplyMaskBase):
    """Apply a geometric (circular, box, crown, gaussian, raised cosine, raised crown) or a
    created 2D mask to a set of particles, with Xmipp's results. Output particles keep every
    input attribute; only the image changes."""
    _label = 'apply 2d mask'
    _devStatus = BETA
    _dims = 2
    _geometries = K.GEOMETRIES_2D
    _choices = C.MASK2D_CHOICES
    _possibleOutputs = {C.OUTPUT_PARTICLES: SetOfParticles}

    #: at most this many bytes of input per step (resume granularity for huge sets)
    MAX_CHUNK_BYTES = 4 * 1024 ** 3

    def _defineParams(self, form):
        form.addSection(label='Input')
        form.addParam('inputParticles', params.PointerParam, pointerClass='SetOfParticles',
                      important=True, label='Input particles',
                      help='Particles to mask. Images are read from their stacks in blocks and '
                           'written once into one float32 stack.')
        self._defineMaskParams(form)

    # ---------------------------------------------------------------- steps
    def _insertAllSteps(self):
        # pyworkflow's parallel executor polls every 3 s, so the set is cut into one chunk
        # per worker thread (more only for very large sets), not into many small steps.
        inSet = self.inputParticles.get()
        n = inSet.getSize()
        xdim = inSet.getXDim() or 1
        nChunks = max(max(1, self._totalThreads() - 1),
                      math.ceil(n * xdim * xdim * 4 / self.MAX_CHUNK_BYTES))
        chunk = max(1, math.ceil(n / nChunks))
        ranges = [(i0, min(i0 + chunk, n)) for i0 in range(0, n, chunk)]
        ids = self._insertItemSteps(self.maskChunkStep, [r + (len(ranges),) for r in ranges])
        self._insertFunctionStep(self.createOutputStep, prerequisites=ids, needsGPU=False)

    def _sourcesFile(self):
        return self._getExtraPath('input_locations.npz')

    def _outputStack(self):
        return self._getExtraPath(C.MASKED_PARTICLES_FILE)

    def _prepareInput(self):
        """List the input locations and preallocate the output stack, once per run
        (under the protocol lock; later chunk steps and resumed runs reuse the files)."""
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
            sources = ImageSources.from_locations(locations)
            preallocate_stack(self._outputStack(), len(ids), self._itemShape(),
                              inSet.getSamplingRate())
            tmp = self._getTmpPath('input_locations.npz')
            np.savez(tmp, paths=np.array(sources.paths), file_ids=sources.file_ids,
                     index=sources.index, ids=np.array(ids, dtype=np.int64))
            os.replace(tmp, self._sourcesFile())

    def _loadSources(self):
        z = np.load(self._sourcesFile())
        return ImageSources([str(p) for p in z['paths']], z['file_ids'], z['index']), z['ids']

    def maskChunkStep(self, i0, i1, nSteps):
        self._prepareInput()
        sources, _ = self._loadSources()
        i1 = min(i1, len(sources))
        threads = self._kernelThreads(nSteps)
        logger.info('particles %d..%d -> %s (%d threads)', i0 + 1, i1, self._outputStack(),
                    threads)
        with self._threadLimits(threads):
            mask_range(sources, self._recipe(), partial_path(self._outputStack()), i0, i1,
                       threads=threads)

    def createOutputStep(self):
        out = self._outputStack()
        if os.path.exists(partial_path(out)):
            finish_stack(out)
        _, ids = self._loadSources()
        position = {int(i): k + 1 for k, i in enumerate(ids)}
        inSet = self.inputParticles.get()
        outSet = self._createSetOfParticles()
        outSet.copyInfo(inSet)

        def updateLocation(item, row):
            item.setLocation(position[item.getObjId()], out)

        outSet.copyItems(inSet, updateItemCallback=updateLocation)
        self._defineOutputs(**{C.OUTPUT_PARTICLES: outSet})
        self._defineTransformRelation(self.inputParticles, outSet)

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
        if not hasattr(self, C.OUTPUT_PARTICLES):
            summary.append('Output not ready yet.')
            return summary
        out = getattr(self, C.OUTPUT_PARTICLES)
        summary.append('%d particles masked with %s.' % (out.getSize(), self._maskDescription()))
        if not self._useCreatedMask():
            summary.append('Fill: %s%s.' % (C.FILL_CHOICES[self.fillType.get()],
                                            ' %g' % self.fillValue.get()
                                            if self.fillType.get() == C.FILL_VALUE else ''))
        summary.append('Output stack: [[%s]]' % self._outputStack())
        return summary


class ProtCryoprocsApplyMask3D(ProtCryoprocsApplyMaskBase):
    """Apply a geometric (sphere, box, crown, cylinder, gaussian, raised cosine, raised crown)
    or a created 3D mask to a volume or a set of volumes, with Xmipp's results."""
    _label = 'apply 3d mask'
    _devStatus = BETA
    _dims = 3
    _geometries = K.GEOMETRIES_3D
    _choices = C.MASK3D_CHOICES
    _possibleOutputs = {C.OUTPUT_VOLUME: Volume, C.OUTPUT_VOLUMES: SetOfVolumes}

    def _defineParams(self, form):
        form.addSection(label='Input')
        form.addParam('inputVolumes', params.PointerParam, pointerClass='Volume, SetOfVolumes',
                      important=True, label='Input volume(s)',
                      help='A volume (output: outputVolume) or a set of volumes (output: '
                           'outputVolumes). Each volume is written to its own float32 MRC file.')
        self._defineMaskParams(form)

    def _isSet(self):
        return isinstance(self.inputVolumes.get(), SetOfVolumes)

    def _inputItems(self):
        """[(objId, (index, path))] of the enabled input volumes, in id order."""
        inp = self.inputVolumes.get()
        vols = inp.iterItems(orderBy='id') if self._isSet() else [inp]
        return [(v.getObjId(), v.getLocation()) for v in vols if v.isEnabled()]

    def _outputFile(self, objId):
        if self._isSet():
            return self._getExtraPath('output_volume_%06d.mrc' % objId)
        return self._getExtraPath('output_volume.mrc')

    # ---------------------------------------------------------------- steps
    def _insertAllSteps(self):
        # one step per worker thread (pyworkflow polls every 3 s between steps)
        n = self.inputVolumes.get().getSize() if self._isSet() else 1
        chunk = max(1, math.ceil(n / max(1, self._totalThreads() - 1)))
        ranges = [(i0, min(i0 + chunk, n)) for i0 in range(0, n, chunk)]
        ids = self._insertItemSteps(self.maskVolumesStep, [r + (len(ranges),) for r in ranges])
        self._insertFunctionStep(self.createOutputStep, prerequisites=ids, needsGPU=False)

    def maskVolumesStep(self, i0, i1, nSteps):
        items = self._inputItems()[i0:i1]
        recipe = self._recipe()
        threads = self._kernelThreads(nSteps)
        sr = self._inputSamplingRate()
        with self._threadLimits(threads):
            for k, (objId, location) in enumerate(items):
                out = self._outputFile(objId)
                if os.path.exists(out):          # finished before a restart
                    continue
                sources = ImageSources.from_locations(
                    [(location[0], self._projectPath(location[1]))], item_ndim=3)
                res = recipe.apply(sources.read_item(0)[None], first_index=i0 + k)
                write_mrc(out, res[0], voxel_size=sr)
                logger.info('volume id %d -> %s', objId, out)

    def createOutputStep(self):
        inp = self.inputVolumes.get()
        if self._isSet():
            outSet = self._createSetOfVolumes()
            outSet.copyInfo(inp)

            def updateItem(item, row):
                item.setLocation(self._outputFile(item.getObjId()))
                item.setHalfMaps([])

            outSet.copyItems(inp, updateItemCallback=updateItem)
            self._defineOutputs(**{C.OUTPUT_VOLUMES: outSet})
            self._defineTransformRelation(self.inputVolumes, outSet)
        else:
            vol = Volume()
            vol.copyInfo(inp)
            vol.setLocation(self._outputFile(inp.getObjId()))
            vol.setHalfMaps([])
            self._defineOutputs(**{C.OUTPUT_VOLUME: vol})
            self._defineTransformRelation(self.inputVolumes, vol)

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
        if self._isSet() and self.inputVolumes.get().getSize() == 0:
            return ['The input set of volumes is empty.']
        return super()._validate()

    def _summary(self):
        if hasattr(self, C.OUTPUT_VOLUMES):
            n = getattr(self, C.OUTPUT_VOLUMES).getSize()
        elif hasattr(self, C.OUTPUT_VOLUME):
            n = 1
        else:
            return ['Output not ready yet.']
        summary = ['%d volume%s masked with %s.' % (n, 's' if n > 1 else '',
                                                   self._maskDescription())]
        if not self._useCreatedMask():
            summary.append('Fill: %s%s.' % (C.FILL_CHOICES[self.fillType.get()],
                                            ' %g' % self.fillValue.get()
                                            if self.fillType.get() == C.FILL_VALUE else ''))
        return summary

