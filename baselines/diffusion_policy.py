"""Diffusion Policy (Chi et al., RSS 2023; the best imitation learner of RP1M's Table 2) on a
multi-song ``pianomime collect`` dataset: a generalist evaluated on songs it never saw.

    .venv/bin/python baselines/diffusion_policy.py --dataset pianomime/bach-v0 --total-steps 20000
    .venv/bin/python baselines/diffusion_policy.py --dataset pianomime/bach-v0 --goal-encoder train
    .venv/bin/python baselines/diffusion_policy.py --dataset pianomime/bach-v0 --two-level
    .venv/bin/python baselines/diffusion_policy.py --resume runs/<run dir>   # continue a killed run
    .venv/bin/pianomime play music21:bach/bwv66.6 --policy runs/<run dir>/model.pt

The model is a FiLM-conditioned 1-D temporal U-Net (Chi et al.'s ConditionalUnet1D,
:mod:`pianomime_env.learning.generalist`) over a window of ``--pred-horizon`` actions,
conditioned on the last ``--obs-horizon`` observations (projected to ``--obs-embed`` features)
and the diffusion step. Training: diffusers' ``DDPMScheduler`` (squared-cosine schedule,
``--diffusion-steps``, epsilon prediction), AdamW with a cosine learning-rate schedule and
warm-up, an EMA of the weights (diffusers' ``EMAModel``, warm-up power 0.75) which is what
``model.pt`` holds. Inference: diffusers' ``DDIMScheduler`` with ``--inference-steps`` steps;
receding horizon: the policy plans ``pred`` actions from step t on and executes the first
``--exec-horizon`` (default horizons 2 / 16 / 8). Observations and actions are min-max
normalized to [-1, 1] with the dataset's ranges (stored in the checkpoint). With ``--residual``
the actions are ResidualIK residuals over the sight-reader; with ``--goal-encoder`` the goal
rows are PianoMime's 16-d SDF latents. ``--total-steps`` counts gradient steps.

``--two-level`` (PianoMime's two-level variant): the U-Net denoises a ``--pred-horizon``
window of fingertip targets instead of actions: the fingertips observed at steps t+1 .. t+Tp
(30 numbers, m, hindsight from the dataset) plus the sustain action, min-max normalized (same
horizons, EMA, DDIM, receding horizon). Level 2, an MLP of ``--low-size`` trained in the same
run for the same number of gradient steps with its own Adam (``--low-learning-rate``,
``--low-batch-size``), maps the song-independent observation (``hand_joints``,
``fingertips``, ``hand_velocities`` if present) plus the target's offset from the current
fingertips to the executed joint action (the one that produced those fingertips). Played,
level 2 runs every step on the current observation while the high level's queue of targets
is executed open-loop; the sustain comes from the target. The checkpoint gains ``low_level``
and ``target_norm`` (format: :mod:`pianomime_env.learning.generalist`). ``--target-frame
offset``: the U-Net plans the targets relative to the fingertips observed when it plans. Not
with ``--residual``.

Evaluation every ``--eval-every`` steps plays the EMA policy through
``pianomime_env.learning.policies.load_policy`` (what ``pianomime play --policy`` does) on
``--eval-songs``: by default ``pianomime_env.learning.evaluation.HELDOUT_SONGS``, refused if a
training song is among them. Outputs in the run directory (default
``runs/diffusion_policy__<dataset>__<seed>__<time>/``): ``model.pt``, ``goal_encoder.pt`` (with
``--goal-encoder train``), ``summary.json`` (``global_step``, ``steps_per_s`` = gradient steps
per second of training, ``train_s`` / ``eval_s`` / ``setup_s`` / ``wall_s``, ``parameters``,
``eval``, ``evals``, dataset size), ``resume.pt`` (model, EMA, optimizer, LR schedule, RNG,
step, times; two-level: level 2's model and optimizer), ``args.json`` and TensorBoard events
(``losses/``, with ``losses/low_loss`` for level 2, ``charts/learning_rate``, ``eval/f1``,
``eval/note_f1``).

Resume: checkpoints every ``--checkpoint-every`` steps, every ``--checkpoint-every-s`` seconds
and on SIGTERM / SIGINT (then the run exits with 128 + the signal's number); ``--resume RUN_DIR``
continues from the last one (weights, EMA, optimizer, learning-rate schedule, batch and noise
RNG), so with the same ``--total-steps`` it ends with a straight run's weights. A larger
``--total-steps`` re-plans the cosine schedule for the new total: the learning rate continues
from where a run of that total would be at this step (higher than where the old one was).
"""

