"""The paper's data (A.3): MNIST + FSDD -> noisy audio-visual pairs. See ``dataset``."""

from earlyfusion.data.dataset import AudioVisualData, describe, format_description
from earlyfusion.data.pairs import PairSpace

__all__ = ["AudioVisualData", "PairSpace", "describe", "format_description"]
