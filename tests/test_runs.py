"""pianomime_env.learning.runs: what the baselines share (run dirs, --resume, cadence, signals)."""

from __future__ import annotations

import dataclasses
import json
import os
import signal
from dataclasses import dataclass
from pathlib import Path

import gymnasium as gym
import pytest

from pianomime_env.learning import runs


@dataclass
class Args:
    hidden: tuple[int, ...] = (8, 8)
    """Hidden layer sizes,
    hard-wrapped in the source.

    A second paragraph."""
    run_dir: Path | None = None
    """Output directory."""
    resume: Path | None = None
    """Run directory to continue."""
    lr: float = 1e-3


def test_save_json_is_atomic_and_leaves_no_temporary(tmp_path):
    runs.save_json(tmp_path / "a.json", {"x": 1, "p": Path("/y")})
    assert json.loads((tmp_path / "a.json").read_text()) == {"x": 1, "p": "/y"}
    assert [p.name for p in tmp_path.iterdir()] == ["a.json"]


def test_field_docs_reflow_paragraphs():
    docs = runs.field_docs(Args)
    assert (
        docs["hidden"] == "Hidden layer sizes, hard-wrapped in the source.\n\nA second paragraph."
    )
    assert "lr" not in docs


def test_parse_args_resume_restores_saved_types_and_lets_flags_override(tmp_path):
    saved = dataclasses.asdict(Args(hidden=(4, 5, 6), lr=0.5)) | {"run_dir": str(tmp_path)}
    (tmp_path / "args.json").write_text(json.dumps(saved, default=str))
    args = runs.parse_args(Args, ["--resume", str(tmp_path), "--lr", "0.25"])
    assert args.hidden == (4, 5, 6) and isinstance(args.hidden, tuple)
    assert args.lr == 0.25 and args.run_dir == tmp_path and args.resume == tmp_path
    assert runs.parse_args(Args, []) == Args()


def test_parse_args_resume_errors_name_the_problem(tmp_path):
    with pytest.raises(SystemExit, match="no args.json"):
        runs.parse_args(Args, ["--resume", str(tmp_path)])
    (tmp_path / "args.json").write_text(json.dumps({"nope": 1}))
    with pytest.raises(SystemExit, match="nope"):
        runs.parse_args(Args, ["--resume", str(tmp_path)])
    (tmp_path / "args.json").write_text("{")
    with pytest.raises(SystemExit, match="not valid JSON"):
        runs.parse_args(Args, [f"--resume={tmp_path}"])


def test_open_run_dir_writes_args_and_load_resume_state_says_what_is_missing(tmp_path):
    run_dir, saved = runs.open_run_dir(Args(run_dir=tmp_path / "r"), "unused")
    assert run_dir == tmp_path / "r"
    assert json.loads((run_dir / "args.json").read_text()) == json.loads(
        json.dumps(saved, default=str)
    )
    with pytest.raises(SystemExit, match="killed before its first checkpoint"):
        runs.load_resume_state(run_dir)
    pytest.importorskip("torch")
    (run_dir / "resume.pt").write_bytes(b"not a checkpoint")
    with pytest.raises(SystemExit, match="not a readable checkpoint"):
        runs.load_resume_state(run_dir)


def test_checkpoint_cadence_by_steps_and_by_wall_clock():
    now = [0.0]
    cadence = runs.CheckpointCadence(100, 60.0, global_step=0, clock=lambda: now[0])
    assert not cadence.due(99)
    assert cadence.due(100)
    cadence.written(100)
    now[0] = 59.0
    assert not cadence.due(150)
    now[0] = 60.5
    assert cadence.due(150)  # the wall clock, not the steps
    cadence.written(150)
    assert not runs.CheckpointCadence(0, 0.0).due(10**9)


def test_stop_signals_turn_sigterm_into_a_request_and_restore_the_handler():
    before = signal.getsignal(signal.SIGTERM)
    with runs.StopSignals() as stop:
        assert stop.requested is None and stop.exit_code == 0
        os.kill(os.getpid(), signal.SIGTERM)
        assert stop.requested == signal.SIGTERM
        assert stop.exit_code == 128 + signal.SIGTERM
        with pytest.raises(KeyboardInterrupt):  # a second one interrupts at once
            os.kill(os.getpid(), signal.SIGTERM)
    assert signal.getsignal(signal.SIGTERM) == before


def test_thread_chooser_keeps_the_faster_count_and_reprobes():
    chooser = runs.ThreadChooser((1, 2), probe=2, every=3)
    seconds = {1: 0.01, 2: 0.5}  # two threads collapsed (the cores are shared)
    for update in range(4):
        for i in range(6):
            n = chooser.threads(i)
            if update % 3 == 0 and i < 4:
                assert n == (1 if i < 2 else 2)  # probing
            chooser.record(i, seconds[n])
        chooser.end_update()
        assert chooser.best == 1
    seconds = {1: 0.02, 2: 0.01}  # quiet again: the next probe switches
    for _update in range(3):
        for i in range(6):
            chooser.record(i, seconds[chooser.threads(i)])
        chooser.end_update()
    assert chooser.best == 2
    assert runs.ThreadChooser((1,)).threads(0) == 1


def test_env_kwargs_and_wrapper_config():
    assert runs.parse_env_kwargs('{"a": 1}', a=0, b=2) == {"a": 1, "b": 2}
    with pytest.raises(SystemExit, match="not JSON"):
        runs.parse_env_kwargs("{", a=0)
    with pytest.raises(SystemExit, match="JSON object"):
        runs.parse_env_kwargs("[1]")
    assert runs.residual_wrapper_config(False) == {"residual": False}
    cfg = runs.residual_wrapper_config(True, 0.03, 0.1)
    assert cfg == {
        "residual": True,
        "residual_scale": 0.03,
        "finger_residual_scale": 0.1,
        "sustain": "score",
        "n_demo_frames": 4,
        "nominal": "sight-reader",
    }


def test_check_env_id_suggests_registered_ids():
    runs.check_env_id("PianoMime-CMajorScaleOneHand-v0")
    with pytest.raises(SystemExit, match="PianoMime-CMajorScaleOneHand-v0"):
        runs.check_env_id("PianoMime-CMajorScaleOneHnd-v0")


def test_env_thunk_and_evaluate_episode_play_a_real_song():
    thunk = runs.env_thunk(
        "PianoMime-CMajorChordProgressionTwoHands-v0",
        {"trim_silence": True, "normalized_actions": True},
        {"residual": False},
    )
    env = thunk()
    assert isinstance(env.observation_space, gym.spaces.Box)  # flattened
    m = runs.evaluate_episode(env, lambda obs: env.action_space.sample() * 0, seed=0)
    assert set(m) == {"f1", "note_f1", "precision", "recall"}
    assert m["note_f1"] == 0.0  # hands at rest press nothing
    env.close()


def test_timer_splits_activities():
    timer = runs.Timer({"train": 2.0})
    with timer.timed("eval"):
        pass
    timer.add("train", 1.0)
    assert timer.seconds["train"] == 3.0 and timer.seconds["eval"] >= 0.0
