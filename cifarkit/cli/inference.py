"""The inference subcommands: ``export``, ``predict`` and ``bench inference``."""

from __future__ import annotations

import argparse
import json
import sys


def _run(args: argparse.Namespace):
    from cifarkit.runs import resolve_run

    return resolve_run(
        args.run,
        seed=args.seed,
        profile=args.profile,
        overrides=dict(getattr(args, "overrides", []) or []) or None,
    )


def cmd_export(args: argparse.Namespace) -> int:
    from cifarkit.runs.export import export_run

    run = _run(args)
    result = export_run(run, args.format, out=args.out, tolerance=args.tolerance)
    parity = result.parity
    print(f"exported {run.path.name} as {result.format} to {result.path}")
    print(
        f"input: uint8 (N, 32, 32, 3) RGB 0..255; outputs: logits, probabilities; "
        f"{len(result.manifest['class_names'])} classes: {', '.join(result.manifest['class_names'])}"
    )
    print(
        f"parity: max |Δlogit| {parity['max_abs_logit_diff']:.3g} on {parity['images']} test images "
        f"(tolerance {parity['tolerance']:g}, logits up to {parity['logit_scale']:.3g}, "
        f"top-1 agreement {parity['argmax_agreement']:.2%})"
    )
    print(f"manifest: {result.path / 'export.json'}")
    return 0


def cmd_predict(args: argparse.Namespace) -> int:
    from cifarkit.runs.predict import (
        RESIZE_METHOD,
        BadInput,
        classifier_from_export,
        classifier_from_run,
        predict_files,
    )

    classifier = (
        classifier_from_export(args.export) if args.export else classifier_from_run(_run(args))
    )
    results = predict_files(classifier, args.images, top=args.top)
    bad = [r for r in results if isinstance(r, BadInput)]
    for r in bad:
        print(f"cifarkit: error: {r.error}", file=sys.stderr)
    if args.json:
        print(
            json.dumps(
                {
                    "model": classifier.source,
                    "class_names": list(classifier.class_names),
                    "resize": f"to 32x32 with Pillow: {RESIZE_METHOD}",
                    "results": [r.as_dict() for r in results],
                },
                indent=2,
            )
        )
    else:
        _print_table(classifier, results, args.top, RESIZE_METHOD)
    return 2 if bad else 0


def _print_table(classifier, results, top: int, resize_method: str) -> None:
    from cifarkit.runs.predict import BadInput

    print(f"model: {classifier.source}")
    print(f"resize: to 32x32 with Pillow, {resize_method}")
    k = min(top, len(classifier.class_names))
    names = [str(r.path) if isinstance(r, BadInput) else str(r.image.path) for r in results]
    width = max([len("image"), *map(len, names)])
    cell = max(len(n) for n in classifier.class_names) + 7
    header = f"{'image':<{width}}  {'size':>11}  {'resize':<7}  "
    print((header + "  ".join(f"{f'top-{i + 1}':<{cell}}" for i in range(k))).rstrip())
    for name, r in zip(names, results, strict=True):
        if isinstance(r, BadInput):
            print(f"{name:<{width}}  {'-':>11}  {'-':<7}  error (see stderr)")
            continue
        size = f"{r.image.size[0]}x{r.image.size[1]}"
        cells = "  ".join(f"{f'{cls} {p:.3f}':<{cell}}" for cls, p in r.top)
        print(f"{name:<{width}}  {size:>11}  {r.image.resize:<7}  {cells}".rstrip())
        for note in r.image.notes:
            print(f"{'':<{width}}    note: {note}")


def cmd_bench_inference(args: argparse.Namespace) -> int:
    from cifarkit.bench.inference import BACKENDS, inference_benchmark
    from cifarkit.core.atomic import write_json

    run = _run(args)
    result = inference_benchmark(
        run,
        repeats=args.repeats,
        latency_calls=args.calls,
        big_batches=args.big_batches,
        backends=tuple(args.backend or BACKENDS),
    )
    kept = result.default_path()
    write_json(kept, result.as_dict())
    if args.json:
        write_json(args.json, result.as_dict())
    env = result.environment
    print(
        f"{result.run} ({result.model}): median (range) over {result.repeats} repeats; batch 1 from "
        f"{result.latency_calls} calls, batch 256 from {result.big_batches} calls per repeat"
    )
    print(f"machine: {env.get('cpu', 'unknown')}, {env.get('cpu_count', '?')} cores")
    print(result.table())
    for r in result.results:
        if r.parity_max_abs_logit_diff is not None:
            print(f"{r.backend} export parity: max |Δlogit| {r.parity_max_abs_logit_diff:.3g}")
    print(f"written: {kept}")
    return 0
