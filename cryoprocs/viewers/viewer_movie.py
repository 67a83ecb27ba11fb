"""Analyze Results of ExportMovie: the preview montage of the movies' central frames, with a
"play" button per movie that opens the file with the system's video player.

The movies themselves are files (MP4, AVI, GIF, PNG frames) that any player opens; the
summary lists them with their paths.
"""
import os

import pyworkflow.viewer as pwviewer

from ..plots import figures
from ..protocols.protocol_export_movie import ProtCryoprocsExportMovie
from .viewer_base import FigureView, system_open


class CryoprocsMovieViewer(pwviewer.Viewer):
    """Shows ``extra/preview.png`` of an export-movie run (the central frame of each movie,
    labelled by its name) with a play button per movie (system player: ``xdg-open`` on
    Linux, ``open`` on macOS)."""
    _label = 'movie preview'
    _environments = [pwviewer.DESKTOP_TKINTER]
    _targets = [ProtCryoprocsExportMovie]

    def _abs(self, path):
        return path if os.path.isabs(path) else os.path.join(self.getProject().getPath(), path)

    def _visualize(self, obj, **kwargs):
        preview = obj.getPreviewFile()
        if preview is None:
            return [pwviewer.MessageView('No preview yet: the run has not finished.',
                                         title='Movie preview',
                                         tkParent=self.getTkRoot())]
        import matplotlib.image as mpimg

        previewPath = self._abs(preview)
        movies = [(os.path.basename(p), self._abs(p)) for p in obj.getMovieFiles()]
        img = mpimg.imread(previewPath)
        title = ('%s: central frames of %d movie%s (%s)'
                 % (obj.getRunName(), len(movies), '' if len(movies) == 1 else 's',
                    obj._getExtraPath()))
        view = FigureView(lambda fig: figures.MoviePanel(fig, img, movies, system_open,
                                                         title=title),
                          'Movie preview (%s)' % ', '.join(m[0] for m in movies),
                          figsize=(max(6.0, min(12.0, img.shape[1] / 60.0)), 6.5))
        view.image = preview
        return [view]
