"""Demonstrations from a video of a human pianist plus its MIDI file (PianoMime's pipeline,
without its manual steps).

Stages (each usable and testable alone):

1. :func:`extract_landmarks` - MediaPipe HandLandmarker (VIDEO mode, two hands) on frames sampled
   every ``sample_dt`` seconds: wrist + 5 fingertips per hand, in pixels, with handedness.
2. :func:`calibrate_keyboard` - automatic keyboard homography (:mod:`.keyboard`) or the 4-corner
   manual override.
3. :func:`landmarks_to_demonstration` - image -> piano plane, gap filling (short gaps
   interpolated, long ones held and flagged), smoothing, resampling to the control rate, MIDI
   offset estimation (fingertips near the keys at the MIDI onsets, over a range of offsets),
   fingering (one-to-one assignment by ``linear_sum_assignment``, nearest finger as the fallback,
   never a prompt), and heights (fingers on pressed keys snap to the key surface, the others hover).

:func:`from_video` chains them. mediapipe and OpenCV are imported lazily (the ``video`` extra).
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from pianomime_env.demos.format import Demonstration
from pianomime_env.demos.hand_model import ensure_hand_model
from pianomime_env.demos.keyboard import (
    VIDEO_EXTRA_HINT,
    KeyboardCalibration,
    KeyboardDetectionError,
    KeyboardLayout,
    calibrate_from_corners,
    detect_keyboard,
    import_cv2,
    keyboard_layout,
)

__all__ = [
    "LandmarkStream",
    "VideoDemoInfo",
    "assign_fingering",
    "calibrate_keyboard",
    "estimate_offset",
    "extract_landmarks",
    "fill_gaps",
    "from_video",
    "landmarks_to_demonstration",
    "resample",
    "smooth",
]

# MediaPipe landmark ids: wrist, thumb..little tips.
LANDMARK_IDS = (0, 4, 8, 12, 16, 20)
HOVER_HEIGHT = 0.015  # m above the white-key tops for fingers not pressing
WRIST_HEIGHT = 0.06  # m above the white-key tops


def import_mediapipe() -> Any:
    try:
        import mediapipe
    except ImportError as exc:
        raise ImportError(
            f"mediapipe is needed for video demonstrations: {VIDEO_EXTRA_HINT}"
        ) from exc
    return mediapipe


@dataclass
class LandmarkStream:
    """Hand landmarks over time, in pixels.

    Attributes:
        times: (N,) seconds from the start of the video.
        points: (N, 2, 6, 2) hand (right, left) x (wrist, thumb..little tip) x (u, v); NaN where
            the hand was not detected.
        image_size: (width, height).
    """

    times: np.ndarray
    points: np.ndarray
    image_size: tuple[int, int] = (0, 0)


@dataclass
class VideoDemoInfo:
    """Diagnostics of :func:`landmarks_to_demonstration`."""

    offset_s: float
    offset_scores: np.ndarray
    filled_fraction: np.ndarray  # (2,) per hand, fraction of steps interpolated
    held_fraction: np.ndarray  # (2,) per hand, fraction of steps held over long gaps
    fallback_assignments: int  # keys given the nearest finger rather than a free one
    calibration: KeyboardCalibration | None = None
    extra: dict = field(default_factory=dict)


# --------------------------------------------------------------------------- stage 1: landmarks


def extract_landmarks(
    video: str | os.PathLike,
    hand_model: str | os.PathLike | None = None,
    *,
    sample_dt: float = 0.05,
    mirrored: bool = False,
    min_confidence: float = 0.5,
) -> LandmarkStream:
    """Runs MediaPipe's HandLandmarker on frames sampled every ``sample_dt`` s.

    MediaPipe labels handedness as if the image were mirrored (selfie camera); with
    ``mirrored=False`` (ordinary footage) its labels are swapped. Two hands with the same label are
    told apart by image position (larger u = right hand).
    """
    mp = import_mediapipe()
    cv2 = import_cv2()
    from mediapipe.tasks.python import BaseOptions, vision

    model = ensure_hand_model(hand_model)
    cap = cv2.VideoCapture(str(video))
    if not cap.isOpened():
        raise FileNotFoundError(f"cannot open video {video}")
    fps = cap.get(cv2.CAP_PROP_FPS) or 30.0
    opts = vision.HandLandmarkerOptions(
        base_options=BaseOptions(model_asset_path=str(model)),
        running_mode=vision.RunningMode.VIDEO,
        num_hands=2,
        min_hand_detection_confidence=min_confidence,
        min_hand_presence_confidence=min_confidence,
        min_tracking_confidence=min_confidence,
    )
    times, points = [], []
    size = (0, 0)
    next_t = 0.0
    frame_i = 0
    with vision.HandLandmarker.create_from_options(opts) as lm:
        while True:
            ok, frame = cap.read()
            if not ok:
                break
            t = frame_i / fps
            frame_i += 1
            if t + 1e-9 < next_t:
                continue
            next_t += sample_dt
            h, w = frame.shape[:2]
            size = (w, h)
            rgb = cv2.cvtColor(frame, cv2.COLOR_BGR2RGB)
            res = lm.detect_for_video(
                mp.Image(image_format=mp.ImageFormat.SRGB, data=rgb), int(round(t * 1000))
            )
            times.append(t)
            points.append(_result_to_points(res, w, h, mirrored))
    cap.release()
    if not times:
        raise ValueError(f"{video}: no frames could be read")
    return LandmarkStream(np.array(times), np.array(points), size)


def _result_to_points(res: Any, w: int, h: int, mirrored: bool) -> np.ndarray:
    out = np.full((2, 6, 2), np.nan)
    hands = []
    for lms, hd in zip(res.hand_landmarks, res.handedness):
        pts = np.array([[lms[i].x * w, lms[i].y * h] for i in LANDMARK_IDS])
        label = hd[0].category_name if hd else "Right"
        is_right = (label == "Right") == mirrored
        hands.append((is_right, pts))
    if len(hands) == 2 and hands[0][0] == hands[1][0]:
        hands.sort(key=lambda x: -x[1][0, 0])  # same label: larger u is the right hand
        hands = [(True, hands[0][1]), (False, hands[1][1])]
    for is_right, pts in hands:
        out[0 if is_right else 1] = pts
    return out


# ---------------------------------------------------------------- stage 2: keyboard calibration


def calibrate_keyboard(
    frames: list[np.ndarray] | np.ndarray,
    keyboard_corners: np.ndarray | None = None,
    layout: KeyboardLayout | None = None,
) -> KeyboardCalibration:
    """Corner override if given, else the best automatic detection over the given RGB frames."""
    if keyboard_corners is not None:
        return calibrate_from_corners(keyboard_corners, layout)
    best, errors = None, []
    for f in frames:
        try:
            cal = detect_keyboard(f, layout=layout)
        except KeyboardDetectionError as exc:
            errors.append(str(exc))
            continue
        if best is None or len(cal.black_keys) > len(best.black_keys):
            best = cal
    if best is None:
        raise KeyboardDetectionError(
            "keyboard not found in any sampled frame (pass keyboard_corners=[A0-back, C8-back, "
            f"C8-front, A0-front] in pixels): {errors[-1] if errors else 'no frames'}"
        )
    return best


def _sample_frames(video: str | os.PathLike, n: int = 5) -> list[np.ndarray]:
    cv2 = import_cv2()
    cap = cv2.VideoCapture(str(video))
    total = int(cap.get(cv2.CAP_PROP_FRAME_COUNT)) or 1
    frames = []
    for i in np.linspace(0, max(total - 1, 0), n).astype(int):
        cap.set(cv2.CAP_PROP_POS_FRAMES, int(i))
        ok, f = cap.read()
        if ok:
            frames.append(cv2.cvtColor(f, cv2.COLOR_BGR2RGB))
    cap.release()
    return frames


# ------------------------------------------------------------------- stage 3: trajectories


def fill_gaps(x: np.ndarray, max_gap: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Fills NaN gaps along axis 0 of ``x`` (N, ...), per trailing element.

    Gaps of at most ``max_gap`` samples between valid samples are linearly interpolated; longer
    gaps and the ends are held at the nearest valid value. Returns (filled, interpolated mask (N,),
    held mask (N,)); the masks are per sample (any element). An all-NaN series stays NaN.
    """
    x = np.array(x, dtype=np.float64)
    n = x.shape[0]
    flat = x.reshape(n, -1)
    valid = np.isfinite(flat).all(axis=1)
    interp = np.zeros(n, bool)
    held = np.zeros(n, bool)
    if not valid.any():
        return x, interp, held
    idx = np.flatnonzero(valid)
    t = np.arange(n)
    filled = np.empty_like(flat)
    for j in range(flat.shape[1]):
        filled[:, j] = np.interp(t, idx, flat[idx, j])
    # Gap lengths.
    missing = ~valid
    d = np.diff(np.concatenate([[0], missing.view(np.int8), [0]]))
    for s, e in zip(np.flatnonzero(d == 1), np.flatnonzero(d == -1)):
        inner = s > 0 and e < n
        if inner and e - s <= max_gap:
            interp[s:e] = True
        else:
            held[s:e] = True
            if inner:  # hold the last valid value over a long gap
                filled[s:e] = flat[s - 1]
    return filled.reshape(x.shape), interp, held


