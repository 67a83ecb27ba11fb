"""Analyze Results of ImportCopick and ExportCopick: the picks drawn on the tomogram slices
(browse z), with the imported segmentations outlined.

ImportCopick: its output tomograms (OME-Zarr stores read lazily, or the MRC copies), its
coordinates and its tomo masks. ExportCopick: the pick set it wrote, read back from the copick
project with copick's API (convert/copick_io.py), drawn on the tomogram of its input
coordinates (or of its input subtomograms' coordinates).
"""
import os

import numpy as np
import pyworkflow.protocol.params as params

from .. import constants
from ..plots import figures
from ..protocols.protocol_export_copick import ProtCryoprocsExportCopick
from ..protocols.protocol_import_copick import ProtCryoprocsImportCopick
from .viewer_base import CryoprocsProtocolViewer, FigureView, read_volume

#: box size (px) of the circles when neither the coordinates nor the copick object give one
DEFAULT_BOX = 16


def exported_picks(config, run, object_name, user_id, session_id, voxel_size):
    """``(n, 4)`` picks (0-based voxel x, y, z of ``voxel_size`` Å, score) of one copick pick
    set of run ``run``, read with copick's API (positions as
    :func:`cryoprocs.convert.copick_io.picks_positions_voxels`).

    Raises
    ------
    CopickError
        an unreadable project, a missing run or object, no such pick set.
    """
    from ..convert import copick_io
    root = copick_io.open_project(config)
    runs = copick_io.select_runs(root, [run])
    rows = []
    for ps in copick_io.read_picks(root, runs, [object_name], [user_id], [session_id]):
        vox = copick_io.picks_positions_voxels(ps["locations"], ps["transforms"], voxel_size)
        rows.append(np.column_stack([vox, ps["scores"]]))
    return np.concatenate(rows) if rows else np.zeros((0, 4))


def _object_box(config, object_name, voxel_size):
    """Box size (px) of a copick object: its diameter (2 x radius Å) at ``voxel_size``, or
    None."""
    from ..convert import copick_io
    try:
        obj = copick_io.open_project(config).get_object(object_name)
    except copick_io.CopickError:
        return None
    r = getattr(obj, "radius", None) if obj is not None else None
    return 2.0 * float(r) / float(voxel_size) if r else None


