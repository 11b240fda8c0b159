"""Accuracy over a grid of test SNRs, audio x visual (paper 5.1, 5.2).

Every model is tested on the same fixed test pairs with the same noise: the pairs come from
the eval seed and the noise is keyed by (example, eval seed), so differences between models
are differences between models, not between draws.
"""

from __future__ import annotations

import csv
import itertools
from pathlib import Path
from typing import Any, Iterable

import torch
from tqdm import tqdm

from earlyfusion.atomic import atomic_path
from earlyfusion.checkpoint import checkpoint_config, load_checkpoint
from earlyfusion.config import Config, EvalConfig
from earlyfusion.data.dataset import AudioVisualData
from earlyfusion.models import build_model_from_config
from earlyfusion.runtime import autocast, generator, resolve_device
from earlyfusion.snr import format_snr
from earlyfusion.stats import wilson_interval

COLUMNS = ("run", "fusion", "modality", "train_audio_snr", "train_visual_snr", "seed",
           "test_audio_snr", "test_visual_snr", "n", "correct", "accuracy", "ci_low", "ci_high")


@torch.no_grad()
def count_correct(model, data: AudioVisualData, image_idx, audio_idx, *, audio_snr: float, visual_snr: float,
                  noise_seed: int, batch_size: int, precision: str, device: torch.device) -> int:
    """Correct predictions on the given pairs at one (audio, visual) SNR."""
    model.eval()
    correct = 0
    for start in range(0, len(image_idx), batch_size):
        sl = slice(start, start + batch_size)
        image, spec, label = data.batch(image_idx[sl], audio_idx[sl], audio_snr=audio_snr,
                                        visual_snr=visual_snr, noise_seed=noise_seed)
        with autocast(device, precision):
            logits = model(image, spec)
        correct += int((logits.argmax(-1) == label).sum())
    return correct


def accuracy(model, data, image_idx, audio_idx, **kwargs) -> float:
    return count_correct(model, data, image_idx, audio_idx, **kwargs) / max(len(image_idx), 1)


def fixed_test_pairs(data: AudioVisualData, ecfg: EvalConfig) -> tuple[torch.Tensor, torch.Tensor]:
    """The fixed test subset: the same for every model evaluated under this eval config."""
    space = data.pairs("test")
    if ecfg.examples < 1:
        raise ValueError(f"eval.examples must be >= 1, got {ecfg.examples}")
    return space.sample(min(ecfg.examples, len(space)), generator(torch.device("cpu"), ecfg.seed, "test-pairs"))


def _shared_prefix(specs: torch.Tensor) -> int:
    """Frames identical across every variant of every example; specs (E, R, T, F) -> t0."""
    same = (specs == specs[:, :1]).all(dim=3).all(dim=1)  # (E, T)
    differs = (~same).any(dim=0).nonzero()
    return int(differs[0]) if len(differs) else specs.shape[2]


