"""Plan a demonstration from the score: fingering + fingertip and wrist trajectories.

``from_midi(song)`` needs no video and no learning. Steps:

1. **Notes**: each run of consecutive goal steps of a key is one note (the goal trajectory
   already has the one-step gap before a re-struck key).
2. **Hands**: the score's fingering annotation gives the hand when it has one (its finger only
   with ``follow_score_fingers=True``: thumb-unders and crossings as annotated, measured worse
   here); otherwise a single melody line goes to one hand and chords split at their widest
   pitch gap (else at middle C). A hand with more
   than ``MAX_NOTES_PER_HAND`` simultaneous onsets hands notes to the other hand.
3. **Fingers**: each hand has an *anchor* (the y of its thumb slot; the other fingers sit at
   fixed offsets from it). The anchor sequence over the whole song is chosen by a Viterbi
   search (:func:`_dp_anchors`): per onset group, candidate anchors put some finger exactly on
   some note (plus the previous group's candidates); a group's cost is the note-to-slot
   distance plus per-finger preferences (``FINGER_COST``, ``BLACK_KEY_COST``: the thumb plays
   white keys — five fingers per hand — and no black keys), with held keys kept within reach; a move costs ``MOVE_COST``/m + ``MOVE_FIXED_COST``, more when it
   must happen quickly. Fingers are then matched group by group at those anchors in keyboard
   order (no crossing with held keys when avoidable). **v4** (default): a held key stays held
   through a hand move while it is within ``HOLD_REACH`` of its finger's slot at the new
   position (the IK keeps a finger 3 cm off its slot within 3 mm); one further away is
   released when the move starts, and the move starts as late as the measured jump time
   allows (``JUMP_STEPS``: the sight-reader's forearm PD moves 2 / 10 / 20 / 30 cm in
   1 / 3 / 5 / 6 steps, ``benchmarks/forearm_jump.py``). **v3** (``planner="v3"``): a held
   key further than ``RELEASE_REACH`` from its finger's next slot is released when the hand
   starts moving, ``MOVE_LEAD_STEPS`` before the onset.
4. **Trajectories**: a finger on a sounding key sits on the key's press point, the scene's one
   definition (:func:`pianomime_env.sim.scene.key_press_points`, shared with the video pipeline:
   white keys in front of the black keys, black keys on their front half, z at the key top); a finger whose
   next note starts within ``APPROACH_STEPS`` hovers above that key (it is lifted between repeated
   notes because the goal has a gap step there; in v4 not before its previous note ends);
   other fingers hover at their slot. Hands move to the next anchor at their jump lead (v4:
   from the song's start at their first position) or ``MOVE_LEAD_STEPS`` early (v3).
   Hovering motion is rate-limited to ``MAX_JUMP_SPEED`` (v4) or ``MAX_HOVER_SPEED`` (v3)
   m/step. Key geometry comes from the scene model (key geom positions and sizes).

Plan coverage (the goal key-steps a plan gives a finger) is measured by
:func:`pianomime_env.demos.coverage.plan_coverage` and ``benchmarks/plan_coverage.py``.
"""

from __future__ import annotations

import itertools
import os
from dataclasses import dataclass

import mujoco
import numpy as np

from pianomime_env.demos.format import Demonstration
from pianomime_env.music.songs import NoteTrajectory, Song
from pianomime_env.music.sources import load_song
from pianomime_env.sim import scene as scene_lib

__all__ = [
    "from_midi",
    "KeyGeometry",
    "key_geometry",
    "plan_fingering",
    "PLANNER_SOURCE",
    "PLANNER_VERSIONS",
]

