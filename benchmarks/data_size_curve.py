"""Held-out F1 of flat BC against the size of its dataset: a data-size curve.

    export MINARI_DATASETS_PATH=$PWD/runs/minari
    .venv/bin/python benchmarks/data_size_curve.py --dataset pianomime/scale-sr-v0 \
        --sizes 30000 100000 300000 0 --seeds 0 1 --total-steps 30000 --out runs/size_curve

For each dataset size and seed, ``baselines/bc.py --dataset-steps SIZE`` (0: the whole dataset)
trains on a fixed random subset of the dataset's episodes (nested: every smaller subset lies
inside the larger ones, so the curve adds data and changes nothing else), the same number of
gradient steps at every size; then ``baselines/evaluate.py`` plays the checkpoint on the
held-out chorales / folk tunes (``--suite heldout``: first 30 s, trimmed, seed 0,
deterministic) and on ``--train-songs`` (default: four of the dataset's own songs, spread over
its song list), as does the sight-reader (the dataset's teacher) once. Each step is skipped when its output exists (a killed run resumes with
``bc.py --resume``), so rerunning the command finishes what is missing. Writes
``rows.json``, ``curve.md`` (a Markdown table) and ``curve.png`` (held-out and training-song
F1 against dataset steps, one line per seed) to ``--out``.
"""

from __future__ import annotations

import json
import subprocess
import sys
from dataclasses import dataclass, field
from pathlib import Path

import tyro

ROOT = Path(__file__).resolve().parents[1]


@dataclass
class Args:
    dataset: str = "pianomime/scale-sr-v0"
    """Minari id of a `pianomime collect` dataset (in $MINARI_DATASETS_PATH)."""
    sizes: list[int] = field(default_factory=lambda: [30_000, 100_000, 300_000, 0])
    """Dataset sizes in env steps (0: the whole dataset)."""
    seeds: list[int] = field(default_factory=lambda: [0, 1])
    """Training seeds (bc.py --seed) per size."""
    total_steps: int = 30_000
    """Gradient steps per run, the same at every size."""
    bc_args: list[str] = field(default_factory=list)
    """More bc.py flags for every run (e.g. --size 3x1024)."""
    train_songs: list[str] = field(default_factory=list)
    """Training songs to evaluate on too (default: four of the dataset's, spread over it)."""
    heldout_songs: list[str] = field(default_factory=list)
    """Held-out songs (default: evaluate.py's --suite heldout; never a training song)."""
    max_seconds: float = 30.0
    """Play at most this much of each evaluation song (evaluate.py --max-seconds)."""
    workers: int = 1
    """evaluate.py worker processes."""
    out: Path = Path("runs/size_curve")
    """Directory of the runs and the curve."""


def run(cmd: list[str]) -> None:
    print("+", " ".join(cmd), flush=True)
    proc = subprocess.run(cmd, cwd=ROOT)
    if proc.returncode != 0:
        raise SystemExit(f"data_size_curve.py: {cmd[1]} failed (exit {proc.returncode})")


