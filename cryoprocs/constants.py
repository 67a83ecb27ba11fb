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

# ---------------------------------------------------------------- MaskedTomogramNoiseFill
NF_EXPANSION_EUCLIDEAN = 0
NF_EXPANSION_GAUSSIAN = 1
NF_EXPANSION_CHOICES = ["Euclidean distance", "Gaussian blur + threshold"]

NF_STATS_OUTSIDE = 0
NF_STATS_ROBUST = 1
NF_STATS_GLOBAL = 2
NF_STATS_PARITY = 3
NF_STATS_CHOICES = ["outside mask", "robust (median, MAD)", "global", "script rule"]

OUTPUT_NOISE_FILLED_TOMOS = "noiseFilledTomograms"
OUTPUT_NOISE_FILL_MASKS = "noiseFillSoftMasks"
