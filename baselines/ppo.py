"""PPO with continuous actions on a PianoMime song (CleanRL's ppo_continuous_action, for
Gymnasium 1.x), from scratch or as a residual over the sight-reader (PianoMime's residual RL).

    .venv/bin/python baselines/ppo.py --residual --total-timesteps 200000
    .venv/bin/python baselines/ppo.py --env-id PianoMime-CMajorScaleOneHand-v0 --num-envs 1
    .venv/bin/python baselines/ppo.py --resume runs/<run dir>      # continue a killed run
    .venv/bin/tensorboard --logdir runs

Env pipeline: ``gym.make(env_id, trim_silence=..., **env_kwargs)`` -> ``ResidualIK`` (with
``--residual``; nominal = the sight-reader, demo planned from the song) -> ``FlattenObservation``.
Without ``--residual`` the env has ``normalized_actions=True`` so the policy acts in [-1, 1].
With the multi-song env (``--env-id PianoMime-MultiSong-v0``) and ``--residual``, the env wraps
each song in ResidualIK itself (``envs.making.env_make_kwargs``).

Gymnasium 1.x: the vector env uses ``AutoresetMode.SAME_STEP`` (chosen explicitly): a step that
ends an episode returns the next episode's first observation and puts the last one in
``infos["final_obs"]``; no transition is a reset step. ``terminated`` (the song is over) ends
the return; ``truncated`` bootstraps from the final observation's value (added to the reward,
:func:`bootstrap_truncations`), then :func:`gae` cuts the chain at every episode end.
Episode statistics come from ``RecordEpisodeStatistics`` (``infos["episode"]``, mask
``infos["_episode"]``).

Outputs in the run directory (default ``runs/<env>__<exp>__<seed>__<time>/``): ``model.pt`` (the
policy, see :mod:`pianomime_env.learning.policies`; ``pianomime play SONG --policy <run dir>/model.pt``),
``summary.json`` (``global_step``, ``updates``, ``sps`` = env steps per second of training,
``train_s`` / ``eval_s`` / ``wall_s``, ``eval``, ``evals``), ``resume.pt`` (weights, optimizer,
normalization, RNG, step counter, learning-rate schedule), ``args.json`` and TensorBoard events
(``charts/``, ``losses/``, ``eval/f1``, ``eval/note_f1``; ``eval/pianoroll`` with
``--record-eval``).

Resume: checkpoints are taken between PPO iterations (the rollout buffer is empty then), every
``--checkpoint-every`` env steps, every ``--checkpoint-every-s`` seconds and on SIGTERM / SIGINT,
so nothing trained before the last one is lost (a SIGKILL loses what came after it). The episodes
in progress are restarted, seeded from ``seed + global_step``. A resume with a larger
``--total-timesteps`` extends the learning-rate schedule: the rate continues from where it was
and decays linearly to zero at the new total (it never jumps back up).
"""

