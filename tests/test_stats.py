"""Statistics over tidy eval rows: intervals against known values and scipy, pairing, summaries.

`make_rows` / `make_unimodal_rows` build synthetic results (strings, as csv.DictReader gives
them) and are reused by test_figures.py and test_report.py.
"""

from __future__ import annotations

import csv
import math

import numpy as np
import pytest
from scipy import stats as sps

from earlyfusion import stats
from earlyfusion.snr import format_snr

SNRS = [0.0625, 0.125, 0.25, 0.5, 1.0, 2.0, 4.0, 8.0, 16.0, math.inf]
COLUMNS = ["run", "fusion", "modality", "train_audio_snr", "train_visual_snr", "seed",
           "test_audio_snr", "test_visual_snr", "n", "correct", "accuracy", "ci_low", "ci_high"]


def _sig(x):
    return 1 / (1 + math.exp(-x))


def surface(a, v, bonus=0.0):
    """A plausible accuracy surface: chance (10%) to ~98%, rising with both SNRs."""
    la, lv = math.log2(min(a, 32.0)), math.log2(min(v, 32.0))
    sa, sv = _sig(1.3 * (la + 1.5 + bonus)), _sig(1.0 * (lv + 0.5 + bonus))
    return 0.1 + 0.88 * (1 - (1 - sa) * (1 - sv))


def _row(run, fusion, modality, ta, tv, seed, a, v, n, correct):
    lo, hi = stats.wilson_interval(correct, n)
    vals = [run, fusion, modality, format_snr(ta), format_snr(tv), seed, format_snr(a),
            format_snr(v), n, correct, correct / n, lo, hi]
    return {k: str(x) for k, x in zip(COLUMNS, vals)}


def make_rows(bonus: dict, train=(0.5, 0.25), seeds=(0,), n=400, seed=0, modality="both"):
    """Rows for each fusion level in `bonus` on the 10 x 10 grid: its value is a shift of the
    accuracy surface, or a function (audio, visual) -> accuracy."""
    rng, rows = np.random.default_rng(seed), []
    for fusion, b in bonus.items():
        acc = b if callable(b) else (lambda a, v, b=b: surface(a, v, b))
        for s in seeds:
            for a in SNRS:
                for v in SNRS:
                    correct = int(rng.binomial(n, acc(a, v)))
                    rows.append(_row(f"{fusion}-{s}", fusion, modality, *train, s, a, v, n, correct))
    return rows


def make_unimodal_rows(modality, trains=(math.inf, 1.0, 0.5, 0.25), n=400, seed=1):
    rng, rows = np.random.default_rng(seed), []
    for t in trains:
        for x in SNRS:
            p = surface(x, x, 0.5) if x <= t else surface(x, x, 0.5) - 0.05 * math.log2(min(x / t, 64))
            correct = int(rng.binomial(n, min(max(p, 0.05), 0.99)))
            ta, tv = (t, math.inf) if modality == "audio" else (math.inf, t)
            a, v = (x, math.inf) if modality == "audio" else (math.inf, x)
            rows.append(_row(f"{modality}-{t}", "initial", modality, ta, tv, 0, a, v, n, correct))
    return rows


# ---- intervals -----------------------------------------------------------------------------

def test_wilson_known_value():
    # 8 of 10 at z = 1.96: (0.4902, 0.9433), the textbook Wilson score interval.
    lo, hi = stats.wilson_interval(8, 10, z=1.96)
    assert lo == pytest.approx(0.4902, abs=1e-4)
    assert hi == pytest.approx(0.9433, abs=1e-4)


def test_wilson_edges_and_errors():
    lo, hi = stats.wilson_interval(0, 50)
    assert lo == 0 and 0 < hi < 0.1
    lo, hi = stats.wilson_interval(50, 50)
    assert 0.9 < lo < 1 and hi == 1
    with pytest.raises(ValueError):
        stats.wilson_interval(3, 0)
    with pytest.raises(ValueError):
        stats.wilson_interval(11, 10)


def test_t_interval_matches_scipy():
    xs = [0.81, 0.84, 0.79, 0.86]
    mean, lo, hi = stats.t_interval(xs)
    ref = sps.t.interval(0.95, len(xs) - 1, loc=np.mean(xs), scale=sps.sem(xs))
    assert mean == pytest.approx(np.mean(xs))
    assert (lo, hi) == pytest.approx(ref)


# ---- reading and aggregation ---------------------------------------------------------------

def test_read_results_parses_types(tmp_path):
    rows = make_rows({"initial": 0.0}, n=50)[:12]
    path = tmp_path / "eval.csv"
    with open(path, "w", newline="") as fh:
        w = csv.DictWriter(fh, fieldnames=COLUMNS)
        w.writeheader()
        w.writerows(rows)
    got = stats.read_results([path])
    assert len(got) == 12
    assert got[9]["test_visual_snr"] == math.inf and got[0]["test_audio_snr"] == 0.0625
    assert isinstance(got[0]["n"], int) and isinstance(got[0]["accuracy"], float)
    assert got[0]["seed"] == 0 and got[0]["train_audio_snr"] == 0.5


