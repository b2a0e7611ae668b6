"""What the single-file baselines share that is not their algorithm: the run directory and its
``args.json``, ``--resume`` parsing, atomic JSON, the checkpoint cadence (env steps, wall clock,
SIGTERM / SIGINT), env thunks and the residual wrapper's settings, deterministic evaluation
episodes, training vs evaluation time, and torch's thread count for updates.

A run directory holds ``args.json`` (every flag, written at start), ``resume.pt`` (the learner's
full state, at each checkpoint), ``model.pt`` (the policy, :mod:`pianomime_env.learning.policies`),
``summary.json`` and TensorBoard event files.
"""

from __future__ import annotations

import dataclasses
import json
import os
import signal
import time
import typing
import warnings
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TypeVar

import numpy as np

__all__ = [
    "CheckpointCadence",
    "RunContext",
    "baseline_env_kwargs",
    "eval_env",
    "log_episodes",
    "record_evaluation",
    "save_torch",
    "write_summary",
    "start_run",
    "train_envs",
    "StopSignals",
    "ThreadChooser",
    "Timer",
    "env_thunk",
    "evaluate_episode",
    "load_resume_state",
    "open_run_dir",
    "parse_args",
    "parse_env_kwargs",
    "residual_wrapper_config",
    "save_json",
    "with_reflowed_help",
]

ArgsT = TypeVar("ArgsT")

#: Seconds of wall time between checkpoints besides the step cadence (a killed run loses less).
DEFAULT_CHECKPOINT_SECONDS = 300.0


def save_json(path: str | os.PathLike, obj: Any) -> None:
    """Writes ``obj`` as indented JSON to ``path`` atomically (a temporary file, then rename)."""
    path = Path(path)
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_text(json.dumps(obj, indent=2, default=str))
    os.replace(tmp, path)


def _resume_dir(argv: Sequence[str]) -> Path | None:
    for i, a in enumerate(argv):
        if a == "--resume":
            if i + 1 >= len(argv):
                raise SystemExit("--resume needs a run directory")
            return Path(argv[i + 1])
        if a.startswith("--resume="):
            return Path(a.split("=", 1)[1])
    return None


#: Old values of renamed fields, in the new field's terms (``vector_env="auto"`` was async).
_RENAMED_VALUES = {("vector_env", "auto"): "async"}


def _restore_types(
    args_cls: type, fields: dict[str, Any], renamed: Mapping[str, str] | None = None
) -> dict[str, Any]:
    """JSON turns tuples into lists and paths into strings; give them back their field types.
    ``renamed`` maps old field names (in an older run's args.json) to their new ones."""
    for old, new in (renamed or {}).items():
        if old in fields:
            value = fields.pop(old)
            fields[new] = _RENAMED_VALUES.get((old, value), value)
    hints = typing.get_type_hints(args_cls)
    known = {f.name for f in dataclasses.fields(args_cls)}
    unknown = sorted(set(fields) - known)
    if unknown:
        raise SystemExit(f"args.json has fields this script does not know: {unknown}")
    out = dict(fields)
    for name, value in fields.items():
        hint = str(hints.get(name, ""))
        if isinstance(value, list) and "tuple" in hint:
            out[name] = tuple(value)
        elif isinstance(value, str) and "Path" in hint:
            out[name] = Path(value)
    return out


def field_docs(args_cls: type) -> dict[str, str]:
    """The attribute docstrings of a dataclass (the string under each field), each reflowed to
    one paragraph per blank-line-separated block, so ``--help`` wraps them to the terminal
    instead of keeping the source's line breaks."""
    import ast
    import inspect
    import textwrap

    try:
        tree = ast.parse(textwrap.dedent(inspect.getsource(args_cls)))
    except (OSError, TypeError):  # no source (e.g. run under `python -m cProfile`): tyro's own
        return {}
    body = tree.body[0].body if tree.body and isinstance(tree.body[0], ast.ClassDef) else []
    docs = {}
    for node, after in zip(body, body[1:]):
        if (
            isinstance(node, ast.AnnAssign)
            and isinstance(node.target, ast.Name)
            and isinstance(after, ast.Expr)
            and isinstance(after.value, ast.Constant)
            and isinstance(after.value.value, str)
        ):
            text = inspect.cleandoc(after.value.value)
            docs[node.target.id] = "\n\n".join(
                " ".join(block.split()) for block in text.split("\n\n")
            )
    return docs


