"""The C-LSTM fusion model family (paper A.1, A.2, Figure 5); see docs/model.md."""

from earlyfusion.models.clstm import GATES, ConvLSTM
from earlyfusion.models.fusion import (
    FUSION_LEVELS,
    MODALITIES,
    FusionNet,
    FusionState,
    build_model,
    build_model_from_config,
    parse_fusion,
)

__all__ = [
    "FUSION_LEVELS",
    "GATES",
    "MODALITIES",
    "ConvLSTM",
    "FusionNet",
    "FusionState",
    "build_model",
    "build_model_from_config",
    "parse_fusion",
]
