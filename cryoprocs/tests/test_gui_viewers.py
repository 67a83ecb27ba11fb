"""Every cryoprocs viewer opens in a real Tk display (Xvfb) on finished runs of a small
demo-like workflow, in one Scipion project: the "Analyze Results" form and each of its views
are shown, screenshotted, checked not to be blank (grey-level spread) and closed without a
Tk error. Interactive widgets (z sliders, frame sliders, play buttons) are exercised.

Screenshots are kept in ``$CRYOPROCS_TEST_OUTPUT/gui`` (default ``.test-output/gui`` in the
checkout); the path is logged. Xvfb is installed with apt-get when missing and the tests run
as root (CI); elsewhere the tests skip with the reason.
"""
import logging
import os
import re
import time
import tkinter

import mrcfile
import numpy as np
from pyworkflow.tests import setupTestProject

from cryoprocs import constants
from cryoprocs.protocols import (ProtCryoprocsApplyMask2D, ProtCryoprocsApplyMask3D,
                                 ProtCryoprocsExportCopick, ProtCryoprocsExportMovie,
                                 ProtCryoprocsExtractSubtomos, ProtCryoprocsImportCopick,
                                 ProtCryoprocsImportRelion5,
                                 ProtCryoprocsMaskedTomogramNoiseFill,
                                 ProtCryoprocsReconstructSubtomoAverage,
                                 ProtCryoprocsScoresPeakPicking,
                                 ProtCryoprocsSimulateTiltSeries,
                                 ProtCryoprocsTiltSeriesFromStacks)
from cryoprocs.tests import copick_helpers as CH
from cryoprocs.tests import xdisplay
from cryoprocs.tests.scipion_testing import CryoprocsBaseTest

logger = logging.getLogger(__name__)

HERE = os.path.dirname(os.path.abspath(__file__))
OUTPUT = os.path.join(os.environ.get("CRYOPROCS_TEST_OUTPUT") or
                      os.path.join(HERE, "..", "..", ".test-output"), "gui")
#: (x, y, z) 0-based voxels of the synthetic particles of the 32 x 64 x 64 tomogram
CENTRES = [(20, 20, 16), (44, 22, 14), (30, 44, 17), (46, 46, 15)]
MIN_STD, MIN_FRACTION = 8.0, 0.05          # a blank window is a flat grey


def _blobs(shape, centres, sigma, amp):
    zz, yy, xx = np.meshgrid(*(np.arange(n) for n in shape), indexing="ij")
    out = np.zeros(shape, np.float32)
    for x, y, z in centres:
        out += amp * np.exp(-((xx - x) ** 2 + (yy - y) ** 2 + (zz - z) ** 2) / (2 * sigma ** 2))
    return out


def _write(path, data, voxel, stack=False):
    os.makedirs(os.path.dirname(path), exist_ok=True)
    with mrcfile.new(path, overwrite=True) as m:
        m.set_data(np.asarray(data, np.float32))
        m.voxel_size = voxel
        if stack:
            m.set_image_stack()
    return path


def _inputs(folder):
    rng = np.random.default_rng(0)
    shape = (32, 64, 64)
    tomo = rng.normal(0, 0.3, shape).astype(np.float32) + _blobs(shape, CENTRES, 2.5, 3.0)
    _write(os.path.join(folder, "tomos", "TS_01.mrc"), tomo, 10.0)
    _write(os.path.join(folder, "maps", "scores_TS_01.mrc"), _blobs(shape, CENTRES, 2.0, 1.0)
           + rng.normal(0, 0.02, shape).astype(np.float32), 10.0)
    _write(os.path.join(folder, "maps", "angles_TS_01.mrc"), np.zeros(shape), 10.0)
    with open(os.path.join(folder, "maps", "angles.csv"), "w") as fh:
        fh.write("0.0,0.0,0.0\n")
    zz, yy, xx = np.ogrid[:32, :64, :64]
    mask = (((xx - 32) / 22.0) ** 2 + ((yy - 32) / 18.0) ** 2 + ((zz - 16) / 9.0) ** 2) <= 1
    _write(os.path.join(folder, "masks", "TS_01.mrc"), mask.astype(np.float32), 10.0)
    vol = rng.normal(0, 0.3, (32, 32, 32)) + _blobs((32, 32, 32), [(16, 16, 16), (10, 20, 14)],
                                                    4.0, 2.0)
    _write(os.path.join(folder, "volume", "map.mrc"), vol, 5.0)
    yy, xx = np.mgrid[:32, :32]
    parts = np.stack([rng.normal(0, 0.5, (32, 32)) + 2.0 * (((xx - 16 - k % 3) ** 2 +
                                                              (yy - 15) ** 2) < 36)
                      for k in range(12)])
    _write(os.path.join(folder, "particles", "particles.mrcs"), parts, 5.0, stack=True)
    stack = np.stack([tomo.sum(0) + rng.normal(0, 1.0, (64, 64)) for _ in range(5)])
    _write(os.path.join(folder, "stacks", "TS_02.mrcs"), stack, 10.0, stack=True)
    return folder


