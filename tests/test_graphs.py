"""graphs.py: the training step, capturable optimizer state and the warm-up undo (CPU), and
the CUDA-graph step against the eager one (CUDA only)."""

from __future__ import annotations

import copy

import pytest
import torch

from earlyfusion.graphs import (TrainStep, classification_loss, load_optimizer, make_optimizer, restore, set_lr,
                                snapshot)
from earlyfusion.models import FUSION_LEVELS, build_model

SIZES = {"hidden": 3, "dense": 8, "bins": 5, "image_size": 8}


def _model(fusion="initial", seed=0):
    torch.manual_seed(seed)
    return build_model(fusion=fusion, **SIZES)


def _batch(b=4, t=3, seed=1, device="cpu"):
    g = torch.Generator().manual_seed(seed)
    image = torch.rand(b, 1, 8, 8, generator=g)
    spec = torch.rand(b, t, 5, generator=g)
    label = torch.randint(0, 10, (b,), generator=g)
    return image.to(device), spec.to(device), label.to(device)


def _params(model):
    return [p.detach().clone() for p in model.parameters()]


def _same_params(a, b) -> bool:
    return all(torch.equal(p, q) for p, q in zip(_params(a), _params(b)))


def _assert_continue_alike(a, opt_a, b, opt_b, batches):
    """The same eager steps from both states end in bit-identical weights."""
    _eager_steps(a, opt_a, batches)
    _eager_steps(b, opt_b, batches)
    assert _same_params(a, b)


def _eager_steps(model, opt, batches, precision="fp32"):
    loss_fn = classification_loss(model, precision)
    losses = []
    for batch in batches:
        opt.zero_grad(set_to_none=True)
        loss = loss_fn(*batch)
        loss.backward()
        opt.step()
        losses.append(loss.item())
    return losses


@pytest.mark.parametrize("fusion", sorted(FUSION_LEVELS))
def test_train_step_is_the_plain_step(fusion):
    batches = [_batch(seed=s) for s in range(3)]
    a, b = _model(fusion), _model(fusion)
    want = _eager_steps(a, make_optimizer(a, 1e-2, capturable=False), batches)
    step = TrainStep(b, make_optimizer(b, 1e-2, capturable=False), classification_loss(b, "fp32"), graphs=False)
    got = [step(*batch).item() for batch in batches]
    assert got == want
    assert _same_params(a, b)


def test_restore_undoes_warmup_steps_exactly():
    """Warm-up steps then restore: the next step equals a step from the untouched state."""
    batches = [_batch(seed=s) for s in range(4)]
    for primed in (False, True):  # fresh optimizer (state created by the warm-up), or mid-run
        a, b = _model(), _model()
        opt_a, opt_b = make_optimizer(a, 1e-2, capturable=False), make_optimizer(b, 1e-2, capturable=False)
        if primed:
            _eager_steps(a, opt_a, batches[:1])
            _eager_steps(b, opt_b, batches[:1])
        saved = snapshot(b, opt_b)
        _eager_steps(b, opt_b, batches[1:3])  # the "warm-up": moves weights and moments
        assert not _same_params(a, b)
        restore(b, opt_b, saved)
        _assert_continue_alike(a, opt_a, b, opt_b, batches[3:])


def test_set_lr_float_and_tensor():
    model = _model()
    opt = make_optimizer(model, 1e-3, capturable=False)
    set_lr(opt, 0.5)
    assert opt.param_groups[0]["lr"] == 0.5
    cap = make_optimizer(model, 1e-3, capturable=True)  # constructed only: CPU Adam cannot step capturable
    lr = cap.param_groups[0]["lr"]
    assert torch.is_tensor(lr) and cap.param_groups[0]["capturable"]
    set_lr(cap, 0.25)
    assert cap.param_groups[0]["lr"] is lr and lr.item() == 0.25  # in place: a graph reads this memory


