"""ScoresPeakPicking in real Scipion projects: maps imported as tomograms, coordinates out.

* cryoCAT-compatible mode: the SetOfCoordinates3D holds cryoCAT's picks (positions, scores,
  orientations) and the extra/ exports hold them too. Reference: cryoCAT 0.7.1 on the real 48^3
  ribosome template-matching maps of its tutorial (STOPGAP conventions: zzx angle list, 1-based
  angle map, 8.704 A voxels), in the repository's reference subset and the full pack alike;
* Scipion round trip: the coordinates, exported to RELION 5 and read back, give the picks'
  positions (0.01 px) and rotations (0.01 deg); a peak planted at a known 0-based voxel lands on
  that voxel as Scipion's bottom-left-corner position (no 1-voxel offset), also in a tomogram of
  another sampling;
* empty results, several tomograms, masks, angular distance maps and validation messages.
"""
import json
import os
import tempfile

import mrcfile
import numpy as np
import pandas as pd
from pyworkflow.tests import setupTestProject
from scipy.spatial.transform import Rotation

from cryoprocs.tests.scipion_testing import CryoprocsBaseTest
from cryoprocs import constants
from cryoprocs.convert import motl as motl_io
from cryoprocs.kernels.euler import relion_to_zxz
from cryoprocs.convert.scipion import coordinate_blc, relion_orientation
from cryoprocs.kernels import peaks
from cryoprocs.protocols import ProtCryoprocsScoresPeakPicking
from cryoprocs.tests import shared_data

ROT_TOL_DEG = 0.01
POS_TOL_PX = 0.01
VOXEL = 8.704                  # A, the real maps' voxel size
DIAMETER = 10.0                # cryoCAT's particle_diameter of the reference runs


def _rot_diff_deg(a, b):
    ra = Rotation.from_euler("zxz", np.asarray(a, float), degrees=True)
    rb = Rotation.from_euler("zxz", np.asarray(b, float), degrees=True)
    return np.degrees((ra.inv() * rb).magnitude())


def _link(src, dst):
    if not os.path.exists(dst):
        os.symlink(os.path.abspath(src), dst)