#: the module's one X display (Tk keeps its connection: a display stopped between classes
#: would end the process at the next Tk event), started by the first class, stopped at the end
_DISPLAY = {}


def _display():
    """``(Display or None, reason)`` of the module, started (with the TkAgg backend) once."""
    if "display" not in _DISPLAY:
        _DISPLAY["display"] = display = xdisplay.start_display()
        if display[0] is not None:
            import pyworkflow.gui.project  # noqa: F401  (the GUI's import order)
            from pyworkflow.gui.plotter import Plotter
            Plotter.setBackend("TkAgg")
            os.makedirs(OUTPUT, exist_ok=True)
            logger.warning("GUI screenshots: %s", os.path.abspath(OUTPUT))
    return _DISPLAY["display"]


def tearDownModule():
    display = _DISPLAY.pop("display", (None, None))[0]
    if display is not None:
        from pyworkflow.gui.plotter import Plotter
        import matplotlib.pyplot as plt
        plt.close("all")
        Plotter.setBackend("Agg")
        display.stop()


class GuiViewerCase(CryoprocsBaseTest):
    """A Scipion project and the Xvfb display; subclasses make their runs in ``_build`` and
    show their viewers with the helpers (form and views screenshotted, checked not blank)."""

    @classmethod
    def setUpClass(cls):
        cls.display, cls.noDisplay = _display()
        setupTestProject(cls)
        cls.t0 = time.time()
        cls._build()

    @classmethod
    def tearDownClass(cls):
        import matplotlib.pyplot as plt
        plt.close("all")

    @classmethod
    def _run(cls, protClass, label, **kw):
        if protClass.__module__.startswith("cryoprocs."):
            # one thread: pyworkflow's serial executor, no 3 s polls between steps
            kw.setdefault("numberOfThreads", 1)
        prot = cls.newProtocol(protClass, **kw)
        prot.setObjLabel(label)
        return cls.launchProtocol(prot)

    @classmethod
    def _build(cls):
        raise NotImplementedError

    # ---------------------------------------------------------------- helpers
    def setUp(self):
        if self.display is None and self._testMethodName.startswith("test_gui_"):
            self.skipTest("no X display for the GUI tests: %s" % self.noDisplay)
        self.tkErrors = []
        self._orig_report = tkinter.Tk.report_callback_exception
        errors = self.tkErrors

        def report(tk, exc, val, tb):
            import traceback
            errors.append("".join(traceback.format_exception(exc, val, tb)))
        tkinter.Tk.report_callback_exception = report

    def tearDown(self):
        if not hasattr(self, "_orig_report"):
            return
        tkinter.Tk.report_callback_exception = self._orig_report
        import matplotlib.pyplot as plt
        plt.close("all")

    @staticmethod
    def _pump(widget, seconds=0.6):
        end = time.time() + seconds
        while time.time() < end:
            widget.update()
            time.sleep(0.05)

    def _shoot(self, toplevel, name):
        self._pump(toplevel)
        frame = toplevel.wm_frame()
        wid = int(frame, 16) if isinstance(frame, str) else toplevel.winfo_id()
        path = os.path.join(OUTPUT, name + ".png")
        xdisplay.capture(wid, path)
        std, frac = xdisplay.image_stats(path)
        self.assertGreater(std, MIN_STD, "%s looks blank (grey-level std %.1f)" % (path, std))
        self.assertGreater(frac, MIN_FRACTION, "%s looks blank (%.3f of the pixels differ "
                                               "from the background)" % (path, frac))
        return path

    def _viewer(self, prot):
        from pwem import Domain
        from pyworkflow.viewer import DESKTOP_TKINTER
        viewers = Domain.findViewers(prot, DESKTOP_TKINTER)
        self.assertTrue(viewers, "no viewer for %s" % prot.getClassName())
        self.assertTrue(viewers[0].__module__.startswith("cryoprocs.viewers"),
                        "Analyze Results of %s opens %s" % (prot.getClassName(), viewers[0]))
        return viewers[0](project=self.proj, protocol=prot)

    def _form(self, viewer, prot, name):
        """Open the Analyze Results form (not blocking), screenshot it, close it."""
        import pyworkflow.gui.gui as gui
        original = gui.Window.show

        def show(window, center=True, modal=False):
            window.root.deiconify()
        gui.Window.show = show
        try:
            viewer.visualize(prot)
        finally:
            gui.Window.show = original
        path = self._shoot(viewer.formWindow.root, name + "_form")
        viewer.formWindow.root.destroy()     # Window.close() exits a main window
        return path

    def _views(self, viewer, name, param, check=None):
        """Show the views of one form parameter, screenshot and close each."""
        views = viewer._getVisualizeDict()[param](param)
        self.assertTrue(views)
        paths = []
        for k, v in enumerate(views):
            self.assertTrue(hasattr(v, "figure"), "%s returned %r" % (param, v))
            v.show()
            window = v.figure.canvas.manager.window
            if check is not None:
                check(v)
            paths.append(self._shoot(window, "%s_%s%s" % (name, param, "_%d" % k if k else "")))
            v.close()
            self.assertFalse(window.winfo_exists() if _alive(window) else False)
        self.assertEqual(self.tkErrors, [])
        return paths

    def _all(self, key, name, checks=None):
        prot = self.runs[key]
        viewer = self._viewer(prot)
        self._form(viewer, prot, name)
        viewer = self._viewer(prot)
        viewer.setProtocol(prot)
        for param in viewer._getVisualizeDict():
            if param != "otherViewer":
                self._views(viewer, name, param, (checks or {}).get(param))
        self.assertEqual(self.tkErrors, [])