def test_checkpoint_from_a_graphed_run_resumes_eagerly():
    """A capturable optimizer's state (tensor lr, capturable, device step) loads into the
    eager optimizer and continues exactly as the eager run would."""
    batches = [_batch(seed=s) for s in range(4)]
    a, b = _model(), _model()
    opt_a = make_optimizer(a, 1e-2, capturable=False)
    _eager_steps(a, opt_a, batches[:2])
    saved = copy.deepcopy(opt_a.state_dict())  # as read back from a checkpoint file
    saved["param_groups"][0].update(lr=torch.tensor(1e-2), capturable=True)  # as a graphed run saves it
    b.load_state_dict(a.state_dict())
    opt_b = make_optimizer(b, 1e-3, capturable=False)
    load_optimizer(opt_b, saved)
    group = opt_b.param_groups[0]
    assert group["capturable"] is False and group["lr"] == pytest.approx(1e-2) and not torch.is_tensor(group["lr"])
    set_lr(opt_b, 1e-2)  # as train.py does before every step (the saved lr was float32)
    _assert_continue_alike(a, opt_a, b, opt_b, batches[2:])


def test_load_optimizer_keeps_a_tensor_lr_in_place():
    model = _model()
    plain = make_optimizer(model, 3e-3, capturable=False)
    cap = make_optimizer(model, 1e-3, capturable=True)
    lr = cap.param_groups[0]["lr"]
    load_optimizer(cap, plain.state_dict())
    assert cap.param_groups[0]["lr"] is lr and lr.item() == pytest.approx(3e-3)
    assert cap.param_groups[0]["capturable"] is True


def test_graphs_need_cuda_tensors():
    model = _model()
    step = TrainStep(model, make_optimizer(model, 1e-3, capturable=False), classification_loss(model, "fp32"),
                     graphs=True)
    with pytest.raises(ValueError, match="CUDA"):
        step(*_batch())


@pytest.mark.skipif(not torch.cuda.is_available(), reason="no CUDA device")
@pytest.mark.parametrize("fusion", sorted(FUSION_LEVELS))
@pytest.mark.parametrize("precision", ["fp32", "bf16"])
def test_cuda_graph_step_matches_eager(fusion, precision):
    """Replays (with a changing lr and a partial last batch run eagerly) track the eager run,
    both with train.py's compiled cell on CUDA (fused vs hand-written cell: test_models)."""
    from earlyfusion.runtime import can_compile_for

    batches = [_batch(seed=s, device="cuda") for s in range(4)] + [_batch(b=3, seed=9, device="cuda")]
    lrs = [1e-2, 8e-3, 6e-3, 4e-3, 2e-3]
    runs = []
    for graphs in (False, True):
        model = _model(fusion).cuda()
        model.memory_format = torch.channels_last
        model.fused_cell = can_compile_for(torch.device("cuda"))
        opt = make_optimizer(model, 1e-2, capturable=graphs)
        step = TrainStep(model, opt, classification_loss(model, precision, cache=not graphs), graphs=graphs)
        losses = []
        for lr, batch in zip(lrs, batches):
            set_lr(opt, lr)
            losses.append(step(*batch).item())
        runs.append((losses, _params(model)))
    (want, want_p), (got, got_p) = runs
    tol = 2e-2 if precision == "bf16" else 1e-4
    assert got == pytest.approx(want, rel=tol, abs=tol)
    for p, q in zip(want_p, got_p):
        assert torch.allclose(p, q, rtol=tol, atol=tol)


def test_fused_cell_is_for_cuda_only():
    from earlyfusion.runtime import can_compile_for

    assert can_compile_for(torch.device("cpu")) is False  # measured no faster on the CPU


def test_an_odd_shape_after_a_capture_uses_the_hand_written_cell():
    """An epoch's last, smaller batch of a graphed run steps eagerly with the hand-written
    cell (a compile for that one shape cost 13 s of a 97 s run on an H100); the flag is back
    afterwards, and a step before any capture keeps the model's choice."""
    model = _model()
    model.fused_cell = True
    seen = []
    loss_fn = classification_loss(model, "fp32")

    def spy(*batch):  # records the cell the step asked for, then runs uncompiled (fast here)
        seen.append(model.fused_cell)
        with model.hand_written_cell():
            return loss_fn(*batch)

    step = TrainStep(model, make_optimizer(model, 1e-3, capturable=False), spy, graphs=False)
    step(*_batch())
    step.graph, step.static = object(), _batch(b=4)  # as after a capture at batch 4
    step(*_batch(b=3))
    assert seen == [True, False] and model.fused_cell is True
    with pytest.raises(RuntimeError), model.hand_written_cell():
        raise RuntimeError
    assert model.fused_cell is True
