"""White noise at a linear SNR, batched; deterministic when keyed (paper A.3).

The paper adds white noise "such that the SNR could be chosen". Per example, SNR =
P_signal / P_noise with P_signal the mean square of the example's real values (the 784
pixels; the recording's samples before padding), so the noise is N(0, P_signal / SNR).
Noise is drawn at unit variance and then scaled, so keyed noise is the same at every SNR.
"""

from __future__ import annotations

import hashlib
import math

import torch

from earlyfusion.snr import parse_snr


def signal_power(x: torch.Tensor, lengths: torch.Tensor | None = None) -> torch.Tensor:
    """Mean square per example of x (B, ...) -> (B,); over ``lengths`` real values if given.

    With front zero-padding the padded zeros add nothing to the sum, so dividing by the
    real length gives the power of the recording itself.
    """
    flat = x.reshape(len(x), -1)
    total = flat.square().sum(1)
    count = lengths.to(flat) if lengths is not None else torch.full_like(total, flat.shape[1])
    return total / count.clamp_min(1)


def tail_mask(lengths: torch.Tensor, total: int) -> torch.Tensor:
    """(B, total) bool, true on the last ``lengths[b]`` positions (the real samples)."""
    pos = torch.arange(total, device=lengths.device)
    return pos.unsqueeze(0) >= (total - lengths).unsqueeze(1)


def _key_seed(seed: int, stream: str, key: int) -> int:
    digest = hashlib.blake2b(f"{stream}:{seed}:{key}".encode(), digest_size=8).digest()
    return int.from_bytes(digest, "little") >> 1  # torch seeds are < 2**63


def keyed_unit_noise(keys: torch.Tensor, lengths: torch.Tensor, total: int, seed: int, stream: str) -> torch.Tensor:
    """(B, total) float32 N(0, 1) noise on each row's last ``lengths[b]`` places, zeros before.

    Row b depends only on (seed, stream, keys[b]) (and its length): never on the batch
    it is in, its position there, the SNR or the device. Drawn on the CPU for that reason.
    """
    out = torch.zeros(len(keys), total)
    gen = torch.Generator()
    for row, (key, n) in enumerate(zip(keys.tolist(), lengths.tolist())):
        gen.manual_seed(_key_seed(seed, stream, key))
        out[row, total - n:] = torch.randn(n, generator=gen)
    return out


def unit_noise(shape: tuple[int, ...], generator: torch.Generator | None, device: torch.device) -> torch.Tensor:
    """N(0, 1) noise from ``generator`` (or the global RNG), on ``device``."""
    gen_device = generator.device if generator is not None else torch.device(device)
    return torch.randn(shape, generator=generator, device=gen_device).to(device)


def add_noise(x: torch.Tensor, snr: float, unit: torch.Tensor, power: torch.Tensor) -> torch.Tensor:
    """x + unit * sqrt(power / snr): white noise at SNR ``snr`` per example. x, unit (B, ...)."""
    snr = parse_snr(snr)
    if math.isinf(snr):
        return x  # "orig": P_signal / inf = 0, exactly no noise
    scale = (power / snr).sqrt().reshape(-1, *([1] * (x.dim() - 1)))
    return x + unit.reshape(x.shape) * scale
