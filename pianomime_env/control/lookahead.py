"""``LookaheadSightReader``: the sight-reader choosing its step gains by simulating ahead.

Every ``chunk_steps`` control steps it copies the env's simulation into a private copy of the
env (same arguments, :meth:`~pianomime_env.envs.piano.PianoMimeEnv.physics_state`), plays the next
``horizon_steps`` steps once per candidate setting of the :class:`SightReaderConfig` step gains,
scores each rollout by its key-step F1 plus its note-onset F1 against the score's goal over that
window (``score``), and plays the
next chunk with the best one (ties: the earlier candidate, the first is the default setting).
Nothing is learned: the rollouts use the score and the simulator only, like a player trying a
passage in their head. It costs about ``len(candidates) * horizon_steps / chunk_steps`` extra env
steps per step.

With a ``chooser`` (``chooser(obs, reader) -> candidate index``) no rollout is made: the chooser
picks the candidate of each chunk, e.g. a classifier trained to predict the rollouts' choice
(:mod:`pianomime_env.learning.chooser`), and the reader costs about what the plain sight-reader
does.
"""

from __future__ import annotations

import dataclasses
import pickle
from collections.abc import Callable, Mapping, Sequence
from typing import Any

import mujoco
import numpy as np

from pianomime_env.control.sightreader import SightReader, SightReaderConfig
from pianomime_env.demos.format import Demonstration
from pianomime_env.demos.planner import from_midi
from pianomime_env.music.metrics import onset_prf

__all__ = ["DEFAULT_CANDIDATES", "LookaheadSightReader"]

#: Candidate settings (overrides of the base config), aimed at the largest causes of misses
#: (docs/sightreader.md): hands still in transit (forearm command variants, an earlier demo
#: frame), fingers not yet down or too shallow (lift tolerance, press depth), and held notes
#: released for hand moves (a plan that holds them through moves: ``release_reach``).
DEFAULT_CANDIDATES: tuple[dict[str, Any], ...] = (
    {},
    {"forearm_overshoot": 3.0},
    {"forearm_velocity_ff": 1.0},
    {"lead": 1},
    {"press_depth": 0.03},
    {"lift_xy_tolerance": 0.02},
    {"release_reach": 0.05},
)

# Fields the SightReader reads only when it is built; a candidate cannot change them.
_BUILD_FIELDS = frozenset(
    {
        "white_band_margin",
        "wrist_posture_scale",
        "posture_weight",
        "points",
        "thumb_posture",
        "thumb_posture_weight",
        "thumb_ty_weight",
        "thumb_lookahead",
    }
)


