"""Front zero-padding and the power spectrogram (paper A.3).

Paper A.3: audio is front-padded with zeros to the longest recording, then turned into a
spectrogram with "a window of 400 samples, 201 frequency bins and a stride of 200
samples" -- torchaudio's ``Spectrogram()`` defaults: n_fft 400, periodic Hann window 400,
hop 200, center=True with reflect padding, power 2. torch.stft computes it.
"""

from __future__ import annotations

import numpy as np
import torch

N_FFT, HOP = 400, 200
BINS = N_FFT // 2 + 1  # 201
FEATURES = ("log", "power")


def n_frames(samples: int) -> int:
    """Frames of a centred STFT: 18,262 samples -> 92."""
    return 1 + samples // HOP


def pad_front(waves: list[np.ndarray], length: int | None) -> tuple[torch.Tensor, torch.Tensor, int]:
    """(M, L) float32 with each wave at the end of its row, (M,) real lengths, count truncated.

    ``length`` None: the longest wave. A wave longer than ``length`` keeps its first
    ``length`` samples (and is counted as truncated).
    """
    if length is None:
        length = max(len(w) for w in waves)
    if length < 1:
        raise ValueError(f"audio_samples must be >= 1, got {length}")
    out = torch.zeros(len(waves), length)
    lengths = torch.tensor([min(len(w), length) for w in waves], dtype=torch.int64)
    for row, (wave, n) in enumerate(zip(waves, lengths.tolist())):
        out[row, length - n:] = torch.from_numpy(wave[:n])
    return out, lengths, sum(len(w) > length for w in waves)


def power_spectrogram(x: torch.Tensor) -> torch.Tensor:
    """Waveforms (B, L) -> power spectrogram (B, T, 201), T = 1 + L // 200."""
    window = torch.hann_window(N_FFT, periodic=True, device=x.device, dtype=x.dtype)
    spec = torch.stft(x, N_FFT, hop_length=HOP, win_length=N_FFT, window=window,
                      center=True, pad_mode="reflect", return_complex=True)
    return (spec.real.square() + spec.imag.square()).transpose(1, 2)


def scale_features(power: torch.Tensor, kind: str) -> torch.Tensor:
    """'log': log1p(power), keeps silence exactly 0; 'power': unchanged (SPEC.md calibration)."""
    if kind == "log":
        return torch.log1p(power)
    if kind == "power":
        return power
    raise ValueError(f"features must be one of {FEATURES}, got {kind!r}")
