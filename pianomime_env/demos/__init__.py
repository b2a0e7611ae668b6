"""Demonstrations: fingertip/wrist/fingering trajectories to imitate (format + score planner)."""

from pianomime_env.demos.format import FORMAT_VERSION, Demonstration, DemonstrationError
from pianomime_env.demos.planner import from_midi

__all__ = ["FORMAT_VERSION", "Demonstration", "DemonstrationError", "from_midi"]
