"""earlyfusion bench: the JSON structure, finite positive numbers, and the FLOP counter by hand.

No timed assertions: throughput is measured, never asserted.
"""

from __future__ import annotations

import copy
import json
import math

import pytest

from earlyfusion import bench
from earlyfusion.bench_table import format_table
from earlyfusion.cli import main
from earlyfusion.models import build_model

LEVEL_KEYS = {"train_examples_per_s", "infer_examples_per_s", "reference_train_examples_per_s",
              "speedup_vs_reference", "train_flops_per_example", "train_flops_per_s", "ceiling_flops_per_s",
              "train_fraction_of_ceiling"}


def _numbers(obj, path=""):
    """Every int/float leaf of a JSON-like object, with its path."""
    if isinstance(obj, dict):
        for k, v in obj.items():
            yield from _numbers(v, f"{path}.{k}")
    elif isinstance(obj, list):
        for i, v in enumerate(obj):
            yield from _numbers(v, f"{path}[{i}]")
    elif isinstance(obj, (int, float)) and not isinstance(obj, bool):
        yield path, obj


@pytest.fixture(scope="module")
def result():
    return bench.run_bench(quick=True, hidden=2, batch_size=2, steps=3, device="cpu", threads=1, data="synthetic")


def test_structure(result):
    assert set(result) >= {"meta", "sizes", "levels", "ceiling", "data", "data_examples_per_s", "targets"}
    assert set(result["levels"]) == {"initial", "second", "fc"}
    for level in result["levels"].values():
        assert set(level) == {"fp32", "bf16"}
        for entry in level.values():
            assert set(entry) == LEVEL_KEYS
    assert set(result["ceiling"]) == {"fp32", "bf16"}
    for c in result["ceiling"].values():
        assert c["layout"] in ("nchw", "channels_last") and c["flops_per_s"] == max(c["by_layout"].values())
    assert result["meta"]["threads"] == 1 and result["meta"]["torch"]
    assert result["sizes"]["steps"] == 3 and result["sizes"]["hidden"] == 2
    assert set(result["targets"]) == set(bench.TARGETS)
    assert all(isinstance(t["met"], bool) for t in result["targets"].values())
    json.dumps(result)  # plain JSON


def test_every_number_is_finite_and_positive(result):
    skip = ("load_average",)  # an idle machine may report a load of 0
    numbers = [(p, v) for p, v in _numbers(result) if not any(s in p for s in skip)]
    assert len(numbers) > 60
    bad = [(p, v) for p, v in numbers if not (math.isfinite(v) and v > 0)]
    assert not bad, bad


def test_fraction_is_achieved_over_ceiling(result):
    e = result["levels"]["initial"]["bf16"]
    assert e["train_flops_per_s"] == pytest.approx(e["train_examples_per_s"] * e["train_flops_per_example"])
    assert e["train_fraction_of_ceiling"] == pytest.approx(e["train_flops_per_s"] / result["ceiling"]["bf16"]["flops_per_s"])


def test_table_names_every_level_and_target(result):
    table = format_table(result)
    for word in ("initial", "second", "fc", "ceiling fp32", "ceiling bf16", "data path", *bench.TARGETS):
        assert word in table


def test_flop_count_by_hand():
    # initial fusion, 1 layer, hidden 2, 3x3, dense 4, 28x28 image, 201 bins, T = 3.
    model = build_model(fusion="initial", layers=1, hidden=2, kernel=3, dense=4)
    conv_x = 2 * 28 * 28 * 1 * 8 * 9  # static: once
    conv_h = 2 * 2 * 28 * 28 * 2 * 8 * 9  # steps 2 and 3 (h_0 = 0)
    audio = 3 * 2 * 201 * 8
    head = 2 * (2 * 14 * 14 * 4 + 4 * 10)
    forward = conv_x + conv_h + audio + head
    assert bench.forward_flops(model, 3) == forward
    assert bench.train_flops(model, 3) == 3 * forward


