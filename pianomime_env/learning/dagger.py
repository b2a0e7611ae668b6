"""DAgger (Ross, Gordon & Bagnell 2011) for the imitation baselines (``baselines/bc.py
--dagger-rounds K``): roll out the learner, optionally mixed with its teacher, have the teacher
label the learner's *own* states, write the round's episodes as a Minari dataset, retrain on
the aggregate.

Shadow mode: every step both the learner and the teacher see the env's actual observation (the
sight-reader is closed-loop: it reads the current simulation state, so it labels any state,
including ones it would never have reached itself). The teacher's action is the label
(``infos["expert_action"]``); the action executed is the teacher's with probability ``beta``
(drawn per step), else the learner's. Round ``i >= 1`` uses ``beta_i = beta * decay**(i - 1)``
(:func:`beta_schedule`; the initial ``pianomime collect`` dataset plays the part of the
``beta = 1`` round).

A round's episodes have the layout :mod:`pianomime_env.collection.collect` writes (and
:func:`~pianomime_env.learning.generalist.load_imitation_data` reads): ``Dict`` observations
(T+1 rows), executed ``actions`` (T, A), ``infos["expert_action"]`` (T+1, A; the last row NaN),
the env's rewards / terminations / truncations, seed and reset options (``start_step``,
``hand_qpos`` for a mid-song start), so ``env.reset(seed, options)`` + the actions replays the
episode exactly; metadata ``song``, ``song_source``, ``song_index``, ``segment`` (0),
``start_step``, ``episode_in_segment``, ``expert`` (the teacher), ``noise`` (0), ``return``,
``metrics/<name>`` and ``dagger/{round, beta, teacher_fraction}``. The dataset is written with
:func:`~pianomime_env.learning.datasets.write_dataset` (staged, then renamed: it appears only
complete) and its dataset-level metadata ``pianomime_dagger`` names the run and the round.
"""

from __future__ import annotations

import dataclasses
import zlib
from collections.abc import Callable, Mapping, Sequence
from typing import Any

import numpy as np

from pianomime_env.learning.generalist import ImitationData, dataset_env

__all__ = [
    "beta_schedule",
    "concat_imitation_data",
    "episode_rng",
    "load_aggregate",
    "mid_song_pose",
    "roll_out_round",
    "round_dataset_id",
    "round_metadata",
    "shadow_rollout",
    "write_round_dataset",
]

#: Dataset-level metadata key of a DAgger round's dataset.
METADATA_KEY = "pianomime_dagger"


def beta_schedule(beta: float, decay: float, round_index: int) -> float:
    """The teacher's share of executed actions in round ``round_index`` (>= 1):
    ``beta * decay**(round_index - 1)``."""
    if round_index < 1:
        raise ValueError(f"DAgger rounds count from 1, got {round_index}")
    if not 0.0 <= beta <= 1.0 or not 0.0 <= decay <= 1.0:
        raise ValueError(f"beta and its decay must be in [0, 1], got {beta}, {decay}")
    return float(beta * decay ** (round_index - 1))


def round_dataset_id(prefix: str, round_index: int) -> str:
    """The Minari id of round ``round_index``'s dataset: ``<prefix>-r<i>-v0``."""
    return f"{prefix}-r{round_index}-v0"


def episode_rng(seed: int, round_index: int, song: str, episode: int) -> np.random.Generator:
    """The generator of one rollout (its start step, its per-step teacher draws and its env
    seed): a function of the run's seed, the round, the song and the episode number only."""
    entropy = [int(seed), int(round_index), zlib.crc32(song.encode()), int(episode)]
    return np.random.default_rng(np.random.SeedSequence(entropy))


def mid_song_pose(env: Any, teacher: Any, step: int) -> np.ndarray:
    """(2, J) hand joints posed by IK at the planned fingertips of ``step`` (the teacher's plan
    when it has one, else the song's), for ``reset(options={"hand_qpos": ...})``."""
    from pianomime_env.sim.ik import HandIK

    plan = getattr(teacher, "demo", None)
    if plan is None:
        from pianomime_env.demos import from_midi

        plan = from_midi(env.trajectory, control_timestep=env.control_timestep, env=env)
    ik = HandIK(env.model, env.index)
    target = plan.fingertips[min(step, plan.n_steps - 1)]
    return ik.solve(target, ik.posture.copy(), iterations=20)


