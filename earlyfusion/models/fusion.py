"""FusionNet: an L-layer audio-visual stack fused at layer k or at the dense layers (A.2).

Layers before k are unimodal: the visual stream is conv + ReLU + 2x2 max pool (static over
time, so computed once per example), the audio stream an LSTM over the spectrogram frames.
Layer k is the fused C-LSTM of Figure 5: its convolution reads the static visual map (the raw
image when k = 1) and its dense term the audio (the spectrogram frame a_t when k = 1, the audio
LSTM's output otherwise). Layers after k are C-LSTMs whose input x_t is the previous layer's
pooled h_t (A.1). Every C-LSTM layer is followed by a 2x2 max pool. The head (dense 128 ReLU,
dense 10) reads the last layer's pooled state at the last step, or at every step (A.5).
With fusion at the dense layers ("fc") all L layers are unimodal and the head reads the
flattened visual features ++ the audio LSTM's state.
"""

from __future__ import annotations

import contextlib
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn

from earlyfusion.config import ModelConfig
from earlyfusion.models.clstm import ConvLSTM

# The paper's three models (A.2) as fusion layers; None: fusion at the dense layers.
FUSION_LEVELS = {"initial": 1, "second": 2, "fc": None}
MODALITIES = ("both", "audio", "visual")


@dataclass(frozen=True)
class FusionState:
    """Where a FusionNet's time loop stands after ``steps`` frames (``FusionNet.run``).

    clstm: one (h, c) per C-LSTM layer, each (B, hidden, H, W); audio: the audio LSTM's
    (h, c), each (num_layers, B, hidden), or None when the model has no audio LSTM. The static
    visual features are not held: ``run`` recomputes them from the image (one conv per example).
    """

    steps: int
    clstm: tuple[tuple[torch.Tensor, torch.Tensor], ...]
    audio: tuple[torch.Tensor, torch.Tensor] | None

    @property
    def batch_size(self) -> int:
        return self.clstm[0][0].shape[0] if self.clstm else self.audio[0].shape[1]

    def repeat_interleave(self, r: int) -> "FusionState":
        """Each example's state repeated r times along the batch: rows b*r .. b*r + r - 1."""
        clstm = tuple((h.repeat_interleave(r, 0), c.repeat_interleave(r, 0)) for h, c in self.clstm)
        audio = None if self.audio is None else tuple(x.repeat_interleave(r, 1) for x in self.audio)
        return FusionState(self.steps, clstm, audio)


class VisualBlock(nn.Module):
    """Unimodal visual layer: conv(hidden, k x k, 'same') + ReLU + 2x2 max pool (A.2)."""

    def __init__(self, in_channels: int, hidden: int, kernel: int):
        super().__init__()
        self.conv = nn.Conv2d(in_channels, hidden, kernel, padding="same")

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return F.max_pool2d(F.relu(self.conv(x)), 2)


