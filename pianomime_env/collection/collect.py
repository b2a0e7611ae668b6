"""RP1M-style expert data collection into a Minari dataset (``pianomime collect``).

For every song an expert (:mod:`pianomime_env.collection.experts`) plays K episodes per segment with
per-episode seeds; an episode is kept only if its F1 reaches ``min_f1``. Songs run in a local
process pool (default) or as Ray tasks (``ray=True`` / ``ray_address``). Each finished song is
written to a shard in a work directory, so an interrupted run resumes where it stopped; at the
end the shards become one Minari dataset, written under a hidden staging directory of the Minari
root and renamed into place, so no partial dataset is ever visible under the final id.

Episode layout (what :mod:`pianomime_env.learning.datasets` reads back):

- ``observations``: the env's ``Dict`` observation (goal included), T+1 rows per key.
- ``actions`` (T, A): the executed actions (the expert's, plus the optional noise).
- ``infos["expert_action"]`` (T+1, A): the clean expert action at each observation (the label
  for imitation); the last row (the final observation, where no action is taken) is NaN.
- ``rewards``, ``terminations``, ``truncations`` (T,): the env's; a segment that stops before
  the song's end is truncated.
- seed and reset options (``start_step``, and ``hand_qpos`` for a posed segment start) as
  Minari's episode seed/options, so
  ``env.reset(seed=seed, options=options)`` + the actions replays the episode exactly.
- episode metadata: ``song``, ``song_source``, ``song_index``, ``segment``, ``start_step``,
  ``expert``, ``noise``, ``episode_in_segment``, ``return`` and ``metrics/<name>`` (the musical
  metrics of the episode, :func:`pianomime_env.music.metrics.evaluate`).
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import pickle
import shutil
import time
import traceback
import zlib
from collections.abc import Iterator, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from pianomime_env.music.sources import resolve_songs, song_label

__all__ = [
    "CollectSettings",
    "CollectSummary",
    "CollectionIncomplete",
    "collect",
    "collect_song",
    "episode_seed",
    "segment_bounds",
]

_ENTRY_POINT = "pianomime_env.envs.piano:PianoMimeEnv"
_WORK = ".pianomime-collect"
#: Environment variable: how many times a song lost to the infrastructure is run again (each
#: kind: fan-out resubmissions and, on Ray, Ray's own task retries); default 2 / 3.
RETRIES_ENV = "PIANOMIME_RETRIES"


@dataclass(frozen=True)
class CollectSettings:
    """Everything that determines a collection's episodes (saved in the work directory; a
    resumed run must use the same)."""

    songs: tuple[str, ...]
    """Song arguments of the env (built-in names, absolute MIDI paths, ``music21:<path>``)."""
    episodes: int = 10
    """K: episodes per song (per segment when ``segment_steps`` is set)."""
    expert: str = "sight-reader"
    """``sight-reader``, ``sight-reader-lookahead``, a checkpoint path, ``residual-ppo`` or
    ``residual-droq``."""
    min_f1: float = 0.0
    """Keep an episode only if its F1 is at least this."""
    noise: float = 0.0
    """Std of Gaussian action noise, in normalized action units (fraction of half the range)."""
    segment_steps: int | None = None
    """Cut songs into segments of this many steps (RP1M: 550); None = whole songs."""
    pose_segments: bool = True
    """Start a segment after the song's first step with the hands posed by IK at the planned
    fingertips of its first frame (reset option ``hand_qpos``), not at the rest pose."""
    seed: int = 0
    """Base seed; episode seeds derive from it, the song and the episode number."""
    expert_timesteps: int = 100_000
    """Training budget (env steps) of a residual expert per song."""
    expert_sha1: str | None = None
    """SHA-1 of a checkpoint expert's file (a resumed run must use the same checkpoint)."""
    env_kwargs: dict[str, Any] = field(default_factory=dict)
    """Keyword arguments of every song's env (JSON-serializable)."""

    def to_json(self) -> str:
        return json.dumps(asdict(self), sort_keys=True)