def default_train_songs(dataset: str, n: int = 4) -> list[str]:
    from pianomime_env.learning.datasets import episode_metadata

    songs = list(dict.fromkeys(str(m["song_source"]) for m in episode_metadata(dataset)))
    return [songs[i * len(songs) // n] for i in range(min(n, len(songs)))]


def train(args: Args, size: int, seed: int, run_dir: Path) -> dict:
    summary = run_dir / "summary.json"
    if summary.is_file() and (done := json.loads(summary.read_text())).get("final"):
        return done
    bc = [sys.executable, "baselines/bc.py"]
    if (run_dir / "resume.pt").is_file():
        run([*bc, "--resume", str(run_dir)])
    else:
        cmd = [*bc, "--dataset", args.dataset, "--seed", str(seed)]
        cmd += ["--total-steps", str(args.total_steps), "--eval-every", "0", "--no-progress"]
        cmd += ["--run-dir", str(run_dir), *args.bc_args]
        if args.heldout_songs:  # bc.py refuses a training song among them
            cmd += ["--eval-songs", *args.heldout_songs]
        run(cmd + (["--dataset-steps", str(size)] if size else []))
    return json.loads(summary.read_text())


def evaluate(args: Args, policy: str, out: Path, songs: list[str]) -> dict:
    """Mean F1, note-onset F1 and seconds per control step of ``policy`` on ``songs`` (empty:
    evaluate.py's held-out suite), from ``out/results.json`` (written by evaluate.py when missing)."""
    if not (out / "results.json").is_file():
        cmd = [sys.executable, "baselines/evaluate.py", "--policy", policy]
        cmd += ["--workers", str(args.workers), "--max-seconds", str(args.max_seconds)]
        run([*cmd, "--out", str(out), *(["--songs", *songs] if songs else ["--suite", "heldout"])])
    rows = json.loads((out / "results.json").read_text())["rows"]
    mean = {k: sum(r[k] for r in rows) / len(rows) for k in ("f1", "note_f1", "seconds_per_step")}
    return {"songs": {r["song"]: round(r["f1"], 4) for r in rows}, **mean}


def plot(rows: list[dict], teacher: dict, path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(6.4, 4.0))
    for seed in sorted({r["seed"] for r in rows}):
        mine = sorted((r for r in rows if r["seed"] == seed), key=lambda r: r["steps"])
        x = [r["steps"] for r in mine]
        ax.plot(x, [r["heldout_f1"] for r in mine], "o-", label=f"held-out, seed {seed}")
        ax.plot(x, [r["train_f1"] for r in mine], "s--", label=f"training songs, seed {seed}")
    ax.axhline(teacher["heldout"]["f1"], color="k", lw=1, label="sight-reader, held-out")
    ax.axhline(
        teacher["train_songs"]["f1"], color="k", ls=":", lw=1, label="sight-reader, training"
    )
    ax.set_xscale("log")
    ax.set_xlabel("dataset size (env steps)")
    ax.set_ylabel("F1 (mean over songs)")
    ax.set_ylim(0, 1)
    ax.grid(alpha=0.3)
    ax.legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)


def main(args: Args) -> list[dict]:
    args.out.mkdir(parents=True, exist_ok=True)
    train_songs = args.train_songs or default_train_songs(args.dataset)
    held_songs = list(args.heldout_songs)
    # The teacher (the dataset's expert) on the same songs, for the ratios.
    teacher = {
        "heldout": evaluate(args, "sight-reader", args.out / "teacher" / "heldout", held_songs),
        "train_songs": evaluate(args, "sight-reader", args.out / "teacher" / "train", train_songs),
    }
    rows = []
    for size in args.sizes:
        for seed in args.seeds:
            run_dir = args.out / f"n{size or 'all'}_s{seed}"
            summary = train(args, size, seed, run_dir)
            model = str(run_dir / "model.pt")
            held = evaluate(args, model, run_dir / "heldout", held_songs)
            trained = evaluate(args, model, run_dir / "train_songs", train_songs)
            rows.append(
                {
                    "size": size,
                    "seed": seed,
                    "steps": summary["dataset"]["steps"],
                    "episodes": summary["dataset"]["episodes"],
                    "songs": summary["dataset"]["songs"],
                    "gradient_steps": summary["global_step"],
                    "train_s": summary["train_s"],
                    "heldout_f1": held["f1"],
                    "heldout_note_f1": held["note_f1"],
                    "train_f1": trained["f1"],
                    "train_note_f1": trained["note_f1"],
                    "ms_per_step": 1000 * held["seconds_per_step"],
                }
            )
    record = {"train_songs": train_songs, "teacher": teacher, "rows": rows}
    (args.out / "rows.json").write_text(json.dumps(record, indent=1))
    lines = [
        "| dataset steps | episodes | songs | seed | gradient steps | train s | held-out F1 / "
        "note-onset F1 | training songs F1 / note-onset F1 | ms per step |",
        "|---:|---:|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for r in rows:
        lines.append(
            f"| {r['steps']:,} | {r['episodes']} | {r['songs']} | {r['seed']} | "
            f"{r['gradient_steps']:,} | {r['train_s']:.0f} | {r['heldout_f1']:.3f} / "
            f"{r['heldout_note_f1']:.3f} | {r['train_f1']:.3f} / {r['train_note_f1']:.3f} | "
            f"{r['ms_per_step']:.1f} |"
        )
    th, tt = teacher["heldout"], teacher["train_songs"]
    lines.append(
        f"| sight-reader (teacher) | | | | | | {th['f1']:.3f} / {th['note_f1']:.3f} | "
        f"{tt['f1']:.3f} / {tt['note_f1']:.3f} | {1000 * th['seconds_per_step']:.1f} |"
    )
    table = "\n".join(lines)
    (args.out / "curve.md").write_text(f"training songs: {', '.join(train_songs)}\n\n{table}\n")
    plot(rows, teacher, args.out / "curve.png")
    print(table)
    print(f"wrote {args.out / 'curve.md'} and {args.out / 'curve.png'}")
    return rows


if __name__ == "__main__":
    main(tyro.cli(Args))
