"""Minari datasets of PianoMime episodes: writing one atomically, loading it for imitation
learning, and summarizing it (``pianomime dataset info``).

The episode layout is the one :mod:`pianomime_env.collection.collect` writes (module docstring there):
``Dict`` observations (T+1 rows), executed ``actions`` (T, A), the clean expert label in
``infos["expert_action"]`` (T+1, A; the last row NaN), and per-episode metadata (``song``,
``segment``, ``seed``, ``expert``, ``metrics/...``). Needs the ``datasets`` extra (Minari).
"""

from __future__ import annotations

import contextlib
import os
import shutil
import warnings
from collections import Counter
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

import numpy as np

from pianomime_env.extras import require

__all__ = [
    "DATASETS_HINT",
    "Transitions",
    "Windows",
    "check_observation_layout",
    "dataset_info",
    "datasets_root",
    "episode_metadata",
    "import_minari",
    "load_dataset",
    "load_transitions",
    "load_windows",
    "plot_f1_histogram",
    "write_dataset",
]

DATASETS_HINT = 'Minari is needed for datasets: pip install -e ".[datasets]"'
_STAGING = ".pianomime-staging"


def import_minari() -> Any:
    """``import minari``, or an ImportError naming the ``datasets`` extra."""
    return require("minari", DATASETS_HINT)


def datasets_root() -> Path:
    """Minari's local dataset root (``$MINARI_DATASETS_PATH``, else ``~/.minari/datasets``)."""
    import_minari()
    from minari.storage import get_dataset_path

    return Path(get_dataset_path())


# -- Writing ------------------------------------------------------------------------------------


@contextlib.contextmanager
def _minari_root(path: Path) -> Iterator[None]:
    old = os.environ.get("MINARI_DATASETS_PATH")
    os.environ["MINARI_DATASETS_PATH"] = str(path)
    try:
        yield
    finally:
        if old is None:
            del os.environ["MINARI_DATASETS_PATH"]
        else:
            os.environ["MINARI_DATASETS_PATH"] = old


def _flatten(d: dict[str, Any], prefix: str = "") -> dict[str, Any]:
    out: dict[str, Any] = {}
    for k, v in d.items():
        if isinstance(v, dict):
            out.update(_flatten(v, f"{prefix}{k}/"))
        else:
            out[f"{prefix}{k}"] = v
    return out


def write_dataset(
    dataset_id: str,
    batches: Iterable[list[dict[str, Any]]],
    *,
    env_spec: Any,
    eval_env_spec: Any = None,
    algorithm_name: str | None = None,
    description: str | None = None,
    metadata: dict[str, Any] | None = None,
) -> Path:
    """Writes episodes into a new Minari dataset, all or nothing.

    The dataset is built under ``<root>/.pianomime-staging/`` (a hidden directory Minari does
    not list) and renamed to ``<root>/<dataset_id>`` at the end, so the final id never shows a
    partial dataset; on any error the staging copy is removed.

    Args:
        dataset_id: ``[namespace/]name-v<N>``; must not exist.
        batches: lists of episode dicts with ``seed``, ``options``, ``observations`` (dict of
            (T+1, ...) arrays), ``actions`` (T, A), ``rewards``/``terminations``/``truncations``
            (T,), ``infos`` (dict of arrays) and ``metadata`` (dict, nested dicts allowed:
            stored flattened with ``/`` and read back nested).
        env_spec: the Gymnasium ``EnvSpec`` of the episodes (kwargs JSON-serializable).
        eval_env_spec: the spec ``recover_environment(eval_env=True)`` builds.
        algorithm_name, description: Minari metadata.
        metadata: extra dataset-level metadata (JSON-serializable), stored under its keys.

    Returns:
        The dataset's directory.
    """
    minari = import_minari()
    from minari.data_collector import EpisodeBuffer
    from minari.dataset.minari_dataset import parse_dataset_id
    from minari.namespace import create_namespace, list_local_namespaces

    namespace = parse_dataset_id(dataset_id)[0]
    root = datasets_root()
    final = root / dataset_id
    if final.exists():
        raise FileExistsError(f"Minari dataset {dataset_id!r} already exists at {final}")
    staging = root / _STAGING / f"{dataset_id.replace('/', '__')}-{os.getpid()}"
    shutil.rmtree(staging, ignore_errors=True)
    staging.mkdir(parents=True)
    try:
        with _minari_root(staging), warnings.catch_warnings():
            warnings.simplefilter("ignore", UserWarning)  # "author is None" and the like
            dataset = minari.create_dataset_from_buffers(
                dataset_id=dataset_id,
                buffer=[],
                env=env_spec,
                eval_env=eval_env_spec,
                algorithm_name=algorithm_name,
                description=description,
                requirements=["pianomime-env"],
            )
        storage = dataset.storage
        n = 0
        for episodes in batches:
            if not episodes:
                continue
            storage.update_episodes(
                [
                    EpisodeBuffer(
                        id=n + j,
                        seed=int(ep["seed"]),
                        options=ep["options"],
                        observations=ep["observations"],
                        actions=ep["actions"],
                        rewards=ep["rewards"],
                        terminations=ep["terminations"],
                        truncations=ep["truncations"],
                        infos=ep["infos"],
                    )
                    for j, ep in enumerate(episodes)
                ]
            )
            storage.update_episode_metadata(
                [_flatten(ep["metadata"]) for ep in episodes], range(n, n + len(episodes))
            )
            n += len(episodes)
        if metadata:
            storage.update_metadata(dict(metadata))
        if namespace is not None and namespace not in list_local_namespaces():
            create_namespace(namespace)
        final.parent.mkdir(parents=True, exist_ok=True)
        os.rename(staging / dataset_id, final)  # atomic on one filesystem
    finally:
        shutil.rmtree(staging, ignore_errors=True)
        with contextlib.suppress(OSError):
            staging.parent.rmdir()  # only if empty: another collection may be staging
    return final


