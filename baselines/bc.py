"""Behaviour cloning (an MLP, RP1M's sizes) of a multi-song ``pianomime collect`` dataset: a
generalist evaluated on songs it never saw.

    .venv/bin/pianomime collect --songs corpus:bach:bach/bwv1* --dataset pianomime/bach-v0 --episodes 2 --noise 0.1
    .venv/bin/python baselines/bc.py --dataset pianomime/bach-v0 --total-steps 50000
    .venv/bin/python baselines/bc.py --dataset pianomime/bach-v0 --goal-encoder train --size 3x1024
    .venv/bin/python baselines/bc.py --dataset pianomime/bach-v0 --two-level   # goal -> fingertips -> joints
    .venv/bin/python baselines/bc.py --dataset pianomime/bach-v0 --dagger-rounds 4 --dagger-steps 5000
    .venv/bin/python baselines/bc.py --resume runs/<run dir>        # continue a killed run
    .venv/bin/pianomime play music21:bach/bwv66.6 --policy runs/<run dir>/model.pt

RP1M's settings (its appendix B) are the defaults: batch 256, Adam 3e-4, GELU, observation /
prediction / execution horizons 1 / 1 / 1, sizes 3x256 (default), 3x1024, 6x4096. The network
sees the observation (z-scored with the dataset's statistics; the goal raw or as PianoMime's
16-d latents with ``--goal-encoder``) and predicts the expert's normalized action, or with
``--residual`` the ResidualIK residual over the sight-reader (see
:mod:`pianomime_env.learning.generalist`). ``--total-steps`` counts gradient steps.

``--two-level`` is PianoMime's two-level variant: level 1 (the MLP of ``--size``, same
features) predicts the fingertip targets (the fingertips observed at the next step t+1, 30
numbers in m, hindsight from the dataset) plus the sustain action, z-scored; level 2 (an MLP
of ``--low-size``) maps the song-independent observation (``hand_joints``, ``fingertips``,
``hand_velocities`` if present) plus the target's offset from the current fingertips to the
executed joint action at t (the action that really produced those fingertips, so the noisy
episodes teach it). Both train for ``--total-steps`` gradient steps on the same minibatches,
each with its own Adam (level 2: ``--low-learning-rate``). The checkpoint gains
``low_level`` and ``target_norm`` (format: :mod:`pianomime_env.learning.generalist`); played,
level 2 runs every step, its joints plus level 1's sustain are the action.
``--target-frame offset`` makes level 1 predict the next fingertips relative to the current
ones (the same target for level 2). Not with ``--residual``.

Evaluation every ``--eval-every`` steps plays the current policy through
``pianomime_env.learning.policies.load_policy`` (the path ``pianomime play --policy`` takes) on
``--eval-songs``: by default ``pianomime_env.learning.evaluation.HELDOUT_SONGS`` (chorales and
folk tunes never tuned on), refused if a training song is among them.

Outputs in the run directory (default ``runs/bc__<dataset>__<seed>__<time>/``): ``model.pt``
(the policy checkpoint), ``goal_encoder.pt`` (with ``--goal-encoder train``), ``summary.json``
(``global_step``, ``steps_per_s`` = gradient steps per second of training, ``train_s`` /
``eval_s`` / ``setup_s`` (loading the dataset, the goal encoder) / ``wall_s``, ``eval``,
``evals``, dataset size), ``resume.pt`` (weights, optimizer, RNG, step, times; two-level: level
2's too), ``args.json`` and TensorBoard events (``losses/``, with ``losses/low_loss`` for level
2, ``eval/f1``, ``eval/note_f1``).

DAgger (``--dagger-rounds K``, :mod:`pianomime_env.learning.dagger`): after the initial
training (round 0, ``--total-steps``) each round i = 1..K rolls out the current policy on the
dataset's training songs (``--dagger-episodes`` per song, whole songs or random
``--dagger-segment-steps`` segments with the hands posed by IK), executing the teacher's action
instead with probability ``beta_i = --dagger-beta * --dagger-beta-decay ** (i - 1)`` per step;
the teacher (``--dagger-teacher``: ``sight-reader``, ``sight-reader-lookahead`` or a checkpoint)
runs in shadow mode on the same observations and its action is the label. The round's episodes
become the Minari dataset ``<--dagger-dataset>-r<i>-v0`` (collect's layout, written atomically),
then the learner trains ``--dagger-steps`` more gradient steps on the aggregate (the initial
dataset and every round's; ``--dagger-retrain continue`` keeps the network, its optimizer and
input statistics, ``scratch`` trains a new one) and is evaluated on ``--eval-songs``.
``summary.json``'s ``dagger.rounds`` records per round: beta, teacher, its rollouts' F1 and
teacher fraction, the aggregate's episodes / steps, gradient steps, held-out F1 / note F1 and
the setup / rollout / train / eval seconds; ``model_round<i>.pt`` keeps each round's policy;
``updates`` and ``steps_per_s`` count every round's gradient steps. ``--resume`` continues the
round a run was killed in (its dataset reused once written) or starts the next; a larger
``--dagger-rounds`` extends a finished run. Not with ``--two-level`` (its level-1 labels are
hindsight fingertips, the learner's own on DAgger states) or ``--labels executed``.

Resume: checkpoints every ``--checkpoint-every`` steps, every ``--checkpoint-every-s`` seconds
and on SIGTERM / SIGINT (then the run exits with 128 + the signal's number); ``--resume RUN_DIR``
continues from the last one with the same minibatches a straight run would have drawn, so a
resumed run ends with the same weights (a SIGKILL loses what came after the last checkpoint).
"""

