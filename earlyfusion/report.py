"""The Markdown report: the paper's claims beside our numbers, from saved results only.

Every verdict is computed from the rows by the rules in RULES (also printed in the report and
in docs/results.md); nothing here is hard-coded to an outcome.
"""

from __future__ import annotations

import datetime as _dt
import os
import math
from pathlib import Path

import numpy as np

from earlyfusion import stats
from earlyfusion.snr import format_snr, parse_snr

HOLDS, FAILS, UNSURE = "holds", "does not hold", "inconclusive"
MAX_WORSE_SHARE = 0.10   # cells where initial is significantly worse, at most this share
MARGIN = 0.01            # claim (a): mean-difference interval above -1 point
RULES = f"""\
A cell is *significantly worse* for initial fusion when the paired 95% interval of
(initial - other) lies wholly below 0. Raw per-cell counts (initial >= other) are shown but do
not decide: with ~200 examples per cell a single-cell difference swings by several points.

- **(a) initial >= FC**, per training setting, over all test cells: **{HOLDS}** if initial is
  significantly worse in at most {MAX_WORSE_SHARE:.0%} of the cells and the 95% interval of the
  grid-mean difference lies above {-100 * MARGIN:g} point; **{FAILS}** if it is significantly
  worse in more than {MAX_WORSE_SHARE:.0%} of the cells or the whole interval of the mean
  difference lies below 0; else **{UNSURE}**.
- **(b) initial > second-layer** except where the test audio SNR is far below the training
  audio SNR: judged on the cells with test audio SNR >= training audio SNR only. **{HOLDS}** if
  initial is significantly worse in at most {MAX_WORSE_SHARE:.0%} of them and the interval of
  their mean difference lies above 0; **{FAILS}** if significantly worse in more than
  {MAX_WORSE_SHARE:.0%} or the interval lies below 0; else **{UNSURE}**. The cells below the
  training audio SNR are reported alongside (the paper's exception).
- **(c) initial degrades more gracefully**: effective robustness (ER) of initial fusion against
  each later fusion level L trained at the same SNRs, ER = mean over cells of
  (acc_initial - acc_L) minus (acc_initial - acc_L) at the training cell, i.e. how much
  initial's advantage grows away from the training SNRs. **{HOLDS}** if every ER interval lies
  above 0; **{FAILS}** if any lies below 0; else **{UNSURE}**.
"""


# ---- formatting ----------------------------------------------------------------------------

def _pts(e: stats.Estimate | None) -> str:
    if e is None:
        return "-"
    return f"{100 * e.mean:+.1f} [{100 * e.low:+.1f}, {100 * e.high:+.1f}]"


def _pct(e: stats.Estimate | None) -> str:
    if e is None:
        return "-"
    return f"{100 * e.mean:.1f}% [{100 * e.low:.1f}, {100 * e.high:.1f}]"


def _train(tas: float, tvs: float) -> str:
    return f"audio {format_snr(tas)}, visual {format_snr(tvs)}"


def _table(header: list[str], body: list[list[str]]) -> list[str]:
    lines = ["| " + " | ".join(header) + " |", "|" + " --- |" * len(header)]
    return lines + ["| " + " | ".join(str(x) for x in r) + " |" for r in body]


# ---- claim evidence ------------------------------------------------------------------------

def compare(rows, other: str, tas: float, tvs: float, where=None) -> dict | None:
    """Cell counts and mean difference of initial - other over the cells `where` selects."""
    diffs = stats.paired_differences(rows, "initial", other, tas, tvs)
    cells = [c for c in diffs if where is None or where(*c)]
    if not cells:
        return None
    return {"cells": len(cells),
            "ge": sum(diffs[c].mean >= 0 for c in cells),
            "gt": sum(diffs[c].mean > 0 for c in cells),
            "worse": sum(diffs[c].high < 0 for c in cells),
            "mean": stats.mean_difference(rows, "initial", other, tas, tvs, where=where)}


def verdict_dominance(ev: dict | None, floor: float) -> str:
    """Claims (a) (floor = -MARGIN) and (b) (floor = 0); rules in RULES."""
    if ev is None:
        return UNSURE
    worse_share = ev["worse"] / ev["cells"]
    if worse_share > MAX_WORSE_SHARE or ev["mean"].high < 0:
        return FAILS
    if ev["mean"].low > floor:
        return HOLDS
    return UNSURE


def verdict_graceful(ers: list[stats.Estimate]) -> str:
    """Claim (c): every effective-robustness interval above 0 -> holds; any below -> fails."""
    if not ers:
        return UNSURE
    if any(e.high < 0 for e in ers):
        return FAILS
    return HOLDS if all(e.low > 0 for e in ers) else UNSURE


