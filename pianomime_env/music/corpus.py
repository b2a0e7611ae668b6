"""Songs from music21's bundled corpus (the ``corpus`` extra).

For multi-song training use only the Bach chorales and the folk collections
(:data:`TRAINING_CORPUS_COLLECTIONS`); every other composer of the corpus is reserved for
evaluating generalization, and :func:`corpus_pieces` refuses to list them. Pieces load as
``load_song("music21:<corpus path>")`` or :func:`from_music21_corpus`. music21 is imported only
when a corpus function is called.
"""

from __future__ import annotations

import warnings
from typing import Any

from pianomime_env.extras import require
from pianomime_env.music.songs import (
    MUSIC21_PREFIX,
    Song,
    SongError,
    check_song_length,
    song_from_midi_bytes,
)

__all__ = ["TRAINING_CORPUS_COLLECTIONS", "corpus_pieces", "from_music21_corpus"]

#: music21 corpus collections that may be used for training. Every other composer in the
#: music21 corpus (Beethoven, Mozart, Haydn, Chopin, Joplin, Palestrina, Monteverdi, ...)
#: is reserved for generalization evaluation and is not listed by :func:`corpus_pieces`.
TRAINING_CORPUS_COLLECTIONS: tuple[str, ...] = (
    "bach",
    "essenFolksong",
    "ryansMammoth",
    "oneills1850",
    "nottingham-dataset",
)
_COLLECTION_ALIASES = {"nottingham": "nottingham-dataset"}

_CORPUS_HINT = 'music21 is needed for corpus songs: pip install "pianomime-env[corpus]"'


def _import_music21() -> Any:
    return require("music21", _CORPUS_HINT)


def from_music21_corpus(path: str) -> Song:
    """Convert a piece of music21's bundled corpus to a :class:`Song`.

    ``path`` is a corpus path such as ``"bach/bwv66.6"`` (a chorale; all voices are
    played) or, for a file holding many tunes, ``"<file>#<number>"`` such as
    ``"essenFolksong/ballad10#1"`` (without ``#`` the first tune is used). Timing comes
    from music21's MIDI export (its tempo marks, else 120 quarter notes per minute);
    fingering is unknown. Use :func:`corpus_pieces` to list the training pieces.

    Raises:
        ImportError: music21 is not installed (``pip install "pianomime-env[corpus]"``).
        SongError: the piece does not exist or has no playable notes.
    """
    if not isinstance(path, str) or not path.strip():
        raise SongError(f"music21 corpus path must be a non-empty string, got {path!r}")
    music21 = _import_music21()
    where = f"{MUSIC21_PREFIX}{path}"
    corpus_path, _, number = path.partition("#")
    kwargs = {}
    if number:
        if not number.isdigit():
            raise SongError(f"{where}: tune number after '#' must be an integer, got {number!r}")
        kwargs["number"] = int(number)
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            obj = music21.corpus.parse(corpus_path, **kwargs)
    except Exception as e:
        raise SongError(
            f"{where}: cannot load from the music21 corpus ({type(e).__name__}: {e})"
        ) from None
    if obj is None:
        raise SongError(f"{where}: no such piece in the music21 corpus")
    if isinstance(obj, music21.stream.Opus):
        scores = list(obj.scores)
        if not scores:
            raise SongError(f"{where}: the corpus file holds no scores")
        obj = scores[0]
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            data = music21.midi.translate.music21ObjectToMidiFile(obj).writestr()
    except Exception as e:
        raise SongError(f"{where}: cannot convert to MIDI ({type(e).__name__}: {e})") from None
    song = song_from_midi_bytes(bytes(data), path, where, where)
    return check_song_length(song, where)


def corpus_pieces(collection: str) -> list[str]:
    """List the pieces of a *training* collection of music21's corpus.

    ``collection`` is one of :data:`TRAINING_CORPUS_COLLECTIONS`: ``"bach"`` (the Bach
    chorales), the folk collections ``"essenFolksong"``, ``"ryansMammoth"``,
    ``"oneills1850"``, and ``"nottingham-dataset"`` (alias ``"nottingham"``) where
    music21 ships it. Every other composer of the corpus is reserved for generalization
    evaluation and is refused here. Returns paths accepted by :func:`from_music21_corpus`
    (``"bach/bwv66.6"``, ``"essenFolksong/ballad10#1"``), sorted.
    """
    coll = _COLLECTION_ALIASES.get(collection, collection)
    if coll not in TRAINING_CORPUS_COLLECTIONS:
        raise SongError(
            f"corpus collection {collection!r} is not a training collection; use one of "
            f"{', '.join(TRAINING_CORPUS_COLLECTIONS)} (other composers are reserved for "
            f"generalization evaluation)"
        )
    music21 = _import_music21()
    bundle = music21.corpus.corpora.CoreCorpus().metadataBundle
    # MetadataBundle has no __iter__ (iterating it is O(n^2), ~15 s); read its dict.
    entries = getattr(bundle, "_metadataEntries", None)
    entries = list(entries.values()) if isinstance(entries, dict) else list(bundle)
    by_file: dict[str, list[str]] = {}
    for entry in entries:
        sp = str(entry.sourcePath).replace("\\", "/")
        if not sp.startswith(coll + "/"):
            continue
        by_file.setdefault(sp, [])
        if entry.number is not None:
            by_file[sp].append(str(entry.number))
    out: list[str] = []
    for sp, numbers in by_file.items():
        base = sp.rsplit(".", 1)[0]
        if numbers:
            out.extend(f"{base}#{n}" for n in numbers)
        else:
            out.append(base)
    return sorted(set(out))
