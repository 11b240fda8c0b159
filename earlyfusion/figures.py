"""Every figure of the paper, from saved results only (tidy eval rows, inspection records).

Each function saves `out_stem.png` and `out_stem.pdf` and returns the matplotlib Figure.
Figures are built with `matplotlib.figure.Figure` (Agg canvas), not pyplot, so no global
state or GUI backend is involved. Heatmaps: test audio SNR on y, test visual SNR on x,
"orig" (clean, SNR = inf) last; accuracies in percent, differences in percentage points.
"""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
from matplotlib.colors import Normalize, TwoSlopeNorm
from matplotlib.figure import Figure
from matplotlib.patches import Rectangle

from earlyfusion import stats
from earlyfusion.snr import format_snr, parse_snr

FUSIONS = ("initial", "second", "fc")
FUSION_TITLES = {"initial": "initial-layer fusion", "second": "second-layer fusion",
                 "fc": "FC fusion"}
BOX = dict(fill=False, edgecolor="red", linewidth=2.5, zorder=5)


def save(fig: Figure, out_stem: Path) -> tuple[Path, Path]:
    """Write out_stem.png (150 dpi) and out_stem.pdf; return both paths."""
    out_stem = Path(out_stem)
    out_stem.parent.mkdir(parents=True, exist_ok=True)
    png, pdf = out_stem.with_name(out_stem.name + ".png"), out_stem.with_name(out_stem.name + ".pdf")
    fig.savefig(png, dpi=150)
    fig.savefig(pdf)
    return png, pdf


def _title(fusion: str) -> str:
    return FUSION_TITLES.get(fusion, f"fusion at layer {fusion}")


# ---- heatmap primitives --------------------------------------------------------------------

def _matrix(values: dict, audio: list[float], visual: list[float]) -> np.ndarray:
    """values[(audio, visual)] -> array [audio index, visual index], NaN where missing."""
    m = np.full((len(audio), len(visual)), np.nan)
    for (a, v), x in values.items():
        if a in audio and v in visual:
            m[audio.index(a), visual.index(v)] = x
    return m


def _heatmap(ax, m, audio, visual, cmap, norm, fmt="{:.0f}", bold=None, fontsize=7):
    """Draw one heatmap with SNR tick labels; annotate cells (bold where bold[i, j])."""
    im = ax.imshow(m, origin="lower", cmap=cmap, norm=norm, aspect="equal")
    ax.set_xticks(range(len(visual)), [format_snr(v) for v in visual], rotation=90)
    ax.set_yticks(range(len(audio)), [format_snr(a) for a in audio])
    ax.tick_params(labelsize=fontsize)
    ax.set_xlabel("test visual SNR", fontsize=fontsize + 1)
    ax.set_ylabel("test audio SNR", fontsize=fontsize + 1)
    if fontsize >= 4:
        for (i, j), x in np.ndenumerate(m):
            if math.isnan(x):
                continue
            r, g, b, _ = im.cmap(im.norm(x))
            dark = 0.299 * r + 0.587 * g + 0.114 * b < 0.5  # luminance: white text on dark
            strong = bold is None or bold[i, j]
            text = fmt.format(x).replace("-0", "0").replace("+0", "0") if round(x) == 0 \
                else fmt.format(x)  # "-0" / "+0" read as a sign that is not there
            ax.text(j, i, text, ha="center", va="center", fontsize=fontsize - 1,
                    color="white" if dark else "black", alpha=1.0 if strong else 0.55,
                    fontweight="bold" if (bold is not None and strong) else "normal")
    return im


def _box(ax, audio, visual, train_audio_snr, train_visual_snr) -> Rectangle | None:
    """Red box around the training cell (paper Figures 1, 2, 7-10)."""
    if train_audio_snr not in audio or train_visual_snr not in visual:
        return None
    x, y = visual.index(train_visual_snr) - 0.5, audio.index(train_audio_snr) - 0.5
    return ax.add_patch(Rectangle((x, y), 1, 1, **BOX))


def _accuracy_maps(rows, fusion, modality, tas, tvs) -> dict:
    """(audio, visual) -> mean accuracy over seeds, in percent."""
    return {(r["test_audio_snr"], r["test_visual_snr"]): 100 * r["accuracy"]
            for r in stats.aggregate_seeds(rows)
            if (r["fusion"], r["modality"], r["train_audio_snr"], r["train_visual_snr"])
            == (fusion, modality, tas, tvs)}


