"""The paper's experiments, declared as data (configs/*.yaml), and `earlyfusion reproduce`.

A profile names a base config and the experiments: fusion comparison (paper 5.1, A.4),
robustness (5.2), unimodal (5.3) and inspection (A.5). They expand into runs; a run that
several experiments share (initial fusion at 0.5 / 0.25 is in all of them) trains once.
Finished runs and evaluations are reused, so an interrupted `reproduce` resumes.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import yaml

from earlyfusion.checkpoint import code_version, run_digest
from earlyfusion.config import Config, apply_overrides, build_config
from earlyfusion.snr import ORIG, format_snr

EXPERIMENTS = ("fusion", "robustness", "unimodal", "inspection")
# The keys each experiment takes; `seeds` (optional) overrides the profile's seeds for it.
EXPERIMENT_KEYS = {
    "fusion": {"fusions", "train_snrs", "seeds"},
    "robustness": {"train_audio_snrs", "train_visual_snrs", "seeds"},
    "unimodal": {"visual", "audio", "seeds"},
    "inspection": {"train_snr", "examples", "scenarios"},
}
PROFILE_DIR = Path(__file__).resolve().parent / "configs"


@dataclass
class Run:
    cfg: Config
    experiments: set[str] = field(default_factory=set)

    @property
    def name(self) -> str:
        m, t = self.cfg.model, self.cfg.train
        return (f"{m.fusion}-{m.modality}-a{format_snr(t.audio_snr)}-v{format_snr(t.visual_snr)}"
                f"-s{t.seed}-{run_digest(self.cfg)}")


@dataclass
class Profile:
    name: str
    seeds: int
    base: dict[str, Any]
    experiments: dict[str, dict[str, Any]]
    description: str = ""


def load_profile(name_or_path: str) -> Profile:
    """A built-in profile by name (quick, paper, tiny) or a profile YAML file."""
    path = Path(name_or_path)
    if not path.suffix:
        path = PROFILE_DIR / f"{name_or_path}.yaml"
    if not path.is_file():
        known = sorted(p.stem for p in PROFILE_DIR.glob("*.yaml"))
        raise FileNotFoundError(f"profile {name_or_path!r} not found; built-in profiles: {known}")
    raw = yaml.safe_load(path.read_text()) or {}
    unknown = set(raw) - {"name", "description", "seeds", "base", "experiments"}
    bad = set(raw.get("experiments", {})) - set(EXPERIMENTS)
    bad |= {f"{name}.{key}" for name, spec in (raw.get("experiments") or {}).items() if name in EXPERIMENT_KEYS
            for key in set(spec or {}) - EXPERIMENT_KEYS[name]}
    if unknown or bad:
        raise ValueError(f"{path}: unknown keys {sorted(unknown | bad)}")
    build_config(raw.get("base"))  # validate the base now, not after an hour of training
    return Profile(raw.get("name", path.stem), int(raw.get("seeds", 1)), raw.get("base") or {},
                   raw.get("experiments") or {}, raw.get("description", ""))


def _run_config(profile: Profile, overrides: list[str], *, fusion: str, modality: str,
                audio: Any, visual: Any, seed: int) -> Config:
    base = apply_overrides(profile.base, overrides)
    base.setdefault("model", {}).update(fusion=str(fusion), modality=modality)
    base.setdefault("train", {}).update(audio_snr=audio, visual_snr=visual, seed=seed)
    return build_config(base)


def _settings(profile: Profile, only: set[str]) -> list[tuple[str, str, str, Any, Any]]:
    """(experiment, fusion, modality, train audio SNR, train visual SNR) for every run."""
    ex, out = profile.experiments, []
    if "fusion" in ex and "fusion" in only:
        out += [("fusion", f, "both", a, v) for a, v in ex["fusion"]["train_snrs"] for f in ex["fusion"]["fusions"]]
    if "robustness" in ex and "robustness" in only:
        r = ex["robustness"]
        out += [("robustness", "initial", "both", a, v) for a in r["train_audio_snrs"] for v in r["train_visual_snrs"]]
    if "unimodal" in ex and "unimodal" in only:
        # The silenced modality's SNR is irrelevant (its input is zero): recorded as orig.
        out += [("unimodal", "initial", "visual", "orig", v) for v in ex["unimodal"].get("visual", [])]
        out += [("unimodal", "initial", "audio", a, "orig") for a in ex["unimodal"].get("audio", [])]
    if "inspection" in ex and "inspection" in only:
        a, v = ex["inspection"]["train_snr"]
        out.append(("inspection", "initial", "both", a, v))
    return out


def plan_runs(profile: Profile, *, only: list[str] | None = None, seeds: int | None = None,
              overrides: list[str] | tuple[str, ...] = ()) -> list[Run]:
    """Every run the profile needs, once each, in a stable order."""
    chosen = set(only or EXPERIMENTS)
    if chosen - set(EXPERIMENTS):
        raise ValueError(f"--only takes {EXPERIMENTS}, got {sorted(chosen - set(EXPERIMENTS))}")
    runs: dict[str, Run] = {}
    for exp, fusion, modality, a, v in _settings(profile, chosen):
        # The inspection reads the seed-0 model; --seeds overrides every experiment's seeds.
        n = 1 if exp == "inspection" else seeds or profile.experiments[exp].get("seeds", profile.seeds)
        for seed in range(n):
            cfg = _run_config(profile, list(overrides), fusion=fusion, modality=modality, audio=a, visual=v, seed=seed)
            run = runs.setdefault(Run(cfg).name, Run(cfg))
            run.experiments.add(exp)
    for run in runs.values():
        _fit_eval_grid(run)
    return list(runs.values())


def _fit_eval_grid(run: Run) -> None:
    """Unimodal models are tested along their own modality only (paper Figures 3, 4)."""
    m, e = run.cfg.model.modality, run.cfg.eval
    if m == "visual":
        e.audio_snrs = [ORIG]
    elif m == "audio":
        e.visual_snrs = [ORIG]


def write_meta(out: Path, profile: Profile, runs: list[Run], command: str) -> dict[str, Any]:
    meta = {"profile": profile.name, "description": profile.description,
            "seeds": sorted({r.cfg.train.seed for r in runs}), "runs": len(runs), "code_version": code_version(),
            "date": datetime.now(timezone.utc).strftime("%Y-%m-%d %H:%M UTC"), "command": command}
    (out / "meta.json").write_text(json.dumps(meta, indent=2))
    return meta


def _command(profile: str, only, seeds, overrides, jobs) -> str:
    """The reproduce call as a command line, for the report's provenance."""
    parts = ["earlyfusion reproduce", f"--profile {profile}"]
    parts += [f"--only {name}" for name in only or []]
    parts += [f"--seeds {seeds}"] if seeds else []
    parts += [f"--set {o}" for o in overrides]
    parts += [f"--jobs {jobs}"] if jobs > 1 else []
    return " ".join(parts)


def reproduce(*, profile: str = "quick", out: Path = Path("results"), only: list[str] | None = None,
              seeds: int | None = None, data_root: str | None = None,
              overrides: list[str] | tuple[str, ...] = (), progress: bool = True, jobs: int = 1,
              threads: int | None = None) -> Path:
    """Run what is missing, render every figure, write the report; returns the report path."""
    from earlyfusion.pipeline import execute  # heavy imports (torch) only when running

    prof = load_profile(profile)
    extra = list(overrides) + ([f"data.root={data_root}"] if data_root else [])
    runs = plan_runs(prof, only=only, seeds=seeds, overrides=extra)
    out = Path(out) / prof.name
    out.mkdir(parents=True, exist_ok=True)
    meta = write_meta(out, prof, runs, _command(profile, only, seeds, overrides, jobs))
    return execute(prof, runs, out, meta, progress=progress, jobs=jobs, threads=threads)

