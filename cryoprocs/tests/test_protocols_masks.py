"""ApplyMask2D / ApplyMask3D in real Scipion projects, against Xmipp's own outputs."""
import json
import os

import mrcfile
import numpy as np
from pwem.protocols import ProtImportMask, ProtImportParticles, ProtImportVolumes
from pyworkflow.tests import setupTestProject

from cryoprocs.tests.scipion_testing import CryoprocsBaseTest
from cryoprocs import constants
from cryoprocs.protocols import ProtCryoprocsApplyMask2D, ProtCryoprocsApplyMask3D
from cryoprocs.tests import shared_data

REL_TOL = 1e-6     # of max|value|, float32 rounding (the Xmipp parity bar, docs/apply-mask.md)


def _xmipp_case(case_id):
    base = shared_data("xmipp_masks")
    cases = json.load(open(os.path.join(base, "cases.json")))
    case = next(c for c in cases["cases"] if c["id"] == case_id)
    return base, cases, case


def _read_output(prot, path):
    return mrcfile.read(os.path.join(prot.getProject().getPath(), path))


def _read_particles(prot, particles):
    """The images of a particle set in id order, each read at its own location."""
    stacks = {}
    images = []
    for p in particles.iterItems(orderBy="id"):
        if p.getFileName() not in stacks:
            stacks[p.getFileName()] = _read_output(prot, p.getFileName())
        images.append(stacks[p.getFileName()][p.getIndex() - 1])
    return np.stack(images)