import json
import sys
import time
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
    ThreadChooser,
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
    exp_name: str = "ppo"
    """Experiment name (part of the default run directory)."""
    env_id: str = "PianoMime-TwinkleTwinkleRousseau-v0"
    """Gymnasium id of the song env (``PianoMime-<song>-v0``)."""
    trim_silence: bool = True
    """Drop the song's leading/trailing silence (Twinkle Rousseau: 158 steps)."""
    env_kwargs: str = "{}"
    """More PianoMimeEnv arguments as a JSON object, e.g. '{"gravity_compensation": true}'."""
    residual: bool = False
    """Train a residual over the sight-reader through ResidualIK (else from scratch)."""
    residual_scale: float = 0.02
    """ResidualIK's residual bound as a fraction of each actuator's range."""
    finger_residual_scale: float | None = None
    """Residual bound of the finger and thumb joints as a fraction of their range (None: the
    same as --residual-scale). At 0.02 a fingertip moves a few mm, less than a key's travel;
    0.1 learned faster on Twinkle (docs/results.md)."""
    seed: int = 0
    """Seed of torch, the envs and the evaluation."""
    total_timesteps: int = 1_000_000
    """Env steps to train for (all envs together)."""
    num_envs: int = 2
    """Parallel envs."""
    vectorization: Literal["native", "sync", "async"] = "native"
    """How the training envs run: native = PianoMimeVectorEnv (all envs in this process, their
    physics on a thread pool; gym.make_vec's vector_entry_point), async = one process per env
    (AsyncVectorEnv), sync = one after the other (SyncVectorEnv). Same envs, same results."""
    num_steps: int = 1024
    """Steps per env per rollout."""
    learning_rate: float = 3e-4
    """Adam learning rate."""
    anneal_lr: bool = True
    """Anneal the learning rate linearly to 0 over total_timesteps."""
    gamma: float = 0.95
    """Discount."""
    gae_lambda: float = 0.95
    """GAE lambda."""
    num_minibatches: int = 8
    """Minibatches per epoch."""
    update_epochs: int = 10
    """Epochs per rollout."""
    clip_coef: float = 0.2
    """Surrogate clipping coefficient."""
    clip_vloss: bool = True
    """Clip the value loss too."""
    ent_coef: float = 0.0
    """Entropy bonus."""
    vf_coef: float = 0.5
    """Value loss weight."""
    max_grad_norm: float = 0.5
    """Gradient clipping norm."""
    target_kl: float | None = None
    """Stop an update's epochs early past this approximate KL (None: never)."""
    hidden: tuple[int, ...] = (256, 256)
    """Hidden layer sizes of the actor and the critic."""
    activation: Literal["tanh", "relu", "gelu", "elu"] = "tanh"
    """Hidden activation."""
    log_std_init: float = -1.0
    """Initial log standard deviation of the Gaussian policy (in [-1, 1] action units)."""
    norm_reward: bool = True
    """Scale rewards by the running std of the discounted return."""
    record_eval: Literal["none", "pianoroll", "video"] = "none"
    """Record each evaluation episode: its piano roll to TensorBoard (eval/pianoroll) and
    ``eval/`` in the run directory; ``video`` adds an MP4 with sound (the audio extra)."""
    eval_every: int = 10_000
    """Evaluate the deterministic policy on the full song every this many env steps (0: only
    before training and at the end; -1: never, for throughput measurements)."""
    checkpoint_every: int = 10_000
    """Write model.pt, resume.pt and summary.json every this many env steps (and at the end)."""
    checkpoint_every_s: float = 300.0
    """Also checkpoint every this many seconds of wall time (0: off), so a SIGKILL loses at
    most this much; SIGTERM / SIGINT checkpoint at the end of the current iteration."""
    save_model: bool = True
    """Write model.pt (the policy checkpoint)."""
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
    """torch CPU threads while collecting a rollout (1 leaves the cores to the envs)."""
    update_threads: int = 1
    """torch CPU threads for the update epochs; 0 = choose by measurement (every 10 updates a
    few minibatches are timed with 1 and 2 threads and the faster is kept; results then depend
    on the machine's load, not only on the seed). 1 by default: measured on 2 cores, PPO's Adam
    steps run 80/s with 1 thread on a quiet machine and 76/s with another job running, while 2
    threads run 129/s quiet but 3/s loaded (the whole run fell to 39 env steps/s)."""
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


# -- the agent --------------------------------------------------------------------------------


def make_agent(torch, obs_dim: int, act_dim: int, args: Args):
    nn = torch.nn

    def init(seq, out_std):
        linears = [m for m in seq if isinstance(m, nn.Linear)]
        for m in linears:
            nn.init.orthogonal_(m.weight, np.sqrt(2) if m is not linears[-1] else out_std)
            nn.init.zeros_(m.bias)
        return seq

    class Agent(nn.Module):
        def __init__(self):
            super().__init__()
            self.critic = init(build_mlp(obs_dim, args.hidden, 1, args.activation), 1.0)
            self.actor_mean = init(build_mlp(obs_dim, args.hidden, act_dim, args.activation), 0.01)
            self.actor_logstd = nn.Parameter(torch.full((1, act_dim), args.log_std_init))

        def value(self, x):
            return self.critic(x)

        def action_and_value(self, x, action=None):
            mean = self.actor_mean(x)
            dist = torch.distributions.Normal(mean, self.actor_logstd.expand_as(mean).exp())
            if action is None:
                action = dist.sample()
            logp = dist.log_prob(action).sum(1)
            return action, logp, dist.entropy().sum(1), self.critic(x)

    return Agent()


