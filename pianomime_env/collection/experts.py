"""Experts for data collection: who plays each song while ``pianomime collect`` records it.

An expert is a callable ``obs -> action`` (an action of the env's own action space) with an
optional ``reset()`` called after every ``env.reset()``. :func:`make_expert` builds one by name:

- ``"sight-reader"``: :class:`~pianomime_env.control.sightreader.SightReader`, no training. It is
  deterministic: two episodes of one song differ only through what the seed changes (action
  noise, ``randomize_hand_positions``), see ``docs/datasets.md``.
- ``"sight-reader-lookahead"``: :class:`~pianomime_env.control.lookahead.LookaheadSightReader`, the
  sight-reader choosing its gains by simulated rollouts (no training; ~10x the cost per step).
- a checkpoint path (``model.pt`` or a run directory): :func:`pianomime_env.learning.policies.load_policy`
  (a per-song or multi-song policy, plain or residual; needs the ``train`` extra).
- ``"residual-ppo"`` / ``"residual-droq"``: trains a residual expert for that one song with
  ``baselines/ppo.py`` / ``baselines/droq.py`` (a subprocess, ``--residual --save-model``, a
  budget of ``expert_timesteps`` env steps), then loads the saved checkpoint.
"""

from __future__ import annotations

import hashlib
import json
import os
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any, Protocol

import numpy as np

__all__ = [
    "NAMED_EXPERTS",
    "RESIDUAL_EXPERTS",
    "Expert",
    "ExpertError",
    "expert_label",
    "make_expert",
    "train_residual_expert",
]

#: Experts trained per song by a baseline script: name -> script in ``baselines/``.
RESIDUAL_EXPERTS: dict[str, str] = {"residual-ppo": "ppo.py", "residual-droq": "droq.py"}
#: Experts that need no checkpoint or training.
NAMED_EXPERTS: tuple[str, ...] = ("sight-reader", "sight-reader-lookahead")
_BASELINES = Path(__file__).resolve().parents[2] / "baselines"


class ExpertError(RuntimeError):
    """An expert could not be built (missing checkpoint, failed training run, ...)."""


class Expert(Protocol):
    def __call__(self, obs: Any) -> np.ndarray: ...


def expert_label(expert: str) -> str:
    """The expert's name as stored in the dataset: the name, or the checkpoint's absolute path."""
    if expert in (*NAMED_EXPERTS, *RESIDUAL_EXPERTS):
        return expert
    return str(Path(expert).expanduser().resolve())


def _load_checkpoint(path: Path, env: Any) -> Callable[[Any], np.ndarray]:
    from pianomime_env.learning.policies import load_policy

    return load_policy(path, env)


def _trained_steps(run_dir: Path) -> int:
    try:
        return int(json.loads((run_dir / "summary.json").read_text())["global_step"])
    except (OSError, ValueError, KeyError, TypeError):
        return 0


def train_residual_expert(
    expert: str, song: str, env_kwargs: dict[str, Any], timesteps: int, work_dir: Path, seed: int
) -> Path:
    """Trains (or finishes training) a residual expert for one song; returns its ``model.pt``.

    Runs ``baselines/<ppo|droq>.py --env-id PianoMime-v0 --env-kwargs '{"song": ...}'
    --residual --save-model --total-timesteps <timesteps>`` in a subprocess, in
    ``<work_dir>/experts/<expert>/<song hash>/`` (log in ``train.log`` there). A run that already
    reached the budget is reused and an interrupted one is resumed (``--resume``), so an
    interrupted collection does not retrain finished experts.
    """
    script = _BASELINES / RESIDUAL_EXPERTS[expert]
    if not script.is_file():
        raise ExpertError(
            f"{expert} needs {script} (the baselines ship with the source tree, not the wheel)"
        )
    run_dir = work_dir / "experts" / expert / hashlib.sha1(song.encode()).hexdigest()[:12]
    model = run_dir / "model.pt"
    if model.is_file() and _trained_steps(run_dir) >= timesteps:
        return model
    kwargs = {k: v for k, v in env_kwargs.items() if k != "trim_silence"}
    kwargs["song"] = song
    trim = "--trim-silence" if env_kwargs.get("trim_silence", True) else "--no-trim-silence"
    common = ["--total-timesteps", str(int(timesteps)), "--no-progress"]
    if (run_dir / "resume.pt").is_file():
        cmd = [sys.executable, str(script), "--resume", str(run_dir), *common]
    else:
        cmd = [
            sys.executable,
            str(script),
            "--env-id",
            "PianoMime-v0",
            "--env-kwargs",
            json.dumps(kwargs),
            trim,
            "--residual",
            "--save-model",
            "--seed",
            str(int(seed)),
            "--eval-every",
            "0",
            "--run-dir",
            str(run_dir),
            *common,
        ]
        if expert == "residual-droq":
            cmd.append("--no-save-buffer")
    run_dir.mkdir(parents=True, exist_ok=True)
    log = run_dir / "train.log"
    with open(log, "a") as f:
        proc = subprocess.run(cmd, stdout=f, stderr=subprocess.STDOUT, env=dict(os.environ))
    if proc.returncode != 0:
        tail = log.read_text(errors="replace").strip().splitlines()[-3:]
        raise ExpertError(
            f"{expert} training for {song} failed (exit {proc.returncode}; log {log}): "
            + " | ".join(tail)
        )
    if not model.is_file():
        raise ExpertError(f"{expert} training for {song} saved no model.pt in {run_dir}")
    return model


def make_expert(
    expert: str,
    env: Any,
    *,
    song: str | None = None,
    env_kwargs: dict[str, Any] | None = None,
    expert_timesteps: int = 100_000,
    work_dir: str | os.PathLike | None = None,
    seed: int = 0,
) -> Expert:
    """Builds the expert for ``env``'s song.

    Args:
        expert: ``"sight-reader"``, ``"sight-reader-lookahead"``, a checkpoint path,
            ``"residual-ppo"`` or ``"residual-droq"``.
        env: the :class:`~pianomime_env.envs.piano.PianoMimeEnv` the expert will play.
        song: the song argument of the env (residual experts train on it).
        env_kwargs: the env's keyword arguments (residual experts train with the same ones).
        expert_timesteps: training budget of a residual expert, env steps.
        work_dir: where residual experts write their runs and checkpoints.
        seed: training seed of a residual expert.

    Raises:
        ExpertError: unknown name, missing checkpoint, unavailable policies module, or a
            failed training run.
    """
    if expert in ("sight-reader", "sightreader"):
        from pianomime_env.control.sightreader import SightReader

        return SightReader(env)
    if expert == "sight-reader-lookahead":
        from pianomime_env.control.lookahead import LookaheadSightReader

        return LookaheadSightReader(env)
    if expert in RESIDUAL_EXPERTS:
        if song is None or work_dir is None:
            raise ExpertError(f"{expert} needs the song and a work directory to train in")
        path = train_residual_expert(
            expert, song, dict(env_kwargs or {}), expert_timesteps, Path(work_dir), seed
        )
        return _load_checkpoint(path, env)
    path = Path(expert).expanduser()
    if not path.exists():
        raise ExpertError(
            f"unknown expert {expert!r}: use 'sight-reader', 'sight-reader-lookahead', "
            "'residual-ppo', 'residual-droq' or the path of a checkpoint that exists"
        )
    return _load_checkpoint(path, env)
