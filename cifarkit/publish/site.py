"""Assemble the site source from executed notebooks and build it with jupyter-book."""

from __future__ import annotations

import json
import logging
import os
import re
import shlex
import subprocess
import time
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from cifarkit.core.atomic import atomic_path
from cifarkit.publish.keys import Store
from cifarkit.publish.preflight import jupyter_book_command
from cifarkit.publish.toc import BuildError, Page

log = logging.getLogger(__name__)


def _notebook_text(nb: Mapping[str, Any]) -> str:
    return json.dumps(nb, indent=1, ensure_ascii=False) + "\n"


def presentable_notebook(data: bytes) -> bytes:
    """An executed notebook as the site shows it: the ``parameters`` cell (the defaults,
    not what ran) is removed and papermill's ``injected-parameters`` cell (what ran) is
    collapsed; nothing else changes."""
    nb = json.loads(data)
    for cell in nb.get("cells", []):
        tags = (cell.setdefault("metadata", {})).setdefault("tags", [])
        extra = (
            "remove-cell"
            if "parameters" in tags
            else "hide-input"
            if "injected-parameters" in tags
            else None
        )
        if extra and extra not in tags:
            tags.append(extra)
    return _notebook_text(nb).encode()


def _sync_file(src: Path, dst: Path, notice: str | None = None) -> bool:
    """Copy ``src`` to ``dst`` unless the bytes are equal (keeps the mtime Sphinx looks at);
    notebooks pass through :func:`presentable_notebook`; a page gets ``notice`` under its title."""
    data = src.read_bytes()
    if src.suffix == ".ipynb":
        data = presentable_notebook(data)
        if notice:
            data = notebook_with_note(data, notice).encode("utf-8")
    elif notice and src.suffix == ".md":
        data = markdown_with_note(data.decode("utf-8"), notice).encode("utf-8")
    if dst.is_file() and dst.read_bytes() == data:
        return False
    dst.parent.mkdir(parents=True, exist_ok=True)
    tmp = dst.with_name(f".{dst.name}.tmp")
    tmp.write_bytes(data)
    os.replace(tmp, dst)
    return True


_SKIP_DIRS = {"_build", ".ipynb_checkpoints", "__pycache__", ".jupyter_cache"}


def _title_cell_index(cells: Sequence[Mapping[str, Any]]) -> int | None:
    for i, cell in enumerate(cells):
        if cell.get("cell_type") == "markdown":
            text = "".join(cell.get("source", ""))
            return i if text.lstrip().startswith("# ") else None
    return None


def _note_cell(text: str) -> dict[str, Any]:
    return {
        "cell_type": "markdown",
        "metadata": {"tags": ["cifarkit-stand-in-note"]},
        "source": f"```{{note}}\n{text}\n```",
    }


#: Profiles whose every page carries a notice at its top, and the notice.
PROFILE_NOTICES: dict[str, str] = {
    "smoke": (
        "This page was built with the `smoke` profile: a few hundred training images, a few "
        "epochs and two seeds, so its numbers only show that the code runs; they say nothing "
        "about the models. `make book` builds the report with the default profile."
    ),
}


def markdown_with_note(text: str, note: str) -> str:
    """A markdown page with a MyST note right under its first heading (or first, if none)."""
    lines = text.splitlines(keepends=True)
    at = next((i + 1 for i, line in enumerate(lines) if line.startswith("# ")), 0)
    block = f"\n```{{note}}\n{note}\n```\n\n"
    return "".join(lines[:at]) + block + "".join(lines[at:])


def notebook_with_note(data: bytes, text: str) -> str:
    """The notebook with a MyST note right under its title (or first, if it has none)."""
    nb = json.loads(data)
    cells = nb.setdefault("cells", [])
    title = _title_cell_index(cells)
    cells.insert(0 if title is None else title + 1, _note_cell(text))
    return _notebook_text(nb)


def stand_in_notebook(source: Path, text: str) -> str:
    """A page for a chapter never executed under the profile: its title and a note, no code
    (the site shows executed chapters only; a source notebook would look like results)."""
    nb = json.loads(source.read_text(encoding="utf-8"))
    cells = nb.get("cells", [])
    title = _title_cell_index(cells)
    heading = (
        "".join(cells[title]["source"]).lstrip().splitlines()[0]
        if title is not None
        else f"# {source.stem}"
    )
    stand_in = {
        "cells": [{"cell_type": "markdown", "metadata": {}, "source": heading}, _note_cell(text)],
        "metadata": nb.get("metadata", {}),
        "nbformat": nb.get("nbformat", 4),
        "nbformat_minor": nb.get("nbformat_minor", 5),
    }
    return _notebook_text(stand_in)