@torch.no_grad()
def count_correct_audio_sweep(model, data: AudioVisualData, image_idx, audio_idx, *, audio_snrs: list[float],
                              visual_snr: float, noise_seed: int, batch_size: int, precision: str,
                              device: torch.device) -> list[int]:
    """Correct predictions at every audio SNR for one visual SNR, sharing the image-only prefix.

    Frames wholly in the front zero padding are the same for every audio SNR, so for one noisy
    image the time loop runs once up to where audio begins, then branches into one
    continuation per audio SNR (FusionNet.run). Exact: the same logits as separate runs.
    """
    model.eval()
    r = len(audio_snrs)
    order = torch.argsort(data.audio_lengths[audio_idx], descending=True)  # similar starts together
    correct = torch.zeros(r, dtype=torch.long)
    for chunk in order.split(max(1, batch_size // r)):
        image, spec, label = data.batch(image_idx[chunk], audio_idx[chunk], audio_snr=audio_snrs[0],
                                        visual_snr=visual_snr, noise_seed=noise_seed)
        # Image noise is keyed by example, not by audio SNR: the images are built once.
        specs = torch.stack([spec] + [data.spectrogram(audio_idx[chunk], audio_snr=a, noise_seed=noise_seed)
                                      for a in audio_snrs[1:]], dim=1)  # (E, R, T, F)
        t0 = _shared_prefix(specs)
        with autocast(device, precision):
            state = None
            if t0 > 0:
                _, state = model.run(image, specs[:, 0, :t0])
                state = state.repeat_interleave(r)
            rest = specs[:, :, t0:].flatten(0, 1)  # (E*R, T - t0, F), row e*R + k
            logits, _ = model.run(image.repeat_interleave(r, 0), rest, state=state)
        pred = logits.argmax(-1).view(len(chunk), r)
        correct += (pred == label[:, None]).sum(0).cpu()
    return correct.tolist()


def _grid_counts(model, data, img, aud, ecfg: EvalConfig, *, precision, device, progress, share) -> dict:
    """{(audio SNR, visual SNR): correct} over the whole grid."""
    counts = {}
    common = dict(noise_seed=ecfg.seed, batch_size=ecfg.batch_size, precision=precision, device=device)
    if share and hasattr(model, "run") and len(ecfg.audio_snrs) > 1:
        for v in tqdm(ecfg.visual_snrs, desc="evaluate", unit="row", disable=not progress, dynamic_ncols=True):
            sweep = count_correct_audio_sweep(model, data, img, aud, audio_snrs=ecfg.audio_snrs, visual_snr=v, **common)
            counts.update({(a, v): c for a, c in zip(ecfg.audio_snrs, sweep)})
        return counts
    cells = list(itertools.product(ecfg.audio_snrs, ecfg.visual_snrs))
    for a, v in tqdm(cells, desc="evaluate", unit="cell", disable=not progress, dynamic_ncols=True):
        counts[(a, v)] = count_correct(model, data, img, aud, audio_snr=a, visual_snr=v, **common)
    return counts


def evaluate_grid(model, data: AudioVisualData, ecfg: EvalConfig, *, precision: str, device: torch.device,
                  progress: bool = True, share: bool = True) -> list[dict[str, Any]]:
    """One row per (test audio SNR, test visual SNR) cell with counts and a Wilson interval."""
    img, aud = fixed_test_pairs(data, ecfg)
    counts = _grid_counts(model, data, img, aud, ecfg, precision=precision, device=device, progress=progress,
                          share=share)
    rows = []
    for a_snr, v_snr in itertools.product(ecfg.audio_snrs, ecfg.visual_snrs):
        correct = counts[(a_snr, v_snr)]
        lo, hi = wilson_interval(correct, len(img))
        rows.append({"test_audio_snr": format_snr(a_snr), "test_visual_snr": format_snr(v_snr), "n": len(img),
                     "correct": correct, "accuracy": correct / len(img), "ci_low": lo, "ci_high": hi})
    return rows


def run_columns(run: str, cfg: Config) -> dict[str, Any]:
    """The columns that say which model a row belongs to."""
    return {"run": run, "fusion": cfg.model.fusion, "modality": cfg.model.modality,
            "train_audio_snr": format_snr(cfg.train.audio_snr), "train_visual_snr": format_snr(cfg.train.visual_snr),
            "seed": cfg.train.seed}


def write_rows(rows: Iterable[dict[str, Any]], path: Path) -> Path:
    with atomic_path(path) as tmp, open(tmp, "w", newline="") as fh:
        writer = csv.DictWriter(fh, fieldnames=COLUMNS)
        writer.writeheader()
        for row in rows:
            writer.writerow({k: (f"{v:.6g}" if isinstance(v, float) else v) for k, v in row.items()})
    return Path(path)


def load_trained(path: Path, device: torch.device) -> tuple[torch.nn.Module, Config]:
    """A model and its config from a checkpoint (weights_only load)."""
    ckpt = load_checkpoint(path, map_location=device)
    cfg = checkpoint_config(ckpt)
    model = build_model_from_config(cfg.model).to(device)
    model.load_state_dict(ckpt["model"])
    return model.eval(), cfg


def evaluate_checkpoint(path: Path, ecfg: EvalConfig, out: Path, *, data_root: str | None = None,
                        data: AudioVisualData | None = None, device: str = "auto", progress: bool = True) -> Path:
    """Evaluate a checkpoint over ``ecfg``'s grid and write the tidy CSV ``out``."""
    dev = resolve_device(device)
    model, cfg = load_trained(Path(path), dev)
    if data_root is not None:
        cfg.data.root = data_root
    data = data or AudioVisualData.load(cfg.data, device=dev)
    cells = evaluate_grid(model, data, ecfg, precision=cfg.train.precision, device=dev, progress=progress)
    meta = run_columns(Path(path).parent.name, cfg)
    return write_rows(({**meta, **cell} for cell in cells), out)
