"""Tests for pianomime_env.music.metrics."""

from __future__ import annotations

import importlib.util
import itertools
import pathlib
import types

import numpy as np
import pytest

from pianomime_env.music import metrics
from pianomime_env.music.metrics import (
    EpisodeRecorder,
    evaluate,
    note_onsets,
    onset_prf,
    per_step_prf,
)

N = 88
TOL = 1e-12


# --------------------------------------------------------------------------------------
# Reference implementations.
# --------------------------------------------------------------------------------------


def _load_robopianist_evaluation():
    """Loads robopianist/wrappers/evaluation.py without running the (slow, rendering-heavy)
    ``robopianist`` and ``robopianist.wrappers`` package __init__ files."""
    pytest.importorskip("sklearn")
    pytest.importorskip("dm_env_wrappers")
    spec = importlib.util.find_spec("robopianist")
    if spec is None or not spec.submodule_search_locations:
        pytest.skip("robopianist not installed")
    path = pathlib.Path(list(spec.submodule_search_locations)[0]) / "wrappers" / "evaluation.py"
    mod_spec = importlib.util.spec_from_file_location("_rp_evaluation", path)
    module = importlib.util.module_from_spec(mod_spec)
    mod_spec.loader.exec_module(module)
    return module


@pytest.fixture(scope="module")
def rp_eval():
    return _load_robopianist_evaluation()


def _fake_env(goal_keys, goal_sustain, wrong_press_termination):
    notes = [[types.SimpleNamespace(key=int(k)) for k in np.flatnonzero(row)] for row in goal_keys]
    task = types.SimpleNamespace(
        _notes=notes,
        _sustains=[int(v) for v in goal_sustain],
        piano=types.SimpleNamespace(n_keys=N),
        _wrong_press_termination=wrong_press_termination,
    )
    return types.SimpleNamespace(task=task)


def robopianist_metrics(rp_eval, goal_keys, goal_sustain, played_keys, played_sustain, wpt):
    """Runs RoboPianist's own MidiEvaluationWrapper computations on the given rolls."""
    wrapper = rp_eval.MidiEvaluationWrapper(_fake_env(goal_keys, goal_sustain, wpt))
    # As in MidiEvaluationWrapper.step: piano.activation (bool (88,)) and
    # piano.sustain_activation (bool (1,)) cast to float64.
    wrapper._key_presses = [np.asarray(r, dtype=bool).astype(np.float64) for r in played_keys]
    wrapper._sustain_presses = [
        np.atleast_1d(np.asarray(s, dtype=bool)).astype(np.float64) for s in played_sustain
    ]
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


def scipy_max_matching(goal, played, tol):
    """Maximum one-to-one onset matching via scipy's linear_sum_assignment."""
    from scipy.optimize import linear_sum_assignment

    gt, gk = note_onsets(goal)
    pt, pk = note_onsets(played)
    if gt.size == 0 or pt.size == 0:
        return 0, gt.size, pt.size
    ok = (gk[:, None] == pk[None, :]) & (np.abs(gt[:, None] - pt[None, :]) <= tol)
    rows, cols = linear_sum_assignment(-ok.astype(float))
    return int(ok[rows, cols].sum()), gt.size, pt.size


def brute_force_matching(goal, played, tol):
    """Exhaustive maximum matching (tiny inputs only)."""
    gt, gk = note_onsets(goal)
    pt, pk = note_onsets(played)
    edges = [
        (i, j)
        for i in range(gt.size)
        for j in range(pt.size)
        if gk[i] == pk[j] and abs(int(gt[i]) - int(pt[j])) <= tol
    ]
    for size in range(min(gt.size, pt.size), 0, -1):
        for combo in itertools.combinations(edges, size):
            if len({e[0] for e in combo}) == size and len({e[1] for e in combo}) == size:
                return size
    return 0


