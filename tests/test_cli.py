"""The `pianomime` command, run as a user would."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest

from pianomime_env import cli


def run_cli(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "pianomime_env.cli", *args], capture_output=True, text=True
    )


def test_songs_lists_builtins():
    proc = run_cli("songs", "--format", "json")
    assert proc.returncode == 0, proc.stderr
    assert "NocturneRousseau" in json.loads(proc.stdout)


def test_play_writes_metrics_and_video(tmp_path):
    out = tmp_path / "run"
    proc = run_cli(
        "play",
        "PianoMime-CMajorChordProgressionTwoHands-v0",
        "--policy",
        "idle",
        "--out",
        str(out),
        "--width",
        "96",
        "--height",
        "64",
    )
    assert proc.returncode == 0, proc.stderr
    assert "note-onset F1 0.000" in proc.stdout
    result = json.loads((out / "metrics.json").read_text())
    assert result["song"] == "CMajorChordProgressionTwoHands" and result["steps"] == 81
    assert result["metrics"]["note_f1"] == 0.0 and 0 <= result["metrics"]["f1"] <= 1
    video = out / "performance.mp4"
    assert video.stat().st_size > 1000
    import imageio.v2 as imageio

    reader = imageio.get_reader(video)
    frames = sum(1 for _ in reader)
    assert frames == 82  # the reset frame + one per step


def test_play_midi_file_without_video(tmp_path, tiny_midi):
    result = cli.run_play(cli.Play(song=str(tiny_midi), out=tmp_path, policy="random", video=False))
    assert result["steps"] == 41 and not (tmp_path / "performance.mp4").exists()
    assert json.loads((tmp_path / "metrics.json").read_text())["policy"] == "random"


@pytest.mark.parametrize(
    "args, message",
    [
        (["play", "NoSuchSong", "--out", "x"], "unknown song"),
        (["play", "CMajorScaleOneHand", "--policy", "nope", "--no-video"], "unknown policy"),
    ],
)
def test_errors_are_clear(tmp_path, args, message):
    proc = subprocess.run(
        [sys.executable, "-m", "pianomime_env.cli", *args],
        capture_output=True,
        text=True,
        cwd=tmp_path,
    )
    assert proc.returncode == 2
    assert message in proc.stderr.lower()
    assert "Traceback" not in proc.stderr
