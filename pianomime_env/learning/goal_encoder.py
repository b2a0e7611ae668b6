"""PianoMime's goal representation: an autoencoder from the 88-key goal to a 16-d latent.

The raw goal of a step is a binary vector over the 88 keys (1 = should be down). Two chords
that differ by one semitone are as far apart in that space as two unrelated chords, so PianoMime
(Qian et al., CoRL 2024) encodes it with an autoencoder trained to reconstruct a *signed
distance field* of the pressed keys instead of the keys themselves: latents of spatially close
key configurations end up close.

The SDF target (:func:`key_sdf`) is a plain function: for every key, the distance along the
keyboard (in white-key widths, from the key centres of :func:`key_positions`) to the nearest
pressed key, negative inside a pressed key (minus the distance to the nearest key that is not
pressed), clipped to ``[-max_distance, max_distance]`` and divided by ``max_distance``. With no
key pressed every key gets +1.

:class:`GoalAutoencoder` (torch, ``train`` extra): encoder MLP 88 -> hidden -> ``latent_dim``
(tanh), decoder MLP ``latent_dim`` -> hidden -> 88, trained with the mean squared error to the
SDF (:func:`train_goal_autoencoder`). :func:`encode_goal` maps an observation's ``goal``
``(L+1, 89)`` rows to ``(L+1, latent_dim + 1)``: each row's latent plus its sustain column.
Saved as a plain dict (:meth:`GoalAutoencoder.state`) inside policy checkpoints or on its own.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Iterable, Mapping
from pathlib import Path
from typing import Any

import numpy as np

__all__ = [
    "LOWEST_MIDI",
    "N_KEYS",
    "GoalAutoencoder",
    "encode_goal",
    "goal_autoencoder_from_state",
    "goal_encoder_for_run",
    "key_positions",
    "key_sdf",
    "load_goal_autoencoder",
    "random_key_sets",
    "save_goal_autoencoder",
    "train_goal_autoencoder",
]

N_KEYS = 88
LOWEST_MIDI = 21  # A0
_WHITE_PITCH_CLASSES = (0, 2, 4, 5, 7, 9, 11)


def key_positions() -> np.ndarray:
    """Centre of each of the 88 keys along the keyboard, in white-key widths, (88,) float64.

    White keys sit at 0, 1, ..., 51 (A0 = 0, C8 = 51); a black key sits halfway between its two
    white neighbours (A#0 = 0.5). Key index ``i`` is MIDI pitch ``21 + i``.
    """
    pos = np.empty(N_KEYS)
    white = -1
    for i in range(N_KEYS):
        if (LOWEST_MIDI + i) % 12 in _WHITE_PITCH_CLASSES:
            white += 1
            pos[i] = white
        else:
            pos[i] = white + 0.5
    return pos


_POSITIONS = key_positions()


def _nearest(member: np.ndarray) -> np.ndarray:
    """(..., 88) bool -> distance of every key to the nearest key where ``member`` (inf if none)."""
    pos = np.broadcast_to(_POSITIONS, member.shape)
    below = np.maximum.accumulate(np.where(member, pos, -np.inf), axis=-1)
    above = np.flip(np.minimum.accumulate(np.flip(np.where(member, pos, np.inf), -1), axis=-1), -1)
    return np.minimum(pos - below, above - pos)


def key_sdf(keys: np.ndarray, max_distance: float = 8.0) -> np.ndarray:
    """Signed distance of every key to the nearest pressed key, normalized to [-1, 1].

    Args:
        keys: (..., 88) key goals; a key counts as pressed when > 0.5.
        max_distance: distances are clipped to this many white-key widths, then divided by it.

    Returns:
        (..., 88) float32: for a key that is not pressed, ``min |x_i - x_j|`` over pressed keys
        ``j``; for a pressed key, ``-min |x_i - x_j|`` over keys ``j`` not pressed; then clipped
        and divided by ``max_distance``. All +1 where no key is pressed (all -1 if all are).
    """
    keys = np.asarray(keys)
    if keys.shape[-1] != N_KEYS:
        raise ValueError(f"keys must have {N_KEYS} entries in the last axis, got {keys.shape}")
    if not max_distance > 0:
        raise ValueError(f"max_distance must be > 0, got {max_distance}")
    pressed = keys > 0.5
    big = np.float64(max_distance)
    # Key centres increase with the index, so the nearest member of a set is either the last
    # one at or below a key or the first one at or above it (running max / min along the keys).
    sdf = np.where(
        pressed, -np.minimum(_nearest(~pressed), big), np.minimum(_nearest(pressed), big)
    )
    return (sdf / big).astype(np.float32)


def random_key_sets(n: int, rng: np.random.Generator, max_keys: int = 6) -> np.ndarray:
    """``n`` random key configurations (n, 88) float32 with 0..max_keys keys down, chords
    clustered within two octaves per hand (augments a dataset's goals for training)."""
    out = np.zeros((n, N_KEYS), np.float32)
    counts = rng.integers(0, max_keys + 1, size=n)
    for row, c in enumerate(counts):
        if c == 0:
            continue
        centres = rng.integers(0, N_KEYS, size=2)
        hands = rng.integers(0, 2, size=c)
        idx = np.clip(centres[hands] + rng.integers(-12, 13, size=c), 0, N_KEYS - 1)
        out[row, idx] = 1.0
    return out


def _torch():
    from pianomime_env.extras import require_torch

    return require_torch()


def _goal_autoencoder_class():
    torch = _torch()
    nn = torch.nn

    class _GoalAutoencoder(nn.Module):
        def __init__(self, latent_dim: int = 16, hidden: int = 256) -> None:
            super().__init__()
            self.latent_dim, self.hidden = int(latent_dim), int(hidden)
            self.encoder = nn.Sequential(
                nn.Linear(N_KEYS, hidden),
                nn.GELU(),
                nn.Linear(hidden, hidden),
                nn.GELU(),
                nn.Linear(hidden, latent_dim),
                nn.Tanh(),
            )
            self.decoder = nn.Sequential(
                nn.Linear(latent_dim, hidden),
                nn.GELU(),
                nn.Linear(hidden, hidden),
                nn.GELU(),
                nn.Linear(hidden, N_KEYS),
            )

        def encode(self, keys):
            """(..., 88) key goals -> (..., latent_dim) in [-1, 1]."""
            return self.encoder(keys)

        def forward(self, keys):
            """(..., 88) -> reconstructed SDF (..., 88)."""
            return self.decoder(self.encoder(keys))

        def state(self) -> dict[str, Any]:
            """A plain dict (tensors and numbers) for checkpoints."""
            return {
                "latent_dim": self.latent_dim,
                "hidden": self.hidden,
                "state_dict": {k: v.detach().cpu() for k, v in self.state_dict().items()},
            }

    return _GoalAutoencoder


def GoalAutoencoder(latent_dim: int = 16, hidden: int = 256):  # noqa: N802 (a torch module)
    """The autoencoder (a ``torch.nn.Module`` with ``encode``, ``forward`` and ``state()``)."""
    return _goal_autoencoder_class()(latent_dim, hidden)


def goal_autoencoder_from_state(state: Mapping[str, Any]):
    """Rebuilds a :func:`GoalAutoencoder` from its ``state()`` dict (eval mode)."""
    model = GoalAutoencoder(int(state["latent_dim"]), int(state["hidden"]))
    model.load_state_dict(state["state_dict"])
    model.eval()
    return model


def train_goal_autoencoder(
    goals: np.ndarray,
    *,
    latent_dim: int = 16,
    hidden: int = 256,
    steps: int = 3000,
    batch_size: int = 256,
    lr: float = 1e-3,
    augment: float = 0.5,
    seed: int = 0,
    progress: bool = False,
) -> tuple[Any, dict[str, float]]:
    """Trains the autoencoder on key goals (N, 88), mixed with random chords.

    Args:
        goals: (N, 88) key configurations (e.g. every goal row of a dataset).
        augment: fraction of each batch drawn from :func:`random_key_sets` instead of ``goals``.
        steps, batch_size, lr: Adam steps, batch, learning rate.

    Returns:
        ``(model, {"loss": final batch MSE, "heldout_mse": MSE on 1024 fresh random chords})``.
    """
    torch = _torch()
    from tqdm import tqdm

    goals = np.asarray(goals, np.float32).reshape(-1, N_KEYS)
    if len(goals) == 0:
        raise ValueError("train_goal_autoencoder needs at least one goal row")
    rng = np.random.default_rng(seed)
    torch.manual_seed(seed)
    model = GoalAutoencoder(latent_dim, hidden)
    opt = torch.optim.Adam(model.parameters(), lr=lr)
    n_rand = int(round(batch_size * augment))
    loss = torch.tensor(0.0)
    for _ in tqdm(range(steps), desc="goal autoencoder", disable=not progress, mininterval=2):
        rows = goals[rng.integers(0, len(goals), batch_size - n_rand)]
        batch = np.concatenate([rows, random_key_sets(n_rand, rng)])
        x = torch.as_tensor(batch)
        y = torch.as_tensor(key_sdf(batch))
        loss = torch.nn.functional.mse_loss(model(x), y)
        opt.zero_grad()
        loss.backward()
        opt.step()
    model.eval()
    test = random_key_sets(1024, np.random.default_rng(seed + 1))
    with torch.no_grad():
        heldout = torch.nn.functional.mse_loss(
            model(torch.as_tensor(test)), torch.as_tensor(key_sdf(test))
        ).item()
    return model, {"loss": float(loss.item()), "heldout_mse": float(heldout)}


def encode_goal(model: Any, goal: np.ndarray) -> np.ndarray:
    """Encodes goal rows: (..., 89) -> (..., latent_dim + 1) float32 (latent, then sustain)."""
    torch = _torch()
    goal = np.asarray(goal, np.float32)
    if goal.shape[-1] != N_KEYS + 1:
        raise ValueError(f"goal rows must have 89 entries (88 keys + sustain), got {goal.shape}")
    with torch.no_grad():
        z = model.encode(torch.as_tensor(goal[..., :N_KEYS])).numpy()
    return np.concatenate([z, goal[..., N_KEYS:]], axis=-1).astype(np.float32)


def save_goal_autoencoder(model: Any, path: str | os.PathLike, **info: Any) -> Path:
    """Writes ``{"format": "pianomime-goal-autoencoder", **model.state(), **info}`` atomically."""
    torch = _torch()
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(path.name + ".tmp")
    torch.save({"format": "pianomime-goal-autoencoder", **model.state(), **info}, tmp)
    os.replace(tmp, path)
    return path


def load_goal_autoencoder(path: str | os.PathLike):
    """Reads a file written by :func:`save_goal_autoencoder`; returns the model (eval mode)."""
    torch = _torch()
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"no goal autoencoder at {path}")
    state = torch.load(path, map_location="cpu", weights_only=True)
    if not isinstance(state, dict) or state.get("format") != "pianomime-goal-autoencoder":
        raise ValueError(f"{path}: not a goal autoencoder file (format pianomime-goal-autoencoder)")
    return goal_autoencoder_from_state(state)


def goal_encoder_for_run(
    choice: str,
    run_dir: str | os.PathLike,
    observations: Iterable[Mapping[str, np.ndarray]],
    *,
    steps: int = 3000,
    seed: int = 0,
    dataset: str | None = None,
    progress: bool = False,
    log: Callable[[str], Any] = print,
):
    """The goal encoder of an imitation run (``--goal-encoder``): None for ``"none"``; for
    ``"train"`` the run's own ``run_dir/goal_encoder.pt`` when there is one (a resumed run),
    else trained now on the distinct goal rows of ``observations`` (per episode, ``"goal"``
    arrays (T, L+1, 89)) with ``steps`` Adam steps and ``seed``, and saved there (with
    ``dataset`` and the training losses); any other value is the path of a goal_encoder.pt.
    """
    if choice == "none":
        return None
    if choice != "train":
        return load_goal_autoencoder(choice)
    own = Path(run_dir) / "goal_encoder.pt"
    if own.is_file():
        return load_goal_autoencoder(own)
    goals = np.concatenate(
        [np.asarray(o["goal"])[..., :N_KEYS].reshape(-1, N_KEYS) for o in observations]
    )
    goals = np.unique(goals, axis=0)
    model, info = train_goal_autoencoder(goals, steps=steps, seed=seed, progress=progress)
    save_goal_autoencoder(model, own, **info, dataset=dataset)
    log(f"goal autoencoder: {len(goals)} distinct goal rows, {info}")
    return model
