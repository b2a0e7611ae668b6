"""Demonstrations: fingertip/wrist/fingering trajectories to imitate.

- :class:`Demonstration` — the versioned file format (``format.py``).
- :func:`from_midi` — planned from a score alone (``planner.py``).
- :func:`from_video` — from a video of a pianist + its MIDI (``video.py``; ``video`` extra).
"""

from typing import Any

from pianomime_env.demos.format import FORMAT_VERSION, Demonstration, DemonstrationError
from pianomime_env.demos.planner import from_midi

__all__ = ["FORMAT_VERSION", "Demonstration", "DemonstrationError", "from_midi", "from_video"]


def __getattr__(name: str) -> Any:
    # The video pipeline pulls in OpenCV/MediaPipe helpers; load it only when asked for.
    if name == "from_video":
        from pianomime_env.demos.video import from_video

        return from_video
    raise AttributeError(f"module 'pianomime_env.demos' has no attribute {name!r}")