def _axes_snrs(maps) -> tuple[list[float], list[float]]:
    cells = {c for m in maps for c in m}
    return sorted({a for a, _ in cells}), sorted({v for _, v in cells})


def _accuracy_norm(maps) -> Normalize:
    vals = [x for m in maps for x in m.values()]
    return Normalize(vmin=min(vals), vmax=max(max(vals), min(vals) + 1))


# ---- paper Figure 1 and A.4 Figures 7-10 ---------------------------------------------------

def fusion_figure(rows, train_audio_snr, train_visual_snr, out_stem: Path,
                  fusions=FUSIONS, modality: str = "both") -> Figure:
    """Row 1: accuracy per fusion level; row 2: (late - initial) with significant cells bold."""
    tas, tvs = parse_snr(train_audio_snr), parse_snr(train_visual_snr)
    rows = [stats.parse_row(r) for r in rows]
    maps = {f: _accuracy_maps(rows, f, modality, tas, tvs) for f in fusions}
    maps = {f: m for f, m in maps.items() if m}
    if not maps:
        raise ValueError(f"no {modality} results trained at audio {format_snr(tas)}, "
                         f"visual {format_snr(tvs)}")
    late = [f for f in maps if f != "initial"] if "initial" in maps else []
    audio, visual = _axes_snrs(maps.values())
    fs = 7 if max(len(audio), len(visual)) <= 12 else 0
    fig = Figure(figsize=(4.2 * len(maps), 4.2 * (2 if late else 1) + 0.6), layout="constrained")
    grid = fig.subplots(2 if late else 1, len(maps), squeeze=False)
    norm = _accuracy_norm(maps.values())
    for ax, (f, m) in zip(grid[0], maps.items()):
        im = _heatmap(ax, _matrix(m, audio, visual), audio, visual, "viridis", norm, fontsize=fs)
        _box(ax, audio, visual, tas, tvs)
        ax.set_title(f"{_title(f)}: accuracy (%)", fontsize=10)
    fig.colorbar(im, ax=list(grid[0]), label="test accuracy (%)", shrink=0.9)
    if late:
        _difference_row(fig, grid[1], rows, late, modality, tas, tvs, audio, visual, fs)
    fig.suptitle(f"Fusion comparison ({modality}): trained at audio SNR {format_snr(tas)}, "
                 f"visual SNR {format_snr(tvs)} (red box); mean over seeds")
    save(fig, out_stem)
    return fig


def _difference_row(fig, axes, rows, late, modality, tas, tvs, audio, visual, fs):
    """(late - initial) in points on a diverging scale centred at 0 (paper Figure 1 row 2)."""
    diffs = {f: stats.paired_differences(rows, f, "initial", tas, tvs, modality) for f in late}
    mats = {f: _matrix({c: 100 * e.mean for c, e in d.items()}, audio, visual)
            for f, d in diffs.items()}
    sig = {f: _matrix({c: float(e.excludes_zero()) for c, e in d.items()}, audio, visual) == 1
           for f, d in diffs.items()}
    lim = max([1.0] + [float(np.nanmax(np.abs(m))) for m in mats.values() if np.isfinite(m).any()])
    norm = TwoSlopeNorm(vcenter=0.0, vmin=-lim, vmax=lim)
    for ax, f in zip(axes, late):
        im = _heatmap(ax, mats[f], audio, visual, "BrBG", norm, fmt="{:+.0f}", bold=sig[f],
                      fontsize=fs)
        if not fs:  # no room for numbers: dots mark the significant cells
            ys, xs = np.nonzero(sig[f])
            ax.plot(xs, ys, "k.", markersize=3)
        _box(ax, audio, visual, tas, tvs)
        ax.set_title(f"{_title(f)} - initial (points)", fontsize=10)
    for ax in axes[len(late):]:
        ax.axis("off")
    if len(axes) > len(late):  # the spare panel under "initial" holds the key
        axes[len(late)].text(0.5, 0.5, "bold: paired 95% interval\nexcludes 0\n\n"
                             "brown: late fusion worse\ngreen: late fusion better",
                             ha="center", va="center", transform=axes[len(late)].transAxes)
    fig.colorbar(im, ax=list(axes), label="accuracy difference (points)", shrink=0.9)


