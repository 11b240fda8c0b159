"""Read and download the Free Spoken Digit Dataset (paper A.3; SPEC.md "Which FSDD").

``recordings/{digit}_{speaker}_{index}.wav``: 8 kHz, mono, 16-bit PCM, read as float32 in
[-1, 1]. Speaker presets select a tagged release: ``v1.0.9`` (no ``lucas``, 2,500 recordings,
the one the paper's pair counts fit) and ``v1.0.10`` (all 3,000).
"""

from __future__ import annotations

import os
import re
import shutil
import tarfile
import tempfile
import warnings
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from scipy.io import wavfile

from earlyfusion.data.download import fetch, replace_dir

SAMPLE_RATE = 8000
ARCHIVE = "https://github.com/Jakobovski/free-spoken-digit-dataset/archive/refs/tags/v1.0.10.tar.gz"
ARCHIVE_ENV = "EARLYFUSION_FSDD_URL"
PRESETS = {
    "v1.0.9": ("george", "jackson", "nicolas", "theo", "yweweler"),
    "v1.0.10": ("george", "jackson", "lucas", "nicolas", "theo", "yweweler"),
}
NAME = re.compile(r"^(\d+)_([A-Za-z]+)_(\d+)\.wav$")


@dataclass
class Recordings:
    """The FSDD pool in a fixed order (digit, speaker, index)."""

    names: list[str]
    labels: np.ndarray  # (M,) int64
    speakers: list[str]
    waves: list[np.ndarray]  # M float32 arrays in [-1, 1], lengths vary


def parse_name(path: Path) -> tuple[int, str, int]:
    """(digit, speaker, index) from ``{digit}_{speaker}_{index}.wav``."""
    match = NAME.match(Path(path).name)
    if match is None:
        raise ValueError(f"{path}: file name is not of the form {{digit}}_{{speaker}}_{{index}}.wav")
    digit = int(match.group(1))
    if not 0 <= digit <= 9:
        raise ValueError(f"{path}: label {digit} outside 0-9")
    return digit, match.group(2), int(match.group(3))


def read_wav(path: Path) -> np.ndarray:
    """One recording as float32 (L,) in [-1, 1]; 8 kHz mono 16-bit or a ValueError."""
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", wavfile.WavFileWarning)
            rate, data = wavfile.read(path)
    except (ValueError, EOFError, OSError) as exc:
        if isinstance(exc, FileNotFoundError):
            raise
        raise ValueError(f"{path}: not a readable WAV file ({exc})") from None
    if rate != SAMPLE_RATE:
        raise ValueError(f"{path}: sample rate {rate} Hz, expected {SAMPLE_RATE} Hz")
    if data.ndim != 1:
        raise ValueError(f"{path}: {data.shape[1]} channels, expected mono")
    if data.dtype != np.int16:
        raise ValueError(f"{path}: sample type {data.dtype}, expected 16-bit PCM")
    if data.size == 0:
        raise ValueError(f"{path}: empty recording (0 samples)")
    return data.astype(np.float32) / 32768.0


def list_recordings(folder: Path, version: str) -> list[tuple[tuple[int, str, int], Path]]:
    """Sorted ((digit, speaker, index), path) of the preset's speakers in ``folder``."""
    if version not in PRESETS:
        raise ValueError(f"unknown FSDD version {version!r}; expected one of {sorted(PRESETS)}")
    folder = Path(folder)
    if not folder.is_dir():
        raise FileNotFoundError(f"FSDD folder {folder} does not exist (expected recordings/*.wav)")
    keyed = [(parse_name(p), p) for p in folder.iterdir() if p.suffix.lower() == ".wav"]
    chosen = sorted(kp for kp in keyed if kp[0][1] in PRESETS[version])
    if not chosen:
        raise FileNotFoundError(f"{folder}: no recordings of the {version} speakers {PRESETS[version]}")
    return chosen


def load_fsdd(folder: Path, version: str = "v1.0.9") -> Recordings:
    """Read every recording of the preset in ``folder`` (the ``recordings`` directory)."""
    chosen = list_recordings(folder, version)
    return Recordings(
        names=[p.name for _, p in chosen],
        labels=np.array([k[0] for k, _ in chosen], dtype=np.int64),
        speakers=[k[1] for k, _ in chosen],
        waves=[read_wav(p) for _, p in chosen],
    )


def _extract_recordings(archive: Path, dest: Path) -> int:
    """Copy ``*/recordings/*.wav`` members of a tar.gz into ``dest`` (names only, no paths)."""
    count = 0
    try:
        with tarfile.open(archive, "r:gz") as tar:
            for member in tar:
                parts = member.name.split("/")
                if member.isfile() and len(parts) >= 2 and parts[-2] == "recordings" and NAME.match(parts[-1]):
                    with tar.extractfile(member) as src, open(dest / parts[-1], "wb") as out:
                        shutil.copyfileobj(src, out)
                    count += 1
    except (tarfile.TarError, EOFError) as exc:
        raise ValueError(f"{archive}: corrupt FSDD archive ({exc})") from None
    return count


def download_fsdd(root: Path, url: str | None = None, md5: str | None = None) -> Path:
    """Fetch the FSDD tag archive and install ``root/recordings`` atomically."""
    root = Path(root)
    target = root / "recordings"
    if target.is_dir():
        return target
    root.mkdir(parents=True, exist_ok=True)
    url = url or os.environ.get(ARCHIVE_ENV) or ARCHIVE
    with tempfile.TemporaryDirectory(dir=root, prefix=".download-") as tmp:
        archive = fetch(url, Path(tmp) / "fsdd.tar.gz", md5=md5)
        staging = Path(tmp) / "recordings"
        staging.mkdir()
        if _extract_recordings(archive, staging) == 0:
            raise ValueError(f"{url}: archive holds no recordings/*.wav")
        replace_dir(staging, target)
    return target
