"""FusionNet is the paper's model family: reference equivalence, causality, fusion locality,
unimodal zeroing, shapes, gradients (A.1, A.2, Figure 5, paper 5.3, A.5)."""

from __future__ import annotations

import shutil

import pytest
import torch

from earlyfusion.models import build_model
from earlyfusion.models.reference import ReferenceNet

# (fusion, layers): the paper's three models plus deeper stacks fused at layer 2 and 3.
LEVELS = [("initial", 2), ("second", 2), ("fc", 2), (2, 3), ("3", 3), (1, 1), ("fc", 3)]
FUSED_LAYER = {("initial", 2): 1, ("second", 2): 2, ("fc", 2): None, (2, 3): 2, ("3", 3): 3, (1, 1): 1,
               ("fc", 3): None}
MODALITIES = ["both", "audio", "visual"]
SMALL = dict(hidden=4, kernel=3, dense=16)


def small_model(fusion, layers, modality="both", seed=0):
    torch.manual_seed(seed)
    return build_model(fusion=fusion, layers=layers, modality=modality, **SMALL)


def inputs(batch=2, steps=5, seed=1):
    g = torch.Generator().manual_seed(seed)
    return torch.rand(batch, 1, 28, 28, generator=g), torch.rand(batch, steps, 201, generator=g)


@pytest.mark.parametrize("modality", MODALITIES)
@pytest.mark.parametrize("fusion,layers", LEVELS)
def test_matches_reference(fusion, layers, modality):
    model = small_model(fusion, layers, modality)
    ref = ReferenceNet.from_model(model)
    image, spec = inputs()
    image.requires_grad_(True), spec.requires_grad_(True)
    fast, slow = model(image, spec, return_sequence=True), ref(image, spec, return_sequence=True)
    assert fast.shape == slow.shape == (2, 5, 10)
    assert fast.std() > 1e-3  # a non-degenerate output, so agreement means something
    torch.testing.assert_close(fast, slow, rtol=1e-5, atol=1e-6)
    torch.testing.assert_close(model(image, spec), slow[:, -1], rtol=1e-5, atol=1e-6)
    g_fast = _grads(fast.square(), image, spec)
    g_slow = _grads(slow.square(), image, spec)
    for a, b in zip(g_fast, g_slow):
        torch.testing.assert_close(a, b, rtol=1e-4, atol=1e-6)


def test_reference_sees_a_weight_change():
    model = small_model("initial", 2)
    image, spec = inputs()
    before = ReferenceNet.from_model(model)(image, spec)
    with torch.no_grad():
        model.clstm[0].audio.weight[0, 0] += 1.0  # f gate, first bin
    after = ReferenceNet.from_model(model)(image, spec)
    assert not torch.allclose(before, after)
    torch.testing.assert_close(model(image, spec), after, rtol=1e-5, atol=1e-6)


@pytest.mark.parametrize("fusion,layers", LEVELS)
def test_causal_in_time(fusion, layers):
    model = small_model(fusion, layers)
    image, spec = inputs(steps=6)
    later = spec.clone()
    later[:, 3:] = torch.rand_like(later[:, 3:])  # frames after t = 2 change
    a, b = model(image, spec, return_sequence=True), model(image, later, return_sequence=True)
    torch.testing.assert_close(a[:, :3], b[:, :3], rtol=0, atol=1e-6)
    assert (a[:, 3:] - b[:, 3:]).abs().max() > 1e-4


def _capture(module, store, key):
    def hook(_mod, _inp, out):
        # ConvLSTM returns (h_1..h_T, (h_T, c_T)), nn.LSTM (output, (h_n, c_n)), blocks a tensor.
        out = out[0] if isinstance(out, tuple) else out
        store[key] = out[-1] if isinstance(out, list) else out

    return module.register_forward_hook(hook)


def _grads(out, image, spec):
    """d sum(out) / d (image, spec); an input the output does not use gets exact zeros."""
    g = torch.autograd.grad(out.sum(), (image, spec), retain_graph=True, allow_unused=True)
    return [torch.zeros_like(x) if d is None else d for d, x in zip(g, (image, spec))]


