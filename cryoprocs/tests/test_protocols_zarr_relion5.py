"""ImportRelion5 and ExtractSubtomos in a Scipion project on a RELION 5 project whose tilt
series and reconstructed tomogram are OME-Zarr: tilt images and tomograms point at the
stores, and the 2D stacks match RELION 5.0.1's reference (c1) as from the MRC stack."""
import os

import numpy as np
import starfile
from pyworkflow.tests import setupTestProject

from cryoprocs import constants
from cryoprocs.protocols import ProtCryoprocsExtractSubtomos
from cryoprocs.tests import relion5_reference as REF
from cryoprocs.tests import zarr_helpers
from cryoprocs.tests.scipion_testing import CryoprocsBaseTest


class TestZarrRelion5Project(CryoprocsBaseTest):

    @classmethod
    def setUpClass(cls):
        setupTestProject(cls)
        base = REF.pack_dir()
        proj = zarr_helpers.zarr_project(base, os.path.join(cls.proj.getPath(), "r5zarr"),
                                         chunks=(1, 64, 64), micrograph_names=False)
        tomo = np.random.default_rng(1).standard_normal((35, 64, 64)).astype(np.float32)
        zarr_helpers.write_ngff(os.path.join(proj, "TS_01_bin4.zarr"), tomo, 26.88, (16, 32, 32),
                                levels=2, tilt_series=False)
        glob = starfile.read(os.path.join(proj, "tomograms.star"))
        glob["rlnTomoReconstructedTomogram"] = "TS_01_bin4.zarr"      # binning from metadata
        starfile.write({"global": glob}, os.path.join(proj, "tomograms.star"), overwrite=True)
        cls.imp = cls.importRelion5(os.path.join(proj, "tomograms.star"),
                                    os.path.join(proj, "particles.star"))
        cls.store = os.path.join(proj, "tiltseries", "TS_01.zarr")

    def test_import_points_at_the_stores_and_extraction_matches_relion(self):
        ts = getattr(self.imp, constants.OUTPUT_TILT_SERIES).getFirstItem()
        self.assertEqual(ts.getSize(), 41)
        ti = ts.getFirstItem()
        self.assertEqual(os.path.abspath(ti.getFileName()), self.store)
        tomos = getattr(self.imp, constants.OUTPUT_TOMOGRAMS)
        self.assertEqual(tuple(tomos.getFirstItem().getDim()), (64, 64, 35))
        self.assertAlmostEqual(getattr(self.imp, constants.OUTPUT_COORDINATES).getSamplingRate(),
                               26.88)
        case = REF.cases()["c1"]
        s = case["settings"]
        prot = self.newProtocol(ProtCryoprocsExtractSubtomos,
                                inputCoordinates=getattr(self.imp, constants.OUTPUT_COORDINATES),
                                inputTiltSeries=getattr(self.imp, constants.OUTPUT_TILT_SERIES),
                                inputCtfTomoSeries=getattr(self.imp, constants.OUTPUT_CTF_SERIES),
                                boxSize=s["box"], cropSize=s["crop"], binning=s["binning"],
                                numberOfThreads=2)
        self.launchProtocol(prot)
        extra = os.path.join(self.proj.getPath(), prot._getExtraPath())
        res = REF.compare_stacks(extra, case)
        self.assertLessEqual(res["worst_units"], 16)
        self.assertSetSize(getattr(prot, constants.OUTPUT_SUBTOMOGRAMS),
                           case["n_particles_written"])
