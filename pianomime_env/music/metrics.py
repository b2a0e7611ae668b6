"""Musical performance metrics for piano playing episodes.

Two families of metrics are provided:

* **RoboPianist-compatible per-step metrics** (``precision``, ``recall``, ``f1`` and the
  ``sustain_*`` variants). These reproduce ``robopianist.wrappers.MidiEvaluationWrapper``
  exactly: for every control step, scikit-learn's
  ``precision_recall_fscore_support(y_true, y_pred, average="binary", zero_division=1)`` is
  evaluated on the 88-key binary vectors (resp. the 1-d sustain vector), and the episode
  value is the mean over steps. Here this is vectorized over the whole episode (about three
  orders of magnitude faster than the per-step sklearn loop) and agrees bit-for-bit.

  Per-step semantics (sklearn 1.x, ``zero_division=1``), with ``tp`` true positives,
  ``n_pred`` predicted positives and ``n_true`` actual positives at that step:

  =========================  =========  =========  =========
  case                       precision  recall     f1
  =========================  =========  =========  =========
  nothing true, nothing on   1.0        1.0        1.0
  pressed, nothing true      0.0        1.0        0.0
  true, nothing pressed      1.0        0.0        0.0
  otherwise                  tp/n_pred  tp/n_true  2*tp/(n_true+n_pred)
  =========================  =========  =========  =========

  i.e. ``precision = tp/n_pred`` (1 if ``n_pred == 0``), ``recall = tp/n_true`` (1 if
  ``n_true == 0``), ``f1 = 2*tp/(n_true + n_pred)`` (1 if both are 0). Note that these metrics
  give *free credit for silence*: every step where nothing should be played and nothing is
  played scores 1.0, so an idle agent scores highly on sparse songs.

* **Note-onset metrics** (``note_precision``, ``note_recall``, ``note_f1``), which count
  notes rather than steps and give no credit for silence. Target onsets are the rising edges
  of the goal roll per key (active at ``t`` and inactive at ``t - 1``, or active at
  ``t == 0``); since goal rolls leave a one-step gap between repeated notes, every repeated
  note is a new onset. Played onsets are the rising edges of the played key-activation roll.
  Played and target onsets of the same key are matched one-to-one when
  ``|t_played - t_target| <= tolerance``, using a maximum matching. With ``m`` matched pairs,
  ``n_target`` target onsets and ``n_played`` played onsets:

  - ``note_recall = m / n_target``; 1.0 if ``n_target == 0`` (nothing could be missed).
  - ``note_precision = m / n_played``; if ``n_played == 0`` it is 0.0 when there were
    targets (an all-silent performance of a song with notes scores 0 everywhere) and 1.0
    only when there were no targets either.
  - ``note_f1 = 2 m / (n_target + n_played)`` (the harmonic mean of the two above, taken as
    0 when both are 0); 1.0 only when both counts are 0.

  So the only way to score 1.0 without playing is an episode that contains no notes at all.

Only numpy is imported at module level so importing this module is cheap.
"""

from __future__ import annotations

import numpy as np

__all__ = [
    "N_KEYS",
    "EpisodeRecorder",
    "evaluate",
    "note_onsets",
    "onset_prf",
    "per_step_prf",
]

#: Number of keys on the RoboPianist piano.
N_KEYS = 88

METRIC_NAMES = (
    "precision",
    "recall",
    "f1",
    "sustain_precision",
    "sustain_recall",
    "sustain_f1",
    "note_precision",
    "note_recall",
    "note_f1",
)


# --------------------------------------------------------------------------------------
# Input handling.
# --------------------------------------------------------------------------------------


def _to_bool(x, name: str) -> np.ndarray:
    """Converts array-like ``x`` to a boolean array (values > 0.5 are on); rejects NaN."""
    arr = np.asarray(x)
    if arr.dtype == np.bool_:
        return arr
    if arr.dtype.kind not in "biuf":
        try:
            arr = arr.astype(np.float64)
        except (TypeError, ValueError) as exc:
            raise ValueError(f"{name} must be numeric or boolean, got dtype {arr.dtype}") from exc
    if arr.dtype.kind == "f" and np.isnan(arr).any():
        raise ValueError(f"{name} contains NaN")
    return arr > 0.5


def _as_roll(x, name: str, n_keys: int | None = N_KEYS) -> np.ndarray:
    """Validates a (T, n_keys) roll; ``n_keys=None`` accepts any number of columns."""
    arr = _to_bool(x, name)
    if arr.ndim != 2 or (n_keys is not None and arr.shape[1] != n_keys):
        expected = f"(T, {n_keys})" if n_keys is not None else "(T, n_keys)"
        raise ValueError(f"{name} must have shape {expected}, got {arr.shape}")
    return arr


