"""The figures of a multi-seed report (:mod:`cifarkit.evaluation.report`) and its folder on disk."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np

from cifarkit.core.atomic import atomic_path, write_json
from cifarkit.evaluation import metrics as ev
from cifarkit.evaluation import stats
from cifarkit.evaluation.report import N_PAIR_GALLERIES, Report, default_out_dir
from cifarkit.plots.evaluation import (
    confusion_matrix_figure,
    mistake_gallery,
    per_class_accuracy_bars,
    reliability_diagram,
)
from cifarkit.plots.style import to_png_bytes
from cifarkit.plots.training import per_class_seed_curves, seed_curves


def report_figures(report: Report) -> dict[str, Any]:
    """File name → Figure for every figure of the report (deterministic)."""
    names = report.class_names
    results = [report.results[s] for s in report.seeds]
    n = report.n
    over = f"{n} seed{'s' if n != 1 else ''}"
    title = f"{report.config.name} ({report.config.profile})"
    figures: dict[str, Any] = {}

    histories = [r.history for r in results]
    curves = {
        c: stats.curve_summary(histories, c)
        for c in ("loss", "accuracy", "val_loss", "val_accuracy")
    }
    figures["curves.png"] = seed_curves(
        {k: v for k, v in curves.items() if len(v)}, title=f"{title}: training curves"
    )
    class_curves = {c: stats.curve_summary(histories, f"val_acc_{c}") for c in names}
    if all(len(v) for v in class_curves.values()):
        figures["per_class_val_curves.png"] = per_class_seed_curves(
            class_curves, title=f"{title}: per-class validation accuracy"
        )
    figures["per_class_accuracy.png"] = per_class_accuracy_bars(
        report.per_class_summary,
        report.per_class_accuracy,
        title=f"{title}: per-class test accuracy over {over} (95% CI over seeds)",
    )
    figures["confusion.png"] = confusion_matrix_figure(
        ev.normalise_rows(report.confusion_counts),
        names,
        report.confusion_counts,
        title=f"{title}: confusion matrix, counts summed over {over} (row %, count)",
    )

    # Reliability: test predictions pooled over seeds, each seed with its own temperature.
    labels = np.concatenate([r.labels for r in results])
    before = np.concatenate([ev.softmax(r.logits) for r in results])
    after = np.concatenate(
        [ev.softmax(r.logits, r.evaluation.calibration.temperature) for r in results]
    )
    tables = {
        "before temperature scaling": ev.reliability_table(before, labels),
        "after temperature scaling": ev.reliability_table(after, labels),
    }
    eces = {
        "before temperature scaling": ev.expected_calibration_error(before, labels),
        "after temperature scaling": ev.expected_calibration_error(after, labels),
    }
    figures["reliability.png"] = reliability_diagram(
        tables,
        eces,
        ece_label="pooled ECE",
        title=f"{title}: reliability on test, pooled over {over}",
    )

    # Galleries: the lowest seed's model on the test images (stored logits are in test order).
    if report.x_test is not None:
        first = results[0]
        probs = ev.softmax(first.logits)
        seed_text = f"seed {first.seed}"
        overall = ev.confident_mistakes(probs, first.labels, 24)
        figures["mistakes_overall.png"] = mistake_gallery(
            {"": (report.x_test[overall.index], overall)},
            names,
            max_cols=8,
            title=f"{title}: most confident mistakes ({seed_text})",
        )
        by_class = ev.mistakes_by_class(probs, first.labels, 6)
        figures["mistakes_per_class.png"] = mistake_gallery(
            {names[k]: (report.x_test[m.index], m) for k, m in by_class.items()},
            names,
            title=f"{title}: most confident mistakes per true class ({seed_text})",
        )
        pairs = ev.confusion_pairs(report.confusion_counts, names, N_PAIR_GALLERIES)
        for row in pairs.itertuples():
            directions = {
                f"{row.a} → {row.b}": (row.a_index, row.b_index),
                f"{row.b} → {row.a}": (row.b_index, row.a_index),
            }
            chosen = {
                label: ev.confident_mistakes(
                    probs, first.labels, 8, true_class=t, predicted_class=p
                )
                for label, (t, p) in directions.items()
            }
            chosen = {label: (report.x_test[m.index], m) for label, m in chosen.items() if len(m)}
            if chosen:
                figures[f"mistakes_{row.a}_{row.b}.png"] = mistake_gallery(
                    chosen,
                    names,
                    title=f"{title}: {row.a} ↔ {row.b}, most confident confusions ({seed_text})",
                )
    return figures


def write_report(
    report: Report, out_dir: str | Path | None = None, figures: dict[str, Any] | None = None
) -> tuple[Path, list[Path]]:
    """Write the figures (PNG) and ``report.json`` (last) into ``out_dir`` atomically.

    Figures written by an earlier report into the same folder and no longer produced are
    removed (only those the earlier ``report.json`` lists). Returns (report.json, figures).
    """
    out = Path(out_dir) if out_dir is not None else default_out_dir(report.config)
    out.mkdir(parents=True, exist_ok=True)
    figures = report_figures(report) if figures is None else figures
    written = []
    for name, fig in figures.items():
        with atomic_path(out / name, suffix=".png") as tmp:
            tmp.write_bytes(to_png_bytes(fig))
        written.append(out / name)
    json_path = out / "report.json"
    previous: list[str] = []
    if json_path.exists():
        try:
            previous = list(json.loads(json_path.read_text()).get("figures", []))
        except (OSError, ValueError):
            previous = []
    write_json(json_path, {**report.as_dict(), "figures": sorted(figures)})
    for stale in set(previous) - set(figures):
        if Path(stale).name == stale and stale.endswith(".png"):
            (out / stale).unlink(missing_ok=True)
    return json_path, written
