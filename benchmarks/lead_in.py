"""How much a silent lead-in before the first note is worth to the plain sight-reader.

    .venv/bin/python benchmarks/lead_in.py                                   # Twinkle + chord progression
    .venv/bin/python benchmarks/lead_in.py --songs NocturneRousseau --leads 0 1

With ``trim_silence`` a song's first note sounds at step 0 while the hands start at their rest
pose, away from it: the residual PPO runs of docs/results.md lose most of their remaining
fingered key-steps in the first 20 steps. Here each song is trimmed of silence and then given
``lead`` seconds of silence before its first note by the env's ``initial_buffer_time``
(RoboPianist's option of the same name: ``gym.make(id, trim_silence=True,
initial_buffer_time=1.0)``), so the hands have that long to reach the first notes, and the
plain sight-reader (the residual learners' nominal) plays the whole song once, seed 0.
RoboPianist's per-step F1 scores every silent step where nothing is pressed 1.0, so the lead-in
raises the episode's F1 by itself; "F1, song steps only" averages the song's own steps (after
the lead-in) and compares directly with the rows without one. Note-onset F1 gives silence no
credit. No training; a few seconds per song and lead.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path

import tyro
from policy_misses import misses  # benchmarks/policy_misses.py, beside this script


@dataclass
class Args:
    songs: list[str] = field(
        default_factory=lambda: ["TwinkleTwinkleRousseau", "CMajorChordProgressionTwoHands"]
    )
    """Songs to measure (built-in names or song specs)."""
    leads: list[float] = field(default_factory=lambda: [0.0, 0.5, 1.0, 1.5])
    """Lead-ins to try, in seconds of silence before the first note."""
    out: Path | None = None
    """Also write the rows as JSON here."""


def measure(song: str, lead: float) -> dict:
    """The plain sight-reader on ``song`` after ``lead`` seconds of silence."""
    row = misses(song, "sight-reader", {"initial_buffer_time": lead}, first_steps=20)
    return {"lead_s": lead, **row}


def main(args: Args) -> list[dict]:
    rows = []
    print("| song | lead-in (s) | F1 | F1, song steps only | precision | recall | note-onset F1 |")
    print("|---|---:|---:|---:|---:|---:|---:|")
    for song in args.songs:
        for lead in args.leads:
            r = measure(song, lead)
            rows.append(r)
            print(
                f"| {song} | {lead:g} | {r['f1']:.3f} | {r['f1_song']:.3f} | {r['precision']:.3f} | "
                f"{r['recall']:.3f} | {r['note_f1']:.3f} |",
                flush=True,
            )
    if args.out is not None:
        args.out.write_text(json.dumps(rows, indent=1))
    return rows


if __name__ == "__main__":
    main(tyro.cli(Args))
