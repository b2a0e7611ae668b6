"""The ``pianomime`` command.

pianomime play <song id | name | MIDI path> --out DIR   # one episode: metrics.json + performance.mp4
pianomime bench                                          # throughput vs RoboPianist and raw MuJoCo
pianomime songs                                          # list the built-in songs
pianomime collect --songs A B --episodes K --dataset ns/name-v0   # expert episodes -> Minari
pianomime dataset info ns/name-v0                        # songs, episodes, F1 histogram, size
pianomime demo {from-midi,from-video,build-hand-model,plot}  # demonstrations from a score / video
"""

from __future__ import annotations

import os
import sys

# Headless machines render with EGL unless the user chose a backend; decided before mujoco loads.
if sys.platform.startswith("linux") and not os.environ.get("DISPLAY"):
    os.environ.setdefault("MUJOCO_GL", "egl")

import dataclasses  # noqa: E402
import json  # noqa: E402
from dataclasses import dataclass  # noqa: E402
from pathlib import Path  # noqa: E402
from typing import Annotated, Literal  # noqa: E402

import tyro  # noqa: E402


@dataclass
class Play:
    """Play one episode of a song; write DIR/metrics.json, DIR/pianoroll.png, DIR/performance.mp4
    (with the sound of the keys played) and DIR/target.wav (the score's sound)."""

    song: Annotated[str, tyro.conf.Positional, tyro.conf.arg(metavar="SONG")]
    """A built-in song name (see `pianomime songs`), a gym id `PianoMime-<name>-v0`, or a MIDI path."""
    out: Path = Path("runs/play")
    """Output directory (created)."""
    policy: str = "sight-reader-lookahead"
    """`sight-reader-lookahead` (default: plans the score and plays it by IK, choosing its gains
    every half second by simulating ahead; no training), `sight-reader` (the same without the
    look-ahead, ~10x cheaper per step: the nominal of residual RL), `random`, `idle`, or a path
    to a trained checkpoint."""
    video: bool = True
    """Write performance.mp4 (needs offscreen GL: EGL or OSMesa); its sound needs the audio extra
    and libfluidsynth3. Without them the metrics are still written and a note says what to add."""
    width: int = 1024
    """Video frame width in pixels (a multiple of 8)."""
    height: int = 576
    """Video frame height in pixels (a multiple of 8)."""
    camera: str = "back"
    """Camera: back, closeup, left, right, egocentric or topdown."""
    seed: int = 0
    """Reset seed of the env (and of the `random` policy)."""
    stretch: float = 1.0
    """Tempo factor (> 1 is slower)."""
    trim_silence: bool = True
    """Drop the song's leading and trailing silence (silent steps inflate per-step F1); every
    note of every track is kept."""
    audio: bool = True
    """Synthesize sound (the audio extra + libfluidsynth3): the video's audio track of the keys
    played, DIR/target.wav (the score) and, with --no-video, DIR/performance.wav."""


@dataclass
class Bench:
    """Measure steps/s of this env vs RoboPianist (Shimmy) vs raw mj_step, and start-up costs."""

    song: str = "TwinkleTwinkleRousseau"
    """The song whose env is timed (a built-in name, gym id or MIDI path)."""
    steps: int = 300
    """Env steps per timing run."""
    runs: int = 3
    """Timing runs; the median is reported."""
    vector: bool = True
    """Also time sync vs async vector envs (2 workers)."""
    out: Path | None = None
    """Optional JSON file for the results."""


@dataclass
class Songs:
    """List the built-in and registered songs."""

    format: Literal["text", "json"] = "text"
    """One name per line, or a JSON list."""


