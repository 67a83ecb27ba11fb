"""Tilt series from MRC stacks and tilt angles (Tomography > Imports), also used by the
tests and the demo.

scipion-em-tomo's own tilt-series import (``ProtImportTs``) deadlocks on sqlite in this
environment (docs/scipion-notes.md), so cryoprocs tests and the demo build
their ``SetOfTiltSeries`` here: one tilt series per stack, named by the file stem (tsId),
tilt images referenced in place through links in ``extra/``, with tilt angles, acquisition
orders and accumulated doses as scipion-em-tomo's import writes them (images appended in
tilt-angle order, acquisition order 1-based, accumulated dose = order x dose per tilt).
"""
import glob
import logging
import os

import pyworkflow.protocol.params as params
from pyworkflow import BETA
from pyworkflow.protocol import STEPS_SERIAL
from tomo.objects import SetOfTiltSeries

from .. import constants
from ..convert.mrc import mrc_info
from ..pipelines.movie import read_tilt_angles
from .protocol_base import ProtCryoprocsBase

logger = logging.getLogger(__name__)


def dose_symmetric_order(angles, group=2):
    """1-based acquisition order of a dose-symmetric scheme (Hagen et al. 2017).

    Starts at the angle nearest 0 deg, then takes ``group`` angles on the positive side,
    ``group`` on the negative side, and so on outwards; a side that runs out is skipped.

    Parameters
    ----------
    angles : list of float
        Tilt angles in degrees, any order.

    Returns
    -------
    list of int
        ``order[i]`` = acquisition order (1..n) of ``angles[i]``.
    """
    n = len(angles)
    start = min(range(n), key=lambda i: (abs(angles[i]), -angles[i]))
    pos = sorted((i for i in range(n) if i != start and angles[i] >= angles[start]),
                 key=lambda i: angles[i])
    neg = sorted((i for i in range(n) if i != start and angles[i] < angles[start]),
                 key=lambda i: -angles[i])
    seq = [start]
    group = max(1, int(group))
    while pos or neg:
        seq += pos[:group]
        pos = pos[group:]
        seq += neg[:group]
        neg = neg[group:]
    order = [0] * n
    for k, i in enumerate(seq):
        order[i] = k + 1
    return order


