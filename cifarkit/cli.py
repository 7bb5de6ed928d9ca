"""The ``cifarkit`` command: a thin layer that parses, calls the package and prints.

Errors a user can fix (:class:`~cifarkit.errors.CifarkitError`) are printed as one line on
stderr with exit code 2; ``--debug`` shows the traceback. Anything else is a bug and
keeps its traceback.
"""

from __future__ import annotations

import argparse
import logging
import os
import sys
import time
from collections.abc import Callable, Sequence
from typing import Any, NoReturn

from cifarkit.errors import CifarkitError

log = logging.getLogger("cifarkit")


def setup_logging(verbosity: int) -> None:
    """Configure stdlib logging once: -q warnings only, default info, -v debug."""
    level = {-1: logging.WARNING, 0: logging.INFO}.get(verbosity, logging.DEBUG)
    logging.basicConfig(level=level, format="%(asctime)s %(levelname)-7s %(name)s: %(message)s",
                        datefmt="%H:%M:%S", stream=sys.stderr, force=True)
    if level > logging.DEBUG:
        # TensorFlow's C++ and absl chatter would drown the progress lines.
        os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
        os.environ.setdefault("MLFLOW_LOGGING_LEVEL", "WARNING")  # mlflow resets its logger on import
        for noisy in ("absl", "tensorflow", "mlflow", "alembic", "matplotlib", "PIL", "h5py"):
            logging.getLogger(noisy).setLevel(logging.WARNING)


# --------------------------------------------------------------------------- commands


def cmd_config_show(args: argparse.Namespace) -> int:

    cfg = _config(args)
    print(f"# experiment: {cfg.name}   profile: {cfg.profile}")
    print(f"# content hash: {cfg.content_hash()}")
    print(cfg.to_yaml(), end="")
    return 0


def cmd_data_info(args: argparse.Namespace) -> int:
    from cifarkit.data import load_cifar10, make_splits, resolve_source

    data_cfg = _config(args).data
    source = resolve_source(args.source or data_cfg.source)
    started = time.perf_counter()
    data = load_cifar10(source)
    splits = make_splits(data, val_per_class=data_cfg.val_per_class, seed=data_cfg.split_seed,
                         train_per_class=data_cfg.train_per_class, test_limit=data_cfg.test_limit)
    elapsed = time.perf_counter() - started
    counts = splits.counts()
    print(f"source:      {data.source}")
    print(f"format:      {data.source_format}")
    print(f"source hash: {data.source_hash}")
    print(f"cache:       {data.cache_path or '(not cached)'}")
    print(f"split:       seed {data_cfg.split_seed}, {data_cfg.val_per_class} val per class"
          f" (profile {args.profile})")
    width = max(len(n) for n in data.class_names)
    print(f"\n{'class':<{width}}  {'train':>7} {'val':>7} {'test':>7}")
    for i, name in enumerate(data.class_names):
        print(f"{name:<{width}}  {counts['train'][i]:>7,} {counts['val'][i]:>7,} {counts['test'][i]:>7,}")
    print(f"{'total':<{width}}  {counts['train'].sum():>7,} {counts['val'].sum():>7,} {counts['test'].sum():>7,}")
    print(f"\nloaded in {elapsed:.2f} s")
    return 0


def cmd_train(args: argparse.Namespace) -> int:
    from cifarkit.runs import get_or_train

    cfg = _config(args)
    seeds = args.seed if args.seed else list(range(cfg.seeds))
    started = time.perf_counter()
    runs = []
    for i, seed in enumerate(seeds, start=1):
        label = f"[run {i}/{len(seeds)}] " if len(seeds) > 1 else ""
        if i > 1:
            per_run = (time.perf_counter() - started) / (i - 1)
            log.info("%soverall ETA %s", label, _eta(per_run * (len(seeds) - i + 1)))
        runs.append(get_or_train(cfg, seed, wait=not args.no_wait, register=not args.no_register, label=label))
    for run in runs:
        record = run.status_record()
        print(f"{run.path.name}  seed {record.get('seed')}  {record.get('status')}  "
              f"test_accuracy {record.get('test_accuracy', float('nan')):.4f}  {run.path}")
    return 0


