"""The look-ahead sight-reader, distilled: learn which of its candidate settings its rollouts
would pick, then play the sight-reader with those picks and no rollouts (issue 21, item 3).

    .venv/bin/python baselines/distill_lookahead.py                      # 24 training songs, 2 DAgger rounds
    .venv/bin/python baselines/distill_lookahead.py --songs music21:bach/bwv1.6 --rounds 0 --eval-songs CMajorScaleOneHand
    .venv/bin/python baselines/evaluate.py --suite heldout --policy runs/<run dir>/model.pt
    .venv/bin/pianomime play music21:bach/bwv66.6 --policy runs/<run dir>/model.pt

Every ``chunk_steps`` (10) control steps the look-ahead (``sight-reader-lookahead``) simulates
each of its 7 candidates for 20 steps and plays the best: 42–68 ms per step. The learner is a
small MLP from :func:`pianomime_env.learning.chooser.choice_features` (57 numbers: fingertips vs
the plan, the plan's coming hand moves, coming onsets, notes each candidate's plan leaves
unfingered) to each candidate's predicted rollout-score gain over the default candidate; it
plays the best predicted candidate when that gain exceeds ``--margin``, else the default.

Round 0 plays the training songs with the look-ahead itself (the teacher) and records, at every
chunk, the features and every candidate's rollout score. Each DAgger round i = 1..``--rounds``
then plays them with the current learner, executing the teacher's pick instead with probability
``beta_i = --beta * --beta-decay ** (i - 1)`` per chunk; the teacher's rollouts score every
candidate from the state the learner reached (the labels). After each round a new network
trains from scratch on the aggregate (``--train-steps`` Adam steps, MSE on the gains). The
episodes run on ``--workers`` processes (``pianomime_env.collection.fanout``); a song that fails
to load is reported and skipped.

Outputs in the run directory (default ``runs/distill_lookahead__<seed>__<time>/``): ``model.pt``
(the ``lookahead-chooser`` checkpoint: ``load_policy``, ``pianomime play --policy`` and
``baselines/evaluate.py --policy`` play it), ``model_round<i>.pt``, ``choices.npz`` (every
round's features, scores, executed and teacher picks, song index, round), ``summary.json``
(per round: beta, chunks, episode F1 of the rollouts, the learner's agreement with the teacher
and the score it gives up; the held-out evaluation, per song and mean, with seconds per step)
and ``args.json``. No ``--resume``: a killed run is started again (a run is minutes).
"""

import json
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal

import numpy as np
from tqdm import tqdm

from pianomime_env.collection.fanout import run_tasks
from pianomime_env.control.lookahead import DEFAULT_CANDIDATES
from pianomime_env.extras import require_torch
from pianomime_env.learning.chooser import (
    FEATURE_NAMES,
    ChooserNetwork,
    candidates_payload,
    pick,
    record_choices,
)
from pianomime_env.learning.evaluation import HELDOUT_SONGS, check_heldout, evaluate_song
from pianomime_env.learning.policies import RunningMeanStd, build_mlp, save_checkpoint
from pianomime_env.learning.runs import Timer, open_run_dir, parse_args, save_json

#: The training songs of docs/generalist.md's dataset (Bach chorales and folk collections only).
TRAINING_SONGS = (
    "music21:bach/bwv1.6",
    "music21:bach/bwv10.7",
    "music21:bach/bwv101.7",
    "music21:bach/bwv102.7",
    "music21:bach/bwv103.6",
    "music21:bach/bwv104.6",
    "music21:bach/bwv108.6",
    "music21:bach/bwv11.6",
    "music21:bach/bwv110.7",
    "music21:bach/bwv111.6",
    "music21:bach/bwv112.5",
    "music21:bach/bwv113.8",
    "music21:essenFolksong/altdeu10#10",
    "music21:essenFolksong/altdeu10#100",
    "music21:essenFolksong/altdeu10#101",
    "music21:essenFolksong/altdeu10#102",
    "music21:essenFolksong/altdeu10#103",
    "music21:ryansMammoth/42dHighlandRegimentStrathspey",
    "music21:ryansMammoth/AWillieWeHaveMissdYouStrathspey",
    "music21:ryansMammoth/AbithaMugginsFavoriteReel",
    "music21:oneills1850/0001-0050#1",
    "music21:oneills1850/0001-0050#10",
    "music21:oneills1850/0001-0050#11",
    "music21:oneills1850/0001-0050#13",
)


