"""Scripts of benchmarks/ that the docs' figures come from, run as a user runs them."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def test_policy_misses_splits_every_missed_key_step(tmp_path):
    out = tmp_path / "misses.json"
    cmd = [sys.executable, str(ROOT / "benchmarks" / "policy_misses.py")]
    cmd += ["--song", "CMajorChordProgressionTwoHands", "--policies", "sight-reader", "idle"]
    cmd += ["--env-kwargs", '{"initial_buffer_time": 0.5}', "--out", str(out)]
    proc = subprocess.run(cmd, cwd=ROOT, capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr[-2000:]
    reader, idle = json.loads(out.read_text())
    for row in (reader, idle):
        assert row["missed"] == row["not_fingered"] + row["fingered"] <= row["goal"]
        assert row["fingered_first_steps"] <= row["fingered"]
        assert row["fingered_onsets"] <= row["fingered"]
    # The idle hands press nothing: every goal key-step is missed, none is wrong.
    assert idle["missed"] == idle["goal"] == reader["goal"] and idle["wrong"] == 0
    assert idle["note_f1"] == 0.0 and reader["missed"] < reader["goal"] // 2
    # Per-step F1 credits silent steps with nothing pressed: the 10 lead-in steps (of 91) give
    # the idle hands F1 > 0.1 over the episode, which the song's own steps do not.
    assert idle["lead_in_steps"] == 10 and idle["f1"] > 0.1 > idle["f1_song"]
    assert reader["f1_song"] > 0.6
    assert "| sight-reader |" in proc.stdout


def test_lead_in_compares_the_song_steps_without_the_silence_credit(tmp_path):
    out = tmp_path / "lead.json"
    cmd = [sys.executable, str(ROOT / "benchmarks" / "lead_in.py")]
    cmd += ["--songs", "CMajorChordProgressionTwoHands", "--leads", "0", "1", "--out", str(out)]
    proc = subprocess.run(cmd, cwd=ROOT, capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr[-2000:]
    none, one = json.loads(out.read_text())
    assert none["f1_song"] == none["f1"] and none["lead_in_steps"] == 0
    assert one["lead_in_steps"] == 20 and one["f1"] > one["f1_song"]
    # The hands reach the first chord in time: the song's own steps play better too.
    assert one["f1_song"] > none["f1_song"] + 0.05 and one["note_f1"] > none["note_f1"]
