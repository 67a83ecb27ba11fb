"""Analyze Results of ApplyMask2D / ApplyMask3D: input | mask | output with the mask outline
(central orthogonal slices of a volume, a montage of particles)."""
import numpy as np
import pyworkflow.protocol.params as params
from pwem.objects import SetOfVolumes

from .. import constants
from ..plots import figures
from ..plots.images import spread_indices
from ..protocols.protocol_apply_mask import ProtCryoprocsApplyMask2D, ProtCryoprocsApplyMask3D
from .viewer_base import CryoprocsProtocolViewer, FigureView, read_image, read_volume


def _display_mask(mask):
    """The mask as float32 scaled to peak 1 (a unit-integral gaussian peaks far below 1)."""
    m = np.asarray(mask, dtype=np.float32)
    peak = float(m.max()) if m.size else 0.0
    return m / peak if peak > 0 else m


def _mask_for(prot, shape):
    """The mask the run applied to items of ``shape`` (its form's recipe, built by the
    kernels), scaled for display."""
    mask, _ = prot._recipe().build(tuple(shape))
    return _display_mask(mask)


class CryoprocsMask3DViewer(CryoprocsProtocolViewer):
    """Central XY, XZ and YZ slices of the input volume, the mask and the masked volume,
    with the mask outline (half of its peak) drawn on each."""
    _label = 'apply 3d mask viewer'
    _targets = [ProtCryoprocsApplyMask3D]

    def _defineViews(self, form):
        n = self._count()
        if n > 1:
            form.addParam('volumeNumber', params.IntParam, default=1,
                          validators=[params.Range(1, n)],
                          label='Volume number (1-%d)' % n,
                          help='Position of the volume in the set (id order).')
        form.addParam('displaySlices', params.LabelParam,
                      label='Input | mask | output (central slices)',
                      help='Rows: input, mask, output; columns: the central XY, XZ and YZ '
                           'slices (index size//2); the yellow line is the mask outline.')

    def _count(self):
        out = getattr(self.protocol, constants.OUTPUT_VOLUMES, None)
        return out.getSize() if out is not None else 1

    def _views(self):
        return {'displaySlices': self._showSlices}

    def _pair(self):
        """(input volume, output volume) of the chosen position."""
        prot = self.protocol
        inp = prot.inputVolumes.get()
        if isinstance(inp, SetOfVolumes):
            out = getattr(prot, constants.OUTPUT_VOLUMES)
            k = (self.volumeNumber.get() if hasattr(self, 'volumeNumber') else 1) - 1
            outs = [v.clone() for v in out.iterItems(orderBy='id')]
            o = outs[min(max(k, 0), len(outs) - 1)]
            i = inp[o.getObjId()]
            return i, o
        return inp, getattr(prot, constants.OUTPUT_VOLUME)

    def _showSlices(self, paramName=None):
        if not (hasattr(self.protocol, constants.OUTPUT_VOLUME) or
                hasattr(self.protocol, constants.OUTPUT_VOLUMES)):
            return self._message('The run has no output volume yet.')
        inp, out = self._pair()
        vol = read_volume(self._path(inp.getFileName()))
        res = read_volume(self._path(out.getFileName()))
        mask = _mask_for(self.protocol, vol.shape)
        title = self._title('%s (%s)' % (out.getFileName(), self.protocol._maskDescription()))
        return [FigureView(lambda fig: figures.draw_mask_volume(fig, vol, mask, res, title=title),
                           'Input | mask | output', figsize=(9, 9))]


class CryoprocsMask2DViewer(CryoprocsProtocolViewer):
    """Montages of input particles, the mask and the masked particles, with the mask
    outline."""
    _label = 'apply 2d mask viewer'
    _targets = [ProtCryoprocsApplyMask2D]

    def _defineViews(self, form):
        form.addParam('numberOfParticles', params.IntParam, default=16,
                      validators=[params.Range(1, 100)], label='Particles to show',
                      help='Particles spread evenly over the set (first and last included).')
        form.addParam('displayMontage', params.LabelParam,
                      label='Input | mask | output (montage)',
                      help='The same particles before and after masking, and the mask; the '
                           'yellow line is the mask outline (half of its peak).')

    def _views(self):
        return {'displayMontage': self._showMontage}

    def _showMontage(self, paramName=None):
        out = getattr(self.protocol, constants.OUTPUT_PARTICLES, None)
        if out is None:
            return self._message('The run has no output particles yet.')
        inp = self.protocol.inputParticles.get()
        ids = [p.getObjId() for p in out.iterItems(orderBy='id')]
        pick = [ids[i] for i in spread_indices(len(ids), self.numberOfParticles.get())]
        before, after = [], []
        for pid in pick:
            before.append(read_image(self._locationOf(inp[pid])))
            after.append(read_image(self._locationOf(out[pid])))
        mask = _mask_for(self.protocol, before[0].shape)
        title = self._title('%d of %d particles (%s)' % (len(pick), len(ids),
                                                          self.protocol._maskDescription()))
        return [FigureView(lambda fig: figures.draw_mask_particles(
            fig, before, mask, after, labels=['id %d' % i for i in pick], title=title),
            'Input | mask | output', figsize=(12, 5))]

    def _locationOf(self, particle):
        index, fn = particle.getLocation()
        return index, self._path(fn)