PLANNER_SOURCE = "score:planner-v4"
#: Planner versions ``from_midi(planner=...)`` accepts: v4 (default) keeps a held key through a
#: hand move while it stays within ``HOLD_REACH`` of its finger, moves timed by ``JUMP_STEPS``;
#: v3 releases a held key beyond ``RELEASE_REACH`` ``MOVE_LEAD_STEPS`` before every move.
PLANNER_VERSIONS = ("v4", "v3")
#: Middle C (MIDI 60) as a key index (A0 = 0): the default hand split.
MIDDLE_C = 39
#: Finger slot offsets along the keyboard from the thumb slot (m), thumb..little (right hand;
#: mirrored for the left). From the IK's piano posture: fingers ~22 mm apart, the thumb ~35 mm
#: below the index finger (the posture has ~42 mm; 42 mm measured no better).
SLOT_OFFSETS = np.array([0.0, 0.035, 0.058, 0.080, 0.102])
#: Per-finger preference cost (m-equivalent): the middle fingers press most reliably in the
#: simulation; the thumb costs a little more (it needs the forearm pushed toward the fallboard).
FINGER_COST = np.array([0.05, 0.004, 0.0, 0.004, 0.01])
#: Extra cost of putting the thumb or little finger on a black key. The thumb never pressed a
#: black key in the probes (0 of 10 poses, ``../shared/reference/five-fingers.md``; 0 of 59
#: planned key-steps in play), the little finger only near the black key's front.
BLACK_KEY_COST = np.array([1.0, 0.0, 0.0, 0.0, 0.05])
#: Extra cost of putting a finger on a white key. The thumb *can* press white keys (35 of 45
#: probe poses) with ``forearm_ty`` near its maximum — the axis that slides the hand along the
#: keys toward the fallboard (world -x), not a height — which the sight-reader commands when
#: a thumb plays a white key; so no extra cost (it was 1.0, "thumb never on white keys").
WHITE_KEY_COST = np.array([0.0, 0.0, 0.0, 0.0, 0.0])
#: Extra cost (m-equivalent) of a finger other than the one the score's fingering names.
SCORE_FINGER_COST = 0.3
#: Anchor move cost per metre (relative to note-to-slot error, weight 1), plus a fixed cost
#: per move; moves sooner than ``MOVE_TIME_STEPS`` after the previous onset cost up to 5x.
MOVE_COST = 0.5
MOVE_FIXED_COST = 0.03
MOVE_TIME_STEPS = 6.0
#: Simultaneous onsets a hand takes before handing notes to the other hand.
MAX_NOTES_PER_HAND = 4
#: Cost of an assignment whose fingers cross (in a chord or with held keys).
CROSSING_COST = 1.0
#: Smallest pitch gap (semitones) between the hands' notes for a chord-based split.
SPLIT_MIN_GAP = 5
#: A held key may sit this far (m) from its finger's slot before the anchor is penalized.
HELD_REACH = 0.02
#: A note may be this far (m) from its finger's slot; beyond it the hand cannot take it.
REACH = 0.04
APPROACH_STEPS = 3
MOVE_LEAD_STEPS = 4
#: A held key further than this (m) from its finger's next slot is released for the move.
RELEASE_REACH = 0.02
MIN_PRESS_STEPS = 2  # a note cut short for a hand move keeps at least this many steps
HOVER_HEIGHT = 0.012  # above the key top, while approaching a key (m)
SLOT_HEIGHT = 0.02  # above the black keys' top, idle fingers (m)
MAX_HOVER_SPEED = 0.03  # m per control step for fingers not on a key
#: v4: fastest reliable hand jump, (distance m, control steps) — the sight-reader's forearm
#: PD (``SightReaderConfig.forearm_kp`` 12, ``forearm_kd`` 0.4) settles within 3 mm of a
#: jump of up to this distance in that many steps (``benchmarks/forearm_jump.py``); longer
#: jumps take ``JUMP_STEPS[-1][1] + 1``.
JUMP_STEPS = ((0.02, 1), (0.10, 3), (0.15, 4), (0.25, 5), (0.30, 6))
#: v4: a hand starts a move this many steps before its jump time ahead of the onset.
JUMP_EXTRA_STEPS = 1
#: v4: a held key this far (m) from its finger's slot at the hand's next anchor is kept held
#: (the IK puts a finger 3 cm off its slot within 3 mm, the other fingers within 1 mm).
HOLD_REACH = 0.03
#: v4: hovering fingers move at most this far per step (the hand jumps as fast as it can).
MAX_JUMP_SPEED = 0.1


