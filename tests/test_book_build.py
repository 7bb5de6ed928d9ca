"""cifarkit.publish.build: toc parsing, parameters, cache keys and reasons, the executed-notebook
store, failures, the build lock, and (marked) real papermill / jupyter-book runs."""

from __future__ import annotations

import json
import logging
import os
import shutil
import subprocess
import sys
import threading
import time
from pathlib import Path

import nbformat
import pytest
from nbformat.v4 import new_code_cell, new_markdown_cell, new_notebook

from cifarkit.cli import main as cli_main
from cifarkit.core.errors import CifarkitError
from cifarkit.core.paths import project_root
from cifarkit.core.startup import KERNEL_START
from cifarkit.publish import build as bb
from cifarkit.publish import execute, keys
from cifarkit.publish import preflight as pf
from cifarkit.publish import site as pub_site
from cifarkit.publish import toc as pub_toc

ROOT = project_root()


# --------------------------------------------------------------------------- helpers


def write_nb(path: Path, *cells, parameters: str | None = 'profile = "cpu"') -> Path:
    items = []
    if parameters is not None:
        cell = new_code_cell(parameters)
        cell.metadata["tags"] = ["parameters"]
        items.append(cell)
    for cell in cells:
        items.append(new_code_cell(cell) if isinstance(cell, str) else cell)
    nb = new_notebook(
        cells=items,
        metadata={
            "kernelspec": {
                "name": "cifarkit",
                "display_name": "Python (cifarkit)",
                "language": "python",
            }
        },
    )
    path.parent.mkdir(parents=True, exist_ok=True)
    nbformat.write(nb, path)
    return path


def book_build_command(root: Path, *options: str) -> list[str]:
    """``cifarkit book build --profile smoke --root ROOT [options]``, as a subprocess command."""
    return [
        sys.executable,
        "-m",
        "cifarkit.cli",
        "book",
        "build",
        "--profile",
        "smoke",
        "--root",
        str(root),
        *options,
    ]


def make_book(root: Path, chapters: dict[str, list], toc_extra: str = "") -> Path:
    """A tiny book: intro.md plus one notebook per chapter under book/."""
    (root / "book").mkdir(parents=True, exist_ok=True)
    (root / "book" / "intro.md").write_text("# Intro\n\nHello.\n")
    (root / "_config.yml").write_text(
        'title: test\nexecute:\n  execute_notebooks: "off"\nonly_build_toc_files: true\n'
    )
    lines = ["format: jb-book", "root: book/intro", "chapters:"]
    for name, cells in chapters.items():
        write_nb(root / "book" / f"{name}.ipynb", *cells)
        lines.append(f"  - file: book/{name}")
    (root / "_toc.yml").write_text("\n".join(lines) + "\n" + toc_extra)
    return root


def components(**over):
    base = {
        "notebook": "n1",
        "cifarkit": "c1",
        "parameters": {"profile": "smoke"},
        "configs": {"resnet20": "h1"},
        "data": "d1",
        "lock": "l1",
    }
    base.update(over)
    return base


def kernel_available() -> bool:
    from jupyter_client.kernelspec import KernelSpecManager

    return execute.KERNEL_NAME in KernelSpecManager().find_kernel_specs()


needs_kernel = pytest.mark.skipif(
    not kernel_available(), reason="the 'cifarkit' Jupyter kernel is not installed (make venv)"
)


# --------------------------------------------------------------------------- toc


def test_toc_files_order_and_nesting():
    toc = {
        "format": "jb-book",
        "root": "book/intro",
        "parts": [
            {
                "caption": "A",
                "chapters": [
                    {"file": "book/data", "sections": [{"file": "book/data_more"}]},
                    {"url": "https://example.org", "title": "x"},
                ],
            },
            {"caption": "B", "chapters": [{"file": "book/api"}]},
        ],
    }
    assert pub_toc.toc_files(toc) == ["book/intro", "book/data", "book/data_more", "book/api"]


def test_toc_glob_and_missing_root_are_errors():
    with pytest.raises(CifarkitError, match="glob"):
        pub_toc.toc_files({"root": "a", "chapters": [{"glob": "book/*"}]})
    with pytest.raises(CifarkitError, match="root"):
        pub_toc.toc_files({"chapters": [{"file": "a"}]})


def test_read_toc_of_this_repo_finds_the_data_chapter():
    pages = pub_toc.read_toc(ROOT)
    assert pages[0].docname == "book/intro" and pages[0].kind == "notebook"
    chapters = pub_toc.chapters_of(pages)
    assert "data" in [p.name for p in chapters]
    assert all(p.source.suffix == ".ipynb" for p in chapters)


def test_read_toc_kinds_and_suffixes(tmp_path):
    make_book(tmp_path, {"one": ["1"], "two": ["2"]})
    pages = pub_toc.read_toc(tmp_path)
    assert [(p.docname, p.kind) for p in pages] == [
        ("book/intro", "markdown"),
        ("book/one", "notebook"),
        ("book/two", "notebook"),
    ]
    assert pages[1].relpath == "book/one.ipynb" and pages[1].name == "one"


def test_read_toc_errors(tmp_path):
    make_book(tmp_path, {"one": ["1"]})
    (tmp_path / "_toc.yml").write_text("root: book/intro\nchapters:\n  - file: book/ghost\n")
    with pytest.raises(CifarkitError, match="book/ghost"):
        pub_toc.read_toc(tmp_path)
    (tmp_path / "book" / "one.md").write_text("# one\n")
    (tmp_path / "_toc.yml").write_text("root: book/intro\nchapters:\n  - file: book/one\n")
    with pytest.raises(CifarkitError, match="ambiguous"):
        pub_toc.read_toc(tmp_path)
    (tmp_path / "_toc.yml").write_text("root: [unclosed\n")
    with pytest.raises(CifarkitError, match="malformed YAML"):
        pub_toc.read_toc(tmp_path)