import copy
import json
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

import numpy as np

from pianomime_env.extras import require, require_torch
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
    make_ddpm,
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
    exp_name: str = "diffusion_policy"
    """Experiment name (part of the default run directory)."""
    labels: Literal["expert", "executed"] = "expert"
    """Imitate the clean expert action (expert) or the executed, noisy one."""
    goal_encoder: str = "none"
    """none: the raw 88-key goal; train: train PianoMime's SDF goal autoencoder on the dataset's
    goals first (saved as goal_encoder.pt in the run dir); or the path of a goal_encoder.pt."""
    goal_encoder_steps: int = 3000
    """Adam steps of the goal autoencoder (with --goal-encoder train)."""
    residual: bool = False
    """Predict ResidualIK residuals over the sight-reader (observations gain nominal_action and
    demo_fingertips; episodes are replayed to compute the nominal)."""
    residual_scale: float = 0.02
    """ResidualIK's residual bound as a fraction of each actuator's range."""
    two_level: bool = False
    """PianoMime's two-level policy: the U-Net plans the fingertip targets of steps t+1..t+Tp
    (30, m) and the sustain; level 2 (--low-size) maps the song-independent observation and
    the fingertip offset to the executed joint action, every step. Not with --residual."""
    target_frame: Literal["world", "offset"] = "world"
    """With --two-level: the U-Net plans the fingertips themselves (world) or relative to the
    fingertips observed when it plans, step t (offset)."""
    low_size: Literal["3x256", "3x1024", "6x4096"] = "3x256"
    """Level 2's MLP size (with --two-level)."""
    low_learning_rate: float = 3e-4
    """Level 2's Adam learning rate (with --two-level)."""
    low_batch_size: int = 256
    """Level 2's minibatch size (rows; with --two-level)."""
    env_kwargs: str = "{}"
    """PianoMimeEnv arguments (JSON object) over the dataset's, for the policy's env; the
    dataset's observation layout must match it."""
    obs_horizon: int = 2
    """Observations the policy is conditioned on (steps t-To+1..t)."""
    pred_horizon: int = 16
    """Actions the policy predicts per plan (steps t..t+Tp-1)."""
    exec_horizon: int = 8
    """Actions of each plan executed before planning again (receding horizon)."""
    down_dims: tuple[int, ...] = (32, 64, 128)
    """Channels of the U-Net's levels (the horizon halves at every level but the last); 2.2 M
    parameters with the defaults (Chi et al.'s (256, 512, 1024) is ~60x the compute)."""
    kernel_size: int = 5
    """Temporal convolution kernel size."""
    n_groups: int = 8
    """GroupNorm groups."""
    obs_embed: int = 256
    """Size of the projection of the stacked observations (the FiLM condition, with the
    diffusion step embedding)."""
    step_embed: int = 64
    """Size of the diffusion step embedding."""
    diffusion_steps: int = 100
    """DDPM training timesteps."""
    inference_steps: int = 10
    """DDIM steps per plan at inference."""
    seed: int = 0
    """Seed of torch, the batches, the diffusion noise and the evaluation episodes."""
    total_steps: int = 20_000
    """Gradient steps to train for."""
    batch_size: int = 64
    """Minibatch size (windows)."""
    learning_rate: float = 1e-3
    """AdamW learning rate (cosine schedule after the warm-up); Chi et al. use 1e-4 over far
    more steps than a CPU budget allows."""
    weight_decay: float = 1e-6
    """AdamW weight decay."""
    lr_warmup_steps: int = 200
    """Linear learning-rate warm-up steps."""
    ema_power: float = 0.75
    """EMA warm-up power (decay 1 - (1 + step)^-power, capped at 0.9999)."""
    eval_every: int = 10_000
    """Evaluate on --eval-songs every this many steps (0: only at the end)."""
    eval_songs: list[str] = field(default_factory=lambda: list(HELDOUT_SONGS))
    """Held-out songs to evaluate on (never a training song)."""
    eval_max_seconds: float = 10.0
    """Play at most this much of each evaluation song (0: whole songs)."""
    checkpoint_every: int = 5_000
    """Write model.pt, resume.pt and summary.json every this many steps (and at the end)."""
    checkpoint_every_s: float = 300.0
    """Also checkpoint every this many seconds of wall time (0: off), so a SIGKILL loses at
    most this much; SIGTERM / SIGINT checkpoint after the current step."""
    save_model: bool = True
    """Keep model.pt (the policy checkpoint) in the run directory."""
    run_dir: Path | None = None
    """Output directory (default runs/diffusion_policy__<dataset>__<seed>__<time>)."""
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


