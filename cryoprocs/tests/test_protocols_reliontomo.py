"""RELION 5 refinement in Scipion: cryoprocs outputs as inputs of scipion-em-reliontomo 4.0.5
(installed by ``make test``; validation only, no RELION binaries).

Real data (the demo's HIV-1 VLP tomogram, read from ../shared/data or the demo's download):
two crops, their tilt series simulated, their real particles imported with ImportRelion5 and
picked with ScoresPeakPicking (a non-trivial orientation), then extracted as 2D stacks. The
pseudo-subtomograms reliontomo reads back must be our particles (names, files, visible
frames, coordinates, orientations), RELION must get them back from reliontomo's writer, and
reliontomo's RELION 5 protocols must accept them (only the missing binaries reported);
ReconstructSubtomoAverage averages them like our own subtomograms, and its average and an
ApplyMask3D VolumeMask feed ProtRelionPostProcess and ProtRelionRefineSubtomograms.
"""
import os

import mrcfile
import numpy as np
import starfile
from pyworkflow.tests import setupTestProject

from cryoprocs import constants
from cryoprocs.convert import relion5
from cryoprocs.convert import relion5_scipion
from cryoprocs.convert import reliontomo_scipion
from cryoprocs.convert.euler import relion_euler_matrix
from cryoprocs.convert.scipion import relion_orientation
from cryoprocs.convert.star import write_star
from cryoprocs.tests import queue_inputs
from cryoprocs.tests import shared_data_root
from cryoprocs.tests.scipion_testing import CryoprocsBaseTest

#: the picks' one orientation (the angle list's Euler angles, degrees)
PICK_ANGLES = (30.0, 40.0, 50.0)
BOX, BIN = 16, 1


def _relion_protocols():
    from reliontomo.protocols import (ProtRelion5ReconstructParticle,
                                      ProtRelionDeNovoInitialModel, ProtRelionPostProcess,
                                      ProtRelionRefineSubtomograms)
    return (ProtRelionRefineSubtomograms, ProtRelion5ReconstructParticle,
            ProtRelionDeNovoInitialModel, ProtRelionPostProcess)


def _full_matrix(sub_angles, particle_angles):
    """RELION's particle orientation ``A_subtomo . A_particle``."""
    return relion_euler_matrix(*sub_angles) @ relion_euler_matrix(*particle_angles)