def test_find_chapter(tmp_path):
    make_book(tmp_path, {"one": ["1"], "two": ["2"]})
    pages = pub_toc.read_toc(tmp_path)
    assert pub_toc.find_chapter(pages, "two").docname == "book/two"
    assert pub_toc.find_chapter(pages, "book/two.ipynb").docname == "book/two"
    with pytest.raises(CifarkitError, match=r"unknown chapter 'intro'; chapters are: one, two"):
        pub_toc.find_chapter(pages, "intro")  # markdown pages are not chapters


# --------------------------------------------------------------------------- parameters


def test_parse_params_yaml_values():
    assert pub_toc.parse_params(
        "seeds=5 epochs=30 lr=0.1 flag=true name='a b' xs=[1,2] empty="
    ) == {
        "seeds": 5,
        "epochs": 30,
        "lr": 0.1,
        "flag": True,
        "name": "a b",
        "xs": [1, 2],
        "empty": "",
    }
    assert (
        pub_toc.parse_params("") == {}
        and pub_toc.parse_params(None) == {}
        and pub_toc.parse_params("  ") == {}
    )


@pytest.mark.parametrize(
    "text, match",
    [
        ("seeds", "not name=value"),
        ("5=seeds", "not name=value"),
        ("a=1 a=2", "given twice"),
        ("xs=[1,", "cannot read the value"),
        ("name='open", "k=v pairs"),
    ],
)
def test_parse_params_errors(text, match):
    with pytest.raises(CifarkitError, match=match):
        pub_toc.parse_params(text)


def test_notebook_parameters_and_validation(tmp_path):
    nb = write_nb(tmp_path / "c.ipynb", "x = 1", parameters='profile = "cpu"\nseeds = 3\n')
    accepted = pub_toc.notebook_parameters(nb)
    assert accepted == {"profile": '"cpu"', "seeds": "3"}
    page = pub_toc.Page("book/c", nb, "notebook")
    pub_toc.validate_params(page, {"seeds": 5}, accepted)
    with pytest.raises(CifarkitError) as err:
        pub_toc.validate_params(page, {"seeds": 5, "epochs": 30}, accepted)
    message = str(err.value)
    assert "\n" not in message
    assert "epochs" in message and "accepts: profile, seeds" in message


def test_validation_without_parameters_cell(tmp_path):
    nb = write_nb(tmp_path / "c.ipynb", "x = 1", parameters=None)
    accepted = pub_toc.notebook_parameters(nb)
    assert accepted == {}
    with pytest.raises(CifarkitError, match="no parameters cell"):
        pub_toc.validate_params(pub_toc.Page("book/c", nb, "notebook"), {"a": 1}, accepted)


def test_resolved_parameters_only_pass_profile_when_accepted():
    assert pub_toc.resolved_parameters("smoke", {"seeds": 5}, ["profile", "seeds"]) == {
        "profile": "smoke",
        "seeds": 5,
    }
    assert pub_toc.resolved_parameters("smoke", {}, ["seeds"]) == {}


# --------------------------------------------------------------------------- cache key and reasons


def test_notebook_hash_ignores_outputs_and_counts_but_not_source_or_tags(tmp_path):
    path = write_nb(tmp_path / "a.ipynb", "x = 1", new_markdown_cell("# Title"))
    h0 = keys.notebook_source_hash(path)
    nb = nbformat.read(path, as_version=4)
    nb.cells[1].outputs = [nbformat.v4.new_output("stream", text="1\n")]
    nb.cells[1].execution_count = 7
    nb.metadata["papermill"] = {"duration": 1.0}
    nbformat.write(nb, path)
    assert keys.notebook_source_hash(path) == h0
    nb.cells[2].source = "# Another title"  # markdown counts
    nbformat.write(nb, path)
    h1 = keys.notebook_source_hash(path)
    assert h1 != h0
    nb.cells[1].metadata["tags"] = ["remove-input"]
    nbformat.write(nb, path)
    assert keys.notebook_source_hash(path) != h1


def test_package_source_hash_tracks_py_files(tmp_path):
    pkg = tmp_path / "pkg"
    (pkg / "sub").mkdir(parents=True)
    (pkg / "a.py").write_text("A = 1\n")
    (pkg / "sub" / "b.py").write_text("B = 1\n")
    h0 = keys.package_source_hash(pkg)
    (pkg / "notes.txt").write_text("ignored")
    (pkg / "__pycache__").mkdir()
    (pkg / "__pycache__" / "a.cpython-311.py").write_text("ignored")
    assert keys.package_source_hash(pkg) == h0
    (pkg / "sub" / "b.py").write_text("B = 2\n")
    assert keys.package_source_hash(pkg) != h0
    (pkg / "sub" / "b.py").write_text("B = 1\n")
    (pkg / "sub" / "b.py").rename(pkg / "sub" / "c.py")  # a rename changes it too
    assert keys.package_source_hash(pkg) != h0


def test_configs_fingerprint_differs_by_profile_and_covers_every_experiment():
    from cifarkit.core.config import available

    smoke, cpu = keys.configs_fingerprint("smoke"), keys.configs_fingerprint("cpu")
    assert set(smoke) == set(available("experiments")) and smoke
    assert smoke != cpu
    assert keys.configs_fingerprint("smoke") == smoke  # deterministic


def test_cache_key_is_canonical():
    a = components()
    b = dict(reversed(list(components().items())))
    assert keys.cache_key(a) == keys.cache_key(b)
    assert keys.cache_key(a) != keys.cache_key(components(data="d2"))