def _goal_roll(rng, T, density=0.05, n_keys=N):
    """A goal-like roll: notes of random length with >= 1 step gap between repeats."""
    roll = np.zeros((T, n_keys), dtype=bool)
    for k in range(n_keys):
        t = int(rng.integers(0, 4))
        while t < T:
            if rng.random() < density * 4:
                length = int(rng.integers(1, 5))
                roll[t : t + length, k] = True
                t += length + 1
            else:
                t += int(rng.integers(1, 4))
    return roll


def _random_played(rng, goal, flip=0.02, shift_p=0.3):
    """Played roll: goal jittered in time per key, plus random flips."""
    played = goal.copy()
    for k in range(goal.shape[1]):
        if rng.random() < shift_p:
            played[:, k] = np.roll(goal[:, k], int(rng.integers(-2, 3)))
    played ^= rng.random(goal.shape) < flip
    return played


def _assert_close(ours, ref):
    for key, value in ref.items():
        assert abs(ours[key] - value) <= TOL, (key, ours[key], value)


# --------------------------------------------------------------------------------------
# Per-step (RoboPianist-compatible) metrics.
# --------------------------------------------------------------------------------------


def test_per_step_prf_matches_sklearn_corner_cases():
    from sklearn.metrics import precision_recall_fscore_support

    z = np.zeros(N)
    one = z.copy()
    one[3] = 1
    two = one.copy()
    two[5] = 1
    cases = [(z, z), (z, one), (one, z), (one, two), (two, one), (one, one), (z + 1, z + 1)]
    cases += [(z + 1, z), (z, z + 1)]
    y_true = np.stack([c[0] for c in cases])
    y_pred = np.stack([c[1] for c in cases])
    p, r, f = per_step_prf(y_true, y_pred)
    for i, (t, pr) in enumerate(cases):
        ref = precision_recall_fscore_support(t, pr, average="binary", zero_division=1)
        assert (p[i], r[i], f[i]) == ref[:3], (i, (p[i], r[i], f[i]), ref)
    # The documented table.
    assert (p[0], r[0], f[0]) == (1.0, 1.0, 1.0)  # nothing true, nothing pressed
    assert (p[1], r[1], f[1]) == (0.0, 1.0, 0.0)  # pressed, nothing true
    assert (p[2], r[2], f[2]) == (1.0, 0.0, 0.0)  # true, nothing pressed


def test_per_step_prf_1d_matches_sklearn():
    from sklearn.metrics import precision_recall_fscore_support

    t = np.array([0, 0, 1, 1])
    pr = np.array([0, 1, 0, 1])
    p, r, f = per_step_prf(t, pr)
    for i in range(4):
        ref = precision_recall_fscore_support(
            np.array([t[i]], float), np.array([pr[i]], float), average="binary", zero_division=1
        )
        assert (p[i], r[i], f[i]) == ref[:3]


def test_per_step_prf_random_matches_sklearn_exactly():
    from sklearn.metrics import precision_recall_fscore_support

    rng = np.random.default_rng(0)
    t = rng.random((60, N)) < rng.random((60, 1)) * 0.2
    pr = rng.random((60, N)) < rng.random((60, 1)) * 0.2
    p, r, f = per_step_prf(t, pr)
    for i in range(60):
        ref = precision_recall_fscore_support(
            t[i].astype(float), pr[i].astype(float), average="binary", zero_division=1
        )
        assert (p[i], r[i], f[i]) == ref[:3]


