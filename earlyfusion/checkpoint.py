"""Checkpoints: written atomically, loaded without executing code from the file."""

from __future__ import annotations

import hashlib
import json
import pickle
import subprocess
import zipfile
from functools import lru_cache
from pathlib import Path
from typing import Any

import torch

from earlyfusion import __version__
from earlyfusion.atomic import atomic_path
from earlyfusion.config import Config, config_from_dict

FORMAT = 1
# Sections whose change makes an existing checkpoint belong to another run. eval is free:
# one checkpoint is evaluated under many grids. train.device / checkpoint_every / cuda_* only
# change where, how often and how fast, not what is computed.
_RUN_SECTIONS = ("data", "model", "train")
_FREE_KEYS = {("train", "device"), ("train", "checkpoint_every"), ("train", "cuda_graphs"),
              ("train", "cuda_fused_cell"), ("data", "root"), ("data", "download")}


@lru_cache(maxsize=1)
def code_version() -> str:
    """The package version plus the git commit when running from a checkout."""
    here = Path(__file__).resolve().parent
    try:
        out = subprocess.run(["git", "-C", str(here), "rev-parse", "--short", "HEAD"],
                             capture_output=True, text=True, timeout=5)
        commit = out.stdout.strip() if out.returncode == 0 else ""
    except (OSError, subprocess.SubprocessError):
        commit = ""
    return f"{__version__}+{commit}" if commit else __version__


def save_checkpoint(path: Path, payload: dict[str, Any]) -> None:
    """Write to a temporary file beside ``path``, then rename: never a half-written file."""
    with atomic_path(path) as tmp:
        torch.save({"format": FORMAT, "code_version": code_version(), **payload}, tmp)


def load_checkpoint(path: Path, map_location: str | torch.device = "cpu") -> dict[str, Any]:
    """Load with ``weights_only=True``; a corrupt or foreign file gives a clear error."""
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"checkpoint {path} does not exist")
    try:
        ckpt = torch.load(path, map_location=map_location, weights_only=True)
    except (RuntimeError, pickle.UnpicklingError, zipfile.BadZipFile, EOFError, ValueError) as exc:
        raise ValueError(f"checkpoint {path} is corrupt or not an earlyfusion checkpoint: {exc}") from None
    if not isinstance(ckpt, dict) or ckpt.get("format") != FORMAT or "config" not in ckpt:
        raise ValueError(f"checkpoint {path} is not an earlyfusion checkpoint (format {FORMAT})")
    return ckpt


def checkpoint_config(ckpt: dict[str, Any]) -> Config:
    return config_from_dict(ckpt["config"])


def run_identity(cfg: Config) -> dict[str, dict[str, Any]]:
    """The config keys that define what a run computes (not where or how often it saves)."""
    plain = cfg.to_dict()
    return {section: {k: v for k, v in plain[section].items() if (section, k) not in _FREE_KEYS}
            for section in _RUN_SECTIONS}


def run_digest(cfg: Config) -> str:
    blob = json.dumps(run_identity(cfg), sort_keys=True).encode()
    return hashlib.sha256(blob).hexdigest()[:8]


def config_mismatches(saved: Config, current: Config) -> list[str]:
    """The run-defining keys on which two configs differ, as 'section.key: old -> new'."""
    old, new = run_identity(saved), run_identity(current)
    return [f"{section}.{key}: {old[section].get(key)!r} -> {value!r}"
            for section in _RUN_SECTIONS for key, value in new[section].items()
            if old[section].get(key) != value]


def check_compatible(path: Path, ckpt: dict[str, Any], cfg: Config) -> None:
    diffs = config_mismatches(checkpoint_config(ckpt), cfg)
    if diffs:
        raise ValueError(f"checkpoint {path} was written by another configuration "
                         f"({'; '.join(diffs)}); use another run folder or --restart")
