"""The look-ahead, distilled: a network that predicts which candidate setting the look-ahead
sight-reader's rollouts would pick, so that the sight-reader plays with the look-ahead's choices
at about the plain reader's cost (``baselines/distill_lookahead.py`` trains it).

:class:`~pianomime_env.control.lookahead.LookaheadSightReader` simulates each of its candidates
(``DEFAULT_CANDIDATES``: 7 settings of the sight-reader's step gains, one of them a plan that
holds notes through hand moves) for 20 steps every 10 and plays the best: 42–68 ms per control
step. Here a small MLP maps :func:`choice_features` — how far the fingertips are from the plan,
how far and how fast the plan moves the hands next, how many onsets and held notes are coming,
how many of them each candidate's plan leaves without a finger — to each candidate's predicted
score **gain over the default candidate** (the rollout score: key-step F1 + note-onset F1 over
the window). The reader plays the candidate of the largest predicted gain when it exceeds
``margin``, else the default (the plain sight-reader's setting).

Labels come from :func:`record_choices`: one episode of a song played by the look-ahead (the
teacher) or by the learned chooser (DAgger: the teacher's rollouts score every candidate from
the state the *learner* reached, so its labels cover the learner's own states), with the
teacher's choice executed with probability ``beta`` per chunk.

Checkpoint (``model.pt``, :func:`~pianomime_env.learning.policies.save_checkpoint`'s format):
``algorithm`` ``"lookahead-chooser"``; ``actor`` the MLP (``state_dict``, ``in_dim``,
``hidden``, ``out_dim``, ``activation``); ``obs_norm`` the feature normalization (``mean``,
``var`` (F,), ``clip``, ``eps``); ``candidates``, ``chunk_steps``, ``horizon_steps``,
``margin``, ``feature_names``, ``control_timestep``. :func:`~pianomime_env.learning.policies.load_policy`
returns a :class:`ChooserPolicy` for it (a ``LookaheadSightReader`` whose ``chooser`` is the
network; its inference runs in numpy).
"""

from __future__ import annotations

import time
from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np

from pianomime_env.control.lookahead import DEFAULT_CANDIDATES, LookaheadSightReader
from pianomime_env.learning.policies import PolicyError, RunningMeanStd

__all__ = [
    "FEATURE_NAMES",
    "ChooserNetwork",
    "ChooserPolicy",
    "choice_features",
    "pick",
    "record_choices",
]

#: Plan steps ahead at which the plan's hand displacement is read.
_AHEAD = (5, 10, 20)
#: Steps of the score each feature window covers.
_WINDOW = 20

FEATURE_NAMES: tuple[str, ...] = (
    *(f"tip_error/{h}/{f}/{c}" for h in "RL" for f in range(5) for c in "xyz"),
    *(f"plan_move/{h}/+{d}/{c}" for h in "RL" for d in _AHEAD for c in "xy"),
    "plan_speed/R",
    "plan_speed/L",
    "onsets/next10",
    "onsets/10-20",
    "goal_keys/now",
    "goal_key_steps/window",
    "keys_down/now",
    "wrong_keys/now",
    *(f"unfingered/candidate{i}" for i in range(len(DEFAULT_CANDIDATES))),
)


