"""The learning math of baselines/ppo.py and baselines/droq.py on hand-built inputs, against
values worked out by hand (each well under a second; no simulation)."""

from __future__ import annotations

import importlib.util
from pathlib import Path

import gymnasium as gym
import numpy as np
import pytest

ROOT = Path(__file__).resolve().parents[1]


def _script(name: str):
    spec = importlib.util.spec_from_file_location(
        f"baseline_{name}", ROOT / "baselines" / f"{name}.py"
    )
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


ppo = _script("ppo")
droq = _script("droq")


def test_gae_with_a_truncation_and_a_termination():
    """4 steps, one env, gamma 0.9, lambda 0.8. Step 1 is cut by a time limit (the value of its
    final observation, 4, is bootstrapped into its reward); step 3 ends the song (no bootstrap;
    the next value 7 must be ignored)."""
    gamma, lam = 0.9, 0.8
    terminated = np.array([[0], [0], [0], [1]], bool)
    truncated = np.array([[0], [1], [0], [0]], bool)
    raw = np.array([[1.0], [2.0], [0.0], [3.0]])
    rewards = np.stack(
        [
            ppo.bootstrap_truncations(raw[t], terminated[t], truncated[t], lambda i: 4.0, gamma)
            for t in range(4)
        ]
    ).astype(np.float32)
    assert rewards[:, 0] == pytest.approx([1.0, 2.0 + 0.9 * 4.0, 0.0, 3.0])
    values = np.array([[0.5], [1.0], [1.0], [2.0]], np.float32)
    ends = (terminated | truncated).astype(np.float32)
    adv, ret = ppo.gae(rewards, values, ends, np.array([7.0], np.float32), gamma, lam)
    # By hand, backwards: A3 = 3 - 2 = 1; A2 = (0 + .9*2 - 1) + .72*A3 = 1.52;
    # A1 = 5.6 - 1 = 4.6 (the chain is cut); A0 = (1 + .9*1 - .5) + .72*A1 = 4.712.
    assert adv[:, 0] == pytest.approx([4.712, 4.6, 1.52, 1.0], abs=1e-5)
    assert ret[:, 0] == pytest.approx([5.212, 5.6, 2.52, 3.0], abs=1e-5)


def test_no_bootstrap_when_an_episode_terminates_at_its_time_limit():
    out = ppo.bootstrap_truncations(
        np.array([1.0, 1.0]), np.array([True, False]), np.array([True, True]), lambda i: 10.0, 0.5
    )
    assert out == pytest.approx([1.0, 6.0])


class _Counter(gym.Env):
    """obs = the step count; episodes of 2 steps, truncated."""

    observation_space = gym.spaces.Box(-np.inf, np.inf, (1,), np.float32)
    action_space = gym.spaces.Box(-1, 1, (1,), np.float32)

    def reset(self, *, seed=None, options=None):
        super().reset(seed=seed)
        self.t = 0
        return np.array([0.0], np.float32), {}

    def step(self, action):
        self.t += 1
        return np.array([float(self.t)], np.float32), 1.0, False, self.t == 2, {}


def test_same_step_final_obs_substitution_on_a_real_vector_env():
    envs = gym.vector.SyncVectorEnv(
        [_Counter, _Counter], autoreset_mode=gym.vector.AutoresetMode.SAME_STEP
    )
    obs, _ = envs.reset(seed=0)
    a = np.zeros((2, 1), np.float32)
    obs, *_ = envs.step(a)
    assert obs[:, 0] == pytest.approx([1.0, 1.0])
    next_obs, _, terminated, truncated, infos = envs.step(a)
    ended = terminated | truncated
    assert ended.all() and next_obs[:, 0] == pytest.approx([0.0, 0.0])  # already reset
    real = droq.real_next_obs(next_obs, ended, infos)
    assert real[:, 0] == pytest.approx([2.0, 2.0])  # the episode's real last observation
    assert next_obs[:, 0] == pytest.approx([0.0, 0.0])  # left untouched
    envs.close()


def test_droq_td_target_on_a_fixed_batch():
    torch = pytest.importorskip("torch")

    class Actor:
        def sample(self, obs):
            return torch.zeros(len(obs), 1), torch.tensor([0.5, -1.0, 2.0])

    def target(obs, act):  # two Q-functions, (2, B)
        return torch.tensor([[1.0, 2.0, 3.0], [1.5, 0.5, 4.0]])

    batch = {
        "next_obs": torch.zeros(3, 2),
        "rew": torch.tensor([1.0, 0.0, -1.0]),
        "term": torch.tensor([0.0, 1.0, 0.0]),
    }
    y = droq.td_target(torch, target, Actor(), batch, alpha=torch.tensor(0.2), gamma=0.5)
    # min Q: [1.0, 0.5, 3.0]; minus alpha*logp: [0.9, 0.7, 2.6]; terminated row 1 keeps r only.
    assert y.tolist() == pytest.approx([1.0 + 0.5 * 0.9, 0.0, -1.0 + 0.5 * 2.6])


