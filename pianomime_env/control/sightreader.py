"""``SightReader``: a zero-training player that tracks a score-planned demonstration with IK.

Each control step it takes the demonstration's fingertip targets a little ahead (``lead``
steps), pushes pressing fingertips below the key surface (the finger actuators are weak against
the key springs), corrects them with an integral of the measured fingertip error (depth while
pressing, y while approaching; reset whenever a finger's key changes), keeps a finger lifted
above the black keys until it is over its key (within ``lift_xy_tolerance`` along y and, for
white keys, in front of the black keys), lifts it again if it slides off its key before the key
goes down (``relift_margin``), solves the hand IK starting from its previous solution
(a weak pull toward the curved "piano" posture, stronger on the wrist), overshoots the forearm
command to beat the forearm actuator's lag, and takes the sustain pedal from the score. See
``docs/sightreader.md``.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np

from pianomime_env.demos.format import Demonstration
from pianomime_env.demos.planner import from_midi, key_geometry
from pianomime_env.sim.ik import HandIK

__all__ = ["SightReader", "SightReaderConfig"]


@dataclass
class SightReaderConfig:
    """Controller gains (m, steps). Defaults chosen on the built-in songs + the tuning set."""

    lead: int = 0  # demo frame t + lead is the target at step t
    press_depth: float = 0.02  # press target of the aimed point below the key top (m)
    integral_gain: float = 0.3  # per step, on the fingertip error of pressing fingers
    integral_limit: float = 0.02  # m
    lateral_gain: float = 0.3  # per step, on the y error of a finger approaching its key
    lift_xy_tolerance: float = 0.012  # a finger descends only when this close (m) along y
    lift_y_tolerance_black: float = 0.012  # the same for black keys
    lift_height: float = 0.012  # above the key top while not yet above the key (m)
    lift_x_tolerance: float = 0.009  # white keys: descend only this close to the playable band
    white_band_margin: float = 0.012  # white keys: pressed this far (m) before the black keys
    lift_clearance: float = 0.005  # lifted fingers stay this far above the black keys' top (m)
    forearm_overshoot: float = 2.0  # command = ik + k (ik - measured) for forearm_tx
    # forearm_tx command += k * (damping / kp) * the planned hand velocity along the keyboard:
    # cancels the joint's viscous damping (67 N s/m against kp 300 N/m) during hand moves.
    forearm_velocity_ff: float = 0.0
    # Fast hand jumps (v4): forearm_tx command = measured + kp (ik - measured) - forearm_kd *
    # its velocity (m/s -> m), kp = forearm_kp + forearm_overshoot - 2 (so the look-ahead's
    # overshoot-3 candidate is a slightly stiffer PD). None: the v3 law, command = ik +
    # forearm_overshoot (ik - measured). Measured fastest reliable jump (settled within 3 mm,
    # 20 Hz commands, benchmarks/forearm_jump.py): kp 12 kd 0.4 moves 2 / 5 / 10 / 20 / 30 cm
    # in 1 / 3 / 3 / 5 / 6 steps, the v3 law 3 / 7 / 8 / > 12 / > 12 (it rings); kp 16 is
    # unstable at 20 Hz. The planner's JUMP_STEPS come from this table.
    forearm_kp: float | None = 12.0
    forearm_kd: float = 0.4
    idle_weight: float = 1.0  # IK weight of fingers not pressing
    iterations: int = 3
    wrist_posture_scale: float = 10.0  # x posture_weight for WRJ1/WRJ2
    posture_weight: float = 3e-4  # IK pull toward the curved piano posture
    relift_margin: float = 0.003  # a descended finger this far (m) off its key's side re-lifts
    # IK target point of each finger: "site" (fingertip sites), "contact" (collision-geometry
    # contact points, scene.fingertip_contact_points) or a tuple of fingers aimed by contact
    # point. "contact" measured no better: built-in / tuning-set per-step F1 0.804 / 0.654 vs
    # 0.803 / 0.652, note-onset F1 0.713 / 0.570 vs 0.731 / 0.590 (docs/sightreader.md).
    points: str | tuple[int, ...] = "site"
    # Posture of a hand whose thumb plays a white key (the probes' measured pressing pose,
    # ../shared/reference/five-fingers.md): wrist flexed, thumb opposed, and forearm_ty (the
    # slide along the keys toward the fallboard, world -x; not a height) near its maximum.
    thumb_posture: tuple[tuple[str, float], ...] = (
        ("WRJ1", 0.45),
        ("THJ5", -0.15),
        ("THJ4", 0.8),
        ("THJ3", -0.05),
        ("THJ2", 0.1),
        ("THJ1", 0.75),
        ("forearm_ty", 0.055),
    )
    thumb_posture_weight: float = 3e-3  # posture weight of those joints (rad)
    thumb_ty_weight: float = 0.3  # the same for forearm_ty (m)
    thumb_idle_weight: float = 0.05  # x/y IK weight of that hand's idle fingers (z stays 1)
    thumb_fixed_x: bool = True  # the thumb aims at its press point's x (not anywhere in the band)
    thumb_x_shift: float = -0.02  # ... shifted this far (m): a pressing thumb slides forward
    thumb_press_lateral: float = 1.0  # y integral (x integral_gain) of a pressing thumb
    press_lateral: float = 0.0  # the same for the other fingers
    thumb_press_depth: float = 0.02  # press_depth of the thumb
    thumb_lookahead: int = 0  # take the thumb posture this many frames before the thumb's note


class SightReader:
    """Plays an env's song from its score (no learning).

    Args:
        env: a :class:`~pianomime_env.envs.piano.PianoMimeEnv` or a gym-made/wrapped one.
        demo: the demonstration to track; default ``from_midi(env.unwrapped.trajectory)``.
        config: gains, see :class:`SightReaderConfig`.

    Call :meth:`reset` after ``env.reset()``, then ``action = reader(obs)`` every step: the
    action is in the env's action space (absolute joint targets + sustain, or Box(-1, 1) when
    the env has ``normalized_actions=True``).
    """

    def __init__(
        self,
        env: Any,
        demo: Demonstration | None = None,
        config: SightReaderConfig | None = None,
    ) -> None:
        u = getattr(env, "unwrapped", env)
        if not hasattr(u, "index") or not hasattr(u, "trajectory"):
            raise TypeError(f"SightReader needs a PianoMimeEnv, got {type(u).__name__}")
        self.env = u
        self.config = config or SightReaderConfig()
        if demo is None:
            demo = from_midi(u.trajectory, control_timestep=u.control_timestep, env=u)
        demo.check_fits(u)
        self.demo = demo
        self.ik = HandIK(
            u.model, u.index, posture_weight=self.config.posture_weight, points=self.config.points
        )
        self.geo = key_geometry(u.model, u.index)
        wrist = [
            [j for j, n in enumerate(row) if n.endswith(("WRJ2", "WRJ1"))]
            for row in u.index.hand_joint_names
        ]
        for h in range(2):
            self.ik.posture_w[h, wrist[h]] *= self.config.wrist_posture_scale
        names = [list(n) for n in u.index.hand_joint_names]
        self._tx = np.array([row.index("forearm_tx") for row in names])
        self._tx_u = np.array(
            [
                int(np.flatnonzero(self.ik.ctrl_map[:, h * self.ik.n_joints + self._tx[h]])[0])
                for h in range(2)
            ]
        )
        # Playable x band of each key: white keys in front of the black keys, black keys on
        # their front two thirds.
        c, hs = self.geo.center[:, 0], self.geo.half_size[:, 0]
        black_front = self.geo.black_front
        self._x_band = np.where(
            self.geo.is_black[:, None],
            np.stack([c - 0.3 * hs, c + 0.8 * hs], axis=1),
            np.stack(
                [np.full_like(c, black_front + self.config.white_band_margin), c + 0.85 * hs],
                axis=1,
            ),
        )
        self._lift_floor = self.geo.black_top + self.config.lift_clearance
        self._front = c + hs  # (88,) x of each key's front edge
        # (T, 2): the hand's thumb plays a white key in demo frames t .. t + thumb_lookahead.
        fing = np.asarray(demo.fingering)
        tw = np.zeros((demo.n_steps, 2), bool)
        for h in range(2):
            tw[:, h] = ((fing == 5 * h) & ~self.geo.is_black[None, :]).any(axis=1)
        ahead = tw.copy()
        for d in range(1, self.config.thumb_lookahead + 1):
            ahead[:-d] |= tw[d:]
        self._thumb_white = ahead
        # Thumb-on-white-key posture: joint columns, targets and weights per hand.
        short = [
            [n.split("_", 1)[1] if n.startswith(("rh_", "lh_")) else n for n in row]
            for row in names
        ]
        cols = [[row.index(j) for j, _ in self.config.thumb_posture if j in row] for row in short]
        vals = [[v for j, v in self.config.thumb_posture if j in row] for row in short]
        self._thumb_post = self.ik.posture.copy()
        self._thumb_w = self.ik.posture_w.copy()
        for h in range(2):
            self._thumb_post[h, cols[h]] = vals[h]
            self._thumb_w[h, cols[h]] = self.config.thumb_posture_weight
            self._thumb_w[h, short[h].index("forearm_ty")] = self.config.thumb_ty_weight
        self._thumb_post = np.clip(self._thumb_post, self.ik.lower, self.ik.upper)
        self._low, self._high = u.action_low, u.action_high
        # forearm_tx's time constant (s): joint damping / actuator stiffness, from the model.
        tx_joint = u.model.actuator_trnid[self._tx_u, 0]
        self._tx_dof = u.model.jnt_dofadr[tx_joint]
        self._tx_tau = u.model.dof_damping[u.model.jnt_dofadr[tx_joint]] / np.abs(
            u.model.actuator_biasprm[self._tx_u, 1]
        )
        # Planned hand velocity along the keyboard (forearm_tx is world y), (T, 2) m/s.
        wy = np.asarray(demo.wrists, np.float64)[:, :, 1]
        self._hand_velocity = np.zeros_like(wy)
        self._hand_velocity[:-1] = np.diff(wy, axis=0) / u.control_timestep
        self.reset()

    def reset(self) -> None:
        """Starts a new episode (call after ``env.reset()``)."""
        d = self.env.data
        self._q = self.ik.posture.copy()
        self._q[np.arange(2), self._tx] = d.qpos[self.ik.qadr[np.arange(2), self._tx]]
        self._integral = np.zeros((2, 5, 3))
        self._last_key = np.full((2, 5), -1)  # key each finger is pressing (descended on)
        self._int_key = np.full((2, 5), -1)  # key each finger's integral belongs to

    @property
    def descended_keys(self) -> np.ndarray:
        """(2, 5) the key each finger was sent down onto at the last step (-1: lifted or idle)."""
        return self._last_key.copy()

    @property
    def forearm_targets(self) -> np.ndarray:
        """(2,) the IK's ``forearm_tx`` position at the last step (m; before the overshoot)."""
        return self._q[np.arange(2), self._tx].copy()

    def state(self) -> dict[str, np.ndarray]:
        """Copies of the controller's memory (IK warm start, integrals, keys per finger)."""
        return {
            "q": self._q.copy(),
            "integral": self._integral.copy(),
            "last_key": self._last_key.copy(),
            "int_key": self._int_key.copy(),
        }

    def restore(self, state: dict[str, np.ndarray]) -> None:
        """Continues from a :meth:`state` (of this reader or one on the same song and scene)."""
        self._q = state["q"].copy()
        self._integral = state["integral"].copy()
        self._last_key = state["last_key"].copy()
        self._int_key = state["int_key"].copy()

    def _pressed_keys(self, frame: int) -> np.ndarray:
        """(2, 5) key each finger presses in demo frame ``frame``, -1 for none."""
        out = np.full((2, 5), -1)
        row = self.demo.fingering[frame]
        for k in np.flatnonzero(row >= 0):
            f = int(row[k])
            out[f // 5, f % 5] = k
        return out

    def nominal(self, t: int) -> np.ndarray:
        """Full-space absolute action (nu + 1,) for demo frame ``t`` from the IK alone."""
        t = min(max(t, 0), self.demo.n_steps - 1)
        q = self.ik.solve(self.demo.fingertips[t], self._q, iterations=self.config.iterations)
        sustain = float(self.env.trajectory.sustain[min(t, self.env.n_steps - 1)])
        return np.append(self.ik.to_ctrl(q), sustain)

    def __call__(self, obs: Any) -> np.ndarray:
        cfg = self.config
        u = self.env
        d = u.data
        t = int(u.t)
        frame = min(t + cfg.lead, self.demo.n_steps - 1)
        targets = self.demo.fingertips[frame].astype(np.float64).copy()
        keys = self._pressed_keys(frame)
        tips = self.ik.tip_points(d)
        pressing = keys >= 0
        weights = np.where(pressing, 1.0, cfg.idle_weight)
        for h, f in zip(*np.nonzero(pressing)):
            k = keys[h, f]
            if k != self._int_key[h, f]:
                self._integral[h, f] = 0.0
                self._int_key[h, f] = k
            # Anywhere inside the key's playable band along x is fine: let the finger keep its
            # natural x there instead of fighting the posture.
            lo, hi = self._x_band[k]
            targets[h, f, 0] = np.clip(tips[h, f, 0], lo, hi)
            if f == 0 and cfg.thumb_fixed_x:  # the thumb aims at its own press point
                targets[h, f, 0] = self.geo.finger_press_points[0, k, 0] + cfg.thumb_x_shift
            y_err = abs(targets[h, f, 1] - tips[h, f, 1])
            # A white key is pressed in front of the black keys: a tip still behind that line
            # would land on (or between) black keys.
            x_short = lo - tips[h, f, 0] if not self.geo.is_black[k] else 0.0
            # ... and one beyond the key's front edge would slide off it (the thumb, pushed
            # down, swings toward the player).
            x_short = max(x_short, tips[h, f, 0] - self._front[k] + cfg.lift_x_tolerance)
            top = self.geo.top[k]
            if (
                cfg.relift_margin > 0.0
                and k == self._last_key[h, f]
                and y_err > self.geo.half_size[k, 1] + cfg.relift_margin
                and not u.key_activation[k]
            ):
                self._last_key[h, f] = -1  # slid off its key: lift and approach again
            if k != self._last_key[h, f] and (
                y_err
                > (cfg.lift_y_tolerance_black if self.geo.is_black[k] else cfg.lift_xy_tolerance)
                or x_short > cfg.lift_x_tolerance
            ):
                # Not above the key yet: stay lifted (over the black keys) so the finger does not
                # slide over others.
                targets[h, f, 2] = max(top + cfg.lift_height, self._lift_floor)
                # Close the sideways gap while lifted (integral on y, kept while pressing).
                self._integral[h, f, 1] = np.clip(
                    self._integral[h, f, 1] + cfg.lateral_gain * (targets[h, f, 1] - tips[h, f, 1]),
                    -cfg.integral_limit,
                    cfg.integral_limit,
                )
                targets[h, f, 1] += self._integral[h, f, 1]
                continue
            targets[h, f, 2] = top - (cfg.thumb_press_depth if f == 0 else cfg.press_depth)
            err = targets[h, f] - tips[h, f]
            err[:2] = 0.0  # only depth is integrated while pressing (y keeps its approach value)
            # The thumb slides sideways as it presses: keep correcting its y.
            lateral = cfg.thumb_press_lateral if f == 0 else cfg.press_lateral
            if lateral:
                err[1] = lateral * (targets[h, f, 1] - tips[h, f, 1])
            self._integral[h, f] = np.clip(
                self._integral[h, f] + cfg.integral_gain * err,
                -cfg.integral_limit,
                cfg.integral_limit,
            )
            targets[h, f] += self._integral[h, f]
            self._last_key[h, f] = k
        self._last_key[~pressing] = -1
        self._int_key[~pressing] = -1
        self._integral[~pressing] = 0.0
        # A hand whose thumb presses (or approaches) a white key takes the thumb posture.
        # (or will within ``thumb_lookahead`` frames: forearm_ty needs ~5 steps to get there).
        thumb_white = self._thumb_white[frame]
        post, post_w = self.ik.posture, self.ik.posture_w
        if thumb_white.any():
            sel = thumb_white[:, None]
            post = np.where(sel, self._thumb_post, post)
            post_w = np.where(sel, self._thumb_w, post_w)
            # Its idle fingers follow the hand forward instead of anchoring it.
            # (in x and y; they keep their height so they do not drop onto keys).
            weights = np.repeat(weights[..., None], 3, axis=2)
            weights[..., :2] = np.where(
                (sel & ~pressing)[..., None], cfg.thumb_idle_weight, weights[..., :2]
            )
        q = self.ik.solve(
            targets,
            self._q,
            tip_weights=weights,
            iterations=cfg.iterations,
            posture=post,
            posture_weights=post_w,
        )
        self._q = q
        ctrl = self.ik.to_ctrl(q)
        # Forearm lead: command past the IK target by the remaining distance.
        measured = d.qpos[self.ik.qadr[np.arange(2), self._tx]]
        gap = q[np.arange(2), self._tx] - measured
        if cfg.forearm_kp is None:
            ctrl[self._tx_u] += cfg.forearm_overshoot * gap
        else:
            velocity = d.qvel[self._tx_dof]
            kp = cfg.forearm_kp + cfg.forearm_overshoot - 2.0
            ctrl[self._tx_u] = measured + kp * gap - cfg.forearm_kd * velocity
        if cfg.forearm_velocity_ff:
            v = self._hand_velocity[frame]
            ctrl[self._tx_u] += cfg.forearm_velocity_ff * self._tx_tau * v
        sustain = float(u.trajectory.sustain[min(t, u.n_steps - 1)])
        action = np.clip(np.append(ctrl, sustain), self._low, self._high)
        return u.to_env_action(action)