@dataclass
class CollectSummary:
    """What a collection did (returned by :func:`collect`, stored in the dataset's metadata)."""

    dataset_id: str
    path: str
    songs: int
    failed: dict[str, str]
    episodes_rolled: int
    episodes_kept: int
    steps: int
    f1_kept: list[float]
    f1_rejected: list[float]
    seconds: float
    resumed_songs: int
    nodes: dict[str, str] = field(default_factory=dict)
    """Ray node id that collected each song (Ray only; songs of this run, not resumed ones)."""


class CollectionIncomplete(RuntimeError):
    """Songs were lost to the infrastructure (a worker or node lost, an out-of-memory kill) on
    every attempt: no dataset is written, the finished songs' shards are kept, and running the
    same collection again collects only the missing songs."""

    def __init__(self, message: str, lost: dict[str, str], work_dir: str) -> None:
        super().__init__(message)
        self.lost = lost
        self.work_dir = work_dir


# -- Songs ------------------------------------------------------------------------------------


def segment_bounds(n_steps: int, segment_steps: int | None) -> list[tuple[int, int]]:
    """``[(start_step, length), ...]`` covering a song of ``n_steps``: one piece, or
    consecutive segments of ``segment_steps`` (the last one shorter)."""
    if segment_steps is None or segment_steps >= n_steps:
        return [(0, n_steps)]
    return [(s, min(segment_steps, n_steps - s)) for s in range(0, n_steps, segment_steps)]


def episode_seed(base_seed: int, song: str, segment: int, episode: int) -> int:
    """The seed of one episode: a function of the base seed, the song argument, the segment and
    the episode number only (so workers, order and resumption never change it)."""
    entropy = [int(base_seed), zlib.crc32(song.encode()), int(segment), int(episode)]
    return int(np.random.SeedSequence(entropy).generate_state(1)[0] & 0x7FFFFFFF)


# -- One song -----------------------------------------------------------------------------------


def _noisy(env: Any, clean: np.ndarray, noise: float, rng: np.random.Generator) -> np.ndarray:
    if noise <= 0.0:
        return np.asarray(clean, np.float32)
    eps = rng.standard_normal(np.shape(clean))
    if env.normalized_actions:
        return np.clip(clean + noise * eps, -1.0, 1.0).astype(np.float32)
    half = 0.5 * (env.action_high - env.action_low)
    return np.clip(clean + noise * half * eps, env.action_low, env.action_high).astype(np.float32)


def _stack_obs(rows: list[dict[str, np.ndarray]]) -> dict[str, np.ndarray]:
    return {k: np.stack([r[k] for r in rows]) for k in rows[0]}


class _StartPoses:
    """IK hand poses (2, J) at the planned fingertips of a song's frames (segment starts)."""

    def __init__(self, env: Any, expert: Any) -> None:
        from pianomime_env.sim.ik import HandIK

        demo = getattr(expert, "demo", None)  # the sight-reader's plan, if it has one
        if demo is None:
            from pianomime_env.demos import from_midi

            demo = from_midi(env.trajectory, control_timestep=env.control_timestep, env=env)
        self.demo = demo
        self.ik = HandIK(env.model, env.index)

    def __call__(self, step: int) -> np.ndarray:
        frame = min(step, self.demo.n_steps - 1)
        return self.ik.solve(self.demo.fingertips[frame], self.ik.posture.copy(), iterations=20)