def _as_sustain(x, name: str) -> np.ndarray:
    """Validates a (T,) sustain track; (T, 1) is accepted and flattened."""
    arr = _to_bool(x, name)
    if arr.ndim == 2 and arr.shape[1] == 1:
        arr = arr[:, 0]
    if arr.ndim != 1:
        raise ValueError(f"{name} must have shape (T,), got {arr.shape}")
    return arr


def _check_same_length(**arrays: np.ndarray) -> int:
    names = list(arrays)
    ref = names[0]
    n = arrays[ref].shape[0]
    for name in names[1:]:
        if arrays[name].shape[0] != n:
            raise ValueError(
                f"number of steps mismatch: {ref} has {n} steps (shape {arrays[ref].shape}) "
                f"but {name} has {arrays[name].shape[0]} (shape {arrays[name].shape})"
            )
    return n


def _check_tolerance(tolerance) -> int:
    if isinstance(tolerance, (bool, np.bool_)) or not isinstance(tolerance, (int, np.integer)):
        raise ValueError(f"onset tolerance must be a non-negative int, got {tolerance!r}")
    if tolerance < 0:
        raise ValueError(f"onset tolerance must be a non-negative int, got {tolerance!r}")
    return int(tolerance)


# --------------------------------------------------------------------------------------
# RoboPianist-compatible per-step metrics.
# --------------------------------------------------------------------------------------


def _per_step_prf_bool(t: np.ndarray, p: np.ndarray):
    """Per-step P/R/F1 of (T, K) boolean arrays with sklearn binary zero_division=1 rules."""
    tp = np.count_nonzero(t & p, axis=1)
    n_true = np.count_nonzero(t, axis=1)
    n_pred = np.count_nonzero(p, axis=1)
    # Same arithmetic as sklearn's _prf_divide: counts are converted to float64 and divided,
    # with the denominator replaced by 1 (and the result by zero_division=1) where it is 0.
    # Counts are small integers, hence exact in float64, so results agree bit-for-bit.
    denom_f = n_true + n_pred
    precision = np.where(n_pred == 0, 1.0, tp / np.maximum(n_pred, 1))
    recall = np.where(n_true == 0, 1.0, tp / np.maximum(n_true, 1))
    f1 = np.where(denom_f == 0, 1.0, (2.0 * tp) / np.maximum(denom_f, 1))
    return precision, recall, f1


