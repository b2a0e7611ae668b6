"""Throughput and start-up benchmark: this env vs RoboPianist (through Shimmy) vs raw ``mj_step``.

``pianomime bench`` and ``benchmarks/bench_env.py`` call :func:`run_benchmark`. In one process,
with the same song and the same seeded random actions (uniform over the full 45-dim action space,
which is RoboPianist's), it times env steps per second of

* ``ours``: ``gym.make("PianoMime-<song>-v0").unwrapped`` with the default reward terms
  (key_press, sustain, energy, forearm_collision);
* ``ours_fast``: the same with ``fast_physics=True``;
* ``ours_wrapped``: the same through ``gym.make``'s default wrappers (checker, order enforcing);
* ``robopianist``: ``shimmy.DmControlCompatibilityV0(robopianist.suite.load(
  "RoboPianist-debug-<song>-v0", task_kwargs=...))`` with settings matched to ours
  (``n_steps_lookahead=10``, fingering reward off because ours has no fingering term, forearm
  reward on, energy coefficient 5e-3; everything else RoboPianist's default);
* ``mujoco``: the physics ceiling, ``mujoco.mj_step(model, data, n_substeps)`` per control step
  on the same compiled model (``pianomime_env.sim.scene.load_model()`` configured as the env does),
  with ``data.ctrl`` set from the same actions.

The timed runs are interleaved (ours, wrapped, RoboPianist, mujoco, then again) so that load
from other processes on a shared machine hits all of them alike; ratios are computed within each
run and the median over runs is reported. Resets are not timed.

Start-up costs are measured in fresh subprocesses (``sys.executable -c ...``), one per run:
import time, construction + first ``reset(seed=0)`` with the model cache warm, and peak RSS
(``ru_maxrss``) after 100 steps; the same for RoboPianist. The one-time cold build of the model
cache is timed once in a subprocess with ``PIANOMIME_CACHE_DIR`` set to a fresh directory.
"""

from __future__ import annotations

import datetime
import json
import os
import platform
import statistics
import subprocess
import sys
import tempfile
import textwrap
import time
from collections.abc import Callable
from importlib import metadata
from pathlib import Path
from typing import Any

import numpy as np

_NUM_VEC_ENVS = 2
_RSS_STEPS = 100
_PEER_TASK_KWARGS = {
    "n_steps_lookahead": 10,
    "disable_fingering_reward": True,
    "disable_forearm_reward": False,
    "energy_penalty_coef": 5e-3,
}


def _env_for_children() -> dict[str, str]:
    env = dict(os.environ)
    if sys.platform.startswith("linux") and not env.get("DISPLAY"):
        env.setdefault("MUJOCO_GL", "egl")  # dm_control probes GL at import
    env.setdefault("PYTHONWARNINGS", "ignore")
    return env


def _median(values: list[float]) -> float:
    return float(statistics.median(values))


def _versions() -> dict[str, str]:
    out = {"python": platform.python_version()}
    for dist in (
        "pianomime-env",
        "mujoco",
        "robopianist",
        "dm_control",
        "gymnasium",
        "shimmy",
        "numpy",
    ):
        try:
            out[dist] = metadata.version(dist)
        except metadata.PackageNotFoundError:
            out[dist] = "not installed"
    return out


def _machine() -> dict[str, Any]:
    info: dict[str, Any] = {
        "platform": platform.platform(),
        "cpu_count": os.cpu_count(),
        "processor": platform.processor() or platform.machine(),
    }
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                info["processor"] = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    try:
        info["loadavg_start"] = list(os.getloadavg())
    except OSError:
        pass
    return info


# -- throughput ------------------------------------------------------------------------------


def _actions(low: np.ndarray, high: np.ndarray, steps: int, seed: int = 0) -> np.ndarray:
    rng = np.random.default_rng(seed)
    return rng.uniform(low, high, size=(steps, low.size))