@pytest.mark.parametrize(
    "case", ["silent", "all_wrong", "perfect", "random", "dense", "early_termination"]
)
def test_evaluate_matches_robopianist(rp_eval, case):
    rng = np.random.default_rng(sum(map(ord, case)))
    T = 64
    goal = _goal_roll(rng, T)
    goal_s = rng.random(T) < 0.3
    wpt = False
    if case == "silent":
        played = np.zeros_like(goal)
        played_s = np.zeros(T, dtype=bool)
    elif case == "all_wrong":
        played = ~goal
        played_s = ~goal_s
    elif case == "perfect":
        played = goal.copy()
        played_s = goal_s.copy()
    elif case == "random":
        played = _random_played(rng, goal)
        played_s = rng.random(T) < 0.3
    elif case == "dense":
        played = rng.random((T, N)) < 0.5
        played_s = rng.random(T) < 0.5
    else:  # early termination: only the first 37 steps were played.
        wpt = True
        played = _random_played(rng, goal)[:37]
        played_s = (rng.random(T) < 0.3)[:37]
    ref = robopianist_metrics(rp_eval, goal, goal_s, played, played_s, wpt)
    n = played.shape[0]
    ours = evaluate(goal[:n], goal_s[:n], played, played_s)
    _assert_close(ours, ref)
    # Also via the recorder, which truncates the goal itself.
    rec = EpisodeRecorder(T)
    for t in range(n):
        rec.record(played[t], np.array([played_s[t]]))
    _assert_close(rec.compute(goal, goal_s), ref)


def test_evaluate_matches_robopianist_many_random(rp_eval):
    rng = np.random.default_rng(1)
    for _ in range(8):
        T = int(rng.integers(1, 80))
        goal = rng.random((T, N)) < rng.random() * 0.2
        goal[rng.random(T) < 0.3] = False  # some fully silent steps
        goal_s = rng.random(T) < rng.random()
        played = rng.random((T, N)) < rng.random() * 0.2
        played_s = rng.random(T) < rng.random()
        ref = robopianist_metrics(rp_eval, goal, goal_s, played, played_s, False)
        _assert_close(evaluate(goal, goal_s, played, played_s), ref)


def test_evaluate_silence_gets_free_step_credit_but_no_note_credit():
    T = 20
    goal = np.zeros((T, N), dtype=bool)
    goal[5:8, 40] = True  # one note, three steps
    silent = np.zeros_like(goal)
    m = evaluate(goal, np.zeros(T), silent, np.zeros(T))
    assert m["precision"] == 1.0
    assert m["recall"] == pytest.approx(17 / 20)
    assert m["note_precision"] == m["note_recall"] == m["note_f1"] == 0.0
    assert m["sustain_precision"] == m["sustain_recall"] == m["sustain_f1"] == 1.0
    assert set(m) == set(metrics.METRIC_NAMES)
    assert all(type(v) is float for v in m.values())


def test_evaluate_accepts_bool_int_float_and_column_sustain():
    rng = np.random.default_rng(2)
    goal = rng.random((30, N)) < 0.1
    played = rng.random((30, N)) < 0.1
    gs = rng.random(30) < 0.5
    ps = rng.random(30) < 0.5
    ref = evaluate(goal, gs, played, ps)
    assert evaluate(goal.astype(int), gs.astype(int), played.astype(int), ps.astype(int)) == ref
    assert evaluate(goal * 0.9, gs * 1.0, played * 0.7 + 0.1, ps * 0.6) == ref
    assert evaluate(goal.tolist(), gs.tolist(), played.tolist(), ps[:, None]) == ref


# --------------------------------------------------------------------------------------
# Onsets.
# --------------------------------------------------------------------------------------


def test_note_onsets_rising_edges():
    roll = np.zeros((6, 3), dtype=bool)
    roll[0:2, 0] = True  # onset at t=0
    roll[3:5, 0] = True  # repeated note after a one-step gap: new onset at t=3
    roll[2:6, 1] = True  # sustained to the end: one onset
    times, keys = note_onsets(roll)
    assert times.tolist() == [0, 2, 3]
    assert keys.tolist() == [0, 1, 0]
    times, keys = note_onsets(np.zeros((4, N)))
    assert times.size == keys.size == 0


def _single(T, key, *starts, length=2):
    roll = np.zeros((T, N), dtype=bool)
    for s in starts:
        roll[s : s + length, key] = True
    return roll