class FusionNet(nn.Module):
    """The model family of A.2; build it with ``build_model``."""

    # Layout of every activation (the input's, inherited downstream). A lone channels-last
    # 3x3 conv is faster on CPU, but the whole model measured as fast or faster in NCHW
    # (1.5x at 16 units; docs/model.md), so NCHW is the default; set torch.channels_last
    # on an instance to switch.
    memory_format = torch.contiguous_format
    # The gate arithmetic as two compiled kernels per step (torch.compile; clstm._FusedCell):
    # 1.3-1.4x faster training steps on an H100, 1.02-1.07x on the CPU, where compiling costs
    # more than it saves (BENCHMARKS.md). train.py turns it on for CUDA (train.cuda_fused_cell).
    fused_cell = False

    def __init__(self, *, fusion_layer: int | None, modality: str, hidden: int, kernel: int,
                 layers: int, dense: int, bins: int, classes: int, image_size: int):
        super().__init__()
        self.fusion_layer, self.modality = fusion_layer, modality
        self.bins, self.image_size, self.layers = bins, image_size, layers
        unimodal = layers if fusion_layer is None else fusion_layer - 1
        chans = [1] + [hidden] * layers
        self.visual = nn.Sequential(*[VisualBlock(chans[j], hidden, kernel) for j in range(unimodal)])
        # Audio stream: a stacked LSTM of `hidden` units (A.2 "LSTM layer with 64 units").
        self.audio = nn.LSTM(bins, hidden, num_layers=unimodal, batch_first=True) if unimodal else None
        self.clstm = nn.ModuleList()
        for j in range(unimodal, layers):
            audio_dim = (bins if j == 0 else hidden) if j == unimodal else 0
            self.clstm.append(ConvLSTM(in_channels=chans[j], hidden=hidden, kernel=kernel, audio_dim=audio_dim))
        side = image_size
        for _ in range(layers):
            side //= 2  # every layer ends in a 2x2 max pool (floor)
        if side < 1:
            raise ValueError(f"image_size {image_size} is too small for {layers} pooled layers")
        features = hidden * side * side + (hidden if fusion_layer is None else 0)
        self.head = nn.Sequential(nn.Linear(features, dense), nn.ReLU(), nn.Linear(dense, classes))

    @contextlib.contextmanager
    def hand_written_cell(self):
        """The hand-written cell inside the block, whatever ``fused_cell`` says: for a batch of
        a shape the compiled cell has not seen (compiling it for an epoch's last batch cost
        13 s of a 97 s run on an H100) or for evaluation."""
        fused, self.fused_cell = self.fused_cell, False
        try:
            yield self
        finally:
            self.fused_cell = fused

    def forward(self, image: torch.Tensor, spec: torch.Tensor, return_sequence: bool = False) -> torch.Tensor:
        """image (B, 1, S, S), spec (B, T, F) -> logits (B, classes), or (B, T, classes)."""
        return self.run(image, spec, return_sequence=return_sequence)[0]

    def run(self, image: torch.Tensor, spec: torch.Tensor, state: FusionState | None = None,
            return_sequence: bool = False) -> tuple[torch.Tensor, FusionState]:
        """Process the frames ``spec`` from ``state`` (None: h_0 = c_0 = 0, the first frame).

        Returns (logits at the last frame given, or at each of them, (B, T_chunk, classes)) and
        the state after them. Running spec[:, :t0] and then spec[:, t0:] from the returned
        state gives what one call over spec gives (the model is causal in time). The state
        keeps the autograd graph; run under no_grad when only values are needed.
        """
        self._check(image, spec)
        if state is not None and state.batch_size != image.shape[0]:
            raise ValueError(f"state batch {state.batch_size} != input batch {image.shape[0]}")
        # Unimodal models (paper 5.3): the other input is set to zero before the network.
        if self.modality == "visual":
            spec = torch.zeros_like(spec)
        elif self.modality == "audio":
            image = torch.zeros_like(image)
        image = image.contiguous(memory_format=self.memory_format)  # later tensors follow it
        visual = self.visual(image)  # (B, C, S', S'): static, computed once per example
        audio_state = None
        if self.audio is not None:  # (B, T, hidden)
            audio, audio_state = self.audio(spec, None if state is None else state.audio)
        else:
            audio = spec  # (B, T, F)
        steps = spec.shape[1] + (0 if state is None else state.steps)
        if self.fusion_layer is None:
            return self._fc_head(visual, audio, return_sequence), FusionState(steps, (), audio_state)
        logits, clstm = self._clstm_stack(visual, audio, return_sequence, None if state is None else state.clstm)
        return logits, FusionState(steps, clstm, audio_state)

    def _clstm_stack(self, visual: torch.Tensor, audio: torch.Tensor, return_sequence: bool,
                     states: tuple | None) -> tuple[torch.Tensor, tuple]:
        steps = audio.shape[1]
        x, a = visual, audio
        finals = []
        for n, layer in enumerate(self.clstm):
            last = n == len(self.clstm) - 1
            start = None if states is None else tuple(t.contiguous(memory_format=self.memory_format)
                                                      for t in states[n])
            hs, final = layer(x, a, steps=steps, keep_all=return_sequence or not last, state=start,
                              memory_format=self.memory_format, fused=self.fused_cell)
            finals.append(final)
            # Pool each h_t; time-major (T', B, hidden, S/2, S/2) keeps (T'*B, ...) a view.
            x, a = _pool_stack(hs, self.memory_format), None
        flat = x.flatten(2)  # (T', B, hidden * S'^2) in (C, H, W) order
        logits = self.head(flat).transpose(0, 1)  # (B, T', classes)
        return (logits if return_sequence else logits[:, -1]), tuple(finals)

    def _fc_head(self, visual: torch.Tensor, audio: torch.Tensor, return_sequence: bool) -> torch.Tensor:
        flat = visual.flatten(1)  # (B, hidden * S'^2)
        if not return_sequence:
            return self.head(torch.cat([flat, audio[:, -1]], dim=1))  # last LSTM step (A.2)
        seq = torch.cat([flat[:, None].expand(-1, audio.shape[1], -1), audio], dim=2)  # (B, T, .)
        return self.head(seq)

    def _check(self, image: torch.Tensor, spec: torch.Tensor) -> None:
        s = self.image_size
        if image.dim() != 4 or tuple(image.shape[1:]) != (1, s, s):
            raise ValueError(f"image must be (B, 1, {s}, {s}), got {tuple(image.shape)}")
        if spec.dim() != 3 or spec.shape[2] != self.bins or spec.shape[1] < 1:
            raise ValueError(f"spec must be (B, T, {self.bins}) with T >= 1, got {tuple(spec.shape)}")
        if image.shape[0] != spec.shape[0]:
            raise ValueError(f"batch sizes differ: image {image.shape[0]}, spec {spec.shape[0]}")