def _grad_sizes(out, image, spec):
    return [d.abs().sum().item() for d in _grads(out, image, spec)]


@pytest.mark.parametrize("fusion,layers", LEVELS)
def test_fusion_happens_at_the_configured_layer(fusion, layers):
    model = small_model(fusion, layers)
    k = FUSED_LAYER[fusion, layers]
    unimodal = layers if k is None else k - 1
    assert len(model.visual) == unimodal and len(model.clstm) == layers - unimodal
    store = {}
    for j, block in enumerate(model.visual):
        _capture(block, store, f"visual{j}")
    if model.audio is not None:
        _capture(model.audio, store, "audio")
    if model.clstm:
        _capture(model.clstm[0], store, "fused")
    image, spec = inputs()
    image.requires_grad_(True), spec.requires_grad_(True)
    logits = model(image, spec)
    for j in range(unimodal):  # unimodal visual layers never see the audio: exactly zero
        to_image, to_audio = _grad_sizes(store[f"visual{j}"], image, spec)
        assert to_image > 0 and to_audio == 0.0
    if unimodal:
        to_image, to_audio = _grad_sizes(store["audio"], image, spec)
        assert to_image == 0.0 and to_audio > 0
    if k is not None:  # the fused C-LSTM layer's state depends on both inputs
        assert model.clstm[0].audio is not None and all(m.audio is None for m in model.clstm[1:])
        assert min(_grad_sizes(store["fused"], image, spec)) > 0
    assert min(_grad_sizes(logits, image, spec)) > 0


@pytest.mark.parametrize("fusion,layers", LEVELS)
def test_unimodal_zeroing_removes_the_other_input(fusion, layers):
    image, spec = inputs()
    other_image, other_spec = inputs(seed=7)
    both = small_model(fusion, layers, "both")
    visual = small_model(fusion, layers, "visual")
    audio = small_model(fusion, layers, "audio")
    assert torch.equal(visual(image, spec, True), visual(image, other_spec, True))
    assert torch.equal(audio(image, spec, True), audio(other_image, spec, True))
    torch.testing.assert_close(visual(image, spec), both(image, torch.zeros_like(spec)))
    torch.testing.assert_close(audio(image, spec), both(torch.zeros_like(image), spec))
    assert not torch.allclose(visual(image, spec), visual(other_image, spec))
    assert not torch.allclose(audio(image, spec), audio(image, other_spec))


@pytest.mark.parametrize("fusion,layers", LEVELS)
def test_gradients_reach_every_parameter(fusion, layers):
    model = small_model(fusion, layers)
    image, spec = inputs()
    model(image, spec).logsumexp(dim=1).sum().backward()
    for name, p in model.named_parameters():
        assert p.grad is not None and p.grad.abs().sum() > 0, name


@pytest.mark.parametrize("fmt", [torch.contiguous_format, torch.channels_last])
def test_cell_backward_is_the_true_gradient(fmt):
    from earlyfusion.models.clstm import _Cell

    torch.manual_seed(0)
    pre = torch.randn(2, 12, 4, 5, dtype=torch.double).contiguous(memory_format=fmt).requires_grad_()
    c = torch.randn(2, 3, 4, 5, dtype=torch.double).contiguous(memory_format=fmt).requires_grad_()
    assert torch.autograd.gradcheck(lambda p, c: _Cell.apply(p, c, 3), (pre, c))
    assert torch.autograd.gradcheck(lambda p: _Cell.apply(p, None, 3), (pre,))  # c_0 = 0
    assert torch.autograd.gradcheck(lambda p, c: _Cell.apply(p, c, 3)[0], (pre, c))  # c_T unused


@pytest.mark.filterwarnings("ignore:Using padding='same' with even kernel")
@pytest.mark.parametrize("kernel", [2, 4, 5])
def test_other_kernels_match_reference(kernel):
    # Even kernels pad asymmetrically under 'same'; the reference's centre tap must follow.
    torch.manual_seed(0)
    model = build_model(fusion="initial", hidden=3, kernel=kernel, dense=8)
    image, spec = inputs(steps=3)
    torch.testing.assert_close(model(image, spec, True), ReferenceNet.from_model(model)(image, spec, True),
                               rtol=1e-5, atol=1e-6)


