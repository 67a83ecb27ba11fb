"""ImportRelion5: a RELION 5 tomography project into Scipion (tilt series, CTF, coordinates).

Reads ``tomograms.star`` with its per-tilt-series STAR files and, optionally,
``particles.star`` (convert/relion5.py) and registers a ``SetOfTiltSeries`` (tilt angles,
acquisition order, per-tilt pre-exposure and dose, 2D alignment transforms), a
``SetOfCTFTomoSeries`` and a ``SetOfCoordinates3D`` with orientations. RELION quantities
Scipion has no field for are kept as extra attributes (convert/relion5_scipion.py), so
ExtractSubtomos writes the project back with RELION's exact values. Does not use tomo's
ProtImportTs (sqlite lock, docs/scipion-notes.md).
"""
import json
import logging
import math
import os

import mrcfile
import numpy as np
import pandas as pd
import pyworkflow.protocol.params as params
from pyworkflow import BETA
from pyworkflow.object import Pointer, String
from pyworkflow.protocol.constants import LEVEL_ADVANCED, STEPS_SERIAL
from tomo.objects import SetOfCoordinates3D, SetOfCTFTomoSeries, SetOfTiltSeries, SetOfTomograms

from .. import constants
from ..convert import relion5
from ..convert.images import image_info
from ..convert import relion5_scipion
from ..convert.scipion import set_relion_orientation
from .protocol_base import ProtCryoprocsBase
from .texts import link, plural

logger = logging.getLogger(__name__)

#: largest placeholder tomogram dimension (px) when no reconstructed tomogram exists
PLACEHOLDER_MAX_DIM = 512


