"""Validation holes: each a message naming the values (real Scipion projects on small
synthetic volumes written by the test; RELION STAR files written by the test).

* ScoresPeakPicking with an all-zero tomogram mask;
* ImportRelion5 with input tomograms whose tsIds match none of the particles' tomograms,
  and with particles.star / tomograms.star given the wrong way round (one line);
* ReconstructSubtomoAverage from coordinates without orientations (a warning before the
  launch and a summary line);
* ExportMovie with one bad discard percentage (one message).
"""
import os

import mrcfile
import numpy as np
import pandas as pd
from pyworkflow.tests import setupTestProject

from cryoprocs import constants
from cryoprocs.convert import relion5
from cryoprocs.convert.star import write_star
from cryoprocs.tests.scipion_testing import CryoprocsBaseTest

SHAPE = (24, 40, 40)          # z, y, x
SR = 10.0
NAMES = ("tomo_a", "tomo_b")
POSITIONS = ((14, 15, 11), (20, 20, 12), (26, 22, 13))


def _write(path, data):
    with mrcfile.new(path, overwrite=True) as m:
        m.set_data(data)
        m.voxel_size = SR


class TestValidationHoles(CryoprocsBaseTest):

    @classmethod
    def setUpClass(cls):
        from tomo.protocols import (ProtImportCoordinates3D, ProtImportTomograms,
                                    ProtImportTomomasks)
        from cryoprocs.protocols import ProtCryoprocsSimulateTiltSeries
        setupTestProject(cls)
        rng = np.random.default_rng(3)
        folder = os.path.join(cls.getOutputPath(), "volumes")
        os.makedirs(folder, exist_ok=True)
        for name in NAMES:
            _write(os.path.join(folder, "%s.mrc" % name),
                   rng.normal(size=SHAPE).astype(np.float32))
            _write(os.path.join(folder, "scores_%s.mrc" % name),
                   rng.random(SHAPE).astype(np.float32))
            _write(os.path.join(folder, "angles_%s.mrc" % name), np.zeros(SHAPE, np.float32))
            mask = np.zeros(SHAPE, np.int8)
            if name == "tomo_b":
                mask[8:16, 10:30, 10:30] = 1
            _write(os.path.join(folder, "mask_%s.mrc" % name), mask)
        cls.folder = folder
        cls.angleList = os.path.join(folder, "angles.csv")
        with open(cls.angleList, "w") as fh:
            fh.write("0,0,0\n")

        def imp(pattern):
            p = cls.newProtocol(ProtImportTomograms, filesPath=folder, filesPattern=pattern,
                                samplingRate=SR)
            cls.launchProtocol(p)
            return p.Tomograms
        cls.tomos = imp("tomo_*.mrc")
        cls.scores = imp("scores_{TS}.mrc")
        cls.angles = imp("angles_{TS}.mrc")
        masks = cls.newProtocol(ProtImportTomomasks, filesPath=folder,
                                filesPattern="mask_{TS}.mrc", inputTomos=cls.scores)
        cls.launchProtocol(masks)
        cls.masks = masks.tomomasks
        cfolder = os.path.join(cls.getOutputPath(), "coords")
        os.makedirs(cfolder, exist_ok=True)
        for name in NAMES:
            with open(os.path.join(cfolder, name + ".txt"), "w") as fh:
                fh.writelines("%d %d %d\n" % p for p in POSITIONS)
        coords = cls.newProtocol(ProtImportCoordinates3D, filesPath=cfolder,
                                 filesPattern="*.txt", importTomograms=cls.tomos, boxSize=8)
        coords.importFrom.set(coords._getImportChoices().index("txt"))
        cls.launchProtocol(coords)
        cls.coords = coords.outputCoordinates
        cls.sim = cls.newProtocol(ProtCryoprocsSimulateTiltSeries, inputTomograms=cls.tomos,
                                  tiltMin=-45, tiltMax=45, tiltStep=15, noise=0.0)
        cls.launchProtocol(cls.sim)
        cls.tomogramsStar = os.path.join(cls.proj.getPath(),
                                         cls.sim._getExtraPath("simulated", "tomograms.star"))
        # a RELION 5 particles.star of the simulated tilt series, with orientations
        glob = relion5.read_tomograms(cls.tomogramsStar)
        rows = []
        for _, r in glob.iterrows():
            for k, (x, y, z) in enumerate(POSITIONS):
                size = np.array([r["rlnTomoSizeX"], r["rlnTomoSizeY"], r["rlnTomoSizeZ"]])
                cen = (np.array([x, y, z], float) - size / 2.0) * SR
                rows.append({"rlnTomoName": r["rlnTomoName"],
                             "rlnCenteredCoordinateXAngst": cen[0],
                             "rlnCenteredCoordinateYAngst": cen[1],
                             "rlnCenteredCoordinateZAngst": cen[2],
                             "rlnAngleRot": 10.0 * k, "rlnAngleTilt": 90.0,
                             "rlnAnglePsi": 30.0, "rlnRandomSubset": k % 2 + 1})
        cls.particlesStar = os.path.join(cls.getOutputPath(), "particles.star")
        write_star(cls.particlesStar, {"particles": pd.DataFrame(rows)})

    # ------------------------------------------------------------------ peak picking
    def test_peak_picking_refuses_an_all_zero_mask(self):
        from cryoprocs.protocols import ProtCryoprocsScoresPeakPicking
        prot = self.newProtocol(ProtCryoprocsScoresPeakPicking, inputScoreMaps=self.scores,
                                inputAngleMaps=self.angles, inputTomograms=self.tomos,
                                inputMasks=self.masks, angleList=self.angleList,
                                minDistance=4.0)
        errors = [e for e in prot.validate() if "no voxel > 0" in e]
        self.assertEqual(len(errors), 1, prot.validate())
        self.assertIn("tomo_a", errors[0])
        self.assertIn("mask_tomo_a.mrc", errors[0])
        self.assertIn("maximum 0", errors[0])
        self.assertNotIn("tomo_b", errors[0])

    def test_volume_max_reads_until_a_positive_value(self):
        from cryoprocs.pipelines.peaks import volume_max
        path = os.path.join(self.folder, "mask_tomo_a.mrc")
        self.assertEqual(volume_max(path), 0.0)
        self.assertEqual(volume_max(os.path.join(self.folder, "mask_tomo_b.mrc")), 1.0)
        late = os.path.join(self.getOutputPath(), "late_one.mrc")
        data = np.zeros(SHAPE, np.float32)
        data[-1, -1, -1] = 0.5
        _write(late, data)
        with mrcfile.open(late, mode="r+") as m:       # no header statistics
            m.header.dmin, m.header.dmax = 0, 0
        self.assertEqual(volume_max(late, slab_bytes=1), 0.5)

    # ------------------------------------------------------------------ ImportRelion5
    def _import(self, **kw):
        from cryoprocs.protocols import ProtCryoprocsImportRelion5
        kw.setdefault("projectDir", self.proj.getPath())
        return self.newProtocol(ProtCryoprocsImportRelion5, **kw)

    def test_import_relion5_tomograms_matching_no_particle(self):
        ok = self._import(tomogramsFile=self.tomogramsStar, particlesFile=self.particlesStar)
        self.assertEqual(ok.validate(), [])
        # tomograms whose tsIds are not the particles' (the score maps: scores_tomo_a...)
        from tomo.protocols import ProtImportTomograms
        other = self.newProtocol(ProtImportTomograms, filesPath=self.folder,
                                 filesPattern="scores_*.mrc", samplingRate=SR)
        self.launchProtocol(other)
        prot = self._import(tomogramsFile=self.tomogramsStar, particlesFile=self.particlesStar,
                            inputTomograms=other.Tomograms)
        errors = prot.validate()
        self.assertEqual(len(errors), 1, errors)
        self.assertIn("scores_tomo_a, scores_tomo_b", errors[0])
        self.assertIn("tomo_a, tomo_b", errors[0].split("particle tomograms")[1])
        self.assertIn("no coordinate would be imported", errors[0])

    def test_import_relion5_swapped_star_files_in_one_line(self):
        prot = self._import(tomogramsFile=self.particlesStar, particlesFile=self.tomogramsStar)
        errors = prot.validate()
        self.assertEqual(len(errors), 1, errors)
        self.assertIn("wrong way round", errors[0])
        self.assertIn("6 particles", errors[0])
        self.assertIn("2 tilt series", errors[0])
        self.assertLess(len(errors[0]), 400)
        self.assertNotIn("\n", errors[0])
        alone = self._import(tomogramsFile=self.particlesStar).validate()
        self.assertEqual(len(alone), 1, alone)
        self.assertIn("holds 6 particles, not tilt series", alone[0])
        twice = self._import(tomogramsFile=self.tomogramsStar,
                             particlesFile=self.tomogramsStar).validate()
        self.assertEqual(len(twice), 1, twice)
        self.assertIn("holds 2 tilt series", twice[0])

    def test_duplicated_tomogram_names_in_one_short_message(self):
        big = pd.DataFrame({"rlnTomoName": ["TS_%02d" % (k % 7) for k in range(2000)],
                            "rlnTomoTiltSeriesStarFile": "tiltseries/x.star"})
        path = os.path.join(self.getOutputPath(), "dup_tomograms.star")
        write_star(path, {"global": big})
        with self.assertRaises(relion5.Relion5Error) as ctx:
            relion5.read_tomograms(path)
        msg = str(ctx.exception)
        self.assertLess(len(msg), 300)
        self.assertIn("1993 duplicated rows", msg)

    # ------------------------------------------------------------------ reconstruction
    def test_reconstruct_warns_about_coordinates_without_orientation(self):
        from cryoprocs.protocols import ProtCryoprocsReconstructSubtomoAverage
        sim = self.sim
        prot = self.newProtocol(ProtCryoprocsReconstructSubtomoAverage,
                                inputCoordinates=self.coords,
                                inputTiltSeries=getattr(sim, constants.OUTPUT_TILT_SERIES),
                                inputCtfTomoSeries=getattr(sim, constants.OUTPUT_CTF_SERIES),
                                boxSize=8, numberOfThreads=2)
        self.assertEqual(prot.validate(), [])
        warn = [w for w in prot.warnings() if "no orientation" in w]
        self.assertEqual(len(warn), 1, prot.warnings())
        self.assertIn("6 of 6 particles", warn[0])
        self.launchProtocol(prot)
        summary = "\n".join(prot.summary())
        self.assertIn("Warning: 6 of 6 particles have no orientation", summary)
        # oriented coordinates: no such warning
        imp = self._import(tomogramsFile=self.tomogramsStar, particlesFile=self.particlesStar,
                           inputTomograms=self.tomos)
        self.launchProtocol(imp)
        oriented = self.newProtocol(ProtCryoprocsReconstructSubtomoAverage,
                                    inputCoordinates=getattr(imp, constants.OUTPUT_COORDINATES),
                                    inputTiltSeries=getattr(imp, constants.OUTPUT_TILT_SERIES),
                                    inputCtfTomoSeries=getattr(imp, constants.OUTPUT_CTF_SERIES),
                                    boxSize=8)
        self.assertFalse([w for w in oriented.warnings() if "orientation" in w])

    # ------------------------------------------------------------------ movie
    def test_export_movie_one_message_for_one_bad_percentage(self):
        from cryoprocs.protocols import ProtCryoprocsExportMovie
        prot = self.newProtocol(ProtCryoprocsExportMovie, inputData=self.tomos,
                                sliceSelection=constants.MOVIE_SLICES_DISCARD, discardStart=150.0,
                                discardEnd=10.0)
        errors = prot.validate()
        self.assertEqual(len(errors), 1, errors)
        self.assertIn("150", errors[0])
        self.assertIn("[0, 100)", errors[0])
        good = self.newProtocol(ProtCryoprocsExportMovie, inputData=self.tomos,
                                sliceSelection=constants.MOVIE_SLICES_DISCARD, discardStart=10.0,
                                discardEnd=10.0)
        self.assertEqual(good.validate(), [])
