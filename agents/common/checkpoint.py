"""Atomic checkpoints and RNG state, so a stopped run resumes bit-identically.

Every trainer's checkpoint has one format: a folder (``OUT/checkpoint``) holding
``trainer_state.pt``, one ``torch.save``d dict of tensors and plain data (optimizer, step, data
position, RNG states, log rows; SFT and RM put the model's weights there too), plus any model
files the trainer writes beside it (PPO: the policy in Hugging Face format, so a checkpoint
loads as a model). :func:`save_checkpoint` writes the folder under a temporary name and swaps it
in whole, so a crash mid-write leaves the previous checkpoint intact (or its ``.old`` copy
during the swap, which :func:`find_checkpoint` falls back to). The state is read back with
``torch.load(weights_only=True)``: a file that holds anything else (a crafted pickle that would
run code) is refused, never executed. RNG states are therefore stored as tensors, ints and lists.

A failed write (a full disk, a lost mount) removes its temporary files, keeps the last good
checkpoint and raises an ``OSError`` that says what happened.
"""

from __future__ import annotations

import errno
import os
import pickle
import random
import shutil
import tempfile
from pathlib import Path
from typing import Callable

import numpy as np
import torch


class UnsafeCheckpointError(ValueError):
    """A state file holds objects other than tensors and plain data; it was not loaded."""


def write_failure(error: BaseException, path: Path) -> OSError:
    """An ``OSError`` that says why writing ``path`` failed: a full disk named as such."""
    code = getattr(error, "errno", None)
    try:
        free = shutil.disk_usage(path.parent if path.parent.exists() else Path.cwd()).free
    except OSError:
        free = None
    if code == errno.ENOSPC or code == errno.EDQUOT or (free is not None and free < 1 << 20):
        what = (
            f"the disk is full ({'' if free is None else f'{free:,} bytes free; '}"
            f"{getattr(error, 'strerror', None) or error})"
        )
        return OSError(
            errno.ENOSPC,
            f"could not write {path}: {what}; free some space and resume from the last checkpoint, which is kept",
        )
    return OSError(code or errno.EIO, f"could not write {path}: {error}; the last checkpoint is kept")


def atomic_write(path: str | os.PathLike, write: Callable[[Path], None]) -> None:
    """``write(tmp)`` to a fresh temporary file beside ``path``, then ``os.replace`` it onto ``path``.

    On failure the temporary file is removed, ``path`` is left as it was, and the ``OSError`` of
    :func:`write_failure` is raised. Two writers never share a temporary name.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, name = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    os.close(fd)
    tmp = Path(name)
    try:
        write(tmp)
        os.replace(tmp, path)
    except (OSError, RuntimeError) as e:  # torch.save reports a failed write as a RuntimeError
        tmp.unlink(missing_ok=True)
        raise write_failure(e, path) from e
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise


STATE_FILE = "trainer_state.pt"


def save_checkpoint(
    directory: str | os.PathLike, state: dict, write_model: Callable[[Path], None] | None = None
) -> None:
    """Write the checkpoint folder ``directory`` atomically: ``state`` to ``trainer_state.pt`` and,
    with ``write_model``, the model files it writes into the folder (e.g. ``policy.save_pretrained``).

    The folder is written under a fresh temporary name and swapped in only when complete; a failed
    write removes it, keeps the last checkpoint and raises the ``OSError`` of :func:`write_failure`.
    """
    directory = Path(directory)
    directory.parent.mkdir(parents=True, exist_ok=True)
    old = directory.with_name(directory.name + ".old")
    tmp = Path(tempfile.mkdtemp(dir=directory.parent, prefix=f".{directory.name}.", suffix=".tmp"))
    try:
        if write_model is not None:
            write_model(tmp)
        torch.save(state, tmp / STATE_FILE)
    except (OSError, RuntimeError) as e:  # safetensors and torch.save report a failed write differently
        shutil.rmtree(tmp, ignore_errors=True)
        raise write_failure(e, directory) from e
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    if directory.exists():
        shutil.rmtree(old, ignore_errors=True)
        os.replace(directory, old)
    os.replace(tmp, directory)
    shutil.rmtree(old, ignore_errors=True)


def find_checkpoint(directory: str | os.PathLike) -> Path | None:
    """The checkpoint folder to resume from: ``directory``, or its ``.old`` copy after a crash mid-swap."""
    directory = Path(directory)
    for path in (directory, directory.with_name(directory.name + ".old")):
        if (path / STATE_FILE).exists():
            return path
    return None


def load_state(path: str | os.PathLike) -> dict:
    """A state file written by :func:`save_checkpoint`, loaded with ``weights_only=True`` (on CPU).

    Raises :class:`UnsafeCheckpointError` for a file that holds anything but tensors and plain data.
    """
    path = Path(path)
    try:
        return torch.load(path, map_location="cpu", weights_only=True)
    except pickle.UnpicklingError as e:
        raise UnsafeCheckpointError(
            f"refused to load {path}: it holds objects other than tensors and plain data, which could run code "
            f"when unpickled (torch.load weights_only=True said: {str(e).splitlines()[-1][:200]}). textbandit "
            "never writes such a file; do not resume from a checkpoint you do not trust"
        ) from None


def load_checkpoint(path: str | os.PathLike) -> dict:
    """The state of a checkpoint folder written by :func:`save_checkpoint` (its ``.old`` copy if the
    folder itself is gone mid-swap), or of its ``trainer_state.pt`` file."""
    path = Path(path)
    if not path.is_file():
        found = find_checkpoint(path)
        if found is None:
            raise FileNotFoundError(f"no checkpoint at {path}; pass the checkpoint folder a run wrote (OUT/checkpoint)")
        path = found / STATE_FILE
    return load_state(path)


def rng_state(generator: torch.Generator | None = None, np_rng: np.random.Generator | None = None) -> dict:
    """The states of Python's, NumPy's and torch's (CPU and CUDA) global generators, and of a
    run's own ``generator`` and ``np_rng`` when given, as tensors, ints and lists only."""
    kind, keys, pos, has_gauss, cached = np.random.get_state()
    state = {
        "python": random.getstate(),
        "numpy": [kind, torch.from_numpy(keys.astype(np.int64)), int(pos), int(has_gauss), float(cached)],
        "torch": torch.get_rng_state(),
    }
    if torch.cuda.is_available():
        state["cuda"] = torch.cuda.get_rng_state_all()
    if generator is not None:
        state["generator"] = generator.get_state()
    if np_rng is not None:
        state["np_rng"] = np_rng.bit_generator.state  # nested dicts of str and int
    return state


def set_rng_state(
    state: dict, generator: torch.Generator | None = None, np_rng: np.random.Generator | None = None
) -> None:
    """Restore the generators saved by :func:`rng_state`."""
    random.setstate(tuple(x if not isinstance(x, list) else tuple(x) for x in state["python"]))
    kind, keys, pos, has_gauss, cached = state["numpy"]
    np.random.set_state((kind, np.asarray(keys, dtype=np.uint32), pos, has_gauss, cached))
    torch.set_rng_state(state["torch"])
    if "cuda" in state and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(state["cuda"])
    if generator is not None:
        generator.set_state(state["generator"])
    if np_rng is not None:
        np_rng.bit_generator.state = state["np_rng"]


def seed_everything(seed: int) -> None:
    """Seed Python, NumPy and torch."""
    random.seed(seed)
    np.random.seed(seed)
    torch.manual_seed(seed)
