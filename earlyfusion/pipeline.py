"""Executes a planned reproduction: train and evaluate what is missing, then figures and report.

Layout of OUT/<profile>/: runs/<run>/{config.yaml, checkpoint.pt, train.json, eval.csv,
eval.json}, results.csv (every eval row), inspection.json, figures/*.{png,pdf}, report.md.
"""

from __future__ import annotations

import csv
import json
import time
from pathlib import Path
from typing import Any

import torch

from earlyfusion import figures
from earlyfusion.checkpoint import run_digest
from earlyfusion.data.dataset import AudioVisualData
from earlyfusion.data.show import render_noise_examples
from earlyfusion.evaluate import evaluate_checkpoint, load_trained, write_rows
from earlyfusion.experiments import Profile, Run
from earlyfusion.inspection import inspect_examples
from earlyfusion.report import write_report
from earlyfusion.runtime import resolve_device
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


def run_all(runs: list[Run], out: Path, progress: bool = True) -> list[Path]:
    """Train and evaluate every run that is not finished yet; returns the eval CSVs."""
    cache: dict[str, AudioVisualData] = {}
    csvs = []
    for i, run in enumerate(runs, 1):
        device = resolve_device(run.cfg.train.device)
        run_dir = out / "runs" / run.name
        _log(f"[{i}/{len(runs)}] {run.name} ({', '.join(sorted(run.experiments))})")
        data = _data_for(run, cache, device)
        t0 = time.perf_counter()
        metrics = train(run.cfg, run_dir, data=data, progress=progress)
        csvs.append(_evaluate_if_needed(run, run_dir, data, progress))
        _log(f"    val accuracy {metrics.get('val_accuracy', float('nan')):.3f}, "
             f"{time.perf_counter() - t0:.0f} s")
    return csvs


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
    made = [render_noise_examples(runs[0].cfg.data, fig_dir / "figure6_noise_examples.png")]
    ex = profile.experiments
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


def execute(profile: Profile, runs: list[Run], out: Path, meta: dict[str, Any], progress: bool = True) -> Path:
    t0 = time.perf_counter()
    csvs = run_all(runs, out, progress)
    rows = read_results(csvs)
    write_rows(_as_csv_rows(csvs), out / "results.csv")
    records = run_inspection(profile, runs, out)
    render_figures(profile, runs, rows, records, out)
    meta = {**meta, "wall_seconds_this_invocation": round(time.perf_counter() - t0, 1)}
    report = write_report(rows, out / "report.md", inspection=records, meta=meta)
    _log(f"figures in {out / 'figures'}, report {report}")
    return report


def _as_csv_rows(csvs: list[Path]):
    for path in csvs:
        with open(path, newline="") as fh:
            yield from csv.DictReader(fh)