# -- Loading ------------------------------------------------------------------------------------


def load_dataset(dataset: Any) -> Any:
    """A ``minari.MinariDataset`` from an id of the local root (or the dataset itself)."""
    minari = import_minari()
    if not isinstance(dataset, str):
        return dataset
    local = minari.list_local_datasets()
    if dataset not in local:
        raise ValueError(
            f"no Minari dataset {dataset!r} in {datasets_root()} (local datasets: "
            f"{', '.join(sorted(local)) or 'none'}; MINARI_DATASETS_PATH sets the root)"
        )
    return minari.load_dataset(dataset)


def episode_metadata(dataset: Any) -> list[dict[str, Any]]:
    """Per-episode metadata (song, segment, seed, expert, metrics, options, total_steps, ...)."""
    ds = load_dataset(dataset)
    return [_plain(m) for m in ds.storage.get_episode_metadata(ds.episode_indices)]


def _plain(value: Any) -> Any:
    """numpy scalars (as HDF5 attributes come back) -> Python scalars, recursively."""
    if isinstance(value, dict):
        return {k: _plain(v) for k, v in value.items()}
    if isinstance(value, np.generic):
        return value.item()
    return value


def _env_keys_and_space(env: Any) -> tuple[tuple[str, ...], Any]:
    u = getattr(env, "unwrapped", env)
    from gymnasium import spaces

    space = u.observation_space
    if not isinstance(space, spaces.Dict):
        raise ValueError(
            "the env's observation space must be the Dict one (build it with flatten=False); "
            f"got {space}"
        )
    return tuple(u.observation_keys), space


def check_observation_layout(dataset: Any, env: Any = None) -> tuple[str, ...]:
    """Checks that the dataset's observations have ``env``'s keys, shapes and dtypes.

    ``env`` defaults to ``dataset.recover_environment()``. Returns the env's key order (the
    order flattened observations follow). Raises ``ValueError`` naming the first mismatch.
    """
    ds = load_dataset(dataset)
    if env is None:
        env = ds.recover_environment()
    keys, space = _env_keys_and_space(env)
    got = ds.observation_space
    from gymnasium import spaces

    if not isinstance(got, spaces.Dict):
        raise ValueError(
            f"dataset {ds.id!r} has a {type(got).__name__} observation space, not Dict"
        )
    if set(got.spaces) != set(keys):
        raise ValueError(
            f"dataset {ds.id!r} observation keys {sorted(got.spaces)} differ from the env's "
            f"{list(keys)}"
        )
    for k in keys:
        a, b = got[k], space[k]
        if a.shape != b.shape or a.dtype != b.dtype:
            raise ValueError(
                f"dataset {ds.id!r} observation {k!r} is {a.dtype}{a.shape}, the env's is "
                f"{b.dtype}{b.shape} (e.g. a different n_steps_lookahead or action space)"
            )
    return keys