def test_onset_perfect_and_silence():
    goal = _single(20, 10, 2, 6, 12)
    assert onset_prf(goal, goal) == (1.0, 1.0, 1.0)
    assert onset_prf(goal, np.zeros_like(goal)) == (0.0, 0.0, 0.0)


def test_onset_shift_by_one_counts_by_two_does_not():
    goal = _single(20, 10, 5)
    assert onset_prf(goal, _single(20, 10, 6)) == (1.0, 1.0, 1.0)
    assert onset_prf(goal, _single(20, 10, 4)) == (1.0, 1.0, 1.0)
    assert onset_prf(goal, _single(20, 10, 7)) == (0.0, 0.0, 0.0)
    assert onset_prf(goal, _single(20, 10, 3)) == (0.0, 0.0, 0.0)
    assert onset_prf(goal, _single(20, 10, 7), tolerance=2) == (1.0, 1.0, 1.0)
    assert onset_prf(goal, _single(20, 10, 6), tolerance=0) == (0.0, 0.0, 0.0)


def test_onset_wrong_key_does_not_match():
    assert onset_prf(_single(20, 10, 5), _single(20, 11, 5)) == (0.0, 0.0, 0.0)


def test_onset_one_to_one():
    goal = _single(20, 10, 5, length=3)
    # Two played onsets (t=4 and t=6) both within tolerance of the single target at t=5.
    played = _single(20, 10, 4, 6, length=1)
    p, r, f = onset_prf(goal, played)
    assert (p, r) == (0.5, 1.0)
    assert f == pytest.approx(2 / 3)
    # One played onset between two targets (t=4 and t=6) counts once.
    p, r, f = onset_prf(played, goal)
    assert (p, r) == (1.0, 0.5)


def test_onset_greedy_chain_is_maximum():
    # Targets at 2 and 4, played at 1 and 3 (tol 1): a naive "nearest" choice could pair
    # 3 with 2 or 4 and lose one; the maximum matching pairs (2,1) and (4,3).
    goal = _single(10, 0, 2, 4, length=1)
    played = _single(10, 0, 1, 3, length=1)
    assert onset_prf(goal, played) == (1.0, 1.0, 1.0)


def test_onset_edge_case_definitions():
    empty = np.zeros((10, N), dtype=bool)
    assert onset_prf(empty, empty) == (1.0, 1.0, 1.0)  # no notes, nothing played
    assert onset_prf(empty, _single(10, 3, 2)) == (0.0, 1.0, 0.0)  # no notes, played some
    assert onset_prf(_single(10, 3, 2), empty) == (0.0, 0.0, 0.0)  # notes, silence


def test_onset_sustained_key_counts_once():
    goal = _single(20, 10, 2, 6, length=2)
    played = _single(20, 10, 2, length=8)  # held through both notes: one onset only
    assert onset_prf(goal, played) == (1.0, 0.5, pytest.approx(2 / 3))


@pytest.mark.parametrize("tol", [0, 1, 2, 3, 9, 12, 100])
def test_onset_matching_against_scipy_random(tol):
    rng = np.random.default_rng(10 + tol)
    for _ in range(25):
        T = int(rng.integers(1, 60))
        goal = _goal_roll(rng, T, density=rng.random() * 0.3)
        if rng.random() < 0.5:
            played = _random_played(rng, goal, flip=rng.random() * 0.3)
        else:
            played = rng.random((T, N)) < rng.random() * 0.6
        m, nt, npl = scipy_max_matching(goal, played, tol)
        p, r, f = onset_prf(goal, played, tolerance=tol)
        exp_r = m / nt if nt else 1.0
        exp_p = m / npl if npl else (0.0 if nt else 1.0)
        exp_f = 2 * m / (nt + npl) if nt + npl else 1.0
        assert (p, r, f) == (exp_p, exp_r, exp_f)


