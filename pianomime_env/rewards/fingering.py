"""Fingering and style reward terms: ``ot_fingering`` (RP1M), ``fingering`` (RoboPianist), ``style``
(PianoMime).

:data:`pianomime_env.rewards.REWARD_TERMS` names the three terms (imported on first use), so
``reward_terms={"ot_fingering": 1.0}`` works by name. scipy (``linear_sum_assignment``) is imported
only when an ``ot_fingering`` term is reset, never at module import.

All three use dm_control's ``rewards.tolerance`` with the gaussian sigmoid (``tol`` below: 1 inside
the bounds, 0.1 at ``margin`` outside them), evaluated by a vectorised equivalent
(:func:`gaussian_tolerance`) because dm_control's costs ~13 µs per call.

**Key target.** The point a fingertip should reach on key ``k`` is RoboPianist's human-fingering
target (``PianoWithShadowHands._compute_fingering_reward``): the key geom's current world centre
(``data.geom_xpos``) shifted by ``+0.35 · size_x`` along world x (towards the player, the key's
front part) and ``+0.5 · size_z`` along world z, where ``size`` is ``model.geom_size`` of the key
geom (MuJoCo box half-sizes: ``size_x`` = half-length, ``size_z`` = half-height). The z shift is
therefore *half of the half-height* (RoboPianist 1.0.10 adds ``0.5 * size[2]``): 5.6 mm for a white
key, 4.5 mm for a black key. The offsets are precomputed at ``reset``; the centre is read each step,
so a pressed (rotated) key's target moves with it.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from pianomime_env.rewards.terms import (
    GAUSSIAN_SCALE_SQ,
    EpisodeContext,
    StepContext,
    tolerance,
)
from pianomime_env.sim import scene as scene_lib

__all__ = [
    "FINGER_CLOSE_ENOUGH_TO_KEY",
    "KEY_TARGET_X_FRACTION",
    "KEY_TARGET_Z_FRACTION",
    "Fingering",
    "OTFingering",
    "Style",
    "gaussian_tolerance",
    "key_target_offsets",
    "key_targets",
]

#: RoboPianist's ``_FINGER_CLOSE_ENOUGH_TO_KEY`` (m): tolerance bound; the margin is 10x this.
FINGER_CLOSE_ENOUGH_TO_KEY = 0.01
#: Key target shift along world x, as a fraction of the key geom's half-length (``geom_size[0]``).
KEY_TARGET_X_FRACTION = 0.35
#: Key target shift along world z, as a fraction of the key geom's half-height (``geom_size[2]``).
KEY_TARGET_Z_FRACTION = 0.5
#: PianoMime's style bounds/margins (m).
STYLE_XY_BOUND = 0.01
STYLE_XY_MARGIN = 0.05
STYLE_Z_BOUND = 0.005
STYLE_Z_MARGIN = 0.005

_N_FINGERS = 10


def gaussian_tolerance(x: np.ndarray, bound: float, margin: float) -> np.ndarray:
    """``dm_control.utils.rewards.tolerance(x, (0, bound), margin, "gaussian")`` for ``x >= 0``.

    1 where ``x <= bound``; ``exp(-0.5 · ln(10)·2 · ((x − bound) / margin)²)`` beyond, i.e. 0.1 at
    ``x = bound + margin``. Vectorised, ~1 µs for a few values (dm_control's: ~13 µs).
    """
    return tolerance(x, (-np.inf, bound), margin)


def _mean_tolerance(x: np.ndarray, bound: float, margin: float) -> float:
    """``float(gaussian_tolerance(x, bound, margin).mean())`` for a float64 ``x >= 0``, in place."""
    x -= bound
    np.maximum(x, 0.0, out=x)
    x *= x
    x *= -0.5 * GAUSSIAN_SCALE_SQ / (margin * margin)
    np.exp(x, out=x)
    return float(x.sum()) / x.size


def key_target_offsets(model: Any, key_geoms: np.ndarray) -> np.ndarray:
    """(88, 3) world-frame offsets from each key geom's centre to its fingertip target.

    RoboPianist's/RP1M's fixed target, built from the scene's one key geometry
    (:func:`pianomime_env.sim.scene.key_point_offsets`) with RoboPianist's fractions; it is *not*
    the press point the planner, the video pipeline and the sight-reader aim at
    (:func:`pianomime_env.sim.scene.key_press_points`), which parity with RoboPianist forbids here.
    """
    size = np.asarray(model.geom_size)[np.asarray(key_geoms)]
    return scene_lib.key_point_offsets(size, KEY_TARGET_X_FRACTION, KEY_TARGET_Z_FRACTION)


def key_targets(model: Any, data: Any, key_geoms: np.ndarray) -> np.ndarray:
    """(88, 3) current fingertip target of every key (m, world frame); see the module docstring."""
    return np.asarray(data.geom_xpos)[np.asarray(key_geoms)] + key_target_offsets(model, key_geoms)


def _no_assignment() -> np.ndarray:
    return np.full(_N_FINGERS, -1, dtype=np.int8)


class OTFingering:
    """RP1M's optimal-transport fingering reward (no human fingering needed).

    Each step, with ``K`` = the keys to press now (``goal_keys > 0.5``), target ``p_k`` (module
    docstring) and the 10 fingertips ``f_i`` (right thumb..little, then left thumb..little)::

        C[i, k] = ‖f_i − p_k‖                      (10 x K cost matrix, m)
        σ       = argmin over one-to-one maps of Σ C[i, σ(i)]   (scipy linear_sum_assignment)
        r       = mean over the min(10, K) assigned pairs of tol(C[i, σ(i)], (0, 0.01), 0.1)

    Range [0, 1]. Edge cases: no key to press → 1.0 (RP1M). More than 10 keys → the 10 keys of
    the minimum-cost 10-key matching are scored and the others are *ignored* (they neither lower
    nor raise the reward). Distances use the key's current (possibly pressed) position.

    ``info(ctx)`` gives ``{"ot_fingering/assignment": int8 (10,)}``: for each finger (same order as
    the fingertips) the index 0-87 of the key it is assigned to, or -1. A fresh array per step.

    Cost: median ~26 µs per step with keys due, ~3 µs without (NocturneRousseau rollouts;
    ``benchmarks/bench_fingering.py``).
    """

    name = "ot_fingering"

    def __init__(self) -> None:
        self._lsa: Any = None
        self._key_geoms: np.ndarray | None = None
        self._offsets: np.ndarray | None = None
        self._last_ctx: StepContext | None = None
        self._last_assignment = _no_assignment()

    def reset(self, episode: EpisodeContext) -> None:
        from scipy.optimize import linear_sum_assignment  # ~0.5 s import: only when used

        self._lsa = linear_sum_assignment
        self._key_geoms = np.asarray(episode.index.key_geoms)
        self._offsets = key_target_offsets(episode.model, self._key_geoms)
        self._last_ctx = None
        self._last_assignment = _no_assignment()

    def __call__(self, ctx: StepContext) -> float:
        if self._lsa is None:
            self.reset(ctx.episode)
        assignment = _no_assignment()
        self._last_ctx, self._last_assignment = ctx, assignment
        keys = (ctx.goal_keys > 0.5).nonzero()[0]
        if keys.size == 0:
            return 1.0
        # Few numpy calls on tiny arrays: each costs ~1 µs, the arithmetic is negligible.
        targets = ctx.data.geom_xpos.take(self._key_geoms.take(keys), axis=0)  # (K, 3)
        targets += self._offsets.take(keys, axis=0)
        diff = np.reshape(ctx.fingertips, (_N_FINGERS, 1, 3)) - targets  # (10, K, 3)
        diff *= diff
        cost = diff.sum(axis=2)
        np.sqrt(cost, out=cost)
        rows, cols = self._lsa(cost)
        assignment[rows] = keys[cols]
        return _mean_tolerance(cost[rows, cols], FINGER_CLOSE_ENOUGH_TO_KEY, 0.1)

    def info(self, ctx: StepContext) -> dict[str, Any]:
        if ctx is not self._last_ctx:  # called without the term having scored this ctx
            self(ctx)
        return {"ot_fingering/assignment": self._last_assignment}


class Fingering:
    """RoboPianist's human-fingering reward (needs a song with fingering annotations).

    With ``K`` = the keys due now (``goal_keys > 0.5``) whose finger is known
    (``fingering[k]`` in 0-9; 0-4 right thumb..little, 5-9 left), target ``p_k`` (module
    docstring) and ``f_{finger(k)}`` that finger's tip::

        r = mean_{k in K} tol(‖p_k − f_{finger(k)}‖, (0, 0.01), 0.1)

    Range [0, 1]. Edge case: no such key → **0.0**, as RoboPianist (so a silent step earns
    nothing; unlike ``ot_fingering``, which gives 1.0). Keys with unknown fingering (-1) are
    skipped (RoboPianist would wrongly use the right little finger for them).

    ``reset`` raises ``ValueError`` if the song has no fingering at all (every entry -1, e.g. any
    plain MIDI file): use ``"ot_fingering"`` instead.

    ``info(ctx)`` gives ``{"fingering/assignment": int8 (10,)}``, the key each finger should be on
    now (-1 none; if the annotation puts one finger on two keys, the higher key).
    """

    name = "fingering"

    def __init__(self) -> None:
        self._key_geoms: np.ndarray | None = None
        self._offsets: np.ndarray | None = None

    def reset(self, episode: EpisodeContext) -> None:
        if not np.any(np.asarray(episode.fingering) >= 0):
            song = getattr(episode, "song_name", None)
            what = f"song {song!r}" if song else "this song"
            raise ValueError(
                f"reward term 'fingering' needs human fingering annotations, but {what} has "
                "none (every note's finger is -1, as for any plain MIDI file). Use "
                "reward_terms={'ot_fingering': ...} instead, which finds the fingering itself."
            )
        self._key_geoms = np.asarray(episode.index.key_geoms)
        self._offsets = key_target_offsets(episode.model, self._key_geoms)

    def _keys(self, ctx: StepContext) -> np.ndarray:
        return ((ctx.goal_keys > 0.5) & (ctx.fingering >= 0)).nonzero()[0]

    def __call__(self, ctx: StepContext) -> float:
        if self._key_geoms is None:
            self.reset(ctx.episode)
        keys = self._keys(ctx)
        if keys.size == 0:
            return 0.0
        targets = ctx.data.geom_xpos.take(self._key_geoms.take(keys), axis=0)  # (K, 3)
        targets += self._offsets.take(keys, axis=0)
        targets -= np.reshape(ctx.fingertips, (_N_FINGERS, 3)).take(
            ctx.fingering.take(keys).astype(np.intp), axis=0
        )
        targets *= targets
        dist = targets.sum(axis=1)
        np.sqrt(dist, out=dist)
        return _mean_tolerance(dist, FINGER_CLOSE_ENOUGH_TO_KEY, 0.1)

    def info(self, ctx: StepContext) -> dict[str, Any]:
        keys = self._keys(ctx)
        assignment = _no_assignment()
        assignment[ctx.fingering[keys].astype(np.intp)] = (
            keys  # keys ascend, so a repeated finger keeps the higher key
        )
        return {"fingering/assignment": assignment}


class Style:
    """PianoMime's style reward: follow a demonstration's fingertips.

    With ``D = episode.demo.fingertips`` ((T, 2, 5, 3), same world frame and finger order as
    ``ctx.fingertips``) and the row ``D[t]`` of the step being scored (``ctx.t``)::

        r_xy = mean_{10 tips} tol(‖D[t]_xy − f_xy‖, (0, 0.01), 0.05)
        r    = r_xy                                                 (use_z=False, default)
        r    = 0.5 · (r_xy + mean_{10 tips} tol(|D[t]_z − f_z|, (0, 0.005), 0.005))   (use_z=True)

    Range [0, 1]; 1 when every tip is within 1 cm (and 5 mm in z) of the demo's. Every step is
    scored, including silent ones (the demo says where the hands wait).

    ``reset`` raises ``ValueError`` when the env has no demo (pass ``demo=...`` to the env), the
    demo has no ``fingertips`` of shape (T, 2, 5, 3), or its T differs from the song's step count.

    ``info(ctx)`` gives ``{"style/xy_dist": float}``, the mean xy distance (m) to the demo's tips.

    Args:
        use_z: also score the height of each fingertip.
    """

    name = "style"

    def __init__(self, use_z: bool = False) -> None:
        self.use_z = bool(use_z)
        self._demo: np.ndarray | None = None
        self._last_ctx: StepContext | None = None
        self._last_xy = float("nan")

    def reset(self, episode: EpisodeContext) -> None:
        demo = episode.demo
        if demo is None:
            raise ValueError(
                "reward term 'style' needs a demonstration: pass demo=... to the env "
                "(e.g. gym.make(..., demo=pianomime_env.demos.load(path)))"
            )
        tips = getattr(demo, "fingertips", None)
        if tips is None:
            raise ValueError(
                f"reward term 'style': the env's demo ({type(demo).__name__}) has no "
                "'fingertips' attribute; expected a Demonstration with fingertips (T, 2, 5, 3)"
            )
        tips = np.asarray(tips, dtype=np.float64)
        if tips.ndim != 4 or tips.shape[1:] != (2, 5, 3):
            raise ValueError(
                f"reward term 'style': demo.fingertips must have shape (T, 2, 5, 3), "
                f"got {tips.shape}"
            )
        n_steps = int(np.shape(episode.goal_keys)[0])
        if tips.shape[0] != n_steps:
            song = getattr(demo, "song_name", None)
            made_for = f" (made for {song!r})" if song else ""
            raise ValueError(
                f"reward term 'style': the demo{made_for} has {tips.shape[0]} steps but the "
                f"song has {n_steps}; make the demo with the env's song, control_timestep, "
                "stretch and initial_buffer_time"
            )
        self._demo = tips.reshape(n_steps, _N_FINGERS, 3)
        self._last_ctx = None

    def _score(self, ctx: StepContext) -> float:
        if self._demo is None:
            self.reset(ctx.episode)
        sq = np.reshape(ctx.fingertips, (_N_FINGERS, 3)) - self._demo[ctx.t]
        sq *= sq
        dxy = sq[:, 0] + sq[:, 1]
        np.sqrt(dxy, out=dxy)
        self._last_ctx, self._last_xy = ctx, float(dxy.sum()) / _N_FINGERS
        r = _mean_tolerance(dxy, STYLE_XY_BOUND, STYLE_XY_MARGIN)
        if self.use_z:
            dz = np.sqrt(sq[:, 2])
            r = 0.5 * (r + _mean_tolerance(dz, STYLE_Z_BOUND, STYLE_Z_MARGIN))
        return r

    def __call__(self, ctx: StepContext) -> float:
        return self._score(ctx)

    def info(self, ctx: StepContext) -> dict[str, Any]:
        if ctx is not self._last_ctx:
            self._score(ctx)
        return {"style/xy_dist": self._last_xy}
