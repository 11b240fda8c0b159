"""AudioVisualData: loading, batches, keyed noise, errors, describe, and the real data."""

from __future__ import annotations

import json
import math
import stat

import numpy as np
import pytest
import torch

from earlyfusion.cli import main
from earlyfusion.config import DataConfig
from earlyfusion.data import AudioVisualData, describe, format_description
from earlyfusion.data.dataset import resolve_root


@pytest.fixture
def data_small(data_root):
    return AudioVisualData.load(DataConfig(root=str(data_root), fsdd_version="v1.0.10"))


def _pairs(data, n=8, seed=0):
    return data.pairs("train").sample(n, torch.Generator().manual_seed(seed))


def test_load_shapes(data_small):
    d = data_small
    assert d.images.shape == (60, 28, 28) and len(d.audio_names) == 60
    assert d.audio_samples == int(d.audio_lengths.max()) and d.frames == 1 + d.audio_samples // 200
    assert d.bins == 201 and len(d.manifest_hash) == 64 and d.truncated == 0


def test_batch_types_and_clean_values(data_small):
    d = data_small
    img, aud = _pairs(d)
    image, spec, label = d.batch(img, aud, audio_snr=math.inf, visual_snr=math.inf)
    assert image.shape == (8, 1, 28, 28) and image.dtype == torch.float32
    assert spec.shape == (8, d.frames, 201) and spec.dtype == torch.float32
    assert label.dtype == torch.int64 and torch.equal(label, d.image_labels[img])
    assert torch.equal(image[:, 0], d.images[img].float() / 255)
    assert spec.min() >= 0


def test_noisy_image_has_the_asked_snr(data_small):
    d = data_small
    img = torch.arange(60).repeat(8)
    aud = torch.tensor([int(torch.nonzero(d.audio_labels == d.image_labels[i])[0]) for i in range(60)]).repeat(8)
    clean, _, _ = d.batch(img, aud, audio_snr=math.inf, visual_snr=math.inf)
    noisy, _, _ = d.batch(img, aud, audio_snr=math.inf, visual_snr=0.25, generator=torch.Generator().manual_seed(0))
    measured = clean.square().mean((1, 2, 3)).sum() / (noisy - clean).square().mean((1, 2, 3)).sum()
    assert abs(measured.item() / 0.25 - 1) < 0.03


def test_audio_noise_stays_out_of_the_padding(data_root):
    d = AudioVisualData.load(DataConfig(root=str(data_root), fsdd_version="v1.0.10", features="power"))
    img, aud = _pairs(d, 16)
    _, spec, _ = d.batch(img, aud, audio_snr=0.01, visual_snr=1.0, noise_seed=3)
    for row, a in enumerate(aud.tolist()):
        silent = (d.audio_samples - int(d.audio_lengths[a]) - 201) // 200 + 1  # frames wholly in padding
        assert silent > 0 or d.audio_lengths[a] > d.audio_samples - 401
        assert torch.all(spec[row, :max(silent, 0)] == 0) and spec[row, -1].sum() > 0


def test_keyed_noise_is_independent_of_batch_and_snr(data_small):
    d = data_small
    img, aud = _pairs(d, 8)
    clean_img, _, _ = d.batch(img, aud, audio_snr=math.inf, visual_snr=math.inf)
    a_img, a_spec, _ = d.batch(img, aud, audio_snr=0.5, visual_snr=0.5, noise_seed=11)
    perm = torch.tensor([5, 2, 7])
    b_img, b_spec, _ = d.batch(img[perm], aud[perm], audio_snr=0.5, visual_snr=2.0, noise_seed=11)
    c_img, c_spec, _ = d.batch(img[perm], aud[perm], audio_snr=0.5, visual_snr=2.0, noise_seed=11)
    assert torch.allclose(a_spec[perm], b_spec, rtol=1e-5, atol=1e-5)  # same items, other batch
    assert torch.equal(b_img, c_img) and torch.equal(b_spec, c_spec)
    # same unit noise at SNR 0.5 and 2: the difference scales by sqrt(0.5 / 2)
    assert torch.allclose((b_img - clean_img[perm]), (a_img - clean_img)[perm] * 0.5, atol=1e-5)
    d_img, _, _ = d.batch(img, aud, audio_snr=0.5, visual_snr=0.5, noise_seed=12)
    assert not torch.allclose(d_img, a_img)


def test_generator_noise_is_reproducible(data_small):
    d = data_small
    img, aud = _pairs(d)
    runs = [d.batch(img, aud, audio_snr=1.0, visual_snr=1.0, generator=torch.Generator().manual_seed(4))
            for _ in range(2)]
    assert all(torch.equal(x, y) for x, y in zip(*runs))


