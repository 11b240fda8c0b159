"""SNR-grid evaluation: identical inputs for every model, the shared-prefix sweep is exact."""

import csv
from pathlib import Path

import pytest
import torch

from earlyfusion.config import build_config
from earlyfusion.data.dataset import AudioVisualData
from earlyfusion.evaluate import COLUMNS, count_correct, evaluate_checkpoint, evaluate_grid, fixed_test_pairs
from earlyfusion.models import build_model_from_config
from earlyfusion.train import CHECKPOINT, train

SHARED = Path(__file__).resolve().parents[1].parent / "shared" / "data"
pytestmark = pytest.mark.skipif(not (SHARED / "mnist").is_dir(), reason="needs ../shared/data")
CPU = torch.device("cpu")


def small_config(*extra):
    return build_config(overrides=[f"data.root={SHARED}", "data.audio_samples=6000", "model.hidden=4",
                                   "model.dense=16", "train.precision=fp32", "eval.examples=24",
                                   "eval.batch_size=64", "eval.audio_snrs=[orig, 1, 0.25]",
                                   "eval.visual_snrs=[orig, 0.5]", *extra])


@pytest.fixture(scope="module")
def data():
    return AudioVisualData.load(small_config().data)


@pytest.mark.parametrize("fusion", ["initial", "second", "fc"])
def test_shared_prefix_sweep_matches_separate_cells(data, fusion):
    cfg = small_config(f"model.fusion={fusion}")
    torch.manual_seed(0)
    model = build_model_from_config(cfg.model)
    kw = dict(precision="fp32", device=CPU, progress=False)
    shared = evaluate_grid(model, data, cfg.eval, share=True, **kw)
    plain = evaluate_grid(model, data, cfg.eval, share=False, **kw)
    assert [(r["test_audio_snr"], r["test_visual_snr"]) for r in shared] == \
           [(r["test_audio_snr"], r["test_visual_snr"]) for r in plain]
    for s, p in zip(shared, plain):
        assert abs(s["correct"] - p["correct"]) <= 1, (s, p)  # argmax ties may flip at 1e-7


def test_every_model_sees_the_same_test_inputs(data):
    cfg = small_config()
    a, b = fixed_test_pairs(data, cfg.eval), fixed_test_pairs(data, cfg.eval)
    assert torch.equal(a[0], b[0]) and torch.equal(a[1], b[1])
    x1 = data.batch(*a, audio_snr=0.5, visual_snr=0.25, noise_seed=cfg.eval.seed)
    x2 = data.batch(*b, audio_snr=0.5, visual_snr=0.25, noise_seed=cfg.eval.seed)
    assert all(torch.equal(u, v) for u, v in zip(x1, x2))


def test_rows_hold_counts_and_wilson_intervals(data):
    cfg = small_config()
    torch.manual_seed(0)
    model = build_model_from_config(cfg.model)
    rows = evaluate_grid(model, data, cfg.eval, precision="fp32", device=CPU, progress=False)
    assert len(rows) == 3 * 2
    for row in rows:
        assert row["n"] == 24 and 0 <= row["correct"] <= 24
        assert row["ci_low"] <= row["accuracy"] <= row["ci_high"]
    img, aud = fixed_test_pairs(data, cfg.eval)
    direct = count_correct(model, data, img, aud, audio_snr=1.0, visual_snr=0.5, noise_seed=cfg.eval.seed,
                           batch_size=64, precision="fp32", device=CPU)
    cell = next(r for r in rows if r["test_audio_snr"] == "1" and r["test_visual_snr"] == "0.5")
    assert abs(cell["correct"] - direct) <= 1


def test_evaluate_checkpoint_writes_the_tidy_csv(tmp_path, data):
    cfg = small_config("train.pairs=32", "train.batch_size=16", "train.val_pairs=16")
    train(cfg, tmp_path / "run", data=data, progress=False)
    out = evaluate_checkpoint(tmp_path / "run" / CHECKPOINT, cfg.eval, tmp_path / "eval.csv", data=data,
                              device="cpu", progress=False)
    with open(out, newline="") as fh:
        rows = list(csv.DictReader(fh))
    assert tuple(rows[0].keys()) == COLUMNS and len(rows) == 6
    assert {r["run"] for r in rows} == {"run"} and rows[0]["fusion"] == "initial"
    assert rows[0]["train_audio_snr"] == "0.5" and rows[0]["test_audio_snr"] == "orig"