def smooth(x: np.ndarray, window: int) -> np.ndarray:
    """Centred moving average along axis 0 (edges use the shorter available window)."""
    if window <= 1:
        return np.asarray(x, dtype=np.float64)
    x = np.asarray(x, dtype=np.float64)
    k = np.ones(window) / window
    flat = x.reshape(x.shape[0], -1)
    pad = window // 2
    padded = np.pad(flat, ((pad, window - 1 - pad), (0, 0)), mode="edge")
    out = np.stack([np.convolve(padded[:, j], k, mode="valid") for j in range(flat.shape[1])], 1)
    return out.reshape(x.shape)


def resample(times: np.ndarray, x: np.ndarray, t_new: np.ndarray) -> np.ndarray:
    """Linear resampling of (N, ...) samples at ``times`` onto ``t_new`` (held at the ends)."""
    flat = np.asarray(x, dtype=np.float64).reshape(len(times), -1)
    out = np.stack([np.interp(t_new, times, flat[:, j]) for j in range(flat.shape[1])], 1)
    return out.reshape((len(t_new),) + np.shape(x)[1:])


def _onsets(keys: np.ndarray) -> np.ndarray:
    """(T, 88) bool: key pressed at t and not at t-1."""
    k = np.asarray(keys) > 0
    prev = np.vstack([np.zeros((1, k.shape[1]), bool), k[:-1]])
    return k & ~prev


