"""Things to look at: performance videos and piano-roll plots."""

from __future__ import annotations

import os
from collections.abc import Sequence
from pathlib import Path

import numpy as np


def write_video(path: str | os.PathLike, frames: Sequence[np.ndarray], fps: float) -> Path:
    """Writes (H, W, 3) uint8 frames as an H.264 MP4 (imageio + its bundled ffmpeg).

    The file appears only once complete (written to a temporary name, then renamed).
    """
    import imageio.v2 as imageio

    path = Path(path)
    if len(frames) == 0:
        raise ValueError(f"no frames to write to {path}")
    tmp = path.with_name(f".{path.stem}.tmp{path.suffix}")
    with imageio.get_writer(tmp, fps=fps, codec="libx264", macro_block_size=8, quality=7) as w:
        for frame in frames:
            w.append_data(np.asarray(frame, dtype=np.uint8))
    os.replace(tmp, path)
    return path


def _pyplot():
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError as exc:  # pragma: no cover - matplotlib is a dependency
        raise ImportError("plots need matplotlib: pip install matplotlib") from exc
    return plt


def plot_piano_roll(
    path: str | os.PathLike,
    goal_keys: np.ndarray,
    played_keys: np.ndarray,
    *,
    control_timestep: float = 0.05,
    title: str = "",
) -> Path:
    """Saves a piano-roll PNG: goal keys (grey), correctly played (green), wrong (red).

    Args:
        goal_keys: (T, 88) goal roll (1 = key should be down).
        played_keys: (T, 88) key activations.
        control_timestep: seconds per row, for the time axis.
    """
    goal = np.asarray(goal_keys) > 0.5
    played = np.asarray(played_keys) > 0.5
    if goal.shape != played.shape or goal.ndim != 2 or goal.shape[1] != 88:
        raise ValueError(
            f"goal_keys and played_keys must both have shape (T, 88), got {goal.shape} and "
            f"{played.shape}"
        )
    plt = _pyplot()
    image = np.ones(goal.shape + (3,))
    image[goal & ~played] = (0.75, 0.75, 0.75)
    image[goal & played] = (0.1, 0.65, 0.2)
    image[~goal & played] = (0.85, 0.1, 0.1)
    t_end = goal.shape[0] * control_timestep
    fig, ax = plt.subplots(figsize=(min(20, 4 + t_end / 2), 4))
    ax.imshow(
        image.transpose(1, 0, 2),
        origin="lower",
        aspect="auto",
        extent=(0, t_end, -0.5, 87.5),
        interpolation="nearest",
    )
    used = np.flatnonzero((goal | played).any(0))
    if used.size:
        ax.set_ylim(max(-0.5, used.min() - 3), min(87.5, used.max() + 3))
    ax.set_xlabel("time (s)")
    ax.set_ylabel("key (0 = A0, 39 = C4)")
    ax.set_title(title or "piano roll: grey = missed, green = played, red = wrong")
    fig.tight_layout()
    path = Path(path)
    fig.savefig(path, dpi=100)
    plt.close(fig)
    return path


def plot_demonstration(
    path: str | os.PathLike, demo, *, key_positions: np.ndarray | None = None
) -> Path:
    """Saves a PNG of a demonstration's fingertips over the keyboard.

    Top: each fingertip's position along the keyboard (y, m) over time, coloured per finger
    (solid right hand, dashed left), with the keys it presses marked. Bottom: fingertip height.

    Args:
        demo: a :class:`pianomime_env.demos.Demonstration`.
        key_positions: optional (88,) y coordinate of each key (m) to draw pressed keys.
    """
    from pianomime_env.scene import FINGER_NAMES, FINGERTIP_COLORS

    plt = _pyplot()
    tips = np.asarray(demo.fingertips)
    t = np.arange(tips.shape[0]) * demo.control_timestep
    fig, (top, bottom) = plt.subplots(2, 1, figsize=(12, 7), sharex=True, height_ratios=(3, 1))
    for hand, style in ((0, "-"), (1, "--")):
        for finger in range(5):
            color = FINGERTIP_COLORS[finger]
            label = f"{'RL'[hand]}H {FINGER_NAMES[finger]}"
            top.plot(t, tips[:, hand, finger, 1], style, color=color, lw=1, label=label)
            bottom.plot(t, tips[:, hand, finger, 2], style, color=color, lw=1)
    if key_positions is not None:
        steps, keys = np.nonzero(np.asarray(demo.fingering) >= 0)
        fingers = np.asarray(demo.fingering)[steps, keys]
        top.scatter(
            t[steps],
            np.asarray(key_positions)[keys],
            s=6,
            c=FINGERTIP_COLORS[fingers % 5],
            marker="s",
            label="pressed key",
        )
    top.set_ylabel("along keyboard y (m)")
    top.legend(ncol=6, fontsize=7, loc="upper right")
    top.set_title(f"demonstration: {demo.song_name} ({demo.source})")
    bottom.set_ylabel("height z (m)")
    bottom.set_xlabel("time (s)")
    fig.tight_layout()
    path = Path(path)
    fig.savefig(path, dpi=100)
    plt.close(fig)
    return path