def deterministic_policy(torch, agent, rms: RunningMeanStd, device):
    """obs -> the actor's mean action, clipped to [-1, 1] (the evaluation policy)."""

    def act(obs):
        with torch.no_grad():
            x = torch.as_tensor(rms.normalize(obs[None]), device=device)
            return agent.actor_mean(x)[0].clamp(-1, 1).cpu().numpy()

    return act


# -- the learning math ------------------------------------------------------------------------


def bootstrap_truncations(
    reward: np.ndarray,
    terminated: np.ndarray,
    truncated: np.ndarray,
    final_value,
    gamma: float,
) -> np.ndarray:
    """The rewards of one step with ``gamma * V(final_obs)`` added where an episode was cut by a
    time limit (truncated and not terminated), so that cutting the GAE chain there loses nothing.
    ``final_value(i)`` is the value of env ``i``'s final observation."""
    reward = np.array(reward, np.float64)
    for i in np.flatnonzero(np.asarray(truncated) & ~np.asarray(terminated)):
        reward[i] += gamma * final_value(i)
    return reward


def gae(
    rewards: np.ndarray,
    values: np.ndarray,
    ends: np.ndarray,
    next_value: np.ndarray,
    gamma: float,
    lam: float,
) -> tuple[np.ndarray, np.ndarray]:
    """Generalized advantage estimation over a (T, N) rollout.

    ``ends[t]`` is 1 where step t ended an episode (terminated or truncated; truncations already
    carry their bootstrap in ``rewards``), which cuts the chain; ``next_value`` (N,) is the value
    of the observation after the last step. Returns ``(advantages, returns)``, both (T, N).
    """
    adv = np.zeros_like(rewards)
    last = np.zeros(rewards.shape[1], np.float32)
    for t in reversed(range(rewards.shape[0])):
        nv = next_value if t == rewards.shape[0] - 1 else values[t + 1]
        nonterminal = 1.0 - ends[t]
        delta = rewards[t] + gamma * nv * nonterminal - values[t]
        last = delta + gamma * lam * nonterminal * last
        adv[t] = last
    return adv, adv + values


def annealed_lr(base_lr: float, schedule: dict, iteration: int) -> float:
    """The linearly annealed learning rate at ``iteration``: ``schedule`` holds ``start_iteration``
    and ``start_lr`` (where the current straight line begins) and ``end_iteration`` (where it
    reaches zero); a fresh run's line starts at (0, base_lr)."""
    if not schedule:
        return base_lr
    span = max(schedule["end_iteration"] - schedule["start_iteration"], 1)
    return schedule["start_lr"] * (1.0 - (iteration - schedule["start_iteration"]) / span)


def resumed_schedule(saved: dict | None, base_lr: float, iteration: int, n_iterations: int) -> dict:
    """The schedule of a (resumed) run: unchanged when the total is, else a new straight line
    from the rate the old one had reached at ``iteration`` down to zero at ``n_iterations``."""
    if saved is None:
        return {"start_iteration": 0, "start_lr": base_lr, "end_iteration": n_iterations}
    if saved["end_iteration"] == n_iterations:
        return dict(saved)
    reached = annealed_lr(base_lr, saved, iteration)
    return {"start_iteration": iteration, "start_lr": reached, "end_iteration": n_iterations}