def _trained_pairs(rows, other: str) -> list[tuple[float, float]]:
    """Training settings (multimodal) that have both initial and `other` fusion results."""
    have = {}
    for r in rows:
        if r["modality"] == "both":
            have.setdefault((r["train_audio_snr"], r["train_visual_snr"]), set()).add(r["fusion"])
    return sorted(t for t, fs in have.items() if {"initial", other} <= fs)


# ---- sections ------------------------------------------------------------------------------

def _claim_a(rows) -> list[str]:
    body = []
    for tas, tvs in _trained_pairs(rows, "fc"):
        ev = compare(rows, "fc", tas, tvs)
        body.append([_train(tas, tvs), f"{ev['ge']} / {ev['cells']}", ev["worse"],
                     _pts(ev["mean"]), f"**{verdict_dominance(ev, -MARGIN)}**"])
    if not body:
        return ["No setting has both initial and FC fusion results."]
    return _table(["trained at", "cells initial >= FC", "cells significantly worse",
                   "mean initial - FC (points, 95% CI)", "verdict"], body)


def _claim_b(rows) -> list[str]:
    body = []
    for tas, tvs in _trained_pairs(rows, "second"):
        hi = compare(rows, "second", tas, tvs, where=lambda a, v, t=tas: a >= t)
        lo = compare(rows, "second", tas, tvs, where=lambda a, v, t=tas: a < t)
        cols = [f"{hi['gt']} / {hi['cells']}", hi["worse"], _pts(hi["mean"])] if hi else ["-"] * 3
        cols += [f"{lo['gt']} / {lo['cells']}", lo["worse"], _pts(lo["mean"])] if lo else ["-"] * 3
        body.append([_train(tas, tvs)] + cols + [f"**{verdict_dominance(hi, 0.0)}**"])
    if not body:
        return ["No setting has both initial and second-layer fusion results."]
    return _table(["trained at", "audio >= train: initial > second", "sig. worse",
                   "mean initial - second", "audio < train: initial > second", "sig. worse",
                   "mean initial - second", "verdict"], body)


def _claim_c(rows) -> list[str]:
    summ = stats.robustness_summary(rows)
    g, body, verdicts = stats.grids(rows), [], []
    order = {"initial": 0, "second": 1, "fc": 2}
    for r in sorted(summ, key=lambda r: (r["train_audio_snr"], r["train_visual_snr"],
                                         order.get(r["fusion"], 3), r["fusion"])):
        if r["modality"] != "both":
            continue
        body.append([_train(r["train_audio_snr"], r["train_visual_snr"]), r["fusion"],
                     r["cells"], _pct(r["train_cell_accuracy"]), _pct(r["mean_accuracy"]),
                     _pts(r["effective_robustness"])])
    for tas, tvs in sorted({(r["train_audio_snr"], r["train_visual_snr"]) for r in summ
                            if r["fusion"] == "initial" and r["modality"] == "both"}):
        mine = g[("initial", "both", tas, tvs)]
        ers = {L: stats.effective_robustness(mine, g[(L, "both", tas, tvs)], (tas, tvs))
               for L in ("fc", "second") if (L, "both", tas, tvs) in g}
        ers = {L: e for L, e in ers.items() if e is not None}
        if ers:
            verdicts.append([_train(tas, tvs)] + [_pts(ers.get(L)) for L in ("fc", "second")]
                            + [f"**{verdict_graceful(list(ers.values()))}**"])
    lines = _table(["trained at", "fusion", "cells", "accuracy at training cell",
                    "mean accuracy over grid", "ER vs FC (points)"], body)
    if verdicts:
        lines += ["", *_table(["trained at", "ER initial vs FC", "ER initial vs second",
                               "verdict"], verdicts)]
    return lines


def _unimodal(rows) -> list[str]:
    agg = [r for r in stats.aggregate_seeds(rows) if r["modality"] in ("audio", "visual")]
    body = []
    for mod, fusion, train in sorted({(r["modality"], r["fusion"], r[f"train_{r['modality']}_snr"])
                                      for r in agg}):
        mine = [r for r in agg if (r["modality"], r["fusion"], r[f"train_{mod}_snr"])
                == (mod, fusion, train)]
        at = next((r for r in mine if r[f"test_{mod}_snr"] == train), None)
        clean = next((r for r in mine if math.isinf(r[f"test_{mod}_snr"])), None)
        body.append([mod, fusion, format_snr(train), _agg_pct(at), _agg_pct(clean)])
    return _table(["modality", "fusion", "trained at", "accuracy at training SNR",
                   "accuracy on clean data"], body) if body else []


