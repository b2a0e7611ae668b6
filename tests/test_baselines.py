"""baselines/evaluate.py: per-song evaluation table."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def test_evaluate_writes_table(tmp_path):
    proc = subprocess.run(
        [
            sys.executable,
            str(ROOT / "baselines" / "evaluate.py"),
            "--songs",
            "CMajorScaleOneHand",
            "CMajorChordProgressionTwoHands",
            "--policy",
            "idle",
            "--workers",
            "1",
            "--out",
            str(tmp_path),
        ],
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert proc.returncode == 0, proc.stderr[-2000:]
    rows = json.loads((tmp_path / "results.json").read_text())["rows"]
    assert [r["song"] for r in rows] == ["CMajorScaleOneHand", "CMajorChordProgressionTwoHands"]
    assert all(r["note_f1"] == 0.0 for r in rows)  # idle hands play nothing
    assert "| **mean** |" in (tmp_path / "results.md").read_text()


def test_truncate_keeps_only_early_notes():
    sys.path.insert(0, str(ROOT / "baselines"))
    from evaluate import _truncate

    from pianomime_env.songs import load_song

    song = load_song("TwinkleTwinkleLittleStar")
    short = _truncate(song, 2.0)
    assert short.n_notes < song.n_notes and short.end.max() <= 2.0