def estimate_offset(
    tips_xy: np.ndarray,
    keys: np.ndarray,
    layout: KeyboardLayout,
    dt: float,
    *,
    max_offset_s: float = 5.0,
    sigma: float = 0.012,
) -> tuple[int, np.ndarray]:
    """Offset (in steps) of the video relative to the MIDI: video step = MIDI step + offset.

    For every candidate offset, sums over the MIDI onsets the evidence that some fingertip
    *arrives* on the key at that video step: ``g(t) * (1 - g(t - lag))`` with ``g`` a Gaussian of
    the distance from the key's press point to the nearest fingertip (``sigma`` m). Evidence of a
    finger merely resting on the key would not tell the offset within a held note. Returns (best
    offset, scores per offset from -max to +max).
    """
    tips = np.asarray(tips_xy, dtype=np.float64).reshape(len(tips_xy), 10, 2)
    target = layout.key_press_points()[:, :2]
    on_t, on_k = np.nonzero(_onsets(keys))
    m = int(round(max_offset_s / dt))
    lag = max(int(round(0.1 / dt)), 1)
    offsets = np.arange(-m, m + 1)
    scores = np.zeros(len(offsets))
    n = len(tips)

    def near(tv: np.ndarray, kk: np.ndarray) -> np.ndarray:
        d = np.linalg.norm(tips[np.clip(tv, 0, n - 1)] - target[kk][:, None, :], axis=2)
        d = np.where(np.isfinite(d), d, np.inf).min(axis=1)
        return np.exp(-0.5 * (d / sigma) ** 2)

    for i, off in enumerate(offsets):
        tv = on_t + off
        ok = (tv >= 0) & (tv < n)
        if not ok.any():
            continue
        g = near(tv[ok], on_k[ok]) * (1 - near(tv[ok] - lag, on_k[ok]))
        # Normalise by all onsets so that offsets pushing onsets off the video are not favoured.
        scores[i] = g.sum() / max(len(on_t), 1)
    return int(offsets[int(np.argmax(scores))]), scores