def shadow_rollout(
    env: Any,
    learner: Callable[[Any], np.ndarray],
    teacher: Callable[[Any], np.ndarray],
    beta: float,
    rng: np.random.Generator,
    *,
    seed: int,
    start: int = 0,
    length: int | None = None,
    hand_qpos: np.ndarray | None = None,
) -> dict[str, Any]:
    """One episode of ``env`` with the teacher in shadow mode.

    Every step the learner and the teacher act on the same observation; the teacher's action is
    the label, the executed action is the teacher's with probability ``beta`` (``rng``, per
    step), else the learner's.

    Returns:
        An episode dict in ``pianomime collect``'s layout (``seed``, ``options``,
        ``observations``, ``actions``, ``rewards``, ``terminations``, ``truncations``,
        ``infos``), plus ``metrics`` (the episode's musical metrics) and ``teacher_steps`` (how
        many executed actions were the teacher's).
    """
    from pianomime_env.music import metrics as metrics_lib

    options: dict[str, Any] = {"start_step": int(start)}
    if hand_qpos is not None:
        options["hand_qpos"] = np.asarray(hand_qpos, np.float64)
    obs, _ = env.reset(seed=int(seed), options=dict(options))
    for policy in (learner, teacher):
        if hasattr(policy, "reset"):
            policy.reset()
    steps = env.n_steps - start if length is None else min(length, env.n_steps - start)
    rows, executed, labels, rewards = [obs], [], [], []
    terminated = truncated = False
    info: dict = {}
    teacher_steps = 0
    for _ in range(steps):
        own = np.asarray(learner(obs), np.float32)
        label = np.asarray(teacher(obs), np.float32)
        by_teacher = bool(rng.random() < beta)
        teacher_steps += by_teacher
        action = label if by_teacher else own
        obs, reward, terminated, truncated, info = env.step(action)
        rows.append(obs)
        executed.append(action)
        labels.append(label)
        rewards.append(float(reward))
        if terminated or truncated:
            break
    n = len(executed)
    if terminated and "metrics" in info:
        metrics = dict(info["metrics"])
    else:  # a segment cut before the song's end: score the steps played
        goal = env.trajectory
        metrics = metrics_lib.evaluate(
            goal.keys[start : start + n],
            goal.sustain[start : start + n],
            env.played_keys,
            env.played_sustain,
        )
    labels.append(np.full_like(labels[-1], np.nan))  # no action at the final observation
    ends = np.zeros(n, dtype=bool)
    return {
        "seed": int(seed),
        "options": options,
        "observations": {k: np.stack([r[k] for r in rows]) for k in rows[0]},
        "actions": np.stack(executed),
        "rewards": np.asarray(rewards, np.float64),
        "terminations": np.concatenate([ends[:-1], [bool(terminated)]]),
        "truncations": np.concatenate([ends[:-1], [not terminated]]),
        "infos": {"expert_action": np.stack(labels)},
        "metrics": {k: float(v) for k, v in metrics.items()},
        "teacher_steps": int(teacher_steps),
    }


def roll_out_round(
    dataset: Any,
    songs: Sequence[str],
    learner: Callable[[Any], Callable[[Any], np.ndarray]],
    teacher: str,
    *,
    round_index: int,
    beta: float,
    seed: int,
    episodes: int = 1,
    segment_steps: int = 0,
    env_kwargs: Mapping[str, Any] | None = None,
    stop: Callable[[], bool] | None = None,
    progress: bool = False,
) -> list[dict[str, Any]] | None:
    """A round's episodes: ``episodes`` per song, each from a random start (``segment_steps``
    steps, the hands posed by IK at the plan) or the whole song (``segment_steps`` 0).

    Args:
        dataset: the initial dataset (Minari id or dataset): its env arguments build each
            song's env (:func:`~pianomime_env.learning.generalist.dataset_env`).
        songs: the training songs (song arguments, as in the episodes' ``song_source``).
        learner: ``env -> policy`` (e.g. a :class:`GeneralistPolicy` of the current weights).
        teacher: a :func:`~pianomime_env.learning.evaluation.make_policy` name:
            ``sight-reader``, ``sight-reader-lookahead`` or a checkpoint path.
        round_index, beta, seed: the round, the teacher's share, the run's seed.
        env_kwargs: overrides of the dataset's env arguments.
        stop: called between episodes; True abandons the round (returns None).

    Returns:
        Episode dicts with their ``metadata`` (module docstring), or None when stopped.
    """
    from tqdm import tqdm

    from pianomime_env.learning.datasets import load_dataset
    from pianomime_env.learning.evaluation import make_policy
    from pianomime_env.music.sources import song_label

    ds = load_dataset(dataset)
    out = []
    bar = tqdm(total=len(songs) * episodes, desc=f"round {round_index}", disable=not progress)
    with bar:
        for index, song in enumerate(songs):
            env = dataset_env(ds, song, env_kwargs)
            own, expert = learner(env), make_policy(teacher, env, seed)
            for k in range(episodes):
                if stop is not None and stop():
                    env.close()
                    return None
                rng = episode_rng(seed, round_index, song, k)
                start, length, pose = 0, None, None
                if 0 < segment_steps < env.n_steps:
                    start, length = (
                        int(rng.integers(0, env.n_steps - segment_steps + 1)),
                        segment_steps,
                    )
                    pose = mid_song_pose(env, expert, start) if start > 0 else None
                ep_seed = int(rng.integers(0, 2**31 - 1))
                ep = shadow_rollout(
                    env, own, expert, beta, rng, seed=ep_seed, start=start, length=length,
                    hand_qpos=pose,
                )  # fmt: skip
                n = len(ep["actions"])
                ep["metadata"] = {
                    "song": song_label(song),
                    "song_source": song,
                    "song_index": index,
                    "segment": 0,
                    "start_step": start,
                    "episode_in_segment": k,
                    "expert": teacher,
                    "noise": 0.0,
                    "return": float(ep["rewards"].sum()),
                    "metrics": ep.pop("metrics"),
                    "dagger": {
                        "round": int(round_index),
                        "beta": float(beta),
                        "teacher_fraction": ep.pop("teacher_steps") / max(n, 1),
                    },
                }
                out.append(ep)
                bar.update(1)
            env.close()
    return out