def _flat_obs(obs: dict[str, np.ndarray], keys: tuple[str, ...]) -> np.ndarray:
    n = len(obs[keys[0]])
    return np.concatenate([np.asarray(obs[k], np.float32).reshape(n, -1) for k in keys], axis=1)


def _episode_actions(ep: Any, labels: str) -> np.ndarray:
    if labels == "expert":
        infos = ep.infos or {}
        if "expert_action" not in infos:
            raise ValueError(
                f"episode {ep.id} has no infos['expert_action']; use labels='executed'"
            )
        return np.asarray(infos["expert_action"][: len(ep.actions)], np.float32)
    if labels == "executed":
        return np.asarray(ep.actions, np.float32)
    raise ValueError(f"labels must be 'expert' or 'executed', got {labels!r}")


@dataclass
class Transitions:
    """Flat (observation, action) pairs of every step of every episode.

    Attributes:
        observations: (N, D) float32, each observation flattened in the env's key order (the
            layout of ``PianoMimeEnv(flatten=True)``).
        actions: (N, A) float32 labels (the clean expert actions, or the executed ones).
        rewards: (N,) float64.
        episode: (N,) int, the episode id of each row.
        step: (N,) int, the step of each row within its episode.
        keys: the observation keys in flattening order.
    """

    observations: np.ndarray
    actions: np.ndarray
    rewards: np.ndarray
    episode: np.ndarray
    step: np.ndarray
    keys: tuple[str, ...]


@dataclass
class Windows:
    """(observation horizon, action horizon) training windows, one per step (Diffusion Policy).

    Attributes:
        observations: (M, To, D) float32: steps t-To+1..t, padded at an episode's start with
            its first observation.
        actions: (M, Ta, A) float32: steps t..t+Ta-1, padded at an episode's end with its last
            action.
        episode: (M,) int; step: (M,) int (t).
        keys: the observation keys in flattening order.
    """

    observations: np.ndarray
    actions: np.ndarray
    episode: np.ndarray
    step: np.ndarray
    keys: tuple[str, ...]


def _episodes(
    dataset: Any, env: Any, labels: str
) -> tuple[tuple[str, ...], list[tuple[int, np.ndarray, np.ndarray, np.ndarray]]]:
    ds = load_dataset(dataset)
    keys = check_observation_layout(ds, env)
    out = []
    for ep in ds.iterate_episodes():
        acts = _episode_actions(ep, labels)
        obs = _flat_obs(ep.observations, keys)[: len(acts)]
        out.append((int(ep.id), obs, acts, np.asarray(ep.rewards, np.float64)))
    if not out:
        raise ValueError(f"dataset {ds.id!r} has no episodes")
    return keys, out


def load_transitions(
    dataset: Any, *, env: Any = None, labels: Literal["expert", "executed"] = "expert"
) -> Transitions:
    """Every step of a dataset as flat arrays, the observation layout checked against ``env``.

    Args:
        dataset: a Minari id or dataset.
        env: the env to check the layout against (default: the dataset's recovered env).
        labels: ``"expert"`` (the clean expert action, the imitation label) or ``"executed"``
            (the action the env got, noise included).
    """
    keys, eps = _episodes(dataset, env, labels)
    return Transitions(
        observations=np.concatenate([o for _, o, _, _ in eps]),
        actions=np.concatenate([a for _, _, a, _ in eps]),
        rewards=np.concatenate([r for *_, r in eps]),
        episode=np.concatenate([np.full(len(a), i) for i, _, a, _ in eps]),
        step=np.concatenate([np.arange(len(a)) for _, _, a, _ in eps]),
        keys=keys,
    )