def _time_interleaved(steppers: dict, actions, chunk: int = 10) -> dict[str, float]:
    """Steps per second of each stepper over ``actions``, timed in interleaved chunks.

    The contenders take turns every ``chunk`` steps (the order rotating each chunk), so a burst
    of load on a shared machine slows them all alike instead of whichever ran during it.
    Episode ends trigger an untimed reset.
    """
    keys = list(steppers)
    elapsed = dict.fromkeys(keys, 0.0)
    for _, reset in steppers.values():
        reset()
    for i, start in enumerate(range(0, len(actions), chunk)):
        block = actions[start : start + chunk]
        for key in keys[i % len(keys) :] + keys[: i % len(keys)]:
            step, reset = steppers[key]
            t0 = time.perf_counter()
            for a in block:
                if step(a):
                    elapsed[key] += time.perf_counter() - t0
                    reset()
                    t0 = time.perf_counter()
            elapsed[key] += time.perf_counter() - t0
    return {key: len(actions) / elapsed[key] for key in keys}


def _make_ours(song: str, **kwargs: Any):
    import gymnasium as gym

    from pianomime_env.envs.registration import env_id  # the ids are registered with the package

    return gym.make(env_id(song), **kwargs)


def _make_peer(song: str):
    os.environ.setdefault("MUJOCO_GL", "egl")
    try:
        import shimmy
    except ImportError as exc:
        raise ImportError(
            'the benchmark compares against RoboPianist through Shimmy: pip install "pianomime-env[dev]"'
        ) from exc
    from robopianist import suite

    name = f"RoboPianist-debug-{song}-v0"
    if name not in suite.DEBUG:
        raise ValueError(f"{name} is not a RoboPianist debug env; choose one of {suite.DEBUG}")
    return shimmy.DmControlCompatibilityV0(suite.load(name, task_kwargs=_PEER_TASK_KWARGS))


def _gym_stepper(env, dtype) -> tuple[Callable, Callable]:
    def step(a):
        _, _, terminated, truncated, _ = env.step(a.astype(dtype))
        return terminated or truncated

    return step, lambda: env.reset(seed=0)


def _mujoco_stepper(model, data, n_substeps: int) -> tuple[Callable, Callable]:
    import mujoco

    nu = model.nu

    def step(a):
        data.ctrl[:] = a[:nu]
        mujoco.mj_step(model, data, n_substeps)
        return False

    def reset():
        mujoco.mj_resetData(model, data)
        mujoco.mj_forward(model, data)

    return step, reset


def _vec_rate(vec_env, actions: np.ndarray) -> float:
    n = vec_env.num_envs
    batch = np.repeat(actions[:, None, :], n, axis=1).astype(np.float32)
    vec_env.reset(seed=0)
    t0 = time.perf_counter()
    for a in batch:
        vec_env.step(a)  # next-step autoreset is part of what users pay
    return n * len(batch) / (time.perf_counter() - t0)


# -- step breakdown --------------------------------------------------------------------------

# Profiled functions whose cumulative time makes up a part of ``PianoMimeEnv.step``: (file
# name, function name) -> part. Reward terms are their classes' ``__call__`` in terms.py /
# fingering.py, labelled by class.
_STEP_PARTS = {
    ("piano.py", "_check_action"): "action check",
    ("piano.py", "_update_key_state"): "key state",
    ("piano.py", "_observation"): "observation",
    ("metrics.py", "record"): "metrics recorder",
}
_PHYSICS_CALLS = ("mj_step", "mj_step1", "mj_step2")
# The file whose ``step`` is the whole (the single-song env); the parts must sum to it.
_STEP_FILE = "envs/piano.py"


