"""``AudioVisualData``: MNIST + FSDD -> noisy audio-visual batches on a device (paper A.3).

Everything the model sees is made here, batched in torch on the model's device: the image
in [0, 1] plus white noise; the recording plus white noise on its real samples only, then
front zero-padding (already in the stored tensor), then the power spectrogram. Order
(SPEC.md): noise, padding, spectrogram.
"""

from __future__ import annotations

import math
import os
from pathlib import Path
from typing import Any

import numpy as np
import torch

from earlyfusion.config import DataConfig
from earlyfusion.data import features, fsdd, mnist, noise
from earlyfusion.data.download import user_cache_dir
from earlyfusion.data.pairs import PairSpace
from earlyfusion.snr import parse_snr
from earlyfusion.data.splits import SPLITS, build_manifest, manifest_hash, save_manifest, split_indices

DATA_ENV = "EARLYFUSION_DATA"


def resolve_root(cfg: DataConfig) -> Path:
    """cfg.root, else $EARLYFUSION_DATA, else the user cache (filled by download).

    A root the user names is only read, never written: downloads go to the cache only.
    """
    given = cfg.root or os.environ.get(DATA_ENV)
    if given:
        root = Path(given).expanduser()
        if not root.is_dir():
            source = "data.root" if cfg.root else f"${DATA_ENV}"
            raise FileNotFoundError(
                f"data root {root} (from {source}) does not exist; expected mnist/ and fsdd/recordings/")
        return root
    root = user_cache_dir() / "data"
    if cfg.download:
        mnist.download_mnist(root / "mnist")
        fsdd.download_fsdd(root / "fsdd")
    elif not root.is_dir():
        raise FileNotFoundError(f"no data root: set data.root or ${DATA_ENV}, or allow data.download to fill {root}")
    return root