def test_stale_reasons():
    now = components()
    record = {"key": keys.cache_key(now), "components": now}
    assert keys.stale_reasons(record, now) == []
    assert keys.stale_reasons(None, now) == ["never executed"]
    assert keys.stale_reasons({"components": None}, now) == ["never executed"]
    assert keys.stale_reasons(record, components(notebook="n2")) == ["notebook source changed"]
    assert keys.stale_reasons(record, components(cifarkit="c2")) == ["cifarkit source changed"]
    assert keys.stale_reasons(record, components(parameters={"profile": "smoke", "seeds": 5})) == [
        "parameters changed"
    ]
    assert keys.stale_reasons(record, components(configs={"resnet20": "h2"})) == ["configs changed"]
    assert keys.stale_reasons(record, components(data="d2")) == ["data changed"]
    assert keys.stale_reasons(record, components(lock="l2")) == ["lock file changed"]
    assert keys.stale_reasons(record, components(lock="l2", notebook="n2")) == [
        "notebook source changed",
        "lock file changed",
    ]
    assert keys.stale_reasons({"key": "old-format", "components": now}, now) == [
        "cache format changed"
    ]


# --------------------------------------------------------------------------- store and execution


def _fake_papermill(monkeypatch, behaviour):
    import papermill

    calls = []

    def fake(input_path, output_path, **kwargs):
        calls.append(kwargs)
        return behaviour(Path(input_path), Path(output_path), kwargs)

    monkeypatch.setattr(papermill, "execute_notebook", fake)
    return calls


def _copy_through(src: Path, dst: Path, kwargs):
    nb = nbformat.read(src, as_version=4)
    nb.metadata["executed_with"] = kwargs["parameters"]
    nbformat.write(nb, dst)


def test_execute_chapter_writes_notebook_then_key(tmp_path, monkeypatch):
    make_book(tmp_path / "src", {"one": ["x = 1"]})
    page = pub_toc.chapters_of(pub_toc.read_toc(tmp_path / "src"))[0]
    store = keys.Store(tmp_path / "art", "smoke")
    calls = _fake_papermill(monkeypatch, _copy_through)
    comps = components()
    record = {"key": keys.cache_key(comps), "components": comps}

    assert keys.status_of(store, page, comps) == (False, ["never executed"])
    out = execute.execute_chapter(
        page, {"profile": "smoke"}, store, record_extra=record, progress=False
    )
    assert out == store.notebook(page) == tmp_path / "art/executed/smoke/book/one.ipynb"
    assert calls[0]["kernel_name"] == "cifarkit" and calls[0]["cwd"] == str(page.source.parent)
    assert calls[0]["parameters"] == {"profile": "smoke"} and calls[0]["log_output"] is False
    saved = json.loads(store.key_file(page).read_text())
    assert saved["key"] == record["key"] and saved["components"] == comps
    assert saved["notebook_sha256"] == keys.file_hash(out)
    assert keys.status_of(store, page, comps) == (True, [])
    assert keys.status_of(store, page, components(data="d2")) == (False, ["data changed"])
    assert not list(store.executed_dir.rglob("*.tmp.ipynb"))  # no temp file left

    out.write_text(out.read_text() + " ")  # someone edits the executed copy
    assert keys.status_of(store, page, comps) == (False, ["executed notebook modified"])
    out.unlink()
    assert keys.status_of(store, page, comps) == (False, ["executed notebook missing"])


def test_interrupted_execution_is_never_fresh(tmp_path, monkeypatch):
    make_book(tmp_path / "src", {"one": ["x = 1"]})
    page = pub_toc.chapters_of(pub_toc.read_toc(tmp_path / "src"))[0]
    store = keys.Store(tmp_path / "art", "smoke")
    old = components()
    _fake_papermill(monkeypatch, _copy_through)
    execute.execute_chapter(
        page,
        {},
        store,
        record_extra={"key": keys.cache_key(old), "components": old},
        progress=False,
    )
    before = store.notebook(page).read_bytes()

    def killed(src, dst, kwargs):
        dst.write_text('{"cells": [')  # half-written, then the user hits Ctrl-C
        raise KeyboardInterrupt

    _fake_papermill(monkeypatch, killed)
    new = components(notebook="n2")
    with pytest.raises(KeyboardInterrupt):
        execute.execute_chapter(
            page,
            {},
            store,
            record_extra={"key": keys.cache_key(new), "components": new},
            progress=False,
        )
    assert store.notebook(page).read_bytes() == before  # old execution untouched
    leftover = store.executed_dir / "book" / ".one.abc123.tmp.ipynb"  # as after a SIGKILL
    leftover.write_text("{")
    assert execute.remove_stale_temps(store) == 1 and not leftover.exists()
    assert keys.status_of(store, page, new) == (False, ["notebook source changed"])
    assert keys.status_of(store, page, old) == (True, [])  # and still valid for its own key
    assert not list(store.executed_dir.rglob("*.tmp.ipynb"))


def test_kill_between_rename_and_key_leaves_chapter_stale(tmp_path, monkeypatch):
    """The old key goes before the new notebook arrives: no key ever vouches for another run."""
    make_book(tmp_path / "src", {"one": ["x = 1"]})
    page = pub_toc.chapters_of(pub_toc.read_toc(tmp_path / "src"))[0]
    store = keys.Store(tmp_path / "art", "smoke")
    _fake_papermill(monkeypatch, _copy_through)
    old = components()
    execute.execute_chapter(
        page,
        {},
        store,
        record_extra={"key": keys.cache_key(old), "components": old},
        progress=False,
    )

    def crash(*args, **kwargs):
        raise KeyboardInterrupt  # the process dies while writing the new key

    monkeypatch.setattr(execute, "write_json", crash)
    new = components(notebook="n2")
    with pytest.raises(KeyboardInterrupt):
        execute.execute_chapter(
            page,
            {},
            store,
            record_extra={"key": keys.cache_key(new), "components": new},
            progress=False,
        )
    assert store.notebook(page).is_file() and not store.key_file(page).exists()
    assert keys.status_of(store, page, old)[0] is False
    assert keys.status_of(store, page, new) == (False, ["never executed"])


