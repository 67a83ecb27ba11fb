"""cryoprocs: a Scipion plugin with fast NumPy/SciPy kernels for cryo-EM and cryo-ET.

Protocols live in :mod:`cryoprocs.protocols`; the array kernels they call live in
:mod:`cryoprocs.kernels` (NumPy/SciPy only); file-format and Scipion<->array conversions in
:mod:`cryoprocs.convert`; the ``cryoprocs`` console command in :mod:`cryoprocs.cli`.
"""
import pwem

__version__ = "0.1.0"
_logo = "cryoprocs_logo.png"
_references = ["cryoprocs2026"]


class Plugin(pwem.Plugin):
    """Pure-Python plugin: no binaries to install, nothing to locate."""

    _url = "https://github.com/cryoprocs/scipion-em-cryoprocs"
    _processingField = ["SPA", "TOMO"]

    @classmethod
    def _defineVariables(cls):
        # Optional tuning only; nothing is required for the plugin to work.
        cls._defineVar("CRYOPROCS_MAX_MEMORY_GB", "0",
                       description="Soft memory budget (GB) for cryoprocs kernels that stream "
                                   "large volumes; 0 = automatic.")

    @classmethod
    def getEnviron(cls):
        return None

    @classmethod
    def defineBinaries(cls, env):
        pass
