"""Kernel-time breakdown of one eager training step on CUDA (torch.profiler).

    python scripts/profile_step.py [--fusion initial] [--batch-size 32] [--steps 92] [--precision bf16]

Prints the step's wall time, the summed CUDA kernel time (what a CUDA graph replay cannot go
below) and the kernels that take the most of it. A measuring aid for BENCHMARKS.md, not a test.
"""

from __future__ import annotations

import argparse
import time

import torch
from torch.profiler import ProfilerActivity, profile

from earlyfusion.graphs import TrainStep, classification_loss, make_optimizer
from earlyfusion.models import build_model


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--fusion", default="initial")
    ap.add_argument("--batch-size", type=int, default=32)
    ap.add_argument("--steps", type=int, default=92)
    ap.add_argument("--precision", default="bf16")
    ap.add_argument("--top", type=int, default=15)
    args = ap.parse_args()
    torch.backends.cudnn.benchmark = True
    model = build_model(fusion=args.fusion).cuda()
    model.memory_format = torch.channels_last
    step = TrainStep(model, make_optimizer(model, 1e-3, capturable=False), classification_loss(model, args.precision),
                     graphs=False)
    b, t = args.batch_size, args.steps
    batch = (torch.rand(b, 1, 28, 28, device="cuda"), torch.rand(b, t, 201, device="cuda"),
             torch.randint(0, 10, (b,), device="cuda"))
    for _ in range(2):
        step(*batch)
    torch.cuda.synchronize()
    start = time.perf_counter()
    with profile(activities=[ProfilerActivity.CPU, ProfilerActivity.CUDA]) as prof:
        step(*batch)
        torch.cuda.synchronize()
    wall = time.perf_counter() - start
    events = [e for e in prof.key_averages() if e.device_type == torch.autograd.DeviceType.CUDA]
    kernel_us = sum(e.self_device_time_total for e in events)
    print(f"{args.fusion} {args.precision} B={b} T={t}: step wall {wall * 1e3:.1f} ms (profiled), "
          f"CUDA kernels {kernel_us / 1e3:.1f} ms, {sum(e.count for e in events)} launches")
    for e in sorted(events, key=lambda e: -e.self_device_time_total)[: args.top]:
        share = e.self_device_time_total / max(kernel_us, 1)
        print(f"  {share:6.1%} {e.self_device_time_total / 1e3:8.2f} ms {e.count:6d}x  {e.key[:90]}")


if __name__ == "__main__":
    main()
