"""Analyze Results of ExtractSubtomos (a gallery of the 2D tilt stacks or 3D sub-volumes) and
ReconstructSubtomoAverage (orthogonal slices of the merged and half maps, and the FSC with
the plugin's 0.143 resolution)."""
import numpy as np
import pyworkflow.protocol.params as params

from .. import constants
from ..plots import figures
from ..plots.images import spread_indices
from ..protocols.protocol_extract_subtomos import ProtCryoprocsExtractSubtomos
from ..protocols.protocol_reconstruct import ProtCryoprocsReconstructSubtomoAverage
from .viewer_base import CryoprocsProtocolViewer, FigureView, read_volume


class CryoprocsExtractViewer(CryoprocsProtocolViewer):
    """A gallery of extracted subtomograms: the 2D tilt stacks (pseudo-subtomograms) or the
    3D sub-volumes, the same frame (tilt image) or z slice of each, chosen with a slider."""
    _label = 'extract subtomograms viewer'
    _targets = [ProtCryoprocsExtractSubtomos]

    def _defineViews(self, form):
        form.addParam('numberOfParticles', params.IntParam, default=24,
                      validators=[params.Range(1, 100)], label='Subtomograms to show',
                      help='Subtomograms spread evenly over the set (first and last '
                           'included).')
        form.addParam('displayGallery', params.LabelParam, label='Gallery',
                      help='2D tilt stacks: the same relative frame of every stack (the '
                           'middle one first); 3D sub-volumes: the same z slice. Move the '
                           'slider to browse.')

    def _views(self):
        return {'displayGallery': self._showGallery}

    def _showGallery(self, paramName=None):
        subs = getattr(self.protocol, constants.OUTPUT_SUBTOMOGRAMS, None)
        if subs is None or subs.getSize() == 0:
            return self._message('The run has no subtomograms yet.')
        items = [s.clone() for s in subs.iterItems(orderBy='id')]
        items = [items[i] for i in spread_indices(len(items), self.numberOfParticles.get())]
        stacks = [read_volume(self._path(s.getFileName())) for s in items]
        titles = ['%s #%d' % (s.getVolName(), s.getObjId()) for s in items]
        is2d = self.protocol._is2d()
        what = '2D tilt stacks' if is2d else '3D sub-volumes'
        title = self._title('%d of %d %s, %d px, %.2f Å/px'
                            % (len(items), subs.getSize(), what, stacks[0].shape[-1],
                               subs.getSamplingRate()))
        return [FigureView(lambda fig: figures.StackGallery(
            fig, stacks, titles, frame_label='tilt frame' if is2d else 'z', title=title),
            'Subtomograms', figsize=(11, 8))]


class CryoprocsReconstructViewer(CryoprocsProtocolViewer):
    """Central slices of the merged map and the half maps, and the FSC between the half maps
    with the resolution at 0.143 computed by cryoprocs (the number of the summary)."""
    _label = 'reconstruct subtomogram average viewer'
    _targets = [ProtCryoprocsReconstructSubtomoAverage]

    def _defineViews(self, form):
        form.addParam('displayMaps', params.LabelParam,
                      label='Merged and half maps (central slices)',
                      help='Central XY, XZ and YZ slices of the merged map and of both half '
                           'maps.')
        form.addParam('displayFsc', params.LabelParam, label='FSC (0.143)',
                      help='FSC between the half maps; the resolution is where it first '
                           'falls below 0.143 (linear interpolation between shells), the '
                           'number of the run summary.')

    def _views(self):
        return {'displayMaps': self._showMaps, 'displayFsc': self._showFsc}

    def _showMaps(self, paramName=None):
        avg = getattr(self.protocol, constants.OUTPUT_AVERAGE, None)
        if avg is None:
            return self._message('The run has no map yet.')
        maps = [('merged', read_volume(self._path(avg.getFileName())))]
        halves = avg.getHalfMaps()
        if isinstance(halves, str):
            halves = [h for h in halves.split(',') if h]
        for k, h in enumerate(halves or []):
            maps.append(('half %d' % (k + 1), read_volume(self._path(h))))
        title = self._title('%s, %.3f Å/px' % (avg.getFileName(), avg.getSamplingRate()))
        return [FigureView(lambda fig: figures.draw_orthoslices(fig, maps, title=title),
                           'Subtomogram average', figsize=(9, 3 * len(maps) + 0.6))]

    def _showFsc(self, paramName=None):
        fsc = getattr(self.protocol, constants.OUTPUT_FSC, None)
        if fsc is None:
            return self._message('No FSC: the particles have no half sets (rlnRandomSubset).')
        from ..kernels.fsc import fsc_resolution
        x, y = (np.asarray(v, dtype=np.float64) for v in fsc.getData())
        res, at_nyquist = fsc_resolution(x, y, 0.143)
        title = self._title('FSC between the half maps')

        def draw(fig):
            ax = fig.add_subplot(111)
            figures.draw_fsc(ax, x, y, res, at_nyquist)
            fig.suptitle(title, fontsize=10)
            fig.tight_layout()
            return ax
        return [FigureView(draw, 'FSC', figsize=(8, 5.5))]
