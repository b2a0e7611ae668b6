"""The two-hand piano scene: a compiled MuJoCo model plus index arrays into it.

The model is RoboPianist's (two Shadow Hands over an 88-key piano on its stage), built once with
dm_control's composer in a *subprocess* and cached as a binary MJB file. Users' processes therefore
never import robopianist, dm_control, note-seq or librosa (seconds of import time and ~150 MB of
memory), and loading a cached model takes tens of milliseconds.

Options that only change model parameters (timestep, gravity compensation, collision filtering) are
applied to the loaded ``MjModel``; only options that change the model's structure
(``reduced_action_space``, ``primitive_fingertip_collisions``) select a different cached build.

Cache location: ``$PIANOMIME_CACHE_DIR`` or ``~/.cache/pianomime_env``. The file name is a digest of
:func:`cache_key`: the build recipe, the structural options and the versions of pianomime-env,
mujoco, dm_control and robopianist *as installed* (read at run time from the package metadata), so
upgrading or downgrading any of them rebuilds instead of reusing a stale scene. If the cache
directory is not writable the model is built into a temporary directory instead.
"""

from __future__ import annotations

import hashlib
import json
import os
import subprocess
import sys
import tempfile
from dataclasses import dataclass
from pathlib import Path

import mujoco
import numpy as np

# Bump when the build recipe below changes, so stale caches are not reused.
_BUILD_RECIPE_VERSION = 2
# Distributions whose installed versions decide the compiled scene (read, never imported).
_BUILD_DISTRIBUTIONS = ("pianomime-env", "mujoco", "dm_control", "robopianist")

NUM_KEYS = 88
FINGER_NAMES = ("thumb", "index", "middle", "ring", "little")
# RoboPianist's fingertip bodies, thumb..little; the order is part of the observation layout.
_FINGERTIP_BODIES = ("thdistal", "ffdistal", "mfdistal", "rfdistal", "lfdistal")
# Fingertip colours, thumb..little (purple, red, cyan, blue, yellow) as in RoboPianist.
FINGERTIP_COLORS = np.array(
    [
        [0.8, 0.2, 0.8],
        [0.8, 0.2, 0.2],
        [0.2, 0.8, 0.8],
        [0.2, 0.2, 0.8],
        [0.8, 0.8, 0.2],
    ]
)
# Key joint within this angle (rad, 0.5 deg) of its maximum counts as pressed (RoboPianist).
KEY_ACTIVATION_THRESHOLD = 0.00872665
HANDS = ("rh", "lh")


def cache_dir() -> Path:
    """Directory holding compiled scene models."""
    env = os.environ.get("PIANOMIME_CACHE_DIR")
    return Path(env) if env else Path.home() / ".cache" / "pianomime_env"


def installed_version(distribution: str) -> str:
    """The installed version of ``distribution`` from its package metadata (nothing is
    imported), or ``"not-installed"``."""
    from importlib import metadata

    try:
        return metadata.version(distribution)
    except metadata.PackageNotFoundError:
        return "not-installed"


def cache_key(*, reduced_action_space: bool, primitive_fingertip_collisions: bool) -> dict:
    """What the cached scene depends on: build recipe, structural options, installed versions.

    The running mujoco's own ``__version__`` is included too: it is what will load the file.
    """
    return {
        "recipe": _BUILD_RECIPE_VERSION,
        "mujoco_runtime": mujoco.__version__,
        "versions": {d: installed_version(d) for d in _BUILD_DISTRIBUTIONS},
        "reduced_action_space": bool(reduced_action_space),
        "primitive_fingertip_collisions": bool(primitive_fingertip_collisions),
    }


def model_filename(*, reduced_action_space: bool, primitive_fingertip_collisions: bool) -> str:
    """Cache file name of the scene: a digest of :func:`cache_key`."""
    key = cache_key(
        reduced_action_space=reduced_action_space,
        primitive_fingertip_collisions=primitive_fingertip_collisions,
    )
    digest = hashlib.sha1(json.dumps(key, sort_keys=True).encode()).hexdigest()[:16]
    return f"scene-mujoco{mujoco.__version__}-{digest}.mjb"


