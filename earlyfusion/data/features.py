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
CHUNK = 32  # examples per spectrogram chunk, sorted by length


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


def first_live_frame(samples: int, longest: int) -> int:
    """First frame that can be non-zero when no real sample lies before ``samples - longest``.

    With front zero-padding, frame t (window [200 t - 200, 200 t + 200) of the signal) is
    all zeros when it ends before the first real sample; those frames need no FFT, and on
    FSDD (median 3,360 of 18,262 samples) they are most of them. One sample of margin keeps
    frame 0's reflect padding (samples 1..200) inside the zeros too.
    """
    gap = samples - longest
    return 0 if gap < HOP + 1 else (gap - HOP - 1) // HOP + 1


def segment_start(t0: int) -> int:
    """First signal sample that frame ``t0`` reads (0 when the left reflect padding is needed)."""
    return 0 if t0 == 0 else HOP * t0 - HOP


def frames_power(segment: torch.Tensor, t0: int) -> torch.Tensor:
    """Power of frames t0..T-1: segment = x[:, segment_start(t0):] (B, S) -> (B, T - t0, 201).

    The same numbers as torch.stft(center=True, pad_mode="reflect") with a periodic Hann
    window (checked against it and scipy in the tests), computed by framing + rfft.
    """
    if segment.shape[1] <= HOP:
        raise ValueError(f"a reflect-padded STFT needs more than {HOP} samples, got {segment.shape[1]}")
    right = segment[:, -HOP - 1:-1].flip(1)  # reflect padding at the end (center=True)
    parts = [segment, right] if t0 else [segment[:, 1:HOP + 1].flip(1), segment, right]
    frames = torch.cat(parts, 1).unfold(1, N_FFT, HOP)  # (B, T - t0, 400), a view
    window = torch.hann_window(N_FFT, periodic=True, device=segment.device, dtype=segment.dtype)
    spec = torch.fft.rfft(frames * window)
    return spec.real.square() + spec.imag.square()


def live_chunks(lengths: torch.Tensor, samples: int, chunk: int = CHUNK):
    """Yield (rows, t0, start) for a batch's examples in chunks of similar length (CPU
    ``lengths``, real samples at the end of rows of ``samples``): frames before t0 lie wholly in
    every row's zero padding, so a chunk computes frames t0.. from samples start.. only."""
    for rows in torch.argsort(lengths, descending=True).split(chunk):
        t0 = first_live_frame(samples, int(lengths[rows].max()))
        yield rows, t0, segment_start(t0)


def power_spectrogram(x: torch.Tensor, lengths: torch.Tensor | None = None, chunk: int = CHUNK) -> torch.Tensor:
    """Waveforms (B, L) -> power spectrogram (B, T, 201), T = 1 + L // 200.

    With ``lengths`` (real samples at the end of each row, zeros before) examples are taken
    in chunks of similar length and the all-zero leading frames are skipped.
    """
    if lengths is None:
        return frames_power(x, 0)
    samples = x.shape[1]
    out = x.new_zeros(len(x), n_frames(samples), BINS)
    for rows, t0, start in live_chunks(lengths.cpu(), samples, chunk):
        rows = rows.to(x.device)
        out[rows, t0:] = frames_power(x[rows, start:], t0)
    return out


def scale_features(power: torch.Tensor, kind: str, floor: float = 1.0, gain: float = 1.0) -> torch.Tensor:
    """'log': gain * log(1 + power / floor), silence stays exactly 0; 'power': gain * power.

    The floor sets where the log starts to compress: FSDD's median spectrogram bin holds a
    power of ~6e-4, far below 1, where log1p is nearly linear. The gain sets the audio input's
    scale against the image's (docs/data.md has the measurements behind both defaults).
    """
    if not floor > 0:
        raise ValueError(f"log floor must be > 0, got {floor!r}")
    if not gain > 0:
        raise ValueError(f"feature gain must be > 0, got {gain!r}")
    if kind == "log":
        return torch.log1p(power / floor).mul_(gain) if gain != 1 else torch.log1p(power / floor)
    if kind == "power":
        return power * gain if gain != 1 else power
    raise ValueError(f"features must be one of {FEATURES}, got {kind!r}")
