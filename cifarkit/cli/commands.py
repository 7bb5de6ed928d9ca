"""The ``cifarkit`` subcommands: each parses nothing, calls the package and prints."""

from __future__ import annotations

import argparse
import logging
import statistics
import sys
import time
from pathlib import Path

from cifarkit.core.errors import CifarkitError

log = logging.getLogger(__name__)


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
    splits = make_splits(
        data,
        val_per_class=data_cfg.val_per_class,
        seed=data_cfg.split_seed,
        train_per_class=data_cfg.train_per_class,
        test_limit=data_cfg.test_limit,
    )
    elapsed = time.perf_counter() - started
    counts = splits.counts()
    print(f"source:      {data.source}")
    print(f"format:      {data.source_format}")
    print(f"source hash: {data.source_hash}")
    print(f"cache:       {data.cache_path or '(not cached)'}")
    print(
        f"split:       seed {data_cfg.split_seed}, {data_cfg.val_per_class} val per class"
        f" (profile {args.profile})"
    )
    width = max(len(n) for n in data.class_names)
    print(f"\n{'class':<{width}}  {'train':>7} {'val':>7} {'test':>7}")
    for i, name in enumerate(data.class_names):
        print(
            f"{name:<{width}}  {counts['train'][i]:>7,} {counts['val'][i]:>7,} {counts['test'][i]:>7,}"
        )
    print(
        f"{'total':<{width}}  {counts['train'].sum():>7,} {counts['val'].sum():>7,} {counts['test'].sum():>7,}"
    )
    print(f"\nloaded in {elapsed:.2f} s")
    return 0


def cmd_train(args: argparse.Namespace) -> int:
    from cifarkit.runs import get_or_train
    from cifarkit.runs.schedule import Eta

    cfg = _config(args)
    seeds = args.seed if args.seed else list(range(cfg.seeds))
    eta = Eta([1.0] * len(seeds), settle=1)  # the seeds cost the same: the pace is minutes per run
    runs = []
    for i, seed in enumerate(seeds, start=1):
        label = f"[run {i}/{len(seeds)}] " if len(seeds) > 1 else ""
        if i > 1:
            log.info("%soverall ETA %s", label, _eta(60 * eta.left(range(i - 1, len(seeds)))))
        runs.append(
            get_or_train(
                cfg, seed, wait=not args.no_wait, register=not args.no_register, label=label
            )
        )
        eta.finish(i - 1)
    for run in runs:
        record = run.status_record()
        print(
            f"{run.path.name}  seed {record.get('seed')}  {record.get('status')}  "
            f"test_accuracy {record.get('test_accuracy', float('nan')):.4f}  {run.path}"
        )
    return 0


def _config(args: argparse.Namespace):
    from cifarkit.core.config import load_config

    return load_config(
        args.experiment, args.profile, overrides=dict(getattr(args, "overrides", []))
    )


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
    print(
        f"{'experiment':<22} {'hash':<12} {'profile':<7} {'seed':>4} {'status':<9} {'test_acc':>8} {'wall_s':>8}"
    )
    for r in rows:
        acc = f"{r['test_accuracy']:.4f}" if r["test_accuracy"] is not None else "-"
        wall = f"{r['train_seconds']:.0f}" if r["train_seconds"] is not None else "-"
        print(
            f"{r['experiment']:<22} {r['hash']:<12} {r['profile'] or '-':<7} {r['seed'] if r['seed'] is not None else '-':>4} "
            f"{r['status']:<9} {acc:>8} {wall:>8}"
        )
    return 0


def cmd_lr_find(args: argparse.Namespace) -> int:

    from cifarkit.training.lrfind import lr_find

    cfg = _config(args)
    result = lr_find(cfg, args.seed, min_lr=args.min_lr, max_lr=args.max_lr, steps=args.steps)
    figure_path = Path(result.folder) / "lr_find.png"
    if not figure_path.exists():
        from cifarkit.core.atomic import atomic_path
        from cifarkit.plots import lr_finder_figure

        with atomic_path(figure_path, suffix=".png") as tmp:
            lr_finder_figure(result).savefig(tmp, dpi=120, format="png")
    print(
        f"swept {len(result.lrs)} steps, LR {result.lrs[0]:.2g} .. {result.lrs[-1]:.2g}"
        f"{' (stopped early: loss diverged)' if result.stopped_early else ''}"
    )
    print(f"plot: {figure_path}")
    print(
        f"suggested LR (steepest descent): {result.suggested_lr:.3g}   (minimum/10: {result.min_loss_lr_over_10:.3g})"
    )
    return 0


