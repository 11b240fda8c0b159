"""The report's verdicts follow the numbers: they flip when the synthetic data flip."""

from __future__ import annotations

import math

import numpy as np

from earlyfusion import report, stats
from test_stats import make_rows, make_unimodal_rows, surface

TRAIN = (0.5, 0.25)


def _dist(a, v):
    """Distance of a test cell from the training cell, in octaves of SNR."""
    la, lv = math.log2(min(a, 32.0)), math.log2(min(v, 32.0))
    return abs(la - math.log2(TRAIN[0])) + abs(lv - math.log2(TRAIN[1]))


def _verdicts(text: str, heading: str) -> list[str]:
    """The verdict column of every table row in the section that starts with `heading`."""
    section = text.split(heading, 1)[1].split("\n## ", 1)[0]
    last = [ln.rsplit("|", 2)[1].strip() for ln in section.splitlines() if ln.startswith("| audio")]
    return [c.strip("*") for c in last if c.startswith("**")]


def _write(tmp_path, rows, **kw):
    return report.write_report(rows, tmp_path / "report.md", **kw).read_text()


def test_claims_a_and_b_hold_when_initial_dominates(tmp_path):
    text = _write(tmp_path, make_rows({"initial": 1.0, "second": 0.2, "fc": 0.0}, n=400))
    assert _verdicts(text, "## (a)") == ["holds"]
    assert _verdicts(text, "## (b)") == ["holds"]


def test_claims_a_and_b_fail_when_data_flip(tmp_path):
    text = _write(tmp_path, make_rows({"initial": 0.0, "second": 0.6, "fc": 1.0}, n=400))
    assert _verdicts(text, "## (a)") == ["does not hold"]
    assert _verdicts(text, "## (b)") == ["does not hold"]


def test_claim_a_counts_match_stats(tmp_path):
    rows = make_rows({"initial": 1.0, "fc": 0.0}, n=400)
    ev = report.compare([stats.parse_row(r) for r in rows], "fc", *TRAIN)
    diffs = stats.paired_differences(rows, "initial", "fc", *TRAIN)
    assert ev["cells"] == 100 and ev["ge"] == sum(e.mean >= 0 for e in diffs.values())
    text = _write(tmp_path, rows)
    assert f"| {ev['ge']} / 100 | {ev['worse']} |" in text


def test_claim_c_follows_effective_robustness(tmp_path):
    # graceful: equal at the training cell, FC/second lose accuracy away from it
    graceful = make_rows({"initial": lambda a, v: surface(a, v, 1.0),
                          "second": lambda a, v: surface(a, v, 1.0) - 0.1 * min(1, _dist(a, v) / 3),
                          "fc": lambda a, v: surface(a, v, 1.0) - 0.15 * min(1, _dist(a, v) / 3)},
                         n=400)
    assert _verdicts(_write(tmp_path, graceful), "## (c)") == ["holds"]
    # brittle: initial is ahead only at the training cell
    brittle = make_rows({"initial": lambda a, v: surface(a, v, 1.0),
                         "fc": lambda a, v: surface(a, v, 1.0) - (0.25 if _dist(a, v) == 0 else 0)},
                        n=400)
    assert _verdicts(_write(tmp_path, brittle), "## (c)") == ["does not hold"]


def test_verdict_rules_inconclusive_band():
    est = lambda m, lo, hi: stats.Estimate(m, lo, hi, seeds=1, method="normal")
    ev = {"cells": 100, "worse": 0, "mean": est(-0.005, -0.02, 0.01)}
    assert report.verdict_dominance(ev, -report.MARGIN) == report.UNSURE
    assert report.verdict_dominance({**ev, "worse": 11}, -report.MARGIN) == report.FAILS
    assert report.verdict_dominance({**ev, "mean": est(0.0, -0.005, 0.005)}, -0.01) == report.HOLDS
    assert report.verdict_dominance(None, 0.0) == report.UNSURE
    assert report.verdict_graceful([est(0.05, 0.01, 0.09), est(0.0, -0.02, 0.02)]) == report.UNSURE
    assert report.verdict_graceful([est(-0.05, -0.09, -0.01)]) == report.FAILS


def test_report_sections_provenance_and_figures(tmp_path):
    rows = make_rows({"initial": 1.0, "second": 0.6, "fc": 0.0}, n=100)
    rows += make_unimodal_rows("audio") + make_unimodal_rows("visual")
    (tmp_path / "figures").mkdir()
    (tmp_path / "figures" / "fusion_a0.5_v0.25.png").write_bytes(b"\x89PNG")
    act = np.zeros((92, 10))
    act[:60, 6], act[60:, 3] = 1.0, 2.0
    rec = {"label": 3, "fusion": "initial", "scenarios": [
        {"audio_snr": "1", "visual_snr": "0.25", "audio_start": 60, "activations": act.tolist()}]}
    meta = {"profile": "quick", "command": "earlyfusion reproduce", "seeds": 1,
            "code_version": "abc123"}
    text = _write(tmp_path, rows, inspection=[rec], meta=meta)
    assert "| profile | `quick` |" in text and "`abc123`" in text
    assert "](figures/fusion_a0.5_v0.25.png)" in text
    assert "## Unimodal models" in text and "| audio | initial | orig | 9" in text
    assert "| 0 | 3 | 1 | 0.25 | 6 | 3 |" in text  # class 6 before the audio, 3 at the end
    assert "single seed" in text


def test_report_without_late_fusion_is_explicit(tmp_path):
    text = _write(tmp_path, make_rows({"initial": 1.0}, n=50))
    assert "No setting has both initial and FC" in text
    assert "holds" not in text.split("## (a)")[1].split("## (b)")[0]