class LookaheadSightReader:
    """A :class:`~pianomime_env.control.sightreader.SightReader` whose step gains are re-chosen every
    ``chunk_steps`` by simulated rollouts (see the module docstring).

    Args:
        env: a :class:`~pianomime_env.envs.piano.PianoMimeEnv` (or a wrapper of one).
        demo: the demonstration; default planned from the env's song.
        config: the base gains.
        candidates: overrides of ``config``'s step gains, one dict per candidate; a
            ``release_reach`` entry plays a plan made from the score with that
            :func:`~pianomime_env.demos.planner.from_midi` ``release_reach`` instead of ``demo``.
        chunk_steps: control steps played with one choice.
        horizon_steps: control steps each candidate is simulated for (≥ ``chunk_steps``: the
            window also sees what a choice leaves for the next notes).
        score: what a rollout is judged by: ``"f1"`` (key-steps), ``"note_f1"`` (onsets) or
            ``"both"`` (their sum).
        chooser: ``chooser(obs, reader) -> int`` picks each chunk's candidate instead of the
            rollouts (called at the chunk's first step, before its action).

    Call :meth:`reset` after ``env.reset()``, then ``action = reader(obs)`` every step.
    :attr:`choices` lists ``(step, candidate index)`` of the episode so far;
    :attr:`next_choice_step` is the step of the next choice.
    """

    def __init__(
        self,
        env: Any,
        demo: Demonstration | None = None,
        config: SightReaderConfig | None = None,
        *,
        candidates: Sequence[Mapping[str, Any]] = DEFAULT_CANDIDATES,
        chunk_steps: int = 10,
        horizon_steps: int = 20,
        score: str = "both",
        chooser: Callable[[Any, LookaheadSightReader], int] | None = None,
    ) -> None:
        u = getattr(env, "unwrapped", env)
        if not 1 <= int(chunk_steps) <= int(horizon_steps):
            raise ValueError(
                f"need 1 <= chunk_steps <= horizon_steps, got {chunk_steps}, {horizon_steps}"
            )
        if not candidates:
            raise ValueError("candidates must not be empty")
        if score not in ("f1", "note_f1", "both"):
            raise ValueError(f"score must be 'f1', 'note_f1' or 'both', got {score!r}")
        self.score = score
        self.chooser = chooser
        base = config or SightReaderConfig()
        names = {f.name for f in dataclasses.fields(SightReaderConfig)} | {"release_reach"}
        self.configs = []
        for i, c in enumerate(candidates):
            bad = sorted(set(c) - names)
            if bad:
                raise ValueError(
                    f"candidate {i}: {bad} are not SightReaderConfig fields or 'release_reach'"
                )
            fixed = sorted(set(c) & _BUILD_FIELDS)
            if fixed:
                raise ValueError(
                    f"candidate {i}: {fixed} are set when the reader is built; only step gains "
                    "can differ between candidates"
                )
            gains = {k: v for k, v in c.items() if k != "release_reach"}
            self.configs.append(dataclasses.replace(base, **gains))
        self.env = u
        # One plan (and one reader on the env, one on the look-ahead copy) per release reach.
        reaches = dict.fromkeys(c.get("release_reach") for c in candidates)
        # EzPickle: unpickling builds a fresh env with the same constructor arguments.
        self.shadow = pickle.loads(pickle.dumps(u))
        self._plans: dict[float | None, tuple[SightReader, SightReader]] = {}
        for r in reaches:
            plan = (
                demo
                if r is None
                else from_midi(
                    u.trajectory, control_timestep=u.control_timestep, env=u, release_reach=r
                )
            )
            live = SightReader(u, plan, base)
            self._plans[r] = (live, SightReader(self.shadow, live.demo, base))
        self._plan_of = [c.get("release_reach") for c in candidates]
        self.chunk_steps, self.horizon_steps = int(chunk_steps), int(horizon_steps)
        self._goal = np.asarray(u.trajectory.keys) > 0.5
        self.reset()

    @property
    def reader(self) -> SightReader:
        """The reader playing now (the plan of the current choice)."""
        return self._plans[self._plan_of[self._current]][0]

    @property
    def demo(self) -> Demonstration:
        """The default plan (the first candidate's)."""
        return self._plans[self._plan_of[0]][0].demo

    @property
    def plans(self) -> list[Demonstration]:
        """Each candidate's plan (candidates with the same ``release_reach`` share one)."""
        return [self._plans[r][0].demo for r in self._plan_of]

    @property
    def next_choice_step(self) -> int:
        """The env step at which the next candidate is chosen."""
        return self._next_choice

    def reset(self) -> None:
        """Starts a new episode (call after ``env.reset()``)."""
        for live, _ in self._plans.values():
            live.reset()
        self._current = 0
        self.reader.config = self.configs[0]
        self._next_choice = self.env.t
        self.choices: list[tuple[int, int]] = []

    def rollout_scores(self, candidate: int) -> tuple[float, float]:
        """``(f1, note_f1)`` of ``horizon_steps`` simulated steps from the env's current state
        with candidate ``candidate``: the key-step F1 (1.0 when nothing is to be played and
        nothing is played) and the note-onset F1 (:func:`~pianomime_env.music.metrics.onset_prf`,
        tolerance 1 step; 1.0 when no key goes down in the window, in the score or played)
        against the score's goal over that window."""
        u, sim = self.env, self.shadow
        reader = self._plans[self._plan_of[candidate]][1]
        t = u.t
        obs, _ = sim.reset(options={"start_step": t, "physics_state": u.physics_state()})
        if not np.array_equal(sim.model.body_pos, u.model.body_pos):
            # randomize_hand_positions moved the env's hands at its reset: the copy follows.
            sim.model.body_pos[:] = u.model.body_pos
            mujoco.mj_forward(sim.model, sim.data)
        reader.restore(self.reader.state())
        reader.config = self.configs[candidate]
        n = min(self.horizon_steps, u.n_steps - t)
        # Row 0: the step before the window, the same for every candidate. (onset_prf counts
        # keys already down there as onsets at row 0, in both rolls.)
        played = np.zeros((n + 1, 88), bool)
        played[0] = u.key_activation
        goal = np.zeros((n + 1, 88), bool)
        goal[0] = self._goal[t - 1] if t > 0 else False
        goal[1:] = self._goal[t : t + n]
        k = 0
        for k in range(1, n + 1):
            obs, _, terminated, truncated, _ = sim.step(reader(obs))
            played[k] = sim.key_activation
            if terminated or truncated:
                break
        played, goal = played[: k + 1], goal[: k + 1]
        tp = int(np.count_nonzero(played[1:] & goal[1:]))
        wrong = int(np.count_nonzero(played[1:] ^ goal[1:]))
        f1 = 1.0 if tp + wrong == 0 else 2 * tp / (2 * tp + wrong)
        has_onsets = (np.diff(goal.astype(np.int8), axis=0) > 0).any() or (
            np.diff(played.astype(np.int8), axis=0) > 0
        ).any()
        note_f1 = onset_prf(goal, played, tolerance=1)[2] if has_onsets else 1.0
        return f1, float(note_f1)

    def rollout_score(self, candidate: int) -> float:
        """The score a candidate is chosen by (``score``: f1, note_f1 or their sum)."""
        f1, note_f1 = self.rollout_scores(candidate)
        return {"f1": f1, "note_f1": note_f1, "both": f1 + note_f1}[self.score]

    def __call__(self, obs: Any) -> np.ndarray:
        t = self.env.t
        if t >= self._next_choice:
            if self.chooser is not None:
                best = int(self.chooser(obs, self))
                if not 0 <= best < len(self.configs):
                    raise ValueError(
                        f"chooser returned candidate {best}, expected 0..{len(self.configs) - 1}"
                    )
            elif len(self.configs) > 1:
                scores = [self.rollout_score(i) for i in range(len(self.configs))]
                best = int(np.argmax(scores))
            else:
                best = 0
            state = self.reader.state()
            self._current = best
            self.reader.restore(state)  # the new plan's reader continues the controller
            self.reader.config = self.configs[best]
            self.choices.append((t, best))
            self._next_choice = t + self.chunk_steps
        return self.reader(obs)
