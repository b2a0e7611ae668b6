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

Checkpoints (every ``--checkpoint-every`` env steps, every ``--checkpoint-every-s`` seconds, on
SIGTERM / SIGINT and at the end) write ``replay-<step>.npz`` (the replay buffer, oldest transition
first, so a resumed run samples the same data; a resume with a larger ``--total-timesteps`` gets a
larger buffer that continues after the stored transitions), ``resume.pt``
(weights, target networks, optimizers, temperature, normalization, RNG states, step counter),
``model.pt`` (the actor, :mod:`pianomime_env.learning.policies`) and ``summary.json`` (with
``updates``, the gradient steps taken, and ``train_s`` / ``eval_s`` apart). ``--resume RUN_DIR``
continues from there; only the episodes in progress at the kill are restarted (seeded from
``seed + global_step``). ``--no-save-buffer`` skips the buffer (then a resume refills it from
scratch, warm-up included) for runs whose buffer would not fit on disk.
"""

import json
import sys
import time
import warnings
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

import numpy as np

import pianomime_env  # noqa: F401  (registers the PianoMime-* ids)
from pianomime_env.learning.policies import (
    RunningMeanStd,
    build_mlp,
    save_checkpoint,
)
from pianomime_env.learning.runs import (
    CheckpointCadence,
    RunContext,
    StopSignals,
    Timer,
    baseline_env_kwargs,
    eval_env,
    log_episodes,
    parse_args,
    record_evaluation,
    residual_wrapper_config,
    save_torch,
    start_run,
    train_envs,
    write_summary,
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
    vectorization: Literal["native", "sync", "async"] = "native"
    """How the training envs run: native = PianoMimeVectorEnv (all envs in this process, their
    physics on a thread pool; gym.make_vec's vector_entry_point), async = one process per env
    (AsyncVectorEnv), sync = one after the other (SyncVectorEnv). Same envs, same results."""
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
    record_eval: Literal["none", "pianoroll", "video"] = "none"
    """Record each evaluation episode: its piano roll to TensorBoard (eval/pianoroll) and
    ``eval/`` in the run directory; ``video`` adds an MP4 with sound (the audio extra)."""
    eval_every: int = 10_000
    """Evaluate the deterministic policy on the full song every this many env steps (0: only
    before training and at the end; -1: never, for throughput measurements)."""
    checkpoint_every: int = 10_000
    """Write replay-<step>.npz, resume.pt, model.pt and summary.json every this many env steps."""
    checkpoint_every_s: float = 300.0
    """Also checkpoint every this many seconds of wall time (0: off), so a SIGKILL loses at
    most this much; SIGTERM / SIGINT checkpoint at once and stop."""
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


# -- setup ------------------------------------------------------------------------------------


def env_kwargs(args: Args) -> dict:
    return baseline_env_kwargs(args.env_kwargs, args.trim_silence, args.residual)


def wrapper_config(args: Args) -> dict:
    return residual_wrapper_config(args.residual, args.residual_scale, args.finger_residual_scale)


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

    def chronological(self) -> dict[str, np.ndarray]:
        """The stored transitions, oldest first."""
        order = np.arange(self.size)
        if self.size == self.capacity:  # full: the oldest is where the pointer is
            order = (order + self.ptr) % self.capacity
        return {f: getattr(self, f)[order] for f in self.FIELDS}

    def save(self, path: Path, global_step: int) -> None:
        tmp = path.with_name(path.name + ".tmp.npz")
        np.savez(
            tmp,
            size=self.size,
            global_step=global_step,
            order="chronological",
            **self.chronological(),
        )
        tmp.replace(path)

    def load(self, path: Path, global_step: int) -> None:
        """Loads a saved buffer into this one (of any capacity): the transitions in order, the
        newest ``capacity`` of them if there are more, the pointer after the last one."""
        with np.load(path) as z:
            if int(z["global_step"]) != global_step:
                raise SystemExit(
                    f"{path} is from step {int(z['global_step'])}, resume.pt from {global_step}"
                )
            data = {f: z[f] for f in self.FIELDS}
            n = int(z["size"])
            if "order" not in z.files:  # written before 0.2: the filled rows in storage order
                ptr = int(z["ptr"])
                if ptr != n:  # the old buffer had wrapped: its oldest row is at ptr
                    data = {f: np.roll(v, -ptr, axis=0) for f, v in data.items()}
        keep = min(n, self.capacity)
        for f in self.FIELDS:
            getattr(self, f)[:keep] = data[f][n - keep : n]
        self.size, self.ptr = keep, keep % self.capacity


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


def deterministic_policy(torch, actor, rms: RunningMeanStd, device):
    """obs -> tanh of the actor's mean (the evaluation policy)."""

    def act(obs):
        with torch.no_grad():
            mean, _ = actor(torch.as_tensor(rms.normalize(obs[None]), device=device))
            return torch.tanh(mean)[0].cpu().numpy()

    return act


# -- the learning math ------------------------------------------------------------------------


def td_target(torch, target, actor, batch: dict, alpha, gamma: float):
    """The soft TD target ``r + gamma (1 - terminated) (min_i Q'_i(s', a') - alpha log pi(a'|s'))``
    with ``a' ~ pi(s')``: truncated transitions bootstrap, terminated ones do not. (B,)"""
    with torch.no_grad():
        a2, logp2 = actor.sample(batch["next_obs"])
        q_next = target(batch["next_obs"], a2).min(0).values - alpha * logp2
        return batch["rew"] + gamma * (1.0 - batch["term"]) * q_next


def real_next_obs(next_obs: np.ndarray, ended: np.ndarray, infos: dict) -> np.ndarray:
    """Under ``SAME_STEP`` autoreset, ``next_obs`` of an env whose episode just ended is the
    next episode's first observation; the transition's real one is ``infos["final_obs"][i]``."""
    real = next_obs.copy()
    for i in np.flatnonzero(ended):
        real[i] = infos["final_obs"][i]
    return real


# -- training ---------------------------------------------------------------------------------


class DroQ:
    """The learner's state (actor, critics, temperature, optimizers, buffer, counters)."""

    def __init__(
        self,
        torch,
        args: Args,
        obs_dim: int,
        act_dim: int,
        device,
        run_dir: Path,
        resume: dict | None,
    ):
        self.torch, self.args, self.device = torch, args, device
        self.obs_dim, self.act_dim = obs_dim, act_dim
        self.rng = np.random.default_rng(args.seed)
        actor, critic, target = make_networks(torch, obs_dim, act_dim, args)
        self.actor, self.critic, self.target = (
            actor.to(device),
            critic.to(device),
            target.to(device),
        )
        self.target.load_state_dict(self.critic.state_dict())
        self.log_alpha = torch.tensor(
            np.log(args.init_temperature), device=device, requires_grad=True
        )
        self.actor_opt = torch.optim.Adam(self.actor.parameters(), lr=args.actor_lr)
        self.critic_opt = torch.optim.Adam(self.critic.parameters(), lr=args.critic_lr)
        self.alpha_opt = torch.optim.Adam([self.log_alpha], lr=args.temp_lr)
        self.target_entropy = -0.5 * act_dim if args.target_entropy is None else args.target_entropy
        self.rms = RunningMeanStd(obs_dim)
        capacity = min(args.buffer_size, max(args.total_timesteps, 1))
        self.buffer = ReplayBuffer(capacity, obs_dim, act_dim)
        self.global_step, self.updates, self.update_credit, self.evals = 0, 0, 0.0, []
        self.timer_before: dict[str, float] = {}
        if resume is not None:
            self._restore(resume, run_dir)

    def _restore(self, s: dict, run_dir: Path) -> None:
        torch = self.torch
        self.actor.load_state_dict(s["actor"])
        self.critic.load_state_dict(s["critic"])
        self.target.load_state_dict(s["target"])
        with torch.no_grad():
            self.log_alpha.copy_(s["log_alpha"])
        self.actor_opt.load_state_dict(s["actor_opt"])
        self.critic_opt.load_state_dict(s["critic_opt"])
        self.alpha_opt.load_state_dict(s["alpha_opt"])
        self.rms = RunningMeanStd.from_state_dict(s["obs_rms"])
        torch.set_rng_state(s["torch_rng"])
        self.rng.bit_generator.state = s["numpy_rng"]
        self.global_step, self.updates = s["global_step"], s["n_updates"]
        self.update_credit, self.evals = s["update_credit"], list(s["evals"])
        self.timer_before = s.get("timer", {"train": s.get("wall_s", 0.0)})
        if s["buffer_file"]:
            self.buffer.load(run_dir / s["buffer_file"], self.global_step)

    def act(self, obs: np.ndarray) -> np.ndarray:
        """Uniform random actions during warm-up, then samples of the policy."""
        if self.global_step < self.args.learning_starts:
            shape = (self.args.num_envs, self.act_dim)
            return self.rng.uniform(-1.0, 1.0, shape).astype(np.float32)
        with self.torch.no_grad():
            x = self.torch.as_tensor(self.rms.normalize(obs), device=self.device)
            a, _ = self.actor.sample(x)
        return a.cpu().numpy()

    def update(self) -> dict[str, float]:
        """One gradient step of the critics, the actor and the temperature; the target EMA."""
        torch, args, dev = self.torch, self.args, self.device
        b = self.buffer.sample(self.rng, args.batch_size)
        batch = {
            "obs": torch.as_tensor(self.rms.normalize(b["obs"]), device=dev),
            "next_obs": torch.as_tensor(self.rms.normalize(b["next_obs"]), device=dev),
            "act": torch.as_tensor(b["act"], device=dev),
            "rew": torch.as_tensor(b["rew"], device=dev),
            "term": torch.as_tensor(b["term"], device=dev),
        }
        alpha = self.log_alpha.exp().detach()
        y = td_target(torch, self.target, self.actor, batch, alpha, args.gamma)
        q = self.critic(batch["obs"], batch["act"])
        critic_loss = ((q - y[None]) ** 2).mean(1).sum()
        self.critic_opt.zero_grad()
        critic_loss.backward()
        self.critic_opt.step()
        a_pi, logp = self.actor.sample(batch["obs"])
        # The actor's gradient flows through the critics, but theirs is not needed here: frozen,
        # the backward pass skips their weight gradients.
        self.critic.requires_grad_(False)
        actor_loss = (alpha * logp - self.critic(batch["obs"], a_pi).mean(0)).mean()
        self.actor_opt.zero_grad()
        actor_loss.backward()
        self.critic.requires_grad_(True)
        self.actor_opt.step()
        alpha_loss = -(self.log_alpha * (logp.detach() + self.target_entropy)).mean()
        self.alpha_opt.zero_grad()
        alpha_loss.backward()
        self.alpha_opt.step()
        with torch.no_grad():
            for p, pt in zip(self.critic.parameters(), self.target.parameters()):
                pt.mul_(1 - args.tau).add_(p, alpha=args.tau)
        self.updates += 1
        return {
            "losses/qf_loss": critic_loss.item(),
            "losses/actor_loss": actor_loss.item(),
            "losses/alpha": alpha.item(),
            "losses/alpha_loss": alpha_loss.item(),
            "losses/qf_values": q.mean().item(),
        }

    def learn(self) -> dict[str, float]:
        """The gradient steps owed after ``--num-envs`` env steps (one round every
        ``--update-every`` steps, once warm-up is over and the buffer holds a batch)."""
        args, losses = self.args, {}
        if self.global_step < args.learning_starts or self.buffer.size < args.batch_size:
            return losses
        self.update_credit += args.num_envs / args.update_every
        while self.update_credit >= 1.0:
            for _ in range(args.gradient_steps):
                losses = self.update()
            self.update_credit -= 1.0
        return losses

    def resume_state(self, buffer_file: str | None, timer: Timer, saved_args: dict) -> dict:
        return {
            "actor": self.actor.state_dict(),
            "critic": self.critic.state_dict(),
            "target": self.target.state_dict(),
            "log_alpha": self.log_alpha.detach().cpu(),
            "actor_opt": self.actor_opt.state_dict(),
            "critic_opt": self.critic_opt.state_dict(),
            "alpha_opt": self.alpha_opt.state_dict(),
            "obs_rms": self.rms.state_dict(),
            "torch_rng": self.torch.get_rng_state(),
            "numpy_rng": self.rng.bit_generator.state,
            "global_step": self.global_step,
            "n_updates": self.updates,
            "update_credit": self.update_credit,
            "buffer_file": buffer_file,
            "timer": dict(timer.seconds),
            "wall_s": sum(timer.seconds.values()),
            "evals": self.evals,
            "args": saved_args,
        }

    def policy_checkpoint(self, args: Args, layout) -> dict:
        return {
            "algorithm": "droq",
            "actor": {
                "state_dict": {k: v.cpu() for k, v in self.actor.net.state_dict().items()},
                "obs_dim": self.obs_dim,
                "act_dim": self.act_dim,
                "hidden": list(args.hidden),
                "activation": args.activation,
                "layer_norm": False,
                "out_dim": 2 * self.act_dim,
                "squash": "tanh",
            },
            "obs_norm": self.rms.state_dict(),
            "env": {"id": args.env_id, "kwargs": env_kwargs(args)},
            "observation_layout": layout,
            "wrapper": wrapper_config(args),
            "global_step": self.global_step,
        }


def checkpoint(run: RunContext, droq: DroQ, final: bool = False, stopped_by: int | None = None):
    """replay-<step>.npz, resume.pt, model.pt and summary.json, each written atomically."""
    # The buffer file is named by its step and resume.pt names it, so a kill at any moment
    # leaves a consistent pair; older buffer files go once the new resume.pt is in place.
    run_dir = run.run_dir
    buffer_file = f"replay-{droq.global_step}.npz" if run.args.save_buffer else None
    if buffer_file:
        droq.buffer.save(run_dir / buffer_file, droq.global_step)
    state = droq.resume_state(buffer_file, run.timer, run.saved_args)
    save_torch(droq.torch, state, run_dir / "resume.pt")
    for old in run_dir.glob("replay-*.npz"):
        if old.name != buffer_file:
            old.unlink()
    if run.args.save_model:
        save_checkpoint(run_dir / "model.pt", droq.policy_checkpoint(run.args, run.layout))
    return write_summary(run, "droq", droq.global_step, droq.updates, droq.evals, final, stopped_by)


def warn_if_no_updates(args: Args) -> None:
    if args.total_timesteps <= args.learning_starts:
        warnings.warn(
            f"--total-timesteps {args.total_timesteps} <= --learning-starts "
            f"{args.learning_starts}: the run only collects random warm-up steps and makes no "
            "gradient update (summary.json's `updates` will be 0)",
            stacklevel=2,
        )


def evaluate_now(run: RunContext, droq: DroQ) -> None:
    """One deterministic episode of the full song (tanh of the actor's mean)."""
    act = deterministic_policy(droq.torch, droq.actor, droq.rms, run.device)
    record_evaluation(run, droq.evals, droq.global_step, act)


def env_step(droq: DroQ, envs, obs: np.ndarray, run: RunContext) -> np.ndarray:
    """One step of every env: act, store the transitions (with their real last observation
    when an episode ended), update the normalizer; returns the next observations."""
    action = droq.act(obs)
    next_obs, reward, terminated, truncated, infos = envs.step(action)
    ended = np.logical_or(terminated, truncated)
    droq.buffer.add(
        obs, action, reward, real_next_obs(next_obs, ended, infos), terminated.astype(np.float32)
    )
    droq.rms.update(obs)
    droq.global_step += run.args.num_envs
    log_episodes(run.writer, infos, droq.global_step, run.args.num_envs)
    return next_obs


def train(run: RunContext, droq: DroQ, envs, stop: StopSignals) -> dict:
    """Env steps and gradient updates until the budget, the wall-clock limit or a stop signal;
    evaluations and checkpoints on their cadences; returns the final summary."""
    from tqdm import tqdm

    args = run.args
    step0, train0 = droq.global_step, droq.timer_before.get("train", 0.0)
    if not droq.evals and args.eval_every >= 0:
        evaluate_now(run, droq)  # the untrained policy (residual: about the sight-reader's own)
    obs, _ = envs.reset(seed=args.seed + droq.global_step)
    bar = tqdm(
        total=args.total_timesteps,
        initial=min(droq.global_step, args.total_timesteps),
        unit="step",
        disable=not args.progress,
        mininterval=2.0,
    )
    cadence = CheckpointCadence(args.checkpoint_every, args.checkpoint_every_s, droq.global_step)
    last_eval, last_log, losses, sps = droq.global_step, droq.global_step, {}, 0.0
    train_start = time.perf_counter()
    while droq.global_step < args.total_timesteps:
        with run.timer.timed("train"):
            obs = env_step(droq, envs, obs, run)
            bar.update(args.num_envs)
            losses = droq.learn() or losses
        out_of_time = args.max_wall_s > 0 and time.perf_counter() - train_start >= args.max_wall_s
        done = droq.global_step >= args.total_timesteps or out_of_time or stop.requested is not None
        if droq.global_step - last_log >= 1000 or done:
            sps = (droq.global_step - step0) / max(run.timer.seconds["train"] - train0, 1e-9)
            run.writer.add_scalar("charts/SPS", sps, droq.global_step)
            for k, v in losses.items():
                run.writer.add_scalar(k, v, droq.global_step)
            last_log = droq.global_step
        if (done and args.eval_every >= 0 and stop.requested is None) or (
            args.eval_every > 0 and droq.global_step - last_eval >= args.eval_every
        ):
            evaluate_now(run, droq)
            last_eval = droq.global_step
        if droq.global_step == last_log or droq.global_step == last_eval:  # just logged
            bar.set_postfix(
                sps=f"{sps:.0f}", f1=f"{droq.evals[-1]['f1']:.3f}" if droq.evals else "-"
            )
        if not done and cadence.due(droq.global_step):
            checkpoint(run, droq)
            cadence.written(droq.global_step)
        if done:
            break
    bar.close()
    return checkpoint(run, droq, final=stop.requested is None, stopped_by=stop.requested)


def main(args: Args) -> dict:
    torch, resume, run_dir, saved_args = start_run(args, "droq.py")
    from torch.utils.tensorboard import SummaryWriter

    warn_if_no_updates(args)
    device = torch.device("cuda" if args.cuda and torch.cuda.is_available() else "cpu")
    torch.manual_seed(args.seed)
    wrapper = wrapper_config(args)
    envs = train_envs(args.env_id, args.num_envs, args.vectorization, wrapper, env_kwargs(args))
    obs_dim = int(np.prod(envs.single_observation_space.shape))
    act_dim = int(np.prod(envs.single_action_space.shape))
    droq = DroQ(torch, args, obs_dim, act_dim, device, run_dir, resume)
    writer = SummaryWriter(str(run_dir), purge_step=droq.global_step if resume else None)
    evaluation_env, layout = eval_env(
        args.env_id, env_kwargs(args), wrapper, args.record_eval, run_dir / "eval", writer,
        lambda: droq.global_step,
    )  # fmt: skip
    run = RunContext(args, run_dir, saved_args, writer, Timer(droq.timer_before), evaluation_env,
                     layout, args.vectorization, device)  # fmt: skip
    with StopSignals() as stop:  # from here on SIGTERM / SIGINT end with a checkpoint
        summary = train(run, droq, envs, stop)
    writer.close()
    envs.close()
    evaluation_env.close()
    print(json.dumps({k: summary[k] for k in ("global_step", "updates", "sps", "wall_s", "eval")}))
    print(f"run directory: {run_dir}")
    if stop.requested is not None:
        print(
            f"stopped by signal {stop.requested}: checkpoint written; --resume {run_dir} continues"
        )
        raise SystemExit(stop.exit_code)
    return summary


if __name__ == "__main__":
    main(parse_args(Args, sys.argv[1:], renamed={"vector_env": "vectorization"}))
