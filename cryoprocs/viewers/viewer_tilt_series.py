"""Analyze Results of the protocols that make tilt series (import relion 5 project, simulate
tilt series, tilt series from stacks): a browser of the tilt images with their angle and
pre-exposure, and the per-tilt dose and defocus."""
import numpy as np
import pyworkflow.protocol.params as params

from .. import constants
from ..plots import figures
from ..protocols.protocol_import_relion5 import ProtCryoprocsImportRelion5
from ..protocols.protocol_tilt_series_from_stacks import ProtCryoprocsTiltSeriesFromStacks
from .viewer_base import CryoprocsProtocolViewer, FigureView, read_volume


def _tilts(ts):
    """``[(angle, acquisition order, pre-exposure, (index, file), tilt image)]`` of the
    enabled images of a tilt series, in tilt-angle order."""
    rows = []
    for ti in ts.iterItems(orderBy='id'):
        if not ti.isEnabled():
            continue
        acq = ti.getAcquisition()
        dose = acq.getDoseInitial() if acq is not None else None
        rows.append((ti.getTiltAngle(), ti.getAcquisitionOrder(), dose, ti.getLocation(),
                     ti.clone()))
    rows.sort(key=lambda r: r[0])
    return rows


class CryoprocsTiltSeriesViewer(CryoprocsProtocolViewer):
    """Tilt images browsed in tilt-angle order (angle, acquisition order and pre-exposure
    written under the image) and the per-tilt pre-exposure and CTF defocus."""
    _label = 'tilt series viewer'
    _targets = [ProtCryoprocsImportRelion5, ProtCryoprocsTiltSeriesFromStacks]

    def _defineViews(self, form):
        ts = getattr(self.protocol, constants.OUTPUT_TILT_SERIES, None)
        self._tsIds = sorted(t.getTsId() for t in ts) if ts is not None else []
        if len(self._tsIds) > 1:
            form.addParam('tsIdIndex', params.EnumParam, choices=self._tsIds, default=0,
                          display=params.EnumParam.DISPLAY_COMBO, label='Tilt series',
                          help='tsId of the tilt series to show.')
        form.addParam('displayTilts', params.LabelParam, label='Tilt images',
                      help='The tilt images in tilt-angle order; move the slider to browse.')
        form.addParam('displayPlots', params.LabelParam, label='Dose and defocus per tilt',
                      help='Pre-exposure (e/Å²) and, with CTF series, defocus U/V (Å) '
                           'against the tilt angle.')

    def _views(self):
        return {'displayTilts': self._showTilts, 'displayPlots': self._showPlots}

    def _series(self):
        tsId = self._tsIds[self.tsIdIndex.get()] if hasattr(self, 'tsIdIndex') \
            else self._tsIds[0]
        ts = [t.clone() for t in getattr(self.protocol, constants.OUTPUT_TILT_SERIES)
              if t.getTsId() == tsId][0]
        return tsId, ts

    def _showTilts(self, paramName=None):
        if not self._tsIds:
            return self._message('The run has no tilt series yet.')
        tsId, ts = self._series()
        rows = _tilts(ts)
        maps = {}

        def image(k):
            index, fn = rows[k][3]
            path = self._path(fn)
            if path not in maps:
                maps[path] = read_volume(path)
            return maps[path][int(index) - 1 if index else 0]

        def info(k):
            angle, order, dose = rows[k][:3]
            return 'tilt %.1f°, acquisition order %s%s' % (
                angle, order, ', pre-exposure %.1f e/Å²' % dose if dose is not None else '')
        title = self._title('%s: %d tilt images, %.3f Å/px' % (tsId, len(rows),
                                                               ts.getSamplingRate()))
        zero = int(np.argmin([abs(r[0]) for r in rows]))
        return [FigureView(lambda fig: figures.SliceBrowser(fig, [('tilt image', image)], len(rows),
                                                            z=zero, info=info, title=title),
                           'Tilt series: %s' % tsId, figsize=(8, 8))]

    def _showPlots(self, paramName=None):
        if not self._tsIds:
            return self._message('The run has no tilt series yet.')
        tsId, ts = self._series()
        rows = _tilts(ts)
        angles = [r[0] for r in rows]
        doses = [r[2] if r[2] is not None else np.nan for r in rows]
        du = dv = None
        ctfSet = getattr(self.protocol, constants.OUTPUT_CTF_SERIES, None)
        if ctfSet is not None:
            series = [c.clone() for c in ctfSet if c.getTsId() == tsId]
            if series:
                # clones: a set's iteration refills one object
                by_order = {c.getAcquisitionOrder(): c.clone() for c in series[0].iterItems()}
                du = [getattr(by_order.get(r[1]), 'getDefocusU', lambda: np.nan)()
                      for r in rows]
                dv = [getattr(by_order.get(r[1]), 'getDefocusV', lambda: np.nan)()
                      for r in rows]
        title = self._title('%s: per-tilt values' % tsId)
        return [FigureView(lambda fig: figures.draw_tilt_plots(fig, angles, doses, du, dv,
                                                               title=title),
                           'Tilt series values: %s' % tsId,
                           figsize=(11 if du is not None else 6, 4.5))]
