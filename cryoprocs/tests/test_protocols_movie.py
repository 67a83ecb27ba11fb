"""ExportMovie (and the tilt-series builder) in real Scipion projects, on the real HIV VLP
tomogram, real tilt images and real microtubule tomograms; movies are decoded and compared
with mrc2movie's frames."""
import os

import mrcfile
import numpy as np
from pwem.protocols import ProtImportVolumes
from pyworkflow.tests import setupTestProject

from cryoprocs.tests.scipion_testing import CryoprocsBaseTest
from cryoprocs import constants
from cryoprocs.protocols import ProtCryoprocsExportMovie, ProtCryoprocsTiltSeriesFromStacks
from cryoprocs.tests import shared_data
from cryoprocs.tests.movie_helpers import (decode, fb_order, mrc2movie_frames, nearest_frame,
                                           psnr, read_pngs)


class TestExportMovieProtocol(CryoprocsBaseTest):

    @classmethod
    def setUpClass(cls):
        setupTestProject(cls)

    def _path(self, prot, *parts):
        return os.path.join(self.proj.getPath(), prot._getExtraPath(*parts))

    def _importHiv(self):
        path = shared_data("real", "hiv_vlp", "hiv_ts01_tomo_40A.mrc")
        return path, self.importTomogramFile(path, 40.0)

    def _tiltSeries(self, acquisition=constants.TS_ACQ_STACK):
        stack = shared_data("real", "cryocat_tilt_stack", "tilt_stack.mrc")
        folder = os.path.join(self.proj.getPath(), "ts_input_%d" % acquisition)
        os.makedirs(folder, exist_ok=True)
        link = os.path.join(folder, "TS_01.mrc")
        if not os.path.lexists(link):
            os.symlink(stack, link)
        with open(os.path.join(folder, "TS_01.tlt"), "w") as fh:
            fh.write("0\n-3\n3\n-6\n")              # the file has no angles: assigned here
        prot = self.newProtocol(ProtCryoprocsTiltSeriesFromStacks, filesPath=folder,
                                filesPattern="TS_01.mrc", angleSource=constants.TS_ANGLES_TLT,
                                acquisitionOrder=acquisition, samplingRate=24.0,
                                dosePerTilt=3.0)
        self.launchProtocol(prot)
        return stack, getattr(prot, constants.OUTPUT_TILT_SERIES)

    # ---------------------------------------------------------------- tomogram
    def test_tomogram_default_mp4_summary_preview_viewer(self):
        path, tomos = self._importHiv()
        prot = self.newProtocol(ProtCryoprocsExportMovie, inputData=tomos)
        self.launchProtocol(prot)
        self.assertTrue(prot.isFinished())
        self.assertEqual(list(prot.iterOutputAttributes()), [])     # files only
        movie = self._path(prot, "hiv_ts01_tomo_40A.mp4")
        frames, meta = decode(movie)
        self.assertEqual(frames.shape, (200, 136, 136))              # 2*101-2, even size
        self.assertEqual(meta["codec"], "h264")
        vol = mrcfile.read(path)
        ref = mrc2movie_frames(vol)
        order = fb_order(101)
        for i in (0, 1, 60, 100, 101, 150, 199):
            self.assertEqual(nearest_frame(frames[i, :135, :135], ref), order[i])
            self.assertGreaterEqual(psnr(frames[i, :135, :135], ref[order[i]]), 24)
        # the summary lists the file with frames, duration and size
        summary = "\n".join(prot.summary())
        self.assertIn("hiv_ts01_tomo_40A.mp4", summary)
        self.assertIn("200 frames, 6.7 s, 136x136 px", summary)
        # the preview holds the central uint8 frame before encoding, exactly
        import cv2
        preview = cv2.imread(prot.getPreviewFile(), cv2.IMREAD_GRAYSCALE)
        self.assertEqual(preview.shape[1], 136)                      # one tile + caption
        central = np.pad(ref[50], ((0, 1), (0, 1)), mode="edge")
        np.testing.assert_array_equal(preview[:136], central)
        # the viewer shows it
        from cryoprocs.viewers import CryoprocsMovieViewer
        views = CryoprocsMovieViewer(project=self.proj)._visualize(prot)
        self.assertEqual(len(views), 1)
        self.assertEqual(views[0].image, prot.getPreviewFile())
        views[0].close()
        # a restarted item step finds its movie and skips it
        mtime = os.path.getmtime(movie)
        prot._itemsCache = None
        cwd = os.getcwd()
        try:
            os.chdir(self.proj.getPath())
            prot.exportMovieStep("hiv_ts01_tomo_40A", 1)
        finally:
            os.chdir(cwd)
        self.assertEqual(os.path.getmtime(movie), mtime)

    def test_tomogram_mjpg_avi_labels_and_options(self):
        path, tomos = self._importHiv()
        prot = self.newProtocol(ProtCryoprocsExportMovie, inputData=tomos,
                                outputFormat=constants.MOVIE_FORMAT_AVI,
                                playback=constants.MOVIE_PLAYBACK_FORWARD,
                                sliceSelection=constants.MOVIE_SLICES_RANGE, rangeStart=20,
                                rangeEnd=80, labelFrames=True, scaleBar=True)
        self.launchProtocol(prot)
        frames, _ = decode(self._path(prot, "hiv_ts01_tomo_40A.avi"))
        self.assertEqual(len(frames), 60)                            # kept [20, 80)
        ref = mrc2movie_frames(mrcfile.read(path), keep=(20, 80))
        core = (slice(30, 110), slice(30, 130))                      # away from overlays
        for i in (0, 30, 59):
            self.assertGreaterEqual(psnr(frames[i][core], ref[i][core]), 30)
        # the label and the 100 nm bar (25 px at 4 nm/px) are there
        self.assertGreater(np.abs(frames[0][:20, :60].astype(int) - ref[0][:20, :60]).mean(), 20)
        bar_row = frames[0][136 - 136 // 30 - 2, 4:4 + 25]
        self.assertGreater(bar_row.mean(), 230)

    # ---------------------------------------------------------------- tilt series
    def test_tilt_series_angle_and_acquisition_order(self):
        stack, tsSet = self._tiltSeries()
        self.assertSetSize(tsSet, 1)
        ts = tsSet.getFirstItem()
        tis = [(ti.getTiltAngle(), ti.getAcquisitionOrder(), ti.getIndex())
               for ti in ts.iterItems(orderBy="id")]
        # appended in tilt-angle order; acquisition = stack order (1-based)
        self.assertEqual(tis, [(-6.0, 4, 4), (-3.0, 2, 2), (0.0, 1, 1), (3.0, 3, 3)])
        ref = mrc2movie_frames(mrcfile.read(stack))
        prot = self.newProtocol(ProtCryoprocsExportMovie, inputData=tsSet,
                                outputFormat=constants.MOVIE_FORMAT_PNG)
        self.launchProtocol(prot)
        frames, files = read_pngs(self._path(prot, "TS_01_frames"))
        np.testing.assert_array_equal(frames, ref[[3, 1, 0, 2]])     # -6, -3, 0, 3 deg
        prot2 = self.newProtocol(ProtCryoprocsExportMovie, inputData=tsSet,
                                 outputFormat=constants.MOVIE_FORMAT_GIF,
                                 tiltOrder=constants.MOVIE_ORDER_ACQUISITION)
        self.launchProtocol(prot2)
        gif, _ = decode(self._path(prot2, "TS_01.gif"))
        np.testing.assert_array_equal(gif, ref[fb_order(4)])         # 0 1 2 3 2 1
        self.assertIn("6 frames", "\n".join(prot2.summary()))

    def test_dose_symmetric_builder_and_disabled_images(self):
        from cryoprocs.protocols.protocol_tilt_series_from_stacks import dose_symmetric_order
        self.assertEqual(dose_symmetric_order([-6, -3, 0, 3, 6], group=1), [5, 3, 1, 2, 4])
        self.assertEqual(dose_symmetric_order([-9, -6, -3, 0, 3, 6, 9], group=2),
                         [7, 5, 4, 1, 2, 3, 6])
        _, tsSet = self._tiltSeries(constants.TS_ACQ_DOSE_SYMMETRIC)
        ts = tsSet.getFirstItem()
        doses = {ti.getTiltAngle(): (ti.getAcquisitionOrder(),
                                     ti.getAcquisition().getAccumDose())
                 for ti in ts.iterItems()}
        # angles 0, -3, 3, -6 (file order); dose-symmetric groups of 2: 0, 3, -3, -6
        self.assertEqual(doses, {0.0: (1, 3.0), 3.0: (2, 6.0), -3.0: (3, 9.0),
                                 -6.0: (4, 12.0)})

    # ---------------------------------------------------------------- volumes
    def test_set_of_volumes_axis_y_discard_parallel(self):
        folder = os.path.dirname(shared_data("real", "cylindra", "13pf_MT.mrc"))
        imp = self.newProtocol(ProtImportVolumes, filesPath=folder,
                               filesPattern="1*pf_MT.mrc", samplingRate=10.52)
        self.launchProtocol(imp)
        vols = imp.outputVolumes
        self.assertSetSize(vols, 2)
        prot = self.newProtocol(ProtCryoprocsExportMovie, inputData=vols,
                                outputFormat=constants.MOVIE_FORMAT_GIF, axis=1,
                                playback=constants.MOVIE_PLAYBACK_FORWARD,
                                sliceSelection=constants.MOVIE_SLICES_DISCARD, discardStart=10,
                                discardEnd=20, numberOfThreads=3)
        self.launchProtocol(prot)
        names = []
        for v in vols.iterItems(orderBy="id"):
            name = "volume_%03d" % v.getObjId()
            names.append(name)
            vol = mrcfile.read(os.path.join(self.proj.getPath(), v.getFileName()))
            gif, _ = decode(self._path(prot, name + ".gif"))
            np.testing.assert_array_equal(
                gif, mrc2movie_frames(np.moveaxis(vol, 1, 0), frac=(0.1, 0.2)))
        summary = "\n".join(prot.summary())
        for name in names:
            self.assertIn(name + ".gif", summary)

    def test_single_volume_axis_x_png(self):
        path = shared_data("real", "maps", "EMD-3197.mrc")
        imp = self.newProtocol(ProtImportVolumes, filesPath=path, samplingRate=11.4)
        self.launchProtocol(imp)
        prot = self.newProtocol(ProtCryoprocsExportMovie, inputData=imp.outputVolume,
                                outputFormat=constants.MOVIE_FORMAT_PNG, axis=2, applyClahe=False,
                                contrastWindow=constants.MOVIE_WINDOW_PERCENTILE, lowPercentile=0,
                                highPercentile=100, numberOfThreads=1)
        self.launchProtocol(prot)
        name = "volume_%03d" % imp.outputVolume.getObjId()
        frames, files = read_pngs(self._path(prot, name + "_frames"))
        vol = mrcfile.read(path).astype(np.float32)
        # percentiles 0/100 = min/max: X slices [z, y] of mrc2movie's normalisation
        np.testing.assert_array_equal(frames, mrc2movie_frames(np.moveaxis(vol, 2, 0),
                                                               clahe=False))

    # ---------------------------------------------------------------- validation
    def test_validation_names_items_and_values(self):
        _, tomos = self._importHiv()
        prot = self.newProtocol(ProtCryoprocsExportMovie, inputData=tomos,
                                sliceSelection=constants.MOVIE_SLICES_RANGE, rangeStart=50,
                                rangeEnd=500)
        errors = prot.validate()
        self.assertTrue(any("hiv_ts01_tomo_40A" in e and "[50, 500)" in e for e in errors),
                        errors)
        prot = self.newProtocol(ProtCryoprocsExportMovie, inputData=tomos,
                                sliceSelection=constants.MOVIE_SLICES_DISCARD, discardStart=60,
                                discardEnd=50)
        self.assertTrue(any("keeps no slice" in e for e in prot.validate()))
        prot = self.newProtocol(ProtCryoprocsExportMovie, inputData=tomos, fps=0)
        self.assertTrue(any("got 0" in e for e in prot.validate()))
        _, tsSet = self._tiltSeries()
        prot = self.newProtocol(ProtCryoprocsExportMovie, inputData=tsSet, slab=5, axis=2)
        errors = prot.validate()
        self.assertTrue(any("Slab averaging (5 slices)" in e for e in errors), errors)
        self.assertTrue(any("must be Z (got X)" in e for e in errors), errors)


class TestExportMovieParticles(CryoprocsBaseTest):
    """ExportMovie with coordinates: real HIV particle positions on the real tomogram, and
    projected into a tilt series simulated from it (the coordinate checker)."""
    STRIDE = 40

    @classmethod
    def setUpClass(cls):
        setupTestProject(cls)
        tomo_file = shared_data("real", "hiv_vlp", "hiv_ts01_tomo_40A.mrc")
        csv = shared_data("real", "hiv_vlp", "hiv_particles_voxel40A.csv")
        cls.tomos = cls.importTomogramFile(tomo_file, 40.0)
        import pandas as pd
        cls.pos = pd.read_csv(csv)[["x", "y", "z"]].to_numpy()[::cls.STRIDE]
        cls.coords = cls.importCoordinatesTxt(cls.tomos, cls.pos, 8, fmt="%.3f %.3f %.3f\n")

    def _ring_centres(self, frame, pts, radius, drawn=None):
        """Chroma-weighted centres of the rings around points ``pts`` (x, y) that are 3 radii
        away from every other circle of the frame (``drawn``, default ``pts``)."""
        f = frame.astype(np.float64)
        chroma = f.max(axis=2) - f.min(axis=2)
        yy, xx = np.nonzero(chroma > 0)
        drawn = pts if drawn is None else drawn
        out = []
        for x, y in pts:
            d = np.hypot(*(drawn - (x, y)).T)
            if np.sort(d)[1:2].min(initial=np.inf) < 3 * radius:
                continue
            near = np.hypot(xx - x, yy - y) < radius + 2
            w = chroma[yy[near], xx[near]]
            out.append(((w * xx[near]).sum() / w.sum() - x, (w * yy[near]).sum() / w.sum() - y))
        return np.array(out)

    def test_real_particles_on_the_tomogram(self):
        prot = self.newProtocol(ProtCryoprocsExportMovie, inputData=self.tomos,
                                inputCoordinates=self.coords, particleRadius=160.0,
                                outputFormat=constants.MOVIE_FORMAT_PNG, pause=2, cycles=2)
        self.launchProtocol(prot)
        frames, _ = read_pngs(os.path.join(self.proj.getPath(), prot._getExtraPath(
            "hiv_ts01_tomo_40A_frames")))
        self.assertEqual(frames.shape, (101, 135, 135, 3))
        summary = " ".join(prot.summary())
        self.assertIn("%d of %d particles drawn (radius 4 px)" % (len(self.pos), len(self.pos)),
                      summary)
        # circles centred on the real positions (through Scipion's coordinates) in the
        # slice through each particle
        offsets = []
        for z in range(101):
            sel = np.abs(self.pos[:, 2] - z) < 0.5
            cut = np.abs(self.pos[:, 2] - z) < 4.0
            if sel.any():
                offsets.append(self._ring_centres(frames[z], self.pos[sel, :2], 4.0,
                                                  self.pos[cut, :2]))
        offsets = np.concatenate([o for o in offsets if len(o)])
        self.assertGreater(len(offsets), 20)
        self.assertLess(np.abs(offsets).max(), 0.6)
        import cv2
        preview = cv2.imread(prot.getPreviewFile(), cv2.IMREAD_UNCHANGED)
        self.assertEqual(preview.ndim, 3)                 # the overlay is in the preview
        self.assertTrue((preview[..., 1].astype(int) - preview[..., 0] > 100).any())

    def test_projected_particles_on_the_simulated_tilt_series(self):
        from cryoprocs.convert import relion5
        from cryoprocs.kernels import relion_geometry
        from cryoprocs.protocols import ProtCryoprocsSimulateTiltSeries
        sim = self.newProtocol(ProtCryoprocsSimulateTiltSeries, inputTomograms=self.tomos,
                               tiltStep=15.0, noise=0.5)
        self.launchProtocol(sim)
        prot = self.newProtocol(ProtCryoprocsExportMovie,
                                inputData=getattr(sim, constants.OUTPUT_TILT_SERIES),
                                inputCoordinates=self.coords, particleRadius=120.0,
                                overlayMaxDose=10.0, outputFormat=constants.MOVIE_FORMAT_PNG,
                                labelFrames=True)
        self.launchProtocol(prot)
        frames, _ = read_pngs(os.path.join(self.proj.getPath(), prot._getExtraPath(
            "hiv_ts01_tomo_40A_frames")))
        self.assertEqual(frames.shape, (9, 135, 135, 3))  # -60..60 in 15 deg steps
        # the projection of the simulation (the tomogram voxel p goes to P p)
        star = os.path.join(self.proj.getPath(), sim._getExtraPath("simulated",
                                                                   "tomograms.star"))
        ts = relion5.load_tilt_series(relion5.read_tomograms(star).iloc[0],
                                      self.proj.getPath())
        q = relion_geometry.project(ts.matrices, self.pos)
        order = np.argsort(ts.table["rlnTomoYTilt"].to_numpy())
        offsets = [self._ring_centres(frames[i], q[f, :, :2], 3.0) for i, f in enumerate(order)]
        offsets = np.concatenate([o for o in offsets if len(o)])
        self.assertGreater(len(offsets), 4)
        self.assertLess(np.abs(offsets).max(), 0.6)
        summary = " ".join(prot.summary())
        self.assertIn("%d particles projected into every tilt image" % len(self.pos), summary)
        self.assertIn("pre-exposure above 10 e/Å²", summary)
        # dose-symmetric, 3 e/A^2 per tilt: 0, +15, -15 and -30 deg have a pre-exposure
        # <= 10, the other 5 frames are flagged (red circles)
        red = (frames[..., 2].astype(int) - frames[..., 1] > 100).reshape(9, -1).any(1)
        green = (frames[..., 1].astype(int) - frames[..., 2] > 100).reshape(9, -1).any(1)
        self.assertEqual((red.sum(), green.sum()), (5, 4))
        self.assertIn("540 particle-frames usable, 675 flagged", summary)
