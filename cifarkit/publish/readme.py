"""The README's measured figures and ``docs/benchmarks.md``, generated from stored results.

Measured numbers are never typed into the documents: ``cifarkit docs update`` (``make docs``)
rewrites the README's generated blocks (between ``<!-- generated: NAME -->`` and
``<!-- end generated -->``) and ``docs/benchmarks.md`` from what this machine's
``artifacts/`` holds: the book builds' own records (:func:`cifarkit.publish.costs.record_build`),
the headline experiments' complete runs, and the kept benchmark results.
"""

from __future__ import annotations

import datetime as dt
import json
import re
from collections.abc import Callable, Mapping
from pathlib import Path

from cifarkit.core.atomic import write_text
from cifarkit.core.errors import CifarkitError
from cifarkit.publish.costs import builds_file

# The experiments the README's headline table shows, and the profiles it may show them for
# (the smoke profile's numbers only exercise the code, so they are never a headline).
HEADLINE_EXPERIMENTS: tuple[str, ...] = ("baseline_cnn", "resnet20")
HEADLINE_PROFILES: tuple[str, ...] = ("cpu", "full")
BOOK_PROFILES: tuple[str, ...] = ("smoke", "cpu", "full")
_BLOCK = re.compile(r"(<!-- generated: (?P<name>[a-z-]+) -->\n).*?(<!-- end generated -->)", re.S)


def _minutes(seconds: float) -> str:
    return f"{seconds / 60:.1f} min"


def _machine(record: Mapping) -> str:
    m = record.get("machine", {})
    return f"{m.get('cpu') or 'unknown CPU'} ({m.get('cpu_isa') or '?'}, {m.get('cpu_count') or '?'} cores)"


def costs_block() -> str:
    """Per profile: the last cold build (every chapter executed and the plan's runs trained) and
    the last warm one (all cached). A build that executed every chapter from runs already
    stored (after a change of the package's source) is neither."""
    rows = []
    for profile in BOOK_PROFILES:
        try:
            history = json.loads(builds_file(profile).read_text())
        except (OSError, ValueError):
            continue
        whole = [b for b in history if b.get("chapter") is None]
        cold = [
            b
            for b in whole
            if b["executed"] and not b["cached"] and (b.get("plan_minutes") or {}).get("actual")
        ]
        warm = [b for b in whole if not b["executed"]]
        for kind, builds in (("cold (nothing cached)", cold), ("warm (everything cached)", warm)):
            if builds:
                b = builds[-1]
                rows.append(
                    f"| `make book PROFILE={profile}` | {kind} | {_minutes(b['seconds'])} | "
                    f"{_machine(b)} | {b['finished_at'][:10]} |"
                )
    if not rows:
        return (
            "No book build is recorded in this machine's `artifacts/` yet; `make book` records "
            "its wall time and `make docs` writes it here.\n"
        )
    return (
        "\n".join(
            ["| command | build | wall time | machine | date |", "|---|---|---|---|---|", *rows]
        )
        + "\n"
    )


def headline_block() -> str:
    """Test accuracy over seeds of :data:`HEADLINE_EXPERIMENTS`, for each non-smoke profile with runs."""
    from cifarkit.core.config import load_config
    from cifarkit.evaluation.stats import interval_text, summarise
    from cifarkit.runs import Run, list_runs, runs_root

    rows = []
    complete = [r for r in list_runs() if r["status"] == "complete"]
    for profile in HEADLINE_PROFILES:
        for experiment in HEADLINE_EXPERIMENTS:
            # the experiment's own config under the profile (the baseline chapter's runs), not the
            # ablation or transfer variants that share its experiment name
            config_hash = load_config(experiment, profile).content_hash()
            same = [
                r
                for r in complete
                if r["experiment"] == experiment
                and r["profile"] == profile
                and r["config_hash"] == config_hash
            ]
            if not same:
                continue
            s = summarise([r["test_accuracy"] for r in same])
            cfg = Run(runs_root() / same[-1]["run"]).config()
            rows.append(
                f"| {experiment} | `{profile}` | {s.n} | {s.mean * 100:.2f}% | "
                f"{interval_text(s.low, s.high, missing='n/a (1 seed)')} | {cfg.train.epochs} |"
            )
    if not rows:
        return (
            "No complete run of the default (`cpu`) or `full` profile is stored on the machine that "
            "generated this file, so there is no headline to show; `make book` trains them and "
            "`make docs` writes their test accuracy here. Every measurement, with its interval, "
            "is in the report's chapters.\n"
        )
    return (
        "\n".join(
            [
                "| model | profile | seeds | test accuracy (mean) | 95% interval over seeds | epochs |",
                "|---|---|---|---|---|---|",
                *rows,
            ]
        )
        + "\n"
    )


def fill_blocks(text: str, blocks: Mapping[str, Callable[[], str]]) -> str:
    """``text`` with each generated block replaced by its function's output; unknown names refused."""

    def replace(match: re.Match) -> str:
        name = match["name"]
        if name not in blocks:
            raise CifarkitError(
                f"README block {name!r} has no generator; use one of: {', '.join(blocks)}"
            )
        return match.group(1) + blocks[name]() + match.group(3)

    return _BLOCK.sub(replace, text)


def update_readme(path: Path) -> Path:
    """Rewrite the generated blocks of the README at ``path`` in place (atomically)."""
    text = path.read_text()
    if not _BLOCK.search(text):
        raise CifarkitError(f"{path} has no '<!-- generated: NAME -->' block; nothing to update")
    write_text(path, fill_blocks(text, {"costs": costs_block, "headline": headline_block}))
    return path


def benchmarks_markdown(tables: str | None) -> str:
    """The text of ``docs/benchmarks.md``: a dated header, then ``cifarkit bench results --markdown``."""
    today = dt.date.today().isoformat()
    head = [
        "# Benchmarks",
        "",
        f"Generated on {today} by `cifarkit docs update` from the results kept under "
        "`artifacts/bench/` on the machine that ran it (each table names the CPU and date of "
        "every measurement). Regenerate it rather than editing it.",
        "",
    ]
    body = tables if tables else "No benchmark results were stored on that machine.\n"
    return "\n".join(head) + "\n" + body