def cmd_bench_engine(args: argparse.Namespace) -> int:
    from cifarkit.bench import engine
    from cifarkit.core.atomic import write_json

    models = [m.strip() for m in args.models.split(",") if m.strip()]
    if args.torch_python and not Path(args.torch_python).is_file():
        raise CifarkitError(
            f"--torch-python {args.torch_python} does not exist; pass a Python that has torch "
            "(e.g. a venv with pip install torch) or leave it out"
        )
    result = engine.compare(
        models,
        repeats=args.repeats,
        steps=args.steps,
        torch_python=args.torch_python,
        negatives=args.negatives,
    )
    path = engine.result_path(models)
    write_json(path, result)
    with pd_display():
        print(engine.engine_table(result).to_string(index=False))
    print(engine.machine_text(result))
    print(f"kept in {path}")
    return 0


def cmd_bench_precision(args: argparse.Namespace) -> int:
    from cifarkit.bench import precision
    from cifarkit.core.atomic import write_json

    result = precision.compare(args.experiments, args.profile, args.seeds)
    path = precision.result_path(args.profile)
    write_json(path, result)
    with pd_display():
        print(precision.precision_table(result).to_string(index=False))
    for row in result["experiments"]:
        print(f"{row['experiment']}: {row['sentence']}")
    print(precision.machine_text(result))
    print(f"kept in {path}")
    return 0


def cmd_bench_throughput(args: argparse.Namespace) -> int:
    import json

    from cifarkit.bench.throughput import throughput

    overrides = {"train.augment.mode": args.augment_mode} if args.augment_mode else {}
    if args.precision:
        overrides["train.precision"] = args.precision
    overrides = {**dict(args.overrides), **overrides}
    trial = args.steps_per_execution != 1 or args.intra_threads or args.inter_threads
    if args.intra_threads or args.inter_threads:  # before TensorFlow starts its thread pools
        import tensorflow as tf

        tf.config.threading.set_intra_op_parallelism_threads(args.intra_threads or 0)
        tf.config.threading.set_inter_op_parallelism_threads(args.inter_threads or 0)
    result = throughput(
        args.experiment,
        args.profile,
        batch_size=args.batch_size,
        steps=args.steps,
        repeats=args.repeats,
        overrides=overrides,
        steps_per_execution=args.steps_per_execution,
    )
    from cifarkit.core.atomic import write_json

    kept = None if trial else result.default_path()
    if kept is not None:
        write_json(kept, result.as_dict())  # the fast-training chapter reads it from there
    if args.json:
        write_json(args.json, result.as_dict())
    print(json.dumps(result.as_dict(), indent=2))
    print(
        f"written: {kept}"
        if kept
        else "not kept under artifacts/bench (a trial of steps per execution or "
        "threads; the book's figures use the defaults)"
    )
    spread = result.ratio_range
    runs = len(result.synthetic_runs)

    def median_range(values: list[float]) -> str:
        return f"{statistics.median(values):.0f} img/s" + (
            f" ({min(values):.0f}-{max(values):.0f})" if runs > 1 else ""
        )

    print(
        f"{result.model} batch {result.batch_size} {result.precision}, median of {runs} interleaved runs (range): "
        f"(a) model alone {median_range(result.synthetic_runs)}, (b) real pipeline "
        f"{median_range(result.pipeline_runs)}, ratio (b)/(a) {result.ratio:.2f}"
        + (f" ({spread[0]:.2f}-{spread[1]:.2f})" if spread else "")
        + f"; {result.augment_mode} input pipeline alone {result.input_only_img_s:.0f} img/s"
    )
    return 0


