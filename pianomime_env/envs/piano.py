"""``PianoMimeEnv``: two Shadow Hands play a song on an 88-key piano (a native Gymnasium env).

## Description
Two 24-DoF Shadow Hands, each on a forearm that slides along the keyboard (``forearm_tx``) and
along the keys, toward the fallboard (``forearm_ty``), sit over a full-size 88-key piano (RoboPianist's models, MuJoCo). The
task is to press the song's keys at the right times and use the sustain pedal as the score says.
The song is a piano roll at the control rate (20 Hz by default); one episode plays it once.

## Action space
``Box(low, high, (45,), float32)`` — absolute joint position targets, then the sustain pedal.
With ``reduced_action_space=True`` the thumb's THJ5 and THJ1 and the little finger's LFJ5 are
removed from both hands: 39 entries. With ``normalized_actions=True`` the space is
``Box(-1, 1)`` and is mapped linearly onto ``[low, high]``. Values outside the bounds are clipped;
NaN or inf raises ``ValueError``.

| index (full) | entry | unit | range |
|---|---|---|---|
| 0–1 | right wrist WRJ2, WRJ1 | rad | [−0.52, 0.17], [−0.70, 0.49] |
| 2–6 | right thumb THJ5, THJ4, THJ3, THJ2, THJ1 | rad | joint ranges |
| 7–9 | right index FFJ4, FFJ3, FFJ0 (= J1 + J2, a tendon) | rad | [−0.35, 0.35], [−0.26, 1.57], [0, 3.14] |
| 10–12 | right middle MFJ4, MFJ3, MFJ0 | rad | as index |
| 13–15 | right ring RFJ4, RFJ3, RFJ0 | rad | as index |
| 16–19 | right little LFJ5, LFJ4, LFJ3, LFJ0 | rad | joint ranges |
| 20 | right forearm_tx (along the keyboard) | m | [−0.76, 0.46] |
| 21 | right forearm_ty (along the keys, toward the fallboard: world −x; **not** height) | m | [0, 0.06] |
| 22–43 | left hand, same order | | forearm_tx [−0.46, 0.76] |
| 44 | sustain pedal | – | [0, 1] (pressed when ≥ 0.5) |

``env.unwrapped.action_names`` lists the actuator names in order. The hands have no height joint:
the wrist stays at z ≈ 0.12 m and pressing depth comes from the wrist and finger joints; larger
``forearm_ty`` moves the hand deeper over the keys (0.06 moves the wrist 6 cm toward the fallboard),
which is what lets the thumb press white keys.

## Observation space
A ``Dict`` whose keys come in this fixed order (flattening follows it); ``flatten=True`` gives one
``Box(-inf, inf, (D,), float32)`` vector, the concatenation in the same order. All float32.

| key | shape | content |
|---|---|---|
| ``goal`` | (L+1, 89) | rows t..t+L of the song: 88 keys (1 = should be down) + sustain; zero past the end |
| ``piano_state`` | (88,) | key positions normalized to [0, 1] (1 = bottom) |
| ``sustain_state`` | (1,) | the last commanded sustain value |
| ``hand_joints`` | (2J,) | joint positions, right hand then left (J = 26, or 23 reduced); order in ``joint_names`` |
| ``fingertips`` | (30,) | fingertip positions (m, world frame): right hand thumb..little xyz, then left |
| ``hand_velocities`` | (2J,) | joint velocities (only with ``joint_velocities=True``) |

L = ``n_steps_lookahead`` (default 10). D = 89(L+1) + 88 + 1 + 2J + 30 (+ 2J) = 1150 by default.

## Rewards
A weighted sum of named terms (``reward_terms={name: weight}``; see :mod:`pianomime_env.rewards`
for formulas and for writing your own). Default: ``key_press`` (range [0, 1]), ``sustain`` ([0, 1]),
``energy`` (≤ 0, −5e-3·Σ|force||velocity|) and ``forearm_collision`` (0.5 when the forearms do not
touch), each with weight 1. Every step's ``info`` carries ``info["reward/<name>"]`` (unweighted).

## Starting state
All joints at zero (hands open above the keys), keys up. With ``randomize_hand_positions=True``
both hands are shifted together along the keyboard by U(−0.05, 0.05) m drawn from the reset seed.
``reset(options={"start_step": k, "hand_qpos": q})`` starts mid-song at goal row ``k`` with the
hands at joint positions ``q`` (2, J) — reference state initialization; the episode's metrics then
cover the steps played from ``k``. ``reset(options={"start_step": k, "physics_state":
other.physics_state()})`` continues another env's simulation from its step ``k`` (a look-ahead
copy: ``pickle.loads(pickle.dumps(env))`` builds an env with the same arguments).

## Episode end
After the song's last control step (T = the song's length in steps, including
``initial_buffer_time``) the episode ends, reported by ``song_end``:

- ``"terminate"`` (default): ``terminated=True``. **Use this for value-bootstrapping learners**
  (PPO, SAC/DroQ): the song's end is a true end of the task — no reward follows it, and the
  goal's lookahead rows (zero past the end) tell the policy it is coming, so the value of the
  last state is 0 and bootstrapping past it would credit steps that do not exist.
- ``"truncate"``: ``truncated=True``, ``terminated=False``: RoboPianist's semantics (its dm_env
  keeps discount 1 at the song's end; Shimmy maps that to ``truncated``). A learner then
  bootstraps from the final observation, as RoboPianist's DroQ did; use it to reproduce their
  training exactly. (A segment of a song started with ``start_step`` is truncated in this sense
  too if you cut it yourself with a time limit.)

With ``wrong_press_termination=True`` the episode also ends, ``terminated=True``, at the first
step where a key that should be up is pressed. At the final step ``info["metrics"]`` holds the episode's musical metrics (:func:`pianomime_env.music.metrics.evaluate`):
RoboPianist's per-step ``precision``/``recall``/``f1`` and ``sustain_*``, and the note-onset
``note_precision``/``note_recall``/``note_f1``.

## Step info
Every step: ``reward/<term>`` (unweighted term values), ``wrong_press`` (a key that should be up
is down), ``physics_unstable`` (MuJoCo detected NaN/inf/huge accelerations in this step —
``mjWARN_BADQACC`` — and reset the physics state; a :class:`PhysicsInstabilityWarning` is also
issued, in every physics mode, so no one trains on a silently reset episode); at the end
``metrics``.

## Controller API
What a controller or wrapper (the sight-reader, ``ResidualIK``, a learned policy's wrapper) may
use; nothing outside this module reads the env's underscore attributes.

| member | what |
|---|---|
| ``action_low``, ``action_high`` | (A,) float64 bounds of the *absolute* action (joint targets, then sustain), read-only |
| ``normalized_actions`` | whether ``step`` takes ``Box(-1, 1)`` actions |
| ``action_from_normalized(a)``, ``action_to_normalized(a)`` | the linear map between ``[-1, 1]`` and ``[low, high]``, both ways |
| ``to_env_action(absolute)`` | an absolute action as this env's ``step`` expects it (normalized or not), float32 |
| ``key_activation``, ``key_state`` | (88,) keys pressed now (bool), key positions in [0, 1] |
| ``played_keys``, ``played_sustain``, ``sustain_activation``, ``fingertip_positions`` | (t, 88) key presses and (t,) pedal so far, pedal down now, (2, 5, 3) fingertips (m) |
| ``t``, ``n_steps``, ``control_timestep``, ``physics_timestep``, ``n_substeps`` | time |
| ``song``, ``trajectory``, ``demo``, ``episode_context`` | the score, its goal per step, the demonstration, what reward terms got at reset |
| ``reward_terms``, ``observation_keys``, ``joint_names``, ``action_names`` | layouts |
| ``model``, ``data``, ``index`` | the MuJoCo model and state and the scene's index arrays: **read only** (the env owns the simulation state) |

## Fast physics
``fast_physics=True`` simulates with a physics timestep of ``FAST_PHYSICS_TIMESTEP`` = 0.01 s
(5 substeps per control step instead of 10): ``env.step`` is 1.6x faster (2.95x RoboPianist in
``pianomime bench``). Chosen by measurement on the built-in songs and seven held-out chorales /
folk tunes: the sight-reader's mean F1 is unchanged (0.675 vs 0.669), 10 of 15 songs are within
±0.02 and the other five within ±0.040, the size of closed-loop playing's own noise (a 1 mrad
change of the start pose moves a song by up to 0.039); no instability. The table is in
``docs/benchmarks.md`` ("Fast physics"). An explicit ``physics_timestep`` overrides it. RP1M's
2-iteration solver is *not* used: it makes this model unstable.

## Arguments
See :class:`PianoMimeEnv`.

## Version history
- v0: first release (reset options ``start_step``/``hand_qpos`` included). Later additions,
  all off by default or backward compatible: ``song_end``, ``fast_physics``, the
  ``physics_unstable`` info key, ``physics_state()`` and the ``physics_state`` reset option, and ``trim_silence`` keeping every note of multi-track files
  (``trim_silence="robopianist"`` for RoboPianist's file-order cut). Physics and observation semantics follow RoboPianist 1.0.10's
  ``PianoWithShadowHands`` (same model, same substep order), with the goal's rows past the song's
  end set to zero and song end reported as ``terminated``.
"""

