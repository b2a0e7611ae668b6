"""DroQ (SAC with dropout + layer-norm Q-functions) on a PianoMime song, the learner RoboPianist
and RP1M used; from scratch or as a residual over the sight-reader (``--residual``).

    .venv/bin/python baselines/droq.py --residual --total-timesteps 100000
    .venv/bin/python baselines/droq.py --resume runs/<run dir>      # continue a killed run

Defaults follow RP1M's Table 4: MLPs [256, 256, 256] with GELU, 2 Q-functions with dropout 0.01
and layer norm, target EMA 0.05, discount 0.88, batch 256, buffer 1M, 5k warm-up steps of
uniform random actions, one gradient step every 2 env steps, Adam 3e-4, learnable temperature
(initial 1.0, target entropy -|A|/2 as in robopianist-rl).

Env pipeline and Gymnasium 1.x handling as in ``ppo.py``: ``gym.make`` -> ``ResidualIK`` (with
``--residual``) -> ``FlattenObservation``; a ``SAME_STEP`` autoreset vector env, so a transition
that ends an episode is stored with its real last observation (``infos["final_obs"]``) and no
transition is a reset step; ``terminated`` transitions do not bootstrap, ``truncated`` ones do.
Observations are stored raw and normalized at sampling time with the running statistics, which
are saved with the weights.

Checkpoints (every ``--checkpoint-every`` env steps and at the end) write ``replay-<step>.npz`` (the
filled part of the replay buffer, so a resumed run samples the same data), ``resume.pt``
(weights, target networks, optimizers, temperature, normalization, RNG states, step counter),
``model.pt`` (the actor, :mod:`pianomime_env.policies`) and ``summary.json``. ``--resume RUN_DIR``
continues from there; only the episodes in progress at the kill are restarted (seeded from
``seed + global_step``). ``--no-save-buffer`` skips the buffer (then a resume refills it from
scratch, warm-up included) for runs whose buffer would not fit on disk.
"""

from __future__ import annotations

import dataclasses
import json
import os
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

import gymnasium as gym
import numpy as np
import tyro

import pianomime_env  # noqa: F401  (registers the PianoMime-* ids)
from pianomime_env.policies import (
    RunningMeanStd,
    build_mlp,
    env_make_kwargs,
    observation_layout,
    require_torch,
    save_checkpoint,
    wrap_env,
)