def ppo_loss(torch, agent, args: Args, mb: dict):
    """The clipped PPO objective on one minibatch; returns (loss, parts for logging)."""
    _, newlogp, entropy, newv = agent.action_and_value(mb["obs"], mb["act"])
    logratio = newlogp - mb["logp"]
    ratio = logratio.exp()
    with torch.no_grad():
        approx_kl = ((ratio - 1) - logratio).mean()
        clipfrac = ((ratio - 1.0).abs() > args.clip_coef).float().mean().item()
    adv = mb["adv"]
    adv = (adv - adv.mean()) / (adv.std() + 1e-8)
    pg_loss = torch.max(
        -adv * ratio, -adv * ratio.clamp(1 - args.clip_coef, 1 + args.clip_coef)
    ).mean()
    newv = newv.view(-1)
    if args.clip_vloss:
        v_clipped = mb["val"] + (newv - mb["val"]).clamp(-args.clip_coef, args.clip_coef)
        v_loss = 0.5 * torch.max((newv - mb["ret"]) ** 2, (v_clipped - mb["ret"]) ** 2).mean()
    else:
        v_loss = 0.5 * ((newv - mb["ret"]) ** 2).mean()
    loss = pg_loss - args.ent_coef * entropy.mean() + v_loss * args.vf_coef
    parts = {"pg": pg_loss, "v": v_loss, "entropy": entropy.mean(), "kl": approx_kl}
    return loss, parts | {"clipfrac": clipfrac}


# -- training ---------------------------------------------------------------------------------


class Rollout:
    """The (T, N) buffers of one rollout, observations already normalized."""

    def __init__(self, num_steps: int, num_envs: int, obs_dim: int, act_dim: int):
        self.obs = np.zeros((num_steps, num_envs, obs_dim), np.float32)
        self.act = np.zeros((num_steps, num_envs, act_dim), np.float32)
        self.logp = np.zeros((num_steps, num_envs), np.float32)
        self.rew = np.zeros((num_steps, num_envs), np.float32)
        self.end = np.zeros((num_steps, num_envs), np.float32)
        self.val = np.zeros((num_steps, num_envs), np.float32)