def build_model_file(
    path: Path, *, reduced_action_space: bool, primitive_fingertip_collisions: bool
) -> None:
    """Builds the scene with robopianist's composer models and saves it as MJB at ``path``.

    Runs in the current process and imports robopianist (slow); :func:`load_model` calls it in a
    subprocess.
    """
    os.environ.setdefault("MUJOCO_GL", "egl")  # dm_control probes GL at import; never render here.
    import warnings

    warnings.filterwarnings("ignore")
    from dm_control import mjcf
    from robopianist.models.arenas import stage
    from robopianist.suite.tasks import base

    task = base.PianoTask(
        arena=stage.Stage(),
        change_color_on_activation=True,
        primitive_fingertip_collisions=primitive_fingertip_collisions,
        reduced_action_space=reduced_action_space,
    )
    # Colour each finger's distal visual geoms and its fingertip site (RoboPianist's palette).
    for hand in (task.right_hand, task.left_hand):
        for color, body, site in zip(FINGERTIP_COLORS, hand.fingertip_bodies, hand.fingertip_sites):
            rgba = tuple(color) + (1.0,)
            for geom in body.find_all("geom"):
                if geom.dclass.dclass == "plastic_visual":
                    geom.rgba = rgba
            site.rgba = rgba
    physics = mjcf.Physics.from_mjcf_model(task.root_entity.mjcf_model)
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    mujoco.mj_saveModel(physics.model.ptr, str(tmp), None)
    os.replace(tmp, path)  # atomic: concurrent builders never expose a half-written file


def load_model(
    *, reduced_action_space: bool = False, primitive_fingertip_collisions: bool = False
) -> mujoco.MjModel:
    """Returns the compiled scene, building and caching it on first use (≈ 3 s once)."""
    name = model_filename(
        reduced_action_space=reduced_action_space,
        primitive_fingertip_collisions=primitive_fingertip_collisions,
    )
    path = cache_dir() / name
    if not path.exists():
        try:
            path.parent.mkdir(parents=True, exist_ok=True)
            probe = path.parent / f".write-test-{os.getpid()}"
            probe.touch()
            probe.unlink()
        except OSError:
            path = Path(tempfile.mkdtemp(prefix="pianomime-scene-")) / name
        cmd = [
            sys.executable,
            "-m",
            "pianomime_env.sim.scene",
            str(path),
            str(int(reduced_action_space)),
            str(int(primitive_fingertip_collisions)),
        ]
        proc = subprocess.run(cmd, capture_output=True, text=True)
        if proc.returncode != 0 or not path.exists():
            raise RuntimeError(
                "Building the piano scene with robopianist failed "
                f"(command: {' '.join(cmd)}):\n{proc.stderr[-3000:]}"
            )
    return mujoco.MjModel.from_binary_path(str(path))


def _ids(model: mujoco.MjModel, obj: mujoco.mjtObj, names: list[str]) -> np.ndarray:
    out = np.empty(len(names), dtype=np.int64)
    for i, name in enumerate(names):
        idx = mujoco.mj_name2id(model, obj, name)
        if idx < 0:
            raise RuntimeError(f"scene model has no {obj.name} named {name!r}")
        out[i] = idx
    return out