class TestGuiViewers(GuiViewerCase):
    """One project with one finished run of every protocol; every viewer shown under Xvfb."""

    @classmethod
    def _build(cls):
        from pwem.protocols import ProtImportParticles, ProtImportVolumes
        from tomo.protocols import ProtImportTomograms, ProtImportTomomasks
        d = _inputs(os.path.join(cls.proj.getPath(), "inputs"))
        cls.runs = {}
        tomos = cls._run(ProtImportTomograms, "import tomogram",
                         filesPath=os.path.join(d, "tomos"), filesPattern="TS_01.mrc",
                         samplingRate=10.0).Tomograms
        maps = {k: cls._run(ProtImportTomograms, "import %s map" % k,
                            filesPath=os.path.join(d, "maps"), filesPattern="%s_{TS}.mrc" % k,
                            samplingRate=10.0).Tomograms for k in ("scores", "angles")}
        masks = cls._run(ProtImportTomomasks, "import mask", filesPath=os.path.join(d, "masks"),
                         filesPattern="TS_01.mrc", inputTomos=tomos).tomomasks
        vol = cls._run(ProtImportVolumes, "import map",
                       filesPath=os.path.join(d, "volume", "map.mrc"),
                       samplingRate=5.0).outputVolume
        parts = cls._run(ProtImportParticles, "import particles",
                         importFrom=ProtImportParticles.IMPORT_FROM_FILES,
                         filesPath=os.path.join(d, "particles"), filesPattern="particles.mrcs",
                         samplingRate=5.0).outputParticles
        R = cls.runs
        R["mask3d"] = cls._run(ProtCryoprocsApplyMask3D, "mask 3d", inputVolumes=vol,
                               geo=constants.MASK3D_RAISED_COSINE, innerRadius=6, outerRadius=11)
        R["mask2d"] = cls._run(ProtCryoprocsApplyMask2D, "mask 2d", inputParticles=parts,
                               geo=constants.MASK2D_CIRCULAR, radius=9,
                               fillType=constants.FILL_NOISE)
        R["noise"] = cls._run(ProtCryoprocsMaskedTomogramNoiseFill, "noise fill",
                              inputTomograms=tomos, inputMasks=masks, expandPixels=3,
                              softEdge=2.0)
        R["peaks"] = cls._run(ProtCryoprocsScoresPeakPicking, "pick",
                              inputScoreMaps=maps["scores"], inputAngleMaps=maps["angles"],
                              inputTomograms=tomos,
                              angleList=os.path.join(d, "maps", "angles.csv"),
                              thresholdMode=constants.PEAKS_THR_DIRECT, threshold=0.5,
                              minDistance=8.0, boxSize=12)
        coords = getattr(R["peaks"], constants.OUTPUT_COORDINATES)
        R["sim"] = cls._run(ProtCryoprocsSimulateTiltSeries, "simulate", inputTomograms=tomos,
                            tiltMin=-60, tiltMax=60, tiltStep=6, noise=0.5)
        ts = getattr(R["sim"], constants.OUTPUT_TILT_SERIES)
        ctf = getattr(R["sim"], constants.OUTPUT_CTF_SERIES)
        R["extract2d"] = cls._run(ProtCryoprocsExtractSubtomos, "extract 2d",
                                  inputCoordinates=coords, inputTiltSeries=ts,
                                  inputCtfTomoSeries=ctf, boxSize=16)
        R["extract3d"] = cls._run(ProtCryoprocsExtractSubtomos, "extract 3d",
                                  extractionMode=constants.EXTRACT_MODE_SUBVOLUMES,
                                  inputCoordinates=coords, boxSize=16)
        R["reconstruct"] = cls._run(ProtCryoprocsReconstructSubtomoAverage, "reconstruct",
                                    inputCoordinates=coords, inputTiltSeries=ts,
                                    inputCtfTomoSeries=ctf, boxSize=16)
        R["stacks"] = cls._run(ProtCryoprocsTiltSeriesFromStacks, "tilt series from stacks",
                               filesPath=os.path.join(d, "stacks"), filesPattern="*.mrcs",
                               minAngle=-6.0, stepAngle=3.0, samplingRate=10.0)
        R["movie"] = cls._run(ProtCryoprocsExportMovie, "movie", inputData=tomos)
        logger.info("GUI test runs built in %.1f s", time.time() - cls.t0)

    # ---------------------------------------------------------------- tests
    def test_gui_mask3d(self):
        self._all("mask3d", "mask3d")

    def test_gui_mask2d(self):
        self._all("mask2d", "mask2d")

    def test_gui_noise_fill_browser(self):
        def check(view):
            b = view.handle
            before = np.array(b.images[1].get_array())
            b.set_z(b.z + 5)
            self.assertFalse(np.array_equal(before, b.images[1].get_array()))
            self.assertTrue(any(c is not None for c in b._contours))
        self._all("noise", "noisefill", {"displayBrowser": check})

    def test_gui_peak_picking(self):
        def check(view):
            b = view.handle
            self.assertEqual(len(b.picks), len(CENTRES))
            self.assertGreater(len(b._circles), 0)
        self._all("peaks", "peaks", {"displayPicks": check})

    def test_gui_extract_galleries(self):
        def check(view):
            g = view.handle
            self.assertEqual(len(g.images), len(CENTRES))
            first = np.array(g.images[0].get_array())
            g.set_position(0.0)
            self.assertEqual(int(g.slider.val), 0)
            self.assertFalse(np.array_equal(first, g.images[0].get_array()))
            g.set_position(0.5)
        self._all("extract2d", "extract2d", {"displayGallery": check})
        self._all("extract3d", "extract3d", {"displayGallery": check})

    def test_gui_reconstruct_maps_and_fsc(self):
        prot = self.runs["reconstruct"]
        summary = "\n".join(prot.summary())
        number = re.search(r"FSC 0\.143 resolution between the half maps: (<= )?([\d.]+) Å",
                           summary)
        self.assertIsNotNone(number, summary)

        def check(view):
            texts = [t.get_text() for t in view.figure.axes[0].get_legend().get_texts()]
            self.assertIn("%s%s Å" % (number.group(1) or "", number.group(2)), texts[0])
        self._all("reconstruct", "reconstruct", {"displayFsc": check})

    def test_gui_tilt_series(self):
        self._all("sim", "simulate_tilt_series")
        self._all("stacks", "tilt_series_from_stacks")

    def test_gui_movie_preview_and_play(self):
        from cryoprocs.viewers import viewer_base
        prot = self.runs["movie"]
        viewer = self._viewer(prot)
        views = viewer._visualize(prot)
        v = views[0]
        v.show()
        window = v.figure.canvas.manager.window
        self._shoot(window, "movie_preview")
        launched = []
        orig = (viewer_base.subprocess.Popen, viewer_base.shutil.which)
        viewer_base.subprocess.Popen = lambda cmd, **kw: launched.append(cmd)
        viewer_base.shutil.which = lambda name: "/usr/bin/" + name
        try:
            self.assertEqual(len(v.handle.buttons), 1)
            msg = v.handle.play(v.handle.movies[0][1])
        finally:
            viewer_base.subprocess.Popen, viewer_base.shutil.which = orig
        self.assertEqual(launched, [["xdg-open", v.handle.movies[0][1]]])
        self.assertIn("Opening TS_01.mp4", msg)
        v.close()
        self.assertEqual(self.tkErrors, [])


    def test_gui_analyze_results_in_the_project_window(self):
        """The Scipion project window's Analyze Results on a cryoprocs run opens the cryoprocs
        viewer (the whole GUI path: project window, selection, viewer lookup, form)."""
        from pyworkflow.gui.project import ProjectWindow
        window = ProjectWindow(self.proj.getPath())
        view = window.getViewWidget()
        prot = [p for p in window.project.getRuns() if p.getObjLabel() == "reconstruct"][0]
        seen = {}

        def press():
            view._selectItemProtocol(prot)
            window.root.after(1500, shoot)        # the viewer form runs its own mainloop
            view._analyzeResults(prot, None)
            window.root.quit()                    # then leave the project window's loop

        def shoot():
            titles = [w.title() for w in window.root.winfo_children()
                      if isinstance(w, tkinter.Toplevel)]
            seen["titles"] = titles
            path = os.path.join(OUTPUT, "project_window_analyze_results.png")
            xdisplay.capture("root", path)
            seen["stats"] = xdisplay.image_stats(path)
            window.root.quit()
        window.root.after(1500, press)
        window.root.deiconify()
        window.root.mainloop()
        for w in window.root.winfo_children():
            if isinstance(w, tkinter.Toplevel):
                w.destroy()
        window.root.destroy()
        self.assertIn("Protocol Viewer: CryoprocsReconstructViewer", seen["titles"])
        self.assertGreater(seen["stats"][0], MIN_STD)
        self.assertEqual(self.tkErrors, [])

    # ---------------------------------------------------------------- texts (no display)
    def test_methods_and_citations_render(self):
        """Methods and citations of every finished run go through pyworkflow's citation code
        without "Error with citation" and without a bare bibtex key (keys become links)."""
        from pwem import Domain
        from cryoprocs.tests.test_form_texts import render
        keys = set(Domain.getPluginModule("cryoprocs")._bibtex)
        for key, prot in self.runs.items():
            text = "\n".join(prot.methods())
            self.assertNotIn("Error with citation", text, key)
            self.assertNotIn("not found", text, key)
            unlinked = re.sub(r"\[\[[^\]]*\]\[[^\]]*\]\]", "", text)
            for k in keys:
                self.assertNotIn("[%s]" % k, unlinked, key)   # a citation left unparsed
                if re.search(r"\d", k):                        # keys that are not words
                    self.assertNotIn(k, unlinked, "%s: raw key %s in %r" % (key, k, text))
            self.assertNotIn("{", render(text), key)
            if key not in ("sim", "stacks"):
                self.assertTrue(prot._methods(), key)
                own = "[[https://github.com/cryoprocs/scipion-em-cryoprocs][cryoprocs2026]]"
                self.assertIn(own, "\n".join(prot.getParsedMethods()), key)

    def test_summaries_agree_and_link(self):
        from cryoprocs.tests.test_form_texts import BAD_UNITS, render
        single = re.compile(r"\b1 (tomograms|particles|volumes|coordinates|movies|sub-volumes|"
                            r"boxes|frames|tilts|tilt images|pseudo-subtomograms)\b")
        for key, prot in self.runs.items():
            text = "\n".join(prot.summary())
            self.assertNotRegex(text, single, key)
            self.assertIsNone(BAD_UNITS.search(text), "%s: %s" % (key, text))
            links = re.findall(r"\[\[([^\]]+)\]\[([^\]]+)\]\]", text)
            for path, label in links:             # pyworkflow's link form: opens the file
                self.assertTrue(os.path.exists(os.path.join(self.proj.getPath(), path)),
                                "%s: summary link %s does not exist" % (key, path))
            self.assertNotIn("[[", render(text), "%s: a link pyworkflow shows as text: %r"
                             % (key, text))
        self.assertIn("1 tomogram noise-filled", "\n".join(self.runs["noise"].summary()))
        peaks = "\n".join(self.runs["peaks"].summary())
        self.assertIn("4 coordinates in 1 tomogram", peaks)
        self.assertIn("_diagnostics.png][TS_01_diagnostics.png]]", peaks)
        self.assertNotIn("<tsId>", peaks)

    def test_angle_list_is_copied_into_the_run(self):
        prot = self.runs["peaks"]
        copy = os.path.join(self.proj.getPath(), prot._getExtraPath("angle_list.csv"))
        with open(copy) as a, open(prot.angleList.get()) as b:
            self.assertEqual(a.read(), b.read())

    def test_run_logs_state_the_threads(self):
        for key in ("noise", "mask3d", "movie"):
            prot = self.runs[key]
            with open(os.path.join(self.proj.getPath(), prot.getStdoutLog())) as fh:
                log = fh.read()
            self.assertNotIn("Cannot get information about MPI/threads", log, key)
            self.assertIn("binary Threads: 1", log, key)


