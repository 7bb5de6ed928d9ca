"""The book's pages from ``_toc.yml``, and the parameters a chapter accepts."""

from __future__ import annotations

import dataclasses
import logging
import os
import re
import shlex
from collections.abc import Iterable, Mapping, Sequence
from pathlib import Path
from typing import Any

import yaml

from cifarkit.core.errors import CifarkitError

log = logging.getLogger(__name__)


class BuildError(CifarkitError):
    """A problem with the book's sources or environment that the user can fix."""


@dataclasses.dataclass(frozen=True)
class Page:
    """One page the toc names: a chapter (notebook, executed) or a markdown page (copied)."""

    docname: str  # toc path without suffix, relative to the book root, e.g. "book/data"
    source: Path  # the file in the checkout
    kind: str  # "notebook" or "markdown"

    @property
    def name(self) -> str:
        """Short name used on the command line: the file stem, e.g. ``data``."""
        return Path(self.docname).name

    @property
    def relpath(self) -> str:
        """Path of the file relative to the book root, e.g. ``book/data.ipynb``."""
        return self.docname + self.source.suffix


_PAGE_SUFFIXES = {".ipynb": "notebook", ".md": "markdown"}
_TOC_CHILD_KEYS = ("parts", "chapters", "sections", "subtrees", "entries")


def toc_files(toc: Mapping[str, Any]) -> list[str]:
    """The ``file`` entries of a jupyter-book ``_toc.yml`` mapping, in reading order."""
    found: list[str] = []

    def walk(node: Any) -> None:
        if isinstance(node, list):
            for item in node:
                walk(item)
            return
        if not isinstance(node, dict):
            return
        if "glob" in node:
            raise BuildError(
                f"_toc.yml: glob entry {node['glob']!r} is not supported by "
                "cifarkit book build; list the files one by one"
            )
        if "file" in node:
            found.append(str(node["file"]))
        for key in _TOC_CHILD_KEYS:
            if key in node:
                walk(node[key])

    if "root" not in toc:
        raise BuildError("_toc.yml: no 'root' entry; add 'root: book/intro'")
    found.append(str(toc["root"]))
    walk({k: v for k, v in toc.items() if k != "root"})
    return found


def _resolve_page(root: Path, entry: str) -> Page:
    entry = entry.strip().lstrip("./")
    stem, suffix = os.path.splitext(entry)
    if suffix in _PAGE_SUFFIXES:
        candidates = [root / entry]
        docname = stem
    else:
        candidates = [root / f"{entry}{s}" for s in _PAGE_SUFFIXES]
        docname = entry
    existing = [c for c in candidates if c.is_file()]
    if not existing:
        tried = " or ".join(str(c.relative_to(root)) for c in candidates)
        raise BuildError(
            f"_toc.yml names {entry!r} but {tried} does not exist; create the page or fix the toc"
        )
    if len(existing) > 1:
        raise BuildError(
            f"_toc.yml entry {entry!r} is ambiguous: both "
            f"{' and '.join(str(c.relative_to(root)) for c in existing)} exist; "
            "keep one or give the suffix"
        )
    return Page(docname=docname, source=existing[0], kind=_PAGE_SUFFIXES[existing[0].suffix])


def read_toc(root: Path) -> list[Page]:
    """Every page the book's ``_toc.yml`` names, in order (no hard-coded chapter list)."""
    toc_path = root / "_toc.yml"
    if not toc_path.is_file():
        raise BuildError(f"{toc_path}: not found; the book needs a _toc.yml at its root")
    try:
        toc = yaml.safe_load(toc_path.read_text(encoding="utf-8"))
    except yaml.YAMLError as exc:
        raise BuildError(
            f"{toc_path}: malformed YAML ({str(exc).splitlines()[0]}); fix the syntax"
        ) from None
    if not isinstance(toc, dict):
        raise BuildError(f"{toc_path}: top level must be a mapping with 'root' and 'chapters'")
    pages = [_resolve_page(root, entry) for entry in toc_files(toc)]
    seen: dict[str, Page] = {}
    for page in pages:
        if page.docname in seen:
            raise BuildError(f"_toc.yml names {page.docname!r} twice; list each page once")
        seen[page.docname] = page
    chapters = [p for p in pages if p.kind == "notebook"]
    names = [p.name for p in chapters]
    dupes = sorted({n for n in names if names.count(n) > 1})
    if dupes:
        raise BuildError(
            f"chapters share the name(s) {', '.join(dupes)}; "
            "give every notebook a distinct file name"
        )
    return pages