def assign_fingering(
    tips_xy: np.ndarray, keys: np.ndarray, layout: KeyboardLayout
) -> tuple[np.ndarray, int]:
    """Finger (0-9) per pressed key per step, -1 elsewhere; never prompts.

    A key held from the previous step keeps its finger. New presses get a one-to-one minimum-cost
    assignment (``scipy.optimize.linear_sum_assignment`` over xy distances to the key's press
    point) among the fingers not already holding a key; keys left over (more keys than free
    fingers, or only missing fingertips) get the nearest finger. Returns (fingering (T, 88) int8,
    number of such fallback assignments).
    """
    from scipy.optimize import linear_sum_assignment

    tips = np.asarray(tips_xy, dtype=np.float64).reshape(len(tips_xy), 10, 2)
    target = layout.key_press_points()[:, :2]
    pressed = np.asarray(keys) > 0
    t_n = min(len(tips), len(pressed))
    out = np.full((len(pressed), 88), -1, dtype=np.int8)
    fallback = 0
    for t in range(t_n):
        ks = np.flatnonzero(pressed[t])
        if not len(ks):
            continue
        busy = set()
        new = []
        for k in ks:
            if t > 0 and pressed[t - 1, k] and out[t - 1, k] >= 0:
                out[t, k] = out[t - 1, k]
                busy.add(int(out[t, k]))
            else:
                new.append(k)
        if not new:
            continue
        d = np.linalg.norm(tips[t][None, :, :] - target[new][:, None, :], axis=2)
        d = np.where(np.isfinite(d), d, 1e3)
        free = [f for f in range(10) if f not in busy]
        done = set()
        if free:
            rows, cols = linear_sum_assignment(d[:, free])
            for r, c in zip(rows, cols):
                if d[r, free[c]] < 1e3:
                    out[t, new[r]] = free[c]
                    done.add(r)
        for r in range(len(new)):
            if r not in done:
                out[t, new[r]] = int(np.argmin(d[r]))
                fallback += 1
    return out, fallback


