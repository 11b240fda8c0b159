"""One training step (forward, loss, backward, Adam) as a callable, replayed from a CUDA graph.

At the paper's sizes the time loop issues a few thousand small kernels per optimizer step
(92 frames x 2 C-LSTM layers x convolutions and gate arithmetic, forward and backward); on a
GPU their launch cost, not their arithmetic, bounds a batch of 32. Captured once per batch
shape, a whole step is one graph launch (BENCHMARKS.md, GPU). On the CPU, and for a batch of
another shape (an epoch's last, partial batch), the step runs eagerly.

The optimizer must be "capturable": Adam then keeps its step count on the device and reads
the learning rate from a device tensor, so a replay sees each step's scheduled rate.
"""

from __future__ import annotations

import contextlib
from typing import Any, Callable

import torch
import torch.nn.functional as F
from torch import nn

from earlyfusion.runtime import autocast

Batch = tuple[torch.Tensor, ...]
WARMUP = 3  # eager steps before a capture, on a side stream (CUDA graph docs: lazy init, autotuning)


def classification_loss(model: nn.Module, precision: str, *, cache: bool = True) -> Callable[..., torch.Tensor]:
    """``loss(image, spec, label)``: cross-entropy of the last step's logits, under ``precision``."""
    device = next(model.parameters()).device

    def loss(image: torch.Tensor, spec: torch.Tensor, label: torch.Tensor) -> torch.Tensor:
        with autocast(device, precision, cache=cache):
            logits = model(image, spec)
        return F.cross_entropy(logits.float(), label)
    return loss


def make_optimizer(model: nn.Module, lr: float, *, capturable: bool) -> torch.optim.Adam:
    """Adam (paper A.2); ``capturable``: step count and lr on the parameters' device."""
    if not capturable:
        return torch.optim.Adam(model.parameters(), lr=lr)
    device = next(model.parameters()).device
    return torch.optim.Adam(model.parameters(), lr=torch.tensor(lr, dtype=torch.float32, device=device),
                            capturable=True)


def set_lr(opt: torch.optim.Optimizer, lr: float) -> None:
    """Set every group's lr: in place into a tensor lr (a captured graph reads that memory)."""
    for group in opt.param_groups:
        if torch.is_tensor(group["lr"]):
            group["lr"].fill_(lr)
        else:
            group["lr"] = lr


def load_optimizer(opt: torch.optim.Optimizer, state: dict[str, Any]) -> None:
    """Load a saved optimizer state, keeping this optimizer's own form (capturable or not,
    tensor or float lr): a checkpoint from a CUDA-graph run resumes on the CPU and back."""
    forms = [(group["capturable"], group["lr"]) for group in opt.param_groups]
    opt.load_state_dict(state)
    for group, (capturable, lr) in zip(opt.param_groups, forms):
        saved = float(group["lr"])
        group["capturable"] = capturable
        group["lr"] = lr.fill_(saved) if torch.is_tensor(lr) else saved
        if not capturable:  # eager Adam wants its step counts on the CPU
            for p in group["params"]:
                st = opt.state.get(p, {})
                if torch.is_tensor(st.get("step")):
                    st["step"] = st["step"].cpu()


def snapshot(model: nn.Module, opt: torch.optim.Optimizer) -> tuple[list[torch.Tensor], dict]:
    """Copies of the parameters and of the optimizer's per-parameter state tensors."""
    params = [p.detach().clone() for p in model.parameters()]
    state = {p: {k: v.clone() for k, v in st.items() if torch.is_tensor(v)} for p, st in opt.state.items()}
    return params, state


def restore(model: nn.Module, opt: torch.optim.Optimizer, saved: tuple[list[torch.Tensor], dict]) -> None:
    """Undo the warm-up steps in place (a graph holds these very tensors): parameters back,
    optimizer state back, and state the warm-up created set to Adam's fresh zeros."""
    params, state = saved
    with torch.no_grad():
        for p, v in zip(model.parameters(), params):
            p.copy_(v)
        for p, st in opt.state.items():
            for k, v in st.items():
                if not torch.is_tensor(v):
                    continue
                if p in state:
                    v.copy_(state[p][k])
                else:
                    v.zero_()


class TrainStep:
    """``step(*batch) -> loss`` (detached): zero grads, ``loss_fn(*batch)``, backward, optimizer step.

    graphs=True (CUDA only): the first batch's shape is captured after WARMUP eager steps whose
    effect on the weights and the optimizer is undone, so a graphed run starts from exactly
    the state an eager one would.
    """

    def __init__(self, model: nn.Module, opt: torch.optim.Optimizer, loss_fn: Callable[..., torch.Tensor],
                 *, graphs: bool):
        self.model, self.opt, self.loss_fn = model, opt, loss_fn
        self.graphs = graphs
        self.graph: torch.cuda.CUDAGraph | None = None
        self.static: Batch = ()
        self.loss: torch.Tensor | None = None

    @classmethod
    def for_classifier(cls, model: nn.Module, precision: str, lr: float, *, graphs: bool) -> TrainStep:
        """The training step of train.py: Adam at ``lr`` on ``classification_loss``, capturable
        and without autocast's cast cache when ``graphs``."""
        opt = make_optimizer(model, lr, capturable=graphs)
        return cls(model, opt, classification_loss(model, precision, cache=not graphs), graphs=graphs)

    def __call__(self, *batch: torch.Tensor) -> torch.Tensor:
        if self.graphs and self.graph is None:
            self._capture(batch)
        if self.graph is not None and _same_shapes(batch, self.static):
            for buf, x in zip(self.static, batch):
                buf.copy_(x)
            self.graph.replay()
            return self.loss.detach().clone()  # the graph overwrites self.loss at the next replay
        # Eager. Once a graph exists, zero its gradient buffers rather than dropping them.
        self.opt.zero_grad(set_to_none=self.graph is None)
        with self._cell():
            loss = self.loss_fn(*batch)
            loss.backward()
        self.opt.step()
        return loss.detach()

    def _cell(self) -> contextlib.AbstractContextManager:
        """An eager step after a capture has another shape: FusionNet's hand-written cell there,
        rather than a compile of the fused one for that one batch."""
        hand_written = getattr(self.model, "hand_written_cell", None)
        return hand_written() if self.graph is not None and hand_written else contextlib.nullcontext()

    def _capture(self, batch: Batch) -> None:
        if not all(x.is_cuda for x in batch):
            raise ValueError("CUDA graphs need the batch on a CUDA device")
        self.static = tuple(x.clone() for x in batch)
        saved = snapshot(self.model, self.opt)
        side = torch.cuda.Stream()
        side.wait_stream(torch.cuda.current_stream())
        with torch.cuda.stream(side):
            for _ in range(WARMUP):
                self.opt.zero_grad(set_to_none=True)
                self.loss_fn(*self.static).backward()
                self.opt.step()
        torch.cuda.current_stream().wait_stream(side)
        restore(self.model, self.opt, saved)
        self.graph = torch.cuda.CUDAGraph()
        # Gradients None before capture: backward then allocates them in the graph's pool.
        self.opt.zero_grad(set_to_none=True)
        with torch.cuda.graph(self.graph):
            loss = self.loss_fn(*self.static)
            loss.backward()
            self.opt.step()
        # Keep the output's memory, not its autograd graph: a live graph would keep the
        # capture stream's AccumulateGrad nodes for the eager steps (PyTorch warned so on an H100).
        self.loss = loss.detach()


def _same_shapes(a: Batch, b: Batch) -> bool:
    return len(a) == len(b) and all(x.shape == y.shape and x.dtype == y.dtype for x, y in zip(a, b))
