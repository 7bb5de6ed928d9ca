"""Check a built static site in headless Chromium: pages, images, links, error cells.

Serves the folder with the standard library's ``http.server`` on an ephemeral localhost
port, crawls every internal HTML page reachable from ``index.html`` with Playwright driving
Debian's Chromium, and collects *problems* (which fail the check) and *warnings*
(reported only). Playwright's own crawler-free API is used because no library crawls a
site and checks rendered images/anchors together; the crawl itself is a plain BFS.

Every page is also measured at :data:`VIEWPORT` (1280 px wide), with every collapsed block
(dropdowns, hidden code) opened so that what a reader can unfold is measured too: no table
or figure may be wider than the article's text column or make its scroll container scroll
sideways (``overflow``), and every figure image must render at least
:data:`MIN_FIGURE_FRACTION` of the text column's width (``figure-width``). The screenshot
of each page is taken before anything is opened, as a reader first sees it.
"""

from __future__ import annotations

import contextlib
import dataclasses
import functools
import http.server
import logging
import re
import threading
import time
import urllib.error
import urllib.request
from collections import deque
from collections.abc import Iterator
from pathlib import Path
from typing import Any
from urllib.parse import unquote, urldefrag, urljoin, urlsplit

from cifarkit.core.atomic import write_json

log = logging.getLogger(__name__)

#: Flags that keep Chromium off the (closed) network and out of the sandbox we cannot use
#: as root; without the background-networking ones its own connections are refused.
CHROMIUM_ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]

#: The window every page is opened, measured and photographed in.
VIEWPORT = {"width": 1280, "height": 900}
#: Tallest screenshot taken of a page (CSS px), from its top.
MAX_SCREENSHOT_HEIGHT = 12_000
#: Narrowest a figure image may render, as a share of the text column's width.
MIN_FIGURE_FRACTION = 0.8
#: Slack (CSS px) for sub-pixel rounding in the layout checks.
_LAYOUT_SLACK = 1.5

#: Elements that show a failed notebook cell or a docutils error in a rendered page.
ERROR_SELECTORS = [
    ".output.error",
    ".output.traceback",
    "div.output_error",
    ".output_traceback",
    "div.system-message",
    ".problematic",
]
TRACEBACK_TEXT = "Traceback (most recent call last)"

_PAGE_SUFFIXES = (".html", ".htm", "/")

#: Console/script errors raised by the site *toolchain* on every Jupyter Book 1.0.4 page,
#: kept as warnings (marked "known") instead of failures. Each is exact, with its reason;
#: anything else from our pages fails the check.
KNOWN_TOOLCHAIN_ERRORS: list[tuple[re.Pattern[str], str]] = [
    (
        re.compile(r"^Identifier 'THEBE_JS_URL' has already been declared$"),
        "sphinx-thebe 0.3.1 adds its inline config script twice under Sphinx 7.4 (also on an "
        "empty jupyter-book 1.0.4 book); thebe is off in _config.yml, nothing uses it",
    ),
    (
        re.compile(r"^Got invalid theme mode: \. Resetting to auto\."),
        "pydata-sphinx-theme on a first visit (empty localStorage, no html default_mode); "
        "it falls back to 'auto' as intended",
    ),
]

#: Requests the browser makes on its own, not because a page asked for them.
_IMPLICIT_REQUESTS = ("favicon.ico",)

# Runs in the page: make lazy images eager and wait (bounded) until each settled.
_WAIT_IMAGES_JS = """async (timeoutMs) => {
  const imgs = Array.from(document.images);
  await Promise.all(imgs.map(img => {
    img.loading = 'eager';
    if (img.complete) return null;
    return new Promise(done => {
      img.addEventListener('load', done); img.addEventListener('error', done);
      setTimeout(done, timeoutMs);
    });
  }));
}"""