@dataclass(frozen=True)
class SceneIndex:
    """Index arrays into a scene model (all int64 numpy arrays).

    Attributes:
        key_qpos: (88,) qpos address of each key joint, key 0 = A0 ... 87 = C8.
        key_range_max: (88,) maximum joint angle of each key (rad).
        key_geoms: (88,) the visual/collision geom of each key (recoloured when pressed).
        hand_qpos: (2, J) qpos addresses of each hand's joints, right then left, in RoboPianist's
            ``joints_pos`` order (J = 26, or 23 with the reduced action space).
        hand_dof: (2, J) dof addresses of the same joints.
        fingertip_sites: (2, 5) site ids, hand x (thumb..little).
        forearm_geoms: (2, G) collision geoms on each forearm body (forearm collision term).
        actuator_ids: (nu,) actuators in action order (right hand, then left).
        hand_joint_names: the joint names, per hand.
    """

    key_qpos: np.ndarray
    key_range_max: np.ndarray
    key_geoms: np.ndarray
    hand_qpos: np.ndarray
    hand_dof: np.ndarray
    fingertip_sites: np.ndarray
    forearm_geoms: np.ndarray
    actuator_ids: np.ndarray
    hand_joint_names: tuple[tuple[str, ...], ...]

    @classmethod
    def from_model(cls, model: mujoco.MjModel) -> SceneIndex:
        joint_names = [
            mujoco.mj_id2name(model, mujoco.mjtObj.mjOBJ_JOINT, i) for i in range(model.njnt)
        ]
        key_joints = sorted(
            (i for i, n in enumerate(joint_names) if n.startswith("piano/")),
            key=lambda i: int(joint_names[i].rsplit("_", 1)[-1]),
        )
        if len(key_joints) != NUM_KEYS:
            raise RuntimeError(f"expected {NUM_KEYS} piano key joints, found {len(key_joints)}")
        key_joints = np.array(key_joints)
        # Each key body carries one geom; the body of each key joint identifies it.
        key_bodies = model.jnt_bodyid[key_joints]
        key_geoms = np.array([model.body_geomadr[b] for b in key_bodies])

        hand_joints = []
        for side in HANDS:
            prefix = f"{side}_shadow_hand/"
            joints = [i for i, n in enumerate(joint_names) if n.startswith(prefix)]
            # RoboPianist lists the forearm slide joints after the hand's own joints.
            forearm = [i for i in joints if joint_names[i].split("/", 1)[1].startswith("forearm_")]
            hand_joints.append([i for i in joints if i not in forearm] + forearm)
        if len(hand_joints[0]) != len(hand_joints[1]):
            raise RuntimeError("the two hands have different joint counts")
        hand_joints = np.array(hand_joints)

        sites = np.stack(
            [
                _ids(
                    model,
                    mujoco.mjtObj.mjOBJ_SITE,
                    [f"{s}_shadow_hand/{b}_site" for b in _FINGERTIP_BODIES],
                )
                for s in HANDS
            ]
        )
        forearm = []
        for side in HANDS:
            body = mujoco.mj_name2id(
                model, mujoco.mjtObj.mjOBJ_BODY, f"{side}_shadow_hand/{side}_forearm"
            )
            geoms = [
                g
                for g in range(
                    model.body_geomadr[body], model.body_geomadr[body] + model.body_geomnum[body]
                )
                if model.geom_contype[g] or model.geom_conaffinity[g]
            ]
            forearm.append(geoms)
        return cls(
            key_qpos=model.jnt_qposadr[key_joints].astype(np.int64),
            key_range_max=model.jnt_range[key_joints, 1].copy(),
            key_geoms=key_geoms.astype(np.int64),
            hand_qpos=model.jnt_qposadr[hand_joints].astype(np.int64),
            hand_dof=model.jnt_dofadr[hand_joints].astype(np.int64),
            fingertip_sites=sites,
            forearm_geoms=np.array(forearm, dtype=np.int64),
            actuator_ids=np.arange(model.nu, dtype=np.int64),
            hand_joint_names=tuple(
                tuple(joint_names[j].split("/", 1)[1] for j in row) for row in hand_joints
            ),
        )


@dataclass(frozen=True)
class KeyRestGeometry:
    """The 88 keys at rest (keys up), world frame, m. Key 0 = A0 ... 87 = C8.

    Attributes:
        center: (88, 3) key geom centres.
        half_size: (88, 3) box half sizes (x along the key toward the player, y across, z up).
        top: (88,) z of each key's top surface.
        is_black: (88,) bool, from the geoms' names.
    """

    center: np.ndarray
    half_size: np.ndarray
    top: np.ndarray
    is_black: np.ndarray


