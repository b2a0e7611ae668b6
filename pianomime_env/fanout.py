"""Runs independent tasks (one per song) in a local process pool or as Ray tasks.

:func:`run_tasks` calls ``fn(*args, progress_position=p)`` for every ``args`` of ``tasks`` and
yields ``(key, result)`` pairs as they finish (in completion order). ``p`` is the task's worker
slot (1, 2, ...) for a tqdm bar under the caller's bar at position 0, or None under Ray (where
bars from remote workers are not shown). A task whose worker died yields ``(key, exception)``;
the others go on.

- local (default): ``workers`` processes (``spawn``: no state inherited from the caller); one
  worker runs the tasks in this process.
- Ray: ``ray=True`` starts a local Ray instance with ``workers`` CPUs (all by default) and shuts
  it down at the end; ``address`` connects to a running cluster (``"auto"``, ``"ray://host:10001"``).
  Each task asks for one CPU. Needs the ``distributed`` extra; the package must be importable on
  every node.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Hashable, Iterator, Sequence
from typing import Any

__all__ = ["RAY_HINT", "default_workers", "run_tasks"]

RAY_HINT = 'Ray is needed for --ray / --ray-address: pip install -e ".[distributed]"'

_POSITION: int | None = None


def default_workers() -> int:
    """Worker processes of the local pool: the CPUs this process may use."""
    try:
        return max(1, len(os.sched_getaffinity(0)))
    except AttributeError:  # pragma: no cover - not Linux
        return max(1, os.cpu_count() or 1)


def _pool_init(counter: Any) -> None:
    global _POSITION
    with counter.get_lock():
        counter.value += 1
        _POSITION = counter.value


def _pool_call(fn: Callable[..., Any], args: tuple) -> Any:
    return fn(*args, progress_position=_POSITION)


def _run_local(
    fn: Callable[..., Any], tasks: Sequence[tuple[Hashable, tuple]], workers: int
) -> Iterator[tuple[Hashable, Any]]:
    if workers <= 1 or len(tasks) <= 1:
        for key, args in tasks:
            yield key, fn(*args, progress_position=1)
        return
    import multiprocessing as mp
    from concurrent.futures import ProcessPoolExecutor, as_completed

    ctx = mp.get_context("spawn")
    counter = ctx.Value("i", 0)
    with ProcessPoolExecutor(
        max_workers=min(workers, len(tasks)),
        mp_context=ctx,
        initializer=_pool_init,
        initargs=(counter,),
    ) as pool:
        futures = {pool.submit(_pool_call, fn, args): key for key, args in tasks}
        for fut in as_completed(futures):
            try:
                yield futures[fut], fut.result()
            except Exception as exc:  # the worker died (BrokenProcessPool): report, go on
                yield futures[fut], exc


def _run_ray(
    fn: Callable[..., Any],
    tasks: Sequence[tuple[Hashable, tuple]],
    workers: int | None,
    address: str | None,
) -> Iterator[tuple[Hashable, Any]]:
    try:
        import ray
    except ImportError as e:
        raise ImportError(RAY_HINT) from e
    started = False
    if not ray.is_initialized():
        kwargs: dict[str, Any] = {"include_dashboard": False}
        if address:
            kwargs["address"] = address
        elif workers:
            kwargs["num_cpus"] = int(workers)
        ray.init(**kwargs)
        started = True
    try:
        remote = ray.remote(num_cpus=1, max_retries=0)(_ray_call)
        refs = {remote.remote(fn, args): key for key, args in tasks}
        pending = list(refs)
        while pending:
            done, pending = ray.wait(pending, num_returns=1)
            for ref in done:
                try:
                    yield refs[ref], ray.get(ref)
                except Exception as exc:  # the task's worker died: report, go on
                    yield refs[ref], exc
    finally:
        if started:
            ray.shutdown()


def _ray_call(fn: Callable[..., Any], args: tuple) -> Any:
    return fn(*args, progress_position=None)


def run_tasks(
    fn: Callable[..., Any],
    tasks: Sequence[tuple[Hashable, tuple]],
    *,
    workers: int | None = None,
    ray: bool = False,
    address: str | None = None,
) -> Iterator[tuple[Hashable, Any]]:
    """Runs ``fn(*args, progress_position=...)`` for each ``(key, args)``; yields
    ``(key, result or exception)`` as tasks finish.

    Args:
        fn: a module-level function (it is pickled by reference).
        tasks: ``[(key, args), ...]``.
        workers: local pool size (default :func:`default_workers`), or the CPUs of a local Ray
            instance (default: all).
        ray: run on a local Ray instance.
        address: run on this Ray cluster (implies ``ray``).

    Raises:
        ImportError: Ray requested but not installed (names the ``distributed`` extra).
    """
    if ray or address:
        return _run_ray(fn, tasks, workers, address)
    return _run_local(fn, tasks, workers or default_workers())
