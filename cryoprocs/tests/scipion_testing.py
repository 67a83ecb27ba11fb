"""Shared base of the protocol tests: every run launched by a test must end cleanly.

pyworkflow's ``BaseTest.launchProtocol`` only checks the status the protocol had when its
process returned. A run can raise later (in ``_endRun``, when the protocol is stored) and
still show "finished" while its ``endTime`` is never stored and ``run.stderr`` holds a
traceback. :func:`assert_run_clean` checks what the project database and the log really say,
and :class:`CryoprocsBaseTest` applies it to every run a test launches. Its class methods
import what several test classes start from (RELION 5 projects, a tomogram file, text
coordinates); :class:`Relion5ReferenceTest` starts from the RELION 5 reference project.
"""
import os

from pyworkflow.tests import BaseTest, setupTestProject

from cryoprocs.scipion_runs import run_problems


def assert_run_clean(project, prot):
    """Raise AssertionError naming the run and every reason it did not end cleanly."""
    problems = run_problems(project, prot)
    if problems:
        raise AssertionError("run %s did not end cleanly: %s"
                             % (prot.getRunName(), "; ".join(problems)))


class CryoprocsBaseTest(BaseTest):
    """``BaseTest`` whose ``launchProtocol`` also checks, for a run expected to succeed,
    that it ended cleanly (:func:`assert_run_clean`)."""

    @classmethod
    def launchProtocol(cls, prot, **kwargs):
        prot = super().launchProtocol(prot, **kwargs)
        if prot.isFinished():
            assert_run_clean(cls.proj, prot)
        return prot

    @classmethod
    def importRelion5(cls, tomogramsFile, particlesFile=None, **kwargs):
        """A launched ImportRelion5 run of a RELION 5 project's ``tomograms.star`` (and its
        particles); ``kwargs``: other parameters (``projectDir``, ``inputTomograms``)."""
        from cryoprocs.protocols import ProtCryoprocsImportRelion5
        if particlesFile is not None:
            kwargs["particlesFile"] = particlesFile
        prot = cls.newProtocol(ProtCryoprocsImportRelion5, tomogramsFile=tomogramsFile,
                               **kwargs)
        cls.launchProtocol(prot)
        return prot

    @classmethod
    def importTomogramFile(cls, path, samplingRate):
        """The SetOfTomograms of one MRC file imported by scipion-em-tomo (launched run)."""
        from tomo.protocols import ProtImportTomograms
        imp = cls.newProtocol(ProtImportTomograms, filesPath=os.path.dirname(path),
                              filesPattern=os.path.basename(path), samplingRate=samplingRate)
        cls.launchProtocol(imp)
        return imp.Tomograms

    @classmethod
    def importCoordinatesTxt(cls, tomograms, positions, boxSize, fmt="%d %d %d\n"):
        """The SetOfCoordinates3D of ``positions`` (x, y, z voxels, one row each) in the one
        tomogram of ``tomograms``, written as ``fmt`` to a text file named after it and
        imported by scipion-em-tomo (launched run)."""
        from tomo.protocols import ProtImportCoordinates3D
        folder = os.path.join(cls.getOutputPath(), "coords")
        os.makedirs(folder, exist_ok=True)
        stem = os.path.splitext(os.path.basename(tomograms.getFirstItem().getFileName()))[0]
        with open(os.path.join(folder, stem + ".txt"), "w") as fh:
            for p in positions:
                fh.write(fmt % tuple(p))
        prot = cls.newProtocol(ProtImportCoordinates3D, filesPath=folder,
                               filesPattern="*.txt", importTomograms=tomograms, boxSize=boxSize)
        prot.importFrom.set(prot._getImportChoices().index("txt"))
        cls.launchProtocol(prot)
        return prot.outputCoordinates


class Relion5ReferenceTest(CryoprocsBaseTest):
    """Protocol tests on the RELION 5.0.1 reference project
    (:func:`cryoprocs.tests.relion5_reference.pack_dir`, ``cls.base``), imported once per
    class by ImportRelion5 (``cls.imp``) in a fresh Scipion project."""

    @classmethod
    def setUpClass(cls):
        from cryoprocs.tests import relion5_reference
        setupTestProject(cls)
        cls.base = relion5_reference.pack_dir()
        cls.imp = cls.importRelion5(os.path.join(cls.base, "tomograms.star"),
                                    os.path.join(cls.base, "particles.star"))
