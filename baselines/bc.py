"""Behaviour cloning (an MLP, RP1M's sizes) of a multi-song ``pianomime collect`` dataset: a
generalist evaluated on songs it never saw.

    .venv/bin/pianomime collect --songs corpus:bach:bach/bwv1* --dataset pianomime/bach-v0 --episodes 2 --noise 0.1
    .venv/bin/python baselines/bc.py --dataset pianomime/bach-v0 --total-steps 50000
    .venv/bin/python baselines/bc.py --dataset pianomime/bach-v0 --goal-encoder train --size 3x1024
    .venv/bin/python baselines/bc.py --dataset pianomime/bach-v0 --two-level   # goal -> fingertips -> joints
    .venv/bin/python baselines/bc.py --resume runs/<run dir>        # continue a killed run
    .venv/bin/pianomime play music21:bach/bwv66.6 --policy runs/<run dir>/model.pt

RP1M's settings (its appendix B) are the defaults: batch 256, Adam 3e-4, GELU, observation /
prediction / execution horizons 1 / 1 / 1, sizes 3x256 (default), 3x1024, 6x4096. The network
sees the observation (z-scored with the dataset's statistics; the goal raw or as PianoMime's
16-d latents with ``--goal-encoder``) and predicts the expert's normalized action, or with
``--residual`` the ResidualIK residual over the sight-reader (see
:mod:`pianomime_env.generalist`). ``--total-steps`` counts gradient steps.

``--two-level`` is PianoMime's two-level variant: level 1 (the MLP of ``--size``, same
features) predicts the fingertip targets (the fingertips observed at the next step t+1, 30
numbers in m, hindsight from the dataset) plus the sustain action, z-scored; level 2 (an MLP
of ``--low-size``) maps the song-independent observation (``hand_joints``, ``fingertips``,
``hand_velocities`` if present) plus the target's offset from the current fingertips to the
executed joint action at t (the action that really produced those fingertips, so the noisy
episodes teach it). Both train for ``--total-steps`` gradient steps on the same minibatches,
each with its own Adam (level 2: ``--low-learning-rate``). The checkpoint gains
``low_level`` and ``target_norm`` (format: :mod:`pianomime_env.generalist`); played, level 2
runs every step, its joints plus level 1's sustain are the action. ``--target-frame offset``
makes level 1 predict the next fingertips relative to the current ones (the same target for
level 2). Not with ``--residual``.

Evaluation every ``--eval-every`` steps plays the current policy through
``pianomime_env.policies.load_policy`` (the path ``pianomime play --policy`` takes) on
``--eval-songs``: by default baselines/evaluate.py's HELDOUT_SONGS (chorales and folk tunes
never tuned on), refused if a training song is among them.

Outputs in the run directory (default ``runs/bc__<dataset>__<seed>__<time>/``): ``model.pt``
(the policy checkpoint), ``goal_encoder.pt`` (with ``--goal-encoder train``), ``summary.json``
(``global_step``, ``wall_s``, ``eval``, ``evals``, dataset size), ``resume.pt`` (weights,
optimizer, RNG, step; two-level: level 2's too), ``args.json`` and TensorBoard events
(``losses/``, with ``losses/low_loss`` for level 2, ``eval/f1``,
``eval/note_f1``).
"""

from __future__ import annotations

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
from evaluate import HELDOUT_SONGS, evaluate_song  # noqa: E402  (baselines/evaluate.py)

from pianomime_env.generalist import (  # noqa: E402
    BC_SIZES,
    Normalizer,
    build_actor,
    features,
    load_imitation_data,
    two_level_arrays,
)
from pianomime_env.policies import require_torch, save_checkpoint  # noqa: E402


@dataclass
class Args:
    dataset: str = "pianomime/generalist-sr-v0"
    """Minari id of a `pianomime collect` dataset (in $MINARI_DATASETS_PATH)."""
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
        fields["run_dir"] = path
        default = Args(**fields)
    return tyro.cli(Args, default=default, args=argv)