def step_breakdown(song: str, actions: np.ndarray) -> dict[str, float]:
    """Milliseconds per ``env.step`` spent in each part of the unwrapped env's step.

    The env runs under :mod:`cProfile` (nothing in it is patched or reached into); each part is
    the cumulative time of its function (physics = the ``mj_step*`` calls, each reward term its
    ``__call__``), and ``other`` is the rest of ``step`` (step context, info, end check). The
    profiler's own overhead is removed by scaling all parts to the step time of an un-profiled
    run over the same actions.
    """
    import cProfile
    import pstats

    def run(env) -> float:
        env.reset(seed=0)
        elapsed = 0.0
        t0 = time.perf_counter()
        for a in actions:
            _, _, terminated, truncated, _ = env.step(a.astype(np.float32))
            if terminated or truncated:
                elapsed += time.perf_counter() - t0
                env.reset(seed=0)  # untimed
                t0 = time.perf_counter()
        return elapsed + time.perf_counter() - t0

    env = _make_ours(song).unwrapped
    plain_s = run(env)
    profiler = cProfile.Profile()
    profiler.enable()
    run(env)
    profiler.disable()
    env.close()
    stats = pstats.Stats(profiler).stats  # {(file, line, name): (cc, nc, tt, ct, callers)}
    parts: dict[str, float] = {}
    step_s = 0.0
    for (file, line, name), (_, _, _, cumulative, _) in stats.items():
        if file.endswith(_STEP_FILE) and name == "step":
            step_s += cumulative
        elif name.startswith("<built-in method mujoco") and name.split(".")[-1].rstrip(">") in (
            _PHYSICS_CALLS
        ):
            parts["physics (mj_step*)"] = parts.get("physics (mj_step*)", 0.0) + cumulative
        elif (file.rsplit("/", 1)[-1], name) in _STEP_PARTS:
            key = _STEP_PARTS[(file.rsplit("/", 1)[-1], name)]
            parts[key] = parts.get(key, 0.0) + cumulative
        elif name == "__call__" and file.endswith(("terms.py", "fingering.py")):
            owner = _class_at(file, line)
            parts[f"reward: {owner}"] = parts.get(f"reward: {owner}", 0.0) + cumulative
    scale = plain_s / step_s if step_s > 0 else 1.0
    steps = len(actions)
    out = {k: 1e3 * v * scale / steps for k, v in parts.items()}
    out["total"] = 1e3 * plain_s / steps
    out["other"] = max(out["total"] - sum(v for k, v in out.items() if k != "total"), 0.0)
    return out


def _class_at(file: str, line: int) -> str:
    """Name of the class whose body holds ``line`` of ``file`` (a term's ``__call__``)."""
    try:
        lines = Path(file).read_text().splitlines()[:line]
    except OSError:
        return Path(file).stem
    for text in reversed(lines):
        if text.startswith("class "):
            return text[len("class ") :].split("(")[0].split(":")[0]
    return Path(file).stem


# -- start-up, in fresh subprocesses ---------------------------------------------------------

_OURS_STARTUP = """
import json, resource, time
import numpy as np
{peak_rss}
t0 = time.perf_counter()
import pianomime_env
t1 = time.perf_counter()
import gymnasium as gym
env = gym.make("PianoMime-{song}-v0")
env.reset(seed=0)
t2 = time.perf_counter()
u = env.unwrapped
acts = np.random.default_rng(0).uniform(u.action_low, u.action_high, ({steps}, u.action_low.size))
for a in acts:
    _, _, term, trunc, _ = env.step(a.astype(np.float32))
    if term or trunc:
        env.reset(seed=0)
print("RESULT " + json.dumps(dict(import_s=t1 - t0, construct_reset_s=t2 - t1, rss_mb=_peak_rss_mb())))
"""

_PEER_STARTUP = """
import json, resource, time
import numpy as np
{peak_rss}
t0 = time.perf_counter()
import robopianist.suite
import shimmy
t1 = time.perf_counter()
env = shimmy.DmControlCompatibilityV0(
    robopianist.suite.load("RoboPianist-debug-{song}-v0", task_kwargs={task_kwargs!r}))
env.reset(seed=0)
t2 = time.perf_counter()
sp = env.action_space
acts = np.random.default_rng(0).uniform(sp.low, sp.high, ({steps}, sp.shape[0]))
for a in acts:
    _, _, term, trunc, _ = env.step(a.astype(sp.dtype))
    if term or trunc:
        env.reset(seed=0)
print("RESULT " + json.dumps(dict(import_s=t1 - t0, construct_reset_s=t2 - t1, rss_mb=_peak_rss_mb())))
"""

_COLD_BUILD = """
import json, time
from pianomime_env.sim import scene
t0 = time.perf_counter()
scene.load_model()
print("RESULT " + json.dumps(dict(cold_build_s=time.perf_counter() - t0)))
"""