@dataclass
class Args:
    songs: list[str] = field(default_factory=lambda: list(TRAINING_SONGS))
    """Training songs (names, MIDI paths, music21: specs); never a held-out song."""
    max_seconds: float = 20.0
    """Play at most this much of each training song per round (0: whole songs)."""
    rounds: int = 2
    """DAgger rounds after the teacher's round 0 (0: imitate the look-ahead's own episodes)."""
    beta: float = 0.5
    """Round 1's probability that a chunk executes the teacher's pick, not the learner's."""
    beta_decay: float = 0.5
    """beta of round i is --beta * --beta-decay ** (i - 1)."""
    hidden: list[int] = field(default_factory=lambda: [128, 128])
    """Hidden layer widths of the MLP."""
    activation: Literal["tanh", "relu"] = "tanh"
    """Hidden activation."""
    train_steps: int = 3000
    """Adam steps per round (a new network each round, trained on the aggregate)."""
    batch_size: int = 256
    """Minibatch size (chunks)."""
    learning_rate: float = 1e-3
    """Adam learning rate."""
    weight_decay: float = 1e-4
    """AdamW weight decay."""
    margin: float = 0.0
    """Play a candidate other than the default only when its predicted gain (key-step F1 +
    note-onset F1 over the 20-step window) exceeds this."""
    eval_songs: list[str] = field(default_factory=lambda: list(HELDOUT_SONGS))
    """Held-out songs to evaluate the final chooser on (never a training song; [] to skip)."""
    eval_max_seconds: float = 30.0
    """Play at most this much of each evaluation song (baselines/evaluate.py's default)."""
    workers: int = 2
    """Processes playing the training songs (1: in this process)."""
    seed: int = 0
    """Seed of torch, the minibatches and the beta draws."""
    torch_threads: int = 1
    """torch CPU threads."""
    exp_name: str = "distill_lookahead"
    """Experiment name (part of the default run directory)."""
    run_dir: Path | None = None
    """Output directory (default runs/distill_lookahead__<seed>__<time>)."""
    progress: bool = True
    """Show progress bars."""


def check_args(args: Args) -> None:
    if not args.songs:
        raise SystemExit("distill_lookahead.py: --songs is empty")
    if args.rounds < 0 or args.train_steps < 1 or args.batch_size < 1 or args.workers < 1:
        raise SystemExit(
            "distill_lookahead.py: --rounds must be >= 0 and --train-steps, --batch-size, "
            f"--workers >= 1 (got {args.rounds}, {args.train_steps}, {args.batch_size}, "
            f"{args.workers})"
        )
    if not 0.0 <= args.beta <= 1.0 or not 0.0 <= args.beta_decay <= 1.0:
        raise SystemExit(
            f"distill_lookahead.py: --beta and --beta-decay must be in [0, 1], got "
            f"{args.beta}, {args.beta_decay}"
        )
    check_heldout(list(args.eval_songs), list(args.songs))


# -- playing the training songs -----------------------------------------------------------------


def play_round(args: Args, k: int, network: dict | None) -> tuple[list[dict], list[str]]:
    """Round ``k``'s episodes (one per song, in --songs order) and the songs that failed."""
    beta = 1.0 if k == 0 else args.beta * args.beta_decay ** (k - 1)
    tasks = [
        (i, (song, args.max_seconds, network, beta, args.margin, args.seed + 1000 * k + i))
        for i, song in enumerate(args.songs)
    ]
    episodes, failed = {}, []
    bar = tqdm(total=len(tasks), desc=f"round {k}", disable=not args.progress)
    for i, result in run_tasks(record_choices, tasks, workers=args.workers):
        bar.update(1)
        if isinstance(result, BaseException):
            failed.append(args.songs[i])
            print(f"distill_lookahead.py: {args.songs[i]} skipped: {result}", file=sys.stderr)
        else:
            episodes[i] = result
    bar.close()
    return [episodes[i] for i in sorted(episodes)], failed


