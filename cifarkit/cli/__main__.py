"""``python -m cifarkit.cli``: the same as the ``cifarkit`` command."""

import sys

from cifarkit.cli import main

sys.exit(main())
