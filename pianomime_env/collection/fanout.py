"""Runs independent tasks (one per song) in a local process pool or as Ray tasks.

:func:`run_tasks` calls ``fn(*args, progress_position=p)`` for every ``args`` of ``tasks`` and
yields ``(key, result)`` pairs as they finish (in completion order), each key exactly once.
``p`` is the task's worker slot (1, 2, ...) for a tqdm bar under the caller's bar at position 0,
or None under Ray (where bars from remote workers are not shown).

Two kinds of failure are told apart (:func:`is_infrastructure_error`):

- **the task's own exception** (``fn`` raised): yielded as ``(key, exception)`` at once, never
  retried (the same arguments would fail the same way);
- **the infrastructure** (a worker process or a node lost, a kill for memory, a result lost
  with its node): the task is run again, up to ``retries`` times (on Ray, each run also has
  Ray's own ``max_retries`` for system failures); if it is still lost, ``(key,
  InfrastructureError)`` is yielded. The other tasks go on either way.

Backends:

- local (default): ``workers`` processes (``spawn``: no state inherited from the caller); one
  worker runs the tasks in this process (no retry: a crash there is the caller's own). A dead
  worker breaks the whole pool, so the tasks it took down are re-run each in a process of its
  own (a task that kills its process then takes no other with it).
- Ray: ``ray=True`` starts a local Ray instance with ``workers`` CPUs (all by default) and shuts
  it down at the end; ``address`` connects to a running cluster (``"auto"``, ``"host:6379"``,
  ``"ray://host:10001"``). Each task asks for one CPU and is named ``names[key]`` (what ``ray
  list tasks`` and the dashboard show). Needs the ``distributed`` extra; the package must be
  importable on every node.
"""

from __future__ import annotations

import os
import sys
from collections.abc import Callable, Hashable, Iterator, Mapping, Sequence
from typing import Any

__all__ = [
    "RAY_HINT",
    "InfrastructureError",
    "default_workers",
    "is_infrastructure_error",
    "run_tasks",
]

RAY_HINT = 'Ray is needed for --ray / --ray-address: pip install -e ".[distributed]"'

#: Ray's own re-executions of a task after a system failure (its default), per submission.
RAY_MAX_RETRIES = 3

#: Ray exceptions (``ray.exceptions``) that mean the machinery failed, not the task's code.
_RAY_INFRA = (
    "WorkerCrashedError",  # the worker process died (killed, segfault, OOM killer)
    "NodeDiedError",  # its node was lost
    "LocalRayletDiedError",
    "OutOfMemoryError",  # killed by Ray's memory monitor
    "OutOfDiskError",
    "ObjectStoreFullError",
    "ObjectLostError",  # a result lost with its node (OwnerDiedError, ...ReconstructionFailed...)
    "ObjectFetchTimedOutError",
    "ActorDiedError",
    "ActorUnavailableError",
    "ActorUnschedulableError",
    "TaskUnschedulableError",
    "RuntimeEnvSetupError",
    "RaySystemError",
    "RpcError",
)

_POSITION: int | None = None


class InfrastructureError(RuntimeError):
    """A task lost to the infrastructure on every attempt (``cause``: the last failure)."""

    def __init__(self, key: Hashable, attempts: int, cause: BaseException) -> None:
        self.key = key
        self.attempts = attempts
        self.cause = cause
        first = str(cause).strip().splitlines()[0] if str(cause).strip() else ""
        super().__init__(
            f"lost to the infrastructure {attempts} time(s): {type(cause).__name__}"
            + (f": {first[:300]}" if first else "")
        )


def is_infrastructure_error(exc: BaseException) -> bool:
    """True for a failure of the machinery rather than of the task: a worker process or node
    lost, a kill for memory (or a ``MemoryError``), a task Ray could not schedule, a result
    lost with its node, a broken local pool. A retry may cure these; the task's own exceptions
    (a ``RayTaskError`` wrapping one, on Ray) are not among them."""
    from concurrent.futures.process import BrokenProcessPool

    if isinstance(exc, (BrokenProcessPool, MemoryError, InfrastructureError)):
        return True
    ray_exceptions = sys.modules.get("ray.exceptions")
    if ray_exceptions is None:  # Ray never imported: cannot be one of its exceptions
        return False
    if isinstance(exc, ray_exceptions.RayTaskError):  # the task raised: look at what
        cause = getattr(exc, "cause", None)
        return cause is not None and cause is not exc and is_infrastructure_error(cause)
    kinds = tuple(getattr(ray_exceptions, n) for n in _RAY_INFRA if hasattr(ray_exceptions, n))
    return isinstance(exc, kinds)


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