def _override(text: str) -> tuple[str, Any]:
    """``train.epochs=5`` → ``("train.epochs", 5)``; the value is parsed as YAML (safe)."""
    import yaml

    key, sep, value = text.partition("=")
    if not sep or not key.strip():
        raise argparse.ArgumentTypeError(f"{text!r} is not KEY=VALUE, e.g. train.epochs=5")
    try:
        return key.strip(), yaml.safe_load(value)
    except yaml.YAMLError:
        raise argparse.ArgumentTypeError(f"{text!r}: the value is not valid YAML") from None


def _config(args: argparse.Namespace):
    from cifarkit.config import load_config

    return load_config(args.experiment, args.profile, overrides=dict(getattr(args, "overrides", [])))


def _eta(seconds: float) -> str:
    minutes, secs = divmod(int(seconds), 60)
    return f"{minutes}m{secs:02d}s"


def cmd_runs_ls(args: argparse.Namespace) -> int:
    from cifarkit.runs import list_runs

    rows = list_runs()
    if args.experiment:
        rows = [r for r in rows if r["experiment"] == args.experiment]
    if not rows:
        print("no runs yet; train one with `cifarkit train resnet20 --profile smoke --seed 0`")
        return 0
    print(f"{'experiment':<22} {'hash':<12} {'profile':<7} {'seed':>4} {'status':<9} {'test_acc':>8} {'wall_s':>8}")
    for r in rows:
        acc = f"{r['test_accuracy']:.4f}" if r["test_accuracy"] is not None else "-"
        wall = f"{r['train_seconds']:.0f}" if r["train_seconds"] is not None else "-"
        print(f"{r['experiment']:<22} {r['hash']:<12} {r['profile'] or '-':<7} {r['seed'] if r['seed'] is not None else '-':>4} "
              f"{r['status']:<9} {acc:>8} {wall:>8}")
    return 0


def cmd_lr_find(args: argparse.Namespace) -> int:
    from pathlib import Path

    from cifarkit.lrfind import lr_find

    cfg = _config(args)
    result = lr_find(cfg, args.seed, min_lr=args.min_lr, max_lr=args.max_lr, steps=args.steps)
    figure_path = Path(result.folder) / "lr_find.png"
    if not figure_path.exists():
        from cifarkit.atomic import atomic_path
        from cifarkit.plots import lr_finder_figure

        with atomic_path(figure_path, suffix=".png") as tmp:
            lr_finder_figure(result).savefig(tmp, dpi=120, format="png")
    print(f"swept {len(result.lrs)} steps, LR {result.lrs[0]:.2g} .. {result.lrs[-1]:.2g}"
          f"{' (stopped early: loss diverged)' if result.stopped_early else ''}")
    print(f"plot: {figure_path}")
    print(f"suggested LR (steepest descent): {result.suggested_lr:.3g}   (minimum/10: {result.min_loss_lr_over_10:.3g})")
    return 0


def cmd_bench_throughput(args: argparse.Namespace) -> int:
    import json

    from cifarkit.bench import throughput

    overrides = {"train.augment.mode": args.augment_mode} if args.augment_mode else {}
    if args.bfloat16:
        overrides["train.bfloat16"] = True
    result = throughput(args.model, args.profile, batch_size=args.batch_size, steps=args.steps,
                        overrides=overrides)
    from cifarkit.atomic import write_json

    kept = result.default_path()
    write_json(kept, result.as_dict())  # the fast-training chapter reads it from there
    if args.json:
        write_json(args.json, result.as_dict())
    print(json.dumps(result.as_dict(), indent=2))
    print(f"written: {kept}")
    print(f"{result.model} batch {result.batch_size} {result.precision}: (a) model alone {result.synthetic_img_s:.0f} img/s, "
          f"(b) real pipeline {result.pipeline_img_s:.0f} img/s, ratio (b)/(a) {result.ratio:.2f}; "
          f"{result.augment_mode} input pipeline alone {result.input_only_img_s:.0f} img/s")
    return 0


