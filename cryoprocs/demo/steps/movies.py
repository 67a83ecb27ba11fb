"""Demo of ExportMovie: movies of the real HIV VLP tomogram and of the tilt series simulated
from it (MP4 H.264 with labels and a scale bar, and mrc2movie's MJPG AVI)."""
from ... import constants as C
from .. import inputs


def run(ctx):
    from ...protocols import ProtCryoprocsExportMovie

    tomo = inputs.import_hiv_tomogram(ctx)
    ctx.launch(ctx.new(ProtCryoprocsExportMovie, label="movie of the HIV VLP tomogram (MP4)",
                       inputData=tomo.Tomograms, labelFrames=True, scaleBar=True))
    ctx.launch(ctx.new(ProtCryoprocsExportMovie,
                       label="movie of the HIV VLP tomogram (mrc2movie MJPG AVI)",
                       inputData=tomo.Tomograms, outputFormat=C.MOVIE_FORMAT_AVI))
    sim = inputs.simulated_hiv_tilt_series(ctx)
    ctx.launch(ctx.new(ProtCryoprocsExportMovie,
                       label="movie of the simulated tilt series (MP4, tilt angles)",
                       inputData=getattr(sim, C.OUTPUT_TILT_SERIES), labelFrames=True,
                       scaleBar=True, contrastWindow=C.MOVIE_WINDOW_PERCENTILE))
