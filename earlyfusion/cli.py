"""Command line: parses arguments, builds a config, calls the library. Nothing else."""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from earlyfusion.config import load_config


def _config_args(p: argparse.ArgumentParser) -> None:
    p.add_argument("--config", help="YAML config file (sections data, model, train, eval)")
    p.add_argument("--set", dest="overrides", action="append", default=[], metavar="KEY=VALUE",
                   help="override one config value, e.g. --set train.pairs=3000 (repeatable)")
    p.add_argument("--data-root", help="data folder (default: $EARLYFUSION_DATA, else the download cache)")
    _threads_arg(p)


def _threads_arg(p: argparse.ArgumentParser) -> None:
    p.add_argument("--threads", type=int, default=None,
                   help="torch intra-op threads (default: one per core; 1 is faster on a busy machine)")


def _config(args: argparse.Namespace):
    from earlyfusion.runtime import set_threads

    set_threads(getattr(args, "threads", None))
    overrides = list(args.overrides)
    if args.data_root:
        overrides.append(f"data.root={args.data_root}")
    return load_config(args.config, overrides)


def _cmd_data_info(args):
    from earlyfusion.data.dataset import describe, format_description

    info = describe(_config(args).data)
    print(json.dumps(info, indent=2) if args.json else format_description(info))


def _cmd_data_show(args):
    from earlyfusion.data.show import render_noise_examples

    path = render_noise_examples(_config(args).data, Path(args.out), index=args.index, seed=args.seed)
    print(f"wrote {path}")


def _cmd_train(args):
    from earlyfusion.train import train

    result = train(_config(args), Path(args.run_dir), resume=not args.restart)
    print(json.dumps(result, indent=2))


def _cmd_evaluate(args):
    from earlyfusion.evaluate import evaluate_checkpoint

    cfg = _config(args)
    out = evaluate_checkpoint(Path(args.checkpoint), cfg.eval, Path(args.out), data_root=cfg.data.root)
    print(f"wrote {out}")


def _cmd_reproduce(args):
    from earlyfusion.experiments import reproduce

    report = reproduce(profile=args.profile, out=Path(args.out), only=args.only, seeds=args.seeds,
                       data_root=args.data_root, overrides=args.overrides, jobs=args.jobs,
                       threads=args.threads)
    print(f"report: {report}")


def _cmd_bench(args):
    from earlyfusion.bench import run_bench
    from earlyfusion.bench_table import format_table

    result = run_bench(quick=args.quick, hidden=args.hidden, batch_size=args.batch_size, steps=args.steps,
                       device=args.device, threads=args.threads, data=args.data, memory_format=args.memory_format,
                       graphs=args.graphs)
    print(json.dumps(result, indent=2) if args.json else format_table(result))


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="earlyfusion", description=__doc__)
    sub = parser.add_subparsers(dest="command", required=True)

    data = sub.add_parser("data", help="inspect the datasets").add_subparsers(dest="data_command", required=True)
    info = data.add_parser("info", help="datasets found, split sizes, pair counts, feature shape")
    _config_args(info)
    info.add_argument("--json", action="store_true", help="print one JSON object")
    info.set_defaults(func=_cmd_data_info)
    show = data.add_parser("show", help="render one example at several SNRs (paper Figure 6)")
    _config_args(show)
    show.add_argument("--out", default="figure6.png", help="output PNG path")
    show.add_argument("--index", type=int, default=0, help="which test pair to show")
    show.add_argument("--seed", type=int, default=0, help="noise seed")
    show.set_defaults(func=_cmd_data_show)

    train = sub.add_parser("train", help="train one model; resumes from its run folder")
    _config_args(train)
    train.add_argument("--run-dir", required=True, help="folder for checkpoint, config and metrics")
    train.add_argument("--restart", action="store_true", help="ignore an existing checkpoint")
    train.set_defaults(func=_cmd_train)

    ev = sub.add_parser("evaluate", help="accuracy of a checkpoint over the test SNR grid")
    _config_args(ev)
    ev.add_argument("checkpoint", help="checkpoint file written by `earlyfusion train`")
    ev.add_argument("--out", required=True, help="CSV file, one row per (audio SNR, visual SNR) cell")
    ev.set_defaults(func=_cmd_evaluate)

    rep = sub.add_parser("reproduce", help="run the paper's experiments, figures and report")
    rep.add_argument("--profile", default="quick", help="quick | paper | tiny, or a profile YAML file")
    rep.add_argument("--only", action="append", default=None,
                     help="run only these experiments (fusion, robustness, unimodal, inspection)")
    rep.add_argument("--out", default="results", help="output folder (runs, figures, report)")
    rep.add_argument("--seeds", type=int, default=None, help="seeds per setting (default: the profile's)")
    rep.add_argument("--data-root", help="data folder (default: $EARLYFUSION_DATA, else the download cache)")
    rep.add_argument("--set", dest="overrides", action="append", default=[], metavar="KEY=VALUE",
                     help="override a value of every run's config, e.g. --set train.precision=fp32")
    rep.add_argument("--jobs", type=int, default=1,
                     help="runs trained side by side in worker processes (each with cores/jobs threads)")
    _threads_arg(rep)
    rep.set_defaults(func=_cmd_reproduce)

    bench = sub.add_parser("bench", help="throughput of models, reference and data path")
    bench.add_argument("--json", action="store_true", help="print one JSON object")
    bench.add_argument("--quick", action="store_true", help="one round, 8 frames, batch 4 (a smoke run)")
    bench.add_argument("--hidden", type=int, default=64, help="C-LSTM units (paper: 64)")
    bench.add_argument("--batch-size", type=int, default=None,
                       help="training batch (inference: twice it); default 8, quick 4")
    bench.add_argument("--steps", type=int, default=None, help="spectrogram frames T (default 92, quick 8)")
    bench.add_argument("--threads", type=int, default=1,
                       help="torch intra-op threads (default 1: on a shared 2-core machine 2 were far slower)")
    bench.add_argument("--data", default=None,
                       help="data root for the data path, or 'synthetic' (default: $EARLYFUSION_DATA, ../shared/data)")
    bench.add_argument("--memory-format", default="auto", choices=["auto", "nchw", "channels_last"],
                       help="activation layout of the models (auto: NCHW on CPU, channels-last on CUDA)")
    bench.add_argument("--device", default="auto")
    bench.add_argument("--graphs", action=argparse.BooleanOptionalAction, default=None,
                       help="training steps as CUDA graphs, with eager steps timed beside them (default: on CUDA)")
    bench.set_defaults(func=_cmd_bench)
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        args.func(args)
    except (ValueError, OSError) as exc:
        # Bad input stops with the library's message, not a traceback.
        print(f"earlyfusion: error: {exc}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())