def save_json(path: Path, obj) -> None:
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_text(json.dumps(obj, indent=2, default=str))
    os.replace(tmp, path)


def wrapper_config(args: Args) -> dict:
    if not args.residual:
        return {"residual": False}
    return {
        "residual": True,
        "residual_scale": args.residual_scale,
        "sustain": "score",
        "n_demo_frames": 4,
        "nominal": "sight-reader",
    }


def check_heldout(eval_songs: list[str], train_songs: list[str]) -> None:
    """Refuses evaluation songs that the dataset trains on."""
    from pianomime_env.collect import song_label

    train = set(train_songs) | {song_label(s) for s in train_songs}
    bad = [s for s in eval_songs if s in train or song_label(s) in train]
    if bad:
        raise SystemExit(f"--eval-songs {bad} are in the training dataset; evaluate on others")


def goal_encoder(args: Args, run_dir: Path, data, log):
    """None, or the goal autoencoder: trained now (saved to the run dir), resumed, or loaded."""
    if args.goal_encoder == "none":
        return None
    from pianomime_env.goal_encoder import (
        load_goal_autoencoder,
        save_goal_autoencoder,
        train_goal_autoencoder,
    )

    own = run_dir / "goal_encoder.pt"
    if args.goal_encoder != "train":
        return load_goal_autoencoder(args.goal_encoder)
    if own.is_file():
        return load_goal_autoencoder(own)
    goals = np.concatenate([o["goal"][:, :, :88].reshape(-1, 88) for o in data.observations])
    goals = np.unique(goals, axis=0)
    model, info = train_goal_autoencoder(
        goals, steps=args.goal_encoder_steps, seed=args.seed, progress=args.progress
    )
    save_goal_autoencoder(model, own, **info, dataset=args.dataset)
    log(f"goal autoencoder: {len(goals)} distinct goal rows, {info}")
    return model


TWO_LEVEL_RESIDUAL = (
    "--two-level with --residual is not built: level 2 outputs the joints themselves (from "
    "fingertip targets), while a residual policy outputs a bounded correction of the "
    "sight-reader's joints; and on sight-reader data every residual label is zero "
    "(docs/generalist.md). Use one of the two."
)


def low_level_entry(model, config: dict, norm: Normalizer, keys: list[str]) -> dict:
    """A checkpoint's ``low_level`` entry (format: :mod:`pianomime_env.generalist`)."""
    return {
        "kind": "mlp",
        "act_dim": int(config["out_dim"]),
        "config": config,
        "state_dict": {k: v.detach().cpu().clone() for k, v in model.state_dict().items()},
        "keys": list(keys),
        "obs_norm": norm.state(),
    }