class TestRelionTomoChain(CryoprocsBaseTest):

    @classmethod
    def setUpClass(cls):
        from cryoprocs.demo.data import DemoDataError
        from tomo.protocols import ProtImportTomograms
        from cryoprocs.protocols import (ProtCryoprocsExtractSubtomos,
                                         ProtCryoprocsScoresPeakPicking,
                                         ProtCryoprocsSimulateTiltSeries)
        mods, reason = reliontomo_scipion.reliontomo_modules()
        if mods is None:
            import unittest
            raise unittest.SkipTest(reason)
        setupTestProject(cls)
        root = shared_data_root()
        try:
            data = queue_inputs.locate_data(os.path.join(root, "real") if root else None)
        except DemoDataError as exc:
            import unittest
            raise unittest.SkipTest("the demo's real data are not available: %s" % exc)
        tmp = cls.getOutputPath()
        crops = queue_inputs.write_crops(data, os.path.join(tmp, "inputs"), n=2, particle_stride=4)
        vs = crops["voxel_size"]
        tomos = cls.newProtocol(ProtImportTomograms, filesPath=crops["tomograms"],
                                filesPattern="*.mrc", samplingRate=vs)
        cls.launchProtocol(tomos)
        cls.tomos = tomos.Tomograms
        scores = cls.newProtocol(ProtImportTomograms, filesPath=crops["scores"],
                                 filesPattern="scores_{TS}.mrc", samplingRate=vs)
        cls.launchProtocol(scores)
        angles = cls.newProtocol(ProtImportTomograms, filesPath=crops["scores"],
                                 filesPattern="angles_{TS}.mrc", samplingRate=vs)
        cls.launchProtocol(angles)
        sim = cls.newProtocol(ProtCryoprocsSimulateTiltSeries, inputTomograms=cls.tomos,
                              tiltMin=-60, tiltMax=60, tiltStep=6)
        cls.launchProtocol(sim)
        star = os.path.join(cls.proj.getPath(), sim._getExtraPath("simulated", "tomograms.star"))
        sizes = {r["rlnTomoName"]: [int(r[k]) for k in ("rlnTomoSizeX", "rlnTomoSizeY",
                                                        "rlnTomoSizeZ")]
                 for _, r in relion5.read_tomograms(star).iterrows()}
        particles = queue_inputs.write_particles_star(crops, os.path.join(tmp, "particles.star"),
                                                      sizes)
        cls.imp = cls.importRelion5(star, particles, projectDir=cls.proj.getPath(),
                                    inputTomograms=cls.tomos)
        anglesCsv = os.path.join(tmp, "one_orientation.csv")
        with open(anglesCsv, "w") as fh:
            fh.write("%g,%g,%g\n" % PICK_ANGLES)
        cls.pick = cls.newProtocol(ProtCryoprocsScoresPeakPicking,
                                   inputScoreMaps=scores.Tomograms,
                                   inputAngleMaps=angles.Tomograms, inputTomograms=cls.tomos,
                                   angleList=anglesCsv, minDistance=15.0, boxSize=BOX)
        cls.launchProtocol(cls.pick)
        common = dict(inputTiltSeries=getattr(cls.imp, constants.OUTPUT_TILT_SERIES),
                      inputCtfTomoSeries=getattr(cls.imp, constants.OUTPUT_CTF_SERIES),
                      boxSize=BOX, binning=BIN, minFrames=5, numberOfThreads=3)
        cls.ext = cls.newProtocol(ProtCryoprocsExtractSubtomos,
                                  inputCoordinates=getattr(cls.imp, constants.OUTPUT_COORDINATES),
                                  **common)
        cls.ext.setObjLabel("extract imported particles")
        cls.launchProtocol(cls.ext)
        cls.extPicks = cls.newProtocol(ProtCryoprocsExtractSubtomos,
                                       inputCoordinates=getattr(cls.pick,
                                                                constants.OUTPUT_COORDINATES),
                                       **common)
        cls.extPicks.setObjLabel("extract picks")
        cls.launchProtocol(cls.extPicks)

    # ------------------------------------------------------------------ helpers
    def _abs(self, path):
        return path if os.path.isabs(path) else os.path.join(self.proj.getPath(), path)

    def _ours(self, prot):
        """{rlnTomoParticleName: our SubTomogram clone}."""
        return {relion5_scipion.attr(s, "rlnTomoParticleName"): s.clone()
                for s in getattr(prot, constants.OUTPUT_SUBTOMOGRAMS).iterItems()}

    def _check_read_back(self, prot, subtomogram_angles_carry_all):
        from tomo.constants import SCIPION
        pset = getattr(prot, constants.OUTPUT_RELION_PARTICLES)
        ours = self._ours(prot)
        self.assertGreater(len(ours), 10)
        self.assertEqual(pset.getSize(), len(ours))
        self.assertEqual(type(pset).__name__, "RelionSetOfPseudoSubtomograms")
        self.assertTrue(pset.are2dStacks())
        self.assertTrue(pset.areRe5Particles())
        ps = getattr(self.imp, constants.OUTPUT_TILT_SERIES).getSamplingRate()
        self.assertAlmostEqual(pset.getTsSamplingRate(), ps)
        self.assertAlmostEqual(pset.getRelionBinning(), BIN)
        self.assertAlmostEqual(pset.getSamplingRate(), ps * BIN)
        self.assertEqual(pset.getBoxSize(), BOX)
        self.assertEqual(os.path.abspath(self._abs(pset.getParticlesStar())),
                         os.path.abspath(self._abs(prot._getExtraPath("particles.star"))))
        self.assertEqual(os.path.abspath(self._abs(pset.getTomogramsStar())),
                         os.path.abspath(self._abs(prot._getExtraPath("tomograms.star"))))
        self.assertIn("rlnOpticsGroup", pset.getAcquisition().opticsGroupInfo.get())
        self.assertEqual(pset.getCoordinates3D().getObjId(),
                         prot.inputCoordinates.get().getObjId())
        n_rotated = 0
        for p in pset.iterItems():
            name = p.getRelionParticleName()
            sub = ours[name]
            self.assertEqual(p.getTsId(), sub.getVolName())
            self.assertEqual(p.getFileName(), sub.getFileName())
            self.assertEqual(p.getVisibleFrames(),
                             relion5_scipion.attr(sub, "rlnTomoVisibleFrames"))
            c, o = p.getCoordinate3D(), sub.getCoordinate3D()
            self.assertEqual(c.getTomoId(), o.getTomoId())
            self.assertEqual(c.getObjId(), o.getObjId())
            self.assertTrue(np.allclose(c.getPosition(SCIPION), o.getPosition(SCIPION),
                                        rtol=0, atol=1e-9))
            # RELION's orientation of the pseudo-subtomogram: its subtomogram angles (the
            # transform) then its particle angles; ours: the subtomogram's transform
            (sub_angles, shifts) = relion_orientation(p)
            self.assertTrue(np.allclose(shifts, 0.0, atol=1e-9))
            theirs = _full_matrix(sub_angles, (p.getRot(), p.getTilt(), p.getPsi()))
            mine = relion_euler_matrix(*relion_orientation(sub)[0])
            self.assertTrue(np.allclose(theirs, mine, atol=1e-9), name)
            if subtomogram_angles_carry_all:
                self.assertEqual((p.getRot(), p.getTilt(), p.getPsi()), (0.0, 0.0, 0.0))
            n_rotated += not np.allclose(mine, np.eye(3), atol=1e-6)
            # the centred position RELION gets, in Å
            cen = np.array(o.getPosition(SCIPION)) * prot.inputCoordinates.get().getSamplingRate()
            self.assertTrue(np.allclose((p.getXInImg(), p.getYInImg(), p.getZInImg()), cen,
                                        atol=1e-6))
        self.assertEqual(n_rotated, len(ours))
        return pset

    # ------------------------------------------------------------------ tests
    def test_imported_particles_read_back_equal_ours(self):
        pset = self._check_read_back(self.ext, subtomogram_angles_carry_all=False)
        self.assertIn("%s: the %d stacks" % (constants.OUTPUT_RELION_PARTICLES, pset.getSize()),
                      "\n".join(self.ext.summary()))

    def test_picked_particles_read_back_equal_ours(self):
        self._check_read_back(self.extPicks, subtomogram_angles_carry_all=True)
        # the picks all carry the angle list's one orientation
        mats = [relion_euler_matrix(*relion_orientation(s)[0])
                for s in self._ours(self.extPicks).values()]
        self.assertTrue(all(np.allclose(m, mats[0], atol=1e-9) for m in mats))

    def test_reliontomo_writer_gives_relion_our_particles(self):
        """What ProtRelionRefineSubtomograms writes for RELION from the set (reliontomo's
        ``pseudoSubtomograms2Star``) holds our particles.star values."""
        from reliontomo.convert import convert50_tomo
        pset = getattr(self.ext, constants.OUTPUT_RELION_PARTICLES)
        out = os.path.join(self.getOutputPath(), "reliontomo_writer")
        os.makedirs(out, exist_ok=True)
        convert50_tomo.Writer().pseudoSubtomograms2Star(pset, out, are2dParticles=True)
        theirs = starfile.read(os.path.join(out, "inParticles.star"), always_dict=True)
        ours = starfile.read(self._abs(self.ext._getExtraPath("particles.star")),
                             always_dict=True)
        self.assertEqual(int(theirs["general"]["rlnTomoSubTomosAre2DStacks"]), 1)
        t = theirs["particles"].set_index("rlnTomoParticleName")
        o = ours["particles"].set_index("rlnTomoParticleName")
        self.assertEqual(sorted(t.index), sorted(o.index))
        t = t.loc[o.index]
        for col in ("rlnTomoName", "rlnTomoVisibleFrames", "rlnImageName"):
            self.assertEqual(list(t[col].astype(str)), list(o[col].astype(str)), col)
        for col in relion5.CENTERED_COLUMNS + ["rlnRandomSubset", "rlnOpticsGroup"]:
            self.assertTrue(np.allclose(t[col].to_numpy(float), o[col].to_numpy(float),
                                        atol=1e-6), col)
        self.assertTrue(np.allclose(t[relion5.ORIGIN_COLUMNS].to_numpy(float), 0.0, atol=1e-9))
        for name in o.index:
            def full(row):
                sub = [row[c] if c in row.index else 0.0 for c in relion5.SUBTOMO_COLUMNS]
                return _full_matrix(sub, [row[c] for c in relion5.ANGLE_COLUMNS])
            self.assertTrue(np.allclose(full(t.loc[name]), full(o.loc[name]), atol=1e-6), name)
        optics = theirs["optics"]
        self.assertAlmostEqual(float(optics["rlnImagePixelSize"].iloc[0]),
                               float(ours["optics"]["rlnImagePixelSize"].iloc[0]))
        self.assertEqual(int(optics["rlnImageSize"].iloc[0]), BOX)

    def _reconstruct(self, label, **kw):
        from cryoprocs.protocols import ProtCryoprocsReconstructSubtomoAverage
        prot = self.newProtocol(ProtCryoprocsReconstructSubtomoAverage,
                                inputSource=constants.RECONSTRUCT_FROM_SUBTOMOGRAMS, boxSize=BOX,
                                binning=BIN, numberOfThreads=3, **kw)
        prot.setObjLabel(label)
        self.launchProtocol(prot)
        avg = getattr(prot, constants.OUTPUT_AVERAGE)
        return prot, avg, mrcfile.read(self._abs(avg.getFileName()))

    def test_reconstruct_and_relion_protocols_take_the_pseudo_subtomograms(self):
        from cryoprocs.protocols import ProtCryoprocsApplyMask3D
        Refine, Rec, DeNovo, Post = _relion_protocols()
        pset = getattr(self.ext, constants.OUTPUT_RELION_PARTICLES)
        # averaged here like our own subtomograms of the same extraction
        _, _, ref = self._reconstruct("from subtomograms",
                                      inputSubtomograms=getattr(self.ext,
                                                                constants.OUTPUT_SUBTOMOGRAMS))
        prot, avg, got = self._reconstruct("from reliontomo pseudo-subtomograms",
                                           inputSubtomograms=pset)
        self.assertTrue(np.allclose(got, ref, rtol=0, atol=1e-6 * np.abs(ref).max()))
        self.assertIn("%d of %d particles reconstructed" % (pset.getSize(), pset.getSize()),
                      "\n".join(prot.summary()))
        # a soft solvent mask at the average's sampling
        mask = self.newProtocol(ProtCryoprocsApplyMask3D, inputVolumes=avg,
                                geo=constants.MASK3D_RAISED_COSINE, innerRadius=4, outerRadius=7,
                                saveMask=True)
        self.launchProtocol(mask)
        vmask = getattr(mask, constants.OUTPUT_VOLUME_MASK)
        # reliontomo's RELION 5 protocols validate: only the missing binaries are reported
        # (the values a user must type given: particle diameter in Å, box sizes)
        diameter = int(0.8 * BOX * pset.getSamplingRate())
        cases = [(Refine, dict(inReParticles=pset, referenceVolume=avg, solventMask=vmask,
                               maskDiameter=diameter)),
                 (Rec, dict(inReParticles=pset, boxSize=BOX, croppedBoxSize=BOX)),
                 (DeNovo, dict(inReParticles=pset, maskDiameter=diameter)),
                 (Post, dict(inVolume=avg, solventMask=vmask))]
        for cls, kw in cases:
            p = self.newProtocol(cls, **kw)
            for name, param in p.getDefinition().iterParams():
                obj = getattr(p, name)
                if obj.isPointer() and obj.get() is not None:
                    self.assertTrue(param.pointerClass.get().split(",")[0].strip() in
                                    [c.__name__ for c in type(obj.get()).mro()],
                                    (cls.__name__, name, type(obj.get()).__name__))
            install = p.validateInstallation()
            self.assertTrue(install and any("RELIONTOMO_HOME" in e for e in install),
                            (cls.__name__, install))
            others = [e for e in p.validate() if e not in install]
            self.assertEqual(others, [], cls.__name__)

    def test_refined_origins_and_angles_average_as_relion_reads_them(self):
        """A RELION refinement moves particles by origins and splits orientations into
        subtomogram and particle angles. The same particles written that way (centred
        position + A_subtomo . origin, A_subtomo . A_particle = the orientation), extracted
        without folding the offsets and read by reliontomo, average here to the map of the
        plain particles."""
        from cryoprocs.convert.euler import relion_angles_from_matrix
        from cryoprocs.protocols import (ProtCryoprocsExtractSubtomos,
                                         ProtCryoprocsReconstructSubtomoAverage)
        plain = starfile.read(self.imp.particlesFile.get(), always_dict=True)["particles"]
        moved = plain.copy()
        n = len(plain)
        k = np.arange(n)
        sub = np.stack([(37.0 * k) % 360 - 180, 20 + (11.0 * k) % 140, (53.0 * k) % 360 - 180],
                       axis=1)
        origin = np.stack([7.5 * (1 + k % 3), -4.0 * (1 + k % 2), 3.0 + k % 5], axis=1)
        for i in range(n):
            S = relion_euler_matrix(*sub[i])
            full = relion_euler_matrix(*plain.loc[i, relion5.ANGLE_COLUMNS].to_numpy(float))
            moved.loc[i, relion5.ANGLE_COLUMNS] = relion_angles_from_matrix(S.T @ full)
            moved.loc[i, relion5.CENTERED_COLUMNS] = \
                plain.loc[i, relion5.CENTERED_COLUMNS].to_numpy(float) + S @ origin[i]
        for j, c in enumerate(relion5.SUBTOMO_COLUMNS):
            moved[c] = sub[:, j]
        for j, c in enumerate(relion5.ORIGIN_COLUMNS):
            moved[c] = origin[:, j]
        star = os.path.join(self.getOutputPath(), "refined_particles.star")
        write_star(star, {"particles": moved})
        imp = self.importRelion5(self.imp.tomogramsFile.get(), star,
                                 projectDir=self.proj.getPath(), inputTomograms=self.tomos)
        ext = self.newProtocol(ProtCryoprocsExtractSubtomos,
                               inputCoordinates=getattr(imp, constants.OUTPUT_COORDINATES),
                               inputTiltSeries=getattr(self.imp, constants.OUTPUT_TILT_SERIES),
                               inputCtfTomoSeries=getattr(self.imp, constants.OUTPUT_CTF_SERIES),
                               boxSize=BOX, binning=BIN, minFrames=0, applyOffsets=False,
                               numberOfThreads=3)
        ext.setObjLabel("extract refined-like particles, offsets kept")
        self.launchProtocol(ext)
        pset = getattr(ext, constants.OUTPUT_RELION_PARTICLES)
        self.assertEqual(pset.getSize(), n)
        shifted = [p.clone() for p in pset.iterItems()
                   if not np.allclose(relion_orientation(p, pset.getSamplingRate())[1], 0)]
        self.assertEqual(len(shifted), n)              # the origins are in the transforms
        _, _, got = self._reconstruct("from refined-like pseudo-subtomograms",
                                      inputSubtomograms=pset)
        ref_prot = self.newProtocol(ProtCryoprocsReconstructSubtomoAverage,
                                    inputCoordinates=getattr(self.imp,
                                                             constants.OUTPUT_COORDINATES),
                                    inputTiltSeries=getattr(self.imp, constants.OUTPUT_TILT_SERIES),
                                    inputCtfTomoSeries=getattr(self.imp,
                                                               constants.OUTPUT_CTF_SERIES),
                                    boxSize=BOX, binning=BIN, numberOfThreads=3)
        ref_prot.setObjLabel("from the plain coordinates")
        self.launchProtocol(ref_prot)
        ref = mrcfile.read(self._abs(getattr(ref_prot, constants.OUTPUT_AVERAGE).getFileName()))
        self.assertGreater(np.abs(ref).max(), 0)
        self.assertTrue(np.allclose(got, ref, rtol=0, atol=1e-5 * np.abs(ref).max()),
                        np.abs(got - ref).max() / np.abs(ref).max())


def test_without_reliontomo_a_reason_and_no_pseudo_subtomograms(monkeypatch):
    """Without the plugin the extraction registers its subtomograms only and says why."""
    import sys
    from tomo.objects import SetOfSubTomograms
    monkeypatch.setitem(sys.modules, "reliontomo", None)
    mods, reason = reliontomo_scipion.reliontomo_modules()
    assert mods is None
    assert "scipion-em-reliontomo is not installed" in reason
    assert not reliontomo_scipion.is_pseudo_subtomogram_set(SetOfSubTomograms())
