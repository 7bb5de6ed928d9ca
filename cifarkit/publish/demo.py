"""The presentation demo: data → baseline → ablations → interpretability from cached artifacts,
ending with a live prediction (the stored ResNet20 classifies test images, and the user's own).

``cifarkit demo`` (``make demo``) never trains and never downloads: each section reads
the run store (``train=False``), prints its key numbers and writes its figures under
``artifacts/demo/<profile>/``. A section whose runs are missing says which command makes
them and the demo goes on with the next one; the exit code is then 1.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from cifarkit.core.atomic import atomic_path
from cifarkit.core.errors import CifarkitError
from cifarkit.core.paths import artifacts_dir

log = logging.getLogger(__name__)

SECTIONS = ("data", "baseline", "ablations", "interpretability", "predict")


@dataclass
class SectionResult:
    name: str
    ok: bool
    seconds: float
    lines: list[str]
    figures: list[Path]


def _write_figures(out: Path, figures: dict[str, Any]) -> list[Path]:
    from cifarkit.plots import to_png_bytes

    out.mkdir(parents=True, exist_ok=True)
    written = []
    for name, fig in figures.items():
        with atomic_path(out / name, suffix=".png") as tmp:
            tmp.write_bytes(to_png_bytes(fig))
        written.append(out / name)
    return written


def _data(profile: str) -> tuple[list[str], dict[str, Any]]:
    import numpy as np

    from cifarkit import plots
    from cifarkit.core.config import load_config
    from cifarkit.data import splits_from_config
    from cifarkit.data import statistics as datastats

    cfg = load_config("resnet20", profile)
    splits = splits_from_config(cfg.data)
    sizes = datastats.split_sizes(splits)
    per_class = int(min(8, np.bincount(splits.y_train).min()))
    samples, _ = datastats.sample_images(splits, "train", per_class=per_class, seed=0)
    lines = [
        f"data {splits.source_hash[:12]}: {sizes['train']:,} train / {sizes['val']:,} val / "
        f"{sizes['test']:,} test images, {len(splits.class_names)} classes",
        datastats.subsampling_note(cfg.data) or "full splits",
    ]
    figures = {
        "samples.png": plots.sample_grid(samples, splits.class_names),
        "class_balance.png": plots.class_balance_bars(datastats.class_balance(splits)),
    }
    return lines, figures


def _baseline(profile: str) -> tuple[list[str], dict[str, Any]]:
    from cifarkit import plots
    from cifarkit.core.config import load_config
    from cifarkit.studies import variants as study

    configs = {
        "baseline CNN": load_config("baseline_cnn", profile),
        "ResNet20": load_config("resnet20", profile),
    }
    comparison = study.compare(
        configs, configs["ResNet20"].seeds, reference="baseline CNN", train=False
    )
    lines = comparison.table().to_string().splitlines() + [comparison.sentence("ResNet20")]
    per_class = {label: _per_class_summary(runs) for label, runs in comparison.runs.items()}
    figures = {"per_class.png": plots.per_class_comparison_bars(per_class)}
    return lines, figures


def _per_class_summary(runs: dict[int, Any]) -> Any:
    import pandas as pd

    from cifarkit.evaluation import stats

    per_seed = pd.DataFrame(
        {seed: run.metrics()["test_accuracy_per_class"] for seed, run in runs.items()}
    ).T
    return stats.per_class_summary(per_seed)


def _ablations(profile: str) -> tuple[list[str], dict[str, Any]]:
    from cifarkit import plots
    from cifarkit.publish import findings
    from cifarkit.studies import ablations

    plan = ablations.default_plan(profile)
    results = ablations.run_ablations(plan, train=False)
    lines = [plan.describe()]
    for group, comparison in results.items():
        lines.append(f"{group}:")
        lines += ["  " + row for row in comparison.table().to_string().splitlines()]
    lines.append(findings.primary_ablation_effects(results))
    figures = {"forest.png": plots.comparison_forest(ablations.forest_rows(results))}
    return lines, figures


DEMO_IMAGES = 100  # faithfulness on 100 test images: a few seconds, enough for a visible verdict


def _interpretability(profile: str) -> tuple[list[str], dict[str, Any]]:
    """Grad-CAM at three resolutions on eight test images, and its deletion/insertion AUC
    against a random map on :data:`DEMO_IMAGES` images, for ResNet20 seed 0."""
    from cifarkit.core.config import load_config
    from cifarkit.data import splits_from_config
    from cifarkit.interpret import Explainer
    from cifarkit.interpret.study import faithfulness_study, sample_indices
    from cifarkit.plots.maps import map_grid
    from cifarkit.studies import variants as study

    cfg = load_config("resnet20", profile)
    run = study.gather_runs({"ResNet20": cfg}, [0], train=False)["ResNet20"][0]
    model = run.load_model()
    splits = splits_from_config(cfg.data)
    explainer = Explainer(model)
    shown = sample_indices(len(splits.x_test), 8, seed=0)
    images = splits.x_test[shown].astype("float32")
    targets = splits.y_test[shown]
    rows = {
        f"Grad-CAM {layer}": explainer.maps(images, targets, "gradcam", layer)
        for layer in ("stage1", "stage2", "stage3")
    }
    picked = sample_indices(len(splits.x_test), min(DEMO_IMAGES, len(splits.x_test)), seed=1)
    faith = faithfulness_study(
        model, splits.x_test[picked], [("gradcam", "stage3")], explainer=explainer
    )
    key = next(k for k in faith.scores if "random" not in k)
    lines = [
        f"run {run.path.name} (ResNet20, seed 0), {len(picked)} test images, predicted class:",
        faith.sentence(key, "random", "deletion_auc"),
        faith.sentence(key, "random", "insertion_auc"),
    ]
    titles = [splits.class_names[t] for t in targets]
    figures = {
        "gradcam_resolutions.png": map_grid(
            images,
            rows,
            titles,
            title=f"Grad-CAM of the true class at stages 1-3 ({run.path.name})",
        )
    }
    return lines, figures


PREDICT_SHOWN = 6  # test images classified live at the end of the demo


def _predict(profile: str, images: Sequence[str | Path] = ()) -> tuple[list[str], dict[str, Any]]:
    """A live prediction: ResNet20 seed 0 classifies a few test images now (the model is loaded
    and run, nothing is read from stored predictions), then the user's own ``images``."""
    from cifarkit.core.config import load_config
    from cifarkit.data import splits_from_config
    from cifarkit.interpret.study import sample_indices
    from cifarkit.runs.predict import RESIZE_METHOD, BadInput, classifier_from_run, predict_files
    from cifarkit.studies import variants as study

    cfg = load_config("resnet20", profile)
    run = study.gather_runs({"ResNet20": cfg}, [0], train=False)["ResNet20"][0]
    classifier = classifier_from_run(run)
    splits = splits_from_config(cfg.data)
    shown = sample_indices(len(splits.x_test), min(PREDICT_SHOWN, len(splits.x_test)), seed=2)
    classifier.probabilities(splits.x_test[shown[:1]])  # trace the forward pass once, untimed
    started = time.perf_counter()
    probs = classifier.probabilities(splits.x_test[shown])
    millis = 1000 * (time.perf_counter() - started)
    names = classifier.class_names
    lines = [
        f"live prediction by {run.path.name} (ResNet20, seed 0) on {len(shown)} test images "
        f"in {millis:.0f} ms:"
    ]
    for index, p in zip(shown, probs, strict=True):
        truth, guess = names[splits.y_test[index]], names[int(p.argmax())]
        lines.append(
            f"  test image {index:>5}  true {truth:<10}  predicted {guess:<10} {p.max():.2f}  "
            f"{'right' if truth == guess else 'wrong'}"
        )
    if images:
        lines.append(f"your images (resized to 32x32 with Pillow: {RESIZE_METHOD}):")
        for result in predict_files(classifier, images, top=3):
            if isinstance(result, BadInput):
                lines.append(f"  skipped: {result.error}")
                continue
            top = ", ".join(f"{name} {p:.2f}" for name, p in result.top)
            lines.append(f"  {result.image.path}: {top}")
            lines += [f"    note: {note}" for note in result.image.notes]
    return lines, {}


