"""Diffusion Policy (Chi et al., RSS 2023; the best imitation learner of RP1M's Table 2) on a
multi-song ``pianomime collect`` dataset: a generalist evaluated on songs it never saw.

    .venv/bin/python baselines/diffusion_policy.py --dataset pianomime/bach-v0 --total-steps 20000
    .venv/bin/python baselines/diffusion_policy.py --dataset pianomime/bach-v0 --goal-encoder train
    .venv/bin/python baselines/diffusion_policy.py --dataset pianomime/bach-v0 --two-level
    .venv/bin/python baselines/diffusion_policy.py --resume runs/<run dir>   # continue a killed run
    .venv/bin/pianomime play music21:bach/bwv66.6 --policy runs/<run dir>/model.pt

The model is a FiLM-conditioned 1-D temporal U-Net (Chi et al.'s ConditionalUnet1D,
:mod:`pianomime_env.generalist`) over a window of ``--pred-horizon`` actions, conditioned on
the last ``--obs-horizon`` observations (projected to ``--obs-embed`` features) and the
diffusion step. Training: diffusers' ``DDPMScheduler`` (squared-cosine schedule,
``--diffusion-steps``, epsilon prediction), AdamW with a cosine learning-rate schedule and
warm-up, an EMA of the weights (diffusers' ``EMAModel``, warm-up power 0.75) which is what
``model.pt`` holds. Inference: diffusers' ``DDIMScheduler`` with ``--inference-steps`` steps;
receding horizon: the policy plans ``pred`` actions from step t on and executes the first
``--exec-horizon`` (default horizons 2 / 16 / 8). Observations and actions are min-max
normalized to [-1, 1] with the dataset's ranges (stored in the checkpoint). With
``--residual`` the actions are ResidualIK residuals over the sight-reader; with
``--goal-encoder`` the goal rows are PianoMime's 16-d SDF latents. ``--total-steps`` counts
gradient steps.

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
and ``target_norm`` (format: :mod:`pianomime_env.generalist`). ``--target-frame offset``: the
U-Net plans the targets relative to the fingertips observed when it plans. Not with
``--residual``.

Evaluation every ``--eval-every`` steps plays the EMA policy through
``pianomime_env.policies.load_policy`` (what ``pianomime play --policy`` does) on
``--eval-songs``: by default baselines/evaluate.py's HELDOUT_SONGS, refused if a training song
is among them. Outputs as baselines/bc.py: ``model.pt``, ``goal_encoder.pt``, ``summary.json``,
``resume.pt`` (model, EMA, optimizer, LR schedule, RNG, step; two-level: level 2's model and
optimizer), ``args.json`` and TensorBoard events (``losses/``, with ``losses/low_loss`` for
level 2, ``charts/learning_rate``, ``eval/f1``, ``eval/note_f1``).
"""

from __future__ import annotations

import copy
import dataclasses
import json
import os
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal

import numpy as np
import tyro

sys.path.insert(0, str(Path(__file__).resolve().parent))
from bc import (  # noqa: E402
    TWO_LEVEL_RESIDUAL,
    check_heldout,
    goal_encoder,
    low_level_entry,
    save_json,
    wrapper_config,
)
from evaluate import HELDOUT_SONGS, evaluate_song  # noqa: E402  (baselines/evaluate.py)

from pianomime_env.generalist import (  # noqa: E402
    BC_SIZES,
    Normalizer,
    build_actor,
    features,
    load_imitation_data,
    make_ddpm,
    two_level_arrays,
)
from pianomime_env.policies import require_torch, save_checkpoint  # noqa: E402


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


def parse_args(argv: list[str]) -> Args:
    """tyro parse; with --resume DIR the defaults come from DIR/args.json."""
    default = Args()
    if any(a == "--resume" or a.startswith("--resume=") for a in argv):
        i = next(i for i, a in enumerate(argv) if a.startswith("--resume"))
        path = Path(argv[i].split("=", 1)[1] if "=" in argv[i] else argv[i + 1])
        saved = path / "args.json"
        if not saved.is_file():
            raise SystemExit(f"--resume {path}: no args.json there (not a run directory)")
        fields = json.loads(saved.read_text())
        fields["down_dims"] = tuple(fields["down_dims"])
        fields["run_dir"] = path
        default = Args(**fields)
    return tyro.cli(Args, default=default, args=argv)