def cmd_bench_time_to_accuracy(args: argparse.Namespace) -> int:
    from cifarkit.bench.time_to_accuracy import headline, time_to_accuracy

    overrides: dict = dict(args.overrides)
    if args.epochs is not None:
        overrides["train.epochs"] = args.epochs
    if args.train_per_class is not None:
        overrides["data.train_per_class"] = args.train_per_class
    if args.test_limit is not None:
        overrides["data.test_limit"] = args.test_limit
    result, path = time_to_accuracy(
        args.experiment,
        args.profile,
        target=args.target,
        seeds=args.seeds,
        overrides=overrides or None,
        tta_shift=args.tta_shift,
        out=args.json,
        resume=not args.fresh,
    )
    _print_time_to_accuracy(result, path)
    print(headline(result))
    return 0


def _print_time_to_accuracy(result, path: Path) -> None:
    print(
        f"{'seed':>4} {'epochs':>6} {'train_s':>8} {'total_s':>8} {'to_target_s':>11} {'test':>6} {'test_tta':>8}"
    )
    for r in result.seeds:
        to_target = f"{r.time_to_target:.0f}" if r.time_to_target is not None else "-"
        print(
            f"{r.seed:>4} {r.epochs:>6} {r.train_seconds:>8.0f} {r.total_seconds:>8.0f} {to_target:>11} "
            f"{100 * r.test_accuracy:>6.2f} {100 * r.test_accuracy_tta:>8.2f}"
        )
    print(f"wrote {path}")


def cmd_bench_ladder(args: argparse.Namespace) -> int:
    return _ladder(args.profile, args.seeds, args.step, dict(args.overrides), dry_run=args.dry_run)


def _ladder(
    profile: str, seeds: int, steps: list[int], common: dict, *, dry_run: bool = False
) -> int:
    """Train the ladder's missing ``steps`` (none: every one) and print it; 1 if one of them is
    still missing."""
    from cifarkit.studies.ladder import ladder_variants, run_ladder, steps_to_train

    every_step = list(ladder_variants())
    asked = steps_to_train(every_step, steps) if steps else every_step  # checks the numbers first
    train = False if dry_run else (steps or True)
    ladder = run_ladder(profile, seeds, train=train, common=common)
    with pd_display():
        print(ladder.table().to_string())
    for step, command in ladder.missing.items():
        print(f"not run: {step}: {command}")
    for sentence in ladder.sentences():
        print(sentence)
    return 1 if any(step in ladder.missing for step in asked) else 0


def cmd_bench_goals(args: argparse.Namespace) -> int:
    from cifarkit.bench.goals import load_goals
    from cifarkit.bench.time_to_accuracy import headline, time_to_accuracy
    from cifarkit.core.errors import ConfigError

    goals = load_goals(args.name)
    unknown = [name for name in args.only if name not in goals]
    if unknown:
        raise ConfigError(
            f"no goal {', '.join(unknown)} in {args.name}; its goals: {', '.join(goals)}"
        )
    chosen = {name: goal for name, goal in goals.items() if not args.only or name in args.only}
    for i, (name, goal) in enumerate(chosen.items(), start=1):
        print(f"== goal {i}/{len(chosen)} {name}: {goal.command()}", flush=True)
        if args.dry_run:
            continue
        if goal.bench == "ladder":
            code = _ladder(goal.profile, goal.seeds, list(goal.steps), dict(goal.set))
            if code:
                return code
            continue
        result, path = time_to_accuracy(
            str(goal.experiment),
            goal.profile,
            target=goal.target_fraction,
            seeds=goal.seeds,
            overrides=dict(goal.set) or None,
        )
        _print_time_to_accuracy(result, path)
        print(headline(result))
    return 0


def cmd_bench_results(args: argparse.Namespace) -> int:
    from cifarkit.bench.results import results_tables

    tables = results_tables(None if args.profile == "all" else args.profile, markdown=args.markdown)
    if tables is None:
        print(
            "no benchmark results under artifacts/bench; run cifarkit bench time-to-accuracy or throughput"
        )
        return 1
    print(tables)
    return 0


