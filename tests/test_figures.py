"""Every figure function writes a readable PNG and PDF and boxes the training cell in red."""

from __future__ import annotations

import math

import matplotlib.image as mpimg
import numpy as np
import pytest
from matplotlib.patches import Rectangle

from earlyfusion import figures
from test_stats import make_rows, make_unimodal_rows


def _check_files(stem, min_kb=20):
    png, pdf = stem.with_name(stem.name + ".png"), stem.with_name(stem.name + ".pdf")
    assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert png.stat().st_size > min_kb * 1024
    assert pdf.read_bytes()[:5] == b"%PDF-" and pdf.stat().st_size > 5 * 1024
    img = mpimg.imread(png)
    assert img.ndim == 3 and img.shape[0] > 400 and img.shape[1] > 400
    assert img[..., :3].std() > 0.05  # not a blank canvas


def _red_boxes(ax):
    return [p for p in ax.patches if isinstance(p, Rectangle) and p.get_edgecolor()[:3] == (1, 0, 0)]


def _tick_labels(ax, axis):
    ticks = ax.get_xticklabels() if axis == "x" else ax.get_yticklabels()
    return [t.get_text() for t in ticks]


def test_fusion_figure(tmp_path):
    rows = make_rows({"initial": 1.0, "second": 0.5, "fc": 0.0}, seeds=(0, 1), n=100)
    fig = figures.fusion_figure(rows, 0.5, 0.25, tmp_path / "fusion")
    _check_files(tmp_path / "fusion")
    heat = [ax for ax in fig.axes if ax.images]
    assert len(heat) == 5  # 3 accuracy maps + 2 difference maps
    for ax in heat:
        (box,) = _red_boxes(ax)
        # training cell: visual 0.25 is column 2, audio 0.5 is row 3 of the sorted SNRs
        assert box.get_xy() == (1.5, 2.5)
        assert _tick_labels(ax, "x")[-1] == "orig" and _tick_labels(ax, "y")[-1] == "orig"
    diff = heat[3].images[0]
    assert diff.norm.vcenter == 0 and diff.norm.vmin == -diff.norm.vmax


def test_fusion_figure_needs_matching_rows(tmp_path):
    with pytest.raises(ValueError):
        figures.fusion_figure(make_rows({"fc": 0.0}, n=20), 2.0, 2.0, tmp_path / "x")


def test_robustness_figure_any_grid(tmp_path):
    rows = []
    for i, ta in enumerate([2.0, 1.0]):
        for j, tv in enumerate([0.5, 0.25, 0.125]):
            rows += make_rows({"initial": 0.3 * i - 0.2 * j}, train=(ta, tv), seed=3 * i + j, n=50)
    fig = figures.robustness_figure(rows, tmp_path / "rob")
    _check_files(tmp_path / "rob")
    heat = [ax for ax in fig.axes if ax.images]
    assert len(heat) == 6
    norms = {(ax.images[0].norm.vmin, ax.images[0].norm.vmax) for ax in heat}
    assert len(norms) == 1  # one shared colour scale
    assert all(len(_red_boxes(ax)) == 1 for ax in heat)
    # top-left panel: highest training audio SNR (2, row 5) and lowest visual (0.125, column 1)
    assert _red_boxes(heat[0])[0].get_xy() == (0.5, 4.5)


@pytest.mark.parametrize("modality", ["audio", "visual"])
def test_unimodal_figure(tmp_path, modality):
    fig = figures.unimodal_figure(make_unimodal_rows(modality), modality, tmp_path / "uni")
    _check_files(tmp_path / "uni")
    ax = fig.axes[0]
    assert _tick_labels(ax, "x")[-1] == "orig"
    assert len(ax.collections) >= 4  # an interval band per training SNR
    assert any("orig" in t.get_text() for t in ax.get_legend().get_texts())


def test_inspection_figure(tmp_path):
    rng = np.random.default_rng(0)
    scen = [{"audio_snr": a, "visual_snr": v, "audio_start": 50,
             "activations": rng.normal(size=(92, 10)).tolist()}
            for a, v in [("orig", "orig"), (1.0, 0.25), ("0.5", "0.5"), (0.25, 1)]]
    record = {"fusion": "initial", "modality": "both", "label": 3, "scenarios": scen}
    fig = figures.inspection_figure(record, tmp_path / "insp")
    _check_files(tmp_path / "insp")
    panels = [ax for ax in fig.axes if ax.lines]
    assert len(panels) == 4
    for ax in panels:
        widths = {ln.get_label(): ln.get_linewidth() for ln in ax.lines}
        assert widths["3 (true)"] > max(w for k, w in widths.items() if k in {"0", "5", "9"})
        assert any(ln.get_xdata()[0] == 49.5 for ln in ax.lines if ln.get_linestyle() == "--")
    assert "audio SNR orig" in panels[0].get_title()
    assert math.isclose(float(panels[1].get_title().split("audio SNR ")[1].split(",")[0]), 1.0)