@dataclass
class DemoFromMidi:
    """Plan a demonstration (fingering + fingertip and wrist trajectories) from a score."""

    song: Annotated[str, tyro.conf.Positional, tyro.conf.arg(metavar="SONG")]
    """A built-in song name, a gym id, or a MIDI path."""
    output: Annotated[Path, tyro.conf.arg(aliases=("-o",))] = Path("demo.npz")
    """Where to write the demonstration (.npz)."""
    control_timestep: float = 0.05
    """Seconds per demonstration frame (the env's control step: 0.05 s = 20 Hz)."""
    plot: bool = True
    """Also write a PNG plot next to the file."""


@dataclass
class DemoFromVideo:
    """Turn a video of a pianist (+ its MIDI) into a demonstration (needs the `video` extra)."""

    video: Annotated[Path, tyro.conf.Positional, tyro.conf.arg(metavar="VIDEO")]
    """The video of a pianist (any format OpenCV reads)."""
    midi: Path
    """The MIDI file of the performance in the video."""
    output: Annotated[Path, tyro.conf.arg(aliases=("-o",))] = Path("demo.npz")
    """Where to write the demonstration (.npz)."""
    hand_model: Path | None = None
    """MediaPipe hand_landmarker.task (default: the one built by `pianomime demo build-hand-model`)."""
    control_timestep: float = 0.05
    """Seconds per demonstration frame (the env's control step: 0.05 s = 20 Hz)."""
    plot: bool = True
    """Also write a PNG plot next to the file."""


@dataclass
class DemoBuildHandModel:
    """Build MediaPipe's hand_landmarker.task offline from the models inside the mediapipe 0.10.21 wheel."""

    output: Annotated[Path | None, tyro.conf.arg(aliases=("-o",))] = None
    """Destination (default: the cache path `from-video` looks in)."""
    wheel: Path | None = None
    """A downloaded mediapipe==0.10.21 wheel (default: pip downloads it from PyPI)."""


@dataclass
class DemoPlot:
    """Plot a demonstration's fingertips over the keyboard."""

    demo: Annotated[Path, tyro.conf.Positional, tyro.conf.arg(metavar="DEMO")]
    """A demonstration file (.npz)."""
    output: Annotated[Path, tyro.conf.arg(aliases=("-o",))] = Path("demo.png")
    """Where to write the plot (.png)."""


@dataclass
class Collect:
    """Roll out an expert on songs into a Minari dataset, RP1M-style (needs the `datasets` extra)."""

    songs: tuple[str, ...]
    """Songs: built-in names, MIDI files or directories, `music21:<path>`, or a corpus query
    `corpus:<collection>[:<glob>]` (training collections only: bach, essenFolksong, ...)."""
    dataset: str
    """Minari dataset id, `[namespace/]name-v<N>` (must not exist yet)."""
    episodes: int = 10
    """Episodes per song (per segment with --segment-steps)."""
    expert: str = "sight-reader"
    """`sight-reader` (no training), `sight-reader-lookahead` (no training, chooses its gains by
    simulating ahead), a checkpoint path, `residual-ppo` or `residual-droq` (trains a residual
    expert per song with baselines/ppo.py or droq.py)."""
    min_f1: float = 0.0
    """Keep only episodes with F1 >= this (RP1M's quality filter)."""
    noise: float = 0.0
    """Gaussian action noise std in normalized action units; the clean expert action is stored
    as the label (infos["expert_action"])."""
    segment_steps: int | None = None
    """Cut songs into segments of this many steps (RP1M: 550); default whole songs."""
    pose_segments: bool = True
    """Start each segment after the first with the hands posed by IK over its first notes
    (else at the rest pose)."""
    randomize_hands: bool = False
    """Shift both hands at reset by U(-5, 5) cm from the episode seed (the env's
    randomize_hand_positions)."""
    seed: int = 0
    """Base seed of the episode seeds."""
    expert_timesteps: int = 100_000
    """Training budget (env steps) per song of residual-ppo / residual-droq."""
    trim_silence: bool = True
    """Drop the songs' leading and trailing silence."""
    workers: int | None = None
    """Local worker processes (default: the CPUs available); with --ray, the local Ray CPUs."""
    ray: bool = False
    """Run each song as a task on a local Ray instance (needs the `distributed` extra)."""
    ray_address: str | None = None
    """Connect to this Ray cluster (`auto`, `ray://host:10001`) instead."""
    retries: int | None = None
    """Times a song lost to the infrastructure (a lost worker or node, an out-of-memory kill) is
    run again before the command gives up (default: $PIANOMIME_RETRIES, else 2); a bad song is
    never retried, it is reported and skipped."""
    max_songs: int | None = None
    """Use only the first N songs."""
    work_dir: Path | None = None
    """Shards of finished songs, for resuming (default: hidden in the Minari root)."""
    restart: bool = False
    """Discard an unfinished collection of this dataset instead of resuming it."""
    keep_work_dir: bool = False
    """Keep the shards after the dataset is written."""
    summary: Path | None = None
    """Also write the collection summary to this JSON file."""


