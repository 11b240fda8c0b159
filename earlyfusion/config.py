"""Typed run configuration: dataclasses loaded from YAML plus dotted overrides.

Unknown keys and wrong types are errors, so a typo in a config never silently falls
back to a default. The resolved config is saved with every run and checkpoint.
"""

from __future__ import annotations

import contextlib

import copy
import dataclasses
import math
import types
import typing
from dataclasses import asdict, dataclass, field, fields
from pathlib import Path
from typing import Any

import yaml

from earlyfusion.snr import format_snr, parse_snr

# The test grid (paper 5.1: "a grid of 10 x 10 including orig"). The paper's axes are not
# printed in its text; we use orig plus nine octave steps that cover every training SNR it
# names (2 ... 0.125) with room on both sides.
PAPER_TEST_SNRS = ("orig", 8, 4, 2, 1, 0.5, 0.25, 0.125, 0.0625, 0.03125)


@dataclass
class DataConfig:
    root: str | None = None  # None: $EARLYFUSION_DATA, else the download cache
    fsdd_version: str = "v1.0.9"  # speaker preset; v1.0.9 is the paper's data (SPEC.md)
    split_seed: int = 0
    stratified: bool = False
    audio_samples: int | None = None  # padded length; None: the longest recording (18,262)
    features: str = "log"  # "log": log(1 + power / log_floor); "power": the raw power spectrogram
    log_floor: float = 1.0
    feature_gain: float = 1.0  # multiplies the features; padding stays exactly 0
    download: bool = True


@dataclass
class ModelConfig:
    fusion: str = "initial"  # "initial" | "second" | "fc" | a layer number "1".."layers"
    modality: str = "both"  # "both" | "audio" | "visual" (paper 5.3: the other input is zero)
    hidden: int = 64
    kernel: int = 3
    layers: int = 2
    dense: int = 128


@dataclass
class TrainConfig:
    audio_snr: float = 0.5
    visual_snr: float = 0.25
    pairs: int = 87_516  # paper A.2
    epochs: int = 1
    batch_size: int = 32
    lr: float = 1e-3  # paper A.2: Adam, 0.001
    schedule: str = "constant"  # "constant" (the paper) | "cosine": lr decays to 0 over the run
    seed: int = 0
    precision: str = "bf16"  # "bf16" (autocast) | "fp32"
    device: str = "auto"  # "auto" | "cpu" | "cuda" | "cuda:N"
    val_pairs: int = 1_000
    checkpoint_every: int = 200  # optimizer steps between checkpoints
    cuda_graphs: bool = True  # on CUDA: each training step replayed from one CUDA graph (graphs.py)
    cuda_fused_cell: bool = True  # on CUDA: the gate arithmetic compiled (torch.compile, models/clstm.py)


@dataclass
class EvalConfig:
    audio_snrs: list[float] = field(default_factory=lambda: [parse_snr(s) for s in PAPER_TEST_SNRS])
    visual_snrs: list[float] = field(default_factory=lambda: [parse_snr(s) for s in PAPER_TEST_SNRS])
    examples: int = 200  # test pairs per grid cell
    seed: int = 0  # fixes the test subset and its noise: every model sees identical inputs
    batch_size: int = 256


@dataclass
class Config:
    data: DataConfig = field(default_factory=DataConfig)
    model: ModelConfig = field(default_factory=ModelConfig)
    train: TrainConfig = field(default_factory=TrainConfig)
    eval: EvalConfig = field(default_factory=EvalConfig)

    def to_dict(self) -> dict[str, Any]:
        return _to_plain(asdict(self))


SNR_FIELDS = {"audio_snr", "visual_snr", "audio_snrs", "visual_snrs"}


def _to_plain(obj: Any) -> Any:
    if isinstance(obj, dict):
        return {k: _to_plain(v) for k, v in obj.items()}
    if isinstance(obj, list):
        return [_to_plain(v) for v in obj]
    if isinstance(obj, float) and math.isinf(obj):
        return format_snr(obj)
    return obj