# Runs in the page: everything the checks need from the rendered DOM.
_INSPECT_JS = """([selectors, tracebackText]) => {
  const images = Array.from(document.images).map(img => ({
    src: img.currentSrc || img.src, complete: img.complete, naturalWidth: img.naturalWidth}));
  const links = Array.from(document.querySelectorAll('a[href]')).map(a => a.href);
  const ids = Array.from(document.querySelectorAll('[id], a[name]')).map(e => e.id || e.name);
  const errors = [];
  for (const sel of selectors) {
    for (const el of document.querySelectorAll(sel)) {
      errors.push({selector: sel, text: (el.innerText || '').trim().slice(0, 200)});
    }
  }
  for (const el of document.querySelectorAll('div.cell_output, div.output, .output_area')) {
    if ((el.innerText || '').includes(tracebackText)) {
      errors.push({selector: 'cell output text', text: (el.innerText || '').trim().slice(0, 200)});
    }
  }
  const main = document.querySelector('main') || document.body;
  if (errors.length === 0 && main && (main.innerText || '').includes(tracebackText)) {
    errors.push({selector: 'page text', text: tracebackText});
  }
  const refresh = document.querySelector('meta[http-equiv="Refresh" i]');
  return {images, links, ids, errors, refresh: refresh ? refresh.content : null,
          title: document.title};
}"""


# Runs in the page: open every collapsed block, then measure the text column, every table
# and every image against it. The text column is the article's content box (sphinx-book-theme's
# article.bd-article; <main> or <body> on other sites). A table's scroll container is its
# nearest ancestor (or itself) that scrolls sideways: it overflows when its content is wider
# than its box.
_LAYOUT_JS = r"""([slack]) => {
  for (const d of document.querySelectorAll('details')) d.open = true;
  const article = document.querySelector('article.bd-article') || document.querySelector('main') || document.body;
  const style = getComputedStyle(article);
  const box = article.getBoundingClientRect();
  const left = box.left + parseFloat(style.paddingLeft) + parseFloat(style.borderLeftWidth);
  const width = article.clientWidth - parseFloat(style.paddingLeft) - parseFloat(style.paddingRight);
  const right = left + width;
  const describe = el => {
    if (el.tagName === 'IMG') return 'image ' + (el.getAttribute('src') || '').split('/').pop().slice(0, 24);
    const head = ((el.tHead || el.rows[0] || el).innerText || '').replace(/\s+/g, ' ').trim();
    return 'table ' + JSON.stringify(head.slice(0, 60));
  };
  const scroller = el => {
    for (let node = el; node && node !== article.parentElement; node = node.parentElement) {
      const overflowX = getComputedStyle(node).overflowX;
      if (['auto', 'scroll', 'hidden'].includes(overflowX) && node !== article) return node;
    }
    return null;
  };
  const overflows = [];
  const check = el => {
    const r = el.getBoundingClientRect();
    if (r.width === 0 && r.height === 0) return null;  // not rendered
    const reasons = [];
    if (r.width > width + slack) reasons.push(`${Math.round(r.width)} px wide in a ${Math.round(width)} px column`);
    else if (r.right > right + slack || r.left < left - slack) reasons.push('sticks out of the text column');
    const s = scroller(el);
    if (s && s.scrollWidth > s.clientWidth + slack) {
      reasons.push(`scrolls sideways (${s.scrollWidth} px of content in ${s.clientWidth} px)`);
    }
    if (reasons.length) overflows.push({what: describe(el), why: reasons.join('; ')});
    return r;
  };
  const tables = Array.from(article.querySelectorAll('table'));
  tables.forEach(check);
  const figures = [];
  for (const img of article.querySelectorAll('img')) {
    if (!(img.complete && img.naturalWidth > 0)) continue;  // a broken image is reported as such
    const r = check(img);
    if (r) figures.push({what: describe(img), fraction: r.width / width});
  }
  return {textWidth: width, tables: tables.length, overflows, figures};
}"""


@dataclasses.dataclass
class Finding:
    """One problem (fails the check) or warning (reported only) on one page."""

    page: str
    kind: str
    detail: str

    def __str__(self) -> str:
        return f"{self.page}: [{self.kind}] {self.detail}"


@dataclasses.dataclass
class PageResult:
    """What was seen on one crawled page."""

    path: str
    status: int | None
    title: str = ""
    images: int = 0
    links: int = 0
    redirect_to: str | None = None
    screenshot: str | None = None
    seconds: float = 0.0
    text_width: float | None = None  # CSS px of the article's text column
    tables: int = 0
    figures: int = 0
    overflowing: int = 0  # tables and figures wider than the column or scrolling
    narrowest_figure: float | None = (
        None  # the narrowest figure image, as a share of the text width
    )


