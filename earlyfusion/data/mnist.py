"""Read, verify and download MNIST IDX files (paper A.3: the MNIST images, train + test pooled).

Files are checked by content, not by their .gz bytes (the shared copy was recompressed):
the IDX magic, the shape, the sizes, and the decompressed md5 where it is known.
"""

from __future__ import annotations

import gzip
import hashlib
import os
import struct
import zlib
from pathlib import Path

import numpy as np

from earlyfusion.data.download import fetch

MIRROR = "https://ossci-datasets.s3.amazonaws.com/mnist/"
MIRROR_ENV = "EARLYFUSION_MNIST_URL"
PARTS = ("train", "t10k")  # pool order: the 60,000 training images first, then t10k
IMAGE_MAGIC, LABEL_MAGIC = 0x00000803, 0x00000801
CANONICAL_COUNT = {"train": 60_000, "t10k": 10_000}

# md5 of the canonical .gz files (what a download must match) ...
GZ_MD5 = {
    "train-images-idx3-ubyte": "f68b3c2dcbeaaa9fbdd348bbdeb94873",
    "train-labels-idx1-ubyte": "d53e105ee54ea40749a09fcbcd1e9432",
    "t10k-images-idx3-ubyte": "9fb629c4189551a2d022fa330f9573f3",
    "t10k-labels-idx1-ubyte": "ec29112dd5afa0611ce80d1b7f02629c",
}
# ... and of decompressed contents, where known (../shared/data/README.md).
RAW_MD5 = {
    "t10k-images-idx3-ubyte": "2646ac647ad5339dbf082846283269ea",
    "t10k-labels-idx1-ubyte": "27ae3e4e09519cfbb04c329615203637",
}


def _read_bytes(path: Path) -> bytes:
    raw = path.read_bytes()
    if raw[:2] != b"\x1f\x8b":
        return raw
    try:
        return gzip.decompress(raw)
    except (EOFError, OSError, zlib.error) as exc:
        raise ValueError(f"{path}: truncated or corrupt gzip file ({exc})") from None


def read_idx(path: Path, magic: int, item_shape: tuple[int, ...]) -> tuple[np.ndarray, str]:
    """Read one IDX file (gz or raw) as uint8 (N, *item_shape); also return its content md5."""
    path = Path(path)
    data = _read_bytes(path)
    ndim = 1 + len(item_shape)
    header = 4 + 4 * ndim
    if len(data) < header:
        raise ValueError(f"{path}: {len(data)} bytes is too short for an IDX header")
    (found,) = struct.unpack(">I", data[:4])
    if found != magic:
        raise ValueError(f"{path}: IDX magic 0x{found:08x}, expected 0x{magic:08x}")
    dims = struct.unpack(f">{ndim}I", data[4:header])
    if tuple(dims[1:]) != item_shape:
        raise ValueError(f"{path}: IDX item shape {tuple(dims[1:])}, expected {item_shape}")
    size = int(np.prod(dims))
    if len(data) - header != size:
        raise ValueError(f"{path}: {len(data) - header} data bytes, expected {size} for shape {dims}")
    array = np.frombuffer(data, dtype=np.uint8, offset=header).reshape(dims)
    return array, hashlib.md5(data).hexdigest()


def _find(folder: Path, stem: str) -> Path | None:
    for name in (stem + ".gz", stem):
        if (folder / name).is_file():
            return folder / name
    return None


def _check_md5(path: Path, stem: str, md5: str, count: int, part: str) -> None:
    # Only a file that claims to be the canonical one (its full count) is held to its md5.
    if stem in RAW_MD5 and count == CANONICAL_COUNT[part] and md5 != RAW_MD5[stem]:
        raise ValueError(f"{path}: content md5 {md5}, expected {RAW_MD5[stem]} (canonical MNIST {part})")


def read_part(folder: Path, part: str) -> tuple[np.ndarray, np.ndarray, list[str]] | None:
    """Images (N, 28, 28) uint8 and labels (N,) int64 of one part, or None when absent."""
    img_stem, lab_stem = f"{part}-images-idx3-ubyte", f"{part}-labels-idx1-ubyte"
    img_path, lab_path = _find(folder, img_stem), _find(folder, lab_stem)
    if img_path is None and lab_path is None:
        return None
    if img_path is None or lab_path is None:
        missing = img_stem if img_path is None else lab_stem
        raise FileNotFoundError(f"{folder}: {missing}[.gz] is missing (its partner file is present)")
    images, img_md5 = read_idx(img_path, IMAGE_MAGIC, (28, 28))
    labels, lab_md5 = read_idx(lab_path, LABEL_MAGIC, ())
    if len(images) != len(labels):
        raise ValueError(f"{lab_path}: {len(labels)} labels, expected {len(images)} (one per image)")
    if labels.size and labels.max() > 9:
        raise ValueError(f"{lab_path}: label {int(labels.max())} outside 0-9")
    _check_md5(img_path, img_stem, img_md5, len(images), part)
    _check_md5(lab_path, lab_stem, lab_md5, len(labels), part)
    return images, labels.astype(np.int64), [img_path.name, lab_path.name]


def load_mnist(folder: Path) -> tuple[np.ndarray, np.ndarray, list[str]]:
    """Pool every MNIST part present in ``folder``: train (60,000) then t10k (10,000)."""
    folder = Path(folder)
    if not folder.is_dir():
        raise FileNotFoundError(f"MNIST folder {folder} does not exist (expected IDX files there)")
    parts = [p for p in (read_part(folder, part) for part in PARTS) if p is not None]
    if not parts:
        raise FileNotFoundError(
            f"{folder}: no MNIST files; expected train- and/or t10k-{{images-idx3,labels-idx1}}-ubyte[.gz]")
    images = np.concatenate([p[0] for p in parts])
    labels = np.concatenate([p[1] for p in parts])
    return images, labels, [name for p in parts for name in p[2]]


def download_mnist(folder: Path, base_url: str | None = None) -> None:
    """Fetch the four canonical .gz files that are not yet in ``folder`` (md5-checked)."""
    base = base_url or os.environ.get(MIRROR_ENV) or MIRROR
    for stem, md5 in GZ_MD5.items():
        dest = Path(folder) / f"{stem}.gz"
        if not dest.exists():
            fetch(base.rstrip("/") + f"/{stem}.gz", dest, md5=md5)
