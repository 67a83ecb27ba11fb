"""cryoprocs: a Scipion plugin with fast NumPy/SciPy kernels for cryo-EM and cryo-ET.

Protocols live in :mod:`cryoprocs.protocols`; the array kernels they call live in
:mod:`cryoprocs.kernels` (NumPy/SciPy only); file-format and Scipion<->array conversions in
:mod:`cryoprocs.convert`; the ``cryoprocs`` console command in :mod:`cryoprocs.cli`.

The Scipion ``Plugin`` class is created on first access (PEP 562 module ``__getattr__``):
Scipion's plugin discovery reads ``cryoprocs.Plugin`` as usual, while the console command
and the kernels do not import pwem/pyworkflow (about 0.3 s and the Scipion configuration
per call).
"""
__version__ = "0.1.0"
_logo = "cryoprocs_logo.png"
_references = ["cryoprocs2026"]


def _make_plugin_class():
    import pwem

    class Plugin(pwem.Plugin):
        """Pure-Python plugin: no binaries to install, nothing to locate."""

        _url = "https://github.com/cryoprocs/scipion-em-cryoprocs"
        _processingField = ["SPA", "TOMO"]

        @classmethod
        def _defineVariables(cls):
            pass            # nothing to configure: no binaries, no paths

        @classmethod
        def getEnviron(cls):
            return None

        @classmethod
        def defineBinaries(cls, env):
            pass

    Plugin.__module__ = __name__
    Plugin.__qualname__ = "Plugin"
    return Plugin


def __getattr__(name):
    if name == "Plugin":
        cls = globals()["Plugin"] = _make_plugin_class()
        return cls
    raise AttributeError("module %r has no attribute %r" % (__name__, name))