class TestScoresPeakPicking(CryoprocsBaseTest):

    @classmethod
    def setUpClass(cls):
        setupTestProject(cls)
        cls.tmp = tempfile.mkdtemp(prefix="peaks_inputs_")
        base = shared_data("cryocat_peaks", "real")
        cls.base = base
        cls.scoresFile = os.path.join(base, "id_2_scores.mrc")
        cls.anglesFile = os.path.join(base, "id_2_angles.mrc")
        shape = mrcfile.read(cls.scoresFile).shape
        slab = np.zeros(shape, np.int8)                 # a tomogram mask: sections 8..39
        slab[8:40] = 1
        for ts in ("TS01", "TS02"):
            _link(cls.scoresFile, os.path.join(cls.tmp, "scores_%s.mrc" % ts))
            _link(cls.anglesFile, os.path.join(cls.tmp, "angles_%s.mrc" % ts))
            with mrcfile.new(os.path.join(cls.tmp, "mask_%s.mrc" % ts), overwrite=True) as m:
                m.set_data(slab)
                m.voxel_size = VOXEL
            # the tomogram the coordinates refer to: same grid as the maps
            _link(cls.scoresFile, os.path.join(cls.tmp, "tomo_%s.mrc" % ts))
        cls.scores = cls._import("scores_{TS}.mrc", VOXEL)
        cls.angles = cls._import("angles_{TS}.mrc", VOXEL)
        cls.tomos = cls._import("tomo_{TS}.mrc", VOXEL)
        cls.angleList = os.path.join(base, "AGL_anglist_20_deg_c1.csv")

    @classmethod
    def _import(cls, pattern, sr, folder=None):
        from tomo.protocols import ProtImportTomograms
        prot = cls.newProtocol(ProtImportTomograms, filesPath=folder or cls.tmp,
                               filesPattern=pattern, samplingRate=sr)
        cls.launchProtocol(prot)
        return prot.Tomograms

    def _pick(self, **kw):
        """A pick of the real maps in their STOPGAP conventions (unless ``kw`` says else)."""
        args = dict(inputScoreMaps=self.scores, inputAngleMaps=self.angles,
                    inputTomograms=self.tomos, angleList=self.angleList, minDistance=DIAMETER,
                    anglesOrder=constants.PEAKS_ORDER_ZZX,
                    anglesNumbering=constants.PEAKS_NUMBERING_1)
        args.update(kw)
        prot = self.newProtocol(ProtCryoprocsScoresPeakPicking, **args)
        self.assertEqual(prot.validate(), [])
        self.launchProtocol(prot)
        return prot

    def _extra(self, prot, name):
        return os.path.join(prot.getProject().getPath(), prot._getExtraPath(name))

    # ------------------------------------------------------------------ cryoCAT picks
    def test_cryocat_compatible_coordinates_and_exports(self):
        prot = self._pick(thresholdMode=constants.PEAKS_THR_SIGMA, sigma=3.0,
                          cryocatCompatible=True, numberOfThreads=3)
        coords = getattr(prot, constants.OUTPUT_COORDINATES)
        ref = pd.read_csv(os.path.join(self.base, "cryocat_out", "id_2_sigma3.csv"))
        S = json.load(open(os.path.join(self.base, "cryocat_out", "id_2_sigma3_summary.json")))
        self.assertSetSize(coords, 2 * len(ref))
        self.assertAlmostEqual(coords.getSamplingRate(), VOXEL)
        self.assertEqual(coords.getBoxSize(), int(DIAMETER))
        for tsId in ("TS01", "TS02"):
            tomo = [t.clone() for t in self.tomos if t.getTsId() == tsId][0]
            got = [(coordinate_blc(c), c.getScore(), relion_orientation(c)[0],
                    (c._cryoprocsPhi.get(), c._cryoprocsTheta.get(), c._cryoprocsPsi.get()))
                   for c in coords.iterCoordinates(tomo)]
            self.assertEqual(len(got), len(ref))
            pos = np.array([g[0] for g in got])
            np.testing.assert_array_equal(pos, ref[["x0", "y0", "z0"]].values)   # 0-based BLC
            np.testing.assert_allclose([g[1] for g in got], ref["score"].values, rtol=1e-6)
            zxz = np.column_stack(relion_to_zxz(*np.array([g[2] for g in got]).T))
            self.assertLess(_rot_diff_deg(zxz, ref[["phi", "theta", "psi"]].values).max(),
                            ROT_TOL_DEG)
            np.testing.assert_allclose([g[3] for g in got], ref[["phi", "theta", "psi"]].values)
        # exports: EM motive list = cryoCAT's picks, 1-based (ids unique across tomograms)
        motl = motl_io.read_em_motl(self._extra(prot, constants.PEAKS_EM_MOTL))
        self.assertEqual(motl["subtomo_id"].tolist(), list(range(1, 2 * len(ref) + 1)))
        cols = ["x", "y", "z", "score", "phi", "theta", "psi"]
        for num in (1, 2):
            part = motl[motl["tomo_id"] == num]
            np.testing.assert_allclose(part[cols].values, ref[cols].values, rtol=1e-6,
                                       atol=1e-9)
        sg = motl_io.read_stopgap_star(self._extra(prot, constants.PEAKS_STOPGAP_STAR))
        self.assertEqual(len(sg), 2 * len(ref))
        summary = json.load(open(self._extra(prot, constants.PEAKS_SUMMARY_JSON)))
        n_cand = S["n_candidate_voxels"]
        self.assertEqual(summary["tomograms"]["TS01"]["candidates"], n_cand)
        self.assertTrue(os.path.getsize(self._extra(prot, "TS01_diagnostics.png")) > 10000)
        self.assertTrue(any("%d candidate voxels" % n_cand in s for s in prot.summary()))

    def test_relion5_round_trip_from_scipion(self):
        prot = self._pick(thresholdMode=constants.PEAKS_THR_TRIANGLE, cryocatCompatible=True)
        coords = getattr(prot, constants.OUTPUT_COORDINATES)
        ref = pd.read_csv(os.path.join(self.base, "cryocat_out", "id_2_triangle.csv"))
        # Scipion -> RELION 5 (centred Angstrom, ZYZ angles) -> back
        from tomo.constants import SCIPION
        rows = []
        for c in coords.iterCoordinates():
            (rot, tilt, psi), _ = relion_orientation(c)
            phi, theta, psi2 = relion_to_zxz(rot, tilt, psi)
            rows.append((c.getTomoId(), coordinate_blc(c), (phi, theta, psi2),
                         (c.getX(SCIPION), c.getY(SCIPION), c.getZ(SCIPION))))
        ts01 = [r for r in rows if r[0] == "TS01"]
        dims = mrcfile.read(self.scoresFile).shape[::-1]
        table = motl_io.relion5_from_picks([r[1] for r in ts01], [r[2] for r in ts01], "TS01", dims,
                                           VOXEL)
        star = os.path.join(self.tmp, "roundtrip.star")
        motl_io.write_relion5_particles(star, table)
        back = motl_io.read_relion5_particles(star)
        cen = back[["rlnCenteredCoordinateXAngst", "rlnCenteredCoordinateYAngst",
                    "rlnCenteredCoordinateZAngst"]].values
        pos = cen / VOXEL + np.array(dims) / 2.0
        np.testing.assert_allclose(pos, ref[["x0", "y0", "z0"]].values, atol=POS_TOL_PX)
        # Scipion's own centred coordinates agree with RELION 5's
        np.testing.assert_allclose(np.array([r[3] for r in ts01]) * VOXEL, cen, atol=1e-3)
        self.assertLess(_rot_diff_deg(back[["phi", "theta", "psi"]].values,
                                      ref[["phi", "theta", "psi"]].values).max(), ROT_TOL_DEG)
        # the protocol's own RELION 5 export says the same
        ours = motl_io.read_relion5_particles(self._extra(prot, constants.PEAKS_RELION5_STAR))
        ours = ours[ours["rlnTomoName"] == "TS01"]
        np.testing.assert_allclose(ours[["rlnCenteredCoordinateXAngst",
                                         "rlnCenteredCoordinateYAngst",
                                         "rlnCenteredCoordinateZAngst"]].values, cen, atol=1e-3)

    def test_planted_peak_lands_on_its_voxel(self):
        """No 1-voxel offset: a peak at 0-based voxel (x, y, z) = (37, 21, 12) of the score map
        is Scipion BLC (37, 21, 12) in a tomogram of the same grid, and (74, 42, 24) in a
        tomogram with half the pixel size and twice the size."""
        d = tempfile.mkdtemp(prefix="peaks_planted_")
        s = np.zeros((32, 48, 64), np.float32)
        s[12, 21, 37] = 1.0
        s[12, 21, 38] = 0.5
        a = np.zeros_like(s)
        a[12, 21, 37] = 1                               # row 1 of the list
        for name, arr, vs in (("scores_TSP.mrc", s, 10.0), ("angles_TSP.mrc", a, 10.0),
                              ("tomo_TSP.mrc", s, 10.0),
                              ("tomo2_TSP.mrc", np.zeros((64, 96, 128), np.float32), 5.0)):
            with mrcfile.new(os.path.join(d, name)) as m:
                m.set_data(arr)
                m.voxel_size = vs
        np.savetxt(os.path.join(d, "list.csv"), [[0, 0, 0], [30, 40, 50]], delimiter=",")
        scores = self._import("scores_{TS}.mrc", 10.0, d)
        angles = self._import("angles_{TS}.mrc", 10.0, d)
        for pattern, sr, expect in (("tomo_{TS}.mrc", 10.0, (37, 21, 12)),
                                    ("tomo2_{TS}.mrc", 5.0, (74, 42, 24))):
            tomos = self._import(pattern, sr, d)
            prot = self._pick(inputScoreMaps=scores, inputAngleMaps=angles, inputTomograms=tomos,
                              angleList=os.path.join(d, "list.csv"), minDistance=3.0,
                              anglesOrder=constants.PEAKS_ORDER_ZXZ,
                              anglesNumbering=constants.PEAKS_NUMBERING_0,
                              thresholdMode=constants.PEAKS_THR_DIRECT, threshold=0.1)
            coords = list(getattr(prot, constants.OUTPUT_COORDINATES).iterCoordinates())
            self.assertEqual(len(coords), 1)
            self.assertEqual(tuple(round(v, 6) for v in coordinate_blc(coords[0])), expect)
            (rot, tilt, psi), _ = relion_orientation(coords[0])
            self.assertLess(_rot_diff_deg([relion_to_zxz(rot, tilt, psi)], [[30, 40, 50]])[0],
                            ROT_TOL_DEG)
            self.assertEqual(coords[0]._cryoprocsAngleIndex.get(), 1)

    # ------------------------------------------------------------------ other behaviours
    def test_empty_result_is_a_valid_empty_set(self):
        prot = self._pick(thresholdMode=constants.PEAKS_THR_DIRECT, threshold=5.0)
        coords = getattr(prot, constants.OUTPUT_COORDINATES)
        self.assertSetSize(coords, 0)
        self.assertTrue(any("no voxel above the threshold" in s for s in prot.summary()))

    def test_mask_inside_and_angular_maps(self):
        from tomo.protocols import ProtImportTomomasks
        imp = self.newProtocol(ProtImportTomomasks, filesPath=self.tmp,
                               filesPattern="mask_{TS}.mrc", inputTomos=self.tomos)
        self.launchProtocol(imp)
        masks = imp.tomomasks
        prot = self._pick(inputMasks=masks, maskMode=constants.PEAKS_MASK_INSIDE,
                          thresholdMode=constants.PEAKS_THR_SIGMA, sigma=3.0, writeAngularMaps=True,
                          border=2)
        coords = getattr(prot, constants.OUTPUT_COORDINATES)
        self.assertTrue(coords.getSize() > 0)
        for c in coords.iterCoordinates():
            z = coordinate_blc(c)[2]
            self.assertTrue(8 <= z < 40)                         # the mask's slab
        # statistics inside the mask: the threshold is the unmasked-region one
        m = mrcfile.read(self.scoresFile)[8:40]
        st = peaks.map_statistics(m)
        summary = json.load(open(self._extra(prot, constants.PEAKS_SUMMARY_JSON)))
        self.assertEqual(np.float32(summary["tomograms"]["TS01"]["threshold"]),
                         peaks.sigma_threshold(st.mean, st.std, 3.0))
        # angular distance maps: table lookups of the angle map
        total = getattr(prot, constants.OUTPUT_ANGDIST_TOTAL)
        self.assertSetSize(total, 2)
        t = total.getFirstItem()
        vol = mrcfile.read(os.path.join(prot.getProject().getPath(), t.getFileName()))
        amap = mrcfile.read(self.anglesFile).astype(int) - 1            # 1-based
        tab = peaks.angular_distance_tables(peaks.load_angle_list(self.angleList, "zzx"))[0]
        np.testing.assert_array_equal(vol, tab[amap])

    def test_validation_names_the_values(self):
        d = tempfile.mkdtemp(prefix="peaks_bad_")
        with mrcfile.new(os.path.join(d, "angles_TS01.mrc")) as m:
            m.set_data(np.zeros((64, 128, 120), np.float32))
        badAngles = self._import("angles_{TS}.mrc", 10.0, d)
        prot = self.newProtocol(ProtCryoprocsScoresPeakPicking, inputScoreMaps=self.scores,
                                inputAngleMaps=badAngles, inputTomograms=self.tomos,
                                angleList=self.angleList, minDistance=DIAMETER)
        errors = prot.validate()
        self.assertTrue(any("(120, 128, 64)" in e and "(48, 48, 48)" in e for e in errors),
                        errors)
        # 0-based numbering on the 1-based map: the header maximum is the list length
        prot = self.newProtocol(ProtCryoprocsScoresPeakPicking, inputScoreMaps=self.scores,
                                inputAngleMaps=self.angles, inputTomograms=self.tomos,
                                angleList=self.angleList, minDistance=DIAMETER,
                                anglesOrder=constants.PEAKS_ORDER_ZZX,
                                anglesNumbering=constants.PEAKS_NUMBERING_0)
        errors = prot.validate()
        self.assertTrue(any("1-based" in e for e in errors), errors)
        # a mask of another shape
        from tomo.protocols import ProtImportTomomasks
        with mrcfile.new(os.path.join(d, "badmask_TS01.mrc")) as m:
            m.set_data(np.ones((64, 128, 120), np.int8))
        imp = self.newProtocol(ProtImportTomomasks, filesPath=d,
                               filesPattern="badmask_{TS}.mrc", inputTomos=badAngles)
        self.launchProtocol(imp)
        prot = self.newProtocol(ProtCryoprocsScoresPeakPicking, inputScoreMaps=self.scores,
                                inputAngleMaps=self.angles, inputTomograms=self.tomos,
                                inputMasks=imp.tomomasks, angleList=self.angleList,
                                minDistance=DIAMETER)
        errors = prot.validate()
        self.assertTrue(any("mask has (120, 128, 64)" in e for e in errors), errors)
        prot = self.newProtocol(ProtCryoprocsScoresPeakPicking, inputScoreMaps=self.scores,
                                inputAngleMaps=self.angles, inputTomograms=badAngles,
                                angleList=self.angleList, minDistance=DIAMETER)
        self.assertTrue(any("No tsId is shared" in e or "without a match" in e
                            for e in prot.validate() + prot.warnings()))