def _with_help(kind: Any, text: str) -> Any:
    """``kind`` annotated with help ``text``: merged into a ``tyro.conf.arg`` it already carries
    (tyro reads one), else added."""
    import tyro

    if typing.get_origin(kind) is typing.Annotated:
        base, *meta = typing.get_args(kind)
        configs = [m for m in meta if type(m) is type(tyro.conf.arg())]
        if configs:
            meta = [
                dataclasses.replace(m, help=m.help or text) if m in configs else m for m in meta
            ]
            return typing.Annotated[(base, *meta)]
    return typing.Annotated[kind, tyro.conf.arg(help=text)]


def with_reflowed_help(args_cls: type) -> type:
    """A copy of the dataclass whose fields carry their reflowed docstrings as tyro help."""
    docs = field_docs(args_cls)
    hints = typing.get_type_hints(args_cls, include_extras=True)
    fields = []
    for f in dataclasses.fields(args_cls):
        kind = hints[f.name]
        if f.name in docs:
            kind = _with_help(kind, docs[f.name])
        spec = dataclasses.field(default=f.default, default_factory=f.default_factory)
        fields.append((f.name, kind, spec))
    cls = dataclasses.make_dataclass(args_cls.__name__, fields)
    cls.__doc__ = args_cls.__doc__ or ""
    return cls


def parse_args(
    args_cls: type[ArgsT], argv: Sequence[str], renamed: Mapping[str, str] | None = None
) -> ArgsT:
    """tyro's parse of ``argv`` into ``args_cls``; with ``--resume DIR`` the defaults are the
    ones saved in ``DIR/args.json``, so flags given now override only what they name. Field
    docstrings become the flags' help, reflowed (see :func:`field_docs`); ``renamed`` maps the
    old names of renamed flags in a saved args.json to the new ones."""
    import tyro

    default = args_cls()
    run_dir = _resume_dir(argv)
    if run_dir is not None:
        saved = run_dir / "args.json"
        if not saved.is_file():
            raise SystemExit(f"--resume {run_dir}: no args.json there (not a run directory)")
        try:
            fields = json.loads(saved.read_text())
        except json.JSONDecodeError as exc:
            raise SystemExit(f"--resume {run_dir}: args.json is not valid JSON ({exc})") from None
        fields = _restore_types(args_cls, fields, renamed)
        fields["run_dir"] = run_dir
        default = args_cls(**fields)
    cli_cls = with_reflowed_help(args_cls)
    values = dataclasses.asdict(default)
    parsed = tyro.cli(cli_cls, default=cli_cls(**values), args=list(argv))
    return args_cls(**{f.name: getattr(parsed, f.name) for f in dataclasses.fields(cli_cls)})


def open_run_dir(args: Any, name: str) -> tuple[Path, dict[str, Any]]:
    """The run directory (``--resume``'s, ``--run-dir`` or ``runs/<name>``), created, with the
    run's flags written to its ``args.json``; returns ``(run_dir, saved_args)``."""
    if getattr(args, "resume", None) is not None:
        run_dir = Path(args.resume)
    elif getattr(args, "run_dir", None) is not None:
        run_dir = Path(args.run_dir)
    else:
        run_dir = Path("runs") / name
    run_dir.mkdir(parents=True, exist_ok=True)
    saved = dataclasses.asdict(args) | {"resume": None, "run_dir": str(run_dir)}
    save_json(run_dir / "args.json", saved)
    return run_dir, saved


