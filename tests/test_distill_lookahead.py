"""baselines/distill_lookahead.py at a tiny budget (subprocess, as CleanRL tests its scripts):
the teacher round and a DAgger round run, the checkpoint plays through `pianomime play` and
baselines/evaluate.py, and bad arguments are refused before anything is written."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

ROOT = Path(__file__).resolve().parents[1]
BIN = Path(sys.executable).parent
pytestmark = pytest.mark.slow  # a minute of look-ahead rollouts
pytest.importorskip("torch")


def run(args: list[str], timeout: int = 600) -> subprocess.CompletedProcess:
    cmd = [sys.executable, str(ROOT / "baselines" / "distill_lookahead.py"), *args, "--no-progress"]
    return subprocess.run(cmd, cwd=ROOT, capture_output=True, text=True, timeout=timeout)


def test_distill_trains_dagger_round_and_plays(tmp_path):
    run_dir = tmp_path / "dl"
    proc = run(
        [
            "--songs", "CMajorScaleTwoHands", "DMajorScaleOneHand",
            "--max-seconds", "4", "--rounds", "1", "--train-steps", "40", "--workers", "2",
            "--eval-songs", "TwinkleTwinkleLittleStar", "--eval-max-seconds", "3",
            "--run-dir", str(run_dir),
        ]
    )  # fmt: skip
    assert proc.returncode == 0, proc.stdout[-2000:] + proc.stderr[-2000:]
    summary = json.loads((run_dir / "summary.json").read_text())
    r0, r1 = summary["rounds"]
    assert r0["beta"] == 1.0 and r0["teacher_executed_share"] == 1.0 and r0["songs"] == 2
    assert r1["beta"] == 0.5 and r1["aggregate_chunks"] == r0["chunks"] + r1["chunks"]
    assert "learner_on_own_states" in r1 and "learner_on_own_states" not in r0
    data = np.load(run_dir / "choices.npz")
    assert len(data["features"]) == r1["aggregate_chunks"]
    assert set(data["round"].tolist()) == {0, 1} and set(data["song"].tolist()) == {0, 1}
    np.testing.assert_array_equal(data["teacher"], data["scores"].argmax(axis=1))
    ev = summary["eval"]
    assert set(ev["songs"]) == {"TwinkleTwinkleLittleStar"} and 0.0 < ev["f1"] <= 1.0
    for name in ("model.pt", "model_round0.pt", "model_round1.pt"):
        assert (run_dir / name).is_file()

    out = tmp_path / "eval"
    proc = subprocess.run(
        [
            sys.executable, str(ROOT / "baselines" / "evaluate.py"),
            "--songs", "TwinkleTwinkleLittleStar", "--max-seconds", "3",
            "--policy", str(run_dir / "model.pt"), "--workers", "1", "--out", str(out),
        ],
        capture_output=True, text=True, timeout=300,
    )  # fmt: skip
    assert proc.returncode == 0, proc.stderr[-2000:]
    row = json.loads((out / "results.json").read_text())["rows"][0]
    assert row["f1"] == pytest.approx(ev["f1"])  # the same policy, the same episode

    cmd = [str(BIN / "pianomime"), "play", "CMajorScaleOneHand", "--policy", str(run_dir)]
    proc = subprocess.run(
        [*cmd, "--no-video", "--out", str(tmp_path / "play")],
        capture_output=True, text=True, timeout=300,
    )  # fmt: skip
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert json.loads((tmp_path / "play" / "metrics.json").read_text())["metrics"]["f1"] > 0.5


@pytest.mark.parametrize(
    "args, message",
    [
        (["--songs", "music21:bach/bwv66.6"], "in the training"),
        (["--songs", "CMajorScaleOneHand", "--rounds", "-1"], "--rounds must be >= 0"),
        (["--songs", "CMajorScaleOneHand", "--beta", "1.5"], "--beta and --beta-decay"),
    ],
)
def test_bad_arguments_are_refused_before_a_run_dir(tmp_path, args, message):
    proc = run([*args, "--run-dir", str(tmp_path / "x")], timeout=120)
    assert proc.returncode != 0 and message in proc.stderr, proc.stderr[-1000:]
    assert not (tmp_path / "x").exists()