class TestApplyMaskProtocols(CryoprocsBaseTest):

    @classmethod
    def setUpClass(cls):
        setupTestProject(cls)

    def _importParticles(self, path, sr):
        prot = self.newProtocol(ProtImportParticles,
                                importFrom=ProtImportParticles.IMPORT_FROM_FILES,
                                filesPath=os.path.dirname(path),
                                filesPattern=os.path.basename(path), samplingRate=sr)
        self.launchProtocol(prot)
        return prot.outputParticles

    def _importVolume(self, path, sr):
        prot = self.newProtocol(ProtImportVolumes, filesPath=path, samplingRate=sr)
        self.launchProtocol(prot)
        return prot.outputVolume

    def _assertXmipp(self, out, ref):
        rel = np.abs(out.astype(np.float64) - ref).max() / np.abs(ref).max()
        self.assertLessEqual(rel, REL_TOL)

    def test_2d_shifted_circle_fill_max_matches_xmipp(self):
        base, _, case = _xmipp_case("m2d05_circular_r30_shift_fillmax")
        f = case["scipion_form"]
        parts = self._importParticles(os.path.join(base, case["input"]), 2.806)
        prot = self.newProtocol(ProtCryoprocsApplyMask2D, inputParticles=parts,
                                geo=constants.MASK2D_CIRCULAR, radius=f["radius"], shiftCenter=True,
                                centerX=f["centerX"], centerY=f["centerY"],
                                fillType=constants.FILL_MAX, numberOfThreads=3)
        self.launchProtocol(prot)
        out = getattr(prot, constants.OUTPUT_PARTICLES)
        self.assertSetSize(out, 5)
        # every input attribute kept, only the location changes
        self.assertAlmostEqual(out.getSamplingRate(), parts.getSamplingRate())
        first = out.getFirstItem()
        self.assertEqual(first.getObjId(), parts.getFirstItem().getObjId())
        stack = _read_particles(prot, out)
        ref = mrcfile.read(os.path.join(base, case["output_file"]))
        self._assertXmipp(stack, ref)
        # 3 threads: one chunk of particles per worker, each in its own stack, in set order
        locations = [(p.getFileName(), p.getIndex()) for p in out.iterItems(orderBy="id")]
        self.assertEqual(locations, [(os.path.join(prot._getExtraPath(), name), i)
                                     for name, n in (("output_particles_000001-000003.mrcs", 3),
                                                     ("output_particles_000004-000005.mrcs", 2))
                                     for i in range(1, n + 1)])

    def test_2d_created_soft_mask_matches_xmipp(self):
        base, cases, case = _xmipp_case("m2d11_createdmask_softellipse")
        parts = self._importParticles(os.path.join(base, case["input"]), 2.806)
        impMask = self.newProtocol(ProtImportMask,
                                   maskPath=os.path.join(base, cases["created_masks"]["cm2d"]["file"]),
                                   samplingRate=2.806)
        self.launchProtocol(impMask)
        prot = self.newProtocol(ProtCryoprocsApplyMask2D, inputParticles=parts,
                                source=constants.SOURCE_MASK, inputMask=impMask.outputMask)
        self.launchProtocol(prot)
        out = getattr(prot, constants.OUTPUT_PARTICLES)
        stack = _read_particles(prot, out)
        self._assertXmipp(stack, mrcfile.read(os.path.join(base, case["output_file"])))

    def test_3d_raised_crown_matches_xmipp(self):
        base, _, case = _xmipp_case("m3d08_raisedcrown_6_18_decay3")
        vol = self._importVolume(os.path.join(base, case["input"]), 8.66)
        prot = self.newProtocol(ProtCryoprocsApplyMask3D, inputVolumes=vol,
                                geo=constants.MASK3D_RAISED_CROWN, innerRadius=6, outerRadius=18,
                                borderDecay=3)
        self.launchProtocol(prot)
        out = getattr(prot, constants.OUTPUT_VOLUME)
        self.assertAlmostEqual(out.getSamplingRate(), 8.66, places=4)
        self.assertEqual(out.getDim(), vol.getDim())
        self._assertXmipp(_read_output(prot, out.getFileName()),
                          mrcfile.read(os.path.join(base, case["output_file"])))

    def test_3d_set_of_volumes_cylinder(self):
        base, _, case = _xmipp_case("m3d05_cylinder_r12_h20")
        # a folder import gives a SetOfVolumes: Xmipp's odd, non-cubic input (41 x 46 x 39)
        # and a 32^3 volume of another size
        folder = self.proj.getTmpPath("volumes_of_two_sizes")
        os.makedirs(folder, exist_ok=True)
        os.symlink(os.path.join(base, case["input"]), os.path.join(folder, "in3d_xmipp.mrc"))
        with mrcfile.new(os.path.join(folder, "in3d_other.mrc"), overwrite=True) as m:
            m.set_data(np.random.default_rng(3).normal(1.0, 1.0, (32, 32, 32)).astype(np.float32))
            m.voxel_size = 8.66
        prot_imp = self.newProtocol(ProtImportVolumes, filesPath=folder,
                                    filesPattern="in3d_*.mrc", samplingRate=8.66)
        self.launchProtocol(prot_imp)
        vols = prot_imp.outputVolumes
        self.assertSetSize(vols, 2)
        prot = self.newProtocol(ProtCryoprocsApplyMask3D, inputVolumes=vols,
                                geo=constants.MASK3D_CYLINDER, radius=12, height=20)
        self.launchProtocol(prot)
        out = getattr(prot, constants.OUTPUT_VOLUMES)
        self.assertSetSize(out, 2)
        ref = mrcfile.read(os.path.join(base, case["output_file"]))
        import glob
        from cryoprocs.kernels import masks
        inputs = {}
        for f in glob.glob(os.path.join(folder, "in3d_*.mrc")):
            vol = mrcfile.read(f)
            inputs[vol.shape] = vol
        shapes = set()
        for v in out.iterItems():
            data = _read_output(prot, v.getFileName())
            shapes.add(data.shape)
            if data.shape == ref.shape:
                self._assertXmipp(data, ref)
            else:          # the other volume: the same cylinder on its own grid
                mask = masks.make_mask(data.shape, "cylinder", radius=12, height=20)
                np.testing.assert_array_equal(data[mask], inputs[data.shape][mask])
                self.assertTrue(np.all(data[~mask] == 0))
            # cylinder, radius 12, height 20 -> 21 slices kept along z
            kept = np.flatnonzero(np.abs(data).sum(axis=(1, 2)) > 0)
            self.assertLessEqual(len(kept), 21)
        self.assertEqual(len(shapes), 2)

    def test_validation_names_values(self):
        base, _, case = _xmipp_case("m3d05_cylinder_r12_h20")
        vol = self._importVolume(os.path.join(base, case["input"]), 8.66)
        prot = self.newProtocol(ProtCryoprocsApplyMask3D, inputVolumes=vol,
                                geo=constants.MASK3D_SPHERE, radius=5, shiftCenter=True,
                                centerX=100, centerY=0, centerZ=0)
        errors = prot.validate()
        self.assertTrue(any("keeps no voxel" in e for e in errors), errors)
        prot2 = self.newProtocol(ProtCryoprocsApplyMask3D, inputVolumes=vol,
                                 geo=constants.MASK3D_CROWN, innerRadius=10, outerRadius=4)
        self.assertTrue(any("10" in e and "4" in e for e in prot2.validate()))


def _particles_sqlite_from_relion31(folder):
    """A Scipion particle set with CTF, 3D alignment, coordinates and acquisition built from
    the real RELION 3.1 particles of the reference data real/cryodrgn_relion31."""
    import starfile
    from pwem.constants import ALIGN_PROJ
    from pwem.objects import (Acquisition, Coordinate, CTFModel, Particle, SetOfParticles,
                              Transform)

    from cryoprocs.kernels.euler import relion_euler_matrix

    src = shared_data("real", "cryodrgn_relion31")
    star = starfile.read(os.path.join(src, "relion31.star"), always_dict=True)
    optics, rows = star["optics"].iloc[0], star["particles"]
    path = os.path.join(folder, "particles.sqlite")
    pset = SetOfParticles(filename=path)
    pset.setSamplingRate(float(optics["rlnImagePixelSize"]))
    acq = Acquisition(voltage=float(optics["rlnVoltage"]),
                      sphericalAberration=float(optics["rlnSphericalAberration"]),
                      amplitudeContrast=float(optics["rlnAmplitudeContrast"]),
                      magnification=10000)
    pset.setAcquisition(acq)
    pset.setAlignment(ALIGN_PROJ)
    for i, row in rows.iterrows():
        p = Particle(location=(i + 1, os.path.join(src, "relion31.mrcs")))
        ctf = CTFModel()
        ctf.setStandardDefocus(float(row["rlnDefocusU"]), float(row["rlnDefocusV"]),
                               float(row["rlnDefocusAngle"]))
        p.setCTF(ctf)
        M = np.eye(4)
        M[:3, :3] = relion_euler_matrix(row["rlnAngleRot"], row["rlnAngleTilt"],
                                        row["rlnAnglePsi"])
        p.setTransform(Transform(M))
        p.setCoordinate(Coordinate(x=int(row["rlnCoordinateX"]), y=int(row["rlnCoordinateY"])))
        p.setAcquisition(acq.clone())
        pset.append(p)
    pset.write()
    pset.close()
    return path