def load_resume_state(run_dir: Path) -> dict[str, Any]:
    """``run_dir/resume.pt`` (torch), or ``SystemExit`` saying why a resume cannot start."""
    from pianomime_env.extras import require_torch

    torch = require_torch()
    path = Path(run_dir) / "resume.pt"
    if not path.is_file():
        raise SystemExit(
            f"--resume {run_dir}: no resume.pt (the run was killed before its first checkpoint: "
            "a SIGKILL before the first step or wall-clock checkpoint loses the run)"
        )
    try:
        # Our own file, holding optimizer states and RNG states (not just tensors).
        return torch.load(path, map_location="cpu", weights_only=False)
    except Exception as exc:  # any unpickling failure means the same thing
        raise SystemExit(
            f"--resume {run_dir}: resume.pt is not a readable checkpoint ({exc})"
        ) from None


class StopSignals:
    """Turns SIGTERM and SIGINT into a request to stop: the training loop checks
    :attr:`requested`, writes a checkpoint and ends (exit status 128 + the signal's number).
    A second signal of the same kind while stopping interrupts at once. Use as a context
    manager; the previous handlers come back on exit."""

    SIGNALS = (signal.SIGTERM, signal.SIGINT)

    def __init__(self) -> None:
        self.requested: int | None = None
        self._previous: dict[int, Any] = {}

    def _handle(self, signum: int, frame: Any) -> None:
        if self.requested is not None:  # asked twice: stop now
            raise KeyboardInterrupt
        self.requested = signum

    def __enter__(self) -> StopSignals:
        for s in self.SIGNALS:
            try:
                self._previous[s] = signal.signal(s, self._handle)
            except ValueError:  # not the main thread: signals stay as they are
                pass
        return self

    def __exit__(self, *exc: Any) -> None:
        for s, handler in self._previous.items():
            signal.signal(s, handler)

    @property
    def exit_code(self) -> int:
        """0 when no signal arrived, else 128 + its number (the shell's convention)."""
        return 0 if self.requested is None else 128 + int(self.requested)


