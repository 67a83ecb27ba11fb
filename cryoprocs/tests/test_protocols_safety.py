"""Data safety in the protocols (issue 11): the form switch of --replace-nonfinite, with the
command's meaning, in every protocol that reads images; a run on a NaN input fails naming
the file, and with the switch it finishes with the finite mean written in."""
import os

import mrcfile
import numpy as np
import pytest
from pwem.protocols import ProtImportVolumes
from pyworkflow.tests import setupTestProject

from cryoprocs import constants
from cryoprocs import protocols
from cryoprocs.tests.scipion_testing import CryoprocsBaseTest

READERS = ["ProtCryoprocsApplyMask2D", "ProtCryoprocsApplyMask3D",
           "ProtCryoprocsMaskedTomogramNoiseFill", "ProtCryoprocsScoresPeakPicking",
           "ProtCryoprocsExtractSubtomos", "ProtCryoprocsReconstructSubtomoAverage",
           "ProtCryoprocsExportMovie", "ProtCryoprocsImportCopick"]


@pytest.mark.parametrize("name", READERS)
def test_every_image_reader_has_the_switch(name):
    prot = getattr(protocols, name)()
    param = prot.getDefinition().getParam("replaceNonFinite")
    assert param is not None and not prot.replaceNonFinite.get()
    assert "--replace-nonfinite" in param.help.get()
    assert prot._nonFinite() == "error"
    prot.replaceNonFinite.set(True)
    assert prot._nonFinite() == "replace"


class TestNonFiniteInputs(CryoprocsBaseTest):

    @classmethod
    def setUpClass(cls):
        setupTestProject(cls)
        rng = np.random.default_rng(3)
        vol = rng.normal(1.0, 1.0, (20, 24, 24)).astype(np.float32)
        bad = vol.copy()
        bad[4, 5, 6] = np.nan
        fixed = vol.copy()
        fixed[4, 5, 6] = np.delete(bad.ravel(), np.ravel_multi_index((4, 5, 6), bad.shape)) \
            .mean(dtype=np.float64)
        cls.paths = {}
        for name, data in (("bad", bad), ("fixed", fixed)):
            path = cls.proj.getTmpPath("%s.mrc" % name)
            with mrcfile.new(path, overwrite=True) as m:
                m.set_data(data)
                m.voxel_size = 2.0
            cls.paths[name] = path

    def _mask(self, name, **kw):
        imp = self.newProtocol(ProtImportVolumes, filesPath=self.paths[name], samplingRate=2.0)
        self.launchProtocol(imp)
        prot = self.newProtocol(protocols.ProtCryoprocsApplyMask3D, inputVolumes=imp.outputVolume,
                                geo=constants.MASK3D_SPHERE, radius=8, fillType=constants.FILL_AVG,
                                **kw)
        return prot

    def test_nan_volume_fails_by_default_and_is_replaced_on_request(self):
        prot = self._mask("bad")
        self.proj.launchProtocol(prot, wait=True)
        self.assertTrue(prot.isFailed(), prot.getStatus())
        # the step's command fails (exit 2); its one-line error, naming the file, the count
        # and the first voxel, is in the run's log
        self.assertIn("cryoprocs mask", prot.getErrorMessage())
        log = "".join(open(f).read() for f in (prot.getStdoutLog(), prot.getStderrLog()))
        line = [ln for ln in log.splitlines() if "cryoprocs mask: error:" in ln]
        self.assertEqual(len(line), 1, log[-3000:])
        self.assertIn("import_bad.mrc holds 1 non-finite voxel", line[0])
        self.assertIn("[4, 5, 6]", line[0])
        ok = self._mask("bad", replaceNonFinite=True)
        self.launchProtocol(ok)
        ref = self._mask("fixed")
        self.launchProtocol(ref)

        def data(p):
            return mrcfile.read(os.path.join(self.proj.getPath(),
                                             p.outputVolume.getFileName()))
        out = data(ok)
        self.assertTrue(np.isfinite(out).all())
        np.testing.assert_allclose(out, data(ref), rtol=0, atol=1e-5)
