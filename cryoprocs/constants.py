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

# ---------------------------------------------------------------- ScoresPeakPicking
PEAKS_THR_DIRECT = 0
PEAKS_THR_SIGMA = 1
PEAKS_THR_PERCENTILE = 2
PEAKS_THR_TRIANGLE = 3
PEAKS_THR_FALSE_POSITIVES = 4
PEAKS_THR_CHOICES = ["direct value", "mean + k std", "percentile",
                     "triangle (cryoCAT default)", "expected false positives"]
#: kernel names of the threshold modes, in form-enum order
PEAKS_THR_MODES = ["direct", "sigma", "percentile", "triangle", "false-positives"]
PEAKS_ORDER_ZXZ = 0
PEAKS_ORDER_ZZX = 1
PEAKS_ORDER_CHOICES = ["zxz (GAPSTOP: phi, theta, psi)", "zzx (STOPGAP: phi, psi, theta)"]
PEAKS_ORDERS = ["zxz", "zzx"]
PEAKS_NUMBERING_0 = 0
PEAKS_NUMBERING_1 = 1
PEAKS_NUMBERING_CHOICES = ["0-based (GAPSTOP)", "1-based (STOPGAP)"]
PEAKS_MASK_MULTIPLY = 0
PEAKS_MASK_INSIDE = 1
PEAKS_MASK_CHOICES = ["multiply the scores (cryoCAT)", "statistics and picks inside the mask"]
PEAKS_MASK_MODES = ["multiply", "inside"]

OUTPUT_COORDINATES = "outputCoordinates"
OUTPUT_ANGDIST_TOTAL = "outputAngularDistanceTotal"
OUTPUT_ANGDIST_NORMAL = "outputAngularDistanceNormal"
OUTPUT_ANGDIST_INPLANE = "outputAngularDistanceInPlane"
PEAKS_RELION5_STAR = "particles_relion5.star"
PEAKS_STOPGAP_STAR = "motl_stopgap.star"
PEAKS_EM_MOTL = "motl.em"
PEAKS_SUMMARY_JSON = "picking_summary.json"