def chapters_of(pages: Iterable[Page]) -> list[Page]:
    return [p for p in pages if p.kind == "notebook"]


def find_chapter(pages: Sequence[Page], name: str) -> Page:
    """The chapter called ``name`` (file stem, toc path or file path)."""
    chapters = chapters_of(pages)
    wanted = name.strip()
    for page in chapters:
        if wanted in (page.name, page.docname, page.relpath):
            return page
    listing = ", ".join(p.name for p in chapters) or "(none)"
    shown = repr(wanted) if wanted else "(empty; pass NAME=...)"
    raise BuildError(f"unknown chapter {shown}; chapters are: {listing}")


_IDENT = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")


def parse_params(text: str | None) -> dict[str, Any]:
    """``"seeds=5 epochs=30 name='a b'"`` -> ``{"seeds": 5, "epochs": 30, "name": "a b"}``.

    Tokens are split like a shell would; each value is read with ``yaml.safe_load`` (so
    ``5`` is an int, ``0.1`` a float, ``true`` a bool, ``[1, 2]`` a list).
    """
    if not text or not text.strip():
        return {}
    try:
        tokens = shlex.split(text)
    except ValueError as exc:
        raise BuildError(f"--params {text!r}: {exc}; write k=v pairs separated by spaces") from None
    params: dict[str, Any] = {}
    for token in tokens:
        key, sep, raw = token.partition("=")
        if not sep or not _IDENT.match(key):
            raise BuildError(
                f'--params: {token!r} is not name=value; write e.g. --params "seeds=5 epochs=30"'
            )
        try:
            value = yaml.safe_load(raw) if raw != "" else ""
        except yaml.YAMLError:
            raise BuildError(
                f"--params: cannot read the value of {key} ({raw!r}) as YAML; "
                "quote it, e.g. name='a b'"
            ) from None
        if key in params:
            raise BuildError(f"--params: {key} is given twice; give it once")
        params[key] = value
    return params


def notebook_parameters(path: Path) -> dict[str, Any]:
    """The names and defaults of a notebook's ``parameters`` cell (``papermill.inspect_notebook``)."""
    import papermill

    try:
        inspected = papermill.inspect_notebook(str(path))
    except Exception as exc:  # papermill raises plain exceptions for unreadable notebooks
        raise BuildError(f"{path}: cannot read the notebook's parameters ({exc})") from None
    return {name: info.get("default") for name, info in inspected.items()}


def validate_params(page: Page, params: Mapping[str, Any], accepted: Iterable[str]) -> None:
    """Raise :class:`BuildError` naming the accepted parameters if ``params`` has others."""
    accepted = list(accepted)
    unknown = [k for k in params if k not in accepted]
    if unknown:
        listing = ", ".join(accepted) if accepted else "(none: the notebook has no parameters cell)"
        raise BuildError(
            f"chapter {page.name} has no parameter(s) {', '.join(unknown)}; it accepts: {listing}"
        )


def resolved_parameters(
    profile: str, params: Mapping[str, Any], accepted: Iterable[str]
) -> dict[str, Any]:
    """What papermill injects: ``profile`` (when the notebook takes it) plus ``params``."""
    accepted = set(accepted)
    resolved: dict[str, Any] = {}
    if "profile" in accepted:
        resolved["profile"] = profile
    resolved.update(params)
    return resolved