def main(args: Args) -> dict:
    if args.two_level and args.residual:
        raise SystemExit(TWO_LEVEL_RESIDUAL)
    torch = require_torch()
    from torch.utils.tensorboard import SummaryWriter
    from tqdm import tqdm

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
        raise SystemExit(f"bc.py: {exc}") from exc
    check_heldout(list(args.eval_songs), data.songs)
    encoder = goal_encoder(args, run_dir, data, print)
    x = np.concatenate([features(o, data.layout, encoder) for o in data.observations])
    y = np.concatenate(data.actions)
    if args.two_level:  # level 1 predicts the next fingertips + sustain; level 2 the joints
        y, low_x, low_y, low_keys = two_level_arrays(data)
        if args.target_frame == "offset":  # the next fingertips relative to the current ones
            y[:, :30] -= np.concatenate([o["fingertips"] for o in data.observations])
    print(
        f"dataset {args.dataset}: {len(set(data.songs))} songs, {len(data.songs)} episodes, "
        f"{data.steps} steps, features {x.shape[1]}, actions {y.shape[1]} "
        f"({time.perf_counter() - t_load:.1f} s)"
    )
    obs_norm = Normalizer.fit(x, "zscore")
    xn = torch.as_tensor(obs_norm.normalize(x))
    target_norm = Normalizer.fit(y, "zscore") if args.two_level else None
    yt = torch.as_tensor(target_norm.normalize(y) if args.two_level else y)
    config = {
        "in_dim": int(x.shape[1]),
        "hidden": list(BC_SIZES[args.size]),
        "out_dim": int(y.shape[1]),
        "activation": "gelu",
    }
    torch.manual_seed(args.seed)
    model = build_actor("mlp", config)
    optimizer = torch.optim.Adam(model.parameters(), lr=args.learning_rate)
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
        print(f"two-level: targets {y.shape[1]}, level 2 {low_x.shape[1]} -> {low_y.shape[1]}")
    rng = np.random.default_rng(args.seed)
    global_step, wall_before, evals = 0, 0.0, []
    if resume_state is not None:
        model.load_state_dict(resume_state["model"])
        optimizer.load_state_dict(resume_state["optimizer"])
        if args.two_level:
            low_model.load_state_dict(resume_state["low_model"])
            low_optimizer.load_state_dict(resume_state["low_optimizer"])
        torch.set_rng_state(resume_state["torch_rng"])
        rng.bit_generator.state = resume_state["np_rng"]
        global_step, wall_before = resume_state["global_step"], resume_state["wall_s"]
        evals = list(resume_state["evals"])
    writer = SummaryWriter(str(run_dir), purge_step=global_step if resume_state else None)

    def policy_checkpoint() -> dict:
        extra = {}
        if args.two_level:
            extra = {
                "target_norm": target_norm.state(),
                "target_frame": args.target_frame,
                "low_level": low_level_entry(low_model, low_config, low_norm, low_keys),
            }
        return {
            **extra,
            "algorithm": "bc",
            "actor": {
                "kind": "mlp",
                "act_dim": int(y.shape[1]),
                "config": config,
                "state_dict": {k: v.detach().cpu().clone() for k, v in model.state_dict().items()},
            },
            "obs_norm": obs_norm.state(),
            "action_norm": None,
            "features": {"goal_encoder": encoder.state() if encoder is not None else None},
            "horizons": {"obs": 1, "pred": 1, "exec": 1},
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
            "algorithm": "bc",
            "global_step": global_step,
            "wall_s": wall,
            "steps_per_s": (global_step - step0) / max(time.perf_counter() - start, 1e-9),
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
            "optimizer": optimizer.state_dict(),
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
    if low_model is not None:
        low_model.train()
    while global_step < args.total_steps:
        idx = torch.as_tensor(rng.integers(0, len(xn), args.batch_size))
        loss = torch.nn.functional.mse_loss(model(xn[idx]), yt[idx])
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
        if args.two_level:
            low_loss = torch.nn.functional.mse_loss(low_model(low_xn[idx]), low_yt[idx])
            low_optimizer.zero_grad()
            low_loss.backward()
            low_optimizer.step()
        global_step += 1
        bar.update(1)
        if global_step % 100 == 0:
            writer.add_scalar("losses/train_loss", loss.item(), global_step)
            if args.two_level:
                writer.add_scalar("losses/low_loss", low_loss.item(), global_step)
            bar.set_postfix(loss=f"{loss.item():.4f}")
        out_of_time = args.max_wall_s > 0 and time.perf_counter() - start >= args.max_wall_s
        done = global_step >= args.total_steps or out_of_time
        if not done and args.eval_every > 0 and global_step - last_eval >= args.eval_every:
            model.eval()
            run_eval()
            model.train()
            last_eval = global_step
            bar.write(f"step {global_step}: eval F1 {evals[-1]['f1']:.3f}")
        if not done and global_step - last_ckpt >= args.checkpoint_every:
            checkpoint()
            last_ckpt = global_step
        if out_of_time:
            break
    bar.close()
    model.eval()
    if not evals or evals[-1]["global_step"] != global_step:
        run_eval()
    result = checkpoint(final=True)
    writer.close()
    print(json.dumps({k: result[k] for k in ("global_step", "wall_s", "eval")}))
    print(f"run directory: {run_dir}")
    return result


if __name__ == "__main__":
    main(parse_args(sys.argv[1:]))
