"""FusionNet.run: continuing from a state, and branching one prefix into r continuations.

The evaluation saving of SPEC.md's last paragraph rests on this: the frames of the front
padding are the same for every audio SNR, so their part of the time loop runs once per image
and its state is repeated for each audio variant.
"""

from __future__ import annotations

import pytest
import torch

from earlyfusion.models import FusionState, build_model

LEVELS = [("initial", 2), ("second", 2), ("fc", 2), (2, 3)]
MODALITIES = ["both", "audio", "visual"]
TOL = dict(rtol=1e-5, atol=1e-6)


def model_for(fusion, layers, modality="both"):
    torch.manual_seed(0)
    return build_model(fusion=fusion, layers=layers, modality=modality, hidden=4, dense=16).eval()


def branched_inputs(batch=2, r=3, steps=7, t0=3, seed=1):
    """image_rep, spec_rep (B*r examples) whose first t0 frames repeat each example's prefix."""
    g = torch.Generator().manual_seed(seed)
    image, prefix = torch.rand(batch, 1, 28, 28, generator=g), torch.rand(batch, t0, 201, generator=g)
    tails = torch.rand(batch * r, steps - t0, 201, generator=g)
    spec_rep = torch.cat([prefix.repeat_interleave(r, 0), tails], dim=1)
    return image, prefix, image.repeat_interleave(r, 0), spec_rep


@pytest.mark.parametrize("modality", MODALITIES)
@pytest.mark.parametrize("fusion,layers", LEVELS)
def test_branching_a_prefix_equals_the_whole_run(fusion, layers, modality):
    model = model_for(fusion, layers, modality)
    steps, r = 7, 3
    for t0 in range(1, steps):
        image, prefix, image_rep, spec_rep = branched_inputs(r=r, steps=steps, t0=t0)
        with torch.no_grad():
            whole = model(image_rep, spec_rep, return_sequence=True)
            _, state = model.run(image, prefix)
            assert state.steps == t0 and state.batch_size == 2
            expanded = state.repeat_interleave(r)
            assert expanded.batch_size == 2 * r
            seq, after = model.run(image_rep, spec_rep[:, t0:], state=expanded, return_sequence=True)
            last, _ = model.run(image_rep, spec_rep[:, t0:], state=state.repeat_interleave(r))
        assert seq.shape == (2 * r, steps - t0, 10) and after.steps == steps
        assert whole.std() > 1e-3
        torch.testing.assert_close(seq, whole[:, t0:], **TOL)
        torch.testing.assert_close(last, whole[:, -1], **TOL)


@pytest.mark.parametrize("fusion,layers", LEVELS)
def test_run_from_no_state_is_forward(fusion, layers):
    model = model_for(fusion, layers)
    _, _, image, spec = branched_inputs()
    logits, state = model.run(image, spec)
    torch.testing.assert_close(logits, model(image, spec), rtol=0, atol=0)
    assert isinstance(state, FusionState) and state.steps == spec.shape[1]
    assert len(state.clstm) == len(model.clstm)
    assert (state.audio is None) == (model.audio is None)


def test_repeat_interleave_orders_rows_by_example():
    model = model_for("second", 2)
    image, prefix, _, _ = branched_inputs()
    _, state = model.run(image, prefix)
    rep = state.repeat_interleave(2)
    h, c = state.clstm[0]
    assert torch.equal(rep.clstm[0][0][2], h[1]) and torch.equal(rep.clstm[0][1][3], c[1])
    assert torch.equal(rep.audio[0][:, 1], state.audio[0][:, 0])  # (layers, B, hidden)


def test_state_of_the_wrong_batch_raises():
    model = model_for("initial", 2)
    image, prefix, image_rep, spec_rep = branched_inputs()
    _, state = model.run(image, prefix)
    with pytest.raises(ValueError, match="state batch"):
        model.run(image_rep, spec_rep, state=state)


def test_gradients_flow_through_a_state():
    model = model_for("initial", 2)
    image, prefix, image_rep, spec_rep = branched_inputs(r=1)
    prefix = prefix.clone().requires_grad_(True)
    _, state = model.run(image, prefix)
    logits, _ = model.run(image, spec_rep[:, prefix.shape[1]:], state=state)
    logits.sum().backward()
    assert prefix.grad is not None and prefix.grad.abs().sum() > 0


@pytest.mark.parametrize("fusion", ["initial", "second"])
def test_branching_under_bf16_autocast_and_channels_last(fusion):
    model = model_for(fusion, 2)
    model.memory_format = torch.channels_last
    image, prefix, image_rep, spec_rep = branched_inputs(r=2, steps=6, t0=4)
    with torch.no_grad(), torch.autocast("cpu", dtype=torch.bfloat16):
        whole = model(image_rep, spec_rep).float()
        _, state = model.run(image, prefix)
        part, _ = model.run(image_rep, spec_rep[:, 4:], state=state.repeat_interleave(2))
    # bf16 rounding differs between one batch shape and another; both are near fp32.
    torch.testing.assert_close(part.float(), whole, rtol=0.05, atol=0.02)