def test_input_conv_chunks_and_memory_format_do_not_change_results(monkeypatch):
    import earlyfusion.models.clstm as clstm

    model = small_model(2, 3)
    image, spec = inputs(steps=7)
    whole = model(image, spec, return_sequence=True)
    monkeypatch.setattr(clstm, "CHUNK_VALUES", 1)  # one step per input convolution
    torch.testing.assert_close(model(image, spec, return_sequence=True), whole, rtol=1e-5, atol=1e-6)
    for fmt in (torch.channels_last, torch.contiguous_format):
        model.memory_format = fmt
        torch.testing.assert_close(model(image, spec, return_sequence=True), whole, rtol=1e-5, atol=1e-6)


@pytest.mark.parametrize("fusion,layers", [("initial", 2), (2, 3), ("3", 3)])
def test_no_grad_gives_the_same_values(fusion, layers):
    # Evaluation runs without autograd; the values must not change beyond fp32 rounding (the
    # convolution library may pick another algorithm then), odd sizes included (7 -> 3).
    model = small_model(fusion, layers)
    image, spec = inputs(steps=4)
    with_grad = model(image, spec, return_sequence=True)
    assert with_grad.requires_grad
    with torch.no_grad():
        torch.testing.assert_close(model(image, spec, return_sequence=True), with_grad, rtol=1e-5, atol=1e-6)


def test_channels_last_pooling_matches_max_pool2d_ties_included():
    from earlyfusion.models.fusion import _Pool2

    torch.manual_seed(0)
    x = torch.randn(2, 3, 7, 7, dtype=torch.double, requires_grad=True)  # odd size: floor to 3x3
    assert torch.autograd.gradcheck(_Pool2.apply, (x,))
    # A constant map ties in every window (h_1 of the audio-only model is spatially uniform):
    # the gradient must go to the same single position as nn.functional.max_pool2d's.
    for base in (torch.ones(2, 3, 6, 6), torch.randn(2, 3, 6, 6).round()):
        a, b = base.clone().requires_grad_(), base.clone().requires_grad_()
        g = torch.randn(2, 3, 3, 3)
        out = _Pool2.apply(a)
        torch.testing.assert_close(out, torch.nn.functional.max_pool2d(b, 2), rtol=0, atol=0)
        out.backward(g)
        torch.nn.functional.max_pool2d(b, 2).backward(g)
        assert torch.equal(a.grad, b.grad) and a.grad.is_contiguous()


def test_conv_weights_follow_the_model_memory_format():
    # On CUDA, NCHW weights with channels-last activations made cuDNN convert W_h and h_t at
    # every step (BENCHMARKS.md); the conv weights take the model's layout.
    layer = small_model("initial", 2).clstm[0]
    for fmt in (torch.contiguous_format, torch.channels_last):
        w_x, _, w_h, _ = layer._weights(torch.device("cpu"), fmt)
        assert w_h.is_contiguous(memory_format=fmt) and w_x.is_contiguous(memory_format=fmt)


needs_compiler = pytest.mark.skipif(shutil.which("cc") is None and shutil.which("gcc") is None,
                                    reason="torch.compile on the CPU needs a C compiler")


@needs_compiler
@pytest.mark.parametrize("fmt", [torch.contiguous_format, torch.channels_last])
@pytest.mark.parametrize("fusion,layers", [("initial", 2), ("second", 2)])
def test_fused_cell_matches_the_cell(fusion, layers, fmt):
    """The compiled gate arithmetic (fused_cell) gives the hand-written cell's values and
    gradients, c_0 = 0 and unused final states included, through a whole model."""
    image, spec = inputs(steps=4)
    runs = []
    for fused in (False, True):
        model = small_model(fusion, layers)
        model.memory_format, model.fused_cell = fmt, fused
        out = model(image, spec, return_sequence=True)
        out.square().sum().backward()
        runs.append((out.detach(), [p.grad for p in model.parameters()]))
    (want, want_g), (got, got_g) = runs
    torch.testing.assert_close(got, want, rtol=1e-5, atol=1e-6)
    for a, b in zip(got_g, want_g):
        torch.testing.assert_close(a, b, rtol=1e-4, atol=1e-6)


