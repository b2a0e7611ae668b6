"""Songs from music21's corpus: training collections only, lazy music21, clear errors."""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np
import pytest

from pianomime_env.music import corpus, songs
from pianomime_env.music.songs import SongError
from pianomime_env.music.sources import load_song


def test_music21_missing_gives_install_hint(monkeypatch):
    monkeypatch.setitem(sys.modules, "music21", None)
    with pytest.raises(ImportError, match=r"pip install \"pianomime-env\[corpus\]\""):
        corpus.from_music21_corpus("bach/bwv66.6")
    with pytest.raises(ImportError, match="corpus"):
        load_song("music21:bach/bwv66.6")


def test_songs_does_not_import_the_corpus():
    # songs is below corpus (corpus builds Songs); the spec resolver imports both.
    import ast

    tree = ast.parse(Path(songs.__file__).read_text())
    imported = {n.module for n in ast.walk(tree) if isinstance(n, ast.ImportFrom) and n.module}
    assert not any(m.endswith("corpus") or m.endswith("sources") for m in imported)


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
