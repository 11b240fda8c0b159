"""The text table `earlyfusion bench` prints (the JSON object of bench.run_bench, formatted)."""

from __future__ import annotations


def format_table(result: dict) -> str:
    """The result as a readable text table (what `earlyfusion bench` prints without --json)."""
    m, s = result["meta"], result["sizes"]
    lines = [
        f"earlyfusion bench  {m['date']}  torch {m['torch']}  {m['device_name']}  "
        f"threads {m['threads']}  load {_load(m['load_average_before'])} -> {_load(m['load_average_after'])}",
        f"sizes: image 1x{s['image_size']}x{s['image_size']}, spectrogram {s['steps']}x{s['bins']}, "
        f"{s['hidden']} units, dense {s['dense']}; batch {s['train_batch']} train / {s['infer_batch']} infer; "
        f"{m['memory_format']}; best of {m['rounds']} round(s), {m['seconds']:.0f} s in all",
        "",
        f"{'fusion':8} {'dtype':5} {'train ex/s':>10} {'infer ex/s':>10} {'ref train':>10} {'vs ref':>7} "
        f"{'bf16/fp32':>9} {'GFLOP/ex':>9} {'GFLOP/s':>8} {'of ceiling':>10}",
    ]
    gpu = "train_fraction_of_bf16_peak" in result["levels"]["initial"]["bf16"]
    if gpu:
        lines[-1] += f" {'eager ex/s':>10} {'graph x':>7} {'of peak':>7}"
    for level, per in result["levels"].items():
        for p, e in per.items():
            gain = e["train_examples_per_s"] / per["fp32"]["train_examples_per_s"]
            lines.append(
                f"{level:8} {p:5} {_num(e['train_examples_per_s']):>10} {_num(e['infer_examples_per_s']):>10} "
                f"{_num(e['reference_train_examples_per_s']):>10} {e['speedup_vs_reference']:6.2f}x "
                f"{(f'{gain:.2f}x' if p != 'fp32' else ''):>9} {e['train_flops_per_example'] / 1e9:9.3f} "
                f"{e['train_flops_per_s'] / 1e9:8.1f} {e['train_fraction_of_ceiling']:10.0%}")
            if gpu:
                lines[-1] += _gpu_columns(e)
    lines.append("")
    if gpu:
        lines.append(f"peak: {result['peak_bf16_matmul_flops_per_s'] / 1e12:.0f} TFLOP/s (bf16 8192^3 matmul); "
                     f"CUDA graphs {'on' if result['meta'].get('cuda_graphs') else 'off'}")
    for p, c in result["ceiling"].items():
        layouts = ", ".join(f"{k} {v / 1e9:.0f}" for k, v in c["by_layout"].items())
        lines.append(f"ceiling {p}: {c['flops_per_s'] / 1e9:.0f} GFLOP/s ({c['layout']}; {layouts}) -- recurrent "
                     f"3x3 conv {s['hidden']}->{4 * s['hidden']} at {s['image_size']}^2 + {s['image_size'] // 2}^2, "
                     "fwd+bwd, alone")
    d = result["data"]
    lines.append(f"data path: {_num(d['examples_per_s'])} examples/s (noise + padding + spectrogram, "
                 f"{d['frames']} frames, batch {s['data_batch']}, {d['source']})")
    lines += ["", "targets:"]
    for name, t in result["targets"].items():
        lines.append(f"  {name:28} {t['value']:8.2f}  (>= {t['target']})  {'met' if t['met'] else 'NOT met'}")
    return "\n".join(lines)


def _gpu_columns(e: dict) -> str:
    """eager ex/s, graph speedup, fraction of the bf16 matmul peak (CUDA runs only)."""
    eager = e.get("eager_train_examples_per_s")
    speedup = f"{e['graph_speedup']:.2f}x" if eager else "-"
    return f" {_num(eager) if eager else '-':>10} {speedup:>7} {e['train_fraction_of_bf16_peak']:7.1%}"


def _num(x: float) -> str:
    return f"{x:,.0f}" if x >= 100 else f"{x:.3g}"


def _load(avg) -> str:
    return "/".join(f"{v:.2f}" for v in avg)
