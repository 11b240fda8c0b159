"""Class activations over time (paper A.5, Figures 11-16).

The dense head is applied to the state of every time step of one forward pass. Because the
audio is front zero-padded, the early steps see the image alone; the record keeps the first
frame that holds audio so a figure can mark where audio evidence starts to arrive.
"""

from __future__ import annotations

from typing import Any

import torch

from earlyfusion.config import Config
from earlyfusion.data.dataset import AudioVisualData
from earlyfusion.evaluate import fixed_test_pairs
from earlyfusion.runtime import autocast
from earlyfusion.snr import format_snr, parse_snr


def _first_audio_frame(spec: torch.Tensor) -> int:
    """Index of the first frame with any energy; (T, F) -> int. Padding frames are exactly 0."""
    active = (spec.abs().sum(-1) > 0).nonzero()
    return int(active[0]) if len(active) else spec.shape[0]


@torch.no_grad()
def inspect_examples(model, data: AudioVisualData, cfg: Config, *, scenarios: list[list[Any]],
                     examples: int, device: torch.device) -> list[dict[str, Any]]:
    """One record per test example: logits (T, 10) at each (audio, visual) SNR scenario."""
    model.eval()
    img, aud = fixed_test_pairs(data, cfg.eval)
    records = []
    for i in range(min(examples, len(img))):
        record = {"fusion": cfg.model.fusion, "modality": cfg.model.modality,
                  "train_audio_snr": format_snr(cfg.train.audio_snr),
                  "train_visual_snr": format_snr(cfg.train.visual_snr), "scenarios": []}
        for a, v in scenarios:
            image, spec, label = data.batch(img[i:i + 1], aud[i:i + 1], audio_snr=parse_snr(a),
                                            visual_snr=parse_snr(v), noise_seed=cfg.eval.seed)
            with autocast(device, cfg.train.precision):
                seq = model(image, spec, return_sequence=True)[0].float()  # (T, 10)
            record["label"] = int(label[0])
            record["scenarios"].append({
                "audio_snr": format_snr(parse_snr(a)), "visual_snr": format_snr(parse_snr(v)),
                "audio_start": _first_audio_frame(spec[0]), "prediction": int(seq[-1].argmax()),
                "activations": seq.cpu().tolist()})
        records.append(record)
    return records
