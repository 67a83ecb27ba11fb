"""SimulateTiltSeries (Tomography > Imports; test and demo data): tilt series projected
from tomograms with RELION 5's geometry, CTF, dose weighting and noise
(pipelines/simulate.py), registered as SetOfTiltSeries + SetOfCTFTomoSeries exactly as
ImportRelion5 registers a RELION 5 project (the simulated project is kept in extra/)."""
import os

import pyworkflow.protocol.params as params
from pyworkflow import BETA

from ..convert.paths import safe_name
from ..pipelines.simulate import SimulationSettings, simulate_relion_project
from .protocol_import_relion5 import ProtCryoprocsImportRelion5


class ProtCryoprocsSimulateTiltSeries(ProtCryoprocsImportRelion5):
    """Simulate aligned tilt series from tomograms (line integrals along RELION 5's
    projection geometry, contrast inversion, CTF, Grant & Grigorieff dose weighting of a
    dose-symmetric scheme, Gaussian noise), with their CTF series: aligned tilt series with
    known ground truth, to try or test extraction, reconstruction and movies."""
    _label = 'simulate tilt series'
    _devStatus = BETA

    def _defineParams(self, form):
        form.addSection(label='Input')
        form.addParam('inputTomograms', params.PointerParam, pointerClass='SetOfTomograms',
                      important=True, label='Tomograms',
                      help='One tilt series is simulated per tomogram, with its tsId and voxel '
                           'size as pixel size; tomogram voxel (x, y, z) projects where RELION '
                           '5 expects it for rlnTomoSize = the tomogram size.')
        line = form.addLine('Tilt range (deg)',
                            help='First and last tilt angle and the step, in degrees.')
        line.addParam('tiltMin', params.FloatParam, default=-60, label='min',
                      help='Most negative tilt angle (deg).')
        line.addParam('tiltMax', params.FloatParam, default=60, label='max',
                      help='Most positive tilt angle (deg).')
        line.addParam('tiltStep', params.FloatParam, default=3, label='step',
                      help='Tilt increment (deg).')
        form.addParam('dosePerTilt', params.FloatParam, default=3.0,
                      label='Dose per tilt (e/Å²)',
                      help='Electron dose of each tilt image; tilts are acquired in a '
                           'dose-symmetric order starting at 0 deg.')
        form.addParam('defocus', params.FloatParam, default=30000.0, label='Defocus (Å)',
                      help='Mean defocus (underfocus positive), with 100 Å of random '
                           'variation per tilt.')
        form.addSection(label='Microscope')
        form.addParam('astigmatism', params.FloatParam, default=300.0,
                      label='Astigmatism (Å)',
                      help='Defocus U minus defocus V in Å (U = mean + astigmatism/2).')
        form.addParam('voltage', params.FloatParam, default=300.0, label='Voltage (kV)',
                      help='Acceleration voltage of the microscope in kV.')
        form.addParam('sphericalAberration', params.FloatParam, default=2.7,
                      label='Spherical aberration (mm)',
                      help='Spherical aberration Cs of the objective lens in mm.')
        form.addParam('amplitudeContrast', params.FloatParam, default=0.1,
                      label='Amplitude contrast', help='Fraction between 0 and 1.')
        form.addParam('tiltAxis', params.FloatParam, default=0.0, label='Tilt axis angle (deg)',
                      help='In-plane rotation of the tilt axis (rlnTomoZRot), degrees.')
        form.addParam('noise', params.FloatParam, default=1.0, label='Noise (x signal std)',
                      help='Standard deviation of the added Gaussian noise as a multiple of '
                           'the noise-free image standard deviation.')
        form.addParam('seed', params.IntParam, default=1, label='Random seed',
                      help='Seed of the defocus variation and the noise.')

    # ------------------------------------------------------------------ steps
    def _insertAllSteps(self):
        self._insertFunctionStep(self.simulateStep, needsGPU=False)
        self._insertFunctionStep(self.importStep, needsGPU=False)

    def _simDir(self):
        return os.path.abspath(self._getExtraPath("simulated"))

    def _tomogramsStar(self):
        return os.path.join(self._simDir(), "tomograms.star")

    def _particlesStar(self):
        return None

    def _relionProjectDir(self, tomograms=None):
        return os.path.abspath(self.getProject().getPath()) if self.getProject() \
            else os.getcwd()

    def simulateStep(self):
        from ..convert import relion5
        settings = SimulationSettings(
            tilt_min=self.tiltMin.get(), tilt_max=self.tiltMax.get(),
            tilt_step=self.tiltStep.get(), dose_per_tilt=self.dosePerTilt.get(),
            defocus=self.defocus.get(), astigmatism=self.astigmatism.get(),
            voltage=self.voltage.get(), cs=self.sphericalAberration.get(),
            amplitude_contrast=self.amplitudeContrast.get(), tilt_axis=self.tiltAxis.get(),
            noise=self.noise.get(), seed=self.seed.get())
        rows = []
        project = self._relionProjectDir()
        for k, tomo in enumerate(t.clone() for t in self.inputTomograms.get().iterItems()):
            tsId = tomo.getTsId()
            out = os.path.join(self._simDir(), "ts_%s" % safe_name(tsId))
            settings.seed = self.seed.get() + k
            star = simulate_relion_project(self._projectPath(tomo.getFileName()), out, tsId,
                                           settings, project,
                                           pixel_size=tomo.getSamplingRate())
            rows.append(relion5.read_tomograms(star).iloc[0].to_dict())
        relion5.write_tomograms_star(self._tomogramsStar(), rows)

    def _validate(self):
        errors = []
        if self.tiltStep.get() <= 0 or self.tiltMax.get() < self.tiltMin.get():
            errors.append('Tilt range %g..%g with step %g is empty.'
                          % (self.tiltMin.get(), self.tiltMax.get(), self.tiltStep.get()))
        if not 0 <= self.amplitudeContrast.get() < 1:
            errors.append('Amplitude contrast must be in [0, 1), got %g.'
                          % self.amplitudeContrast.get())
        return errors

    def _methods(self):
        return []

    def _citations(self):
        return []