@dataclass(frozen=True)
class KeyGeometry:
    """Key geometry read from the scene model (all world frame, m).

    Attributes:
        center: (88, 3) key geom centres (keys up).
        half_size: (88, 3) box half sizes.
        top: (88,) z of each key's top surface.
        is_black: (88,) bool.
        press_point: (88, 3) the scene's press point of each key (white keys in front of the
            black keys), at the key top: :func:`pianomime_env.sim.scene.key_press_points`.
        black_top: z of the black keys' top (clearance height for idle fingers).
        finger_press_points: (5, 88, 3) the scene's press points per finger (thumb..little).
        black_front: x of the black keys' front edge.
    """

    center: np.ndarray
    half_size: np.ndarray
    top: np.ndarray
    is_black: np.ndarray
    press_point: np.ndarray
    black_top: float
    finger_press_points: np.ndarray
    black_front: float


def key_geometry(model: mujoco.MjModel, index: scene_lib.SceneIndex) -> KeyGeometry:
    """Key geometry from the model at rest, with the scene's press points."""
    rest = scene_lib.key_rest_geometry(model, index)
    per_finger = scene_lib.key_press_points(rest)
    return KeyGeometry(
        rest.center,
        rest.half_size,
        rest.top,
        rest.is_black,
        per_finger[2],
        float(rest.top[rest.is_black].max()),
        per_finger,
        scene_lib.black_key_front(rest),
    )


@dataclass
class _Note:
    key: int
    start: int  # first goal step
    end: int  # one past the last goal step
    hand: int = -1  # 0 right, 1 left
    finger: int = -1  # 0..4 within the hand
    want: int = -1  # the score's finger (0..4 within the hand), -1 when not annotated


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
    candidates: list[float] | None = None,
) -> tuple[float, dict[int, int], float] | None:
    """Best (anchor, note idx -> finger, cost) for one hand's onset group, or None if no fit.

    For each candidate anchor, every way of giving the notes free fingers in keyboard order is
    tried (crossing a held key's finger costs ``CROSSING_COST``); if none is in reach, the
    cheapest crossing assignment (``linear_sum_assignment``) plus ``CROSSING_COST``.
    """
    free = [f for f in range(5) if busy[f] is None or busy[f].end <= t0]
    if len(group) > len(free):
        return None
    ys = np.array([geo.center[n.key, 1] for n in group])
    sign = 1.0 if hand == 0 else -1.0
    if candidates is None:
        candidates = {round(anchor, 5)}
        for y in ys:
            for f in free:
                candidates.add(round(float(y - sign * SLOT_OFFSETS[f]), 5))
    held = [(f, busy[f]) for f in range(5) if busy[f] is not None and busy[f].end > t0]
    held_f = [f for f, _ in held]
    held_y = [float(geo.center[n.key, 1]) for _, n in held]
    black = np.array([geo.is_black[n.key] for n in group])
    want = np.array([n.want for n in group])
    order = np.argsort(ys * sign)  # notes from the thumb side outward
    best = None
    for a in candidates:
        slots = _slot_y(a, hand)
        cost = _note_cost(ys, black, slots, range(5), want)
        dist = np.abs(ys[:, None] - slots[None, :])
        options = []
        for combo in itertools.combinations(free, len(group)):
            fingers = np.empty(len(group), int)
            fingers[order] = combo
            if dist[np.arange(len(group)), fingers].max() > REACH:
                continue
            total = float(cost[np.arange(len(group)), fingers].sum())
            if _crossed(np.array(list(ys) + held_y), np.array(list(fingers) + held_f), hand):
                total += CROSSING_COST
            options.append((total, fingers))
        if not options:
            rows, cols = _assignment()(np.where(dist[:, free] > REACH, 1e3, cost[:, free]))
            if dist[rows, np.array(free)[cols]].max() > REACH:
                continue  # some note is out of the hand's reach with this anchor
            fingers = np.array(free)[cols]
            options.append((float(cost[rows, fingers].sum()) + CROSSING_COST, fingers))
        total, fingers = min(options, key=lambda o: o[0])
        total += MOVE_COST * abs(a - anchor)
        for f, n in held:
            excess = abs(geo.center[n.key, 1] - slots[f]) - HELD_REACH
            total += 10.0 * max(0.0, excess)
        if best is None or total < best[2]:
            best = (a, {i: int(f) for i, f in enumerate(fingers)}, total)
    return best


