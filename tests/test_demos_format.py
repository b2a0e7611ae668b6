"""Demonstration file format: round trip and every validation error."""

from __future__ import annotations

import numpy as np
import pytest

from pianomime_env.demos import FORMAT_VERSION, Demonstration, DemonstrationError

T = 6


def _demo(**over) -> Demonstration:
    rng = np.random.default_rng(0)
    kw = dict(
        fingertips=rng.normal(size=(T, 2, 5, 3)).astype(np.float32),
        wrists=rng.normal(size=(T, 2, 3)).astype(np.float32),
        fingering=np.full((T, 88), -1, np.int8),
        control_timestep=0.05,
        song_name="song",
        source="score:planner-v1",
    )
    kw["fingering"][2, 40] = 7
    kw.update(over)
    return Demonstration(**kw)


def _write(path, **fields) -> None:
    d = _demo()
    base = dict(
        fingertips=d.fingertips,
        wrists=d.wrists,
        fingering=d.fingering,
        control_timestep=np.float64(0.05),
        song_name=np.str_("song"),
        source=np.str_("src"),
        version=np.int64(FORMAT_VERSION),
    )
    base.update(fields)
    np.savez(path, **{k: v for k, v in base.items() if v is not None})


def test_round_trip(tmp_path):
    d = _demo()
    p = tmp_path / "d.npz"
    d.save(p)
    e = Demonstration.load(p, expected_steps=T, control_timestep=0.05)
    assert e.n_steps == T and e.song_name == "song" and e.source == "score:planner-v1"
    np.testing.assert_array_equal(e.fingertips, d.fingertips)
    np.testing.assert_array_equal(e.wrists, d.wrists)
    np.testing.assert_array_equal(e.fingering, d.fingering)
    assert e.fingering.dtype == np.int8 and e.fingertips.dtype == np.float32
    assert not list(tmp_path.glob(".*tmp"))  # atomic write leaves no temporary file


@pytest.mark.parametrize(
    "fields, match",
    [
        (dict(wrists=None), "missing field"),
        (dict(fingertips=np.zeros((T, 2, 4, 3), np.float32)), "fingertips.*shape"),
        (dict(wrists=np.zeros((T, 3), np.float32)), "wrists.*shape"),
        (dict(fingertips=np.zeros((T, 2, 5, 3), np.float64)), "float32"),
        (dict(fingering=np.zeros((T, 88), np.int32)), "int8"),
        (dict(fingering=np.zeros((T, 87), np.int8)), r"fingering.*\(T, 88\)"),
        (dict(fingering=np.full((T, 88), 10, np.int8)), "-1..9"),
        (dict(wrists=np.full((T, 2, 3), np.nan, np.float32)), "NaN"),
        (dict(fingertips=np.full((T, 2, 5, 3), np.inf, np.float32)), "NaN or inf"),
        (dict(version=np.int64(99)), "version.*99.*expected 1"),
        (dict(wrists=np.zeros((T + 1, 2, 3), np.float32)), "disagree"),
        (dict(control_timestep=np.float64(-1.0)), "control_timestep"),
        (dict(song_name=np.zeros(3)), "song_name"),
    ],
)
def test_load_errors(tmp_path, fields, match):
    p = tmp_path / "bad.npz"
    _write(p, **fields)
    with pytest.raises(DemonstrationError, match=match) as e:
        Demonstration.load(p)
    assert str(p) in str(e.value)


def test_length_and_rate_mismatch(tmp_path):
    p = tmp_path / "d.npz"
    _demo().save(p)
    with pytest.raises(DemonstrationError, match=f"{T} steps, expected {T + 1}"):
        Demonstration.load(p, expected_steps=T + 1)
    with pytest.raises(DemonstrationError, match="control_timestep.*0.05.*expected 0.02"):
        Demonstration.load(p, control_timestep=0.02)


def test_missing_and_non_npz(tmp_path):
    with pytest.raises(DemonstrationError, match="does not exist"):
        Demonstration.load(tmp_path / "nope.npz")
    junk = tmp_path / "junk.npz"
    junk.write_bytes(b"not a zip at all")
    with pytest.raises(DemonstrationError, match="junk.npz"):
        Demonstration.load(junk)
    npy = tmp_path / "arr.npz"
    with open(npy, "wb") as f:
        np.save(f, np.zeros(3))
    with pytest.raises(DemonstrationError, match="npz"):
        Demonstration.load(npy)


def test_constructor_validates():
    with pytest.raises(DemonstrationError, match="-1..9"):
        _demo(fingering=np.full((T, 88), -2, np.int8))
    with pytest.raises(DemonstrationError, match="version"):
        _demo(version=2)
