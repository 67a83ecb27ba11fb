"""Demo of MaskedTomogramNoiseFill on the real HIV VLP tomogram: a mask of solid spheres of
the VLP radius around the VLP centres (fitted to the real particle positions and normals),
expanded by 10 px with a 4 px soft edge; the rest is replaced by noise with the
background's statistics (white) and, in a second run, with its power spectrum too."""
from .. import inputs


def run(ctx):
    from ...protocols import ProtCryoprocsMaskedTomogramNoiseFill

    tomos = inputs.import_hiv_tomogram(ctx)
    masks = inputs.import_hiv_vlp_tomomask(ctx)
    ctx.launch(ctx.new(ProtCryoprocsMaskedTomogramNoiseFill,
                       label="noise fill HIV VLPs (10 px, soft edge 4 px)",
                       inputTomograms=tomos.Tomograms, inputMasks=masks.tomomasks,
                       saveSoftMask=True))
    ctx.launch(ctx.new(ProtCryoprocsMaskedTomogramNoiseFill,
                       label="noise fill HIV VLPs (spectrally matched noise)",
                       inputTomograms=tomos.Tomograms, inputMasks=masks.tomomasks,
                       spectralNoise=True))
