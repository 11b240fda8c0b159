"""One training run (paper A.2): Adam at 1e-3 on N noisy same-label pairs; resumable.

Every batch's pairs and noise come from seeds derived from (seed, epoch, batch), never from a
running generator, so a run killed and resumed from its last checkpoint ends with exactly the
weights of a run never interrupted.
"""

from __future__ import annotations

import json
import math
import time
import warnings
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch
from tqdm import tqdm

from earlyfusion.checkpoint import check_compatible, load_checkpoint, save_checkpoint
from earlyfusion.config import Config, save_config
from earlyfusion.data.dataset import AudioVisualData
from earlyfusion.evaluate import accuracy
from earlyfusion.graphs import TrainStep, load_optimizer, set_lr
from earlyfusion.models import build_model_from_config
from earlyfusion.runtime import can_compile_for, configure_backends, generator, preferred_memory_format, resolve_device

CHECKPOINT = "checkpoint.pt"


@dataclass
class Plan:
    """Which pairs each optimizer step sees: fixed by the seed alone."""

    image_idx: torch.Tensor  # (N,) global MNIST indices
    audio_idx: torch.Tensor  # (N,) global FSDD indices
    batch_size: int
    epochs: int
    seed: int
    _order: tuple[int, torch.Tensor] | None = field(default=None, repr=False)

    @property
    def steps_per_epoch(self) -> int:
        return math.ceil(len(self.image_idx) / self.batch_size)

    @property
    def total_steps(self) -> int:
        return self.steps_per_epoch * self.epochs

    def order(self, epoch: int) -> torch.Tensor:
        """The epoch's permutation of the N pairs (computed once per epoch)."""
        if self._order is None or self._order[0] != epoch:
            g = generator(torch.device("cpu"), self.seed, "order", epoch)
            self._order = (epoch, torch.randperm(len(self.image_idx), generator=g))
        return self._order[1]

    def batch(self, step: int) -> tuple[torch.Tensor, torch.Tensor]:
        """The image and audio indices of optimizer step ``step``."""
        epoch, b = divmod(step, self.steps_per_epoch)
        take = self.order(epoch)[b * self.batch_size:(b + 1) * self.batch_size]
        return self.image_idx[take], self.audio_idx[take]


def make_plan(data: AudioVisualData, cfg: Config) -> Plan:
    t = cfg.train
    if t.schedule not in SCHEDULES:
        raise ValueError(f"train.schedule must be one of {SCHEDULES}, got {t.schedule!r}")
    if t.pairs < 1 or t.batch_size < 1 or t.epochs < 1:
        raise ValueError(f"train.pairs, batch_size and epochs must be >= 1, got {t.pairs}, {t.batch_size}, {t.epochs}")
    img, aud = data.pairs("train").sample(t.pairs, generator(torch.device("cpu"), t.seed, "train-pairs"))
    return Plan(img, aud, t.batch_size, t.epochs, t.seed)


def validation_pairs(data: AudioVisualData, cfg: Config) -> tuple[torch.Tensor, torch.Tensor]:
    space = data.pairs("val")
    return space.sample(min(cfg.train.val_pairs, len(space)), generator(torch.device("cpu"), cfg.train.seed, "val-pairs"))


def _validate(model, data, cfg: Config, val, device) -> float:
    with model.hand_written_cell():  # its batch sizes would each compile the fused cell anew
        return accuracy(model, data, *val, audio_snr=cfg.train.audio_snr, visual_snr=cfg.train.visual_snr,
                        noise_seed=cfg.train.seed, batch_size=max(cfg.train.batch_size, 128),
                        precision=cfg.train.precision, device=device)


def _state(model, opt, cfg, data, step, metrics, complete) -> dict[str, Any]:
    return {"model": model.state_dict(), "optimizer": opt.state_dict(), "config": cfg.to_dict(),
            "manifest_hash": data.manifest_hash, "step": step, "metrics": metrics, "complete": complete}


def _resume(ckpt_path: Path, cfg: Config, resume: bool) -> dict[str, Any] | None:
    if not (resume and ckpt_path.exists()):
        return None
    ckpt = load_checkpoint(ckpt_path)
    check_compatible(ckpt_path, ckpt, cfg)
    return ckpt


