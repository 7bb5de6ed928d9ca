"""Build the report: execute each chapter with papermill (content-keyed cache), then jupyter-book.

``cifarkit book build --profile smoke|cpu|full`` and
``cifarkit book chapter NAME --params "k=v ..."`` (``make book``, ``make chapter``). Steps:

1. **Preflight**: the data is reachable, the ``cifarkit`` Jupyter kernel is installed and
   there is free disk space. Every missing item is one line; exit code 2.
2. **Execute** the chapters, i.e. the notebooks the ``_toc.yml`` names, in toc order
   (markdown pages are only copied). Each chapter has a cache key: SHA-256 over its
   *components* (:data:`COMPONENTS`): the notebook's cell sources and tags (outputs
   ignored), the source of every ``cifarkit/**/*.py``, the parameters (profile and
   ``--params``), the resolved configs of every experiment under the profile, the data's
   content hash and ``requirements.lock``. A chapter whose executed notebook under
   ``artifacts/book/executed/<profile>/`` carries the same key is not run again;
   otherwise papermill runs it in a temp file that is renamed into place only on success,
   and the key file (``<chapter>.key.json``, beside the notebook, holding the components
   so the summary can say *why* a chapter re-ran) is written last. The old key file is
   removed before the new notebook is moved in, so a kill at any point leaves either a
   consistent pair or a chapter that re-runs.
3. A chapter that raises stops the build: one line names the chapter, the cell and the
   exception, the executed notebook is kept under ``artifacts/book/failed/<profile>/``,
   exit code 1. No site is built with a broken page.
4. **Assemble** ``artifacts/book/site-src/<profile>/`` (``_config.yml``, ``_toc.yml``,
   markdown pages and other files beside them, executed notebooks at the toc's paths;
   unchanged files keep their mtime so Sphinx rebuilds only what changed) and run
   ``jupyter-book build -W --keep-going`` on it, with notebook execution off, writing
   ``<repo>/_build/html``.
5. Print a summary table: chapter, cached/executed/failed, wall time, reason.

``--chapter NAME`` executes that chapter only. Every other chapter is shown as it is
stored: cached when fresh; when stale, its last executed notebook with a note naming
why it is out of date; when never executed under the profile, a stand-in page that says
so and gives the command. No other chapter is executed (so no other chapter trains).

One build at a time per artifacts folder: a ``filelock`` on ``artifacts/book/.lock``
(released by the kernel if the holder dies); a second build waits and says so.
"""

from __future__ import annotations

import contextlib
import dataclasses
import json
import logging
import os
import sys
import time
from collections.abc import Iterator, Mapping, Sequence
from pathlib import Path
from typing import Any

from cifarkit.core.atomic import write_json
from cifarkit.core.errors import ConfigError
from cifarkit.core.paths import artifacts_dir, project_root
from cifarkit.publish.costs import ChapterResult, PlanCost, execution_estimates, record_build
from cifarkit.publish.execute import ChapterFailed, execute_chapter, remove_stale_temps
from cifarkit.publish.keys import (
    Store,
    cache_key,
    canonical_json,
    chapter_components,
    execution_order,
    shared_components,
    status_of,
)
from cifarkit.publish.preflight import preflight
from cifarkit.publish.site import (
    SiteBuildFailed,
    assemble_site_source,
    build_site,
    notebook_with_note,
    site_stamp,
    stand_in_notebook,
    write_stand_in,
)
from cifarkit.publish.toc import (
    BuildError,
    Page,
    chapters_of,
    find_chapter,
    notebook_parameters,
    read_toc,
    resolved_parameters,
    validate_params,
)
from cifarkit.runs import remote

log = logging.getLogger(__name__)


def format_summary(results: Sequence[ChapterResult]) -> str:
    """A plain-text table: chapter, status, wall time, reason."""
    header = ("chapter", "status", "time", "reason")
    rows = [(r.name, r.status, f"{r.seconds:.1f} s", r.reason) for r in results]
    widths = [max(len(str(row[i])) for row in [header, *rows]) for i in range(4)]

    def line(cells: Sequence[str]) -> str:
        return "  ".join(f"{cell:<{w}}" for cell, w in zip(cells, widths, strict=True))

    out = [line(header), line(["-" * w for w in widths])]
    out += [line(row) for row in rows]
    return "\n".join(s.rstrip() for s in out)


