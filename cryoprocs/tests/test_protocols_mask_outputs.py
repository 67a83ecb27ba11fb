"""ApplyMask3D outputs keep the input's type and attributes (a set of tomograms gives a set
of tomograms, subtomograms give subtomograms with their coordinates), and the mask can be
saved as a VolumeMask (real Scipion projects; synthetic volumes written by the test)."""
import os

import mrcfile
import numpy as np
from pwem.protocols import ProtImportMask, ProtImportVolumes
from pyworkflow.object import Pointer, PointerList, Set
from pyworkflow.tests import setupTestProject

from cryoprocs import constants
from cryoprocs.kernels import masks
from cryoprocs.protocols import ProtCryoprocsApplyMask3D, ProtCryoprocsExtractSubtomos
from cryoprocs.tests.scipion_testing import CryoprocsBaseTest

SHAPE = (24, 32, 40)           # z, y, x
SR = 7.5


def _item_values(obj):
    """Every stored value of an item except its id and its file (what masking changes)."""
    skip = ("_filename", "_index", "_halfMapFilenames")
    return {k: v for k, v in obj.getObjDict().items()
            if not any(k == s or k.startswith(s + ".") for s in skip)}


def _set_values(s):
    """Every attribute of a set except its own bookkeeping (file, size, stream state)."""
    own = {name for name, _ in Set().getAttributes()}
    out = {}
    for name, attr in s.getAttributes():
        if name in own:
            continue
        if isinstance(attr, Pointer):
            out[name] = (attr.getObjValue().getObjId() if attr.getObjValue() is not None
                         else None, attr.getExtended())
        elif isinstance(attr, PointerList):
            out[name] = [(p.getObjValue().getObjId(), p.getExtended()) for p in attr]
        else:
            out[name] = attr.getObjDict() if attr.getObjDict() else attr.get()
    return out


