"""MkDocs hooks (mkdocs.yml ``hooks:``): the generated reference pages come from the code.

Pages that ``scripts/render_docs.py`` writes from docstrings (env.md, songs.md, residual-ik.md,
...) are rendered afresh from the installed package at every ``mkdocs build`` / ``mkdocs serve``,
so the site cannot show a stale copy even if ``docs/*.md`` was not regenerated (the committed
copies, for reading on GitHub, are checked by ``render_docs.py --check`` in the test suite).
"""

from __future__ import annotations

import importlib.util
from pathlib import Path

_GENERATED: dict[str, str] = {}


def _render_docs():
    path = Path(__file__).with_name("render_docs.py")
    spec = importlib.util.spec_from_file_location("render_docs", path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def on_pre_build(config, **kwargs) -> None:
    render_docs = _render_docs()
    docs_dir = Path(config["docs_dir"]).resolve()
    _GENERATED.clear()
    for path, text in render_docs.pages().items():
        _GENERATED[path.resolve().relative_to(docs_dir).as_posix()] = text


def on_page_read_source(page, config, **kwargs) -> str | None:
    return _GENERATED.get(page.file.src_uri)