# -- the network ----------------------------------------------------------------------------------


def gains_of(scores: np.ndarray) -> np.ndarray:
    """(N, K) rollout scores -> (N, K) gains over the default candidate (column 0)."""
    return scores - scores[:, :1]


def train(torch, args: Args, x: np.ndarray, y: np.ndarray) -> tuple[dict, dict, float]:
    """A new MLP fitted to gains ``y`` (N, K) from features ``x`` (N, F): (actor, obs_norm,
    final loss)."""
    torch.manual_seed(args.seed)
    rms = RunningMeanStd(x.shape[1], clip=5.0, eps=1e-6)  # the statistics of exactly x
    rms.mean, rms.var, rms.count = (
        x.mean(axis=0, dtype=np.float64),
        x.var(axis=0, dtype=np.float64),
        len(x),
    )
    xn = rms.normalize(x)
    net = build_mlp(x.shape[1], args.hidden, y.shape[1], args.activation)
    opt = torch.optim.AdamW(net.parameters(), lr=args.learning_rate, weight_decay=args.weight_decay)
    xt, yt = torch.as_tensor(xn), torch.as_tensor(y.astype(np.float32))
    rng = np.random.default_rng(args.seed)
    loss = torch.zeros(())
    for _ in range(args.train_steps):
        idx = torch.as_tensor(rng.integers(0, len(xt), size=min(args.batch_size, len(xt))))
        loss = torch.nn.functional.mse_loss(net(xt[idx]), yt[idx])
        opt.zero_grad()
        loss.backward()
        opt.step()
    actor = {
        "state_dict": {k: v.detach().clone() for k, v in net.state_dict().items()},
        "in_dim": int(x.shape[1]),
        "hidden": list(args.hidden),
        "out_dim": int(y.shape[1]),
        "activation": args.activation,
    }
    return actor, rms.state_dict(), float(loss.detach())


def agreement(network: dict, x: np.ndarray, scores: np.ndarray, margin: float) -> dict:
    """How the network's picks on ``x`` compare with the teacher's (rollout argmax): the share
    it matches, and the mean rollout score it gives up per chunk (0 for the teacher; the default
    candidate's loss for comparison)."""
    net = ChooserNetwork(network["actor"], network["obs_norm"])
    picks = np.array([pick(net.gains(row), margin) for row in x])
    best = scores.max(axis=1)
    rows = np.arange(len(scores))
    return {
        "match_teacher": float(np.mean(picks == scores.argmax(axis=1))),
        "score_lost_per_chunk": float(np.mean(best - scores[rows, picks])),
        "default_score_lost_per_chunk": float(np.mean(best - scores[:, 0])),
        "non_default_share": float(np.mean(picks != 0)),
    }


def checkpoint(args: Args, network: dict, rounds_done: int, reader: dict) -> dict:
    """The chooser's ``model.pt``; ``reader`` is an episode of :func:`record_choices` (its
    chunk and horizon steps and control timestep are what the network was trained for)."""
    return {
        "algorithm": "lookahead-chooser",
        "actor": network["actor"],
        "obs_norm": network["obs_norm"],
        "env": {"id": "PianoMime-v0", "kwargs": {}},
        "observation_layout": [],
        "wrapper": {"residual": False},
        "candidates": candidates_payload(DEFAULT_CANDIDATES),
        "chunk_steps": reader["chunk_steps"],
        "horizon_steps": reader["horizon_steps"],
        "margin": float(args.margin),
        "feature_names": list(FEATURE_NAMES),
        "control_timestep": reader["control_timestep"],
        "rounds": rounds_done,
        "songs": list(args.songs),
    }


# -- main -----------------------------------------------------------------------------------------


