"""Root conftest: a self-contained Scipion environment for the test session.

pyworkflow reads SCIPION_* variables at import time, so they are set here, before any test
module (or cryoprocs itself, whose Plugin imports pwem) is imported. cryoprocs/scipion_env.py is
loaded by file path for the same reason: importing it as ``cryoprocs.scipion_env`` would run
cryoprocs/__init__.py first.
"""
import importlib.util
import logging
import os
import tempfile

_here = os.path.dirname(os.path.abspath(__file__))
_spec = importlib.util.spec_from_file_location(
    "_cryoprocs_scipion_env", os.path.join(_here, "cryoprocs", "scipion_env.py"))
_env = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(_env)

_base = tempfile.mkdtemp(prefix="scipion_pytest_")  # unique per process
_env.apply_scipion_environment(_base)

logging.basicConfig(level=logging.INFO)
