"""The convolutional LSTM layer of Figure 5 (paper A.1).

At every spatial position and step t (Figure 5, `*` convolution, `.` element-wise):

    [f, i, g, o]_t = conv(x) + conv(h_{t-1}) + W_a a_t + b
    c_t = sigmoid(f) . c_{t-1} + sigmoid(i) . tanh(g)
    h_t = sigmoid(o) . tanh(c_t)

with separate c and h per position and h_0 = c_0 = 0 (A.1). The audio term W_a a_t is a
dense product of one vector, the same at every position; only the fused layer has it.

Fast by construction: everything that does not depend on h_{t-1} is computed for all steps
at once before the time loop (the input convolution, once per example when x is static,
one batched convolution over B*T images otherwise; the audio term as one (B*T)-row matmul).
Per step only the recurrent convolution and the gate arithmetic remain.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

# Figure 5 lists the gates as f, i, g, o; parameters are stored in that order. The forward
# pass permutes output channels to f, i, o, g so that one sigmoid covers the three sigmoid
# gates' channels and one tanh the cell gate (a weight permutation, not an activation copy).
GATES = ("f", "i", "g", "o")

# A later layer's input convolution covers as many steps at once as fit in this many values
# (256 MB in fp32): all 92 steps for small batches, bounded memory for evaluation batches.
CHUNK_VALUES = 1 << 26


def _fast_order(hidden: int, device: torch.device) -> torch.Tensor:
    """Channel index that maps Figure 5's f, i, g, o blocks to f, i, o, g."""
    f, i, g, o = torch.arange(4 * hidden, device=device).view(4, hidden)
    return torch.cat([f, i, o, g])


