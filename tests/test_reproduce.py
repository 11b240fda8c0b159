"""End to end: `reproduce` on the tiny profile trains, evaluates, draws and reports; then resumes."""

import csv
import math
from pathlib import Path

import matplotlib.image
import pytest

from earlyfusion.experiments import load_profile, plan_runs, reproduce
from earlyfusion.train import CHECKPOINT

SHARED = Path(__file__).resolve().parents[1].parent / "shared" / "data"


def test_shared_runs_are_planned_once():
    runs = plan_runs(load_profile("quick"))
    names = [r.name for r in runs]
    assert len(names) == len(set(names))
    shared = [r for r in runs if r.experiments >= {"fusion", "robustness", "inspection"}]
    assert len(shared) == 1 and shared[0].cfg.model.fusion == "initial"


def test_unimodal_runs_are_tested_along_their_own_modality():
    for run in plan_runs(load_profile("quick"), only=["unimodal"]):
        silent = run.cfg.eval.audio_snrs if run.cfg.model.modality == "visual" else run.cfg.eval.visual_snrs
        assert silent == [math.inf]


def test_seeds_multiply_runs():
    one = plan_runs(load_profile("quick"), only=["fusion"])
    three = plan_runs(load_profile("quick"), only=["fusion"], seeds=3)
    assert len(three) == 3 * len(one)
    assert {r.cfg.train.seed for r in three} == {0, 1, 2}


def test_an_experiment_can_have_its_own_seeds(tmp_path):
    (tmp_path / "p.yaml").write_text(
        "seeds: 1\nexperiments:\n  fusion: {fusions: [initial, fc], train_snrs: [[0.5, 0.25]], seeds: 3}\n"
        "  unimodal: {visual: [orig]}\n")
    runs = plan_runs(load_profile(str(tmp_path / "p.yaml")))
    seeds = {(r.cfg.model.fusion, r.cfg.model.modality): set() for r in runs}
    for r in runs:
        seeds[(r.cfg.model.fusion, r.cfg.model.modality)].add(r.cfg.train.seed)
    assert seeds == {("initial", "both"): {0, 1, 2}, ("fc", "both"): {0, 1, 2}, ("initial", "visual"): {0}}
    assert len(plan_runs(load_profile(str(tmp_path / "p.yaml")), seeds=2)) == 2 * 2 + 2  # --seeds wins


def test_bad_profile_and_only_are_errors(tmp_path):
    with pytest.raises(FileNotFoundError, match="built-in profiles"):
        load_profile("nosuchprofile")
    with pytest.raises(ValueError, match="--only"):
        plan_runs(load_profile("quick"), only=["fusoin"])
    (tmp_path / "p.yaml").write_text("base:\n  model: {hiden: 3}\n")
    with pytest.raises(ValueError, match="hiden"):
        load_profile(str(tmp_path / "p.yaml"))
    (tmp_path / "q.yaml").write_text("experiments:\n  fusion: {fusions: [fc], train_snr: [[1, 1]]}\n")
    with pytest.raises(ValueError, match="fusion.train_snr"):
        load_profile(str(tmp_path / "q.yaml"))


@pytest.mark.slow
@pytest.mark.skipif(not (SHARED / "mnist").is_dir(), reason="needs ../shared/data")
def test_tiny_reproduce_end_to_end(tmp_path):
    report = reproduce(profile="tiny", out=tmp_path, data_root=str(SHARED), progress=False, jobs=2)
    out = tmp_path / "tiny"
    with open(out / "results.csv", newline="") as fh:
        rows = list(csv.DictReader(fh))
    assert len(rows) == 9 + 9 + 3  # initial and fc on 3 x 3 cells, visual-only on 3
    clean = [r for r in rows if r["fusion"] == "initial" and r["modality"] == "both"
             and r["test_audio_snr"] == "orig" and r["test_visual_snr"] == "orig"]
    assert float(clean[0]["accuracy"]) > 0.3, "no real learning: clean accuracy near chance (0.1)"

    pngs = sorted((out / "figures").glob("*.png"))
    assert {p.stem.split("_")[0] for p in pngs} >= {"figure6", "fusion", "unimodal", "inspection"}
    for png in pngs:
        assert matplotlib.image.imread(png).shape[0] > 100
        assert png.with_suffix(".pdf").read_bytes().startswith(b"%PDF")
    text = report.read_text()
    assert "initial" in text and "fc" in text and "%" in text

    # Resume: a second invocation reuses every finished run and evaluation.
    stamps = {p: p.stat().st_mtime_ns for p in out.glob("runs/*/*") if p.name in (CHECKPOINT, "eval.csv")}
    assert len(stamps) == 6
    reproduce(profile="tiny", out=tmp_path, data_root=str(SHARED), progress=False)
    assert {p: p.stat().st_mtime_ns for p in stamps} == stamps
