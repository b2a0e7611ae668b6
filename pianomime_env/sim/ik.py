"""Fast fingertip inverse kinematics for the two Shadow Hands (numpy damped least squares).

The problem is restricted to the hands' own joints (wrist, fingers, thumb, ``forearm_tx``,
``forearm_ty``: 26 dofs per hand, 23 with the reduced action space); Jacobians come from
``mj_jacSite`` on a private ``MjData``, so one iteration costs one ``mj_kinematics`` +
``mj_comPos`` + 10 site Jacobians + two small linear solves. mink (a QP over the full 140-dof
model) solves the same targets more exactly but 20x slower: 19.5 vs 0.98 ms per control step
(3 iterations), mean fingertip error 2.2 vs 5.3 mm with the sight-reader's posture pull
(``benchmarks/bench_ik.py``, both measured in one run).

Each iteration solves, per hand,

    (Jᵀ W J + λ I + μ P) Δq = Jᵀ W e + μ P (q_posture − q),

with ``e`` the fingertip (and optional wrist) position errors, ``W`` per-point weights, ``λ`` the
damping and ``P`` a diagonal posture weight; the result is clipped into the joint ranges.
The coupled finger joints (J1, J2 of FF/MF/RF/LF) are separate joints in the model; the tendon
actuators ``*_FFJ0`` etc. take J1 + J2, which :meth:`HandIK.to_ctrl` computes from the model's
tendon definitions.
"""

from __future__ import annotations

import mujoco
import numpy as np

from pianomime_env.sim.scene import HANDS, SceneIndex, fingertip_contact_points

__all__ = ["HandIK", "PIANO_POSTURE"]

#: Curved-finger "piano" posture (rad), by joint name without the hand prefix. Found by solving
#: the IK for fingertips hovering in front of the black keys; joints not listed are 0.
PIANO_POSTURE: dict[str, float] = {
    "WRJ2": 0.0,
    "WRJ1": 0.25,
    "FFJ3": 0.55,
    "FFJ2": 0.6,
    "FFJ1": 0.35,
    "MFJ3": 0.55,
    "MFJ2": 0.6,
    "MFJ1": 0.35,
    "RFJ3": 0.55,
    "RFJ2": 0.6,
    "RFJ1": 0.35,
    "LFJ3": 0.55,
    "LFJ2": 0.6,
    "LFJ1": 0.35,
    "THJ4": 0.6,
    "THJ2": 0.2,
    "THJ1": 0.3,
}


