"""Demo of ApplyMask3D on the real map EMD-3197 and ApplyMask2D on real particle boxes."""
from ... import constants
from .. import inputs


def run(ctx):
    from ...protocols import ProtCryoprocsApplyMask2D, ProtCryoprocsApplyMask3D

    vol = inputs.import_emd3197(ctx)
    ctx.launch(ctx.new(ProtCryoprocsApplyMask3D, label="mask EMD-3197 (raised cosine)",
                       inputVolumes=vol.outputVolume, geo=constants.MASK3D_RAISED_COSINE,
                       innerRadius=6, outerRadius=9))
    ctx.launch(ctx.new(ProtCryoprocsApplyMask3D, label="mask EMD-3197 (sphere, fill avg)",
                       inputVolumes=vol.outputVolume, geo=constants.MASK3D_SPHERE, radius=8,
                       fillType=constants.FILL_AVG))
    parts = inputs.import_particle_boxes(ctx)
    ctx.launch(ctx.new(ProtCryoprocsApplyMask2D, label="mask HIV particles (circle, noise)",
                       inputParticles=parts.outputParticles, geo=constants.MASK2D_CIRCULAR,
                       radius=8, fillType=constants.FILL_NOISE))
    ctx.launch(ctx.new(ProtCryoprocsApplyMask2D, label="mask HIV particles (raised crown)",
                       inputParticles=parts.outputParticles, geo=constants.MASK2D_RAISED_CROWN,
                       innerRadius=3, outerRadius=9, borderDecay=2))