def cmd_docs_update(args: argparse.Namespace) -> int:
    from cifarkit.bench.results import results_tables
    from cifarkit.core.atomic import write_text
    from cifarkit.core.paths import project_root
    from cifarkit.publish.readme import benchmarks_markdown, update_readme

    root = project_root()
    print(f"updated {update_readme(root / 'README.md')}")
    target = root / "docs" / "benchmarks.md"
    write_text(target, benchmarks_markdown(results_tables()))
    print(f"wrote {target}")
    return 0


def pd_display():
    import pandas as pd

    return pd.option_context("display.width", 200, "display.max_colwidth", 60)


def cmd_bench_gradcam(args: argparse.Namespace) -> int:
    import json

    from cifarkit.bench.gradcam import gradcam_speed
    from cifarkit.core.atomic import write_json
    from cifarkit.core.paths import artifacts_dir

    result = gradcam_speed(
        args.run_experiment,
        args.profile,
        seed=args.seed,
        n=args.n,
        batch_size=args.batch_size,
        layer=args.layer,
    )
    label = result.source.replace(" ", "-")
    path = (
        artifacts_dir()
        / "bench"
        / f"gradcam-{label}-{args.profile if args.run_experiment else 'random'}.json"
    )
    write_json(
        path,
        {
            **result.as_dict(),
            "profile": args.profile if args.run_experiment else None,
            "seed": args.seed,
            "time": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
        },
    )
    print(json.dumps(result.as_dict(), indent=2))
    print(
        f"Grad-CAM on {result.images} images ({result.source}, layer {result.layer}, batches of "
        f"{result.batch_size}): {result.img_s:.0f} img/s; wrote {path}"
    )
    print(f"{result.seconds:.2f}")
    return 0


def cmd_artifacts_backup(args: argparse.Namespace) -> int:
    from cifarkit.runs.backup import backup

    path, count = backup(args.file, include_cache=args.include_cache)
    print(
        f"wrote {path} ({count} files, {path.stat().st_size / 1e6:.1f} MB) with a sha256 manifest"
    )
    return 0


def cmd_artifacts_recover(args: argparse.Namespace) -> int:
    from cifarkit.runs.backup import recover

    root, count, previous = recover(args.file)
    print(f"restored {count} files into {root}; every file matched its sha256")
    if previous:
        print(f"the previous artifacts folder was kept at {previous}")
    return 0


def cmd_report(args: argparse.Namespace) -> int:
    from cifarkit.evaluation.report import build_report, format_report
    from cifarkit.plots.report import write_report

    report = build_report(
        args.experiment,
        args.profile,
        args.seeds,
        overrides=dict(args.overrides),
        tta=args.tta,
        tta_shift=args.tta_shift,
    )
    json_path, figures = write_report(report, args.out)
    print(format_report(report))
    print(f"\nwrote {len(figures)} figures and {json_path.name} to {json_path.parent}/")
    for path in figures:
        print(f"  {path.name}")
    return 0


def _print_transfer(report) -> int:
    """Print a push/pull report; refused runs are one line each, and exit 2 (via CifarkitError)."""
    from cifarkit.core.errors import CifarkitError

    for name in report.done:
        print(f"{report.action}ed {name}")
    for name, why in report.skipped:
        print(f"skipped {name}: {why}")
    print(report.summary())
    if len(report.refused) == 1:
        raise CifarkitError(report.refused[0][1])
    if report.refused:
        for _, problem in report.refused:
            print(f"cifarkit: refused: {problem}", file=sys.stderr)
        raise CifarkitError(
            f"{len(report.refused)} runs refused (each named above); the others were "
            f"{report.action}ed"
        )
    return 0


def cmd_remote_push(args: argparse.Namespace) -> int:
    from cifarkit.runs.remote import open_store

    store = open_store(args.remote)
    return _print_transfer(store.push(args.runs or None))


def cmd_remote_pull(args: argparse.Namespace) -> int:
    from cifarkit.runs.remote import open_store

    store = open_store(args.remote)
    return _print_transfer(store.pull(args.runs or None))