# Peak RSS of this process image. ``ru_maxrss`` is not used: Linux carries it over from the
# forked parent through exec, so a child of a big benchmark process reports the parent's peak.
# ``VmHWM`` (``/proc/self/status``) is the high-water mark of the exec'd image alone.
_PEAK_RSS = """
def _peak_rss_mb():
    try:
        with open("/proc/self/status") as f:
            for line in f:
                if line.startswith("VmHWM:"):
                    return int(line.split()[1]) / 1024
    except OSError:
        pass
    import sys
    r = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return r / 2**20 if sys.platform == "darwin" else r / 1024
"""


def _run_child(code: str, env: dict[str, str] | None = None) -> dict[str, float]:
    proc = subprocess.run(
        [sys.executable, "-c", textwrap.dedent(code)],
        capture_output=True,
        text=True,
        env=env or _env_for_children(),
        cwd=str(Path(__file__).resolve().parents[2]),
    )
    for line in proc.stdout.splitlines():
        if line.startswith("RESULT "):
            return json.loads(line[len("RESULT ") :])
    raise RuntimeError(
        f"benchmark subprocess failed (rc {proc.returncode}):\n{proc.stderr[-3000:]}"
    )


def _startup(song: str, runs: int) -> dict[str, dict[str, float]]:
    ours, peer = [], []
    for _ in range(runs):  # interleaved, like the throughput runs
        ours.append(
            _run_child(_OURS_STARTUP.format(song=song, steps=_RSS_STEPS, peak_rss=_PEAK_RSS))
        )
        peer.append(
            _run_child(
                _PEER_STARTUP.format(
                    song=song, steps=_RSS_STEPS, task_kwargs=_PEER_TASK_KWARGS, peak_rss=_PEAK_RSS
                )
            )
        )
    keys = ("import_s", "construct_reset_s", "rss_mb")
    return {
        "ours": {k: _median([r[k] for r in ours]) for k in keys},
        "robopianist": {k: _median([r[k] for r in peer]) for k in keys},
        "ours_runs": ours,
        "robopianist_runs": peer,
    }


def _cold_build() -> float:
    with tempfile.TemporaryDirectory(prefix="pianomime-bench-cache-") as tmp:
        env = _env_for_children()
        env["PIANOMIME_CACHE_DIR"] = tmp
        return _run_child(_COLD_BUILD, env)["cold_build_s"]


# -- driver ----------------------------------------------------------------------------------


def _fmt_rate(x: float) -> str:
    return f"{x:,.0f}"