@dataclass
class DatasetInfo:
    """Songs, episodes, steps, F1 distribution (histogram PNG) and size of a Minari dataset."""

    dataset: Annotated[str, tyro.conf.Positional, tyro.conf.arg(metavar="DATASET")]
    """Minari dataset id (in $MINARI_DATASETS_PATH, default ~/.minari/datasets)."""
    histogram: Path | None = None
    """F1 histogram PNG (default runs/dataset-info/<id>-f1.png)."""
    format: Literal["text", "json"] = "text"


def _song_arg(song: str) -> str:
    if song.startswith("PianoMime-") and song.endswith("-v0"):
        return song[len("PianoMime-") : -len("-v0")]
    return song


def run_play(args: Play) -> dict:
    from pianomime_env.app.play import play

    result = play(
        _song_arg(args.song),
        out_dir=args.out,
        policy=args.policy,
        video=args.video,
        audio=args.audio,
        width=args.width,
        height=args.height,
        camera=args.camera,
        seed=args.seed,
        stretch=args.stretch,
        env_kwargs={"trim_silence": args.trim_silence},
    )
    m = result["metrics"]
    print(
        f"{result['song']}: {result['steps']} steps | F1 {m['f1']:.3f} (P {m['precision']:.3f}, "
        f"R {m['recall']:.3f}) | note-onset F1 {m['note_f1']:.3f} "
        f"(P {m['note_precision']:.3f}, R {m['note_recall']:.3f}) | sustain F1 {m['sustain_f1']:.3f}"
    )
    notes = {
        "performance_audio": " (what was played)",
        "target_audio": " (the score, for comparison)",
    }
    for name in ("metrics", "pianoroll", "video", "performance_audio", "target_audio"):
        if result.get(name + "_path"):  # each file once, on stdout
            print(f"wrote {result[name + '_path']}{notes.get(name, '')}")
    return result


def run_bench(args: Bench) -> dict:
    from pianomime_env.app.benchmark import run_benchmark

    return run_benchmark(
        song=args.song, steps=args.steps, runs=args.runs, vector=args.vector, out=args.out
    )


def run_songs(args: Songs) -> None:
    from pianomime_env.music import songs, sources

    names = list(songs.BUILTIN_SONGS) + [
        n for n in sources.registered_songs() if n not in songs.BUILTIN_SONGS
    ]
    if args.format == "json":
        print(json.dumps(names))
    else:
        print("\n".join(names))


