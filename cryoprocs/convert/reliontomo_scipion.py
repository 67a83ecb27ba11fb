"""scipion-em-reliontomo's pseudo-subtomograms <-> RELION 5 projects (optional plugin; imports
pyworkflow, pwem and reliontomo lazily, inside functions).

* :func:`pseudo_subtomograms_from_project` builds a ``RelionSetOfPseudoSubtomograms`` (the
  input of every RELION 5 protocol of scipion-em-reliontomo: refinement, initial model,
  classification, reconstruction, CTF refinement, frame alignment) from the RELION project an
  extraction wrote, with reliontomo's own API: ``objects.createSetOfRelionPSubtomograms``
  (optimisation set, coordinates, tilt-series sampling, binning, box, acquisition) then
  ``convert.readSetOfPseudoSubtomograms`` (one ``RelionPSubtomogram`` per row of the
  optimisation set's particles.star). Each item also gets the Scipion ``Coordinate3D`` it was
  extracted at, so the coordinates travel with the particles through RELION.
* :func:`pseudo_subtomogram_rows` maps the items of such a set (ours, or a RELION refinement's
  output) back to RELION 5 particles.star rows, as scipion-em-reliontomo 4.0.5
  ``convert50_tomo.Writer.pseudoSubtomograms2Star`` writes them for RELION: the subtomogram
  orientation and origin from the item's transform at the set's sampling rate (checked
  equal to reliontomo's ``getTransformInfoFromCoordOrSubtomo``, shifts included), the particle
  angles from its ``rot/tilt/psi``, the centred position in Å, the half set.
"""
from __future__ import annotations

import logging
import os
from types import ModuleType
from typing import TYPE_CHECKING, Any, Iterable

import numpy as np

if TYPE_CHECKING:
    from pyworkflow.object import Pointer
    from reliontomo.objects import RelionPSubtomogram, RelionSetOfPseudoSubtomograms
    from tomo.objects import Coordinate3D, TomoAcquisition

from . import relion5
from .scipion import scipion_matrix_to_relion

__all__ = ["reliontomo_modules", "is_pseudo_subtomogram_set",
           "pseudo_subtomograms_from_project", "pseudo_subtomogram_rows",
           "pseudo_subtomogram_project"]

logger = logging.getLogger(__name__)


def reliontomo_modules() -> tuple[tuple[ModuleType, ModuleType] | None, str | None]:
    """``((objects, convert), None)``: the modules of scipion-em-reliontomo when the plugin is
    installed and registered (its Plugin variables defined), else ``(None, reason)``.

    reliontomo's package hides its own import errors (``reliontomo/__init__.py`` wraps its
    Plugin in ``try/except``), so a broken installation shows up here as a missing
    ``reliontomo.Plugin``; the reason is returned for the protocol's log.
    """
    try:
        from pwem import Domain
        Domain.getPlugins()                    # registers reliontomo (defines its variables)
        import reliontomo
        if not hasattr(reliontomo, "Plugin"):
            return None, "reliontomo is installed but its Plugin failed to load " \
                         "(scipion-em-relion or scipion-app missing?)"
        import reliontomo.convert as convert
        import reliontomo.objects as objects
    except ImportError as exc:
        return None, "scipion-em-reliontomo is not installed (%s)" % exc
    except Exception as exc:              # a plugin that fails at import: say why, go on
        return None, "scipion-em-reliontomo cannot be loaded: %s: %s" % (
            type(exc).__name__, exc)
    return (objects, convert), None


def is_pseudo_subtomogram_set(obj: Any) -> bool:
    """True for scipion-em-reliontomo's ``RelionSetOfPseudoSubtomograms`` (checked by its
    methods, so that no reliontomo import is needed)."""
    return obj is not None and all(hasattr(obj, m) for m in (
        "getTomogramsStar", "getParticlesStar", "getRelionBinning", "areRe5Particles"))


class _AttachCoordinates:
    """The set reliontomo's reader fills, seen through this wrapper: every pseudo-subtomogram
    it appends gets the ``Coordinate3D`` of its ``rlnTomoParticleName`` first (the reader
    takes coordinates only from Scipion columns of the STAR file, which RELION's own
    particles.star has not). Everything else goes to the set."""

    def __init__(self, pset, coordinates):
        self._pset = pset
        self._coordinates = coordinates
        self.attached = 0

    def append(self, item):
        coord = self._coordinates.get(str(item.getRelionParticleName()))
        if coord is not None:
            item.setCoordinate3D(coord)
            self.attached += 1
        self._pset.append(item)

    def __getattr__(self, name):
        return getattr(self._pset, name)