class CheckpointCadence:
    """When to write a checkpoint: every ``every_steps`` env steps and every ``every_s`` seconds
    of wall time (whichever comes first), so a killed run loses at most that much work.

    Args:
        every_steps: env steps between checkpoints (0: no step cadence).
        every_s: seconds between checkpoints (0: no wall-clock cadence).
        global_step: the step the run starts (or resumes) at.
        clock: seconds, monotonic (tests pass their own).
    """

    def __init__(
        self,
        every_steps: int,
        every_s: float = DEFAULT_CHECKPOINT_SECONDS,
        global_step: int = 0,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.every_steps, self.every_s, self._clock = int(every_steps), float(every_s), clock
        self._last_step, self._last_time = int(global_step), clock()

    def due(self, global_step: int) -> bool:
        """Whether a checkpoint is due at ``global_step``."""
        by_steps = self.every_steps > 0 and global_step - self._last_step >= self.every_steps
        by_time = self.every_s > 0 and self._clock() - self._last_time >= self.every_s
        return by_steps or by_time

    def written(self, global_step: int) -> None:
        """Records a checkpoint written at ``global_step``."""
        self._last_step, self._last_time = int(global_step), self._clock()


class Timer:
    """Wall time split by activity (``train``, ``eval``, ...), plus what a resumed run had."""

    def __init__(self, before: Mapping[str, float] | None = None) -> None:
        self.seconds: dict[str, float] = dict(before or {})
        self._start = time.perf_counter()

    def add(self, what: str, seconds: float) -> None:
        self.seconds[what] = self.seconds.get(what, 0.0) + float(seconds)

    def timed(self, what: str) -> _Timed:
        """``with timer.timed("eval"): ...`` adds the block's wall time to ``what``."""
        return _Timed(self, what)

    def since_start(self) -> float:
        """Seconds since this process started the timer."""
        return time.perf_counter() - self._start


class _Timed:
    def __init__(self, timer: Timer, what: str) -> None:
        self.timer, self.what = timer, what

    def __enter__(self) -> None:
        self.t0 = time.perf_counter()

    def __exit__(self, *exc: Any) -> None:
        self.timer.add(self.what, time.perf_counter() - self.t0)


class ThreadChooser:
    """Picks torch's thread count for gradient updates by measuring, not by assuming.

    Two threads speed an update up on a quiet 2-core machine (Adam steps of PPO's network: 129/s
    vs 80/s with one) but collapse when another job shares the cores (3/s vs 76/s). So every
    ``every`` updates the chooser times ``probe`` minibatches with each candidate and keeps the
    fastest until the next probe. ``choices`` of one entry pins it.

    Use: ``n = chooser.threads(i)`` before minibatch ``i`` of an update, then
    ``chooser.record(i, seconds)`` after it, and ``chooser.end_update()``.
    """

    def __init__(self, choices: Sequence[int] = (1, 2), probe: int = 3, every: int = 10) -> None:
        self.choices = [int(c) for c in choices] or [1]
        self.probe, self.every = int(probe), int(every)
        self.best = self.choices[0]
        self._updates = 0
        self._times: dict[int, list[float]] = {}

    def _probing(self) -> bool:
        return len(self.choices) > 1 and self._updates % self.every == 0

    def threads(self, minibatch: int) -> int:
        """The thread count for ``minibatch`` (an index within the current update)."""
        if self._probing() and minibatch < self.probe * len(self.choices):
            return self.choices[minibatch // self.probe]
        return self.best

    def record(self, minibatch: int, seconds: float) -> None:
        """The wall time minibatch ``minibatch`` took."""
        if self._probing() and minibatch < self.probe * len(self.choices):
            self._times.setdefault(self.choices[minibatch // self.probe], []).append(seconds)
            if minibatch == self.probe * len(self.choices) - 1:
                self.best = min(self._times, key=lambda c: float(np.median(self._times[c])))
                self._times = {}

    def end_update(self) -> None:
        self._updates += 1


def parse_env_kwargs(text: str, **defaults: Any) -> dict[str, Any]:
    """``--env-kwargs``' JSON object over ``defaults``; ``SystemExit`` naming the problem."""
    try:
        extra = json.loads(text)
    except json.JSONDecodeError as exc:
        raise SystemExit(f"--env-kwargs is not JSON: {exc}") from None
    if not isinstance(extra, dict):
        raise SystemExit(f"--env-kwargs must be a JSON object, got {text!r}")
    return {**defaults, **extra}


def residual_wrapper_config(
    residual: bool, residual_scale: float = 0.02, finger_residual_scale: float | None = None
) -> dict[str, Any]:
    """The checkpoint's ``wrapper`` entry: ``{"residual": False}`` or ResidualIK's settings
    (nominal = the sight-reader, sustain from the score, 4 demo frames observed)."""
    if not residual:
        return {"residual": False}
    config: dict[str, Any] = {"residual": True, "residual_scale": float(residual_scale)}
    if finger_residual_scale is not None:
        config["finger_residual_scale"] = float(finger_residual_scale)
    return config | {"sustain": "score", "n_demo_frames": 4, "nominal": "sight-reader"}


def check_env_id(env_id: str) -> None:
    """``SystemExit`` with the known ids when ``env_id`` is not registered (instead of
    Gymnasium's traceback)."""
    import difflib

    import gymnasium as gym

    if ":" in env_id:  # "module:id" imports a module that registers it
        return
    if env_id not in gym.registry:
        known = sorted(k for k in gym.registry if k.startswith("PianoMime-"))
        close = difflib.get_close_matches(env_id, known, n=3)
        hint = f" Did you mean {', '.join(close)}?" if close else ""
        raise SystemExit(
            f"--env-id {env_id!r} is not registered.{hint} Use PianoMime-<song>-v0 for a built-in "
            "or registered song (`pianomime songs` lists them), PianoMime-v0 with "
            '--env-kwargs \'{"midi": "file.mid"}\', or PianoMime-MultiSong-v0.'
        )


def env_thunk(
    env_id: str,
    env_kwargs: Mapping[str, Any],
    wrapper: Mapping[str, Any],
    flatten: bool = True,
    wrap: Callable[[Any], Any] | None = None,
) -> Callable[[], Any]:
    """A function building one env: ``gym.make`` -> ``ResidualIK`` (when ``wrapper`` says so)
    -> ``wrap`` (e.g. a recorder) -> ``FlattenObservation`` (when ``flatten``)."""
    from pianomime_env.envs.making import env_make_kwargs, wrap_env

    def thunk():
        import gymnasium as gym

        env = gym.make(env_id, **env_make_kwargs(env_id, dict(env_kwargs), dict(wrapper)))
        env = wrap_env(env, dict(wrapper))
        if wrap is not None:
            env = wrap(env)
        return gym.wrappers.FlattenObservation(env) if flatten else env

    return thunk


METRIC_KEYS = ("f1", "note_f1", "precision", "recall")


def evaluate_episode(
    env: Any, act: Callable[[np.ndarray], np.ndarray], seed: int
) -> dict[str, float]:
    """One episode of ``env`` from ``reset(seed=seed)`` with ``act`` (obs -> action); the final
    step's musical metrics (``f1``, ``note_f1``, ``precision``, ``recall``)."""
    obs, _ = env.reset(seed=seed)
    while True:
        obs, _, terminated, truncated, info = env.step(act(obs))
        if terminated or truncated:
            m = info.get("metrics")
            if m is None:
                warnings.warn("the episode ended without info['metrics']", stacklevel=2)
                return {}
            return {k: float(m[k]) for k in METRIC_KEYS}


# -- the RL scripts' shared plumbing (ppo.py, droq.py) -----------------------------------------


def baseline_env_kwargs(env_kwargs_json: str, trim_silence: bool, residual: bool) -> dict:
    """The env's arguments of a training script: ``--trim-silence``, normalized actions unless
    residual (a residual policy acts in ResidualIK's own space), and ``--env-kwargs``."""
    defaults: dict[str, Any] = {"trim_silence": trim_silence}
    if not residual:
        defaults["normalized_actions"] = True
    return parse_env_kwargs(env_kwargs_json, **defaults)


def start_run(args: Any, script: str) -> tuple[Any, dict | None, Path, dict[str, Any]]:
    """torch (set to ``--torch-threads``), the resume state (or None), the run directory with
    its args.json, and Weights & Biases when ``--track``. ``SystemExit`` with one line when
    torch or the env id is missing."""
    from pianomime_env.extras import require_torch

    try:
        torch = require_torch()
    except ImportError as exc:
        raise SystemExit(f"{script}: {exc}") from None
    check_env_id(args.env_id)
    torch.set_num_threads(args.torch_threads)
    resume = load_resume_state(args.resume) if args.resume is not None else None
    name = f"{args.env_id}__{args.exp_name}__{args.seed}__{int(time.time())}"
    run_dir, saved_args = open_run_dir(args, name)
    if args.track:
        try:
            import wandb
        except ImportError as exc:
            raise SystemExit("--track needs Weights & Biases: pip install wandb") from exc
        wandb.init(project="pianomime", sync_tensorboard=True, config=saved_args, name=run_dir.name)
    return torch, resume, run_dir, saved_args


def train_envs(
    env_id: str,
    num_envs: int,
    vectorization: str,
    wrapper: Mapping[str, Any],
    env_kwargs: Mapping[str, Any],
) -> Any:
    """The ``SAME_STEP`` vector env of ``num_envs`` flattened training envs (``native``, ``sync``
    or ``async``), with Gymnasium's episode statistics."""
    import gymnasium as gym

    from pianomime_env.envs.making import make_vector_env

    envs = make_vector_env(
        env_id,
        num_envs,
        vectorization=vectorization,
        autoreset_mode=gym.vector.AutoresetMode.SAME_STEP,
        wrapper=wrapper,
        **env_kwargs,
    )
    return gym.wrappers.vector.RecordEpisodeStatistics(envs)


def eval_env(
    env_id: str,
    env_kwargs: Mapping[str, Any],
    wrapper: Mapping[str, Any],
    record: str = "none",
    folder: Path | None = None,
    writer: Any = None,
    step: Callable[[], int] | None = None,
) -> tuple[Any, list]:
    """The flattened evaluation env and the observation layout of its Dict space (the
    checkpoint records it). ``record`` = ``pianoroll`` / ``video``: every episode is recorded
    by ``RecordPerformance`` into ``folder`` and its piano roll logged to ``writer`` at
    ``step()``."""
    import gymnasium as gym

    from pianomime_env.learning.policies import observation_layout

    wrap = None
    if record != "none":
        from pianomime_env.media.recording import RecordPerformance

        def wrap(env):
            return RecordPerformance(
                env,
                folder,
                episode_trigger=lambda i: True,
                video=record == "video",
                summary_writer=writer,
                global_step=step,
            )

    dict_env = env_thunk(env_id, env_kwargs, wrapper, flatten=False, wrap=wrap)()
    return gym.wrappers.FlattenObservation(dict_env), observation_layout(dict_env.observation_space)


@dataclass
class RunContext:
    """What a training loop reports to: its flags, the run directory, TensorBoard, the clocks,
    the evaluation env (and its observation layout), the vectorization and the device."""

    args: Any
    run_dir: Path
    saved_args: dict
    writer: Any
    timer: Timer
    eval_env: Any
    layout: list
    vectorization: str
    device: Any


def record_evaluation(
    run: RunContext, evals: list[dict], step: int, act: Callable[[np.ndarray], np.ndarray]
) -> dict[str, float]:
    """One evaluation episode with ``act`` (timed as ``eval``), appended to ``evals`` and
    logged (``eval/f1``, ``eval/note_f1``; with ``--record-eval`` the recorder logs them)."""
    with run.timer.timed("eval"):
        m = evaluate_episode(run.eval_env, act, run.args.seed)
    evals.append({"global_step": step, **m})
    if getattr(run.args, "record_eval", "none") == "none":
        run.writer.add_scalar("eval/f1", m["f1"], step)
        run.writer.add_scalar("eval/note_f1", m["note_f1"], step)
    return m


def log_episodes(writer: Any, infos: dict, step: int, num_envs: int) -> None:
    """Return, length and F1 of the episodes that ended this step (RecordEpisodeStatistics)."""
    if "_episode" not in infos:
        return
    for i in np.flatnonzero(infos["_episode"]):
        writer.add_scalar("charts/episodic_return", infos["episode"]["r"][i], step)
        writer.add_scalar("charts/episodic_length", infos["episode"]["l"][i], step)
        m = infos.get("final_info", {}).get("metrics", {})
        if "f1" in m and m.get("_f1", np.ones(num_envs, bool))[i]:
            writer.add_scalar("charts/episodic_f1", m["f1"][i], step)


def save_torch(torch: Any, obj: Any, path: Path) -> None:
    """``torch.save`` to ``path`` atomically (a temporary file, then rename)."""
    tmp = path.with_name(path.name + ".tmp")
    torch.save(obj, tmp)
    tmp.replace(path)


def write_summary(
    run: RunContext,
    algorithm: str,
    global_step: int,
    updates: int,
    evals: list[dict],
    final: bool,
    stopped_by: int | None,
    **extra: Any,
) -> dict[str, Any]:
    """``summary.json`` of a training run: steps, gradient updates, env steps per second of
    training (``sps``), training / evaluation / total seconds apart, the vectorization, the
    last and every evaluation, whether the run finished or a signal stopped it."""
    train_s = run.timer.seconds.get("train", 0.0)
    summary = {
        "algorithm": algorithm,
        "global_step": global_step,
        "updates": updates,
        "sps": global_step / max(train_s, 1e-9),
        "train_s": train_s,
        "eval_s": run.timer.seconds.get("eval", 0.0),
        "wall_s": sum(run.timer.seconds.values()),
        "vectorization": run.vectorization,
        **extra,
        "eval": evals[-1] if evals else None,
        "evals": evals,
        "final": final,
        "stopped_by_signal": stopped_by,
        "run_dir": str(run.run_dir),
    }
    save_json(run.run_dir / "summary.json", summary)
    return summary