def _note_cost(
    ys: np.ndarray, black: np.ndarray, slots: np.ndarray, fingers, want: np.ndarray | None = None
) -> np.ndarray:
    """(notes, fingers) cost of playing each note with each finger of a hand at ``slots``;
    ``want`` (notes,) is the score's finger per note (-1: none), others cost
    ``SCORE_FINGER_COST`` more."""
    f = np.asarray(fingers)
    cost = (
        np.abs(ys[:, None] - slots[None, f])
        + FINGER_COST[f][None, :]
        + black[:, None] * BLACK_KEY_COST[f][None, :]
        + ~black[:, None] * WHITE_KEY_COST[f][None, :]
    )
    if want is not None:
        w = np.asarray(want)[:, None]
        cost = cost + SCORE_FINGER_COST * ((w >= 0) & (w != f[None, :]))
    return cost


def _group_cost(
    ys: np.ndarray,
    black: np.ndarray,
    held_ys: np.ndarray,
    hand: int,
    anchor: float,
    want: np.ndarray | None = None,
) -> float:
    """Cost of one onset group (new notes ``ys`` + still-sounding ``held_ys``) at ``anchor``."""
    slots = _slot_y(anchor, hand)
    cost = _note_cost(ys, black, slots, range(5), want)
    too_far = np.abs(ys[:, None] - slots[None, :]) > REACH
    cost = np.where(too_far, 1e3, cost)
    if len(held_ys):
        held = 10.0 * np.maximum(0.0, np.abs(held_ys[:, None] - slots[None, :]) - HELD_REACH)
        cost = np.concatenate([cost, held], axis=0)
    if cost.shape[0] > 5:
        return 1e3 * cost.shape[0]
    rows, cols = _assignment()(cost)
    total = float(cost[rows, cols].sum())
    all_y = np.concatenate([ys, held_ys])
    if _crossed(all_y[rows], cols, hand):
        total += CROSSING_COST
    return total


def _crossed(ys: np.ndarray, fingers: np.ndarray, hand: int) -> bool:
    """Whether fingers (0..4) placed on keys at ``ys`` cross each other."""
    order = np.argsort(ys)
    f_sorted = np.asarray(fingers)[order]
    if hand == 1:
        f_sorted = f_sorted[::-1]
    return bool(np.any(np.diff(f_sorted) < 0))


def _dp_anchors(
    groups: list[list[_Note]],
    hand_notes: list[_Note],
    hand: int,
    start: float,
    geo: KeyGeometry,
) -> list[float]:
    """Anchor per onset group minimizing note-to-slot costs + hand moves over the whole song.

    Viterbi over candidate anchors (those putting some finger exactly on a note of the group,
    plus the previous group's candidates so the hand can stay put). A move costs
    ``MOVE_COST`` per metre plus ``MOVE_FIXED_COST``, more when the time since the previous
    onset is shorter than the forearm needs (``MOVE_TIME_STEPS``).
    """
    sign = 1.0 if hand == 0 else -1.0
    prev_a = np.array([start])
    prev_c = np.array([0.0])
    prev_t = -(10**6)
    back: list[tuple[np.ndarray, np.ndarray]] = []
    for g in groups:
        t0 = g[0].start
        ys = np.array([geo.center[n.key, 1] for n in g])
        black = np.array([bool(geo.is_black[n.key]) for n in g])
        want = np.array([n.want for n in g])
        held_ys = np.array(
            [geo.center[n.key, 1] for n in hand_notes if n.start < t0 < n.end], dtype=float
        )
        cands = {round(float(y - sign * o), 4) for y in ys for o in SLOT_OFFSETS}
        cands |= {round(float(a), 4) for a in prev_a}
        a = np.array(sorted(cands))
        gc = np.array([_group_cost(ys, black, held_ys, hand, x, want) for x in a])
        keep = gc < 1e3
        if keep.any():
            a, gc = a[keep], gc[keep]
        urgency = max(0.0, 1.0 - (t0 - prev_t) / MOVE_TIME_STEPS)
        dist = np.abs(a[:, None] - prev_a[None, :])
        move = (MOVE_COST * dist + MOVE_FIXED_COST * (dist > 0.003)) * (1.0 + 4.0 * urgency)
        total = prev_c[None, :] + move
        arg = np.argmin(total, axis=1)
        prev_c = total[np.arange(len(a)), arg] + gc
        back.append((a, arg))
        prev_a, prev_t = a, t0
    path: list[float] = []
    i = int(np.argmin(prev_c))
    for a, arg in reversed(back):
        path.append(float(a[i]))
        i = int(arg[i])
    return path[::-1]