def _accuracy_fraction(text: str) -> float:
    """``90.7`` or ``0.907`` -> 0.907."""
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"target must be an accuracy like 90.7 or 0.907, got {text!r}") from None
    value = value / 100 if value > 1 else value
    if not 0 < value < 1:
        raise argparse.ArgumentTypeError(f"target must be in (0, 100) percent, got {text!r}")
    return value


def cmd_bench_time_to_accuracy(args: argparse.Namespace) -> int:
    from cifarkit.bench_tta import headline, time_to_accuracy

    overrides: dict = dict(args.overrides)
    if args.epochs is not None:
        overrides["train.epochs"] = args.epochs
    if args.train_per_class is not None:
        overrides["data.train_per_class"] = args.train_per_class
    if args.test_limit is not None:
        overrides["data.test_limit"] = args.test_limit
    result, path = time_to_accuracy(args.experiment, args.profile, target=args.target, seeds=args.seeds,
                                    overrides=overrides or None, tta_shift=args.tta_shift, out=args.json,
                                    resume=not args.fresh)
    print(f"{'seed':>4} {'epochs':>6} {'train_s':>8} {'total_s':>8} {'to_target_s':>11} {'test':>6} {'test_tta':>8}")
    for r in result.seeds:
        to_target = f"{r.time_to_target:.0f}" if r.time_to_target is not None else "-"
        print(f"{r.seed:>4} {r.epochs:>6} {r.train_seconds:>8.0f} {r.total_seconds:>8.0f} {to_target:>11} "
              f"{100 * r.test_accuracy:>6.2f} {100 * r.test_accuracy_tta:>8.2f}")
    print(f"wrote {path}")
    print(headline(result))
    return 0


def cmd_bench_ladder(args: argparse.Namespace) -> int:
    from cifarkit.ladder import ladder_variants, run_ladder, steps_to_train

    every_step = list(ladder_variants())
    asked = steps_to_train(every_step, args.step) if args.step else every_step  # checks the numbers first
    train = False if args.dry_run else (args.step or True)
    ladder = run_ladder(args.profile, args.seeds, train=train, common=dict(args.overrides))
    with pd_display():
        print(ladder.table().to_string())
    for step, command in ladder.missing.items():
        print(f"not run: {step}: {command}")
    for sentence in ladder.sentences():
        print(sentence)
    return 1 if any(step in ladder.missing for step in asked) else 0


def cmd_bench_results(args: argparse.Namespace) -> int:
    from cifarkit.bench import load_throughputs
    from cifarkit.bench_tta import load_results, results_table, seeds_table

    profile = None if args.profile == "all" else args.profile
    results = load_results(profile)

    def show(title: str, table) -> None:
        print(f"\n{title}\n")
        print(table.to_markdown() if args.markdown else table.to_string())

    with pd_display():
        if results:
            show("time to accuracy (one row per config; mean ± std over seeds)",
                 results_table(results).set_index("experiment"))
            for r in results:
                show(f"{r.experiment} {r.config_hash[:12]} ({r.profile}), target {r.target:.1%}: per seed",
                     seeds_table(r))
        throughputs = load_throughputs()
        if not throughputs.empty:
            show("throughput (img/s)", throughputs.set_index("experiment").round(
                {"model alone (img/s)": 0, "real pipeline (img/s)": 0, "ratio": 2}))
    if not results and throughputs.empty:
        print("no benchmark results under artifacts/bench; run cifarkit bench time-to-accuracy or throughput")
        return 1
    return 0


def pd_display():
    import pandas as pd

    return pd.option_context("display.width", 200, "display.max_colwidth", 60)


