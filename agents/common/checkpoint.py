"""Atomic checkpoints and RNG state, so a stopped run resumes bit-identically.

A training checkpoint is one ``torch.save``d dict (model, optimizer, step, data position, RNG
states); it is written to a temporary file and ``os.replace``d, so a crash mid-write leaves the
previous checkpoint intact.
"""

from __future__ import annotations

import os
import random
from pathlib import Path

import numpy as np
import torch


def save_checkpoint_atomic(state: dict, path: str | os.PathLike) -> None:
    """``torch.save(state, path)`` through a temporary file and ``os.replace``."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(path.name + ".tmp")
    torch.save(state, tmp)
    os.replace(tmp, path)


def load_checkpoint(path: str | os.PathLike) -> dict:
    """Load a checkpoint written by :func:`save_checkpoint_atomic` (on CPU)."""
    path = Path(path)
    if path.is_dir():
        path = path / "state.pt"
    if not path.is_file():
        raise FileNotFoundError(f"no checkpoint at {path}; pass the checkpoint directory a run wrote")
    return torch.load(path, map_location="cpu", weights_only=False)


def rng_state() -> dict:
    """The states of Python's, NumPy's and torch's (CPU and CUDA) random generators."""
    state = {"python": random.getstate(), "numpy": np.random.get_state(), "torch": torch.get_rng_state()}
    if torch.cuda.is_available():
        state["cuda"] = torch.cuda.get_rng_state_all()
    return state


def set_rng_state(state: dict) -> None:
    """Restore the generators saved by :func:`rng_state`."""
    random.setstate(state["python"])
    np.random.set_state(state["numpy"])
    torch.set_rng_state(state["torch"])
    if "cuda" in state and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(state["cuda"])


def seed_everything(seed: int) -> None:
    """Seed Python, NumPy and torch."""
    random.seed(seed)
    np.random.seed(seed)
    torch.manual_seed(seed)