@dataclasses.dataclass
class SiteReport:
    """The outcome of one crawl."""

    site: str
    pages: list[PageResult] = dataclasses.field(default_factory=list)
    problems: list[Finding] = dataclasses.field(default_factory=list)
    warnings: list[Finding] = dataclasses.field(default_factory=list)
    seconds: float = 0.0
    browser: str = ""

    def kinds(self) -> set[str]:
        """The distinct problem kinds found (``image``, ``link``, ``anchor``, ...)."""
        return {p.kind for p in self.problems}

    def to_json(self) -> dict[str, Any]:
        return {
            "site": self.site,
            "browser": self.browser,
            "seconds": round(self.seconds, 2),
            "page_count": len(self.pages),
            "ok": not self.problems,
            "pages": [dataclasses.asdict(p) for p in self.pages],
            "problems": [dataclasses.asdict(p) for p in self.problems],
            "warnings": [dataclasses.asdict(w) for w in self.warnings],
        }


class _QuietHandler(http.server.SimpleHTTPRequestHandler):
    """The stdlib static-file handler, logging to ``logging`` at debug level, not stderr."""

    def log_message(self, format: str, *args: Any) -> None:  # noqa: A002 - stdlib signature
        log.debug("http: " + format, *args)


class _QuietServer(http.server.ThreadingHTTPServer):
    """A client closing early (Chromium cancels requests) is not worth a printed traceback."""

    daemon_threads = True

    def handle_error(self, request: Any, client_address: Any) -> None:
        log.debug("http: request from %s failed", client_address, exc_info=True)


@contextlib.contextmanager
def serve(root: Path) -> Iterator[str]:
    """Serve ``root`` on an ephemeral 127.0.0.1 port in a thread; yield its base URL."""
    handler = functools.partial(_QuietHandler, directory=str(root))
    server = _QuietServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=server.serve_forever, name="site-server", daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}/"
    finally:
        server.shutdown()
        server.server_close()
        thread.join(timeout=5)


def _is_page(url: str) -> bool:
    return urlsplit(url).path.endswith(_PAGE_SUFFIXES)


def _page_key(url: str) -> str:
    """The URL without query and fragment (``/`` → ``/index.html``), used to crawl once."""
    parts = urlsplit(url)
    path = parts.path + ("index.html" if parts.path.endswith("/") else "")
    return f"{parts.scheme}://{parts.netloc}{path}"


def _relative(url: str, base: str) -> str:
    return url[len(base) :] if url.startswith(base) else url


def _head_ok(url: str) -> tuple[bool, str]:
    """Whether a non-page internal target (download, image, source file) is served."""
    try:
        with urllib.request.urlopen(urllib.request.Request(url, method="HEAD"), timeout=10) as r:
            return r.status < 400, str(r.status)
    except urllib.error.HTTPError as exc:
        return False, str(exc.code)
    except OSError as exc:
        return False, str(exc)


def _known(text: str) -> str | None:
    """The reason a toolchain error is tolerated, or None when it is a real problem."""
    for pattern, reason in KNOWN_TOOLCHAIN_ERRORS:
        if pattern.search(text):
            return reason
    return None


def _screenshot_name(rel: str) -> str:
    return (re.sub(r"[^A-Za-z0-9._-]+", "_", rel.removesuffix(".html")) or "index") + ".png"


def check_site(
    site: Path,
    out_dir: Path | None,
    browser: Any,
    *,
    start: str = "index.html",
    timeout_ms: int = 30_000,
) -> SiteReport:
    """Crawl ``site`` from ``start`` with a launched Playwright ``browser``.

    Screenshots and ``summary.json`` go to ``out_dir`` (skipped when it is None).
    """
    report = SiteReport(site=str(site), browser=browser.version)
    started = time.monotonic()
    if out_dir is not None:
        out_dir.mkdir(parents=True, exist_ok=True)
        for old in out_dir.glob("*.png"):
            old.unlink()
    with serve(site) as base:
        context = browser.new_context(viewport=VIEWPORT)
        try:
            _crawl(base, start, context, report, out_dir, timeout_ms)
        finally:
            context.close()
    report.seconds = time.monotonic() - started
    if out_dir is not None:
        write_json(out_dir / "summary.json", report.to_json())
    return report


