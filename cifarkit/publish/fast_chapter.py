"""The fast-training chapter's text and tables that depend on what exists: the ladder at the
recipe's own budget, the time-to-accuracy benchmark files and the throughput figures.

Each ``*_view`` function returns the objects the chapter displays, in order (tables and
Markdown), so the notebook only calls and displays: ``display(*fast_chapter.speed_view())``.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from IPython.display import Markdown

from cifarkit.studies import ladder
from cifarkit.studies.plan import budget_text

#: cifarkit's model against a reference implementation's, as measured by the throughput
#: tools: (model, reference, precision, memory format). airbench against airbench94's own
#: PyTorch code; ResNet20 against a PyTorch ResNet20 in each layout and precision
#: (``tools/*_torch_throughput.py``).
FRAMEWORK_PAIRS: tuple[tuple[str, str, str, str | None], ...] = (
    ("airbench", "airbench94", "float32", None),
    ("resnet20", "resnet20", "float32", "nchw"),
    ("resnet20", "resnet20", "float32", "channels_last"),
    ("resnet20", "resnet20", "bfloat16", "channels_last"),
)


def full_ladder(profile: str, seeds: int, common: Mapping[str, Any]) -> tuple[str, list[Any]]:
    """The ladder at the recipe's own budget, where its runs exist (it is never trained here):
    the sentence that states its budget and how many steps have runs, and what to display
    under it (its table, the commands for missing steps, its sentences). ``common`` is the
    chapter's own budget; when it is empty the chapter's ladder already is the recipe's."""
    if not common:
        return "The ladder above is the recipe's own budget.", []
    full = ladder.run_ladder(profile, seeds, train=0)
    if full.comparison is None:
        return (
            f"No step has runs at the recipe's own budget yet; `cifarkit bench ladder --profile {profile} "
            f"--seeds {seeds}` makes them (each step is a whole airbench training, about as long as the "
            "time-to-accuracy benchmark's seeds below)."
        ), []
    final = ladder.ladder_configs(profile)[full.steps[-1]]
    text = f"{budget_text([(final, s) for s in range(seeds)])} (each step); {full.status()}"
    shown: list[Any] = [full.summary_table()]
    if full.missing:
        shown.append(Markdown(full.missing_note(profile)))
    shown.append(Markdown(full.text()))
    return text, shown


def time_to_accuracy_view(profile: str) -> list[Any]:
    """The time-to-accuracy section: every benchmark file of ``profile`` (one table), a line
    per result, and each result's seeds; or the command that makes one."""
    from cifarkit.bench import time_to_accuracy as tta

    results = tta.load_results(profile)
    if not results:
        return [
            Markdown(
                f"No time-to-accuracy result for profile {profile} yet. Make one with "
                f"`cifarkit bench time-to-accuracy airbench --profile {profile} --target 90.7 --seeds 3` "
                "(add `--set data.val_per_class=100` to train on 49,000 images as airbench does on 50,000)."
            )
        ]
    shown: list[Any] = [
        tta.results_table(results).set_index(["experiment", "config"]),
        Markdown("\n".join(f"- {tta.headline(r)}" for r in results)),
    ]
    for r in results:
        shown += [
            Markdown(
                f"**{r.experiment}**, configuration {r.config_hash[:12]} "
                f"(changes: {tta.config_changes(r)}), seed by seed:"
            ),
            tta.seeds_table(r),
        ]
    return shown


def speed_view() -> list[Any]:
    """The speed section: every throughput file (one table) and, for each pair of
    :data:`FRAMEWORK_PAIRS` measured on the same CPU, one sentence; or the command that
    makes a measurement."""
    from cifarkit.bench import throughput

    speeds = throughput.load_throughputs()
    if speeds.empty:
        return [
            Markdown(
                "No throughput measurement yet. Make one with "
                "`cifarkit bench throughput --model airbench --augment-mode batch`."
            )
        ]
    shown: list[Any] = [
        speeds.round({"model alone (img/s)": 0, "real pipeline (img/s)": 0, "ratio": 2})
    ]
    sentences = [
        s for s in (throughput.framework_comparison(speeds, *pair) for pair in FRAMEWORK_PAIRS) if s
    ]
    if sentences:
        shown.append(Markdown("\n".join(f"- {s}" for s in sentences)))
    return shown