import json
import re
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

import numpy as np

from pianomime_env.extras import require_torch
from pianomime_env.learning.evaluation import HELDOUT_SONGS, check_heldout, evaluate_checkpoint
from pianomime_env.learning.generalist import (
    BC_SIZES,
    TWO_LEVEL_RESIDUAL,
    ImitationData,
    Normalizer,
    build_actor,
    features,
    load_imitation_data,
    low_level_entry,
    two_level_arrays,
)
from pianomime_env.learning.goal_encoder import goal_encoder_for_run
from pianomime_env.learning.policies import save_checkpoint
from pianomime_env.learning.runs import (
    CheckpointCadence,
    StopSignals,
    Timer,
    load_resume_state,
    open_run_dir,
    parse_args,
    parse_env_kwargs,
    residual_wrapper_config,
    save_json,
)


@dataclass
class Args:
    dataset: str = "pianomime/generalist-sr-v0"
    """Minari id of a `pianomime collect` dataset (in $MINARI_DATASETS_PATH)."""
    dataset_steps: int | None = None
    """Train on a fixed random subset of the dataset's episodes of at most this many steps
    (nested: a smaller budget's episodes are among a larger one's; for data-size curves);
    default the whole dataset."""
    exp_name: str = "bc"
    """Experiment name (part of the default run directory)."""
    labels: Literal["expert", "executed"] = "expert"
    """Imitate the clean expert action (expert) or the executed, noisy one."""
    size: Literal["3x256", "3x1024", "6x4096"] = "3x256"
    """MLP size (RP1M's three BC sizes)."""
    goal_encoder: str = "none"
    """none: the raw 88-key goal; train: train PianoMime's SDF goal autoencoder on the dataset's
    goals first (saved as goal_encoder.pt in the run dir); or the path of a goal_encoder.pt."""
    goal_encoder_steps: int = 3000
    """Adam steps of the goal autoencoder (with --goal-encoder train)."""
    residual: bool = False
    """Predict a ResidualIK residual over the sight-reader (observations gain nominal_action and
    demo_fingertips; episodes are replayed to compute the nominal)."""
    residual_scale: float = 0.02
    """ResidualIK's residual bound as a fraction of each actuator's range."""
    two_level: bool = False
    """PianoMime's two-level policy: level 1 (--size) predicts the next step's fingertips (30,
    m) and the sustain; level 2 (--low-size) maps the song-independent observation and the
    fingertip offset to the executed joint action. Not with --residual."""
    target_frame: Literal["world", "offset"] = "world"
    """With --two-level: level 1 outputs the next fingertips themselves (world) or their offset
    from the current fingertips (offset); level 2 gets the same target either way."""
    low_size: Literal["3x256", "3x1024", "6x4096"] = "3x256"
    """Level 2's MLP size (with --two-level)."""
    low_learning_rate: float = 3e-4
    """Level 2's Adam learning rate (with --two-level)."""
    env_kwargs: str = "{}"
    """PianoMimeEnv arguments (JSON object) over the dataset's, for the policy's env; the
    dataset's observation layout must match it."""
    seed: int = 0
    """Seed of torch, the batches and the evaluation episodes."""
    total_steps: int = 100_000
    """Gradient steps to train for."""
    batch_size: int = 256
    """Minibatch size."""
    learning_rate: float = 3e-4
    """Adam learning rate."""
    eval_every: int = 10_000
    """Evaluate on --eval-songs every this many steps (0: only at the end)."""
    eval_songs: list[str] = field(default_factory=lambda: list(HELDOUT_SONGS))
    """Held-out songs to evaluate on (never a training song)."""
    eval_max_seconds: float = 10.0
    """Play at most this much of each evaluation song (0: whole songs)."""
    checkpoint_every: int = 10_000
    """Write model.pt, resume.pt and summary.json every this many steps (and at the end)."""
    checkpoint_every_s: float = 300.0
    """Also checkpoint every this many seconds of wall time (0: off), so a SIGKILL loses at
    most this much; SIGTERM / SIGINT checkpoint after the current step."""
    save_model: bool = True
    """Keep model.pt (the policy checkpoint) in the run directory."""
    run_dir: Path | None = None
    """Output directory (default runs/bc__<dataset>__<seed>__<time>)."""
    resume: Path | None = None
    """Continue the run in this directory from its last checkpoint (its args.json supplies the
    defaults; flags given now override them, e.g. a larger --total-steps)."""
    torch_threads: int = 1
    """torch CPU threads."""
    max_wall_s: float = 0.0
    """Stop (with a final checkpoint and evaluation) after this many seconds of training since
    the run (re)started (0: no limit)."""
    progress: bool = True
    """Show progress bars."""
    dagger_rounds: int = 0
    """DAgger: after the initial training, this many rounds of (roll out the learner on the
    training songs with the teacher labelling its states in shadow mode, write the round's
    Minari dataset, retrain on the aggregate, evaluate). 0: plain BC."""
    dagger_teacher: str = "sight-reader"
    """The DAgger teacher (the labels): sight-reader, sight-reader-lookahead or a checkpoint."""
    dagger_beta: float = 0.5
    """Round 1's probability that a step executes the teacher's action, not the learner's."""
    dagger_beta_decay: float = 0.5
    """beta of round i is --dagger-beta * --dagger-beta-decay ** (i - 1)."""
    dagger_steps: int = 0
    """Gradient steps of each DAgger round (0: --total-steps)."""
    dagger_retrain: Literal["continue", "scratch"] = "continue"
    """Each round continues training the current network (its optimizer and input statistics
    kept) or trains a new one from scratch (statistics refitted on the aggregate)."""
    dagger_episodes: int = 1
    """Rollouts per training song per round."""
    dagger_segment_steps: int = 0
    """Each rollout plays this many steps from a random start (hands posed by IK at the plan);
    0: whole songs from the start."""
    dagger_dataset: str = ""
    """Minari id prefix of the round datasets (<prefix>-r<i>-v0; default dagger/<run dir
    name>)."""


