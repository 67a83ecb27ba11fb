"""GUI wizards: pick mask radii on a preview of the input (pwem's mask preview dialogs).

Bound to the cryoprocs apply-mask forms through ``_targets``; the dialog shows the first
particles/volume of the input with the mask drawn on it.
"""
from pwem.constants import UNIT_PIXEL
from pwem.wizards import (ParticleMaskRadiusWizard, ParticlesMaskRadiiWizard,
                          VolumeMaskRadiiWizard, VolumeMaskRadiusWizard)

from .protocols import ProtCryoprocsApplyMask2D, ProtCryoprocsApplyMask3D


class _InputMixin:
    """Provider and show() shared by the four wizards: the input is the protocol's input
    particles or volumes, values are in px."""
    _inputAttr = None

    def _getProvider(self, protocol):
        return self._getListProvider(getattr(protocol, self._inputAttr))

    def show(self, form, *args, **kwargs):
        label, value = self._getInputProtocol(self._targets, form.protocol)
        super().show(form, value, label, UNIT_PIXEL)


class CryoprocsParticleMaskRadiusWizard(_InputMixin, ParticleMaskRadiusWizard):
    _targets = [(ProtCryoprocsApplyMask2D, ['radius'])]
    _inputAttr = 'inputParticles'


class CryoprocsParticleMaskRadiiWizard(_InputMixin, ParticlesMaskRadiiWizard):
    _targets = [(ProtCryoprocsApplyMask2D, ['innerRadius', 'outerRadius'])]
    _inputAttr = 'inputParticles'


class CryoprocsVolumeMaskRadiusWizard(_InputMixin, VolumeMaskRadiusWizard):
    _targets = [(ProtCryoprocsApplyMask3D, ['radius'])]
    _inputAttr = 'inputVolumes'


class CryoprocsVolumeMaskRadiiWizard(_InputMixin, VolumeMaskRadiiWizard):
    _targets = [(ProtCryoprocsApplyMask3D, ['innerRadius', 'outerRadius'])]
    _inputAttr = 'inputVolumes'