@dataclass
class Args:
    exp_name: str = "droq"
    """Experiment name (part of the default run directory)."""
    env_id: str = "PianoMime-TwinkleTwinkleRousseau-v0"
    """Gymnasium id of the song env (``PianoMime-<song>-v0``)."""
    trim_silence: bool = True
    """Drop the song's leading/trailing silence (Twinkle Rousseau: 158 steps)."""
    env_kwargs: str = "{}"
    """More PianoMimeEnv arguments as a JSON object, e.g. '{"song_end": "truncate"}'."""
    residual: bool = False
    """Train a residual over the sight-reader through ResidualIK (else from scratch)."""
    residual_scale: float = 0.02
    """ResidualIK's residual bound as a fraction of each actuator's range."""
    finger_residual_scale: float | None = None
    """Residual bound of the finger and thumb joints as a fraction of their range (None: the
    same as --residual-scale). At 0.02 a fingertip moves a few mm, less than a key's travel;
    0.1 learned faster on Twinkle (docs/results.md)."""
    seed: int = 0
    """Seed of torch, the envs, the replay sampling and the evaluation."""
    total_timesteps: int = 1_000_000
    """Env steps to train for (all envs together)."""
    num_envs: int = 1
    """Parallel envs."""
    vector_env: Literal["auto", "sync", "async"] = "auto"
    """Vector env kind; auto = async (one process per env) when num_envs > 1."""
    buffer_size: int = 1_000_000
    """Replay capacity (allocated up to total_timesteps only)."""
    batch_size: int = 256
    """Minibatch size."""
    learning_starts: int = 5_000
    """Env steps of uniform random actions before learning starts."""
    update_every: int = 2
    """One round of gradient steps every this many env steps."""
    gradient_steps: int = 1
    """Gradient steps per round."""
    gamma: float = 0.88
    """Discount."""
    tau: float = 0.05
    """Target network EMA rate."""
    actor_lr: float = 3e-4
    """Actor Adam learning rate."""
    critic_lr: float = 3e-4
    """Critic Adam learning rate."""
    temp_lr: float = 3e-4
    """Temperature Adam learning rate."""
    init_temperature: float = 1.0
    """Initial entropy temperature."""
    target_entropy: float | None = None
    """Target entropy (None: -|A|/2)."""
    hidden: tuple[int, ...] = (256, 256, 256)
    """Hidden layer sizes of the actor and the critics."""
    activation: Literal["tanh", "relu", "gelu", "elu"] = "gelu"
    """Hidden activation."""
    num_qs: int = 2
    """Number of Q-functions (the target takes their minimum)."""
    critic_dropout: float = 0.01
    """Dropout rate in the critics (DroQ)."""
    critic_layer_norm: bool = True
    """Layer norm in the critics (DroQ)."""
    eval_every: int = 10_000
    """Evaluate the deterministic policy on the full song every this many env steps (0: only
    before training and at the end; -1: never, for throughput measurements)."""
    checkpoint_every: int = 10_000
    """Write replay-<step>.npz, resume.pt, model.pt and summary.json every this many env steps."""
    save_model: bool = True
    """Write model.pt (the policy checkpoint)."""
    save_buffer: bool = True
    """Save the replay buffer with each checkpoint (needed for a lossless --resume)."""
    run_dir: Path | None = None
    """Output directory (default runs/<env>__<exp>__<seed>__<time>)."""
    resume: Path | None = None
    """Continue the run in this directory from its last checkpoint (its args.json supplies the
    defaults; flags given now override them, e.g. a larger --total-timesteps)."""
    track: bool = False
    """Also log to Weights & Biases (needs `pip install wandb`)."""
    cuda: bool = True
    """Use CUDA when available."""
    torch_threads: int = 1
    """torch CPU threads."""
    max_wall_s: float = 0.0
    """Stop (with a final checkpoint and evaluation) once this run has trained this many
    seconds of wall time since it (re)started (0: no limit)."""
    progress: bool = True
    """Show a progress bar."""


# -- setup (as in ppo.py) ---------------------------------------------------------------------


def env_kwargs(args: Args) -> dict:
    try:
        extra = json.loads(args.env_kwargs)
    except json.JSONDecodeError as exc:
        raise SystemExit(f"--env-kwargs is not JSON: {exc}") from exc
    if not isinstance(extra, dict):
        raise SystemExit(f"--env-kwargs must be a JSON object, got {args.env_kwargs!r}")
    kwargs = {"trim_silence": args.trim_silence, **extra}
    if not args.residual:
        kwargs["normalized_actions"] = True
    return kwargs


def wrapper_config(args: Args) -> dict:
    if not args.residual:
        return {"residual": False}
    return {
        "residual": True,
        "residual_scale": args.residual_scale,
        **(
            {"finger_residual_scale": args.finger_residual_scale}
            if args.finger_residual_scale is not None
            else {}
        ),
        "sustain": "score",
        "n_demo_frames": 4,
        "nominal": "sight-reader",
    }


def make_env(args: Args, flatten: bool = True):
    def thunk():
        wrapper = wrapper_config(args)
        env = gym.make(args.env_id, **env_make_kwargs(args.env_id, env_kwargs(args), wrapper))
        env = wrap_env(env, wrapper)
        return gym.wrappers.FlattenObservation(env) if flatten else env

    return thunk


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
        fields["hidden"] = tuple(fields["hidden"])
        fields["run_dir"] = path
        default = Args(**fields)
    return tyro.cli(Args, default=default, args=argv)


def save_json(path: Path, obj) -> None:
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_text(json.dumps(obj, indent=2, default=str))
    os.replace(tmp, path)


# -- replay buffer ----------------------------------------------------------------------------


