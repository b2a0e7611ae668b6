"""Generated docs match the code's docstrings; README's documented commands exist."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def test_generated_docs_are_current():
    proc = subprocess.run(
        [sys.executable, str(ROOT / "scripts" / "render_docs.py"), "--check"],
        capture_output=True,
        text=True,
    )
    assert proc.returncode == 0, proc.stdout + proc.stderr


def test_readme_links_and_scripts_exist():
    readme = (ROOT / "README.md").read_text()
    for target in ("scripts/quickstart.sh", "scripts/test.sh"):
        assert target in readme and (ROOT / target).exists()
    for line in readme.splitlines():
        if "](docs/" in line:
            for part in line.split("](docs/")[1:]:
                target = part.split(")")[0].split("#")[0]  # a page, maybe with an anchor
                assert (ROOT / "docs" / target).exists(), part
    assert "scripts/test.sh" in (ROOT / ".ci" / "run").read_text()