_BUILDERS: dict[str, Callable[[str], tuple[list[str], dict[str, Any]]]] = {
    "data": _data,
    "baseline": _baseline,
    "ablations": _ablations,
    "interpretability": _interpretability,
    "predict": _predict,
}


def run_demo(
    profile: str,
    sections: tuple[str, ...] = SECTIONS,
    out_dir: Path | None = None,
    echo: Callable[[str], None] = print,
    images: Sequence[str | Path] = (),
) -> list[SectionResult]:
    """Run each section, printing as it goes; a section with missing artifacts names the
    command that makes them and the demo continues. ``images`` (the user's own PNG/JPEG
    files) are classified in the ``predict`` section, which is added when they are given."""
    unknown = [s for s in sections if s not in _BUILDERS]
    if unknown:
        raise CifarkitError(
            f"unknown demo section(s) {', '.join(unknown)}; choose from {', '.join(SECTIONS)}"
        )
    if images and "predict" not in sections:
        sections = (*sections, "predict")
    out_root = out_dir or artifacts_dir() / "demo" / Path(profile).stem
    results = []
    for i, name in enumerate(sections, start=1):
        echo(f"\n=== [{i}/{len(sections)}] {name} (profile {profile}) ===")
        started = time.perf_counter()
        try:
            lines, figures = (
                _predict(profile, images) if name == "predict" else _BUILDERS[name](profile)
            )
            written = _write_figures(out_root / name, figures)
            ok = True
        except CifarkitError as exc:
            lines = [f"missing: {exc}", f"make the artifacts with: make book PROFILE={profile}"]
            written, ok = [], False
        seconds = time.perf_counter() - started
        for line in lines:
            echo(line)
        for path in written:
            echo(f"  figure: {path}")
        echo(f"[{name}] {'done' if ok else 'MISSING ARTIFACTS'} in {seconds:.1f} s")
        results.append(SectionResult(name, ok, seconds, lines, written))
    return results