def test_learning_rate_schedule_survives_a_resume_with_a_larger_total():
    base = 1e-3
    fresh = ppo.resumed_schedule(None, base, 0, 10)
    assert ppo.annealed_lr(base, fresh, 0) == pytest.approx(base)
    assert ppo.annealed_lr(base, fresh, 5) == pytest.approx(base * 0.5)
    same = ppo.resumed_schedule(fresh, base, 5, 10)  # resumed with the same total: unchanged
    assert [ppo.annealed_lr(base, same, i) for i in (5, 7, 10)] == pytest.approx(
        [ppo.annealed_lr(base, fresh, i) for i in (5, 7, 10)]
    )
    longer = ppo.resumed_schedule(fresh, base, 5, 20)  # twice the total, resumed halfway
    rates = [ppo.annealed_lr(base, longer, i) for i in range(5, 21)]
    assert rates[0] == pytest.approx(base * 0.5)  # no jump back up to the base rate
    assert rates[-1] == pytest.approx(0.0, abs=1e-12)
    assert all(a >= b for a, b in zip(rates, rates[1:]))
    assert ppo.annealed_lr(base, longer, 12) == pytest.approx(base * 0.5 * (8 / 15))


def _fill(buffer, start: int, n: int) -> None:
    for i in range(start, start + n):
        x = np.full((1, buffer.obs.shape[1]), float(i), np.float32)
        buffer.add(x, np.full((1, buffer.act.shape[1]), float(i)), [float(i)], x + 0.5, [0.0])


def test_replay_buffer_resumed_into_a_larger_capacity_continues_in_order(tmp_path):
    """The saved buffer of a finished run is full and wrapped; a resume with a larger
    --total-timesteps loads it into a larger buffer: new transitions go after the stored ones
    and nothing sampled is a never-written row."""
    small = droq.ReplayBuffer(100, 3, 2)
    _fill(small, 1, 150)  # wrapped: holds transitions 51..150, the oldest at ptr 50
    assert small.size == 100 and small.ptr == 50
    small.save(tmp_path / "replay-150.npz", 150)
    big = droq.ReplayBuffer(200, 3, 2)
    big.load(tmp_path / "replay-150.npz", 150)
    assert big.size == 100 and big.ptr == 100
    assert big.rew[:100].tolist() == list(range(51, 151))
    _fill(big, 151, 10)
    assert big.size == 110 and big.rew[:110].tolist() == list(range(51, 161))
    assert (big.obs[:110] > 0).all()  # no all-zero (never written) rows in the sampled range
    batch = big.sample(np.random.default_rng(0), 1000)
    assert (batch["rew"] > 0).all()
    smaller = droq.ReplayBuffer(40, 3, 2)  # a smaller one keeps the newest
    smaller.load(tmp_path / "replay-150.npz", 150)
    assert smaller.rew.tolist() == list(range(111, 151)) and smaller.ptr == 0
    with pytest.raises(SystemExit, match="from step 150"):
        big.load(tmp_path / "replay-150.npz", 151)


def test_replay_buffer_reads_the_old_storage_order_file(tmp_path):
    """Buffers saved before the chronological format (rows in storage order plus ``ptr``)."""
    fields = {f: np.zeros((4, 1), np.float32) for f in ("obs", "next_obs", "act")}
    rew = np.array([5, 6, 3, 4], np.float32)  # wrapped: oldest (3) at ptr 2
    np.savez(
        tmp_path / "old.npz", ptr=2, size=4, global_step=7, rew=rew, term=np.zeros(4), **fields
    )
    buffer = droq.ReplayBuffer(8, 1, 1)
    buffer.load(tmp_path / "old.npz", 7)
    assert buffer.rew[:4].tolist() == [3, 4, 5, 6] and buffer.ptr == 4


class _ThreeSteps(_Counter):
    def step(self, action):
        self.t += 1
        return np.array([float(self.t)], np.float32), 1.0, self.t == 3, False, {}


def test_episode_statistics_count_every_same_step_episode():
    """Gymnasium before 1.4 under-reported every SAME_STEP episode after the first by one
    step; the baselines log these statistics, so the floor is 1.4 (pyproject.toml)."""
    envs = gym.wrappers.vector.RecordEpisodeStatistics(
        gym.vector.SyncVectorEnv(
            [_ThreeSteps, _ThreeSteps], autoreset_mode=gym.vector.AutoresetMode.SAME_STEP
        )
    )
    envs.reset(seed=0)
    returns = []
    for _ in range(9):
        *_, infos = envs.step(np.zeros((2, 1), np.float32))
        if infos.get("_episode", np.zeros(2, bool)).any():
            returns.append(infos["episode"]["r"].tolist())
    assert returns == [[3.0, 3.0]] * 3
    envs.close()
