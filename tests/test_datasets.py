"""pianomime_env.learning.datasets: loading collected Minari datasets, info, and atomic writing."""

from __future__ import annotations

import numpy as np
import pytest

pytest.importorskip("minari")

from pianomime_env.collection.collect import collect  # noqa: E402
from pianomime_env.envs.piano import PianoMimeEnv  # noqa: E402
from pianomime_env.learning.datasets import (  # noqa: E402
    check_observation_layout,
    dataset_info,
    episode_metadata,
    load_dataset,
    load_transitions,
    load_windows,
    write_dataset,
)

SHORT = "CMajorChordProgressionTwoHands"


@pytest.fixture(scope="module")
def dataset(tmp_path_factory, tiny_midi_module):
    root = tmp_path_factory.mktemp("minari")
    mp = pytest.MonkeyPatch()
    mp.setenv("MINARI_DATASETS_PATH", str(root))
    collect("pm/data-v0", [SHORT, str(tiny_midi_module)], episodes=2, noise=0.05, workers=1)
    yield "pm/data-v0"
    mp.undo()


@pytest.fixture(scope="module")
def tiny_midi_module(tmp_path_factory):
    import pretty_midi

    pm = pretty_midi.PrettyMIDI()
    piano = pretty_midi.Instrument(program=0)
    for pitch, start, end in [(60, 0.0, 0.5), (64, 0.5, 1.0), (67, 1.0, 1.5)]:
        piano.notes.append(pretty_midi.Note(velocity=80, pitch=pitch, start=start, end=end))
    pm.instruments.append(piano)
    path = tmp_path_factory.mktemp("midi") / "tiny3.mid"
    pm.write(str(path))
    return path


def test_transitions_match_the_env_layout(dataset):
    ds = load_dataset(dataset)
    meta = episode_metadata(ds)
    tr = load_transitions(dataset)
    steps = [m["total_steps"] for m in meta]
    assert tr.observations.shape == (sum(steps), 1150) and tr.observations.dtype == np.float32
    assert tr.actions.shape == (sum(steps), 45) and np.isfinite(tr.actions).all()
    assert tr.keys == ("goal", "piano_state", "sustain_state", "hand_joints", "fingertips")
    np.testing.assert_array_equal(tr.step[: steps[0]], np.arange(steps[0]))
    assert list(np.unique(tr.episode)) == [0, 1, 2, 3]
    # Row 0 is PianoMimeEnv(flatten=True)'s first observation of the same seed.
    flat = PianoMimeEnv(SHORT, trim_silence=True, flatten=True)
    obs0, _ = flat.reset(seed=meta[0]["seed"], options=meta[0]["options"])
    np.testing.assert_array_equal(tr.observations[0], obs0)
    # Labels: the clean expert action by default, the executed (noisy) one on request.
    ep0 = ds[0]
    np.testing.assert_array_equal(tr.actions[: steps[0]], ep0.infos["expert_action"][:-1])
    executed = load_transitions(dataset, labels="executed")
    np.testing.assert_array_equal(executed.actions[: steps[0]], ep0.actions)
    assert not np.array_equal(executed.actions, tr.actions)
    np.testing.assert_array_equal(executed.rewards[: steps[0]], ep0.rewards)
    with pytest.raises(ValueError, match="labels"):
        load_transitions(dataset, labels="noisy")


def test_windows(dataset):
    tr = load_transitions(dataset)
    w = load_windows(dataset, obs_horizon=2, action_horizon=8)
    n = len(tr.actions)
    assert w.observations.shape == (n, 2, 1150) and w.actions.shape == (n, 8, 45)
    first = np.flatnonzero(tr.step == 0)
    # Episode starts repeat their first observation; otherwise the previous step.
    np.testing.assert_array_equal(w.observations[first, 0], tr.observations[first])
    np.testing.assert_array_equal(w.observations[5, 0], tr.observations[4])
    np.testing.assert_array_equal(w.observations[:, 1], tr.observations)
    np.testing.assert_array_equal(w.actions[:, 0], tr.actions)
    np.testing.assert_array_equal(w.actions[3, 7], tr.actions[10])
    # The last step of an episode repeats its last action, never the next episode's.
    last = first[1] - 1
    assert (w.actions[last] == tr.actions[last]).all()
    with pytest.raises(ValueError, match="obs_horizon"):
        load_windows(dataset, 0, 8)