def _print_report(res: dict[str, Any]) -> None:
    tp = res["throughput"]
    print(
        f"\nThroughput, {res['song']}, {res['steps']} steps x {res['runs']} runs "
        "(median steps/s; ratios are medians of per-run ratios)"
    )
    rows = [
        ("mujoco", "raw mj_step(model, data, 10) per control step"),
        ("ours", "PianoMime env.unwrapped.step"),
        ("ours_fast", "PianoMime, fast_physics=True"),
        ("ours_wrapped", "PianoMime gym.make(...) .step (default wrappers)"),
        ("robopianist", "RoboPianist suite.load + shimmy .step"),
    ]
    print(f"  {'':14} {'steps/s':>10}  {'ms/step':>8}  description")
    for key, desc in rows:
        rate = tp[key]["median"]
        print(f"  {key:14} {_fmt_rate(rate):>10}  {1e3 / rate:8.3f}  {desc}")
    r = res["ratios"]
    print(f"  ours / mujoco      = {r['ours/mujoco']:.3f}   (target >= 0.9)")
    print(f"  ours / robopianist = {r['ours/robopianist']:.2f}x")
    print(f"  fast / robopianist = {r['ours_fast/robopianist']:.2f}x   (target >= 2.5x)")
    print(f"  fast / ours        = {r['ours_fast/ours']:.2f}x")
    print(f"  wrapped / ours     = {r['ours_wrapped/ours']:.3f}")
    if "vector" in res:
        v = res["vector"]
        print(f"\nVector envs, {_NUM_VEC_ENVS} envs (total env-steps/s, median)")
        print(f"  sync  {_fmt_rate(v['sync']['median']):>10}")
        print(f"  async {_fmt_rate(v['async']['median']):>10}   async/sync = {v['async/sync']:.2f}")
        if "native" in v:
            print(
                f"  native{_fmt_rate(v['native']['median']):>10}   native/sync = "
                f"{v['native/sync']:.2f}, native/async = {v['native/async']:.2f}, "
                f"native/(2 x mujoco) = {v['native']['median'] / (2 * tp['mujoco']['median']):.2f}"
                "   (PianoMimeVectorEnv: one process, physics on threads)"
            )
    b = res["step_breakdown_ms"]
    print("\nWhere an unwrapped step goes (ms/step, one instrumented run)")
    for k, val in sorted(b.items(), key=lambda kv: -kv[1]):
        if k != "total":
            print(f"  {k:28} {val:7.3f}  {100 * val / b['total']:5.1f}%")
    print(f"  {'total':28} {b['total']:7.3f}")
    s = res.get("startup")
    if not s or not np.isfinite(s["ours"]["import_s"]):
        print("\nStart-up: not measured (startup=False)")
        return
    print(f"\nStart-up (fresh subprocess, median of {res['runs']})")
    print(f"  {'':24} {'ours':>9} {'robopianist':>12}  target (ours)")
    for key, label, unit, target in (
        ("import_s", "import", "s", "<= 1.5 s"),
        ("construct_reset_s", "construct + reset", "s", "<= 1.0 s"),
        ("rss_mb", f"peak RSS, {_RSS_STEPS} steps", "MB", "<= 250 MB"),
    ):
        o, p = s["ours"][key], s["robopianist"][key]
        fmt = "{:9.0f}" if unit == "MB" else "{:9.2f}"
        print(f"  {label + ' (' + unit + ')':24} {fmt.format(o)} {fmt.format(p):>12}  {target}")
    first = {k: s[k]["import_s"] + s[k]["construct_reset_s"] for k in ("ours", "robopianist")}
    print(f"  {'import to first obs (s)':24} {first['ours']:9.2f} {first['robopianist']:12.2f}")
    if "cold_build_s" in res:
        print(f"  one-time model cache build (ours, cold cache): {res['cold_build_s']:.2f} s")


def run_benchmark(
    song: str = "TwinkleTwinkleRousseau",
    steps: int = 300,
    runs: int = 3,
    vector: bool = True,
    out: str | os.PathLike | None = None,
    startup: bool = True,
) -> dict[str, Any]:
    """Runs the benchmark, prints a table and returns the numbers (see the module docstring).

    Args:
        song: a built-in song that is also a RoboPianist debug env (``robopianist.suite.DEBUG``).
        steps: control steps per timing run.
        runs: timing runs (and start-up subprocesses); medians are reported.
        vector: also time ``gym.make_vec`` with 2 envs, ``sync`` vs ``async`` vs the native
            vector env (``vector_entry_point``, :mod:`pianomime_env.envs.vector`).
        out: write the results as JSON to this path.
        startup: measure start-up costs in subprocesses (import, construction, RSS, cold build).
    """
    if steps < 1 or runs < 1:
        raise ValueError("steps and runs must be >= 1")
    started = time.perf_counter()
    res: dict[str, Any] = {
        "date": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"),
        "song": song,
        "steps": steps,
        "runs": runs,
        "versions": _versions(),
        "machine": _machine(),
        "robopianist_env": f"RoboPianist-debug-{song}-v0",
        "robopianist_task_kwargs": dict(_PEER_TASK_KWARGS),
    }

    res.update(_throughput(song, steps, runs))
    actions = res.pop("_actions")
    res["step_breakdown_ms"] = step_breakdown(song, actions)
    if vector:
        res["vector"] = _vector_throughput(song, actions, runs)
    if startup:
        res["startup"] = _startup(song, runs)
        res["cold_build_s"] = _cold_build()

    try:
        res["machine"]["loadavg_end"] = list(os.getloadavg())
    except OSError:
        pass
    res["wall_s"] = time.perf_counter() - started
    if startup:
        _print_report(res)
    else:
        _print_report({**res, "startup": _nan_startup()})
    print(f"\n(benchmark wall time {res['wall_s']:.0f} s)")
    if out is not None:
        path = Path(out)
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(json.dumps(res, indent=2) + "\n")
        print(f"wrote {path}")
    return res