class ProtCryoprocsTiltSeriesFromStacks(ProtCryoprocsBase):
    """Build tilt series from MRC stacks and their tilt angles: one tilt series per stack,
    named by the file stem, with angles from a range or IMOD .tlt files, stack or
    dose-symmetric acquisition order and doses. A light import for unaligned stacks (no
    alignment, no CTF): e.g. for movies, or as input to alignment protocols."""
    _label = 'tilt series from stacks'
    _devStatus = BETA
    stepsExecutionMode = STEPS_SERIAL
    _possibleOutputs = {constants.OUTPUT_TILT_SERIES: SetOfTiltSeries}

    def _defineParams(self, form):
        form.addSection(label='Input')
        form.addParam('filesPath', params.PathParam, important=True, label='Folder',
                      help='Folder holding the tilt stacks (MRC, one image per tilt).')
        form.addParam('filesPattern', params.StringParam, default='*.mrcs',
                      label='Pattern',
                      help='Glob pattern of the stacks inside the folder, e.g. *.mrcs or '
                           'TS_*.st. Each stack becomes one tilt series named by its stem.')
        form.addParam('angleSource', params.EnumParam, choices=constants.TS_ANGLE_SOURCE_CHOICES,
                      default=constants.TS_ANGLES_RANGE, label='Tilt angles from',
                      help='*Range*: image i of every stack is at min + i x step degrees. '
                           '*.tlt file*: a file <stem>.tlt (or .rawtlt) next to each stack '
                           'lists the angle of each image, one per line (IMOD).')
        line = form.addLine('Angle range (deg)',
                            condition='angleSource == %d' % constants.TS_ANGLES_RANGE,
                            help='Tilt angle of the first image and step between images, deg.')
        line.addParam('minAngle', params.FloatParam, default=-60.0, label='first',
                      help='Tilt angle of the first image of the stack, deg.')
        line.addParam('stepAngle', params.FloatParam, default=3.0, label='step',
                      help='Tilt angle increment between consecutive images, deg.')
        form.addParam('acquisitionOrder', params.EnumParam,
                      choices=constants.TS_ACQ_ORDER_CHOICES, default=constants.TS_ACQ_STACK,
                      label='Acquisition order',
                      help='*Stack order*: image i was acquired i-th. *Dose-symmetric*: '
                           'from the angle nearest 0 deg outwards, alternating groups of '
                           'images on the positive and negative sides (Hagen 2017).')
        form.addParam('groupSize', params.IntParam, default=2,
                      condition='acquisitionOrder == %d' % constants.TS_ACQ_DOSE_SYMMETRIC,
                      label='Group size',
                      help='Images taken on one side before switching to the other side.')
        form.addSection(label='Acquisition')
        form.addParam('samplingRate', params.FloatParam, default=1.0,
                      label='Pixel size (Å/px)', help='Sampling rate of the tilt images, Å/px.')
        form.addParam('dosePerTilt', params.FloatParam, default=3.0,
                      label='Dose per tilt (e/Å²)',
                      help='Electron dose of each tilt image; the accumulated dose of an '
                           'image is its acquisition order x this value.')
        form.addParam('voltage', params.FloatParam, default=300.0, label='Voltage (kV)',
                      help='Acceleration voltage in kV.')
        form.addParam('sphericalAberration', params.FloatParam, default=2.7,
                      label='Spherical aberration (mm)', help='Cs of the microscope in mm.')
        form.addParam('amplitudeContrast', params.FloatParam, default=0.1,
                      label='Amplitude contrast', help='Fraction of amplitude contrast.')
        form.addParam('tiltAxisAngle', params.FloatParam, default=0.0,
                      label='Tilt axis angle (deg)',
                      help='Angle of the tilt axis from the Y axis of the images, deg.')

    # ---------------------------------------------------------------- helpers
    def _stacks(self):
        return sorted(glob.glob(os.path.join(self.filesPath.get() or '',
                                             self.filesPattern.get() or '')))

    def _angles(self, path, n):
        if self.angleSource.get() == constants.TS_ANGLES_RANGE:
            return [self.minAngle.get() + i * self.stepAngle.get() for i in range(n)]
        stem = os.path.splitext(path)[0]
        for ext in ('.tlt', '.rawtlt'):
            if os.path.exists(stem + ext):
                angles = read_tilt_angles(stem + ext)
                if len(angles) != n:
                    raise ValueError('%s lists %d angles for the %d images of %s'
                                     % (stem + ext, len(angles), n, path))
                return angles
        raise ValueError('no %s.tlt or .rawtlt next to %s' % (os.path.basename(stem), path))

    def _orders(self, angles):
        if self.acquisitionOrder.get() == constants.TS_ACQ_DOSE_SYMMETRIC:
            return dose_symmetric_order(angles, self.groupSize.get())
        return list(range(1, len(angles) + 1))

    # ---------------------------------------------------------------- steps
    def _insertAllSteps(self):
        self._insertFunctionStep(self.createOutputStep, needsGPU=False)

    def createOutputStep(self):
        from tomo.objects import TiltImage, TiltSeries, TomoAcquisition
        from pwem.objects import Transform

        sr = self.samplingRate.get()
        dose = self.dosePerTilt.get()
        outSet = SetOfTiltSeries.create(self._getPath(), prefix='tiltseries')
        outSet.setSamplingRate(sr)
        acq = TomoAcquisition(voltage=self.voltage.get(),
                              sphericalAberration=self.sphericalAberration.get(),
                              amplitudeContrast=self.amplitudeContrast.get(),
                              magnification=50000, tiltAxisAngle=self.tiltAxisAngle.get(),
                              dosePerFrame=dose)
        for path in self._stacks():
            tsId = os.path.splitext(os.path.basename(path))[0]
            n = mrc_info(path).shape[0]
            angles = self._angles(path, n)
            orders = self._orders(angles)
            link = self._tsIdPath(tsId, '.mrcs')
            if not os.path.lexists(link):
                os.symlink(os.path.abspath(path), link)
            tsAcq = acq.clone()
            tsAcq.setAngleMin(min(angles))
            tsAcq.setAngleMax(max(angles))
            tsAcq.setStep(abs(angles[1] - angles[0]) if n > 1 else 0.0)
            tsAcq.setAccumDose(n * dose)
            ts = TiltSeries(tsId=tsId)
            ts.setSamplingRate(sr)
            ts.setAcquisition(tsAcq)
            ts.setAnglesCount(n)
            origin = Transform()
            ts.setOrigin(origin)
            outSet.append(ts)
            for i in sorted(range(n), key=lambda i: angles[i]):
                ti = TiltImage(location=(i + 1, link), tiltAngle=angles[i],
                               acquisitionOrder=orders[i])
                tiAcq = tsAcq.clone()
                tiAcq.setDoseInitial((orders[i] - 1) * dose)
                tiAcq.setDosePerFrame(dose)
                tiAcq.setAccumDose(orders[i] * dose)
                ti.setAcquisition(tiAcq)
                ti.setSamplingRate(sr)
                ts.append(ti)
            first = ts.getFirstItem()
            origin.setShifts(-first.getXDim() / 2 * sr, -first.getYDim() / 2 * sr, 0)
            ts.setOrigin(origin)
            outSet.update(ts)
            logger.info('tilt series %s: %d images from %s', tsId, n, path)
        outSet.setAcquisition(acq)
        outSet.write()
        self._defineOutputs(**{constants.OUTPUT_TILT_SERIES: outSet})

    # ---------------------------------------------------------------- info
    def _validate(self):
        errors = []
        stacks = self._stacks()
        if not stacks:
            return ['No file matches %s in %s.' % (self.filesPattern.get(),
                                                   self.filesPath.get())]
        for path in stacks:
            try:
                n = mrc_info(path).shape[0]
                self._angles(path, n)
            except ValueError as exc:
                errors.append(str(exc))
        if not self.samplingRate.get() > 0:
            errors.append('The pixel size must be > 0, got %s.' % self.samplingRate.get())
        return errors

    def _summary(self):
        if not hasattr(self, constants.OUTPUT_TILT_SERIES):
            return ['Output not ready yet.']
        out = getattr(self, constants.OUTPUT_TILT_SERIES)
        return ['%d tilt series from %s (%s).' % (out.getSize(), self.filesPath.get(),
                                                  self.filesPattern.get())]
