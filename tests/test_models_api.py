"""build_model's public contract: sizes, errors, config, precision, memory layout, devices."""

from __future__ import annotations

import pytest
import torch

from earlyfusion.config import ModelConfig
from earlyfusion.models import FUSION_LEVELS, build_model, build_model_from_config

SMALL = dict(hidden=4, dense=16)


def inputs(batch=2, steps=5, seed=1, device="cpu"):
    g = torch.Generator().manual_seed(seed)
    image, spec = torch.rand(batch, 1, 28, 28, generator=g), torch.rand(batch, steps, 201, generator=g)
    return image.to(device), spec.to(device)


def test_paper_input_shapes():
    torch.manual_seed(0)
    model = build_model()  # the paper's sizes: 64 units, 3x3, dense 128 (A.2)
    image, spec = inputs(batch=1, steps=92)
    with torch.no_grad():
        logits, seq = model(image, spec), model(image, spec, return_sequence=True)
    assert logits.shape == (1, 10) and seq.shape == (1, 92, 10)
    torch.testing.assert_close(seq[:, -1], logits, rtol=1e-5, atol=1e-6)


def test_paper_parameter_counts():
    # Counted by hand from A.2 with 'same' padding, 28 -> 14 -> 7 pooling, f/i/g/o gates.
    gates = 4 * 64
    clstm1 = (1 * 9 * gates + gates) + 64 * 9 * gates + 201 * gates
    clstm2 = (64 * 9 * gates + gates) + 64 * 9 * gates
    head = (64 * 7 * 7 * 128 + 128) + (128 * 10 + 10)
    conv = 1 * 9 * 64 + 64
    lstm = 4 * 64 * (201 + 64 + 2)
    expected = {
        "initial": clstm1 + clstm2 + head,
        "second": conv + lstm + (64 * 9 * gates + gates) + 64 * 9 * gates + 64 * gates + head,
        "fc": conv + (64 * 9 * 64 + 64) + lstm + 4 * 64 * (64 + 64 + 2) + 64 * 128 + head,
    }
    for fusion, count in expected.items():
        assert sum(p.numel() for p in build_model(fusion=fusion).parameters()) == count, fusion


@pytest.mark.parametrize(
    "kwargs",
    [
        dict(fusion="early"),
        dict(fusion=0),
        dict(fusion=3),
        dict(fusion="3"),
        dict(fusion="second", layers=1),
        dict(fusion=True),
        dict(modality="audiovisual"),
        dict(hidden=0),
        dict(layers=5),  # 28 pooled five times is 0
    ],
)
def test_bad_arguments_raise(kwargs):
    with pytest.raises(ValueError):
        build_model(**{**SMALL, **kwargs})


@pytest.mark.parametrize(
    "image_shape,spec_shape",
    [((2, 3, 28, 28), (2, 5, 201)), ((2, 1, 32, 32), (2, 5, 201)), ((2, 1, 28, 28), (2, 5, 200)),
     ((2, 1, 28, 28), (3, 5, 201)), ((2, 1, 28, 28), (2, 0, 201)), ((1, 28, 28), (2, 5, 201))],
)
def test_wrong_input_shapes_raise(image_shape, spec_shape):
    model = build_model(**SMALL)
    with pytest.raises(ValueError, match="image|spec|batch"):
        model(torch.rand(image_shape), torch.rand(spec_shape))


def test_fusion_names_and_numbers_agree():
    assert FUSION_LEVELS == {"initial": 1, "second": 2, "fc": None}
    image, spec = inputs()
    for name, number in [("initial", 1), ("second", 2), ("initial", "1"), ("second", "2")]:
        torch.manual_seed(0)
        a = build_model(fusion=name, **SMALL)
        torch.manual_seed(0)
        b = build_model(fusion=number, **SMALL)
        torch.testing.assert_close(a(image, spec), b(image, spec), rtol=0, atol=0)
    assert build_model(fusion="fc", layers=3, **SMALL).fusion_layer is None


def test_build_from_config():
    cfg = ModelConfig(fusion="2", modality="visual", hidden=4, kernel=5, layers=3, dense=16)
    model = build_model_from_config(cfg)
    assert (model.fusion_layer, model.modality, model.layers) == (2, "visual", 3)
    assert model.clstm[0].conv_h.kernel_size == (5, 5) and model.head[0].out_features == 16


def _model_and_fp32_outputs(fusion):
    """A small model, its inputs and its fp32 CPU per-step logits (what other runs must match)."""
    torch.manual_seed(0)
    model = build_model(fusion=fusion, hidden=8, dense=32)
    image, spec = inputs(steps=8)
    return model, image, spec, model(image, spec, return_sequence=True).detach()


@pytest.mark.parametrize("fusion", ["initial", "second", "fc"])
def test_bf16_and_channels_last_match_fp32(fusion):
    model, image, spec, ref = _model_and_fp32_outputs(fusion)
    model = model.to(memory_format=torch.channels_last)  # weights channels-last
    model.memory_format = torch.channels_last  # activations channels-last
    torch.testing.assert_close(model(image, spec, return_sequence=True), ref, rtol=1e-4, atol=1e-5)
    with torch.autocast("cpu", dtype=torch.bfloat16):
        out = model(image, spec, return_sequence=True)
    assert out.dtype == torch.bfloat16
    err = (out.float() - ref).abs().max() / ref.abs().max()
    assert err < 0.05, err
    out.float().sum().backward()
    assert all(p.grad is not None and torch.isfinite(p.grad).all() for p in model.parameters())


@pytest.mark.skipif(not torch.cuda.is_available(), reason="no CUDA device")
@pytest.mark.parametrize("fusion", ["initial", "second", "fc"])
def test_cuda_matches_cpu(fusion):
    model, image, spec, ref = _model_and_fp32_outputs(fusion)
    model = model.cuda()
    out = model(image.cuda(), spec.cuda(), return_sequence=True)
    torch.testing.assert_close(out.cpu(), ref, rtol=1e-3, atol=1e-4)
    with torch.autocast("cuda", dtype=torch.bfloat16):
        out = model(image.cuda(), spec.cuda(), return_sequence=True)
    assert (out.float().cpu() - ref).abs().max() / ref.abs().max() < 0.05
    out.float().sum().backward()
