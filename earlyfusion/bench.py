"""`earlyfusion bench`: throughput of the models, the reference port, the data path, the ceiling.

Everything is measured in one process and the cases are interleaved round by round, so that
the ratios the targets are stated in (fast vs reference, bf16 vs fp32, model vs ceiling, data
vs training) compare numbers taken under the same load; on a shared machine absolute seconds
drift. Each number is the best of its rounds. The JSON structure is described in BENCHMARKS.md.
"""

from __future__ import annotations

import contextlib
import datetime
import math
import os
import platform
import time
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F

from earlyfusion.graphs import TrainStep
from earlyfusion.models import build_model
from earlyfusion.models.reference import ReferenceNet
from earlyfusion.runtime import (autocast, can_compile_for, configure_backends, preferred_memory_format, resolve_device,
                                 set_threads)

LEVELS = ("initial", "second", "fc")
DTYPES = ("fp32", "bf16")
PAPER_FRAMES = 92  # 18,262 samples (the longest FSDD recording) at hop 200
SHARED_DATA = Path(__file__).resolve().parents[2] / "shared" / "data"
TARGETS = {"initial_vs_reference_fp32": 2.0, "bf16_vs_fp32": 1.5, "fraction_of_ceiling": 0.6,
           "data_vs_train": 10.0}
# Issue 5 on a GPU: the paper's training run (87,516 pairs, one pass, initial fusion, bf16) in
# under a minute, at 40% or more of the device's bf16 peak.
PAPER_PAIRS = 87_516
GPU_TARGETS = {"paper_runs_per_minute": 1.0, "fraction_of_bf16_peak": 0.4}


@dataclass(frozen=True)
class Plan:
    """Sizes and repetitions of one benchmark run."""

    hidden: int
    steps: int  # spectrogram frames T
    train_batch: int
    infer_batch: int
    data_batch: int
    rounds: int  # timed repetitions of every case (best is kept)
    warmup_steps: int  # frames of the untimed warm-up call (primes the conv library)
    dense: int = 128
    kernel: int = 3
    image_size: int = 28
    bins: int = 201


def make_plan(quick: bool, hidden: int = 64, batch_size: int | None = None, steps: int | None = None) -> Plan:
    """Paper sizes by default; training at T = 92, 64 units costs ~0.3-1.5 s per example on a
    2-core CPU, hence small batches and two rounds. ``quick``: one round, short sequences."""
    for name, value in (("hidden", hidden), ("batch_size", batch_size), ("steps", steps)):
        if value is not None and (isinstance(value, bool) or value < 1):
            raise ValueError(f"{name} must be a positive int, got {value!r}")
    train = batch_size or (4 if quick else 8)
    return Plan(hidden=hidden, steps=steps or (8 if quick else 92), train_batch=train, infer_batch=2 * train,
                data_batch=32 if quick else 256, rounds=1 if quick else 2, warmup_steps=2 if quick else 4,
                dense=128 if hidden >= 32 else 4 * hidden)


def _conv_flops(side: int, c_in: int, c_out: int, kernel: int) -> int:
    return 2 * side * side * c_in * c_out * kernel * kernel


def forward_flops(model, steps: int) -> int:
    """Multiply-adds x 2 that ``model(image, spec)`` computes for one example of T = ``steps``
    frames, as this implementation computes them: a static input convolution once, the
    recurrent convolution from step 2 on (h_0 = 0), the head once (last step)."""
    side, total = model.image_size, 0
    for block in model.visual:
        conv = block.conv
        total += _conv_flops(side, conv.in_channels, conv.out_channels, conv.kernel_size[0])
        side //= 2
    if model.audio is not None:
        h, d = model.audio.hidden_size, model.bins
        for _ in range(model.audio.num_layers):
            total += steps * 2 * 4 * h * (d + h)
            d = h
    for n, layer in enumerate(model.clstm):
        k, h = layer.kernel, layer.hidden
        uses = 1 if n == 0 else steps  # the fused layer's input is static; later ones per step
        total += uses * _conv_flops(side, layer.conv_x.in_channels, 4 * h, k)
        total += (steps - 1) * _conv_flops(side, h, 4 * h, k)
        if layer.audio is not None:
            total += steps * 2 * layer.audio.in_features * 4 * h
        side //= 2
    for lin in (model.head[0], model.head[2]):
        total += 2 * lin.in_features * lin.out_features
    return total


def train_flops(model, steps: int) -> int:
    """Nominal FLOPs of one training example: forward + backward (2x forward)."""
    return 3 * forward_flops(model, steps)


