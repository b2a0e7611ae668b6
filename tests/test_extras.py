"""pianomime_env.extras: optional imports name the extra that installs them."""

from __future__ import annotations

import sys

import pytest

from pianomime_env.extras import require


def test_present_module_is_returned():
    assert require("json", "unused") is sys.modules["json"]


def test_missing_module_names_the_extra(monkeypatch):
    monkeypatch.setitem(sys.modules, "minari", None)  # as if not installed
    with pytest.raises(ImportError, match=r'pip install -e "\.\[datasets\]"') as info:
        require("minari", 'Minari is needed: pip install -e ".[datasets]"')
    assert isinstance(info.value.__cause__, ImportError)


def test_every_guard_uses_it(monkeypatch):
    from pianomime_env.demos import keyboard
    from pianomime_env.learning import datasets, policies

    for module, guard, extra in [
        ("torch", policies.require_torch, "train"),
        ("minari", datasets.import_minari, "datasets"),
        ("cv2", keyboard.import_cv2, "video"),
    ]:
        monkeypatch.setitem(sys.modules, module, None)
        with pytest.raises(ImportError, match=extra):
            guard()