def test_aggregate_one_seed_is_wilson_of_counts():
    rows = make_rows({"fc": 0.0}, n=200)
    agg = stats.aggregate_seeds(rows)
    assert len(agg) == 100
    r = agg[0]
    assert r["method"] == "wilson" and r["seeds"] == 1
    assert (r["ci_low"], r["ci_high"]) == pytest.approx(stats.wilson_interval(r["correct"], 200))


def test_aggregate_several_seeds_is_t_across_seeds():
    rows = make_rows({"fc": 0.0}, seeds=(0, 1, 2), n=200)
    agg = {(r["test_audio_snr"], r["test_visual_snr"]): r for r in stats.aggregate_seeds(rows)}
    cell = (0.5, 0.25)
    per_seed = [int(r["correct"]) / 200 for r in rows
                if (r["test_audio_snr"], r["test_visual_snr"]) == ("0.5", "0.25")]
    assert len(per_seed) == 3
    mean, lo, hi = stats.t_interval(per_seed)
    got = agg[cell]
    assert got["method"] == "t" and got["seeds"] == 3 and got["n"] == 600
    assert (got["accuracy"], got["ci_low"], got["ci_high"]) == pytest.approx((mean, lo, hi))


# ---- differences and robustness ------------------------------------------------------------

def _one_cell(fusion, seed, correct, n=100, cell=("1", "1")):
    return {"run": "r", "fusion": fusion, "modality": "both", "train_audio_snr": "1",
            "train_visual_snr": "1", "seed": str(seed), "test_audio_snr": cell[0],
            "test_visual_snr": cell[1], "n": str(n), "correct": str(correct)}


def test_paired_difference_single_seed_normal_interval():
    rows = [_one_cell("initial", 0, 90), _one_cell("fc", 0, 80)]
    (est,) = stats.paired_differences(rows, "initial", "fc", 1.0, 1.0).values()
    assert est.mean == pytest.approx(0.10) and est.method == "normal"
    # Agresti-Caffo variance: (91/102)(11/102)/102 + (81/102)(21/102)/102
    p1, p2 = 91 / 102, 81 / 102
    half = stats.Z95 * math.sqrt(p1 * (1 - p1) / 102 + p2 * (1 - p2) / 102)
    assert (est.low, est.high) == pytest.approx((0.10 - half, 0.10 + half))


def test_paired_difference_pairs_by_seed():
    # seed-to-seed spread is large, but the difference within each seed is always +5 points:
    # pairing by seed gives a tight interval around 0.05.
    rows = []
    for s, base in enumerate([50, 70, 90]):
        rows += [_one_cell("initial", s, base + 5), _one_cell("fc", s, base)]
    (est,) = stats.paired_differences(rows, "initial", "fc", 1.0, 1.0).values()
    assert est.method == "t" and est.seeds == 3
    assert est.mean == pytest.approx(0.05) and est.low == pytest.approx(0.05)


def test_mean_difference_sign_follows_data():
    good = make_rows({"initial": 1.0, "fc": 0.0})
    bad = make_rows({"initial": 0.0, "fc": 1.0})
    up = stats.mean_difference(good, "initial", "fc", 0.5, 0.25)
    down = stats.mean_difference(bad, "initial", "fc", 0.5, 0.25)
    assert up.low > 0 and down.high < 0
    part = stats.mean_difference(good, "initial", "fc", 0.5, 0.25, where=lambda a, v: a >= 0.5)
    assert part is not None and part.seeds == 1
    assert stats.mean_difference(good, "initial", "fc", 0.5, 0.25, where=lambda a, v: False) is None


def test_robustness_summary_definitions():
    rows = make_rows({"initial": 1.0, "fc": 0.0}, n=300)
    summ = {r["fusion"]: r for r in stats.robustness_summary(rows)}
    grid = {(float(r["test_audio_snr"]) if r["test_audio_snr"] != "orig" else math.inf,
             float(r["test_visual_snr"]) if r["test_visual_snr"] != "orig" else math.inf,
             r["fusion"]): int(r["correct"]) / 300 for r in rows}
    cells = {(a, v) for a, v, _ in grid}
    d = {c: grid[c + ("initial",)] - grid[c + ("fc",)] for c in cells}
    er = sum(d.values()) / len(d) - d[(0.5, 0.25)]
    mean_init = sum(grid[c + ("initial",)] for c in cells) / len(cells)
    assert summ["initial"]["effective_robustness"].mean == pytest.approx(er)
    assert summ["initial"]["mean_accuracy"].mean == pytest.approx(mean_init)
    assert summ["initial"]["train_cell_accuracy"].mean == pytest.approx(grid[(0.5, 0.25, "initial")])
    assert summ["fc"]["effective_robustness"] is None
    assert summ["initial"]["cells"] == 100
