"""Plan coverage: how many of a song's goal key-steps a demonstration gives a pressing finger.

A plan-following player (the sight-reader, a residual over it) cannot press a goal key-step its
plan gives no finger, so coverage ``c`` bounds its per-step recall, and its F1 by
``2c / (1 + c)`` (no false positives). Counted as ``benchmarks/residual_ceiling.py`` does:
goal key-steps (``keys > 0.5``) whose ``fingering`` entry is a finger (``>= 0``).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from pianomime_env.demos.format import Demonstration

__all__ = ["PlanCoverage", "plan_coverage"]


@dataclass(frozen=True)
class PlanCoverage:
    """Goal key-steps of a song and how a plan covers them.

    Attributes:
        goal: goal key-steps.
        covered: goal key-steps with a finger assigned (pressing) in the plan.
        after_release: uncovered key-steps after the note's finger let go of it (a held note
            released early).
        before_finger: uncovered key-steps before the note's finger arrives (none earlier).
        gap: uncovered key-steps between fingered steps of the same note.
        never: uncovered key-steps of notes no step of which is fingered.
        extra: fingered key-steps that are not goal key-steps (a well-formed plan has none).
    """

    goal: int
    covered: int
    after_release: int
    before_finger: int
    gap: int
    never: int
    extra: int

    @property
    def fraction(self) -> float:
        """Covered / goal key-steps (1.0 for a song without notes)."""
        return self.covered / self.goal if self.goal else 1.0

    @property
    def f1_ceiling(self) -> float:
        """Per-step F1 of a player that presses exactly the covered key-steps: 2c / (1 + c)."""
        c = self.fraction
        return 2 * c / (1 + c)


def plan_coverage(demo: Demonstration | np.ndarray, keys: np.ndarray) -> PlanCoverage:
    """Coverage of the goal roll ``keys`` ((T, 88), e.g. ``NoteTrajectory.keys``) by ``demo``
    (a :class:`Demonstration` or its (T, 88) ``fingering``). Extra trailing steps of either are
    ignored (the shorter length counts)."""
    fing = np.asarray(demo.fingering if isinstance(demo, Demonstration) else demo)
    goal = np.asarray(keys) > 0.5
    n = min(len(fing), len(goal))
    fing, goal = fing[:n], goal[:n]
    fingered = fing >= 0
    covered = goal & fingered
    missing = goal & ~fingered
    counts = {"after_release": 0, "before_finger": 0, "gap": 0, "never": 0}
    for k in np.flatnonzero(missing.any(axis=0)):
        col = goal[:, k]
        # Notes: runs of consecutive goal steps of key k.
        edges = np.diff(np.concatenate([[0], col.astype(np.int8), [0]]))
        for s, e in zip(np.flatnonzero(edges == 1), np.flatnonzero(edges == -1)):
            f = fingered[s:e, k]
            miss = np.flatnonzero(~f)
            if miss.size == 0:
                continue
            if not f.any():
                counts["never"] += miss.size
                continue
            on = np.flatnonzero(f)
            counts["before_finger"] += int((miss < on[0]).sum())
            counts["after_release"] += int((miss > on[-1]).sum())
            counts["gap"] += int(((miss > on[0]) & (miss < on[-1])).sum())
    return PlanCoverage(
        goal=int(goal.sum()),
        covered=int(covered.sum()),
        extra=int((fingered & ~goal).sum()),
        **counts,
    )
