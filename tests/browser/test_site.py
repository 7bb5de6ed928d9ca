"""The built report in a real browser (headless Chromium via Playwright).

``test_built_site`` crawls ``_build/html`` (or ``$CIFARKIT_SITE``): every page loads, every
image renders, every internal link and anchor resolves, no page shows an error cell or
raises a script error, and at a 1280 px window no table or figure is wider than the text
column or scrolls sideways and every figure spans at least 80% of the column; a screenshot
of every page and ``summary.json`` go to ``artifacts/site-check/`` (the folder is printed,
with a line per page). ``test_check_reports_each_fault`` proves the check can fail, on a
hand-made site.

Skipped without Chromium, Playwright or a built site, unless ``CIFARKIT_REQUIRE_BROWSER=1``
(CI), which turns every such skip into a failure.
"""

from __future__ import annotations

import json
import os
import shutil
from collections.abc import Iterator
from pathlib import Path
from typing import Any, NoReturn

import pytest
from PIL import Image
from sitecheck import CHROMIUM_ARGS, check_site

from cifarkit.core.paths import project_root

pytestmark = pytest.mark.browser

REQUIRE = os.environ.get("CIFARKIT_REQUIRE_BROWSER") == "1"
SITE = Path(os.environ.get("CIFARKIT_SITE") or project_root() / "_build" / "html")
# Read at import, before conftest's autouse fixture points CIFARKIT_ARTIFACTS at a tmp dir:
# the screenshots are for people to look at, so they go to the real artifacts folder.
OUT = Path(os.environ.get("CIFARKIT_ARTIFACTS") or project_root() / "artifacts") / "site-check"
# Pages Sphinx generates for every site whether or not anything links to them.
SPHINX_GENERATED = {"genindex.html", "search.html", "py-modindex.html"}


def unavailable(reason: str) -> NoReturn:
    """Skip, or fail when CI requires the browser check to run."""
    if REQUIRE:
        pytest.fail(f"{reason} (CIFARKIT_REQUIRE_BROWSER=1, so this is a failure)")
    pytest.skip(reason)


@pytest.fixture(scope="module")
def browser() -> Iterator[Any]:
    """One headless Chromium for the module (Debian's binary; Playwright downloads none)."""
    try:
        from playwright.sync_api import sync_playwright
    except ImportError:
        unavailable("playwright is not installed: .venv/bin/pip install -r requirements.lock")
    exe = os.environ.get("CIFARKIT_CHROMIUM") or shutil.which("chromium") or "/usr/bin/chromium"
    if not Path(exe).is_file():
        unavailable("no Chromium: apt-get install -y chromium (or set CIFARKIT_CHROMIUM)")
    with sync_playwright() as pw:
        chromium = pw.chromium.launch(executable_path=exe, args=CHROMIUM_ARGS)
        try:
            yield chromium
        finally:
            chromium.close()


def test_built_site(browser: Any) -> None:
    if not (SITE / "index.html").is_file():
        unavailable(
            f"no built site at {SITE}: run `make book PROFILE=smoke` (or set CIFARKIT_SITE)"
        )
    report = check_site(SITE, OUT, browser)

    print(
        f"\nsite check: {len(report.pages)} pages in {report.seconds:.1f} s "
        f"(Chromium {report.browser}); screenshots and summary.json in {OUT}"
    )
    for page in report.pages:
        print(
            f"  {page.path}: HTTP {page.status}, {page.images} images, {page.links} links, "
            f"{page.seconds:.1f} s"
            + (f", redirects to {page.redirect_to}" if page.redirect_to else "")
        )
    print("  layout at 1280 px (tables and figures against the text column; screenshot per page):")
    print(
        f"    {'page':34} {'text px':>7} {'tables':>6} {'figures':>7} {'overflowing':>11} "
        f"{'narrowest figure':>16}  screenshot"
    )
    for page in report.pages:
        if page.text_width is None:
            continue
        narrowest = "-" if page.narrowest_figure is None else f"{page.narrowest_figure:.0%}"
        print(
            f"    {page.path:34} {page.text_width:7.0f} {page.tables:6d} {page.figures:7d} "
            f"{page.overflowing:11d} {narrowest:>16}  {OUT / page.screenshot if page.screenshot else '-'}"
        )
    pages_by_warning: dict[tuple[str, str], list[str]] = {}
    for finding in report.warnings:  # the same toolchain warning on every page: print once
        pages_by_warning.setdefault((finding.kind, finding.detail), []).append(finding.page)
    for (kind, detail), pages in pages_by_warning.items():
        print(f"  warning [{kind}] on {len(pages)} page(s) ({pages[0]}, ...): {detail}")
    for finding in report.problems:
        print(f"  PROBLEM: {finding}")

    assert not report.problems, "the built site has problems:\n" + "\n".join(
        map(str, report.problems)
    )
    reached = {p.path for p in report.pages}
    built = {
        p.relative_to(SITE).as_posix()
        for p in SITE.rglob("*.html")
        if p.parts[len(SITE.parts)] not in ("_static", "_sources", "_images")
    }
    unreached = sorted(built - reached - SPHINX_GENERATED)
    assert not unreached, f"pages no link leads to (missing from the navigation?): {unreached}"
    summary = json.loads((OUT / "summary.json").read_text())
    assert summary["ok"] and summary["page_count"] == len(report.pages)
    assert all((OUT / p.screenshot).stat().st_size > 0 for p in report.pages if p.screenshot)


