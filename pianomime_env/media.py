"""Things to look at and listen to: performance videos (with sound), piano-roll plots.

- :class:`VideoWriter` / :func:`write_video`: H.264 MP4 from RGB frames (imageio and its bundled
  ffmpeg), streamed frame by frame, with an optional audio track muxed in (AAC).
- :func:`probe_media`: the streams of a media file and their durations (PyAV).
- :func:`plot_piano_roll` / :func:`piano_roll_image`: goal vs played keys, one row per key,
  correct / missed / wrong presses in :data:`CORRECT_COLOR` / :data:`MISSED_COLOR` /
  :data:`WRONG_COLOR` with a legend, F1 and note-onset F1 in the title.

Files appear only once complete (written to a temporary name, then renamed).
"""

from __future__ import annotations

import os
import subprocess
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any

import numpy as np

#: RGB (0..1) of a key pressed while the score asks for it (piano roll and video).
CORRECT_COLOR = (0.18, 0.72, 0.22)
#: RGB of a key the score asks for that is not pressed.
MISSED_COLOR = (0.45, 0.62, 0.95)
#: RGB of a key pressed while the score asks for it to be up.
WRONG_COLOR = (0.88, 0.12, 0.10)
#: Piano-roll background of the black keys' rows (white keys' rows are white).
BLACK_KEY_ROW_COLOR = (0.93, 0.93, 0.93)

_MEDIA_EXTRA = 'pip install -e ".[audio]"'
_BLACK_PITCH_CLASSES = {1, 3, 6, 8, 10}  # C#, D#, F#, G#, A#


class MediaUnavailableError(ImportError):
    """A video or audio library is missing; the message says which extra installs it."""


def _imageio():
    try:
        import imageio.v2 as imageio
        import imageio_ffmpeg
    except ImportError as exc:
        raise MediaUnavailableError(
            f"videos need imageio and imageio-ffmpeg: {_MEDIA_EXTRA} (import failed: {exc})"
        ) from exc
    return imageio, imageio_ffmpeg


def check_video() -> None:
    """Raises :class:`MediaUnavailableError` (saying what to install) unless MP4s can be written."""
    _, imageio_ffmpeg = _imageio()
    try:
        imageio_ffmpeg.get_ffmpeg_exe()
    except RuntimeError as exc:
        raise MediaUnavailableError(f"no ffmpeg binary for videos: {_MEDIA_EXTRA} ({exc})") from exc


def ffmpeg_exe() -> str:
    """Path of the ffmpeg binary that imageio-ffmpeg ships."""
    return _imageio()[1].get_ffmpeg_exe()


class VideoWriter:
    """Writes RGB frames to an H.264 MP4 as they come, with optional audio at the end.

    Use as a context manager (an exception inside the block leaves no file behind)::

        with VideoWriter("out.mp4", fps=20) as video:
            for frame in frames:
                video.append(frame)
            video.set_audio(samples, 44100)   # optional, (N,) float in [-1, 1]

    Args:
        path: the ``.mp4`` to write.
        fps: frames per second.
        quality: imageio's quality, 0..10 (10 best).
    """

    def __init__(self, path: str | os.PathLike, fps: float, *, quality: float = 7) -> None:
        if not fps > 0:
            raise ValueError(f"fps must be > 0, got {fps}")
        self.path = Path(path)
        self.fps = float(fps)
        self.quality = quality
        self.n_frames = 0
        self._shape: tuple[int, ...] | None = None
        self._writer = None
        self._audio: tuple[np.ndarray, int] | None = None
        self._tmp = self.path.with_name(f".{self.path.stem}.video.tmp.mp4")

    @property
    def duration(self) -> float:
        """Seconds of video written so far (frames / fps)."""
        return self.n_frames / self.fps

    def append(self, frame: np.ndarray) -> None:
        """Adds one (H, W, 3) uint8 frame (all frames the same size)."""
        frame = np.asarray(frame)
        if frame.ndim != 3 or frame.shape[2] != 3:
            raise ValueError(f"frames must have shape (H, W, 3), got {frame.shape}")
        if self._shape is None:
            imageio, _ = _imageio()
            self._shape = frame.shape
            self._writer = imageio.get_writer(
                self._tmp,
                fps=self.fps,
                codec="libx264",
                macro_block_size=8,
                quality=self.quality,
                ffmpeg_log_level="error",
            )
        elif frame.shape != self._shape:
            raise ValueError(f"frame {self.n_frames} has shape {frame.shape}, not {self._shape}")
        self._writer.append_data(frame.astype(np.uint8, copy=False))
        self.n_frames += 1

    def set_audio(self, samples: np.ndarray, sample_rate: int) -> None:
        """Audio to mux in at :meth:`close`: (N,) float samples in [-1, 1], mono.

        It must last the video's duration within one frame; it is then padded with silence or
        cut to exactly ``n_frames / fps`` seconds.
        """
        samples = np.asarray(samples, dtype=np.float32).reshape(-1)
        self._audio = (samples, int(sample_rate))

    def close(self) -> Path:
        """Finishes the file (muxing the audio, if set); returns its path."""
        if self._writer is None:
            raise ValueError(f"no frames to write to {self.path}")
        writer, self._writer = self._writer, None
        writer.close()
        try:
            if self._audio is None:
                os.replace(self._tmp, self.path)
            else:
                self._mux(*self._audio)
        finally:
            self._tmp.unlink(missing_ok=True)
        return self.path

    def abort(self) -> None:
        """Stops writing and removes the partial file."""
        if self._writer is not None:
            writer, self._writer = self._writer, None
            try:
                writer.close()
            except Exception:  # noqa: BLE001 - best effort: the partial file is removed anyway
                pass
        self._tmp.unlink(missing_ok=True)

    def _mux(self, samples: np.ndarray, sample_rate: int) -> None:
        from pianomime_env.audio import write_wav

        n = int(round(self.duration * sample_rate))
        frame_samples = sample_rate / self.fps
        if abs(samples.shape[0] - n) > frame_samples:
            raise ValueError(
                f"audio lasts {samples.shape[0] / sample_rate:.3f} s but the video "
                f"{self.duration:.3f} s ({self.n_frames} frames at {self.fps:g} fps); "
                "they must agree within one frame"
            )
        samples = np.pad(samples[:n], (0, max(0, n - samples.shape[0])))
        wav = self.path.with_name(f".{self.path.stem}.audio.tmp.wav")
        out = self.path.with_name(f".{self.path.stem}.tmp.mp4")
        try:
            write_wav(wav, samples, sample_rate)
            cmd = [
                ffmpeg_exe(), "-y", "-v", "error", "-i", str(self._tmp), "-i", str(wav),
                "-map", "0:v:0", "-map", "1:a:0", "-c:v", "copy", "-c:a", "aac", "-b:a", "160k",
                "-movflags", "+faststart", str(out),
            ]  # fmt: skip
            proc = subprocess.run(cmd, capture_output=True, text=True)
            if proc.returncode != 0:
                raise RuntimeError(
                    f"ffmpeg could not mux the audio into {self.path}: {proc.stderr}"
                )
            os.replace(out, self.path)
        finally:
            wav.unlink(missing_ok=True)
            out.unlink(missing_ok=True)

    def __enter__(self) -> VideoWriter:
        return self

    def __exit__(self, exc_type, exc, tb) -> None:
        if exc_type is None:
            self.close()
        else:
            self.abort()


