"""The ``cifarkit`` command: a thin layer that parses, calls the package and prints.

Errors a user can fix (:class:`~cifarkit.core.errors.CifarkitError`) are printed as one line on
stderr with exit code 2; ``--debug`` shows the traceback. Anything else is a bug and
keeps its traceback.
"""

from __future__ import annotations

import logging
import sys
import traceback
from collections.abc import Sequence

from cifarkit.core.errors import CifarkitError


def setup_logging(verbosity: int) -> None:
    """Configure stdlib logging once: -q warnings only, default info, -v debug."""
    from cifarkit.core.tfquiet import setup_logging as configure

    configure({-1: logging.WARNING, 0: logging.INFO}.get(verbosity, logging.DEBUG))


def main(argv: Sequence[str] | None = None) -> int:
    """Run the ``cifarkit`` command with ``argv`` (default: the process arguments); return its exit code."""
    from cifarkit.cli.parser import build_parser
    from cifarkit.core.startup import start

    start()  # before anything imports TensorFlow

    parser = build_parser()
    args = parser.parse_args(argv)
    setup_logging(args.verbosity)
    try:
        return args.func(args)
    except CifarkitError as exc:
        if args.debug:
            traceback.print_exc()
        print(f"cifarkit: error: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("cifarkit: interrupted", file=sys.stderr)
        return 130