def _sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def _interleaved(cases: dict, rounds: int, device: torch.device) -> dict[str, float]:
    """Best seconds per call of each case, the cases run round-robin ``rounds`` times."""
    best = {name: math.inf for name in cases}
    for _ in range(rounds):
        for name, fn in cases.items():
            _sync(device)
            start = time.perf_counter()
            fn()
            _sync(device)
            best[name] = min(best[name], time.perf_counter() - start)
    return best


def _inputs(plan: Plan, batch: int, steps: int, device: torch.device):
    g = torch.Generator().manual_seed(0)
    image = torch.rand(batch, 1, plan.image_size, plan.image_size, generator=g)
    spec = torch.rand(batch, steps, plan.bins, generator=g)
    return image.to(device), spec.to(device), torch.randint(0, 10, (batch,), generator=g).to(device)


def _train_step(model, precision: str, graphs: bool) -> TrainStep:
    """One optimizer step, as train.py takes it (replayed from a CUDA graph when ``graphs``)."""
    return TrainStep.for_classifier(model, precision, 1e-3, graphs=graphs)


def _infer_step(model, precision: str, device: torch.device):
    """A forward pass as evaluate.py runs it: no gradients, the hand-written cell (its compiled
    variants per shape, dtype and grad mode would pass torch.compile's recompile limit)."""
    def step(image, spec, _label):
        with torch.no_grad(), autocast(device, precision), model.hand_written_cell():
            model(image, spec)
    return step


def _model_cases(plan: Plan, device: torch.device, memory_format, graphs: bool) -> tuple[dict, dict]:
    """name -> (step(image, spec, label), batch) for every level x dtype x kind; FLOPs per level.

    With ``graphs`` the train and ref steps are CUDA graphs and "eager" times the model's
    step without one (what the graph saves)."""
    cases, flops = {}, {}
    for level in LEVELS:
        torch.manual_seed(0)
        model = build_model(fusion=level, hidden=plan.hidden, kernel=plan.kernel, dense=plan.dense,
                            bins=plan.bins, image_size=plan.image_size).to(device)
        model.memory_format = memory_format
        model.fused_cell = can_compile_for(device)  # as train.py on CUDA (train.cuda_fused_cell)
        ref = ReferenceNet.from_model(model)
        flops[level] = train_flops(model, plan.steps)
        for precision in DTYPES:
            cases[level, precision, "train"] = (_train_step(model, precision, graphs), plan.train_batch)
            cases[level, precision, "infer"] = (_infer_step(model, precision, device), plan.infer_batch)
            cases[level, precision, "ref"] = (_train_step(ref, precision, graphs), plan.train_batch)
            if graphs:
                cases[level, precision, "eager"] = (_train_step(model, precision, False), plan.train_batch)
    return cases, flops


def measure_models(plan: Plan, device: torch.device, memory_format, graphs: bool = False) -> tuple[dict, dict]:
    """Examples/s of every (level, dtype, train | infer | ref [| eager]) case; FLOPs per level."""
    cases, flops = _model_cases(plan, device, memory_format, graphs)
    data = {b: _inputs(plan, b, plan.steps, device) for b in {batch for _, batch in cases.values()}}
    for step, batch in cases.values():
        # Warm-up: a graph is captured at the timed shapes; otherwise a short length primes
        # the conv library at the same conv shapes.
        step(*(data[batch] if graphs else _inputs(plan, batch, plan.warmup_steps, device)))
    timed = {key: (lambda s=step, b=batch: s(*data[b])) for key, (step, batch) in cases.items()}
    seconds = _interleaved(timed, plan.rounds, device)
    return {key: cases[key][1] / seconds[key] for key in cases}, flops