# -- setup ------------------------------------------------------------------------------------


def check_args(args: Args) -> None:
    if args.two_level and args.residual:
        raise SystemExit(TWO_LEVEL_RESIDUAL)
    if args.dagger_rounds > 0 and args.two_level:
        raise SystemExit(
            "--dagger-rounds with --two-level is not built: level 1's labels are the next "
            "observed fingertips (hindsight), which on the learner's own rollouts are the "
            "learner's, not the teacher's"
        )
    if args.dagger_rounds > 0 and args.labels != "expert":
        raise SystemExit("--dagger-rounds needs --labels expert (the teacher's labels)")


def run_name(args: Args) -> str:
    return f"{args.exp_name}__{args.dataset.replace('/', '-')}__{args.seed}__{int(time.time())}"


def wrapper_config(args: Args) -> dict:
    return residual_wrapper_config(args.residual, args.residual_scale)


def load_data(args: Args) -> ImitationData:
    """The dataset's episodes as imitation data; ``SystemExit`` on a bad dataset or a training
    song among ``--eval-songs``."""
    try:
        data = load_imitation_data(
            args.dataset,
            wrapper=wrapper_config(args),
            env_kwargs=parse_env_kwargs(args.env_kwargs),
            labels=args.labels,
            two_level=args.two_level,
            max_steps=args.dataset_steps,
            progress=args.progress,
        )
    except ValueError as exc:
        raise SystemExit(f"bc.py: {exc}") from exc
    check_heldout(list(args.eval_songs), data.songs)
    return data


@dataclass
class TrainingSet:
    """The arrays BC fits: features ``x`` (N, F) -> labels ``y`` (N, A); with ``--two-level``
    ``y`` is level 1's target (N, 31) and level 2 fits ``low_x`` -> ``low_y`` (its observation
    ``low_keys`` and the fingertip offset -> the executed joint action)."""

    x: np.ndarray
    y: np.ndarray
    low_x: np.ndarray | None = None
    low_y: np.ndarray | None = None
    low_keys: list[str] | None = None


def training_set(args: Args, data: ImitationData, encoder: Any) -> TrainingSet:
    x = np.concatenate([features(o, data.layout, encoder) for o in data.observations])
    if not args.two_level:
        return TrainingSet(x, np.concatenate(data.actions))
    y, low_x, low_y, low_keys = two_level_arrays(data)
    if args.target_frame == "offset":  # the next fingertips relative to the current ones
        y[:, :30] -= np.concatenate([o["fingertips"] for o in data.observations])
    return TrainingSet(x, y, low_x, low_y, low_keys)


def describe(args: Args, data: ImitationData, train: TrainingSet, seconds: float) -> None:
    print(
        f"dataset {args.dataset}: {len(set(data.songs))} songs, {len(data.songs)} episodes, "
        f"{data.steps} steps, features {train.x.shape[1]}, actions {train.y.shape[1]} "
        f"({seconds:.1f} s)"
    )
    if train.low_x is not None:
        print(
            f"two-level: targets {train.y.shape[1]}, "
            f"level 2 {train.low_x.shape[1]} -> {train.low_y.shape[1]}"
        )