def run_collect(args: Collect):
    from pianomime_env.collection.collect import collect
    from pianomime_env.music.sources import song_label

    try:
        summary = collect(
            args.dataset,
            args.songs,
            episodes=args.episodes,
            expert=args.expert,
            min_f1=args.min_f1,
            noise=args.noise,
            segment_steps=args.segment_steps,
            pose_segments=args.pose_segments,
            seed=args.seed,
            expert_timesteps=args.expert_timesteps,
            env_kwargs={
                "trim_silence": args.trim_silence,
                "randomize_hand_positions": args.randomize_hands,
            },
            workers=args.workers,
            ray=args.ray,
            ray_address=args.ray_address,
            retries=args.retries,
            work_dir=args.work_dir,
            restart=args.restart,
            keep_work_dir=args.keep_work_dir,
            max_songs=args.max_songs,
        )
    except FileExistsError as exc:
        raise ValueError(f"{exc} (choose another id or version)") from None
    import numpy as np

    f1 = summary.f1_kept
    print(
        f"wrote {summary.dataset_id} ({summary.path}): {summary.episodes_kept} of "
        f"{summary.episodes_rolled} episodes kept, {summary.steps} steps, "
        f"mean F1 {np.mean(f1):.3f}, {summary.seconds:.1f} s"
    )
    if summary.failed:
        print(f"skipped {len(summary.failed)} songs:")
        for song, err in summary.failed.items():
            print(f"  {song_label(song)}: {err}")
    if args.summary is not None:
        from dataclasses import asdict

        args.summary.parent.mkdir(parents=True, exist_ok=True)
        tmp = args.summary.with_suffix(args.summary.suffix + ".tmp")
        tmp.write_text(json.dumps(asdict(summary), indent=2))
        os.replace(tmp, args.summary)
    return summary


def run_dataset_info(args: DatasetInfo) -> dict:
    from pianomime_env.learning.datasets import dataset_info

    default = Path("runs/dataset-info") / (args.dataset.replace("/", "__") + "-f1.png")
    hist = args.histogram or default
    info = dataset_info(args.dataset, histogram=hist)
    if args.format == "json":
        print(json.dumps(info, indent=2))
        return info
    f1 = info["f1"]
    print(f"{info['dataset_id']} ({info['path']})")
    print(
        f"  {info['songs']} songs, {info['episodes']} episodes, {info['steps']} steps, "
        f"{info['size_bytes'] / 1e6:.1f} MB on disk ({info['bytes_per_step']:.0f} bytes/step)"
    )
    print(
        f"  F1 mean {f1['mean']:.3f}, median {f1['median']:.3f}, min {f1['min']:.3f}, "
        f"max {f1['max']:.3f}; experts: {', '.join(info['experts'])}"
    )
    for song, n in info["episodes_per_song"].items():
        print(f"  {song}: {n} episodes")
    if info["failed_songs"]:
        print(f"  skipped at collection: {', '.join(info['failed_songs'])}")
    print(f"wrote {info['histogram']}")
    return info


def _plot_demo(demo, path: Path) -> Path:
    from pianomime_env.media import plot_demonstration
    from pianomime_env.sim.scene import SceneIndex, key_rest_geometry, load_model

    model = load_model()
    keys = key_rest_geometry(model, SceneIndex.from_model(model))
    return plot_demonstration(path, demo, key_positions=keys.center[:, 1])


def run_demo(cmd) -> None:
    from pianomime_env.demos import Demonstration

    if isinstance(cmd, DemoBuildHandModel):
        from pianomime_env.demos.hand_model import build_hand_model, default_hand_model_path

        path = build_hand_model(cmd.output or default_hand_model_path(), wheel=cmd.wheel)
        print(f"wrote {path}")
        return
    if isinstance(cmd, DemoPlot):
        print(f"wrote {_plot_demo(Demonstration.load(cmd.demo), cmd.output)}")
        return
    if isinstance(cmd, DemoFromMidi):
        from pianomime_env.demos import from_midi

        demo = from_midi(_song_arg(cmd.song), control_timestep=cmd.control_timestep)
    else:
        from pianomime_env.demos.video import from_video

        demo = from_video(
            cmd.video, cmd.midi, hand_model=cmd.hand_model, control_timestep=cmd.control_timestep
        )
    cmd.output.parent.mkdir(parents=True, exist_ok=True)
    demo.save(cmd.output)
    print(f"wrote {cmd.output} ({demo.n_steps} steps, source {demo.source})")
    if cmd.plot:
        print(f"wrote {_plot_demo(demo, cmd.output.with_suffix('.png'))}")


