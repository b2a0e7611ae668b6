"""Piano rolls and demonstration plots (matplotlib, Agg backend).

- :func:`plot_piano_roll` / :func:`piano_roll_image`: goal vs played keys, one row per key,
  correct / missed / wrong presses in :data:`CORRECT_COLOR` / :data:`MISSED_COLOR` /
  :data:`WRONG_COLOR` (the key colours of :mod:`pianomime_env.sim.render`) with a legend, F1
  and note-onset F1 in the title.
- :func:`plot_demonstration`: a demonstration's planned fingertips over time.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import numpy as np

from pianomime_env.sim.render import CORRECT_COLOR, MISSED_COLOR, WRONG_COLOR

__all__ = [
    "BLACK_KEY_ROW_COLOR",
    "CORRECT_COLOR",
    "MISSED_COLOR",
    "WRONG_COLOR",
    "key_name",
    "piano_roll_image",
    "piano_roll_layout",
    "plot_demonstration",
    "plot_piano_roll",
]

#: Piano-roll background of the black keys' rows (white keys' rows are white).
BLACK_KEY_ROW_COLOR = (0.93, 0.93, 0.93)
_BLACK_PITCH_CLASSES = {1, 3, 6, 8, 10}  # C#, D#, F#, G#, A#


# -- Piano rolls ------------------------------------------------------------------------------


def _pyplot():
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError as exc:  # pragma: no cover - matplotlib is a dependency
        raise ImportError("plots need matplotlib: pip install matplotlib") from exc
    return plt


def key_name(key: int) -> str:
    """Name of piano key ``key`` (0 = A0, 39 = C4, 87 = C8)."""
    names = ("C", "C#", "D", "D#", "E", "F", "F#", "G", "G#", "A", "A#", "B")
    pitch = 21 + int(key)
    return f"{names[pitch % 12]}{pitch // 12 - 1}"


def _rolls(goal_keys: np.ndarray, played_keys: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    goal = np.asarray(goal_keys) > 0.5
    played = np.asarray(played_keys) > 0.5
    if goal.shape != played.shape or goal.ndim != 2 or goal.shape[1] != 88:
        raise ValueError(
            f"goal_keys and played_keys must both have shape (T, 88), got {goal.shape} and "
            f"{played.shape}"
        )
    if goal.shape[0] == 0:
        raise ValueError("the piano roll is empty (T = 0 steps)")
    return goal, played


def piano_roll_layout(
    goal_keys: np.ndarray, played_keys: np.ndarray, control_timestep: float = 0.05
) -> dict[str, Any]:
    """Where things are in the piano-roll PNG (so that tests and tools can read its pixels).

    Returns:
        ``figsize`` (inches), ``dpi``, ``axes`` = (left, bottom, width, height) of the plot area
        as fractions of the figure (from the bottom-left), ``xlim`` = (0, T * control_timestep)
        seconds, ``ylim`` = the key range shown (row ``k`` spans ``k - 0.5 .. k + 0.5``).
    """
    goal, played = _rolls(goal_keys, played_keys)
    t_end = goal.shape[0] * control_timestep
    width = float(min(20.0, 6.0 + t_end / 2.0))
    used = np.flatnonzero((goal | played).any(0))
    lo, hi = (used.min(), used.max()) if used.size else (39, 39)
    lo, hi = max(0, lo - 3), min(87, hi + 3)
    height = float(np.clip(1.6 + 0.09 * (hi - lo + 1), 3.0, 9.0))
    left, right, bottom, top = 1.05, 1.75, 0.55, 0.65  # inches
    axes = (left / width, bottom / height, 1 - (left + right) / width, 1 - (bottom + top) / height)
    return {
        "figsize": (width, height),
        "dpi": 100,
        "axes": axes,
        "xlim": (0.0, t_end),
        "ylim": (lo - 0.5, hi + 0.5),
    }


def _piano_roll_figure(goal, played, control_timestep, title, metrics):
    from matplotlib.patches import Patch

    from pianomime_env.music import metrics as metrics_lib

    plt = _pyplot()
    layout = piano_roll_layout(goal, played, control_timestep)
    if metrics is None:
        silent = np.zeros(goal.shape[0])
        metrics = metrics_lib.evaluate(goal, silent, played, silent)
    image = np.ones(goal.shape + (3,))
    black_rows = np.array([(21 + k) % 12 in _BLACK_PITCH_CLASSES for k in range(88)])
    image[:, black_rows] = BLACK_KEY_ROW_COLOR
    image[goal & played] = CORRECT_COLOR
    image[goal & ~played] = MISSED_COLOR
    image[~goal & played] = WRONG_COLOR
    fig = plt.figure(figsize=layout["figsize"], dpi=layout["dpi"])
    ax = fig.add_axes(layout["axes"])
    t_end = layout["xlim"][1]
    ax.imshow(
        image.transpose(1, 0, 2),
        origin="lower",
        aspect="auto",
        extent=(0, t_end, -0.5, 87.5),
        interpolation="nearest",
    )
    ax.set_xlim(*layout["xlim"])
    ax.set_ylim(*layout["ylim"])
    lo, hi = int(np.ceil(layout["ylim"][0])), int(np.floor(layout["ylim"][1]))
    ticks = [k for k in range(lo, hi + 1) if (21 + k) % 12 == 0] or [lo, hi]
    ax.set_yticks(ticks, [f"{key_name(k)} ({k})" for k in ticks])
    ax.set_xlabel("time (s)")
    ax.set_ylabel("key")
    counts = (int((goal & played).sum()), int((goal & ~played).sum()), int((~goal & played).sum()))
    handles = [
        Patch(color=CORRECT_COLOR, label=f"correct\n(goal, pressed)\n{counts[0]} key-steps"),
        Patch(color=MISSED_COLOR, label=f"missed\n(goal, not pressed)\n{counts[1]} key-steps"),
        Patch(color=WRONG_COLOR, label=f"wrong\n(pressed, not goal)\n{counts[2]} key-steps"),
    ]
    ax.legend(
        handles=handles,
        loc="upper left",
        bbox_to_anchor=(1.01, 1.0),
        borderaxespad=0.0,
        fontsize=8,
        frameon=False,
        labelspacing=1.2,
    )
    head = title or "piano roll: goal vs played"
    ax.set_title(
        f"{head}\nF1 {metrics['f1']:.3f} · note-onset F1 {metrics['note_f1']:.3f}",
        fontsize=10,
    )
    return fig


def plot_piano_roll(
    path: str | os.PathLike,
    goal_keys: np.ndarray,
    played_keys: np.ndarray,
    *,
    control_timestep: float = 0.05,
    title: str = "",
    metrics: Mapping[str, float] | None = None,
) -> Path:
    """Saves a piano-roll PNG of goal vs played keys, with a legend.

    One row per key (octaves labelled; black keys' rows shaded), one column per control step:
    correct presses in :data:`CORRECT_COLOR` (green), missed ones in :data:`MISSED_COLOR`
    (blue), wrong ones in :data:`WRONG_COLOR` (red). The title carries F1 and note-onset F1.
    The layout is :func:`piano_roll_layout`'s.

    Args:
        goal_keys: (T, 88) goal roll (> 0.5 = key should be down).
        played_keys: (T, 88) key activations.
        control_timestep: seconds per row, for the time axis.
        title: first title line (default "piano roll: goal vs played").
        metrics: ``f1`` and ``note_f1`` for the title (e.g. the env's ``info["metrics"]``);
            default: computed from the two rolls with :func:`pianomime_env.music.metrics.evaluate`.
    """
    goal, played = _rolls(goal_keys, played_keys)
    fig = _piano_roll_figure(goal, played, control_timestep, title, metrics)
    path = Path(path)
    tmp = path.with_name(f".{path.stem}.tmp.png")
    try:
        fig.savefig(tmp, dpi=fig.dpi)
        os.replace(tmp, path)
    finally:
        _pyplot().close(fig)
        tmp.unlink(missing_ok=True)
    return path


def piano_roll_image(
    goal_keys: np.ndarray,
    played_keys: np.ndarray,
    *,
    control_timestep: float = 0.05,
    title: str = "",
    metrics: Mapping[str, float] | None = None,
) -> np.ndarray:
    """:func:`plot_piano_roll`'s picture as an (H, W, 3) uint8 array (e.g. for TensorBoard)."""
    goal, played = _rolls(goal_keys, played_keys)
    fig = _piano_roll_figure(goal, played, control_timestep, title, metrics)
    try:
        fig.canvas.draw()
        image = np.asarray(fig.canvas.buffer_rgba())[..., :3].copy()
    finally:
        _pyplot().close(fig)
    return image


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
    from pianomime_env.sim.scene import FINGER_NAMES, FINGERTIP_COLORS

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