def _rollout(
    env: Any,
    expert: Any,
    settings: CollectSettings,
    start: int,
    length: int,
    seed: int,
    hand_qpos: np.ndarray | None = None,
) -> dict[str, Any]:
    from pianomime_env.music import metrics as metrics_lib

    options: dict[str, Any] = {"start_step": int(start)}
    if hand_qpos is not None:
        options["hand_qpos"] = np.asarray(hand_qpos, np.float64)
    obs, _ = env.reset(seed=seed, options=options)
    if hasattr(expert, "reset"):
        expert.reset()
    rng = np.random.default_rng(seed)
    observations, actions, labels, rewards, sustain = [obs], [], [], [], []
    terminated, info = False, {}
    for _ in range(length):
        clean = np.asarray(expert(obs), np.float32)
        action = _noisy(env, clean, settings.noise, rng)
        obs, reward, terminated, truncated, info = env.step(action)
        observations.append(obs)
        actions.append(action)
        labels.append(clean)
        rewards.append(float(reward))
        sustain.append(env.sustain_activation)
        if terminated or truncated:
            break
    n = len(actions)
    if terminated and "metrics" in info:
        metrics = dict(info["metrics"])
    else:
        traj = env.trajectory
        metrics = metrics_lib.evaluate(
            traj.keys[start : start + n], traj.sustain[start : start + n], env.played_keys, sustain
        )
    labels.append(np.full_like(labels[-1], np.nan))
    terminations = np.zeros(n, dtype=bool)
    terminations[-1] = bool(terminated)
    truncations = np.zeros(n, dtype=bool)
    truncations[-1] = not terminated
    return {
        "seed": int(seed),
        "options": options,
        "observations": _stack_obs(observations),
        "actions": np.stack(actions),
        "rewards": np.asarray(rewards, np.float64),
        "terminations": terminations,
        "truncations": truncations,
        "infos": {"expert_action": np.stack(labels)},
        "metrics": {k: float(v) for k, v in metrics.items()},
    }


def collect_song(
    song: str,
    song_index: int,
    settings: CollectSettings,
    work_dir: str | os.PathLike,
    progress_position: int | None = None,
) -> dict[str, Any]:
    """Rolls out one song: K episodes per segment, the F1 filter applied.

    Returns ``{"song", "song_index", "episodes": [episode dicts], "rolled", "f1_rejected",
    "seconds"}``, or ``{"song", "song_index", "error": message}`` if the song cannot be loaded
    or the expert fails (never raises for those).
    """
    from tqdm import tqdm

    from pianomime_env.collection.experts import expert_label, make_expert
    from pianomime_env.envs.piano import PianoMimeEnv

    t0 = time.perf_counter()
    label = song_label(song)
    try:
        env = PianoMimeEnv(song, **settings.env_kwargs)
        expert = make_expert(
            settings.expert,
            env,
            song=song,
            env_kwargs=settings.env_kwargs,
            expert_timesteps=settings.expert_timesteps,
            work_dir=work_dir,
            seed=settings.seed,
        )
        bounds = segment_bounds(env.n_steps, settings.segment_steps)
        kept, rejected = [], []
        poses: _StartPoses | None = None
        bar = tqdm(
            total=len(bounds) * settings.episodes,
            desc=f"  {label[:30]}",
            unit="ep",
            leave=False,
            position=progress_position,
            mininterval=1.0,
            disable=progress_position is None,
        )
        with bar:
            for segment, (start, length) in enumerate(bounds):
                pose = None
                if start > 0 and settings.pose_segments:
                    poses = poses or _StartPoses(env, expert)
                    pose = poses(start)
                for k in range(settings.episodes):
                    seed = episode_seed(settings.seed, song, segment, k)
                    ep = _rollout(env, expert, settings, start, length, seed, pose)
                    bar.update(1)
                    if ep["metrics"]["f1"] < settings.min_f1:
                        rejected.append(ep["metrics"]["f1"])
                        continue
                    ep["metadata"] = {
                        "song": label,
                        "song_source": song,
                        "song_index": int(song_index),
                        "segment": segment,
                        "start_step": int(start),
                        "episode_in_segment": k,
                        "expert": expert_label(settings.expert),
                        "noise": float(settings.noise),
                        "return": float(ep["rewards"].sum()),
                        "metrics": ep.pop("metrics"),
                    }
                    kept.append(ep)
        env.close()
    except MemoryError:
        raise  # out of memory is the machine's failure, not the song's: the task is retried
    except Exception as exc:  # a bad song or a crashing expert is reported, never fatal
        tb = traceback.format_exc(limit=3).strip().splitlines()
        return {
            "song": song,
            "song_index": song_index,
            "error": f"{type(exc).__name__}: {exc}",
            "traceback": "\n".join(tb[-6:]),
        }
    return {
        "song": song,
        "song_index": song_index,
        "episodes": kept,
        "rolled": len(bounds) * settings.episodes,
        "f1_rejected": rejected,
        "seconds": time.perf_counter() - t0,
    }


# -- Work directory, shards -------------------------------------------------------------------


def _slug(dataset_id: str) -> str:
    return dataset_id.replace("/", "__")