def train(cfg: Config, run_dir: Path, *, resume: bool = True, progress: bool = True,
          data: AudioVisualData | None = None) -> dict[str, Any]:
    """Train one model in ``run_dir``; returns its metrics. A finished run is not retrained."""
    run_dir = Path(run_dir)
    run_dir.mkdir(parents=True, exist_ok=True)
    ckpt_path = run_dir / CHECKPOINT
    ckpt = _resume(ckpt_path, cfg, resume)
    if ckpt is not None and ckpt["complete"]:
        return ckpt["metrics"]
    save_config(cfg, run_dir / "config.yaml")
    device = resolve_device(cfg.train.device)
    data = data or AudioVisualData.load(cfg.data, device=device)
    data.save_manifest(run_dir / "manifest.json")  # the split, for audit and repetition
    configure_backends(device)
    torch.manual_seed(cfg.train.seed)
    model = build_model_from_config(cfg.model).to(device)
    model.memory_format = preferred_memory_format(device)
    model.fused_cell = cfg.train.cuda_fused_cell and can_compile_for(device)
    if cfg.train.cuda_fused_cell and device.type == "cuda" and not model.fused_cell:
        warnings.warn("train.cuda_fused_cell: Triton is not available, the gate arithmetic runs uncompiled",
                      stacklevel=2)
    graphs = cfg.train.cuda_graphs and device.type == "cuda"
    runner = TrainStep.for_classifier(model, cfg.train.precision, cfg.train.lr, graphs=graphs)
    step, metrics = 0, {"history": [], "loss_sum": 0.0, "loss_count": 0, "examples": 0, "train_seconds": 0.0}
    if ckpt is not None:
        if ckpt["manifest_hash"] != data.manifest_hash:
            raise ValueError(f"checkpoint {ckpt_path} was trained on another data split "
                             f"(manifest {ckpt['manifest_hash']} != {data.manifest_hash})")
        model.load_state_dict(ckpt["model"])
        load_optimizer(runner.opt, ckpt["optimizer"])
        step, metrics = ckpt["step"], ckpt["metrics"]
    plan = make_plan(data, cfg)
    val = validation_pairs(data, cfg)
    metrics = _loop(runner, data, cfg, plan, val, step, metrics, device, ckpt_path, progress)
    (run_dir / "train.json").write_text(json.dumps(metrics, indent=2))
    return metrics


SCHEDULES = ("constant", "cosine")


def learning_rate(cfg: Config, step: int, total_steps: int) -> float:
    """The lr of one step, a function of the step alone (so a resumed run matches)."""
    if cfg.train.schedule == "constant":
        return cfg.train.lr
    return 0.5 * cfg.train.lr * (1 + math.cos(math.pi * step / total_steps))


def _step(runner, data, cfg, plan, step, device) -> tuple[torch.Tensor, int]:
    img_idx, aud_idx = plan.batch(step)
    set_lr(runner.opt, learning_rate(cfg, step, plan.total_steps))
    g = generator(device, cfg.train.seed, "noise", step)
    image, spec, label = data.batch(img_idx, aud_idx, audio_snr=cfg.train.audio_snr,
                                    visual_snr=cfg.train.visual_snr, generator=g)
    return runner(image, spec, label), len(label)


# Steps between reads of the loss. Reading it waits for the device; once a step, a GPU idles
# while Python prepares the next batch (~2% of a batch-256 step on an H100, BENCHMARKS.md).
SYNC_EVERY = 16


class _Window:
    """The summed loss, examples and time of the steps since the last read of the device."""

    def __init__(self, device: torch.device):
        self.loss = torch.zeros((), device=device)
        self.examples, self.steps, self.t0 = 0, 0, None

    def start(self) -> None:
        """Start the clock at a window's first step (validation and checkpoints are not training time)."""
        if self.t0 is None:
            self.t0 = time.perf_counter()

    def add(self, loss: torch.Tensor, n: int) -> None:
        self.loss.add_(loss, alpha=n)  # queued on the device, no wait
        self.examples += n
        self.steps += 1

    def flush(self, metrics: dict[str, Any], bar) -> None:
        """Wait for the queued steps and add them to ``metrics``; the clock stops until the next step."""
        if not self.steps:
            return
        loss_sum = self.loss.item()
        dt = time.perf_counter() - self.t0
        metrics["loss_sum"] += loss_sum
        metrics["loss_count"] += self.examples
        metrics["examples"] += self.examples
        metrics["train_seconds"] += dt
        bar.set_postfix(loss=f"{loss_sum / self.examples:.3f}", ex_s=f"{self.examples / dt:.0f}", refresh=False)
        self.loss.zero_()
        self.examples, self.steps, self.t0 = 0, 0, None


def _loop(runner, data, cfg, plan, val, step, metrics, device, ckpt_path, progress):
    model, opt = runner.model, runner.opt
    model.train()
    bar = tqdm(total=plan.total_steps, initial=step, unit="step", disable=not progress,
               desc=f"train {cfg.model.fusion}/{cfg.model.modality}", dynamic_ncols=True)
    window = _Window(device)
    while step < plan.total_steps:
        window.start()
        window.add(*_step(runner, data, cfg, plan, step, device))
        step += 1
        bar.update(1)
        epoch_done = step % plan.steps_per_epoch == 0
        save = epoch_done or step % cfg.train.checkpoint_every == 0
        if save or step % SYNC_EVERY == 0:
            window.flush(metrics, bar)
        if epoch_done:
            _close_epoch(model, data, cfg, val, metrics, step // plan.steps_per_epoch, device)
        if save:
            save_checkpoint(ckpt_path, _state(model, opt, cfg, data, step, metrics, complete=step == plan.total_steps))
    bar.close()
    return metrics


def _close_epoch(model, data, cfg, val, metrics, epoch, device) -> None:
    val_acc = _validate(model, data, cfg, val, device)
    model.train()
    mean_loss = metrics["loss_sum"] / max(metrics["loss_count"], 1)
    metrics["history"].append({"epoch": epoch, "train_loss": mean_loss, "val_accuracy": val_acc})
    metrics.update(val_accuracy=val_acc, train_loss=mean_loss, epochs=epoch,
                   examples_per_s=metrics["examples"] / max(metrics["train_seconds"], 1e-9))
    metrics["loss_sum"], metrics["loss_count"] = 0.0, 0
