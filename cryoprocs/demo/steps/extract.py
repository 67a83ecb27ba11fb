"""Demo of ExtractSubtomos on the real HIV VLP tomogram and its real particle positions:
3D sub-volumes from the tomogram, and RELION 5 2D tilt stacks from a tilt series simulated
from that tomogram (±60°, 3° steps, CTF, dose, noise)."""
import os

from ... import constants
from .. import inputs

#: every n-th real particle (5377 in total) keeps the demo step near 30 s
PARTICLE_STRIDE = 8


def _coordinates_file(ctx):
    """Real particle positions as a tomo txt coordinate file named like the tomogram
    (0-based voxels of the 40 Å tomogram, bottom-left origin)."""
    tomo_file = inputs.hiv_tomogram_file(ctx)
    folder = os.path.join(ctx.inputs_dir, "coordinates")
    path = os.path.join(folder, os.path.splitext(os.path.basename(tomo_file))[0] + ".txt")
    if not os.path.exists(path):
        os.makedirs(folder, exist_ok=True)
        pos, _ = inputs.hiv_particles(ctx)
        with open(path + ".part", "w") as fh:
            for x, y, z in pos[::PARTICLE_STRIDE]:
                fh.write("%.3f %.3f %.3f\n" % (x, y, z))
        os.replace(path + ".part", path)
    return path


def import_hiv_coordinates(ctx):
    def make(ctx):
        from tomo.protocols import ProtImportCoordinates3D
        path = _coordinates_file(ctx)
        tomos = inputs.import_hiv_tomogram(ctx)
        prot = ctx.new(ProtImportCoordinates3D, label="import HIV particle coordinates",
                       filesPath=os.path.dirname(path), filesPattern=os.path.basename(path),
                       importTomograms=tomos.Tomograms, boxSize=16)
        prot.importFrom.set(prot._getImportChoices().index("txt"))
        return ctx.launch(prot)
    return ctx.shared("import_hiv_coordinates", make)


def run(ctx):
    from ...protocols import ProtCryoprocsExtractSubtomos

    coords = import_hiv_coordinates(ctx)
    ctx.launch(ctx.new(ProtCryoprocsExtractSubtomos, label="extract HIV sub-volumes (3D)",
                       extractionMode=constants.EXTRACT_MODE_SUBVOLUMES,
                       inputCoordinates=coords.outputCoordinates, boxSize=16,
                       invertContrast=False, normalize=True, outsideBoxes=constants.OUTSIDE_SKIP,
                       numberOfThreads=2))
    sim = inputs.simulated_hiv_tilt_series(ctx)
    ctx.launch(ctx.new(ProtCryoprocsExtractSubtomos, label="extract HIV 2D tilt stacks (RELION 5)",
                       extractionMode=constants.EXTRACT_MODE_STACK2D,
                       inputCoordinates=coords.outputCoordinates,
                       inputTiltSeries=getattr(sim, constants.OUTPUT_TILT_SERIES),
                       inputCtfTomoSeries=getattr(sim, constants.OUTPUT_CTF_SERIES),
                       boxSize=16, cropSize=16, binning=1, maxDose=60, minFrames=5,
                       float16=True, numberOfThreads=2))
