"""Copies, fills and adds of state-sized or larger tensors in one training step, on the CPU:
a device-free check of the layout work a channels-last GPU step does (BENCHMARKS.md, GPU).

    python scripts/layout_copies.py [--steps 16] [--hidden 32] [--batch 8]

Channels-last, bf16, the compiled cell, and a later layer's input convolution in chunks of 2
steps (at batch 256 on a GPU it runs in chunks of 5 steps), as a CUDA training step has them.
"""

from __future__ import annotations

import argparse
import math
from collections import Counter

import torch
from torch.profiler import ProfilerActivity, profile

from earlyfusion.graphs import TrainStep
from earlyfusion.models import build_model, clstm

OPS = ("aten::copy_", "aten::fill_", "aten::add_")


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--steps", type=int, default=16)
    ap.add_argument("--hidden", type=int, default=32)
    ap.add_argument("--batch", type=int, default=8)
    args = ap.parse_args()
    b, h = args.batch, args.hidden
    torch.set_num_threads(1)
    clstm.CHUNK_VALUES = b * 4 * h * 14 * 14 * 2  # two steps per chunk of layer 2's input conv
    torch.manual_seed(0)
    model = build_model(fusion="initial", hidden=h)
    model.memory_format, model.fused_cell = torch.channels_last, True
    step = TrainStep.for_classifier(model, "bf16", 1e-3, graphs=False)
    g = torch.Generator().manual_seed(0)
    batch = (torch.rand(b, 1, 28, 28, generator=g), torch.rand(b, args.steps, 201, generator=g),
             torch.randint(0, 10, (b,), generator=g))
    losses = [step(*batch).item() for _ in range(2)]  # compiles, then a warm step
    with profile(activities=[ProfilerActivity.CPU], record_shapes=True) as prof:
        step(*batch)
    count, size = Counter(), Counter()
    for e in prof.events():
        shape = e.input_shapes[0] if e.name in OPS and e.input_shapes else []
        if shape and math.prod(shape) >= b * h * 14 * 14:  # a layer-2 state or larger
            count[e.name] += 1
            size[e.name] += math.prod(shape) * 2  # bf16 bytes
    print(f"losses {losses[0]:.4f} {losses[1]:.4f}; T {args.steps}, B {b}, {h} units")
    for name in OPS:
        print(f"{name:12} {count[name]:5d} calls {size[name] / 1e6:8.1f} MB")


if __name__ == "__main__":
    main()
