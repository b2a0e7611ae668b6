"""The imitation baselines' learning math, without simulation or datasets: the diffusion
policy's windows at episode edges, a diffusion policy that overfits one window reproduces it
through DDIM, BC that overfits 64 transitions; and the shared pieces they import from
``pianomime_env.learning`` (held-out check, residual wrapper settings)."""

from __future__ import annotations

import importlib.util
import sys
from pathlib import Path

import numpy as np
import pytest

torch = pytest.importorskip("torch")

ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture(autouse=True)
def one_thread():
    """Tiny networks: one thread is fastest, and two collapse when other jobs share the cores."""
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


def load_script(name: str):
    """``baselines/<name>.py`` as a module (registered, so tyro and typing resolve its
    annotations)."""
    key = f"_baseline_{name}"
    if key not in sys.modules:
        spec = importlib.util.spec_from_file_location(key, ROOT / "baselines" / f"{name}.py")
        module = importlib.util.module_from_spec(spec)
        sys.modules[key] = module
        spec.loader.exec_module(module)
    return sys.modules[key]


# -- diffusion policy: windows ------------------------------------------------------------------


def test_window_indices_clamp_at_episode_edges():
    dp = load_script("diffusion_policy")
    # Three episodes of 3, 1 and 4 steps: rows 0-2, 3, 4-7.
    start, end = dp.episode_bounds(np.array([3, 1, 4]))
    np.testing.assert_array_equal(start, [0, 0, 0, 3, 4, 4, 4, 4])
    np.testing.assert_array_equal(end, [3, 3, 3, 4, 8, 8, 8, 8])

    rows = np.arange(8)
    obs, act = dp.window_indices(rows, start, end, to=2, tp=3)
    # Observations t-1..t, the first repeated at an episode's start (never the previous one's).
    np.testing.assert_array_equal(
        obs, [[0, 0], [0, 1], [1, 2], [3, 3], [4, 4], [4, 5], [5, 6], [6, 7]]
    )
    # Actions t..t+2, the last repeated at an episode's end (never the next one's).
    np.testing.assert_array_equal(
        act,
        [[0, 1, 2], [1, 2, 2], [2, 2, 2], [3, 3, 3], [4, 5, 6], [5, 6, 7], [6, 7, 7], [7, 7, 7]],
    )
    # Longer horizons than the episode: every index stays inside it.
    obs, act = dp.window_indices(np.array([3, 5]), start, end, to=3, tp=5)
    np.testing.assert_array_equal(obs, [[3, 3, 3], [4, 4, 5]])
    np.testing.assert_array_equal(act, [[3, 3, 3, 3, 3], [5, 6, 7, 7, 7]])


def test_offset_windows_are_relative_to_the_planning_step():
    dp = load_script("diffusion_policy")
    start, end = dp.episode_bounds(np.array([2, 2]))
    y = np.arange(4 * 31, dtype=np.float32).reshape(4, 31)
    tips = 100.0 * np.arange(4 * 30, dtype=np.float32).reshape(4, 30)
    ts = dp.TrainingSet(np.zeros((4, 1), np.float32), y, start, end, tips=tips)
    rows = np.array([1, 2])
    _, ai = dp.window_indices(rows, start, end, 1, 3)
    w = ts.windows(rows, ai)
    assert w.shape == (2, 3, 31)
    # Row 1 is its episode's last: its window repeats row 1, relative to row 1's fingertips.
    np.testing.assert_allclose(w[0, :, :30], np.repeat(y[1:2, :30] - tips[1], 3, axis=0))
    np.testing.assert_allclose(w[1, :, :30], y[[2, 3, 3], :30] - tips[2])
    np.testing.assert_array_equal(w[:, :, 30], y[ai, 30])  # the sustain stays absolute


# -- diffusion policy: the objective and DDIM ---------------------------------------------------


