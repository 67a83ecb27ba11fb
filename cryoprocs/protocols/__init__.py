"""Scipion protocols of cryoprocs (only this namespace is scanned by Scipion)."""
from .protocol_base import ProtCryoprocsBase
from .protocol_apply_mask import (ProtCryoprocsApplyMaskBase, ProtCryoprocsApplyMask2D,
                                  ProtCryoprocsApplyMask3D)
from .protocol_export_movie import ProtCryoprocsExportMovie
from .protocol_tilt_series_from_stacks import ProtCryoprocsTiltSeriesFromStacks
from .protocol_import_relion5 import ProtCryoprocsImportRelion5
from .protocol_extract_subtomos import ProtCryoprocsExtractSubtomos
from .protocol_simulate_tilt_series import ProtCryoprocsSimulateTiltSeries
from .protocol_noise_fill import ProtCryoprocsMaskedTomogramNoiseFill
from .protocol_reconstruct import ProtCryoprocsReconstructSubtomoAverage
from .protocol_scores_peak_picking import ProtCryoprocsScoresPeakPicking
from .protocol_import_copick import ProtCryoprocsImportCopick
from .protocol_export_copick import ProtCryoprocsExportCopick
from ..convert.scipion_images import register_zarr_reader as _register_zarr_reader

__all__ = ["ProtCryoprocsBase", "ProtCryoprocsApplyMaskBase", "ProtCryoprocsApplyMask2D",
           "ProtCryoprocsApplyMask3D", "ProtCryoprocsExportMovie",
           "ProtCryoprocsTiltSeriesFromStacks", "ProtCryoprocsImportRelion5",
           "ProtCryoprocsExtractSubtomos", "ProtCryoprocsSimulateTiltSeries",
           "ProtCryoprocsMaskedTomogramNoiseFill", "ProtCryoprocsReconstructSubtomoAverage",
           "ProtCryoprocsScoresPeakPicking", "ProtCryoprocsImportCopick",
           "ProtCryoprocsExportCopick"]


_register_zarr_reader()          # Scipion reads OME-Zarr tomograms' dimensions and slices