# -- setup ------------------------------------------------------------------------------------


def check_args(args: Args) -> None:
    if args.two_level and args.residual:
        raise SystemExit(TWO_LEVEL_RESIDUAL)
    if not 1 <= args.exec_horizon <= args.pred_horizon:
        raise SystemExit(
            f"--exec-horizon must be in [1, --pred-horizon={args.pred_horizon}], "
            f"got {args.exec_horizon}"
        )
    if args.pred_horizon % (2 ** (len(args.down_dims) - 1)):
        raise SystemExit(
            f"--pred-horizon {args.pred_horizon} must be divisible by "
            f"2^(len(--down-dims) - 1) = {2 ** (len(args.down_dims) - 1)}"
        )


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
            progress=args.progress,
        )
    except ValueError as exc:
        raise SystemExit(f"diffusion_policy.py: {exc}") from exc
    check_heldout(list(args.eval_songs), data.songs)
    return data


# -- windows ----------------------------------------------------------------------------------


def episode_bounds(lengths: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Per row of the concatenated episodes (lengths ``lengths``): its episode's first row and
    the row after its last."""
    lengths = np.asarray(lengths, np.int64)
    end = np.repeat(np.cumsum(lengths), lengths)
    return end - np.repeat(lengths, lengths), end


def window_indices(
    rows: np.ndarray, start: np.ndarray, end: np.ndarray, to: int, tp: int
) -> tuple[np.ndarray, np.ndarray]:
    """Row indices of the observation window (B, To) t-To+1..t, clamped at the episode's first
    row, and the action window (B, Tp) t..t+Tp-1, clamped at its last row."""
    obs = np.maximum(rows[:, None] + np.arange(-to + 1, 1)[None], start[rows][:, None])
    act = np.minimum(rows[:, None] + np.arange(tp)[None], end[rows][:, None] - 1)
    return obs, act


@dataclass
class TrainingSet:
    """The arrays the diffusion policy fits: features ``x`` (N, F), per-step labels ``y`` (N, A)
    (two-level: level 1's targets, N x 31), each row's episode bounds ``start`` / ``end``, the
    fingertips ``tips`` (N, 30) windows are relative to with ``--target-frame offset``, and
    level 2's ``low_x`` -> ``low_y`` (its observation ``low_keys`` and the fingertip offset ->
    the executed joint action)."""

    x: np.ndarray
    y: np.ndarray
    start: np.ndarray
    end: np.ndarray
    tips: np.ndarray | None = None
    low_x: np.ndarray | None = None
    low_y: np.ndarray | None = None
    low_keys: list[str] | None = None

    def windows(self, rows: np.ndarray, ai: np.ndarray) -> np.ndarray:
        """The label windows (B, Tp, A) at action indices ``ai`` of ``rows``, unnormalized;
        with ``tips`` the fingertip columns relative to the fingertips at each row (the plan's
        origin)."""
        w = self.y[ai].copy()
        if self.tips is not None:
            w[..., :30] -= self.tips[rows][:, None]
        return w


def training_set(args: Args, data: ImitationData, encoder: Any) -> TrainingSet:
    x = np.concatenate([features(o, data.layout, encoder) for o in data.observations])
    start, end = episode_bounds(np.array([len(a) for a in data.actions]))
    if not args.two_level:
        return TrainingSet(x, np.concatenate(data.actions), start, end)
    y, low_x, low_y, low_keys = two_level_arrays(data)
    tips = None
    if args.target_frame == "offset":  # windows t+1..t+Tp relative to the fingertips at t
        tips = np.concatenate([o["fingertips"] for o in data.observations])
    return TrainingSet(x, y, start, end, tips, low_x, low_y, low_keys)


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


# -- the learning math ------------------------------------------------------------------------


def diffusion_loss(torch, model, scheduler, actions, cond):
    """The DDPM epsilon objective on a batch of normalized action windows (B, Tp, A) with their
    conditions (B, cond_in): noise each window at a uniformly drawn diffusion step and regress
    the noise."""
    noise = torch.randn_like(actions)
    t = torch.randint(0, scheduler.config.num_train_timesteps, (actions.shape[0],))
    noisy = scheduler.add_noise(actions, noise, t)
    return torch.nn.functional.mse_loss(model(noisy, t, cond), noise)


def unet_config(args: Args, cond_in: int, act_dim: int) -> dict:
    return {
        "act_dim": int(act_dim),
        "cond_in": int(cond_in),
        "down_dims": list(args.down_dims),
        "kernel_size": args.kernel_size,
        "n_groups": args.n_groups,
        "step_embed": args.step_embed,
        "obs_embed": args.obs_embed,
    }


def scheduler_settings(args: Args) -> dict:
    return {
        "num_train_timesteps": args.diffusion_steps,
        "beta_schedule": "squaredcos_cap_v2",
        "clip_sample": True,
        "prediction_type": "epsilon",
    }


def mlp_config(in_dim: int, size: str, out_dim: int) -> dict:
    hidden = list(BC_SIZES[size])
    return {"in_dim": int(in_dim), "hidden": hidden, "out_dim": int(out_dim), "activation": "gelu"}


# -- the learner ------------------------------------------------------------------------------


class DiffusionPolicy:
    """The learner's state (U-Net, its EMA, AdamW and the learning-rate schedule, normalizers,
    level 2 with --two-level, batch RNG, counters) and its gradient step.
    ``checkpoint_fields`` are the policy checkpoint's entries that training does not change
    (env, layout, wrapper, goal encoder, dataset)."""

    def __init__(
        self,
        torch,
        args: Args,
        train: TrainingSet,
        resume: dict | None = None,
        checkpoint_fields: dict | None = None,
    ):
        from diffusers.optimization import get_scheduler
        from diffusers.training_utils import EMAModel

        self.torch, self.args, self.train = torch, args, train
        self.checkpoint_fields = dict(checkpoint_fields or {})
        self.obs_norm = Normalizer.fit(train.x, "minmax")
        if train.tips is not None:  # the range of the windows as the U-Net sees them
            rows = np.arange(len(train.y))
            _, ai = window_indices(rows, train.start, train.end, 1, args.pred_horizon)
            self.act_norm = Normalizer.fit(train.windows(rows, ai), "minmax")
        else:
            self.act_norm = Normalizer.fit(train.y, "minmax")
        self.xn = torch.as_tensor(self.obs_norm.normalize(train.x))
        self.yn = torch.as_tensor(self.act_norm.normalize(train.y))
        self.act_dim = int(train.y.shape[1])
        self.config = unet_config(args, args.obs_horizon * train.x.shape[1], self.act_dim)
        self.sched_settings = scheduler_settings(args)
        torch.manual_seed(args.seed)
        self.model = build_actor("unet", self.config)
        self.n_params = sum(p.numel() for p in self.model.parameters())
        self.noise_scheduler = make_ddpm(self.sched_settings)
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
        self.optimizer = torch.optim.AdamW(
            self.model.parameters(), lr=args.learning_rate, weight_decay=args.weight_decay
        )
        self.lr_schedule = get_scheduler(
            "cosine",
            optimizer=self.optimizer,
            num_warmup_steps=args.lr_warmup_steps,
            num_training_steps=args.total_steps,
        )
        self.ema = EMAModel(
            self.model.parameters(), decay=0.9999, use_ema_warmup=True, power=args.ema_power
        )
        self.ema_model = copy.deepcopy(self.model)
        self.rng = np.random.default_rng(args.seed)
        self.global_step, self.evals = 0, []
        if resume is not None:
            self.load(resume)

    def load(self, state: dict) -> None:
        self.model.load_state_dict(state["model"])
        self.ema.load_state_dict(state["ema"])
        self.optimizer.load_state_dict(state["optimizer"])
        self.lr_schedule.load_state_dict(state["lr_schedule"])
        if self.args.two_level:
            self.low_model.load_state_dict(state["low_model"])
            self.low_optimizer.load_state_dict(state["low_optimizer"])
        self.torch.set_rng_state(state["torch_rng"])
        self.rng.bit_generator.state = state["np_rng"]
        self.global_step, self.evals = state["global_step"], list(state["evals"])

    def batch(self):
        """A minibatch: the conditions (B, To * F) and the normalized action windows (B, Tp, A)
        of ``--batch-size`` random rows."""
        torch, args, train = self.torch, self.args, self.train
        rows = self.rng.integers(0, len(self.xn), args.batch_size)
        oi, ai = window_indices(rows, train.start, train.end, args.obs_horizon, args.pred_horizon)
        cond = self.xn[torch.as_tensor(oi)].reshape(args.batch_size, -1)
        if train.tips is not None:
            actions = torch.as_tensor(self.act_norm.normalize(train.windows(rows, ai)))
        else:
            actions = self.yn[torch.as_tensor(ai)]
        return cond, actions

    def step(self) -> dict:
        """One gradient step of the U-Net (and its EMA, and level 2's with --two-level);
        returns the losses (tensors)."""
        torch = self.torch
        cond, actions = self.batch()
        loss = diffusion_loss(torch, self.model, self.noise_scheduler, actions, cond)
        self.optimizer.zero_grad()
        loss.backward()
        self.optimizer.step()
        self.lr_schedule.step()
        self.ema.step(self.model.parameters())
        losses = {"train_loss": loss}
        if self.low_model is not None:
            li = torch.as_tensor(self.rng.integers(0, len(self.low_xn), self.args.low_batch_size))
            low_loss = torch.nn.functional.mse_loss(
                self.low_model(self.low_xn[li]), self.low_yt[li]
            )
            self.low_optimizer.zero_grad()
            low_loss.backward()
            self.low_optimizer.step()
            losses["low_loss"] = low_loss
        self.global_step += 1
        return losses

    def policy_checkpoint(self) -> dict:
        """The EMA weights as a ``diffusion-policy`` checkpoint."""
        args = self.args
        self.ema.copy_to(self.ema_model.parameters())
        extra = {}
        if args.two_level:  # the U-Net's outputs are targets: target_norm, no action_norm
            extra = {
                "target_norm": self.act_norm.state(),
                "target_frame": args.target_frame,
                "low_level": low_level_entry(
                    self.low_model, self.low_config, self.low_norm, self.low_keys
                ),
            }
        state_dict = self.ema_model.state_dict()
        return {
            **extra,
            "algorithm": "diffusion-policy",
            "actor": {
                "kind": "unet",
                "act_dim": self.act_dim,
                "config": self.config,
                "state_dict": {k: v.detach().cpu().clone() for k, v in state_dict.items()},
            },
            "obs_norm": self.obs_norm.state(),
            "action_norm": None if args.two_level else self.act_norm.state(),
            "horizons": {
                "obs": args.obs_horizon,
                "pred": args.pred_horizon,
                "exec": args.exec_horizon,
            },
            "diffusion": {
                "scheduler": self.sched_settings,
                "inference_steps": args.inference_steps,
            },
            **self.checkpoint_fields,
            "global_step": self.global_step,
            "seed": args.seed,
        }

    def resume_state(self, timer: Timer, saved_args: dict) -> dict:
        state = {
            "model": self.model.state_dict(),
            "ema": self.ema.state_dict(),
            "optimizer": self.optimizer.state_dict(),
            "lr_schedule": self.lr_schedule.state_dict(),
        }
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
    return {"id": args.dataset, "songs": songs, "episodes": episodes, "steps": data.steps}


def times_before(resume: dict | None) -> dict[str, float]:
    """The seconds a resumed run had spent, by activity (checkpoints written before the split
    kept only the wall time: counted as training)."""
    if resume is None:
        return {}
    return dict(resume.get("timer") or {"train": resume.get("wall_s", 0.0)})


@dataclass
class Run:
    """Where a run writes: its directory, saved flags, clock, TensorBoard writer and the
    summary's dataset entry."""

    dir: Path
    saved_args: dict
    timer: Timer
    writer: Any
    dataset: dict


def evaluate(dp: DiffusionPolicy, args: Args, run: Run) -> None:
    """Plays the EMA policy on ``--eval-songs`` (through its checkpoint file, as ``pianomime
    play --policy`` would) and records the mean F1 and note F1."""
    with run.timer.timed("eval"):
        path = run.dir / ("model.pt" if args.save_model else ".eval-model.pt")
        save_checkpoint(path, dp.policy_checkpoint())
        m = evaluate_checkpoint(
            path, args.eval_songs, args.eval_max_seconds, args.seed, progress=args.progress
        )
        if not args.save_model:
            path.unlink()
    dp.evals.append({"global_step": dp.global_step, **m})
    run.writer.add_scalar("eval/f1", m["f1"], dp.global_step)
    run.writer.add_scalar("eval/note_f1", m["note_f1"], dp.global_step)


def write_checkpoint(
    dp: DiffusionPolicy, args: Args, run: Run, final: bool = False, stopped_by: int | None = None
) -> dict:
    """resume.pt, model.pt and summary.json, each written atomically; returns the summary."""
    tmp = run.dir / "resume.pt.tmp"
    dp.torch.save(dp.resume_state(run.timer, run.saved_args), tmp)
    tmp.replace(run.dir / "resume.pt")
    if args.save_model:
        save_checkpoint(run.dir / "model.pt", dp.policy_checkpoint())
    seconds = run.timer.seconds
    train_s = seconds.get("train", 0.0)
    summary = {
        "algorithm": "diffusion-policy",
        "global_step": dp.global_step,
        "updates": dp.global_step,
        "steps_per_s": dp.global_step / max(train_s, 1e-9),
        "train_s": train_s,
        "eval_s": seconds.get("eval", 0.0),
        "setup_s": seconds.get("setup", 0.0),
        "wall_s": sum(seconds.values()),
        "parameters": dp.n_params,
        "eval": dp.evals[-1] if dp.evals else None,
        "evals": dp.evals,
        "final": final,
        "stopped_by_signal": stopped_by,
        "run_dir": str(run.dir),
        "dataset": run.dataset,
    }
    save_json(run.dir / "summary.json", summary)
    return summary


# -- training ---------------------------------------------------------------------------------


def train(dp: DiffusionPolicy, args: Args, run: Run) -> dict:
    """Gradient steps to ``--total-steps`` (or ``--max-wall-s``, or a signal), evaluating and
    checkpointing on their cadences; returns the final summary."""
    from tqdm import tqdm

    bar = tqdm(
        total=args.total_steps,
        initial=min(dp.global_step, args.total_steps),
        unit="step",
        disable=not args.progress,
        mininterval=2.0,
    )
    cadence = CheckpointCadence(args.checkpoint_every, args.checkpoint_every_s, dp.global_step)
    last_eval, start = dp.global_step, time.perf_counter()
    with StopSignals() as stop:
        while dp.global_step < args.total_steps:
            with run.timer.timed("train"):
                losses = dp.step()
            bar.update(1)
            if dp.global_step % 100 == 0:
                for name, value in losses.items():
                    run.writer.add_scalar(f"losses/{name}", value.item(), dp.global_step)
                lr = dp.lr_schedule.get_last_lr()[0]
                run.writer.add_scalar("charts/learning_rate", lr, dp.global_step)
                bar.set_postfix(loss=f"{losses['train_loss'].item():.3e}")
            out_of_time = args.max_wall_s > 0 and time.perf_counter() - start >= args.max_wall_s
            done = dp.global_step >= args.total_steps or out_of_time or stop.requested is not None
            if not done and args.eval_every > 0 and dp.global_step - last_eval >= args.eval_every:
                evaluate(dp, args, run)
                last_eval = dp.global_step
                bar.write(f"step {dp.global_step}: eval F1 {dp.evals[-1]['f1']:.3f}")
            if not done and cadence.due(dp.global_step):
                write_checkpoint(dp, args, run)
                cadence.written(dp.global_step)
            if done:
                break
        bar.close()
        if stop.requested is None and (
            not dp.evals or dp.evals[-1]["global_step"] != dp.global_step
        ):
            evaluate(dp, args, run)
        summary = write_checkpoint(dp, args, run, stop.requested is None, stop.requested)
    return summary


def main(args: Args) -> dict:
    check_args(args)
    torch = require_torch()
    require("diffusers", "the diffusion policy needs diffusers: pip install -e '.[train]'")
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
    dp = DiffusionPolicy(torch, args, train_set, resume, checkpoint_fields(args, data, encoder))
    print(f"U-Net: {dp.n_params / 1e6:.2f} M parameters")
    writer = SummaryWriter(str(run_dir), purge_step=dp.global_step if resume else None)
    run = Run(run_dir, saved_args, timer, writer, dataset_summary(args, data))
    summary = train(dp, args, run)
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