def write_round_dataset(
    dataset_id: str,
    episodes: list[dict[str, Any]],
    initial: Any,
    env_kwargs: Mapping[str, Any],
    metadata: Mapping[str, Any],
) -> Any:
    """Writes a round's episodes as the new Minari dataset ``dataset_id`` (atomically: staged,
    then renamed), with the initial dataset's env spec (its ``env_kwargs`` and the first
    episode's song) and ``metadata`` under ``pianomime_dagger``; returns its directory."""
    from pianomime_env.learning.datasets import load_dataset, write_dataset

    ds = load_dataset(initial)
    song = episodes[0]["metadata"]["song_source"]
    kwargs = {**dict(env_kwargs), "song": song}
    spec = dataclasses.replace(ds.env_spec, kwargs=kwargs)
    eval_spec = dataclasses.replace(
        ds.env_spec, kwargs={**kwargs, "randomize_hand_positions": False}
    )
    return write_dataset(
        dataset_id,
        [episodes],
        env_spec=spec,
        eval_env_spec=eval_spec,
        algorithm_name=f"DAgger round {metadata.get('round')} (teacher {metadata.get('teacher')})",
        description="DAgger round of a PianoMime imitation learner: the learner's own states, "
        "the teacher's labels (infos['expert_action']); layout as pianomime collect's",
        metadata={METADATA_KEY: dict(metadata)},
    )


def round_metadata(dataset: Any) -> dict[str, Any] | None:
    """The ``pianomime_dagger`` metadata of a round's dataset (None for other datasets)."""
    from pianomime_env.learning.datasets import load_dataset

    return load_dataset(dataset).storage.metadata.get(METADATA_KEY)


def concat_imitation_data(parts: Sequence[ImitationData]) -> ImitationData:
    """One :class:`ImitationData` of several datasets' (same observation layout)."""
    first = parts[0]
    for p in parts[1:]:
        if p.layout != first.layout:
            raise ValueError("the datasets have different observation layouts")
    return ImitationData(
        observations=[o for p in parts for o in p.observations],
        actions=[a for p in parts for a in p.actions],
        songs=[s for p in parts for s in p.songs],
        layout=first.layout,
        env_kwargs=first.env_kwargs,
        steps=sum(p.steps for p in parts),
    )


def load_aggregate(
    dataset_ids: Sequence[str], cache: dict[str, ImitationData] | None = None, **kwargs: Any
) -> ImitationData:
    """The imitation data of every dataset in ``dataset_ids`` (the initial one and the rounds'),
    each read with :func:`~pianomime_env.learning.generalist.load_imitation_data` (``kwargs``)
    once per ``cache``."""
    from pianomime_env.learning.generalist import load_imitation_data

    cache = {} if cache is None else cache
    for ds_id in dataset_ids:
        if ds_id not in cache:
            cache[ds_id] = load_imitation_data(ds_id, **kwargs)
    return concat_imitation_data([cache[d] for d in dataset_ids])