def _shard_path(work: Path, song: str, index: int) -> Path:
    h = hashlib.sha1(song.encode()).hexdigest()[:10]
    return work / "shards" / f"{index:06d}-{h}.pkl"


def _write_atomic(path: Path, data: bytes) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    with open(tmp, "wb") as f:
        f.write(data)
        f.flush()
        os.fsync(f.fileno())
    os.replace(tmp, path)


def _prepare_work_dir(work: Path, settings: CollectSettings, restart: bool) -> None:
    cfg = work / "settings.json"
    if restart and work.exists():
        shutil.rmtree(work)
    if cfg.exists():
        saved = cfg.read_text()
        if saved != settings.to_json():
            raise ValueError(
                f"{work} holds an unfinished collection with other settings; resume it with the "
                f"same arguments, or pass --restart to discard it (saved: {saved})"
            )
    else:
        _write_atomic(cfg, settings.to_json().encode())


def _checkpoint_sha1(expert: str) -> str | None:
    from pianomime_env.collection.experts import NAMED_EXPERTS, RESIDUAL_EXPERTS

    if expert in ("sightreader", *NAMED_EXPERTS, *RESIDUAL_EXPERTS):
        return None
    path = Path(expert).expanduser()
    if path.is_dir():
        path = path / "model.pt"
    if not path.is_file():
        return None  # reported per song by make_expert
    return hashlib.sha1(path.read_bytes()).hexdigest()


def _env_spec(song: str, env_kwargs: dict[str, Any], eval_env: bool = False) -> Any:
    """The dataset's env spec: ``PianoMime-v0`` with the song and the collection's env kwargs
    (all JSON). The eval env is the same without hand-position randomization."""
    from gymnasium.envs.registration import EnvSpec

    kwargs = {"song": song, **env_kwargs}
    if eval_env:
        kwargs["randomize_hand_positions"] = False
    return EnvSpec(id="PianoMime-v0", entry_point=_ENTRY_POINT, kwargs=kwargs)


def _read_shard(path: Path) -> dict[str, Any]:
    return pickle.loads(path.read_bytes())


def _shard_episodes(paths: list[Path]) -> Iterator[list[dict[str, Any]]]:
    from tqdm import tqdm

    for p in tqdm(paths, desc="writing dataset", unit="song", leave=False):
        yield _read_shard(p)["episodes"]


# -- The command --------------------------------------------------------------------------------