@pytest.mark.slow  # 300 U-Net steps: 4-9 s on 2 shared cores (fewer leave samples 0.2-0.5 off)
def test_diffusion_policy_overfit_on_one_window_reproduces_it_through_ddim():
    """The script's DDPM objective on one (window, condition) pair; DDIM sampling from fresh
    noise then lands on that window."""
    pytest.importorskip("diffusers")
    dp = load_script("diffusion_policy")
    from pianomime_env.learning.generalist import build_actor, make_ddim, make_ddpm, sample_actions

    torch.manual_seed(0)
    window = torch.tensor([[-0.8, 0.5], [-0.2, 0.1], [0.4, -0.3], [0.7, -0.6]])  # (Tp=4, A=2)
    cond = torch.tensor([[0.3, -0.5, 0.9]])
    config = {"act_dim": 2, "cond_in": 3, "down_dims": [16], "kernel_size": 3, "n_groups": 4}
    model = build_actor("unet", config | {"step_embed": 16, "obs_embed": 16})
    settings = dp.scheduler_settings(dp.Args(diffusion_steps=100))  # the script's schedule
    ddpm = make_ddpm(settings)
    opt = torch.optim.Adam(model.parameters(), lr=5e-3)
    actions, conds = window.expand(128, 4, 2), cond.expand(128, 3)
    losses = []
    for _ in range(300):
        loss = dp.diffusion_loss(torch, model, ddpm, actions, conds)
        opt.zero_grad()
        loss.backward()
        opt.step()
        losses.append(loss.item())
    # Epsilon regression starts at the noise's variance (~1) and ends near 0.
    assert losses[0] > 0.5 and np.mean(losses[-20:]) < 0.05
    model.eval()
    generator = torch.Generator().manual_seed(0)
    samples = torch.cat(
        [sample_actions(model, make_ddim(settings), cond, 4, 2, 10, generator) for _ in range(3)]
    )
    assert samples.shape == (3, 4, 2)
    error = (samples - window).abs()
    assert error.mean() < 0.05 and error.max() < 0.15, error  # three noises, one window
    # Untrained, the same sampler gives something else (the check above can fail).
    untrained = build_actor("unet", config | {"step_embed": 16, "obs_embed": 16}).eval()
    other = sample_actions(untrained, make_ddim(settings), cond, 4, 2, 10, generator)
    assert (other[0] - window).abs().mean() > 0.2


# -- behaviour cloning ------------------------------------------------------------------------


def test_bc_overfits_64_transitions():
    bc = load_script("bc")
    rng = np.random.default_rng(0)
    x = rng.normal(3.0, 2.0, (64, 12)).astype(np.float32)  # raw features: z-scored by BC
    y = rng.uniform(-1, 1, (64, 5)).astype(np.float32)
    args = bc.Args(size="3x256", batch_size=64, learning_rate=2e-3, seed=0)
    learner = bc.BC(torch, args, bc.TrainingSet(x, y))
    assert learner.config == {"in_dim": 12, "hidden": [256] * 3, "out_dim": 5, "activation": "gelu"}
    start = torch.nn.functional.mse_loss(torch.as_tensor(learner.predict(x)), torch.as_tensor(y))
    for _ in range(150):
        losses = learner.step()
    assert learner.global_step == 150
    mse = float(np.mean((learner.predict(x) - y) ** 2))
    assert start.item() > 0.2 and mse < 1e-3 and losses["train_loss"].item() < 1e-3
    np.testing.assert_allclose(learner.predict(x), y, atol=0.05)