class PPO:
    """The learner's state (agent, optimizer, normalizers, counters) and its steps."""

    def __init__(self, torch, args: Args, obs_dim: int, act_dim: int, device, resume: dict | None):
        self.torch, self.args, self.device = torch, args, device
        self.obs_dim, self.act_dim = obs_dim, act_dim
        self.agent = make_agent(torch, obs_dim, act_dim, args).to(device)
        self.optimizer = torch.optim.Adam(self.agent.parameters(), lr=args.learning_rate, eps=1e-5)
        self.rms, self.ret_rms = RunningMeanStd(obs_dim), RunningMeanStd(())
        self.batch_size = args.num_envs * args.num_steps
        if self.batch_size < 2 * args.num_minibatches:
            raise SystemExit(
                f"num_envs * num_steps = {self.batch_size} is too small for "
                f"{args.num_minibatches} minibatches"
            )
        self.n_iterations = max(1, -(-args.total_timesteps // self.batch_size))
        self.global_step, self.iteration, self.updates, self.evals = 0, 0, 0, []
        self.timer_before: dict[str, float] = {}
        saved_schedule = None
        if resume is not None:
            self.agent.load_state_dict(resume["agent"])
            self.optimizer.load_state_dict(resume["optimizer"])
            self.rms = RunningMeanStd.from_state_dict(resume["obs_rms"])
            self.ret_rms = RunningMeanStd.from_state_dict(resume["ret_rms"])
            torch.set_rng_state(resume["torch_rng"])
            self.global_step, self.iteration = resume["global_step"], resume["iteration"]
            self.updates = resume.get("updates", 0)
            self.evals = list(resume["evals"])
            self.timer_before = resume.get("timer", {"train": resume.get("wall_s", 0.0)})
            saved_schedule = resume.get("lr_schedule") or {
                "start_iteration": 0,
                "start_lr": args.learning_rate,
                "end_iteration": resume.get("n_iterations", self.n_iterations),
            }
        self.lr_schedule = resumed_schedule(
            saved_schedule, args.learning_rate, self.iteration, self.n_iterations
        )
        self.threads = ThreadChooser((args.update_threads,) if args.update_threads else (1, 2))
        self.returns_acc = np.zeros(args.num_envs)  # discounted return, for reward scaling
        self.rollout = Rollout(args.num_steps, args.num_envs, obs_dim, act_dim)

    def collect(self, envs, next_obs, on_episode) -> np.ndarray:
        """Fills the rollout buffer from ``envs``; returns the observation after it."""
        torch, args, r = self.torch, self.args, self.rollout
        for step in range(args.num_steps):
            self.rms.update(next_obs)
            x = self.rms.normalize(next_obs)
            r.obs[step] = x
            with torch.no_grad():
                a, logp, _, v = self.agent.action_and_value(torch.as_tensor(x, device=self.device))
            a = a.cpu().numpy()
            r.act[step], r.logp[step], r.val[step] = a, logp.cpu().numpy(), v.cpu().numpy()[:, 0]
            next_obs, reward, terminated, truncated, infos = envs.step(np.clip(a, -1.0, 1.0))
            self.global_step += args.num_envs
            ended = np.logical_or(terminated, truncated)
            reward = np.asarray(reward, np.float64)
            if args.norm_reward:
                self.returns_acc = self.returns_acc * args.gamma + reward
                self.ret_rms.update(self.returns_acc)
                reward = reward / np.sqrt(self.ret_rms.var + 1e-8)
                self.returns_acc[ended] = 0.0
            final_obs = infos.get("final_obs")
            reward = bootstrap_truncations(
                reward,
                terminated,
                truncated,
                lambda i, f=final_obs: self._value_of(f[i]),
                args.gamma,
            )
            r.rew[step], r.end[step] = reward, ended
            on_episode(infos)
        return next_obs

    def _value_of(self, obs) -> float:
        final = self.rms.normalize(np.asarray(obs)[None])
        with self.torch.no_grad():
            return self.agent.value(self.torch.as_tensor(final, device=self.device)).item()

    def update(self, next_obs) -> dict[str, float]:
        """GAE over the rollout, then the PPO epochs; returns the last minibatch's losses."""
        torch, args, r = self.torch, self.args, self.rollout
        with torch.no_grad():
            x_last = torch.as_tensor(self.rms.normalize(next_obs), device=self.device)
            next_value = self.agent.value(x_last).cpu().numpy()[:, 0]
        adv, ret = gae(r.rew, r.val, r.end, next_value, args.gamma, args.gae_lambda)
        n, dev = self.batch_size, self.device
        batch = {
            "obs": torch.as_tensor(r.obs.reshape(n, self.obs_dim), device=dev),
            "act": torch.as_tensor(r.act.reshape(n, self.act_dim), device=dev),
            "logp": torch.as_tensor(r.logp.reshape(-1), device=dev),
            "adv": torch.as_tensor(adv.reshape(-1), device=dev),
            "ret": torch.as_tensor(ret.reshape(-1), device=dev),
            "val": torch.as_tensor(r.val.reshape(-1), device=dev),
        }
        clipfracs, parts, i = [], {}, 0
        for _epoch in range(args.update_epochs):
            perm = torch.randperm(n, device=dev)
            for idx in perm.tensor_split(args.num_minibatches):  # sizes differ by at most 1
                torch.set_num_threads(self.threads.threads(i))
                t0 = time.perf_counter()
                loss, parts = ppo_loss(
                    torch, self.agent, args, {k: v[idx] for k, v in batch.items()}
                )
                clipfracs.append(parts["clipfrac"])
                self.optimizer.zero_grad()
                loss.backward()
                torch.nn.utils.clip_grad_norm_(self.agent.parameters(), args.max_grad_norm)
                self.optimizer.step()
                self.threads.record(i, time.perf_counter() - t0)
                self.updates, i = self.updates + 1, i + 1
            if args.target_kl is not None and parts["kl"] > args.target_kl:
                break
        self.threads.end_update()
        torch.set_num_threads(args.torch_threads)
        self.iteration += 1
        out = {k: v.item() for k, v in parts.items() if k != "clipfrac"}
        return out | {"clipfrac": float(np.mean(clipfracs)), "threads": float(self.threads.best)}

    def set_learning_rate(self) -> None:
        if self.args.anneal_lr:
            lr = annealed_lr(self.args.learning_rate, self.lr_schedule, self.iteration)
            self.optimizer.param_groups[0]["lr"] = lr

    def resume_state(self, timer: Timer, saved_args: dict) -> dict:
        return {
            "agent": self.agent.state_dict(),
            "optimizer": self.optimizer.state_dict(),
            "obs_rms": self.rms.state_dict(),
            "ret_rms": self.ret_rms.state_dict(),
            "torch_rng": self.torch.get_rng_state(),
            "global_step": self.global_step,
            "iteration": self.iteration,
            "updates": self.updates,
            "n_iterations": self.n_iterations,
            "lr_schedule": self.lr_schedule,
            "timer": dict(timer.seconds),
            "wall_s": sum(timer.seconds.values()),
            "evals": self.evals,
            "args": saved_args,
        }

    def policy_checkpoint(self, args: Args, layout) -> dict:
        actor = self.agent.actor_mean
        return {
            "algorithm": "ppo",
            "actor": {
                "state_dict": {k: v.cpu() for k, v in actor.state_dict().items()},
                "obs_dim": self.obs_dim,
                "act_dim": self.act_dim,
                "hidden": list(args.hidden),
                "activation": args.activation,
                "layer_norm": False,
                "out_dim": self.act_dim,
                "squash": "clip",
            },
            "obs_norm": self.rms.state_dict(),
            "env": {"id": args.env_id, "kwargs": env_kwargs(args)},
            "observation_layout": layout,
            "wrapper": wrapper_config(args),
            "global_step": self.global_step,
        }


def checkpoint(
    run: RunContext, ppo: PPO, final: bool = False, stopped_by: int | None = None
) -> dict:
    """resume.pt, model.pt and summary.json, each written atomically."""
    save_torch(ppo.torch, ppo.resume_state(run.timer, run.saved_args), run.run_dir / "resume.pt")
    if run.args.save_model:
        save_checkpoint(run.run_dir / "model.pt", ppo.policy_checkpoint(run.args, run.layout))
    return write_summary(
        run, "ppo", ppo.global_step, ppo.updates, ppo.evals, final, stopped_by,
        update_threads=ppo.threads.best,
    )  # fmt: skip


def evaluate_now(run: RunContext, ppo: PPO) -> None:
    """One deterministic episode of the full song (the Gaussian's mean)."""
    act = deterministic_policy(ppo.torch, ppo.agent, ppo.rms, run.device)
    record_evaluation(run, ppo.evals, ppo.global_step, act)


def log_update(writer, ppo: PPO, losses: dict, sps: float) -> None:
    step = ppo.global_step
    writer.add_scalar("charts/learning_rate", ppo.optimizer.param_groups[0]["lr"], step)
    writer.add_scalar("charts/SPS", sps, step)
    writer.add_scalar("charts/update_threads", losses["threads"], step)
    for key, tag in (
        ("v", "value_loss"),
        ("pg", "policy_loss"),
        ("entropy", "entropy"),
        ("kl", "approx_kl"),
        ("clipfrac", "clipfrac"),
    ):
        writer.add_scalar(f"losses/{tag}", losses[key], step)


def train(run: RunContext, ppo: PPO, envs, stop: StopSignals) -> dict:
    """PPO iterations (rollout, then update) until the budget, the wall-clock limit or a stop
    signal; evaluations and checkpoints on their cadences; returns the final summary."""
    from tqdm import tqdm

    args = run.args
    step0, train0 = ppo.global_step, ppo.timer_before.get("train", 0.0)
    if not ppo.evals and args.eval_every >= 0:
        evaluate_now(run, ppo)  # the untrained policy (residual: the sight-reader's own score)
    next_obs, _ = envs.reset(seed=args.seed + ppo.global_step)
    bar = tqdm(
        total=args.total_timesteps,
        initial=min(ppo.global_step, args.total_timesteps),
        unit="step",
        disable=not args.progress,
        mininterval=2.0,
    )
    cadence = CheckpointCadence(args.checkpoint_every, args.checkpoint_every_s, ppo.global_step)
    last_eval, train_start = ppo.global_step, time.perf_counter()
    while ppo.iteration < ppo.n_iterations and ppo.global_step < args.total_timesteps:
        with run.timer.timed("train"):
            ppo.set_learning_rate()
            before = ppo.global_step
            next_obs = ppo.collect(
                envs,
                next_obs,
                lambda i: log_episodes(run.writer, i, ppo.global_step, envs.num_envs),
            )
            bar.update(ppo.global_step - before)
            losses = ppo.update(next_obs)
        sps = (ppo.global_step - step0) / max(run.timer.seconds["train"] - train0, 1e-9)
        log_update(run.writer, ppo, losses, sps)
        out_of_time = args.max_wall_s > 0 and time.perf_counter() - train_start >= args.max_wall_s
        done = (
            ppo.iteration >= ppo.n_iterations
            or ppo.global_step >= args.total_timesteps
            or out_of_time
            or stop.requested is not None
        )
        if (done and args.eval_every >= 0 and stop.requested is None) or (
            args.eval_every > 0 and ppo.global_step - last_eval >= args.eval_every
        ):
            evaluate_now(run, ppo)
            last_eval = ppo.global_step
        bar.set_postfix(sps=f"{sps:.0f}", f1=f"{ppo.evals[-1]['f1']:.3f}" if ppo.evals else "-")
        if not done and cadence.due(ppo.global_step):
            checkpoint(run, ppo)
            cadence.written(ppo.global_step)
        if done:
            break
    bar.close()
    return checkpoint(run, ppo, final=stop.requested is None, stopped_by=stop.requested)


def main(args: Args) -> dict:
    torch, resume, run_dir, saved_args = start_run(args, "ppo.py")
    from torch.utils.tensorboard import SummaryWriter

    device = torch.device("cuda" if args.cuda and torch.cuda.is_available() else "cpu")
    torch.manual_seed(args.seed)
    wrapper = wrapper_config(args)
    envs = train_envs(args.env_id, args.num_envs, args.vectorization, wrapper, env_kwargs(args))
    obs_dim = int(np.prod(envs.single_observation_space.shape))
    act_dim = int(np.prod(envs.single_action_space.shape))
    ppo = PPO(torch, args, obs_dim, act_dim, device, resume)
    writer = SummaryWriter(str(run_dir), purge_step=ppo.global_step if resume else None)
    evaluation_env, layout = eval_env(
        args.env_id, env_kwargs(args), wrapper, args.record_eval, run_dir / "eval", writer,
        lambda: ppo.global_step,
    )  # fmt: skip
    run = RunContext(args, run_dir, saved_args, writer, Timer(ppo.timer_before), evaluation_env,
                     layout, args.vectorization, device)  # fmt: skip
    with StopSignals() as stop:  # from here on SIGTERM / SIGINT end with a checkpoint
        summary = train(run, ppo, envs, stop)
    writer.close()
    envs.close()
    evaluation_env.close()
    print(json.dumps({k: summary[k] for k in ("global_step", "sps", "wall_s", "eval")}))
    print(f"run directory: {run_dir}")
    if stop.requested is not None:
        print(
            f"stopped by signal {stop.requested}: checkpoint written; --resume {run_dir} continues"
        )
        raise SystemExit(stop.exit_code)
    return summary


if __name__ == "__main__":
    main(parse_args(Args, sys.argv[1:], renamed={"vector_env": "vectorization"}))