def write_video(
    path: str | os.PathLike,
    frames: Iterable[np.ndarray],
    fps: float,
    *,
    audio: np.ndarray | None = None,
    sample_rate: int = 44100,
) -> Path:
    """Writes (H, W, 3) uint8 frames as an H.264 MP4, with optional mono audio (AAC).

    Args:
        frames: the frames, in order.
        fps: frames per second.
        audio: optional (N,) float samples in [-1, 1] lasting len(frames) / fps seconds
            (within one frame).
        sample_rate: audio samples per second.
    """
    with VideoWriter(path, fps) as video:
        for frame in frames:
            video.append(frame)
        if video.n_frames == 0:
            raise ValueError(f"no frames to write to {path}")
        if audio is not None:
            video.set_audio(audio, sample_rate)
    return Path(path)


def probe_media(path: str | os.PathLike) -> dict[str, Any]:
    """The streams of a media file, read with PyAV (the ``audio`` extra).

    Returns:
        ``{"video": {...} | None, "audio": {...} | None}``; a video entry has ``duration`` (s),
        ``frames``, ``fps``, ``width``, ``height``; an audio entry has ``duration`` (s),
        ``sample_rate``, ``channels``, ``codec``. Durations come from the container's stream
        headers (time base x duration), not from the file size.
    """
    try:
        import av
    except ImportError as exc:
        raise MediaUnavailableError(
            f"probing media files needs PyAV: {_MEDIA_EXTRA} (import failed: {exc})"
        ) from exc
    result: dict[str, Any] = {"video": None, "audio": None}
    with av.open(str(path)) as container:
        for stream in container.streams:
            if stream.duration is None or stream.time_base is None:
                duration = None
            else:
                duration = float(stream.duration * stream.time_base)
            if stream.type == "video" and result["video"] is None:
                rate = stream.average_rate
                result["video"] = {
                    "duration": duration,
                    "frames": int(stream.frames),
                    "fps": float(rate) if rate else None,
                    "width": stream.codec_context.width,
                    "height": stream.codec_context.height,
                }
            elif stream.type == "audio" and result["audio"] is None:
                result["audio"] = {
                    "duration": duration,
                    "sample_rate": int(stream.codec_context.sample_rate),
                    "channels": int(stream.codec_context.channels),
                    "codec": stream.codec_context.name,
                }
    return result


def read_audio(path: str | os.PathLike) -> tuple[np.ndarray, int]:
    """Decodes a media file's first audio stream (PyAV): ((N,) float32 mono, sample rate)."""
    try:
        import av
    except ImportError as exc:
        raise MediaUnavailableError(
            f"reading audio needs PyAV: {_MEDIA_EXTRA} (import failed: {exc})"
        ) from exc
    chunks = []
    with av.open(str(path)) as container:
        if not container.streams.audio:
            raise ValueError(f"{path} has no audio stream")
        stream = container.streams.audio[0]
        rate = int(stream.codec_context.sample_rate)
        mono = av.AudioResampler(format="flt", layout="mono", rate=rate)
        for frame in container.decode(stream):
            for out in mono.resample(frame):
                chunks.append(out.to_ndarray().reshape(-1))
        for out in mono.resample(None):  # flush
            chunks.append(out.to_ndarray().reshape(-1))
    samples = np.concatenate(chunks).astype(np.float32) if chunks else np.zeros(0, np.float32)
    return samples, rate


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

    from pianomime_env import metrics as metrics_lib

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
            default: computed from the two rolls with :func:`pianomime_env.metrics.evaluate`.
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