# --------------------------------------------------------------------------- the check itself

FAULTY_PAGE = """<!doctype html><html><head><title>bad</title></head><body><main>
<img src="_images/missing.png" alt="gone">
<img src="_images/ok.png" alt="fine">
<a href="nowhere.html">broken page link</a>
<a href="good.html#no-such-id">broken anchor</a>
<a href="files/missing.zip">broken download</a>
<div class="cell_output docutils container"><div class="output traceback highlight-ipythontb notranslate">
<pre>Traceback (most recent call last):
  File "x.py", line 1
ZeroDivisionError: division by zero</pre></div></div>
<script>console.error("boom from our page")</script>
<script>fetch("data/missing.json").catch(() => null)</script>
<script>throw new Error("uncaught in our page")</script>
<div style="overflow-x: auto"><table><tr><td><div style="width: 3000px">a table wider than any text
column</div></td></tr></table></div>
<img src="_images/ok.png" alt="a small figure" style="width: 100px">
</main></body></html>"""

CLEAN_PAGE = """<!doctype html><html><head><title>good</title></head><body><main>
<h1 id="top">Good</h1>
<img src="_images/ok.png" alt="fine" style="width: 100%">
<table><tr><th>model</th><th>test accuracy</th></tr><tr><td>a</td><td>81.2 [80.1, 82.3]</td></tr></table>
<a href="home.html">home</a> <a href="#top">top</a> <a href="home.html#intro">intro</a>
<a href="files/data.txt">download</a> <a href="https://example.org/">external, not fetched</a>
<script>const THEBE_JS_URL = "x"</script><script>const THEBE_JS_URL = "x"</script>
</main></body></html>"""


def write_site(root: Path) -> Path:
    """A tiny site: a redirecting index, a clean page and a page with one of every fault."""
    (root / "_images").mkdir(parents=True)
    (root / "files").mkdir()
    Image.new("RGB", (4, 4), "red").save(root / "_images" / "ok.png")
    (root / "files" / "data.txt").write_text("data\n")
    (root / "index.html").write_text('<meta http-equiv="Refresh" content="0; url=home.html" />')
    (root / "home.html").write_text(
        '<!doctype html><title>home</title><p id="intro">Home</p>'
        '<a href="good.html">good</a> <a href="bad.html">bad</a>'
    )
    (root / "good.html").write_text(CLEAN_PAGE)
    (root / "bad.html").write_text(FAULTY_PAGE)
    return root


def test_check_reports_each_fault(browser: Any, tmp_path: Path) -> None:
    site = write_site(tmp_path / "site")
    out = tmp_path / "out"
    report = check_site(site, out, browser, timeout_ms=15_000)

    found = {(f.page, f.kind): str(f) for f in report.problems}
    details = "\n".join(map(str, report.problems))
    by_page: dict[str, list[str]] = {}
    for f in report.problems:
        by_page.setdefault(f.page, []).append(f"{f.kind}: {f.detail}")

    assert [p.path for p in report.pages][:2] == ["index.html", "home.html"], report.pages
    assert report.pages[0].redirect_to == "home.html"
    assert {p.path for p in report.pages} == {
        "index.html",
        "home.html",
        "good.html",
        "bad.html",
        "nowhere.html",
    }
    # Each planted fault is reported, on the right page, once.
    expected = {
        ("bad.html", "image"): "_images/missing.png",
        ("nowhere.html", "page"): "HTTP 404",
        ("bad.html", "anchor"): "good.html#no-such-id",
        ("bad.html", "link"): "files/missing.zip",
        ("bad.html", "error-cell"): "Traceback",
        ("bad.html", "console"): "boom from our page",
        ("bad.html", "script"): "uncaught in our page",
        ("bad.html", "request"): "data/missing.json",
        ("bad.html", "overflow"): "scrolls sideways",
        ("bad.html", "figure-width"): "of the text width",
    }
    for key, needle in expected.items():
        assert key in found and needle in found[key], f"{key} not reported; got:\n{details}"
    assert sum("missing.png" in p for p in by_page["bad.html"]) == 1
    # The layout checks measure each page: the wide table and the 100-px image on the bad one.
    bad, good = (
        next(p for p in report.pages if p.path == name) for name in ("bad.html", "good.html")
    )
    assert bad.overflowing == 1 and bad.narrowest_figure is not None and bad.narrowest_figure < 0.8
    assert (
        good.overflowing == 0
        and good.tables == 1
        and good.narrowest_figure == pytest.approx(1.0, abs=0.01)
    )
    # The clean pages have none; the known toolchain error is only a warning; the
    # external link is not fetched.
    assert "good.html" not in by_page and "home.html" not in by_page, details
    assert any("THEBE_JS_URL" in w.detail and "known:" in w.detail for w in report.warnings)
    assert not any("example.org" in str(f) for f in report.problems + report.warnings)

    summary = json.loads((out / "summary.json").read_text())
    assert summary["ok"] is False and summary["page_count"] == 5
    assert len(summary["problems"]) == len(report.problems)
    assert {p["screenshot"] for p in summary["pages"] if p["screenshot"]} == {
        "home.png",
        "good.png",
        "bad.png",
    }
    assert all((out / name).stat().st_size > 0 for name in ("home.png", "good.png", "bad.png"))