# ---- paper Figure 2 ------------------------------------------------------------------------

def robustness_figure(rows, out_stem: Path, fusion: str = "initial",
                      modality: str = "both") -> Figure:
    """One test heatmap per training (audio, visual) SNR present: rows = training audio SNR
    (highest on top), columns = training visual SNR; shared colour scale; red training box."""
    rows = [stats.parse_row(r) for r in rows]
    trained = sorted({(r["train_audio_snr"], r["train_visual_snr"]) for r in rows
                      if r["fusion"] == fusion and r["modality"] == modality})
    if not trained:
        raise ValueError(f"no {fusion}/{modality} results")
    t_audio = sorted({a for a, _ in trained}, reverse=True)
    t_visual = sorted({v for _, v in trained})
    maps = {t: _accuracy_maps(rows, fusion, modality, *t) for t in trained}
    audio, visual = _axes_snrs(maps.values())
    norm = _accuracy_norm(maps.values())
    fs = 6 if max(len(audio), len(visual)) <= 10 and len(t_visual) <= 4 else 0
    fig = Figure(figsize=(3.3 * len(t_visual) + 1.2, 3.3 * len(t_audio) + 0.5),
                 layout="constrained")
    axes = fig.subplots(len(t_audio), len(t_visual), squeeze=False)
    im = None
    for i, ta in enumerate(t_audio):
        for j, tv in enumerate(t_visual):
            ax = axes[i, j]
            if (ta, tv) not in maps:
                ax.axis("off")
                continue
            im = _heatmap(ax, _matrix(maps[(ta, tv)], audio, visual), audio, visual,
                          "viridis", norm, fontsize=fs)
            ax.tick_params(labelsize=6)
            if i < len(t_audio) - 1:  # axis names once per column / row: less clutter
                ax.set_xlabel("")
            if j > 0:
                ax.set_ylabel("")
            _box(ax, audio, visual, ta, tv)
            ax.set_title(f"trained: audio {format_snr(ta)}, visual {format_snr(tv)}", fontsize=8)
    fig.colorbar(im, ax=axes.ravel().tolist(), label="test accuracy (%)", shrink=0.6)
    fig.suptitle(f"Robustness: {_title(fusion)} ({modality}) models, test accuracy (%) "
                 "by training SNRs (red box: training cell)")
    save(fig, out_stem)
    return fig


# ---- paper Figures 3 and 4 -----------------------------------------------------------------

def unimodal_figure(rows, modality: str, out_stem: Path) -> Figure:
    """Accuracy vs test SNR of `modality`, one line per training SNR, 95% interval bands."""
    if modality not in ("audio", "visual"):
        raise ValueError(f"modality must be 'audio' or 'visual', got {modality!r}")
    own, other = f"test_{modality}_snr", "test_visual_snr" if modality == "audio" else "test_audio_snr"
    agg = [r for r in stats.aggregate_seeds(rows) if r["modality"] == modality
           and math.isinf(r[other])]
    if not agg:
        raise ValueError(f"no {modality}-only results")
    xs = sorted({r[own] for r in agg})
    groups = sorted({(r["fusion"], r[f"train_{modality}_snr"]) for r in agg},
                    key=lambda g: (g[0], -g[1]))
    fig = Figure(figsize=(7.5, 4.5), layout="constrained")
    ax = fig.subplots()
    several = len({f for f, _ in groups}) > 1
    for k, (fusion, train) in enumerate(groups):
        pts = sorted((xs.index(r[own]), r) for r in agg
                     if (r["fusion"], r[f"train_{modality}_snr"]) == (fusion, train))
        x = [i for i, _ in pts]
        label = f"trained at {format_snr(train)}" + (f" ({_title(fusion)})" if several else "")
        line, = ax.plot(x, [100 * r["accuracy"] for _, r in pts], "o-", label=label,
                        color=f"C{k % 10}", markersize=4)
        ax.fill_between(x, [100 * r["ci_low"] for _, r in pts],
                        [100 * r["ci_high"] for _, r in pts], color=line.get_color(), alpha=0.2)
        if train in xs:  # the training SNR, ringed (cf. the red boxes of the heatmaps)
            y = next(100 * r["accuracy"] for _, r in pts if r[own] == train)
            ax.plot(xs.index(train), y, "o", mfc="none", mec=line.get_color(), markersize=11)
    ax.axhline(10, color="grey", linestyle=":", linewidth=1, label="chance (10%)")
    ax.set_xticks(range(len(xs)), [format_snr(x) for x in xs])
    ax.set_ylim(0, 101)
    ax.set_xlabel(f"test {modality} SNR (P_signal / P_noise; orig = no noise)")
    ax.set_ylabel("test accuracy (%)")
    ax.grid(alpha=0.3)
    ax.legend(fontsize=8, loc="lower right")
    ax.set_title(f"{modality.capitalize()}-only model: accuracy vs test {modality} SNR "
                 "(bands: 95% interval; ring: training SNR)", fontsize=10)
    save(fig, out_stem)
    return fig


