"""Run plumbing of the PPO learner: LR schedule, metric logging, atomic checkpoints, RNG state.

Private stand-ins until ``agents.common`` provides the shared versions; the learner only uses
the names below, so switching is a one-line import change.
"""

from __future__ import annotations

import json
import math
import os
import random
import shutil
import time
from pathlib import Path

import numpy as np
import torch


def lr_lambda(schedule: str, total_steps: int, warmup_steps: int = 0):
    """A ``LambdaLR`` multiplier: linear warm-up, then 'linear' decay to 0, 'cosine' or 'constant'."""

    def f(step: int) -> float:
        if step < warmup_steps:
            return (step + 1) / warmup_steps
        frac = min(1.0, (step - warmup_steps) / max(1, total_steps - warmup_steps))
        if schedule == "linear":
            return 1.0 - frac
        if schedule == "cosine":
            return 0.5 * (1.0 + math.cos(math.pi * frac))
        return 1.0

    return f


class MetricLogger:
    """Scalars to ``metrics.jsonl`` (and TensorBoard), sample tables to ``samples.jsonl``."""

    def __init__(self, directory, tensorboard: bool = True, enabled: bool = True):
        self.dir = Path(directory)
        self.enabled = enabled
        self.tb = None
        if enabled:
            self.dir.mkdir(parents=True, exist_ok=True)
            if tensorboard:
                try:
                    from torch.utils.tensorboard import SummaryWriter
                except ImportError:  # tensorboard is an optional extra ("report")
                    SummaryWriter = None
                if SummaryWriter is not None:
                    self.tb = SummaryWriter(str(self.dir / "tb"))

    def log(self, step: int, scalars: dict) -> None:
        if not self.enabled:
            return
        row = {"step": step, "time": time.time(), **{k: float(v) for k, v in scalars.items()}}
        with open(self.dir / "metrics.jsonl", "a") as f:
            f.write(json.dumps(row) + "\n")
        if self.tb is not None:
            for k, v in scalars.items():
                self.tb.add_scalar(k, float(v), step)

    def log_samples(self, step: int, rows: list[dict]) -> None:
        if not self.enabled:
            return
        with open(self.dir / "samples.jsonl", "a") as f:
            f.write(json.dumps({"step": step, "samples": rows}) + "\n")
        if self.tb is not None:
            header = "| prompt | response | score |\n|---|---|---|\n"
            body = "".join(f"| {r['prompt']} | {r['response']} | {r['score']:+.3f} |\n" for r in rows)
            self.tb.add_text("samples", header + body, step)

    def close(self) -> None:
        if self.tb is not None:
            self.tb.close()


def rng_state(generator: torch.Generator, np_rng: np.random.Generator) -> dict:
    """Every random state a run draws from, to resume it exactly."""
    state = {
        "python": random.getstate(),
        "numpy_global": np.random.get_state(),
        "torch": torch.get_rng_state(),
        "generator": generator.get_state(),
        "np_rng": np_rng.bit_generator.state,
    }
    if torch.cuda.is_available():
        state["cuda"] = torch.cuda.get_rng_state_all()
    return state


def set_rng_state(state: dict, generator: torch.Generator, np_rng: np.random.Generator) -> None:
    random.setstate(state["python"])
    np.random.set_state(state["numpy_global"])
    torch.set_rng_state(state["torch"])
    generator.set_state(state["generator"])
    np_rng.bit_generator.state = state["np_rng"]
    if "cuda" in state and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(state["cuda"])


def save_checkpoint(directory, policy, trainer_state: dict) -> None:
    """Write ``directory`` atomically: a crash leaves the old checkpoint or the new one, whole.

    The policy is written in Hugging Face format (``save_pretrained``) next to
    ``trainer_state.pt`` (optimizer, schedule, KL controller, iteration, RNG states).
    """
    directory = Path(directory)
    tmp, old = directory.with_name(directory.name + ".tmp"), directory.with_name(directory.name + ".old")
    shutil.rmtree(tmp, ignore_errors=True)
    tmp.mkdir(parents=True)
    policy.save_pretrained(tmp)
    torch.save(trainer_state, tmp / "trainer_state.pt")
    if directory.exists():
        shutil.rmtree(old, ignore_errors=True)
        os.replace(directory, old)
    os.replace(tmp, directory)
    shutil.rmtree(old, ignore_errors=True)


def find_checkpoint(directory) -> Path | None:
    """The checkpoint to resume from: ``directory``, or its ``.old`` copy after a crash mid-swap."""
    directory = Path(directory)
    for path in (directory, directory.with_name(directory.name + ".old")):
        if (path / "trainer_state.pt").exists():
            return path
    return None