class TestGuiImportRelion5Viewer(GuiViewerCase):
    """ImportRelion5's own run (not only its subclass SimulateTiltSeries): the tilt-image
    browser and the per-tilt dose and defocus against the project's tilt-series STAR."""

    @classmethod
    def setUpClass(cls):
        from cryoprocs.tests import relion5_reference as REF
        cls.base = REF.pack_dir()              # skips (before the display starts) when absent
        super().setUpClass()

    @classmethod
    def _build(cls):
        cls.runs = {"relion5": cls._run(
            ProtCryoprocsImportRelion5, "import relion 5",
            tomogramsFile=os.path.join(cls.base, "tomograms.star"),
            particlesFile=os.path.join(cls.base, "particles.star"))}

    def test_gui_import_relion5(self):
        import starfile
        glob = starfile.read(os.path.join(self.base, "tomograms.star"))
        star = starfile.read(os.path.join(self.base, glob["rlnTomoTiltSeriesStarFile"].iloc[0]))
        ts = getattr(self.runs["relion5"], constants.OUTPUT_TILT_SERIES).getFirstItem()
        angles = sorted(ti.getTiltAngle() for ti in ts.iterItems())

        def tilts(view):
            b = view.handle
            self.assertEqual(b.nz, len(star))
            self.assertIn("tilt %.1f°" % min(angles, key=abs), b._text.get_text())
            first = np.array(b.images[0].get_array())
            b.set_z(0)
            self.assertIn("tilt %.1f°, acquisition order" % angles[0], b._text.get_text())
            self.assertFalse(np.array_equal(first, b.images[0].get_array()))
            b.set_z(int(np.argmin(np.abs(angles))))

        def plots(view):
            # each tilt's own values (the STAR rows in tilt order), not one tilt's repeated
            rows = star.sort_values("rlnTomoNominalStageTiltAngle")
            dose, ctf = view.figure.axes[:2]
            np.testing.assert_allclose(dose.lines[0].get_xdata(), angles)
            np.testing.assert_allclose(dose.lines[0].get_xdata(),
                                       rows["rlnTomoNominalStageTiltAngle"], atol=1.0)
            np.testing.assert_allclose(dose.lines[0].get_ydata(),
                                       rows["rlnMicrographPreExposure"], atol=1e-6)
            np.testing.assert_allclose(ctf.lines[0].get_ydata(), rows["rlnDefocusU"],
                                       atol=0.01)
            np.testing.assert_allclose(ctf.lines[1].get_ydata(), rows["rlnDefocusV"],
                                       atol=0.01)
        self._all("relion5", "import_relion5", {"displayTilts": tilts, "displayPlots": plots})