def _throughput(song: str, steps: int, runs: int) -> dict[str, Any]:
    """Interleaved steps/s of every contender over the same actions, and their ratios."""
    import mujoco

    from pianomime_env.sim import scene as scene_lib

    ours_wrapped = _make_ours(song)
    ours = _make_ours(song).unwrapped
    ours_fast = _make_ours(song, fast_physics=True).unwrapped
    peer = _make_peer(song)
    low, high = ours.action_low, ours.action_high
    peer_space = peer.action_space
    if peer_space.shape != low.shape or not (
        np.allclose(peer_space.low, low, atol=1e-6)
        and np.allclose(peer_space.high, high, atol=1e-6)
    ):
        raise RuntimeError("RoboPianist's action space differs from ours; the comparison is void")
    actions = _actions(low, high, steps)

    model = scene_lib.load_model()
    index = scene_lib.SceneIndex.from_model(model)
    scene_lib.configure_model(
        model,
        index,
        physics_timestep=ours.physics_timestep,
        gravity_compensation=False,
        disable_hand_collisions=False,
    )
    data = mujoco.MjData(model)
    steppers = {
        "ours": _gym_stepper(ours, np.float32),
        "ours_fast": _gym_stepper(ours_fast, np.float32),
        "ours_wrapped": _gym_stepper(ours_wrapped, np.float32),
        "robopianist": _gym_stepper(peer, peer_space.dtype),
        "mujoco": _mujoco_stepper(model, data, ours.n_substeps),
    }
    for step, reset in steppers.values():  # warm-up: caches, first-call costs
        reset()
        for a in actions[: min(20, steps)]:
            step(a)
    rates: dict[str, list[float]] = {k: [] for k in steppers}
    for _ in range(runs):
        for key, rate in _time_interleaved(steppers, actions).items():
            rates[key].append(rate)
    ours_wrapped.close()
    peer.close()

    def ratio(a: str, b: str) -> float:
        return _median([x / y for x, y in zip(rates[a], rates[b])])

    return {
        "_actions": actions,
        "throughput": {k: {"median": _median(v), "runs": v} for k, v in rates.items()},
        "ratios": {
            "ours/mujoco": ratio("ours", "mujoco"),
            "ours/robopianist": ratio("ours", "robopianist"),
            "ours_fast/robopianist": ratio("ours_fast", "robopianist"),
            "ours_fast/ours": ratio("ours_fast", "ours"),
            "ours_wrapped/ours": ratio("ours_wrapped", "ours"),
            "robopianist/mujoco": ratio("robopianist", "mujoco"),
        },
    }


def _vector_throughput(song: str, actions: np.ndarray, runs: int) -> dict[str, Any]:
    """Total env-steps/s of ``gym.make_vec`` with 2 envs: sync, async and native."""
    import gymnasium as gym

    envs = {
        mode: gym.make_vec(f"PianoMime-{song}-v0", num_envs=_NUM_VEC_ENVS, vectorization_mode=mode)
        for mode in ("sync", "async", "vector_entry_point")
    }
    envs["native"] = envs.pop("vector_entry_point")
    try:
        for venv in envs.values():  # warm-up
            _vec_rate(venv, actions[:20])
        vrates: dict[str, list[float]] = {m: [] for m in envs}
        for _ in range(runs):
            for mode, venv in envs.items():
                vrates[mode].append(_vec_rate(venv, actions))
    finally:
        for venv in envs.values():
            venv.close()
    vec: dict[str, Any] = {mode: {"median": _median(v), "runs": v} for mode, v in vrates.items()}
    vec["async/sync"] = _median([a / s for a, s in zip(vrates["async"], vrates["sync"])])
    vec["native/sync"] = _median([a / s for a, s in zip(vrates["native"], vrates["sync"])])
    vec["native/async"] = _median([a / s for a, s in zip(vrates["native"], vrates["async"])])
    vec["num_envs"] = _NUM_VEC_ENVS
    return vec


def _nan_startup() -> dict[str, dict[str, float]]:
    nan = {"import_s": float("nan"), "construct_reset_s": float("nan"), "rss_mb": float("nan")}
    return {"ours": nan, "robopianist": nan}