def _hand_split(notes: list[_Note], n_steps: int) -> np.ndarray:
    """(T,) lowest key of the right hand at each step (notes without score fingering).

    A single melody line goes to one hand (the right, unless it lies mostly below middle C);
    otherwise each onset splits the sounding notes at their widest pitch gap (when it is at
    least ``SPLIT_MIN_GAP`` semitones, else at middle C).
    """
    split = np.full(max(n_steps, 1), MIDDLE_C)
    if not notes:
        return split
    counts = np.zeros(max(n_steps, 1), int)
    for n in notes:
        counts[n.start : n.end] += 1
    if counts.max() <= 1:
        mean = float(np.mean([n.key for n in notes]))
        split[:] = 0 if mean >= MIDDLE_C - 7 else 88
        return split
    for t in sorted({n.start for n in notes}):
        sounding = sorted({n.key for n in notes if n.start <= t < n.end})
        if len(sounding) < 2:
            split[t:] = split[t - 1] if t > 0 else MIDDLE_C
            continue
        gaps = np.diff(sounding)
        i = int(np.argmax(gaps))
        split[t:] = sounding[i + 1] if gaps[i] >= SPLIT_MIN_GAP else MIDDLE_C
    return split


def plan_fingering(
    traj: NoteTrajectory,
    geo: KeyGeometry,
    *,
    use_score_fingering: bool = True,
    follow_score_fingers: bool = False,
) -> tuple[list[_Note], list[list[tuple[int, float]]]]:
    """Assigns every note a hand and finger.

    Hands come from the score's fingering annotation where it has one (its finger too with
    ``follow_score_fingers``), otherwise from the melody/chord split;
    a hand with more than ``MAX_NOTES_PER_HAND`` simultaneous onsets hands notes to the other.
    Each hand's anchor sequence is then optimized over the whole song (:func:`_dp_anchors`), and
    fingers are matched to notes group by group at those anchors.

    Returns:
        notes: the notes with ``hand``/``finger`` set.
        anchors: per hand, a list of (step, anchor y) changes in time order.
    """
    notes = _notes(traj.keys)
    fing = np.asarray(traj.fingering)
    split = _hand_split(notes, traj.keys.shape[0])
    for n in notes:
        f = int(fing[n.start, n.key]) if use_score_fingering else -1
        n.hand = f // 5 if f >= 0 else (0 if n.key >= split[n.start] else 1)
        n.want = f % 5 if f >= 0 and follow_score_fingers else -1
    # Balance crowded onsets between the hands.
    i = 0
    while i < len(notes):
        j = i
        while j < len(notes) and notes[j].start == notes[i].start:
            j += 1
        group = sorted(notes[i:j], key=lambda n: n.key)
        for _ in range(len(group)):
            right = [n for n in group if n.hand == 0]
            left = [n for n in group if n.hand == 1]
            if len(right) > MAX_NOTES_PER_HAND and len(left) < len(right) - 1:
                right[0].hand, right[0].want = 1, -1
            elif len(left) > MAX_NOTES_PER_HAND and len(right) < len(left) - 1:
                left[-1].hand, left[-1].want = 0, -1
            else:
                break
        i = j
    anchors = _plan_hands(notes, geo)
    return notes, anchors