def _pool_stack(hs: list[torch.Tensor], memory_format: torch.memory_format) -> torch.Tensor:
    """2x2 max pool of each h_t, time-major (T, B, C, S/2, S/2) in ``memory_format`` (so that
    (T*B, C, S/2, S/2) is a view in it)."""
    if memory_format == torch.channels_last:
        # cat, then a view: a 5-D stack of channels-last tensors comes out NCHW, and so would
        # its gradient (a layout copy at every step on a GPU).
        pooled = torch.cat([F.max_pool2d(h, 2) for h in hs])
        return pooled.view(len(hs), -1, *pooled.shape[1:])
    return torch.stack([_Pool2.apply(h) for h in hs]).contiguous()  # _Pool2 gives channels-last


class _Pool2(torch.autograd.Function):
    """2x2 max pool of an NCHW tensor, computed channels-last, its gradient NCHW.

    CPU max pooling ran 5-20x faster channels-last than NCHW at these sizes (a (32, 64, 28, 28)
    fp32 pool: 10 ms NCHW, 0.5 ms channels-last, one thread), more than the layout copy costs.
    The indices do not depend on the layout, so the backward runs NCHW on NCHW gradients
    (a channels-last gradient made the accumulation into h_t's NCHW gradient slow).
    """

    @staticmethod
    def forward(ctx, h):
        out, idx = torch.ops.aten.max_pool2d_with_indices(h.contiguous(memory_format=torch.channels_last),
                                                          [2, 2], [2, 2])
        ctx.save_for_backward(h, idx)
        return out

    @staticmethod
    def backward(ctx, grad):
        h, idx = ctx.saved_tensors
        return torch.ops.aten.max_pool2d_with_indices_backward(grad.contiguous(), h, [2, 2], [2, 2], [0, 0], [1, 1],
                                                               False, idx.contiguous())


def parse_fusion(fusion: str | int, layers: int) -> int | None:
    """'initial' | 'second' | 'fc' | k | 'k' -> the fused layer k in 1..layers, or None (fc)."""
    if isinstance(fusion, bool):
        raise ValueError(f"fusion must be a name or a layer number, got {fusion!r}")
    if isinstance(fusion, str):
        key = fusion.strip().lower()
        if key in FUSION_LEVELS:
            k = FUSION_LEVELS[key]
        elif key.isdigit():
            k = int(key)
        else:
            raise ValueError(f"unknown fusion {fusion!r}; use one of {sorted(FUSION_LEVELS)} or a layer number")
    elif isinstance(fusion, int):
        k = fusion
    else:
        raise ValueError(f"fusion must be a name or a layer number, got {fusion!r}")
    if k is not None and not 1 <= k <= layers:
        raise ValueError(f"fusion layer {k} (from {fusion!r}) is out of range 1..{layers} for layers={layers}")
    return k


def _positive(**sizes: int) -> None:
    for name, value in sizes.items():
        if isinstance(value, bool) or not isinstance(value, int) or value < 1:
            raise ValueError(f"{name} must be a positive int, got {value!r}")


def build_model(*, fusion: str | int = "initial", modality: str = "both", hidden: int = 64, kernel: int = 3,
                layers: int = 2, dense: int = 128, bins: int = 201, classes: int = 10,
                image_size: int = 28) -> FusionNet:
    """The one public way to make a model; defaults are the paper's sizes (A.2)."""
    _positive(hidden=hidden, kernel=kernel, layers=layers, dense=dense, bins=bins, classes=classes,
              image_size=image_size)
    if modality not in MODALITIES:
        raise ValueError(f"unknown modality {modality!r}; use one of {MODALITIES}")
    return FusionNet(fusion_layer=parse_fusion(fusion, layers), modality=modality, hidden=hidden,
                     kernel=kernel, layers=layers, dense=dense, bins=bins, classes=classes,
                     image_size=image_size)


def build_model_from_config(cfg: ModelConfig) -> FusionNet:
    """build_model from a ``ModelConfig`` (earlyfusion.config)."""
    return build_model(fusion=cfg.fusion, modality=cfg.modality, hidden=cfg.hidden, kernel=cfg.kernel,
                       layers=cfg.layers, dense=cfg.dense)