def write_stand_in(store: Store, page: Page, text: str) -> Path:
    """Write a shown-instead notebook for ``page`` (atomically) and return its path."""
    path = store.stand_in_dir / f"{page.docname}.ipynb"
    with atomic_path(path) as tmp:
        tmp.write_text(text, encoding="utf-8")  # notebooks are UTF-8 whatever the locale
    return path


def staging_plan(
    root: Path, pages: Sequence[Page], store: Store, substitutes: Mapping[str, Path] | None = None
) -> dict[str, Path]:
    """``{relative path in the staging tree: file to copy}`` for the site build.

    ``_config.yml``, ``_toc.yml``, ``_static/`` (custom CSS), every markdown page, the
    executed notebook of every chapter, and the other files (images, ``.bib``...) in the
    folders holding pages.
    Source notebooks are never copied: only their executed versions, or the stand-in
    ``substitutes`` gives for a chapter (by toc path) that ``--chapter`` did not execute.
    """
    plan: dict[str, Path] = {"_config.yml": root / "_config.yml", "_toc.yml": root / "_toc.yml"}
    folders = {page.source.parent for page in pages}
    for folder in sorted(folders):
        for path in sorted(folder.rglob("*")):
            rel_parts = path.relative_to(root).parts
            if (
                not path.is_file()
                or any(p in _SKIP_DIRS or p.startswith(".") for p in rel_parts)
                or path.suffix == ".ipynb"
            ):
                continue
            plan[path.relative_to(root).as_posix()] = path
    for page in pages:
        if page.kind == "notebook":
            plan[page.relpath] = (substitutes or {}).get(page.relpath, store.notebook(page))
    for bib in root.glob("*.bib"):
        plan.setdefault(bib.name, bib)
    static = root / "_static"  # custom CSS, which jupyter-book includes from the book root
    if static.is_dir():
        for path in sorted(static.rglob("*")):
            if path.is_file():
                plan.setdefault(path.relative_to(root).as_posix(), path)
    return plan


def assemble_site_source(
    root: Path, pages: Sequence[Page], store: Store, substitutes: Mapping[str, Path] | None = None
) -> Path:
    """Mirror :func:`staging_plan` into ``store.site_src``; remove files no longer planned."""
    staging = store.site_src
    plan = staging_plan(root, pages, store, substitutes)
    staging.mkdir(parents=True, exist_ok=True)
    notice = PROFILE_NOTICES.get(store.profile)
    page_paths = {page.relpath for page in pages}
    changed = sum(
        _sync_file(src, staging / rel, notice if rel in page_paths else None)
        for rel, src in plan.items()
    )
    for path in sorted(staging.rglob("*"), reverse=True):
        rel = path.relative_to(staging).as_posix()
        if path.is_file() and rel not in plan:
            path.unlink()
        elif path.is_dir() and not any(path.iterdir()):
            path.rmdir()
    log.info("site source: %d files in %s (%d updated)", len(plan), staging, changed)
    return staging


def build_site(staging: Path, output: Path, *, strict: bool = True, full: bool = False) -> Path:
    """``jupyter-book build`` the staging tree into ``output/_build/html``; raise on failure."""
    command = jupyter_book_command()
    if command is None:
        raise BuildError("jupyter-book is not installed in this environment; run `make venv`")
    args = [*command, "build", str(staging), "--path-output", str(output), "--builder", "html"]
    if strict:
        args += ["-W", "--keep-going"]
    if full:
        args.append("--all")
    output.mkdir(parents=True, exist_ok=True)
    log_file = staging.parent / f"jupyter-book-{staging.name}.log"
    log.info("building the site: %s", " ".join(shlex.quote(a) for a in args))
    started = time.perf_counter()
    with open(log_file, "w", encoding="utf-8") as fh:
        result = subprocess.run(
            args,
            stdout=fh,
            stderr=subprocess.STDOUT,
            cwd=output,
            env={**os.environ, "PYTHONUNBUFFERED": "1", "NO_COLOR": "1"},
        )
    text = _ANSI.sub("", log_file.read_text(encoding="utf-8", errors="replace"))
    problems = [
        line for line in text.splitlines() if re.search(r"WARNING|ERROR|Error|Traceback", line)
    ]
    if result.returncode != 0:
        for line in problems[:20]:
            log.error("jupyter-book: %s", line.strip())
        raise SiteBuildFailed(
            f"jupyter-book build failed (exit {result.returncode}); "
            f"{len(problems)} warning/error line(s) above, full log: {log_file}"
        )
    for line in problems[:20]:
        log.warning("jupyter-book: %s", line.strip())
    index = output / "_build" / "html" / "index.html"
    log.info("site built in %.1f s: %s", time.perf_counter() - started, index)
    return index


_ANSI = re.compile(r"\x1b\[[0-9;]*[A-Za-z]")


class SiteBuildFailed(Exception):
    """jupyter-book exited non-zero (a warning with -W, a broken page ...)."""


def site_stamp(output: Path) -> Path:
    return output / "_build" / ".cifarkit-site.json"
