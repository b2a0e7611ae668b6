"""How much a silent lead-in before the first note is worth to the plain sight-reader.

    .venv/bin/python benchmarks/lead_in.py                                   # Twinkle + chord progression
    .venv/bin/python benchmarks/lead_in.py --songs NocturneRousseau --leads 0 1

With ``trim_silence`` a song's first note sounds at step 0 while the hands start at their rest
pose, away from it: the residual PPO runs of docs/results.md lose most of their remaining
fingered key-steps in the first 20 steps. Here each song is trimmed of silence and then given
``lead`` seconds of silence before its first note by the env's ``initial_buffer_time``
(RoboPianist's option of the same name: ``gym.make(id, trim_silence=True,
initial_buffer_time=1.0)``), so the hands have that long to reach the first notes, and the
plain sight-reader (the residual learners' nominal) plays the whole song once, seed 0. Silent
steps add no true or false positives to RoboPianist's per-step F1, so the figures compare
directly. No training; a few seconds per song and lead.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path

import tyro

from pianomime_env.control.sightreader import SightReader
from pianomime_env.envs.piano import PianoMimeEnv


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
    env = PianoMimeEnv(song, trim_silence=True, initial_buffer_time=lead)
    reader = SightReader(env)
    obs, _ = env.reset(seed=0)
    reader.reset()
    info: dict = {}
    for _ in range(env.n_steps):
        obs, _, terminated, truncated, info = env.step(reader(obs))
        if terminated or truncated:
            break
    env.close()
    m = info["metrics"]
    keys = ("f1", "precision", "recall", "note_f1")
    return {"song": song, "lead_s": lead, "steps": env.n_steps, **{k: float(m[k]) for k in keys}}


def main(args: Args) -> list[dict]:
    rows = []
    print("| song | lead-in (s) | steps | F1 | precision | recall | note-onset F1 |")
    print("|---|---:|---:|---:|---:|---:|---:|")
    for song in args.songs:
        for lead in args.leads:
            r = measure(song, lead)
            rows.append(r)
            print(
                f"| {song} | {lead:g} | {r['steps']} | {r['f1']:.3f} | {r['precision']:.3f} | "
                f"{r['recall']:.3f} | {r['note_f1']:.3f} |",
                flush=True,
            )
    if args.out is not None:
        args.out.write_text(json.dumps(rows, indent=1))
    return rows


if __name__ == "__main__":
    main(tyro.cli(Args))
