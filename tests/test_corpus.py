"""Songs from music21's corpus: training collections only, lazy music21, clear errors."""

from __future__ import annotations

import sys

import numpy as np
import pytest

from pianomime_env import corpus, songs
from pianomime_env.songs import SongError, load_song


def test_music21_missing_gives_install_hint(monkeypatch):
    monkeypatch.setitem(sys.modules, "music21", None)
    with pytest.raises(ImportError, match=r"pip install \"pianomime-env\[corpus\]\""):
        corpus.from_music21_corpus("bach/bwv66.6")
    with pytest.raises(ImportError, match="corpus"):
        load_song("music21:bach/bwv66.6")


def test_names_stay_reachable_from_songs():
    assert songs.from_music21_corpus is corpus.from_music21_corpus
    assert songs.corpus_pieces is corpus.corpus_pieces
    assert "bach" in songs.TRAINING_CORPUS_COLLECTIONS
    with pytest.raises(AttributeError):
        songs.no_such_name  # noqa: B018


def test_music21_chorale():
    pytest.importorskip("music21")
    song = load_song("music21:bach/bwv66.6")
    assert song.source == "music21:bach/bwv66.6"
    assert song.n_notes > 100 and 10 < song.duration < 60
    assert not song.has_fingering
    traj = song.to_trajectory(0.05)
    assert traj.keys.sum() > 0
    assert np.median(traj.keys.sum(axis=1)) == 4  # four voices


def test_music21_folk_and_listing():
    pytest.importorskip("music21")
    bach = corpus.corpus_pieces("bach")
    assert "bach/bwv66.6" in bach and len(bach) > 300
    folk = corpus.corpus_pieces("essenFolksong")
    assert len(folk) > 1000 and all("#" in p for p in folk[:50])
    song = corpus.from_music21_corpus(folk[0])
    assert song.n_notes > 5
    assert load_song(f"music21:{folk[0]}", stretch=2.0).duration == pytest.approx(2 * song.duration)
    for reserved in ["beethoven", "mozart", "chopin", "joplin"]:
        with pytest.raises(SongError, match="generalization"):
            corpus.corpus_pieces(reserved)
    with pytest.raises(SongError, match="music21:no/such/piece"):
        load_song("music21:no/such/piece")
