"""Statistics over saved evaluation results: intervals, seed aggregation, paired differences.

Works on tidy eval rows (docs/design.md "Results"); never touches models. Definitions are in
docs/results.md. Every estimate is a linear contrast of per-cell accuracies, so one routine
(`_contrast`) gives the per-cell differences, grid means and effective robustness: across
seeds a Student t interval when >= 2 seeds, else a normal approximation from the binomials.
"""

from __future__ import annotations

import csv
import math
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Iterable

from scipy import stats as sps

from earlyfusion.snr import parse_snr

Z95 = 1.959963984540054
SNR_COLUMNS = ("train_audio_snr", "train_visual_snr", "test_audio_snr", "test_visual_snr")
INT_COLUMNS = ("n", "correct", "seed")
FLOAT_COLUMNS = ("accuracy", "ci_low", "ci_high")

Cell = tuple[float, float]  # (test audio SNR, test visual SNR)
Setting = tuple[str, str, float, float]  # (fusion, modality, train audio SNR, train visual SNR)
Grid = dict[int, dict[Cell, tuple[int, int]]]  # seed -> cell -> (correct, n)


@dataclass(frozen=True)
class Estimate:
    """A point estimate with its 95% interval; method is "t", "normal" or "wilson"."""

    mean: float
    low: float
    high: float
    seeds: int
    method: str

    def excludes_zero(self) -> bool:
        return self.low > 0 or self.high < 0


# ---- reading -------------------------------------------------------------------------------

def parse_row(row: dict) -> dict:
    """Typed copy of one tidy row (idempotent: parsed rows pass through unchanged)."""
    out = dict(row)
    for key in SNR_COLUMNS:
        out[key] = parse_snr(out[key])
    for key in INT_COLUMNS:
        out[key] = int(out[key])
    for key in FLOAT_COLUMNS:
        if out.get(key) not in (None, ""):
            out[key] = float(out[key])
    out["fusion"], out["modality"] = str(out["fusion"]), str(out["modality"])
    return out


def read_results(paths: Iterable[Path | str]) -> list[dict]:
    """Read eval.csv files into typed rows (SNRs as floats, orig = inf)."""
    rows = []
    for path in paths:
        with open(path, newline="") as fh:
            rows.extend(parse_row(r) for r in csv.DictReader(fh))
    return rows


def setting_of(row: dict) -> Setting:
    return (row["fusion"], row["modality"], row["train_audio_snr"], row["train_visual_snr"])


def grids(rows: Iterable[dict]) -> dict[Setting, Grid]:
    """Counts per setting, seed and test cell; duplicate rows of one cell are pooled."""
    out: dict[Setting, Grid] = {}
    for r in map(parse_row, rows):
        cells = out.setdefault(setting_of(r), {}).setdefault(r["seed"], {})
        cell = (r["test_audio_snr"], r["test_visual_snr"])
        c, n = cells.get(cell, (0, 0))
        cells[cell] = (c + r["correct"], n + r["n"])
    return out


# ---- intervals -----------------------------------------------------------------------------

def wilson_interval(correct: int, n: int, z: float = Z95) -> tuple[float, float]:
    """Wilson score interval for a binomial proportion (z = 1.96: 95%)."""
    if n <= 0:
        raise ValueError(f"n must be > 0, got {n}")
    if not 0 <= correct <= n:
        raise ValueError(f"correct must lie in [0, n], got {correct} of {n}")
    p = correct / n
    denom = 1 + z * z / n
    centre = (p + z * z / (2 * n)) / denom
    half = z * math.sqrt(p * (1 - p) / n + z * z / (4 * n * n)) / denom
    # at 0 or n the exact bound is 0 or 1; float rounding would leave ~1e-17
    low = 0.0 if correct == 0 else max(0.0, centre - half)
    high = 1.0 if correct == n else min(1.0, centre + half)
    return low, high


def t_interval(values: list[float], level: float = 0.95) -> tuple[float, float, float]:
    """(mean, low, high): Student t interval of the mean of >= 2 values."""
    k = len(values)
    if k < 2:
        raise ValueError("a t interval needs at least 2 values")
    mean = sum(values) / k
    sd = math.sqrt(sum((v - mean) ** 2 for v in values) / (k - 1))
    half = sps.t.ppf(0.5 + level / 2, k - 1) * sd / math.sqrt(k)
    return mean, mean - half, mean + half


def _binomial_var(correct: int, n: int) -> float:
    # Agresti-Caffo: one success and one failure added, so a cell at 0% or 100% still has
    # a nonzero variance (the point estimate itself stays the observed proportion).
    p = (correct + 1) / (n + 2)
    return p * (1 - p) / (n + 2)


def _contrast(a: Grid, b: Grid | None, weights: dict[Cell, float]) -> Estimate:
    """sum_c w_c (acc_a(c) - acc_b(c)), paired by seed; b=None means acc_b = 0."""
    seeds = sorted(set(a) & set(b)) if b is not None else sorted(a)
    if not seeds:
        raise ValueError("no seed common to both results")
    values, var = [], 0.0
    for s in seeds:
        v = 0.0
        for cell, w in weights.items():
            ca, na = a[s][cell]
            v += w * ca / na
            if b is not None:
                cb, nb = b[s][cell]
                v -= w * cb / nb
            if len(seeds) == 1:  # cells treated as independent binomials
                var += w * w * (_binomial_var(ca, na) + (_binomial_var(*b[s][cell]) if b is not None else 0))
        values.append(v)
    if len(values) >= 2:
        return Estimate(*t_interval(values), seeds=len(values), method="t")
    half = Z95 * math.sqrt(var)
    return Estimate(values[0], values[0] - half, values[0] + half, seeds=1, method="normal")


