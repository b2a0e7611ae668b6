"""Evaluate a policy on a set of songs: RoboPianist F1 and note-onset F1, one row per song.

    .venv/bin/python baselines/evaluate.py --songs CMajorScaleOneHand TwinkleTwinkleLittleStar
    .venv/bin/python baselines/evaluate.py --suite builtin --policy sight-reader --out runs/eval
    .venv/bin/python baselines/evaluate.py --suite heldout     # chorales + folk tunes never tuned on
    .venv/bin/python baselines/evaluate.py --songs TwinkleTwinkleRousseau --policy runs/<run>/model.pt
    .venv/bin/python baselines/evaluate.py --suite all --ray-address head:6379   # on a Ray cluster

Songs are built-in names, MIDI paths or ``music21:<corpus path>`` (corpus extra). Writes
``results.json`` and ``results.md`` (a Markdown table with the command line) to ``--out``.
Episodes run in parallel worker processes (``--workers``), or as Ray tasks on a cluster
(``--ray-address``; one CPU each, named ``evaluate_song[i] <song>``; the distributed extra).
"""

import json
import os
import shlex
import sys
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal

import tyro

from pianomime_env.learning.evaluation import HELDOUT_SONGS, evaluate_song


@dataclass
class Args:
    songs: list[str] = field(default_factory=list)
    """Songs to play (names, MIDI paths, music21:<path>); overrides --suite."""
    suite: Literal["builtin", "heldout", "all"] = "builtin"
    """builtin: RoboPianist's 8 songs; heldout: HELDOUT_SONGS; all: both."""
    policy: str = "sight-reader"
    """sight-reader, sight-reader-lookahead, random, idle, or a checkpoint (a model.pt of baselines/ppo.py or droq.py, or
    its run directory; loaded by pianomime_env.learning.policies.load_policy)."""
    max_seconds: float = 30.0
    """Play at most this much of each song (0 = whole song); keeps corpus pieces short."""
    trim_silence: bool = True
    """Drop leading/trailing silence (otherwise silent steps inflate per-step F1)."""
    seed: int = 0
    workers: int = max(1, min(2, os.cpu_count() or 1))
    ray_address: str | None = None
    """Evaluate the songs as Ray tasks on this cluster (`auto`, `head:6379`) instead of local
    worker processes (a lost worker or node is retried; docs/datasets.md)."""
    out: Path | None = None
    """Directory for results.json and results.md."""


def markdown_table(rows: list[dict]) -> str:
    lines = [
        "| song | steps | F1 | precision | recall | note-onset F1 | note P | note R |",
        "|---|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for r in rows:
        lines.append(
            f"| {r['song']} | {r['steps']} | {r['f1']:.3f} | {r['precision']:.3f} | "
            f"{r['recall']:.3f} | {r['note_f1']:.3f} | {r['note_precision']:.3f} | "
            f"{r['note_recall']:.3f} |"
        )
    if rows:
        mean = {k: sum(r[k] for r in rows) / len(rows) for k in ("f1", "note_f1")}
        lines.append(f"| **mean** | | **{mean['f1']:.3f}** | | | **{mean['note_f1']:.3f}** | | |")
    return "\n".join(lines)


def _evaluate_task(*job, progress_position=None) -> dict:
    return evaluate_song(*job)


def _evaluate_on_ray(jobs: list[tuple], address: str) -> list[dict]:
    """One Ray task per song through the collection's fan-out (infrastructure failures
    retried); the rows in the songs' order."""
    from pianomime_env.collection.fanout import run_tasks

    names = {i: f"evaluate_song[{i}] {job[0]}" for i, job in enumerate(jobs)}
    results = dict(run_tasks(_evaluate_task, list(enumerate(jobs)), address=address, names=names))
    return [results[i] for i in range(len(jobs))]


def one_torch_thread() -> None:
    """Worker initializer: one torch intra-op thread. Each worker plays one song on one core;
    a second thread only waits for a core another worker holds (a 3x256 BC policy: 6.7 ms per
    call with torch's default 2 threads on the loaded 2-core VM, 0.3 ms with one)."""
    os.environ["OMP_NUM_THREADS"] = "1"  # read when torch is imported (after this, lazily)
    if "torch" in sys.modules:
        sys.modules["torch"].set_num_threads(1)


def _evaluate_locally(jobs: list[tuple], workers: int) -> list[dict | BaseException]:
    """Each song in a worker process; a song that fails comes back as its exception."""
    with ProcessPoolExecutor(max_workers=workers, initializer=one_torch_thread) as pool:
        futures = [pool.submit(evaluate_song, *job) for job in jobs]
        out: list[dict | BaseException] = []
        for future in futures:
            try:
                out.append(future.result())
            except Exception as exc:  # a bad song (unreadable MIDI, ...) must not stop the rest
                out.append(exc)
    return out


def _split(jobs: list[tuple], results: list) -> tuple[list[dict], dict[str, str]]:
    rows = [r for r in results if not isinstance(r, BaseException)]
    failed = {
        job[0]: f"{type(r).__name__}: {r}"
        for job, r in zip(jobs, results)
        if isinstance(r, BaseException)
    }
    return rows, failed


def main(args: Args) -> list[dict]:
    from pianomime_env.music.songs import BUILTIN_SONGS

    songs = (
        list(args.songs)
        or {
            "builtin": list(BUILTIN_SONGS),
            "heldout": list(HELDOUT_SONGS),
            "all": list(BUILTIN_SONGS) + list(HELDOUT_SONGS),
        }[args.suite]
    )
    jobs = [(s, args.policy, args.max_seconds, args.trim_silence, args.seed) for s in songs]
    if args.ray_address:
        results = _evaluate_on_ray(jobs, args.ray_address)
    else:
        results = _evaluate_locally(jobs, args.workers)
    rows, failed = _split(jobs, results)
    table = markdown_table(rows)
    print(table)
    for song, reason in failed.items():
        print(f"evaluate.py: not evaluated: {song}: {reason}", file=sys.stderr)
    if args.out is not None:
        args.out.mkdir(parents=True, exist_ok=True)
        command = "python " + " ".join(
            shlex.quote(a) for a in ["baselines/evaluate.py"] + sys.argv[1:]
        )
        (args.out / "results.json").write_text(
            json.dumps({"command": command, "rows": rows, "failed": failed}, indent=2)
        )
        notes = "".join(f"\n- not evaluated: {song}: {reason}" for song, reason in failed.items())
        (args.out / "results.md").write_text(f"`{command}`\n\n{table}\n{notes}\n")
        print(f"wrote {args.out / 'results.md'}")
    if failed:
        raise SystemExit(f"evaluate.py: {len(failed)} of {len(jobs)} songs not evaluated")
    return rows


if __name__ == "__main__":
    main(tyro.cli(Args))
