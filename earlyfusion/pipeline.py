"""Executes a planned reproduction: train and evaluate what is missing, then figures and report.

Layout of OUT/<profile>/: runs/<run>/{config.yaml, checkpoint.pt, train.json, eval.csv,
eval.json}, results.csv (every eval row), inspection.json, figures/*.{png,pdf}, report.md.
"""

from __future__ import annotations

import csv
import json
import multiprocessing
import os
import time
from concurrent.futures import ProcessPoolExecutor, as_completed
from pathlib import Path
from typing import Any

import torch

from earlyfusion import figures
from earlyfusion.checkpoint import run_digest
from earlyfusion.data.dataset import AudioVisualData, describe
from earlyfusion.data.show import render_noise_examples
from earlyfusion.evaluate import evaluate_checkpoint, load_trained, write_rows
from earlyfusion.experiments import Profile, Run
from earlyfusion.inspection import inspect_examples
from earlyfusion.report import write_report
from earlyfusion.runtime import resolve_device, set_threads
from earlyfusion.snr import parse_snr
from earlyfusion.stats import read_results
from earlyfusion.train import CHECKPOINT, train


def _log(msg: str) -> None:
    print(msg, flush=True)


def _eval_key(run: Run) -> str:
    return json.dumps({"run": run_digest(run.cfg), "eval": run.cfg.to_dict()["eval"]}, sort_keys=True)


def _evaluate_if_needed(run: Run, run_dir: Path, data: AudioVisualData, progress: bool) -> Path:
    out, stamp = run_dir / "eval.csv", run_dir / "eval.json"
    if out.exists() and stamp.exists() and json.loads(stamp.read_text()).get("key") == _eval_key(run):
        return out
    t0 = time.perf_counter()
    evaluate_checkpoint(run_dir / CHECKPOINT, run.cfg.eval, out, data=data, device=run.cfg.train.device,
                        progress=progress)
    stamp.write_text(json.dumps({"key": _eval_key(run), "seconds": time.perf_counter() - t0}))
    return out


def _data_for(run: Run, cache: dict[str, AudioVisualData], device: torch.device) -> AudioVisualData:
    key = json.dumps(run.cfg.to_dict()["data"], sort_keys=True)
    if key not in cache:
        cache[key] = AudioVisualData.load(run.cfg.data, device=device)
    return cache[key]


def _train_and_evaluate(run: Run, out: Path, progress: bool, cache: dict | None = None,
                        threads: int | None = None) -> tuple[Path, dict[str, Any], float]:
    """One run, start to finish (also the body of a worker process when jobs > 1)."""
    set_threads(threads)
    device = resolve_device(run.cfg.train.device)
    run_dir = out / "runs" / run.name
    data = _data_for(run, cache if cache is not None else {}, device)
    t0 = time.perf_counter()
    metrics = train(run.cfg, run_dir, data=data, progress=progress)
    csv_path = _evaluate_if_needed(run, run_dir, data, progress)
    return csv_path, metrics, time.perf_counter() - t0


def _done_line(i: int, n: int, run: Run, metrics: dict[str, Any], seconds: float) -> str:
    return (f"[{i}/{n}] {run.name} ({', '.join(sorted(run.experiments))}): "
            f"val accuracy {metrics.get('val_accuracy', float('nan')):.3f}, {seconds:.0f} s")


