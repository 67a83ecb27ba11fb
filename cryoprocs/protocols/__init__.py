"""Scipion protocols of cryoprocs (only this namespace is scanned by Scipion)."""
from .protocol_base import ProtCryoprocsBase
from .protocol_apply_mask import (ProtCryoprocsApplyMaskBase, ProtCryoprocsApplyMask2D,
                                  ProtCryoprocsApplyMask3D)
from .protocol_noise_fill import ProtCryoprocsMaskedTomogramNoiseFill