def cmd_bench_gradcam(args: argparse.Namespace) -> int:
    import json

    from cifarkit.atomic import write_json
    from cifarkit.bench import gradcam_speed
    from cifarkit.paths import artifacts_dir

    result = gradcam_speed(args.run_experiment, args.profile, seed=args.seed, n=args.n,
                           batch_size=args.batch_size, layer=args.layer)
    label = result.source.replace(" ", "-")
    path = artifacts_dir() / "bench" / f"gradcam-{label}-{args.profile if args.run_experiment else 'random'}.json"
    write_json(path, {**result.as_dict(), "profile": args.profile if args.run_experiment else None,
                      "seed": args.seed, "time": time.strftime("%Y-%m-%dT%H:%M:%S%z")})
    print(json.dumps(result.as_dict(), indent=2))
    print(f"Grad-CAM on {result.images} images ({result.source}, layer {result.layer}, batches of "
          f"{result.batch_size}): {result.img_s:.0f} img/s; wrote {path}")
    print(f"{result.seconds:.2f}")
    return 0


def cmd_artifacts_backup(args: argparse.Namespace) -> int:
    from cifarkit.artifacts import backup

    path, count = backup(args.file, include_cache=args.include_cache)
    print(f"wrote {path} ({count} files, {path.stat().st_size / 1e6:.1f} MB) with a sha256 manifest")
    return 0


def cmd_artifacts_recover(args: argparse.Namespace) -> int:
    from cifarkit.artifacts import recover

    root, count, previous = recover(args.file)
    print(f"restored {count} files into {root}; every file matched its sha256")
    if previous:
        print(f"the previous artifacts folder was kept at {previous}")
    return 0


def cmd_report(args: argparse.Namespace) -> int:
    from cifarkit.report import build_report, format_report, write_report

    report = build_report(args.experiment, args.profile, args.seeds, overrides=dict(args.overrides), tta=args.tta or bool(args.tta_shift),
                          tta_shift=args.tta_shift)
    json_path, figures = write_report(report, args.out)
    print(format_report(report))
    print(f"\nwrote {len(figures)} figures and {json_path.name} to {json_path.parent}/")
    for path in figures:
        print(f"  {path.name}")
    return 0


def cmd_demo(args: argparse.Namespace) -> int:
    from cifarkit.demo import SECTIONS, run_demo

    started = time.perf_counter()
    results = run_demo(args.profile, tuple(args.section or SECTIONS))
    missing = [r.name for r in results if not r.ok]
    print(f"\ndemo: {len(results) - len(missing)} of {len(results)} sections in "
          f"{time.perf_counter() - started:.1f} s" + (f"; missing artifacts: {', '.join(missing)}" if missing else ""))
    return 1 if missing else 0


# --------------------------------------------------------------------------- parser


class _OneLineErrors(argparse.ArgumentParser):
    """Usage errors as one line (exit 2), like every other user error; --help shows usage."""

    def error(self, message: str) -> NoReturn:
        self.exit(2, f"{self.prog}: error: {message} (see {self.prog} --help)\n")


