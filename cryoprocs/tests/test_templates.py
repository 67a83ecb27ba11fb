"""The workflow templates of cryoprocs/templates, loaded as ``scipion3 template`` loads them
(pyworkflow's LocalTemplate: environment variables, ``~title|default|type|alias~`` fields
set by alias and validated, the JSON written and imported into a project), then run on the
real demo data: every protocol must finish cleanly and give its outputs."""
import os

import numpy as np
import pytest
from pyworkflow.tests import setupTestProject

from cryoprocs import constants
from cryoprocs.tests import shared_data
from cryoprocs.tests.scipion_testing import CryoprocsBaseTest, assert_run_clean

TEMPLATES = {"cryoprocs_spa_masking", "cryoprocs_tomo_picking_averaging"}


def _templates():
    from pwem import Domain
    plugin = Domain.getPluginModule("cryoprocs")._pluginInstance
    return {t.name: t for t in plugin.getTemplates()}


def test_templates_are_found_and_parse():
    templates = _templates()
    assert set(templates) == TEMPLATES
    for t in templates.values():
        t.replaceEnvVariables()
        t.parseContent()
        assert t.description and t.description != "Not provided"
        aliases = [p.getAlias() for p in t.params.values()]
        assert all(aliases) and len(set(aliases)) == len(aliases), aliases
        for p in t.params.values():          # every default validates but paths (user data)
            if p.getType() not in (2, 6):
                assert p.validate() is None, (t.name, p.getTitle(), p.getValue())


class TestTemplates(CryoprocsBaseTest):

    @classmethod
    def setUpClass(cls):
        setupTestProject(cls)

    def _run_template(self, name, values):
        t = _templates()[name]
        t.replaceEnvVariables()
        t.parseContent()
        for alias, value in values.items():
            self.assertEqual(t.setParamValue(alias, str(value)), 1, alias)
        self.assertEqual(sorted(p.getAlias() for p in t.params.values()), sorted(values))
        path = t.createTemplateFile()
        before = {p.getObjId() for p in self.proj.getRuns(refresh=True)}
        self.proj.loadProtocols(path)
        os.remove(path)
        runs = sorted((p for p in self.proj.getRuns(refresh=True) if p.getObjId() not in before),
                      key=lambda p: p.getObjId())
        done = []
        for prot in runs:
            prot = self.proj.getProtocol(prot.getObjId())
            self.assertEqual(prot.validate(), [], prot.getObjLabel())
            self.proj.launchProtocol(prot, wait=True)
            prot = self.proj.getProtocol(prot.getObjId())
            self.assertTrue(prot.isFinished(), "%s: %s" % (prot.getObjLabel(),
                                                           prot.getErrorMessage()))
            assert_run_clean(self.proj, prot)
            done.append(prot)
        return done

    def test_spa_masking_on_real_data(self):
        volume = shared_data("real", "maps", "EMD-3197.mrc")
        stack = shared_data("real", "cryodrgn_relion31", "relion31.mrcs")
        runs = self._run_template("cryoprocs_spa_masking", {
            "map": volume, "map_sr": 11.4, "inner": 6, "outer": 9,
            "particles_dir": os.path.dirname(stack), "particles_pattern": "relion31.mrcs",
            "particles_sr": 2.806, "radius": 100})
        self.assertEqual([p.getClassName() for p in runs],
                         ["ProtImportVolumes", "ProtCryoprocsApplyMask3D",
                          "ProtImportParticles", "ProtCryoprocsApplyMask2D"])
        self.assertEqual(getattr(runs[1], constants.OUTPUT_VOLUME).getDim(), (20, 20, 20))
        self.assertSetSize(getattr(runs[3], constants.OUTPUT_PARTICLES), 5)

    def test_tomography_workflow_on_real_data(self):
        from cryoprocs.convert.mrc import read_mrc, write_mrc
        from cryoprocs.demo.steps.peaks import shell_ncc, VLP_RADIUS
        from cryoprocs.pipelines.simulate import SimulationSettings, simulate_relion_project
        tomo_src = shared_data("real", "hiv_vlp", "hiv_ts01_tomo_40A.mrc")
        mask_src = shared_data("real", "hiv_vlp", "hiv_particle_shell_mask_r3.mrc")
        d = os.path.join(self.proj.getPath(), "template_inputs")
        for sub in ("tomograms", "masks", "maps", "relion"):
            os.makedirs(os.path.join(d, sub), exist_ok=True)
        os.symlink(tomo_src, os.path.join(d, "tomograms", "TS_01.mrc"))
        os.symlink(mask_src, os.path.join(d, "masks", "TS_01.mrc"))
        tomo = read_mrc(tomo_src, dtype=np.float32)
        # template matching stand-in (as the demo): a spherical-shell NCC, one orientation
        write_mrc(os.path.join(d, "maps", "scores_TS_01.mrc"), shell_ncc(tomo), voxel_size=40.0)
        write_mrc(os.path.join(d, "maps", "angles_TS_01.mrc"), np.zeros(tomo.shape, np.float32),
                  voxel_size=40.0)
        with open(os.path.join(d, "maps", "angles.csv"), "w") as fh:
            fh.write("0.0,0.0,0.0\n")
        relion = os.path.join(d, "relion")
        star = simulate_relion_project(tomo_src, os.path.join(relion, "TS_01"), "TS_01",
                                       SimulationSettings(tilt_step=6.0), relion,
                                       pixel_size=40.0)
        runs = self._run_template("cryoprocs_tomo_picking_averaging", {
            "tomo_dir": os.path.join(d, "tomograms"), "tomo_pattern": "*.mrc", "tomo_sr": 40.0,
            "mask_dir": os.path.join(d, "masks"), "mask_pattern": "*.mrc", "expand": 10,
            "scores_dir": os.path.join(d, "maps"), "scores_pattern": "scores_{TS}.mrc",
            "scores_sr": 40.0, "angles_dir": os.path.join(d, "maps"),
            "angles_pattern": "angles_{TS}.mrc", "angles_sr": 40.0,
            "angle_list": os.path.join(d, "maps", "angles.csv"), "min_distance": 15.0,
            "pick_box": int(2 * VLP_RADIUS + 8), "tomograms_star": star, "relion_dir": relion,
            "box": 32, "bin": 1.0, "max_dose": 60.0, "rec_box": 32, "rec_bin": 1.0,
            "symmetry": "C1"})
        names = [p.getClassName() for p in runs]
        self.assertEqual(names[-2:], ["ProtCryoprocsExtractSubtomos",
                                      "ProtCryoprocsReconstructSubtomoAverage"])
        picks = getattr(runs[names.index("ProtCryoprocsScoresPeakPicking")],
                        constants.OUTPUT_COORDINATES)
        self.assertGreaterEqual(picks.getSize(), 9)          # the 9 VLPs of the tomogram
        subs = getattr(runs[-2], constants.OUTPUT_SUBTOMOGRAMS)
        self.assertGreater(subs.getSize(), 0)
        avg = getattr(runs[-1], constants.OUTPUT_AVERAGE)
        self.assertEqual(avg.getDim(), (32, 32, 32))
        self.assertAlmostEqual(avg.getSamplingRate(), 40.0)
