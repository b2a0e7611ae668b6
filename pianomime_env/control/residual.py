"""Gymnasium wrappers for learning on top of a demonstration.

:class:`ResidualIK` (PianoMime's residual formulation): the policy outputs a residual in
``Box(-1, 1)`` that is scaled per actuator by ``residual_scale`` x the actuator's range and added
to the *nominal* action, the IK solution for the demonstration's next frame. The observation (a
``Dict``) gains ``nominal_action`` and ``demo_fingertips``.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from typing import Any, Literal

import gymnasium as gym
import numpy as np
from gymnasium import spaces

from pianomime_env.demos.format import Demonstration
from pianomime_env.sim.ik import HandIK

__all__ = ["ResidualIK", "finger_actuators", "residual_bounds", "residual_observation"]

_FINGER_ACTUATOR = re.compile(r"_A_(TH|FF|MF|RF|LF)J\d$")


def finger_actuators(action_names: Sequence[str]) -> np.ndarray:
    """Indices of the thumb and finger actuators among ``action_names`` (not wrist, forearm or
    sustain), e.g. ``rh_A_THJ5``, ``lh_A_FFJ0``."""
    return np.array([i for i, n in enumerate(action_names) if _FINGER_ACTUATOR.search(n)], int)


def residual_observation(
    obs: dict[str, Any],
    nominal: np.ndarray,
    demo: Demonstration,
    t: int,
    n_frames: int,
    low: np.ndarray,
    high: np.ndarray,
) -> dict[str, Any]:
    """ResidualIK's observation at step ``t``: ``obs`` plus ``nominal_action`` (absolute,
    clipped into [low, high], float32) and ``demo_fingertips`` (n_frames, 30), float32, m:
    frames t+1..t+n_frames of the demonstration, clamped at its end. (Also used to rebuild
    these observations from a dataset's replayed nominals.)"""
    idx = np.minimum(np.arange(t + 1, t + 1 + n_frames), demo.n_steps - 1)
    out = dict(obs)
    out["nominal_action"] = np.clip(
        np.asarray(nominal, np.float32), np.float32(low), np.float32(high)
    ).astype(np.float32)
    out["demo_fingertips"] = np.asarray(demo.fingertips[idx], np.float32).reshape(n_frames, 30)
    return out


def residual_bounds(
    env: Any, residual_scale: float, finger_residual_scale: float | None = None
) -> np.ndarray:
    """(nu,) float64 residual bound per actuator (rad or m, sustain excluded) of a
    PianoMimeEnv: ``residual_scale`` (the finger and thumb joints: ``finger_residual_scale``
    when given) times the actuator's range."""
    u = env.unwrapped
    low, high = np.asarray(u.action_low, np.float64), np.asarray(u.action_high, np.float64)
    nu = low.size - 1
    fraction = np.full(nu, float(residual_scale))
    if finger_residual_scale is not None:
        fraction[finger_actuators(u.action_names[:nu])] = float(finger_residual_scale)
    return fraction * (high[:-1] - low[:-1])


class ResidualIK(gym.Wrapper):
    """Residual control around a nominal action that plays a demonstration.

    Args:
        env: a PianoMimeEnv (or a wrapper of one) with ``Dict`` observations (``flatten=False``).
            Its own action space may be absolute or normalized; this wrapper converts.
        demo: the demonstration (T must equal the song's number of steps, same control rate).
        residual_scale: residual bound as a fraction of each actuator's range (PianoMime:
            0.02-0.03).
        finger_residual_scale: a different bound for the finger and thumb joints (``None``:
            ``residual_scale``). 0.02 of a finger's range (0.04-0.06 rad at the flexion joints)
            moves a fingertip by a few millimetres, less than a key's travel; the wrist and
            forearm keep ``residual_scale``.
        sustain: ``"score"`` takes the pedal from the score; ``"policy"`` adds one more action
            entry in [-1, 1] mapped to the pedal command [0, 1].
        n_demo_frames: how many upcoming demo frames ``demo_fingertips`` holds.
        ik_iterations: IK iterations per step for the ``"ik"`` nominal.
        nominal: ``"sight-reader"`` (default): the nominal is the closed-loop
            :class:`~pianomime_env.control.sightreader.SightReader`'s action for this demo, so a zero
            residual plays exactly as the sight-reader does. ``"ik"``: open-loop IK of the next
            demo frame's fingertips (PianoMime's nominal; it does not press keys by itself).
        reference_state_init: start each episode at a random step of the song (drawn from the
            env's seeded generator) with the hands posed by IK at that demo frame, as
            PianoMime/DeepMimic-style training does. ``reset(options={"start_step": k})`` picks
            the step explicitly.

    Spaces:
        action: ``Box(-1, 1, (nu,))`` or ``(nu + 1,)`` with ``sustain="policy"``, float32.
        observation: the env's ``Dict`` plus ``nominal_action`` ``(nu + 1,)`` (absolute joint
            targets + score sustain, inside the env's absolute bounds) and ``demo_fingertips``
            ``(n_demo_frames, 30)`` (m, world frame; frames t+1..t+n, clamped at the end).
    """

    def __init__(
        self,
        env: gym.Env,
        demo: Demonstration,
        residual_scale: float = 0.02,
        sustain: Literal["score", "policy"] = "score",
        *,
        finger_residual_scale: float | None = None,
        n_demo_frames: int = 4,
        ik_iterations: int = 3,
        reference_state_init: bool = False,
        nominal: Literal["sight-reader", "ik"] = "sight-reader",
    ) -> None:
        super().__init__(env)
        u = env.unwrapped
        if not isinstance(env.observation_space, spaces.Dict):
            raise ValueError("ResidualIK needs Dict observations: make the env with flatten=False")
        if sustain not in ("score", "policy"):
            raise ValueError(f"sustain must be 'score' or 'policy', got {sustain!r}")
        scales = [("residual_scale", residual_scale)]
        if finger_residual_scale is not None:
            scales.append(("finger_residual_scale", finger_residual_scale))
        for name, value in scales:
            if not (np.isfinite(value) and value >= 0):
                raise ValueError(f"{name} must be a finite number >= 0, got {value}")
        demo.check_fits(u)
        self.demo = demo
        self.sustain_mode = sustain
        self.residual_scale = float(residual_scale)
        self.finger_residual_scale = (
            None if finger_residual_scale is None else float(finger_residual_scale)
        )
        self.n_demo_frames = int(n_demo_frames)
        self.ik_iterations = int(ik_iterations)
        self.reference_state_init = bool(reference_state_init)
        if nominal not in ("sight-reader", "ik"):
            raise ValueError(f"nominal must be 'sight-reader' or 'ik', got {nominal!r}")
        self.nominal = nominal
        self._reader = None
        if nominal == "sight-reader":
            from pianomime_env.control.sightreader import SightReader

            self._reader = SightReader(u, demo)
        self.ik = HandIK(u.model, u.index)
        self._low = np.asarray(u.action_low, np.float64)
        self._high = np.asarray(u.action_high, np.float64)
        self._nu = self._low.size - 1
        self._scale = residual_bounds(u, self.residual_scale, self.finger_residual_scale)
        n_act = self._nu + (1 if sustain == "policy" else 0)
        self.action_space = spaces.Box(-1.0, 1.0, (n_act,), np.float32)
        low32, high32 = self._low.astype(np.float32), self._high.astype(np.float32)
        self.observation_space = spaces.Dict(
            {
                **dict(env.observation_space.spaces),
                "nominal_action": spaces.Box(low32, high32, dtype=np.float32),
                "demo_fingertips": spaces.Box(
                    -np.inf, np.inf, (self.n_demo_frames, 30), np.float32
                ),
            }
        )
        self._q = self.ik.posture.copy()
        self._nominal = np.zeros(self._nu + 1)
        self.last_env_action: np.ndarray | None = None  # absolute action sent to the env

    @property
    def residual_bound(self) -> np.ndarray:
        """(nu,) float64 largest residual per actuator (rad or m), the action's ±1."""
        return self._scale.copy()

    # -- helpers -------------------------------------------------------------------------------

    def _compute_nominal(self, obs: Any = None) -> None:
        u = self.env.unwrapped
        if self._reader is not None:
            a = np.asarray(self._reader(obs), np.float64)
            self._nominal = u.action_from_normalized(a) if u.normalized_actions else a
            return
        t = int(u.t)
        frame = min(t + 1, self.demo.n_steps - 1)
        self._q = self.ik.solve(self.demo.fingertips[frame], self._q, iterations=self.ik_iterations)
        sustain = float(u.trajectory.sustain[min(t, u.n_steps - 1)])
        self._nominal = np.append(self.ik.to_ctrl(self._q), sustain)

    def _augment(self, obs: dict[str, Any]) -> dict[str, Any]:
        t = int(self.env.unwrapped.t)
        return residual_observation(
            obs, self._nominal, self.demo, t, self.n_demo_frames, self._low, self._high
        )

    def residual_to_action(self, residual: np.ndarray) -> np.ndarray:
        """Absolute env action (nu + 1,) for a policy residual (float64)."""
        a = np.asarray(residual, np.float64)
        if a.shape != self.action_space.shape:
            raise ValueError(f"action has shape {a.shape}, expected {self.action_space.shape}")
        if not np.isfinite(a).all():
            raise ValueError("action contains NaN or inf")
        a = np.clip(a, -1.0, 1.0)
        out = self._nominal.copy()
        out[: self._nu] += a[: self._nu] * self._scale
        if self.sustain_mode == "policy":
            out[-1] = 0.5 * (a[-1] + 1.0)
        return np.clip(out, self._low, self._high)

    def restart_nominal(self) -> None:
        """Starts the nominal's closed-loop state afresh (after the inner env was reset)."""
        if self._reader is not None:
            self._reader.reset()

    def observe(self, obs: dict[str, Any]) -> dict[str, Any]:
        """Computes the nominal for the inner env's current state and returns ``obs`` (the inner
        env's ``Dict`` observation) with ``nominal_action`` and ``demo_fingertips`` added.

        ``reset`` and ``step`` call it; a caller that steps the inner env itself (e.g.
        :func:`pianomime_env.learning.policies.load_policy` playing on a plain env) calls it with each
        observation, then :meth:`residual_to_action`.
        """
        self._compute_nominal(obs)
        return self._augment(obs)

    # -- Gymnasium API -------------------------------------------------------------------------

    def reset(self, *, seed: int | None = None, options: dict[str, Any] | None = None):
        options = dict(options or {})
        obs, info = self.env.reset(seed=seed, options=options)
        u = self.env.unwrapped
        start = options.get("start_step")
        if start is None and self.reference_state_init:
            start = int(u.np_random.integers(0, u.n_steps))
        self._q = self.ik.posture.copy()
        if start:
            # Pose the hands at the demo frame the episode starts from (IK from the posture).
            self._q = self.ik.solve(self.demo.fingertips[start], self._q, iterations=20)
            obs, info = self.env.reset(options={"start_step": start, "hand_qpos": self._q})
        self.restart_nominal()
        return self.observe(obs), info

    def step(self, action: Any):
        absolute = self.residual_to_action(action)
        self.last_env_action = absolute
        inner = self.env.unwrapped.to_env_action(absolute)
        obs, reward, terminated, truncated, info = self.env.step(inner)
        return self.after_step(obs, terminated or truncated), reward, terminated, truncated, info

    def after_step(self, obs: dict[str, Any], done: bool) -> dict[str, Any]:
        """``step``'s observation from the inner env's ``obs`` after a step: the nominal for
        the next step is computed (unless the episode is ``done``) and ``obs`` augmented. A
        vector env that steps the inner env itself (:mod:`pianomime_env.envs.vector`) calls it
        after :meth:`residual_to_action`."""
        if not done:
            self._compute_nominal(obs)
        return self._augment(obs)