def _slot_init(slot: int) -> None:
    global _POSITION
    _POSITION = slot


def _pool_call(fn: Callable[..., Any], args: tuple) -> Any:
    return fn(*args, progress_position=_POSITION)


OnRetry = Callable[[Hashable, BaseException, int], None]


def _run_local(
    fn: Callable[..., Any],
    tasks: Sequence[tuple[Hashable, tuple]],
    workers: int,
    retries: int,
    on_retry: OnRetry | None,
) -> Iterator[tuple[Hashable, Any]]:
    if workers <= 1 or len(tasks) <= 1:
        for key, args in tasks:
            try:
                result = fn(*args, progress_position=1)
            except Exception as exc:  # the task's own failure: reported like a worker's
                result = exc
            yield key, result
        return
    import multiprocessing as mp
    from concurrent.futures import ProcessPoolExecutor, as_completed

    ctx = mp.get_context("spawn")
    counter = ctx.Value("i", 0)
    attempts = {key: 1 for key, _ in tasks}
    lost: list[tuple[Hashable, tuple]] = []

    def outcome(key: Hashable, args: tuple, fut: Any) -> tuple[bool, Any]:
        try:
            return True, fut.result()
        except Exception as exc:
            if is_infrastructure_error(exc) and attempts[key] <= retries:
                attempts[key] += 1
                if on_retry is not None:
                    on_retry(key, exc, attempts[key])
                lost.append((key, args))
                return False, None
            if is_infrastructure_error(exc):
                return True, InfrastructureError(key, attempts[key], exc)
            return True, exc

    with ProcessPoolExecutor(
        max_workers=min(workers, len(tasks)),
        mp_context=ctx,
        initializer=_pool_init,
        initargs=(counter,),
    ) as pool:
        futures = {pool.submit(_pool_call, fn, args): (key, args) for key, args in tasks}
        for fut in as_completed(futures):
            key, args = futures[fut]
            final, value = outcome(key, args, fut)
            if final:
                yield key, value
    # A dead worker broke the pool and took its running and queued tasks with it: re-run them
    # one process each, so a task that kills its process takes no other down with it.
    while lost:
        batch, lost = lost, []
        yield from _run_isolated(fn, batch, workers, ctx, outcome)


def _run_isolated(
    fn: Callable[..., Any],
    batch: list[tuple[Hashable, tuple]],
    workers: int,
    ctx: Any,
    outcome: Callable[[Hashable, tuple, Any], tuple[bool, Any]],
) -> Iterator[tuple[Hashable, Any]]:
    from concurrent.futures import FIRST_COMPLETED, ProcessPoolExecutor, wait

    queue = list(batch)
    running: dict[Any, tuple[Hashable, tuple, Any, int]] = {}
    free = list(range(min(workers, len(queue)), 0, -1))
    try:
        while queue or running:
            while queue and free:
                key, args = queue.pop(0)
                slot = free.pop()
                pool = ProcessPoolExecutor(
                    max_workers=1, mp_context=ctx, initializer=_slot_init, initargs=(slot,)
                )
                running[pool.submit(_pool_call, fn, args)] = (key, args, pool, slot)
            done, _ = wait(list(running), return_when=FIRST_COMPLETED)
            for fut in done:
                key, args, pool, slot = running.pop(fut)
                pool.shutdown(wait=False)
                free.append(slot)
                final, value = outcome(key, args, fut)
                if final:
                    yield key, value
    finally:
        for _, _, pool, _ in running.values():
            pool.shutdown(wait=False, cancel_futures=True)


def _connect_ray(workers: int | None, address: str | None) -> bool:
    """Initializes Ray unless it already is; returns whether this call did it."""
    import ray

    if ray.is_initialized():
        return False
    kwargs: dict[str, Any] = {"include_dashboard": False}
    if address:
        kwargs["address"] = address
    elif workers:
        kwargs["num_cpus"] = int(workers)
    try:
        ray.init(**kwargs)
    except Exception as exc:
        lines, e = [], exc  # Ray wraps the cause (with a traceback in its text): search all
        while e is not None and len(lines) < 200:
            lines += str(e).splitlines()
            e = e.__cause__ or e.__context__
        auth = [ln.strip() for ln in lines if "auth" in ln.lower()]
        if address and auth:
            raise ConnectionError(
                f"cannot join the Ray cluster at {address}: {auth[-1].split(' Note:')[0][:200]} -- it uses token "
                "authentication: set RAY_AUTH_MODE=token and RAY_AUTH_TOKEN=<the head's `ray "
                "get-auth-token`> (or RAY_AUTH_TOKEN_PATH) in this shell; docs/datasets.md"
            ) from None
        raise
    return True