def test_onset_matching_against_brute_force_small():
    rng = np.random.default_rng(3)
    for _ in range(150):
        T = int(rng.integers(1, 12))
        tol = int(rng.integers(0, 3))
        goal = np.zeros((T, N), dtype=bool)
        played = np.zeros((T, N), dtype=bool)
        goal[:, :2] = rng.random((T, 2)) < 0.5
        played[:, :2] = rng.random((T, 2)) < 0.5
        m = brute_force_matching(goal, played, tol)
        assert metrics._onset_counts(goal, played, tol)[0] == m
        assert scipy_max_matching(goal, played, tol)[0] == m


def test_onset_prf_accepts_any_key_count():
    goal = np.zeros((8, 3), dtype=bool)
    goal[2, 1] = True
    assert onset_prf(goal, goal) == (1.0, 1.0, 1.0)


# --------------------------------------------------------------------------------------
# EpisodeRecorder.
# --------------------------------------------------------------------------------------


def test_recorder_matches_evaluate_and_reset():
    rng = np.random.default_rng(4)
    T = 50
    goal = _goal_roll(rng, T)
    goal_s = rng.random(T) < 0.4
    played = _random_played(rng, goal)
    played_s = rng.random(T) < 0.4
    rec = EpisodeRecorder(T)
    for t in range(T):
        rec.record(played[t], bool(played_s[t]))
    assert rec.n_steps == T
    assert np.array_equal(rec.key_activations, played)
    assert np.array_equal(rec.sustain_activations, played_s)
    assert rec.compute(goal, goal_s) == evaluate(goal, goal_s, played, played_s)
    rec.reset()
    assert rec.n_steps == 0
    for t in range(10):  # early end: goal truncated to the recorded steps
        rec.record(played[t].astype(float), np.float64(played_s[t]))
    assert rec.compute(goal, goal_s) == evaluate(goal[:10], goal_s[:10], played[:10], played_s[:10])


def test_recorder_errors():
    with pytest.raises(ValueError, match="max_steps"):
        EpisodeRecorder(0)
    with pytest.raises(ValueError, match="max_steps"):
        EpisodeRecorder(2.5)
    with pytest.raises(ValueError, match="tolerance"):
        EpisodeRecorder(5, onset_tolerance=-1)
    rec = EpisodeRecorder(2)
    with pytest.raises(ValueError, match="no steps recorded"):
        rec.compute(np.zeros((2, N)), np.zeros(2))
    with pytest.raises(ValueError, match=r"key_activation must have shape \(88,\), got \(87,\)"):
        rec.record(np.zeros(87, dtype=bool), False)
    with pytest.raises(ValueError, match="sustain_activation"):
        rec.record(np.zeros(N, dtype=bool), np.zeros(2))
    with pytest.raises(ValueError, match="key_activation contains NaN"):
        rec.record(np.full(N, np.nan), False)
    with pytest.raises(ValueError, match="sustain_activation contains NaN"):
        rec.record(np.zeros(N), np.nan)
    assert rec.n_steps == 0  # failed records leave no trace
    rec.record(np.zeros(N, dtype=bool), False)
    rec.record(np.zeros(N, dtype=bool), True)
    with pytest.raises(ValueError, match="full"):
        rec.record(np.zeros(N, dtype=bool), False)
    with pytest.raises(ValueError, match="goal_keys has 1 steps but 2 steps were recorded"):
        rec.compute(np.zeros((1, N)), np.zeros(1))
    with pytest.raises(ValueError, match=r"goal_keys must have shape \(T, 88\), got \(2, 80\)"):
        rec.compute(np.zeros((2, 80)), np.zeros(2))
    with pytest.raises(ValueError, match="number of steps mismatch"):
        rec.compute(np.zeros((2, N)), np.zeros(3))


# --------------------------------------------------------------------------------------
# Validation errors.
# --------------------------------------------------------------------------------------


def _ok(T=5):
    return np.zeros((T, N)), np.zeros(T), np.zeros((T, N)), np.zeros(T)


