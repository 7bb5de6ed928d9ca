"""The ``cifarkit`` argument parser: one function per command group, shared options declared once."""

from __future__ import annotations

import argparse
import os
from collections.abc import Callable
from pathlib import Path
from typing import Any, NoReturn

from cifarkit.cli import commands as c
from cifarkit.cli import doctor, inference


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


def _accuracy_fraction(text: str) -> float:
    """``90.7`` or ``0.907`` -> 0.907."""
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(
            f"target must be an accuracy like 90.7 or 0.907, got {text!r}"
        ) from None
    value = value / 100 if value > 1 else value
    if not 0 < value < 1:
        raise argparse.ArgumentTypeError(f"target must be in (0, 100) percent, got {text!r}")
    return value


def _seed(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(
            f"seed must be a non-negative integer, got {text!r}"
        ) from None
    if not 0 <= value < 2**31:
        raise argparse.ArgumentTypeError(f"seed must be in 0..2147483647, got {value}")
    return value


class _OneLineErrors(argparse.ArgumentParser):
    """Usage errors as one line (exit 2), like every other user error; --help shows usage."""

    def error(self, message: str) -> NoReturn:
        self.exit(2, f"{self.prog}: error: {message} (see {self.prog} --help)\n")


def _add(
    group: argparse._SubParsersAction,
    name: str,
    func: Callable[[argparse.Namespace], int],
    help_text: str,
) -> argparse.ArgumentParser:
    p = group.add_parser(name, help=help_text, description=help_text)
    p.set_defaults(func=func)
    return p


def _group(
    sub: argparse._SubParsersAction, name: str, help_text: str
) -> argparse._SubParsersAction:
    return sub.add_parser(name, help=help_text).add_subparsers(
        dest=f"{name}_command", required=True, metavar="ACTION"
    )


def _profile_arg(p: argparse.ArgumentParser, default: str = "cpu", what: str = "") -> None:
    """The one ``--profile`` option every subcommand shares."""
    p.add_argument(
        "--profile",
        "-p",
        default=default,
        help=f"{what or 'config profile'}: smoke | cpu | full | none | path to a profile YAML "
        f"(default {default})",
    )


def _overrides_arg(p: argparse.ArgumentParser) -> None:
    p.add_argument(
        "--set",
        dest="overrides",
        action="append",
        default=[],
        metavar="KEY=VALUE",
        type=_override,
        help="override a config value, e.g. --set train.epochs=5 (repeatable)",
    )


def _experiment_args(p: argparse.ArgumentParser, default_experiment: str | None = None) -> None:
    if default_experiment is None:
        p.add_argument("experiment", help="a name under configs/ or a path to a YAML file")
    else:
        p.add_argument(
            "experiment",
            nargs="?",
            default=default_experiment,
            help=f"a name under configs/ or a path to a YAML file (default {default_experiment})",
        )
    _profile_arg(p)
    _overrides_arg(p)


def _tta_shift_arg(p: argparse.ArgumentParser) -> None:
    """The one ``--tta-shift``: 1 px by default (flip x 3x3 shifts = 10 views), as the benchmark uses."""
    p.add_argument(
        "--tta-shift",
        type=int,
        default=1,
        metavar="PX",
        help="test-time augmentation views: identity and flip and, if PX > 0, the +/-PX-pixel "
        "shifts of each (default 1: 10 views; 0: 2 views)",
    )


def _add_inspection(sub: argparse._SubParsersAction) -> None:
    config = _group(sub, "config", "inspect configurations")
    _experiment_args(
        _add(config, "show", c.cmd_config_show, "print the resolved config and its content hash")
    )

    data = _group(sub, "data", "inspect the data")
    p = _add(
        data, "info", c.cmd_data_info, "per-split, per-class counts, source, cache and source hash"
    )
    _experiment_args(p, default_experiment="resnet20")
    p.add_argument("--source", help="data path (overrides data.source and $CIFARKIT_DATA)")

    _add(
        sub,
        "doctor",
        doctor.cmd_doctor,
        "what TensorFlow sees on this machine: devices, its CUDA build and libraries, the GPU or why none "
        "is usable, native bfloat16, thread pools, and the precision each profile resolves to here",
    )

    runs = _group(sub, "runs", "the run store")
    p = _add(
        runs,
        "ls",
        c.cmd_runs_ls,
        "list runs: experiment, hash, seed, status, test accuracy, wall time",
    )
    p.add_argument("experiment", nargs="?", help="only this experiment")


def _add_training(sub: argparse._SubParsersAction) -> None:
    p = _add(sub, "train", c.cmd_train, "train (or resume, or return from cache) one run per seed")
    _experiment_args(p)
    p.add_argument(
        "--seed", type=_seed, nargs="+", help="seed(s); default: 0..seeds-1 of the profile"
    )
    p.add_argument(
        "--no-wait",
        action="store_true",
        help="exit with an error instead of waiting when another process trains the same run",
    )
    p.add_argument("--no-register", action="store_true", help="do not register the model in MLflow")

    p = _add(
        sub,
        "lr-find",
        c.cmd_lr_find,
        "learning-rate range test: loss vs LR plot and a suggested LR",
    )
    _experiment_args(p)
    p.add_argument("--seed", type=_seed, default=0)
    p.add_argument(
        "--steps", type=int, default=200, help="optimizer steps in the sweep (default 200)"
    )
    p.add_argument("--min-lr", type=float, default=1e-5)
    p.add_argument("--max-lr", type=float, default=10.0)


def _add_bench(sub: argparse._SubParsersAction) -> None:
    bench = _group(sub, "bench", "benchmarks that print figures")
    _add_bench_inference(bench)
    p = _add(
        bench,
        "throughput",
        c.cmd_bench_throughput,
        "img/s of the model alone vs with the real input pipeline",
    )
    _experiment_args(p, default_experiment="resnet20")
    p.add_argument("--batch-size", type=int)
    p.add_argument(
        "--steps", type=int, default=40, help="timed batches per measurement (default 40)"
    )
    p.add_argument(
        "--repeats",
        type=int,
        default=3,
        help="measurements of each of (a) and (b), interleaved; median and range are reported (default 3)",
    )
    p.add_argument(
        "--json",
        help="also write the figures to this JSON file (they are always kept in "
        "artifacts/bench/throughput-*.json)",
    )
    p.add_argument(
        "--augment-mode",
        choices=("per_image", "batch"),
        help="override train.augment.mode (compare the per-image and vectorised pipelines)",
    )
    p.add_argument(
        "--precision",
        choices=("float32", "bfloat16", "float16"),
        help="override train.precision (default: the config's, 'auto' resolved for this machine); "
        "bfloat16 figures are kept in their own -bf16 file",
    )
    p.add_argument(
        "--steps-per-execution",
        type=_positive_int,
        default=1,
        metavar="N",
        help="Keras' steps_per_execution: batches per call of the compiled step; it must divide "
        "--steps and the warm-up of 8 (a trial: not kept under artifacts/bench)",
    )
    p.add_argument(
        "--intra-threads",
        type=_positive_int,
        metavar="N",
        help="TensorFlow's intra-op thread pool (default: one per core; a trial, not kept)",
    )
    p.add_argument(
        "--inter-threads",
        type=_positive_int,
        metavar="N",
        help="TensorFlow's inter-op thread pool (default: one per core; a trial, not kept)",
    )

    p = _add(
        bench,
        "engine",
        c.cmd_bench_engine,
        "training img/s side by side, each arm in a fresh process, interleaved: Keras' and the fused batch "
        "norm, float32 and (where native) bfloat16, beside PyTorch's ResNet20",
    )
    p.add_argument(
        "--models",
        default="resnet20,baseline_cnn,airbench",
        help="comma-separated experiments to time (default: resnet20,baseline_cnn,airbench)",
    )
    p.add_argument(
        "--repeats", type=_positive_int, default=3, help="rounds over all arms (default 3)"
    )
    p.add_argument(
        "--steps", type=_positive_int, default=40, help="timed batches per measurement (default 40)"
    )
    p.add_argument(
        "--torch-python",
        default=os.environ.get("CIFARKIT_TORCH_PYTHON"),
        help="a Python with PyTorch for the ResNet20 reference (default $CIFARKIT_TORCH_PYTHON; "
        "without one the PyTorch arms are left out)",
    )
    p.add_argument(
        "--negatives",
        action="store_true",
        help="also time the settings kept off (XLA, one inter-op thread) against the fused float32 arm",
    )

    p = _add(
        bench,
        "precision",
        c.cmd_bench_precision,
        "test accuracy in bfloat16 against float32, seed by seed, on a CPU with native bfloat16: "
        "trains (or finds) each experiment's seeds in both precisions through the run store",
    )
    p.add_argument(
        "experiments",
        nargs="*",
        default=["resnet20", "baseline_cnn"],
        help="experiments to compare (default: the headline pair, resnet20 baseline_cnn)",
    )
    _profile_arg(p)
    p.add_argument(
        "--seeds",
        type=_positive_int,
        default=5,
        help="seeds 0..N-1 in each precision (default 5, what the verdict rule needs to call a difference)",
    )

    p = _add(
        bench,
        "time-to-accuracy",
        c.cmd_bench_time_to_accuracy,
        "train fresh runs (no cache) and time training until validation accuracy reaches a target; "
        "headline on the last line",
    )
    _experiment_args(p)
    p.add_argument(
        "--target",
        type=_accuracy_fraction,
        required=True,
        help="validation accuracy to reach, e.g. 90.7 (percent) or 0.907",
    )
    p.add_argument("--seeds", type=int, default=3, help="seeds 0..N-1 (default 3)")
    p.add_argument("--epochs", type=int, help="override train.epochs")
    p.add_argument("--train-per-class", type=int, help="override data.train_per_class (subsample)")
    p.add_argument("--test-limit", type=int, help="override data.test_limit")
    _tta_shift_arg(p)
    p.add_argument(
        "--json",
        help="output file (default artifacts/bench/time-to-accuracy-<exp>-<profile>-<hash>.json)",
    )
    p.add_argument(
        "--fresh",
        action="store_true",
        help="measure every seed again (default: keep seeds that file already holds for this config)",
    )

    p = _add(
        bench,
        "ladder",
        c.cmd_bench_ladder,
        "the fast recipe's ablation ladder (configs/airbench.yaml, one trick added per step): train the "
        "missing steps through the run store (cached, resumable) and print accuracy and time per step",
    )
    _profile_arg(p)
    _overrides_arg(p)
    p.add_argument("--seeds", type=int, default=1, help="seeds 0..N-1 per step (default 1)")
    p.add_argument(
        "--step",
        type=int,
        action="append",
        default=[],
        metavar="N",
        help="train only step N (1-based, repeatable; exit 0 once those have runs), e.g. "
        "--step 1 --step 8 for the two ends first: all tricks against none",
    )
    p.add_argument(
        "--dry-run",
        action="store_true",
        help="train nothing: show the steps that have runs and the command for each that has not",
    )

    p = _add(
        bench,
        "goals",
        c.cmd_bench_goals,
        "run the benchmarks a goals file lists, in order (configs/goals/NAME.yaml: each a "
        "time-to-accuracy or ladder run with its target, seeds and overrides); stops at the first "
        "ladder step that could not be trained",
    )
    p.add_argument(
        "name", help="a goals file under configs/goals/ (fast, fast_bf16) or a path to one"
    )
    p.add_argument(
        "--only",
        action="append",
        default=[],
        metavar="GOAL",
        help="run only this goal of the file (repeatable)",
    )
    p.add_argument(
        "--dry-run", action="store_true", help="print each goal's command and run nothing"
    )

    p = _add(
        bench,
        "results",
        c.cmd_bench_results,
        "print every time-to-accuracy and throughput result kept under artifacts/bench as tables "
        "(trains nothing)",
    )
    _profile_arg(p, default="all", what="only this profile's results")
    p.add_argument(
        "--markdown", action="store_true", help="markdown tables (for docs/benchmarks.md)"
    )

    p = _add(
        bench,
        "gradcam",
        c.cmd_bench_gradcam,
        "seconds for Grad-CAM maps of N images (last line of the output)",
    )
    p.add_argument(
        "--run-experiment",
        metavar="EXPERIMENT",
        help="time the stored run of this experiment (never trains); default: a fresh ResNet20 "
        "on random images",
    )
    _profile_arg(p, what="profile of --run-experiment")
    p.add_argument("--seed", type=_seed, default=0)
    p.add_argument("--n", type=int, default=1000, help="images (default 1000)")
    p.add_argument("--batch-size", type=int, default=200)
    p.add_argument(
        "--layer", help="layer name or label (stage1..3, block1..3); default the last stage"
    )


def _add_results(sub: argparse._SubParsersAction) -> None:
    arts = _group(sub, "artifacts", "back up and recover artifacts/")
    p = _add(
        arts, "backup", c.cmd_artifacts_backup, "write a tar of artifacts/ with a sha256 manifest"
    )
    p.add_argument("file", help="the tar to write (.tar, or .tgz/.tar.gz to compress)")
    p.add_argument(
        "--include-cache",
        action="store_true",
        help="also pack the decoded-data cache (rebuilt from the data source otherwise)",
    )
    p = _add(
        arts,
        "recover",
        c.cmd_artifacts_recover,
        "restore a backup after verifying every file; the old artifacts/ is kept beside it",
    )
    p.add_argument("file", help="a tar written by `cifarkit artifacts backup`")

    p = _add(
        sub,
        "demo",
        c.cmd_demo,
        "presentation demo from cached artifacts: data, baseline, ablations, "
        "interpretability, then a live prediction; never trains",
    )
    _profile_arg(p, what="whose runs to show")
    p.add_argument(
        "--section",
        nargs="+",
        choices=("data", "baseline", "ablations", "interpretability", "predict"),
        help="only these sections",
    )
    p.add_argument(
        "--images",
        nargs="+",
        default=[],
        metavar="PATH",
        help="your own PNG/JPEG files for the live prediction (adds the predict section)",
    )

    p = _add(
        sub,
        "report",
        c.cmd_report,
        "summarise an experiment's complete runs over seeds (mean ± CI per metric) and write "
        "figures; never trains",
    )
    _experiment_args(p)
    p.add_argument("--seeds", type=int, help="use seeds 0..N-1 (default: the profile's seeds)")
    p.add_argument(
        "--out", help="output folder (default artifacts/reports/<experiment>-<profile>/)"
    )
    p.add_argument(
        "--tta",
        action="store_true",
        help="also test-time augmentation from each run's model (views: --tta-shift)",
    )
    _tta_shift_arg(p)


def _runner_args(p: argparse.ArgumentParser) -> None:
    p.add_argument(
        "--runner",
        choices=("local", "ray"),
        default="local",
        help="where the plan's missing runs train: this process (default) or tasks on a Ray cluster",
    )
    p.add_argument(
        "--address",
        default=None,
        metavar="ADDR",
        help="the Ray cluster (auto, HOST:PORT or ray://HOST:PORT; default auto); with --runner ray",
    )
    p.add_argument(
        "--jobs",
        type=_positive_int,
        default=None,
        metavar="N",
        help="local runner: runs trained at once, each in a worker process (default: two when "
        "the runs' fixed cost, which uses one core, is most of their time, else one)",
    )


def _add_plan(sub: argparse._SubParsersAction) -> None:
    p = _add(
        sub,
        "plan",
        c.cmd_plan,
        "the study plan: every run a book build needs, stored or missing, with "
        "estimated minutes on this machine; 'run' trains the missing ones",
    )
    p.add_argument(
        "action",
        nargs="?",
        choices=("show", "run"),
        default="show",
        help="show the plan (default) or train its missing runs",
    )
    _profile_arg(p)
    p.add_argument("--chapter", help="only this chapter's runs")
    p.add_argument(
        "--params", default="", help='the chapter\'s parameters, e.g. "seeds=5" (YAML values)'
    )
    p.add_argument(
        "--no-probe",
        action="store_true",
        help="estimate only from stored runs (no throughput probe for unmeasured model families)",
    )
    p.add_argument(
        "--remote",
        metavar="URL",
        default=None,
        help="with --runner ray: workers push finished runs here and the driver pulls them "
        "(default $CIFARKIT_REMOTE; without one, runs travel in the tasks' results)",
    )
    _runner_args(p)


def _add_docs(sub: argparse._SubParsersAction) -> None:
    docs = _group(sub, "docs", "documents generated from stored results")
    _add(
        docs,
        "update",
        c.cmd_docs_update,
        "rewrite the README's generated blocks and docs/benchmarks.md from this machine's artifacts/",
    )


def _run_args(p: argparse.ArgumentParser) -> None:
    """The one way a command names a stored run: a folder, a folder name, or an experiment
    with ``--seed`` and ``--profile`` (and ``--set``)."""
    p.add_argument(
        "run",
        metavar="RUN",
        help="a run folder, a run folder name under artifacts/runs, or an "
        "experiment name resolved with --seed and --profile",
    )
    p.add_argument("--seed", type=_seed, help="seed of an experiment's run (default 0)")
    _profile_arg(p, what="profile of an experiment's run")
    _overrides_arg(p)


def _add_inference(sub: argparse._SubParsersAction) -> None:
    p = _add(
        sub,
        "export",
        inference.cmd_export,
        "write a self-contained inference model of a run (uint8 32x32 RGB in, logits and "
        "probabilities out) after checking its logits against the run's stored test logits",
    )
    _run_args(p)
    p.add_argument(
        "--format",
        choices=("savedmodel", "onnx"),
        default="savedmodel",
        help="savedmodel (TensorFlow alone loads it) or onnx (onnxruntime; needs the onnx extra)",
    )
    p.add_argument(
        "--out", type=Path, help="export folder (default artifacts/exports/<run>-<format>/)"
    )
    p.add_argument(
        "--tolerance",
        type=float,
        default=1e-4,
        help="largest accepted max |logit difference| against the stored run (default 1e-4)",
    )

    p = _add(
        sub,
        "predict",
        inference.cmd_predict,
        "top-k classes of PNG/JPEG images of any size (resized to 32x32) from a run or an export",
    )
    p.add_argument("images", nargs="+", metavar="IMAGE", help="PNG or JPEG files")
    source = p.add_mutually_exclusive_group(required=True)
    source.add_argument(
        "--export", type=Path, metavar="PATH", help="an export folder (cifarkit export)"
    )
    source.add_argument(
        "--run",
        metavar="RUN",
        help="a run folder, its name, or an experiment name (with --seed and --profile)",
    )
    p.add_argument("--seed", type=_seed, help="seed of an experiment's run (default 0)")
    _profile_arg(p, what="profile of an experiment's run")
    _overrides_arg(p)
    p.add_argument(
        "--top", type=_positive_int, default=3, help="classes to show per image (default 3)"
    )
    p.add_argument("--json", action="store_true", help="print JSON instead of a table")


def _add_bench_inference(bench: argparse._SubParsersAction) -> None:
    p = _add(
        bench,
        "inference",
        inference.cmd_bench_inference,
        "inference img/s at batch 1 and 256 and batch-1 p50/p99 latency: the Keras model, its "
        "SavedModel export and its ONNX export side by side (median and range over repeats)",
    )
    p.add_argument(
        "run",
        nargs="?",
        default="resnet20",
        metavar="RUN",
        help="a run folder, a run folder name, or an experiment name resolved with --seed and "
        "--profile (default resnet20)",
    )
    p.add_argument("--seed", type=_seed, help="seed of an experiment's run (default 0)")
    _profile_arg(p, what="profile of an experiment's run")
    _overrides_arg(p)
    p.add_argument(
        "--repeats", type=_positive_int, default=5, help="rounds over the backends (default 5)"
    )
    p.add_argument(
        "--calls",
        type=_positive_int,
        default=200,
        help="batch-1 calls per round and backend (default 200)",
    )
    p.add_argument(
        "--big-batches",
        type=_positive_int,
        default=4,
        help="batch-256 calls per round and backend (default 4)",
    )
    p.add_argument(
        "--backend",
        action="append",
        choices=("keras", "savedmodel", "onnx"),
        help="time only this backend (repeatable; default all three)",
    )
    p.add_argument(
        "--json",
        type=Path,
        help="also write the result to this file (it is always kept in "
        "artifacts/bench/inference-<run>.json)",
    )


def _positive_int(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a positive integer, got {text!r}") from None
    if value < 1:
        raise argparse.ArgumentTypeError(f"expected a positive integer, got {value}")
    return value


def _add_book(sub: argparse._SubParsersAction) -> None:
    book = _group(
        sub, "book", "execute the report's chapters (cached by content) and build the site"
    )

    def common(p: argparse.ArgumentParser) -> None:
        _profile_arg(p)
        p.add_argument(
            "--root",
            type=Path,
            default=None,
            help="book root holding _config.yml and _toc.yml (default: the checkout)",
        )
        p.add_argument(
            "--output",
            type=Path,
            default=None,
            help="folder that receives _build/html (default: the checkout)",
        )
        p.add_argument(
            "--no-strict",
            dest="strict",
            action="store_false",
            help="do not turn Sphinx warnings into errors",
        )
        p.add_argument(
            "--expect-cached",
            action="store_true",
            help="fail (exit 2) instead of executing when a chapter is not cached",
        )
        p.add_argument(
            "--no-plan",
            dest="plan",
            action="store_false",
            help="do not train the study plan's missing runs first (chapters train what they miss)",
        )
        p.add_argument(
            "--no-train",
            action="store_true",
            help="train nothing: a chapter whose run is missing fails with the command that makes it",
        )
        p.add_argument(
            "--remote",
            metavar="URL",
            default=None,
            help="pull the remote's runs before executing (default $CIFARKIT_REMOTE)",
        )
        p.add_argument(
            "--push",
            action="store_true",
            help="push every complete local run to the remote after the build (or CIFARKIT_PUSH=1)",
        )
        _runner_args(p)

    params_help = 'parameters for the chapter, e.g. "seeds=5 epochs=30" (YAML values)'
    p = _add(book, "build", c.cmd_book, "execute every stale chapter, then build _build/html")
    common(p)
    p.add_argument("--chapter", help="execute only this chapter (others shown as last built)")
    p.add_argument("--params", default="", help=params_help)
    p = _add(
        book,
        "chapter",
        c.cmd_book,
        "re-execute one chapter (others shown as last built), then build",
    )
    common(p)
    p.add_argument("chapter", help="the chapter's notebook name, e.g. ablations")
    p.add_argument("--params", default="", help=params_help)


def _add_remote(sub: argparse._SubParsersAction) -> None:
    remote = _group(
        sub,
        "remote",
        "a remote run store (s3://, gs://, file://): push, pull, ls; the "
        "cloud backup and recovery of the runs",
    )

    def url(p: argparse.ArgumentParser) -> None:
        p.add_argument(
            "--remote",
            metavar="URL",
            default=None,
            help="the store, e.g. s3://bucket/prefix or file:///path (default $CIFARKIT_REMOTE; "
            "S3 endpoint from $CIFARKIT_REMOTE_ENDPOINT or $AWS_ENDPOINT_URL)",
        )

    p = _add(
        remote,
        "push",
        c.cmd_remote_push,
        "upload complete local runs (only missing objects; each run's manifest last)",
    )
    p.add_argument(
        "runs",
        nargs="*",
        metavar="RUN",
        help="run folder names (default: every complete local run)",
    )
    url(p)
    p = _add(
        remote,
        "pull",
        c.cmd_remote_pull,
        "download remote runs, verify every sha256, then move them "
        "in; complete local runs are never overwritten",
    )
    p.add_argument(
        "runs", nargs="*", metavar="RUN", help="run folder names (default: every remote run)"
    )
    url(p)
    p = _add(
        remote, "ls", c.cmd_remote_ls, "list the remote's runs and whether each is complete locally"
    )
    url(p)


def build_parser() -> argparse.ArgumentParser:
    parser = _OneLineErrors(
        prog="cifarkit",
        description="The cifarkit command: train, evaluate, benchmark and build the report.",
    )
    noise = parser.add_mutually_exclusive_group()
    noise.add_argument(
        "-v",
        "--verbose",
        action="store_const",
        const=1,
        dest="verbosity",
        default=0,
        help="debug logging",
    )
    noise.add_argument(
        "-q",
        "--quiet",
        action="store_const",
        const=-1,
        dest="verbosity",
        help="warnings and errors only",
    )
    parser.add_argument("--debug", action="store_true", help="show tracebacks for user errors")
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    for add_commands in (
        _add_inspection,
        _add_training,
        _add_plan,
        _add_bench,
        _add_results,
        _add_inference,
        _add_book,
        _add_remote,
        _add_docs,
    ):
        add_commands(sub)
    return parser