def test_layout_checked_against_the_env(dataset):
    keys = check_observation_layout(dataset, PianoMimeEnv(SHORT))
    assert keys[0] == "goal"
    with pytest.raises(ValueError, match="'goal'"):
        check_observation_layout(dataset, PianoMimeEnv(SHORT, n_steps_lookahead=5))
    with pytest.raises(ValueError, match="hand_velocities"):
        load_transitions(dataset, env=PianoMimeEnv(SHORT, joint_velocities=True))
    with pytest.raises(ValueError, match="Dict"):
        check_observation_layout(dataset, PianoMimeEnv(SHORT, flatten=True))


def test_info_and_histogram(dataset, tmp_path):
    meta = episode_metadata(dataset)
    info = dataset_info(dataset, histogram=tmp_path / "f1.png")
    assert info["songs"] == 2 and info["episodes"] == 4
    assert info["episodes_per_song"] == {SHORT: 2, "tiny3": 2}
    assert info["steps"] == sum(m["total_steps"] for m in meta)
    assert info["f1"]["mean"] == pytest.approx(np.mean([m["metrics"]["f1"] for m in meta]))
    assert info["size_bytes"] > 1000 * info["steps"]  # the goal alone is 3.9 kB a step
    assert info["experts"] == ["sight-reader"] and info["failed_songs"] == {}
    png = (tmp_path / "f1.png").read_bytes()
    assert png[:8] == b"\x89PNG\r\n\x1a\n" and len(png) > 5000


def test_cli_dataset_info(dataset, tmp_path, capsys):
    from pianomime_env.app.cli import main

    main(["dataset", "info", dataset, "--histogram", str(tmp_path / "h.png")])
    out = capsys.readouterr().out
    assert "2 songs, 4 episodes" in out and "bytes/step" in out and "F1 mean" in out
    assert (tmp_path / "h.png").is_file()
    with pytest.raises(SystemExit) as e:
        main(["dataset", "info", "pm/missing-v0"])
    assert e.value.code == 2 and "no Minari dataset 'pm/missing-v0'" in capsys.readouterr().err


def test_write_is_all_or_nothing(dataset):
    ds = load_dataset(dataset)
    ep = ds[0]
    meta = episode_metadata(ds)[0]
    good = {
        "seed": meta["seed"],
        "options": meta["options"],
        "observations": ep.observations,
        "actions": ep.actions,
        "rewards": ep.rewards,
        "terminations": ep.terminations,
        "truncations": ep.truncations,
        "infos": ep.infos,
        "metadata": {"song": meta["song"], "metrics": {"f1": meta["metrics"]["f1"]}},
    }

    def batches():
        yield [good]
        raise RuntimeError("worker crashed mid-write")

    from pianomime_env.learning.datasets import datasets_root

    with pytest.raises(RuntimeError, match="mid-write"):
        write_dataset("pm/partial-v0", batches(), env_spec=ds.env_spec)
    root = datasets_root()
    assert not (root / "pm" / "partial-v0").exists()
    assert not (root / ".pianomime-staging").exists()
    path = write_dataset("pm/copy-v0", iter([[good]]), env_spec=ds.env_spec)
    assert path == root / "pm" / "copy-v0"
    copy = episode_metadata("pm/copy-v0")[0]
    assert copy["metrics"]["f1"] == meta["metrics"]["f1"] and copy["seed"] == meta["seed"]
    np.testing.assert_array_equal(load_dataset("pm/copy-v0")[0].actions, ep.actions)
    with pytest.raises(FileExistsError):
        write_dataset("pm/copy-v0", iter([[good]]), env_spec=ds.env_spec)
