"""Analyze Results of ExportMovie: the preview montage of the movies' central frames.

The movies themselves are files (MP4, AVI, GIF, PNG frames) that any player opens; the
summary lists them with their paths.
"""
import os

import pyworkflow.viewer as pwviewer

from ..protocols.protocol_export_movie import ProtCryoprocsExportMovie


class CryoprocsMovieViewer(pwviewer.Viewer):
    """Shows ``extra/preview.png`` of an export-movie run (the central frame of each movie,
    labelled by its name) and lists the movie files in the window title."""
    _label = 'movie preview'
    _environments = [pwviewer.DESKTOP_TKINTER]
    _targets = [ProtCryoprocsExportMovie]

    def _visualize(self, obj, **kwargs):
        preview = obj.getPreviewFile()
        if preview is None:
            return [pwviewer.MessageView('No preview yet: the run has not finished.',
                                         title='Movie preview',
                                         tkParent=self.getTkRoot())]
        import matplotlib.image as mpimg
        from pyworkflow.gui.plotter import Plotter

        movies = [os.path.basename(p) for p in obj.getMovieFiles()]
        plotter = Plotter(windowTitle='Movie preview (%s): %s'
                          % (obj._getExtraPath(), ', '.join(movies)))
        ax = plotter.createSubPlot('Central frames of %d movie%s'
                                   % (len(movies), 's' if len(movies) != 1 else ''), '', '')
        ax.imshow(mpimg.imread(preview), cmap='gray', vmin=0, vmax=1)
        ax.set_axis_off()
        plotter.image = preview
        return [plotter]
