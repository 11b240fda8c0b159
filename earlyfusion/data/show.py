"""Paper Figure 6: one test example, image and spectrogram, at several SNRs (A.3)."""

from __future__ import annotations

from pathlib import Path

import matplotlib

matplotlib.use("Agg")  # files only, no display
import matplotlib.pyplot as plt  # noqa: E402
import torch  # noqa: E402

from earlyfusion.atomic import atomic_path  # noqa: E402
from earlyfusion.config import DataConfig  # noqa: E402
from earlyfusion.data.dataset import AudioVisualData  # noqa: E402
from earlyfusion.snr import ORIG, format_snr  # noqa: E402

# orig plus the span of the paper's training SNRs (2 ... 0.125), the same SNR on both inputs
SHOW_SNRS = (ORIG, 2.0, 1.0, 0.5, 0.25, 0.125)


def noise_examples(data: AudioVisualData, index: int, seed: int, snrs=SHOW_SNRS):
    """Test pair ``index`` at each SNR: images (S, 28, 28), log1p power spectrograms (S, T, 201), label."""
    space = data.pairs("test")
    if not 0 <= index < len(space):
        raise ValueError(f"index {index} outside the {len(space)} test pairs")
    img, aud = space.lookup(torch.tensor([index]))
    images, specs = [], []
    for snr in snrs:
        image, spec, label = data.batch(img, aud, audio_snr=snr, visual_snr=snr, noise_seed=seed)
        images.append(image[0, 0].cpu())
        specs.append(spec[0].cpu() if data.cfg.features == "log" else torch.log1p(spec[0].cpu()))
    return torch.stack(images), torch.stack(specs), int(label[0])


def feature_label(cfg: DataConfig) -> str:
    """What the figure's spectrograms show (``noise_examples``), with the config's floor and gain."""
    gain = "" if cfg.feature_gain == 1 else f"{cfg.feature_gain:g} x "
    if cfg.features == "power":  # shown through log1p, for contrast
        return f"log(1 + {gain}power)"
    floor = "" if cfg.log_floor == 1 else f" / {cfg.log_floor:g}"
    return f"{gain}log(1 + power{floor})"


def _save_atomic(fig, out: Path) -> Path:
    with atomic_path(out) as tmp:
        fig.savefig(tmp, format=out.suffix.lstrip(".") or "png", dpi=120, bbox_inches="tight")
    return out


def render_noise_examples(cfg: DataConfig, out: Path, index: int = 0, seed: int = 0,
                          also: tuple[str, ...] = ()) -> Path:
    """Write Figure 6 (format from ``out``'s suffix, plus the suffixes in ``also``, e.g. ".pdf"):
    one column per SNR, image above its spectrogram."""
    data = AudioVisualData.load(cfg)
    images, specs, label = noise_examples(data, index, seed)
    fig, axes = plt.subplots(2, len(SHOW_SNRS), figsize=(2.2 * len(SHOW_SNRS), 4.6), squeeze=False)
    top = float(specs.max())
    for col, snr in enumerate(SHOW_SNRS):
        axes[0, col].imshow(images[col].clamp(0, 1).numpy(), cmap="gray", vmin=0, vmax=1)
        axes[0, col].set_title(f"SNR {format_snr(snr)}")
        axes[1, col].imshow(specs[col].T.numpy(), origin="lower", aspect="auto", cmap="magma", vmin=0, vmax=top,
                            extent=(0, specs.shape[1], 0, 4000))
        axes[1, col].set_xlabel("frame")
        axes[0, col].axis("off")
    axes[1, 0].set_ylabel("Hz")
    for ax in axes[1, 1:]:
        ax.set_yticks([])
    fig.suptitle(f"Test pair {index} (digit {label}): white noise at each SNR; spectrogram {feature_label(cfg)}")
    try:
        for suffix in also:
            _save_atomic(fig, Path(out).with_suffix(suffix))
        return _save_atomic(fig, Path(out))
    finally:
        plt.close(fig)