def mlp_config(in_dim: int, size: str, out_dim: int) -> dict:
    hidden = list(BC_SIZES[size])
    return {"in_dim": int(in_dim), "hidden": hidden, "out_dim": int(out_dim), "activation": "gelu"}


# -- the learner ------------------------------------------------------------------------------


class BC:
    """The learner's state (networks, optimizers, normalizers, batch RNG, counters) and its
    gradient step. ``checkpoint_fields`` are the policy checkpoint's entries that training does
    not change (env, layout, wrapper, goal encoder, dataset)."""

    def __init__(
        self,
        torch,
        args: Args,
        train: TrainingSet,
        resume: dict | None = None,
        checkpoint_fields: dict | None = None,
    ):
        self.torch, self.args = torch, args
        self.checkpoint_fields = dict(checkpoint_fields or {})
        self.obs_norm = Normalizer.fit(train.x, "zscore")
        self.xn = torch.as_tensor(self.obs_norm.normalize(train.x))
        self.target_norm = Normalizer.fit(train.y, "zscore") if args.two_level else None
        y = self.target_norm.normalize(train.y) if args.two_level else train.y
        self.yt = torch.as_tensor(y)
        self.act_dim = int(train.y.shape[1])
        self.config = mlp_config(train.x.shape[1], args.size, self.act_dim)
        torch.manual_seed(args.seed)
        self.model = build_actor("mlp", self.config)
        self.optimizer = torch.optim.Adam(self.model.parameters(), lr=args.learning_rate)
        self.low_model = self.low_optimizer = self.low_norm = self.low_config = None
        self.low_keys = train.low_keys
        if args.two_level:
            self.low_norm = Normalizer.fit(train.low_x, "zscore")
            self.low_xn = torch.as_tensor(self.low_norm.normalize(train.low_x))
            self.low_yt = torch.as_tensor(train.low_y)
            self.low_config = mlp_config(train.low_x.shape[1], args.low_size, train.low_y.shape[1])
            self.low_model = build_actor("mlp", self.low_config)
            self.low_optimizer = torch.optim.Adam(
                self.low_model.parameters(), lr=args.low_learning_rate
            )
        self.rng = np.random.default_rng(args.seed)
        self.global_step, self.evals = 0, []
        if resume is not None:
            self.load(resume)

    def load(self, state: dict) -> None:
        self.model.load_state_dict(state["model"])
        self.optimizer.load_state_dict(state["optimizer"])
        if self.args.two_level:
            self.low_model.load_state_dict(state["low_model"])
            self.low_optimizer.load_state_dict(state["low_optimizer"])
        self.torch.set_rng_state(state["torch_rng"])
        self.rng.bit_generator.state = state["np_rng"]
        self.global_step, self.evals = state["global_step"], list(state["evals"])

    def set_data(self, train: TrainingSet) -> None:
        """Trains on ``train`` from now on (DAgger's aggregate), z-scored with the statistics
        fitted at construction (the network's input scaling stays)."""
        self.xn = self.torch.as_tensor(self.obs_norm.normalize(train.x))
        self.yt = self.torch.as_tensor(train.y)

    def step(self) -> dict:
        """One gradient step (both levels with --two-level) on a minibatch; returns the losses
        (tensors)."""
        torch = self.torch
        idx = torch.as_tensor(self.rng.integers(0, len(self.xn), self.args.batch_size))
        loss = torch.nn.functional.mse_loss(self.model(self.xn[idx]), self.yt[idx])
        self.optimizer.zero_grad()
        loss.backward()
        self.optimizer.step()
        losses = {"train_loss": loss}
        if self.low_model is not None:
            low_loss = torch.nn.functional.mse_loss(
                self.low_model(self.low_xn[idx]), self.low_yt[idx]
            )
            self.low_optimizer.zero_grad()
            low_loss.backward()
            self.low_optimizer.step()
            losses["low_loss"] = low_loss
        self.global_step += 1
        return losses

    def predict(self, x: np.ndarray) -> np.ndarray:
        """The network's output for raw features ``x`` (N, F), in label units."""
        with self.torch.no_grad():
            out = self.model(self.torch.as_tensor(self.obs_norm.normalize(x))).numpy()
        return self.target_norm.unnormalize(out) if self.target_norm is not None else out

    def policy_checkpoint(self) -> dict:
        extra = {}
        if self.args.two_level:
            extra = {
                "target_norm": self.target_norm.state(),
                "target_frame": self.args.target_frame,
                "low_level": low_level_entry(
                    self.low_model, self.low_config, self.low_norm, self.low_keys
                ),
            }
        state_dict = self.model.state_dict()
        return {
            **extra,
            "algorithm": "bc",
            "actor": {
                "kind": "mlp",
                "act_dim": self.act_dim,
                "config": self.config,
                "state_dict": {k: v.detach().cpu().clone() for k, v in state_dict.items()},
            },
            "obs_norm": self.obs_norm.state(),
            "action_norm": None,
            "horizons": {"obs": 1, "pred": 1, "exec": 1},
            **self.checkpoint_fields,
            "global_step": self.global_step,
            "seed": self.args.seed,
        }

    def resume_state(self, timer: Timer, saved_args: dict) -> dict:
        state = {"model": self.model.state_dict(), "optimizer": self.optimizer.state_dict()}
        if self.low_model is not None:
            state["low_model"] = self.low_model.state_dict()
            state["low_optimizer"] = self.low_optimizer.state_dict()
        return state | {
            "torch_rng": self.torch.get_rng_state(),
            "np_rng": self.rng.bit_generator.state,
            "global_step": self.global_step,
            "timer": dict(timer.seconds),
            "wall_s": sum(timer.seconds.values()),
            "evals": self.evals,
            "args": saved_args,
        }