def load_windows(
    dataset: Any,
    obs_horizon: int,
    action_horizon: int,
    *,
    env: Any = None,
    labels: Literal["expert", "executed"] = "expert",
) -> Windows:
    """Windows of ``obs_horizon`` past observations and ``action_horizon`` future actions at
    every step (see :class:`Windows` for the padding). Arguments as :func:`load_transitions`."""
    for name, v in (("obs_horizon", obs_horizon), ("action_horizon", action_horizon)):
        if isinstance(v, bool) or not isinstance(v, int) or v < 1:
            raise ValueError(f"{name} must be an integer >= 1, got {v!r}")
    keys, eps = _episodes(dataset, env, labels)
    obs_w, act_w, ep_ids, steps = [], [], [], []
    for i, obs, acts, _ in eps:
        n = len(acts)
        t = np.arange(n)
        oi = np.clip(t[:, None] + np.arange(-obs_horizon + 1, 1)[None, :], 0, n - 1)
        ai = np.clip(t[:, None] + np.arange(action_horizon)[None, :], 0, n - 1)
        obs_w.append(obs[oi])
        act_w.append(acts[ai])
        ep_ids.append(np.full(n, i))
        steps.append(t)
    return Windows(
        observations=np.concatenate(obs_w),
        actions=np.concatenate(act_w),
        episode=np.concatenate(ep_ids),
        step=np.concatenate(steps),
        keys=keys,
    )


# -- Info -----------------------------------------------------------------------------------------


def plot_f1_histogram(
    f1: Iterable[float], path: str | os.PathLike, *, title: str = "", rejected: Iterable[float] = ()
) -> Path:
    """A histogram PNG of per-episode F1 (kept, and rejected by the F1 filter if given)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    import matplotlib.ticker

    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    bins = np.linspace(0.0, 1.0, 21)
    fig, ax = plt.subplots(figsize=(6, 3.5), dpi=120)
    ax.hist(list(f1), bins=bins, color="tab:blue", label="kept")
    rejected = list(rejected)
    if rejected:
        ax.hist(rejected, bins=bins, color="tab:gray", alpha=0.6, label="rejected (< min F1)")
        ax.legend()
    ax.yaxis.set_major_locator(matplotlib.ticker.MaxNLocator(integer=True))
    ax.set_xlabel("episode F1")
    ax.set_ylabel("episodes")
    ax.set_title(title)
    fig.tight_layout()
    tmp = path.with_name(f".{path.name}.tmp.png")
    fig.savefig(tmp)
    plt.close(fig)
    os.replace(tmp, path)
    return path


def dataset_info(dataset: Any, histogram: str | os.PathLike | None = None) -> dict[str, Any]:
    """Songs, episodes, steps, F1 distribution and size on disk of a dataset.

    With ``histogram`` a PNG of the per-episode F1 is written there. Returns a JSON-ready dict.
    """
    ds = load_dataset(dataset)
    meta = episode_metadata(ds)
    f1 = np.array([m.get("metrics", {}).get("f1", np.nan) for m in meta], dtype=float)
    songs = Counter(str(m.get("song", "?")) for m in meta)
    collection = ds.storage.metadata.get("pianomime_collection") or {}
    data_path = Path(ds.storage.data_path)
    size = sum(f.stat().st_size for f in data_path.rglob("*") if f.is_file())
    steps = int(ds.total_steps)
    finite = f1[np.isfinite(f1)]
    info: dict[str, Any] = {
        "dataset_id": ds.id,
        "path": str(data_path.parent),
        "songs": len(songs),
        "episodes_per_song": dict(sorted(songs.items())),
        "episodes": int(ds.total_episodes),
        "steps": steps,
        "experts": sorted({str(m.get("expert", "?")) for m in meta}),
        "f1": {
            "mean": float(finite.mean()) if finite.size else None,
            "median": float(np.median(finite)) if finite.size else None,
            "min": float(finite.min()) if finite.size else None,
            "max": float(finite.max()) if finite.size else None,
        },
        "size_bytes": int(size),
        "bytes_per_step": float(size / steps) if steps else None,
        "episodes_rolled": collection.get("episodes_rolled"),
        "failed_songs": collection.get("failed_songs", {}),
    }
    if histogram is not None:
        rejected = collection.get("f1_rejected", [])
        info["histogram"] = str(
            plot_f1_histogram(
                finite,
                histogram,
                title=f"{ds.id}: {info['episodes']} episodes, {info['songs']} songs",
                rejected=rejected,
            )
        )
    return info
