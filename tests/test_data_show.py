"""Figure 6 rendering: a PNG of one test pair at several SNRs, written atomically."""

from __future__ import annotations

import math

import pytest
import torch

from earlyfusion.config import DataConfig
from earlyfusion.data import AudioVisualData
from earlyfusion.data.show import SHOW_SNRS, feature_label, noise_examples, render_noise_examples


def test_render_writes_a_png(data_root, tmp_path):
    out = render_noise_examples(DataConfig(root=str(data_root), fsdd_version="v1.0.10"), tmp_path / "f" / "fig6.png",
                                index=0, seed=2)
    assert out == tmp_path / "f" / "fig6.png"
    assert out.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n" and out.stat().st_size > 10_000
    assert [p.name for p in out.parent.iterdir()] == ["fig6.png"]


def test_examples_get_noisier_and_index_is_checked(data_root):
    data = AudioVisualData.load(DataConfig(root=str(data_root), fsdd_version="v1.0.10"))
    images, specs, label = noise_examples(data, 0, 0)
    assert SHOW_SNRS[0] == math.inf and images.shape[0] == specs.shape[0] == len(SHOW_SNRS)
    error = [(images[i] - images[0]).square().mean().item() for i in range(1, len(SHOW_SNRS))]
    assert error == sorted(error) and error[0] > 0  # lower SNR, more noise
    assert 0 <= label <= 9 and torch.isfinite(specs).all()
    with pytest.raises(ValueError, match="outside the .* test pairs"):
        noise_examples(data, len(data.pairs("test")), 0)


@pytest.mark.parametrize(("features", "floor", "gain", "label"), [
    ("log", 1.0, 1.0, "log(1 + power)"),
    ("log", 0.001, 4.0, "4 x log(1 + power / 0.001)"),
    ("power", 1.0, 2.0, "log(1 + 2 x power)"),
])
def test_title_names_the_features_shown(features, floor, gain, label):
    assert feature_label(DataConfig(features=features, log_floor=floor, feature_gain=gain)) == label
