"""White noise at a linear SNR: measured SNR, real samples only, deterministic keyed noise."""

from __future__ import annotations

import math

import pytest
import torch

from earlyfusion.data import noise


@pytest.mark.parametrize("snr", [0.125, 1.0, 4.0])
def test_measured_snr_images(snr):
    g = torch.Generator().manual_seed(0)
    x = torch.rand(2000, 1, 28, 28, generator=g) * torch.rand(2000, 1, 1, 1, generator=g)  # varied power
    power = noise.signal_power(x)
    noisy = noise.add_noise(x, snr, torch.randn(x.shape, generator=g), power)
    measured = power / (noisy - x).square().mean((1, 2, 3))
    # per example within sampling error of 784 values; over many draws within 1%
    assert abs(measured.mean().item() / snr - 1) < 0.02
    assert abs((power.sum() / (noisy - x).square().mean((1, 2, 3)).sum()).item() / snr - 1) < 0.01


@pytest.mark.parametrize("snr", [0.5, 2.0])
def test_measured_snr_audio_on_real_samples_only(snr):
    g = torch.Generator().manual_seed(1)
    total = 3000
    lengths = torch.randint(200, total + 1, (500,), generator=g)
    mask = noise.tail_mask(lengths, total)
    x = torch.randn(500, total, generator=g) * 0.1 * mask  # front-padded recordings
    power = noise.signal_power(x, lengths)
    unit = torch.randn(x.shape, generator=g) * mask
    noisy = noise.add_noise(x, snr, unit, power)
    added = noisy - x
    assert torch.all(added[~mask] == 0)  # padding zeros carry no noise
    noise_power = added.square().sum(1) / lengths
    assert abs((power / noise_power).mean().item() / snr - 1) < 0.03
    assert torch.allclose(power, x.square().sum(1) / lengths)


def test_orig_is_exactly_no_noise():
    x = torch.rand(4, 784)
    assert noise.add_noise(x, math.inf, torch.randn(4, 784), noise.signal_power(x)) is x


@pytest.mark.parametrize("bad", [0, -1.0, float("nan"), "loud"])
def test_bad_snr(bad):
    with pytest.raises(ValueError, match="SNR"):
        noise.add_noise(torch.ones(1, 4), bad, torch.ones(1, 4), torch.ones(1))


def test_keyed_noise_depends_only_on_seed_and_key():
    a = noise.keyed_unit_noise(torch.tensor([5, 9, 2]), torch.tensor([10, 20, 30]), 40, seed=7, stream="audio")
    b = noise.keyed_unit_noise(torch.tensor([2, 5]), torch.tensor([30, 10]), 30, seed=7, stream="audio")
    assert torch.equal(a[0, -10:], b[1, -10:]) and torch.equal(a[2, -30:], b[0])
    assert torch.all(a[0, :30] == 0) and torch.all(a[1, :20] == 0)
    other_seed = noise.keyed_unit_noise(torch.tensor([5]), torch.tensor([10]), 10, seed=8, stream="audio")
    other_stream = noise.keyed_unit_noise(torch.tensor([5]), torch.tensor([10]), 10, seed=7, stream="image")
    assert not torch.equal(other_seed[0], a[0, -10:]) and not torch.equal(other_stream[0], a[0, -10:])
    big = noise.keyed_unit_noise(torch.arange(200), torch.full((200,), 500), 500, seed=0, stream="x")
    assert abs(big.mean().item()) < 0.01 and abs(big.std().item() - 1) < 0.01