def build_parser() -> argparse.ArgumentParser:
    parser = _OneLineErrors(prog="cifarkit", description=__doc__.splitlines()[0])
    noise = parser.add_mutually_exclusive_group()
    noise.add_argument("-v", "--verbose", action="store_const", const=1, dest="verbosity", default=0,
                       help="debug logging")
    noise.add_argument("-q", "--quiet", action="store_const", const=-1, dest="verbosity",
                       help="warnings and errors only")
    parser.add_argument("--debug", action="store_true", help="show tracebacks for user errors")
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    def add(group: argparse._SubParsersAction, name: str, func: Callable[[argparse.Namespace], int],
            help_text: str) -> argparse.ArgumentParser:
        p = group.add_parser(name, help=help_text, description=help_text)
        p.set_defaults(func=func)
        return p

    def experiment_args(p: argparse.ArgumentParser, default_experiment: str | None = None) -> None:
        if default_experiment is None:
            p.add_argument("experiment", help="a name under configs/ or a path to a YAML file")
        else:
            p.add_argument("experiment", nargs="?", default=default_experiment,
                           help=f"a name under configs/ or a path to a YAML file (default {default_experiment})")
        p.add_argument("--profile", "-p", default="cpu",
                       help="smoke | cpu | full | none | path to a profile YAML (default cpu)")
        p.add_argument("--set", dest="overrides", action="append", default=[], metavar="KEY=VALUE",
                       type=_override, help="override a config value, e.g. --set train.epochs=5 (repeatable)")

    config = sub.add_parser("config", help="inspect configurations").add_subparsers(
        dest="config_command", required=True, metavar="ACTION")
    experiment_args(add(config, "show", cmd_config_show, "print the resolved config and its content hash"))

    data = sub.add_parser("data", help="inspect the data").add_subparsers(
        dest="data_command", required=True, metavar="ACTION")
    p = add(data, "info", cmd_data_info, "per-split, per-class counts, source, cache and source hash")
    experiment_args(p, default_experiment="resnet20")
    p.add_argument("--source", help="data path (overrides data.source and $CIFARKIT_DATA)")

    p = add(sub, "train", cmd_train, "train (or resume, or return from cache) one run per seed")
    experiment_args(p)
    p.add_argument("--seed", type=_seed, nargs="+", help="seed(s); default: 0..seeds-1 of the profile")
    p.add_argument("--no-wait", action="store_true",
                   help="exit with an error instead of waiting when another process trains the same run")
    p.add_argument("--no-register", action="store_true", help="do not register the model in MLflow")

    runs = sub.add_parser("runs", help="the run store").add_subparsers(
        dest="runs_command", required=True, metavar="ACTION")
    p = add(runs, "ls", cmd_runs_ls, "list runs: experiment, hash, seed, status, test accuracy, wall time")
    p.add_argument("experiment", nargs="?", help="only this experiment")

    p = add(sub, "lr-find", cmd_lr_find, "learning-rate range test: loss vs LR plot and a suggested LR")
    experiment_args(p)
    p.add_argument("--seed", type=_seed, default=0)
    p.add_argument("--steps", type=int, default=200, help="optimizer steps in the sweep (default 200)")
    p.add_argument("--min-lr", type=float, default=1e-5)
    p.add_argument("--max-lr", type=float, default=10.0)

    bench = sub.add_parser("bench", help="benchmarks that print figures").add_subparsers(
        dest="bench_command", required=True, metavar="ACTION")
    p = add(bench, "throughput", cmd_bench_throughput,
            "img/s of the model alone vs with the real input pipeline")
    p.add_argument("--model", default="resnet20", help="experiment name (default resnet20)")
    p.add_argument("--profile", "-p", default="cpu")
    p.add_argument("--batch-size", type=int)
    p.add_argument("--steps", type=int, default=40)
    p.add_argument("--json", help="also write the figures to this JSON file (they are always kept in "
                   "artifacts/bench/throughput-*.json)")
    p.add_argument("--augment-mode", choices=("per_image", "batch"),
                   help="override train.augment.mode (compare the per-image and vectorised pipelines)")
    p.add_argument("--bfloat16", action="store_true",
                   help="time under mixed_bfloat16 (train.bfloat16); kept in its own -bf16 file")

    p = add(bench, "time-to-accuracy", cmd_bench_time_to_accuracy,
            "train fresh runs (no cache) and time training until validation accuracy reaches a target; "
            "headline on the last line")
    experiment_args(p)
    p.add_argument("--target", type=_accuracy_fraction, required=True,
                   help="validation accuracy to reach, e.g. 90.7 (percent) or 0.907")
    p.add_argument("--seeds", type=int, default=3, help="seeds 0..N-1 (default 3)")
    p.add_argument("--epochs", type=int, help="override train.epochs")
    p.add_argument("--train-per-class", type=int, help="override data.train_per_class (subsample)")
    p.add_argument("--test-limit", type=int, help="override data.test_limit")
    p.add_argument("--tta-shift", type=int, default=1,
                   help="TTA views: flip and, if > 0, +/-PX shifts (default 1: 10 views)")
    p.add_argument("--json", help="output file (default artifacts/bench/time-to-accuracy-<exp>-<profile>-<hash>.json)")
    p.add_argument("--fresh", action="store_true",
                   help="measure every seed again (default: keep seeds that file already holds for this config)")

    p = add(bench, "ladder", cmd_bench_ladder,
            "the fast recipe's ablation ladder (configs/airbench.yaml, one trick added per step): train the "
            "missing steps through the run store (cached, resumable) and print accuracy and time per step")
    p.add_argument("--profile", "-p", default="cpu",
                   help="smoke | cpu | full | none | path to a profile YAML (default cpu)")
    p.add_argument("--seeds", type=int, default=1, help="seeds 0..N-1 per step (default 1)")
    p.add_argument("--set", dest="overrides", action="append", default=[], metavar="KEY=VALUE",
                   type=_override, help="override a config value for every step (repeatable)")
    p.add_argument("--step", type=int, action="append", default=[], metavar="N",
                   help="train only step N (1-based, repeatable; exit 0 once those have runs), e.g. "
                        "--step 1 --step 8 for the two ends first: all tricks against none")
    p.add_argument("--dry-run", action="store_true",
                   help="train nothing: show the steps that have runs and the command for each that has not")

    p = add(bench, "results", cmd_bench_results,
            "print every time-to-accuracy and throughput result kept under artifacts/bench as tables "
            "(trains nothing)")
    p.add_argument("--profile", "-p", default="all", help="only this profile's results (default all)")
    p.add_argument("--markdown", action="store_true", help="markdown tables (for the README)")

    p = add(bench, "gradcam", cmd_bench_gradcam,
            "seconds for Grad-CAM maps of N images (last line of the output)")
    p.add_argument("--run-experiment", metavar="EXPERIMENT",
                   help="time the stored run of this experiment (never trains); default: a fresh ResNet20 "
                        "on random images")
    p.add_argument("--profile", "-p", default="cpu", help="profile of --run-experiment (default cpu)")
    p.add_argument("--seed", type=_seed, default=0)
    p.add_argument("--n", type=int, default=1000, help="images (default 1000)")
    p.add_argument("--batch-size", type=int, default=200)
    p.add_argument("--layer", help="layer name or label (stage1..3, block1..3); default the last stage")

    arts = sub.add_parser("artifacts", help="back up and recover artifacts/").add_subparsers(
        dest="artifacts_command", required=True, metavar="ACTION")
    p = add(arts, "backup", cmd_artifacts_backup, "write a tar of artifacts/ with a sha256 manifest")
    p.add_argument("file", help="the tar to write (.tar, or .tgz/.tar.gz to compress)")
    p.add_argument("--include-cache", action="store_true",
                   help="also pack the decoded-data cache (rebuilt from the data source otherwise)")
    p = add(arts, "recover", cmd_artifacts_recover,
            "restore a backup after verifying every file; the old artifacts/ is kept beside it")
    p.add_argument("file", help="a tar written by `cifarkit artifacts backup`")

    p = add(sub, "demo", cmd_demo, "presentation demo from cached artifacts: data, baseline, ablations, "
            "interpretability; never trains")
    p.add_argument("--profile", "-p", default="cpu", help="whose runs to show (default cpu)")
    p.add_argument("--section", nargs="+", choices=("data", "baseline", "ablations", "interpretability"),
                   help="only these sections")

    p = add(sub, "report", cmd_report,
            "summarise an experiment's complete runs over seeds (mean ± CI per metric) and write "
            "figures; never trains")
    experiment_args(p)
    p.add_argument("--seeds", type=int, help="use seeds 0..N-1 (default: the profile's seeds)")
    p.add_argument("--out", help="output folder (default artifacts/reports/<experiment>-<profile>/)")
    p.add_argument("--tta", action="store_true",
                   help="also test-time augmentation (horizontal flip) from each run's model")
    p.add_argument("--tta-shift", type=int, default=0, metavar="PX",
                   help="with --tta, also average over ±PX-pixel shifts (e.g. 2)")

    return parser


def _seed(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"seed must be a non-negative integer, got {text!r}") from None
    if not 0 <= value < 2**31:
        raise argparse.ArgumentTypeError(f"seed must be in 0..2147483647, got {value}")
    return value


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    setup_logging(args.verbosity)
    try:
        return args.func(args)
    except CifarkitError as exc:
        if args.debug:
            raise
        print(f"cifarkit: error: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("cifarkit: interrupted", file=sys.stderr)
        return 130


if __name__ == "__main__":
    sys.exit(main())