def test_presentable_notebook_hides_parameter_cells():
    nb = {
        "cells": [
            {"cell_type": "code", "metadata": {"tags": ["parameters"]}, "source": "a = 1"},
            {"cell_type": "code", "metadata": {"tags": ["injected-parameters"]}, "source": "a = 2"},
            {"cell_type": "code", "metadata": {}, "source": "a"},
        ]
    }
    out = json.loads(pub_site.presentable_notebook(json.dumps(nb).encode()))
    assert [c["metadata"]["tags"] for c in out["cells"]] == [
        ["parameters", "remove-cell"],
        ["injected-parameters", "hide-input"],
        [],
    ]


def test_assemble_site_source_mirrors_and_prunes(tmp_path, monkeypatch):
    root = make_book(tmp_path / "src", {"one": ["x = 1"]})
    (root / "book" / "figure.svg").write_text("<svg/>")
    (root / "book" / ".ipynb_checkpoints").mkdir()
    (root / "book" / ".ipynb_checkpoints" / "one-checkpoint.ipynb").write_text("{}")
    pages = pub_toc.read_toc(root)
    store = keys.Store(tmp_path / "art", "smoke")
    _fake_papermill(monkeypatch, _copy_through)
    execute.execute_chapter(pages[1], {}, store, record_extra={}, progress=False)
    (store.site_src / "book").mkdir(parents=True)
    (store.site_src / "book" / "stale.md").write_text("old page")

    staging = pub_site.assemble_site_source(root, pages, store)
    files = sorted(p.relative_to(staging).as_posix() for p in staging.rglob("*") if p.is_file())
    assert files == [
        "_config.yml",
        "_toc.yml",
        "book/figure.svg",
        "book/intro.md",
        "book/one.ipynb",
    ]
    staged = json.loads((staging / "book/one.ipynb").read_text())
    assert "executed_with" in staged["metadata"]  # the executed copy, not the source
    mtime = (staging / "book/intro.md").stat().st_mtime_ns
    time.sleep(0.01)
    pub_site.assemble_site_source(root, pages, store)
    assert (staging / "book/intro.md").stat().st_mtime_ns == mtime  # unchanged files untouched


@pytest.mark.parametrize("profile", ["smoke", "cpu"])
def test_a_smoke_build_says_so_at_the_top_of_every_page(tmp_path, monkeypatch, profile):
    root = make_book(tmp_path / "src", {"one": ["x = 1"]})
    pages = pub_toc.read_toc(root)
    store = keys.Store(tmp_path / "art", profile)
    _fake_papermill(monkeypatch, _copy_through)
    execute.execute_chapter(pages[1], {}, store, record_extra={}, progress=False)
    staging = pub_site.assemble_site_source(root, pages, store)
    notice = pub_site.PROFILE_NOTICES["smoke"]
    intro = (staging / "book/intro.md").read_text()
    cells = json.loads((staging / "book/one.ipynb").read_text())["cells"]
    if profile == "smoke":
        assert intro.startswith("# Intro\n") and notice in intro.split("Hello.")[0]
        assert notice in "".join(cells[0]["source"]) or notice in "".join(cells[1]["source"])
    else:
        assert notice not in intro and not any(notice in "".join(c["source"]) for c in cells)
    assert notice not in (root / "book/intro.md").read_text()


def test_summary_table():
    text = bb.format_summary(
        [
            bb.ChapterResult("data", "cached", 0.0, "up to date"),
            bb.ChapterResult("training", "executed", 12.34, "data changed"),
        ]
    )
    lines = text.splitlines()
    assert lines[0].split() == ["chapter", "status", "time", "reason"]
    assert "training  executed  12.3 s  data changed" in lines[3]


def test_build_lock_waits_for_the_holder(tmp_path, caplog):
    from filelock import FileLock

    lock_path = tmp_path / "book" / ".lock"
    lock_path.parent.mkdir()
    holder = FileLock(str(lock_path))
    holder.acquire()
    got = threading.Event()

    def second_build():
        with bb.build_lock(lock_path):
            got.set()

    with caplog.at_level(logging.INFO, logger="cifarkit.publish.build"):
        thread = threading.Thread(target=second_build)
        thread.start()
        time.sleep(0.5)
        assert not got.is_set()
        holder.release()
        thread.join(timeout=10)
    assert got.is_set()
    assert any("waiting" in r.getMessage() for r in caplog.records)


def test_preflight_names_each_missing_item(monkeypatch, tmp_path):
    from jupyter_client import kernelspec

    monkeypatch.delenv("CIFARKIT_DATA", raising=False)
    monkeypatch.setattr(pf, "_network_reachable", lambda *a, **k: False)
    monkeypatch.setattr(pf, "_keras_cifar_cached", lambda: False)
    monkeypatch.setattr(
        kernelspec.KernelSpecManager, "find_kernel_specs", lambda self: {"python3": "/x"}
    )
    monkeypatch.setenv("CIFARKIT_ARTIFACTS", str(tmp_path))
    source, problems = pf.preflight(min_free_bytes=1 << 62)
    assert source is None
    assert len(problems) == 3
    assert (
        problems[0].startswith("data:") and "CIFARKIT_DATA=/path/to/cifar10-jpeg.tgz" in problems[0]
    )
    assert problems[1].startswith("kernel:") and "make venv" in problems[1]
    assert problems[2].startswith("disk:")
    assert all("\n" not in p for p in problems)


def test_preflight_bad_data_path(monkeypatch):
    monkeypatch.setenv("CIFARKIT_DATA", "/nonexistent/cifar.tgz")
    _, problems = pf.preflight()
    assert any(p.startswith("data:") and "/nonexistent/cifar.tgz" in p for p in problems)