def test_flop_count_second_and_fc_by_hand():
    h, T = 2, 3
    second = build_model(fusion="second", hidden=h, dense=4)
    visual = 2 * 28 * 28 * 1 * h * 9
    lstm = T * 2 * 4 * h * (201 + h)
    fused = 2 * 14 * 14 * h * 4 * h * 9 + (T - 1) * 2 * 14 * 14 * h * 4 * h * 9 + T * 2 * h * 4 * h
    head = 2 * (h * 7 * 7 * 4 + 4 * 10)
    assert bench.forward_flops(second, T) == visual + lstm + fused + head
    fc = build_model(fusion="fc", hidden=h, dense=4)
    visual2 = visual + 2 * 14 * 14 * h * h * 9
    lstm2 = lstm + T * 2 * 4 * h * (h + h)
    head_fc = 2 * ((h * 7 * 7 + h) * 4 + 4 * 10)
    assert bench.forward_flops(fc, T) == visual2 + lstm2 + head_fc


def test_bad_sizes_raise():
    with pytest.raises(ValueError):
        bench.make_plan(True, hidden=0)
    with pytest.raises(ValueError):
        bench.run_bench(quick=True, hidden=2, batch_size=2, steps=3, threads=0, data="synthetic")


def test_cli_json(capsys):
    assert main(["bench", "--quick", "--json", "--hidden", "2", "--batch-size", "2", "--steps", "3",
                 "--data", "synthetic", "--device", "cpu"]) == 0
    out = json.loads(capsys.readouterr().out)
    assert out["levels"]["initial"]["fp32"]["train_examples_per_s"] > 0


def test_data_path_reads_a_data_root(data_root):
    plan = bench.make_plan(True, hidden=2, batch_size=2, steps=3)
    out = bench.measure_data(plan, data_root)
    assert out["source"] == str(data_root) and out["examples_per_s"] > 0 and out["frames"] >= 3


def test_memory_format_choice_per_device():
    # The CUDA path (not measurable without a GPU) picks channels-last; CPU keeps NCHW.
    import torch

    assert bench._memory_format("auto", torch.device("cuda")) == torch.channels_last
    assert bench._memory_format("auto", torch.device("cpu")) == torch.contiguous_format
    assert bench._memory_format("channels_last", torch.device("cpu")) == torch.channels_last
    with pytest.raises(ValueError):
        bench._memory_format("nhwc", torch.device("cpu"))


def test_channels_last_run_reports_its_layout():
    out = bench.run_bench(quick=True, hidden=2, batch_size=2, steps=3, device="cpu", data="synthetic",
                          memory_format="channels_last")
    assert out["meta"]["memory_format"] == "channels_last"
    assert out["levels"]["initial"]["bf16"]["train_examples_per_s"] > 0


def test_gpu_targets_and_columns(result):
    """On CUDA (a peak measured) the targets are the GPU ones and the table grows GPU columns;
    checked on a CPU result given the fields a CUDA run adds."""
    gpu = copy.deepcopy(result)
    gpu["peak_bf16_matmul_flops_per_s"] = 1e15
    gpu["meta"]["cuda_graphs"] = True
    for per in gpu["levels"].values():
        for e in per.values():
            e["train_fraction_of_bf16_peak"] = e["train_flops_per_s"] / 1e15
            e["eager_train_examples_per_s"] = e["train_examples_per_s"] / 2
            e["graph_speedup"] = 2.0
    targets = bench.targets(gpu)
    assert set(targets) == set(bench.GPU_TARGETS)
    rate = gpu["levels"]["initial"]["bf16"]["train_examples_per_s"]
    assert targets["paper_runs_per_minute"]["value"] == pytest.approx(60 * rate / 87_516)
    assert targets["paper_runs_per_minute"]["met"] == (rate * 60 >= 87_516)
    table = format_table({**gpu, "targets": targets})
    assert "eager ex/s" in table and "2.00x" in table and "peak: 1000 TFLOP/s" in table
    assert "eager ex/s" not in format_table(result)
