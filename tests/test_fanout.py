"""pianomime_env.fanout: the local process pool and the Ray path."""

from __future__ import annotations

import os
import sys

import pytest

from pianomime_env.fanout import RAY_HINT, default_workers, run_tasks


def square(x: int, progress_position: int | None = None) -> tuple[int, int, int | None]:
    return x * x, os.getpid(), progress_position


def die_on(x: int, bad: int, progress_position: int | None = None) -> int:
    if x == bad:
        os._exit(3)  # a hard crash of the worker process, not an exception
    return x


def test_in_process_with_one_worker():
    out = dict(run_tasks(square, [(k, (k,)) for k in range(3)], workers=1))
    assert {k: v[0] for k, v in out.items()} == {0: 0, 1: 1, 2: 4}
    assert {v[1] for v in out.values()} == {os.getpid()}
    assert {v[2] for v in out.values()} == {1}


def test_pool_uses_worker_processes():
    out = dict(run_tasks(square, [(k, (k,)) for k in range(6)], workers=2))
    assert {k: v[0] for k, v in out.items()} == {k: k * k for k in range(6)}
    pids = {v[1] for v in out.values()}
    assert os.getpid() not in pids and 1 <= len(pids) <= 2
    assert {v[2] for v in out.values()} <= {1, 2}  # worker slots for the tqdm bars


def test_a_dead_worker_is_reported_not_raised():
    out = dict(run_tasks(die_on, [(k, (k, 1)) for k in range(3)], workers=2))
    assert set(out) == {0, 1, 2}
    assert isinstance(out[1], Exception)


def test_default_workers():
    assert 1 <= default_workers() <= (os.cpu_count() or 1)


def test_ray_missing_names_the_extra(monkeypatch):
    monkeypatch.setitem(sys.modules, "ray", None)
    with pytest.raises(ImportError) as e:
        list(run_tasks(square, [(0, (0,))], ray=True))
    assert str(e.value) == RAY_HINT and ".[distributed]" in RAY_HINT
