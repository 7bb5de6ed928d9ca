"""Code in cifarkit that nothing calls, found by vulture; `make lint` runs this.

Most study, plot and statistics functions are called only from the book's chapters, so
their code cells count as callers: they are written out as Python files (IPython magics
left out) and analysed with the package, the tests and the tools. Only findings in
``cifarkit/`` and ``tools/`` are reported: an unused name in a chapter or a test is not
dead package code. Settings (confidence, framework hooks) are pyproject.toml's
``[tool.vulture]``; names used in ways vulture cannot see are in ``tools/vulture_allowlist.py``.

Usage: python tools/deadcode.py [CHECKOUT]   (default this one; exit 1 and one line per finding
when something is unused)
"""

from __future__ import annotations

import json
import subprocess
import sys
import tempfile
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
REPORTED = ("cifarkit/", "tools/")


def chapter_code(notebook: Path) -> str:
    """The code cells of ``notebook`` as one Python source, without IPython magics."""
    lines: list[str] = []
    for cell in json.loads(notebook.read_text())["cells"]:
        if cell["cell_type"] == "code":
            source = "".join(cell["source"])
            lines += [
                line for line in source.splitlines() if not line.lstrip().startswith(("%", "!"))
            ]
            lines.append("")
    return "\n".join(lines)


def main(root: Path = REPO) -> int:
    with tempfile.TemporaryDirectory() as chapters:
        for notebook in sorted((root / "book").glob("*.ipynb")):
            (Path(chapters) / f"{notebook.stem}.py").write_text(chapter_code(notebook))
        result = subprocess.run(
            [sys.executable, "-m", "vulture", "cifarkit", "tests", "tools", chapters],
            cwd=root,
            capture_output=True,
            text=True,
        )
    if result.returncode not in (
        0,
        3,
    ):  # 3: vulture found unused code; anything else is its own error
        sys.stderr.write(result.stdout + result.stderr)
        return result.returncode
    findings = [line for line in result.stdout.splitlines() if line.startswith(REPORTED)]
    for line in findings:
        print(line)
    if findings:
        print(
            f"{len(findings)} unused name(s): remove them, or list a name used where vulture cannot see it "
            "in tools/vulture_allowlist.py",
            file=sys.stderr,
        )
    return 1 if findings else 0


if __name__ == "__main__":
    sys.exit(main(Path(sys.argv[1]).resolve() if len(sys.argv) > 1 else REPO))
