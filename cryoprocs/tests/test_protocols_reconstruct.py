"""ImportRelion5 -> ReconstructSubtomoAverage in a real Scipion project, against RELION
5.0.1's relion_tomo_reconstruct_particle (case c7); and ExtractSubtomos ->
ReconstructSubtomoAverage from the subtomograms, against the CLI on the extraction's
particles."""
import os

import mrcfile
import numpy as np

from cryoprocs.tests.scipion_testing import Relion5ReferenceTest
from cryoprocs import constants
from cryoprocs.pipelines.reconstruct import ReconstructJob, ReconstructSettings
from cryoprocs.protocols import (ProtCryoprocsExtractSubtomos,
                                 ProtCryoprocsReconstructSubtomoAverage)
from cryoprocs.tests.test_cli_reconstruct import compare_maps


class TestReconstructSubtomoAverage(Relion5ReferenceTest):

    def _path(self, p):
        return p if os.path.isabs(p) else os.path.join(self.proj.getPath(), p)

    def test_from_coordinates_matches_relion(self):
        prot = self.newProtocol(ProtCryoprocsReconstructSubtomoAverage,
                                inputCoordinates=getattr(self.imp, constants.OUTPUT_COORDINATES),
                                inputTiltSeries=getattr(self.imp, constants.OUTPUT_TILT_SERIES),
                                inputCtfTomoSeries=getattr(self.imp, constants.OUTPUT_CTF_SERIES),
                                boxSize=32, binning=2, symmetry="C1", numberOfThreads=2)
        self.launchProtocol(prot)
        avg = getattr(prot, constants.OUTPUT_AVERAGE)
        self.assertAlmostEqual(avg.getSamplingRate(), 13.44, places=5)
        extra = self._path(prot._getExtraPath())
        self.assertEqual(os.path.abspath(self._path(avg.getFileName())),
                         os.path.join(os.path.abspath(extra), "merged.mrc"))
        worst = compare_maps(extra)
        self.assertLess(max(worst.values()), 5e-7)
        halves = [os.path.abspath(self._path(h)) for h in avg.getHalfMaps().split(",")] \
            if isinstance(avg.getHalfMaps(), str) else \
            [os.path.abspath(self._path(h)) for h in avg.getHalfMaps()]
        self.assertEqual(halves, [os.path.join(os.path.abspath(extra), "half1.mrc"),
                                  os.path.join(os.path.abspath(extra), "half2.mrc")])
        fsc = getattr(prot, constants.OUTPUT_FSC)
        x, y = fsc.getData()
        self.assertEqual(len(x), 17)
        self.assertAlmostEqual(float(x[1]), 1.0 / (32 * 13.44), places=8)
        self.assertAlmostEqual(float(y[0]), 1.0, places=5)
        res = float(fsc.calculateResolution())
        summary = "\n".join(prot.summary())
        self.assertIn("14 of 14 particles reconstructed", summary)
        self.assertIn("0 skipped", summary)
        self.assertIn("%.2f Å" % res, summary)
        self.assertTrue(os.path.exists(os.path.join(extra, "fsc.png")))
        self.assertTrue(os.path.exists(os.path.join(extra, "partial", "TS_01.npz")))
        self.assertTrue(prot.methods())

    def test_from_subtomograms_of_extract(self):
        ext = self.newProtocol(ProtCryoprocsExtractSubtomos,
                               inputCoordinates=getattr(self.imp, constants.OUTPUT_COORDINATES),
                               inputTiltSeries=getattr(self.imp, constants.OUTPUT_TILT_SERIES),
                               inputCtfTomoSeries=getattr(self.imp, constants.OUTPUT_CTF_SERIES),
                               boxSize=32, binning=2, numberOfThreads=2)
        self.launchProtocol(ext)
        subs = getattr(ext, constants.OUTPUT_SUBTOMOGRAMS)
        self.assertSetSize(subs, 13)                    # TS_01/5 is not visible at r = 32
        prot = self.newProtocol(ProtCryoprocsReconstructSubtomoAverage,
                                inputSource=constants.RECONSTRUCT_FROM_SUBTOMOGRAMS,
                                inputSubtomograms=subs, boxSize=32, binning=2,
                                symmetry="C2", numberOfThreads=2)
        self.launchProtocol(prot)
        # the same reconstruction from the extraction's own RELION 5 project
        ext_extra = self._path(ext._getExtraPath())
        out = self._path(prot._getExtraPath())
        ref_dir = os.path.join(self.proj.getPath(), "cli_check")
        job = ReconstructJob(os.path.join(ext_extra, "particles.star"),
                             os.path.join(ext_extra, "tomograms.star"), ref_dir,
                             ReconstructSettings(box=32, binning=2, symmetry="C2"),
                             project_dir=self.proj.getPath())
        res = job.run()
        self.assertEqual(res["used"], 13)
        for name in ("merged.mrc", "half1.mrc", "half2.mrc"):
            with mrcfile.open(os.path.join(out, name)) as a, \
                    mrcfile.open(os.path.join(ref_dir, name)) as b:
                self.assertLessEqual(np.abs(a.data - b.data).max(),
                                     1e-5 * np.abs(b.data).max())
        self.assertIn("13 of 13 particles", "\n".join(prot.summary()))
        self.assertIn("symmetry C2", "\n".join(prot.summary()))

    def test_validation(self):
        prot = self.newProtocol(ProtCryoprocsReconstructSubtomoAverage,
                                inputCoordinates=getattr(self.imp, constants.OUTPUT_COORDINATES),
                                inputTiltSeries=getattr(self.imp, constants.OUTPUT_TILT_SERIES),
                                inputCtfTomoSeries=getattr(self.imp, constants.OUTPUT_CTF_SERIES),
                                boxSize=200, binning=2, symmetry="X3")
        errors = "\n".join(prot.validate())
        self.assertIn("unknown or unsupported symmetry 'X3'", errors)
        prot.symmetry.set("C3")
        errors = "\n".join(prot.validate())
        self.assertIn("unbinned box of 400 px", errors)
        self.assertIn("TS_01 (256 x 256 px)", errors)
        prot = self.newProtocol(ProtCryoprocsReconstructSubtomoAverage,
                                inputCoordinates=getattr(self.imp, constants.OUTPUT_COORDINATES),
                                boxSize=32)
        self.assertIn("needs the tilt series", "\n".join(prot.validate()))