def choice_features(obs: Mapping[str, Any], reader: LookaheadSightReader) -> np.ndarray:
    """(F,) float32 features of the chunk starting at the env's current step (``obs`` is the
    env's ``Dict`` observation, ``reader`` the look-ahead reader playing it); names in
    :data:`FEATURE_NAMES` order when the reader has the default 7 candidates (one
    ``unfingered`` entry per candidate). Units: metres, metres per step, counts."""
    u = reader.env
    t = int(u.t)
    demo = reader.demo
    last = len(demo.fingertips) - 1

    def at(d: int) -> int:
        return min(t + d, last)

    tips = np.asarray(obs["fingertips"], np.float64).reshape(2, 5, 3)
    error = (tips - demo.fingertips[at(0)]).ravel()
    centre = demo.fingertips[:, :, :, :2].mean(axis=2)  # (T, 2 hands, xy)
    move = np.stack([centre[at(d)] - centre[at(0)] for d in _AHEAD], axis=1).ravel()  # hand, d, xy
    span = centre[at(0) : at(_WINDOW) + 1]
    speed = (
        np.linalg.norm(np.diff(span, axis=0), axis=-1).max(axis=0) if len(span) > 1 else np.zeros(2)
    )
    goal = np.asarray(u.trajectory.keys) > 0.5
    window = goal[t : t + _WINDOW]
    before = goal[t - 1] if t > 0 else np.zeros(88, bool)
    rows = np.concatenate([before[None], window])
    onset = (rows[1:] & ~rows[:-1]).sum(axis=1)
    down = np.asarray(obs["piano_state"]) > 0.5
    now = goal[t] if t < len(goal) else np.zeros(88, bool)
    unfingered = [
        float(np.count_nonzero(window & (plan.fingering[t : t + _WINDOW] < 0)))
        for plan in reader.plans
    ]
    return np.concatenate(
        [
            error,
            move,
            speed,
            [onset[:10].sum(), onset[10:].sum(), now.sum(), window.sum()],
            [down.sum(), np.count_nonzero(down ^ before)],
            unfingered,
        ]
    ).astype(np.float32)


class ChooserNetwork:
    """The MLP of a chooser checkpoint, evaluated in numpy: ``gains(features) -> (K,)``.

    Args:
        actor: the checkpoint's ``actor`` (``state_dict`` of a ``torch.nn.Sequential`` of
            Linear / activation layers, ``activation``).
        obs_norm: a :class:`~pianomime_env.learning.policies.RunningMeanStd` state (``mean``,
            ``var`` (F,), ``clip``, ``eps``; ``count`` optional: only updates read it).
    """

    def __init__(self, actor: Mapping[str, Any], obs_norm: Mapping[str, Any]) -> None:
        state = actor["state_dict"]
        names = sorted(
            {k.rsplit(".", 1)[0] for k in state if k.endswith(".weight")},
            key=lambda k: int(k.split(".")[0]),
        )
        self.layers = [
            (_numpy(state[f"{n}.weight"]).T.copy(), _numpy(state[f"{n}.bias"])) for n in names
        ]
        self.activation = {"tanh": np.tanh, "relu": lambda x: np.maximum(x, 0.0)}[
            actor["activation"]
        ]
        self.norm = RunningMeanStd.from_state_dict({"count": 0.0, **obs_norm})

    def gains(self, features: np.ndarray) -> np.ndarray:
        """Predicted score gain of each candidate over the default (K,) (float64)."""
        x = self.norm.normalize(features).astype(np.float64)
        for i, (w, b) in enumerate(self.layers):
            x = x @ w + b
            if i < len(self.layers) - 1:
                x = self.activation(x)
        return x


def _numpy(value: Any) -> np.ndarray:
    return np.asarray(value.detach().cpu().numpy() if hasattr(value, "detach") else value, float)


def pick(gains: np.ndarray, margin: float) -> int:
    """The candidate of the largest predicted gain if it beats the default by more than
    ``margin``, else 0 (the default)."""
    g = np.array(gains, np.float64)
    g[0] = 0.0
    best = int(np.argmax(g))
    return best if g[best] > margin else 0


class ChooserPolicy:
    """``obs -> action`` for a ``lookahead-chooser`` checkpoint on ``env`` (a plain
    :class:`~pianomime_env.envs.piano.PianoMimeEnv`): the sight-reader with the network choosing
    each chunk's candidate (no rollouts). ``reset()`` after every ``env.reset()``;
    :attr:`reader` is the :class:`LookaheadSightReader` (its ``choices`` list what was played)."""

    def __init__(self, ckpt: Mapping[str, Any], env: Any) -> None:
        u = env.unwrapped
        dt = float(ckpt.get("control_timestep", u.control_timestep))
        if abs(dt - float(u.control_timestep)) > 1e-9:
            raise PolicyError(
                f"checkpoint chooses for a {dt} s control step; this env steps {u.control_timestep} s"
            )
        self.network = ChooserNetwork(ckpt["actor"], ckpt["obs_norm"])
        self.margin = float(ckpt.get("margin", 0.0))
        self.reader = LookaheadSightReader(
            u,
            candidates=[dict(c) for c in ckpt["candidates"]],
            chunk_steps=int(ckpt["chunk_steps"]),
            horizon_steps=int(ckpt["horizon_steps"]),
            chooser=self.choose,
        )

    def choose(self, obs: Mapping[str, Any], reader: LookaheadSightReader) -> int:
        return pick(self.network.gains(choice_features(obs, reader)), self.margin)

    def reset(self) -> None:
        self.reader.reset()

    def __call__(self, obs: Any) -> np.ndarray:
        return self.reader(obs)