def _crawl(
    base: str, start: str, context: Any, report: SiteReport, out_dir: Path | None, timeout_ms: int
) -> None:
    queue: deque[str] = deque([urljoin(base, start)])
    seen: set[str] = {_page_key(queue[0])}
    ids: dict[str, set[str] | None] = {}
    anchors: list[tuple[str, str, str]] = []  # (from page, target page key, fragment)
    checked_files: dict[str, tuple[bool, str]] = {}
    while queue:
        url = queue.popleft()
        rel = _relative(url, base)
        result, seen_ids, links = _visit(url, rel, base, context, report, out_dir, timeout_ms)
        report.pages.append(result)
        ids[_page_key(url)] = seen_ids
        for link in links:
            if not link.startswith(base):
                continue  # external: not fetched (no network here)
            target, fragment = urldefrag(link)
            if _is_page(target):
                key = _page_key(target)
                if fragment:
                    anchors.append((rel, key, unquote(fragment)))
                if key not in seen:
                    seen.add(key)
                    queue.append(key)
            else:
                if target not in checked_files:
                    checked_files[target] = _head_ok(target)
                ok, why = checked_files[target]
                if not ok:
                    report.problems.append(
                        Finding(rel, "link", f"{_relative(target, base)} → {why}")
                    )
    for page, key, fragment in anchors:
        # A page that failed to load was already reported; only check anchors on loaded ones.
        known = ids.get(key)
        if known is not None and fragment not in known:
            report.problems.append(
                Finding(page, "anchor", f"{_relative(key, base)}#{fragment} → no such id")
            )


def _visit(
    url: str,
    rel: str,
    base: str,
    context: Any,
    report: SiteReport,
    out_dir: Path | None,
    timeout_ms: int,
) -> tuple[PageResult, set[str] | None, list[str]]:
    """Open one page, run every check on it; return its result, its ids and its links."""
    started = time.monotonic()
    page = context.new_page()
    events: list[Finding] = []

    def local(u: str) -> bool:
        return u.startswith(base)

    def error_event(kind: str, text: str, ours: bool, where: str = "") -> None:
        reason = _known(text)
        detail = text + (f" (at {_relative(where, base)})" if where else "")
        if reason:
            report.warnings.append(Finding(rel, kind, f"{detail} [known: {reason}]"))
        else:
            (events if ours else report.warnings).append(Finding(rel, kind, detail))

    def on_console(msg: Any) -> None:
        if msg.type != "error":
            return
        where = (msg.location or {}).get("url", "")
        # Resource failures are judged by on_requestfailed/on_response (by their URL);
        # any other error logged by a script of our own site fails the check.
        if "Failed to load resource" in msg.text or "net::ERR_" in msg.text:
            return
        error_event("console", msg.text, ours=not where or local(where), where=where)

    def on_pageerror(exc: Any) -> None:
        error_event("script", str(exc).splitlines()[0][:300], ours=True)

    def request_event(url: str, detail: str) -> None:
        path = _relative(url, base)
        ours = local(url) and path not in _IMPLICIT_REQUESTS
        (events if ours else report.warnings).append(Finding(rel, "request", f"{path} {detail}"))

    def on_requestfailed(req: Any) -> None:
        request_event(req.url, f"failed: {req.failure}")

    def on_response(resp: Any) -> None:
        if resp.status >= 400:
            request_event(resp.url, f"→ HTTP {resp.status}")

    page.on("console", on_console)
    page.on("pageerror", on_pageerror)
    page.on("requestfailed", on_requestfailed)
    page.on("response", on_response)
    result = PageResult(path=rel, status=None)
    try:
        response = page.goto(url, wait_until="load", timeout=timeout_ms)
        result.status = response.status if response else None
        if response is None or not response.ok:
            report.problems.append(Finding(rel, "page", f"HTTP {result.status}"))
            return result, None, []
        info = _inspect(page, timeout_ms)
        if _page_key(page.url) != _page_key(url):
            # Already navigated away (the book's root index.html is a meta-refresh redirect):
            # the target is crawled as a page of its own.
            result.redirect_to = _relative(page.url, base)
            return result, set(), [page.url]
        if info["refresh"]:
            target = urljoin(
                url, re.split(r"url=", info["refresh"], maxsplit=1, flags=re.I)[-1].strip()
            )
            result.redirect_to = _relative(target, base)
            try:
                page.wait_for_url(lambda u: _page_key(u) == _page_key(target), timeout=timeout_ms)
            except Exception as exc:  # Playwright's TimeoutError: report, keep crawling
                report.problems.append(Finding(rel, "redirect", f"→ {result.redirect_to}: {exc}"))
            return result, set(), [target]
        result.title = info["title"]
        result.images, result.links = len(info["images"]), len(info["links"])
        broken = {
            _relative(img["src"], base)
            for img in info["images"]
            if not (img["complete"] and img["naturalWidth"] > 0)
        }
        for src in sorted(broken):
            report.problems.append(Finding(rel, "image", f"{src} did not load"))
        # A broken image's failed request is the same fault: report it once, as the image.
        events[:] = [
            f for f in events if not (f.kind == "request" and f.detail.split(" ")[0] in broken)
        ]
        for err in info["errors"]:
            report.problems.append(Finding(rel, "error-cell", f"{err['selector']}: {err['text']}"))
        if out_dir is not None:
            shot = out_dir / _screenshot_name(rel)
            # The whole page, down to a cap: the API reference is tens of thousands of pixels
            # tall, and photographing all of it takes Chromium longer than the check allows.
            height = min(
                page.evaluate("document.documentElement.scrollHeight"), MAX_SCREENSHOT_HEIGHT
            )
            page.screenshot(
                path=str(shot),
                full_page=True,
                timeout=timeout_ms,
                clip={"x": 0, "y": 0, "width": VIEWPORT["width"], "height": height},
            )
            result.screenshot = shot.name
        _check_layout(page, rel, result, report)
        return result, set(info["ids"]), info["links"]
    except Exception as exc:  # Playwright errors (timeouts, crashes) are findings, not aborts
        report.problems.append(
            Finding(rel, "page", f"{type(exc).__name__}: {str(exc).splitlines()[0]}")
        )
        return result, None, []
    finally:
        report.problems.extend(events)
        page.close()
        result.seconds = round(time.monotonic() - started, 2)