def collect(
    dataset_id: str,
    songs: Sequence[str],
    *,
    episodes: int = 10,
    expert: str = "sight-reader",
    min_f1: float = 0.0,
    noise: float = 0.0,
    segment_steps: int | None = None,
    pose_segments: bool = True,
    seed: int = 0,
    expert_timesteps: int = 100_000,
    env_kwargs: dict[str, Any] | None = None,
    workers: int | None = None,
    ray: bool = False,
    ray_address: str | None = None,
    work_dir: str | os.PathLike | None = None,
    restart: bool = False,
    keep_work_dir: bool = False,
    max_songs: int | None = None,
    retries: int | None = None,
) -> CollectSummary:
    """Collects expert episodes for ``songs`` into the new Minari dataset ``dataset_id``.

    Args:
        dataset_id: Minari id, ``[namespace/]name-v<N>``; must not exist yet.
        songs: song specs (see :func:`resolve_songs`).
        episodes: K, episodes per song (per segment with ``segment_steps``).
        expert: see :func:`pianomime_env.collection.experts.make_expert`.
        min_f1: episodes with F1 below this are rolled out but not kept.
        noise: Gaussian action noise std in normalized action units (a fraction of half each
            action's range); the executed (noisy) action is ``actions``, the clean one
            ``infos["expert_action"]``.
        segment_steps: cut songs into segments of this many steps (RP1M: 550).
        pose_segments: start segments after the first with the hands posed by IK at the
            segment's first planned fingertips (reset option ``hand_qpos``, stored with the
            episode's options), else at the rest pose.
        seed: base seed of the episode seeds (:func:`episode_seed`).
        expert_timesteps: training budget per song of ``residual-ppo`` / ``residual-droq``.
        env_kwargs: keyword arguments of the envs (JSON-serializable; stored in the env spec);
            ``trim_silence`` defaults to True, ``randomize_hand_positions`` to False.
        workers: local pool size (default: the CPUs available); with Ray, the CPUs of the local
            Ray instance.
        ray: run each song as a task on a local Ray instance.
        ray_address: connect to this Ray cluster instead (implies ``ray``).
        work_dir: shards of finished songs (default: a hidden directory in the Minari root).
        restart: discard an unfinished collection's shards instead of resuming.
        keep_work_dir: keep the shards after the dataset is written.
        max_songs: use only the first N resolved songs.
        retries: how many times a song lost to the infrastructure (its worker process or node
            lost, an out-of-memory kill) is run again; on Ray, also Ray's own ``max_retries``
            of each run. Default: ``$PIANOMIME_RETRIES``, else 2 (Ray: 3).

    Returns:
        A :class:`CollectSummary`.

    Raises:
        CollectionIncomplete: songs lost to the infrastructure on every attempt (no dataset
            written; the finished songs are kept, and the same call again finishes the rest).
        FileExistsError: the dataset exists.
        ValueError: bad arguments, or no episode at all was kept (every song failed or was
            filtered out; nothing is written then, the finished shards stay for a resume).
        ImportError: Minari (``datasets`` extra) or, for Ray, the ``distributed`` extra missing.
        ConnectionError: the Ray cluster refused this driver (token authentication: the
            message says which variables to set).
    """

    from pianomime_env.learning import datasets as datasets_lib

    datasets_lib.import_minari()
    from minari.dataset.minari_dataset import parse_dataset_id

    env_kwargs = _check_arguments(
        dataset_id, episodes, min_f1, noise, segment_steps, expert, env_kwargs, parse_dataset_id
    )
    song_list = resolve_songs(songs, max_songs)
    settings = CollectSettings(
        songs=tuple(song_list),
        episodes=episodes,
        expert=expert,
        min_f1=float(min_f1),
        noise=float(noise),
        segment_steps=segment_steps,
        pose_segments=bool(pose_segments),
        seed=int(seed),
        expert_timesteps=int(expert_timesteps),
        expert_sha1=_checkpoint_sha1(expert),
        env_kwargs=env_kwargs,
    )
    root = datasets_lib.datasets_root()
    if (root / dataset_id).exists():
        raise FileExistsError(
            f"Minari dataset {dataset_id!r} already exists at {root / dataset_id}"
        )
    if expert in ("sight-reader", "sight-reader-lookahead") and episodes > 1 and noise == 0.0:
        if not env_kwargs.get("randomize_hand_positions"):
            print(
                "pianomime collect: note: the sight-reader is deterministic; without --noise or "
                "--randomize-hands the episodes of a segment are identical"
            )
    work = Path(work_dir) if work_dir is not None else root / _WORK / _slug(dataset_id)
    _prepare_work_dir(work, settings, restart)

    t0 = time.perf_counter()
    shards = [_shard_path(work, s, i) for i, s in enumerate(song_list)]
    done = {i for i, p in enumerate(shards) if p.exists()}
    tasks = [(i, (s, i, settings, str(work))) for i, s in enumerate(song_list) if i not in done]
    if done:
        print(f"pianomime collect: resuming: {len(done)} of {len(song_list)} songs already done")
    fanout_retries, ray_retries = _retries(retries)
    failed, lost, nodes = _run_songs(
        tasks, song_list, shards, len(done), workers, ray, ray_address, fanout_retries, ray_retries
    )
    if lost:
        n_done = sum(p.exists() for p in shards)
        reasons = "; ".join(f"{song_label(k)}: {v}" for k, v in lost.items())
        raise CollectionIncomplete(
            f"{len(lost)} of {len(song_list)} songs were lost to infrastructure failures after "
            f"{fanout_retries + 1} attempts ({reasons}); no dataset written. The {n_done} "
            f"finished songs are saved in {work}: run the same command again to collect the "
            "rest.",
            lost,
            str(work),
        )

    present = [p for p in shards if p.exists()]
    rolled, kept, steps, f1_kept, f1_rejected, first_song = _totals(shards, song_list)
    if kept == 0 or first_song is None:
        reasons = "; ".join(f"{song_label(k)}: {v}" for k, v in failed.items()) or "none"
        raise ValueError(
            f"no episode kept for {dataset_id!r}: {len(failed)} of {len(song_list)} songs failed "
            f"({reasons}), {len(f1_rejected)} episodes below min_f1={min_f1}; nothing written"
        )
    meta = {
        "settings": json.loads(settings.to_json()),
        "failed_songs": failed,
        "episodes_rolled": rolled,
        "episodes_kept": kept,
        "f1_rejected": f1_rejected,
    }
    # The env spec's song is the first song with episodes; recover_environment(song=...) gives
    # the env of any other (each episode's metadata names its song_source).
    path = datasets_lib.write_dataset(
        dataset_id,
        _shard_episodes(present),
        env_spec=_env_spec(first_song, env_kwargs),
        eval_env_spec=_env_spec(first_song, env_kwargs, eval_env=True),
        algorithm_name=f"pianomime collect --expert {expert}",
        description="RP1M-style expert episodes of PianoMime envs (pianomime collect); "
        "layout in pianomime-env's docs/datasets.md",
        metadata={"pianomime_collection": meta},
    )
    if not keep_work_dir:
        shutil.rmtree(work, ignore_errors=True)
        if work_dir is None:
            with contextlib.suppress(OSError):
                work.parent.rmdir()  # only if empty
    return CollectSummary(
        dataset_id=dataset_id,
        path=str(path),
        songs=len(song_list),
        failed=failed,
        episodes_rolled=rolled,
        episodes_kept=kept,
        steps=steps,
        f1_kept=f1_kept,
        f1_rejected=f1_rejected,
        seconds=time.perf_counter() - t0,
        resumed_songs=len(done),
        nodes={song_list[i]: n for i, n in sorted(nodes.items())},
    )