class ReplayBuffer:
    """Circular buffer of raw transitions (obs, action, reward, next_obs, terminated)."""

    FIELDS = ("obs", "act", "rew", "next_obs", "term")

    def __init__(self, capacity: int, obs_dim: int, act_dim: int):
        self.capacity, self.ptr, self.size = int(capacity), 0, 0
        self.obs = np.zeros((self.capacity, obs_dim), np.float32)
        self.next_obs = np.zeros((self.capacity, obs_dim), np.float32)
        self.act = np.zeros((self.capacity, act_dim), np.float32)
        self.rew = np.zeros(self.capacity, np.float32)
        self.term = np.zeros(self.capacity, np.float32)

    def add(self, obs, act, rew, next_obs, term) -> None:
        for i in range(len(obs)):
            p = self.ptr
            self.obs[p], self.act[p], self.rew[p] = obs[i], act[i], rew[i]
            self.next_obs[p], self.term[p] = next_obs[i], term[i]
            self.ptr = (p + 1) % self.capacity
            self.size = min(self.size + 1, self.capacity)

    def sample(self, rng: np.random.Generator, n: int) -> dict[str, np.ndarray]:
        idx = rng.integers(0, self.size, n)
        return {f: getattr(self, f)[idx] for f in self.FIELDS}

    def save(self, path: Path, global_step: int) -> None:
        tmp = path.with_name(path.name + ".tmp.npz")
        n = self.size
        np.savez(
            tmp,
            ptr=self.ptr,
            size=n,
            global_step=global_step,
            **{f: getattr(self, f)[:n] for f in self.FIELDS},
        )
        os.replace(tmp, path)

    def load(self, path: Path, global_step: int) -> None:
        with np.load(path) as z:
            if int(z["global_step"]) != global_step:
                raise SystemExit(
                    f"{path} is from step {int(z['global_step'])}, resume.pt from {global_step}"
                )
            n = int(z["size"])
            if n > self.capacity:
                raise SystemExit(f"{path} holds {n} transitions, capacity is {self.capacity}")
            for f in self.FIELDS:
                getattr(self, f)[:n] = z[f]
            self.ptr, self.size = int(z["ptr"]) % self.capacity, n


# -- networks ---------------------------------------------------------------------------------


def make_networks(torch, obs_dim: int, act_dim: int, args: Args):
    nn = torch.nn

    class Actor(nn.Module):
        """Tanh-squashed Gaussian; net outputs [mean, log_std]."""

        def __init__(self):
            super().__init__()
            self.net = build_mlp(obs_dim, args.hidden, 2 * act_dim, args.activation)
            last = self.net[-1]
            nn.init.uniform_(last.weight, -1e-3, 1e-3)  # start near a zero (residual) mean
            nn.init.zeros_(last.bias)

        def forward(self, x):
            mean, log_std = self.net(x).chunk(2, dim=-1)
            return mean, log_std.clamp(-5.0, 2.0)

        def sample(self, x):
            mean, log_std = self(x)
            dist = torch.distributions.Normal(mean, log_std.exp())
            u = dist.rsample()
            a = torch.tanh(u)
            logp = dist.log_prob(u).sum(-1) - (
                2 * (np.log(2) - u - nn.functional.softplus(-2 * u))
            ).sum(-1)
            return a, logp

    class Critic(nn.Module):
        def __init__(self):
            super().__init__()
            self.qs = nn.ModuleList(
                build_mlp(
                    obs_dim + act_dim,
                    args.hidden,
                    1,
                    args.activation,
                    layer_norm=args.critic_layer_norm,
                    dropout=args.critic_dropout,
                )
                for _ in range(args.num_qs)
            )

        def forward(self, x, a):
            xa = torch.cat([x, a], -1)
            return torch.stack([q(xa)[:, 0] for q in self.qs])  # (num_qs, B)

    return Actor(), Critic(), Critic()


def evaluate(torch, actor, env, rms: RunningMeanStd, device, seed: int) -> dict:
    """One deterministic episode (tanh of the mean) on the full song; its musical metrics."""
    obs, _ = env.reset(seed=seed)
    while True:
        with torch.no_grad():
            mean, _ = actor(torch.as_tensor(rms.normalize(obs[None]), device=device))
            a = torch.tanh(mean)[0].cpu().numpy()
        obs, _, terminated, truncated, info = env.step(a)
        if terminated or truncated:
            m = info["metrics"]
            return {k: float(m[k]) for k in ("f1", "note_f1", "precision", "recall")}


