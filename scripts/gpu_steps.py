"""Training-step times of the initial-fusion model on CUDA: eager or CUDA graph, each with the
hand-written or the compiled cell (``FusionNet.fused_cell``), the conv ceiling at each batch
size, and a kernel profile of one step of one variant.

    python scripts/gpu_steps.py [--batch-sizes 256 512] [--steps 92] [--precision bf16]
        [--variants eager graph graph+fused] [--profile eager+fused] [--profile-batch 256]

Each variant starts from the same weights and takes the same steps on the same batch, so its
losses must agree with the eager ones (to bf16 rounding). A measuring aid for BENCHMARKS.md.
"""

from __future__ import annotations

import argparse
import statistics
import time

import torch
from torch.profiler import ProfilerActivity, profile

from earlyfusion.bench import PAPER_PAIRS, make_plan, measure_ceiling
from earlyfusion.graphs import TrainStep
from earlyfusion.models import build_model
from earlyfusion.runtime import autocast

VARIANTS = {"eager": (False, False), "eager+fused": (False, True), "graph": (True, False),
            "graph+fused": (True, True)}


def _step(graphs: bool, fused: bool, precision: str):
    torch.manual_seed(0)
    model = build_model(fusion="initial").cuda()
    model.memory_format, model.fused_cell = torch.channels_last, fused
    return TrainStep.for_classifier(model, precision, 1e-3, graphs=graphs)


def _time(step, batch, warmup: int = 3, timed: int = 5) -> tuple[float, list[float]]:
    losses = [step(*batch).item() for _ in range(warmup)]
    times = []
    for _ in range(timed):
        torch.cuda.synchronize()
        start = time.perf_counter()
        step(*batch)
        torch.cuda.synchronize()
        times.append(time.perf_counter() - start)
    return statistics.median(times), losses


def _layouts(step, batch, precision: str) -> str:
    """Whether the first C-LSTM layer's final h and c come out channels-last, as the model's
    activations should (a layout change would cost a copy or an NCHW kernel at every step)."""
    with autocast(batch[0].device, precision):  # with gradients: the compiled variant trained
        state = step.model.run(*batch[:2])[1]
    h, c = state.clstm[0]
    return f"h_T, c_T channels-last: {h.is_contiguous(memory_format=torch.channels_last)}, " \
           f"{c.is_contiguous(memory_format=torch.channels_last)}"


def _profile(step, batch, top: int) -> None:
    step(*batch)
    torch.cuda.synchronize()
    with profile(activities=[ProfilerActivity.CPU, ProfilerActivity.CUDA], record_shapes=True) as prof:
        step(*batch)
        torch.cuda.synchronize()
    events = [e for e in prof.key_averages() if e.device_type == torch.autograd.DeviceType.CUDA]
    total = sum(e.self_device_time_total for e in events)
    print(f"  kernels: {total / 1e3:.1f} ms in {sum(e.count for e in events)} launches")
    for e in sorted(events, key=lambda e: -e.self_device_time_total)[:top]:
        print(f"  {e.self_device_time_total / max(total, 1):6.1%} {e.count:6d}x  {e.key[:100]}")
    print("  copies, adds, fills and sums by the op that asked for them (device time, calls, shape):")
    for (name, shape, chain), (us, n) in _attribute(prof.events())[:top]:
        print(f"  {us / max(total, 1):6.1%} {n:6d}x  {name} {shape} < {chain}")


ATTRIBUTED = ("aten::copy_", "aten::add_", "aten::add", "aten::fill_", "aten::sum")


def _attribute(events, depth: int = 3) -> list:
    """[((op, first input's shape, its callers), (device microseconds, calls))], costliest first:
    which op's copies, adds, fills and sums the kernel table's element-wise rows come from."""
    cost: dict[tuple, list] = {}
    for e in events:
        if e.name not in ATTRIBUTED:
            continue
        chain, parent = [], e.cpu_parent
        while parent is not None and len(chain) < depth:
            chain.append(parent.name.replace("autograd::engine::evaluate_function: ", ""))
            parent = parent.cpu_parent
        key = (e.name, tuple(e.input_shapes[0]) if e.input_shapes else (), " < ".join(chain))
        entry = cost.setdefault(key, [0.0, 0])
        entry[0] += e.device_time_total
        entry[1] += 1
    return sorted(cost.items(), key=lambda kv: -kv[1][0])


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--batch-sizes", type=int, nargs="+", default=[256, 512])
    ap.add_argument("--steps", type=int, default=92)
    ap.add_argument("--precision", default="bf16")
    ap.add_argument("--variants", nargs="+", default=list(VARIANTS))
    ap.add_argument("--profile", default="eager+fused", help="the variant profiled (kernel times are "
                    "those of the graph at large batches, where a step is GPU-bound)")
    ap.add_argument("--profile-batch", type=int, default=None, help="default: the first batch size")
    ap.add_argument("--profile-top", type=int, default=15)
    args = ap.parse_args()
    torch.backends.cudnn.benchmark = True
    for b in args.batch_sizes:
        g = torch.Generator(device="cuda").manual_seed(b)
        batch = (torch.rand(b, 1, 28, 28, device="cuda", generator=g),
                 torch.rand(b, args.steps, 201, device="cuda", generator=g),
                 torch.randint(0, 10, (b,), device="cuda", generator=g))
        ceiling = measure_ceiling(make_plan(False, batch_size=b), args.precision, torch.device("cuda"))
        print(f"B {b:4d} ceiling: the recurrent conv alone, fwd+bwd, {args.precision}: "
              f"{ceiling['flops_per_s'] / 1e12:.0f} TFLOP/s ({ceiling['layout']})", flush=True)
        for name in args.variants:
            step = None
            try:
                torch.cuda.reset_peak_memory_stats()
                step = _step(*VARIANTS[name], args.precision)
                sec, losses = _time(step, batch)
                print(f"B {b:4d} {name:12} {sec * 1e3:8.1f} ms/step {b / sec:8.0f} ex/s  paper run "
                      f"{PAPER_PAIRS * sec / b:6.1f} s  peak {torch.cuda.max_memory_allocated() / 2**30:4.1f} GiB  "
                      f"losses {' '.join(f'{x:.4f}' for x in losses)}; {_layouts(step, batch, args.precision)}",
                      flush=True)
                if name == args.profile and b == (args.profile_batch or args.batch_sizes[0]) and args.profile_top:
                    _profile(step, batch, args.profile_top)
            except Exception as exc:  # one variant failing must not hide the others
                print(f"B {b:4d} {name:12} failed: {type(exc).__name__}: {str(exc)[:300]}", flush=True)
            del step
            torch.cuda.empty_cache()


if __name__ == "__main__":
    main()