# -- outputs ----------------------------------------------------------------------------------


def checkpoint_fields(args: Args, data: ImitationData, encoder: Any) -> dict:
    """The policy checkpoint's entries fixed for the run."""
    return {
        "features": {"goal_encoder": encoder.state() if encoder is not None else None},
        "env": {"id": "PianoMime-v0", "kwargs": data.env_kwargs},
        "observation_layout": data.layout,
        "wrapper": wrapper_config(args),
        "dataset": args.dataset,
    }


def dataset_summary(args: Args, data: ImitationData) -> dict:
    songs, episodes = len(set(data.songs)), len(data.songs)
    return {
        "id": args.dataset,
        "songs": songs,
        "episodes": episodes,
        "steps": data.steps,
        "max_steps": args.dataset_steps,
    }


@dataclass
class Run:
    """Where a run writes: its directory, saved flags, clock, TensorBoard writer and the
    summary's dataset entry."""

    dir: Path
    saved_args: dict
    timer: Timer
    writer: Any
    dataset: dict
    dagger: dict | None = None
    """DAgger's state (``None`` for plain BC): ``round`` (in progress or last done),
    ``complete``, ``rounds`` (one record per completed round), ``datasets`` (the rounds'
    Minari ids), ``round_start`` (the clock and step when the current round began)."""


def current_round(run: Run) -> int | None:
    return None if run.dagger is None else int(run.dagger["round"])


def gradient_steps_done(bc: BC, run: Run) -> int:
    """Gradient steps of the whole run: DAgger's rounds all counted (a round retrained from
    scratch restarts ``global_step``)."""
    d = run.dagger
    if d is None:
        return bc.global_step
    done = sum(r["gradient_steps"] for r in d["rounds"])
    return done if d["complete"] else done + bc.global_step - int(d["round_start"]["global_step"])


def times_before(resume: dict | None) -> dict[str, float]:
    """The seconds a resumed run had spent, by activity (checkpoints written before the split
    kept only the wall time: counted as training)."""
    if resume is None:
        return {}
    return dict(resume.get("timer") or {"train": resume.get("wall_s", 0.0)})


def evaluate(bc: BC, args: Args, run: Run) -> None:
    """Plays the current policy on ``--eval-songs`` (through its checkpoint file, as ``pianomime
    play --policy`` would) and records the mean F1 and note F1."""
    with run.timer.timed("eval"):
        path = run.dir / ("model.pt" if args.save_model else ".eval-model.pt")
        save_checkpoint(path, bc.policy_checkpoint())
        m = evaluate_checkpoint(
            path, args.eval_songs, args.eval_max_seconds, args.seed, progress=args.progress
        )
        if not args.save_model:
            path.unlink()
    round_entry = {} if run.dagger is None else {"round": current_round(run)}
    bc.evals.append({"global_step": bc.global_step, **round_entry, **m})
    run.writer.add_scalar("eval/f1", m["f1"], bc.global_step)
    run.writer.add_scalar("eval/note_f1", m["note_f1"], bc.global_step)