def test_explicit_audio_samples_truncates(data_root):
    d = AudioVisualData.load(DataConfig(root=str(data_root), audio_samples=1000))
    assert d.audio_samples == 1000 and d.frames == 6
    assert d.truncated == int((d.audio_lengths == 1000).sum()) > 0


@pytest.mark.parametrize("snr", [0, -0.5, float("nan")])
def test_bad_snr(data_small, snr):
    img, aud = _pairs(data_small)
    with pytest.raises(ValueError, match="SNR"):
        data_small.batch(img, aud, audio_snr=snr, visual_snr=1.0)
    with pytest.raises(ValueError, match="SNR"):
        data_small.batch(img, aud, audio_snr=1.0, visual_snr=snr)


def test_bad_calls(data_small, data_root):
    d = data_small
    img, aud = _pairs(d)
    with pytest.raises(ValueError, match="not both"):
        d.batch(img, aud, audio_snr=1, visual_snr=1, generator=torch.Generator(), noise_seed=0)
    with pytest.raises(ValueError, match="labels differ"):
        d.batch(img, aud.roll(1), audio_snr=1, visual_snr=1)
    with pytest.raises(ValueError, match="split must be one of"):
        d.pairs("dev")
    with pytest.raises(ValueError, match="features must be one of"):
        AudioVisualData.load(DataConfig(root=str(data_root), features="mfcc"))
    with pytest.raises(ValueError, match="audio_samples must be > 200"):
        AudioVisualData.load(DataConfig(root=str(data_root), audio_samples=150))


def test_root_resolution(tmp_path, data_root, monkeypatch):
    monkeypatch.delenv("EARLYFUSION_DATA", raising=False)
    with pytest.raises(FileNotFoundError, match="nope .*data.root.* does not exist"):
        resolve_root(DataConfig(root=str(tmp_path / "nope")))
    monkeypatch.setenv("EARLYFUSION_DATA", str(data_root))
    assert resolve_root(DataConfig()) == data_root
    monkeypatch.setenv("EARLYFUSION_DATA", str(tmp_path / "gone"))
    with pytest.raises(FileNotFoundError, match=r"\$EARLYFUSION_DATA"):
        resolve_root(DataConfig())
    monkeypatch.delenv("EARLYFUSION_DATA")
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "cache"))
    with pytest.raises(FileNotFoundError, match="no data root"):
        resolve_root(DataConfig(download=False))


def test_read_only_root_is_never_written(data_root, tmp_path):
    # (as root the chmod binds nothing, but the listing check still holds)
    before = sorted(p for p in data_root.rglob("*"))
    for path in [data_root, *before]:
        if path.is_dir():
            path.chmod(stat.S_IRUSR | stat.S_IXUSR)
    try:
        d = AudioVisualData.load(DataConfig(root=str(data_root)))
        d.save_manifest(tmp_path / "manifest.json")
        assert sorted(p for p in data_root.rglob("*")) == before
    finally:
        for path in [data_root, *before]:
            if path.is_dir():
                path.chmod(stat.S_IRWXU)


def test_describe_and_cli(data_root, capsys):
    info = describe(DataConfig(root=str(data_root), fsdd_version="v1.0.10"))
    assert info["mnist_images"] == 60 and info["fsdd_recordings"] == 60
    assert {s: info["splits"][s]["images"] for s in ("train", "val", "test")} == {"train": 48, "val": 6, "test": 6}
    assert sum(info["splits"][s]["recordings"] for s in info["splits"]) == 60
    text = format_description(info)
    assert "MNIST images     60" in text and "train" in text and f"{info['frames']} frames x 201 bins" in text
    assert main(["data", "info", "--json", "--data-root", str(data_root), "--set", "data.fsdd_version=v1.0.10"]) == 0
    printed = json.loads(capsys.readouterr().out)
    assert printed["splits"] == info["splits"] and printed["bins"] == 201
    assert main(["data", "info", "--data-root", str(data_root / "missing")]) == 2
    assert "does not exist" in capsys.readouterr().err


def test_real_data(data_shared_root):
    d = AudioVisualData.load(DataConfig(root=str(data_shared_root)))
    assert (d.audio_samples, d.frames, d.bins) == (18_262, 92, 201)
    assert len(d.images) == 10_000 and len(d.audio_names) == 2_500 and "lucas" not in d.speakers
    space = d.pairs("train")
    # 8,000 t10k images x 2,000 recordings / 10 classes ~ 1.6 M pairs (8,000 x 200 per class)
    assert abs(len(space) / 1_600_000 - 1) < 0.02
    img, aud = space.sample(64, torch.Generator().manual_seed(0))
    image, spec, label = d.batch(img, aud, audio_snr=0.5, visual_snr=0.25, noise_seed=0)
    assert spec.shape == (64, 92, 201) and torch.isfinite(spec).all() and image.shape == (64, 1, 28, 28)
    assert np.isin(label.numpy(), np.arange(10)).all()