def measure_ceiling(plan: Plan, precision: str, device: torch.device) -> dict:
    """The recurrent 3x3 conv (B, hidden -> 4 hidden) at 28x28 and 14x14, forward + backward,
    alone, in NCHW and channels-last; FLOP/s of the pair in each layout, the best kept."""
    dtype = torch.bfloat16 if precision == "bf16" else torch.float32
    h, k, side = plan.hidden, plan.kernel, plan.image_size
    sides = (side, side // 2)
    fmts = {"nchw": torch.contiguous_format, "channels_last": torch.channels_last}
    cases = {}
    for name, fmt in fmts.items():
        tensors = []
        for s in sides:
            x = torch.randn(plan.train_batch, h, s, s, device=device, dtype=dtype)
            w = torch.randn(4 * h, h, k, k, device=device, dtype=dtype) * 0.05
            tensors.append((x.contiguous(memory_format=fmt).requires_grad_(),
                            w.contiguous(memory_format=fmt).requires_grad_()))

        def run(tensors=tensors):
            for x, w in tensors:
                y = F.conv2d(x, w, padding="same")
                y.backward(torch.ones_like(y))
        run()  # warm-up: primitive creation
        cases[name] = run
    seconds = _interleaved(cases, max(2, plan.rounds + 1), device)
    flops = 3 * sum(_conv_flops(s, h, 4 * h, k) * plan.train_batch for s in sides)
    rates = {name: flops / sec for name, sec in seconds.items()}
    layout = max(rates, key=rates.get)
    return {"flops_per_s": rates[layout], "layout": layout, "by_layout": rates}


def measure_data(plan: Plan, source: str | os.PathLike | None = None, device: str | torch.device = "cpu") -> dict:
    """Examples/s of noise + padding + spectrogram (+ image noise) for training batches.

    ``source``: a data root, "synthetic", or None: $EARLYFUSION_DATA, else ../shared/data,
    else synthetic waveforms through the same feature functions.
    """
    root = _data_root(source)
    if root is None:
        return _measure_synthetic(plan)
    device = resolve_device(device)
    from earlyfusion.config import DataConfig
    from earlyfusion.data.dataset import AudioVisualData

    # Pad to the benchmark's T (8,000 samples give the quick profile's 41 frames); None keeps
    # the longest recording, the paper's 92 frames.
    samples = None if plan.steps == PAPER_FRAMES else max(200 * (plan.steps - 1), 400)
    data = AudioVisualData.load(DataConfig(root=str(root), download=False, audio_samples=samples), device=device)
    img, aud = data.pairs("train").sample(plan.data_batch, torch.Generator().manual_seed(0))
    g = torch.Generator(device).manual_seed(0)

    def batch():
        data.batch(img, aud, audio_snr=0.5, visual_snr=0.25, generator=g)
    batch()
    seconds = _interleaved({"data": batch}, plan.rounds + 1, device)["data"]
    return {"examples_per_s": plan.data_batch / seconds, "source": str(root), "frames": data.frames}


def _data_root(source) -> Path | None:
    if source == "synthetic":
        return None
    if source is not None:
        return Path(source)
    from earlyfusion.data.dataset import DATA_ENV

    env = os.environ.get(DATA_ENV)
    for root in ([Path(env)] if env else []) + [SHARED_DATA]:
        if (root / "mnist").is_dir() and (root / "fsdd" / "recordings").is_dir():
            return root
    return None


def _measure_synthetic(plan: Plan) -> dict:
    """FSDD-like waveforms (lengths 2,000..longest) through pad_front, noise, spectrogram."""
    from earlyfusion.data import features, noise

    samples = max(200 * (plan.steps - 1), 400)  # T frames of a centred STFT (at least 3)
    rng = np.random.default_rng(0)
    waves = [rng.standard_normal(int(n)).astype(np.float32) * 0.1
             for n in rng.integers(min(2000, samples), samples + 1, plan.data_batch)]
    g = torch.Generator().manual_seed(0)

    def batch():
        x, lengths, _ = features.pad_front(waves, samples)
        unit = noise.unit_noise(tuple(x.shape), g, x.device) * noise.tail_mask(lengths, samples)
        x = noise.add_noise(x, 0.5, unit, noise.signal_power(x, lengths))
        features.scale_features(features.power_spectrogram(x, lengths), "log")
    batch()
    seconds = _interleaved({"data": batch}, plan.rounds + 1, torch.device("cpu"))["data"]
    return {"examples_per_s": plan.data_batch / seconds, "source": "synthetic (audio path only)",
            "frames": features.n_frames(samples)}


def measure_peak(device: torch.device, size: int = 8192, repeats: int = 10) -> float:
    """FLOP/s of a large bf16 matrix product on CUDA: the device's practical tensor-core peak."""
    g = torch.Generator(device).manual_seed(0)
    a, b = (torch.randn(size, size, device=device, dtype=torch.bfloat16, generator=g) for _ in range(2))
    run = lambda: [a @ b for _ in range(repeats)]  # noqa: E731
    run()
    return 2 * size**3 * repeats / _interleaved({"mm": run}, 3, device)["mm"]


def run_bench(*, quick: bool = False, hidden: int = 64, batch_size: int | None = None, steps: int | None = None,
              device: str = "auto", threads: int | None = 1, data: str | None = None,
              memory_format: str = "auto", graphs: bool | None = None) -> dict:
    """Measure everything in this process; returns the JSON object of BENCHMARKS.md.

    graphs: training steps as CUDA graphs (None: on CUDA, as train.py does)."""
    dev = resolve_device(device)
    graphs = dev.type == "cuda" if graphs is None else graphs
    if graphs and dev.type != "cuda":
        raise ValueError("--graphs needs a CUDA device")
    configure_backends(dev)
    set_threads(threads)
    plan = make_plan(quick, hidden, batch_size, steps)
    fmt = _memory_format(memory_format, dev)
    load_before = os.getloadavg()
    started = time.perf_counter()
    rates, flops = measure_models(plan, dev, fmt, graphs)
    ceiling = {p: measure_ceiling(plan, p, dev) for p in DTYPES}
    peak = measure_peak(dev) if dev.type == "cuda" else None
    data_path = measure_data(plan, data, dev)
    levels = {level: {p: _level_entry(rates, flops, ceiling, peak, level, p) for p in DTYPES} for level in LEVELS}
    result = {
        "meta": {**_meta(dev, plan, fmt, load_before, time.perf_counter() - started), "cuda_graphs": graphs},
        "sizes": asdict(plan),
        "levels": levels,
        "ceiling": ceiling,
        "peak_bf16_matmul_flops_per_s": peak,
        "data": data_path,
        "data_examples_per_s": data_path["examples_per_s"],
    }
    result["targets"] = targets(result)
    return result


def _memory_format(name: str, device: torch.device):
    """'auto': channels-last on CUDA (tensor cores want NHWC), NCHW on CPU (faster there)."""
    if name == "auto":
        return preferred_memory_format(device)
    formats = {"nchw": torch.contiguous_format, "channels_last": torch.channels_last}
    if name not in formats:
        raise ValueError(f"memory_format must be auto, nchw or channels_last, got {name!r}")
    return formats[name]


def _level_entry(rates: dict, flops: dict, ceiling: dict, peak: float | None, level: str, precision: str) -> dict:
    train = rates[level, precision, "train"]
    achieved = train * flops[level]
    extra = {}
    if (level, precision, "eager") in rates:  # CUDA graphs: the same step without a graph
        eager = rates[level, precision, "eager"]
        extra.update(eager_train_examples_per_s=eager, graph_speedup=train / eager)
    if peak is not None:
        extra["train_fraction_of_bf16_peak"] = achieved / peak
    return {**extra,
        "train_examples_per_s": train,
        "infer_examples_per_s": rates[level, precision, "infer"],
        "reference_train_examples_per_s": rates[level, precision, "ref"],
        "speedup_vs_reference": train / rates[level, precision, "ref"],
        "train_flops_per_example": flops[level],
        "train_flops_per_s": achieved,
        "ceiling_flops_per_s": ceiling[precision]["flops_per_s"],
        "train_fraction_of_ceiling": achieved / ceiling[precision]["flops_per_s"],
    }


def _meta(device: torch.device, plan: Plan, fmt, load_before, seconds: float) -> dict:
    return {
        "torch": torch.__version__,
        "device": device.type,
        "device_name": torch.cuda.get_device_name(device) if device.type == "cuda" else _cpu_name(),
        "cpu_count": os.cpu_count(),
        "threads": torch.get_num_threads(),
        "memory_format": "channels_last" if fmt == torch.channels_last else "nchw",
        "date": datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ"),
        "load_average_before": list(load_before),
        "load_average_after": list(os.getloadavg()),
        "python": platform.python_version(),
        "rounds": plan.rounds,
        "seconds": seconds,
    }


def _cpu_name() -> str:
    with contextlib.suppress(OSError):
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    return platform.processor() or platform.machine()


def targets(result: dict) -> dict:
    """The issue's targets, each {value, target, met}: the CPU ones on a CPU, the GPU ones on CUDA."""
    lv = result["levels"]
    if result.get("peak_bf16_matmul_flops_per_s"):
        initial = lv["initial"]["bf16"]
        values = {"paper_runs_per_minute": 60 * initial["train_examples_per_s"] / PAPER_PAIRS,
                  "fraction_of_bf16_peak": initial["train_fraction_of_bf16_peak"]}
        goals = GPU_TARGETS
    else:
        train = [lv[level][p]["train_examples_per_s"] for level in LEVELS for p in DTYPES]
        values = {
            "initial_vs_reference_fp32": lv["initial"]["fp32"]["speedup_vs_reference"],
            "bf16_vs_fp32": min(lv[level]["bf16"]["train_examples_per_s"] / lv[level]["fp32"]["train_examples_per_s"]
                                for level in ("initial", "second")),
            "fraction_of_ceiling": min(lv["initial"][p]["train_fraction_of_ceiling"] for p in DTYPES),
            "data_vs_train": result["data_examples_per_s"] / max(train),
        }
        goals = TARGETS
    return {name: {"value": v, "target": goals[name], "met": bool(v >= goals[name])} for name, v in values.items()}
