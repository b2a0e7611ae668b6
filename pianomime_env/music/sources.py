"""Song specs -> songs: the one place that knows every way a user can name a song.

- :func:`load_song`: one song from a built-in name, a name given to :func:`register_song`, a
  ``.mid`` / ``.midi`` / song ``.json`` path, ``"music21:<corpus path>"`` or a :class:`Song`.
- :func:`resolve_songs`: a list of specs (the above, plus directories of MIDI files, env ids
  ``PianoMime-<song>-v0`` and corpus queries ``corpus:<collection>[:<glob>]``) expanded into
  song arguments, in order, without duplicates; used by the multi-song env and collection.
- :func:`register_song` / :func:`registered_songs`: the process-wide name registry.
"""

from __future__ import annotations

import difflib
import fnmatch
import os
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from pianomime_env.music.corpus import corpus_pieces, from_music21_corpus
from pianomime_env.music.songs import (
    BUILTIN_SONGS,
    MIDI_SUFFIXES,
    MUSIC21_PREFIX,
    SONG_NAME_RE,
    PathLike,
    Song,
    SongError,
    check_shift,
    check_song_length,
    check_stretch,
    load_builtin,
    load_midi,
    load_song_json,
)

__all__ = ["load_song", "register_song", "registered_songs", "resolve_songs", "song_label"]


_REGISTRY: dict[str, str | Song] = {}


def register_song(name: str, source: PathLike | Song) -> None:
    """Register ``name`` so that ``load_song(name)`` loads ``source``.

    ``name`` must be letters, digits, ``_`` or ``-`` and must not be a built-in name;
    ``source`` is anything :func:`load_song` accepts (it is loaded once to validate it).
    Re-registering a name replaces the previous entry.
    """
    if not isinstance(name, str) or not SONG_NAME_RE.match(name):
        raise SongError(
            f"song name must be non-empty and contain only letters, digits, '_' or '-', "
            f"got {name!r}"
        )
    if name in BUILTIN_SONGS:
        raise SongError(f"song name {name!r} is a built-in song and cannot be re-registered")
    if isinstance(source, Song):
        entry: str | Song = source
    elif isinstance(source, (str, os.PathLike)):
        entry = os.fspath(source)
    else:
        raise SongError(
            f"register_song({name!r}): source must be a path, name, music21 spec or Song, "
            f"got {type(source).__name__}"
        )
    load_song(entry)  # validate
    _REGISTRY[name] = entry


def registered_songs() -> dict[str, str | Song]:
    """A copy of the registry (name -> path / spec / Song) of :func:`register_song`."""
    return dict(_REGISTRY)


def _unknown_name(name: str) -> SongError:
    known = list(BUILTIN_SONGS) + sorted(_REGISTRY)
    close = difflib.get_close_matches(name, known, n=3, cutoff=0.5)
    lower = [k for k in known if k.lower() == name.lower() and k not in close]
    close = lower + close
    hint = f" Did you mean {', '.join(repr(c) for c in close)}?" if close else ""
    return SongError(
        f"unknown song {name!r}.{hint} Available: {', '.join(known)}; or pass a .mid/.midi "
        f"path or 'music21:<corpus path>'."
    )


def load_song(source: PathLike | Song, *, stretch: float = 1.0, shift: int = 0) -> Song:
    """Load a song and apply tempo stretch and transposition (like ``robopianist.music.load``).

    Args:
        source: a built-in name (:data:`BUILTIN_SONGS`), a name given to
            :func:`register_song`, a ``.mid`` / ``.midi`` (or song ``.json``) path, a
            :class:`Song`, or ``"music21:<corpus path>"`` (needs the ``corpus`` extra).
        stretch: time factor, > 1 slower. Must be finite and > 0.
        shift: transposition in semitones (an integer); notes leaving the keyboard are
            dropped with a warning.

    Raises:
        SongError: unknown name (with suggestions), bad file, bad parameters, or a result
            longer than :data:`MAX_SONG_SECONDS`.
    """
    where = source.source if isinstance(source, Song) else str(source)
    stretch = check_stretch(stretch, where)
    shift = check_shift(shift, where)
    song = _resolve(source, set())
    return check_song_length(song.stretch(stretch).transpose(shift), song.source)


