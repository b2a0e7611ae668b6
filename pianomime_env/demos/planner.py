"""Plan a demonstration from the score: fingering + fingertip and wrist trajectories.

``from_midi(song)`` needs no video and no learning. Steps:

1. **Notes**: each run of consecutive goal steps of a key is one note (the goal trajectory
   already has the one-step gap before a re-struck key).
2. **Hands**: the score's fingering annotation when it has one; otherwise keys below middle C
   go to the left hand, the rest to the right (a hand with more simultaneous notes than free
   fingers hands the extra notes to the other hand).
3. **Fingers**: onset groups are processed in time order; each hand keeps an *anchor* (the y of
   its thumb slot; the other fingers sit at fixed offsets from it). For every candidate anchor
   (the current one, or one that puts some finger of the hand exactly on some note), the notes
   are matched to the fingers that are not holding a key with scipy's ``linear_sum_assignment``
   on |note y - finger slot y| plus a small per-finger preference; the total cost adds the anchor
   move and a penalty when a held key would leave its finger's reach. The cheapest anchor wins.
4. **Trajectories**: a finger on a sounding key sits on the key's press point (white keys in
   front of the black keys, black keys on their front half, z at the key top); a finger whose
   next note starts within ``APPROACH_STEPS`` hovers above that key (it is lifted between repeated
   notes because the goal has a gap step there); other fingers hover at their slot. Hands move to
   the next anchor ``MOVE_LEAD_STEPS`` early. Hovering motion is rate-limited to
   ``MAX_HOVER_SPEED`` m/step so trajectories stay smooth. Key geometry comes from the scene
   model (key geom positions and sizes).
"""

from __future__ import annotations

import os
from dataclasses import dataclass

import mujoco
import numpy as np
from scipy.optimize import linear_sum_assignment

from pianomime_env import scene as scene_lib
from pianomime_env.demos.format import Demonstration
from pianomime_env.songs import NoteTrajectory, Song, load_song

__all__ = ["from_midi", "KeyGeometry", "key_geometry", "plan_fingering", "PLANNER_SOURCE"]

PLANNER_SOURCE = "score:planner-v1"
#: Middle C (MIDI 60) as a key index (A0 = 0): the default hand split.
MIDDLE_C = 39
#: Finger slot offsets along the keyboard from the thumb slot (m), thumb..little (right hand;
#: mirrored for the left). Measured from the IK's piano posture: fingers ~22 mm apart, the thumb
#: ~35 mm below the index finger.
SLOT_OFFSETS = np.array([0.0, 0.035, 0.058, 0.080, 0.102])
#: Per-finger preference cost (m-equivalent): the middle fingers press most reliably in the
#: simulation; the thumb (weak, awkward reach) is used only when it saves a large hand move.
FINGER_COST = np.array([0.05, 0.004, 0.0, 0.004, 0.01])
#: Extra cost of putting the thumb or little finger on a black key.
BLACK_KEY_COST = np.array([0.02, 0.0, 0.0, 0.0, 0.015])
#: Anchor move cost per metre (relative to note-to-slot error, weight 1).
MOVE_COST = 0.25
#: A held key may sit this far (m) from its finger's slot before the anchor is penalized.
HELD_REACH = 0.02
#: A note may be this far (m) from its finger's slot; beyond it the hand cannot take it.
REACH = 0.04
APPROACH_STEPS = 3
MOVE_LEAD_STEPS = 4
HOVER_HEIGHT = 0.012  # above the key top, while approaching a key (m)
SLOT_HEIGHT = 0.02  # above the black keys' top, idle fingers (m)
MAX_HOVER_SPEED = 0.03  # m per control step for fingers not on a key
WHITE_PRESS_X = 0.55  # press point, fraction of the white key's half length in front of centre
BLACK_PRESS_X = 0.5  # same for black keys


@dataclass(frozen=True)
class KeyGeometry:
    """Key geometry read from the scene model (all world frame, m).

    Attributes:
        center: (88, 3) key geom centres (keys up).
        half_size: (88, 3) box half sizes.
        top: (88,) z of each key's top surface.
        is_black: (88,) bool.
        press_point: (88, 3) where a fingertip should press (white keys in front of the black
            keys), at the key top.
        black_top: z of the black keys' top (clearance height for idle fingers).
    """

    center: np.ndarray
    half_size: np.ndarray
    top: np.ndarray
    is_black: np.ndarray
    press_point: np.ndarray
    black_top: float