def record_choices(
    song: str,
    max_seconds: float,
    network: Mapping[str, Any] | None = None,
    beta: float = 1.0,
    margin: float = 0.0,
    seed: int = 0,
    progress_position: int | None = None,
) -> dict[str, Any]:
    """One episode of ``song`` (trimmed, capped at ``max_seconds``) with the look-ahead's
    rollouts scoring every candidate at every chunk (the labels).

    The chunk's executed candidate is the teacher's best with probability ``beta`` (drawn per
    chunk from ``seed``), else the learner's: ``network`` (``{"actor", "obs_norm"}`` of a
    checkpoint) picking as :class:`ChooserPolicy` does. ``beta=1`` (or no network) is the
    look-ahead itself.

    Returns ``features`` (C, F) float32, ``scores`` (C, K) float32 (each candidate's rollout
    score), ``chosen`` (C,) int (executed), ``teacher`` (C,) int (the rollouts' best),
    ``metrics`` (the episode's), ``steps``, ``seconds``, and the reader's ``chunk_steps``,
    ``horizon_steps`` and the env's ``control_timestep`` (what a checkpoint must record). A
    module-level function, so that
    :func:`~pianomime_env.collection.fanout.run_tasks` can run it in a worker.
    """
    from pianomime_env.learning.evaluation import song_env

    env = song_env(song, max_seconds, True)
    rng = np.random.default_rng(seed)
    learner = None if network is None else ChooserNetwork(network["actor"], network["obs_norm"])
    rows: dict[str, list[Any]] = {"features": [], "scores": [], "chosen": [], "teacher": []}

    def choose(obs: Mapping[str, Any], reader: LookaheadSightReader) -> int:
        scores = [reader.rollout_score(i) for i in range(len(reader.configs))]
        teacher = int(np.argmax(scores))
        x = choice_features(obs, reader)
        own = teacher if learner is None else pick(learner.gains(x), margin)
        chosen = teacher if rng.random() < beta else own
        for key, value in zip(rows, (x, scores, chosen, teacher)):
            rows[key].append(value)
        return chosen

    reader = LookaheadSightReader(env, chooser=choose)
    obs, _ = env.reset(seed=seed)
    reader.reset()
    start = time.perf_counter()
    info: dict[str, Any] = {}
    for _ in range(env.n_steps):
        obs, _, terminated, truncated, info = env.step(reader(obs))
        if terminated or truncated:
            break
    k = len(reader.configs)
    out = {
        "song": song,
        "features": np.asarray(rows["features"], np.float32).reshape(-1, len(FEATURE_NAMES)),
        "scores": np.asarray(rows["scores"], np.float32).reshape(-1, k),
        "chosen": np.asarray(rows["chosen"], np.int64),
        "teacher": np.asarray(rows["teacher"], np.int64),
        "metrics": dict(info.get("metrics", {})),
        "steps": int(env.t),
        "seconds": time.perf_counter() - start,
        "chunk_steps": reader.chunk_steps,
        "horizon_steps": reader.horizon_steps,
        "control_timestep": float(env.control_timestep),
    }
    env.close()
    return out


def candidates_payload(candidates: Sequence[Mapping[str, Any]] = DEFAULT_CANDIDATES) -> list:
    """The candidates as plain dicts (what a checkpoint stores)."""
    return [dict(c) for c in candidates]
