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


def test_docs_describe_the_machine_not_who_ran_it():
    """A figure's context is the machine, its load and the date, not who measured it."""
    import re
    from pathlib import Path

    root = Path(__file__).resolve().parents[1]
    pattern = re.compile(r"other agents|the lead's|a helper's|this session's|first session", re.I)
    pages = [root / "README.md", *sorted((root / "docs").glob("*.md"))]
    hits = [f"{p.name}: {m.group(0)}" for p in pages for m in pattern.finditer(p.read_text())]
    assert not hits, hits