def _check_arguments(
    dataset_id: str,
    episodes: Any,
    min_f1: float,
    noise: float,
    segment_steps: int | None,
    expert: str,
    env_kwargs: dict[str, Any] | None,
    parse_dataset_id: Any,
) -> dict[str, Any]:
    """``ValueError`` naming the first bad argument; returns the env arguments with the two
    that collect cares about made explicit."""
    if isinstance(episodes, bool) or not isinstance(episodes, int) or episodes < 1:
        raise ValueError(f"episodes must be an integer >= 1, got {episodes!r}")
    if not 0.0 <= float(min_f1) <= 1.0:
        raise ValueError(f"min_f1 must be in [0, 1], got {min_f1!r}")
    if not float(noise) >= 0.0:
        raise ValueError(f"noise must be >= 0, got {noise!r}")
    if segment_steps is not None and segment_steps < 1:
        raise ValueError(f"segment_steps must be >= 1, got {segment_steps!r}")
    parse_dataset_id(dataset_id)  # ValueError on a malformed id
    from pianomime_env.collection.experts import NAMED_EXPERTS, RESIDUAL_EXPERTS

    if expert not in (*NAMED_EXPERTS, *RESIDUAL_EXPERTS) and not Path(expert).expanduser().exists():
        raise ValueError(
            f"unknown expert {expert!r}: use 'sight-reader', 'sight-reader-lookahead', "
            "'residual-ppo', 'residual-droq' or the path of a checkpoint that exists"
        )
    # The two settings collect itself cares about are always explicit (same settings whether
    # they came from the CLI or the API, so a resumed run matches).
    env_kwargs = {"trim_silence": True, "randomize_hand_positions": False, **(env_kwargs or {})}
    try:
        json.dumps(env_kwargs)
    except TypeError as e:
        raise ValueError(
            f"env_kwargs must be JSON-serializable (they go in the env spec): {e}"
        ) from None
    return env_kwargs