def cmd_remote_ls(args: argparse.Namespace) -> int:
    from cifarkit.runs import Run, runs_root
    from cifarkit.runs.remote import open_store

    store = open_store(args.remote)
    rows = store.runs()
    if not rows:
        print(f"no runs on {store.url} yet; push them with `cifarkit remote push`")
        return 0
    print(f"{'run':<36} {'seed':>4} {'test_acc':>8} {'files':>5} {'MB':>8}  local")
    for row in rows:
        if row.manifest is None:
            print(f"{row.name:<36} unusable: {row.problem}")
            continue
        status = row.manifest.status
        acc = status.get("test_accuracy")
        local = Run(runs_root() / row.name).status
        print(
            f"{row.name:<36} {status.get('seed', '-')!s:>4} {f'{acc:.4f}' if isinstance(acc, float) else '-':>8} "
            f"{len(row.manifest.files):>5} {row.manifest.total_bytes / 1e6:>8.1f}  {local}"
        )
    print(f"{len(rows)} run(s) on {store.url}")
    return 0


def cmd_book(args: argparse.Namespace) -> int:
    from cifarkit.core.paths import project_root
    from cifarkit.publish.build import ChapterFailed, Options, SiteBuildFailed, run
    from cifarkit.publish.toc import parse_params

    for noisy in ("papermill", "traitlets", "blib2to3"):
        logging.getLogger(noisy).setLevel(logging.WARNING)
    opts = Options(
        profile=args.profile,
        chapter=args.chapter,
        params=parse_params(args.params),
        root=(args.root or project_root()).resolve(),
        output=(args.output or project_root()).resolve(),
        strict=args.strict,
        expect_cached=args.expect_cached,
        remote=args.remote,
        push=args.push,
        no_train=args.no_train,
        plan=args.plan,
        runner=args.runner,
        address=args.address,
        jobs=args.jobs,
    )
    try:
        run(opts)
    except (ChapterFailed, SiteBuildFailed) as exc:
        print(f"cifarkit: error: {exc}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        print(
            "interrupted; executed chapters so far are kept, the rest re-run next time",
            file=sys.stderr,
        )
        return 130
    return 0


def cmd_demo(args: argparse.Namespace) -> int:
    from cifarkit.publish.demo import SECTIONS, run_demo

    started = time.perf_counter()
    results = run_demo(args.profile, tuple(args.section or SECTIONS), images=args.images)
    missing = [r.name for r in results if not r.ok]
    print(
        f"\ndemo: {len(results) - len(missing)} of {len(results)} sections in "
        f"{time.perf_counter() - started:.1f} s"
        + (f"; missing artifacts: {', '.join(missing)}" if missing else "")
    )
    return 1 if missing else 0


def cmd_plan(args: argparse.Namespace) -> int:
    from cifarkit.publish.toc import parse_params
    from cifarkit.studies import plan as study
    from cifarkit.studies import pricing

    planned = study.study_plan(args.profile, args.chapter, parse_params(args.params))
    if args.action == "run":  # an unreachable cluster fails here, not after the speed probes
        from cifarkit.studies.runner import check_runner

        check_runner(args.runner, address=args.address, jobs=args.jobs)
    speeds = pricing.measured_speeds(planned, probe=not args.no_probe)
    with pd_display():
        table = pricing.plan_table(planned, speeds)
        print(table.to_string(index=False, float_format=lambda x: f"{x:.1f}"))
    per_chapter = pricing.chapter_minutes(planned, speeds)
    if per_chapter:
        print(
            "estimated minutes per chapter (a shared run counts for the first chapter that uses it): "
            + ", ".join(f"{name} {minutes:.0f}" for name, minutes in per_chapter.items())
        )
    print(pricing.total_text(planned, speeds))
    from cifarkit.studies import power

    powered, errors = power.plan_power(args.profile, args.chapter, parse_params(args.params))
    if not powered.empty:
        with pd_display():
            print("\nprimary comparisons: what each can detect at this budget")
            print(powered.to_string(index=False))
        print(power.power_text(powered))
        for line in errors:
            print(line)
    if args.action == "run":
        from cifarkit.runs.remote import configured_url
        from cifarkit.studies.runner import train_plan

        remote_url = configured_url(args.remote) if args.runner == "ray" else None
        trained = train_plan(
            planned,
            speeds,
            runner=args.runner,
            address=args.address,
            remote_url=remote_url,
            jobs=args.jobs,
        )
        print(f"trained {len(trained)} run(s); every run of the plan is stored")
    return 0
