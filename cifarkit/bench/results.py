"""Every kept benchmark result as tables: what ``cifarkit bench results`` prints and
``docs/benchmarks.md`` holds."""

from __future__ import annotations

import pandas as pd


def results_tables(profile: str | None = None, markdown: bool = True) -> str | None:
    """Every kept time-to-accuracy and throughput result as tables, or None if there are none.

    Parameters
    ----------
    profile : str, optional
        Only this profile's time-to-accuracy results (default: all).
    markdown : bool, default True
        Markdown tables; plain text otherwise.
    """
    from cifarkit.bench.throughput import load_throughputs
    from cifarkit.bench.time_to_accuracy import load_results, results_table, seeds_table

    def show(table: pd.DataFrame) -> str:
        # A figure a row does not have (a reference framework's pipeline speed) shows as "-", not nan.
        if not markdown:
            return table.to_string(na_rep="-")
        return table.astype(object).where(table.notna(), None).to_markdown(missingval="-")

    parts = []
    results = load_results(profile)
    with pd.option_context("display.width", 200, "display.max_columns", 30):
        if results:
            parts += [
                "## Time to accuracy (one row per config; mean ± std over seeds)",
                "",
                show(results_table(results).set_index("experiment")),
                "",
            ]
            for r in results:
                parts += [
                    f"### {r.experiment} {r.config_hash[:12]} ({r.profile}), target {r.target:.1%}: "
                    "per seed",
                    "",
                    show(seeds_table(r)),
                    "",
                ]
        from cifarkit.bench.engine import engine_table, latest_result, machine_text

        engine = latest_result()
        if engine is not None:
            parts += [
                "## The training engine side by side (img/s: median and range over interleaved repeats)",
                "",
                machine_text(engine) + ".",
                "",
                show(engine_table(engine).set_index("arm")),
                "",
            ]
        from cifarkit.bench import precision

        compared = precision.latest_result()
        if compared is not None:
            parts += [
                "## bfloat16 against float32 (test accuracy, the same seeds in each precision)",
                "",
                precision.machine_text(compared) + ".",
                "",
                show(precision.precision_table(compared).set_index("experiment")),
                "",
                *(f"- {row['experiment']}: {row['sentence']}" for row in compared["experiments"]),
                "",
            ]
        throughputs = load_throughputs()
        if not throughputs.empty:
            parts += [
                "## Training throughput (img/s)",
                "",
                show(
                    throughputs.set_index("experiment").round(
                        {"model alone (img/s)": 0, "real pipeline (img/s)": 0, "ratio": 2}
                    )
                ),
                "",
            ]
    return "\n".join(parts) if parts else None