class TestApplyMaskKeepsAttributes(CryoprocsBaseTest):

    @classmethod
    def setUpClass(cls):
        setupTestProject(cls)

    def test_output_particles_keep_ctf_alignment_coordinates(self):
        sqlite = _particles_sqlite_from_relion31(self.proj.getTmpPath())
        imp = self.newProtocol(ProtImportParticles,
                               importFrom=ProtImportParticles.IMPORT_FROM_SCIPION,
                               sqliteFile=sqlite, samplingRate=2.806, magnification=10000)
        self.launchProtocol(imp)
        inp = imp.outputParticles
        prot = self.newProtocol(ProtCryoprocsApplyMask2D, inputParticles=inp,
                                geo=constants.MASK2D_RAISED_COSINE, innerRadius=60, outerRadius=100)
        self.launchProtocol(prot)
        out = getattr(prot, constants.OUTPUT_PARTICLES)
        self.assertSetSize(out, 5)
        self.assertEqual(out.getAlignment(), inp.getAlignment())
        self.assertAlmostEqual(out.getAcquisition().getVoltage(), 300.0)
        masked = _read_particles(prot, out)
        for k, (pin, pout) in enumerate(zip(inp.iterItems(orderBy="id"),
                                            out.iterItems(orderBy="id"))):
            self.assertEqual(pin.getObjId(), pout.getObjId())
            self.assertAlmostEqual(pin.getCTF().getDefocusU(), pout.getCTF().getDefocusU())
            self.assertAlmostEqual(pin.getCTF().getDefocusAngle(),
                                   pout.getCTF().getDefocusAngle())
            np.testing.assert_allclose(pin.getTransform().getMatrix(),
                                       pout.getTransform().getMatrix())
            self.assertEqual(pin.getCoordinate().getPosition(),
                             pout.getCoordinate().getPosition())
            self.assertNotEqual(pin.getFileName(), pout.getFileName())
            # the image is the masked input image
            img = mrcfile.open(pin.getFileName(), permissive=True).data[pin.getIndex() - 1]
            res = masked[k]
            self.assertEqual(res[128, 128], img[128, 128])       # inside: unchanged
            self.assertEqual(res[0, 0], 0.0)                      # corner: removed


class TestApplyMaskCreatedMaskValidation(CryoprocsBaseTest):

    @classmethod
    def setUpClass(cls):
        setupTestProject(cls)

    def test_created_mask_checked_on_every_dimension_and_sampling(self):
        base, cases, case = _xmipp_case("m3d09_createdmask_binary")
        vol = self.newProtocol(ProtImportVolumes, filesPath=os.path.join(base, case["input"]),
                               samplingRate=8.66)
        self.launchProtocol(vol)
        # same X and Y as the 41x46x39 crop but a different Z: Xmipp would accept it
        tmp = self.proj.getTmpPath("mask_z40.mrc")
        with mrcfile.new(tmp, overwrite=True) as m:
            m.set_data(np.ones((40, 46, 41), np.float32))
        imp = self.newProtocol(ProtImportMask, maskPath=tmp, samplingRate=9.5)
        self.launchProtocol(imp)
        prot = self.newProtocol(ProtCryoprocsApplyMask3D, inputVolumes=vol.outputVolume,
                                source=constants.SOURCE_MASK, inputMask=imp.outputMask)
        errors = " ".join(prot.validate())
        self.assertIn("(41, 46, 40)", errors)
        self.assertIn("(41, 46, 39)", errors)
        self.assertIn("9.5000", errors)
        # a mask outside [0, 1] is accepted with a warning
        tmp2 = self.proj.getTmpPath("mask_scaled.mrc")
        with mrcfile.new(tmp2, overwrite=True) as m:
            m.set_data(np.full((39, 46, 41), 2.0, np.float32))
        imp2 = self.newProtocol(ProtImportMask, maskPath=tmp2, samplingRate=8.66)
        self.launchProtocol(imp2)
        prot2 = self.newProtocol(ProtCryoprocsApplyMask3D, inputVolumes=vol.outputVolume,
                                 source=constants.SOURCE_MASK, inputMask=imp2.outputMask)
        self.assertEqual(prot2.validate(), [])
        self.assertTrue(any("[2, 2]" in w for w in prot2._warnings()))