# ---- paper A.5, Figures 11-16 --------------------------------------------------------------

def inspection_figure(record: dict, out_stem: Path) -> Figure:
    """Class activations over time, one panel per SNR scenario (schema: docs/results.md)."""
    label, scenarios = int(record["label"]), record["scenarios"]
    if not scenarios:
        raise ValueError("inspection record has no scenarios")
    ncols = 2 if len(scenarios) == 4 else min(len(scenarios), 3)
    nrows = math.ceil(len(scenarios) / ncols)
    fig = Figure(figsize=(5.2 * ncols + 1.3, 3.4 * nrows + 0.6), layout="constrained")
    axes = fig.subplots(nrows, ncols, squeeze=False, sharey=True)
    preds = record.get("prediction_by_scenario") or [None] * len(scenarios)
    for ax, sc, pred in zip(axes.ravel(), scenarios, preds):
        _activation_panel(ax, sc, label, pred)
    for ax in axes.ravel()[len(scenarios):]:
        ax.axis("off")
    handles, labels = axes[0, 0].get_legend_handles_labels()
    fig.legend(handles, labels, loc="outside right center", fontsize=8, title="class")
    what = record.get("activation", "logit")
    trained = (f", trained at audio {format_snr(parse_snr(record['train_audio_snr']))} / visual "
               f"{format_snr(parse_snr(record['train_visual_snr']))}"
               if "train_audio_snr" in record and "train_visual_snr" in record else "")
    fig.suptitle(f"Class {what}s over time ({_title(str(record.get('fusion', 'initial')))}, "
                 f"{record.get('modality', 'both')}{trained}); true class {label} thick; "
                 "grey: image only (audio padding)")
    save(fig, out_stem)
    return fig


def _activation_panel(ax, scenario: dict, label: int, pred: int | None = None) -> None:
    act = np.asarray(scenario["activations"], dtype=float)
    if act.ndim != 2:
        raise ValueError(f"activations must be T x classes, got shape {act.shape}")
    t = np.arange(act.shape[0])
    start = scenario.get("audio_start")
    if start is not None:  # front zero-padding: before this frame the network sees the image only
        ax.axvspan(-0.5, start - 0.5, color="0.92", zorder=0)
        ax.axvline(start - 0.5, color="black", linestyle="--", linewidth=1)
        ax.text(start - 0.5, 1.0, " audio starts", transform=ax.get_xaxis_transform(),
                va="top", fontsize=7)
    for k in range(act.shape[1]):
        true = k == label
        ax.plot(t, act[:, k], color=f"C{k % 10}", linewidth=2.8 if true else 1.0,
                alpha=1.0 if true else 0.6, zorder=3 if true else 2,
                label=f"{k} (true)" if true else str(k))
    if pred is None:  # the model's output is the dense head at the last step
        pred = scenario.get("prediction", int(np.argmax(act[-1])))
    ax.set_title(f"audio SNR {format_snr(parse_snr(scenario['audio_snr']))}, visual SNR "
                 f"{format_snr(parse_snr(scenario['visual_snr']))}; predicted {pred}", fontsize=9)
    ax.set_xlabel("time step (spectrogram frame)")
    ax.set_ylabel("class activation (dense head output)")
    ax.set_xlim(-0.5, act.shape[0] - 0.5)
    ax.grid(alpha=0.3)