class TestGuiCopickViewers(GuiViewerCase):
    """ImportCopick and ExportCopick (of coordinates and of subtomograms) on a small copick
    project with a particle at each pick: the picks drawn are the run's, at the particles,
    with the segmentation outlined; an export's picks are read back from the project."""

    @classmethod
    def setUpClass(cls):
        CH.copick_or_skip()                     # skips before the display starts
        super().setUpClass()

    @classmethod
    def _build(cls):
        cls.config, cls.truth = CH.make_project(
            os.path.join(cls.proj.getPath(), "copick_project"), particles=True)
        R = cls.runs = {}
        R["import"] = cls._run(ProtCryoprocsImportCopick, "import copick",
                               configFile=cls.config, voxelSpacing=CH.VOXEL, tomoType="wbp",
                               objects="ribosome", importMasks=True)
        coords = getattr(R["import"], constants.OUTPUT_COORDINATES)
        R["export"] = cls._run(ProtCryoprocsExportCopick, "export copick",
                               inputObjects=coords, configFile=cls.config,
                               objectName="ribosome", userId="cryoprocs", sessionId="2")
        ext = cls._run(ProtCryoprocsExtractSubtomos, "extract",
                       inputCoordinates=coords,
                       inputTomograms=getattr(R["import"], constants.OUTPUT_TOMOGRAMS),
                       extractionMode=constants.EXTRACT_MODE_SUBVOLUMES, boxSize=8, outsideBoxes=1)
        R["export_subtomos"] = cls._run(
            ProtCryoprocsExportCopick, "export subtomograms to copick",
            inputObjects=getattr(ext, constants.OUTPUT_SUBTOMOGRAMS), configFile=cls.config,
            objectName="ribosome", userId="cryoprocs", sessionId="3")

    def _coords(self, tsId):
        """0-based voxel (x, y, z) of the import's coordinates of ``tsId``, sorted."""
        from cryoprocs.convert.scipion import coordinate_blc
        coords = getattr(self.runs["import"], constants.OUTPUT_COORDINATES)
        tomo = [t.clone() for t in coords.getPrecedents() if t.getTsId() == tsId][0]
        return np.array(sorted(tuple(coordinate_blc(c))
                               for c in coords.iterCoordinates(volume=tomo)))

    def _truth(self, tsId):
        loc, T = self.truth[tsId][:2]
        return np.array(sorted(map(tuple, (loc + T[:, :3, 3]) / CH.VOXEL)))

    def _check_picks(self, b, tsId):
        """The picks drawn are the coordinates of ``tsId`` (the truth), each on its particle
        (a bright voxel in the slice shown), with a circle centred on it."""
        n = len(self.truth[tsId][0])
        self.assertEqual(len(b.picks), n)
        got = np.array(sorted(map(tuple, b.picks[:, :3])))
        np.testing.assert_allclose(got, self._coords(tsId), atol=1e-4)
        np.testing.assert_allclose(got, self._truth(tsId), atol=1e-4)
        # coloured by score: the best pick yellow, the worst red (autumn map)
        np.testing.assert_allclose(sorted(b.picks[:, 3]), CH.pick_scores(n), atol=1e-9)
        self.assertIn("score 0.3 (red) to 0.9 (yellow)", b._text.get_text())
        colours = {}
        z0 = b.z
        for x, y, z, score in b.picks:
            b.set_z(int(round(z)))
            img = np.asarray(b.images[0].get_array())
            self.assertGreater(img[int(round(y)), int(round(x))], 2.0, (x, y, z))
            centres = np.array([c.center for c in b._circles])
            dist = np.hypot(centres[:, 0] - x, centres[:, 1] - y)
            self.assertLess(np.min(dist), 1e-9)
            colours[score] = b._circles[int(np.argmin(dist))].get_edgecolor()[:3]
        b.set_z(z0)
        np.testing.assert_allclose(colours[max(colours)], (1.0, 1.0, 0.0), atol=1e-6)
        np.testing.assert_allclose(colours[min(colours)], (1.0, 0.0, 0.0), atol=1e-6)

    def test_gui_copick_import(self):
        def check(view):
            b = view.handle
            self._check_picks(b, "TS_01")
            self.assertIn("TS_01: 6 picks of ribosome",
                          view.figure._suptitle.get_text().replace("\n", " "))
            self.assertEqual(b.radius, 8.0)                  # box 16: 2 x 80 Å / 10 Å/px
            self.assertEqual([lab for _, _, lab in b.outlines], ["segmentation membrane"])
            self.assertTrue(any(c is not None for c in b._contours))
            np.testing.assert_array_equal(b.outlines[0][0](b.z),
                                          self.truth["TS_01"][3][b.z] > 0)
        self._all("import", "copick_import", {"displayPicks": check})

    def test_gui_copick_export(self):
        for key, session in (("export", "2"), ("export_subtomos", "3")):
            def check(view, tsId="TS_01"):
                b = view.handle
                self._check_picks(b, tsId)
                self.assertIn("%s: 6 picks of ribosome by cryoprocs, session %s (read back "
                              "from copick.json)" % (tsId, session),
                              view.figure._suptitle.get_text().replace("\n", " "))
            name = "copick_%s" % key
            self._all(key, name, {"displayPicks": check})
        # the other run, chosen in the form
        viewer = self._viewer(self.runs["export"])
        viewer.setProtocol(self.runs["export"])
        self.assertEqual(viewer._tsIds, ["TS_01", "TS_02"])
        viewer.tsIdIndex.set(1)
        self._views(viewer, "copick_export_TS_02", "displayPicks",
                    lambda v: self._check_picks(v.handle, "TS_02"))

    def test_copick_viewer_messages_before_the_runs_end(self):
        """Runs saved but not run: a message, not a traceback."""
        imp = self.newProtocol(ProtCryoprocsImportCopick, configFile=self.config,
                               voxelSpacing=CH.VOXEL, objects="ribosome")
        self.proj.saveProtocol(imp)
        exp = self.newProtocol(ProtCryoprocsExportCopick, configFile=self.config,
                               inputObjects=getattr(self.runs["import"],
                                                    constants.OUTPUT_COORDINATES),
                               objectName="ribosome", userId="cryoprocs", sessionId="9")
        self.proj.saveProtocol(exp)
        for prot, text in ((imp, "The run has no tomograms yet."),
                           (exp, "The run has not written its picks into the copick "
                                 "project yet.")):
            viewer = self._viewer(prot)
            viewer.setProtocol(prot)
            views = viewer._getVisualizeDict()["displayPicks"]("displayPicks")
            self.assertEqual([v.getMessage() for v in views], [text])


def _alive(window):
    try:
        return bool(window.winfo_exists())
    except tkinter.TclError:
        return False