class AudioVisualData:
    """Both datasets in memory (images uint8 (N, 28, 28); waves front-padded (M, L)) and their splits."""

    def __init__(self, cfg: DataConfig, images: np.ndarray, image_labels: np.ndarray, mnist_files: list[str],
                 rec: fsdd.Recordings, device: str | torch.device = "cpu", root: Path | None = None):
        features.scale_features(torch.zeros(1), cfg.features, cfg.log_floor, cfg.feature_gain)  # validate early
        self.cfg, self.root, self.device = cfg, root, torch.device(device)
        self.images = torch.from_numpy(np.ascontiguousarray(images)).to(self.device)
        self.image_labels = torch.from_numpy(image_labels).to(self.device)
        self.audio_labels = torch.from_numpy(rec.labels).to(self.device)
        waves, lengths, self.truncated = features.pad_front(rec.waves, cfg.audio_samples)
        if waves.shape[1] <= features.HOP:
            raise ValueError(
                f"audio_samples must be > {features.HOP} (the STFT's reflect padding), got {waves.shape[1]}")
        self.waves, self.audio_lengths = waves.to(self.device), lengths  # lengths: CPU (they steer chunking)
        self.longest_recording = max(len(w) for w in rec.waves)
        self.audio_samples = waves.shape[1]
        self.frames, self.bins = features.n_frames(self.audio_samples), features.BINS
        self.image_splits = {k: torch.from_numpy(v) for k, v in
                             split_indices(image_labels, cfg.split_seed, "mnist", cfg.stratified).items()}
        self.audio_splits = {k: torch.from_numpy(v) for k, v in
                             split_indices(rec.labels, cfg.split_seed, "fsdd", cfg.stratified).items()}
        settings = {"fsdd_version": cfg.fsdd_version, "split_seed": cfg.split_seed, "stratified": cfg.stratified}
        self.manifest = build_manifest(settings, mnist_files, self.image_splits, rec.names, self.audio_splits)
        self.manifest_hash = manifest_hash(self.manifest)
        self.audio_names, self.speakers = rec.names, rec.speakers
        self._labels_cpu = (torch.from_numpy(image_labels), torch.from_numpy(rec.labels))
        self._spaces: dict[str, PairSpace] = {}

    @classmethod
    def load(cls, cfg: DataConfig, device: str | torch.device = "cpu") -> AudioVisualData:
        root = resolve_root(cfg)
        images, labels, files = mnist.load_mnist(root / "mnist")
        rec = fsdd.load_fsdd(root / "fsdd" / "recordings", cfg.fsdd_version)
        return cls(cfg, images, labels, files, rec, device=device, root=root)

    def pairs(self, split: str) -> PairSpace:
        """Every same-label (image, audio) pair of ``split`` ('train' | 'val' | 'test')."""
        if split not in SPLITS:
            raise ValueError(f"split must be one of {SPLITS}, got {split!r}")
        if split not in self._spaces:
            img, aud = self.image_splits[split], self.audio_splits[split]
            img_lab, aud_lab = self._labels_cpu
            self._spaces[split] = PairSpace(img, img_lab[img], aud, aud_lab[aud])
        return self._spaces[split]

    def save_manifest(self, path: Path) -> Path:
        """Write the split manifest (JSON) so a run can be audited and repeated."""
        return save_manifest(self.manifest, path)

    def batch(self, img_idx: torch.Tensor, aud_idx: torch.Tensor, *, audio_snr: float, visual_snr: float,
              generator: torch.Generator | None = None, noise_seed: int | None = None
              ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """Noisy (image (B, 1, 28, 28), spec (B, T, 201), label (B,)) on the device.

        Noise from ``generator`` (training) or keyed by (noise_seed, item index) (evaluation):
        keyed noise is identical for an item in any batch, at any SNR, on any device.
        """
        if generator is not None and noise_seed is not None:
            raise ValueError("give either generator (training) or noise_seed (evaluation), not both")
        # Indices and the label check stay on the CPU: on a GPU, a check of device labels
        # would wait for the queued training step at every batch.
        img_idx = torch.as_tensor(img_idx, dtype=torch.int64).cpu()
        aud_idx = torch.as_tensor(aud_idx, dtype=torch.int64).cpu()
        if img_idx.shape != aud_idx.shape or img_idx.dim() != 1:
            raise ValueError("img_idx and aud_idx must be 1-D of one length, got "
                             f"{tuple(img_idx.shape)} and {tuple(aud_idx.shape)}")
        img_labels, aud_labels = self._labels_cpu
        label = img_labels[img_idx]
        if not torch.equal(label, aud_labels[aud_idx]):
            raise ValueError("image and audio labels differ: a batch holds same-label pairs only")
        image = self._noisy_images(img_idx, visual_snr, generator, noise_seed)
        spec = self._noisy_spectrogram(aud_idx, audio_snr, generator, noise_seed)
        return image, spec, label.to(self.device)

    def spectrogram(self, aud_idx: torch.Tensor, *, audio_snr: float, noise_seed: int) -> torch.Tensor:
        """The spectrograms ``batch`` gives for these recordings with keyed noise (evaluation):
        one batch at further audio SNRs without rebuilding its images."""
        return self._noisy_spectrogram(torch.as_tensor(aud_idx, dtype=torch.int64).cpu(), audio_snr, None, noise_seed)

    def _noisy_images(self, idx, snr, generator, noise_seed) -> torch.Tensor:
        """idx: CPU indices."""
        image = self.images[idx.to(self.device)].to(torch.float32).div_(255.0).reshape(-1, 1, 28, 28)
        if math.isinf(parse_snr(snr)):
            return image
        if noise_seed is not None:
            pixels = torch.full((len(idx),), 784, dtype=torch.int64)  # every pixel is "real"
            unit = noise.keyed_unit_noise(idx, pixels, 784, noise_seed, "image").to(self.device)
        else:
            unit = noise.unit_noise(tuple(image.shape), generator, self.device)
        return noise.add_noise(image, snr, unit, noise.signal_power(image))

    def _noisy_spectrogram(self, idx, snr, generator, noise_seed) -> torch.Tensor:
        """(B, T, 201): noise on the real samples, then the spectrogram, in chunks of similar length.

        Frames wholly inside the front padding are exactly zero whatever the SNR (the
        padding carries no noise, SPEC.md), so each chunk computes only its live frames.
        """
        lengths = self.audio_lengths[idx]  # idx: CPU indices
        noisy = not math.isinf(parse_snr(snr))
        out = torch.zeros(len(idx), self.frames, self.bins, device=self.device)
        for rows, t0, start in features.live_chunks(lengths, self.audio_samples):
            dev_rows = rows.to(self.device)
            seg = self.waves[idx.to(self.device)[dev_rows], start:]
            if noisy:
                seg = self._add_audio_noise(seg, lengths[rows], idx[rows], snr, generator, noise_seed)
            out[dev_rows, t0:] = features.frames_power(seg, t0)
        return features.scale_features(out, self.cfg.features, self.cfg.log_floor, self.cfg.feature_gain)

    def _add_audio_noise(self, seg, lengths, keys, snr, generator, noise_seed) -> torch.Tensor:
        """seg (b, S) holds each recording's real samples at its end; noise goes there only.
        lengths and keys: CPU."""
        if noise_seed is not None:
            unit = noise.keyed_unit_noise(keys, lengths, seg.shape[1], noise_seed, "audio").to(self.device)
        lengths = lengths.to(self.device)
        if noise_seed is None:
            unit = noise.unit_noise(tuple(seg.shape), generator, self.device) * noise.tail_mask(lengths, seg.shape[1])
        return noise.add_noise(seg, snr, unit, noise.signal_power(seg, lengths))


def describe(cfg: DataConfig) -> dict[str, Any]:
    """What ``earlyfusion data info`` prints: sizes per split, pair counts, feature shape."""
    data = AudioVisualData.load(cfg)
    splits = {s: {"images": len(data.image_splits[s]), "recordings": len(data.audio_splits[s]),
                  "pairs": len(data.pairs(s))} for s in SPLITS}
    return {
        "root": str(data.root),
        "fsdd_version": cfg.fsdd_version,
        "mnist_images": len(data.images),
        "fsdd_recordings": len(data.audio_names),
        "fsdd_speakers": sorted(set(data.speakers)),
        "splits": splits,
        "audio_samples": data.audio_samples,
        "longest_recording": data.longest_recording,
        "truncated_recordings": data.truncated,
        "frames": data.frames,
        "bins": data.bins,
        "features": cfg.features,
        "split_seed": cfg.split_seed,
        "stratified": cfg.stratified,
        "manifest_hash": data.manifest_hash,
    }


def format_description(info: dict[str, Any]) -> str:
    """Human-readable form of ``describe``'s dict."""
    lines = [
        f"data root        {info['root']}",
        f"MNIST images     {info['mnist_images']:,}",
        f"FSDD recordings  {info['fsdd_recordings']:,} ({info['fsdd_version']}: {', '.join(info['fsdd_speakers'])})",
        f"split            8:1:1 train/test/val, seed {info['split_seed']}"
        + (", stratified" if info["stratified"] else ", random"),
        f"{'split':<8}{'images':>10}{'recordings':>12}{'pairs':>14}",
    ]
    for name, s in info["splits"].items():
        lines.append(f"{name:<8}{s['images']:>10,}{s['recordings']:>12,}{s['pairs']:>14,}")
    lines += [
        f"audio samples    {info['audio_samples']:,} (longest recording {info['longest_recording']:,}; "
        f"{info['truncated_recordings']} truncated)",
        f"spectrogram      {info['frames']} frames x {info['bins']} bins, features {info['features']}",
        f"manifest sha256  {info['manifest_hash']}",
    ]
    return "\n".join(lines)