def write_checkpoint(
    bc: BC, args: Args, run: Run, final: bool = False, stopped_by: int | None = None
) -> dict:
    """resume.pt, model.pt and summary.json, each written atomically; returns the summary."""
    tmp = run.dir / "resume.pt.tmp"
    state = bc.resume_state(run.timer, run.saved_args)
    if run.dagger is not None:
        state["dagger"] = run.dagger
    bc.torch.save(state, tmp)
    tmp.replace(run.dir / "resume.pt")
    if args.save_model:
        save_checkpoint(run.dir / "model.pt", bc.policy_checkpoint())
    seconds = run.timer.seconds
    train_s = seconds.get("train", 0.0)
    updates = gradient_steps_done(bc, run)
    summary = {
        "algorithm": "bc",
        "global_step": bc.global_step,
        "updates": updates,
        "steps_per_s": updates / max(train_s, 1e-9),
        "train_s": train_s,
        "eval_s": seconds.get("eval", 0.0),
        "setup_s": seconds.get("setup", 0.0),
        "wall_s": sum(seconds.values()),
        "eval": bc.evals[-1] if bc.evals else None,
        "evals": bc.evals,
        "final": final,
        "stopped_by_signal": stopped_by,
        "run_dir": str(run.dir),
        "dataset": run.dataset,
    }
    if run.dagger is not None:
        summary["dagger"] = run.dagger
    save_json(run.dir / "summary.json", summary)
    return summary


# -- training ---------------------------------------------------------------------------------


def evaluated_now(bc: BC, run: Run) -> bool:
    """Whether the last evaluation is of the current weights (step and DAgger round)."""
    last = bc.evals[-1] if bc.evals else None
    return (
        last is not None
        and last["global_step"] == bc.global_step
        and last.get("round") == current_round(run)
    )


def train(bc: BC, args: Args, run: Run, total_steps: int | None = None, final: bool = True) -> dict:
    """Gradient steps to ``total_steps`` (default ``--total-steps``; or ``--max-wall-s``, or a
    signal), evaluating and checkpointing on their cadences, and evaluating at the end; returns
    the summary (marked final with ``final``, unless stopped)."""
    from tqdm import tqdm

    total_steps = args.total_steps if total_steps is None else total_steps
    bar = tqdm(
        total=total_steps,
        initial=min(bc.global_step, total_steps),
        unit="step",
        disable=not args.progress,
        mininterval=2.0,
    )
    cadence = CheckpointCadence(args.checkpoint_every, args.checkpoint_every_s, bc.global_step)
    last_eval, start = bc.global_step, time.perf_counter()
    with StopSignals() as stop:
        while bc.global_step < total_steps:
            with run.timer.timed("train"):
                losses = bc.step()
            bar.update(1)
            if bc.global_step % 100 == 0:
                for name, value in losses.items():
                    run.writer.add_scalar(f"losses/{name}", value.item(), bc.global_step)
                bar.set_postfix(loss=f"{losses['train_loss'].item():.3e}")
            out_of_time = args.max_wall_s > 0 and time.perf_counter() - start >= args.max_wall_s
            done = bc.global_step >= total_steps or out_of_time or stop.requested is not None
            if not done and args.eval_every > 0 and bc.global_step - last_eval >= args.eval_every:
                evaluate(bc, args, run)
                last_eval = bc.global_step
                bar.write(f"step {bc.global_step}: eval F1 {bc.evals[-1]['f1']:.3f}")
            if not done and cadence.due(bc.global_step):
                write_checkpoint(bc, args, run)
                cadence.written(bc.global_step)
            if done:
                break
        bar.close()
        if stop.requested is None and not evaluated_now(bc, run):
            evaluate(bc, args, run)
        summary = write_checkpoint(bc, args, run, final and stop.requested is None, stop.requested)
    return summary


# -- DAgger -----------------------------------------------------------------------------------


def dagger_state(args: Args, resume: dict | None) -> dict | None:
    """The run's DAgger state: the resumed one, a new one with ``--dagger-rounds``, else None."""
    if resume is not None and resume.get("dagger") is not None:
        return resume["dagger"]
    if args.dagger_rounds <= 0:
        return None
    return {
        "round": 0,
        "complete": False,
        "rounds": [],
        "datasets": [],
        "trained_on": 0,
        "round_start": {"seconds": {}, "global_step": 0},
        "total_gradient_steps": 0,
    }


def dataset_prefix(args: Args, run: Run) -> str:
    return args.dagger_dataset or "dagger/" + re.sub(r"[^\w-]", "-", run.dir.name)


def check_dataset_prefix(args: Args, run: Run) -> None:
    """``SystemExit`` before any training when the round datasets' ids would be malformed."""
    from minari.dataset.minari_dataset import parse_dataset_id

    from pianomime_env.learning.dagger import round_dataset_id

    try:
        parse_dataset_id(round_dataset_id(dataset_prefix(args, run), 1))
    except ValueError as exc:
        raise SystemExit(f"bc.py: --dagger-dataset: {exc}") from None


