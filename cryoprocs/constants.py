"""Constants of the cryoprocs protocols: form enum indexes, output names, file names, and
the terms every layer shares (mode names, defaults, tolerances), defined once here.

This module imports nothing, so every layer (kernels included) and the console command's
parser may import it at no cost.

Form enums keep Xmipp's order (scipion-em-xmipp ``xmipp3/constants.py``) so that values in
existing workflows and the pwem mask wizards mean the same thing here.
"""

# ---------------------------------------------------------------- terms shared by every layer
#: relative tolerance of two sampling rates (Å/px) that must agree: |a - b| <= tol * a
SAMPLING_TOLERANCE = 0.01
#: the symmetry of an asymmetric particle: the default of every symmetry option
DEFAULT_SYMMETRY = "C1"

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
OUTPUT_VOLUME_MASK = "outputMask"
#: the masked particles of positions FIRST..LAST (1-based) of the input set, one per chunk
MASKED_PARTICLES_CHUNK = "output_particles_%06d-%06d.mrcs"

# ---------------------------------------------------------------- ExportMovie
#: form enum order of the output format, and the pipeline's format names
MOVIE_FORMAT_MP4 = 0
MOVIE_FORMAT_AVI = 1
MOVIE_FORMAT_GIF = 2
MOVIE_FORMAT_PNG = 3
MOVIE_FORMAT_CHOICES = ["MP4 (H.264)", "AVI (MJPG, as mrc2movie)", "GIF", "PNG frames"]
MOVIE_FORMAT_KEYS = ["mp4", "avi", "gif", "png"]

MOVIE_PLAYBACK_FORWARD = 0
MOVIE_PLAYBACK_FORWARD_BACKWARD = 1
MOVIE_PLAYBACK_CHOICES = ["forward", "forward-backward"]

MOVIE_SLICES_ALL = 0
MOVIE_SLICES_RANGE = 1
MOVIE_SLICES_DISCARD = 2
MOVIE_SLICES_CHOICES = ["all", "keep a range", "discard % at each end"]

MOVIE_AXIS_CHOICES = ["Z", "Y", "X"]

MOVIE_WINDOW_MINMAX = 0
MOVIE_WINDOW_PERCENTILE = 1
MOVIE_WINDOW_CHOICES = ["global min/max (mrc2movie)", "percentiles"]

MOVIE_ORDER_ANGLE = 0
MOVIE_ORDER_ACQUISITION = 1
MOVIE_ORDER_CHOICES = ["tilt angle", "acquisition order"]

MOVIE_PRESET_CHOICES = ["ultrafast", "superfast", "veryfast", "faster", "fast", "medium",
                        "slow", "slower", "veryslow"]
MOVIE_PRESET_DEFAULT = 2            # veryfast

#: particle overlays: form enum order and the pipeline's names
MOVIE_OVERLAY_CHOICES = ["circles (sphere cross-sections)", "filled discs",
                         "mrc2movie (red discs)"]
MOVIE_OVERLAY_KEYS = ["outline", "filled", "mrc2movie"]
MOVIE_COLOUR_BY_CHOICES = ["one colour", "score", "class (group id)"]
MOVIE_COLOUR_BY_KEYS = [None, "score", "class"]
MOVIE_COLOUR_CHOICES = ["green", "yellow", "cyan", "magenta", "orange", "red", "blue",
                        "white"]
MOVIE_PARTICLES_DIR = "particles"

MOVIE_PREVIEW_FILE = "preview.png"
MOVIE_INDEX_FILE = "movies.json"
MOVIE_INFO_DIR = "movie_info"

# tilt series from stacks (test and demo helper; output name OUTPUT_TILT_SERIES, below)
TS_ANGLES_RANGE = 0
TS_ANGLES_TLT = 1
TS_ANGLE_SOURCE_CHOICES = ["range (first, step)", ".tlt file next to each stack"]
TS_ACQ_STACK = 0
TS_ACQ_DOSE_SYMMETRIC = 1
TS_ACQ_ORDER_CHOICES = ["stack order", "dose-symmetric"]

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
# the same 2D stacks as scipion-em-reliontomo's RelionSetOfPseudoSubtomograms (when installed)
OUTPUT_RELION_PARTICLES = "outputRelionParticles"
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

# ---------------------------------------------------------------- ReconstructSubtomoAverage
RECONSTRUCT_FROM_COORDINATES = 0
RECONSTRUCT_FROM_SUBTOMOGRAMS = 1
RECONSTRUCT_SOURCE_CHOICES = ["coordinates + tilt series",
                              "subtomograms (from extract subtomograms)"]

OUTPUT_AVERAGE = "outputAverage"
OUTPUT_FSC = "outputFSC"
# ---------------------------------------------------------------- ScoresPeakPicking
PEAKS_THR_DIRECT = 0
PEAKS_THR_SIGMA = 1
PEAKS_THR_PERCENTILE = 2
PEAKS_THR_TRIANGLE = 3
PEAKS_THR_FALSE_POSITIVES = 4
PEAKS_THR_CHOICES = ["direct value", "mean + k std", "percentile",
                     "triangle (cryoCAT default)", "expected false positives"]
#: names of the threshold modes, in form-enum order (cryoprocs.kernels.peaks.thresholds has
#: one rule per name; the CLI's --threshold-mode choices)
PEAKS_THR_MODES = ("direct", "sigma", "percentile", "triangle", "false-positives")
PEAKS_ORDER_ZXZ = 0
PEAKS_ORDER_ZZX = 1
PEAKS_ORDER_CHOICES = ["zxz (GAPSTOP: phi, theta, psi)", "zzx (STOPGAP: phi, psi, theta)"]
PEAKS_ORDERS = ("zxz", "zzx")               # angle-list column orders
PEAKS_NUMBERING_0 = 0
PEAKS_NUMBERING_1 = 1
PEAKS_NUMBERING_CHOICES = ["0-based (GAPSTOP)", "1-based (STOPGAP)"]
PEAKS_MASK_MULTIPLY = 0
PEAKS_MASK_INSIDE = 1
PEAKS_MASK_CHOICES = ["multiply the scores (cryoCAT)", "statistics and picks inside the mask"]
PEAKS_MASK_MODES = ("multiply", "inside")

OUTPUT_COORDINATES = "outputCoordinates"
OUTPUT_ANGDIST_TOTAL = "outputAngularDistanceTotal"
OUTPUT_ANGDIST_NORMAL = "outputAngularDistanceNormal"
OUTPUT_ANGDIST_INPLANE = "outputAngularDistanceInPlane"
PEAKS_RELION5_STAR = "particles_relion5.star"
PEAKS_STOPGAP_STAR = "motl_stopgap.star"
PEAKS_EM_MOTL = "motl.em"
PEAKS_SUMMARY_JSON = "picking_summary.json"

# copick import / export (protocol_import_copick.py, protocol_export_copick.py)
OUTPUT_TOMO_MASKS = "outputTomoMasks"
COPICK_EXPORT_STAR = "copick_export_particles.star"
