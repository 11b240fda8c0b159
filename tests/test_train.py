"""Training runs: learning, checkpoints, resume after a kill, clear errors."""

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch

from earlyfusion.checkpoint import load_checkpoint
from earlyfusion.config import build_config
from earlyfusion.data.dataset import AudioVisualData
from earlyfusion.train import CHECKPOINT, learning_rate, train

SHARED = Path(__file__).resolve().parents[1].parent / "shared" / "data"
pytestmark = pytest.mark.skipif(not (SHARED / "mnist").is_dir(), reason="needs ../shared/data")

TINY = ["data.audio_samples=4000", "model.hidden=4", "model.dense=16", "train.pairs=256",
        "train.batch_size=32", "train.precision=fp32", "train.val_pairs=64", "train.checkpoint_every=2",
        "eval.examples=32"]


def tiny_config(*extra):
    return build_config(overrides=[f"data.root={SHARED}", *TINY, *extra])


@pytest.fixture(scope="module")
def tiny_data():
    return AudioVisualData.load(tiny_config().data)


def test_checkpoint_records_the_run(tmp_path, tiny_data):
    cfg = tiny_config()
    metrics = train(cfg, tmp_path, data=tiny_data, progress=False)
    ckpt = load_checkpoint(tmp_path / CHECKPOINT)
    assert ckpt["complete"] and ckpt["step"] == 8  # 256 pairs / 32
    assert ckpt["config"] == cfg.to_dict()
    assert ckpt["manifest_hash"] == tiny_data.manifest_hash
    assert ckpt["code_version"]
    assert (tmp_path / "config.yaml").exists() and (tmp_path / "train.json").exists()
    assert 0.0 <= metrics["val_accuracy"] <= 1.0 and metrics["examples"] == 256


def test_finished_run_is_not_retrained(tmp_path, tiny_data):
    cfg = tiny_config()
    first = train(cfg, tmp_path, data=tiny_data, progress=False)
    stamp = (tmp_path / CHECKPOINT).stat().st_mtime_ns
    again = train(cfg, tmp_path, data=tiny_data, progress=False)
    assert again == first
    assert (tmp_path / CHECKPOINT).stat().st_mtime_ns == stamp


def test_corrupt_checkpoint_is_a_clear_error(tmp_path, tiny_data):
    (tmp_path / CHECKPOINT).write_bytes(b"not a checkpoint at all")
    with pytest.raises(ValueError, match=f"{CHECKPOINT}.*corrupt"):
        train(tiny_config(), tmp_path, data=tiny_data, progress=False)


def test_checkpoint_of_another_config_is_a_clear_error(tmp_path, tiny_data):
    train(tiny_config(), tmp_path, data=tiny_data, progress=False)
    with pytest.raises(ValueError, match="model.hidden: 4 -> 5"):
        train(tiny_config("model.hidden=5"), tmp_path, data=tiny_data, progress=False)


def _wait_for_partial_checkpoint(proc, path: Path, timeout: float = 120.0) -> None:
    deadline = time.time() + timeout
    while time.time() < deadline and proc.poll() is None:
        if path.exists():
            return
        time.sleep(0.05)
    raise AssertionError("training subprocess never wrote a checkpoint before ending")


def test_kill_and_resume_gives_the_uninterrupted_weights(tmp_path, tiny_data):
    extra = ["train.pairs=640", "train.checkpoint_every=3", "train.epochs=2", "train.schedule=cosine"]
    killed = tmp_path / "killed"
    cmd = [sys.executable, "-m", "earlyfusion.cli", "train", "--run-dir", str(killed), "--data-root", str(SHARED)]
    for o in TINY + extra:
        cmd += ["--set", o]
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    proc = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, env=env)
    try:
        _wait_for_partial_checkpoint(proc, killed / CHECKPOINT)
    finally:
        proc.send_signal(signal.SIGKILL)
        proc.wait()
    partial = load_checkpoint(killed / CHECKPOINT)
    assert not partial["complete"], "the run finished before it could be killed"
    resumed = train(tiny_config(*extra), killed, data=tiny_data, progress=False)
    clean = train(tiny_config(*extra), tmp_path / "clean", data=tiny_data, progress=False)
    a = load_checkpoint(killed / CHECKPOINT)["model"]
    b = load_checkpoint(tmp_path / "clean" / CHECKPOINT)["model"]
    assert a.keys() == b.keys()
    for key in a:
        torch.testing.assert_close(a[key], b[key], rtol=0, atol=0, msg=key)
    assert resumed["val_accuracy"] == clean["val_accuracy"]


def test_learning_rate_schedules():
    cosine = tiny_config("train.schedule=cosine", "train.lr=0.004")
    assert learning_rate(cosine, 0, 100) == pytest.approx(0.004)
    assert learning_rate(cosine, 50, 100) == pytest.approx(0.002)
    assert learning_rate(cosine, 99, 100) < 1e-5
    assert learning_rate(tiny_config(), 70, 100) == tiny_config().train.lr


def test_unknown_schedule_is_an_error(tmp_path, tiny_data):
    with pytest.raises(ValueError, match="train.schedule"):
        train(tiny_config("train.schedule=linear"), tmp_path, data=tiny_data, progress=False)


def test_loss_read_every_few_steps_counts_every_step(tmp_path, tiny_data, monkeypatch):
    """The loss is read from the device once per SYNC_EVERY steps; no step is lost or counted twice."""
    import earlyfusion.train as train_module

    cfg = tiny_config("train.epochs=2", "train.checkpoint_every=1000")  # 8 steps an epoch
    runs = {}
    for every in (1, 3):
        monkeypatch.setattr(train_module, "SYNC_EVERY", every)
        runs[every] = train(cfg, tmp_path / str(every), data=tiny_data, progress=False)
    assert runs[3]["examples"] == runs[1]["examples"] == 512
    for a, b in zip(runs[1]["history"], runs[3]["history"], strict=True):
        assert b["train_loss"] == pytest.approx(a["train_loss"], rel=1e-5)
        assert b["val_accuracy"] == a["val_accuracy"]
    assert runs[3]["train_seconds"] > 0