from __future__ import annotations

import os
import warnings
from collections.abc import Mapping
from typing import Any

import gymnasium as gym
import mujoco
import numpy as np
from gymnasium import spaces
from gymnasium.utils import EzPickle

from pianomime_env import rewards as rewards_lib
from pianomime_env.music import metrics as metrics_lib
from pianomime_env.music.songs import NoteTrajectory, Song
from pianomime_env.music.sources import load_song
from pianomime_env.sim import scene as scene_lib

_SUSTAIN_THRESHOLD = 0.5
_HAND_POSITION_OFFSET = 0.05

#: RoboPianist's physics timestep (s): 10 substeps per 20 Hz control step.
DEFAULT_PHYSICS_TIMESTEP = 0.005
#: The physics timestep of ``fast_physics=True`` (s), chosen by measurement: see
#: ``docs/benchmarks.md`` ("Fast physics").
FAST_PHYSICS_TIMESTEP = 0.01
#: ``song_end`` values: how the last step of the song is reported.
SONG_END_MODES = ("terminate", "truncate")


class PhysicsInstabilityWarning(RuntimeWarning):
    """MuJoCo found NaN/inf/huge accelerations and reset the simulation state mid-episode."""


_BADQACC = int(mujoco.mjtWarning.mjWARN_BADQACC)
_PHYSICS_STATE = int(mujoco.mjtState.mjSTATE_INTEGRATION)