def test_bc_two_level_predicts_in_target_units():
    """Level 1's targets are z-scored for training; predict() maps them back (metres), and
    level 2 fits its own labels on the same minibatches."""
    bc = load_script("bc")
    rng = np.random.default_rng(1)
    x = rng.normal(0, 1, (64, 6)).astype(np.float32)
    y = np.concatenate([rng.normal(0.5, 0.01, (64, 30)), rng.uniform(-1, 1, (64, 1))], 1)
    low_x = rng.normal(0, 1, (64, 8)).astype(np.float32)
    low_y = rng.uniform(-1, 1, (64, 3)).astype(np.float32)
    args = bc.Args(two_level=True, batch_size=64, learning_rate=2e-3, low_learning_rate=2e-3)
    ts = bc.TrainingSet(x, y.astype(np.float32), low_x, low_y, ["hand_joints", "fingertips"])
    learner = bc.BC(torch, args, ts)
    for _ in range(150):
        losses = learner.step()
    assert set(losses) == {"train_loss", "low_loss"}
    assert losses["train_loss"].item() < 0.05 and losses["low_loss"].item() < 1e-2
    # In metres (targets spread 0.01 m around 0.5 m): unnormalized, within a fraction of it.
    err = np.abs(learner.predict(x) - y)
    assert err[:, :30].mean() < 1.5e-3 and err[:, :30].max() < 0.01 and err[:, 30].max() < 0.2
    with torch.no_grad():
        low = learner.low_model(torch.as_tensor(learner.low_norm.normalize(low_x))).numpy()
    assert np.abs(low - low_y).mean() < 0.03 and np.abs(low - low_y).max() < 0.25
    entry = learner.policy_checkpoint()["low_level"]
    assert entry["keys"] == ["hand_joints", "fingertips"] and entry["act_dim"] == 3


# -- shared pieces ----------------------------------------------------------------------------


def test_residual_wrapper_config_is_the_one_bc_wrote():
    from pianomime_env.learning.runs import residual_wrapper_config

    assert residual_wrapper_config(False, 0.02) == {"residual": False}
    # The dict baselines/bc.py built itself before the helper (checkpoints rely on it).
    assert residual_wrapper_config(True, 0.05) == {
        "residual": True,
        "residual_scale": 0.05,
        "sustain": "score",
        "n_demo_frames": 4,
        "nominal": "sight-reader",
    }
    bc, dp = load_script("bc"), load_script("diffusion_policy")
    args = bc.Args(residual=True, residual_scale=0.05)
    assert bc.wrapper_config(args) == residual_wrapper_config(True, 0.05)
    assert dp.wrapper_config(dp.Args(residual=True, residual_scale=0.05)) == bc.wrapper_config(args)


def test_check_heldout_refuses_training_songs_by_name_and_label():
    from pianomime_env.learning.evaluation import HELDOUT_SONGS, check_heldout

    check_heldout(list(HELDOUT_SONGS), ["CMajorScaleOneHand", "music21:bach/bwv1.6"])
    with pytest.raises(SystemExit, match="in the training dataset"):
        check_heldout(["TwinkleTwinkleLittleStar", "CMajorScaleOneHand"], ["CMajorScaleOneHand"])
    # A corpus song given as music21:<path> and as its label are the same song.
    with pytest.raises(SystemExit, match=r"\['bach/bwv66.6'\]"):
        check_heldout(["bach/bwv66.6"], ["music21:bach/bwv66.6"])
    with pytest.raises(SystemExit, match="songs/a.mid"):
        check_heldout(["songs/a.mid"], ["other/a.mid"])  # the same file stem


def test_scripts_do_not_import_each_other():
    import ast

    scripts = {p.stem for p in (ROOT / "baselines").glob("*.py")}
    for path in (ROOT / "baselines").glob("*.py"):
        src = path.read_text()
        assert "sys.path.insert" not in src, path.name
        for node in ast.walk(ast.parse(src)):
            if isinstance(node, ast.Import):
                names = [a.name.split(".")[0] for a in node.names]
            elif isinstance(node, ast.ImportFrom) and node.level == 0:
                names = [(node.module or "").split(".")[0]]
            else:
                continue
            assert not set(names) & scripts, f"{path.name} imports {set(names) & scripts}"
