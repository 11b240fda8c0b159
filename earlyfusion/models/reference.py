"""The plain ConvLSTM port: test oracle and benchmark baseline for FusionNet.

The usual ConvLSTM implementation: at every step, concatenate the layer's input with h_{t-1}
along channels and run one convolution that yields all four gates. Nothing is hoisted out of
the time loop: the image is convolved again at every step. In the fused layer the audio frame
a_t enters as D extra channels, a_t broadcast over every position, whose kernel is zero except
its centre tap; that computes Figure 5's dense term W_a a_t exactly, borders included (a full
k x k kernel over broadcast channels would differ where 'same' padding adds zeros).

The audio LSTM is stepped by hand from nn.LSTM's weights (PyTorch gate order i, f, g, o), so
the oracle does not share code with the model it checks. Build it with ``ReferenceNet.from_model``.
"""

from __future__ import annotations

import copy

import torch
import torch.nn.functional as F
from torch import nn

from earlyfusion.models.fusion import FusionNet


def _param(t: torch.Tensor) -> nn.Parameter:
    return nn.Parameter(t.detach().clone())


class RefConvLSTM(nn.Module):
    """Concat-then-conv C-LSTM: one (in + hidden + audio) -> 4*hidden convolution per step."""

    def __init__(self, layer):
        super().__init__()
        self.hidden = layer.hidden
        w = [layer.conv_x.weight, layer.conv_h.weight]  # (4h, C, k, k), (4h, h, k, k), f,i,g,o
        if layer.audio is not None:
            k = layer.kernel
            w_a = layer.audio.weight.detach()
            centre = torch.zeros(4 * layer.hidden, layer.audio.in_features, k, k, dtype=w_a.dtype, device=w_a.device)
            # 'same' padding puts (k - 1) // 2 zeros before each row, so this tap reads the pixel.
            centre[:, :, (k - 1) // 2, (k - 1) // 2] = w_a
            w.append(centre)
        self.weight = _param(torch.cat(w, dim=1))
        self.bias = _param(layer.conv_x.bias)

    def step(self, x, h, c, a=None):
        """x (B, C, H, W), h and c (B, hidden, H, W), a (B, D) or None -> h, c."""
        parts = [x, h]
        if a is not None:
            parts.append(a[:, :, None, None].expand(-1, -1, *x.shape[2:]))  # (B, D, H, W)
        pre = F.conv2d(torch.cat(parts, dim=1), self.weight, self.bias, padding="same")
        f, i, g, o = pre.chunk(4, dim=1)  # Figure 5's order
        c = torch.sigmoid(f) * c + torch.sigmoid(i) * torch.tanh(g)
        return torch.sigmoid(o) * torch.tanh(c), c


class RefLSTM(nn.Module):
    """nn.LSTM stepped by hand: one layer at a time, one step at a time."""

    def __init__(self, lstm: nn.LSTM):
        super().__init__()
        self.hidden = lstm.hidden_size
        self.weights = nn.ParameterList()
        for n in range(lstm.num_layers):
            for name in ("weight_ih", "weight_hh", "bias_ih", "bias_hh"):
                self.weights.append(_param(getattr(lstm, f"{name}_l{n}")))

    def forward(self, seq: torch.Tensor) -> torch.Tensor:
        """(B, T, D) -> (B, T, hidden), the last layer's output."""
        for n in range(len(self.weights) // 4):
            w_ih, w_hh, b_ih, b_hh = self.weights[4 * n : 4 * n + 4]
            h = c = seq.new_zeros(seq.shape[0], self.hidden)
            out = []
            for t in range(seq.shape[1]):
                i, f, g, o = (seq[:, t] @ w_ih.T + b_ih + h @ w_hh.T + b_hh).chunk(4, dim=1)
                c = torch.sigmoid(f) * c + torch.sigmoid(i) * torch.tanh(g)
                h = torch.sigmoid(o) * torch.tanh(c)
                out.append(h)
            seq = torch.stack(out, dim=1)
        return seq


class ReferenceNet(nn.Module):
    """The FusionNet architecture, computed the plain way, with a copy of a model's weights."""

    def __init__(self, model: FusionNet):
        super().__init__()
        self.modality, self.fc = model.modality, model.fusion_layer is None
        # Plain copies: the unimodal visual convs and the head are ordinary layers in both.
        self.visual_convs = nn.ModuleList(copy.deepcopy(block.conv) for block in model.visual)
        self.audio = RefLSTM(model.audio) if model.audio is not None else None
        self.clstm = nn.ModuleList(RefConvLSTM(layer) for layer in model.clstm)
        self.head = copy.deepcopy(model.head)

    @classmethod
    def from_model(cls, model: FusionNet) -> "ReferenceNet":
        """A reference network holding copies of ``model``'s parameters (same dtype/device)."""
        p = next(model.parameters())
        return cls(model).to(device=p.device, dtype=p.dtype)

    def forward(self, image: torch.Tensor, spec: torch.Tensor, return_sequence: bool = False) -> torch.Tensor:
        if self.modality == "visual":
            spec = torch.zeros_like(spec)
        elif self.modality == "audio":
            image = torch.zeros_like(image)
        visual = image
        for conv in self.visual_convs:
            visual = F.max_pool2d(F.relu(conv(visual)), 2)
        audio = self.audio(spec) if self.audio is not None else spec  # (B, T, D)
        steps = spec.shape[1]
        if self.fc:
            flat = visual.flatten(1)[:, None].expand(-1, steps, -1)  # (B, T, features)
            feats = torch.cat([flat, audio], dim=2)
        else:
            xs = [visual] * steps  # the static map is fed again at every step
            for n, layer in enumerate(self.clstm):
                h = c = xs[0].new_zeros(xs[0].shape[0], layer.hidden, *xs[0].shape[2:])
                out = []
                for t in range(steps):
                    h, c = layer.step(xs[t], h, c, audio[:, t] if n == 0 else None)
                    out.append(F.max_pool2d(h, 2))
                xs = out
            feats = torch.stack([x.flatten(1) for x in xs], dim=1)  # (B, T, hidden * S'^2)
        logits = self.head(feats)
        return logits if return_sequence else logits[:, -1]