def landmarks_to_demonstration(
    stream: LandmarkStream,
    calibration: KeyboardCalibration,
    keys: np.ndarray,
    *,
    control_timestep: float = 0.05,
    song_name: str = "video",
    source: str = "video",
    offset_s: float | None = None,
    max_offset_s: float = 5.0,
    max_gap_s: float = 0.3,
    smooth_window: int = 3,
    layout: KeyboardLayout | None = None,
) -> tuple[Demonstration, VideoDemoInfo]:
    """Turns pixel landmarks + the song's piano roll into a :class:`Demonstration`.

    Args:
        stream: landmarks in pixels (NaN = not detected).
        calibration: image -> plane homography.
        keys: (T, 88) the song's piano roll at ``control_timestep`` (``Song.to_trajectory``).
        offset_s: video time of the MIDI's time 0; estimated when None.
        max_offset_s: search range of the estimation (+-).
        max_gap_s: gaps up to this long are interpolated, longer ones held (and reported).
        smooth_window: moving-average window, in control steps.
    """
    lay = layout or keyboard_layout()
    dt = float(control_timestep)
    keys = np.asarray(keys)
    t_song = keys.shape[0]
    pts = np.asarray(stream.points, dtype=np.float64)
    plane = calibration.image_to_plane(pts)  # (N, 2, 6, 2)
    times = np.asarray(stream.times, dtype=np.float64)

    # Per hand: gap filling on the sample grid, then resampling to the control rate.
    t_grid = np.arange(times[0], times[-1] + 1e-9, dt)
    per_hand, raw = [], []
    filled_frac, held_frac = np.zeros(2), np.zeros(2)
    sample_dt = float(np.median(np.diff(times))) if len(times) > 1 else dt
    max_gap = max(int(round(max_gap_s / sample_dt)), 0)
    for h in range(2):
        x, interp, held = fill_gaps(plane[:, h], max_gap)
        if not np.isfinite(x).all():  # hand never seen: park it over its half of the keyboard
            side = 0.3 if h == 0 else -0.3
            x = np.zeros_like(x)
            x[..., 0] = np.mean(lay.white_x)
            x[..., 1] = side
            held[:] = True
        filled_frac[h], held_frac[h] = interp.mean(), held.mean()
        raw.append(resample(times, x, t_grid))
        per_hand.append(smooth(raw[-1], smooth_window))
    xy = np.stack(per_hand, axis=1)  # (Tv, 2, 6, 2)
    tips_video = np.stack(raw, axis=1)[:, :, 1:, :]  # unsmoothed: sharper onsets for the offset

    if offset_s is None:
        off_steps, scores = estimate_offset(tips_video, keys, lay, dt, max_offset_s=max_offset_s)
        off_steps += int(round(-t_grid[0] / dt))
    else:
        off_steps, scores = int(round((offset_s - t_grid[0]) / dt)), np.zeros(0)
    # Song step t <-> video grid step t + off_steps (held at the ends).
    idx = np.clip(np.arange(t_song) + off_steps, 0, len(t_grid) - 1)
    xy_song = xy[idx]
    tips = xy_song[:, :, 1:, :]
    fingering, n_fallback = assign_fingering(tips_video[idx], keys, lay)

    press = lay.finger_press_points
    tips3 = np.empty((t_song, 2, 5, 3), dtype=np.float64)
    tips3[..., :2] = tips
    tips3[..., 2] = lay.white_top_z + HOVER_HEIGHT
    tt, kk = np.nonzero(fingering >= 0)
    f = fingering[tt, kk].astype(int)
    tips3[tt, f // 5, f % 5] = press[f % 5, kk]
    wrists = np.empty((t_song, 2, 3), dtype=np.float64)
    wrists[..., :2] = xy_song[:, :, 0, :]
    wrists[..., 2] = lay.white_top_z + WRIST_HEIGHT
    demo = Demonstration(
        fingertips=tips3,
        wrists=wrists,
        fingering=fingering,
        control_timestep=dt,
        song_name=song_name,
        source=source,
    )
    info = VideoDemoInfo(
        offset_s=float(t_grid[0] + off_steps * dt),
        offset_scores=scores,
        filled_fraction=filled_frac,
        held_fraction=held_frac,
        fallback_assignments=n_fallback,
        calibration=calibration,
    )
    return demo, info


# ------------------------------------------------------------------------------ the pipeline


def from_video(
    video: str | os.PathLike,
    midi: Any,
    *,
    hand_model: str | os.PathLike | None = None,
    keyboard_corners: np.ndarray | None = None,
    control_timestep: float = 0.05,
    offset_s: float | None = None,
    mirrored: bool = False,
    return_info: bool = False,
) -> Demonstration | tuple[Demonstration, VideoDemoInfo]:
    """Demonstration from a video of a pianist and the piece's MIDI (or any ``load_song`` source).

    Args:
        video: a video file OpenCV can read (the whole keyboard in view, roughly from above).
        midi: the MIDI file / song the video plays.
        hand_model: ``hand_landmarker.task``; default :func:`.hand_model.default_hand_model_path`
            (build it with ``pianomime demo build-hand-model``).
        keyboard_corners: 4 pixels A0-back, C8-back, C8-front, A0-front; detected when None.
        control_timestep: seconds per demonstration step.
        offset_s: video time at which the MIDI starts; estimated when None.
        mirrored: the video is mirrored (selfie camera).
        return_info: also return :class:`VideoDemoInfo`.

    Raises:
        HandModelError: the hand model is missing (the message says how to build it).
        ImportError: mediapipe/OpenCV missing (``pip install "pianomime-env[video]"``).
        KeyboardDetectionError: no keyboard found and no corners given.
    """
    from pianomime_env.music.sources import load_song

    model = ensure_hand_model(hand_model)  # fail fast, before reading the video
    import_mediapipe()
    song = load_song(midi)
    keys = np.asarray(song.to_trajectory(control_timestep).keys)
    calib = calibrate_keyboard(
        [] if keyboard_corners is not None else _sample_frames(video), keyboard_corners
    )
    stream = extract_landmarks(video, model, sample_dt=control_timestep, mirrored=mirrored)
    demo, info = landmarks_to_demonstration(
        stream,
        calib,
        keys,
        control_timestep=control_timestep,
        song_name=getattr(song, "name", Path(str(midi)).stem),
        source=f"video:{Path(str(video)).name}",
        offset_s=offset_s,
    )
    return (demo, info) if return_info else demo
