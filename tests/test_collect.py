"""pianomime_env.collection.collect: real rollouts of the sight-reader into real Minari datasets."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time

import numpy as np
import pytest

pytest.importorskip("minari")

from pianomime_env.collection import collect as collect_lib  # noqa: E402
from pianomime_env.collection.collect import collect, episode_seed, segment_bounds  # noqa: E402
from pianomime_env.envs.piano import PianoMimeEnv  # noqa: E402
from pianomime_env.music.sources import resolve_songs  # noqa: E402

SHORT = "CMajorChordProgressionTwoHands"  # 81 steps


@pytest.fixture
def minari_root(tmp_path, monkeypatch):
    root = tmp_path / "minari"
    monkeypatch.setenv("MINARI_DATASETS_PATH", str(root))
    return root


def _episodes(dataset_id):
    import minari

    ds = minari.load_dataset(dataset_id)
    meta = list(ds.storage.get_episode_metadata(ds.episode_indices))
    return ds, list(ds.iterate_episodes()), meta


def _assert_same_episodes(a_id, b_id):
    _, eps_a, meta_a = _episodes(a_id)
    _, eps_b, meta_b = _episodes(b_id)
    assert len(eps_a) == len(eps_b)
    for ea, eb, ma, mb in zip(eps_a, eps_b, meta_a, meta_b):
        np.testing.assert_array_equal(ea.actions, eb.actions)
        np.testing.assert_array_equal(ea.rewards, eb.rewards)
        for k in ea.observations:
            np.testing.assert_array_equal(ea.observations[k], eb.observations[k])
        assert ma["song"] == mb["song"] and ma["seed"] == mb["seed"]
        assert ma["metrics"]["f1"] == mb["metrics"]["f1"]


# -- pieces --------------------------------------------------------------------------------------


def test_resolve_songs(tmp_path, tiny_midi):
    midi_dir = tmp_path / "midis"
    (midi_dir / "sub").mkdir(parents=True)
    a = midi_dir / "b.mid"
    b = midi_dir / "sub" / "a.MIDI"
    a.write_bytes(tiny_midi.read_bytes())
    b.write_bytes(tiny_midi.read_bytes())
    (midi_dir / "notes.txt").write_text("not a song")
    songs = resolve_songs([SHORT, f"PianoMime-{SHORT}-v0", str(midi_dir), str(tiny_midi)])
    assert songs == [SHORT, str(a.resolve()), str(b.resolve()), str(tiny_midi.resolve())]
    assert resolve_songs([str(midi_dir)], max_songs=1) == [str(a.resolve())]
    (tmp_path / "empty").mkdir()
    with pytest.raises(ValueError, match="no .mid"):
        resolve_songs([str(tmp_path / "empty")])
    with pytest.raises(ValueError, match="empty"):
        resolve_songs([])


def test_resolve_corpus_query():
    pytest.importorskip("music21")
    from pianomime_env.music.songs import SongError

    songs = resolve_songs(["corpus:bach:bach/bwv66.6"])
    assert songs == ["music21:bach/bwv66.6"]
    with pytest.raises(SongError, match="not a training collection"):
        resolve_songs(["corpus:beethoven"])
    with pytest.raises(ValueError, match="no piece"):
        resolve_songs(["corpus:bach:nothing*"])


def test_segments_and_seeds():
    assert segment_bounds(81, None) == [(0, 81)]
    assert segment_bounds(81, 100) == [(0, 81)]
    assert segment_bounds(1200, 550) == [(0, 550), (550, 550), (1100, 100)]
    s = {episode_seed(0, SHORT, seg, k) for seg in range(3) for k in range(50)}
    assert len(s) == 150  # all distinct
    assert episode_seed(0, SHORT, 1, 2) == episode_seed(0, SHORT, 1, 2)
    assert episode_seed(0, SHORT, 0, 0) != episode_seed(1, SHORT, 0, 0)
    assert episode_seed(0, SHORT, 0, 0) != episode_seed(0, "CMajorScaleOneHand", 0, 0)


# -- a collection --------------------------------------------------------------------------------


def test_collect_two_songs_local(minari_root, tiny_midi):
    songs = [SHORT, str(tiny_midi)]
    summary = collect("pm/local-v0", songs, episodes=2, noise=0.05, workers=2)
    assert summary.failed == {} and summary.episodes_kept == summary.episodes_rolled == 4
    ds, eps, meta = _episodes("pm/local-v0")
    assert ds.total_episodes == 4 and ds.total_steps == summary.steps
    assert not (minari_root / ".pianomime-collect").exists()  # work dir gone after the commit

    env = PianoMimeEnv(SHORT, trim_silence=True)
    assert ds.observation_space == env.observation_space
    assert ds.action_space == env.action_space
    assert [m["song"] for m in meta] == [SHORT, SHORT, "tiny", "tiny"]
    assert {m["expert"] for m in meta} == {"sight-reader"}
    assert meta[0]["seed"] != meta[1]["seed"]
    # The two noisy episodes of a song differ; the clean label is stored next to the action.
    assert not np.array_equal(eps[0].actions, eps[1].actions)
    for ep, m in zip(eps, meta):
        label = ep.infos["expert_action"]
        assert label.shape == (len(ep.actions) + 1, 45) and np.isnan(label[-1]).all()
        assert 0.0 < np.abs(label[:-1] - ep.actions).mean() < 0.1
        assert ep.observations["goal"].shape == (len(ep.actions) + 1, 11, 89)
        assert ep.terminations[-1] and not ep.truncations.any()
        assert 0.0 <= m["metrics"]["f1"] <= 1.0 and m["options"]["start_step"] == 0
        assert m["return"] == pytest.approx(float(np.sum(ep.rewards)))

    # recover_environment rebuilds the env (JSON spec); song= picks another song of the dataset.
    rec = ds.recover_environment()
    assert rec.unwrapped.song.name == SHORT and rec.observation_space == env.observation_space
    assert ds.recover_environment(eval_env=True).spec.kwargs["randomize_hand_positions"] is False
    # Replaying the stored seed, reset options and actions reproduces the stored episode.
    other = ds.recover_environment(song=meta[2]["song_source"]).unwrapped
    obs, _ = other.reset(seed=meta[2]["seed"], options=meta[2]["options"])
    for t, a in enumerate(eps[2].actions):
        for k in obs:
            np.testing.assert_array_equal(obs[k], eps[2].observations[k][t])
        obs, r, term, trunc, info = other.step(a)
        assert r == eps[2].rewards[t]
    assert term and info["metrics"]["f1"] == meta[2]["metrics"]["f1"]


@pytest.mark.slow
def test_collect_ray_equals_local(minari_root, tiny_midi):
    pytest.importorskip("ray")
    songs = [SHORT, str(tiny_midi)]
    collect("local-v0", songs, episodes=2, noise=0.05, workers=1)
    summary = collect("ray-v0", songs, episodes=2, noise=0.05, workers=2, ray=True)
    assert summary.failed == {} and summary.episodes_kept == 4
    ds, _, _ = _episodes("ray-v0")
    assert ds.recover_environment().observation_space == ds.observation_space
    _assert_same_episodes("local-v0", "ray-v0")


def test_ray_missing_names_the_extra(minari_root, monkeypatch):
    monkeypatch.setitem(sys.modules, "ray", None)
    with pytest.raises(ImportError, match=r"\.\[distributed\]"):
        collect("noray-v0", [SHORT], episodes=1, ray=True)
    assert not (minari_root / "noray-v0").exists()


def test_corrupt_midi_is_reported_and_skipped(minari_root, tmp_path, capsys):
    bad = tmp_path / "corrupt.mid"
    bad.write_bytes(b"MThd\x00\x00\x00\x06garbage that is not a MIDI file")
    summary = collect("skip-v0", [str(bad), SHORT], episodes=1, workers=1)
    assert list(summary.failed) == [str(bad.resolve())]
    assert "corrupt.mid" in summary.failed[str(bad.resolve())]
    assert "skipped corrupt" in capsys.readouterr().out
    ds, _, meta = _episodes("skip-v0")
    assert [m["song"] for m in meta] == [SHORT]
    assert ds.storage.metadata["pianomime_collection"]["failed_songs"] == summary.failed


def test_filter_and_segments(minari_root):
    summary = collect("seg-v0", [SHORT], episodes=1, segment_steps=30, min_f1=0.0, workers=1)
    ds, eps, meta = _episodes("seg-v0")
    assert [(m["segment"], m["start_step"]) for m in meta] == [(0, 0), (1, 30), (2, 60)]
    assert [len(e.actions) for e in eps] == [30, 30, 21]
    assert eps[0].truncations[-1] and not eps[0].terminations.any() and eps[2].terminations[-1]
    # A segment's first goal row is the song's row at its start step.
    env = PianoMimeEnv(SHORT, trim_silence=True)
    np.testing.assert_array_equal(eps[1].observations["goal"][0, 0, :88], env.trajectory.keys[30])
    assert summary.steps == 81
    # Later segments start with the hands posed by IK (stored in the reset options): replaying
    # the stored seed, options and actions reproduces them too.
    assert "hand_qpos" not in meta[0]["options"]
    q = meta[1]["options"]["hand_qpos"]
    assert q.shape == (2, 26) and np.abs(q).max() > 0.01
    rec = ds.recover_environment().unwrapped
    obs, _ = rec.reset(seed=meta[1]["seed"], options=meta[1]["options"])
    for t, a in enumerate(eps[1].actions):
        np.testing.assert_array_equal(obs["hand_joints"], eps[1].observations["hand_joints"][t])
        obs, *_ = rec.step(a)
    collect("rest-v0", [SHORT], episodes=1, segment_steps=30, pose_segments=False, workers=1)
    _, _, rest = _episodes("rest-v0")
    assert all(set(m["options"]) == {"start_step"} for m in rest)
    # Nothing passes an impossible filter: an error, and no dataset.
    with pytest.raises(ValueError, match="no episode kept"):
        collect("none-v0", [SHORT], episodes=1, min_f1=1.0, workers=1)
    assert not (minari_root / "none-v0").exists()
    with pytest.raises(FileExistsError):
        collect("seg-v0", [SHORT], episodes=1, workers=1)


@pytest.mark.slow
def test_killed_collection_resumes_to_the_same_dataset(minari_root, tiny_midi):
    songs = [SHORT, str(tiny_midi), "TwinkleTwinkleRousseau"]
    cmd = [sys.executable, "-m", "pianomime_env.app.cli", "collect", "--dataset", "pm/resume-v0"]
    cmd += ["--songs", *songs, "--episodes", "2", "--noise", "0.05", "--workers", "1"]
    shards = minari_root / ".pianomime-collect" / "pm__resume-v0" / "shards"
    proc = subprocess.Popen(
        cmd, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True
    )
    deadline = time.monotonic() + 120
    while not list(shards.glob("*.pkl")) and proc.poll() is None and time.monotonic() < deadline:
        time.sleep(0.02)
    os.killpg(proc.pid, signal.SIGKILL)
    proc.wait()
    n_done = len(list(shards.glob("*.pkl")))
    assert 1 <= n_done < 3, "the run must be killed mid-way"
    assert not (minari_root / "pm" / "resume-v0").exists()  # nothing under the final id
    # Other settings cannot resume it.
    with pytest.raises(ValueError, match="--restart"):
        collect("pm/resume-v0", songs, episodes=3, noise=0.05, workers=1)
    summary = collect("pm/resume-v0", songs, episodes=2, noise=0.05, workers=1)
    assert summary.resumed_songs == n_done and summary.episodes_kept == 6
    collect("pm/straight-v0", songs, episodes=2, noise=0.05, workers=1)
    _assert_same_episodes("pm/resume-v0", "pm/straight-v0")


def test_cli_collect(minari_root, capsys):
    from pianomime_env.app.cli import main

    main(["collect", "--songs", SHORT, "--dataset", "cli-v0", "--episodes", "1", "--workers", "1"])
    out = capsys.readouterr().out
    assert "wrote cli-v0" in out and "1 of 1 episodes kept" in out
    with pytest.raises(SystemExit) as e:
        main(["collect", "--songs", SHORT, "--dataset", "cli-v0", "--episodes", "1"])
    assert e.value.code == 2
    assert "already exists" in capsys.readouterr().err
    with pytest.raises(SystemExit):
        main(["collect", "--songs", SHORT, "--dataset", "no version", "--episodes", "1"])
    with pytest.raises(SystemExit):
        main(["collect", "--songs", SHORT, "--dataset", "x-v0", "--expert", "nowhere/model.pt"])
    assert "unknown expert 'nowhere/model.pt'" in capsys.readouterr().err


def test_settings_are_json():
    s = collect_lib.CollectSettings(songs=(SHORT,), env_kwargs={"trim_silence": True})
    assert json.loads(s.to_json())["songs"] == [SHORT]