@dataclasses.dataclass
class Options:
    profile: str
    chapter: str | None = None
    params: dict[str, Any] = dataclasses.field(default_factory=dict)
    root: Path = dataclasses.field(default_factory=project_root)
    output: Path = dataclasses.field(default_factory=project_root)
    strict: bool = True
    expect_cached: bool = False
    no_train: bool = False  # chapters only read the run store: a missing run fails with its command
    plan: bool = True  # train the study plan's missing runs before executing any chapter
    push: bool = False  # push every complete local run to the remote after the build
    remote: str | None = None  # the remote run store's URL (default $CIFARKIT_REMOTE)
    runner: str = "local"  # where the plan's missing runs train: "local" or "ray"
    address: str | None = None  # the Ray cluster, with runner "ray"
    jobs: int | None = None  # local runner: runs trained at once (None: the plan decides)


@contextlib.contextmanager
def build_lock(path: Path) -> Iterator[None]:
    """Hold an flock on ``path`` for the build; wait (and say so) while another build has it."""
    from filelock import FileLock, Timeout

    path.parent.mkdir(parents=True, exist_ok=True)
    lock = FileLock(str(path))
    try:
        lock.acquire(timeout=0)
    except Timeout:
        log.info("another book build holds %s; waiting for it to finish", path)
        started = time.perf_counter()
        lock.acquire()
        log.info("got the book lock after %.0f s", time.perf_counter() - started)
    try:
        yield
    finally:
        lock.release()


def run(opts: Options) -> list[ChapterResult]:
    """The whole build (see the module docstring). Raises :class:`ChapterFailed`,
    :class:`SiteBuildFailed` or :class:`CifarkitError`; returns the per-chapter results."""
    root = opts.root.resolve()
    pages, chapters, target, accepted = _checked_chapters(opts, root)
    source, problems = preflight()
    if problems:
        raise BuildError("preflight failed:\n  " + "\n  ".join(problems))

    remote_url, push = remote.book_remote(opts.remote, opts.push)
    store = Store(artifacts_dir() / "book", opts.profile)
    results: list[ChapterResult] = []
    started = time.perf_counter()
    with build_lock(store.lock_path):
        remove_stale_temps(store)
        if remote_url:  # before any chapter: a run the remote holds is not trained here
            remote.pull_for_build(remote_url, push)
        cost = (
            _train_the_plan(opts, [p.name for p in chapters])
            if opts.plan and not opts.expect_cached
            else None
        )
        # After the plan every run the chapters need exists: a chapter that trains is a bug.
        env = kernel_environment(source, no_train=opts.no_train or cost is not None)
        log.info(
            "profile %s: %d chapter(s): %s",
            opts.profile,
            len(chapters),
            ", ".join(p.name for p in chapters) or "(none)",
        )
        log.info("hashing sources, configs and data for the cache keys ...")
        shared = shared_components(opts.profile, source)
        ordered = execution_order(chapters)
        substitutes: dict[str, Path] = {}
        for i, page in enumerate(ordered):
            parameters = resolved_parameters(
                opts.profile, opts.params if page is target else {}, accepted[page.docname]
            )
            step = f"[{i + 1}/{len(chapters)}] {page.name}"
            try:
                result = _chapter(
                    page, target, parameters, shared, store, opts, substitutes, step, env
                )
            except ChapterFailed as exc:
                results.append(exc.result or ChapterResult(page.name, "failed"))
                results += [ChapterResult(p.name, "not run") for p in ordered[i + 1 :]]
                _emit_summary(results)
                raise
            results.append(result)
        _site(root, pages, store, substitutes, shared, opts, results)
        seconds = time.perf_counter() - started
        record_build(opts.profile, opts.chapter, results, seconds, cost)
    _emit_summary(results)
    if cost is not None:
        sys.stdout.write("\n" + cost.report(results, seconds / 60) + "\n")
    if push:
        remote.push_after_build(remote_url)
    return results


def kernel_environment(source: str | None, *, no_train: bool) -> dict[str, str]:
    """The environment the chapters' kernels start with: this process's, with absolute
    locations of the data and the artifacts (whatever the kernel's working directory), and
    ``CIFARKIT_NO_TRAIN=1`` when the chapters must only read the run store. This process's
    own environment is left as it is."""
    from cifarkit.runs.store import NO_TRAIN_ENV

    env = dict(os.environ)
    if source is not None:
        env["CIFARKIT_DATA"] = str(Path(source).resolve())
    env["CIFARKIT_ARTIFACTS"] = str(artifacts_dir())
    if no_train:
        env[NO_TRAIN_ENV] = "1"
    return env