def common_cells(a: Grid, b: Grid | None = None) -> list[Cell]:
    """Test cells present for every (common) seed of a and b, sorted."""
    seeds = (set(a) & set(b)) if b is not None else set(a)
    cells = None
    for s in seeds:
        here = set(a[s]) & (set(b[s]) if b is not None else set(a[s]))
        cells = here if cells is None else cells & here
    return sorted(cells or ())


# ---- aggregation and differences -----------------------------------------------------------

def aggregate_seeds(rows: Iterable[dict]) -> list[dict]:
    """One row per (setting, cell): mean accuracy over seeds and its 95% interval.

    >= 2 seeds: t interval across seeds; 1 seed: Wilson interval of the counts.
    """
    out = []
    for (fusion, modality, tas, tvs), grid in sorted(grids(rows).items()):
        cells = sorted({c for per_seed in grid.values() for c in per_seed})
        for cell in cells:
            counts = [grid[s][cell] for s in sorted(grid) if cell in grid[s]]
            correct, n = sum(c for c, _ in counts), sum(m for _, m in counts)
            if len(counts) >= 2:
                mean, low, high = t_interval([c / m for c, m in counts])
                method = "t"
            else:
                mean, (low, high), method = correct / n, wilson_interval(correct, n), "wilson"
            out.append({"fusion": fusion, "modality": modality, "train_audio_snr": tas,
                         "train_visual_snr": tvs, "test_audio_snr": cell[0],
                         "test_visual_snr": cell[1], "seeds": len(counts), "n": n,
                         "correct": correct, "accuracy": mean, "ci_low": low, "ci_high": high,
                         "method": method})
    return out


def _pair(rows, fusion_a, fusion_b, tas, tvs, modality) -> tuple[Grid, Grid]:
    g = grids(rows)
    try:
        return g[(fusion_a, modality, tas, tvs)], g[(fusion_b, modality, tas, tvs)]
    except KeyError as err:
        raise KeyError(f"no results for setting {err.args[0]}") from None


def paired_differences(rows, fusion_a: str, fusion_b: str, train_audio_snr: float,
                       train_visual_snr: float, modality: str = "both") -> dict[Cell, Estimate]:
    """Per test cell: accuracy(fusion_a) - accuracy(fusion_b), paired by seed and cell."""
    a, b = _pair(rows, fusion_a, fusion_b, train_audio_snr, train_visual_snr, modality)
    return {cell: _contrast(a, b, {cell: 1.0}) for cell in common_cells(a, b)}


def mean_difference(rows, fusion_a: str, fusion_b: str, train_audio_snr: float,
                    train_visual_snr: float, modality: str = "both",
                    where: Callable[[float, float], bool] | None = None) -> Estimate | None:
    """Mean over test cells (those with where(audio, visual) true) of acc_a - acc_b."""
    a, b = _pair(rows, fusion_a, fusion_b, train_audio_snr, train_visual_snr, modality)
    cells = [c for c in common_cells(a, b) if where is None or where(*c)]
    if not cells:
        return None
    return _contrast(a, b, {c: 1 / len(cells) for c in cells})


def robustness_summary(rows, baseline: str = "fc") -> list[dict]:
    """Per setting: mean accuracy over the test grid, accuracy at the training cell, and
    effective robustness against `baseline` fusion at the same training SNRs and modality:
    mean_c[acc(c) - acc_base(c)] - [acc(c0) - acc_base(c0)], c0 the training cell."""
    g, out = grids(rows), []
    for setting, grid in sorted(g.items()):
        fusion, modality, tas, tvs = setting
        cells, c0 = common_cells(grid), (tas, tvs)
        row = {"fusion": fusion, "modality": modality, "train_audio_snr": tas,
               "train_visual_snr": tvs, "cells": len(cells),
               "mean_accuracy": _contrast(grid, None, {c: 1 / len(cells) for c in cells}),
               "train_cell_accuracy": None, "effective_robustness": None}
        if c0 in cells:
            row["train_cell_accuracy"] = _contrast(grid, None, {c0: 1.0})
        base = g.get((baseline, modality, tas, tvs))
        if base is not None and fusion != baseline and set(grid) & set(base):
            row["effective_robustness"] = effective_robustness(grid, base, c0)
        out.append(row)
    return out


def effective_robustness(grid: Grid, base: Grid, train_cell: Cell) -> Estimate | None:
    """mean_c[d(c)] - d(c0) with d = acc - acc_base, over the cells both grids share."""
    cells = common_cells(grid, base)
    if train_cell not in cells:
        return None
    weights = {c: 1 / len(cells) for c in cells}
    weights[train_cell] -= 1.0
    return _contrast(grid, base, weights)
