"""ImportCopick and ExportCopick in a real Scipion project, on a copick project made with
copick's API: tomograms kept as OME-Zarr (dimensions through the registered reader),
oriented coordinates, tomo masks, sub-volumes extracted from the OME-Zarr tomograms, and the
coordinates (and the subtomograms' coordinates) written back as copick picks equal to the
originals to 1e-4; bad input gives one clear error and writes nothing."""
import os

import mrcfile
import numpy as np
import pytest
from pyworkflow.tests import setupTestProject

from cryoprocs import constants
from cryoprocs.convert.scipion import coordinate_blc, relion_orientation
from cryoprocs.convert.euler import relion_euler_matrix
from cryoprocs.protocols import (ProtCryoprocsExportCopick, ProtCryoprocsExtractSubtomos,
                                 ProtCryoprocsImportCopick)
from cryoprocs.tests import copick_helpers
from cryoprocs.tests.scipion_testing import CryoprocsBaseTest

copick = copick_helpers.copick_or_skip()


class TestCopickProtocols(CryoprocsBaseTest):

    @classmethod
    def setUpClass(cls):
        setupTestProject(cls)
        cls.cpDir = os.path.join(cls.proj.getPath(), "copick_project")
        cls.config, cls.truth = copick_helpers.make_project(cls.cpDir)

    def _import(self, **kw):
        args = dict(configFile=self.config, voxelSpacing=copick_helpers.VOXEL, tomoType="wbp",
                    objects="ribosome", importMasks=True)
        args.update(kw)
        prot = self.newProtocol(ProtCryoprocsImportCopick, **args)
        self.launchProtocol(prot)
        return prot

    def _picks(self, run, user, session):
        root = copick.from_file(self.config)
        p = root.get_run(run).get_picks(object_name="ribosome", user_id=user,
                                        session_id=session)
        self.assertEqual(len(p), 1)
        pts, tr = p[0].numpy()
        return pts + tr[:, :3, 3], tr[:, :3, :3]

    def test_import_lazy_and_export_round_trip(self):
        imp = self._import()
        tomos = getattr(imp, constants.OUTPUT_TOMOGRAMS)
        self.assertEqual(tomos.getSize(), 2)
        self.assertAlmostEqual(tomos.getSamplingRate(), copick_helpers.VOXEL)
        for t in tomos:
            self.assertTrue(t.getFileName().endswith("wbp.zarr"))     # not copied
            self.assertEqual(tuple(t.getDim()), copick_helpers.SHAPE[::-1])
        self.assertEqual(tuple(tomos.getDim()), copick_helpers.SHAPE[::-1])
        coords = getattr(imp, constants.OUTPUT_COORDINATES)
        self.assertEqual(coords.getSize(), 12)
        self.assertEqual(coords.getBoxSize(), 16)                     # 2 x 80 A / 10 A/px
        byRun = {}
        for c in coords.iterCoordinates():
            byRun.setdefault(c.getTomoId(), []).append(
                (coordinate_blc(c), relion_orientation(c)[0], c._copickUser.get()))
        for run, (loc, T, _, _) in self.truth.items():
            got = byRun[run]
            pos = np.array([g[0] for g in got])
            np.testing.assert_allclose(pos, (loc + T[:, :3, 3]) / copick_helpers.VOXEL, atol=1e-6)
            A = np.array([relion_euler_matrix(*g[1]) for g in got])
            np.testing.assert_allclose(A, T[:, :3, :3], atol=1e-9)
            # the known rotation Rz(+90): the particle's x axis along the tomogram's y
            np.testing.assert_allclose(A[0] @ [1, 0, 0], [0, 1, 0], atol=1e-9)
            self.assertEqual({g[2] for g in got}, {"alice"})
        masks = getattr(imp, constants.OUTPUT_TOMO_MASKS)
        self.assertEqual(masks.getSize(), 2)
        from cryoprocs.convert.images import open_image
        for m in masks:
            with open_image(m.getFileName()) as img:
                np.testing.assert_array_equal(img[:], self.truth[m.getTsId()][3])
        self.assertIn("12", "\n".join(imp.summary()) + str(coords.getSize()))

        # export the coordinates under another session: equal to the originals to 1e-4
        exp = self.newProtocol(ProtCryoprocsExportCopick, inputObjects=coords,
                               configFile=self.config, objectName="ribosome",
                               userId="cryoprocs", sessionId="2")
        self.launchProtocol(exp)
        for run, (loc, T, _, _) in self.truth.items():
            pos, R = self._picks(run, "cryoprocs", "2")
            np.testing.assert_allclose(pos, loc + T[:, :3, 3], atol=1e-4)
            np.testing.assert_allclose(R, T[:, :3, :3], atol=1e-4)
        self.assertIn("12 picks of ribosome", "\n".join(exp.summary()))

        # sub-volumes cut from the OME-Zarr tomograms, then their coordinates exported
        ext = self.newProtocol(ProtCryoprocsExtractSubtomos, inputCoordinates=coords,
                               inputTomograms=tomos,
                               extractionMode=constants.EXTRACT_MODE_SUBVOLUMES, boxSize=8,
                               outsideBoxes=1)
        self.launchProtocol(ext)
        subs = getattr(ext, constants.OUTPUT_SUBTOMOGRAMS)
        self.assertEqual(subs.getSize(), 12)
        tomoOf = {t.getTsId(): t.clone() for t in tomos}
        for s in subs:
            c = s.getCoordinate3D().clone()
            c.setVolume(tomoOf[c.getTomoId()])
            vol = self.truth[c.getTomoId()][2]
            x, y, z = (int(np.floor(v + 0.5)) for v in coordinate_blc(c))
            data = mrcfile.read(os.path.join(self.proj.getPath(), s.getFileName()))
            if 4 <= x <= 44 and 4 <= y <= 36 and 4 <= z <= 20:     # fully inside
                np.testing.assert_array_equal(data, vol[z - 4:z + 4, y - 4:y + 4,
                                                        x - 4:x + 4])
        exp2 = self.newProtocol(ProtCryoprocsExportCopick, inputObjects=subs,
                                configFile=self.config, objectName="ribosome",
                                userId="cryoprocs", sessionId="3")
        self.launchProtocol(exp2)
        for run, (loc, T, _, _) in self.truth.items():
            pos, R = self._picks(run, "cryoprocs", "3")
            np.testing.assert_allclose(pos, loc + T[:, :3, 3], atol=1e-4)
            np.testing.assert_allclose(R, T[:, :3, :3], atol=1e-4)

    def test_copy_to_mrc(self):
        imp = self._import(copyToMrc=True, runNames="TS_02", importMasks=False)
        tomos = getattr(imp, constants.OUTPUT_TOMOGRAMS)
        self.assertEqual(tomos.getSize(), 1)
        t = tomos.getFirstItem()
        self.assertTrue(t.getFileName().endswith("TS_02.mrc"))
        with mrcfile.open(os.path.join(self.proj.getPath(), t.getFileName())) as m:
            np.testing.assert_array_equal(m.data, self.truth["TS_02"][2])
            self.assertAlmostEqual(float(m.voxel_size.x), copick_helpers.VOXEL, places=4)

    def test_bad_input(self):
        prot = self.newProtocol(ProtCryoprocsImportCopick, configFile=self.config,
                                voxelSpacing=copick_helpers.VOXEL, objects="proteasome")
        errors = prot.validate()
        self.assertEqual(len(errors), 1)
        self.assertIn("copick object(s) proteasome do not exist", errors[0])
        self.assertIn("ribosome", errors[0])
        prot = self.newProtocol(ProtCryoprocsImportCopick, configFile=self.config,
                                voxelSpacing=7.0)
        self.assertIn("no tomogram of type 'wbp' at voxel spacing 7 A", prot.validate()[0])
        imp = self._import(importMasks=False, runNames="TS_01")
        exp = self.newProtocol(ProtCryoprocsExportCopick,
                               inputObjects=getattr(imp, constants.OUTPUT_COORDINATES),
                               configFile=self.config, objectName="proteasome")
        self.assertIn("copick object 'proteasome' does not exist", exp.validate()[0])
        # an existing pick set (alice/1) is not replaced: the run fails, the file is intact
        root = copick.from_file(self.config)
        path = root.get_run("TS_01").get_picks(user_id="alice")[0].path
        before = open(path).read()
        exp = self.newProtocol(ProtCryoprocsExportCopick,
                               inputObjects=getattr(imp, constants.OUTPUT_COORDINATES),
                               configFile=self.config, objectName="ribosome", userId="alice",
                               sessionId="1")
        errors = exp.validate()
        self.assertEqual(len(errors), 1)
        self.assertIn("runs TS_01 already have picks of ribosome by alice in session 1",
                      errors[0])
        # launched anyway: refused before any step runs
        with self.assertRaises(Exception):
            self.launchProtocol(exp)
        self.assertTrue(exp.isFailed())
        self.assertIn("already have picks", exp.getErrorMessage())
        self.assertEqual(open(path).read(), before)
        exp = self.newProtocol(ProtCryoprocsExportCopick,
                               inputObjects=getattr(imp, constants.OUTPUT_COORDINATES),
                               configFile=self.config, objectName="ribosome",
                               userId="bob", sessionId="1")
        self.assertEqual(exp.validate(), [])
