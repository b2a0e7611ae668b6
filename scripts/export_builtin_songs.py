"""Export RoboPianist's debug songs to ``pianomime_env/data/songs/<Name>.json``.

Run from the repository root (needs robopianist, which imports note_seq)::

    python scripts/export_builtin_songs.py

Each JSON file holds the notes in ``NoteSequence`` order (pitch, start, end, velocity,
fingering = ``note.part`` or -1 when the song has no fingering), the sustain-pedal
(control change 64) events (time, value, instrument) and the title/artist, exactly as
``robopianist.music.load(name)`` returns them (i.e. after its ``transpose(0)``, which
drops notes outside the piano range). Floats are written with ``repr`` precision so the
round trip is exact.
"""

from __future__ import annotations

import json
from pathlib import Path

from robopianist import music

# Our name -> robopianist DEBUG_MIDIS name (identical in robopianist 1.0.10).
NAMES = {
    "TwinkleTwinkleLittleStar": "TwinkleTwinkleLittleStar",
    "CMajorScaleOneHand": "CMajorScaleOneHand",
    "CMajorScaleTwoHands": "CMajorScaleTwoHands",
    "DMajorScaleOneHand": "DMajorScaleOneHand",
    "DMajorScaleTwoHands": "DMajorScaleTwoHands",
    "CMajorChordProgressionTwoHands": "CMajorChordProgressionTwoHands",
    "TwinkleTwinkleRousseau": "TwinkleTwinkleRousseau",
    "NocturneRousseau": "NocturneRousseau",
}

OUT_DIR = Path(__file__).resolve().parents[1] / "pianomime_env" / "data" / "songs"


def export(name: str, rp_name: str) -> dict:
    if rp_name not in music.DEBUG_MIDIS:
        raise SystemExit(f"{rp_name!r} is not in robopianist.music.DEBUG_MIDIS={music.DEBUG_MIDIS}")
    midi = music.load(rp_name)
    seq = midi.seq
    has_fingering = midi.has_fingering()
    notes = list(seq.notes)
    sustain = [cc for cc in seq.control_changes if cc.control_number == 64]
    return {
        "format": "pianomime-song-v1",
        "name": name,
        "title": seq.sequence_metadata.title,
        "artist": seq.sequence_metadata.artist,
        "source": f"robopianist==1.0.10 music.load({rp_name!r})",
        "notes": {
            "pitch": [n.pitch for n in notes],
            "start": [n.start_time for n in notes],
            "end": [n.end_time for n in notes],
            "velocity": [n.velocity for n in notes],
            "fingering": [n.part if has_fingering else -1 for n in notes],
        },
        "sustain": {
            "time": [cc.time for cc in sustain],
            "value": [cc.control_value for cc in sustain],
            "instrument": [cc.instrument for cc in sustain],
        },
    }


def main() -> None:
    OUT_DIR.mkdir(parents=True, exist_ok=True)
    for name, rp_name in NAMES.items():
        obj = export(name, rp_name)
        path = OUT_DIR / f"{name}.json"
        path.write_text(json.dumps(obj, separators=(",", ":")) + "\n")
        print(f"{path}: {len(obj['notes']['pitch'])} notes, {path.stat().st_size} bytes")


if __name__ == "__main__":
    main()
