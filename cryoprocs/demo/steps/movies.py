"""Demo of ExportMovie: movies of the real HIV VLP tomogram and of a tilt series simulated
from it (MP4 H.264 with labels and a scale bar, and mrc2movie's MJPG AVI)."""
from ... import constants as C
from .. import movie_inputs


def run(ctx):
    from ...protocols import ProtCryoprocsExportMovie

    tomo = movie_inputs.hiv_tomograms(ctx)
    ctx.launch(ctx.new(ProtCryoprocsExportMovie, label="movie of the HIV VLP tomogram (MP4)",
                       inputData=tomo.Tomograms, labelFrames=True, scaleBar=True))
    ctx.launch(ctx.new(ProtCryoprocsExportMovie,
                       label="movie of the HIV VLP tomogram (mrc2movie MJPG AVI)",
                       inputData=tomo.Tomograms, outputFormat=C.MOVIE_FORMAT_AVI))
    ts = movie_inputs.simulated_tilt_series(ctx)
    ctx.launch(ctx.new(ProtCryoprocsExportMovie,
                       label="movie of the simulated tilt series (MP4, tilt angles)",
                       inputData=ts.TiltSeries, labelFrames=True, scaleBar=True,
                       contrastWindow=C.MOVIE_WINDOW_PERCENTILE))
