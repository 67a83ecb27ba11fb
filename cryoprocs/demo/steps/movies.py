"""Demo of ExportMovie: movies of the real HIV VLP tomogram and of the tilt series simulated
from it (MP4 H.264 with labels and a scale bar, and mrc2movie's MJPG AVI), and with particles
drawn in: the 5377 real particle positions on the tomogram's slices, and the coordinate
checker (particles projected into every tilt image by extraction's geometry)."""
from ... import constants
from .. import inputs
from .extract import PARTICLE_STRIDE, import_hiv_coordinates

#: Gag-lattice particles are 2 voxels (80 Å) apart: circles of 80 Å radius on the slices,
#: 60 Å on the tilt images (where every particle shows), on frames enlarged 4x (135 px wide
#: tomogram)
PARTICLE_RADIUS_A = 80.0
PROJECTED_RADIUS_A = 60.0
UPSCALE = 4


def run(ctx):
    from ...protocols import ProtCryoprocsExportMovie

    tomo = inputs.import_hiv_tomogram(ctx)
    ctx.launch(ctx.new(ProtCryoprocsExportMovie, label="movie of the HIV VLP tomogram (MP4)",
                       inputData=tomo.Tomograms, labelFrames=True, scaleBar=True))
    ctx.launch(ctx.new(ProtCryoprocsExportMovie,
                       label="movie of the HIV VLP tomogram (mrc2movie MJPG AVI)",
                       inputData=tomo.Tomograms, outputFormat=constants.MOVIE_FORMAT_AVI))
    sim = inputs.simulated_hiv_tilt_series(ctx)
    ctx.launch(ctx.new(ProtCryoprocsExportMovie,
                       label="movie of the simulated tilt series (MP4, tilt angles)",
                       inputData=getattr(sim, constants.OUTPUT_TILT_SERIES), labelFrames=True,
                       scaleBar=True, contrastWindow=constants.MOVIE_WINDOW_PERCENTILE))
    coords = inputs.import_hiv_coordinates(ctx, stride=1, box=4)
    ctx.launch(ctx.new(ProtCryoprocsExportMovie,
                       label="movie of the HIV tomogram with its 5377 particles (MP4)",
                       inputData=tomo.Tomograms, inputCoordinates=coords.outputCoordinates,
                       particleRadius=PARTICLE_RADIUS_A, upscale=UPSCALE, labelFrames=True,
                       scaleBar=True))
    picked = import_hiv_coordinates(ctx)       # every 8th particle, as extraction uses
    ctx.launch(ctx.new(ProtCryoprocsExportMovie,
                       label="coordinate checker: 1 in %d particles projected into the "
                             "simulated tilt series (MP4)" % PARTICLE_STRIDE,
                       inputData=getattr(sim, constants.OUTPUT_TILT_SERIES),
                       inputCoordinates=picked.outputCoordinates,
                       particleRadius=PROJECTED_RADIUS_A, overlayMaxDose=60.0,
                       upscale=UPSCALE, labelFrames=True, scaleBar=True,
                       contrastWindow=constants.MOVIE_WINDOW_PERCENTILE))
