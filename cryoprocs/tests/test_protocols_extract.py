"""ImportRelion5 -> ExtractSubtomos in a real Scipion project, against RELION 5.0.1's own
outputs (every stack, every STAR value), plus 3D sub-volumes against direct slicing."""
import os

import mrcfile
import numpy as np
import starfile
from pyworkflow.tests import setupTestProject

from cryoprocs.tests.scipion_testing import CryoprocsBaseTest, Relion5ReferenceTest
from cryoprocs import constants
from cryoprocs.convert import relion5_scipion
from cryoprocs.kernels.euler import relion_euler_matrix
from cryoprocs.convert.scipion import relion_orientation
from cryoprocs.protocols import ProtCryoprocsExtractSubtomos, ProtCryoprocsImportRelion5
from cryoprocs.tests import relion5_reference as REF
from cryoprocs.tests import shared_data


class TestImportAndExtractRelion5(Relion5ReferenceTest):

    def _extract(self, cid, **over):
        case = REF.case(cid)
        s = case["settings"]
        kw = dict(inputCoordinates=getattr(self.imp, constants.OUTPUT_COORDINATES),
                  inputTiltSeries=getattr(self.imp, constants.OUTPUT_TILT_SERIES),
                  inputCtfTomoSeries=getattr(self.imp, constants.OUTPUT_CTF_SERIES),
                  boxSize=s["box"], cropSize=s["crop"], binning=s["binning"],
                  ctfPremultiply=s["do_ctf"], circleCrop=s["circle_crop"],
                  float16=s["float16"], maxDose=s["max_dose"], minFrames=s["min_frames"],
                  numberOfThreads=3)
        kw.update(over)
        prot = self.newProtocol(ProtCryoprocsExtractSubtomos, **kw)
        prot.setObjLabel("extract %s" % cid)
        self.launchProtocol(prot)
        return prot, case

    def _check_case(self, cid):
        prot, case = self._extract(cid)
        extra = os.path.join(self.proj.getPath(), prot._getExtraPath())
        res = REF.compare_stacks(extra, case)
        self.assertLessEqual(res["worst_units"], 16)
        prefix = os.path.relpath(extra, self.proj.getPath()) + "/"
        REF.compare_star(os.path.join(extra, "particles.star"), case, image_prefix=prefix)
        opt = next(iter(starfile.read(os.path.join(extra, "optimisation_set.star"),
                                      always_dict=True).values()))
        self.assertEqual(opt["rlnTomoParticlesFile"], prefix + "particles.star")
        self.assertEqual(opt["rlnTomoTomogramsFile"], prefix + "tomograms.star")
        out = getattr(prot, constants.OUTPUT_SUBTOMOGRAMS)
        self.assertSetSize(out, case["n_particles_written"])
        self.assertAlmostEqual(out.getSamplingRate(), 6.72 * case["settings"]["binning"],
                               places=5)
        ref = starfile.read(os.path.join(self.base, case["folder"], "particles.star"))[
            "particles"].set_index("rlnTomoParticleName")
        for sub in out.iterItems():
            name = relion5_scipion.attr(sub, "rlnTomoParticleName")
            self.assertEqual(relion5_scipion.attr(sub, "rlnTomoVisibleFrames"),
                             ref.loc[name, "rlnTomoVisibleFrames"])
            with mrcfile.open(os.path.join(self.proj.getPath(), sub.getFileName())) as m:
                self.assertEqual(m.data.shape[0], case["frames_per_particle"][name])
            self.assertEqual(sub.getVolName(), "TS_01")
        return prot

    # ------------------------------------------------------------------ import
    def test_import_tilt_series_ctf_and_coordinates(self):
        tsSet = getattr(self.imp, constants.OUTPUT_TILT_SERIES)
        self.assertSetSize(tsSet, 1)
        self.assertAlmostEqual(tsSet.getSamplingRate(), 6.72)
        ts = tsSet.getFirstItem().clone()
        table = starfile.read(os.path.join(self.base, "tiltseries", "TS_01.star"))
        tis = [ti.clone() for ti in ts.iterItems(orderBy="id")]
        self.assertEqual(len(tis), 41)
        pre = table["rlnMicrographPreExposure"].to_numpy()
        self.assertTrue(ts.hasAlignment())
        self.assertEqual(relion5_scipion.attr(ts, "rlnTomoSizeX"), 256)
        self.assertEqual(relion5_scipion.attr(ts, "rlnTomoSizeZ"), 140)
        self.assertEqual(relion5_scipion.attr(ts, "rlnTomoHand"), -1.0)
        for f, ti in enumerate(tis):
            self.assertEqual(ti.getIndex(), f + 1)
            self.assertAlmostEqual(ti.getTiltAngle(), table["rlnTomoYTilt"][f], places=9)
            self.assertAlmostEqual(ti.getAcquisition().getDoseInitial(), pre[f], places=9)
            # acquisition order = rank of the pre-exposure (dose-symmetric scheme)
            self.assertEqual(ti.getAcquisitionOrder(), int(round(pre[f] / 3.2)) + 1)
            zrot, sx, sy = relion5_scipion.relion_from_ti_matrix(ti.getTransform().getMatrix(),
                                                                 6.72)
            self.assertAlmostEqual(zrot, table["rlnTomoZRot"][f], places=9)
            self.assertAlmostEqual(sx, table["rlnTomoXShiftAngst"][f], places=9)
            self.assertAlmostEqual(sy, table["rlnTomoYShiftAngst"][f], places=9)
        self.assertAlmostEqual(tis[0].getAcquisition().getDosePerFrame(), 3.2, places=6)
        ctfSet = getattr(self.imp, constants.OUTPUT_CTF_SERIES)
        ctfs = {c.getAcquisitionOrder(): c.clone()
                for c in ctfSet.getFirstItem().clone().iterItems()}
        for f, ti in enumerate(tis):
            c = ctfs[ti.getAcquisitionOrder()]
            self.assertAlmostEqual(c.getDefocusU(), table["rlnDefocusU"][f], places=6)
            self.assertAlmostEqual(c.getDefocusV(), table["rlnDefocusV"][f], places=6)
            self.assertAlmostEqual(c.getDefocusAngle(), table["rlnDefocusAngle"][f], places=6)
        coords = getattr(self.imp, constants.OUTPUT_COORDINATES)
        self.assertSetSize(coords, 14)
        parts = starfile.read(os.path.join(self.base, "particles.star"))["particles"]
        from tomo.constants import CENTER_GRAVITY
        for k, coord in enumerate(coords.iterCoordinates()):
            row = parts.iloc[k]
            cen = np.array(coord.getPosition(CENTER_GRAVITY)) * coords.getSamplingRate()
            self.assertTrue(np.allclose(cen, row[["rlnCenteredCoordinateXAngst",
                                                  "rlnCenteredCoordinateYAngst",
                                                  "rlnCenteredCoordinateZAngst"]].to_numpy(
                dtype=float), atol=1e-9))
            (rot, tilt, psi), _ = relion_orientation(coord)
            self.assertTrue(np.allclose(relion_euler_matrix(rot, tilt, psi), relion_euler_matrix(
                row["rlnAngleRot"], row["rlnAngleTilt"], row["rlnAnglePsi"]), atol=1e-9))
            self.assertEqual(relion5_scipion.attr(coord, "rlnRandomSubset"),
                             int(row["rlnRandomSubset"]))
            self.assertEqual(coord.getTomoId(), "TS_01")
        # no tomogram file in the project: an empty placeholder of the RELION size
        tomos = getattr(self.imp, constants.OUTPUT_TOMOGRAMS)
        self.assertEqual(tomos.getFirstItem().getDim(), (256, 256, 140))
        self.assertIn("14 particles", "\n".join(self.imp.summary()))

    def test_import_with_reconstructed_tomograms(self):
        """rlnTomoReconstructedTomogram + rlnTomoTomogramBinning become the coordinates'
        tomograms (sampling 4 x 6.72 Å); tomograms.star outside the project (projectDir)."""
        folder = os.path.join(self.getOutputPath(), "recon")
        os.makedirs(folder, exist_ok=True)
        tomo = os.path.join(folder, "TS_01_bin4.mrc")
        with mrcfile.new(tomo, overwrite=True) as m:
            m.set_data(np.zeros((35, 64, 64), np.float32))
            m.voxel_size = 26.88
        glob = starfile.read(os.path.join(self.base, "tomograms.star"))
        glob["rlnTomoReconstructedTomogram"] = tomo
        glob["rlnTomoTomogramBinning"] = 4.0
        star = os.path.join(folder, "tomograms.star")
        starfile.write({"global": glob}, star, overwrite=True)
        imp = self.importRelion5(star, os.path.join(self.base, "particles.star"),
                                 projectDir=self.base)
        coords = getattr(imp, constants.OUTPUT_COORDINATES)
        self.assertAlmostEqual(coords.getSamplingRate(), 26.88)
        tomos = getattr(imp, constants.OUTPUT_TOMOGRAMS)
        self.assertEqual(tomos.getFirstItem().getDim(), (64, 64, 35))
        from tomo.constants import BOTTOM_LEFT_CORNER
        parts = starfile.read(os.path.join(self.base, "particles.star"))["particles"]
        first = next(iter(coords.iterCoordinates()))
        blc = np.array(first.getPosition(BOTTOM_LEFT_CORNER))
        want = parts.iloc[0][["rlnCenteredCoordinateXAngst", "rlnCenteredCoordinateYAngst",
                              "rlnCenteredCoordinateZAngst"]].to_numpy(dtype=float) / 26.88 \
            + np.array([32.0, 32.0, 17.5])
        self.assertTrue(np.allclose(blc, want, atol=1e-9))

    # ------------------------------------------------------------------ 2D stacks vs RELION
    def test_c1_default_bin2(self):
        self._check_case("c1")

    def test_c2_crop_bin1(self):
        self._check_case("c2")

    def test_c3_no_ctf(self):
        self._check_case("c3")

    def test_c4_no_circle_crop(self):
        self._check_case("c4")

    def test_c5_float16(self):
        self._check_case("c5")

    def test_c6_max_dose_min_frames(self):
        prot = self._check_case("c6")
        summary = "\n".join(prot.summary())
        self.assertIn("12 RELION 5 pseudo-subtomograms", summary)
        self.assertIn("2 particles removed", summary)

    # ------------------------------------------------------------------ validation
    def test_validation_names_values(self):
        prot = self.newProtocol(ProtCryoprocsExtractSubtomos,
                                inputCoordinates=getattr(self.imp, constants.OUTPUT_COORDINATES),
                                inputTiltSeries=getattr(self.imp, constants.OUTPUT_TILT_SERIES),
                                inputCtfTomoSeries=getattr(self.imp, constants.OUTPUT_CTF_SERIES),
                                boxSize=160, binning=2)
        errors = prot.validate()
        self.assertTrue(any("320" in e and "256 x 256" in e and "TS_01" in e for e in errors),
                        errors)
        prot = self.newProtocol(ProtCryoprocsExtractSubtomos,
                                inputCoordinates=getattr(self.imp, constants.OUTPUT_COORDINATES),
                                inputTiltSeries=getattr(self.imp, constants.OUTPUT_TILT_SERIES),
                                inputCtfTomoSeries=getattr(self.imp, constants.OUTPUT_CTF_SERIES),
                                boxSize=32, cropSize=31)
        self.assertTrue(any("31" in e for e in prot.validate()))