class CryoprocsCopickViewer(CryoprocsProtocolViewer):
    """The picks of a copick import or export drawn on the slices of their tomogram (spheres
    of the box radius, coloured by score), with the imported segmentations outlined."""
    _label = 'copick viewer'
    _targets = [ProtCryoprocsImportCopick, ProtCryoprocsExportCopick]

    def _isExport(self):
        return isinstance(self.protocol, ProtCryoprocsExportCopick)

    def _defineViews(self, form):
        self._tsIds = sorted(self._tomograms())
        if len(self._tsIds) > 1:
            form.addParam('tsIdIndex', params.EnumParam, choices=self._tsIds, default=0,
                          display=params.EnumParam.DISPLAY_COMBO,
                          label='Tomogram (copick run)',
                          help='tsId of the tomogram, i.e. the name of its copick run.')
        form.addParam('displayPicks', params.LabelParam,
                      label='Picks on the tomogram slices',
                      help='Each pick is drawn as the section of a sphere of the box radius '
                           'on the slices it cuts, coloured by score (red = lowest, yellow '
                           '= highest); move the slider to browse z. '
                           + ('The picks are those this run wrote, read back from the '
                              'copick project.' if self._isExport() else
                              'Imported segmentations are outlined.'))

    def _views(self):
        return {'displayPicks': self._showPicks}

    # ---------------------------------------------------------------- inputs
    def _tomograms(self):
        """``{tsId: tomogram}`` to draw on: the import's output tomograms, or the tomograms
        of the export's input coordinates (the subtomograms' coordinates)."""
        prot = self.protocol
        if not self._isExport():
            tomos = getattr(prot, constants.OUTPUT_TOMOGRAMS, None)
            return {t.getTsId(): t.clone() for t in tomos} if tomos is not None else {}
        cset = self._inputCoordinates()
        if cset is None:
            return {}
        try:
            return {t.getTsId(): t.clone() for t in cset.getPrecedents()}
        except Exception:                       # coordinates without their tomograms
            return {}

    def _inputCoordinates(self):
        """The export's input as a SetOfCoordinates3D (subtomograms: their coordinates)."""
        obj = self.protocol.inputObjects.get()
        if obj is None:
            return None
        if hasattr(obj, "getPrecedents"):
            return obj
        from pyworkflow.object import Pointer
        cset = obj.getCoordinates3D() if hasattr(obj, "getCoordinates3D") else None
        return cset.get() if isinstance(cset, Pointer) else cset

    def _tsId(self):
        return self._tsIds[self.tsIdIndex.get()] if hasattr(self, 'tsIdIndex') \
            else self._tsIds[0]

    # ---------------------------------------------------------------- views
    def _showPicks(self, paramName=None):
        if not self._tsIds:
            return self._message('The run has no tomograms yet.' if not self._isExport() else
                                 'The input coordinates have no tomograms to draw on.')
        tsId = self._tsId()
        tomo = self._tomograms()[tsId]
        if self._isExport():
            found = self._exportedPicks(tsId, tomo)
        else:
            found = self._importedPicks(tsId, tomo)
        if isinstance(found, str):
            return self._message(found)
        picks, radius, what, outlines = found
        try:
            vol = read_volume(self._path(tomo.getFileName()))
        except (OSError, ValueError) as exc:
            return self._message('Cannot read the tomogram %s: %s' % (tsId, exc))
        title = self._title('%s: %s, circles of the box radius %g px'
                            % (tsId, what, radius))
        return [FigureView(lambda fig: figures.PicksBrowser(fig, lambda z: vol[z], vol.shape[0],
                                                      picks, radius, title=title,
                                                      outlines=outlines),
                           'copick picks: %s' % tsId, figsize=(8, 8))]

    def _importedPicks(self, tsId, tomo):
        """``(picks, radius, title text, outlines)`` of the import's coordinates and
        segmentations of ``tsId``."""
        from ..convert.scipion import coordinate_blc
        coords = getattr(self.protocol, constants.OUTPUT_COORDINATES, None)
        rows, objects = [], set()
        radius = DEFAULT_BOX / 2.0
        if coords is not None:
            radius = max(1.0, (coords.getBoxSize() or DEFAULT_BOX) / 2.0)
            for c in coords.iterCoordinates(volume=tomo):
                rows.append(tuple(coordinate_blc(c)) + (c.getScore() or 0.0,))
                if hasattr(c, "_copickObject"):
                    objects.add(str(c._copickObject.get()))
            what = '%d picks' % len(rows)
            if objects:
                what += ' of %s' % ", ".join(sorted(objects))
        else:
            what = 'no picks imported'
        outlines = []
        masks = getattr(self.protocol, constants.OUTPUT_TOMO_MASKS, None)
        if masks is not None:
            mine = [m.clone() for m in masks if m.getTsId() == tsId]
            for k, m in enumerate(mine):
                seg = read_volume(self._path(m.getFileName()))
                name = getattr(m, "_copickName", None)
                label = 'segmentation %s' % (name.get() if name is not None else
                                             m.getFileName())
                outlines.append((lambda z, s=seg: np.asarray(s[z]) > 0,
                                 figures.SEGMENTATION[k % len(figures.SEGMENTATION)], label))
        return np.asarray(rows, dtype=np.float64).reshape(-1, 4), radius, what, outlines

    def _exportedPicks(self, tsId, tomo):
        """``(picks, radius, title text, [])`` of the pick set the export wrote for run
        ``tsId``, read back from the copick project; a message when there is none."""
        from ..convert import copick_io
        from ..protocols.protocol_base import read_json
        prot = self.protocol
        info = read_json(self._path(prot._infoFile()))
        if info is None or not info.get("written"):
            return 'The run has not written its picks into the copick project yet.'
        config = prot.configFile.get()
        obj, user, session = prot.objectName.get(), prot.userId.get(), prot.sessionId.get()
        voxel = float(tomo.getSamplingRate() or info["sampling_rate"])
        try:
            picks = exported_picks(config, tsId, obj, user, session, voxel)
        except copick_io.CopickError as exc:
            return 'Cannot read the picks back from %s: %s' % (config, exc)
        cset = self._inputCoordinates()
        box = cset.getBoxSize() if cset is not None else None
        box = box or _object_box(config, obj, voxel) or DEFAULT_BOX
        what = '%d picks of %s by %s, session %s (read back from %s)' % (
            len(picks), obj, user, session, os.path.basename(config))
        return picks, max(1.0, box / 2.0), what, []
