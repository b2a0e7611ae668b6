"""Benchmark: pianomime_env.music.metrics.evaluate vs RoboPianist's MidiEvaluationWrapper.

Times the metrics of one 451-step episode (the goal roll of RoboPianist's Twinkle Twinkle
MIDI at the 0.05 s control timestep, padded/trimmed to 451 steps; a synthetic roll if the
MIDI cannot be loaded) against a noisy "played" roll, and checks that both implementations
agree.

Usage:
    .venv/bin/python benchmarks/bench_metrics.py [--steps 451] [--ours-runs 200] [--rp-runs 5]
"""

from __future__ import annotations

import argparse
import importlib.util
import pathlib
import statistics
import sys
import time
import types

import numpy as np

sys.path.insert(0, str(pathlib.Path(__file__).resolve().parents[1]))

N_KEYS = 88
CONTROL_TIMESTEP = 0.05


def _load_goal(steps: int, rng: np.random.Generator):
    """(steps, 88) bool goal roll, (steps,) bool sustain, and a description."""
    try:
        from robopianist.music import midi_file

        spec = importlib.util.find_spec("robopianist")
        root = pathlib.Path(list(spec.submodule_search_locations)[0])
        midi = midi_file.MidiFile.from_file(
            root / "music" / "data" / "rousseau" / "twinkle-twinkle-trimmed.mid"
        )
        traj = midi_file.NoteTrajectory.from_midi(midi, CONTROL_TIMESTEP)
        goal = np.zeros((len(traj.notes), N_KEYS), dtype=bool)
        for t, notes in enumerate(traj.notes):
            goal[t, [n.key for n in notes]] = True
        sustain = np.asarray(traj.sustains, dtype=bool)
        source = f"twinkle-twinkle-trimmed.mid ({len(traj.notes)} steps"
    except Exception as exc:  # pragma: no cover - fallback when robopianist data missing
        goal = rng.random((steps, N_KEYS)) < 0.03
        sustain = rng.random(steps) < 0.3
        source = f"synthetic roll ({exc!r}"
    reps = -(-steps // goal.shape[0])
    goal = np.tile(goal, (reps, 1))[:steps]
    sustain = np.tile(sustain, reps)[:steps]
    return goal, sustain, source + f", tiled/trimmed to {steps})"


def _played(goal: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    played = goal.copy()
    for k in range(N_KEYS):  # per-key timing jitter of -1..1 steps
        played[:, k] = np.roll(goal[:, k], int(rng.integers(-1, 2)))
    played &= rng.random(goal.shape) > 0.03  # some dropped steps
    played |= rng.random(goal.shape) < 0.001  # some wrong presses
    return played


def _robopianist_wrapper_module():
    """robopianist/wrappers/evaluation.py, loaded without the rendering-heavy package
    __init__ files."""
    spec = importlib.util.find_spec("robopianist")
    path = pathlib.Path(list(spec.submodule_search_locations)[0]) / "wrappers" / "evaluation.py"
    mod_spec = importlib.util.spec_from_file_location("_rp_evaluation", path)
    module = importlib.util.module_from_spec(mod_spec)
    mod_spec.loader.exec_module(module)
    return module


def _robopianist_metrics(rp_eval, goal, goal_s, played, played_s):
    task = types.SimpleNamespace(
        _notes=[[types.SimpleNamespace(key=int(k)) for k in np.flatnonzero(r)] for r in goal],
        _sustains=[int(v) for v in goal_s],
        piano=types.SimpleNamespace(n_keys=N_KEYS),
        _wrong_press_termination=False,
    )
    wrapper = rp_eval.MidiEvaluationWrapper(types.SimpleNamespace(task=task))
    wrapper._key_presses = [r.astype(np.float64) for r in played]
    wrapper._sustain_presses = [np.atleast_1d(s).astype(np.float64) for s in played_s]
    k = wrapper._compute_key_press_metrics()
    s = wrapper._compute_sustain_metrics()
    return {
        "precision": k.precision,
        "recall": k.recall,
        "f1": k.f1,
        "sustain_precision": s.precision,
        "sustain_recall": s.recall,
        "sustain_f1": s.f1,
    }


def _median_time(fn, runs: int) -> float:
    times = []
    for _ in range(runs):
        t0 = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t0)
    return statistics.median(times)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--steps", type=int, default=451)
    parser.add_argument("--ours-runs", type=int, default=200)
    parser.add_argument("--rp-runs", type=int, default=5)
    args = parser.parse_args()

    t0 = time.perf_counter()
    from pianomime_env.music import metrics

    import_s = time.perf_counter() - t0

    rng = np.random.default_rng(0)
    goal, goal_s, source = _load_goal(args.steps, rng)
    played = _played(goal, rng)
    played_s = goal_s ^ (rng.random(args.steps) < 0.1)

    ours = metrics.evaluate(goal, goal_s, played, played_s)  # warm-up
    ours_s = _median_time(lambda: metrics.evaluate(goal, goal_s, played, played_s), args.ours_runs)
    rec = metrics.EpisodeRecorder(args.steps)

    def record_episode():
        rec.reset()
        for t in range(args.steps):
            rec.record(played[t], played_s[t])

    record_s = _median_time(record_episode, 20) / args.steps
    compute_s = _median_time(lambda: rec.compute(goal, goal_s), args.ours_runs)

    print(f"episode: {source}; {int(goal.sum())} goal key-steps")
    print(
        f"import pianomime_env.music.metrics (incl. numpy, package __init__): {import_s * 1e3:.1f} ms"
    )
    print(f"evaluate():                 median {ours_s * 1e3:8.3f} ms  ({args.ours_runs} runs)")
    print(f"EpisodeRecorder.record():   median {record_s * 1e6:8.2f} us per step")
    print(f"EpisodeRecorder.compute():  median {compute_s * 1e3:8.3f} ms")
    try:
        rp_eval = _robopianist_wrapper_module()
    except Exception as exc:  # pragma: no cover
        print(f"robopianist/sklearn unavailable ({exc!r}); skipping the comparison")
        return
    ref = _robopianist_metrics(rp_eval, goal, goal_s, played, played_s)
    rp_s = _median_time(
        lambda: _robopianist_metrics(rp_eval, goal, goal_s, played, played_s), args.rp_runs
    )
    max_diff = max(abs(ours[k] - ref[k]) for k in ref)
    print(
        f"robopianist (sklearn loop): median {rp_s * 1e3:8.1f} ms  ({args.rp_runs} runs, "
        "key + sustain metrics)"
    )
    print(f"speed-up: {rp_s / ours_s:,.0f}x; max |difference| over shared metrics: {max_diff:.3g}")
    for name in metrics.METRIC_NAMES:
        extra = f"  (robopianist {ref[name]:.6f})" if name in ref else ""
        print(f"  {name:18s} {ours[name]:.6f}{extra}")


if __name__ == "__main__":
    main()
