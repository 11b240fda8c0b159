"""Seeded 8:1:1 split of each dataset and the split manifest (paper A.3).

Paper A.3: "each dataset was split into train, test and validation sets in the ratio
8:1:1". Its pair counts are not exact multiples, so the split was random, not stratified;
``stratified=True`` is offered as an option. The manifest lists every item of every split,
so a run can be audited and repeated; its sha256 identifies the data a model saw.
"""

from __future__ import annotations

import hashlib
import json
from pathlib import Path
from typing import Any

import numpy as np

from earlyfusion.atomic import atomic_path

SPLITS = ("train", "val", "test")
MANIFEST_VERSION = 1
_STREAM = {"mnist": 0, "fsdd": 1}  # independent permutations per dataset from one seed


def split_sizes(n: int) -> dict[str, int]:
    """train : test : val = 8 : 1 : 1, test and val rounded, train the rest."""
    tenth = round(n / 10)
    return {"train": n - 2 * tenth, "test": tenth, "val": tenth}


def _cut(order: np.ndarray) -> dict[str, np.ndarray]:
    sizes = split_sizes(len(order))
    a, b = sizes["train"], sizes["train"] + sizes["test"]
    return {"train": order[:a], "test": order[a:b], "val": order[b:]}


def split_indices(labels: np.ndarray, seed: int, dataset: str, stratified: bool = False) -> dict[str, np.ndarray]:
    """Sorted global indices of each split, from a permutation seeded by (seed, dataset)."""
    labels = np.asarray(labels)
    rng = np.random.default_rng([seed, _STREAM[dataset]])
    if not stratified:
        parts = _cut(rng.permutation(len(labels)))
    else:
        per_class = [_cut(rng.permutation(np.flatnonzero(labels == c))) for c in np.unique(labels)]
        parts = {s: np.concatenate([p[s] for p in per_class]) for s in SPLITS}
    return {s: np.sort(parts[s]).astype(np.int64) for s in SPLITS}


def build_manifest(settings: dict[str, Any], mnist_files: list[str], mnist_splits: dict[str, np.ndarray],
                   fsdd_names: list[str], fsdd_splits: dict[str, np.ndarray]) -> dict[str, Any]:
    """A JSON-ready record of which image and recording is in which split."""
    return {
        "version": MANIFEST_VERSION,
        "settings": settings,
        "mnist": {"files": mnist_files, "splits": {s: mnist_splits[s].tolist() for s in SPLITS}},
        "fsdd": {"names": fsdd_names, "splits": {s: fsdd_splits[s].tolist() for s in SPLITS}},
    }


def manifest_hash(manifest: dict[str, Any]) -> str:
    blob = json.dumps(manifest, sort_keys=True, separators=(",", ":")).encode()
    return hashlib.sha256(blob).hexdigest()


def save_manifest(manifest: dict[str, Any], path: Path) -> Path:
    """Write the manifest as JSON atomically (temporary file, then rename)."""
    with atomic_path(path) as tmp, open(tmp, "w") as fh:
        json.dump(manifest, fh, sort_keys=True)
    return Path(path)


def load_manifest(path: Path) -> dict[str, Any]:
    manifest = json.loads(Path(path).read_text())
    if manifest.get("version") != MANIFEST_VERSION:
        raise ValueError(f"{path}: manifest version {manifest.get('version')!r}, expected {MANIFEST_VERSION}")
    return manifest