def _resolve(source: Any, seen: set) -> Song:
    if isinstance(source, Song):
        return source
    if not isinstance(source, (str, os.PathLike)):
        raise SongError(
            f"song source must be a name, path, 'music21:<corpus path>' or Song, "
            f"got {type(source).__name__}"
        )
    s = os.fspath(source)
    if isinstance(s, bytes):  # pragma: no cover
        s = s.decode()
    if s.startswith(MUSIC21_PREFIX):
        return from_music21_corpus(s[len(MUSIC21_PREFIX) :])
    if s in BUILTIN_SONGS:
        return load_builtin(s)
    if s in _REGISTRY:
        if s in seen:
            raise SongError(f"song name {s!r} is registered as an alias of itself")
        return _resolve(_REGISTRY[s], seen | {s})
    p = Path(s)
    suffix = p.suffix.lower()
    if suffix in MIDI_SUFFIXES:
        return load_midi(p)
    if suffix == ".json":
        if not p.is_file():
            raise SongError(f"{s}: song file not found")
        return check_song_length(load_song_json(p), s)
    if p.is_file():
        raise SongError(
            f"{s}: unsupported song file extension {p.suffix!r} (expected .mid, .midi or .json)"
        )
    if os.sep in s or (os.altsep and os.altsep in s) or suffix:
        raise SongError(f"{s}: song file not found")
    raise _unknown_name(s)


def resolve_songs(specs: Sequence[str], max_songs: int | None = None) -> list[str]:
    """Expands song specs into env song arguments, in order, without duplicates.

    Each spec is a built-in or registered song name, a MIDI file, a directory (its ``.mid`` /
    ``.midi`` files, recursively, sorted), ``music21:<corpus path>``, or a corpus query
    ``corpus:<collection>[:<glob>]`` over a *training* collection of
    :func:`pianomime_env.music.corpus.corpus_pieces` (e.g. ``corpus:bach:bach/bwv2*``). MIDI paths
    become absolute. Songs are not loaded here: a bad one fails (and is skipped) at collection.
    """
    out: list[str] = []
    for spec in specs:
        spec = str(spec).strip()
        if not spec:
            continue
        p = Path(spec).expanduser()
        if spec.startswith("corpus:"):
            collection, _, pattern = spec[len("corpus:") :].partition(":")
            pieces = corpus_pieces(collection)
            if pattern:
                pieces = [x for x in pieces if fnmatch.fnmatchcase(x, pattern)]
                if not pieces:
                    raise ValueError(f"{spec}: no piece of {collection!r} matches {pattern!r}")
            out.extend(f"music21:{x}" for x in pieces)
        elif p.is_dir():
            files = sorted(
                f for f in p.rglob("*") if f.is_file() and f.suffix.lower() in MIDI_SUFFIXES
            )
            if not files:
                raise ValueError(f"{spec}: directory holds no .mid / .midi files")
            out.extend(str(f.resolve()) for f in files)
        elif p.suffix.lower() in MIDI_SUFFIXES or p.is_file():
            out.append(str(p.resolve()))
        elif spec.startswith("PianoMime-") and spec.endswith("-v0"):
            out.append(spec[len("PianoMime-") : -len("-v0")])
        else:
            out.append(spec)
    out = list(dict.fromkeys(out))
    if max_songs is not None:
        out = out[: int(max_songs)]
    if not out:
        raise ValueError("no songs to collect: --songs is empty")
    return out


def song_label(song: str) -> str:
    """A short display name of a song argument (file stem, corpus path, or the name)."""
    if song.startswith("music21:"):
        return song[len("music21:") :]
    p = Path(song)
    return p.stem if p.suffix.lower() in MIDI_SUFFIXES else song