def _plan_hands(notes: list[_Note], geo: KeyGeometry) -> list[list[tuple[int, float]]]:
    """Per hand: the anchor search over the whole song, then fingers matched group by group
    (sets ``finger`` on ``notes`` in place). Returns the (step, anchor) changes per hand."""
    anchors: list[list[tuple[int, float]]] = [[], []]
    # Start anchors: thumbs around middle C (each hand's rest position).
    default = [float(geo.center[MIDDLE_C, 1]), float(geo.center[MIDDLE_C - 12, 1])]
    for h in (0, 1):
        hand_notes = [n for n in notes if n.hand == h]
        groups: list[list[_Note]] = []
        for n in hand_notes:
            if groups and groups[-1][0].start == n.start:
                groups[-1].append(n)
            else:
                groups.append([n])
        if not groups:
            continue
        path = _dp_anchors(groups, hand_notes, h, default[h], geo)
        anchor = default[h]
        busy: list[_Note | None] = [None] * 5
        for g, a_dp in zip(groups, path):
            t0 = g[0].start
            todo = sorted(g, key=lambda n: n.key)
            res = _assign_group(todo, h, anchor, busy, t0, geo, candidates=[a_dp])
            if res is not None and res[2] >= CROSSING_COST:
                # The planned anchor crosses fingers with a held key: any better anchor?
                alt = _assign_group(todo, h, anchor, busy, t0, geo)
                if alt is not None and alt[2] < res[2] - 0.5 * CROSSING_COST:
                    res = alt
            while res is None and todo:
                res = _assign_group(todo, h, anchor, busy, t0, geo)
                if res is None:
                    todo.pop(0 if h == 0 else -1).finger = -1
            if res is None:
                continue
            a, mapping, _ = res
            anchor = a
            anchors[h].append((t0, a))
            for r, f in mapping.items():
                todo[r].finger = f
                busy[f] = todo[r]
    # Notes no finger was free for keep finger -1; give them the nearest free finger.
    for n in notes:
        if n.finger < 0:
            used = {
                m.finger for m in notes if m.hand == n.hand and m.start < n.end and n.start < m.end
            }
            free = [f for f in (2, 1, 3, 4, 0) if f not in used]
            n.finger = free[0] if free else 2
    return anchors


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
    follow_score_fingers: bool = False,
    release_reach: float | None = None,
    planner: str = "v4",
) -> Demonstration:
    """Plans a :class:`Demonstration` for ``song`` from its score alone.

    Args:
        song: a song name/path, a ``Song``, or a ``NoteTrajectory`` (used as is; its ``dt`` must
            equal ``control_timestep``).
        control_timestep: seconds per step.
        env: optional env (or wrapper) whose model supplies the key geometry and whose trajectory
            is used when ``song`` is None-like; default loads the scene model.
        use_score_fingering: take each note's hand from the score's fingering annotation
            where it has one.
        follow_score_fingers: also prefer the annotated finger (``SCORE_FINGER_COST`` for any
            other), thumb-unders and crossings included. Off by default: measured worse in
            this simulation (built-in songs F1 0.80 -> 0.76, docs/sightreader.md).
        release_reach: a held key further than this (m) from its finger's slot after a hand
            move is released when the move starts; default ``HOLD_REACH`` (v4) or
            ``RELEASE_REACH`` (v3). Larger values hold more notes through moves (and hold
            the hand back).
        planner: ``"v4"`` (default: hand moves start at the measured jump time before the
            onset, held keys kept within ``HOLD_REACH``) or ``"v3"`` (the previous plan:
            moves ``MOVE_LEAD_STEPS`` early, held keys released beyond ``RELEASE_REACH``;
            played with ``SightReaderConfig(forearm_kp=None)``).

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
    notes, anchor_changes = plan_fingering(
        traj,
        geo,
        use_score_fingering=use_score_fingering,
        follow_score_fingers=follow_score_fingers and use_score_fingering,
    )

    from pianomime_env.sim.ik import HandIK  # planner-only use of the posture geometry

    ik = HandIK(model, index)
    rest_tips, rest_wrists = ik.forward(ik.posture)
    if planner not in PLANNER_VERSIONS:
        raise ValueError(f"planner must be one of {PLANNER_VERSIONS}, got {planner!r}")
    if release_reach is not None and not float(release_reach) > 0.0:
        raise ValueError(f"release_reach must be > 0 (m), got {release_reach!r}")
    if planner == "v3":
        reach = RELEASE_REACH if release_reach is None else float(release_reach)
        per_finger = _release_for_moves(notes, anchor_changes, geo, reach)
    else:
        reach = HOLD_REACH if release_reach is None else float(release_reach)
        per_finger = _hold_through_moves(notes, anchor_changes, geo, reach)
    tips, pressing, fingering = _fingertip_trajectories(
        per_finger, anchor_changes, geo, rest_tips, len(traj), hold=planner == "v4"
    )
    _rate_limit(tips, pressing, MAX_JUMP_SPEED if planner == "v4" else MAX_HOVER_SPEED)
    # The wrist follows the mean of the four fingers at the piano posture's offset.
    wrists = tips[:, :, 1:].mean(axis=2) + (rest_wrists - rest_tips[:, 1:].mean(axis=1))[None]
    wrists[:, :, 2] = rest_wrists[:, 2][None, :]
    return Demonstration(
        fingertips=tips.astype(np.float32),
        wrists=wrists.astype(np.float32),
        fingering=fingering,
        control_timestep=control_timestep,
        song_name=name,
        source=PLANNER_SOURCE if planner == "v4" else "score:planner-v3",
    )


def _hold_through_moves(
    notes: list[_Note],
    anchor_changes: list[list[tuple[int, float]]],
    geo: KeyGeometry,
    reach: float = HOLD_REACH,
) -> list[list[list[_Note]]]:
    """The notes per hand and finger (v4): a held key is released early only when a hand move
    takes it further than ``reach`` (``HOLD_REACH``) from its finger's slot, at the move's
    start (its jump lead before the onset: the latest step that lands the onset on time). A
    finger given a note that starts before its previous one ends (a chord with no free finger)
    takes the new one: the previous is cut a step before."""
    default = [float(geo.center[MIDDLE_C, 1]), float(geo.center[MIDDLE_C - 12, 1])]
    starts = [_move_starts(anchor_changes[h], default[h]) for h in (0, 1)]
    cut = []
    for n in notes:
        sign = 1.0 if n.hand == 0 else -1.0
        y = geo.center[n.key, 1]
        for move, a in starts[n.hand]:
            if move >= n.end:
                break
            if move > n.start and abs(y - (a + sign * SLOT_OFFSETS[n.finger])) > reach:
                n = _Note(n.key, n.start, max(n.start + MIN_PRESS_STEPS, move), n.hand, n.finger)
                break
        cut.append(n)
    per_finger: list[list[list[_Note]]] = [[[] for _ in range(5)] for _ in range(2)]
    for n in sorted(cut, key=lambda m: (m.start, m.key)):
        lst = per_finger[n.hand][n.finger]
        if lst and lst[-1].end > n.start:
            p = lst[-1]
            lst[-1] = _Note(p.key, p.start, max(p.start + 1, n.start - 1), p.hand, p.finger)
        lst.append(n)
    return per_finger


def _release_for_moves(
    notes: list[_Note],
    anchor_changes: list[list[tuple[int, float]]],
    geo: KeyGeometry,
    release_reach: float,
) -> list[list[list[_Note]]]:
    """The notes per hand and finger, each held key that the hand must leave for its next
    position released when the hand starts moving (the forearm needs ~5 steps; holding would
    drag it back)."""
    per_finger: list[list[list[_Note]]] = [[[] for _ in range(5)] for _ in range(2)]
    for n in notes:
        sign = 1.0 if n.hand == 0 else -1.0
        y = geo.center[n.key, 1]
        for step, a in anchor_changes[n.hand]:
            move = step - MOVE_LEAD_STEPS
            if move >= n.end:
                break
            if move > n.start and abs(y - (a + sign * SLOT_OFFSETS[n.finger])) > release_reach:
                n = _Note(n.key, n.start, max(n.start + MIN_PRESS_STEPS, move), n.hand, n.finger)
                break
        per_finger[n.hand][n.finger].append(n)
    return per_finger


def _fingertip_trajectories(
    per_finger: list[list[list[_Note]]],
    anchor_changes: list[list[tuple[int, float]]],
    geo: KeyGeometry,
    rest_tips: np.ndarray,
    n_steps: int,
    hold: bool = False,
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Fingertip targets (T, 2, 5, 3) m, pressing flags (T, 2, 5) and fingering (T, 88): idle
    fingers in their slots around the hand's anchor, above the black keys; a finger on a note
    hovers above its press point for ``APPROACH_STEPS`` and sits on it while the note sounds.
    With ``hold`` (v4) the approach never starts before the finger's previous note ends."""
    # Slot x of each finger from the piano posture: demos look like what the hand can
    # comfortably do. Idle fingers stay in front of the black keys so moving sideways never
    # catches one.
    white_x = float(geo.press_point[~geo.is_black, 0].max())
    slot_x = np.maximum(rest_tips[0, :, 0], white_x)
    tips = np.zeros((n_steps, 2, 5, 3))
    pressing = np.zeros((n_steps, 2, 5), bool)
    fingering = np.full((n_steps, 88), -1, np.int8)
    idle_z = geo.black_top + SLOT_HEIGHT
    default_anchor = [float(geo.center[MIDDLE_C, 1]), float(geo.center[MIDDLE_C - 12, 1])]
    for h in (0, 1):
        if hold:
            anchor_t = _anchor_steps(anchor_changes[h], default_anchor[h], n_steps)
        else:
            anchor_t = np.array(
                [
                    _anchor_at(anchor_changes[h], t + MOVE_LEAD_STEPS, default_anchor[h])
                    for t in range(n_steps)
                ]
            )
        slots = anchor_t[:, None] + (SLOT_OFFSETS if h == 0 else -SLOT_OFFSETS)[None, :]
        tips[:, h, :, 0] = slot_x[None, :]
        tips[:, h, :, 1] = slots
        tips[:, h, :, 2] = idle_z
        for f in range(5):
            prev_end = 0
            for n in per_finger[h][f]:
                p = geo.finger_press_points[n.finger, n.key]
                a0 = max(0, n.start - APPROACH_STEPS)
                if hold:
                    a0 = max(a0, min(prev_end, n.start))
                prev_end = n.end
                tips[a0 : n.start, h, f] = p + np.array([0.0, 0.0, HOVER_HEIGHT])
                tips[n.start : n.end, h, f] = p
                pressing[n.start : n.end, h, f] = True
                fingering[n.start : n.end, n.key] = h * 5 + f
    return tips, pressing, fingering


