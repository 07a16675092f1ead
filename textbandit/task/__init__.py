"""Tasks: what ``TextBandit-v0`` serves (:class:`Task`), and the embedded default task.

A task is a value (:mod:`.base`): prompts per split, a tokenizer, the reference and reward models,
the env settings and a hidden gold judge. :func:`load_task` turns ``"default"`` or a path to a
built task folder into one.

The embedded default task is a small synthetic world where alignment is measurable: a language
with a grammar (:mod:`.language`), a pretraining corpus (:mod:`.corpus`), a BPE tokenizer
(:mod:`.tokenizer`), nine instruction kinds with checkable intent (:mod:`.instructions`),
customers with their own mixes of kinds, split by customer (:mod:`.customers`), a demonstrator
that skips two kinds (:mod:`.demonstrator`), a hidden gold labeler (:mod:`.gold`) and noisy
simulated labelers (:mod:`.labelers`). ``textbandit task --out DIR`` (:mod:`.build`) writes its
folder; ``textbandit pipeline`` adds the SFT and reward models to a copy of it (``OUT/export``),
and the shipped ``textbandit/assets/default`` is such a folder.

>>> task = load_task("default")
>>> p = task.prompt_records("test")[0]["prompt"]
>>> task.gold_score(p, "", ended_with_eos=True)
0.0
>>> task.max_prompt_len, task.max_new_tokens
(32, 24)
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from textbandit.task.base import SPLITS, GoldFn, Task
from textbandit.task.config import TaskConfig
from textbandit.task.gold import gold_details, gold_score, gold_scores
from textbandit.task.instructions import KINDS, Instruction, parse, render
from textbandit.task.labelers import LabelerPool, calibrate, measure_agreement

DEFAULT_DIR = Path(__file__).resolve().parent.parent / "assets" / "default"
"""Where the shipped task lives (``textbandit/assets/default``)."""

__all__ = [
    "Task",
    "DefaultTask",
    "load_task",
    "GoldFn",
    "SPLITS",
    "TaskConfig",
    "KINDS",
    "Instruction",
    "parse",
    "render",
    "gold_score",
    "gold_scores",
    "gold_details",
    "LabelerPool",
    "calibrate",
    "measure_agreement",
    "DEFAULT_DIR",
]


@dataclass
class DefaultTask(Task):
    """A built folder of the embedded task: a :class:`Task` whose gold judge is the world's gold
    labeler, plus what the world has beyond it (demonstrations, corpus, simulated labelers).

    Its files: ``task_config.json`` (the :class:`TaskConfig`, env settings included),
    ``tokenizer/``, ``prompts_{split}.jsonl``, ``demonstrations_{train,validation}.jsonl``,
    ``labelers.json``, ``customers.json``, and when exported with models ``sft/`` and
    ``reward_model/`` (and the pretrained base model the SFT model started from, ``base-small/``:
    :meth:`base_model`).

    >>> task = load_task("default")
    >>> sorted(task.prompt_records("train")[0])
    ['customer', 'kind', 'params', 'prompt']
    """

    path: Path = field(default=DEFAULT_DIR)
    config: TaskConfig = field(default_factory=TaskConfig)

    @classmethod
    def from_folder(cls, path: str | os.PathLike) -> "DefaultTask":
        """The task in a folder written by :func:`textbandit.task.build.build` (and the pipeline's export)."""
        path = Path(path)
        cfg_file = path / "task_config.json"
        if not cfg_file.exists():
            raise ValueError(
                f"{path} is not a built task folder (no task_config.json); build one with "
                f"`textbandit task --out {path}`, or pass a Task object"
            )
        config = TaskConfig.from_dict(json.loads(cfg_file.read_text()))
        optional = lambda name: str(path / name) if (path / name).is_dir() else None  # noqa: E731
        return cls(
            tokenizer=str(path / "tokenizer"),
            prompts={s: str(path / f"prompts_{s}.jsonl") for s in SPLITS},
            reference_model=optional("sft"),
            reward_model=optional("reward_model"),
            gold_fn=gold_scores,
            kl_coef=config.kl_coef,
            max_prompt_len=config.max_prompt_len,
            max_new_tokens=config.max_new_tokens,
            name=str(path),
            path=path,
            config=config,
        )

    def base_model(self, size: str) -> str | None:
        """The folder of the pretrained base model of ``size`` ('small', 'large') the task ships, or
        None (a task built by ``textbandit task`` ships none; the pipeline's export does)."""
        path = self.path / f"base-{size}"
        return str(path) if (path / "config.json").exists() else None

    def demonstrations(self, split: str) -> list[dict]:
        """Demonstrations of one split (``train`` or ``validation``; test has none)."""
        from textbandit.data import load_demonstrations

        return load_demonstrations(self.demonstrations_file(split))

    def demonstrations_file(self, split: str) -> Path:
        if split not in ("train", "validation"):
            raise ValueError(f"split={split!r}: demonstrations exist for train and validation")
        return self.path / f"demonstrations_{split}.jsonl"

    def corpus(self) -> dict[str, list[str]]:
        """Pretraining texts ``{"train", "validation"}`` (regenerated from the seed if not on disk)."""
        from textbandit.task.corpus import load_corpus

        return load_corpus(self.path, self.config)

    def labelers(self) -> LabelerPool:
        """The calibrated simulated labelers (see :mod:`textbandit.task.labelers`)."""
        return LabelerPool(json.loads((self.path / "labelers.json").read_text())["noises"])

    gold_score = staticmethod(gold_score)
    gold_scores = staticmethod(gold_scores)
    gold_details = staticmethod(gold_details)

    def rank(
        self,
        prompt: str,
        responses: list[str],
        rng: np.random.Generator,
        ended_with_eos=None,
        labeler: int | None = None,
    ) -> list[int]:
        """One simulated labeler's ranking of ``responses`` (0 = best), as in the comparisons format."""
        gold = gold_scores([prompt] * len(responses), responses, ended_with_eos)
        return self.labelers().rank(gold, rng, labeler)


def load_task(task: str | os.PathLike | Task | None = "default") -> Task | None:
    """``task`` as a :class:`Task`: ``"default"`` is the shipped task, a path is a built task folder,
    a ``Task`` is itself and ``None`` is no task (the env then needs every component passed)."""
    if task is None or isinstance(task, Task):
        return task
    if isinstance(task, (str, os.PathLike)):
        return DefaultTask.from_folder(DEFAULT_DIR if os.fspath(task) == "default" else task)
    raise TypeError(f"task={task!r}; pass 'default', a path to a built task folder, a textbandit.task.Task, or None")
