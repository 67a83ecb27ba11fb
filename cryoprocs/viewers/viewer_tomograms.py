"""Analyze Results of MaskedTomogramNoiseFill (a before/after slice browser with the mask and
the kept region outlined) and ScoresPeakPicking (the diagnostics plots and the picks drawn on
the tomogram slices)."""
import os

import numpy as np
import pyworkflow.protocol.params as params

from .. import constants
from ..plots import figures
from ..plots.images import kept_region
from ..protocols.protocol_noise_fill import ProtCryoprocsMaskedTomogramNoiseFill
from ..protocols.protocol_scores_peak_picking import ProtCryoprocsScoresPeakPicking
from .viewer_base import CryoprocsProtocolViewer, FigureView, read_volume, tsid_choices


def _header_max(path):
    import mrcfile
    with mrcfile.open(path, header_only=True, permissive=True) as m:
        return float(m.header.dmax)


class CryoprocsNoiseFillViewer(CryoprocsProtocolViewer):
    """Slices of the tomogram before and after the noise fill, browsed along z, with the
    mask outline (yellow) and the outline of the kept region (red: the voxels that keep the
    tomogram's values, or the soft mask >= 0.5 when it was saved)."""
    _label = 'noise fill viewer'
    _targets = [ProtCryoprocsMaskedTomogramNoiseFill]

    def _defineViews(self, form):
        self._tsIds = self._outputTsIds()
        if len(self._tsIds) > 1:
            form.addParam('tsIdIndex', params.EnumParam, choices=self._tsIds, default=0,
                          display=params.EnumParam.DISPLAY_COMBO, label='Tomogram',
                          help='tsId of the tomogram to browse.')
        form.addParam('displayBrowser', params.LabelParam,
                      label='Before / after slice browser',
                      help='The same z slice of the input and of the noise-filled tomogram '
                           '(one grey window); move the slider to browse z.')

    def _outputTsIds(self):
        out = getattr(self.protocol, constants.OUTPUT_NOISE_FILLED_TOMOS, None)
        return tsid_choices(out) if out is not None else []

    def _views(self):
        return {'displayBrowser': self._showBrowser}

    def _tsId(self):
        return self._tsIds[self.tsIdIndex.get()] if hasattr(self, 'tsIdIndex') \
            else self._tsIds[0]

    def _showBrowser(self, paramName=None):
        if not self._tsIds:
            return self._message('The run has no noise-filled tomogram yet.')
        prot, tsId = self.protocol, self._tsId()
        after_t = [t.clone() for t in getattr(prot, constants.OUTPUT_NOISE_FILLED_TOMOS)
                   if t.getTsId() == tsId][0]
        before_t = [t.clone() for t in prot.inputTomograms.get() if t.getTsId() == tsId][0]
        masks = prot.inputMasks.get()
        mask_t = masks if prot._singleMask() else \
            [m.clone() for m in masks if m.getTsId() == tsId][0]
        before = read_volume(self._path(before_t.getFileName()))
        after = read_volume(self._path(after_t.getFileName()))
        mask_path = self._path(mask_t.getFileName())
        mask = read_volume(mask_path)
        if prot.parityMode.get():
            level = 127.5 if _header_max(mask_path) > 1 else 0.5
        else:
            level = float(prot.maskThreshold.get())
        soft = None
        softSet = getattr(prot, constants.OUTPUT_NOISE_FILL_MASKS, None)
        if softSet is not None:
            found = [m.clone() for m in softSet if m.getTsId() == tsId]
            if found:
                soft = read_volume(self._path(found[0].getFileName()))

        def kept(z):
            if soft is not None:
                return np.asarray(soft[z], dtype=np.float32) >= 0.5
            return kept_region(before[z], after[z])

        outlines = [(lambda z: np.asarray(mask[z], dtype=np.float32) > level, figures.OUTLINE,
                     'mask (> %g)' % level),
                    (lambda z: kept(z).astype(np.float32), figures.KEPT,
                     'kept region' + (' (soft mask >= 0.5)' if soft is not None
                                      else ' (input values kept)'))]
        title = self._title('%s: before | after noise fill' % tsId)
        return [FigureView(lambda fig: figures.SliceBrowser(
            fig, [('before', lambda z: before[z]), ('after', lambda z: after[z])],
            before.shape[0], outlines=outlines, title=title),
            'Noise fill: %s' % tsId, figsize=(12, 6.5))]


