"""Optional dependencies (the package's extras): import one, or say which extra installs it."""

from __future__ import annotations

import importlib
from typing import Any


def require(module: str, hint: str) -> Any:
    """``import module``, or an ``ImportError`` carrying ``hint`` (what needs it and which
    ``pip install -e ".[extra]"`` adds it), chained to the original error."""
    try:
        return importlib.import_module(module)
    except ImportError as exc:
        raise ImportError(hint) from exc


def require_torch() -> Any:
    """Imports torch, or raises ``ImportError`` naming the ``train`` extra."""
    return require(
        "torch",
        "learned policies need torch, which the train extra installs: "
        '.venv/bin/pip install -e ".[train]"',
    )
