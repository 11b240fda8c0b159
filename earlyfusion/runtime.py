"""Where and in what precision a model runs: device choice and autocast."""

from __future__ import annotations

import contextlib
import hashlib

import torch

PRECISIONS = ("fp32", "bf16")


def resolve_device(name: str) -> torch.device:
    """'auto' picks CUDA when present; an unavailable CUDA device is an error, not a fallback."""
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    device = torch.device(name)
    if device.type == "cuda" and not torch.cuda.is_available():
        raise ValueError(f"device {name!r} asked for, but CUDA is not available")
    return device


def set_threads(threads: int | None) -> None:
    """Intra-op threads for this process; None keeps torch's default (one per core).

    On a small CPU shared with other processes, fewer threads can be much faster: OpenMP
    threads spin-wait on each other (measured: a small model's step 50x slower with 2 threads
    on a loaded 2-core machine; BENCHMARKS.md).
    """
    if threads is None:
        return
    if threads < 1:
        raise ValueError(f"threads must be >= 1, got {threads}")
    torch.set_num_threads(threads)


def autocast(device: torch.device, precision: str, *, cache: bool = True) -> contextlib.AbstractContextManager:
    """bf16 autocast on CPU or CUDA; fp32 runs as is. ``cache=False`` for work captured in a
    CUDA graph (PyTorch asks for it with make_graphed_callables; the cast then lives in the graph)."""
    if precision not in PRECISIONS:
        raise ValueError(f"precision must be one of {PRECISIONS}, got {precision!r}")
    if precision == "fp32":
        return contextlib.nullcontext()
    return torch.autocast(device_type=device.type, dtype=torch.bfloat16, cache_enabled=cache)


def preferred_memory_format(device: torch.device) -> torch.memory_format:
    """Channels-last on CUDA (tensor cores read NHWC); NCHW on CPU (the whole model measured
    as fast or faster there, docs/model.md)."""
    return torch.channels_last if device.type == "cuda" else torch.contiguous_format


def can_compile_for(device: torch.device) -> bool:
    """Whether torch.compile's GPU backend (Triton) is there for this CUDA device; the fused
    cell is used on CUDA only (on the CPU it measured no faster, BENCHMARKS.md)."""
    if device.type != "cuda":
        return False
    from torch.utils._triton import has_triton

    return has_triton()


def configure_backends(device: torch.device) -> None:
    """On CUDA, let cuDNN pick the fastest algorithm per shape (every batch has the same shapes)."""
    if device.type == "cuda":
        torch.backends.cudnn.benchmark = True


def derived_seed(*parts: object) -> int:
    """A 63-bit seed from any tuple of parts: (seed, 'noise', epoch, batch) etc.

    Each batch's randomness comes from its own seed rather than one running generator, so a
    resumed run draws exactly what the uninterrupted run would have drawn.
    """
    digest = hashlib.sha256("/".join(map(str, parts)).encode()).digest()
    return int.from_bytes(digest[:8], "little") & (2**63 - 1)


def generator(device: torch.device, *parts: object) -> torch.Generator:
    g = torch.Generator(device=device)
    g.manual_seed(derived_seed(*parts))
    return g