def finish_round(bc: BC, args: Args, run: Run, data: ImitationData) -> None:
    """Records the round just trained (data size, gradient steps, held-out F1, times) and keeps
    its policy as ``model_round<i>.pt``."""
    from pianomime_env.learning.dagger import round_metadata
    from pianomime_env.learning.datasets import episode_metadata

    d = run.dagger
    k, start = int(d["round"]), d["round_start"]
    spent = {
        f"{what}_s": run.timer.seconds.get(what, 0.0) - start["seconds"].get(what, 0.0)
        for what in ("setup", "rollout", "train", "eval")
    }
    if k == 0:
        experts = sorted({str(m.get("expert")) for m in episode_metadata(args.dataset)})
        rollouts = {"teacher": ", ".join(experts), "beta": None}
    else:
        meta = round_metadata(d["datasets"][k - 1])
        rollouts = {key: meta[key] for key in ("teacher", "beta", "teacher_fraction")}
        rollouts |= {f"new_{key}": meta[key] for key in ("episodes", "steps")}
        rollouts["rollout_f1"] = meta["rollout_f1"]
    last = bc.evals[-1]
    record = {
        "round": k,
        **rollouts,
        "datasets": [args.dataset, *d["datasets"][:k]],
        "songs": len(set(data.songs)),
        "episodes": len(data.songs),
        "steps": data.steps,
        "gradient_steps": bc.global_step - int(start["global_step"]),
        "global_step": bc.global_step,
        "eval": {key: last[key] for key in ("f1", "note_f1", "songs")},
        **spent,
    }
    d["rounds"].append(record)
    d["complete"] = True
    d["total_gradient_steps"] = sum(r["gradient_steps"] for r in d["rounds"])
    record["total_gradient_steps"] = d["total_gradient_steps"]
    if args.save_model:
        save_checkpoint(run.dir / f"model_round{k}.pt", bc.policy_checkpoint())
    print(
        f"DAgger round {k}: {record['episodes']} episodes, {record['steps']} steps, "
        f"{record['gradient_steps']} gradient steps, held-out F1 {last['f1']:.3f} "
        f"(note F1 {last['note_f1']:.3f})"
    )


def roll_out(bc: BC, args: Args, run: Run, data: ImitationData, stop: StopSignals) -> bool:
    """Round ``run.dagger["round"]``'s dataset: the current learner on the training songs with
    the teacher in shadow mode, written atomically (reused if a killed run wrote it already);
    False when a signal stopped the rollouts."""
    from pianomime_env.learning.dagger import (
        beta_schedule,
        roll_out_round,
        round_dataset_id,
        round_metadata,
        write_round_dataset,
    )
    from pianomime_env.learning.datasets import datasets_root
    from pianomime_env.learning.generalist import GeneralistPolicy

    d = run.dagger
    k = int(d["round"])
    ds_id = round_dataset_id(dataset_prefix(args, run), k)
    if (datasets_root() / ds_id).exists():
        meta = round_metadata(ds_id) or {}
        if meta.get("run_dir") != str(run.dir) or meta.get("round") != k:
            raise SystemExit(
                f"bc.py: Minari dataset {ds_id!r} exists and is not round {k} of this run "
                f"({run.dir}); choose another --dagger-dataset"
            )
        print(f"DAgger round {k}: reusing {ds_id} (written before the run was stopped)")
        d["datasets"].append(ds_id)
        return True
    beta = beta_schedule(args.dagger_beta, args.dagger_beta_decay, k)
    checkpoint = bc.policy_checkpoint()
    episodes = roll_out_round(
        args.dataset,
        list(dict.fromkeys(data.songs)),
        lambda env: GeneralistPolicy(checkpoint, env),
        args.dagger_teacher,
        round_index=k,
        beta=beta,
        seed=args.seed,
        episodes=args.dagger_episodes,
        segment_steps=args.dagger_segment_steps,
        env_kwargs=parse_env_kwargs(args.env_kwargs),
        stop=lambda: stop.requested is not None,
        progress=args.progress,
    )
    if episodes is None:
        return False
    steps = sum(len(e["actions"]) for e in episodes)
    meta = {
        "round": k,
        "beta": beta,
        "teacher": args.dagger_teacher,
        "run_dir": str(run.dir),
        "initial_dataset": args.dataset,
        "learner_global_step": bc.global_step,
        "seed": args.seed,
        "episodes": len(episodes),
        "steps": steps,
        "rollout_f1": float(np.mean([e["metadata"]["metrics"]["f1"] for e in episodes])),
        "teacher_fraction": sum(
            e["metadata"]["dagger"]["teacher_fraction"] * len(e["actions"]) for e in episodes
        )
        / max(steps, 1),
    }
    write_round_dataset(ds_id, episodes, args.dataset, data.env_kwargs, meta)
    d["datasets"].append(ds_id)
    return True


