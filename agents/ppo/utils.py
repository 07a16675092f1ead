"""Run plumbing of the PPO learner: sample tables and atomic checkpoints.

Built on ``agents.common`` (scalar logging, RNG state); what is here is PPO's own: the policy is checkpointed as a Hugging Face directory, not one file.
"""

from __future__ import annotations

import json
import os
import shutil
import tempfile
from pathlib import Path

import torch

from agents.common.checkpoint import write_failure


def log_samples(directory, step: int, rows: list[dict], tb_logger=None) -> None:
    """Append a table of sample prompts, responses and scores to ``samples.jsonl`` (and TensorBoard)."""
    with open(Path(directory) / "samples.jsonl", "a", encoding="utf-8") as f:
        f.write(json.dumps({"step": step, "samples": rows}) + "\n")
    tb = getattr(tb_logger, "_tb", None)
    if tb is not None:
        header = "| prompt | response | score |\n|---|---|---|\n"
        body = "".join(f"| {r['prompt']} | {r['response']} | {r['score']:+.3f} |\n" for r in rows)
        tb.add_text("samples", header + body, step)


def save_checkpoint(directory, policy, trainer_state: dict) -> None:
    """Write ``directory`` atomically: a crash leaves the old checkpoint or the new one, whole.

    The policy is written in Hugging Face format (``save_pretrained``) next to
    ``trainer_state.pt`` (optimizer, schedule, KL controller, iteration, RNG states), in a fresh
    temporary folder that is swapped in only when complete. A failed write (a full disk) removes
    that folder, keeps the last checkpoint and raises an ``OSError`` that says why.
    """
    directory = Path(directory)
    directory.parent.mkdir(parents=True, exist_ok=True)
    old = directory.with_name(directory.name + ".old")
    tmp = Path(tempfile.mkdtemp(dir=directory.parent, prefix=f".{directory.name}.", suffix=".tmp"))
    try:
        policy.save_pretrained(tmp)
        torch.save(trainer_state, tmp / "trainer_state.pt")
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


def find_checkpoint(directory) -> Path | None:
    """The checkpoint to resume from: ``directory``, or its ``.old`` copy after a crash mid-swap."""
    directory = Path(directory)
    for path in (directory, directory.with_name(directory.name + ".old")):
        if (path / "trainer_state.pt").exists():
            return path
    return None