class CryoprocsPeakPickingViewer(CryoprocsProtocolViewer):
    """The picking diagnostics of each tomogram (score histogram with the Gaussian model and
    the threshold, sorted scores) and the picks drawn on the tomogram's slices (browse z)."""
    _label = 'scores peak picking viewer'
    _targets = [ProtCryoprocsScoresPeakPicking]

    def _defineViews(self, form):
        self._tsIds = self._pickedTsIds()
        if len(self._tsIds) > 1:
            form.addParam('tsIdIndex', params.EnumParam, choices=self._tsIds, default=0,
                          display=params.EnumParam.DISPLAY_COMBO, label='Tomogram',
                          help='tsId of the tomogram to show.')
        form.addParam('displayDiagnostics', params.LabelParam,
                      label='Picking diagnostics',
                      help='Score histogram with its Gaussian model and the threshold, the '
                           'sorted candidate and pick scores, and the expected false '
                           'positives (extra/<tsId>_diagnostics.png).')
        form.addParam('displayPicks', params.LabelParam,
                      label='Picks on the tomogram slices',
                      help='Each pick is drawn as the section of a sphere of the box '
                           'radius on the slices it cuts, coloured by score (yellow = '
                           'best); move the slider to browse z.')

    def _pickedTsIds(self):
        path = self.protocol._getExtraPath(constants.PEAKS_SUMMARY_JSON)
        if not os.path.exists(self._path(path)):
            return []
        import json
        with open(self._path(path)) as fh:
            return sorted(json.load(fh)["tomograms"])

    def _views(self):
        return {'displayDiagnostics': self._showDiagnostics, 'displayPicks': self._showPicks}

    def _tsId(self):
        return self._tsIds[self.tsIdIndex.get()] if hasattr(self, 'tsIdIndex') \
            else self._tsIds[0]

    def _showDiagnostics(self, paramName=None):
        if not self._tsIds:
            return self._message('The run has no picks yet.')
        tsId = self._tsId()
        png = self._path(self.protocol._diagFile(tsId))
        if not os.path.exists(png):
            return self._message('No diagnostics for %s (%s).' % (tsId, png))
        import matplotlib.image as mpimg
        img = mpimg.imread(png)
        return [FigureView(lambda fig: figures.draw_image_file(fig, img),
                           'Picking diagnostics: %s' % tsId,
                           figsize=(img.shape[1] / 100.0, img.shape[0] / 100.0))]

    def _showPicks(self, paramName=None):
        coords = getattr(self.protocol, constants.OUTPUT_COORDINATES, None)
        if coords is None or not self._tsIds:
            return self._message('The run has no coordinates yet.')
        from ..convert.scipion import coordinate_blc
        tsId = self._tsId()
        tomos = [t.clone() for t in coords.getPrecedents() if t.getTsId() == tsId]
        if not tomos:
            return self._message('No tomogram %s among the coordinates\' tomograms.' % tsId)
        tomo = tomos[0]
        picks = [tuple(coordinate_blc(c)) + (c.getScore() or 0.0,)
                 for c in coords.iterCoordinates(volume=tomo)]
        vol = read_volume(self._path(tomo.getFileName()))
        radius = max(1.0, coords.getBoxSize() / 2.0)
        title = self._title('%s: %d picks, circles of the box radius %g px'
                            % (tsId, len(picks), radius))
        return [FigureView(lambda fig: figures.PicksBrowser(fig, lambda z: vol[z], vol.shape[0],
                                                            picks, radius, title=title),
                           'Picks: %s' % tsId, figsize=(8, 8))]
