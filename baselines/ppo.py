"""PPO with continuous actions on a PianoMime song (CleanRL's ppo_continuous_action, for
Gymnasium 1.x), from scratch or as a residual over the sight-reader (PianoMime's residual RL).

    .venv/bin/python baselines/ppo.py --residual --total-timesteps 200000
    .venv/bin/python baselines/ppo.py --env-id PianoMime-CMajorScaleOneHand-v0 --num-envs 1
    .venv/bin/python baselines/ppo.py --resume runs/<run dir>      # continue a killed run
    .venv/bin/tensorboard --logdir runs

Env pipeline: ``gym.make(env_id, trim_silence=..., **env_kwargs)`` -> ``ResidualIK`` (with
``--residual``; nominal = the sight-reader, demo planned from the song) -> ``FlattenObservation``.
Without ``--residual`` the env has ``normalized_actions=True`` so the policy acts in [-1, 1].
With the multi-song env (``--env-id pianomime_env.multisong:PianoMime-MultiSong-v0``) and
``--residual``, the env wraps each song in ResidualIK itself (``policies.env_make_kwargs``).

Gymnasium 1.x: the vector env uses ``AutoresetMode.SAME_STEP`` (chosen explicitly): a step that
ends an episode returns the next episode's first observation and puts the last one in
``infos["final_obs"]``; no transition is a reset step. ``terminated`` (the song is over) ends
the return; ``truncated`` bootstraps from the final observation's value (added to the reward).
Episode statistics come from ``RecordEpisodeStatistics`` (``infos["episode"]``, mask
``infos["_episode"]``).

Outputs in the run directory (default ``runs/<env>__<exp>__<seed>__<time>/``): ``model.pt`` (the
policy, see :mod:`pianomime_env.policies`; ``pianomime play SONG --policy <run dir>/model.pt``),
``summary.json`` (``global_step``, ``sps``, ``wall_s``, ``eval``, ``evals``), ``resume.pt``
(weights, optimizer, normalization, RNG, step counter), ``args.json`` and TensorBoard events
(``charts/``, ``losses/``, ``eval/f1``, ``eval/note_f1``).

Resume: checkpoints are taken between PPO iterations (the rollout buffer is empty then), so
nothing trained is lost; the episodes that were in progress when the run was killed are
restarted (a simulation mid-episode is not saved), seeded from ``seed + global_step``.
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
    vector_env: Literal["auto", "sync", "async"] = "auto"
    """Vector env kind; auto = async (one process per env) when num_envs > 1."""
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
    eval_every: int = 10_000
    """Evaluate the deterministic policy on the full song every this many env steps (0: only
    before training and at the end; -1: never, for throughput measurements)."""
    checkpoint_every: int = 10_000
    """Write model.pt, resume.pt and summary.json every this many env steps (and at the end)."""
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
    update_threads: int = 2
    """torch CPU threads for the update epochs (the env workers are idle then)."""
    max_wall_s: float = 0.0
    """Stop (with a final checkpoint and evaluation) once this run has trained this many
    seconds of wall time since it (re)started (0: no limit)."""
    progress: bool = True
    """Show a progress bar."""


# -- setup ------------------------------------------------------------------------------------


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
    """A thunk building one training/evaluation env."""

    def thunk():
        wrapper = wrapper_config(args)
        env = gym.make(args.env_id, **env_make_kwargs(args.env_id, env_kwargs(args), wrapper))
        env = wrap_env(env, wrapper)
        return gym.wrappers.FlattenObservation(env) if flatten else env

    return thunk


def parse_args(argv: list[str]) -> Args:
    """tyro parse; with --resume DIR the defaults come from DIR/args.json."""
    default = Args()
    if "--resume" in argv or any(a.startswith("--resume=") for a in argv):
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


def evaluate(torch, agent, env, rms: RunningMeanStd, device, seed: int) -> dict:
    """One deterministic episode on the full song; the final step's musical metrics."""
    obs, _ = env.reset(seed=seed)
    while True:
        with torch.no_grad():
            x = torch.as_tensor(rms.normalize(obs[None]), device=device)
            a = agent.actor_mean(x)[0].clamp(-1, 1).cpu().numpy()
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

    agent = make_agent(torch, obs_dim, act_dim, args).to(device)
    optimizer = torch.optim.Adam(agent.parameters(), lr=args.learning_rate, eps=1e-5)
    rms = RunningMeanStd(obs_dim)
    ret_rms = RunningMeanStd(())
    batch_size = args.num_envs * args.num_steps
    if batch_size < 2 * args.num_minibatches:
        raise SystemExit(
            f"num_envs * num_steps = {batch_size} is too small for {args.num_minibatches} minibatches"
        )
    n_iterations = max(1, -(-args.total_timesteps // batch_size))
    global_step, iteration, wall_before, evals = 0, 0, 0.0, []
    if resume_state is not None:
        agent.load_state_dict(resume_state["agent"])
        optimizer.load_state_dict(resume_state["optimizer"])
        rms = RunningMeanStd.from_state_dict(resume_state["obs_rms"])
        ret_rms = RunningMeanStd.from_state_dict(resume_state["ret_rms"])
        torch.set_rng_state(resume_state["torch_rng"])
        global_step, iteration = resume_state["global_step"], resume_state["iteration"]
        wall_before, evals = resume_state["wall_s"], list(resume_state["evals"])
    writer = SummaryWriter(str(run_dir), purge_step=global_step if resume_state else None)

    def checkpoint(final: bool = False) -> dict:
        wall = wall_before + time.perf_counter() - start
        state = {
            "agent": agent.state_dict(),
            "optimizer": optimizer.state_dict(),
            "obs_rms": rms.state_dict(),
            "ret_rms": ret_rms.state_dict(),
            "torch_rng": torch.get_rng_state(),
            "global_step": global_step,
            "iteration": iteration,
            "wall_s": wall,
            "evals": evals,
            "args": saved_args,
        }
        tmp = run_dir / "resume.pt.tmp"
        torch.save(state, tmp)
        os.replace(tmp, run_dir / "resume.pt")
        if args.save_model:
            actor = agent.actor_mean
            save_checkpoint(
                run_dir / "model.pt",
                {
                    "algorithm": "ppo",
                    "actor": {
                        "state_dict": {k: v.cpu() for k, v in actor.state_dict().items()},
                        "obs_dim": obs_dim,
                        "act_dim": act_dim,
                        "hidden": list(args.hidden),
                        "activation": args.activation,
                        "layer_norm": False,
                        "out_dim": act_dim,
                        "squash": "clip",
                    },
                    "obs_norm": rms.state_dict(),
                    "env": {"id": args.env_id, "kwargs": env_kwargs(args)},
                    "observation_layout": layout,
                    "wrapper": wrapper_config(args),
                    "global_step": global_step,
                },
            )
        summary = {
            "algorithm": "ppo",
            "global_step": global_step,
            "sps": global_step / max(wall, 1e-9),
            "wall_s": wall,
            "eval": evals[-1] if evals else None,
            "evals": evals,
            "final": final,
            "run_dir": str(run_dir),
        }
        save_json(run_dir / "summary.json", summary)
        return summary

    def run_eval() -> None:
        m = evaluate(torch, agent, eval_env, rms, device, args.seed)
        evals.append({"global_step": global_step, **m})
        writer.add_scalar("eval/f1", m["f1"], global_step)
        writer.add_scalar("eval/note_f1", m["note_f1"], global_step)

    start = time.perf_counter()
    step0 = global_step
    if not evals and args.eval_every >= 0:
        run_eval()  # the untrained policy (residual: the sight-reader's own score)
    obs_buf = np.zeros((args.num_steps, args.num_envs, obs_dim), np.float32)
    act_buf = np.zeros((args.num_steps, args.num_envs, act_dim), np.float32)
    logp_buf = np.zeros((args.num_steps, args.num_envs), np.float32)
    rew_buf = np.zeros((args.num_steps, args.num_envs), np.float32)
    end_buf = np.zeros((args.num_steps, args.num_envs), np.float32)
    val_buf = np.zeros((args.num_steps, args.num_envs), np.float32)
    returns_acc = np.zeros(args.num_envs)  # discounted return, for reward scaling

    next_obs, _ = envs.reset(seed=args.seed + global_step)
    bar = tqdm(
        total=args.total_timesteps,
        initial=min(global_step, args.total_timesteps),
        unit="step",
        disable=not args.progress,
        mininterval=2.0,
    )
    last_ckpt, last_eval = global_step, global_step
    while iteration < n_iterations and global_step < args.total_timesteps:
        if args.anneal_lr:
            optimizer.param_groups[0]["lr"] = args.learning_rate * (1.0 - iteration / n_iterations)
        for step in range(args.num_steps):
            rms.update(next_obs)
            x = rms.normalize(next_obs)
            obs_buf[step] = x
            with torch.no_grad():
                a, logp, _, v = agent.action_and_value(torch.as_tensor(x, device=device))
            a = a.cpu().numpy()
            act_buf[step], logp_buf[step], val_buf[step] = (
                a,
                logp.cpu().numpy(),
                v.cpu().numpy()[:, 0],
            )
            next_obs, reward, terminated, truncated, infos = envs.step(np.clip(a, -1.0, 1.0))
            global_step += args.num_envs
            ended = np.logical_or(terminated, truncated)
            reward = np.asarray(reward, np.float64)
            if args.norm_reward:
                returns_acc = returns_acc * args.gamma + reward
                ret_rms.update(returns_acc)
                reward = reward / np.sqrt(ret_rms.var + 1e-8)
                returns_acc[ended] = 0.0
            for i in np.flatnonzero(truncated & ~terminated):  # bootstrap a time limit
                final = rms.normalize(np.asarray(infos["final_obs"][i])[None])
                with torch.no_grad():
                    reward[i] += (
                        args.gamma * agent.value(torch.as_tensor(final, device=device)).item()
                    )
            rew_buf[step], end_buf[step] = reward, ended
            if "_episode" in infos:
                for i in np.flatnonzero(infos["_episode"]):
                    writer.add_scalar(
                        "charts/episodic_return", infos["episode"]["r"][i], global_step
                    )
                    writer.add_scalar(
                        "charts/episodic_length", infos["episode"]["l"][i], global_step
                    )
                    m = infos.get("final_info", {}).get("metrics", {})
                    if "f1" in m and m.get("_f1", np.ones(args.num_envs, bool))[i]:
                        writer.add_scalar("charts/episodic_f1", m["f1"][i], global_step)
            bar.update(args.num_envs)

        # GAE over the rollout; an episode's end cuts the chain (truncation bootstrapped above).
        with torch.no_grad():
            x_last = torch.as_tensor(rms.normalize(next_obs), device=device)
            next_value = agent.value(x_last).cpu().numpy()[:, 0]
        adv = np.zeros_like(rew_buf)
        last = np.zeros(args.num_envs, np.float32)
        for t in reversed(range(args.num_steps)):
            nv = next_value if t == args.num_steps - 1 else val_buf[t + 1]
            nonterminal = 1.0 - end_buf[t]
            delta = rew_buf[t] + args.gamma * nv * nonterminal - val_buf[t]
            last = delta + args.gamma * args.gae_lambda * nonterminal * last
            adv[t] = last
        ret = adv + val_buf

        torch.set_num_threads(args.update_threads)
        b_obs = torch.as_tensor(obs_buf.reshape(batch_size, obs_dim), device=device)
        b_act = torch.as_tensor(act_buf.reshape(batch_size, act_dim), device=device)
        b_logp = torch.as_tensor(logp_buf.reshape(-1), device=device)
        b_adv = torch.as_tensor(adv.reshape(-1), device=device)
        b_ret = torch.as_tensor(ret.reshape(-1), device=device)
        b_val = torch.as_tensor(val_buf.reshape(-1), device=device)
        clipfracs = []
        for _epoch in range(args.update_epochs):
            perm = torch.randperm(batch_size, device=device)
            for mb in perm.tensor_split(args.num_minibatches):  # sizes differ by at most 1
                _, newlogp, entropy, newv = agent.action_and_value(b_obs[mb], b_act[mb])
                logratio = newlogp - b_logp[mb]
                ratio = logratio.exp()
                with torch.no_grad():
                    approx_kl = ((ratio - 1) - logratio).mean()
                    clipfracs.append(((ratio - 1.0).abs() > args.clip_coef).float().mean().item())
                mb_adv = b_adv[mb]
                mb_adv = (mb_adv - mb_adv.mean()) / (mb_adv.std() + 1e-8)
                pg_loss = torch.max(
                    -mb_adv * ratio,
                    -mb_adv * ratio.clamp(1 - args.clip_coef, 1 + args.clip_coef),
                ).mean()
                newv = newv.view(-1)
                if args.clip_vloss:
                    v_clipped = b_val[mb] + (newv - b_val[mb]).clamp(
                        -args.clip_coef, args.clip_coef
                    )
                    v_loss = (
                        0.5
                        * torch.max((newv - b_ret[mb]) ** 2, (v_clipped - b_ret[mb]) ** 2).mean()
                    )
                else:
                    v_loss = 0.5 * ((newv - b_ret[mb]) ** 2).mean()
                loss = pg_loss - args.ent_coef * entropy.mean() + v_loss * args.vf_coef
                optimizer.zero_grad()
                loss.backward()
                torch.nn.utils.clip_grad_norm_(agent.parameters(), args.max_grad_norm)
                optimizer.step()
            if args.target_kl is not None and approx_kl > args.target_kl:
                break
        torch.set_num_threads(args.torch_threads)
        iteration += 1

        sps = (global_step - step0) / (time.perf_counter() - start)
        writer.add_scalar("charts/learning_rate", optimizer.param_groups[0]["lr"], global_step)
        writer.add_scalar("charts/SPS", sps, global_step)
        writer.add_scalar("losses/value_loss", v_loss.item(), global_step)
        writer.add_scalar("losses/policy_loss", pg_loss.item(), global_step)
        writer.add_scalar("losses/entropy", entropy.mean().item(), global_step)
        writer.add_scalar("losses/approx_kl", approx_kl.item(), global_step)
        writer.add_scalar("losses/clipfrac", float(np.mean(clipfracs)), global_step)
        out_of_time = args.max_wall_s > 0 and time.perf_counter() - start >= args.max_wall_s
        done = iteration >= n_iterations or global_step >= args.total_timesteps or out_of_time
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
