"""The book build's use of the remote: pull before the chapters run, push after the build.

``cifarkit book build --remote URL --push`` (or ``CIFARKIT_REMOTE`` and ``CIFARKIT_PUSH=1``)
pulls every remote run that is not complete locally before any chapter runs, so a run the
remote holds is not trained again, and pushes every complete local run the remote lacks
once the book built.
"""

from __future__ import annotations

import logging
import os

from cifarkit.core.errors import CifarkitError
from cifarkit.runs.remote.access import ENV_URL, configured_url
from cifarkit.runs.remote.transfer import RemoteStore, TransferReport

log = logging.getLogger(__name__)

ENV_PUSH = "CIFARKIT_PUSH"


def push_requested(flag: bool = False) -> bool:
    """True with ``--push`` or ``CIFARKIT_PUSH=1``."""
    return flag or os.environ.get(ENV_PUSH, "").strip().lower() in ("1", "true", "yes")


def book_remote(remote: str | None, push_flag: bool) -> tuple[str | None, bool]:
    """The book build's remote and whether to push after it; checked before any slow step.

    Parameters
    ----------
    remote : str or None
        ``--remote``; None falls back to ``$CIFARKIT_REMOTE``.
    push_flag : bool
        ``--push``; ``CIFARKIT_PUSH=1`` also asks for the push.

    Returns
    -------
    tuple of (str or None, bool)
        The URL (None: no remote) and whether to push complete runs after the build.
    """
    url = configured_url(remote)
    wanted = push_requested(push_flag)
    if wanted and url is None:
        raise CifarkitError(
            f"--push (or {ENV_PUSH}=1) needs a remote: pass --remote URL or set {ENV_URL}"
        )
    if url is not None:
        RemoteStore(url)  # a missing backend package fails now, not after the chapters ran
    return url, wanted


def pull_for_build(url: str, push: bool = False) -> TransferReport:
    """Before the book's chapters run: pull every remote run that is not complete locally.

    A refused run is logged and left to the run store (a chapter that needs it trains it);
    an unreachable remote, missing credentials or a store folder that does not exist stop
    the build with one line, except that a build which pushes afterwards (``push``) may
    start a new store: then there is nothing to pull.
    """
    store = RemoteStore(url)
    if push and not store.exists():
        log.info(
            "remote %s does not exist yet: nothing to pull; the push after the build creates it",
            url,
        )
        return TransferReport("pull", store.url)
    report = store.pull()
    for name, problem in report.refused:
        log.warning("not pulled: %s", problem if name in problem else f"{name}: {problem}")
    already = sum("complete locally" in why for _, why in report.skipped)
    log.info(
        "remote %s: pulled %d run(s) (%.1f MB, %.1f s); %d already complete locally, %d refused",
        url,
        len(report.done),
        report.bytes / 1e6,
        report.seconds,
        already,
        len(report.refused),
    )
    return report


def push_after_build(url: str) -> TransferReport:
    """After the book built: push every complete local run the remote lacks."""
    report = RemoteStore(url).push()
    for name, problem in report.refused:
        log.warning("not pushed: %s: %s", name, problem)
    log.info("remote %s: %s", url, report.summary())
    return report