@needs_compiler
def test_fused_cell_serves_another_batch_size():
    """An epoch's last, smaller batch goes through the compiled cell (compiled anew for its
    shape) and still matches the hand-written cell."""
    model = small_model("initial", 2)
    model.fused_cell = True
    image, spec = inputs(batch=3, steps=3)
    model(image, spec).sum().backward()
    model.zero_grad()
    image, spec = inputs(batch=2, steps=3, seed=2)
    got = model(image, spec)
    got.sum().backward()
    grads = [p.grad.clone() for p in model.parameters()]
    model.zero_grad()
    model.fused_cell = False
    want = model(image, spec)
    want.sum().backward()
    torch.testing.assert_close(got, want, rtol=1e-5, atol=1e-6)
    for p, g in zip(model.parameters(), grads):
        torch.testing.assert_close(g, p.grad, rtol=1e-4, atol=1e-6)


def test_the_layer_sequence_backward_makes_no_whole_sequence_copies(monkeypatch):
    """A later layer's input convolution runs in chunks of steps; their backward must not
    zero-fill and accumulate a tensor of the whole sequence per chunk (slice backward); a
    channels-last model must not stack per-step tensors or gradients into a 5-D tensor (which
    comes out NCHW whatever its parts' layout)."""
    from torch.utils._python_dispatch import TorchDispatchMode

    from earlyfusion.models import clstm

    class Ops(TorchDispatchMode):
        def __init__(self):
            super().__init__()
            self.seen = []

        def __torch_dispatch__(self, func, types, args=(), kwargs=None):
            out = func(*args, **(kwargs or {}))
            self.seen.append((str(func), tuple(out.shape) if isinstance(out, torch.Tensor) else ()))
            return out

    monkeypatch.setattr(clstm, "CHUNK_VALUES", 2 * 16 * 14 * 14 * 2)  # B 2, 4h 16: 2 steps a chunk, 3 chunks
    for fmt in (torch.contiguous_format, torch.channels_last):
        model = small_model("initial", 2)
        model.memory_format = fmt
        image, spec = inputs(batch=2, steps=6)
        with Ops() as ops:
            model(image, spec).sum().backward()
        names = [name for name, _ in ops.seen]
        assert names.count("aten.convolution.default") >= 1 + 3  # the image's conv, then 3 chunks
        assert "aten.slice_backward.default" not in names
        stacked = [shape for name, shape in ops.seen if name == "aten.stack.default" and len(shape) == 5
                   and shape[-1] > 1]
        assert not stacked or fmt == torch.contiguous_format, "a 5-D stack in a channels-last model"


@needs_compiler
def test_fused_cell_writes_the_models_layout():
    """The compiled cell's outputs and the gradient it hands the recurrent convolution are
    channels-last in a channels-last model, whatever layout the incoming gradients have."""
    from earlyfusion.models.clstm import _FusedCell

    cl = torch.channels_last
    g = torch.Generator().manual_seed(0)
    rec, gx = (torch.randn(2, 12, 5, 5, generator=g).contiguous(memory_format=cl).requires_grad_() for _ in range(2))
    c_prev = torch.randn(2, 3, 5, 5, generator=g).contiguous(memory_format=cl)
    seen = []
    rec_in = rec * 1  # a non-leaf: its hook sees the gradient as the cell hands it over
    rec_in.register_hook(lambda grad: seen.append(grad.is_contiguous(memory_format=cl)))
    h, c = _FusedCell.apply(rec_in, gx, None, c_prev, 3, True)
    assert h.is_contiguous(memory_format=cl) and c.is_contiguous(memory_format=cl)
    (h * torch.randn(2, 3, 5, 5, generator=g)).sum().backward()  # an NCHW upstream gradient
    assert seen == [True]