class TestSubvolumesAndSimulatedTiltSeries(CryoprocsBaseTest):
    """3D sub-volumes of the real HIV VLP tomogram against direct slicing at integer
    positions; tilt series simulated from it, extracted back at the same coordinates."""

    POSITIONS = [(30, 40, 50), (67, 67, 50), (100, 90, 60), (20, 110, 45), (2, 60, 50)]
    BOX = 16

    @classmethod
    def setUpClass(cls):
        setupTestProject(cls)
        tomo_file = shared_data("real", "hiv_vlp", "hiv_ts01_tomo_40A.mrc")
        cls.vol = mrcfile.read(tomo_file).astype(np.float32)
        cls.tomos = cls.importTomogramFile(tomo_file, 40.0)
        cls.coords = cls.importCoordinatesTxt(cls.tomos, cls.POSITIONS, 16)

    def _subvolumes(self, **kw):
        prot = self.newProtocol(ProtCryoprocsExtractSubtomos,
                                extractionMode=constants.EXTRACT_MODE_SUBVOLUMES,
                                inputCoordinates=self.coords, boxSize=self.BOX, **kw)
        self.launchProtocol(prot)
        out = getattr(prot, constants.OUTPUT_SUBTOMOGRAMS)
        data = {}
        for sub in out.iterItems():
            data[sub.getObjId()] = (mrcfile.read(os.path.join(self.proj.getPath(),
                                                             sub.getFileName())),
                                    sub.clone())
        return prot, out, data

    def test_subvolumes_equal_direct_slicing_and_skip(self):
        prot, out, data = self._subvolumes(outsideBoxes=constants.OUTSIDE_SKIP)
        self.assertSetSize(out, len(self.POSITIONS) - 1)
        self.assertAlmostEqual(out.getSamplingRate(), 40.0)
        h = self.BOX // 2
        got = sorted(data.values(), key=lambda v: v[1].getObjId())
        for (x, y, z), (arr, sub) in zip(self.POSITIONS[:-1], got):
            self.assertTrue(np.array_equal(arr, self.vol[z - h:z + h, y - h:y + h,
                                                         x - h:x + h]))
        self.assertIn("1 skipped", "\n".join(prot.summary()))

    def test_subvolumes_padded_inverted_normalized(self):
        prot, out, data = self._subvolumes(outsideBoxes=constants.OUTSIDE_PAD, invertContrast=True)
        self.assertSetSize(out, len(self.POSITIONS))
        arr = [v[0] for v in data.values() if v[1].getObjId() == max(data)][0]
        # x = 2: columns x < 0 lie outside the tomogram and hold its mean (inverted)
        mean = self.vol.mean(dtype=np.float64)
        self.assertTrue(np.allclose(arr[:, :, :6], -mean, atol=1e-6))
        self.assertTrue(np.array_equal(arr[:, :, 6:], -self.vol[42:58, 52:68, 0:10]))
        self.assertIn("1 padded", "\n".join(prot.summary()))
        prot, out, data = self._subvolumes(outsideBoxes=constants.OUTSIDE_SKIP, normalize=True)
        zz, yy, xx = np.mgrid[0:16, 0:16, 0:16]
        outside = (xx - 8) ** 2 + (yy - 8) ** 2 + (zz - 8) ** 2 > 64
        for arr, _ in data.values():
            self.assertAlmostEqual(float(arr[outside].mean()), 0.0, places=4)
            self.assertAlmostEqual(float(arr[outside].std()), 1.0, places=4)

    def test_simulated_tilt_series_extract_back(self):
        from cryoprocs.protocols import ProtCryoprocsSimulateTiltSeries
        sim = self.newProtocol(ProtCryoprocsSimulateTiltSeries, inputTomograms=self.tomos,
                               noise=0.0)
        self.launchProtocol(sim)
        tsSet = getattr(sim, constants.OUTPUT_TILT_SERIES)
        ts = tsSet.getFirstItem().clone()
        tis = [ti.clone() for ti in ts.iterItems(orderBy="id")]
        self.assertEqual([round(t.getTiltAngle()) for t in tis], list(range(-60, 61, 3)))
        self.assertEqual(tis[20].getAcquisition().getDoseInitial(), 0.0)
        self.assertEqual(tis[20].getAcquisitionOrder(), 1)
        self.assertEqual(tis[21].getAcquisitionOrder(), 2)      # +3 deg right after 0
        prot = self.newProtocol(ProtCryoprocsExtractSubtomos, inputCoordinates=self.coords,
                                inputTiltSeries=tsSet,
                                inputCtfTomoSeries=getattr(sim, constants.OUTPUT_CTF_SERIES),
                                boxSize=24, ctfPremultiply=False, circleCrop=False)
        self.launchProtocol(prot)
        out = getattr(prot, constants.OUTPUT_SUBTOMOGRAMS)
        cors = []
        for sub in out.iterItems():
            frames = relion5_scipion.attr(sub, "rlnTomoVisibleFrames")
            vis = [int(v) for v in frames.strip("[]").split(",")]
            if not vis[20]:
                continue
            stack = mrcfile.read(os.path.join(self.proj.getPath(), sub.getFileName()))
            frame = stack[sum(vis[:20])]
            from tomo.constants import SCIPION
            # stored coordinates are relative to the tomogram centre (135 x 135 x 101)
            x, y, z = (int(round(v + d / 2.0)) for v, d in zip(
                sub.getCoordinate3D().getPosition(SCIPION), (135, 135, 101)))
            ref = self.vol[:, y - 12:y + 12, x - 12:x + 12].sum(axis=0)
            if ref.shape == (24, 24):
                # extraction inverts the (already inverted) simulated contrast back
                cors.append(np.corrcoef(frame.ravel(), ref.ravel())[0, 1])
        self.assertGreaterEqual(len(cors), 3)
        self.assertGreater(min(cors), 0.5)

    def test_validation_names_missing_tsids(self):
        base = REF.pack_dir()
        imp = self.importRelion5(os.path.join(base, "tomograms.star"))
        self.assertFalse(hasattr(imp, constants.OUTPUT_COORDINATES))
        prot = self.newProtocol(ProtCryoprocsExtractSubtomos, inputCoordinates=self.coords,
                                inputTiltSeries=getattr(imp, constants.OUTPUT_TILT_SERIES),
                                inputCtfTomoSeries=getattr(imp, constants.OUTPUT_CTF_SERIES),
                                boxSize=16)
        errors = prot.validate()
        self.assertTrue(any("hiv_ts01_tomo_40A" in e and "TS_01" in e for e in errors), errors)
        bad = self.newProtocol(ProtCryoprocsImportRelion5,
                               tomogramsFile=os.path.join(base, "tomograms.star"),
                               projectDir=self.getOutputPath())
        self.assertTrue(any("TS_01" in e and "tiltseries/TS_01.star" in e
                            for e in bad.validate()))
