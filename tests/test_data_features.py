"""Padding and the power spectrogram, checked against an independent scipy computation."""

from __future__ import annotations

import numpy as np
import pytest
import scipy.fft
import scipy.signal
import torch

from earlyfusion.data import features


def scipy_power_spectrogram(x: np.ndarray) -> np.ndarray:
    """(L,) -> (T, 201): reflect-pad 200 each side, periodic Hann 400, hop 200, |rfft|^2."""
    padded = np.pad(x.astype(np.float64), 200, mode="reflect")
    window = scipy.signal.get_window("hann", 400, fftbins=True)  # periodic
    starts = range(0, len(padded) - 400 + 1, 200)
    frames = np.stack([padded[s:s + 400] * window for s in starts])
    return np.abs(scipy.fft.rfft(frames, axis=1)) ** 2


def test_frames_at_paper_length():
    assert features.n_frames(18_262) == 92 and features.BINS == 201


def test_matches_scipy_on_a_signal():
    rng = np.random.default_rng(0)
    t = np.arange(5_000) / 8000
    x = (0.3 * np.sin(2 * np.pi * 440 * t) + 0.05 * rng.standard_normal(len(t))).astype(np.float32)
    ours = features.power_spectrogram(torch.from_numpy(x)[None])[0].double().numpy()
    ref = scipy_power_spectrogram(x)
    assert ours.shape == ref.shape == (26, 201)
    np.testing.assert_allclose(ours, ref, rtol=1e-4, atol=1e-4 * ref.max())
    # the tone's energy sits in bin 440 Hz / (8000 Hz / 400) = 22
    assert ours.mean(0).argmax() == 22


def test_skipping_padding_frames_changes_nothing():
    rng = np.random.default_rng(1)
    total = 6_000
    lengths = [total, total - 200, total - 201, 1_234, 300, 401]
    waves = [rng.standard_normal(n).astype(np.float32) for n in lengths]
    x, lens, truncated = features.pad_front(waves, total)
    assert truncated == 0
    full = features.power_spectrogram(x)
    fast = features.power_spectrogram(x, lens, chunk=2)
    np.testing.assert_allclose(fast, full, rtol=1e-5, atol=1e-6 * full.max().item())
    for row, wave in enumerate(waves):
        np.testing.assert_allclose(full[row].numpy(), scipy_power_spectrogram(x[row].numpy()),
                                   rtol=1e-3, atol=1e-4 * full.max().item())


def test_pad_front_puts_samples_at_the_end_and_truncates():
    waves = [np.array([1, 2, 3], np.float32), np.array([4, 5, 6, 7, 8, 9], np.float32)]
    x, lens, truncated = features.pad_front(waves, None)
    assert x.tolist() == [[0, 0, 0, 1, 2, 3], [4, 5, 6, 7, 8, 9]] and lens.tolist() == [3, 6]
    x, lens, truncated = features.pad_front(waves, 4)
    assert x.tolist() == [[0, 1, 2, 3], [4, 5, 6, 7]] and lens.tolist() == [3, 4] and truncated == 1


def test_feature_scaling():
    power = torch.tensor([0.0, 1.0, 100.0])
    assert features.scale_features(power, "power") is power
    np.testing.assert_allclose(features.scale_features(power, "log"), np.log1p([0.0, 1.0, 100.0]))
    assert features.scale_features(power, "log")[0] == 0  # silence stays exactly 0
    with pytest.raises(ValueError, match="features must be one of"):
        features.scale_features(power, "mel")


def test_log_floor_sets_where_the_log_compresses():
    power = torch.tensor([0.0, 1e-3, 1.0])
    scaled = features.scale_features(power, "log", floor=1e-2)
    np.testing.assert_allclose(scaled, np.log1p(np.array([0.0, 1e-3, 1.0]) / 1e-2), rtol=1e-6)
    assert scaled[0] == 0  # silence (and the zero padding) stays exactly 0 at any floor
    for bad in (0.0, -1.0, float("nan")):
        with pytest.raises(ValueError, match="log floor"):
            features.scale_features(power, "log", floor=bad)


def test_feature_gain_scales_and_keeps_silence_zero():
    power = torch.tensor([0.0, 1e-3, 1.0])
    np.testing.assert_allclose(features.scale_features(power, "log", gain=20.0), 20 * np.log1p([0.0, 1e-3, 1.0]),
                               rtol=1e-6)
    assert features.scale_features(power, "log", gain=20.0)[0] == 0
    np.testing.assert_allclose(features.scale_features(power, "power", gain=3.0), 3 * power.numpy())
    with pytest.raises(ValueError, match="gain"):
        features.scale_features(power, "log", gain=0.0)