def key_rest_geometry(model: mujoco.MjModel, index: SceneIndex) -> KeyRestGeometry:
    """Positions and sizes of the keys at rest (kinematics of the model's default pose)."""
    data = mujoco.MjData(model)
    mujoco.mj_kinematics(model, data)
    g = index.key_geoms
    center = data.geom_xpos[g].copy()
    half = model.geom_size[g].copy()
    names = [mujoco.mj_id2name(model, mujoco.mjtObj.mjOBJ_GEOM, int(i)) or "" for i in g]
    is_black = np.array(["black" in n.rsplit("/", 1)[-1] for n in names])
    return KeyRestGeometry(center, half, center[:, 2] + half[:, 2], is_black)


#: The one definition of a key's *press point* (where a finger's contact point should meet the
#: key), per finger thumb..little, as a fraction of the key geom's half-length in front of its
#: centre (world +x, toward the player). White keys: the part in front of the black keys (their
#: front edge is at 0.4 of the white half-length); the thumb further forward, where it can press
#: (5-30 mm from the front, ``forearm_ty`` near its maximum). Black keys: their front half.
#: Used by the score planner, the video pipeline and the sight-reader
#: (:func:`key_press_points`); RoboPianist's fingering-reward target is a different, fixed
#: point (:data:`pianomime_env.rewards.fingering.KEY_TARGET_X_FRACTION`, built with
#: :func:`key_point_offsets` from the same geometry).
PRESS_X_FRACTION_WHITE = (0.55, 0.55, 0.55, 0.55, 0.55)
PRESS_X_FRACTION_BLACK = (0.5, 0.5, 0.5, 0.5, 0.5)


def key_point_offsets(
    half_size: np.ndarray, x_fraction: float | np.ndarray, z_fraction: float | np.ndarray
) -> np.ndarray:
    """(N, 3) offsets from key geom centres to points on the keys (world frame at rest, m).

    Args:
        half_size: (N, 3) key geom half sizes (``model.geom_size`` of the key geoms).
        x_fraction: scalar or (N,) fraction of the half-length toward the player (+x).
        z_fraction: scalar or (N,) fraction of the half-height upward (1 = the key's top).
    """
    half = np.asarray(half_size, np.float64)
    out = np.zeros((len(half), 3))
    out[:, 0] = np.asarray(x_fraction, np.float64) * half[:, 0]
    out[:, 2] = np.asarray(z_fraction, np.float64) * half[:, 2]
    return out


def key_press_points(rest: KeyRestGeometry, finger: int | None = None) -> np.ndarray:
    """Press points on the key tops (world frame, keys at rest, m).

    Args:
        rest: :func:`key_rest_geometry` of the scene.
        finger: 0..4 (thumb..little) for that finger's press points; None for all fingers.

    Returns:
        (88, 3) for one finger, else (5, 88, 3): key centre shifted by
        :data:`PRESS_X_FRACTION_WHITE` / :data:`PRESS_X_FRACTION_BLACK` of the half-length
        along +x, z at the key's top surface.
    """
    fingers = range(5) if finger is None else [int(finger)]
    pts = np.stack(
        [
            rest.center
            + key_point_offsets(
                rest.half_size,
                np.where(rest.is_black, PRESS_X_FRACTION_BLACK[f], PRESS_X_FRACTION_WHITE[f]),
                1.0,
            )
            for f in fingers
        ]
    )
    return pts[0] if finger is not None else pts