def _train_the_plan(opts: Options, names: Sequence[str]) -> PlanCost | None:
    """Print the study plan of this build (the book, or ``--chapter`` with its ``--params``) and
    train its missing runs before any chapter executes, so no chapter trains. Returns the
    estimated and actual minutes per chapter."""
    from cifarkit.studies import plan as study
    from cifarkit.studies import pricing
    from cifarkit.studies.runner import check_runner, train_plan

    chapter = opts.chapter if opts.chapter in study.CHAPTERS else None
    if (opts.chapter is not None and chapter is None) or not set(names) & set(study.CHAPTERS):
        return None  # chapters that train nothing
    if not opts.no_train:  # an unreachable cluster fails here, not after the speed probes
        check_runner(opts.runner, address=opts.address, jobs=opts.jobs)
    planned = study.study_plan(
        opts.profile, chapter, opts.params if chapter else None, chapters=names
    )
    probing = time.perf_counter()
    speeds = pricing.measured_speeds(planned)
    probe_minutes = (time.perf_counter() - probing) / 60
    table = pricing.plan_table(planned, speeds)
    log.info("study plan:\n%s", table.to_string(index=False, float_format=lambda x: f"{x:.1f}"))
    log.info("study plan: %s", pricing.total_text(planned, speeds))
    from cifarkit.studies import power

    powered, errors = power.plan_power(
        opts.profile, chapter, opts.params if chapter else None, chapters=names
    )
    if not powered.empty:
        log.info(
            "primary comparisons: what each can detect at this budget:\n%s\n%s",
            powered.to_string(index=False),
            power.power_text(powered),
        )
    for line in errors:
        log.warning("%s", line)
    executing = [opts.chapter] if opts.chapter else list(names)
    cost = PlanCost(
        {},
        pricing.chapter_minutes(planned, speeds),
        {},
        execution_estimates(opts.profile, executing),
        probe_minutes,
    )
    timed = [n for n in executing if n in cost.execute_estimated]
    log.info(
        "chapters: %s",
        f"about {sum(cost.execute_estimated[n] for n in timed):.0f} min to execute "
        "(at most, as at their last execution on this machine)"
        if len(timed) == len(executing)
        else f"{len(executing) - len(timed)} of {len(executing)} not yet timed on this machine "
        "(a first build here); the build's last lines give their minutes",
    )
    if opts.no_train:  # --no-train: the first missing run stops the build, with its command
        from cifarkit.runs import stored_run

        for e in planned:
            if not e.complete:
                stored_run(e.config, e.seed)
        return cost
    first_chapter = {e.folder: e.chapters[0] for e in planned}
    training = time.perf_counter()
    trained = train_plan(
        planned,
        speeds,
        runner=opts.runner,
        address=opts.address,
        jobs=opts.jobs,
        remote_url=remote.configured_url(opts.remote) if opts.runner == "ray" else None,
    )
    cost.train_wall_minutes = (time.perf_counter() - training) / 60
    for folder, minutes in trained.items():
        name = first_chapter[folder]
        cost.actual[name] = cost.actual.get(name, 0.0) + minutes
        cost.trained[name] = cost.trained.get(name, 0) + 1
    return cost


def _checked_chapters(
    opts: Options, root: Path
) -> tuple[list[Page], list[Page], Page | None, dict[str, list[str]]]:
    """Profile, chapter and parameters checked before any slow step: a typo fails at once."""
    from cifarkit.core.config import available

    if opts.profile not in available("profiles"):
        raise ConfigError(
            f"unknown profile {opts.profile!r}; choose one of: {', '.join(available('profiles'))}"
        )
    pages = read_toc(root)
    chapters = chapters_of(pages)
    target = find_chapter(pages, opts.chapter) if opts.chapter is not None else None
    if opts.params and target is None:
        raise BuildError("--params needs --chapter NAME: parameters go to one chapter")
    if "profile" in opts.params:
        raise BuildError(
            "--params: set the profile with --profile (make PROFILE=...), not --params"
        )
    accepted = {page.docname: list(notebook_parameters(page.source)) for page in chapters}
    if target is not None:
        validate_params(target, opts.params, accepted[target.docname])
    for page in chapters:
        if "profile" not in accepted[page.docname]:
            log.warning(
                "chapter %s has no 'profile' parameter; it cannot follow --profile", page.name
            )
    return pages, chapters, target, accepted


