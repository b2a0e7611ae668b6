"""Learning curves (evaluation F1 and note-onset F1 vs env steps) from run directories.

    .venv/bin/python baselines/plot_curves.py runs/a runs/b --labels "residual PPO" "PPO" \
        --out docs/learning-curves.png

Reads each run's ``summary.json`` (its ``evals`` list: one deterministic full-song episode every
``--eval-every`` steps, written by ``ppo.py`` / ``droq.py``) and draws both metrics per run.
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass, field
from pathlib import Path

import tyro


@dataclass
class Args:
    runs: tyro.conf.Positional[list[Path]]
    """Run directories (each with a summary.json)."""
    labels: list[str] = field(default_factory=list)
    """A legend label per run (default: the directory names)."""
    out: Path = Path("runs/learning-curves.png")
    """Output PNG."""
    title: str = ""
    """Figure title."""
    target: float = 0.95
    """A horizontal line at this F1 (0: none)."""
    ylim: tuple[float, float] = (0.0, 1.0)
    """Range of both y axes (e.g. 0.8 1.0 to see residual runs that start at the nominal)."""


def main(args: Args) -> Path:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    labels = list(args.labels) or [r.name for r in args.runs]
    if len(labels) != len(args.runs):
        raise SystemExit(f"{len(args.runs)} runs but {len(labels)} labels")
    fig, axes = plt.subplots(1, 2, figsize=(11, 4), sharex=True)
    for run, label in zip(args.runs, labels):
        path = run / "summary.json"
        if not path.is_file():
            raise SystemExit(f"{path}: missing (not a run directory, or no checkpoint yet)")
        evals = json.loads(path.read_text())["evals"]
        steps = [e["global_step"] for e in evals]
        for ax, key in zip(axes, ("f1", "note_f1")):
            ax.plot(steps, [e[key] for e in evals], marker="o", ms=3, label=label)
    for ax, name in zip(axes, ("per-step F1 (RoboPianist)", "note-onset F1")):
        if args.target > 0 and name.startswith("per-step"):
            ax.axhline(args.target, color="gray", ls="--", lw=1, label=f"target {args.target}")
        ax.set_xlabel("env steps")
        ax.set_ylabel(name)
        ax.set_ylim(*args.ylim)
        ax.grid(alpha=0.3)
    axes[0].legend(fontsize=8)
    if args.title:
        fig.suptitle(args.title, fontsize=10)
    fig.tight_layout()
    args.out.parent.mkdir(parents=True, exist_ok=True)
    tmp = args.out.with_name(args.out.stem + ".tmp.png")
    fig.savefig(tmp, dpi=110)
    plt.close(fig)
    os.replace(tmp, args.out)
    print(f"wrote {args.out}")
    return args.out


if __name__ == "__main__":
    main(tyro.cli(Args))