def _jump_lead(distance: float) -> int:
    """v4: steps before an onset that a hand moving ``distance`` (m) starts its move."""
    for d, n in JUMP_STEPS:
        if distance <= d:
            return n + JUMP_EXTRA_STEPS
    return JUMP_STEPS[-1][1] + 1 + JUMP_EXTRA_STEPS


def _move_starts(changes: list[tuple[int, float]], default: float) -> list[tuple[int, float]]:
    """v4: (step the hand starts moving, anchor) per anchor change: ``_jump_lead`` of the
    move's distance before the onset."""
    out, a = [], default
    for step, y in changes:
        out.append((step - (_jump_lead(abs(y - a)) if abs(y - a) > 1e-6 else 0), y))
        a = y
    return out


def _anchor_steps(changes: list[tuple[int, float]], default: float, n_steps: int) -> np.ndarray:
    """v4: (T,) the hand's anchor target per step (each move starting at its jump lead; a
    hand goes to its first position from the start, out of the other hand's way)."""
    anchor = np.full(n_steps, changes[0][1] if changes else default)
    for start, y in _move_starts(changes, default):
        anchor[max(start, 0) :] = y
    return anchor


def _rate_limit(tips: np.ndarray, pressing: np.ndarray, speed: float = MAX_HOVER_SPEED) -> None:
    """In place: a finger holding a key stays on it exactly; everything else (hovering, and
    the first step of a press) moves at most ``speed`` (``MAX_HOVER_SPEED``) per step."""
    for t in range(1, len(tips)):
        step = tips[t] - tips[t - 1]
        norm = np.linalg.norm(step, axis=-1, keepdims=True)
        scale = np.minimum(1.0, speed / np.maximum(norm, 1e-12))
        limited = tips[t - 1] + step * scale
        held = pressing[t] & pressing[t - 1] & (norm[..., 0] < 1e-9)
        tips[t] = np.where(held[..., None], tips[t], limited)


def _assignment():
    # scipy.optimize takes ~0.5 s to import; load it when the first plan is made, not with the package.
    from scipy.optimize import linear_sum_assignment

    return linear_sum_assignment
