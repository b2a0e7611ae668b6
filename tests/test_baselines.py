"""baselines/evaluate.py: per-song evaluation table."""

from __future__ import annotations

import json
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

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
    from pianomime_env.learning.evaluation import truncate_song as _truncate
    from pianomime_env.music.sources import load_song

    song = load_song("TwinkleTwinkleLittleStar")
    short = _truncate(song, 2.0)
    assert short.n_notes < song.n_notes and short.end.max() <= 2.0


# -- baselines/ppo.py and baselines/droq.py ---------------------------------------------------

TINY_SONG = "CMajorScaleOneHand"  # 151 steps with trim_silence
TINY = {
    "ppo.py": [
        "--num-steps",
        "64",
        "--num-minibatches",
        "2",
        "--update-epochs",
        "2",
        "--hidden",
        "32",
        "32",
        "--vectorization",
        "sync",
        "--update-threads",
        "1",
    ],
    "droq.py": ["--learning-starts", "64", "--batch-size", "32", "--hidden", "32", "32"],
}


def run_script(script: str, *args: str, timeout: float = 300) -> subprocess.CompletedProcess:
    proc = subprocess.run(
        [sys.executable, str(ROOT / "baselines" / script), *args],
        capture_output=True,
        text=True,
        timeout=timeout,
        cwd=ROOT,
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    return proc


def train_tiny(script: str, run_dir: Path, *extra: str, steps: int = 128) -> dict:
    run_script(
        script,
        "--env-id",
        f"PianoMime-{TINY_SONG}-v0",
        "--total-timesteps",
        str(steps),
        "--num-envs",
        "2",
        "--eval-every",
        "0",
        "--no-progress",
        "--run-dir",
        str(run_dir),
        *TINY[script],
        *extra,
    )
    summary = json.loads((run_dir / "summary.json").read_text())
    assert summary["global_step"] >= steps and summary["final"]
    assert summary["sps"] > 0 and summary["wall_s"] > 0
    assert set(summary["eval"]) >= {"f1", "note_f1", "precision", "recall", "global_step"}
    assert (run_dir / "model.pt").is_file() and (run_dir / "resume.pt").is_file()
    return summary


def play_checkpoint(path: Path, out: Path) -> dict:
    proc = subprocess.run(
        [
            str(Path(sys.executable).with_name("pianomime")),  # the console script
            "play",
            TINY_SONG,
            "--policy",
            str(path),
            "--no-video",
            "--out",
            str(out),
        ],
        capture_output=True,
        text=True,
        timeout=300,
        cwd=ROOT,
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    return json.loads((out / "metrics.json").read_text())


def evaluate_checkpoint_policy(policy: str, out: Path) -> dict:
    return evaluate_checkpoint(Path(policy), out)


def evaluate_checkpoint(path: Path, out: Path) -> dict:
    proc = subprocess.run(
        [
            sys.executable,
            str(ROOT / "baselines" / "evaluate.py"),
            "--songs",
            TINY_SONG,
            "--policy",
            str(path),
            "--workers",
            "1",
            "--out",
            str(out),
        ],
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    return json.loads((out / "results.json").read_text())["rows"][0]


def test_ppo_residual_checkpoint_evaluates(tmp_path):
    pytest.importorskip("torch")
    summary = train_tiny("ppo.py", tmp_path / "run", "--residual")
    row = evaluate_checkpoint(tmp_path / "run" / "model.pt", tmp_path / "eval")
    assert row["f1"] == pytest.approx(summary["eval"]["f1"])
    # 128 steps barely move the residual: the checkpoint plays as its nominal, the sight-reader.
    sight_reader = evaluate_checkpoint_policy("sight-reader", tmp_path / "sr")
    assert row["f1"] == pytest.approx(sight_reader["f1"], abs=0.05) and sight_reader["f1"] > 0.8


def test_droq_residual_trains_and_plays(tmp_path):
    pytest.importorskip("torch")
    summary = train_tiny("droq.py", tmp_path / "run", "--residual")
    assert summary["updates"] > 0
    played = play_checkpoint(tmp_path / "run", tmp_path / "play")  # a run directory works too
    assert played["metrics"]["f1"] == pytest.approx(summary["eval"]["f1"])
    assert [p.name for p in (tmp_path / "run").glob("replay-*.npz")] == [
        f"replay-{summary['global_step']}.npz"
    ]


@pytest.mark.slow
@pytest.mark.parametrize("script", ["ppo.py", "droq.py"])
def test_killed_plain_run_resumes_to_the_same_weights(tmp_path, script):
    """SIGKILL a real (plain, from-scratch) run after a checkpoint, resume it, and compare with an
    uninterrupted run of the same length: with one env and checkpoints at episode ends (151
    steps) the restarted episode is the one the uninterrupted run plays, so equal weights mean
    nothing was lost (weights, optimizer, normalization, RNG, step counter, DroQ's replay
    buffer). Then the resumed checkpoint is loaded by `pianomime play` / evaluate.py."""
    torch = pytest.importorskip("torch")
    common = [
        "--env-id",
        f"PianoMime-{TINY_SONG}-v0",
        "--num-envs",
        "1",
        "--eval-every",
        "0",
        "--checkpoint-every",
        "151",
        "--no-progress",
        "--seed",
        "3",
        *TINY[script],
    ]
    if script == "ppo.py":
        common += ["--num-steps", "151", "--no-anneal-lr"]
    else:
        common += ["--learning-starts", "100"]
    killed = tmp_path / "killed"
    proc = subprocess.Popen(
        [
            sys.executable,
            str(ROOT / "baselines" / script),
            *common,
            "--total-timesteps",
            "100000",
            "--run-dir",
            str(killed),
        ],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        cwd=ROOT,
    )
    deadline = time.monotonic() + 240
    while not (killed / "resume.pt").is_file():
        assert proc.poll() is None, proc.stderr.read().decode()[-3000:]
        assert time.monotonic() < deadline, "no checkpoint within 240 s"
        time.sleep(0.05)
    proc.send_signal(signal.SIGKILL)
    proc.wait(timeout=30)
    proc.stderr.close()
    at_kill = torch.load(killed / "resume.pt", weights_only=False)["global_step"]
    assert at_kill >= 151 and at_kill % 151 == 0
    total = str(at_kill + 151)
    run_script(script, "--resume", str(killed), "--total-timesteps", total)
    straight = tmp_path / "straight"
    run_script(script, *common, "--total-timesteps", total, "--run-dir", str(straight))
    a = torch.load(killed / "model.pt", weights_only=True)
    b = torch.load(straight / "model.pt", weights_only=True)
    assert a["global_step"] == b["global_step"] == at_kill + 151
    for k, v in b["actor"]["state_dict"].items():
        assert torch.equal(a["actor"]["state_dict"][k], v), k
    for k in ("mean", "var"):
        assert torch.equal(a["obs_norm"][k], b["obs_norm"][k])
    ra = torch.load(killed / "resume.pt", weights_only=False)
    rb = torch.load(straight / "resume.pt", weights_only=False)
    key = "optimizer" if script == "ppo.py" else "critic_opt"
    assert ra[key]["state"][0]["step"] == rb[key]["state"][0]["step"]
    summary = json.loads((killed / "summary.json").read_text())
    assert summary["evals"][0]["global_step"] == 0  # history from before the kill kept
    assert summary["final"] and summary["global_step"] == at_kill + 151
    if script == "ppo.py":
        played = play_checkpoint(killed / "model.pt", tmp_path / "play")
        # The training evaluation and `pianomime play` run the same deterministic episode.
        assert played["metrics"]["f1"] == pytest.approx(summary["eval"]["f1"])
        from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

        tags = set(EventAccumulator(str(killed)).Reload().Tags()["scalars"])
        assert {"eval/f1", "eval/note_f1", "charts/SPS", "losses/value_loss"} <= tags
        sys.path.insert(0, str(ROOT / "baselines"))
        from plot_curves import Args as PlotArgs
        from plot_curves import main as plot

        assert plot(PlotArgs(runs=[killed, straight], out=tmp_path / "c.png")).stat().st_size > 0
    else:
        row = evaluate_checkpoint(killed / "model.pt", tmp_path / "eval")
        assert row["f1"] == pytest.approx(summary["eval"]["f1"])


# -- what a new user hit (issue 18) -------------------------------------------------------------


def _script_proc(script: str, *args: str, env: dict | None = None, timeout: float = 300):
    return subprocess.run(
        [sys.executable, str(ROOT / "baselines" / script), *args],
        capture_output=True,
        text=True,
        timeout=timeout,
        cwd=ROOT,
        env=env,
    )


@pytest.mark.parametrize("script", ["ppo.py", "droq.py"])
def test_unknown_env_id_is_one_line_not_a_traceback(script):
    proc = _script_proc(script, "--env-id", "PianoMime-Nope-v0", "--no-progress")
    assert proc.returncode != 0
    assert "Traceback" not in proc.stderr
    assert "'PianoMime-Nope-v0' is not registered" in proc.stderr


def test_missing_torch_is_one_line_naming_the_extra(tmp_path):
    # A torch that fails to import, first on the path: what a quickstart-only user has.
    (tmp_path / "torch").mkdir()
    (tmp_path / "torch" / "__init__.py").write_text("raise ModuleNotFoundError('no torch here')")
    env = {**__import__("os").environ, "PYTHONPATH": str(tmp_path)}
    proc = _script_proc("ppo.py", "--no-progress", env=env, timeout=120)
    assert proc.returncode != 0
    assert "Traceback" not in proc.stderr, proc.stderr
    assert ".[train]" in proc.stderr and len(proc.stderr.strip().splitlines()) == 1


@pytest.mark.parametrize("script", ["ppo.py", "droq.py", "bc.py", "diffusion_policy.py"])
def test_scripts_run_under_cprofile(tmp_path, script):
    proc = subprocess.run(
        [
            sys.executable,
            "-m",
            "cProfile",
            "-o",
            str(tmp_path / "p.out"),
            str(ROOT / "baselines" / script),
            "--help",
        ],
        capture_output=True,
        text=True,
        timeout=120,
        cwd=ROOT,
    )
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert "--seed" in proc.stdout


def test_help_reflows_hard_wrapped_docstrings():
    proc = _script_proc("ppo.py", "--help", env={**__import__("os").environ, "COLUMNS": "200"})
    assert proc.returncode == 0
    # At 200 columns the sentence fits on one line; the source's hard wrap is not kept.
    assert "(None: the same as --residual-scale)" in proc.stdout


def test_droq_below_learning_starts_warns_and_records_zero_updates(tmp_path):
    pytest.importorskip("torch")
    proc = _script_proc(
        "droq.py",
        "--env-id",
        f"PianoMime-{TINY_SONG}-v0",
        "--total-timesteps",
        "40",
        "--learning-starts",
        "5000",
        "--eval-every",
        "-1",
        "--no-progress",
        "--hidden",
        "16",
        "--run-dir",
        str(tmp_path / "run"),
    )
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert "no gradient update" in proc.stderr
    summary = json.loads((tmp_path / "run" / "summary.json").read_text())
    assert summary["updates"] == 0 and summary["global_step"] == 40


@pytest.mark.slow
@pytest.mark.parametrize("script", ["ppo.py", "droq.py"])
def test_sigterm_before_the_first_step_checkpoint_leaves_a_resumable_run(tmp_path, script):
    """With the step cadence far away, SIGTERM still writes resume.pt (and exits 143), and
    --resume continues from it; summary.json keeps training and evaluation time apart."""
    torch = pytest.importorskip("torch")
    run = tmp_path / "run"
    args = [
        "--env-id",
        f"PianoMime-{TINY_SONG}-v0",
        "--num-envs",
        "1",
        "--eval-every",
        "0",
        "--checkpoint-every",
        "1000000",
        "--checkpoint-every-s",
        "0",
        "--no-progress",
        "--run-dir",
        str(run),
        *TINY[script],
    ]
    proc = subprocess.Popen(
        [sys.executable, str(ROOT / "baselines" / script), *args, "--total-timesteps", "1000000"],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        cwd=ROOT,
    )
    deadline = time.monotonic() + 180
    while not list(run.glob("events.out.tfevents.*")):
        assert proc.poll() is None, proc.stderr.read().decode()[-3000:]
        assert time.monotonic() < deadline
        time.sleep(0.1)
    time.sleep(4.0)  # inside the training loop (the first evaluation runs in a second)
    proc.send_signal(signal.SIGTERM)
    out, err = proc.communicate(timeout=120)
    assert proc.returncode == 128 + signal.SIGTERM, err.decode()[-3000:]
    state = torch.load(run / "resume.pt", weights_only=False)
    summary = json.loads((run / "summary.json").read_text())
    assert summary["stopped_by_signal"] == signal.SIGTERM and not summary["final"]
    assert summary["global_step"] == state["global_step"] > 0
    assert summary["train_s"] > 0 and summary["eval_s"] > 0
    assert summary["wall_s"] == pytest.approx(summary["train_s"] + summary["eval_s"])
    total = str(state["global_step"] + 64)
    run_script(script, "--resume", str(run), "--total-timesteps", total)
    resumed = json.loads((run / "summary.json").read_text())
    assert resumed["final"] and resumed["global_step"] >= int(total)
    assert resumed["evals"][0]["global_step"] == 0


def test_record_eval_logs_the_piano_roll_to_tensorboard(tmp_path):
    pytest.importorskip("torch")
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    summary = train_tiny("ppo.py", tmp_path / "run", "--record-eval", "pianoroll")
    tags = EventAccumulator(str(tmp_path / "run")).Reload().Tags()
    assert "eval/pianoroll" in tags["images"]
    assert {"eval/f1", "eval/note_f1"} <= set(tags["scalars"])
    rolls = sorted((tmp_path / "run" / "eval").glob("*-pianoroll.png"))
    assert len(rolls) == len(summary["evals"]) == 2  # before training and at the end


def test_evaluate_reports_a_bad_song_and_plays_the_rest(tmp_path):
    bad = tmp_path / "broken.mid"
    bad.write_bytes(b"MThd not really a MIDI file")
    proc = _script_proc(
        "evaluate.py",
        "--songs",
        "CMajorChordProgressionTwoHands",
        str(bad),
        "--policy",
        "idle",
        "--workers",
        "1",
        "--out",
        str(tmp_path / "out"),
    )
    assert proc.returncode == 1
    assert "Traceback" not in proc.stderr, proc.stderr[-2000:]
    assert f"not evaluated: {bad}" in proc.stderr
    result = json.loads((tmp_path / "out" / "results.json").read_text())
    assert [r["song"] for r in result["rows"]] == ["CMajorChordProgressionTwoHands"]
    assert list(result["failed"]) == [str(bad)]


def test_evaluate_workers_use_one_torch_thread():
    """A worker plays one song on one core: torch imported after the initializer (as
    load_policy imports it) and torch imported before it both end with one thread."""
    pytest.importorskip("torch")
    code = (
        "import sys; sys.path.insert(0, {root!r}); import evaluate; {pre}"
        "evaluate.one_torch_thread(); import torch; print(torch.get_num_threads())"
    )
    for pre in ("", "import torch; torch.set_num_threads(2); "):
        src = code.format(root=str(ROOT / "baselines"), pre=pre)
        proc = subprocess.run([sys.executable, "-c", src], capture_output=True, text=True)
        assert proc.returncode == 0, proc.stderr[-2000:]
        assert proc.stdout.strip() == "1"