@dataclass
class DemoGroup:
    """Demonstrations: `pianomime demo {from-midi,from-video,build-hand-model,plot} --help`."""


@dataclass
class DatasetGroup:
    """Datasets: `pianomime dataset info ID` (songs, episodes, F1 histogram, size on disk)."""


def _subcommands(
    commands: dict[str, type], argv: list[str], prog: str, description: str | None = None
):
    """tyro's subcommand parse, with every field docstring reflowed for --help; returns an
    instance of the original command class."""
    from pianomime_env.learning.runs import with_reflowed_help

    copies = {name: with_reflowed_help(cls) for name, cls in commands.items()}
    back = {copies[name]: cls for name, cls in commands.items()}
    cmd = tyro.extras.subcommand_cli_from_dict(
        copies, args=argv, prog=prog, description=description
    )
    cls = back[type(cmd)]
    return cls(**{f.name: getattr(cmd, f.name) for f in dataclasses.fields(cls)})


def main(argv: list[str] | None = None) -> None:
    argv = sys.argv[1:] if argv is None else list(argv)
    if argv[:1] == ["demo"]:
        cmd = _subcommands(
            {
                "from-midi": DemoFromMidi,
                "from-video": DemoFromVideo,
                "build-hand-model": DemoBuildHandModel,
                "plot": DemoPlot,
            },
            argv[1:],
            "pianomime demo",
        )
        _run(lambda: run_demo(cmd))
        return
    if argv[:1] == ["dataset"]:
        cmd = _subcommands({"info": DatasetInfo}, argv[1:], "pianomime dataset")
        _run(lambda: run_dataset_info(cmd))
        return
    cmd = _subcommands(
        {
            "play": Play,
            "bench": Bench,
            "songs": Songs,
            "collect": Collect,
            "demo": DemoGroup,
            "dataset": DatasetGroup,
        },
        argv,
        "pianomime",
        "Robot piano playing envs: play songs, benchmark, collect expert data, "
        "make demonstrations. `pianomime <command> --help` for each.",
    )
    if isinstance(cmd, Play):
        _run(lambda: run_play(cmd))
    elif isinstance(cmd, Bench):
        _run(lambda: run_bench(cmd))
    elif isinstance(cmd, Collect):
        _run(lambda: run_collect(cmd))
    else:
        _run(lambda: run_songs(cmd))


#: Exit status of `pianomime collect` when songs were lost to the infrastructure (re-run it).
EXIT_INCOMPLETE = 3


def _run(fn) -> None:
    """Runs a command; user errors (bad song, file, argument) exit 2 with a one-line message,
    a collection that lost songs to the infrastructure exits 3 (re-running it completes it)."""
    from pianomime_env.collection.collect import CollectionIncomplete

    try:
        fn()
    except CollectionIncomplete as exc:
        print(f"pianomime: incomplete: {exc}", file=sys.stderr)
        raise SystemExit(EXIT_INCOMPLETE) from None
    except Exception as exc:
        # User errors: bad song/file/argument (SongError, DemonstrationError are ValueErrors), a
        # missing extra (ImportError names it), and the video pipeline's own errors (checked
        # only if their modules were loaded, so plain commands never import them).
        user_errors = [FileNotFoundError, ValueError, ImportError, ConnectionError]
        for module, name in (
            ("pianomime_env.demos.hand_model", "HandModelError"),
            ("pianomime_env.demos.keyboard", "KeyboardDetectionError"),
        ):
            if module in sys.modules:
                user_errors.append(getattr(sys.modules[module], name))
        if not isinstance(exc, tuple(user_errors)):
            raise
        print(f"pianomime: error: {exc}", file=sys.stderr)
        raise SystemExit(2) from None


if __name__ == "__main__":
    main()