def key_geometry(model: mujoco.MjModel, index: scene_lib.SceneIndex) -> KeyGeometry:
    """Reads key positions/sizes from ``model`` (with all keys up)."""
    data = mujoco.MjData(model)
    mujoco.mj_kinematics(model, data)
    g = index.key_geoms
    center = data.geom_xpos[g].copy()
    half = model.geom_size[g].copy()
    top = center[:, 2] + half[:, 2]
    is_black = top > np.median(top) + 1e-4  # black keys stand higher than white ones
    press = center.copy()
    press[:, 2] = top
    # The keys point along +x toward the player (keyboard along y).
    frac = np.where(is_black, BLACK_PRESS_X, WHITE_PRESS_X)
    press[:, 0] = center[:, 0] + frac * half[:, 0]
    return KeyGeometry(center, half, top, is_black, press, float(top[is_black].max()))


@dataclass
class _Note:
    key: int
    start: int  # first goal step
    end: int  # one past the last goal step
    hand: int = -1  # 0 right, 1 left
    finger: int = -1  # 0..4 within the hand


def _notes(keys: np.ndarray) -> list[_Note]:
    """Runs of goal steps per key, sorted by start then key."""
    on = np.asarray(keys) > 0.5
    padded = np.zeros((on.shape[0] + 2, on.shape[1]), bool)
    padded[1:-1] = on
    diff = np.diff(padded.astype(np.int8), axis=0)
    notes = []
    for k in range(on.shape[1]):
        starts = np.flatnonzero(diff[:, k] == 1)
        ends = np.flatnonzero(diff[:, k] == -1)
        notes += [_Note(k, int(s), int(e)) for s, e in zip(starts, ends)]
    notes.sort(key=lambda n: (n.start, n.key))
    return notes


def _slot_y(anchor: float, hand: int) -> np.ndarray:
    """(5,) y of each finger slot for a hand anchor (right hand: +y is up the keyboard)."""
    return anchor + (SLOT_OFFSETS if hand == 0 else -SLOT_OFFSETS)


def _assign_group(
    group: list[_Note],
    hand: int,
    anchor: float,
    busy: list[_Note | None],
    t0: int,
    geo: KeyGeometry,
) -> tuple[float, dict[int, int], float] | None:
    """Best (anchor, note idx -> finger, cost) for one hand's onset group, or None if no fit."""
    free = [f for f in range(5) if busy[f] is None or busy[f].end <= t0]
    if len(group) > len(free):
        return None
    ys = np.array([geo.center[n.key, 1] for n in group])
    sign = 1.0 if hand == 0 else -1.0
    candidates = {round(anchor, 5)}
    for y in ys:
        for f in free:
            candidates.add(round(float(y - sign * SLOT_OFFSETS[f]), 5))
    held = [(f, busy[f]) for f in range(5) if busy[f] is not None and busy[f].end > t0]
    black = np.array([geo.is_black[n.key] for n in group])
    best = None
    for a in candidates:
        slots = _slot_y(a, hand)
        cost = np.abs(ys[:, None] - slots[None, free])
        cost = cost + FINGER_COST[free][None, :] + black[:, None] * BLACK_KEY_COST[free][None, :]
        rows, cols = linear_sum_assignment(cost)
        if np.abs(ys[rows] - slots[np.array(free)[cols]]).max() > REACH:
            continue  # some note is out of the hand's reach with this anchor
        total = float(cost[rows, cols].sum()) + MOVE_COST * abs(a - anchor)
        for f, n in held:
            excess = abs(geo.center[n.key, 1] - slots[f]) - HELD_REACH
            total += 10.0 * max(0.0, excess)
        # Keep fingers in keyboard order (no crossings inside a chord).
        fingers = np.array(free)[cols]
        order = np.argsort(ys[rows])
        f_sorted = fingers[order] if hand == 0 else fingers[order][::-1]
        if np.any(np.diff(f_sorted) < 0):
            total += 1.0
        if best is None or total < best[2]:
            best = (a, {int(r): int(free[c]) for r, c in zip(rows, cols)}, total)
    return best


