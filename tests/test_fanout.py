"""pianomime_env.collection.fanout: the local process pool and the Ray path."""

from __future__ import annotations

import os
import shutil
import sys
import tempfile

import pytest

from pianomime_env.collection.fanout import (
    RAY_HINT,
    InfrastructureError,
    default_workers,
    is_infrastructure_error,
    run_tasks,
)


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


def fail_on(x: int, bad: int, progress_position: int | None = None) -> int:
    if x == bad:
        raise ValueError(f"task {x} fails")
    return x


@pytest.mark.parametrize("workers", [1, 2])
def test_a_tasks_own_exception_is_yielded_in_process_and_in_the_pool(workers):
    out = dict(run_tasks(fail_on, [(k, (k, 1)) for k in range(3)], workers=workers))
    assert out[0] == 0 and out[2] == 2
    assert isinstance(out[1], ValueError) and "task 1 fails" in str(out[1])


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


# -- failures: the task's own vs the infrastructure's ---------------------------------------------


def crash_first(x: int, marker_dir: str, progress_position: int | None = None) -> int:
    """Kills its own process the first time it runs for ``x`` (a lost worker), then works."""
    marker = os.path.join(marker_dir, f"ran-{x}")
    if not os.path.exists(marker):
        open(marker, "w").close()
        os._exit(9)
    return x


def count_and_raise(x: int, marker_dir: str, progress_position: int | None = None) -> int:
    with open(os.path.join(marker_dir, f"ran-{x}"), "a") as f:
        f.write(".")
    raise ValueError(f"bad song {x}")


def out_of_memory(x: int, progress_position: int | None = None) -> int:
    raise MemoryError("no room")


def _runs(marker_dir, x) -> int:
    return len(open(os.path.join(marker_dir, f"ran-{x}")).read())


def test_pool_reruns_tasks_of_a_dead_worker_each_in_its_own_process(tmp_path):
    retried = []
    out = dict(
        run_tasks(
            crash_first,
            [(k, (k, str(tmp_path))) for k in range(3)],
            workers=2,
            on_retry=lambda key, exc, attempt: retried.append((key, type(exc).__name__, attempt)),
        )
    )
    assert out == {0: 0, 1: 1, 2: 2}  # every task once, all done after the crashes
    assert retried and {r[1] for r in retried} == {"BrokenProcessPool"}


def test_pool_a_persistent_crash_is_an_infrastructure_error_after_the_retries():
    out = dict(run_tasks(die_on, [(k, (k, 1)) for k in range(4)], workers=2, retries=1))
    assert {k: v for k, v in out.items() if k != 1} == {0: 0, 2: 2, 3: 3}
    assert isinstance(out[1], InfrastructureError) and out[1].attempts == 2
    assert is_infrastructure_error(out[1].cause)


def test_pool_the_tasks_own_exception_is_not_retried(tmp_path):
    out = dict(run_tasks(count_and_raise, [(k, (k, str(tmp_path))) for k in range(2)], workers=2))
    assert all(isinstance(v, ValueError) and not is_infrastructure_error(v) for v in out.values())
    assert _runs(tmp_path, 0) == _runs(tmp_path, 1) == 1


def test_infrastructure_errors_are_told_from_the_tasks_own():
    import ray.exceptions as rex

    infra = [
        rex.WorkerCrashedError(),
        rex.NodeDiedError("node lost"),
        rex.OutOfMemoryError("killed by the memory monitor"),
        rex.TaskUnschedulableError("no node"),
        rex.ActorDiedError(),
        rex.OwnerDiedError("ab" * 14, None, ""),
        rex.LocalRayletDiedError(),
        MemoryError(),
    ]
    assert all(is_infrastructure_error(e) for e in infra)
    for cause, expected in ((ValueError("bad"), False), (MemoryError(), True)):
        wrapped = rex.RayTaskError("collect_song", "traceback", cause)
        assert is_infrastructure_error(wrapped) is expected
        assert is_infrastructure_error(wrapped.as_instanceof_cause()) is expected
    assert not is_infrastructure_error(ValueError("a corrupt MIDI file"))
    assert not is_infrastructure_error(rex.TaskCancelledError())


@pytest.fixture(scope="module")
def local_ray():
    """One local Ray instance (2 CPUs, its own temp dir) for the Ray tests of this module;
    run_tasks uses it as it finds it (and leaves it running)."""
    ray = pytest.importorskip("ray")
    saved = dict(os.environ)  # ray.init sets RAY_AUTH_MODE in this process: put it back after
    os.environ["RAY_TMPDIR"] = tempfile.mkdtemp(prefix="pmray-", dir="/tmp")  # short: sockets
    try:
        ray.init(num_cpus=2, include_dashboard=False, log_to_driver=False)
        yield ray
    finally:
        ray.shutdown()
        shutil.rmtree(os.environ["RAY_TMPDIR"], ignore_errors=True)
        os.environ.clear()
        os.environ.update(saved)


@pytest.mark.slow
@pytest.mark.timeout(120)
def test_ray_a_lost_worker_is_rerun(local_ray, tmp_path):
    # Ray's own retry (max_retries, the default) re-runs the task: nothing to see here.
    retried = []
    where: dict = {}
    (tmp_path / "a").mkdir()
    out = dict(
        run_tasks(
            crash_first,
            [(k, (k, str(tmp_path / "a"))) for k in range(2)],
            ray=True,
            where=where,
            on_retry=lambda *a: retried.append(a),
        )
    )
    assert out == {0: 0, 1: 1} and retried == []
    assert set(where) == {0, 1} and all(len(n) == 56 for n in where.values())  # node ids
    # Without Ray's retries, ours re-submits the task once.
    (tmp_path / "b").mkdir()
    out = dict(
        run_tasks(
            crash_first,
            [(0, (0, str(tmp_path / "b")))],
            ray=True,
            ray_max_retries=0,
            on_retry=lambda key, exc, attempt: retried.append((key, type(exc).__name__, attempt)),
        )
    )
    assert out == {0: 0} and retried == [(0, "WorkerCrashedError", 2)]


@pytest.mark.slow
@pytest.mark.timeout(120)
def test_ray_failures_after_the_retries_and_the_tasks_own(local_ray, tmp_path):
    import ray.exceptions as rex

    out = dict(
        run_tasks(die_on, [(0, (0, 0)), (1, (1, 0))], ray=True, retries=1, ray_max_retries=1)
    )
    assert out[1] == 1
    assert isinstance(out[0], InfrastructureError) and out[0].attempts == 2
    assert isinstance(out[0].cause, rex.WorkerCrashedError)
    # The task's own exception: at once, not retried; a MemoryError is the machine's.
    out = dict(run_tasks(count_and_raise, [(0, (0, str(tmp_path)))], ray=True))
    assert isinstance(out[0], rex.RayTaskError) and isinstance(out[0], ValueError)
    assert not is_infrastructure_error(out[0]) and _runs(tmp_path, 0) == 1
    out = dict(run_tasks(out_of_memory, [(0, (0,))], ray=True, retries=1))
    assert isinstance(out[0], InfrastructureError) and out[0].attempts == 2