def pseudo_subtomograms_from_project(protocol_path: str, optimisation_set: str,
                                     coordinates_pointer: Pointer, ts_sampling_rate: float,
                                     binning: float, box_size: int,
                                     acquisition: TomoAcquisition,
                                     coordinates: dict[str, Coordinate3D] | None = None,
                                     template: str | None = None
                                     ) -> tuple[RelionSetOfPseudoSubtomograms, int]:
    """A filled ``RelionSetOfPseudoSubtomograms`` of 2D stacks, made with reliontomo's API.

    Parameters
    ----------
    protocol_path : str
        run folder the set's sqlite goes to.
    optimisation_set : str
        ``optimisation_set.star`` of the extraction (its particles.star and tomograms.star
        paths are resolved from the current directory, i.e. the Scipion project, as
        RELION does).
    coordinates_pointer : pyworkflow.object.Pointer
        to the extraction's ``SetOfCoordinates3D`` (a Pointer of its own: sharing a form's
        Pointer object breaks the protocol's final store).
    ts_sampling_rate : float
        tilt-series pixel size (Å/px); the set's sampling rate is this x ``binning``.
    binning : float
        RELION ``--bin`` of the stacks.
    box_size : int
        side of the stacks' images in px (RELION ``--crop``).
    acquisition : tomo.objects.TomoAcquisition
        of the tilt series (reliontomo adds the optics table of the particles.star).
    coordinates : dict, optional
        ``{rlnTomoParticleName: Coordinate3D}`` attached to the items.
    template : str, optional
        sqlite name template (reliontomo's default when None).

    Returns
    -------
    (set, n_attached) : the set (written) and the number of items given a coordinate.

    Raises
    ------
    RuntimeError
        scipion-em-reliontomo is not available (the reason in the message).
    """
    mods, reason = reliontomo_modules()
    if mods is None:
        raise RuntimeError(reason)
    objects, convert = mods
    kw = {} if template is None else {"template": template}
    pset = objects.createSetOfRelionPSubtomograms(
        protocol_path, optimisation_set, coordinates_pointer,
        tsSamplingRate=float(ts_sampling_rate), relionBinning=float(binning),
        boxSize=int(box_size), are2dStacks=True, acquisition=acquisition, **kw)
    filler = _AttachCoordinates(pset, coordinates or {})
    convert.readSetOfPseudoSubtomograms(filler)
    pset.write()
    return pset, filler.attached


def pseudo_subtomogram_project(pset: RelionSetOfPseudoSubtomograms,
                               project_dir: str) -> tuple[str | None, str | None]:
    """``(particles.star, tomograms.star)`` of a pseudo-subtomogram set, absolute (paths
    stored relative to the Scipion project are resolved against ``project_dir``); an entry
    is None when the set has none."""
    def absolute(p):
        if not p:
            return None
        p = str(p)
        return p if os.path.isabs(p) else os.path.join(project_dir, p)
    return absolute(pset.getParticlesStar()), absolute(pset.getTomogramsStar())


def pseudo_subtomogram_rows(items: Iterable[RelionPSubtomogram],
                            sampling_rate: float) -> list[dict[str, Any]]:

    """RELION 5 particles.star rows (list of dict) of pseudo-subtomograms.

    Parameters
    ----------
    items : iterable of reliontomo ``RelionPSubtomogram``
        enabled items (clones), e.g. of a refinement's output set.
    sampling_rate : float
        the set's sampling rate (Å/px): the items' transform shifts are in its pixels.

    Returns
    -------
    list of dict
        ``rlnTomoName``, ``rlnTomoParticleName``, ``rlnCenteredCoordinateX/Y/ZAngst``
        (the item's position in Å from the tomogram centre), ``rlnTomoSubtomogramRot/Tilt/Psi``
        and ``rlnOriginX/Y/ZAngst`` (its transform: reliontomo stores the matrix of the STAR
        row as it is, so its exact inverse gives back RELION's values, the same values
        reliontomo's writer sends to RELION), ``rlnAngleRot/Tilt/Psi`` (its particle angles),
        ``rlnRandomSubset`` and ``rlnOpticsGroup``.
    """
    rows = []
    for item in items:
        T = item.getTransform()
        M = T.getMatrix() if T is not None else None
        if M is None:
            sub, origin = (0.0, 0.0, 0.0), np.zeros(3)
        else:
            sub, origin = scipion_matrix_to_relion(M, sampling_rate)
        row = {"rlnTomoName": str(item.getTsId()),
               "rlnTomoParticleName": str(item.getRelionParticleName()),
               "rlnCenteredCoordinateXAngst": float(item.getXInImg() or 0.0),
               "rlnCenteredCoordinateYAngst": float(item.getYInImg() or 0.0),
               "rlnCenteredCoordinateZAngst": float(item.getZInImg() or 0.0)}
        for c, v in zip(relion5.SUBTOMO_COLUMNS, sub):
            row[c] = float(v)
        for c, v in zip(relion5.ORIGIN_COLUMNS, origin):
            row[c] = float(v)
        for c, v in zip(relion5.ANGLE_COLUMNS, (item.getRot(), item.getTilt(), item.getPsi())):
            row[c] = float(v or 0.0)
        row["rlnRandomSubset"] = int(item.getRdnSubset() or 0)
        row["rlnOpticsGroup"] = int(item.getOpticsGroupId() or 1)
        rows.append(row)
    return rows