def _check_layout(page: Any, rel: str, result: PageResult, report: SiteReport) -> None:
    """Measure tables and figures against the text column (:data:`_LAYOUT_JS`); record the
    page's figures in ``result`` and each overflow or narrow figure as a problem."""
    layout = page.evaluate(_LAYOUT_JS, [_LAYOUT_SLACK])
    result.text_width = round(layout["textWidth"], 1)
    result.tables, result.figures = layout["tables"], len(layout["figures"])
    result.overflowing = len(layout["overflows"])
    for item in layout["overflows"]:
        report.problems.append(Finding(rel, "overflow", f"{item['what']}: {item['why']}"))
    fractions = [f["fraction"] for f in layout["figures"]]
    result.narrowest_figure = round(min(fractions), 3) if fractions else None
    for figure in layout["figures"]:
        if figure["fraction"] < MIN_FIGURE_FRACTION:
            report.problems.append(
                Finding(
                    rel,
                    "figure-width",
                    f"{figure['what']} renders at "
                    f"{figure['fraction']:.0%} of the text width (at least "
                    f"{MIN_FIGURE_FRACTION:.0%} wanted)",
                )
            )


def _inspect(page: Any, timeout_ms: int) -> dict[str, Any]:
    """Let the page settle (network idle, images loaded), then read the DOM facts."""
    with contextlib.suppress(Exception):  # a page that keeps polling still gets checked
        page.wait_for_load_state("networkidle", timeout=5_000)
    for attempt in range(3):
        try:
            page.evaluate(_WAIT_IMAGES_JS, 10_000)
            return page.evaluate(_INSPECT_JS, [ERROR_SELECTORS, TRACEBACK_TEXT])
        except Exception as exc:
            # A meta-refresh page may navigate away mid-evaluation: read it from the target.
            if "Execution context was destroyed" not in str(exc) or attempt == 2:
                raise
            page.wait_for_load_state("load", timeout=timeout_ms)
    raise AssertionError("unreachable")
