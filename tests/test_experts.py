"""pianomime_env.collection.experts: the sight-reader, checkpoints, and per-song residual experts."""

from __future__ import annotations

import hashlib
import shutil
from pathlib import Path

import numpy as np
import pytest

from pianomime_env.collection.experts import ExpertError, expert_label, make_expert
from pianomime_env.control.sightreader import SightReader
from pianomime_env.envs.piano import PianoMimeEnv

SHORT = "CMajorChordProgressionTwoHands"


def test_sight_reader_expert_is_the_sight_reader():
    env = PianoMimeEnv(SHORT, trim_silence=True)
    obs, _ = env.reset(seed=0)
    expert = make_expert("sight-reader", env)
    reference = SightReader(env)
    for _ in range(5):
        a = expert(obs)
        np.testing.assert_array_equal(a, reference(obs))
        obs, *_ = env.step(a)


def test_lookahead_expert_plays_an_episode():
    from pianomime_env.control.lookahead import LookaheadSightReader

    env = PianoMimeEnv(SHORT, trim_silence=True)
    expert = make_expert("sight-reader-lookahead", env)
    assert isinstance(expert, LookaheadSightReader)
    assert expert_label("sight-reader-lookahead") == "sight-reader-lookahead"
    obs, _ = env.reset(seed=0)
    expert.reset()
    for _ in range(12):
        a = expert(obs)
        assert env.action_space.contains(a)
        obs, *_ = env.step(a)
    assert expert.choices and expert.choices[0][0] == 0


def test_unknown_expert_and_missing_checkpoint(tmp_path):
    env = PianoMimeEnv(SHORT)
    with pytest.raises(ExpertError, match="unknown expert 'oracle'"):
        make_expert("oracle", env)
    with pytest.raises(ExpertError, match="needs the song"):
        make_expert("residual-ppo", env)
    assert expert_label("sight-reader") == "sight-reader"
    assert expert_label(str(tmp_path / "x" / ".." / "m.pt")) == str((tmp_path / "m.pt").resolve())


@pytest.mark.slow
def test_residual_ppo_expert_trains_then_its_checkpoint_is_an_expert(tmp_path, monkeypatch):
    """residual-ppo trains per song with baselines/ppo.py (2048 steps), is reused on a rerun,
    and the saved model.pt, given as a PATH expert, plays the same episodes."""
    pytest.importorskip("torch")
    pytest.importorskip("minari")
    from pianomime_env.collection.collect import collect
    from pianomime_env.learning.datasets import episode_metadata, load_dataset

    monkeypatch.setenv("MINARI_DATASETS_PATH", str(tmp_path / "minari"))
    work = tmp_path / "work"
    kw = dict(episodes=1, workers=1, work_dir=work, keep_work_dir=True, expert_timesteps=2048)
    s = collect("res-v0", [SHORT], expert="residual-ppo", **kw)
    assert s.failed == {} and s.episodes_kept == 1
    (model,) = list(work.glob("experts/residual-ppo/*/model.pt"))
    stamp = model.stat().st_mtime_ns
    ckpt = collect("ckpt-v0", [SHORT], expert=str(model), episodes=1, workers=1)
    assert ckpt.failed == {}
    a, b = load_dataset("res-v0")[0], load_dataset("ckpt-v0")[0]
    np.testing.assert_array_equal(a.actions, b.actions)
    assert episode_metadata("ckpt-v0")[0]["expert"] == str(Path(model).resolve())
    settings = load_dataset("ckpt-v0").storage.metadata["pianomime_collection"]["settings"]
    assert settings["expert_sha1"] == hashlib.sha1(model.read_bytes()).hexdigest()
    assert episode_metadata("res-v0")[0]["expert"] == "residual-ppo"
    # A finished expert is reused, not retrained (the rollouts are redone: no shards left).
    shutil.rmtree(work / "shards")
    again = collect("res2-v0", [SHORT], expert="residual-ppo", **kw)
    assert again.resumed_songs == 0 and again.failed == {}
    assert model.stat().st_mtime_ns == stamp
    np.testing.assert_array_equal(load_dataset("res2-v0")[0].actions, a.actions)