def per_step_prf(y_true, y_pred) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Per-step precision, recall and F1, identical to sklearn's binary ``zero_division=1``.

    Args:
        y_true: (T, K) or (T,) array-like of 0/1 targets (values > 0.5 are on). A 1-d input
            is treated as T steps of a single label (e.g. the sustain pedal).
        y_pred: predictions, same shape as ``y_true``.

    Returns:
        ``(precision, recall, f1)``, each a float64 array of shape (T,). Step ``t`` equals
        ``precision_recall_fscore_support(y_true[t], y_pred[t], average="binary",
        zero_division=1)[:3]``.
    """
    t = _to_bool(y_true, "y_true")
    p = _to_bool(y_pred, "y_pred")
    if t.shape != p.shape:
        raise ValueError(
            f"y_true and y_pred must have the same shape: y_true has shape {t.shape}, "
            f"y_pred has shape {p.shape}"
        )
    if t.ndim == 1:
        t = t[:, None]
        p = p[:, None]
    elif t.ndim != 2:
        raise ValueError(f"y_true must have shape (T, K) or (T,), got {t.shape}")
    return _per_step_prf_bool(t, p)


# --------------------------------------------------------------------------------------
# Note-onset metrics.
# --------------------------------------------------------------------------------------


def _rising_edges(roll: np.ndarray) -> np.ndarray:
    """(T, K) bool -> (T, K) bool, True where a key turns on (t == 0 counts as rising)."""
    edges = roll.copy()
    edges[1:] &= ~roll[:-1]
    return edges


def note_onsets(roll) -> tuple[np.ndarray, np.ndarray]:
    """Rising edges of a piano roll.

    Args:
        roll: (T, K) array-like of 0/1 key states (values > 0.5 are on). Any K is accepted.

    Returns:
        ``(times, keys)``: int arrays of equal length, one entry per onset, ordered by time
        then key. A key that is on at ``t == 0`` has an onset at 0.
    """
    arr = _as_roll(roll, "roll", n_keys=None)
    times, keys = np.nonzero(_rising_edges(arr))
    return times, keys


def _window_sum(x: np.ndarray, tolerance: int) -> np.ndarray:
    """For a (T, K) integer array, the sum over ``[t - tolerance, t + tolerance]`` (clipped to
    ``[0, T - 1]``) along time, for every (t, k)."""
    n = x.shape[0]
    tol = min(tolerance, max(n - 1, 0))
    if tol <= 8:  # a few shifted adds beat a cumulative sum for small windows
        out = x.copy()
        for d in range(1, tol + 1):
            out[d:] += x[:-d]
            out[:-d] += x[d:]
        return out
    cum = np.zeros((n + 1,) + x.shape[1:], dtype=x.dtype)
    np.cumsum(x, axis=0, out=cum[1:])
    idx = np.arange(n)
    return cum[np.minimum(idx + tol + 1, n)] - cum[np.maximum(idx - tol, 0)]


def _greedy_match(
    t_times: np.ndarray, t_keys: np.ndarray, p_times: np.ndarray, p_keys: np.ndarray, tol: int
) -> int:
    """Size of a maximum matching between target and played onsets (same key, |dt| <= tol).

    Greedy two-pointer sweep per key, in time order: look at the earliest unmatched target
    ``a`` and the earliest unmatched played onset ``b`` of the key. If ``b < a - tol``, ``b``
    cannot match ``a`` nor any later target, so it is discarded; if ``a < b - tol``, ``a``
    cannot match ``b`` nor any later played onset, so it is discarded; otherwise ``a`` and
    ``b`` are matched.

    Why this is optimal (exchange argument; all windows ``[a - tol, a + tol]`` have the same
    width, i.e. points matched to equal-width intervals on a line). Within one key, onsets of
    one roll have distinct times. Let ``a`` be the earliest remaining target and ``b`` the
    earliest remaining played onset.

    * Discards are safe: if ``b < a - tol`` then ``b < a' - tol`` for every remaining target
      ``a' >= a``, so ``b`` has no possible partner; symmetrically for ``a < b - tol``.
    * If ``|a - b| <= tol``, some maximum matching ``M`` contains ``(a, b)``. If ``a`` and
      ``b`` are both unmatched in ``M``, adding ``(a, b)`` contradicts maximality. If only
      one is matched, re-pair its partner edge to ``(a, b)``; size unchanged. If ``M`` has
      ``(a, b')`` and ``(a', b)`` with ``a' > a`` and ``b' > b``, replace them by ``(a, b)``
      and ``(a', b')``, which is compatible: ``a' - b' < a' - b <= tol`` and
      ``b' - a' < b' - a <= tol``.

    By induction on the remaining (still sorted) sequences, the sweep finds a maximum
    matching. Tests check this against scipy's ``linear_sum_assignment`` on random rolls.
    """
    if t_times.size == 0 or p_times.size == 0:
        return 0
    # Sort by (key, time); np.nonzero output is sorted by (time, key).
    t_order = np.lexsort((t_times, t_keys))
    p_order = np.lexsort((p_times, p_keys))
    ta = t_times[t_order].tolist()
    tk = t_keys[t_order].tolist()
    pa = p_times[p_order].tolist()
    pk = p_keys[p_order].tolist()
    i = j = matched = 0
    n_t, n_p = len(ta), len(pa)
    while i < n_t and j < n_p:
        ki, kj = tk[i], pk[j]
        if ki < kj:
            i += 1
        elif kj < ki:
            j += 1
        else:
            a, b = ta[i], pa[j]
            if b < a - tol:
                j += 1
            elif a < b - tol:
                i += 1
            else:
                matched += 1
                i += 1
                j += 1
    return matched


def _onset_counts(goal: np.ndarray, played: np.ndarray, tol: int) -> tuple[int, int, int]:
    """Returns (matched, n_target, n_played) for (T, K) boolean rolls."""
    t_on = _rising_edges(goal)
    p_on = _rising_edges(played)
    n_target = int(np.count_nonzero(t_on))
    n_played = int(np.count_nonzero(p_on))
    if n_target == 0 or n_played == 0:
        return 0, n_target, n_played

    # Only keys with onsets in both rolls can have matches (songs use few keys).
    cols = np.flatnonzero(t_on.any(axis=0) & p_on.any(axis=0))
    if cols.size == 0:
        return 0, n_target, n_played
    t_on = t_on[:, cols]
    p_on = p_on[:, cols]
    # Degree of every onset in the bipartite "compatible" graph, by windowed counts. Degrees
    # are <= 2 tol + 1 and window sums of degrees <= (2 tol + 1)^2, so int16 is enough for
    # small tolerances.
    dtype = np.int16 if tol <= 60 else np.int64
    t_int = t_on.astype(dtype)
    p_int = p_on.astype(dtype)
    p_deg = _window_sum(t_int, tol) * p_int  # targets near each played onset (0 elsewhere)
    t_deg = _window_sum(p_int, tol) * t_int  # played onsets near each target (0 elsewhere)
    # Isolated edges: a played onset with exactly one candidate target whose only candidate
    # is that played onset. Such a pair is a whole connected component, so it belongs to
    # every maximum matching and can be counted without the sequential sweep. For played
    # onsets of degree 1, the window-sum of target degrees is the degree of that one target.
    p_iso = (p_deg == 1) & (_window_sum(t_deg, tol) == 1)
    t_iso = (t_deg == 1) & (_window_sum(p_deg, tol) == 1)
    n_iso = int(np.count_nonzero(p_iso))
    # Everything else with at least one candidate goes through the exact greedy sweep.
    # Removing whole components (isolated edges, degree-0 vertices) leaves the rest intact.
    t_rest = (t_deg > 0) & ~t_iso
    p_rest = (p_deg > 0) & ~p_iso
    if not p_rest.any():
        return n_iso, n_target, n_played
    t_times, t_keys = np.nonzero(t_rest)
    p_times, p_keys = np.nonzero(p_rest)
    matched = n_iso + _greedy_match(t_times, t_keys, p_times, p_keys, tol)
    return matched, n_target, n_played


def _onset_scores(matched: int, n_target: int, n_played: int) -> tuple[float, float, float]:
    recall = matched / n_target if n_target else 1.0
    if n_played:
        precision = matched / n_played
    else:
        precision = 0.0 if n_target else 1.0
    total = n_target + n_played
    f1 = 2.0 * matched / total if total else 1.0
    return float(precision), float(recall), float(f1)


def onset_prf(goal_keys, played_keys, tolerance: int = 1) -> tuple[float, float, float]:
    """Note-onset precision, recall and F1 (see the module docstring for the definitions).

    Args:
        goal_keys: (T, K) array-like goal roll (values > 0.5 are on). Any K is accepted.
        played_keys: (T, K) array-like played key activations.
        tolerance: maximum |t_played - t_target| (in control steps) for a match.

    Returns:
        ``(note_precision, note_recall, note_f1)`` as python floats.
    """
    tol = _check_tolerance(tolerance)
    goal = _as_roll(goal_keys, "goal_keys", n_keys=None)
    played = _as_roll(played_keys, "played_keys", n_keys=None)
    if goal.shape != played.shape:
        raise ValueError(
            f"goal_keys and played_keys must have the same shape: goal_keys has shape "
            f"{goal.shape}, played_keys has shape {played.shape}"
        )
    return _onset_scores(*_onset_counts(goal, played, tol))


# --------------------------------------------------------------------------------------
# Episode-level API.
# --------------------------------------------------------------------------------------


def _evaluate_bool(
    goal: np.ndarray, goal_s: np.ndarray, played: np.ndarray, played_s: np.ndarray, tol: int
) -> dict[str, float]:
    if goal.shape[0] == 0:
        raise ValueError("cannot evaluate an empty episode (0 steps)")
    p, r, f = _per_step_prf_bool(goal, played)
    sp, sr, sf = _per_step_prf_bool(goal_s[:, None], played_s[:, None])
    note_p, note_r, note_f = _onset_scores(*_onset_counts(goal, played, tol))
    # np.mean of the per-step values, as RoboPianist does (same pairwise summation).
    return {
        "precision": float(np.mean(p)),
        "recall": float(np.mean(r)),
        "f1": float(np.mean(f)),
        "sustain_precision": float(np.mean(sp)),
        "sustain_recall": float(np.mean(sr)),
        "sustain_f1": float(np.mean(sf)),
        "note_precision": note_p,
        "note_recall": note_r,
        "note_f1": note_f,
    }


def evaluate(
    goal_keys, goal_sustain, played_keys, played_sustain, *, onset_tolerance: int = 1
) -> dict[str, float]:
    """Computes all episode metrics.

    Args:
        goal_keys: (T, 88) array-like goal key roll (bool/int/float; values > 0.5 are on).
        goal_sustain: (T,) goal sustain-pedal track ((T, 1) is also accepted).
        played_keys: (T, 88) played key activations.
        played_sustain: (T,) played sustain activations ((T, 1) is also accepted).
        onset_tolerance: maximum onset time difference, in control steps, for a played note
            to match a target note (note-onset metrics only).

    Returns:
        Dict with python floats for ``precision``, ``recall``, ``f1``,
        ``sustain_precision``, ``sustain_recall``, ``sustain_f1`` (RoboPianist's per-step
        means) and ``note_precision``, ``note_recall``, ``note_f1`` (onset metrics).

    Raises:
        ValueError: on wrong shapes, a different number of steps between the inputs, a key
            count other than 88, NaN values, an empty episode or a negative tolerance.
    """
    tol = _check_tolerance(onset_tolerance)
    goal = _as_roll(goal_keys, "goal_keys")
    played = _as_roll(played_keys, "played_keys")
    goal_s = _as_sustain(goal_sustain, "goal_sustain")
    played_s = _as_sustain(played_sustain, "played_sustain")
    _check_same_length(
        goal_keys=goal, goal_sustain=goal_s, played_keys=played, played_sustain=played_s
    )
    return _evaluate_bool(goal, goal_s, played, played_s, tol)


class EpisodeRecorder:
    """Records played key/sustain activations of an episode into preallocated buffers.

    ``record`` is O(1) per step; ``compute`` evaluates the recorded steps against the goal,
    using only the first ``n_steps`` steps of the goal (an episode can end early, e.g. on a
    wrong press, in which case RoboPianist likewise truncates the ground truth).
    """

    def __init__(self, max_steps: int, *, onset_tolerance: int = 1) -> None:
        if isinstance(max_steps, (bool, np.bool_)) or not isinstance(max_steps, (int, np.integer)):
            raise ValueError(f"max_steps must be a positive int, got {max_steps!r}")
        if max_steps <= 0:
            raise ValueError(f"max_steps must be a positive int, got {max_steps!r}")
        self.max_steps = int(max_steps)
        self.onset_tolerance = _check_tolerance(onset_tolerance)
        self._keys = np.zeros((self.max_steps, N_KEYS), dtype=bool)
        self._sustain = np.zeros((self.max_steps,), dtype=bool)
        self._n = 0

    @property
    def n_steps(self) -> int:
        """Number of steps recorded since the last reset."""
        return self._n

    @property
    def key_activations(self) -> np.ndarray:
        """(n_steps, 88) bool view of the recorded key activations."""
        return self._keys[: self._n]

    @property
    def sustain_activations(self) -> np.ndarray:
        """(n_steps,) bool view of the recorded sustain activations."""
        return self._sustain[: self._n]

    def reset(self) -> None:
        """Forgets the recorded steps (buffers are reused)."""
        self._n = 0

    def record(self, key_activation: np.ndarray, sustain_activation) -> None:
        """Appends one control step.

        Args:
            key_activation: (88,) bool array (numeric arrays are thresholded at 0.5).
            sustain_activation: bool, or a size-1 array (as ``piano.sustain_activation``).
        """
        n = self._n
        if n >= self.max_steps:
            raise ValueError(
                f"EpisodeRecorder is full: max_steps={self.max_steps} steps already recorded"
            )
        keys = np.asarray(key_activation)
        if keys.shape != (N_KEYS,):
            raise ValueError(f"key_activation must have shape ({N_KEYS},), got {keys.shape}")
        if keys.dtype != np.bool_:
            keys = _to_bool(keys, "key_activation")
        sustain = np.asarray(sustain_activation)
        if sustain.size != 1:
            raise ValueError(
                f"sustain_activation must be a scalar or size-1 array, got shape {sustain.shape}"
            )
        if sustain.dtype != np.bool_:
            sustain = _to_bool(sustain, "sustain_activation")
        self._keys[n] = keys
        self._sustain[n] = sustain.reshape(())
        self._n = n + 1

    def compute(self, goal_keys, goal_sustain) -> dict[str, float]:
        """Evaluates the recorded steps against the first ``n_steps`` steps of the goal.

        Args:
            goal_keys: (T, 88) goal roll with ``T >= n_steps``.
            goal_sustain: (T,) goal sustain track.

        Returns:
            The same dict as :func:`evaluate`.
        """
        goal = _as_roll(goal_keys, "goal_keys")
        goal_s = _as_sustain(goal_sustain, "goal_sustain")
        _check_same_length(goal_keys=goal, goal_sustain=goal_s)
        n = self._n
        if n == 0:
            raise ValueError("cannot compute metrics: no steps recorded")
        if goal.shape[0] < n:
            raise ValueError(
                f"goal_keys has {goal.shape[0]} steps but {n} steps were recorded; "
                "the goal must cover at least the recorded steps"
            )
        return _evaluate_bool(
            goal[:n], goal_s[:n], self._keys[:n], self._sustain[:n], self.onset_tolerance
        )
