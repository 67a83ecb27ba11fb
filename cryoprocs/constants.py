"""Constants of the cryoprocs protocols: form enum indexes, output names, file names.

Form enums keep Xmipp's order (scipion-em-xmipp ``xmipp3/constants.py``) so that values in
existing workflows and the pwem mask wizards mean the same thing here.
"""

# ---------------------------------------------------------------- ApplyMask2D / ApplyMask3D
SOURCE_GEOMETRY = 0
SOURCE_MASK = 1
SOURCE_CHOICES = ["Geometry", "Created mask"]

MASK2D_CIRCULAR = 0
MASK2D_BOX = 1
MASK2D_CROWN = 2
MASK2D_GAUSSIAN = 3
MASK2D_RAISED_COSINE = 4
MASK2D_RAISED_CROWN = 5
MASK2D_CHOICES = ["Circular", "Box", "Crown", "Gaussian", "Raised cosine", "Raised crown"]

MASK3D_SPHERE = 0
MASK3D_BOX = 1
MASK3D_CROWN = 2
MASK3D_CYLINDER = 3
MASK3D_GAUSSIAN = 4
MASK3D_RAISED_COSINE = 5
MASK3D_RAISED_CROWN = 6
MASK3D_CHOICES = ["Sphere", "Box", "Crown", "Cylinder", "Gaussian", "Raised cosine",
                  "Raised crown"]

FILL_VALUE = 0
FILL_MIN = 1
FILL_MAX = 2
FILL_AVG = 3
FILL_NOISE = 4
FILL_CHOICES = ["value", "min", "max", "avg", "noise"]

OUTPUT_PARTICLES = "outputParticles"
OUTPUT_VOLUME = "outputVolume"
OUTPUT_VOLUMES = "outputVolumes"
MASKED_PARTICLES_FILE = "output_particles.mrcs"

# ---------------------------------------------------------------- ImportRelion5 / ExtractSubtomos
EXTRACT_MODE_STACK2D = 0
EXTRACT_MODE_SUBVOLUMES = 1
EXTRACT_MODE_CHOICES = ["2D tilt stacks (RELION 5)", "3D sub-volumes"]

HAND_AUTO = 0
HAND_MINUS = 1
HAND_PLUS = 2
HAND_CHOICES = ["from the tilt series (else -1)", "-1 (focus decreases with Z)",
                "+1 (focus increases with Z)"]

CTF_SCALE_COS = 0
CTF_SCALE_ONE = 1
CTF_SCALE_CHOICES = ["cos(tilt) (RELION 5 pipelines)", "1"]

OUTSIDE_SKIP = 0
OUTSIDE_PAD = 1
OUTSIDE_CHOICES = ["skip the particle", "pad with the tomogram mean"]

OUTPUT_TILT_SERIES = "outputTiltSeries"
OUTPUT_CTF_SERIES = "outputCtfTomoSeries"
OUTPUT_COORDINATES = "outputCoordinates"
OUTPUT_TOMOGRAMS = "outputTomograms"
OUTPUT_SUBTOMOGRAMS = "outputSubtomograms"

# ---------------------------------------------------------------- ReconstructSubtomoAverage
RECONSTRUCT_FROM_COORDINATES = 0
RECONSTRUCT_FROM_SUBTOMOGRAMS = 1
RECONSTRUCT_SOURCE_CHOICES = ["coordinates + tilt series", "subtomograms (ExtractSubtomos)"]

OUTPUT_AVERAGE = "outputAverage"
OUTPUT_FSC = "outputFSC"