class PianoMimeEnv(gym.Env, EzPickle):
    """Bimanual Shadow Hand piano playing. The module docstring is the full reference.

    Args:
        song: a built-in or registered song name, a MIDI file path, a ``Song``, or
            ``"music21:<corpus path>"``.
        midi: alias of ``song`` for a MIDI file path (``gym.make("PianoMime-v0", midi=...)``).
        n_steps_lookahead: L, goal rows beyond the current one in the observation (default 10).
        trim_silence: drop leading/trailing silence of the song. ``True`` (= ``"all_notes"``)
            cuts at the earliest onset and latest offset of the whole song, keeping every note;
            ``"robopianist"`` reproduces RoboPianist's cut (first/last note *in file order*,
            which can drop the closing notes of a multi-track file); ``False`` (default, as
            RoboPianist's env) keeps the song as is. ``pianomime play``, ``baselines/`` and
            every figure in the docs use ``trim_silence=True``: Twinkle Twinkle (Rousseau) is
            451 steps as is and 158 trimmed, and silent steps change per-step F1, so pass
            ``trim_silence=True`` to reproduce the docs' numbers in your own loop.
        initial_buffer_time: seconds of silence added before the first note (after
            ``trim_silence``): a lead-in for the hands to reach the first notes from their rest
            pose. With ``trim_silence=True`` and 0 the first note sounds at step 0; 1.0 lifts
            the sight-reader's F1 on Twinkle's own steps from 0.884 to 0.909
            (``benchmarks/lead_in.py``). Per-step F1 scores a silent step with nothing pressed
            1.0, so the episode's F1 counts the lead-in too (0.919 there).
        gravity_compensation: cancel gravity on the hands.
        wrong_press_termination: end the episode when a key that should be up is pressed.
        disable_hand_collisions: the two hands pass through each other.
        randomize_hand_positions: shift both hands along the keyboard at reset (±5 cm).
        stretch: tempo factor; > 1 is slower.
        shift: transposition in semitones (notes leaving the keyboard are dropped).
        primitive_fingertip_collisions: capsule fingertip colliders (faster contacts).
        reduced_action_space: 39 actions instead of 45 (see the action table).
        control_timestep: seconds per env step (default 0.05 = 20 Hz).
        physics_timestep: seconds per physics step; must divide control_timestep. Default
            0.005 (RoboPianist), or 0.01 with ``fast_physics``.
        fast_physics: the measured fast setting (see "Fast physics" above); default False.
        song_end: ``"terminate"`` (default) or ``"truncate"`` (RoboPianist); see "Episode end".
        normalized_actions: expose the action space as Box(-1, 1).
        flatten: one float32 vector observation instead of a Dict.
        joint_velocities: add ``hand_velocities`` to the observation.
        reward_terms: name -> weight | term | (term, weight); default the four RoboPianist terms.
        demo: a demonstration (read by terms such as ``style``; see ``pianomime_env.demos``).
        render_mode: None or ``"rgb_array"``.
        width, height: rendered frame size in pixels.
        camera: camera name (``back``, ``closeup``, ``left``, ``right``, ``egocentric``,
            ``topdown``) or id; -1 is the free camera.
    """

    metadata = {"render_modes": ["rgb_array"], "render_fps": 20}

    def __init__(
        self,
        song: str | os.PathLike | Song | None = None,
        *,
        midi: str | os.PathLike | None = None,
        n_steps_lookahead: int = 10,
        trim_silence: bool = False,
        initial_buffer_time: float = 0.0,
        gravity_compensation: bool = False,
        wrong_press_termination: bool = False,
        disable_hand_collisions: bool = False,
        randomize_hand_positions: bool = False,
        stretch: float = 1.0,
        shift: int = 0,
        primitive_fingertip_collisions: bool = False,
        reduced_action_space: bool = False,
        control_timestep: float = 0.05,
        physics_timestep: float | None = None,
        fast_physics: bool = False,
        song_end: str = "terminate",
        normalized_actions: bool = False,
        flatten: bool = False,
        joint_velocities: bool = False,
        reward_terms: Mapping[str, Any] | None = None,
        demo: Any = None,
        render_mode: str | None = None,
        width: int = 640,
        height: int = 480,
        camera: str | int = "back",
    ) -> None:
        EzPickle.__init__(
            self,
            song,
            midi=midi,
            n_steps_lookahead=n_steps_lookahead,
            trim_silence=trim_silence,
            initial_buffer_time=initial_buffer_time,
            gravity_compensation=gravity_compensation,
            wrong_press_termination=wrong_press_termination,
            disable_hand_collisions=disable_hand_collisions,
            randomize_hand_positions=randomize_hand_positions,
            stretch=stretch,
            shift=shift,
            primitive_fingertip_collisions=primitive_fingertip_collisions,
            reduced_action_space=reduced_action_space,
            control_timestep=control_timestep,
            physics_timestep=physics_timestep,
            fast_physics=fast_physics,
            song_end=song_end,
            normalized_actions=normalized_actions,
            flatten=flatten,
            joint_velocities=joint_velocities,
            reward_terms=reward_terms,
            demo=demo,
            render_mode=render_mode,
            width=width,
            height=height,
            camera=camera,
        )
        if physics_timestep is None:
            physics_timestep = FAST_PHYSICS_TIMESTEP if fast_physics else DEFAULT_PHYSICS_TIMESTEP
        n_substeps = self._check_arguments(
            song=song,
            midi=midi,
            n_steps_lookahead=n_steps_lookahead,
            trim_silence=trim_silence,
            initial_buffer_time=initial_buffer_time,
            control_timestep=control_timestep,
            physics_timestep=physics_timestep,
            song_end=song_end,
            render_mode=render_mode,
            width=width,
            height=height,
        )
        self._n_substeps = n_substeps
        self.control_timestep = float(control_timestep)
        self.song_end = song_end
        self.fast_physics = bool(fast_physics)
        self._wrong_press_termination = bool(wrong_press_termination)
        self._randomize_hand_positions = bool(randomize_hand_positions)
        self._normalized_actions = bool(normalized_actions)
        self._flatten = bool(flatten)
        self._joint_velocities = bool(joint_velocities)
        self.demo = demo
        self._load_song(
            midi if song is None else song,
            stretch=stretch,
            shift=shift,
            trim_silence=trim_silence,
            initial_buffer_time=initial_buffer_time,
            n_steps_lookahead=n_steps_lookahead,
        )
        self._build_physics(
            physics_timestep=self.control_timestep / n_substeps,
            reduced_action_space=reduced_action_space,
            primitive_fingertip_collisions=primitive_fingertip_collisions,
            gravity_compensation=gravity_compensation,
            disable_hand_collisions=disable_hand_collisions,
        )
        self._build_spaces()
        self._terms = [
            (name, term, weight, f"reward/{name}", hasattr(term, "info"))
            for name, term, weight in rewards_lib.build_terms(reward_terms)
        ]
        self.reward_term_names = tuple(t[0] for t in self._terms)
        self._goal_off = self.trajectory.keys < 0.5  # keys that must stay up, per step
        self._recorder = metrics_lib.EpisodeRecorder(self._n_steps)

        self.render_mode = render_mode
        self.metadata = {**self.metadata, "render_fps": 1.0 / self.control_timestep}
        self._render_args = (int(width), int(height), camera)
        if render_mode is not None:  # fail now on a bad camera, not at the first frame
            from pianomime_env.sim.render import resolve_camera

            resolve_camera(self.model, camera)
        self._renderer = None
        self._init_episode_state()

    # -- Construction stages -------------------------------------------------------------------

    @staticmethod
    def _check_arguments(
        *,
        song: Any,
        midi: Any,
        n_steps_lookahead: Any,
        trim_silence: Any,
        initial_buffer_time: Any,
        control_timestep: Any,
        physics_timestep: Any,
        song_end: Any,
        render_mode: Any,
        width: Any,
        height: Any,
    ) -> int:
        """Validates the arguments that are checked before anything is built; returns the
        number of physics substeps per control step."""
        if song is None and midi is None:
            raise TypeError(
                "PianoMimeEnv needs a song: pass song=<name | MIDI path> or midi=<path>"
            )
        if song is not None and midi is not None:
            raise TypeError("pass either song= or midi=, not both")
        _check_int("n_steps_lookahead", n_steps_lookahead, minimum=0)
        if trim_silence not in (False, True, "all_notes", "robopianist"):
            raise ValueError(
                f"trim_silence must be False, True (= 'all_notes') or 'robopianist', "
                f"got {trim_silence!r}"
            )
        if song_end not in SONG_END_MODES:
            raise ValueError(f"song_end must be one of {SONG_END_MODES}, got {song_end!r}")
        _check_number("initial_buffer_time", initial_buffer_time, minimum=0.0)
        _check_number("control_timestep", control_timestep, minimum=0.0, strict=True)
        _check_number("physics_timestep", physics_timestep, minimum=0.0, strict=True)
        n_substeps = int(round(control_timestep / physics_timestep))
        if n_substeps < 1 or abs(n_substeps * physics_timestep - control_timestep) > 1e-9:
            raise ValueError(
                f"control_timestep ({control_timestep}) must be a whole multiple of "
                f"physics_timestep ({physics_timestep})"
            )
        if render_mode not in (None, "rgb_array"):
            raise ValueError(f"render_mode must be None or 'rgb_array', got {render_mode!r}")
        _check_int("width", width, minimum=1)
        _check_int("height", height, minimum=1)
        return n_substeps

    def _load_song(
        self,
        source: Any,
        *,
        stretch: float,
        shift: int,
        trim_silence: bool | str,
        initial_buffer_time: float,
        n_steps_lookahead: int,
    ) -> None:
        """The song, its goal trajectory, and the goal rows padded for the lookahead window."""
        self.song = load_song(source, stretch=stretch, shift=shift)
        if trim_silence:
            mode = "robopianist" if trim_silence == "robopianist" else "all_notes"
            self.song = self.song.trim_silence(mode)
        self.trajectory: NoteTrajectory = self.song.to_trajectory(
            dt=self.control_timestep, initial_buffer_time=initial_buffer_time
        )
        self._n_steps = len(self.trajectory)
        self._lookahead = int(n_steps_lookahead)
        # Goal rows padded with zeros past the end so every lookahead window is a plain slice.
        goal = np.zeros((self._n_steps + self._lookahead + 1, 89), dtype=np.float32)
        goal[: self._n_steps, :88] = self.trajectory.keys
        goal[: self._n_steps, 88] = self.trajectory.sustain
        self._goal = goal

    def _build_physics(
        self,
        *,
        physics_timestep: float,
        reduced_action_space: bool,
        primitive_fingertip_collisions: bool,
        gravity_compensation: bool,
        disable_hand_collisions: bool,
    ) -> None:
        """The compiled scene (from the cache), its index, parameter options, and ``MjData``."""
        self.model = scene_lib.load_model(
            reduced_action_space=reduced_action_space,
            primitive_fingertip_collisions=primitive_fingertip_collisions,
        )
        self.index = scene_lib.SceneIndex.from_model(self.model)
        scene_lib.configure_model(
            self.model,
            self.index,
            physics_timestep=physics_timestep,
            gravity_compensation=gravity_compensation,
            disable_hand_collisions=disable_hand_collisions,
        )
        self.data = mujoco.MjData(self.model)
        self.joint_names = self.index.hand_joint_names
        self.action_names = tuple(
            mujoco.mj_id2name(self.model, mujoco.mjtObj.mjOBJ_ACTUATOR, i).split("/", 1)[1]
            for i in range(self.model.nu)
        ) + ("sustain",)
        self._forearm_bodies = np.array(
            [
                mujoco.mj_name2id(
                    self.model, mujoco.mjtObj.mjOBJ_BODY, f"{s}_shadow_hand/{s}_forearm"
                )
                for s in scene_lib.HANDS
            ]
        )
        self._forearm_pos0 = self.model.body_pos[self._forearm_bodies].copy()
        k = self.index.key_qpos
        contiguous = bool((np.diff(k) == 1).all())
        self._key_qpos = slice(int(k[0]), int(k[0]) + 88) if contiguous else k
        self._hand_qpos = self.index.hand_qpos.ravel()
        self._hand_dof = self.index.hand_dof.ravel()
        self._tip_sites = self.index.fingertip_sites.ravel()

    def _build_spaces(self) -> None:
        """Action bounds, action space and observation space (see the module docstring)."""
        ctrl = self.model.actuator_ctrlrange
        self._act_low = np.append(ctrl[:, 0], 0.0).astype(np.float64)
        self._act_high = np.append(ctrl[:, 1], 1.0).astype(np.float64)
        self._act_low.flags.writeable = False
        self._act_high.flags.writeable = False
        if self._normalized_actions:
            self.action_space = spaces.Box(-1.0, 1.0, (self.model.nu + 1,), np.float32)
        else:
            self.action_space = spaces.Box(
                self._act_low.astype(np.float32),
                self._act_high.astype(np.float32),
                dtype=np.float32,
            )
        n_joints = self.index.hand_qpos.size
        entries: list[tuple[str, spaces.Box]] = [
            ("goal", spaces.Box(0.0, 1.0, (self._lookahead + 1, 89), np.float32)),
            ("piano_state", spaces.Box(0.0, 1.0, (88,), np.float32)),
            ("sustain_state", spaces.Box(0.0, 1.0, (1,), np.float32)),
            ("hand_joints", spaces.Box(-np.inf, np.inf, (n_joints,), np.float32)),
            ("fingertips", spaces.Box(-np.inf, np.inf, (30,), np.float32)),
        ]
        if self._joint_velocities:
            entries.append(
                ("hand_velocities", spaces.Box(-np.inf, np.inf, (n_joints,), np.float32))
            )
        self.observation_keys = tuple(k for k, _ in entries)
        self._obs_dict_space = spaces.Dict(entries)  # a list keeps this order
        if self._flatten:
            size = sum(int(np.prod(s.shape)) for _, s in entries)
            self.observation_space = spaces.Box(-np.inf, np.inf, (size,), np.float32)
        else:
            self.observation_space = self._obs_dict_space

    def _init_episode_state(self) -> None:
        self._episode: rewards_lib.EpisodeContext | None = None
        self._t = 0
        self._start = 0
        self._needs_reset = True
        self._sustain = 0.0
        self._key_state = np.zeros(88)
        self._key_activation = np.zeros(88, dtype=bool)
        self._key_q, self._key_tmp = np.zeros(88), np.zeros(88)

    # -- Gymnasium API -------------------------------------------------------------------------

    def reset(
        self, *, seed: int | None = None, options: dict[str, Any] | None = None
    ) -> tuple[Any, dict[str, Any]]:
        """Starts an episode. ``options`` (all optional):

        - ``start_step``: int in [0, T): start mid-song at this goal row (reference state
          initialization); the metrics then cover the steps played from there.
        - ``hand_qpos``: (2, J) initial hand joint positions (right, left; ``joint_names``
          order), e.g. an IK pose for the start step. Position actuators start at the same
          targets (``ctrl``), so the hands hold the pose until the first action.
        - ``physics_state``: a :meth:`physics_state` of an env of the same scene: the whole
          simulation state (positions, velocities, controls, solver warm start) continues from
          there, e.g. to look ahead from another env's current step (with ``start_step``).
        """
        super().reset(seed=seed)
        options = dict(options or {})
        start = options.pop("start_step", 0)
        hand_qpos = options.pop("hand_qpos", None)
        physics_state = options.pop("physics_state", None)
        if options:
            raise ValueError(
                f"unknown reset options {sorted(options)}; known: 'start_step', 'hand_qpos', "
                "'physics_state'"
            )
        if isinstance(start, bool) or not isinstance(start, (int, np.integer)):
            raise ValueError(f"options['start_step'] must be an int, got {start!r}")
        if not 0 <= start < self._n_steps:
            raise ValueError(f"options['start_step'] must be in [0, {self._n_steps}), got {start}")
        m, d = self.model, self.data
        mujoco.mj_resetData(m, d)
        if self._randomize_hand_positions:
            offset = self.np_random.uniform(-_HAND_POSITION_OFFSET, _HAND_POSITION_OFFSET)
            m.body_pos[self._forearm_bodies] = self._forearm_pos0 + np.array([0.0, offset, 0.0])
        if hand_qpos is not None:
            q = np.asarray(hand_qpos, dtype=np.float64)
            if q.shape != self.index.hand_qpos.shape or not np.isfinite(q).all():
                raise ValueError(
                    f"options['hand_qpos'] must be a finite array of shape "
                    f"{self.index.hand_qpos.shape}, got {q.shape}"
                )
            d.qpos[self.index.hand_qpos] = q
            mujoco.mj_forward(m, d)
            # Hold the pose: each actuator's target = its transmission length (joint or tendon).
            d.ctrl[:] = np.clip(d.actuator_length, *m.actuator_ctrlrange.T)
        if physics_state is not None:
            state = np.asarray(physics_state, dtype=np.float64)
            size = mujoco.mj_stateSize(m, _PHYSICS_STATE)
            if state.shape != (size,) or not np.isfinite(state).all():
                raise ValueError(
                    f"options['physics_state'] must be a finite array of shape ({size},) "
                    f"(env.physics_state() of this scene), got {state.shape}"
                )
            mujoco.mj_setState(m, d, state, _PHYSICS_STATE)
        mujoco.mj_forward(m, d)
        self._start = int(start)
        self._t = int(start)
        self._sustain = 0.0
        self._needs_reset = False
        self._update_key_state()
        self._recorder.reset()
        episode = rewards_lib.EpisodeContext(
            model=m,
            index=self.index,
            goal_keys=self.trajectory.keys,
            goal_sustain=self.trajectory.sustain,
            fingering=self.trajectory.fingering,
            control_timestep=self.control_timestep,
            demo=self.demo,
            song_name=self.song.name,
        )
        self._episode = episode
        for _, term, *_ in self._terms:
            if hasattr(term, "reset"):
                term.reset(episode)
        return self._observation(), {}

    def step(self, action: Any) -> tuple[Any, float, bool, bool, dict[str, Any]]:
        if self._needs_reset:
            raise RuntimeError("call reset() before step() (the episode has ended or not started)")
        self.apply_action(self._check_action(action))
        self.simulate()
        return self.finish_step()

    # ``step`` in three stages, so that :class:`~pianomime_env.envs.vector.PianoMimeVectorEnv`
    # can check the actions of all its envs at once and run the physics of all of them on
    # threads (``simulate`` is C only and releases the GIL) between the two Python stages.

    @property
    def needs_reset(self) -> bool:
        """Whether the episode has ended (or not started): ``step`` needs a ``reset`` first."""
        return self._needs_reset

    def apply_action(self, action: np.ndarray) -> None:
        """Stage 1 of ``step``: a checked absolute action (A,) float64 (in the actuators' range,
        sustain last) -> the controls."""
        d = self.data
        d.ctrl[:] = action[:-1]
        d.warning[_BADQACC].number = 0
        self._sustain = float(action[-1])

    def simulate(self) -> None:
        """Stage 2 of ``step``: the control step's physics substeps (C only)."""
        m, d = self.model, self.data
        # All substeps in C. The order (step2, n-1 full steps, step1) equals RoboPianist's legacy
        # step and leaves positions, velocities and site positions up to date for the new state.
        mujoco.mj_step2(m, d)
        if self._n_substeps > 1:
            mujoco.mj_step(m, d, self._n_substeps - 1)
        mujoco.mj_step1(m, d)

    def finish_step(self) -> tuple[Any, float, bool, bool, dict[str, Any]]:
        """Stage 3 of ``step``: key state, metrics recorder, reward terms, episode end,
        observation; returns what ``step`` returns."""
        d = self.data
        self._update_key_state()

        t = self._t
        goal_keys = self.trajectory.keys[t]
        sustain_active = self._sustain >= _SUSTAIN_THRESHOLD
        self._recorder.record(self._key_activation, sustain_active)
        ctx = rewards_lib.StepContext(
            t=t,
            goal_keys=goal_keys,
            goal_sustain=float(self.trajectory.sustain[t]),
            fingering=self.trajectory.fingering[t],
            key_state=self._key_state,
            key_activation=self._key_activation,
            sustain_state=self._sustain,
            sustain_activation=sustain_active,
            hand_joints=d.qpos[self.index.hand_qpos],
            fingertips=d.site_xpos[self.index.fingertip_sites],
            actuator_force=d.actuator_force,
            actuator_velocity=d.actuator_velocity,
            data=d,
            episode=self._episode,
        )
        info: dict[str, Any] = {}
        reward = 0.0
        for _, term, weight, key, has_info in self._terms:
            value = float(term(ctx))
            info[key] = value
            reward += weight * value
            if has_info:
                info.update(term.info(ctx))

        self._t = t + 1
        wrong_press = bool(self._key_activation[self._goal_off[t]].any())
        song_over = self._t >= self._n_steps
        terminated = self._wrong_press_termination and wrong_press
        truncated = False
        if song_over:
            if self.song_end == "terminate":
                terminated = True
            elif not terminated:
                truncated = True
        info["wrong_press"] = wrong_press
        # MuJoCo resets the state by itself when accelerations blow up (mjWARN_BADQACC); the
        # counter is zeroed before the substeps (a reset zeroes it too, so deltas would miss).
        bad_qacc = int(d.warning[_BADQACC].number)
        info["physics_unstable"] = bad_qacc > 0
        if bad_qacc:
            self._report_instability(bad_qacc)
        if terminated or truncated:
            self._needs_reset = True
            info["metrics"] = self._recorder.compute(
                self.trajectory.keys[self._start :], self.trajectory.sustain[self._start :]
            )
        return self._observation(), reward, terminated, truncated, info

    def render(self) -> np.ndarray | None:
        if self.render_mode is None:
            gym.logger.warn("render() called with render_mode=None; pass render_mode='rgb_array'")
            return None
        if self._renderer is None:
            from pianomime_env.sim.render import SceneRenderer

            self._renderer = SceneRenderer(self.model, self.index, *self._render_args)
        return self._renderer.render(self.data, self._key_activation)

    def close(self) -> None:
        if self._renderer is not None:
            self._renderer.close()
            self._renderer = None

    # -- Properties ----------------------------------------------------------------------------

    @property
    def n_steps(self) -> int:
        """Episode length in control steps (T)."""
        return self._n_steps

    @property
    def t(self) -> int:
        """Index of the next goal row to be played."""
        return self._t

    @property
    def key_activation(self) -> np.ndarray:
        """(88,) bool, keys currently pressed."""
        return self._key_activation.copy()

    @property
    def played_keys(self) -> np.ndarray:
        """(t, 88) bool key activations recorded so far this episode (one row per step)."""
        return self._recorder.key_activations.copy()

    @property
    def played_sustain(self) -> np.ndarray:
        """(t,) bool sustain-pedal activations recorded so far this episode (one per step)."""
        return self._recorder.sustain_activations.copy()

    @property
    def sustain_activation(self) -> bool:
        return self._sustain >= _SUSTAIN_THRESHOLD

    def physics_state(self) -> np.ndarray:
        """The whole simulation state (MuJoCo's ``mjSTATE_INTEGRATION``: time, positions,
        velocities, activations, controls, warm start...), a 1-D float64 copy; another env of
        the same scene continues from it with ``reset(options={"physics_state": s})``."""
        m = self.model
        out = np.empty(mujoco.mj_stateSize(m, _PHYSICS_STATE))
        mujoco.mj_getState(m, self.data, out, _PHYSICS_STATE)
        return out

    @property
    def fingertip_positions(self) -> np.ndarray:
        """(2, 5, 3) fingertip positions (m), right then left hand, thumb..little."""
        return self.data.site_xpos[self.index.fingertip_sites].copy()

    @property
    def episode_context(self) -> rewards_lib.EpisodeContext:
        """What reward terms got at ``reset`` (model, index, goal, fingering, demo, ...)."""
        if self._episode is None:
            raise RuntimeError("episode_context exists after reset()")
        return self._episode

    @property
    def key_state(self) -> np.ndarray:
        """(88,) float, key positions normalized to [0, 1] (1 = bottom), as in the observation."""
        return self._key_state.copy()

    # -- The controller API: what controllers and wrappers may read ----------------------------
    # Everything a controller (the sight-reader, ResidualIK, a learned policy's wrapper) needs is
    # here or among the public attributes ``model``, ``data`` (read them, never write: the env
    # owns the simulation state), ``index``, ``trajectory``, ``song``, ``demo``, ``t``,
    # ``n_steps``, ``control_timestep``, ``joint_names`` and ``action_names``.

    @property
    def action_low(self) -> np.ndarray:
        """(A,) float64 lower bounds of the *absolute* action (joint targets in rad / m, then
        sustain 0), whatever ``normalized_actions`` is. Read-only."""
        return self._act_low

    @property
    def action_high(self) -> np.ndarray:
        """(A,) float64 upper bounds of the absolute action (sustain 1). Read-only."""
        return self._act_high

    @property
    def normalized_actions(self) -> bool:
        """True when ``step`` takes ``Box(-1, 1)`` actions (mapped by ``action_from_normalized``)."""
        return self._normalized_actions

    @property
    def physics_timestep(self) -> float:
        """Seconds per physics step (``model.opt.timestep``)."""
        return float(self.model.opt.timestep)

    @property
    def n_substeps(self) -> int:
        """Physics steps per control step."""
        return self._n_substeps

    @property
    def reward_terms(self) -> tuple[tuple[str, Any, float], ...]:
        """The reward as ``((name, term, weight), ...)``, in the order they are summed."""
        return tuple((name, term, weight) for name, term, weight, *_ in self._terms)

    def action_from_normalized(self, action: np.ndarray) -> np.ndarray:
        """Maps a ``Box(-1, 1)`` action (A,) to the absolute action (A,) float64: joint targets
        + sustain, linearly onto ``[action_low, action_high]``. Not clipped."""
        return self._act_low + (np.asarray(action, np.float64) + 1.0) * 0.5 * (
            self._act_high - self._act_low
        )

    def action_to_normalized(self, action: np.ndarray) -> np.ndarray:
        """Inverse of :meth:`action_from_normalized`: absolute action (A,) -> ``[-1, 1]`` (A,)
        float64. Not clipped."""
        return (
            2.0
            * (np.asarray(action, np.float64) - self._act_low)
            / (self._act_high - self._act_low)
            - 1.0
        )

    def to_env_action(self, absolute: np.ndarray) -> np.ndarray:
        """An absolute action (A,) as this env's ``step`` expects it (float32): unchanged, or
        normalized when ``normalized_actions=True``. What a controller that computes absolute
        joint targets returns."""
        a = self.action_to_normalized(absolute) if self._normalized_actions else absolute
        return np.asarray(a, np.float32)

    # -- Internals -----------------------------------------------------------------------------

    def _report_instability(self, count: int) -> None:
        warnings.warn(
            f"{self.song.name}: MuJoCo found an unstable simulation (NaN/inf/huge joint "
            f"accelerations, mjWARN_BADQACC x{count}) at step {self._t - 1} and reset the "
            "physics state mid-episode; this episode's transitions are not physical. "
            f"physics_timestep={self.physics_timestep}, fast_physics={self.fast_physics}.",
            PhysicsInstabilityWarning,
            stacklevel=3,
        )

    def _check_action(self, action: Any) -> np.ndarray:
        try:
            a = np.asarray(action, dtype=np.float64)
        except (TypeError, ValueError) as exc:
            raise ValueError(f"action must be numeric, got {type(action).__name__}") from exc
        expected = self.action_space.shape
        if a.shape != expected:
            raise ValueError(f"action has shape {a.shape}, expected {expected}")
        if not np.isfinite(a).all():
            bad = np.flatnonzero(~np.isfinite(a))
            names = [self.action_names[i] for i in bad[:5]]
            raise ValueError(f"action contains NaN or inf at indices {bad.tolist()} ({names})")
        if self._normalized_actions:
            a = self.action_from_normalized(np.minimum(np.maximum(a, -1.0), 1.0))
        return np.minimum(np.maximum(a, self._act_low), self._act_high)

    def _update_key_state(self) -> None:
        # In place, on a view of qpos when the key joints are contiguous (they are in the scene).
        hi, q, tmp = self.index.key_range_max, self._key_q, self._key_tmp
        np.maximum(self.data.qpos[self._key_qpos], 0.0, out=q)  # ufuncs: np.clip is slower
        np.minimum(q, hi, out=q)
        np.divide(q, hi, out=self._key_state)
        np.subtract(q, hi, out=tmp)
        np.abs(tmp, out=tmp)
        np.less_equal(tmp, scene_lib.KEY_ACTIVATION_THRESHOLD, out=self._key_activation)

    def _observation(self) -> Any:
        d = self.data
        parts = [
            self._goal[self._t : self._t + self._lookahead + 1],
            self._key_state.astype(np.float32),
            np.array([self._sustain], dtype=np.float32),
            d.qpos[self._hand_qpos].astype(np.float32),
            d.site_xpos[self._tip_sites].astype(np.float32).ravel(),
        ]
        if self._joint_velocities:
            parts.append(d.qvel[self._hand_dof].astype(np.float32))
        if self._flatten:
            return np.concatenate([p.ravel() for p in parts])
        parts[0] = parts[0].copy()
        return dict(zip(self.observation_keys, parts))


def _check_int(name: str, value: Any, minimum: int) -> None:
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < minimum:
        raise ValueError(f"{name} must be an integer >= {minimum}, got {value!r}")


def _check_number(name: str, value: Any, minimum: float, strict: bool = False) -> None:
    ok = isinstance(value, (int, float, np.floating, np.integer)) and not isinstance(value, bool)
    ok = ok and np.isfinite(value) and (value > minimum if strict else value >= minimum)
    if not ok:
        op = ">" if strict else ">="
        raise ValueError(f"{name} must be a finite number {op} {minimum}, got {value!r}")
