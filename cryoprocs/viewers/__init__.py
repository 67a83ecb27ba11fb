"""Viewers of cryoprocs results (only this namespace is scanned by Scipion for viewers).

Every protocol has a cryoprocs viewer (matplotlib in Tk, no ChimeraX or Xmipp needed) that
"Analyze Results" opens; the viewers of other plugins that work in the installation are
offered in it as extra choices. The figures are drawn by :mod:`cryoprocs.plots`.
"""
from .viewer_copick import CryoprocsCopickViewer  # noqa: F401
from .viewer_masks import CryoprocsMask2DViewer, CryoprocsMask3DViewer  # noqa: F401
from .viewer_movie import CryoprocsMovieViewer  # noqa: F401
from .viewer_subtomograms import CryoprocsExtractViewer, CryoprocsReconstructViewer  # noqa: F401
from .viewer_tilt_series import CryoprocsTiltSeriesViewer  # noqa: F401
from .viewer_tomograms import CryoprocsNoiseFillViewer, CryoprocsPeakPickingViewer  # noqa: F401

__all__ = ["CryoprocsCopickViewer", "CryoprocsMask2DViewer", "CryoprocsMask3DViewer", "CryoprocsMovieViewer",
           "CryoprocsExtractViewer", "CryoprocsReconstructViewer", "CryoprocsTiltSeriesViewer",
           "CryoprocsNoiseFillViewer", "CryoprocsPeakPickingViewer"]