class HandIK:
    """Damped-least-squares IK of both hands' fingertips (and optionally wrists).

    Args:
        model: the scene ``MjModel`` (``env.unwrapped.model``); only read.
        index: its :class:`~pianomime_env.sim.scene.SceneIndex`.
        posture: joint name (no hand prefix) -> angle (rad/m); default :data:`PIANO_POSTURE`.
        damping: λ, Levenberg-Marquardt damping (m²-scaled).
        posture_weight: μ, pull toward the posture (0 disables it).
        forearm_posture_weight: posture weight of ``forearm_tx``/``forearm_ty`` (small: the
            forearm is meant to move).
        points: which point of each finger the targets are for: ``"site"`` (the fingertip
            sites, the env's ``fingertips`` observation), ``"contact"`` (each finger's contact
            point, :func:`~pianomime_env.sim.scene.fingertip_contact_points` at the posture: where
            the finger actually touches a key; the thumb's is ~10-15 mm below its site), or a
            tuple of finger indices (0..4) aimed by their contact point, the others by site.
    """

    def __init__(
        self,
        model: mujoco.MjModel,
        index: SceneIndex,
        *,
        posture: dict[str, float] | None = None,
        damping: float = 1e-4,
        posture_weight: float = 3e-3,
        forearm_posture_weight: float = 1e-5,
        points: str | tuple[int, ...] = "site",
    ) -> None:
        if isinstance(points, str):
            if points not in ("site", "contact"):
                raise ValueError(
                    f"points must be 'site', 'contact' or finger indices, got {points!r}"
                )
            contact_fingers = tuple(range(5)) if points == "contact" else ()
        else:
            contact_fingers = tuple(int(f) for f in points)
            if any(f < 0 or f > 4 for f in contact_fingers):
                raise ValueError(f"points: finger indices must be 0..4, got {points!r}")
        if model.nq != model.nv:
            raise ValueError("HandIK assumes hinge/slide joints only (nq == nv)")
        self.model = model
        self.index = index
        self.data = mujoco.MjData(model)
        self.qadr = np.asarray(index.hand_qpos)  # (2, J)
        self.dadr = np.asarray(index.hand_dof)  # (2, J)
        self.n_joints = int(self.qadr.shape[1])
        names = index.hand_joint_names
        self.joint_names = names
        self.sites = np.asarray(index.fingertip_sites)  # (2, 5)
        jnt_of_qpos = {int(model.jnt_qposadr[j]): j for j in range(model.njnt)}
        jids = np.vectorize(lambda a: jnt_of_qpos[int(a)])(self.qadr)
        self.lower = model.jnt_range[jids, 0].copy()  # (2, J)
        self.upper = model.jnt_range[jids, 1].copy()
        posture = PIANO_POSTURE if posture is None else posture
        self.posture = np.zeros((2, self.n_joints))
        p_w = np.full((2, self.n_joints), posture_weight)
        for h in range(2):
            for j, full in enumerate(names[h]):
                short = full.split("_", 1)[1] if full.startswith(("rh_", "lh_")) else full
                self.posture[h, j] = posture.get(short, 0.0)
                if short.startswith("forearm"):
                    p_w[h, j] = forearm_posture_weight
        self.posture = np.clip(self.posture, self.lower, self.upper)
        self.posture_w = p_w
        self.damping = float(damping)
        self.wrist_bodies = np.array(
            [
                mujoco.mj_name2id(model, mujoco.mjtObj.mjOBJ_BODY, f"{s}_shadow_hand/{s}_wrist")
                for s in HANDS
            ]
        )
        self._jac = np.zeros((3, model.nv))
        self.points = points
        # Each finger's target point, in its distal body's frame: the contact point for
        # ``contact_fingers``, the fingertip site (its local position) for the others.
        self.tip_bodies, self.contact_offsets = fingertip_contact_points(model, index, self.posture)
        self._contact = bool(contact_fingers)
        self.point_offsets = self.contact_offsets.copy()
        site_in_body = model.site_bodyid[self.sites] == self.tip_bodies
        if not site_in_body.all():
            raise RuntimeError("fingertip sites are not on the distal bodies")
        for f in set(range(5)) - set(contact_fingers):
            self.point_offsets[:, f] = model.site_pos[self.sites[:, f]]
        self._ctrl_map = self._build_ctrl_map()

    # -- kinematics ----------------------------------------------------------------------------

    def forward(self, q: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Target points (2, 5, 3) (sites or contact points, see ``points``) and wrist (2, 3)
        positions (m) for hand joints ``q`` (2, J)."""
        d = self.data
        d.qpos[self.qadr] = q
        mujoco.mj_kinematics(self.model, d)
        return self.tip_points(d), d.xpos[self.wrist_bodies].copy()

    def tip_points(self, data: mujoco.MjData) -> np.ndarray:
        """(2, 5, 3) world positions of the IK's target points (sites or contact points) in
        ``data`` (kinematics already computed, e.g. the env's ``data`` after a step)."""
        if not self._contact:
            return data.site_xpos[self.sites].copy()
        b = self.tip_bodies
        rot = data.xmat[b].reshape(2, 5, 3, 3)
        return data.xpos[b] + np.einsum("hfij,hfj->hfi", rot, self.point_offsets)

    def contact_points(self, data: mujoco.MjData) -> np.ndarray:
        """(2, 5, 3) world positions of each finger's contact point in ``data``."""
        b = self.tip_bodies
        rot = data.xmat[b].reshape(2, 5, 3, 3)
        return data.xpos[b] + np.einsum("hfij,hfj->hfi", rot, self.contact_offsets)

    def solve(
        self,
        tip_targets: np.ndarray,
        q0: np.ndarray | None = None,
        *,
        tip_weights: np.ndarray | None = None,
        wrist_targets: np.ndarray | None = None,
        wrist_weights: np.ndarray | None = None,
        iterations: int = 3,
        posture: np.ndarray | None = None,
        posture_weights: np.ndarray | None = None,
    ) -> np.ndarray:
        """Joint positions (2, J) putting the fingertips at ``tip_targets``.

        Args:
            tip_targets: (2, 5, 3) targets of the fingers' points (sites or contact points, see
                ``points``; m, world frame), right then left hand.
            q0: (2, J) start (e.g. the previous solution); default the posture.
            tip_weights: (2, 5) per-fingertip weights (default 1), or (2, 5, 3) per axis; 0
                ignores a finger (or an axis of it).
            wrist_targets: (2, 3) optional wrist targets (m).
            wrist_weights: (2,) or (2, 3) weights of the wrist targets (default 0.05 per axis).
            iterations: Gauss-Newton iterations.
            posture: (2, J) posture to regularize toward (default the IK's posture).
            posture_weights: (2, J) per-joint posture weights μ (default ``posture_w``).

        Returns:
            (2, J) float64 joint positions inside the joint ranges.
        """
        m, d = self.model, self.data
        tips = np.asarray(tip_targets, np.float64).reshape(2, 5, 3)
        q = (self.posture if q0 is None else np.asarray(q0, np.float64)).reshape(2, -1).copy()
        q = np.clip(q, self.lower, self.upper)
        post = self.posture if posture is None else np.asarray(posture, np.float64)
        tw = np.ones((2, 5)) if tip_weights is None else np.asarray(tip_weights, np.float64)
        n_pts = 6 if wrist_targets is not None else 5
        w = np.zeros((2, n_pts, 3))
        w[:, :5] = np.sqrt(tw.reshape(2, 5, -1))
        if wrist_targets is not None:
            ww = 0.05 if wrist_weights is None else np.asarray(wrist_weights, np.float64)
            w[:, 5] = np.sqrt(np.broadcast_to(np.reshape(ww, (2, -1)), (2, 3)))
            targets = np.concatenate([tips, np.reshape(wrist_targets, (2, 1, 3))], axis=1)
        else:
            targets = tips
        jac = np.empty((2, n_pts * 3, self.n_joints))
        eye = self.damping * np.eye(self.n_joints)
        pw = self.posture_w if posture_weights is None else np.asarray(posture_weights, float)
        for _ in range(iterations):
            d.qpos[self.qadr] = q
            mujoco.mj_kinematics(m, d)
            mujoco.mj_comPos(m, d)
            pos = np.empty((2, n_pts, 3))
            if self._contact:
                pos[:, :5] = self.tip_points(d)
            for h in range(2):
                for f in range(5):
                    if self._contact:
                        mujoco.mj_jac(m, d, self._jac, None, pos[h, f], int(self.tip_bodies[h, f]))
                    else:
                        mujoco.mj_jacSite(m, d, self._jac, None, int(self.sites[h, f]))
                        pos[h, f] = d.site_xpos[self.sites[h, f]]
                    jac[h, 3 * f : 3 * f + 3] = self._jac[:, self.dadr[h]]
                if n_pts == 6:
                    b = int(self.wrist_bodies[h])
                    mujoco.mj_jacBody(m, d, self._jac, None, b)
                    jac[h, 15:18] = self._jac[:, self.dadr[h]]
                    pos[h, 5] = d.xpos[b]
            err = ((targets - pos) * w).reshape(2, -1)
            jw = jac * w.reshape(2, -1, 1)
            dq = self._step(jw, err, pw * (post - q), pw, eye)
            # Joints at a limit that the step pushes outward are frozen and the step re-solved:
            # plain clipping would waste most of the step (slow convergence near limits).
            blocked = ((q <= self.lower + 1e-9) & (dq < 0)) | ((q >= self.upper - 1e-9) & (dq > 0))
            if blocked.any():
                jw = jw * ~blocked[:, None, :]
                dq = self._step(jw, err, pw * (post - q) * ~blocked, pw, eye)
            q = np.clip(q + dq, self.lower, self.upper)
        return q

    def _step(
        self, jw: np.ndarray, err: np.ndarray, pull: np.ndarray, pw: np.ndarray, eye: np.ndarray
    ) -> np.ndarray:
        """One regularized Gauss-Newton step (2, J) from weighted Jacobians (2, 3P, J)."""
        jt = np.swapaxes(jw, 1, 2)
        lhs = jt @ jw + eye + pw[:, :, None] * np.eye(self.n_joints)
        rhs = (jt @ err[:, :, None])[:, :, 0] + pull
        return np.linalg.solve(lhs, rhs[:, :, None])[:, :, 0]

    # -- actuators -----------------------------------------------------------------------------

    def _build_ctrl_map(self) -> np.ndarray:
        """(nu, 2J) matrix with ``ctrl = A @ q.ravel()`` (tendon actuators sum their joints)."""
        m = self.model
        col = {int(a): i for i, a in enumerate(self.qadr.ravel())}
        a = np.zeros((m.nu, self.qadr.size))
        for u in range(m.nu):
            trn = int(m.actuator_trnid[u, 0])
            if m.actuator_trntype[u] == mujoco.mjtTrn.mjTRN_JOINT:
                a[u, col[int(m.jnt_qposadr[trn])]] = 1.0
            elif m.actuator_trntype[u] == mujoco.mjtTrn.mjTRN_TENDON:
                adr, num = int(m.tendon_adr[trn]), int(m.tendon_num[trn])
                for wi in range(adr, adr + num):
                    if m.wrap_type[wi] != mujoco.mjtWrap.mjWRAP_JOINT:
                        raise ValueError(f"actuator {u}: tendon is not a fixed joint tendon")
                    a[u, col[int(m.jnt_qposadr[m.wrap_objid[wi]])]] = m.wrap_prm[wi]
            else:
                raise ValueError(f"actuator {u}: unsupported transmission {m.actuator_trntype[u]}")
        return a

    @property
    def ctrl_map(self) -> np.ndarray:
        """(nu, 2J) joint -> actuator map."""
        return self._ctrl_map

    def to_ctrl(self, q: np.ndarray) -> np.ndarray:
        """Actuator targets (nu,) for hand joints ``q`` (2, J), clipped to the control ranges."""
        ctrl = self._ctrl_map @ np.asarray(q, np.float64).ravel()
        r = self.model.actuator_ctrlrange
        return np.clip(ctrl, r[:, 0], r[:, 1])

    def from_ctrl(self, ctrl: np.ndarray) -> np.ndarray:
        """Approximate inverse of :meth:`to_ctrl`: (nu,) -> (2, J); tendons split J1 = J2."""
        pinv = np.linalg.pinv(self._ctrl_map)
        return np.clip((pinv @ np.asarray(ctrl, np.float64)).reshape(2, -1), self.lower, self.upper)