def _chapter(
    page: Page,
    target: Page | None,
    parameters: Mapping[str, Any],
    shared: Mapping[str, Any],
    store: Store,
    opts: Options,
    substitutes: dict[str, Path],
    step: str,
    env: Mapping[str, str],
) -> ChapterResult:
    """One chapter: cached, shown without executing (``--chapter`` names another), or executed."""
    components = chapter_components(page, parameters, shared)
    fresh, reasons = status_of(store, page, components)
    if page is target:
        reasons = ["requested with --chapter"] + ([] if fresh else reasons)
        fresh = False
    if not fresh and opts.expect_cached:
        raise BuildError(
            f"chapter {page.name} is not cached ({'; '.join(reasons)}); "
            "run the build without --expect-cached to execute it"
        )
    if fresh:
        log.info("%s: cached", step)
        return ChapterResult(page.name, "cached", 0.0, "up to date")
    if target is not None and page is not target:
        result, substitutes[page.relpath] = _shown_without_executing(
            page, store, opts.profile, reasons
        )
        log.info(
            "%s: %s (--chapter %s executes only that one): %s",
            step,
            result.status,
            target.name,
            result.reason,
        )
        return result
    reason = "; ".join(reasons)
    log.info("%s: executing (%s) with %s", step, reason, canonical_json(parameters))
    started = time.perf_counter()

    def record() -> dict[str, Any]:
        # recomputed after execution: the chapter may itself have added runs
        after = chapter_components(page, parameters, shared)
        return {
            "key": cache_key(after),
            "components": after,
            "chapter": page.name,
            "source": page.relpath,
        }

    try:
        execute_chapter(page, parameters, store, record_extra=record, env=env)
    except ChapterFailed as exc:
        exc.result = ChapterResult(page.name, "failed", time.perf_counter() - started, reason)
        raise
    seconds = time.perf_counter() - started
    log.info("%s: executed in %.1f s", step, seconds)
    return ChapterResult(page.name, "executed", seconds, reason)


def _site(
    root: Path,
    pages: Sequence[Page],
    store: Store,
    substitutes: Mapping[str, Path],
    shared: Mapping[str, Any],
    opts: Options,
    results: Sequence[ChapterResult],
) -> None:
    """Assemble the site source and build it; a full Sphinx rebuild only when it is needed."""
    staging = assemble_site_source(root, pages, store, substitutes)
    stamp = site_stamp(opts.output)
    # Sphinx re-reads only changed pages; autodoc pages change with cifarkit's source
    # (not their own file), so rebuild everything when the code, the profile or the
    # page list changed.
    stamp_data = {
        "cifarkit": shared["cifarkit"],
        "staging": str(staging),
        "pages": [p.relpath for p in pages],
    }
    try:
        full = json.loads(stamp.read_text()) != stamp_data
    except (OSError, ValueError):
        full = True
    stamp.unlink(missing_ok=True)
    try:
        build_site(staging, opts.output, strict=opts.strict, full=full)
    except SiteBuildFailed:
        _emit_summary(results)
        raise
    write_json(stamp, stamp_data)


def _shown_without_executing(
    page: Page, store: Store, profile: str, reasons: Sequence[str]
) -> tuple[ChapterResult, Path]:
    """For ``--chapter``: the page to show for another chapter that is not fresh, without
    executing it (re-executing one chapter must not run, and train, all the others)."""
    why = "; ".join(reasons)
    whole_book = f"`make book PROFILE={profile}` brings every chapter up to date"
    record, problem = store.read_record(page)
    if record is not None and problem is None:
        note = (
            f"This page is from an earlier build ({why}). Only another chapter was "
            f"re-executed; {whole_book}."
        )
        data = notebook_with_note(store.notebook(page).read_bytes(), note)
        return ChapterResult(page.name, "kept (stale)", 0.0, why), write_stand_in(store, page, data)
    note = (
        f"This chapter has not been executed under the `{profile}` profile yet. "
        f"`make chapter NAME={page.name} PROFILE={profile}` runs it alone; {whole_book}."
    )
    data = stand_in_notebook(page.source, note)
    return ChapterResult(page.name, "not executed", 0.0, why), write_stand_in(store, page, data)


def _emit_summary(results: Sequence[ChapterResult]) -> None:
    if results:
        sys.stdout.write("\n" + format_summary(results) + "\n")
        sys.stdout.flush()