# -- training ---------------------------------------------------------------------------------


def main(args: Args) -> dict:
    torch = require_torch()
    from torch.utils.tensorboard import SummaryWriter
    from tqdm import tqdm

    torch.set_num_threads(args.torch_threads)
    device = torch.device("cuda" if args.cuda and torch.cuda.is_available() else "cpu")
    resume_state = None
    if args.resume is not None:
        run_dir = Path(args.resume)
        if not (run_dir / "resume.pt").is_file():
            raise SystemExit(f"--resume {run_dir}: no resume.pt (no checkpoint was written yet)")
        resume_state = torch.load(run_dir / "resume.pt", map_location="cpu", weights_only=False)
    else:
        name = f"{args.env_id}__{args.exp_name}__{args.seed}__{int(time.time())}"
        run_dir = Path(args.run_dir) if args.run_dir is not None else Path("runs") / name
        run_dir.mkdir(parents=True, exist_ok=True)
    saved_args = dataclasses.asdict(args) | {"resume": None, "run_dir": str(run_dir)}
    save_json(run_dir / "args.json", saved_args)
    if args.track:
        try:
            import wandb
        except ImportError as exc:
            raise SystemExit("--track needs Weights & Biases: pip install wandb") from exc
        wandb.init(project="pianomime", sync_tensorboard=True, config=saved_args, name=run_dir.name)

    torch.manual_seed(args.seed)
    rng = np.random.default_rng(args.seed)
    kind = (
        args.vector_env if args.vector_env != "auto" else ("async" if args.num_envs > 1 else "sync")
    )
    vec_cls = gym.vector.AsyncVectorEnv if kind == "async" else gym.vector.SyncVectorEnv
    envs = vec_cls(
        [make_env(args) for _ in range(args.num_envs)],
        autoreset_mode=gym.vector.AutoresetMode.SAME_STEP,
    )
    envs = gym.wrappers.vector.RecordEpisodeStatistics(envs)
    eval_dict_env = make_env(args, flatten=False)()
    layout = observation_layout(eval_dict_env.observation_space)
    eval_env = gym.wrappers.FlattenObservation(eval_dict_env)
    obs_dim = int(np.prod(envs.single_observation_space.shape))
    act_dim = int(np.prod(envs.single_action_space.shape))

    actor, critic, target = make_networks(torch, obs_dim, act_dim, args)
    actor, critic, target = actor.to(device), critic.to(device), target.to(device)
    target.load_state_dict(critic.state_dict())
    log_alpha = torch.tensor(np.log(args.init_temperature), device=device, requires_grad=True)
    actor_opt = torch.optim.Adam(actor.parameters(), lr=args.actor_lr)
    critic_opt = torch.optim.Adam(critic.parameters(), lr=args.critic_lr)
    alpha_opt = torch.optim.Adam([log_alpha], lr=args.temp_lr)
    target_entropy = -0.5 * act_dim if args.target_entropy is None else args.target_entropy
    rms = RunningMeanStd(obs_dim)
    buffer = ReplayBuffer(min(args.buffer_size, max(args.total_timesteps, 1)), obs_dim, act_dim)
    global_step, n_updates, update_credit, wall_before, evals = 0, 0, 0.0, 0.0, []
    if resume_state is not None:
        s = resume_state
        actor.load_state_dict(s["actor"])
        critic.load_state_dict(s["critic"])
        target.load_state_dict(s["target"])
        with torch.no_grad():
            log_alpha.copy_(s["log_alpha"])
        actor_opt.load_state_dict(s["actor_opt"])
        critic_opt.load_state_dict(s["critic_opt"])
        alpha_opt.load_state_dict(s["alpha_opt"])
        rms = RunningMeanStd.from_state_dict(s["obs_rms"])
        torch.set_rng_state(s["torch_rng"])
        rng.bit_generator.state = s["numpy_rng"]
        global_step, n_updates, update_credit = s["global_step"], s["n_updates"], s["update_credit"]
        wall_before, evals = s["wall_s"], list(s["evals"])
        if s["buffer_file"]:
            buffer.load(run_dir / s["buffer_file"], global_step)
    writer = SummaryWriter(str(run_dir), purge_step=global_step if resume_state else None)

    def checkpoint(final: bool = False) -> dict:
        wall = wall_before + time.perf_counter() - start
        # The buffer file is named by its step and resume.pt names it, so a kill at any moment
        # leaves a consistent pair; older buffer files go once the new resume.pt is in place.
        buffer_file = f"replay-{global_step}.npz" if args.save_buffer else None
        if buffer_file:
            buffer.save(run_dir / buffer_file, global_step)
        state = {
            "actor": actor.state_dict(),
            "critic": critic.state_dict(),
            "target": target.state_dict(),
            "log_alpha": log_alpha.detach().cpu(),
            "actor_opt": actor_opt.state_dict(),
            "critic_opt": critic_opt.state_dict(),
            "alpha_opt": alpha_opt.state_dict(),
            "obs_rms": rms.state_dict(),
            "torch_rng": torch.get_rng_state(),
            "numpy_rng": rng.bit_generator.state,
            "global_step": global_step,
            "n_updates": n_updates,
            "update_credit": update_credit,
            "buffer_file": buffer_file,
            "wall_s": wall,
            "evals": evals,
            "args": saved_args,
        }
        tmp = run_dir / "resume.pt.tmp"
        torch.save(state, tmp)
        os.replace(tmp, run_dir / "resume.pt")
        for old in run_dir.glob("replay-*.npz"):
            if old.name != buffer_file:
                old.unlink()
        if args.save_model:
            save_checkpoint(
                run_dir / "model.pt",
                {
                    "algorithm": "droq",
                    "actor": {
                        "state_dict": {k: v.cpu() for k, v in actor.net.state_dict().items()},
                        "obs_dim": obs_dim,
                        "act_dim": act_dim,
                        "hidden": list(args.hidden),
                        "activation": args.activation,
                        "layer_norm": False,
                        "out_dim": 2 * act_dim,
                        "squash": "tanh",
                    },
                    "obs_norm": rms.state_dict(),
                    "env": {"id": args.env_id, "kwargs": env_kwargs(args)},
                    "observation_layout": layout,
                    "wrapper": wrapper_config(args),
                    "global_step": global_step,
                },
            )
        summary = {
            "algorithm": "droq",
            "global_step": global_step,
            "sps": global_step / max(wall, 1e-9),
            "wall_s": wall,
            "updates": n_updates,
            "eval": evals[-1] if evals else None,
            "evals": evals,
            "final": final,
            "run_dir": str(run_dir),
        }
        save_json(run_dir / "summary.json", summary)
        return summary

    def run_eval() -> None:
        m = evaluate(torch, actor, eval_env, rms, device, args.seed)
        evals.append({"global_step": global_step, **m})
        writer.add_scalar("eval/f1", m["f1"], global_step)
        writer.add_scalar("eval/note_f1", m["note_f1"], global_step)

    def update() -> dict:
        b = buffer.sample(rng, args.batch_size)
        o = torch.as_tensor(rms.normalize(b["obs"]), device=device)
        o2 = torch.as_tensor(rms.normalize(b["next_obs"]), device=device)
        a = torch.as_tensor(b["act"], device=device)
        r = torch.as_tensor(b["rew"], device=device)
        term = torch.as_tensor(b["term"], device=device)
        alpha = log_alpha.exp().detach()
        with torch.no_grad():
            a2, logp2 = actor.sample(o2)
            q_next = target(o2, a2).min(0).values - alpha * logp2
            y = r + args.gamma * (1.0 - term) * q_next
        q = critic(o, a)
        critic_loss = ((q - y[None]) ** 2).mean(1).sum()
        critic_opt.zero_grad()
        critic_loss.backward()
        critic_opt.step()
        a_pi, logp = actor.sample(o)
        actor_loss = (alpha * logp - critic(o, a_pi).mean(0)).mean()
        actor_opt.zero_grad()
        actor_loss.backward()
        actor_opt.step()
        alpha_loss = -(log_alpha * (logp.detach() + target_entropy)).mean()
        alpha_opt.zero_grad()
        alpha_loss.backward()
        alpha_opt.step()
        with torch.no_grad():
            for p, pt in zip(critic.parameters(), target.parameters()):
                pt.mul_(1 - args.tau).add_(p, alpha=args.tau)
        return {
            "losses/qf_loss": critic_loss.item(),
            "losses/actor_loss": actor_loss.item(),
            "losses/alpha": alpha.item(),
            "losses/alpha_loss": alpha_loss.item(),
            "losses/qf_values": q.mean().item(),
        }

    start = time.perf_counter()
    step0 = global_step
    if not evals and args.eval_every >= 0:
        run_eval()  # the untrained policy (residual: about the sight-reader's own score)
    obs, _ = envs.reset(seed=args.seed + global_step)
    bar = tqdm(
        total=args.total_timesteps,
        initial=min(global_step, args.total_timesteps),
        unit="step",
        disable=not args.progress,
        mininterval=2.0,
    )
    last_ckpt, last_eval, last_log, losses, sps = global_step, global_step, global_step, {}, 0.0
    while global_step < args.total_timesteps:
        if global_step < args.learning_starts:
            action = rng.uniform(-1.0, 1.0, (args.num_envs, act_dim)).astype(np.float32)
        else:
            with torch.no_grad():
                a, _ = actor.sample(torch.as_tensor(rms.normalize(obs), device=device))
            action = a.cpu().numpy()
        next_obs, reward, terminated, truncated, infos = envs.step(action)
        real_next = next_obs.copy()
        for i in np.flatnonzero(np.logical_or(terminated, truncated)):
            real_next[i] = infos["final_obs"][i]
        buffer.add(obs, action, reward, real_next, terminated.astype(np.float32))
        rms.update(obs)
        obs = next_obs
        global_step += args.num_envs
        bar.update(args.num_envs)
        if "_episode" in infos:
            for i in np.flatnonzero(infos["_episode"]):
                writer.add_scalar("charts/episodic_return", infos["episode"]["r"][i], global_step)
                writer.add_scalar("charts/episodic_length", infos["episode"]["l"][i], global_step)
                m = infos.get("final_info", {}).get("metrics", {})
                if "f1" in m and m.get("_f1", np.ones(args.num_envs, bool))[i]:
                    writer.add_scalar("charts/episodic_f1", m["f1"][i], global_step)
        if global_step >= args.learning_starts and buffer.size >= args.batch_size:
            update_credit += args.num_envs / args.update_every
            while update_credit >= 1.0:
                for _ in range(args.gradient_steps):
                    losses = update()
                    n_updates += 1
                update_credit -= 1.0
        out_of_time = args.max_wall_s > 0 and time.perf_counter() - start >= args.max_wall_s
        done = global_step >= args.total_timesteps or out_of_time
        if global_step - last_log >= 1000 or done:
            sps = (global_step - step0) / (time.perf_counter() - start)
            writer.add_scalar("charts/SPS", sps, global_step)
            for k, v in losses.items():
                writer.add_scalar(k, v, global_step)
            last_log = global_step
            bar.set_postfix(sps=f"{sps:.0f}", f1=f"{evals[-1]['f1']:.3f}" if evals else "-")
        if (done and args.eval_every >= 0) or (
            args.eval_every > 0 and global_step - last_eval >= args.eval_every
        ):
            run_eval()
            last_eval = global_step
            bar.set_postfix(sps=f"{sps:.0f}", f1=f"{evals[-1]['f1']:.3f}" if evals else "-")
        if not done and global_step - last_ckpt >= args.checkpoint_every:
            checkpoint()
            last_ckpt = global_step
        if out_of_time:
            break
    bar.close()
    summary = checkpoint(final=True)
    writer.close()
    envs.close()
    eval_env.close()
    print(json.dumps({k: summary[k] for k in ("global_step", "sps", "wall_s", "eval")}))
    print(f"run directory: {run_dir}")
    return summary


if __name__ == "__main__":
    main(parse_args(sys.argv[1:]))
