"""Shared data fixtures (all named data_*): small IDX / WAV files the tests write, the real data."""

from __future__ import annotations

import gzip
import struct
from pathlib import Path

import numpy as np
import pytest
import torch
from scipy.io import wavfile

# One intra-op thread: the suite's models are tiny, and on a 2-core machine shared with other
# processes, OpenMP threads waiting on each other made a training step 50x slower (measured).
torch.set_num_threads(1)

SHARED_DATA = Path(__file__).resolve().parents[1].parent / "shared" / "data"


def write_idx(path: Path, array: np.ndarray, magic: int | None = None, compress: bool = True) -> Path:
    """An IDX file of uint8 ``array`` (gzip when ``compress``)."""
    array = np.asarray(array, dtype=np.uint8)
    magic = magic if magic is not None else (0x0803 if array.ndim == 3 else 0x0801)
    blob = struct.pack(">I", magic) + struct.pack(f">{array.ndim}I", *array.shape) + array.tobytes()
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(gzip.compress(blob) if compress else blob)
    return path


def write_wav(path: Path, samples: np.ndarray, rate: int = 8000) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    wavfile.write(path, rate, samples)
    return path


def make_root(root: Path, n_images: int = 60, speakers=("george", "lucas", "theo"), per_digit: int = 2,
              seed: int = 0) -> Path:
    """ROOT/mnist/t10k-*.gz and ROOT/fsdd/recordings/*.wav, small but well formed."""
    rng = np.random.default_rng(seed)
    images = rng.integers(0, 256, (n_images, 28, 28), dtype=np.uint8)
    labels = np.arange(n_images) % 10
    write_idx(root / "mnist" / "t10k-images-idx3-ubyte.gz", images)
    write_idx(root / "mnist" / "t10k-labels-idx1-ubyte.gz", labels)
    for digit in range(10):
        for speaker in speakers:
            for index in range(per_digit):
                n = int(rng.integers(300, 2000))
                wave = (rng.standard_normal(n) * 3000).clip(-32768, 32767).astype(np.int16)
                write_wav(root / "fsdd" / "recordings" / f"{digit}_{speaker}_{index}.wav", wave)
    return root


@pytest.fixture
def data_write_idx():
    return write_idx


@pytest.fixture
def data_write_wav():
    return write_wav


@pytest.fixture
def data_root(tmp_path: Path) -> Path:
    """A small synthetic data root (60 images, 60 recordings of george/lucas/theo)."""
    return make_root(tmp_path / "root")


@pytest.fixture
def data_shared_root() -> Path:
    """../shared/data (the real MNIST t10k + FSDD v1.0.10), or skip."""
    if not (SHARED_DATA / "mnist").is_dir() or not (SHARED_DATA / "fsdd" / "recordings").is_dir():
        pytest.skip(f"real data not found at {SHARED_DATA}")
    return SHARED_DATA
