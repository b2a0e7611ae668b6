"""The documentation site builds with MkDocs in strict mode; its pictures are small."""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]


def mkdocs() -> str:
    exe = Path(sys.executable).with_name("mkdocs")
    if not exe.exists():
        pytest.skip('the docs extra is not installed: pip install -e ".[docs]"')
    return str(exe)


def copy_site_sources(dest: Path) -> None:
    shutil.copytree(ROOT / "docs", dest / "docs")
    shutil.copytree(ROOT / "scripts", dest / "scripts")
    shutil.copy(ROOT / "mkdocs.yml", dest / "mkdocs.yml")


def test_site_builds_in_strict_mode(tmp_path):
    env = {**os.environ, "NO_MKDOCS_2_WARNING": "1"}
    site = tmp_path / "site"
    proc = subprocess.run(
        [mkdocs(), "build", "--strict", "--site-dir", str(site)],
        cwd=ROOT,
        capture_output=True,
        text=True,
        env=env,
    )
    assert proc.returncode == 0, proc.stdout + proc.stderr
    for page in ("index", "quickstart", "env", "media", "results", "datasets", "benchmarks"):
        assert (site / page / "index.html").exists() or (site / f"{page}.html").exists(), page
    assert (site / "img" / "hands.png").exists() and (site / "img" / "pianoroll.png").exists()


def test_strict_mode_catches_a_broken_link(tmp_path):
    """The check above can fail: a copy of the docs with one broken link does not build."""
    copy_site_sources(tmp_path)
    with open(tmp_path / "docs" / "quickstart.md", "a") as f:
        f.write("\nSee [the missing page](no-such-page.md).\n")
    proc = subprocess.run(
        [mkdocs(), "build", "--strict", "--site-dir", str(tmp_path / "site")],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        env={**os.environ, "NO_MKDOCS_2_WARNING": "1"},
    )
    assert proc.returncode != 0 and "no-such-page.md" in proc.stdout + proc.stderr


def test_generated_pages_come_from_the_code(tmp_path):
    """Even a stale docs/env.md is built from the env's docstring (scripts/docs_hooks.py)."""
    copy_site_sources(tmp_path)
    (tmp_path / "docs" / "env.md").write_text("# A stale page\n")
    proc = subprocess.run(
        [mkdocs(), "build", "--strict", "--site-dir", str(tmp_path / "site")],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        env={**os.environ, "NO_MKDOCS_2_WARNING": "1"},
    )
    assert proc.returncode == 0, proc.stdout + proc.stderr
    html = (tmp_path / "site" / "env" / "index.html").read_text()
    assert "A stale page" not in html and "PianoMimeEnv reference" in html


def test_every_page_is_in_the_nav_and_pictures_are_small():
    config = (ROOT / "mkdocs.yml").read_text()
    nav = set(re.findall(r":\s*([\w-]+\.md)\s*$", config, flags=re.M))
    pages = {p.name for p in (ROOT / "docs").glob("*.md")}
    assert pages == nav, (pages - nav, nav - pages)
    for picture in (ROOT / "docs" / "img").glob("*.png"):
        assert picture.stat().st_size < 200_000, picture


def test_readme_links_to_the_site():
    readme = (ROOT / "README.md").read_text()
    assert "mkdocs build --strict" in readme and "mkdocs serve" in readme
    assert "](docs/index.md)" in readme
