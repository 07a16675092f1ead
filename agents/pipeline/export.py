"""The pipeline's export: the run's task folder with its SFT and reward models, as the env loads it.

``OUT/export`` is a built task folder (:class:`textbandit.task.DefaultTask`) plus ``sft/`` and
``reward_model/`` (stored in fp16 to stay small, loading as float32): ``gym.make("TextBandit-v0",
task="OUT/export")`` serves the run's models. The shipped default task (``textbandit/assets/default``)
is such a folder, copied there by ``textbandit pipeline --export-defaults true``.
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import torch

TASK_FILES = (
    "tokenizer",
    "prompts_train.jsonl",
    "prompts_validation.jsonl",
    "prompts_test.jsonl",
    "demonstrations_train.jsonl",
    "demonstrations_validation.jsonl",
    "labelers.json",
    "customers.json",
)


def export_task(task_dir: Path, sft_dir: str, rm_dir: Path, kl_coef: float, dest: Path) -> Path:
    """Write ``dest``: the task's files, its config with the run's ``kl_coef``, and the SFT and reward models."""
    from transformers import AutoModelForCausalLM, AutoTokenizer

    from textbandit.reward_model import RewardModel

    if dest.exists():
        shutil.rmtree(dest)
    dest.mkdir(parents=True)
    for name in TASK_FILES:
        src = Path(task_dir) / name
        (shutil.copytree if src.is_dir() else shutil.copy2)(src, dest / name)
    config = json.loads((Path(task_dir) / "task_config.json").read_text())
    (dest / "task_config.json").write_text(json.dumps({**config, "kl_coef": kl_coef}, indent=1) + "\n")
    tokenizer = AutoTokenizer.from_pretrained(str(Path(task_dir) / "tokenizer"))
    AutoModelForCausalLM.from_pretrained(sft_dir, dtype=torch.float16).save_pretrained(str(dest / "sft"))
    tokenizer.save_pretrained(str(dest / "sft"))
    RewardModel.from_pretrained(str(rm_dir), torch_dtype=torch.float16).save_pretrained(
        dest / "reward_model", tokenizer
    )
    for name in ("sft", "reward_model"):  # stored in fp16 to stay small, but load as float32 by default:
        path = dest / name / "config.json"  # fp16 matmuls on a CPU are slow and coarse
        path.write_text(
            json.dumps({**json.loads(path.read_text()), "dtype": "float32"}, indent=2, sort_keys=True) + "\n"
        )
    return dest


def export_defaults(export_dir: Path) -> Path:
    """Replace the shipped default task (``textbandit/assets/default``) with ``export_dir``."""
    from textbandit.task import DEFAULT_DIR

    if DEFAULT_DIR.exists():
        shutil.rmtree(DEFAULT_DIR)
    shutil.copytree(export_dir, DEFAULT_DIR)
    return DEFAULT_DIR
