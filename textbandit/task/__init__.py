"""The embedded default task: a small synthetic world where alignment is measurable.

A language with a grammar (:mod:`.language`), a pretraining corpus (:mod:`.corpus`), a BPE
tokenizer (:mod:`.tokenizer`), nine instruction kinds with checkable intent
(:mod:`.instructions`), customers with their own mixes of kinds, split by customer
(:mod:`.customers`), a demonstrator that skips two kinds (:mod:`.demonstrator`), a hidden
gold labeler (:mod:`.gold`), noisy simulated labelers (:mod:`.labelers`) and Bradley-Terry
ratings (:mod:`.rating`). ``python -m textbandit.task.build`` writes the files,
``python -m agents.pretrain`` the base models, ``python -m textbandit.task.report`` the
figures.

>>> task = load_default_task()
>>> p = task.prompts("test")[0]["prompt"]
>>> task.gold_score(p, "", ended_with_eos=True)
0.0
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np

from textbandit.task.config import TaskConfig
from textbandit.task.gold import gold_details, gold_score, gold_scores
from textbandit.task.instructions import KINDS, Instruction, parse, render
from textbandit.task.labelers import LabelerPool, calibrate, measure_agreement
from textbandit.task.rating import bradley_terry, pairs_from_ranking, win_probability

DEFAULT_DIR = Path(__file__).resolve().parent.parent / "assets" / "default"
"""Where the shipped task lives (``textbandit/assets/default``)."""

__all__ = ["DefaultTask", "load_default_task", "TaskConfig", "KINDS", "Instruction", "parse",
           "render", "gold_score", "gold_scores", "gold_details", "LabelerPool", "calibrate",
           "measure_agreement", "bradley_terry", "pairs_from_ranking", "win_probability",
           "DEFAULT_DIR"]


class DefaultTask:
    """A built task directory: tokenizer, prompts and demonstrations per split, the gold
    labeler and the simulated labelers.

    >>> task = DefaultTask()          # the shipped copy
    >>> sorted(task.prompts("train")[0])
    ['customer', 'kind', 'params', 'prompt']
    """

    def __init__(self, path=None):
        self.path = Path(path) if path is not None else DEFAULT_DIR
        cfg_file = self.path / "task_config.json"
        if not cfg_file.exists():
            raise ValueError(f"{self.path} is not a built task (no task_config.json); run "
                             f"`python -m textbandit.task.build --out {self.path}`")
        self.config = TaskConfig.from_dict(json.loads(cfg_file.read_text()))
        self.kinds = KINDS
        self.tokenizer_path = self.path / "tokenizer"

    def tokenizer(self):
        """The task's ``PreTrainedTokenizerFast`` (pad ``<pad>`` = 0, EOS ``<eos>``)."""
        from textbandit.task.tokenizer import load_tokenizer

        return load_tokenizer(self.tokenizer_path)

    def _jsonl(self, name: str) -> list[dict]:
        f = self.path / name
        if not f.exists():
            raise ValueError(f"no {name} in {self.path}")
        return [json.loads(line) for line in f.read_text().splitlines() if line.strip()]

    def prompts(self, split: str) -> list[dict]:
        """Prompt records of one split (``train``, ``validation`` or ``test``)."""
        if split not in ("train", "validation", "test"):
            raise ValueError(f"split={split!r}: use train, validation or test")
        return self._jsonl(f"prompts_{split}.jsonl")

    def demonstrations(self, split: str) -> list[dict]:
        """Demonstrations of one split (``train`` or ``validation``; test has none)."""
        if split not in ("train", "validation"):
            raise ValueError(f"split={split!r}: demonstrations exist for train and validation")
        return self._jsonl(f"demonstrations_{split}.jsonl")

    def prompts_file(self, split: str) -> Path:
        return self.path / f"prompts_{split}.jsonl"

    def demonstrations_file(self, split: str) -> Path:
        return self.path / f"demonstrations_{split}.jsonl"

    def corpus(self) -> dict[str, list[str]]:
        """Pretraining texts ``{"train", "validation"}`` (regenerated if not on disk)."""
        from textbandit.task.corpus import load_corpus

        return load_corpus(self.path, self.config)

    def labelers(self) -> LabelerPool:
        """The calibrated simulated labelers (see :mod:`textbandit.task.labelers`)."""
        return LabelerPool(json.loads((self.path / "labelers.json").read_text())["noises"])

    gold_score = staticmethod(gold_score)
    gold_scores = staticmethod(gold_scores)
    gold_details = staticmethod(gold_details)

    def rank(self, prompt: str, responses: list[str], rng: np.random.Generator,
             ended_with_eos=None, labeler: int | None = None) -> list[int]:
        """One simulated labeler's ranking of ``responses`` (0 = best), as in the
        comparisons format."""
        gold = gold_scores([prompt] * len(responses), responses, ended_with_eos)
        return self.labelers().rank(gold, rng, labeler)


def load_default_task(path=None) -> DefaultTask:
    """The task in ``path`` (default: the shipped ``textbandit/assets/default``)."""
    return DefaultTask(path)