def plan_fingering(
    traj: NoteTrajectory, geo: KeyGeometry, *, use_score_fingering: bool = True
) -> tuple[list[_Note], list[list[tuple[int, float]]]]:
    """Assigns every note a hand and finger.

    Returns:
        notes: the notes with ``hand``/``finger`` set.
        anchors: per hand, a list of (step, anchor y) changes in time order.
    """
    notes = _notes(traj.keys)
    fing = np.asarray(traj.fingering)
    anchors: list[list[tuple[int, float]]] = [[], []]
    # Start anchors: thumbs around middle C (each hand's rest position).
    anchor = [float(geo.center[MIDDLE_C, 1]), float(geo.center[MIDDLE_C - 12, 1])]
    busy: list[list[_Note | None]] = [[None] * 5, [None] * 5]
    i = 0
    while i < len(notes):
        j = i
        while j < len(notes) and notes[j].start == notes[i].start:
            j += 1
        group = notes[i:j]
        t0 = group[0].start
        by_hand: list[list[_Note]] = [[], []]
        for n in group:
            f = int(fing[n.start, n.key]) if use_score_fingering else -1
            taken = f >= 0 and any(
                m is not n and m.finger == f % 5 and m.hand == f // 5 for m in group
            )
            held = f >= 0 and (busy[f // 5][f % 5] is not None) and busy[f // 5][f % 5].end > t0
            if f >= 0 and not taken and not held:
                n.hand, n.finger = f // 5, f % 5
            else:
                by_hand[0 if n.key >= MIDDLE_C else 1].append(n)
        # Score-fingered notes: occupy their fingers, move the anchor to fit them.
        for n in group:
            if n.finger >= 0:
                busy[n.hand][n.finger] = n
                sign = 1.0 if n.hand == 0 else -1.0
                anchor[n.hand] = float(geo.center[n.key, 1] - sign * SLOT_OFFSETS[n.finger])
                anchors[n.hand].append((t0, anchor[n.hand]))
        for h in (0, 1):
            todo = sorted(by_hand[h], key=lambda n: n.key)
            while todo:
                res = _assign_group(todo, h, anchor[h], busy[h], t0, geo)
                if res is not None:
                    break
                # Too many notes for this hand's free fingers: hand the note nearest the other
                # hand over to it (the right hand is planned first; left-hand overflow keeps
                # finger -1 and is fixed up below).
                moved = todo.pop(0) if h == 0 else todo.pop(-1)
                if h == 0:
                    by_hand[1].append(moved)
            if not todo:
                continue
            a, mapping, _ = res
            anchor[h] = a
            anchors[h].append((t0, a))
            for r, f in mapping.items():
                todo[r].hand, todo[r].finger = h, f
                busy[h][f] = todo[r]
        i = j
    # Notes handed over to an exhausted other hand (6+ simultaneous notes) keep finger -1;
    # give them the nearest finger of their hand so every note has one.
    for n in notes:
        if n.finger < 0:
            n.hand = 0 if n.key >= MIDDLE_C else 1
            used = {
                m.finger for m in notes if m.hand == n.hand and m.start < n.end and n.start < m.end
            }
            free = [f for f in (2, 1, 3, 4, 0) if f not in used]
            n.finger = free[0] if free else 2
    return notes, anchors


def _anchor_at(changes: list[tuple[int, float]], t: int, default: float) -> float:
    a = default
    for step, y in changes:
        if step > t:
            break
        a = y
    return a


def _load_traj(
    song: str | os.PathLike | Song | NoteTrajectory, dt: float
) -> tuple[NoteTrajectory, str]:
    if isinstance(song, NoteTrajectory):
        if abs(song.dt - dt) > 1e-9:
            raise ValueError(f"trajectory dt {song.dt} != control_timestep {dt}")
        return song, "trajectory"
    s = song if isinstance(song, Song) else load_song(song)
    return s.to_trajectory(dt=dt), s.name


def from_midi(
    song: str | os.PathLike | Song | NoteTrajectory,
    *,
    control_timestep: float = 0.05,
    env: object | None = None,
    use_score_fingering: bool = True,
) -> Demonstration:
    """Plans a :class:`Demonstration` for ``song`` from its score alone.

    Args:
        song: a song name/path, a ``Song``, or a ``NoteTrajectory`` (used as is; its ``dt`` must
            equal ``control_timestep``).
        control_timestep: seconds per step.
        env: optional env (or wrapper) whose model supplies the key geometry and whose trajectory
            is used when ``song`` is None-like; default loads the scene model.
        use_score_fingering: follow the score's fingering annotations where it has them.

    Returns:
        A demonstration with T = number of control steps of the song.
    """
    if env is not None:
        u = getattr(env, "unwrapped", env)
        model, index = u.model, u.index
    else:
        model = scene_lib.load_model()
        index = scene_lib.SceneIndex.from_model(model)
    traj, name = _load_traj(song, control_timestep)
    geo = key_geometry(model, index)
    notes, anchor_changes = plan_fingering(traj, geo, use_score_fingering=use_score_fingering)

    from pianomime_env.ik import HandIK  # planner-only use of the posture geometry

    ik = HandIK(model, index)
    rest_tips, rest_wrists = ik.forward(ik.posture)
    # Slot x of each finger and the wrist offset from the mean of the four fingers, from the
    # piano posture: demos look like what the hand can comfortably do.
    # Idle fingers stay in front of the black keys so moving sideways never catches one.
    white_x = float(geo.press_point[~geo.is_black, 0].max())
    slot_x = np.maximum(rest_tips[0, :, 0], white_x)
    wrist_off = rest_wrists - rest_tips[:, 1:].mean(axis=1)
    T = len(traj)
    tips = np.zeros((T, 2, 5, 3))
    pressing = np.zeros((T, 2, 5), bool)
    fingering = np.full((T, 88), -1, np.int8)
    idle_z = geo.black_top + SLOT_HEIGHT
    default_anchor = [float(geo.center[MIDDLE_C, 1]), float(geo.center[MIDDLE_C - 12, 1])]
    per_finger: list[list[list[_Note]]] = [[[] for _ in range(5)] for _ in range(2)]
    for n in notes:
        per_finger[n.hand][n.finger].append(n)
    for h in (0, 1):
        anchor_t = np.array(
            [
                _anchor_at(anchor_changes[h], t + MOVE_LEAD_STEPS, default_anchor[h])
                for t in range(T)
            ]
        )
        slots = anchor_t[:, None] + (SLOT_OFFSETS if h == 0 else -SLOT_OFFSETS)[None, :]
        tips[:, h, :, 0] = slot_x[None, :]
        tips[:, h, :, 1] = slots
        tips[:, h, :, 2] = idle_z
        for f in range(5):
            for n in per_finger[h][f]:
                p = geo.press_point[n.key]
                a0 = max(0, n.start - APPROACH_STEPS)
                tips[a0 : n.start, h, f] = p + np.array([0.0, 0.0, HOVER_HEIGHT])
                tips[n.start : n.end, h, f] = p
                pressing[n.start : n.end, h, f] = True
                fingering[n.start : n.end, n.key] = h * 5 + f
    # Rate-limit the motion: a finger holding a key stays on it exactly; everything else
    # (hovering, and the first step of a press) moves at most MAX_HOVER_SPEED per step.
    for t in range(1, T):
        step = tips[t] - tips[t - 1]
        norm = np.linalg.norm(step, axis=-1, keepdims=True)
        scale = np.minimum(1.0, MAX_HOVER_SPEED / np.maximum(norm, 1e-12))
        limited = tips[t - 1] + step * scale
        held = pressing[t] & pressing[t - 1] & (norm[..., 0] < 1e-9)
        tips[t] = np.where(held[..., None], tips[t], limited)
    wrists = tips[:, :, 1:].mean(axis=2) + wrist_off[None]
    wrists[:, :, 2] = rest_wrists[:, 2][None, :]
    return Demonstration(
        fingertips=tips.astype(np.float32),
        wrists=wrists.astype(np.float32),
        fingering=fingering,
        control_timestep=control_timestep,
        song_name=name,
        source=PLANNER_SOURCE,
    )