class ConvLSTM(nn.Module):
    """One C-LSTM layer over a whole sequence (Figure 5).

    conv_x holds W_*v (first layer) or W_*x (later layers) and the bias b; conv_h holds W_*h;
    audio holds W_*a and exists only when ``audio_dim`` > 0 (the fused layer).
    """

    def __init__(self, *, in_channels: int, hidden: int, kernel: int, audio_dim: int = 0):
        super().__init__()
        self.hidden = hidden
        self.kernel = kernel
        # 'same' padding (silent in the paper): the state keeps the image's spatial size.
        self.conv_x = nn.Conv2d(in_channels, 4 * hidden, kernel, padding="same")
        self.conv_h = nn.Conv2d(hidden, 4 * hidden, kernel, padding="same", bias=False)
        self.audio = nn.Linear(audio_dim, 4 * hidden, bias=False) if audio_dim else None

    def forward(self, x: torch.Tensor, audio: torch.Tensor | None = None, *, steps: int | None = None,
                keep_all: bool = True, state: tuple[torch.Tensor, torch.Tensor] | None = None,
                memory_format: torch.memory_format = torch.contiguous_format, fused: bool = False
                ) -> tuple[list[torch.Tensor], tuple[torch.Tensor, torch.Tensor]]:
        """Run the layer over T steps, from ``state`` = (h, c) or from h_0 = c_0 = 0 (None).

        x: (B, C, H, W) static input (the image or a static visual map, the same at every
        step) or (T, B, C, H, W) a time-major sequence (so that (T*B, C, H, W) is a view in
        any memory format); audio: (B, T, D) or None; memory_format: the layout of the conv
        weights, which should match the activations' (the model's); fused: the gate arithmetic
        as two compiled kernels (``_FusedCell``). Returns the hidden states h_1..h_T, each
        (B, hidden, H, W) in x's memory format (only h_T when ``keep_all`` is False), and the
        final (h_T, c_T) to continue from.
        """
        if (audio is None) != (self.audio is None):
            raise ValueError("audio input must be given exactly when the layer has an audio term")
        static = x.dim() == 4
        steps = steps if steps is not None else (audio.shape[1] if audio is not None else x.shape[0])
        w_x, b_x, w_h, w_a = self._weights(x.device, memory_format)
        gxs = self._input_gates(x, w_x, b_x, static, steps)  # T x (B, 4h, H, W)
        # One matmul over all B*T frames: (B, T, D) -> (B, T, 4h), then T x (B, 4h, 1, 1).
        gas = None if audio is None else F.linear(audio, w_a)[..., None, None].unbind(1)
        h, c = state if state is not None else (None, None)
        out, channels_last = [], memory_format == torch.channels_last
        for t in range(steps):
            gx, ga = next(gxs), None if gas is None else gas[t]
            if fused:
                h, c = self._fused_step(h, c, gx, ga, w_h, channels_last)
            else:
                h, c = self._step(h, c, gx, ga, w_h)
            if keep_all or t == steps - 1:
                out.append(h)
        return out, (h, c)

    def _step(self, h, c, gx, ga, w_h):
        """One step, the hand-written cell on pre = conv(h) + gx [+ ga]."""
        if h is None:  # h_0 = 0: the recurrent conv of a fresh start is zero
            pre = gx if ga is None else gx + ga
        else:
            # Accumulate into the conv's fresh output (its backward does not need it):
            # no new full-size tensor per term.
            pre = F.conv2d(h, w_h, padding="same")
            pre += gx
            if ga is not None:
                pre += ga  # broadcast over every position
        return _Cell.apply(pre, c, self.hidden)

    def _fused_step(self, h, c, gx, ga, w_h, channels_last: bool):
        """One step, the compiled cell (the terms are summed inside its kernel)."""
        rec = None if h is None else F.conv2d(h, w_h, padding="same")
        return _FusedCell.apply(rec, gx, ga, c, self.hidden, channels_last)

    def _weights(self, device: torch.device, memory_format: torch.memory_format):
        """W_x, b, W_h, W_a in f, i, o, g order, cast once to the autocast dtype if active,
        the conv weights in ``memory_format``.

        Autocast caches casts of leaf parameters only; the permuted weights are not leaves,
        so without this it would cast W_h again at every step. The layout matters on CUDA: a
        one-channel image and NCHW weights made cuDNN convert W_h and h_t to NHWC and back at
        every step (measured on an H100: 18% of a step's kernel time, BENCHMARKS.md).
        """
        order = _fast_order(self.hidden, device)
        ws = [self.conv_x.weight[order], self.conv_x.bias[order], self.conv_h.weight[order],
              None if self.audio is None else self.audio.weight[order]]
        if torch.is_autocast_enabled(device.type):
            dtype = torch.get_autocast_dtype(device.type)
            ws = [None if w is None else w.to(dtype) for w in ws]
        ws[0], ws[2] = (w.contiguous(memory_format=memory_format) for w in (ws[0], ws[2]))
        return ws

    def _input_gates(self, x: torch.Tensor, w: torch.Tensor, b: torch.Tensor, static: bool, steps: int):
        """Yield the input term conv(x_t) + b for t = 1..T, computed ahead of the loop."""
        if static:  # the image is the same at every step (A.1): one conv per example
            gx = F.conv2d(x, w, b, padding="same")
            for _ in range(steps):
                yield gx
            return
        bsz = x.shape[1]
        seq = x if x.shape[0] == steps else x[:steps]
        flat = seq.reshape(-1, *x.shape[2:])  # (T*B, C, H, W): a view of the time-major sequence
        chunk = max(1, CHUNK_VALUES // (bsz * w.shape[0] * x.shape[3] * x.shape[4]))
        # split, not slices or unbind: its backward is one cat of the parts' gradients, where
        # each slice's backward zero-fills and accumulates a tensor of the whole sequence's
        # size (19 of them per step at batch 256); and on 4-D views, so that every gradient
        # keeps its 2-D memory format (a 5-D stack of channels-last tensors comes out NCHW).
        for part in flat.split(chunk * bsz):
            gx = F.conv2d(part, w, b, padding="same")  # (t*B, 4h, H, W)
            yield from gx.split(bsz)  # t x (B, 4h, H, W)


class _Cell(torch.autograd.Function):
    """Gate arithmetic of Figure 5 on pre-activations in f, i, o, g channel order.

    A hand-written backward writes the four gates' gradients straight into one buffer; the
    generic autograd of the same ops zero-fills a full-size tensor per channel slice.
    c_prev None means c_0 = 0.
    """

    @staticmethod
    def forward(ctx, pre, c_prev, hidden):
        s = torch.sigmoid(pre[:, : 3 * hidden])  # f, i, o in one call
        g = torch.tanh(pre[:, 3 * hidden :])
        f, i, o = s[:, :hidden], s[:, hidden : 2 * hidden], s[:, 2 * hidden :]
        if c_prev is None:
            c = i * g
        else:
            c = f * c_prev
            c.addcmul_(i, g)
        tc = torch.tanh(c)
        ctx.hidden = hidden
        ctx.save_for_backward(s, g, c_prev, tc)
        return o * tc, c

    @staticmethod
    def backward(ctx, dh, dc):
        # In-place chains below: each full-size temporary is allocated once (fresh large
        # allocations page-fault on CPU, so they cost more than the arithmetic).
        s, g, c_prev, tc = ctx.saved_tensors
        n = ctx.hidden
        f, i, o = s[:, :n], s[:, n : 2 * n], s[:, 2 * n :]
        dh = torch.zeros_like(tc) if dh is None else dh
        dct = torch.mul(tc, tc).neg_().add_(1).mul_(o).mul_(dh)  # dL/dc_t via h_t = o . tanh(c_t)
        if dc is not None:
            dct += dc
        fmt = _layout(s)
        dpre = torch.empty((s.shape[0], 4 * n, *s.shape[2:]), dtype=s.dtype, device=s.device, memory_format=fmt)
        dsig = dpre[:, : 3 * n]
        if c_prev is None:
            dsig[:, :n].zero_()
        else:
            torch.mul(dct, c_prev, out=dsig[:, :n])  # df
        torch.mul(dct, g, out=dsig[:, n : 2 * n])  # di
        torch.mul(dh, tc, out=dsig[:, 2 * n :])  # do
        dsig.mul_(torch.mul(s, s).neg_().add_(s))  # through the sigmoids: s - s^2
        torch.mul(dct, i, out=dpre[:, 3 * n :]).mul_(torch.mul(g, g).neg_().add_(1))  # dg, via tanh
        dc_prev = None if c_prev is None else dct.mul_(f).to(c_prev.dtype)  # dct is no longer needed
        return dpre, dc_prev, None


def _pre(rec, gx, ga):
    """The pre-activation of Figure 5: conv(h_{t-1}) + (conv(x_t) + b) [+ W_a a_t, broadcast]."""
    pre = rec + gx
    return pre if ga is None else pre + ga


def _cell_math(rec, gx, ga, c_prev, hidden: int, channels_last: bool):
    """Figure 5's step from its terms (channels in f, i, o, g order) -> h_t, c_t, in the
    model's layout (written so by the kernel: a layout copy per step otherwise)."""
    pre = _pre(rec, gx, ga)
    s = torch.sigmoid(pre[:, : 3 * hidden])
    g = torch.tanh(pre[:, 3 * hidden :])
    f, i, o = s[:, :hidden], s[:, hidden : 2 * hidden], s[:, 2 * hidden :]
    c = f * c_prev + i * g
    return _laid_out(o * torch.tanh(c), channels_last), _laid_out(c, channels_last)


def _laid_out(x: torch.Tensor, channels_last: bool) -> torch.Tensor:
    """x in the model's layout; inside a compiled function this fixes the kernel's output strides."""
    return x.contiguous(memory_format=torch.channels_last if channels_last else torch.contiguous_format)


def _cell_grad(dh, dc, rec, gx, ga, c_prev, c, hidden: int, channels_last: bool):
    """The gradients of ``_cell_math``, its gates recomputed from the terms: dL/dpre (the
    gradient of rec and of gx; ga's is its sum over positions) and dL/dc_prev."""
    pre = _pre(rec, gx, ga)
    s = torch.sigmoid(pre[:, : 3 * hidden])
    g = torch.tanh(pre[:, 3 * hidden :])
    f, i, o = s[:, :hidden], s[:, hidden : 2 * hidden], s[:, 2 * hidden :]
    tc = torch.tanh(c)
    dct = dh * o * (1 - tc * tc) + dc
    dsig = torch.cat([dct * c_prev, dct * g, dh * tc], dim=1) * (s - s * s)
    dpre = torch.cat([dsig, dct * i * (1 - g * g)], dim=1)
    return _laid_out(dpre, channels_last), _laid_out(dct * f, channels_last)


_compiled: dict[str, object] = {}


def _fused(name: str):
    """``_cell_math`` or ``_cell_grad`` compiled once per process (lazily: importing is free).

    Static shapes: compiled with dynamic=True a whole training step ran 1.5x slower on an
    H100 (its profile: NCHW pooling, i.e. outputs no longer channels-last, BENCHMARKS.md). A
    batch of another shape runs with the hand-written cell instead (FusionNet.hand_written_cell).
    """
    if name not in _compiled:
        _compiled[name] = torch.compile({"math": _cell_math, "grad": _cell_grad}[name], dynamic=False)
    return _compiled[name]


class _FusedCell(torch.autograd.Function):
    """One step of the layer with the gate arithmetic compiled (``FusionNet.fused_cell``): the
    three pre-activation terms are summed inside the kernel (no full-size adds), and the
    backward recomputes the gates from them (one read of the terms, where storing the gates
    costs a write and a read). Per step two kernels replace ~25 small ones (BENCHMARKS.md, GPU).

    rec None (h_0 = 0) and c_prev None (c_0 = 0) become zeros. The state-sized tensors are
    brought to the model's layout (``channels_last``; a stride difference would compile
    anew) and the kernels write their outputs in it; the gate-sized inputs are passed as
    they come (the same layout at every step), never copied.
    """

    @staticmethod
    def forward(ctx, rec, gx, ga, c_prev, hidden, channels_last):
        fmt = torch.channels_last if channels_last else torch.contiguous_format
        ctx.fresh, ctx.hidden, ctx.channels_last = c_prev is None, hidden, channels_last
        rec = torch.zeros_like(gx) if rec is None else rec.detach()
        c_prev = torch.zeros_like(gx[:, :hidden], memory_format=fmt) if c_prev is None else c_prev
        c_prev = c_prev.detach().contiguous(memory_format=fmt)
        gx, ga = gx.detach(), (None if ga is None else ga.detach())
        h, c = _fused("math")(rec, gx, ga, c_prev, hidden, channels_last)
        ctx.save_for_backward(rec, gx, ga, c_prev, c)
        return h, c

    @staticmethod
    def backward(ctx, dh, dc):
        rec, gx, ga, c_prev, c = ctx.saved_tensors
        fmt = torch.channels_last if ctx.channels_last else torch.contiguous_format
        dh, dc = (torch.zeros_like(c, memory_format=fmt) if d is None else d.contiguous(memory_format=fmt)
                  for d in (dh, dc))
        dpre, dc_prev = _fused("grad")(dh, dc, rec, gx, ga, c_prev, c, ctx.hidden, ctx.channels_last)
        # The audio term's gradient outside the kernel: a sum over positions fused into it
        # ran as a slow strided reduction (18% of a step on an H100).
        dga = None if ga is None else dpre.sum((2, 3), keepdim=True)
        drec = dpre if ctx.needs_input_grad[0] else None
        return drec, dpre, dga, (None if ctx.fresh else dc_prev.to(c_prev.dtype)), None, None


def _layout(x: torch.Tensor) -> torch.memory_format:
    """channels-last where x is (and has more than one channel), else NCHW."""
    cl = x.shape[1] > 1 and x.is_contiguous(memory_format=torch.channels_last) and not x.is_contiguous()
    return torch.channels_last if cl else torch.contiguous_format
