"""Performance videos (with sound) and reading media files back.

- :class:`VideoWriter` / :func:`write_video`: H.264 MP4 from RGB frames (imageio and its bundled
  ffmpeg), streamed frame by frame, with an optional audio track muxed in (AAC).
- :func:`probe_media`: the streams of a media file and their durations (PyAV).
- :func:`read_audio`: a media file's audio track as mono float samples (PyAV).

Files appear only once complete (written to a temporary name, then renamed).
"""

from __future__ import annotations

import os
import subprocess
from collections.abc import Iterable
from pathlib import Path
from typing import Any

import numpy as np

_MEDIA_EXTRA = 'pip install -e ".[audio]"'


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
        from pianomime_env.media.audio import write_wav

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
