"""Tests of cryoprocs. Shared reference data come from ``../shared/data`` (next to the
checkout) or ``$CRYOPROCS_SHARED_DATA``; tests that need it skip cleanly when it is absent."""
import os

import pytest

_HERE = os.path.dirname(os.path.abspath(__file__))
_DEFAULT_SHARED = os.path.normpath(os.path.join(_HERE, "..", "..", "..", "shared", "data"))


def shared_data_root():
    """The shared data folder, or None when it is not available."""
    root = os.environ.get("CRYOPROCS_SHARED_DATA") or _DEFAULT_SHARED
    return root if os.path.isdir(root) else None


def shared_data(*parts):
    """Path of ``../shared/data/<parts>``; skips the calling test when it is missing."""
    root = shared_data_root()
    if root is None:
        pytest.skip("../shared/data is not available")
    path = os.path.join(root, *parts)
    if not os.path.exists(path):
        pytest.skip("shared data file %s is not available" % path)
    return path