def fingertip_contact_points(
    model: mujoco.MjModel, index: SceneIndex, hand_qpos: np.ndarray
) -> tuple[np.ndarray, np.ndarray]:
    """Each finger's contact point: where its distal collision geometry meets a key.

    The fingertip *site* is not that point (the thumb's lies ~10-15 mm above it). The contact
    point is the lowest vertex (world z) of the finger's distal collision mesh (or the lowest
    point of a primitive geom) with the hands at ``hand_qpos`` — a pressing posture — expressed
    in the distal body's frame, so it moves with the finger.

    Args:
        model: the scene model.
        index: its :class:`SceneIndex`.
        hand_qpos: (2, J) hand joint positions (``index.hand_qpos`` order) of the posture.

    Returns:
        bodies: (2, 5) int64 distal body ids (hand x thumb..little).
        offsets: (2, 5, 3) contact points in those bodies' frames (m). World position:
        ``data.xpos[b] + data.xmat[b].reshape(3, 3) @ offset``.
    """
    data = mujoco.MjData(model)
    data.qpos[np.asarray(index.hand_qpos)] = np.asarray(hand_qpos, np.float64)
    mujoco.mj_kinematics(model, data)
    bodies = model.site_bodyid[np.asarray(index.fingertip_sites)].astype(np.int64)
    offsets = np.zeros((2, 5, 3))
    for h in range(2):
        for f in range(5):
            b = int(bodies[h, f])
            geoms = [
                g
                for g in range(model.body_geomadr[b], model.body_geomadr[b] + model.body_geomnum[b])
                if model.geom_contype[g] or model.geom_conaffinity[g]
            ]
            if not geoms:
                raise RuntimeError(f"fingertip body {b} has no collision geom")
            g = geoms[0]
            rot = data.geom_xmat[g].reshape(3, 3)
            if model.geom_type[g] == mujoco.mjtGeom.mjGEOM_MESH:
                m_id = int(model.geom_dataid[g])
                adr, n = int(model.mesh_vertadr[m_id]), int(model.mesh_vertnum[m_id])
                world = data.geom_xpos[g] + model.mesh_vert[adr : adr + n] @ rot.T
                low = world[int(np.argmin(world[:, 2]))]
            else:  # sphere / capsule end: centre minus the radius straight down
                low = data.geom_xpos[g] - np.array([0.0, 0.0, model.geom_size[g, 0]])
            offsets[h, f] = data.xmat[b].reshape(3, 3).T @ (low - data.xpos[b])
    return bodies, offsets


def black_key_front(rest: KeyRestGeometry) -> float:
    """x (m, world) of the black keys' front edge: white keys are pressed in front of it."""
    return float((rest.center[:, 0] + rest.half_size[:, 0])[rest.is_black].max())


def configure_model(
    model: mujoco.MjModel,
    index: SceneIndex,
    *,
    physics_timestep: float,
    gravity_compensation: bool,
    disable_hand_collisions: bool,
) -> None:
    """Applies the parameter-only options to a freshly loaded model, in place."""
    model.opt.timestep = physics_timestep
    # RoboPianist ties the piano's contact time constant to the physics timestep.
    piano_geoms = index.key_geoms
    model.geom_solref[piano_geoms, 0] = 2 * physics_timestep
    body_names = [
        mujoco.mj_id2name(model, mujoco.mjtObj.mjOBJ_BODY, b) or "" for b in range(model.nbody)
    ]
    hand_body = np.array([n.startswith(("rh_shadow_hand/", "lh_shadow_hand/")) for n in body_names])
    if gravity_compensation:
        model.body_gravcomp[hand_body] = 1.0
    if disable_hand_collisions:
        # Same contype on both hands and no conaffinity: hands cannot touch each other but still
        # touch the piano (contype 0, conaffinity 1), as RoboPianist does.
        colliding = (model.geom_contype != 0) | (model.geom_conaffinity != 0)
        on_hand = hand_body[model.geom_bodyid] & colliding
        model.geom_contype[on_hand] = 1
        model.geom_conaffinity[on_hand] = 0


if (
    __name__ == "__main__"
):  # the build subprocess: python -m pianomime_env.sim.scene PATH REDUCED PRIM
    build_model_file(
        Path(sys.argv[1]),
        reduced_action_space=bool(int(sys.argv[2])),
        primitive_fingertip_collisions=bool(int(sys.argv[3])),
    )
