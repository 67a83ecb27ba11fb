"""ProtCryoprocsMaskedTomogramNoiseFill in real Scipion projects on the real tomograms:
tsId matching, outputs, the quality bar, parity with TomoPANDA's script, validation, resume."""
import json
import os
import tempfile

import mrcfile
import numpy as np
from pwem.protocols import ProtImportMask
from pyworkflow.tests import setupTestProject
from scipy import ndimage as ndi
from tomo.protocols import ProtImportTomograms, ProtImportTomomasks

from cryoprocs.tests.scipion_testing import CryoprocsBaseTest
from cryoprocs import constants
from cryoprocs.protocols import ProtCryoprocsMaskedTomogramNoiseFill
from cryoprocs.tests import shared_data
from cryoprocs.tests.test_kernels_noisefill import script_restatement

MT_A = 10.52
HIV_A = 40.0


def _link_folder(root, name, links):
    folder = os.path.join(root, name)
    os.makedirs(folder, exist_ok=True)
    for dst, src in links.items():
        os.symlink(src, os.path.join(folder, dst))
    return folder


class TestNoiseFillProtocol(CryoprocsBaseTest):

    @classmethod
    def setUpClass(cls):
        setupTestProject(cls)
        real = lambda *p: shared_data("real", *p)     # noqa: E731
        cls.files = {"mt13": (real("cylindra", "13pf_MT.mrc"),
                              real("cylindra", "13pf_MT_tube_mask_r16.mrc")),
                     "mt14": (real("cylindra", "14pf_MT.mrc"),
                              real("cylindra", "14pf_MT_tube_mask_r16.mrc")),
                     "hiv": (real("hiv_vlp", "hiv_ts01_tomo_40A.mrc"),
                             real("hiv_vlp", "hiv_particle_shell_mask_r3.mrc"))}
        root = tempfile.mkdtemp(prefix="cryoprocs_nf_")
        # three microtubule tomograms, masks for two of them (mtextra has no partner)
        cls.mtTomoDir = _link_folder(root, "mt_tomos", {
            "mt13.mrc": cls.files["mt13"][0], "mt14.mrc": cls.files["mt14"][0],
            "mtextra.mrc": cls.files["mt13"][0]})
        cls.mtMaskDir = _link_folder(root, "mt_masks", {
            "mt13.mrc": cls.files["mt13"][1], "mt14.mrc": cls.files["mt14"][1]})
        cls.hivDir = _link_folder(root, "hiv", {"hiv.mrc": cls.files["hiv"][0]})

    def _importTomos(self, folder, sr):
        prot = self.newProtocol(ProtImportTomograms, filesPath=folder, filesPattern="*.mrc",
                                samplingRate=sr)
        self.launchProtocol(prot)
        return prot.Tomograms

    def _path(self, prot, fn):
        return os.path.join(prot.getProject().getPath(), fn)

    def _assertQuality(self, tomo, out, mask, N=10, W=4):
        d = ndi.distance_transform_edt(~(mask > 0.5))
        t, o = tomo.astype(np.float64), out.astype(np.float64)
        filled = d >= N + W
        bm, bs = t[filled].mean(), t[filled].std()
        self.assertLess(abs(o[filled].mean() - bm), 0.05 * bs)
        self.assertLess(abs(o[filled].std() / bs - 1), 0.05)
        inner = o[(d > N - 2) & (d <= N)].mean()
        outer = o[(d > N) & (d <= N + 2)].mean()
        self.assertLess(abs(outer - inner), 0.1 * bs)
        np.testing.assert_array_equal(out[d <= N], tomo[d <= N])

    def test_set_of_tomomasks_matched_by_tsid(self):
        tomos = self._importTomos(self.mtTomoDir, MT_A)
        impMasks = self.newProtocol(ProtImportTomomasks, filesPath=self.mtMaskDir,
                                    filesPattern="*.mrc", inputTomos=tomos)
        self.launchProtocol(impMasks)
        masks = impMasks.tomomasks
        self.assertSetSize(masks, 2)
        prot = self.newProtocol(ProtCryoprocsMaskedTomogramNoiseFill, inputTomograms=tomos,
                                inputMasks=masks, saveSoftMask=True, numberOfThreads=3)
        self.assertEqual(prot.validate(), [])
        self.launchProtocol(prot)
        out = getattr(prot, constants.OUTPUT_NOISE_FILLED_TOMOS)
        self.assertSetSize(out, 2)
        self.assertAlmostEqual(out.getSamplingRate(), MT_A, places=4)
        inputs = {t.getTsId(): t.clone() for t in tomos}
        for t in out.iterItems():
            ts = t.getTsId()
            self.assertIn(ts, ("mt13", "mt14"))
            src = inputs[ts]
            self.assertEqual(t.getDim(), src.getDim())
            self.assertAlmostEqual(t.getSamplingRate(), MT_A, places=4)
            np.testing.assert_allclose(t.getOrigin(force=True).getShifts(),
                                       src.getOrigin(force=True).getShifts())
            data = mrcfile.read(self._path(prot, t.getFileName()))
            self.assertEqual(data.dtype, np.float32)
            self._assertQuality(mrcfile.read(self.files[ts][0]), data,
                                mrcfile.read(self.files[ts][1]))
        soft = getattr(prot, constants.OUTPUT_NOISE_FILL_MASKS)
        self.assertSetSize(soft, 2)
        for m in soft.iterItems():
            w = mrcfile.read(self._path(prot, m.getFileName()))
            d = ndi.distance_transform_edt(~(mrcfile.read(self.files[m.getTsId()][1]) > 0.5))
            np.testing.assert_array_equal(w == 1, d <= 10)
        summary = "\n".join(prot.summary())
        self.assertIn("mtextra", summary)                  # the tomogram without a mask
        rep = json.load(open(self._path(prot, prot._reportFile("mt13"))))
        self.assertIn("mask %d -> %d voxels" % (rep["mask_voxels"], rep["expanded_voxels"]),
                      summary)
        png = self._path(prot, prot._pngFile("mt14"))
        self.assertIn(prot._pngFile("mt14"), summary)
        self.assertGreater(os.path.getsize(png), 1000)
        # resume: a step whose output exists does nothing
        outFile = self._path(prot, prot._outFile("mt13"))
        before = os.stat(outFile).st_mtime_ns
        prot.noiseFillStep("mt13", self.files["mt13"][0], self.files["mt13"][1], MT_A, 2)
        self.assertEqual(os.stat(outFile).st_mtime_ns, before)

    def test_volume_mask_defaults_and_parity(self):
        tomos = self._importTomos(self.hivDir, HIV_A)
        impMask = self.newProtocol(ProtImportMask, maskPath=self.files["hiv"][1],
                                   samplingRate=HIV_A)
        self.launchProtocol(impMask)
        prot = self.newProtocol(ProtCryoprocsMaskedTomogramNoiseFill, inputTomograms=tomos,
                                inputMasks=impMask.outputMask)
        self.launchProtocol(prot)
        out = getattr(prot, constants.OUTPUT_NOISE_FILLED_TOMOS)
        self.assertSetSize(out, 1)
        tomo = mrcfile.read(self.files["hiv"][0])
        mask = mrcfile.read(self.files["hiv"][1])
        self._assertQuality(tomo, mrcfile.read(self._path(prot, out.getFirstItem().getFileName())),
                            mask)
        par = self.newProtocol(ProtCryoprocsMaskedTomogramNoiseFill, inputTomograms=tomos,
                               inputMasks=impMask.outputMask, parityMode=True,
                               parityExpandPixels=30)
        self.launchProtocol(par)
        outp = getattr(par, constants.OUTPUT_NOISE_FILLED_TOMOS)
        want, _ = script_restatement(tomo, mask, expand_pixels=30)
        np.testing.assert_array_equal(
            mrcfile.read(self._path(par, outp.getFirstItem().getFileName())), want)
        self.assertIn("TomoPANDA parity", "\n".join(par.summary()))
        # the peak memory of one item in the summary: 1.6 (2.3 in parity mode) x the
        # 135 x 135 x 101 float32 tomogram + 150 MB
        mb = 135 * 135 * 101 * 4 / 2.0 ** 20
        self.assertIn("Estimated peak memory per item (one command or queue job): %.0f MB"
                      % (1.6 * mb + 150), "\n".join(prot.summary()))
        self.assertIn("%.0f MB" % (2.3 * mb + 150), "\n".join(par.summary()))

    def test_queue_memory_warning(self):
        tomos = self._importTomos(self.mtTomoDir, MT_A)
        impMasks = self.newProtocol(ProtImportTomomasks, filesPath=self.mtMaskDir,
                                    filesPattern="*.mrc", inputTomos=tomos)
        self.launchProtocol(impMasks)
        prot = self.newProtocol(ProtCryoprocsMaskedTomogramNoiseFill, inputTomograms=tomos,
                                inputMasks=impMasks.tomomasks, numberOfThreads=3)
        self.assertEqual(prot.warnings(), ["These tsIds have no partner and are skipped: "
                                           "mtextra."])
        largest = max(mb for _, mb in prot._memoryItems())
        both = sum(mb for _, mb in prot._memoryItems())     # 2 items, 2 item steps at once
        prot._useQueue.set(True)
        for perItem, limit, warned in (("Y", largest - 1, True), ("Y", largest + 1, False),
                                       ("N", largest + 1, True), ("N", both + 301, False)):
            prot.setQueueParams(["q", {"JOB_MEMORY": "%d" % limit, "QUEUE_FOR_JOBS": perItem}])
            w = [x for x in prot.warnings() if "JOB_MEMORY" in x]
            self.assertEqual(bool(w), warned, (perItem, limit, w))
            if warned:
                self.assertIn("JOB_MEMORY = %d MB" % limit, w[0])
                self.assertIn("%.0f MB" % (largest if perItem == "Y" else both + 300), w[0])
                self.assertIn("1.6 x its size as float32", w[0])

    def test_validation_names_tsids_and_values(self):
        tomos = self._importTomos(self.mtTomoDir, MT_A)
        impMask = self.newProtocol(ProtImportMask, maskPath=self.files["hiv"][1],
                                   samplingRate=HIV_A)
        self.launchProtocol(impMask)
        prot = self.newProtocol(ProtCryoprocsMaskedTomogramNoiseFill, inputTomograms=tomos,
                                inputMasks=impMask.outputMask)
        errors = "\n".join(prot.validate())
        self.assertIn("tsId mt13", errors)
        self.assertIn("135x135x101", errors)            # the mask's dimensions
        self.assertIn("94x206x36", errors)              # 13pf_MT's dimensions
        self.assertIn("40 Å/px", errors)                # sampling rate mismatch
        impMasks = self.newProtocol(ProtImportTomomasks, filesPath=self.mtMaskDir,
                                    filesPattern="*.mrc", inputTomos=tomos)
        self.launchProtocol(impMasks)
        prot2 = self.newProtocol(ProtCryoprocsMaskedTomogramNoiseFill, inputTomograms=tomos,
                                 inputMasks=impMasks.tomomasks, maskThreshold=5.0)
        errors = "\n".join(prot2.validate())
        self.assertIn("tsId mt14", errors)
        self.assertIn("mask > 5", errors)
        prot3 = self.newProtocol(ProtCryoprocsMaskedTomogramNoiseFill, inputTomograms=tomos,
                                 inputMasks=impMasks.tomomasks,
                                 expansionMode=constants.NF_EXPANSION_GAUSSIAN, expandPixels=12,
                                 gaussianSigma=2.0)
        self.assertIn("sigma", "\n".join(prot3.validate()))
