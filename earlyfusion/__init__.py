"""earlyfusion: early vs late audio-visual fusion in convolutional LSTMs.

Reproduces Barnum, Talukder & Yue (2020), "On the Benefits of Early Fusion in
Multimodal Representation Learning" (arXiv 2011.07191).
"""

__version__ = "0.1.0"
