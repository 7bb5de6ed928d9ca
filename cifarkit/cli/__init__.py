"""The ``cifarkit`` command: a thin layer that parses, calls the package and prints.

Errors a user can fix (:class:`~cifarkit.core.errors.CifarkitError`) are printed as one line on
stderr with exit code 2; ``--debug`` shows the traceback. Anything else is a bug and
keeps its traceback.
"""

from __future__ import annotations

import logging
import os
import sys
import traceback
from collections.abc import Sequence

from cifarkit.core.errors import CifarkitError

log = logging.getLogger("cifarkit")


def setup_logging(verbosity: int) -> None:
    """Configure stdlib logging once: -q warnings only, default info, -v debug."""
    level = {-1: logging.WARNING, 0: logging.INFO}.get(verbosity, logging.DEBUG)
    logging.basicConfig(level=level, format="%(asctime)s %(levelname)-7s %(name)s: %(message)s",
                        datefmt="%H:%M:%S", stream=sys.stderr, force=True)
    if level > logging.DEBUG:
        # TensorFlow's C++ and absl chatter would drown the progress lines.
        os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
        os.environ.setdefault("MLFLOW_LOGGING_LEVEL", "WARNING")  # mlflow resets its logger on import
        for noisy in ("absl", "tensorflow", "mlflow", "alembic", "matplotlib", "PIL", "h5py"):
            logging.getLogger(noisy).setLevel(logging.WARNING)


def main(argv: Sequence[str] | None = None) -> int:
    """Run the ``cifarkit`` command with ``argv`` (default: the process arguments); return its exit code."""
    from cifarkit.cli.parser import build_parser

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