def _run_ray(
    fn: Callable[..., Any],
    tasks: Sequence[tuple[Hashable, tuple]],
    workers: int | None,
    address: str | None,
    retries: int,
    ray_max_retries: int,
    names: Mapping[Hashable, str] | None,
    where: dict[Hashable, str] | None,
    on_retry: OnRetry | None,
) -> Iterator[tuple[Hashable, Any]]:
    try:
        import ray
    except ImportError as e:
        raise ImportError(RAY_HINT) from e
    started = _connect_ray(workers, address)
    try:
        # retry_exceptions=False: Ray re-runs a task after a system failure only (its worker or
        # node lost); the task's own exceptions come back at once.
        remote = ray.remote(num_cpus=1, max_retries=ray_max_retries, retry_exceptions=False)(
            _ray_call
        )
        refs: dict[Any, tuple[Hashable, tuple]] = {}
        attempts: dict[Hashable, int] = {}

        def submit(key: Hashable, args: tuple) -> None:
            attempts[key] = attempts.get(key, 0) + 1
            name = (names or {}).get(key) or f"{getattr(fn, '__name__', 'task')}[{key}]"
            refs[remote.options(name=name).remote(fn, args)] = (key, args)

        for key, args in tasks:
            submit(key, args)
        while refs:
            done, _ = ray.wait(list(refs), num_returns=1)
            key, args = refs.pop(done[0])
            try:
                node, value = ray.get(done[0])
            except Exception as exc:
                if not is_infrastructure_error(exc):
                    yield key, exc  # the task's own error: reported, never retried
                elif attempts[key] <= retries:
                    if on_retry is not None:
                        on_retry(key, exc, attempts[key] + 1)
                    submit(key, args)
                else:
                    yield key, InfrastructureError(key, attempts[key], exc)
                continue
            if where is not None:
                where[key] = node
            yield key, value
    finally:
        if started:
            ray.shutdown()


def _ray_call(fn: Callable[..., Any], args: tuple) -> tuple[str, Any]:
    import ray

    node = ray.get_runtime_context().get_node_id()
    return node, fn(*args, progress_position=None)


def run_tasks(
    fn: Callable[..., Any],
    tasks: Sequence[tuple[Hashable, tuple]],
    *,
    workers: int | None = None,
    ray: bool = False,
    address: str | None = None,
    retries: int = 2,
    ray_max_retries: int = RAY_MAX_RETRIES,
    names: Mapping[Hashable, str] | None = None,
    where: dict[Hashable, str] | None = None,
    on_retry: OnRetry | None = None,
) -> Iterator[tuple[Hashable, Any]]:
    """Runs ``fn(*args, progress_position=...)`` for each ``(key, args)``; yields
    ``(key, result or exception)`` as tasks finish, each key once.

    Args:
        fn: a module-level function (it is pickled by reference).
        tasks: ``[(key, args), ...]``.
        workers: local pool size (default :func:`default_workers`), or the CPUs of a local Ray
            instance (default: all).
        ray: run on a local Ray instance.
        address: run on this Ray cluster (implies ``ray``).
        retries: how many more times a task lost to the infrastructure is submitted (after, on
            Ray, Ray's own ``ray_max_retries``); then ``(key, InfrastructureError)`` is yielded.
        ray_max_retries: Ray's ``max_retries`` of each submission (system failures only).
        names: Ray task names by key (default ``fn.__name__[key]``).
        where: filled with the Ray node id that ran each task (Ray only).
        on_retry: called as ``on_retry(key, exception, attempt)`` before a task is re-run.

    Raises:
        ImportError: Ray requested but not installed (names the ``distributed`` extra).
        ConnectionError: the Ray cluster refused this driver (token authentication).
    """
    if retries < 0 or ray_max_retries < 0:
        raise ValueError(f"retries must be >= 0, got {retries!r} / {ray_max_retries!r}")
    if not tasks:  # e.g. a resumed collection with every song done: no pool, no cluster
        return iter(())
    if ray or address:
        return _run_ray(
            fn, tasks, workers, address, retries, ray_max_retries, names, where, on_retry
        )
    return _run_local(fn, tasks, workers or default_workers(), retries, on_retry)
