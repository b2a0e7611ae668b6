"""The `pianomime` command, run as a user would."""

from __future__ import annotations

import json
import subprocess
import sys

import numpy as np
import pytest

from pianomime_env.app import cli


def run_cli(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "pianomime_env.app.cli", *args], capture_output=True, text=True
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
    wrote = [line for line in (proc.stdout + proc.stderr).splitlines() if "target.wav" in line]
    assert len(wrote) == 1 and "(the score, for comparison)" in wrote[0]  # said once
    assert "audioop" not in proc.stderr and "Editable" not in proc.stderr  # no library noise
    result = json.loads((out / "metrics.json").read_text())
    assert result["song"] == "CMajorChordProgressionTwoHands" and result["steps"] == 81
    assert result["metrics"]["note_f1"] == 0.0
    # Idle hands press nothing: per-step recall counts only the steps whose goal is empty.
    from pianomime_env import PianoMimeEnv

    goal = PianoMimeEnv("CMajorChordProgressionTwoHands", trim_silence=True).trajectory.keys
    empty = float(np.mean(goal.sum(axis=1) == 0))
    assert result["metrics"]["recall"] == pytest.approx(empty) and 0 < empty < 0.1
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
        [sys.executable, "-m", "pianomime_env.app.cli", *args],
        capture_output=True,
        text=True,
        cwd=tmp_path,
    )
    assert proc.returncode == 2
    assert message in proc.stderr.lower()
    assert "Traceback" not in proc.stderr


def test_demo_from_midi_and_plot(tmp_path):
    out = tmp_path / "demo.npz"
    proc = run_cli("demo", "from-midi", "CMajorScaleOneHand", "-o", str(out))
    assert proc.returncode == 0, proc.stderr
    from pianomime_env.demos import Demonstration

    demo = Demonstration.load(out, expected_steps=151)
    assert demo.source.startswith("score:")
    assert out.with_suffix(".png").stat().st_size > 10_000
    proc = run_cli("demo", "plot", str(out), "-o", str(tmp_path / "again.png"))
    assert proc.returncode == 0 and (tmp_path / "again.png").exists()


def test_demo_from_video_without_model_says_how_to_build_it(tmp_path, tiny_midi):
    video = tmp_path / "v.mp4"
    video.write_bytes(b"not really a video")
    proc = run_cli(
        "demo",
        "from-video",
        str(video),
        "--midi",
        str(tiny_midi),
        "--hand-model",
        str(tmp_path / "missing.task"),
        "-o",
        str(tmp_path / "d.npz"),
    )
    assert proc.returncode == 2
    assert "build-hand-model" in proc.stderr and "Traceback" not in proc.stderr
    assert not (tmp_path / "d.npz").exists()


def test_play_keeps_every_note_of_a_two_track_midi(tmp_path, two_track_midi):
    """`pianomime play` trims silence by default; on a file whose first track ends last the
    closing notes of the other track must survive (RoboPianist's file-order cut drops them)."""
    out = tmp_path / "run"
    proc = run_cli("play", str(two_track_midi), "--no-video", "--out", str(out))
    assert proc.returncode == 0, proc.stderr
    result = json.loads((out / "metrics.json").read_text())
    # Earliest onset 0.25 s .. latest offset 4.0 s: 3.75 s at 20 Hz plus the final row (the
    # file-order cut would keep 0.5 s .. 3.0 s, 51 steps).
    assert result["steps"] == 76
    assert result["metrics"]["note_recall"] > 0


def test_help_lists_every_subcommand():
    proc = run_cli("--help")
    assert proc.returncode == 0, proc.stderr
    usage = proc.stdout.splitlines()[0]
    for name in ("play", "bench", "songs", "collect", "demo", "dataset"):
        assert name in usage, (name, usage)
    for group, subs in (("demo", ("from-midi", "from-video", "plot")), ("dataset", ("info",))):
        proc = run_cli(group, "--help")
        assert proc.returncode == 0 and all(s in proc.stdout for s in subs), proc.stdout
