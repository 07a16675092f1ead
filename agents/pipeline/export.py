"""The pipeline's export: the run's task folder with its models, as the env loads it.

``OUT/export`` is a built task folder (:class:`textbandit.task.DefaultTask`) plus ``sft/`` and
``reward_model/``, and the base model the SFT model started from (``base-small/``), all stored in
fp16 to stay small and loading as float32:
``gym.make("TextBandit-v0", task="OUT/export")`` serves the run's models. The shipped default task
(``textbandit/assets/default``) is such a folder, copied there by ``textbandit pipeline
--export-defaults true``; the quick preset starts from its base model. (The 11M large base,
21 MB in fp16, is left out: the shipped data stays under 10 MB.)
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


def export_task(
    task_dir: Path, sft_dir: str, rm_dir: Path, kl_coef: float, dest: Path, bases: dict[str, str] | None = None
) -> Path:
    """Write ``dest``: the task's files, its config with the run's ``kl_coef``, the SFT and reward
    models, and ``bases`` (size -> the folder of a base model pretrained on the task) as ``base-{size}``."""
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
    for size, path in (bases or {}).items():
        export_base(path, dest / f"base-{size}", tokenizer)
    for name in ("sft", "reward_model"):
        _load_as_float32(dest / name)
    return dest


def export_base(path: str, dest: Path, tokenizer) -> Path:
    """Write the pretrained base model in ``path`` to ``dest`` in fp16 (loading as float32), with
    ``tokenizer`` and the record of how it was pretrained (``pretrain_summary.json``)."""
    from transformers import AutoModelForCausalLM

    AutoModelForCausalLM.from_pretrained(path, dtype=torch.float16).save_pretrained(str(dest))
    tokenizer.save_pretrained(str(dest))
    summary = Path(path) / "pretrain_summary.json"
    if summary.exists():
        shutil.copy2(summary, dest / summary.name)
    _load_as_float32(dest)
    return dest


def _load_as_float32(folder: Path) -> None:
    """Stored in fp16 to stay small, a model still loads as float32 by default: fp16 matmuls on a CPU
    are slow and coarse."""
    path = folder / "config.json"
    path.write_text(json.dumps({**json.loads(path.read_text()), "dtype": "float32"}, indent=2, sort_keys=True) + "\n")


def export_defaults(export_dir: Path) -> Path:
    """Replace the shipped default task (``textbandit/assets/default``) with ``export_dir``."""
    from textbandit.task import DEFAULT_DIR

    if DEFAULT_DIR.exists():
        shutil.rmtree(DEFAULT_DIR)
    shutil.copytree(export_dir, DEFAULT_DIR)
    return DEFAULT_DIR