def run_dagger(bc: BC, args: Args, run: Run, data: ImitationData, encoder: Any) -> dict:
    """DAgger rounds after the initial training (round 0) up to ``--dagger-rounds``: roll out,
    aggregate, retrain, evaluate, checkpoint; each completed round is recorded in
    ``summary.json`` (``dagger.rounds``). A resumed run continues the round it was in (its
    dataset reused when written) or starts the next. Returns the last summary."""
    from pianomime_env.learning.dagger import load_aggregate

    d = run.dagger
    steps = args.dagger_steps or args.total_steps
    scratch = args.dagger_retrain == "scratch"
    cache = {args.dataset: data}
    load = {
        "wrapper": wrapper_config(args),
        "env_kwargs": parse_env_kwargs(args.env_kwargs),
        "labels": "expert",
        "progress": args.progress,
    }

    def training_data(rounds: int) -> tuple[ImitationData, TrainingSet]:
        with run.timer.timed("setup"):
            agg = load_aggregate([args.dataset, *d["datasets"][:rounds]], cache, **load)
            return agg, training_set(args, agg, encoder)

    def new_learner(train_set: TrainingSet, state_of: BC | None) -> BC:
        new = BC(bc.torch, args, train_set, None, bc.checkpoint_fields)
        if state_of is not None:
            new.load(state_of.resume_state(run.timer, run.saved_args))
        new.evals = list(bc.evals)
        return new

    if scratch and d["trained_on"] > 0:  # resumed: the weights' own input statistics
        bc = new_learner(training_data(d["trained_on"])[1], bc)
    with StopSignals() as stop:
        while not (d["complete"] and d["round"] >= args.dagger_rounds):
            if d["complete"]:
                d.update(round=d["round"] + 1, complete=False)
                start_step = 0 if scratch else bc.global_step
                d["round_start"] = {"seconds": dict(run.timer.seconds), "global_step": start_step}
            k = int(d["round"])
            if len(d["datasets"]) < k:
                with run.timer.timed("rollout"):
                    rolled = roll_out(bc, args, run, data, stop)
                if not rolled:
                    return write_checkpoint(bc, args, run, False, stop.requested)
            agg, train_set = training_data(k)
            if stop.requested is not None:  # arrived while the round's dataset was written
                return write_checkpoint(bc, args, run, False, stop.requested)
            if not scratch:
                bc.set_data(train_set)
            elif d["trained_on"] < k:
                bc = new_learner(train_set, None)
            d["trained_on"] = k
            target = int(d["round_start"]["global_step"]) + steps
            summary = train(bc, args, run, target, final=False)
            if summary["stopped_by_signal"] is not None or bc.global_step < target:
                return summary  # a signal or --max-wall-s: --resume continues this round
            finish_round(bc, args, run, agg)
            write_checkpoint(bc, args, run)
    return write_checkpoint(bc, args, run, final=True)


def main(args: Args) -> dict:
    check_args(args)
    torch = require_torch()
    from torch.utils.tensorboard import SummaryWriter

    torch.set_num_threads(args.torch_threads)
    resume = load_resume_state(args.resume) if args.resume is not None else None
    t0 = time.perf_counter()
    data = load_data(args)  # before the run directory: a bad dataset leaves nothing behind
    run_dir, saved_args = open_run_dir(args, run_name(args))
    timer = Timer(times_before(resume))
    timer.add("setup", time.perf_counter() - t0)
    with timer.timed("setup"):
        encoder = goal_encoder_for_run(
            args.goal_encoder,
            run_dir,
            data.observations,
            steps=args.goal_encoder_steps,
            seed=args.seed,
            dataset=args.dataset,
            progress=args.progress,
        )
        train_set = training_set(args, data, encoder)
        describe(args, data, train_set, time.perf_counter() - t0)
    bc = BC(torch, args, train_set, resume, checkpoint_fields(args, data, encoder))
    writer = SummaryWriter(str(run_dir), purge_step=bc.global_step if resume else None)
    run = Run(run_dir, saved_args, timer, writer, dataset_summary(args, data))
    run.dagger = dagger_state(args, resume)
    d = run.dagger
    if d is None:  # plain BC trains on bc.xn alone: free the observations and raw features
        data.observations.clear()
        del train_set
    if d is not None:
        check_dataset_prefix(args, run)
    summary = None
    if d is None or (d["round"] == 0 and not d["complete"]):
        summary = train(bc, args, run, final=d is None)
        if d is not None and summary["stopped_by_signal"] is None:
            if bc.global_step >= args.total_steps:
                finish_round(bc, args, run, data)
                summary = write_checkpoint(bc, args, run)
    if d is not None and (d["round"] > 0 or d["complete"]):
        summary = run_dagger(bc, args, run, data, encoder)
    writer.close()
    print(json.dumps({k: summary[k] for k in ("global_step", "steps_per_s", "wall_s", "eval")}))
    print(f"run directory: {run_dir}")
    if summary["stopped_by_signal"] is not None:
        signum = summary["stopped_by_signal"]
        print(f"stopped by signal {signum}: checkpoint written; --resume {run_dir} continues")
        raise SystemExit(128 + signum)
    return summary


if __name__ == "__main__":
    main(parse_args(Args, sys.argv[1:]))