@pytest.mark.parametrize(
    "args, needle",
    [
        (["--chapter", "nope"], "unknown chapter 'nope'; chapters are: one"),
        (
            ["--chapter", "one", "--params", "seeds=5 epochs=30"],
            "chapter one has no parameter(s) seeds, epochs; it accepts: profile",
        ),
        (["--chapter", "one", "--params", "profile=cpu"], "set the profile with --profile"),
        (["--params", "seeds=5"], "--params needs --chapter"),
        (["--profile", "nope"], "unknown profile 'nope'"),
    ],
)
def test_cli_user_errors_are_one_line_exit_2(tmp_path, monkeypatch, capsys, args, needle):
    make_book(tmp_path, {"one": ["x = 1"]})
    monkeypatch.setenv("CIFARKIT_ARTIFACTS", str(tmp_path / "art"))
    assert cli_main(["book", "build", "--profile", "smoke", "--root", str(tmp_path), *args]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and err.startswith("cifarkit: error: ") and needle in err, err
    assert "Traceback" not in err


def test_cli_subprocess_no_traceback_unless_debug(tmp_path):
    make_book(tmp_path, {"one": ["x = 1"]})
    env = {**os.environ, "CIFARKIT_ARTIFACTS": str(tmp_path / "art")}
    base = book_build_command(tmp_path, "--chapter", "nope")
    result = subprocess.run(base, capture_output=True, text=True, env=env, timeout=120)
    assert result.returncode == 2
    assert result.stderr.strip() == "cifarkit: error: unknown chapter 'nope'; chapters are: one"
    debug = subprocess.run(
        [*base[:3], "--debug", *base[3:]], capture_output=True, text=True, env=env, timeout=120
    )
    assert debug.returncode == 2 and "Traceback" in debug.stderr


# --------------------------------------------------------------------------- real papermill


@needs_kernel
def test_failing_chapter_names_chapter_cell_and_exception(tmp_path, monkeypatch):
    """A 2-cell notebook on the real kernel: the error line names chapter, cell, ename: evalue."""
    root = make_book(tmp_path / "src", {"broken": ["x = 1", 'raise ValueError("boom: bad value")']})
    page = pub_toc.chapters_of(pub_toc.read_toc(root))[0]
    store = keys.Store(tmp_path / "art", "smoke")
    with pytest.raises(execute.ChapterFailed) as err:
        execute.execute_chapter(page, {"profile": "smoke"}, store, record_extra={}, progress=False)
    message = str(err.value)
    assert message.startswith(
        "chapter broken (book/broken.ipynb) failed in cell 2: ValueError: boom: bad value"
    )
    assert "\n" not in message
    assert err.value.failed_notebook == store.failed(page) and store.failed(page).is_file()
    failed = nbformat.read(store.failed(page), as_version=4)
    assert any(o.get("ename") == "ValueError" for c in failed.cells for o in c.get("outputs", []))
    assert not store.notebook(page).exists() and not store.key_file(page).exists()
    assert not list(store.executed_dir.rglob("*.ipynb"))


@needs_kernel
@pytest.mark.slow
def test_run_stops_on_failing_chapter_and_builds_no_site(tmp_path, monkeypatch, capsys):
    root = make_book(tmp_path / "src", {"fine": ["y = 2"], "broken": ["1 / 0"], "later": ["z = 3"]})
    monkeypatch.setenv("CIFARKIT_ARTIFACTS", str(tmp_path / "art"))
    monkeypatch.setattr(bb, "preflight", lambda: (None, []))
    monkeypatch.setattr(keys, "data_hash", lambda source: "fake-data")
    site = []
    monkeypatch.setattr(bb, "build_site", lambda *a, **k: site.append(a))
    opts = bb.Options(profile="smoke", root=root, output=tmp_path / "out")
    with pytest.raises(execute.ChapterFailed, match=r"chapter broken .* cell 1: ZeroDivisionError"):
        bb.run(opts)
    assert site == []
    out = capsys.readouterr().out
    assert "fine     executed" in out and "broken   failed" in out and "later    not run" in out

    # Fix the chapter: the good one is cached, the fixed one runs; --chapter forces one.
    write_nb(root / "book" / "broken.ipynb", "1 / 1")
    results = {r.name: r for r in bb.run(opts)}
    assert results["fine"].status == "cached"
    assert results["broken"].status == "executed"
    assert results["broken"].reason == "never executed"  # a failed run leaves no key
    assert results["later"].status == "executed" and results["later"].reason == "never executed"
    assert len(site) == 1
    results = {
        r.name: r
        for r in bb.run(
            bb.Options(profile="smoke", root=root, output=tmp_path / "out", chapter="fine")
        )
    }
    assert [r.status for r in results.values()] == ["executed", "cached", "cached"]
    assert results["fine"].reason == "requested with --chapter"


def test_the_chapters_get_their_environment_and_the_build_keeps_its_own(tmp_path, monkeypatch):
    """The kernels start with absolute data and artifacts locations and, when the build trains
    nothing, CIFARKIT_NO_TRAIN=1; the build's own process environment is not changed."""
    root = make_book(tmp_path / "src", {"one": ["x = 1"]})
    (tmp_path / "data.tgz").write_bytes(b"")
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("CIFARKIT_ARTIFACTS", "art")  # relative: the kernel runs elsewhere
    monkeypatch.delenv("CIFARKIT_NO_TRAIN", raising=False)
    monkeypatch.setattr(bb, "preflight", lambda: ("data.tgz", []))
    monkeypatch.setattr(keys, "data_hash", lambda source: "fake-data")
    monkeypatch.setattr(bb, "build_site", lambda *a, **k: None)
    calls = _fake_papermill(monkeypatch, _copy_through)
    envs = []
    real = execute._kernel_manager
    monkeypatch.setattr(execute, "_kernel_manager", lambda env: envs.append(dict(env)) or real(env))
    before = dict(os.environ)
    bb.run(bb.Options(profile="smoke", root=root, output=tmp_path / "out", no_train=True))
    assert dict(os.environ) == before
    assert envs[0]["CIFARKIT_DATA"] == str(tmp_path / "data.tgz")
    assert envs[0]["CIFARKIT_ARTIFACTS"] == str(tmp_path / "art")
    assert envs[0]["CIFARKIT_NO_TRAIN"] == "1"
    # and the kernel runs the entry points' start before the first cell
    assert any(KERNEL_START in argument for argument in calls[0]["extra_arguments"])
    assert {
        k: v
        for k, v in envs[0].items()
        if k not in ("CIFARKIT_DATA", "CIFARKIT_ARTIFACTS", "CIFARKIT_NO_TRAIN")
    } == {k: v for k, v in before.items() if k not in ("CIFARKIT_DATA", "CIFARKIT_ARTIFACTS")}


def test_a_no_train_build_stops_at_the_plan_on_a_missing_run_with_its_command(
    tmp_path, monkeypatch
):
    monkeypatch.setenv("CIFARKIT_ARTIFACTS", str(tmp_path / "art"))
    monkeypatch.setattr("cifarkit.data.identity.data_hash_for", lambda data: "d" * 64)
    monkeypatch.setattr("cifarkit.studies.pricing.measured_speeds", lambda plan: {})
    monkeypatch.setattr(
        "cifarkit.studies.runner.train_plan", lambda *a, **k: pytest.fail("trained")
    )
    with pytest.raises(CifarkitError) as err:
        bb._train_the_plan(
            bb.Options(profile="smoke", chapter="baseline", no_train=True), ["baseline"]
        )
    message = str(err.value)
    assert (
        message.startswith("run baseline_cnn-")
        and "never trained" in message
        and "\n" not in message
    )
    assert "make it with: cifarkit train baseline_cnn --profile smoke --seed 0" in message


@needs_kernel
@pytest.mark.slow
def test_chapter_option_executes_that_chapter_only(tmp_path, monkeypatch, capsys):
    """make chapter must not execute (and train) every other chapter that is not fresh: those
    are shown as a stand-in page (never executed) or their last build with a note (stale)."""
    root = make_book(
        tmp_path / "src", {"a": ["print('output of a')"], "b": ["y = 2"], "c": ["z = 3"]}
    )
    monkeypatch.setenv("CIFARKIT_ARTIFACTS", str(tmp_path / "art"))
    monkeypatch.setattr(bb, "preflight", lambda: (None, []))
    monkeypatch.setattr(keys, "data_hash", lambda source: "fake-data")
    staged = []
    monkeypatch.setattr(bb, "build_site", lambda staging, *a, **k: staged.append(staging))
    store = keys.Store(tmp_path / "art" / "book", "smoke")

    def run(chapter=None):
        return {
            r.name: r
            for r in bb.run(
                bb.Options(profile="smoke", root=root, output=tmp_path / "out", chapter=chapter)
            )
        }

    results = run("b")
    assert [(r.name, r.status) for r in results.values()] == [
        ("a", "not executed"),
        ("b", "executed"),
        ("c", "not executed"),
    ]
    assert not store.notebook(pub_toc.find_chapter(pub_toc.read_toc(root), "a")).exists()
    page_a = json.loads((staged[-1] / "book" / "a.ipynb").read_text())
    text = json.dumps(page_a)
    assert "not been executed under the `smoke` profile" in text
    assert "make chapter NAME=a PROFILE=smoke" in text and "output of a" not in text
    assert "not executed" in capsys.readouterr().out

    run()  # the whole book: every chapter executed
    write_nb(root / "book" / "a.ipynb", "print('output of a, edited')")
    results = run("c")
    assert [(r.name, r.status) for r in results.values()] == [
        ("a", "kept (stale)"),
        ("b", "cached"),
        ("c", "executed"),
    ]
    assert results["a"].reason == "notebook source changed"
    page_a = json.loads((staged[-1] / "book" / "a.ipynb").read_text())
    text = json.dumps(page_a)
    assert "output of a" in text and "output of a, edited" not in text  # the last build, as stored
    assert "This page is from an earlier build" in text
    assert page_a["cells"][0]["metadata"]["tags"] == ["cifarkit-stand-in-note"]  # no title: first
    assert run()["a"].status == "executed"  # make book brings it up to date


def test_notebook_with_note_goes_under_the_title():
    nb = {
        "cells": [
            {"cell_type": "markdown", "metadata": {}, "source": "# Title\n\nIntro"},
            {"cell_type": "code", "metadata": {}, "source": "x = 1", "outputs": []},
        ],
        "metadata": {},
        "nbformat": 4,
        "nbformat_minor": 5,
    }
    out = json.loads(pub_site.notebook_with_note(json.dumps(nb).encode(), "stale because X"))  # str
    assert [c["cell_type"] for c in out["cells"]] == ["markdown", "markdown", "code"]
    assert out["cells"][1]["source"] == "```{note}\nstale because X\n```"


@needs_kernel
@pytest.mark.slow
def test_a_run_listing_chapter_that_trains_is_keyed_by_the_store_it_leaves(tmp_path, monkeypatch):
    """fast_training both trains ladder steps and lists the run store: its key must be taken
    after it ran, or every later build would find the store changed (and --expect-cached fail)."""
    art = tmp_path / "art"
    monkeypatch.setenv("CIFARKIT_ARTIFACTS", str(art))
    adds_a_run = (
        f"import pathlib; p = pathlib.Path({str(art)!r}) / 'runs' / 'resnet20-0123456789ab'\n"
        "p.mkdir(parents=True, exist_ok=True); (p / 'status.json').write_text('{}')"
    )
    root = make_book(tmp_path / "src", {"trains": [adds_a_run]})
    _with_metadata(root / "book" / "trains.ipynb", lists_runs=True)
    monkeypatch.setattr(bb, "preflight", lambda: (None, []))
    monkeypatch.setattr(keys, "data_hash", lambda source: "fake-data")
    monkeypatch.setattr(bb, "build_site", lambda *a, **k: None)
    opts = bb.Options(profile="smoke", root=root, output=tmp_path / "out")
    assert [r.status for r in bb.run(opts)] == ["executed"]
    assert [
        r.status
        for r in bb.run(
            bb.Options(profile="smoke", root=root, output=tmp_path / "out", expect_cached=True)
        )
    ] == ["cached"]


# --------------------------------------------------------------------------- end to end


def _data_or_skip() -> str:
    data = os.environ.get("CIFARKIT_DATA")
    if not data:
        if os.environ.get("CIFARKIT_REQUIRE_DATA") == "1":
            pytest.fail("CIFARKIT_REQUIRE_DATA=1 but CIFARKIT_DATA is unset")
        pytest.skip("set CIFARKIT_DATA to run the real book build")
    return data


@pytest.mark.data
@pytest.mark.slow
def test_real_book_build_smoke(tmp_path):
    """The real build (papermill + jupyter-book) of the real data chapter on the real data, in
    a private artifacts/output folder; a second build finds it cached. (CI builds the whole
    smoke book with `make book PROFILE=smoke` and checks it in a browser.)"""
    data = _data_or_skip()
    if not kernel_available():
        pytest.fail("the cifarkit kernel is not installed; run make venv")
    root = tmp_path / "out"
    (root / "book").mkdir(parents=True)
    shutil.copy(ROOT / "_config.yml", root / "_config.yml")
    shutil.copy(ROOT / "book" / "data.ipynb", root / "book" / "data.ipynb")
    # The chapter links the page on how to read the report (copied as it is, never executed).
    shutil.copy(ROOT / "book" / "how_to_read.md", root / "book" / "how_to_read.md")
    (root / "_toc.yml").write_text(
        "format: jb-book\nroot: book/data\nchapters:\n  - file: book/how_to_read\n"
    )
    art = tmp_path / "artifacts"
    real_cache = ROOT / "artifacts" / "cache"
    env = {**os.environ, "CIFARKIT_DATA": data, "CIFARKIT_ARTIFACTS": str(art)}
    if real_cache.is_dir() and "CIFARKIT_CACHE" not in os.environ:
        env["CIFARKIT_CACHE"] = str(real_cache)  # reuse the decoded-data cache (read-mostly)
    command = book_build_command(root, "--output", str(root))
    first = subprocess.run(command, capture_output=True, text=True, env=env, timeout=1800)
    assert first.returncode == 0, first.stderr[-3000:]
    html = tmp_path / "out" / "_build" / "html"
    assert (html / "index.html").is_file()
    data_page = (html / "book" / "data.html").read_text()
    key = json.loads((art / "book" / "executed" / "smoke" / "book" / "data.key.json").read_text())
    assert key["components"]["data"][:12] in data_page  # captions name the data hash
    assert data_page.count("<img") >= 3  # the figures rendered
    assert "executed" in first.stdout

    second = subprocess.run(
        command + ["--expect-cached"], capture_output=True, text=True, env=env, timeout=600
    )
    assert second.returncode == 0, second.stderr[-3000:]
    lines = [line for line in second.stdout.splitlines() if line.strip()]
    rows = [line.split() for line in lines[2:]]  # after the header and the dashes
    assert rows and all(row[1] == "cached" for row in rows), second.stdout
    shutil.rmtree(art / "book" / "site-src", ignore_errors=True)


@pytest.mark.slow
def test_site_build_fails_on_warnings(tmp_path):
    """jupyter-book runs with -W --keep-going: a broken cross-reference fails the build."""
    root = tmp_path / "site"
    (root / "book").mkdir(parents=True)
    (root / "_config.yml").write_text('title: t\nexecute:\n  execute_notebooks: "off"\n')
    (root / "_toc.yml").write_text("format: jb-book\nroot: book/intro\n")
    (root / "book" / "intro.md").write_text("# Intro\n\nSee {doc}`missing-page`.\n")
    with pytest.raises(pub_site.SiteBuildFailed, match="jupyter-book build failed"):
        pub_site.build_site(root, tmp_path / "out")
    (root / "book" / "intro.md").write_text("# Intro\n\nFine.\n")
    index = pub_site.build_site(root, tmp_path / "out")
    assert index.is_file()


@pytest.mark.slow
def test_stand_in_and_noted_pages_pass_the_strict_site_build(tmp_path):
    """The pages make chapter shows for chapters it did not execute are valid MyST: the strict
    build (-W) accepts them, links to them resolve, and the notes render as admonitions."""
    root = tmp_path / "site"
    (root / "book").mkdir(parents=True)
    (root / "_config.yml").write_text('title: t\nexecute:\n  execute_notebooks: "off"\n')
    (root / "_toc.yml").write_text(
        "format: jb-book\nroot: book/intro\nchapters:\n  - file: book/never\n  - file: book/stale\n"
    )
    (root / "book" / "intro.md").write_text("# Intro\n\nSee {doc}`never` and {doc}`stale`.\n")
    source = write_nb(tmp_path / "never.ipynb", "# code-marker\nx = 1")
    nb = nbformat.read(source, as_version=4)
    nb.cells.insert(0, nbformat.v4.new_markdown_cell("# Never run chapter\n\nIntro text."))
    nbformat.write(nb, source)
    (root / "book" / "never.ipynb").write_text(
        pub_site.stand_in_notebook(source, "Not executed; `make book`."), encoding="utf-8"
    )
    (root / "book" / "stale.ipynb").write_text(
        pub_site.notebook_with_note(source.read_bytes(), "From an earlier build."), encoding="utf-8"
    )
    index = pub_site.build_site(root, tmp_path / "out")
    html = index.parent / "book"
    never, stale = (html / "never.html").read_text(), (html / "stale.html").read_text()
    assert "Never run chapter" in never and "admonition note" in never and "Not executed;" in never
    assert "code-marker" not in never  # a stand-in shows no code
    assert (
        "admonition note" in stale and "From an earlier build." in stale and "code-marker" in stale
    )


def _with_metadata(path: Path, **flags) -> Path:
    nb = nbformat.read(path, as_version=4)
    nb.metadata["cifarkit"] = flags
    nbformat.write(nb, path)
    return path


def test_execution_order_puts_summaries_and_run_lists_last(tmp_path):
    pages = [
        pub_toc.Page(
            docname=f"book/{name}", source=write_nb(tmp_path / f"{name}.ipynb"), kind="notebook"
        )
        for name in ("intro", "data", "appendix", "baseline")
    ]
    _with_metadata(pages[0].source, execute_last=True)
    _with_metadata(pages[2].source, lists_runs=True)
    assert [p.name for p in keys.execution_order(pages)] == [
        "data",
        "baseline",
        "intro",
        "appendix",
    ]


def test_only_run_listing_chapters_depend_on_the_run_store(tmp_path, monkeypatch):
    plain = pub_toc.Page("book/a", write_nb(tmp_path / "a.ipynb"), "notebook")
    listing = pub_toc.Page(
        "book/b", _with_metadata(write_nb(tmp_path / "b.ipynb"), lists_runs=True), "notebook"
    )
    shared = {"cifarkit": "c", "configs": {}, "data": "d", "lock": "l"}
    assert "runs" not in keys.chapter_components(plain, {}, shared)
    before = keys.chapter_components(listing, {}, shared)
    run_dir = Path(os.environ["CIFARKIT_ARTIFACTS"]) / "runs" / "resnet20-0123456789ab"
    run_dir.mkdir(parents=True)
    (run_dir / "status.json").write_text('{"status": "complete"}')
    after = keys.chapter_components(listing, {}, shared)
    assert keys.stale_reasons({"key": keys.cache_key(before), "components": before}, after) == [
        "the run store changed"
    ]
    assert keys.chapter_components(plain, {}, shared) == keys.chapter_components(plain, {}, shared)


def test_benchmark_reading_chapters_depend_on_the_benchmark_results(tmp_path):
    page = pub_toc.Page(
        "book/f", _with_metadata(write_nb(tmp_path / "f.ipynb"), reads_benchmarks=True), "notebook"
    )
    shared = {"cifarkit": "c", "configs": {}, "data": "d", "lock": "l"}
    before = keys.chapter_components(page, {}, shared)
    bench = Path(os.environ["CIFARKIT_ARTIFACTS"]) / "bench"
    bench.mkdir(parents=True, exist_ok=True)
    (bench / "gradcam-x.json").write_text("{}")  # not a time-to-accuracy result: no change
    assert keys.chapter_components(page, {}, shared) == before
    (bench / "time-to-accuracy-airbench-cpu-0123.json").write_text("{}")
    after = keys.chapter_components(page, {}, shared)
    assert keys.stale_reasons({"key": keys.cache_key(before), "components": before}, after) == [
        "benchmark results changed"
    ]
    seen = after["benchmarks"]
    for kept in ("throughput-airbench-cpu-batch-b1024", "engine-avx512f-resnet20", "precision-cpu"):
        (bench / f"{kept}.json").write_text("{}")
        now = keys.chapter_components(page, {}, shared)["benchmarks"]
        assert now != seen, kept
        seen = now
    assert "benchmarks" not in keys.chapter_components(
        pub_toc.Page("book/a", write_nb(tmp_path / "a.ipynb"), "notebook"), {}, shared
    )


def test_staging_copies_the_book_roots_static_css(tmp_path):
    root = make_book(tmp_path / "src", {"data": ["x = 1"]})
    (root / "_static").mkdir()
    (root / "_static" / "site.css").write_text("span.pasted-text { font-weight: inherit; }\n")
    store = keys.Store(tmp_path / "store", "smoke")
    plan = pub_site.staging_plan(root, pub_toc.read_toc(root), store)
    assert plan["_static/site.css"] == root / "_static" / "site.css"


def test_the_build_report_compares_estimates_only_where_there_are_some():
    from cifarkit.publish.costs import ChapterResult, PlanCost

    results = [
        ChapterResult("baseline", "executed", 120.0),
        ChapterResult("intro", "executed", 6.0),
    ]
    first = PlanCost({"baseline": 6}, {"baseline": 20.0}, {"baseline": 22.0}, {}, probe_minutes=2.0)
    text = first.report(results, total_minutes=27.0)
    assert "training: estimated 20.0, took 22.0 (+10%) min" in text
    assert "chapters: took 2.1 min (not yet timed on this machine: no estimate)" in text
    # the plan is priced after the probes: 25 of the 27 minutes are compared with its 20
    assert (
        "whole build: took 27.0 min (speed probes 2.0, training 22.0, chapters 2.1, site and the rest 0.9)"
        in text
    )
    assert "from the plan on, estimated 20.0, took 25.0 (+25%) min" in text
    assert "no execution estimate yet for baseline, intro" in text
    second = PlanCost({}, {}, {}, {"baseline": 2.0, "intro": 0.1}, probe_minutes=0.0)
    text = second.report(
        [ChapterResult("baseline", "executed", 120.0), ChapterResult("intro", "cached", 0.0)], 2.5
    )
    assert (
        "chapters: estimated 2.0, took 2.0 (+0%) min" in text
        and "no execution estimate yet" not in text
    )


def test_the_build_report_counts_overlapping_runs_by_wall_time():
    from cifarkit.publish.costs import ChapterResult, PlanCost

    cost = PlanCost(
        {"baseline": 4},
        {"baseline": 6.0},
        {"baseline": 9.0},
        {},
        probe_minutes=1.0,
        train_wall_minutes=5.0,
    )
    text = cost.report([ChapterResult("baseline", "executed", 60.0)], total_minutes=7.5)
    assert (
        "training: estimated 6.0, took 5.0 (-17%) min (runs at once; their own minutes add up to 9.0)"
        in text
    )
    assert "site and the rest 0.5" in text
