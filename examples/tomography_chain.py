"""Tomography chain in one Scipion project: import tomograms, noise fill, pick, extract, average.

Run it with the Scipion environment ready:

  cryoprocs python tomography_chain.py [PROJECT]      # pip-only installation
  scipion3 python tomography_chain.py [PROJECT]       # Scipion installation

Inputs (the paths below; a file's name without extension is its tilt-series id, tsId):

  TOMOGRAMS      tomograms, one per tilt series (e.g. TS_01.mrc)
  SEGMENTATIONS  one mask per tomogram, same file names, 1 = keep (membranes, VLPs, lamella)
  SCORES/ANGLES  score and angle maps of a template-matching run on these tomograms
                 (pytom-match-pick, GAPSTOP, STOPGAP); {TS} stands for the tsId
  ANGLE_LIST     the angle list of that run (one row per angle index)
  TILT_SERIES    RELION 5 tomograms.star of the aligned tilt series with their CTFs
                 (rlnTomoName = tsId, rlnTomoSize = the tomogram size)

The settings are those of the cryoprocs demo data: the HIV-1 VLP tomogram EMPIAR-10164
TS_01 at 40 A/voxel, matched with a spherical shell of the VLP radius (11.5 voxels), so
the picks are VLP centres and the average is a VLP. Adapt VOXEL_SIZE, the picking and the
box sizes to your data.

The chain: import tomograms and their segmentations -> masked tomogram noise fill (keep each
tomogram inside its segmentation plus 10 px, matched noise elsewhere) -> import the score and
angle maps -> scores peak picking (coordinates on the noise-filled tomograms) -> import the
tilt series and CTFs (RELION 5 project) -> extract RELION 5 2D tilt stacks -> reconstruct
the subtomogram average with half maps and FSC.
"""
import argparse
import os
import sys

# ---------------------------------------------------------------------- inputs
TOMOGRAMS = "/data/tomo/tomograms/*.mrc"
SEGMENTATIONS = "/data/tomo/segmentations/*.mrc"
SCORES = "/data/tomo/template_matching/scores_{TS}.mrc"
ANGLES = "/data/tomo/template_matching/angles_{TS}.mrc"
ANGLE_LIST = "/data/tomo/template_matching/angles.txt"
TILT_SERIES = "/data/tomo/relion/tomograms.star"

# ---------------------------------------------------------------------- settings
VOXEL_SIZE = 40.0        # A per voxel of the tomograms and score maps
MIN_DISTANCE = 15.0      # voxels between picks (the VLPs are at least two radii apart)
THRESHOLD = 0.3          # score threshold, read off extra/<tsId>_diagnostics.png of a first
                         # run with the default (expected false positives) threshold
BOX = 48                 # px: extraction and reconstruction box, the VLP (23 px) with margin
WIENER_SNR = 1.0         # a Wiener filter for the CTF correction: with a few particles
                         # RELION's default (divide by the weights) amplifies noise at CTF zeros


def main():
    ap = argparse.ArgumentParser(description=__doc__,
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("project", nargs="?", default="tomography_chain",
                    help="name of the new Scipion project (default tomography_chain)")
    args = ap.parse_args()

    from pyworkflow.project import Manager
    from tomo.protocols import ProtImportTomograms, ProtImportTomomasks

    from cryoprocs import constants
    from cryoprocs.protocols import (ProtCryoprocsExtractSubtomos, ProtCryoprocsImportRelion5,
                                     ProtCryoprocsMaskedTomogramNoiseFill,
                                     ProtCryoprocsReconstructSubtomoAverage,
                                     ProtCryoprocsScoresPeakPicking)

    manager = Manager()
    if manager.hasProject(args.project):      # createProject would wipe the existing project
        sys.exit("project %s already exists in %s" % (args.project, manager.PROJECTS))
    proj = manager.createProject(args.project)
    os.chdir(proj.path)                       # paths in a project are relative to it

    def run(protocol, label, **params):
        prot = proj.newProtocol(protocol, **params)
        prot.setObjLabel(label)
        errors = prot.validate()
        if errors:
            sys.exit("%s: %s" % (label, "; ".join(errors)))
        print("%s ..." % label, flush=True)
        proj.launchProtocol(prot, wait=True)
        if not prot.isFinished():
            sys.exit("%s %s: %s" % (label, prot.getStatus(), prot.getErrorMessage()))
        return prot

    def files(pattern):
        return dict(filesPath=os.path.dirname(pattern), filesPattern=os.path.basename(pattern))

    tomos = run(ProtImportTomograms, "import tomograms", samplingRate=VOXEL_SIZE,
                **files(TOMOGRAMS)).Tomograms
    masks = run(ProtImportTomomasks, "import segmentations", inputTomos=tomos,
                **files(SEGMENTATIONS)).tomomasks
    filled = run(ProtCryoprocsMaskedTomogramNoiseFill, "noise fill outside the segmentations",
                 inputTomograms=tomos, inputMasks=masks, expandPixels=10, softEdge=4)
    scores = run(ProtImportTomograms, "import score maps", samplingRate=VOXEL_SIZE,
                 **files(SCORES)).Tomograms
    angles = run(ProtImportTomograms, "import angle maps", samplingRate=VOXEL_SIZE,
                 **files(ANGLES)).Tomograms
    picks = run(ProtCryoprocsScoresPeakPicking, "pick", inputScoreMaps=scores,
                inputAngleMaps=angles, angleList=ANGLE_LIST,
                inputTomograms=getattr(filled, constants.OUTPUT_NOISE_FILLED_TOMOS),
                thresholdMode=constants.PEAKS_THR_DIRECT, threshold=THRESHOLD,
                minDistance=MIN_DISTANCE, boxSize=BOX)
    ts = run(ProtCryoprocsImportRelion5, "import tilt series and CTFs (RELION 5)",
             tomogramsFile=TILT_SERIES)
    stacks = run(ProtCryoprocsExtractSubtomos, "extract 2D tilt stacks",
                 extractionMode=constants.EXTRACT_MODE_STACK2D,
                 inputCoordinates=getattr(picks, constants.OUTPUT_COORDINATES),
                 inputTiltSeries=getattr(ts, constants.OUTPUT_TILT_SERIES),
                 inputCtfTomoSeries=getattr(ts, constants.OUTPUT_CTF_SERIES),
                 boxSize=BOX, cropSize=BOX, binning=1, numberOfThreads=2)
    average = run(ProtCryoprocsReconstructSubtomoAverage, "reconstruct the average",
                  inputSource=constants.RECONSTRUCT_FROM_SUBTOMOGRAMS,
                  inputSubtomograms=getattr(stacks, constants.OUTPUT_SUBTOMOGRAMS),
                  inputTiltSeries=getattr(ts, constants.OUTPUT_TILT_SERIES),
                  inputCtfTomoSeries=getattr(ts, constants.OUTPUT_CTF_SERIES),
                  boxSize=BOX, symmetry="C1", doWiener=True, snr=WIENER_SNR,
                  numberOfThreads=2)

    print()
    for prot in (picks, average):
        print("%s:\n  %s" % (prot.getObjLabel(), "\n  ".join(prot.summary())))
    print("average: %s" % os.path.join(proj.path,
                                       getattr(average, constants.OUTPUT_AVERAGE).getFileName()))
    print("project: %s" % proj.path)


if __name__ == "__main__":
    main()