class TestApplyMask3DOutputTypes(CryoprocsBaseTest):

    @classmethod
    def setUpClass(cls):
        from tomo.protocols import ProtImportCoordinates3D, ProtImportTomograms
        setupTestProject(cls)
        rng = np.random.default_rng(7)
        folder = os.path.join(cls.getOutputPath(), "tomos")
        os.makedirs(folder, exist_ok=True)
        cls.data = {}
        for name in ("tomo_a", "tomo_b"):
            vol = rng.normal(size=SHAPE).astype(np.float32)
            with mrcfile.new(os.path.join(folder, name + ".mrc"), overwrite=True) as m:
                m.set_data(vol)
                m.voxel_size = SR
            cls.data[name] = vol
        imp = cls.newProtocol(ProtImportTomograms, filesPath=folder, filesPattern="*.mrc",
                              samplingRate=SR, voltage=300, sphericalAberration=2.7,
                              amplitudeContrast=0.07, tiltAxisAngle=84.1)
        cls.launchProtocol(imp)
        cls.tomos = imp.Tomograms
        cfolder = os.path.join(cls.getOutputPath(), "coords")
        os.makedirs(cfolder, exist_ok=True)
        for name in cls.data:
            with open(os.path.join(cfolder, name + ".txt"), "w") as fh:
                fh.write("12 14 10\n20 16 12\n27 18 13\n")
        cimp = cls.newProtocol(ProtImportCoordinates3D, filesPath=cfolder,
                               filesPattern="*.txt", importTomograms=cls.tomos, boxSize=8)
        cimp.importFrom.set(cimp._getImportChoices().index("txt"))
        cls.launchProtocol(cimp)
        ext = cls.newProtocol(ProtCryoprocsExtractSubtomos,
                              extractionMode=constants.EXTRACT_MODE_SUBVOLUMES,
                              inputCoordinates=cimp.outputCoordinates, boxSize=8)
        cls.launchProtocol(ext)
        cls.subtomos = getattr(ext, constants.OUTPUT_SUBTOMOGRAMS)

    def _abs(self, path):
        return path if os.path.isabs(path) else os.path.join(self.proj.getPath(), path)

    def _mask(self, inp, **kw):
        prot = self.newProtocol(ProtCryoprocsApplyMask3D, inputVolumes=inp,
                                geo=constants.MASK3D_SPHERE, radius=3, numberOfThreads=3, **kw)
        self.launchProtocol(prot)
        return prot

    def _check_set(self, inp, prot):
        """The output: the input's class, every set and item attribute, masked data."""
        out = getattr(prot, constants.OUTPUT_VOLUMES)
        self.assertIs(type(out), type(inp))
        self.assertEqual(_set_values(out), _set_values(inp))
        self.assertSetSize(out, inp.getSize())
        ins = {v.getObjId(): v.clone() for v in inp.iterItems()}
        for v in out.iterItems():
            src = ins[v.getObjId()]
            self.assertIs(type(v), type(src))
            self.assertEqual(_item_values(v), _item_values(src))
            self.assertNotEqual(os.path.abspath(self._abs(v.getFileName())),
                                os.path.abspath(self._abs(src.getFileName())))
            data = mrcfile.read(self._abs(v.getFileName()))
            orig = mrcfile.read(self._abs(src.getFileName()))
            mask = masks.make_mask(orig.shape, "sphere", radius=3)
            np.testing.assert_array_equal(data[mask], orig[mask])
            self.assertTrue(np.all(data[~mask] == 0))
        return out

    def test_set_of_tomograms_gives_set_of_tomograms(self):
        from tomo.objects import SetOfTomograms
        out = self._check_set(self.tomos, self._mask(self.tomos))
        self.assertIsInstance(out, SetOfTomograms)
        self.assertAlmostEqual(out.getAcquisition().getVoltage(), 300)
        self.assertEqual(sorted(t.getTsId() for t in out), ["tomo_a", "tomo_b"])

    def test_set_of_subtomograms_keeps_coordinates(self):
        from tomo.constants import SCIPION
        from tomo.objects import SetOfSubTomograms
        prot = self._mask(self.subtomos)
        out = self._check_set(self.subtomos, prot)
        self.assertIsInstance(out, SetOfSubTomograms)
        self.assertEqual(out.getCoordinates3D().getObjId(),
                         self.subtomos.getCoordinates3D().getObjId())
        ins = {s.getObjId(): s.clone() for s in self.subtomos.iterItems()}
        for s in out.iterItems():
            self.assertEqual(s.getCoordinate3D().getPosition(SCIPION),
                             ins[s.getObjId()].getCoordinate3D().getPosition(SCIPION))
            self.assertEqual(s.getVolName(), ins[s.getObjId()].getVolName())
        self.assertIn("SetOfSubTomograms", "\n".join(prot.summary()))

    def test_single_tomogram_gives_a_tomogram(self):
        from tomo.objects import Tomogram
        tomo = self.tomos.getFirstItem().clone()
        # a pointer to one item of the set, as the GUI makes for "Volume" inputs
        prot = self.newProtocol(ProtCryoprocsApplyMask3D, geo=constants.MASK3D_SPHERE, radius=3)
        prot.inputVolumes.set(self.tomos)
        prot.inputVolumes.setExtended(tomo.getObjId())
        self.launchProtocol(prot)
        out = getattr(prot, constants.OUTPUT_VOLUME)
        self.assertIsInstance(out, Tomogram)
        self.assertEqual(out.getTsId(), tomo.getTsId())
        self.assertEqual(_item_values(out), _item_values(tomo))
        self.assertAlmostEqual(out.getAcquisition().getVoltage(), 300)

    def test_set_of_volumes_stays_set_of_volumes_and_saves_the_mask(self):
        from pwem.objects import SetOfVolumes, VolumeMask
        folder = os.path.dirname(self._abs(self.tomos.getFirstItem().getFileName()))
        imp = self.newProtocol(ProtImportVolumes, filesPath=folder, filesPattern="*.mrc",
                               samplingRate=SR)
        self.launchProtocol(imp)
        vols = imp.outputVolumes
        prot = self._mask(vols, saveMask=True)
        out = self._check_set(vols, prot)
        self.assertIs(type(out), SetOfVolumes)
        mask = getattr(prot, constants.OUTPUT_VOLUME_MASK)
        self.assertIsInstance(mask, VolumeMask)
        self.assertAlmostEqual(mask.getSamplingRate(), SR)
        self.assertEqual(mask.getDim(), vols.getFirstItem().getDim())
        m = mrcfile.open(self._abs(mask.getFileName()))
        self.assertEqual(m.data.dtype, np.float32)
        self.assertAlmostEqual(float(m.voxel_size.x), SR, places=4)
        np.testing.assert_array_equal(m.data, masks.make_mask(SHAPE, "sphere", radius=3))
        m.close()
        self.assertIn("VolumeMask", "\n".join(prot.summary()))

    def test_soft_and_created_masks_saved_as_applied(self):
        vol_file = self._abs(self.tomos.getFirstItem().getFileName())
        imp = self.newProtocol(ProtImportVolumes, filesPath=vol_file, samplingRate=SR)
        self.launchProtocol(imp)
        vol = imp.outputVolume
        soft = self.newProtocol(ProtCryoprocsApplyMask3D, inputVolumes=vol,
                                geo=constants.MASK3D_RAISED_COSINE, innerRadius=4, outerRadius=9,
                                saveMask=True)
        self.launchProtocol(soft)
        saved = mrcfile.read(self._abs(getattr(soft, constants.OUTPUT_VOLUME_MASK).getFileName()))
        want = masks.make_mask(SHAPE, "raised_cosine", inner_radius=4, outer_radius=9)
        np.testing.assert_allclose(saved, want, rtol=0, atol=1e-7)
        self.assertTrue(0 < np.count_nonzero((saved > 0) & (saved < 1)))   # the soft edge
        masked = mrcfile.read(self._abs(getattr(soft, constants.OUTPUT_VOLUME).getFileName()))
        np.testing.assert_allclose(masked, self.data["tomo_a"] * saved, rtol=0, atol=1e-6)
        # a created mask (imported at a sampling within 1 %) is saved at the input's
        mfile = os.path.join(self.getOutputPath(), "created_mask.mrc")
        with mrcfile.new(mfile, overwrite=True) as m:
            m.set_data((saved > 0.5).astype(np.float32))
            m.voxel_size = SR * 1.005
        mimp = self.newProtocol(ProtImportMask, maskPath=mfile, samplingRate=SR * 1.005)
        self.launchProtocol(mimp)
        created = self.newProtocol(ProtCryoprocsApplyMask3D, inputVolumes=vol,
                                   source=constants.SOURCE_MASK, inputMask=mimp.outputMask,
                                   saveMask=True)
        self.launchProtocol(created)
        out = getattr(created, constants.OUTPUT_VOLUME_MASK)
        self.assertAlmostEqual(out.getSamplingRate(), SR)
        np.testing.assert_array_equal(mrcfile.read(self._abs(out.getFileName())),
                                      (saved > 0.5).astype(np.float32))

    def test_every_set_attribute_is_copied(self):
        """Attributes beyond copyInfo (flags, other plugins' attributes, pointers) are kept,
        in Pointer objects of the output's own."""
        from pyworkflow.object import Integer, String
        from tomo.objects import SetOfCoordinates3D, SetOfSubTomograms
        from cryoprocs.protocols.protocol_apply_mask import _copySetAttributes
        tmp = self.getOutputPath()
        coords = SetOfCoordinates3D()
        coords.setObjId(4242)
        inp = SetOfSubTomograms(filename=os.path.join(tmp, "in_subtomograms.sqlite"))
        inp.setSamplingRate(SR)
        inp.setCoordinates3D(Pointer(coords))
        inp._somePluginNote = String("kept")
        inp._somePluginCount = Integer(7)
        inp._someSources = PointerList()
        inp._someSources.append(Pointer(coords, extended="outputCoordinates"))
        out = SetOfSubTomograms(filename=os.path.join(tmp, "out_subtomograms.sqlite"))
        _copySetAttributes(out, inp)
        self.assertEqual(_set_values(out), _set_values(inp))
        self.assertEqual(out._somePluginNote.get(), "kept")
        self.assertEqual(out._somePluginCount.get(), 7)
        self.assertIsNot(out._coordsPointer, inp._coordsPointer)
        self.assertIsNot(out._someSources[0], inp._someSources[0])
        self.assertEqual(out.getCoordinates3D().getObjId(), 4242)