class ProtCryoprocsImportRelion5(ProtCryoprocsBase):
    """Import a RELION 5 tomography project: tilt series with their alignment, doses and
    CTFs from tomograms.star, and (optionally) oriented particle coordinates from
    particles.star. Files are referenced in place."""
    _label = 'import relion 5 project'
    _devStatus = BETA
    _possibleOutputs = {constants.OUTPUT_TILT_SERIES: SetOfTiltSeries,
                        constants.OUTPUT_CTF_SERIES: SetOfCTFTomoSeries,
                        constants.OUTPUT_COORDINATES: SetOfCoordinates3D,
                        constants.OUTPUT_TOMOGRAMS: SetOfTomograms}
    stepsExecutionMode = STEPS_SERIAL          # one quick step

    def __init__(self, **kwargs):
        super().__init__(**kwargs)
        self.importReport = String()

    # ================================================================= form
    def _defineParams(self, form):
        form.addSection(label='Input')
        form.addParam('tomogramsFile', params.FileParam, important=True,
                      label='tomograms.star',
                      help='RELION 5 tomograms.star (data_global, one row per tilt series) '
                           'with rlnTomoTiltSeriesStarFile pointing at the per-tilt-series '
                           'STAR files (rlnMicrographName, rlnTomoYTilt, rlnTomoZRot, '
                           'rlnTomoX/YShiftAngst, rlnDefocusU/V/Angle, '
                           'rlnMicrographPreExposure).')
        form.addParam('particlesFile', params.FileParam, allowsNull=True,
                      label='particles.star (optional)',
                      help='RELION 5 particles.star: rlnCenteredCoordinateX/Y/ZAngst (or '
                           'RELION 4 rlnCoordinateX/Y/Z in unbinned tilt-series px), '
                           'rlnAngleRot/Tilt/Psi and rlnTomoSubtomogramRot/Tilt/Psi. Empty: '
                           'only tilt series and CTFs are imported.')
        form.addParam('projectDir', params.FolderParam, allowsNull=True,
                      label='RELION project directory',
                      help='Folder the paths inside the STAR files are relative to (RELION '
                           'runs from it). Empty: the folder of tomograms.star or the first '
                           'of its parents in which the tilt-series STAR files exist.')
        form.addParam('inputTomograms', params.PointerParam, pointerClass='SetOfTomograms',
                      allowsNull=True, label='Tomograms (optional)',
                      help='Tomograms the coordinates refer to (matched by tsId = '
                           'rlnTomoName); their sampling rate becomes the coordinates\' '
                           'sampling rate. Empty: the rlnTomoReconstructedTomogram files of '
                           'tomograms.star are registered, or, without them, empty '
                           'placeholder tomograms of the RELION tomogram size (sparse files, '
                           'no disk space) so that Scipion can hold the coordinates.')
        form.addParam('boxSize', params.IntParam, default=64, expertLevel=LEVEL_ADVANCED,
                      label='Coordinates box size (px)',
                      help='Box size recorded in the SetOfCoordinates3D (for display), in '
                           'px at the coordinates\' sampling rate.')

    # ================================================================= steps
    def _insertAllSteps(self):
        self._insertFunctionStep(self.importStep, needsGPU=False)

    def _tomogramsStar(self):
        return os.path.abspath(self.tomogramsFile.get())

    def _particlesStar(self):
        return os.path.abspath(self.particlesFile.get()) if self.particlesFile.get() else None

    def _relionProjectDir(self, tomograms=None):
        if self.projectDir.get():
            return os.path.abspath(self.projectDir.get())
        return relion5.guess_project_dir(self._tomogramsStar(), tomograms)

    def importStep(self):
        from pwem.objects import Transform
        from tomo.objects import CTFTomo, CTFTomoSeries, TiltImage, TiltSeries, TomoAcquisition

        glob = relion5.read_tomograms(self._tomogramsStar())
        project = self._relionProjectDir(glob)
        series = []
        for _, row in glob.iterrows():
            ts = relion5.load_tilt_series(row, project)
            if ts.projection_from_old_matrices:
                raise relion5.Relion5Error("tilt series %s uses RELION 4 projection matrices "
                                           "(rlnTomoProjX/Y/Z/W), which Scipion tilt series cannot "
                                           "hold; run it through RELION 5 first" % ts.name)
            series.append(ts)
        pss = sorted({round(ts.pixel_size, 6) for ts in series})
        if len(pss) > 1:
            raise relion5.Relion5Error("tilt series with different pixel sizes %s A cannot form "
                                       "one SetOfTiltSeries" % pss)
        ps = series[0].pixel_size

        tsSet = SetOfTiltSeries.create(self._getPath(), template='tiltseries%s.sqlite')
        tsSet.setSamplingRate(ps)
        setAcq = self._acquisition(series[0], TomoAcquisition)
        tsSet.setAcquisition(setAcq)
        report = {"tilt_series": [], "project_dir": project}
        tsObjs = {}
        for ts in series:
            tsObj = TiltSeries(tsId=ts.name)
            tsObj.setSamplingRate(ps)
            tsAcq = self._acquisition(ts, TomoAcquisition)
            tsObj.setAcquisition(tsAcq)
            tsObj.setAnglesCount(ts.n_frames)
            for k in relion5_scipion.TS_ATTRS:
                relion5_scipion.set_attr(tsObj, k, self._tsValue(ts, k))
            relion5_scipion.set_attr(tsObj, "rlnTomoTiltSeriesStarFile", ts.star_file)
            tsSet.append(tsObj)
            orders = relion5_scipion.acquisition_orders(ts.pre_exposure)
            doses = relion5_scipion.doses_per_tilt(ts.pre_exposure)
            tab = ts.table
            for f, (path, index) in enumerate(ts.frames):
                ti = TiltImage(location=(index + 1, path), tsId=ts.name,
                               tiltAngle=float(tab["rlnTomoYTilt"].iloc[f]),
                               acquisitionOrder=int(orders[f]))
                ti.setSamplingRate(ps)
                acq = tsAcq.clone()
                acq.setDoseInitial(float(ts.pre_exposure[f]))
                acq.setDosePerFrame(float(doses[f]))
                acq.setAccumDose(float(ts.pre_exposure[f] + doses[f]))
                ti.setAcquisition(acq)
                zrot = float(tab["rlnTomoZRot"].iloc[f])
                sx = float(tab["rlnTomoXShiftAngst"].iloc[f])
                sy = float(tab["rlnTomoYShiftAngst"].iloc[f])
                ti.setTransform(Transform(relion5_scipion.ti_matrix_from_relion(zrot, sx, sy, ps)))
                relion5_scipion.set_attr(ti, "rlnTomoXTilt", float(tab["rlnTomoXTilt"].iloc[f])
                                         if "rlnTomoXTilt" in tab.columns else 0.0)
                relion5_scipion.set_attr(ti, "rlnTomoZRot", zrot)
                relion5_scipion.set_attr(ti, "rlnTomoXShiftAngst", sx)
                relion5_scipion.set_attr(ti, "rlnTomoYShiftAngst", sy)
                relion5_scipion.set_attr(ti, "rlnMicrographPreExposure", float(ts.pre_exposure[f]))
                tsObj.append(ti)
            tsSet.update(tsObj)
            tsObjs[ts.name] = tsObj
            report["tilt_series"].append({"tsId": ts.name, "tilts": ts.n_frames,
                                          "max_pre_exposure": float(ts.pre_exposure.max())})
        tsSet.write()
        self._defineOutputs(**{constants.OUTPUT_TILT_SERIES: tsSet})

        ctfSet = SetOfCTFTomoSeries.create(self._getPath(), template='CTFmodels%s.sqlite')
        ctfSet.setSetOfTiltSeries(Pointer(self, extended=constants.OUTPUT_TILT_SERIES))
        for ts in series:
            ctfSeries = CTFTomoSeries(tsId=ts.name)
            ctfSeries.setTiltSeries(tsObjs[ts.name])
            ctfSeries.setTsId(ts.name)
            ctfSet.append(ctfSeries)
            orders = relion5_scipion.acquisition_orders(ts.pre_exposure)
            for f in range(ts.n_frames):
                ctf = CTFTomo(index=f + 1, acqOrder=int(orders[f]))
                ctf.setDefocusU(float(ts.defocus_u[f]))
                ctf.setDefocusV(float(ts.defocus_v[f]))
                ctf.setDefocusAngle(float(ts.defocus_angle[f]))
                ctf.setPhaseShift(float(ts.phase_shift[f]))
                relion5_scipion.set_attr(ctf, "rlnCtfScalefactor", float(ts.ctf_scale[f]))
                relion5_scipion.set_attr(ctf, "rlnCtfBfactor", float(ts.ctf_bfactor[f]))
                ctfSeries.append(ctf)
            ctfSet.update(ctfSeries)
        ctfSet.write()
        self._defineOutputs(**{constants.OUTPUT_CTF_SERIES: ctfSet})
        self._defineSourceRelation(ctfSet, tsSet)

        if self._particlesStar():
            report["particles"] = self._importCoordinates(glob, series, project,
                                                          SetOfCoordinates3D)
        self.importReport.set(json.dumps(report))
        self._store(self.importReport)

    # ---------------------------------------------------------------- helpers
    @staticmethod
    def _tsValue(ts, label):
        row = ts.global_row
        if label == "rlnTomoHand":
            return float(ts.hand)
        if label == "rlnTomoDefocusSlope":
            return float(ts.defocus_slope)
        if label == "rlnCtfBfactorPerElectronDose":
            return float(ts.bfactor_per_dose)
        if label in ("rlnTomoSizeX", "rlnTomoSizeY", "rlnTomoSizeZ"):
            size = ts.tomo_size or (relion5_scipion.MISSING,) * 3
            return int(size["XYZ".index(label[-1])])
        if label == "rlnOpticsGroupName":
            v = row.get(label)
            return str(v) if v is not None and not (isinstance(v, float) and math.isnan(v)) \
                else "optics1"
        if label == "rlnMicrographOriginalPixelSize":
            v = row.get(label)
            return float(v) if v is not None and pd.notna(v) else float(ts.pixel_size)
        raise KeyError(label)

    @staticmethod
    def _acquisition(ts, TomoAcquisition):
        acq = TomoAcquisition()
        acq.setVoltage(ts.voltage)
        acq.setSphericalAberration(ts.cs)
        acq.setAmplitudeContrast(ts.amplitude_contrast)
        acq.setMagnification(10000.0)
        tilts = ts.table["rlnTomoYTilt"].to_numpy(dtype=np.float64)
        acq.setAngleMin(float(tilts.min()))
        acq.setAngleMax(float(tilts.max()))
        if len(tilts) > 1:
            acq.setStep(float(np.round(np.mean(np.diff(np.sort(tilts))), 3)))
        doses = relion5_scipion.doses_per_tilt(ts.pre_exposure)
        acq.setDosePerFrame(float(np.mean(doses)))
        acq.setAccumDose(float((ts.pre_exposure + doses).max()))
        acq.setDoseInitial(float(ts.pre_exposure.min()))
        if "rlnTomoNominalTiltAxisAngle" in ts.table.columns:
            acq.setTiltAxisAngle(float(ts.table["rlnTomoNominalTiltAxisAngle"].iloc[0]))
        else:
            acq.setTiltAxisAngle(float(ts.table["rlnTomoZRot"].iloc[0]))
        return acq

    def _tomograms(self, glob, series, project):
        """``({tsId: Tomogram clone}, precedents pointer or set, sampling rate, note)``."""
        from tomo.objects import Tomogram
        if self.inputTomograms.get() is not None:
            tomos = {t.getTsId(): t.clone() for t in self.inputTomograms.get()}
            return tomos, self.inputTomograms, self.inputTomograms.get().getSamplingRate(), \
                "the input tomograms"
        ps = series[0].pixel_size
        rows = {str(r["rlnTomoName"]): r for _, r in glob.iterrows()}
        real = all(pd.notna(rows[ts.name].get("rlnTomoReconstructedTomogram", np.nan))
                   for ts in series)
        tomoSet = SetOfTomograms.create(self._getPath(), template='tomograms%s.sqlite')
        bins = []
        for ts in series:
            row = rows[ts.name]
            b = row.get("rlnTomoTomogramBinning", np.nan)
            if real:
                path = relion5.resolve(row["rlnTomoReconstructedTomogram"], project)
                b = float(b) if pd.notna(b) else None
                if b is None:              # MRC header or OME-Zarr metadata
                    b = float(image_info(path).voxel_size[0]) / ps
            else:
                size = ts.tomo_size if ts.tomo_size and min(ts.tomo_size) > 0 else \
                    (ts.image_size[0], ts.image_size[1], max(2, min(ts.image_size) // 4))
                b = float(b) if pd.notna(b) else float(max(1, math.ceil(
                    max(size) / float(PLACEHOLDER_MAX_DIM))))
                dims = tuple(max(1, int(round(s / b))) for s in size)
                path = self._getExtraPath("placeholder_tomograms", ts.name + ".mrc")
                os.makedirs(os.path.dirname(path), exist_ok=True)
                if not os.path.exists(path):
                    m = mrcfile.new_mmap(path, shape=dims[::-1], mrc_mode=2, overwrite=True)
                    m.voxel_size = ps * b
                    m.close()
            bins.append(b)
        if len({round(b, 4) for b in bins}) > 1:
            raise relion5.Relion5Error("tomograms with different binnings %s cannot form one set"
                                       % sorted(set(bins)))
        sr = ps * bins[0]
        tomoSet.setSamplingRate(sr)
        for ts in series:
            row = rows[ts.name]
            path = relion5.resolve(row["rlnTomoReconstructedTomogram"], project) if real else \
                self._getExtraPath("placeholder_tomograms", ts.name + ".mrc")
            tomo = Tomogram(location=path)
            tomo.setTsId(ts.name)
            tomo.setSamplingRate(sr)
            tomo.setOrigin()
            tomoSet.append(tomo)
        tomoSet.write()
        self._defineOutputs(**{constants.OUTPUT_TOMOGRAMS: tomoSet})
        tomos = {t.getTsId(): t.clone() for t in tomoSet}
        note = "rlnTomoReconstructedTomogram files" if real else \
            "empty placeholder tomograms (no reconstructed tomogram in tomograms.star)"
        return tomos, tomoSet, sr, note

    def _importCoordinates(self, glob, series, project, SetOfCoordinates3D):
        from tomo.constants import CENTER_GRAVITY
        from tomo.objects import Coordinate3D

        ptable = relion5.read_particles(self._particlesStar())
        optics, parts = relion5.build_optics(ptable.optics, ptable.particles, glob)
        psOf = relion5.optics_pixel_sizes(optics)
        tomos, precedents, sr, note = self._tomograms(glob, series, project)
        coordSet = SetOfCoordinates3D.create(self._getPath(), template='coordinates%s.sqlite')
        coordSet.setPrecedents(precedents)
        coordSet.setSamplingRate(sr)
        coordSet.setBoxSize(self.boxSize.get())
        columns = list(ptable.particles.columns)
        setattr(coordSet, relion5_scipion.COORD_SET_COLUMNS_ATTR, String(",".join(columns)))
        if len(ptable.optics):
            setattr(coordSet, relion5_scipion.COORD_SET_OPTICS_ATTR,
                    String(ptable.optics.to_json(orient="records")))
        byName = {ts.name: ts for ts in series}
        skipped = {}
        n = 0
        kinds = {c: ptable.particles[c].dtype.kind for c in columns}
        passthrough = [c for c in columns if c not in ("rlnTomoName",) + tuple(
            relion5.CENTERED_COLUMNS) + tuple(relion5.PIXEL_COLUMNS)]
        for i, row in parts.iterrows():
            t = row["rlnTomoName"]
            if t not in byName or t not in tomos:
                skipped[t] = skipped.get(t, 0) + 1
                continue
            ts = byName[t]
            og = int(row["rlnOpticsGroup"]) if "rlnOpticsGroup" in row else 1
            pps = psOf.get(og, ts.pixel_size)
            pos = relion5.particle_positions(parts.iloc[[i]], pps, ts.tomo_size,
                                             apply_offsets=False)[0]
            cen = (pos - ts.centre()) * pps
            coord = Coordinate3D()
            coord.setVolume(tomos[t])
            coord.setPosition(*(cen / sr), CENTER_GRAVITY)
            rot, tilt, psi = relion5_scipion.coordinate_orientation_from_row(row)
            set_relion_orientation(coord, rot, tilt, psi)
            for c in passthrough:
                v = row[c]
                if kinds[c] in "iu":
                    v = int(v)
                elif kinds[c] == "f":
                    v = float(v)
                else:
                    v = str(v)
                relion5_scipion.set_attr(coord, c, v)
            coordSet.append(coord)
            n += 1
        coordSet.write()
        self._defineOutputs(**{constants.OUTPUT_COORDINATES: coordSet})
        self._defineSourceRelation(self.outputTiltSeries, coordSet)
        return {"imported": n, "skipped_by_tomogram": skipped, "tomograms": note,
                "sampling_rate": sr}

    # ================================================================= info
    def _validate(self):
        errors = []
        path = self.tomogramsFile.get()
        if not path or not os.path.exists(path):
            return ['tomograms.star not found: %s' % path]
        swapped = self._swappedStarFiles()
        if swapped:
            return [swapped]
        try:
            glob = relion5.read_tomograms(path)
        except ValueError as exc:
            return [str(exc)]
        project = self._relionProjectDir(glob)
        for _, row in glob.iterrows():
            f = row.get("rlnTomoTiltSeriesStarFile")
            if f is None or not os.path.exists(relion5.resolve(f, project)):
                errors.append("tomogram %s: tilt-series STAR file %s not found in the RELION "
                              "project directory %s" % (row["rlnTomoName"], f, project))
        pf = self.particlesFile.get()
        if pf:
            if not os.path.exists(pf):
                errors.append("particles.star not found: %s" % pf)
            else:
                try:
                    parts = relion5.read_particles(pf).particles
                    names = set(glob["rlnTomoName"])
                    if not set(parts["rlnTomoName"]) & names:
                        errors.append("no particle of %s belongs to a tomogram of %s (particle "
                                      "tomograms: %s; tomograms: %s)"
                                      % (pf, path, ", ".join(sorted(set(parts["rlnTomoName"]))[:8]),
                                         ", ".join(sorted(names)[:8])))
                    else:
                        errors += self._inputTomogramErrors(parts, names)
                except ValueError as exc:
                    errors.append(str(exc))
        return errors

    def _swappedStarFiles(self):
        """One line when tomograms.star and particles.star are given the wrong way round
        (or a particles.star as tomograms.star), else None."""
        kinds = []
        for f in (self.tomogramsFile.get(), self.particlesFile.get()):
            try:
                kinds.append(relion5.star_kind(f) if f and os.path.exists(f) else (None, 0))
            except ValueError:
                kinds.append((None, 0))
        (tk, tn), (pk, pn) = kinds
        if tk == "particles" and pk == "tomograms":
            return ("tomograms.star and particles.star are given the wrong way round: %s "
                    "holds %d particles and %s holds %d tilt series; swap them."
                    % (self.tomogramsFile.get(), tn, self.particlesFile.get(), pn))
        if tk == "particles":
            return ("%s holds %d particles, not tilt series: give the RELION 5 tomograms.star "
                    "(rlnTomoTiltSeriesStarFile) as tomograms.star and this file as "
                    "particles.star." % (self.tomogramsFile.get(), tn))
        if pk == "tomograms":
            return ("%s holds %d tilt series (rlnTomoTiltSeriesStarFile), not particles: give "
                    "a RELION 5 particles.star, or leave it empty to import the tilt series "
                    "only." % (self.particlesFile.get(), pn))
        return None

    def _inputTomogramErrors(self, parts, names):
        """The input tomograms must hold the tomograms of the particles (matched by tsId)."""
        tomos = self.inputTomograms.get()
        if tomos is None:
            return []
        tomoIds = {str(t.getTsId()) for t in tomos.iterItems()}
        wanted = set(parts["rlnTomoName"]) & names
        if tomoIds & wanted:
            return []
        return ['No tomogram of the input tomograms matches the particles\' tomograms by '
                'tsId (input tomograms: %s; particle tomograms in tomograms.star: %s): no '
                'coordinate would be imported.'
                % (", ".join(sorted(tomoIds)[:8]) or "none", ", ".join(sorted(wanted)[:8]))]

    def _summary(self):
        if not self.importReport.get():
            return ['Output not ready yet.']
        rep = json.loads(self.importReport.get())
        lines = ['%d tilt series imported from %s (RELION project directory %s):'
                 % (len(rep["tilt_series"]), link(self._tomogramsStar()), rep["project_dir"])]
        for t in rep["tilt_series"]:
            lines.append('  %s: %s, pre-exposure up to %.1f e/Å²'
                         % (t["tsId"], plural(t["tilts"], 'tilt'), t["max_pre_exposure"]))
        p = rep.get("particles")
        if p:
            lines.append('%s imported (coordinates at %.3f Å/px, referred to %s).'
                         % (plural(p["imported"], 'particle'), p["sampling_rate"],
                            p["tomograms"]))
            if p["skipped_by_tomogram"]:
                lines.append('Skipped particles of tomograms without tilt series: %s'
                             % ", ".join("%s (%d)" % kv for kv in
                                         sorted(p["skipped_by_tomogram"].items())))
        return lines

    def _methods(self):
        if not self.importReport.get():
            return []
        return ['A RELION 5 tomography project [Burt2024] was imported into Scipion with '
                'cryoprocs [cryoprocs2026].']

    def _citations(self):
        return ['Burt2024']