def window_indices(
    rows: np.ndarray, start: np.ndarray, end: np.ndarray, to: int, tp: int
) -> tuple[np.ndarray, np.ndarray]:
    """Row indices of the observation window (B, To) t-To+1..t, clamped at the episode's first
    row, and the action window (B, Tp) t..t+Tp-1, clamped at its last row."""
    obs = np.maximum(rows[:, None] + np.arange(-to + 1, 1)[None], start[rows][:, None])
    act = np.minimum(rows[:, None] + np.arange(tp)[None], end[rows][:, None] - 1)
    return obs, act


def main(args: Args) -> dict:
    if args.two_level and args.residual:
        raise SystemExit(TWO_LEVEL_RESIDUAL)
    torch = require_torch()
    from diffusers.optimization import get_scheduler
    from diffusers.training_utils import EMAModel
    from torch.utils.tensorboard import SummaryWriter
    from tqdm import tqdm

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
    torch.set_num_threads(args.torch_threads)
    resume_state = None
    if args.resume is not None:
        run_dir = Path(args.resume)
        if not (run_dir / "resume.pt").is_file():
            raise SystemExit(f"--resume {run_dir}: no resume.pt (no checkpoint was written yet)")
        resume_state = torch.load(run_dir / "resume.pt", map_location="cpu", weights_only=False)
    else:
        name = f"{args.exp_name}__{args.dataset.replace('/', '-')}__{args.seed}__{int(time.time())}"
        run_dir = Path(args.run_dir) if args.run_dir is not None else Path("runs") / name
        run_dir.mkdir(parents=True, exist_ok=True)
    saved_args = dataclasses.asdict(args) | {"resume": None, "run_dir": str(run_dir)}
    save_json(run_dir / "args.json", saved_args)
    try:
        env_kwargs = json.loads(args.env_kwargs)
    except json.JSONDecodeError as exc:
        raise SystemExit(f"--env-kwargs is not JSON: {exc}") from exc

    t_load = time.perf_counter()
    try:
        data = load_imitation_data(
            args.dataset,
            wrapper=wrapper_config(args),
            env_kwargs=env_kwargs,
            labels=args.labels,
            two_level=args.two_level,
            progress=args.progress,
        )
    except ValueError as exc:
        raise SystemExit(f"diffusion_policy.py: {exc}") from exc
    check_heldout(list(args.eval_songs), data.songs)
    encoder = goal_encoder(args, run_dir, data, print)
    x = np.concatenate([features(o, data.layout, encoder) for o in data.observations])
    y = np.concatenate(data.actions)
    if args.two_level:  # the U-Net plans next fingertips + sustain; level 2 the joints
        y, low_x, low_y, low_keys = two_level_arrays(data)
    offset = args.two_level and args.target_frame == "offset"
    lengths = np.array([len(a) for a in data.actions])
    ep_end = np.repeat(np.cumsum(lengths), lengths)  # per row: its episode's end / start row
    ep_start = ep_end - np.repeat(lengths, lengths)
    print(
        f"dataset {args.dataset}: {len(set(data.songs))} songs, {len(data.songs)} episodes, "
        f"{data.steps} steps, features {x.shape[1]}, actions {y.shape[1]} "
        f"({time.perf_counter() - t_load:.1f} s)"
    )
    obs_norm = Normalizer.fit(x, "minmax")
    if offset:  # windows t+1..t+Tp relative to the fingertips at t (the plan's origin)
        tips = np.concatenate([o["fingertips"] for o in data.observations])
        _, all_ai = window_indices(
            np.arange(len(y)), ep_start, ep_end, args.obs_horizon, args.pred_horizon
        )

        def target_windows(rows: np.ndarray, ai: np.ndarray) -> np.ndarray:
            w = y[ai].copy()
            w[..., :30] -= tips[rows][:, None]
            return w

        act_norm = Normalizer.fit(target_windows(np.arange(len(y)), all_ai), "minmax")
        del all_ai
    else:
        act_norm = Normalizer.fit(y, "minmax")
    xn = torch.as_tensor(obs_norm.normalize(x))
    yn = torch.as_tensor(act_norm.normalize(y))
    act_dim = int(y.shape[1])
    config = {
        "act_dim": act_dim,
        "cond_in": int(args.obs_horizon * x.shape[1]),
        "down_dims": list(args.down_dims),
        "kernel_size": args.kernel_size,
        "n_groups": args.n_groups,
        "step_embed": args.step_embed,
        "obs_embed": args.obs_embed,
    }
    sched_settings = {
        "num_train_timesteps": args.diffusion_steps,
        "beta_schedule": "squaredcos_cap_v2",
        "clip_sample": True,
        "prediction_type": "epsilon",
    }
    torch.manual_seed(args.seed)
    model = build_actor("unet", config)
    n_params = sum(p.numel() for p in model.parameters())
    noise_scheduler = make_ddpm(sched_settings)
    low_model = low_optimizer = low_norm = low_config = None
    if args.two_level:
        low_norm = Normalizer.fit(low_x, "zscore")
        low_xn = torch.as_tensor(low_norm.normalize(low_x))
        low_yt = torch.as_tensor(low_y)
        low_config = {
            "in_dim": int(low_x.shape[1]),
            "hidden": list(BC_SIZES[args.low_size]),
            "out_dim": int(low_y.shape[1]),
            "activation": "gelu",
        }
        low_model = build_actor("mlp", low_config)
        low_optimizer = torch.optim.Adam(low_model.parameters(), lr=args.low_learning_rate)
        print(f"two-level: targets {act_dim}, level 2 {low_x.shape[1]} -> {low_y.shape[1]}")
    optimizer = torch.optim.AdamW(
        model.parameters(), lr=args.learning_rate, weight_decay=args.weight_decay
    )
    lr_schedule = get_scheduler(
        "cosine",
        optimizer=optimizer,
        num_warmup_steps=args.lr_warmup_steps,
        num_training_steps=args.total_steps,
    )
    ema = EMAModel(model.parameters(), decay=0.9999, use_ema_warmup=True, power=args.ema_power)
    ema_model = copy.deepcopy(model)
    rng = np.random.default_rng(args.seed)
    global_step, wall_before, evals = 0, 0.0, []
    if resume_state is not None:
        model.load_state_dict(resume_state["model"])
        ema.load_state_dict(resume_state["ema"])
        optimizer.load_state_dict(resume_state["optimizer"])
        lr_schedule.load_state_dict(resume_state["lr_schedule"])
        if args.two_level:
            low_model.load_state_dict(resume_state["low_model"])
            low_optimizer.load_state_dict(resume_state["low_optimizer"])
        torch.set_rng_state(resume_state["torch_rng"])
        rng.bit_generator.state = resume_state["np_rng"]
        global_step, wall_before = resume_state["global_step"], resume_state["wall_s"]
        evals = list(resume_state["evals"])
    writer = SummaryWriter(str(run_dir), purge_step=global_step if resume_state else None)

    def policy_checkpoint() -> dict:
        ema.copy_to(ema_model.parameters())
        extra = {}
        if args.two_level:  # the U-Net's outputs are targets: target_norm, no action_norm
            extra = {
                "target_norm": act_norm.state(),
                "target_frame": args.target_frame,
                "low_level": low_level_entry(low_model, low_config, low_norm, low_keys),
            }
        return {
            **extra,
            "algorithm": "diffusion-policy",
            "actor": {
                "kind": "unet",
                "act_dim": act_dim,
                "config": config,
                "state_dict": {
                    k: v.detach().cpu().clone() for k, v in ema_model.state_dict().items()
                },
            },
            "obs_norm": obs_norm.state(),
            "action_norm": None if args.two_level else act_norm.state(),
            "features": {"goal_encoder": encoder.state() if encoder is not None else None},
            "horizons": {
                "obs": args.obs_horizon,
                "pred": args.pred_horizon,
                "exec": args.exec_horizon,
            },
            "diffusion": {"scheduler": sched_settings, "inference_steps": args.inference_steps},
            "env": {"id": "PianoMime-v0", "kwargs": data.env_kwargs},
            "observation_layout": data.layout,
            "wrapper": wrapper_config(args),
            "global_step": global_step,
            "seed": args.seed,
            "dataset": args.dataset,
        }

    def summary(final: bool = False) -> dict:
        wall = wall_before + time.perf_counter() - start
        out = {
            "algorithm": "diffusion-policy",
            "global_step": global_step,
            "wall_s": wall,
            "steps_per_s": (global_step - step0) / max(time.perf_counter() - start, 1e-9),
            "parameters": n_params,
            "eval": evals[-1] if evals else None,
            "evals": evals,
            "final": final,
            "run_dir": str(run_dir),
            "dataset": {
                "id": args.dataset,
                "songs": len(set(data.songs)),
                "episodes": len(data.songs),
                "steps": data.steps,
            },
        }
        save_json(run_dir / "summary.json", out)
        return out

    def checkpoint(final: bool = False) -> dict:
        state = {
            "model": model.state_dict(),
            "ema": ema.state_dict(),
            "optimizer": optimizer.state_dict(),
            "lr_schedule": lr_schedule.state_dict(),
            **(
                {"low_model": low_model.state_dict(), "low_optimizer": low_optimizer.state_dict()}
                if args.two_level
                else {}
            ),
            "torch_rng": torch.get_rng_state(),
            "np_rng": rng.bit_generator.state,
            "global_step": global_step,
            "wall_s": wall_before + time.perf_counter() - start,
            "evals": evals,
            "args": saved_args,
        }
        tmp = run_dir / "resume.pt.tmp"
        torch.save(state, tmp)
        os.replace(tmp, run_dir / "resume.pt")
        if args.save_model:
            save_checkpoint(run_dir / "model.pt", policy_checkpoint())
        return summary(final)

    def run_eval() -> None:
        path = run_dir / ("model.pt" if args.save_model else ".eval-model.pt")
        save_checkpoint(path, policy_checkpoint())
        rows = [
            evaluate_song(s, str(path), args.eval_max_seconds, True, args.seed)
            for s in tqdm(args.eval_songs, desc="eval", leave=False, disable=not args.progress)
        ]
        if not args.save_model:
            path.unlink()
        m = {k: float(np.mean([r[k] for r in rows])) for k in ("f1", "note_f1")}
        evals.append({"global_step": global_step, **m, "songs": {r["song"]: r["f1"] for r in rows}})
        writer.add_scalar("eval/f1", m["f1"], global_step)
        writer.add_scalar("eval/note_f1", m["note_f1"], global_step)

    print(f"U-Net: {n_params / 1e6:.2f} M parameters")
    start = time.perf_counter()
    step0 = global_step
    bar = tqdm(
        total=args.total_steps,
        initial=min(global_step, args.total_steps),
        unit="step",
        disable=not args.progress,
        mininterval=2.0,
    )
    last_ckpt, last_eval = global_step, global_step
    model.train()
    while global_step < args.total_steps:
        rows = rng.integers(0, len(xn), args.batch_size)
        oi, ai = window_indices(rows, ep_start, ep_end, args.obs_horizon, args.pred_horizon)
        cond = xn[torch.as_tensor(oi)].reshape(args.batch_size, -1)
        if offset:
            actions = torch.as_tensor(act_norm.normalize(target_windows(rows, ai)))
        else:
            actions = yn[torch.as_tensor(ai)]
        noise = torch.randn_like(actions)
        t = torch.randint(0, args.diffusion_steps, (args.batch_size,))
        noisy = noise_scheduler.add_noise(actions, noise, t)
        loss = torch.nn.functional.mse_loss(model(noisy, t, cond), noise)
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
        lr_schedule.step()
        ema.step(model.parameters())
        if args.two_level:
            li = torch.as_tensor(rng.integers(0, len(low_xn), args.low_batch_size))
            low_loss = torch.nn.functional.mse_loss(low_model(low_xn[li]), low_yt[li])
            low_optimizer.zero_grad()
            low_loss.backward()
            low_optimizer.step()
        global_step += 1
        bar.update(1)
        if global_step % 100 == 0:
            writer.add_scalar("losses/train_loss", loss.item(), global_step)
            writer.add_scalar("charts/learning_rate", lr_schedule.get_last_lr()[0], global_step)
            if args.two_level:
                writer.add_scalar("losses/low_loss", low_loss.item(), global_step)
            bar.set_postfix(loss=f"{loss.item():.4f}")
        out_of_time = args.max_wall_s > 0 and time.perf_counter() - start >= args.max_wall_s
        done = global_step >= args.total_steps or out_of_time
        if not done and args.eval_every > 0 and global_step - last_eval >= args.eval_every:
            run_eval()
            last_eval = global_step
            bar.write(f"step {global_step}: eval F1 {evals[-1]['f1']:.3f}")
        if not done and global_step - last_ckpt >= args.checkpoint_every:
            checkpoint()
            last_ckpt = global_step
        if out_of_time:
            break
    bar.close()
    if not evals or evals[-1]["global_step"] != global_step:
        run_eval()
    result = checkpoint(final=True)
    writer.close()
    print(json.dumps({k: result[k] for k in ("global_step", "wall_s", "eval")}))
    print(f"run directory: {run_dir}")
    return result


if __name__ == "__main__":
    main(parse_args(sys.argv[1:]))