@pytest.mark.parametrize(
    ("index", "bad", "pattern"),
    [
        (0, np.zeros((5, 87)), r"goal_keys must have shape \(T, 88\), got \(5, 87\)"),
        (2, np.zeros((5, 89)), r"played_keys must have shape \(T, 88\), got \(5, 89\)"),
        (0, np.zeros(5), r"goal_keys must have shape \(T, 88\), got \(5,\)"),
        (2, np.zeros((5, N, 1)), r"played_keys must have shape \(T, 88\), got \(5, 88, 1\)"),
        (1, np.zeros((5, 2)), r"goal_sustain must have shape \(T,\), got \(5, 2\)"),
        (3, np.zeros((5, 1, 1)), r"played_sustain must have shape \(T,\), got \(5, 1, 1\)"),
        (2, np.zeros((4, N)), r"goal_keys has 5 steps .* but played_keys has 4"),
        (1, np.zeros(6), r"goal_keys has 5 steps .* but goal_sustain has 6"),
        (3, np.zeros(4), r"goal_keys has 5 steps .* but played_sustain has 4"),
        (0, np.full((5, N), np.nan), "goal_keys contains NaN"),
        (1, np.array([0, 1, np.nan, 0, 0]), "goal_sustain contains NaN"),
        (2, np.where(np.eye(5, N) > 0, np.nan, 0.0), "played_keys contains NaN"),
        (3, np.full(5, np.nan), "played_sustain contains NaN"),
        (0, np.full((5, N), "a"), "goal_keys must be numeric or boolean"),
    ],
)
def test_evaluate_validation_errors(index, bad, pattern):
    args = list(_ok())
    args[index] = bad
    with pytest.raises(ValueError, match=pattern):
        evaluate(*args)


def test_evaluate_empty_and_tolerance_errors():
    with pytest.raises(ValueError, match="empty episode"):
        evaluate(*_ok(0))
    for bad in (-1, 1.5, True, "1"):
        with pytest.raises(ValueError, match="tolerance"):
            evaluate(*_ok(), onset_tolerance=bad)
    assert evaluate(*_ok(), onset_tolerance=np.int64(2))["note_f1"] == 1.0


def test_low_level_validation_errors():
    with pytest.raises(ValueError, match=r"y_true has shape \(3, 88\), y_pred has shape \(3, 87\)"):
        per_step_prf(np.zeros((3, N)), np.zeros((3, 87)))
    with pytest.raises(ValueError, match=r"shape \(T, K\) or \(T,\), got \(2, 2, 2\)"):
        per_step_prf(np.zeros((2, 2, 2)), np.zeros((2, 2, 2)))
    with pytest.raises(ValueError, match="y_pred contains NaN"):
        per_step_prf(np.zeros(3), np.array([0, np.nan, 1]))
    with pytest.raises(ValueError, match=r"roll must have shape \(T, n_keys\), got \(4,\)"):
        note_onsets(np.zeros(4))
    with pytest.raises(
        ValueError, match=r"goal_keys has shape \(4, 88\), played_keys has shape \(5, 88\)"
    ):
        onset_prf(np.zeros((4, N)), np.zeros((5, N)))
    with pytest.raises(ValueError, match="tolerance"):
        onset_prf(np.zeros((4, N)), np.zeros((4, N)), tolerance=-2)


def test_module_imports_only_numpy():
    """metrics.py itself must only import numpy (checked on the file, independently of
    whatever the package __init__ imports)."""
    import subprocess
    import sys

    code = (
        "import importlib.util, sys\n"
        f"spec = importlib.util.spec_from_file_location('m', {metrics.__file__!r})\n"
        "mod = importlib.util.module_from_spec(spec); spec.loader.exec_module(mod)\n"
        "bad = [m for m in ('sklearn', 'scipy', 'mujoco', 'dm_control', 'robopianist',\n"
        "       'gymnasium') if m in sys.modules]\n"
        "print(bad)\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]"