def main(args: Args) -> dict:
    check_args(args)
    torch = require_torch()
    torch.set_num_threads(args.torch_threads)
    run_dir, _ = open_run_dir(args, f"{args.exp_name}__{args.seed}__{int(time.time())}")
    timer = Timer()
    data = {"features": [], "scores": [], "chosen": [], "teacher": [], "song": [], "round": []}
    network: dict | None = None
    rounds, failed_songs = [], set()
    for k in range(args.rounds + 1):
        with timer.timed("rollout"):
            episodes, failed = play_round(args, k, network)
        failed_songs.update(failed)
        if not episodes:
            raise SystemExit("distill_lookahead.py: no training song could be played")
        round_x = np.concatenate([e["features"] for e in episodes])
        round_s = np.concatenate([e["scores"] for e in episodes])
        row = {
            "round": k,
            "beta": 1.0 if k == 0 else args.beta * args.beta_decay ** (k - 1),
            "songs": len(episodes),
            "chunks": int(len(round_x)),
            "episode_f1": float(np.mean([e["metrics"].get("f1", np.nan) for e in episodes])),
            "episode_note_f1": float(
                np.mean([e["metrics"].get("note_f1", np.nan) for e in episodes])
            ),
            "teacher_executed_share": float(
                np.mean(np.concatenate([e["chosen"] == e["teacher"] for e in episodes]))
            ),
            "rollout_s": float(sum(e["seconds"] for e in episodes)),
        }
        if network is not None:  # the previous learner on the states it reached itself
            row["learner_on_own_states"] = agreement(network, round_x, round_s, args.margin)
        for e in episodes:
            for key in ("features", "scores", "chosen", "teacher"):
                data[key].append(e[key])
            data["song"].append(np.full(len(e["chosen"]), args.songs.index(e["song"])))
            data["round"].append(np.full(len(e["chosen"]), k))
        x = np.concatenate(data["features"])
        scores = np.concatenate(data["scores"])
        with timer.timed("train"):
            actor, obs_norm, loss = train(torch, args, x, gains_of(scores))
        network = {"actor": actor, "obs_norm": obs_norm}
        row |= {"aggregate_chunks": int(len(x)), "final_loss": loss}
        row["learner_on_aggregate"] = agreement(network, x, scores, args.margin)
        rounds.append(row)
        save_checkpoint(run_dir / f"model_round{k}.pt", checkpoint(args, network, k, episodes[0]))
        print(
            json.dumps({key: row[key] for key in ("round", "chunks", "episode_f1", "final_loss")})
        )
    model_path = save_checkpoint(
        run_dir / "model.pt", checkpoint(args, network, args.rounds, episodes[0])
    )
    np.savez_compressed(run_dir / "choices.npz", **{k: np.concatenate(v) for k, v in data.items()})
    evaluation = None
    if args.eval_songs:
        with timer.timed("eval"):
            rows = [
                evaluate_song(s, str(model_path), args.eval_max_seconds, True, args.seed)
                for s in args.eval_songs
            ]
        evaluation = {
            "f1": float(np.mean([r["f1"] for r in rows])),
            "note_f1": float(np.mean([r["note_f1"] for r in rows])),
            "seconds_per_step": float(np.mean([r["seconds_per_step"] for r in rows])),
            "songs": {
                r["song"]: {k: float(r[k]) for k in ("f1", "note_f1", "seconds_per_step")}
                for r in rows
            },
        }
    summary = {
        "algorithm": "lookahead-chooser",
        "rounds": rounds,
        "failed_songs": sorted(failed_songs),
        "eval": evaluation,
        "times_s": dict(timer.seconds),
        "run_dir": str(run_dir),
    }
    save_json(run_dir / "summary.json", summary)
    print(
        json.dumps(
            {
                "eval": None
                if evaluation is None
                else {k: evaluation[k] for k in ("f1", "note_f1", "seconds_per_step")}
            }
        )
    )
    print(f"run directory: {run_dir}")
    return summary


if __name__ == "__main__":
    main(parse_args(Args, sys.argv[1:]))