def _agg_pct(r: dict | None) -> str:
    return "-" if r is None else f"{100 * r['accuracy']:.1f}% [{100 * r['ci_low']:.1f}, " \
                                 f"{100 * r['ci_high']:.1f}]"


def _inspection(records) -> list[str]:
    """A.5: the class the network favours just before the audio begins and at the end."""
    body = []
    for i, rec in enumerate(records):
        for sc in rec["scenarios"]:
            act = np.asarray(sc["activations"], dtype=float)
            start = sc.get("audio_start")
            before = str(int(np.argmax(act[start - 1]))) if start and start > 0 else "-"
            body.append([i, rec["label"], format_snr(parse_snr(sc["audio_snr"])),
                         format_snr(parse_snr(sc["visual_snr"])), before,
                         int(np.argmax(act[-1]))])
    return _table(["example", "true class", "audio SNR", "visual SNR",
                   "top class before audio", "top class at end"], body)


def _provenance(meta: dict) -> list[str]:
    keys = ["profile", "command", "seeds", "data", "date", "code_version"]
    info = {k: meta.get(k) for k in keys}
    info["date"] = info["date"] or _dt.datetime.now(_dt.timezone.utc).strftime("%Y-%m-%d %H:%M UTC")
    info.update({k: v for k, v in meta.items() if k not in keys and k != "figures"})
    return _table(["", ""], [[k, f"`{v}`" if v is not None else "-"] for k, v in info.items()])


def _figures(out_path: Path, meta: dict) -> list[str]:
    """Links relative to the report: meta["figures"] ({title: path} or [paths]), else every
    PNG found next to (or below) the report."""
    figs = meta.get("figures")
    if figs is None:
        figs = sorted(out_path.parent.rglob("*.png"))
    if not isinstance(figs, dict):
        figs = {Path(p).stem.replace("_", " "): p for p in figs}
    lines = []
    for title, p in figs.items():
        p = Path(p)
        rel = p if not p.is_absolute() else Path(_relpath(p, out_path.parent))
        lines += [f"### {title}", "", f"![{title}]({rel.as_posix()})", ""]
    return lines


def _relpath(p: Path, base: Path) -> str:
    return os.path.relpath(p.resolve(), base.resolve())


def write_report(rows, out_path: Path, inspection=None, meta: dict | None = None) -> Path:
    """Write the Markdown report (claims, robustness, unimodal, inspection, figures)."""
    rows = [stats.parse_row(r) for r in rows]
    out_path, meta = Path(out_path), dict(meta or {})
    seeds = sorted({r["seed"] for r in rows})
    lines = ["# Early fusion reproduction: results", "",
             "Barnum, Talukder & Yue (2020), *On the Benefits of Early Fusion in Multimodal "
             "Representation Learning*: the paper's claims beside our numbers. Differences are "
             "in accuracy points, intervals are 95% (definitions: docs/results.md).", "",
             "## Provenance", "", *_provenance(meta), "",
             f"{len(rows)} result rows; seeds present: {', '.join(map(str, seeds)) or '-'}.",
             "" if len(seeds) > 1 else "With a single seed, intervals reflect test-set "
             "sampling only (binomial), not training-to-training variation, and a grid mean "
             "treats cells as independent: read them as lower bounds on the uncertainty.", "",
             "## Verdict rules", "", RULES,
             "## (a) Initial fusion >= FC fusion at (nearly) every test SNR (paper 5.1)", "",
             *_claim_a(rows), "",
             "## (b) Initial > second-layer fusion, except where audio SNR is far below its "
             "training SNR (paper 5.1)", "", *_claim_b(rows), "",
             "## (c) Initial fusion degrades more gracefully away from the training SNR "
             "(paper 5.1, 5.2)", "",
             "Mean accuracy over the test grid is the 2-D area under the accuracy surface; "
             "ER is effective robustness against FC fusion trained at the same SNRs.", "",
             *_claim_c(rows), ""]
    uni = _unimodal(rows)
    if uni:
        lines += ["## Unimodal models (paper 5.3, Figures 3 and 4)", "", *uni, ""]
    if inspection:
        lines += ["## Model inspection (paper A.5)", "", *_inspection(inspection), ""]
    figs = _figures(out_path, meta)
    if figs:
        lines += ["## Figures", "", *figs]
    out_path.parent.mkdir(parents=True, exist_ok=True)
    out_path.write_text("\n".join(lines).rstrip() + "\n")
    return out_path