def _coerce(name: str, value: Any, hint: Any) -> Any:
    """Check ``value`` against the type ``hint``; SNR fields also accept 'orig'."""
    if name.rsplit(".", 1)[-1] in SNR_FIELDS:
        if isinstance(value, list):
            return [parse_snr(v) for v in value]
        return parse_snr(value)
    origin = typing.get_origin(hint)
    if origin in (typing.Union, types.UnionType):
        if value is None and type(None) in typing.get_args(hint):
            return None
        for arg in typing.get_args(hint):
            if arg is type(None):
                continue
            with contextlib.suppress(ValueError):
                return _coerce(name, value, arg)
        raise ValueError(f"{name}: {value!r} fits none of {hint}")
    if origin is list:
        if not isinstance(value, list):
            raise ValueError(f"{name}: expected a list, got {value!r}")
        (item,) = typing.get_args(hint)
        return [_coerce(name, v, item) for v in value]
    if hint is float and isinstance(value, int) and not isinstance(value, bool):
        return float(value)
    if hint is str and isinstance(value, int) and not isinstance(value, bool):
        return str(value)  # e.g. `fusion: 1` in YAML
    if not isinstance(value, hint) or (hint is int and isinstance(value, bool)):
        raise ValueError(f"{name}: expected {hint.__name__}, got {value!r}")
    return value


def _apply(obj: Any, values: dict[str, Any], where: str) -> None:
    hints = typing.get_type_hints(type(obj))
    known = {f.name for f in fields(obj)}
    for key, value in values.items():
        path = f"{where}.{key}" if where else key
        if key not in known:
            raise ValueError(f"unknown config key {path!r}; known: {sorted(known)}")
        current = getattr(obj, key)
        if dataclasses.is_dataclass(current):
            if not isinstance(value, dict):
                raise ValueError(f"{path}: expected a mapping, got {value!r}")
            _apply(current, value, path)
        else:
            setattr(obj, key, _coerce(path, value, hints[key]))


def parse_override(text: str) -> tuple[str, Any]:
    """'train.pairs=3000' -> ('train.pairs', 3000); the value is read as YAML."""
    if "=" not in text:
        raise ValueError(f"override {text!r} is not of the form section.key=value")
    key, raw = text.split("=", 1)
    return key.strip(), yaml.safe_load(raw)


def _nest(dotted: str, value: Any) -> dict[str, Any]:
    out: dict[str, Any] = value
    for part in reversed(dotted.split(".")):
        out = {part: out}
    return out


def _merge(into: dict[str, Any], extra: dict[str, Any]) -> None:
    for key, value in extra.items():
        if isinstance(value, dict) and isinstance(into.get(key), dict):
            _merge(into[key], value)
        else:
            into[key] = value


def apply_overrides(base: dict[str, Any] | None, overrides: list[str] | tuple[str, ...] = ()) -> dict[str, Any]:
    """A deep copy of ``base`` with 'section.key=value' overrides merged in."""
    out = copy.deepcopy(base or {})
    for text in overrides:
        _merge(out, _nest(*parse_override(text)))
    return out


def build_config(base: dict[str, Any] | None = None, overrides: list[str] | tuple[str, ...] = ()) -> Config:
    """A Config from defaults, then a mapping (e.g. a YAML file), then overrides."""
    cfg = Config()
    _apply(cfg, apply_overrides(base, overrides), "")
    return cfg


def load_config(path: str | Path | None = None, overrides: list[str] | tuple[str, ...] = ()) -> Config:
    base = {}
    if path is not None:
        with open(path) as fh:
            base = yaml.safe_load(fh) or {}
        if not isinstance(base, dict):
            raise ValueError(f"{path}: expected a mapping at the top level")
    return build_config(base, overrides)


def save_config(cfg: Config, path: str | Path) -> None:
    Path(path).write_text(yaml.safe_dump(cfg.to_dict(), sort_keys=False))


def config_from_dict(plain: dict[str, Any]) -> Config:
    """Inverse of ``Config.to_dict`` (used when loading a checkpoint)."""
    return build_config(plain)