def run_all(runs: list[Run], out: Path, progress: bool = True, jobs: int = 1,
            threads: int | None = None) -> list[Path]:
    """Train and evaluate every run not finished yet; returns the eval CSVs in run order.

    With jobs > 1 the runs go to worker processes with cores // jobs threads each: on a small
    CPU, independent single-threaded runs use the cores better than one run's small kernels.
    """
    if jobs <= 1:
        set_threads(threads)
        cache: dict[str, AudioVisualData] = {}
        csvs = []
        for i, run in enumerate(runs, 1):
            _log(f"[{i}/{len(runs)}] {run.name} ...")
            path, metrics, seconds = _train_and_evaluate(run, out, progress, cache)
            _log(_done_line(i, len(runs), run, metrics, seconds))
            csvs.append(path)
        return csvs
    threads = threads or max(1, (os.cpu_count() or 1) // jobs)
    ctx = multiprocessing.get_context("spawn")
    with ProcessPoolExecutor(max_workers=jobs, mp_context=ctx) as pool:
        futures = {pool.submit(_train_and_evaluate, run, out, False, None, threads): run for run in runs}
        done = {}
        for i, fut in enumerate(as_completed(futures), 1):
            path, metrics, seconds = fut.result()
            done[futures[fut].name] = path
            _log(_done_line(i, len(runs), futures[fut], metrics, seconds))
    return [done[run.name] for run in runs]


def run_inspection(profile: Profile, runs: list[Run], out: Path) -> list[dict[str, Any]]:
    spec = profile.experiments.get("inspection")
    chosen = [r for r in runs if "inspection" in r.experiments and r.cfg.train.seed == 0]
    if not spec or not chosen:
        return []
    run = chosen[0]
    device = resolve_device(run.cfg.train.device)
    model, cfg = load_trained(out / "runs" / run.name / CHECKPOINT, device)
    cfg.data.root = run.cfg.data.root
    data = AudioVisualData.load(cfg.data, device=device)
    records = inspect_examples(model, data, cfg, scenarios=spec["scenarios"], examples=int(spec["examples"]),
                               device=device)
    (out / "inspection.json").write_text(json.dumps(records))
    return records


def render_figures(profile: Profile, runs: list[Run], rows: list[dict], records: list[dict], out: Path) -> list[Path]:
    """Every figure of the profile's experiments, from saved results only."""
    fig_dir = out / "figures"
    fig_dir.mkdir(exist_ok=True)
    made = [render_noise_examples(runs[0].cfg.data, fig_dir / "figure6_noise_examples.png", also=(".pdf",))]
    ran = set().union(*(r.experiments for r in runs))  # --only may have skipped some
    ex = {name: spec for name, spec in profile.experiments.items() if name in ran}
    both = [r for r in rows if r["modality"] == "both"]
    for a, v in ex.get("fusion", {}).get("train_snrs", []):
        a, v = parse_snr(a), parse_snr(v)
        stem = fig_dir / f"fusion_a{a:g}_v{v:g}"
        figures.fusion_figure([r for r in both if r["train_audio_snr"] == a and r["train_visual_snr"] == v], a, v, stem)
        made.append(stem)
    if "robustness" in ex:
        made.append(_robustness(ex["robustness"], both, fig_dir))
    for modality in ("visual", "audio"):
        if any(r["modality"] == modality for r in rows):
            stem = fig_dir / f"unimodal_{modality}"
            figures.unimodal_figure([r for r in rows if r["modality"] == modality], modality, stem)
            made.append(stem)
    for i, record in enumerate(records):
        stem = fig_dir / f"inspection_{i}"
        figures.inspection_figure(record, stem)
        made.append(stem)
    return made


def _robustness(spec: dict, both: list[dict], fig_dir: Path) -> Path:
    settings = {(parse_snr(a), parse_snr(v)) for a in spec["train_audio_snrs"] for v in spec["train_visual_snrs"]}
    chosen = [r for r in both if r["fusion"] == "initial" and (r["train_audio_snr"], r["train_visual_snr"]) in settings]
    stem = fig_dir / "robustness"
    figures.robustness_figure(chosen, stem)
    return stem


def execute(profile: Profile, runs: list[Run], out: Path, meta: dict[str, Any], progress: bool = True,
            jobs: int = 1, threads: int | None = None) -> Path:
    t0 = time.perf_counter()
    csvs = run_all(runs, out, progress, jobs, threads)
    rows = read_results(csvs)
    write_rows(_as_csv_rows(csvs), out / "results.csv")
    records = run_inspection(profile, runs, out)
    render_figures(profile, runs, rows, records, out)
    meta = {**meta, "data": _data_summary(runs[0]),
            "wall_seconds_this_invocation": round(time.perf_counter() - t0, 1)}
    report = write_report(rows, out / "report.md", inspection=records, meta=meta)
    _log(f"figures in {out / 'figures'}, report {report}")
    return report


def _data_summary(run: Run) -> str:
    d = describe(run.cfg.data)
    return (f"{d['root']}: MNIST {d['mnist_images']:,} images, FSDD {d['fsdd_version']} "
            f"{d['fsdd_recordings']:,} recordings; test split {d['splits']['test']['pairs']:,} pairs; "
            f"audio padded to {d['audio_samples']:,} samples ({d['frames']} x {d['bins']}, "
            f"{d['truncated_recordings']} truncated), {d['features']} features")


def _as_csv_rows(csvs: list[Path]):
    for path in csvs:
        with open(path, newline="") as fh:
            yield from csv.DictReader(fh)