def _run_songs(
    tasks: list[tuple[int, tuple]],
    song_list: list[str],
    shards: list[Path],
    n_done: int,
    workers: int | None,
    ray: bool,
    ray_address: str | None,
    fanout_retries: int,
    ray_retries: int,
) -> tuple[dict[str, str], dict[str, str], dict[int, str]]:
    """Runs ``collect_song`` for every song not done yet (pool or Ray), writes each finished
    song's shard, reports progress; returns the bad songs (skipped), the songs lost to the
    infrastructure, and the node of each song run on Ray."""
    from tqdm import tqdm

    from pianomime_env.collection.fanout import InfrastructureError, run_tasks

    failed: dict[str, str] = {}
    lost: dict[str, str] = {}
    nodes: dict[int, str] = {}
    bar = tqdm(total=len(song_list), initial=n_done, desc="songs", unit="song", position=0)

    def on_retry(index: int, exc: BaseException, attempt: int) -> None:
        first = (str(exc).strip().splitlines() or [""])[0][:200]
        bar.write(
            f"pianomime collect: {song_label(song_list[index])} lost to the infrastructure "
            f"({type(exc).__name__}: {first}); running it again (attempt {attempt} of "
            f"{fanout_retries + 1})"
        )

    with bar:
        for index, result in run_tasks(
            collect_song,
            tasks,
            workers=workers,
            ray=ray,
            address=ray_address,
            retries=fanout_retries,
            ray_max_retries=ray_retries,
            names={i: f"collect_song[{i}] {song_label(s)[:60]}" for i, s in enumerate(song_list)},
            where=nodes,
            on_retry=on_retry,
        ):
            song = song_list[index]
            if isinstance(result, InfrastructureError):
                # Never a bad song: not skipped, not in the dataset's failed songs; the run
                # fails at the end and a re-run collects it.
                lost[song] = str(result)
                bar.write(f"pianomime collect: NOT collected {song_label(song)}: {result}")
                continue
            bar.update(1)
            if isinstance(result, Exception):  # collect_song raised (it reports song errors)
                result = {"error": f"task failed: {type(result).__name__}: {result}"}
            if "error" in result:
                failed[song] = result["error"]
                bar.write(f"pianomime collect: skipped {song_label(song)}: {result['error']}")
                continue
            _write_atomic(shards[index], pickle.dumps(result, protocol=pickle.HIGHEST_PROTOCOL))
            f1 = [e["metadata"]["metrics"]["f1"] for e in result["episodes"]]
            bar.write(
                f"{song_label(song)}: kept {len(f1)}/{result['rolled']} episodes"
                + (f", mean F1 {np.mean(f1):.3f}" if f1 else "")
                + f" ({result['seconds']:.1f} s"
                + (f", node {nodes[index][:8]}" if index in nodes else "")
                + ")"
            )
    return failed, lost, nodes


def _totals(
    shards: list[Path], song_list: list[str]
) -> tuple[int, int, int, list[float], list[float], str | None]:
    """Episodes rolled and kept, steps, kept and rejected F1s over the finished shards, and the
    first song that has episodes (the dataset's env spec is that song's)."""
    rolled = kept = steps = 0
    f1_kept: list[float] = []
    f1_rejected: list[float] = []
    first_song = None
    for i, p in enumerate(shards):
        if not p.exists():
            continue
        r = _read_shard(p)
        rolled += r["rolled"]
        kept += len(r["episodes"])
        steps += sum(len(e["actions"]) for e in r["episodes"])
        f1_kept += [e["metadata"]["metrics"]["f1"] for e in r["episodes"]]
        f1_rejected += r["f1_rejected"]
        if r["episodes"] and first_song is None:
            first_song = song_list[i]
    return rolled, kept, steps, f1_kept, f1_rejected, first_song


def _retries(retries: int | None) -> tuple[int, int]:
    """(fan-out resubmissions, Ray's max_retries) from the argument or ``$PIANOMIME_RETRIES``."""
    from pianomime_env.collection.fanout import RAY_MAX_RETRIES

    if retries is None and os.environ.get(RETRIES_ENV, "").strip():
        try:
            retries = int(os.environ[RETRIES_ENV])
        except ValueError:
            value = os.environ[RETRIES_ENV]
            raise ValueError(f"{RETRIES_ENV} must be an integer, got {value!r}") from None
    if retries is None:
        return 2, RAY_MAX_RETRIES
    if isinstance(retries, bool) or not isinstance(retries, int) or retries < 0:
        raise ValueError(f"retries must be an integer >= 0, got {retries!r}")
    return retries, retries
